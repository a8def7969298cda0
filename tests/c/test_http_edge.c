/* http.c at its edges, against a real server on 127.0.0.1
 * (http_test_server.h): HEAD, an HTTP/1.0 answer, URLs libcurl rejects, a
 * connection that never completes, a transfer canceled and ended from inside
 * its own on_chunk, and a socket number that comes back while a watcher
 * on its old socket was left over. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "harness.h"
#include "http.h"
#include "http_test_server.h"
#include "loop.h"

static test_server server;

typedef struct outcome {
  int done, rc, chunks;
  long status;
  char version[8];
  char body[32];
  char message[256];
  size_t content_length_seen;
  /* on_chunk's nested wait: the loop and the transfer to cancel */
  po_loop *loop;
  int cancel_inside;
  int done_inside; /* on_done ran while on_chunk was still running */
  int in_chunk;
} outcome;

static int on_chunk(po_http_req *req, const char *data, size_t len, long status, void *ud) {
  outcome *o = ud;
  o->chunks++;
  if (!o->cancel_inside) return 0;
  o->in_chunk = 1;
  /* A nested wait, as a Lua on_chunk that waits on a future does: the rest
   * of the body arrives meanwhile, then the transfer is canceled and its
   * end runs inside this wait. */
  double until = po_monotonic() + 0.3;
  while (po_monotonic() < until) po_loop_run_once(o->loop, 0.05, NULL);
  po_http_cancel(req);
  for (int i = 0; i < 100 && !o->done; i++) po_loop_run_once(o->loop, 0.05, NULL);
  o->in_chunk = 0;
  return 0;
}

static void on_done(po_http_req *req, int rc, const po_http_result *res, void *ud) {
  outcome *o = ud;
  o->done++;
  o->rc = rc;
  o->done_inside = o->in_chunk;
  o->status = res->status;
  snprintf(o->version, sizeof o->version, "%s", res->http_version);
  snprintf(o->body, sizeof o->body, "%.*s", (int)res->body_len, res->body);
  snprintf(o->message, sizeof o->message, "%s", res->message);
  for (size_t i = 0; i < res->nheaders; i++)
    if (strcmp(res->names[i], "content-length") == 0) o->content_length_seen = (size_t)atoi(res->values[i]);
}

static const po_http_handler handler = {.on_chunk = on_chunk, .on_done = on_done};

static void run_until_done(po_loop *loop, outcome *o) {
  double deadline = po_monotonic() + 20;
  while (!o->done && po_monotonic() < deadline) po_loop_run_once(loop, 0.5, NULL);
}

/* Runs one transfer of opts (the URL's path given) on a fresh client. */
static void fetch(const char *method, const char *path, po_http_opts *opts, outcome *o) {
  po_loop *loop;
  po_http *http;
  if (po_loop_new(&loop) != 0) return;
  if (po_http_new(loop, &http) != 0) return;
  char url[128];
  if (strstr(path, "://"))
    snprintf(url, sizeof url, "%s", path);
  else
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", server.port, path);
  opts->url = url;
  opts->method = method;
  o->loop = loop;
  int rc = po_http_start(http, opts, &handler, o, NULL);
  if (rc != 0) {
    o->rc = rc;
    o->done = -1;
  } else {
    run_until_done(loop, o);
  }
  po_http_free(http);
  CHECK(!po_loop_alive(loop));
  po_loop_free(loop);
}

static void head_gets_the_head_alone(void) {
  outcome o = {0};
  po_http_opts opts = {0};
  fetch("HEAD", "/full", &opts, &o);
  CHECK_EQ_INT(o.done, 1);
  CHECK_EQ_INT(o.rc, 0);
  CHECK_EQ_INT(o.status, 200);
  CHECK_EQ_INT(o.content_length_seen, 11); /* the length a GET would get */
  CHECK_EQ_STR(o.body, "");
  CHECK_EQ_STR(o.version, "1.1");
}

