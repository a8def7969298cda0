/* Tests for src/core/heap.c (the indexed min-heap under the loop's timers
 * and the cache's expiry order). */
#include "error.h"
#include "heap.h"

#include "harness.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct item {
  int id;
  size_t pos; /* written by the heap */
} item;

/* Every node is not before its parent, and every item knows where it is. */
static int valid(const po_heap *h) {
  for (size_t i = 0; i < h->len; i++) {
    const po_heap_node *n = &h->nodes[i];
    if (((const item *)n->item)->pos != i) return 0;
    if (i == 0) continue;
    const po_heap_node *p = &h->nodes[(i - 1) / 2];
    if (n->key < p->key || (n->key == p->key && n->tie < p->tie)) return 0;
  }
  return 1;
}

static int push(po_heap *h, double key, uint64_t tie, item *it) {
  if (po_heap_reserve(h)) return PO_ENOMEM;
  po_heap_push(h, key, tie, it);
  return 0;
}

static void starts_empty_and_frees_twice(void) {
  po_heap h;
  po_heap_init(&h, offsetof(item, pos));
  CHECK(po_heap_top(&h) == NULL);
  CHECK_EQ_INT(h.len, 0);
  po_heap_free(&h);
  po_heap_free(&h);
  CHECK(h.nodes == NULL);
}

static void pops_in_key_order(void) {
  enum { N = 2000 };
  static item items[N];
  po_heap h;
  po_heap_init(&h, offsetof(item, pos));
  srand(7);
  for (int i = 0; i < N; i++) {
    items[i].id = i;
    REQUIRE(push(&h, (double)(rand() % 500), 0, &items[i]) == 0);
  }
  CHECK_EQ_INT(h.len, N);
  CHECK(h.cap >= h.len);
  CHECK(valid(&h));
  double last = -1;
  int ordered = 1, count = 0;
  for (const po_heap_node *top; (top = po_heap_top(&h));) {
    ordered &= top->key >= last;
    last = top->key;
    po_heap_remove(&h, 0);
    count++;
  }
  CHECK(ordered);
  CHECK_EQ_INT(count, N);
  CHECK(valid(&h));
  po_heap_free(&h);
}

static void breaks_ties_by_the_second_number(void) {
  item a = {1, 0}, b = {2, 0}, c = {3, 0}, d = {4, 0};
  po_heap h;
  po_heap_init(&h, offsetof(item, pos));
  REQUIRE(push(&h, 5, 2, &a) == 0);
  REQUIRE(push(&h, 5, 0, &b) == 0);
  REQUIRE(push(&h, 5, 1, &c) == 0);
  REQUIRE(push(&h, 4, 9, &d) == 0); /* a smaller key wins over any tie */
  int order[4], n = 0;
  for (const po_heap_node *top; (top = po_heap_top(&h)) && n < 4;) {
    order[n++] = ((item *)top->item)->id;
    po_heap_remove(&h, 0);
  }
  CHECK_EQ_INT(n, 4);
  CHECK_EQ_INT(order[0], 4);
  CHECK_EQ_INT(order[1], 2);
  CHECK_EQ_INT(order[2], 3);
  CHECK_EQ_INT(order[3], 1);
  po_heap_free(&h);
}

static void removes_any_item_by_its_position(void) {
  enum { N = 300 };
  static item items[N];
  static int gone[N];
  po_heap h;
  po_heap_init(&h, offsetof(item, pos));
  srand(11);
  for (int i = 0; i < N; i++) {
    items[i].id = i;
    REQUIRE(push(&h, (double)(rand() % 100), (uint64_t)i, &items[i]) == 0);
  }
  /* Remove every third item from wherever it sits, checking the heap each time. */
  int still_valid = 1;
  for (int i = 0; i < N; i += 3) {
    po_heap_remove(&h, items[i].pos);
    gone[i] = 1;
    still_valid &= valid(&h);
  }
  CHECK(still_valid);
  CHECK_EQ_INT(h.len, N - (N + 2) / 3);
  int none_gone = 1;
  for (size_t i = 0; i < h.len; i++) none_gone &= !gone[((item *)h.nodes[i].item)->id];
  CHECK(none_gone);
  /* The last position, the first and the only item left. */
  po_heap_remove(&h, h.len - 1);
  CHECK(valid(&h));
  while (h.len > 1) po_heap_remove(&h, 0);
  const po_heap_node *top = po_heap_top(&h);
  REQUIRE(top != NULL);
  CHECK_EQ_INT(((item *)top->item)->pos, 0);
  po_heap_remove(&h, 0);
  CHECK(po_heap_top(&h) == NULL);
  po_heap_free(&h);
}

static void mixes_pushes_and_removals(void) {
  enum { N = 1000 };
  static item items[N];
  po_heap h;
  po_heap_init(&h, offsetof(item, pos));
  srand(3);
  int still_valid = 1, next = 0;
  for (int round = 0; round < 5000; round++) {
    if (next < N && (h.len == 0 || rand() % 3)) {
      items[next].id = next;
      REQUIRE(push(&h, (double)(rand() % 50) / 7.0, (uint64_t)next, &items[next]) == 0);
      next++;
    } else if (h.len) {
      po_heap_remove(&h, (size_t)rand() % h.len);
    }
    still_valid &= valid(&h);
  }
  CHECK(still_valid);
  po_heap_free(&h);
}

int main(void) {
  RUN(starts_empty_and_frees_twice);
  RUN(pops_in_key_order);
  RUN(breaks_ties_by_the_second_number);
  RUN(removes_any_item_by_its_position);
  RUN(mixes_pushes_and_removals);
  return TEST_SUMMARY();
}
