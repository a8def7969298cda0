#include "reclog.h"

#include "error.h"

#include <string.h>

int po_reclog_open(po_store *s, const char *name, po_reclog *out) {
  if (!name || !*name) return PO_EINVAL;
  MDB_dbi dbi;
  int rc = po_store_dbi(s, name, MDB_INTEGERKEY, &dbi);
  if (rc != 0) return rc;
  out->store = s;
  out->dbi = dbi;
  return 0;
}

/* Deletes entries from the oldest while more than max remain. */
static int trim_txn(MDB_txn *txn, MDB_dbi dbi, uint64_t max, uint64_t *removed) {
  MDB_stat st;
  int rc = mdb_stat(txn, dbi, &st);
  if (rc != 0) return po_store_error(rc);
  *removed = 0;
  if (st.ms_entries <= max) return 0;
  size_t excess = st.ms_entries - (size_t)max;
  MDB_cursor *cur;
  if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0) return po_store_error(rc);
  MDB_val k, v;
  for (size_t i = 0; i < excess && rc == 0; i++) {
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0) rc = mdb_cursor_del(cur, 0);
    if (rc == 0) ++*removed;
  }
  mdb_cursor_close(cur);
  return po_store_error(rc);
}

typedef struct append_ctx {
  MDB_dbi dbi;
  const void *data;
  size_t len;
  uint64_t max, key, trimmed;
} append_ctx;

static int append_txn(MDB_txn *txn, void *ud) {
  append_ctx *c = ud;
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, c->dbi, &cur);
  if (rc != 0) return po_store_error(rc);
  MDB_val k, v;
  rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
  size_t last = 0;
  if (rc == 0 && k.mv_size == sizeof last) memcpy(&last, k.mv_data, sizeof last);
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) return po_store_error(rc);
  size_t key = last + 1;
  k.mv_size = sizeof key;
  k.mv_data = &key;
  v.mv_size = c->len;
  v.mv_data = (void *)c->data;
  rc = mdb_put(txn, c->dbi, &k, &v, MDB_APPEND);
  if (rc != 0) return po_store_error(rc);
  c->key = key;
  c->trimmed = 0;
  return c->max ? trim_txn(txn, c->dbi, c->max, &c->trimmed) : 0;
}

int po_reclog_append(po_reclog *log, const void *data, size_t len, po_store_durability sync, uint64_t max_entries,
                     uint64_t *key, uint64_t *trimmed) {
  append_ctx c = {log->dbi, data, len, max_entries, 0, 0};
  int rc = po_store_write(log->store, sync, append_txn, &c);
  if (rc != 0) return rc;
  if (key) *key = c.key;
  if (trimmed) *trimmed = c.trimmed;
  return 0;
}

int po_reclog_count(po_reclog *log, uint64_t *out) {
  MDB_txn *txn;
  int rc = po_store_read_begin(log->store, &txn);
  if (rc != 0) return rc;
  MDB_stat st;
  rc = mdb_stat(txn, log->dbi, &st);
  po_store_read_end(log->store, txn);
  if (rc != 0) return po_store_error(rc);
  *out = st.ms_entries;
  return 0;
}

/* Positions the cursor on the first entry to visit: the first key above
 * after (scan), or the n-th newest (tail). MDB_NOTFOUND when there is none. */
static int position(MDB_cursor *cur, MDB_val *k, int tail, uint64_t after, size_t n) {
  MDB_val v;
  if (!tail) {
    if (after == UINT64_MAX) return MDB_NOTFOUND;
    size_t from = (size_t)after + 1;
    k->mv_size = sizeof from;
    k->mv_data = &from;
    return mdb_cursor_get(cur, k, &v, MDB_SET_RANGE);
  }
  int rc = mdb_cursor_get(cur, k, &v, MDB_LAST);
  for (size_t i = 1; i < n && rc == 0; i++) {
    rc = mdb_cursor_get(cur, k, &v, MDB_PREV);
    if (rc == MDB_NOTFOUND) return mdb_cursor_get(cur, k, &v, MDB_FIRST); /* fewer than n */
  }
  return rc;
}

static int read_entries(po_reclog *log, int tail, uint64_t after, size_t n, po_reclog_visit_fn fn, void *ctx) {
  if (n == 0) return 0;
  MDB_txn *txn;
  int rc = po_store_read_begin(log->store, &txn);
  if (rc != 0) return rc;
  MDB_cursor *cur;
  rc = po_store_error(mdb_cursor_open(txn, log->dbi, &cur));
  if (rc == 0) {
    MDB_val k, v;
    int mrc = position(cur, &k, tail, after, n);
    for (size_t i = 0; i < n && mrc == 0 && rc == 0; i++) {
      mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
      size_t key = 0;
      if (mrc == 0 && k.mv_size == sizeof key) memcpy(&key, k.mv_data, sizeof key);
      if (mrc == 0) rc = fn(key, v.mv_data, v.mv_size, ctx);
      if (mrc == 0 && rc == 0) mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != MDB_NOTFOUND) rc = po_store_error(mrc);
    mdb_cursor_close(cur);
  }
  po_store_read_end(log->store, txn);
  return rc;
}

int po_reclog_scan(po_reclog *log, uint64_t after, size_t limit, po_reclog_visit_fn fn, void *ctx) {
  return read_entries(log, 0, after, limit, fn, ctx);
}

int po_reclog_tail(po_reclog *log, size_t n, po_reclog_visit_fn fn, void *ctx) {
  return read_entries(log, 1, 0, n, fn, ctx);
}

typedef struct trim_ctx {
  MDB_dbi dbi;
  uint64_t max, removed;
  int clear;
} trim_ctx;

static int trim_or_clear_txn(MDB_txn *txn, void *ud) {
  trim_ctx *c = ud;
  if (c->clear) return po_store_error(mdb_drop(txn, c->dbi, 0));
  return trim_txn(txn, c->dbi, c->max, &c->removed);
}

int po_reclog_trim(po_reclog *log, uint64_t max_entries, po_store_durability sync, uint64_t *removed) {
  trim_ctx c = {log->dbi, max_entries, 0, 0};
  int rc = po_store_write(log->store, sync, trim_or_clear_txn, &c);
  if (rc == 0 && removed) *removed = c.removed;
  return rc;
}

int po_reclog_clear(po_reclog *log, po_store_durability sync) {
  trim_ctx c = {log->dbi, 0, 0, 1};
  return po_store_write(log->store, sync, trim_or_clear_txn, &c);
}
