#include "bind_copy.h"

#include "bind.h"

#include "error.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { T_NIL = 'n', T_FALSE = 'f', T_TRUE = 't', T_NUMBER = 'd', T_STRING = 's', T_TABLE = '{', T_END = '}' };

typedef struct step {
  int kind; /* 1 string key, 2 number key, 3 boolean key (path[0] is the root) */
  const char *key;
  size_t keylen;
  lua_Number num;
} step;

typedef struct encoder {
  lua_State *L;
  po_strbuf *b;
  int seen;      /* stack slot of the table of tables on the current path, 0 until needed */
  int seen_slot; /* where it goes */
  const char *root;
  int position; /* of the value being encoded, 1-based */
  step path[PO_COPY_MAX_DEPTH + 2];
  int depth;
  char *err;
  size_t errlen;
} encoder;

static int is_identifier(const char *s, size_t n) {
  if (n == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return 0;
  }
  return 1;
}

static int fail(encoder *e, const char *what) {
  int n0 = snprintf(e->err, e->errlen, "%s at ", what);
  size_t used = n0 > 0 ? (size_t)n0 : 0;
  if (used < e->errlen) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    int n1 = snprintf(e->err + used, e->errlen - used, e->root, e->position);
#pragma GCC diagnostic pop
    used += n1 > 0 ? (size_t)n1 : 0;
  }
  for (int i = 1; i < e->depth && used < e->errlen; i++) {
    const step *s = &e->path[i];
    char *at = e->err + used;
    size_t left = e->errlen - used;
    int n;
    if (s->kind == 1 && is_identifier(s->key, s->keylen))
      n = snprintf(at, left, ".%.*s", (int)s->keylen, s->key);
    else if (s->kind == 1)
      n = snprintf(at, left, "[\"%.*s\"]", (int)s->keylen, s->key);
    else if (s->kind == 3)
      n = snprintf(at, left, "[%s]", s->num != 0 ? "true" : "false");
    else
      n = snprintf(at, left, "[%.14g]", s->num);
    used += n > 0 ? (size_t)n : 0;
  }
  return PO_EINVAL;
}

static int put(encoder *e, const void *p, size_t n) { return po_strbuf_append(e->b, p, n); }

static int encode_value(encoder *e, int idx);

static int encode_table(encoder *e, int idx) {
  lua_State *L = e->L;
  if (e->depth > PO_COPY_MAX_DEPTH) return fail(e, "tables nested too deep to copy");
  if (!lua_checkstack(L, 6)) return PO_ENOMEM;
  if (!e->seen) { /* created on the first table: plain values need none */
    lua_newtable(L);
    lua_replace(L, e->seen_slot);
    e->seen = e->seen_slot;
  }
  lua_pushvalue(L, idx);
  lua_rawget(L, e->seen);
  int cycle = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (cycle) return fail(e, "cannot copy a table that contains itself (a cycle)");
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, e->seen);
  char tag = T_TABLE;
  int rc = put(e, &tag, 1);
  lua_pushnil(L);
  while (rc == 0 && lua_next(L, idx)) {
    step *s = &e->path[e->depth];
    int kt = lua_type(L, -2);
    if (kt == LUA_TSTRING) {
      s->kind = 1;
      s->key = lua_tolstring(L, -2, &s->keylen);
    } else if (kt == LUA_TNUMBER) {
      s->kind = 2;
      s->num = lua_tonumber(L, -2);
    } else if (kt == LUA_TBOOLEAN) {
      s->kind = 3;
      s->num = lua_toboolean(L, -2);
    } else {
      char what[64];
      snprintf(what, sizeof what, "cannot copy a %s key", lua_typename(L, kt));
      rc = fail(e, what);
      lua_pop(L, 2);
      break;
    }
    e->depth++;
    rc = encode_value(e, lua_gettop(L) - 1);
    if (rc == 0) rc = encode_value(e, lua_gettop(L));
    e->depth--;
    lua_pop(L, 1);
    if (rc != 0) lua_pop(L, 1);
  }
  if (rc == 0) {
    tag = T_END;
    rc = put(e, &tag, 1);
  }
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, e->seen);
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
  /* Not `encoder e = {...}`: that would zero the whole path (some 6 KB) for
   * every value copied, and only the steps above the current depth are read. */
  encoder e;
  e.L = L;
  e.b = b;
  e.seen = 0;
  e.root = root;
  e.position = 0;
  e.depth = 0;
  e.err = err;
  e.errlen = errlen;
  if (errlen) err[0] = '\0';
  uint32_t count = (uint32_t)n;
  int rc = po_strbuf_append(b, &count, sizeof count);
  if (rc != 0) return rc;
  lua_pushnil(L);
  e.seen_slot = lua_gettop(L);
  for (int i = 0; i < n && rc == 0; i++) {
    e.position = i + 1;
    e.depth = 1; /* path[0] stands for the root */
    rc = encode_value(&e, first + i);
  }
  lua_pop(L, 1);
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
