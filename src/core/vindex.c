/* The exact vector index (see vindex.h).
 *
 * Layout: slot i holds one vector; slots 0..count-1 are all in use (a removal
 * moves the last vector into the hole), and an id -> slot hash map finds a
 * vector by id. Every vector is kept in float32 at data_f32 + i * stride,
 * zero-padded to a multiple of LANES dimensions and 64-byte aligned, so the
 * inner loops run on whole blocks and need no tail.
 *
 * PO_VINDEX_I8 adds an int8 copy (one byte a dimension, scale maxabs/127 per
 * vector) that the search scans instead of the floats: a quarter of the
 * memory traffic, and int8 multiply-adds. The float copy is read only to
 * re-score the candidates, so scores are always exact float dot products.
 * The candidates are chosen with a proven error bound rather than a fixed
 * count: for query q and vector v with int8 approximations q' and v',
 *   |q.v - q'.v'| <= |q - q'| |v| + |q'| |v - v'|
 * (Cauchy-Schwarz), so every vector whose approximate score plus its bound
 * reaches the k-th best lower bound is re-scored, and the top-k equals that
 * of an exact float scan (up to float rounding between equal scores).
 *
 * The kernels are plain loops over fixed-width blocks with one accumulator
 * per lane, which the compiler vectorizes at -O2; on x86-64 they are also
 * compiled for AVX2 and AVX-512 and picked at load time (target_clones). */
#include "vindex.h"

#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LANES 64           /* dimensions per block; stride is a multiple */
#define CHUNK 256          /* vectors scored per kernel call */
#define MAX_DIM 65536      /* keeps int8 dot products within int32 */
#define STACK_DIMS 1024    /* query buffers up to this size live on the stack */
#define EMPTY UINT32_MAX   /* an unused map bucket */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KERNEL
#endif

struct po_vindex {
  int dim;
  size_t stride; /* dim rounded up to LANES */
  po_vindex_kind kind;
  size_t count, cap;
  uint64_t *ids;    /* slot -> id */
  float *data_f32;  /* cap * stride */
  int8_t *data_i8;  /* cap * stride (I8 only) */
  float *scale;     /* per slot: int8 step (I8 only) */
  float *norm;      /* per slot: |v| (I8 only) */
  float *qerr;      /* per slot: |v - v'| (I8 only) */
  uint64_t *map_ids; /* id -> slot, open addressing, linear probing */
  uint32_t *map_slots;
  size_t map_cap;    /* a power of two, at least 2 * count */
};

/* ---- kernels --------------------------------------------------------------- */

KERNEL static void dots_f32(const float *data, size_t n, size_t stride, const float *q, float *out) {
  for (size_t i = 0; i < n; i++) {
    const float *v = data + i * stride;
    float acc[16] = {0};
    for (size_t j = 0; j < stride; j += 16)
      for (int t = 0; t < 16; t++) acc[t] += v[j + t] * q[j + t];
    float s = 0;
    for (int t = 0; t < 16; t++) s += acc[t];
    out[i] = s;
  }
}

KERNEL static void dots_i8(const int8_t *data, size_t n, size_t stride, const int8_t *q, int32_t *out) {
  for (size_t i = 0; i < n; i++) {
    const int8_t *v = data + i * stride;
    int32_t acc[32] = {0};
    for (size_t j = 0; j < stride; j += 32)
      for (int t = 0; t < 32; t++) acc[t] += (int32_t)v[j + t] * (int32_t)q[j + t];
    int32_t s = 0;
    for (int t = 0; t < 32; t++) s += acc[t];
    out[i] = s;
  }
}

/* ---- the id map ---------------------------------------------------------- */

static size_t bucket_of(const po_vindex *ix, uint64_t id) {
  return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 32) & (ix->map_cap - 1);
}

/* The bucket holding id, or the empty bucket where it would go. */
static size_t map_find(const po_vindex *ix, uint64_t id) {
  size_t b = bucket_of(ix, id);
  while (ix->map_slots[b] != EMPTY && ix->map_ids[b] != id) b = (b + 1) & (ix->map_cap - 1);
  return b;
}

