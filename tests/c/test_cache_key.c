/* Tests for src/core/cache_key.c (the canonical binary form of a request)
 * and po_cache_secret_field (which keys it leaves out). */
#include "cache.h"
#include "cache_key.h"
#include "error.h"

#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The description of the bytes in b (NUL-terminated in a static buffer), or
 * "<invalid>" / "<nomem>". */
static const char *describe(const po_strbuf *b) {
  static char text[512];
  po_strbuf out = {0};
  int rc = po_cache_key_describe(b->data, b->len, &out);
  if (rc == PO_EINVAL)
    snprintf(text, sizeof text, "<invalid>");
  else if (rc != 0)
    snprintf(text, sizeof text, "<nomem>");
  else
    snprintf(text, sizeof text, "%.*s", (int)out.len, out.data ? out.data : "");
  po_strbuf_free(&out);
  return text;
}

static void writes_every_item_and_reads_it_back(void) {
  po_strbuf b = {0};
  REQUIRE(po_cache_key_put_start(&b) == 0);
  CHECK_EQ_INT((unsigned char)b.data[0], PO_CACHE_KEY_MAGIC);
  CHECK_EQ_INT(b.data[1], PO_CACHE_KEY_VERSION);
  REQUIRE(po_cache_key_put_container(&b, PO_CACHE_KEY_ARRAY, 7) == 0);
  po_cache_key_put_tag(&b, PO_CACHE_KEY_NULL);
  po_cache_key_put_tag(&b, PO_CACHE_KEY_FALSE);
  po_cache_key_put_tag(&b, PO_CACHE_KEY_TRUE);
  po_cache_key_put_number(&b, 42);
  po_cache_key_put_number(&b, -0.5);
  po_cache_key_put_string(&b, "a\"b\n", 4);
  po_cache_key_put_container(&b, PO_CACHE_KEY_OBJECT, 2);
  po_cache_key_name s = {"k", 1, 0, 0}, n = {NULL, 0, 1.5, 0};
  po_cache_key_put_name(&b, &s);
  po_cache_key_put_container(&b, PO_CACHE_KEY_ARRAY, 0);
  po_cache_key_put_name(&b, &n);
  po_cache_key_put_container(&b, PO_CACHE_KEY_OBJECT, 0);
  CHECK_EQ_STR(describe(&b), "[null,false,true,42,-0.5,\"a\\\"b\\n\",{\"k\":[],1.5:{}}]");
  po_strbuf_free(&b);
}

static void lengths_are_leb128(void) {
  unsigned char p[PO_CACHE_KEY_HEAD_MAX];
  CHECK_EQ_INT(po_cache_key_head(p, PO_CACHE_KEY_STRING, 0), 2);
  CHECK_EQ_INT(po_cache_key_head(p, PO_CACHE_KEY_STRING, 127), 2);
  CHECK_EQ_INT(po_cache_key_head(p, PO_CACHE_KEY_STRING, 128), 3);
  CHECK_EQ_INT(p[1], 0x80);
  CHECK_EQ_INT(p[2], 0x01);
  CHECK_EQ_INT(po_cache_key_head(p, PO_CACHE_KEY_STRING, UINT64_MAX), 11);
  /* a 300-byte string reads back whole */
  po_strbuf b = {0};
  char s[300];
  memset(s, 'x', sizeof s);
  po_cache_key_put_start(&b);
  po_cache_key_put_string(&b, s, sizeof s);
  CHECK_EQ_INT(b.len, 2 + 3 + 300);
  CHECK_EQ_INT(strlen(describe(&b)), 302);
  po_strbuf_free(&b);
}

static void numbers_are_their_bits(void) {
  po_strbuf a = {0}, b = {0};
  po_cache_key_put_number(&a, 0.0);
  po_cache_key_put_number(&b, -0.0);
  CHECK(a.len == 9 && b.len == 9);
  CHECK(memcmp(a.data, b.data, 9) != 0); /* as "0" and "-0" differ in JSON */
  a.len = b.len = 0;
  po_cache_key_put_number(&a, 1.0);
  po_cache_key_put_number(&b, 1.0 + 1e-15);
  CHECK(memcmp(a.data, b.data, 9) != 0);
  a.len = 0;
  po_cache_key_put_number(&a, 9007199254740993.0); /* beyond 2^53: still its exact bits */
  CHECK_EQ_INT(a.len, 9);
  /* a number name -0 is written as 0: t[-0] and t[0] are one Lua key */
  a.len = b.len = 0;
  po_cache_key_name z = {NULL, 0, 0.0, 0}, nz = {NULL, 0, -0.0, 0};
  po_cache_key_put_name(&a, &z);
  po_cache_key_put_name(&b, &nz);
  CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
  po_strbuf_free(&a);
  po_strbuf_free(&b);
}

