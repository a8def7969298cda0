/* Tests for src/core/vindex.c: add, replace and remove by id against a plain
 * reference model, exact top-k, and the int8 kind's agreement with float. */
#include "vindex.h"

#include "error.h"
#include "ngram.h"

#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static double uniform(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static double gauss(void) {
  double u = uniform() + 1e-300, v = uniform();
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static void random_unit(float *v, int dim) {
  double s = 0;
  for (int j = 0; j < dim; j++) {
    v[j] = (float)gauss();
    s += (double)v[j] * v[j];
  }
  for (int j = 0; j < dim; j++) v[j] = (float)(v[j] / sqrt(s));
}

static float dotf(const float *a, const float *b, int dim) {
  double s = 0;
  for (int j = 0; j < dim; j++) s += (double)a[j] * b[j];
  return (float)s;
}

/* A reference model: the same contents as a plain list. */
typedef struct model {
  int dim, n;
  uint64_t ids[4096];
  float *vecs; /* 4096 * dim */
} model;

static int model_find(const model *m, uint64_t id) {
  for (int i = 0; i < m->n; i++)
    if (m->ids[i] == id) return i;
  return -1;
}

/* The best id for q in the model by double-precision dot product. */
static uint64_t model_best(const model *m, const float *q, float *score) {
  int best = -1;
  float bs = -INFINITY;
  for (int i = 0; i < m->n; i++) {
    float s = dotf(m->vecs + (size_t)i * m->dim, q, m->dim);
    if (s > bs) {
      bs = s;
      best = i;
    }
  }
  *score = bs;
  return m->ids[best];
}

static void rejects_bad_arguments(void) {
  po_vindex *ix = (po_vindex *)1;
  CHECK(po_vindex_new(0, PO_VINDEX_F32, &ix) == PO_EINVAL);
  CHECK(ix == NULL);
  CHECK(po_vindex_new(65537, PO_VINDEX_F32, &ix) == PO_EINVAL);
  CHECK(po_vindex_new(4, (po_vindex_kind)7, &ix) == PO_EINVAL);
  REQUIRE(po_vindex_new(4, PO_VINDEX_I8, &ix) == 0);
  float nan_vec[4] = {0, NAN, 0, 0}, inf_vec[4] = {INFINITY, 0, 0, 0}, ok[4] = {1, 0, 0, 0};
  CHECK(po_vindex_add(ix, 1, nan_vec) == PO_EINVAL);
  CHECK(po_vindex_add(ix, 1, inf_vec) == PO_EINVAL);
  CHECK(po_vindex_count(ix) == 0);
  CHECK(po_vindex_add(ix, 1, ok) == 0);
  uint64_t ids[2];
  float scores[2];
  int found = -1;
  CHECK(po_vindex_search(ix, nan_vec, 1, ids, scores, &found) == PO_EINVAL);
  CHECK(po_vindex_search(ix, ok, -1, ids, scores, &found) == PO_EINVAL);
  CHECK(po_vindex_search(ix, ok, 0, ids, scores, &found) == 0);
  CHECK(found == 0);
  CHECK(po_vindex_remove(ix, 2) == PO_ENOENT);
  po_vindex_free(ix);
  po_vindex_free(NULL);
}

static void empty_index_finds_nothing(void) {
  po_vindex *ix;
  REQUIRE(po_vindex_new(8, PO_VINDEX_F32, &ix) == 0);
  float q[8] = {1};
  uint64_t id;
  float score;
  int found = -1;
  CHECK(po_vindex_search(ix, q, 1, &id, &score, &found) == 0);
  CHECK(found == 0);
  CHECK(po_vindex_remove(ix, 0) == PO_ENOENT);
  po_vindex_free(ix);
}

