/* Whole-file reads and atomic writes, optionally confined beneath a root
 * directory.
 *
 * Confinement: a path given with a root is resolved beneath it. `..` that
 * climbs above the root, an absolute path outside it, and a symbolic link
 * (at any component) that leads outside it are refused with PO_EOUTSIDE;
 * links that stay inside are followed. Resolution is done by the kernel
 * (openat2 with RESOLVE_BENEATH), so nothing can race it; on a kernel
 * without openat2 (before 5.6) every directory is checked with realpath
 * before use instead.
 *
 * Writes are atomic: the bytes go to a new temporary file in the target's
 * directory, which is renamed over the target (keeping an existing target's
 * permission bits); with sync the file is fsync'd before the rename and the
 * directory after it. Missing parent directories are created (0777 less the
 * umask). A reader sees the old content or the new, never a mix. */
#ifndef PO_FILEIO_H
#define PO_FILEIO_H

#include <stddef.h>

#include "strbuf.h"

typedef struct po_root po_root;

/* Opens the directory path as a root in *out; with create, it is made first
 * (with its parents) when missing. Returns 0, PO_ENOMEM, or PO_EIO with
 * *sys_errno set. */
int po_root_open(const char *path, int create, po_root **out, int *sys_errno);

/* Closes a root; NULL is ignored. A root may be used from several threads. */
void po_root_close(po_root *root);

/* Appends the content of the file at path (relative to root when root is
 * not NULL, else to the working directory) to out. Returns 0; PO_EOUTSIDE;
 * PO_EINVAL for an empty path; PO_ENOMEM; or PO_EIO with *sys_errno set
 * (ENOENT, EACCES, EISDIR...). */
int po_file_read(const po_root *root, const char *path, po_strbuf *out, int *sys_errno);

/* Writes len bytes from data to path atomically, as described above.
 * Returns 0; PO_EOUTSIDE; PO_EINVAL for a path that names no file (empty,
 * ending in '/', '.' or '..'); or PO_EIO with *sys_errno set. Nothing is
 * ever created outside root. */
int po_file_write(const po_root *root, const char *path, const void *data, size_t len, int sync, int *sys_errno);

/* Flags of po_file_write_flags. */
enum { PO_FILE_SYNC = 1u, PO_FILE_PARENTS = 2u };

/* Like po_file_write, with flags: PO_FILE_SYNC as sync above, and
 * PO_FILE_PARENTS to create missing parent directories; without it a missing
 * parent is PO_EIO with *sys_errno ENOENT. */
int po_file_write_flags(const po_root *root, const char *path, const void *data, size_t len, unsigned flags,
                        int *sys_errno);

/* For tests: 1 makes confinement use the realpath checks even where the
 * kernel has openat2; 0 restores the default. */
void po_fileio_force_fallback(int on);

#endif
