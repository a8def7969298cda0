#include "store_meta.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* LMDB's on-disk meta page (64-bit build, format version 1): a 16-byte page
 * header (page number, pad, flags, lower, upper), then magic, version,
 * address, map size, the free and main trees' records (48 bytes each; the
 * free tree's first field holds the page size), the last page and the
 * txnid. The offsets are from the start of the page. */
enum {
  OFF_PGNO = 0,
  OFF_FLAGS = 10,
  OFF_MAGIC = 16,
  OFF_VERSION = 20,
  OFF_PSIZE = 40,
  OFF_FREE_ROOT = 80,
  OFF_MAIN_ROOT = 128,
  OFF_LAST_PG = 136,
  OFF_TXNID = 144,
  META_BYTES = 152,
  P_META = 0x08,
  MIN_PSIZE = 512,
  MAX_PSIZE = 65536,
};
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_FORMAT 1u
#define NO_PAGE UINT64_MAX /* the root of an empty tree */

static uint64_t get64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static uint32_t get32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static uint16_t get16(const unsigned char *p) {
  uint16_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Checks meta page i (read into p); on failure writes why and returns 0. */
static int meta_ok(const unsigned char *p, int i, uint64_t file_size, uint32_t psize, po_store_meta *m, char *why,
                   size_t cap) {
  uint64_t pages = file_size / psize;
  if (get32(p + OFF_MAGIC) != LMDB_MAGIC || get64(p + OFF_PGNO) != (uint64_t)i || !(get16(p + OFF_FLAGS) & P_META)) {
    snprintf(why, cap, "meta page %d is not an LMDB meta page", i);
    return 0;
  }
  if (get32(p + OFF_VERSION) != LMDB_FORMAT) {
    snprintf(why, cap, "meta page %d has LMDB format version %u, not %u", i, get32(p + OFF_VERSION), LMDB_FORMAT);
    return 0;
  }
  if (get32(p + OFF_PSIZE) != psize) {
    snprintf(why, cap, "meta page %d names page size %u, meta page 0 %u", i, get32(p + OFF_PSIZE), psize);
    return 0;
  }
  uint64_t last = get64(p + OFF_LAST_PG);
  m->last_pg[i] = last;
  m->txnid[i] = get64(p + OFF_TXNID);
  if (last < 1 || last >= pages) {
    snprintf(why, cap, "meta page %d claims %llu pages but the file holds %llu (%llu bytes): truncated or damaged",
             i, (unsigned long long)last + 1, (unsigned long long)pages, (unsigned long long)file_size);
    return 0;
  }
  uint64_t roots[2] = {get64(p + OFF_FREE_ROOT), get64(p + OFF_MAIN_ROOT)};
  for (int r = 0; r < 2; r++) {
    if (roots[r] != NO_PAGE && (roots[r] < 2 || roots[r] > last)) {
      snprintf(why, cap, "meta page %d puts the %s tree's root at page %llu, outside pages 2 to %llu", i,
               r ? "main" : "free", (unsigned long long)roots[r], (unsigned long long)last);
      return 0;
    }
  }
  return 1;
}

int po_store_meta_check(const char *dir, po_store_meta *m, char *why, size_t cap) {
  po_store_meta local;
  char why_local[256];
  if (!m) m = &local;
  if (!why || !cap) why = why_local, cap = sizeof why_local;
  memset(m, 0, sizeof *m);
  why[0] = '\0';
  char file[PATH_MAX];
  if (snprintf(file, sizeof file, "%s/data.mdb", dir) >= (int)sizeof file) return PO_EINVAL;
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    snprintf(why, cap, "cannot read %s: %s", file, strerror(errno));
    return PO_EIO;
  }
  struct stat st;
  unsigned char page[2][META_BYTES];
  int rc = 0;
  if (fstat(fd, &st) != 0) {
    snprintf(why, cap, "cannot read %s: %s", file, strerror(errno));
    rc = PO_EIO;
  } else if ((m->file_size = (uint64_t)st.st_size) == 0) {
    rc = 0; /* LMDB writes a new environment into an empty file */
  } else if (pread(fd, page[0], META_BYTES, 0) != META_BYTES) {
    snprintf(why, cap, "%s is %llu bytes, too short for LMDB's meta pages", file, (unsigned long long)st.st_size);
    rc = PO_ESTORE;
  } else {
    uint32_t psize = get32(page[0] + OFF_PSIZE);
    m->page_size = psize;
    if (psize < MIN_PSIZE || psize > MAX_PSIZE || (psize & (psize - 1))) {
      snprintf(why, cap, "meta page 0 names an impossible page size %u", psize);
      rc = PO_ESTORE;
    } else if (m->file_size < 2 * (uint64_t)psize || pread(fd, page[1], META_BYTES, psize) != META_BYTES) {
      snprintf(why, cap, "%s is %llu bytes, too short for LMDB's two meta pages", file,
               (unsigned long long)st.st_size);
      rc = PO_ESTORE;
    } else {
      /* Both pages are judged, so a caller can tell which one is usable. */
      char second[256];
      m->valid[0] = meta_ok(page[0], 0, m->file_size, psize, m, why, cap);
      m->valid[1] =
          meta_ok(page[1], 1, m->file_size, psize, m, m->valid[0] ? why : second, m->valid[0] ? cap : sizeof second);
      rc = m->valid[0] && m->valid[1] ? 0 : PO_ESTORE;
    }
  }
  close(fd);
  return rc;
}

int po_store_meta_best(const po_store_meta *m) {
  if (m->valid[0] && (!m->valid[1] || m->txnid[0] >= m->txnid[1])) return 0;
  return m->valid[1] ? 1 : -1;
}

/* Copies data.mdb into tmp with the damaged meta page replaced by the intact
 * one (its txnid set to 0, so LMDB takes the intact one): the old snapshot
 * becomes readable and the original file is not touched. */
int po_store_meta_snapshot(const char *dir, const char *tmp, const po_store_meta *m, int good) {
  char from[PATH_MAX], to[PATH_MAX];
  if (snprintf(from, sizeof from, "%s/data.mdb", dir) >= (int)sizeof from ||
      snprintf(to, sizeof to, "%s/data.mdb", tmp) >= (int)sizeof to)
    return PO_EINVAL;
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return PO_EIO;
  int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int rc = in >= 0 && out >= 0 ? 0 : PO_EIO;
  char buf[1 << 16];
  ssize_t got = 0;
  while (rc == 0 && (got = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)got) != got) rc = PO_EIO;
  if (got < 0) rc = PO_EIO; /* not the end: a copy cut short would pass for the snapshot */
  unsigned char meta[META_BYTES];
  int bad = 1 - good;
  if (rc == 0 && pread(in, meta, sizeof meta, (off_t)good * m->page_size) != (ssize_t)sizeof meta) rc = PO_EIO;
  if (rc == 0) {
    uint64_t pgno = (uint64_t)bad, txnid = 0;
    memcpy(meta, &pgno, sizeof pgno);
    memcpy(meta + OFF_TXNID, &txnid, sizeof txnid);
    if (pwrite(out, meta, sizeof meta, (off_t)bad * m->page_size) != (ssize_t)sizeof meta) rc = PO_EIO;
  }
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  return rc;
}
