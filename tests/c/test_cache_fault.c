/* The response cache under injected faults (tests/c/fault.h): every
 * allocation of the memory tier, and every allocation and LMDB call of a
 * cache with a store, fails once in turn while a realistic session runs
 * (sets with and without a TTL, eviction, a reopen that reads the store,
 * delete, semantic lookups, stats, a prune by age and by bytes). Each time
 * an operation either works or returns a documented code, a lookup never
 * answers a value that was not the key's, and what the store holds stays
 * consistent with its counts. */
#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "cache_disk.h"
#include "error.h"
#include "fault.h"
#include "harness.h"

enum { NKEYS = 24, ATTEMPTS = 4, DIM = 8 };

/* What the session did to each key: the values it tried to set (value j is
 * "v<key>.<j>"), the last one that was acknowledged, and whether a delete
 * was acknowledged after it. */
typedef struct model {
  int attempts[NKEYS];
  int last_ok[NKEYS]; /* -1: none */
  int deleted[NKEYS];
  int failures;       /* operations that returned a failure code */
  int wrong;          /* outcomes that break the contract */
} model;

static void model_init(model *m) {
  memset(m, 0, sizeof *m);
  for (int i = 0; i < NKEYS; i++) m->last_ok[i] = -1;
}

static void key_of(int i, char *out) { snprintf(out, 16, "key-%02d", i); }

/* A failure is right only while a fault is armed, and only with a code the
 * operation documents. */
static void outcome(model *m, int rc, const char *what) {
  if (rc == 0) return;
  int documented = rc == PO_ENOMEM || rc == PO_ESTORE || rc == PO_EMAPFULL;
  if (!documented || !fault_fired()) {
    fprintf(stderr, "%s: unexpected %s (fault fired: %ld)\n", what, po_errname(rc), fault_fired());
    m->wrong++;
  }
  m->failures++;
}

static int set_key(po_cache *c, model *m, int i, double ttl) {
  char k[16], v[32];
  key_of(i, k);
  int j = m->attempts[i]++;
  snprintf(v, sizeof v, "v%d.%d", i, j);
  int rc = po_cache_set(c, k, strlen(k), v, strlen(v), (unsigned)i, ttl, PO_STORE_SYNC_NONE);
  outcome(m, rc, "set");
  if (rc == 0) {
    m->last_ok[i] = j;
    m->deleted[i] = 0;
  }
  return rc;
}

/* A hit must answer one of the values tried for the key, no older than the
 * last acknowledged one, with the key's flags; a key whose delete was
 * acknowledged (and not set again) must miss. Returns 1 for a hit. */
static int check_get(po_cache *c, model *m, int i, po_cache_result *r) {
  char k[16];
  key_of(i, k);
  int rc = po_cache_get(c, k, strlen(k), r);
  if (rc == PO_ENOENT) return 0;
  outcome(m, rc, "get");
  if (rc != 0) return 0;
  int key = -1, j = -1;
  char v[32];
  snprintf(v, sizeof v, "%.*s", (int)(r->len < 31 ? r->len : 31), r->value);
  if (sscanf(v, "v%d.%d", &key, &j) != 2 || key != i || j >= m->attempts[i] || j < m->last_ok[i] ||
      m->deleted[i] || r->flags != (unsigned)i) {
    fprintf(stderr, "get %s: wrong answer %s (last acknowledged %d)\n", k, v, m->last_ok[i]);
    m->wrong++;
  }
  return 1;
}

/* A unit-ish vector for key i: keys of the same parity point the same way,
 * slightly apart. */
static void vector_of(int i, float *vec) {
  for (int d = 0; d < DIM; d++) vec[d] = (float)((d + i) % 2 ? 1.0 : 0.1) + (float)i * 0.001f;
}

static po_cache_vector cache_vector(const float *vec, const char *text) {
  po_cache_vector v = {0};
  v.group = po_cache_hash_key("group", 5);
  v.embedder = "test";
  v.embedder_len = 4;
  v.text = text;
  v.text_len = strlen(text);
  v.vec = vec;
  v.dim = DIM;
  return v;
}

