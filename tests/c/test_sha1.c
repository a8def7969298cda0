/* Tests for src/core/sha1.c against FIPS 180 examples and the digest Redis
 * itself gives a script (SCRIPT LOAD "return 1"). */
#include "harness.h"
#include "sha1.h"

#include <stdlib.h>
#include <string.h>

static const char *hex(const char *s, size_t len) {
  static char out[41];
  po_sha1_hex(s, len, out);
  return out;
}

static void test_vectors(void) {
  CHECK_EQ_STR(hex("", 0), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CHECK_EQ_STR(hex("abc", 3), "a9993e364706816aba3e25717850c26c9cd0d89d");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes: two tail blocks */
  CHECK_EQ_STR(hex(two, strlen(two)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  CHECK_EQ_STR(hex("return 1", 8), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

static void test_million(void) {
  char *a = malloc(1000000);
  REQUIRE(a != NULL);
  memset(a, 'a', 1000000);
  CHECK_EQ_STR(hex(a, 1000000), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  free(a);
}

static void test_block_edges(void) {
  /* lengths around 55/56/64 take different padding paths; every one must
   * differ from its neighbours (a wrong tail would collide or crash) */
  char buf[130];
  memset(buf, 'x', sizeof buf);
  char prev[41] = "";
  for (size_t n = 50; n <= 130; n++) {
    const char *h = hex(buf, n);
    CHECK(strcmp(h, prev) != 0);
    strcpy(prev, h);
  }
  CHECK_EQ_STR(hex(buf, 64), "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163");
}

int main(void) {
  RUN(test_vectors);
  RUN(test_million);
  RUN(test_block_edges);
  return TEST_SUMMARY();
}
