/* The semantic tier's index of vectors (cache_semantic.h) under allocation
 * failures (tests/c/fault.h): 100 vectors in three groups are added (the
 * id and entry maps double, each group grows its vector index) with
 * each allocation failing once in turn. A failed add reports PO_ENOMEM and
 * leaves the tier as it was; afterwards the count is the number of adds
 * that succeeded and each of those vectors is found for its own entry. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cache_semantic.h"
#include "error.h"
#include "fault.h"
#include "harness.h"

enum { N = 100, DIM = 8 };

static void vector_of(int i, float *v) {
  double n = 0;
  for (int d = 0; d < DIM; d++) {
    v[d] = (float)sin((double)(i + 1) * (d + 1) * 0.7);
    n += (double)v[d] * v[d];
  }
  for (int d = 0; d < DIM; d++) v[d] = (float)(v[d] / sqrt(n));
}

static po_cache_hash group_of(int i) {
  char g[8];
  snprintf(g, sizeof g, "g%d", i % 3);
  return po_cache_hash_key(g, strlen(g));
}

static po_cache_hash entry_of(int i) {
  char k[16];
  snprintf(k, sizeof k, "entry-%d", i);
  return po_cache_hash_key(k, strlen(k));
}

/* The records are made before the fault is armed: only the tier's own allocations count. */
static po_strbuf records[N];

static int session(void *arg) {
  (void)arg;
  po_cache_sem *s;
  int rc = po_cache_sem_new(&s);
  if (rc != 0) return rc == PO_ENOMEM && fault_fired() ? 0 : 1;
  static int in[N];
  int added = 0, ok = 1;
  for (int i = 0; i < N; i++) {
    rc = po_cache_sem_add_record(s, (uint64_t)i + 1, records[i].data, records[i].len);
    in[i] = rc == 0;
    added += in[i];
    if (rc != 0 && !(rc == PO_ENOMEM && fault_fired())) ok = 0;
  }
  fault_disarm();
  if (po_cache_sem_count(s) != (size_t)added) ok = 0;
  for (int i = 0; ok && i < N; i++) {
    if (!in[i]) continue;
    float v[DIM];
    vector_of(i, v);
    po_cache_sem_candidate cand[4];
    int n = po_cache_sem_search(s, group_of(i), v, DIM, "same text", 9, 0.99f, 4, cand);
    if (n < 1 || cand[0].id != (uint64_t)i + 1 || cand[0].entry.lo != entry_of(i).lo) ok = 0;
  }
  if (!ok) fprintf(stderr, "semantic session: %d added, count %zu\n", added, po_cache_sem_count(s));
  po_cache_sem_free(s);
  return ok ? 0 : 1;
}

static void failed_adds_leave_the_tier_whole(void) {
  for (int i = 0; i < N; i++) {
    float v[DIM];
    vector_of(i, v);
    po_cache_vector cv = {.group = group_of(i), .embedder = "e", .embedder_len = 1, .text = "same text",
                          .text_len = 9, .vec = v, .dim = DIM};
    REQUIRE(po_cache_sem_encode(&cv, entry_of(i), &records[i]) == 0);
  }
  REQUIRE(session(NULL) == 0);
  CHECK(fault_sweep("malloc", ENOMEM, session, NULL, 2000) > 20);
  for (int i = 0; i < N; i++) po_strbuf_free(&records[i]);
}

int main(void) {
  RUN(failed_adds_leave_the_tier_whole);
  return TEST_SUMMARY();
}
