/* The per-state event loop, and Lua futures that C operations settle.
 *
 * An operation that completes through the loop (a child process, an HTTP
 * transfer, a worker-pool job) creates a po_lua_future when it starts, which
 * pushes an ordinary Lua future (made by lua/poengine/future.lua through the
 * functions it registers with C when it loads) for the caller
 * to return, and settles it exactly once from a loop callback on the state's
 * own thread with po_lua_future_resolve or po_lua_future_reject. */
#ifndef PO_BIND_LOOP_H
#define PO_BIND_LOOP_H

#include <lua.h>

#include "loop.h"

/* The event loop of L's Lua state, created on first use and freed when the
 * state closes. Raises if it cannot be created. */
po_loop *po_lua_loop(lua_State *L);

typedef struct po_lua_future po_lua_future;

/* Called on the loop's thread when Lua cancels the future (fut:cancel()),
 * so the operation can stop its work (kill a process, abort a transfer). The
 * operation must still settle the handle afterwards; that settle is ignored
 * by Lua, but it frees the handle. */
typedef void (*po_lua_cancel_fn)(void *ud);

/* Pushes a new pending Lua future onto L's stack and returns the handle that
 * settles it. on_cancel may be NULL. Raises on allocation failure. */
po_lua_future *po_lua_future_new(lua_State *L, po_lua_cancel_fn on_cancel, void *ud);

/* Pushes the results of an operation; returns how many it pushed. */
typedef int (*po_lua_push_fn)(lua_State *L, void *data);

/* Settles the future with the values push(L, data) pushes, and frees the
 * handle. Only from a callback of the loop that po_lua_loop(L) returned, on
 * its thread. An error raised while settling is re-raised by the Lua call
 * that is running the loop. */
void po_lua_future_resolve(po_lua_future *f, po_lua_push_fn push, void *data);

/* Fails the future with message and code (waiters get nil, message, code),
 * and frees the handle. Same rules as po_lua_future_resolve. */
void po_lua_future_reject(po_lua_future *f, const char *message, const char *code);

/* The Lua state (thread) running the loop right now, on which a loop
 * callback may call Lua code (through po_pcall, never unprotected, and
 * without waiting: nothing there may yield). Only valid inside a callback of
 * the loop that settles f. */
lua_State *po_lua_future_state(po_lua_future *f);

/* Frees a handle without settling its future, which stays pending and
 * forgets its cancel hook: for an operation that failed to start after its
 * future was made, and for an owner finalized while its state closes
 * (nobody can wait any more). Runs only future.lua's own detach. */
void po_lua_future_drop(lua_State *L, po_lua_future *f);

/* A lua_CFunction: runs the po.async tasks still pending to completion
 * (future.lua's drain), or does nothing when the scheduler never loaded in
 * L's state. Raises what drain raises: call it protected. */
int po_lua_drain_tasks(lua_State *L);

/* Runs on_close(L, ud) when L's state closes, before its loop is freed, so
 * that operations still in flight stop using the loop and release what they
 * hold (without settling: nobody can wait any more). Hooks run in the
 * reverse order of registration. Raises on allocation failure. */
typedef void (*po_lua_close_fn)(lua_State *L, void *ud);
void po_lua_loop_on_close(lua_State *L, po_lua_close_fn on_close, void *ud);

/* A Lua function that C calls back from the loop, many times (the pool's
 * batches report each finished job through one): the function-shaped
 * sibling of a future, for streams of results where a future per item
 * would cost more than the item. */
typedef struct po_lua_callback po_lua_callback;

/* Anchors the function at idx of L's stack and returns its handle. Raises on
 * allocation failure. */
po_lua_callback *po_lua_callback_new(lua_State *L, int idx);

/* Calls the function with the values push(L, data) pushes, protected. Same
 * rules as po_lua_future_resolve: only from a callback of L's loop, on its
 * thread, and an error raised by the function is re-raised by the Lua call
 * that is running the loop. */
void po_lua_callback_call(po_lua_callback *cb, po_lua_push_fn push, void *data);

/* Releases the function and frees the handle (on the state's thread, while
 * the state is open, finalizers included). NULL is ignored. */
void po_lua_callback_free(po_lua_callback *cb);

#endif
