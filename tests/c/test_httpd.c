/* Tests for src/core/httpd.c and httpd_parse.c: the parsing helpers, then a
 * real server on 127.0.0.1 driven by po_loop_run_once, with raw sockets as
 * clients. */
#include "error.h"
#include "httpd.h"
#include "httpd_parse.h"
#include "loop.h"

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- parsing ---- */

static int path_status(const char *raw) {
  char *out = NULL;
  int rc = po_httpd_decode_path(raw, strlen(raw), &out);
  free(out);
  return rc;
}

static void paths_decode_and_refuse_dot_dot_and_nul(void) {
  char *out = NULL;
  CHECK_EQ_INT(po_httpd_decode_path("/a%20b/c", 8, &out), 0);
  CHECK_EQ_STR(out, "/a b/c");
  free(out);
  CHECK_EQ_INT(path_status("/a/..b/c.."), 0);
  CHECK_EQ_INT(path_status("/a/./b"), 0);
  CHECK_EQ_INT(path_status("/.."), PO_EINVAL);
  CHECK_EQ_INT(path_status("/a/../b"), PO_EINVAL);
  CHECK_EQ_INT(path_status("/a/%2e%2E/b"), PO_EINVAL);
  CHECK_EQ_INT(path_status("/a%2f..%2fb"), PO_EINVAL);
  CHECK_EQ_INT(path_status("/a%00b"), PO_EINVAL);
  CHECK_EQ_INT(path_status("/a%zz"), PO_EINVAL);
  CHECK_EQ_INT(path_status("/a%2"), PO_EINVAL);
  CHECK_EQ_INT(path_status("a/b"), PO_EINVAL);
  CHECK_EQ_INT(path_status(""), PO_EINVAL);
}

static void queries_decode_pairs(void) {
  po_httpd_pairs p = {0};
  const char *qs = "a=1&b=two+words&c=%26%3d&flag&&a=3&bad=%zz";
  REQUIRE(po_httpd_parse_query(qs, strlen(qs), &p) == 0);
  REQUIRE(p.n == 5);
  CHECK_EQ_STR(p.items[0].name, "a");
  CHECK_EQ_STR(p.items[0].value, "3"); /* the last one wins */
  CHECK_EQ_STR(p.items[1].value, "two words");
  CHECK_EQ_STR(p.items[2].value, "&=");
  CHECK_EQ_STR(p.items[3].name, "flag");
  CHECK_EQ_STR(p.items[3].value, "");
  CHECK_EQ_STR(p.items[4].value, "%zz"); /* a malformed escape stays as written */
  po_httpd_pairs_free(&p);
  REQUIRE(po_httpd_parse_query("x=%00y", 6, &p) == 0);
  CHECK_EQ_INT(p.items[0].value_len, 2);
  CHECK(p.items[0].value[0] == 0 && p.items[0].value[1] == 'y');
  po_httpd_pairs_free(&p);
}

static void pairs_join_repeated_names(void) {
  po_httpd_pairs p = {0};
  CHECK(po_httpd_pairs_set(&p, "accept", 6, "a", 1, ", ") == 0);
  CHECK(po_httpd_pairs_set(&p, "accept", 6, "b", 1, ", ") == 0);
  REQUIRE(p.n == 1);
  CHECK_EQ_STR(p.items[0].value, "a, b");
  CHECK_EQ_INT(p.items[0].value_len, 4);
  po_httpd_pairs_free(&p);
}

static void bearer_tokens_match_exactly(void) {
  CHECK(po_httpd_bearer_ok("Bearer tok-123", "tok-123"));
  CHECK(po_httpd_bearer_ok("bearer tok-123", "tok-123"));
  CHECK(!po_httpd_bearer_ok("Bearer tok-124", "tok-123"));
  CHECK(!po_httpd_bearer_ok("Bearer tok-1234", "tok-123"));
  CHECK(!po_httpd_bearer_ok("Bearer tok-12", "tok-123"));
  CHECK(!po_httpd_bearer_ok("Bearer ", "tok-123"));
  CHECK(!po_httpd_bearer_ok("Basic tok-123", "tok-123"));
  CHECK(!po_httpd_bearer_ok(NULL, "tok-123"));
}

