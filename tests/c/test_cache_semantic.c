/* Tests for src/core/cache_semantic.c: groups, the vector record, adding,
 * searching (threshold, false-hit guard, groups, best first), removal and
 * purging, and the memo of recent misses' vectors. */
#include "cache_semantic.h"

#include "error.h"
#include "ngram.h"
#include "semantic.h"

#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EMBEDDER PO_NGRAM_EMBEDDER_ID

static po_cache_hash group_of(const char *params) {
  return po_cache_sem_group(params, strlen(params), EMBEDDER, strlen(EMBEDDER));
}

static po_cache_hash entry_of(const char *text) { return po_cache_hash_key(text, strlen(text)); }

static int same_hash(po_cache_hash a, po_cache_hash b) { return a.lo == b.lo && a.hi == b.hi; }

/* Adds the n-gram vector of text, as the entry keyed by text, to group g
 * under id. Returns add_record's code. */
static int add_text(po_cache_sem *s, uint64_t id, po_cache_hash g, const char *text) {
  float vec[PO_NGRAM_DIM];
  po_ngram_embed(text, strlen(text), vec);
  po_cache_vector v = {g, EMBEDDER, strlen(EMBEDDER), text, strlen(text), vec, PO_NGRAM_DIM};
  po_strbuf rec = {0};
  int rc = po_cache_sem_encode(&v, entry_of(text), &rec);
  if (rc == 0) rc = po_cache_sem_add_record(s, id, rec.data, rec.len);
  po_strbuf_free(&rec);
  return rc;
}

/* Searches group g for text's n-gram vector. */
static int search_text(po_cache_sem *s, po_cache_hash g, const char *text, float threshold, int k,
                       po_cache_sem_candidate *out) {
  float q[PO_NGRAM_DIM];
  po_ngram_embed(text, strlen(text), q);
  return po_cache_sem_search(s, g, q, PO_NGRAM_DIM, text, strlen(text), threshold, k, out);
}

static void groups_separate_parameters_and_embedders(void) {
  po_cache_hash a = group_of("params-a");
  CHECK(same_hash(a, group_of("params-a")));
  CHECK(!same_hash(a, group_of("params-b")));
  CHECK(!same_hash(a, po_cache_sem_group("params-a", 8, "other-embedder", 14)));
  /* the parameters end where the embedder id begins */
  CHECK(!same_hash(po_cache_sem_group("ab", 2, "c", 1), po_cache_sem_group("a", 1, "bc", 2)));
}

static void record_holds_the_unit_vector_and_the_text(void) {
  float vec[3] = {3, 0, 4};
  const char *text = "some text";
  po_cache_vector v = {group_of("p"), "toy", 3, text, strlen(text), vec, 3};
  po_strbuf rec = {0};
  REQUIRE(po_cache_sem_encode(&v, entry_of(text), &rec) == 0);
  CHECK_EQ_INT(rec.len, 41 + 3 + strlen(text) + 3 * sizeof(float));
  CHECK_EQ_INT((unsigned char)rec.data[0], 1); /* version */
  CHECK_EQ_INT((unsigned char)rec.data[40], 3); /* embedder id length */
  CHECK(memcmp(rec.data + 41, "toy", 3) == 0);
  CHECK(memcmp(rec.data + 44, text, strlen(text)) == 0);
  float stored[3];
  memcpy(stored, rec.data + 44 + strlen(text), sizeof stored);
  CHECK(fabsf(stored[0] - 0.6f) < 1e-6f && stored[1] == 0 && fabsf(stored[2] - 0.8f) < 1e-6f);

  /* An n-gram vector (unit length already) is stored bit for bit. */
  float ng[PO_NGRAM_DIM];
  po_ngram_embed(text, strlen(text), ng);
  po_cache_vector u = {group_of("p"), EMBEDDER, strlen(EMBEDDER), text, strlen(text), ng, PO_NGRAM_DIM};
  REQUIRE(po_cache_sem_encode(&u, entry_of(text), &rec) == 0);
  CHECK(memcmp(rec.data + rec.len - sizeof ng, ng, sizeof ng) == 0);
  po_strbuf_free(&rec);
}

