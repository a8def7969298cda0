/* src/core/pool.c and its Lua binding under injected faults (tests/c/fault.h):
 * threads that cannot be started, allocation failing on the loop's thread and
 * on a worker, a pool stopped while jobs are queued or still being submitted,
 * and a Lua state closed with jobs in flight. */
#include "error.h"
#include "fault.h"
#include "loop.h"
#include "pool.h"
#include "runtime.h"

#include "harness.h"

#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct test_job {
  po_pool_job node;
  po_pool_client *client;
  int *flag;    /* with hold: the run waits until *flag is set (atomic) */
  int ran;      /* atomic */
  int dropped;
  int delivered;
  int fail_alloc; /* the run hands the job back with every allocation failing */
  int start_error; /* po_pool_client_start_error when dropped */
} test_job;

static void job_run(void **local, void *p) {
  (void)local;
  test_job *j = p;
  while (j->flag && !__atomic_load_n(j->flag, __ATOMIC_ACQUIRE)) usleep(1000);
  __atomic_store_n(&j->ran, 1, __ATOMIC_RELEASE);
  if (!j->client) return;
  if (j->fail_alloc) fault_arm("malloc", 1, 1, ENOMEM);
  po_pool_client_finish(j->client, &j->node);
  if (j->fail_alloc) fault_disarm();
}

static void job_drop(void *p) {
  test_job *j = p;
  j->dropped = 1;
  if (!j->client) return;
  j->start_error = po_pool_client_start_error(j->client);
  po_pool_client_finish(j->client, &j->node);
}

static void on_deliver(void *ud, po_pool_job *node) {
  (void)ud;
  ((test_job *)node)->delivered++;
}

