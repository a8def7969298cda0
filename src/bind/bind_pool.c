/* po.pool: run Lua functions on worker threads (src/core/pool.c), each worker
 * with its own lua_State (po_runtime_new, with `po` loaded), results as
 * futures.
 *
 * A job carries its function as bytecode (string.dump of a function without
 * upvalues) or as a module and field name, and its arguments as copied
 * values (bind_copy.c). Finished jobs go to a list that the submitting
 * state's loop drains from one posted callback per batch; po_loop_hold and
 * po_loop_release count the jobs in flight, so waits know something is
 * pending. The pool belongs to the state that first submitted to it and is
 * stopped (workers joined, their states closed) when that state closes; its
 * userdata is created after the state's loop, so it is finalized first. */
#include "bind_pool.h"

#include "bind.h"
#include "bind_copy.h"
#include "runtime.h"

#include "clock.h"
#include "error.h"
#include "pool.h"
#include "strbuf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define POOL_TYPE "poengine.pool"
/* Functions a worker keeps loaded, by bytecode; the cache is emptied when
 * it grows past this many. */
#define WORKER_CACHE_MAX 256

enum { FN_BYTECODE, FN_MODULE, FN_C };
enum { UP_NIL = 'n', UP_REF = 'r', UP_VALUE = 'v' };

typedef struct client client;
typedef struct batch batch;

/* Arguments every job of a batch gets first, encoded once (the candidate of
 * a validation run), shared by the batch and its jobs. Counted and freed on
 * the submitting state's thread only. */
typedef struct shared_args {
  int refs;
  po_strbuf buf;
} shared_args;

typedef struct job {
  po_pool_job node; /* first: the pool hands this pointer back */
  client *c;
  struct job *next_done;
  po_lua_future *fut;
  int kind;
  char *code; /* bytecode, or "module\0field\0" */
  size_t code_len;
  po_strbuf upvalues; /* per upvalue: UP_NIL, UP_REF + name, or UP_VALUE + a copied block */
  po_strbuf args, results;
  po_lua_pool_work_fn work; /* FN_C: work without Lua, its results and their release */
  po_lua_push_fn push;
  void (*release)(void *data);
  void *data;
  char *err;            /* error message (malloc'd), or NULL */
  const char *err_code; /* its code name */
  int canceled;         /* set on the loop's thread, read by the worker: atomic */
  int timed;            /* results start with the seconds the function ran */
  batch *b;             /* a batch's job: reported through its callback, not a future */
  int id;               /* the job's id in its batch */
  shared_args *shared;  /* decoded before args, or NULL */
} job;

struct client {
  po_pool *pool; /* NULL until the first submit, and after shutdown */
  int size;      /* configured workers, 0: one per online CPU */
  po_loop *loop;
  pthread_mutex_t lock;
  job *done_head, *done_tail; /* finished, not yet delivered (guarded by lock) */
  int post_queued;            /* a delivery is posted (guarded by lock) */
  int in_flight;              /* submitted, not yet delivered (loop thread only) */
  job *staged_head, *staged_tail; /* batch jobs not yet handed to the pool (loop thread only) */
  int staged;
  int flush_posted; /* a post will hand the staged jobs over (loop thread only) */
  int dump_cache_ref;         /* weak table: function -> bytecode */
  int module_index_ref;       /* weak table: module or module field -> its name */
};

static const char pool_key = 0;
static const char worker_key = 0; /* registry flag of a worker's own state */

static void shared_unref(shared_args *sa) {
  if (sa && --sa->refs == 0) {
    po_strbuf_free(&sa->buf);
    free(sa);
  }
}

static void job_free(job *j) {
  if (j->release) j->release(j->data);
  shared_unref(j->shared);
  free(j->code);
  po_strbuf_free(&j->upvalues);
  po_strbuf_free(&j->args);
  po_strbuf_free(&j->results);
  free(j->err);
  free(j);
}

static void set_error(job *j, const char *code, const char *msg, size_t len) {
  free(j->err);
  j->err = malloc(len + 1);
  if (j->err) {
    memcpy(j->err, msg, len);
    j->err[len] = '\0';
  }
  j->err_code = code;
}

/* ---- delivery, on the submitting state's loop ---- */

static int push_results(lua_State *L, void *data) {
  job *j = data;
  return po_copy_decode(L, j->results.data, j->results.len, NULL);
}

static void batch_deliver(job *j);

