/* Pool jobs that run Lua, and the worker states they run in: see
 * bind_worker.h. */
#include "bind_worker.h"

#include "bind.h"
#include "bind_copy.h"
#include "runtime.h"

#include "clock.h"
#include "error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Functions a worker keeps loaded, by bytecode; the cache is emptied when
 * it grows past this many. */
#define WORKER_CACHE_MAX 256

enum { UP_NIL = 'n', UP_REF = 'r', UP_VALUE = 'v' };

typedef po_lua_job job;

static const char worker_key = 0; /* registry flag of a worker's own state */
static const char dump_cache_key = 0;   /* weak table: function -> bytecode */
static const char module_index_key = 0; /* weak table: module or module field -> its name */

void po_lua_shared_args_unref(po_lua_shared_args *sa) {
  if (sa && __atomic_sub_fetch(&sa->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    po_strbuf_free(&sa->buf);
    free(sa);
  }
}

void po_lua_job_free(job *j) {
  if (j->release) j->release(j->data);
  po_lua_shared_args_unref(j->shared);
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

static void job_drop(void *p) {
  job *j = p;
  int rc = po_pool_client_start_error(j->client);
  if (rc) {
    char msg[96];
    int n = snprintf(msg, sizeof msg, "po.pool: cannot start the worker threads: %s", po_strerror(rc));
    set_error(j, po_errname(rc), msg, (size_t)n);
  } else {
    const char msg[] = "po.pool: the pool was shut down before the job ran";
    set_error(j, "ECANCELED", msg, sizeof msg - 1);
  }
  po_pool_client_finish(j->client, &j->node);
}

/* ---- the worker side ---- */

typedef struct worker {
  lua_State *L;
} worker;

void po_lua_worker_free(void *local) {
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
  if (j->kind == PO_JOB_MODULE) {
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
  if (!lua_istable(L, 2)) { /* not a worker (po.pool.unpack): nothing cached */
    if (luaL_loadbuffer(L, j->code, j->code_len, "=pool job") != 0) return lua_error(L);
    return 1;
  }
  lua_pushlstring(L, j->code, j->code_len); /* 3 */
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


static const char run_key = 0, drain_key = 0;

/* Hands the job back to its submitter, or frees it if it was abandoned
 * (po_pool_abandon: nobody waits for it). Returns 0 when abandoned. */
static int hand_back(job *j) {
  if (!po_pool_job_claim(&j->node)) {
    po_lua_job_free(j);
    return 0;
  }
  po_pool_client_finish(j->client, &j->node); /* j belongs to the submitting loop from here on */
  return 1;
}

static void job_run(void **local, void *p) {
  job *j = p;
  if (__atomic_load_n(&j->canceled, __ATOMIC_ACQUIRE)) {
    const char msg[] = "canceled";
    set_error(j, "ECANCELED", msg, sizeof msg - 1);
    hand_back(j);
    return;
  }
  if (j->kind == PO_JOB_C) {
    j->work(j->data);
    hand_back(j);
    return;
  }
  worker *w = *local;
  if (!w) {
    w = *local = worker_new();
    po_pool_job_restart(&j->node); /* a job's deadline counts from when its code can run */
  }
  if (!w) {
    const char msg[] = "po.pool: cannot create a worker's Lua state (out of memory)";
    set_error(j, "ENOMEM", msg, sizeof msg - 1);
    hand_back(j);
    return;
  }
  lua_State *L = w->L;
  po_push_cfunction(L, &run_key, run_protected);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 1, 0, 0) != 0 && !j->err) error_from_stack(j, L, "ENOMEM");
  lua_settop(L, 0);
  if (!hand_back(j)) return; /* this worker is leaving the pool: its state is closed, not drained */
  po_push_cfunction(L, &drain_key, po_lua_drain_tasks);
  if (po_pcall(L, 0, 0) != 0) lua_pop(L, 1);
  /* No forced GC step here: the state's own (allocation-paced) collector
   * keeps up, and a step per job cost more than a trivial job itself. */
}

int po_lua_in_worker(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&worker_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  int yes = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return yes;
}

/* ---- on the submitting state: what crosses to a worker ---- */

/* Pushes the weak-keyed table kept in the registry under key, made on
 * first use. */
static void push_weak_table(lua_State *L, const void *key) {
  lua_pushlightuserdata(L, (void *)key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_istable(L, -1)) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_newtable(L);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushlightuserdata(L, (void *)key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  return po_strbuf_append(ud, p, sz) == 0 ? 0 : 1;
}

/* Pushes the bytecode of the function at idx (cached per function). */
static void push_bytecode(lua_State *L, int idx) {
  push_weak_table(L, &dump_cache_key);
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
static void push_module_ref(lua_State *L, int idx) {
  for (int attempt = 0; attempt < 2; attempt++) {
    push_weak_table(L, &module_index_key);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (!lua_isnil(L, -1) || attempt == 1) return;
    lua_pop(L, 1);
    push_weak_table(L, &module_index_key); /* rebuild */
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
static void collect_upvalues(lua_State *L, job *j, int fn, const char *fname) {
  const char *name;
  for (int i = 1; (name = lua_getupvalue(L, fn, i)); i++) {
    int v = lua_gettop(L);
    int t = lua_type(L, v);
    int rc = 0;
    if (t == LUA_TNIL) {
      rc = po_strbuf_append_char(&j->upvalues, UP_NIL);
    } else {
      if (t == LUA_TTABLE || t == LUA_TFUNCTION) push_module_ref(L, v);
      else lua_pushnil(L);
      if (lua_isstring(L, -1)) {
        size_t len;
        const char *ref = lua_tolstring(L, -1, &len);
        rc = po_strbuf_append_char(&j->upvalues, UP_REF);
        if (rc == 0) rc = po_strbuf_append(&j->upvalues, ref, len);
        if (rc == 0 && !memchr(ref, 0, len)) rc = po_strbuf_append_char(&j->upvalues, 0);
        if (rc == 0) rc = po_strbuf_append_char(&j->upvalues, 0);
      } else if (t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD || t == LUA_TLIGHTUSERDATA) {
        po_lua_job_free(j);
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
          po_lua_job_free(j);
          luaL_error(L, "%s: %s", fname, lua_tostring(L, -1));
        }
      }
    }
    if (rc != 0) {
      po_lua_job_free(j);
      luaL_error(L, "%s: out of memory", fname);
    }
    lua_settop(L, v - 1);
  }
}

static void describe_fn_error(lua_State *L, int fn, const char *fname) {
  luaL_error(L, "%s: fn must be a Lua function without upvalues, or { module = \"name\", fn = "
                "\"field\" }, got %s",
             fname, luaL_typename(L, fn));
}

/* A job running the function at stack index fn with the nargs values from
 * first as arguments. Raises (freeing what it allocated) naming fname. */
job *po_lua_job_new(lua_State *L, po_pool_client *client, int fn, int first, int nargs, int timed,
                    const char *fname) {
  int kind;
  const char *code;
  size_t code_len;
  if (lua_isfunction(L, fn)) {
    if (lua_iscfunction(L, fn))
      luaL_error(L, "%s: fn is a C function, which cannot cross to a worker; pass { module = "
                    "\"name\", fn = \"field\" }",
                 fname);
    kind = PO_JOB_BYTECODE;
    push_bytecode(L, fn);
    code = lua_tolstring(L, -1, &code_len);
  } else if (lua_istable(L, fn)) {
    static const char *const fields[] = {"module", "fn", NULL};
    po_check_options(L, fn, fname, fields);
    lua_getfield(L, fn, "module");
    lua_getfield(L, fn, "fn");
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: fn as a table needs module and fn, both strings", fname);
    lua_pushfstring(L, "%s%c%s%c", lua_tostring(L, -2), 0, lua_tostring(L, -1), 0);
    kind = PO_JOB_MODULE;
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
  j->client = client;
  j->node.run = job_run;
  j->node.drop = job_drop;
  if (kind == PO_JOB_BYTECODE) collect_upvalues(L, j, fn, fname);
  char err[512];
  int rc = po_copy_encode(L, first, nargs, "args[%d]", &j->args, err, sizeof err);
  if (rc != 0) {
    po_lua_job_free(j);
    luaL_error(L, "%s: %s", fname, err);
    return NULL;
  }
  return j;
}

job *po_lua_job_new_c(po_pool_client *client, po_lua_pool_work_fn work, po_lua_push_fn push,
                      void (*release)(void *data), void *data) {
  job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  *j = (job){.client = client, .kind = PO_JOB_C, .work = work, .push = push, .release = release, .data = data};
  j->node.run = job_run;
  j->node.drop = job_drop;
  return j;
}

int po_lua_job_push_results(lua_State *L, void *data) {
  job *j = data;
  return po_copy_decode(L, j->results.data, j->results.len, NULL);
}

/* ---- a job as bytes, for another process ----
 *
 * "POJ1", the kind, then three blocks (a 64-bit length, then the bytes):
 * the code, the upvalues, the arguments, each as a job holds them. */

static const char pack_magic[4] = {'P', 'O', 'J', '1'};

static int append_block(po_strbuf *b, const char *p, size_t n) {
  uint64_t len = n;
  int rc = po_strbuf_append(b, &len, sizeof len);
  return rc || n == 0 ? rc : po_strbuf_append(b, p, n);
}

static int take_block(const char **p, const char *end, po_strbuf *out) {
  uint64_t n;
  if ((size_t)(end - *p) < sizeof n) return -1;
  memcpy(&n, *p, sizeof n);
  *p += sizeof n;
  if ((uint64_t)(end - *p) < n) return -1;
  out->data = (char *)*p;
  out->len = (size_t)n;
  *p += n;
  return 0;
}

int po_lua_pack(lua_State *L) {
  job *j = po_lua_job_new(L, NULL, 1, 2, lua_gettop(L) - 1, 0, "po.pool.pack");
  po_strbuf b = {0};
  int rc = po_strbuf_append(&b, pack_magic, sizeof pack_magic);
  if (rc == 0) rc = po_strbuf_append_char(&b, (char)j->kind);
  if (rc == 0) rc = append_block(&b, j->code, j->code_len);
  if (rc == 0) rc = append_block(&b, j->upvalues.data, j->upvalues.len);
  if (rc == 0) rc = append_block(&b, j->args.data, j->args.len);
  po_lua_job_free(j);
  if (rc != 0) {
    po_strbuf_free(&b);
    return luaL_error(L, "po.pool.pack: out of memory");
  }
  lua_pushlstring(L, b.data, b.len);
  po_strbuf_free(&b);
  return 1;
}

int po_lua_unpack(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len), *p = s + sizeof pack_magic + 1, *end = s + len;
  job j = {0};
  po_strbuf code, args;
  if (len < sizeof pack_magic + 1 || memcmp(s, pack_magic, sizeof pack_magic) != 0 ||
      (p[-1] != PO_JOB_BYTECODE && p[-1] != PO_JOB_MODULE) || take_block(&p, end, &code) != 0 ||
      take_block(&p, end, &j.upvalues) != 0 || take_block(&p, end, &args) != 0 || p != end)
    return luaL_error(L, "po.pool.unpack: s is not a job from po.pool.pack");
  j.kind = s[sizeof pack_magic];
  j.code = code.data;
  j.code_len = code.len;
  lua_settop(L, 1);
  lua_pushcfunction(L, push_job_function);
  lua_pushlightuserdata(L, &j);
  lua_call(L, 1, 1);
  set_upvalues(L, &j);
  return 1 + po_copy_decode(L, args.data, args.len, NULL);
}

int po_lua_encode(lua_State *L) {
  po_strbuf b = {0};
  char err[512];
  int rc = po_copy_encode(L, 1, lua_gettop(L), "value[%d]", &b, err, sizeof err);
  if (rc != 0) {
    po_strbuf_free(&b);
    return luaL_error(L, "po.pool.encode: %s", err);
  }
  lua_pushlstring(L, b.data ? b.data : "", b.len);
  po_strbuf_free(&b);
  return 1;
}

int po_lua_decode(lua_State *L) {
  size_t len, used;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_settop(L, 1);
  int n = po_copy_decode(L, s, len, &used);
  if (used != len) return luaL_error(L, "po.pool.decode: s has bytes after the values");
  return n;
}
