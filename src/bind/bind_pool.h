/* The worker pool as other bindings use it: work in C that needs no Lua
 * state (po.files), with its result settled as a Lua future. */
#ifndef PO_BIND_POOL_H
#define PO_BIND_POOL_H

#include <lua.h>

#include "bind_loop.h"

typedef void (*po_lua_pool_work_fn)(void *data);

/* Pushes a future and queues work(data) on L's pool (starting it if
 * needed). On L's loop afterwards the future is resolved with the values
 * push(L, data) pushes, and release(data) is called. If the job never runs
 * (the pool was shut down), the future fails with ECANCELED and release is
 * still called. Raises (after release) naming fname when it cannot queue. */
void po_lua_pool_run(lua_State *L, const char *fname, po_lua_pool_work_fn work, po_lua_push_fn push,
                     void (*release)(void *data), void *data);

#endif
