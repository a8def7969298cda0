#include "store.h"

#include "error.h"
#include "store_meta.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
  MAX_DBS = 32,
  MAX_READERS = 512,
  /* Another process growing the map makes a transaction ask us to adopt its
   * size; a few growths can race one begin, many cannot: beyond this the
   * map size recorded in the store is itself wrong. */
  RESIZE_TRIES = 8,
};
#define INITIAL_MAP_SIZE ((size_t)256 << 20)
#define MAX_MAP_SIZE ((size_t)1 << 40)

typedef struct named_dbi {
  char name[64];
  MDB_dbi dbi;
} named_dbi;

struct po_store {
  po_store *next; /* in the process-wide list of open stores */
  dev_t dev;
  ino_t ino;
  int refs; /* guarded by stores_lock */
  char path[PATH_MAX];
  MDB_env *env;
  /* Transactions hold it shared; growing the map holds it exclusively,
   * since LMDB resizes only with no transaction active in the process. */
  pthread_rwlock_t resize_lock;
  pthread_mutex_t dbi_lock;
  named_dbi dbis[MAX_DBS];
  int ndbis;
};

static pthread_mutex_t stores_lock = PTHREAD_MUTEX_INITIALIZER;
static po_store *stores;

static _Thread_local char last_error[PATH_MAX + 512];

const char *po_store_last_error(void) { return last_error; }

static void set_error(const char *fmt, const char *a, const char *b) {
  snprintf(last_error, sizeof last_error, fmt, a, b);
}

int po_store_set_error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return code;
}

int po_store_error(int rc) {
  if (rc == 0) return 0;
  set_error("%s%s", mdb_strerror(rc), "");
  switch (rc) {
  case MDB_MAP_FULL: return PO_EMAPFULL;
  case ENOMEM: return PO_ENOMEM;
  case EACCES:
  case EPERM:
  case EROFS: return PO_EPERM;
  default: return PO_ESTORE;
  }
}

int po_store_default_dir(char *buf, size_t cap) {
  const char *home = getenv("POENGINE_HOME");
  const char *xdg = getenv("XDG_CACHE_HOME");
  const char *user = getenv("HOME");
  int n;
  if (home && *home)
    n = snprintf(buf, cap, "%s", home);
  else if (xdg && *xdg)
    n = snprintf(buf, cap, "%s/poengine", xdg);
  else if (user && *user)
    n = snprintf(buf, cap, "%s/.cache/poengine", user);
  else
    return PO_EINVAL;
  return n < 0 || (size_t)n >= cap ? PO_EINVAL : 0;
}

/* mkdir -p with mode 0700 for every directory it creates. */
static int make_dirs(const char *dir) {
  char path[PATH_MAX];
  size_t len = strlen(dir);
  if (len == 0 || len >= sizeof path) return PO_EINVAL;
  memcpy(path, dir, len + 1);
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return errno == ENOMEM ? PO_ENOMEM : PO_EPERM;
    *p = '/';
  }
  if (mkdir(path, 0700) != 0 && errno != EEXIST) return PO_EPERM;
  return 0;
}

static void lock_shared(po_store *s) { pthread_rwlock_rdlock(&s->resize_lock); }
static void unlock(po_store *s) { pthread_rwlock_unlock(&s->resize_lock); }

/* Adopts a map size another process set (new_size 0) or grows ours. */
static int resize_map(po_store *s, size_t new_size) {
  pthread_rwlock_wrlock(&s->resize_lock);
  int rc = mdb_env_set_mapsize(s->env, new_size);
  pthread_rwlock_unlock(&s->resize_lock);
  return rc;
}

static size_t map_size(po_store *s) {
  MDB_envinfo info;
  mdb_env_info(s->env, &info);
  return info.me_mapsize;
}

static int begin(po_store *s, unsigned flags, MDB_txn **txn) {
  for (int tries = 0;; tries++) {
    lock_shared(s);
    int rc = mdb_txn_begin(s->env, NULL, flags, txn);
    if (rc == 0) return 0;
    unlock(s);
    if (rc != MDB_MAP_RESIZED) return po_store_error(rc);
    if (tries == RESIZE_TRIES) {
      set_error("the store in %s asks for a map larger than it can have: it is damaged (see poengine store check)%s",
                s->path, "");
      return PO_ESTORE;
    }
    rc = resize_map(s, 0);
    if (rc != 0) return po_store_error(rc);
  }
}

int po_store_read_begin(po_store *s, MDB_txn **out) { return begin(s, MDB_RDONLY, out); }

void po_store_read_end(po_store *s, MDB_txn *txn) {
  mdb_txn_abort(txn);
  unlock(s);
}

