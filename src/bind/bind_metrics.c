/* poengine_core.metrics: the C API binding of the metrics registry
 * (src/core/metrics.c). lua/poengine/metrics serves inc and observe through
 * the LuaJIT FFI over the same C functions; this binding registers metrics,
 * reads them, and is the path used without the FFI. */
#include "bind.h"

#include "error.h"
#include "metrics.h"

#include <string.h>

#define METRIC_TYPE "poengine.metric"

typedef struct metric_box {
  po_metric *m; /* lives as long as the process */
} metric_box;

static po_metric *check_metric(lua_State *L, int i) {
  return ((metric_box *)luaL_checkudata(L, i, METRIC_TYPE))->m;
}

static void push_metric(lua_State *L, po_metric *m) {
  metric_box *b = lua_newuserdata(L, sizeof *b);
  b->m = m;
  luaL_getmetatable(L, METRIC_TYPE);
  lua_setmetatable(L, -2);
}

static const char *const kinds[] = {"counter", "gauge", "histogram", NULL};
static const po_metric_type kind_types[] = {PO_METRIC_COUNTER, PO_METRIC_GAUGE, PO_METRIC_HISTOGRAM};

static const char *opt_string(lua_State *L, int opts, const char *fn, const char *key) {
  lua_getfield(L, opts, key);
  const char *s = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: %s must be a string, got %s", fn, key, luaL_typename(L, -1));
    s = lua_tostring(L, -1); /* anchored by the options table */
  }
  lua_pop(L, 1);
  return s;
}

static double opt_number(lua_State *L, int opts, const char *fn, const char *key) {
  lua_getfield(L, opts, key);
  double d = 0;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0))
      luaL_error(L, "%s: %s must be a positive number", fn, key);
    d = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return d;
}

/* Reads opts.labels. The strings are anchored in a table left on the stack
 * until the caller returns (a number value is converted to a new string). */
static size_t read_labels(lua_State *L, int opts, const char *fn, po_metric_label *out) {
  lua_getfield(L, opts, "labels");
  if (lua_isnil(L, -1)) return 0;
  if (!lua_istable(L, -1)) luaL_error(L, "%s: labels must be a table, got %s", fn, luaL_typename(L, -1));
  int t = lua_gettop(L);
  lua_newtable(L);
  int hold = lua_gettop(L);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "%s: label names must be strings, got %s", fn, luaL_typename(L, -2));
    int vt = lua_type(L, -1);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
      luaL_error(L, "%s: label '%s' must be a string or a number, got %s", fn, lua_tostring(L, -2),
                 luaL_typename(L, -1));
    if (n == PO_METRICS_MAX_LABELS) luaL_error(L, "%s: more than %d labels", fn, PO_METRICS_MAX_LABELS);
    out[n].name = lua_tostring(L, -2);
    out[n].value = lua_tostring(L, -1); /* a number becomes a string in this stack slot */
    lua_rawseti(L, hold, (int)n + 1);   /* ... which the holding table keeps */
    n++;
  }
  return n;
}

static size_t read_buckets(lua_State *L, int opts, const char *fn, double *out, const double **ptr) {
  lua_getfield(L, opts, "buckets");
  *ptr = NULL;
  size_t n = 0;
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) luaL_error(L, "%s: buckets must be a list of numbers", fn);
    n = lua_objlen(L, -1);
    if (n == 0 || n > PO_METRICS_MAX_BUCKETS)
      luaL_error(L, "%s: buckets must hold 1 to %d bounds (+Inf is implicit)", fn, PO_METRICS_MAX_BUCKETS);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, -1, (int)i + 1);
      if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: buckets must be a list of numbers", fn);
      out[i] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    *ptr = out;
  }
  lua_pop(L, 1);
  return n;
}

/* register(kind, name [, opts]) -> metric */
static int l_register(lua_State *L) {
  int k = luaL_checkoption(L, 1, NULL, kinds);
  char fn[32];
  snprintf(fn, sizeof fn, "po.metrics.%s", kinds[k]);
  if (lua_type(L, 2) != LUA_TSTRING) return luaL_error(L, "%s: name must be a string, got %s", fn, luaL_typename(L, 2));
  static const char *const plain[] = {"help", "unit", "labels", NULL};
  static const char *const hist[] = {"help", "unit", "labels", "buckets", "lowest", "highest", NULL};
  po_check_options(L, 3, fn, kind_types[k] == PO_METRIC_HISTOGRAM ? hist : plain);
  if (lua_isnoneornil(L, 3)) {
    lua_settop(L, 2);
    lua_newtable(L);
  }
  po_metric_spec spec = {.type = kind_types[k], .name = lua_tostring(L, 2)};
  spec.help = opt_string(L, 3, fn, "help");
  spec.unit = opt_string(L, 3, fn, "unit");
  double buckets[PO_METRICS_MAX_BUCKETS];
  if (spec.type == PO_METRIC_HISTOGRAM) {
    spec.nbuckets = read_buckets(L, 3, fn, buckets, &spec.buckets);
    spec.lowest = opt_number(L, 3, fn, "lowest");
    spec.highest = opt_number(L, 3, fn, "highest");
  }
  po_metric_label labels[PO_METRICS_MAX_LABELS];
  spec.nlabels = read_labels(L, 3, fn, labels);
  spec.labels = labels;
  po_metric *m;
  int rc = po_metrics_register(&spec, &m);
  if (rc == PO_ENOMEM) return luaL_error(L, "%s: out of memory", fn);
  if (rc != 0) return luaL_error(L, "%s: %s", fn, po_metrics_last_error());
  push_metric(L, m);
  return 1;
}

