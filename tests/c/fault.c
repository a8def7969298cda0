/* See fault.h. The __real_ functions are the originals, resolved by the
 * linker's --wrap. */
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

enum { MAX_NAMES = 40 };
typedef struct {
  const char *name;
  long calls;
} counter;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static counter counters[MAX_NAMES];
static int ncounters;
static const char *armed; /* the name that fails; NULL: none */
static long armed_nth, fired;
static int armed_every_after, armed_err;
static const char *always; /* fails every call, beside the armed one; NULL: none */
static int always_err;

static counter *counter_for(const char *name) {
  for (int i = 0; i < ncounters; i++)
    if (strcmp(counters[i].name, name) == 0) return &counters[i];
  if (ncounters == MAX_NAMES) abort(); /* a test asked for more names than exist */
  counters[ncounters].name = name;
  counters[ncounters].calls = 0;
  return &counters[ncounters++];
}

/* Counts a call of name; returns the error to inject, or 0 to let it run. */
static int hit(const char *name) {
  int err = 0;
  pthread_mutex_lock(&lock);
  long n = ++counter_for(name)->calls;
  if (armed && strcmp(armed, name) == 0 && (n == armed_nth || (armed_every_after && n > armed_nth))) {
    err = armed_err;
    fired++;
  } else if (always && strcmp(always, name) == 0) {
    err = always_err;
  }
  pthread_mutex_unlock(&lock);
  return err;
}

void fault_count_start(void) {
  pthread_mutex_lock(&lock);
  for (int i = 0; i < ncounters; i++) counters[i].calls = 0;
  pthread_mutex_unlock(&lock);
}

void fault_arm(const char *name, long nth, int every_after, int err) {
  pthread_mutex_lock(&lock);
  for (int i = 0; i < ncounters; i++) counters[i].calls = 0;
  armed = name;
  armed_nth = nth;
  armed_every_after = every_after;
  armed_err = err;
  fired = 0;
  pthread_mutex_unlock(&lock);
}

void fault_always(const char *name, int err) {
  pthread_mutex_lock(&lock);
  always = name;
  always_err = err;
  pthread_mutex_unlock(&lock);
}

void fault_disarm(void) {
  pthread_mutex_lock(&lock);
  armed = NULL;
  pthread_mutex_unlock(&lock);
}

long fault_fired(void) {
  pthread_mutex_lock(&lock);
  long n = fired;
  pthread_mutex_unlock(&lock);
  return n;
}

long fault_count(const char *name) {
  pthread_mutex_lock(&lock);
  long n = counter_for(name)->calls;
  pthread_mutex_unlock(&lock);
  return n;
}

long fault_sweep(const char *name, int err, int (*scenario)(void *arg), void *arg, long max_runs) {
  for (long nth = 1; nth <= max_runs; nth++) {
    fault_arm(name, nth, 0, err);
    int rc = scenario(arg);
    long injected = fault_fired();
    fault_disarm();
    if (rc != 0) {
      fprintf(stderr, "fault_sweep: the scenario went wrong with %s call %ld failing\n", name, nth);
      return -1;
    }
    if (!injected) return nth - 1;
  }
  fprintf(stderr, "fault_sweep: %s still reached after %ld runs\n", name, max_runs);
  return -1;
}

/* Allocation. */
void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
char *__real_strdup(const char *);
char *__real_strndup(const char *, size_t);

void *__wrap_malloc(size_t n) {
  if (hit("malloc")) return errno = ENOMEM, NULL;
  return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size) {
  if (hit("malloc")) return errno = ENOMEM, NULL;
  return __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) {
  if (hit("malloc")) return errno = ENOMEM, NULL;
  return __real_realloc(p, n);
}
char *__wrap_strdup(const char *s) {
  if (hit("malloc")) return errno = ENOMEM, NULL;
  return __real_strdup(s);
}
char *__wrap_strndup(const char *s, size_t n) {
  if (hit("malloc")) return errno = ENOMEM, NULL;
  return __real_strndup(s, n);
}
int __real_posix_memalign(void **, size_t, size_t);
int __wrap_posix_memalign(void **p, size_t align, size_t n) {
  if (hit("malloc")) return ENOMEM;
  return __real_posix_memalign(p, align, n);
}

/* System calls: -1 with errno. */
#define FAIL_SYSCALL(name)        \
  do {                            \
    int err_ = hit(name);         \
    if (err_) return errno = err_, -1; \
  } while (0)

