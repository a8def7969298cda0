/* The built-in n-gram embedder (see ngram.h).
 *
 * One pass over the text, no allocation: a normalizer turns the bytes into
 * the normalized stream " word word ... word " (ASCII letters folded to
 * lower case, every run of whitespace one space, a space added at both ends
 * so the first and last words get boundary n-grams like the inner ones), and
 * each byte appended to a 5-byte window closes one n-gram of each length
 * 3..5. Each n-gram is hashed with XXH3: the low bits choose the dimension,
 * the top bit the sign (signed feature hashing keeps collisions unbiased). */
#include "ngram.h"

#include <math.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* Any change to this seed, the normalization or the hashing must change
 * PO_NGRAM_EMBEDDER_ID. */
#define NGRAM_SEED 0x706f656e67696e65ULL /* "poengine" */

static int is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

typedef struct window {
  unsigned char b[PO_NGRAM_MAX];
  int n; /* bytes in the window, at most PO_NGRAM_MAX */
} window;

/* Appends c to the window and adds the n-grams that end with it. */
static void push(window *w, unsigned char c, float *out) {
  if (w->n == PO_NGRAM_MAX) {
    memmove(w->b, w->b + 1, PO_NGRAM_MAX - 1);
    w->n--;
  }
  w->b[w->n++] = c;
  for (int len = PO_NGRAM_MIN; len <= PO_NGRAM_MAX && len <= w->n; len++) {
    uint64_t h = XXH3_64bits_withSeed(w->b + w->n - len, (size_t)len, NGRAM_SEED);
    out[h % PO_NGRAM_DIM] += (h >> 63) ? -1.0f : 1.0f;
  }
}

int po_ngram_embed(const char *text, size_t len, float *out) {
  memset(out, 0, sizeof(float) * PO_NGRAM_DIM);
  window w = {.n = 0};
  int started = 0, pending_space = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (is_space(c)) {
      pending_space = started;
      continue;
    }
    if (!started) {
      push(&w, ' ', out);
      started = 1;
    } else if (pending_space) {
      push(&w, ' ', out);
    }
    pending_space = 0;
    push(&w, (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c, out);
  }
  if (!started) return 0;
  push(&w, ' ', out);

  double sum = 0;
  for (int d = 0; d < PO_NGRAM_DIM; d++) sum += (double)out[d] * out[d];
  if (sum > 0) {
    float inv = (float)(1.0 / sqrt(sum));
    for (int d = 0; d < PO_NGRAM_DIM; d++) out[d] *= inv;
  }
  return 0;
}
