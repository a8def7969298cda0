#include "cache.h"

#include "cache_disk.h"
#include "cache_semantic.h"
#include "clock.h"
#include "error.h"
#include "heap.h"
#include "strbuf.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

enum {
  MAX_SHARDS = 16,
  MIN_PER_SHARD = 64,    /* entries a shard holds at least before the cache splits further */
  MIN_BYTES_PER_SHARD = 1 << 20, /* and bytes, with max_bytes */
  EXPIRE_PER_OP = 2,     /* expired entries an operation drops from its shard, at most */
  TOUCH_CAP = 64,        /* hits a shard remembers for the store's recency, between writes */
  INITIAL_BUCKETS = 16,
};
#define NO_HEAP SIZE_MAX

typedef struct entry entry;
struct entry {
  entry *hnext;        /* hash chain */
  entry *prev, *next;  /* recency list (LRU) or queue (SIEVE); head is the newest */
  po_cache_hash h;
  double created, expires; /* wall clock; expires 0: never */
  uint64_t gen;            /* the store generation it was read at */
  size_t klen, vlen;
  size_t heap_idx;         /* in the expiry heap, or NO_HEAP */
  uint8_t visited;
  unsigned flags;
  char data[];             /* key, then value */
};

typedef struct shard {
  pthread_mutex_t lock;
  entry **buckets;
  size_t mask; /* buckets - 1 */
  size_t count, bytes, max_entries, max_bytes;
  entry *head, *tail, *hand;
  po_heap expiry; /* the entries with an expiry time, on it */
  uint64_t hits, misses, evictions, expirations;
  po_cache_hash touched[TOUCH_CAP];
  size_t ntouched;
} __attribute__((aligned(64))) shard;

struct po_cache {
  po_cache *next; /* in the process-wide list */
  int refs;       /* guarded by caches_lock */
  char *path;     /* the store's canonical path, or NULL */
  char *ns;
  po_cache_options opts;
  int nshards;
  shard *shards;
  po_cache_disk *disk;
  uint64_t sets, semantic_hits, disk_evictions, disk_expirations; /* atomics */
  unsigned sweep; /* the shard a set also sweeps for expired entries (atomic) */
  pthread_mutex_t sem_lock; /* creating and loading the semantic tier */
  po_cache_sem *sem;        /* created on first use */
  uint64_t sem_loaded;      /* the highest vector seq loaded from the store */
  uint64_t sem_next_id;     /* vector ids of a memory-only cache (atomic) */
  pthread_mutex_t sync_lock;
  int dirty;          /* batch writes not flushed yet (atomic) */
  double dirty_since; /* guarded by sync_lock */
};

static pthread_mutex_t caches_lock = PTHREAD_MUTEX_INITIALIZER;
static po_cache *caches;

/* Wall-clock seconds from the coarse clock (a few ms of resolution, a
 * fraction of the cost): TTLs and ages need no better. */
static double now_coarse(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define ADD(field, n) __atomic_add_fetch(&(field), (n), __ATOMIC_RELAXED)
#define LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

po_cache_hash po_cache_hash_key(const void *key, size_t len) {
  XXH128_hash_t x = XXH3_128bits(key, len);
  return (po_cache_hash){x.low64, x.high64};
}

void po_cache_hash_hex(po_cache_hash h, char out[33]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[i] = hex[(h.hi >> (60 - 4 * i)) & 15];
    out[16 + i] = hex[(h.lo >> (60 - 4 * i)) & 15];
  }
  out[32] = '\0';
}

/* Lowercases s without '-' and '_' into out (NUL-terminated); 0 if too long. */
static int normalize(const char *s, size_t len, char *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch == '-' || ch == '_') continue;
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    if (n + 1 >= cap) return 0;
    out[n++] = ch;
  }
  out[n] = '\0';
  return 1;
}

typedef struct secret_name {
  const char *s;
  size_t len;
} secret_name;
#define NAME(x) {x, sizeof(x) - 1}

/* The documented list (docs/scripting.md, Keys), normalized. */
static const secret_name exact_names[] = {
    NAME("authorization"), NAME("proxyauthorization"), NAME("cookie"), NAME("setcookie"),
    NAME("secret"),        NAME("token"),              NAME("credentials"), NAME("credential"),
    NAME("privatekey"),    NAME("passwd"),             NAME("passphrase")};
