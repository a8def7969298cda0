/* The cache's record decoders, reached the way a damaged or hostile store
 * reaches them: the input is a set of raw records written straight into the
 * cache's LMDB databases (cache_entries, cache_order, cache_expiry,
 * cache_ns, cache_vectors), then the cache's persistent tier
 * (src/core/cache_disk.c) reads, writes, evicts, expires, deletes and clears
 * over them, and the vector records go through the semantic tier's decoder
 * (po_cache_sem_add_record, src/core/cache_semantic.c).
 *
 * Properties: every call returns (a hang is a libFuzzer timeout) with 0 or a
 * documented code, and nothing reads or writes outside a record. */
#include "fuzz.h"

#include "cache.h"
#include "cache_disk.h"
#include "cache_semantic.h"
#include "error.h"
#include "store.h"

#include <string.h>

enum { NS_ID = 8, HASH = 16, MAX_HASHES = 16, NDB = 5 };

static po_cache_disk *disk;
static MDB_dbi dbis[NDB];
static unsigned char ns_id[NS_ID];
static const char *const db_names[NDB] = {"cache_entries", "cache_order", "cache_expiry", "cache_ns", "cache_vectors"};

typedef struct input {
  const uint8_t *p, *end;
  po_cache_hash hashes[MAX_HASHES]; /* the hashes the records name, to look up */
  size_t nhashes;
} input;

static unsigned take(input *in) { return in->p < in->end ? *in->p++ : 0; }

static void remember(input *in, const unsigned char *h) {
  if (in->nhashes == MAX_HASHES) return;
  memcpy(&in->hashes[in->nhashes].lo, h, 8);
  memcpy(&in->hashes[in->nhashes].hi, h + 8, 8);
  in->nhashes++;
}

/* Empties the databases and writes the input's records into them:
 * db selector, flags (bit 0: start the key with our namespace id), key
 * length and bytes, value length (two bytes) and bytes. */
static int load_fn(MDB_txn *txn, void *ud) {
  input *in = ud;
  for (int i = 0; i < NDB; i++) FUZZ_CHECK(mdb_drop(txn, dbis[i], 0) == 0);
  while (in->p < in->end) {
    unsigned db = take(in) % NDB, flags = take(in);
    unsigned char key[NS_ID + 64];
    size_t klen = 0;
    if (flags & 1) {
      memcpy(key, ns_id, NS_ID);
      klen = NS_ID;
    }
    size_t n = take(in) % 41;
    for (size_t i = 0; i < n; i++) key[klen++] = (unsigned char)take(in);
    size_t vlen = take(in);
    vlen |= (size_t)take(in) << 8;
    vlen %= 4096;
    if (vlen > (size_t)(in->end - in->p)) vlen = (size_t)(in->end - in->p);
    MDB_val k = {klen, key}, v = {vlen, (void *)in->p};
    in->p += vlen;
    if (klen == 0) continue;
    if (klen >= NS_ID + HASH && (db == 0 || db == 2)) remember(in, key + klen - HASH);
    if (db == 1 && vlen >= HASH) remember(in, v.mv_data);
    int rc = mdb_put(txn, dbis[db], &k, &v, 0);
    FUZZ_CHECK(rc == 0 || rc == MDB_BAD_VALSIZE);
  }
  return 0;
}

static int is_code(int rc, int allowed) { return rc == 0 || rc == PO_ENOENT || rc == PO_ESTORE || rc == allowed; }

static int add_vector(void *ctx, uint64_t seq, const void *record, size_t len) {
  int rc = po_cache_sem_add_record(ctx, seq, record, len);
  FUZZ_CHECK(rc == 0 || rc == PO_EINVAL);
  if (rc == 0 && len >= 24) {
    po_cache_hash group;
    memcpy(&group, (const char *)record + 8, sizeof group); /* the layout in cache_semantic.h */
    int dim = po_cache_sem_dim(ctx, group);
    FUZZ_CHECK(dim >= 1 && dim <= PO_CACHE_MAX_DIM);
    float q[PO_CACHE_MAX_DIM] = {1.0f};
    po_cache_sem_candidate out[2];
    FUZZ_CHECK(po_cache_sem_search(ctx, group, q, dim, "x = 1", 5, 0.5f, 2, out) <= 2);
  }
  return 0;
}