static int map_resize(po_vindex *ix, size_t cap) {
  uint64_t *ids = malloc(cap * sizeof *ids);
  uint32_t *slots = malloc(cap * sizeof *slots);
  if (!ids || !slots) {
    free(ids);
    free(slots);
    return PO_ENOMEM;
  }
  for (size_t b = 0; b < cap; b++) slots[b] = EMPTY;
  uint64_t *old_ids = ix->map_ids;
  uint32_t *old_slots = ix->map_slots;
  size_t old_cap = ix->map_cap;
  ix->map_ids = ids;
  ix->map_slots = slots;
  ix->map_cap = cap;
  for (size_t b = 0; b < old_cap; b++) {
    if (old_slots[b] == EMPTY) continue;
    size_t nb = map_find(ix, old_ids[b]);
    ids[nb] = old_ids[b];
    slots[nb] = old_slots[b];
  }
  free(old_ids);
  free(old_slots);
  return 0;
}

/* Empties bucket b, shifting later members of its probe run back so that
 * lookups never stop early at the hole. */
static void map_delete(po_vindex *ix, size_t b) {
  size_t mask = ix->map_cap - 1, hole = b;
  for (size_t j = (b + 1) & mask; ix->map_slots[j] != EMPTY; j = (j + 1) & mask) {
    size_t home = bucket_of(ix, ix->map_ids[j]);
    /* j's entry may move to the hole if its home is not in (hole, j]. */
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      ix->map_ids[hole] = ix->map_ids[j];
      ix->map_slots[hole] = ix->map_slots[j];
      hole = j;
    }
  }
  ix->map_slots[hole] = EMPTY;
}

/* ---- storage ----------------------------------------------------------------- */

static void *aligned_array(size_t n, size_t size) {
  void *p = NULL;
  if (n == 0) n = 1;
  if (n > SIZE_MAX / size || posix_memalign(&p, 64, n * size) != 0) return NULL;
  return p;
}

/* Moves an aligned array of old_n elements into a new one of new_n. */
static int grow_aligned(void **arr, size_t old_n, size_t new_n, size_t size) {
  void *p = aligned_array(new_n, size);
  if (!p) return PO_ENOMEM;
  if (*arr && old_n) memcpy(p, *arr, old_n * size);
  free(*arr);
  *arr = p;
  return 0;
}

static int grow_plain(void **arr, size_t new_n, size_t size) {
  void *p = realloc(*arr, new_n * size);
  if (!p) return PO_ENOMEM;
  *arr = p;
  return 0;
}

static int reserve(po_vindex *ix, size_t need) {
  if (need > UINT32_MAX - 1) return PO_ENOMEM;
  if (need > ix->cap) {
    size_t cap = ix->cap ? ix->cap * 2 : 64;
    while (cap < need) cap *= 2;
    size_t used = ix->count * ix->stride;
    int rc = grow_plain((void **)&ix->ids, cap, sizeof *ix->ids);
    if (!rc) rc = grow_aligned((void **)&ix->data_f32, used, cap * ix->stride, sizeof(float));
    if (!rc && ix->kind == PO_VINDEX_I8) {
      rc = grow_aligned((void **)&ix->data_i8, used, cap * ix->stride, 1);
      if (!rc) rc = grow_plain((void **)&ix->scale, cap, sizeof(float));
      if (!rc) rc = grow_plain((void **)&ix->norm, cap, sizeof(float));
      if (!rc) rc = grow_plain((void **)&ix->qerr, cap, sizeof(float));
    }
    if (rc) return rc; /* arrays already grown stay grown: harmless */
    ix->cap = cap;
  }
  if (need * 2 > ix->map_cap) {
    size_t mcap = ix->map_cap ? ix->map_cap : 128;
    while (need * 2 > mcap) mcap *= 2;
    return map_resize(ix, mcap);
  }
  return 0;
}

/* Quantizes v (stride floats) into q; returns the step and, through the
 * out-parameters, |v| and |v - v'| where v' is the dequantized vector. */
