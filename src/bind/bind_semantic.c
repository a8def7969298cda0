/* po.semantic: the semantic cache tier's parts, usable on their own — the
 * n-gram embedder, the false-hit guards, the accept decision for one
 * candidate, and the vector index.
 *
 * Vectors cross as Lua arrays of numbers, checked for length and type; the
 * algorithms live in src/core (ngram.c, guard.c, semantic.c, vindex.c). */
#include "bind.h"

#include "error.h"
#include "guard.h"
#include "ngram.h"
#include "semantic.h"
#include "vindex.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_TYPE "poengine.semantic.index"
#define MAX_ID 9007199254740992.0 /* 2^53: ids are integers exact in a double */

typedef struct index_ud {
  po_vindex *ix; /* NULL once closed */
  int dim;
  float *vec; /* dim floats: the vector being converted */
} index_ud;

/* The type name of argument i, "nil" when it is absent. */
static const char *type_of(lua_State *L, int i) { return lua_isnone(L, i) ? "nil" : luaL_typename(L, i); }

static const char *check_text(lua_State *L, int i, const char *fn, const char *name, size_t *len) {
  if (lua_type(L, i) != LUA_TSTRING)
    luaL_error(L, "%s: %s must be a string, got %s", fn, name, type_of(L, i));
  return lua_tolstring(L, i, len);
}

static void push_vector(lua_State *L, const float *v, int dim) {
  lua_createtable(L, dim, 0);
  for (int i = 0; i < dim; i++) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

/* Reads the array at i into out[dim]; raises on a wrong length or element. */
static void check_vector(lua_State *L, int i, const char *fn, int dim, float *out) {
  if (lua_type(L, i) != LUA_TTABLE)
    luaL_error(L, "%s: vector must be an array of %d numbers, got %s", fn, dim, type_of(L, i));
  size_t n = lua_objlen(L, i);
  if (n != (size_t)dim) luaL_error(L, "%s: vector must have %d numbers, got %d", fn, dim, (int)n);
  for (int j = 0; j < dim; j++) {
    lua_rawgeti(L, i, j + 1);
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "%s: vector[%d] must be a number, got %s", fn, j + 1, luaL_typename(L, -1));
    double x = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!isfinite(x) || fabs(x) > 3.4e38) luaL_error(L, "%s: vector[%d] must be a finite float, got %f", fn, j + 1, x);
    out[j] = (float)x;
  }
}

/* ---- texts ----------------------------------------------------------------- */

static int l_embed(lua_State *L) {
  size_t len;
  const char *text = check_text(L, 1, "po.semantic.embed", "text", &len);
  float v[PO_NGRAM_DIM];
  po_ngram_embed(text, len, v);
  push_vector(L, v, PO_NGRAM_DIM);
  return 1;
}

static int l_similarity(lua_State *L) {
  size_t alen, blen;
  const char *a = check_text(L, 1, "po.semantic.similarity", "a", &alen);
  const char *b = check_text(L, 2, "po.semantic.similarity", "b", &blen);
  double score;
  po_semantic_similarity(a, alen, b, blen, &score);
  lua_pushnumber(L, score);
  return 1;
}

static int l_same_facts(lua_State *L) {
  size_t alen, blen;
  const char *a = check_text(L, 1, "po.semantic.same_facts", "a", &alen);
  const char *b = check_text(L, 2, "po.semantic.same_facts", "b", &blen);
  lua_pushboolean(L, po_guard_same_facts(a, alen, b, blen));
  return 1;
}

static int l_match(lua_State *L) {
  size_t qlen, clen;
  const char *q = check_text(L, 1, "po.semantic.match", "query", &qlen);
  const char *c = check_text(L, 2, "po.semantic.match", "candidate", &clen);
  double threshold = PO_SEMANTIC_THRESHOLD;
  if (!lua_isnoneornil(L, 3)) {
    if (lua_type(L, 3) != LUA_TNUMBER)
      luaL_error(L, "po.semantic.match: threshold must be a number, got %s", type_of(L, 3));
    threshold = lua_tonumber(L, 3);
    if (!(threshold >= 0 && threshold <= 1))
      luaL_error(L, "po.semantic.match: threshold must be between 0 and 1, got %f", threshold);
  }
  double score;
  po_semantic_similarity(q, qlen, c, clen, &score);
  lua_pushboolean(L, po_semantic_accept(score, threshold, q, qlen, c, clen));
  lua_pushnumber(L, score);
  return 2;
}

/* ---- the index ----------------------------------------------------------- */

static index_ud *check_index(lua_State *L, int i, const char *method) {
  index_ud *u = luaL_checkudata(L, i, INDEX_TYPE);
  if (!u->ix) luaL_error(L, "po.semantic.index:%s: the index is closed", method);
  return u;
}

static uint64_t check_id(lua_State *L, int i, const char *fn) {
  if (lua_type(L, i) != LUA_TNUMBER)
    luaL_error(L, "%s: id must be a number, got %s", fn, type_of(L, i));
  double id = lua_tonumber(L, i);
  if (!(id >= 0 && id <= MAX_ID && id == floor(id)))
    luaL_error(L, "%s: id must be an integer from 0 to 2^53, got %f", fn, id);
  return (uint64_t)id;
}

