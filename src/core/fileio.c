#include "fileio.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct po_root {
  int fd;      /* the directory, O_RDONLY */
  char *real;  /* its real path */
  char *given; /* the path it was opened with, absolute, without a trailing '/' */
};

static int use_fallback; /* atomic: no openat2 here, or forced by a test */

void po_fileio_force_fallback(int on) { __atomic_store_n(&use_fallback, on, __ATOMIC_SEQ_CST); }

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* mkdir -p, for the root itself (not confined: it is the caller's choice). */
static int make_dirs(const char *path) {
  char *p = dup_str(path);
  if (!p) return ENOMEM;
  int rc = 0;
  for (char *s = p + 1;; s++) {
    if (*s == '/' || *s == '\0') {
      char saved = *s;
      *s = '\0';
      if (mkdir(p, 0777) != 0 && errno != EEXIST) rc = errno;
      *s = saved;
      if (!saved) break;
    }
  }
  free(p);
  return rc;
}

int po_root_open(const char *path, int create, po_root **out, int *sys_errno) {
  *sys_errno = 0;
  if (create && *path) {
    int e = make_dirs(path);
    if (e == ENOMEM) return PO_ENOMEM;
  }
  po_root *r = calloc(1, sizeof *r);
  if (!r) return PO_ENOMEM;
  r->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (r->fd < 0) {
    *sys_errno = errno;
    free(r);
    return PO_EIO;
  }
  r->real = realpath(path, NULL);
  if (path[0] == '/') {
    r->given = dup_str(path);
  } else {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd)) {
      size_t n = strlen(cwd) + strlen(path) + 2;
      r->given = malloc(n);
      if (r->given) snprintf(r->given, n, "%s/%s", cwd, path);
    }
  }
  if (!r->real || !r->given) {
    int e = errno;
    po_root_close(r);
    if (e == ENOMEM || !e) return PO_ENOMEM;
    *sys_errno = e;
    return PO_EIO;
  }
  size_t n = strlen(r->given);
  while (n > 1 && r->given[n - 1] == '/') r->given[--n] = '\0';
  *out = r;
  return 0;
}

void po_root_close(po_root *r) {
  if (!r) return;
  if (r->fd >= 0) close(r->fd);
  free(r->real);
  free(r->given);
  free(r);
}

/* ---- paths ---- */

/* If path starts with the directory dir, returns the rest (never starting
 * with '/'; "." for dir itself), else NULL. */
static const char *strip_dir(const char *path, const char *dir) {
  size_t n = strlen(dir);
  if (n == 1 && dir[0] == '/') n = 0;
  if (strncmp(path, dir, n) != 0 || (path[n] != '/' && path[n] != '\0')) return NULL;
  path += n;
  while (*path == '/') path++;
  return *path ? path : ".";
}

/* The path relative to the root, or NULL when it is absolute and outside. */
static const char *relative(const po_root *r, const char *path) {
  if (path[0] != '/') return path;
  const char *rel = strip_dir(path, r->given);
  return rel ? rel : strip_dir(path, r->real);
}

/* True if `..` components climb above the start of rel. */
static int climbs_out(const char *rel) {
  int depth = 0;
  for (const char *s = rel; *s;) {
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 2 && s[0] == '.' && s[1] == '.') {
      if (--depth < 0) return 1;
    } else if (n > 0 && !(n == 1 && s[0] == '.')) {
      depth++;
    }
    s += n;
    while (*s == '/') s++;
  }
  return 0;
}

static int beneath(const char *real, const char *root_real) { return strip_dir(real, root_real) != NULL; }

/* Opens rel beneath the root (an existing file or directory; flags without
 * O_CREAT). Returns the fd, or a negative PO_E code with *err set for
 * PO_EIO. */
static int open_beneath(const po_root *r, const char *rel, int flags, int *err) {
  if (!__atomic_load_n(&use_fallback, __ATOMIC_SEQ_CST)) {
#ifdef SYS_openat2
    struct open_how how = {.flags = (unsigned long long)flags,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, r->fd, rel, &how, sizeof how);
    if (fd >= 0) return fd;
    if (errno == EXDEV) return PO_EOUTSIDE;
    if (errno != ENOSYS) {
      *err = errno;
      return PO_EIO;
    }
#endif
    __atomic_store_n(&use_fallback, 1, __ATOMIC_SEQ_CST);
  }
  size_t n = strlen(r->real) + strlen(rel) + 2;
  char *full = malloc(n);
  if (!full) return PO_ENOMEM;
  snprintf(full, n, "%s/%s", r->real, rel);
  char *real = realpath(full, NULL);
  free(full);
  if (!real) {
    *err = errno;
    return errno == ENOMEM ? PO_ENOMEM : PO_EIO;
  }
  int fd = beneath(real, r->real) ? open(real, flags | O_NOFOLLOW) : PO_EOUTSIDE;
  if (fd == -1) {
    *err = errno;
    fd = PO_EIO;
  }
  free(real);
  return fd;
}

/* Opens path (relative to the root, or to the working directory without
 * one). */
static int open_path(const po_root *r, const char *path, int flags, int *err) {
  if (r) return open_beneath(r, path, flags, err);
  int fd = open(path, flags);
  if (fd < 0) {
    *err = errno;
    return PO_EIO;
  }
  return fd;
}

