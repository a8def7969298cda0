/* The cache's persistent tier: one namespace of cache entries in the LMDB
 * store, shared by every process that opens the store.
 *
 * Databases (all keys start with the namespace id, the first 8 bytes of the
 * XXH3 hash of the namespace name, so namespaces never mix):
 *   cache_entries  ns + key hash (16)  -> record: version 1, flags, sizes,
 *                                         created, expires, order seq, the
 *                                         full key, the value
 *   cache_order    ns + seq (8, big-endian) -> key hash + visited byte: the
 *                  recency list (LRU: a use moves the entry to a new seq) or
 *                  the FIFO queue (SIEVE: a use sets the visited byte)
 *   cache_expiry   ns + expiry time (8, big-endian ms) + key hash -> nothing
 *   cache_ns       ns -> count, bytes, next seq, SIEVE hand, name
 *
 * Reopening reads nothing but the namespace record: a store of any size opens
 * in the time LMDB takes to map it.
 *
 * Other processes' memory tiers are kept honest by a generation counter per
 * namespace in a small shared file (cache-gen, 0600) beside the store: every
 * overwrite, delete or clear bumps it after its commit, and a memory tier
 * rereads from the store any entry it loaded before the current generation. */
#ifndef PO_CACHE_DISK_H
#define PO_CACHE_DISK_H

#include "cache.h"
#include "store.h"
#include "strbuf.h"

#include <stdint.h>

typedef struct po_cache_disk po_cache_disk;

/* Opens namespace ns of the store in path. Returns 0 or a po_store_open
 * failure (po_store_last_error() describes it), or PO_EIO when the
 * generation file cannot be made. */
int po_cache_disk_open(const char *path, const char *ns, po_cache_disk **out);
void po_cache_disk_close(po_cache_disk *d);
po_store *po_cache_disk_store(po_cache_disk *d);

/* The namespace's current generation (one atomic load from shared memory). */
uint64_t po_cache_disk_gen(const po_cache_disk *d);

/* An entry as read from the store. */
typedef struct po_cache_disk_entry {
  unsigned flags;
  double created, expires; /* wall-clock seconds; expires 0: never */
  uint64_t vseq;           /* the entry's vector record, or 0 */
} po_cache_disk_entry;

/* Reads the entry of hash h. With key non-NULL, an entry whose full key
 * differs is absent. Appends the value to value_out (reset first) and, when
 * key_out is non-NULL, the full key to it. Returns 0, PO_ENOENT, or a store
 * failure; an entry that expired by `now` gives PO_ENOENT with *expired set
 * (the caller removes it with po_cache_disk_delete). */
int po_cache_disk_get(po_cache_disk *d, po_cache_hash h, const void *key, size_t klen, double now,
                      po_cache_disk_entry *e, po_strbuf *value_out, po_strbuf *key_out, int *expired);

/* Optional semantic payload of a write: a vector record stored with the entry
 * in the same transaction (see cache_disk.c for its layout). */
typedef struct po_cache_disk_vector {
  const void *record; /* the encoded vector record */
  size_t len;
} po_cache_disk_vector;

/* Limits and bookkeeping for a write. */
typedef struct po_cache_disk_write {
  po_store_durability sync;
  po_cache_policy policy;
  uint64_t max_entries, max_bytes; /* max_bytes 0: unbounded */
  const po_cache_hash *touched;    /* hits since the last write, to refresh their recency */
  size_t ntouched;
  /* results */
  uint64_t evicted, expired; /* entries dropped by this write */
  int replaced;              /* the key held an entry before */
  uint64_t vseq;             /* the seq the vector was stored under (0: none) */
} po_cache_disk_write;

/* Stores an entry (key, value, flags, created, expires) and its optional
 * vector, refreshes the touched entries' recency, drops up to a few expired
 * entries, and evicts by the policy while the namespace is over its limits
 * (never the entry being set; a namespace count found wrong is recounted
 * from the entries). An expiry time too large for the expiry index (beyond
 * 2^64 ms) never expires. One write transaction. Returns 0 or a store
 * failure. */
int po_cache_disk_put(po_cache_disk *d, po_cache_disk_write *w, po_cache_hash h, const void *key, size_t klen,
                      const void *value, size_t vlen, unsigned flags, double created, double expires,
                      const po_cache_disk_vector *vec);

/* Removes the entry of hash h (with key non-NULL, only if its key matches).
 * Returns 0, PO_ENOENT, or a store failure. */
