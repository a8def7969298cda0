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
 * lua/poengine/future.lua owns futures: when it loads it registers (through
 * register_future) the functions that make a future for C, settle it and
 * detach it, and its scheduler's drain. C calls only those and never reads
 * or writes a future's fields. Each future made here carries a cancel hook,
 * one C function shared by all of them, and the handle as its argument. */

static const char new_fn_key = 0, settle_fn_key = 0, detach_fn_key = 0, drain_fn_key = 0;
static const char cancel_fn_key = 0, settle_call_key = 0, new_call_key = 0;

static int cancel_hook(lua_State *L) {
  /* hook(fut, handle): called by fut:cancel() only while the future is
   * pending, and a future settled or detached from C no longer has it, so
   * the handle is alive. */
  po_lua_future *f = lua_touserdata(L, 2);
  if (f && !f->canceled && f->on_cancel) {
    f->canceled = 1;
    f->on_cancel(f->ud);
  }
  return 0;
}

/* register_future{ new = f, settle = f, detach = f, drain = f } */
static int l_register_future(lua_State *L) {
  static const char *const fields[] = {"new", "settle", "detach", "drain", NULL};
  static const void *const keys[] = {&new_fn_key, &settle_fn_key, &detach_fn_key, &drain_fn_key};
  luaL_checktype(L, 1, LUA_TTABLE);
  po_check_options(L, 1, "register_future", fields);
  for (int i = 0; fields[i]; i++) {
    lua_getfield(L, 1, fields[i]);
    if (!lua_isfunction(L, -1)) return luaL_error(L, "register_future: %s must be a function", fields[i]);
    lua_pushlightuserdata(L, (void *)keys[i]);
    lua_insert(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

/* Pushes the function future.lua registered under key, loading the module
 * first if it has not been (raises if it registers nothing). */
static void push_registered(lua_State *L, const void *key) {
  lua_pushlightuserdata(L, (void *)key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_isfunction(L, -1)) return;
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "poengine.future");
  lua_call(L, 1, 0);
  lua_pushlightuserdata(L, (void *)key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isfunction(L, -1)) luaL_error(L, "poengine: poengine.future registered no futures for C");
}

/* new(hook, handle) -> future, protected so that the caller can free the
 * handle if it raises. */
static int new_protected(lua_State *L) {
  po_lua_future *f = lua_touserdata(L, 1);
  push_registered(L, &new_fn_key);
  if (f->on_cancel)
    po_push_cfunction(L, &cancel_fn_key, cancel_hook);
  else
    lua_pushnil(L);
  lua_pushlightuserdata(L, f);
  lua_call(L, 2, 1);
  return 1;
}

po_lua_future *po_lua_future_new(lua_State *L, po_lua_cancel_fn on_cancel, void *ud) {
  loop_box *box = state_loop(L);
  po_lua_future *f = malloc(sizeof *f);
  if (!f) {
    luaL_error(L, "poengine: out of memory");
    return NULL;
  }
  *f = (po_lua_future){.box = box, .future_ref = LUA_NOREF, .on_cancel = on_cancel, .ud = ud};
  po_push_cfunction(L, &new_call_key, new_protected);
  lua_pushlightuserdata(L, f);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    free(f);
    lua_error(L);
    return NULL;
  }
  lua_pushvalue(L, -1);
  f->future_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (f->future_ref == LUA_REFNIL) { /* new returned nil: nothing to settle */
    free(f);
    luaL_error(L, "poengine: poengine.future's new made no future");
    return NULL;
  }
  return f;
}

int po_lua_drain_tasks(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&drain_fn_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isfunction(L, -1)) return 0; /* the scheduler never loaded: no task can exist */
  lua_call(L, 0, 0);
  return 0;
}

typedef struct settle_args {
  po_lua_future *f;
  po_lua_push_fn push;
  void *data;
  const char *message, *code;
} settle_args;

/* settle(fut, "done", { n = k, ... }) or settle(fut, "failed", message, code). */
static int settle_protected(lua_State *L) {
  settle_args *a = lua_touserdata(L, 1);
  push_registered(L, &settle_fn_key);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->f->future_ref);
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
  call_on_loop(box, &settle_call_key, settle_protected, a);
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

static int detach_protected(lua_State *L) {
  po_lua_future *f = lua_touserdata(L, 1);
  push_registered(L, &detach_fn_key);
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->future_ref);
  lua_call(L, 1, 0);
  return 0;
}

void po_lua_future_drop(lua_State *L, po_lua_future *f) {
  if (!f) return;
  /* The future stays pending, without its cancel hook and the handle. */
  static const char key = 0;
  po_push_cfunction(L, &key, detach_protected);
  lua_pushlightuserdata(L, f);
  int rc = lua_pcall(L, 1, 0, 0);
  luaL_unref(L, LUA_REGISTRYINDEX, f->future_ref);
  f->canceled = 1;
  if (rc != 0) {
    lua_pop(L, 1);
    return; /* out of memory: the future still holds f, now inert */
  }
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
      {"now", l_now},           {"time", l_time}, {"step", l_step}, {"loop_alive", l_alive},
      {"register_future", l_register_future}, {NULL, NULL}};
  po_set_funcs(L, fns);
}
