/* The cache's persistent tier (src/core/cache_disk.c) under injected faults
 * (tests/c/fault.h): each LMDB call and each allocation of a write (with
 * touches, expiry, a replaced entry, vectors, LRU and SIEVE eviction), a
 * read, a delete, a clear and a vector scan fails once in turn. Every time
 * the call reports the documented code and the namespace is exactly as
 * before (a failed write is one aborted transaction), or it succeeded and
 * the namespace is exactly what a run without faults leaves; and its count
 * always agrees with the entries stored. */
#include "cache_disk.h"
#include "error.h"

#include "fault.h"
#include "fault_prepared.h"
#include "harness.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static po_cache_disk *d;

enum { NKEYS = 8 };
static const char *const keys[NKEYS] = {"k0", "k1", "k2", "k3", "k4", "k5", "new", "other"};

/* What the namespace holds, as reads see it. */
typedef struct state {
  int present[NKEYS];
  char value[NKEYS][32];
  double expires[NKEYS];
  int has_vector[NKEYS];
  uint64_t count, bytes, vectors;
} state;

static int count_vector(void *ctx, uint64_t seq, const void *record, size_t len) {
  (void)seq, (void)record, (void)len;
  ++*(uint64_t *)ctx;
  return 0;
}

/* Reads the state (unarmed); 0, or -1 when the namespace is inconsistent:
 * its recorded count or bytes differ from its entries, or a vector record
 * belongs to no entry. */
static int read_state(state *s) {
  memset(s, 0, sizeof *s);
  po_strbuf v = {0};
  uint64_t with_vector = 0;
  for (int i = 0; i < NKEYS; i++) {
    po_cache_disk_entry e;
    int expired;
    int rc = po_cache_disk_get(d, po_cache_hash_key(keys[i], strlen(keys[i])), keys[i], strlen(keys[i]), 1500, &e,
                               &v, NULL, &expired);
    if (rc != 0 && rc != PO_ENOENT) return -1;
    s->present[i] = rc == 0 || expired;
    if (rc != 0 && !expired) continue;
    if (rc == 0) snprintf(s->value[i], sizeof s->value[i], "%.*s", (int)v.len, v.data);
    s->expires[i] = expired ? -1 : e.expires;
    s->has_vector[i] = rc == 0 && e.vseq != 0;
    with_vector += s->has_vector[i];
  }
  po_strbuf_free(&v);
  uint64_t last = 0;
  po_cache_disk_info info;
  if (po_cache_disk_size(d, &s->count, &s->bytes) != 0 || po_cache_disk_vectors(d, 0, count_vector, &s->vectors, &last) != 0 ||
      po_cache_disk_info_get(d, 1500, &info) != 0)
    return -1;
  if (info.entries != s->count || info.bytes != s->bytes || info.vectors != s->vectors) return -1;
  /* Expired entries keep their vectors until they go; unexpired ones are counted above. */
  return s->vectors >= with_vector ? 0 : -1;
}

static int same_state(const state *a, const state *b) {
  for (int i = 0; i < NKEYS; i++)
    if (a->present[i] != b->present[i] || strcmp(a->value[i], b->value[i]) != 0 || a->expires[i] != b->expires[i] ||
        a->has_vector[i] != b->has_vector[i])
      return 0;
  return a->count == b->count && a->bytes == b->bytes && a->vectors == b->vectors;
}

static po_cache_hash hash_of(const char *key) { return po_cache_hash_key(key, strlen(key)); }

static int put_entry(po_cache_policy policy, uint64_t max_entries, const po_cache_hash *touched, size_t ntouched,
                     const char *key, const char *value, double created, double expires, int with_vector,
                     po_cache_disk_write *out) {
  po_cache_disk_write w = {.sync = PO_STORE_SYNC_NONE, .policy = policy, .max_entries = max_entries,
                           .touched = touched, .ntouched = ntouched};
  po_cache_disk_vector vec = {"vector record", 13};
  int rc = po_cache_disk_put(d, &w, hash_of(key), key, strlen(key), value, strlen(value), 0, created, expires,
                             with_vector ? &vec : NULL);
  if (out) *out = w;
  return rc;
}

/* k0 and k1 expire at 1001 and 1002; k2 and k3 carry vectors (k3 expires
 * at 5000); k4 and k5 are plain. Written in that order. */
static void prepare(void *arg) {
  (void)arg;
  int rc = po_cache_disk_clear(d, PO_STORE_SYNC_NONE);
  rc |= put_entry(PO_CACHE_LRU, 100, NULL, 0, "k0", "v0", 1000, 1001, 0, NULL);
  rc |= put_entry(PO_CACHE_LRU, 100, NULL, 0, "k1", "v1", 1000, 1002, 0, NULL);
  rc |= put_entry(PO_CACHE_LRU, 100, NULL, 0, "k2", "v2", 1000, 0, 1, NULL);
  rc |= put_entry(PO_CACHE_LRU, 100, NULL, 0, "k3", "v3", 1000, 5000, 1, NULL);
  rc |= put_entry(PO_CACHE_LRU, 100, NULL, 0, "k4", "v4", 1000, 0, 0, NULL);
  rc |= put_entry(PO_CACHE_LRU, 100, NULL, 0, "k5", "v5", 1000, 0, 0, NULL);
  if (rc != 0) abort(); /* unarmed: cannot fail */
}

