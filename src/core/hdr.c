#include "hdr.h"

#include "atomic_double.h"
#include "error.h"

#include <math.h>
#include <stdlib.h>

struct po_hdr {
  double lowest, highest; /* as requested */
  int exp_lo, exp_hi;     /* the binades [2^exp_lo, 2^(exp_hi+1)) have sub-buckets */
  size_t n;               /* buckets: underflow, the binades' sub-buckets, overflow */
  po_atomic_double sum, min, max;
  _Atomic uint64_t counts[];
};

/* The unbiased exponent of a positive normal double: floor(log2(v)). */
static int exponent_of(double v) { return (int)((po_double_bits(v) >> 52) & 0x7ff) - 1023; }

int po_hdr_new(double lowest, double highest, po_hdr **out) {
  if (!out || !(lowest > 0) || !isnormal(lowest) || !isfinite(highest) || !(highest > lowest)) return PO_EINVAL;
  int lo = exponent_of(lowest), hi = exponent_of(highest);
  if (hi - lo + 1 > PO_HDR_MAX_BINADES) return PO_EINVAL;
  size_t n = (size_t)(hi - lo + 1) * PO_HDR_SUB + 2;
  po_hdr *h = malloc(sizeof *h + n * sizeof h->counts[0]);
  if (!h) return PO_ENOMEM;
  h->lowest = lowest;
  h->highest = highest;
  h->exp_lo = lo;
  h->exp_hi = hi;
  h->n = n;
  for (size_t i = 0; i < n; i++) atomic_init(&h->counts[i], 0);
  atomic_init(&h->sum, 0);
  atomic_init(&h->min, 0);
  atomic_init(&h->max, 0);
  po_hdr_reset(h);
  *out = h;
  return 0;
}

void po_hdr_free(po_hdr *h) { free(h); }

void po_hdr_reset(po_hdr *h) {
  for (size_t i = 0; i < h->n; i++) atomic_store_explicit(&h->counts[i], 0, memory_order_relaxed);
  po_atomic_double_store(&h->sum, 0);
  po_atomic_double_store(&h->min, INFINITY);
  po_atomic_double_store(&h->max, -INFINITY);
}

static inline size_t index_of(const po_hdr *h, double v) {
  uint64_t bits = po_double_bits(v);
  int e = (int)(bits >> 52) - 1023; /* v >= 0: the sign bit is clear; 0 and subnormals give -1023 */
  if (e < h->exp_lo) return 0;
  if (e > h->exp_hi) return h->n - 1;
  return 1 + (size_t)(e - h->exp_lo) * PO_HDR_SUB + (size_t)((bits >> (52 - PO_HDR_SUB_BITS)) & (PO_HDR_SUB - 1));
}

int po_hdr_record(po_hdr *h, double v, size_t *index) {
  if (!(v >= 0) || v == INFINITY) return PO_EINVAL;
  size_t i = index_of(h, v);
  atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
  po_atomic_double_add(&h->sum, v);
  po_atomic_double_min(&h->min, v);
  po_atomic_double_max(&h->max, v);
  if (index) *index = i;
  return 0;
}

int po_hdr_merge(po_hdr *dst, const po_hdr *src) {
  if (dst == src || dst->exp_lo != src->exp_lo || dst->exp_hi != src->exp_hi) return PO_EINVAL;
  uint64_t total = 0;
  for (size_t i = 0; i < src->n; i++) {
    uint64_t c = atomic_load_explicit((_Atomic uint64_t *)&src->counts[i], memory_order_relaxed);
    if (c) atomic_fetch_add_explicit(&dst->counts[i], c, memory_order_relaxed);
    total += c;
  }
  if (total) {
    po_atomic_double_add(&dst->sum, po_atomic_double_load(&src->sum));
    po_atomic_double_min(&dst->min, po_atomic_double_load(&src->min));
    po_atomic_double_max(&dst->max, po_atomic_double_load(&src->max));
  }
  return 0;
}

