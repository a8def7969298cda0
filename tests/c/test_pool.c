/* Tests for src/core/pool.c: jobs on real threads, per-worker slots,
 * dropping queued jobs when the pool stops; the client: results back on the
 * loop's thread in bursts, staging, stopping with jobs in flight. */
#include "error.h"
#include "loop.h"
#include "pool.h"

#include "harness.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct counter_job {
  po_pool_job node;
  int *runs; /* atomic */
  int *drops;
  int *slot_inits;
  unsigned sleep_us;
} counter_job;

static int locals_freed; /* atomic */

static void local_free(void *local) {
  free(local);
  __atomic_add_fetch(&locals_freed, 1, __ATOMIC_SEQ_CST);
}

static void count_run(void **local, void *p) {
  counter_job *j = p;
  if (!*local) {
    *local = malloc(1);
    __atomic_add_fetch(j->slot_inits, 1, __ATOMIC_SEQ_CST);
  }
  if (j->sleep_us) usleep(j->sleep_us);
  __atomic_add_fetch(j->runs, 1, __ATOMIC_SEQ_CST);
}

static void count_drop(void *p) {
  counter_job *j = p;
  (*j->drops)++;
}

static void runs_every_job(void) {
  po_pool *pool;
  REQUIRE(po_pool_new(3, local_free, &pool) == 0);
  CHECK_EQ_INT(po_pool_size(pool), 3);
  int runs = 0, drops = 0, inits = 0;
  enum { N = 2000 };
  counter_job *jobs = calloc(N, sizeof *jobs);
  for (int i = 0; i < N; i++) {
    jobs[i] = (counter_job){.node = {.run = count_run, .drop = count_drop}, .runs = &runs, .drops = &drops,
                            .slot_inits = &inits};
    REQUIRE(po_pool_submit(pool, &jobs[i].node) == 0);
  }
  for (int i = 0; i < 5000 && __atomic_load_n(&runs, __ATOMIC_SEQ_CST) < N; i++) usleep(1000);
  CHECK_EQ_INT(runs, N);
  int queued = -1, running = -1;
  po_pool_counts(pool, &queued, &running);
  CHECK_EQ_INT(queued, 0);
  int freed_before = __atomic_load_n(&locals_freed, __ATOMIC_SEQ_CST);
  po_pool_free(pool);
  CHECK_EQ_INT(drops, 0);
  CHECK(inits >= 1 && inits <= 3);
  CHECK_EQ_INT(locals_freed - freed_before, inits); /* each worker frees its own slot */
  free(jobs);
}

static void free_drops_queued_jobs_and_waits_for_running_ones(void) {
  po_pool *pool;
  REQUIRE(po_pool_new(1, local_free, &pool) == 0);
  int runs = 0, drops = 0, inits = 0;
  counter_job jobs[5];
  for (int i = 0; i < 5; i++) {
    jobs[i] = (counter_job){.node = {.run = count_run, .drop = count_drop}, .runs = &runs, .drops = &drops,
                            .slot_inits = &inits, .sleep_us = 100000};
    REQUIRE(po_pool_submit(pool, &jobs[i].node) == 0);
  }
  int running = 0;
  for (int i = 0; i < 5000 && running == 0; i++) { /* until the first job is running */
    po_pool_counts(pool, NULL, &running);
    if (!running) usleep(1000);
  }
  REQUIRE(running == 1);
  po_pool_free(pool);
  CHECK_EQ_INT(runs, 1);
  CHECK_EQ_INT(drops, 4);
}

typedef struct order_job {
  po_pool_job node;
  int id;
  int *log; /* ids in the order they ran (one worker: no lock needed) */
  int *n;   /* atomic */
} order_job;

static void order_run(void **local, void *p) {
  order_job *j = p;
  int at = __atomic_fetch_add(j->n, 1, __ATOMIC_SEQ_CST);
  j->log[at] = j->id;
}

