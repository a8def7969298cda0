/* Tests for src/core/cache_disk.c: the cache's persistent tier on its own —
 * entries in and out, TTL expiry, eviction order (LRU and SIEVE),
 * namespaces, counts, and the two defects of issue 14: a count that
 * disagrees with the stored entries (the eviction loop spun forever) and a
 * TTL too large for the expiry index (the entry was dropped as expired). */
#include "cache_disk.h"
#include "cache_disk_internal.h"
#include "error.h"

#include "harness.h"

#include <lmdb.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

static char *temp_dir(void) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/po_cache_disk_XXXXXX");
  return mkdtemp(path);
}

static void remove_dir(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

static po_cache_disk_write limits(po_cache_policy policy, uint64_t max_entries) {
  po_cache_disk_write w = {0};
  w.sync = PO_STORE_SYNC_NONE;
  w.policy = policy;
  w.max_entries = max_entries;
  return w;
}

/* Puts key -> value, created at `at`, expiring at `expires` (0: never). */
static int put_at(po_cache_disk *d, po_cache_disk_write *w, const char *key, const char *value, double at,
                  double expires) {
  return po_cache_disk_put(d, w, po_cache_hash_key(key, strlen(key)), key, strlen(key), value, strlen(value), 0, at,
                           expires, NULL);
}

static int put(po_cache_disk *d, po_cache_disk_write *w, const char *key, const char *value) {
  return put_at(d, w, key, value, 1000, 0);
}

/* 0 and the value in *out, or the failure. */
static int get_at(po_cache_disk *d, const char *key, double now, po_strbuf *out, int *expired) {
  po_cache_disk_entry e;
  int exp;
  int rc = po_cache_disk_get(d, po_cache_hash_key(key, strlen(key)), key, strlen(key), now, &e, out, NULL,
                             expired ? expired : &exp);
  if (rc == 0) po_strbuf_append(out, "", 1); /* NUL-terminated for CHECK_EQ_STR */
  return rc;
}

static int has(po_cache_disk *d, const char *key) {
  po_strbuf v = {0};
  int rc = get_at(d, key, 1000, &v, NULL);
  po_strbuf_free(&v);
  return rc == 0;
}

static uint64_t count_of(po_cache_disk *d) {
  uint64_t n = 0, bytes = 0;
  po_cache_disk_size(d, &n, &bytes);
  return n;
}

static void entries_in_and_out(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 100);
  REQUIRE(put(d, &w, "question", "answer") == 0);
  CHECK_EQ_INT(w.replaced, 0);
  po_strbuf v = {0}, k = {0};
  CHECK(get_at(d, "question", 1000, &v, NULL) == 0);
  CHECK_EQ_STR(v.data, "answer");
  /* The hash's entry answers only its own full key. */
  po_cache_disk_entry e;
  int expired;
  po_cache_hash h = po_cache_hash_key("question", 8);
  CHECK(po_cache_disk_get(d, h, "questioN", 8, 1000, &e, &v, NULL, &expired) == PO_ENOENT);
  CHECK(po_cache_disk_get(d, h, NULL, 0, 1000, &e, &v, &k, &expired) == 0);
  CHECK(k.len == 8 && memcmp(k.data, "question", 8) == 0);
  CHECK(e.created == 1000 && e.expires == 0);
  REQUIRE(put(d, &w, "question", "another answer") == 0);
  CHECK_EQ_INT(w.replaced, 1);
  CHECK(get_at(d, "question", 1000, &v, NULL) == 0);
  CHECK_EQ_STR(v.data, "another answer");
  uint64_t n, bytes;
  CHECK(po_cache_disk_size(d, &n, &bytes) == 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(bytes, strlen("question") + strlen("another answer"));
  CHECK(po_cache_disk_delete(d, PO_STORE_SYNC_NONE, h, "question", 8) == 0);
  CHECK(po_cache_disk_delete(d, PO_STORE_SYNC_NONE, h, "question", 8) == PO_ENOENT);
  CHECK(!has(d, "question"));
  CHECK_EQ_INT(count_of(d), 0);
  po_strbuf_free(&v);
  po_strbuf_free(&k);
  po_cache_disk_close(d);
  remove_dir(dir);
}

static void entries_expire(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 100);
  REQUIRE(put_at(d, &w, "short", "lived", 1000, 1005) == 0);
  po_strbuf v = {0};
  int expired = -1;
  CHECK(get_at(d, "short", 1004, &v, &expired) == 0);
  CHECK_EQ_INT(expired, 0);
  CHECK(get_at(d, "short", 1005, &v, &expired) == PO_ENOENT);
  CHECK_EQ_INT(expired, 1);
  /* Not expired yet at 1004: drop_expired leaves it. */
  po_cache_hash h = po_cache_hash_key("short", 5);
  CHECK(po_cache_disk_drop_expired(d, h, 1004) == PO_ENOENT);
  CHECK_EQ_INT(count_of(d), 1);
  /* A later write drops what has expired by its time. */
  REQUIRE(put_at(d, &w, "later", "write", 1010, 0) == 0);
  CHECK_EQ_INT(w.expired, 1);
  CHECK_EQ_INT(count_of(d), 1);
  CHECK(po_cache_disk_drop_expired(d, h, 2000) == PO_ENOENT);
  po_strbuf_free(&v);
  po_cache_disk_close(d);
  remove_dir(dir);
}