static void names_sort_strings_then_numbers(void) {
  po_cache_key_name names[] = {
      {"model", 5, 0, 1}, {NULL, 0, 2, 2}, {"b", 1, 0, 3}, {"messages", 8, 0, 4}, {NULL, 0, -1, 5},
      {"a", 1, 0, 6},     {"ab", 2, 0, 7}, {"", 0, 0, 8},  {"a\0c", 3, 0, 9},
  };
  size_t n = sizeof names / sizeof *names;
  po_cache_key_sort_names(names, n);
  int want[] = {8, 6, 9, 7, 3, 4, 1, 5, 2}; /* "", "a", "a\0c", "ab", "b", "messages", "model", -1, 2 */
  for (size_t i = 0; i < n; i++) CHECK_EQ_INT(names[i].ref, want[i]);
  /* the large-object path (qsort) gives the same order as insertion sort */
  enum { BIG = 200 };
  po_cache_key_name big[BIG], small[BIG];
  char keys[BIG][8];
  for (int i = 0; i < BIG; i++) {
    snprintf(keys[i], sizeof keys[i], "k%d", (i * 7919) % BIG);
    big[i] = (po_cache_key_name){keys[i], strlen(keys[i]), 0, i};
  }
  memcpy(small, big, sizeof big);
  po_cache_key_sort_names(big, BIG);
  for (int i = 1; i < BIG; i++) CHECK(po_cache_key_name_cmp(&big[i - 1], &big[i]) < 0);
  for (size_t i = 1; i <= 20; i++) po_cache_key_sort_names(small, i); /* insertion sort on prefixes */
  for (size_t i = 1; i < 20; i++) CHECK(po_cache_key_name_cmp(&small[i - 1], &small[i]) < 0);
}

static void describe_refuses_what_is_not_a_key(void) {
  po_strbuf out = {0};
  CHECK_EQ_INT(po_cache_key_describe("", 0, &out), PO_EINVAL);
  CHECK_EQ_INT(po_cache_key_describe("{\"a\":1}", 7, &out), PO_EINVAL); /* a JSON key of older builds */
  const unsigned char other_version[] = {PO_CACHE_KEY_MAGIC, PO_CACHE_KEY_VERSION + 1, PO_CACHE_KEY_NULL};
  CHECK_EQ_INT(po_cache_key_describe(other_version, sizeof other_version, &out), PO_EINVAL);
  const unsigned char truncated[] = {PO_CACHE_KEY_MAGIC, PO_CACHE_KEY_VERSION, PO_CACHE_KEY_STRING, 5, 'a'};
  CHECK_EQ_INT(po_cache_key_describe(truncated, sizeof truncated, &out), PO_EINVAL);
  const unsigned char trailing[] = {PO_CACHE_KEY_MAGIC, PO_CACHE_KEY_VERSION, PO_CACHE_KEY_NULL, PO_CACHE_KEY_NULL};
  CHECK_EQ_INT(po_cache_key_describe(trailing, sizeof trailing, &out), PO_EINVAL);
  const unsigned char bad_name[] = {PO_CACHE_KEY_MAGIC, PO_CACHE_KEY_VERSION, PO_CACHE_KEY_OBJECT, 1,
                                    PO_CACHE_KEY_TRUE, PO_CACHE_KEY_NULL};
  CHECK_EQ_INT(po_cache_key_describe(bad_name, sizeof bad_name, &out), PO_EINVAL);
  po_strbuf_free(&out);
}

static int secret(const char *key, const char *parent) {
  return po_cache_secret_field(key, strlen(key), parent, parent ? strlen(parent) : 0);
}

static void secret_fields_are_the_documented_ones(void) {
  const char *yes[] = {"authorization", "Authorization", "proxy-authorization", "Proxy-Authorization", "cookie",
                       "Set-Cookie", "secret", "token", "TOKEN", "credentials", "credential", "private_key",
                       "passwd", "passphrase", "api_key", "apiKey", "x-api-key", "X-Goog-Api-Key",
                       "openai_api_key", "headers", "extra_headers", "password", "db_password",
                       "client_secret", "secret_key", "aws_secret_access_key", "access_token", "auth_token",
                       "bearer_token", "refresh_token", "session_token", "id_token", "api_token", "API-KEY",
                       "a_p_i_k_e_y", "api_key_"};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
    if (!secret(yes[i], NULL)) fprintf(stderr, "not a secret: %s\n", yes[i]);
    CHECK(secret(yes[i], NULL));
    CHECK(secret(yes[i], "function")); /* any other parent */
  }
  const char *no[] = {"model", "messages", "content", "role", "temperature", "max_tokens", "top_p", "seed",
                      "stop", "tools", "tokens", "max_completion_tokens", "tokenizer", "author", "cookies_enabled",
                      "secrets_manager", "keyword", "passwords", "header", "", "api", "x"};
  for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
    if (secret(no[i], NULL)) fprintf(stderr, "a secret: %s\n", no[i]);
    CHECK(!secret(no[i], NULL));
  }
  /* a name too long to be one is none */
  char lng[80];
  memset(lng, 'a', sizeof lng);
  memcpy(lng + sizeof lng - 8, "_api_key", 8);
  CHECK(!po_cache_secret_field(lng, sizeof lng, NULL, 0));
  /* a name ends at a zero byte, as it always did */
  CHECK(po_cache_secret_field("token\0x", 7, NULL, 0));
  CHECK(!po_cache_secret_field("model\0token", 11, NULL, 0));
}

static void schema_name_maps_keep_their_names(void) {
  const char *maps[] = {"properties", "patternProperties", "$defs", "definitions", "pattern_properties"};
  for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) {
    CHECK(!secret("password", maps[i]));
    CHECK(!secret("api_key", maps[i]));
    CHECK(!secret("Authorization", maps[i]));
  }
  CHECK(secret("password", "parameters"));
  CHECK(secret("password", "property")); /* only the documented names */
}

int main(void) {
  RUN(writes_every_item_and_reads_it_back);
  RUN(lengths_are_leb128);
  RUN(numbers_are_their_bits);
  RUN(names_sort_strings_then_numbers);
  RUN(describe_refuses_what_is_not_a_key);
  RUN(secret_fields_are_the_documented_ones);
  RUN(schema_name_maps_keep_their_names);
  return TEST_SUMMARY();
}
