/* fileio under injected faults (tests/c/fault.h): every allocation, write
 * and fsync of an atomic write fails once in turn, and each time the call
 * reports it and the target keeps its old content whole. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fault.h"
#include "fileio.h"
#include "harness.h"

static char dir[64];
static po_root *root;

static const char *content_now(po_strbuf *b) {
  int err = 0;
  if (po_file_read(root, "f.txt", b, &err) != 0 || po_strbuf_append(b, "", 1) != 0) return NULL;
  return b->data;
}

/* The directory holds f.txt alone: no temporary file was left behind. */
static int only_target_left(void) {
  char cmd[160];
  snprintf(cmd, sizeof cmd, "test \"$(ls -A %s)\" = f.txt", dir);
  return system(cmd) == 0;
}

/* Writes "new" over "old": either it worked and the file says "new", or it
 * failed with PO_ENOMEM or PO_EIO (errno reported) and the file is whole,
 * old or new (new when only the directory's fsync failed, after the rename:
 * the content is there, its durability is not promised). Either way no
 * temporary file is left. */
static int replace(void *arg) {
  int sync = *(int *)arg;
  int err = 0;
  int rc = po_file_write(root, "f.txt", "new", 3, sync, &err);
  long fired = fault_fired();
  po_strbuf b;
  po_strbuf_init(&b);
  fault_disarm();
  const char *now = content_now(&b);
  int ok;
  if (rc == 0)
    ok = now && strcmp(now, "new") == 0;
  else
    ok = fired && now && (strcmp(now, "old") == 0 || strcmp(now, "new") == 0) &&
         (rc == PO_ENOMEM || (rc == PO_EIO && err != 0));
  ok = ok && only_target_left();
  if (!ok) fprintf(stderr, "replace: rc %d errno %d content %s\n", rc, err, now ? now : "(none)");
  po_strbuf_free(&b);
  int e2 = 0;
  po_file_write(root, "f.txt", "old", 3, 0, &e2);
  return ok ? 0 : 1;
}

static void setup(void) {
  strcpy(dir, "/tmp/po-fileio-fault-XXXXXX");
  REQUIRE(mkdtemp(dir) != NULL);
  int err = 0;
  REQUIRE(po_root_open(dir, 0, &root, &err) == 0);
  REQUIRE(po_file_write(root, "f.txt", "old", 3, 0, &err) == 0);
}

static void every_allocation_fails_once(void) {
  int sync = 1;
  long runs = fault_sweep("malloc", ENOMEM, replace, &sync, 200);
  CHECK(runs >= 1);
}

static void every_write_fails_once(void) {
  int sync = 1;
  long runs = fault_sweep("write", EIO, replace, &sync, 50);
  CHECK(runs >= 1);
}

static void every_fsync_fails_once(void) {
  int sync = 1;
  /* the file's fsync and the directory's */
  CHECK_EQ_INT(fault_sweep("fsync", EIO, replace, &sync, 50), 2);
}

int main(void) {
  RUN(setup);
  RUN(every_allocation_fails_once);
  RUN(every_write_fails_once);
  RUN(every_fsync_fails_once);
  po_root_close(root);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return TEST_SUMMARY();
}
