/* The registry's rules at their edges (src/core/metrics.c): each character
 * class a name may hold, UTF-8 of every length in label values, a unit that
 * makes the name too long, and a spec that disagrees with an existing
 * family in one field only. */
#include "error.h"
#include "metrics.h"

#include "harness.h"

#include <string.h>

static int registers(po_metric_spec spec) {
  po_metric *m = NULL;
  return po_metrics_register(&spec, &m) == 0 && m != NULL;
}

static void refused(po_metric_spec spec, const char *message_part) {
  po_metric *m = NULL;
  CHECK_EQ_INT(po_metrics_register(&spec, &m), PO_EINVAL);
  if (!strstr(po_metrics_last_error(), message_part)) {
    fprintf(stderr, "expected '%s' in '%s'\n", message_part, po_metrics_last_error());
    CHECK(0);
  }
}

static void names_take_letters_of_both_cases_digits_and_colons(void) {
  CHECK(registers((po_metric_spec){.type = PO_METRIC_GAUGE, .name = ":Rules_Az09:x"}));
  CHECK(registers((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "Z"}));
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "rules x"}, "invalid metric name 'rules x'");
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "rules{"}, "invalid metric name");
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "9"}, "invalid metric name");
  /* units: letters of both cases, digits, underscores; at most 64 bytes */
  CHECK(registers((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "rules_size", .unit = "KiB_2"}));
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "rules_u", .unit = ""}, "invalid unit");
  char unit65[66];
  memset(unit65, 'u', 65);
  unit65[65] = '\0';
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "rules_u", .unit = unit65}, "invalid unit");
  CHECK(registers((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "rules_u64", .unit = unit65 + 1}));
}

static void label_names_take_letters_digits_and_underscores(void) {
  po_metric_label ok[] = {{"Upper", "1"}, {"_lead", "2"}, {"x9", "3"}};
  CHECK(registers((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "rules_labels", .labels = ok, .nlabels = 3}));
  po_metric_label colon = {"a:b", "v"}, dash = {"a-b", "v"}, empty = {"", "v"}, null_name = {NULL, "v"};
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "rules_l", .labels = &colon, .nlabels = 1},
          "invalid label name 'a:b'");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "rules_l", .labels = &dash, .nlabels = 1},
          "invalid label name 'a-b'");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "rules_l", .labels = &empty, .nlabels = 1},
          "invalid label name ''");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "rules_l", .labels = &null_name, .nlabels = 1},
          "invalid label name ''");
  /* one leading underscore is allowed, two are reserved */
  po_metric_label one = {"_x", "v"};
  CHECK(registers((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "rules_one_underscore", .labels = &one, .nlabels = 1}));
  po_metric_label null_value = {"k", NULL};
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "rules_l", .labels = &null_value, .nlabels = 1},
          "the value of label 'k' is not valid UTF-8");
}

static void label_values_are_well_formed_utf8(void) {
  /* one of each length: U+00E9, U+20AC, U+1F600; the edges U+0800, U+FFFF, U+10FFFF */
  const char *good[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    po_metric_label l = {"v", good[i]};
    CHECK(registers((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "rules_utf8", .labels = &l, .nlabels = 1}));
  }
  const char *bad[] = {
      "\xe0\x9f\xbf",     /* U+07FF in three bytes: overlong */
      "\xed\xa0\x80",     /* U+D800: a surrogate */
      "\xed\xbf\xbf",     /* U+DFFF */
      "\xf4\x90\x80\x80", /* U+110000 */
      "\xf0\x8f\xbf\xbf", /* U+FFFF in four bytes: overlong */
      "\xe2\x82",         /* cut short */
      "\xe2\x28\xac",     /* a continuation byte that is not one */
      "\x80",             /* a lone continuation byte */
      "\xf8\x88\x80\x80\x80", /* a five-byte lead */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    po_metric_label l = {"v", bad[i]};
    refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "rules_utf8", .labels = &l, .nlabels = 1},
            "not valid UTF-8");
  }
}

static void a_unit_that_makes_the_name_too_long_is_refused(void) {
  char name[PO_METRICS_MAX_NAME + 1];
  memset(name, 'n', PO_METRICS_MAX_NAME - 3);
  name[PO_METRICS_MAX_NAME - 3] = '\0';
  /* 197 + "_ms" = 200 fits; 197 + "_sec" = 201 does not */
  CHECK(registers((po_metric_spec){.type = PO_METRIC_GAUGE, .name = name, .unit = "ms"}));
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = name, .unit = "sec"}, "is longer than 200 bytes");
}

