/* Tests for src/core/hdr.c: percentiles within 1% of the exact sorted
 * values, exact extremes, merging, rejected values, concurrent recording. */
#include "error.h"
#include "hdr.h"

#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/* A reproducible generator (xorshift64*), uniform in [0, 1). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The nearest-rank percentile of sorted values: rank ceil(p n / 100), >= 1. */
static double exact_percentile(const double *sorted, size_t n, double p) {
  double rank = ceil(p * (double)n / 100.0);
  if (rank < 1) rank = 1;
  return sorted[(size_t)rank - 1];
}

static const double ps[] = {0, 0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100};
enum { NPS = sizeof ps / sizeof ps[0] };

static void check_against_exact(double *values, size_t n) {
  po_hdr *h;
  REQUIRE(po_hdr_new(PO_HDR_DEFAULT_LOWEST, PO_HDR_DEFAULT_HIGHEST, &h) == 0);
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    CHECK(po_hdr_record(h, values[i], NULL) == 0);
    sum += values[i];
  }
  qsort(values, n, sizeof *values, compare_doubles);
  double got[NPS];
  REQUIRE(po_hdr_percentiles(h, ps, NPS, got) == 0);
  for (size_t k = 0; k < NPS; k++) {
    double want = exact_percentile(values, n, ps[k]);
    double err = fabs(got[k] - want) / want;
    if (err > 0.01) fprintf(stderr, "p%g: got %.17g, exact %.17g (error %.4f)\n", ps[k], got[k], want, err);
    CHECK(err <= 0.01);
  }
  po_hdr_stats st;
  po_hdr_stats_get(h, &st);
  CHECK_EQ_INT(st.count, n);
  CHECK(st.min == values[0]);
  CHECK(st.max == values[n - 1]);
  CHECK(fabs(st.sum - sum) <= 1e-9 * sum);
  CHECK(fabs(st.mean - sum / (double)n) <= 1e-9 * sum);
  po_hdr_free(h);
}

static void percentiles_within_one_percent_uniform(void) {
  enum { N = 100000 };
  double *v = malloc(N * sizeof *v);
  REQUIRE(v);
  for (size_t i = 0; i < N; i++) v[i] = 0.001 + uniform() * 10;
  check_against_exact(v, N);
  free(v);
}

static void percentiles_within_one_percent_log_uniform(void) {
  enum { N = 100000 };
  double *v = malloc(N * sizeof *v);
  REQUIRE(v);
  for (size_t i = 0; i < N; i++) v[i] = pow(10, -8 + 16 * uniform()); /* 1e-8 .. 1e8 */
  check_against_exact(v, N);
  free(v);
}

static void percentiles_within_one_percent_heavy_tail(void) {
  enum { N = 50001 };
  double *v = malloc(N * sizeof *v);
  REQUIRE(v);
  for (size_t i = 0; i < N; i++) v[i] = 0.05 / pow(1 - uniform(), 1.5); /* Pareto-like latencies */
  check_against_exact(v, N);
  free(v);
}

static void small_counts_and_integers(void) {
  double one[] = {42};
  check_against_exact(one, 1);
  double few[] = {3, 1, 2, 1000, 7};
  check_against_exact(few, 5);
  double *ints = malloc(1000 * sizeof *ints);
  REQUIRE(ints);
  for (size_t i = 0; i < 1000; i++) ints[i] = (double)(i + 1);
  check_against_exact(ints, 1000);
  free(ints);
}

static void bucket_bounds_are_contiguous_and_narrow(void) {
  po_hdr *h;
  REQUIRE(po_hdr_new(1e-3, 1e3, &h) == 0);
  size_t n = po_hdr_buckets(h);
  CHECK(n > 2);
  double prev_hi = 0;
  for (size_t i = 0; i < n; i++) {
    double lo, hi;
    uint64_t count;
    REQUIRE(po_hdr_bucket(h, i, &lo, &hi, &count) == 0);
    CHECK(lo == prev_hi);
    CHECK(hi > lo);
    if (i > 0 && i < n - 1) CHECK((hi - lo) / lo <= 1.0 / 64 + 1e-15);
    CHECK_EQ_INT(count, 0);
    prev_hi = hi;
  }
  CHECK(isinf(prev_hi));
  double lo, hi;
  uint64_t count;
  CHECK(po_hdr_bucket(h, n, &lo, &hi, &count) == PO_EINVAL);
  /* a recorded value lands in the bucket whose bounds hold it */
  size_t idx;
  REQUIRE(po_hdr_record(h, 0.7, &idx) == 0);
  REQUIRE(po_hdr_bucket(h, idx, &lo, &hi, &count) == 0);
  CHECK(lo <= 0.7 && 0.7 < hi);
  CHECK_EQ_INT(count, 1);
  po_hdr_free(h);
}

static void out_of_range_values_report_exact_extremes(void) {
  po_hdr *h;
  REQUIRE(po_hdr_new(1, 1000, &h) == 0);
  CHECK(po_hdr_record(h, 0, NULL) == 0);
  CHECK(po_hdr_record(h, 0.25, NULL) == 0);
  CHECK(po_hdr_record(h, 5, NULL) == 0);
  CHECK(po_hdr_record(h, 1e6, NULL) == 0);
  double p[] = {0, 25, 50, 75, 100}, got[5];
  REQUIRE(po_hdr_percentiles(h, p, 5, got) == 0);
  CHECK(got[0] == 0);
  CHECK(got[1] == 0); /* the underflow bucket reports the minimum */
  CHECK(got[2] == 0); /* 0.25 is below the range too: reported as the minimum */
  CHECK(fabs(got[3] - 5) / 5 <= 0.01);
  CHECK(got[4] == 1e6);
  po_hdr_free(h);
}