static void deliver(po_loop *loop, void *ud) {
  client *c = ud;
  pthread_mutex_lock(&c->lock);
  job *list = c->done_head;
  c->done_head = c->done_tail = NULL;
  c->post_queued = 0;
  pthread_mutex_unlock(&c->lock);
  while (list) {
    job *j = list;
    list = j->next_done;
    po_loop_release(c->loop);
    c->in_flight--;
    if (j->b)
      batch_deliver(j);
    else if (j->err)
      po_lua_future_reject(j->fut, j->err, j->err_code);
    else if (j->kind == FN_C)
      po_lua_future_resolve(j->fut, j->push, j->data);
    else if (!j->results.data)
      po_lua_future_reject(j->fut, "po.pool: out of memory", "ENOMEM");
    else
      po_lua_future_resolve(j->fut, push_results, j);
    job_free(j);
  }
}

/* From any thread: hands a finished job to the submitting loop. */
static void complete(job *j) {
  client *c = j->c;
  pthread_mutex_lock(&c->lock);
  j->next_done = NULL;
  if (c->done_tail)
    c->done_tail->next_done = j;
  else
    c->done_head = j;
  c->done_tail = j;
  int post = !c->post_queued;
  c->post_queued = 1;
  pthread_mutex_unlock(&c->lock);
  /* On ENOMEM the job waits in the list for the next successful post. */
  if (post && po_loop_post(c->loop, deliver, c) != 0) {
    pthread_mutex_lock(&c->lock);
    c->post_queued = 0;
    pthread_mutex_unlock(&c->lock);
  }
}

static void job_drop(void *p) {
  job *j = p;
  const char msg[] = "po.pool: the pool was shut down before the job ran";
  set_error(j, "ECANCELED", msg, sizeof msg - 1);
  complete(j);
}

/* ---- the worker side ---- */

typedef struct worker {
  lua_State *L;
} worker;

static void worker_free(void *local) {
  worker *w = local;
  lua_close(w->L);
  free(w);
}

static int worker_setup(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&worker_key);
  lua_pushboolean(L, 1);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "poengine");
  lua_call(L, 1, 1);
  lua_setglobal(L, "po");
  lua_newtable(L); /* bytecode -> function */
  lua_setfield(L, LUA_REGISTRYINDEX, "poengine.pool.cache");
  return 0;
}

static worker *worker_new(void) {
  worker *w = malloc(sizeof *w);
  if (!w) return NULL;
  w->L = po_runtime_new();
  if (!w->L) {
    free(w);
    return NULL;
  }
  lua_pushcfunction(w->L, worker_setup);
  if (lua_pcall(w->L, 0, 0, 0) != 0) {
    lua_close(w->L);
    free(w);
    return NULL;
  }
  return w;
}

/* Pushes the job's function (protected: may raise). */
static int push_job_function(lua_State *L) {
  job *j = lua_touserdata(L, 1);
  if (j->kind == FN_MODULE) {
    const char *module = j->code, *field = j->code + strlen(j->code) + 1;
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1)) return luaL_error(L, "po.pool: module '%s' is not a table", module);
    lua_getfield(L, -1, field);
    if (!lua_isfunction(L, -1))
      return luaL_error(L, "po.pool: %s.%s is a %s, not a function", module, field, luaL_typename(L, -1));
    return 1;
  }
  lua_getfield(L, LUA_REGISTRYINDEX, "poengine.pool.cache"); /* 2 */
  lua_pushlstring(L, j->code, j->code_len);                  /* 3 */
  lua_pushvalue(L, 3);
  lua_rawget(L, 2);
  if (lua_isfunction(L, -1)) return 1;
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, j->code, j->code_len, "=pool job") != 0) return lua_error(L); /* 4 */
  lua_getfield(L, LUA_REGISTRYINDEX, "poengine.pool.cache_n");
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (n >= WORKER_CACHE_MAX) {
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "poengine.pool.cache");
    lua_replace(L, 2);
    n = 0;
  }
  lua_pushinteger(L, n + 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "poengine.pool.cache_n");
  lua_pushvalue(L, 3);
  lua_pushvalue(L, 4);
  lua_rawset(L, 2);
  return 1;
}

/* Sets the upvalues of the function at the top (protected: may raise). A
 * reference is resolved with require in the worker: "module" or
 * "module\0field". */
