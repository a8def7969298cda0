#include "cache_disk.h"

#include "clock.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

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

/* ---- small helpers -------------------------------------------------------- */

static void put_be64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (unsigned char)v;
    v >>= 8;
  }
}

static uint64_t get_be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void put_hash(unsigned char *p, po_cache_hash h) {
  memcpy(p, &h.lo, 8);
  memcpy(p + 8, &h.hi, 8);
}

static po_cache_hash get_hash(const unsigned char *p) {
  po_cache_hash h;
  memcpy(&h.lo, p, 8);
  memcpy(&h.hi, p + 8, 8);
  return h;
}

static void entry_key(const po_cache_disk *d, po_cache_hash h, unsigned char k[ENTRY_KEY]) {
  memcpy(k, d->ns_id, NS_ID);
  put_hash(k + NS_ID, h);
}

static void seq_key(const po_cache_disk *d, uint64_t seq, unsigned char k[ORDER_KEY]) {
  memcpy(k, d->ns_id, NS_ID);
  put_be64(k + NS_ID, seq);
}

/* Expiry times in ms as the expiry index's keys. A time beyond what 64 bits
 * of ms hold (a TTL above about 1.8e16 s) saturates: converting it would be
 * undefined, and in practice gave 0, which the next write dropped as
 * expired. The entry keeps its true time as a double; the saturated key only
 * sorts it last, so it never expires. */
static uint64_t expiry_ms(double expires) {
  double ms = expires * 1000.0;
  if (!(ms > 0)) return 0;
  return ms >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)ms;
}

static void expiry_key(const po_cache_disk *d, double expires, po_cache_hash h, unsigned char k[EXPIRY_KEY]) {
  memcpy(k, d->ns_id, NS_ID);
  put_be64(k + NS_ID, expiry_ms(expires));
  put_hash(k + NS_ID + 8, h);
}

static int mdb(int rc) { return rc == MDB_NOTFOUND ? PO_ENOENT : po_store_error(rc); }

static int del(MDB_txn *txn, MDB_dbi dbi, void *k, size_t klen) {
  MDB_val key = {klen, k};
  int rc = mdb_del(txn, dbi, &key, NULL);
  return rc == MDB_NOTFOUND ? 0 : po_store_error(rc);
}

static int put(MDB_txn *txn, MDB_dbi dbi, void *k, size_t klen, const void *v, size_t vlen) {
  MDB_val key = {klen, k}, val = {vlen, (void *)v};
  return po_store_error(mdb_put(txn, dbi, &key, &val, 0));
}

/* ---- the generation file ---------------------------------------------------- */

static int map_gen(po_cache_disk *d) {
  char file[PATH_MAX];
  snprintf(file, sizeof file, "%s/cache-gen", po_store_path(d->store));
  int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return errno == EACCES || errno == EPERM || errno == EROFS ? PO_EPERM : PO_EIO;
  size_t size = GEN_SLOTS * sizeof(uint64_t);
  struct stat st;
  int rc = fstat(fd, &st);
  /* Growing with ftruncate is safe under concurrency: the bytes read as 0. */
  if (rc == 0 && (size_t)st.st_size < size) rc = ftruncate(fd, (off_t)size);
  void *map = rc == 0 ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  close(fd);
  if (map == MAP_FAILED) return PO_EIO;
  d->gen_map = map;
  uint64_t slot;
  memcpy(&slot, d->ns_id, sizeof slot);
  d->gen = (uint64_t *)map + slot % GEN_SLOTS;
  return 0;
}

uint64_t po_cache_disk_gen(const po_cache_disk *d) { return __atomic_load_n(d->gen, __ATOMIC_ACQUIRE); }

static void bump_gen(po_cache_disk *d) { __atomic_add_fetch(d->gen, 1, __ATOMIC_ACQ_REL); }

/* ---- open / close ------------------------------------------------------------- */

int po_cache_disk_open(const char *path, const char *ns, po_cache_disk **out) {
  size_t ns_len = strlen(ns);
  if (ns_len > MAX_NS) return PO_EINVAL;
  po_cache_disk *d = calloc(1, sizeof *d);
  if (!d) return PO_ENOMEM;
  memcpy(d->ns, ns, ns_len + 1);
  d->ns_len = ns_len;
  uint64_t id = XXH3_64bits(ns, ns_len);
  memcpy(d->ns_id, &id, NS_ID);
  int rc = po_store_open(path, NULL, &d->store);
  if (rc != 0) {
    free(d);
    return rc;
  }
  if (rc == 0) rc = po_store_dbi(d->store, "cache_entries", 0, &d->entries);
  if (rc == 0) rc = po_store_dbi(d->store, "cache_order", 0, &d->order);
  if (rc == 0) rc = po_store_dbi(d->store, "cache_expiry", 0, &d->expiry);
  if (rc == 0) rc = po_store_dbi(d->store, "cache_ns", 0, &d->nsdb);
  if (rc == 0) rc = po_store_dbi(d->store, "cache_vectors", 0, &d->vectors);
  if (rc == 0) rc = map_gen(d);
  if (rc != 0) {
    po_store_close(d->store);
    free(d);
    return rc;
  }
  *out = d;
  return 0;
}

