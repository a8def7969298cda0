/* The cache binding: poengine_core.cache, the C side of po.cache (the Lua
 * module lua/poengine/cache.lua builds the user-facing object on it).
 *
 * A handle (userdata "poengine.cache") holds one reference to a shared
 * po_cache and a lookup result buffer. Keys are strings, taken as they are,
 * or request tables, written in the canonical binary form of cache_key.h
 * (po_json_canonical_key: sorted keys, secrets left out by
 * po_cache_secret_field) into a reused buffer, and hashed in C. */
#include "bind.h"

#include "cache.h"
#include "cache_disk.h"
#include "cache_key.h"
#include "cache_record.h"
#include "cache_semantic.h"
#include "clock.h"
#include "error.h"
#include "ngram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_TYPE "poengine.cache"

typedef struct handle {
  po_cache *c; /* NULL once closed */
  po_cache_result r;
  double ttl;
  po_store_durability sync;
  po_cache_memo memo; /* the vectors of this handle's last semantic misses */
  po_strbuf key;      /* a request key's bytes, kept while a group's are written */
} handle;

static handle *check_open(lua_State *L, int i, const char *fn) {
  handle *h = luaL_checkudata(L, i, CACHE_TYPE);
  if (!h->c) luaL_error(L, "%s: the cache is closed", fn);
  return h;
}

static int skip_secret(const char *key, size_t len, const char *parent, size_t parent_len) {
  return po_cache_secret_field(key, len, parent, parent_len);
}

/* The bytes of the key at idx: a string as it is, a table in its canonical
 * binary form (which pushes one anchor value; *pushed says so). */
static const char *key_arg(lua_State *L, int idx, const char *fn, size_t *len, int *pushed) {
  *pushed = 0;
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) return lua_tolstring(L, idx, len);
  if (t != LUA_TTABLE) luaL_error(L, "%s: key must be a string or a request table, got %s", fn, luaL_typename(L, idx));
  *pushed = 1;
  return po_json_canonical_key(L, idx, fn, skip_secret, len);
}

static const char *const policies[] = {"lru", "sieve", NULL};
static const char *const syncs[] = {"full", "batch", "none", NULL};

static int opt_choice(lua_State *L, int t, const char *name, const char *const names[], int def) {
  lua_getfield(L, t, name);
  int r = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "po.cache.open: %s must be a string, got %s", name, luaL_typename(L, -1));
    const char *v = lua_tostring(L, -1);
    for (r = 0; names[r] && strcmp(names[r], v) != 0; r++) {}
    if (!names[r]) luaL_error(L, "po.cache.open: %s must be one of %s, got '%s'", name,
                              names == policies ? "'lru', 'sieve'" : "'full', 'batch', 'none'", v);
  }
  lua_pop(L, 1);
  return r;
}

/* A positive integer option; *given says whether it was there. */
static size_t opt_count(lua_State *L, int t, const char *name, size_t def, int *given) {
  lua_getfield(L, t, name);
  size_t r = def;
  *given = !lua_isnil(L, -1);
  if (*given) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "po.cache.open: %s must be a positive integer, got %s", name, luaL_typename(L, -1));
    lua_Number n = lua_tonumber(L, -1);
    if (!(n >= 1 && n <= 9007199254740992.0) || n != floor(n))
      luaL_error(L, "po.cache.open: %s must be a positive integer, got %s", name, lua_tostring(L, -1));
    r = (size_t)n;
  }
  lua_pop(L, 1);
  return r;
}

static double check_ttl(lua_State *L, int idx, const char *fn) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: ttl must be a non-negative number of seconds, got %s", fn, luaL_typename(L, idx));
  double ttl = lua_tonumber(L, idx);
  if (!(ttl >= 0) || isinf(ttl))
    luaL_error(L, "%s: ttl must be a non-negative number of seconds, got %s", fn, lua_tostring(L, idx));
  return ttl;
}

static int store_error(lua_State *L, int rc, const char *fn) {
  if (rc == PO_ENOMEM) return po_push_error(L, rc, "%s: out of memory", fn);
  return po_push_error(L, rc, "%s: %s", fn, po_store_last_error());
}

