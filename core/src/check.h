/*
 * check.h — how the invariant walks (al_adapter_check, handle_table_check, segment_heap_check)
 * report what they found.
 */
#ifndef ALLOCLAB_CORE_CHECK_H
#define ALLOCLAB_CORE_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Marks an invariant walk: under libFuzzer (clang's SanitizerCoverage) it is not instrumented.
 * Its branches and comparisons say nothing about what an input did (they take the same path on
 * every sound state), yet after every fuzzed call they cost more than the call itself and flood
 * the fuzzer with meaningless compare features. The code it checks stays instrumented. */
#if defined(__clang__)
#define AL_CHECK_CODE __attribute__((no_sanitize("coverage")))
#else
#define AL_CHECK_CODE
#endif

/* Formats a one-line description of a broken invariant into @msg (NUL-terminated, cut to @cap;
 * nothing is written when @msg is NULL or @cap is 0) and returns false, so a checker can
 * `return check_fail(msg, cap, ...)`. */
bool check_fail(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* ALLOCLAB_CORE_CHECK_H */
