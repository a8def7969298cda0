/* Damaged bytes where the cache reads its own formats back: a canonical key
 * cut or corrupted at each kind of item (po_cache_key_describe refuses it),
 * a semantic-tier vector record that is not one (po_cache_sem_add_record
 * refuses it and the tier is unchanged), and an entry record damaged in the
 * store (inspecting and pruning report PO_ESTORE and remove nothing). */
#include "cache.h"
#include "cache_disk_internal.h"
#include "cache_key.h"
#include "cache_semantic.h"
#include "error.h"
#include "store.h"

#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { M = PO_CACHE_KEY_MAGIC, V = PO_CACHE_KEY_VERSION };
enum { KNULL = PO_CACHE_KEY_NULL, KNUM = PO_CACHE_KEY_NUMBER, KSTR = PO_CACHE_KEY_STRING };
enum { KARR = PO_CACHE_KEY_ARRAY, KOBJ = PO_CACHE_KEY_OBJECT };

static int describe_rc(const unsigned char *p, size_t len) {
  po_strbuf out = {0};
  int rc = po_cache_key_describe(p, len, &out);
  po_strbuf_free(&out);
  return rc;
}

#define REFUSED(...)                                                    \
  do {                                                                  \
    const unsigned char bytes_[] = {M, V, __VA_ARGS__};                 \
    CHECK_EQ_INT(describe_rc(bytes_, sizeof bytes_), PO_EINVAL);        \
  } while (0)

static void a_damaged_key_is_refused_at_every_item(void) {
  REFUSED(KSTR, 0x80);                                                 /* a length that stops short */
  REFUSED(KSTR, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01); /* longer than 64 bits */
  REFUSED(KNUM, 0, 0, 0, 0);                                           /* a number cut short */
  REFUSED(KNUM, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f);                         /* NaN is no key */
  REFUSED(KSTR, 9, 'a');                                               /* a string past the end */
  REFUSED(0x7e);                                                       /* no such tag */
  REFUSED(KARR);                                                       /* an array without its count */
  REFUSED(KARR, 2, KNULL);                                             /* one item short */
  REFUSED(KOBJ);                                                       /* an object without its count */
  REFUSED(KOBJ, 1);                                                    /* without its name */
  REFUSED(KOBJ, 1, KNUM, 0, 0);                                        /* a number name cut short */
  REFUSED(KOBJ, 1, KSTR, 1, 'a');                                      /* a name without its value */
  /* a number name reads back as a number */
  const unsigned char num_name[] = {M, V, KOBJ, 1, KNUM, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, KNULL};
  po_strbuf out = {0};
  CHECK_EQ_INT(po_cache_key_describe(num_name, sizeof num_name, &out), 0);
  CHECK(out.len == 10 && memcmp(out.data, "{1.5:null}", 10) == 0);
  po_strbuf_free(&out);
  /* nesting deeper than any key the walker writes */
  enum { DEEP = 1100 };
  unsigned char deep[2 + 2 * DEEP + 1];
  deep[0] = M;
  deep[1] = V;
  for (int i = 0; i < DEEP; i++) {
    deep[2 + 2 * i] = KARR;
    deep[3 + 2 * i] = 1;
  }
  deep[2 + 2 * DEEP] = KNULL;
  CHECK_EQ_INT(describe_rc(deep, sizeof deep), PO_EINVAL);
}

/* ---- vector records -------------------------------------------------------------- */

static po_cache_vector vec3(const float *v, const char *embedder) {
  po_cache_vector cv = {0};
  cv.group = po_cache_hash_key("g", 1);
  cv.embedder = embedder;
  cv.embedder_len = strlen(embedder);
  cv.text = "text";
  cv.text_len = 4;
  cv.vec = v;
  cv.dim = 3;
  return cv;
}

