#include "bind_walk.h"

#include "json_check.h"

#include <lauxlib.h>

#include <stdio.h>
#include <string.h>

int po_walk_set_key(lua_State *L, int idx, po_walk_step *st) {
  int type = lua_type(L, idx);
  if (type == LUA_TSTRING) {
    st->kind = PO_WALK_KEY;
    st->key = lua_tolstring(L, idx, &st->keylen);
  } else if (type == LUA_TNUMBER) {
    st->kind = PO_WALK_NUMKEY;
    st->num = lua_tonumber(L, idx);
  } else if (type == LUA_TBOOLEAN) {
    st->kind = PO_WALK_BOOLKEY;
    st->num = lua_toboolean(L, idx);
  }
  return type;
}

static int is_ident(const char *s, size_t n) {
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

static void format_step(char *buf, size_t cap, const po_walk_step *st) {
  if (st->kind == PO_WALK_INDEX) {
    snprintf(buf, cap, "[%zu]", st->index);
  } else if (st->kind == PO_WALK_NUMKEY) {
    char t[PO_JSON_NUMBER_BUF];
    size_t n;
    if (po_json_format_number(st->num, t, sizeof t, &n)) memcpy(t, "?", 2); /* NaN or inf */
    snprintf(buf, cap, "[%s]", t);
  } else if (st->kind == PO_WALK_BOOLKEY) {
    snprintf(buf, cap, "[%s]", st->num != 0 ? "true" : "false");
  } else if (is_ident(st->key, st->keylen)) {
    snprintf(buf, cap, ".%.*s", (int)st->keylen, st->key);
  } else {
    /* ["..."], with quotes, backslashes and control bytes escaped, cut at 40 bytes */
    size_t n = 0;
    buf[n++] = '[';
    buf[n++] = '"';
    for (size_t i = 0; i < st->keylen && n + 12 < cap; i++) {
      unsigned char c = (unsigned char)st->key[i];
      if (i == 40) {
        memcpy(buf + n, "...", 3);
        n += 3;
        break;
      }
      if (c == '"' || c == '\\') {
        buf[n++] = '\\';
        buf[n++] = (char)c;
      } else if (c < 0x20) {
        n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", c);
      } else {
        buf[n++] = (char)c;
      }
    }
    buf[n++] = '"';
    buf[n++] = ']';
    buf[n] = '\0';
  }
}

void po_walk_where(const po_walk *w, const char *root, char *buf, size_t cap) {
  size_t n = 0;
  if (cap == 0) return;
  buf[0] = '\0';
  size_t r = strlen(root);
  if (r + 1 > cap) return;
  memcpy(buf, root, r + 1);
  n = r;
  for (int i = 0; i < w->plen; i++) {
    char one[80];
    if (w->plen > 16 && i == 6) {
      snprintf(one, sizeof one, "...(%d more)...", w->plen - 12);
      i = w->plen - 7;
    } else {
      format_step(one, sizeof one, &w->path[i]);
    }
    size_t m = strlen(one);
    if (n + m + 1 > cap) break;
    memcpy(buf + n, one, m + 1);
    n += m;
  }
}

void po_walk_raise(lua_State *L, const po_walk *w, const char *fn, const char *what) {
  char path[1200];
  po_walk_where(w, "$", path, sizeof path);
  luaL_error(L, "%s: %s at %s", fn, what, path);
}

int po_walk_mark(lua_State *L, int t, const void *amark, const void *omark) {
  if (!lua_getmetatable(L, t)) return PO_WALK_UNMARKED;
  const void *m = lua_topointer(L, -1);
  lua_pop(L, 1);
  return m == amark ? PO_WALK_ARRAY : m == omark ? PO_WALK_OBJECT : PO_WALK_UNMARKED;
}

int po_walk_shape(lua_State *L, int mark, size_t count, size_t max, int bad_type, char *what, size_t cap) {
  if (mark == PO_WALK_OBJECT) return 0;
  if (bad_type != LUA_TNONE) {
    if (mark != PO_WALK_ARRAY) return 0;
    snprintf(what, cap, "array (po.json.array) has a %s key that is not a positive integer",
             lua_typename(L, bad_type));
    return -1;
  }
  if (count == 0) return mark == PO_WALK_ARRAY; /* an unmarked empty table is {} */
  if (max > 2 * count) {
    if (mark != PO_WALK_ARRAY) return 0;
    snprintf(what, cap, "array (po.json.array) is too sparse (more holes than values)");
    return -1;
  }
  return 1;
}
