/* Tests for src/core/json_check.c (the strict RFC 8259 validator and its
 * helpers) and src/core/strbuf.c, including a walk over the JSONTestSuite
 * parsing corpus that also checks cJSON agrees with what the validator
 * accepts. */
#include "error.h"
#include "harness.h"
#include "json_check.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int check_text(const char *s, po_json_check_result *r) {
  return po_json_check(s, strlen(s), PO_JSON_MAX_DEPTH, r);
}

static int accepts(const char *s) {
  po_json_check_result r;
  return check_text(s, &r) == 0;
}

/* Expects s to fail with PO_EJSON at offset, with the given reason. */
static int rejects_at(const char *s, size_t offset, const char *reason) {
  po_json_check_result r;
  int rc = check_text(s, &r);
  if (rc != PO_EJSON || r.error_offset != offset || strcmp(r.error_reason, reason) != 0) {
    fprintf(stderr, "  %s -> rc %d, offset %zu, reason %s\n", s, rc, rc ? r.error_offset : 0,
            rc ? r.error_reason : "(none)");
    return 0;
  }
  return 1;
}

static void test_grammar_accepts(void) {
  static const char *const ok[] = {
      "null", "true", "false", "0", "-0", "\"\"", "[]", "{}", " [ ] ", "\t\r\n{}\n",
      "[1,2,3]", "{\"a\":1,\"b\":[true,false,null]}", "[[[]]]", "{\"\":{}}", "[\"a\",{\"b\":[]}]",
      "{ \"a\" : 1 , \"a\" : 2 }", "123", "\"x\"",
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    if (!accepts(ok[i])) fprintf(stderr, "  rejected: %s\n", ok[i]);
    CHECK(accepts(ok[i]));
  }
}

static void test_grammar_rejects(void) {
  CHECK(rejects_at("", 0, "unexpected end of input"));
  CHECK(rejects_at("   ", 3, "unexpected end of input"));
  CHECK(rejects_at("[", 1, "unexpected end of input"));
  CHECK(rejects_at("[1,]", 3, "expected a value"));
  CHECK(rejects_at("[1 2]", 3, "expected ',' or ']'"));
  CHECK(rejects_at("{\"a\":1,}", 7, "expected a string key"));
  CHECK(rejects_at("{\"a\" 1}", 5, "expected ':'"));
  CHECK(rejects_at("{1:1}", 1, "expected a string key"));
  CHECK(rejects_at("{\"a\":1]", 6, "expected ',' or '}'"));
  CHECK(rejects_at("[1]]", 3, "unexpected data after the JSON value"));
  CHECK(rejects_at("{} x", 3, "unexpected data after the JSON value"));
  CHECK(rejects_at("1 2", 2, "unexpected data after the JSON value"));
  CHECK(rejects_at("[tru]", 1, "invalid literal"));
  CHECK(rejects_at("nul", 0, "invalid literal"));
  CHECK(rejects_at("True", 0, "expected a value"));
  CHECK(rejects_at("[\f1]", 1, "expected a value"));          /* form feed is not whitespace */
  CHECK(rejects_at("\xEF\xBB\xBF{}", 0, "expected a value")); /* no byte-order mark */
  CHECK(rejects_at("'a'", 0, "expected a value"));
  po_json_check_result r;
  CHECK_EQ_INT(po_json_check("[1]\0", 4, PO_JSON_MAX_DEPTH, &r), PO_EJSON); /* NUL after the value */
  CHECK_EQ_INT(r.error_offset, 3);
  CHECK_EQ_INT(po_json_check("[\0]", 3, PO_JSON_MAX_DEPTH, &r), PO_EJSON); /* NUL as whitespace */
  CHECK_EQ_INT(r.error_offset, 1);
}