static void names_http_1_0(void) {
  outcome o = {0};
  po_http_opts opts = {0};
  fetch("GET", "/v10", &opts, &o);
  CHECK_EQ_INT(o.rc, 0);
  CHECK_EQ_STR(o.body, "ok");
  CHECK_EQ_STR(o.version, "1.0");
}

static void a_malformed_url_is_einval(void) {
  const char *bad[] = {"http://[::1/", "http://127.0.0.1:99999999/", "ftp://127.0.0.1/"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    outcome o = {0};
    po_http_opts opts = {0};
    fetch("GET", bad[i], &opts, &o);
    CHECK_EQ_INT(o.done, 1);
    CHECK_EQ_INT(o.rc, PO_EINVAL);
    CHECK_EQ_INT(o.status, 0);
    if (o.rc != PO_EINVAL) fprintf(stderr, "  %s: %s\n", bad[i], o.message);
  }
}

/* A listener whose accept queue is full and never drained: the kernel drops
 * further SYNs, so a connection to it never completes. */
static void connect_timeout_is_named(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 0) == 0 &&
          getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  int filler = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(filler >= 0 && connect(filler, (struct sockaddr *)&a, sizeof a) == 0);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
  outcome o = {0};
  po_http_opts opts = {.connect_timeout = 0.2};
  fetch("GET", url, &opts, &o);
  CHECK_EQ_INT(o.rc, PO_ETIMEDOUT);
  CHECK(strstr(o.message, "connect_timeout") != NULL);
  if (o.rc != PO_ETIMEDOUT) fprintf(stderr, "  %s\n", o.message);
  close(filler);
  close(fd);
}

/* on_chunk waits (a nested loop turn) while the rest of the body arrives,
 * cancels its own transfer and sees on_done run inside that wait: the
 * transfer is freed only once on_chunk returns, and nothing more is
 * delivered. */
static void ended_from_inside_its_own_on_chunk(void) {
  outcome o = {.cancel_inside = 1};
  po_http_opts opts = {.stream = 1};
  fetch("GET", "/stream", &opts, &o);
  CHECK_EQ_INT(o.done, 1);
  CHECK_EQ_INT(o.rc, PO_ECANCELED);
  CHECK_EQ_INT(o.done_inside, 1);
  CHECK_EQ_INT(o.chunks, 1);
}

static void ignore_io(po_loop *loop, int fd, unsigned events, void *ud) {}

/* A watcher is left on a socket that is then closed (the loop does not know);
 * the transfer's socket gets the same number. The client must replace the
 * stale watcher, not fail the transfer. */
static void a_reused_socket_number_replaces_a_left_over_watcher(void) {
  po_loop *loop;
  po_http *http;
  REQUIRE(po_loop_new(&loop) == 0);
  REQUIRE(po_http_new(loop, &http) == 0);
  int stale = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(stale >= 0);
  REQUIRE(po_loop_io_start(loop, stale, PO_IO_READ, ignore_io, NULL) == 0);
  close(stale); /* the next socket() gets this number back */
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/full", server.port);
  outcome o = {.loop = loop};
  po_http_opts opts = {.url = url};
  REQUIRE(po_http_start(http, &opts, &handler, &o, NULL) == 0);
  run_until_done(loop, &o);
  CHECK_EQ_INT(o.rc, 0);
  CHECK_EQ_STR(o.body, "hello world");
  po_http_free(http);
  po_loop_free(loop);
}

int main(void) {
  if (test_server_start(&server) != 0) {
    fprintf(stderr, "cannot start the test server\n");
    return 1;
  }
  RUN(head_gets_the_head_alone);
  RUN(names_http_1_0);
  RUN(a_malformed_url_is_einval);
  RUN(connect_timeout_is_named);
  RUN(ended_from_inside_its_own_on_chunk);
  RUN(a_reused_socket_number_replaces_a_left_over_watcher);
  test_server_stop(&server);
  return TEST_SUMMARY();
}