static const char *type_name(const po_metric *m) {
  po_metric_info info;
  po_metric_describe(m, &info);
  return kinds[info.type - 1];
}

/* Raises "<method>: ..." for a recording call that the core refused. */
static int refuse(lua_State *L, po_metric *m, const char *method, const char *needs, const char *what) {
  po_metric_info info;
  po_metric_describe(m, &info);
  if (strcmp(kinds[info.type - 1], needs) != 0)
    return luaL_error(L, "%s: '%s' is a %s, not a %s", method, info.name, kinds[info.type - 1], needs);
  return luaL_error(L, "%s: %s, got %s", method, what, lua_tostring(L, 2) ? lua_tostring(L, 2) : "nil");
}

static double check_value(lua_State *L, int i, const char *method, int optional) {
  if (optional && lua_isnoneornil(L, i)) return 1;
  if (lua_type(L, i) != LUA_TNUMBER)
    return luaL_error(L, "%s: the value must be a number, got %s", method, luaL_typename(L, i));
  return lua_tonumber(L, i);
}

static int l_inc(lua_State *L) {
  po_metric *m = check_metric(L, 1);
  if (po_counter_inc(m, check_value(L, 2, "counter:inc", 1)) != 0)
    return refuse(L, m, "counter:inc", "counter", "a counter only goes up by a finite amount >= 0");
  return 0;
}

static int l_set(lua_State *L) {
  po_metric *m = check_metric(L, 1);
  if (po_gauge_set(m, check_value(L, 2, "gauge:set", 0)) != 0)
    return refuse(L, m, "gauge:set", "gauge", "the value must not be NaN");
  return 0;
}

static int l_add(lua_State *L) {
  po_metric *m = check_metric(L, 1);
  if (po_gauge_add(m, check_value(L, 2, "gauge:add", 0)) != 0)
    return refuse(L, m, "gauge:add", "gauge", "the value must not be NaN");
  return 0;
}

static int l_observe(lua_State *L) {
  po_metric *m = check_metric(L, 1);
  if (po_histogram_observe(m, check_value(L, 2, "histogram:observe", 0)) != 0)
    return refuse(L, m, "histogram:observe", "histogram", "the value must be finite and >= 0");
  return 0;
}

static int l_value(lua_State *L) {
  po_metric *m = check_metric(L, 1);
  double v;
  if (po_metric_value(m, &v) != 0) return luaL_error(L, "metric:value: a histogram has no single value; use snapshot()");
  lua_pushnumber(L, v);
  return 1;
}

static const po_hdr *check_hdr(lua_State *L, po_metric *m, const char *method) {
  const po_hdr *h = po_histogram_hdr(m);
  if (!h) luaL_error(L, "%s: the metric is a %s, not a histogram", method, type_name(m));
  return h;
}

static int l_percentile(lua_State *L) {
  const po_hdr *h = check_hdr(L, check_metric(L, 1), "histogram:percentile");
  double p = check_value(L, 2, "histogram:percentile", 0), out;
  if (po_hdr_percentiles(h, &p, 1, &out) != 0)
    return luaL_error(L, "histogram:percentile: the percentile must be between 0 and 100, got %f", p);
  lua_pushnumber(L, out);
  return 1;
}

static void set_number(lua_State *L, const char *key, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, key);
}

/* Sets count, sum, min, max, mean, p50, p90, p99 on the table on top. */
static void push_stats(lua_State *L, const po_hdr *h) {
  po_hdr_stats st;
  po_hdr_stats_get(h, &st);
  static const double ps[] = {50, 90, 99};
  double pv[3];
  po_hdr_percentiles(h, ps, 3, pv);
  set_number(L, "count", (double)st.count);
  set_number(L, "sum", st.sum);
  set_number(L, "min", st.min);
  set_number(L, "max", st.max);
  set_number(L, "mean", st.mean);
  set_number(L, "p50", pv[0]);
  set_number(L, "p90", pv[1]);
  set_number(L, "p99", pv[2]);
}

static int l_snapshot(lua_State *L) {
  const po_hdr *h = check_hdr(L, check_metric(L, 1), "histogram:snapshot");
  lua_createtable(L, 0, 8);
  push_stats(L, h);
  return 1;
}

static int l_merge(lua_State *L) {
  po_metric *dst = check_metric(L, 1), *src = check_metric(L, 2);
  check_hdr(L, dst, "histogram:merge");
  check_hdr(L, src, "histogram:merge");
  if (po_histogram_merge(dst, src) != 0)
    return luaL_error(L, "histogram:merge: the histograms differ in buckets or range, or are the same one");
  return 0;
}

