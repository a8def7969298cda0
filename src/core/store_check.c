#include "store_check.h"

#include "error.h"
#include "store.h"
#include "store_meta.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
  MAX_DBS = 32,              /* as many as po_store_open allows */
  RECORDS_PER_TXN = 10000,   /* a record copy commits this often: a write transaction's dirty pages are bounded */
};
#define MIN_MAP ((size_t)256 << 20)
_Static_assert((int)MAX_DBS <= (int)PO_STORE_REPORT_MAX, "a report holds every database a check reads");

static void problem(po_store_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(po_store_report *r, const char *fmt, ...) {
  if (r->nproblems < PO_STORE_REPORT_MAX) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->problems[r->nproblems], sizeof r->problems[0], fmt, ap);
    va_end(ap);
  }
  r->nproblems++;
  r->ok = 0;
}

/* ---- reading every record ---------------------------------------------------- */

typedef struct names {
  char name[MAX_DBS][64];
  int n;
} names;

/* The named databases: the keys of the main tree. */
static int list_names(MDB_txn *txn, names *out, po_store_report *r) {
  MDB_dbi main_db;
  MDB_cursor *cur;
  int rc = mdb_dbi_open(txn, NULL, 0, &main_db);
  if (rc == 0) rc = mdb_cursor_open(txn, main_db, &cur);
  if (rc != 0) return rc;
  MDB_val k, v;
  out->n = 0;
  while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
    if (k.mv_size == 0 || k.mv_size >= sizeof out->name[0] || memchr(k.mv_data, 0, k.mv_size) || out->n == MAX_DBS) {
      problem(r, "the main tree holds a key that names no database of poengine's (%zu bytes)", k.mv_size);
      continue;
    }
    memcpy(out->name[out->n], k.mv_data, k.mv_size);
    out->name[out->n++][k.mv_size] = '\0';
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Reads every record of one database and records its count in r. */
static void read_db(MDB_txn *txn, const char *name, po_store_report *r) {
  po_store_db_report *d = &r->dbs[r->ndbs++]; /* list_names keeps at most MAX_DBS names */
  memset(d, 0, sizeof *d);
  snprintf(d->name, sizeof d->name, "%s", name);
  MDB_dbi dbi;
  MDB_cursor *cur;
  int rc = mdb_dbi_open(txn, name, 0, &dbi);
  if (rc == 0) rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc != 0) {
    d->damaged = 1;
    problem(r, "database %s cannot be opened: %s", name, mdb_strerror(rc));
    return;
  }
  MDB_val k, v;
  while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) d->entries++;
  mdb_cursor_close(cur);
  if (rc != MDB_NOTFOUND) {
    d->damaged = 1;
    problem(r, "database %s: reading stopped after %llu records: %s", name, (unsigned long long)d->entries,
            mdb_strerror(rc));
    return;
  }
  MDB_stat st;
  if (mdb_stat(txn, dbi, &st) == 0 && st.ms_entries != d->entries)
    problem(r, "database %s holds %llu records but its header counts %llu", name, (unsigned long long)d->entries,
            (unsigned long long)st.ms_entries);
}

static int read_all(MDB_txn *txn, void *ud) {
  po_store_report *r = ud;
  names n;
  int rc = list_names(txn, &n, r);
  if (rc != 0) {
    problem(r, "the list of databases cannot be read: %s", mdb_strerror(rc));
    return 0;
  }
  for (int i = 0; i < n.n; i++) read_db(txn, n.name[i], r);
  return 0;
}

static int data_file(const char *dir, const char *name, char *out, size_t cap) {
  return snprintf(out, cap, "%s/%s", dir, name) < (int)cap ? 0 : PO_EINVAL;
}

