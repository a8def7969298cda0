/* The parts of po.json that po_open_json (bind_json.c) puts together. */
#ifndef PO_BIND_JSON_H
#define PO_BIND_JSON_H

#include <lua.h>

/* po.json.decode(text) -> value | nil, message, "EJSON" (bind_json_decode.c).
 * Upvalues: 1 the array mark, 2 the object mark. */
int po_json_decode(lua_State *L);

/* Registers the userdata type po_json_decode uses. */
void po_json_open_decode(lua_State *L);

/* Creates the Lua state's po_json_canonical_key buffer (bind_cache_key.c),
 * which tells arrays by amark and omark, the marks' addresses. */
void po_json_open_key(lua_State *L, const void *amark, const void *omark);

#endif
