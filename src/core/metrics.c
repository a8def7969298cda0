#include "metrics.h"

#include "atomic_double.h"
#include "error.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct family family;

struct po_metric {
  po_metric_type type; /* first: the hot paths check it */
  family *fam;
  union {
    struct {
      _Atomic uint64_t whole;  /* whole increments */
      po_atomic_double frac;   /* the rest */
    } c;
    po_atomic_double g;
    struct {
      po_hdr *hdr;
      _Atomic uint64_t *le; /* per exposition bucket (not cumulative), +Inf last */
    } h;
  } u;
  char *key;                  /* the label values joined by 0xff (never in UTF-8) */
  const char **label_values;  /* in the family's label-name order */
  _Atomic(po_metric *) next;  /* siblings, in key order */
};

struct family {
  po_metric_type type;
  char *name, *help, *unit;
  size_t nlabels;
  const char **label_names; /* sorted */
  double *buckets;
  size_t nbuckets;
  double lowest, highest;
  uint8_t *le_map; /* per hdr bucket: the first exposition bucket whose bound is >= its lower end */
  _Atomic(po_metric *) children;
  _Atomic(family *) next; /* in name order */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(family *) families;

static _Thread_local char last_error[512];

const char *po_metrics_last_error(void) { return last_error; }

static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return PO_EINVAL;
}

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static const char *type_name(po_metric_type t) {
  return t == PO_METRIC_COUNTER ? "counter" : t == PO_METRIC_GAUGE ? "gauge" : "histogram";
}

/* ---- validation ---------------------------------------------------------- */

static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }

static int valid_metric_name(const char *s) {
  if (!*s || !(is_alpha(*s) || *s == ':')) return 0;
  for (; *s; s++)
    if (!(is_alpha(*s) || is_digit(*s) || *s == ':')) return 0;
  return 1;
}

static int valid_label_name(const char *s) {
  if (!*s || !is_alpha(*s)) return 0;
  for (; *s; s++)
    if (!(is_alpha(*s) || is_digit(*s))) return 0;
  return 1;
}

static int valid_unit(const char *s) {
  if (!*s || strlen(s) > 64) return 0;
  for (; *s; s++)
    if (!(is_alpha(*s) || is_digit(*s))) return 0;
  return 1;
}

/* Well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int valid_utf8(const char *str) {
  const unsigned char *s = (const unsigned char *)str;
  while (*s) {
    unsigned c = *s;
    size_t n;
    unsigned min;
    if (c < 0x80) {
      s++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, min = 0x80, c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, min = 0x800, c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, min = 0x10000, c &= 0x07;
    } else {
      return 0;
    }
    for (size_t i = 1; i <= n; i++) {
      if ((s[i] & 0xc0) != 0x80) return 0;
      c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    s += n + 1;
  }
  return 1;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* The family name: a counter's "_total" dropped, the unit appended. */
static int family_name(const po_metric_spec *spec, char *out, size_t cap) {
  if (!spec->name || !valid_metric_name(spec->name))
    return fail("invalid metric name '%s' (allowed: [a-zA-Z_:][a-zA-Z0-9_:]*)", spec->name ? spec->name : "");
  size_t n = strlen(spec->name);
  if (n >= cap) return fail("metric name '%.40s...' is longer than %d bytes", spec->name, PO_METRICS_MAX_NAME);
  memcpy(out, spec->name, n + 1);
  if (spec->type == PO_METRIC_COUNTER && ends_with(out, "_total")) {
    n -= 6;
    out[n] = '\0';
    if (n == 0) return fail("invalid counter name '%s'", spec->name);
  }
  if (spec->unit) {
    if (!valid_unit(spec->unit)) return fail("invalid unit '%s' (allowed: [a-zA-Z0-9_]+, at most 64 bytes)", spec->unit);
    char suffix[80];
    snprintf(suffix, sizeof suffix, "_%s", spec->unit);
    if (!ends_with(out, suffix)) {
      if (n + strlen(suffix) >= cap)
        return fail("metric name '%.40s...' is longer than %d bytes", spec->name, PO_METRICS_MAX_NAME);
      memcpy(out + n, suffix, strlen(suffix) + 1);
    }
  }
  return 0;
}

static int compare_labels(const void *a, const void *b) {
  return strcmp(((const po_metric_label *)a)->name, ((const po_metric_label *)b)->name);
}

