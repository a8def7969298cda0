/* po.json.decode: JSON text to Lua values.
 *
 * The text is validated strictly first (src/core/json_check.c), then cJSON
 * builds the tree and it is converted; the validator's string lengths keep
 * strings with \u0000 exact. */
#include "bind.h"
#include "bind_json.h"

#include "error.h"
#include "json_check.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <stdio.h>

#define TREE_TYPE "poengine.json.tree"

typedef struct conv {
  const size_t *lens; /* decoded string lengths in document order, or NULL */
  size_t next;
} conv;

static void push_str(lua_State *L, const char *s, conv *c) {
  if (c->lens)
    lua_pushlstring(L, s, c->lens[c->next++]);
  else
    lua_pushstring(L, s);
}

/* Pushes the Lua value of it. Upvalues: 1 array mark, 2 object mark. */
static void push_item(lua_State *L, const cJSON *it, conv *c) {
  switch (it->type & 0xFF) {
  case cJSON_False:
    lua_pushboolean(L, 0);
    return;
  case cJSON_True:
    lua_pushboolean(L, 1);
    return;
  case cJSON_NULL:
    lua_pushlightuserdata(L, NULL);
    return;
  case cJSON_Number:
    lua_pushnumber(L, it->valuedouble);
    return;
  case cJSON_String:
    push_str(L, it->valuestring, c);
    return;
  case cJSON_Array: {
    int n = 0;
    for (const cJSON *ch = it->child; ch; ch = ch->next) n++;
    luaL_checkstack(L, 4, "po.json.decode: nesting too deep");
    lua_createtable(L, n, 0);
    int i = 1;
    for (const cJSON *ch = it->child; ch; ch = ch->next) {
      push_item(L, ch, c);
      lua_rawseti(L, -2, i++);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setmetatable(L, -2);
    return;
  }
  case cJSON_Object: {
    int n = 0;
    for (const cJSON *ch = it->child; ch; ch = ch->next) n++;
    luaL_checkstack(L, 4, "po.json.decode: nesting too deep");
    lua_createtable(L, 0, n);
    for (const cJSON *ch = it->child; ch; ch = ch->next) {
      push_str(L, ch->string, c);
      push_item(L, ch, c);
      lua_rawset(L, -3); /* a repeated key: the last one wins */
    }
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_setmetatable(L, -2);
    return;
  }
  default:
    lua_pushnil(L); /* cJSON_Raw/Invalid: never produced by the parser */
  }
}

static int tree_gc(lua_State *L) {
  cJSON **box = luaL_checkudata(L, 1, TREE_TYPE);
  cJSON_Delete(*box);
  *box = NULL;
  return 0;
}

int po_json_decode(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "po.json.decode: text must be a string, got %s", luaL_typename(L, 1));
  size_t len;
  const char *text = lua_tolstring(L, 1, &len);

  po_json_check_result r;
  int rc = po_json_check(text, len, PO_JSON_MAX_DEPTH, &r);
  if (rc) {
    char off[32];
    snprintf(off, sizeof off, "%zu", r.error_offset);
    if (rc == PO_ETOODEEP)
      return po_push_error(L, PO_EJSON, "po.json.decode: nesting deeper than %d at byte %s", PO_JSON_MAX_DEPTH, off);
    return po_push_error(L, PO_EJSON, "po.json.decode: %s at byte %s", r.error_reason, off);
  }

  conv c = {NULL, 0};
  if (r.has_nul_escape) {
    size_t *lens = lua_newuserdata(L, r.string_count * sizeof *lens);
    if (po_json_string_lengths(text, len, lens, r.string_count))
      return luaL_error(L, "po.json.decode: internal error measuring strings");
    c.lens = lens;
  }

  cJSON **box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  luaL_getmetatable(L, TREE_TYPE);
  lua_setmetatable(L, -2);

  /* From here to the parse, no Lua call: tmp cannot leak. */
  if (r.has_long_number) {
    po_strbuf tmp;
    po_strbuf_init(&tmp);
    if (po_json_shorten_numbers(text, len, &tmp) == 0) *box = cJSON_ParseWithLengthOpts(tmp.data, tmp.len, NULL, 0);
    po_strbuf_free(&tmp);
  } else {
    *box = cJSON_ParseWithLengthOpts(text, len, NULL, 0);
  }
  if (!*box) return po_push_error(L, PO_ENOMEM, "po.json.decode: out of memory");

  push_item(L, *box, &c);
  cJSON_Delete(*box);
  *box = NULL;
  return 1;
}


void po_json_open_decode(lua_State *L) {
  static const luaL_Reg tree_meta[] = {{"__gc", tree_gc}, {NULL, NULL}};
  po_register_type(L, TREE_TYPE, NULL, tree_meta);
}
