/* A tiny HTTP/1.x server for the C tests of src/core/http.c, in a forked
 * child (one grandchild per connection), so that it shares no allocator,
 * fault counter or thread with the client under test. The path of the
 * request picks the answer:
 *   /full    200, 20 headers: one repeated, one folded onto two lines
 *   /v10     an HTTP/1.0 response
 *   /stream  a streamed body: "one", a pause, "two", then the connection closes
 *   /silent  nothing, until the client hangs up
 * A HEAD request gets the head alone. */
#ifndef PO_TEST_HTTP_SERVER_H
#define PO_TEST_HTTP_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct test_server {
  pid_t pid;
  int port;
} test_server;

static void ts_send(int c, const char *s) {
  size_t len = strlen(s), off = 0;
  while (off < len) {
    ssize_t n = send(c, s + off, len - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += (size_t)n;
  }
}

static void ts_answer(int c) {
  char buf[4096];
  size_t got = 0;
  buf[0] = 0;
  while (got < sizeof buf - 1 && !strstr(buf, "\r\n\r\n")) {
    ssize_t n = recv(c, buf + got, sizeof buf - 1 - got, 0);
    if (n <= 0) return;
    got += (size_t)n;
    buf[got] = 0;
  }
  int head = strncmp(buf, "HEAD ", 5) == 0;
  const char *path = strchr(buf, ' ');
  path = path ? path + 1 : "";
  if (strncmp(path, "/full ", 6) == 0) {
    ts_send(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Twice: one\r\nx-twice: two\r\n"
               "X-Folded: first\r\n  second\r\n");
    char line[64];
    for (int i = 0; i < 15; i++) {
      snprintf(line, sizeof line, "X-H%d: %d\r\n", i, i);
      ts_send(c, line);
    }
    ts_send(c, "Content-Length: 11\r\nConnection: close\r\n\r\n");
    if (!head) ts_send(c, "hello world");
  } else if (strncmp(path, "/v10 ", 5) == 0) {
    ts_send(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
  } else if (strncmp(path, "/stream ", 8) == 0) {
    ts_send(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\none");
    usleep(100 * 1000);
    ts_send(c, "two");
  } else {
    while (recv(c, buf, sizeof buf, 0) > 0) {
    }
  }
}

/* Starts the server on 127.0.0.1 (an ephemeral port, in s->port). */
static int test_server_start(test_server *s) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  s->port = ntohs(a.sin_port);
  s->pid = fork();
  if (s->pid < 0) return -1;
  if (s->pid == 0) {
    signal(SIGCHLD, SIG_IGN); /* grandchildren reap themselves */
    for (;;) {
      int c = accept(fd, NULL, NULL);
      if (c < 0) continue;
      if (fork() == 0) {
        close(fd);
        ts_answer(c);
        close(c);
        _exit(0);
      }
      close(c);
    }
  }
  close(fd);
  return 0;
}

static void test_server_stop(test_server *s) {
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
}

#endif
