/* Copying plain Lua values between Lua states (the worker pool): nil,
 * booleans, numbers, strings and tables of these, encoded into a byte buffer
 * in one state and decoded in another. Tables are copied deep (a table met
 * twice is copied twice; one inside itself is refused); metatables are not
 * copied. */
#ifndef PO_BIND_COPY_H
#define PO_BIND_COPY_H

#include <lua.h>

#include "strbuf.h"

/* Deepest table nesting that can be copied. */
#define PO_COPY_MAX_DEPTH 200

/* Appends the n values at stack slots first..first+n-1 to b as one block.
 * Returns 0; or PO_EINVAL with a message naming the value's path in err
 * ("cannot copy a function at args[2].run"), or PO_ENOMEM. root is a
 * printf format for the start of the path, given the value's 1-based
 * position as an int ("args[%d]"; "upvalue 'x'" ignores it). Never raises
 * except on Lua memory errors. */
int po_copy_encode(lua_State *L, int first, int n, const char *root, po_strbuf *b, char *err, size_t errlen);

/* Pushes the values of the block at the start of data and returns how
 * many; *used (optional) gets the block's size, so blocks can follow one
 * another. Raises only on memory errors (or on bytes that po_copy_encode
 * did not write). */
int po_copy_decode(lua_State *L, const char *data, size_t len, size_t *used);

#endif
