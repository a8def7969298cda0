#include "cache_semantic.h"

#include "error.h"
#include "semantic.h"
#include "vindex.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

enum {
  RECORD_VERSION = 1,
  KIND_F32 = 0,
  HEADER = 1 + 1 + 2 + 4 + 16 + 16 + 1, /* up to the embedder id */
  MAX_K = 64,
};

typedef struct member member;
struct member {
  member *next_id, *next_entry; /* chains of the two maps */
  uint64_t id;
  po_cache_hash entry;
  int group;
  size_t tlen;
  char text[];
};

typedef struct group {
  po_cache_hash h;
  int dim;
  po_vindex *ix;
} group;

struct po_cache_sem {
  pthread_mutex_t lock;
  group *groups;
  int ngroups, gcap;
  member **by_id, **by_entry; /* id -> member; (group, entry) -> member */
  size_t mask, count;
};

int po_cache_sem_new(po_cache_sem **out) {
  po_cache_sem *s = calloc(1, sizeof *s);
  if (!s) return PO_ENOMEM;
  s->mask = 63;
  s->by_id = calloc(s->mask + 1, sizeof *s->by_id);
  s->by_entry = calloc(s->mask + 1, sizeof *s->by_entry);
  if (!s->by_id || !s->by_entry) {
    free(s->by_id);
    free(s->by_entry);
    free(s);
    return PO_ENOMEM;
  }
  pthread_mutex_init(&s->lock, NULL);
  *out = s;
  return 0;
}