/* Issue 14, defect 4: 1000 + 2e16 s is finite but beyond 64 bits of ms. */
static void a_huge_ttl_never_expires(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 100);
  REQUIRE(put_at(d, &w, "forever", "kept", 1000, 1000 + 2e16) == 0);
  REQUIRE(put_at(d, &w, "kind of", "forever", 1000, 1000 + 1e300) == 0);
  REQUIRE(put_at(d, &w, "next", "write", 2000, 0) == 0);
  CHECK_EQ_INT(w.expired, 0);
  CHECK(has(d, "forever"));
  CHECK(has(d, "kind of"));
  CHECK_EQ_INT(count_of(d), 3);
  po_cache_disk_close(d);
  remove_dir(dir);
}

static void lru_evicts_the_least_recently_used(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 3);
  REQUIRE(put(d, &w, "a", "1") == 0);
  REQUIRE(put(d, &w, "b", "2") == 0);
  REQUIRE(put(d, &w, "c", "3") == 0);
  CHECK_EQ_INT(w.evicted, 0);
  po_cache_hash used = po_cache_hash_key("a", 1);
  w.touched = &used;
  w.ntouched = 1;
  REQUIRE(put(d, &w, "d", "4") == 0); /* a was used since: b is the oldest */
  CHECK_EQ_INT(w.evicted, 1);
  CHECK(has(d, "a") && !has(d, "b") && has(d, "c") && has(d, "d"));
  w.ntouched = 0;
  REQUIRE(put(d, &w, "e", "5") == 0);
  CHECK(!has(d, "c") && has(d, "a"));
  CHECK_EQ_INT(count_of(d), 3);
  po_cache_disk_close(d);
  remove_dir(dir);
}

static void sieve_spares_visited_entries(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_SIEVE, 3);
  REQUIRE(put(d, &w, "a", "1") == 0);
  REQUIRE(put(d, &w, "b", "2") == 0);
  REQUIRE(put(d, &w, "c", "3") == 0);
  po_cache_hash used[2] = {po_cache_hash_key("a", 1), po_cache_hash_key("b", 1)};
  w.touched = used;
  w.ntouched = 2;
  REQUIRE(put(d, &w, "d", "4") == 0); /* a and b visited: the hand passes them to c */
  CHECK(has(d, "a") && has(d, "b") && !has(d, "c") && has(d, "d"));
  w.ntouched = 0;
  REQUIRE(put(d, &w, "e", "5") == 0); /* the hand moved on to d, unvisited */
  CHECK(!has(d, "d") && has(d, "a") && has(d, "b") && has(d, "e"));
  po_cache_disk_close(d);
  remove_dir(dir);
}