static void test_numbers(void) {
  static const char *const ok[] = {"0", "-0", "1", "-1", "10", "0.5", "-0.0", "1e5", "1E5", "1e+5", "1e-5",
                                   "1.5e10", "123456789012345678901234567890", "0e0", "[-1.25E-3]"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    if (!accepts(ok[i])) fprintf(stderr, "  rejected: %s\n", ok[i]);
    CHECK(accepts(ok[i]));
  }
  CHECK(rejects_at("[01]", 2, "invalid number (leading zero)"));
  CHECK(rejects_at("-01", 2, "invalid number (leading zero)"));
  CHECK(rejects_at("[1.]", 3, "invalid number"));
  CHECK(rejects_at("[-2.]", 4, "invalid number"));
  CHECK(rejects_at("[2.e3]", 3, "invalid number"));
  CHECK(rejects_at("[.5]", 1, "expected a value"));
  CHECK(rejects_at("[+1]", 1, "expected a value"));
  CHECK(rejects_at("[-]", 2, "invalid number"));
  CHECK(rejects_at("[1e]", 3, "invalid number"));
  CHECK(rejects_at("[1e+]", 4, "invalid number"));
  CHECK(rejects_at("-", 1, "invalid number"));
  CHECK(rejects_at("[0x10]", 2, "expected ',' or ']'"));
  CHECK(rejects_at("[Infinity]", 1, "expected a value"));
  CHECK(rejects_at("[NaN]", 1, "expected a value"));

  po_json_check_result r;
  CHECK_EQ_INT(check_text("[1234567890123456789012345678901234567890123456789012345678901]", &r), 0);
  CHECK_EQ_INT(r.has_long_number, 0); /* 61 characters */
  CHECK_EQ_INT(check_text("[1234567890123456789012345678901234567890123456789012345678901234]", &r), 0);
  CHECK_EQ_INT(r.has_long_number, 1); /* 64 characters */
}

