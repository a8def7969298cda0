/* po_json_canonical_key: the cache key of a request table, in the form of
 * src/core/cache_key.h, written straight from the Lua values into a buffer
 * kept by the Lua state.
 *
 * The rules are the sorted JSON encoder's (arrays and objects told apart by
 * bind_walk.h's rule and po.json's marks, the same errors at the same paths)
 * with the keys skip drops left out; what differs is the output (tags and
 * lengths instead of text: nothing to escape or format) and how values are
 * reached: an object's pairs stay on the Lua stack from the one lua_next
 * pass that classifies the table, so no value is looked up again and no
 * string is made. */
#include "bind.h"
#include "bind_json.h"
#include "bind_walk.h"

#include "cache_key.h"
#include "json_check.h"
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_TYPE "poengine.cache_key"

/* Buffer memory kept from one key to the next; more is released when the
 * next key is started (the bytes of a key live until then). */
#define KEY_KEEP_BYTES ((size_t)1 << 20)

typedef struct keyer {
  po_strbuf out;
  po_cache_key_name *names; /* a stack of per-object name segments */
  size_t names_len, names_cap;
  int busy;                  /* set while a call uses this state (a __gc may re-enter) */
  const void *amark, *omark; /* po.json's marks, by identity */
  const char *fn;            /* the function named in error messages */
  po_json_skip_fn skip;      /* object keys to leave out, or NULL */
  po_walk walk;
  const void *open[PO_JSON_MAX_DEPTH];
  po_walk_step path[PO_JSON_MAX_DEPTH];
} keyer;

static int keyer_gc(lua_State *L) {
  keyer *k = luaL_checkudata(L, 1, KEY_TYPE);
  po_strbuf_free(&k->out);
  free(k->names);
  k->names = NULL;
  k->names_len = k->names_cap = 0;
  return 0;
}

static keyer *keyer_new(lua_State *L, const void *amark, const void *omark) {
  keyer *k = lua_newuserdata(L, sizeof *k);
  memset(k, 0, sizeof *k);
  po_strbuf_init(&k->out);
  k->amark = amark;
  k->omark = omark;
  luaL_getmetatable(L, KEY_TYPE);
  lua_setmetatable(L, -2);
  return k;
}

/* Makes the state reusable after a call that raises, keeping up to keep
 * bytes of buffer. */
static void key_abandon(keyer *e, size_t keep) {
  e->busy = 0;
  po_strbuf_reset(&e->out, keep);
  e->names_len = 0;
}

static void key_raise(lua_State *L, keyer *e, const char *what) {
  key_abandon(e, KEY_KEEP_BYTES);
  po_walk_raise(L, &e->walk, e->fn, what);
}

static void key_nomem(lua_State *L, keyer *e) {
  key_abandon(e, 0);
  luaL_error(L, "%s: out of memory", e->fn);
}

#define KPUT(e, L, call)               \
  do {                                 \
    if ((call) != 0) key_nomem(L, e); \
  } while (0)

static void key_value(lua_State *L, keyer *e, int idx);

/* Makes e->names hold at least n names. */
static void names_room(lua_State *L, keyer *e, size_t n) {
  if (e->names_cap >= n) return;
  size_t cap = e->names_cap ? e->names_cap : 64;
  while (cap < n) cap *= 2;
  po_cache_key_name *p = realloc(e->names, cap * sizeof *p);
  if (!p) key_nomem(L, e);
  e->names = p;
  e->names_cap = cap;
}

enum { PAIRS_STEP = 32 }; /* pairs a table makes room for at a time */

/* Whether skip drops key from the object being written (its parent key is
 * the last step of the path, when that is a string key). */
static int skipped(const keyer *e, const char *key, size_t len) {
  const po_walk *w = &e->walk;
  const po_walk_step *parent = w->plen > 0 && w->path[w->plen - 1].kind == PO_WALK_KEY ? &w->path[w->plen - 1] : NULL;
  return e->skip(key, len, parent ? parent->key : NULL, parent ? parent->keylen : 0);
}

