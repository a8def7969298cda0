/* src/core/proc.c on both of its ways to see a child exit: a pidfd, and the
 * polling fallback of kernels before 5.3 (pidfd_open failing with ENOSYS,
 * through the fault hook of tests/c/fault.h). The same scenarios give the
 * same observable results on both. Then the failures a test cannot cause
 * from outside: allocation, process set-up and spawn failures, and
 * descriptors running out. */
#include "clock.h"
#include "error.h"
#include "fault.h"
#include "loop.h"
#include "proc.h"
#include "runtime.h"

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *path_name = "pidfd";

/* Runs the scenarios below on the polling fallback when on is set. */
static void use_polling(int on) {
  fault_always(on ? "pidfd_open" : NULL, ENOSYS);
  path_name = on ? "polling" : "pidfd";
}

/* The result, its output copied so that it outlives the run. */
typedef struct outcome {
  int done;
  po_proc_result r;
  char out[256], err[256];
} outcome;

static void on_done(po_proc *p, void *ud) {
  outcome *o = ud;
  o->done = 1;
  po_proc_result_get(p, &o->r);
  if (o->r.out_len > sizeof o->out) o->r.out_len = sizeof o->out;
  if (o->r.err_len > sizeof o->err) o->r.err_len = sizeof o->err;
  if (o->r.out) memcpy(o->out, o->r.out, o->r.out_len);
  if (o->r.err) memcpy(o->err, o->r.err, o->r.err_len);
  o->r.out = o->out;
  o->r.err = o->err;
}

/* Turns the loop until the run completes (30 s at most: a run that never
 * completes fails the test rather than hanging it). */
static int wait_done(po_loop *loop, outcome *o) {
  double limit = po_monotonic() + 30;
  while (!o->done && po_monotonic() < limit) po_loop_run_once(loop, 1, NULL);
  return o->done ? 0 : PO_ETIMEDOUT;
}

