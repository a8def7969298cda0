/* po.redis (src/core/redis.c): a client userdata whose commands return
 * futures. While a client has commands (or its first connection) pending
 * it is anchored in the registry, so it is not collected under them; the
 * clients of a state are freed when the state closes. The Lua side
 * (lua/poengine/redis.lua) wraps it. */
#include "bind.h"
#include "bind_loop.h"

#include "error.h"
#include "redis.h"
#include "redis_url.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_TYPE "poengine.redis"

typedef struct client_list client_list;

typedef struct client {
  po_redis *r;          /* NULL once freed */
  po_lua_future *ready; /* the first connection's outcome, while awaited */
  int pending;          /* commands and the ready future not settled yet */
  int anchor;           /* registry ref to this userdata while pending */
  struct client *prev, *next;
  client_list *list;
} client;

struct client_list {
  client *head;
  int hooked; /* its close hook is registered */
};

typedef struct call {
  client *cl;
  po_lua_future *future;
} call;

/* The state being closed, so that callbacks drop their futures. */
static __thread lua_State *closing_state;

static void pend(lua_State *L, client *cl, int idx) {
  if (cl->pending++ == 0) {
    lua_pushvalue(L, idx);
    cl->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  }
}

static void unpend(lua_State *L, client *cl) {
  if (--cl->pending == 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, cl->anchor);
    cl->anchor = LUA_NOREF;
  }
}

static void client_free(lua_State *L, client *cl) {
  if (!cl->r) return;
  lua_State *outer = closing_state;
  closing_state = L;
  po_redis_free(cl->r); /* runs the callbacks still due: they drop their futures */
  cl->r = NULL;
  if (cl->ready) {
    po_lua_future_drop(L, cl->ready);
    cl->ready = NULL;
    unpend(L, cl);
  }
  closing_state = outer;
  if (cl->prev)
    cl->prev->next = cl->next;
  else
    cl->list->head = cl->next;
  if (cl->next) cl->next->prev = cl->prev;
  cl->prev = cl->next = NULL;
}

static void close_all(lua_State *L, void *ud) {
  client_list *list = ud;
  while (list->head) client_free(L, list->head);
}

static const char list_key = 0;

static client_list *state_clients(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&list_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  client_list *list = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!list) {
    /* Lua's memory, anchored before the hook that may raise is registered:
     * nothing leaks when it does, and the next call registers it. */
    lua_pushlightuserdata(L, (void *)&list_key);
    list = lua_newuserdata(L, sizeof *list);
    *list = (client_list){0};
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  if (!list->hooked) {
    po_lua_loop_on_close(L, close_all, list);
    list->hooked = 1;
  }
  return list;
}

/* ---- replies ---- */

/* nil, a number, a string, or a table with n = the element count (a nil
 * element leaves a hole); an error inside an array is { error = message }. */
static void push_tree(lua_State *L, const po_redis_reply *r) {
  luaL_checkstack(L, 4, "po.redis: a reply nested too deep");
  switch (r->type) {
  case PO_REDIS_NIL: lua_pushnil(L); return;
  case PO_REDIS_INTEGER: lua_pushnumber(L, (lua_Number)r->integer); return;
  case PO_REDIS_STRING:
  case PO_REDIS_STATUS: lua_pushlstring(L, r->str, r->len); return;
  case PO_REDIS_ERROR:
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, r->str, r->len);
    lua_setfield(L, -2, "error");
    return;
  default:
    lua_createtable(L, (int)r->n, 1);
    for (size_t i = 0; i < r->n; i++) {
      push_tree(L, &r->elements[i]);
      lua_rawseti(L, -2, (int)i + 1);
    }
    lua_pushinteger(L, (lua_Integer)r->n);
    lua_setfield(L, -2, "n");
  }
}

static int push_reply(lua_State *L, void *data) {
  push_tree(L, data);
  return 1;
}

static void on_reply(int rc, const po_redis_reply *reply, const char *message, void *ud) {
  call *c = ud;
  lua_State *L = closing_state ? closing_state : po_lua_future_state(c->future);
  if (closing_state)
    po_lua_future_drop(L, c->future);
  else if (rc == 0)
    po_lua_future_resolve(c->future, push_reply, (void *)reply);
  else
    po_lua_future_reject(c->future, message, po_errname(rc));
  unpend(L, c->cl);
  free(c);
}

static int push_true(lua_State *L, void *data) {
  lua_pushboolean(L, 1);
  return 1;
}

