/* Tests for src/core/store.c: creation and modes, sharing, map growth,
 * schema refusal, several processes, and damaged data files (issue 14):
 * refused with PO_ESTORE, never a hang or a crash. */
#include "error.h"
#include "store.h"

#include "harness.h"
#include "../fixtures/store/corrupt.h"

#include <limits.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *temp_dir(void) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/po_store_XXXXXX");
  return mkdtemp(path);
}

static void remove_dir(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

typedef struct put_ctx {
  MDB_dbi dbi;
  const char *key;
  const void *value;
  size_t size;
  int calls;
} put_ctx;

static int put_one(MDB_txn *txn, void *ud) {
  put_ctx *c = ud;
  c->calls++;
  MDB_val k = {strlen(c->key), (void *)c->key}, v = {c->size, (void *)c->value};
  return po_store_error(mdb_put(txn, c->dbi, &k, &v, 0));
}

static int get_size(po_store *s, MDB_dbi dbi, const char *key, size_t *size) {
  MDB_txn *txn;
  int rc = po_store_read_begin(s, &txn);
  if (rc != 0) return rc;
  MDB_val k = {strlen(key), (void *)key}, v;
  rc = mdb_get(txn, dbi, &k, &v);
  if (rc == 0) *size = v.mv_size;
  po_store_read_end(s, txn);
  return rc == 0 ? 0 : PO_ENOENT;
}

static void creates_private_directory_and_files(void) {
  char *base = temp_dir();
  REQUIRE(base);
  char dir[128];
  snprintf(dir, sizeof dir, "%s/a/b/store", base);
  po_store *s;
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  struct stat st;
  REQUIRE(stat(dir, &st) == 0);
  CHECK_EQ_INT(st.st_mode & 0777, 0700);
  char file[160];
  snprintf(file, sizeof file, "%s/data.mdb", dir);
  REQUIRE(stat(file, &st) == 0);
  CHECK_EQ_INT(st.st_mode & 0777, 0600);
  po_store_close(s);
  remove_dir(base);
}

static void one_handle_per_directory_in_a_process(void) {
  char *dir = temp_dir();
  po_store *a, *b;
  REQUIRE(po_store_open(dir, NULL, &a) == 0);
  char other[128];
  snprintf(other, sizeof other, "%s/../%s", dir, strrchr(dir, '/') + 1);
  REQUIRE(po_store_open(other, NULL, &b) == 0);
  CHECK(a == b);
  MDB_dbi dbi;
  REQUIRE(po_store_dbi(a, "things", 0, &dbi) == 0);
  put_ctx c = {dbi, "k", "value", 5, 0};
  CHECK(po_store_write(a, PO_STORE_SYNC_FULL, put_one, &c) == 0);
  po_store_close(a);
  size_t size = 0;
  CHECK(get_size(b, dbi, "k", &size) == 0); /* still open through b */
  CHECK_EQ_INT(size, 5);
  po_store_close(b);
  remove_dir(dir);
}

static void map_grows_when_full(void) {
  char *dir = temp_dir();
  po_store *s;
  po_store_options opts = {.initial_map_size = 1 << 20};
  REQUIRE(po_store_open(dir, &opts, &s) == 0);
  MDB_dbi dbi;
  REQUIRE(po_store_dbi(s, "big", 0, &dbi) == 0);
  size_t n = 512 * 1024;
  char *value = malloc(n);
  memset(value, 'x', n);
  int retried = 0;
  for (int i = 0; i < 16; i++) { /* 8 MiB into a 1 MiB map */
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    put_ctx c = {dbi, key, value, n, 0};
    CHECK(po_store_write(s, PO_STORE_SYNC_NONE, put_one, &c) == 0);
    if (c.calls > 1) retried = 1;
  }
  CHECK(retried);
  size_t size = 0;
  CHECK(get_size(s, dbi, "k15", &size) == 0);
  CHECK_EQ_INT(size, n);
  free(value);
  po_store_close(s);
  remove_dir(dir);
}

static int write_newer_schema(MDB_txn *txn, void *ud) {
  MDB_dbi meta = *(MDB_dbi *)ud;
  uint32_t v = PO_STORE_SCHEMA + 1;
  MDB_val k = {6, "schema"}, val = {sizeof v, &v};
  return po_store_error(mdb_put(txn, meta, &k, &val, 0));
}

static void refuses_a_newer_schema_untouched(void) {
  char *dir = temp_dir();
  po_store *s;
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  MDB_dbi meta;
  REQUIRE(po_store_dbi(s, "meta", 0, &meta) == 0);
  CHECK(po_store_write(s, PO_STORE_SYNC_FULL, write_newer_schema, &meta) == 0);
  po_store_close(s);
  char data[128];
  snprintf(data, sizeof data, "%s/data.mdb", dir);
  struct stat before, after;
  REQUIRE(stat(data, &before) == 0);
  po_store *again = NULL;
  CHECK(po_store_open(dir, NULL, &again) == PO_ESCHEMA);
  CHECK(again == NULL);
  CHECK(strstr(po_store_last_error(), "newer") != NULL);
  REQUIRE(stat(data, &after) == 0);
  CHECK(before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
  remove_dir(dir);
}

static void unwritable_path_is_refused(void) {
  po_store *s = NULL;
  CHECK(po_store_open("/proc/poengine-cannot-be-here", NULL, &s) == PO_EPERM);
  CHECK(strstr(po_store_last_error(), "/proc/poengine-cannot-be-here") != NULL);
  CHECK(po_store_open("", NULL, &s) == PO_EINVAL);
}

static void another_process_sees_what_one_commits(void) {
  char *dir = temp_dir();
  pid_t pid = fork();
  if (pid == 0) {
    po_store *s;
    if (po_store_open(dir, NULL, &s) != 0) _exit(1);
    MDB_dbi dbi;
    if (po_store_dbi(s, "shared", 0, &dbi) != 0) _exit(2);
    put_ctx c = {dbi, "from-child", "12345678", 8, 0};
    if (po_store_write(s, PO_STORE_SYNC_FULL, put_one, &c) != 0) _exit(3);
    _exit(0); /* no close: a process that just ends keeps what it committed */
  }
  int status;
  waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  po_store *s;
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  MDB_dbi dbi;
  REQUIRE(po_store_dbi(s, "shared", 0, &dbi) == 0);
  size_t size = 0;
  CHECK(get_size(s, dbi, "from-child", &size) == 0);
  CHECK_EQ_INT(size, 8);
  po_store_close(s);
  remove_dir(dir);
}

static void default_dir_follows_the_environment(void) {
  char buf[256];
  setenv("POENGINE_HOME", "/x/home", 1);
  CHECK(po_store_default_dir(buf, sizeof buf) == 0);
  CHECK_EQ_STR(buf, "/x/home");
  unsetenv("POENGINE_HOME");
  setenv("XDG_CACHE_HOME", "/x/cache", 1);
  CHECK(po_store_default_dir(buf, sizeof buf) == 0);
  CHECK_EQ_STR(buf, "/x/cache/poengine");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/x/user", 1);
  CHECK(po_store_default_dir(buf, sizeof buf) == 0);
  CHECK_EQ_STR(buf, "/x/user/.cache/poengine");
  CHECK(po_store_default_dir(buf, 4) == PO_EINVAL);
  /* Set but empty is not set. */
  setenv("POENGINE_HOME", "", 1);
  setenv("XDG_CACHE_HOME", "", 1);
  CHECK(po_store_default_dir(buf, sizeof buf) == 0);
  CHECK_EQ_STR(buf, "/x/user/.cache/poengine");
  setenv("HOME", "", 1);
  CHECK(po_store_default_dir(buf, sizeof buf) == PO_EINVAL);
  unsetenv("POENGINE_HOME");
  unsetenv("XDG_CACHE_HOME");
}

/* Several stores open at once: each directory its own handle, found again
 * by its directory, closed in any order. */
static void several_stores_in_a_process(void) {
  char a_dir[64], b_dir[64];
  snprintf(a_dir, sizeof a_dir, "%s", temp_dir());
  snprintf(b_dir, sizeof b_dir, "%s", temp_dir());
  po_store *a, *b, *again;
  po_store_options defaults = {0};
  REQUIRE(po_store_open(a_dir, NULL, &a) == 0);
  REQUIRE(po_store_open(b_dir, &defaults, &b) == 0);
  CHECK(a != b);
  CHECK(po_store_is_open(a_dir) && po_store_is_open(b_dir));
  REQUIRE(po_store_open(a_dir, NULL, &again) == 0);
  CHECK(again == a);
  po_store_close(again);
  po_store_close(a); /* not the newest in the list */
  CHECK(!po_store_is_open(a_dir));
  CHECK(po_store_is_open(b_dir));
  po_store_close(b);
  CHECK(!po_store_is_open(b_dir));
  remove_dir(a_dir);
  remove_dir(b_dir);
}

/* Runs fn(dir) in a child with a deadline and returns its exit status, or
 * 128 + the signal that ended it: a hang (SIGALRM) or a crash inside LMDB
 * (SIGBUS) fails the test instead of stopping the whole binary. */
static int in_child(int (*fn)(const char *), const char *dir) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    exit(fn(dir)); /* not _exit: a coverage build writes the child's counts at exit */
  }
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Exit status: 0 opened, else -code (PO_ESTORE is 10). */
static int open_and_close(const char *dir) {
  po_store *s;
  int rc = po_store_open(dir, NULL, &s);
  if (rc == 0) po_store_close(s);
  if (rc == PO_ESTORE && !strstr(po_store_last_error(), "store check")) return 99; /* the message points the way */
  return -rc;
}

static void fresh_store(const char *dir) {
  po_store *s;
  if (po_store_open(dir, NULL, &s) == 0) po_store_close(s);
}

static void flipped_last_page_is_refused(void) {
  static const int bits[] = {8, 20, 40, 60};
  for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
    char *dir = temp_dir();
    fresh_store(dir);
    corrupt_flip(dir, corrupt_newest_meta(dir) + META_LAST_PG, bits[i]);
    CHECK_EQ_INT(in_child(open_and_close, dir), -PO_ESTORE);
    remove_dir(dir);
  }
}