static void small_example(po_vindex_kind kind) {
  po_vindex *ix;
  REQUIRE(po_vindex_new(3, kind, &ix) == 0);
  float x[3] = {1, 0, 0}, y[3] = {0, 1, 0}, xy[3] = {0.70710678f, 0.70710678f, 0};
  CHECK(po_vindex_add(ix, 10, x) == 0);
  CHECK(po_vindex_add(ix, 20, y) == 0);
  CHECK(po_vindex_add(ix, 30, xy) == 0);
  CHECK(po_vindex_count(ix) == 3);
  float q[3] = {0.9f, 0.1f, 0};
  uint64_t ids[5];
  float scores[5];
  int found;
  CHECK(po_vindex_search(ix, q, 5, ids, scores, &found) == 0);
  REQUIRE(found == 3); /* k larger than the count */
  CHECK(ids[0] == 10 && ids[1] == 30 && ids[2] == 20);
  CHECK(fabsf(scores[0] - 0.9f) < 1e-6f);
  CHECK(fabsf(scores[1] - 0.70710678f) < 1e-6f);
  CHECK(fabsf(scores[2] - 0.1f) < 1e-6f);
  /* replacing keeps the count and changes the answer */
  float minus_x[3] = {-1, 0, 0};
  CHECK(po_vindex_add(ix, 10, minus_x) == 0);
  CHECK(po_vindex_count(ix) == 3);
  CHECK(po_vindex_search(ix, q, 1, ids, scores, &found) == 0);
  CHECK(found == 1 && ids[0] == 30);
  /* removing the best leaves the next */
  CHECK(po_vindex_remove(ix, 30) == 0);
  CHECK(po_vindex_remove(ix, 30) == PO_ENOENT);
  CHECK(po_vindex_count(ix) == 2);
  CHECK(po_vindex_search(ix, q, 1, ids, scores, &found) == 0);
  CHECK(found == 1 && ids[0] == 20);
  po_vindex_free(ix);
}

static void small_example_f32(void) { small_example(PO_VINDEX_F32); }
static void small_example_i8(void) { small_example(PO_VINDEX_I8); }

/* Thousands of random adds, replaces and removes, checked against the model
 * after each batch: every id present is found exactly, and searches agree. */
static void matches_a_reference_model(po_vindex_kind kind, int dim) {
  static model m;
  m.dim = dim;
  m.n = 0;
  m.vecs = malloc(sizeof(float) * 4096 * (size_t)dim);
  REQUIRE(m.vecs);
  po_vindex *ix;
  REQUIRE(po_vindex_new(dim, kind, &ix) == 0);
  float *v = malloc(sizeof(float) * (size_t)dim);
  REQUIRE(v);
  int mismatches = 0;
  for (int step = 0; step < 4000; step++) {
    uint64_t id = rnd() % 3000 * 0x100000001ULL; /* ids that collide in low bits */
    int at = model_find(&m, id);
    if (rnd() % 3 == 0) {
      int rc = po_vindex_remove(ix, id);
      if (at < 0) {
        CHECK(rc == PO_ENOENT);
      } else {
        CHECK(rc == 0);
        m.n--;
        m.ids[at] = m.ids[m.n];
        memcpy(m.vecs + (size_t)at * dim, m.vecs + (size_t)m.n * dim, sizeof(float) * (size_t)dim);
      }
    } else {
      random_unit(v, dim);
      CHECK(po_vindex_add(ix, id, v) == 0);
      if (at < 0) at = m.n++;
      m.ids[at] = id;
      memcpy(m.vecs + (size_t)at * dim, v, sizeof(float) * (size_t)dim);
    }
    CHECK_EQ_INT(po_vindex_count(ix), m.n);
    if (step % 1000 == 999) {
      /* each stored vector finds itself */
      for (int i = 0; i < m.n; i += 5) {
        uint64_t got;
        float score;
        int found;
        CHECK(po_vindex_search(ix, m.vecs + (size_t)i * dim, 1, &got, &score, &found) == 0);
        if (found != 1 || got != m.ids[i] || fabsf(score - 1.0f) > 1e-4f) mismatches++;
      }
      /* random queries agree with the model */
      for (int r = 0; r < 50; r++) {
        random_unit(v, dim);
        float want_score, score;
        uint64_t want = model_best(&m, v, &want_score), got;
        int found;
        CHECK(po_vindex_search(ix, v, 1, &got, &score, &found) == 0);
        if (found != 1 || got != want || fabsf(score - want_score) > 1e-5f) mismatches++;
      }
    }
  }
  CHECK_EQ_INT(mismatches, 0);
  po_vindex_free(ix);
  free(v);
  free(m.vecs);
}