static void max_bytes_evicts_until_it_fits(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 100);
  w.max_bytes = 30;
  REQUIRE(put(d, &w, "k1", "0123456789") == 0);  /* 12 bytes */
  REQUIRE(put(d, &w, "k2", "0123456789") == 0);  /* 24 */
  REQUIRE(put(d, &w, "k3", "01234567890123") == 0); /* 40: k1 goes, 28 fit */
  CHECK_EQ_INT(w.evicted, 1);
  uint64_t n, bytes;
  CHECK(po_cache_disk_size(d, &n, &bytes) == 0);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(bytes, 28);
  CHECK(!has(d, "k1") && has(d, "k2"));
  po_cache_disk_close(d);
  remove_dir(dir);
}

static void namespaces_do_not_mix(void) {
  char *dir = temp_dir();
  po_cache_disk *a, *b;
  REQUIRE(po_cache_disk_open(dir, "one", &a) == 0);
  REQUIRE(po_cache_disk_open(dir, "two", &b) == 0);
  CHECK(po_cache_disk_store(a) == po_cache_disk_store(b));
  po_cache_disk_write w = limits(PO_CACHE_LRU, 2);
  REQUIRE(put(a, &w, "same key", "in one") == 0);
  REQUIRE(put(b, &w, "same key", "in two") == 0);
  REQUIRE(put(b, &w, "other", "in two") == 0);
  REQUIRE(put(b, &w, "third", "in two") == 0); /* evicts in two only */
  po_strbuf v = {0};
  CHECK(get_at(a, "same key", 1000, &v, NULL) == 0);
  CHECK_EQ_STR(v.data, "in one");
  CHECK(!has(b, "same key"));
  CHECK_EQ_INT(count_of(a), 1);
  CHECK_EQ_INT(count_of(b), 2);
  uint64_t gen = po_cache_disk_gen(b);
  CHECK(po_cache_disk_clear(b, PO_STORE_SYNC_NONE) == 0);
  CHECK(po_cache_disk_gen(b) > gen);
  CHECK_EQ_INT(count_of(b), 0);
  CHECK(has(a, "same key"));
  po_strbuf_free(&v);
  po_cache_disk_close(a);
  po_cache_disk_close(b);
  remove_dir(dir);
}

/* Overwrites the count in namespace ns's record (offset 8, see ns_hdr). */
typedef struct count_ctx {
  MDB_dbi dbi;
  uint64_t id, count;
  int zero_bytes; /* the bytes (offset 16) set to 0 too */
} count_ctx;

static int set_count(MDB_txn *txn, void *ud) {
  count_ctx *c = ud;
  MDB_val k = {8, &c->id}, v;
  int rc = mdb_get(txn, c->dbi, &k, &v);
  if (rc != 0) return po_store_error(rc);
  unsigned char rec[512];
  if (v.mv_size > sizeof rec) return PO_EINVAL;
  memcpy(rec, v.mv_data, v.mv_size);
  memcpy(rec + 8, &c->count, 8);
  if (c->zero_bytes) memset(rec + 16, 0, 8);
  v.mv_data = rec;
  return po_store_error(mdb_put(txn, c->dbi, &k, &v, 0));
}

static int put_with_a_wrong_count(const char *dir) {
  po_cache_disk *d;
  if (po_cache_disk_open(dir, "ns", &d) != 0) return 1;
  po_cache_disk_write w = limits(PO_CACHE_LRU, 10);
  w.policy = getenv("PO_TEST_SIEVE") ? PO_CACHE_SIEVE : PO_CACHE_LRU;
  if (put(d, &w, "only", "entry") != 0) return 2;
  count_ctx c = {.id = XXH3_64bits("ns", 2), .count = 100};
  if (po_store_dbi(po_cache_disk_store(d), "cache_ns", 0, &c.dbi) != 0) return 3;
  if (po_store_write(po_cache_disk_store(d), PO_STORE_SYNC_NONE, set_count, &c) != 0) return 4;
  if (put(d, &w, "new", "entry") != 0) return 5;
  /* Eviction took "only" and then, with nothing left but the new entry,
   * the count was put right. */
  int rc = count_of(d) == 1 && !has(d, "only") && has(d, "new") ? 0 : 6;
  po_cache_disk_close(d);
  return rc;
}

