/* po.run: child processes (src/core/proc.c) as futures of a result table.
 *
 * Each Lua state keeps the runs it started in a list owned by a userdata in
 * its registry; when the state closes, children still running are killed
 * and reaped (the list is created after the state's loop, so it is
 * finalized first). */
#include "bind.h"
#include "bind_loop.h"

#include "error.h"
#include "proc.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

#define PROCS_TYPE "poengine.procs"
#define DEFAULT_KILL_GRACE 2.0
#define DEFAULT_OUTPUT_LIMIT ((size_t)16 << 20)

typedef struct run {
  struct run *prev, *next;
  struct procs *owner;
  po_proc *proc;
  po_lua_future *fut;
  char *argv0, *cwd; /* for the error message of a run that could not start */
} run;

typedef struct procs {
  run *head;
} procs;

static const char procs_key = 0;

static void run_unlink(run *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    r->owner->head = r->next;
  if (r->next) r->next->prev = r->prev;
}

static void run_free(run *r) {
  free(r->argv0);
  free(r->cwd);
  free(r);
}

static int procs_gc(lua_State *L) {
  procs *ps = luaL_checkudata(L, 1, PROCS_TYPE);
  while (ps->head) {
    run *r = ps->head;
    run_unlink(r);
    po_proc_free(r->proc); /* kills the group and reaps the child */
    po_lua_future_drop(L, r->fut);
    run_free(r);
  }
  return 0;
}

static procs *state_procs(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&procs_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  procs *ps = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (ps) return ps;
  po_lua_loop(L); /* the loop first: finalizers run newest first */
  static const luaL_Reg meta[] = {{"__gc", procs_gc}, {NULL, NULL}};
  po_register_type(L, PROCS_TYPE, NULL, meta);
  lua_pushlightuserdata(L, (void *)&procs_key);
  ps = lua_newuserdata(L, sizeof *ps);
  ps->head = NULL;
  luaL_getmetatable(L, PROCS_TYPE);
  lua_setmetatable(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return ps;
}

/* ---- the result table ---- */

static const char *status_name(int status) {
  switch (status) {
  case PO_PROC_OK: return "ok";
  case PO_PROC_FAILED: return "failed";
  case PO_PROC_TIMEOUT: return "timeout";
  case PO_PROC_ERROR: return "error";
  default: return "running";
  }
}

static int push_result(lua_State *L, void *data) {
  run *r = data;
  po_proc_result res;
  po_proc_result_get(r->proc, &res);
  lua_createtable(L, 0, 10);
  lua_pushstring(L, status_name(res.status));
  lua_setfield(L, -2, "status");
  if (res.exit_code >= 0) {
    lua_pushinteger(L, res.exit_code);
    lua_setfield(L, -2, "code");
  }
  const char *sig = po_signal_name(res.signal);
  if (sig) {
    lua_pushstring(L, sig);
    lua_setfield(L, -2, "signal");
  }
  lua_pushlstring(L, res.out ? res.out : "", res.out_len);
  lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, res.err ? res.err : "", res.err_len);
  lua_setfield(L, -2, "stderr");
  lua_pushboolean(L, res.truncated);
  lua_setfield(L, -2, "truncated");
  lua_pushnumber(L, res.duration);
  lua_setfield(L, -2, "duration");
  if (res.pid > 0) {
    lua_pushinteger(L, res.pid);
    lua_setfield(L, -2, "pid");
  }
  if (res.status == PO_PROC_ERROR) {
    if (strcmp(res.error_what, "execute") == 0)
      lua_pushfstring(L, "cannot execute '%s': %s", r->argv0, strerror(res.error));
    else if (strcmp(res.error_what, "change directory to") == 0)
      lua_pushfstring(L, "cannot change directory to '%s': %s", r->cwd ? r->cwd : "", strerror(res.error));
    else
      lua_pushfstring(L, "cannot %s: %s", res.error_what, strerror(res.error));
    lua_setfield(L, -2, "error");
  }
  return 1;
}

static void on_done(po_proc *p, void *ud) {
  run *r = ud;
  run_unlink(r);
  po_lua_future_resolve(r->fut, push_result, r);
  po_proc_free(p);
  run_free(r);
}

static void on_cancel(void *ud) {
  run *r = ud;
  po_proc_terminate(r->proc);
}

/* ---- po.run(spec) ---- */

