/* Tests for src/core/cache_record.c (the one-string form of a cache entry
 * that the shared tier stores) and po_cache_put, which takes such an entry
 * into the local tiers with its own write time and expiry. */
#include "cache.h"
#include "cache_record.h"
#include "clock.h"
#include "error.h"

#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

static void round_trip(void) {
  const char key[] = "k\0ey", value[] = "v\0alue\xff";
  po_strbuf b = {0};
  REQUIRE(po_cache_record_encode(key, sizeof key, value, sizeof value, 3, 100.5, 200.25, &b) == 0);
  CHECK_EQ_INT(b.len, po_cache_record_header_size() + sizeof key + sizeof value);
  po_cache_record r;
  REQUIRE(po_cache_record_decode(b.data, b.len, &r) == 0);
  CHECK_EQ_INT(r.flags, 3);
  CHECK(r.created == 100.5 && r.expires == 200.25);
  CHECK(r.klen == sizeof key && memcmp(r.key, key, sizeof key) == 0);
  CHECK(r.vlen == sizeof value && memcmp(r.value, value, sizeof value) == 0);
  /* an empty value, and a buffer reused for a smaller record */
  REQUIRE(po_cache_record_encode("k", 1, "", 0, 0, 1, 0, &b) == 0);
  REQUIRE(po_cache_record_decode(b.data, b.len, &r) == 0);
  CHECK(r.klen == 1 && r.vlen == 0 && r.expires == 0);
  po_strbuf_free(&b);
}

static void refuses_what_is_not_a_record(void) {
  po_strbuf b = {0};
  REQUIRE(po_cache_record_encode("key", 3, "value", 5, 0, 1, 0, &b) == 0);
  po_cache_record r;
  CHECK_EQ_INT(po_cache_record_decode(b.data, po_cache_record_header_size() - 1, &r), PO_EINVAL);
  CHECK_EQ_INT(po_cache_record_decode("plain text from another program", 31, &r), PO_EINVAL);
  /* a key that runs past the end */
  CHECK_EQ_INT(po_cache_record_decode(b.data, po_cache_record_header_size() + 2, &r), PO_EINVAL);
  b.data[0] = 2; /* another version */
  CHECK_EQ_INT(po_cache_record_decode(b.data, b.len, &r), PO_EINVAL);
  po_strbuf_free(&b);
}

static void put_keeps_age_and_expiry(void) {
  char dir[] = "/tmp/po_cache_record_XXXXXX";
  REQUIRE(mkdtemp(dir));
  po_cache_options o = {dir, "put", 100, 0, PO_CACHE_LRU};
  po_cache *c = NULL;
  REQUIRE(po_cache_open(&o, &c) == 0);
  double now = po_wallclock();
  CHECK_EQ_INT(po_cache_put(c, "old", 3, "v", 1, 1, now - 50, now + 100, PO_STORE_SYNC_NONE), 0);
  CHECK_EQ_INT(po_cache_put(c, "gone", 4, "v", 1, 0, now - 50, now - 1, PO_STORE_SYNC_NONE), 0);
  CHECK_EQ_INT(po_cache_put(c, "bad", 3, "v", 1, 0, -1, 0, PO_STORE_SYNC_NONE), PO_EINVAL);
  po_cache_result r = {0};
  CHECK_EQ_INT(po_cache_get(c, "old", 3, &r), 0);
  CHECK(r.age >= 49.9 && r.age < 60);
  CHECK_EQ_INT(r.flags, 1);
  CHECK_EQ_INT(po_cache_get(c, "gone", 4, &r), PO_ENOENT);
  po_cache_stats s;
  REQUIRE(po_cache_stats_get(c, &s) == 0);
  CHECK_EQ_INT(s.sets, 0); /* a fill is not the caller's set */
  po_cache_close(c);
  /* the store kept the write time: a fresh open reads the same age */
  REQUIRE(po_cache_open(&o, &c) == 0);
  CHECK_EQ_INT(po_cache_get(c, "old", 3, &r), 0);
  CHECK(r.age >= 49.9 && r.age < 60);
  po_cache_result_free(&r);
  po_cache_close(c);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

int main(void) {
  RUN(round_trip);
  RUN(refuses_what_is_not_a_record);
  RUN(put_keeps_age_and_expiry);
  return TEST_SUMMARY();
}