/* Starts a report: PO_ENOENT when dir holds no data file. */
static int start(const char *dir, po_store_report *r) {
  memset(r, 0, sizeof *r);
  r->ok = 1;
  char file[PATH_MAX];
  struct stat st;
  if (data_file(dir, "data.mdb", file, sizeof file) != 0) return po_store_set_error(PO_EINVAL, "path too long");
  if (stat(file, &st) != 0) return po_store_set_error(PO_ENOENT, "no store in %s", dir);
  r->file_size = (uint64_t)st.st_size;
  return 0;
}

int po_store_check(const char *dir, po_store_report *r) {
  int rc = start(dir, r);
  if (rc != 0) return rc;
  char why[256];
  po_store_meta m;
  if (!po_store_is_open(dir) && po_store_meta_check(dir, &m, why, sizeof why) != 0) {
    problem(r, "%s", why);
    int best = po_store_meta_best(&m);
    if (best >= 0)
      problem(r, "meta page %d is intact: a repair can recover the store as of transaction %llu", best,
              (unsigned long long)m.txnid[best]);
    return 0;
  }
  po_store *s;
  rc = po_store_open(dir, NULL, &s);
  if (rc == PO_ENOMEM) return rc;
  if (rc != 0) {
    problem(r, "%s", po_store_last_error());
    return 0;
  }
  rc = po_store_walk(s, read_all, r);
  if (rc != 0) problem(r, "%s", po_store_last_error());
  po_store_close(s);
  return rc == PO_ENOMEM ? rc : 0;
}

/* ---- repair ---------------------------------------------------------------------- */

static int open_env(const char *dir, unsigned flags, size_t map, MDB_env **out) {
  int rc = mdb_env_create(out);
  if (rc != 0) return rc;
  rc = mdb_env_set_maxdbs(*out, MAX_DBS);
  if (rc == 0) rc = mdb_env_set_mapsize(*out, map);
  if (rc == 0) rc = mdb_env_open(*out, dir, flags | MDB_NOTLS, 0600);
  if (rc != 0) {
    mdb_env_close(*out);
    *out = NULL;
  }
  return rc;
}

/* Whether a process holds the environment open: each holds a shared lock
 * on the first byte of lock.mdb while it does. */
static int in_use(const char *dir) {
  char file[PATH_MAX];
  if (data_file(dir, "lock.mdb", file, sizeof file) != 0) return 0;
  int fd = open(file, O_RDWR | O_CLOEXEC);
  if (fd < 0) return 0;
  struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
  int busy = fcntl(fd, F_GETLK, &lk) == 0 && lk.l_type != F_UNLCK;
  close(fd);
  return busy;
}

/* Copies each database of src into dst record by record, as far as it reads. */
static int copy_db(MDB_txn *stxn, MDB_env *dst, const char *name, po_store_report *r) {
  MDB_dbi sdbi, ddbi;
  unsigned flags = 0;
  int rc = mdb_dbi_open(stxn, name, 0, &sdbi);
  if (rc == 0) rc = mdb_dbi_flags(stxn, sdbi, &flags);
  if (rc != 0) {
    problem(r, "database %s cannot be opened: %s; it was left out", name, mdb_strerror(rc));
    return 0;
  }
  MDB_txn *dtxn;
  MDB_cursor *cur;
  rc = mdb_txn_begin(dst, NULL, 0, &dtxn);
  if (rc != 0) return rc;
  rc = mdb_dbi_open(dtxn, name, MDB_CREATE | (flags & ~(unsigned)MDB_CREATE), &ddbi);
  if (rc == 0) rc = mdb_cursor_open(stxn, sdbi, &cur);
  if (rc != 0) {
    mdb_txn_abort(dtxn);
    return rc;
  }
  MDB_val k, v;
  uint64_t n = 0;
  int mrc = 0;
  while (rc == 0 && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
    rc = mdb_put(dtxn, ddbi, &k, &v, 0);
    if (rc == 0 && ++n % RECORDS_PER_TXN == 0) {
      rc = mdb_txn_commit(dtxn);
      if (rc == 0) rc = mdb_txn_begin(dst, NULL, 0, &dtxn);
      if (rc != 0) dtxn = NULL;
    }
  }
  mdb_cursor_close(cur);
  if (rc == 0 && mrc != MDB_NOTFOUND)
    problem(r, "database %s: %llu records copied, the rest is unreadable: %s", name, (unsigned long long)n,
            mdb_strerror(mrc));
  if (rc == 0) return mdb_txn_commit(dtxn);
  if (dtxn) mdb_txn_abort(dtxn);
  return rc;
}

