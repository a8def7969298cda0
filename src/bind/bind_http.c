/* po.http: HTTP requests on the event loop (src/core/http.c), one future
 * each. The client is made on first use, per Lua state, and dropped with
 * the state's loop. */
#include "bind.h"
#include "bind_loop.h"

#include "error.h"
#include "http.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct http_call {
  po_lua_future *future;
  po_http_req *req;
  int on_chunk_ref; /* LUA_NOREF when not streaming */
  char *error;      /* what on_chunk raised, when it did */
} http_call;

static const char http_key = 0;

/* The state's client, in Lua's memory anchored in the registry. */
typedef struct http_box {
  po_http *h;       /* made on first use */
  int hooked;       /* close_http is registered */
  http_call *spare; /* a call whose future could not be made (out of memory): freed at the next use */
} http_box;

/* The state being closed, for on_drop (close hooks run on its thread). */
static __thread lua_State *closing_state;

static void close_http(lua_State *L, void *ud) {
  http_box *box = ud;
  closing_state = L;
  po_http_free(box->h);
  box->h = NULL;
  closing_state = NULL;
  free(box->spare);
  box->spare = NULL;
}

static http_box *existing_box(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&http_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  http_box *box = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return box;
}

/* The state's client, or NULL with the failure triple pushed. The box is
 * anchored before its close hook (which may raise) is registered, so that
 * nothing leaks when that fails. */
static po_http *state_http(lua_State *L, int *nret) {
  http_box *box = existing_box(L);
  if (!box) {
    lua_pushlightuserdata(L, (void *)&http_key);
    box = lua_newuserdata(L, sizeof *box);
    *box = (http_box){0};
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  if (!box->hooked) {
    po_lua_loop_on_close(L, close_http, box);
    box->hooked = 1;
  }
  free(box->spare);
  box->spare = NULL;
  if (box->h) return box->h;
  po_loop *loop = po_lua_loop(L);
  po_http *h;
  int rc = po_http_new(loop, &h);
  if (rc == PO_EUNAVAIL) {
    *nret = po_push_error(L, rc, "po.http.request: libcurl is not available: %s", po_http_load_error());
    return NULL;
  }
  if (rc != 0) {
    *nret = po_push_error(L, rc, "po.http.request: %s", po_strerror(rc));
    return NULL;
  }
  box->h = h;
  return h;
}

static void call_free(lua_State *L, http_call *c) {
  if (L && c->on_chunk_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, c->on_chunk_ref);
  free(c->error);
  free(c);
}

static int on_chunk(po_http_req *req, const char *data, size_t len, long status, void *ud) {
  http_call *c = ud;
  lua_State *L = po_lua_future_state(c->future);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->on_chunk_ref);
  lua_pushlstring(L, data, len);
  lua_pushinteger(L, status);
  const char *ctype = po_http_req_header(req, "content-type");
  if (ctype)
    lua_pushstring(L, ctype);
  else
    lua_pushnil(L);
  if (po_pcall(L, 3, 0) == 0) return 0;
  const char *msg = lua_tostring(L, -1);
  if (!c->error) c->error = strdup(msg ? msg : "po.http.request: on_chunk raised a non-string error");
  lua_pop(L, 1);
  return PO_ECANCELED;
}

static int push_response(lua_State *L, void *data) {
  const po_http_result *res = data;
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, res->status);
  lua_setfield(L, -2, "status");
  lua_createtable(L, 0, (int)res->nheaders);
  for (size_t i = 0; i < res->nheaders; i++) {
    lua_pushstring(L, res->values[i]);
    lua_setfield(L, -2, res->names[i]);
  }
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, res->body, res->body_len);
  lua_setfield(L, -2, "body");
  lua_pushnumber(L, res->duration);
  lua_setfield(L, -2, "duration");
  lua_pushstring(L, res->http_version);
  lua_setfield(L, -2, "http_version");
  return 1;
}

