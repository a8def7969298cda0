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

/* ---- the client ---- */

struct po_pool_client {
  po_loop *loop;
  po_pool *pool; /* NULL until the first submit, and after shutdown */
  int workers;
  po_pool_local_free_fn local_free;
  po_pool_deliver_fn deliver;
  void *ud;
  int in_flight; /* submitted or staged, not yet delivered */
  pthread_mutex_t lock;
  po_pool_job *done_head, *done_tail; /* finished, not yet delivered (lock) */
  int delivery_posted;                /* (lock) */
  po_pool_job *staged_head, *staged_tail;
  int staged;
  int flush_posted;
};

int po_pool_client_new(po_loop *loop, po_pool_local_free_fn local_free, po_pool_deliver_fn deliver, void *ud,
                       po_pool_client **out) {
  po_pool_client *c = calloc(1, sizeof *c);
  if (!c) return PO_ENOMEM;
  c->loop = loop;
  c->local_free = local_free;
  c->deliver = deliver;
  c->ud = ud;
  pthread_mutex_init(&c->lock, NULL);
  *out = c;
  return 0;
}

int po_pool_client_set_workers(po_pool_client *c, int workers) {
  if (workers < 0) workers = 0;
  if (workers != c->workers && c->pool) {
    if (c->in_flight > 0) return PO_EINVAL;
    po_pool_free(c->pool);
    c->pool = NULL;
  }
  c->workers = workers;
  return 0;
}

int po_pool_client_workers(const po_pool_client *c) { return c->workers; }

po_pool *po_pool_client_pool(po_pool_client *c) { return c->pool; }

int po_pool_client_in_flight(const po_pool_client *c) { return c->in_flight; }

static int client_start(po_pool_client *c) {
  return c->pool ? 0 : po_pool_new(c->workers, c->local_free, &c->pool);
}

int po_pool_client_submit(po_pool_client *c, po_pool_job *job) {
  int rc = client_start(c);
  if (rc != 0) return rc;
  po_loop_hold(c->loop);
  c->in_flight++;
  po_pool_submit(c->pool, job); /* cannot fail: only po_pool_free stops it, on this thread */
  return 0;
}

static void flush_post(po_loop *loop, void *ud) {
  (void)loop;
  po_pool_client *c = ud;
  c->flush_posted = 0;
  po_pool_client_flush(c); /* on failure they wait for the next flush */
}

int po_pool_client_stage(po_pool_client *c, po_pool_job *job) {
  if (!c->flush_posted) {
    if (po_loop_post(c->loop, flush_post, c) != 0) return PO_ENOMEM;
    c->flush_posted = 1;
  }
  job->next = NULL;
  if (c->staged_tail)
    c->staged_tail->next = job;
  else
    c->staged_head = job;
  c->staged_tail = job;
  c->staged++;
  po_loop_hold(c->loop);
  c->in_flight++;
  /* A long burst goes over in chunks, so the workers start while the rest
   * is being staged. */
  if (c->staged >= PO_POOL_STAGE_CHUNK) po_pool_client_flush(c); /* on failure, the next flush retries */
  return 0;
}

int po_pool_client_flush(po_pool_client *c) {
  if (!c->staged) return 0;
  int rc = client_start(c);
  if (rc != 0) return rc;
  po_pool_job *first = c->staged_head;
  int count = c->staged;
  c->staged_head = c->staged_tail = NULL;
  c->staged = 0;
  po_pool_submit_many(c->pool, first, count); /* cannot fail: only po_pool_free stops it, on this thread */
  return 0;
}

static void deliver_post(po_loop *loop, void *ud) {
  po_pool_client *c = ud;
  pthread_mutex_lock(&c->lock);
  po_pool_job *list = c->done_head;
  c->done_head = c->done_tail = NULL;
  c->delivery_posted = 0;
  pthread_mutex_unlock(&c->lock);
  while (list) {
    po_pool_job *job = list;
    list = job->next;
    po_loop_release(loop);
    c->in_flight--;
    c->deliver(c->ud, job);
  }
}

void po_pool_client_finish(po_pool_client *c, po_pool_job *job) {
  pthread_mutex_lock(&c->lock);
  job->next = NULL;
  if (c->done_tail)
    c->done_tail->next = job;
  else
    c->done_head = job;
  c->done_tail = job;
  int post = !c->delivery_posted;
  c->delivery_posted = 1;
  pthread_mutex_unlock(&c->lock);
  /* On ENOMEM the job waits in the list for the next successful post. */
  if (post && po_loop_post(c->loop, deliver_post, c) != 0) {
    pthread_mutex_lock(&c->lock);
    c->delivery_posted = 0;
    pthread_mutex_unlock(&c->lock);
  }
}

void po_pool_client_shutdown(po_pool_client *c) {
  po_pool_free(c->pool);
  c->pool = NULL;
}

void po_pool_client_free(po_pool_client *c, po_pool_deliver_fn discard) {
  if (!c) return;
  po_pool_free(c->pool); /* joins the workers; queued jobs are dropped into the done list */
  po_pool_job *list = c->done_head;
  c->done_head = c->done_tail = NULL;
  if (c->staged_tail) { /* jobs never handed over go too */
    c->staged_tail->next = list;
    list = c->staged_head;
  }
  while (list) {
    po_pool_job *job = list;
    list = job->next;
    po_loop_release(c->loop);
    discard(c->ud, job);
  }
  pthread_mutex_destroy(&c->lock);
  free(c);
}
