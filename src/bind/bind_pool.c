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
} job;

struct client {
  po_pool *pool; /* NULL until the first submit, and after shutdown */
  int size;      /* configured workers, 0: one per online CPU */
  po_loop *loop;
  pthread_mutex_t lock;
  job *done_head, *done_tail; /* finished, not yet delivered (guarded by lock) */
  int post_queued;            /* a delivery is posted (guarded by lock) */
  int in_flight;              /* submitted, not yet delivered (loop thread only) */
  int dump_cache_ref;         /* weak table: function -> bytecode */
  int module_index_ref;       /* weak table: module or module field -> its name */
};

static const char pool_key = 0;
static const char worker_key = 0; /* registry flag of a worker's own state */

static void job_free(job *j) {
  if (j->release) j->release(j->data);
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
    if (j->err)
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
  const char *p = j->upvalues.data, *end = p + j->upvalues.len;
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
  int nargs = po_copy_decode(L, j->args.data, j->args.len, NULL);
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

/* po.async tasks a job left behind run to completion before the next job. */
static int drain_tasks(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, "poengine.future");
  if (!lua_istable(L, -1)) return 0;
  lua_getfield(L, -1, "drain");
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
  lua_pushcfunction(L, run_protected);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 1, 0, 0) != 0 && !j->err) error_from_stack(j, L, "ENOMEM");
  lua_settop(L, 0);
  complete(j); /* j belongs to the submitting loop from here on */
  lua_pushcfunction(L, drain_tasks);
  if (po_pcall(L, 0, 0) != 0) lua_pop(L, 1);
  lua_gc(L, LUA_GCSTEP, 0);
}

/* ---- the client, one per submitting state ---- */

static int pool_gc(lua_State *L) {
  client *c = luaL_checkudata(L, 1, POOL_TYPE);
  po_pool_free(c->pool); /* joins the workers; queued jobs are dropped into the done list */
  c->pool = NULL;
  job *list = c->done_head;
  c->done_head = c->done_tail = NULL;
  while (list) {
    job *j = list;
    list = j->next_done;
    po_lua_future_drop(L, j->fut);
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

/* Records the upvalues of the function at index 1 in j: references to
 * modules (and their fields) for the worker to require, copies of plain
 * values. Raises on anything else, naming the upvalue. */
static void collect_upvalues(lua_State *L, client *c, job *j) {
  const char *name;
  for (int i = 1; (name = lua_getupvalue(L, 1, i)); i++) {
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
        luaL_error(L, "po.pool.submit: fn's upvalue '%s' is a %s, which cannot cross to a worker (modules from "
                      "require and their functions can, and plain values are copied); pass { module = \"name\", "
                      "fn = \"field\" } instead",
                   name, lua_typename(L, t));
      } else {
        char err[512], root[160];
        snprintf(root, sizeof root, "upvalue '%s'", name);
        rc = po_strbuf_append_char(&j->upvalues, UP_VALUE);
        if (rc == 0) rc = po_copy_encode(L, v, 1, root, &j->upvalues, err, sizeof err);
        if (rc != 0) {
          lua_pushstring(L, err);
          job_free(j);
          luaL_error(L, "po.pool.submit: %s", lua_tostring(L, -1));
        }
      }
    }
    if (rc != 0) {
      job_free(j);
      luaL_error(L, "po.pool.submit: out of memory");
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

static void describe_fn_error(lua_State *L) {
  luaL_error(L, "po.pool.submit: fn must be a Lua function without upvalues, or { module = \"name\", fn = "
                "\"field\" }, got %s",
             luaL_typename(L, 1));
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
  lua_pushcfunction(L, new_future_protected);
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

/* po.pool.submit(fn, ...) -> future */
static int submit(lua_State *L, int timed) {
  if (in_worker(L))
    return luaL_error(L, "po.pool.submit: not available inside a pool worker (the job would wait for the pool it "
                         "occupies); run the work directly");
  int nargs = lua_gettop(L) - 1;
  int kind;
  const char *code;
  size_t code_len;
  client *c = state_client(L);
  if (lua_isfunction(L, 1)) {
    if (lua_iscfunction(L, 1))
      return luaL_error(L, "po.pool.submit: fn is a C function, which cannot cross to a worker; pass { module = "
                           "\"name\", fn = \"field\" }");
    kind = FN_BYTECODE;
    push_bytecode(L, c, 1);
    code = lua_tolstring(L, -1, &code_len);
  } else if (lua_istable(L, 1)) {
    static const char *const fields[] = {"module", "fn", NULL};
    po_check_options(L, 1, "po.pool.submit", fields);
    lua_getfield(L, 1, "module");
    lua_getfield(L, 1, "fn");
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "po.pool.submit: fn as a table needs module and fn, both strings");
    lua_pushfstring(L, "%s%c%s%c", lua_tostring(L, -2), 0, lua_tostring(L, -1), 0);
    kind = FN_MODULE;
    code = lua_tolstring(L, -1, &code_len);
  } else {
    describe_fn_error(L);
    return 0;
  }
  job *j = calloc(1, sizeof *j);
  if (!j || !(j->code = malloc(code_len ? code_len : 1))) {
    free(j);
    return luaL_error(L, "po.pool.submit: out of memory");
  }
  memcpy(j->code, code, code_len);
  j->code_len = code_len;
  j->kind = kind;
  j->timed = timed;
  j->c = c;
  j->node.run = job_run;
  j->node.drop = job_drop;
  if (kind == FN_BYTECODE) collect_upvalues(L, c, j);
  char err[512];
  int rc = po_copy_encode(L, 2, nargs, "args[%d]", &j->args, err, sizeof err);
  if (rc != 0) {
    job_free(j);
    return luaL_error(L, "po.pool.submit: %s", err);
  }
  return enqueue(L, c, j, "po.pool.submit");
}

static int l_submit(lua_State *L) { return submit(L, 0); }

/* po.pool.submit_timed(fn, ...) -> future of (seconds, results...) */
static int l_submit_timed(lua_State *L) { return submit(L, 1); }

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
  static const luaL_Reg fns[] = {{"submit", l_submit}, {"submit_timed", l_submit_timed}, {"configure", l_configure}, {"shutdown", l_shutdown},
                                 {"stats", l_stats},     {"in_worker", l_in_worker}, {"cpu_count", l_cpu_count},
                                 {NULL, NULL}};
  lua_newtable(L);
  po_set_funcs(L, fns);
  lua_setfield(L, -2, "pool");
}
