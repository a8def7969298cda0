/* False-hit guards for the semantic cache tier.
 *
 * Two prompts can be textually close and still ask for different answers:
 * "return a > b" and "return b > a", "retry 3 times" and "retry 5 times",
 * "call parse_header" and "call parse_footer". A semantic match is taken
 * only when the "facts" of both texts are identical: the ordered sequence
 * of numbers, of identifiers that look like code (containing '_' or a digit,
 * camelCase, or followed by '('), and of the operands around operators
 * (< > = ! + - * / % & | ^). And since a long prompt keeps a high
 * similarity when one prose word changes ("into German" / "into French",
 * "from Celsius to Fahrenheit" / the reverse), the content words of both
 * texts must be the same words in the same order: every word outside a
 * small stop-word list (articles, "please", "could you" ...). A cache that
 * returns a wrong answer is worse than one that misses. */
#ifndef PO_GUARD_H
#define PO_GUARD_H

#include <stddef.h>

/* Returns 1 when a and b carry the same facts (so a semantic match between
 * them may be taken), 0 otherwise: po_guard_same_words and the numbers,
 * code identifiers, operands, negations and direction words above. */
int po_guard_same_facts(const char *a, size_t alen, const char *b, size_t blen);

/* Returns 1 when a and b have the same content words in the same order,
 * compared case-insensitively: whitespace, punctuation, stop words and
 * filler may differ, nothing else. Allocates nothing. */
int po_guard_same_words(const char *a, size_t alen, const char *b, size_t blen);

#endif
