#include "http.h"
#include "http_internal.h"

#include "clock.h"
#include "curl_lib.h"
#include "error.h"
#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum req_state {
  REQ_RUNNING, /* in libcurl's hands */
  REQ_ENDING,  /* out of libcurl, on_done scheduled (canceled) */
};

struct po_http {
  po_loop *loop;
  const po_curl_api *curl;
  CURLM *multi;
  po_timer *timer;                      /* libcurl's own timeout, when it asked for one */
  po_http_req *all;                     /* every transfer not yet finished */
  po_http_req *dirty_head, *dirty_tail; /* streaming transfers with bytes to hand over */
  int active;
  int running;    /* transfers in libcurl's multi handle */
  int processing; /* process() is running (a nested loop turn must not re-enter it) */
  int doomed;     /* some transfer's socket could not be watched: process() fails it */
  int timer_lost; /* libcurl's timer could not be armed and none was left: process() fails them all */
};

struct po_http_req {
  po_http *http;
  CURL *easy;
  struct curl_slist *header_list;
  const po_http_handler *handler;
  void *ud;
  enum req_state state;
  int stream;

  double start, last_activity;
  double timeout, connect_timeout, ttfb_timeout, idle_timeout;
  po_timer *ttfb_timer, *idle_timer, *end_timer;
  int got_first_byte;

  long status;
  char **names, **values; /* response headers of the last response (not of a 100 or a redirect) */
  size_t nheaders, headers_cap;
  po_strbuf body;    /* the body when not streaming */
  po_strbuf pending; /* streamed bytes not yet handed to on_chunk */
  int oom;           /* a callback ran out of memory: the transfer ends with PO_ENOMEM */
  int in_callback;   /* on_chunk is running */
  int zombie;        /* finished while on_chunk ran: to be freed when it returns */
  int doomed;        /* its socket could not be watched: it ends with PO_ENOMEM */

  po_http_req *prev, *next; /* http->all */
  po_http_req *next_dirty;
  int dirty;

  char method[24];
  char url[512]; /* redacted, for messages */
  char errbuf[CURL_ERROR_SIZE];
};

/* ---- small helpers ---- */

/* The length of url's scheme and "://" when it starts with one (RFC 3986:
 * a letter, then letters, digits, '+', '-', '.'), else 0: a "://" further on,
 * in a scheme-less URL's query, says nothing about where the host is. */
static size_t scheme_prefix(const char *url) {
  size_t i = 0;
  if (!isalpha((unsigned char)url[0])) return 0;
  while (isalnum((unsigned char)url[i]) || url[i] == '+' || url[i] == '-' || url[i] == '.') i++;
  return strncmp(url + i, "://", 3) == 0 ? i + 3 : 0;
}

void po_http_redact_url(const char *url, char *buf, size_t size) {
  if (!size) return;
  size_t prefix = scheme_prefix(url);
  const char *host = url + prefix;
  const char *end = host + strcspn(host, "?#");
  const char *slash = host + strcspn(host, "/?#");
  const char *at = NULL; /* user-info ends at the last '@' before the path */
  for (const char *p = host; p < slash; p++)
    if (*p == '@') at = p;
  if (at) host = at + 1;
  snprintf(buf, size, "%.*s%.*s", (int)prefix, url, (int)(end - host), host);
}

int po_http_status_line(const char *line, size_t len, long *status) {
  if (len < 5 || memcmp(line, "HTTP/", 5) != 0) return 0;
  const char *sp = memchr(line, ' ', len), *end = line + len;
  long code = 0;
  int digits = 0;
  /* Exactly three digits, read only within len: the line is not
   * NUL-terminated, so strtol could run past it. */
  for (const char *p = sp ? sp + 1 : end; p < end && isdigit((unsigned char)*p) && digits < 4; p++, digits++)
    code = code * 10 + (*p - '0');
  *status = digits == 3 ? code : 0;
  return 1;
}

static void headers_clear(po_http_req *r) {
  for (size_t i = 0; i < r->nheaders; i++) {
    free(r->names[i]);
    free(r->values[i]);
  }
  r->nheaders = 0;
}

static void req_free(po_http_req *r) {
  headers_clear(r);
  free(r->names);
  free(r->values);
  po_strbuf_free(&r->body);
  po_strbuf_free(&r->pending);
  if (r->header_list) r->http->curl->slist_free_all(r->header_list);
  if (r->easy) r->http->curl->easy_cleanup(r->easy);
  free(r);
}

