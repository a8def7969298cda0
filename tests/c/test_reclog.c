/* Tests for src/core/reclog.c: append and read back in order, tail, trim at
 * a maximum, clear, reopening, several processes appending at once. */
#include "error.h"
#include "reclog.h"

#include "harness.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char *temp_dir(void) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/po_reclog_XXXXXX");
  return mkdtemp(path);
}

static void remove_dir(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

typedef struct collected {
  int n;
  uint64_t keys[256];
  char values[256][32];
} collected;

static int collect(uint64_t key, const void *data, size_t len, void *ud) {
  collected *c = ud;
  if (c->n >= 256 || len >= sizeof c->values[0]) return PO_EINVAL;
  c->keys[c->n] = key;
  memcpy(c->values[c->n], data, len);
  c->values[c->n][len] = '\0';
  c->n++;
  return 0;
}

static int append_str(po_reclog *log, const char *s, uint64_t max, uint64_t *key, uint64_t *trimmed) {
  return po_reclog_append(log, s, strlen(s), PO_STORE_SYNC_NONE, max, key, trimmed);
}

static void appends_and_reads_in_order(void) {
  char *dir = temp_dir();
  REQUIRE(dir);
  po_store *s;
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  po_reclog log;
  REQUIRE(po_reclog_open(s, "events", &log) == 0);
  uint64_t n = 99, key = 0;
  REQUIRE(po_reclog_count(&log, &n) == 0);
  CHECK_EQ_INT(n, 0);
  collected c = {0};
  CHECK(po_reclog_scan(&log, 0, 10, collect, &c) == 0);
  CHECK(po_reclog_tail(&log, 10, collect, &c) == 0);
  CHECK_EQ_INT(c.n, 0);
  char buf[32];
  for (int i = 1; i <= 20; i++) {
    snprintf(buf, sizeof buf, "r%d", i);
    REQUIRE(append_str(&log, buf, 0, &key, NULL) == 0);
    CHECK_EQ_INT(key, i);
  }
  CHECK(po_reclog_append(&log, "", 0, PO_STORE_SYNC_FULL, 0, &key, NULL) == 0); /* an empty record */
  CHECK_EQ_INT(key, 21);
  REQUIRE(po_reclog_count(&log, &n) == 0);
  CHECK_EQ_INT(n, 21);

  REQUIRE(po_reclog_scan(&log, 0, 5, collect, &c) == 0);
  CHECK_EQ_INT(c.n, 5);
  CHECK_EQ_STR(c.values[0], "r1");
  CHECK_EQ_STR(c.values[4], "r5");
  c.n = 0;
  REQUIRE(po_reclog_scan(&log, 18, 100, collect, &c) == 0);
  CHECK_EQ_INT(c.n, 3);
  CHECK_EQ_STR(c.values[0], "r19");
  CHECK_EQ_STR(c.values[2], "");
  CHECK_EQ_INT(c.keys[2], 21);
  c.n = 0;
  REQUIRE(po_reclog_scan(&log, UINT64_MAX, 100, collect, &c) == 0);
  CHECK_EQ_INT(c.n, 0);
  REQUIRE(po_reclog_tail(&log, 3, collect, &c) == 0);
  CHECK_EQ_INT(c.n, 3);
  CHECK_EQ_STR(c.values[0], "r19");
  CHECK_EQ_INT(c.keys[0], 19);
  c.n = 0;
  REQUIRE(po_reclog_tail(&log, 500, collect, &c) == 0);
  CHECK_EQ_INT(c.n, 21);
  CHECK_EQ_STR(c.values[0], "r1");

  /* a visitor's error stops the reading and comes back */
  collected full = {.n = 256};
  CHECK_EQ_INT(po_reclog_scan(&log, 0, 10, collect, &full), PO_EINVAL);

  po_store_close(s);
  /* reopened: the entries are there */
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  REQUIRE(po_reclog_open(s, "events", &log) == 0);
  REQUIRE(po_reclog_count(&log, &n) == 0);
  CHECK_EQ_INT(n, 21);
  CHECK(po_reclog_open(s, "", &log) == PO_EINVAL);
  po_store_close(s);
  remove_dir(dir);
}

static void trims_the_oldest(void) {
  char *dir = temp_dir();
  REQUIRE(dir);
  po_store *s;
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  po_reclog log;
  REQUIRE(po_reclog_open(s, "bounded", &log) == 0);
  char buf[32];
  uint64_t key, trimmed, n;
  for (int i = 1; i <= 12; i++) {
    snprintf(buf, sizeof buf, "r%d", i);
    REQUIRE(append_str(&log, buf, 5, &key, &trimmed) == 0);
    CHECK_EQ_INT(trimmed, i > 5 ? 1 : 0);
  }
  REQUIRE(po_reclog_count(&log, &n) == 0);
  CHECK_EQ_INT(n, 5);
  collected c = {0};
  REQUIRE(po_reclog_scan(&log, 0, 100, collect, &c) == 0);
  CHECK_EQ_INT(c.n, 5);
  CHECK_EQ_STR(c.values[0], "r8");
  CHECK_EQ_INT(c.keys[0], 8);
  CHECK_EQ_STR(c.values[4], "r12");
  /* a smaller maximum on the next append trims several at once */
  REQUIRE(append_str(&log, "r13", 2, &key, &trimmed) == 0);
  CHECK_EQ_INT(trimmed, 4);
  uint64_t removed;
  REQUIRE(po_reclog_trim(&log, 1, PO_STORE_SYNC_NONE, &removed) == 0);
  CHECK_EQ_INT(removed, 1);
  REQUIRE(po_reclog_trim(&log, 10, PO_STORE_SYNC_NONE, &removed) == 0);
  CHECK_EQ_INT(removed, 0);
  c.n = 0;
  REQUIRE(po_reclog_scan(&log, 0, 100, collect, &c) == 0);
  CHECK_EQ_INT(c.n, 1);
  CHECK_EQ_STR(c.values[0], "r13");
  CHECK_EQ_INT(c.keys[0], 13);
  REQUIRE(po_reclog_clear(&log, PO_STORE_SYNC_NONE) == 0);
  REQUIRE(po_reclog_count(&log, &n) == 0);
  CHECK_EQ_INT(n, 0);
  REQUIRE(append_str(&log, "again", 0, &key, NULL) == 0);
  CHECK_EQ_INT(key, 1); /* an emptied log starts again at 1 */
  REQUIRE(append_str(&log, "more", 0, NULL, NULL) == 0);
  CHECK_EQ_INT(po_reclog_trim(&log, 1, PO_STORE_SYNC_NONE, NULL), 0); /* the count is optional */
  REQUIRE(po_reclog_count(&log, &n) == 0);
  CHECK_EQ_INT(n, 1);
  po_reclog unnamed;
  CHECK_EQ_INT(po_reclog_open(s, NULL, &unnamed), PO_EINVAL);
  po_store_close(s);
  remove_dir(dir);
}

enum { CHILDREN = 4, PER_CHILD = 200 };

static void several_processes_append(void) {
  char *dir = temp_dir();
  REQUIRE(dir);
  pid_t pids[CHILDREN];
  for (int p = 0; p < CHILDREN; p++) {
    pids[p] = fork();
    REQUIRE(pids[p] >= 0);
    if (pids[p] == 0) {
      po_store *s;
      po_reclog log;
      if (po_store_open(dir, NULL, &s) != 0 || po_reclog_open(s, "shared", &log) != 0) _exit(2);
      char buf[32];
      for (int i = 0; i < PER_CHILD; i++) {
        snprintf(buf, sizeof buf, "%d:%d", p, i);
        if (append_str(&log, buf, 0, NULL, NULL) != 0) _exit(3);
      }
      po_store_close(s);
      _exit(0);
    }
  }
  for (int p = 0; p < CHILDREN; p++) {
    int status;
    waitpid(pids[p], &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  po_store *s;
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  po_reclog log;
  REQUIRE(po_reclog_open(s, "shared", &log) == 0);
  uint64_t n;
  REQUIRE(po_reclog_count(&log, &n) == 0);
  CHECK_EQ_INT(n, CHILDREN * PER_CHILD);
  /* every child's records are all there, each child's in its own order */
  int next[CHILDREN] = {0};
  uint64_t after = 0, expected_key = 1;
  for (;;) {
    collected c = {0};
    REQUIRE(po_reclog_scan(&log, after, 256, collect, &c) == 0);
    if (c.n == 0) break;
    for (int i = 0; i < c.n; i++) {
      int p, k;
      REQUIRE(sscanf(c.values[i], "%d:%d", &p, &k) == 2);
      REQUIRE(p >= 0 && p < CHILDREN);
      CHECK_EQ_INT(k, next[p]);
      next[p] = k + 1;
      CHECK_EQ_INT(c.keys[i], expected_key);
      expected_key++;
    }
    after = c.keys[c.n - 1];
  }
  for (int p = 0; p < CHILDREN; p++) CHECK_EQ_INT(next[p], PER_CHILD);
  po_store_close(s);
  remove_dir(dir);
}

int main(void) {
  RUN(appends_and_reads_in_order);
  RUN(trims_the_oldest);
  RUN(several_processes_append);
  return TEST_SUMMARY();
}
