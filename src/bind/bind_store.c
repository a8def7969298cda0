/* poengine_core.store: record logs in the persistent store
 * (src/core/reclog.c over src/core/store.c), and checking and repairing a
 * store (src/core/store_check.c).
 *
 *   log = store.log(dir | nil, name [, { durability = "none" | "batch" | "full" }])
 *   report = store.check(dir | nil), store.repair(dir | nil)
 *
 * dir nil means the default store directory. Records are byte strings;
 * what they hold is the caller's business (the metrics collector writes a
 * versioned binary layout). */
#include "bind.h"

#include "error.h"
#include "reclog.h"
#include "store_check.h"
#include "strbuf.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TYPE "poengine.store_log"

typedef struct log_box {
  po_store *store; /* NULL once closed */
  po_reclog log;
  po_store_durability sync;
  char name[64];
} log_box;

static log_box *check_log(lua_State *L, int i, const char *method) {
  log_box *b = luaL_checkudata(L, i, LOG_TYPE);
  if (!b->store) luaL_error(L, "%s: the log is closed", method);
  return b;
}

static int store_failure(lua_State *L, int rc, const char *what) {
  return po_push_error(L, rc, "%s: %s", what, rc == PO_ESTORE || rc == PO_EMAPFULL || rc == PO_EPERM || rc == PO_ESCHEMA
                                                  ? po_store_last_error()
                                                  : po_strerror(rc));
}

static const char *const durabilities[] = {"full", "batch", "none", NULL};
static const po_store_durability durability_values[] = {PO_STORE_SYNC_FULL, PO_STORE_SYNC_BATCH, PO_STORE_SYNC_NONE};

/* default_dir(): the store directory used when none is given. */
static int l_default_dir(lua_State *L) {
  char dir[PATH_MAX];
  if (po_store_default_dir(dir, sizeof dir) != 0)
    return po_push_error(L, PO_EINVAL, "po.store.default_dir: no default store directory (set POENGINE_HOME or HOME)");
  lua_pushstring(L, dir);
  return 1;
}

/* Reads argument 1, a store directory or nil (the default one), into dir.
 * Returns 0, or the number of values pushed for a runtime failure. */
static int check_dir(lua_State *L, const char *fn, char dir[PATH_MAX]) {
  if (lua_isnoneornil(L, 1)) {
    if (po_store_default_dir(dir, PATH_MAX) != 0)
      return po_push_error(L, PO_EINVAL, "%s: no default store directory (set POENGINE_HOME or HOME)", fn);
  } else if (lua_type(L, 1) == LUA_TSTRING) {
    size_t n;
    const char *d = lua_tolstring(L, 1, &n);
    if (n == 0 || n >= PATH_MAX) return luaL_error(L, "%s: dir must be a non-empty path", fn);
    memcpy(dir, d, n + 1);
  } else {
    return luaL_error(L, "%s: dir must be a string or nil, got %s", fn, luaL_typename(L, 1));
  }
  return 0;
}

static int l_log(lua_State *L) {
  const char *fn = "po.store.log";
  char dir[PATH_MAX];
  int pushed = check_dir(L, fn, dir);
  if (pushed) return pushed;
  size_t nlen;
  const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &nlen) : NULL;
  if (!name || nlen == 0 || nlen >= sizeof ((log_box *)0)->name || strcmp(name, "meta") == 0)
    return luaL_error(L, "%s: name must be a string of 1 to 63 bytes other than 'meta'", fn);
  static const char *const allowed[] = {"durability", NULL};
  po_check_options(L, 3, fn, allowed);
  po_store_durability sync = PO_STORE_SYNC_NONE;
  if (!lua_isnoneornil(L, 3)) {
    lua_getfield(L, 3, "durability");
    if (!lua_isnil(L, -1)) {
      const char *d = lua_tostring(L, -1);
      int i = 0;
      while (durabilities[i] && !(d && lua_type(L, -1) == LUA_TSTRING && strcmp(d, durabilities[i]) == 0)) i++;
      if (!durabilities[i]) return luaL_error(L, "%s: durability must be 'full', 'batch' or 'none'", fn);
      sync = durability_values[i];
    }
    lua_pop(L, 1);
  }
  log_box *b = lua_newuserdata(L, sizeof *b);
  memset(b, 0, sizeof *b);
  luaL_getmetatable(L, LOG_TYPE);
  lua_setmetatable(L, -2);
  po_store *s;
  int rc = po_store_open(dir, NULL, &s);
  if (rc != 0) return store_failure(L, rc, fn);
  rc = po_reclog_open(s, name, &b->log);
  if (rc != 0) {
    po_store_close(s);
    return store_failure(L, rc, fn);
  }
  b->store = s;
  b->sync = sync;
  memcpy(b->name, name, nlen + 1);
  return 1;
}

