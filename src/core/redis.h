/* A Redis client on the event loop: hiredis's async API, driven by po_loop
 * through hiredis's adapter hooks (no event library of its own).
 *
 * The client connects, then AUTHs and SELECTs (or PINGs) before anything
 * else is sent; commands given meanwhile, and while it reconnects after the
 * connection dropped, wait in a queue of at most max_queue. It reconnects
 * by itself, at once after losing a working connection and then with a
 * doubling delay capped at backoff_max. Each command has a deadline: past
 * it the command fails PO_ETIMEDOUT and, if it was already sent, the
 * connection is dropped and re-made (its reply could still come and would
 * be taken for the next command's). Commands sent on a connection that
 * drops fail PO_ECONN: whether the server ran them is unknown.
 *
 * Only hiredis calls present in both 0.14 and 1.x are used. Every callback
 * runs from the loop (never from inside po_redis_command or
 * po_redis_close), on the loop's thread. */
#ifndef PO_REDIS_H
#define PO_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "redis_url.h"

typedef struct po_redis po_redis;

enum po_redis_type {
  PO_REDIS_NIL,
  PO_REDIS_INTEGER,
  PO_REDIS_STRING,
  PO_REDIS_STATUS, /* a simple string such as OK */
  PO_REDIS_ERROR,  /* an error reply inside an array (a top-level one fails the command) */
  PO_REDIS_ARRAY,
};

/* A reply, as a tree owned by the client: valid during the callback only. */
typedef struct po_redis_reply {
  int type;
  long long integer;                /* PO_REDIS_INTEGER */
  const char *str;                  /* STRING, STATUS, ERROR: len bytes and a NUL */
  size_t len;
  size_t n;                         /* ARRAY: number of elements */
  const struct po_redis_reply *elements;
} po_redis_reply;

/* rc 0: reply is the answer. Otherwise reply is NULL and message says why:
 * PO_EREDIS (the server's error text), PO_ETIMEDOUT, PO_ECONN,
 * PO_ECONNREFUSED (never connected), PO_EAUTH, PO_ECANCELED (closed). */
typedef void (*po_redis_reply_fn)(int rc, const po_redis_reply *reply, const char *message, void *ud);

/* After each connection attempt: rc 0 once AUTH/SELECT succeeded, else
 * PO_ECONNREFUSED, PO_ECONN, PO_ETIMEDOUT, PO_EAUTH or PO_EREDIS (SELECT
 * refused) with message (never holding the password). */
typedef void (*po_redis_connect_fn)(int rc, const char *message, void *ud);

typedef struct po_redis_opts {
  double connect_timeout;  /* seconds for connect and handshake */
  double command_timeout;  /* seconds from po_redis_command to the reply; 0: none */
  size_t max_queue;        /* commands held while not connected; past it they fail PO_ECONN */
  double backoff_min;      /* first delay between failed attempts */
  double backoff_max;      /* the cap of the doubling delay */
  po_redis_connect_fn on_connect; /* optional */
  void *ud;
} po_redis_opts;

/* Fills o with the defaults: 5 s, 10 s, 10000, 0.05 s, 2 s, no callback. */
void po_redis_opts_init(po_redis_opts *o);

/* Makes a client for url (copied) and starts connecting from the loop.
 * Returns 0, PO_EINVAL (a timeout not positive) or PO_ENOMEM. */
int po_redis_new(po_loop *loop, const po_redis_url *url, const po_redis_opts *opts, po_redis **out);

/* Sends argv (argc >= 1) or queues it until connected; cb(ud) runs once,
 * later, with the outcome. Returns 0, or PO_ECONN (not connected and the
 * queue is full), PO_ECANCELED (closed), PO_EINVAL or PO_ENOMEM, and then
 * cb never runs. */
int po_redis_command(po_redis *r, int argc, const char *const *argv, const size_t *argvlen, po_redis_reply_fn cb,
                     void *ud);

/* EVALSHA with the script's SHA-1, then EVAL when the server answers
 * NOSCRIPT. args holds the nkeys keys then the other arguments. Same
 * returns as po_redis_command. */
int po_redis_eval(po_redis *r, const char *script, size_t script_len, int nkeys, int nargs,
                  const char *const *args, const size_t *argslen, po_redis_reply_fn cb, void *ud);

/* Disconnects for good: every command not answered fails PO_ECANCELED (its
 * callback runs from the loop, soon), later commands return PO_ECANCELED.
 * Safe to call twice and from a callback. */
void po_redis_close(po_redis *r);

/* Closes and frees. Callbacks not yet run are run now, with PO_ECANCELED,
 * from inside this call (for an owner that is going away). Safe from a
 * callback: the memory goes once the loop is back. NULL is ignored. */
void po_redis_free(po_redis *r);

typedef struct po_redis_stats {
  uint64_t commands;   /* accepted by po_redis_command / po_redis_eval */
  uint64_t replies;    /* answered by the server (error replies included) */
  uint64_t errors;     /* answered with an error reply */
  uint64_t timeouts;   /* failed PO_ETIMEDOUT */
  uint64_t failed;     /* failed otherwise: connection lost, queue full, closed */
  uint64_t connects;   /* connections made (handshake done) */
  uint64_t connect_failures;
  size_t queued;       /* waiting for a connection now */
  size_t in_flight;    /* sent, not answered */
  int connected;
} po_redis_stats;

void po_redis_get_stats(const po_redis *r, po_redis_stats *out);

#endif
