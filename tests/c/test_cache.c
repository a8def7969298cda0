/* Tests for src/core/cache.c and cache_disk.c: the table, both eviction
 * policies in memory and in the store, TTL, limits, sharing, threads, and
 * several processes on one store. */
#include "cache.h"
#include "cache_semantic.h"
#include "error.h"
#include "ngram.h"
#include "store.h"

#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *temp_dir(void) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/po_cache_XXXXXX");
  return mkdtemp(path);
}

static void remove_dir(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

static void nap(double seconds) {
  struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

static po_cache *open_cache(const char *path, const char *ns, size_t max_entries, size_t max_bytes,
                            po_cache_policy policy) {
  po_cache_options o = {path, ns, max_entries, max_bytes, policy};
  po_cache *c = NULL;
  int rc = po_cache_open(&o, &c);
  if (rc != 0) fprintf(stderr, "po_cache_open: %s (%s)\n", po_strerror(rc), po_store_last_error());
  return c;
}

static int set_s(po_cache *c, const char *k, const char *v, double ttl) {
  return po_cache_set(c, k, strlen(k), v, strlen(v), 0, ttl, PO_STORE_SYNC_FULL);
}

/* Returns the value of k as a static string, or NULL on a miss. */
static const char *get_s(po_cache *c, const char *k) {
  static char buf[256];
  po_cache_result r = {0};
  int rc = po_cache_get(c, k, strlen(k), &r);
  const char *out = NULL;
  if (rc == 0 && r.len < sizeof buf) {
    memcpy(buf, r.value, r.len);
    buf[r.len] = '\0';
    out = buf;
  }
  po_cache_result_free(&r);
  return out;
}

static int has(po_cache *c, const char *k) { return get_s(c, k) != NULL; }

static void stats(po_cache *c, po_cache_stats *st) { CHECK(po_cache_stats_get(c, st) == 0); }

static void hash_is_stable_hex(void) {
  char hex[33];
  po_cache_hash_hex(po_cache_hash_key("abc", 3), hex);
  CHECK_EQ_INT(strlen(hex), 32);
  char again[33];
  po_cache_hash_hex(po_cache_hash_key("abc", 3), again);
  CHECK_EQ_STR(hex, again);
  po_cache_hash_hex(po_cache_hash_key("abd", 3), again);
  CHECK(strcmp(hex, again) != 0);
  /* XXH3-128 of the empty input, a published test vector. */
  po_cache_hash_hex(po_cache_hash_key("", 0), hex);
  CHECK_EQ_STR(hex, "99aa06d3014798d86001c324468d497f");
}

static void set_get_delete_overwrite(void) {
  po_cache *c = open_cache(NULL, "t1", 100, 0, PO_CACHE_LRU);
  REQUIRE(c);
  CHECK(get_s(c, "a") == NULL);
  CHECK(set_s(c, "a", "1", 0) == 0);
  CHECK_EQ_STR(get_s(c, "a"), "1");
  CHECK(set_s(c, "a", "2", 0) == 0);
  CHECK_EQ_STR(get_s(c, "a"), "2");
  CHECK(po_cache_set(c, "empty", 5, "", 0, 7, 0, PO_STORE_SYNC_FULL) == 0);
  po_cache_result r = {0};
  CHECK(po_cache_get(c, "empty", 5, &r) == 0);
  CHECK_EQ_INT(r.len, 0);
  CHECK_EQ_INT(r.flags, 7);
  po_cache_result_free(&r);
  CHECK(po_cache_delete(c, "a", 1, PO_STORE_SYNC_FULL) == 0);
  CHECK(po_cache_delete(c, "a", 1, PO_STORE_SYNC_FULL) == PO_ENOENT);
  CHECK(get_s(c, "a") == NULL);
  po_cache_stats st;
  stats(c, &st);
  CHECK_EQ_INT(st.size, 1);
  CHECK_EQ_INT(st.sets, 3);
  CHECK_EQ_INT(st.hits, 3);
  CHECK_EQ_INT(st.misses, 2);
  CHECK(po_cache_clear(c, PO_STORE_SYNC_FULL) == 0);
  stats(c, &st);
  CHECK_EQ_INT(st.size, 0);
  CHECK_EQ_INT(st.bytes, 0);
  po_cache_close(c);
}

static void full_key_rules_out_collisions(void) {
  po_cache *c = open_cache(NULL, "t2", 100, 0, PO_CACHE_LRU);
  REQUIRE(c);
  CHECK(set_s(c, "key one", "v", 0) == 0);
  /* The same hash with another key (as a collision would give) is a miss. */
  po_cache_result r = {0};
  CHECK(po_cache_get_hashed(c, po_cache_hash_key("key one", 7), "key two", 7, &r) == PO_ENOENT);
  CHECK(po_cache_get_hashed(c, po_cache_hash_key("key one", 7), "key one", 7, &r) == 0);
  po_cache_result_free(&r);
  po_cache_close(c);
}

static void lru_evicts_least_recently_used(void) {
  po_cache *c = open_cache(NULL, "t3", 3, 0, PO_CACHE_LRU);
  REQUIRE(c);
  set_s(c, "a", "1", 0);
  set_s(c, "b", "2", 0);
  set_s(c, "c", "3", 0);
  CHECK(has(c, "a")); /* a is now the most recent: b is next out */
  set_s(c, "d", "4", 0);
  CHECK(!has(c, "b"));
  CHECK(has(c, "a") && has(c, "c") && has(c, "d"));
  po_cache_stats st;
  stats(c, &st);
  CHECK_EQ_INT(st.evictions, 1);
  CHECK_EQ_INT(st.size, 3);
  po_cache_close(c);
}

static void sieve_keeps_visited_entries(void) {
  po_cache *c = open_cache(NULL, "t4", 3, 0, PO_CACHE_SIEVE);
  REQUIRE(c);
  set_s(c, "a", "1", 0);
  set_s(c, "b", "2", 0);
  set_s(c, "c", "3", 0);
  CHECK(has(c, "a"));
  CHECK(has(c, "b"));
  /* The hand starts at the oldest (a): a and b were visited and survive, c goes. */
  set_s(c, "d", "4", 0);
  CHECK(!has(c, "c"));
  CHECK(has(c, "a") && has(c, "b") && has(c, "d"));
  /* Those hits set a, b and d visited; the hand sits at b and clears its way round to... */
  set_s(c, "e", "5", 0);
  po_cache_stats st;
  stats(c, &st);
  CHECK_EQ_INT(st.size, 3);
  CHECK_EQ_INT(st.evictions, 2);
  CHECK(has(c, "e"));
  po_cache_close(c);
}

static void sieve_scan_resistance(void) {
  /* A hot set that is read between one-off keys stays cached under SIEVE. */
  po_cache *c = open_cache(NULL, "t5", 50, 0, PO_CACHE_SIEVE);
  REQUIRE(c);
  char k[32];
  for (int i = 0; i < 10; i++) {
    snprintf(k, sizeof k, "hot%d", i);
    set_s(c, k, "h", 0);
  }
  int hot_hits = 0;
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 10; i++) {
      snprintf(k, sizeof k, "hot%d", i);
      hot_hits += has(c, k);
    }
    for (int i = 0; i < 20; i++) {
      snprintf(k, sizeof k, "cold%d_%d", round, i);
      set_s(c, k, "c", 0);
    }
  }
  CHECK_EQ_INT(hot_hits, 200);
  po_cache_close(c);
}