static void set_upvalues(lua_State *L, job *j) {
  int fn = lua_gettop(L);
  const char *p = j->upvalues.data, *end = p ? p + j->upvalues.len : p; /* NULL + 0 is undefined */
  for (int i = 1; p && p < end; i++) {
    char tag = *p++;
    if (tag == UP_REF) {
      const char *module = p, *field = p + strlen(p) + 1;
      p = field + strlen(field) + 1;
      lua_getglobal(L, "require");
      lua_pushstring(L, module);
      lua_call(L, 1, 1);
      if (*field) {
        lua_getfield(L, -1, field);
        lua_remove(L, -2);
      }
    } else if (tag == UP_VALUE) {
      size_t used;
      po_copy_decode(L, p, (size_t)(end - p), &used);
      p += used;
    } else {
      lua_pushnil(L);
    }
    lua_setupvalue(L, fn, i);
  }
}

/* Records the error message at the top of L's stack as the job's error. */
static void error_from_stack(job *j, lua_State *L, const char *code) {
  if (!lua_isstring(L, -1)) lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  set_error(j, code, msg, len);
}

/* Runs the job in the worker's state: function, arguments, call, results. */
static int run_protected(lua_State *L) {
  job *j = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lua_pushcfunction(L, push_job_function);
  lua_pushlightuserdata(L, j);
  if (po_pcall(L, 1, 1) != 0) {
    error_from_stack(j, L, "ERUNTIME");
    return 0;
  }
  set_upvalues(L, j);
  int nargs = j->shared ? po_copy_decode(L, j->shared->buf.data, j->shared->buf.len, NULL) : 0;
  nargs += po_copy_decode(L, j->args.data, j->args.len, NULL);
  double started = po_monotonic();
  if (po_pcall(L, nargs, LUA_MULTRET) != 0) {
    error_from_stack(j, L, "ERUNTIME");
    return 0;
  }
  if (j->timed) {
    lua_pushnumber(L, po_monotonic() - started);
    lua_insert(L, 1);
  }
  char err[512];
  int rc = po_copy_encode(L, 1, lua_gettop(L), "result[%d]", &j->results, err, sizeof err);
  if (rc != 0) {
    po_strbuf_free(&j->results);
    lua_pushfstring(L, "po.pool.submit: %s", err);
    error_from_stack(j, L, rc == PO_ENOMEM ? "ENOMEM" : "EINVAL");
  }
  return 0;
}

static const char run_key = 0, drain_key = 0, drain_fn_key = 0;

/* po.async tasks a job left behind run to completion before the next job.
 * The scheduler's drain is looked up until a job has loaded it (no task can
 * exist before), then kept in the registry. */
static int drain_tasks(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&drain_fn_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isfunction(L, -1)) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "poengine.future");
    if (!lua_istable(L, -1)) return 0;
    lua_getfield(L, -1, "drain");
    if (!lua_isfunction(L, -1)) return 0;
    lua_pushlightuserdata(L, (void *)&drain_fn_key);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  lua_call(L, 0, 0);
  return 0;
}

static void job_run(void **local, void *p) {
  job *j = p;
  if (__atomic_load_n(&j->canceled, __ATOMIC_ACQUIRE)) {
    const char msg[] = "canceled";
    set_error(j, "ECANCELED", msg, sizeof msg - 1);
    complete(j);
    return;
  }
  if (j->kind == FN_C) {
    j->work(j->data);
    complete(j);
    return;
  }
  worker *w = *local;
  if (!w) w = *local = worker_new();
  if (!w) {
    const char msg[] = "po.pool: cannot create a worker's Lua state (out of memory)";
    set_error(j, "ENOMEM", msg, sizeof msg - 1);
    complete(j);
    return;
  }
  lua_State *L = w->L;
  po_push_cfunction(L, &run_key, run_protected);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 1, 0, 0) != 0 && !j->err) error_from_stack(j, L, "ENOMEM");
  lua_settop(L, 0);
  complete(j); /* j belongs to the submitting loop from here on */
  po_push_cfunction(L, &drain_key, drain_tasks);
  if (po_pcall(L, 0, 0) != 0) lua_pop(L, 1);
  /* No forced GC step here: the state's own (allocation-paced) collector
   * keeps up, and a step per job cost more than a trivial job itself. */
}

/* ---- the client, one per submitting state ---- */

