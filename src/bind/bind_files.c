/* File I/O over src/core/fileio.c. On the worker pool:
 * core.read_files(paths [, root]) and core.write_files(files [, root [,
 * sync]]) return futures of per-file result lists (lua/poengine/files.lua
 * splits long lists and puts them back in order). In the calling thread:
 * po.write_file(path, data [, { sync =, parents = }]), one atomic write (a
 * temporary file beside the target, fsync'd, renamed over it), returning
 * true or nil, message, code (the errno name, such as "ENOENT"; "EINVAL"
 * for a path that names no file). */
#include "bind.h"
#include "bind_pool.h"

#include "error.h"
#include "fileio.h"
#include "strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct item {
  char *path;
  const char *content; /* write: points into the fileset's own copy */
  size_t content_len;
  int rc, sys_errno;
  po_strbuf data; /* read: the content */
} item;

typedef struct fileset {
  int writing, sync;
  char *root; /* NULL: not confined */
  int root_rc, root_errno;
  int n;
  item *items;
  char *contents; /* write: all contents, one block */
} fileset;

static void fileset_release(void *p) {
  fileset *b = p;
  for (int i = 0; i < b->n; i++) {
    free(b->items[i].path);
    po_strbuf_free(&b->items[i].data);
  }
  free(b->items);
  free(b->contents);
  free(b->root);
  free(b);
}

static void fileset_work(void *p) {
  fileset *b = p;
  po_root *root = NULL;
  if (b->root) {
    b->root_rc = po_root_open(b->root, b->writing, &root, &b->root_errno);
    if (b->root_rc != 0) return;
  }
  for (int i = 0; i < b->n; i++) {
    item *it = &b->items[i];
    if (b->writing)
      it->rc = po_file_write(root, it->path, it->content, it->content_len, b->sync, &it->sys_errno);
    else
      it->rc = po_file_read(root, it->path, &it->data, &it->sys_errno);
  }
  po_root_close(root);
}

static const char *errno_name(int e) {
  const char *name = strerrorname_np(e);
  return name ? name : "EIO";
}

static void push_error(lua_State *L, const char *code, const char *fmt, ...) {
  va_list ap;
  lua_createtable(L, 0, 2);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_setfield(L, -2, "err");
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
}

static int push_fileset(lua_State *L, void *p) {
  fileset *b = p;
  const char *verb = b->writing ? "write" : "read";
  lua_createtable(L, b->n, 0);
  for (int i = 0; i < b->n; i++) {
    item *it = &b->items[i];
    if (b->root_rc != 0) {
      push_error(L, b->root_rc == PO_EIO ? errno_name(b->root_errno) : po_errname(b->root_rc),
                 "cannot %s '%s': cannot open the root '%s': %s", verb, it->path, b->root,
                 b->root_rc == PO_EIO ? strerror(b->root_errno) : po_strerror(b->root_rc));
    } else if (it->rc == PO_EOUTSIDE) {
      push_error(L, "EOUTSIDE", "cannot %s '%s': the path leads outside the root '%s'", verb, it->path, b->root);
    } else if (it->rc == PO_EINVAL) {
      push_error(L, "EINVAL", "cannot %s '%s': not a file name", verb, it->path);
    } else if (it->rc == PO_EIO) {
      push_error(L, errno_name(it->sys_errno), "cannot %s '%s': %s", verb, it->path, strerror(it->sys_errno));
    } else if (it->rc != 0) {
      push_error(L, po_errname(it->rc), "cannot %s '%s': %s", verb, it->path, po_strerror(it->rc));
    } else {
      lua_createtable(L, 0, 1);
      if (b->writing) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "ok");
      } else {
        lua_pushlstring(L, it->data.data ? it->data.data : "", it->data.len);
        lua_setfield(L, -2, "content");
      }
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static char *dup_lstr(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* Builds the fileset from the list at index 1 (paths, or { path =, content = }
 * tables) and the root at index 2; raises on a bad argument. */
static fileset *fileset_new(lua_State *L, const char *fname, int writing) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)lua_objlen(L, 1);
  size_t total = 0;
  for (int i = 1; i <= n; i++) { /* check everything before allocating */
    lua_rawgeti(L, 1, i);
    if (writing) {
      if (!lua_istable(L, -1)) luaL_error(L, "%s: files[%d] must be a table { path =, content = }", fname, i);
      lua_getfield(L, -1, "path");
      lua_getfield(L, -2, "content");
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: files[%d].path must be a string", fname, i);
      if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: files[%d].content must be a string", fname, i);
      total += lua_objlen(L, -1);
      lua_pop(L, 2);
    } else if (lua_type(L, -1) != LUA_TSTRING) {
      luaL_error(L, "%s: paths[%d] must be a string, got %s", fname, i, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
  }
  if (!lua_isnil(L, 2) && lua_type(L, 2) != LUA_TSTRING)
    luaL_error(L, "%s: root must be a string, got %s", fname, luaL_typename(L, 2));
  fileset *b = calloc(1, sizeof *b);
  if (!b) luaL_error(L, "%s: out of memory", fname);
  b->writing = writing;
  b->sync = lua_toboolean(L, 3);
  b->items = calloc((size_t)(n ? n : 1), sizeof *b->items);
  b->contents = writing ? malloc(total ? total : 1) : NULL;
  size_t rootlen;
  const char *root = lua_tolstring(L, 2, &rootlen);
  b->root = root ? dup_lstr(root, rootlen) : NULL;
  int ok = b->items && (!writing || b->contents) && (!root || b->root);
  size_t at = 0;
  for (int i = 0; ok && i < n; i++) {
    item *it = &b->items[i];
    lua_rawgeti(L, 1, i + 1);
    if (writing) lua_getfield(L, -1, "path");
    size_t len;
    const char *path = lua_tolstring(L, -1, &len);
    it->path = dup_lstr(path, len);
    b->n = i + 1; /* from here fileset_release frees it */
    ok = it->path != NULL && strlen(it->path) == len;
    if (!ok && it->path) {
      lua_pop(L, writing ? 2 : 1);
      fileset_release(b);
      luaL_error(L, "%s: paths must not contain zero bytes", fname);
    }
    if (writing) {
      lua_getfield(L, -2, "content");
      const char *content = lua_tolstring(L, -1, &len);
      memcpy(b->contents + at, content, len);
      it->content = b->contents + at;
      it->content_len = len;
      at += len;
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
  if (!ok) {
    fileset_release(b);
    luaL_error(L, "%s: out of memory", fname);
  }
  return b;
}

static int l_read_files(lua_State *L) {
  lua_settop(L, 2);
  fileset *b = fileset_new(L, "po.files.read", 0);
  po_lua_pool_run(L, "po.files.read", fileset_work, push_fileset, fileset_release, b);
  return 1;
}

static int l_write_files(lua_State *L) {
  lua_settop(L, 3);
  fileset *b = fileset_new(L, "po.files.write", 1);
  po_lua_pool_run(L, "po.files.write", fileset_work, push_fileset, fileset_release, b);
  return 1;
}

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

void po_open_files(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"read_files", l_read_files}, {"write_files", l_write_files}, {"write_file", l_write_file}, {NULL, NULL}};
  po_set_funcs(L, fns);
}
