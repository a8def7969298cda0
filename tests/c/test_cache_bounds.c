/* The edges of the cache's C API (cache.h): the options, times and vectors
 * it refuses with PO_EINVAL (changing nothing), an entry found expired when
 * read after the per-operation sweep has done its share, two stores with the
 * same namespace kept apart, a batch-mode clear, and secret names made of
 * separators. */
#include "cache.h"
#include "error.h"

#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void nap(double seconds) {
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

static void open_refuses_bad_options(void) {
  po_cache_options o = {0};
  po_cache *c = NULL;
  CHECK_EQ_INT(po_cache_open(NULL, &c), PO_EINVAL);
  CHECK_EQ_INT(po_cache_open(&o, NULL), PO_EINVAL);
  char ns[300];
  memset(ns, 'n', sizeof ns - 1);
  ns[sizeof ns - 1] = '\0';
  o.ns = ns;
  CHECK_EQ_INT(po_cache_open(&o, &c), PO_EINVAL);
  o.ns = "bounds";
  o.policy = (po_cache_policy)7;
  CHECK_EQ_INT(po_cache_open(&o, &c), PO_EINVAL);
  CHECK(c == NULL);
  /* no max_entries: the default */
  o.policy = PO_CACHE_LRU;
  REQUIRE(po_cache_open(&o, &c) == 0);
  po_cache_options have;
  po_cache_config(c, &have);
  CHECK_EQ_INT(have.max_entries, 1000);
  po_cache_close(c);
}

static void bad_times_and_vectors_change_nothing(void) {
  po_cache_options o = {.ns = "bounds-times", .max_entries = 10};
  po_cache *c;
  REQUIRE(po_cache_open(&o, &c) == 0);
  REQUIRE(po_cache_set(c, "k", 1, "old", 3, 0, 0, PO_STORE_SYNC_NONE) == 0);
  const double bad_ttl[] = {-1, NAN, INFINITY};
  for (size_t i = 0; i < sizeof bad_ttl / sizeof *bad_ttl; i++)
    CHECK_EQ_INT(po_cache_set(c, "k", 1, "new", 3, 0, bad_ttl[i], PO_STORE_SYNC_NONE), PO_EINVAL);
  const double bad_time[] = {-1, NAN, INFINITY};
  for (size_t i = 0; i < sizeof bad_time / sizeof *bad_time; i++) {
    CHECK_EQ_INT(po_cache_put(c, "k", 1, "new", 3, 0, bad_time[i], 0, PO_STORE_SYNC_NONE), PO_EINVAL);
    CHECK_EQ_INT(po_cache_put(c, "k", 1, "new", 3, 0, 100, bad_time[i], PO_STORE_SYNC_NONE), PO_EINVAL);
  }
  po_cache_result r = {0};
  REQUIRE(po_cache_get(c, "k", 1, &r) == 0);
  CHECK(r.len == 3 && memcmp(r.value, "old", 3) == 0);

  const float v[2] = {1, 0}, zero[2] = {0, 0}, inf[2] = {INFINITY, 0};
  po_cache_vector q = {.group = po_cache_hash_key("g", 1), .text = "t", .text_len = 1, .vec = v, .dim = 2};
  REQUIRE(po_cache_set_vector(c, "s", 1, "sv", 2, 0, 0, PO_STORE_SYNC_NONE, &q) == 0);
  float score = 0;
  CHECK_EQ_INT(po_cache_semantic_get(c, &q, 0.5f, 0, &r, &score), PO_EINVAL);
  q.dim = 0;
  CHECK_EQ_INT(po_cache_semantic_get(c, &q, 0.5f, 1, &r, &score), PO_EINVAL);
  q.dim = PO_CACHE_MAX_DIM + 1;
  CHECK_EQ_INT(po_cache_semantic_get(c, &q, 0.5f, 1, &r, &score), PO_EINVAL);
  q.dim = 2;
  q.vec = zero; /* no direction: matches nothing */
  CHECK_EQ_INT(po_cache_semantic_get(c, &q, 0.5f, 1, &r, &score), PO_ENOENT);
  q.vec = inf;
  CHECK_EQ_INT(po_cache_semantic_get(c, &q, 0.5f, 1, &r, &score), PO_ENOENT);
  q.vec = v;
  CHECK_EQ_INT(po_cache_semantic_get(c, &q, 0.5f, 1, &r, &score), 0);
  CHECK(r.len == 2 && memcmp(r.value, "sv", 2) == 0);
  po_cache_result_free(&r);
  po_cache_close(c);
}

/* Three entries expire together in one shard; a read drops at most two
 * through the sweep, so the third is found expired in its slot: a miss,
 * counted as an expiration like the others (with a store, by the store,
 * which drops it when the read reaches it). */
