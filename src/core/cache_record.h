/* A cache entry as one byte string: the form of the LMDB entry record
 * (cache_disk_internal.h: the entry header, then the full key, then the
 * value), which the shared tier stores as a Redis value. The store-local
 * fields of the header (order seq, vector seq) are zero in it.
 *
 * The header is written in the host's byte order, as the store's records
 * are: engines that share one Redis must agree on it (every platform
 * poengine builds on today is little-endian). */
#ifndef PO_CACHE_RECORD_H
#define PO_CACHE_RECORD_H

#include "strbuf.h"

#include <stddef.h>

/* Bytes of the header that precedes the key. */
size_t po_cache_record_header_size(void);

/* Writes the header of an entry (flags, key length, created and expires in
 * wall-clock seconds, expires 0: never) at dst, which holds at least
 * po_cache_record_header_size() bytes; seq and vseq are the store's own
 * fields (0 outside the store). */
void po_cache_record_header(void *dst, unsigned flags, size_t klen, unsigned long long seq, double created,
                            double expires);

/* Appends the whole record (header, key, value) to out (reset first).
 * Returns 0, PO_EINVAL (a key longer than 4 GiB) or PO_ENOMEM. */
int po_cache_record_encode(const void *key, size_t klen, const void *value, size_t vlen, unsigned flags,
                           double created, double expires, po_strbuf *out);

/* A record read back: key and value point into the record. */
typedef struct po_cache_record {
  unsigned flags;
  double created, expires;
  const char *key, *value;
  size_t klen, vlen;
} po_cache_record;

/* Reads rec. Returns 0, or PO_EINVAL for bytes that are not a record of
 * this version (too short, another version byte, a key past the end). */
int po_cache_record_decode(const void *rec, size_t len, po_cache_record *out);

#endif