void po_cache_disk_close(po_cache_disk *d) {
  if (!d) return;
  if (d->gen_map) munmap(d->gen_map, GEN_SLOTS * sizeof(uint64_t));
  po_store_close(d->store);
  free(d);
}

po_store *po_cache_disk_store(po_cache_disk *d) { return d->store; }

/* ---- the namespace record ---------------------------------------------------- */

static int load_ns(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns) {
  MDB_val key = {NS_ID, d->ns_id}, val;
  int rc = mdb_get(txn, d->nsdb, &key, &val);
  memset(ns, 0, sizeof *ns);
  ns->version = NS_VERSION;
  if (rc == MDB_NOTFOUND) return 0;
  if (rc != 0) return po_store_error(rc);
  if (val.mv_size < sizeof *ns) return PO_ESTORE;
  memcpy(ns, val.mv_data, sizeof *ns);
  return 0;
}

static int save_ns(po_cache_disk *d, MDB_txn *txn, const ns_hdr *ns) {
  unsigned char buf[sizeof(ns_hdr) + MAX_NS];
  memcpy(buf, ns, sizeof *ns);
  memcpy(buf + sizeof *ns, d->ns, d->ns_len);
  return put(txn, d->nsdb, d->ns_id, NS_ID, buf, sizeof *ns + d->ns_len);
}

/* ---- entries -------------------------------------------------------------------- */

/* Reads the header of h's record into *hdr (and its total size). */
static int read_hdr(po_cache_disk *d, MDB_txn *txn, po_cache_hash h, entry_hdr *hdr, MDB_val *val) {
  unsigned char k[ENTRY_KEY];
  entry_key(d, h, k);
  MDB_val key = {ENTRY_KEY, k};
  int rc = mdb_get(txn, d->entries, &key, val);
  if (rc != 0) return mdb(rc);
  if (val->mv_size < sizeof *hdr) return PO_ESTORE;
  memcpy(hdr, val->mv_data, sizeof *hdr);
  if (hdr->version != RECORD_VERSION || sizeof *hdr + hdr->klen > val->mv_size) return PO_ESTORE;
  return 0;
}

static int key_matches(const entry_hdr *hdr, const MDB_val *val, const void *key, size_t klen) {
  return !key || (hdr->klen == klen && memcmp((const char *)val->mv_data + sizeof *hdr, key, klen) == 0);
}

/* Removes h's record and everything that points at it. */
static int remove_entry(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns, po_cache_hash h) {
  entry_hdr hdr;
  MDB_val val;
  int rc = read_hdr(d, txn, h, &hdr, &val);
  if (rc != 0) return rc;
  uint64_t size = val.mv_size - sizeof hdr;
  unsigned char k[EXPIRY_KEY];
  entry_key(d, h, k);
  rc = del(txn, d->entries, k, ENTRY_KEY);
  seq_key(d, hdr.seq, k);
  if (rc == 0) rc = del(txn, d->order, k, ORDER_KEY);
  if (rc == 0 && hdr.vseq) {
    seq_key(d, hdr.vseq, k);
    rc = del(txn, d->vectors, k, ORDER_KEY);
  }
  if (rc == 0 && hdr.expires > 0) {
    expiry_key(d, hdr.expires, h, k);
    rc = del(txn, d->expiry, k, EXPIRY_KEY);
  }
  if (rc != 0) return rc;
  ns->count = ns->count ? ns->count - 1 : 0;
  ns->bytes = ns->bytes >= size ? ns->bytes - size : 0;
  return 0;
}

/* A use of h: LRU moves it to a new seq, SIEVE sets its visited byte. */
static int touch(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns, po_cache_policy policy, po_cache_hash h,
                 po_strbuf *tmp) {
  entry_hdr hdr;
  MDB_val val;
  int rc = read_hdr(d, txn, h, &hdr, &val);
  if (rc == PO_ENOENT) return 0; /* gone meanwhile */
  if (rc != 0) return rc;
  unsigned char k[ORDER_KEY], v[ORDER_VALUE];
  put_hash(v, h);
  seq_key(d, hdr.seq, k);
  if (policy == PO_CACHE_SIEVE) {
    v[HASH] = 1;
    return put(txn, d->order, k, ORDER_KEY, v, ORDER_VALUE);
  }
  rc = del(txn, d->order, k, ORDER_KEY);
  if (rc != 0) return rc;
  hdr.seq = ++ns->next_seq;
  v[HASH] = 0;
  seq_key(d, hdr.seq, k);
  rc = put(txn, d->order, k, ORDER_KEY, v, ORDER_VALUE);
  if (rc != 0) return rc;
  tmp->len = 0;
  if (po_strbuf_append(tmp, val.mv_data, val.mv_size)) return PO_ENOMEM;
  memcpy(tmp->data, &hdr, sizeof hdr);
  unsigned char ek[ENTRY_KEY];
  entry_key(d, h, ek);
  return put(txn, d->entries, ek, ENTRY_KEY, tmp->data, tmp->len);
}

/* Whether the cursor's key starts with our namespace id. */
static int in_ns(const po_cache_disk *d, const MDB_val *key) {
  return key->mv_size >= NS_ID && memcmp(key->mv_data, d->ns_id, NS_ID) == 0;
}

