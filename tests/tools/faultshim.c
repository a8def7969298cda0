/* An LD_PRELOAD shim that makes chosen calls fail, so the error paths that
 * cannot be provoked from outside (out of memory, a failing disk, a broken
 * LMDB) run in a real poengine process. Not linked into poengine: specs start
 * `poengine` with LD_PRELOAD=libfaultshim.so and POENGINE_FAULT set.
 *
 *   POENGINE_FAULT=rule[,rule...]      rule: NAME[>=SIZE|~TEXT]:N[+][:ERR]
 *
 * The Nth call of NAME (counting from 1) fails; with "+", every call from
 * the Nth on. ERR is an errno name (EIO, ENOMEM, EACCES, ENOSPC, EAGAIN) or,
 * for mdb_* functions, MDB_MAP_FULL, MDB_CORRUPTED or a number. ">=SIZE"
 * counts only allocations of at least SIZE bytes (malloc, calloc and realloc
 * all count as "malloc"), so the many small allocations of start-up do not
 * shift the count; "~TEXT" counts only dlopen calls whose file name
 * contains TEXT (dlopen then returns NULL). Defaults: ENOMEM for malloc, EAGAIN for posix_spawn, EIO
 * otherwise.
 *
 *   POENGINE_FAULT=fsync:1               the first fsync fails with EIO
 *   POENGINE_FAULT=malloc>=1000000:1+    every allocation of 1 MB or more fails
 *   POENGINE_FAULT=mdb_txn_commit:1+:EIO every LMDB commit fails with EIO
 *   POENGINE_FAULT=dlopen~curl:1+        libcurl cannot be loaded
 *
 * Each failure is reported on stderr ("faultshim: NAME failed (call N)"), so a
 * spec can tell the fault was hit. malloc's own failures are not reported
 * (stdio may allocate). */
#include <dlfcn.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_RULES 8

typedef struct {
  char name[32];
  size_t min_size;
  char match[32];
  unsigned long nth;
  int from_nth_on;
  int err;
  unsigned long calls; /* atomic */
} rule;

static rule rules[MAX_RULES];
static int nrules = -1; /* -1: not parsed yet */
static pthread_once_t parse_once = PTHREAD_ONCE_INIT;

static int parse_err(const char *s, const char *name) {
  static const struct {
    const char *name;
    int value;
  } names[] = {{"EIO", EIO},       {"ENOMEM", ENOMEM},   {"EACCES", EACCES},
               {"ENOSPC", ENOSPC}, {"EAGAIN", EAGAIN},   {"EPERM", EPERM},
               {"MDB_MAP_FULL", MDB_MAP_FULL}, {"MDB_CORRUPTED", MDB_CORRUPTED}};
  if (!s || !*s) {
    if (strcmp(name, "malloc") == 0) return ENOMEM;
    if (strncmp(name, "posix_spawn", 11) == 0) return EAGAIN;
    return EIO;
  }
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(s, names[i].name) == 0) return names[i].value;
  return atoi(s);
}

/* Runs once, before any rule is looked at; it must not allocate through
 * malloc (it is called from inside malloc), hence the fixed buffers. */
static void parse_rules(void) {
  const char *env = getenv("POENGINE_FAULT");
  int n = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", env ? env : "");
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok && n < MAX_RULES; tok = strtok_r(NULL, ",", &save)) {
    rule *r = &rules[n];
    char *colon = strchr(tok, ':');
    if (!colon) continue;
    *colon = '\0';
    char *ge = strstr(tok, ">="), *tilde = strchr(tok, '~');
    if (tilde) {
      *tilde = '\0';
      snprintf(r->match, sizeof r->match, "%s", tilde + 1);
    }
    if (ge) {
      *ge = '\0';
      r->min_size = strtoull(ge + 2, NULL, 10);
    }
    snprintf(r->name, sizeof r->name, "%s", tok);
    char *end;
    r->nth = strtoul(colon + 1, &end, 10);
    if (*end == '+') {
      r->from_nth_on = 1;
      end++;
    }
    r->err = parse_err(*end == ':' ? end + 1 : NULL, r->name);
    n++;
  }
  __atomic_store_n(&nrules, n, __ATOMIC_RELEASE);
}