static void model_f32_dim_512(void) { matches_a_reference_model(PO_VINDEX_F32, 512); }
static void model_i8_dim_512(void) { matches_a_reference_model(PO_VINDEX_I8, 512); }
static void model_f32_dim_37(void) { matches_a_reference_model(PO_VINDEX_F32, 37); }
static void model_i8_dim_1500(void) { matches_a_reference_model(PO_VINDEX_I8, 1500); }

/* Top-k comes best first and equals the float kind's top-k. */
static void top_k_is_sorted_and_kinds_agree(void) {
  const int dim = 96, n = 2000, k = 25;
  po_vindex *f, *q;
  REQUIRE(po_vindex_new(dim, PO_VINDEX_F32, &f) == 0);
  REQUIRE(po_vindex_new(dim, PO_VINDEX_I8, &q) == 0);
  float v[96];
  for (int i = 0; i < n; i++) {
    random_unit(v, dim);
    CHECK(po_vindex_add(f, (uint64_t)i, v) == 0);
    CHECK(po_vindex_add(q, (uint64_t)i, v) == 0);
  }
  int differ = 0;
  for (int r = 0; r < 100; r++) {
    random_unit(v, dim);
    uint64_t fi[25], qi[25];
    float fs[25], qs[25];
    int fn, qn;
    CHECK(po_vindex_search(f, v, k, fi, fs, &fn) == 0);
    CHECK(po_vindex_search(q, v, k, qi, qs, &qn) == 0);
    REQUIRE(fn == k && qn == k);
    for (int i = 1; i < k; i++) CHECK(fs[i - 1] >= fs[i]);
    for (int i = 0; i < k; i++) differ += fi[i] != qi[i] || fs[i] != qs[i];
  }
  CHECK_EQ_INT(differ, 0);
  po_vindex_free(f);
  po_vindex_free(q);
}

/* Degenerate inputs for the int8 bound: a zero query ties everything, and
 * many identical vectors tie each other. Answers still match float. */
static void ties_and_zero_vectors(void) {
  const int dim = 64;
  po_vindex *f, *q;
  REQUIRE(po_vindex_new(dim, PO_VINDEX_F32, &f) == 0);
  REQUIRE(po_vindex_new(dim, PO_VINDEX_I8, &q) == 0);
  float v[64], zero[64] = {0};
  random_unit(v, dim);
  for (int i = 0; i < 1000; i++) {
    CHECK(po_vindex_add(f, (uint64_t)i, i % 3 ? v : zero) == 0);
    CHECK(po_vindex_add(q, (uint64_t)i, i % 3 ? v : zero) == 0);
  }
  uint64_t fi[3], qi[3];
  float fs[3], qs[3];
  int fn, qn;
  CHECK(po_vindex_search(f, zero, 3, fi, fs, &fn) == 0);
  CHECK(po_vindex_search(q, zero, 3, qi, qs, &qn) == 0);
  CHECK(fn == 3 && qn == 3 && fs[0] == 0 && qs[0] == 0);
  CHECK(po_vindex_search(f, v, 3, fi, fs, &fn) == 0);
  CHECK(po_vindex_search(q, v, 3, qi, qs, &qn) == 0);
  REQUIRE(fn == 3 && qn == 3);
  for (int i = 0; i < 3; i++) {
    CHECK(fi[i] % 3 != 0 && qi[i] % 3 != 0);
    CHECK(fabsf(fs[i] - 1.0f) < 1e-5f && fs[i] == qs[i]);
  }
  po_vindex_free(f);
  po_vindex_free(q);
}

/* The int8 kind's top-1 equals an exact float search on at least 99.9% of
 * queries, for random vectors and for n-gram embeddings of prompts. */
