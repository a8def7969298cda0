#include "httpd_parse.h"

#include "error.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int po_httpd_pairs_set(po_httpd_pairs *p, const char *name, size_t nlen, const char *value, size_t vlen,
                       const char *join) {
  for (size_t i = 0; i < p->n; i++) {
    po_httpd_pair *it = &p->items[i];
    if (it->name_len != nlen || memcmp(it->name, name, nlen) != 0) continue;
    size_t jlen = join ? strlen(join) : 0;
    size_t keep = join ? it->value_len + jlen : 0;
    char *mem = malloc(nlen + 1 + keep + vlen + 1);
    if (!mem) return PO_ENOMEM;
    memcpy(mem, name, nlen);
    mem[nlen] = 0;
    char *v = mem + nlen + 1;
    if (join) {
      memcpy(v, it->value, it->value_len);
      memcpy(v + it->value_len, join, jlen);
    }
    memcpy(v + keep, value, vlen);
    v[keep + vlen] = 0;
    free((char *)it->name);
    *it = (po_httpd_pair){.name = mem, .name_len = nlen, .value = v, .value_len = keep + vlen};
    return 0;
  }
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 8;
    po_httpd_pair *items = realloc(p->items, cap * sizeof *items);
    if (!items) return PO_ENOMEM;
    p->items = items;
    p->cap = cap;
  }
  char *mem = malloc(nlen + 1 + vlen + 1);
  if (!mem) return PO_ENOMEM;
  memcpy(mem, name, nlen);
  mem[nlen] = 0;
  memcpy(mem + nlen + 1, value, vlen);
  mem[nlen + 1 + vlen] = 0;
  p->items[p->n++] = (po_httpd_pair){.name = mem, .name_len = nlen, .value = mem + nlen + 1, .value_len = vlen};
  return 0;
}

void po_httpd_pairs_free(po_httpd_pairs *p) {
  for (size_t i = 0; i < p->n; i++) free((char *)p->items[i].name);
  free(p->items);
  *p = (po_httpd_pairs){0};
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes s[0..len) into out (room for len bytes); returns the length, or
 * -1 on a malformed escape when strict (otherwise it stays as written). */
static long decode(const char *s, size_t len, char *out, int plus_is_space, int strict) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      int h = i + 2 < len ? hexval(s[i + 1]) : -1;
      int l = h >= 0 ? hexval(s[i + 2]) : -1;
      if (h >= 0 && l >= 0) {
        out[o++] = (char)(h * 16 + l);
        i += 2;
        continue;
      }
      if (strict) return -1;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    out[o++] = c;
  }
  return (long)o;
}

int po_httpd_decode_path(const char *raw, size_t len, char **out) {
  *out = NULL;
  if (len == 0 || raw[0] != '/') return PO_EINVAL;
  char *path = malloc(len + 1);
  if (!path) return PO_ENOMEM;
  long n = decode(raw, len, path, 0, 1);
  if (n < 0 || memchr(path, 0, (size_t)n)) {
    free(path);
    return PO_EINVAL;
  }
  path[n] = 0;
  /* Segments are read after decoding, so "%2e%2e" and "a%2F..%2Fb" count too. */
  for (const char *seg = path; seg; seg = strchr(seg, '/')) {
    seg++;
    if (seg[0] == '.' && seg[1] == '.' && (seg[2] == '/' || seg[2] == 0)) {
      free(path);
      return PO_EINVAL;
    }
  }
  *out = path;
  return 0;
}

int po_httpd_parse_query(const char *qs, size_t len, po_httpd_pairs *p) {
  size_t start = 0;
  char *buf = malloc(len + 1);
  if (!buf) return PO_ENOMEM;
  while (start < len) {
    const char *amp = memchr(qs + start, '&', len - start);
    size_t end = amp ? (size_t)(amp - qs) : len;
    if (end > start) {
      const char *eq = memchr(qs + start, '=', end - start);
      size_t name_end = eq ? (size_t)(eq - qs) : end;
      long nlen = decode(qs + start, name_end - start, buf, 1, 0);
      size_t vstart = eq ? name_end + 1 : end;
      long vlen = decode(qs + vstart, end - vstart, buf + nlen, 1, 0);
      int rc = po_httpd_pairs_set(p, buf, (size_t)nlen, buf + nlen, (size_t)vlen, NULL);
      if (rc) {
        free(buf);
        return rc;
      }
    }
    start = end + 1;
  }
  free(buf);
  return 0;
}

int po_httpd_bearer_ok(const char *authorization, const char *token) {
  if (!authorization || !token) return 0;
  if (strncasecmp(authorization, "Bearer ", 7) != 0) return 0;
  const char *given = authorization + 7;
  while (*given == ' ') given++;
  size_t glen = strlen(given), tlen = strlen(token);
  /* Every byte of the expected token is compared, whatever was given, and
   * nothing branches on a byte: the time tells only the token's length. */
  unsigned char diff = glen != tlen;
  for (size_t i = 0; i < tlen; i++) {
    unsigned char g = glen ? (unsigned char)given[i % glen] : 0;
    diff |= g ^ (unsigned char)token[i];
  }
  return diff == 0;
}
