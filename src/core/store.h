/* The persistent store: one LMDB environment per directory, holding named
 * databases (cache entries, vectors, cycles …) and a "meta" database with
 * the schema version.
 *
 * A directory is opened once per process, whoever asks (the cache and the
 * metrics collector share it): LMDB forbids opening one environment twice in
 * a process, so po_store_open hands out references to a shared handle.
 * Several processes may use one directory at once (LMDB's model). The
 * directory is created 0700 and its files 0600. A process killed at any
 * instant loses no committed transaction and never corrupts the store.
 *
 * The map grows by itself: a write that finds it full is retried after the
 * map doubles, and a map grown by another process is adopted. */
#ifndef PO_STORE_H
#define PO_STORE_H

#include <lmdb.h>
#include <stddef.h>

/* The version of the record layouts this build writes. A store whose meta
 * database names a higher version is refused with PO_ESCHEMA. */
#define PO_STORE_SCHEMA 1

typedef struct po_store po_store;

/* How a write transaction reaches the disk. */
typedef enum po_store_durability {
  PO_STORE_SYNC_FULL,  /* flushed before the commit returns: survives power loss */
  PO_STORE_SYNC_BATCH, /* not flushed; the caller calls po_store_sync now and then */
  PO_STORE_SYNC_NONE,  /* left to the OS; survives a process crash, not power loss */
} po_store_durability;

/* Writes the default store directory into buf: $POENGINE_HOME, else
 * $XDG_CACHE_HOME/poengine, else $HOME/.cache/poengine. PO_EINVAL if none of
 * the variables is set or buf is too small. */
int po_store_default_dir(char *buf, size_t cap);

/* Options for po_store_open; zero means the default. */
typedef struct po_store_options {
  size_t initial_map_size; /* bytes of address space reserved at first (default 256 MiB) */
} po_store_options;

/* Opens the store in dir, creating the directory (and missing parents, mode
 * 0700) and the environment if needed, and takes a reference. opts may be
 * NULL; it matters only to the first opener in the process. Returns 0,
 * PO_EPERM (dir cannot be created or written), PO_ESCHEMA (a newer schema;
 * nothing is written), PO_ENOMEM or PO_ESTORE; *out is set only on success.
 * On failure, po_store_last_error() describes the cause. A damaged data
 * file (meta pages that claim more than the file holds, see store_meta.h)
 * is refused with PO_ESTORE before LMDB maps it: no open hangs or crashes.
 */
int po_store_open(const char *dir, const po_store_options *opts, po_store **out);

/* Drops a reference; the environment closes with the last one. NULL is
 * accepted. */
void po_store_close(po_store *s);

/* Whether this process holds the store in dir open (1) or not (0). */
int po_store_is_open(const char *dir);

/* The canonical path of the store's directory. Owned by the store. */
const char *po_store_path(const po_store *s);

/* Opens (creating) the named database and returns its handle, valid until
 * the store closes. flags: extra mdb_dbi_open flags (e.g. MDB_INTEGERKEY). */
int po_store_dbi(po_store *s, const char *name, unsigned flags, MDB_dbi *out);

/* Runs fn(txn, ctx) in a write transaction and commits it. If fn returns
 * non-zero, the transaction is aborted and that value returned. If the map
 * is full (in fn or at commit), the transaction is aborted, the map doubled
 * and fn called again from the start: fn must not keep state between calls
 * apart from what it writes. Returns 0, fn's code, PO_EMAPFULL or
 * PO_ESTORE. */
typedef int (*po_store_write_fn)(MDB_txn *txn, void *ctx);
int po_store_write(po_store *s, po_store_durability sync, po_store_write_fn fn, void *ctx);

/* Begins a read-only transaction (any thread; several at once). End it with
 * po_store_read_end. Values read are valid only until then: copy them out. */
int po_store_read_begin(po_store *s, MDB_txn **out);
void po_store_read_end(po_store *s, MDB_txn *txn);

/* Runs fn(txn, ctx) in a read-only transaction in which fn may open named
 * databases with mdb_dbi_open (without MDB_CREATE); those it opens are
 * closed again when the transaction ends. Returns fn's code or a failure to
 * begin. */
int po_store_walk(po_store *s, po_store_write_fn fn, void *ctx);

/* Flushes everything committed so far to disk. */
int po_store_sync(po_store *s);

/* Text of the last failure on this thread (an LMDB or system message);
 * never NULL. */
const char *po_store_last_error(void);

/* Sets the text po_store_last_error() returns (printf-style) and returns
 * code: for modules built on the store that report their own failures. */
int po_store_set_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Maps an LMDB return code to a PO_E... code, recording its text. */
int po_store_error(int mdb_rc);

#endif
