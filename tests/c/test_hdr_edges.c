/* src/core/hdr.c at its edges: the widest range a double allows, ranges
 * that differ at one end only, merging an empty histogram, percentiles asked
 * out of order, and the range a histogram reports. */
#include "error.h"
#include "hdr.h"

#include "harness.h"

#include <float.h>
#include <math.h>

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

int main(void) {
  RUN(the_whole_normal_range_fits);
  RUN(merging_needs_both_ends_equal);
  RUN(percentiles_come_back_in_the_order_asked);
  return TEST_SUMMARY();
}