static void unlink_dirty(po_http_req *r) {
  if (!r->dirty) return;
  po_http *h = r->http;
  po_http_req **pp = &h->dirty_head, *prev = NULL;
  while (*pp && *pp != r) {
    prev = *pp;
    pp = &(*pp)->next_dirty;
  }
  if (*pp) *pp = r->next_dirty;
  if (h->dirty_tail == r) h->dirty_tail = prev;
  r->dirty = 0;
  r->next_dirty = NULL;
}

/* Takes r out of libcurl and stops its timers; it stays in http->all. */
static void detach(po_http_req *r) {
  po_http *h = r->http;
  if (r->state == REQ_RUNNING) {
    h->curl->multi_remove_handle(h->multi, r->easy);
    h->running--;
  }
  if (r->ttfb_timer) po_loop_timer_stop(h->loop, r->ttfb_timer);
  if (r->idle_timer) po_loop_timer_stop(h->loop, r->idle_timer);
  if (r->end_timer) po_loop_timer_stop(h->loop, r->end_timer);
  r->ttfb_timer = r->idle_timer = r->end_timer = NULL;
  unlink_dirty(r);
}

static void unlink_all(po_http_req *r) {
  po_http *h = r->http;
  if (r->prev)
    r->prev->next = r->next;
  else
    h->all = r->next;
  if (r->next) r->next->prev = r->prev;
  h->active--;
}

static const char *version_text(long v) {
  switch (v) {
  case CURL_HTTP_VERSION_1_0: return "1.0";
  case CURL_HTTP_VERSION_1_1: return "1.1";
  case CURL_HTTP_VERSION_2_0: return "2";
  case CURL_HTTP_VERSION_3: return "3";
  default: return "";
  }
}

/* Ends r: out of libcurl, on_done with rc, freed. detail completes the
 * message when rc != 0. */
static void finish(po_http_req *r, int rc, const char *detail) {
  po_http *h = r->http;
  detach(r);
  r->state = REQ_ENDING;
  unlink_all(r);
  if (r->oom && rc == 0) rc = PO_ENOMEM;
  long version = 0;
  h->curl->easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &version);
  char message[CURL_ERROR_SIZE + 640];
  message[0] = 0;
  if (rc != 0) snprintf(message, sizeof message, "%s %s: %s", r->method, r->url, detail ? detail : po_strerror(rc));
  po_http_result res = {
      .status = r->status,
      .http_version = version_text(version),
      .nheaders = r->nheaders,
      .names = r->names,
      .values = r->values,
      .body = r->body.data ? r->body.data : "",
      .body_len = r->body.len,
      .duration = po_monotonic() - r->start,
      .message = message,
  };
  r->handler->on_done(r, rc, &res, r->ud);
  if (r->in_callback)
    r->zombie = 1; /* ended from inside its own on_chunk: deliver()'s caller frees it */
  else
    req_free(r);
}

/* ---- what libcurl calls ---- */

static void mark_activity(po_http_req *r) {
  r->last_activity = po_monotonic();
  if (!r->got_first_byte) {
    r->got_first_byte = 1;
    if (r->ttfb_timer) {
      po_loop_timer_stop(r->http->loop, r->ttfb_timer);
      r->ttfb_timer = NULL;
    }
  }
}

const char *po_http_req_header(const po_http_req *r, const char *name) {
  for (size_t i = 0; i < r->nheaders; i++)
    if (strcmp(r->names[i], name) == 0) return r->values[i];
  return NULL;
}