static void submit_many_queues_a_list_in_order(void) {
  enum { N = 300 };
  for (int workers = 1; workers <= 3; workers += 2) {
    po_pool *pool;
    REQUIRE(po_pool_new(workers, NULL, &pool) == 0);
    int log[N], n = 0;
    order_job *jobs = calloc(N, sizeof *jobs);
    for (int i = 0; i < N; i++) {
      jobs[i] = (order_job){.node = {.run = order_run}, .id = i, .log = log, .n = &n};
      jobs[i].node.next = i + 1 < N ? &jobs[i + 1].node : NULL;
    }
    /* Two lists, the second one queued behind the first. */
    REQUIRE(po_pool_submit_many(pool, &jobs[0].node, 100) == 0);
    REQUIRE(po_pool_submit_many(pool, &jobs[100].node, N - 100) == 0);
    REQUIRE(po_pool_submit_many(pool, NULL, 0) == 0);
    for (int i = 0; i < 5000 && __atomic_load_n(&n, __ATOMIC_SEQ_CST) < N; i++) usleep(1000);
    CHECK_EQ_INT(n, N);
    if (workers == 1) {
      int in_order = 1;
      for (int i = 0; i < N; i++) in_order = in_order && log[i] == i;
      CHECK(in_order);
    }
    po_pool_free(pool);
    free(jobs);
  }
}

/* Jobs that come one at a time, each before or after the idle workers have
 * stopped looking and gone to sleep, all run. */
static void wakes_a_sleeping_worker_for_a_lone_job(void) {
  po_pool *pool;
  REQUIRE(po_pool_new(2, local_free, &pool) == 0);
  int runs = 0, drops = 0, inits = 0;
  counter_job jobs[6];
  for (int i = 0; i < 6; i++) {
    jobs[i] = (counter_job){.node = {.run = count_run, .drop = count_drop}, .runs = &runs, .drops = &drops,
                            .slot_inits = &inits};
    REQUIRE(po_pool_submit(pool, &jobs[i].node) == 0);
    for (int k = 0; k < 5000 && __atomic_load_n(&runs, __ATOMIC_SEQ_CST) < i + 1; k++) usleep(100);
    CHECK_EQ_INT(__atomic_load_n(&runs, __ATOMIC_SEQ_CST), i + 1);
    usleep(i % 2 ? 10 : 5000); /* inside, then well past, the time a worker looks before sleeping */
  }
  po_pool_free(pool);
  CHECK_EQ_INT(drops, 0);
}

static void default_size_is_the_cpu_count(void) {
  po_pool *pool;
  REQUIRE(po_pool_new(0, NULL, &pool) == 0);
  CHECK_EQ_INT(po_pool_size(pool), po_cpu_count());
  CHECK_EQ_INT(po_cpu_count(), sysconf(_SC_NPROCESSORS_ONLN));
  po_pool_free(pool);
  po_pool_free(NULL);
}


/* ---- abandoning a job that runs too long ---- */

typedef struct stuck_job {
  po_pool_job node;
  int release; /* atomic: the job returns once set */
  int entered; /* atomic */
  int claimed; /* po_pool_job_claim's answer, -1 before */
  int done;    /* atomic: run returned */
} stuck_job;

static void stuck_run(void **local, void *p) {
  stuck_job *j = p;
  if (!*local) *local = malloc(1);
  __atomic_store_n(&j->entered, 1, __ATOMIC_SEQ_CST);
  while (!__atomic_load_n(&j->release, __ATOMIC_SEQ_CST)) usleep(1000);
  j->claimed = po_pool_job_claim(&j->node);
  __atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
}

static int wait_flag(int *flag) {
  for (int i = 0; i < 5000 && !__atomic_load_n(flag, __ATOMIC_SEQ_CST); i++) usleep(1000);
  return __atomic_load_n(flag, __ATOMIC_SEQ_CST);
}

static int wait_abandoned(po_pool *pool, int n) {
  for (int i = 0; i < 5000 && po_pool_abandoned(pool) != n; i++) usleep(1000);
  return po_pool_abandoned(pool);
}

