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
  close_hook *hooks; /* run when the state closes, before the loop is freed */
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
static const char future_ctor_key = 0;

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

/* ---- futures settled from C ---- */

static int cancel_trampoline(lua_State *L) {
  po_lua_future *f = lua_touserdata(L, lua_upvalueindex(1));
  if (f && !f->canceled && f->on_cancel) {
    f->canceled = 1;
    f->on_cancel(f->ud);
  }
  return 0;
}

po_lua_future *po_lua_future_new(lua_State *L, po_lua_cancel_fn on_cancel, void *ud) {
  loop_box *box = state_loop(L);
  po_lua_future *f = malloc(sizeof *f);
  if (!f) luaL_error(L, "poengine: out of memory");
  *f = (po_lua_future){.box = box, .future_ref = LUA_NOREF, .on_cancel = on_cancel, .ud = ud};
  /* The constructor is looked up once per state, then kept in the registry. */
  lua_pushlightuserdata(L, (void *)&future_ctor_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "poengine.future");
    if (lua_pcall(L, 1, 1, 0) != 0) {
      free(f);
      lua_error(L);
    }
    lua_getfield(L, -1, "future");
    lua_remove(L, -2);
    lua_pushlightuserdata(L, (void *)&future_ctor_key);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  if (lua_pcall(L, 0, 1, 0) != 0) {
    free(f);
    lua_error(L);
  }
  if (on_cancel) {
    lua_pushlightuserdata(L, f);
    lua_pushcclosure(L, cancel_trampoline, 1);
    lua_setfield(L, -2, "on_cancel");
  }
  lua_pushvalue(L, -1);
  f->future_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return f;
}

typedef struct settle_args {
  po_lua_future *f;
  const char *method;
  po_lua_push_fn push;
  void *data;
  const char *message, *code;
} settle_args;

/* Detaches the cancel hook from the future on top of the stack: once the
 * handle is freed, a later fut:cancel() must not reach it. */
static void clear_cancel_hook(lua_State *L) {
  lua_pushnil(L);
  lua_setfield(L, -2, "on_cancel");
}

static int settle_protected(lua_State *L) {
  settle_args *a = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->f->future_ref);
  clear_cancel_hook(L);
  lua_getfield(L, -1, a->method);
  lua_insert(L, -2);
  int nargs = 1;
  if (a->push) {
    nargs += a->push(L, a->data);
  } else {
    lua_pushstring(L, a->message);
    lua_pushstring(L, a->code);
    nargs += 2;
  }
  lua_call(L, nargs, 0);
  return 0;
}

static void settle(settle_args *a) {
  po_lua_future *f = a->f;
  loop_box *box = f->box;
  lua_State *L = box->current;
  lua_pushcfunction(L, settle_protected);
  lua_pushlightuserdata(L, a);
  if (po_pcall(L, 1, 0) != 0) {
    if (box->error_ref == LUA_NOREF)
      box->error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
      lua_pop(L, 1);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, f->future_ref);
  free(f);
}

void po_lua_future_resolve(po_lua_future *f, po_lua_push_fn push, void *data) {
  settle_args a = {.f = f, .method = "resolve", .push = push, .data = data};
  settle(&a);
}

void po_lua_future_reject(po_lua_future *f, const char *message, const char *code) {
  settle_args a = {.f = f, .method = "reject", .message = message, .code = code};
  settle(&a);
}

lua_State *po_lua_future_state(po_lua_future *f) { return f->box->current; }

void po_lua_future_drop(lua_State *L, po_lua_future *f) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->future_ref);
  if (lua_istable(L, -1)) clear_cancel_hook(L);
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, f->future_ref);
  free(f);
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