/* Checks the labels and sorts them by name into sorted[]. */
static int check_labels(const po_metric_spec *spec, po_metric_label *sorted) {
  if (spec->nlabels > PO_METRICS_MAX_LABELS) return fail("more than %d labels", PO_METRICS_MAX_LABELS);
  for (size_t i = 0; i < spec->nlabels; i++) {
    const po_metric_label *l = &spec->labels[i];
    if (!l->name || !valid_label_name(l->name))
      return fail("invalid label name '%s' (allowed: [a-zA-Z_][a-zA-Z0-9_]*)", l->name ? l->name : "");
    if (l->name[0] == '_' && l->name[1] == '_') return fail("label name '%s' is reserved (it starts with __)", l->name);
    if (spec->type == PO_METRIC_HISTOGRAM && strcmp(l->name, "le") == 0)
      return fail("label name 'le' is reserved for histogram buckets");
    if (!l->value || !valid_utf8(l->value)) return fail("the value of label '%s' is not valid UTF-8", l->name);
    sorted[i] = *l;
  }
  qsort(sorted, spec->nlabels, sizeof *sorted, compare_labels);
  for (size_t i = 1; i < spec->nlabels; i++)
    if (strcmp(sorted[i].name, sorted[i - 1].name) == 0) return fail("label '%s' is given twice", sorted[i].name);
  return 0;
}

static int check_histogram(const po_metric_spec *spec) {
  if (spec->type != PO_METRIC_HISTOGRAM) {
    if (spec->buckets || spec->lowest || spec->highest) return fail("only histograms have buckets and a range");
    return 0;
  }
  if (spec->buckets) {
    if (spec->nbuckets == 0 || spec->nbuckets > PO_METRICS_MAX_BUCKETS)
      return fail("a histogram has 1 to %d buckets (+Inf is implicit)", PO_METRICS_MAX_BUCKETS);
    for (size_t i = 0; i < spec->nbuckets; i++) {
      if (!isfinite(spec->buckets[i])) return fail("bucket bounds must be finite (+Inf is implicit)");
      if (i > 0 && !(spec->buckets[i] > spec->buckets[i - 1])) return fail("bucket bounds must increase strictly");
    }
  }
  double lo = spec->lowest ? spec->lowest : PO_HDR_DEFAULT_LOWEST;
  double hi = spec->highest ? spec->highest : PO_HDR_DEFAULT_HIGHEST;
  po_hdr *probe;
  int rc = po_hdr_new(lo, hi, &probe);
  if (rc == PO_ENOMEM) return rc; /* not the spec's fault: the caller says "out of memory" */
  if (rc != 0)
    return fail("invalid range [%g, %g]: lowest must be a positive normal number below a finite highest", lo, hi);
  po_hdr_free(probe);
  return 0;
}

/* ---- families ---------------------------------------------------------- */

/* The sample names a family writes; collisions between families are refused. */
static size_t sample_names(po_metric_type type, const char *name, char out[][PO_METRICS_MAX_NAME + 16]) {
  static const char *const counter[] = {"", "_total", "_created"};
  static const char *const gauge[] = {""};
  static const char *const histogram[] = {"", "_bucket", "_sum", "_count", "_created"};
  const char *const *sfx = type == PO_METRIC_COUNTER ? counter : type == PO_METRIC_GAUGE ? gauge : histogram;
  size_t n = type == PO_METRIC_COUNTER ? 3 : type == PO_METRIC_GAUGE ? 1 : 5;
  for (size_t i = 0; i < n; i++) snprintf(out[i], sizeof out[i], "%s%s", name, sfx[i]);
  return n;
}

static int collides(po_metric_type type, const char *name) {
  char mine[5][PO_METRICS_MAX_NAME + 16], theirs[5][PO_METRICS_MAX_NAME + 16];
  size_t n = sample_names(type, name, mine);
  for (family *f = atomic_load(&families); f; f = atomic_load(&f->next)) {
    size_t m = sample_names(f->type, f->name, theirs);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < m; j++)
        if (strcmp(mine[i], theirs[j]) == 0)
          return fail("'%s' (%s) would write samples named like those of the %s '%s'", name, type_name(type),
                      type_name(f->type), f->name);
  }
  return 0;
}

