/* http.c under injected allocation failures (tests/c/fault.h): each of our
 * allocations in a whole transfer (the client, the transfer, its timers, the
 * response's header copies, its body or streamed bytes) fails once in turn.
 * Each time the outcome must be the whole right response or PO_ENOMEM,
 * reported once (by po_http_new, po_http_start or on_done), with nothing
 * left on the loop. libcurl is loaded with dlopen, so its own allocations
 * are not ours and never fail here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fault.h"
#include "harness.h"
#include "http.h"
#include "http_test_server.h"
#include "loop.h"
#include "clock.h"

static test_server server;

typedef struct outcome {
  int done, rc;
  long status;
  char body[32];
  char twice[32], folded[32], last[8];
  char streamed[32];
  size_t streamed_len;
} outcome;

static int on_chunk(po_http_req *req, const char *data, size_t len, long status, void *ud) {
  outcome *o = ud;
  if (o->streamed_len + len < sizeof o->streamed) {
    memcpy(o->streamed + o->streamed_len, data, len);
    o->streamed_len += len;
  }
  return 0;
}

static void on_done(po_http_req *req, int rc, const po_http_result *res, void *ud) {
  outcome *o = ud;
  o->done++;
  o->rc = rc;
  o->status = res->status;
  snprintf(o->body, sizeof o->body, "%.*s", (int)res->body_len, res->body);
  for (size_t i = 0; i < res->nheaders; i++) {
    if (strcmp(res->names[i], "x-twice") == 0) snprintf(o->twice, sizeof o->twice, "%s", res->values[i]);
    if (strcmp(res->names[i], "x-folded") == 0) snprintf(o->folded, sizeof o->folded, "%s", res->values[i]);
    if (strcmp(res->names[i], "x-h14") == 0) snprintf(o->last, sizeof o->last, "%s", res->values[i]);
  }
}

static const po_http_handler handler = {.on_chunk = on_chunk, .on_done = on_done};

typedef struct scenario_arg {
  const char *path;
  int stream;
} scenario_arg;

/* One transfer from a fresh loop and client. Returns 0 when the outcome was
 * right for whatever failed. */
static int transfer(void *arg) {
  const scenario_arg *a = arg;
  po_loop *loop = NULL;
  po_http *http = NULL;
  outcome o = {0};
  int ok = 0, rc = po_loop_new(&loop);
  if (rc != 0) {
    ok = rc == PO_ENOMEM;
    goto out;
  }
  rc = po_http_new(loop, &http);
  if (rc != 0) {
    ok = rc == PO_ENOMEM;
    goto out;
  }
  char url[96];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", server.port, a->path);
  const char *headers[] = {"X-Test: fault", "Accept: text/plain"};
  po_http_opts opts = {.url = url, .headers = headers, .nheaders = 2, .stream = a->stream,
                       .ttfb_timeout = 30, .idle_timeout = 30};
  rc = po_http_start(http, &opts, &handler, &o, NULL);
  if (rc != 0) {
    ok = rc == PO_ENOMEM && po_http_active(http) == 0;
    goto out;
  }
  double deadline = po_monotonic() + 20;
  while (!o.done && po_monotonic() < deadline) po_loop_run_once(loop, 0.5, NULL);
  if (o.done != 1) {
    fprintf(stderr, "transfer %s: on_done ran %d times\n", a->path, o.done);
    goto out;
  }
  if (o.rc == 0 && a->stream)
    ok = o.status == 200 && o.streamed_len == 6 && memcmp(o.streamed, "onetwo", 6) == 0 && !o.body[0];
  else if (o.rc == 0)
    ok = o.status == 200 && strcmp(o.body, "hello world") == 0 && strcmp(o.twice, "one, two") == 0 &&
         strcmp(o.folded, "first second") == 0 && strcmp(o.last, "14") == 0;
  else
    ok = o.rc == PO_ENOMEM;
  if (!ok) fprintf(stderr, "transfer %s: rc %d status %ld body '%s'\n", a->path, o.rc, o.status, o.body);
  ok = ok && po_http_active(http) == 0;
out:
  po_http_free(http);
  if (loop) {
    if (po_loop_alive(loop)) {
      fprintf(stderr, "transfer %s: the loop still has a watcher or a timer\n", a->path);
      ok = 0;
    }
    po_loop_free(loop);
  }
  return ok ? 0 : 1;
}

static void whole_response_with_every_allocation_failing_once(void) {
  scenario_arg a = {"/full", 0};
  CHECK(transfer(&a) == 0); /* the scenario is right without a fault */
  /* loop, client, transfer, timers, 20 header copies (two reallocs of the
   * tables), the joined and the folded value, the body */
  CHECK(fault_sweep("malloc", ENOMEM, transfer, &a, 400) >= 30);
}

static void streamed_response_with_every_allocation_failing_once(void) {
  scenario_arg a = {"/stream", 1};
  CHECK(transfer(&a) == 0);
  CHECK(fault_sweep("malloc", ENOMEM, transfer, &a, 400) >= 8);
}

int main(void) {
  if (test_server_start(&server) != 0) {
    fprintf(stderr, "cannot start the test server\n");
    return 1;
  }
  RUN(whole_response_with_every_allocation_failing_once);
  RUN(streamed_response_with_every_allocation_failing_once);
  test_server_stop(&server);
  return TEST_SUMMARY();
}
