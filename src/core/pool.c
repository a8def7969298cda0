#include "pool.h"

#include "clock.h"
#include "error.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct worker {
  po_pool *pool;
  pthread_t thread;
  int abandoned; /* (pool lock) its job was abandoned: exit when it returns */
  int retired;   /* (pool lock) started for an abandon that lost its race: exit at once */
} worker;

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
  worker **workers; /* the live workers, joined by po_pool_free */
  int size;
  int abandoned; /* abandoned threads not yet exited */
  int refs;      /* the owner's, and one per detached thread still running */
};

int po_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

static void pool_destroy(po_pool *pool) {
  pthread_cond_destroy(&pool->wake);
  pthread_mutex_destroy(&pool->lock);
  free(pool->workers);
  free(pool);
}

/* Drops one reference, under the lock (which it releases); the last frees
 * the pool. */
static void pool_unref_unlock(po_pool *pool) {
  int last = --pool->refs == 0;
  pthread_mutex_unlock(&pool->lock);
  if (last) pool_destroy(pool);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  po_pool *pool = w->pool;
  void *local = NULL;
  pthread_mutex_lock(&pool->lock);
  for (;;) {
    while (!pool->stopping && !pool->head && !w->retired) {
      pool->waiting++;
      pthread_cond_wait(&pool->wake, &pool->lock);
      if (pool->signaled > 0)
        pool->signaled--; /* the signaler counted this worker as woken */
      else
        pool->waiting--; /* a broadcast or a spurious wake-up */
    }
    if (pool->stopping || w->retired) break;
    po_pool_job *job = pool->head;
    pool->head = job->next;
    if (!pool->head) pool->tail = NULL;
    pool->queued--;
    pool->running++;
    job->worker = w;
    __atomic_store_n(&job->state, PO_POOL_JOB_RUNNING, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&pool->lock);
    po_pool_job_restart(job);
    job->run(&local, job);
    pthread_mutex_lock(&pool->lock);
    if (w->abandoned) { /* po_pool_abandon took it out of the counts */
      pool->abandoned--;
      break;
    }
    pool->running--;
  }
  int detached = w->abandoned || w->retired;
  pthread_mutex_unlock(&pool->lock);
  if (local && pool->local_free) pool->local_free(local);
  if (!detached) return NULL; /* joined by po_pool_free, which frees w */
  free(w);
  pthread_mutex_lock(&pool->lock);
  pool_unref_unlock(pool);
  return NULL;
}

/* A worker of pool, running; NULL if no thread could be started, with *rc
 * PO_ENOMEM or PO_EIO. */
static worker *worker_start(po_pool *pool, int *rc) {
  worker *w = calloc(1, sizeof *w);
  *rc = PO_ENOMEM;
  if (!w) return NULL;
  w->pool = pool;
  if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
    free(w);
    *rc = PO_EIO;
    return NULL;
  }
  return w;
}

int po_pool_new(int workers, po_pool_local_free_fn local_free, po_pool **out) {
  if (workers <= 0) workers = po_cpu_count();
  po_pool *pool = calloc(1, sizeof *pool);
  if (!pool) return PO_ENOMEM;
  pool->workers = calloc((size_t)workers, sizeof *pool->workers);
  if (!pool->workers) {
    free(pool);
    return PO_ENOMEM;
  }
  pthread_mutex_init(&pool->lock, NULL);
  pthread_cond_init(&pool->wake, NULL);
  pool->local_free = local_free;
  pool->refs = 1;
  int rc = 0;
  for (int i = 0; i < workers; i++) {
    worker *w = worker_start(pool, &rc);
    if (!w) break;
    pool->workers[pool->size++] = w;
  }
  if (pool->size == 0) {
    pool_destroy(pool);
    return rc;
  }
  *out = pool;
  return 0;
}

int po_pool_submit(po_pool *pool, po_pool_job *job) { return po_pool_submit_many(pool, job, 1); }

