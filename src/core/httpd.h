/* An HTTP server on the event loop (libmicrohttpd, with no thread of its
 * own): MHD's epoll fd is watched by the po_loop, MHD_run runs when it is
 * readable or when MHD's next timeout is due.
 *
 * The server checks what needs no policy before anyone sees a request:
 * header size (431), path syntax (400: not "/..." , a ".." segment or a NUL
 * once percent-decoded), the bearer token (401, compared in constant time)
 * and body size (413). Every other request goes to the on_request callback,
 * which owns it until po_httpd_req_release and answers it, at once or later
 * (the connection waits suspended, costing nothing), with a whole body or a
 * stream of chunks. */
#ifndef PO_HTTPD_H
#define PO_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct po_httpd po_httpd;
typedef struct po_httpd_req po_httpd_req;

/* A name and a value, each with its length (query values may hold any byte). */
typedef struct po_httpd_pair {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} po_httpd_pair;

typedef struct po_httpd_opts {
  const char *host;         /* a numeric IPv4 or IPv6 address; NULL: 127.0.0.1 */
  int port;                 /* 0: a free port, see po_httpd_port */
  const char *token;        /* NULL: none; required unless host is a loopback address */
  unsigned max_connections; /* 0: 256 */
  size_t max_header_bytes;  /* request line and headers; 0: 16384 */
  size_t max_body_bytes;    /* 0: 1 MiB */
  double timeout;           /* seconds a connection may stay idle; 0: 30 (rounded up to whole seconds) */
} po_httpd_opts;

/* Called on the loop's thread for each request that passed the checks. The
 * callee owns req until it calls po_httpd_req_release, and may answer it
 * before returning or later. */
typedef void (*po_httpd_request_fn)(po_httpd_req *req, void *ud);

/* Binds and starts listening. Returns 0 and the server in *out, or
 * PO_EINVAL (host not numeric, a token missing off loopback, a port out of
 * range), PO_EIO (socket, bind or MHD failed; errno says why: EADDRINUSE,
 * EACCES ...) or PO_ENOMEM. Nothing stays bound on failure. */
int po_httpd_new(po_loop *loop, const po_httpd_opts *opts, po_httpd_request_fn on_request, void *ud, po_httpd **out);

/* The port the server listens on (the chosen one when opts->port was 0). */
int po_httpd_port(const po_httpd *srv);

/* 1 if addr is a loopback address (127.0.0.0/8, ::1), 0 if it is another
 * numeric address, -1 if it is not a numeric IPv4 or IPv6 address. */
int po_httpd_is_loopback(const char *addr);

typedef struct po_httpd_stats {
  uint64_t requests; /* requests read in full, rejected ones included */
  uint64_t rejected; /* answered by the server's own checks (400, 401, 413, 431) */
  unsigned active;   /* connections open now */
} po_httpd_stats;

void po_httpd_get_stats(const po_httpd *srv, po_httpd_stats *out);

/* Stops listening and drops every connection; requests still owned by the
 * callee stay valid (answering them returns PO_ECONN). Safe to call twice,
 * and from inside on_request (the daemon stops once MHD_run has returned). */
void po_httpd_close(po_httpd *srv);

/* Closes the server and frees it. NULL is ignored. */
void po_httpd_free(po_httpd *srv);

/* ---- a request, valid until po_httpd_req_release ---- */

const char *po_httpd_req_method(const po_httpd_req *req);
/* The percent-decoded path (no query), starting with "/". */
const char *po_httpd_req_path(const po_httpd_req *req);
/* The raw query string after "?" ("" if none). */
const char *po_httpd_req_query_string(const po_httpd_req *req);
/* "ip:port", or "[ip]:port" for IPv6. */
const char *po_httpd_req_remote(const po_httpd_req *req);
const char *po_httpd_req_body(const po_httpd_req *req, size_t *len);
/* Headers with lowercase names, repeated ones joined with ", ". */
size_t po_httpd_req_header_count(const po_httpd_req *req);
const po_httpd_pair *po_httpd_req_header(const po_httpd_req *req, size_t i);
/* Query parameters, decoded ("+" is a space); a repeated name keeps its last value. */
size_t po_httpd_req_query_count(const po_httpd_req *req);
const po_httpd_pair *po_httpd_req_query(const po_httpd_req *req, size_t i);

/* Answers with a whole body (copied). Content-Length, Transfer-Encoding and
 * Connection among headers are left out: the server sets them. Returns 0,
 * PO_EINVAL (already answered, a status outside 100..599, a header with a
 * line break), PO_ECONN (the client or the server has gone) or PO_ENOMEM. */
int po_httpd_respond(po_httpd_req *req, int status, const po_httpd_pair *headers, size_t nheaders, const char *body,
                     size_t len);

/* Starts a streamed answer (chunked): the body is what po_httpd_stream_write
 * appends, until po_httpd_stream_end. Same returns as po_httpd_respond. */
int po_httpd_stream_start(po_httpd_req *req, int status, const po_httpd_pair *headers, size_t nheaders);

/* Appends to a started stream (buffered until the client takes it). Returns
 * 0, PO_ECONN once the client or the server has gone, PO_EINVAL if no
 * stream was started or it has ended, or PO_ENOMEM: the stream is then cut
 * (what was written before is sent, then the connection closes without the
 * last chunk, so the client cannot take it for whole) and later writes
 * return PO_ECONN. */
int po_httpd_stream_write(po_httpd_req *req, const char *data, size_t len);

/* Ends the stream once what was written is sent. Returns 0 or PO_EINVAL. */
int po_httpd_stream_end(po_httpd_req *req);

/* Non-zero once the request can no longer be answered (client or server gone). */
int po_httpd_req_closed(const po_httpd_req *req);

/* Gives the request back: one never answered gets a 500, a stream still open
 * ends. The memory goes once MHD is done with the connection too. */
void po_httpd_req_release(po_httpd_req *req);

#endif
