/* Tests for src/core/fileio.c: atomic writes, parent creation, and every
 * confinement case, with openat2 and with the realpath fallback. */
#include "error.h"
#include "fileio.h"

#include "harness.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[64];
static char rootdir[128], outside[128];

static void sh(const char *fmt, const char *arg) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, fmt, arg, arg, arg, arg);
  CHECK(system(cmd) == 0);
}

static void setup(void) {
  snprintf(base, sizeof base, "/tmp/po_fileio_XXXXXX");
  REQUIRE(mkdtemp(base));
  snprintf(rootdir, sizeof rootdir, "%s/root", base);
  snprintf(outside, sizeof outside, "%s/outside", base);
  sh("mkdir -p %s/root/inner %s/outside && echo secret > %s/outside/s && echo in > %s/root/inner/f", base);
  sh("ln -s ../outside %s/root/out && ln -s /etc %s/root/etc && ln -s inner %s/root/in && "
     "ln -s ../outside/s %s/root/sfile",
     base);
}

static void teardown(void) { sh("rm -rf %s", base); }

static int read_str(const po_root *r, const char *path, char *buf, size_t cap, int *err) {
  po_strbuf b = {0};
  int rc = po_file_read(r, path, &b, err);
  size_t n = b.len < cap - 1 ? b.len : cap - 1;
  if (b.data) memcpy(buf, b.data, n);
  buf[n] = '\0';
  po_strbuf_free(&b);
  return rc;
}

static void confined(int fallback) {
  po_fileio_force_fallback(fallback);
  setup();
  po_root *r;
  int err;
  REQUIRE(po_root_open(rootdir, 0, &r, &err) == 0);
  char buf[64], path[256];

  /* reads inside, also through links that stay inside */
  CHECK_EQ_INT(read_str(r, "inner/f", buf, sizeof buf, &err), 0);
  CHECK_EQ_STR(buf, "in\n");
  CHECK_EQ_INT(read_str(r, "in/f", buf, sizeof buf, &err), 0);
  CHECK_EQ_INT(read_str(r, "inner/../inner/f", buf, sizeof buf, &err), 0);
  snprintf(path, sizeof path, "%s/inner/f", rootdir);
  CHECK_EQ_INT(read_str(r, path, buf, sizeof buf, &err), 0);

  /* refused: .., absolute outside, links leading out (directory, absolute, file) */
  CHECK_EQ_INT(read_str(r, "../outside/s", buf, sizeof buf, &err), PO_EOUTSIDE);
  CHECK_EQ_INT(read_str(r, "inner/../../outside/s", buf, sizeof buf, &err), PO_EOUTSIDE);
  snprintf(path, sizeof path, "%s/s", outside);
  CHECK_EQ_INT(read_str(r, path, buf, sizeof buf, &err), PO_EOUTSIDE);
  CHECK_EQ_INT(read_str(r, "/etc/passwd", buf, sizeof buf, &err), PO_EOUTSIDE);
  CHECK_EQ_INT(read_str(r, "out/s", buf, sizeof buf, &err), PO_EOUTSIDE);
  CHECK_EQ_INT(read_str(r, "etc/passwd", buf, sizeof buf, &err), PO_EOUTSIDE);
  CHECK_EQ_INT(read_str(r, "sfile", buf, sizeof buf, &err), PO_EOUTSIDE);
  CHECK_EQ_INT(read_str(r, "missing", buf, sizeof buf, &err), PO_EIO);
  CHECK_EQ_INT(err, ENOENT);
  CHECK_EQ_INT(read_str(r, "inner", buf, sizeof buf, &err), PO_EIO);
  CHECK_EQ_INT(err, EISDIR);

  /* writes: parents created, refused paths write nothing anywhere */
  CHECK_EQ_INT(po_file_write(r, "new/deep/file.txt", "data", 4, 1, &err), 0);
  CHECK_EQ_INT(read_str(r, "new/deep/file.txt", buf, sizeof buf, &err), 0);
  CHECK_EQ_STR(buf, "data");
  CHECK_EQ_INT(po_file_write(r, "in/via-link.txt", "x", 1, 0, &err), 0);
  CHECK_EQ_INT(read_str(r, "inner/via-link.txt", buf, sizeof buf, &err), 0);
  CHECK_EQ_INT(po_file_write(r, "../outside/w1", "x", 1, 0, &err), PO_EOUTSIDE);
  CHECK_EQ_INT(po_file_write(r, "out/w2", "x", 1, 0, &err), PO_EOUTSIDE);
  CHECK_EQ_INT(po_file_write(r, "out/newdir/w3", "x", 1, 0, &err), PO_EOUTSIDE);
  snprintf(path, sizeof path, "%s/w4", outside);
  CHECK_EQ_INT(po_file_write(r, path, "x", 1, 0, &err), PO_EOUTSIDE);
  CHECK_EQ_INT(po_file_write(r, "a/../../outside/w5", "x", 1, 0, &err), PO_EOUTSIDE);
  CHECK_EQ_INT(po_file_write(r, "dir/", "x", 1, 0, &err), PO_EINVAL);
  CHECK_EQ_INT(po_file_write(r, "", "x", 1, 0, &err), PO_EINVAL);
  /* a link as the final name is replaced, not followed */
  CHECK_EQ_INT(po_file_write(r, "sfile", "replaced", 8, 0, &err), 0);
  po_root *o;
  REQUIRE(po_root_open(outside, 0, &o, &err) == 0);
  CHECK_EQ_INT(read_str(o, "s", buf, sizeof buf, &err), 0);
  CHECK_EQ_STR(buf, "secret\n");
  po_root_close(o);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "test \"$(ls -A %s)\" = s", outside);
  CHECK(system(cmd) == 0); /* nothing else appeared outside */
  snprintf(cmd, sizeof cmd, "test -z \"$(find %s -name '*.tmp-*')\"", rootdir);
  CHECK(system(cmd) == 0); /* no temporary file left behind */
  CHECK(access("newdir", F_OK) != 0);

  po_root_close(r);
  teardown();
  po_fileio_force_fallback(0);
}