/* Drops up to EXPIRE_PER_WRITE entries whose time has passed. */
static int drop_expired(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns, double now, uint64_t *dropped) {
  po_cache_hash victims[EXPIRE_PER_WRITE];
  int n = 0;
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, d->expiry, &cur);
  if (rc != 0) return po_store_error(rc);
  unsigned char k[NS_ID];
  memcpy(k, d->ns_id, NS_ID);
  MDB_val key = {NS_ID, k}, val;
  uint64_t now_ms = expiry_ms(now);
  rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
  while (rc == 0 && n < EXPIRE_PER_WRITE && in_ns(d, &key) && key.mv_size == EXPIRY_KEY &&
         get_be64((const unsigned char *)key.mv_data + NS_ID) < now_ms) {
    victims[n++] = get_hash((const unsigned char *)key.mv_data + NS_ID + 8);
    rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) return po_store_error(rc);
  for (int i = 0; i < n; i++) {
    rc = remove_entry(d, txn, ns, victims[i]);
    if (rc == PO_ENOENT) continue;
    if (rc != 0) return rc;
    (*dropped)++;
  }
  return 0;
}

/* Picks the entry the policy evicts next, never `keep` (the entry being
 * set): LRU the oldest in the order, SIEVE the first unvisited one from the
 * hand on (clearing visited bits as it passes, wrapping around to the
 * oldest). Sets *seq to its order key. PO_ENOENT when there is none. */
static int pick_victim(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns, po_cache_policy policy, po_cache_hash keep,
                       po_cache_hash *out, uint64_t *seq) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, d->order, &cur);
  if (rc != 0) return po_store_error(rc);
  unsigned char k[ORDER_KEY];
  MDB_val key, val;
  int sieve = policy == PO_CACHE_SIEVE, wraps = 0, result = PO_ENOENT;
  seq_key(d, sieve ? ns->hand : 0, k);
  key = (MDB_val){ORDER_KEY, k};
  rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
  for (;;) {
    if (rc == MDB_NOTFOUND || (rc == 0 && !in_ns(d, &key))) {
      if (!sieve || ++wraps > 2) break; /* two wraps clear every visited bit */
      seq_key(d, 0, k);
      key = (MDB_val){ORDER_KEY, k};
      rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
      continue;
    }
    if (rc != 0) {
      result = po_store_error(rc);
      break;
    }
    if (val.mv_size != ORDER_VALUE || key.mv_size != ORDER_KEY) {
      result = PO_ESTORE;
      break;
    }
    const unsigned char *v = val.mv_data;
    po_cache_hash h = get_hash(v);
    if (h.lo == keep.lo && h.hi == keep.hi) {
      rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
      continue;
    }
    if (sieve && v[HASH]) {
      unsigned char cleared[ORDER_VALUE];
      memcpy(cleared, v, HASH);
      cleared[HASH] = 0;
      MDB_val nv = {ORDER_VALUE, cleared};
      rc = mdb_cursor_put(cur, &key, &nv, MDB_CURRENT);
      if (rc == 0) rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
      continue;
    }
    *out = h;
    *seq = get_be64((const unsigned char *)key.mv_data + NS_ID);
    ns->hand = *seq + 1;
    result = 0;
    break;
  }
  mdb_cursor_close(cur);
  return result;
}

/* Sets the namespace's count and bytes from its entries: the repair when
 * they disagree with what is stored (a count that stays over the limit with
 * nothing left to evict). */
static int recount(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, d->entries, &cur);
  if (rc != 0) return po_store_error(rc);
  MDB_val key = {NS_ID, d->ns_id}, val;
  uint64_t count = 0, bytes = 0;
  rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
  while (rc == 0 && in_ns(d, &key)) {
    count++;
    if (val.mv_size >= sizeof(entry_hdr)) bytes += val.mv_size - sizeof(entry_hdr);
    rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) return po_store_error(rc);
  ns->count = count;
  ns->bytes = bytes;
  return 0;
}

/* Evicts by the policy while the namespace is over its limits. Each turn
 * removes an order record or ends the loop, so it ends even when the
 * namespace record or the order disagrees with the entries (issue 14: it
 * once spun forever holding LMDB's write lock). */
static int evict(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns, po_cache_disk_write *w, po_cache_hash keep) {
  int recounted = 0;
  while (ns->count > w->max_entries || (w->max_bytes && ns->bytes > w->max_bytes)) {
    po_cache_hash victim;
    uint64_t seq = 0;
    int rc = pick_victim(d, txn, ns, w->policy, keep, &victim, &seq);
    if (rc == PO_ENOENT) {
      /* Nothing but the new entry is left, yet the count is over: the count
       * is wrong. Correct it once and look again. */
      if (recounted) break;
      recounted = 1;
      rc = recount(d, txn, ns);
      if (rc != 0) return rc;
      continue;
    }
    if (rc == 0) rc = remove_entry(d, txn, ns, victim);
    if (rc == PO_ENOENT) {
      /* An order record whose entry is gone: drop the record. */
      unsigned char k[ORDER_KEY];
      seq_key(d, seq, k);
      rc = del(txn, d->order, k, ORDER_KEY);
      if (rc != 0) return rc;
      continue;
    }
    if (rc != 0) return rc;
    w->evicted++;
  }
  return 0;
}

typedef struct put_ctx {
  po_cache_disk *d;
  po_cache_disk_write *w;
  po_cache_hash h;
  const void *key, *value;
  size_t klen, vlen;
  unsigned flags;
  double created, expires;
  const po_cache_disk_vector *vec;
  po_strbuf tmp;
} put_ctx;

