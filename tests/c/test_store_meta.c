/* Tests for src/core/store_meta.c: real data files damaged one field of a
 * meta page at a time (magic, page number, flags, format version, page size,
 * tree roots, last page), cut between the two meta pages, and the snapshot's
 * failures. Each is named, and the intact page is told apart. */
#include "error.h"
#include "store.h"
#include "store_meta.h"

#include "harness.h"
#include "../fixtures/store/corrupt.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum { PSIZE_AT = META_PSIZE, PGNO_AT = 0, FLAGS_AT = 10, VERSION_AT = 20, FREE_ROOT_AT = 80, MAIN_ROOT_AT = 128 };

static char *fresh_store(void) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/po_store_meta_XXXXXX");
  if (!mkdtemp(path)) return NULL;
  po_store *s;
  if (po_store_open(path, NULL, &s) != 0) return NULL;
  po_store_close(s);
  return path;
}

static void remove_dir(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

static void write_at(const char *dir, long off, const void *bytes, size_t n) {
  int fd = corrupt_open(dir);
  CHECK(fd >= 0 && pwrite(fd, bytes, n, off) == (ssize_t)n);
  close(fd);
}

static uint32_t page_size(const char *dir) {
  int fd = corrupt_open(dir);
  uint32_t p = (uint32_t)corrupt_read64(fd, PSIZE_AT);
  close(fd);
  return p;
}

/* Writes n bytes of v at field off of meta page `page`, then checks that the
 * store is refused naming `why`, with the other page still valid. */
static void damaged(int page, int off, uint64_t v, size_t n, const char *why) {
  char *dir = fresh_store();
  REQUIRE(dir != NULL);
  uint32_t psize = page_size(dir);
  write_at(dir, (long)page * psize + off, &v, n);
  po_store_meta m;
  char text[256];
  CHECK_EQ_INT(po_store_meta_check(dir, &m, text, sizeof text), PO_ESTORE);
  if (!strstr(text, why)) fprintf(stderr, "got: %s\n", text);
  CHECK(strstr(text, why) != NULL);
  CHECK_EQ_INT(m.valid[page], 0);
  CHECK_EQ_INT(m.valid[1 - page], 1);
  CHECK_EQ_INT(po_store_meta_best(&m), 1 - page);
  remove_dir(dir);
}

static void each_field_is_checked(void) {
  damaged(1, META_MAGIC, 0, 4, "meta page 1 is not an LMDB meta page");
  damaged(1, PGNO_AT, 7, 8, "meta page 1 is not an LMDB meta page");
  damaged(1, FLAGS_AT, 0, 2, "meta page 1 is not an LMDB meta page");
  damaged(1, VERSION_AT, 2, 4, "meta page 1 has LMDB format version 2, not 1");
  damaged(1, PSIZE_AT, 8192, 4, "meta page 1 names page size 8192, meta page 0 4096");
  damaged(1, MAIN_ROOT_AT, 1, 8, "meta page 1 puts the main tree's root at page 1");
  damaged(1, FREE_ROOT_AT, 99999, 8, "meta page 1 puts the free tree's root at page 99999");
  damaged(1, META_LAST_PG, 0, 8, "meta page 1 claims 1 pages");
  damaged(0, VERSION_AT, 9, 4, "meta page 0 has LMDB format version 9");
}

static void impossible_page_sizes(void) {
  static const uint32_t sizes[] = {256, 3000, 131072};
  static const char *const texts[] = {"impossible page size 256", "impossible page size 3000",
                                      "impossible page size 131072"};
  for (int i = 0; i < 3; i++) {
    char *dir = fresh_store();
    REQUIRE(dir != NULL);
    write_at(dir, PSIZE_AT, &sizes[i], 4);
    char text[256];
    po_store_meta m;
    CHECK_EQ_INT(po_store_meta_check(dir, &m, text, sizeof text), PO_ESTORE);
    CHECK(strstr(text, texts[i]) != NULL);
    CHECK_EQ_INT(po_store_meta_best(&m), -1);
    remove_dir(dir);
  }
}

/* Cut inside the second meta page: too short, whichever way it is asked. */
static void cut_between_the_meta_pages(void) {
  char *dir = fresh_store();
  REQUIRE(dir != NULL);
  corrupt_truncate(dir, page_size(dir) + 100);
  char text[256];
  CHECK_EQ_INT(po_store_meta_check(dir, NULL, text, sizeof text), PO_ESTORE);
  CHECK(strstr(text, "too short for LMDB's two meta pages") != NULL);
  CHECK_EQ_INT(po_store_meta_check(dir, NULL, NULL, 0), PO_ESTORE); /* m and why are optional */
  remove_dir(dir);
}

/* The sound page with the higher transaction wins. */
static void the_newer_intact_page_is_best(void) {
  po_store_meta m = {.valid = {1, 1}, .txnid = {5, 6}};
  CHECK_EQ_INT(po_store_meta_best(&m), 1);
  m.txnid[0] = 7;
  CHECK_EQ_INT(po_store_meta_best(&m), 0);
  m.valid[0] = 0;
  CHECK_EQ_INT(po_store_meta_best(&m), 1);
}

static void paths_and_snapshot_failures(void) {
  char longdir[PATH_MAX + 8];
  memset(longdir, 'd', sizeof longdir - 1);
  longdir[0] = '/';
  longdir[sizeof longdir - 1] = '\0';
  CHECK_EQ_INT(po_store_meta_check(longdir, NULL, NULL, 0), PO_EINVAL);
  char *dir = fresh_store();
  REQUIRE(dir != NULL);
  po_store_meta m;
  REQUIRE(po_store_meta_check(dir, &m, NULL, 0) == 0);
  CHECK_EQ_INT(po_store_meta_snapshot(dir, longdir, &m, 0), PO_EINVAL);
  CHECK_EQ_INT(po_store_meta_snapshot(longdir, "/tmp", &m, 0), PO_EINVAL);
  char snap[128];
  snprintf(snap, sizeof snap, "%s/no/such/parent", dir);
  CHECK_EQ_INT(po_store_meta_snapshot(dir, snap, &m, 0), PO_EIO);
  /* The intact page is read at its page size: one beyond the file reads nothing. */
  snprintf(snap, sizeof snap, "%s/snap", dir);
  m.page_size = 1u << 30;
  CHECK_EQ_INT(po_store_meta_snapshot(dir, snap, &m, 1), PO_EIO);
  remove_dir(dir);
}

int main(void) {
  RUN(each_field_is_checked);
  RUN(impossible_page_sizes);
  RUN(cut_between_the_meta_pages);
  RUN(the_newer_intact_page_is_best);
  RUN(paths_and_snapshot_failures);
  return TEST_SUMMARY();
}
