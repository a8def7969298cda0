/* po.json: encode Lua values to JSON text; the marks po.json.array and
 * po.json.object; the opener of the whole table (decoding is in
 * bind_json_decode.c, the binary cache key in bind_cache_key.c).
 *
 * Encoding writes straight into a po_strbuf kept between calls (no tree, no
 * per-value allocation); bind_walk.h keeps the path, the cycle check, the
 * depth limit and the array rule. */
#include "bind.h"
#include "bind_json.h"
#include "bind_walk.h"

#include "json_check.h"
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENCODER_TYPE "poengine.json.encoder"

/* Output buffer memory kept between encode calls; more is released. */
#define ENCODE_KEEP_BYTES ((size_t)1 << 20)
#define MAX_INDENT 16

/* ---- encoder state ------------------------------------------------------ */

typedef struct sort_key {
  const char *s; /* string key (anchored by its table), or NULL for a number key */
  size_t len;
  lua_Number num;
  char text[PO_JSON_NUMBER_BUF]; /* a number key's JSON text */
} sort_key;

typedef struct encoder {
  po_strbuf out;
  sort_key *keys; /* a stack of per-table key segments (sort_keys mode) */
  size_t keys_len, keys_cap;
  int indent; /* spaces per level, or -1 for compact output */
  int sort;
  int busy;   /* set while a call uses this state (a __gc may re-enter) */
  const void *amark, *omark; /* the array and object marks (metatables), by identity */
  const char *fn;            /* the function named in error messages */
  po_walk walk;
  const void *open[PO_JSON_MAX_DEPTH];
  po_walk_step path[PO_JSON_MAX_DEPTH];
} encoder;

static void encoder_release(encoder *e) {
  po_strbuf_free(&e->out);
  free(e->keys);
  e->keys = NULL;
  e->keys_len = e->keys_cap = 0;
}

static int encoder_gc(lua_State *L) {
  encoder_release(luaL_checkudata(L, 1, ENCODER_TYPE));
  return 0;
}

static encoder *encoder_new(lua_State *L) {
  encoder *e = lua_newuserdata(L, sizeof *e);
  memset(e, 0, sizeof *e);
  po_strbuf_init(&e->out);
  luaL_getmetatable(L, ENCODER_TYPE);
  lua_setmetatable(L, -2);
  return e;
}

/* Makes the state reusable after a call that raises, keeping up to keep
 * bytes of buffer. */
static void enc_abandon(encoder *e, size_t keep) {
  e->busy = 0;
  po_strbuf_reset(&e->out, keep);
  e->keys_len = 0;
}

static void enc_raise(lua_State *L, encoder *e, const char *what) {
  enc_abandon(e, ENCODE_KEEP_BYTES);
  po_walk_raise(L, &e->walk, e->fn, what);
}

static void enc_nomem(lua_State *L, encoder *e) {
  enc_abandon(e, 0);
  luaL_error(L, "%s: out of memory", e->fn);
}

#define PUT(e, L, p, n)                                      \
  do {                                                       \
    if (po_strbuf_append(&(e)->out, (p), (n))) enc_nomem(L, e); \
  } while (0)
#define PUTC(e, L, c)                                          \
  do {                                                         \
    if (po_strbuf_append_char(&(e)->out, (c))) enc_nomem(L, e); \
  } while (0)
#define PUTS(e, L, lit) PUT(e, L, lit, sizeof(lit) - 1)

/* ---- scalars --------------------------------------------------------------- */

/* The JSON text of a finite d (see po_json_format_number, which fails only
 * for NaN and the infinities: callers refuse those first, and NaN cannot be
 * a table key). */
static size_t format_number(lua_Number d, char *buf) {
  size_t n = 0;
  (void)po_json_format_number(d, buf, PO_JSON_NUMBER_BUF, &n);
  return n;
}

static void put_number(lua_State *L, encoder *e, lua_Number d) {
  if (isnan(d)) enc_raise(L, e, "cannot encode NaN");
  if (isinf(d)) enc_raise(L, e, d > 0 ? "cannot encode inf" : "cannot encode -inf");
  char buf[PO_JSON_NUMBER_BUF];
  size_t n = format_number(d, buf);
  PUT(e, L, buf, n);
}

static void put_string(lua_State *L, encoder *e, const char *s, size_t len) {
  if (po_json_append_string(&e->out, s, len)) enc_nomem(L, e);
}

static void put_newline(lua_State *L, encoder *e, int level) {
  if (e->indent < 0) return;
  PUTC(e, L, '\n');
  if (po_strbuf_append_repeat(&e->out, ' ', (size_t)e->indent * (size_t)level)) enc_nomem(L, e);
}