/* A stuck job's worker is replaced: the other jobs still get every worker,
 * the stuck one finds it was abandoned when it returns, and its thread then
 * exits and frees its slot. */
static void abandon_replaces_the_worker(void) {
  po_pool *pool;
  REQUIRE(po_pool_new(2, local_free, &pool) == 0);
  stuck_job stuck[2] = {{.node = {.run = stuck_run}, .claimed = -1}, {.node = {.run = stuck_run}, .claimed = -1}};
  REQUIRE(po_pool_submit(pool, &stuck[0].node) == 0);
  REQUIRE(po_pool_submit(pool, &stuck[1].node) == 0);
  REQUIRE(wait_flag(&stuck[0].entered) && wait_flag(&stuck[1].entered));
  CHECK(po_pool_job_started(&stuck[0].node) > 0);
  CHECK_EQ_INT(po_pool_abandon(pool, &stuck[0].node), 0);
  CHECK_EQ_INT(po_pool_abandon(pool, &stuck[0].node), PO_ENOENT); /* once */
  CHECK_EQ_INT(po_pool_size(pool), 2);
  CHECK_EQ_INT(po_pool_abandoned(pool), 1);
  int queued = -1, running = -1;
  po_pool_counts(pool, &queued, &running);
  CHECK_EQ_INT(running, 1);

  /* Both workers but the stuck one's stand-in are busy: quick jobs run on it. */
  int runs = 0, drops = 0, inits = 0;
  counter_job quick[20];
  for (int i = 0; i < 20; i++) {
    quick[i] = (counter_job){.node = {.run = count_run, .drop = count_drop}, .runs = &runs, .drops = &drops,
                             .slot_inits = &inits};
    REQUIRE(po_pool_submit(pool, &quick[i].node) == 0);
  }
  for (int i = 0; i < 5000 && __atomic_load_n(&runs, __ATOMIC_SEQ_CST) < 20; i++) usleep(1000);
  CHECK_EQ_INT(__atomic_load_n(&runs, __ATOMIC_SEQ_CST), 20);

  /* A queued job is not running: it cannot be abandoned. */
  stuck_job queued_job = {.node = {.run = stuck_run}, .claimed = -1, .release = 1};
  stuck_job blocker = {.node = {.run = stuck_run}, .claimed = -1};
  REQUIRE(po_pool_submit(pool, &blocker.node) == 0); /* the second worker */
  REQUIRE(wait_flag(&blocker.entered));
  REQUIRE(po_pool_submit(pool, &queued_job.node) == 0);
  CHECK(po_pool_job_started(&queued_job.node) == 0);
  CHECK_EQ_INT(po_pool_abandon(pool, &queued_job.node), PO_ENOENT);

  int freed_before = __atomic_load_n(&locals_freed, __ATOMIC_SEQ_CST);
  __atomic_store_n(&stuck[0].release, 1, __ATOMIC_SEQ_CST);
  REQUIRE(wait_flag(&stuck[0].done));
  CHECK_EQ_INT(stuck[0].claimed, 0); /* abandoned: run keeps the job */
  CHECK_EQ_INT(wait_abandoned(pool, 0), 0);
  for (int i = 0; i < 5000 && __atomic_load_n(&locals_freed, __ATOMIC_SEQ_CST) == freed_before; i++) usleep(1000);
  CHECK_EQ_INT(__atomic_load_n(&locals_freed, __ATOMIC_SEQ_CST) - freed_before, 1);

  __atomic_store_n(&stuck[1].release, 1, __ATOMIC_SEQ_CST);
  __atomic_store_n(&blocker.release, 1, __ATOMIC_SEQ_CST);
  REQUIRE(wait_flag(&stuck[1].done) && wait_flag(&queued_job.done));
  CHECK_EQ_INT(stuck[1].claimed, 1);
  CHECK_EQ_INT(po_pool_abandon(pool, &stuck[1].node), PO_ENOENT); /* claimed: it is being handed back */
  po_pool_free(pool);
  CHECK_EQ_INT(drops, 0);
}