static int pool_gc(lua_State *L) {
  client *c = luaL_checkudata(L, 1, POOL_TYPE);
  po_pool_free(c->pool); /* joins the workers; queued jobs are dropped into the done list */
  c->pool = NULL;
  job *list = c->done_head;
  c->done_head = c->done_tail = NULL;
  if (c->staged_tail) { /* batch jobs never handed over: they go too */
    c->staged_tail->next_done = list;
    list = c->staged_head;
    c->staged_head = c->staged_tail = NULL;
    c->staged = 0;
  }
  while (list) {
    job *j = list;
    list = j->next_done;
    if (!j->b) po_lua_future_drop(L, j->fut);
    job_free(j);
  }
  pthread_mutex_destroy(&c->lock);
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
  lua_newtable(L); /* weak-keyed cache of dumped functions */
  lua_newtable(L);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  int cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  lua_newtable(L);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  int index_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, (void *)&pool_key);
  c = lua_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->loop = loop;
  c->dump_cache_ref = cache_ref;
  c->module_index_ref = index_ref;
  pthread_mutex_init(&c->lock, NULL);
  luaL_getmetatable(L, POOL_TYPE);
  lua_setmetatable(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return c;
}

static int in_worker(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&worker_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  int yes = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return yes;
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  return po_strbuf_append(ud, p, sz) == 0 ? 0 : 1;
}

/* Pushes the bytecode of the function at idx (cached per function). */
static void push_bytecode(lua_State *L, client *c, int idx) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->dump_cache_ref);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  if (lua_isstring(L, -1)) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  po_strbuf b = {0};
  lua_pushvalue(L, idx);
  int rc = lua_dump(L, dump_writer, &b);
  lua_pop(L, 1);
  if (rc != 0) {
    po_strbuf_free(&b);
    luaL_error(L, "po.pool.submit: cannot dump fn (out of memory)");
  }
  lua_pushlstring(L, b.data ? b.data : "", b.len);
  po_strbuf_free(&b);
  lua_pushvalue(L, idx);
  lua_pushvalue(L, -2);
  lua_rawset(L, -4);
  lua_remove(L, -2);
}

/* Pushes the name under which v (at idx) is reachable from package.loaded:
 * "module" or "module\0field", or nil. Looks in an index (weak keys) that
 * is rebuilt when a value is not found in it. */
static void push_module_ref(lua_State *L, client *c, int idx) {
  for (int attempt = 0; attempt < 2; attempt++) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->module_index_ref);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (!lua_isnil(L, -1) || attempt == 1) return;
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->module_index_ref); /* rebuild */
    int index = lua_gettop(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    int loaded = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        lua_pushvalue(L, -1);
        lua_pushvalue(L, -3);
        lua_rawset(L, index);
        if (lua_istable(L, -1)) {
          int mod = lua_gettop(L);
          lua_pushnil(L);
          while (lua_next(L, mod)) {
            int t = lua_type(L, -1);
            if (lua_type(L, -2) == LUA_TSTRING && (t == LUA_TFUNCTION || t == LUA_TTABLE)) {
              lua_pushvalue(L, -1);
              lua_rawget(L, index);
              int known = !lua_isnil(L, -1);
              lua_pop(L, 1);
              if (!known) {
                lua_pushvalue(L, mod + 2);
                lua_pushfstring(L, "%s%c%s", lua_tostring(L, loaded + 1), 0, lua_tostring(L, mod + 1));
                lua_rawset(L, index);
              }
            }
            lua_pop(L, 1);
          }
        }
      }
      lua_pop(L, 1);
    }
    lua_settop(L, index - 1);
  }
}

/* Records the upvalues of the function at index fn in j: references to
 * modules (and their fields) for the worker to require, copies of plain
 * values. Raises on anything else (after freeing j), naming the upvalue. */