static const secret_name suffix_names[] = {
    NAME("apikey"),       NAME("headers"),     NAME("password"),    NAME("clientsecret"), NAME("secretkey"),
    NAME("secretaccesskey"), NAME("accesstoken"), NAME("authtoken"), NAME("bearertoken"), NAME("refreshtoken"),
    NAME("sessiontoken"), NAME("idtoken"),     NAME("apitoken")};
static const secret_name schema_maps[] = {NAME("properties"), NAME("patternproperties"), NAME("$defs"),
                                          NAME("definitions")};
#undef NAME
enum { SHORTEST_SECRET = 5 }; /* "token" */

/* Whether a normalized name is, or ends with, a secret name: lengths and the
 * last letter first, bytes only for a name that passes both. */
static int secret_name_match(const char *name, size_t n) {
  char last = name[n - 1];
  for (size_t i = 0; i < sizeof exact_names / sizeof *exact_names; i++) {
    const secret_name *x = &exact_names[i];
    if (x->len == n && x->s[n - 1] == last && memcmp(x->s, name, n) == 0) return 1;
  }
  for (size_t i = 0; i < sizeof suffix_names / sizeof *suffix_names; i++) {
    const secret_name *x = &suffix_names[i];
    if (x->len <= n && x->s[x->len - 1] == last && memcmp(x->s, name + n - x->len, x->len) == 0) return 1;
  }
  return 0;
}

/* Whether the last two letters of s, normalized, end some secret name: most
 * of a request's keys ("model", "messages", "content", "temperature") fail
 * here, before any copy. */
static int secret_tail(const char *s, size_t len) {
  char t[2];
  int got = 0;
  for (size_t i = len; i-- > 0 && got < 2;) {
    char ch = s[i];
    if (ch == '-' || ch == '_') continue;
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    t[1 - got++] = ch;
  }
  if (got < 2) return 0;
  for (size_t i = 0; i < sizeof exact_names / sizeof *exact_names; i++) {
    const secret_name *x = &exact_names[i];
    if (x->s[x->len - 1] == t[1] && x->s[x->len - 2] == t[0]) return 1;
  }
  for (size_t i = 0; i < sizeof suffix_names / sizeof *suffix_names; i++) {
    const secret_name *x = &suffix_names[i];
    if (x->s[x->len - 1] == t[1] && x->s[x->len - 2] == t[0]) return 1;
  }
  return 0;
}

int po_cache_secret_field(const char *key, size_t len, const char *parent, size_t parent_len) {
  /* Normalizing only removes characters: a key shorter than every secret
   * name is none (most of a request's keys: "role", "seed", "stop" …). A
   * name ends at a zero byte, if it has one. */
  if (len < SHORTEST_SECRET) return 0;
  size_t end = 0;
  while (end < len && key[end]) end++;
  if (!secret_tail(key, end)) return 0;
  char name[64];
  if (!normalize(key, len, name, sizeof name)) return 0;
  size_t n = strlen(name);
  if (n < SHORTEST_SECRET || !secret_name_match(name, n)) return 0;
  /* A secret's name: unless it names a parameter in a JSON Schema name map. */
  if (parent && normalize(parent, parent_len, name, sizeof name)) {
    n = strlen(name);
    for (size_t i = 0; i < sizeof schema_maps / sizeof *schema_maps; i++)
      if (schema_maps[i].len == n && memcmp(schema_maps[i].s, name, n) == 0) return 0;
  }
  return 1;
}

void po_cache_result_free(po_cache_result *r) {
  free(r->value);
  memset(r, 0, sizeof *r);
}

static int copy_out(po_cache_result *r, const void *p, size_t n) {
  if (n > r->cap) {
    size_t cap = n < 256 ? 256 : n + n / 2;
    char *v = realloc(r->value, cap);
    if (!v) return PO_ENOMEM;
    r->value = v;
    r->cap = cap;
  }
  if (n) memcpy(r->value, p, n);
  r->len = n;
  return 0;
}

/* ---- one shard ------------------------------------------------------------------- */

static int same(const entry *e, po_cache_hash h, const void *key, size_t klen) {
  return e->h.lo == h.lo && e->h.hi == h.hi && (!key || (e->klen == klen && memcmp(e->data, key, klen) == 0));
}

static entry **find_slot(shard *s, po_cache_hash h, const void *key, size_t klen) {
  entry **p = &s->buckets[h.lo & s->mask];
  while (*p && !same(*p, h, key, klen)) p = &(*p)->hnext;
  return p;
}