static void a_wrong_count_cannot_hang_a_write(void) {
  for (int sieve = 0; sieve < 2; sieve++) {
    char *dir = temp_dir();
    if (sieve) setenv("PO_TEST_SIEVE", "1", 1);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      alarm(20); /* the bug: spinning forever */
      exit(put_with_a_wrong_count(dir)); /* exit: a coverage build writes the child's counts */
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK_EQ_INT(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), 0);
    unsetenv("PO_TEST_SIEVE");
    remove_dir(dir);
  }
}

/* ---- damaged records, written with their real bytes ------------------------ */

/* Puts (value non-NULL) or deletes key in the named database of d's store. */
typedef struct raw_ctx {
  MDB_dbi dbi;
  const void *key, *value;
  size_t klen, vlen;
} raw_ctx;

static int raw_fn(MDB_txn *txn, void *ud) {
  raw_ctx *c = ud;
  MDB_val k = {c->klen, (void *)c->key}, v = {c->vlen, (void *)c->value};
  return po_store_error(c->value ? mdb_put(txn, c->dbi, &k, &v, 0) : mdb_del(txn, c->dbi, &k, NULL));
}

static int raw(po_cache_disk *d, const char *db, const void *key, size_t klen, const void *value, size_t vlen) {
  raw_ctx c = {0, key, value, klen, vlen};
  int rc = po_store_dbi(po_cache_disk_store(d), db, 0, &c.dbi);
  return rc ? rc : po_store_write(po_cache_disk_store(d), PO_STORE_SYNC_NONE, raw_fn, &c);
}

/* The keys of key's records in d's namespace (see cache_disk_internal.h). */
static void entry_key_of(const char *ns, const char *key, unsigned char k[ENTRY_KEY]) {
  uint64_t id = XXH3_64bits(ns, strlen(ns));
  po_cache_hash h = po_cache_hash_key(key, strlen(key));
  memcpy(k, &id, NS_ID);
  memcpy(k + NS_ID, &h.lo, 8);
  memcpy(k + NS_ID + 8, &h.hi, 8);
}

static void seq_key_of(const char *ns, uint64_t seq, unsigned char k[ORDER_KEY]) {
  uint64_t id = XXH3_64bits(ns, strlen(ns));
  memcpy(k, &id, NS_ID);
  for (int i = 7; i >= 0; i--, seq >>= 8) k[NS_ID + i] = (unsigned char)seq;
}

/* key's stored record header, read with its real bytes (version 0: none). */
static entry_hdr header_of(po_cache_disk *d, const char *key) {
  entry_hdr h = {0};
  unsigned char k[ENTRY_KEY];
  entry_key_of("ns", key, k);
  MDB_dbi dbi;
  MDB_txn *txn;
  if (po_store_dbi(po_cache_disk_store(d), "cache_entries", 0, &dbi) != 0 ||
      po_store_read_begin(po_cache_disk_store(d), &txn) != 0)
    return h;
  MDB_val kv = {sizeof k, k}, v;
  if (mdb_get(txn, dbi, &kv, &v) == 0 && v.mv_size >= sizeof h) memcpy(&h, v.mv_data, sizeof h);
  po_store_read_end(po_cache_disk_store(d), txn);
  return h;
}

