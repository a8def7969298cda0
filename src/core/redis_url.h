/* Redis connection URLs, the forms redis-cli and the common clients accept:
 *
 *   redis://[[user]:password@]host[:port][/db]     (port 6379, db 0)
 *   unix://[[user]:password@]/path/to.sock[?db=N]
 *
 * User and password may be percent-encoded (a password holding '@' or ':').
 * An IPv6 host is written in brackets: redis://[::1]:6379. rediss:// (TLS)
 * is recognised and refused: the hiredis this build links has no TLS. */
#ifndef PO_REDIS_URL_H
#define PO_REDIS_URL_H

typedef struct po_redis_url {
  char *host;     /* NULL for a unix socket */
  int port;       /* 0 for a unix socket */
  char *path;     /* the socket's path, NULL for TCP */
  char *user;     /* NULL: none (AUTH password alone) */
  char *password; /* NULL: no AUTH */
  int db;         /* SELECTed on connect when not 0 */
} po_redis_url;

/* Parses url into *out (owned by the caller: po_redis_url_free). Returns 0,
 * PO_EINVAL with *why saying what is wrong (never quoting the URL, which may
 * hold a password), PO_EUNSUPPORTED (rediss://) or PO_ENOMEM. *out is
 * zeroed on failure. */
int po_redis_url_parse(const char *url, po_redis_url *out, const char **why);

/* Frees the strings of u (not u itself) and zeroes it; the password's bytes
 * are overwritten first. */
void po_redis_url_free(po_redis_url *u);

/* Copies src into *dst. Returns 0 or PO_ENOMEM (*dst zeroed). */
int po_redis_url_copy(po_redis_url *dst, const po_redis_url *src);

#endif
