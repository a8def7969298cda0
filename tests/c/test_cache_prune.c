/* Tests for src/core/cache_prune.c, the pruning and inspection half of cache_disk.h (what
 * `poengine cache` stands on), on real LMDB files in a temporary directory:
 * prune by write time, by bytes (oldest first, ties by write order), expired
 * entries always, in bounded transactions, with the vectors of the removed
 * entries; a dry run changes nothing; every namespace at once; the figures
 * po_cache_disk_info_get reports; and po_cache_disk_namespaces creating
 * nothing where there is no cache store. */
#include "cache_disk.h"
#include "error.h"

#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char *temp_dir(void) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/po_cache_prune_XXXXXX");
  return mkdtemp(path);
}

static void remove_dir(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

static po_cache_disk_write writer(void) {
  po_cache_disk_write w = {0};
  w.sync = PO_STORE_SYNC_NONE;
  w.policy = PO_CACHE_LRU;
  w.max_entries = 1000;
  return w;
}

/* Puts key -> value written at `at`, expiring at `expires` (0: never), with
 * a vector record when vec is set. */
static int put(po_cache_disk *d, const char *key, const char *value, double at, double expires, int vec) {
  po_cache_disk_write w = writer();
  po_cache_disk_vector v = {key, strlen(key)};
  return po_cache_disk_put(d, &w, po_cache_hash_key(key, strlen(key)), key, strlen(key), value, strlen(value), 0,
                           at, expires, vec ? &v : NULL);
}

static int has(po_cache_disk *d, const char *key) {
  po_strbuf v = {0};
  po_cache_disk_entry e;
  int expired;
  int rc = po_cache_disk_get(d, po_cache_hash_key(key, strlen(key)), key, strlen(key), 0, &e, &v, NULL, &expired);
  po_strbuf_free(&v);
  return rc == 0;
}

static po_cache_disk_prune by_age(double now, double older_than) {
  po_cache_disk_prune p = {0};
  p.now = now;
  p.by_age = 1;
  p.older_than = older_than;
  return p;
}

static po_cache_disk_prune by_bytes(double now, uint64_t max_bytes) {
  po_cache_disk_prune p = {0};
  p.now = now;
  p.by_bytes = 1;
  p.max_bytes = max_bytes;
  return p;
}

/* "k0".."k9" -> "v0".."v9" (4 bytes each), written at 100..109. */
static void ten(po_cache_disk *d, int vec) {
  for (int i = 0; i < 10; i++) {
    char k[8], v[8];
    snprintf(k, sizeof k, "k%d", i);
    snprintf(v, sizeof v, "v%d", i);
    CHECK(put(d, k, v, 100 + i, 0, vec) == 0);
  }
}

static uint64_t count_of(po_cache_disk *d) {
  uint64_t n = 0, bytes = 0;
  CHECK(po_cache_disk_size(d, &n, &bytes) == 0);
  return n;
}

static int count_vector(void *ctx, uint64_t seq, const void *record, size_t len) {
  (void)seq;
  (void)record;
  (void)len;
  (*(int *)ctx)++;
  return 0;
}

static int vectors_of(po_cache_disk *d) {
  int n = 0;
  uint64_t last = 0;
  CHECK(po_cache_disk_vectors(d, 0, count_vector, &n, &last) == 0);
  return n;
}

static void prunes_by_write_time(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  ten(d, 1);
  po_cache_disk_prune p = by_age(200, 95); /* written before 105 */
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 5);
  CHECK_EQ_INT(p.removed_bytes, 20);
  CHECK_EQ_INT(p.expired, 0);
  CHECK_EQ_INT(p.remaining, 5);
  CHECK_EQ_INT(p.remaining_bytes, 20);
  CHECK_EQ_INT(p.transactions, 1);
  CHECK(!has(d, "k0") && !has(d, "k4") && has(d, "k5") && has(d, "k9"));
  CHECK_EQ_INT(count_of(d), 5);
  CHECK_EQ_INT(vectors_of(d), 5); /* the removed entries' vectors went with them */
  /* The order list lost the removed entries too: eviction now takes k5 first. */
  po_cache_disk_write w = writer();
  w.max_entries = 5;
  CHECK(po_cache_disk_put(d, &w, po_cache_hash_key("new", 3), "new", 3, "x", 1, 0, 300, 0, NULL) == 0);
  CHECK_EQ_INT(w.evicted, 1);
  CHECK(!has(d, "k5") && has(d, "k6") && has(d, "new"));
  po_cache_disk_close(d);
  remove_dir(dir);
}