static void list_unlink(shard *s, entry *e) {
  if (s->hand == e) s->hand = e->prev;
  if (e->prev) e->prev->next = e->next;
  else s->head = e->next;
  if (e->next) e->next->prev = e->prev;
  else s->tail = e->prev;
  e->prev = e->next = NULL;
}

static void list_push_head(shard *s, entry *e) {
  e->prev = NULL;
  e->next = s->head;
  if (s->head) s->head->prev = e;
  s->head = e;
  if (!s->tail) s->tail = e;
}

/* Unlinks e from everything and frees it. */
static void drop(shard *s, entry *e) {
  entry **p = find_slot(s, e->h, e->data, e->klen);
  while (*p != e) p = &(*p)->hnext; /* same hash and key twice cannot happen, but be exact */
  *p = e->hnext;
  list_unlink(s, e);
  if (e->heap_idx != NO_HEAP) po_heap_remove(&s->expiry, e->heap_idx);
  s->count--;
  s->bytes -= e->klen + e->vlen;
  free(e);
}

static void grow_buckets(shard *s) {
  size_t n = (s->mask + 1) * 2;
  entry **b = calloc(n, sizeof *b);
  if (!b) return; /* longer chains, still correct */
  for (size_t i = 0; i <= s->mask; i++) {
    entry *e = s->buckets[i];
    while (e) {
      entry *next = e->hnext;
      entry **slot = &b[e->h.lo & (n - 1)];
      e->hnext = *slot;
      *slot = e;
      e = next;
    }
  }
  free(s->buckets);
  s->buckets = b;
  s->mask = n - 1;
}

/* The entry the policy evicts next (NULL when empty). */
static entry *victim(shard *s, po_cache_policy policy) {
  if (policy == PO_CACHE_LRU) return s->tail;
  entry *p = s->hand ? s->hand : s->tail;
  while (p && p->visited) {
    p->visited = 0;
    p = p->prev ? p->prev : s->tail;
  }
  if (p) s->hand = p->prev;
  return p;
}

/* Drops up to `limit` entries whose time has passed. */
static void expire_some(shard *s, double now, int count_them, size_t limit) {
  const po_heap_node *first;
  for (size_t i = 0; i < limit && (first = po_heap_top(&s->expiry)) && first->key <= now; i++) {
    drop(s, first->item);
    if (count_them) s->expirations++;
  }
}

static void hit(shard *s, entry *e, po_cache_policy policy, int remember) {
  if (policy == PO_CACHE_LRU) {
    if (s->head != e) {
      list_unlink(s, e);
      list_push_head(s, e);
    }
  } else {
    e->visited = 1;
  }
  if (remember) {
    if (s->ntouched == TOUCH_CAP) s->ntouched = 0; /* the store's recency is a hint: forget old hits */
    s->touched[s->ntouched++] = e->h;
  }
}

/* Inserts e (replacing an entry with the same key), evicting first to make
 * room, and adds the number evicted to *evicted. Returns 0, or PO_ENOMEM
 * (e is then freed and the shard unchanged). */
static int insert(po_cache *c, shard *s, entry *e, uint64_t *evicted) {
  if (e->expires > 0 && po_heap_reserve(&s->expiry) != 0) {
    free(e);
    return PO_ENOMEM;
  }
  entry **slot = find_slot(s, e->h, e->data, e->klen);
  if (*slot) drop(s, *slot);
  size_t size = e->klen + e->vlen;
  while (s->count > 0 &&
         (s->count + 1 > s->max_entries || (s->max_bytes && s->bytes + size > s->max_bytes))) {
    entry *v = victim(s, c->opts.policy);
    if (!v) break;
    drop(s, v);
    (*evicted)++;
  }
  if (e->expires > 0) po_heap_push(&s->expiry, e->expires, 0, e);
  slot = &s->buckets[e->h.lo & s->mask];
  e->hnext = *slot;
  *slot = e;
  list_push_head(s, e);
  s->count++;
  s->bytes += size;
  if (s->count > s->mask + 1) grow_buckets(s);
  return 0;
}

