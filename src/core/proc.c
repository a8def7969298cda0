#include "proc.h"

#include "clock.h"
#include "error.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define READ_CHUNK ((size_t)65536)
/* Bytes read from one stream per callback, so one chatty child cannot keep
 * the loop from its other sources. The watcher is level-triggered: the rest
 * is read on the next turn. */
#define READ_BUDGET ((size_t)1 << 20)
/* After SIGKILL, how long the run waits for pipes that processes outside
 * the group still hold open. */
#define LINGER_SECONDS 0.25
/* Reaping without a pidfd: the polling interval starts here and doubles. */
#define POLL_FIRST 0.001
#define POLL_MAX 0.05

typedef struct stream {
  int fd; /* -1 once closed */
  po_strbuf buf;
} stream;

struct po_proc {
  po_loop *loop;
  po_proc_done_fn done;
  void *ud;

  pid_t pid;
  int pidfd; /* -1: not used (closed, or the polling fallback) */
  stream out, err;
  int in_fd;
  char *input;
  size_t input_len, input_off;

  size_t limit;
  double grace;
  po_timer *deadline_timer, *grace_timer, *linger_timer, *poll_timer, *error_timer;
  double poll_interval;

  double started, ended;
  int reaped, wstatus, status_lost;
  int timed_out, term_sent, kill_sent;
  int finished, truncated;
  int error;
  const char *error_what;
};

/* ---- small helpers ---- */

static void close_fd(po_proc *p, int *fd, int watched) {
  if (*fd < 0) return;
  if (watched) po_loop_io_stop(p->loop, *fd);
  close(*fd);
  *fd = -1;
}

static void stop_timer(po_proc *p, po_timer **t) {
  if (*t) {
    po_loop_timer_stop(p->loop, *t);
    *t = NULL;
  }
}

static void stop_timers(po_proc *p) {
  stop_timer(p, &p->deadline_timer);
  stop_timer(p, &p->grace_timer);
  stop_timer(p, &p->linger_timer);
  stop_timer(p, &p->poll_timer);
  stop_timer(p, &p->error_timer);
}

/* Pipes land on descriptors 3 and up, so that the child's dup2 onto 0-2
 * never meets one of them already sitting there. */
static int move_high(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int saved = errno;
  close(fd);
  errno = saved;
  return high;
}

static int cloexec_pipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  fds[0] = move_high(fds[0]);
  fds[1] = move_high(fds[1]);
  if (fds[0] < 0 || fds[1] < 0) {
    int saved = errno;
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
    errno = saved;
    return -1;
  }
  return 0;
}

