/* httpd.c (and httpd_parse.c) under injected allocation failures
 * (tests/c/fault.h): each of our allocations while serving one request
 * (the server and its token, the request, its path, query, headers and
 * body, the answer, a stream's buffer) fails once in turn. Each time the
 * client gets the whole right answer, a 500, or a closed connection, never
 * a wrong answer; the server goes away with nothing left on the loop or
 * leaked. libmicrohttpd's own allocations are its library's and do not
 * fail here. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "fault.h"
#include "harness.h"
#include "httpd.h"
#include "loop.h"

typedef struct served {
  int stream;      /* answer with a stream of two chunks, else a whole body */
  int calls;       /* on_request */
  int bad_return;  /* a respond/stream call returned something undocumented */
} served;

static const char request[] = "POST /api/items?limit=5&name=a%20b HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\n"
                              "Authorization: Bearer tok\r\n"
                              "X-Tag: one\r\n"
                              "X-Tag: two\r\n"
                              "Content-Length: 4\r\n"
                              "Connection: close\r\n"
                              "\r\n"
                              "body";

static int acceptable(int rc) { return rc == 0 || rc == PO_ENOMEM; }

/* Answers with what it read, so that a wrong parse shows in the answer. */
static void on_request(po_httpd_req *req, void *ud) {
  served *s = ud;
  s->calls++;
  const po_httpd_pair *limit = po_httpd_req_query_count(req) ? po_httpd_req_query(req, 0) : NULL;
  const char *tag = "";
  for (size_t i = 0; i < po_httpd_req_header_count(req); i++)
    if (strcmp(po_httpd_req_header(req, i)->name, "x-tag") == 0) tag = po_httpd_req_header(req, i)->value;
  size_t blen;
  const char *body = po_httpd_req_body(req, &blen);
  char text[160];
  snprintf(text, sizeof text, "%s %s limit=%s tag=%s body=%.*s", po_httpd_req_method(req), po_httpd_req_path(req),
           limit ? limit->value : "", tag, (int)blen, body);
  const po_httpd_pair type = {"Content-Type", 12, "text/plain", 10};
  int rc;
  if (!s->stream) {
    rc = po_httpd_respond(req, 200, &type, 1, text, strlen(text));
    s->bad_return |= !acceptable(rc);
  } else if ((rc = po_httpd_stream_start(req, 200, &type, 1)) == 0) {
    size_t half = strlen(text) / 2;
    int w1 = po_httpd_stream_write(req, text, half);
    int w2 = po_httpd_stream_write(req, text + half, strlen(text) - half);
    /* after a lost write the stream is cut: the next one is refused */
    int w2_ok = w1 == 0 ? acceptable(w2) : w1 == PO_ENOMEM && w2 == PO_ECONN;
    s->bad_return |= !acceptable(w1) || !w2_ok || po_httpd_stream_end(req) != 0;
  } else {
    s->bad_return |= !acceptable(rc);
  }
  po_httpd_req_release(req);
}

static int connect_port(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      send(fd, request, sizeof request - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof request - 1) &&
      fcntl(fd, F_SETFL, O_NONBLOCK) == 0)
    return fd;
  if (fd >= 0) close(fd);
  return -1;
}

/* Reads the answer into buf while the loop runs, until the server closes
 * (returns 1) or ten seconds have passed (0: the server stalled). */
static int read_answer(po_loop *loop, int fd, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  for (int turns = 0; turns < 200; turns++) {
    po_loop_run_once(loop, 0.05, NULL);
    for (;;) {
      ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
      if (n > 0) {
        len += (size_t)n;
        buf[len] = 0;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return 1;
      break;
    }
  }
  return 0;
}

/* The body of a chunked answer, its chunks joined (enough for these);
 * returns 1 if it ended with the last (empty) chunk, 0 if it was cut. */
static int unchunk(const char *in, char *out, size_t cap) {
  size_t len = 0;
  int whole = 0;
  for (;;) {
    char *end;
    unsigned long n = strtoul(in, &end, 16);
    if (end == in || strncmp(end, "\r\n", 2) != 0) break;
    if (n == 0) {
      whole = strcmp(end, "\r\n\r\n") == 0;
      break;
    }
    in = end + 2;
    if (len + n >= cap || strlen(in) < n) break;
    memcpy(out + len, in, n);
    len += n;
    in += n + 2;
  }
  out[len] = 0;
  return whole;
}

static const char expected[] = "POST /api/items limit=5 tag=one, two body=body";

static int serve_one(void *arg) {
  served s = {.stream = *(int *)arg};
  po_loop *loop;
  po_httpd *srv = NULL;
  int rc = po_loop_new(&loop);
  if (rc != 0) return rc == PO_ENOMEM ? 0 : 1;
  /* timeout: a wake-up lost to out of memory waits at most this long */
  po_httpd_opts o = {.token = "tok", .timeout = 1};
  rc = po_httpd_new(loop, &o, on_request, &s, &srv);
  int ok = rc == PO_ENOMEM;
  if (rc == 0) {
    char answer[2048], body[256];
    int fd = connect_port(po_httpd_port(srv));
    if (fd < 0) {
      po_httpd_free(srv);
      po_loop_free(loop);
      return 1;
    }
    int closed = read_answer(loop, fd, answer, sizeof answer);
    close(fd);
    const char *head_end = strstr(answer, "\r\n\r\n");
    int whole = 1;
    if (s.stream && head_end)
      whole = unchunk(head_end + 4, body, sizeof body);
    else
      snprintf(body, sizeof body, "%s", head_end ? head_end + 4 : "");
    if (strncmp(answer, "HTTP/1.1 200", 12) == 0)
      /* a stream that lost a write is cut, never ended as if whole */
      ok = s.calls == 1 && (whole ? strcmp(body, expected) == 0 : strncmp(body, expected, strlen(body)) == 0);
    else /* a 500, or closed without an answer */
      ok = strncmp(answer, "HTTP/1.1 500", 12) == 0 || answer[0] == 0;
    ok = ok && !s.bad_return && closed;
    if (!ok)
      fprintf(stderr, "serve_one: calls %d bad_return %d closed %d answer:\n%s\n", s.calls, s.bad_return, closed, answer);
  }
  po_httpd_free(srv);
  for (int i = 0; i < 20 && po_loop_alive(loop); i++) po_loop_run_once(loop, 0.01, NULL);
  if (po_loop_alive(loop)) {
    fprintf(stderr, "serve_one: the loop still has a watcher or a timer\n");
    ok = 0;
  }
  po_loop_free(loop);
  return ok ? 0 : 1;
}

static void a_whole_answer_with_every_allocation_failing_once(void) {
  int stream = 0;
  REQUIRE(serve_one(&stream) == 0);
  CHECK(fault_sweep("malloc", ENOMEM, serve_one, &stream, 300) >= 10);
}

static void a_streamed_answer_with_every_allocation_failing_once(void) {
  int stream = 1;
  REQUIRE(serve_one(&stream) == 0);
  CHECK(fault_sweep("malloc", ENOMEM, serve_one, &stream, 300) >= 10);
}

int main(void) {
  RUN(a_whole_answer_with_every_allocation_failing_once);
  RUN(a_streamed_answer_with_every_allocation_failing_once);
  return TEST_SUMMARY();
}
