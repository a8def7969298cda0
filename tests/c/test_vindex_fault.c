/* The vector index under allocation failures (tests/c/fault.h): each
 * allocation of a run of adds fails once in turn, and an add that fails
 * leaves the index as it was (its count, and every vector added before it
 * still found first); each allocation of a search fails once in turn, and
 * the search either reports PO_ENOMEM or answers exactly what it answers
 * with memory to spare (the int8 scan falling back to the float one). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fault.h"
#include "harness.h"
#include "vindex.h"

enum { N = 300 };

/* A deterministic unit vector per seed. */
static void unit_vector(uint64_t seed, float *v, int dim) {
  double n = 0;
  for (int j = 0; j < dim; j++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    v[j] = (float)((double)(seed >> 11) / 9007199254740992.0 - 0.5);
    n += (double)v[j] * v[j];
  }
  for (int j = 0; j < dim; j++) v[j] = (float)(v[j] / sqrt(n));
}

typedef struct add_case {
  int dim;
  po_vindex_kind kind;
  int n; /* adds, at most N */
} add_case;

/* n adds (ids 1..n, every tenth one replacing an earlier id); then, with the
 * fault disarmed, the count is the number of distinct ids whose add
 * succeeded, and each of those is its own vector's best match. */
static int add_session(void *arg) {
  const add_case *ac = arg;
  po_vindex *ix;
  int rc = po_vindex_new(ac->dim, ac->kind, &ix);
  if (rc != 0) return rc == PO_ENOMEM && fault_fired() ? 0 : 1;
  float *v = malloc((size_t)ac->dim * sizeof *v);
  static int in[N + 1];
  memset(in, 0, sizeof in);
  int ok = v != NULL, distinct = 0;
  for (int i = 1; ok && i <= ac->n; i++) {
    uint64_t id = i % 10 == 0 ? (uint64_t)(i / 10) : (uint64_t)i;
    unit_vector(id, v, ac->dim);
    rc = po_vindex_add(ix, id, v);
    if (rc == 0 && !in[id]) {
      in[id] = 1;
      distinct++;
    }
    if (rc != 0 && !(rc == PO_ENOMEM && fault_fired())) ok = 0;
  }
  fault_disarm();
  if (!v) {
    po_vindex_free(ix);
    return fault_fired() ? 0 : 1;
  }
  if (po_vindex_count(ix) != (size_t)distinct) ok = 0;
  for (uint64_t id = 1; ok && id <= (uint64_t)ac->n; id++) {
    if (!in[id]) continue;
    unit_vector(id, v, ac->dim);
    uint64_t got;
    float score;
    int found;
    if (po_vindex_search(ix, v, 1, &got, &score, &found) != 0 || found != 1 || got != id) ok = 0;
  }
  if (!ok) fprintf(stderr, "add session (dim %d): count %zu, %d added\n", ac->dim, po_vindex_count(ix), distinct);
  free(v);
  po_vindex_free(ix);
  return ok ? 0 : 1;
}

static void failed_adds_leave_the_index_whole(void) {
  /* wide: past the first 64 slots, with vectors too long for the stack buffers */
  add_case f32 = {16, PO_VINDEX_F32, N}, i8 = {16, PO_VINDEX_I8, N}, wide = {1100, PO_VINDEX_I8, 70};
  CHECK(fault_sweep("malloc", ENOMEM, add_session, &f32, 200) > 5);
  CHECK(fault_sweep("malloc", ENOMEM, add_session, &i8, 200) > 5);
  CHECK(fault_sweep("malloc", ENOMEM, add_session, &wide, 200) > 5);
}

typedef struct search_case {
  po_vindex *ix;
  const float *q;
  int k;
  uint64_t ids[200];
  float scores[200];
  int found;
} search_case;

static int search_session(void *arg) {
  search_case *sc = arg;
  uint64_t ids[200];
  float scores[200];
  int found = -1;
  int rc = po_vindex_search(sc->ix, sc->q, sc->k, ids, scores, &found);
  if (rc != 0) return rc == PO_ENOMEM && fault_fired() ? 0 : 1;
  int same = found == sc->found && memcmp(ids, sc->ids, (size_t)found * sizeof *ids) == 0 &&
             memcmp(scores, sc->scores, (size_t)found * sizeof *scores) == 0;
  if (!same) fprintf(stderr, "search k %d: %d found, %d expected\n", sc->k, found, sc->found);
  return same ? 0 : 1;
}

/* An int8 index of many near-equal vectors (the int8 scan keeps most of
 * them as candidates, outgrowing its first buffers), and a wide one (its
 * query buffers are allocated). */
static void failed_searches_answer_right_or_not_at_all(void) {
  static const int dims[] = {16, 1100}, counts[] = {2000, 200};
  for (size_t d = 0; d < sizeof dims / sizeof *dims; d++) {
    int dim = dims[d];
    po_vindex *ix;
    REQUIRE(po_vindex_new(dim, PO_VINDEX_I8, &ix) == 0);
    float *base = malloc((size_t)dim * sizeof *base), *v = malloc((size_t)dim * sizeof *v);
    REQUIRE(base && v);
    unit_vector(7, base, dim);
    for (int i = 0; i < counts[d]; i++) {
      memcpy(v, base, (size_t)dim * sizeof *v);
      v[i % dim] += 1e-4f * (float)(i % 13);
      REQUIRE(po_vindex_add(ix, (uint64_t)i, v) == 0);
    }
    static const int ks[] = {1, 5, 150};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
      search_case sc = {.ix = ix, .q = base, .k = ks[i]};
      REQUIRE(po_vindex_search(ix, base, sc.k, sc.ids, sc.scores, &sc.found) == 0);
      CHECK_EQ_INT(sc.found, sc.k);
      CHECK(fault_sweep("malloc", ENOMEM, search_session, &sc, 100) >= 2);
    }
    free(base);
    free(v);
    po_vindex_free(ix);
  }
}

int main(void) {
  RUN(failed_adds_leave_the_index_whole);
  RUN(failed_searches_answer_right_or_not_at_all);
  return TEST_SUMMARY();
}