/* ---- tables ------------------------------------------------------------- */

static void encode_value(lua_State *L, encoder *e);

/* Whether the table at t (with that mark) is an array, with *n its highest
 * index; raises for a marked array that breaks the rule (po_walk_shape). One
 * lua_next pass, which stops at the first key that is not an index unless
 * the table is marked an array. */
static int classify(lua_State *L, encoder *e, int t, int mark, size_t *n) {
  if (mark == PO_WALK_OBJECT) return 0;
  size_t count = 0, max = 0;
  int bad_type = LUA_TNONE;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    size_t k = lua_type(L, -1) == LUA_TNUMBER ? po_walk_index_of(lua_tonumber(L, -1)) : 0;
    if (!k) {
      bad_type = lua_type(L, -1);
      lua_pop(L, 1);
      break;
    }
    count++;
    if (k > max) max = k;
  }
  char what[96];
  int array = po_walk_shape(L, mark, count, max, bad_type, what, sizeof what);
  if (array < 0) enc_raise(L, e, what);
  *n = max;
  return array;
}

static void encode_array(lua_State *L, encoder *e, int t, size_t n) {
  if (n == 0) {
    PUTS(e, L, "[]");
    return;
  }
  PUTC(e, L, '[');
  po_walk_step *st = po_walk_slot(&e->walk);
  st->kind = PO_WALK_INDEX;
  po_walk_down(&e->walk);
  for (size_t i = 1; i <= n; i++) {
    if (i > 1) PUTC(e, L, ',');
    put_newline(L, e, e->walk.depth);
    st->index = i;
    lua_rawgeti(L, t, (int)i);
    encode_value(L, e);
    lua_pop(L, 1);
  }
  po_walk_up(&e->walk);
  put_newline(L, e, e->walk.depth - 1);
  PUTC(e, L, ']');
}

/* Writes the key at idx (a string or a number) and records it in the path. */
static void put_key(lua_State *L, encoder *e, int idx) {
  po_walk_step *st = po_walk_slot(&e->walk);
  int type = lua_type(L, idx);
  if (type == LUA_TSTRING) {
    po_walk_set_key(L, idx, st);
    put_string(L, e, st->key, st->keylen);
  } else if (type == LUA_TNUMBER) {
    lua_Number d = lua_tonumber(L, idx);
    if (isinf(d)) enc_raise(L, e, "cannot encode an infinite number as a key");
    po_walk_set_key(L, idx, st);
    char buf[PO_JSON_NUMBER_BUF];
    size_t n = format_number(d, buf);
    PUTC(e, L, '"');
    PUT(e, L, buf, n);
    PUTC(e, L, '"');
  } else {
    char what[64];
    snprintf(what, sizeof what, "cannot encode a %s key", lua_typename(L, type));
    enc_raise(L, e, what); /* at the table's path */
  }
}

static void put_colon(lua_State *L, encoder *e) {
  if (e->indent >= 0)
    PUTS(e, L, ": ");
  else
    PUTC(e, L, ':');
}

static void encode_object_unsorted(lua_State *L, encoder *e, int t) {
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (first) {
      PUTC(e, L, '{');
      first = 0;
    } else {
      PUTC(e, L, ',');
    }
    put_newline(L, e, e->walk.depth);
    put_key(L, e, -2);
    put_colon(L, e);
    po_walk_down(&e->walk);
    encode_value(L, e);
    po_walk_up(&e->walk);
    lua_pop(L, 1);
  }
  if (first) {
    PUTS(e, L, "{}");
    return;
  }
  put_newline(L, e, e->walk.depth - 1);
  PUTC(e, L, '}');
}

static const char *key_bytes(const sort_key *k, size_t *len) {
  if (k->s) {
    *len = k->len;
    return k->s;
  }
  *len = strlen(k->text);
  return k->text;
}

/* Bytes (memcmp, then length); a string key sorts before a number key with
 * the same text, so the order is total. */
static int cmp_keys(const void *pa, const void *pb) {
  const sort_key *a = pa, *b = pb;
  size_t la, lb;
  const char *sa = key_bytes(a, &la), *sb = key_bytes(b, &lb);
  int c = memcmp(sa, sb, la < lb ? la : lb);
  if (c) return c;
  if (la != lb) return la < lb ? -1 : 1;
  return (a->s == NULL) - (b->s == NULL);
}