static int copy_records(MDB_env *src, MDB_env *dst, po_store_report *r) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(src, NULL, MDB_RDONLY, &txn);
  if (rc != 0) return rc;
  names n;
  rc = list_names(txn, &n, r);
  if (rc != 0) {
    problem(r, "the list of databases cannot be read: %s; nothing was copied", mdb_strerror(rc));
    rc = 0;
    n.n = 0;
  }
  for (int i = 0; rc == 0 && i < n.n; i++) rc = copy_db(txn, dst, n.name[i], r);
  mdb_txn_abort(txn);
  return rc;
}

static void remove_env_files(const char *dir) {
  char file[PATH_MAX];
  if (data_file(dir, "data.mdb", file, sizeof file) == 0) unlink(file);
  if (data_file(dir, "lock.mdb", file, sizeof file) == 0) unlink(file);
  rmdir(dir);
}

/* Makes the new data file in fresh from what src holds (nothing: an empty
 * store). LMDB's compacting copy is used only when src read cleanly: it
 * stops at the first bad page, where the record copy goes on with the next
 * database. */
static int copy_out(MDB_env *src, int clean, const char *fresh, size_t map, po_store_report *r) {
  char file[PATH_MAX];
  if (data_file(fresh, "data.mdb", file, sizeof file) != 0) return PO_EINVAL;
  if (mkdir(fresh, 0700) != 0) return po_store_set_error(PO_EIO, "cannot create %s: %s", fresh, strerror(errno));
  if (src && clean && mdb_env_copy2(src, fresh, MDB_CP_COMPACT) == 0) {
    chmod(file, 0600);
    snprintf(r->method, sizeof r->method, "compacting copy");
    return 0;
  }
  unlink(file);
  MDB_env *dst;
  int rc = open_env(fresh, MDB_NOSYNC, map, &dst);
  if (rc != 0) return po_store_error(rc);
  rc = src ? copy_records(src, dst, r) : 0;
  if (rc == 0) rc = mdb_env_sync(dst, 1);
  mdb_env_close(dst);
  snprintf(r->method, sizeof r->method, "%s", src ? "record-by-record copy" : "new empty store");
  return po_store_error(rc);
}

static int counts_of(const char *fresh, size_t map, po_store_report *r) {
  po_store_report counted = {.ok = 1};
  MDB_env *env;
  MDB_txn *txn;
  int rc = open_env(fresh, MDB_RDONLY, map, &env);
  if (rc != 0) return po_store_error(rc);
  rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
  if (rc == 0) {
    read_all(txn, &counted);
    mdb_txn_abort(txn);
  }
  mdb_env_close(env);
  if (rc != 0) return po_store_error(rc);
  if (!counted.ok) return po_store_set_error(PO_ESTORE, "the new store does not read back: %s", counted.problems[0]);
  r->ndbs = counted.ndbs;
  memcpy(r->dbs, counted.dbs, sizeof r->dbs);
  return 0;
}

/* Puts the new data file in place of the old, which is renamed aside. */
static int swap_in(const char *dir, const char *fresh, po_store_report *r) {
  char old[PATH_MAX], made[PATH_MAX], lock[PATH_MAX];
  if (data_file(dir, "data.mdb", old, sizeof old) || data_file(fresh, "data.mdb", made, sizeof made) ||
      data_file(dir, "lock.mdb", lock, sizeof lock))
    return PO_EINVAL;
  if (snprintf(r->moved_to, sizeof r->moved_to, "%s.before-repair-%lld", old, (long long)time(NULL)) >=
      (int)sizeof r->moved_to)
    return po_store_set_error(PO_EINVAL, "path too long: %s", old);
  if (rename(old, r->moved_to) != 0)
    return po_store_set_error(PO_EIO, "cannot move %s aside: %s", old, strerror(errno));
  if (rename(made, old) != 0) {
    int err = errno;
    rename(r->moved_to, old);
    r->moved_to[0] = '\0';
    return po_store_set_error(PO_EIO, "cannot put the new file in place: %s", strerror(err));
  }
  /* The lock file describes the old file's transactions; LMDB makes a new one. */
  unlink(lock);
  return 0;
}

