/* The parts of request handling in src/core/httpd.c that need no socket:
 * path decoding, query parsing, header lists and the bearer-token check. */
#ifndef PO_HTTPD_PARSE_H
#define PO_HTTPD_PARSE_H

#include <stddef.h>

#include "httpd.h"

/* A list of pairs; each pair's name and value live in one allocation,
 * NUL-terminated after their lengths. A zeroed list is empty. */
typedef struct po_httpd_pairs {
  po_httpd_pair *items;
  size_t n, cap;
} po_httpd_pairs;

/* Sets name to value (copies): an existing name (compared exactly) has its
 * value replaced, or, with join non-NULL, join and value appended to it.
 * Returns 0 or PO_ENOMEM. */
int po_httpd_pairs_set(po_httpd_pairs *p, const char *name, size_t nlen, const char *value, size_t vlen,
                       const char *join);

void po_httpd_pairs_free(po_httpd_pairs *p);

/* Decodes the path of a request target (up to "?") into *out (malloc'd,
 * NUL-terminated). Returns 0, PO_EINVAL if it does not start with "/", has a
 * malformed %-escape, decodes to a NUL byte or has a ".." segment, or
 * PO_ENOMEM. */
int po_httpd_decode_path(const char *raw, size_t len, char **out);

/* Parses a query string (name=value pairs joined by "&", %-escapes and "+"
 * decoded) into p. Malformed escapes stay as written. Returns 0 or PO_ENOMEM. */
int po_httpd_parse_query(const char *qs, size_t len, po_httpd_pairs *p);

/* Non-zero if the Authorization header value carries "Bearer <token>";
 * takes the same time whatever the given token, for a token of one length. */
int po_httpd_bearer_ok(const char *authorization, const char *token);

#endif