static int add_header(po_http_req *r, const char *name, size_t nlen, const char *value, size_t vlen) {
  for (size_t i = 0; i < r->nheaders; i++) {
    if (strlen(r->names[i]) == nlen && memcmp(r->names[i], name, nlen) == 0) {
      size_t old = strlen(r->values[i]);
      char *joined = realloc(r->values[i], old + 2 + vlen + 1);
      if (!joined) return PO_ENOMEM;
      memcpy(joined + old, ", ", 2);
      memcpy(joined + old + 2, value, vlen);
      joined[old + 2 + vlen] = 0;
      r->values[i] = joined;
      return 0;
    }
  }
  if (r->nheaders == r->headers_cap) {
    size_t cap = r->headers_cap ? r->headers_cap * 2 : 16;
    char **names = realloc(r->names, cap * sizeof *names);
    if (!names) return PO_ENOMEM;
    r->names = names;
    char **values = realloc(r->values, cap * sizeof *values);
    if (!values) return PO_ENOMEM;
    r->values = values;
    r->headers_cap = cap;
  }
  char *n = malloc(nlen + 1), *v = malloc(vlen + 1);
  if (!n || !v) {
    free(n);
    free(v);
    return PO_ENOMEM;
  }
  for (size_t i = 0; i < nlen; i++) n[i] = (char)tolower((unsigned char)name[i]);
  n[nlen] = 0;
  memcpy(v, value, vlen);
  v[vlen] = 0;
  r->names[r->nheaders] = n;
  r->values[r->nheaders] = v;
  r->nheaders++;
  return 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp) {
  po_http_req *r = userp;
  size_t n = size * nmemb;
  mark_activity(r);
  size_t len = n;
  while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n')) len--;
  if (po_http_status_line(data, len, &r->status)) {
    /* A new response (after a 100 Continue, a redirect or a proxy's
     * CONNECT): its headers replace those seen before. */
    headers_clear(r);
    return n;
  }
  if (len == 0) return n;
  if ((data[0] == ' ' || data[0] == '\t') && r->nheaders > 0) {
    /* An obsolete folded continuation line: part of the previous value. */
    size_t i = r->nheaders - 1, old = strlen(r->values[i]);
    while (len > 0 && (data[0] == ' ' || data[0] == '\t')) data++, len--;
    char *v = realloc(r->values[i], old + 1 + len + 1);
    if (!v) {
      r->oom = 1;
      return 0;
    }
    v[old] = ' ';
    memcpy(v + old + 1, data, len);
    v[old + 1 + len] = 0;
    r->values[i] = v;
    return n;
  }
  const char *colon = memchr(data, ':', len);
  if (!colon) return n;
  size_t nlen = (size_t)(colon - data);
  const char *value = colon + 1, *end = data + len;
  while (value < end && (*value == ' ' || *value == '\t')) value++;
  while (end > value && (end[-1] == ' ' || end[-1] == '\t')) end--;
  if (add_header(r, data, nlen, value, (size_t)(end - value)) != 0) {
    r->oom = 1;
    return 0;
  }
  return n;
}

static void make_dirty(po_http_req *r) {
  if (r->dirty) return;
  po_http *h = r->http;
  r->dirty = 1;
  r->next_dirty = NULL;
  if (h->dirty_tail)
    h->dirty_tail->next_dirty = r;
  else
    h->dirty_head = r;
  h->dirty_tail = r;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp) {
  po_http_req *r = userp;
  size_t n = size * nmemb;
  mark_activity(r);
  po_strbuf *to = r->stream ? &r->pending : &r->body;
  if (po_strbuf_append(to, data, n) != 0) {
    r->oom = 1;
    return 0;
  }
  if (r->stream && n) make_dirty(r);
  return n;
}

static void process(po_http *h);

static void on_io(po_loop *loop, int fd, unsigned events, void *ud) {
  po_http *h = ud;
  int flags = 0, running = 0;
  if (events & PO_IO_READ) flags |= CURL_CSELECT_IN;
  if (events & PO_IO_WRITE) flags |= CURL_CSELECT_OUT;
  if (events & PO_IO_ERROR) flags |= CURL_CSELECT_ERR;
  h->curl->multi_socket_action(h->multi, fd, flags, &running);
  process(h);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  po_http *h = userp;
  if (what == CURL_POLL_REMOVE) {
    if (socketp) {
      po_loop_io_stop(h->loop, s);
      h->curl->multi_assign(h->multi, s, NULL);
    }
    return 0;
  }
  unsigned events = 0;
  if (what & CURL_POLL_IN) events |= PO_IO_READ;
  if (what & CURL_POLL_OUT) events |= PO_IO_WRITE;
  if (socketp) return po_loop_io_update(h->loop, s, events) == 0 ? 0 : -1;
  int rc = po_loop_io_start(h->loop, s, events, on_io, h);
  if (rc == PO_EINVAL) {
    /* A watcher left over on a closed socket whose number came back. */
    po_loop_io_stop(h->loop, s);
    rc = po_loop_io_start(h->loop, s, events, on_io, h);
  }
  if (rc != 0) {
    /* Out of memory. Returning -1 would mark the whole multi handle dead
     * (every transfer, now and later, failing), and an unwatched socket
     * stalls its transfer: instead process(), which runs after every call
     * into libcurl, ends this one transfer with PO_ENOMEM. */
    po_http_req *r = NULL;
    h->curl->easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    if (r) r->doomed = h->doomed = 1;
    return 0;
  }
  h->curl->multi_assign(h->multi, s, h);
  return 0;
}

