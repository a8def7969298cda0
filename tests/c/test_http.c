/* Tests for src/core/http.c: transfers on a po_loop against a small HTTP
 * server running in a thread of this process (127.0.0.1, ephemeral port). */
#include "error.h"
#include "http.h"
#include "http_internal.h"
#include "loop.h"

#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the server: one canned behaviour per test ---- */

enum mode { ANSWER, SILENT };

typedef struct server {
  int fd, port;
  enum mode mode;
  int connections; /* to accept before the thread ends */
  pthread_t thread;
} server;

static const char reply[] = "HTTP/1.1 200 OK\r\n"
                            "Content-Type: text/plain\r\n"
                            "X-Twice: one\r\n"
                            "x-twice: two\r\n"
                            "Content-Length: 11\r\n"
                            "Connection: close\r\n"
                            "\r\n"
                            "hello world";

static void *serve(void *arg) {
  server *s = arg;
  for (int i = 0; i < s->connections; i++) {
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) break;
    char buf[4096];
    size_t got = 0;
    while (got < sizeof buf - 1) { /* the request's head: enough for these tests */
      ssize_t n = read(c, buf + got, sizeof buf - 1 - got);
      if (n <= 0) break;
      got += (size_t)n;
      buf[got] = 0;
      if (strstr(buf, "\r\n\r\n")) break;
    }
    if (s->mode == ANSWER) {
      ssize_t w = write(c, reply, sizeof reply - 1);
      (void)w;
    } else {
      char drain[64];
      while (read(c, drain, sizeof drain) > 0) { /* until the client gives up */
      }
    }
    close(c);
  }
  return NULL;
}

static int listen_socket(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  *port = ntohs(a.sin_port);
  return fd;
}

static int server_start(server *s, enum mode mode, int connections) {
  s->mode = mode;
  s->connections = connections;
  s->fd = listen_socket(&s->port);
  if (s->fd < 0) return -1;
  return pthread_create(&s->thread, NULL, serve, s);
}

static void server_stop(server *s) {
  shutdown(s->fd, SHUT_RDWR); /* wakes accept() for connections that never came */
  pthread_join(s->thread, NULL);
  close(s->fd);
}

/* ---- the client side ---- */

typedef struct outcome {
  int done, dropped, rc;
  long status;
  char body[64];
  char message[512];
  char twice[32];
  char streamed[64];
  size_t streamed_len;
  int abort_with; /* on_chunk returns this */
} outcome;

static int on_chunk(po_http_req *req, const char *data, size_t len, long status, void *ud) {
  outcome *o = ud;
  if (o->streamed_len + len < sizeof o->streamed) {
    memcpy(o->streamed + o->streamed_len, data, len);
    o->streamed_len += len;
  }
  return o->abort_with;
}

static void on_done(po_http_req *req, int rc, const po_http_result *res, void *ud) {
  outcome *o = ud;
  o->done++;
  o->rc = rc;
  o->status = res->status;
  snprintf(o->body, sizeof o->body, "%.*s", (int)res->body_len, res->body);
  snprintf(o->message, sizeof o->message, "%s", res->message);
  for (size_t i = 0; i < res->nheaders; i++)
    if (strcmp(res->names[i], "x-twice") == 0) snprintf(o->twice, sizeof o->twice, "%s", res->values[i]);
}

static void on_drop(void *ud) { ((outcome *)ud)->dropped++; }

static const po_http_handler handler = {.on_chunk = on_chunk, .on_done = on_done, .on_drop = on_drop};

static void run_until_done(po_loop *loop, outcome *o, int count) {
  for (int i = 0; i < 100000; i++) {
    int all = 1;
    for (int k = 0; k < count; k++) all &= o[k].done > 0;
    if (all) return;
    po_loop_run_once(loop, 1.0, NULL);
  }
}

/* A loop, a client on it and, unless connections is 0, a server thread. */
typedef struct fixture {
  po_loop *loop;
  po_http *http;
  server s;
  int serving;
  char url[128];
} fixture;

static int fixture_start(fixture *f, enum mode mode, int connections) {
  memset(f, 0, sizeof *f);
  if (po_loop_new(&f->loop) != 0) return -1;
  if (po_http_new(f->loop, &f->http) != 0) return -1;
  if (connections == 0) return 0;
  if (server_start(&f->s, mode, connections) != 0) return -1;
  f->serving = 1;
  snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/", f->s.port);
  return 0;
}