static int put_fn(MDB_txn *txn, void *ud) {
  put_ctx *p = ud;
  po_cache_disk *d = p->d;
  po_cache_disk_write *w = p->w;
  w->evicted = w->expired = 0;
  w->replaced = 0;
  w->vseq = 0;
  ns_hdr ns;
  int rc = load_ns(d, txn, &ns);
  for (size_t i = 0; rc == 0 && i < w->ntouched; i++) rc = touch(d, txn, &ns, w->policy, w->touched[i], &p->tmp);
  if (rc == 0) rc = drop_expired(d, txn, &ns, p->created, &w->expired);
  if (rc == 0) {
    rc = remove_entry(d, txn, &ns, p->h);
    w->replaced = rc == 0;
    if (rc == PO_ENOENT) rc = 0;
  }
  if (rc != 0) return rc;

  entry_hdr hdr = {RECORD_VERSION, (uint8_t)p->flags, 0, (uint32_t)p->klen, ++ns.next_seq, 0, p->created,
                   p->expires};
  unsigned char k[EXPIRY_KEY], v[ORDER_VALUE];
  if (p->vec) {
    hdr.vseq = w->vseq = ++ns.next_vseq;
    seq_key(d, hdr.vseq, k);
    rc = put(txn, d->vectors, k, ORDER_KEY, p->vec->record, p->vec->len);
    if (rc != 0) return rc;
  }
  /* The record is written in place with MDB_RESERVE: no staging copy. */
  entry_key(d, p->h, k);
  MDB_val key = {ENTRY_KEY, k}, val = {sizeof hdr + p->klen + p->vlen, NULL};
  rc = po_store_error(mdb_put(txn, d->entries, &key, &val, MDB_RESERVE));
  if (rc != 0) return rc;
  memcpy(val.mv_data, &hdr, sizeof hdr);
  memcpy((char *)val.mv_data + sizeof hdr, p->key, p->klen);
  if (p->vlen) memcpy((char *)val.mv_data + sizeof hdr + p->klen, p->value, p->vlen);

  seq_key(d, hdr.seq, k);
  put_hash(v, p->h);
  v[HASH] = 0;
  rc = put(txn, d->order, k, ORDER_KEY, v, ORDER_VALUE);
  if (rc == 0 && p->expires > 0) {
    expiry_key(d, p->expires, p->h, k);
    rc = put(txn, d->expiry, k, EXPIRY_KEY, "", 0);
  }
  if (rc != 0) return rc;
  ns.count++;
  ns.bytes += p->klen + p->vlen;

  rc = evict(d, txn, &ns, w, p->h);
  return rc != 0 ? rc : save_ns(d, txn, &ns);
}

int po_cache_disk_put(po_cache_disk *d, po_cache_disk_write *w, po_cache_hash h, const void *key, size_t klen,
                      const void *value, size_t vlen, unsigned flags, double created, double expires,
                      const po_cache_disk_vector *vec) {
  if (klen > UINT32_MAX) return PO_EINVAL;
  put_ctx p = {d, w, h, key, value, klen, vlen, flags, created, expires, vec, {0}};
  int rc = po_store_write(d->store, w->sync, put_fn, &p);
  po_strbuf_free(&p.tmp);
  if (rc == 0 && w->replaced) bump_gen(d);
  return rc;
}

int po_cache_disk_get(po_cache_disk *d, po_cache_hash h, const void *key, size_t klen, double now,
                      po_cache_disk_entry *e, po_strbuf *value_out, po_strbuf *key_out, int *expired) {
  *expired = 0;
  MDB_txn *txn;
  int rc = po_store_read_begin(d->store, &txn);
  if (rc != 0) return rc;
  entry_hdr hdr;
  MDB_val val;
  rc = read_hdr(d, txn, h, &hdr, &val);
  if (rc == 0 && !key_matches(&hdr, &val, key, klen)) rc = PO_ENOENT;
  if (rc == 0 && hdr.expires > 0 && hdr.expires <= now) {
    *expired = 1;
    rc = PO_ENOENT;
  }
  if (rc == 0) {
    const char *p = (const char *)val.mv_data + sizeof hdr;
    value_out->len = 0;
    if (po_strbuf_append(value_out, p + hdr.klen, val.mv_size - sizeof hdr - hdr.klen)) rc = PO_ENOMEM;
    if (rc == 0 && key_out) {
      key_out->len = 0;
      if (po_strbuf_append(key_out, p, hdr.klen)) rc = PO_ENOMEM;
    }
    e->flags = hdr.flags;
    e->created = hdr.created;
    e->expires = hdr.expires;
    e->vseq = hdr.vseq;
  }
  po_store_read_end(d->store, txn);
  return rc;
}

typedef struct del_ctx {
  po_cache_disk *d;
  po_cache_hash h;
  const void *key;
  size_t klen;
  double expired_by; /* > 0: remove only if expired by then */
} del_ctx;

