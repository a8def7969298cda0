/* Fault injection for C tests, as a build-time hook: a test named
 * tests/c/test_*_fault.c is linked with fault.c and -Wl,--wrap for the
 * functions below, so every call the core (and the bindings) make to them
 * goes through here and the Nth one can be made to fail. The test binary
 * alone is affected; poengine never links this.
 *
 * Names: "malloc" (counts malloc, calloc, realloc, strdup, strndup and
 * posix_memalign together, as an allocation failure is the same event for
 * the caller), "write", "read", "open" (open, open64, openat64), "rename",
 * "mkdir" (mkdir and mkdirat), "close" (the descriptor is closed all the
 * same, as Linux does), "fsync" (fsync and fdatasync), "pthread_create",
 * "pthread_join", and the LMDB calls "mdb_env_open", "mdb_txn_begin",
 * "mdb_txn_commit", "mdb_put", "mdb_get", "mdb_del", "mdb_dbi_open",
 * "mdb_cursor_open", "mdb_cursor_get", "mdb_cursor_put", "mdb_cursor_del",
 * "mdb_env_set_mapsize"; "pidfd_open" and "openat2" (the system calls, through syscall())
 * and "posix_spawn" (posix_spawn, posix_spawnp and the file-action and
 * attribute set-up calls adddup2, file_actions_init, spawnattr_init). A failing system call returns -1 with errno set to
 * err; allocation returns NULL (errno ENOMEM); pthread_create and the LMDB
 * calls return err itself (e.g. EAGAIN, MDB_MAP_FULL). */
#ifndef PO_TEST_FAULT_H
#define PO_TEST_FAULT_H

/* From now on, the nth call of name (1 = the next) fails with err; with
 * every_after, every later call fails too. Counting starts at this call. */
void fault_arm(const char *name, long nth, int every_after, int err);

/* Every call of name fails with err from now on, whatever is armed (a
 * missing facility, such as pidfd_open on an old kernel, under which other
 * faults are swept); NULL stops it. Not counted by fault_fired. */
void fault_always(const char *name, int err);

/* Stops injection; fault_fired still tells what the last arming did. */
void fault_disarm(void);

/* How many failures were injected since the last fault_arm. */
long fault_fired(void);

/* How many calls of name were made since the last fault_arm (or fault_count_start). */
long fault_count(const char *name);
void fault_count_start(void);

/* SQLite's way of reaching every failure path: runs scenario(arg) with the
 * 1st, then the 2nd, ... call of name failing (err; only that one call),
 * until a run completes without reaching the armed call. The scenario checks
 * its own outcome each time (success, or the documented failure with nothing
 * lost or leaked) and returns 0 when it was right. Returns the number of runs
 * in which a fault was injected, or -1 at the first run that went wrong or
 * when max_runs is reached (a message names the run). */
long fault_sweep(const char *name, int err, int (*scenario)(void *arg), void *arg, long max_runs);

#endif