static void damaged_records_are_estore(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 100);
  REQUIRE(put(d, &w, "a", "1") == 0);
  unsigned char k[ENTRY_KEY];
  entry_key_of("ns", "a", k);
  po_cache_hash h = po_cache_hash_key("a", 1);
  entry_hdr hdr = header_of(d, "a");
  unsigned char rec[sizeof hdr + 2];
  /* cut inside the header; another record version; a key longer than the record */
  REQUIRE(raw(d, "cache_entries", k, sizeof k, "short", 5) == 0);
  po_strbuf v = {0};
  CHECK_EQ_INT(get_at(d, "a", 1000, &v, NULL), PO_ESTORE);
  CHECK_EQ_INT(po_cache_disk_delete(d, PO_STORE_SYNC_NONE, h, "a", 1), PO_ESTORE);
  hdr.version = RECORD_VERSION + 1;
  memcpy(rec, &hdr, sizeof hdr);
  memcpy(rec + sizeof hdr, "a1", 2);
  REQUIRE(raw(d, "cache_entries", k, sizeof k, rec, sizeof rec) == 0);
  CHECK_EQ_INT(get_at(d, "a", 1000, &v, NULL), PO_ESTORE);
  hdr.version = RECORD_VERSION;
  hdr.klen = 3;
  memcpy(rec, &hdr, sizeof hdr);
  REQUIRE(raw(d, "cache_entries", k, sizeof k, rec, sizeof rec) == 0);
  CHECK_EQ_INT(get_at(d, "a", 1000, &v, NULL), PO_ESTORE);
  /* A write that meets the damaged record fails whole. */
  CHECK_EQ_INT(put(d, &w, "a", "2"), PO_ESTORE);
  /* The namespace record cut short. */
  uint64_t id = XXH3_64bits("ns", 2), n, bytes;
  REQUIRE(raw(d, "cache_ns", &id, sizeof id, "cut", 3) == 0);
  CHECK_EQ_INT(po_cache_disk_size(d, &n, &bytes), PO_ESTORE);
  CHECK_EQ_INT(po_cache_disk_vector_seq(d, &n), PO_ESTORE);
  CHECK_EQ_INT(put(d, &w, "b", "1"), PO_ESTORE);
  po_strbuf_free(&v);
  po_cache_disk_close(d);
  remove_dir(dir);
}

/* An order record of the wrong size met by eviction: the write fails whole. */
static void a_damaged_order_record_fails_the_write(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 1);
  REQUIRE(put(d, &w, "a", "1") == 0);
  unsigned char k[ORDER_KEY];
  seq_key_of("ns", 0, k); /* before every real seq: the first eviction looks at it */
  REQUIRE(raw(d, "cache_order", k, sizeof k, "odd", 3) == 0);
  CHECK_EQ_INT(put(d, &w, "b", "2"), PO_ESTORE);
  CHECK(has(d, "a") && !has(d, "b"));
  po_cache_disk_close(d);
  remove_dir(dir);
}

/* Records that point at nothing (left by damage) are dropped when met, and
 * never block the entries behind them. */
static void dangling_records_are_dropped(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 100);
  /* Four expiring entries lose their records; a fifth expires later. */
  const char *gone[4] = {"g1", "g2", "g3", "g4"};
  for (int i = 0; i < 4; i++) REQUIRE(put_at(d, &w, gone[i], "x", 1000, 1001) == 0);
  REQUIRE(put_at(d, &w, "real", "x", 1000, 1002) == 0);
  for (int i = 0; i < 4; i++) {
    unsigned char k[ENTRY_KEY];
    entry_key_of("ns", gone[i], k);
    REQUIRE(raw(d, "cache_entries", k, sizeof k, NULL, 0) == 0);
  }
  REQUIRE(put_at(d, &w, "w1", "x", 2000, 0) == 0);
  CHECK_EQ_INT(w.expired, 0); /* the four dangling expiry keys went first */
  REQUIRE(put_at(d, &w, "w2", "x", 2000, 0) == 0);
  CHECK_EQ_INT(w.expired, 1); /* then the real one: they did not come back */
  CHECK(!has(d, "real"));
  /* The four order records left point at nothing: eviction drops them and
   * goes on to w1 and w2; the count, wrong since the damage, is put right. */
  w.max_entries = 2;
  REQUIRE(put(d, &w, "w3", "x") == 0);
  CHECK_EQ_INT(w.evicted, 2);
  CHECK(!has(d, "w1") && !has(d, "w2") && has(d, "w3"));
  CHECK_EQ_INT(count_of(d), 1);
  /* An entry whose order record is gone still deletes whole. */
  entry_hdr hdr = header_of(d, "w3");
  REQUIRE(hdr.version == RECORD_VERSION);
  unsigned char k[ORDER_KEY];
  seq_key_of("ns", hdr.seq, k);
  REQUIRE(raw(d, "cache_order", k, sizeof k, NULL, 0) == 0);
  CHECK_EQ_INT(po_cache_disk_delete(d, PO_STORE_SYNC_NONE, po_cache_hash_key("w3", 2), "w3", 2), 0);
  CHECK_EQ_INT(count_of(d), 0);
  po_cache_disk_close(d);
  remove_dir(dir);
}

