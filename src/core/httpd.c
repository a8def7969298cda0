/* libmicrohttpd driven by the po_loop: MHD_USE_EPOLL without an internal
 * thread, its epoll fd watched for reading, MHD_run then, and a loop timer
 * for MHD_get_timeout (connection timeouts, and work MHD left for its next
 * run).
 *
 * A request is a po_httpd_req made when MHD reads the request line (the URI
 * log callback gives the raw target, before MHD decodes anything) and freed
 * once both MHD (request completed or server closed) and the callee
 * (po_httpd_req_release) are done with it. While its answer is not ready,
 * the connection is suspended; answering resumes it, which wakes MHD's
 * epoll fd through MHD's own eventfd. A stream suspends the connection when
 * its buffer runs dry, so an idle stream costs no CPU. */
#include "httpd.h"

#include "error.h"
#include "httpd_parse.h"
#include "strbuf.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

enum { STREAM_BLOCK = 16 * 1024, STREAM_KEEP = 64 * 1024 };

struct po_httpd_req {
  po_httpd *srv;               /* NULL once the server has closed */
  struct MHD_Connection *conn; /* set from the first access-handler call until MHD is done */
  po_httpd_req *prev, *next;   /* in srv->reqs */
  char *target;                /* the raw request target */
  char *method, *path, *query_string;
  char remote[64];
  po_httpd_pairs headers, query;
  po_strbuf body;
  size_t header_bytes;
  int late_status; /* a rejection found while reading the body (413) */
  unsigned head_read : 1, dispatched : 1, mhd_held : 1, owned : 1, suspended : 1, answered : 1, streaming : 1,
      stream_ended : 1, failed : 1,
      stream_cut : 1; /* bytes were lost (out of memory): the stream ends in error, not with its last chunk */
  struct MHD_Response *response; /* made, not yet queued */
  int status;
  po_strbuf stream;
  size_t stream_off;
};

struct po_httpd {
  po_loop *loop;
  struct MHD_Daemon *mhd;
  int epfd, watching;
  po_timer *timer;
  po_httpd_request_fn on_request;
  void *ud;
  char *token;
  size_t max_header_bytes, max_body_bytes;
  unsigned max_connections;
  int port;
  po_httpd_req *reqs;
  int in_run, closed, close_pending, free_pending, kicked;
  po_httpd_stats stats;
};

/* ---- requests' lifetime ---- */

static void req_free(po_httpd_req *req) {
  if (req->response) MHD_destroy_response(req->response);
  po_httpd_pairs_free(&req->headers);
  po_httpd_pairs_free(&req->query);
  po_strbuf_free(&req->body);
  po_strbuf_free(&req->stream);
  free(req->target);
  free(req->method);
  free(req->path);
  free(req->query_string);
  free(req);
}

static void req_unlink(po_httpd_req *req) {
  if (!req->srv) return;
  if (req->prev)
    req->prev->next = req->next;
  else
    req->srv->reqs = req->next;
  if (req->next) req->next->prev = req->prev;
  req->prev = req->next = NULL;
}

static void req_maybe_free(po_httpd_req *req) {
  if (req->mhd_held || req->owned) return;
  req_unlink(req);
  req_free(req);
}

static int req_usable(const po_httpd_req *req) {
  return req->srv && req->conn && !req->srv->closed && !req->stream_cut;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
  po_httpd *srv = cls;
  po_httpd_req *req = calloc(1, sizeof *req);
  if (!req) return NULL;
  req->target = strdup(uri);
  if (!req->target) {
    free(req);
    return NULL;
  }
  req->srv = srv;
  req->mhd_held = 1;
  req->next = srv->reqs;
  if (srv->reqs) srv->reqs->prev = req;
  srv->reqs = req;
  return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
  po_httpd_req *req = *con_cls;
  if (!req) return;
  *con_cls = NULL;
  req->conn = NULL;
  req->mhd_held = 0;
  req->suspended = 0;
  req_maybe_free(req);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  po_httpd *srv = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    srv->stats.active++;
    return;
  }
  /* At the limit MHD took its listening socket out of its epoll set; it
   * puts it back at the start of a run, but counts a connection gone at
   * the end of one. Without another run, connections waiting in the listen
   * queue would wait until some other event came. */
  if (srv->stats.active >= srv->max_connections) srv->kicked = 1;
  if (srv->stats.active > 0) srv->stats.active--;
}