/* po_pool_free does not wait for an abandoned job; the pool's memory stays
 * until its thread has left (the sanitizer build checks the access). */
static void free_leaves_an_abandoned_job_running(void) {
  po_pool *pool;
  REQUIRE(po_pool_new(1, local_free, &pool) == 0);
  stuck_job *stuck = calloc(1, sizeof *stuck);
  *stuck = (stuck_job){.node = {.run = stuck_run}, .claimed = -1};
  REQUIRE(po_pool_submit(pool, &stuck->node) == 0);
  REQUIRE(wait_flag(&stuck->entered));
  CHECK_EQ_INT(po_pool_abandon(pool, &stuck->node), 0);
  po_pool_free(pool); /* returns although the job has not */
  CHECK(!__atomic_load_n(&stuck->done, __ATOMIC_SEQ_CST));
  __atomic_store_n(&stuck->release, 1, __ATOMIC_SEQ_CST);
  REQUIRE(wait_flag(&stuck->done));
  CHECK_EQ_INT(stuck->claimed, 0);
  free(stuck); /* done was run's last touch of it */
}


/* ---- the client ---- */

typedef struct client_job {
  po_pool_job node;
  po_pool_client *client;
  int dropped;
  int ran_on_worker; /* set by the worker, read after delivery */
} client_job;

typedef struct client_log {
  pthread_t loop_thread;
  int delivered, on_loop_thread, dropped, discarded;
} client_log;

static int client_runs; /* atomic */

static void client_run(void **local, void *p) {
  (void)local;
  client_job *j = p;
  j->ran_on_worker = 1;
  __atomic_add_fetch(&client_runs, 1, __ATOMIC_SEQ_CST);
  po_pool_client_finish(j->client, &j->node);
}

static void client_drop(void *p) {
  client_job *j = p;
  j->dropped = 1;
  po_pool_client_finish(j->client, &j->node);
}

static void on_delivered(void *ud, po_pool_job *node) {
  client_log *log = ud;
  client_job *j = (client_job *)node;
  log->delivered++;
  log->dropped += j->dropped;
  log->on_loop_thread += pthread_equal(pthread_self(), log->loop_thread) != 0;
}

static void on_discarded(void *ud, po_pool_job *node) {
  (void)node;
  ((client_log *)ud)->discarded++;
}

static client_job *client_jobs(po_pool_client *c, int n) {
  client_job *jobs = calloc((size_t)n, sizeof *jobs);
  for (int i = 0; i < n; i++) jobs[i] = (client_job){.node = {.run = client_run, .drop = client_drop}, .client = c};
  return jobs;
}

/* Runs the loop until `count` jobs have been delivered (or a bounded number
 * of turns has passed); returns the number of callbacks the loop ran. */
static int run_until_delivered(po_loop *loop, client_log *log, int count) {
  int callbacks = 0;
  for (int i = 0; i < 5000 && log->delivered < count; i++) {
    int ran = 0;
    po_loop_run_once(loop, 0.01, &ran);
    callbacks += ran;
  }
  return callbacks;
}

static void wait_idle(po_pool *pool) {
  int queued = 1, running = 1;
  for (int i = 0; i < 5000 && (queued || running); i++) {
    po_pool_counts(pool, &queued, &running);
    if (queued || running) usleep(1000);
  }
}

static void client_delivers_a_burst_on_the_loop_thread_in_one_callback(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  client_log log = {.loop_thread = pthread_self()};
  po_pool_client *c;
  REQUIRE(po_pool_client_new(loop, NULL, on_delivered, &log, &c) == 0);
  CHECK(po_pool_client_pool(c) == NULL); /* started on first use */
  CHECK(!po_loop_alive(loop));
  enum { N = 200 };
  client_job *jobs = client_jobs(c, N);
  for (int i = 0; i < N; i++) REQUIRE(po_pool_client_submit(c, &jobs[i].node) == 0);
  REQUIRE(po_pool_client_pool(c) != NULL);
  CHECK_EQ_INT(po_pool_client_in_flight(c), N);
  CHECK(po_loop_alive(loop)); /* the jobs hold the loop */
  wait_idle(po_pool_client_pool(c));
  CHECK_EQ_INT(log.delivered, 0); /* nothing is delivered off the loop */
  int ran = 0;
  REQUIRE(po_loop_run_once(loop, 1, &ran) == 0);
  CHECK_EQ_INT(ran, 1); /* every finished job in one post */
  CHECK_EQ_INT(log.delivered, N);
  CHECK_EQ_INT(log.on_loop_thread, N);
  CHECK_EQ_INT(po_pool_client_in_flight(c), 0);
  CHECK(!po_loop_alive(loop));
  po_pool_client_free(c, on_discarded);
  CHECK_EQ_INT(log.discarded, 0);
  po_loop_free(loop);
  free(jobs);
}