static void encode_refuses_what_cannot_be_compared(void) {
  float zero[4] = {0}, bad[2] = {1, NAN}, inf[2] = {INFINITY, 1}, one[1] = {1};
  po_strbuf rec = {0};
  po_cache_vector v = {group_of("p"), "toy", 3, "t", 1, zero, 4};
  CHECK_EQ_INT(po_cache_sem_encode(&v, entry_of("t"), &rec), PO_EINVAL);
  v.vec = bad;
  v.dim = 2;
  CHECK_EQ_INT(po_cache_sem_encode(&v, entry_of("t"), &rec), PO_EINVAL);
  v.vec = inf;
  CHECK_EQ_INT(po_cache_sem_encode(&v, entry_of("t"), &rec), PO_EINVAL);
  v.vec = one;
  v.dim = 0;
  CHECK_EQ_INT(po_cache_sem_encode(&v, entry_of("t"), &rec), PO_EINVAL);
  v.dim = PO_CACHE_MAX_DIM + 1;
  CHECK_EQ_INT(po_cache_sem_encode(&v, entry_of("t"), &rec), PO_EINVAL);
  char long_id[300];
  memset(long_id, 'x', sizeof long_id);
  v.dim = 1;
  v.embedder = long_id;
  v.embedder_len = 256;
  CHECK_EQ_INT(po_cache_sem_encode(&v, entry_of("t"), &rec), PO_EINVAL);
  v.embedder_len = 255;
  CHECK_EQ_INT(po_cache_sem_encode(&v, entry_of("t"), &rec), 0);
  po_strbuf_free(&rec);
}

static void add_refuses_malformed_records_and_other_dims(void) {
  po_cache_sem *s;
  REQUIRE(po_cache_sem_new(&s) == 0);
  po_cache_hash g = group_of("p");
  float vec[4] = {1, 2, 3, 4};
  po_cache_vector v = {g, "toy", 3, "text", 4, vec, 4};
  po_strbuf rec = {0};
  REQUIRE(po_cache_sem_encode(&v, entry_of("text"), &rec) == 0);
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, rec.data, 10), PO_EINVAL);          /* shorter than a header */
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, rec.data, rec.len - 1), PO_EINVAL); /* truncated */
  rec.data[0] = 2;                                                               /* a newer version */
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, rec.data, rec.len), PO_EINVAL);
  rec.data[0] = 1;
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, rec.data, rec.len), 0);
  CHECK_EQ_INT(po_cache_sem_dim(s, g), 4);
  CHECK_EQ_INT(po_cache_sem_dim(s, group_of("q")), 0);
  v.dim = 3; /* the group's vectors have 4 */
  REQUIRE(po_cache_sem_encode(&v, entry_of("other"), &rec) == 0);
  CHECK_EQ_INT(po_cache_sem_add_record(s, 2, rec.data, rec.len), PO_EINVAL);
  CHECK_EQ_INT(po_cache_sem_count(s), 1);
  po_strbuf_free(&rec);
  po_cache_sem_free(s);
}

static const char *const stored[] = {
    "Write a Python function that returns the sum of a list of integers.",
    "Retry the request 3 times before giving up.",
    "Explain the difference between TCP and UDP in two sentences.",
};

static po_cache_sem *filled(po_cache_hash g) {
  po_cache_sem *s;
  if (po_cache_sem_new(&s) != 0) return NULL;
  for (int i = 0; i < 3; i++) CHECK_EQ_INT(add_text(s, (uint64_t)i + 1, g, stored[i]), 0);
  return s;
}