/* ---- reading a request ---- */

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  po_httpd_req *req = cls;
  size_t nlen = strlen(key), vlen = value ? strlen(value) : 0;
  req->header_bytes += nlen + vlen + 4;
  char lower[256];
  if (nlen >= sizeof lower) return MHD_YES; /* counted against the limit; no known header is that long */
  for (size_t i = 0; i < nlen; i++) lower[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32 : key[i]);
  if (po_httpd_pairs_set(&req->headers, lower, nlen, value ? value : "", vlen, ", ") != 0) {
    req->failed = 1;
    return MHD_NO;
  }
  return MHD_YES;
}

static const char *header(const po_httpd_req *req, const char *name) {
  for (size_t i = 0; i < req->headers.n; i++)
    if (strcmp(req->headers.items[i].name, name) == 0) return req->headers.items[i].value;
  return NULL;
}

static void format_remote(po_httpd_req *req, struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = info ? info->client_addr : NULL;
  char ip[INET6_ADDRSTRLEN] = "?";
  if (sa && sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const void *)sa;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    snprintf(req->remote, sizeof req->remote, "%s:%u", ip, ntohs(in->sin_port));
  } else if (sa && sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const void *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    snprintf(req->remote, sizeof req->remote, "[%s]:%u", ip, ntohs(in6->sin6_port));
  } else {
    snprintf(req->remote, sizeof req->remote, "?");
  }
}

/* Reads the request line and headers. Returns 0, a status to reject the
 * request with, or -1 when memory ran out. */
static int read_head(po_httpd *srv, po_httpd_req *req, struct MHD_Connection *conn, const char *method) {
  req->method = strdup(method);
  if (!req->method) return -1;
  format_remote(req, conn);
  MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, req);
  if (req->failed) return -1;
  req->header_bytes += strlen(method) + strlen(req->target) + 12;
  if (req->header_bytes > srv->max_header_bytes) return MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE;

  const char *q = strchr(req->target, '?');
  size_t path_len = q ? (size_t)(q - req->target) : strlen(req->target);
  int rc = po_httpd_decode_path(req->target, path_len, &req->path);
  if (rc == PO_ENOMEM) return -1;
  if (rc) return MHD_HTTP_BAD_REQUEST;
  req->query_string = strdup(q ? q + 1 : "");
  if (!req->query_string) return -1;
  if (po_httpd_parse_query(req->query_string, strlen(req->query_string), &req->query)) return -1;

  if (srv->token && !po_httpd_bearer_ok(header(req, "authorization"), srv->token)) return MHD_HTTP_UNAUTHORIZED;
  const char *length = header(req, "content-length");
  if (length) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(length, &end, 10);
    if (errno || end == length || *end) return MHD_HTTP_BAD_REQUEST;
    if (n > srv->max_body_bytes) return 413;
  }
  return 0;
}

/* ---- answering ---- */

static enum MHD_Result queue(po_httpd_req *req) {
  enum MHD_Result r = MHD_queue_response(req->conn, (unsigned)req->status, req->response);
  MHD_destroy_response(req->response);
  req->response = NULL;
  return r;
}

static const char *reject_text(int status) {
  switch (status) {
  case 400: return "bad request\n";
  case 401: return "unauthorized\n";
  case 413: return "request body too large\n";
  default: return "request header fields too large\n";
  }
}

/* Answers one of the server's own refusals (400, 401, 413, 431). */
static enum MHD_Result reject(po_httpd *srv, po_httpd_req *req, int status) {
  const char *text = reject_text(status);
  srv->stats.requests++;
  srv->stats.rejected++;
  req->answered = 1;
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
  if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
  req->response = r;
  req->status = status;
  return queue(req);
}

static void kick(po_httpd *srv);

static void wake(po_httpd_req *req) {
  if (req->suspended && req->conn) {
    req->suspended = 0;
    MHD_resume_connection(req->conn);
    /* MHD takes a resumed connection back on its next run; in external
     * mode nothing else makes that run happen. */
    kick(req->srv);
  }
}

