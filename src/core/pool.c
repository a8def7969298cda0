#include "pool.h"

#include "error.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct po_pool {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  po_pool_job *head, *tail;
  int queued; /* jobs in the list */
  int running;
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
    pool->queued--;
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
  pool->queued += count;
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
  pool->stopping = 1;
  po_pool_job *dropped = pool->head;
  pool->head = pool->tail = NULL;
  pool->queued = 0;
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