static int l_pointer(lua_State *L) {
  lua_pushlightuserdata(L, check_metric(L, 1));
  return 1;
}

/* Sets name, type, help, unit, labels (name -> value), label_names and
 * label_values (sorted by name) and, for histograms, buckets, lowest and
 * highest on the table on top. */
static void push_info_fields(lua_State *L, const po_metric_info *info) {
  lua_pushstring(L, info->name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, kinds[info->type - 1]);
  lua_setfield(L, -2, "type");
  lua_pushstring(L, info->help);
  lua_setfield(L, -2, "help");
  lua_pushstring(L, info->unit);
  lua_setfield(L, -2, "unit");
  lua_createtable(L, 0, (int)info->nlabels);
  lua_createtable(L, (int)info->nlabels, 0);
  lua_createtable(L, (int)info->nlabels, 0);
  for (size_t i = 0; i < info->nlabels; i++) {
    lua_pushstring(L, info->label_values[i]);
    lua_setfield(L, -4, info->label_names[i]);
    lua_pushstring(L, info->label_names[i]);
    lua_rawseti(L, -3, (int)i + 1);
    lua_pushstring(L, info->label_values[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -4, "label_values");
  lua_setfield(L, -3, "label_names");
  lua_setfield(L, -2, "labels");
  if (info->type == PO_METRIC_HISTOGRAM) {
    lua_createtable(L, (int)info->nbuckets, 0);
    for (size_t i = 0; i < info->nbuckets; i++) {
      lua_pushnumber(L, info->buckets[i]);
      lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "buckets");
    set_number(L, "lowest", info->lowest);
    set_number(L, "highest", info->highest);
  }
}

static int l_info(lua_State *L) {
  po_metric_info info;
  po_metric_describe(check_metric(L, 1), &info);
  lua_newtable(L);
  push_info_fields(L, &info);
  return 1;
}

static int l_tostring(lua_State *L) {
  po_metric_info info;
  po_metric_describe(check_metric(L, 1), &info);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "%s %s{", kinds[info.type - 1], info.name);
  luaL_addvalue(&b);
  for (size_t i = 0; i < info.nlabels; i++) {
    lua_pushfstring(L, "%s%s=%s", i ? "," : "", info.label_names[i], info.label_values[i]);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '}');
  luaL_pushresult(&b);
  return 1;
}

static int l_eq(lua_State *L) {
  lua_pushboolean(L, check_metric(L, 1) == check_metric(L, 2));
  return 1;
}

/* collect() -> { metric, ... }: every metric, families in name order, each
 * a table of its info fields and its values: value (counters, gauges), or
 * count, sum, min, max, mean, p50, p90, p99 and cumulative (the counts at
 * each bucket bound, +Inf last) for histograms. */
typedef struct collect_ctx {
  lua_State *L;
  int n;
} collect_ctx;

static int collect_one(const po_metric *m, void *ud) {
  collect_ctx *c = ud;
  lua_State *L = c->L;
  po_metric_info info;
  po_metric_describe(m, &info);
  lua_createtable(L, 0, 16);
  push_info_fields(L, &info);
  double v;
  if (po_metric_value(m, &v) == 0) {
    set_number(L, "value", v);
  } else {
    uint64_t cumulative[PO_METRICS_MAX_BUCKETS + 1];
    double sum;
    po_histogram_cumulative(m, cumulative, &sum);
    push_stats(L, po_histogram_hdr(m));
    /* the exposition's own count and sum, consistent with its buckets */
    set_number(L, "count", (double)cumulative[info.nbuckets]);
    set_number(L, "sum", sum);
    lua_createtable(L, (int)info.nbuckets + 1, 0);
    for (size_t i = 0; i <= info.nbuckets; i++) {
      lua_pushnumber(L, (double)cumulative[i]);
      lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "cumulative");
  }
  lua_rawseti(L, -2, ++c->n);
  return 0;
}

static int l_collect(lua_State *L) {
  lua_newtable(L);
  collect_ctx c = {L, 0};
  po_metrics_each(collect_one, &c);
  return 1;
}

static int l_object_path(lua_State *L) {
  const char *path;
  if (po_metrics_object_path(&path) != 0) return 0;
  lua_pushstring(L, path);
  return 1;
}

void po_open_metrics(lua_State *L) {
  static const luaL_Reg methods[] = {{"inc", l_inc},
                                     {"set", l_set},
                                     {"add", l_add},
                                     {"observe", l_observe},
                                     {"value", l_value},
                                     {"percentile", l_percentile},
                                     {"snapshot", l_snapshot},
                                     {"merge", l_merge},
                                     {"pointer", l_pointer},
                                     {"info", l_info},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__tostring", l_tostring}, {"__eq", l_eq}, {NULL, NULL}};
  static const luaL_Reg fns[] = {{"register", l_register},
                                 {"collect", l_collect},
                                 {"object_path", l_object_path},
                                 {NULL, NULL}};
  po_register_type(L, METRIC_TYPE, methods, meta);
  lua_newtable(L);
  po_set_funcs(L, fns);
  lua_setfield(L, -2, "metrics");
}
