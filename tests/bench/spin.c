/* A program whose run time is set by its argument: `spin N` does N rounds of
 * a dependent integer chain (a few microseconds each on current x86), so
 * `spin 3000` and `spin 3000` are the same work and `spin 2850` is 5% less.
 * The calibration benchmark and the decision-rule test time it as "A" and
 * "B". The chain's result goes to a volatile, so the compiler cannot drop
 * the loop. It prints the CPU seconds the loop took. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: spin ROUNDS\n");
    return 2;
  }
  char *end = NULL;
  long rounds = strtol(argv[1], &end, 10);
  if (*argv[1] == '\0' || *end != '\0' || rounds < 0) {
    fprintf(stderr, "spin: ROUNDS must be a non-negative integer\n");
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
  uint64_t x = 88172645463325252ULL;
  for (long r = 0; r < rounds; r++) {
    for (int i = 0; i < 1000; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
  }
  volatile uint64_t sink = x;
  (void)sink;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
  /* The loop's own CPU seconds: a measure that other processes on the
   * machine barely move, for tests that must not depend on the load. */
  printf("%.9f\n", (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
  return 0;
}
