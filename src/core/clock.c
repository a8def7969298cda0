#include "clock.h"

#include <time.h>

static double timespec_seconds(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double po_monotonic(void) { return timespec_seconds(CLOCK_MONOTONIC); }

double po_wallclock(void) { return timespec_seconds(CLOCK_REALTIME); }
