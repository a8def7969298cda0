/* A growable byte buffer (po_strbuf): append bytes, read them back as
 * (data, len). The bytes may contain zeros; the buffer is not kept
 * NUL-terminated.
 *
 * A zeroed po_strbuf (or one set up by po_strbuf_init) is empty and owns no
 * memory. The buffer owns `data`; po_strbuf_free releases it. On an
 * allocation failure an append returns PO_ENOMEM and leaves the buffer as it
 * was (still valid, still owning what it owned). */
#ifndef PO_STRBUF_H
#define PO_STRBUF_H

#include <stddef.h>
#include <string.h>

typedef struct po_strbuf {
  char *data; /* NULL until the first growth */
  size_t len; /* bytes in use */
  size_t cap; /* bytes allocated */
} po_strbuf;

/* Makes b an empty buffer that owns no memory. Never fails. */
void po_strbuf_init(po_strbuf *b);

/* Releases b's memory and makes it empty again; safe to call twice. */
void po_strbuf_free(po_strbuf *b);

/* Ensures room for `extra` more bytes without another allocation.
 * Returns 0, or PO_ENOMEM (b unchanged) when memory or size_t runs out. */
int po_strbuf_grow(po_strbuf *b, size_t extra);

/* Empties b but keeps its memory for reuse; if more than `keep` bytes are
 * allocated, the memory is released instead (so one huge result does not
 * stay pinned). Never fails. */
void po_strbuf_reset(po_strbuf *b, size_t keep);

/* Appends n bytes from p (which may contain zeros). Returns 0 or PO_ENOMEM. */
static inline int po_strbuf_append(po_strbuf *b, const void *p, size_t n) {
  if (b->cap - b->len < n) {
    int rc = po_strbuf_grow(b, n);
    if (rc) return rc;
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* Appends one byte. Returns 0 or PO_ENOMEM. */
static inline int po_strbuf_append_char(po_strbuf *b, char c) {
  if (b->cap == b->len) {
    int rc = po_strbuf_grow(b, 1);
    if (rc) return rc;
  }
  b->data[b->len++] = c;
  return 0;
}

/* Appends n copies of byte c. Returns 0 or PO_ENOMEM. */
int po_strbuf_append_repeat(po_strbuf *b, char c, size_t n);

#endif