static void set_with_vector(po_cache *c, model *m, int i) {
  char k[16], v[32];
  float vec[DIM];
  key_of(i, k);
  vector_of(i, vec);
  int j = m->attempts[i]++;
  snprintf(v, sizeof v, "v%d.%d", i, j);
  po_cache_vector cv = cache_vector(vec, "what is the answer");
  int rc = po_cache_set_vector(c, k, strlen(k), v, strlen(v), (unsigned)i, 0, PO_STORE_SYNC_NONE, &cv);
  outcome(m, rc, "set_vector");
  /* PO_ENOMEM from the semantic tier after the entry was stored: the entry is there all the same. */
  if (rc == 0 || rc == PO_ENOMEM) m->last_ok[i] = rc == 0 ? j : m->last_ok[i];
  if (rc == 0) m->deleted[i] = 0;
}

/* A semantic lookup near key i's vector: a hit answers a value of a key
 * whose vector was stored, checked like an exact hit. */
static void semantic_lookup(po_cache *c, model *m, int i, po_cache_result *r) {
  float vec[DIM];
  vector_of(i, vec);
  po_cache_vector q = cache_vector(vec, "what is the answer");
  float score = 0;
  int rc = po_cache_semantic_get(c, &q, 0.9f, 4, r, &score);
  if (rc == PO_ENOENT) return;
  outcome(m, rc, "semantic_get");
  if (rc != 0) return;
  int key = -1, j = -1;
  char v[32];
  snprintf(v, sizeof v, "%.*s", (int)(r->len < 31 ? r->len : 31), r->value);
  if (sscanf(v, "v%d.%d", &key, &j) != 2 || key < 0 || key >= NKEYS || j >= m->attempts[key] || !(score >= 0.9f)) {
    fprintf(stderr, "semantic_get: wrong answer %s score %f\n", v, score);
    m->wrong++;
  }
}

/* ---- the memory tier ---------------------------------------------------------- */

/* max_entries 20 in one shard: the sets evict, grow the hash table, and push
 * on the expiry heap; then lookups, an overwrite, semantic sets and lookups,
 * a delete and the stats. */
static int memory_session(void *arg) {
  po_cache_policy policy = *(po_cache_policy *)arg;
  po_cache_options o = {.max_entries = 20, .policy = policy};
  po_cache *c = NULL;
  model m;
  model_init(&m);
  int rc = po_cache_open(&o, &c);
  if (rc != 0) {
    int ok = rc == PO_ENOMEM && fault_fired();
    if (!ok) fprintf(stderr, "memory open: %s\n", po_errname(rc));
    return ok ? 0 : 1;
  }
  po_cache_result r = {0};
  for (int i = 0; i < NKEYS; i++) set_key(c, &m, i, i % 3 ? 0 : 100);
  int hits = 0;
  for (int i = 0; i < NKEYS; i++) hits += check_get(c, &m, i, &r);
  set_key(c, &m, NKEYS - 1, 50);
  check_get(c, &m, NKEYS - 1, &r);
  for (int i = 0; i < 6; i++) set_with_vector(c, &m, i);
  semantic_lookup(c, &m, 2, &r);
  semantic_lookup(c, &m, 3, &r);
  char k[16];
  key_of(NKEYS - 2, k);
  rc = po_cache_delete(c, k, strlen(k), PO_STORE_SYNC_NONE);
  if (rc == 0) m.deleted[NKEYS - 2] = 1;
  else if (rc != PO_ENOENT) outcome(&m, rc, "delete");
  check_get(c, &m, NKEYS - 2, &r);
  po_cache_stats st;
  rc = po_cache_stats_get(c, &st);
  outcome(&m, rc, "stats");
  if (rc == 0 && (st.size > 20 || st.hits + st.misses < (uint64_t)NKEYS)) {
    fprintf(stderr, "memory stats: size %llu\n", (unsigned long long)st.size);
    m.wrong++;
  }
  /* Without a fault every key that fits was set, and the newest ones answer. */
  if (!fault_fired() && (m.failures || hits < 20)) {
    fprintf(stderr, "memory session: %d failures, %d hits without a fault\n", m.failures, hits);
    m.wrong++;
  }
  po_cache_result_free(&r);
  po_cache_close(c);
  return m.wrong ? 1 : 0;
}

