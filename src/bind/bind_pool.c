/* po.pool: run Lua functions on worker threads, results as futures, or as
 * many results through one callback (po.pool.batch).
 *
 * The mechanism is src/core/pool.c: its client starts the pool, counts the
 * jobs in flight on the submitting state's loop, stages a batch's jobs and
 * brings finished ones back to the loop in bursts. What a job is, and the
 * worker states that run it, are bind_worker.c. The pool belongs to the
 * state that first submitted to it and is stopped (workers joined, their
 * states closed) when that state closes; its userdata is created after the
 * state's loop, so it is finalized first. */
#include "bind_pool.h"

#include "bind.h"
#include "bind_copy.h"
#include "bind_worker.h"

#include "error.h"
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#define POOL_TYPE "poengine.pool"

typedef po_lua_job job;
typedef struct po_lua_batch batch;

typedef struct client {
  po_pool_client *core; /* NULL only if it could not be made */
  lua_State *closing;   /* while the state closes: where undelivered futures are dropped */
} client;

static const char pool_key = 0;

/* ---- delivery, on the submitting state's loop ---- */

static void batch_deliver(job *j);

static void deliver(void *ud, po_pool_job *node) {
  (void)ud;
  job *j = (job *)node;
  if (j->b)
    batch_deliver(j);
  else if (j->err)
    po_lua_future_reject(j->fut, j->err, j->err_code);
  else if (j->kind == PO_JOB_C)
    po_lua_future_resolve(j->fut, j->push, j->data);
  else if (!j->results.data)
    po_lua_future_reject(j->fut, "po.pool: out of memory", "ENOMEM");
  else
    po_lua_future_resolve(j->fut, po_lua_job_push_results, j);
  po_lua_job_free(j);
}

/* A job the state will never see finish: its future stays pending. */
static void discard(void *ud, po_pool_job *node) {
  client *c = ud;
  job *j = (job *)node;
  if (!j->b) po_lua_future_drop(c->closing, j->fut);
  po_lua_job_free(j);
}

/* ---- the client, one per submitting state ---- */

static int pool_gc(lua_State *L) {
  client *c = luaL_checkudata(L, 1, POOL_TYPE);
  c->closing = L;
  po_pool_client_free(c->core, discard);
  c->core = NULL;
  return 0;
}

static client *state_client(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&pool_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  client *c = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (c) return c;
  po_loop *loop = po_lua_loop(L); /* the loop first: finalizers run newest first */
  static const luaL_Reg meta[] = {{"__gc", pool_gc}, {NULL, NULL}};
  po_register_type(L, POOL_TYPE, NULL, meta);
  c = lua_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  luaL_getmetatable(L, POOL_TYPE);
  lua_setmetatable(L, -2);
  if (po_pool_client_new(loop, po_lua_worker_free, deliver, c, &c->core) != 0)
    luaL_error(L, "po.pool: out of memory");
  lua_pushlightuserdata(L, (void *)&pool_key);
  lua_insert(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return c;
}

static void check_not_in_worker(lua_State *L, const char *fname) {
  if (po_lua_in_worker(L))
    luaL_error(L, "%s: not available inside a pool worker (the job would wait for the pool it occupies); run the "
                  "work directly",
               fname);
}

static void on_cancel(void *ud) {
  job *j = ud;
  __atomic_store_n(&j->canceled, 1, __ATOMIC_RELEASE);
}

static int new_future_protected(lua_State *L) {
  job *j = lua_touserdata(L, 1);
  j->fut = po_lua_future_new(L, on_cancel, j);
  return 1;
}

/* Pushes the job's future and queues the job, starting the pool if needed
 * (the job is freed on failure). */
static int enqueue(lua_State *L, client *c, job *j, const char *fname) {
  if (po_lua_in_worker(L)) {
    po_lua_job_free(j);
    check_not_in_worker(L, fname);
  }
  static const char key = 0;
  po_push_cfunction(L, &key, new_future_protected);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    po_lua_job_free(j);
    return lua_error(L);
  }
  int rc = po_pool_client_submit(c->core, &j->node);
  if (rc != 0) {
    po_lua_future_drop(L, j->fut);
    po_lua_job_free(j);
    return luaL_error(L, "%s: cannot start the worker threads: %s", fname, po_strerror(rc));
  }
  return 1;
}