static entry *new_entry(po_cache_hash h, const void *key, size_t klen, const void *value, size_t vlen,
                        unsigned flags, double created, double expires, uint64_t gen) {
  entry *e = malloc(sizeof *e + klen + vlen);
  if (!e) return NULL;
  memset(e, 0, sizeof *e);
  e->h = h;
  e->klen = klen;
  e->vlen = vlen;
  e->flags = flags;
  e->created = created;
  e->expires = expires;
  e->gen = gen;
  e->heap_idx = NO_HEAP;
  memcpy(e->data, key, klen);
  if (vlen) memcpy(e->data + klen, value, vlen);
  return e;
}

static shard *shard_of(po_cache *c, po_cache_hash h) { return &c->shards[h.hi & (uint64_t)(c->nshards - 1)]; }

/* ---- open / close ------------------------------------------------------------------ */

static void free_cache(po_cache *c) {
  if (c->shards) {
    for (int i = 0; i < c->nshards; i++) {
      shard *s = &c->shards[i];
      for (entry *e = s->head, *next; e; e = next) {
        next = e->next;
        free(e);
      }
      free(s->buckets);
      po_heap_free(&s->expiry);
      pthread_mutex_destroy(&s->lock);
    }
    free(c->shards);
  }
  po_cache_disk_close(c->disk);
  po_cache_sem_free(c->sem);
  pthread_mutex_destroy(&c->sync_lock);
  pthread_mutex_destroy(&c->sem_lock);
  free(c->path);
  free(c->ns);
  free(c);
}

static int same_place(const po_cache *c, const char *path, const char *ns) {
  if (strcmp(c->ns, ns) != 0) return 0;
  if (!c->path || !path) return !c->path && !path;
  return strcmp(c->path, path) == 0;
}

static int setup_shards(po_cache *c) {
  size_t max = c->opts.max_entries;
  int n = 1;
  size_t bytes = c->opts.max_bytes;
  while (n < MAX_SHARDS && max / (size_t)(n * 2) >= MIN_PER_SHARD &&
         (!bytes || bytes / (size_t)(n * 2) >= MIN_BYTES_PER_SHARD))
    n *= 2;
  c->nshards = n;
  c->shards = calloc((size_t)n, sizeof *c->shards);
  if (!c->shards) return PO_ENOMEM;
  for (int i = 0; i < n; i++) {
    shard *s = &c->shards[i];
    pthread_mutex_init(&s->lock, NULL);
    po_heap_init(&s->expiry, offsetof(entry, heap_idx));
    s->buckets = calloc(INITIAL_BUCKETS, sizeof *s->buckets);
    if (!s->buckets) return PO_ENOMEM;
    s->mask = INITIAL_BUCKETS - 1;
    s->max_entries = max / (size_t)n + ((size_t)i < max % (size_t)n);
    if (c->opts.max_bytes)
      s->max_bytes = c->opts.max_bytes / (size_t)n + ((size_t)i < c->opts.max_bytes % (size_t)n);
  }
  return 0;
}

int po_cache_open(const po_cache_options *opts, po_cache **out) {
  if (!opts || !out) return PO_EINVAL;
  const char *ns = opts->ns ? opts->ns : "default";
  if (strlen(ns) > 255 || (opts->policy != PO_CACHE_LRU && opts->policy != PO_CACHE_SIEVE)) return PO_EINVAL;
  po_cache_disk *disk = NULL;
  const char *path = NULL;
  if (opts->path) {
    int rc = po_cache_disk_open(opts->path, ns, &disk);
    if (rc != 0) return rc;
    path = po_store_path(po_cache_disk_store(disk));
  }
  pthread_mutex_lock(&caches_lock);
  for (po_cache *c = caches; c; c = c->next) {
    if (same_place(c, path, ns)) {
      c->refs++;
      pthread_mutex_unlock(&caches_lock);
      po_cache_disk_close(disk);
      *out = c;
      return 0;
    }
  }
  po_cache *c = calloc(1, sizeof *c);
  int rc = c ? 0 : PO_ENOMEM;
  if (c) {
    pthread_mutex_init(&c->sync_lock, NULL);
    pthread_mutex_init(&c->sem_lock, NULL);
    c->disk = disk;
    disk = NULL;
    c->refs = 1;
    c->opts = *opts;
    c->opts.max_entries = opts->max_entries ? opts->max_entries : 1000;
    c->ns = strdup(ns);
    c->path = path ? strdup(path) : NULL;
    if (!c->ns || (path && !c->path)) rc = PO_ENOMEM;
    c->opts.ns = c->ns;
    c->opts.path = c->path;
    if (rc == 0) rc = setup_shards(c);
    if (rc == 0) {
      c->next = caches;
      caches = c;
    }
  }
  pthread_mutex_unlock(&caches_lock);
  po_cache_disk_close(disk);
  if (rc != 0) {
    if (c) free_cache(c);
    return rc;
  }
  *out = c;
  return 0;
}