static void an_entry_found_expired_is_a_miss(void) {
  char dir[64];
  strcpy(dir, "/tmp/po-cache-bounds-XXXXXX");
  REQUIRE(mkdtemp(dir));
  for (int with_store = 0; with_store <= 1; with_store++) {
    po_cache_options o = {.path = with_store ? dir : NULL, .ns = "bounds-expired", .max_entries = 10};
    po_cache *c;
    REQUIRE(po_cache_open(&o, &c) == 0);
    CHECK_EQ_INT(po_cache_set(c, "a", 1, "1", 1, 0, 0.01, PO_STORE_SYNC_NONE), 0);
    CHECK_EQ_INT(po_cache_set(c, "b", 1, "2", 1, 0, 0.02, PO_STORE_SYNC_NONE), 0);
    CHECK_EQ_INT(po_cache_set(c, "c", 1, "3", 1, 0, 0.03, PO_STORE_SYNC_NONE), 0);
    nap(0.1);
    po_cache_result r = {0};
    CHECK_EQ_INT(po_cache_get(c, "c", 1, &r), PO_ENOENT);
    po_cache_stats st;
    REQUIRE(po_cache_stats_get(c, &st) == 0);
    CHECK_EQ_INT(st.expirations, with_store ? 1 : 3); /* the store has dropped "c" only, so far */
    if (!with_store) CHECK_EQ_INT(st.size, 0);
    CHECK_EQ_INT(st.misses, 1);
    po_cache_result_free(&r);
    po_cache_close(c);
  }
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
}

/* A value longer than the result buffer's first size comes back whole. */
static void a_long_value_comes_back_whole(void) {
  po_cache_options o = {.ns = "bounds-long", .max_entries = 10};
  po_cache *c;
  REQUIRE(po_cache_open(&o, &c) == 0);
  char value[5000];
  for (size_t i = 0; i < sizeof value; i++) value[i] = (char)('a' + i % 26);
  po_cache_result r = {0};
  REQUIRE(po_cache_set(c, "short", 5, "x", 1, 0, 0, PO_STORE_SYNC_NONE) == 0);
  REQUIRE(po_cache_get(c, "short", 5, &r) == 0);
  REQUIRE(po_cache_set(c, "long", 4, value, sizeof value, 0, 0, PO_STORE_SYNC_NONE) == 0);
  REQUIRE(po_cache_get(c, "long", 4, &r) == 0);
  CHECK(r.len == sizeof value && memcmp(r.value, value, sizeof value) == 0);
  po_cache_result_free(&r);
  po_cache_close(c);
}

static void two_stores_keep_one_namespace_apart(void) {
  char a[64], b[64];
  strcpy(a, "/tmp/po-cache-bounds-XXXXXX");
  strcpy(b, "/tmp/po-cache-bounds-XXXXXX");
  REQUIRE(mkdtemp(a) && mkdtemp(b));
  po_cache_options oa = {.path = a, .ns = "same"}, ob = {.path = b, .ns = "same"};
  po_cache *ca, *cb, *ca2, *cm;
  po_cache_options om = {.ns = "same"}; /* and in memory only */
  REQUIRE(po_cache_open(&om, &cm) == 0);
  REQUIRE(po_cache_open(&oa, &ca) == 0);
  REQUIRE(po_cache_open(&ob, &cb) == 0);
  CHECK(ca != cb && ca != cm && cb != cm);
  REQUIRE(po_cache_open(&oa, &ca2) == 0);
  CHECK(ca == ca2);
  CHECK_EQ_INT(po_cache_set(ca, "k", 1, "in a", 4, 0, 0, PO_STORE_SYNC_BATCH), 0);
  po_cache_result r = {0};
  CHECK_EQ_INT(po_cache_get(cb, "k", 1, &r), PO_ENOENT);
  /* a batch-mode clear empties the store; closing flushes it */
  CHECK_EQ_INT(po_cache_clear(ca, PO_STORE_SYNC_BATCH), 0);
  po_cache_close(ca2);
  po_cache_close(ca);
  REQUIRE(po_cache_open(&oa, &ca) == 0);
  CHECK_EQ_INT(po_cache_get(ca, "k", 1, &r), PO_ENOENT);
  po_cache_stats st;
  REQUIRE(po_cache_stats_get(ca, &st) == 0);
  CHECK_EQ_INT(st.size, 0);
  po_cache_result_free(&r);
  po_cache_close(ca);
  po_cache_close(cb);
  po_cache_close(cm);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s %s", a, b);
  CHECK(system(cmd) == 0);
}

static int secret(const char *key, const char *parent) {
  return po_cache_secret_field(key, strlen(key), parent, parent ? strlen(parent) : 0);
}

static void separators_make_no_secret(void) {
  CHECK(!secret("n----", NULL)); /* one letter among separators */
  CHECK(!secret("e-n__", NULL)); /* ends like "token", too short once normalized */
  CHECK(secret("t-o-k-e-n", NULL));
  /* a parent too long to be a schema name map leaves a secret one */
  char parent[100];
  memset(parent, 'p', sizeof parent - 1);
  parent[sizeof parent - 1] = '\0';
  CHECK(secret("password", parent));
}

int main(void) {
  RUN(open_refuses_bad_options);
  RUN(bad_times_and_vectors_change_nothing);
  RUN(an_entry_found_expired_is_a_miss);
  RUN(a_long_value_comes_back_whole);
  RUN(two_stores_keep_one_namespace_apart);
  RUN(separators_make_no_secret);
  return TEST_SUMMARY();
}
