/* Helpers shared by the binding files: argument checks, the error triple,
 * protected calls with a traceback, userdata registration.
 *
 * Bindings convert and check; algorithms live in src/core. */
#ifndef PO_BIND_H
#define PO_BIND_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* Pushes the runtime-failure triple nil, message, code name (po_errname) and
 * returns 3, for `return po_push_error(L, code, "...", ...)`. */
int po_push_error(lua_State *L, int code, const char *fmt, ...);

/* Like po_push_error with a code name given as a string ("EJSON"). */
int po_push_error_named(lua_State *L, const char *code_name, const char *fmt, ...);

/* Message handler for lua_pcall: appends a traceback to string errors (and to
 * values with __tostring); other error values pass through unchanged, so that
 * callers can tell an error object from a message. */
int po_traceback(lua_State *L);

/* lua_pcall with po_traceback as the message handler. */
int po_pcall(lua_State *L, int nargs, int nresults);

/* Pushes the C function fn, made once per Lua state and kept in the registry
 * under key (the address of a static variable of the caller's): in LuaJIT
 * lua_pushcfunction allocates a new closure at every call, which adds up on
 * paths taken once per job. */
void po_push_cfunction(lua_State *L, const void *key, lua_CFunction fn);

/* Raises "fn: unknown option 'x'" when the table at idx has a key that is not
 * in allowed (a NULL-terminated list), or a key that is not a string. A nil
 * or absent argument is accepted. Any other non-table raises too. */
void po_check_options(lua_State *L, int idx, const char *fn, const char *const allowed[]);

/* Registers a userdata type once: metatable `name` with methods as __index
 * and meta (e.g. __gc, __tostring) as metamethods. */
void po_register_type(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta);

/* Sets the functions of fns as fields of the table at the top of the stack. */
void po_set_funcs(lua_State *L, const luaL_Reg *fns);

/* Decides whether po_json_canonical_key leaves an object key out: key is the
 * key, parent the key under which the object itself sits (NULL at the top
 * or inside an array). */
typedef int (*po_json_skip_fn)(const char *key, size_t len, const char *parent, size_t parent_len);

/* Writes the canonical binary key of the value at idx (the form of
 * src/core/cache_key.h) under the sorted encoder's rules: the same arrays and
 * objects, the keys skip drops left out, the same errors ("<fn>: cycle at
 * $.a.b", "<fn>: cannot encode a function at $.f" ...). The bytes live in a
 * buffer of the Lua state, reused from call to call; no Lua string is made.
 * Returns them and their number in *len, and pushes one value that owns them:
 * they stay valid until the caller pops it, provided no Lua code runs
 * meanwhile. */
const char *po_json_canonical_key(lua_State *L, int idx, const char *fn, po_json_skip_fn skip, size_t *len);

/* The binding openers, in the order luaopen_poengine_core calls them (the
 * one list: it declares them here and calls them in bind_core.c). Each
 * po_open_x(L) adds concept x's functions to the table on top of the stack. */
#define PO_BINDINGS(X) \
  X(loop) \
  X(json) \
  X(metrics) \
  X(store) \
  X(cache) \
  X(semantic) \
  X(proc) \
  X(pool) \
  X(files) \
  X(dir) \
  X(http) \
  X(httpd) \
  X(redis)

#define PO_DECLARE_OPENER(x) void po_open_##x(lua_State *L);
PO_BINDINGS(PO_DECLARE_OPENER)
#undef PO_DECLARE_OPENER

#endif
