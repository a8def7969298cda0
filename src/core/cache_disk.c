#include "cache_disk.h"
#include "cache_disk_internal.h"
#include "cache_record.h"

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

void po_cache_disk_bump_gen(po_cache_disk *d) { __atomic_add_fetch(d->gen, 1, __ATOMIC_ACQ_REL); }

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

int po_cache_disk_load_ns(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns) {
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

int po_cache_disk_save_ns(po_cache_disk *d, MDB_txn *txn, const ns_hdr *ns) {
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
  /* A damaged record says so: ESTORE alone would carry whatever the store
   * last failed at, or nothing. */
  if (val->mv_size < sizeof *hdr)
    return po_store_set_error(PO_ESTORE, "a cache entry record is %zu bytes, shorter than its header", val->mv_size);
  memcpy(hdr, val->mv_data, sizeof *hdr);
  if (hdr->version != RECORD_VERSION)
    return po_store_set_error(PO_ESTORE, "a cache entry record has version %u, not %u", (unsigned)hdr->version,
                              (unsigned)RECORD_VERSION);
  if (sizeof *hdr + hdr->klen > val->mv_size)
    return po_store_set_error(PO_ESTORE, "a cache entry record is cut short inside its key");
  return 0;
}

static int key_matches(const entry_hdr *hdr, const MDB_val *val, const void *key, size_t klen) {
  return !key || (hdr->klen == klen && memcmp((const char *)val->mv_data + sizeof *hdr, key, klen) == 0);
}

/* Removes h's record and everything that points at it. */
int po_cache_disk_remove_entry(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns, po_cache_hash h) {
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

/* Drops up to EXPIRE_PER_WRITE entries whose time has passed, and any
 * expiry key met whose entry is gone (left by damage: kept, it would come
 * first at every write and use up its turns). */
static int drop_expired(po_cache_disk *d, MDB_txn *txn, ns_hdr *ns, double now, uint64_t *dropped) {
  unsigned char victims[EXPIRE_PER_WRITE][EXPIRY_KEY];
  int n = 0;
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, d->expiry, &cur);
  if (rc != 0) return po_store_error(rc);
  unsigned char k[NS_ID];
  memcpy(k, d->ns_id, NS_ID);
  MDB_val key = {NS_ID, k}, val;
  uint64_t now_ms = expiry_ms(now);
  rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
  while (rc == 0 && n < EXPIRE_PER_WRITE && po_cache_disk_in_ns(d, &key) && key.mv_size == EXPIRY_KEY &&
         get_be64((const unsigned char *)key.mv_data + NS_ID) < now_ms) {
    memcpy(victims[n++], key.mv_data, EXPIRY_KEY);
    rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) return po_store_error(rc);
  for (int i = 0; i < n; i++) {
    rc = po_cache_disk_remove_entry(d, txn, ns, po_cache_disk_get_hash(victims[i] + NS_ID + 8));
    if (rc == PO_ENOENT) rc = del(txn, d->expiry, victims[i], EXPIRY_KEY);
    else if (rc == 0) (*dropped)++;
    if (rc != 0) return rc;
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
    if (rc == MDB_NOTFOUND || (rc == 0 && !po_cache_disk_in_ns(d, &key))) {
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
    po_cache_hash h = po_cache_disk_get_hash(v);
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
  while (rc == 0 && po_cache_disk_in_ns(d, &key)) {
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
    if (rc == 0) rc = po_cache_disk_remove_entry(d, txn, ns, victim);
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
  int rc = po_cache_disk_load_ns(d, txn, &ns);
  for (size_t i = 0; rc == 0 && i < w->ntouched; i++) rc = touch(d, txn, &ns, w->policy, w->touched[i], &p->tmp);
  if (rc == 0) rc = drop_expired(d, txn, &ns, p->created, &w->expired);
  if (rc == 0) {
    rc = po_cache_disk_remove_entry(d, txn, &ns, p->h);
    w->replaced = rc == 0;
    if (rc == PO_ENOENT) rc = 0;
  }
  if (rc != 0) return rc;

  entry_hdr hdr;
  po_cache_record_header(&hdr, p->flags, p->klen, ++ns.next_seq, p->created, p->expires);
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
  return rc != 0 ? rc : po_cache_disk_save_ns(d, txn, &ns);
}

int po_cache_disk_put(po_cache_disk *d, po_cache_disk_write *w, po_cache_hash h, const void *key, size_t klen,
                      const void *value, size_t vlen, unsigned flags, double created, double expires,
                      const po_cache_disk_vector *vec) {
  if (klen > UINT32_MAX) return PO_EINVAL;
  put_ctx p = {d, w, h, key, value, klen, vlen, flags, created, expires, vec, {0}};
  int rc = po_store_write(d->store, w->sync, put_fn, &p);
  po_strbuf_free(&p.tmp);
  if (rc == 0 && w->replaced) po_cache_disk_bump_gen(d);
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
  rc = po_cache_disk_load_ns(c->d, txn, &ns);
  if (rc == 0) rc = po_cache_disk_remove_entry(c->d, txn, &ns, c->h);
  if (rc == 0) rc = po_cache_disk_save_ns(c->d, txn, &ns);
  return rc;
}

int po_cache_disk_delete(po_cache_disk *d, po_store_durability sync, po_cache_hash h, const void *key,
                         size_t klen) {
  del_ctx c = {d, h, key, klen, 0};
  int rc = po_store_write(d->store, sync, del_fn, &c);
  if (rc == 0) po_cache_disk_bump_gen(d);
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
  while (rc == 0 && po_cache_disk_in_ns(d, &key)) {
    rc = mdb_cursor_del(cur, 0);
    if (rc == 0) rc = mdb_cursor_get(cur, &key, &val, MDB_GET_CURRENT);
  }
  mdb_cursor_close(cur);
  return rc == 0 || rc == MDB_NOTFOUND || rc == EINVAL ? 0 : po_store_error(rc);
}

static int clear_fn(MDB_txn *txn, void *ud) {
  po_cache_disk *d = ud;
  ns_hdr ns;
  int rc = po_cache_disk_load_ns(d, txn, &ns);
  if (rc == 0) rc = del_prefix(d, txn, d->entries);
  if (rc == 0) rc = del_prefix(d, txn, d->order);
  if (rc == 0) rc = del_prefix(d, txn, d->expiry);
  if (rc == 0) rc = del_prefix(d, txn, d->vectors);
  if (rc != 0) return rc;
  /* The seqs keep growing, so readers that follow the vectors stay right. */
  ns.count = ns.bytes = 0;
  ns.hand = 0;
  return po_cache_disk_save_ns(d, txn, &ns);
}

int po_cache_disk_clear(po_cache_disk *d, po_store_durability sync) {
  int rc = po_store_write(d->store, sync, clear_fn, d);
  if (rc == 0) po_cache_disk_bump_gen(d);
  return rc;
}

int po_cache_disk_size(po_cache_disk *d, uint64_t *count, uint64_t *bytes) {
  MDB_txn *txn;
  int rc = po_store_read_begin(d->store, &txn);
  if (rc != 0) return rc;
  ns_hdr ns;
  rc = po_cache_disk_load_ns(d, txn, &ns);
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
  rc = po_cache_disk_load_ns(d, txn, &ns);
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
  while (mrc == 0 && po_cache_disk_in_ns(d, &key) && key.mv_size == ORDER_KEY) {
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