static int del_fn(MDB_txn *txn, void *ud) {
  del_ctx *c = ud;
  entry_hdr hdr;
  MDB_val val;
  int rc = read_hdr(c->d, txn, c->h, &hdr, &val);
  if (rc != 0) return rc;
  if (!key_matches(&hdr, &val, c->key, c->klen)) return PO_ENOENT;
  if (c->expired_by > 0 && !(hdr.expires > 0 && hdr.expires <= c->expired_by)) return PO_ENOENT;
  ns_hdr ns;
  rc = load_ns(c->d, txn, &ns);
  if (rc == 0) rc = remove_entry(c->d, txn, &ns, c->h);
  if (rc == 0) rc = save_ns(c->d, txn, &ns);
  return rc;
}

int po_cache_disk_delete(po_cache_disk *d, po_store_durability sync, po_cache_hash h, const void *key,
                         size_t klen) {
  del_ctx c = {d, h, key, klen, 0};
  int rc = po_store_write(d->store, sync, del_fn, &c);
  if (rc == 0) bump_gen(d);
  return rc;
}

/* Removes h's entry only if it has expired by now: nothing another process
 * holds becomes wrong, so the generation stays. */
int po_cache_disk_drop_expired(po_cache_disk *d, po_cache_hash h, double now) {
  del_ctx c = {d, h, NULL, 0, now};
  return po_store_write(d->store, PO_STORE_SYNC_NONE, del_fn, &c);
}

/* Deletes every key of db that starts with the namespace id. */
static int del_prefix(po_cache_disk *d, MDB_txn *txn, MDB_dbi dbi) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc != 0) return po_store_error(rc);
  unsigned char k[NS_ID];
  memcpy(k, d->ns_id, NS_ID);
  MDB_val key = {NS_ID, k}, val;
  rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
  while (rc == 0 && in_ns(d, &key)) {
    rc = mdb_cursor_del(cur, 0);
    if (rc == 0) rc = mdb_cursor_get(cur, &key, &val, MDB_GET_CURRENT);
  }
  mdb_cursor_close(cur);
  return rc == 0 || rc == MDB_NOTFOUND || rc == EINVAL ? 0 : po_store_error(rc);
}

static int clear_fn(MDB_txn *txn, void *ud) {
  po_cache_disk *d = ud;
  ns_hdr ns;
  int rc = load_ns(d, txn, &ns);
  if (rc == 0) rc = del_prefix(d, txn, d->entries);
  if (rc == 0) rc = del_prefix(d, txn, d->order);
  if (rc == 0) rc = del_prefix(d, txn, d->expiry);
  if (rc == 0) rc = del_prefix(d, txn, d->vectors);
  if (rc != 0) return rc;
  /* The seqs keep growing, so readers that follow the vectors stay right. */
  ns.count = ns.bytes = 0;
  ns.hand = 0;
  return save_ns(d, txn, &ns);
}

int po_cache_disk_clear(po_cache_disk *d, po_store_durability sync) {
  int rc = po_store_write(d->store, sync, clear_fn, d);
  if (rc == 0) bump_gen(d);
  return rc;
}

int po_cache_disk_size(po_cache_disk *d, uint64_t *count, uint64_t *bytes) {
  MDB_txn *txn;
  int rc = po_store_read_begin(d->store, &txn);
  if (rc != 0) return rc;
  ns_hdr ns;
  rc = load_ns(d, txn, &ns);
  po_store_read_end(d->store, txn);
  *count = ns.count;
  *bytes = ns.bytes;
  return rc;
}

int po_cache_disk_vector_seq(po_cache_disk *d, uint64_t *seq) {
  MDB_txn *txn;
  int rc = po_store_read_begin(d->store, &txn);
  if (rc != 0) return rc;
  ns_hdr ns;
  rc = load_ns(d, txn, &ns);
  po_store_read_end(d->store, txn);
  *seq = ns.next_vseq;
  return rc;
}

int po_cache_disk_vectors(po_cache_disk *d, uint64_t after, po_cache_disk_vector_fn fn, void *ctx, uint64_t *last) {
  MDB_txn *txn;
  int rc = po_store_read_begin(d->store, &txn);
  if (rc != 0) return rc;
  MDB_cursor *cur;
  rc = mdb_cursor_open(txn, d->vectors, &cur);
  if (rc != 0) {
    po_store_read_end(d->store, txn);
    return po_store_error(rc);
  }
  unsigned char k[ORDER_KEY];
  seq_key(d, after + 1, k);
  MDB_val key = {ORDER_KEY, k}, val;
  int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
  rc = 0;
  while (mrc == 0 && in_ns(d, &key) && key.mv_size == ORDER_KEY) {
    uint64_t seq = get_be64((const unsigned char *)key.mv_data + NS_ID);
    rc = fn(ctx, seq, val.mv_data, val.mv_size);
    if (rc != 0) break;
    *last = seq;
    mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  po_store_read_end(d->store, txn);
  if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) rc = po_store_error(mrc);
  return rc;
}

/* ---- inspecting and pruning ---------------------------------------------------- */

enum {
  PRUNE_BATCH = 1024,    /* removals per write transaction, by default */
  PRUNE_SCAN_FACTOR = 16, /* records a transaction reads, per removal it may make */
};

typedef struct ns_list_ctx {
  po_cache_disk_ns_fn fn;
  void *ctx;
  const char *path;
} ns_list_ctx;

/* Opens cache_ns without creating it (po_store_walk lets a read transaction
 * do that), and lists its records. */