static void rejects_bad_values_and_ranges(void) {
  po_hdr *h;
  CHECK(po_hdr_new(0, 10, &h) == PO_EINVAL);
  CHECK(po_hdr_new(-1, 10, &h) == PO_EINVAL);
  CHECK(po_hdr_new(10, 10, &h) == PO_EINVAL);
  CHECK(po_hdr_new(1, INFINITY, &h) == PO_EINVAL);
  CHECK(po_hdr_new(NAN, 10, &h) == PO_EINVAL);
  CHECK(po_hdr_new(1e-310, 10, &h) == PO_EINVAL); /* subnormal */
  REQUIRE(po_hdr_new(1, 10, &h) == 0);
  CHECK(po_hdr_record(h, -1, NULL) == PO_EINVAL);
  CHECK(po_hdr_record(h, NAN, NULL) == PO_EINVAL);
  CHECK(po_hdr_record(h, INFINITY, NULL) == PO_EINVAL);
  po_hdr_stats st;
  po_hdr_stats_get(h, &st);
  CHECK_EQ_INT(st.count, 0);
  CHECK(st.sum == 0 && st.min == 0 && st.max == 0 && st.mean == 0);
  double p[] = {50, 101}, got[2] = {-1, -1};
  CHECK(po_hdr_percentiles(h, p, 2, got) == PO_EINVAL);
  CHECK(got[0] == -1);
  double nan_p = NAN;
  CHECK(po_hdr_percentiles(h, &nan_p, 1, got) == PO_EINVAL);
  REQUIRE(po_hdr_percentiles(h, p, 1, got) == 0);
  CHECK(got[0] == 0); /* empty */
  double many[PO_HDR_MAX_PERCENTILES + 1] = {0};
  double out[PO_HDR_MAX_PERCENTILES + 1];
  CHECK(po_hdr_percentiles(h, many, PO_HDR_MAX_PERCENTILES + 1, out) == PO_EINVAL);
  po_hdr_free(h);
}

static void merge_equals_recording_everything_in_one(void) {
  po_hdr *a, *b, *all, *other;
  REQUIRE(po_hdr_new(1e-6, 1e6, &a) == 0);
  REQUIRE(po_hdr_new(1e-6, 1e6, &b) == 0);
  REQUIRE(po_hdr_new(1e-6, 1e6, &all) == 0);
  REQUIRE(po_hdr_new(1e-3, 1e6, &other) == 0);
  for (int i = 0; i < 20000; i++) {
    double v = pow(10, -5 + 9 * uniform());
    CHECK(po_hdr_record(i % 3 ? a : b, v, NULL) == 0);
    CHECK(po_hdr_record(all, v, NULL) == 0);
  }
  REQUIRE(po_hdr_merge(a, b) == 0);
  size_t n = po_hdr_buckets(a);
  for (size_t i = 0; i < n; i++) {
    double lo, hi;
    uint64_t ca, cb;
    po_hdr_bucket(a, i, &lo, &hi, &ca);
    po_hdr_bucket(all, i, &lo, &hi, &cb);
    CHECK_EQ_INT(ca, cb);
  }
  po_hdr_stats sa, sall;
  po_hdr_stats_get(a, &sa);
  po_hdr_stats_get(all, &sall);
  CHECK_EQ_INT(sa.count, sall.count);
  CHECK(sa.min == sall.min && sa.max == sall.max);
  CHECK(fabs(sa.sum - sall.sum) <= 1e-9 * sall.sum);
  CHECK(po_hdr_merge(a, other) == PO_EINVAL);
  CHECK(po_hdr_merge(a, a) == PO_EINVAL);
  po_hdr_reset(a);
  po_hdr_stats_get(a, &sa);
  CHECK_EQ_INT(sa.count, 0);
  po_hdr_free(a);
  po_hdr_free(b);
  po_hdr_free(all);
  po_hdr_free(other);
}

enum { THREADS = 4, PER_THREAD = 200000 };

static void *record_many(void *ud) {
  po_hdr *h = ud;
  for (int i = 0; i < PER_THREAD; i++) po_hdr_record(h, (double)(i % 1000 + 1), NULL);
  return NULL;
}

static void concurrent_recording_is_exact(void) {
  po_hdr *h;
  REQUIRE(po_hdr_new(PO_HDR_DEFAULT_LOWEST, PO_HDR_DEFAULT_HIGHEST, &h) == 0);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) REQUIRE(pthread_create(&t[i], NULL, record_many, h) == 0);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  po_hdr_stats st;
  po_hdr_stats_get(h, &st);
  CHECK_EQ_INT(st.count, (uint64_t)THREADS * PER_THREAD);
  /* integers: every partial sum is exact in a double */
  CHECK(st.sum == (double)THREADS * (PER_THREAD / 1000) * (1000.0 * 1001 / 2));
  CHECK(st.min == 1 && st.max == 1000);
  po_hdr_free(h);
}

int main(void) {
  RUN(percentiles_within_one_percent_uniform);
  RUN(percentiles_within_one_percent_log_uniform);
  RUN(percentiles_within_one_percent_heavy_tail);
  RUN(small_counts_and_integers);
  RUN(bucket_bounds_are_contiguous_and_narrow);
  RUN(out_of_range_values_report_exact_extremes);
  RUN(rejects_bad_values_and_ranges);
  RUN(merge_equals_recording_everything_in_one);
  RUN(concurrent_recording_is_exact);
  return TEST_SUMMARY();
}