static void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* write() that turns a closed reader into EPIPE without raising SIGPIPE in
 * the process: the signal is blocked in this thread for the call and a
 * SIGPIPE it caused is consumed. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t n) {
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigpending(&pending);
  int was_pending = sigismember(&pending, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t w = write(fd, buf, n);
  int saved = errno;
  if (w < 0 && saved == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return w;
}

/* ---- finishing ---- */

static int streams_done(const po_proc *p) { return p->out.fd < 0 && p->err.fd < 0; }

static void finish(po_proc *p) {
  if (p->finished) return;
  p->finished = 1;
  stop_timers(p);
  close_fd(p, &p->in_fd, 1);
  close_fd(p, &p->out.fd, 1);
  close_fd(p, &p->err.fd, 1);
  p->done(p, p->ud);
}

static void maybe_finish(po_proc *p) {
  if (!p->finished && p->reaped && streams_done(p)) finish(p);
}

static void on_linger(po_loop *loop, void *ud) {
  po_proc *p = ud;
  p->linger_timer = NULL;
  finish(p);
}

static void on_grace(po_loop *loop, void *ud);

/* SIGTERM to the group now, SIGKILL after the grace period. */
static void terminate_group(po_proc *p) {
  if (p->term_sent || p->pid <= 0) return;
  p->term_sent = 1;
  kill(-p->pid, SIGTERM);
  if (po_loop_timer_start(p->loop, p->grace, on_grace, p, &p->grace_timer) != 0) on_grace(p->loop, p);
}

/* The leader is gone but its pipes are still open: someone it left behind
 * holds them. Stop them, and once SIGKILL has gone out, wait only a moment
 * for processes outside the group. */
static void settle_leftovers(po_proc *p) {
  if (!p->reaped || streams_done(p) || p->finished) return;
  if (!p->term_sent) {
    terminate_group(p);
  } else if (p->kill_sent && !p->linger_timer) {
    if (po_loop_timer_start(p->loop, LINGER_SECONDS, on_linger, p, &p->linger_timer) != 0) finish(p);
  }
}

static void on_grace(po_loop *loop, void *ud) {
  po_proc *p = ud;
  p->grace_timer = NULL;
  p->kill_sent = 1;
  kill(-p->pid, SIGKILL);
  settle_leftovers(p);
}

/* ---- output ---- */

static void drain(po_proc *p, stream *s) {
  size_t budget = READ_BUDGET;
  char scratch[4096];
  while (s->fd >= 0 && budget > 0) {
    char *dst = scratch;
    size_t room = sizeof scratch;
    if (s->buf.len < p->limit) {
      size_t want = p->limit - s->buf.len;
      if (want > READ_CHUNK) want = READ_CHUNK;
      if (po_strbuf_grow(&s->buf, want) == 0) {
        dst = s->buf.data + s->buf.len;
        room = want;
      }
    }
    ssize_t n = read(s->fd, dst, room);
    if (n > 0) {
      if (dst == scratch)
        p->truncated = 1;
      else
        s->buf.len += (size_t)n;
      budget -= (size_t)n < budget ? (size_t)n : budget;
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      close_fd(p, &s->fd, 1); /* end of file, or a read error ends the stream */
    } else if (errno == EAGAIN) {
      break;
    }
  }
}

static void on_stream(po_loop *loop, int fd, unsigned events, void *ud) {
  po_proc *p = ud;
  drain(p, fd == p->out.fd ? &p->out : &p->err);
  maybe_finish(p);
}

static void on_stdin(po_loop *loop, int fd, unsigned events, void *ud) {
  po_proc *p = ud;
  while (p->input_off < p->input_len) {
    size_t n = p->input_len - p->input_off;
    if (n > READ_CHUNK) n = READ_CHUNK;
    ssize_t w = write_nosigpipe(p->in_fd, p->input + p->input_off, n);
    if (w > 0) {
      p->input_off += (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && errno == EAGAIN) {
      return;
    } else {
      break; /* EPIPE: the child does not read its input */
    }
  }
  close_fd(p, &p->in_fd, 1);
}

/* ---- exit ---- */

/* Returns 1 when the child was reaped: p may have been freed by then (the
 * callback may free it). */
static int reap(po_proc *p) {
  int st = 0;
  pid_t r;
  do {
    r = waitpid(p->pid, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  p->reaped = 1;
  p->ended = po_monotonic();
  if (r > 0)
    p->wstatus = st;
  else
    p->status_lost = 1; /* reaped by someone else (a wait(-1) elsewhere in the process) */
  close_fd(p, &p->pidfd, 1);
  stop_timer(p, &p->poll_timer);
  close_fd(p, &p->in_fd, 1);
  drain(p, &p->out);
  drain(p, &p->err);
  settle_leftovers(p);
  maybe_finish(p);
  return 1;
}

static void on_pidfd(po_loop *loop, int fd, unsigned events, void *ud) { reap(ud); }

static void on_poll(po_loop *loop, void *ud) {
  po_proc *p = ud;
  p->poll_timer = NULL;
  if (reap(p)) return;
  p->poll_interval = p->poll_interval * 2 > POLL_MAX ? POLL_MAX : p->poll_interval * 2;
  if (po_loop_timer_start(loop, p->poll_interval, on_poll, p, &p->poll_timer) != 0) {
    /* Without a timer nothing would ever reap the child: wait for it here. */
    kill(-p->pid, SIGKILL);
    while (waitpid(p->pid, &p->wstatus, 0) < 0 && errno == EINTR) {
    }
    p->reaped = 1;
    p->ended = po_monotonic();
    finish(p);
  }
}

static void on_deadline(po_loop *loop, void *ud) {
  po_proc *p = ud;
  p->deadline_timer = NULL;
  if (p->reaped) return; /* it exited in time; only leftovers are holding the pipes */
  p->timed_out = 1;
  terminate_group(p);
}

static void on_error_timer(po_loop *loop, void *ud) {
  po_proc *p = ud;
  p->error_timer = NULL;
  finish(p);
}

/* ---- starting ---- */

static int pidfd_open_(pid_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

/* Spawns the child. Returns 0 (p->error set when it could not start) or
 * PO_ENOMEM. */
static int spawn(po_proc *p, const po_proc_opts *o) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  if ((o->input && cloexec_pipe(in) != 0) || cloexec_pipe(out) != 0 || cloexec_pipe(err) != 0) {
    p->error = errno;
    p->error_what = "create a pipe";
    goto close_all;
  }

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  if (posix_spawn_file_actions_init(&fa) != 0) goto nomem;
  if (posix_spawnattr_init(&attr) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    goto nomem;
  }
  int rc = 0;
  if (o->input)
    rc |= posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  else
    rc |= posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  rc |= posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  rc |= posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  if (o->cwd) rc |= posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
  /* Descriptors opened by others without close-on-exec do not leak either. */
  rc |= posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  rc |= posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  rc |= posix_spawnattr_setpgroup(&attr, 0);
  rc |= posix_spawnattr_setsigmask(&attr, &none);
  rc |= posix_spawnattr_setsigdefault(&attr, &defaults);
  if (rc != 0) {
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    goto nomem;
  }

  /* posix_spawn has no affinity attribute, and a child starts with its
   * creator's CPU mask: the calling thread takes the one-CPU mask for the
   * spawn and gets its own back right after, so the child is pinned from
   * its first instruction. */
  cpu_set_t saved;
  int pinned = 0;
  if (o->pin) {
    cpu_set_t one;
    CPU_ZERO(&one);
    if (o->cpu < 0 || o->cpu >= CPU_SETSIZE) {
      errno = EINVAL;
    } else if (sched_getaffinity(0, sizeof saved, &saved) == 0) {
      CPU_SET(o->cpu, &one);
      pinned = sched_setaffinity(0, sizeof one, &one) == 0;
    }
    if (!pinned) {
      p->error = errno;
      p->error_what = "pin to the CPU";
      posix_spawn_file_actions_destroy(&fa);
      posix_spawnattr_destroy(&attr);
      goto close_all;
    }
  }
  char *const *argv = (char *const *)o->argv;
  char *const *envp = o->envp ? (char *const *)o->envp : environ;
  pid_t pid = 0;
  if (strchr(o->argv[0], '/'))
    rc = posix_spawn(&pid, o->argv[0], &fa, &attr, argv, envp);
  else
    rc = posix_spawnp(&pid, o->argv[0], &fa, &attr, argv, envp);
  if (pinned) sched_setaffinity(0, sizeof saved, &saved);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    /* posix_spawn gives one errno for the whole start: tell a bad working
     * directory from a bad command. */
    struct stat st;
    p->error = rc;
    p->error_what = "execute";
    if (o->cwd && stat(o->cwd, &st) != 0) {
      p->error = errno;
      p->error_what = "change directory to";
    } else if (o->cwd && !S_ISDIR(st.st_mode)) {
      p->error = ENOTDIR;
      p->error_what = "change directory to";
    }
    goto close_all;
  }
  p->pid = pid;
  if (in[0] >= 0) close(in[0]);
  close(out[1]);
  close(err[1]);
  p->in_fd = in[1];
  p->out.fd = out[0];
  p->err.fd = err[0];
  if (p->in_fd >= 0) set_nonblocking(p->in_fd);
  set_nonblocking(p->out.fd);
  set_nonblocking(p->err.fd);
  return 0;

nomem:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0) close(in[i]);
    if (out[i] >= 0) close(out[i]);
    if (err[i] >= 0) close(err[i]);
  }
  return PO_ENOMEM;
close_all:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0) close(in[i]);
    if (out[i] >= 0) close(out[i]);
    if (err[i] >= 0) close(err[i]);
  }
  return 0;
}

