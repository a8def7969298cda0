#include "redis.h"

#include "error.h"
#include "redis_reply.h"
#include "sha1.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum where { C_NONE, C_QUEUED, C_SENT, C_DONE, C_ORPHAN };
enum state { S_IDLE, S_CONNECTING, S_READY };

typedef struct cmd cmd;
typedef struct cmd_list {
  cmd *head, *tail;
  size_t n;
} cmd_list;

struct cmd {
  po_redis *r; /* NULL once orphaned */
  cmd *prev, *next;
  int where;
  int hiredis_owns; /* hiredis holds it as a callback's privdata: freed only after that callback */
  int handshake;    /* 1: AUTH / SELECT / PING of a new connection; 2: the last of them */
  int is_auth;
  po_timer *timer;
  po_redis_reply_fn cb;
  void *ud;
  int rc; /* C_DONE: the failure to deliver */
  const char *script; /* EVALSHA's script, for the EVAL fallback */
  size_t script_len;
  int argc;
  const char **argv;
  size_t *argvlen;
};

struct po_redis {
  po_loop *loop;
  po_redis_url url;
  char endpoint[256]; /* host:port or the socket's path, for messages */
  po_redis_opts o;
  redisAsyncContext *ac;
  int fd;
  unsigned events;
  int io_lost;   /* a watcher could not be set (out of memory) */
  int state;
  int closing, freeing, busy;
  unsigned failures; /* attempts failed since the last connection */
  int drop_rc;       /* why we are dropping the connection, when we are */
  char drop_msg[512];
  po_timer *retry_timer, *connect_timer, *done_timer;
  cmd_list queue, sent, done;
  po_redis_stats st;
};

static const char EVAL_NAME[] = "EVAL";

/* ---- lists and commands ---- */

static void list_push(cmd_list *l, cmd *c) {
  c->prev = l->tail;
  c->next = NULL;
  if (l->tail)
    l->tail->next = c;
  else
    l->head = c;
  l->tail = c;
  l->n++;
}

static cmd_list *list_of(po_redis *r, cmd *c) {
  switch (c->where) {
  case C_QUEUED: return &r->queue;
  case C_SENT: return &r->sent;
  case C_DONE: return &r->done;
  default: return NULL;
  }
}

static void unlink_cmd(po_redis *r, cmd *c) {
  cmd_list *l = list_of(r, c);
  if (!l) return;
  if (c->prev)
    c->prev->next = c->next;
  else
    l->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    l->tail = c->prev;
  l->n--;
  c->prev = c->next = NULL;
  c->where = C_NONE;
}

/* One block: the cmd, argv, the lengths, the bytes, and the script. */
static cmd *cmd_new(int argc, const char *const *argv, const size_t *lens, const char *script, size_t script_len) {
  size_t bytes = sizeof(cmd) + (size_t)argc * (sizeof(char *) + sizeof(size_t)) + script_len + 1;
  for (int i = 0; i < argc; i++) bytes += lens[i] + 1;
  cmd *c = calloc(1, bytes);
  if (!c) return NULL;
  c->argc = argc;
  c->argv = (const char **)(c + 1);
  c->argvlen = (size_t *)(c->argv + argc);
  char *p = (char *)(c->argvlen + argc);
  for (int i = 0; i < argc; i++) {
    memcpy(p, argv[i], lens[i]);
    c->argv[i] = p;
    c->argvlen[i] = lens[i];
    p += lens[i] + 1;
  }
  if (script) {
    memcpy(p, script, script_len);
    c->script = p;
    c->script_len = script_len;
  }
  return c;
}

static void stop_timer(po_loop *loop, po_timer **t) {
  if (*t) po_loop_timer_stop(loop, *t);
  *t = NULL;
}

/* Frees c, or leaves it to the hiredis callback still due for it. */
static void release(cmd *c) {
  if (c->hiredis_owns) {
    c->where = C_ORPHAN;
    c->r = NULL;
    c->cb = NULL;
    return;
  }
  free(c);
}

