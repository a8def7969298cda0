/* The semantic tier's decision for one candidate (see semantic.h). */
#include "semantic.h"

#include "guard.h"
#include "ngram.h"
#include "vindex.h"

int po_semantic_similarity(const char *a, size_t alen, const char *b, size_t blen, double *score) {
  float va[PO_NGRAM_DIM], vb[PO_NGRAM_DIM];
  po_ngram_embed(a, alen, va);
  po_ngram_embed(b, blen, vb);
  /* the score a search of the vector index would give */
  *score = po_vindex_dot(va, vb, PO_NGRAM_DIM);
  return 0;
}

int po_semantic_accept(double score, double threshold, const char *query, size_t qlen, const char *cand,
                       size_t clen) {
  return score >= threshold && po_guard_same_facts(query, qlen, cand, clen);
}
