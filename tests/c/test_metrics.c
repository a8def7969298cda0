/* Tests for src/core/metrics.c: the registry (identity, conflicts, name
 * rules), exact counting from 4 threads, gauges, histogram buckets. */
#include "error.h"
#include "metrics.h"

#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

static po_metric *reg(po_metric_type type, const char *name, const char *help, const char *unit,
                      const po_metric_label *labels, size_t nlabels) {
  po_metric_spec spec = {.type = type, .name = name, .help = help, .unit = unit, .labels = labels, .nlabels = nlabels};
  po_metric *m = NULL;
  return po_metrics_register(&spec, &m) == 0 ? m : NULL;
}

static void refused(po_metric_spec spec, const char *message_part) {
  po_metric *m = NULL;
  CHECK_EQ_INT(po_metrics_register(&spec, &m), PO_EINVAL);
  CHECK(m == NULL);
  if (!strstr(po_metrics_last_error(), message_part)) {
    fprintf(stderr, "expected '%s' in '%s'\n", message_part, po_metrics_last_error());
    CHECK(0);
  }
}

enum { THREADS = 4, PER_THREAD = 250000 };

static void *increment(void *ud) {
  (void)ud;
  /* each thread looks the counter up itself, as each Lua state does */
  po_metric_label l = {"worker", "all"};
  po_metric *c = reg(PO_METRIC_COUNTER, "threads_increments_total", "increments from threads", NULL, &l, 1);
  if (!c) return (void *)1;
  for (int i = 0; i < PER_THREAD; i++)
    if (po_counter_inc(c, 1) != 0) return (void *)1;
  return NULL;
}

static void four_threads_count_exactly(void) {
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) REQUIRE(pthread_create(&t[i], NULL, increment, NULL) == 0);
  for (int i = 0; i < THREADS; i++) {
    void *rc;
    pthread_join(t[i], &rc);
    CHECK(rc == NULL);
  }
  po_metric_label l = {"worker", "all"};
  po_metric *c = reg(PO_METRIC_COUNTER, "threads_increments", NULL, NULL, &l, 1);
  REQUIRE(c);
  double v;
  REQUIRE(po_metric_value(c, &v) == 0);
  CHECK(v == (double)THREADS * PER_THREAD);
}

static void same_name_and_labels_is_the_same_metric(void) {
  po_metric_label ab[] = {{"a", "1"}, {"b", "2"}}, ba[] = {{"b", "2"}, {"a", "1"}}, other[] = {{"a", "1"}, {"b", "3"}};
  po_metric *x = reg(PO_METRIC_GAUGE, "identity_gauge", "h", NULL, ab, 2);
  po_metric *y = reg(PO_METRIC_GAUGE, "identity_gauge", NULL, NULL, ba, 2);
  po_metric *z = reg(PO_METRIC_GAUGE, "identity_gauge", "h", NULL, other, 2);
  REQUIRE(x && y && z);
  CHECK(x == y);
  CHECK(x != z);
  po_metric_info info;
  po_metric_describe(z, &info);
  CHECK_EQ_STR(info.name, "identity_gauge");
  CHECK_EQ_STR(info.help, "h");
  CHECK_EQ_INT(info.nlabels, 2);
  CHECK_EQ_STR(info.label_names[0], "a");
  CHECK_EQ_STR(info.label_values[1], "3");
}

static void names_take_unit_and_drop_total(void) {
  po_metric *h = reg(PO_METRIC_HISTOGRAM, "request_latency", "latency", "seconds", NULL, 0);
  REQUIRE(h);
  po_metric_info info;
  po_metric_describe(h, &info);
  CHECK_EQ_STR(info.name, "request_latency_seconds");
  CHECK_EQ_STR(info.unit, "seconds");
  CHECK(reg(PO_METRIC_HISTOGRAM, "request_latency_seconds", NULL, "seconds", NULL, 0) == h);
  CHECK(reg(PO_METRIC_HISTOGRAM, "request_latency_seconds", NULL, NULL, NULL, 0) == h);
  po_metric *c = reg(PO_METRIC_COUNTER, "sent_bytes_total", "bytes sent", "bytes", NULL, 0);
  REQUIRE(c);
  po_metric_describe(c, &info);
  CHECK_EQ_STR(info.name, "sent_bytes");
  CHECK(reg(PO_METRIC_COUNTER, "sent_bytes", NULL, NULL, NULL, 0) == c);
}

