/* Doubles updated atomically, stored as their bit patterns in a 64-bit
 * atomic (C11 has no fetch-add for floating types). Header-only: the hot
 * paths of the metrics inline these. All operations are relaxed: they are
 * exact with respect to each other, and order nothing else. */
#ifndef PO_ATOMIC_DOUBLE_H
#define PO_ATOMIC_DOUBLE_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

typedef _Atomic uint64_t po_atomic_double;

static inline uint64_t po_double_bits(double v) {
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

static inline double po_bits_double(uint64_t b) {
  double v;
  memcpy(&v, &b, sizeof v);
  return v;
}

static inline double po_atomic_double_load(const po_atomic_double *a) {
  return po_bits_double(atomic_load_explicit((po_atomic_double *)a, memory_order_relaxed));
}

static inline void po_atomic_double_store(po_atomic_double *a, double v) {
  atomic_store_explicit(a, po_double_bits(v), memory_order_relaxed);
}

/* *a += d, exactly once however many threads add at the same time. */
static inline void po_atomic_double_add(po_atomic_double *a, double d) {
  uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(a, &old, po_double_bits(po_bits_double(old) + d),
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* Lowers *a to v if v is smaller (raises it if larger, for _max). */
static inline void po_atomic_double_min(po_atomic_double *a, double v) {
  uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
  while (v < po_bits_double(old) &&
         !atomic_compare_exchange_weak_explicit(a, &old, po_double_bits(v), memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
}

static inline void po_atomic_double_max(po_atomic_double *a, double v) {
  uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
  while (v > po_bits_double(old) &&
         !atomic_compare_exchange_weak_explicit(a, &old, po_double_bits(v), memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
}

#endif
