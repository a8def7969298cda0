/* The metrics registry under injected allocation failures (tests/c/fault.h):
 * each allocation made while registering a new histogram family, or a new
 * child of an existing one, fails once in turn. Each time the call returns
 * PO_ENOMEM saying "out of memory", the registry holds nothing half-built (a
 * visit finds the family and its children as before), and the same
 * registration then works. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "error.h"
#include "fault.h"
#include "harness.h"
#include "metrics.h"
#include "runtime.h"

typedef struct census {
  const char *name;
  int children;
} census;

static int count_children(const po_metric *m, void *ud) {
  census *c = ud;
  po_metric_info info;
  po_metric_describe(m, &info);
  if (strcmp(info.name, c->name) == 0) c->children++;
  return 0;
}

static int children_of(const char *name) {
  census c = {name, 0};
  po_metrics_each(count_children, &c);
  return c.children;
}

static const double bounds[] = {0.5, 1, 2};

static int register_metric(po_metric_type type, const char *name, const char *route, po_metric **out) {
  po_metric_label labels[] = {{"route", route}, {"method", "GET"}};
  po_metric_spec spec = {.type = type, .name = name, .help = "latency", .unit = "seconds", .labels = labels,
                         .nlabels = 2};
  if (type == PO_METRIC_HISTOGRAM) spec.buckets = bounds, spec.nbuckets = 3;
  return po_metrics_register(&spec, out);
}

static int register_histogram(const char *name, const char *route, po_metric **out) {
  return register_metric(PO_METRIC_HISTOGRAM, name, route, out);
}

/* An observation of 0.7 lands in the le="1" bucket; a counter counts it. */
static int usable(po_metric *m) {
  uint64_t cum[4];
  double sum, v;
  if (po_histogram_hdr(m) == NULL) return po_counter_inc(m, 0.7) == 0 && po_metric_value(m, &v) == 0 && v == 0.7;
  return po_histogram_observe(m, 0.7) == 0 && po_histogram_cumulative(m, cum, &sum) == 0 && cum[0] == 0 &&
         cum[1] == 1 && cum[3] == 1 && sum == 0.7;
}

/* Registers name{route=route}; the family has `before` children first. */
static int add_one(po_metric_type type, const char *name, const char *route, int before) {
  po_metric *m = NULL;
  int rc = register_metric(type, name, route, &m);
  long fired = fault_fired();
  fault_disarm();
  char full[80];
  snprintf(full, sizeof full, "%s_seconds", name);
  int ok;
  if (rc == 0) {
    ok = m && usable(m) && children_of(full) == before + 1;
  } else {
    ok = fired && rc == PO_ENOMEM && strcmp(po_metrics_last_error(), "out of memory") == 0 &&
         children_of(full) == before;
    /* nothing of the failed attempt stands in the way */
    ok = ok && register_metric(type, name, route, &m) == 0 && usable(m) && children_of(full) == before + 1;
  }
  if (!ok) fprintf(stderr, "%s{%s}: rc %d (%s)\n", name, route, rc, po_metrics_last_error());
  return ok ? 0 : 1;
}

static long run_no;

static int new_family(void *arg) {
  po_metric_type type = *(po_metric_type *)arg;
  char name[48];
  snprintf(name, sizeof name, "fault_family_%ld", ++run_no);
  return add_one(type, name, "/a", 0);
}

static int new_child(void *arg) {
  int *children = arg;
  char route[32];
  snprintf(route, sizeof route, "/child/%ld", ++run_no);
  int rc = add_one(PO_METRIC_HISTOGRAM, "fault_children", route, *children);
  *children = children_of("fault_children_seconds");
  return rc;
}

static void every_allocation_of_a_new_family_fails_once(void) {
  po_metric_type type = PO_METRIC_HISTOGRAM;
  /* the range probe; the key; the family, its name, help, unit, label list
   * and both names, buckets, layout, le map; the child, its label values
   * and both copies, bucket counts, hdr */
  CHECK_EQ_INT(fault_sweep("malloc", ENOMEM, new_family, &type, 100), 18);
  type = PO_METRIC_COUNTER;
  /* no probe, buckets, layout, le map, bucket counts or hdr */
  CHECK_EQ_INT(fault_sweep("malloc", ENOMEM, new_family, &type, 100), 12);
}

static void every_allocation_of_a_new_child_fails_once(void) {
  po_metric *first;
  REQUIRE(register_histogram("fault_children", "/", &first) == 0);
  int children = 1;
  /* the range probe; the key; the child, its label values and both copies,
   * bucket counts, hdr */
  CHECK_EQ_INT(fault_sweep("malloc", ENOMEM, new_child, &children, 100), 8);
}

/* Validation builds a probe histogram to check the range: when that
 * allocation fails, the spec is not called invalid. */
static void a_failed_range_probe_is_out_of_memory(void) {
  po_metric_spec spec = {.type = PO_METRIC_HISTOGRAM, .name = "fault_probe", .lowest = 1e-3, .highest = 10};
  po_metric *m = NULL;
  fault_arm("malloc", 1, 0, ENOMEM);
  int rc = po_metrics_register(&spec, &m);
  fault_disarm();
  CHECK_EQ_INT(rc, PO_ENOMEM);
  CHECK_EQ_STR(po_metrics_last_error(), "out of memory");
  CHECK(po_metrics_register(&spec, &m) == 0 && m != NULL);
}

/* From Lua, an allocation failure raises "<function>: out of memory" (a
 * programmer error it is not, but po.metrics constructors return no
 * nil, message pair), and the same call works afterwards. */
static void lua_sees_out_of_memory(void) {
  lua_State *L = po_runtime_new();
  REQUIRE(L);
  REQUIRE(luaL_dostring(L, "local po = require 'poengine'\n"
                           "return function() return pcall(po.metrics.histogram, 'fault_from_lua', "
                           "{ labels = { k = 'v' } }) end") == 0);
  lua_pushvalue(L, -1);
  fault_arm("malloc", 1, 0, ENOMEM);
  lua_call(L, 0, 2);
  long fired = fault_fired();
  fault_disarm();
  CHECK_EQ_INT(fired, 1);
  CHECK(!lua_toboolean(L, -2));
  const char *msg = lua_tostring(L, -1), *want = "po.metrics.histogram: out of memory";
  /* after the location in poengine's Lua layer, which made the call */
  CHECK(msg && strlen(msg) >= strlen(want) && strcmp(msg + strlen(msg) - strlen(want), want) == 0);
  lua_pop(L, 2);
  lua_call(L, 0, 2);
  CHECK(lua_toboolean(L, -2));
  CHECK_EQ_INT(children_of("fault_from_lua"), 1);
  lua_close(L);
}

int main(void) {
  RUN(every_allocation_of_a_new_family_fails_once);
  RUN(every_allocation_of_a_new_child_fails_once);
  RUN(a_failed_range_probe_is_out_of_memory);
  RUN(lua_sees_out_of_memory);
  return TEST_SUMMARY();
}