/* The client goes first: closing its sockets ends the server's reads. */
static void fixture_stop(fixture *f) {
  po_http_free(f->http);
  if (f->serving) server_stop(&f->s);
  po_loop_free(f->loop);
}

static void redacts_credentials_and_query(void) {
  char buf[128];
  po_http_redact_url("https://user:pw@api.example.com/v1/x?key=secret#frag", buf, sizeof buf);
  CHECK(strcmp(buf, "https://api.example.com/v1/x") == 0);
  po_http_redact_url("http://127.0.0.1:8080/api/chat", buf, sizeof buf);
  CHECK(strcmp(buf, "http://127.0.0.1:8080/api/chat") == 0);
  po_http_redact_url("http://h?token=1", buf, sizeof buf);
  CHECK(strcmp(buf, "http://h") == 0);
  po_http_redact_url("http://h/a@b", buf, sizeof buf); /* '@' in the path is not user-info */
  CHECK(strcmp(buf, "http://h/a@b") == 0);
}

/* Issue 14, defect 9: the "://" of a query is not a scheme's. */
static void redacts_a_schemeless_url_with_a_url_in_its_query(void) {
  char buf[128];
  po_http_redact_url("api.example.com/v1?key=SECRET&next=http://x", buf, sizeof buf);
  CHECK_EQ_STR(buf, "api.example.com/v1");
  po_http_redact_url("user:pw@h/x#k=SECRET://y", buf, sizeof buf);
  CHECK_EQ_STR(buf, "h/x");
  po_http_redact_url("1http://h/x?key=SECRET", buf, sizeof buf); /* not a scheme: starts with a digit */
  CHECK(!strstr(buf, "SECRET"));
  po_http_redact_url("svn+ssh://u@h/r?key=SECRET", buf, sizeof buf);
  CHECK_EQ_STR(buf, "svn+ssh://h/r");
}

/* Issue 14, defect 10: the status line is read only within its length. */
static size_t feed(po_http_req *r, const char *line) {
  char buf[256];
  size_t len = strlen(line);
  memcpy(buf, line, len); /* libcurl's buffer is writable and not NUL-terminated */
  return po_http_headers_feed(r, buf, len);
}

/* The response-header parser alone: a 100 Continue's headers replaced by
 * the final response's, names lower-cased, values trimmed, a repeated
 * header joined with ", ", a folded continuation line joined to its value,
 * a line without a colon ignored; po_http_req_header finds them by name. */
static void parses_response_headers(void) {
  po_http_req *r = po_http_headers_new();
  REQUIRE(r != NULL);
  CHECK_EQ_INT(feed(r, "HTTP/1.1 100 Continue\r\n"), 23);
  feed(r, "X-Early: 1\r\n");
  feed(r, "\r\n");
  CHECK_EQ_STR(po_http_req_header(r, "x-early"), "1");
  feed(r, "HTTP/1.1 200 OK\r\n");
  CHECK(po_http_req_header(r, "x-early") == NULL); /* the final response's headers only */
  feed(r, "Content-Type:   text/event-stream  \r\n");
  feed(r, "Set-Cookie: a=1\r\n");
  feed(r, "set-cookie: b=2\r\n");
  feed(r, "X-Long: first\r\n");
  feed(r, "\t  second\r\n");
  feed(r, "no colon here\r\n");
  feed(r, "\r\n");
  long status = 0;
  size_t n = 0;
  char *const *names, *const *values;
  po_http_headers_result(r, &status, &n, &names, &values);
  CHECK_EQ_INT(status, 200);
  CHECK_EQ_INT(n, 3);
  CHECK_EQ_STR(po_http_req_header(r, "content-type"), "text/event-stream");
  CHECK_EQ_STR(po_http_req_header(r, "set-cookie"), "a=1, b=2");
  CHECK_EQ_STR(po_http_req_header(r, "x-long"), "first second");
  CHECK(po_http_req_header(r, "Content-Type") == NULL); /* names are looked up lower-cased */
  CHECK(po_http_req_header(r, "no colon here") == NULL);
  po_http_headers_free(r);
  po_http_headers_free(NULL);
}