/* Writes the object whose names are e->names[nb .. nb + count) (a name's
 * len is its Lua key type when it is not a string; ref the stack slot of its
 * value, or 0 to read it again from t). */
static void key_object(lua_State *L, keyer *e, int t, size_t nb, size_t count) {
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    po_cache_key_name *name = &e->names[nb + i];
    if (name->s) {
      if (e->skip && skipped(e, name->s, name->len)) continue;
    } else if (name->len != LUA_TNUMBER) {
      char what[64];
      snprintf(what, sizeof what, "cannot encode a %s key", lua_typename(L, (int)name->len));
      key_raise(L, e, what);
    } else if (isinf(name->num)) {
      key_raise(L, e, "cannot encode an infinite number as a key");
    }
    e->names[nb + n++] = *name;
  }
  po_cache_key_sort_names(e->names + nb, n);
  KPUT(e, L, po_cache_key_put_container(&e->out, PO_CACHE_KEY_OBJECT, n));
  po_walk_step *st = po_walk_slot(&e->walk);
  po_walk_down(&e->walk);
  for (size_t i = 0; i < n; i++) {
    po_cache_key_name *name = &e->names[nb + i]; /* re-read: nested objects may move e->names */
    if (name->s) {
      st->kind = PO_WALK_KEY;
      st->key = name->s;
      st->keylen = name->len;
    } else {
      st->kind = PO_WALK_NUMKEY;
      st->num = name->num;
    }
    KPUT(e, L, po_cache_key_put_name(&e->out, name));
    if (name->ref) {
      key_value(L, e, name->ref);
    } else {
      if (name->s)
        lua_pushlstring(L, name->s, name->len);
      else
        lua_pushnumber(L, name->num);
      lua_rawget(L, t);
      key_value(L, e, lua_gettop(L));
      lua_pop(L, 1);
    }
  }
  po_walk_up(&e->walk);
}

static void key_table(lua_State *L, keyer *e, int t) {
  int rc = po_walk_enter(&e->walk, lua_topointer(L, t));
  if (rc == PO_WALK_CYCLE) key_raise(L, e, "cycle");
  if (rc == PO_WALK_TOO_DEEP) key_raise(L, e, "nesting deeper than 1000");
  if (!lua_checkstack(L, 8)) key_raise(L, e, "nesting too deep for the Lua stack");
  int mark = po_walk_mark(L, t, e->amark, e->omark);

  /* One lua_next pass reads every key into e->names, sees whether the keys
   * are 1..max (and came in that order), and keeps each pair on the stack
   * while it has room: a C function gets at most LUAI_MAXCSTACK slots, and
   * the tables below this one must still find the few each needs (3 a
   * level) even if none of them keeps its pairs. */
  int reserve = 8 + 3 * (PO_JSON_MAX_DEPTH - e->walk.depth);
  int base = lua_gettop(L), on_stack = 1, bad_type = LUA_TNONE, in_order = 1;
  size_t nb = e->names_len, count = 0, room = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (count == room) {
      room += PAIRS_STEP;
      names_room(L, e, nb + room);
      if (on_stack && !lua_checkstack(L, reserve + 2 * PAIRS_STEP)) on_stack = 0;
    }
    po_cache_key_name *name = &e->names[nb + count];
    int kt = lua_type(L, -2);
    name->s = NULL;
    name->len = (size_t)kt;
    if (kt == LUA_TSTRING) {
      name->s = lua_tolstring(L, -2, &name->len); /* anchored by t */
    } else if (kt == LUA_TNUMBER) {
      name->num = lua_tonumber(L, -2);
      size_t k = po_walk_index_of(name->num);
      if (k) {
        if (k > max) max = k;
        if (k != count + 1) in_order = 0;
        kt = LUA_TNONE; /* an array index */
      }
    }
    if (kt != LUA_TNONE && bad_type == LUA_TNONE) bad_type = kt;
    count++;
    if (on_stack) {
      name->ref = lua_gettop(L);
      lua_pushvalue(L, -2);
    } else {
      name->ref = 0;
      lua_pop(L, 1);
    }
  }
  e->names_len = nb + count;

  char what[96];
  int array = po_walk_shape(L, mark, count, max, bad_type, what, sizeof what);
  if (array < 0) key_raise(L, e, what);

  if (array) {
    KPUT(e, L, po_cache_key_put_container(&e->out, PO_CACHE_KEY_ARRAY, max));
    po_walk_step *st = po_walk_slot(&e->walk);
    st->kind = PO_WALK_INDEX;
    po_walk_down(&e->walk);
    /* Keys 1..max in order with every value kept: the values are on the stack already. */
    int direct = count > 0 && in_order && max == count && e->names[nb + count - 1].ref != 0;
    for (size_t i = 1; i <= max; i++) {
      st->index = i;
      if (direct) {
        key_value(L, e, e->names[nb + i - 1].ref);
      } else {
        lua_rawgeti(L, t, (int)i);
        key_value(L, e, lua_gettop(L));
        lua_pop(L, 1);
      }
    }
    po_walk_up(&e->walk);
  } else {
    key_object(L, e, t, nb, count);
  }
  e->names_len = nb;
  lua_settop(L, base);
  po_walk_leave(&e->walk);
}