/* 0: let the call through; else the error to fail it with. */
static int should_fail_text(const char *name, size_t size, const char *text, int report) {
  pthread_once(&parse_once, parse_rules);
  for (int i = 0; i < nrules; i++) {
    rule *r = &rules[i];
    if (strcmp(r->name, name) != 0 || size < r->min_size) continue;
    if (r->match[0] && (!text || !strstr(text, r->match))) continue;
    unsigned long call = __atomic_add_fetch(&r->calls, 1, __ATOMIC_SEQ_CST);
    if (call == r->nth || (r->from_nth_on && call > r->nth)) {
      if (report) {
        char msg[96];
        int len = snprintf(msg, sizeof msg, "faultshim: %s failed (call %lu)\n", name, call);
        /* the raw syscall: write itself may be a rule */
        (void)!syscall(SYS_write, 2, msg, (size_t)len);
      }
      return r->err;
    }
  }
  return 0;
}

static int should_fail(const char *name, size_t size, int report) { return should_fail_text(name, size, NULL, report); }

#define NEXT(fn) ((__typeof__(&fn))dlsym(RTLD_NEXT, #fn))

/* ---- memory: glibc's own entry points, so no dlsym (which allocates) ---- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

void *malloc(size_t size) {
  if (should_fail("malloc", size, 0)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
  if (size && n > (size_t)-1 / size) return __libc_calloc(n, size); /* its own overflow error */
  if (should_fail("malloc", n * size, 0)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
  if (should_fail("malloc", size, 0)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_realloc(p, size);
}

/* ---- files ---- */

ssize_t write(int fd, const void *buf, size_t len) {
  int err = should_fail("write", 0, 1);
  if (err) {
    errno = err;
    return -1;
  }
  return NEXT(write)(fd, buf, len);
}

int fsync(int fd) {
  int err = should_fail("fsync", 0, 1);
  if (err) {
    errno = err;
    return -1;
  }
  return NEXT(fsync)(fd);
}

int fdatasync(int fd) {
  int err = should_fail("fdatasync", 0, 1);
  if (err) {
    errno = err;
    return -1;
  }
  return NEXT(fdatasync)(fd);
}

/* ---- libraries: poengine opens libcurl on first use ---- */

void *dlopen(const char *file, int flags) {
  /* a failing real dlopen, so dlerror() says why, as after a real failure */
  if (should_fail_text("dlopen", 0, file, 1)) return NEXT(dlopen)("/nonexistent/faultshim: dlopen failed", flags);
  return NEXT(dlopen)(file, flags);
}

/* ---- child processes: posix_spawn returns the error, errno is untouched ---- */

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
                char *const argv[], char *const envp[]) {
  int err = should_fail("posix_spawn", 0, 1);
  if (err) return err;
  return NEXT(posix_spawn)(pid, path, fa, attr, argv, envp);
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
                 char *const argv[], char *const envp[]) {
  int err = should_fail("posix_spawnp", 0, 1);
  if (err) return err;
  return NEXT(posix_spawnp)(pid, file, fa, attr, argv, envp);
}

/* ---- LMDB: each returns its error code; the calls poengine's store makes ---- */

int mdb_env_open(MDB_env *env, const char *path, unsigned int flags, mdb_mode_t mode) {
  int err = should_fail("mdb_env_open", 0, 1);
  return err ? err : NEXT(mdb_env_open)(env, path, flags, mode);
}

int mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags, MDB_txn **txn) {
  int err = should_fail("mdb_txn_begin", 0, 1);
  return err ? err : NEXT(mdb_txn_begin)(env, parent, flags, txn);
}

int mdb_txn_commit(MDB_txn *txn) {
  int err = should_fail("mdb_txn_commit", 0, 1);
  if (err) {
    NEXT(mdb_txn_abort)(txn); /* a failed commit frees the transaction */
    return err;
  }
  return NEXT(mdb_txn_commit)(txn);
}

int mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags) {
  int err = should_fail("mdb_put", 0, 1);
  return err ? err : NEXT(mdb_put)(txn, dbi, key, data, flags);
}

int mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data) {
  int err = should_fail("mdb_get", 0, 1);
  return err ? err : NEXT(mdb_get)(txn, dbi, key, data);
}

int mdb_cursor_put(MDB_cursor *cursor, MDB_val *key, MDB_val *data, unsigned int flags) {
  int err = should_fail("mdb_cursor_put", 0, 1);
  return err ? err : NEXT(mdb_cursor_put)(cursor, key, data, flags);
}

int mdb_env_set_mapsize(MDB_env *env, size_t size) {
  int err = should_fail("mdb_env_set_mapsize", 0, 1);
  return err ? err : NEXT(mdb_env_set_mapsize)(env, size);
}