/* core.cache.open(options) -> handle | nil, message, code */
static int l_open(lua_State *L) {
  static const char *const allowed[] = {"path", "namespace", "max_entries", "max_bytes", "ttl", "policy",
                                        "sync", "semantic", "create", "shared", NULL};
  const char *fn = "po.cache.open";
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  po_check_options(L, 1, fn, allowed);
  po_cache_options o = {0};
  lua_getfield(L, 1, "path");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    return luaL_error(L, "%s: path must be a string (a directory) or nil, got %s", fn, luaL_typename(L, -1));
  o.path = lua_tostring(L, -1);
  if (o.path && !*o.path) return luaL_error(L, "%s: path must not be empty", fn);
  lua_getfield(L, 1, "namespace");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    return luaL_error(L, "%s: namespace must be a string, got %s", fn, luaL_typename(L, -1));
  size_t nslen = 0;
  o.ns = lua_isnil(L, -1) ? "default" : lua_tolstring(L, -1, &nslen);
  if (!lua_isnil(L, -1) && (nslen == 0 || nslen > 255 || strlen(o.ns) != nslen))
    return luaL_error(L, "%s: namespace must be 1 to 255 bytes with no zero byte", fn);
  int given_entries, given_bytes;
  o.max_entries = opt_count(L, 1, "max_entries", 1000, &given_entries);
  o.max_bytes = opt_count(L, 1, "max_bytes", 0, &given_bytes);
  lua_getfield(L, 1, "policy");
  int given_policy = !lua_isnil(L, -1);
  lua_pop(L, 1);
  o.policy = (po_cache_policy)opt_choice(L, 1, "policy", policies, PO_CACHE_LRU);
  po_store_durability sync = (po_store_durability)opt_choice(L, 1, "sync", syncs, PO_STORE_SYNC_FULL);
  double ttl = 3600;
  lua_getfield(L, 1, "ttl");
  if (!lua_isnil(L, -1)) ttl = check_ttl(L, -1, fn);
  lua_getfield(L, 1, "semantic");
  int st = lua_type(L, -1);
  if (st != LUA_TNIL && st != LUA_TTABLE && !(st == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
    return luaL_error(L, "%s: semantic must be a table or false, got %s", fn, luaL_typename(L, -1));
  lua_getfield(L, 1, "create");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
    return luaL_error(L, "%s: create must be a boolean, got %s", fn, luaL_typename(L, -1));
  if (!lua_isnil(L, -1) && !lua_toboolean(L, -1)) {
    if (!o.path) return luaL_error(L, "%s: create = false needs a path", fn);
    int rc = po_cache_disk_namespaces(o.path, NULL, NULL);
    if (rc != 0) return store_error(L, rc, fn);
  }

  handle *h = lua_newuserdata(L, sizeof *h);
  memset(h, 0, sizeof *h);
  luaL_getmetatable(L, CACHE_TYPE);
  lua_setmetatable(L, -2);
  h->ttl = ttl;
  h->sync = sync;
  int rc = po_cache_open(&o, &h->c);
  if (rc == PO_EINVAL) return po_push_error(L, rc, "%s: invalid options", fn);
  if (rc != 0) return store_error(L, rc, fn);
  /* A cache already open in this process keeps its limits: asking for others is a mistake. */
  po_cache_options have;
  po_cache_config(h->c, &have);
  const char *clash = given_entries && have.max_entries != o.max_entries ? "max_entries"
                      : given_bytes && have.max_bytes != o.max_bytes   ? "max_bytes"
                      : given_policy && have.policy != o.policy        ? "policy"
                                                                       : NULL;
  if (clash) {
    po_cache_close(h->c);
    h->c = NULL;
    return luaL_error(L, "%s: namespace '%s' is already open in this process with another %s", fn, o.ns, clash);
  }
  return 1;
}

/* Pushes the value, flags and age of the lookup result in h. */
static int push_result(lua_State *L, handle *h) {
  lua_pushlstring(L, h->r.value ? h->r.value : "", h->r.len);
  lua_pushinteger(L, (lua_Integer)h->r.flags);
  lua_pushnumber(L, h->r.age);
  return 3;
}

/* h:get(key) -> value, flags, age | nil (a miss) | nil, message, code */
static int l_get(lua_State *L) {
  const char *fn = "cache:get";
  handle *h = check_open(L, 1, fn);
  size_t klen;
  int pushed;
  const char *key = key_arg(L, 2, fn, &klen, &pushed);
  int rc = po_cache_get(h->c, key, klen, &h->r);
  if (pushed) lua_pop(L, 1);
  if (rc == PO_ENOENT) {
    lua_pushnil(L);
    return 1;
  }
  if (rc != 0) return store_error(L, rc, fn);
  return push_result(L, h);
}

/* ---- the semantic tier --------------------------------------------------------
 * After an exact miss, a lookup crosses into C once: h:semantic_get hashes the
 * group, embeds the text with the built-in embedder (a function embedder is
 * Lua's to call: it may wait on a future, which a call from C could not) and
 * searches. The vector of a miss stays in the handle's memo (cache_semantic.h),
 * and the set of the same key that follows stores it instead of embedding the
 * text again. */

/* The embedder id at idx: nil is the built-in n-gram embedder's. */
static const char *embedder_arg(lua_State *L, int idx, size_t *len) {
  if (!lua_isnil(L, idx)) return luaL_checklstring(L, idx, len);
  *len = strlen(PO_NGRAM_EMBEDDER_ID);
  return PO_NGRAM_EMBEDDER_ID;
}

/* The group of the arguments at idx: the parameter text (a string, as it is;
 * a request table: the hex hash of its canonical key) and the embedder id. */
static po_cache_hash group_arg(lua_State *L, int idx, const char *fn, const char *embedder, size_t elen) {
  if (lua_type(L, idx) != LUA_TTABLE) {
    size_t plen;
    const char *params = luaL_checklstring(L, idx, &plen);
    return po_cache_sem_group(params, plen, embedder, elen);
  }
  size_t klen;
  int pushed;
  const char *key = key_arg(L, idx, fn, &klen, &pushed);
  char hex[33];
  po_cache_hash_hex(po_cache_hash_key(key, klen), hex);
  lua_pop(L, pushed);
  return po_cache_sem_group(hex, 32, embedder, elen);
}

/* The vector of text: the list of numbers at idx (a function embedder's), or,
 * when that is nil, the built-in embedder's. Sets v->vec and v->dim and
 * returns the malloc'd vector; raises only before allocating it. */
static float *vector_arg(lua_State *L, int idx, const char *fn, po_cache_vector *v) {
  int given = lua_type(L, idx) == LUA_TTABLE;
  if (!given && !lua_isnil(L, idx)) luaL_error(L, "%s: vector must be a list of numbers", fn);
  int dim = given ? (int)lua_objlen(L, idx) : PO_NGRAM_DIM;
  if (dim < 1 || dim > PO_CACHE_MAX_DIM)
    luaL_error(L, "%s: the embedding must have 1 to %d numbers, got %d", fn, PO_CACHE_MAX_DIM, dim);
  for (int i = 1; given && i <= dim; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: the embedding's item %d is not a number", fn, i);
    lua_pop(L, 1);
  }
  float *vec = malloc((size_t)dim * sizeof *vec);
  if (!vec) luaL_error(L, "%s: out of memory", fn);
  if (!given) {
    po_ngram_embed(v->text, v->text_len, vec);
  } else {
    for (int i = 1; i <= dim; i++) {
      lua_rawgeti(L, idx, i);
      vec[i - 1] = (float)lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
  }
  v->vec = vec;
  v->dim = dim;
  return vec;
}

/* The key's bytes from key_arg, made to outlast the canonical key of a group
 * written after them (key_arg reuses one buffer): copied into the handle when
 * they are that buffer's. Pops what key_arg pushed. */
static const char *keep_key(lua_State *L, handle *h, const char *key, size_t klen, int pushed, const char *fn) {
  if (!pushed) return key;
  h->key.len = 0;
  int rc = po_strbuf_append(&h->key, key, klen);
  lua_pop(L, 1);
  if (rc != 0) luaL_error(L, "%s: out of memory", fn);
  return h->key.data;
}

/* h:set(key, value, flags [, ttl [, group, embedder, text [, vector]]]) -> true | false | nil, message, code
 * With a group, the entry's vector is stored too: the one its lookup's miss
 * left in the memo, else vector, else (for the built-in embedder) text's.
 * false: a function embedder's vector is needed; call again with it. */
static int l_set(lua_State *L) {
  const char *fn = "cache:set";
  handle *h = check_open(L, 1, fn);
  lua_settop(L, 9); /* fixed argument slots: key_arg pushes above them */
  size_t vlen;
  const char *value = luaL_checklstring(L, 3, &vlen);
  unsigned flags = (unsigned)luaL_checkinteger(L, 4);
  double ttl = lua_isnoneornil(L, 5) ? h->ttl : check_ttl(L, 5, fn);
  int semantic = !lua_isnil(L, 6);
  po_cache_vector v = {0};
  if (semantic) {
    v.embedder = embedder_arg(L, 7, &v.embedder_len);
    v.text = luaL_checklstring(L, 8, &v.text_len);
  }
  size_t klen;
  int pushed;
  const char *key = key_arg(L, 2, fn, &klen, &pushed);
  po_cache_options o;
  po_cache_config(h->c, &o);
  if (o.max_bytes && klen + vlen > o.max_bytes) {
    lua_pop(L, pushed);
    return po_push_error_named(L, "ETOOBIG", "%s: key and value take %d bytes, more than max_bytes (%d)", fn,
                               (int)(klen + vlen), (int)o.max_bytes);
  }
  int rc;
  if (!semantic) {
    rc = po_cache_set(h->c, key, klen, value, vlen, flags, ttl, h->sync);
    lua_pop(L, pushed);
  } else {
    float *vec;
    if (po_cache_memo_take(&h->memo, po_cache_hash_key(key, klen), key, klen, &v.group, &vec, &v.dim) == 0) {
      v.vec = vec;
      lua_pop(L, pushed);
    } else if (lua_isnil(L, 9) && !lua_isnil(L, 7)) {
      lua_pop(L, pushed);
      lua_pushboolean(L, 0);
      return 1;
    } else {
      key = keep_key(L, h, key, klen, pushed, fn);
      v.group = group_arg(L, 6, fn, v.embedder, v.embedder_len);
      vec = vector_arg(L, 9, fn, &v);
    }
    /* Nothing below raises or runs Lua code: vec is freed, the key's bytes stay valid. */
    rc = po_cache_set_vector(h->c, key, klen, value, vlen, flags, ttl, h->sync, &v);
    free(vec);
    if (rc == PO_EINVAL)
      return po_push_error_named(L, "EEMBED",
                                 "%s: the embedding is all zeros, or its %d dimensions differ from those of the "
                                 "vectors this embedder stored before",
                                 fn, v.dim);
  }
  if (rc != 0) return store_error(L, rc, fn);
  lua_pushboolean(L, 1);
  return 1;
}

/* h:semantic_get(key, group, embedder, text, threshold, k [, vector])
 *   -> value, flags, age, score | nil (a miss: its vector kept for the set that follows) | nil, message, code
 * The lookup after an exact miss. */
static int l_semantic_get(lua_State *L) {
  const char *fn = "cache:get";
  handle *h = check_open(L, 1, fn);
  lua_settop(L, 8);
  po_cache_vector v = {0};
  v.embedder = embedder_arg(L, 4, &v.embedder_len);
  v.text = luaL_checklstring(L, 5, &v.text_len);
  float threshold = (float)luaL_checknumber(L, 6);
  int k = (int)luaL_checkinteger(L, 7);
  size_t klen;
  int pushed;
  const char *key = key_arg(L, 2, fn, &klen, &pushed);
  po_cache_hash kh = po_cache_hash_key(key, klen);
  key = keep_key(L, h, key, klen, pushed, fn);
  v.group = group_arg(L, 3, fn, v.embedder, v.embedder_len);
  float *vec = vector_arg(L, 8, fn, &v);
  /* Nothing below raises: vec is freed or kept in the memo. */
  float score = 0;
  int rc = po_cache_semantic_get(h->c, &v, threshold, k, &h->r, &score);
  if (rc == PO_ENOENT) {
    po_cache_memo_put(&h->memo, kh, key, klen, v.group, vec, v.dim); /* on failure, the set embeds again */
    lua_pushnil(L);
    return 1;
  }
  free(vec);
  if (rc != 0) return store_error(L, rc, fn);
  push_result(L, h);
  lua_pushnumber(L, score);
  return 4;
}

/* ---- the shared tier ------------------------------------------------------------
 * lua/poengine/cache_shared.lua keeps entries in Redis in the store's record
 * form (cache_record.h); these two turn an entry into that form and a record
 * found there back into a local entry. */

/* h:shared_record(key, value, flags [, ttl]) -> hex hash of the key, record
 * The record of an entry set now (created now, expiring ttl from now). */
static int l_shared_record(lua_State *L) {
  const char *fn = "cache:set";
  handle *h = check_open(L, 1, fn);
  lua_settop(L, 5);
  size_t vlen;
  const char *value = luaL_checklstring(L, 3, &vlen);
  unsigned flags = (unsigned)luaL_checkinteger(L, 4);
  double ttl = lua_isnil(L, 5) ? h->ttl : check_ttl(L, 5, fn);
  size_t klen;
  int pushed;
  const char *key = key_arg(L, 2, fn, &klen, &pushed);
  double now = po_wallclock();
  po_strbuf rec = {0};
  int rc = po_cache_record_encode(key, klen, value, vlen, flags, now, ttl > 0 ? now + ttl : 0, &rec);
  char hex[33];
  po_cache_hash_hex(po_cache_hash_key(key, klen), hex);
  lua_pop(L, pushed);
  if (rc != 0) {
    po_strbuf_free(&rec);
    return po_push_error(L, rc, "%s: %s", fn, po_strerror(rc));
  }
  lua_pushlstring(L, hex, 32);
  lua_pushlstring(L, rec.data, rec.len);
  po_strbuf_free(&rec);
  return 2;
}

/* h:shared_fill(key, record) -> value, flags, age, ttl | nil
 * A record found in the shared tier: nil when it is not one, holds another
 * key, or has expired; else its entry, also stored in the local tiers with
 * its own write time and expiry (ttl: the seconds it has left, 0: none). */
static int l_shared_fill(lua_State *L) {
  const char *fn = "cache:get";
  handle *h = check_open(L, 1, fn);
  size_t len;
  const char *bytes = luaL_checklstring(L, 3, &len);
  size_t klen;
  int pushed;
  const char *key = key_arg(L, 2, fn, &klen, &pushed);
  po_cache_record rec;
  double now = po_wallclock();
  int ok = po_cache_record_decode(bytes, len, &rec) == 0 && rec.klen == klen && memcmp(rec.key, key, klen) == 0 &&
           (rec.expires == 0 || rec.expires > now);
  /* A local tier that cannot take it (too big, a store failure) still leaves a hit. */
  if (ok) po_cache_put(h->c, key, klen, rec.value, rec.vlen, rec.flags, rec.created, rec.expires, h->sync);
  lua_pop(L, pushed);
  if (!ok) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, rec.value, rec.vlen);
  lua_pushinteger(L, (lua_Integer)rec.flags);
  lua_pushnumber(L, now - rec.created);
  lua_pushnumber(L, rec.expires > 0 ? rec.expires - now : 0);
  return 4;
}

/* h:delete(key) -> true (removed) | false (absent) | nil, message, code */
static int l_delete(lua_State *L) {
  const char *fn = "cache:delete";
  handle *h = check_open(L, 1, fn);
  size_t klen;
  int pushed;
  const char *key = key_arg(L, 2, fn, &klen, &pushed);
  int rc = po_cache_delete(h->c, key, klen, h->sync);
  if (pushed) lua_pop(L, 1);
  if (rc != 0 && rc != PO_ENOENT) return store_error(L, rc, fn);
  lua_pushboolean(L, rc == 0);
  return 1;
}

/* h:clear() -> true | nil, message, code */
static int l_clear(lua_State *L) {
  handle *h = check_open(L, 1, "cache:clear");
  int rc = po_cache_clear(h->c, h->sync);
  if (rc != 0) return store_error(L, rc, "cache:clear");
  lua_pushboolean(L, 1);
  return 1;
}

static void set_num(lua_State *L, const char *name, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, name);
}

/* h:stats() -> table | nil, message, code */
static int l_stats(lua_State *L) {
  handle *h = check_open(L, 1, "cache:stats");
  po_cache_stats s;
  int rc = po_cache_stats_get(h->c, &s);
  if (rc != 0) return store_error(L, rc, "cache:stats");
  uint64_t total = s.hits + s.misses;
  double rate = total ? (double)s.hits / (double)total : 0;
  lua_createtable(L, 0, 13);
  set_num(L, "hits", (double)s.hits);
  set_num(L, "misses", (double)s.misses);
  set_num(L, "semantic_hits", (double)s.semantic_hits);
  set_num(L, "sets", (double)s.sets);
  set_num(L, "evictions", (double)s.evictions);
  set_num(L, "expirations", (double)s.expirations);
  set_num(L, "size", (double)s.size);
  set_num(L, "bytes", (double)s.bytes);
  set_num(L, "max_entries", (double)s.max_entries);
  if (s.max_bytes) set_num(L, "max_bytes", (double)s.max_bytes);
  set_num(L, "total_requests", (double)total);
  set_num(L, "hit_rate", rate);
  set_num(L, "api_call_reduction", rate * 100);
  return 1;
}

/* A disk handle on the namespace of h's store: prune and contents work on
 * the store itself, whatever the memory tier holds (which the generation
 * bump of a prune makes reread). */
static po_cache_disk *open_disk(lua_State *L, handle *h, const char *fn, int *rc) {
  po_store *store = po_cache_store(h->c);
  if (!store) luaL_error(L, "%s: the cache has no store (it was opened without a path)", fn);
  po_cache_options o;
  po_cache_config(h->c, &o);
  po_cache_disk *d = NULL;
  *rc = po_cache_disk_open(po_store_path(store), o.ns, &d);
  return d;
}

/* A non-negative number option of the table at idx; *given says whether it was there. */
static double opt_amount(lua_State *L, int idx, const char *fn, const char *name, int integer, int *given) {
  lua_getfield(L, idx, name);
  *given = !lua_isnil(L, -1);
  double v = lua_tonumber(L, -1);
  if (*given && (lua_type(L, -1) != LUA_TNUMBER || !(v >= 0 && v <= 9007199254740992.0) ||
                 (integer && v != floor(v))))
    luaL_error(L, "%s: %s must be a non-negative %s, got %s", fn, name, integer ? "integer" : "number of seconds",
               lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static int opt_flag(lua_State *L, int idx, const char *fn, const char *name) {
  lua_getfield(L, idx, name);
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
    luaL_error(L, "%s: %s must be a boolean, got %s", fn, name, luaL_typename(L, -1));
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* h:prune{ older_than =, max_bytes =, dry_run =, all_namespaces =, batch = }
 *   -> { removed, removed_bytes, expired, remaining, remaining_bytes, transactions } | nil, message, code */
static int l_prune(lua_State *L) {
  static const char *const allowed[] = {"older_than", "max_bytes", "dry_run", "all_namespaces", "batch", NULL};
  const char *fn = "cache:prune";
  handle *h = check_open(L, 1, fn);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_newtable(L);
  }
  po_check_options(L, 2, fn, allowed);
  po_cache_disk_prune p = {0};
  p.older_than = opt_amount(L, 2, fn, "older_than", 0, &p.by_age);
  p.max_bytes = (uint64_t)opt_amount(L, 2, fn, "max_bytes", 1, &p.by_bytes);
  int given;
  double batch = opt_amount(L, 2, fn, "batch", 1, &given);
  if (given && !(batch >= 1 && batch <= 1 << 20)) luaL_error(L, "%s: batch must be an integer from 1 to 1048576", fn);
  p.batch = (size_t)batch;
  p.dry_run = opt_flag(L, 2, fn, "dry_run");
  p.all_namespaces = opt_flag(L, 2, fn, "all_namespaces");
  int rc;
  po_cache_disk *d = open_disk(L, h, fn, &rc);
  if (rc == 0) {
    p.now = po_wallclock();
    rc = po_cache_disk_prune_run(d, &p);
    po_cache_disk_close(d);
  }
  if (rc != 0) return store_error(L, rc, fn);
  lua_createtable(L, 0, 6);
  set_num(L, "removed", (double)p.removed);
  set_num(L, "removed_bytes", (double)p.removed_bytes);
  set_num(L, "expired", (double)p.expired);
  set_num(L, "remaining", (double)p.remaining);
  set_num(L, "remaining_bytes", (double)p.remaining_bytes);
  set_num(L, "transactions", (double)p.transactions);
  return 1;
}

/* h:contents() -> { entries, bytes, expired, vectors, oldest, newest, map_size, map_used, map_free }
 *   | nil, message, code: what the namespace holds in the store now. */
static int l_contents(lua_State *L) {
  const char *fn = "cache:contents";
  handle *h = check_open(L, 1, fn);
  int rc;
  po_cache_disk *d = open_disk(L, h, fn, &rc);
  po_cache_disk_info info;
  if (rc == 0) {
    rc = po_cache_disk_info_get(d, po_wallclock(), &info);
    po_cache_disk_close(d);
  }
  if (rc != 0) return store_error(L, rc, fn);
  lua_createtable(L, 0, 9);
  set_num(L, "entries", (double)info.entries);
  set_num(L, "bytes", (double)info.bytes);
  set_num(L, "expired", (double)info.expired);
  set_num(L, "vectors", (double)info.vectors);
  if (info.entries) {
    set_num(L, "oldest", info.oldest);
    set_num(L, "newest", info.newest);
  }
  set_num(L, "map_size", (double)info.map_size);
  set_num(L, "map_used", (double)info.map_used);
  set_num(L, "map_free", (double)info.map_free);
  return 1;
}

/* core.cache.namespaces(path) -> { names... } (in the store's order) | nil, message, code.
 * Creates nothing where there is no cache store. */
static int add_ns_name(void *ctx, const char *ns, size_t len) {
  po_strbuf *names = ctx;
  return po_strbuf_append(names, ns, len) || po_strbuf_append(names, "", 1) ? PO_ENOMEM : 0;
}

static int l_namespaces(lua_State *L) {
  const char *fn = "po.cache.namespaces";
  const char *path = luaL_checkstring(L, 1);
  po_strbuf names = {0};
  int rc = po_cache_disk_namespaces(path, add_ns_name, &names);
  if (rc != 0) {
    po_strbuf_free(&names);
    return store_error(L, rc, fn);
  }
  lua_newtable(L);
  int n = 0;
  for (size_t at = 0; at < names.len; at += strlen(names.data + at) + 1) {
    lua_pushstring(L, names.data + at);
    lua_rawseti(L, -2, ++n);
  }
  po_strbuf_free(&names);
  return 1;
}

/* h:config() -> { path, namespace, max_entries, max_bytes, policy, ttl, sync } */
static int l_config(lua_State *L) {
  handle *h = check_open(L, 1, "cache:config");
  po_cache_options o;
  po_cache_config(h->c, &o);
  lua_createtable(L, 0, 7);
  if (o.path) {
    lua_pushstring(L, o.path);
    lua_setfield(L, -2, "path");
  }
  lua_pushstring(L, o.ns);
  lua_setfield(L, -2, "namespace");
  set_num(L, "max_entries", (double)o.max_entries);
  if (o.max_bytes) set_num(L, "max_bytes", (double)o.max_bytes);
  lua_pushstring(L, policies[o.policy]);
  lua_setfield(L, -2, "policy");
  set_num(L, "ttl", h->ttl);
  lua_pushstring(L, syncs[h->sync]);
  lua_setfield(L, -2, "sync");
  return 1;
}

/* h:close(): safe to call twice; __gc does the same. */
static int l_close(lua_State *L) {
  handle *h = luaL_checkudata(L, 1, CACHE_TYPE);
  po_cache_close(h->c);
  h->c = NULL;
  po_cache_result_free(&h->r);
  po_cache_memo_free(&h->memo);
  po_strbuf_free(&h->key);
  return 0;
}

/* h:pointers() -> the po_cache and the result buffer, as light userdata (valid
 * until the handle closes), and the handle's po_store_durability: what the FFI
 * fast path passes to po_cache_get and po_cache_set. */
static int l_pointers(lua_State *L) {
  handle *h = check_open(L, 1, "cache:pointers");
  lua_pushlightuserdata(L, h->c);
  lua_pushlightuserdata(L, &h->r);
  lua_pushinteger(L, h->sync);
  return 3;
}

/* core.cache.key(key) -> 32 hex digits of the key's hash */
static int l_key(lua_State *L) {
  size_t len;
  int pushed;
  const char *key = key_arg(L, 1, "po.cache.key", &len, &pushed);
  char hex[33];
  po_cache_hash_hex(po_cache_hash_key(key, len), hex);
  if (pushed) lua_pop(L, 1);
  lua_pushlstring(L, hex, 32);
  return 1;
}

/* core.cache.canonical(request) -> a JSON-like text of the canonical key a
 * request is hashed by (po_cache_key_describe: the key's bytes read back),
 * or a string key as it is. */
static int l_canonical(lua_State *L) {
  size_t len;
  int pushed;
  const char *key = key_arg(L, 1, "po.cache.canonical", &len, &pushed);
  if (!pushed) {
    lua_pushlstring(L, key, len);
    return 1;
  }
  po_strbuf text = {0};
  int rc = po_cache_key_describe(key, len, &text);
  if (rc == 0) lua_pushlstring(L, text.data ? text.data : "", text.len);
  po_strbuf_free(&text);
  if (rc != 0) return luaL_error(L, "po.cache.canonical: %s", po_strerror(rc));
  return 1;
}

/* core.cache.error_text(rc) -> message, code: words a failure code the FFI
 * path got (the store's last error on this thread, if it was the store). */
static int l_error_text(lua_State *L) {
  int rc = (int)luaL_checkinteger(L, 1);
  int store = rc == PO_ESTORE || rc == PO_EMAPFULL || rc == PO_EPERM || rc == PO_ESCHEMA;
  lua_pushstring(L, store ? po_store_last_error() : po_strerror(rc));
  lua_pushstring(L, po_errname(rc));
  return 2;
}

void po_open_cache(lua_State *L) {
  static const luaL_Reg methods[] = {{"get", l_get},         {"set", l_set},       {"delete", l_delete},
                                     {"clear", l_clear},     {"stats", l_stats},   {"config", l_config},
                                     {"close", l_close},     {"pointers", l_pointers},
                                     {"semantic_get", l_semantic_get}, {"prune", l_prune},
                                     {"contents", l_contents}, {"shared_record", l_shared_record},
                                     {"shared_fill", l_shared_fill}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_close}, {NULL, NULL}};
  static const luaL_Reg fns[] = {{"open", l_open},
                                 {"key", l_key},
                                 {"canonical", l_canonical},
                                 {"error_text", l_error_text},
                                 {"namespaces", l_namespaces},
                                 {NULL, NULL}};
  po_register_type(L, CACHE_TYPE, methods, meta);
  lua_createtable(L, 0, 5);
  po_set_funcs(L, fns);
  lua_pushinteger(L, PO_ENOENT); /* what po_cache_get returns for a miss, to the FFI fast path */
  lua_setfield(L, -2, "ENOENT");
  lua_pushinteger(L, PO_CACHE_KEY_VERSION); /* the shared tier's keys carry it */
  lua_setfield(L, -2, "KEY_VERSION");
  lua_setfield(L, -2, "cache");
}