static void search_finds_near_duplicates_above_the_threshold(void) {
  po_cache_hash g = group_of("p");
  po_cache_sem *s = filled(g);
  REQUIRE(s);
  CHECK_EQ_INT(po_cache_sem_count(s), 3);
  po_cache_sem_candidate out[8];
  const char *query = "write a python function  that returns the sum of a list of integers";
  int n = search_text(s, g, query, 0.95f, 8, out);
  REQUIRE(n == 1);
  CHECK_EQ_INT(out[0].id, 1);
  CHECK(same_hash(out[0].entry, entry_of(stored[0])));
  double expected;
  po_semantic_similarity(query, strlen(query), stored[0], strlen(stored[0]), &expected);
  CHECK(fabs(out[0].score - expected) < 1e-6);
  /* the same query under a threshold above its score */
  CHECK_EQ_INT(search_text(s, g, query, (float)expected + 0.001f, 8, out), 0);
  /* an unrelated text is below the threshold */
  CHECK_EQ_INT(search_text(s, g, "Summarize the plot of Hamlet.", 0.95f, 8, out), 0);
  po_cache_sem_free(s);
}

static void search_refuses_other_facts_groups_and_dims(void) {
  po_cache_hash g = group_of("p");
  po_cache_sem *s = filled(g);
  REQUIRE(s);
  po_cache_sem_candidate out[8];
  /* similar enough by score, but another number: the guard refuses it */
  const char *five = "Retry the request 5 times before giving up.";
  double score;
  po_semantic_similarity(five, strlen(five), stored[1], strlen(stored[1]), &score);
  CHECK(score > 0.5);
  CHECK_EQ_INT(search_text(s, g, five, 0.5f, 8, out), 0);
  CHECK_EQ_INT(search_text(s, g, "retry the request 3 times before giving up", 0.5f, 8, out), 1);
  /* another group (other parameters or embedder) holds none of them */
  CHECK_EQ_INT(search_text(s, group_of("q"), stored[0], 0.5f, 8, out), 0);
  /* a query of another dimension compares with nothing */
  float q[4] = {1, 0, 0, 0};
  CHECK_EQ_INT(po_cache_sem_search(s, g, q, 4, stored[0], strlen(stored[0]), -1, 8, out), 0);
  po_cache_sem_free(s);
}

static void search_gives_the_best_first_up_to_k(void) {
  po_cache_hash g = group_of("p");
  po_cache_sem *s;
  REQUIRE(po_cache_sem_new(&s) == 0);
  /* rewordings the content-word guard lets through (case, punctuation,
   * filler), at different n-gram scores */
  const char *texts[] = {"Sort the list of words by their length", "sort the list of words by their length.",
                         "Please, sort the LIST of words by their length!"};
  for (int i = 0; i < 3; i++) CHECK_EQ_INT(add_text(s, (uint64_t)i + 10, g, texts[i]), 0);
  po_cache_sem_candidate out[8];
  int n = search_text(s, g, texts[0], 0.5f, 8, out);
  REQUIRE(n == 3);
  CHECK_EQ_INT(out[0].id, 10); /* itself, score 1 */
  CHECK(out[0].score > 0.9999f);
  CHECK(out[0].score >= out[1].score && out[1].score >= out[2].score);
  CHECK_EQ_INT(search_text(s, g, texts[0], 0.5f, 2, out), 2);
  po_cache_sem_free(s);
}

