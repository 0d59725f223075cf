/*
 * test_util.h — checks and random programs for the tests of fuzz/common (plain mains: the
 * core test harness is not visible from here).
 */
#ifndef ALLOCLAB_FUZZ_COMMON_TEST_UTIL_H
#define ALLOCLAB_FUZZ_COMMON_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "alloclab/fuzz/program.h"

extern int fz_test_failures;

/* CHECK(cond, fmt, ...): records a failure with a message and goes on. */
#define CHECK(cond, ...)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);             \
      fprintf(stderr, __VA_ARGS__);                                                        \
      fputc('\n', stderr);                                                                 \
      fz_test_failures++;                                                                  \
    }                                                                                      \
  } while (0)

/* The seed of this run: FZ_TEST_SEED from the environment, else a fixed one; printed. */
uint64_t fz_test_seed(void);
uint64_t fz_test_next(uint64_t *rng);
uint32_t fz_test_below(uint64_t *rng, uint32_t n);

/* A random valid program: arbitrary values in every field's full domain, references drawn
 * from live/stale objects (the tracker's picks), any earlier result or literals. */
void fz_test_random_program(uint64_t *rng, fz_program *out);

/* Runs one test function, printing its name; returns true when it added no failure. */
bool fz_test_run(const char *name, void (*fn)(void));
/* Prints the summary; the exit status for main. */
int fz_test_finish(void);

/* The text of a program (static buffer). */
const char *fz_test_text(const fz_program *p);

#endif /* ALLOCLAB_FUZZ_COMMON_TEST_UTIL_H */