static lua_Number check_count(lua_State *L, int i, const char *method, const char *what) {
  lua_Number n = luaL_checknumber(L, i);
  if (!(n >= 0) || n > 9007199254740992.0 || n != (lua_Number)(uint64_t)n)
    luaL_error(L, "%s: %s must be a whole number >= 0", method, what);
  return n;
}

/* log:append(record [, max_entries]) -> key, trimmed | nil, message, code */
static int l_append(lua_State *L) {
  log_box *b = check_log(L, 1, "log:append");
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  uint64_t max = lua_isnoneornil(L, 3) ? 0 : (uint64_t)check_count(L, 3, "log:append", "max_entries");
  uint64_t key, trimmed;
  int rc = po_reclog_append(&b->log, data, len, b->sync, max, &key, &trimmed);
  if (rc != 0) return store_failure(L, rc, "log:append");
  lua_pushnumber(L, (lua_Number)key);
  lua_pushnumber(L, (lua_Number)trimmed);
  return 2;
}

static int l_count(lua_State *L) {
  log_box *b = check_log(L, 1, "log:count");
  uint64_t n;
  int rc = po_reclog_count(&b->log, &n);
  if (rc != 0) return store_failure(L, rc, "log:count");
  lua_pushnumber(L, (lua_Number)n);
  return 1;
}

/* Entries are copied into a buffer while the read transaction is open and
 * turned into Lua values after it ends (a Lua error cannot leave it open). */
typedef struct entry_head {
  uint64_t key, len;
} entry_head;

static int copy_entry(uint64_t key, const void *data, size_t len, void *ud) {
  po_strbuf *out = ud;
  entry_head h = {key, len};
  int rc = po_strbuf_append(out, &h, sizeof h);
  return rc ? rc : po_strbuf_append(out, data, len);
}

/* Pushes values and keys, the two lists read into buf, and frees buf. */
static int push_entries(lua_State *L, po_strbuf *buf, int rc, const char *method) {
  if (rc != 0) {
    po_strbuf_free(buf);
    return store_failure(L, rc, method);
  }
  lua_newtable(L);
  lua_newtable(L);
  int n = 0;
  for (size_t at = 0; at < buf->len;) {
    entry_head h;
    memcpy(&h, buf->data + at, sizeof h);
    at += sizeof h;
    lua_pushlstring(L, buf->data + at, (size_t)h.len);
    lua_rawseti(L, -3, ++n);
    lua_pushnumber(L, (lua_Number)h.key);
    lua_rawseti(L, -2, n);
    at += (size_t)h.len;
  }
  po_strbuf_free(buf);
  return 2;
}

/* log:scan(after, limit) -> records, keys: up to limit entries with keys
 * above after, oldest first. */
static int l_scan(lua_State *L) {
  log_box *b = check_log(L, 1, "log:scan");
  uint64_t after = (uint64_t)check_count(L, 2, "log:scan", "after");
  size_t limit = (size_t)check_count(L, 3, "log:scan", "limit");
  po_strbuf buf;
  po_strbuf_init(&buf);
  return push_entries(L, &buf, po_reclog_scan(&b->log, after, limit, copy_entry, &buf), "log:scan");
}

/* log:tail(n) -> records, keys: the newest n entries, oldest first. */
static int l_tail(lua_State *L) {
  log_box *b = check_log(L, 1, "log:tail");
  size_t n = (size_t)check_count(L, 2, "log:tail", "n");
  po_strbuf buf;
  po_strbuf_init(&buf);
  return push_entries(L, &buf, po_reclog_tail(&b->log, n, copy_entry, &buf), "log:tail");
}

static int l_trim(lua_State *L) {
  log_box *b = check_log(L, 1, "log:trim");
  uint64_t max = (uint64_t)check_count(L, 2, "log:trim", "max_entries");
  uint64_t removed;
  int rc = po_reclog_trim(&b->log, max, b->sync, &removed);
  if (rc != 0) return store_failure(L, rc, "log:trim");
  lua_pushnumber(L, (lua_Number)removed);
  return 1;
}