static void confined_with_openat2(void) { confined(0); }
static void confined_with_realpath_fallback(void) { confined(1); }

static void overwrite_keeps_mode_and_is_atomic(void) {
  setup();
  int err;
  char path[256];
  snprintf(path, sizeof path, "%s/inner/script.sh", rootdir);
  REQUIRE(po_file_write(NULL, path, "#!/bin/sh\n", 10, 0, &err) == 0);
  REQUIRE(chmod(path, 0751) == 0);
  REQUIRE(po_file_write(NULL, path, "#!/bin/sh\necho\n", 15, 1, &err) == 0);
  struct stat st;
  REQUIRE(stat(path, &st) == 0);
  CHECK_EQ_INT(st.st_mode & 07777, 0751);
  CHECK_EQ_INT(st.st_size, 15);
  teardown();
}

static void unconfined_paths(void) {
  setup();
  int err;
  char path[256], cwd[512];
  REQUIRE(getcwd(cwd, sizeof cwd));
  REQUIRE(chdir(base) == 0);
  CHECK_EQ_INT(po_file_write(NULL, "rel/dir/f", "r", 1, 0, &err), 0);
  snprintf(path, sizeof path, "%s/abs/f", base);
  CHECK_EQ_INT(po_file_write(NULL, path, "a", 1, 0, &err), 0);
  po_strbuf b = {0};
  CHECK_EQ_INT(po_file_read(NULL, "rel/dir/f", &b, &err), 0);
  CHECK_EQ_INT(b.len, 1);
  po_strbuf_free(&b);
  CHECK_EQ_INT(po_file_read(NULL, "abs/f", &b, &err), 0);
  po_strbuf_free(&b);
  REQUIRE(chdir(cwd) == 0);
  teardown();
}

static void root_open_errors_and_creation(void) {
  po_root *r;
  int err;
  CHECK_EQ_INT(po_root_open("/nonexistent/po/root", 0, &r, &err), PO_EIO);
  CHECK_EQ_INT(err, ENOENT);
  setup();
  char path[256];
  snprintf(path, sizeof path, "%s/made/root", base);
  REQUIRE(po_root_open(path, 1, &r, &err) == 0);
  CHECK_EQ_INT(po_file_write(r, "x", "1", 1, 0, &err), 0);
  po_root_close(r);
  teardown();
}

/* Without PO_FILE_PARENTS a missing directory is an error and nothing is
 * created; an existing one is written to as usual. */
static void write_without_parents(void) {
  setup();
  int err;
  char path[256];
  struct stat st;
  snprintf(path, sizeof path, "%s/missing/dir/f", base);
  CHECK_EQ_INT(po_file_write_flags(NULL, path, "x", 1, PO_FILE_SYNC, &err), PO_EIO);
  CHECK_EQ_INT(err, ENOENT);
  snprintf(path, sizeof path, "%s/missing", base);
  CHECK(stat(path, &st) != 0);
  po_root *r;
  REQUIRE(po_root_open(rootdir, 0, &r, &err) == 0);
  CHECK_EQ_INT(po_file_write_flags(r, "nodir/f", "x", 1, 0, &err), PO_EIO);
  CHECK_EQ_INT(err, ENOENT);
  CHECK_EQ_INT(po_file_write_flags(r, "inner/g", "yz", 2, PO_FILE_SYNC, &err), 0);
  char buf[8];
  CHECK_EQ_INT(read_str(r, "inner/g", buf, sizeof buf, &err), 0);
  CHECK_EQ_STR(buf, "yz");
  po_root_close(r);
  teardown();
}

int main(void) {
  RUN(confined_with_openat2);
  RUN(confined_with_realpath_fallback);
  RUN(overwrite_keeps_mode_and_is_atomic);
  RUN(unconfined_paths);
  RUN(root_open_errors_and_creation);
  RUN(write_without_parents);
  return TEST_SUMMARY();
}