static void a_damaged_vector_record_is_refused(void) {
  const float v[3] = {1, 0, 0};
  po_cache_vector cv = vec3(v, "emb");
  po_strbuf rec = {0};
  REQUIRE(po_cache_sem_encode(&cv, po_cache_hash_key("k", 1), &rec) == 0);
  po_cache_sem *s;
  REQUIRE(po_cache_sem_new(&s) == 0);
  char *copy = malloc(rec.len + 1);
  REQUIRE(copy);
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, rec.data, 10), PO_EINVAL); /* shorter than its header */
  memcpy(copy, rec.data, rec.len);
  copy[0] = 9; /* another version */
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, copy, rec.len), PO_EINVAL);
  memcpy(copy, rec.data, rec.len);
  copy[1] = 1; /* another kind of vector */
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, copy, rec.len), PO_EINVAL);
  memcpy(copy, rec.data, rec.len);
  copy[2] = copy[3] = 0; /* dim 0 */
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, copy, rec.len), PO_EINVAL);
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, rec.data, rec.len - 1), PO_EINVAL); /* cut short */
  memcpy(copy, rec.data, rec.len);
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, copy, rec.len + 1), PO_EINVAL); /* one byte too many */
  CHECK_EQ_INT(po_cache_sem_count(s), 0);
  /* the record itself is taken, and a record of another dim in its group is not */
  CHECK_EQ_INT(po_cache_sem_add_record(s, 1, rec.data, rec.len), 0);
  const float w[4] = {0, 1, 0, 0};
  po_cache_vector cw = vec3(w, "emb");
  cw.dim = 4;
  po_strbuf rec4 = {0};
  REQUIRE(po_cache_sem_encode(&cw, po_cache_hash_key("k2", 2), &rec4) == 0);
  CHECK_EQ_INT(po_cache_sem_add_record(s, 2, rec4.data, rec4.len), PO_EINVAL);
  CHECK_EQ_INT(po_cache_sem_count(s), 1);
  CHECK_EQ_INT(po_cache_sem_dim(s, cv.group), 3);
  /* what cannot be encoded: no dimensions, too many, an embedder id over 255 bytes, no direction */
  char long_id[300];
  memset(long_id, 'e', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  po_cache_vector bad = vec3(v, long_id);
  CHECK_EQ_INT(po_cache_sem_encode(&bad, po_cache_hash_key("k", 1), &rec), PO_EINVAL);
  bad = vec3(v, "emb");
  bad.dim = 0;
  CHECK_EQ_INT(po_cache_sem_encode(&bad, po_cache_hash_key("k", 1), &rec), PO_EINVAL);
  bad.dim = PO_CACHE_MAX_DIM + 1;
  CHECK_EQ_INT(po_cache_sem_encode(&bad, po_cache_hash_key("k", 1), &rec), PO_EINVAL);
  const float zero[3] = {0, 0, 0}, inf[3] = {INFINITY, 0, 0};
  bad = vec3(zero, "emb");
  CHECK_EQ_INT(po_cache_sem_encode(&bad, po_cache_hash_key("k", 1), &rec), PO_EINVAL);
  bad = vec3(inf, "emb");
  CHECK_EQ_INT(po_cache_sem_encode(&bad, po_cache_hash_key("k", 1), &rec), PO_EINVAL);
  free(copy);
  po_strbuf_free(&rec);
  po_strbuf_free(&rec4);
  po_cache_sem_free(s);
}

/* ---- entry records in the store ----------------------------------------------- */

typedef struct damage {
  po_cache_disk *d;
  po_cache_hash h;
  int how; /* 0: another version, 1: a key length past the end, 2: shorter than a header */
} damage;