static void count_outcome(po_redis *r, int rc) {
  if (rc == PO_ETIMEDOUT)
    r->st.timeouts++;
  else if (rc == PO_EREDIS)
    r->st.errors++;
  else if (rc)
    r->st.failed++;
}

/* Runs c's callback (c already off its list) and lets c go. */
static void deliver(po_redis *r, cmd *c, int rc, const po_redis_reply *reply, const char *msg) {
  stop_timer(r->loop, &c->timer);
  count_outcome(r, rc);
  po_redis_reply_fn cb = c->cb;
  void *ud = c->ud;
  release(c);
  if (cb) cb(rc, reply, msg, ud);
}

static void enter(po_redis *r) { r->busy++; }

static void destroy(po_redis *r) {
  stop_timer(r->loop, &r->retry_timer);
  stop_timer(r->loop, &r->connect_timer);
  stop_timer(r->loop, &r->done_timer);
  po_redis_url_free(&r->url);
  free(r);
}

static void leave(po_redis *r) {
  if (--r->busy == 0 && r->freeing) destroy(r);
}

/* ---- the adapter: hiredis's event hooks on po_loop ---- */

static void on_io(po_loop *loop, int fd, unsigned events, void *ud) {
  po_redis *r = ud;
  enter(r);
  if ((events & (PO_IO_READ | PO_IO_ERROR)) && r->ac) redisAsyncHandleRead(r->ac);
  if ((events & (PO_IO_WRITE | PO_IO_ERROR)) && r->ac) redisAsyncHandleWrite(r->ac);
  leave(r);
}

static void io_want(po_redis *r, unsigned want) {
  if (want == r->events) return;
  /* No watcher while nothing is wanted: a hang-up would wake the loop in
   * a circle with nobody reading. */
  if (!want)
    po_loop_io_stop(r->loop, r->fd);
  else if (!r->events && po_loop_io_start(r->loop, r->fd, want, on_io, r) != 0) {
    r->io_lost = 1; /* out of memory: nothing watches the socket (attempt drops it) */
    return;
  } else if (r->events)
    po_loop_io_update(r->loop, r->fd, want);
  r->events = want;
}

static void ev_add_read(void *p) { io_want(p, ((po_redis *)p)->events | PO_IO_READ); }
static void ev_del_read(void *p) { io_want(p, ((po_redis *)p)->events & ~(unsigned)PO_IO_READ); }
static void ev_add_write(void *p) { io_want(p, ((po_redis *)p)->events | PO_IO_WRITE); }
static void ev_del_write(void *p) { io_want(p, ((po_redis *)p)->events & ~(unsigned)PO_IO_WRITE); }

static void set_drop(po_redis *r, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->drop_msg, sizeof r->drop_msg, fmt, ap);
  va_end(ap);
  r->drop_rc = rc;
}

static int connect_error(const char *errstr) {
  if (errstr && (strstr(errstr, strerror(ECONNREFUSED)) || strstr(errstr, strerror(ENOENT)))) return PO_ECONNREFUSED;
  return PO_ECONN;
}

static void attempt(po_loop *loop, void *ud);

static void schedule_retry(po_redis *r, double delay) {
  stop_timer(r->loop, &r->retry_timer);
  po_loop_timer_start(r->loop, delay, attempt, r, &r->retry_timer);
}

static double backoff(po_redis *r) {
  double d = r->o.backoff_min;
  for (unsigned i = 1; i < r->failures && d < r->o.backoff_max; i++) d *= 2;
  return d < r->o.backoff_max ? d : r->o.backoff_max;
}

