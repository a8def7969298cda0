/* The semantic tier's false-hit guard (src/core/guard.c) and the decision
 * built on it (src/core/semantic.c), on arbitrary text.
 *
 * The input is two texts separated by the first 0xFF byte (or one text and
 * itself). Properties: a text has the same facts as itself; the relation is
 * symmetric; the similarity is a number in about [-1, 1]. */
#include "fuzz.h"

#include "guard.h"
#include "semantic.h"

#include <math.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *a = (const char *)data;
  const char *sep = memchr(data, 0xFF, size);
  size_t alen = sep ? (size_t)(sep - a) : size;
  const char *b = sep ? sep + 1 : a;
  size_t blen = sep ? size - alen - 1 : size;

  FUZZ_CHECK(po_guard_same_facts(a, alen, a, alen) == 1);
  int ab = po_guard_same_facts(a, alen, b, blen);
  FUZZ_CHECK(ab == 0 || ab == 1);
  FUZZ_CHECK(po_guard_same_facts(b, blen, a, alen) == ab);

  double score = 0;
  FUZZ_CHECK(po_semantic_similarity(a, alen, b, blen, &score) == 0);
  FUZZ_CHECK(isfinite(score) && score >= -1.001 && score <= 1.001);
  FUZZ_CHECK(po_semantic_accept(score, 0.0, a, alen, b, blen) == (score >= 0.0 && ab));
  return 0;
}
