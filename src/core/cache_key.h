/* The canonical binary form of a request: the bytes a cache key of a request
 * table is hashed by (and stored as, to rule out hash collisions).
 *
 * The binding walks the Lua table and writes this form with the functions
 * below; this file owns the format, so the format can be tested, read back
 * (po_cache_key_describe) and changed in one place. Every item is a type tag
 * and, where it has one, a length up front, so the form is unambiguous: two
 * keys are equal exactly when their values are.
 *
 *   key    := 0xF8 version value          (0xF8 never occurs in UTF-8 text,
 *                                          so no text key equals a request key)
 *   value  := 0x01                        null (po.json.null, or a hole in an array)
 *           | 0x02 | 0x03                 false | true
 *           | 0x04 f64                    a finite number: its IEEE-754 bits,
 *                                          little-endian (integers exact; -0 and
 *                                          0 differ, as "-0" and "0" do in JSON)
 *           | 0x05 len bytes              a string (len: unsigned LEB128)
 *           | 0x06 count value*           an array
 *           | 0x07 count (name value)*    an object, names in po_cache_key_name_cmp order
 *   name   := 0x05 len bytes              a string key
 *           | 0x04 f64                    a number key (a -0 key is written as 0)
 *
 * Which Lua tables are arrays, which keys are left out (secrets) and which
 * values are refused are the JSON encoder's rules (docs/scripting.md, Keys):
 * the form holds the same information as po.json.encode(v, {sort_keys=true})
 * with the secrets left out, and in addition tells a number key from a string
 * key with the same text. */
#ifndef PO_CACHE_KEY_H
#define PO_CACHE_KEY_H

#include "error.h"
#include "strbuf.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PO_CACHE_KEY_MAGIC 0xF8
/* The form's version: a change to the form changes this byte, so keys of an
 * older form (still in a store) can never equal a new key; they are misses
 * and age out by the eviction policy. Version 1 replaces the canonical JSON
 * text keys of earlier builds (which start with '{'). */
#define PO_CACHE_KEY_VERSION 1

enum {
  PO_CACHE_KEY_NULL = 0x01,
  PO_CACHE_KEY_FALSE = 0x02,
  PO_CACHE_KEY_TRUE = 0x03,
  PO_CACHE_KEY_NUMBER = 0x04,
  PO_CACHE_KEY_STRING = 0x05,
  PO_CACHE_KEY_ARRAY = 0x06,
  PO_CACHE_KEY_OBJECT = 0x07,
};

/* Room a tag and a length take at most. */
#define PO_CACHE_KEY_HEAD_MAX 11

/* Writes tag and n (LEB128) at p; returns the bytes written. */
static inline size_t po_cache_key_head(unsigned char *p, int tag, uint64_t n) {
  size_t i = 0;
  p[i++] = (unsigned char)tag;
  while (n >= 0x80) {
    p[i++] = (unsigned char)(n | 0x80);
    n >>= 7;
  }
  p[i++] = (unsigned char)n;
  return i;
}

/* The appenders: each returns 0 or PO_ENOMEM (b then holds what it held). */

static inline int po_cache_key_put_start(po_strbuf *b) {
  if (po_strbuf_grow(b, 2)) return PO_ENOMEM;
  b->data[b->len++] = (char)PO_CACHE_KEY_MAGIC;
  b->data[b->len++] = (char)PO_CACHE_KEY_VERSION;
  return 0;
}

static inline int po_cache_key_put_tag(po_strbuf *b, int tag) { return po_strbuf_append_char(b, (char)tag); }

/* An array's or object's tag and its item count. */
static inline int po_cache_key_put_container(po_strbuf *b, int tag, uint64_t count) {
  if (b->cap - b->len < PO_CACHE_KEY_HEAD_MAX && po_strbuf_grow(b, PO_CACHE_KEY_HEAD_MAX)) return PO_ENOMEM;
  b->len += po_cache_key_head((unsigned char *)b->data + b->len, tag, count);
  return 0;
}

/* A finite number (the caller refuses NaN and infinities). */
static inline int po_cache_key_put_number(po_strbuf *b, double d) {
  if (b->cap - b->len < 9 && po_strbuf_grow(b, 9)) return PO_ENOMEM;
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  unsigned char *p = (unsigned char *)b->data + b->len;
  p[0] = PO_CACHE_KEY_NUMBER;
  for (int i = 0; i < 8; i++) p[1 + i] = (unsigned char)(bits >> (8 * i));
  b->len += 9;
  return 0;
}

static inline int po_cache_key_put_string(po_strbuf *b, const char *s, size_t len) {
  if (b->cap - b->len < PO_CACHE_KEY_HEAD_MAX + len && po_strbuf_grow(b, PO_CACHE_KEY_HEAD_MAX + len)) return PO_ENOMEM;
  b->len += po_cache_key_head((unsigned char *)b->data + b->len, PO_CACHE_KEY_STRING, len);
  if (len) memcpy(b->data + b->len, s, len);
  b->len += len;
  return 0;
}

/* An object's name before it is written: a string (s non-NULL) or a number. */
typedef struct po_cache_key_name {
  const char *s;
  size_t len;
  double num;
  int ref; /* the caller's: where to find the value */
} po_cache_key_name;

/* The order of names in an object: strings first, by bytes (a prefix first),
 * then numbers, ascending. */
int po_cache_key_name_cmp(const po_cache_key_name *a, const po_cache_key_name *b);

/* Sorts n names by po_cache_key_name_cmp (insertion sort for the small
 * objects requests are made of). */
void po_cache_key_sort_names(po_cache_key_name *names, size_t n);

/* Writes a name (a number name -0 as 0). Returns 0 or PO_ENOMEM. */
int po_cache_key_put_name(po_strbuf *b, const po_cache_key_name *name);

/* Appends to out a JSON-like text of the key (the form above, read back):
 * names in their order, strings quoted and escaped as po.json does, numbers
 * as po.json writes them, a number name bare ({1.5:true}). For people and
 * tests: it is never hashed. Returns 0, PO_EINVAL for bytes that are not a
 * key of a known version (out then holds a prefix), or PO_ENOMEM. */
int po_cache_key_describe(const void *key, size_t len, po_strbuf *out);

#endif
