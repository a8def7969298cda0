/* src/core/json_check.c at its edges: missing text, invalid input given to
 * the helpers that expect checked text (they refuse it and leave the buffer
 * as it was), a long number beyond the doubles of either sign, a number
 * cut short by the end of the text, a surrogate
 * pair whose second half is past U+DFFF, and po_json_format_number's
 * refusals. */
#include "error.h"
#include "json_check.h"
#include "strbuf.h"

#include "harness.h"

#include <math.h>
#include <string.h>

static void missing_text_is_refused(void) {
  size_t lens[1];
  po_strbuf b;
  po_strbuf_init(&b);
  CHECK_EQ_INT(po_json_string_lengths(NULL, 3, lens, 1), PO_EINVAL);
  CHECK_EQ_INT(po_json_string_lengths(NULL, 0, lens, 1), 0);
  CHECK_EQ_INT(po_json_shorten_numbers(NULL, 3, &b), PO_EINVAL);
  CHECK_EQ_INT(po_json_shorten_numbers(NULL, 0, &b), 0); /* was undefined: NULL + 0 */
  CHECK_EQ_INT(b.len, 0);
  po_strbuf_free(&b);
}

/* The text shortened after "keep": or, refused, the buffer holds "keep" only. */
static int shorten(const char *text, po_strbuf *b) {
  b->len = 0;
  if (po_strbuf_append(b, "keep", 4) != 0) return -100;
  return po_json_shorten_numbers(text, strlen(text), b);
}

static void unchecked_text_is_refused_whole(void) {
  char digits[80];
  memset(digits, '3', 79);
  digits[79] = '\0';
  char text[200];
  po_strbuf b;
  po_strbuf_init(&b);
  /* a long number is rewritten before the bad part is met */
  snprintf(text, sizeof text, "[%s, \"unterminated", digits);
  CHECK_EQ_INT(shorten(text, &b), PO_EINVAL);
  CHECK(b.len == 4 && memcmp(b.data, "keep", 4) == 0);
  snprintf(text, sizeof text, "[%s, -x]", digits);
  CHECK_EQ_INT(shorten(text, &b), PO_EINVAL);
  CHECK(b.len == 4 && memcmp(b.data, "keep", 4) == 0);
  po_strbuf_free(&b);
}

static void long_numbers_past_the_doubles_become_1e999(void) {
  char text[420];
  text[0] = '[';
  text[1] = '-';
  memset(text + 2, '9', 400);
  strcpy(text + 402, ",1");
  memset(text + 404, '0', 10);
  strcpy(text + 414, "]");
  po_strbuf b;
  po_strbuf_init(&b);
  REQUIRE(po_json_shorten_numbers(text, strlen(text), &b) == 0);
  REQUIRE(po_strbuf_append_char(&b, '\0') == 0);
  /* the 11-digit number is short enough to stay as it is */
  CHECK_EQ_STR(b.data, "[-1e999,10000000000]");
  text[1] = '9';
  b.len = 0;
  REQUIRE(po_json_shorten_numbers(text, strlen(text), &b) == 0);
  REQUIRE(po_strbuf_append_char(&b, '\0') == 0);
  CHECK_EQ_STR(b.data, "[1e999,10000000000]");
  po_strbuf_free(&b);
}

static void a_low_surrogate_past_dfff_is_unpaired(void) {
  po_json_check_result r;
  const char *text = "[\"\\uD834\\uE000\"]";
  CHECK_EQ_INT(po_json_check(text, strlen(text), PO_JSON_MAX_DEPTH, &r), PO_EJSON);
  CHECK_EQ_INT(r.error_offset, 2);
  CHECK_EQ_STR(r.error_reason, "unpaired surrogate in \\u escape");
}

static void a_number_cut_short_at_the_end_is_invalid(void) {
  static const char *const cut[] = {"1.", "1e", "1E+", "-0e-", "[2.5e"};
  for (size_t k = 0; k < sizeof cut / sizeof cut[0]; k++) {
    po_json_check_result r;
    CHECK_EQ_INT(po_json_check(cut[k], strlen(cut[k]), PO_JSON_MAX_DEPTH, &r), PO_EJSON);
    CHECK_EQ_INT(r.error_offset, strlen(cut[k]));
    CHECK_EQ_STR(r.error_reason, "invalid number");
  }
}

static void format_number_refuses_what_json_cannot_hold(void) {
  char buf[PO_JSON_NUMBER_BUF];
  size_t n;
  CHECK_EQ_INT(po_json_format_number(1, NULL, sizeof buf, &n), PO_EINVAL);
  CHECK_EQ_INT(po_json_format_number(1, buf, sizeof buf, NULL), PO_EINVAL);
  CHECK_EQ_INT(po_json_format_number(1, buf, PO_JSON_NUMBER_BUF - 1, &n), PO_EINVAL);
  CHECK_EQ_INT(po_json_format_number(NAN, buf, sizeof buf, &n), PO_EINVAL);
  CHECK_EQ_INT(po_json_format_number(-INFINITY, buf, sizeof buf, &n), PO_EINVAL);
  REQUIRE(po_json_format_number(-0.1, buf, sizeof buf, &n) == 0);
  CHECK(n == 4 && memcmp(buf, "-0.1", 4) == 0);
}

int main(void) {
  RUN(missing_text_is_refused);
  RUN(unchecked_text_is_refused_whole);
  RUN(long_numbers_past_the_doubles_become_1e999);
  RUN(a_low_surrogate_past_dfff_is_unpaired);
  RUN(a_number_cut_short_at_the_end_is_invalid);
  RUN(format_number_refuses_what_json_cannot_hold);
  return TEST_SUMMARY();
}