static int wait_for(int *flag) {
  for (int i = 0; i < 10000 && !__atomic_load_n(flag, __ATOMIC_ACQUIRE); i++) usleep(1000);
  return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

static int wait_running(po_pool *pool, int n) {
  int running = 0;
  for (int i = 0; i < 10000 && running != n; i++) {
    po_pool_counts(pool, NULL, &running);
    if (running != n) usleep(1000);
  }
  return running == n;
}

/* A pool runs with the threads it could start; with none it is PO_EIO. */
static void threads_that_cannot_start(void) {
  po_pool *pool;
  fault_arm("pthread_create", 2, 0, EAGAIN);
  REQUIRE(po_pool_new(3, NULL, &pool) == 0);
  fault_disarm();
  CHECK_EQ_INT(po_pool_size(pool), 1); /* the start stops at the first failure */
  test_job j = {.node = {.run = job_run, .drop = job_drop}};
  REQUIRE(po_pool_submit(pool, &j.node) == 0);
  CHECK(wait_for(&j.ran));
  po_pool_free(pool);

  fault_arm("pthread_create", 1, 1, EAGAIN);
  pool = NULL;
  CHECK_EQ_INT(po_pool_new(3, NULL, &pool), PO_EIO);
  CHECK_EQ_INT(fault_fired(), 1);
  fault_disarm();
  CHECK(pool == NULL);
}

/* Each allocation of a pool's start fails in turn: PO_ENOMEM, or a pool
 * with fewer workers that runs jobs. */
static int start_a_pool(void *arg) {
  (void)arg;
  po_pool *pool = NULL;
  int rc = po_pool_new(2, NULL, &pool);
  if (rc == PO_ENOMEM) return pool == NULL ? 0 : -1; /* the first worker's allocation too */
  if (rc != 0) return -1;
  int size = po_pool_size(pool);
  test_job j = {.node = {.run = job_run, .drop = job_drop}};
  int ok = (size == 1 || size == 2) && po_pool_submit(pool, &j.node) == 0 && wait_for(&j.ran);
  po_pool_free(pool);
  return ok ? 0 : -1;
}

static void pool_start_under_failing_allocation(void) {
  CHECK_EQ_INT(fault_sweep("malloc", ENOMEM, start_a_pool, NULL, 50), 4); /* pool, workers[], 2 workers */
}

/* No replacement thread: the job is not abandoned, and finishes as usual. */
static void abandon_without_a_thread(void) {
  po_pool *pool;
  REQUIRE(po_pool_new(1, NULL, &pool) == 0);
  int go = 0;
  test_job j = {.node = {.run = job_run, .drop = job_drop}, .flag = &go};
  REQUIRE(po_pool_submit(pool, &j.node) == 0);
  REQUIRE(wait_running(pool, 1));
  fault_arm("pthread_create", 1, 0, EAGAIN);
  CHECK_EQ_INT(po_pool_abandon(pool, &j.node), PO_EIO);
  fault_arm("malloc", 1, 0, ENOMEM);
  CHECK_EQ_INT(po_pool_abandon(pool, &j.node), PO_ENOMEM);
  fault_disarm();
  CHECK_EQ_INT(po_pool_abandoned(pool), 0);
  CHECK_EQ_INT(po_pool_size(pool), 1);
  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  CHECK(wait_for(&j.ran));
  CHECK(wait_running(pool, 0));
  po_pool_free(pool);
  CHECK(!j.dropped);
}

/* A job that submits while the pool is being freed is refused
 * (PO_ECANCELED): the one it queued before is dropped, not run. */
typedef struct submitter {
  test_job job;
  po_pool *pool;
  test_job queued, late;
  int queued_rc, late_rc;
  int submitted; /* atomic */
} submitter;

static void submitter_run(void **local, void *p) {
  (void)local;
  submitter *s = p;
  s->queued_rc = po_pool_submit(s->pool, &s->queued.node);
  __atomic_store_n(&s->submitted, 1, __ATOMIC_RELEASE);
  int queued = 1; /* the only worker is here: only po_pool_free empties the queue */
  while (queued) {
    po_pool_counts(s->pool, &queued, NULL);
    usleep(1000);
  }
  s->late_rc = po_pool_submit(s->pool, &s->late.node);
}

static void submit_while_stopping(void) {
  submitter s = {.job = {.node = {.run = submitter_run}},
                 .queued = {.node = {.run = job_run, .drop = job_drop}},
                 .late = {.node = {.run = job_run, .drop = job_drop}}};
  REQUIRE(po_pool_new(1, NULL, &s.pool) == 0);
  REQUIRE(po_pool_submit(s.pool, &s.job.node) == 0);
  REQUIRE(wait_for(&s.submitted));
  po_pool_free(s.pool);
  CHECK_EQ_INT(s.queued_rc, 0);
  CHECK_EQ_INT(s.late_rc, PO_ECANCELED);
  CHECK(s.queued.dropped && !s.queued.ran);
  CHECK(!s.late.dropped && !s.late.ran);
}

static int deliver_until(po_loop *loop, test_job *jobs, int n) {
  for (int turn = 0; turn < 3000; turn++) {
    int all = 1;
    for (int i = 0; i < n; i++) all = all && jobs[i].delivered;
    if (all) return 1;
    po_loop_run_once(loop, 0.01, NULL);
  }
  return 0;
}

/* A worker hands a job back while no memory can be had: the job still
 * comes back to the loop (nothing else would ever bring it). */
static void delivery_needs_no_memory(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  po_pool_client *c;
  REQUIRE(po_pool_client_new(loop, NULL, on_deliver, NULL, &c) == 0);
  REQUIRE(po_pool_client_set_workers(c, 1) == 0);
  test_job j = {.node = {.run = job_run, .drop = job_drop}, .client = c, .fail_alloc = 1};
  REQUIRE(po_pool_client_submit(c, &j.node) == 0);
  CHECK(deliver_until(loop, &j, 1));
  CHECK_EQ_INT(j.delivered, 1);
  CHECK_EQ_INT(po_pool_client_in_flight(c), 0);
  CHECK(!po_loop_alive(loop));
  po_pool_client_free(c, on_deliver);
  po_loop_free(loop);
}

/* A client's whole life (submit, stage, deliver) with each allocation on
 * the loop's thread failing in turn: a call that fails says so and leaves
 * the job to its caller; every job accepted is delivered exactly once, as
 * a run or, when the pool could not be started for the staged ones, as a
 * drop; nothing stays in flight. */
static int client_life(void *arg) {
  (void)arg;
  po_loop *loop;
  if (po_loop_new(&loop) != 0) return 0;
  po_pool_client *c;
  if (po_pool_client_new(loop, NULL, on_deliver, NULL, &c) != 0) {
    po_loop_free(loop);
    return 0;
  }
  po_pool_client_set_workers(c, 2);
  test_job jobs[3];
  int accepted[3];
  for (int i = 0; i < 3; i++) jobs[i] = (test_job){.node = {.run = job_run, .drop = job_drop}, .client = c};
  int ok = 1;
  accepted[0] = po_pool_client_submit(c, &jobs[0].node) == 0;
  for (int i = 1; i < 3; i++) {
    int rc = po_pool_client_stage(c, &jobs[i].node);
    accepted[i] = rc == 0;
    ok = ok && (rc == 0 || rc == PO_ENOMEM);
  }
  for (int turn = 0; turn < 3000 && po_pool_client_in_flight(c) > 0; turn++) po_loop_run_once(loop, 0.01, NULL);
  for (int i = 0; i < 3; i++) {
    ok = ok && jobs[i].delivered == accepted[i];
    ok = ok && (!jobs[i].delivered || jobs[i].ran != jobs[i].dropped);
  }
  ok = ok && po_pool_client_in_flight(c) == 0 && !po_loop_alive(loop);
  po_pool_client_free(c, on_deliver);
  po_loop_free(loop);
  if (!ok)
    fprintf(stderr, "client_life: accepted %d %d %d, delivered %d %d %d\n", accepted[0], accepted[1], accepted[2],
            jobs[0].delivered, jobs[1].delivered, jobs[2].delivered);
  return ok ? 0 : -1;
}

static void client_under_failing_allocation(void) {
  CHECK(fault_sweep("malloc", ENOMEM, client_life, NULL, 100) >= 6);
}

/* The staged jobs' pool cannot start when the loop hands them over: they
 * come back dropped rather than waiting for a flush that may never come. */
static void staged_jobs_without_threads_are_dropped(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  po_pool_client *c;
  REQUIRE(po_pool_client_new(loop, NULL, on_deliver, NULL, &c) == 0);
  test_job j = {.node = {.run = job_run, .drop = job_drop}, .client = c};
  REQUIRE(po_pool_client_stage(c, &j.node) == 0);
  fault_arm("pthread_create", 1, 1, EAGAIN);
  CHECK(deliver_until(loop, &j, 1));
  fault_disarm();
  CHECK(j.dropped && !j.ran);
  CHECK_EQ_INT(j.start_error, PO_EIO);
  CHECK_EQ_INT(po_pool_client_start_error(c), 0); /* only while the drops run */
  CHECK(!po_loop_alive(loop));
  CHECK_EQ_INT(po_pool_client_abandon(c, &j.node), PO_ENOENT); /* no pool */
  po_pool_client_free(c, on_deliver);
  po_loop_free(loop);
}

static int run_lua(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) == 0) return 0;
  fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
  lua_pop(L, 1);
  return -1;
}

