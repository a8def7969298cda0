/* A pool of worker threads taking jobs from one FIFO queue.
 *
 * The pool knows nothing of what a job does: a job is a po_pool_job that the
 * caller embeds (first member) in its own struct, with the function to run on
 * a worker thread and the function to call instead if the job never runs.
 * Each worker has one private slot (`local`, NULL at first) for state it
 * keeps between jobs (the Lua binding keeps a lua_State there), freed by the
 * local_free hook on the worker's own thread when the pool stops.
 *
 * A job that runs too long can be abandoned (po_pool_abandon): a new worker
 * takes its worker's place, so the pool never shrinks, and the old thread is
 * left to finish the job on its own and then exit; it is never joined (a
 * thread cannot be stopped safely), so one that never returns keeps its core
 * busy until the process ends, which does not wait for it. */
#ifndef PO_POOL_H
#define PO_POOL_H

#include "loop.h"

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
  /* the pool's, set when the job is queued and taken: */
  int state;      /* PO_POOL_JOB_* (atomic) */
  double started; /* po_monotonic() when a worker took it, 0 before (atomic) */
  void *worker;
} po_pool_job;

enum { PO_POOL_JOB_QUEUED, PO_POOL_JOB_RUNNING, PO_POOL_JOB_CLAIMED, PO_POOL_JOB_ABANDONED };

/* Called by a job's run (on its worker) before it hands the job back to
 * its submitter, when the job may be abandoned. Returns 1: the job is
 * still run's to hand back; or 0: it was abandoned, nobody waits for it
 * any more, and run must free it (touching nothing of the submitter's).
 * A job whose run never calls it must not be abandoned. */
int po_pool_job_claim(po_pool_job *job);

/* When a worker took the job (po_monotonic() seconds), or 0 while it is
 * queued. Thread-safe; job must still be the caller's to read. */
double po_pool_job_started(const po_pool_job *job);

/* For run: moves the job's start to now, after setup that should not count
 * as the job's time (a worker creating its state on first use). */
void po_pool_job_restart(po_pool_job *job);

/* Starts `workers` threads (<= 0: one per online CPU) in *out. local_free may
 * be NULL. Returns 0 (if only some workers could be started, the pool runs
 * with those), or, when not one could, PO_ENOMEM or PO_EIO (no thread). */
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

/* Abandons job, which a worker is running: a new worker (with an empty
 * slot) takes that worker's place, and the job becomes its run's (see
 * po_pool_job_claim); the old thread exits when run returns, freeing its
 * slot. Must not be called from a worker. Returns 0; PO_ENOENT when the
 * job is not running (still queued, or already claimed: it is being handed
 * back); PO_ENOMEM or PO_EIO (no thread) when no new worker could be
 * started (nothing changes). */
int po_pool_abandon(po_pool *pool, po_pool_job *job);

/* Abandoned workers whose job has not returned yet (a snapshot). */
int po_pool_abandoned(po_pool *pool);

/* Stops the pool: jobs still queued are dropped (their drop is called),
 * running jobs finish, the workers free their slots and are joined
 * (abandoned ones are not waited for). Must
 * not be called from a worker. NULL is ignored. */
void po_pool_free(po_pool *pool);

/* The number of online CPUs (at least 1). */
int po_cpu_count(void);

/* ---- A client: the pool as one event loop's thread uses it ----
 *
 * A client starts its pool on first use, counts the jobs in flight (holding
 * the loop once per job, so that the loop knows something is pending), and
 * brings finished jobs back to the loop's thread: a worker hands a finished
 * job to po_pool_client_finish, which appends it to a locked list and posts
 * one delivery for the whole list, so a burst of results costs one loop
 * wake-up, not one per job. Jobs may also be staged and handed to the pool
 * together (po_pool_submit_many), at the latest when the loop next runs.
 * Every function but po_pool_client_finish runs on the loop's thread.
 * A client's jobs need a drop that hands the job back with
 * po_pool_client_finish: staged jobs are dropped too when the loop's flush
 * cannot start the pool (nothing else is sure to flush them later). */

typedef struct po_pool_client po_pool_client;

/* Called on the loop's thread, once per finished job (in the order they
 * finished), from the delivery post; the job is the callee's from then on. */
typedef void (*po_pool_deliver_fn)(void *ud, po_pool_job *job);

/* Staged jobs handed over at once, without waiting for a flush. */
#define PO_POOL_STAGE_CHUNK 64

/* A client of loop in *out, its pool not started yet (local_free is the
 * pool's, see po_pool_new). Returns 0 or PO_ENOMEM. */
int po_pool_client_new(po_loop *loop, po_pool_local_free_fn local_free, po_pool_deliver_fn deliver, void *ud,
                       po_pool_client **out);

/* Sets the number of workers (<= 0: one per online CPU) of the pool the
 * client starts. A pool already running with another size is stopped (to be
 * restarted at the next submit) when no job is in flight; otherwise returns
 * PO_EINVAL and nothing changes. Returns 0 on success. */
int po_pool_client_set_workers(po_pool_client *c, int workers);

/* The configured number of workers (0: one per online CPU). */
int po_pool_client_workers(const po_pool_client *c);

/* The running pool, or NULL before the first submit and after shutdown. */
po_pool *po_pool_client_pool(po_pool_client *c);

/* Jobs submitted or staged and not yet delivered. */
int po_pool_client_in_flight(const po_pool_client *c);

/* Queues job on the pool, starting the pool if needed. Returns 0, or the
 * code of po_pool_new (the job is then still the caller's). */
int po_pool_client_submit(po_pool_client *c, po_pool_job *job);

/* Stages job: it goes to the pool with the other staged jobs at the next
 * po_pool_client_flush, when PO_POOL_STAGE_CHUNK are staged, or when the
 * loop next runs, whichever comes first (that flush drops them if it cannot
 * start the pool). Returns 0, or PO_ENOMEM (the job is still the caller's). */
int po_pool_client_stage(po_pool_client *c, po_pool_job *job);

/* Hands the staged jobs to the pool now, starting it if needed. Returns 0,
 * or the code of po_pool_new (the jobs stay staged for the next flush). */
int po_pool_client_flush(po_pool_client *c);

/* In a job's drop, on the loop's thread: the code (PO_ENOMEM, PO_EIO) of
 * the failed start of the pool for which the staged jobs are being
 * dropped, or 0 when the drop is a pool being stopped. */
int po_pool_client_start_error(const po_pool_client *c);

/* From any thread: hands a finished job back to the client's loop, where
 * deliver gets it. The job's `next` is the client's from here. */
void po_pool_client_finish(po_pool_client *c, po_pool_job *job);

/* po_pool_abandon on the client's pool; on success the job no longer
 * counts as in flight and will not be delivered. Returns as
 * po_pool_abandon, or PO_ENOENT when no pool runs. */
int po_pool_client_abandon(po_pool_client *c, po_pool_job *job);

/* Stops the pool (po_pool_free: queued jobs are dropped, their drop called
 * here); the next submit starts a new one. Staged jobs stay staged. */
void po_pool_client_shutdown(po_pool_client *c);

/* Stops the pool, then hands every job not delivered (finished, dropped or
 * staged) to discard(ud, job) instead of deliver, and frees the client.
 * Deliveries and flushes it posted are left queued: call it only when the
 * loop will not run again (it is being freed) or has run them. NULL is
 * ignored. */
void po_pool_client_free(po_pool_client *c, po_pool_deliver_fn discard);

#endif
