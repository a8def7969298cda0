#include "pool.h"

#include "clock.h"
#include "error.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

/* How long a worker that ran out of jobs keeps looking for the next one
 * before it sleeps. A submitter sending small jobs one after another (a
 * few microseconds apart) then hands them to an awake worker instead of
 * paying a futex wake-up and two context switches per job. One worker
 * spins at a time, yielding its CPU while it does (on a machine with fewer
 * cores than threads, the submitter may need it). */
#define SPIN_SECONDS 50e-6

struct po_pool {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  po_pool_job *head, *tail;
  int queued; /* written under lock, read without it by the spinning worker: atomic */
  int running;
  int spinning; /* a worker is looking for jobs before it sleeps */
  int waiting;  /* workers blocked on `wake` that no submit has signaled yet */
  int signaled; /* signals sent and not yet taken by a waking worker */
  int stopping;
  po_pool_local_free_fn local_free;
  pthread_t *threads;
  int size;
};

int po_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

static void *worker_main(void *arg) {
  po_pool *pool = arg;
  void *local = NULL;
  pthread_mutex_lock(&pool->lock);
  for (;;) {
    if (!pool->stopping && !pool->head && !pool->spinning) {
      pool->spinning = 1;
      pthread_mutex_unlock(&pool->lock);
      double until = po_monotonic() + SPIN_SECONDS;
      while (!__atomic_load_n(&pool->queued, __ATOMIC_ACQUIRE) && !__atomic_load_n(&pool->stopping, __ATOMIC_ACQUIRE) &&
             po_monotonic() < until)
        sched_yield();
      pthread_mutex_lock(&pool->lock);
      pool->spinning = 0;
    }
    while (!pool->stopping && !pool->head) {
      pool->waiting++;
      pthread_cond_wait(&pool->wake, &pool->lock);
      if (pool->signaled > 0)
        pool->signaled--; /* the signaler counted this worker as woken */
      else
        pool->waiting--; /* a broadcast or a spurious wake-up */
    }
    if (pool->stopping) break;
    po_pool_job *job = pool->head;
    pool->head = job->next;
    if (!pool->head) pool->tail = NULL;
    __atomic_store_n(&pool->queued, pool->queued - 1, __ATOMIC_RELEASE);
    pool->running++;
    pthread_mutex_unlock(&pool->lock);
    job->run(&local, job);
    pthread_mutex_lock(&pool->lock);
    pool->running--;
  }
  pthread_mutex_unlock(&pool->lock);
  if (local && pool->local_free) pool->local_free(local);
  return NULL;
}

int po_pool_new(int workers, po_pool_local_free_fn local_free, po_pool **out) {
  if (workers <= 0) workers = po_cpu_count();
  po_pool *pool = calloc(1, sizeof *pool);
  if (!pool) return PO_ENOMEM;
  pool->threads = calloc((size_t)workers, sizeof *pool->threads);
  if (!pool->threads) {
    free(pool);
    return PO_ENOMEM;
  }
  pthread_mutex_init(&pool->lock, NULL);
  pthread_cond_init(&pool->wake, NULL);
  pool->local_free = local_free;
  for (int i = 0; i < workers; i++) {
    if (pthread_create(&pool->threads[pool->size], NULL, worker_main, pool) != 0) break;
    pool->size++;
  }
  if (pool->size == 0) {
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
    return PO_EIO;
  }
  *out = pool;
  return 0;
}

int po_pool_submit(po_pool *pool, po_pool_job *job) { return po_pool_submit_many(pool, job, 1); }

int po_pool_submit_many(po_pool *pool, po_pool_job *first, int count) {
  if (count <= 0) return 0;
  po_pool_job *last = first;
  for (int i = 1; i < count; i++) last = last->next;
  last->next = NULL;
  pthread_mutex_lock(&pool->lock);
  if (pool->stopping) {
    pthread_mutex_unlock(&pool->lock);
    return PO_ECANCELED;
  }
  if (pool->tail)
    pool->tail->next = first;
  else
    pool->head = first;
  pool->tail = last;
  __atomic_store_n(&pool->queued, pool->queued + count, __ATOMIC_RELEASE);
  /* Wake sleeping workers only while the workers already awake and not
   * running a job are fewer than the jobs queued: a burst of small jobs
   * then costs a few wake-ups, not one per job. */
  int awake_free = pool->size - pool->running - pool->waiting;
  int wake = pool->queued - awake_free;
  if (wake > pool->waiting) wake = pool->waiting;
  if (wake < 0) wake = 0;
  pool->waiting -= wake;
  pool->signaled += wake;
  pthread_mutex_unlock(&pool->lock);
  for (int i = 0; i < wake; i++) pthread_cond_signal(&pool->wake);
  return 0;
}

int po_pool_size(const po_pool *pool) { return pool->size; }

void po_pool_counts(po_pool *pool, int *queued, int *running) {
  pthread_mutex_lock(&pool->lock);
  if (queued) *queued = pool->queued;
  if (running) *running = pool->running;
  pthread_mutex_unlock(&pool->lock);
}

void po_pool_free(po_pool *pool) {
  if (!pool) return;
  pthread_mutex_lock(&pool->lock);
  __atomic_store_n(&pool->stopping, 1, __ATOMIC_RELEASE);
  po_pool_job *dropped = pool->head;
  pool->head = pool->tail = NULL;
  __atomic_store_n(&pool->queued, 0, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&pool->lock);
  pthread_cond_broadcast(&pool->wake);
  for (int i = 0; i < pool->size; i++) pthread_join(pool->threads[i], NULL);
  while (dropped) {
    po_pool_job *next = dropped->next;
    if (dropped->drop) dropped->drop(dropped);
    dropped = next;
  }
  pthread_cond_destroy(&pool->wake);
  pthread_mutex_destroy(&pool->lock);
  free(pool->threads);
  free(pool);
}