static int same_doubles(const double *a, size_t na, const double *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/* A spec asking for an existing family must agree with it. */
static int matches(const family *f, const po_metric_spec *spec, const po_metric_label *labels) {
  if (f->type != spec->type)
    return fail("'%s' is already registered as a %s, not a %s", f->name, type_name(f->type), type_name(spec->type));
  if (spec->help && strcmp(spec->help, f->help) != 0)
    return fail("'%s' is already registered with another help text", f->name);
  if (spec->unit && strcmp(spec->unit, f->unit) != 0)
    return fail("'%s' is already registered with unit '%s'", f->name, f->unit);
  int same = spec->nlabels == f->nlabels;
  for (size_t i = 0; same && i < f->nlabels; i++) same = strcmp(labels[i].name, f->label_names[i]) == 0;
  if (!same) {
    char names[256] = "";
    for (size_t i = 0; i < f->nlabels; i++) {
      size_t len = strlen(names);
      snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", f->label_names[i]);
    }
    return fail("'%s' is already registered with the label names {%s}", f->name, names);
  }
  if (spec->buckets && !same_doubles(spec->buckets, spec->nbuckets, f->buckets, f->nbuckets))
    return fail("'%s' is already registered with other buckets", f->name);
  if ((spec->lowest && spec->lowest != f->lowest) || (spec->highest && spec->highest != f->highest))
    return fail("'%s' is already registered with the range [%g, %g]", f->name, f->lowest, f->highest);
  return 0;
}

static char *dup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void free_family(family *f) {
  free(f->name);
  free(f->help);
  free(f->unit);
  for (size_t i = 0; f->label_names && i < f->nlabels; i++) free((char *)f->label_names[i]);
  free(f->label_names);
  free(f->buckets);
  free(f->le_map);
  free(f);
}

static family *new_family(const char *name, const po_metric_spec *spec, const po_metric_label *labels) {
  family *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->type = spec->type;
  f->nlabels = spec->nlabels;
  atomic_init(&f->children, NULL);
  atomic_init(&f->next, NULL);
  f->name = dup(name);
  f->help = dup(spec->help ? spec->help : "");
  f->unit = dup(spec->unit ? spec->unit : "");
  f->label_names = calloc(spec->nlabels + 1, sizeof *f->label_names);
  if (!f->name || !f->help || !f->unit || !f->label_names) goto oom;
  for (size_t i = 0; i < spec->nlabels; i++)
    if (!(f->label_names[i] = dup(labels[i].name))) goto oom;
  if (spec->type == PO_METRIC_HISTOGRAM) {
    const double *b = spec->buckets ? spec->buckets : default_buckets;
    f->nbuckets = spec->buckets ? spec->nbuckets : sizeof default_buckets / sizeof default_buckets[0];
    f->lowest = spec->lowest ? spec->lowest : PO_HDR_DEFAULT_LOWEST;
    f->highest = spec->highest ? spec->highest : PO_HDR_DEFAULT_HIGHEST;
    f->buckets = malloc(f->nbuckets * sizeof *f->buckets);
    po_hdr *layout;
    if (!f->buckets || po_hdr_new(f->lowest, f->highest, &layout) != 0) goto oom;
    memcpy(f->buckets, b, f->nbuckets * sizeof *b);
    size_t n = po_hdr_buckets(layout);
    f->le_map = malloc(n);
    for (size_t i = 0; f->le_map && i < n; i++) {
      double lo, hi;
      uint64_t count;
      po_hdr_bucket(layout, i, &lo, &hi, &count);
      size_t j = 0;
      while (j < f->nbuckets && f->buckets[j] < lo) j++;
      f->le_map[i] = (uint8_t)j;
    }
    po_hdr_free(layout);
    if (!f->le_map) goto oom;
  }
  return f;
oom:
  free_family(f);
  return NULL;
}

/* ---- children ---------------------------------------------------------- */

static char *label_key(const po_metric_label *labels, size_t n) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++) len += strlen(labels[i].value) + 1;
  char *key = malloc(len), *p = key;
  if (!key) return NULL;
  for (size_t i = 0; i < n; i++) {
    size_t m = strlen(labels[i].value);
    memcpy(p, labels[i].value, m);
    p += m;
    if (i + 1 < n) *p++ = '\xff';
  }
  *p = '\0';
  return key;
}

static void free_child(po_metric *m) {
  if (m->type == PO_METRIC_HISTOGRAM) {
    po_hdr_free(m->u.h.hdr);
    free(m->u.h.le);
  }
  for (size_t i = 0; m->label_values && i < m->fam->nlabels; i++) free((char *)m->label_values[i]);
  free(m->label_values);
  free(m->key);
  free(m);
}