static void suspend(po_httpd_req *req) {
  req->suspended = 1;
  MHD_suspend_connection(req->conn);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  po_httpd *srv = cls;
  po_httpd_req *req = *con_cls;
  if (!req || srv->closed) return MHD_NO;
  if (!req->head_read) {
    req->head_read = 1;
    req->conn = conn;
    int status = read_head(srv, req, conn, method);
    if (status < 0) return MHD_NO;
    if (status) return reject(srv, req, status);
    return MHD_YES;
  }
  if (req->answered && !req->dispatched) { /* rejected: the rest of the body is dropped */
    *upload_size = 0;
    return MHD_YES;
  }
  if (*upload_size) {
    /* A chunked body has no Content-Length to refuse up front: the excess
     * is read and dropped, then refused as a whole. */
    if (!req->late_status && req->body.len + *upload_size > srv->max_body_bytes) req->late_status = 413;
    if (!req->late_status && po_strbuf_append(&req->body, upload, *upload_size) != 0) return MHD_NO;
    *upload_size = 0;
    return MHD_YES;
  }
  if (req->late_status) return reject(srv, req, req->late_status);
  if (!req->dispatched) {
    srv->stats.requests++;
    req->dispatched = 1;
    req->owned = 1;
    srv->on_request(req, srv->ud);
  }
  if (req->response) return queue(req);
  suspend(req); /* the answer comes later, or a resume came with nothing new */
  return MHD_YES;
}

static int check_headers(const po_httpd_pair *headers, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const po_httpd_pair *h = &headers[i];
    if (h->name_len == 0 || strlen(h->name) != h->name_len || strlen(h->value) != h->value_len) return PO_EINVAL;
    if (strpbrk(h->name, "\r\n: \t") || strpbrk(h->value, "\r\n")) return PO_EINVAL;
  }
  return 0;
}

static int add_headers(struct MHD_Response *r, const po_httpd_pair *headers, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *name = headers[i].name;
    /* MHD frames the body itself; a handler's own framing would contradict it. */
    if (!strcasecmp(name, "Content-Length") || !strcasecmp(name, "Transfer-Encoding") ||
        !strcasecmp(name, "Connection"))
      continue;
    if (MHD_add_response_header(r, name, headers[i].value) != MHD_YES) return PO_EINVAL;
  }
  return 0;
}

static int answer_check(const po_httpd_req *req, int status, const po_httpd_pair *headers, size_t nheaders) {
  if (req->answered || status < 100 || status > 599) return PO_EINVAL;
  if (check_headers(headers, nheaders)) return PO_EINVAL;
  if (!req_usable(req)) return PO_ECONN;
  return 0;
}

static int deliver(po_httpd_req *req, int status, struct MHD_Response *r, const po_httpd_pair *headers,
                   size_t nheaders) {
  int rc = add_headers(r, headers, nheaders);
  if (rc) {
    MHD_destroy_response(r);
    return rc;
  }
  req->answered = 1;
  req->response = r;
  req->status = status;
  wake(req);
  return 0;
}

int po_httpd_respond(po_httpd_req *req, int status, const po_httpd_pair *headers, size_t nheaders, const char *body,
                     size_t len) {
  int rc = answer_check(req, status, headers, nheaders);
  if (rc) return rc;
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)(len ? body : ""), MHD_RESPMEM_MUST_COPY);
  if (!r) return PO_ENOMEM;
  return deliver(req, status, r, headers, nheaders);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  po_httpd_req *req = cls;
  size_t avail = req->stream.len - req->stream_off;
  if (avail) {
    size_t n = avail < max ? avail : max;
    memcpy(buf, req->stream.data + req->stream_off, n);
    req->stream_off += n;
    if (req->stream_off == req->stream.len) {
      po_strbuf_reset(&req->stream, STREAM_KEEP);
      req->stream_off = 0;
    }
    return (ssize_t)n;
  }
  /* A stream missing bytes must not end as a whole one: the client sees
   * the connection close before the last chunk. */
  if (req->stream_cut) return MHD_CONTENT_READER_END_WITH_ERROR;
  if (req->stream_ended || !req->owned || !req_usable(req)) return MHD_CONTENT_READER_END_OF_STREAM;
  suspend(req); /* until the next write or the end */
  return 0;
}

int po_httpd_stream_start(po_httpd_req *req, int status, const po_httpd_pair *headers, size_t nheaders) {
  int rc = answer_check(req, status, headers, nheaders);
  if (rc) return rc;
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, req, NULL);
  if (!r) return PO_ENOMEM;
  rc = deliver(req, status, r, headers, nheaders);
  if (rc == 0) req->streaming = 1;
  return rc;
}

