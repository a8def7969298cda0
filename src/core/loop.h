/* The event loop: one reactor per thread that waits (epoll).
 *
 * Sources plug in three ways: file descriptors (sockets, pidfds), timers
 * (deadlines kept in a heap and folded into epoll's timeout) and posts, the
 * one thread-safe entry point, with which another thread hands the loop a
 * callback to run on the loop's thread (worker-pool completions). Callbacks
 * always run inside po_loop_run_once(), on the thread that called it. */
#ifndef PO_LOOP_H
#define PO_LOOP_H

typedef struct po_loop po_loop;
typedef struct po_timer po_timer;

typedef void (*po_timer_cb)(po_loop *loop, void *ud);
typedef void (*po_io_cb)(po_loop *loop, int fd, unsigned events, void *ud);
typedef void (*po_post_cb)(po_loop *loop, void *ud);

enum po_io_events {
  PO_IO_READ = 1,
  PO_IO_WRITE = 2,
  PO_IO_ERROR = 4, /* reported to callbacks only: hang-up or error on the fd */
};

/* Creates a loop in *out. Returns 0, PO_ENOMEM or PO_EIO. */
int po_loop_new(po_loop **out);

/* Frees the loop. Pending timers are dropped without their callbacks running,
 * and so are queued posts. No other thread may post to it any more. */
void po_loop_free(po_loop *loop);

/* Calls cb(loop, ud) once, delay seconds from now (clamped at 0). Timers with
 * the same deadline run in the order they were started. *out (optional)
 * identifies the timer for po_loop_timer_stop until its callback starts. */
int po_loop_timer_start(po_loop *loop, double delay, po_timer_cb cb, void *ud, po_timer **out);

/* Stops a timer that has not fired yet and frees it. */
void po_loop_timer_stop(po_loop *loop, po_timer *timer);

/* Watches fd for events (PO_IO_READ | PO_IO_WRITE); cb runs while the fd is
 * ready (level-triggered). One watcher per fd: PO_EINVAL if fd is watched. */
int po_loop_io_start(po_loop *loop, int fd, unsigned events, po_io_cb cb, void *ud);

/* Changes the events a watched fd waits for. */
int po_loop_io_update(po_loop *loop, int fd, unsigned events);

/* Stops watching fd (before the caller closes it). PO_ENOENT if not watched. */
int po_loop_io_stop(po_loop *loop, int fd);

/* Thread-safe: queues cb(loop, ud) to run on the loop's thread and wakes the
 * loop if it is waiting. Returns 0 or PO_ENOMEM. */
int po_loop_post(po_loop *loop, po_post_cb cb, void *ud);

/* A post in memory its poster owns, for a poster that has at most one
 * queued at a time: posting it cannot fail. The fields are the loop's. */
typedef struct po_post {
  struct po_post *next;
  po_post_cb cb;
  void *ud;
  int allocated; /* by po_loop_post, freed by the loop */
} po_post;

/* Thread-safe: po_loop_post with the caller's post, which must not be
 * queued already; it is the caller's again once cb has started (or the
 * loop is freed). */
void po_loop_post_into(po_loop *loop, po_post *post, po_post_cb cb, void *ud);

/* Thread-safe: takes post out of the queue if it is there (its poster is
 * going away before the loop has run it), also from a callback of the
 * batch the loop is running. */
void po_loop_post_cancel(po_loop *loop, po_post *post);

/* Thread-safe: counts work in flight elsewhere (a job on another thread) so
 * that po_loop_alive() reports it. Each hold is matched by one release. */
void po_loop_hold(po_loop *loop);
void po_loop_release(po_loop *loop);

/* Non-zero while anything can still make a callback run: pending timers,
 * watched fds, holds or queued posts. */
int po_loop_alive(po_loop *loop);

/* Seconds until the next timer is due (0 if one is overdue), or -1 if none. */
double po_loop_next_timer(po_loop *loop);

/* Waits at most timeout seconds (negative: no limit) for something to happen,
 * then runs every ready callback: fd events, posts, due timers. Returns 0 or
 * PO_EIO; *ran (optional) gets the number of callbacks run. Returns at once
 * when nothing is alive and timeout is negative. Callbacks may start and stop
 * sources, and may call po_loop_run_once again (nested waits). */
int po_loop_run_once(po_loop *loop, double timeout, int *ran);

#endif
