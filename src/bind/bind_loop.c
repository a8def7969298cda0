/* The event loop as the Lua scheduler sees it (lua/poengine/future.lua):
 * clocks, one step of the reactor, whether anything is still pending, and
 * Lua futures settled by C operations. Each Lua state has its own loop,
 * created on first use; on the main thread that is the process's reactor. */
#include "bind_loop.h"

#include "bind.h"

#include "clock.h"
#include "error.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOOP_TYPE "poengine.loop"

typedef struct close_hook {
  struct close_hook *next;
  po_lua_close_fn fn;
  void *ud;
} close_hook;

typedef struct loop_box {
  po_loop *loop;
  close_hook *hooks;  /* run when the state closes, before the loop is freed */
  lua_State *current; /* the state (thread) running step(): callbacks settle futures on it */
  int error_ref;      /* first error raised while settling during this step, or LUA_NOREF */
} loop_box;

struct po_lua_future {
  loop_box *box;
  int future_ref; /* the Lua future, kept alive until settled */
  po_lua_cancel_fn on_cancel;
  void *ud;
  int canceled;
};

static int loop_gc(lua_State *L) {
  loop_box *box = luaL_checkudata(L, 1, LOOP_TYPE);
  while (box->hooks) {
    close_hook *h = box->hooks;
    box->hooks = h->next;
    h->fn(L, h->ud);
    free(h);
  }
  po_loop_free(box->loop);
  box->loop = NULL;
  return 0;
}

static const char loop_key = 0;

static loop_box *state_loop(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&loop_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  loop_box *box = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (box) return box;

  static const luaL_Reg meta[] = {{"__gc", loop_gc}, {NULL, NULL}};
  po_register_type(L, LOOP_TYPE, NULL, meta);
  lua_pushlightuserdata(L, (void *)&loop_key);
  box = lua_newuserdata(L, sizeof *box);
  *box = (loop_box){.loop = NULL, .hooks = NULL, .current = L, .error_ref = LUA_NOREF};
  luaL_getmetatable(L, LOOP_TYPE);
  lua_setmetatable(L, -2);
  int rc = po_loop_new(&box->loop);
  if (rc != 0) luaL_error(L, "poengine: cannot create the event loop: %s (%s)", po_strerror(rc), strerror(errno));
  lua_rawset(L, LUA_REGISTRYINDEX);
  return box;
}

po_loop *po_lua_loop(lua_State *L) { return state_loop(L)->loop; }

void po_lua_loop_on_close(lua_State *L, po_lua_close_fn on_close, void *ud) {
  loop_box *box = state_loop(L);
  close_hook *h = malloc(sizeof *h);
  if (!h) luaL_error(L, "poengine: out of memory");
  *h = (close_hook){.next = box->hooks, .fn = on_close, .ud = ud};
  box->hooks = h;
}

/* ---- futures settled from C ----
 *
 * A future made here is the same Lua table po.future() makes, built in C
 * (one table, its metatable, no call into Lua): pool jobs make one each, so
 * this is on the hot path. Its cancel hook is one C function shared by all
 * of them, which finds the handle through the future's `_handle` field. */

static const char future_mt_key = 0;
static const char cancel_fn_key = 0;
static const char settle_fn_key = 0;

static int cancel_hook(lua_State *L) {
  /* hook(fut): called by fut:cancel() only while the future is pending, and
   * a future settled from C is no longer pending, so the handle is alive. */
  lua_getfield(L, 1, "_handle");
  po_lua_future *f = lua_touserdata(L, -1);
  if (f && !f->canceled && f->on_cancel) {
    f->canceled = 1;
    f->on_cancel(f->ud);
  }
  return 0;
}

/* Pushes the value cached in the registry under key, computing it first
 * with make(L) (which pushes it) when missing. */
static void push_cached(lua_State *L, const void *key, void (*make)(lua_State *L)) {
  lua_pushlightuserdata(L, (void *)key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isnil(L, -1)) return;
  lua_pop(L, 1);
  make(L);
  lua_pushlightuserdata(L, (void *)key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

/* The metatable of futures (lua/poengine/future.lua's Future). */
static void make_future_mt(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "poengine.future");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "future");
  lua_call(L, 0, 1);
  lua_getmetatable(L, -1);
  lua_replace(L, -3);
  lua_pop(L, 1);
  if (!lua_istable(L, -1)) luaL_error(L, "poengine: futures have no metatable");
}

po_lua_future *po_lua_future_new(lua_State *L, po_lua_cancel_fn on_cancel, void *ud) {
  loop_box *box = state_loop(L);
  /* Every Lua object first (they may raise), then the handle. */
  lua_createtable(L, 0, 8); /* room for what settling and waiting add: no rehash */
  lua_pushliteral(L, "pending");
  lua_setfield(L, -2, "state");
  if (on_cancel) {
    po_push_cfunction(L, &cancel_fn_key, cancel_hook);
    lua_setfield(L, -2, "on_cancel");
    lua_pushboolean(L, 0); /* the slot, so that setting the handle cannot raise */
    lua_setfield(L, -2, "_handle");
  }
  push_cached(L, &future_mt_key, make_future_mt);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  po_lua_future *f = malloc(sizeof *f);
  if (!f) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    luaL_error(L, "poengine: out of memory");
    return NULL;
  }
  *f = (po_lua_future){.box = box, .future_ref = ref, .on_cancel = on_cancel, .ud = ud};
  if (on_cancel) {
    lua_pushlightuserdata(L, f);
    lua_setfield(L, -2, "_handle");
  }
  return f;
}