/* One sweep's subject: the operation, the code its faults must give, and
 * the states before the run and after a run without faults. */
typedef struct subject {
  int (*op)(void);
  int code;     /* what a failure must return */
  int readonly; /* the state never changes */
  state before, after;
} subject;

static void prepare_subject(void *arg) {
  subject *s = arg;
  prepare(NULL);
  if (read_state(&s->before) != 0) abort();
}

static int run_subject(void *arg) { return ((subject *)arg)->op(); }

static int check_subject(void *arg, int rc, long fired) {
  subject *s = arg;
  state now;
  if (read_state(&now) != 0) {
    fprintf(stderr, "the namespace is inconsistent after rc %d\n", rc);
    return 1;
  }
  if (rc == 0 || rc == PO_ENOENT) return same_state(&now, s->readonly ? &s->before : &s->after) ? 0 : 1;
  if (!fired || rc != s->code) {
    fprintf(stderr, "rc %d, expected %d (fired %ld)\n", rc, s->code, fired);
    return 1;
  }
  return same_state(&now, &s->before) ? 0 : 1;
}

/* Runs op once without faults for the expected state, then sweeps each
 * name; every name must be reached at least once. */
static void sweep(const char *what, int (*op)(void), int readonly, const char *const *names, int err, int code) {
  subject s = {.op = op, .code = code, .readonly = readonly};
  prepare_subject(&s);
  int rc = op();
  REQUIRE(rc == 0 || rc == PO_ENOENT);
  REQUIRE(read_state(&s.after) == 0);
  fault_step step = {what, prepare_subject, run_subject, check_subject};
  for (int i = 0; names[i]; i++) {
    long runs = fault_sweep_prepared(&step, names[i], err, &s, 300);
    if (runs < 1) fprintf(stderr, "%s: %s: %ld runs\n", what, names[i], runs);
    CHECK(runs >= 1);
  }
}

/* A new entry at 1010 with a vector and an expiry, k2 used since (and a key
 * no longer stored), at most 4 entries: k0 and k1 expire, k3 (the least
 * recently used, with its vector and expiry key) is evicted. */
static int lru_put(void) {
  po_cache_hash touched[2] = {hash_of("k2"), hash_of("gone")};
  po_cache_disk_write w;
  int rc = put_entry(PO_CACHE_LRU, 4, touched, 2, "new", "fresh", 1010, 9000, 1, &w);
  return rc == 0 && (w.expired != 2 || w.evicted != 1 || w.replaced) ? 99 : rc;
}

/* k3 replaced (its vector and expiry key go with it) under SIEVE, k4 used. */
static int sieve_replace(void) {
  po_cache_hash touched = hash_of("k4");
  po_cache_disk_write w;
  int rc = put_entry(PO_CACHE_SIEVE, 100, &touched, 1, "k3", "v3 again", 1000, 6000, 1, &w);
  return rc == 0 && (!w.replaced || w.evicted) ? 99 : rc;
}

/* k0, k1 and k2 used, at most 5 entries under SIEVE: the hand clears their
 * visited bits and evicts k3, then k4. */
static int sieve_evict(void) {
  po_cache_hash touched[3] = {hash_of("k0"), hash_of("k1"), hash_of("k2")};
  po_cache_disk_write w;
  int rc = put_entry(PO_CACHE_SIEVE, 5, touched, 3, "new", "fresh", 1000, 0, 0, &w);
  return rc == 0 && w.evicted != 2 ? 99 : rc;
}

static int get_with_key(void) {
  po_strbuf v = {0}, k = {0};
  po_cache_disk_entry e;
  int expired;
  int rc = po_cache_disk_get(d, hash_of("k3"), NULL, 0, 1500, &e, &v, &k, &expired);
  if (rc == 0 && (v.len != 2 || k.len != 2 || memcmp(k.data, "k3", 2) != 0 || e.expires != 5000)) rc = 99;
  po_strbuf_free(&v);
  po_strbuf_free(&k);
  return rc;
}

static int delete_one(void) { return po_cache_disk_delete(d, PO_STORE_SYNC_NONE, hash_of("k3"), "k3", 2); }

static int drop_one_expired(void) { return po_cache_disk_drop_expired(d, hash_of("k1"), 1010); }

static int clear_all(void) { return po_cache_disk_clear(d, PO_STORE_SYNC_NONE); }

static int scan_vectors(void) {
  uint64_t n = 0, last = 0;
  int rc = po_cache_disk_vectors(d, 0, count_vector, &n, &last);
  return rc == 0 && n != 2 ? 99 : rc;
}

static int size_of(void) {
  uint64_t n, bytes;
  int rc = po_cache_disk_size(d, &n, &bytes);
  return rc == 0 && n != 6 ? 99 : rc;
}