static int stop_at_first(void *ctx, uint64_t seq, const void *record, size_t len) {
  (void)record, (void)len;
  *(uint64_t *)ctx = seq;
  return PO_ECANCELED;
}

/* Arguments and limits at their edges. */
static void edges(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  char ns[MAX_NS + 2];
  memset(ns, 'n', sizeof ns - 1);
  ns[sizeof ns - 1] = '\0';
  CHECK_EQ_INT(po_cache_disk_open(dir, ns, &d), PO_EINVAL); /* one byte too long */
  ns[MAX_NS] = '\0';
  REQUIRE(po_cache_disk_open(dir, ns, &d) == 0);
  po_cache_disk_close(d);
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 0);
  po_cache_hash h = po_cache_hash_key("k", 1);
  CHECK_EQ_INT(po_cache_disk_put(d, &w, h, "k", (size_t)UINT32_MAX + 1, "", 0, 0, 1000, 0, NULL), PO_EINVAL);
  /* max_entries 0 keeps the entry being set, and only it. */
  REQUIRE(put(d, &w, "a", "") == 0);
  REQUIRE(put(d, &w, "b", "") == 0);
  CHECK(!has(d, "a") && has(d, "b"));
  CHECK_EQ_INT(count_of(d), 1);
  /* An empty value reads back empty. */
  po_strbuf v = {0};
  CHECK(get_at(d, "b", 1000, &v, NULL) == 0 && v.len == 1);
  /* A key of another length under the same hash is another key. */
  po_cache_hash hb = po_cache_hash_key("b", 1);
  CHECK_EQ_INT(po_cache_disk_delete(d, PO_STORE_SYNC_NONE, hb, "bb", 2), PO_ENOENT);
  CHECK_EQ_INT(po_cache_disk_delete(d, PO_STORE_SYNC_NONE, hb, "c", 1), PO_ENOENT);
  /* Never expires: drop_expired leaves it at any time. */
  CHECK_EQ_INT(po_cache_disk_drop_expired(d, hb, 1e12), PO_ENOENT);
  CHECK(has(d, "b"));
  /* A vector callback's code stops the scan and is returned. */
  w.max_entries = 10;
  po_cache_disk_vector vec = {"r", 1};
  for (int i = 0; i < 2; i++)
    REQUIRE(po_cache_disk_put(d, &w, po_cache_hash_key(i ? "v2" : "v1", 2), i ? "v2" : "v1", 2, "x", 1, 0, 1000, 0,
                              &vec) == 0);
  uint64_t seen = 0, last = 0;
  CHECK_EQ_INT(po_cache_disk_vectors(d, 0, stop_at_first, &seen, &last), PO_ECANCELED);
  CHECK(seen > 0 && last == 0);
  uint64_t highest = 0;
  CHECK_EQ_INT(po_cache_disk_vector_seq(d, &highest), 0);
  CHECK_EQ_INT(highest, 2);
  po_strbuf_free(&v);
  po_cache_disk_close(d);
  po_cache_disk_close(NULL);
  remove_dir(dir);
}

/* The generation file is not a regular file, or the store cannot be made:
 * the open fails and leaves nothing open. */
static void an_unusable_directory_is_refused(void) {
  char *dir = temp_dir();
  char path[128];
  snprintf(path, sizeof path, "%s/cache-gen", dir);
  REQUIRE(mkfifo(path, 0600) == 0);
  po_cache_disk *d;
  CHECK_EQ_INT(po_cache_disk_open(dir, "ns", &d), PO_EIO);
  CHECK(!po_store_is_open(dir));
  snprintf(path, sizeof path, "%s/file", dir);
  FILE *f = fopen(path, "w");
  REQUIRE(f && fclose(f) == 0);
  snprintf(path, sizeof path, "%s/file/store", dir);
  CHECK_EQ_INT(po_cache_disk_open(path, "ns", &d), PO_EPERM);
  remove_dir(dir);
}