/* A failed attempt or a lost connection: report it and try again later. */
static void connection_failed(po_redis *r, int was_ready, int rc, const char *msg) {
  r->state = S_IDLE;
  if (r->closing) return;
  if (!was_ready) {
    r->failures++;
    r->st.connect_failures++;
  }
  schedule_retry(r, was_ready ? 0 : backoff(r));
  if (!was_ready && r->o.on_connect) r->o.on_connect(rc, msg, r->o.ud);
}

/* hiredis frees the context (any reason): commands sent on it have had
 * their callbacks already. */
static void ev_cleanup(void *p) {
  po_redis *r = p;
  redisAsyncContext *ac = r->ac;
  io_want(r, 0);
  r->ac = NULL;
  stop_timer(r->loop, &r->connect_timer);
  int rc = r->drop_rc;
  char msg[1024];
  if (rc) {
    snprintf(msg, sizeof msg, "%s", r->drop_msg);
  } else {
    rc = connect_error(ac ? ac->errstr : NULL);
    snprintf(msg, sizeof msg, "%s %s: %s", r->state == S_READY ? "lost the connection to" : "cannot connect to",
             r->endpoint, ac && ac->errstr[0] ? ac->errstr : "closed");
    if (r->state == S_READY) rc = PO_ECONN;
  }
  r->drop_rc = 0;
  connection_failed(r, r->state == S_READY, rc, msg);
}

/* Takes the hooks away from a context we let go of, so that hiredis never
 * calls back into r for it. */
static void detach(po_redis *r) {
  redisAsyncContext *ac = r->ac;
  io_want(r, 0);
  ac->ev.addRead = ac->ev.delRead = ac->ev.addWrite = ac->ev.delWrite = ac->ev.cleanup = NULL;
  ac->ev.data = NULL;
  ac->data = NULL;
  r->ac = NULL;
}

/* ---- commands on the wire ---- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static int send_cmd(po_redis *r, cmd *c) {
  if (redisAsyncCommandArgv(r->ac, on_reply, c, c->argc, c->argv, c->argvlen) != REDIS_OK) return PO_ECONN;
  c->hiredis_owns = 1;
  c->where = C_SENT;
  list_push(&r->sent, c);
  return 0;
}

static void connected(po_redis *r) {
  r->state = S_READY;
  r->failures = 0;
  r->st.connects++;
  stop_timer(r->loop, &r->connect_timer);
  while (r->queue.head && r->ac) {
    cmd *c = r->queue.head;
    unlink_cmd(r, c);
    if (send_cmd(r, c) != 0) deliver(r, c, PO_ECONN, NULL, "the connection failed while sending");
  }
  if (r->o.on_connect) r->o.on_connect(0, NULL, r->o.ud);
}

static void handshake_reply(po_redis *r, redisAsyncContext *ac, cmd *c, redisReply *reply) {
  int last = c->handshake == 2, is_auth = c->is_auth;
  release(c);
  if (!reply) return; /* the connection went: ev_cleanup reports it */
  if (reply->type == REDIS_REPLY_ERROR) {
    if (r->drop_rc) return; /* an earlier step failed already */
    int auth = is_auth || strncmp(reply->str, "NOAUTH", 6) == 0 || strncmp(reply->str, "WRONGPASS", 9) == 0;
    set_drop(r, auth ? PO_EAUTH : PO_EREDIS, "%s %s: %s", auth ? "authentication refused by" : "SELECT refused by",
             r->endpoint, reply->str);
    redisAsyncFree(ac); /* inside a callback: hiredis frees it when the callback returns */
    return;
  }
  if (last && !r->drop_rc) connected(r);
}

