/* Tests for src/core/redis_url.c: the URL forms users write, and refusals
 * whose explanation never repeats the password. */
#include "error.h"
#include "harness.h"
#include "redis_url.h"

#include <string.h>

static void test_tcp(void) {
  po_redis_url u;
  const char *why;
  REQUIRE(po_redis_url_parse("redis://localhost", &u, &why) == 0);
  CHECK_EQ_STR(u.host, "localhost");
  CHECK_EQ_INT(u.port, 6379);
  CHECK_EQ_INT(u.db, 0);
  CHECK(u.path == NULL && u.user == NULL && u.password == NULL);
  po_redis_url_free(&u);

  REQUIRE(po_redis_url_parse("redis://10.0.0.2:7000/3", &u, &why) == 0);
  CHECK_EQ_STR(u.host, "10.0.0.2");
  CHECK_EQ_INT(u.port, 7000);
  CHECK_EQ_INT(u.db, 3);
  po_redis_url_free(&u);

  REQUIRE(po_redis_url_parse("REDIS://[::1]:6380/", &u, &why) == 0);
  CHECK_EQ_STR(u.host, "::1");
  CHECK_EQ_INT(u.port, 6380);
  po_redis_url_free(&u);
}

static void test_credentials(void) {
  po_redis_url u;
  const char *why;
  REQUIRE(po_redis_url_parse("redis://:s3cret@h:1/2", &u, &why) == 0);
  CHECK(u.user == NULL);
  CHECK_EQ_STR(u.password, "s3cret");
  CHECK_EQ_STR(u.host, "h");
  po_redis_url_free(&u);

  /* percent-encoded '@' and ':' in the password; the last '@' ends it */
  REQUIRE(po_redis_url_parse("redis://alice:p%40ss%3Aw@rd@h", &u, &why) == 0);
  CHECK_EQ_STR(u.user, "alice");
  CHECK_EQ_STR(u.password, "p@ss:w@rd");
  CHECK_EQ_STR(u.host, "h");
  po_redis_url_free(&u);
  CHECK(u.password == NULL);
}

static void test_unix(void) {
  po_redis_url u;
  const char *why;
  REQUIRE(po_redis_url_parse("unix:///tmp/r.sock", &u, &why) == 0);
  CHECK_EQ_STR(u.path, "/tmp/r.sock");
  CHECK(u.host == NULL);
  CHECK_EQ_INT(u.db, 0);
  po_redis_url_free(&u);

  REQUIRE(po_redis_url_parse("unix://:pw@/run/redis.sock?db=5", &u, &why) == 0);
  CHECK_EQ_STR(u.path, "/run/redis.sock");
  CHECK_EQ_STR(u.password, "pw");
  CHECK_EQ_INT(u.db, 5);
  po_redis_url_free(&u);
}

static void test_refused(void) {
  static const char *const bad[] = {
      "http://h",           "redis://",           "redis://h:0",        "redis://h:65536",  "redis://h:x",
      "redis://h/x",        "redis://h/1?a=b",    "redis://[::1",       "redis://user@h",   "redis://:@h",
      "redis://:a%zzb@h",   "unix://relative",    "unix://h/p.sock",    "unix:///p?x=1",    "unix://",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    po_redis_url u;
    const char *why = NULL;
    int rc = po_redis_url_parse(bad[i], &u, &why);
    if (rc != PO_EINVAL) fprintf(stderr, "accepted or wrong code: %s -> %d\n", bad[i], rc);
    CHECK_EQ_INT(rc, PO_EINVAL);
    CHECK(why && why[0]);
    CHECK(u.host == NULL && u.password == NULL);
  }
}

static void test_tls_unsupported(void) {
  po_redis_url u;
  const char *why;
  CHECK_EQ_INT(po_redis_url_parse("rediss://:topsecret@h:6380", &u, &why), PO_EUNSUPPORTED);
  CHECK(strstr(why, "TLS") != NULL);
  CHECK(strstr(why, "topsecret") == NULL);
}

static void test_copy(void) {
  po_redis_url u, v;
  const char *why;
  REQUIRE(po_redis_url_parse("redis://bob:pw@h:9/1", &u, &why) == 0);
  REQUIRE(po_redis_url_copy(&v, &u) == 0);
  po_redis_url_free(&u);
  CHECK_EQ_STR(v.user, "bob");
  CHECK_EQ_STR(v.password, "pw");
  CHECK_EQ_STR(v.host, "h");
  CHECK_EQ_INT(v.port, 9);
  CHECK_EQ_INT(v.db, 1);
  po_redis_url_free(&v);
}

int main(void) {
  RUN(test_tcp);
  RUN(test_credentials);
  RUN(test_unix);
  RUN(test_refused);
  RUN(test_tls_unsupported);
  RUN(test_copy);
  return TEST_SUMMARY();
}