static double opt_seconds(lua_State *L, const char *field, double dflt, int positive) {
  lua_getfield(L, 1, field);
  double v = dflt;
  if (!lua_isnil(L, -1)) {
    v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
    if (isnan(v) || (positive ? v <= 0 : v < 0)) {
      if (lua_type(L, -1) == LUA_TNUMBER)
        luaL_error(L, "po.run: %s must be a %s number of seconds, got %s", field,
                   positive ? "positive" : "non-negative", lua_tostring(L, -1));
      luaL_error(L, "po.run: %s must be a %s number of seconds, got %s", field,
                 positive ? "positive" : "non-negative", luaL_typename(L, -1));
    }
  }
  lua_pop(L, 1);
  return v;
}

/* Pushes argv strings into the anchor table and returns their count. */
static int collect_argv(lua_State *L, int anchor) {
  lua_getfield(L, 1, "argv");
  lua_getfield(L, 1, "cmd");
  lua_getfield(L, 1, "shell");
  int has_argv = !lua_isnil(L, -3), has_cmd = !lua_isnil(L, -2), shell = lua_toboolean(L, -1);
  if (has_argv && has_cmd) luaL_error(L, "po.run: give argv or cmd, not both");
  if (has_cmd) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "po.run: cmd must be a string, got %s", luaL_typename(L, -2));
    if (!shell)
      luaL_error(L, "po.run: cmd needs shell = true (a command line never goes to a shell implicitly); "
                    "or pass argv = {...}");
    const char *sh[] = {"/bin/sh", "-c"};
    for (int i = 0; i < 2; i++) {
      lua_pushstring(L, sh[i]);
      lua_rawseti(L, anchor, i + 1);
    }
    lua_pushvalue(L, -2);
    lua_rawseti(L, anchor, 3);
    lua_pop(L, 3);
    return 3;
  }
  if (!has_argv) luaL_error(L, "po.run: argv (a list of strings) is required");
  if (shell) luaL_error(L, "po.run: shell = true needs cmd = \"command line\", not argv");
  if (lua_type(L, -3) != LUA_TTABLE) luaL_error(L, "po.run: argv must be a table of strings, got %s", luaL_typename(L, -3));
  int n = (int)lua_objlen(L, -3);
  if (n == 0) luaL_error(L, "po.run: argv must not be empty");
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -3, i);
    int t = lua_type(L, -1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_error(L, "po.run: argv[%d] must be a string, got %s", i, luaL_typename(L, -1));
    lua_tostring(L, -1); /* numbers become strings */
    lua_rawseti(L, anchor, i);
  }
  lua_pop(L, 3);
  return n;
}

static int env_has(lua_State *L, int env, const char *entry) {
  const char *eq = strchr(entry, '=');
  if (!eq) return 0;
  lua_pushlstring(L, entry, (size_t)(eq - entry));
  lua_rawget(L, env);
  int has = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return has;
}

/* Builds the environment: returns NULL to inherit the parent's as it is,
 * else a NULL-terminated list in a userdata pushed on the stack (its
 * strings anchored in the anchor table at `anchor`, from index `at`). */
static const char **collect_env(lua_State *L, int anchor, int at) {
  lua_getfield(L, 1, "inherit_env");
  int inherit = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "env");
  int env = lua_gettop(L);
  if (!lua_isnil(L, env) && !lua_istable(L, env))
    luaL_error(L, "po.run: env must be a table of name = value, got %s", luaL_typename(L, env));
  if (lua_isnil(L, env) && inherit) {
    lua_pop(L, 1);
    return NULL;
  }
  int count = 0;
  if (inherit)
    for (char **e = environ; *e; e++) count++;
  if (!lua_isnil(L, env)) {
    lua_pushnil(L);
    while (lua_next(L, env)) {
      lua_pop(L, 1);
      count++;
    }
  }
  const char **list = lua_newuserdata(L, (size_t)(count + 1) * sizeof *list);
  int n = 0;
  if (inherit) {
    for (char **e = environ; *e; e++) {
      if (lua_isnil(L, env) || !env_has(L, env, *e)) list[n++] = *e;
    }
  }
  if (!lua_isnil(L, env)) {
    lua_pushnil(L);
    while (lua_next(L, env)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "po.run: env names must be strings, got %s", luaL_typename(L, -2));
      const char *name = lua_tostring(L, -2);
      if (!*name || strchr(name, '=')) luaL_error(L, "po.run: env name '%s' is not a valid variable name", name);
      int t = lua_type(L, -1);
      if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        lua_pushfstring(L, "%s=%s", name, lua_tostring(L, -1));
        list[n++] = lua_tostring(L, -1);
        lua_rawseti(L, anchor, at++);
      } else if (!(t == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        luaL_error(L, "po.run: env.%s must be a string, a number or false (to unset it), got %s", name,
                   luaL_typename(L, -1));
      }
      lua_pop(L, 1);
    }
  }
  list[n] = NULL;
  lua_remove(L, env); /* the list's userdata stays on the stack */
  return list;
}