static void truncated_file_is_refused(void) {
  static const long sizes[] = {100, 8192, 10000, 12288};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *dir = temp_dir();
    fresh_store(dir);
    corrupt_truncate(dir, sizes[i]);
    CHECK_EQ_INT(in_child(open_and_close, dir), -PO_ESTORE);
    remove_dir(dir);
  }
  /* An empty file is what LMDB leaves before its first write: a new store. */
  char *dir = temp_dir();
  fresh_store(dir);
  corrupt_truncate(dir, 0);
  CHECK_EQ_INT(in_child(open_and_close, dir), 0);
  remove_dir(dir);
}

/* The meta page damaged under an open store: each transaction is told to
 * adopt a bigger map, and adopting never satisfies it. */
static int read_after_damage(const char *dir) {
  po_store *s;
  if (po_store_open(dir, NULL, &s) != 0) return 1;
  corrupt_flip(dir, corrupt_newest_meta(dir) + META_LAST_PG, 60);
  MDB_txn *txn;
  int rc = po_store_read_begin(s, &txn);
  if (rc == 0) po_store_read_end(s, txn);
  return -rc;
}

static void map_resize_retries_are_bounded(void) {
  char *dir = temp_dir();
  fresh_store(dir);
  CHECK_EQ_INT(in_child(read_after_damage, dir), -PO_ESTORE);
  remove_dir(dir);
}