/* Writes the value at idx (an absolute index). */
static void key_value(lua_State *L, keyer *e, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    KPUT(e, L, po_cache_key_put_tag(&e->out, PO_CACHE_KEY_NULL));
    break;
  case LUA_TBOOLEAN:
    KPUT(e, L, po_cache_key_put_tag(&e->out, lua_toboolean(L, idx) ? PO_CACHE_KEY_TRUE : PO_CACHE_KEY_FALSE));
    break;
  case LUA_TNUMBER: {
    lua_Number d = lua_tonumber(L, idx);
    if (isnan(d)) key_raise(L, e, "cannot encode NaN");
    if (isinf(d)) key_raise(L, e, d > 0 ? "cannot encode inf" : "cannot encode -inf");
    KPUT(e, L, po_cache_key_put_number(&e->out, d));
    break;
  }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    KPUT(e, L, po_cache_key_put_string(&e->out, s, len));
    break;
  }
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) {
      KPUT(e, L, po_cache_key_put_tag(&e->out, PO_CACHE_KEY_NULL));
      break;
    }
    key_raise(L, e, "cannot encode a light userdata");
    break;
  case LUA_TTABLE:
    key_table(L, e, idx);
    break;
  default: {
    char what[64];
    snprintf(what, sizeof what, "cannot encode a %s", luaL_typename(L, idx));
    key_raise(L, e, what);
  }
  }
}

static char keyer_key; /* its address: the registry key of the state's keyer, for the hot path */

const char *po_json_canonical_key(lua_State *L, int idx, const char *fn, po_json_skip_fn skip, size_t *len) {
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  lua_pushlightuserdata(L, &keyer_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  keyer *main = lua_touserdata(L, -1), *e = main;
  if (e->busy) { /* a finalizer that makes a key while one is being made: a private state */
    e = keyer_new(L, main->amark, main->omark);
    lua_replace(L, -2); /* the private state is the anchor */
  }
  e->busy = 1;
  e->fn = fn;
  e->skip = skip;
  po_walk_init(&e->walk, e->open, e->path, PO_JSON_MAX_DEPTH);
  e->names_len = 0;
  po_strbuf_reset(&e->out, KEY_KEEP_BYTES);
  KPUT(e, L, po_cache_key_put_start(&e->out));
  key_value(L, e, idx);
  e->busy = 0;
  *len = e->out.len;
  return e->out.data;
}

void po_json_open_key(lua_State *L, const void *amark, const void *omark) {
  static const luaL_Reg meta[] = {{"__gc", keyer_gc}, {NULL, NULL}};
  po_register_type(L, KEY_TYPE, NULL, meta);
  lua_pushlightuserdata(L, &keyer_key);
  keyer_new(L, amark, omark);
  lua_rawset(L, LUA_REGISTRYINDEX);
}
