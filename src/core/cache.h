/* The LLM response cache: a sharded in-memory table in front of an optional
 * persistent tier in the LMDB store (cache_disk.h).
 *
 * Keys are byte strings (a request table's canonical form, cache_key.h, or a
 * user string), addressed by their 128-bit XXH3 hash; the full key is kept with every
 * entry and compared on lookup, so a hash collision can never return another
 * key's value. Values are byte strings with a small flags word (the binding
 * marks JSON-encoded tables).
 *
 * Memory tier: up to 16 shards, each with its own mutex, hash table, recency
 * list (LRU) or FIFO queue with a hand (SIEVE), and a min-heap of expiry
 * times. max_entries and max_bytes are split evenly between the shards; a
 * shard holds at least 64 entries and (with max_bytes) 1 MiB, so a cache
 * with fewer than 128 entries or 2 MiB has one shard and an exact eviction
 * order. An entry larger than its shard's share of max_bytes empties the
 * shard but is kept. Expired entries are dropped when read and, a few at a time, by the
 * operations of their shard: never by a full scan.
 *
 * A cache object is shared: opening the same (path, namespace) twice in a
 * process, from any thread or Lua state, returns the same object with one
 * more reference. Every function is thread-safe.
 *
 * With a path, every set is written to the store before it returns (with the
 * durability asked for), and the memory tier is a read cache of the store:
 * reopening loads nothing, and entries written by other processes are read
 * from the store on a memory miss. The cache as a whole (the store) holds at
 * most max_entries entries and max_bytes bytes of one namespace. */
#ifndef PO_CACHE_H
#define PO_CACHE_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct po_cache po_cache;

typedef enum po_cache_policy {
  PO_CACHE_LRU,   /* evict the least recently used entry */
  PO_CACHE_SIEVE, /* SIEVE (Zhang et al., NSDI '24): FIFO with a visited bit and a moving hand */
} po_cache_policy;

/* Seconds between two flushes of a cache written with PO_STORE_SYNC_BATCH:
 * the first operation after this interval flushes (and closing does). */
#define PO_CACHE_BATCH_INTERVAL 1.0

typedef struct po_cache_options {
  const char *path;      /* store directory, or NULL for a memory-only cache */
  const char *ns;        /* namespace (NULL: "default"); at most 255 bytes */
  size_t max_entries;    /* at least 1 (0: the default, 1000) */
  size_t max_bytes;      /* bound on key + value bytes; 0: none */
  po_cache_policy policy;
} po_cache_options;

/* Opens (or takes one more reference to) the cache of (path, ns). A cache
 * already open in this process keeps the limits and policy it was opened
 * with: po_cache_config tells them. Returns 0, PO_EINVAL (bad options),
 * PO_ENOMEM, or a po_store_open failure (PO_EPERM, PO_ESCHEMA, PO_ESTORE) with
 * po_store_last_error() describing it; *out is set only on success. */
int po_cache_open(const po_cache_options *opts, po_cache **out);

/* Drops a reference; the last one frees the memory tier, flushes what batch
 * mode left unflushed and closes the store. NULL is accepted. */
void po_cache_close(po_cache *c);

/* The options the cache runs with (path and ns point into the cache). */
void po_cache_config(const po_cache *c, po_cache_options *out);

/* The 128-bit XXH3 hash of a key. */
typedef struct po_cache_hash {
  uint64_t lo, hi;
} po_cache_hash;
po_cache_hash po_cache_hash_key(const void *key, size_t len);

/* Writes the 32 lowercase hex digits of h (high half first) and a NUL. */
void po_cache_hash_hex(po_cache_hash h, char out[33]);

/* Whether an object key of a request table is a secret (an API key, a
 * password, an Authorization header …) that a cache key must never contain:
 * the canonical key walker leaves such keys out at any depth. parent is the key
 * under which the object sits (NULL at the top). Names are compared without
 * case, '-' or '_'. Keys inside a JSON Schema name map ("properties",
 * "patternProperties", "$defs", "definitions") are never secrets: there they
 * name a tool's parameters, and dropping them would merge different tools. */
int po_cache_secret_field(const char *key, size_t len, const char *parent, size_t parent_len);

/* What a lookup found. The value is copied into a buffer the result owns and
 * reuses from call to call; po_cache_result_free releases it. A zeroed
 * result is ready to use.
 * This layout is mirrored in lua/poengine/_ffi.lua (the FFI fast path reads
 * the fields), as are the prototypes of po_cache_get and po_cache_set: change
 * both. */
