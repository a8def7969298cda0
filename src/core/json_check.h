/* A strict RFC 8259 JSON validator, two helpers for a decoder that builds its
 * tree with cJSON after validation, and the two scalar writers of the encoder
 * (numbers and strings).
 *
 * po_json_check accepts exactly the JSON-text of RFC 8259: one value with
 * optional surrounding whitespace (space, tab, CR, LF only), numbers per the
 * grammar (no leading zeros, no "1.", no ".5", no "+1"), strings with no raw
 * byte below 0x20, only the escapes \" \\ \/ \b \f \n \r \t \uXXXX, and a
 * \u escape for a UTF-16 surrogate only as a high+low pair (a lone surrogate
 * is an error). No byte-order mark, no trailing data. Bytes >= 0x80 inside
 * strings are not checked: invalid UTF-8 passes through unchanged.
 *
 * Nesting is limited: max_depth arrays/objects may be open at once; the
 * container that would be number max_depth + 1 is PO_ETOODEEP. */
#ifndef PO_JSON_CHECK_H
#define PO_JSON_CHECK_H

#include "strbuf.h"

#include <stddef.h>

/* The nesting limit po.json uses (and cJSON's built-in CJSON_NESTING_LIMIT). */
#define PO_JSON_MAX_DEPTH 1000

/* The largest max_depth po_json_check accepts. */
#define PO_JSON_CHECK_DEPTH_LIMIT 32768

/* Upstream cJSON 1.7.15 (and Debian's before the CVE-2023-26819 fix) reads at
 * most this many characters of a number and then fails on the rest, so a
 * decoder rewrites longer numbers with po_json_shorten_numbers first. */
#define PO_JSON_NUMBER_TEXT_MAX 63

typedef struct po_json_check_result {
  size_t error_offset;      /* 0-based byte offset of the first error */
  const char *error_reason; /* static text ("invalid number"), NULL when valid */
  size_t string_count;      /* strings in the text, object keys included */
  int has_nul_escape;       /* some string contains the escape \u0000 */
  int has_long_number;      /* some number is longer than PO_JSON_NUMBER_TEXT_MAX */
} po_json_check_result;

/* Validates text[0..len) (which may contain any bytes, zeros included).
 * Returns 0 when it is one valid JSON text, PO_EJSON when it is malformed,
 * PO_ETOODEEP when it nests more than max_depth containers, or PO_EINVAL when
 * text is NULL with len > 0, out is NULL, or max_depth is outside
 * 0..PO_JSON_CHECK_DEPTH_LIMIT. On PO_EJSON/PO_ETOODEEP, out->error_offset and
 * out->error_reason describe the first error; on success the counts and flags
 * are filled. Allocates nothing. */
int po_json_check(const char *text, size_t len, int max_depth, po_json_check_result *out);

/* For text that passed po_json_check: writes the decoded byte length of every
 * string (object keys and values, in document order: a key before its value)
 * into lengths[0..count). The length is the number of bytes the string decodes
 * to, counting each escape as its UTF-8 encoding (\u0000 is one zero byte, a
 * surrogate pair four bytes) and every other byte as itself; this equals what
 * cJSON 1.7 writes into valuestring/string. count must be at least the
 * result's string_count. Returns 0, or PO_EINVAL if count is too small or the
 * text is not valid JSON (it never reads outside text[0..len)). */
int po_json_string_lengths(const char *text, size_t len, size_t *lengths, size_t count);

/* For text that passed po_json_check: appends to out a copy of text in which
 * every number longer than PO_JSON_NUMBER_TEXT_MAX characters is replaced by
 * a shorter text for the same double (17 significant digits; "1e999" or
 * "-1e999" for one that overflows), so cJSON can parse it. Everything else is
 * copied unchanged. Returns 0, PO_ENOMEM (out keeps what it held), or
 * PO_EINVAL when out is NULL. */
int po_json_shorten_numbers(const char *text, size_t len, po_strbuf *out);

/* Size of a buffer that holds any po_json_format_number text and its NUL. */
#define PO_JSON_NUMBER_BUF 32

/* Writes the canonical JSON text of d, NUL-terminated, into buf[0..cap) and
 * its length into *len: integral values with |d| < 2^53 as integers with no
 * exponent ("-0" for negative zero), other values with the shortest of
 * %.15g/%.16g/%.17g that reads back as exactly d (always '.' as the decimal
 * point, whatever the locale). Returns 0, or PO_EINVAL for NaN or an infinity
 * (JSON has neither) or when cap < PO_JSON_NUMBER_BUF. Allocates nothing. */
int po_json_format_number(double d, char *buf, size_t cap, size_t *len);

/* Appends s[0..len) to out as a JSON string literal with its quotes: '"',
 * '\\' and bytes below 0x20 escaped (\n \r \t \b \f, others \u00XX), every
 * other byte (>= 0x80 included, valid UTF-8 or not) copied unchanged; '/' is
 * not escaped. Returns 0, or PO_ENOMEM with out as it was before the call. */
int po_json_append_string(po_strbuf *out, const char *s, size_t len);

#endif