static char *dup_or_null(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static int new_future_protected(lua_State *L) {
  run *r = lua_touserdata(L, 1);
  r->fut = po_lua_future_new(L, on_cancel, r);
  return 1;
}

static const char *const run_options[] = {"argv",  "cmd",     "shell",      "cwd",          "env", "inherit_env",
                                          "stdin", "timeout", "kill_grace", "output_limit", "cpu", NULL};

static int l_run(lua_State *L) {
  if (lua_type(L, 1) != LUA_TTABLE) return luaL_error(L, "po.run: spec must be a table, got %s", luaL_typename(L, 1));
  lua_settop(L, 1);
  po_check_options(L, 1, "po.run", run_options);
  po_proc_opts o = {0};
  lua_newtable(L); /* 2: anchor for the strings handed to C */
  int argc = collect_argv(L, 2);
  const char **argv = lua_newuserdata(L, (size_t)(argc + 1) * sizeof *argv); /* 3 */
  for (int i = 0; i < argc; i++) {
    lua_rawgeti(L, 2, i + 1);
    argv[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  argv[argc] = NULL;
  o.argv = argv;
  o.envp = collect_env(L, 2, argc + 1);

  lua_getfield(L, 1, "cwd");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    return luaL_error(L, "po.run: cwd must be a string, got %s", luaL_typename(L, -1));
  o.cwd = lua_tostring(L, -1);
  lua_rawseti(L, 2, 0);
  lua_getfield(L, 1, "stdin");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    return luaL_error(L, "po.run: stdin must be a string, got %s", luaL_typename(L, -1));
  o.input = lua_tolstring(L, -1, &o.input_len);
  lua_rawseti(L, 2, -1);
  o.timeout = opt_seconds(L, "timeout", 0, 1);
  o.kill_grace = opt_seconds(L, "kill_grace", DEFAULT_KILL_GRACE, 0);
  o.output_limit = DEFAULT_OUTPUT_LIMIT;
  lua_getfield(L, 1, "output_limit");
  if (!lua_isnil(L, -1)) {
    lua_Number lim = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    if (!(lim >= 0 && lim == floor(lim) && lim < 9e15))
      return luaL_error(L, "po.run: output_limit must be a non-negative whole number of bytes");
    o.output_limit = (size_t)lim;
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "cpu");
  if (!lua_isnil(L, -1)) {
    lua_Number cpu = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    if (!(cpu >= 0 && cpu == floor(cpu) && cpu < 1e6))
      return luaL_error(L, "po.run: cpu must be a non-negative whole number (one of po.cpus())");
    o.pin = 1;
    o.cpu = (int)cpu;
  }
  lua_pop(L, 1);

  procs *ps = state_procs(L);
  run *r = calloc(1, sizeof *r);
  if (r) {
    r->argv0 = dup_or_null(argv[0]);
    r->cwd = dup_or_null(o.cwd);
  }
  if (!r || !r->argv0 || (o.cwd && !r->cwd)) {
    if (r) run_free(r);
    return luaL_error(L, "po.run: out of memory");
  }
  lua_pushcfunction(L, new_future_protected);
  lua_pushlightuserdata(L, r);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    run_free(r);
    return lua_error(L);
  }
  int rc = po_proc_start(po_lua_loop(L), &o, on_done, r, &r->proc);
  if (rc != 0) {
    po_lua_future_drop(L, r->fut);
    run_free(r);
    return luaL_error(L, "po.run: cannot start a process: %s", po_strerror(rc));
  }
  r->owner = ps;
  r->next = ps->head;
  if (ps->head) ps->head->prev = r;
  ps->head = r;
  return 1;
}

/* po.cpus() -> { cpu, ... } | nil, message, code */
static int l_cpus(lua_State *L) {
  int buf[1024], n = 0;
  int rc = po_proc_cpus(buf, 1024, &n);
  if (rc != 0) return po_push_error(L, rc, "po.cpus: cannot read the CPU affinity mask");
  if (n > 1024) n = 1024;
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, buf[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* core.signal_name(number) -> "SIGKILL" | nil: the names po.run results
 * use, for runs whose signal number comes from elsewhere (Slurm's records). */
static int l_signal_name(lua_State *L) {
  const char *name = po_signal_name((int)luaL_checkinteger(L, 1));
  if (!name) return 0;
  lua_pushstring(L, name);
  return 1;
}

void po_open_proc(lua_State *L) {
  static const luaL_Reg fns[] = {{"run", l_run}, {"cpus", l_cpus}, {"signal_name", l_signal_name}, {NULL, NULL}};
  po_set_funcs(L, fns);
}
