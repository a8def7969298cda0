/* src/core/hdr.c at its edges: the widest range a double allows, ranges
 * that differ at one end only, merging an empty histogram, percentiles asked
 * out of order, the range a histogram reports, and the extremes when
 * threads race to move them. */
#include "error.h"
#include "hdr.h"

#include "harness.h"

#include <float.h>
#include <math.h>
#include <pthread.h>

static void the_whole_normal_range_fits(void) {
  po_hdr *h;
  CHECK(po_hdr_new(1, 10, NULL) == PO_EINVAL);
  REQUIRE(po_hdr_new(DBL_MIN, DBL_MAX, &h) == 0);
  /* underflow, 2046 binades, overflow */
  CHECK_EQ_INT(po_hdr_buckets(h), 2046 * PO_HDR_SUB + 2);
  CHECK(po_hdr_record(h, DBL_MAX, NULL) == 0);
  CHECK(po_hdr_record(h, DBL_MIN, NULL) == 0);
  po_hdr_stats st;
  po_hdr_stats_get(h, &st);
  CHECK(st.min == DBL_MIN && st.max == DBL_MAX);
  double lo, hi;
  po_hdr_range(h, &lo, &hi);
  CHECK(lo == DBL_MIN && hi == DBL_MAX);
  po_hdr_free(h);
}

static void merging_needs_both_ends_equal(void) {
  po_hdr *a, *wider_top, *empty;
  REQUIRE(po_hdr_new(1, 100, &a) == 0);
  REQUIRE(po_hdr_new(1, 1000, &wider_top) == 0);
  REQUIRE(po_hdr_new(1, 100, &empty) == 0);
  CHECK_EQ_INT(po_hdr_merge(a, wider_top), PO_EINVAL);
  CHECK(po_hdr_record(a, 5, NULL) == 0);
  /* an empty source changes nothing: its min and max of 0 are not taken */
  CHECK(po_hdr_merge(a, empty) == 0);
  po_hdr_stats st;
  po_hdr_stats_get(a, &st);
  CHECK(st.count == 1 && st.sum == 5 && st.min == 5 && st.max == 5);
  double lo, hi;
  po_hdr_range(wider_top, &lo, &hi);
  CHECK(lo == 1 && hi == 1000);
  po_hdr_free(a);
  po_hdr_free(wider_top);
  po_hdr_free(empty);
}

static void percentiles_come_back_in_the_order_asked(void) {
  po_hdr *h;
  REQUIRE(po_hdr_new(1, 1000, &h) == 0);
  for (int v = 1; v <= 100; v++) CHECK(po_hdr_record(h, v, NULL) == 0);
  double ps[] = {100, 50, 0, 90}, out[4];
  REQUIRE(po_hdr_percentiles(h, ps, 4, out) == 0);
  CHECK(out[0] == 100);                    /* the exact max */
  CHECK(fabs(out[1] - 50) <= 50.0 / 64);   /* within a sub-bucket */
  CHECK(fabs(out[2] - 1) <= 1.0 / 64);
  CHECK(fabs(out[3] - 90) <= 90.0 / 64);
  po_hdr_free(h);
}

/* Every record of every thread moves the max (rising values) or the min
 * (falling values), so the threads keep overwriting each other's extreme:
 * whichever store lands last, the extreme must be the true one. */
enum { THREADS = 4, PER_THREAD = 400000 };

typedef struct racer {
  po_hdr *rising, *falling;
  int t;
} racer;

static void *race(void *ud) {
  racer *r = ud;
  for (int i = 0; i < PER_THREAD; i++) {
    double v = (double)(i * THREADS + r->t + 1);
    po_hdr_record(r->rising, v, NULL);
    po_hdr_record(r->falling, (double)(THREADS * PER_THREAD + 1) - v, NULL);
  }
  return NULL;
}

static void extremes_are_exact_under_racing_threads(void) {
  po_hdr *rising, *falling;
  REQUIRE(po_hdr_new(1, 1e7, &rising) == 0);
  REQUIRE(po_hdr_new(1, 1e7, &falling) == 0);
  racer r[THREADS];
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    r[i] = (racer){rising, falling, i};
    REQUIRE(pthread_create(&t[i], NULL, race, &r[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  po_hdr_stats up, down;
  po_hdr_stats_get(rising, &up);
  po_hdr_stats_get(falling, &down);
  CHECK(up.min == 1 && up.max == THREADS * PER_THREAD);
  CHECK(down.min == 1 && down.max == THREADS * PER_THREAD);
  CHECK(up.sum == down.sum && up.count == down.count);
  po_hdr_free(rising);
  po_hdr_free(falling);
}

int main(void) {
  RUN(the_whole_normal_range_fits);
  RUN(merging_needs_both_ends_equal);
  RUN(percentiles_come_back_in_the_order_asked);
  RUN(extremes_are_exact_under_racing_threads);
  return TEST_SUMMARY();
}
