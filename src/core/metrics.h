/* Metrics primitives: counters, gauges and histograms in one process-wide
 * registry, shared by every thread and every Lua state of the process.
 *
 * A metric is a family (name, type, help, unit, label names; histograms
 * also their exposition buckets and range) and, inside it, one child per
 * label set: the labels are part of a metric's identity. po_metrics_register
 * returns the child, creating it (and its family) on first use; asking again
 * for the same name and labels returns the same child. Children live until
 * the process exits, so a pointer to one stays valid everywhere (the LuaJIT
 * FFI fast path keeps raw pointers).
 *
 * Recording (po_counter_inc, po_gauge_set, po_gauge_add,
 * po_histogram_observe) takes no lock and allocates nothing: relaxed
 * atomics, exact under any number of threads. Registration takes a mutex.
 * Reading (po_metrics_each, po_metric_value …) takes no lock: the registry
 * only grows, and new entries are published with release stores.
 *
 * Names follow Prometheus: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * names [a-zA-Z_][a-zA-Z0-9_]* not starting with "__" ("le" is reserved for
 * histograms), label values and help any valid UTF-8. A unit is appended to
 * the name as a suffix unless the name already ends with "_<unit>", and a
 * counter's name is stored without a trailing "_total" (its samples are
 * written name_total), as Prometheus's own client libraries do. */
#ifndef PO_METRICS_H
#define PO_METRICS_H

#include "hdr.h"

#include <stddef.h>
#include <stdint.h>

#define PO_METRICS_MAX_NAME 200   /* bytes in a metric name, suffixes included */
#define PO_METRICS_MAX_LABELS 16  /* labels per metric */
#define PO_METRICS_MAX_BUCKETS 64 /* exposition buckets per histogram (+Inf implicit) */

typedef enum po_metric_type {
  PO_METRIC_COUNTER = 1,
  PO_METRIC_GAUGE = 2,
  PO_METRIC_HISTOGRAM = 3,
} po_metric_type;

typedef struct po_metric po_metric;

typedef struct po_metric_label {
  const char *name, *value;
} po_metric_label;

/* What to register. Fields left NULL (or 0) are "not given": a new family
 * takes the default, an existing one keeps what it has. A field given must
 * equal the existing family's. */
typedef struct po_metric_spec {
  po_metric_type type;
  const char *name;
  const char *help; /* default "" */
  const char *unit; /* default none; [a-zA-Z0-9_]+ */
  const po_metric_label *labels;
  size_t nlabels;
  /* histograms only */
  const double *buckets; /* exposition upper bounds, finite, strictly increasing; default
                            Prometheus's .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 */
  size_t nbuckets;
  double lowest, highest; /* the precise range of the log-linear buckets (hdr.h) */
} po_metric_spec;

/* Finds or creates the metric spec names. Returns 0 and sets *out, or
 * PO_EINVAL when the spec is invalid or conflicts with what is registered
 * (another type, help, unit, label names, buckets or range under that name,
 * or sample names that would collide with another family's, such as a gauge
 * "x_count" beside a histogram "x"), or PO_ENOMEM. po_metrics_last_error()
 * then says why. Safe from any thread. */
int po_metrics_register(const po_metric_spec *spec, po_metric **out);

/* Text of the last registration failure on this thread; never NULL. */
const char *po_metrics_last_error(void);

/* The four recording functions below are declared again for the LuaJIT FFI
 * in lua/poengine/_ffi.lua: change both. */

/* Adds n (finite, >= 0) to a counter. Whole increments below 2^64 are exact
 * whatever the concurrency; fractional ones are exact as double additions.
 * PO_EINVAL (nothing added) for a negative, NaN or infinite n, or when m is
 * not a counter. Lock-free, allocation-free. */
int po_counter_inc(po_metric *m, double n);

/* Sets a gauge to v, or adds d (either sign) to it. PO_EINVAL for NaN or when
 * m is not a gauge. Lock-free, allocation-free. */
int po_gauge_set(po_metric *m, double v);
int po_gauge_add(po_metric *m, double d);

/* Records v (finite, >= 0) in a histogram. PO_EINVAL (nothing recorded)
 * otherwise, or when m is not a histogram. Lock-free, allocation-free. */
int po_histogram_observe(po_metric *m, double v);

/* The current value of a counter or gauge. PO_EINVAL for a histogram. */
int po_metric_value(const po_metric *m, double *out);

/* A histogram's log-linear buckets (for percentiles and stats), or NULL when
 * m is not a histogram. Owned by the metric. */
const po_hdr *po_histogram_hdr(const po_metric *m);

/* A histogram's exposition buckets: cumulative[i] observations <= the i-th
 * bound, cumulative[nbuckets] all of them (le="+Inf"), and their sum. The
 * caller provides nbuckets + 1 slots. PO_EINVAL when m is not a histogram. */
int po_histogram_cumulative(const po_metric *m, uint64_t *cumulative, double *sum);

/* Adds src's observations into dst. Both must be histograms with the same
 * exposition buckets and range; PO_EINVAL otherwise (dst unchanged). */
int po_histogram_merge(po_metric *dst, const po_metric *src);

/* Everything that identifies a metric. Pointers are owned by the registry
 * and live as long as the process. */
typedef struct po_metric_info {
  po_metric_type type;
  const char *name; /* the family name (unit suffix included, no "_total") */
  const char *help;
  const char *unit; /* "" when none */
  size_t nlabels;   /* labels sorted by name */
  const char *const *label_names;
  const char *const *label_values;
  const double *buckets; /* histograms: the exposition bounds */
  size_t nbuckets;
  double lowest, highest; /* histograms: the range */
} po_metric_info;

void po_metric_describe(const po_metric *m, po_metric_info *out);

/* Calls fn(m, ctx) for every metric: families in name order, children in
 * label order. Stops at and returns fn's first non-zero result. Takes no
 * lock; metrics registered meanwhile may or may not be visited. */
typedef int (*po_metrics_visit_fn)(const po_metric *m, void *ctx);
int po_metrics_each(po_metrics_visit_fn fn, void *ctx);

/* The path of the executable or shared object this code was linked into
 * (so that an FFI can find these functions in it). PO_ENOENT if unknown. */
int po_metrics_object_path(const char **out);

/* Keeps the executable or shared object holding the registry loaded until
 * the process exits. Metrics live as long as the process, but a Lua module
 * (poengine_core.so in a stock luajit) is unloaded with the last Lua state
 * that loaded it, which would take the registry with it. Idempotent; 0, or
 * PO_ENOENT when the object cannot be found (nothing changes then). */
int po_metrics_pin(void);

#endif