static float quantize(const float *v, size_t stride, int8_t *q, float *norm, float *err) {
  float maxabs = 0;
  for (size_t j = 0; j < stride; j++) {
    float a = fabsf(v[j]);
    if (a > maxabs) maxabs = a;
  }
  float step = maxabs / 127.0f;
  double n2 = 0, e2 = 0;
  for (size_t j = 0; j < stride; j++) {
    long r = step > 0 ? lrintf(v[j] / step) : 0;
    if (r > 127) r = 127;
    if (r < -127) r = -127;
    q[j] = (int8_t)r;
    double d = (double)v[j] - (double)r * step;
    n2 += (double)v[j] * v[j];
    e2 += d * d;
  }
  *norm = (float)sqrt(n2);
  *err = (float)sqrt(e2);
  return step;
}

static int finite_vector(const float *v, int dim) {
  for (int j = 0; j < dim; j++)
    if (!isfinite(v[j])) return 0;
  return 1;
}

/* ---- public ------------------------------------------------------------------ */

int po_vindex_new(int dim, po_vindex_kind kind, po_vindex **out) {
  *out = NULL;
  if (dim < 1 || dim > MAX_DIM || (kind != PO_VINDEX_F32 && kind != PO_VINDEX_I8)) return PO_EINVAL;
  po_vindex *ix = calloc(1, sizeof *ix);
  if (!ix) return PO_ENOMEM;
  ix->dim = dim;
  ix->stride = ((size_t)dim + LANES - 1) / LANES * LANES;
  ix->kind = kind;
  *out = ix;
  return 0;
}

void po_vindex_free(po_vindex *ix) {
  if (!ix) return;
  free(ix->ids);
  free(ix->data_f32);
  free(ix->data_i8);
  free(ix->scale);
  free(ix->norm);
  free(ix->qerr);
  free(ix->map_ids);
  free(ix->map_slots);
  free(ix);
}

int po_vindex_add(po_vindex *ix, uint64_t id, const float *vec) {
  if (!finite_vector(vec, ix->dim)) return PO_EINVAL;
  int rc = reserve(ix, ix->count + 1);
  if (rc) return rc;
  size_t b = map_find(ix, id), slot;
  if (ix->map_slots[b] != EMPTY) {
    slot = ix->map_slots[b];
  } else {
    slot = ix->count++;
    ix->map_ids[b] = id;
    ix->map_slots[b] = (uint32_t)slot;
    ix->ids[slot] = id;
  }
  float *dst = ix->data_f32 + slot * ix->stride;
  memcpy(dst, vec, (size_t)ix->dim * sizeof(float));
  memset(dst + ix->dim, 0, (ix->stride - (size_t)ix->dim) * sizeof(float));
  if (ix->kind == PO_VINDEX_I8)
    ix->scale[slot] = quantize(dst, ix->stride, ix->data_i8 + slot * ix->stride, &ix->norm[slot], &ix->qerr[slot]);
  return 0;
}

int po_vindex_remove(po_vindex *ix, uint64_t id) {
  if (ix->map_cap == 0) return PO_ENOENT;
  size_t b = map_find(ix, id);
  if (ix->map_slots[b] == EMPTY) return PO_ENOENT;
  size_t slot = ix->map_slots[b], last = ix->count - 1;
  map_delete(ix, b);
  if (slot != last) {
    uint64_t moved = ix->ids[last];
    ix->ids[slot] = moved;
    memcpy(ix->data_f32 + slot * ix->stride, ix->data_f32 + last * ix->stride, ix->stride * sizeof(float));
    if (ix->kind == PO_VINDEX_I8) {
      memcpy(ix->data_i8 + slot * ix->stride, ix->data_i8 + last * ix->stride, ix->stride);
      ix->scale[slot] = ix->scale[last];
      ix->norm[slot] = ix->norm[last];
      ix->qerr[slot] = ix->qerr[last];
    }
    ix->map_slots[map_find(ix, moved)] = (uint32_t)slot;
  }
  ix->count = last;
  return 0;
}

size_t po_vindex_count(const po_vindex *ix) { return ix->count; }

/* ---- search ------------------------------------------------------------------ */