static int run(po_loop *loop, const po_proc_opts *opts, outcome *o, po_proc **pp) {
  *o = (outcome){0};
  int rc = po_proc_start(loop, opts, on_done, o, pp);
  return rc ? rc : wait_done(loop, o);
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* A run of argv to its end on a fresh loop; the checks are the caller's. */
static int run_argv(const char *const *argv, double timeout, outcome *o) {
  po_loop *loop;
  if (po_loop_new(&loop) != 0) return -1;
  po_proc_opts opts = {.argv = argv, .timeout = timeout, .kill_grace = 0.05, .output_limit = 1000};
  po_proc *p = NULL;
  int rc = run(loop, &opts, o, &p);
  po_proc_free(p);
  CHECK(!po_loop_alive(loop)); /* no watcher or timer left behind */
  po_loop_free(loop);
  return rc;
}

static void exit_code_and_output(void) {
  const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 7", NULL};
  outcome o;
  REQUIRE(run_argv(argv, 0, &o) == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_FAILED);
  CHECK_EQ_INT(o.r.exit_code, 7);
  CHECK_EQ_INT(o.r.signal, 0);
  CHECK(o.r.out_len == 4 && memcmp(o.r.out, "out\n", 4) == 0);
  CHECK(o.r.err_len == 4 && memcmp(o.r.err, "err\n", 4) == 0);
}

static void killed_by_a_signal(void) {
  const char *argv[] = {"sh", "-c", "kill -USR1 $$", NULL};
  outcome o;
  REQUIRE(run_argv(argv, 0, &o) == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_FAILED);
  CHECK_EQ_INT(o.r.exit_code, -1);
  CHECK_EQ_INT(o.r.signal, SIGUSR1);
}

static void deadline_kills_a_child_that_ignores_sigterm(void) {
  const char *argv[] = {"sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done", NULL};
  outcome o;
  REQUIRE(run_argv(argv, 0.1, &o) == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_TIMEOUT);
  CHECK_EQ_INT(o.r.signal, SIGKILL);
}

static void terminate_ends_a_run_with_sigterm(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *argv[] = {"sleep", "100", NULL};
  po_proc_opts opts = {.argv = argv, .kill_grace = 5, .output_limit = 10};
  outcome o = {0};
  po_proc *p;
  REQUIRE(po_proc_start(loop, &opts, on_done, &o, &p) == 0);
  po_proc_terminate(p);
  CHECK(wait_done(loop, &o) == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_FAILED);
  CHECK_EQ_INT(o.r.signal, SIGTERM);
  po_proc_terminate(p); /* after the end: nothing to do */
  po_proc_free(p);
  po_loop_free(loop);
}

/* The leader exits 0 and leaves a process in a session of its own holding
 * both pipes: signals to the group cannot reach it, so once SIGKILL has gone
 * out the run waits a moment (the linger) and completes with what it read.
 * The leftover writes its pid to a file before the leader exits. */
static int leftover_outside_the_group(void *arg) {
  int *failures = arg;
  char pidfile[] = "/tmp/po_proc_fault_XXXXXX";
  int fd = mkstemp(pidfile);
  if (fd < 0) return -1;
  close(fd);
  unlink(pidfile);
  char script[512];
  snprintf(script, sizeof script,
           "setsid sh -c 'echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 300' &"
           " while [ ! -s %s ]; do sleep 0.01; done; echo done",
           pidfile, pidfile, pidfile, pidfile);
  const char *argv[] = {"sh", "-c", script, NULL};
  int before = count_fds();
  po_loop *loop;
  if (po_loop_new(&loop) != 0) return 0; /* out of memory before anything started */
  po_proc_opts opts = {.argv = argv, .kill_grace = 0.01, .output_limit = 100};
  outcome o = {0};
  po_proc *p = NULL;
  int rc = po_proc_start(loop, &opts, on_done, &o, &p);
  if (rc == 0) rc = wait_done(loop, &o);
  int ok = rc == PO_ENOMEM || rc == 0;
  if (rc == 0) {
    /* The leader's own outcome; its "done" is there unless keeping the
     * output ran out of memory. */
    ok = ok && o.r.status == PO_PROC_OK && o.r.exit_code == 0 && o.r.signal == 0;
    ok = ok && ((o.r.out_len == 5 && memcmp(o.r.out, "done\n", 5) == 0) || o.r.truncated);
  }
  po_proc_free(p);
  ok = ok && !po_loop_alive(loop);
  po_loop_free(loop);
  /* The leftover, if the leader got to start it, is still there: the run
   * does not kill what it cannot reach. */
  FILE *f = fopen(pidfile, "r");
  int pid = 0;
  if (f) {
    if (fscanf(f, "%d", &pid) != 1) pid = 0;
    fclose(f);
    unlink(pidfile);
  }
  if (rc == 0) ok = ok && pid > 0 && kill(pid, 0) == 0;
  if (pid > 0) kill(pid, SIGKILL);
  ok = ok && count_fds() == before;
  if (!ok) {
    fprintf(stderr, "leftover_outside_the_group (%s): rc %d status %d exit %d signal %d out %zu\n", path_name, rc,
            o.r.status, o.r.exit_code, o.r.signal, o.r.out_len);
    ++*failures;
  }
  return ok ? 0 : -1;
}

static void linger_ends_a_run_whose_pipes_outlive_the_group(void) {
  int failures = 0;
  leftover_outside_the_group(&failures);
  CHECK_EQ_INT(failures, 0);
}

/* A process of the group that ignores SIGTERM and keeps the pipes open
 * after the leader exited gets SIGKILL after the grace period. */
static void leftover_in_the_group_is_killed(void) {
  const char *argv[] = {"sh", "-c", "(trap '' TERM; echo left; exec sleep 300) & read x < /dev/null; exit 0", NULL};
  outcome o;
  REQUIRE(run_argv(argv, 0, &o) == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_OK);
  CHECK_EQ_INT(o.r.exit_code, 0);
}

/* Someone else in the process (a wait for any child) took the exit status
 * first: the run still completes, with the status unknown. */
static void status_taken_by_someone_else(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *argv[] = {"sh", "-c", "exit 3", NULL};
  po_proc_opts opts = {.argv = argv, .output_limit = 10};
  outcome o = {0};
  po_proc *p;
  REQUIRE(po_proc_start(loop, &opts, on_done, &o, &p) == 0);
  po_proc_result r;
  po_proc_result_get(p, &r);
  int st = 0;
  CHECK_EQ_INT(waitpid(r.pid, &st, 0), r.pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
  CHECK(wait_done(loop, &o) == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_FAILED);
  CHECK_EQ_INT(o.r.exit_code, -1);
  CHECK_EQ_INT(o.r.signal, 0);
  po_proc_free(p);
  po_loop_free(loop);
}

static void empty_input_is_an_empty_stdin(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *argv[] = {"sh", "-c", "cat; echo end", NULL};
  po_proc_opts opts = {.argv = argv, .input = "", .input_len = 0, .output_limit = 100};
  outcome o;
  po_proc *p;
  REQUIRE(run(loop, &opts, &o, &p) == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_OK);
  CHECK(o.r.out_len == 4 && memcmp(o.r.out, "end\n", 4) == 0);
  po_proc_free(p);
  po_loop_free(loop);
}

/* Input larger than a pipe holds goes in as the child reads it; input to a
 * child that closed its stdin is dropped without a SIGPIPE for this
 * process (which would end it). */
static void large_input_and_input_nobody_reads(void) {
  enum { BIG = 1 << 20 };
  char *big = malloc(BIG);
  REQUIRE(big);
  memset(big, 'a', BIG);
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *count[] = {"sh", "-c", "wc -c", NULL};
  const char *closed[] = {"sh", "-c", "exec 0<&-; sleep 0.05; echo closed", NULL};
  po_proc_opts opts = {.argv = count, .input = big, .input_len = BIG, .output_limit = 100};
  outcome o;
  po_proc *p;
  REQUIRE(run(loop, &opts, &o, &p) == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_OK);
  CHECK_EQ_INT(atoi(o.r.out), BIG);
  po_proc_free(p);
  opts.argv = closed;
  REQUIRE(run(loop, &opts, &o, &p) == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_OK);
  CHECK(o.r.out_len == 7 && memcmp(o.r.out, "closed\n", 7) == 0);
  sigset_t pending;
  sigpending(&pending);
  CHECK(!sigismember(&pending, SIGPIPE));
  po_proc_free(p);
  po_loop_free(loop);
  free(big);
}

static void bad_arguments(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *none[] = {NULL};
  po_proc_opts opts = {.argv = none};
  outcome o = {0};
  po_proc *p = NULL;
  CHECK_EQ_INT(po_proc_start(loop, &opts, on_done, &o, &p), PO_EINVAL);
  opts.argv = NULL;
  CHECK_EQ_INT(po_proc_start(loop, &opts, on_done, &o, &p), PO_EINVAL);
  CHECK_EQ_INT(po_proc_start(NULL, &opts, on_done, &o, &p), PO_EINVAL);
  CHECK(p == NULL && !po_loop_alive(loop));
  po_proc_terminate(NULL); /* ignored, as po_proc_free(NULL) is */
  po_proc_free(NULL);
  po_loop_free(loop);
}

/* Every allocation of a run (loop, process, timers, watchers, output)
 * fails once in turn. Each time the run either did not start (PO_ENOMEM,
 * nothing left open) or completed: whole, or with its output cut short
 * (truncated), or, on the polling path when no timer could be set to poll
 * again, with the child killed and reaped at once. */
static int a_run_under_failing_allocation(void *arg) {
  (void)arg;
  int before = count_fds();
  po_loop *loop;
  if (po_loop_new(&loop) != 0) return count_fds() == before ? 0 : -1;
  const char *argv[] = {"sh", "-c", "echo out; sleep 0.02; exit 3", NULL};
  po_proc_opts opts = {.argv = argv, .input = "in", .input_len = 2, .output_limit = 100, .timeout = 60};
  outcome o = {0};
  po_proc *p = NULL;
  int rc = po_proc_start(loop, &opts, on_done, &o, &p);
  if (rc == 0) rc = wait_done(loop, &o);
  int ok;
  if (rc == PO_ENOMEM) {
    ok = p == NULL && !o.done;
  } else {
    int whole = o.r.exit_code == 3 && o.r.out_len == 4 && memcmp(o.r.out, "out\n", 4) == 0;
    int cut = o.r.exit_code == 3 && o.r.truncated;
    int killed = o.r.signal == SIGKILL || (o.r.exit_code == 3 && o.r.out_len == 0);
    ok = rc == 0 && o.r.status == PO_PROC_FAILED && (whole || cut || killed);
  }
  po_proc_free(p);
  ok = ok && !po_loop_alive(loop);
  po_loop_free(loop);
  ok = ok && count_fds() == before;
  if (!ok)
    fprintf(stderr, "a run under failing allocation (%s): rc %d status %d exit %d signal %d\n", path_name, rc,
            o.r.status, o.r.exit_code, o.r.signal);
  return ok ? 0 : -1;
}

static void every_allocation_fails_in_turn(void) {
  long runs = fault_sweep("malloc", ENOMEM, a_run_under_failing_allocation, NULL, 200);
  CHECK(runs >= 5);
}

/* The grace and linger timers failing to start: SIGKILL goes out at once,
 * and the run completes without the linger. */
static void leftover_under_failing_allocation(void) {
  int failures = 0;
  CHECK(fault_sweep("malloc", ENOMEM, leftover_outside_the_group, &failures, 200) >= 3);
  CHECK_EQ_INT(failures, 0);
}

/* Process set-up (file actions, attributes) failing is PO_ENOMEM with
 * nothing started or left open; the spawn failing is an error status. */
static int a_spawn_failing(void *arg) {
  (void)arg;
  int before = count_fds();
  po_loop *loop;
  if (po_loop_new(&loop) != 0) return -1;
  const char *argv[] = {"cat", NULL};
  po_proc_opts opts = {.argv = argv, .input = "x", .input_len = 1, .output_limit = 10};
  outcome o = {0};
  po_proc *p = NULL;
  int rc = run(loop, &opts, &o, &p);
  long fired = fault_fired();
  int ok;
  if (rc == PO_ENOMEM)
    ok = fired && p == NULL && !o.done;
  else if (fired)
    ok = rc == 0 && o.r.status == PO_PROC_ERROR && o.r.error == EAGAIN && strcmp(o.r.error_what, "execute") == 0;
  else
    ok = rc == 0 && o.r.status == PO_PROC_OK && o.r.out_len == 1 && o.r.out[0] == 'x';
  po_proc_free(p);
  po_loop_free(loop);
  return ok && count_fds() == before ? 0 : -1;
}

static void spawn_failures(void) {
  /* file actions, attributes, three dup2s, the spawn */
  CHECK_EQ_INT(fault_sweep("posix_spawn", EAGAIN, a_spawn_failing, NULL, 20), 6);
}

static void cwd_that_is_a_file_is_not_a_directory(void) {
  char plain[] = "/tmp/po_proc_fault_XXXXXX";
  int fd = mkstemp(plain);
  REQUIRE(fd >= 0);
  close(fd);
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  const char *argv[] = {"true", NULL};
  po_proc_opts opts = {.argv = argv, .cwd = plain, .output_limit = 10};
  outcome o;
  po_proc *p;
  REQUIRE(run(loop, &opts, &o, &p) == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_ERROR);
  CHECK_EQ_INT(o.r.error, ENOTDIR);
  CHECK_EQ_STR(o.r.error_what, "change directory to");
  po_proc_terminate(p); /* a run that never started: nothing to stop */
  po_proc_result_get(p, &o.r);
  CHECK_EQ_INT(o.r.status, PO_PROC_ERROR);
  po_proc_free(p);
  po_loop_free(loop);
  unlink(plain);
}

/* With descriptor 0 closed, a pipe lands on it; the run moves it up, and
 * the child still gets its own stdin. */
static void pipes_never_sit_on_the_standard_descriptors(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  int saved = fcntl(0, F_DUPFD_CLOEXEC, 3);
  close(0);
  const char *argv[] = {"sh", "-c", "cat; echo end", NULL};
  po_proc_opts opts = {.argv = argv, .input = "in\n", .input_len = 3, .output_limit = 100};
  outcome o;
  po_proc *p;
  int rc = run(loop, &opts, &o, &p);
  CHECK(fcntl(0, F_GETFD) == -1); /* nothing of the run's left on 0 */
  if (saved >= 0) {
    dup2(saved, 0);
    close(saved);
  }
  REQUIRE(rc == 0);
  CHECK_EQ_INT(o.r.status, PO_PROC_OK);
  CHECK(o.r.out_len == 7 && memcmp(o.r.out, "in\nend\n", 7) == 0);
  po_proc_free(p);
  po_loop_free(loop);
}

/* Open descriptors below limit, counted without opening one. */
static int count_open(int limit) {
  int n = 0;
  for (int fd = 0; fd < limit; fd++) n += fcntl(fd, F_GETFD) != -1;
  return n;
}

/* Out of descriptors: no pipe, or no descriptor above 2 to move one to, is
 * an error status "create a pipe" (EMFILE), with nothing left open. */
static void out_of_descriptors(void) {
  struct rlimit old;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  int saved0 = fcntl(0, F_DUPFD_CLOEXEC, 3);
  enum { LIMIT = 200 };
  struct rlimit low = {LIMIT, old.rlim_max};
  REQUIRE(count_fds() < LIMIT - 10);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  int fill[LIMIT], n = 0, fd;
  while (n < LIMIT && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) fill[n++] = fd;
  const char *argv[] = {"true", NULL};
  po_proc_opts opts = {.argv = argv, .output_limit = 10};
  outcome o;
  po_proc *p;
  for (int round = 0; round < 2; round++) {
    if (round == 1) { /* 0 and one slot free: the pipe gets 0, nothing above 2 is left */
      close(0);
      close(fill[--n]);
    }
    int before = count_open(LIMIT);
    REQUIRE(run(loop, &opts, &o, &p) == 0);
    CHECK_EQ_INT(o.r.status, PO_PROC_ERROR);
    CHECK_EQ_INT(o.r.error, EMFILE);
    CHECK_EQ_STR(o.r.error_what, "create a pipe");
    CHECK_EQ_INT(count_open(LIMIT), before);
    po_proc_free(p);
  }
  while (n > 0) close(fill[--n]);
  setrlimit(RLIMIT_NOFILE, &old);
  if (saved0 >= 0) {
    dup2(saved0, 0);
    close(saved0);
  }
  po_loop_free(loop);
}

/* po.run through the binding, each of poengine's allocations failing in
 * turn: it raises "out of memory", or the run completes as the core's
 * sweep above allows. */
static const char run_chunk[] =
    "local po = require('poengine')\n"
    "local ok, r = pcall(function()\n"
    "  return po.run{ argv = { 'sh', '-c', 'echo hi; exit 2' }, stdin = 'x', timeout = 60 }:wait()\n"
    "end)\n"
    "if not ok then\n"
    "  outcome = tostring(r):find('out of memory', 1, true) and 'ok' or 'raised ' .. tostring(r)\n"
    "elseif r.status == 'failed' and (r.code == 2 and (r.stdout == 'hi\\n' or r.truncated or r.stdout == '')\n"
    "    or r.signal == 'SIGKILL') then\n"
    "  outcome = 'ok'\n"
    "else\n"
    "  outcome = 'got ' .. tostring(r.status) .. ' ' .. tostring(r.code) .. ' ' .. tostring(r.signal)\n"
    "end\n";

static int lua_run_life(void *arg) {
  (void)arg;
  lua_State *L = po_runtime_new();
  if (!L) return 0;
  int ok = 0;
  if (luaL_dostring(L, run_chunk) != 0) {
    const char *msg = lua_tostring(L, -1);
    ok = msg && strstr(msg, "out of memory") != NULL;
    if (!ok) fprintf(stderr, "lua_run_life (%s): %s\n", path_name, msg ? msg : "(no message)");
  } else {
    lua_getglobal(L, "outcome");
    const char *said = lua_tostring(L, -1);
    ok = said && strcmp(said, "ok") == 0;
    if (!ok) fprintf(stderr, "lua_run_life (%s): %s\n", path_name, said ? said : "(no outcome)");
  }
  lua_close(L);
  return ok ? 0 : -1;
}

static void po_run_under_failing_allocation(void) {
  CHECK(fault_sweep("malloc", ENOMEM, lua_run_life, NULL, 400) >= 5);
}

/* A state closed while a run is going: the child's group is killed and the
 * child reaped (no zombie left), and the pending future let go of. */
static void state_closed_with_a_run_going(void) {
  char pidfile[] = "/tmp/po_proc_fault_XXXXXX";
  int fd = mkstemp(pidfile);
  REQUIRE(fd >= 0);
  close(fd);
  unlink(pidfile);
  lua_State *L = po_runtime_new();
  REQUIRE(L);
  lua_pushstring(L, pidfile);
  lua_setglobal(L, "pidfile");
  int rc = luaL_dostring(L, "local po = require('poengine')\n"
                            "running = po.run{ argv = { 'sh', '-c', 'echo $$ > \"$1.tmp\"; mv \"$1.tmp\" \"$1\"; "
                            "exec sleep 100', 'sh', pidfile } }\n"
                            "local limit = os.time() + 30\n"
                            "while not io.open(pidfile) and os.time() < limit do end\n");
  if (rc != 0) fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
  CHECK(rc == 0);
  lua_close(L);
  FILE *f = fopen(pidfile, "r");
  int pid = 0;
  if (f) {
    if (fscanf(f, "%d", &pid) != 1) pid = 0;
    fclose(f);
  }
  unlink(pidfile);
  REQUIRE(pid > 0);
  CHECK(kill(pid, 0) != 0 && errno == ESRCH);
}

static void on_both_paths(void (*test)(void)) {
  for (int polling = 0; polling < 2; polling++) {
    int before = harness_failures;
    use_polling(polling);
    test();
    if (harness_failures != before) fprintf(stderr, "  (the failures above: on the %s path)\n", path_name);
  }
  use_polling(0);
}

#define BOTH(test) \
  static void both_##test(void) { on_both_paths(test); }

BOTH(exit_code_and_output)
BOTH(killed_by_a_signal)
BOTH(deadline_kills_a_child_that_ignores_sigterm)
BOTH(terminate_ends_a_run_with_sigterm)
BOTH(linger_ends_a_run_whose_pipes_outlive_the_group)
BOTH(leftover_in_the_group_is_killed)
BOTH(status_taken_by_someone_else)
BOTH(every_allocation_fails_in_turn)
BOTH(po_run_under_failing_allocation)

int main(void) {
  RUN(both_exit_code_and_output);
  RUN(both_killed_by_a_signal);
  RUN(both_deadline_kills_a_child_that_ignores_sigterm);
  RUN(both_terminate_ends_a_run_with_sigterm);
  RUN(both_linger_ends_a_run_whose_pipes_outlive_the_group);
  RUN(both_leftover_in_the_group_is_killed);
  RUN(both_status_taken_by_someone_else);
  RUN(both_every_allocation_fails_in_turn);
  RUN(both_po_run_under_failing_allocation);
  RUN(empty_input_is_an_empty_stdin);
  RUN(state_closed_with_a_run_going);
  RUN(large_input_and_input_nobody_reads);
  RUN(bad_arguments);
  RUN(leftover_under_failing_allocation);
  RUN(spawn_failures);
  RUN(cwd_that_is_a_file_is_not_a_directory);
  RUN(pipes_never_sit_on_the_standard_descriptors);
  RUN(out_of_descriptors);
  return TEST_SUMMARY();
}