static void only_histograms_have_buckets_or_a_range(void) {
  double b[PO_METRICS_MAX_BUCKETS + 1];
  for (int i = 0; i <= PO_METRICS_MAX_BUCKETS; i++) b[i] = i + 1;
  refused((po_metric_spec){.type = PO_METRIC_GAUGE, .name = "rules_g", .lowest = 1}, "only histograms");
  refused((po_metric_spec){.type = PO_METRIC_COUNTER, .name = "rules_c", .highest = 10}, "only histograms");
  refused((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "rules_h", .buckets = b, .nbuckets = PO_METRICS_MAX_BUCKETS + 1},
          "1 to 64 buckets");
  CHECK(registers((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "rules_h64", .buckets = b, .nbuckets = PO_METRICS_MAX_BUCKETS}));
  refused((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "rules_h", .lowest = -1}, "invalid range");
}

static void an_existing_family_refuses_a_spec_differing_in_one_field(void) {
  po_metric_label two[] = {{"b", "1"}, {"a", "2"}};
  double b[] = {1, 2, 3};
  po_metric_spec base = {.type = PO_METRIC_HISTOGRAM, .name = "rules_fam", .labels = two, .nlabels = 2, .buckets = b,
                         .nbuckets = 3, .lowest = 1e-3, .highest = 1e3};
  REQUIRE(registers(base));
  /* the same spec again, and one leaving out what it may leave out */
  CHECK(registers(base));
  CHECK(registers((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "rules_fam", .labels = two, .nlabels = 2}));
  /* the label names listed, sorted, when they differ */
  po_metric_label one = {"a", "1"};
  refused((po_metric_spec){.type = PO_METRIC_HISTOGRAM, .name = "rules_fam", .labels = &one, .nlabels = 1},
          "with the label names {a, b}");
  po_metric_spec s = base;
  double other_values[] = {1, 2, 4};
  s.buckets = other_values;
  refused(s, "other buckets");
  s = base;
  s.lowest = 1e-2;
  refused(s, "with the range [0.001, 1000]");
  s = base;
  s.highest = 1e4;
  refused(s, "with the range [0.001, 1000]");
  s = base;
  s.lowest = 0;
  s.highest = 1e4;
  refused(s, "with the range");
}

static void merging_needs_the_same_range(void) {
  double b[] = {1, 2};
  po_metric *x = NULL, *y = NULL, *z = NULL;
  po_metric_spec sx = {.type = PO_METRIC_HISTOGRAM, .name = "rules_merge_x", .buckets = b, .nbuckets = 2, .lowest = 1e-3, .highest = 1e3};
  po_metric_spec sy = sx, sz = sx;
  sy.name = "rules_merge_y";
  sy.highest = 1e4;
  sz.name = "rules_merge_z";
  sz.lowest = 1e-2;
  REQUIRE(po_metrics_register(&sx, &x) == 0 && po_metrics_register(&sy, &y) == 0 && po_metrics_register(&sz, &z) == 0);
  CHECK_EQ_INT(po_histogram_merge(x, y), PO_EINVAL);
  CHECK_EQ_INT(po_histogram_merge(x, z), PO_EINVAL);
  po_metric *g = NULL;
  REQUIRE(po_metrics_register(&(po_metric_spec){.type = PO_METRIC_GAUGE, .name = "rules_merge_g"}, &g) == 0);
  CHECK_EQ_INT(po_histogram_merge(g, x), PO_EINVAL);
  CHECK(po_histogram_observe(x, 1.5) == 0);
  CHECK_EQ_INT(po_histogram_merge(x, x), PO_EINVAL);
}

static void a_missing_spec_or_out_is_refused(void) {
  po_metric *m = NULL;
  po_metric_spec spec = {.type = PO_METRIC_GAUGE, .name = "rules_missing"};
  CHECK_EQ_INT(po_metrics_register(NULL, &m), PO_EINVAL);
  CHECK_EQ_STR(po_metrics_last_error(), "no spec");
  CHECK_EQ_INT(po_metrics_register(&spec, NULL), PO_EINVAL);
  CHECK_EQ_STR(po_metrics_last_error(), "no spec");
}

int main(void) {
  RUN(a_missing_spec_or_out_is_refused);
  RUN(names_take_letters_of_both_cases_digits_and_colons);
  RUN(label_names_take_letters_digits_and_underscores);
  RUN(label_values_are_well_formed_utf8);
  RUN(a_unit_that_makes_the_name_too_long_is_refused);
  RUN(only_histograms_have_buckets_or_a_range);
  RUN(an_existing_family_refuses_a_spec_differing_in_one_field);
  RUN(merging_needs_the_same_range);
  return TEST_SUMMARY();
}