/* A min-heap of the k best (score, slot) pairs seen so far: the root is the
 * worst of them, the one a better pair replaces. */
typedef struct topk {
  float *score;
  uint32_t *slot;
  int n, k;
} topk;

static int worse(const topk *h, int a, int b) {
  return h->score[a] < h->score[b] || (h->score[a] == h->score[b] && h->slot[a] > h->slot[b]);
}

static void heap_swap(topk *h, int a, int b) {
  float s = h->score[a];
  h->score[a] = h->score[b];
  h->score[b] = s;
  uint32_t t = h->slot[a];
  h->slot[a] = h->slot[b];
  h->slot[b] = t;
}

static void sift_down(topk *h, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && worse(h, l, m)) m = l;
    if (r < h->n && worse(h, r, m)) m = r;
    if (m == i) return;
    heap_swap(h, i, m);
    i = m;
  }
}

/* Offers (score, slot): kept if the heap has room or it beats the root.
 * Ties between equal scores keep the lower slot. */
static void topk_offer(topk *h, float score, uint32_t slot) {
  if (h->n < h->k) {
    int i = h->n++;
    h->score[i] = score;
    h->slot[i] = slot;
    while (i > 0 && worse(h, i, (i - 1) / 2)) {
      heap_swap(h, i, (i - 1) / 2);
      i = (i - 1) / 2;
    }
  } else if (score > h->score[0] || (score == h->score[0] && slot < h->slot[0])) {
    h->score[0] = score;
    h->slot[0] = slot;
    sift_down(h, 0);
  }
}

/* The score a new pair must reach to matter: -inf until the heap is full. */
static float topk_floor(const topk *h) { return h->n < h->k ? -INFINITY : h->score[0]; }

/* Writes the heap's pairs best first as ids and scores. */
static void topk_emit(const po_vindex *ix, topk *h, uint64_t *ids, float *scores, int *found) {
  int n = h->n;
  for (int end = n - 1; end > 0; end--) { /* heap sort: worst moves to the back */
    heap_swap(h, 0, end);
    h->n = end;
    sift_down(h, 0);
  }
  for (int i = 0; i < n; i++) {
    ids[i] = ix->ids[h->slot[i]];
    scores[i] = h->score[i];
  }
  *found = n;
}

static void search_f32(const po_vindex *ix, const float *q, topk *h) {
  float out[CHUNK];
  for (size_t base = 0; base < ix->count; base += CHUNK) {
    size_t n = ix->count - base < CHUNK ? ix->count - base : CHUNK;
    dots_f32(ix->data_f32 + base * ix->stride, n, ix->stride, q, out);
    for (size_t i = 0; i < n; i++)
      if (out[i] >= topk_floor(h)) topk_offer(h, out[i], (uint32_t)(base + i));
  }
}

static float exact_score(const po_vindex *ix, uint32_t slot, const float *q) {
  float s;
  dots_f32(ix->data_f32 + (size_t)slot * ix->stride, 1, ix->stride, q, &s);
  return s;
}

/* Candidates of the int8 scan: slots whose score may reach the top k. */
typedef struct cands {
  uint32_t *slot;
  float *upper;
  size_t n, cap;
} cands;

/* The int8 scan; returns 0, or PO_ENOMEM when the candidates outgrow what
 * it may allocate (the caller then scans the floats). */
