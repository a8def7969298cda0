/* The semantic tier's decision for one candidate, in one place: the cache
 * and po.semantic.match both call it, so a script can check beforehand
 * exactly what the cache will accept.
 *
 * A candidate (a stored prompt) may answer a query when the cosine
 * similarity of their embeddings reaches the threshold AND their facts are
 * the same (po_guard_same_facts: content words, numbers, code identifiers,
 * operands, negations). The score alone never suffices: a wrong answer from a cache is
 * worse than a miss. */
#ifndef PO_SEMANTIC_H
#define PO_SEMANTIC_H

#include <stddef.h>

/* The default similarity threshold of the semantic tier. */
#define PO_SEMANTIC_THRESHOLD 0.95

/* Writes the cosine similarity of the n-gram embeddings of texts a and b
 * (po_ngram_embed) into *score, computed as po_vindex_search scores (so
 * bit for bit what the cache's index finds): about [-1, 1] (rounding may
 * pass 1 by an ulp), 0 when either text is empty or blank. Returns 0. */
int po_semantic_similarity(const char *a, size_t alen, const char *b, size_t blen, double *score);

/* Returns 1 when a candidate whose text is cand, scoring score against the
 * query text query, may be served for it: score >= threshold and the same
 * facts. 0 otherwise. */
int po_semantic_accept(double score, double threshold, const char *query, size_t qlen, const char *cand,
                       size_t clen);

#endif