static int keep_all(void *ctx, po_cache_hash entry) { return 1; }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char dir[] = "/tmp/po-fuzz-store-XXXXXX";
  FUZZ_CHECK(mkdtemp(dir) != NULL);
  FUZZ_CHECK(po_cache_disk_open(dir, "fuzz", &disk) == 0);
  po_store *s = po_cache_disk_store(disk);
  for (int i = 0; i < NDB; i++) FUZZ_CHECK(po_store_dbi(s, db_names[i], 0, &dbis[i]) == 0);
  /* Our namespace id: the key of the record the first write makes. */
  po_cache_disk_write w = {.sync = PO_STORE_SYNC_NONE, .max_entries = 10};
  po_cache_hash h = {1, 2};
  FUZZ_CHECK(po_cache_disk_put(disk, &w, h, "k", 1, "v", 1, 0, 1.0, 0, NULL) == 0);
  MDB_txn *txn;
  FUZZ_CHECK(po_store_read_begin(s, &txn) == 0);
  MDB_cursor *cur;
  MDB_val k, v;
  FUZZ_CHECK(mdb_cursor_open(txn, dbis[3], &cur) == 0 && mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0);
  FUZZ_CHECK(k.mv_size == NS_ID);
  memcpy(ns_id, k.mv_data, NS_ID);
  mdb_cursor_close(cur);
  po_store_read_end(s, txn);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  input in = {data + 1, data + size, {{0, 0}}, 0};
  unsigned ops = data[0];
  FUZZ_CHECK(po_store_write(po_cache_disk_store(disk), PO_STORE_SYNC_NONE, load_fn, &in) == 0);

  const double now = 1.7e9;
  uint64_t count, bytes, seq;
  FUZZ_CHECK(is_code(po_cache_disk_size(disk, &count, &bytes), 0));
  FUZZ_CHECK(is_code(po_cache_disk_vector_seq(disk, &seq), 0));

  po_cache_sem *sem;
  FUZZ_CHECK(po_cache_sem_new(&sem) == 0);
  uint64_t last = 0;
  FUZZ_CHECK(is_code(po_cache_disk_vectors(disk, 0, add_vector, sem, &last), 0));
  po_cache_sem_purge(sem, keep_all, NULL);
  po_cache_sem_free(sem);

  po_strbuf value, key;
  po_strbuf_init(&value);
  po_strbuf_init(&key);
  for (size_t i = 0; i < in.nhashes; i++) {
    po_cache_disk_entry e;
    int expired;
    FUZZ_CHECK(is_code(po_cache_disk_get(disk, in.hashes[i], NULL, 0, now, &e, &value, &key, &expired), 0));
    FUZZ_CHECK(is_code(po_cache_disk_get(disk, in.hashes[i], "k", 1, now, &e, &value, NULL, &expired), 0));
    if (ops & 1) FUZZ_CHECK(is_code(po_cache_disk_drop_expired(disk, in.hashes[i], now), 0));
  }
  po_strbuf_free(&value);
  po_strbuf_free(&key);

  /* A write: refreshes the named entries, drops expired ones, evicts down
   * to a small limit over whatever the records claim. */
  po_cache_disk_write w = {
      .sync = PO_STORE_SYNC_NONE,
      .policy = ops & 2 ? PO_CACHE_SIEVE : PO_CACHE_LRU,
      .max_entries = 1 + (ops >> 2 & 3),
      .max_bytes = ops & 16 ? 64 : 0,
      .touched = in.hashes,
      .ntouched = in.nhashes,
  };
  po_cache_hash h = in.nhashes ? in.hashes[0] : (po_cache_hash){3, 4};
  FUZZ_CHECK(is_code(po_cache_disk_put(disk, &w, h, "k", 1, "value", 5, 0, now, ops & 32 ? now + 60 : 0, NULL),
                     PO_EMAPFULL));
  if (in.nhashes > 1)
    FUZZ_CHECK(is_code(po_cache_disk_delete(disk, PO_STORE_SYNC_NONE, in.hashes[1], NULL, 0), 0));
  if (ops & 64) FUZZ_CHECK(is_code(po_cache_disk_clear(disk, PO_STORE_SYNC_NONE), 0));
  return 0;
}
