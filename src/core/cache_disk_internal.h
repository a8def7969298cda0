/* The record layouts of the cache's persistent tier (cache_disk.h), shared
 * by cache_disk.c (entries in and out) and cache_prune.c (inspecting and
 * pruning a store). Not part of the engine's API. */
#ifndef PO_CACHE_DISK_INTERNAL_H
#define PO_CACHE_DISK_INTERNAL_H

#include "cache_disk.h"

#include <lmdb.h>
#include <stdint.h>
#include <string.h>

enum {
  RECORD_VERSION = 1,
  NS_VERSION = 1,
  NS_ID = 8,
  HASH = 16,
  ENTRY_KEY = NS_ID + HASH,
  ORDER_KEY = NS_ID + 8,
  EXPIRY_KEY = NS_ID + 8 + HASH,
  ORDER_VALUE = HASH + 1,
  GEN_SLOTS = 512,
  EXPIRE_PER_WRITE = 4, /* expired entries a write drops, at most */
  MAX_NS = 255,
};

/* An entry record starts with this header, then the key, then the value. */
typedef struct entry_hdr {
  uint8_t version;
  uint8_t flags;
  uint16_t reserved;
  uint32_t klen;
  uint64_t seq;  /* its key in cache_order */
  uint64_t vseq; /* its vector in cache_vectors, or 0 */
  double created, expires;
} entry_hdr;

/* The namespace record; the name follows it. */
typedef struct ns_hdr {
  uint8_t version;
  uint8_t reserved[7];
  uint64_t count, bytes;
  uint64_t next_seq;  /* last order seq handed out */
  uint64_t hand;      /* SIEVE: the seq where the next eviction looks first */
  uint64_t next_vseq; /* last vector seq handed out */
} ns_hdr;

struct po_cache_disk {
  po_store *store;
  MDB_dbi entries, order, expiry, nsdb, vectors;
  unsigned char ns_id[NS_ID];
  char ns[MAX_NS + 1];
  size_t ns_len;
  uint64_t *gen; /* this namespace's slot in the shared generation file */
  void *gen_map;
};

/* Whether the cursor's key starts with d's namespace id. */
static inline int po_cache_disk_in_ns(const po_cache_disk *d, const MDB_val *key) {
  return key->mv_size >= NS_ID && memcmp(key->mv_data, d->ns_id, NS_ID) == 0;
}

/* The key hash stored at p (16 bytes). */
static inline po_cache_hash po_cache_disk_get_hash(const unsigned char *p) {
  po_cache_hash h;
  memcpy(&h.lo, p, 8);
  memcpy(&h.hi, p + 8, 8);
  return h;
}

/* Reads d's namespace record in txn (a fresh one when there is none). */
int po_cache_disk_load_ns(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns);
int po_cache_disk_save_ns(po_cache_disk *d, MDB_txn *txn, const ns_hdr *ns);

/* Removes h's entry record and everything that points at it (order, expiry
 * and vector records), and takes it off *ns's count and bytes. PO_ENOENT
 * when there is no such entry. */
int po_cache_disk_remove_entry(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns, po_cache_hash h);

/* Tells every process's memory tier that entries of d's namespace changed. */
void po_cache_disk_bump_gen(po_cache_disk *d);

#endif
