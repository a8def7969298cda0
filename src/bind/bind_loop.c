/* The event loop as the Lua scheduler sees it (lua/poengine/future.lua):
 * clocks, one step of the reactor, and whether anything is still pending.
 * Each Lua state has its own loop, created on first use; on the main thread
 * that is the process's one reactor. */
#include "bind.h"
#include "bind_loop.h"

#include "clock.h"
#include "error.h"
#include "loop.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define LOOP_TYPE "poengine.loop"

typedef struct loop_box {
  po_loop *loop;
} loop_box;

static int loop_gc(lua_State *L) {
  loop_box *box = luaL_checkudata(L, 1, LOOP_TYPE);
  po_loop_free(box->loop);
  box->loop = NULL;
  return 0;
}

po_loop *po_lua_loop(lua_State *L) {
  static const char key = 0;
  lua_pushlightuserdata(L, (void *)&key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  loop_box *box = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (box) return box->loop;

  static const luaL_Reg meta[] = {{"__gc", loop_gc}, {NULL, NULL}};
  po_register_type(L, LOOP_TYPE, NULL, meta);
  lua_pushlightuserdata(L, (void *)&key);
  box = lua_newuserdata(L, sizeof *box);
  box->loop = NULL;
  luaL_getmetatable(L, LOOP_TYPE);
  lua_setmetatable(L, -2);
  int rc = po_loop_new(&box->loop);
  if (rc != 0) luaL_error(L, "poengine: cannot create the event loop: %s (%s)", po_strerror(rc), strerror(errno));
  lua_rawset(L, LUA_REGISTRYINDEX);
  return box->loop;
}

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
  int ran = 0;
  int rc = po_loop_run_once(po_lua_loop(L), timeout, &ran);
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
