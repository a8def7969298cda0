/* An indexed binary min-heap (po_heap): items ordered by a number key, with
 * a second number to break ties, each item told its position so that any of
 * them can be removed. The loop's timers and the cache's expiry order use
 * it.
 *
 * The keys live in the heap's own array beside the item pointers, so sifting
 * reads no item; an item's position (a size_t, at pos_offset inside it) is
 * written at every move. The heap owns its array, not the items. */
#ifndef PO_HEAP_H
#define PO_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct po_heap_node {
  double key;
  uint64_t tie; /* among equal keys, the smaller first */
  void *item;
} po_heap_node;

typedef struct po_heap {
  po_heap_node *nodes; /* nodes[0] is the smallest */
  size_t len, cap;
  size_t pos_offset; /* where each item keeps its position (a size_t) */
} po_heap;

/* Makes h empty; each item keeps its position at pos_offset (offsetof). */
void po_heap_init(po_heap *h, size_t pos_offset);

/* Releases h's array (not the items) and makes it empty; safe twice. */
void po_heap_free(po_heap *h);

/* Makes room for one more item, so that the next po_heap_push cannot fail.
 * Returns 0 or PO_ENOMEM (h unchanged). */
int po_heap_reserve(po_heap *h);

/* Adds item under (key, tie); room must have been reserved. key must not be
 * NaN. */
void po_heap_push(po_heap *h, double key, uint64_t tie, void *item);

/* Removes the item at position pos (< len), which the heap wrote into it. */
void po_heap_remove(po_heap *h, size_t pos);

/* The smallest node, or NULL when h is empty. */
static inline const po_heap_node *po_heap_top(const po_heap *h) {
  return h->len ? &h->nodes[0] : NULL;
}

#endif
