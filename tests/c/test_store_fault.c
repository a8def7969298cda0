/* The store (src/core/store.c), its record logs (reclog.c), the check and
 * repair (store_check.c, store_meta.c) and their Lua binding (bind_store.c)
 * under injected faults (tests/c/fault.h): each LMDB call, allocation and
 * file operation they make fails once in turn. Each time the call reports
 * the documented code, nothing stays open, and what was stored is intact:
 * a log keeps its records, a failed repair leaves the old data file as it
 * was, a successful one leaves a store that checks clean. */
#include "error.h"
#include "reclog.h"
#include "runtime.h"
#include "store.h"
#include "store_check.h"

#include "../fixtures/store/corrupt.h"
#include "../fixtures/store/raw.h"
#include "fault.h"
#include "fault_prepared.h"
#include "harness.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lmdb.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[64];

static void sh(const char *fmt, const char *a, const char *b) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, fmt, a, b);
  if (system(cmd) != 0) abort();
}

static int same_file(const char *a, const char *b) {
  char cmd[2 * PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
  return system(cmd) == 0;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* ---- opening ------------------------------------------------------------------------ */

typedef struct open_case {
  char dir[128];
  int code; /* what a failure must return */
} open_case;

static void fresh_dir(void *arg) {
  open_case *c = arg;
  sh("rm -rf '%s'%s", c->dir, "");
}

static int open_close(void *arg) {
  po_store *s;
  int rc = po_store_open(((open_case *)arg)->dir, NULL, &s);
  if (rc == 0) po_store_close(s);
  return rc;
}

/* A failed open leaves nothing open and nothing that stops the next one. */
static int opened_or_refused(void *arg, int rc, long fired) {
  open_case *c = arg;
  if (rc != 0 && (!fired || rc != c->code)) {
    fprintf(stderr, "open: rc %d, expected %d (%s)\n", rc, c->code, po_store_last_error());
    return 1;
  }
  return po_store_is_open(c->dir) || open_close(c) != 0;
}

static void open_fails_cleanly(void) {
  open_case c;
  snprintf(c.dir, sizeof c.dir, "%s/new/store", base);
  fault_step step = {"open", fresh_dir, open_close, opened_or_refused};
  static const char *const mdb[] = {"mdb_env_set_mapsize", "mdb_env_open", "mdb_txn_begin", "mdb_dbi_open",
                                    "mdb_get", "mdb_put", "mdb_txn_commit", NULL};
  c.code = PO_ESTORE;
  for (int i = 0; mdb[i]; i++) CHECK(fault_sweep_prepared(&step, mdb[i], EIO, &c, 20) >= 1);
  c.code = PO_ENOMEM;
  CHECK(fault_sweep_prepared(&step, "malloc", ENOMEM, &c, 20) >= 1);
  c.code = PO_EPERM; /* a directory that cannot be made */
  CHECK(fault_sweep_prepared(&step, "mkdir", EIO, &c, 20) >= 1);
  /* LMDB's own errors map to codes: memory, permission. */
  fresh_dir(&c);
  fault_arm("mdb_env_open", 1, 0, ENOMEM);
  CHECK_EQ_INT(open_close(&c), PO_ENOMEM);
  fault_arm("mdb_env_open", 1, 0, EACCES);
  CHECK_EQ_INT(open_close(&c), PO_EPERM);
  CHECK(strstr(po_store_last_error(), "cannot open the store in") != NULL);
  fresh_dir(&c);
  fault_arm("mkdir", 1, 0, ENOMEM);
  CHECK_EQ_INT(open_close(&c), PO_ENOMEM);
  /* The meta pages cannot be read: LMDB is left to open the file. */
  fault_arm("open", 1, 0, EIO);
  CHECK_EQ_INT(open_close(&c), 0);
  CHECK_EQ_INT(fault_fired(), 1);
  fault_disarm();
}

/* ---- transactions ----------------------------------------------------------------- */

typedef struct put_ctx {
  MDB_dbi dbi;
  int calls, full_until;
} put_ctx;

static int put_x(MDB_txn *txn, void *ud) {
  put_ctx *c = ud;
  if (++c->calls <= c->full_until) return PO_EMAPFULL;
  MDB_val k = {1, "x"}, v = {1, "y"};
  return po_store_error(mdb_put(txn, c->dbi, &k, &v, 0));
}

static void transactions_fail_cleanly(void) {
  char dir[128];
  snprintf(dir, sizeof dir, "%s/txn", base);
  po_store *s;
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  put_ctx c = {0};
  REQUIRE(po_store_dbi(s, "things", 0, &c.dbi) == 0);
  /* Another process grew the map: the begin adopts its size, a few times
   * at most; a map that never satisfies LMDB means damage. */
  MDB_txn *txn;
  fault_arm("mdb_txn_begin", 1, 0, MDB_MAP_RESIZED);
  CHECK_EQ_INT(po_store_read_begin(s, &txn), 0);
  po_store_read_end(s, txn);
  fault_arm("mdb_txn_begin", 1, 1, MDB_MAP_RESIZED);
  CHECK_EQ_INT(po_store_read_begin(s, &txn), PO_ESTORE);
  CHECK(strstr(po_store_last_error(), "asks for a map larger") != NULL);
  CHECK_EQ_INT(fault_fired(), 9);
  /* A commit that finds the map full grows it and runs the write again. */
  fault_arm("mdb_txn_commit", 1, 0, MDB_MAP_FULL);
  CHECK_EQ_INT(po_store_write(s, PO_STORE_SYNC_NONE, put_x, &c), 0);
  CHECK_EQ_INT(c.calls, 2);
  fault_arm("mdb_txn_commit", 1, 0, EIO);
  CHECK_EQ_INT(po_store_write(s, PO_STORE_SYNC_NONE, put_x, &c), PO_ESTORE);
  /* Growing the map fails. */
  c.calls = 0;
  c.full_until = 1;
  fault_arm("mdb_env_set_mapsize", 1, 0, EIO);
  CHECK_EQ_INT(po_store_write(s, PO_STORE_SYNC_NONE, put_x, &c), PO_ESTORE);
  CHECK_EQ_INT(c.calls, 1);
  /* A database that cannot be opened is not remembered as open. */
  MDB_dbi dbi;
  fault_arm("mdb_dbi_open", 1, 0, EIO);
  CHECK_EQ_INT(po_store_dbi(s, "other", 0, &dbi), PO_ESTORE);
  fault_arm("mdb_txn_commit", 1, 0, EIO);
  CHECK_EQ_INT(po_store_dbi(s, "other", 0, &dbi), PO_ESTORE);
  fault_arm("mdb_txn_begin", 1, 0, EIO);
  CHECK_EQ_INT(po_store_dbi(s, "other", 0, &dbi), PO_ESTORE);
  fault_disarm();
  CHECK_EQ_INT(po_store_dbi(s, "other", 0, &dbi), 0);
  po_store_close(s);
}

/* ---- record logs ---------------------------------------------------------------------- */

typedef struct log_case {
  po_store *s;
  po_reclog log;
} log_case;

static int count_visit(uint64_t key, const void *data, size_t len, void *ctx) {
  (void)key, (void)data, (void)len;
  ++*(int *)ctx;
  return 0;
}

/* Three records, keys 1 to 3 (the log cleared first). */
static void three_records(void *arg) {
  log_case *c = arg;
  if (po_reclog_clear(&c->log, PO_STORE_SYNC_NONE) != 0) abort();
  for (int i = 0; i < 3; i++)
    if (po_reclog_append(&c->log, "rec", 3, PO_STORE_SYNC_NONE, 0, NULL, NULL) != 0) abort();
}

/* Each operation either works or fails with PO_ESTORE, changing nothing. */
static int log_ops(void *arg) {
  log_case *c = arg;
  int n = 0;
  uint64_t key, trimmed, count;
  int rc = po_reclog_scan(&c->log, 0, 10, count_visit, &n);
  if (rc == 0 && n != 3) return 99;
  n = 0;
  if (rc == 0) rc = po_reclog_tail(&c->log, 2, count_visit, &n);
  if (rc == 0 && n != 2) return 99;
  if (rc == 0) rc = po_reclog_count(&c->log, &count);
  if (rc == 0) rc = po_reclog_append(&c->log, "new", 3, PO_STORE_SYNC_NONE, 2, &key, &trimmed);
  if (rc == 0 && (trimmed != 2 || key != 4)) return 99;
  return rc;
}

static int log_intact(void *arg, int rc, long fired) {
  log_case *c = arg;
  uint64_t count;
  if (po_reclog_count(&c->log, &count) != 0) return 1;
  if (rc == 0) return count == 2 ? 0 : 1;
  return fired && rc == PO_ESTORE && count == 3 ? 0 : 1;
}

static void logs_fail_cleanly(void) {
  char dir[128];
  snprintf(dir, sizeof dir, "%s/log", base);
  log_case c;
  REQUIRE(po_store_open(dir, NULL, &c.s) == 0);
  REQUIRE(po_reclog_open(c.s, "events", &c.log) == 0);
  fault_step step = {"log", three_records, log_ops, log_intact};
  static const char *const names[] = {"mdb_txn_begin", "mdb_cursor_open", "mdb_cursor_get", "mdb_put",
                                      "mdb_cursor_del", "mdb_txn_commit", NULL};
  for (int i = 0; names[i]; i++) CHECK(fault_sweep_prepared(&step, names[i], EIO, &c, 40) >= 1);
  po_reclog other;
  fault_arm("mdb_dbi_open", 1, 0, EIO);
  CHECK_EQ_INT(po_reclog_open(c.s, "other", &other), PO_ESTORE);
  fault_disarm();
  CHECK_EQ_INT(po_reclog_open(c.s, "", &other), PO_EINVAL);
  po_store_close(c.s);
}

/* ---- check and repair ------------------------------------------------------------------- */

typedef struct repair_case {
  char dir[128], original[160], data[160];
  int from_snapshot; /* the newest meta page is damaged */
  uint64_t expect;   /* the records of "things" a repair keeps */
  po_store_report r;
} repair_case;

/* A store whose "things" holds n records in transactions of 100. */
static int fill(MDB_txn *txn, void *ud) {
  int *from_n = ud;
  MDB_dbi dbi = (MDB_dbi)from_n[2];
  for (int i = from_n[0]; i < from_n[0] + from_n[1]; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%06d", i);
    MDB_val k = {strlen(key), key}, v = {5, "value"};
    int rc = mdb_put(txn, dbi, &k, &v, 0);
    if (rc != 0) return po_store_error(rc);
  }
  return 0;
}

static void make_store(const char *dir, int n, int per_txn) {
  po_store *s;
  MDB_dbi dbi;
  if (po_store_open(dir, NULL, &s) != 0 || po_store_dbi(s, "things", 0, &dbi) != 0) abort();
  for (int done = 0; done < n; done += per_txn) {
    int ctx[3] = {done, n - done < per_txn ? n - done : per_txn, (int)dbi};
    if (po_store_write(s, PO_STORE_SYNC_FULL, fill, ctx) != 0) abort();
  }
  po_store_close(s);
}

static void put_back(void *arg) {
  repair_case *c = arg;
  sh("rm -rf '%s' && mkdir '%s'", c->dir, c->dir);
  sh("cp '%s' '%s'", c->original, c->data);
}

static int repair(void *arg) {
  repair_case *c = arg;
  return po_store_repair(c->dir, &c->r);
}

/* The repair kept every record, or its report says which it could not read. */
static int nothing_lost_unsaid(const repair_case *c) {
  for (int i = 0; i < c->r.ndbs; i++)
    if (strcmp(c->r.dbs[i].name, "things") == 0 && c->r.dbs[i].entries == c->expect) return 1;
  for (int i = 0; i < c->r.nproblems && i < PO_STORE_REPORT_MAX; i++)
    if (strstr(c->r.problems[i], "unreadable") || strstr(c->r.problems[i], "left out") ||
        strstr(c->r.problems[i], "nothing was copied"))
      return 1;
  return 0;
}

/* Success: the store checks clean. Failure: a documented code, the old
 * file in place unchanged, no work directory left. */
static int repaired_or_untouched(void *arg, int rc, long fired) {
  repair_case *c = arg;
  char path[192];
  snprintf(path, sizeof path, "%s/.repair-new", c->dir);
  int left = exists(path);
  snprintf(path, sizeof path, "%s/.repair-snapshot", c->dir);
  left |= exists(path);
  if (left) fprintf(stderr, "repair left its work directory behind\n");
  if (rc == 0) {
    po_store_report r;
    int ok = !left && po_store_check(c->dir, &r) == 0 && r.ok && nothing_lost_unsaid(c);
    if (!ok) fprintf(stderr, "repaired store lost records or does not check clean (%s)\n", c->r.method);
    return !ok;
  }
  if (!fired || (rc != PO_ESTORE && rc != PO_EIO && rc != PO_ENOMEM)) {
    fprintf(stderr, "repair: rc %d (%s)\n", rc, po_store_last_error());
    return 1;
  }
  return left || !same_file(c->data, c->original);
}

static void repair_case_for(repair_case *c, const char *name, int records, int per_txn) {
  c->expect = c->from_snapshot ? (uint64_t)(records - per_txn) : (uint64_t)records;
  snprintf(c->dir, sizeof c->dir, "%s/%s", base, name);
  snprintf(c->original, sizeof c->original, "%s/%s.original", base, name);
  snprintf(c->data, sizeof c->data, "%s/data.mdb", c->dir);
  make_store(c->dir, records, per_txn);
  if (c->from_snapshot)
    corrupt_flip(c->dir, corrupt_newest_meta(c->dir) + META_LAST_PG, 60);
  else
    corrupt_db_count(c->dir, "things"); /* reads whole, but the compacting copy is not trusted */
  sh("cp '%s' '%s'", c->data, c->original);
}

static void repairs_fail_cleanly(void) {
  fault_step step = {"repair", put_back, repair, repaired_or_untouched};
  static const char *const names[] = {"mdb_env_open", "mdb_env_set_mapsize", "mdb_txn_begin", "mdb_dbi_open",
                                      "mdb_cursor_open", "mdb_txn_commit", "mkdir", "rename", "open", NULL};
  repair_case c = {.from_snapshot = 0};
  repair_case_for(&c, "records", 120, 100);
  for (int i = 0; names[i]; i++) {
    long runs = fault_sweep_prepared(&step, names[i], EIO, &c, 300);
    if (runs < 1) fprintf(stderr, "repair: %s: %ld runs\n", names[i], runs);
    CHECK(runs >= 1);
  }
  /* Every record's put and read behaves alike: the first and later ones
   * (the 200th read is the copy's, after the check's 120). */
  static const char *const per_record[] = {"mdb_put", "mdb_cursor_get", NULL};
  static const long last_nth[] = {100, 200};
  for (int i = 0; per_record[i]; i++) {
    for (long nth = 1; nth <= last_nth[i]; nth = nth == 1 ? 100 : nth + 100) {
      put_back(&c);
      fault_arm(per_record[i], nth, 0, EIO);
      int rc = repair(&c);
      long fired = fault_fired();
      fault_disarm();
      CHECK(fired == 1 && repaired_or_untouched(&c, rc, fired) == 0);
    }
  }
  /* LMDB finds damage the meta pages did not show: nothing reads, the new
   * store is empty, the old file is kept aside. */
  put_back(&c);
  fault_arm("mdb_env_open", 1, 0, MDB_CORRUPTED);
  CHECK_EQ_INT(repair(&c), 0);
  fault_disarm();
  CHECK_EQ_STR(c.r.method, "new empty store");
  CHECK(exists(c.r.moved_to) && same_file(c.r.moved_to, c.original));
  /* More records than one copy transaction holds. */
  repair_case big = {.from_snapshot = 0};
  repair_case_for(&big, "big", 10001, 5000);
  CHECK(fault_sweep_prepared(&step, "mdb_txn_commit", EIO, &big, 10) >= 2);
  CHECK(fault_sweep_prepared(&step, "mdb_txn_begin", EIO, &big, 10) >= 2);
  /* From the older meta page's snapshot: writing the snapshot fails. */
  repair_case snap = {.from_snapshot = 1};
  repair_case_for(&snap, "snapshot", 300, 100);
  static const char *const io[] = {"open", "read", "write", "mkdir", NULL};
  for (int i = 0; io[i]; i++) CHECK(fault_sweep_prepared(&step, io[i], EIO, &snap, 50) >= 1);
}

/* A check never fails for a fault: it reports what it could not read. */
typedef struct check_case {
  char dir[128];
} check_case;

static int check_now(void *arg) {
  po_store_report r;
  int rc = po_store_check(((check_case *)arg)->dir, &r);
  return rc != 0 ? rc : r.ok ? 0 : 1;
}

static int reported(void *arg, int rc, long fired) {
  (void)arg;
  if (!fired) return rc;
  return rc == 1 || rc == PO_ENOMEM ? 0 : 1;
}

/* The meta pages' own read failing is left to LMDB, which opens the file. */
static int reported_or_tolerated(void *arg, int rc, long fired) { return rc == 0 ? 0 : reported(arg, rc, fired); }

static void checks_report_faults(void) {
  check_case c;
  snprintf(c.dir, sizeof c.dir, "%s/check", base);
  make_store(c.dir, 10, 10);
  fault_step step = {"check", NULL, check_now, reported};
  static const char *const names[] = {"mdb_env_open", "mdb_txn_begin", "mdb_dbi_open", "mdb_cursor_open",
                                      "mdb_cursor_get", "malloc", NULL};
  for (int i = 0; names[i]; i++) CHECK(fault_sweep_prepared(&step, names[i], EIO, &c, 40) >= 1);
  fault_step tolerant = {"check", NULL, check_now, reported_or_tolerated};
  CHECK_EQ_INT(fault_sweep_prepared(&tolerant, "open", EIO, &c, 40), 2);
}

/* ---- the Lua binding ------------------------------------------------------------------ */

static lua_State *L;
static char lua_dir[128];

/* Every call works or returns nil, a message and EXPECT; the script stops
 * at the first failure and returns how many calls failed. */
static const char *const script =
    "local po = require 'poengine'\n"
    "local dir, expect = ...\n"
    "local function ok(v, msg, code)\n"
    "  if v == nil then\n"
    "    assert(code == expect, tostring(msg) .. ' ' .. tostring(code))\n"
    "    assert(type(msg) == 'string' and msg:find(':', 1, true), msg)\n"
    "    error({failed = true})\n"
    "  end\n"
    "  return v\n"
    "end\n"
    "local r, e = pcall(function()\n"
    "  local log = ok(po.store.log(dir, 'events'))\n"
    "  ok(log:append('one', 5)); ok(log:append('two'))\n"
    "  ok(log:count()); ok(log:scan(0, 10)); ok(log:tail(1))\n"
    "  ok(log:trim(1)); ok(log:sync()); ok(log:clear())\n"
    "  log:close()\n"
    "  local report = ok(po.store.check(dir))\n"
    "  if not report.ok then error({failed = true}) end\n"
    "end)\n"
    "if r then return 0 end\n"
    "if type(e) == 'table' and e.failed then return 1 end\n"
    "error(e, 0)\n";

static int run_script(void *arg) {
  const char *expect = arg;
  if (luaL_loadstring(L, script) != 0) return -1;
  lua_pushstring(L, lua_dir);
  lua_pushstring(L, expect);
  if (lua_pcall(L, 2, 1, 0) != 0) {
    fprintf(stderr, "script: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  int failed = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT, 0); /* a log left open by a failure closes */
  return failed;
}

static int script_right(void *arg, int rc, long fired) {
  (void)arg;
  return rc < 0 || (rc == 1) != (fired > 0);
}

static void the_binding_returns_failures(void) {
  L = po_runtime_new();
  REQUIRE(L != NULL);
  snprintf(lua_dir, sizeof lua_dir, "%s/lua", base);
  REQUIRE(run_script("none") == 0);
  static const char *const names[] = {"mdb_txn_begin", "mdb_cursor_open", "mdb_cursor_get", "mdb_put",
                                      "mdb_txn_commit", "mdb_dbi_open", NULL};
  for (int i = 0; names[i]; i++) {
    fault_step step = {names[i], NULL, run_script, script_right};
    CHECK(fault_sweep_prepared(&step, names[i], EIO, "ESTORE", 60) >= 1);
  }
  fault_step step = {"malloc", NULL, run_script, script_right};
  CHECK(fault_sweep_prepared(&step, "malloc", ENOMEM, "ENOMEM", 60) >= 1);
  lua_close(L);
}

/* A report with more problems than it keeps says how many more; a name
 * that is no database is listed as damaged. */
static void the_binding_reports_a_crowded_store(void) {
  char dir[128];
  snprintf(dir, sizeof dir, "%s/crowded", base);
  REQUIRE(mkdir(dir, 0700) == 0 && raw_store(dir, 3, 40) == 0);
  L = po_runtime_new();
  REQUIRE(L != NULL);
  static const char *const check =
      "local po = require 'poengine'\n"
      "local r = assert(po.store.check(...))\n"
      "assert(r.ok == false, 'ok')\n"
      "assert(#r.problems == 33, #r.problems)\n"
      "assert(r.problems[33] == 'and 10 more problems', r.problems[33])\n"
      "assert(#r.damaged == 1 and r.damaged[1] == 'junk', tostring(r.damaged[1]))\n"
      "assert(r.databases.db02 == 1)\n";
  CHECK(luaL_loadstring(L, check) == 0);
  lua_pushstring(L, dir);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    CHECK(0);
  }
  lua_close(L);
}

int main(void) {
  strcpy(base, "/tmp/po-store-fault-XXXXXX");
  if (!mkdtemp(base)) return 1;
  RUN(open_fails_cleanly);
  RUN(transactions_fail_cleanly);
  RUN(logs_fail_cleanly);
  RUN(checks_report_faults);
  RUN(repairs_fail_cleanly);
  RUN(the_binding_returns_failures);
  RUN(the_binding_reports_a_crowded_store);
  sh("rm -rf '%s'%s", base, "");
  return TEST_SUMMARY();
}
