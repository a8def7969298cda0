/* The cache-key reader (po_cache_key_describe in src/core/cache_key.c), on
 * arbitrary bytes and on well-formed keys.
 *
 * The input is read twice: as a key (any bytes: describe must fail cleanly
 * or succeed), and as a recipe for a well-formed key written with the
 * cache_key.h appenders, which describe must read back; a key without
 * number names describes as valid JSON. */
#include "fuzz.h"

#include "cache_key.h"
#include "json_check.h"

typedef struct recipe {
  const uint8_t *p, *end;
  int number_names; /* a number name was written: the description is not JSON */
} recipe;

static unsigned take(recipe *r) { return r->p < r->end ? *r->p++ : 0; }

/* Writes one value chosen by the recipe's next bytes. */
static void put_value(recipe *r, po_strbuf *b, int depth) {
  unsigned op = take(r) % 7;
  if (depth > 40 && op >= 5) op = 0; /* keep the recipe's recursion small */
  switch (op) {
  case 0: FUZZ_CHECK(po_cache_key_put_tag(b, PO_CACHE_KEY_NULL) == 0); break;
  case 1: FUZZ_CHECK(po_cache_key_put_tag(b, take(r) & 1 ? PO_CACHE_KEY_TRUE : PO_CACHE_KEY_FALSE) == 0); break;
  case 2: {
    double d = (double)(int8_t)take(r) / 4.0; /* finite, as the binding guarantees */
    FUZZ_CHECK(po_cache_key_put_number(b, d) == 0);
    break;
  }
  case 3:
  case 4: {
    size_t n = take(r);
    if (n > (size_t)(r->end - r->p)) n = (size_t)(r->end - r->p);
    FUZZ_CHECK(po_cache_key_put_string(b, (const char *)r->p, n) == 0);
    r->p += n;
    break;
  }
  case 5: {
    unsigned n = take(r) % 5;
    FUZZ_CHECK(po_cache_key_put_container(b, PO_CACHE_KEY_ARRAY, n) == 0);
    for (unsigned i = 0; i < n; i++) put_value(r, b, depth + 1);
    break;
  }
  case 6: {
    unsigned n = take(r) % 5;
    po_cache_key_name names[4];
    unsigned char text[4][2];
    for (unsigned i = 0; i < n; i++) {
      unsigned c = take(r);
      text[i][0] = (unsigned char)c;
      text[i][1] = (unsigned char)i; /* names differ */
      names[i] = (po_cache_key_name){c & 1 ? NULL : (const char *)text[i], 2, (double)(c >> 1) + i * 1000.0, 0};
      if (c & 1) r->number_names = 1;
    }
    po_cache_key_sort_names(names, n);
    for (unsigned i = 1; i < n; i++) FUZZ_CHECK(po_cache_key_name_cmp(&names[i - 1], &names[i]) < 0);
    FUZZ_CHECK(po_cache_key_put_container(b, PO_CACHE_KEY_OBJECT, n) == 0);
    for (unsigned i = 0; i < n; i++) {
      FUZZ_CHECK(po_cache_key_put_name(b, &names[i]) == 0);
      put_value(r, b, depth + 1);
    }
    break;
  }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  po_strbuf out;
  po_strbuf_init(&out);
  int rc = po_cache_key_describe(data, size, &out);
  FUZZ_CHECK(rc == 0 || rc == PO_EINVAL);

  recipe r = {data, data + size, 0};
  po_strbuf key;
  po_strbuf_init(&key);
  FUZZ_CHECK(po_cache_key_put_start(&key) == 0);
  put_value(&r, &key, 0);
  out.len = 0;
  FUZZ_CHECK(po_cache_key_describe(key.data, key.len, &out) == 0);
  po_json_check_result res;
  if (!r.number_names) FUZZ_CHECK(po_json_check(out.data, out.len, 100, &res) == 0);
  po_strbuf_free(&key);
  po_strbuf_free(&out);
  return 0;
}