static void max_bytes_bounds_memory(void) {
  po_cache *c = open_cache(NULL, "t6", 1000, 100, PO_CACHE_LRU);
  REQUIRE(c);
  char v[41];
  memset(v, 'x', 40);
  v[40] = '\0';
  CHECK(set_s(c, "k1", v, 0) == 0); /* 42 bytes each */
  CHECK(set_s(c, "k2", v, 0) == 0);
  CHECK(set_s(c, "k3", v, 0) == 0);
  po_cache_stats st;
  stats(c, &st);
  CHECK(st.bytes <= 100);
  CHECK_EQ_INT(st.size, 2);
  CHECK(!has(c, "k1"));
  char big[200];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CHECK(set_s(c, "big", big, 0) == PO_EINVAL);
  po_cache_close(c);
}

static void ttl_expires_on_read_and_incrementally(void) {
  po_cache *c = open_cache(NULL, "t7", 1000, 0, PO_CACHE_LRU);
  REQUIRE(c);
  CHECK(set_s(c, "short", "s", 0.05) == 0);
  CHECK(set_s(c, "forever", "f", 0) == 0);
  CHECK(set_s(c, "long", "l", 3600) == 0);
  CHECK(set_s(c, "neg", "n", -1) == PO_EINVAL);
  CHECK(has(c, "short"));
  nap(0.1);
  CHECK(!has(c, "short"));
  CHECK(has(c, "forever") && has(c, "long"));
  po_cache_stats st;
  stats(c, &st);
  CHECK_EQ_INT(st.expirations, 1);
  CHECK_EQ_INT(st.size, 2);

  /* Expired entries that are never read go too, a few per write. */
  char k[32];
  for (int i = 0; i < 20; i++) {
    snprintf(k, sizeof k, "gone%d", i);
    set_s(c, k, "g", 0.02);
  }
  nap(0.05);
  for (int i = 0; i < 20; i++) {
    snprintf(k, sizeof k, "new%d", i);
    set_s(c, k, "n", 0);
  }
  stats(c, &st);
  CHECK_EQ_INT(st.size, 22);
  CHECK_EQ_INT(st.expirations, 21);
  po_cache_close(c);
}

