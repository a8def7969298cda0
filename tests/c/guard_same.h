/* For the guard's C tests: po_guard_same_facts both ways round (it must be
 * symmetric: -1 and a message when it is not), and SAME / DIFFERENT on it. */
#ifndef PO_TEST_GUARD_SAME_H
#define PO_TEST_GUARD_SAME_H

#include <stdio.h>
#include <string.h>

#include "guard.h"

static int same(const char *a, const char *b) {
  int ab = po_guard_same_facts(a, strlen(a), b, strlen(b));
  int ba = po_guard_same_facts(b, strlen(b), a, strlen(a));
  if (ab != ba) {
    fprintf(stderr, "asymmetric: \"%s\" / \"%s\"\n", a, b);
    return -1;
  }
  return ab;
}

#define SAME(a, b) CHECK_EQ_INT(same(a, b), 1)
#define DIFFERENT(a, b) CHECK_EQ_INT(same(a, b), 0)

#endif