static int list_ns(MDB_txn *txn, void *ud) {
  ns_list_ctx *c = ud;
  MDB_dbi dbi;
  int rc = mdb_dbi_open(txn, "cache_ns", 0, &dbi);
  if (rc == MDB_NOTFOUND) return po_store_set_error(PO_ENOENT, "the store in %s holds no cache", c->path);
  if (rc != 0) return po_store_error(rc);
  if (!c->fn) return 0;
  MDB_cursor *cur;
  rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc != 0) return po_store_error(rc);
  MDB_val key, val;
  int mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
  rc = 0;
  while (mrc == 0) {
    if (key.mv_size == NS_ID && val.mv_size >= sizeof(ns_hdr)) {
      rc = c->fn(c->ctx, (const char *)val.mv_data + sizeof(ns_hdr), val.mv_size - sizeof(ns_hdr));
      if (rc != 0) break;
    }
    mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc == 0 && mrc != MDB_NOTFOUND) rc = po_store_error(mrc);
  return rc;
}

int po_cache_disk_namespaces(const char *path, po_cache_disk_ns_fn fn, void *ctx) {
  struct stat st;
  if (stat(path, &st) != 0) return po_store_set_error(PO_ENOENT, "no cache store in %s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return po_store_set_error(PO_ENOENT, "no cache store in %s: not a directory", path);
  /* po_store_open would create a store where there is none. */
  char file[PATH_MAX];
  snprintf(file, sizeof file, "%s/data.mdb", path);
  if (stat(file, &st) != 0) return po_store_set_error(PO_ENOENT, "no cache store in %s: no data.mdb there", path);
  po_store *s;
  int rc = po_store_open(path, NULL, &s);
  if (rc != 0) return rc;
  ns_list_ctx c = {fn, ctx, path};
  rc = po_store_walk(s, list_ns, &c);
  po_store_close(s);
  return rc;
}

/* Calls fn for each record of dbi under d's namespace prefix, in key order,
 * until fn returns non-zero. */
typedef int (*record_fn)(void *ctx, const MDB_val *key, const MDB_val *val);
static int each_record(po_cache_disk *d, MDB_txn *txn, MDB_dbi dbi, record_fn fn, void *ctx) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc != 0) return po_store_error(rc);
  unsigned char k[NS_ID];
  memcpy(k, d->ns_id, NS_ID);
  MDB_val key = {NS_ID, k}, val;
  int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
  rc = 0;
  while (mrc == 0 && in_ns(d, &key) && (rc = fn(ctx, &key, &val)) == 0) mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
  mdb_cursor_close(cur);
  if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) rc = po_store_error(mrc);
  return rc;
}

/* The header of an entry record as a scan finds it. */
static int scanned_hdr(const MDB_val *key, const MDB_val *val, entry_hdr *hdr) {
  if (key->mv_size != ENTRY_KEY || val->mv_size < sizeof *hdr) return PO_ESTORE;
  memcpy(hdr, val->mv_data, sizeof *hdr);
  return hdr->version == RECORD_VERSION && sizeof *hdr + hdr->klen <= val->mv_size ? 0 : PO_ESTORE;
}

typedef struct info_ctx {
  po_cache_disk_info *out;
  double now;
} info_ctx;

static int info_entry(void *ud, const MDB_val *key, const MDB_val *val) {
  info_ctx *c = ud;
  po_cache_disk_info *o = c->out;
  entry_hdr hdr;
  int rc = scanned_hdr(key, val, &hdr);
  if (rc != 0) return rc;
  if (o->entries == 0 || hdr.created < o->oldest) o->oldest = hdr.created;
  if (o->entries == 0 || hdr.created > o->newest) o->newest = hdr.created;
  o->entries++;
  o->bytes += val->mv_size - sizeof hdr;
  if (hdr.expires > 0 && hdr.expires <= c->now) o->expired++;
  return 0;
}

static int info_vector(void *ud, const MDB_val *key, const MDB_val *val) {
  (void)key;
  (void)val;
  ((info_ctx *)ud)->out->vectors++;
  return 0;
}

/* The pages on LMDB's free list (database 0): each record is a list of page
 * numbers whose first word is its length. */