static void collect_upvalues(lua_State *L, client *c, job *j, int fn, const char *fname) {
  const char *name;
  for (int i = 1; (name = lua_getupvalue(L, fn, i)); i++) {
    int v = lua_gettop(L);
    int t = lua_type(L, v);
    int rc = 0;
    if (t == LUA_TNIL) {
      rc = po_strbuf_append_char(&j->upvalues, UP_NIL);
    } else {
      if (t == LUA_TTABLE || t == LUA_TFUNCTION) push_module_ref(L, c, v);
      else lua_pushnil(L);
      if (lua_isstring(L, -1)) {
        size_t len;
        const char *ref = lua_tolstring(L, -1, &len);
        rc = po_strbuf_append_char(&j->upvalues, UP_REF);
        if (rc == 0) rc = po_strbuf_append(&j->upvalues, ref, len);
        if (rc == 0 && !memchr(ref, 0, len)) rc = po_strbuf_append_char(&j->upvalues, 0);
        if (rc == 0) rc = po_strbuf_append_char(&j->upvalues, 0);
      } else if (t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD || t == LUA_TLIGHTUSERDATA) {
        job_free(j);
        luaL_error(L, "%s: fn's upvalue '%s' is a %s, which cannot cross to a worker (modules from "
                      "require and their functions can, and plain values are copied); pass { module = \"name\", "
                      "fn = \"field\" } instead",
                   fname, name, lua_typename(L, t));
      } else {
        char err[512], root[160];
        snprintf(root, sizeof root, "upvalue '%s'", name);
        rc = po_strbuf_append_char(&j->upvalues, UP_VALUE);
        if (rc == 0) rc = po_copy_encode(L, v, 1, root, &j->upvalues, err, sizeof err);
        if (rc != 0) {
          lua_pushstring(L, err);
          job_free(j);
          luaL_error(L, "%s: %s", fname, lua_tostring(L, -1));
        }
      }
    }
    if (rc != 0) {
      job_free(j);
      luaL_error(L, "%s: out of memory", fname);
    }
    lua_settop(L, v - 1);
  }
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

static void describe_fn_error(lua_State *L, int fn, const char *fname) {
  luaL_error(L, "%s: fn must be a Lua function without upvalues, or { module = \"name\", fn = "
                "\"field\" }, got %s",
             fname, luaL_typename(L, fn));
}

/* Starts the pool if needed, pushes the job's future and queues the job
 * (which is freed on failure). */
static int enqueue(lua_State *L, client *c, job *j, const char *fname) {
  if (in_worker(L)) {
    job_free(j);
    return luaL_error(L, "%s: not available inside a pool worker (the job would wait for the pool it occupies); "
                         "run the work directly",
                      fname);
  }
  if (!c->pool) {
    int rc = po_pool_new(c->size, worker_free, &c->pool);
    if (rc != 0) {
      job_free(j);
      return luaL_error(L, "%s: cannot start the worker threads: %s", fname, po_strerror(rc));
    }
  }
  static const char key = 0;
  po_push_cfunction(L, &key, new_future_protected);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    job_free(j);
    return lua_error(L);
  }
  po_loop_hold(c->loop);
  c->in_flight++;
  po_pool_submit(c->pool, &j->node); /* cannot fail: only po_pool_free stops it, on this thread */
  return 1;
}

/* A job running the function at stack index fn with the nargs values from
 * first as arguments. Raises (freeing what it allocated) naming fname. */
static job *build_job(lua_State *L, client *c, int fn, int first, int nargs, int timed, const char *fname) {
  int kind;
  const char *code;
  size_t code_len;
  if (lua_isfunction(L, fn)) {
    if (lua_iscfunction(L, fn))
      luaL_error(L, "%s: fn is a C function, which cannot cross to a worker; pass { module = "
                    "\"name\", fn = \"field\" }",
                 fname);
    kind = FN_BYTECODE;
    push_bytecode(L, c, fn);
    code = lua_tolstring(L, -1, &code_len);
  } else if (lua_istable(L, fn)) {
    static const char *const fields[] = {"module", "fn", NULL};
    po_check_options(L, fn, fname, fields);
    lua_getfield(L, fn, "module");
    lua_getfield(L, fn, "fn");
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: fn as a table needs module and fn, both strings", fname);
    lua_pushfstring(L, "%s%c%s%c", lua_tostring(L, -2), 0, lua_tostring(L, -1), 0);
    kind = FN_MODULE;
    code = lua_tolstring(L, -1, &code_len);
  } else {
    describe_fn_error(L, fn, fname);
    return NULL;
  }
  job *j = calloc(1, sizeof *j);
  if (!j || !(j->code = malloc(code_len ? code_len : 1))) {
    free(j);
    luaL_error(L, "%s: out of memory", fname);
    return NULL;
  }
  memcpy(j->code, code, code_len);
  j->code_len = code_len;
  j->kind = kind;
  j->timed = timed;
  j->c = c;
  j->node.run = job_run;
  j->node.drop = job_drop;
  if (kind == FN_BYTECODE) collect_upvalues(L, c, j, fn, fname);
  char err[512];
  int rc = po_copy_encode(L, first, nargs, "args[%d]", &j->args, err, sizeof err);
  if (rc != 0) {
    job_free(j);
    luaL_error(L, "%s: %s", fname, err);
    return NULL;
  }
  return j;
}

