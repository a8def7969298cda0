/* The cache entry record: one layout for the LMDB store and the shared tier. */
#include "cache_record.h"

#include "cache_disk_internal.h"
#include "error.h"

#include <stdint.h>
#include <string.h>

size_t po_cache_record_header_size(void) { return sizeof(entry_hdr); }

void po_cache_record_header(void *dst, unsigned flags, size_t klen, unsigned long long seq, double created,
                            double expires) {
  entry_hdr hdr = {RECORD_VERSION, (uint8_t)flags, 0, (uint32_t)klen, seq, 0, created, expires};
  memcpy(dst, &hdr, sizeof hdr);
}

int po_cache_record_encode(const void *key, size_t klen, const void *value, size_t vlen, unsigned flags,
                           double created, double expires, po_strbuf *out) {
  if (klen > UINT32_MAX) return PO_EINVAL;
  out->len = 0;
  if (po_strbuf_grow(out, sizeof(entry_hdr) + klen + vlen) != 0) return PO_ENOMEM;
  po_cache_record_header(out->data, flags, klen, 0, created, expires);
  out->len = sizeof(entry_hdr);
  po_strbuf_append(out, key, klen); /* room was made above: these cannot fail */
  po_strbuf_append(out, value, vlen);
  return 0;
}

int po_cache_record_decode(const void *rec, size_t len, po_cache_record *out) {
  entry_hdr hdr;
  if (len < sizeof hdr) return PO_EINVAL;
  memcpy(&hdr, rec, sizeof hdr);
  if (hdr.version != RECORD_VERSION || hdr.klen > len - sizeof hdr) return PO_EINVAL;
  const char *p = (const char *)rec + sizeof hdr;
  *out = (po_cache_record){.flags = hdr.flags,
                           .created = hdr.created,
                           .expires = hdr.expires,
                           .key = p,
                           .klen = hdr.klen,
                           .value = p + hdr.klen,
                           .vlen = len - sizeof hdr - hdr.klen};
  return 0;
}