static int free_pages(MDB_txn *txn, uint64_t *pages) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, 0, &cur);
  if (rc != 0) return po_store_error(rc);
  MDB_val key, val;
  *pages = 0;
  while ((rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
    size_t n = 0;
    if (val.mv_size >= sizeof n) memcpy(&n, val.mv_data, sizeof n);
    *pages += n;
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? 0 : po_store_error(rc);
}

int po_cache_disk_info_get(po_cache_disk *d, double now, po_cache_disk_info *out) {
  memset(out, 0, sizeof *out);
  MDB_txn *txn;
  int rc = po_store_read_begin(d->store, &txn);
  if (rc != 0) return rc;
  info_ctx c = {out, now};
  rc = each_record(d, txn, d->entries, info_entry, &c);
  if (rc == 0) rc = each_record(d, txn, d->vectors, info_vector, &c);
  uint64_t freed = 0;
  if (rc == 0) rc = free_pages(txn, &freed);
  if (rc == 0) {
    MDB_env *env = mdb_txn_env(txn);
    MDB_envinfo ei;
    MDB_stat st;
    mdb_env_info(env, &ei);
    mdb_env_stat(env, &st);
    uint64_t pages = (uint64_t)ei.me_last_pgno + 1;
    out->map_size = ei.me_mapsize;
    out->map_used = (pages > freed ? pages - freed : 0) * st.ms_psize;
    out->map_free = freed * st.ms_psize;
  }
  po_store_read_end(d->store, txn);
  return rc;
}

/* An entry's place in the prune order: by write time, then order seq, then
 * namespace (its index among the pruned ones): a total order. */
typedef struct prune_item {
  double created;
  uint64_t seq;
  uint64_t size;
  size_t view;
} prune_item;

static int item_cmp(const void *a, const void *b) {
  const prune_item *x = a, *y = b;
  if (x->created != y->created) return x->created < y->created ? -1 : 1;
  if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
  return x->view < y->view ? -1 : x->view > y->view;
}

typedef struct prune_state {
  po_cache_disk_prune *p;
  po_cache_disk *views; /* the namespaces pruned: copies of d with another ns */
  size_t nviews, view;
  int has_cut;
  prune_item cut;      /* by_bytes: this entry and every one before it go */
  prune_item *items;   /* by_bytes: the entries that survive age and expiry */
  size_t nitems, cap;
  unsigned char resume[ENTRY_KEY]; /* the last key of the view read so far */
  int started;
  po_cache_hash *victims; /* the batch's */
  size_t nvictims, batch;
  /* the batch's results; kept only once its transaction commits */
  unsigned char b_resume[ENTRY_KEY];
  int b_done;
  uint64_t b_removed, b_bytes, b_expired, b_kept, b_kept_bytes;
} prune_state;

/* Whether an entry goes by expiry or age (not by the byte bound). */
static int dated_out(const po_cache_disk_prune *p, const entry_hdr *hdr, int *expired) {
  *expired = hdr->expires > 0 && hdr->expires <= p->now;
  return *expired || (p->by_age && hdr->created < p->now - p->older_than);
}

static int doomed(const prune_state *s, const entry_hdr *hdr, int *expired) {
  if (dated_out(s->p, hdr, expired)) return 1;
  if (!s->has_cut) return 0;
  prune_item it = {hdr->created, hdr->seq, 0, s->view};
  return item_cmp(&it, &s->cut) <= 0;
}

static int collect_item(void *ud, const MDB_val *key, const MDB_val *val) {
  prune_state *s = ud;
  entry_hdr hdr;
  int expired, rc = scanned_hdr(key, val, &hdr);
  if (rc != 0) return rc;
  if (dated_out(s->p, &hdr, &expired)) return 0;
  if (s->nitems == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 1024;
    prune_item *items = realloc(s->items, cap * sizeof *items);
    if (!items) return PO_ENOMEM;
    s->items = items;
    s->cap = cap;
  }
  s->items[s->nitems++] = (prune_item){hdr.created, hdr.seq, val->mv_size - sizeof hdr, s->view};
  return 0;
}

/* by_bytes: finds the newest entry that no longer fits when the newer ones
 * are kept; it and every older one go. */
static int find_cut(prune_state *s) {
  MDB_txn *txn;
  int rc = po_store_read_begin(s->views[0].store, &txn);
  if (rc != 0) return rc;
  for (s->view = 0; rc == 0 && s->view < s->nviews; s->view++)
    rc = each_record(&s->views[s->view], txn, s->views[s->view].entries, collect_item, s);
  po_store_read_end(s->views[0].store, txn);
  if (rc != 0) return rc;
  if (s->nitems) qsort(s->items, s->nitems, sizeof *s->items, item_cmp);
  uint64_t kept = 0;
  for (size_t i = s->nitems; i-- > 0;) {
    if (s->items[i].size > s->p->max_bytes - kept) {
      s->cut = s->items[i];
      s->has_cut = 1;
      break;
    }
    kept += s->items[i].size;
  }
  return 0;
}

/* One batch: reads the view's entries from where the last batch stopped,
 * picks up to s->batch victims, and (unless a dry run) removes them. Runs
 * in a write transaction (or a read one for a dry run); keeps no state
 * across a retry of po_store_write. */
static int prune_batch(MDB_txn *txn, void *ud) {
  prune_state *s = ud;
  po_cache_disk *d = &s->views[s->view];
  s->nvictims = 0;
  s->b_removed = s->b_bytes = s->b_expired = s->b_kept = s->b_kept_bytes = 0;
  s->b_done = 1;
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, d->entries, &cur);
  if (rc != 0) return po_store_error(rc);
  unsigned char k[ENTRY_KEY];
  MDB_val key = {NS_ID, k}, val;
  memcpy(k, d->ns_id, NS_ID);
  if (s->started) {
    memcpy(k, s->resume, ENTRY_KEY);
    key.mv_size = ENTRY_KEY;
  }
  int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
  if (mrc == 0 && s->started && key.mv_size == ENTRY_KEY && memcmp(key.mv_data, s->resume, ENTRY_KEY) == 0)
    mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
  size_t scanned = 0;
  while (rc == 0 && mrc == 0 && in_ns(d, &key)) {
    if (s->nvictims == s->batch || scanned == s->batch * PRUNE_SCAN_FACTOR) {
      s->b_done = 0;
      break;
    }
    scanned++;
    entry_hdr hdr;
    rc = scanned_hdr(&key, &val, &hdr);
    if (rc != 0) break;
    memcpy(s->b_resume, key.mv_data, ENTRY_KEY);
    uint64_t size = val.mv_size - sizeof hdr;
    int expired;
    if (doomed(s, &hdr, &expired)) {
      s->victims[s->nvictims++] = get_hash((const unsigned char *)key.mv_data + NS_ID);
      s->b_removed++;
      s->b_bytes += size;
      s->b_expired += (uint64_t)expired;
    } else {
      s->b_kept++;
      s->b_kept_bytes += size;
    }
    mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) rc = po_store_error(mrc);
  if (rc != 0 || s->p->dry_run || s->nvictims == 0) return rc;
  ns_hdr ns;
  rc = load_ns(d, txn, &ns);
  for (size_t i = 0; rc == 0 && i < s->nvictims; i++) rc = remove_entry(d, txn, &ns, s->victims[i]);
  return rc != 0 ? rc : save_ns(d, txn, &ns);
}