static int l_index(lua_State *L) {
  static const char *const options[] = {"dim", "kind", NULL};
  po_check_options(L, 1, "po.semantic.index", options);
  int dim = PO_NGRAM_DIM;
  po_vindex_kind kind = PO_VINDEX_F32;
  if (lua_istable(L, 1)) {
    lua_getfield(L, 1, "dim");
    if (!lua_isnil(L, -1)) {
      double d = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
      if (!(d >= 1 && d <= 65536 && d == floor(d)))
        luaL_error(L, "po.semantic.index: dim must be an integer from 1 to 65536, got %s",
                   lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
      dim = (int)d;
    }
    lua_getfield(L, 1, "kind");
    if (!lua_isnil(L, -1)) {
      const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      if (strcmp(k, "f32") == 0)
        kind = PO_VINDEX_F32;
      else if (strcmp(k, "i8") == 0)
        kind = PO_VINDEX_I8;
      else
        luaL_error(L, "po.semantic.index: kind must be \"f32\" or \"i8\", got %s",
                   lua_type(L, -1) == LUA_TSTRING ? k : luaL_typename(L, -1));
    }
    lua_pop(L, 2);
  }
  index_ud *u = lua_newuserdata(L, sizeof *u);
  memset(u, 0, sizeof *u);
  luaL_getmetatable(L, INDEX_TYPE);
  lua_setmetatable(L, -2);
  u->dim = dim;
  u->vec = malloc(sizeof(float) * (size_t)dim);
  int rc = u->vec ? po_vindex_new(dim, kind, &u->ix) : PO_ENOMEM;
  if (rc) {
    free(u->vec);
    u->vec = NULL;
    return luaL_error(L, "po.semantic.index: %s", po_strerror(rc));
  }
  return 1;
}

static int index_add(lua_State *L) {
  index_ud *u = check_index(L, 1, "add");
  uint64_t id = check_id(L, 2, "po.semantic.index:add");
  check_vector(L, 3, "po.semantic.index:add", u->dim, u->vec);
  int rc = po_vindex_add(u->ix, id, u->vec);
  if (rc) return luaL_error(L, "po.semantic.index:add: %s", po_strerror(rc));
  return 0;
}

static int index_remove(lua_State *L) {
  index_ud *u = check_index(L, 1, "remove");
  uint64_t id = check_id(L, 2, "po.semantic.index:remove");
  lua_pushboolean(L, po_vindex_remove(u->ix, id) == 0);
  return 1;
}

static int index_search(lua_State *L) {
  index_ud *u = check_index(L, 1, "search");
  check_vector(L, 2, "po.semantic.index:search", u->dim, u->vec);
  double kd = 1;
  if (!lua_isnoneornil(L, 3)) {
    kd = lua_type(L, 3) == LUA_TNUMBER ? lua_tonumber(L, 3) : -1;
    if (!(kd >= 1 && kd == floor(kd)))
      luaL_error(L, "po.semantic.index:search: k must be a positive integer, got %s",
                 lua_type(L, 3) == LUA_TNUMBER ? lua_tostring(L, 3) : type_of(L, 3));
  }
  size_t count = po_vindex_count(u->ix);
  int k = kd < (double)count ? (int)kd : (int)count;
  uint64_t one_id;
  float one_score;
  uint64_t *ids = k <= 1 ? &one_id : malloc(sizeof *ids * (size_t)k);
  float *scores = k <= 1 ? &one_score : malloc(sizeof *scores * (size_t)k);
  int found = 0, rc = (ids && scores) ? po_vindex_search(u->ix, u->vec, k, ids, scores, &found) : PO_ENOMEM;
  if (rc == 0) {
    lua_createtable(L, found, 0);
    lua_createtable(L, found, 0);
    for (int i = 0; i < found; i++) {
      lua_pushnumber(L, (double)ids[i]);
      lua_rawseti(L, -3, i + 1);
      lua_pushnumber(L, scores[i]);
      lua_rawseti(L, -2, i + 1);
    }
  }
  if (ids != &one_id) free(ids);
  if (scores != &one_score) free(scores);
  if (rc) return luaL_error(L, "po.semantic.index:search: %s", po_strerror(rc));
  return 2;
}

static int index_count(lua_State *L) {
  index_ud *u = check_index(L, 1, "count");
  lua_pushnumber(L, (double)po_vindex_count(u->ix));
  return 1;
}

static int index_close(lua_State *L) {
  index_ud *u = luaL_checkudata(L, 1, INDEX_TYPE);
  po_vindex_free(u->ix);
  u->ix = NULL;
  free(u->vec);
  u->vec = NULL;
  return 0;
}

static int index_tostring(lua_State *L) {
  index_ud *u = luaL_checkudata(L, 1, INDEX_TYPE);
  if (u->ix)
    lua_pushfstring(L, "poengine.semantic.index (dim %d, %d vectors)", u->dim, (int)po_vindex_count(u->ix));
  else
    lua_pushstring(L, "poengine.semantic.index (closed)");
  return 1;
}

void po_open_semantic(lua_State *L) {
  static const luaL_Reg methods[] = {{"add", index_add},     {"remove", index_remove}, {"search", index_search},
                                     {"count", index_count}, {"close", index_close},   {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", index_close}, {"__tostring", index_tostring}, {NULL, NULL}};
  static const luaL_Reg fns[] = {{"embed", l_embed},   {"similarity", l_similarity}, {"same_facts", l_same_facts},
                                 {"match", l_match},   {"index", l_index},           {NULL, NULL}};
  po_register_type(L, INDEX_TYPE, methods, meta);
  lua_createtable(L, 0, 8);
  po_set_funcs(L, fns);
  lua_pushinteger(L, PO_NGRAM_DIM);
  lua_setfield(L, -2, "dim");
  lua_pushstring(L, PO_NGRAM_EMBEDDER_ID);
  lua_setfield(L, -2, "embedder_id");
  lua_pushnumber(L, PO_SEMANTIC_THRESHOLD);
  lua_setfield(L, -2, "threshold");
  lua_setfield(L, -2, "semantic");
}
