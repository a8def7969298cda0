/* The cache's semantic tier in memory: one vector index (vindex.h) per group
 * (a namespace's entries with identical non-message parameters and the same
 * embedder), and, for every vector, the entry it belongs to and its text for
 * the false-hit guard (guard.h). Thread-safe (one mutex).
 *
 * A vector record (as stored in the "cache_vectors" database) is, in native
 * byte order:
 *   u8 version (1), u8 kind (0: float32), u16 dim, u32 text length,
 *   group hash (16), entry hash (16), u8 embedder id length, the embedder
 *   id, the text, dim float32 values (L2-normalized). */
#ifndef PO_CACHE_SEMANTIC_H
#define PO_CACHE_SEMANTIC_H

#include "cache.h"
#include "strbuf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct po_cache_sem po_cache_sem;

int po_cache_sem_new(po_cache_sem **out);
void po_cache_sem_free(po_cache_sem *s);

/* The group of an embedder's vectors for one parameter set (params: the hash
 * text of the request without its message texts). */
po_cache_hash po_cache_sem_group(const char *params, size_t plen, const char *embedder, size_t elen);

/* Encodes the record of v for entry into out (reset first). PO_EINVAL for a
 * dim outside 1..PO_CACHE_MAX_DIM or an embedder id over 255 bytes. */
int po_cache_sem_encode(const po_cache_vector *v, po_cache_hash entry, po_strbuf *out);

/* Adds the vector of a record under id (replacing the entry's previous
 * vector in the group). PO_EINVAL for a malformed record or a dim that
 * differs from the group's; PO_ENOMEM. */
int po_cache_sem_add_record(po_cache_sem *s, uint64_t id, const void *record, size_t len);

/* Removes vector id (no-op when absent). */
void po_cache_sem_remove(po_cache_sem *s, uint64_t id);

/* The dimension of group's vectors, or 0 for a group not seen yet. */
int po_cache_sem_dim(po_cache_sem *s, po_cache_hash group);

/* Vectors held. */
size_t po_cache_sem_count(po_cache_sem *s);

/* A candidate found by po_cache_sem_search. */
typedef struct po_cache_sem_candidate {
  uint64_t id;
  po_cache_hash entry;
  float score;
} po_cache_sem_candidate;

/* The up to k best vectors of group for query q (dim values, L2-normalized)
 * that po_semantic_accept takes for text (score at least threshold, the same
 * facts), best first. Returns how many it wrote to out. */
int po_cache_sem_search(po_cache_sem *s, po_cache_hash group, const float *q, int dim, const char *text,
                        size_t tlen, float threshold, int k, po_cache_sem_candidate *out);

/* Calls keep(ctx, entry) for every vector and removes those for which it
 * returns 0. keep runs with the tier's lock held: it must not call back in. */
void po_cache_sem_purge(po_cache_sem *s, int (*keep)(void *ctx, po_cache_hash entry), void *ctx);

/* ---- the vectors of recent misses --------------------------------------------
 * A lookup that misses has embedded its text, and the set that usually follows
 * (the caller asked the model and stores the answer) needs the same vector. A
 * memo keeps the vectors of the last few misses, each under its full key, so
 * that the set stores it instead of embedding the text again: a user's embedder
 * may be a paid API call. Several slots, because flows running in coroutines
 * interleave their lookups and sets. One memo serves one caller with one
 * embedder (a binding's handle): it takes no lock. A zeroed memo is empty. */
enum { PO_CACHE_MEMO_SLOTS = 4 };

typedef struct po_cache_memo_slot {
  po_cache_hash h;    /* the key's hash */
  char *key;          /* the key's bytes (malloc'd); NULL: the slot is free */
  size_t klen;
  po_cache_hash group;
  float *vec; /* dim values (malloc'd) */
  int dim;
} po_cache_memo_slot;

typedef struct po_cache_memo {
  po_cache_memo_slot slot[PO_CACHE_MEMO_SLOTS];
  unsigned next; /* the slot the next put replaces when none is free */
} po_cache_memo;

/* Remembers vec (dim values in group) as the vector of key (hashed as h),
 * replacing key's previous one, else in a free slot, else in each slot in
 * turn. The memo takes vec, a malloc'd block, in every case (it frees it on
 * failure). Returns 0 or PO_ENOMEM (nothing remembered). */
int po_cache_memo_put(po_cache_memo *m, po_cache_hash h, const void *key, size_t klen, po_cache_hash group, float *vec,
                      int dim);

/* Takes key's vector out of the memo: 0 with *group, *vec (malloc'd, now the
 * caller's to free) and *dim set, or PO_ENOENT. */
int po_cache_memo_take(po_cache_memo *m, po_cache_hash h, const void *key, size_t klen, po_cache_hash *group,
                       float **vec, int *dim);

/* Frees what the memo holds and empties it; safe to call twice. */
void po_cache_memo_free(po_cache_memo *m);

#endif
