/* Checking a store, and repairing a damaged one by copying out what is
 * readable (for users whose store was hit by a disk fault, a truncation or a
 * stray write; LMDB itself never corrupts a store).
 *
 * A check reads the meta pages (store_meta.h) and then every record of every
 * named database, so each page reachable from the trees is visited once. A
 * repair writes a new, compacted data file beside the old one: with LMDB's
 * own compacting copy where the environment opens and walks cleanly, else
 * record by record, as far as each database reads; when only the older of the
 * two meta pages is intact, from the snapshot it records. The old file is
 * kept, renamed aside. */
#ifndef PO_STORE_CHECK_H
#define PO_STORE_CHECK_H

#include <limits.h>
#include <stdint.h>

enum { PO_STORE_REPORT_MAX = 32 };

typedef struct po_store_db_report {
  char name[64];
  uint64_t entries; /* records read */
  int damaged;      /* reading stopped at an error */
} po_store_db_report;

typedef struct po_store_report {
  int ok; /* no problem found */
  uint64_t file_size;
  int nproblems; /* problems beyond PO_STORE_REPORT_MAX are counted, not kept */
  char problems[PO_STORE_REPORT_MAX][320];
  int ndbs;
  po_store_db_report dbs[PO_STORE_REPORT_MAX];
  /* po_store_repair only */
  char method[64];         /* how the new file was made */
  char moved_to[PATH_MAX]; /* where the old data file now is */
} po_store_report;

/* Checks the store in dir and fills *r (its databases: those of the store
 * as it reads, or none when it cannot be opened). Opens the store the way
 * po_store_open does (sharing this process's handle). Returns 0 when the
 * check ran (r->ok is the verdict), PO_ENOENT when dir holds no store, or
 * another code with po_store_last_error() set. */
int po_store_check(const char *dir, po_store_report *r);

/* Checks the store in dir, writes what is readable into a new compacted data
 * file, moves the old one to data.mdb.before-repair-<unix time> and puts the new
 * one in its place; *r describes the old store's problems, the new store's
 * databases, the method and where the old file went. The store must not be
 * open in this or any other process (PO_ESTORE, nothing touched). A data
 * file that cannot be read, a snapshot that cannot be written, or LMDB
 * failing to open the file for a cause that is not damage (memory, I/O,
 * permissions) fails the repair with nothing touched, rather than putting an
 * empty store in its place. Returns 0, PO_ENOENT, PO_ESTORE, PO_EIO,
 * PO_ENOMEM, or PO_EINVAL when dir's path leaves no room for the repair's
 * own file names (po_store_last_error() says which). */
int po_store_repair(const char *dir, po_store_report *r);

#endif