static int count_records(void *ctx, uint64_t seq, const void *record, size_t len) {
  (void)seq, (void)record, (void)len;
  ++*(int *)ctx;
  return 0;
}

/* Expiry, eviction, recounting and vector scans stop at the namespace's
 * end: the namespace whose id sorts next keeps everything. */
static void work_stays_in_its_namespace(void) {
  char *dir = temp_dir();
  uint64_t one = XXH3_64bits("one", 3), two = XXH3_64bits("two", 3);
  const char *lo_name = memcmp(&one, &two, 8) < 0 ? "one" : "two";
  const char *hi_name = lo_name[1] == 'n' ? "two" : "one";
  po_cache_disk *lo, *hi;
  REQUIRE(po_cache_disk_open(dir, lo_name, &lo) == 0);
  REQUIRE(po_cache_disk_open(dir, hi_name, &hi) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 10);
  po_cache_disk_vector vec = {"r", 1};
  for (int i = 0; i < 2; i++)
    REQUIRE(po_cache_disk_put(i ? hi : lo, &w, po_cache_hash_key("e", 1), "e", 1, "x", 1, 0, 1000, 1001, &vec) == 0);
  w.max_entries = 0;
  REQUIRE(put_at(lo, &w, "n", "x", 2000, 0) == 0);
  CHECK_EQ_INT(w.expired, 1);
  CHECK_EQ_INT(count_of(lo), 1);
  CHECK(has(lo, "n"));
  int n = 0;
  uint64_t last = 0;
  CHECK(po_cache_disk_vectors(lo, 0, count_records, &n, &last) == 0 && n == 0);
  CHECK_EQ_INT(count_of(hi), 1);
  CHECK(po_cache_disk_vectors(hi, 0, count_records, &n, &last) == 0 && n == 1);
  po_strbuf v = {0};
  CHECK(get_at(hi, "e", 1000, &v, NULL) == 0);
  po_strbuf_free(&v);
  po_cache_disk_close(lo);
  po_cache_disk_close(hi);
  remove_dir(dir);
}

/* A namespace record whose count and bytes are already 0 (damage): removing
 * an entry leaves them at 0, never wraps them around. */
static void counts_never_wrap(void) {
  char *dir = temp_dir();
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "ns", &d) == 0);
  po_cache_disk_write w = limits(PO_CACHE_LRU, 10);
  REQUIRE(put(d, &w, "a", "1") == 0);
  count_ctx c = {.id = XXH3_64bits("ns", 2), .count = 0, .zero_bytes = 1};
  REQUIRE(po_store_dbi(po_cache_disk_store(d), "cache_ns", 0, &c.dbi) == 0);
  REQUIRE(po_store_write(po_cache_disk_store(d), PO_STORE_SYNC_NONE, set_count, &c) == 0);
  CHECK_EQ_INT(po_cache_disk_delete(d, PO_STORE_SYNC_NONE, po_cache_hash_key("a", 1), "a", 1), 0);
  uint64_t n = 1, bytes = 1;
  CHECK(po_cache_disk_size(d, &n, &bytes) == 0);
  CHECK_EQ_INT(n, 0);
  CHECK_EQ_INT(bytes, 0);
  po_cache_disk_close(d);
  remove_dir(dir);
}

int main(void) {
  RUN(entries_in_and_out);
  RUN(entries_expire);
  RUN(a_huge_ttl_never_expires);
  RUN(lru_evicts_the_least_recently_used);
  RUN(sieve_spares_visited_entries);
  RUN(max_bytes_evicts_until_it_fits);
  RUN(namespaces_do_not_mix);
  RUN(a_wrong_count_cannot_hang_a_write);
  RUN(damaged_records_are_estore);
  RUN(a_damaged_order_record_fails_the_write);
  RUN(dangling_records_are_dropped);
  RUN(edges);
  RUN(an_unusable_directory_is_refused);
  RUN(work_stays_in_its_namespace);
  RUN(counts_never_wrap);
  return TEST_SUMMARY();
}
