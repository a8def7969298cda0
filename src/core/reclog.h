/* A record log: an append-only sequence of byte strings in a named database
 * of the store, keyed by increasing 64-bit integers, read oldest first,
 * trimmed from the oldest end. The metrics collector keeps one cycle record
 * per entry in one; anything that needs "append, read back in order, keep at
 * most N" can use it.
 *
 * Keys are assigned inside the write transaction as the last key + 1 (1 for
 * an empty log), so appends from several threads or processes sharing the
 * store each get their own key, in commit order. Emptying the log (clear,
 * or trimming to zero) starts the keys again at 1.
 *
 * Each append (with its trim) is one LMDB write transaction touching O(1)
 * pages plus those of the entries it trims: its cost does not grow with the
 * length of the log. */
#ifndef PO_RECLOG_H
#define PO_RECLOG_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct po_reclog {
  po_store *store; /* not owned: the caller keeps its reference while using the log */
  MDB_dbi dbi;
} po_reclog;

/* Opens (creating) the log named name in store s. Returns 0, PO_EINVAL (a
 * name of 64 bytes or more, or more databases than the store allows),
 * PO_ESTORE or PO_EMAPFULL. */
int po_reclog_open(po_store *s, const char *name, po_reclog *out);

/* Appends data (len bytes, len may be 0) and, when max_entries is not 0,
 * deletes the oldest entries beyond max_entries in the same transaction.
 * *key (may be NULL) receives the new entry's key, *trimmed (may be NULL)
 * how many were deleted. Returns 0, PO_EMAPFULL or PO_ESTORE; on failure
 * nothing was written. */
int po_reclog_append(po_reclog *log, const void *data, size_t len, po_store_durability sync, uint64_t max_entries,
                     uint64_t *key, uint64_t *trimmed);

/* The number of entries. */
int po_reclog_count(po_reclog *log, uint64_t *out);

/* Called for each entry read; data is valid only during the call (copy it).
 * A non-zero return stops the reading and is returned by it. */
typedef int (*po_reclog_visit_fn)(uint64_t key, const void *data, size_t len, void *ctx);

/* Visits up to limit entries with keys above after, oldest first, in one
 * read transaction (a consistent view). Returns 0, fn's code or PO_ESTORE. */
int po_reclog_scan(po_reclog *log, uint64_t after, size_t limit, po_reclog_visit_fn fn, void *ctx);

/* Visits the newest n entries (fewer if the log is shorter), oldest first. */
int po_reclog_tail(po_reclog *log, size_t n, po_reclog_visit_fn fn, void *ctx);

/* Deletes the oldest entries beyond max_entries (0 empties the log); *removed
 * (may be NULL) receives how many. */
int po_reclog_trim(po_reclog *log, uint64_t max_entries, po_store_durability sync, uint64_t *removed);

/* Deletes every entry. */
int po_reclog_clear(po_reclog *log, po_store_durability sync);

#endif
