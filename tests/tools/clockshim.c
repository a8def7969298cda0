/* An LD_PRELOAD shim that moves a process's wall clock, so that a spec can
 * have a real poengine write cache entries "ten days ago": with
 *
 *   POENGINE_CLOCK_SHIFT=SECONDS      (an integer; negative is the past)
 *
 * clock_gettime answers CLOCK_REALTIME and CLOCK_REALTIME_COARSE that many
 * seconds off; the monotonic clocks, and everything else, are untouched.
 * Not linked into poengine, which has no clock of its own to set: the
 * entries' write times are the real clock's, as users' are. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

typedef int (*clock_fn)(clockid_t, struct timespec *);

int clock_gettime(clockid_t id, struct timespec *ts) {
  static clock_fn real;
  static long long shift;
  static int ready; /* a race only computes the same values twice */
  if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
    const char *s = getenv("POENGINE_CLOCK_SHIFT");
    shift = s ? strtoll(s, NULL, 10) : 0;
    real = (clock_fn)dlsym(RTLD_NEXT, "clock_gettime");
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
  }
  int rc = real(id, ts);
  if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) ts->tv_sec += (time_t)shift;
  return rc;
}