static void on_curl_timer(po_loop *loop, void *ud) {
  po_http *h = ud;
  int running = 0;
  h->timer = NULL;
  h->curl->multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  process(h);
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp) {
  po_http *h = userp;
  po_timer *t = NULL;
  if (timeout_ms >= 0 && po_loop_timer_start(h->loop, (double)timeout_ms / 1000.0, on_curl_timer, h, &t) != 0) {
    /* Out of memory (-1 would mark the multi handle dead for good). An old
     * timer, kept, still wakes libcurl, which then asks again; with none,
     * nothing would: process() fails the transfers instead of letting them
     * stall. */
    if (!h->timer) h->timer_lost = 1;
    return 0;
  }
  if (h->timer) po_loop_timer_stop(h->loop, h->timer);
  h->timer = t;
  h->timer_lost = 0;
  return 0;
}

/* ---- completion ---- */

static int map_result(po_http_req *r, CURLcode code, const char **detail) {
  const char *text = r->errbuf[0] ? r->errbuf : r->http->curl->easy_strerror(code);
  *detail = text;
  switch (code) {
  case CURLE_OK: return 0;
  case CURLE_OPERATION_TIMEDOUT:
    /* libcurl reports both of its deadlines with this code; its message
     * tells them apart ("Operation timed out" is the total one). */
    if (strncmp(r->errbuf, "Operation", 9) == 0)
      snprintf(r->errbuf, sizeof r->errbuf, "timed out after %g s (timeout: the whole transfer)", r->timeout);
    else
      snprintf(r->errbuf, sizeof r->errbuf, "timed out after %g s (connect_timeout: no connection)",
               r->connect_timeout > 0 ? r->connect_timeout : r->timeout);
    *detail = r->errbuf;
    return PO_ETIMEDOUT;
  case CURLE_COULDNT_CONNECT: {
    long os_errno = 0;
    r->http->curl->easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
    return os_errno == ECONNREFUSED ? PO_ECONNREFUSED : PO_ECONN;
  }
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CLIENTCERT:
  case CURLE_USE_SSL_FAILED: return PO_ETLS;
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL: return PO_EINVAL;
  case CURLE_OUT_OF_MEMORY: return PO_ENOMEM;
  case CURLE_WRITE_ERROR: return r->oom ? PO_ENOMEM : PO_EIO;
  default: return PO_ECONN; /* resets, early closes, unresolvable hosts, protocol errors */
  }
}

/* Hands r's streamed bytes to on_chunk; returns what on_chunk returned.
 * The owner may start or cancel transfers meanwhile, or even run the loop
 * (a nested wait): bytes that arrive then go to a fresh buffer, and a
 * transfer that ends meanwhile is freed by the caller once this returns. */
static int deliver(po_http_req *r) {
  if (r->pending.len == 0) return 0;
  if (!r->handler->on_chunk) {
    r->pending.len = 0;
    return 0;
  }
  po_strbuf chunk = r->pending;
  po_strbuf_init(&r->pending);
  r->in_callback++;
  int rc = r->handler->on_chunk(r, chunk.data, chunk.len, r->status, r->ud);
  r->in_callback--;
  if (!r->pending.data) {
    po_strbuf_reset(&chunk, 1 << 16);
    r->pending = chunk;
  } else {
    po_strbuf_free(&chunk);
  }
  return rc;
}

/* Ends with PO_ENOMEM the transfers whose socket could not be watched, or
 * every running one when libcurl's timer was lost. */
static void fail_doomed(po_http *h) {
  if (h->timer_lost)
    for (po_http_req *r = h->all; r; r = r->next)
      if (r->state == REQ_RUNNING) r->doomed = 1;
  h->doomed = h->timer_lost = 0;
  for (;;) { /* on_done may start or cancel transfers: look again from the head each time */
    po_http_req *r = h->all;
    while (r && !(r->doomed && r->state == REQ_RUNNING)) r = r->next;
    if (!r) return;
    r->doomed = 0;
    finish(r, PO_ENOMEM, NULL);
  }
}

/* Hands streamed bytes to their owners, then ends the transfers libcurl has
 * finished. Runs after every call into libcurl, never inside one. */