static void loopback_addresses(void) {
  CHECK_EQ_INT(po_httpd_is_loopback("127.0.0.1"), 1);
  CHECK_EQ_INT(po_httpd_is_loopback("127.8.9.10"), 1);
  CHECK_EQ_INT(po_httpd_is_loopback("::1"), 1);
  CHECK_EQ_INT(po_httpd_is_loopback("::ffff:127.0.0.1"), 1);
  CHECK_EQ_INT(po_httpd_is_loopback("0.0.0.0"), 0);
  CHECK_EQ_INT(po_httpd_is_loopback("10.0.0.1"), 0);
  CHECK_EQ_INT(po_httpd_is_loopback("::"), 0);
  CHECK_EQ_INT(po_httpd_is_loopback("localhost"), -1);
}

/* ---- a server ---- */

typedef struct app {
  po_loop *loop;
  po_httpd *srv;
  po_httpd_req *held; /* the last request, when the test answers it later */
  int mode;           /* what on_request does */
  int calls;
} app;

enum { ANSWER_NOW, HOLD, STREAM };

static const po_httpd_pair hdr_a = {"X-A", 3, "yes", 3};

static void on_request(po_httpd_req *req, void *ud) {
  app *a = ud;
  a->calls++;
  if (a->mode == ANSWER_NOW) {
    char body[256];
    size_t blen;
    const char *b = po_httpd_req_body(req, &blen);
    snprintf(body, sizeof body, "%s %s q=%s n=%zu body=%.*s", po_httpd_req_method(req), po_httpd_req_path(req),
             po_httpd_req_query_string(req), po_httpd_req_query_count(req), (int)blen, b);
    CHECK_EQ_INT(po_httpd_respond(req, 201, &hdr_a, 1, body, strlen(body)), 0);
    CHECK_EQ_INT(po_httpd_respond(req, 200, NULL, 0, "again", 5), PO_EINVAL);
    po_httpd_req_release(req);
    return;
  }
  a->held = req;
  if (a->mode == STREAM) CHECK_EQ_INT(po_httpd_stream_start(req, 200, &hdr_a, 1), 0);
}

static int start(app *a, const po_httpd_opts *o) {
  memset(a, 0, sizeof *a);
  if (po_loop_new(&a->loop) != 0) return -1;
  return po_httpd_new(a->loop, o, on_request, a, &a->srv);
}

