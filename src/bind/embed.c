#include "embed.h"

#include "bind.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int is_poengine_module(const char *name) {
  return strcmp(name, "poengine") == 0 || strncmp(name, "poengine.", 9) == 0;
}

static int dir_exists(const char *path) { return access(path, R_OK | X_OK) == 0; }

/* The source tree's lua/ is used only by the binary in its own build
 * directory: an installed copy must never pick up stray files. */
static int running_from_build_dir(void) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return 0;
  exe[n] = '\0';
  size_t len = strlen(POENGINE_BUILD_DIR);
  return strncmp(exe, POENGINE_BUILD_DIR, len) == 0 && exe[len] == '/';
}

void po_embed_push_override_path(lua_State *L) {
  const char *env = getenv("POENGINE_LUA_PATH");
  if (env)
    lua_pushstring(L, env);
  else if (running_from_build_dir() && dir_exists(POENGINE_SOURCE_LUA_DIR))
    lua_pushstring(L, POENGINE_SOURCE_LUA_DIR);
  else
    lua_pushliteral(L, "");
}

/* Tries dir/a/b.lua then dir/a/b/init.lua for module "a.b"; on success leaves
 * the loaded chunk on the stack and returns 1. Syntax errors raise, naming
 * the file, as Lua's own searcher does. */
static int load_from_dir(lua_State *L, const char *dir, size_t dirlen, const char *name) {
  static const char *const suffixes[] = {".lua", "/init.lua"};
  for (int i = 0; i < 2; i++) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, dir, dirlen);
    luaL_addchar(&b, '/');
    for (const char *p = name; *p; p++) luaL_addchar(&b, *p == '.' ? '/' : *p);
    luaL_addstring(&b, suffixes[i]);
    luaL_pushresult(&b);
    const char *path = lua_tostring(L, -1);
    if (access(path, R_OK) != 0) {
      lua_pop(L, 1);
      continue;
    }
    if (luaL_loadfile(L, path) != 0)
      luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path, lua_tostring(L, -1));
    lua_remove(L, -2);
    return 1;
  }
  return 0;
}

static int searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (!is_poengine_module(name)) {
    lua_pushfstring(L, "\n\tnot a poengine module '%s'", name);
    return 1;
  }
  size_t len;
  const char *path = lua_tolstring(L, lua_upvalueindex(1), &len);
  const char *end = path + len;
  while (path < end) {
    const char *sep = memchr(path, ';', (size_t)(end - path));
    size_t dirlen = sep ? (size_t)(sep - path) : (size_t)(end - path);
    if (dirlen > 0 && load_from_dir(L, path, dirlen, name)) return 1;
    path += dirlen + 1;
  }
  for (const po_embedded_module *m = po_embedded_modules; m->name; m++) {
    if (strcmp(m->name, name) != 0) continue;
    if (luaL_loadbuffer(L, (const char *)m->bytecode, m->size, name) != 0)
      luaL_error(L, "error loading embedded module '%s':\n\t%s", name, lua_tostring(L, -1));
    return 1;
  }
  lua_pushfstring(L, "\n\tno embedded module '%s'", name);
  return 1;
}

void po_embed_install(lua_State *L) {
  static const char marker = 0;
  lua_pushlightuserdata(L, (void *)&marker);
  lua_rawget(L, LUA_REGISTRYINDEX);
  int installed = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (installed) return;

  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaders");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 2);
    return;
  }
  /* Shift loaders[2..n] up by one and put ours at 2, right after preload. */
  int n = (int)lua_objlen(L, -1);
  for (int i = n; i >= 2; i--) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  po_embed_push_override_path(L);
  lua_pushcclosure(L, searcher, 1);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);

  lua_pushlightuserdata(L, (void *)&marker);
  lua_pushboolean(L, 1);
  lua_rawset(L, LUA_REGISTRYINDEX);
}
