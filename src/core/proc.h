/* Child processes driven by the event loop.
 *
 * A child runs in its own process group with stdin, stdout and stderr on
 * pipes (every descriptor opened close-on-exec; descriptors 3 and up are
 * closed in the child). Its output is drained as it comes, through
 * non-blocking pipes watched by the loop, up to a limit per stream (the rest
 * is read and discarded). Its exit is seen through a pidfd (a polling timer
 * where the kernel has no pidfd_open). At the deadline the whole group gets
 * SIGTERM, and SIGKILL after a grace period, so grandchildren go too. The
 * child is always reaped.
 *
 * A command that leaves processes behind holding its output pipes after it
 * exits cannot keep a run pending: the group gets SIGTERM at that point, and
 * SIGKILL after the grace period, after which the run completes with what
 * was read. */
#ifndef PO_PROC_H
#define PO_PROC_H

#include <stddef.h>

#include "loop.h"

typedef struct po_proc po_proc;

enum po_proc_status {
  PO_PROC_RUNNING = 0,
  PO_PROC_OK,      /* exited with status 0 */
  PO_PROC_FAILED,  /* exited non-zero, or killed by a signal not sent by a deadline */
  PO_PROC_TIMEOUT, /* the deadline passed; the group was terminated */
  PO_PROC_ERROR,   /* could not be started (see error, error_what) */
};

typedef struct po_proc_opts {
  const char *const *argv; /* NULL-terminated, argv[0] searched in the parent's PATH when it has no '/' */
  const char *const *envp; /* NULL-terminated "NAME=value" list, or NULL for the parent's environment */
  const char *cwd;         /* working directory, or NULL for the parent's */
  const char *input;       /* bytes written to stdin (copied), or NULL: stdin is /dev/null */
  size_t input_len;
  double timeout;      /* seconds from the start; <= 0 means no deadline */
  double kill_grace;   /* seconds between SIGTERM and SIGKILL (clamped at 0) */
  size_t output_limit; /* bytes kept per stream; the rest is discarded */
  int pin;             /* nonzero: the child runs on CPU `cpu` only (sched_setaffinity) */
  int cpu;             /* with pin: a CPU of po_proc_cpus() */
} po_proc_opts;

typedef struct po_proc_result {
  int status;      /* enum po_proc_status */
  int exit_code;   /* the exit status, or -1 when killed by a signal or never started */
  int signal;      /* the signal that ended it, or 0 */
  const char *out; /* captured stdout (not NUL-terminated; owned by the proc) */
  size_t out_len;
  const char *err; /* captured stderr */
  size_t err_len;
  int truncated;      /* a stream passed output_limit */
  double duration;    /* seconds from start to exit */
  int pid;            /* the child's pid (= its process group), 0 if never started */
  int error;          /* PO_PROC_ERROR: the errno value */
  const char *error_what; /* PO_PROC_ERROR: what failed ("execute", "change directory to", "create a pipe") */
} po_proc_result;

/* Called once on the loop's thread when the run is complete: the child has
 * been reaped and its pipes drained (or it could not start). The callback
 * may call po_proc_free(p). */
typedef void (*po_proc_done_fn)(po_proc *p, void *ud);

/* Starts a child as o describes and hands the running process back in *out.
 * A command that cannot be started (missing, not executable, bad cwd) is not
 * an error here: the run completes with status PO_PROC_ERROR through the
 * callback, as every run does. Returns 0, PO_EINVAL (no argv) or PO_ENOMEM;
 * on failure nothing was started and the callback never runs. The caller
 * owns *out and frees it with po_proc_free after the callback. */
int po_proc_start(po_loop *loop, const po_proc_opts *o, po_proc_done_fn done, void *ud, po_proc **out);

/* Terminates the run early (a canceled run): SIGTERM to the group, SIGKILL
 * after the grace period. The callback still runs once the child is reaped.
 * Does nothing after the run is complete. */
void po_proc_terminate(po_proc *p);

/* Fills *r with the outcome; valid after the callback until po_proc_free. */
void po_proc_result_get(const po_proc *p, po_proc_result *r);

/* Frees the run. If it is still going (the owner is shutting down), the
 * group is killed with SIGKILL and the child reaped first, without the
 * callback. NULL is ignored. */
void po_proc_free(po_proc *p);

/* The CPUs this process may run on (its affinity mask), in ascending
 * order: up to cap numbers go to out, and *n is set to how many there are
 * in all. Returns 0, or PO_EIO when the mask cannot be read. */
int po_proc_cpus(int *out, int cap, int *n);

/* "SIGTERM" for SIGTERM; NULL for 0 or an unknown number. */
const char *po_signal_name(int sig);

#endif