static void stop(app *a) {
  po_httpd_free(a->srv);
  po_loop_free(a->loop);
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { /* the kernel completes it from the backlog */
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

/* Runs the loop and reads fd into buf until the server closes it or buf
 * holds `until` (NULL: until closed); returns 1 if the server closed it. */
static int pump(app *a, int fd, char *buf, size_t cap, const char *until) {
  size_t len = strlen(buf);
  for (int i = 0; i < 400; i++) {
    po_loop_run_once(a->loop, 0.05, NULL);
    ssize_t n;
    while ((n = recv(fd, buf + len, cap - 1 - len, 0)) > 0) len += (size_t)n;
    buf[len] = 0;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return 1;
    if (until && strstr(buf, until)) return 0;
  }
  return 0;
}

/* Sends a request and returns the whole answer (the server closes). */
static void exchange(app *a, const char *request, char *buf, size_t cap) {
  buf[0] = 0;
  int fd = connect_to(po_httpd_port(a->srv));
  if (fd < 0) return;
  ssize_t n = send(fd, request, strlen(request), MSG_NOSIGNAL);
  (void)n;
  pump(a, fd, buf, cap, NULL);
  close(fd);
}

static void refuses_bad_options(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  po_httpd *srv = NULL;
  po_httpd_opts o = {.host = "localhost"};
  CHECK_EQ_INT(po_httpd_new(loop, &o, on_request, NULL, &srv), PO_EINVAL);
  o.host = "0.0.0.0";
  CHECK_EQ_INT(po_httpd_new(loop, &o, on_request, NULL, &srv), PO_EINVAL);
  o.token = "";
  CHECK_EQ_INT(po_httpd_new(loop, &o, on_request, NULL, &srv), PO_EINVAL);
  o = (po_httpd_opts){.port = 70000};
  CHECK_EQ_INT(po_httpd_new(loop, &o, on_request, NULL, &srv), PO_EINVAL);
  CHECK(srv == NULL);
  CHECK(!po_loop_alive(loop));
  po_loop_free(loop);
}

static void answers_at_once_with_status_headers_and_body(void) {
  app a;
  po_httpd_opts o = {0};
  REQUIRE(start(&a, &o) == 0);
  CHECK(po_httpd_port(a.srv) > 0);
  char buf[4096];
  exchange(&a, "POST /x%20y?k=v&z=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", buf,
           sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 201", 12) == 0);
  CHECK(strstr(buf, "X-A: yes\r\n") != NULL);
  CHECK(strstr(buf, "\r\n\r\nPOST /x y q=k=v&z=1 n=2 body=abc") != NULL);
  po_httpd_stats st;
  po_httpd_get_stats(a.srv, &st);
  CHECK_EQ_INT(st.requests, 1);
  CHECK_EQ_INT(st.rejected, 0);
  stop(&a);
}

static void rejects_before_the_callback(void) {
  app a;
  po_httpd_opts o = {.token = "t0k", .max_body_bytes = 10, .max_header_bytes = 512};
  REQUIRE(start(&a, &o) == 0);
  char buf[4096];
  exchange(&a, "GET /a/../b HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t0k\r\nConnection: close\r\n\r\n", buf,
           sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 400", 12) == 0);
  exchange(&a, "GET /a HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t0K\r\nConnection: close\r\n\r\n", buf, sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 401", 12) == 0);
  CHECK(strstr(buf, "WWW-Authenticate: Bearer\r\n") != NULL);
  exchange(&a,
           "POST /a HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t0k\r\nContent-Length: 11\r\n"
           "Connection: close\r\n\r\n",
           buf, sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 413", 12) == 0);
  char big[2048];
  snprintf(big, sizeof big,
           "GET /a HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t0k\r\nX-Big: %0700d\r\nConnection: close\r\n\r\n", 0);
  exchange(&a, big, buf, sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 431", 12) == 0);
  CHECK_EQ_INT(a.calls, 0);
  exchange(&a, "GET /ok HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t0k\r\nConnection: close\r\n\r\n", buf,
           sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 201", 12) == 0);
  po_httpd_stats st;
  po_httpd_get_stats(a.srv, &st);
  CHECK_EQ_INT(st.rejected, 4);
  CHECK_EQ_INT(st.requests, 5);
  stop(&a);
}

static void answer_later(po_loop *loop, void *ud) {
  app *a = ud;
  CHECK_EQ_INT(po_httpd_respond(a->held, 200, NULL, 0, "later", 5), 0);
  po_httpd_req_release(a->held);
  a->held = NULL;
}

static void answers_later_from_a_timer(void) {
  app a;
  po_httpd_opts o = {0};
  REQUIRE(start(&a, &o) == 0);
  a.mode = HOLD;
  int fd = connect_to(po_httpd_port(a.srv));
  REQUIRE(fd >= 0);
  const char *req = "GET /w HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  CHECK(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
  char buf[4096] = "";
  for (int i = 0; i < 100 && !a.held; i++) po_loop_run_once(a.loop, 0.05, NULL);
  REQUIRE(a.held != NULL);
  /* Suspended, the connection costs nothing: the loop has nothing to run. */
  int ran = -1;
  po_loop_run_once(a.loop, 0.05, &ran);
  CHECK_EQ_INT(ran, 0);
  po_loop_timer_start(a.loop, 0.01, answer_later, &a, NULL);
  CHECK(pump(&a, fd, buf, sizeof buf, NULL));
  CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0);
  CHECK(strstr(buf, "\r\n\r\nlater") != NULL);
  close(fd);
  stop(&a);
}

static void streams_chunks_as_written_and_idles_when_dry(void) {
  app a;
  po_httpd_opts o = {0};
  REQUIRE(start(&a, &o) == 0);
  a.mode = STREAM;
  int fd = connect_to(po_httpd_port(a.srv));
  REQUIRE(fd >= 0);
  const char *req = "GET /s HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
  for (int i = 0; i < 100 && !a.held; i++) po_loop_run_once(a.loop, 0.05, NULL);
  REQUIRE(a.held != NULL);
  CHECK_EQ_INT(po_httpd_stream_write(a.held, "first", 5), 0);
  char buf[4096] = "";
  CHECK(!pump(&a, fd, buf, sizeof buf, "first\r\n"));
  CHECK(strstr(buf, "Transfer-Encoding: chunked") != NULL);
  CHECK(strstr(buf, "\r\n5\r\nfirst\r\n") != NULL);
  int ran = -1;
  po_loop_run_once(a.loop, 0.05, &ran);
  CHECK_EQ_INT(ran, 0); /* a dry stream is suspended, not polled */
  CHECK_EQ_INT(po_httpd_stream_write(a.held, "second", 6), 0);
  CHECK_EQ_INT(po_httpd_stream_end(a.held), 0);
  CHECK_EQ_INT(po_httpd_stream_write(a.held, "late", 4), PO_EINVAL);
  CHECK(!pump(&a, fd, buf, sizeof buf, "0\r\n\r\n"));
  CHECK(strstr(buf, "\r\n6\r\nsecond\r\n0\r\n\r\n") != NULL);
  po_httpd_req_release(a.held);
  close(fd);
  stop(&a);
}

static void a_stream_learns_the_client_left(void) {
  app a;
  po_httpd_opts o = {0};
  REQUIRE(start(&a, &o) == 0);
  a.mode = STREAM;
  int fd = connect_to(po_httpd_port(a.srv));
  REQUIRE(fd >= 0);
  const char *req = "GET /s HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
  for (int i = 0; i < 100 && !a.held; i++) po_loop_run_once(a.loop, 0.05, NULL);
  REQUIRE(a.held != NULL);
  close(fd);
  char chunk[4096];
  memset(chunk, 'x', sizeof chunk);
  int rc = 0;
  for (int i = 0; i < 500 && rc == 0; i++) {
    rc = po_httpd_stream_write(a.held, chunk, sizeof chunk);
    po_loop_run_once(a.loop, 0.01, NULL);
  }
  CHECK_EQ_INT(rc, PO_ECONN);
  CHECK(po_httpd_req_closed(a.held));
  po_httpd_req_release(a.held);
  stop(&a);
}

static void a_connection_past_the_limit_waits_for_a_free_slot(void) {
  app a;
  po_httpd_opts o = {.max_connections = 1};
  REQUIRE(start(&a, &o) == 0);
  a.mode = HOLD;
  const char *req = "GET /w HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  int first = connect_to(po_httpd_port(a.srv));
  REQUIRE(first >= 0);
  CHECK(send(first, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
  for (int i = 0; i < 100 && !a.held; i++) po_loop_run_once(a.loop, 0.05, NULL);
  REQUIRE(a.held != NULL);
  int second = connect_to(po_httpd_port(a.srv)); /* waits in the listen queue */
  REQUIRE(second >= 0);
  CHECK(send(second, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
  for (int i = 0; i < 4; i++) po_loop_run_once(a.loop, 0.02, NULL);
  CHECK_EQ_INT(a.calls, 1);
  answer_later(a.loop, &a);
  char buf[4096] = "";
  CHECK(pump(&a, first, buf, sizeof buf, NULL));
  CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0);
  close(first);
  for (int i = 0; i < 100 && !a.held; i++) po_loop_run_once(a.loop, 0.05, NULL);
  CHECK_EQ_INT(a.calls, 2);
  if (a.held) answer_later(a.loop, &a);
  buf[0] = 0;
  CHECK(pump(&a, second, buf, sizeof buf, NULL));
  CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0);
  close(second);
  stop(&a);
}

static void closing_leaves_held_requests_valid(void) {
  app a;
  po_httpd_opts o = {0};
  REQUIRE(start(&a, &o) == 0);
  a.mode = HOLD;
  int fd = connect_to(po_httpd_port(a.srv));
  REQUIRE(fd >= 0);
  const char *req = "GET /w?q=1 HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
  for (int i = 0; i < 100 && !a.held; i++) po_loop_run_once(a.loop, 0.05, NULL);
  REQUIRE(a.held != NULL);
  po_httpd_close(a.srv);
  po_httpd_close(a.srv);
  CHECK(!po_loop_alive(a.loop)); /* nothing of the server is left on the loop */
  CHECK(po_httpd_req_closed(a.held));
  CHECK_EQ_STR(po_httpd_req_path(a.held), "/w");
  CHECK_EQ_INT(po_httpd_respond(a.held, 200, NULL, 0, "x", 1), PO_ECONN);
  char buf[256] = "";
  CHECK(pump(&a, fd, buf, sizeof buf, NULL)); /* the client sees the connection end */
  po_httpd_free(a.srv);
  a.srv = NULL;
  po_httpd_req_release(a.held); /* after the server itself is gone */
  close(fd);
  po_loop_free(a.loop);
}

int main(void) {
  RUN(paths_decode_and_refuse_dot_dot_and_nul);
  RUN(queries_decode_pairs);
  RUN(pairs_join_repeated_names);
  RUN(bearer_tokens_match_exactly);
  RUN(loopback_addresses);
  RUN(refuses_bad_options);
  RUN(answers_at_once_with_status_headers_and_body);
  RUN(rejects_before_the_callback);
  RUN(answers_later_from_a_timer);
  RUN(streams_chunks_as_written_and_idles_when_dry);
  RUN(a_stream_learns_the_client_left);
  RUN(a_connection_past_the_limit_waits_for_a_free_slot);
  RUN(closing_leaves_held_requests_valid);
  return TEST_SUMMARY();
}