typedef struct po_cache_result {
  char *value;     /* the value's bytes (not NUL-terminated) */
  size_t len;      /* their number */
  size_t cap;      /* bytes allocated at value */
  unsigned flags;  /* the flags given to po_cache_set */
  double age;      /* seconds since the entry was set */
} po_cache_result;
void po_cache_result_free(po_cache_result *r);

/* Looks key up: the memory tier, then the store. Returns 0 on a hit (r
 * filled; the entry becomes most recently used), PO_ENOENT on a miss (an
 * expired entry is a miss and is removed), or PO_ENOMEM / a store failure.
 * Counts a hit or a miss in the statistics. */
int po_cache_get(po_cache *c, const void *key, size_t klen, po_cache_result *r);

/* Like po_cache_get for a key already hashed (h = po_cache_hash_key(key)). */
int po_cache_get_hashed(po_cache *c, po_cache_hash h, const void *key, size_t klen, po_cache_result *r);

/* Stores value under key (replacing what was there), expiring ttl seconds
 * from now (0: never). sync is the store write's durability (ignored without
 * a path). Evicts by the policy when the cache is over its limits. Returns
 * 0, PO_EINVAL (an entry larger than max_bytes, or ttl negative), PO_ENOMEM,
 * or a store failure (PO_EMAPFULL, PO_EPERM, PO_ESTORE). */
int po_cache_set(po_cache *c, const void *key, size_t klen, const void *value, size_t vlen, unsigned flags,
                 double ttl, po_store_durability sync);

/* Stores an entry copied from another tier (the shared one) with its own
 * write time and expiry (wall-clock seconds; expires 0: never), so that its
 * age and remaining life carry over. Not counted as a set. Returns what
 * po_cache_set returns (PO_EINVAL also for a time that is negative or
 * infinite). */
int po_cache_put(po_cache *c, const void *key, size_t klen, const void *value, size_t vlen, unsigned flags,
                 double created, double expires, po_store_durability sync);

/* Removes key. Returns 0, PO_ENOENT when it was absent, or a store failure. */
int po_cache_delete(po_cache *c, const void *key, size_t klen, po_store_durability sync);

/* Removes every entry of the cache's namespace. Returns 0 or a store failure. */
int po_cache_clear(po_cache *c, po_store_durability sync);

/* ---- the semantic tier ---------------------------------------------------------- */

/* Largest embedding dimension the semantic tier takes. */
#define PO_CACHE_MAX_DIM 4096

/* The semantic side of a key: the group its vector may be compared in (see
 * po_cache_sem_group in cache_semantic.h: the hash of the request without its
 * message texts and of the embedder id), the embedder id stored with the
 * vector, the message text the false-hit guard compares, and the vector
 * (dim values; normalized to unit length by the cache). */
typedef struct po_cache_vector {
  po_cache_hash group;
  const char *embedder;
  size_t embedder_len;
  const char *text;
  size_t text_len;
  const float *vec;
  int dim;
} po_cache_vector;

/* po_cache_set that also stores v (not NULL) as the entry's vector, in the
 * same store transaction. PO_EINVAL also for a vector whose dim differs from
 * the group's, or a zero vector. */
int po_cache_set_vector(po_cache *c, const void *key, size_t klen, const void *value, size_t vlen, unsigned flags,
                        double ttl, po_store_durability sync, const po_cache_vector *v);

/* After an exact miss: the best entry of q's group whose vector scores at
 * least threshold against q->vec among the k nearest, and whose text carries
 * the same facts as q->text (numbers, identifiers, operand order). Returns 0
 * with r filled and *score set (the hit is counted as a semantic hit and
 * refreshes the entry's recency), PO_ENOENT, or a failure. A cache with a
 * store loads the vectors of its namespace on first use, and those other
 * processes add as they come. */
int po_cache_semantic_get(po_cache *c, const po_cache_vector *q, float threshold, int k, po_cache_result *r,
                          float *score);

/* Counts a semantic hit: the caller answered a lookup whose exact get missed
 * (and was counted as a miss) from another entry. stats then report it as a
 * hit and a semantic hit, not as a miss. */
void po_cache_count_semantic_hit(po_cache *c);

typedef struct po_cache_stats {
  uint64_t hits, misses, semantic_hits, sets, evictions, expirations;
  uint64_t size, bytes; /* entries and key + value bytes held (the store's, with a path) */
  uint64_t max_entries, max_bytes;
} po_cache_stats;

/* Statistics since the cache was opened in this process (size and bytes are
 * the cache's current contents, with a path those of every process). */
int po_cache_stats_get(po_cache *c, po_cache_stats *out);

/* The store the cache writes to, or NULL for a memory-only cache. */
po_store *po_cache_store(po_cache *c);

#endif