int po_store_write(po_store *s, po_store_durability sync, po_store_write_fn fn, void *ctx) {
  for (;;) {
    MDB_txn *txn;
    int rc = begin(s, 0, &txn);
    if (rc != 0) return rc;
    /* The sync flag is read only by the committing writer, and only one
     * writer exists at a time: setting it inside the write transaction
     * lets each caller choose its own durability on a shared environment. */
    mdb_env_set_flags(s->env, MDB_NOSYNC, sync != PO_STORE_SYNC_FULL);
    rc = fn(txn, ctx);
    int full = rc == PO_EMAPFULL;
    if (rc != 0) {
      mdb_txn_abort(txn);
      unlock(s);
      if (!full) return rc;
    } else {
      int mrc = mdb_txn_commit(txn);
      unlock(s);
      if (mrc == 0) return 0;
      if (mrc != MDB_MAP_FULL) return po_store_error(mrc);
    }
    size_t size = map_size(s);
    if (size >= MAX_MAP_SIZE) {
      set_error("the store's map reached its limit of %s%s", "1 TiB", "");
      return PO_EMAPFULL;
    }
    rc = resize_map(s, size * 2);
    if (rc != 0) return po_store_error(rc);
  }
}

int po_store_sync(po_store *s) {
  lock_shared(s);
  int rc = mdb_env_sync(s->env, 1);
  unlock(s);
  return po_store_error(rc);
}

const char *po_store_path(const po_store *s) { return s->path; }

int po_store_is_open(const char *dir) {
  struct stat st;
  if (stat(dir, &st) != 0) return 0;
  int found = 0;
  pthread_mutex_lock(&stores_lock);
  for (po_store *s = stores; s && !found; s = s->next) found = s->dev == st.st_dev && s->ino == st.st_ino;
  pthread_mutex_unlock(&stores_lock);
  return found;
}

int po_store_dbi(po_store *s, const char *name, unsigned flags, MDB_dbi *out) {
  if (strlen(name) >= sizeof s->dbis[0].name) return PO_EINVAL;
  pthread_mutex_lock(&s->dbi_lock);
  for (int i = 0; i < s->ndbis; i++) {
    if (strcmp(s->dbis[i].name, name) == 0) {
      *out = s->dbis[i].dbi;
      pthread_mutex_unlock(&s->dbi_lock);
      return 0;
    }
  }
  int rc = PO_EINVAL;
  if (s->ndbis < MAX_DBS) {
    /* A DBI opened in a write transaction becomes visible to every
     * transaction once that one commits. */
    MDB_txn *txn;
    rc = begin(s, 0, &txn);
    if (rc == 0) {
      MDB_dbi dbi;
      int mrc = mdb_dbi_open(txn, name, MDB_CREATE | flags, &dbi);
      if (mrc == 0) mrc = mdb_txn_commit(txn);
      else mdb_txn_abort(txn);
      unlock(s);
      rc = po_store_error(mrc);
      if (rc == 0) {
        snprintf(s->dbis[s->ndbis].name, sizeof s->dbis[0].name, "%s", name);
        s->dbis[s->ndbis++].dbi = dbi;
        *out = dbi;
      }
    }
  }
  pthread_mutex_unlock(&s->dbi_lock);
  return rc;
}

int po_store_walk(po_store *s, po_store_write_fn fn, void *ctx) {
  /* mdb_dbi_open must not run in two transactions of a process at once. */
  pthread_mutex_lock(&s->dbi_lock);
  MDB_txn *txn;
  int rc = begin(s, MDB_RDONLY, &txn);
  if (rc == 0) {
    rc = fn(txn, ctx);
    po_store_read_end(s, txn);
  }
  pthread_mutex_unlock(&s->dbi_lock);
  return rc;
}

typedef struct schema_ctx {
  MDB_dbi meta;
  int found_newer;
  uint32_t found;
} schema_ctx;

static int check_schema(MDB_txn *txn, void *ud) {
  schema_ctx *c = ud;
  MDB_val key = {6, "schema"}, val;
  int rc = mdb_get(txn, c->meta, &key, &val);
  if (rc == 0) {
    uint32_t v = 0;
    if (val.mv_size == sizeof v) memcpy(&v, val.mv_data, sizeof v);
    c->found = v;
    if (v > PO_STORE_SCHEMA) {
      c->found_newer = 1;
      return PO_ESCHEMA; /* aborts: nothing is written */
    }
    return 0;
  }
  if (rc != MDB_NOTFOUND) return po_store_error(rc);
  uint32_t v = PO_STORE_SCHEMA;
  val.mv_size = sizeof v;
  val.mv_data = &v;
  return po_store_error(mdb_put(txn, c->meta, &key, &val, 0));
}