static void client_stages_until_a_flush_the_loop_or_a_full_chunk(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  client_log log = {.loop_thread = pthread_self()};
  po_pool_client *c;
  REQUIRE(po_pool_client_new(loop, NULL, on_delivered, &log, &c) == 0);
  enum { N = 11 + PO_POOL_STAGE_CHUNK };
  client_job *jobs = client_jobs(c, N);
  int runs_before = __atomic_load_n(&client_runs, __ATOMIC_SEQ_CST);

  /* A few staged jobs wait: no pool is even started. */
  for (int i = 0; i < 10; i++) REQUIRE(po_pool_client_stage(c, &jobs[i].node) == 0);
  CHECK(po_pool_client_pool(c) == NULL);
  CHECK_EQ_INT(po_pool_client_in_flight(c), 10);
  CHECK(po_loop_alive(loop));
  /* The loop's next turn hands them over. */
  run_until_delivered(loop, &log, 10);
  CHECK_EQ_INT(log.delivered, 10);
  CHECK_EQ_INT(__atomic_load_n(&client_runs, __ATOMIC_SEQ_CST) - runs_before, 10);

  /* A flush hands them over at once. */
  REQUIRE(po_pool_client_stage(c, &jobs[10].node) == 0);
  REQUIRE(po_pool_client_flush(c) == 0);
  wait_idle(po_pool_client_pool(c));
  CHECK_EQ_INT(__atomic_load_n(&client_runs, __ATOMIC_SEQ_CST) - runs_before, 11);
  run_until_delivered(loop, &log, 11);

  /* A full chunk goes without waiting for either. */
  po_pool_client_shutdown(c);
  CHECK(po_pool_client_pool(c) == NULL);
  for (int i = 11; i < 11 + PO_POOL_STAGE_CHUNK - 1; i++) REQUIRE(po_pool_client_stage(c, &jobs[i].node) == 0);
  CHECK(po_pool_client_pool(c) == NULL);
  REQUIRE(po_pool_client_stage(c, &jobs[11 + PO_POOL_STAGE_CHUNK - 1].node) == 0);
  REQUIRE(po_pool_client_pool(c) != NULL);
  wait_idle(po_pool_client_pool(c));
  CHECK_EQ_INT(__atomic_load_n(&client_runs, __ATOMIC_SEQ_CST) - runs_before, 11 + PO_POOL_STAGE_CHUNK);
  run_until_delivered(loop, &log, 11 + PO_POOL_STAGE_CHUNK);
  CHECK_EQ_INT(log.delivered, 11 + PO_POOL_STAGE_CHUNK);
  CHECK_EQ_INT(log.dropped, 0);
  CHECK(!po_loop_alive(loop));
  po_pool_client_free(c, on_discarded);
  po_loop_free(loop);
  free(jobs);
}