static void on_done(po_http_req *req, int rc, const po_http_result *res, void *ud) {
  http_call *c = ud;
  lua_State *L = po_lua_future_state(c->future);
  if (c->error)
    po_lua_future_reject(c->future, c->error, "ERUNTIME");
  else if (rc != 0)
    po_lua_future_reject(c->future, res->message, po_errname(rc));
  else
    po_lua_future_resolve(c->future, push_response, (void *)res);
  call_free(L, c);
}

static void on_drop(void *ud) {
  /* The state is closing: nobody can wait for the future any more. */
  http_call *c = ud;
  po_lua_future_drop(closing_state, c->future);
  call_free(closing_state, c);
}

static void on_cancel(void *ud) {
  http_call *c = ud;
  po_http_cancel(c->req);
}

static const po_http_handler handler = {.on_chunk = on_chunk, .on_done = on_done, .on_drop = on_drop};

static double opt_seconds(lua_State *L, int idx, const char *name) {
  lua_getfield(L, idx, name);
  double v = 0;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER || isnan(lua_tonumber(L, -1)) || lua_tonumber(L, -1) < 0)
      luaL_error(L, "po.http.request: %s must be a non-negative number of seconds", name);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static const char *opt_string(lua_State *L, int idx, const char *name, size_t *len) {
  lua_getfield(L, idx, name);
  const char *s = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "po.http.request: %s must be a string, got %s", name, luaL_typename(L, -1));
    s = lua_tolstring(L, -1, len);
  }
  lua_pop(L, 1); /* the string stays alive: the options table holds it */
  return s;
}

static int valid_token(const char *s, size_t len) {
  if (len == 0) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch)) return 0;
  }
  return 1;
}

/* Pushes an array of the header lines ("Name: value") and returns how many
 * it holds; adds a User-Agent and an empty Expect (no 100-continue round
 * trip) unless the caller set them. Raises naming the header, never its
 * value, which may be a key. */
