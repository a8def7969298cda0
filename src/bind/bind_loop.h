/* The per-state event loop, for bindings whose operations complete through it. */
#ifndef PO_BIND_LOOP_H
#define PO_BIND_LOOP_H

#include <lua.h>

#include "loop.h"

/* The event loop of L's Lua state, created on first use and freed when the
 * state closes. Raises if it cannot be created. */
po_loop *po_lua_loop(lua_State *L);

#endif
