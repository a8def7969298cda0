#include "json_check.h"

#include "error.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_ws(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}

static size_t skip_ws(const unsigned char *s, size_t len, size_t i) {
  while (i < len && is_ws(s[i])) i++;
  return i;
}

static int hex_digit(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The code unit of the 4 hex digits at s[i..i+4), or -1. */
static long hex4(const unsigned char *s, size_t len, size_t i) {
  if (i > len || len - i < 4) return -1;
  long v = 0;
  for (int k = 0; k < 4; k++) {
    int d = hex_digit(s[i + k]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* Scans the string whose opening quote is at s[*pos]. On success returns NULL
 * with *pos just past the closing quote, *dlen the decoded byte length and
 * *nul set when a \u0000 escape occurs. On error returns the reason, with
 * *pos at the offending byte. */
static const char *scan_string(const unsigned char *s, size_t len, size_t *pos, size_t *dlen, int *nul) {
  size_t i = *pos + 1, n = 0;
  for (;;) {
    if (i >= len) {
      *pos = len;
      return "unterminated string";
    }
    unsigned char c = s[i];
    if (c == '"') {
      i++;
      break;
    }
    if (c < 0x20) {
      *pos = i;
      return "control character in string";
    }
    if (c != '\\') {
      i++;
      n++;
      continue;
    }
    if (i + 1 >= len) {
      *pos = len;
      return "unterminated string";
    }
    switch (s[i + 1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
      i += 2;
      n++;
      continue;
    case 'u':
      break;
    default:
      *pos = i;
      return "invalid escape";
    }
    long u = hex4(s, len, i + 2);
    if (u < 0) {
      *pos = i;
      return "invalid \\u escape";
    }
    unsigned long cp = (unsigned long)u;
    size_t esc = 6;
    if (u >= 0xDC00 && u <= 0xDFFF) {
      *pos = i;
      return "unpaired surrogate in \\u escape";
    }
    if (u >= 0xD800 && u <= 0xDBFF) {
      if (i + 7 >= len || s[i + 6] != '\\' || s[i + 7] != 'u') {
        *pos = i;
        return "unpaired surrogate in \\u escape";
      }
      long lo = hex4(s, len, i + 8);
      if (lo < 0) {
        *pos = i + 6;
        return "invalid \\u escape";
      }
      if (lo < 0xDC00 || lo > 0xDFFF) {
        *pos = i;
        return "unpaired surrogate in \\u escape";
      }
      cp = 0x10000 + ((((unsigned long)u & 0x3FF) << 10) | ((unsigned long)lo & 0x3FF));
      esc = 12;
    }
    if (cp == 0) *nul = 1;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    i += esc;
  }
  *pos = i;
  *dlen = n;
  return NULL;
}

/* Scans the number starting at s[*pos] ('-' or a digit). On success returns
 * NULL with *pos just past it; on error the reason, *pos at the bad byte. */
static const char *scan_number(const unsigned char *s, size_t len, size_t *pos) {
  size_t i = *pos;
  if (s[i] == '-') i++;
  if (i < len && s[i] == '0') {
    i++;
    if (i < len && is_digit(s[i])) {
      *pos = i;
      return "invalid number (leading zero)";
    }
  } else if (i < len && is_digit(s[i])) {
    while (i < len && is_digit(s[i])) i++;
  } else {
    *pos = i;
    return "invalid number";
  }
  if (i < len && s[i] == '.') {
    i++;
    if (i >= len || !is_digit(s[i])) {
      *pos = i;
      return "invalid number";
    }
    while (i < len && is_digit(s[i])) i++;
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= len || !is_digit(s[i])) {
      *pos = i;
      return "invalid number";
    }
    while (i < len && is_digit(s[i])) i++;
  }
  *pos = i;
  return NULL;
}

static int fail(po_json_check_result *out, size_t offset, const char *reason, int code) {
  out->error_offset = offset;
  out->error_reason = reason;
  return code;
}

int po_json_check(const char *text, size_t len, int max_depth, po_json_check_result *out) {
  if (!out || (!text && len) || max_depth < 0 || max_depth > PO_JSON_CHECK_DEPTH_LIMIT) return PO_EINVAL;
  memset(out, 0, sizeof *out);

  /* One bit per open container: 1 for an object, 0 for an array. */
  unsigned char is_object[PO_JSON_CHECK_DEPTH_LIMIT / 8 + 1];
  const unsigned char *s = (const unsigned char *)text;
  size_t depth = 0, i = skip_ws(s, len, 0), start, dlen;
  const char *why;

value:
  if (i >= len) return fail(out, len, "unexpected end of input", PO_EJSON);
  switch (s[i]) {
  case '[':
  case '{':
    if (depth >= (size_t)max_depth) return fail(out, i, "nesting too deep", PO_ETOODEEP);
    if (s[i] == '{')
      is_object[depth / 8] |= (unsigned char)(1u << (depth % 8));
    else
      is_object[depth / 8] &= (unsigned char)~(1u << (depth % 8));
    depth++;
    if (s[i] == '{') {
      i = skip_ws(s, len, i + 1);
      if (i < len && s[i] == '}') {
        i++;
        depth--;
        goto after_value;
      }
      goto key;
    }
    i = skip_ws(s, len, i + 1);
    if (i < len && s[i] == ']') {
      i++;
      depth--;
      goto after_value;
    }
    goto value;
  case '"':
    if ((why = scan_string(s, len, &i, &dlen, &out->has_nul_escape))) return fail(out, i, why, PO_EJSON);
    out->string_count++;
    goto after_value;
  case 't':
    if (len - i < 4 || memcmp(s + i, "true", 4) != 0) return fail(out, i, "invalid literal", PO_EJSON);
    i += 4;
    goto after_value;
  case 'f':
    if (len - i < 5 || memcmp(s + i, "false", 5) != 0) return fail(out, i, "invalid literal", PO_EJSON);
    i += 5;
    goto after_value;
  case 'n':
    if (len - i < 4 || memcmp(s + i, "null", 4) != 0) return fail(out, i, "invalid literal", PO_EJSON);
    i += 4;
    goto after_value;
  default:
    if (s[i] != '-' && !is_digit(s[i])) return fail(out, i, "expected a value", PO_EJSON);
    start = i;
    if ((why = scan_number(s, len, &i))) return fail(out, i, why, PO_EJSON);
    if (i - start > PO_JSON_NUMBER_TEXT_MAX) out->has_long_number = 1;
    goto after_value;
  }

key:
  if (i >= len) return fail(out, len, "unexpected end of input", PO_EJSON);
  if (s[i] != '"') return fail(out, i, "expected a string key", PO_EJSON);
  if ((why = scan_string(s, len, &i, &dlen, &out->has_nul_escape))) return fail(out, i, why, PO_EJSON);
  out->string_count++;
  i = skip_ws(s, len, i);
  if (i >= len) return fail(out, len, "unexpected end of input", PO_EJSON);
  if (s[i] != ':') return fail(out, i, "expected ':'", PO_EJSON);
  i = skip_ws(s, len, i + 1);
  goto value;

after_value:
  i = skip_ws(s, len, i);
  if (depth == 0) {
    if (i < len) return fail(out, i, "unexpected data after the JSON value", PO_EJSON);
    return 0;
  }
  if (i >= len) return fail(out, len, "unexpected end of input", PO_EJSON);
  if (is_object[(depth - 1) / 8] & (1u << ((depth - 1) % 8))) {
    if (s[i] == ',') {
      i = skip_ws(s, len, i + 1);
      goto key;
    }
    if (s[i] != '}') return fail(out, i, "expected ',' or '}'", PO_EJSON);
  } else {
    if (s[i] == ',') {
      i = skip_ws(s, len, i + 1);
      goto value;
    }
    if (s[i] != ']') return fail(out, i, "expected ',' or ']'", PO_EJSON);
  }
  i++;
  depth--;
  goto after_value;
}

int po_json_string_lengths(const char *text, size_t len, size_t *lengths, size_t count) {
  if (!text && len) return PO_EINVAL;
  const unsigned char *s = (const unsigned char *)text;
  size_t k = 0, i = 0, dlen;
  int nul = 0;
  while (i < len) {
    if (s[i] != '"') {
      i++;
      continue;
    }
    if (k >= count || scan_string(s, len, &i, &dlen, &nul)) return PO_EINVAL;
    lengths[k++] = dlen;
  }
  return 0;
}

/* Appends a short text for the number s[0..n) (valid JSON number syntax). */
static int append_short_number(const unsigned char *s, size_t n, po_strbuf *out) {
  char small[128];
  char *copy = n < sizeof small ? small : malloc(n + 1);
  if (!copy) return PO_ENOMEM;
  /* strtod reads the locale's decimal point, as cJSON arranges too. */
  char point = localeconv()->decimal_point[0];
  for (size_t k = 0; k < n; k++) copy[k] = s[k] == '.' ? point : (char)s[k];
  copy[n] = '\0';
  double d = strtod(copy, NULL);
  if (copy != small) free(copy);

  char num[40];
  int w;
  if (isinf(d))
    w = snprintf(num, sizeof num, "%s", d < 0 ? "-1e999" : "1e999");
  else
    w = snprintf(num, sizeof num, "%.17g", d);
  if (w < 0 || (size_t)w >= sizeof num) return PO_EINVAL;
  for (int k = 0; k < w; k++)
    if (num[k] == point) num[k] = '.';
  return po_strbuf_append(out, num, (size_t)w);
}

int po_json_shorten_numbers(const char *text, size_t len, po_strbuf *out) {
  if (!out || (!text && len)) return PO_EINVAL;
  if (len == 0) return 0; /* text may be NULL then: no arithmetic on it */
  const unsigned char *s = (const unsigned char *)text;
  size_t before = out->len, copied = 0, i = 0, dlen;
  int nul = 0, rc = 0;
  while (i < len) {
    unsigned char c = s[i];
    if (c == '"') {
      if (scan_string(s, len, &i, &dlen, &nul)) {
        rc = PO_EINVAL;
        break;
      }
    } else if (c == '-' || is_digit(c)) {
      size_t start = i;
      if (scan_number(s, len, &i)) {
        rc = PO_EINVAL;
        break;
      }
      if (i - start > PO_JSON_NUMBER_TEXT_MAX) {
        if ((rc = po_strbuf_append(out, s + copied, start - copied))) break;
        if ((rc = append_short_number(s + start, i - start, out))) break;
        copied = i;
      }
    } else {
      i++;
    }
  }
  if (!rc) rc = po_strbuf_append(out, s + copied, len - copied);
  if (rc) out->len = before;
  return rc;
}

int po_json_format_number(double d, char *buf, size_t cap, size_t *len) {
  if (!buf || !len || cap < PO_JSON_NUMBER_BUF || isnan(d) || isinf(d)) return PO_EINVAL;
  if (d == 0) {
    *len = (size_t)snprintf(buf, cap, "%s", signbit(d) ? "-0" : "0");
    return 0;
  }
  if (d == floor(d) && fabs(d) < 9007199254740992.0) {
    long long v = (long long)d;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char tmp[24];
    size_t n = 0, k = 0;
    while (u) {
      tmp[n++] = (char)('0' + u % 10);
      u /= 10;
    }
    if (v < 0) buf[k++] = '-';
    while (n) buf[k++] = tmp[--n];
    buf[k] = '\0';
    *len = k;
    return 0;
  }
  int w = 0;
  for (int prec = 15; prec <= 17; prec++) {
    w = snprintf(buf, cap, "%.*g", prec, d);
    if (prec == 17 || strtod(buf, NULL) == d) break;
  }
  /* snprintf and strtod follow the locale's decimal point; JSON wants '.' */
  char point = localeconv()->decimal_point[0];
  if (point != '.')
    for (int i = 0; i < w; i++)
      if (buf[i] == point) buf[i] = '.';
  *len = (size_t)w;
  return 0;
}

int po_json_append_string(po_strbuf *out, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t before = out->len, run = 0; /* run: start of the bytes not yet copied */
  int rc = po_strbuf_grow(out, len + 2);
  if (!rc) rc = po_strbuf_append_char(out, '"');
  for (size_t i = 0; i < len && !rc; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    default:
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      n = 6;
    }
    rc = po_strbuf_append(out, s + run, i - run);
    if (!rc) rc = po_strbuf_append(out, esc, n);
    run = i + 1;
  }
  if (!rc) rc = po_strbuf_append(out, s + run, len - run);
  if (!rc) rc = po_strbuf_append_char(out, '"');
  if (rc) out->len = before;
  return rc;
}