void po_cache_config(const po_cache *c, po_cache_options *out) { *out = c->opts; }

po_store *po_cache_store(po_cache *c) { return c->disk ? po_cache_disk_store(c->disk) : NULL; }

/* Flushes batch-mode writes once PO_CACHE_BATCH_INTERVAL has passed since
 * the first unflushed one (force: now). */
static void flush_batch(po_cache *c, int force) {
  if (!__atomic_load_n(&c->dirty, __ATOMIC_ACQUIRE)) return;
  double now = po_monotonic();
  pthread_mutex_lock(&c->sync_lock);
  if (c->dirty && (force || now - c->dirty_since >= PO_CACHE_BATCH_INTERVAL)) {
    __atomic_store_n(&c->dirty, 0, __ATOMIC_RELEASE);
    po_store_sync(po_cache_disk_store(c->disk));
  }
  pthread_mutex_unlock(&c->sync_lock);
}

static void mark_dirty(po_cache *c) {
  pthread_mutex_lock(&c->sync_lock);
  if (!c->dirty) c->dirty_since = po_monotonic();
  __atomic_store_n(&c->dirty, 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&c->sync_lock);
}

void po_cache_close(po_cache *c) {
  if (!c) return;
  pthread_mutex_lock(&caches_lock);
  int last = --c->refs == 0;
  if (last) {
    for (po_cache **p = &caches; *p; p = &(*p)->next) {
      if (*p == c) {
        *p = c->next;
        break;
      }
    }
  }
  pthread_mutex_unlock(&caches_lock);
  if (!last) return;
  if (c->disk) flush_batch(c, 1);
  free_cache(c);
}

/* ---- operations ---------------------------------------------------------------------- */

static int lookup(po_cache *c, po_cache_hash h, const void *key, size_t klen, po_cache_result *r, int count);

int po_cache_get(po_cache *c, const void *key, size_t klen, po_cache_result *r) {
  return lookup(c, po_cache_hash_key(key, klen), key, klen, r, 1);
}

int po_cache_get_hashed(po_cache *c, po_cache_hash h, const void *key, size_t klen, po_cache_result *r) {
  return lookup(c, h, key, klen, r, 1);
}

/* A memory miss of a cache with a store: reads the store, and keeps what it
 * finds in the memory tier. */