int po_cache_disk_delete(po_cache_disk *d, po_store_durability sync, po_cache_hash h, const void *key,
                         size_t klen);

/* Removes h's entry only if it has expired by `now` (no generation bump:
 * every process checks expiry itself). Returns 0, PO_ENOENT or a failure. */
int po_cache_disk_drop_expired(po_cache_disk *d, po_cache_hash h, double now);

/* Removes every entry (and vector) of the namespace. */
int po_cache_disk_clear(po_cache_disk *d, po_store_durability sync);

/* The namespace's entry count and key + value bytes. */
int po_cache_disk_size(po_cache_disk *d, uint64_t *count, uint64_t *bytes);

/* Calls fn(ctx, seq, record, len) for every vector record of the namespace
 * with seq > after, in seq order, and sets *last to the highest seq seen
 * (unchanged when none). The record is valid only during the call. */
typedef int (*po_cache_disk_vector_fn)(void *ctx, uint64_t seq, const void *record, size_t len);
int po_cache_disk_vectors(po_cache_disk *d, uint64_t after, po_cache_disk_vector_fn fn, void *ctx, uint64_t *last);

/* The highest vector seq written in the namespace so far (0: none). */
int po_cache_disk_vector_seq(po_cache_disk *d, uint64_t *seq);

/* ---- inspecting and pruning a store (poengine cache; cache_prune.c) --------- */

/* Calls fn(ctx, name, len) for every namespace recorded in the cache store
 * in path (fn may be NULL: a check only). Creates nothing: PO_ENOENT, with
 * po_store_last_error() saying why, when path holds no store or a store
 * without the cache's databases; otherwise 0, fn's non-zero code, or a
 * po_store_open failure (PO_EPERM for a store that is not writable,
 * PO_ESTORE for a damaged one). */
typedef int (*po_cache_disk_ns_fn)(void *ctx, const char *ns, size_t len);
int po_cache_disk_namespaces(const char *path, po_cache_disk_ns_fn fn, void *ctx);

/* What a namespace holds, read in one read transaction. */
typedef struct po_cache_disk_info {
  uint64_t entries, bytes;  /* counted from the entries (key + value bytes) */
  uint64_t expired;         /* entries whose expiry time has passed by `now` */
  uint64_t vectors;         /* semantic-tier vector records */
  double oldest, newest;    /* the earliest and latest write time; 0 when empty */
  /* the store as a whole: its map's size, the bytes of pages holding data,
   * and the bytes of pages freed and waiting to be reused */
  uint64_t map_size, map_used, map_free;
} po_cache_disk_info;

/* Fills *out for d's namespace. Scans the namespace's entries: O(entries).
 * Returns 0 or a store failure. */
int po_cache_disk_info_get(po_cache_disk *d, double now, po_cache_disk_info *out);

/* A prune: which entries go, and (after the call) what went and what is
 * left. Entries expired by `now` always go. */
typedef struct po_cache_disk_prune {
  double now;              /* wall-clock seconds the ages and expiry are judged at */
  int by_age;              /* entries written more than older_than seconds before now go */
  double older_than;
  int by_bytes;            /* then the oldest entries go until the rest hold at most max_bytes */
  uint64_t max_bytes;      /* key + value bytes */
  int all_namespaces;      /* every namespace of d's store, max_bytes bounding them together */
  int dry_run;             /* count what would go; write nothing */
  size_t batch;            /* entries removed per write transaction, at most (0: 1024) */
  /* results */
  uint64_t removed, removed_bytes; /* expired ones included */
  uint64_t expired;
  uint64_t remaining, remaining_bytes;
  uint64_t transactions;   /* write transactions committed */
} po_cache_disk_prune;

/* Removes what p asks, oldest first by write time (ties: the older order
 * seq), with each entry's vector record, its order and expiry keys, and the
 * namespace's count and bytes updated in the same transaction. The work is
 * split into write transactions of at most p->batch removals and a bounded
 * number of records read, so a huge store never needs one long transaction
 * and other processes' writes interleave; an entry written meanwhile is
 * judged by its own time. Every process's memory tier sees the removals (the
 * generation is bumped after each transaction that removed something).
 * With by_bytes (and max_bytes above 0), one read transaction first
 * collects every entry's time and size (32 bytes each) to find the cut. Returns 0, PO_EINVAL (a batch or
 * limit out of range), PO_ENOMEM or a store failure; what committed before
 * a failure stays removed and counted. */
int po_cache_disk_prune_run(po_cache_disk *d, po_cache_disk_prune *p);

#endif