static void process(po_http *h) {
  if (h->processing) return;
  h->processing = 1;
  for (;;) {
    po_http_req *r = h->dirty_head;
    if (r) {
      h->dirty_head = r->next_dirty;
      if (!h->dirty_head) h->dirty_tail = NULL;
      r->dirty = 0;
      r->next_dirty = NULL;
      if (r->state != REQ_RUNNING) continue;
      int rc = deliver(r);
      if (r->zombie)
        req_free(r);
      else if (rc != 0 && r->state == REQ_RUNNING)
        finish(r, rc, "aborted by on_chunk");
      continue;
    }
    if (h->doomed || h->timer_lost) {
      fail_doomed(h);
      continue;
    }
    int left = 0;
    CURLMsg *msg = h->curl->multi_info_read(h->multi, &left);
    if (!msg) break;
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    CURLcode code = msg->data.result;
    po_http_req *done = NULL;
    h->curl->easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&done);
    if (!done || done->state != REQ_RUNNING) continue;
    int rc = deliver(done); /* bytes still owed go first (none, normally) */
    if (done->zombie) {
      req_free(done);
      continue;
    }
    if (done->state != REQ_RUNNING) continue;
    const char *detail = "aborted by on_chunk";
    if (rc == 0) rc = map_result(done, code, &detail);
    char saved[CURL_ERROR_SIZE];
    snprintf(saved, sizeof saved, "%s", detail);
    finish(done, rc, saved);
  }
  h->processing = 0;
}

/* ---- our own deadlines ---- */

static void on_ttfb(po_loop *loop, void *ud) {
  po_http_req *r = ud;
  char detail[96];
  r->ttfb_timer = NULL;
  snprintf(detail, sizeof detail, "no response byte within %g s (ttfb_timeout)", r->ttfb_timeout);
  finish(r, PO_ETIMEDOUT, detail);
}

static void on_idle(po_loop *loop, void *ud) {
  po_http_req *r = ud;
  r->idle_timer = NULL;
  double quiet = po_monotonic() - r->last_activity;
  if (!r->got_first_byte || quiet < r->idle_timeout) {
    /* Bytes came since it was set: wait for the rest of the window. */
    double left = r->got_first_byte ? r->idle_timeout - quiet : r->idle_timeout;
    if (po_loop_timer_start(loop, left, on_idle, r, &r->idle_timer) == 0) return;
  }
  char detail[96];
  snprintf(detail, sizeof detail, "no data for %g s (idle_timeout)", r->idle_timeout);
  finish(r, PO_ETIMEDOUT, detail);
}

static void on_end(po_loop *loop, void *ud) {
  po_http_req *r = ud;
  r->end_timer = NULL;
  finish(r, PO_ECANCELED, "canceled");
}

/* ---- public ---- */

int po_http_new(po_loop *loop, po_http **out) {
  const po_curl_api *curl;
  if (po_curl_load(&curl) != 0) return PO_EUNAVAIL;
  po_http *h = calloc(1, sizeof *h);
  if (!h) return PO_ENOMEM;
  h->loop = loop;
  h->curl = curl;
  h->multi = curl->multi_init();
  if (!h->multi) {
    free(h);
    return PO_ENOMEM;
  }
  curl->multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl->multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl->multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
  curl->multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  *out = h;
  return 0;
}

void po_http_free(po_http *h) {
  if (!h) return;
  while (h->all) {
    po_http_req *r = h->all;
    detach(r);
    r->state = REQ_ENDING;
    unlink_all(r);
    if (r->handler->on_drop) r->handler->on_drop(r->ud);
    req_free(r);
  }
  h->curl->multi_cleanup(h->multi);
  if (h->timer) po_loop_timer_stop(h->loop, h->timer);
  free(h);
}

int po_http_active(const po_http *h) { return h->active; }

int po_http_running(const po_http *h) { return h->running; }

const char *po_http_load_error(void) { return po_curl_load_error(); }

static int valid_header_line(const char *line) { return strpbrk(line, "\r\n") == NULL; }