static void encode_object_sorted(lua_State *L, encoder *e, int t) {
  size_t base = e->keys_len;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (e->keys_len == e->keys_cap) {
      size_t cap = e->keys_cap ? e->keys_cap * 2 : 64;
      sort_key *k = realloc(e->keys, cap * sizeof *k);
      if (!k) enc_nomem(L, e);
      e->keys = k;
      e->keys_cap = cap;
    }
    sort_key *k = &e->keys[e->keys_len];
    int type = lua_type(L, -1);
    if (type == LUA_TSTRING) {
      k->s = lua_tolstring(L, -1, &k->len);
    } else if (type == LUA_TNUMBER) {
      k->s = NULL;
      k->num = lua_tonumber(L, -1);
      if (isinf(k->num)) enc_raise(L, e, "cannot encode an infinite number as a key");
      format_number(k->num, k->text);
    } else {
      char what[64];
      snprintf(what, sizeof what, "cannot encode a %s key", lua_typename(L, type));
      enc_raise(L, e, what);
    }
    e->keys_len++;
  }
  size_t n = e->keys_len - base;
  if (n == 0) {
    PUTS(e, L, "{}");
    return;
  }
  qsort(e->keys + base, n, sizeof *e->keys, cmp_keys);
  PUTC(e, L, '{');
  po_walk_step *st = po_walk_slot(&e->walk);
  po_walk_down(&e->walk);
  for (size_t i = 0; i < n; i++) {
    if (i) PUTC(e, L, ',');
    put_newline(L, e, e->walk.depth);
    sort_key *k = &e->keys[base + i]; /* re-read: nested tables may move e->keys */
    if (k->s) {
      st->kind = PO_WALK_KEY;
      st->key = k->s;
      st->keylen = k->len;
      put_string(L, e, k->s, k->len);
      lua_pushlstring(L, k->s, k->len);
    } else {
      st->kind = PO_WALK_NUMKEY;
      st->num = k->num;
      PUTC(e, L, '"');
      PUT(e, L, k->text, strlen(k->text));
      PUTC(e, L, '"');
      lua_pushnumber(L, k->num);
    }
    put_colon(L, e);
    lua_rawget(L, t);
    encode_value(L, e);
    lua_pop(L, 1);
  }
  po_walk_up(&e->walk);
  e->keys_len = base;
  put_newline(L, e, e->walk.depth - 1);
  PUTC(e, L, '}');
}

static void encode_table(lua_State *L, encoder *e) {
  int t = lua_gettop(L);
  int rc = po_walk_enter(&e->walk, lua_topointer(L, t));
  if (rc == PO_WALK_CYCLE) enc_raise(L, e, "cycle");
  if (rc == PO_WALK_TOO_DEEP) enc_raise(L, e, "nesting deeper than 1000");
  luaL_checkstack(L, 6, "po.json.encode: nesting too deep");

  int mark = po_walk_mark(L, t, e->amark, e->omark);
  size_t n = 0;
  if (classify(L, e, t, mark, &n))
    encode_array(L, e, t, n);
  else if (e->sort)
    encode_object_sorted(L, e, t);
  else
    encode_object_unsorted(L, e, t);
  po_walk_leave(&e->walk);
}

/* Encodes the value at the top of the stack (and leaves it there). */
static void encode_value(lua_State *L, encoder *e) {
  switch (lua_type(L, -1)) {
  case LUA_TNIL:
    PUTS(e, L, "null");
    break;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, -1))
      PUTS(e, L, "true");
    else
      PUTS(e, L, "false");
    break;
  case LUA_TNUMBER:
    put_number(L, e, lua_tonumber(L, -1));
    break;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    put_string(L, e, s, len);
    break;
  }
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, -1) != NULL) enc_raise(L, e, "cannot encode a light userdata");
    PUTS(e, L, "null"); /* po.json.null */
    break;
  case LUA_TTABLE:
    encode_table(L, e);
    break;
  default: {
    char what[64];
    snprintf(what, sizeof what, "cannot encode a %s", luaL_typename(L, -1));
    enc_raise(L, e, what);
  }
  }
}

/* Readies the shared encoder state main for a call (or, if a call is using
 * it already, as when a finalizer encodes, a private state pushed on the
 * stack). */
static encoder *start(lua_State *L, encoder *main, int indent, int sort) {
  encoder *e = main;
  if (e->busy) {
    e = encoder_new(L);
    e->amark = main->amark;
    e->omark = main->omark;
  }
  e->busy = 1;
  e->fn = "po.json.encode";
  e->indent = indent;
  e->sort = sort;
  po_walk_init(&e->walk, e->open, e->path, PO_JSON_MAX_DEPTH);
  e->keys_len = 0;
  e->out.len = 0;
  return e;
}