static void test_strings(void) {
  CHECK(accepts("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""));
  CHECK(accepts("\"\\u0041\\u00e9\\u20AC\""));
  CHECK(accepts("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"")); /* raw UTF-8 */
  CHECK(accepts("\"\xFF\xFE bytes\""));                /* invalid UTF-8 passes through */
  CHECK(accepts("\"\x7F\""));                          /* DEL is not a control character here */
  CHECK(rejects_at("\"abc", 4, "unterminated string"));
  CHECK(rejects_at("\"abc\\", 5, "unterminated string"));
  CHECK(rejects_at("[\"a\tb\"]", 3, "control character in string"));
  CHECK(rejects_at("\"a\nb\"", 2, "control character in string"));
  CHECK(rejects_at("\"\\x41\"", 1, "invalid escape"));
  CHECK(rejects_at("\"\\a\"", 1, "invalid escape"));
  CHECK(rejects_at("\"\\'\"", 1, "invalid escape"));
  CHECK(rejects_at("\"\\u00g1\"", 1, "invalid \\u escape"));
  CHECK(rejects_at("\"\\u12\"", 1, "invalid \\u escape"));
  CHECK(rejects_at("\"\\U0041\"", 1, "invalid escape"));
  po_json_check_result r;
  CHECK_EQ_INT(po_json_check("\"a\0b\"", 5, PO_JSON_MAX_DEPTH, &r), PO_EJSON); /* raw NUL */
  CHECK_EQ_INT(r.error_offset, 2);
  CHECK_EQ_STR(r.error_reason, "control character in string");
}

static void test_surrogates(void) {
  CHECK(accepts("\"\\uD834\\uDD1E\"")); /* U+1D11E */
  CHECK(accepts("\"\\ud83d\\ude00\""));
  CHECK(accepts("\"\\uDBFF\\uDFFF\""));
  CHECK(rejects_at("\"\\uD834\"", 1, "unpaired surrogate in \\u escape"));
  CHECK(rejects_at("[\"x\\uDD1E\"]", 3, "unpaired surrogate in \\u escape"));
  CHECK(rejects_at("\"\\uD834x\"", 1, "unpaired surrogate in \\u escape"));
  CHECK(rejects_at("\"\\uD834\\n\"", 1, "unpaired surrogate in \\u escape"));
  CHECK(rejects_at("\"\\uD834\\u0041\"", 1, "unpaired surrogate in \\u escape"));
  CHECK(rejects_at("\"\\uD834\\uD834\"", 1, "unpaired surrogate in \\u escape"));
  CHECK(rejects_at("\"\\uDD1E\\uD834\"", 1, "unpaired surrogate in \\u escape"));
  CHECK(rejects_at("\"\\uD834\\uDZ1E\"", 7, "invalid \\u escape"));
}

static char *nested(size_t depth, char open, char close) {
  char *s = malloc(2 * depth + 1);
  memset(s, open, depth);
  memset(s + depth, close, depth);
  s[2 * depth] = '\0';
  return s;
}

static void test_depth(void) {
  po_json_check_result r;
  char *ok = nested(1000, '[', ']');
  REQUIRE(ok);
  CHECK_EQ_INT(check_text(ok, &r), 0);
  char *deep = nested(1001, '[', ']');
  CHECK_EQ_INT(check_text(deep, &r), PO_ETOODEEP);
  CHECK_EQ_INT(r.error_offset, 1000);
  CHECK_EQ_STR(r.error_reason, "nesting too deep");
  /* cJSON's own limit agrees: 1000 parses, 1001 does not */
  cJSON *t = cJSON_Parse(ok);
  CHECK(t != NULL);
  cJSON_Delete(t);
  CHECK(cJSON_Parse(deep) == NULL);
  free(ok);
  free(deep);

  /* objects count too */
  size_t n = 1001;
  char *obj = malloc(n * 5 + n + 2);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(obj + k, "{\"a\":", 5);
    k += 5;
  }
  obj[k++] = '1';
  memset(obj + k, '}', n);
  k += n;
  CHECK_EQ_INT(po_json_check(obj, k, PO_JSON_MAX_DEPTH, &r), PO_ETOODEEP);
  CHECK_EQ_INT(r.error_offset, 5000);
  CHECK_EQ_INT(po_json_check(obj + 5, k - 6, PO_JSON_MAX_DEPTH, &r), 0);
  free(obj);

  /* a smaller limit, and 0 (scalars only) */
  CHECK_EQ_INT(po_json_check("[[1]]", 5, 2, &r), 0);
  CHECK_EQ_INT(po_json_check("[[[1]]]", 7, 2, &r), PO_ETOODEEP);
  CHECK_EQ_INT(r.error_offset, 2);
  CHECK_EQ_INT(po_json_check("1", 1, 0, &r), 0);
  CHECK_EQ_INT(po_json_check("[]", 2, 0, &r), PO_ETOODEEP);

  /* the deepest limit allowed */
  char *big = nested(PO_JSON_CHECK_DEPTH_LIMIT, '[', ']');
  CHECK_EQ_INT(po_json_check(big, strlen(big), PO_JSON_CHECK_DEPTH_LIMIT, &r), 0);
  free(big);
}

static void test_bad_arguments(void) {
  po_json_check_result r;
  CHECK_EQ_INT(po_json_check(NULL, 1, 10, &r), PO_EINVAL);
  CHECK_EQ_INT(po_json_check("1", 1, 10, NULL), PO_EINVAL);
  CHECK_EQ_INT(po_json_check("1", 1, -1, &r), PO_EINVAL);
  CHECK_EQ_INT(po_json_check("1", 1, PO_JSON_CHECK_DEPTH_LIMIT + 1, &r), PO_EINVAL);
  CHECK_EQ_INT(po_json_check(NULL, 0, 10, &r), PO_EJSON); /* empty text */
  size_t lens[1];
  CHECK_EQ_INT(po_json_string_lengths("[\"a\",\"b\"]", 9, lens, 1), PO_EINVAL); /* too small */
  CHECK_EQ_INT(po_json_string_lengths("\"abc", 4, lens, 1), PO_EINVAL);         /* not valid */
  CHECK_EQ_INT(po_json_shorten_numbers("1", 1, NULL), PO_EINVAL);
}

static void test_counts_and_nul_flag(void) {
  po_json_check_result r;
  CHECK_EQ_INT(check_text("{\"a\":[\"b\",{\"c\":\"d\"}],\"e\":1}", &r), 0);
  CHECK_EQ_INT(r.string_count, 5);
  CHECK_EQ_INT(r.has_nul_escape, 0);
  CHECK_EQ_INT(check_text("[\"\\u0000\"]", &r), 0);
  CHECK_EQ_INT(r.has_nul_escape, 1);
  CHECK_EQ_INT(check_text("{\"k\\u0000\":1}", &r), 0);
  CHECK_EQ_INT(r.has_nul_escape, 1);
  CHECK_EQ_INT(check_text("[\"\\\\u0000\"]", &r), 0); /* an escaped backslash, then text */
  CHECK_EQ_INT(r.has_nul_escape, 0);
}

/* The lengths agree with the bytes cJSON writes, zeros included. */
static void test_string_lengths_with_nul(void) {
  const char *text = "{\"k\\u0000ey\":[\"a\\u0000b\",\"\\u00e9\\u0000\",\"\"],"
                     "\"\\uD834\\uDD1E\":\"x\\\"\\\\\\/\\n\",\"plain\":\"\\u0000\"}";
  size_t len = strlen(text);
  po_json_check_result r;
  REQUIRE(po_json_check(text, len, PO_JSON_MAX_DEPTH, &r) == 0);
  REQUIRE(r.has_nul_escape);
  CHECK_EQ_INT(r.string_count, 8);
  size_t lens[8];
  REQUIRE(po_json_string_lengths(text, len, lens, 8) == 0);
  static const size_t want[8] = {4, 3, 3, 0, 4, 5, 5, 1};
  static const char *const bytes[8] = {"k\0ey", "a\0b", "\xC3\xA9\0", "", "\xF0\x9D\x84\x9E",
                                       "x\"\\/\n", "plain", "\0"};
  for (size_t i = 0; i < 8; i++) CHECK_EQ_INT(lens[i], want[i]);

  cJSON *root = cJSON_ParseWithLength(text, len);
  REQUIRE(root);
  /* document order: key, then value; arrays in order */
  const cJSON *k = root->child;
  CHECK(memcmp(k->string, bytes[0], lens[0]) == 0);
  const cJSON *a = k->child;
  CHECK(memcmp(a->valuestring, bytes[1], lens[1]) == 0);
  CHECK(memcmp(a->next->valuestring, bytes[2], lens[2]) == 0);
  CHECK(memcmp(a->next->next->valuestring, bytes[3], lens[3] + 1) == 0);
  k = k->next;
  CHECK(memcmp(k->string, bytes[4], lens[4]) == 0);
  CHECK(memcmp(k->valuestring, bytes[5], lens[5]) == 0);
  k = k->next;
  CHECK(memcmp(k->string, bytes[6], lens[6]) == 0);
  CHECK(memcmp(k->valuestring, bytes[7], lens[7]) == 0);
  cJSON_Delete(root);
}

static void test_shorten_numbers(void) {
  const char *text = "{\"n\":[1.5,-1234567890123456789012345678901234567890123456789012345678901234567890e-60,"
                     "\"1234567890123456789012345678901234567890123456789012345678901234567890\","
                     "1234567890123456789012345678901234567890123456789012345678901234567890e400]}";
  size_t len = strlen(text);
  po_json_check_result r;
  REQUIRE(po_json_check(text, len, PO_JSON_MAX_DEPTH, &r) == 0);
  CHECK(r.has_long_number);
  /* (upstream cJSON 1.7.15 fails on such numbers; Debian's CVE-2023-26819 fix does not) */
  po_strbuf b;
  po_strbuf_init(&b);
  REQUIRE(po_json_shorten_numbers(text, len, &b) == 0);
  REQUIRE(po_strbuf_append_char(&b, '\0') == 0);
  CHECK_EQ_STR(b.data, "{\"n\":[1.5,-1234567890.1234567,"
                       "\"1234567890123456789012345678901234567890123456789012345678901234567890\",1e999]}");
  CHECK_EQ_INT(po_json_check(b.data, b.len - 1, PO_JSON_MAX_DEPTH, &r), 0);
  CHECK_EQ_INT(r.has_long_number, 0);
  cJSON *root = cJSON_ParseWithLength(b.data, b.len - 1);
  REQUIRE(root);
  const cJSON *n = root->child->child->next;
  CHECK(n->valuedouble == -1234567890.1234567);
  cJSON_Delete(root);
  po_strbuf_free(&b);
}

static void check_number(double d, const char *want) {
  char buf[PO_JSON_NUMBER_BUF];
  size_t len = 0;
  CHECK_EQ_INT(po_json_format_number(d, buf, sizeof buf, &len), 0);
  CHECK_EQ_STR(buf, want);
  CHECK_EQ_INT(len, strlen(want));
  CHECK(strtod(buf, NULL) == d); /* reads back exactly */
}

static void test_format_number(void) {
  check_number(0, "0");
  check_number(-0.0, "-0");
  check_number(1, "1");
  check_number(-42, "-42");
  check_number(123.0, "123");
  check_number(9007199254740991.0, "9007199254740991");
  check_number(9007199254740992.0, "9007199254740992");   /* 2^53 via %.16g, no exponent */
  check_number(-9007199254740992.0, "-9007199254740992");
  check_number(9007199254740994.0, "9007199254740994");
  check_number(0.1, "0.1");
  check_number(0.1 + 0.2, "0.30000000000000004");
  check_number(1.0 / 3, "0.3333333333333333");
  check_number(2.5e-5, "2.5e-05");
  check_number(1e300, "1e+300");
  check_number(1e21, "1e+21");
  check_number(1.7976931348623157e308, "1.7976931348623157e+308");
  check_number(5e-324, "4.94065645841247e-324");
  char buf[PO_JSON_NUMBER_BUF];
  size_t len;
  CHECK_EQ_INT(po_json_format_number(NAN, buf, sizeof buf, &len), PO_EINVAL);
  CHECK_EQ_INT(po_json_format_number(INFINITY, buf, sizeof buf, &len), PO_EINVAL);
  CHECK_EQ_INT(po_json_format_number(-INFINITY, buf, sizeof buf, &len), PO_EINVAL);
  CHECK_EQ_INT(po_json_format_number(1, buf, 8, &len), PO_EINVAL);
}

static void check_escape(const char *s, size_t len, const char *want) {
  po_strbuf b;
  po_strbuf_init(&b);
  CHECK_EQ_INT(po_strbuf_append(&b, "<", 1), 0);
  CHECK_EQ_INT(po_json_append_string(&b, s, len), 0);
  CHECK_EQ_INT(po_strbuf_append(&b, "", 1), 0); /* NUL-terminate for the comparison */
  CHECK_EQ_STR(b.data, want);
  po_strbuf_free(&b);
}

static void test_append_string(void) {
  check_escape("", 0, "<\"\"");
  check_escape("plain", 5, "<\"plain\"");
  check_escape("a\"b\\c/d", 7, "<\"a\\\"b\\\\c/d\"");
  check_escape("\n\r\t\b\f", 5, "<\"\\n\\r\\t\\b\\f\"");
  check_escape("\0\x01\x1f\x7f", 4, "<\"\\u0000\\u0001\\u001f\x7f\"");
  check_escape("caf\xC3\xA9 \xFF", 7, "<\"caf\xC3\xA9 \xFF\"");
  /* what it writes, the validator accepts, and the lengths come back */
  const char raw[] = "x\0y\"\\\x01\xE2\x82\xAC";
  po_strbuf b;
  po_strbuf_init(&b);
  REQUIRE(po_json_append_string(&b, raw, sizeof raw - 1) == 0);
  po_json_check_result r;
  CHECK_EQ_INT(po_json_check(b.data, b.len, PO_JSON_MAX_DEPTH, &r), 0);
  CHECK_EQ_INT(r.has_nul_escape, 1);
  size_t n = 0;
  CHECK_EQ_INT(po_json_string_lengths(b.data, b.len, &n, 1), 0);
  CHECK_EQ_INT(n, sizeof raw - 1);
  po_strbuf_free(&b);
}

static void test_strbuf(void) {
  po_strbuf b;
  po_strbuf_init(&b);
  CHECK(b.data == NULL && b.len == 0);
  CHECK_EQ_INT(po_strbuf_append(&b, "ab\0c", 4), 0);
  CHECK_EQ_INT(b.len, 4);
  CHECK(memcmp(b.data, "ab\0c", 4) == 0);
  for (int i = 0; i < 10000; i++) CHECK_EQ_INT(po_strbuf_append_char(&b, (char)('a' + i % 26)), 0);
  CHECK_EQ_INT(b.len, 10004);
  CHECK(b.cap >= b.len);
  CHECK_EQ_INT(po_strbuf_append_repeat(&b, ' ', 7), 0);
  CHECK(memcmp(b.data + 10004, "       ", 7) == 0);
  CHECK_EQ_INT(po_strbuf_append(&b, NULL, 0), 0);
  size_t cap = b.cap;
  po_strbuf_reset(&b, cap);
  CHECK(b.len == 0 && b.cap == cap && b.data != NULL); /* kept */
  po_strbuf_reset(&b, 16);
  CHECK(b.len == 0 && b.cap == 0 && b.data == NULL); /* released */
  CHECK_EQ_INT(po_strbuf_grow(&b, (size_t)-1), PO_ENOMEM);
  CHECK(b.data == NULL && b.len == 0);
  CHECK_EQ_INT(po_strbuf_append(&b, "x", 1), 0);
  CHECK_EQ_INT(po_strbuf_grow(&b, (size_t)-1), PO_ENOMEM); /* overflow, buffer intact */
  CHECK(b.len == 1 && b.data[0] == 'x');
  po_strbuf_free(&b);
  po_strbuf_free(&b); /* twice is fine */
}

/* ---- the JSONTestSuite corpus ---- */

static const char *corpus_dir(char *buf, size_t cap) {
  const char *env = getenv("POENGINE_CORPUS_DIR");
  if (env && *env) return env;
  const char *file = __FILE__, *suffix = "/tests/c/test_json_check.c";
  size_t fl = strlen(file), sl = strlen(suffix);
  if (file[0] == '/' && fl > sl && strcmp(file + fl - sl, suffix) == 0) {
    snprintf(buf, cap, "%.*s/../shared/corpora/JSONTestSuite/test_parsing", (int)(fl - sl), file);
    return buf;
  }
  return "../shared/corpora/JSONTestSuite/test_parsing";
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 4096;
      char *p = realloc(buf, cap);
      if (!p) break;
      buf = p;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    if (got == 0) break;
    n += got;
  }
  fclose(f);
  *len = n;
  return buf;
}

/* Walks a cJSON tree in document order and compares every string's length
 * with the validator's; returns the number of mismatches. */
static int compare_lengths(const cJSON *it, const size_t *lens, size_t count, size_t *k) {
  int bad = 0;
  if (it->string) {
    if (*k >= count || strlen(it->string) > lens[*k]) bad++;
    (*k)++;
  }
  if (cJSON_IsString(it)) {
    if (*k >= count || strlen(it->valuestring) > lens[*k]) bad++;
    (*k)++;
  }
  for (const cJSON *c = it->child; c; c = c->next) bad += compare_lengths(c, lens, count, k);
  return bad;
}

static void test_corpus(void) {
  char buf[4096];
  const char *dir = corpus_dir(buf, sizeof buf);
  DIR *d = opendir(dir);
  /* The corpus is always beside the tree (and in CI): its absence is a
   * failure, or this test would pass having checked nothing. */
  if (!d) fprintf(stderr, "JSONTestSuite corpus not found at %s\n", dir);
  REQUIRE(d != NULL);
  int files = 0, y = 0, n = 0;
  struct dirent *ent;
  while ((ent = readdir(d))) {
    const char *name = ent->d_name;
    size_t nl = strlen(name);
    if (nl < 7 || strcmp(name + nl - 5, ".json") != 0) continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len = 0;
    char *text = read_all(path, &len);
    REQUIRE(text || len == 0);
    files++;
    po_json_check_result r;
    int rc = po_json_check(text, len, PO_JSON_MAX_DEPTH, &r);
    if (name[0] == 'y') {
      y++;
      if (rc) fprintf(stderr, "  %s rejected: %s at %zu\n", name, r.error_reason, r.error_offset);
      CHECK_EQ_INT(rc, 0);
    } else if (name[0] == 'n') {
      n++;
      if (!rc) fprintf(stderr, "  %s accepted\n", name);
      CHECK(rc == PO_EJSON || rc == PO_ETOODEEP);
      if (rc) CHECK(r.error_offset <= len && r.error_reason != NULL);
    }
    if (rc == 0) {
      /* whatever the validator accepts, cJSON parses, with the same string lengths */
      po_strbuf sb;
      po_strbuf_init(&sb);
      const char *src = text;
      size_t srclen = len;
      if (r.has_long_number) {
        REQUIRE(po_json_shorten_numbers(text, len, &sb) == 0);
        src = sb.data;
        srclen = sb.len;
      }
      cJSON *root = cJSON_ParseWithLength(src, srclen);
      if (!root) fprintf(stderr, "  %s: accepted but cJSON fails\n", name);
      CHECK(root != NULL);
      size_t *lens = calloc(r.string_count + 1, sizeof *lens);
      REQUIRE(lens);
      CHECK_EQ_INT(po_json_string_lengths(text, len, lens, r.string_count), 0);
      if (root) {
        size_t k = 0;
        int bad = compare_lengths(root, lens, r.string_count, &k);
        if (bad || k != r.string_count) fprintf(stderr, "  %s: string lengths differ from cJSON\n", name);
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(k, r.string_count);
      }
      cJSON_Delete(root);
      free(lens);
      po_strbuf_free(&sb);
    }
    free(text);
  }
  closedir(d);
  CHECK(files >= 300);
  CHECK(y >= 90);
  CHECK(n >= 180);
}

int main(void) {
  RUN(test_grammar_accepts);
  RUN(test_grammar_rejects);
  RUN(test_numbers);
  RUN(test_strings);
  RUN(test_surrogates);
  RUN(test_depth);
  RUN(test_bad_arguments);
  RUN(test_counts_and_nul_flag);
  RUN(test_string_lengths_with_nul);
  RUN(test_shorten_numbers);
  RUN(test_format_number);
  RUN(test_append_string);
  RUN(test_strbuf);
  RUN(test_corpus);
  return TEST_SUMMARY();
}