static void status_line_is_read_within_its_length(void) {
  static const char line[] = "HTTP/1.1 2001234";
  long status = -1;
  CHECK(po_http_status_line(line, 12, &status) == 1);
  CHECK_EQ_INT(status, 200);
  CHECK(po_http_status_line(line, 9, &status) == 1); /* "HTTP/1.1 " and nothing after */
  CHECK_EQ_INT(status, 0);
  CHECK(po_http_status_line("HTTP/2 404 Not Found", 20, &status) == 1);
  CHECK_EQ_INT(status, 404);
  CHECK(po_http_status_line("HTTP/1.1 20000", 14, &status) == 1);
  CHECK_EQ_INT(status, 0);
  CHECK(po_http_status_line("HTTP/1.1", 8, &status) == 1);
  CHECK_EQ_INT(status, 0);
  CHECK(po_http_status_line("HTTP", 4, &status) == 0);
  CHECK(po_http_status_line("Content-Type: x", 15, &status) == 0);
}

static void gets_a_response_with_merged_headers(void) {
  fixture f;
  REQUIRE(fixture_start(&f, ANSWER, 1) == 0);
  outcome o = {0};
  po_http_opts opts = {.url = f.url};
  REQUIRE(po_http_start(f.http, &opts, &handler, &o, NULL) == 0);
  CHECK_EQ_INT(po_http_active(f.http), 1);
  run_until_done(f.loop, &o, 1);
  CHECK_EQ_INT(o.done, 1);
  CHECK_EQ_INT(o.rc, 0);
  CHECK_EQ_INT(o.status, 200);
  CHECK(strcmp(o.body, "hello world") == 0);
  CHECK(strcmp(o.twice, "one, two") == 0);
  CHECK_EQ_INT(o.streamed_len, 0);
  CHECK_EQ_INT(po_http_active(f.http), 0);
  fixture_stop(&f);
}

static void streams_the_body_to_on_chunk(void) {
  fixture f;
  REQUIRE(fixture_start(&f, ANSWER, 1) == 0);
  outcome o = {0};
  const char *headers[] = {"Content-Type: application/json", "Authorization: Bearer sk-never-shown"};
  po_http_opts opts = {.url = f.url, .method = "POST", .body = "{}", .body_len = 2, .headers = headers, .nheaders = 2, .stream = 1};
  REQUIRE(po_http_start(f.http, &opts, &handler, &o, NULL) == 0);
  run_until_done(f.loop, &o, 1);
  CHECK_EQ_INT(o.rc, 0);
  CHECK_EQ_INT(o.streamed_len, 11);
  CHECK(memcmp(o.streamed, "hello world", 11) == 0);
  CHECK(strcmp(o.body, "") == 0); /* streamed bytes are not kept */
  fixture_stop(&f);
}

static void on_chunk_can_abort(void) {
  fixture f;
  REQUIRE(fixture_start(&f, ANSWER, 1) == 0);
  outcome o = {.abort_with = PO_EJSON};
  po_http_opts opts = {.url = f.url, .stream = 1};
  REQUIRE(po_http_start(f.http, &opts, &handler, &o, NULL) == 0);
  run_until_done(f.loop, &o, 1);
  CHECK_EQ_INT(o.done, 1);
  CHECK_EQ_INT(o.rc, PO_EJSON);
  CHECK(strstr(o.message, "aborted by on_chunk") != NULL);
  fixture_stop(&f);
}

static void refused_connection(void) {
  fixture f;
  REQUIRE(fixture_start(&f, ANSWER, 0) == 0);
  int port;
  int fd = listen_socket(&port);
  REQUIRE(fd >= 0);
  close(fd); /* nothing listens there any more */
  snprintf(f.url, sizeof f.url, "http://127.0.0.1:%d/?key=sk-secret", port);
  outcome o = {0};
  po_http_opts opts = {.url = f.url};
  REQUIRE(po_http_start(f.http, &opts, &handler, &o, NULL) == 0);
  run_until_done(f.loop, &o, 1);
  CHECK_EQ_INT(o.rc, PO_ECONNREFUSED);
  CHECK(strstr(o.message, "GET http://127.0.0.1:") == o.message);
  CHECK(strstr(o.message, "sk-secret") == NULL);
  fixture_stop(&f);
}