ssize_t __real_write(int, const void *, size_t);
ssize_t __wrap_write(int fd, const void *buf, size_t n) {
  FAIL_SYSCALL("write");
  return __real_write(fd, buf, n);
}
ssize_t __real_read(int, void *, size_t);
ssize_t __wrap_read(int fd, void *buf, size_t n) {
  FAIL_SYSCALL("read");
  return __real_read(fd, buf, n);
}
/* open's mode argument, passed only when the flags create a file. */
#define OPEN_MODE(flags, mode)                                  \
  do {                                                          \
    if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) { \
      va_list ap;                                               \
      va_start(ap, flags);                                      \
      mode = (mode_t)va_arg(ap, int);                           \
      va_end(ap);                                               \
    }                                                           \
  } while (0)

int __real_open(const char *, int, ...);
int __wrap_open(const char *path, int flags, ...) {
  FAIL_SYSCALL("open");
  mode_t mode = 0;
  OPEN_MODE(flags, mode);
  return __real_open(path, flags, mode);
}
/* With 64-bit file offsets the headers turn open and openat into these. */
int __real_open64(const char *, int, ...);
int __wrap_open64(const char *path, int flags, ...) {
  FAIL_SYSCALL("open");
  mode_t mode = 0;
  OPEN_MODE(flags, mode);
  return __real_open64(path, flags, mode);
}
int __real_openat64(int, const char *, int, ...);
int __wrap_openat64(int dirfd, const char *path, int flags, ...) {
  FAIL_SYSCALL("open");
  mode_t mode = 0;
  OPEN_MODE(flags, mode);
  return __real_openat64(dirfd, path, flags, mode);
}
int __real_rename(const char *, const char *);
int __wrap_rename(const char *from, const char *to) {
  FAIL_SYSCALL("rename");
  return __real_rename(from, to);
}
int __real_mkdir(const char *, mode_t);
int __wrap_mkdir(const char *path, mode_t mode) {
  FAIL_SYSCALL("mkdir");
  return __real_mkdir(path, mode);
}
int __real_mkdirat(int, const char *, mode_t);
int __wrap_mkdirat(int dirfd, const char *path, mode_t mode) {
  FAIL_SYSCALL("mkdir");
  return __real_mkdirat(dirfd, path, mode);
}
/* A failing close still closes, as Linux's does. */
int __real_close(int);
int __wrap_close(int fd) {
  int err = hit("close");
  if (err) {
    __real_close(fd);
    return errno = err, -1;
  }
  return __real_close(fd);
}
int __real_fsync(int);
int __wrap_fsync(int fd) {
  FAIL_SYSCALL("fsync");
  return __real_fsync(fd);
}
int __real_fdatasync(int);
int __wrap_fdatasync(int fd) {
  FAIL_SYSCALL("fsync");
  return __real_fdatasync(fd);
}

/* Calls that return their error. */
#define FAIL_RETURN(name)  \
  do {                     \
    int err_ = hit(name);  \
    if (err_) return err_; \
  } while (0)

int __real_pthread_create(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg) {
  FAIL_RETURN("pthread_create");
  return __real_pthread_create(t, a, fn, arg);
}

/* Counted only (a test waits for a pool's stop to reach its joins). */
int __real_pthread_join(pthread_t, void **);
int __wrap_pthread_join(pthread_t t, void **ret) {
  FAIL_RETURN("pthread_join");
  return __real_pthread_join(t, ret);
}