/* Registers the watchers and timers of a started child. */
static int watch(po_proc *p, double timeout) {
  int rc = 0;
  p->pidfd = pidfd_open_(p->pid);
  if (p->pidfd >= 0) {
    p->pidfd = move_high(p->pidfd);
    if (p->pidfd >= 0) rc = po_loop_io_start(p->loop, p->pidfd, PO_IO_READ, on_pidfd, p);
  }
  if (rc == 0 && p->pidfd < 0) {
    /* No pidfd (a kernel before 5.3): poll with waitpid(WNOHANG), backing
     * off to every 50 ms. No SIGCHLD handler: that would take the signal
     * from whoever else in the process relies on it. */
    p->poll_interval = POLL_FIRST;
    rc = po_loop_timer_start(p->loop, p->poll_interval, on_poll, p, &p->poll_timer);
  }
  if (rc == 0) rc = po_loop_io_start(p->loop, p->out.fd, PO_IO_READ, on_stream, p);
  if (rc == 0) rc = po_loop_io_start(p->loop, p->err.fd, PO_IO_READ, on_stream, p);
  if (rc == 0 && p->in_fd >= 0) {
    if (p->input_len > 0)
      rc = po_loop_io_start(p->loop, p->in_fd, PO_IO_WRITE, on_stdin, p);
    else
      close_fd(p, &p->in_fd, 0);
  }
  if (rc == 0 && timeout > 0) rc = po_loop_timer_start(p->loop, timeout, on_deadline, p, &p->deadline_timer);
  return rc;
}

