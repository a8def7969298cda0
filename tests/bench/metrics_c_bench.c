/* The "plain C call" baseline of tests/bench/metrics_bench.lua: calls
 * po_counter_inc or po_histogram_observe n times in a loop from C (through
 * the static library, so each is a real call, as from any C host) and
 * prints the seconds the loop took.
 *
 *   metrics_c_bench inc|observe n */
#include "clock.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "inc") != 0 && strcmp(argv[1], "observe") != 0)) {
    fprintf(stderr, "usage: %s inc|observe n\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]);
  int inc = strcmp(argv[1], "inc") == 0;
  po_metric_spec spec = {.type = inc ? PO_METRIC_COUNTER : PO_METRIC_HISTOGRAM, .name = "bench", .help = "bench"};
  po_metric *m;
  if (po_metrics_register(&spec, &m) != 0) return 1;
  int failed = 0;
  double t0 = po_monotonic();
  if (inc) {
    for (long i = 1; i <= n; i++) failed |= po_counter_inc(m, 1);
  } else {
    /* the same values as the Lua side: 0.0005 .. 0.9995 seconds */
    for (long i = 1; i <= n; i++) failed |= po_histogram_observe(m, (double)(i % 1000) * 0.001 + 0.0005);
  }
  double elapsed = po_monotonic() - t0;
  if (failed) return 1;
  printf("%.9f\n", elapsed);
  return 0;
}
