/* po.write_file(path, data [, { sync =, parents = }]): one atomic file write
 * in the calling thread, over po_file_write_flags (src/core/fileio.c: a
 * temporary file beside the target, fsync'd, renamed over it). Returns true,
 * or nil, message, code (the errno name, such as "ENOENT" or "EACCES";
 * "EINVAL" for a path that names no file). */
#include "bind.h"

#include "error.h"
#include "fileio.h"

#include <string.h>

static const char *const write_options[] = {"sync", "parents", NULL};

/* opts[name] as a boolean, def when absent; anything else raises. */
static int bool_option(lua_State *L, int idx, const char *name, int def) {
  if (lua_isnoneornil(L, idx)) return def;
  lua_getfield(L, idx, name);
  int v = def;
  if (lua_isboolean(L, -1))
    v = lua_toboolean(L, -1);
  else if (!lua_isnil(L, -1))
    luaL_error(L, "po.write_file: %s must be a boolean, got %s", name, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static int l_write_file(lua_State *L) {
  size_t path_len, len;
  const char *path = lua_tolstring(L, 1, &path_len);
  if (lua_type(L, 1) != LUA_TSTRING)
    luaL_error(L, "po.write_file: path must be a string, got %s", luaL_typename(L, 1));
  if (strlen(path) != path_len) luaL_error(L, "po.write_file: path must not contain zero bytes");
  if (lua_type(L, 2) != LUA_TSTRING)
    luaL_error(L, "po.write_file: data must be a string, got %s", luaL_typename(L, 2));
  const char *data = lua_tolstring(L, 2, &len);
  po_check_options(L, 3, "po.write_file", write_options);
  unsigned flags = 0;
  if (bool_option(L, 3, "sync", 1)) flags |= PO_FILE_SYNC;
  if (bool_option(L, 3, "parents", 0)) flags |= PO_FILE_PARENTS;
  int sys_errno = 0;
  int rc = po_file_write_flags(NULL, path, data, len, flags, &sys_errno);
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc == PO_EINVAL)
    return po_push_error_named(L, "EINVAL", "po.write_file: cannot write '%s': not a file name", path);
  if (rc == PO_EIO) {
    const char *name = strerrorname_np(sys_errno);
    return po_push_error_named(L, name ? name : "EIO", "po.write_file: cannot write '%s': %s", path,
                               strerror(sys_errno));
  }
  return po_push_error(L, rc, "po.write_file: cannot write '%s': %s", path, po_strerror(rc));
}

void po_open_fileio(lua_State *L) {
  static const luaL_Reg fns[] = {{"write_file", l_write_file}, {NULL, NULL}};
  po_set_funcs(L, fns);
}
