/* Inspecting and pruning a cache store (cache_disk.h, second half): what
 * `poengine cache` stands on. Works on the records cache_disk.c writes
 * (cache_disk_internal.h), through the same helpers for removing an entry. */
#include "cache_disk_internal.h"

#include "error.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
  while (mrc == 0 && po_cache_disk_in_ns(d, &key) && (rc = fn(ctx, &key, &val)) == 0)
    mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
  mdb_cursor_close(cur);
  if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) rc = po_store_error(mrc);
  return rc;
}

/* The header of an entry record as a scan finds it. */
static int scanned_hdr(const MDB_val *key, const MDB_val *val, entry_hdr *hdr) {
  if (key->mv_size == ENTRY_KEY && val->mv_size >= sizeof *hdr) {
    memcpy(hdr, val->mv_data, sizeof *hdr);
    if (hdr->version == RECORD_VERSION && sizeof *hdr + hdr->klen <= val->mv_size) return 0;
  }
  return po_store_set_error(PO_ESTORE, "a cache entry record is damaged (see poengine store check)");
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
  if (s->p->max_bytes == 0) { /* everything goes: nothing to list */
    s->cut = (prune_item){INFINITY, UINT64_MAX, UINT64_MAX, SIZE_MAX};
    s->has_cut = 1;
    return 0;
  }
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
  while (rc == 0 && mrc == 0 && po_cache_disk_in_ns(d, &key)) {
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
      s->victims[s->nvictims++] = po_cache_disk_get_hash((const unsigned char *)key.mv_data + NS_ID);
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
  rc = po_cache_disk_load_ns(d, txn, &ns);
  for (size_t i = 0; rc == 0 && i < s->nvictims; i++) rc = po_cache_disk_remove_entry(d, txn, &ns, s->victims[i]);
  return rc != 0 ? rc : po_cache_disk_save_ns(d, txn, &ns);
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
      po_cache_disk_bump_gen(&s.views[s.view]);
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
