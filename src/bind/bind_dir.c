/* What is in a directory, and what a path is, in the calling thread:
 * core.stat(path) → { type =, size =, mtime = } and core.list_dir(dir) →
 * { { name =, type =, size =, mtime = }, ... } (no "." or ".."), or nil,
 * message, code (the errno name). lstat, never following a link, so a
 * caller that walks a tree cannot be led out of it by one. */
#include "bind.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *errno_code(int e) {
  const char *name = strerrorname_np(e);
  return name ? name : "EIO";
}

static int push_errno(lua_State *L, const char *what, const char *path, int e) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s '%s': %s", what, path, strerror(e));
  lua_pushstring(L, errno_code(e));
  return 3;
}

static const char *type_name(mode_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "dir";
  if (S_ISLNK(mode)) return "link";
  return "other";
}

static void push_stat(lua_State *L, const struct stat *st) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, type_name(st->st_mode));
  lua_setfield(L, -2, "type");
  lua_pushnumber(L, (lua_Number)st->st_size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (lua_Number)st->st_mtim.tv_sec + (lua_Number)st->st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
}

static int l_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (lstat(path, &st) != 0) return push_errno(L, "po.files.stat: cannot stat", path, errno);
  push_stat(L, &st);
  return 1;
}

static int l_list_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return push_errno(L, "po.files.list: cannot list", path, errno);
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return push_errno(L, "po.files.list: cannot list", path, e);
  }
  lua_newtable(L);
  int n = 0;
  struct dirent *ent;
  errno = 0;
  while ((ent = readdir(d)) != NULL) {
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
    struct stat st;
    /* An entry removed between readdir and fstatat is simply not listed. */
    if (fstatat(dirfd(d), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    push_stat(L, &st);
    lua_pushstring(L, ent->d_name);
    lua_setfield(L, -2, "name");
    lua_rawseti(L, -2, ++n);
    errno = 0;
  }
  int e = errno;
  closedir(d);
  if (e != 0) {
    lua_pop(L, 1);
    return push_errno(L, "po.files.list: cannot list", path, e);
  }
  return 1;
}

void po_open_dir(lua_State *L) {
  static const luaL_Reg fns[] = {{"stat", l_stat}, {"list_dir", l_list_dir}, {NULL, NULL}};
  po_set_funcs(L, fns);
}