static int always_full(MDB_txn *txn, void *ud) {
  (void)txn;
  ++*(int *)ud;
  return PO_EMAPFULL;
}

/* A write that never fits doubles the map up to 1 TiB, then gives up. */
static void map_growth_stops_at_its_limit(void) {
  char *dir = temp_dir();
  po_store *s;
  po_store_options opts = {.initial_map_size = (size_t)1 << 30};
  REQUIRE(po_store_open(dir, &opts, &s) == 0);
  int calls = 0;
  CHECK_EQ_INT(po_store_write(s, PO_STORE_SYNC_NONE, always_full, &calls), PO_EMAPFULL);
  CHECK_EQ_INT(calls, 11); /* 1 GiB, then ten doublings */
  CHECK(strstr(po_store_last_error(), "reached its limit of 1 TiB") != NULL);
  po_store_close(s);
  remove_dir(dir);
}

/* Names and databases within the limits, arguments present. */
static void limits_and_arguments(void) {
  char *dir = temp_dir();
  po_store *s = NULL;
  CHECK_EQ_INT(po_store_open(NULL, NULL, &s), PO_EINVAL);
  CHECK_EQ_INT(po_store_open(dir, NULL, NULL), PO_EINVAL);
  char longdir[PATH_MAX + 1];
  memset(longdir, 'd', PATH_MAX);
  longdir[0] = '/';
  longdir[PATH_MAX] = '\0';
  CHECK_EQ_INT(po_store_open(longdir, NULL, &s), PO_EINVAL);
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  MDB_dbi dbi;
  char name[80];
  memset(name, 'n', 64);
  name[64] = '\0';
  CHECK_EQ_INT(po_store_dbi(s, name, 0, &dbi), PO_EINVAL);
  name[63] = '\0';
  CHECK_EQ_INT(po_store_dbi(s, name, 0, &dbi), 0);
  int opened = 2; /* meta and the 63-byte name */
  for (; opened < 32; opened++) {
    snprintf(name, sizeof name, "db%d", opened);
    REQUIRE(po_store_dbi(s, name, 0, &dbi) == 0);
  }
  CHECK_EQ_INT(po_store_dbi(s, "one too many", 0, &dbi), PO_EINVAL);
  CHECK_EQ_INT(po_store_dbi(s, "db31", 0, &dbi), 0); /* opened before: still there */
  po_store_close(s);
  po_store_close(NULL);
  remove_dir(dir);
}

int main(void) {
  RUN(flipped_last_page_is_refused);
  RUN(truncated_file_is_refused);
  RUN(map_resize_retries_are_bounded);
  RUN(creates_private_directory_and_files);
  RUN(one_handle_per_directory_in_a_process);
  RUN(map_grows_when_full);
  RUN(refuses_a_newer_schema_untouched);
  RUN(unwritable_path_is_refused);
  RUN(another_process_sees_what_one_commits);
  RUN(default_dir_follows_the_environment);
  RUN(map_growth_stops_at_its_limit);
  RUN(several_stores_in_a_process);
  RUN(limits_and_arguments);
  return TEST_SUMMARY();
}
