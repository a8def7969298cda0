/* A vector index for exact nearest-neighbour search by cosine similarity
 * (vectors are expected L2-normalized; the score is the dot product).
 *
 * Vectors live in one contiguous array, either float32 or int8 with a
 * per-vector scale (the scan reads 4x less memory, with a SIMD-friendly
 * inner loop; a float32 copy is kept beside it for re-scoring); with int8
 * the best candidates are re-scored in float32 so the top-1 matches an
 * exact float search. Not thread-safe: the caller locks. */
#ifndef PO_VINDEX_H
#define PO_VINDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct po_vindex po_vindex;

typedef enum po_vindex_kind {
  PO_VINDEX_F32,
  PO_VINDEX_I8,
} po_vindex_kind;

/* Creates an empty index of dim-dimensional vectors. */
int po_vindex_new(int dim, po_vindex_kind kind, po_vindex **out);
void po_vindex_free(po_vindex *ix);

/* Adds (or replaces) the vector with this id; the vector is copied. */
int po_vindex_add(po_vindex *ix, uint64_t id, const float *vec);

/* Removes the vector with this id; PO_ENOENT if absent. */
int po_vindex_remove(po_vindex *ix, uint64_t id);

size_t po_vindex_count(const po_vindex *ix);

/* The k best matches for query, best first: writes up to k ids and scores
 * and returns how many it wrote in *found (0 for an empty index). */
int po_vindex_search(const po_vindex *ix, const float *query, int k, uint64_t *ids, float *scores, int *found);

/* The dot product of two dim-dimensional vectors, computed in the same
 * order as po_vindex_search computes its scores: a score from here and one
 * from a search agree to the bit, so a threshold decides the same way. */
float po_vindex_dot(const float *a, const float *b, int dim);

#endif