static void ttfb_timeout_and_cancel(void) {
  fixture f;
  REQUIRE(fixture_start(&f, SILENT, 2) == 0);
  outcome o[2] = {{0}, {0}};
  po_http_opts slow = {.url = f.url, .ttfb_timeout = 0.1};
  po_http_opts forever = {.url = f.url};
  po_http_req *req;
  REQUIRE(po_http_start(f.http, &slow, &handler, &o[0], NULL) == 0);
  REQUIRE(po_http_start(f.http, &forever, &handler, &o[1], &req) == 0);
  po_loop_run_once(f.loop, 0.01, NULL);
  CHECK_EQ_INT(po_http_running(f.http), 2);
  po_http_cancel(req);
  CHECK_EQ_INT(po_http_running(f.http), 1); /* out of libcurl at once */
  CHECK_EQ_INT(po_http_active(f.http), 2);  /* until its on_done has run */
  CHECK_EQ_INT(o[1].done, 0); /* on_done comes later, from the f.loop */
  po_http_cancel(req);        /* a second cancel does nothing */
  run_until_done(f.loop, o, 2);
  CHECK_EQ_INT(o[0].rc, PO_ETIMEDOUT);
  CHECK(strstr(o[0].message, "ttfb_timeout") != NULL);
  CHECK_EQ_INT(o[1].done, 1);
  CHECK_EQ_INT(o[1].rc, PO_ECANCELED);
  CHECK_EQ_INT(po_http_running(f.http), 0);
  fixture_stop(&f);
}

static void free_drops_transfers_in_flight(void) {
  fixture f;
  REQUIRE(fixture_start(&f, SILENT, 1) == 0);
  outcome o = {0};
  po_http_opts opts = {.url = f.url};
  REQUIRE(po_http_start(f.http, &opts, &handler, &o, NULL) == 0);
  for (int i = 0; i < 5; i++) po_loop_run_once(f.loop, 0.01, NULL);
  po_http_free(f.http);
  f.http = NULL;
  CHECK_EQ_INT(o.dropped, 1);
  CHECK_EQ_INT(o.done, 0);
  CHECK(!po_loop_alive(f.loop)); /* no watcher or timer left behind */
  fixture_stop(&f);
}

static void many_at_once(void) {
  enum { N = 24 };
  fixture f;
  REQUIRE(fixture_start(&f, ANSWER, N) == 0);
  outcome o[N];
  memset(o, 0, sizeof o);
  po_http_opts opts = {.url = f.url};
  for (int i = 0; i < N; i++) REQUIRE(po_http_start(f.http, &opts, &handler, &o[i], NULL) == 0);
  run_until_done(f.loop, o, N);
  int ok = 0;
  for (int i = 0; i < N; i++) ok += o[i].done == 1 && o[i].status == 200 && strcmp(o[i].body, "hello world") == 0;
  CHECK_EQ_INT(ok, N);
  fixture_stop(&f);
}

static void rejects_bad_requests(void) {
  fixture f;
  REQUIRE(fixture_start(&f, ANSWER, 0) == 0);
  outcome o = {0};
  const char *bad[] = {"X-Evil: a\r\nInjected: b"};
  po_http_opts no_url = {0};
  po_http_opts injected = {.url = "http://127.0.0.1:1/", .headers = bad, .nheaders = 1};
  CHECK_EQ_INT(po_http_start(f.http, &no_url, &handler, &o, NULL), PO_EINVAL);
  CHECK_EQ_INT(po_http_start(f.http, &injected, &handler, &o, NULL), PO_EINVAL);
  CHECK_EQ_INT(po_http_active(f.http), 0);
  fixture_stop(&f);
}

int main(void) {
  RUN(redacts_credentials_and_query);
  RUN(redacts_a_schemeless_url_with_a_url_in_its_query);
  RUN(status_line_is_read_within_its_length);
  RUN(parses_response_headers);
  RUN(gets_a_response_with_merged_headers);
  RUN(streams_the_body_to_on_chunk);
  RUN(on_chunk_can_abort);
  RUN(refused_connection);
  RUN(ttfb_timeout_and_cancel);
  RUN(free_drops_transfers_in_flight);
  RUN(many_at_once);
  RUN(rejects_bad_requests);
  return TEST_SUMMARY();
}