int po_pool_submit_many(po_pool *pool, po_pool_job *first, int count) {
  if (count <= 0) return 0;
  po_pool_job *last = first;
  for (int i = 1;; i++) {
    last->state = PO_POOL_JOB_QUEUED;
    last->started = 0;
    if (i == count) break;
    last = last->next;
  }
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

int po_pool_job_claim(po_pool_job *job) {
  int expected = PO_POOL_JOB_RUNNING;
  return __atomic_compare_exchange_n(&job->state, &expected, PO_POOL_JOB_CLAIMED, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE);
}

double po_pool_job_started(const po_pool_job *job) {
  double t;
  __atomic_load(&job->started, &t, __ATOMIC_ACQUIRE);
  return t;
}

void po_pool_job_restart(po_pool_job *job) {
  double t = po_monotonic();
  __atomic_store(&job->started, &t, __ATOMIC_RELEASE);
}

int po_pool_abandon(po_pool *pool, po_pool_job *job) {
  pthread_mutex_lock(&pool->lock);
  if (__atomic_load_n(&job->state, __ATOMIC_ACQUIRE) != PO_POOL_JOB_RUNNING) {
    pthread_mutex_unlock(&pool->lock);
    return PO_ENOENT;
  }
  /* The replacement first, so that a failure changes nothing; it waits for
   * the lock, and leaves at once if the job is claimed meanwhile. */
  int rc;
  worker *fresh = worker_start(pool, &rc);
  if (!fresh) {
    pthread_mutex_unlock(&pool->lock);
    return rc;
  }
  int expected = PO_POOL_JOB_RUNNING;
  if (!__atomic_compare_exchange_n(&job->state, &expected, PO_POOL_JOB_ABANDONED, 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    fresh->retired = 1;
    pthread_detach(fresh->thread);
    pool->refs++;
    pthread_mutex_unlock(&pool->lock);
    return PO_ENOENT;
  }
  worker *old = job->worker; /* still inside run: the job was not claimed */
  for (int i = 0; i < pool->size; i++)
    if (pool->workers[i] == old) pool->workers[i] = fresh;
  old->abandoned = 1;
  pthread_detach(old->thread);
  pool->refs++;
  pool->abandoned++;
  pool->running--;
  pthread_mutex_unlock(&pool->lock);
  return 0;
}

int po_pool_abandoned(po_pool *pool) {
  pthread_mutex_lock(&pool->lock);
  int n = pool->abandoned;
  pthread_mutex_unlock(&pool->lock);
  return n;
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
  /* workers[] changes only in po_pool_abandon, which is not called now. */
  for (int i = 0; i < pool->size; i++) {
    pthread_join(pool->workers[i]->thread, NULL);
    free(pool->workers[i]);
  }
  while (dropped) {
    po_pool_job *next = dropped->next;
    if (dropped->drop) dropped->drop(dropped);
    dropped = next;
  }
  pthread_mutex_lock(&pool->lock);
  pool_unref_unlock(pool); /* abandoned threads still running keep it */
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
  po_post delivery;                   /* queued while delivery_posted */
  po_pool_job *staged_head, *staged_tail;
  int staged;
  int flush_posted;
  int start_error; /* the code of the loop's flush that could not start the pool, or 0 */
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
  c->start_error = po_pool_client_flush(c);
  if (c->start_error == 0) return;
  /* No pool to run them, and no later flush is sure to come: the staged
   * jobs go back through their drop, as if the pool had stopped. */
  po_pool_job *list = c->staged_head;
  c->staged_head = c->staged_tail = NULL;
  c->staged = 0;
  while (list) {
    po_pool_job *job = list;
    list = job->next;
    job->drop(job);
  }
  c->start_error = 0;
}

int po_pool_client_start_error(const po_pool_client *c) { return c->start_error; }

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
  /* The client's own post: a worker has nobody to report a failure to. */
  if (post) po_loop_post_into(c->loop, &c->delivery, deliver_post, c);
}

int po_pool_client_abandon(po_pool_client *c, po_pool_job *job) {
  if (!c->pool) return PO_ENOENT;
  int rc = po_pool_abandon(c->pool, job);
  if (rc == 0) {
    po_loop_release(c->loop);
    c->in_flight--;
  }
  return rc;
}

void po_pool_client_shutdown(po_pool_client *c) {
  po_pool_free(c->pool);
  c->pool = NULL;
}

void po_pool_client_free(po_pool_client *c, po_pool_deliver_fn discard) {
  if (!c) return;
  po_pool_free(c->pool); /* joins the workers; queued jobs are dropped into the done list */
  po_loop_post_cancel(c->loop, &c->delivery); /* it lives in c */
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