void po_cache_sem_free(po_cache_sem *s) {
  if (!s) return;
  for (size_t i = 0; i <= s->mask; i++) {
    for (member *m = s->by_id[i], *next; m; m = next) {
      next = m->next_id;
      free(m);
    }
  }
  for (int i = 0; i < s->ngroups; i++) po_vindex_free(s->groups[i].ix);
  free(s->groups);
  free(s->by_id);
  free(s->by_entry);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

po_cache_hash po_cache_sem_group(const char *params, size_t plen, const char *embedder, size_t elen) {
  XXH3_state_t st;
  XXH3_128bits_reset(&st);
  XXH3_128bits_update(&st, params, plen);
  XXH3_128bits_update(&st, "\0", 1);
  XXH3_128bits_update(&st, embedder, elen);
  XXH128_hash_t x = XXH3_128bits_digest(&st);
  return (po_cache_hash){x.low64, x.high64};
}

int po_cache_sem_encode(const po_cache_vector *v, po_cache_hash entry, po_strbuf *out) {
  if (v->dim < 1 || v->dim > PO_CACHE_MAX_DIM || v->embedder_len > 255 || v->text_len > UINT32_MAX) return PO_EINVAL;
  double norm = 0;
  for (int i = 0; i < v->dim; i++) norm += (double)v->vec[i] * v->vec[i];
  if (!(norm > 0) || isinf(norm)) return PO_EINVAL; /* zero, NaN or infinite */
  /* A unit vector (the n-gram embedder's) is kept bit for bit, so scores
   * agree exactly with po.semantic's. */
  float inv = fabs(norm - 1) < 1e-6 ? 1.0f : (float)(1 / sqrt(norm));
  unsigned char head[HEADER];
  uint16_t dim = (uint16_t)v->dim;
  uint32_t tlen = (uint32_t)v->text_len;
  head[0] = RECORD_VERSION;
  head[1] = KIND_F32;
  memcpy(head + 2, &dim, 2);
  memcpy(head + 4, &tlen, 4);
  memcpy(head + 8, &v->group, 16);
  memcpy(head + 24, &entry, 16);
  head[40] = (unsigned char)v->embedder_len;
  out->len = 0;
  if (po_strbuf_grow(out, HEADER + v->embedder_len + v->text_len + (size_t)v->dim * 4)) return PO_ENOMEM;
  po_strbuf_append(out, head, HEADER);
  po_strbuf_append(out, v->embedder, v->embedder_len);
  po_strbuf_append(out, v->text, v->text_len);
  for (int i = 0; i < v->dim; i++) {
    float x = v->vec[i] * inv;
    po_strbuf_append(out, &x, sizeof x);
  }
  return 0;
}

static size_t slot_id(const po_cache_sem *s, uint64_t id) { return (size_t)(id * 0x9E3779B97F4A7C15ull >> 32) & s->mask; }
static size_t slot_entry(const po_cache_sem *s, int g, po_cache_hash e) { return (size_t)(e.lo + (uint64_t)g) & s->mask; }

static member *find_id(po_cache_sem *s, uint64_t id) {
  member *m = s->by_id[slot_id(s, id)];
  while (m && m->id != id) m = m->next_id;
  return m;
}

static member *find_entry(po_cache_sem *s, int g, po_cache_hash e) {
  member *m = s->by_entry[slot_entry(s, g, e)];
  while (m && !(m->group == g && m->entry.lo == e.lo && m->entry.hi == e.hi)) m = m->next_entry;
  return m;
}

static void unlink_member(po_cache_sem *s, member *m) {
  member **p = &s->by_id[slot_id(s, m->id)];
  while (*p != m) p = &(*p)->next_id;
  *p = m->next_id;
  p = &s->by_entry[slot_entry(s, m->group, m->entry)];
  while (*p != m) p = &(*p)->next_entry;
  *p = m->next_entry;
  po_vindex_remove(s->groups[m->group].ix, m->id);
  s->count--;
  free(m);
}

static void link_member(po_cache_sem *s, member *m) {
  size_t i = slot_id(s, m->id), j = slot_entry(s, m->group, m->entry);
  m->next_id = s->by_id[i];
  s->by_id[i] = m;
  m->next_entry = s->by_entry[j];
  s->by_entry[j] = m;
  s->count++;
}

/* Doubles both maps when they hold more members than buckets. */
static void maybe_grow(po_cache_sem *s) {
  if (s->count <= s->mask + 1) return;
  size_t n = (s->mask + 1) * 2;
  member **a = calloc(n, sizeof *a), **b = calloc(n, sizeof *b);
  if (!a || !b) {
    free(a);
    free(b);
    return; /* longer chains, still correct */
  }
  member **old = s->by_id;
  size_t old_n = s->mask + 1;
  free(s->by_entry);
  s->by_id = a;
  s->by_entry = b;
  s->mask = n - 1;
  s->count = 0;
  for (size_t i = 0; i < old_n; i++) {
    for (member *m = old[i], *next; m; m = next) {
      next = m->next_id;
      link_member(s, m);
    }
  }
  free(old);
}

static int find_group(po_cache_sem *s, po_cache_hash h) {
  for (int i = 0; i < s->ngroups; i++)
    if (s->groups[i].h.lo == h.lo && s->groups[i].h.hi == h.hi) return i;
  return -1;
}

static int add_group(po_cache_sem *s, po_cache_hash h, int dim) {
  if (s->ngroups == s->gcap) {
    int cap = s->gcap ? s->gcap * 2 : 8;
    group *g = realloc(s->groups, (size_t)cap * sizeof *g);
    if (!g) return PO_ENOMEM;
    s->groups = g;
    s->gcap = cap;
  }
  group *g = &s->groups[s->ngroups];
  g->h = h;
  g->dim = dim;
  int rc = po_vindex_new(dim, PO_VINDEX_I8, &g->ix); /* int8 scan, exact float re-scoring: vindex.h */
  if (rc != 0) return rc;
  return s->ngroups++;
}

int po_cache_sem_add_record(po_cache_sem *s, uint64_t id, const void *record, size_t len) {
  const unsigned char *p = record;
  if (len < HEADER || p[0] != RECORD_VERSION || p[1] != KIND_F32) return PO_EINVAL;
  uint16_t dim;
  uint32_t tlen;
  po_cache_hash gh, entry;
  memcpy(&dim, p + 2, 2);
  memcpy(&tlen, p + 4, 4);
  memcpy(&gh, p + 8, 16);
  memcpy(&entry, p + 24, 16);
  size_t elen = p[40];
  if (dim < 1 || dim > PO_CACHE_MAX_DIM || len != HEADER + elen + tlen + (size_t)dim * 4) return PO_EINVAL;
  const char *text = (const char *)p + HEADER + elen;
  float *vec = malloc((size_t)dim * sizeof *vec);
  member *m = malloc(sizeof *m + tlen);
  if (!vec || !m) {
    free(vec);
    free(m);
    return PO_ENOMEM;
  }
  memcpy(vec, text + tlen, (size_t)dim * 4);
  m->id = id;
  m->entry = entry;
  m->tlen = tlen;
  memcpy(m->text, text, tlen);

  pthread_mutex_lock(&s->lock);
  int g = find_group(s, gh);
  int rc = 0;
  if (g < 0) {
    g = add_group(s, gh, dim);
    if (g < 0) rc = g;
  } else if (s->groups[g].dim != dim) {
    rc = PO_EINVAL;
  }
  if (rc == 0) {
    member *old = find_id(s, id);
    if (old) unlink_member(s, old);
    old = find_entry(s, g, entry); /* the entry's previous vector */
    if (old) unlink_member(s, old);
    m->group = g;
    rc = po_vindex_add(s->groups[g].ix, id, vec);
    if (rc == 0) {
      link_member(s, m);
      maybe_grow(s);
      m = NULL;
    }
  }
  pthread_mutex_unlock(&s->lock);
  free(m);
  free(vec);
  return rc;
}

void po_cache_sem_remove(po_cache_sem *s, uint64_t id) {
  pthread_mutex_lock(&s->lock);
  member *m = find_id(s, id);
  if (m) unlink_member(s, m);
  pthread_mutex_unlock(&s->lock);
}

int po_cache_sem_dim(po_cache_sem *s, po_cache_hash gh) {
  pthread_mutex_lock(&s->lock);
  int g = find_group(s, gh);
  int dim = g >= 0 ? s->groups[g].dim : 0;
  pthread_mutex_unlock(&s->lock);
  return dim;
}

size_t po_cache_sem_count(po_cache_sem *s) {
  pthread_mutex_lock(&s->lock);
  size_t n = s->count;
  pthread_mutex_unlock(&s->lock);
  return n;
}

int po_cache_sem_search(po_cache_sem *s, po_cache_hash gh, const float *q, int dim, const char *text, size_t tlen,
                        float threshold, int k, po_cache_sem_candidate *out) {
  if (k > MAX_K) k = MAX_K;
  uint64_t ids[MAX_K];
  float scores[MAX_K];
  int found = 0, n = 0;
  pthread_mutex_lock(&s->lock);
  int g = find_group(s, gh);
  if (g >= 0 && s->groups[g].dim == dim) po_vindex_search(s->groups[g].ix, q, k, ids, scores, &found);
  for (int i = 0; i < found && scores[i] >= threshold; i++) {
    member *m = find_id(s, ids[i]);
    /* The one decision po.semantic.match makes too: a script can check beforehand what the cache accepts. */
    if (!m || !po_semantic_accept(scores[i], threshold, text, tlen, m->text, m->tlen)) continue;
    out[n++] = (po_cache_sem_candidate){m->id, m->entry, scores[i]};
  }
  pthread_mutex_unlock(&s->lock);
  return n;
}

void po_cache_sem_purge(po_cache_sem *s, int (*keep)(void *ctx, po_cache_hash entry), void *ctx) {
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i <= s->mask; i++) {
    member *m = s->by_id[i];
    while (m) {
      member *next = m->next_id;
      if (!keep(ctx, m->entry)) unlink_member(s, m);
      m = next;
    }
  }
  pthread_mutex_unlock(&s->lock);
}