static int push_header_lines(lua_State *L, int opts) {
  int n = 0, has_agent = 0, has_expect = 0;
  lua_newtable(L);
  int lines = lua_gettop(L);
  lua_getfield(L, opts, "headers");
  int t = lua_gettop(L);
  if (!lua_isnil(L, t)) {
    if (!lua_istable(L, t)) luaL_error(L, "po.http.request: headers must be a table of name = value");
    lua_pushnil(L);
    while (lua_next(L, t)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "po.http.request: header names must be strings");
      size_t nlen, vlen;
      const char *name = lua_tolstring(L, -2, &nlen);
      if (!valid_token(name, nlen)) luaL_error(L, "po.http.request: invalid header name '%s'", name);
      int vt = lua_type(L, -1);
      if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
        luaL_error(L, "po.http.request: header '%s' must be a string or a number, got %s", name, lua_typename(L, vt));
      const char *value = lua_tolstring(L, -1, &vlen); /* the value, not the key, may be converted */
      if (memchr(value, '\r', vlen) || memchr(value, '\n', vlen) || memchr(value, '\0', vlen))
        luaL_error(L, "po.http.request: header '%s' contains a line break or a NUL byte", name);
      has_agent |= strcasecmp(name, "User-Agent") == 0;
      has_expect |= strcasecmp(name, "Expect") == 0;
      /* curl sends "Name;" as a header with an empty value; "Name:" would remove it. */
      if (vlen == 0)
        lua_pushfstring(L, "%s;", name);
      else
        lua_pushfstring(L, "%s: %s", name, value);
      lua_rawseti(L, lines, ++n);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (!has_agent) {
    lua_pushliteral(L, "User-Agent: poengine/" POENGINE_VERSION);
    lua_rawseti(L, lines, ++n);
  }
  if (!has_expect) {
    lua_pushliteral(L, "Expect:");
    lua_rawseti(L, lines, ++n);
  }
  return n;
}

/* po.http.request{ method =, url =, headers =, body =, timeout =,
 * connect_timeout =, ttfb_timeout =, idle_timeout =, on_chunk = fn }
 *   -> future of { status, headers, body, duration, http_version }
 *    | nil, message, "EUNAVAIL" */
static int l_http_request(lua_State *L) {
  static const char *const allowed[] = {"method", "url", "headers", "body", "timeout", "connect_timeout",
                                        "ttfb_timeout", "idle_timeout", "on_chunk", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  po_check_options(L, 1, "po.http.request", allowed);
  po_http_opts o = {0};
  size_t len;
  o.url = opt_string(L, 1, "url", &len);
  if (!o.url) luaL_error(L, "po.http.request: url is required");
  o.method = opt_string(L, 1, "method", &len);
  if (o.method && !valid_token(o.method, len)) luaL_error(L, "po.http.request: invalid method '%s'", o.method);
  o.body = opt_string(L, 1, "body", &o.body_len);
  o.timeout = opt_seconds(L, 1, "timeout");
  o.connect_timeout = opt_seconds(L, 1, "connect_timeout");
  o.ttfb_timeout = opt_seconds(L, 1, "ttfb_timeout");
  o.idle_timeout = opt_seconds(L, 1, "idle_timeout");
  lua_getfield(L, 1, "on_chunk");
  int chunk_idx = lua_gettop(L);
  if (!lua_isnil(L, chunk_idx) && !lua_isfunction(L, chunk_idx))
    luaL_error(L, "po.http.request: on_chunk must be a function, got %s", luaL_typename(L, chunk_idx));
  o.stream = lua_isfunction(L, chunk_idx);

  int n = push_header_lines(L, 1);
  int lines_idx = lua_gettop(L);
  const char **lines = lua_newuserdata(L, (size_t)n * sizeof *lines);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, lines_idx, i + 1);
    lines[i] = lua_tostring(L, -1); /* kept alive by the lines table */
    lua_pop(L, 1);
  }
  o.headers = lines;
  o.nheaders = (size_t)n;

  int nret = 0;
  po_http *h = state_http(L, &nret);
  if (!h) return nret;

  http_call *c = calloc(1, sizeof *c);
  if (!c) return luaL_error(L, "po.http.request: out of memory");
  c->on_chunk_ref = LUA_NOREF;
  http_box *box = existing_box(L);
  box->spare = c; /* po_lua_future_new raises when out of memory */
  c->future = po_lua_future_new(L, on_cancel, c);
  box->spare = NULL;
  int rc = po_http_start(h, &o, &handler, c, &c->req);
  if (rc != 0) {
    po_lua_future_drop(L, c->future);
    call_free(L, c);
    if (rc == PO_EINVAL) return luaL_error(L, "po.http.request: invalid request (method or header lines)");
    return po_push_error(L, rc, "po.http.request: %s", po_strerror(rc));
  }
  if (o.stream) {
    lua_pushvalue(L, chunk_idx);
    c->on_chunk_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 1; /* the future */
}

static po_http *existing_http(lua_State *L) {
  http_box *box = existing_box(L);
  return box ? box->h : NULL;
}

/* Transfers in flight (for tests and diagnostics). */
static int l_http_active(lua_State *L) {
  po_http *h = existing_http(L);
  lua_pushinteger(L, h ? po_http_active(h) : 0);
  return 1;
}

/* po.http.stats() -> { active = n, running = n } */
static int l_http_stats(lua_State *L) {
  po_http *h = existing_http(L);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, h ? po_http_active(h) : 0);
  lua_setfield(L, -2, "active");
  lua_pushinteger(L, h ? po_http_running(h) : 0);
  lua_setfield(L, -2, "running");
  return 1;
}

void po_open_http(lua_State *L) {
  static const luaL_Reg fns[] = {{"http_request", l_http_request}, {"http_active", l_http_active},
                                {"http_stats", l_http_stats}, {NULL, NULL}};
  po_set_funcs(L, fns);
}