static void same_place_is_one_shared_object(void) {
  po_cache *a = open_cache(NULL, "shared", 10, 0, PO_CACHE_LRU);
  po_cache *b = open_cache(NULL, "shared", 500, 0, PO_CACHE_SIEVE);
  po_cache *other = open_cache(NULL, "other", 10, 0, PO_CACHE_LRU);
  REQUIRE(a && b && other);
  CHECK(a == b);
  CHECK(a != other);
  po_cache_options o;
  po_cache_config(b, &o);
  CHECK_EQ_INT(o.max_entries, 10); /* the first opener's limits */
  set_s(a, "k", "v", 0);
  CHECK(has(b, "k"));
  CHECK(!has(other, "k"));
  po_cache_close(a);
  CHECK(has(b, "k")); /* still open through b */
  po_cache_close(b);
  po_cache_close(other);
  po_cache *again = open_cache(NULL, "shared", 10, 0, PO_CACHE_LRU);
  REQUIRE(again);
  CHECK(!has(again, "k")); /* the last close freed it */
  po_cache_close(again);
}

typedef struct thread_arg {
  po_cache *c;
  int id;
  int errors;
} thread_arg;

static void *hammer(void *p) {
  thread_arg *a = p;
  char k[32], v[32];
  po_cache_result r = {0};
  for (int i = 0; i < 20000; i++) {
    int n = (i * 7 + a->id) % 500;
    snprintf(k, sizeof k, "key%d", n);
    snprintf(v, sizeof v, "value%d", n);
    if (i % 3 == 0) {
      if (po_cache_set(a->c, k, strlen(k), v, strlen(v), 0, 0, PO_STORE_SYNC_NONE) != 0) a->errors++;
    } else if (po_cache_get(a->c, k, strlen(k), &r) == 0) {
      if (r.len != strlen(v) || memcmp(r.value, v, r.len) != 0) a->errors++;
    }
  }
  po_cache_result_free(&r);
  return NULL;
}

