#include "loop.h"

#include "clock.h"
#include "error.h"
#include "heap.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct po_timer {
  size_t heap_index;
  po_timer_cb cb;
  void *ud;
};

typedef struct io_watch {
  po_io_cb cb;
  void *ud;
  unsigned events;
  int active;
} io_watch;

struct po_loop {
  int epfd;
  int wakefd;
  po_loop *live_prev, *live_next; /* on live_loops, guarded by live_lock */

  po_heap timers;     /* on the deadline, then the start order (so equal deadlines run FIFO) */
  uint64_t timer_seq; /* the next start order */

  io_watch *watches; /* indexed by fd */
  int watches_cap;
  int watch_count;

  pthread_mutex_t post_lock;
  po_post *post_head, *post_tail;
  po_post *running; /* the rest of the batch run_posts is running (post_lock) */
  int post_count; /* guarded by post_lock */
  int holds;      /* atomic */
};

/* ---- timers ---- */

int po_loop_timer_start(po_loop *loop, double delay, po_timer_cb cb, void *ud, po_timer **out) {
  if (!loop || !cb || isnan(delay)) return PO_EINVAL;
  if (po_heap_reserve(&loop->timers)) return PO_ENOMEM;
  po_timer *t = malloc(sizeof *t);
  if (!t) return PO_ENOMEM;
  t->cb = cb;
  t->ud = ud;
  po_heap_push(&loop->timers, po_monotonic() + (delay > 0 ? delay : 0), loop->timer_seq++, t);
  if (out) *out = t;
  return 0;
}

void po_loop_timer_stop(po_loop *loop, po_timer *t) {
  if (!loop || !t) return;
  po_heap_remove(&loop->timers, t->heap_index);
  free(t);
}

double po_loop_next_timer(po_loop *loop) {
  const po_heap_node *first = po_heap_top(&loop->timers);
  if (!first) return -1;
  double left = first->key - po_monotonic();
  return left > 0 ? left : 0;
}

/* ---- fd watchers ---- */

static uint32_t epoll_mask(unsigned events) {
  uint32_t mask = 0;
  if (events & PO_IO_READ) mask |= EPOLLIN;
  if (events & PO_IO_WRITE) mask |= EPOLLOUT;
  return mask;
}

int po_loop_io_start(po_loop *loop, int fd, unsigned events, po_io_cb cb, void *ud) {
  if (!loop || fd < 0 || !cb) return PO_EINVAL;
  if (fd >= loop->watches_cap) {
    int cap = loop->watches_cap ? loop->watches_cap : 64;
    while (cap <= fd) cap *= 2;
    io_watch *w = realloc(loop->watches, (size_t)cap * sizeof *w);
    if (!w) return PO_ENOMEM;
    for (int i = loop->watches_cap; i < cap; i++) w[i] = (io_watch){0};
    loop->watches = w;
    loop->watches_cap = cap;
  }
  io_watch *w = &loop->watches[fd];
  if (w->active) return PO_EINVAL;
  struct epoll_event ev = {.events = epoll_mask(events), .data.fd = fd};
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return PO_EIO;
  *w = (io_watch){.cb = cb, .ud = ud, .events = events, .active = 1};
  loop->watch_count++;
  return 0;
}

int po_loop_io_update(po_loop *loop, int fd, unsigned events) {
  if (!loop || fd < 0 || fd >= loop->watches_cap || !loop->watches[fd].active) return PO_ENOENT;
  struct epoll_event ev = {.events = epoll_mask(events), .data.fd = fd};
  if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) != 0) return PO_EIO;
  loop->watches[fd].events = events;
  return 0;
}

int po_loop_io_stop(po_loop *loop, int fd) {
  if (!loop || fd < 0 || fd >= loop->watches_cap || !loop->watches[fd].active) return PO_ENOENT;
  epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
  loop->watches[fd].active = 0;
  loop->watch_count--;
  return 0;
}

/* ---- posts from other threads ---- */