static void client_resizes_only_when_idle(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  client_log log = {.loop_thread = pthread_self()};
  po_pool_client *c;
  REQUIRE(po_pool_client_new(loop, NULL, on_delivered, &log, &c) == 0);
  REQUIRE(po_pool_client_set_workers(c, 2) == 0);
  client_job *jobs = client_jobs(c, 2);
  REQUIRE(po_pool_client_submit(c, &jobs[0].node) == 0);
  CHECK_EQ_INT(po_pool_size(po_pool_client_pool(c)), 2);
  CHECK_EQ_INT(po_pool_client_set_workers(c, 3), PO_EINVAL); /* a job is in flight */
  CHECK_EQ_INT(po_pool_client_workers(c), 2);
  run_until_delivered(loop, &log, 1);
  REQUIRE(po_pool_client_set_workers(c, 3) == 0);
  CHECK(po_pool_client_pool(c) == NULL); /* restarted at the next submit, with 3 */
  REQUIRE(po_pool_client_submit(c, &jobs[1].node) == 0);
  CHECK_EQ_INT(po_pool_size(po_pool_client_pool(c)), 3);
  run_until_delivered(loop, &log, 2);
  po_pool_client_free(c, on_discarded);
  po_loop_free(loop);
  free(jobs);
}

/* Freed with jobs queued, finished and staged: each is discarded once, none
 * delivered, and the loop is no longer held. */
static void client_free_discards_every_job_not_delivered(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  client_log log = {.loop_thread = pthread_self()};
  po_pool_client *c;
  REQUIRE(po_pool_client_new(loop, NULL, on_delivered, &log, &c) == 0);
  REQUIRE(po_pool_client_set_workers(c, 1) == 0);
  enum { N = 500, STAGED = 5 };
  client_job *jobs = client_jobs(c, N + STAGED);
  for (int i = 0; i < N; i++) REQUIRE(po_pool_client_submit(c, &jobs[i].node) == 0);
  for (int i = N; i < N + STAGED; i++) REQUIRE(po_pool_client_stage(c, &jobs[i].node) == 0);
  po_pool_client_free(c, on_discarded);
  CHECK_EQ_INT(log.delivered, 0);
  CHECK_EQ_INT(log.discarded, N + STAGED);
  po_loop_free(loop);
  free(jobs);
}

/* Shutting down drops the queued jobs; they still come back, marked. */
static void client_shutdown_delivers_dropped_jobs(void) {
  po_loop *loop;
  REQUIRE(po_loop_new(&loop) == 0);
  client_log log = {.loop_thread = pthread_self()};
  po_pool_client *c;
  REQUIRE(po_pool_client_new(loop, NULL, on_delivered, &log, &c) == 0);
  REQUIRE(po_pool_client_set_workers(c, 1) == 0);
  enum { N = 300 };
  client_job *jobs = client_jobs(c, N);
  for (int i = 0; i < N; i++) REQUIRE(po_pool_client_submit(c, &jobs[i].node) == 0);
  po_pool_client_shutdown(c);
  CHECK(po_pool_client_pool(c) == NULL);
  run_until_delivered(loop, &log, N);
  CHECK_EQ_INT(log.delivered, N);
  int ran = 0, dropped = 0;
  for (int i = 0; i < N; i++) {
    ran += jobs[i].ran_on_worker;
    dropped += jobs[i].dropped;
  }
  CHECK_EQ_INT(ran + dropped, N);
  CHECK_EQ_INT(log.dropped, dropped);
  CHECK(!po_loop_alive(loop));
  po_pool_client_free(c, on_discarded);
  CHECK_EQ_INT(log.discarded, 0);
  po_loop_free(loop);
  free(jobs);
}

int main(void) {
  RUN(runs_every_job);
  RUN(free_drops_queued_jobs_and_waits_for_running_ones);
  RUN(submit_many_queues_a_list_in_order);
  RUN(wakes_a_sleeping_worker_for_a_lone_job);
  RUN(default_size_is_the_cpu_count);
  RUN(abandon_replaces_the_worker);
  RUN(free_leaves_an_abandoned_job_running);
  RUN(client_delivers_a_burst_on_the_loop_thread_in_one_callback);
  RUN(client_stages_until_a_flush_the_loop_or_a_full_chunk);
  RUN(client_resizes_only_when_idle);
  RUN(client_free_discards_every_job_not_delivered);
  RUN(client_shutdown_delivers_dropped_jobs);
  return TEST_SUMMARY();
}
