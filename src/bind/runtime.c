#include "runtime.h"

#include "bind.h"
#include "embed.h"

lua_State *po_runtime_new(void) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  lua_gc(L, LUA_GCSTOP, 0); /* opening the libraries allocates a lot at once */
  luaL_openlibs(L);
  lua_gc(L, LUA_GCRESTART, 0);
  po_embed_install(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_poengine_core);
  lua_setfield(L, -2, "poengine_core");
  lua_pop(L, 2);
  return L;
}
