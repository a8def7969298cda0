/* Tests for src/core/store_check.c: a sound store checks clean; each kind of
 * damage of issue 14 is named; a repair keeps the old file, recovers what
 * reads, and leaves a store that opens. */
#include "error.h"
#include "store.h"
#include "store_check.h"

#include "harness.h"
#include "../fixtures/store/corrupt.h"
#include "../fixtures/store/raw.h"

#include <limits.h>
#include <lmdb.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *temp_dir(void) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/po_store_check_XXXXXX");
  return mkdtemp(path);
}

static void remove_dir(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

typedef struct fill_ctx {
  MDB_dbi dbi;
  int from, n;
} fill_ctx;

static int fill(MDB_txn *txn, void *ud) {
  fill_ctx *c = ud;
  for (int i = 0; i < c->n; i++) {
    char key[16], value[64];
    snprintf(key, sizeof key, "k%05d", c->from + i);
    snprintf(value, sizeof value, "value %d", c->from + i);
    MDB_val k = {strlen(key), key}, v = {strlen(value), value};
    int rc = mdb_put(txn, c->dbi, &k, &v, 0);
    if (rc != 0) return po_store_error(rc);
  }
  return 0;
}

/* A store with a database "things" of n records (one transaction per 100). */
static void make_store(const char *dir, int n) {
  po_store *s;
  if (po_store_open(dir, NULL, &s) != 0) return;
  fill_ctx c = {0, 0, 0};
  po_store_dbi(s, "things", 0, &c.dbi);
  for (int done = 0; done < n; done += 100) {
    c.from = done;
    c.n = n - done < 100 ? n - done : 100;
    po_store_write(s, PO_STORE_SYNC_FULL, fill, &c);
  }
  po_store_close(s);
}

static const po_store_db_report *db(const po_store_report *r, const char *name) {
  for (int i = 0; i < r->ndbs; i++)
    if (strcmp(r->dbs[i].name, name) == 0) return &r->dbs[i];
  return NULL;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static void a_sound_store_checks_clean(void) {
  char *dir = temp_dir();
  make_store(dir, 250);
  po_store_report r;
  REQUIRE(po_store_check(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 1);
  CHECK_EQ_INT(r.nproblems, 0);
  REQUIRE(db(&r, "things") && db(&r, "meta"));
  CHECK_EQ_INT(db(&r, "things")->entries, 250);
  CHECK_EQ_INT(db(&r, "meta")->entries, 1);
  /* Open in this process too: the check shares the handle. */
  po_store *s;
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  CHECK(po_store_check(dir, &r) == 0 && r.ok);
  CHECK(po_store_repair(dir, &r) == PO_ESTORE); /* never under an open handle */
  CHECK(strstr(po_store_last_error(), "close it first") != NULL);
  po_store_close(s);
  remove_dir(dir);
}

static void no_store_is_enoent(void) {
  char *dir = temp_dir();
  po_store_report r;
  CHECK(po_store_check(dir, &r) == PO_ENOENT);
  CHECK(po_store_repair(dir, &r) == PO_ENOENT);
  CHECK(!exists(dir) || rmdir(dir) == 0); /* nothing was created in it */
}

static void damage_is_named(void) {
  char *dir = temp_dir();
  make_store(dir, 10);
  corrupt_flip(dir, corrupt_newest_meta(dir) + META_LAST_PG, 60);
  po_store_report r;
  REQUIRE(po_store_check(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 0);
  REQUIRE(r.nproblems == 2);
  CHECK(strstr(r.problems[0], "claims") != NULL);
  CHECK(strstr(r.problems[1], "is intact") != NULL);
  CHECK_EQ_INT(r.ndbs, 0);
  remove_dir(dir);
}

/* The newest meta page damaged: the older one's snapshot is recovered. */
static void repair_recovers_the_previous_snapshot(void) {
  char *dir = temp_dir();
  make_store(dir, 300); /* three transactions of 100: the older snapshot has 200 */
  corrupt_flip(dir, corrupt_newest_meta(dir) + META_LAST_PG, 60);
  po_store_report r;
  REQUIRE(po_store_repair(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 0);
  CHECK(exists(r.moved_to));
  CHECK(strstr(r.moved_to, "/data.mdb.before-repair-") != NULL);
  REQUIRE(db(&r, "things"));
  CHECK_EQ_INT(db(&r, "things")->entries, 200);
  CHECK(r.method[0] != '\0');
  REQUIRE(po_store_check(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 1);
  struct stat st;
  char file[128];
  snprintf(file, sizeof file, "%s/data.mdb", dir);
  REQUIRE(stat(file, &st) == 0);
  CHECK_EQ_INT(st.st_mode & 0777, 0600);
  po_store *s;
  CHECK(po_store_open(dir, NULL, &s) == 0);
  po_store_close(s);
  remove_dir(dir);
}

/* Cut to two pages: nothing is readable, the new store is empty. */
static void repair_of_a_truncated_store_leaves_one_that_opens(void) {
  char *dir = temp_dir();
  make_store(dir, 50);
  corrupt_truncate(dir, 8192);
  po_store_report r;
  REQUIRE(po_store_check(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 0);
  REQUIRE(po_store_repair(dir, &r) == 0);
  CHECK_EQ_STR(r.method, "new empty store");
  CHECK(exists(r.moved_to));
  po_store *s;
  CHECK(po_store_open(dir, NULL, &s) == 0);
  po_store_close(s);
  remove_dir(dir);
}

/* A sound store: --repair compacts it with LMDB's own copy, losing nothing. */
static void repair_of_a_sound_store_compacts_it(void) {
  char *dir = temp_dir();
  make_store(dir, 2000);
  po_store_report r;
  REQUIRE(po_store_repair(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 1);
  CHECK_EQ_STR(r.method, "compacting copy");
  REQUIRE(db(&r, "things"));
  CHECK_EQ_INT(db(&r, "things")->entries, 2000);
  REQUIRE(po_store_check(dir, &r) == 0);
  CHECK(r.ok && db(&r, "things") && db(&r, "things")->entries == 2000);
  remove_dir(dir);
}

/* Every record reads but a header count is wrong: LMDB's compacting copy is
 * not trusted with it, the records are copied one by one. */
static void repair_copies_records_when_the_walk_is_not_clean(void) {
  char *dir = temp_dir();
  make_store(dir, 120);
  REQUIRE(corrupt_db_count(dir, "things") > 0);
  po_store_report r;
  REQUIRE(po_store_check(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 0);
  REQUIRE(r.nproblems >= 1);
  CHECK(strstr(r.problems[0], "database things holds 120 records but its header counts 121") != NULL);
  REQUIRE(po_store_repair(dir, &r) == 0);
  CHECK_EQ_STR(r.method, "record-by-record copy");
  REQUIRE(db(&r, "things"));
  CHECK_EQ_INT(db(&r, "things")->entries, 120);
  REQUIRE(po_store_check(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 1);
  remove_dir(dir);
}

/* Another process holding the store open: the repair refuses and changes
 * nothing (that process's map would otherwise point into a renamed file). */
static void repair_refuses_a_store_open_elsewhere(void) {
  char *dir = temp_dir();
  make_store(dir, 10);
  int ready[2], done[2];
  REQUIRE(pipe(ready) == 0 && pipe(done) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    po_store *s;
    char c = po_store_open(dir, NULL, &s) == 0 ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1 || read(done[0], &c, 1) < 0) _exit(1);
    _exit(0);
  }
  char c = 0;
  REQUIRE(read(ready[0], &c, 1) == 1 && c == 'y');
  po_store_report r;
  CHECK(po_store_repair(dir, &r) == PO_ESTORE);
  CHECK(strstr(po_store_last_error(), "open (in this or another process)") != NULL);
  CHECK(r.moved_to[0] == '\0');
  CHECK(write(done[1], "x", 1) == 1);
  int status;
  waitpid(pid, &status, 0);
  CHECK(po_store_check(dir, &r) == 0 && r.ok);
  close(ready[0]), close(ready[1]), close(done[0]), close(done[1]);
  remove_dir(dir);
}

static int has_problem(const po_store_report *r, const char *text) {
  for (int i = 0; i < r->nproblems && i < PO_STORE_REPORT_MAX; i++)
    if (strstr(r->problems[i], text)) return 1;
  return 0;
}

/* Main-tree records that are not databases are named, each once; a name
 * that is no database is reported damaged; the databases still read. */
static void what_is_not_a_database_is_named(void) {
  char *dir = temp_dir();
  REQUIRE(raw_store(dir, 3, 2) == 0);
  po_store_report r;
  REQUIRE(po_store_check(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 0);
  CHECK_EQ_INT(r.nproblems, 4);
  CHECK(has_problem(&r, "names no database of poengine's (100 bytes)"));
  CHECK(has_problem(&r, "names no database of poengine's (4 bytes)")); /* the keys with a NUL */
  CHECK(has_problem(&r, "database junk cannot be opened"));
  REQUIRE(db(&r, "junk") && db(&r, "db02"));
  CHECK_EQ_INT(db(&r, "junk")->damaged, 1);
  CHECK_EQ_INT(db(&r, "db02")->entries, 1);
  /* The repair copies the databases and leaves the rest out. */
  REQUIRE(po_store_repair(dir, &r) == 0);
  CHECK_EQ_STR(r.method, "record-by-record copy");
  CHECK(has_problem(&r, "database junk cannot be opened: "));
  CHECK(db(&r, "db00") && db(&r, "db02") && !db(&r, "junk"));
  REQUIRE(po_store_check(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 1);
  remove_dir(dir);
}

/* More names than poengine opens (32), and more problems than a report
 * keeps (32): the report keeps the first and counts the rest. */
static void a_crowded_main_tree_is_bounded(void) {
  char *dir = temp_dir();
  REQUIRE(raw_store(dir, 40, 40) == 0);
  po_store_report r;
  REQUIRE(po_store_check(dir, &r) == 0);
  CHECK_EQ_INT(r.ok, 0);
  CHECK(r.nproblems > PO_STORE_REPORT_MAX);
  CHECK(r.ndbs <= PO_STORE_REPORT_MAX);
  CHECK(db(&r, "db00") != NULL);
  remove_dir(dir);
}

/* A directory whose path leaves no room for the repair's own files: the
 * repair fails with PO_EINVAL and touches nothing. */
static void a_path_too_long_for_the_repair(void) {
  static const size_t lengths[] = {4070, 4080}; /* no room for the moved name; for .repair-snapshot */
  for (int i = 0; i < 2; i++) {
    char *top = temp_dir();
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", top);
    while (strlen(dir) < lengths[i]) {
      size_t room = lengths[i] - strlen(dir) - 1;
      size_t n = room > 200 ? 200 : room;
      size_t at = strlen(dir);
      dir[at] = '/';
      memset(dir + at + 1, 'p', n);
      dir[at + 1 + n] = '\0';
      REQUIRE(mkdir(dir, 0700) == 0);
    }
    make_store(dir, 10);
    corrupt_db_count(dir, "things");
    po_store_report r;
    CHECK_EQ_INT(po_store_repair(dir, &r), PO_EINVAL);
    CHECK(strstr(po_store_last_error(), "path too long") != NULL);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/.repair-new", dir);
    CHECK(!exists(path));
    REQUIRE(po_store_check(dir, &r) == 0);
    CHECK(db(&r, "things") && db(&r, "things")->entries == 10);
    remove_dir(top);
  }
}

int main(void) {
  RUN(repair_refuses_a_store_open_elsewhere);
  RUN(repair_copies_records_when_the_walk_is_not_clean);
  RUN(a_sound_store_checks_clean);
  RUN(no_store_is_enoent);
  RUN(damage_is_named);
  RUN(repair_recovers_the_previous_snapshot);
  RUN(repair_of_a_truncated_store_leaves_one_that_opens);
  RUN(repair_of_a_sound_store_compacts_it);
  RUN(what_is_not_a_database_is_named);
  RUN(a_crowded_main_tree_is_bounded);
  RUN(a_path_too_long_for_the_repair);
  return TEST_SUMMARY();
}
