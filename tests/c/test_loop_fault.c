/* src/core/loop.c under faults (tests/c/fault.h) and at its limits:
 * descriptors running out at creation, each allocation of its sources
 * failing in turn, and posts in the poster's own memory. */
#include "error.h"
#include "fault.h"
#include "loop.h"

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

static int count_open(int limit) {
  int n = 0;
  for (int fd = 0; fd < limit; fd++) n += fcntl(fd, F_GETFD) != -1;
  return n;
}

/* No descriptor for epoll, or none left for the eventfd: PO_EIO, nothing
 * left open. */
static void creation_without_descriptors(void) {
  struct rlimit old;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
  enum { LIMIT = 200 };
  REQUIRE(count_open(1024) < LIMIT - 10);
  struct rlimit low = {LIMIT, old.rlim_max};
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  int fill[LIMIT], n = 0, fd;
  while (n < LIMIT && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) fill[n++] = fd;
  for (int free_slots = 0; free_slots < 2; free_slots++) {
    if (free_slots) close(fill[--n]);
    int before = count_open(LIMIT);
    po_loop *loop = NULL;
    CHECK_EQ_INT(po_loop_new(&loop), PO_EIO);
    CHECK(loop == NULL);
    CHECK_EQ_INT(count_open(LIMIT), before);
  }
  while (n > 0) close(fill[--n]);
  setrlimit(RLIMIT_NOFILE, &old);
}

static void count_cb(po_loop *loop, void *ud) {
  (void)loop;
  ++*(int *)ud;
}

static void on_io(po_loop *loop, int fd, unsigned events, void *ud) {
  (void)events;
  char c;
  if (read(fd, &c, 1) == 1) ++*(int *)ud;
  po_loop_io_stop(loop, fd);
}

/* A timer, a watcher on a pipe beyond the first 64 descriptors, and a
 * post, each allocation failing in turn: the call that failed says
 * PO_ENOMEM and leaves nothing behind; the others still run. */
static int sources(void *arg) {
  (void)arg;
  po_loop *loop;
  if (po_loop_new(&loop) != 0) return 0;
  int fds[2];
  if (pipe(fds) != 0) return 1;
  int high = fcntl(fds[0], F_DUPFD_CLOEXEC, 100);
  close(fds[0]);
  int timer = 0, io = 0, post = 0, expect_timer, expect_io, expect_post;
  int rc = po_loop_timer_start(loop, 0, count_cb, &timer, NULL);
  int ok = rc == 0 || rc == PO_ENOMEM;
  expect_timer = rc == 0;
  rc = po_loop_io_start(loop, high, PO_IO_READ, on_io, &io);
  ok = ok && (rc == 0 || rc == PO_ENOMEM);
  expect_io = rc == 0;
  rc = po_loop_post(loop, count_cb, &post);
  ok = ok && (rc == 0 || rc == PO_ENOMEM);
  expect_post = rc == 0;
  ok = ok && write(fds[1], "x", 1) == 1;
  for (int i = 0; i < 100 && po_loop_alive(loop); i++) po_loop_run_once(loop, 0.01, NULL);
  ok = ok && timer == expect_timer && io == expect_io && post == expect_post && !po_loop_alive(loop);
  po_loop_free(loop);
  close(high);
  close(fds[1]);
  return ok ? 0 : 1;
}

static void sources_under_failing_allocation(void) {
  /* the timer heap, the timer, the watch table, the post */
  CHECK_EQ_INT(fault_sweep("malloc", ENOMEM, sources, NULL, 20), 5);
}

typedef struct reposter {
  po_post post;
  int runs;
} reposter;

/* Runs twice: the post is its poster's again from its callback on. */
static void repost(po_loop *loop, void *ud) {
  reposter *r = ud;
  if (++r->runs < 2) po_loop_post_into(loop, &r->post, repost, r);
}

static void posts_in_the_posters_memory(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  reposter r = {.runs = 0};
  po_loop_post_into(loop, &r.post, repost, &r);
  fault_arm("malloc", 1, 1, ENOMEM); /* needs none */
  for (int i = 0; i < 10 && po_loop_alive(loop); i++) po_loop_run_once(loop, 0.01, NULL);
  CHECK_EQ_INT(fault_fired(), 0);
  fault_disarm();
  CHECK_EQ_INT(r.runs, 2);

  /* Canceled while queued (with others around it): it never runs. */
  int before = 0, after = 0;
  reposter gone = {.runs = 0};
  REQUIRE(po_loop_post(loop, count_cb, &before) == 0);
  po_loop_post_into(loop, &gone.post, repost, &gone);
  REQUIRE(po_loop_post(loop, count_cb, &after) == 0);
  po_loop_post_cancel(loop, &gone.post);
  po_loop_post_cancel(loop, &gone.post); /* no longer queued: nothing */
  for (int i = 0; i < 10 && po_loop_alive(loop); i++) po_loop_run_once(loop, 0.01, NULL);
  CHECK_EQ_INT(gone.runs, 0);
  CHECK(before == 1 && after == 1);
  /* The last one canceled, and one left queued when the loop is freed. */
  po_loop_post_into(loop, &gone.post, repost, &gone);
  po_loop_post_cancel(loop, &gone.post);
  CHECK(!po_loop_alive(loop));
  po_loop_post_into(loop, &gone.post, repost, &gone);
  po_loop_free(loop);
  CHECK_EQ_INT(gone.runs, 0);
}

typedef struct canceler {
  reposter *victim;
  int ran;
} canceler;

/* Its poster is going away: it takes the other post out, as
 * po_pool_client_free does with its delivery. */
static void cancel_other(po_loop *loop, void *ud) {
  canceler *c = ud;
  c->ran++;
  po_loop_post_cancel(loop, &c->victim->post);
  c->victim->post.cb = NULL; /* as if its memory were freed: running it would crash */
}

static void cancel_from_the_same_batch(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  reposter victim = {.runs = 0};
  canceler c = {.victim = &victim, .ran = 0};
  /* Both queued before the loop runs: one batch. */
  REQUIRE(po_loop_post(loop, cancel_other, &c) == 0);
  po_loop_post_into(loop, &victim.post, repost, &victim);
  int ran = 0;
  CHECK_EQ_INT(po_loop_run_once(loop, 0.01, &ran), 0);
  CHECK_EQ_INT(ran, 1);
  CHECK_EQ_INT(c.ran, 1);
  CHECK_EQ_INT(victim.runs, 0);
  CHECK(!po_loop_alive(loop));
  po_loop_free(loop);
}

int main(void) {
  RUN(creation_without_descriptors);
  RUN(sources_under_failing_allocation);
  RUN(posts_in_the_posters_memory);
  RUN(cancel_from_the_same_batch);
  return TEST_SUMMARY();
}
