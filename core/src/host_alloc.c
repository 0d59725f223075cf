/* host_alloc.c — the host-allocation wrapper and its fault hook (alloclab/host_alloc.h,
 * alloclab/testing.h). */
#include "alloclab/host_alloc.h"

#include <stdint.h>
#include <stdlib.h>

#include "alloclab/testing.h"

/* The installed hook (NULL: none), and the count of injected failures. Only __atomic builtins
 * touch them: an allocation on any thread reads the hook without a lock. */
static const al_host_alloc_fault *installed_hook;
static unsigned long long injected_failures;

const al_host_alloc_fault *al_testing_set_host_alloc_fault(const al_host_alloc_fault *hook) {
  return __atomic_exchange_n(&installed_hook, hook, __ATOMIC_ACQ_REL);
}

unsigned long long al_testing_host_alloc_failures(void) {
  return __atomic_load_n(&injected_failures, __ATOMIC_RELAXED);
}

/* Whether the hook (if any) fails an allocation of @bytes. Acquire pairs with the exchange's
 * release, so the hook's fields are seen as they were written before it was installed. */
static bool injected_failure(size_t bytes) {
  const al_host_alloc_fault *hook = __atomic_load_n(&installed_hook, __ATOMIC_ACQUIRE);
  if (hook == NULL || !hook->should_fail(hook->context, bytes)) return false;
  __atomic_add_fetch(&injected_failures, 1, __ATOMIC_RELAXED);
  return true;
}

void *al_host_malloc(size_t bytes) { return injected_failure(bytes) ? NULL : malloc(bytes); }

bool al_host_reuse_allowed(size_t bytes) { return !injected_failure(bytes); }

void *al_host_calloc(size_t count, size_t size) {
  bool overflows = size != 0 && count > SIZE_MAX / size;
  size_t bytes = overflows ? SIZE_MAX : count * size;
  /* An overflowing product fails here, as calloc would: ASan's calloc aborts on it instead. */
  return injected_failure(bytes) || overflows ? NULL : calloc(count, size);
}

void *al_host_aligned_alloc(size_t alignment, size_t bytes) {
  bool legal = alignment != 0 && (alignment & (alignment - 1)) == 0 && bytes % alignment == 0;
  return injected_failure(bytes) || !legal ? NULL : aligned_alloc(alignment, bytes);
}

void *al_host_realloc(void *block, size_t bytes) {
  return injected_failure(bytes) ? NULL : realloc(block, bytes);
}
