#include "redis_url.h"

#include "error.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Copies s[0..len) with %XX decoded; NULL on a bad escape, a NUL byte or no
 * memory (*bad tells which). */
static char *decode(const char *s, size_t len, int *bad) {
  char *out = malloc(len + 1), *o = out;
  if (!out) return NULL;
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '%') {
      *o++ = s[i];
      continue;
    }
    int hi = i + 2 < len ? hexval(s[i + 1]) : -1, lo = i + 2 < len ? hexval(s[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi | lo) == 0) goto fail;
    *o++ = (char)(hi << 4 | lo);
    i += 2;
  }
  *o = '\0';
  return out;
fail:
  free(out);
  *bad = 1;
  return NULL;
}

static int parse_int(const char *s, size_t len, long max, int *out) {
  if (len == 0 || len > 9) return -1;
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  if (v > max) return -1;
  *out = (int)v;
  return 0;
}

/* user:password@ at the start of [s, end): sets u->user, u->password and
 * returns where the rest begins, or NULL with *rc set. */
static const char *parse_userinfo(const char *s, const char *end, po_redis_url *u, int *rc, const char **why) {
  const char *at = NULL;
  for (const char *p = s; p < end; p++)
    if (*p == '@') at = p;
  if (!at) return s;
  const char *colon = memchr(s, ':', (size_t)(at - s));
  if (!colon) {
    *rc = PO_EINVAL;
    *why = "a user needs a password (user:password@)";
    return NULL;
  }
  int bad = 0;
  if (colon > s) {
    u->user = decode(s, (size_t)(colon - s), &bad);
    if (!u->user) goto fail;
  }
  u->password = decode(colon + 1, (size_t)(at - colon - 1), &bad);
  if (!u->password) goto fail;
  if (!u->password[0]) {
    *rc = PO_EINVAL;
    *why = "the password is empty";
    return NULL;
  }
  return at + 1;
fail:
  *rc = bad ? PO_EINVAL : PO_ENOMEM;
  *why = bad ? "a bad %-escape in the user or password" : "out of memory";
  return NULL;
}

static int parse_tcp(const char *s, po_redis_url *u, const char **why) {
  const char *end = s + strcspn(s, "/?#");
  int rc = 0;
  const char *h = parse_userinfo(s, end, u, &rc, why);
  if (!h) return rc;
  const char *host_end, *port = NULL;
  if (*h == '[') {
    host_end = memchr(h, ']', (size_t)(end - h));
    if (!host_end) return *why = "an IPv6 host lacks its ']'", PO_EINVAL;
    h++;
    if (host_end + 1 < end) {
      if (host_end[1] != ':') return *why = "junk after the IPv6 host", PO_EINVAL;
      port = host_end + 2;
    }
  } else {
    host_end = memchr(h, ':', (size_t)(end - h));
    if (host_end)
      port = host_end + 1;
    else
      host_end = end;
  }
  if (host_end == h) return *why = "the host is missing", PO_EINVAL;
  u->port = 6379;
  if (port && parse_int(port, (size_t)(end - port), 65535, &u->port) != 0)
    return *why = "the port must be a number from 1 to 65535", PO_EINVAL;
  if (u->port == 0) return *why = "the port must be a number from 1 to 65535", PO_EINVAL;
  u->host = strndup(h, (size_t)(host_end - h));
  if (!u->host) return *why = "out of memory", PO_ENOMEM;
  if (*end == '/' && end[1]) {
    const char *db = end + 1;
    if (parse_int(db, strcspn(db, "?#"), 1 << 30, &u->db) != 0) return *why = "the database must be a number", PO_EINVAL;
    end = db + strcspn(db, "?#");
  } else if (*end == '/') {
    end++;
  }
  if (*end) return *why = "query strings and fragments are not understood in redis:// URLs", PO_EINVAL;
  return 0;
}

static int parse_unix(const char *s, po_redis_url *u, const char **why) {
  const char *slash = strchr(s, '/');
  if (!slash) return *why = "the socket path must be absolute (unix:///path.sock)", PO_EINVAL;
  int rc = 0;
  const char *p = parse_userinfo(s, slash, u, &rc, why);
  if (!p) return rc;
  if (p != slash) return *why = "a unix:// URL has no host (unix:///path.sock)", PO_EINVAL;
  size_t len = strcspn(slash, "?#");
  if (len < 2) return *why = "the socket path is missing", PO_EINVAL;
  int bad = 0;
  u->path = decode(slash, len, &bad);
  if (!u->path) return *why = bad ? "a bad %-escape in the path" : "out of memory", bad ? PO_EINVAL : PO_ENOMEM;
  const char *q = slash + len;
  if (!*q) return 0;
  if (strncmp(q, "?db=", 4) != 0 || parse_int(q + 4, strlen(q + 4), 1 << 30, &u->db) != 0)
    return *why = "the only query a unix:// URL takes is ?db=N", PO_EINVAL;
  return 0;
}

int po_redis_url_parse(const char *url, po_redis_url *out, const char **why) {
  memset(out, 0, sizeof *out);
  static const char none[] = "";
  *why = none;
  int rc;
  if (strncasecmp(url, "redis://", 8) == 0)
    rc = parse_tcp(url + 8, out, why);
  else if (strncasecmp(url, "unix://", 7) == 0)
    rc = parse_unix(url + 7, out, why);
  else if (strncasecmp(url, "rediss://", 9) == 0) {
    *why = "rediss:// (TLS) needs a hiredis with TLS, which this build does not link";
    rc = PO_EUNSUPPORTED;
  } else {
    *why = "the scheme must be redis:// or unix://";
    rc = PO_EINVAL;
  }
  if (rc) po_redis_url_free(out);
  return rc;
}

void po_redis_url_free(po_redis_url *u) {
  if (u->password) {
    volatile char *p = u->password;
    while (*p) *p++ = 0;
  }
  free(u->host);
  free(u->path);
  free(u->user);
  free(u->password);
  memset(u, 0, sizeof *u);
}

static int dup_field(char **dst, const char *src) {
  *dst = NULL;
  if (!src) return 0;
  *dst = strdup(src);
  return *dst ? 0 : -1;
}

int po_redis_url_copy(po_redis_url *dst, const po_redis_url *src) {
  *dst = *src;
  dst->host = dst->path = dst->user = dst->password = NULL;
  if (dup_field(&dst->host, src->host) || dup_field(&dst->path, src->path) || dup_field(&dst->user, src->user) ||
      dup_field(&dst->password, src->password)) {
    po_redis_url_free(dst);
    return PO_ENOMEM;
  }
  return 0;
}
