/* Pool jobs that run Lua (bind_pool.c's), and the worker states they run in.
 *
 * A job carries its function as bytecode (string.dump of a Lua function,
 * whose upvalues are recorded as module references or copied values) or as
 * a module and field name, and its arguments as copied values
 * (bind_copy.c). It is built on the submitting state, runs on a worker of
 * src/core/pool.c in that worker's own lua_State (po_runtime_new, with `po`
 * loaded; po.async tasks it leaves behind are drained before the next job),
 * and goes back through po_pool_client_finish. A job may also be C work
 * that needs no Lua state (po_lua_pool_run). */
#ifndef PO_BIND_WORKER_H
#define PO_BIND_WORKER_H

#include <lua.h>

#include "bind_loop.h"
#include "bind_pool.h"

#include "pool.h"
#include "strbuf.h"

enum { PO_JOB_BYTECODE, PO_JOB_MODULE, PO_JOB_C };

/* Arguments every job of a batch gets first, encoded once (the candidate of
 * a validation run), shared by the batch and its jobs. Counted atomically:
 * an abandoned job drops its reference on its worker's thread. */
typedef struct po_lua_shared_args {
  int refs; /* atomic */
  po_strbuf buf;
} po_lua_shared_args;

/* Drops one reference (NULL is ignored); the last frees the arguments.
 * Thread-safe. */
void po_lua_shared_args_unref(po_lua_shared_args *sa);

struct po_lua_batch;

typedef struct po_lua_job {
  po_pool_job node; /* first: the pool hands this pointer back */
  po_pool_client *client;
  po_lua_future *fut;
  int kind;
  char *code; /* bytecode, or "module\0field\0" */
  size_t code_len;
  po_strbuf upvalues; /* per upvalue: a tag, a module reference or a copied block */
  po_strbuf args, results;
  po_lua_pool_work_fn work; /* PO_JOB_C: work without Lua, its results and their release */
  po_lua_push_fn push;
  void (*release)(void *data);
  void *data;
  char *err;                 /* error message (malloc'd), or NULL */
  const char *err_code;      /* its code name */
  int canceled;              /* set on the loop's thread, read by the worker: atomic */
  int timed;                 /* results start with the seconds the function ran */
  struct po_lua_batch *b;    /* a batch's job: reported through its callback, not a future */
  int id;                    /* the job's id in its batch */
  po_lua_shared_args *shared; /* decoded before args, or NULL */
} po_lua_job;

/* A job running the function at stack index fn of L with the nargs values
 * from first as arguments, for client. Raises (freeing what it allocated)
 * naming fname when fn or a value cannot cross to a worker. */
po_lua_job *po_lua_job_new(lua_State *L, po_pool_client *client, int fn, int first, int nargs, int timed,
                           const char *fname);

/* A job running work(data) on a worker, without Lua; NULL when out of
 * memory. */
po_lua_job *po_lua_job_new_c(po_pool_client *client, po_lua_pool_work_fn work, po_lua_push_fn push,
                             void (*release)(void *data), void *data);

/* Frees the job and what it holds (calls release for C work). */
void po_lua_job_free(po_lua_job *j);

/* Pushes the job's results (po_lua_push_fn over a finished job without
 * error). */
int po_lua_job_push_results(lua_State *L, void *job);

/* True in a worker's own Lua state. */
int po_lua_in_worker(lua_State *L);

/* po.pool.pack(fn, ...) -> string: a job (fn as for po.pool.submit, its
 * upvalues, the arguments) as bytes, for another process to run. */
int po_lua_pack(lua_State *L);

/* po.pool.unpack(s) -> fn, ...: the function of a packed job (upvalues
 * rebound as in a worker) and its arguments. Raises on other bytes. */
int po_lua_unpack(lua_State *L);

/* po.pool.encode(...) -> string: plain values as bytes (bind_copy.c). */
int po_lua_encode(lua_State *L);

/* po.pool.decode(s) -> ...: the values of po.pool.encode's bytes; raises
 * on other bytes. */
int po_lua_decode(lua_State *L);

/* The pool's local_free: closes a worker's Lua state. */
void po_lua_worker_free(void *local);

#endif