int po_http_start(po_http *h, const po_http_opts *o, const po_http_handler *handler, void *ud, po_http_req **out) {
  if (!o->url || !handler || !handler->on_done) return PO_EINVAL;
  const char *method = o->method ? o->method : "GET";
  if (strlen(method) >= sizeof ((po_http_req *)0)->method || !*method || strpbrk(method, " \r\n")) return PO_EINVAL;
  for (size_t i = 0; i < o->nheaders; i++)
    if (!valid_header_line(o->headers[i])) return PO_EINVAL;
  const po_curl_api *c = h->curl;
  po_http_req *r = calloc(1, sizeof *r);
  if (!r) return PO_ENOMEM;
  r->http = h;
  r->handler = handler;
  r->ud = ud;
  r->stream = o->stream;
  r->timeout = o->timeout;
  r->connect_timeout = o->connect_timeout;
  r->ttfb_timeout = o->ttfb_timeout;
  r->idle_timeout = o->idle_timeout;
  snprintf(r->method, sizeof r->method, "%s", method);
  po_http_redact_url(o->url, r->url, sizeof r->url);
  r->easy = c->easy_init();
  if (!r->easy) goto oom;
  for (size_t i = 0; i < o->nheaders; i++) {
    struct curl_slist *l = c->slist_append(r->header_list, o->headers[i]);
    if (!l) goto oom;
    r->header_list = l;
  }
  CURL *e = r->easy;
  c->easy_setopt(e, CURLOPT_URL, o->url);
  c->easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
  c->easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  c->easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  c->easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  c->easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  /* Waiting for a connection to the same host to say whether it can
   * multiplex only pays over TLS, where HTTP/2 may come. Over plain http it
   * holds every new request to a host while one response to it streams
   * (an SSE feed, a streamed completion) until that response ends. */
  if (strncasecmp(o->url, "https:", 6) == 0) c->easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  c->easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  c->easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  c->easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  c->easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  c->easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  c->easy_setopt(e, CURLOPT_HEADERDATA, r);
  c->easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  c->easy_setopt(e, CURLOPT_WRITEDATA, r);
  if (r->header_list) c->easy_setopt(e, CURLOPT_HTTPHEADER, r->header_list);
  if (o->timeout > 0) c->easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(o->timeout * 1000.0 + 0.5));
  if (o->connect_timeout > 0) c->easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(o->connect_timeout * 1000.0 + 0.5));
  if (o->body) {
    c->easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    if (c->easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->body) != CURLE_OK) goto oom;
  }
  if (strcmp(method, "HEAD") == 0)
    c->easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0 || o->body)
    c->easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "GET") == 0 && !o->body) c->easy_setopt(e, CURLOPT_HTTPGET, 1L);

  r->start = r->last_activity = po_monotonic();
  if (o->ttfb_timeout > 0 && po_loop_timer_start(h->loop, o->ttfb_timeout, on_ttfb, r, &r->ttfb_timer) != 0) goto oom;
  if (o->idle_timeout > 0 && po_loop_timer_start(h->loop, o->idle_timeout, on_idle, r, &r->idle_timer) != 0) goto oom;
  r->next = h->all;
  if (h->all) h->all->prev = r;
  h->all = r;
  h->active++;
  if (c->multi_add_handle(h->multi, e) != CURLM_OK) {
    unlink_all(r);
    r->state = REQ_ENDING;
    goto oom;
  }
  h->running++;
  if (h->timer_lost) { /* nothing would start it (see on_timer_change) */
    h->timer_lost = 0;
    detach(r);
    unlink_all(r);
    r->state = REQ_ENDING;
    req_free(r);
    return PO_ENOMEM;
  }
  if (out) *out = r;
  return 0;
oom:
  if (r->ttfb_timer) po_loop_timer_stop(h->loop, r->ttfb_timer);
  if (r->idle_timer) po_loop_timer_stop(h->loop, r->idle_timer);
  req_free(r);
  return PO_ENOMEM;
}

void po_http_cancel(po_http_req *r) {
  if (!r || r->state != REQ_RUNNING) return;
  detach(r);
  r->state = REQ_ENDING;
  if (po_loop_timer_start(r->http->loop, 0, on_end, r, &r->end_timer) != 0) finish(r, PO_ECANCELED, "canceled");
}

/* ---- the response-header parser alone, for tests and fuzzing (http_internal.h) ---- */

po_http_req *po_http_headers_new(void) { return calloc(1, sizeof(po_http_req)); }

size_t po_http_headers_feed(po_http_req *r, char *data, size_t len) { return on_header(data, 1, len, r); }

void po_http_headers_result(const po_http_req *r, long *status, size_t *n, char *const **names,
                            char *const **values) {
  *status = r->status;
  *n = r->nheaders;
  *names = r->names;
  *values = r->values;
}

void po_http_headers_free(po_http_req *r) {
  if (r) req_free(r);
}