static int l_clear(lua_State *L) {
  log_box *b = check_log(L, 1, "log:clear");
  int rc = po_reclog_clear(&b->log, b->sync);
  if (rc != 0) return store_failure(L, rc, "log:clear");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_sync(lua_State *L) {
  log_box *b = check_log(L, 1, "log:sync");
  int rc = po_store_sync(b->store);
  if (rc != 0) return store_failure(L, rc, "log:sync");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_path(lua_State *L) {
  lua_pushstring(L, po_store_path(check_log(L, 1, "log:path")->store));
  return 1;
}

static int l_name(lua_State *L) {
  lua_pushstring(L, check_log(L, 1, "log:name")->name);
  return 1;
}

static int l_close(lua_State *L) {
  log_box *b = luaL_checkudata(L, 1, LOG_TYPE);
  if (b->store) po_store_close(b->store);
  b->store = NULL;
  return 0;
}

/* Pushes { ok, file_size, problems = {...}, databases = { name = entries },
 * damaged = { name, ... } [, method, moved_to] }. */
static void push_report(lua_State *L, const po_store_report *r, int repaired) {
  lua_createtable(L, 0, 7);
  lua_pushboolean(L, r->ok);
  lua_setfield(L, -2, "ok");
  lua_pushnumber(L, (lua_Number)r->file_size);
  lua_setfield(L, -2, "file_size");
  lua_createtable(L, r->nproblems < PO_STORE_REPORT_MAX ? r->nproblems : PO_STORE_REPORT_MAX + 1, 0);
  int n = 0;
  for (; n < r->nproblems && n < PO_STORE_REPORT_MAX; n++) {
    lua_pushstring(L, r->problems[n]);
    lua_rawseti(L, -2, n + 1);
  }
  if (r->nproblems > n) {
    lua_pushfstring(L, "and %d more problems", r->nproblems - n);
    lua_rawseti(L, -2, n + 1);
  }
  lua_setfield(L, -2, "problems");
  lua_createtable(L, 0, r->ndbs);
  for (int i = 0; i < r->ndbs; i++) {
    lua_pushnumber(L, (lua_Number)r->dbs[i].entries);
    lua_setfield(L, -2, r->dbs[i].name);
  }
  lua_setfield(L, -2, "databases");
  lua_newtable(L);
  for (int i = 0, d = 0; i < r->ndbs; i++) {
    if (!r->dbs[i].damaged) continue;
    lua_pushstring(L, r->dbs[i].name);
    lua_rawseti(L, -2, ++d);
  }
  lua_setfield(L, -2, "damaged");
  if (repaired) {
    lua_pushstring(L, r->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, r->moved_to);
    lua_setfield(L, -2, "moved_to");
  }
}

typedef int (*check_fn)(const char *dir, po_store_report *r);

static int run_check(lua_State *L, const char *fn, check_fn run, int repaired) {
  char dir[PATH_MAX];
  int pushed = check_dir(L, fn, dir);
  if (pushed) return pushed;
  po_store_report *r = malloc(sizeof *r); /* some 30 KB: not on the stack */
  if (!r) return po_push_error(L, PO_ENOMEM, "%s: out of memory", fn);
  int rc = run(dir, r);
  if (rc == 0) push_report(L, r, repaired);
  free(r);
  if (rc == 0) return 1;
  /* Every failure of the check sets the store's error text, ENOENT too. */
  return po_push_error(L, rc, "%s: %s", fn, rc == PO_ENOMEM ? po_strerror(rc) : po_store_last_error());
}

/* check(dir) -> report | nil, message, code */
static int l_check(lua_State *L) { return run_check(L, "po.store.check", po_store_check, 0); }

/* repair(dir) -> report | nil, message, code */
static int l_repair(lua_State *L) { return run_check(L, "po.store.repair", po_store_repair, 1); }

void po_open_store(lua_State *L) {
  static const luaL_Reg methods[] = {{"append", l_append}, {"count", l_count}, {"scan", l_scan},
                                     {"tail", l_tail},     {"trim", l_trim},   {"clear", l_clear},
                                     {"sync", l_sync},     {"path", l_path},   {"name", l_name},
                                     {"close", l_close},   {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_close}, {NULL, NULL}};
  static const luaL_Reg fns[] = {
      {"log", l_log}, {"default_dir", l_default_dir}, {"check", l_check}, {"repair", l_repair}, {NULL, NULL}};
  po_register_type(L, LOG_TYPE, methods, meta);
  lua_newtable(L);
  po_set_funcs(L, fns);
  lua_setfield(L, -2, "store");
}
