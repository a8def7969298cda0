/* A pool of worker threads taking jobs from one FIFO queue.
 *
 * The pool knows nothing of what a job does: a job is a po_pool_job that the
 * caller embeds (first member) in its own struct, with the function to run on
 * a worker thread and the function to call instead if the job never runs.
 * Each worker has one private slot (`local`, NULL at first) for state it
 * keeps between jobs (the Lua binding keeps a lua_State there), freed by the
 * local_free hook on the worker's own thread when the pool stops. */
#ifndef PO_POOL_H
#define PO_POOL_H

typedef struct po_pool po_pool;

/* Runs on a worker thread. local is that worker's slot. */
typedef void (*po_pool_run_fn)(void **local, void *job);
/* Called instead of run for a job still queued when the pool is freed, on
 * the thread calling po_pool_free. */
typedef void (*po_pool_drop_fn)(void *job);
/* Frees a worker's slot, on the worker's thread as it exits. */
typedef void (*po_pool_local_free_fn)(void *local);

typedef struct po_pool_job {
  struct po_pool_job *next; /* the pool's */
  po_pool_run_fn run;
  po_pool_drop_fn drop;
} po_pool_job;

/* Starts `workers` threads (<= 0: one per online CPU) in *out. local_free may
 * be NULL. Returns 0, PO_ENOMEM, or PO_EIO when no thread could be started
 * (if only some could, the pool runs with those). */
int po_pool_new(int workers, po_pool_local_free_fn local_free, po_pool **out);

/* Queues job (whose run and drop the caller has set; drop may be NULL).
 * Thread-safe. Returns 0, or PO_ECANCELED once the pool is being freed. The
 * job belongs to the pool until run or drop is called with it. */
int po_pool_submit(po_pool *pool, po_pool_job *job);

/* Queues the count jobs of the list first -> next -> ... (linked through
 * their `next`, the last one's next ignored), in that order, under one lock,
 * and wakes at most as many sleeping workers as the jobs need: a burst of
 * small jobs costs one hand-over instead of one per job. Thread-safe.
 * Returns 0, or PO_ECANCELED (no job queued) once the pool is being freed. */
int po_pool_submit_many(po_pool *pool, po_pool_job *first, int count);

/* The number of worker threads running. */
int po_pool_size(const po_pool *pool);

/* Jobs waiting in the queue and jobs running now (a snapshot). */
void po_pool_counts(po_pool *pool, int *queued, int *running);

/* Stops the pool: jobs still queued are dropped (their drop is called),
 * running jobs finish, the workers free their slots and are joined. Must
 * not be called from a worker. NULL is ignored. */
void po_pool_free(po_pool *pool);

/* The number of online CPUs (at least 1). */
int po_cpu_count(void);

#endif