static void on_connect(int rc, const char *message, void *ud) {
  client *cl = ud;
  po_lua_future *f = cl->ready;
  if (!f) return;
  cl->ready = NULL;
  lua_State *L = po_lua_future_state(f);
  if (rc == 0)
    po_lua_future_resolve(f, push_true, NULL);
  else
    po_lua_future_reject(f, message, po_errname(rc));
  unpend(L, cl);
}

/* ---- methods ---- */

static client *check_client(lua_State *L, const char *fn) {
  client *cl = luaL_checkudata(L, 1, CLIENT_TYPE);
  (void)fn;
  return cl;
}

/* The value at idx as a command argument; raises naming it. */
static const char *check_arg(lua_State *L, int idx, size_t *len, const char *fn, const char *what, int n) {
  int t = lua_type(L, idx);
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    luaL_error(L, "%s: %s %d must be a string or a number, got %s", fn, what, n, lua_typename(L, t));
  return lua_tolstring(L, idx, len); /* a number becomes a string in its stack slot */
}

static int start_result(lua_State *L, client *cl, call *c, int rc, const char *fn) {
  if (rc == 0) {
    pend(L, cl, 1);
    return 1; /* the future */
  }
  po_lua_future_drop(L, c->future);
  free(c);
  if (rc == PO_EINVAL) return luaL_error(L, "%s: invalid arguments", fn);
  return po_push_error(L, rc, "%s: %s", fn,
                       rc == PO_ECONN ? "not connected, and the queue of commands waiting for a connection is full"
                       : rc == PO_ECANCELED ? "the client is closed"
                                            : po_strerror(rc));
}

static call *new_call(lua_State *L, client *cl) {
  po_lua_future *f = po_lua_future_new(L, NULL, NULL); /* first: it raises when out of memory */
  call *c = calloc(1, sizeof *c);
  if (!c) {
    po_lua_future_drop(L, f);
    luaL_error(L, "po.redis: out of memory");
  }
  c->cl = cl;
  c->future = f;
  return c;
}

/* client:command(name, ...) -> future | nil, message, code */
static int l_command(lua_State *L) {
  static const char fn[] = "client:command";
  client *cl = check_client(L, fn);
  int argc = lua_gettop(L) - 1;
  if (argc < 1) return luaL_error(L, "%s: the command name is missing", fn);
  const char **argv = lua_newuserdata(L, (size_t)argc * (sizeof *argv + sizeof(size_t)));
  size_t *lens = (size_t *)(argv + argc);
  for (int i = 0; i < argc; i++) argv[i] = check_arg(L, i + 2, &lens[i], fn, "argument", i + 1);
  if (!cl->r) return po_push_error(L, PO_ECANCELED, "%s: the client is closed", fn);
  call *c = new_call(L, cl);
  return start_result(L, cl, c, po_redis_command(cl->r, argc, argv, lens, on_reply, c), fn);
}

static int array_len(lua_State *L, int idx, const char *fn, const char *name) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (!lua_istable(L, idx)) luaL_error(L, "%s: %s must be a table (an array), got %s", fn, name, luaL_typename(L, idx));
  return (int)lua_objlen(L, idx);
}

/* client:eval(script, keys, args) -> future | nil, message, code */
static int l_eval(lua_State *L) {
  static const char fn[] = "client:eval";
  client *cl = check_client(L, fn);
  size_t script_len;
  if (lua_type(L, 2) != LUA_TSTRING) luaL_error(L, "%s: script must be a string, got %s", fn, luaL_typename(L, 2));
  const char *script = lua_tolstring(L, 2, &script_len);
  int nkeys = array_len(L, 3, fn, "keys"), nargs = array_len(L, 4, fn, "args");
  int n = nkeys + nargs;
  lua_settop(L, 4);
  lua_createtable(L, n, 0); /* keeps the strings alive */
  int keep = lua_gettop(L);
  const char **args = lua_newuserdata(L, (size_t)(n ? n : 1) * (sizeof *args + sizeof(size_t)));
  size_t *lens = (size_t *)(args + (n ? n : 1));
  for (int i = 0; i < n; i++) {
    int from = i < nkeys ? 3 : 4, at = i < nkeys ? i + 1 : i - nkeys + 1;
    lua_rawgeti(L, from, at);
    int t = lua_type(L, -1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_error(L, "%s: %s[%d] must be a string or a number, got %s", fn, i < nkeys ? "keys" : "args", at,
                 lua_typename(L, t));
    args[i] = lua_tolstring(L, -1, &lens[i]);
    lua_rawseti(L, keep, i + 1);
  }
  if (!cl->r) return po_push_error(L, PO_ECANCELED, "%s: the client is closed", fn);
  call *c = new_call(L, cl);
  return start_result(L, cl, c, po_redis_eval(cl->r, script, script_len, nkeys, n, args, lens, on_reply, c), fn);
}

/* client:close(): commands not answered fail ECANCELED. */
static int l_close(lua_State *L) {
  client *cl = check_client(L, "client:close");
  if (cl->r) po_redis_close(cl->r);
  return 0;
}

static int l_gc(lua_State *L) {
  client_free(L, luaL_checkudata(L, 1, CLIENT_TYPE));
  return 0;
}

static void set_number(lua_State *L, const char *field, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, field);
}

