/*
 * testing.h — controls that only tests and fuzzers use: making the host allocations of the
 * port, the sim miniport and the simulated GPU fail (alloclab/host_alloc.h).
 *
 * DOC: Overview
 * A test installs a hook with al_testing_set_host_alloc_fault(); from then on every
 * al_host_malloc/calloc/realloc asks it whether to fail, before touching the C library. The
 * hook decides (count calls, fail the n-th once or from then on): the fuzz targets bridge it to
 * their adapter's fault injector, point FAULT_HOST_ALLOCATION of alloclab/hw/fault_injection.h,
 * so "the n-th host allocation fails" is one more fault point of the input; a unit test may count
 * by itself. The classic out-of-memory loop (SQLite's) is then: fail allocation 1, 2, 3, ... of
 * an operation until it completes, once failing a single allocation and once failing every one
 * from the n-th on; after each, check that a failed call changed nothing and leaked nothing.
 *
 * Ownership: the hook struct stays the caller's; it must stay valid until it is replaced or
 * removed (al_testing_set_host_alloc_fault(NULL)) and no allocation can still be asking it.
 *
 * Threading: the hook is process-wide. Installing or removing it is atomic (an allocation sees
 * the old hook or the new one); should_fail may be called from any thread that allocates, so it
 * must be thread-safe when the code under test allocates from several threads.
 */
#ifndef ALLOCLAB_TESTING_H
#define ALLOCLAB_TESTING_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * struct al_host_alloc_fault - a host-allocation fault hook.
 * @should_fail: asked once per al_host_malloc/calloc/realloc with @context and the requested
 *	size in bytes (count * size for calloc, saturated at SIZE_MAX); true makes that allocation
 *	return NULL. It must not allocate through alloclab/host_alloc.h itself.
 * @context: passed back to @should_fail.
 */
typedef struct al_host_alloc_fault {
  bool (*should_fail)(void *context, size_t bytes);
  void *context;
} al_host_alloc_fault;

/**
 * al_testing_set_host_alloc_fault - install @hook (replacing any other), or remove it (NULL).
 * @hook: the hook, borrowed (see Ownership above); NULL: no allocation is ever made to fail.
 *
 * Returns: the hook that was installed before (NULL when none), so a caller can nest and
 * restore.
 */
const al_host_alloc_fault *al_testing_set_host_alloc_fault(const al_host_alloc_fault *hook);

/**
 * al_testing_host_alloc_failures - host allocations made to fail by a hook since the process
 * started (a monotonic count over every hook; the C library's own failures are not counted).
 */
unsigned long long al_testing_host_alloc_failures(void);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_TESTING_H */