static po_metric *new_child(family *f, const po_metric_label *labels, char *key) {
  po_metric *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->type = f->type;
  m->fam = f;
  m->key = key;
  atomic_init(&m->next, NULL);
  m->label_values = calloc(f->nlabels + 1, sizeof *m->label_values);
  if (!m->label_values) goto oom;
  for (size_t i = 0; i < f->nlabels; i++)
    if (!(m->label_values[i] = dup(labels[i].value))) goto oom;
  if (f->type == PO_METRIC_COUNTER) {
    atomic_init(&m->u.c.whole, 0);
    atomic_init(&m->u.c.frac, po_double_bits(0));
  } else if (f->type == PO_METRIC_GAUGE) {
    atomic_init(&m->u.g, po_double_bits(0));
  } else {
    m->u.h.le = calloc(f->nbuckets + 1, sizeof *m->u.h.le);
    if (!m->u.h.le || po_hdr_new(f->lowest, f->highest, &m->u.h.hdr) != 0) goto oom;
  }
  return m;
oom:
  m->key = NULL; /* the caller still owns it */
  free_child(m);
  return NULL;
}

/* Inserts node after the last element of the list that sorts before it. The
 * node is fully built before the release store that publishes it. */
#define INSERT_SORTED(head, node, type, cmp_field)                                  \
  do {                                                                            \
    _Atomic(type *) *link_ = (head);                                              \
    type *cur_;                                                                   \
    while ((cur_ = atomic_load_explicit(link_, memory_order_acquire)) &&          \
           strcmp(cur_->cmp_field, (node)->cmp_field) < 0)                        \
      link_ = &cur_->next;                                                        \
    atomic_store_explicit(&(node)->next, cur_, memory_order_relaxed);             \
    atomic_store_explicit(link_, (node), memory_order_release);                   \
  } while (0)

static int register_locked(const po_metric_spec *spec, const char *name, const po_metric_label *labels,
                           po_metric **out) {
  family *f = atomic_load(&families);
  while (f && strcmp(f->name, name) != 0) f = atomic_load(&f->next);
  int rc;
  if (f) {
    if ((rc = matches(f, spec, labels)) != 0) return rc;
  } else {
    if ((rc = collides(spec->type, name)) != 0) return rc;
  }
  char *key = label_key(labels, spec->nlabels);
  if (!key) return PO_ENOMEM;
  if (f) {
    for (po_metric *m = atomic_load(&f->children); m; m = atomic_load(&m->next)) {
      if (strcmp(m->key, key) == 0) {
        free(key);
        *out = m;
        return 0;
      }
    }
  }
  int created = 0;
  if (!f) {
    if (!(f = new_family(name, spec, labels))) {
      free(key);
      return PO_ENOMEM;
    }
    created = 1;
  }
  po_metric *m = new_child(f, labels, key);
  if (!m) {
    free(key);
    if (created) free_family(f);
    return PO_ENOMEM;
  }
  INSERT_SORTED(&f->children, m, po_metric, key);
  if (created) INSERT_SORTED(&families, f, family, name);
  *out = m;
  return 0;
}

int po_metrics_register(const po_metric_spec *spec, po_metric **out) {
  last_error[0] = '\0';
  if (!spec || !out) return fail("no spec");
  if (spec->type != PO_METRIC_COUNTER && spec->type != PO_METRIC_GAUGE && spec->type != PO_METRIC_HISTOGRAM)
    return fail("unknown metric type %d", (int)spec->type);
  char name[PO_METRICS_MAX_NAME + 1];
  int rc = family_name(spec, name, sizeof name);
  if (rc == 0 && spec->help && !valid_utf8(spec->help)) rc = fail("the help text is not valid UTF-8");
  po_metric_label labels[PO_METRICS_MAX_LABELS];
  if (rc == 0) rc = check_labels(spec, labels);
  if (rc == 0) rc = check_histogram(spec);
  if (rc == 0) {
    pthread_mutex_lock(&registry_lock);
    rc = register_locked(spec, name, labels, out);
    pthread_mutex_unlock(&registry_lock);
  }
  if (rc == PO_ENOMEM) snprintf(last_error, sizeof last_error, "out of memory");
  return rc;
}

/* ---- recording ------------------------------------------------------- */

int po_counter_inc(po_metric *m, double n) {
  if (m->type != PO_METRIC_COUNTER || !(n >= 0) || n == INFINITY) return PO_EINVAL;
  if (n < 0x1p64 && n == (double)(uint64_t)n)
    atomic_fetch_add_explicit(&m->u.c.whole, (uint64_t)n, memory_order_relaxed);
  else
    po_atomic_double_add(&m->u.c.frac, n);
  return 0;
}

int po_gauge_set(po_metric *m, double v) {
  if (m->type != PO_METRIC_GAUGE || isnan(v)) return PO_EINVAL;
  po_atomic_double_store(&m->u.g, v);
  return 0;
}