static uint64_t total_count(const po_hdr *h) {
  uint64_t total = 0;
  for (size_t i = 0; i < h->n; i++)
    total += atomic_load_explicit((_Atomic uint64_t *)&h->counts[i], memory_order_relaxed);
  return total;
}

void po_hdr_stats_get(const po_hdr *h, po_hdr_stats *out) {
  out->count = total_count(h);
  if (out->count == 0) {
    out->sum = out->min = out->max = out->mean = 0;
    return;
  }
  out->sum = po_atomic_double_load(&h->sum);
  out->min = po_atomic_double_load(&h->min);
  out->max = po_atomic_double_load(&h->max);
  out->mean = out->sum / (double)out->count;
}

int po_hdr_bucket(const po_hdr *h, size_t i, double *lo, double *hi, uint64_t *count) {
  if (i >= h->n) return PO_EINVAL;
  double first = ldexp(1, h->exp_lo), past = ldexp(1, h->exp_hi + 1);
  if (i == 0) {
    *lo = 0;
    *hi = first;
  } else if (i == h->n - 1) {
    *lo = past;
    *hi = INFINITY;
  } else {
    size_t k = i - 1;
    int e = h->exp_lo + (int)(k / PO_HDR_SUB);
    double j = (double)(k % PO_HDR_SUB);
    *lo = ldexp(1 + j / PO_HDR_SUB, e);
    *hi = ldexp(1 + (j + 1) / PO_HDR_SUB, e);
  }
  *count = atomic_load_explicit((_Atomic uint64_t *)&h->counts[i], memory_order_relaxed);
  return 0;
}

/* The value reported for bucket i: its midpoint, or the exact extreme for
 * the underflow and overflow buckets; clamped to [min, max]. */
static double bucket_value(const po_hdr *h, size_t i, double min, double max) {
  double v;
  if (i == 0) {
    v = min;
  } else if (i == h->n - 1) {
    v = max;
  } else {
    size_t k = i - 1;
    v = ldexp(1 + ((double)(k % PO_HDR_SUB) + 0.5) / PO_HDR_SUB, h->exp_lo + (int)(k / PO_HDR_SUB));
  }
  return v < min ? min : v > max ? max : v;
}

int po_hdr_percentiles(const po_hdr *h, const double *ps, size_t n, double *out) {
  if (n > PO_HDR_MAX_PERCENTILES) return PO_EINVAL;
  for (size_t k = 0; k < n; k++)
    if (!(ps[k] >= 0 && ps[k] <= 100)) return PO_EINVAL;
  po_hdr_stats st;
  po_hdr_stats_get(h, &st);
  if (st.count == 0) {
    for (size_t k = 0; k < n; k++) out[k] = 0;
    return 0;
  }
  /* Visit the percentiles in increasing order, walking the buckets once. */
  size_t order[PO_HDR_MAX_PERCENTILES];
  for (size_t a = 0; a < n; a++) {
    size_t b = a;
    for (; b > 0 && ps[a] < ps[order[b - 1]]; b--) order[b] = order[b - 1];
    order[b] = a;
  }
  uint64_t seen = 0;
  size_t i = 0;
  for (size_t k = 0; k < n; k++) {
    double rank = ceil(ps[order[k]] * (double)st.count / 100.0);
    if (rank < 1) rank = 1;
    for (;;) {
      uint64_t c = atomic_load_explicit((_Atomic uint64_t *)&h->counts[i], memory_order_relaxed);
      if (i == h->n - 1 || (double)(seen + c) >= rank) break;
      seen += c;
      i++;
    }
    out[order[k]] = bucket_value(h, i, st.min, st.max);
  }
  return 0;
}

size_t po_hdr_buckets(const po_hdr *h) { return h->n; }

void po_hdr_range(const po_hdr *h, double *lowest, double *highest) {
  *lowest = h->lowest;
  *highest = h->highest;
}
