#include "strbuf.h"

#include "error.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

void po_strbuf_init(po_strbuf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void po_strbuf_free(po_strbuf *b) {
  free(b->data);
  po_strbuf_init(b);
}

int po_strbuf_grow(po_strbuf *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  /* no object may exceed PTRDIFF_MAX bytes (malloc refuses them too) */
  if (extra > (size_t)PTRDIFF_MAX - b->len) return PO_ENOMEM;
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > (size_t)PTRDIFF_MAX / 2 ? need : cap * 2;
  char *p = realloc(b->data, cap);
  if (!p) return PO_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

void po_strbuf_reset(po_strbuf *b, size_t keep) {
  if (b->cap > keep)
    po_strbuf_free(b);
  else
    b->len = 0;
}

int po_strbuf_append_repeat(po_strbuf *b, char c, size_t n) {
  int rc = po_strbuf_grow(b, n);
  if (rc) return rc;
  if (n) memset(b->data + b->len, c, n); /* data is still NULL when nothing was ever appended */
  b->len += n;
  return 0;
}
