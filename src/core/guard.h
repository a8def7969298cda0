/* False-hit guards for the semantic cache tier.
 *
 * Two prompts can be textually close and still ask for different answers:
 * "return a > b" and "return b > a", "retry 3 times" and "retry 5 times",
 * "call parse_header" and "call parse_footer". A semantic match is taken
 * only when the "facts" of both texts are identical: the ordered sequence
 * of numbers, of identifiers that look like code (containing '_' or a digit,
 * camelCase, or followed by '('), and of the operands around operators
 * (< > = ! + - * / % & | ^). A cache that returns a wrong answer is worse
 * than one that misses. */
#ifndef PO_GUARD_H
#define PO_GUARD_H

#include <stddef.h>

/* Returns 1 when a and b carry the same facts (so a semantic match between
 * them may be taken), 0 otherwise. */
int po_guard_same_facts(const char *a, size_t alen, const char *b, size_t blen);

#endif