/* Checks a path against the root; *rel gets the path to open. */
static int confine(const po_root *r, const char *path, const char **rel) {
  if (!*path) return PO_EINVAL;
  *rel = path;
  if (!r) return 0;
  *rel = relative(r, path);
  if (!*rel || climbs_out(*rel)) return PO_EOUTSIDE;
  return 0;
}

/* ---- reading ---- */

int po_file_read(const po_root *r, const char *path, po_strbuf *out, int *err) {
  const char *rel;
  *err = 0;
  int rc = confine(r, path, &rel);
  if (rc != 0) return rc;
  int fd = open_path(r, rel, O_RDONLY | O_CLOEXEC | O_NOCTTY, err);
  if (fd < 0) return fd;
  struct stat st = {0};
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    *err = EISDIR;
    return PO_EIO;
  }
  if (st.st_size > 0 && po_strbuf_grow(out, (size_t)st.st_size + 1) != 0) {
    close(fd);
    return PO_ENOMEM;
  }
  for (;;) {
    if (out->cap - out->len < 4096 && po_strbuf_grow(out, 65536) != 0) {
      rc = PO_ENOMEM;
      break;
    }
    ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
    if (n > 0) {
      out->len += (size_t)n;
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      *err = errno;
      rc = PO_EIO;
      break;
    }
  }
  close(fd);
  return rc;
}

/* ---- writing ---- */

/* Opens the directory dir (with create, creating what is missing), confined
 * to the root when there is one. dir is relative to the root or the working
 * directory, or absolute without a root; "" means the start itself. */
static int open_dir(const po_root *r, const char *dir, int create, int *err) {
  const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  size_t n = strlen(dir);
  char *prefix = malloc(n + 2);
  if (!prefix) return PO_ENOMEM;
  int parent;
  if (r)
    parent = dup(r->fd);
  else
    parent = open(dir[0] == '/' ? "/" : ".", flags);
  if (parent < 0) {
    *err = errno;
    free(prefix);
    return PO_EIO;
  }
  const char *s = dir;
  while (*s == '/') s++;
  while (*s) {
    const char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    size_t upto = (size_t)(s - dir) + len;
    memcpy(prefix, dir, upto);
    prefix[upto] = '\0';
    int fd = open_path(r, prefix, flags, err);
    if (create && fd == PO_EIO && *err == ENOENT && !(len == 2 && s[0] == '.' && s[1] == '.')) {
      char name[NAME_MAX + 1];
      snprintf(name, sizeof name, "%.*s", (int)len, s);
      if (mkdirat(parent, name, 0777) != 0 && errno != EEXIST) {
        *err = errno;
        fd = PO_EIO;
      } else {
        fd = open_path(r, prefix, flags, err);
      }
    }
    close(parent);
    if (fd < 0) {
      free(prefix);
      return fd;
    }
    parent = fd;
    s += len;
    while (*s == '/') s++;
  }
  free(prefix);
  return parent;
}

static int write_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int po_file_write(const po_root *r, const char *path, const void *data, size_t len, int sync, int *err) {
  return po_file_write_flags(r, path, data, len, PO_FILE_PARENTS | (sync ? PO_FILE_SYNC : 0u), err);
}

int po_file_write_flags(const po_root *r, const char *path, const void *data, size_t len, unsigned flags,
                        int *err) {
  const int sync = (flags & PO_FILE_SYNC) != 0;
  const char *rel;
  *err = 0;
  int rc = confine(r, path, &rel);
  if (rc != 0) return rc;
  const char *slash = strrchr(rel, '/');
  const char *base = slash ? slash + 1 : rel;
  if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strlen(base) > NAME_MAX) return PO_EINVAL;
  size_t dir_len = slash ? (size_t)(slash - rel) : 0;
  if (slash && dir_len == 0) dir_len = 1; /* "/name": the directory is "/" */
  char *dir = malloc(dir_len + 1);
  if (!dir) return PO_ENOMEM;
  memcpy(dir, rel, dir_len);
  dir[dir_len] = '\0';
  int dirfd = open_dir(r, dir, (flags & PO_FILE_PARENTS) != 0, err);
  free(dir);
  if (dirfd < 0) return dirfd;

  static unsigned long counter; /* atomic */
  char tmp[NAME_MAX + 1];
  snprintf(tmp, sizeof tmp, ".%.200s.tmp-%ld-%lu", base, (long)getpid(),
           __atomic_add_fetch(&counter, 1, __ATOMIC_SEQ_CST));
  int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0) {
    *err = errno;
    close(dirfd);
    return PO_EIO;
  }
  struct stat st;
  if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) fchmod(fd, st.st_mode & 07777);
  int failed = write_all(fd, data, len) != 0 || (sync && fsync(fd) != 0);
  if (failed) *err = errno;
  if (close(fd) != 0 && !failed) {
    failed = 1;
    *err = errno;
  }
  if (!failed && renameat(dirfd, tmp, dirfd, base) != 0) {
    failed = 1;
    *err = errno;
  }
  if (failed) {
    unlinkat(dirfd, tmp, 0);
  } else if (sync && fsync(dirfd) != 0) {
    failed = 1;
    *err = errno;
  }
  close(dirfd);
  return failed ? PO_EIO : 0;
}