static int open_env(po_store *s, size_t initial) {
  /* A file that cannot be read is left to LMDB, which names the cause. */
  char why[256];
  if (po_store_meta_check(s->path, NULL, why, sizeof why) == PO_ESTORE) {
    set_error("cannot open the store in %s: %s (see poengine store check)", s->path, why);
    return PO_ESTORE;
  }
  int rc = mdb_env_create(&s->env);
  if (rc == 0) rc = mdb_env_set_maxdbs(s->env, MAX_DBS);
  if (rc == 0) rc = mdb_env_set_maxreaders(s->env, MAX_READERS);
  if (rc == 0) rc = mdb_env_set_mapsize(s->env, initial);
  /* MDB_NOTLS: read transactions are not tied to threads, so Lua states on
   * the worker pool and the main thread can each hold their own. */
  if (rc == 0) rc = mdb_env_open(s->env, s->path, MDB_NOTLS | MDB_NOSYNC, 0600);
  if (rc != 0) {
    int code = po_store_error(rc);
    set_error("cannot open the store in %s: %s", s->path, mdb_strerror(rc));
    return code;
  }
  int dead;
  mdb_reader_check(s->env, &dead); /* readers left by killed processes */
  /* The map may have been grown by another process. */
  mdb_env_set_mapsize(s->env, 0);
  if (map_size(s) < initial) mdb_env_set_mapsize(s->env, initial);
  return 0;
}

static void free_store(po_store *s) {
  if (s->env) mdb_env_close(s->env);
  pthread_rwlock_destroy(&s->resize_lock);
  pthread_mutex_destroy(&s->dbi_lock);
  free(s);
}

int po_store_open(const char *dir, const po_store_options *opts, po_store **out) {
  if (!dir || !*dir || !out) return PO_EINVAL;
  int rc = make_dirs(dir);
  if (rc != 0) {
    set_error("cannot create the store directory %s: %s", dir, strerror(errno));
    return rc;
  }
  char real[PATH_MAX];
  struct stat st;
  if (!realpath(dir, real) || stat(real, &st) != 0) {
    set_error("cannot open the store directory %s: %s", dir, strerror(errno));
    return PO_EPERM;
  }
  if (access(real, W_OK | X_OK) != 0) {
    set_error("the store directory %s is not writable: %s", real, strerror(errno));
    return PO_EPERM;
  }

  pthread_mutex_lock(&stores_lock);
  for (po_store *s = stores; s; s = s->next) {
    if (s->dev == st.st_dev && s->ino == st.st_ino) {
      s->refs++;
      pthread_mutex_unlock(&stores_lock);
      *out = s;
      return 0;
    }
  }
  po_store *s = calloc(1, sizeof *s);
  if (!s) {
    pthread_mutex_unlock(&stores_lock);
    return PO_ENOMEM;
  }
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  s->refs = 1;
  snprintf(s->path, sizeof s->path, "%s", real);
  pthread_rwlock_init(&s->resize_lock, NULL);
  pthread_mutex_init(&s->dbi_lock, NULL);
  rc = open_env(s, opts && opts->initial_map_size ? opts->initial_map_size : INITIAL_MAP_SIZE);
  if (rc == 0) {
    schema_ctx ctx = {0};
    rc = po_store_dbi(s, "meta", 0, &ctx.meta);
    if (rc == 0) rc = po_store_write(s, PO_STORE_SYNC_FULL, check_schema, &ctx);
    if (rc == PO_ESCHEMA) {
      char found[16], mine[16];
      snprintf(found, sizeof found, "%u", ctx.found);
      snprintf(mine, sizeof mine, "%d", PO_STORE_SCHEMA);
      snprintf(last_error, sizeof last_error,
               "the store in %s has schema version %s, newer than this poengine's %s; it was left untouched",
               s->path, found, mine);
    }
  }
  if (rc != 0) {
    pthread_mutex_unlock(&stores_lock);
    free_store(s);
    return rc;
  }
  s->next = stores;
  stores = s;
  pthread_mutex_unlock(&stores_lock);
  *out = s;
  return 0;
}

void po_store_close(po_store *s) {
  if (!s) return;
  pthread_mutex_lock(&stores_lock);
  if (--s->refs > 0) {
    pthread_mutex_unlock(&stores_lock);
    return;
  }
  for (po_store **p = &stores; *p; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
  pthread_mutex_unlock(&stores_lock);
  mdb_env_sync(s->env, 1); /* what batch and none left unflushed */
  free_store(s);
}