static int l_stats(lua_State *L) {
  client *cl = check_client(L, "client:stats");
  po_redis_stats st = {0};
  if (cl->r) po_redis_get_stats(cl->r, &st);
  lua_createtable(L, 0, 10);
  set_number(L, "commands", (double)st.commands);
  set_number(L, "replies", (double)st.replies);
  set_number(L, "errors", (double)st.errors);
  set_number(L, "timeouts", (double)st.timeouts);
  set_number(L, "failed", (double)st.failed);
  set_number(L, "connects", (double)st.connects);
  set_number(L, "connect_failures", (double)st.connect_failures);
  set_number(L, "queued", (double)st.queued);
  set_number(L, "in_flight", (double)st.in_flight);
  lua_pushboolean(L, st.connected);
  lua_setfield(L, -2, "connected");
  return 1;
}

/* ---- connect ---- */

static double opt_number(lua_State *L, int idx, const char *name, double dflt, double min, int integer) {
  lua_getfield(L, idx, name);
  double v = dflt;
  if (!lua_isnil(L, -1)) {
    v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
    if (isnan(v) || isinf(v) || v < min || (integer && v != floor(v)))
      luaL_error(L, "po.redis.connect: %s must be %s of at least %g", name, integer ? "an integer" : "a number", min);
  }
  lua_pop(L, 1);
  return v;
}

/* redis_connect(url [, opts]) -> client, ready future (nil when not
 * waiting) | nil, message, code */
static int l_redis_connect(lua_State *L) {
  static const char *const allowed[] = {"connect_timeout", "command_timeout", "max_queue", "wait", NULL};
  static const char fn[] = "po.redis.connect";
  if (lua_type(L, 1) != LUA_TSTRING) luaL_error(L, "%s: url must be a string, got %s", fn, luaL_typename(L, 1));
  const char *url = lua_tostring(L, 1);
  po_check_options(L, 2, fn, allowed);
  po_redis_opts o;
  po_redis_opts_init(&o);
  int wait = 1;
  if (lua_istable(L, 2)) {
    o.connect_timeout = opt_number(L, 2, "connect_timeout", o.connect_timeout, 0.001, 0);
    o.command_timeout = opt_number(L, 2, "command_timeout", o.command_timeout, 0, 0);
    o.max_queue = (size_t)opt_number(L, 2, "max_queue", (double)o.max_queue, 0, 1);
    lua_getfield(L, 2, "wait");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
      luaL_error(L, "%s: wait must be a boolean, got %s", fn, luaL_typename(L, -1));
    wait = !lua_isboolean(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  client_list *list = state_clients(L); /* before the URL's copy: it may raise */
  po_redis_url u;
  const char *why;
  int rc = po_redis_url_parse(url, &u, &why);
  if (rc) return po_push_error(L, rc, "%s: %s", fn, why);

  po_loop *loop = po_lua_loop(L);
  client *cl = lua_newuserdata(L, sizeof *cl);
  *cl = (client){.anchor = LUA_NOREF, .list = list};
  luaL_getmetatable(L, CLIENT_TYPE);
  lua_setmetatable(L, -2);
  int idx = lua_gettop(L);
  o.on_connect = on_connect;
  o.ud = cl;
  rc = po_redis_new(loop, &u, &o, &cl->r);
  po_redis_url_free(&u);
  if (rc) return po_push_error(L, rc, "%s: %s", fn, po_strerror(rc));
  cl->next = list->head;
  if (list->head) list->head->prev = cl;
  list->head = cl;
  if (!wait) {
    lua_pushnil(L);
    return 2;
  }
  cl->ready = po_lua_future_new(L, NULL, NULL);
  pend(L, cl, idx);
  return 2;
}

void po_open_redis(lua_State *L) {
  static const luaL_Reg methods[] = {{"command", l_command}, {"eval", l_eval}, {"close", l_close},
                                     {"stats", l_stats},     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_gc}, {NULL, NULL}};
  po_register_type(L, CLIENT_TYPE, methods, meta);
  static const luaL_Reg fns[] = {{"redis_connect", l_redis_connect}, {NULL, NULL}};
  po_set_funcs(L, fns);
}