static int search_i8(const po_vindex *ix, const float *q, topk *h, topk *lower, cands *c) {
  size_t stride = ix->stride;
  int8_t qbuf[STACK_DIMS];
  int8_t *qi = stride <= STACK_DIMS ? qbuf : malloc(stride);
  if (!qi) return PO_ENOMEM;
  float qnorm, qerr;
  float qstep = quantize(q, stride, qi, &qnorm, &qerr);
  float qinorm = qnorm + qerr; /* |q'| <= |q| + |q - q'| */
  int32_t out[CHUNK];
  int rc = 0;
  for (size_t base = 0; base < ix->count && !rc; base += CHUNK) {
    size_t n = ix->count - base < CHUNK ? ix->count - base : CHUNK;
    dots_i8(ix->data_i8 + base * stride, n, stride, qi, out);
    for (size_t i = 0; i < n; i++) {
      size_t s = base + i;
      float approx = (float)out[i] * qstep * ix->scale[s];
      /* The proven bound, plus slack for the float rounding of both sides. */
      float bound = qerr * ix->norm[s] + qinorm * ix->qerr[s] + 1e-5f * (qnorm * ix->norm[s]) + 1e-6f;
      if (approx + bound < topk_floor(lower)) continue;
      topk_offer(lower, approx - bound, (uint32_t)s);
      if (c->n == c->cap) {
        /* Drop the candidates that the rising floor has ruled out. */
        size_t keep = 0;
        float floor = topk_floor(lower);
        for (size_t j = 0; j < c->n; j++) {
          if (c->upper[j] >= floor) {
            c->slot[keep] = c->slot[j];
            c->upper[keep] = c->upper[j];
            keep++;
          }
        }
        c->n = keep;
        if (c->n * 2 > c->cap) {
          size_t cap = c->cap * 2;
          uint32_t *ns = cap <= ix->count ? realloc(c->slot, cap * sizeof *ns) : NULL;
          if (!ns) {
            rc = PO_ENOMEM;
            break;
          }
          c->slot = ns;
          float *nu = realloc(c->upper, cap * sizeof *nu);
          if (!nu) {
            rc = PO_ENOMEM;
            break;
          }
          c->upper = nu;
          c->cap = cap;
        }
      }
      c->slot[c->n] = (uint32_t)s;
      c->upper[c->n] = approx + bound;
      c->n++;
    }
  }
  if (!rc) {
    float floor = topk_floor(lower);
    for (size_t j = 0; j < c->n; j++)
      if (c->upper[j] >= floor) topk_offer(h, exact_score(ix, c->slot[j], q), c->slot[j]);
  }
  if (qi != qbuf) free(qi);
  return rc;
}

int po_vindex_search(const po_vindex *ix, const float *query, int k, uint64_t *ids, float *scores, int *found) {
  *found = 0;
  if (k < 0 || !finite_vector(query, ix->dim)) return PO_EINVAL;
  if ((size_t)k > ix->count) k = (int)ix->count;
  if (k == 0) return 0;

  size_t stride = ix->stride;
  float qbuf[STACK_DIMS];
  float *q = stride <= STACK_DIMS ? qbuf : aligned_array(stride, sizeof(float));
  topk h = {malloc((size_t)k * sizeof(float)), malloc((size_t)k * sizeof(uint32_t)), 0, k};
  topk lower = {NULL, NULL, 0, k};
  cands c = {NULL, NULL, 0, 0};
  int rc = (q && h.score && h.slot) ? 0 : PO_ENOMEM;
  if (!rc) {
    memcpy(q, query, (size_t)ix->dim * sizeof(float));
    memset(q + ix->dim, 0, (stride - (size_t)ix->dim) * sizeof(float));
  }
  if (!rc && ix->kind == PO_VINDEX_I8) {
    c.cap = 64 + 4 * (size_t)k;
    lower.score = malloc((size_t)k * sizeof(float));
    lower.slot = malloc((size_t)k * sizeof(uint32_t));
    c.slot = malloc(c.cap * sizeof *c.slot);
    c.upper = malloc(c.cap * sizeof *c.upper);
    if (lower.score && lower.slot && c.slot && c.upper && search_i8(ix, q, &h, &lower, &c) == 0) {
      topk_emit(ix, &h, ids, scores, found);
    } else {
      /* Too many near-equal candidates (or no memory for them): the exact
       * float scan gives the same answer. */
      h.n = 0;
      search_f32(ix, q, &h);
      topk_emit(ix, &h, ids, scores, found);
    }
  } else if (!rc) {
    search_f32(ix, q, &h);
    topk_emit(ix, &h, ids, scores, found);
  }
  if (q != qbuf) free(q);
  free(h.score);
  free(h.slot);
  free(lower.score);
  free(lower.slot);
  free(c.slot);
  free(c.upper);
  return rc;
}
