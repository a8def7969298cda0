#include "bind.h"

#include "error.h"

#include <stdarg.h>
#include <string.h>

static int push_error_v(lua_State *L, const char *code_name, const char *fmt, va_list ap) {
  lua_pushnil(L);
  lua_pushvfstring(L, fmt, ap);
  lua_pushstring(L, code_name);
  return 3;
}

int po_push_error(lua_State *L, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_error_v(L, po_errname(code), fmt, ap);
  va_end(ap);
  return 3;
}

int po_push_error_named(lua_State *L, const char *code_name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_error_v(L, code_name, fmt, ap);
  va_end(ap);
  return 3;
}

int po_traceback(lua_State *L) {
  if (!lua_isstring(L, 1) || lua_type(L, 1) == LUA_TNUMBER) {
    if (!luaL_callmeta(L, 1, "__tostring")) return 1; /* an error object: keep it as it is */
    if (!lua_isstring(L, -1)) return 1;
    lua_replace(L, 1);
  }
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

void po_push_cfunction(lua_State *L, const void *key, lua_CFunction fn) {
  lua_pushlightuserdata(L, (void *)key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_type(L, -1) == LUA_TFUNCTION) return;
  lua_pop(L, 1);
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, (void *)key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

static const char traceback_key = 0;

int po_pcall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  po_push_cfunction(L, &traceback_key, po_traceback);
  lua_insert(L, base);
  int rc = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return rc;
}

void po_check_options(lua_State *L, int idx, const char *fn, const char *const allowed[]) {
  if (lua_isnoneornil(L, idx)) return;
  if (lua_type(L, idx) != LUA_TTABLE) {
    luaL_error(L, "%s: options must be a table, got %s", fn, luaL_typename(L, idx));
    return;
  }
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      luaL_error(L, "%s: option names must be strings, got %s", fn, luaL_typename(L, -1));
      return;
    }
    const char *key = lua_tostring(L, -1);
    int known = 0;
    for (const char *const *a = allowed; *a; a++) {
      if (strcmp(*a, key) == 0) {
        known = 1;
        break;
      }
    }
    if (!known) {
      luaL_error(L, "%s: unknown option '%s'", fn, key);
      return;
    }
  }
}

void po_register_type(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta) {
  if (!luaL_newmetatable(L, name)) {
    lua_pop(L, 1);
    return;
  }
  po_set_funcs(L, meta);
  lua_newtable(L);
  po_set_funcs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

void po_set_funcs(lua_State *L, const luaL_Reg *fns) {
  for (; fns && fns->name; fns++) {
    lua_pushcfunction(L, fns->func);
    lua_setfield(L, -2, fns->name);
  }
}
