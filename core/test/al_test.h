/*
 * al_test.h — the unit-test harness of alloclab (modelled on jemalloc's test/).
 *
 * A test file defines test functions with TEST(name) and ends with RUN_TESTS(T(a), T(b), ...).
 * expect_*() record a failure and let the test go on; assert_*() record it and end the test.
 * Every check takes a printf-style message saying what was being checked.
 * Random tests take their seed from al_test_seed() (AL_TEST_SEED in the environment overrides
 * it; the seed is printed, so a failure replays).
 * al_test_expect_death() runs a function in a child process and checks that it aborts with a
 * message on stderr containing a given text: that is how verifier aborts are tested.
 * A filter in argv[1] (substring of test names) runs a subset.
 */
#ifndef ALLOCLAB_AL_TEST_H
#define ALLOCLAB_AL_TEST_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/status.h"

typedef struct al_test_case {
  const char *name;
  void (*fn)(void);
} al_test_case;

#define TEST(name) static void name(void)
#define T(name) {#name, name}
#define RUN_TESTS(...)                                                                     \
  int main(int argc, char **argv) {                                                        \
    static const al_test_case al_test_cases[] = {__VA_ARGS__};                             \
    return al_test_main(argc, argv, al_test_cases,                                         \
                        sizeof al_test_cases / sizeof al_test_cases[0]);                   \
  }

int al_test_main(int argc, char **argv, const al_test_case *cases, size_t count);

/* Records a failure at file:line with a formatted message; returns false. */
bool al_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends the current test (after an assert_ failed). */
_Noreturn void al_test_abort_current(void);
/* The seed for this run's random tests (printed once). */
uint64_t al_test_seed(void);
/* Marks the current test skipped with a reason (the test function should return). */
void al_test_skip(const char *why);

/* Runs fn(arg) in a child process; passes when the child dies of SIGABRT (or exits non-zero)
 * and its stderr contains @needle. Returns true when the expectation held. */
bool al_test_expect_death_impl(const char *file, int line, void (*fn)(void *), void *arg,
                               const char *needle);
#define expect_death(fn, arg, needle) al_test_expect_death_impl(__FILE__, __LINE__, fn, arg, needle)

#define AL_TEST_CHECK_(cond, on_fail, ...)                                                 \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      al_test_fail(__FILE__, __LINE__, __VA_ARGS__);                                       \
      on_fail;                                                                             \
    }                                                                                      \
  } while (0)

#define AL_TEST_CMP_(type, fmt, a, op, b, on_fail, ...)                                    \
  do {                                                                                     \
    type al_a_ = (type)(a);                                                                \
    type al_b_ = (type)(b);                                                                \
    if (!(al_a_ op al_b_)) {                                                               \
      al_test_fail(__FILE__, __LINE__, "%s " #op " %s: got " fmt " vs " fmt, #a, #b,       \
                   al_a_, al_b_);                                                          \
      al_test_fail(__FILE__, __LINE__, __VA_ARGS__);                                       \
      on_fail;                                                                             \
    }                                                                                      \
  } while (0)

#define AL_TEST_STATUS_(got, want, on_fail, ...)                                           \
  do {                                                                                     \
    NTSTATUS al_got_ = (got), al_want_ = (want);                                           \
    if (al_got_ != al_want_) {                                                             \
      al_test_fail(__FILE__, __LINE__, "%s: got %s, want %s", #got,                        \
                   al_status_name(al_got_), al_status_name(al_want_));                     \
      al_test_fail(__FILE__, __LINE__, __VA_ARGS__);                                       \
      on_fail;                                                                             \
    }                                                                                      \
  } while (0)

#define expect_true(cond, ...) AL_TEST_CHECK_(cond, (void)0, __VA_ARGS__)
#define expect_false(cond, ...) AL_TEST_CHECK_(!(cond), (void)0, __VA_ARGS__)
#define expect_u64_eq(a, b, ...) AL_TEST_CMP_(uint64_t, "%" PRIu64, a, ==, b, (void)0, __VA_ARGS__)
#define expect_u64_ne(a, b, ...) AL_TEST_CMP_(uint64_t, "%" PRIu64, a, !=, b, (void)0, __VA_ARGS__)
#define expect_u64_le(a, b, ...) AL_TEST_CMP_(uint64_t, "%" PRIu64, a, <=, b, (void)0, __VA_ARGS__)
#define expect_u64_lt(a, b, ...) AL_TEST_CMP_(uint64_t, "%" PRIu64, a, <, b, (void)0, __VA_ARGS__)
#define expect_u64_ge(a, b, ...) AL_TEST_CMP_(uint64_t, "%" PRIu64, a, >=, b, (void)0, __VA_ARGS__)
#define expect_u64_gt(a, b, ...) AL_TEST_CMP_(uint64_t, "%" PRIu64, a, >, b, (void)0, __VA_ARGS__)
#define expect_ptr_eq(a, b, ...) AL_TEST_CMP_(const void *, "%p", a, ==, b, (void)0, __VA_ARGS__)
#define expect_ptr_ne(a, b, ...) AL_TEST_CMP_(const void *, "%p", a, !=, b, (void)0, __VA_ARGS__)
#define expect_status(got, want, ...) AL_TEST_STATUS_(got, want, (void)0, __VA_ARGS__)

#define assert_true(cond, ...) AL_TEST_CHECK_(cond, al_test_abort_current(), __VA_ARGS__)
#define assert_false(cond, ...) AL_TEST_CHECK_(!(cond), al_test_abort_current(), __VA_ARGS__)
#define assert_u64_eq(a, b, ...)                                                           \
  AL_TEST_CMP_(uint64_t, "%" PRIu64, a, ==, b, al_test_abort_current(), __VA_ARGS__)
#define assert_u64_ne(a, b, ...)                                                           \
  AL_TEST_CMP_(uint64_t, "%" PRIu64, a, !=, b, al_test_abort_current(), __VA_ARGS__)
#define assert_ptr_ne(a, b, ...)                                                           \
  AL_TEST_CMP_(const void *, "%p", a, !=, b, al_test_abort_current(), __VA_ARGS__)
#define assert_status(got, want, ...) AL_TEST_STATUS_(got, want, al_test_abort_current(), __VA_ARGS__)

#endif /* ALLOCLAB_AL_TEST_H */
