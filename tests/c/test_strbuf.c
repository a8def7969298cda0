/* Tests for src/core/strbuf.c (the growable byte buffer under the JSON
 * encoder, the cache key and the value copier). */
#include "error.h"
#include "strbuf.h"

#include "harness.h"

#include <stdint.h>
#include <string.h>

static void starts_empty_and_frees_twice(void) {
  po_strbuf z = {0}, b;
  po_strbuf_init(&b);
  CHECK(b.data == NULL);
  CHECK_EQ_INT(b.len, 0);
  CHECK_EQ_INT(b.cap, 0);
  CHECK(memcmp(&z, &b, sizeof b) == 0); /* init and a zeroed struct agree */
  po_strbuf_free(&b);
  po_strbuf_free(&b);
  CHECK(b.data == NULL);
  CHECK_EQ_INT(b.cap, 0);
}

static void keeps_bytes_with_zeros(void) {
  po_strbuf b = {0};
  REQUIRE(po_strbuf_append(&b, "a\0b", 3) == 0);
  REQUIRE(po_strbuf_append_char(&b, '\0') == 0);
  REQUIRE(po_strbuf_append_char(&b, 'c') == 0);
  REQUIRE(po_strbuf_append(&b, "", 0) == 0);
  CHECK_EQ_INT(b.len, 5);
  CHECK(memcmp(b.data, "a\0b\0c", 5) == 0);
  po_strbuf_free(&b);
}

static void grows_across_many_appends(void) {
  po_strbuf b = {0};
  for (int i = 0; i < 100000; i++) REQUIRE(po_strbuf_append_char(&b, (char)('a' + i % 26)) == 0);
  REQUIRE(po_strbuf_append(&b, "tail", 4) == 0);
  CHECK_EQ_INT(b.len, 100004);
  CHECK(b.cap >= b.len);
  int intact = 1;
  for (int i = 0; i < 100000; i++) intact &= b.data[i] == (char)('a' + i % 26);
  CHECK(intact);
  CHECK(memcmp(b.data + 100000, "tail", 4) == 0);
  po_strbuf_free(&b);
}

static void grow_reserves_room(void) {
  po_strbuf b = {0};
  REQUIRE(po_strbuf_append(&b, "xy", 2) == 0);
  REQUIRE(po_strbuf_grow(&b, 1000) == 0);
  CHECK(b.cap - b.len >= 1000);
  CHECK_EQ_INT(b.len, 2);
  const char *data = b.data;
  char block[1000];
  memset(block, 'z', sizeof block);
  REQUIRE(po_strbuf_append(&b, block, sizeof block) == 0);
  CHECK(b.data == data); /* the room was there: no reallocation */
  CHECK(memcmp(b.data, "xyzz", 4) == 0);
  CHECK_EQ_INT(b.len, 1002);
  po_strbuf_free(&b);
}

static void refuses_an_impossible_size_and_stays_valid(void) {
  po_strbuf b = {0};
  REQUIRE(po_strbuf_append(&b, "keep", 4) == 0);
  const char *data = b.data;
  size_t cap = b.cap;
  CHECK_EQ_INT(po_strbuf_grow(&b, SIZE_MAX), PO_ENOMEM);
  CHECK_EQ_INT(po_strbuf_grow(&b, (size_t)PTRDIFF_MAX), PO_ENOMEM); /* with len 4, past PTRDIFF_MAX */
  CHECK(b.data == data);
  CHECK_EQ_INT(b.cap, cap);
  CHECK_EQ_INT(b.len, 4);
  REQUIRE(po_strbuf_append_char(&b, '!') == 0);
  CHECK(memcmp(b.data, "keep!", 5) == 0);
  po_strbuf_free(&b);
}

static void reset_keeps_small_memory_and_releases_large(void) {
  po_strbuf b = {0};
  REQUIRE(po_strbuf_append(&b, "abc", 3) == 0);
  const char *data = b.data;
  size_t cap = b.cap;
  po_strbuf_reset(&b, cap); /* cap is not more than keep: kept */
  CHECK_EQ_INT(b.len, 0);
  CHECK(b.data == data);
  CHECK_EQ_INT(b.cap, cap);

  REQUIRE(po_strbuf_append(&b, "abc", 3) == 0);
  po_strbuf_reset(&b, cap - 1); /* more than keep: released */
  CHECK(b.data == NULL);
  CHECK_EQ_INT(b.len, 0);
  CHECK_EQ_INT(b.cap, 0);
  REQUIRE(po_strbuf_append(&b, "again", 5) == 0); /* usable after either */
  CHECK(memcmp(b.data, "again", 5) == 0);
  po_strbuf_free(&b);
}

static void repeats_a_byte(void) {
  po_strbuf b = {0};
  REQUIRE(po_strbuf_append_repeat(&b, ' ', 0) == 0); /* nothing, on a buffer with no memory yet */
  CHECK_EQ_INT(b.len, 0);
  REQUIRE(po_strbuf_append_char(&b, '\n') == 0);
  REQUIRE(po_strbuf_append_repeat(&b, ' ', 300) == 0);
  REQUIRE(po_strbuf_append_char(&b, 'x') == 0);
  CHECK_EQ_INT(b.len, 302);
  CHECK_EQ_INT(b.data[0], '\n');
  int spaces = 1;
  for (size_t i = 1; i <= 300; i++) spaces &= b.data[i] == ' ';
  CHECK(spaces);
  CHECK_EQ_INT(b.data[301], 'x');
  CHECK_EQ_INT(po_strbuf_append_repeat(&b, ' ', SIZE_MAX), PO_ENOMEM);
  CHECK_EQ_INT(b.len, 302);
  po_strbuf_free(&b);
}

int main(void) {
  RUN(starts_empty_and_frees_twice);
  RUN(keeps_bytes_with_zeros);
  RUN(grows_across_many_appends);
  RUN(grow_reserves_room);
  RUN(refuses_an_impossible_size_and_stays_valid);
  RUN(reset_keeps_small_memory_and_releases_large);
  RUN(repeats_a_byte);
  return TEST_SUMMARY();
}