static void conflicts_are_refused(void) {
  po_metric_label l = {"kind", "x"};
  REQUIRE(reg(PO_METRIC_COUNTER, "conflict_calls", "calls", NULL, &l, 1));
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "conflict_calls"}, "already registered as a counter");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "conflict_calls", .help = "other"}, "another help");
  REQUIRE(reg(PO_METRIC_GAUGE, "conflict_size_bytes", "no unit given", NULL, NULL, 0));
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "conflict_size", .unit = "bytes"}, "with unit ''");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "conflict_calls"}, "label names {kind}");
  po_metric_label other = {"sort", "x"};
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "conflict_calls", .labels = &other, .nlabels = 1},
          "label names {kind}");
  REQUIRE(reg(PO_METRIC_HISTOGRAM, "conflict_hist", "h", NULL, NULL, 0));
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "conflict_hist_count"}, "would write samples");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "conflict_hist_sum"}, "would write samples");
  double b[] = {1, 2};
  refused((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "conflict_hist", .buckets = b, .nbuckets = 2},
          "other buckets");
  refused((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "conflict_hist", .lowest = 1e-3}, "range");
  REQUIRE(reg(PO_METRIC_GAUGE, "conflict_g_total", "g", NULL, NULL, 0));
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "conflict_g"}, "would write samples");
}

static void names_labels_and_options_are_validated(void) {
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "1abc"}, "invalid metric name '1abc'");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "a-b"}, "invalid metric name");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = ""}, "invalid metric name");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = NULL}, "invalid metric name");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "_total"}, "invalid counter name");
  refused((po_metric_spec){.type = 9, .name = "x"}, "unknown metric type");
  char longname[PO_METRICS_MAX_NAME + 2];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = longname}, "longer than");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "ok", .unit = "se-conds"}, "invalid unit");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "ok", .help = "\xff"}, "help text is not valid UTF-8");
  po_metric_label bad_name = {"0x", "v"}, reserved = {"__x", "v"}, le = {"le", "1"}, bad_value = {"k", "\xc0\x80"};
  po_metric_label twice[] = {{"k", "1"}, {"k", "2"}};
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "ok", .labels = &bad_name, .nlabels = 1},
          "invalid label name '0x'");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "ok", .labels = &reserved, .nlabels = 1}, "reserved");
  refused((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "ok", .labels = &le, .nlabels = 1}, "'le' is reserved");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "ok", .labels = &bad_value, .nlabels = 1}, "UTF-8");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "ok", .labels = twice, .nlabels = 2}, "given twice");
  po_metric_label many[PO_METRICS_MAX_LABELS + 1];
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "ok", .labels = many, .nlabels = PO_METRICS_MAX_LABELS + 1},
          "more than");
  double unsorted[] = {1, 0.5}, inf[] = {1, INFINITY};
  refused((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "ok", .buckets = unsorted, .nbuckets = 2}, "strictly");
  refused((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "ok", .buckets = inf, .nbuckets = 2}, "finite");
  refused((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "ok", .buckets = inf, .nbuckets = 0}, "1 to");
  refused((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "ok", .lowest = 5, .highest = 1}, "invalid range");
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "ok", .buckets = unsorted, .nbuckets = 2}, "only histograms");
  /* nothing of the refused names was registered */
  po_metric *ok = reg(PO_METRIC_GAUGE, "ok", NULL, NULL, NULL, 0);
  CHECK(ok != NULL);
  /* valid edge cases */
  po_metric_label utf = {"emoji", "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ \n"};
  CHECK(reg(PO_METRIC_COUNTER, "ns:colons_ok", "h", NULL, &utf, 1) != NULL);
}

