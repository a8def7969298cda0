#include "bind_copy.h"

#include "bind.h"
#include "bind_walk.h"

#include "error.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { T_NIL = 'n', T_FALSE = 'f', T_TRUE = 't', T_NUMBER = 'd', T_STRING = 's', T_TABLE = '{', T_END = '}' };

typedef struct encoder {
  lua_State *L;
  po_strbuf *b;
  const char *root;
  int position; /* of the value being encoded, 1-based */
  po_walk walk;
  char *err;
  size_t errlen;
} encoder;

static int fail(encoder *e, const char *what) {
  char root[160], path[1200];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  snprintf(root, sizeof root, e->root, e->position);
#pragma GCC diagnostic pop
  po_walk_where(&e->walk, root, path, sizeof path);
  snprintf(e->err, e->errlen, "%s at %s", what, path);
  return PO_EINVAL;
}

static int put(encoder *e, const void *p, size_t n) { return po_strbuf_append(e->b, p, n); }

static int encode_value(encoder *e, int idx);

static int encode_table(encoder *e, int idx) {
  lua_State *L = e->L;
  int rc = po_walk_enter(&e->walk, lua_topointer(L, idx));
  if (rc == PO_WALK_CYCLE) return fail(e, "cannot copy a table that contains itself (a cycle)");
  if (rc == PO_WALK_TOO_DEEP) return fail(e, "tables nested too deep to copy");
  if (!lua_checkstack(L, 6)) {
    po_walk_leave(&e->walk);
    return PO_ENOMEM;
  }
  char tag = T_TABLE;
  rc = put(e, &tag, 1);
  lua_pushnil(L);
  while (rc == 0 && lua_next(L, idx)) {
    int kt = po_walk_set_key(L, -2, po_walk_slot(&e->walk));
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) {
      char what[64];
      snprintf(what, sizeof what, "cannot copy a %s key", lua_typename(L, kt));
      rc = fail(e, what); /* at the table's path */
      lua_pop(L, 2);
      break;
    }
    po_walk_down(&e->walk);
    rc = encode_value(e, lua_gettop(L) - 1);
    if (rc == 0) rc = encode_value(e, lua_gettop(L));
    po_walk_up(&e->walk);
    lua_pop(L, 1);
    if (rc != 0) lua_pop(L, 1);
  }
  if (rc == 0) {
    tag = T_END;
    rc = put(e, &tag, 1);
  }
  po_walk_leave(&e->walk);
  return rc;
}

static int encode_value(encoder *e, int idx) {
  lua_State *L = e->L;
  char tag;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    tag = T_NIL;
    return put(e, &tag, 1);
  case LUA_TBOOLEAN:
    tag = lua_toboolean(L, idx) ? T_TRUE : T_FALSE;
    return put(e, &tag, 1);
  case LUA_TNUMBER: {
    lua_Number n = lua_tonumber(L, idx);
    tag = T_NUMBER;
    int rc = put(e, &tag, 1);
    return rc ? rc : put(e, &n, sizeof n);
  }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    uint64_t n = len;
    tag = T_STRING;
    int rc = put(e, &tag, 1);
    if (rc == 0) rc = put(e, &n, sizeof n);
    return rc ? rc : put(e, s, len);
  }
  case LUA_TTABLE:
    return encode_table(e, idx);
  default: {
    char what[64];
    snprintf(what, sizeof what, "cannot copy a %s", luaL_typename(L, idx));
    return fail(e, what);
  }
  }
}

int po_copy_encode(lua_State *L, int first, int n, const char *root, po_strbuf *b, char *err, size_t errlen) {
  /* Left uninitialized (some 10 KB): only the slots below the current depth are read. */
  const void *open[PO_COPY_MAX_DEPTH];
  po_walk_step path[PO_COPY_MAX_DEPTH];
  encoder e;
  e.L = L;
  e.b = b;
  e.root = root;
  e.position = 0;
  e.err = err;
  e.errlen = errlen;
  if (errlen) err[0] = '\0';
  uint32_t count = (uint32_t)n;
  int rc = po_strbuf_append(b, &count, sizeof count);
  for (int i = 0; i < n && rc == 0; i++) {
    e.position = i + 1;
    po_walk_init(&e.walk, open, path, PO_COPY_MAX_DEPTH);
    rc = encode_value(&e, first + i);
  }
  if (rc == PO_ENOMEM && errlen) snprintf(err, errlen, "out of memory");
  return rc;
}

/* ---- decoding ---- */

typedef struct decoder {
  lua_State *L;
  const char *p, *end;
} decoder;

static void take(decoder *d, void *out, size_t n) {
  if ((size_t)(d->end - d->p) < n) luaL_error(d->L, "poengine: corrupt copied value");
  memcpy(out, d->p, n);
  d->p += n;
}

static void decode_value(decoder *d, int depth) {
  lua_State *L = d->L;
  char tag;
  take(d, &tag, 1);
  switch (tag) {
  case T_NIL: lua_pushnil(L); return;
  case T_FALSE: lua_pushboolean(L, 0); return;
  case T_TRUE: lua_pushboolean(L, 1); return;
  case T_NUMBER: {
    lua_Number n;
    take(d, &n, sizeof n);
    lua_pushnumber(L, n);
    return;
  }
  case T_STRING: {
    uint64_t n;
    take(d, &n, sizeof n);
    if ((uint64_t)(d->end - d->p) < n) luaL_error(L, "poengine: corrupt copied value");
    lua_pushlstring(L, d->p, (size_t)n);
    d->p += n;
    return;
  }
  case T_TABLE:
    if (depth > PO_COPY_MAX_DEPTH + 1 || !lua_checkstack(L, 4)) luaL_error(L, "poengine: corrupt copied value");
    lua_newtable(L);
    for (;;) {
      if (d->p < d->end && *d->p == T_END) {
        d->p++;
        return;
      }
      decode_value(d, depth + 1);
      decode_value(d, depth + 1);
      lua_rawset(L, -3);
    }
  default: luaL_error(L, "poengine: corrupt copied value");
  }
}

int po_copy_decode(lua_State *L, const char *data, size_t len, size_t *used) {
  decoder d = {.L = L, .p = data, .end = data + len};
  uint32_t count;
  take(&d, &count, sizeof count);
  luaL_checkstack(L, (int)count + 4, "too many values to copy");
  for (uint32_t i = 0; i < count; i++) decode_value(&d, 0);
  if (used) *used = (size_t)(d.p - data);
  return (int)count;
}
