/* A small test harness for the C unit tests: CHECK records a failure and goes
 * on, REQUIRE stops the test, RUN runs one test function, and main() ends with
 * TEST_SUMMARY(), which prints "N passed, N failed" and returns the status. */
#ifndef PO_TEST_HARNESS_H
#define PO_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

static int harness_failures;
static int harness_passed;
static int harness_failed;
static const char *harness_current;

#define CHECK(cond)                                                                            \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", __FILE__, __LINE__, harness_current, #cond); \
      harness_failures++;                                                                      \
    }                                                                                          \
  } while (0)

#define REQUIRE(cond)                                                                          \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      fprintf(stderr, "%s:%d: %s: REQUIRE failed: %s\n", __FILE__, __LINE__, harness_current, #cond); \
      harness_failures++;                                                                      \
      return;                                                                                  \
    }                                                                                          \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                                     \
  do {                                                                                         \
    long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
    if (va_ != vb_) {                                                                          \
      fprintf(stderr, "%s:%d: %s: CHECK_EQ_INT failed: %s == %lld, %s == %lld\n", __FILE__, __LINE__, \
              harness_current, #a, va_, #b, vb_);                                              \
      harness_failures++;                                                                      \
    }                                                                                          \
  } while (0)

#define CHECK_EQ_STR(a, b)                                                                     \
  do {                                                                                         \
    const char *sa_ = (a), *sb_ = (b);                                                         \
    if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                               \
      fprintf(stderr, "%s:%d: %s: CHECK_EQ_STR failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
              harness_current, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                    \
      harness_failures++;                                                                      \
    }                                                                                          \
  } while (0)

#define RUN(test)                                                                              \
  do {                                                                                         \
    int before_ = harness_failures;                                                            \
    harness_current = #test;                                                                   \
    test();                                                                                    \
    if (harness_failures == before_)                                                           \
      harness_passed++;                                                                        \
    else                                                                                       \
      harness_failed++;                                                                        \
  } while (0)

#define TEST_SUMMARY()                                                                         \
  (printf("%d passed, %d failed\n", harness_passed, harness_failed), harness_failed ? 1 : 0)

#endif
