/* What the three walkers over Lua values share: the JSON encoder
 * (bind_json.c), the cache key (bind_cache_key.c) and the value copier
 * (bind_copy.c). Each walks a value depth first; a po_walk keeps the tables
 * open, to refuse a table inside itself and to bound the nesting, and how
 * each level was reached, so that an error names the value's path
 * ("$.steps[2].run", "args[1].child.back"). Here too is the rule that tells
 * an array from an object, with po.json's marks.
 *
 * The walker only records: the caller raises or returns its own message,
 * with the path from po_walk_where. */
#ifndef PO_BIND_WALK_H
#define PO_BIND_WALK_H

#include <lua.h>

#include <math.h>
#include <stddef.h>

enum { PO_WALK_INDEX, PO_WALK_KEY, PO_WALK_NUMKEY, PO_WALK_BOOLKEY };

typedef struct po_walk_step { /* how a value inside an open table was reached */
  int kind;
  size_t index;    /* PO_WALK_INDEX: the 1-based Lua index */
  const char *key; /* PO_WALK_KEY: anchored by the table walked */
  size_t keylen;
  lua_Number num; /* PO_WALK_NUMKEY; PO_WALK_BOOLKEY: 0 or 1 */
} po_walk_step;

typedef struct po_walk {
  const void **open;  /* the tables open, outermost first (max_depth slots, the caller's) */
  po_walk_step *path; /* path[i]: how the value walked inside open[i] was reached (max_depth slots) */
  int max_depth;
  int depth; /* tables open */
  int plen;  /* steps in the path of the value being walked: depth, or depth - 1 at the table itself */
} po_walk;

enum { PO_WALK_CYCLE = 1, PO_WALK_TOO_DEEP = 2 };

/* Readies w for a walk from the top, over the caller's arrays (not read
 * above the current depth, so they need no clearing). */
static inline void po_walk_init(po_walk *w, const void **open, po_walk_step *path, int max_depth) {
  w->open = open;
  w->path = path;
  w->max_depth = max_depth;
  w->depth = 0;
  w->plen = 0;
}

/* Opens table t (its lua_topointer) one level down. Returns 0, or, leaving
 * w as it was: PO_WALK_CYCLE when t is open already (it contains itself),
 * PO_WALK_TOO_DEEP when max_depth tables are open. */
static inline int po_walk_enter(po_walk *w, const void *t) {
  for (int i = 0; i < w->depth; i++)
    if (w->open[i] == t) return PO_WALK_CYCLE;
  if (w->depth >= w->max_depth) return PO_WALK_TOO_DEEP;
  w->open[w->depth++] = t;
  return 0;
}

static inline void po_walk_leave(po_walk *w) {
  w->depth--;
}

/* The step to a value inside the innermost open table. Filling it does not
 * make it part of the path (an error about a key is the table's own):
 * po_walk_down does, po_walk_up takes it out again. */
static inline po_walk_step *po_walk_slot(po_walk *w) {
  return &w->path[w->depth - 1];
}

static inline void po_walk_down(po_walk *w) {
  w->plen = w->depth;
}

static inline void po_walk_up(po_walk *w) {
  w->plen = w->depth - 1;
}

/* Records in st the key at stack slot idx (a string, a number or a boolean)
 * and returns its Lua type; any other type is returned, st untouched. */
int po_walk_set_key(lua_State *L, int idx, po_walk_step *st);

/* Writes "<root><path>" into buf (cap bytes, NUL-terminated): ".name" for
 * a string key that is an identifier, ["other"] escaped and cut at 40
 * bytes, [2] for an index or a number key (as po.json writes numbers),
 * [true] for a boolean key; a path of more than 16 steps keeps both ends. */
void po_walk_where(const po_walk *w, const char *root, char *buf, size_t cap);

/* Raises "<fn>: <what> at $<path>" (luaL_error: the caller makes its state
 * reusable first). */
void po_walk_raise(lua_State *L, const po_walk *w, const char *fn, const char *what);

/* The array index k stands for (1 .. 2^53, integral), or 0. */
static inline size_t po_walk_index_of(lua_Number k) {
  return k >= 1 && k <= 9007199254740992.0 && k == floor(k) ? (size_t)k : 0;
}

/* po.json's marks: a table whose metatable is amark (po.json.array) or
 * omark (po.json.object), compared by identity. */
enum { PO_WALK_UNMARKED = 0, PO_WALK_ARRAY = 1, PO_WALK_OBJECT = 2 };

/* The mark of the table at t. */
int po_walk_mark(lua_State *L, int t, const void *amark, const void *omark);

/* Whether a table with that mark and count keys, the highest index max and
 * bad_type the Lua type of its first key that is not an array index
 * (LUA_TNONE if none) is an array: an unmarked table is one when its keys
 * are 1..max with at most max/2 holes and at least one key, a marked one
 * must satisfy the same rule. Returns 1 (array), 0 (object), or -1 with the
 * message in what (a marked array that breaks the rule). */
int po_walk_shape(lua_State *L, int mark, size_t count, size_t max, int bad_type, char *what, size_t cap);

#endif
