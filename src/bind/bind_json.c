/* po.json: encode Lua values to JSON text and decode JSON text to Lua values.
 *
 * Decoding validates the text strictly first (src/core/json_check.c), then
 * lets cJSON build the tree and converts it; the validator's string lengths
 * keep strings with \u0000 exact. Encoding writes straight into a po_strbuf
 * kept between calls (no tree, no per-value allocation). */
#include "bind.h"

#include "cache_key.h"
#include "error.h"
#include "json_check.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENCODER_TYPE "poengine.json.encoder"
#define TREE_TYPE "poengine.json.tree"

/* Output buffer memory kept between encode calls; more is released. */
#define ENCODE_KEEP_BYTES ((size_t)1 << 20)
#define MAX_INDENT 16

/* ---- encoder state ------------------------------------------------------ */

enum { STEP_INDEX, STEP_KEY, STEP_NUMKEY };

typedef struct step { /* how the value at one depth was reached */
  int kind;
  size_t index;    /* STEP_INDEX: 1-based Lua index */
  const char *key; /* STEP_KEY: anchored by the table being encoded */
  size_t keylen;
  lua_Number num; /* STEP_NUMKEY */
} step;

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
  po_json_skip_fn skip;      /* sorted mode: object keys to leave out, or NULL */
  po_cache_key_name *names;  /* a stack of per-object name segments (the binary key) */
  size_t names_len, names_cap;
  int depth;  /* tables open */
  const void *open[PO_JSON_MAX_DEPTH + 1]; /* the tables open, outermost first */
  step path[PO_JSON_MAX_DEPTH + 1];
  int plen;
} encoder;