static int run_batch(prune_state *s) {
  po_store *store = s->views[s->view].store;
  /* Unflushed: a crash can only leave entries that were to go; the end flushes. */
  if (!s->p->dry_run) return po_store_write(store, PO_STORE_SYNC_NONE, prune_batch, s);
  MDB_txn *txn;
  int rc = po_store_read_begin(store, &txn);
  if (rc != 0) return rc;
  rc = prune_batch(txn, s);
  po_store_read_end(store, txn);
  return rc;
}

typedef struct views_ctx {
  const po_cache_disk *base;
  po_cache_disk *views;
  size_t n, cap;
} views_ctx;

/* A copy of base that addresses another namespace (same store and handles). */
static int add_view(void *ud, const MDB_val *key, const MDB_val *val) {
  views_ctx *c = ud;
  size_t len = val->mv_size - sizeof(ns_hdr);
  if (key->mv_size != NS_ID || val->mv_size < sizeof(ns_hdr) || len > MAX_NS) return 0;
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 8;
    po_cache_disk *v = realloc(c->views, cap * sizeof *v);
    if (!v) return PO_ENOMEM;
    c->views = v;
    c->cap = cap;
  }
  po_cache_disk *v = &c->views[c->n++];
  *v = *c->base;
  memcpy(v->ns_id, key->mv_data, NS_ID);
  memcpy(v->ns, (const char *)val->mv_data + sizeof(ns_hdr), len);
  v->ns[len] = '\0';
  v->ns_len = len;
  uint64_t slot;
  memcpy(&slot, v->ns_id, sizeof slot);
  v->gen = (uint64_t *)c->base->gen_map + slot % GEN_SLOTS;
  return 0;
}

static int all_views(po_cache_disk *d, views_ctx *c) {
  MDB_txn *txn;
  int rc = po_store_read_begin(d->store, &txn);
  if (rc != 0) return rc;
  MDB_cursor *cur;
  rc = mdb_cursor_open(txn, d->nsdb, &cur);
  if (rc == 0) {
    MDB_val key, val;
    int mrc;
    while ((mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0 && (rc = add_view(c, &key, &val)) == 0) {}
    if (rc == 0 && mrc != MDB_NOTFOUND) rc = po_store_error(mrc);
    mdb_cursor_close(cur);
  } else {
    rc = po_store_error(rc);
  }
  po_store_read_end(d->store, txn);
  return rc;
}

int po_cache_disk_prune_run(po_cache_disk *d, po_cache_disk_prune *p) {
  p->removed = p->removed_bytes = p->expired = p->remaining = p->remaining_bytes = p->transactions = 0;
  if (p->by_age && !(p->older_than >= 0 && p->older_than < 1e300)) return PO_EINVAL;
  prune_state s = {0};
  s.p = p;
  s.batch = p->batch ? p->batch : PRUNE_BATCH;
  views_ctx vc = {d, NULL, 0, 0};
  int rc = 0;
  if (p->all_namespaces) {
    rc = all_views(d, &vc);
  } else {
    vc.views = malloc(sizeof *vc.views);
    if (vc.views) *vc.views = *d;
    vc.n = 1;
    rc = vc.views ? 0 : PO_ENOMEM;
  }
  s.views = vc.views;
  s.nviews = vc.n;
  s.victims = rc == 0 ? malloc(s.batch * sizeof *s.victims) : NULL;
  if (rc == 0 && !s.victims) rc = PO_ENOMEM;
  if (rc == 0 && p->by_bytes && s.nviews) rc = find_cut(&s);
  free(s.items);
  for (s.view = 0; rc == 0 && s.view < s.nviews;) {
    rc = run_batch(&s);
    if (rc != 0) break;
    p->removed += s.b_removed;
    p->removed_bytes += s.b_bytes;
    p->expired += s.b_expired;
    p->remaining += s.b_kept;
    p->remaining_bytes += s.b_kept_bytes;
    if (s.nvictims && !p->dry_run) {
      p->transactions++;
      bump_gen(&s.views[s.view]);
    }
    memcpy(s.resume, s.b_resume, ENTRY_KEY);
    s.started = !s.b_done;
    if (s.b_done) s.view++;
  }
  if (p->transactions) {
    int src = po_store_sync(d->store);
    if (rc == 0) rc = src;
  }
  free(s.victims);
  free(vc.views);
  return rc;
}