/* ---- the vectors of recent misses ------------------------------------------ */

static po_cache_memo_slot *memo_find(po_cache_memo *m, po_cache_hash h, const void *key, size_t klen) {
  for (int i = 0; i < PO_CACHE_MEMO_SLOTS; i++) {
    po_cache_memo_slot *sl = &m->slot[i];
    if (sl->key && sl->h.lo == h.lo && sl->h.hi == h.hi && sl->klen == klen && memcmp(sl->key, key, klen) == 0)
      return sl;
  }
  return NULL;
}

static void memo_clear(po_cache_memo_slot *sl) {
  free(sl->key);
  free(sl->vec);
  memset(sl, 0, sizeof *sl);
}

int po_cache_memo_put(po_cache_memo *m, po_cache_hash h, const void *key, size_t klen, po_cache_hash gh, float *vec,
                      int dim) {
  po_cache_memo_slot *sl = memo_find(m, h, key, klen);
  for (int i = 0; !sl && i < PO_CACHE_MEMO_SLOTS; i++)
    if (!m->slot[i].key) sl = &m->slot[i];
  if (!sl) sl = &m->slot[m->next++ % PO_CACHE_MEMO_SLOTS];
  memo_clear(sl);
  char *copy = malloc(klen ? klen : 1);
  if (!copy) {
    free(vec);
    return PO_ENOMEM;
  }
  memcpy(copy, key, klen);
  *sl = (po_cache_memo_slot){h, copy, klen, gh, vec, dim};
  return 0;
}

int po_cache_memo_take(po_cache_memo *m, po_cache_hash h, const void *key, size_t klen, po_cache_hash *gh,
                       float **vec, int *dim) {
  po_cache_memo_slot *sl = memo_find(m, h, key, klen);
  if (!sl) return PO_ENOENT;
  *gh = sl->group;
  *vec = sl->vec;
  *dim = sl->dim;
  sl->vec = NULL; /* now the caller's */
  memo_clear(sl);
  return 0;
}

void po_cache_memo_free(po_cache_memo *m) {
  for (int i = 0; i < PO_CACHE_MEMO_SLOTS; i++) memo_clear(&m->slot[i]);
  m->next = 0;
}
