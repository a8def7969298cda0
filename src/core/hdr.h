/* A log-linear histogram of non-negative doubles (the HdrHistogram idea,
 * over the bits of an IEEE-754 double): fixed memory, lock-free recording,
 * percentiles within 1% relative error, mergeable.
 *
 * The range [lowest, highest] is cut into binades (powers of two), each cut
 * into PO_HDR_SUB equal sub-buckets, so a bucket's width is at most 1/64 of
 * its lower bound. A value's bucket comes from its exponent and the top six
 * bits of its mantissa: no logarithm, no loop. Reporting a bucket's midpoint
 * (clamped to the exact minimum and maximum) keeps a percentile within
 * 1/128 (0.78%) of the exact value of that rank. Values below the range's
 * first binade (0 included) share an underflow bucket and values above its
 * last binade an overflow bucket: percentiles that land there are reported
 * as the exact minimum or maximum.
 *
 * Recording is one relaxed atomic add on the bucket, a compare-and-swap loop
 * on the sum, and a compare-and-swap on the minimum or maximum only when it
 * moves: any number of threads may record at once, with no lock and no
 * allocation. Readers (stats, percentiles) may run concurrently with
 * recorders; they see each bucket exactly, but a reading taken while others
 * record may mix slightly different moments. */
#ifndef PO_HDR_H
#define PO_HDR_H

#include <stddef.h>
#include <stdint.h>

#define PO_HDR_SUB_BITS 6
#define PO_HDR_SUB (1 << PO_HDR_SUB_BITS)

/* The default range: a nanosecond to a billion (seconds, tokens, dollars). */
#define PO_HDR_DEFAULT_LOWEST 1e-9
#define PO_HDR_DEFAULT_HIGHEST 1e9

/* At most this many percentiles per po_hdr_percentiles call. */
#define PO_HDR_MAX_PERCENTILES 32

/* At most this many binades (2^-1022 .. 2^1023 would be 2046). */
#define PO_HDR_MAX_BINADES 2046

typedef struct po_hdr po_hdr;

/* Creates an empty histogram for values in [lowest, highest] (precision is
 * guaranteed there; values outside are still counted). lowest must be a
 * positive normal double below highest, highest finite. Returns 0, PO_EINVAL
 * or PO_ENOMEM; *out is set only on success. The caller frees it with
 * po_hdr_free. */
int po_hdr_new(double lowest, double highest, po_hdr **out);

/* Frees h; NULL is accepted. */
void po_hdr_free(po_hdr *h);

/* Records one value. PO_EINVAL (nothing recorded) if v is negative, NaN or
 * infinite. When index is not NULL it receives the bucket's index. Safe from
 * any number of threads at once; never allocates. */
int po_hdr_record(po_hdr *h, double v, size_t *index);

/* Adds src's counts, sum, minimum and maximum into dst. Both must have been
 * created with the same range (PO_EINVAL otherwise, dst unchanged). src may
 * be recorded into meanwhile; dst == src is PO_EINVAL. */
int po_hdr_merge(po_hdr *dst, const po_hdr *src);

/* Empties h. Not atomic with respect to concurrent recorders. */
void po_hdr_reset(po_hdr *h);

typedef struct po_hdr_stats {
  uint64_t count;
  double sum, min, max, mean; /* all 0 when count is 0 */
} po_hdr_stats;

/* Count, sum, minimum, maximum and mean of what was recorded. */
void po_hdr_stats_get(const po_hdr *h, po_hdr_stats *out);

/* The value at each percentile ps[i] (0..100) into out[i], in one pass:
 * the nearest-rank value (rank ceil(p * count / 100), at least 1), within
 * 1/128 of the exact one for values inside the range. An empty histogram
 * gives 0. PO_EINVAL if a p is outside [0, 100] or NaN, or n is above
 * PO_HDR_MAX_PERCENTILES (out untouched). */
int po_hdr_percentiles(const po_hdr *h, const double *ps, size_t n, double *out);

/* Number of buckets, the underflow (index 0) and overflow (last) included. */
size_t po_hdr_buckets(const po_hdr *h);

/* Bounds [lo, hi) of bucket i and its count. The underflow bucket reports
 * [0, first binade), the overflow bucket [2^(last binade + 1), +inf).
 * PO_EINVAL for an index out of range. */
int po_hdr_bucket(const po_hdr *h, size_t i, double *lo, double *hi, uint64_t *count);

/* The range h was created with. */
void po_hdr_range(const po_hdr *h, double *lowest, double *highest);

#endif
