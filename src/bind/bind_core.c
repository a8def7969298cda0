/* The poengine_core module: every C binding in one table. Lua code reaches it
 * as require "poengine_core"; scripts use the friendlier `po` table built on
 * it by lua/poengine/init.lua. */
#include "bind.h"
#include "embed.h"
#include "runtime.h"

#include "deps.h"

#include <luajit.h>

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

static int l_versions(lua_State *L) {
  const char *curl = po_curl_version();
  lua_createtable(L, 0, 5);
  lua_pushstring(L, POENGINE_VERSION);
  lua_setfield(L, -2, "poengine");
  lua_pushstring(L, LUAJIT_VERSION);
  lua_setfield(L, -2, "luajit");
  lua_pushstring(L, po_lmdb_version());
  lua_setfield(L, -2, "lmdb");
  lua_pushstring(L, po_cjson_version());
  lua_setfield(L, -2, "cjson");
  lua_pushstring(L, curl ? curl : "unavailable");
  lua_setfield(L, -2, "curl");
  return 1;
}

/* The names of the Lua modules compiled into the binary, sorted. */
static int l_embedded_modules(lua_State *L) {
  lua_newtable(L);
  int i = 0;
  for (const po_embedded_module *m = po_embedded_modules; m->name; m++) {
    lua_pushstring(L, m->name);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/* The path of the running executable (for scripts that start another
 * poengine: a validator running a spec, a worker process). */
static int l_executable(lua_State *L) {
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return po_push_error_named(L, "EIO", "cannot read /proc/self/exe: %s", strerror(errno));
  lua_pushlstring(L, path, (size_t)n);
  return 1;
}

/* isatty(fd): whether the descriptor (default 1, stdout) is a terminal. */
static int l_isatty(lua_State *L) {
  int fd = (int)luaL_optinteger(L, 1, 1);
  lua_pushboolean(L, isatty(fd) == 1);
  return 1;
}

static int l_lua_path(lua_State *L) {
  po_embed_push_override_path(L);
  return 1;
}

int luaopen_poengine_core(lua_State *L) {
  po_embed_install(L);
  static const luaL_Reg fns[] = {{"versions", l_versions},
                                 {"embedded_modules", l_embedded_modules},
                                 {"lua_path", l_lua_path},
                                 {"executable", l_executable},
                                 {"isatty", l_isatty},
                                 {NULL, NULL}};
  lua_newtable(L);
  lua_pushstring(L, POENGINE_VERSION);
  lua_setfield(L, -2, "version");
  po_set_funcs(L, fns);
  po_open_loop(L);
  po_open_json(L);
  po_open_metrics(L);
  po_open_store(L);
  po_open_cache(L);
  po_open_semantic(L);
  po_open_proc(L);
  po_open_pool(L);
  po_open_batch(L);
  po_open_http(L);
  po_open_fileio(L);
  return 1;
}