static void threads_share_one_cache(void) {
  po_cache *c = open_cache(NULL, "threads", 300, 0, PO_CACHE_LRU);
  REQUIRE(c);
  pthread_t t[4];
  thread_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (thread_arg){c, i, 0};
    pthread_create(&t[i], NULL, hammer, &args[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    CHECK_EQ_INT(args[i].errors, 0);
  }
  po_cache_stats st;
  stats(c, &st);
  CHECK(st.size <= 300);
  CHECK_EQ_INT(st.hits + st.misses, 4 * (20000 - 6667));
  po_cache_close(c);
}

/* ---- the store ---------------------------------------------------------------- */

static void store_persists_across_reopen(void) {
  char *dir = temp_dir();
  REQUIRE(dir);
  po_cache *c = open_cache(dir, "p", 100, 0, PO_CACHE_LRU);
  REQUIRE(c);
  CHECK(set_s(c, "a", "alpha", 0) == 0);
  CHECK(po_cache_set(c, "b", 1, "beta", 4, 1, 0, PO_STORE_SYNC_BATCH) == 0);
  CHECK(po_cache_set(c, "c", 1, "gamma", 5, 0, 0, PO_STORE_SYNC_NONE) == 0);
  CHECK(set_s(c, "short", "s", 0.05) == 0);
  po_cache_close(c);

  c = open_cache(dir, "p", 100, 0, PO_CACHE_LRU);
  REQUIRE(c);
  po_cache_stats st;
  stats(c, &st);
  CHECK_EQ_INT(st.size, 4);
  CHECK_EQ_INT(st.bytes, 6 + 5 + 6 + 6);
  CHECK_EQ_STR(get_s(c, "a"), "alpha");
  po_cache_result r = {0};
  CHECK(po_cache_get(c, "b", 1, &r) == 0);
  CHECK_EQ_INT(r.flags, 1);
  CHECK(r.age >= 0 && r.age < 60);
  po_cache_result_free(&r);
  CHECK_EQ_STR(get_s(c, "c"), "gamma");
  nap(0.1);
  CHECK(!has(c, "short"));
  stats(c, &st);
  CHECK_EQ_INT(st.size, 3);
  CHECK_EQ_INT(st.expirations, 1);
  CHECK(po_cache_delete(c, "a", 1, PO_STORE_SYNC_FULL) == 0);
  CHECK(po_cache_delete(c, "a", 1, PO_STORE_SYNC_FULL) == PO_ENOENT);
  po_cache_close(c);

  c = open_cache(dir, "p", 100, 0, PO_CACHE_LRU);
  REQUIRE(c);
  CHECK(!has(c, "a"));
  CHECK(has(c, "b"));
  /* Other namespaces of the store are separate. */
  po_cache *o = open_cache(dir, "q", 100, 0, PO_CACHE_LRU);
  REQUIRE(o);
  CHECK(!has(o, "b"));
  set_s(o, "b", "other", 0);
  CHECK(po_cache_clear(c, PO_STORE_SYNC_FULL) == 0);
  CHECK(!has(c, "b"));
  CHECK_EQ_STR(get_s(o, "b"), "other");
  stats(c, &st);
  CHECK_EQ_INT(st.size, 0);
  po_cache_close(o);
  po_cache_close(c);
  remove_dir(dir);
}

static void store_evicts_by_policy(void) {
  char *dir = temp_dir();
  REQUIRE(dir);
  po_cache *c = open_cache(dir, "lru", 3, 0, PO_CACHE_LRU);
  REQUIRE(c);
  set_s(c, "a", "1", 0);
  set_s(c, "b", "2", 0);
  set_s(c, "c", "3", 0);
  CHECK(has(c, "a")); /* a memory hit: replayed into the store's recency by the next write */
  set_s(c, "d", "4", 0);
  po_cache_close(c);
  c = open_cache(dir, "lru", 3, 0, PO_CACHE_LRU);
  REQUIRE(c);
  CHECK(!has(c, "b"));
  CHECK(has(c, "a") && has(c, "c") && has(c, "d"));
  po_cache_stats st;
  stats(c, &st);
  CHECK_EQ_INT(st.size, 3);
  po_cache_close(c);

  c = open_cache(dir, "sieve", 3, 0, PO_CACHE_SIEVE);
  REQUIRE(c);
  set_s(c, "a", "1", 0);
  set_s(c, "b", "2", 0);
  set_s(c, "c", "3", 0);
  CHECK(has(c, "a"));
  CHECK(has(c, "b"));
  set_s(c, "d", "4", 0);
  po_cache_close(c);
  c = open_cache(dir, "sieve", 3, 0, PO_CACHE_SIEVE);
  REQUIRE(c);
  CHECK(!has(c, "c"));
  CHECK(has(c, "a") && has(c, "b") && has(c, "d"));
  po_cache_close(c);

  /* max_bytes bounds the namespace in the store. */
  c = open_cache(dir, "bytes", 1000, 50, PO_CACHE_LRU);
  REQUIRE(c);
  char k[16];
  for (int i = 0; i < 10; i++) {
    snprintf(k, sizeof k, "key%d", i);
    CHECK(set_s(c, k, "0123456789", 0) == 0); /* 14 bytes each */
  }
  stats(c, &st);
  CHECK(st.bytes <= 50);
  CHECK_EQ_INT(st.size, 3);
  CHECK_EQ_INT(st.evictions, 7);
  po_cache_close(c);
  remove_dir(dir);
}

static void store_drops_expired_without_reads(void) {
  char *dir = temp_dir();
  REQUIRE(dir);
  po_cache *c = open_cache(dir, "ttl", 1000, 0, PO_CACHE_LRU);
  REQUIRE(c);
  char k[16];
  for (int i = 0; i < 6; i++) {
    snprintf(k, sizeof k, "gone%d", i);
    set_s(c, k, "x", 0.02);
  }
  nap(0.05);
  set_s(c, "keep1", "k", 0); /* each write drops a few expired entries */
  set_s(c, "keep2", "k", 0);
  po_cache_stats st;
  stats(c, &st);
  CHECK_EQ_INT(st.size, 2);
  CHECK_EQ_INT(st.expirations, 6);
  po_cache_close(c);
  remove_dir(dir);
}

static void newer_schema_is_refused(void) {
  char *dir = temp_dir();
  REQUIRE(dir);
  po_store *s;
  REQUIRE(po_store_open(dir, NULL, &s) == 0);
  MDB_dbi meta;
  REQUIRE(po_store_dbi(s, "meta", 0, &meta) == 0);
  po_store_close(s);
  /* Write a newer schema number straight into meta with LMDB. */
  MDB_env *env;
  MDB_txn *txn;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 32);
  REQUIRE(mdb_env_open(env, dir, 0, 0600) == 0);
  REQUIRE(mdb_txn_begin(env, NULL, 0, &txn) == 0);
  REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
  uint32_t v = PO_STORE_SCHEMA + 1;
  MDB_val key = {6, "schema"}, val = {sizeof v, &v};
  REQUIRE(mdb_put(txn, meta, &key, &val, 0) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
  po_cache_options o = {dir, "x", 10, 0, PO_CACHE_LRU};
  po_cache *c = NULL;
  CHECK(po_cache_open(&o, &c) == PO_ESCHEMA);
  CHECK(c == NULL);
  CHECK(strstr(po_store_last_error(), "newer") != NULL);
  remove_dir(dir);
}

/* A child process writes; the parent, which read the old values into its
 * memory tier first, sees the new one and the deletion. The child is forked
 * before the parent opens anything (an LMDB environment must not cross a
 * fork) and waits on a pipe for its turn. */
static void processes_see_each_others_writes(void) {
  char *dir = temp_dir();
  REQUIRE(dir);
  char path[64];
  snprintf(path, sizeof path, "%s", dir);
  int go[2], done[2];
  REQUIRE(pipe(go) == 0 && pipe(done) == 0);
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    char b;
    int ok = read(go[0], &b, 1) == 1;
    po_cache *c = ok ? open_cache(path, "mp", 1000, 0, PO_CACHE_LRU) : NULL;
    ok = c && set_s(c, "k", "new", 0) == 0 && po_cache_delete(c, "gone", 4, PO_STORE_SYNC_FULL) == 0 &&
         set_s(c, "fresh", "f", 0) == 0;
    po_cache_close(c);
    b = ok ? 'y' : 'n';
    ssize_t w = write(done[1], &b, 1);
    _exit(w == 1 && ok ? 0 : 1);
  }
  po_cache *c = open_cache(path, "mp", 1000, 0, PO_CACHE_LRU);
  REQUIRE(c);
  set_s(c, "k", "old", 0);
  set_s(c, "gone", "x", 0);
  CHECK_EQ_STR(get_s(c, "k"), "old");
  CHECK(has(c, "gone"));
  CHECK(!has(c, "fresh"));
  char b = 'g';
  CHECK(write(go[1], &b, 1) == 1);
  CHECK(read(done[0], &b, 1) == 1);
  CHECK(b == 'y');
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_EQ_STR(get_s(c, "k"), "new");
  CHECK(!has(c, "gone"));
  CHECK_EQ_STR(get_s(c, "fresh"), "f");
  po_cache_stats st;
  stats(c, &st);
  CHECK_EQ_INT(st.size, 2);
  po_cache_close(c);
  close(go[0]), close(go[1]), close(done[0]), close(done[1]);
  remove_dir(dir);
}