static void memory_tier_survives_every_allocation_failure(void) {
  po_cache_policy lru = PO_CACHE_LRU, sieve = PO_CACHE_SIEVE;
  CHECK(fault_sweep("malloc", ENOMEM, memory_session, &lru, 400) > 10);
  CHECK(fault_sweep("malloc", ENOMEM, memory_session, &sieve, 400) > 10);
}

/* ---- with a store ---------------------------------------------------------------- */

static char base_dir[64];
static int run_no;

/* A fresh store directory for one run. */
static void fresh_dir(char *dir, size_t cap) {
  snprintf(dir, cap, "%s/r%d", base_dir, run_no++);
}

/* Removes a run's store directory (its files are all at the top). */
static void remove_run_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

/* Opens the cache of dir, or says whether the failure was a documented one. */
static int open_disk(const char *dir, po_cache **c, model *m) {
  po_cache_options o = {.path = dir, .max_entries = 16, .max_bytes = 4096, .policy = PO_CACHE_LRU};
  int rc = po_cache_open(&o, c);
  outcome(m, rc, "open");
  return rc;
}

/* With the fault disarmed: every key either misses or answers a right
 * value, and the store's count is the number of keys that answer. */
static void verify_store(const char *dir, model *m) {
  fault_disarm();
  po_cache *c;
  if (open_disk(dir, &c, m) != 0) {
    m->wrong++;
    return;
  }
  po_cache_result r = {0};
  int hits = 0;
  for (int i = 0; i < NKEYS; i++) hits += check_get(c, m, i, &r);
  po_cache_stats st;
  if (po_cache_stats_get(c, &st) != 0 || st.size != (uint64_t)hits) {
    fprintf(stderr, "store holds %llu entries, %d answer\n", (unsigned long long)st.size, hits);
    m->wrong++;
  }
  po_cache_result_free(&r);
  po_cache_close(c);
}

static int disk_session(void *arg) {
  (void)arg;
  char dir[96];
  fresh_dir(dir, sizeof dir);
  model m;
  model_init(&m);
  po_cache *c;
  po_cache_result r = {0};
  if (open_disk(dir, &c, &m) == 0) {
    for (int i = 0; i < NKEYS; i++) set_key(c, &m, i, i % 3 ? 0 : 100);
    for (int i = NKEYS - 4; i < NKEYS; i++) check_get(c, &m, i, &r);
    po_cache_close(c);
  }
  if (open_disk(dir, &c, &m) == 0) { /* a fresh memory tier: the reads go to the store */
    for (int i = NKEYS - 8; i < NKEYS; i++) check_get(c, &m, i, &r);
    for (int i = 0; i < 4; i++) set_with_vector(c, &m, i);
    semantic_lookup(c, &m, 1, &r);
    char k[16];
    key_of(NKEYS - 1, k);
    int rc = po_cache_delete(c, k, strlen(k), PO_STORE_SYNC_BATCH);
    if (rc == 0) m.deleted[NKEYS - 1] = 1;
    else if (rc != PO_ENOENT) outcome(&m, rc, "delete");
    po_cache_stats st;
    outcome(&m, po_cache_stats_get(c, &st), "stats");
    po_cache_close(c);
  }
  int fired = fault_fired() > 0;
  if (!fired && m.failures) m.wrong++;
  verify_store(dir, &m);
  remove_run_dir(dir);
  po_cache_result_free(&r);
  return m.wrong ? 1 : 0;
}

static void store_survives_every_allocation_failure(void) {
  CHECK(fault_sweep("malloc", ENOMEM, disk_session, NULL, 2000) > 10);
}