int __real_mdb_env_open(MDB_env *, const char *, unsigned int, mdb_mode_t);
int __wrap_mdb_env_open(MDB_env *env, const char *path, unsigned int flags, mdb_mode_t mode) {
  FAIL_RETURN("mdb_env_open");
  return __real_mdb_env_open(env, path, flags, mode);
}
int __real_mdb_env_set_mapsize(MDB_env *, size_t);
int __wrap_mdb_env_set_mapsize(MDB_env *env, size_t size) {
  FAIL_RETURN("mdb_env_set_mapsize");
  return __real_mdb_env_set_mapsize(env, size);
}
int __real_mdb_txn_begin(MDB_env *, MDB_txn *, unsigned int, MDB_txn **);
int __wrap_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags, MDB_txn **txn) {
  FAIL_RETURN("mdb_txn_begin");
  return __real_mdb_txn_begin(env, parent, flags, txn);
}
/* A commit that fails still frees the transaction, as LMDB's own does. */
int __real_mdb_txn_commit(MDB_txn *);
int __wrap_mdb_txn_commit(MDB_txn *txn) {
  int err = hit("mdb_txn_commit");
  if (err) {
    mdb_txn_abort(txn);
    return err;
  }
  return __real_mdb_txn_commit(txn);
}
int __real_mdb_dbi_open(MDB_txn *, const char *, unsigned int, MDB_dbi *);
int __wrap_mdb_dbi_open(MDB_txn *txn, const char *name, unsigned int flags, MDB_dbi *dbi) {
  FAIL_RETURN("mdb_dbi_open");
  return __real_mdb_dbi_open(txn, name, flags, dbi);
}
int __real_mdb_put(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *, unsigned int);
int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val, unsigned int flags) {
  FAIL_RETURN("mdb_put");
  return __real_mdb_put(txn, dbi, key, val, flags);
}
int __real_mdb_get(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *);
int __wrap_mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val) {
  FAIL_RETURN("mdb_get");
  return __real_mdb_get(txn, dbi, key, val);
}
int __real_mdb_del(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *);
int __wrap_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val) {
  FAIL_RETURN("mdb_del");
  return __real_mdb_del(txn, dbi, key, val);
}
int __real_mdb_cursor_open(MDB_txn *, MDB_dbi, MDB_cursor **);
int __wrap_mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cur) {
  FAIL_RETURN("mdb_cursor_open");
  return __real_mdb_cursor_open(txn, dbi, cur);
}
int __real_mdb_cursor_get(MDB_cursor *, MDB_val *, MDB_val *, MDB_cursor_op);
int __wrap_mdb_cursor_get(MDB_cursor *cur, MDB_val *key, MDB_val *val, MDB_cursor_op op) {
  FAIL_RETURN("mdb_cursor_get");
  return __real_mdb_cursor_get(cur, key, val, op);
}
int __real_mdb_cursor_put(MDB_cursor *, MDB_val *, MDB_val *, unsigned int);
int __wrap_mdb_cursor_put(MDB_cursor *cur, MDB_val *key, MDB_val *val, unsigned int flags) {
  FAIL_RETURN("mdb_cursor_put");
  return __real_mdb_cursor_put(cur, key, val, flags);
}
int __real_mdb_cursor_del(MDB_cursor *, unsigned int);
int __wrap_mdb_cursor_del(MDB_cursor *cur, unsigned int flags) {
  FAIL_RETURN("mdb_cursor_del");
  return __real_mdb_cursor_del(cur, flags);
}

/* pidfd_open and openat2, which proc.c and fileio.c reach through
 * syscall(): only those numbers count ("pidfd_open", "openat2"), so that
 * ENOSYS can stand for a kernel before 5.3 or 5.6;
 * every other system call passes through with five arguments (as many as
 * arrive in registers; none of poengine's calls has a sixth, and reading
 * one would read the caller's stack). */
long __real_syscall(long, ...);
long __wrap_syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a[5];
  for (int i = 0; i < 5; i++) a[i] = va_arg(ap, long);
  va_end(ap);
#ifdef SYS_pidfd_open
  if (number == SYS_pidfd_open) FAIL_SYSCALL("pidfd_open");
#endif
#ifdef SYS_openat2
  if (number == SYS_openat2) FAIL_SYSCALL("openat2");
#endif
  return __real_syscall(number, a[0], a[1], a[2], a[3], a[4]);
}

/* Starting a process ("posix_spawn"): the set-up calls that can run out of
 * memory, and the spawn itself; each returns its error, as they do. */
int __real_posix_spawn_file_actions_init(posix_spawn_file_actions_t *);
int __wrap_posix_spawn_file_actions_init(posix_spawn_file_actions_t *fa) {
  FAIL_RETURN("posix_spawn");
  return __real_posix_spawn_file_actions_init(fa);
}
int __real_posix_spawnattr_init(posix_spawnattr_t *);
int __wrap_posix_spawnattr_init(posix_spawnattr_t *attr) {
  FAIL_RETURN("posix_spawn");
  return __real_posix_spawnattr_init(attr);
}
int __real_posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *, int, int);
int __wrap_posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa, int fd, int to) {
  FAIL_RETURN("posix_spawn");
  return __real_posix_spawn_file_actions_adddup2(fa, fd, to);
}
int __real_posix_spawn(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                       char *const[], char *const[]);
int __wrap_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  FAIL_RETURN("posix_spawn");
  return __real_posix_spawn(pid, path, fa, attr, argv, envp);
}
int __real_posix_spawnp(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]);
int __wrap_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  FAIL_RETURN("posix_spawn");
  return __real_posix_spawnp(pid, file, fa, attr, argv, envp);
}
