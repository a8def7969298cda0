/* What every fuzz target shares: the libFuzzer entry points and a check
 * that aborts (a crash libFuzzer saves as a reproducer) when a property of
 * the code under test does not hold. A memory error or undefined behaviour
 * is caught by ASan/UBSan; a wrong answer needs an explicit property. */
#ifndef PO_FUZZ_H
#define PO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);     \
      abort();                                                                          \
    }                                                                                   \
  } while (0)

#endif
