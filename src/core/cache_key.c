#include "cache_key.h"

#include "json_check.h"

#include <math.h>
#include <stdlib.h>

int po_cache_key_name_cmp(const po_cache_key_name *a, const po_cache_key_name *b) {
  if (a->s && b->s) {
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->s, b->s, n) : 0;
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
  }
  if (a->s || b->s) return a->s ? -1 : 1;
  return a->num < b->num ? -1 : a->num > b->num;
}

static int cmp_names(const void *a, const void *b) { return po_cache_key_name_cmp(a, b); }

void po_cache_key_sort_names(po_cache_key_name *names, size_t n) {
  if (n > 24) {
    qsort(names, n, sizeof *names, cmp_names);
    return;
  }
  for (size_t i = 1; i < n; i++) {
    po_cache_key_name x = names[i];
    size_t j = i;
    while (j > 0 && po_cache_key_name_cmp(&x, &names[j - 1]) < 0) {
      names[j] = names[j - 1];
      j--;
    }
    names[j] = x;
  }
}

int po_cache_key_put_name(po_strbuf *b, const po_cache_key_name *name) {
  if (name->s) return po_cache_key_put_string(b, name->s, name->len);
  return po_cache_key_put_number(b, name->num == 0 ? 0.0 : name->num);
}

/* ---- reading a key back ------------------------------------------------------- */

typedef struct reader {
  const unsigned char *p, *end;
  po_strbuf *out;
  int rc;
} reader;

enum { DESCRIBE_MAX_DEPTH = 1001 };

static int rd_len(reader *r, uint64_t *n) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p == r->end) return 0;
    unsigned char c = *r->p++;
    v |= (uint64_t)(c & 0x7F) << shift;
    if (!(c & 0x80)) {
      *n = v;
      return 1;
    }
  }
  return 0;
}

static void emit(reader *r, const char *s, size_t n) {
  if (!r->rc && po_strbuf_append(r->out, s, n)) r->rc = PO_ENOMEM;
}

static int rd_number(reader *r) {
  if (r->end - r->p < 8) return 0;
  uint64_t bits = 0;
  for (int i = 0; i < 8; i++) bits |= (uint64_t)r->p[i] << (8 * i);
  r->p += 8;
  double d;
  memcpy(&d, &bits, sizeof d);
  char buf[PO_JSON_NUMBER_BUF];
  size_t n;
  if (po_json_format_number(d, buf, sizeof buf, &n)) return 0; /* NaN or infinite: not a key */
  emit(r, buf, n);
  return 1;
}

static int rd_string(reader *r) {
  uint64_t n;
  if (!rd_len(r, &n) || n > (uint64_t)(r->end - r->p)) return 0;
  if (!r->rc && po_json_append_string(r->out, (const char *)r->p, (size_t)n)) r->rc = PO_ENOMEM;
  r->p += n;
  return 1;
}

static int rd_value(reader *r, int depth) {
  if (r->p == r->end || depth > DESCRIBE_MAX_DEPTH) return 0;
  int tag = *r->p++;
  uint64_t count;
  switch (tag) {
  case PO_CACHE_KEY_NULL:
    emit(r, "null", 4);
    return 1;
  case PO_CACHE_KEY_FALSE:
    emit(r, "false", 5);
    return 1;
  case PO_CACHE_KEY_TRUE:
    emit(r, "true", 4);
    return 1;
  case PO_CACHE_KEY_NUMBER:
    return rd_number(r);
  case PO_CACHE_KEY_STRING:
    return rd_string(r);
  case PO_CACHE_KEY_ARRAY:
    if (!rd_len(r, &count)) return 0;
    emit(r, "[", 1);
    for (uint64_t i = 0; i < count; i++) {
      if (i) emit(r, ",", 1);
      if (!rd_value(r, depth + 1)) return 0;
    }
    emit(r, "]", 1);
    return 1;
  case PO_CACHE_KEY_OBJECT:
    if (!rd_len(r, &count)) return 0;
    emit(r, "{", 1);
    for (uint64_t i = 0; i < count; i++) {
      if (i) emit(r, ",", 1);
      if (r->p == r->end) return 0;
      int name = *r->p++;
      if (name == PO_CACHE_KEY_STRING ? !rd_string(r) : name == PO_CACHE_KEY_NUMBER ? !rd_number(r) : 1)
        return 0;
      emit(r, ":", 1);
      if (!rd_value(r, depth + 1)) return 0;
    }
    emit(r, "}", 1);
    return 1;
  default:
    return 0;
  }
}

int po_cache_key_describe(const void *key, size_t len, po_strbuf *out) {
  const unsigned char *p = key;
  if (len < 2 || p[0] != PO_CACHE_KEY_MAGIC || p[1] != PO_CACHE_KEY_VERSION) return PO_EINVAL;
  reader r = {p + 2, p + len, out, 0};
  int ok = rd_value(&r, 0);
  if (r.rc) return r.rc;
  return ok && r.p == r.end ? 0 : PO_EINVAL;
}