static void post_queue(po_loop *loop, po_post *item, po_post_cb cb, void *ud, int allocated) {
  *item = (po_post){.cb = cb, .ud = ud, .allocated = allocated};
  pthread_mutex_lock(&loop->post_lock);
  if (loop->post_tail)
    loop->post_tail->next = item;
  else
    loop->post_head = item;
  loop->post_tail = item;
  loop->post_count++;
  pthread_mutex_unlock(&loop->post_lock);
  uint64_t one = 1;
  /* The counter only saturates after 2^64-2 unread posts; a failed write can
   * only mean EAGAIN at that bound, and the loop is awake then anyway. */
  ssize_t n = write(loop->wakefd, &one, sizeof one);
  (void)n;
}

int po_loop_post(po_loop *loop, po_post_cb cb, void *ud) {
  po_post *item = malloc(sizeof *item);
  if (!item) return PO_ENOMEM;
  post_queue(loop, item, cb, ud, 1);
  return 0;
}

void po_loop_post_into(po_loop *loop, po_post *post, po_post_cb cb, void *ud) { post_queue(loop, post, cb, ud, 0); }

void po_loop_post_cancel(po_loop *loop, po_post *post) {
  pthread_mutex_lock(&loop->post_lock);
  po_post *prev = NULL;
  for (po_post *item = loop->post_head; item; prev = item, item = item->next) {
    if (item != post) continue;
    if (prev)
      prev->next = item->next;
    else
      loop->post_head = item->next;
    if (loop->post_tail == item) loop->post_tail = prev;
    loop->post_count--;
    break;
  }
  /* A callback of the batch being run may cancel a post later in it. */
  for (po_post **at = &loop->running; *at; at = &(*at)->next) {
    if (*at != post) continue;
    *at = post->next;
    break;
  }
  pthread_mutex_unlock(&loop->post_lock);
}

void po_loop_hold(po_loop *loop) { __atomic_add_fetch(&loop->holds, 1, __ATOMIC_SEQ_CST); }

void po_loop_release(po_loop *loop) { __atomic_sub_fetch(&loop->holds, 1, __ATOMIC_SEQ_CST); }

static int run_posts(po_loop *loop) {
  uint64_t count;
  ssize_t n = read(loop->wakefd, &count, sizeof count);
  (void)n;
  pthread_mutex_lock(&loop->post_lock);
  loop->running = loop->post_head;
  loop->post_head = loop->post_tail = NULL;
  loop->post_count = 0;
  int ran = 0;
  /* One at a time off loop->running, so that po_loop_post_cancel from a
   * callback can still take out a post of this batch. */
  for (po_post *item; (item = loop->running) != NULL;) {
    loop->running = item->next;
    pthread_mutex_unlock(&loop->post_lock);
    po_post_cb cb = item->cb;
    void *ud = item->ud;
    if (item->allocated) free(item); /* the poster's own may be posted again from cb on */
    cb(loop, ud);
    ran++;
    pthread_mutex_lock(&loop->post_lock);
  }
  pthread_mutex_unlock(&loop->post_lock);
  return ran;
}

int po_loop_alive(po_loop *loop) {
  pthread_mutex_lock(&loop->post_lock);
  int posts = loop->post_count;
  pthread_mutex_unlock(&loop->post_lock);
  return loop->timers.len > 0 || loop->watch_count > 0 || posts > 0 ||
         __atomic_load_n(&loop->holds, __ATOMIC_SEQ_CST) > 0;
}

/* ---- running ---- */

static int run_due_timers(po_loop *loop) {
  double now = po_monotonic();
  /* Timers started by these callbacks wait for the next turn, even with a
   * zero delay, so a callback that restarts itself cannot starve the loop. */
  uint64_t seq_limit = loop->timer_seq;
  int ran = 0;
  const po_heap_node *first;
  while ((first = po_heap_top(&loop->timers))) {
    if (first->key > now || first->tie >= seq_limit) break;
    po_timer *t = first->item;
    po_heap_remove(&loop->timers, 0);
    po_timer_cb cb = t->cb;
    void *ud = t->ud;
    free(t);
    cb(loop, ud);
    ran++;
  }
  return ran;
}