int po_proc_start(po_loop *loop, const po_proc_opts *o, po_proc_done_fn done, void *ud, po_proc **out) {
  if (!loop || !o || !o->argv || !o->argv[0] || !done || !out) return PO_EINVAL;
  po_proc *p = calloc(1, sizeof *p);
  if (!p) return PO_ENOMEM;
  p->loop = loop;
  p->done = done;
  p->ud = ud;
  p->pidfd = p->in_fd = p->out.fd = p->err.fd = -1;
  p->limit = o->output_limit;
  p->grace = o->kill_grace > 0 ? o->kill_grace : 0;
  if (o->input) {
    p->input = malloc(o->input_len ? o->input_len : 1);
    if (!p->input) {
      free(p);
      return PO_ENOMEM;
    }
    memcpy(p->input, o->input, o->input_len);
    p->input_len = o->input_len;
  }
  p->started = po_monotonic();
  int rc = spawn(p, o);
  if (rc == 0 && p->error) {
    rc = po_loop_timer_start(loop, 0, on_error_timer, p, &p->error_timer);
  } else if (rc == 0) {
    rc = watch(p, o->timeout);
  }
  if (rc != 0) {
    p->finished = 1; /* the callback never runs for a run that failed to start */
    po_proc_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

void po_proc_terminate(po_proc *p) {
  if (!p || p->finished || p->error) return;
  close_fd(p, &p->in_fd, 1);
  terminate_group(p);
}

void po_proc_result_get(const po_proc *p, po_proc_result *r) {
  *r = (po_proc_result){.exit_code = -1};
  r->pid = p->pid;
  r->out = p->out.buf.data;
  r->out_len = p->out.buf.len;
  r->err = p->err.buf.data;
  r->err_len = p->err.buf.len;
  r->truncated = p->truncated;
  if (!p->finished) {
    r->status = PO_PROC_RUNNING;
    return;
  }
  if (p->error) {
    r->status = PO_PROC_ERROR;
    r->error = p->error;
    r->error_what = p->error_what;
    return;
  }
  r->duration = p->ended - p->started;
  if (!p->status_lost && WIFEXITED(p->wstatus)) r->exit_code = WEXITSTATUS(p->wstatus);
  if (!p->status_lost && WIFSIGNALED(p->wstatus)) r->signal = WTERMSIG(p->wstatus);
  if (p->timed_out)
    r->status = PO_PROC_TIMEOUT;
  else if (r->exit_code == 0)
    r->status = PO_PROC_OK;
  else
    r->status = PO_PROC_FAILED;
}

void po_proc_free(po_proc *p) {
  if (!p) return;
  if (p->pid > 0 && !p->reaped) {
    kill(-p->pid, SIGKILL);
    while (waitpid(p->pid, &p->wstatus, 0) < 0 && errno == EINTR) {
    }
  }
  stop_timers(p);
  close_fd(p, &p->pidfd, 1);
  close_fd(p, &p->in_fd, 1);
  close_fd(p, &p->out.fd, 1);
  close_fd(p, &p->err.fd, 1);
  po_strbuf_free(&p->out.buf);
  po_strbuf_free(&p->err.buf);
  free(p->input);
  free(p);
}

int po_proc_cpus(int *out, int cap, int *n) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return PO_EIO;
  int count = 0;
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (!CPU_ISSET(c, &set)) continue;
    if (count < cap) out[count] = c;
    count++;
  }
  *n = count;
  return 0;
}

const char *po_signal_name(int sig) {
  static const char *const names[] = {
      [SIGHUP] = "SIGHUP",   [SIGINT] = "SIGINT",     [SIGQUIT] = "SIGQUIT",   [SIGILL] = "SIGILL",
      [SIGTRAP] = "SIGTRAP", [SIGABRT] = "SIGABRT",   [SIGBUS] = "SIGBUS",     [SIGFPE] = "SIGFPE",
      [SIGKILL] = "SIGKILL", [SIGUSR1] = "SIGUSR1",   [SIGSEGV] = "SIGSEGV",   [SIGUSR2] = "SIGUSR2",
      [SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM",   [SIGTERM] = "SIGTERM",   [SIGCHLD] = "SIGCHLD",
      [SIGCONT] = "SIGCONT", [SIGSTOP] = "SIGSTOP",   [SIGTSTP] = "SIGTSTP",   [SIGTTIN] = "SIGTTIN",
      [SIGTTOU] = "SIGTTOU", [SIGURG] = "SIGURG",     [SIGXCPU] = "SIGXCPU",   [SIGXFSZ] = "SIGXFSZ",
      [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF", [SIGWINCH] = "SIGWINCH", [SIGIO] = "SIGIO",
      [SIGPWR] = "SIGPWR",   [SIGSYS] = "SIGSYS",
  };
  if (sig <= 0 || (size_t)sig >= sizeof names / sizeof names[0]) return NULL;
  return names[sig];
}