static void expired_entries_always_go(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  CHECK(put(d, "gone", "1234", 100, 150, 0) == 0);
  CHECK(put(d, "later", "1234", 100, 250, 0) == 0);
  CHECK(put(d, "never", "1234", 100, 0, 0) == 0);
  po_cache_disk_info info;
  REQUIRE(po_cache_disk_info_get(d, 200, &info) == 0);
  CHECK_EQ_INT(info.expired, 1);
  po_cache_disk_prune p = by_bytes(200, 1000); /* the bound removes nothing */
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 1);
  CHECK_EQ_INT(p.expired, 1);
  CHECK_EQ_INT(p.remaining, 2);
  CHECK(!has(d, "gone") && has(d, "later") && has(d, "never"));
  REQUIRE(po_cache_disk_info_get(d, 200, &info) == 0);
  CHECK_EQ_INT(info.expired, 0);
  CHECK_EQ_INT(info.entries, 2);
  po_cache_disk_close(d);
  remove_dir(dir);
}

static void prunes_the_oldest_until_the_rest_fit(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  ten(d, 0);
  po_cache_disk_prune p = by_bytes(200, 15); /* 3 entries of 4 bytes fit, not 4 */
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 7);
  CHECK_EQ_INT(p.removed_bytes, 28);
  CHECK_EQ_INT(p.remaining, 3);
  CHECK_EQ_INT(p.remaining_bytes, 12);
  CHECK(!has(d, "k6") && has(d, "k7") && has(d, "k8") && has(d, "k9"));
  /* The same write time: the later written stays. */
  CHECK(put(d, "a", "123", 500, 0, 0) == 0);
  CHECK(put(d, "b", "123", 500, 0, 0) == 0);
  p = by_bytes(600, 8);
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 3);
  CHECK(has(d, "a") && has(d, "b") && !has(d, "k9"));
  p = by_bytes(600, 7);
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK(!has(d, "a") && has(d, "b"));
  p = by_bytes(600, 0);
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(count_of(d), 0);
  p = by_bytes(600, 0); /* nothing left to list */
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 0);
  po_cache_disk_close(d);
  remove_dir(dir);
}

static void age_and_bytes_together(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  ten(d, 0);
  po_cache_disk_prune p = by_bytes(200, 100);
  p.by_age = 1;
  p.older_than = 92; /* k0..k7 */
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 8);
  p = by_bytes(200, 4);
  p.by_age = 1;
  p.older_than = 1000;
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 1);
  CHECK(!has(d, "k8") && has(d, "k9"));
  po_cache_disk_close(d);
  remove_dir(dir);
}

static void works_in_bounded_transactions(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  for (int i = 0; i < 100; i++) {
    char k[8];
    snprintf(k, sizeof k, "k%02d", i);
    CHECK(put(d, k, "v", 100 + i, 0, 1) == 0);
  }
  po_cache_disk_prune p = by_age(200, 50); /* k00..k49 */
  p.batch = 7;
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 50);
  CHECK_EQ_INT(p.remaining, 50);
  CHECK(p.transactions >= 8); /* 50 removals, 7 at most each */
  CHECK_EQ_INT(count_of(d), 50);
  CHECK_EQ_INT(vectors_of(d), 50);
  CHECK(!has(d, "k49") && has(d, "k50"));
  po_cache_disk_close(d);
  remove_dir(dir);
}

static void a_dry_run_changes_nothing(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  ten(d, 1);
  uint64_t gen = po_cache_disk_gen(d);
  po_cache_disk_prune p = by_bytes(200, 15);
  p.dry_run = 1;
  p.batch = 2;
  REQUIRE(po_cache_disk_prune_run(d, &p) == 0);
  CHECK_EQ_INT(p.removed, 7);
  CHECK_EQ_INT(p.remaining, 3);
  CHECK_EQ_INT(p.transactions, 0);
  CHECK_EQ_INT(count_of(d), 10);
  CHECK_EQ_INT(vectors_of(d), 10);
  CHECK(has(d, "k0"));
  CHECK(po_cache_disk_gen(d) == gen);
  po_cache_disk_close(d);
  remove_dir(dir);
}

static int add_name(void *ctx, const char *ns, size_t len) {
  po_strbuf *names = ctx;
  return po_strbuf_append(names, ns, len) || po_strbuf_append(names, ",", 1) ? PO_ENOMEM : 0;
}