/* po.pool.submit(fn, ...) -> future */
static int submit(lua_State *L, int timed) {
  if (in_worker(L))
    return luaL_error(L, "po.pool.submit: not available inside a pool worker (the job would wait for the pool it "
                         "occupies); run the work directly");
  client *c = state_client(L);
  job *j = build_job(L, c, 1, 2, lua_gettop(L) - 1, timed, "po.pool.submit");
  return enqueue(L, c, j, "po.pool.submit");
}

static int l_submit(lua_State *L) { return submit(L, 0); }

/* po.pool.submit_timed(fn, ...) -> future of (seconds, results...) */
static int l_submit_timed(lua_State *L) { return submit(L, 1); }

/* ---- batches: many jobs, one callback, no future per job ----
 *
 * A batch's jobs are staged on the client and handed to the pool together
 * (po_pool_submit_many) by b:flush() or, at the latest, by a post that runs
 * when the submitting state next waits. Each finished job calls the
 * batch's callback once, from the loop: on_result(id, seconds, ...) or
 * on_result(id, nil, message, code). While jobs are in flight the batch
 * anchors itself in the registry, so dropping it loses no result. */

#define BATCH_TYPE "poengine.pool.batch"
/* Staged jobs handed over at once without waiting for a flush. */
#define BATCH_CHUNK 64