int po_gauge_add(po_metric *m, double d) {
  if (m->type != PO_METRIC_GAUGE || isnan(d)) return PO_EINVAL;
  po_atomic_double_add(&m->u.g, d);
  return 0;
}

int po_histogram_observe(po_metric *m, double v) {
  if (m->type != PO_METRIC_HISTOGRAM) return PO_EINVAL;
  size_t i;
  int rc = po_hdr_record(m->u.h.hdr, v, &i);
  if (rc != 0) return rc;
  const family *f = m->fam;
  size_t j = f->le_map[i];
  while (j < f->nbuckets && v > f->buckets[j]) j++;
  atomic_fetch_add_explicit(&m->u.h.le[j], 1, memory_order_relaxed);
  return 0;
}

/* ---- reading --------------------------------------------------------- */

int po_metric_value(const po_metric *m, double *out) {
  if (m->type == PO_METRIC_COUNTER) {
    uint64_t whole = atomic_load_explicit((_Atomic uint64_t *)&m->u.c.whole, memory_order_relaxed);
    *out = (double)whole + po_atomic_double_load(&m->u.c.frac);
    return 0;
  }
  if (m->type == PO_METRIC_GAUGE) {
    *out = po_atomic_double_load(&m->u.g);
    return 0;
  }
  return PO_EINVAL;
}

const po_hdr *po_histogram_hdr(const po_metric *m) {
  return m->type == PO_METRIC_HISTOGRAM ? m->u.h.hdr : NULL;
}

int po_histogram_cumulative(const po_metric *m, uint64_t *cumulative, double *sum) {
  if (m->type != PO_METRIC_HISTOGRAM) return PO_EINVAL;
  uint64_t total = 0;
  for (size_t i = 0; i <= m->fam->nbuckets; i++) {
    total += atomic_load_explicit((_Atomic uint64_t *)&m->u.h.le[i], memory_order_relaxed);
    cumulative[i] = total;
  }
  po_hdr_stats st;
  po_hdr_stats_get(m->u.h.hdr, &st);
  *sum = st.sum;
  return 0;
}

int po_histogram_merge(po_metric *dst, const po_metric *src) {
  if (dst->type != PO_METRIC_HISTOGRAM || src->type != PO_METRIC_HISTOGRAM || dst == src) return PO_EINVAL;
  const family *a = dst->fam, *b = src->fam;
  if (!same_doubles(a->buckets, a->nbuckets, b->buckets, b->nbuckets) || a->lowest != b->lowest ||
      a->highest != b->highest)
    return PO_EINVAL;
  int rc = po_hdr_merge(dst->u.h.hdr, src->u.h.hdr);
  if (rc != 0) return rc;
  for (size_t i = 0; i <= a->nbuckets; i++) {
    uint64_t c = atomic_load_explicit((_Atomic uint64_t *)&src->u.h.le[i], memory_order_relaxed);
    atomic_fetch_add_explicit(&dst->u.h.le[i], c, memory_order_relaxed);
  }
  return 0;
}

void po_metric_describe(const po_metric *m, po_metric_info *out) {
  const family *f = m->fam;
  out->type = f->type;
  out->name = f->name;
  out->help = f->help;
  out->unit = f->unit;
  out->nlabels = f->nlabels;
  out->label_names = f->label_names;
  out->label_values = m->label_values;
  out->buckets = f->buckets;
  out->nbuckets = f->nbuckets;
  out->lowest = f->lowest;
  out->highest = f->highest;
}

int po_metrics_each(po_metrics_visit_fn fn, void *ctx) {
  for (family *f = atomic_load_explicit(&families, memory_order_acquire); f;
       f = atomic_load_explicit(&f->next, memory_order_acquire)) {
    for (po_metric *m = atomic_load_explicit(&f->children, memory_order_acquire); m;
         m = atomic_load_explicit(&m->next, memory_order_acquire)) {
      int rc = fn(m, ctx);
      if (rc != 0) return rc;
    }
  }
  return 0;
}

int po_metrics_object_path(const char **out) {
  Dl_info info;
  if (dladdr((void *)(uintptr_t)po_counter_inc, &info) == 0 || !info.dli_fname || !*info.dli_fname)
    return PO_ENOENT;
  *out = info.dli_fname;
  return 0;
}

int po_metrics_pin(void) {
  const char *path;
  if (po_metrics_object_path(&path) != 0) return PO_ENOENT;
  /* Only takes a reference to what is loaded already; for the main program
   * the name may not resolve, and nothing needs pinning there. */
  void *self = dlopen(path, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  return self ? 0 : PO_ENOENT;
}
