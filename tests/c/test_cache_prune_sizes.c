/* Pruning a cache store (cache_prune.c) at the sizes where its bookkeeping
 * changes shape: more entries than the by-bytes list first holds, more
 * namespaces than the first view list, batches whose reads hit the scan
 * bound before finding a victim, and nothing at all to list. Each time the
 * prune removes exactly the entries it should, and says so. */
#include "cache_disk.h"
#include "error.h"

#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *temp_dir(void) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/po_cache_prune_sizes_XXXXXX");
  return mkdtemp(path);
}

static void remove_dir(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

/* n entries "e<i>" -> 4-byte values, written at 1000 + i. */
static void fill(po_cache_disk *d, int n) {
  po_cache_disk_write w = {.sync = PO_STORE_SYNC_NONE, .policy = PO_CACHE_LRU, .max_entries = 100000};
  for (int i = 0; i < n; i++) {
    char k[16];
    snprintf(k, sizeof k, "e%d", i);
    int rc = po_cache_disk_put(d, &w, po_cache_hash_key(k, strlen(k)), k, strlen(k), "vvvv", 4, 0, 1000 + i, 0,
                               NULL);
    if (rc != 0) {
      CHECK_EQ_INT(rc, 0);
      return;
    }
  }
}

static int has(po_cache_disk *d, int i) {
  char k[16];
  snprintf(k, sizeof k, "e%d", i);
  po_strbuf v = {0};
  po_cache_disk_entry e;
  int expired;
  int rc = po_cache_disk_get(d, po_cache_hash_key(k, strlen(k)), k, strlen(k), 0, &e, &v, NULL, &expired);
  po_strbuf_free(&v);
  return rc == 0;
}

/* The by-bytes list starts at 1024 items: 1500 entries make it grow, and the
 * cut still keeps exactly the newest that fit. */
static void by_bytes_over_many_entries(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "many", &d) == 0);
  fill(d, 1500);
  po_cache_disk_prune p = {.now = 5000, .by_bytes = 1, .max_bytes = 0};
  /* each entry holds key + value bytes: "e<i>" + 4 */
  uint64_t keep_bytes = 0;
  int kept = 0;
  for (int i = 1499; i >= 0; i--) {
    char k[16];
    uint64_t size = (uint64_t)snprintf(k, sizeof k, "e%d", i) + 4;
    if (keep_bytes + size > 3000) break;
    keep_bytes += size;
    kept++;
  }
  p.max_bytes = 3000;
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.remaining, kept);
  CHECK_EQ_INT(p.remaining_bytes, keep_bytes);
  CHECK_EQ_INT(p.removed, 1500 - kept);
  CHECK(has(d, 1499) && has(d, 1500 - kept) && !has(d, 1499 - kept) && !has(d, 0));
  po_cache_disk_close(d);
  remove_dir(dir);
}

/* Twelve namespaces (the view list starts at 8) pruned together by age. */
static void every_one_of_many_namespaces(void) {
  char *dir = temp_dir();
  po_cache_disk *ds[12];
  for (int n = 0; n < 12; n++) {
    char ns[16];
    snprintf(ns, sizeof ns, "ns%d", n);
    REQUIRE(po_cache_disk_open(dir, ns, &ds[n]) == 0);
    fill(ds[n], 4); /* written at 1000..1003 */
  }
  po_cache_disk_prune p = {.now = 2000, .by_age = 1, .older_than = 998.5, .all_namespaces = 1};
  REQUIRE(po_cache_disk_prune_run(ds[0], &p) == 0);
  CHECK_EQ_INT(p.removed, 24); /* e0 and e1 of each */
  CHECK_EQ_INT(p.remaining, 24);
  for (int n = 0; n < 12; n++) {
    CHECK(!has(ds[n], 0) && !has(ds[n], 1) && has(ds[n], 2) && has(ds[n], 3));
    po_cache_disk_close(ds[n]);
  }
  remove_dir(dir);
}

/* Batches of one victim read at most 16 records: with two victims among 200
 * entries, most batches stop at the scan bound and the next resumes after
 * the last record read, so every record is judged once. */
static void batches_resume_after_the_scan_bound(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "sparse", &d) == 0);
  fill(d, 200);
  po_cache_disk_prune p = {.now = 2000, .by_age = 1, .older_than = 998.5, .batch = 1};
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 2);
  CHECK_EQ_INT(p.remaining, 198);
  CHECK_EQ_INT(p.transactions, 2);
  CHECK(!has(d, 0) && !has(d, 1) && has(d, 2) && has(d, 199));
  po_cache_disk_close(d);
  remove_dir(dir);
}

/* Nothing to list: a store whose only namespace holds nothing yet, and one
 * whose every entry goes by age before the byte bound is looked at. */
static void nothing_to_list(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "empty", &d) == 0);
  po_cache_disk_prune p = {.now = 2000, .by_bytes = 1, .max_bytes = 10, .all_namespaces = 1};
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 0);
  CHECK_EQ_INT(p.remaining, 0);
  fill(d, 5);
  p = (po_cache_disk_prune){.now = 2000, .by_age = 1, .older_than = 1, .by_bytes = 1, .max_bytes = 10};
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 5);
  CHECK_EQ_INT(p.remaining, 0);
  po_cache_disk_close(d);
  remove_dir(dir);
}

int main(void) {
  RUN(by_bytes_over_many_entries);
  RUN(every_one_of_many_namespaces);
  RUN(batches_resume_after_the_scan_bound);
  RUN(nothing_to_list);
  return TEST_SUMMARY();
}