/* ---- the semantic tier ------------------------------------------------------------ */

static po_cache_vector text_vector(const char *params, const char *text, float *buf) {
  po_ngram_embed(text, strlen(text), buf);
  po_cache_vector v = {po_cache_sem_group(params, strlen(params), PO_NGRAM_EMBEDDER_ID, strlen(PO_NGRAM_EMBEDDER_ID)),
                       PO_NGRAM_EMBEDDER_ID, strlen(PO_NGRAM_EMBEDDER_ID), text, strlen(text), buf, PO_NGRAM_DIM};
  return v;
}

static int sem_set(po_cache *c, const char *params, const char *text, const char *value) {
  float buf[PO_NGRAM_DIM];
  po_cache_vector v = text_vector(params, text, buf);
  char key[512];
  snprintf(key, sizeof key, "%s|%s", params, text);
  return po_cache_set_vector(c, key, strlen(key), value, strlen(value), 0, 0, PO_STORE_SYNC_FULL, &v);
}

/* The value a semantic lookup finds (static), or NULL. */
static const char *sem_get(po_cache *c, const char *params, const char *text, float threshold, float *score) {
  static char out[256];
  float buf[PO_NGRAM_DIM];
  po_cache_vector v = text_vector(params, text, buf);
  po_cache_result r = {0};
  int rc = po_cache_semantic_get(c, &v, threshold, 8, &r, score);
  const char *res = NULL;
  if (rc == 0 && r.len < sizeof out) {
    memcpy(out, r.value, r.len);
    out[r.len] = '\0';
    res = out;
  }
  po_cache_result_free(&r);
  return res;
}