static int timeout_ms(double seconds) {
  if (seconds < 0) return -1;
  /* Round up: waking before a deadline would only spin back into epoll. */
  double ms = ceil(seconds * 1000.0);
  return ms > 2147483647.0 ? 2147483647 : (int)ms;
}

int po_loop_run_once(po_loop *loop, double timeout, int *ran_out) {
  double wait = timeout;
  double next = po_loop_next_timer(loop);
  if (next >= 0 && (wait < 0 || next < wait)) wait = next;
  if (wait < 0 && !po_loop_alive(loop)) wait = 0;

  enum { MAX_EVENTS = 64 };
  struct epoll_event events[MAX_EVENTS];
  int n;
  do {
    n = epoll_wait(loop->epfd, events, MAX_EVENTS, timeout_ms(wait));
  } while (n < 0 && errno == EINTR && (wait = 0, 1));
  if (n < 0) return PO_EIO;

  int ran = 0;
  for (int i = 0; i < n; i++) {
    int fd = events[i].data.fd;
    if (fd == loop->wakefd) {
      ran += run_posts(loop);
      continue;
    }
    if (fd >= loop->watches_cap || !loop->watches[fd].active) continue; /* stopped by an earlier callback */
    unsigned got = 0;
    if (events[i].events & EPOLLIN) got |= PO_IO_READ;
    if (events[i].events & EPOLLOUT) got |= PO_IO_WRITE;
    if (events[i].events & (EPOLLERR | EPOLLHUP)) got |= PO_IO_ERROR;
    io_watch w = loop->watches[fd];
    w.cb(loop, fd, got, w.ud);
    ran++;
  }
  ran += run_due_timers(loop);
  if (ran_out) *ran_out = ran;
  return 0;
}

/* Every loop not yet freed. A loop belongs to a Lua state, whose memory
 * (LuaJIT's own allocator) no leak checker reads; a pool worker abandoned
 * at a timeout keeps running with its state, and so its loop, until the
 * process exits. Kept here, such a loop stays reachable, and LeakSanitizer
 * reports only loops really lost: dropped without po_loop_free. */
static po_loop *live_loops;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;

static void live_add(po_loop *loop) {
  pthread_mutex_lock(&live_lock);
  loop->live_next = live_loops;
  if (live_loops) live_loops->live_prev = loop;
  live_loops = loop;
  pthread_mutex_unlock(&live_lock);
}

static void live_remove(po_loop *loop) {
  pthread_mutex_lock(&live_lock);
  if (loop->live_prev) loop->live_prev->live_next = loop->live_next;
  else live_loops = loop->live_next;
  if (loop->live_next) loop->live_next->live_prev = loop->live_prev;
  pthread_mutex_unlock(&live_lock);
}

int po_loop_new(po_loop **out) {
  po_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return PO_ENOMEM;
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = loop->wakefd};
  if (loop->epfd < 0 || loop->wakefd < 0 || epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) != 0) {
    if (loop->epfd >= 0) close(loop->epfd);
    if (loop->wakefd >= 0) close(loop->wakefd);
    free(loop);
    return PO_EIO;
  }
  po_heap_init(&loop->timers, offsetof(po_timer, heap_index));
  pthread_mutex_init(&loop->post_lock, NULL);
  live_add(loop);
  *out = loop;
  return 0;
}

void po_loop_free(po_loop *loop) {
  if (!loop) return;
  live_remove(loop);
  for (size_t i = 0; i < loop->timers.len; i++) free(loop->timers.nodes[i].item);
  po_heap_free(&loop->timers);
  free(loop->watches);
  for (po_post *item = loop->post_head; item;) {
    po_post *next = item->next;
    if (item->allocated) free(item);
    item = next;
  }
  pthread_mutex_destroy(&loop->post_lock);
  close(loop->epfd);
  close(loop->wakefd);
  free(loop);
}