/* po.json.encode(value [, {indent=, sort_keys=}]) -> string; raises on values
 * JSON cannot hold. Upvalues: 1 the encoder state, 2 array mark, 3 object mark. */
static int l_encode(lua_State *L) {
  static const char *const allowed[] = {"indent", "sort_keys", NULL};
  if (lua_gettop(L) < 1) return luaL_error(L, "po.json.encode: value expected");
  po_check_options(L, 2, "po.json.encode", allowed);

  int indent = -1, sort = 0;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_getfield(L, 2, "indent");
    if (lua_type(L, -1) == LUA_TBOOLEAN) {
      indent = lua_toboolean(L, -1) ? 2 : -1;
    } else if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_Number n = lua_tonumber(L, -1);
      if (n < 0 || n > MAX_INDENT || n != floor(n))
        return luaL_error(L, "po.json.encode: indent must be true, false or an integer from 0 to %d", MAX_INDENT);
      indent = (int)n;
    } else if (!lua_isnil(L, -1)) {
      return luaL_error(L, "po.json.encode: indent must be a boolean or a number, got %s", luaL_typename(L, -1));
    }
    lua_getfield(L, 2, "sort_keys");
    if (lua_type(L, -1) == LUA_TBOOLEAN)
      sort = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1))
      return luaL_error(L, "po.json.encode: sort_keys must be a boolean, got %s", luaL_typename(L, -1));
    lua_pop(L, 2);
  }

  encoder *e = start(L, lua_touserdata(L, lua_upvalueindex(1)), indent, sort);
  lua_pushvalue(L, 1);
  encode_value(L, e);
  e->busy = 0;
  lua_pushlstring(L, e->out.data, e->out.len); /* never empty: every value writes something */
  po_strbuf_reset(&e->out, ENCODE_KEEP_BYTES);
  return 1;
}

/* ---- marks ------------------------------------------------------------ */

static int mark(lua_State *L, const char *fn, int which) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  } else if (lua_type(L, 1) != LUA_TTABLE) {
    return luaL_error(L, "%s: t must be a table or nil, got %s", fn, luaL_typename(L, 1));
  }
  lua_settop(L, 1);
  if (lua_getmetatable(L, 1)) {
    int ours = lua_rawequal(L, -1, lua_upvalueindex(1)) || lua_rawequal(L, -1, lua_upvalueindex(2));
    lua_pop(L, 1);
    if (!ours) return luaL_error(L, "%s: the table already has a metatable", fn);
  }
  lua_pushvalue(L, lua_upvalueindex(which));
  lua_setmetatable(L, 1);
  return 1;
}

/* po.json.array([t]) -> t, marked to encode as a JSON array. */
static int l_array(lua_State *L) {
  return mark(L, "po.json.array", 1);
}

/* po.json.object([t]) -> t, marked to encode as a JSON object. */
static int l_object(lua_State *L) {
  return mark(L, "po.json.object", 2);
}

/* Sets json[name] to a closure of fn over the two marks. */
static void set_marked(lua_State *L, int json, int amark, int omark, const char *name, lua_CFunction fn) {
  lua_pushvalue(L, amark);
  lua_pushvalue(L, omark);
  lua_pushcclosure(L, fn, 2);
  lua_setfield(L, json, name);
}

void po_open_json(lua_State *L) {
  static const luaL_Reg encoder_meta[] = {{"__gc", encoder_gc}, {NULL, NULL}};
  po_register_type(L, ENCODER_TYPE, NULL, encoder_meta);

  lua_createtable(L, 0, 6);
  int json = lua_gettop(L);
  lua_newtable(L); /* the array mark: a metatable compared by identity */
  int amark = lua_gettop(L);
  lua_newtable(L); /* the object mark */
  int omark = lua_gettop(L);

  encoder *e = encoder_new(L);
  e->amark = lua_topointer(L, amark);
  e->omark = lua_topointer(L, omark);
  lua_pushvalue(L, amark);
  lua_pushvalue(L, omark);
  lua_pushcclosure(L, l_encode, 3);
  lua_setfield(L, json, "encode");

  set_marked(L, json, amark, omark, "decode", po_json_decode);
  set_marked(L, json, amark, omark, "array", l_array);
  set_marked(L, json, amark, omark, "object", l_object);
  po_json_open_decode(L);
  po_json_open_key(L, lua_topointer(L, amark), lua_topointer(L, omark));

  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, json, "null");

  lua_settop(L, json);
  lua_setfield(L, -2, "json");
}