static int is_noscript(const redisReply *reply) {
  return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
  cmd *c = privdata;
  redisReply *reply = reply_;
  c->hiredis_owns = 0;
  if (c->where == C_ORPHAN) {
    free(c);
    return;
  }
  if (c->where != C_SENT) return; /* closed: the done list delivers it */
  po_redis *r = c->r;
  unlink_cmd(r, c);
  if (c->handshake) {
    handshake_reply(r, ac, c, reply);
    return;
  }
  if (!reply) {
    if (r->drop_rc)
      deliver(r, c, r->drop_rc == PO_ETIMEDOUT ? PO_ECONN : r->drop_rc, NULL, r->drop_msg);
    else {
      char msg[1024];
      snprintf(msg, sizeof msg, "lost the connection to %s: %s", r->endpoint, ac->errstr[0] ? ac->errstr : "closed");
      deliver(r, c, PO_ECONN, NULL, msg);
    }
    return;
  }
  r->st.replies++;
  if (c->script && is_noscript(reply) && c->argv[0] != EVAL_NAME) {
    c->argv[0] = EVAL_NAME;
    c->argvlen[0] = 4;
    c->argv[1] = c->script;
    c->argvlen[1] = c->script_len;
    if (send_cmd(r, c) != 0) deliver(r, c, PO_ECONN, NULL, "the connection failed while sending EVAL");
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    deliver(r, c, PO_EREDIS, NULL, reply->str);
    return;
  }
  po_redis_reply *tree = po_redis_reply_from_hiredis(reply);
  if (!tree)
    deliver(r, c, PO_ENOMEM, NULL, "out of memory converting a reply");
  else
    deliver(r, c, 0, tree, NULL);
  free(tree);
}

/* ---- connecting ---- */

static void on_connect_done(const redisAsyncContext *ac, int status) {
  po_redis *r = ac->data;
  if (status == REDIS_OK || !r) return;
  /* hiredis frees the context right after: ev_cleanup reports this. */
  set_drop(r, connect_error(ac->errstr), "cannot connect to %s: %s", r->endpoint, ac->errstr);
}

static void on_connect_timeout(po_loop *loop, void *ud) {
  po_redis *r = ud;
  r->connect_timer = NULL;
  if (!r->ac) return;
  enter(r);
  set_drop(r, PO_ETIMEDOUT, "cannot connect to %s: no connection within %g s", r->endpoint, r->o.connect_timeout);
  redisAsyncFree(r->ac);
  leave(r);
}

