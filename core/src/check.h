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

/* Marks a helper that both the port's code and an invariant walk call (a lookup, a node's
 * address): it is always inlined, so the copy inside an AL_CHECK_CODE function is not
 * instrumented either, while the port's callers keep theirs. Without it the walk called the
 * helper's one instrumented copy, and in clang 14 SanitizerCoverage traces even the compares that
 * UBSan inserts (alignment, shift, pointer overflow): several callbacks per call of a helper that
 * has no branch of its own. A helper in another file is reached through a *_check_* accessor
 * (AL_CHECK_CODE) that wraps the same always-inlined body, so the walk reads the same code. */
#define AL_CHECK_INLINE static inline __attribute__((always_inline))

/* Formats a one-line description of a broken invariant into @msg (NUL-terminated, cut to @cap;
 * nothing is written when @msg is NULL or @cap is 0) and returns false, so a checker can
 * `return check_fail(msg, cap, ...)`. */
bool check_fail(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* ALLOCLAB_CORE_CHECK_H */
