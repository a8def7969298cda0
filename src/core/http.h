/* HTTP client on the event loop: libcurl's multi *socket* API, driven by a
 * po_loop.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION, mapped onto
 * po_loop_io_start/update/stop) and when to wake it (CURLMOPT_TIMERFUNCTION,
 * a po_loop timer); the loop calls curl_multi_socket_action back. Many
 * transfers run at once in one thread. libcurl is opened on first use
 * (curl_lib.h), never linked.
 *
 * Every callback to the owner (on_chunk, on_done) runs from a loop callback
 * *outside* any libcurl call, so the owner may start and cancel transfers
 * from inside them. */
#ifndef PO_HTTP_H
#define PO_HTTP_H

#include <stddef.h>

#include "loop.h"

typedef struct po_http po_http;         /* one libcurl multi handle on one loop */
typedef struct po_http_req po_http_req; /* one transfer */

typedef struct po_http_opts {
  const char *method;         /* "GET" when NULL; any token ("POST", "DELETE" …) */
  const char *url;            /* required */
  const char *const *headers; /* nheaders lines "Name: value" (copied) */
  size_t nheaders;
  const char *body; /* request body (copied), or NULL */
  size_t body_len;
  double timeout;         /* whole transfer, seconds; 0: none */
  double connect_timeout; /* until connected (TLS included); 0: libcurl's 300 s */
  double ttfb_timeout;    /* from the start until the first byte of the response; 0: none */
  double idle_timeout;    /* longest silence once the response has started; 0: none */
  int stream;             /* non-zero: the body goes to on_chunk and is not kept */
} po_http_opts;

/* A finished response (rc 0) or what is known of a failed one. Valid only
 * during on_done. */
typedef struct po_http_result {
  long status;              /* 0 when no response arrived */
  const char *http_version; /* "1.0", "1.1", "2", "3", or "" */
  size_t nheaders;          /* names lower-cased; a repeated header's values joined with ", " */
  char *const *names;
  char *const *values;
  const char *body; /* the whole body (empty when streamed) */
  size_t body_len;
  double duration; /* seconds from the start to the end */
  const char *message; /* when rc != 0: what failed, without query string or credentials */
} po_http_result;

typedef struct po_http_handler {
  /* A piece of the body of a streaming transfer, in order; status is the
   * response's status code. Returns 0 to go on, or a negative PO_E code to
   * abort the transfer, which then ends with that code. May be NULL. */
  int (*on_chunk)(po_http_req *req, const char *data, size_t len, long status, void *ud);
  /* Called exactly once per started transfer, unless po_http_free drops it:
   * rc is 0 (a response, any status — a 500 is a response) or PO_ETIMEDOUT,
   * PO_ECONNREFUSED, PO_ECONN, PO_ETLS, PO_EINVAL (bad URL or protocol),
   * PO_ECANCELED, PO_ENOMEM, PO_EIO, or the code on_chunk aborted with. The
   * transfer is freed when it returns. */
  void (*on_done)(po_http_req *req, int rc, const po_http_result *res, void *ud);
  /* Called instead of on_done for transfers dropped by po_http_free. */
  void (*on_drop)(void *ud);
} po_http_handler;

/* The value of the response header `name` (lower case) of req's current
 * response, or NULL when it has none (yet): from on_chunk, the headers of
 * the response whose body is arriving. */
const char *po_http_req_header(const po_http_req *req, const char *name);

/* Creates a client on loop in *out, loading libcurl if needed. Returns 0,
 * PO_EUNAVAIL (libcurl cannot be loaded: po_http_load_error() says why) or
 * PO_ENOMEM. The loop must outlive the client. */
int po_http_new(po_loop *loop, po_http **out);

/* Why po_http_new returned PO_EUNAVAIL (libcurl missing); a static string. */
const char *po_http_load_error(void);

/* Drops every transfer in flight (their on_drop runs, never on_done) and
 * frees the client. NULL is ignored. */
void po_http_free(po_http *http);

/* Starts a transfer. handler (which must stay valid) and ud are the owner's;
 * *out (optional) identifies the transfer until on_done returns. Returns 0,
 * or PO_EINVAL (no URL, a header line with CR or LF) or PO_ENOMEM, in which
 * case no callback will run. */
int po_http_start(po_http *http, const po_http_opts *opts, const po_http_handler *handler, void *ud,
                  po_http_req **out);

/* Aborts a transfer: it leaves libcurl at once and on_done runs later, from
 * the loop, with PO_ECANCELED. Calling it again, or after on_done was
 * scheduled, does nothing. */
void po_http_cancel(po_http_req *req);

/* Transfers started and not yet finished (a canceled one counts until its
 * on_done has run). */
int po_http_active(const po_http *http);

/* Transfers in libcurl's hands: started, not finished, not canceled. A
 * canceled transfer leaves this count at once. */
int po_http_running(const po_http *http);

/* Copies url to buf (size bytes, NUL-terminated, truncated if need be)
 * without its user-info, query string or fragment, which may carry secrets:
 * "https://u:p@h/x?key=k" becomes "https://h/x", and "h/x?key=k" (no
 * scheme) "h/x". */
void po_http_redact_url(const char *url, char *buf, size_t size);

/* Whether the header line (len bytes, not NUL-terminated, no line end)
 * starts a response ("HTTP/1.1 200 OK"); if so, sets *status to its
 * three-digit code, or 0 when it has none. */
int po_http_status_line(const char *line, size_t len, long *status);

#endif