static void an_entry_keeps_one_vector_per_group(void) {
  po_cache_hash g = group_of("p");
  po_cache_sem *s;
  REQUIRE(po_cache_sem_new(&s) == 0);
  const char *text = stored[2];
  float a[PO_NGRAM_DIM], b[PO_NGRAM_DIM];
  po_ngram_embed(text, strlen(text), a);
  po_ngram_embed(stored[0], strlen(stored[0]), b);
  po_strbuf rec = {0};
  /* the same entry set twice: the second vector replaces the first */
  po_cache_vector v = {g, EMBEDDER, strlen(EMBEDDER), text, strlen(text), a, PO_NGRAM_DIM};
  REQUIRE(po_cache_sem_encode(&v, entry_of(text), &rec) == 0);
  REQUIRE(po_cache_sem_add_record(s, 1, rec.data, rec.len) == 0);
  v.vec = b;
  REQUIRE(po_cache_sem_encode(&v, entry_of(text), &rec) == 0);
  REQUIRE(po_cache_sem_add_record(s, 2, rec.data, rec.len) == 0);
  CHECK_EQ_INT(po_cache_sem_count(s), 1);
  po_cache_sem_candidate out[8];
  float q[PO_NGRAM_DIM];
  po_ngram_embed(text, strlen(text), q);
  CHECK_EQ_INT(po_cache_sem_search(s, g, q, PO_NGRAM_DIM, text, strlen(text), 0.99f, 8, out), 0);
  /* the same id again (a store record read twice) replaces too */
  REQUIRE(po_cache_sem_add_record(s, 2, rec.data, rec.len) == 0);
  CHECK_EQ_INT(po_cache_sem_count(s), 1);
  /* in another group, the entry has a vector of its own */
  v.group = group_of("q");
  REQUIRE(po_cache_sem_encode(&v, entry_of(text), &rec) == 0);
  REQUIRE(po_cache_sem_add_record(s, 3, rec.data, rec.len) == 0);
  CHECK_EQ_INT(po_cache_sem_count(s), 2);
  po_strbuf_free(&rec);
  po_cache_sem_free(s);
}

static int keep_only(void *ctx, po_cache_hash entry) { return same_hash(entry, *(po_cache_hash *)ctx); }

static void remove_and_purge_drop_vectors(void) {
  po_cache_hash g = group_of("p");
  po_cache_sem *s = filled(g);
  REQUIRE(s);
  po_cache_sem_candidate out[8];
  po_cache_sem_remove(s, 1);
  po_cache_sem_remove(s, 99); /* absent: nothing happens */
  CHECK_EQ_INT(po_cache_sem_count(s), 2);
  CHECK_EQ_INT(search_text(s, g, stored[0], 0.5f, 8, out), 0);
  po_cache_hash keep = entry_of(stored[2]);
  po_cache_sem_purge(s, keep_only, &keep);
  CHECK_EQ_INT(po_cache_sem_count(s), 1);
  CHECK_EQ_INT(search_text(s, g, stored[1], 0.5f, 8, out), 0);
  REQUIRE(search_text(s, g, stored[2], 0.5f, 8, out) == 1);
  CHECK(same_hash(out[0].entry, keep));
  po_cache_sem_free(s);
}

/* More vectors than the maps' first buckets: every one still found by id. */
static void holds_many_vectors(void) {
  po_cache_hash g = group_of("p");
  po_cache_sem *s;
  REQUIRE(po_cache_sem_new(&s) == 0);
  char text[64];
  for (int i = 0; i < 500; i++) {
    snprintf(text, sizeof text, "prompt number %d about topic %d", i, i * 7);
    REQUIRE(add_text(s, (uint64_t)i, g, text) == 0);
  }
  CHECK_EQ_INT(po_cache_sem_count(s), 500);
  for (int i = 0; i < 500; i += 2) po_cache_sem_remove(s, (uint64_t)i);
  CHECK_EQ_INT(po_cache_sem_count(s), 250);
  po_cache_sem_candidate out[4];
  snprintf(text, sizeof text, "prompt number %d about topic %d", 333, 333 * 7);
  REQUIRE(search_text(s, g, text, 0.99f, 4, out) == 1);
  CHECK_EQ_INT(out[0].id, 333);
  snprintf(text, sizeof text, "prompt number %d about topic %d", 332, 332 * 7);
  CHECK_EQ_INT(search_text(s, g, text, 0.99f, 4, out), 0);
  po_cache_sem_free(s);
}

static float *vector_of(float x, int dim) {
  float *v = malloc((size_t)dim * sizeof *v);
  for (int i = 0; v && i < dim; i++) v[i] = x;
  return v;
}

