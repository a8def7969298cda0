/* A Lua state ready to run poengine code, for the CLI (and later the worker
 * pool): standard libraries, the embedded-module searcher, poengine_core. */
#ifndef PO_RUNTIME_H
#define PO_RUNTIME_H

#include <lua.h>

/* Returns a new state or NULL when memory runs out. The caller closes it. */
lua_State *po_runtime_new(void);

/* The poengine_core module's entry point (also used by `require` from stock
 * luajit, where it installs the searcher for the embedded Lua modules). */
int luaopen_poengine_core(lua_State *L);

#endif