static void encoder_release(encoder *e) {
  po_strbuf_free(&e->out);
  free(e->keys);
  e->keys = NULL;
  e->keys_len = e->keys_cap = 0;
  free(e->names);
  e->names = NULL;
  e->names_len = e->names_cap = 0;
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

/* ---- error messages with a path ------------------------------------------ */

static int is_ident(const char *s, size_t n) {
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

static void format_step(char *buf, size_t cap, const step *st);
static size_t format_number(lua_Number d, char *buf);

/* "$.steps[2].run": Lua indices (1-based); long paths keep both ends. */
static void format_path(const encoder *e, char *buf, size_t cap) {
  size_t n = 0;
  buf[n++] = '$';
  buf[n] = '\0';
  for (int i = 0; i < e->plen; i++) {
    char one[80];
    if (e->plen > 16 && i == 6) {
      snprintf(one, sizeof one, "...(%d more)...", e->plen - 12);
      i = e->plen - 7;
    } else {
      format_step(one, sizeof one, &e->path[i]);
    }
    size_t m = strlen(one);
    if (n + m + 1 > cap) break;
    memcpy(buf + n, one, m + 1);
    n += m;
  }
}

static void format_step(char *buf, size_t cap, const step *st) {
  if (st->kind == STEP_INDEX) {
    snprintf(buf, cap, "[%zu]", st->index);
  } else if (st->kind == STEP_NUMKEY) {
    char t[PO_JSON_NUMBER_BUF];
    format_number(st->num, t);
    snprintf(buf, cap, "[%s]", t);
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

/* Raises "<fn>: <what> at <path>" after making the state reusable. */
static void enc_raise(lua_State *L, encoder *e, const char *what) {
  char path[1200];
  format_path(e, path, sizeof path);
  e->busy = 0;
  po_strbuf_reset(&e->out, ENCODE_KEEP_BYTES);
  e->keys_len = 0;
  e->names_len = 0;
  luaL_error(L, "%s: %s at %s", e->fn, what, path);
}

static void enc_nomem(lua_State *L, encoder *e) {
  e->busy = 0;
  po_strbuf_reset(&e->out, 0);
  e->keys_len = 0;
  e->names_len = 0;
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

/* The JSON text of a finite d (see po_json_format_number). */
static size_t format_number(lua_Number d, char *buf) {
  size_t n = 0;
  if (po_json_format_number(d, buf, PO_JSON_NUMBER_BUF, &n)) {
    memcpy(buf, "?", 2);
    n = 1;
  }
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

/* A positive integer usable as an array index, or 0. */
static size_t array_index(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
  lua_Number k = lua_tonumber(L, idx);
  if (k >= 1 && k <= 9007199254740992.0 && k == floor(k)) return (size_t)k;
  return 0;
}

/* Decides array or object for the table at t (mark: 1 array, 2 object, 0
 * none). Returns 1 with *n (the highest index) for an array. An unmarked
 * table is an array when its keys are the integers 1..n with at most n/2
 * holes and at least one key; a marked one must satisfy the same rule. */
static int classify(lua_State *L, encoder *e, int t, int mark, size_t *n) {
  if (mark == 2) return 0;
  size_t count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    size_t k = array_index(L, -1);
    if (!k) {
      if (mark == 1) {
        char what[96];
        snprintf(what, sizeof what, "array (po.json.array) has a %s key that is not a positive integer",
                 luaL_typename(L, -1));
        enc_raise(L, e, what);
      }
      lua_pop(L, 1);
      return 0;
    }
    count++;
    if (k > max) max = k;
  }
  if (count == 0) {
    *n = 0;
    return mark == 1; /* an unmarked empty table is {} */
  }
  if (max > 2 * count) {
    if (mark == 1) enc_raise(L, e, "array (po.json.array) is too sparse (more holes than values)");
    return 0;
  }
  *n = max;
  return 1;
}

static void encode_array(lua_State *L, encoder *e, int t, size_t n) {
  if (n == 0) {
    PUTS(e, L, "[]");
    return;
  }
  PUTC(e, L, '[');
  int plen = e->plen++;
  e->path[plen].kind = STEP_INDEX;
  for (size_t i = 1; i <= n; i++) {
    if (i > 1) PUTC(e, L, ',');
    put_newline(L, e, e->depth);
    e->path[plen].index = i;
    lua_rawgeti(L, t, (int)i);
    encode_value(L, e);
    lua_pop(L, 1);
  }
  e->plen = plen;
  put_newline(L, e, e->depth - 1);
  PUTC(e, L, ']');
}

/* Writes the key at idx (a string or a number) and records it in the path. */
static void put_key(lua_State *L, encoder *e, int idx, step *st) {
  int type = lua_type(L, idx);
  if (type == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    st->kind = STEP_KEY;
    st->key = s;
    st->keylen = len;
    put_string(L, e, s, len);
  } else if (type == LUA_TNUMBER) {
    lua_Number d = lua_tonumber(L, idx);
    if (isinf(d)) enc_raise(L, e, "cannot encode an infinite number as a key");
    st->kind = STEP_NUMKEY;
    st->num = d;
    char buf[PO_JSON_NUMBER_BUF];
    size_t n = format_number(d, buf);
    PUTC(e, L, '"');
    PUT(e, L, buf, n);
    PUTC(e, L, '"');
  } else {
    char what[64];
    snprintf(what, sizeof what, "cannot encode a %s key", lua_typename(L, type));
    enc_raise(L, e, what);
  }
}

static void put_colon(lua_State *L, encoder *e) {
  if (e->indent >= 0)
    PUTS(e, L, ": ");
  else
    PUTC(e, L, ':');
}

static void encode_object_unsorted(lua_State *L, encoder *e, int t) {
  int first = 1, plen = e->plen;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (first) {
      PUTC(e, L, '{');
      first = 0;
    } else {
      PUTC(e, L, ',');
    }
    put_newline(L, e, e->depth);
    put_key(L, e, -2, &e->path[plen]); /* a bad key is reported at the table's path */
    put_colon(L, e);
    e->plen = plen + 1;
    encode_value(L, e);
    e->plen = plen;
    lua_pop(L, 1);
  }
  if (first) {
    PUTS(e, L, "{}");
    return;
  }
  put_newline(L, e, e->depth - 1);
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

/* Whether skip drops key from the object being encoded (its parent key is
 * the last step of the path, when that is a string key). */
static int skipped(const encoder *e, const char *key, size_t len) {
  const step *parent = e->plen > 0 && e->path[e->plen - 1].kind == STEP_KEY ? &e->path[e->plen - 1] : NULL;
  return e->skip(key, len, parent ? parent->key : NULL, parent ? parent->keylen : 0);
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
  int plen = e->plen++;
  for (size_t i = 0; i < n; i++) {
    if (i) PUTC(e, L, ',');
    put_newline(L, e, e->depth);
    sort_key *k = &e->keys[base + i]; /* re-read: nested tables may move e->keys */
    step *st = &e->path[plen];
    if (k->s) {
      st->kind = STEP_KEY;
      st->key = k->s;
      st->keylen = k->len;
      put_string(L, e, k->s, k->len);
      lua_pushlstring(L, k->s, k->len);
    } else {
      st->kind = STEP_NUMKEY;
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
  e->plen = plen;
  e->keys_len = base;
  put_newline(L, e, e->depth - 1);
  PUTC(e, L, '}');
}

static void encode_table(lua_State *L, encoder *e) {
  int t = lua_gettop(L);
  const void *p = lua_topointer(L, t);
  for (int i = 0; i < e->depth; i++)
    if (e->open[i] == p) enc_raise(L, e, "cycle");
  if (e->depth >= PO_JSON_MAX_DEPTH) enc_raise(L, e, "nesting deeper than 1000");
  luaL_checkstack(L, 6, "po.json.encode: nesting too deep");

  int mark = 0;
  if (lua_getmetatable(L, t)) {
    const void *m = lua_topointer(L, -1);
    if (m == e->amark)
      mark = 1;
    else if (m == e->omark)
      mark = 2;
    lua_pop(L, 1);
  }

  e->open[e->depth++] = p;
  size_t n = 0;
  if (classify(L, e, t, mark, &n))
    encode_array(L, e, t, n);
  else if (e->sort)
    encode_object_sorted(L, e, t);
  else
    encode_object_unsorted(L, e, t);
  e->depth--;
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
    if (lua_touserdata(L, -1) == NULL) {
      PUTS(e, L, "null");
      break;
    }
    enc_raise(L, e, "cannot encode a light userdata");
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
static encoder *start(lua_State *L, encoder *main, const char *fn, int indent, int sort, po_json_skip_fn skip) {
  encoder *e = main;
  if (e->busy) {
    e = encoder_new(L);
    e->amark = main->amark;
    e->omark = main->omark;
  }
  e->busy = 1;
  e->fn = fn;
  e->skip = skip;
  e->indent = indent;
  e->sort = sort;
  e->depth = 0;
  e->plen = 0;
  e->keys_len = 0;
  e->names_len = 0;
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

  encoder *e = start(L, lua_touserdata(L, lua_upvalueindex(1)), "po.json.encode", indent, sort, NULL);
  lua_pushvalue(L, 1);
  encode_value(L, e);
  e->busy = 0;
  lua_pushlstring(L, e->out.data ? e->out.data : "", e->out.len);
  po_strbuf_reset(&e->out, ENCODE_KEEP_BYTES);
  return 1;
}

/* ---- the canonical key (binary) ---------------------------------------------- */

/* The cache key of a request table: the form of src/core/cache_key.h,
 * written straight from the Lua values into the encoder's buffer. The rules
 * are the sorted encoder's (arrays and objects decided by classify's rule,
 * the marks, skip, the same errors at the same paths); what differs is the
 * output (tags and lengths instead of text: nothing to escape or format) and
 * how values are reached: an object's pairs stay on the Lua stack from the
 * one lua_next pass that classifies the table, so no value is looked up
 * again and no string is made. */

static void key_value(lua_State *L, encoder *e, int idx);

#define KPUT(e, L, call)              \
  do {                                \
    if ((call) != 0) enc_nomem(L, e); \
  } while (0)

/* Makes e->names hold at least n names. */
static void names_room(lua_State *L, encoder *e, size_t n) {
  if (e->names_cap >= n) return;
  size_t cap = e->names_cap ? e->names_cap : 64;
  while (cap < n) cap *= 2;
  po_cache_key_name *p = realloc(e->names, cap * sizeof *p);
  if (!p) enc_nomem(L, e);
  e->names = p;
  e->names_cap = cap;
}

enum { PAIRS_STEP = 32 }; /* pairs a table makes room for at a time */

/* Writes the object whose names are e->names[nb .. nb + count) (a name's
 * len is its Lua key type when it is not a string; ref the stack slot of its
 * value, or 0 to read it again from t). */
static void key_object(lua_State *L, encoder *e, int t, size_t nb, size_t count) {
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    po_cache_key_name *name = &e->names[nb + i];
    if (name->s) {
      if (e->skip && skipped(e, name->s, name->len)) continue;
    } else if (name->len != LUA_TNUMBER) {
      char what[64];
      snprintf(what, sizeof what, "cannot encode a %s key", lua_typename(L, (int)name->len));
      enc_raise(L, e, what);
    } else if (isinf(name->num)) {
      enc_raise(L, e, "cannot encode an infinite number as a key");
    }
    e->names[nb + n++] = *name;
  }
  po_cache_key_sort_names(e->names + nb, n);
  KPUT(e, L, po_cache_key_put_container(&e->out, PO_CACHE_KEY_OBJECT, n));
  int plen = e->plen++;
  for (size_t i = 0; i < n; i++) {
    po_cache_key_name *name = &e->names[nb + i]; /* re-read: nested objects may move e->names */
    step *st = &e->path[plen];
    if (name->s) {
      st->kind = STEP_KEY;
      st->key = name->s;
      st->keylen = name->len;
    } else {
      st->kind = STEP_NUMKEY;
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
  e->plen = plen;
}

static void key_table(lua_State *L, encoder *e, int t) {
  const void *p = lua_topointer(L, t);
  for (int i = 0; i < e->depth; i++)
    if (e->open[i] == p) enc_raise(L, e, "cycle");
  if (e->depth >= PO_JSON_MAX_DEPTH) enc_raise(L, e, "nesting deeper than 1000");
  if (!lua_checkstack(L, 8)) enc_raise(L, e, "nesting too deep for the Lua stack");
  int mark = 0;
  if (lua_getmetatable(L, t)) {
    const void *m = lua_topointer(L, -1);
    mark = m == e->amark ? 1 : m == e->omark ? 2 : 0;
    lua_pop(L, 1);
  }
  e->open[e->depth++] = p;

  /* One lua_next pass reads every key into e->names, sees whether the keys
   * are 1..max (and came in that order), and keeps each pair on the stack
   * while it has room: a C function gets at most LUAI_MAXCSTACK slots, and
   * the tables below this one must still find the few each needs (3 a
   * level) even if none of them keeps its pairs. */
  int reserve = 8 + 3 * (PO_JSON_MAX_DEPTH - e->depth);
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
      lua_Number k = lua_tonumber(L, -2);
      name->num = k;
      if (k >= 1 && k <= 9007199254740992.0 && k == floor(k)) {
        if ((size_t)k > max) max = (size_t)k;
        if ((size_t)k != count + 1) in_order = 0;
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

  int array;
  if (mark == 2)
    array = 0;
  else if (count == 0)
    array = mark == 1; /* an unmarked empty table is {} */
  else if (bad_type != LUA_TNONE)
    array = 0;
  else
    array = max <= 2 * count;
  if (mark == 1 && !array) {
    if (bad_type != LUA_TNONE) {
      char what[96];
      snprintf(what, sizeof what, "array (po.json.array) has a %s key that is not a positive integer",
               lua_typename(L, bad_type));
      enc_raise(L, e, what);
    }
    enc_raise(L, e, "array (po.json.array) is too sparse (more holes than values)");
  }

  if (array) {
    KPUT(e, L, po_cache_key_put_container(&e->out, PO_CACHE_KEY_ARRAY, max));
    int plen = e->plen++;
    e->path[plen].kind = STEP_INDEX;
    /* Keys 1..max in order with every value kept: the values are on the stack already. */
    int direct = in_order && max == count && e->names[nb + count - 1].ref != 0;
    for (size_t i = 1; i <= max; i++) {
      e->path[plen].index = i;
      if (direct) {
        key_value(L, e, e->names[nb + i - 1].ref);
      } else {
        lua_rawgeti(L, t, (int)i);
        key_value(L, e, lua_gettop(L));
        lua_pop(L, 1);
      }
    }
    e->plen = plen;
  } else {
    key_object(L, e, t, nb, count);
  }
  e->names_len = nb;
  lua_settop(L, base);
  e->depth--;
}

/* Writes the value at idx (an absolute index). */
static void key_value(lua_State *L, encoder *e, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    KPUT(e, L, po_cache_key_put_tag(&e->out, PO_CACHE_KEY_NULL));
    break;
  case LUA_TBOOLEAN:
    KPUT(e, L, po_cache_key_put_tag(&e->out, lua_toboolean(L, idx) ? PO_CACHE_KEY_TRUE : PO_CACHE_KEY_FALSE));
    break;
  case LUA_TNUMBER: {
    lua_Number d = lua_tonumber(L, idx);
    if (isnan(d)) enc_raise(L, e, "cannot encode NaN");
    if (isinf(d)) enc_raise(L, e, d > 0 ? "cannot encode inf" : "cannot encode -inf");
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
    enc_raise(L, e, "cannot encode a light userdata");
    break;
  case LUA_TTABLE:
    key_table(L, e, idx);
    break;
  default: {
    char what[64];
    snprintf(what, sizeof what, "cannot encode a %s", luaL_typename(L, idx));
    enc_raise(L, e, what);
  }
  }
}

static char encoder_key; /* its address: the registry key of the shared encoder, for the hot path */

const char *po_json_canonical_key(lua_State *L, int idx, const char *fn, po_json_skip_fn skip, size_t *len) {
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  lua_pushlightuserdata(L, &encoder_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  encoder *main = lua_touserdata(L, -1);
  encoder *e = start(L, main, fn, -1, 1, skip);
  if (e != main) lua_replace(L, -2); /* the private state is the anchor */
  KPUT(e, L, po_cache_key_put_start(&e->out));
  key_value(L, e, idx);
  e->busy = 0;
  *len = e->out.len;
  return e->out.data;
}

/* ---- decoding ----------------------------------------------------------- */

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

/* po.json.decode(text) -> value | nil, message, "EJSON".
 * Upvalues: 1 array mark, 2 object mark. */
static int l_decode(lua_State *L) {
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


void po_open_json(lua_State *L) {
  static const luaL_Reg encoder_meta[] = {{"__gc", encoder_gc}, {NULL, NULL}};
  static const luaL_Reg tree_meta[] = {{"__gc", tree_gc}, {NULL, NULL}};
  po_register_type(L, ENCODER_TYPE, NULL, encoder_meta);
  po_register_type(L, TREE_TYPE, NULL, tree_meta);

  lua_createtable(L, 0, 6);
  int json = lua_gettop(L);
  lua_newtable(L); /* the array mark: a metatable compared by identity */
  int amark = lua_gettop(L);
  lua_newtable(L); /* the object mark */
  int omark = lua_gettop(L);

  encoder *e = encoder_new(L);
  e->amark = lua_topointer(L, amark);
  e->omark = lua_topointer(L, omark);
  lua_pushlightuserdata(L, &encoder_key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX); /* for po_json_canonical_key */
  lua_pushvalue(L, amark);
  lua_pushvalue(L, omark);
  lua_pushcclosure(L, l_encode, 3);
  lua_setfield(L, json, "encode");

  lua_pushvalue(L, amark);
  lua_pushvalue(L, omark);
  lua_pushcclosure(L, l_decode, 2);
  lua_setfield(L, json, "decode");

  lua_pushvalue(L, amark);
  lua_pushvalue(L, omark);
  lua_pushcclosure(L, l_array, 2);
  lua_setfield(L, json, "array");

  lua_pushvalue(L, amark);
  lua_pushvalue(L, omark);
  lua_pushcclosure(L, l_object, 2);
  lua_setfield(L, json, "object");

  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, json, "null");

  lua_settop(L, json);
  lua_setfield(L, -2, "json");
}