struct batch {
  client *c;
  po_lua_callback *cb;
  shared_args *shared; /* the batch's own reference, or NULL */
  job **slots;         /* by id: the job in flight, or NULL */
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

/* Hands the staged jobs to the pool, starting it if needed. Returns 0 or a
 * PO_E code (the jobs stay staged). */
static int flush_staged(client *c) {
  if (!c->staged) return 0;
  if (!c->pool) {
    int rc = po_pool_new(c->size, worker_free, &c->pool);
    if (rc != 0) return rc;
  }
  /* The pool links jobs through node.next; staged ones are linked through
   * next_done, which is free until they finish. */
  for (job *j = c->staged_head; j; j = j->next_done) j->node.next = j->next_done ? &j->next_done->node : NULL;
  job *first = c->staged_head;
  int count = c->staged;
  c->staged_head = c->staged_tail = NULL;
  c->staged = 0;
  po_pool_submit_many(c->pool, &first->node, count); /* cannot fail: only po_pool_free stops it, on this thread */
  return 0;
}

static void flush_post(po_loop *loop, void *ud) {
  client *c = ud;
  c->flush_posted = 0;
  flush_staged(c); /* on failure they wait for the next flush */
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
  job *j = build_job(L, c, 3, 4, lua_gettop(L) - 3, 1, "b:submit");
  j->b = b;
  j->id = id;
  if (b->shared) {
    j->shared = b->shared;
    b->shared->refs++;
  }
  if (b->self_ref == LUA_NOREF) {
    lua_pushvalue(L, 1);
    b->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (!c->flush_posted) {
    if (po_loop_post(c->loop, flush_post, c) != 0) {
      job_free(j);
      return luaL_error(L, "b:submit: out of memory");
    }
    c->flush_posted = 1;
  }
  b->slots[id] = j;
  b->in_flight++;
  j->next_done = NULL;
  if (c->staged_tail)
    c->staged_tail->next_done = j;
  else
    c->staged_head = j;
  c->staged_tail = j;
  c->staged++;
  po_loop_hold(c->loop);
  c->in_flight++;
  /* A long burst goes over in chunks, so the workers start while the rest
   * is being submitted. */
  if (c->staged >= BATCH_CHUNK) flush_staged(c); /* on failure, the next flush retries */
  return 0;
}

/* b:flush(): hands the staged jobs (of every batch of this state) to the pool now. */
static int batch_flush(lua_State *L) {
  batch *b = check_batch(L, 1);
  int rc = flush_staged(b->c);
  if (rc != 0) return luaL_error(L, "b:flush: cannot start the worker threads: %s", po_strerror(rc));
  return 0;
}

/* b:cancel(id): a job that has not started never runs (it reports ECANCELED);
 * one running finishes. Returns true if the job was in flight. */
static int batch_cancel(lua_State *L) {
  batch *b = check_batch(L, 1);
  lua_Number n = luaL_checknumber(L, 2);
  int id = n >= 1 && n < b->nslots && n == (lua_Number)(int)n ? (int)n : 0;
  job *j = id ? b->slots[id] : NULL;
  if (j) __atomic_store_n(&j->canceled, 1, __ATOMIC_RELEASE);
  lua_pushboolean(L, j != NULL);
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
  shared_unref(b->shared);
  b->shared = NULL;
  free(b->slots);
  b->slots = NULL;
  b->nslots = 0;
  return 0;
}

/* po.pool.batch(on_result [, shared...]) -> batch */
static int l_batch(lua_State *L) {
  if (in_worker(L))
    return luaL_error(L, "po.pool.batch: not available inside a pool worker (the job would wait for the pool it "
                         "occupies); run the work directly");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int nshared = lua_gettop(L) - 1;
  client *c = state_client(L);
  shared_args *sa = NULL;
  if (nshared > 0) {
    sa = calloc(1, sizeof *sa);
    if (!sa) return luaL_error(L, "po.pool.batch: out of memory");
    sa->refs = 1;
    char err[512];
    int rc = po_copy_encode(L, 2, nshared, "shared[%d]", &sa->buf, err, sizeof err);
    if (rc != 0) {
      shared_unref(sa);
      return luaL_error(L, "po.pool.batch: %s", err);
    }
  }
  static const luaL_Reg methods[] = {{"submit", batch_submit},
                                     {"flush", batch_flush},
                                     {"cancel", batch_cancel},
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
  job *j = calloc(1, sizeof *j);
  if (!j) {
    release(data);
    luaL_error(L, "%s: out of memory", fname);
    return;
  }
  *j = (job){.c = c, .kind = FN_C, .work = work, .push = push, .release = release, .data = data};
  j->node.run = job_run;
  j->node.drop = job_drop;
  enqueue(L, c, j, fname);
}

/* po.pool.configure{ workers = n } */
static int l_configure(lua_State *L) {
  static const char *const opts[] = {"workers", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  po_check_options(L, 1, "po.pool.configure", opts);
  client *c = state_client(L);
  lua_getfield(L, 1, "workers");
  int size = c->size;
  if (!lua_isnil(L, -1)) {
    lua_Number n = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    if (!(n >= 1 && n <= 1024 && n == (lua_Number)(int)n))
      return luaL_error(L, "po.pool.configure: workers must be a whole number from 1 to 1024");
    size = (int)n;
  }
  if (size != c->size && c->pool) {
    if (c->in_flight > 0)
      return luaL_error(L, "po.pool.configure: %d job(s) in flight; resize the pool before submitting or once they "
                           "have finished",
                        c->in_flight);
    po_pool_free(c->pool);
    c->pool = NULL;
  }
  c->size = size;
  return 0;
}

/* po.pool.shutdown(): cancels queued jobs, waits for running ones, joins. */
static int l_shutdown(lua_State *L) {
  client *c = state_client(L);
  po_pool_free(c->pool);
  c->pool = NULL;
  return 0;
}

static int l_stats(lua_State *L) {
  client *c = state_client(L);
  int queued = 0, running = 0;
  if (c->pool) po_pool_counts(c->pool, &queued, &running);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, c->pool ? po_pool_size(c->pool) : (c->size > 0 ? c->size : po_cpu_count()));
  lua_setfield(L, -2, "workers");
  lua_pushboolean(L, c->pool != NULL);
  lua_setfield(L, -2, "started");
  lua_pushinteger(L, queued);
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, running);
  lua_setfield(L, -2, "running");
  lua_pushinteger(L, c->in_flight);
  lua_setfield(L, -2, "in_flight");
  return 1;
}

static int l_in_worker(lua_State *L) {
  lua_pushboolean(L, in_worker(L));
  return 1;
}

static int l_cpu_count(lua_State *L) {
  lua_pushinteger(L, po_cpu_count());
  return 1;
}

void po_open_pool(lua_State *L) {
  static const luaL_Reg fns[] = {{"submit", l_submit}, {"submit_timed", l_submit_timed}, {"batch", l_batch}, {"configure", l_configure}, {"shutdown", l_shutdown},
                                 {"stats", l_stats},     {"in_worker", l_in_worker}, {"cpu_count", l_cpu_count},
                                 {NULL, NULL}};
  lua_newtable(L);
  po_set_funcs(L, fns);
  lua_setfield(L, -2, "pool");
}
