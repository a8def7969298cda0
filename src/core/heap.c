#include "heap.h"

#include "error.h"

#include <stdlib.h>

void po_heap_init(po_heap *h, size_t pos_offset) {
  h->nodes = NULL;
  h->len = h->cap = 0;
  h->pos_offset = pos_offset;
}

void po_heap_free(po_heap *h) {
  free(h->nodes);
  h->nodes = NULL;
  h->len = h->cap = 0;
}

int po_heap_reserve(po_heap *h) {
  if (h->len < h->cap) return 0;
  size_t cap = h->cap ? h->cap * 2 : 16;
  po_heap_node *n = realloc(h->nodes, cap * sizeof *n);
  if (!n) return PO_ENOMEM;
  h->nodes = n;
  h->cap = cap;
  return 0;
}

static int before(const po_heap_node *a, const po_heap_node *b) {
  return a->key < b->key || (a->key == b->key && a->tie < b->tie);
}

static void place(po_heap *h, size_t i, const po_heap_node *n) {
  h->nodes[i] = *n;
  *(size_t *)((char *)n->item + h->pos_offset) = i;
}

/* Moves n, meant for position i, up to where it belongs; then down. */
static void settle(po_heap *h, size_t i, po_heap_node n) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(&n, &h->nodes[parent])) break;
    place(h, i, &h->nodes[parent]);
    i = parent;
  }
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= h->len) break;
    if (child + 1 < h->len && before(&h->nodes[child + 1], &h->nodes[child])) child++;
    if (!before(&h->nodes[child], &n)) break;
    place(h, i, &h->nodes[child]);
    i = child;
  }
  place(h, i, &n);
}

void po_heap_push(po_heap *h, double key, uint64_t tie, void *item) {
  po_heap_node n = {key, tie, item};
  settle(h, h->len++, n);
}

void po_heap_remove(po_heap *h, size_t pos) {
  po_heap_node last = h->nodes[--h->len];
  if (pos == h->len) return;
  settle(h, pos, last);
}