static int damage_record(MDB_txn *txn, void *arg) {
  damage *dm = arg;
  unsigned char k[ENTRY_KEY];
  memcpy(k, dm->d->ns_id, NS_ID);
  memcpy(k + NS_ID, &dm->h.lo, 8);
  memcpy(k + NS_ID + 8, &dm->h.hi, 8);
  MDB_val key = {ENTRY_KEY, k}, val;
  int rc = mdb_get(txn, dm->d->entries, &key, &val);
  if (rc != 0) return PO_ESTORE;
  unsigned char copy[256];
  if (val.mv_size > sizeof copy) return PO_ESTORE;
  memcpy(copy, val.mv_data, val.mv_size);
  entry_hdr hdr;
  memcpy(&hdr, copy, sizeof hdr);
  if (dm->how == 0) hdr.version = RECORD_VERSION + 1;
  if (dm->how == 1) hdr.klen = 1000;
  memcpy(copy, &hdr, sizeof hdr);
  MDB_val nv = {dm->how == 2 ? sizeof hdr - 1 : val.mv_size, copy};
  return mdb_put(txn, dm->d->entries, &key, &nv, 0) == 0 ? 0 : PO_ESTORE;
}

static void a_damaged_entry_record_stops_inspection_and_pruning(void) {
  for (int how = 0; how < 3; how++) {
    char dir[64];
    strcpy(dir, "/tmp/po-cache-damaged-XXXXXX");
    REQUIRE(mkdtemp(dir) != NULL);
    po_cache_disk *d;
    REQUIRE(po_cache_disk_open(dir, "default", &d) == 0);
    for (int i = 0; i < 3; i++) {
      char k[8];
      snprintf(k, sizeof k, "k%d", i);
      po_cache_disk_write w = {.sync = PO_STORE_SYNC_NONE, .policy = PO_CACHE_LRU, .max_entries = 100};
      REQUIRE(po_cache_disk_put(d, &w, po_cache_hash_key(k, 2), k, 2, "value", 5, 0, 100 + i, 0, NULL) == 0);
    }
    damage dm = {d, po_cache_hash_key("k1", 2), how};
    REQUIRE(po_store_write(po_cache_disk_store(d), PO_STORE_SYNC_NONE, damage_record, &dm) == 0);
    po_cache_disk_info info;
    CHECK_EQ_INT(po_cache_disk_info_get(d, 1000, &info), PO_ESTORE);
    CHECK(strstr(po_store_last_error(), "a cache entry record is damaged") != NULL);
    po_cache_disk_prune p = {.now = 1000, .by_age = 1, .older_than = 0};
    CHECK_EQ_INT(po_cache_disk_prune_run(d, &p), PO_ESTORE);
    p = (po_cache_disk_prune){.now = 1000, .by_bytes = 1, .max_bytes = 5};
    CHECK_EQ_INT(po_cache_disk_prune_run(d, &p), PO_ESTORE);
    /* nothing went: the entry before the damaged one is still there */
    po_strbuf v = {0};
    po_cache_disk_entry e;
    int expired;
    CHECK_EQ_INT(po_cache_disk_get(d, po_cache_hash_key("k0", 2), "k0", 2, 1000, &e, &v, NULL, &expired), 0);
    po_strbuf_free(&v);
    po_cache_disk_close(d);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
  }
}

static void prune_refuses_a_bad_age_and_listing_a_file(void) {
  char dir[64];
  strcpy(dir, "/tmp/po-cache-damaged-XXXXXX");
  REQUIRE(mkdtemp(dir) != NULL);
  po_cache_disk *d;
  REQUIRE(po_cache_disk_open(dir, "default", &d) == 0);
  const double bad[] = {-1, NAN, 1e301, INFINITY};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    po_cache_disk_prune p = {.now = 1000, .by_age = 1, .older_than = bad[i]};
    CHECK_EQ_INT(po_cache_disk_prune_run(d, &p), PO_EINVAL);
  }
  po_cache_disk_close(d);
  char file[96];
  snprintf(file, sizeof file, "%s/data.mdb", dir);
  CHECK_EQ_INT(po_cache_disk_namespaces(file, NULL, NULL), PO_ENOENT);
  CHECK(strstr(po_store_last_error(), "not a directory") != NULL);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
}

int main(void) {
  RUN(a_damaged_key_is_refused_at_every_item);
  RUN(a_damaged_vector_record_is_refused);
  RUN(a_damaged_entry_record_stops_inspection_and_pruning);
  RUN(prune_refuses_a_bad_age_and_listing_a_file);
  return TEST_SUMMARY();
}
