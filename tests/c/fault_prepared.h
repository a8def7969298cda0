/* A fault sweep (fault.h) whose every run starts from the same prepared
 * state: fault_sweep's scenario would count (and fail) the calls that set
 * the state up, so here prepare(arg) runs unarmed, then op(arg) with the nth
 * call of name failing, then check(arg, rc, fired) judges the outcome
 * unarmed (0: right). Returns the number of runs that injected a fault, or
 * -1 at the first wrong outcome or when max_runs is reached. */
#ifndef PO_TEST_FAULT_PREPARED_H
#define PO_TEST_FAULT_PREPARED_H

#include "fault.h"

#include <stdio.h>

typedef struct fault_step {
  const char *what; /* names the step in a failure message */
  void (*prepare)(void *arg);
  int (*op)(void *arg);
  int (*check)(void *arg, int rc, long fired);
} fault_step;

static inline long fault_sweep_prepared(const fault_step *s, const char *name, int err, void *arg, long max_runs) {
  for (long nth = 1; nth <= max_runs; nth++) {
    if (s->prepare) s->prepare(arg);
    fault_arm(name, nth, 0, err);
    int rc = s->op(arg);
    long fired = fault_fired();
    fault_disarm();
    if (s->check(arg, rc, fired) != 0) {
      fprintf(stderr, "fault_sweep_prepared: %s went wrong with %s call %ld failing (rc %d)\n", s->what, name, nth,
              rc);
      return -1;
    }
    if (!fired) return nth - 1;
  }
  fprintf(stderr, "fault_sweep_prepared: %s still reaches %s after %ld runs\n", s->what, name, max_runs);
  return -1;
}

#endif