static void store_survives_every_lmdb_failure(void) {
  static const char *const calls[] = {"mdb_env_open", "mdb_txn_begin", "mdb_txn_commit", "mdb_put",
                                      "mdb_get",      "mdb_del",       "mdb_dbi_open",   "mdb_cursor_open",
                                      "mdb_cursor_get"};
  for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
    long runs = fault_sweep(calls[i], EIO, disk_session, NULL, 2000);
    if (runs < 1) fprintf(stderr, "%s: %ld runs\n", calls[i], runs);
    CHECK(runs >= 1);
  }
  /* A map that cannot grow: writes report PO_EMAPFULL. */
  CHECK(fault_sweep("mdb_put", MDB_MAP_FULL, disk_session, NULL, 2000) >= 1);
}

/* ---- pruning ---------------------------------------------------------------------- */

static uint64_t stored_entries(po_cache_disk *d) {
  po_cache_disk_info info;
  return po_cache_disk_info_get(d, 1000, &info) == 0 ? info.entries : UINT64_MAX;
}

/* Two namespaces of 20 entries each written at 100..119, a quarter of them
 * expired by 1000, some with a vector. */
static int fill(const char *dir, po_cache_disk **a, po_cache_disk **b) {
  int rc = po_cache_disk_open(dir, "alpha", a);
  if (rc == 0) rc = po_cache_disk_open(dir, "beta", b);
  for (int i = 0; rc == 0 && i < 40; i++) {
    char k[16], v[16];
    snprintf(k, sizeof k, "p%02d", i);
    snprintf(v, sizeof v, "value-%02d", i);
    po_cache_disk_write w = {.sync = PO_STORE_SYNC_NONE, .policy = PO_CACHE_LRU, .max_entries = 1000};
    po_cache_disk_vector vec = {k, strlen(k)};
    rc = po_cache_disk_put(i % 2 ? *b : *a, &w, po_cache_hash_key(k, strlen(k)), k, strlen(k), v, strlen(v), 0,
                           100 + i / 2, i % 4 == 0 ? 500 : 0, i % 5 == 0 ? &vec : NULL);
  }
  return rc;
}

/* Fills a fresh store, then runs a prune by age and by bytes in batches of
 * 3 (of one namespace, or of all) with the nth call of name failing. Whatever
 * the prune reports as removed is gone, no more (what committed before a
 * failure stays removed and counted), and a second prune finishes the job.
 * Returns 1 when the fault fired, 0 when the prune ran past it, -1 when
 * something went wrong. */
static int prune_once(const char *name, long nth, int err, int all) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  po_cache_disk *a = NULL, *b = NULL;
  int ok = fill(dir, &a, &b) == 0;
  uint64_t before = stored_entries(a) + (all ? stored_entries(b) : 0);
  po_cache_disk_prune p = {.now = 1000, .by_age = 1, .older_than = 1000 - 104, .by_bytes = 1,
                           .max_bytes = 60, .all_namespaces = all, .batch = 3};
  fault_arm(name, nth, 0, err);
  int rc = ok ? po_cache_disk_prune_run(a, &p) : 0;
  int fired = fault_fired() > 0;
  fault_disarm();
  if (ok) {
    uint64_t after = stored_entries(a) + (all ? stored_entries(b) : 0);
    if (after + p.removed != before) {
      fprintf(stderr, "prune: %llu before, %llu removed, %llu after\n", (unsigned long long)before,
              (unsigned long long)p.removed, (unsigned long long)after);
      ok = 0;
    }
    if (rc == 0 ? p.remaining != after || p.remaining_bytes > 60
                : !fired || !(rc == PO_ENOMEM || rc == PO_ESTORE || rc == PO_EMAPFULL)) {
      fprintf(stderr, "prune: %s, %llu remaining (%llu bytes)\n", po_errname(rc),
              (unsigned long long)p.remaining, (unsigned long long)p.remaining_bytes);
      ok = 0;
    }
    po_cache_disk_prune again = p;
    if (po_cache_disk_prune_run(a, &again) != 0 || again.remaining_bytes > 60) ok = 0;
  }
  po_cache_disk_close(b);
  po_cache_disk_close(a);
  remove_run_dir(dir);
  return !ok ? -1 : fired;
}