/* po.pool.submit(fn, ...) -> future */
static int submit(lua_State *L, int timed) {
  check_not_in_worker(L, "po.pool.submit");
  client *c = state_client(L);
  job *j = po_lua_job_new(L, c->core, 1, 2, lua_gettop(L) - 1, timed, "po.pool.submit");
  return enqueue(L, c, j, "po.pool.submit");
}

static int l_submit(lua_State *L) { return submit(L, 0); }

/* po.pool.submit_timed(fn, ...) -> future of (seconds, results...) */
static int l_submit_timed(lua_State *L) { return submit(L, 1); }

/* ---- batches: many jobs, one callback, no future per job ----
 *
 * A batch's jobs are staged on the client and handed to the pool together
 * by b:flush() or, at the latest, when the submitting state next waits
 * (po_pool_client_stage). Each finished job calls the batch's callback
 * once, from the loop: on_result(id, seconds, ...) or on_result(id, nil,
 * message, code). While jobs are in flight the batch anchors itself in the
 * registry, so dropping it loses no result. */

#define BATCH_TYPE "poengine.pool.batch"

struct po_lua_batch {
  client *c;
  po_lua_callback *cb;
  po_lua_shared_args *shared; /* the batch's own reference, or NULL */
  job **slots;                /* by id: the job in flight, or NULL */
  int nslots;
  int in_flight;
  int self_ref; /* anchors the userdata while jobs are in flight */
  int closed;
};

static int push_batch_result(lua_State *L, void *data) {
  job *j = data;
  batch *b = j->b;
  if (b->in_flight == 0 && b->self_ref != LUA_NOREF) { /* the last one: the batch may go */
    luaL_unref(L, LUA_REGISTRYINDEX, b->self_ref);
    b->self_ref = LUA_NOREF;
  }
  lua_pushinteger(L, j->id);
  if (j->err) {
    lua_pushnil(L);
    lua_pushstring(L, j->err);
    lua_pushstring(L, j->err_code);
    return 4;
  }
  if (!j->results.data) {
    lua_pushnil(L);
    lua_pushliteral(L, "po.pool: out of memory");
    lua_pushliteral(L, "ENOMEM");
    return 4;
  }
  return 1 + po_copy_decode(L, j->results.data, j->results.len, NULL);
}

/* On the loop: reports one finished job of a batch (j is freed after). */
static void batch_deliver(job *j) {
  batch *b = j->b;
  if (j->id < b->nslots && b->slots[j->id] == j) b->slots[j->id] = NULL;
  b->in_flight--;
  if (!b->closed) po_lua_callback_call(b->cb, push_batch_result, j);
}

static batch *check_batch(lua_State *L, int idx) {
  batch *b = luaL_checkudata(L, idx, BATCH_TYPE);
  if (b->closed) luaL_error(L, "po.pool.batch: the batch is closed");
  return b;
}

/* b:submit(id, fn, ...): stages fn(shared..., ...) as job id (a whole number
 * from 1, not in flight in this batch). */
