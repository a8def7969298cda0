/* Tests for src/core/proc.c: real child processes on a real loop. */
#include "clock.h"
#include "error.h"
#include "loop.h"
#include "proc.h"

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct outcome {
  int done;
  po_proc_result r;
} outcome;

static void on_done(po_proc *p, void *ud) {
  outcome *o = ud;
  o->done = 1;
  po_proc_result_get(p, &o->r);
}

/* Starts a run and turns the loop until it completes; the caller frees *pp. */
static int run(po_loop *loop, const po_proc_opts *opts, outcome *o, po_proc **pp) {
  *o = (outcome){0};
  int rc = po_proc_start(loop, opts, on_done, o, pp);
  if (rc != 0) return rc;
  double limit = po_monotonic() + 30;
  while (!o->done && po_monotonic() < limit) po_loop_run_once(loop, 1, NULL);
  return o->done ? 0 : PO_ETIMEDOUT;
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void captures_output_and_exit_code(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 7", NULL};
  po_proc_opts o = {.argv = argv, .output_limit = 1 << 20, .kill_grace = 1};
  outcome out;
  po_proc *p;
  REQUIRE(run(loop, &o, &out, &p) == 0);
  CHECK_EQ_INT(out.r.status, PO_PROC_FAILED);
  CHECK_EQ_INT(out.r.exit_code, 7);
  CHECK_EQ_INT(out.r.signal, 0);
  CHECK_EQ_INT(out.r.out_len, 4);
  CHECK(memcmp(out.r.out, "out\n", 4) == 0);
  CHECK_EQ_INT(out.r.err_len, 4);
  CHECK(out.r.pid > 0);
  CHECK(out.r.duration > 0);
  po_proc_free(p);
  CHECK(!po_loop_alive(loop));
  po_loop_free(loop);
}

static void feeds_stdin_and_sets_env_and_cwd(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *argv[] = {"sh", "-c", "cat; echo \"$GREETING\"; pwd", NULL};
  const char *envp[] = {"GREETING=hello", "PATH=/usr/bin:/bin", NULL};
  po_proc_opts o = {.argv = argv, .envp = envp, .cwd = "/", .input = "in\n", .input_len = 3,
                    .output_limit = 1 << 20};
  outcome out;
  po_proc *p;
  REQUIRE(run(loop, &o, &out, &p) == 0);
  CHECK_EQ_INT(out.r.status, PO_PROC_OK);
  CHECK_EQ_INT(out.r.out_len, 11);
  CHECK(memcmp(out.r.out, "in\nhello\n/\n", 11) == 0);
  po_proc_free(p);
  po_loop_free(loop);
}

static void missing_command_is_an_error_status(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *argv[] = {"/nonexistent/command", NULL};
  po_proc_opts o = {.argv = argv, .output_limit = 100};
  outcome out;
  po_proc *p;
  REQUIRE(run(loop, &o, &out, &p) == 0);
  CHECK_EQ_INT(out.r.status, PO_PROC_ERROR);
  CHECK_EQ_INT(out.r.error, ENOENT);
  CHECK_EQ_STR(out.r.error_what, "execute");
  po_proc_free(p);

  const char *argv2[] = {"true", NULL};
  po_proc_opts o2 = {.argv = argv2, .cwd = "/nonexistent/dir", .output_limit = 100};
  REQUIRE(run(loop, &o2, &out, &p) == 0);
  CHECK_EQ_INT(out.r.status, PO_PROC_ERROR);
  CHECK_EQ_STR(out.r.error_what, "change directory to");
  po_proc_free(p);

  char plain[] = "/tmp/po_proc_XXXXXX"; /* exists, not executable */
  int fd = mkstemp(plain);
  REQUIRE(fd >= 0);
  close(fd);
  const char *argv3[] = {plain, NULL};
  po_proc_opts o3 = {.argv = argv3, .output_limit = 100};
  REQUIRE(run(loop, &o3, &out, &p) == 0);
  CHECK_EQ_INT(out.r.status, PO_PROC_ERROR);
  CHECK_EQ_INT(out.r.error, EACCES);
  po_proc_free(p);
  unlink(plain);
  po_loop_free(loop);
}

static void deadline_kills_the_whole_group(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *argv[] = {"sh", "-c", "trap '' TERM; sleep 100 & echo $!; sleep 100", NULL};
  po_proc_opts o = {.argv = argv, .timeout = 0.2, .kill_grace = 0.2, .output_limit = 1000};
  outcome out;
  po_proc *p;
  REQUIRE(run(loop, &o, &out, &p) == 0);
  CHECK_EQ_INT(out.r.status, PO_PROC_TIMEOUT);
  CHECK_EQ_INT(out.r.signal, SIGKILL);
  /* The grandchild got SIGKILL with its group: dead or a zombie awaiting init. */
  int grandchild = atoi(out.r.out);
  REQUIRE(grandchild > 0);
  char path[64], state = 0;
  snprintf(path, sizeof path, "/proc/%d/stat", grandchild);
  /* dead: reaped (no /proc entry) or a zombie; still running after the
   * polls below means the kill missed the grandchild. */
  int dead = 0;
  for (int i = 0; i < 500 && !dead; i++) {
    FILE *f = fopen(path, "r");
    if (!f) {
      dead = 1;
      break;
    }
    int fields = fscanf(f, "%*d %*s %c", &state);
    fclose(f);
    dead = fields == 1 && state == 'Z';
    if (!dead) usleep(10000);
  }
  CHECK(dead);
  /* Every member got SIGKILL: the group empties once init has reaped the
   * zombies the dead shell left behind. */
  for (int i = 0; i < 500 && kill(-out.r.pid, 0) == 0; i++) usleep(10000);
  CHECK(kill(-out.r.pid, 0) != 0);
  po_proc_free(p);
  po_loop_free(loop);
}

static void large_output_on_both_streams(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *argv[] = {"sh", "-c", "head -c 3000000 /dev/zero & head -c 3000000 /dev/zero >&2; wait", NULL};
  po_proc_opts o = {.argv = argv, .output_limit = 2000000};
  outcome out;
  po_proc *p;
  REQUIRE(run(loop, &o, &out, &p) == 0);
  CHECK_EQ_INT(out.r.status, PO_PROC_OK);
  CHECK_EQ_INT(out.r.out_len, 2000000);
  CHECK_EQ_INT(out.r.err_len, 2000000);
  CHECK(out.r.truncated);
  po_proc_free(p);
  po_loop_free(loop);
}

static void terminate_stops_a_run(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *argv[] = {"sleep", "100", NULL};
  po_proc_opts o = {.argv = argv, .kill_grace = 1, .output_limit = 10};
  outcome out = {0};
  po_proc *p;
  REQUIRE(po_proc_start(loop, &o, on_done, &out, &p) == 0);
  po_loop_run_once(loop, 0.05, NULL);
  po_proc_terminate(p);
  for (int i = 0; i < 200 && !out.done; i++) po_loop_run_once(loop, 0.1, NULL);
  CHECK(out.done);
  CHECK_EQ_INT(out.r.status, PO_PROC_FAILED);
  CHECK_EQ_INT(out.r.signal, SIGTERM);
  po_proc_free(p);
  po_loop_free(loop);
}

static void free_while_running_kills_and_reaps(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  int before = count_fds();
  const char *argv[] = {"sleep", "100", NULL};
  po_proc_opts o = {.argv = argv, .output_limit = 10};
  outcome out = {0};
  po_proc *p;
  REQUIRE(po_proc_start(loop, &o, on_done, &out, &p) == 0);
  po_proc_result r;
  po_proc_result_get(p, &r);
  CHECK_EQ_INT(r.status, PO_PROC_RUNNING);
  int pid = r.pid;
  po_proc_free(p);
  CHECK(!out.done);
  CHECK(kill(pid, 0) != 0); /* reaped: no such process */
  CHECK_EQ_INT(count_fds(), before);
  CHECK(!po_loop_alive(loop));
  po_loop_free(loop);
}

static void no_descriptor_leaks(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  int before = count_fds();
  for (int i = 0; i < 100; i++) {
    const char *argv[] = {"true", NULL};
    po_proc_opts o = {.argv = argv, .input = "x", .input_len = 1, .output_limit = 10};
    outcome out;
    po_proc *p;
    REQUIRE(run(loop, &o, &out, &p) == 0);
    CHECK_EQ_INT(out.r.status, PO_PROC_OK);
    po_proc_free(p);
  }
  CHECK_EQ_INT(count_fds(), before);
  po_loop_free(loop);
}

static void signal_names(void) {
  CHECK_EQ_STR(po_signal_name(SIGTERM), "SIGTERM");
  CHECK_EQ_STR(po_signal_name(SIGKILL), "SIGKILL");
  CHECK(po_signal_name(0) == NULL);
  CHECK(po_signal_name(1000) == NULL);
}

int main(void) {
  RUN(captures_output_and_exit_code);
  RUN(feeds_stdin_and_sets_env_and_cwd);
  RUN(missing_command_is_an_error_status);
  RUN(deadline_kills_the_whole_group);
  RUN(large_output_on_both_streams);
  RUN(terminate_stops_a_run);
  RUN(free_while_running_kills_and_reaps);
  RUN(no_descriptor_leaks);
  RUN(signal_names);
  return TEST_SUMMARY();
}
