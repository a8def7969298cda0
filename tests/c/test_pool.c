/* Tests for src/core/pool.c: jobs on real threads, per-worker slots,
 * dropping queued jobs when the pool stops. */
#include "error.h"
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

int main(void) {
  RUN(runs_every_job);
  RUN(free_drops_queued_jobs_and_waits_for_running_ones);
  RUN(submit_many_queues_a_list_in_order);
  RUN(wakes_a_sleeping_worker_for_a_lone_job);
  RUN(default_size_is_the_cpu_count);
  return TEST_SUMMARY();
}