static int get_from_disk(po_cache *c, shard *s, po_cache_hash h, const void *key, size_t klen, double now,
                         po_cache_result *r, int count) {
  uint64_t gen = po_cache_disk_gen(c->disk);
  po_strbuf value = {r->value, 0, r->cap}, full_key = {0};
  po_cache_disk_entry de;
  int expired = 0;
  int rc = po_cache_disk_get(c->disk, h, key, klen, now, &de, &value, key ? NULL : &full_key, &expired);
  r->value = value.data;
  r->cap = value.cap;
  r->len = value.len;
  if (rc == PO_ENOENT && expired && po_cache_disk_drop_expired(c->disk, h, now) == 0)
    ADD(c->disk_expirations, 1);
  entry *e = NULL;
  if (rc == 0) {
    r->flags = de.flags;
    r->age = now - de.created;
    if (!key) {
      key = full_key.data;
      klen = full_key.len;
    }
    e = new_entry(h, key, klen, r->value, r->len, de.flags, de.created, de.expires, gen);
  }
  po_strbuf_free(&full_key);
  pthread_mutex_lock(&s->lock);
  if (rc == 0) {
    s->hits += (uint64_t)count;
    uint64_t evicted = 0;
    if (e && insert(c, s, e, &evicted) == 0) hit(s, e, c->opts.policy, 1);
  } else {
    s->misses += (uint64_t)count;
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

/* Looks h up (with key non-NULL, only an entry with that full key); count:
 * whether the lookup goes into the hit and miss counts. */
static int lookup(po_cache *c, po_cache_hash h, const void *key, size_t klen, po_cache_result *r, int count) {
  if (c->disk) flush_batch(c, 0);
  shard *s = shard_of(c, h);
  double now = now_coarse();
  pthread_mutex_lock(&s->lock);
  expire_some(s, now, !c->disk, EXPIRE_PER_OP);
  entry **slot = find_slot(s, h, key, klen);
  entry *e = *slot;
  if (e && e->expires > 0 && e->expires <= now) {
    drop(s, e);
    if (!c->disk) s->expirations++;
    e = NULL;
  } else if (e && c->disk && e->gen != po_cache_disk_gen(c->disk)) {
    drop(s, e); /* another write may have changed it: ask the store */
    e = NULL;
  }
  if (e) {
    int rc = copy_out(r, e->data + e->klen, e->vlen);
    if (rc == 0) {
      r->flags = e->flags;
      r->age = now - e->created;
      hit(s, e, c->opts.policy, c->disk != NULL);
      s->hits += (uint64_t)count;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
  }
  if (!c->disk) {
    s->misses += (uint64_t)count;
    pthread_mutex_unlock(&s->lock);
    return PO_ENOENT;
  }
  pthread_mutex_unlock(&s->lock);
  return get_from_disk(c, s, h, key, klen, now, r, count);
}

/* Takes the hits every shard remembered since the last write. */
static size_t take_touched(po_cache *c, po_cache_hash *out) {
  size_t n = 0;
  for (int i = 0; i < c->nshards; i++) {
    shard *s = &c->shards[i];
    pthread_mutex_lock(&s->lock);
    memcpy(out + n, s->touched, s->ntouched * sizeof *out);
    n += s->ntouched;
    s->ntouched = 0;
    pthread_mutex_unlock(&s->lock);
  }
  return n;
}

/* The expiry time of an entry set now with ttl (0: never), or -1 for a bad ttl. */
static double expiry_of(double now, double ttl) {
  if (!(ttl >= 0) || isinf(ttl)) return -1;
  return ttl > 0 ? now + ttl : 0;
}

/* Stores an entry written at `now` (its created time) that expires at
 * `expires` (0: never) for a key hashed as h, with the vector record vec
 * (may be NULL); *vseq gets the record's seq in the store. count: a set of
 * the caller's, counted in the statistics (a fill from another tier is not). */
static int set_hashed(po_cache *c, po_cache_hash h, const void *key, size_t klen, const void *value, size_t vlen,
                      unsigned flags, double now, double expires, po_store_durability sync,
                      const po_cache_disk_vector *vec, uint64_t *vseq, int count) {
  if (!(expires >= 0)) return PO_EINVAL;
  if (c->opts.max_bytes && klen + vlen > c->opts.max_bytes) return PO_EINVAL;
  *vseq = 0;
  uint64_t gen = 0;
  if (c->disk) {
    flush_batch(c, 0);
    po_cache_hash touched[MAX_SHARDS * TOUCH_CAP];
    po_cache_disk_write w = {.sync = sync,
                             .policy = c->opts.policy,
                             .max_entries = c->opts.max_entries,
                             .max_bytes = c->opts.max_bytes,
                             .touched = touched};
    w.ntouched = take_touched(c, touched);
    gen = po_cache_disk_gen(c->disk);
    int rc = po_cache_disk_put(c->disk, &w, h, key, klen, value, vlen, flags, now, expires, vec);
    if (rc != 0) return rc;
    *vseq = w.vseq;
    /* Our own bump (an overwrite) is accounted for; any other write since
     * makes the entry look stale, which costs one store read. */
    gen += w.replaced ? 1 : 0;
    ADD(c->disk_evictions, w.evicted);
    ADD(c->disk_expirations, w.expired);
    if (sync == PO_STORE_SYNC_BATCH) mark_dirty(c);
  }
  if (count) ADD(c->sets, 1);
  entry *e = new_entry(h, key, klen, value, vlen, flags, now, expires, gen);
  shard *s = shard_of(c, h);
  if (c->nshards > 1) {
    /* Sets also sweep the other shards in turn, so entries nobody reads expire too. */
    shard *t = &c->shards[__atomic_fetch_add(&c->sweep, 1, __ATOMIC_RELAXED) & (unsigned)(c->nshards - 1)];
    if (t != s) {
      pthread_mutex_lock(&t->lock);
      expire_some(t, now, !c->disk, EXPIRE_PER_OP);
      pthread_mutex_unlock(&t->lock);
    }
  }
  pthread_mutex_lock(&s->lock);
  expire_some(s, now, !c->disk, EXPIRE_PER_OP);
  uint64_t evicted = 0;
  int rc = e ? insert(c, s, e, &evicted) : PO_ENOMEM;
  if (!c->disk) s->evictions += evicted;
  if (rc != 0) {
    /* Stored in the store already; the memory tier must not keep an older value. */
    entry **slot = find_slot(s, h, key, klen);
    if (*slot) drop(s, *slot);
  }
  pthread_mutex_unlock(&s->lock);
  return c->disk ? 0 : rc;
}

int po_cache_set(po_cache *c, const void *key, size_t klen, const void *value, size_t vlen, unsigned flags,
                 double ttl, po_store_durability sync) {
  uint64_t vseq;
  double now = now_coarse();
  return set_hashed(c, po_cache_hash_key(key, klen), key, klen, value, vlen, flags, now, expiry_of(now, ttl), sync,
                    NULL, &vseq, 1);
}

int po_cache_put(po_cache *c, const void *key, size_t klen, const void *value, size_t vlen, unsigned flags,
                 double created, double expires, po_store_durability sync) {
  uint64_t vseq;
  if (!(created >= 0) || isinf(created) || !(expires >= 0) || isinf(expires)) return PO_EINVAL;
  return set_hashed(c, po_cache_hash_key(key, klen), key, klen, value, vlen, flags, created, expires, sync, NULL,
                    &vseq, 0);
}

/* ---- the semantic tier ---------------------------------------------------------- */

static int load_vector(void *ctx, uint64_t seq, const void *record, size_t len) {
  /* A record this build cannot read (or of a clashing dim) is skipped, not fatal. */
  int rc = po_cache_sem_add_record(ctx, seq, record, len);
  return rc == PO_ENOMEM ? rc : 0;
}

/* Creates the semantic tier on first use and, with a store, loads the
 * vectors written since the last call (by any process). */
static int sem_ready(po_cache *c) {
  pthread_mutex_lock(&c->sem_lock);
  int rc = c->sem ? 0 : po_cache_sem_new(&c->sem);
  if (rc == 0 && c->disk) rc = po_cache_disk_vectors(c->disk, c->sem_loaded, load_vector, c->sem, &c->sem_loaded);
  pthread_mutex_unlock(&c->sem_lock);
  return rc;
}

/* Whether the cache still holds the entry of h (for purging stale vectors). */
static int holds(void *ctx, po_cache_hash h) {
  po_cache *c = ctx;
  po_cache_result r = {0};
  int rc = lookup(c, h, NULL, 0, &r, 0);
  po_cache_result_free(&r);
  return rc != PO_ENOENT;
}

int po_cache_set_vector(po_cache *c, const void *key, size_t klen, const void *value, size_t vlen, unsigned flags,
                        double ttl, po_store_durability sync, const po_cache_vector *v) {
  po_cache_hash h = po_cache_hash_key(key, klen);
  po_strbuf rec = {0};
  int rc = po_cache_sem_encode(v, h, &rec);
  if (rc == 0) rc = sem_ready(c);
  if (rc == 0 && po_cache_sem_dim(c->sem, v->group) > 0 && po_cache_sem_dim(c->sem, v->group) != v->dim)
    rc = PO_EINVAL;
  uint64_t id = 0;
  if (rc == 0) {
    po_cache_disk_vector dv = {rec.data, rec.len};
    double now = now_coarse();
    rc = set_hashed(c, h, key, klen, value, vlen, flags, now, expiry_of(now, ttl), sync, &dv, &id, 1);
  }
  if (rc == 0) {
    if (!c->disk) id = __atomic_add_fetch(&c->sem_next_id, 1, __ATOMIC_RELAXED);
    rc = po_cache_sem_add_record(c->sem, id, rec.data, rec.len);
    /* Vectors of evicted or deleted entries go lazily; bound them here. */
    if (rc == 0 && po_cache_sem_count(c->sem) > 2 * c->opts.max_entries + 64) po_cache_sem_purge(c->sem, holds, c);
  }
  po_strbuf_free(&rec);
  return rc;
}

int po_cache_semantic_get(po_cache *c, const po_cache_vector *q, float threshold, int k, po_cache_result *r,
                          float *score) {
  if (q->dim < 1 || q->dim > PO_CACHE_MAX_DIM || k < 1) return PO_EINVAL;
  int rc = sem_ready(c);
  if (rc != 0) return rc;
  double norm = 0;
  for (int i = 0; i < q->dim; i++) norm += (double)q->vec[i] * q->vec[i];
  if (!(norm > 0) || isinf(norm)) return PO_ENOENT; /* a zero vector matches nothing */
  float *unit = malloc((size_t)q->dim * sizeof *unit);
  if (!unit) return PO_ENOMEM;
  float inv = fabs(norm - 1) < 1e-6 ? 1.0f : (float)(1 / sqrt(norm)); /* unit vectors stay as they are */
  for (int i = 0; i < q->dim; i++) unit[i] = q->vec[i] * inv;
  po_cache_sem_candidate cand[64];
  int n = po_cache_sem_search(c->sem, q->group, unit, q->dim, q->text, q->text_len, threshold, k < 64 ? k : 64,
                              cand);
  free(unit);
  for (int i = 0; i < n; i++) {
    rc = lookup(c, cand[i].entry, NULL, 0, r, 0);
    if (rc == 0) {
      *score = cand[i].score;
      po_cache_count_semantic_hit(c);
      return 0;
    }
    if (rc != PO_ENOENT) return rc;
    po_cache_sem_remove(c->sem, cand[i].id); /* its entry was evicted, expired or deleted */
  }
  return PO_ENOENT;
}

int po_cache_delete(po_cache *c, const void *key, size_t klen, po_store_durability sync) {
  po_cache_hash h = po_cache_hash_key(key, klen);
  shard *s = shard_of(c, h);
  pthread_mutex_lock(&s->lock);
  entry **slot = find_slot(s, h, key, klen);
  int found = *slot != NULL;
  if (found) drop(s, *slot);
  pthread_mutex_unlock(&s->lock);
  if (!c->disk) return found ? 0 : PO_ENOENT;
  flush_batch(c, 0);
  int rc = po_cache_disk_delete(c->disk, sync, h, key, klen);
  if (rc == 0 && sync == PO_STORE_SYNC_BATCH) mark_dirty(c);
  return rc;
}

static int holds_nothing(void *ctx, po_cache_hash h) {
  (void)ctx;
  (void)h;
  return 0;
}

int po_cache_clear(po_cache *c, po_store_durability sync) {
  for (int i = 0; i < c->nshards; i++) {
    shard *s = &c->shards[i];
    pthread_mutex_lock(&s->lock);
    while (s->head) drop(s, s->head);
    s->ntouched = 0;
    pthread_mutex_unlock(&s->lock);
  }
  pthread_mutex_lock(&c->sem_lock);
  if (c->sem) po_cache_sem_purge(c->sem, holds_nothing, NULL);
  pthread_mutex_unlock(&c->sem_lock);
  if (!c->disk) return 0;
  int rc = po_cache_disk_clear(c->disk, sync);
  if (rc == 0 && sync == PO_STORE_SYNC_BATCH) mark_dirty(c);
  return rc;
}

void po_cache_count_semantic_hit(po_cache *c) { ADD(c->semantic_hits, 1); }

int po_cache_stats_get(po_cache *c, po_cache_stats *out) {
  memset(out, 0, sizeof *out);
  double now = now_coarse();
  for (int i = 0; i < c->nshards; i++) {
    shard *s = &c->shards[i];
    pthread_mutex_lock(&s->lock);
    expire_some(s, now, !c->disk, SIZE_MAX); /* so that size counts live entries only */
    out->hits += s->hits;
    out->misses += s->misses;
    out->evictions += s->evictions;
    out->expirations += s->expirations;
    out->size += s->count;
    out->bytes += s->bytes;
    pthread_mutex_unlock(&s->lock);
  }
  /* A semantic hit was first counted as the exact tier's miss. */
  uint64_t sem = LOAD(c->semantic_hits);
  out->semantic_hits = sem;
  out->hits += sem;
  out->misses = out->misses >= sem ? out->misses - sem : 0;
  out->sets = LOAD(c->sets);
  out->max_entries = c->opts.max_entries;
  out->max_bytes = c->opts.max_bytes;
  if (!c->disk) return 0;
  out->evictions = LOAD(c->disk_evictions);
  out->expirations = LOAD(c->disk_expirations);
  return po_cache_disk_size(c->disk, &out->size, &out->bytes);
}