static void every_namespace_at_once(void) {
  char *dir = temp_dir();
  po_cache_disk *a, *b;
  REQUIRE(po_cache_disk_open(dir, "a", &a) == 0);
  REQUIRE(po_cache_disk_open(dir, "b", &b) == 0);
  CHECK(put(a, "a1", "1234", 100, 0, 0) == 0);
  CHECK(put(b, "b1", "1234", 101, 0, 0) == 0);
  CHECK(put(a, "a2", "1234", 102, 0, 0) == 0);
  CHECK(put(b, "b2", "1234", 103, 0, 0) == 0);
  po_strbuf names = {0};
  REQUIRE(po_cache_disk_namespaces(dir, add_name, &names) == 0);
  CHECK(names.len == 4 && (memcmp(names.data, "a,b,", 4) == 0 || memcmp(names.data, "b,a,", 4) == 0));
  po_strbuf_free(&names);
  /* One namespace alone: b is not touched. */
  po_cache_disk_prune p = by_age(200, 0);
  REQUIRE(po_cache_disk_prune_run(a, &p) == 0);
  CHECK_EQ_INT(p.removed, 2);
  CHECK(has(b, "b1") && has(b, "b2"));
  CHECK(put(a, "a3", "1234", 104, 0, 0) == 0);
  /* The store: the oldest of all go, whichever namespace holds them. */
  uint64_t gen_b = po_cache_disk_gen(b);
  p = by_bytes(200, 12); /* 6 bytes each: a3 and b2 fit */
  p.all_namespaces = 1;
  REQUIRE(po_cache_disk_prune_run(a, &p) == 0);
  CHECK_EQ_INT(p.removed, 1);
  CHECK_EQ_INT(p.remaining, 2);
  CHECK(!has(b, "b1") && has(b, "b2") && has(a, "a3"));
  CHECK_EQ_INT(count_of(b), 1);
  CHECK(po_cache_disk_gen(b) != gen_b); /* b's readers reread */
  po_cache_disk_close(a);
  po_cache_disk_close(b);
  remove_dir(dir);
}

static void reports_what_a_namespace_holds(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_info info;
  REQUIRE(po_cache_disk_info_get(d, 200, &info) == 0);
  CHECK_EQ_INT(info.entries, 0);
  CHECK(info.oldest == 0 && info.newest == 0);
  ten(d, 1);
  CHECK(put(d, "old", "expired", 50, 60, 0) == 0);
  REQUIRE(po_cache_disk_info_get(d, 200, &info) == 0);
  CHECK_EQ_INT(info.entries, 11);
  CHECK_EQ_INT(info.bytes, 10 * 4 + 3 + 7);
  CHECK_EQ_INT(info.expired, 1);
  CHECK_EQ_INT(info.vectors, 10);
  CHECK(info.oldest == 50 && info.newest == 109);
  CHECK(info.map_size >= info.map_used + info.map_free && info.map_used > 0);
  po_cache_disk_close(d);
  remove_dir(dir);
}

static int exists(const char *dir, const char *file) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  struct stat st;
  return stat(path, &st) == 0;
}

static void no_cache_store_is_created(void) {
  char *dir = temp_dir();
  CHECK_EQ_INT(po_cache_disk_namespaces(dir, NULL, NULL), PO_ENOENT);
  CHECK(strstr(po_store_last_error(), "no data.mdb") != NULL);
  CHECK(!exists(dir, "data.mdb"));
  char missing[256];
  snprintf(missing, sizeof missing, "%s/nothing", dir);
  CHECK_EQ_INT(po_cache_disk_namespaces(missing, NULL, NULL), PO_ENOENT);
  CHECK(!exists(dir, "nothing"));
  /* A store that holds something else. */
  po_store *s;
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  MDB_dbi dbi;
  CHECK(po_store_dbi(s, "cycles", 0, &dbi) == 0);
  po_store_close(s);
  CHECK_EQ_INT(po_cache_disk_namespaces(dir, NULL, NULL), PO_ENOENT);
  CHECK(strstr(po_store_last_error(), "holds no cache") != NULL);
  /* ... and a damaged one. */
  remove_dir(dir);
  REQUIRE(mkdir(dir, 0700) == 0);
  char data[256];
  snprintf(data, sizeof data, "%s/data.mdb", dir);
  FILE *f = fopen(data, "w");
  REQUIRE(f != NULL);
  for (int i = 0; i < 4096; i++) fputc('x', f);
  fclose(f);
  CHECK_EQ_INT(po_cache_disk_namespaces(dir, NULL, NULL), PO_ESTORE);
  remove_dir(dir);
}

static void bad_arguments(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_prune p = by_age(200, -1);
  CHECK_EQ_INT(po_cache_disk_prune_run(d, &p), PO_EINVAL);
  po_cache_disk_close(d);
  remove_dir(dir);
}

int main(void) {
  RUN(prunes_by_write_time);
  RUN(expired_entries_always_go);
  RUN(prunes_the_oldest_until_the_rest_fit);
  RUN(age_and_bytes_together);
  RUN(works_in_bounded_transactions);
  RUN(a_dry_run_changes_nothing);
  RUN(every_namespace_at_once);
  RUN(reports_what_a_namespace_holds);
  RUN(no_cache_store_is_created);
  RUN(bad_arguments);
  return TEST_SUMMARY();
}