static void counters_and_gauges(void) {
  po_metric *c = reg(PO_METRIC_COUNTER, "values_counter_total", "c", NULL, NULL, 0);
  po_metric *g = reg(PO_METRIC_GAUGE, "values_gauge", "g", NULL, NULL, 0);
  REQUIRE(c && g);
  double v;
  CHECK(po_counter_inc(c, 2) == 0);
  CHECK(po_counter_inc(c, 0.25) == 0);
  CHECK(po_counter_inc(c, 0) == 0);
  CHECK(po_counter_inc(c, -1) == PO_EINVAL);
  CHECK(po_counter_inc(c, NAN) == PO_EINVAL);
  CHECK(po_counter_inc(c, INFINITY) == PO_EINVAL);
  CHECK(po_counter_inc(g, 1) == PO_EINVAL);
  REQUIRE(po_metric_value(c, &v) == 0);
  CHECK(v == 2.25);
  CHECK(po_counter_inc(c, 1e30) == 0); /* above 2^64: the floating part */
  REQUIRE(po_metric_value(c, &v) == 0);
  CHECK(v == 1e30 + 2.25);
  CHECK(po_gauge_set(g, -3.5) == 0);
  CHECK(po_gauge_add(g, 1) == 0);
  CHECK(po_gauge_add(g, NAN) == PO_EINVAL);
  CHECK(po_gauge_set(g, NAN) == PO_EINVAL);
  CHECK(po_gauge_set(c, 1) == PO_EINVAL);
  CHECK(po_gauge_add(c, 1) == PO_EINVAL);
  REQUIRE(po_metric_value(g, &v) == 0);
  CHECK(v == -2.5);
  CHECK(po_histogram_observe(g, 1) == PO_EINVAL);
  CHECK(po_histogram_hdr(g) == NULL);
  uint64_t cum[2];
  double sum;
  CHECK(po_histogram_cumulative(c, cum, &sum) == PO_EINVAL);
}

static void histogram_buckets_are_cumulative_with_inclusive_bounds(void) {
  double b[] = {1, 2, 5};
  po_metric_spec spec = {.type = PO_METRIC_HISTOGRAM, .name = "sizes", .help = "h", .buckets = b, .nbuckets = 3};
  po_metric *h;
  REQUIRE(po_metrics_register(&spec, &h) == 0);
  double vs[] = {0, 0.5, 1, 1.0000001, 2, 3, 5, 5.5, 1e12};
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) CHECK(po_histogram_observe(h, vs[i]) == 0);
  CHECK(po_histogram_observe(h, -1) == PO_EINVAL);
  CHECK(po_histogram_observe(h, NAN) == PO_EINVAL);
  uint64_t cum[4];
  double sum;
  REQUIRE(po_histogram_cumulative(h, cum, &sum) == 0);
  CHECK_EQ_INT(cum[0], 3); /* 0, 0.5, 1 */
  CHECK_EQ_INT(cum[1], 5); /* + 1.0000001, 2 */
  CHECK_EQ_INT(cum[2], 7); /* + 3, 5 */
  CHECK_EQ_INT(cum[3], 9); /* + 5.5, 1e12 */
  CHECK(sum == 0 + 0.5 + 1 + 1.0000001 + 2 + 3 + 5 + 5.5 + 1e12);
  po_hdr_stats st;
  po_hdr_stats_get(po_histogram_hdr(h), &st);
  CHECK_EQ_INT(st.count, 9);
  double v;
  CHECK(po_metric_value(h, &v) == PO_EINVAL);

  /* default buckets: every value lands where a linear scan says */
  po_metric *d = reg(PO_METRIC_HISTOGRAM, "default_buckets", "h", NULL, NULL, 0);
  REQUIRE(d);
  po_metric_info info;
  po_metric_describe(d, &info);
  CHECK_EQ_INT(info.nbuckets, 11);
  uint64_t want[12] = {0};
  for (int i = 0; i < 5000; i++) {
    double x = i * 0.0031;
    REQUIRE(po_histogram_observe(d, x) == 0);
    size_t j = 0;
    while (j < info.nbuckets && x > info.buckets[j]) j++;
    for (size_t k = j; k <= info.nbuckets; k++) want[k]++;
  }
  uint64_t got[12];
  REQUIRE(po_histogram_cumulative(d, got, &sum) == 0);
  for (size_t k = 0; k <= info.nbuckets; k++) CHECK_EQ_INT(got[k], want[k]);
}