static int batch_submit(lua_State *L) {
  batch *b = check_batch(L, 1);
  client *c = b->c;
  lua_Number n = luaL_checknumber(L, 2);
  if (!(n >= 1 && n <= 1e8 && n == (lua_Number)(int)n))
    return luaL_error(L, "b:submit: id must be a whole number from 1 to 100000000");
  int id = (int)n;
  if (id < b->nslots && b->slots[id])
    return luaL_error(L, "b:submit: job %d is still in flight in this batch", id);
  if (id >= b->nslots) {
    int size = b->nslots ? b->nslots : 16;
    while (size <= id) size *= 2;
    job **slots = realloc(b->slots, (size_t)size * sizeof *slots);
    if (!slots) return luaL_error(L, "b:submit: out of memory");
    memset(slots + b->nslots, 0, (size_t)(size - b->nslots) * sizeof *slots);
    b->slots = slots;
    b->nslots = size;
  }
  job *j = po_lua_job_new(L, c->core, 3, 4, lua_gettop(L) - 3, 1, "b:submit");
  j->b = b;
  j->id = id;
  if (b->shared) {
    j->shared = b->shared;
    __atomic_add_fetch(&b->shared->refs, 1, __ATOMIC_RELAXED);
  }
  if (b->self_ref == LUA_NOREF) {
    lua_pushvalue(L, 1);
    b->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (po_pool_client_stage(c->core, &j->node) != 0) {
    po_lua_job_free(j);
    return luaL_error(L, "b:submit: out of memory");
  }
  b->slots[id] = j;
  b->in_flight++;
  return 0;
}

/* b:flush(): hands the staged jobs (of every batch of this state) to the pool now. */
static int batch_flush(lua_State *L) {
  batch *b = check_batch(L, 1);
  int rc = po_pool_client_flush(b->c->core);
  if (rc != 0) return luaL_error(L, "b:flush: cannot start the worker threads: %s", po_strerror(rc));
  return 0;
}

/* The job in flight as id in b, or NULL. */
static job *batch_job(lua_State *L, batch *b, int idx) {
  lua_Number n = luaL_checknumber(L, idx);
  int id = n >= 1 && n < b->nslots && n == (lua_Number)(int)n ? (int)n : 0;
  return id ? b->slots[id] : NULL;
}

/* b:cancel(id): a job that has not started never runs (it reports ECANCELED);
 * one running finishes. Returns true if the job was in flight. */
static int batch_cancel(lua_State *L) {
  batch *b = check_batch(L, 1);
  job *j = batch_job(L, b, 2);
  if (j) __atomic_store_n(&j->canceled, 1, __ATOMIC_RELEASE);
  lua_pushboolean(L, j != NULL);
  return 1;
}

/* b:started(id): when job id started running (po.now() seconds), or nil
 * while it is queued (or not in flight). */
static int batch_started(lua_State *L) {
  batch *b = check_batch(L, 1);
  job *j = batch_job(L, b, 2);
  double t = j ? po_pool_job_started(&j->node) : 0;
  if (t > 0)
    lua_pushnumber(L, t);
  else
    lua_pushnil(L);
  return 1;
}

/* b:abandon(id): job id, running, is left to its worker thread, which a
 * new worker replaces in the pool; the job is never reported. Returns
 * true, or false when the job is not running (queued, finishing, not in
 * flight) or no thread could be started. */
static int batch_abandon(lua_State *L) {
  batch *b = check_batch(L, 1);
  job *j = batch_job(L, b, 2);
  if (!j || po_pool_client_abandon(b->c->core, &j->node) != 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* The worker's thread owns j now and frees it if the function returns;
   * what it shares with the batch (the shared arguments) is counted. */
  b->slots[j->id] = NULL;
  b->in_flight--;
  if (b->in_flight == 0 && b->self_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, b->self_ref);
    b->self_ref = LUA_NOREF;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* b:in_flight(): jobs submitted and not yet reported. */
static int batch_in_flight(lua_State *L) {
  batch *b = luaL_checkudata(L, 1, BATCH_TYPE);
  lua_pushinteger(L, b->in_flight);
  return 1;
}

static int batch_gc(lua_State *L) {
  batch *b = luaL_checkudata(L, 1, BATCH_TYPE);
  if (b->closed) return 0;
  b->closed = 1;
  po_lua_callback_free(b->cb);
  b->cb = NULL;
  po_lua_shared_args_unref(b->shared);
  b->shared = NULL;
  free(b->slots);
  b->slots = NULL;
  b->nslots = 0;
  return 0;
}

/* po.pool.batch(on_result [, shared...]) -> batch */
static int l_batch(lua_State *L) {
  check_not_in_worker(L, "po.pool.batch");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int nshared = lua_gettop(L) - 1;
  client *c = state_client(L);
  po_lua_shared_args *sa = NULL;
  if (nshared > 0) {
    sa = calloc(1, sizeof *sa);
    if (!sa) return luaL_error(L, "po.pool.batch: out of memory");
    sa->refs = 1;
    char err[512];
    int rc = po_copy_encode(L, 2, nshared, "shared[%d]", &sa->buf, err, sizeof err);
    if (rc != 0) {
      po_lua_shared_args_unref(sa);
      return luaL_error(L, "po.pool.batch: %s", err);
    }
  }
  static const luaL_Reg methods[] = {{"submit", batch_submit},
                                     {"flush", batch_flush},
                                     {"cancel", batch_cancel},
                                     {"started", batch_started},
                                     {"abandon", batch_abandon},
                                     {"in_flight", batch_in_flight},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", batch_gc}, {NULL, NULL}};
  po_register_type(L, BATCH_TYPE, methods, meta);
  batch *b = lua_newuserdata(L, sizeof *b);
  memset(b, 0, sizeof *b);
  b->c = c;
  b->self_ref = LUA_NOREF;
  b->shared = sa;
  luaL_getmetatable(L, BATCH_TYPE);
  lua_setmetatable(L, -2); /* from here __gc frees sa, and cb once set */
  b->cb = po_lua_callback_new(L, 1);
  return 1;
}

void po_lua_pool_run(lua_State *L, const char *fname, po_lua_pool_work_fn work, po_lua_push_fn push,
                     void (*release)(void *data), void *data) {
  client *c = state_client(L);
  job *j = po_lua_job_new_c(c->core, work, push, release, data);
  if (!j) {
    release(data);
    luaL_error(L, "%s: out of memory", fname);
    return;
  }
  enqueue(L, c, j, fname);
}

/* po.pool.configure{ workers = n } */
static int l_configure(lua_State *L) {
  static const char *const opts[] = {"workers", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  po_check_options(L, 1, "po.pool.configure", opts);
  client *c = state_client(L);
  lua_getfield(L, 1, "workers");
  int size = po_pool_client_workers(c->core);
  if (!lua_isnil(L, -1)) {
    lua_Number n = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    if (!(n >= 1 && n <= 1024 && n == (lua_Number)(int)n))
      return luaL_error(L, "po.pool.configure: workers must be a whole number from 1 to 1024");
    size = (int)n;
  }
  if (po_pool_client_set_workers(c->core, size) != 0)
    return luaL_error(L, "po.pool.configure: %d job(s) in flight; resize the pool before submitting or once they "
                         "have finished",
                      po_pool_client_in_flight(c->core));
  return 0;
}

/* po.pool.shutdown(): cancels queued jobs, waits for running ones, joins. */
static int l_shutdown(lua_State *L) {
  po_pool_client_shutdown(state_client(L)->core);
  return 0;
}

static int l_stats(lua_State *L) {
  po_pool_client *c = state_client(L)->core;
  po_pool *pool = po_pool_client_pool(c);
  int queued = 0, running = 0, workers = po_pool_client_workers(c);
  if (pool) po_pool_counts(pool, &queued, &running);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, pool ? po_pool_size(pool) : (workers > 0 ? workers : po_cpu_count()));
  lua_setfield(L, -2, "workers");
  lua_pushboolean(L, pool != NULL);
  lua_setfield(L, -2, "started");
  lua_pushinteger(L, queued);
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, running);
  lua_setfield(L, -2, "running");
  lua_pushinteger(L, po_pool_client_in_flight(c));
  lua_setfield(L, -2, "in_flight");
  lua_pushinteger(L, pool ? po_pool_abandoned(pool) : 0);
  lua_setfield(L, -2, "abandoned");
  return 1;
}

static int l_in_worker(lua_State *L) {
  lua_pushboolean(L, po_lua_in_worker(L));
  return 1;
}

static int l_cpu_count(lua_State *L) {
  lua_pushinteger(L, po_cpu_count());
  return 1;
}

void po_open_pool(lua_State *L) {
  static const luaL_Reg fns[] = {{"submit", l_submit},       {"submit_timed", l_submit_timed},
                                 {"batch", l_batch},         {"configure", l_configure},
                                 {"shutdown", l_shutdown},   {"stats", l_stats},
                                 {"in_worker", l_in_worker}, {"cpu_count", l_cpu_count},
                                 {"pack", po_lua_pack},      {"unpack", po_lua_unpack},
                                 {"encode", po_lua_encode},  {"decode", po_lua_decode},
                                 {NULL, NULL}};
  lua_newtable(L);
  po_set_funcs(L, fns);
  lua_setfield(L, -2, "pool");
}