/* Creates the file arg names once the pool's stop has reached its joins:
 * the queued jobs are out of the queue by then. */
static void *release_at_join(void *arg) {
  for (int i = 0; i < 30000 && fault_count("pthread_join") == 0; i++) usleep(1000);
  FILE *f = fopen(arg, "w");
  if (f) fclose(f);
  return NULL;
}

/* A state closed while its pool has a job running and others queued: the
 * running one finishes, the queued ones never run, and their futures are
 * let go of (the sanitizer build sees that nothing leaks). */
static void state_closed_with_jobs_queued(void) {
  char dir[] = "/tmp/po_pool_fault_XXXXXX";
  REQUIRE(mkdtemp(dir));
  lua_State *L = po_runtime_new();
  REQUIRE(L);
  lua_pushstring(L, dir);
  lua_setglobal(L, "dir");
  REQUIRE(run_lua(L, "local po = require('poengine')\n"
                     "po.pool.configure{ workers = 1 }\n"
                     "local function mark(path, wait)\n"
                     "  local f = io.open(path, 'w'); f:write('ran'); f:close()\n"
                     "  local limit = os.time() + 30\n"
                     "  while wait and not io.open(wait) and os.time() < limit do end\n"
                     "end\n"
                     "first = po.pool.submit(mark, dir .. '/1', dir .. '/go')\n"
                     "queued = { po.pool.submit(mark, dir .. '/2'), po.pool.submit(mark, dir .. '/3') }\n"
                     "while not io.open(dir .. '/1') do end\n"
                     "assert(po.pool.stats().queued == 2)\n") == 0);
  char path[96];
  snprintf(path, sizeof path, "%s/go", dir);
  fault_count_start();
  pthread_t helper;
  REQUIRE(pthread_create(&helper, NULL, release_at_join, path) == 0);
  lua_close(L);
  pthread_join(helper, NULL);
  snprintf(path, sizeof path, "%s/1", dir);
  CHECK(access(path, F_OK) == 0);
  snprintf(path, sizeof path, "%s/2", dir);
  CHECK(access(path, F_OK) != 0);
  snprintf(path, sizeof path, "%s/3", dir);
  CHECK(access(path, F_OK) != 0);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
}

