/* For the targets whose code under test is Lua (or is reached through a
 * binding): one poengine Lua state per process, and a checker function the
 * target's Lua chunk returns, called once per input. LuaJIT itself is not
 * instrumented, so coverage comes from the C it calls (bindings, core) and
 * the seeds; the checker's assertions are the properties. */
#ifndef PO_FUZZ_LUA_H
#define PO_FUZZ_LUA_H

#include "fuzz.h"
#include "runtime.h"

#include <lauxlib.h>
#include <lua.h>

static lua_State *fuzz_L;
static int fuzz_checker = LUA_NOREF;

/* The state's finalizers free what the bindings hold (the encoder's
 * buffers), so LeakSanitizer's check at exit sees only real leaks. */
static void fuzz_lua_close(void) { lua_close(fuzz_L); }

/* Runs chunk (which returns a function of one string) and keeps that
 * function; aborts if it fails. */
static void fuzz_lua_init(const char *chunk) {
  fuzz_L = po_runtime_new();
  if (!fuzz_L || luaL_loadstring(fuzz_L, chunk) != 0 || lua_pcall(fuzz_L, 0, 1, 0) != 0) {
    fprintf(stderr, "fuzz: cannot load the checker: %s\n", fuzz_L ? lua_tostring(fuzz_L, -1) : "no memory");
    abort();
  }
  fuzz_checker = luaL_ref(fuzz_L, LUA_REGISTRYINDEX);
  atexit(fuzz_lua_close);
}

/* Calls the checker with data as a Lua string; an error is a failed property. */
static void fuzz_lua_check(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_checker);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "fuzz: property failed: %s\n", msg ? msg : "(error object is not a string)");
    abort();
  }
}

#endif