typedef struct settle_args {
  po_lua_future *f;
  po_lua_push_fn push;
  void *data;
  const char *message, *code;
} settle_args;

/* fut:_settle("done", { n = k, ... }) or fut:_settle("failed", message, code). */
static int settle_protected(lua_State *L) {
  settle_args *a = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->f->future_ref); /* 2 */
  lua_getfield(L, 2, "_settle");
  lua_pushvalue(L, 2);
  if (a->push) {
    lua_pushliteral(L, "done");
    int base = lua_gettop(L);
    int n = a->push(L, a->data);
    lua_createtable(L, n, 1);
    lua_insert(L, base + 1);
    for (int i = n; i >= 1; i--) lua_rawseti(L, base + 1, i);
    lua_pushinteger(L, n);
    lua_setfield(L, base + 1, "n");
    lua_call(L, 3, 0);
  } else {
    lua_pushliteral(L, "failed");
    lua_pushstring(L, a->message);
    lua_pushstring(L, a->code);
    lua_call(L, 4, 0);
  }
  return 0;
}

/* Calls fn(a) protected on the state running box's loop; keeps the first
 * error for l_step to re-raise. */
static void call_on_loop(loop_box *box, const void *key, lua_CFunction fn, void *a) {
  lua_State *L = box->current;
  po_push_cfunction(L, key, fn);
  lua_pushlightuserdata(L, a);
  if (po_pcall(L, 1, 0) != 0) {
    if (box->error_ref == LUA_NOREF)
      box->error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
      lua_pop(L, 1);
  }
}

static void settle(settle_args *a) {
  po_lua_future *f = a->f;
  loop_box *box = f->box;
  lua_State *L = box->current;
  call_on_loop(box, &settle_fn_key, settle_protected, a);
  luaL_unref(L, LUA_REGISTRYINDEX, f->future_ref);
  f->canceled = 1;
  free(f);
}

void po_lua_future_resolve(po_lua_future *f, po_lua_push_fn push, void *data) {
  settle_args a = {.f = f, .push = push, .data = data};
  settle(&a);
}

void po_lua_future_reject(po_lua_future *f, const char *message, const char *code) {
  settle_args a = {.f = f, .message = message, .code = code};
  settle(&a);
}

lua_State *po_lua_future_state(po_lua_future *f) { return f->box->current; }

void po_lua_future_drop(lua_State *L, po_lua_future *f) {
  if (!f) return;
  /* The future stays pending: drop its cancel hook and the handle. */
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->future_ref);
  if (lua_istable(L, -1)) {
    lua_pushliteral(L, "on_cancel");
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pushliteral(L, "_handle");
    lua_pushnil(L);
    lua_rawset(L, -3);
  }
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, f->future_ref);
  f->canceled = 1;
  free(f);
}

/* ---- callbacks called from C ---- */

struct po_lua_callback {
  loop_box *box;
  int fn_ref;
};

po_lua_callback *po_lua_callback_new(lua_State *L, int idx) {
  loop_box *box = state_loop(L);
  lua_pushvalue(L, idx);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  po_lua_callback *cb = malloc(sizeof *cb);
  if (!cb) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    luaL_error(L, "poengine: out of memory");
    return NULL;
  }
  *cb = (po_lua_callback){.box = box, .fn_ref = ref};
  return cb;
}

typedef struct callback_args {
  po_lua_callback *cb;
  po_lua_push_fn push;
  void *data;
} callback_args;

static int callback_protected(lua_State *L) {
  callback_args *a = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->cb->fn_ref);
  int n = a->push(L, a->data);
  lua_call(L, n, 0);
  return 0;
}

static const char callback_fn_key = 0;

void po_lua_callback_call(po_lua_callback *cb, po_lua_push_fn push, void *data) {
  callback_args a = {.cb = cb, .push = push, .data = data};
  call_on_loop(cb->box, &callback_fn_key, callback_protected, &a);
}

void po_lua_callback_free(po_lua_callback *cb) {
  if (!cb) return;
  luaL_unref(cb->box->current, LUA_REGISTRYINDEX, cb->fn_ref);
  free(cb);
}

/* ---- Lua functions ---- */

static int l_now(lua_State *L) {
  lua_pushnumber(L, po_monotonic());
  return 1;
}

static int l_time(lua_State *L) {
  lua_pushnumber(L, po_wallclock());
  return 1;
}

/* step([timeout]): waits at most timeout seconds (nil: no limit) for the
 * reactor's sources, runs what is ready and returns how many callbacks ran. */
static int l_step(lua_State *L) {
  double timeout = -1;
  if (!lua_isnoneornil(L, 1)) {
    timeout = luaL_checknumber(L, 1);
    if (isnan(timeout) || timeout < 0) timeout = 0;
  }
  loop_box *box = state_loop(L);
  lua_State *outer = box->current;
  box->current = L;
  int ran = 0;
  int rc = po_loop_run_once(box->loop, timeout, &ran);
  box->current = outer;
  if (box->error_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, box->error_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, box->error_ref);
    box->error_ref = LUA_NOREF;
    return lua_error(L);
  }
  if (rc != 0) return po_push_error(L, rc, "event loop: %s", strerror(errno));
  lua_pushinteger(L, ran);
  return 1;
}

static int l_alive(lua_State *L) {
  lua_pushboolean(L, po_loop_alive(po_lua_loop(L)));
  return 1;
}

void po_open_loop(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"now", l_now}, {"time", l_time}, {"step", l_step}, {"loop_alive", l_alive}, {NULL, NULL}};
  po_set_funcs(L, fns);
}