#define WRITE_CALLS "mdb_txn_begin", "mdb_get", "mdb_put", "mdb_txn_commit"
static const char *const put_names[] = {WRITE_CALLS, "mdb_del", "mdb_cursor_open", "mdb_cursor_get", NULL};
static const char *const sieve_names[] = {"mdb_cursor_put", NULL};
static const char *const delete_names[] = {WRITE_CALLS, "mdb_del", NULL};
static const char *const clear_names[] = {WRITE_CALLS, "mdb_cursor_open", "mdb_cursor_get", "mdb_cursor_del", NULL};
static const char *const reader_names[] = {"mdb_txn_begin", "mdb_get", NULL};
static const char *const scan_names[] = {"mdb_txn_begin", "mdb_cursor_open", "mdb_cursor_get", NULL};
static const char *const alloc[] = {"malloc", NULL};

static void writes_fail_whole(void) {
  sweep("lru_put", lru_put, 0, put_names, EIO, PO_ESTORE);
  sweep("sieve_replace", sieve_replace, 0, put_names, EIO, PO_ESTORE);
  sweep("sieve_evict", sieve_evict, 0, put_names, EIO, PO_ESTORE);
  sweep("sieve_evict", sieve_evict, 0, sieve_names, EIO, PO_ESTORE);
  sweep("delete", delete_one, 0, delete_names, EIO, PO_ESTORE);
  sweep("drop_expired", drop_one_expired, 0, delete_names, EIO, PO_ESTORE);
  sweep("clear", clear_all, 0, clear_names, EIO, PO_ESTORE);
}

/* LRU writes copy the touched entry's record: that allocation failing
 * aborts the write. */
static void allocation_failures_abort_writes(void) {
  sweep("lru_put", lru_put, 0, alloc, ENOMEM, PO_ENOMEM);
  sweep("get", get_with_key, 1, alloc, ENOMEM, PO_ENOMEM);
}

static void reads_report_failures(void) {
  sweep("get", get_with_key, 1, reader_names, EIO, PO_ESTORE);
  sweep("vectors", scan_vectors, 1, scan_names, EIO, PO_ESTORE);
  sweep("size", size_of, 1, reader_names, EIO, PO_ESTORE);
}

/* A full map met anywhere in a write grows the map and retries: the write
 * succeeds whole. */
static void a_full_map_is_grown(void) {
  static const char *const put_only[] = {"mdb_put", NULL};
  sweep("lru_put", lru_put, 0, put_only, MDB_MAP_FULL, PO_EMAPFULL);
}

/* Opening a namespace: a failure leaves nothing open, and a later open
 * works. The generation file cannot be made: PO_EIO, or PO_EPERM when
 * permission is the cause. */
static int open_other(void) {
  po_cache_disk *o;
  int rc = po_cache_disk_open(dir, "other namespace", &o);
  if (rc == 0) po_cache_disk_close(o);
  return rc;
}

static void opening_fails_cleanly(void) {
  sweep("open", open_other, 1, alloc, ENOMEM, PO_ENOMEM);
  fault_arm("open", 1, 0, EACCES); /* the store is open here already: the first is the generation file's */
  CHECK_EQ_INT(open_other(), PO_EPERM);
  CHECK_EQ_INT(fault_fired(), 1);
  fault_arm("open", 1, 0, EROFS);
  CHECK_EQ_INT(open_other(), PO_EPERM);
  fault_arm("open", 1, 0, EIO);
  CHECK_EQ_INT(open_other(), PO_EIO);
  fault_disarm();
  CHECK_EQ_INT(open_other(), 0);
}

/* A new store whose databases cannot all be made: closed again, and the
 * next open makes them. */
static char fresh[96];

static void no_store(void *arg) {
  (void)arg;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", fresh);
  if (system(cmd) != 0) abort();
}

static int open_fresh(void *arg) {
  (void)arg;
  po_cache_disk *o;
  int rc = po_cache_disk_open(fresh, "ns", &o);
  if (rc == 0) po_cache_disk_close(o);
  return rc;
}

static int fresh_opens_after(void *arg, int rc, long fired) {
  if (rc != 0 && (!fired || rc != PO_ESTORE)) return 1;
  return po_store_is_open(fresh) || open_fresh(arg) != 0;
}

static void databases_that_cannot_be_made(void) {
  snprintf(fresh, sizeof fresh, "%s/fresh", dir);
  fault_step step = {"open a new store", no_store, open_fresh, fresh_opens_after};
  CHECK_EQ_INT(fault_sweep_prepared(&step, "mdb_dbi_open", EIO, NULL, 20), 6); /* meta and the cache's five */
}

int main(void) {
  strcpy(dir, "/tmp/po-cache-disk-fault-XXXXXX");
  if (!mkdtemp(dir) || po_cache_disk_open(dir, "ns", &d) != 0) return 1;
  RUN(writes_fail_whole);
  RUN(allocation_failures_abort_writes);
  RUN(reads_report_failures);
  RUN(a_full_map_is_grown);
  RUN(opening_fails_cleanly);
  RUN(databases_that_cannot_be_made);
  po_cache_disk_close(d);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return TEST_SUMMARY();
}
