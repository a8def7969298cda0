/* Tests for src/core/semantic.c: the similarity of two texts and the accept
 * decision for one candidate (threshold and guards together). */
#include "semantic.h"

#include "ngram.h"
#include "vindex.h"

#include "harness.h"

#include <math.h>
#include <string.h>

static double sim(const char *a, const char *b) {
  double s = -2;
  CHECK(po_semantic_similarity(a, strlen(a), b, strlen(b), &s) == 0);
  return s;
}

static int accept(double score, double threshold, const char *q, const char *c) {
  return po_semantic_accept(score, threshold, q, strlen(q), c, strlen(c));
}

static void similarity_of_texts(void) {
  CHECK(fabs(sim("Make the parser faster", "make   the PARSER faster") - 1.0) < 1e-6);
  CHECK(sim("", "anything") == 0);
  CHECK(sim("  ", "") == 0);
  double near = sim("Optimize parse_header in src/http.c so that it does not copy the buffer",
                    "Optimize parse_header in src/http.c so that it does not copy any buffer");
  double far = sim("Optimize parse_header in src/http.c", "Write a poem about the sea");
  CHECK(near > 0.9 && near < 1.0);
  CHECK(far < 0.3);
}

/* The score is the one a vector index search finds, to the bit. */
static void similarity_is_the_index_score(void) {
  const char *a = "Reduce allocations in the JSON encoder", *b = "Reduce the allocations in the JSON encoder";
  float va[PO_NGRAM_DIM], vb[PO_NGRAM_DIM];
  po_ngram_embed(a, strlen(a), va);
  po_ngram_embed(b, strlen(b), vb);
  po_vindex *ix;
  REQUIRE(po_vindex_new(PO_NGRAM_DIM, PO_VINDEX_I8, &ix) == 0);
  CHECK(po_vindex_add(ix, 7, vb) == 0);
  uint64_t id;
  float score;
  int found;
  CHECK(po_vindex_search(ix, va, 1, &id, &score, &found) == 0);
  CHECK(found == 1 && id == 7);
  CHECK(sim(a, b) == (double)score);
  po_vindex_free(ix);
}

static void accept_needs_score_and_facts(void) {
  const char *q = "Retry the request 3 times when parse_header fails";
  CHECK(accept(0.97, 0.95, q, "retry the request 3 times when parse_header fails."));
  CHECK(accept(0.95, 0.95, q, q)); /* the threshold itself is reached */
  CHECK(!accept(0.9499, 0.95, q, q));
  CHECK(!accept(0.99, 0.95, q, "Retry the request 5 times when parse_header fails"));
  CHECK(!accept(0.99, 0.95, q, "Retry the request 3 times when parse_footer fails"));
  CHECK(!accept(1.0, 0.95, "return a > b", "return b > a"));
  CHECK(accept(0.5, 0.4, "make it fast", "Could you please make it fast?"));
  CHECK(!accept(0.5, 0.4, "make it fast", "make it quick")); /* another content word */
}

int main(void) {
  RUN(similarity_of_texts);
  RUN(similarity_is_the_index_score);
  RUN(accept_needs_score_and_facts);
  return TEST_SUMMARY();
}
