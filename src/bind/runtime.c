#include "runtime.h"

#include "bind.h"
#include "embed.h"

/* os.exit([code [, close]]) with close defaulting to true: the state is
 * closed before the process exits, so finalizers run (stores flush what a
 * "batch" sync left, resources are released) as they do at a normal end. */
static int exit_closing(lua_State *L) {
  lua_settop(L, 2);
  if (lua_isnil(L, 2)) {
    lua_pushboolean(L, 1);
    lua_replace(L, 2);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 2, 0);
  return 0;
}

lua_State *po_runtime_new(void) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  lua_gc(L, LUA_GCSTOP, 0); /* opening the libraries allocates a lot at once */
  luaL_openlibs(L);
  lua_gc(L, LUA_GCRESTART, 0);
  po_embed_install(L);
  lua_getglobal(L, "os");
  lua_getfield(L, -1, "exit");
  lua_pushcclosure(L, exit_closing, 1);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_poengine_core);
  lua_setfield(L, -2, "poengine_core");
  lua_pop(L, 2);
  return L;
}
