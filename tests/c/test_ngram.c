/* Tests for src/core/ngram.c: normalization, unit length, determinism, and
 * similarity that follows shared text. */
#include "ngram.h"

#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static float vec_a[PO_NGRAM_DIM], vec_b[PO_NGRAM_DIM];

static void embed(const char *s, float *out) { CHECK(po_ngram_embed(s, strlen(s), out) == 0); }

static double dot(const float *a, const float *b) {
  double s = 0;
  for (int i = 0; i < PO_NGRAM_DIM; i++) s += (double)a[i] * b[i];
  return s;
}

static double cosine(const char *a, const char *b) {
  embed(a, vec_a);
  embed(b, vec_b);
  return dot(vec_a, vec_b);
}

static int is_zero(const float *v) {
  for (int i = 0; i < PO_NGRAM_DIM; i++)
    if (v[i] != 0) return 0;
  return 1;
}

static void empty_and_blank_give_zero(void) {
  memset(vec_a, 0x7f, sizeof vec_a);
  CHECK(po_ngram_embed("", 0, vec_a) == 0);
  CHECK(is_zero(vec_a));
  embed(" \t\r\n\v\f  ", vec_a);
  CHECK(is_zero(vec_a));
  CHECK(po_ngram_embed(NULL, 0, vec_a) == 0);
  CHECK(is_zero(vec_a));
}

static void vectors_are_unit_length(void) {
  const char *texts[] = {"x", "ab", "hello", "Optimize this loop for speed.",
                         "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac bytes \x01\x02\xff", NULL};
  for (const char **t = texts; *t; t++) {
    embed(*t, vec_a);
    CHECK(!is_zero(vec_a));
    CHECK(fabs(dot(vec_a, vec_a) - 1.0) < 1e-5);
  }
}

static void case_and_whitespace_are_normalized(void) {
  embed("Make   the parser\tfaster", vec_a);
  embed("  make the PARSER\n\nfaster  ", vec_b);
  CHECK(memcmp(vec_a, vec_b, sizeof vec_a) == 0);
  /* whitespace collapses to one space but does not vanish */
  CHECK(cosine("make the parser", "maketheparser") < 0.9);
}

static void deterministic(void) {
  const char *s = "Rewrite function parse_header to avoid the extra copy.";
  embed(s, vec_a);
  embed(s, vec_b);
  CHECK(memcmp(vec_a, vec_b, sizeof vec_a) == 0);
}

/* The embedder's output for a fixed text: if this changes, vectors stored by
 * earlier builds no longer compare, and PO_NGRAM_EMBEDDER_ID must change with
 * it (then update the expected values here). */
static void output_is_pinned_to_the_embedder_id(void) {
  CHECK_EQ_STR(PO_NGRAM_EMBEDDER_ID, "ngram-3-5-512-v1");
  embed("The quick brown fox", vec_a);
  uint64_t h = 1469598103934665603ULL;
  int nonzero = 0;
  for (int i = 0; i < PO_NGRAM_DIM; i++) {
    long q = lrint(vec_a[i] * 1e6);
    h = (h ^ (uint64_t)q) * 1099511628211ULL;
    nonzero += vec_a[i] != 0;
  }
  /* " the quick brown fox " has 19 + 18 + 17 n-grams of lengths 3..5 */
  CHECK(nonzero > 40 && nonzero <= 54);
  CHECK_EQ_INT(nonzero, 43);
  CHECK(h == 0x79246773be932f3fULL);
}

static void similarity_follows_shared_text(void) {
  const char *base =
      "Optimize the function parse_header in src/http.c so that it does not copy the header buffer; "
      "keep the public interface and make sure every existing test still passes.";
  const char *edited =
      "Optimize the function parse_header in src/http.c so that it never copies the header buffer; "
      "keep the public interface and make sure every existing test still passes.";
  const char *other = "Write a haiku about autumn leaves falling on a quiet pond at dusk.";
  double near = cosine(base, edited), far = cosine(base, other);
  CHECK(near > 0.85);
  CHECK(near < 0.999);
  CHECK(far < 0.4);
  CHECK(fabs(cosine(base, base) - 1.0) < 1e-5);
  /* punctuation changes little, and less the longer the text */
  double short_punct = cosine("Make it faster, please.", "Make it faster please");
  double long_punct = cosine("Make the loop in parse_header faster, please; keep the API as it is.",
                             "Make the loop in parse_header faster please, keep the API as it is");
  CHECK(short_punct > 0.7);
  CHECK(long_punct > short_punct);
  CHECK(long_punct > 0.85);
}

int main(void) {
  RUN(empty_and_blank_give_zero);
  RUN(vectors_are_unit_length);
  RUN(case_and_whitespace_are_normalized);
  RUN(deterministic);
  RUN(output_is_pinned_to_the_embedder_id);
  RUN(similarity_follows_shared_text);
  return TEST_SUMMARY();
}