/* The Lua side of a failed start: a batch's staged job reports it. */
static void batch_without_threads_reports_the_start(void) {
  lua_State *L = po_runtime_new();
  REQUIRE(L);
  fault_arm("pthread_create", 1, 1, EAGAIN);
  int rc = run_lua(L, "local po = require('poengine')\n"
                      "local got\n"
                      "local b = po.pool.batch(function(...) got = { ... } end)\n"
                      "b:submit(1, function() return 1 end)\n"
                      "while b:in_flight() > 0 do po.sleep(0.001) end\n"
                      "assert(got[1] == 1 and got[2] == nil, tostring(got[2]))\n"
                      "assert(got[3] == 'po.pool: cannot start the worker threads: input/output error', got[3])\n"
                      "assert(got[4] == 'EIO', got[4])\n"
                      "local ok, err = pcall(po.pool.submit, function() end)\n"
                      "assert(not ok and err:find('po.pool.submit: cannot start the worker threads', 1, true), err)\n");
  fault_disarm();
  CHECK(rc == 0);
  lua_close(L);
}

/* po.pool.submit and a batch, with each of poengine's allocations (LuaJIT's
 * own are not malloc) failing in turn: each raises "out of memory" or
 * reports ENOMEM, or works; never a wrong value, a hang or a leak. */
static const char pool_chunk[] =
    "local po = require('poengine')\n"
    "local function check(ok, a, b, code)\n"
    "  if not ok then return tostring(a):find('out of memory', 1, true) and 'ok' or 'raised ' .. tostring(a) end\n"
    "  if a == 42 and type(b) == 'table' and b.y == 'z' then return 'ok' end\n"
    "  if a == nil and code == 'ENOMEM' then return 'ok' end\n"
    "  return 'got ' .. tostring(a) .. ', ' .. tostring(b) .. ', ' .. tostring(code)\n"
    "end\n"
    "local function add(x, t) return x + 1, t end\n"
    "outcome = check(pcall(function() return po.pool.submit(add, 41, { y = 'z' }):wait() end))\n"
    "if outcome ~= 'ok' then return end\n"
    "outcome = check(pcall(function()\n"
    "  local got\n"
    "  local b = po.pool.batch(function(id, seconds, ...) got = { seconds, ... } end, 40)\n"
    "  b:submit(1, function(s, x) return s + x, { y = 'z' } end, 2)\n"
    "  while b:in_flight() > 0 do po.sleep(0.001) end\n"
    "  if got[1] then return got[2], got[3] end\n"
    "  return nil, got[2], got[3]\n"
    "end))\n";

static int lua_pool_life(void *arg) {
  (void)arg;
  lua_State *L = po_runtime_new();
  if (!L) return 0;
  int rc = luaL_dostring(L, pool_chunk);
  int ok = 0;
  if (rc != 0) {
    const char *msg = lua_tostring(L, -1);
    ok = msg && strstr(msg, "out of memory") != NULL;
    if (!ok) fprintf(stderr, "lua_pool_life: %s\n", msg ? msg : "(no message)");
  } else {
    lua_getglobal(L, "outcome");
    const char *outcome = lua_tostring(L, -1);
    ok = outcome && strcmp(outcome, "ok") == 0;
    if (!ok) fprintf(stderr, "lua_pool_life: %s\n", outcome ? outcome : "(no outcome)");
  }
  lua_close(L);
  return ok ? 0 : -1;
}

static void lua_pool_under_failing_allocation(void) {
  CHECK(fault_sweep("malloc", ENOMEM, lua_pool_life, NULL, 400) >= 10);
}

int main(void) {
  alarm(600); /* a lost job would hang a wait: fail instead */
  RUN(threads_that_cannot_start);
  RUN(pool_start_under_failing_allocation);
  RUN(abandon_without_a_thread);
  RUN(submit_while_stopping);
  RUN(delivery_needs_no_memory);
  RUN(client_under_failing_allocation);
  RUN(staged_jobs_without_threads_are_dropped);
  RUN(state_closed_with_jobs_queued);
  RUN(batch_without_threads_reports_the_start);
  RUN(lua_pool_under_failing_allocation);
  return TEST_SUMMARY();
}