/* Whether LMDB's failure to open a file says the file is damaged; other
 * failures (memory, I/O, permissions, limits) fail the repair, which must
 * not replace a store with an empty one for a cause outside the file. */
static int is_damage(int rc) {
  switch (rc) {
  case ENOMEM:
  case EIO:
  case EACCES:
  case EPERM:
  case EROFS:
  case ENOSPC:
  case EAGAIN:
  case EMFILE:
  case ENFILE:
  case EBUSY: return 0;
  default: return 1;
  }
}

int po_store_repair(const char *dir, po_store_report *r) {
  int rc = start(dir, r);
  if (rc != 0) return rc;
  if (po_store_is_open(dir) || in_use(dir))
    return po_store_set_error(PO_ESTORE, "the store in %s is open (in this or another process): close it first", dir);
  po_store_meta m;
  char why[256], snap[PATH_MAX], fresh[PATH_MAX];
  if (data_file(dir, ".repair-snapshot", snap, sizeof snap) || data_file(dir, ".repair-new", fresh, sizeof fresh))
    return po_store_set_error(PO_EINVAL, "path too long: %s", dir);
  remove_env_files(snap);
  remove_env_files(fresh);
  const char *src_dir = dir;
  rc = po_store_meta_check(dir, &m, why, sizeof why);
  if (rc == PO_EIO) return po_store_set_error(PO_EIO, "%s", why);
  if (rc != 0) {
    problem(r, "%s", why);
    int good = po_store_meta_best(&m);
    src_dir = NULL;
    if (good >= 0) {
      if (po_store_meta_snapshot(dir, snap, &m, good) != 0) {
        remove_env_files(snap);
        return po_store_set_error(PO_EIO, "cannot write the snapshot of meta page %d to %s", good, snap);
      }
      problem(r, "recovered from meta page %d: the store as of transaction %llu", good,
              (unsigned long long)m.txnid[good]);
      src_dir = snap;
    }
  }
  size_t map = r->file_size * 2 > MIN_MAP ? (size_t)r->file_size * 2 : MIN_MAP;
  MDB_env *src = NULL;
  if (src_dir && (rc = open_env(src_dir, MDB_RDONLY, map, &src)) != 0) {
    if (!is_damage(rc)) {
      remove_env_files(snap);
      return po_store_set_error(po_store_error(rc), "LMDB cannot open the store: %s", mdb_strerror(rc));
    }
    problem(r, "LMDB cannot open the store: %s", mdb_strerror(rc));
  }
  int clean = 0;
  if (src) {
    /* A check first: it names the damage, and says whether LMDB's
     * compacting copy can be trusted with this file. */
    po_store_report seen = {.ok = 1};
    MDB_txn *txn;
    if (mdb_txn_begin(src, NULL, MDB_RDONLY, &txn) == 0) {
      read_all(txn, &seen);
      mdb_txn_abort(txn);
      clean = seen.ok;
    }
    for (int i = 0; i < seen.nproblems && i < PO_STORE_REPORT_MAX; i++) problem(r, "%s", seen.problems[i]);
  }
  rc = copy_out(src, clean, fresh, map, r);
  if (src) mdb_env_close(src);
  if (rc == 0) rc = counts_of(fresh, map, r);
  if (rc == 0) rc = swap_in(dir, fresh, r);
  remove_env_files(fresh);
  remove_env_files(snap);
  return rc;
}