static cmd *handshake_cmd(po_redis *r, int argc, const char **argv) {
  size_t lens[3];
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  cmd *c = cmd_new(argc, argv, lens, NULL, 0);
  if (!c) return NULL;
  c->r = r;
  c->handshake = 1;
  if (send_cmd(r, c) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

static int send_handshake(po_redis *r) {
  cmd *last = NULL;
  const po_redis_url *u = &r->url;
  if (u->password) {
    const char *auth[3] = {"AUTH", u->user ? u->user : u->password, u->password};
    if (!(last = handshake_cmd(r, u->user ? 3 : 2, auth))) return -1;
    last->is_auth = 1;
  }
  if (u->db) {
    char db[16];
    snprintf(db, sizeof db, "%d", u->db);
    const char *sel[2] = {"SELECT", db};
    if (!(last = handshake_cmd(r, 2, sel))) return -1;
  }
  if (!last) {
    const char *ping[1] = {"PING"};
    if (!(last = handshake_cmd(r, 1, ping))) return -1;
  }
  last->handshake = 2;
  return 0;
}

static void attempt(po_loop *loop, void *ud) {
  po_redis *r = ud;
  r->retry_timer = NULL;
  if (r->closing || r->ac) return;
  enter(r);
  redisAsyncContext *ac = r->url.path ? redisAsyncConnectUnix(r->url.path) : redisAsyncConnect(r->url.host, r->url.port);
  char msg[1024];
  if (!ac || ac->err) {
    int rc = ac ? connect_error(ac->errstr) : PO_ENOMEM;
    snprintf(msg, sizeof msg, "cannot connect to %s: %s", r->endpoint, ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    connection_failed(r, 0, rc, msg);
    leave(r);
    return;
  }
  r->ac = ac;
  r->fd = ac->c.fd;
  r->events = 0;
  r->state = S_CONNECTING;
  ac->data = r;
  ac->ev.data = r;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  /* Setting the callback asks for the first write event, which tells that
   * connect(2) finished. */
  redisAsyncSetConnectCallback(ac, on_connect_done);
  /* Without its deadline an attempt could wait for ever: out of memory for
   * the timer fails the attempt, as for the handshake. */
  if (po_loop_timer_start(r->loop, r->o.connect_timeout, on_connect_timeout, r, &r->connect_timer) != 0 ||
      send_handshake(r) != 0 || r->io_lost) {
    r->io_lost = 0;
    set_drop(r, PO_ENOMEM, "cannot connect to %s: out of memory", r->endpoint);
    redisAsyncFree(ac);
  }
  leave(r);
}

/* ---- the API ---- */

void po_redis_opts_init(po_redis_opts *o) {
  *o = (po_redis_opts){.connect_timeout = 5, .command_timeout = 10, .max_queue = 10000, .backoff_min = 0.05,
                       .backoff_max = 2};
}

int po_redis_new(po_loop *loop, const po_redis_url *url, const po_redis_opts *opts, po_redis **out) {
  *out = NULL;
  if (!(opts->connect_timeout > 0) || opts->command_timeout < 0 || !(opts->backoff_min > 0) ||
      opts->backoff_max < opts->backoff_min)
    return PO_EINVAL;
  po_redis *r = calloc(1, sizeof *r);
  if (!r) return PO_ENOMEM;
  r->loop = loop;
  r->o = *opts;
  r->fd = -1;
  if (po_redis_url_copy(&r->url, url) != 0) {
    free(r);
    return PO_ENOMEM;
  }
  if (url->path)
    snprintf(r->endpoint, sizeof r->endpoint, "%s", url->path);
  else
    snprintf(r->endpoint, sizeof r->endpoint, strchr(url->host, ':') ? "[%s]:%d" : "%s:%d", url->host, url->port);
  if (po_loop_timer_start(loop, 0, attempt, r, &r->retry_timer) != 0) {
    po_redis_url_free(&r->url);
    free(r);
    return PO_ENOMEM;
  }
  *out = r;
  return 0;
}

static void on_cmd_timeout(po_loop *loop, void *ud) {
  cmd *c = ud;
  po_redis *r = c->r;
  c->timer = NULL;
  enter(r);
  int was_sent = c->where == C_SENT;
  unlink_cmd(r, c);
  char msg[1024];
  snprintf(msg, sizeof msg, was_sent ? "no reply from %s within %g s" : "no connection to %s within %g s",
           r->endpoint, r->o.command_timeout);
  deliver(r, c, PO_ETIMEDOUT, NULL, msg);
  if (was_sent && r->ac && !r->closing) {
    /* The reply may still come and would answer the next command. */
    set_drop(r, PO_ECONN, "connection to %s dropped: an earlier command timed out", r->endpoint);
    redisAsyncFree(r->ac);
  }
  leave(r);
}

static int submit(po_redis *r, cmd *c, po_redis_reply_fn cb, void *ud) {
  c->r = r;
  c->cb = cb;
  c->ud = ud;
  /* The deadline first: a command is not taken without it. */
  if (r->o.command_timeout > 0 &&
      po_loop_timer_start(r->loop, r->o.command_timeout, on_cmd_timeout, c, &c->timer) != 0) {
    free(c);
    return PO_ENOMEM;
  }
  int rc = 0;
  if (r->state == S_READY && r->ac) {
    rc = send_cmd(r, c);
  } else if (r->queue.n >= r->o.max_queue) {
    rc = PO_ECONN;
  } else {
    c->where = C_QUEUED;
    list_push(&r->queue, c);
    /* No attempt under way nor due: the retry timer could not be set (out
     * of memory). Try again now rather than never. */
    if (!r->ac && !r->retry_timer && !r->closing) schedule_retry(r, 0);
  }
  if (rc) {
    stop_timer(r->loop, &c->timer);
    free(c);
    return rc;
  }
  r->st.commands++;
  return 0;
}

int po_redis_command(po_redis *r, int argc, const char *const *argv, const size_t *argvlen, po_redis_reply_fn cb,
                     void *ud) {
  if (r->closing) return PO_ECANCELED;
  if (argc < 1) return PO_EINVAL;
  cmd *c = cmd_new(argc, argv, argvlen, NULL, 0);
  if (!c) return PO_ENOMEM;
  return submit(r, c, cb, ud);
}

int po_redis_eval(po_redis *r, const char *script, size_t script_len, int nkeys, int nargs,
                  const char *const *args, const size_t *argslen, po_redis_reply_fn cb, void *ud) {
  if (r->closing) return PO_ECANCELED;
  if (nkeys < 0 || nkeys > nargs) return PO_EINVAL;
  const char **argv = malloc((size_t)(nargs + 3) * (sizeof *argv + sizeof(size_t)));
  if (!argv) return PO_ENOMEM;
  size_t *lens = (size_t *)(argv + nargs + 3);
  char sha[41], n[16];
  po_sha1_hex(script, script_len, sha);
  snprintf(n, sizeof n, "%d", nkeys);
  argv[0] = "EVALSHA";
  argv[1] = sha;
  argv[2] = n;
  for (int i = 0; i < 3; i++) lens[i] = strlen(argv[i]);
  for (int i = 0; i < nargs; i++) {
    argv[i + 3] = args[i];
    lens[i + 3] = argslen[i];
  }
  cmd *c = cmd_new(nargs + 3, argv, lens, script, script_len);
  free(argv);
  if (!c) return PO_ENOMEM;
  return submit(r, c, cb, ud);
}

static void deliver_done(po_loop *loop, void *ud) {
  po_redis *r = ud;
  r->done_timer = NULL;
  enter(r);
  while (r->done.head) {
    cmd *c = r->done.head;
    unlink_cmd(r, c);
    deliver(r, c, c->rc, NULL, "the Redis client was closed");
  }
  leave(r);
}

static void cancel_list(po_redis *r, cmd_list *l) {
  while (l->head) {
    cmd *c = l->head;
    unlink_cmd(r, c);
    stop_timer(r->loop, &c->timer);
    if (c->handshake) {
      release(c);
      continue;
    }
    c->rc = PO_ECANCELED;
    c->where = C_DONE;
    list_push(&r->done, c);
  }
}

void po_redis_close(po_redis *r) {
  if (r->closing) return;
  r->closing = 1;
  stop_timer(r->loop, &r->retry_timer);
  stop_timer(r->loop, &r->connect_timer);
  cancel_list(r, &r->queue);
  cancel_list(r, &r->sent);
  r->state = S_IDLE;
  if (r->ac) {
    redisAsyncContext *ac = r->ac;
    detach(r);
    redisAsyncFree(ac); /* from inside one of its callbacks: when that returns */
  }
  if (r->done.head && !r->done_timer) po_loop_timer_start(r->loop, 0, deliver_done, r, &r->done_timer);
}

void po_redis_free(po_redis *r) {
  if (!r || r->freeing) return;
  po_redis_close(r);
  stop_timer(r->loop, &r->done_timer);
  enter(r);
  r->freeing = 1;
  while (r->done.head) {
    cmd *c = r->done.head;
    unlink_cmd(r, c);
    deliver(r, c, c->rc, NULL, "the Redis client was closed");
  }
  leave(r);
}

void po_redis_get_stats(const po_redis *r, po_redis_stats *out) {
  *out = r->st;
  out->queued = r->queue.n;
  out->in_flight = 0;
  for (const cmd *c = r->sent.head; c; c = c->next) out->in_flight += !c->handshake;
  out->connected = r->state == S_READY;
}