int po_httpd_stream_write(po_httpd_req *req, const char *data, size_t len) {
  if (!req->streaming || req->stream_ended) return PO_EINVAL;
  if (!req_usable(req)) return PO_ECONN;
  if (po_strbuf_append(&req->stream, data, len) != 0) {
    req->stream_cut = 1;
    wake(req);
    return PO_ENOMEM;
  }
  wake(req);
  return 0;
}

int po_httpd_stream_end(po_httpd_req *req) {
  if (!req->streaming || req->stream_ended) return PO_EINVAL;
  req->stream_ended = 1;
  wake(req);
  return 0;
}

int po_httpd_req_closed(const po_httpd_req *req) { return !req_usable(req); }

void po_httpd_req_release(po_httpd_req *req) {
  if (!req) return;
  if (req_usable(req)) {
    static const char text[] = "internal server error\n";
    static const po_httpd_pair type = {"Content-Type", 12, "text/plain; charset=utf-8", 25};
    if (!req->answered)
      po_httpd_respond(req, 500, &type, 1, text, sizeof text - 1);
    else if (req->streaming && !req->stream_ended)
      po_httpd_stream_end(req);
  }
  req->owned = 0;
  req_maybe_free(req);
}

const char *po_httpd_req_method(const po_httpd_req *req) { return req->method; }
const char *po_httpd_req_path(const po_httpd_req *req) { return req->path; }
const char *po_httpd_req_query_string(const po_httpd_req *req) { return req->query_string; }
const char *po_httpd_req_remote(const po_httpd_req *req) { return req->remote; }
size_t po_httpd_req_header_count(const po_httpd_req *req) { return req->headers.n; }
const po_httpd_pair *po_httpd_req_header(const po_httpd_req *req, size_t i) { return &req->headers.items[i]; }
size_t po_httpd_req_query_count(const po_httpd_req *req) { return req->query.n; }
const po_httpd_pair *po_httpd_req_query(const po_httpd_req *req, size_t i) { return &req->query.items[i]; }

const char *po_httpd_req_body(const po_httpd_req *req, size_t *len) {
  *len = req->body.len;
  return req->body.data ? req->body.data : "";
}

/* ---- the daemon on the loop ---- */

static void on_timer(po_loop *loop, void *ud);

static void set_timer(po_httpd *srv, double delay) {
  po_timer *t = NULL;
  /* Out of memory for the new timer: the old one, kept, still runs MHD
   * (at the latest when a connection's idle timeout is due), which sets
   * the next; stopped first, nothing might ever run it again. */
  if (delay >= 0 && po_loop_timer_start(srv->loop, delay, on_timer, srv, &t) != 0) return;
  if (srv->timer) po_loop_timer_stop(srv->loop, srv->timer);
  srv->timer = t;
}

static void arm_timer(po_httpd *srv) {
  MHD_UNSIGNED_LONG_LONG ms;
  if (srv->kicked)
    set_timer(srv, 0);
  else
    set_timer(srv, MHD_get_timeout(srv->mhd, &ms) == MHD_YES ? (double)ms / 1000.0 : -1);
  srv->kicked = 0;
}

static void kick(po_httpd *srv) {
  if (srv->closed) return; /* do_close stops MHD, resumed connections and all */
  if (srv->in_run)
    srv->kicked = 1; /* arm_timer, after MHD_run, sees it */
  else
    set_timer(srv, 0);
}

static void do_close(po_httpd *srv) {
  srv->close_pending = 0;
  if (srv->timer) po_loop_timer_stop(srv->loop, srv->timer);
  srv->timer = NULL;
  if (srv->watching) po_loop_io_stop(srv->loop, srv->epfd);
  srv->watching = 0;
  /* MHD may not be stopped with connections suspended. Resumed now, they
   * are only closed: srv->closed keeps handlers and streams from running. */
  for (po_httpd_req *req = srv->reqs; req; req = req->next) wake(req);
  if (srv->mhd) MHD_stop_daemon(srv->mhd);
  srv->mhd = NULL;
  /* MHD has let go of every connection; what the callee still owns stays
   * until released, without its server. */
  po_httpd_req *req = srv->reqs;
  srv->reqs = NULL;
  while (req) {
    po_httpd_req *next = req->next;
    req->srv = NULL;
    req->conn = NULL;
    req->mhd_held = 0;
    req->prev = req->next = NULL;
    if (!req->owned) req_free(req);
    req = next;
  }
}

static void release_server(po_httpd *srv) {
  free(srv->token);
  free(srv);
}