static void semantic_matches_within_a_group_only(void) {
  po_cache *c = open_cache(NULL, "sem1", 100, 0, PO_CACHE_LRU);
  REQUIRE(c);
  CHECK(sem_set(c, "model=a", "Sort the list of names alphabetically and print it.", "sorted") == 0);
  float score = 0;
  CHECK_EQ_STR(sem_get(c, "model=a", "sort the list of names  alphabetically and print it", 0.9f, &score), "sorted");
  CHECK(score > 0.9f && score <= 1.0001f);
  CHECK(sem_get(c, "model=b", "sort the list of names alphabetically and print it", 0.5f, &score) == NULL);
  CHECK(sem_get(c, "model=a", "Sort the list of names alphabetically and print it 2 times.", 0.5f, &score) == NULL);
  po_cache_stats st;
  stats(c, &st);
  CHECK_EQ_INT(st.semantic_hits, 1);
  /* A vector of another dimension in the same group is refused. */
  float small[3] = {1, 0, 0};
  po_cache_vector v = text_vector("model=a", "x", (float[PO_NGRAM_DIM]){0});
  v.vec = small;
  v.dim = 3;
  CHECK(po_cache_set_vector(c, "k", 1, "v", 1, 0, 0, PO_STORE_SYNC_FULL, &v) == PO_EINVAL);
  po_cache_close(c);
}

static void semantic_vectors_stay_bounded(void) {
  po_cache *c = open_cache(NULL, "sem2", 10, 0, PO_CACHE_LRU);
  REQUIRE(c);
  char text[64];
  for (int i = 0; i < 500; i++) {
    snprintf(text, sizeof text, "prompt number %d about topic %d", i, i * 7);
    CHECK(sem_set(c, "p", text, "v") == 0);
  }
  po_cache_stats st;
  stats(c, &st);
  CHECK_EQ_INT(st.size, 10);
  float score;
  CHECK(sem_get(c, "p", "Prompt number 499 about topic 3493", 0.9f, &score) != NULL);
  CHECK(sem_get(c, "p", "Prompt number 3 about topic 21", 0.9f, &score) == NULL); /* evicted */
  po_cache_close(c);
}

static void semantic_vectors_persist(void) {
  char *dir = temp_dir();
  REQUIRE(dir);
  po_cache *c = open_cache(dir, "sem3", 100, 0, PO_CACHE_LRU);
  REQUIRE(c);
  CHECK(sem_set(c, "m", "Translate good morning into French.", "bonjour") == 0);
  CHECK(sem_set(c, "m", "Translate good night into French.", "bonne nuit") == 0);
  po_cache_close(c);
  c = open_cache(dir, "sem3", 100, 0, PO_CACHE_LRU);
  REQUIRE(c);
  float score;
  CHECK_EQ_STR(sem_get(c, "m", "translate good morning into french", 0.9f, &score), "bonjour");
  CHECK(po_cache_clear(c, PO_STORE_SYNC_FULL) == 0);
  CHECK(sem_get(c, "m", "translate good night into french", 0.5f, &score) == NULL);
  po_cache_close(c);
  remove_dir(dir);
}

int main(void) {
  RUN(hash_is_stable_hex);
  RUN(set_get_delete_overwrite);
  RUN(full_key_rules_out_collisions);
  RUN(lru_evicts_least_recently_used);
  RUN(sieve_keeps_visited_entries);
  RUN(sieve_scan_resistance);
  RUN(max_bytes_bounds_memory);
  RUN(ttl_expires_on_read_and_incrementally);
  RUN(same_place_is_one_shared_object);
  RUN(threads_share_one_cache);
  RUN(store_persists_across_reopen);
  RUN(store_evicts_by_policy);
  RUN(store_drops_expired_without_reads);
  RUN(newer_schema_is_refused);
  RUN(processes_see_each_others_writes);
  RUN(semantic_matches_within_a_group_only);
  RUN(semantic_vectors_stay_bounded);
  RUN(semantic_vectors_persist);
  return TEST_SUMMARY();
}