static void memo_gives_a_miss_vector_to_its_set_once(void) {
  po_cache_memo m = {0};
  const char *key = "the request";
  po_cache_hash h = entry_of(key), g = group_of("p"), got_g;
  float *vec;
  int dim;
  CHECK_EQ_INT(po_cache_memo_take(&m, h, key, strlen(key), &got_g, &vec, &dim), PO_ENOENT);
  REQUIRE(po_cache_memo_put(&m, h, key, strlen(key), g, vector_of(0.5f, 8), 8) == 0);
  /* the same hash with other bytes is another key */
  CHECK_EQ_INT(po_cache_memo_take(&m, h, "the requesT", strlen(key), &got_g, &vec, &dim), PO_ENOENT);
  REQUIRE(po_cache_memo_take(&m, h, key, strlen(key), &got_g, &vec, &dim) == 0);
  CHECK(same_hash(got_g, g));
  CHECK_EQ_INT(dim, 8);
  CHECK(vec[0] == 0.5f && vec[7] == 0.5f);
  free(vec);
  CHECK_EQ_INT(po_cache_memo_take(&m, h, key, strlen(key), &got_g, &vec, &dim), PO_ENOENT);
  po_cache_memo_free(&m);
}

static void memo_keeps_the_last_misses(void) {
  po_cache_memo m = {0};
  char keys[PO_CACHE_MEMO_SLOTS + 1][16];
  po_cache_hash g = group_of("p"), got_g;
  float *vec;
  int dim;
  for (int i = 0; i <= PO_CACHE_MEMO_SLOTS; i++) {
    snprintf(keys[i], sizeof keys[i], "key %d", i);
    REQUIRE(po_cache_memo_put(&m, entry_of(keys[i]), keys[i], strlen(keys[i]), g, vector_of((float)i, 2), 2) == 0);
  }
  /* the first was replaced by the last; the others are there */
  CHECK_EQ_INT(po_cache_memo_take(&m, entry_of(keys[0]), keys[0], strlen(keys[0]), &got_g, &vec, &dim), PO_ENOENT);
  for (int i = 1; i <= PO_CACHE_MEMO_SLOTS; i++) {
    REQUIRE(po_cache_memo_take(&m, entry_of(keys[i]), keys[i], strlen(keys[i]), &got_g, &vec, &dim) == 0);
    CHECK(vec[0] == (float)i);
    free(vec);
  }
  /* a key missed again keeps one slot, with its newer vector */
  const char *k = keys[1];
  REQUIRE(po_cache_memo_put(&m, entry_of(k), k, strlen(k), g, vector_of(1, 2), 2) == 0);
  REQUIRE(po_cache_memo_put(&m, entry_of(k), k, strlen(k), g, vector_of(2, 2), 2) == 0);
  REQUIRE(po_cache_memo_take(&m, entry_of(k), k, strlen(k), &got_g, &vec, &dim) == 0);
  CHECK(vec[0] == 2);
  free(vec);
  CHECK_EQ_INT(po_cache_memo_take(&m, entry_of(k), k, strlen(k), &got_g, &vec, &dim), PO_ENOENT);
  /* freeing releases what is left and empties it; twice is safe */
  REQUIRE(po_cache_memo_put(&m, entry_of(k), k, strlen(k), g, vector_of(3, 2), 2) == 0);
  po_cache_memo_free(&m);
  CHECK_EQ_INT(po_cache_memo_take(&m, entry_of(k), k, strlen(k), &got_g, &vec, &dim), PO_ENOENT);
  po_cache_memo_free(&m);
}

int main(void) {
  RUN(groups_separate_parameters_and_embedders);
  RUN(record_holds_the_unit_vector_and_the_text);
  RUN(encode_refuses_what_cannot_be_compared);
  RUN(add_refuses_malformed_records_and_other_dims);
  RUN(search_finds_near_duplicates_above_the_threshold);
  RUN(search_refuses_other_facts_groups_and_dims);
  RUN(search_gives_the_best_first_up_to_k);
  RUN(an_entry_keeps_one_vector_per_group);
  RUN(remove_and_purge_drop_vectors);
  RUN(holds_many_vectors);
  RUN(memo_gives_a_miss_vector_to_its_set_once);
  RUN(memo_keeps_the_last_misses);
  return TEST_SUMMARY();
}