static double agreement(const float *base, int n, const float *queries, int nq, int dim) {
  po_vindex *q;
  if (po_vindex_new(dim, PO_VINDEX_I8, &q) != 0) return 0;
  for (int i = 0; i < n; i++) po_vindex_add(q, (uint64_t)i, base + (size_t)i * dim);
  int same = 0;
  for (int r = 0; r < nq; r++) {
    const float *v = queries + (size_t)r * dim;
    double best = -INFINITY;
    int want = -1;
    for (int i = 0; i < n; i++) {
      double s = 0;
      for (int j = 0; j < dim; j++) s += (double)base[(size_t)i * dim + j] * v[j];
      if (s > best) {
        best = s;
        want = i;
      }
    }
    uint64_t got;
    float score;
    int found;
    if (po_vindex_search(q, v, 1, &got, &score, &found) == 0 && found == 1 &&
        (got == (uint64_t)want || fabs(score - best) < 1e-6))
      same++;
  }
  po_vindex_free(q);
  return (double)same / nq;
}

static void int8_agrees_with_float_on_random_vectors(void) {
  const int dim = 512, n = 2000, nq = 1000;
  float *base = malloc(sizeof(float) * (size_t)n * dim), *qs = malloc(sizeof(float) * (size_t)nq * dim);
  REQUIRE(base && qs);
  for (int i = 0; i < n; i++) random_unit(base + (size_t)i * dim, dim);
  for (int r = 0; r < nq; r++) {
    /* half near an entry, half anywhere */
    float *v = qs + (size_t)r * dim;
    random_unit(v, dim);
    if (r % 2) {
      const float *e = base + (size_t)(rnd() % n) * dim;
      double s = 0;
      for (int j = 0; j < dim; j++) {
        v[j] = e[j] + 0.02f * v[j];
        s += (double)v[j] * v[j];
      }
      for (int j = 0; j < dim; j++) v[j] = (float)(v[j] / sqrt(s));
    }
  }
  double a = agreement(base, n, qs, nq, dim);
  printf("int8 top-1 agreement, random vectors: %.4f\n", a);
  CHECK(a >= 0.999);
  free(base);
  free(qs);
}

static const char *const words[] = {"optimize", "the", "function", "parse_header", "loop", "buffer", "copy",
                                    "allocation", "in", "src/http.c", "faster", "cache", "memory", "reduce",
                                    "latency", "rewrite", "vectorize", "hash", "table", "lookup", "keep",
                                    "interface", "tests", "pass", "avoid", "branch", "inner", "sort", "42",
                                    "quickly", "string", "json", "encoder", "decoder", "thread", "lock"};

static void random_prompt(char *buf, size_t cap) {
  size_t n = 0, nwords = 6 + rnd() % 40;
  for (size_t w = 0; w < nwords; w++) {
    const char *word = words[rnd() % (sizeof words / sizeof *words)];
    int m = snprintf(buf + n, cap - n, "%s%s", w ? " " : "", word);
    if (m < 0 || (size_t)m >= cap - n) break;
    n += (size_t)m;
  }
}

static void int8_agrees_with_float_on_ngram_vectors(void) {
  const int dim = PO_NGRAM_DIM, n = 2000, nq = 1000;
  float *base = malloc(sizeof(float) * (size_t)n * dim), *qs = malloc(sizeof(float) * (size_t)nq * dim);
  REQUIRE(base && qs);
  char text[1024];
  for (int i = 0; i < n; i++) {
    random_prompt(text, sizeof text);
    po_ngram_embed(text, strlen(text), base + (size_t)i * dim);
  }
  for (int r = 0; r < nq; r++) {
    random_prompt(text, sizeof text);
    po_ngram_embed(text, strlen(text), qs + (size_t)r * dim);
  }
  double a = agreement(base, n, qs, nq, dim);
  printf("int8 top-1 agreement, n-gram vectors: %.4f\n", a);
  CHECK(a >= 0.999);
  free(base);
  free(qs);
}

int main(void) {
  RUN(rejects_bad_arguments);
  RUN(empty_index_finds_nothing);
  RUN(small_example_f32);
  RUN(small_example_i8);
  RUN(model_f32_dim_512);
  RUN(model_i8_dim_512);
  RUN(model_f32_dim_37);
  RUN(model_i8_dim_1500);
  RUN(top_k_is_sorted_and_kinds_agree);
  RUN(ties_and_zero_vectors);
  RUN(int8_agrees_with_float_on_random_vectors);
  RUN(int8_agrees_with_float_on_ngram_vectors);
  return TEST_SUMMARY();
}
