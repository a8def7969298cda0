/* LMDB's data file, checked before LMDB maps it.
 *
 * LMDB trusts the two meta pages at the start of data.mdb: a page number
 * they claim beyond the end of the file is read through the map and kills
 * the process with SIGBUS, and an absurd one makes every transaction ask for
 * a bigger map. This reads the meta pages with pread and checks each one
 * (magic, format version, page size, last page, tree roots) against the
 * file's size, so a damaged store is refused with a message instead. */
#ifndef PO_STORE_META_H
#define PO_STORE_META_H

#include <stddef.h>
#include <stdint.h>

/* What the two meta pages say. */
typedef struct po_store_meta {
  uint64_t file_size; /* bytes of data.mdb; 0 when absent or empty */
  uint32_t page_size;
  int valid[2];       /* the meta page passed every check */
  uint64_t txnid[2];  /* the transaction it records; LMDB uses the higher */
  uint64_t last_pg[2];
} po_store_meta;

/* Reads dir/data.mdb without mapping it. Returns 0 when both meta pages are
 * consistent with the file, or when the file is absent or empty (LMDB
 * creates it; m->file_size is 0); PO_ESTORE when not, with the first problem
 * written to why (m says which meta page is still valid); PO_EIO when the
 * file cannot be read. m and why may be NULL. */
int po_store_meta_check(const char *dir, po_store_meta *m, char *why, size_t cap);

/* The index (0 or 1) of the valid meta page with the higher txnid, or -1
 * when neither is valid. */
int po_store_meta_best(const po_store_meta *m);

/* Copies dir/data.mdb into tmp (created 0700) with meta page 1 - good
 * replaced by meta page good, its txnid set to 0 so that LMDB takes good:
 * the snapshot good records becomes readable, the original untouched.
 * Returns 0, PO_EIO or PO_EINVAL. */
int po_store_meta_snapshot(const char *dir, const char *tmp, const po_store_meta *m, int good);

#endif