static void run_mhd(po_httpd *srv) {
  /* A handler that waits outside a task runs the loop again from inside
   * MHD_run; MHD is not re-entrant, so that inner turn leaves it alone. */
  if (srv->in_run || srv->closed) return;
  srv->in_run = 1;
  MHD_run(srv->mhd);
  srv->in_run = 0;
  if (srv->close_pending) {
    do_close(srv);
    if (srv->free_pending) release_server(srv);
    return;
  }
  arm_timer(srv);
}

static void on_timer(po_loop *loop, void *ud) {
  po_httpd *srv = ud;
  srv->timer = NULL;
  run_mhd(srv);
}

static void on_ready(po_loop *loop, int fd, unsigned events, void *ud) { run_mhd(ud); }

int po_httpd_is_loopback(const char *addr) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, addr, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, addr, &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return 1;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
  }
  return -1;
}

/* Binds a listening socket to host:port. Returns the fd, or -1 with errno
 * set (EINVAL for a host that is not a numeric address). */
static int listen_on(const char *host, int port) {
  struct sockaddr_storage ss = {0};
  socklen_t sslen;
  struct sockaddr_in *in = (void *)&ss;
  struct sockaddr_in6 *in6 = (void *)&ss;
  if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    sslen = sizeof *in;
  } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    sslen = sizeof *in6;
  } else {
    errno = EINVAL;
    return -1;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 128) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int bound_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int po_httpd_new(po_loop *loop, const po_httpd_opts *opts, po_httpd_request_fn on_request, void *ud, po_httpd **out) {
  *out = NULL;
  const char *host = opts->host ? opts->host : "127.0.0.1";
  if (!loop || !on_request || opts->port < 0 || opts->port > 65535 || isnan(opts->timeout) || opts->timeout < 0)
    return PO_EINVAL;
  int loopback = po_httpd_is_loopback(host);
  if (loopback < 0 || (opts->token && !opts->token[0]) || (!opts->token && !loopback)) return PO_EINVAL;

  po_httpd *srv = calloc(1, sizeof *srv);
  if (!srv) return PO_ENOMEM;
  srv->loop = loop;
  srv->on_request = on_request;
  srv->ud = ud;
  srv->max_header_bytes = opts->max_header_bytes ? opts->max_header_bytes : 16384;
  srv->max_body_bytes = opts->max_body_bytes ? opts->max_body_bytes : 1048576;
  if (opts->token && !(srv->token = strdup(opts->token))) {
    free(srv);
    return PO_ENOMEM;
  }
  unsigned max_conn = srv->max_connections = opts->max_connections ? opts->max_connections : 256;
  double t = opts->timeout > 0 ? ceil(opts->timeout) : 30;
  unsigned timeout = t > 86400 ? 86400 : (unsigned)t;
  /* MHD keeps a connection's read buffer, its parsed headers and the
   * response's headers in one pool: room for the largest header we accept,
   * the structures MHD builds from it and an answer's headers. */
  size_t pool = srv->max_header_bytes * 2 + 32 * 1024;

  int fd = listen_on(host, opts->port);
  if (fd < 0) {
    int e = errno;
    release_server(srv);
    errno = e;
    return e == EINVAL ? PO_EINVAL : PO_EIO;
  }
  srv->port = bound_port(fd);
  srv->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_access, srv,
                              MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, max_conn,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                              MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_END);
  if (!srv->mhd) {
    close(fd);
    release_server(srv);
    errno = EIO;
    return PO_EIO;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  srv->epfd = info ? info->epoll_fd : -1;
  int rc = srv->epfd >= 0 ? po_loop_io_start(loop, srv->epfd, PO_IO_READ, on_ready, srv) : PO_EIO;
  if (rc) {
    MHD_stop_daemon(srv->mhd);
    release_server(srv);
    return rc;
  }
  srv->watching = 1;
  arm_timer(srv);
  *out = srv;
  return 0;
}

int po_httpd_port(const po_httpd *srv) { return srv->port; }

void po_httpd_get_stats(const po_httpd *srv, po_httpd_stats *out) { *out = srv->stats; }

void po_httpd_close(po_httpd *srv) {
  if (!srv || srv->closed) return;
  srv->closed = 1;
  if (srv->in_run)
    srv->close_pending = 1;
  else
    do_close(srv);
}

void po_httpd_free(po_httpd *srv) {
  if (!srv) return;
  po_httpd_close(srv);
  if (srv->close_pending)
    srv->free_pending = 1;
  else
    release_server(srv);
}
