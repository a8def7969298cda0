/* The response-header parser of http.c on its own, without libcurl or a
 * loop: for the unit tests and the fuzz target (tests/fuzz/fuzz_http.c),
 * which feed it header lines exactly as libcurl's CURLOPT_HEADERFUNCTION
 * would. Not part of the engine's API. */
#ifndef PO_HTTP_INTERNAL_H
#define PO_HTTP_INTERNAL_H

#include "http.h"

#include <stddef.h>

/* A detached request that only parses headers; NULL when memory runs out. */
po_http_req *po_http_headers_new(void);

/* Feeds one header line (data[0..len), not NUL-terminated, its CRLF
 * included, as libcurl hands it over). Returns len, or 0 when memory ran out
 * (libcurl then aborts the transfer). */
size_t po_http_headers_feed(po_http_req *r, char *data, size_t len);

/* The status and headers parsed so far (valid until the next feed or free). */
void po_http_headers_result(const po_http_req *r, long *status, size_t *n, char *const **names,
                            char *const **values);

/* Frees r; NULL is ignored. */
void po_http_headers_free(po_http_req *r);

#endif
