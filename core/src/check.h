/*
 * check.h — how the invariant walks (al_adapter_check, handle_table_check, segment_heap_check)
 * report what they found.
 */
#ifndef ALLOCLAB_CORE_CHECK_H
#define ALLOCLAB_CORE_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Formats a one-line description of a broken invariant into @msg (NUL-terminated, cut to @cap;
 * nothing is written when @msg is NULL or @cap is 0) and returns false, so a checker can
 * `return check_fail(msg, cap, ...)`. */
bool check_fail(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* ALLOCLAB_CORE_CHECK_H */