static void histograms_merge(void) {
  po_metric_label a = {"part", "a"}, b = {"part", "b"};
  po_metric *x = reg(PO_METRIC_HISTOGRAM, "merge_parts", "h", NULL, &a, 1);
  po_metric *y = reg(PO_METRIC_HISTOGRAM, "merge_parts", "h", NULL, &b, 1);
  po_metric *other = reg(PO_METRIC_HISTOGRAM, "default_buckets", NULL, NULL, NULL, 0);
  po_metric *g = reg(PO_METRIC_GAUGE, "values_gauge", NULL, NULL, NULL, 0);
  REQUIRE(x && y && other && g);
  for (int i = 1; i <= 10; i++) CHECK(po_histogram_observe(i % 2 ? x : y, i * 0.1) == 0);
  REQUIRE(po_histogram_merge(x, y) == 0);
  po_hdr_stats st;
  po_hdr_stats_get(po_histogram_hdr(x), &st);
  CHECK_EQ_INT(st.count, 10);
  uint64_t cum[12];
  double sum;
  REQUIRE(po_histogram_cumulative(x, cum, &sum) == 0);
  CHECK_EQ_INT(cum[11], 10);
  CHECK(po_histogram_merge(x, x) == PO_EINVAL);
  CHECK(po_histogram_merge(x, g) == PO_EINVAL);
  double b2[] = {1};
  po_metric_spec spec = {.type = PO_METRIC_HISTOGRAM, .name = "merge_other_buckets", .buckets = b2, .nbuckets = 1};
  po_metric *z;
  REQUIRE(po_metrics_register(&spec, &z) == 0);
  CHECK(po_histogram_merge(x, z) == PO_EINVAL);
}

typedef struct seen {
  int n;
  char names[64][PO_METRICS_MAX_NAME + 1];
} seen;

static int collect_names(const po_metric *m, void *ud) {
  seen *s = ud;
  po_metric_info info;
  po_metric_describe(m, &info);
  if (s->n < 64) snprintf(s->names[s->n++], sizeof s->names[0], "%s", info.name);
  return 0;
}

static int stop_at_second(const po_metric *m, void *ud) {
  (void)m;
  return ++*(int *)ud == 2 ? 7 : 0;
}

static void each_visits_families_in_name_order(void) {
  seen s = {0};
  REQUIRE(po_metrics_each(collect_names, &s) == 0);
  CHECK(s.n >= 10);
  for (int i = 1; i < s.n; i++) CHECK(strcmp(s.names[i - 1], s.names[i]) <= 0);
  int calls = 0;
  CHECK_EQ_INT(po_metrics_each(stop_at_second, &calls), 7);
  CHECK_EQ_INT(calls, 2);
}

static void object_path_names_this_executable(void) {
  const char *path = NULL;
  REQUIRE(po_metrics_object_path(&path) == 0);
  CHECK(strstr(path, "test_metrics") != NULL);
}

int main(void) {
  RUN(four_threads_count_exactly);
  RUN(same_name_and_labels_is_the_same_metric);
  RUN(names_take_unit_and_drop_total);
  RUN(conflicts_are_refused);
  RUN(names_labels_and_options_are_validated);
  RUN(counters_and_gauges);
  RUN(histogram_buckets_are_cumulative_with_inclusive_bounds);
  RUN(histograms_merge);
  RUN(each_visits_families_in_name_order);
  RUN(object_path_names_this_executable);
  return TEST_SUMMARY();
}