/* fault_sweep with the store filled before each arming. */
static long prune_sweep(const char *name, int err, int all) {
  for (long nth = 1; nth <= 4000; nth++) {
    int r = prune_once(name, nth, err, all);
    if (r < 0) {
      fprintf(stderr, "prune_sweep: %s call %ld failing (all %d) went wrong\n", name, nth, all);
      return -1;
    }
    if (r == 0) return nth - 1;
  }
  return -1;
}

static int count_ns(void *ctx, const char *ns, size_t len) {
  (void)ns;
  (void)len;
  ++*(int *)ctx;
  return 0;
}

/* Listing the namespaces: a failure is reported, never a short list. */
static int namespaces_session(void *arg) {
  const char *dir = arg;
  int n = 0;
  int rc = po_cache_disk_namespaces(dir, count_ns, &n);
  int fired = fault_fired() > 0;
  fault_disarm();
  int ok = rc == 0 ? n == 2 : fired && (rc == PO_ENOMEM || rc == PO_ESTORE || rc == PO_EMAPFULL);
  if (!ok) fprintf(stderr, "namespaces: %s, %d listed\n", po_errname(rc), n);
  return ok ? 0 : 1;
}

/* Inspecting a namespace: a failure is reported, never wrong figures. */
static int info_session(void *arg) {
  const char *dir = arg;
  po_cache_disk *d;
  int rc = po_cache_disk_open(dir, "alpha", &d);
  po_cache_disk_info info = {0};
  if (rc == 0) {
    rc = po_cache_disk_info_get(d, 1000, &info);
    po_cache_disk_close(d);
  }
  int fired = fault_fired() > 0;
  fault_disarm();
  int ok = rc == 0 ? info.entries == 20 && info.expired == 10 && info.vectors == 4
                   : fired && (rc == PO_ENOMEM || rc == PO_ESTORE || rc == PO_EMAPFULL);
  if (!ok) fprintf(stderr, "info: %s, %llu entries\n", po_errname(rc), (unsigned long long)info.entries);
  return ok ? 0 : 1;
}

static void prune_survives_every_failure(void) {
  static const char *const calls[] = {"malloc", "mdb_txn_begin", "mdb_txn_commit", "mdb_get", "mdb_put",
                                      "mdb_del", "mdb_cursor_open", "mdb_cursor_get"};
  for (int all = 0; all <= 1; all++) {
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
      long runs = prune_sweep(calls[i], strcmp(calls[i], "malloc") ? EIO : ENOMEM, all);
      if (runs < 1) fprintf(stderr, "%s (all %d): %ld runs\n", calls[i], all, runs);
      CHECK(runs >= 1);
    }
  }
}

static void listing_and_inspecting_survive_every_failure(void) {
  char dir[96];
  fresh_dir(dir, sizeof dir);
  po_cache_disk *a = NULL, *b = NULL;
  REQUIRE(fill(dir, &a, &b) == 0);
  po_cache_disk_close(b);
  po_cache_disk_close(a);
  static const char *const calls[] = {"malloc", "mdb_env_open", "mdb_txn_begin", "mdb_dbi_open",
                                      "mdb_cursor_open", "mdb_cursor_get"};
  for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
    int err = strcmp(calls[i], "malloc") ? EIO : ENOMEM;
    CHECK(fault_sweep(calls[i], err, namespaces_session, dir, 400) >= 1);
    CHECK(fault_sweep(calls[i], err, info_session, dir, 400) >= 1);
  }
}

int main(void) {
  /* Hundreds of stores are made: in memory where there is a tmpfs, so that their syncs cost nothing. */
  strcpy(base_dir, "/dev/shm/po-cache-fault-XXXXXX");
  if (!mkdtemp(base_dir)) {
    strcpy(base_dir, "/tmp/po-cache-fault-XXXXXX");
    if (!mkdtemp(base_dir)) return 1;
  }
  RUN(memory_tier_survives_every_allocation_failure);
  RUN(store_survives_every_allocation_failure);
  RUN(store_survives_every_lmdb_failure);
  RUN(prune_survives_every_failure);
  RUN(listing_and_inspecting_survive_every_failure);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", base_dir);
  if (system(cmd) != 0) return 1;
  return TEST_SUMMARY();
}
