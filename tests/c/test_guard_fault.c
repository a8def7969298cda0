/* po_guard_same_facts under injected allocation failures (tests/c/fault.h):
 * when the token lists or the word set cannot be allocated, the answer is
 * "not the same" (a cache miss, never a false hit), and nothing leaks. */
#include <errno.h>
#include <string.h>

#include "fault.h"
#include "guard.h"
#include "harness.h"

/* 200 tokens each, so both lists grow twice past their first 64. */
static const char *text_a, *text_b;

static int compare(void *arg) {
  int *allocations_failed_as_miss = arg;
  int same = po_guard_same_facts(text_a, strlen(text_a), text_b, strlen(text_b));
  long fired = fault_fired();
  fault_disarm();
  if (fired) {
    if (same != 0) return 1;
    (*allocations_failed_as_miss)++;
    return 0;
  }
  return same == 1 ? 0 : 1;
}

static void a_failed_allocation_is_a_miss(void) {
  char a[2048] = "", b[2048] = "";
  for (int i = 0; i < 40; i++) {
    char item[48];
    snprintf(item, sizeof item, "x_%d = y%d + 1; ", i, i);
    strcat(a, item);
    strcat(b, item);
  }
  text_a = a;
  text_b = b;
  int misses = 0;
  /* a's list (64, 128, then 256 tokens), b's list (the same), the word set */
  CHECK_EQ_INT(fault_sweep("malloc", ENOMEM, compare, &misses, 20), 7);
  CHECK_EQ_INT(misses, 7);
}

int main(void) {
  RUN(a_failed_allocation_is_a_miss);
  return TEST_SUMMARY();
}
