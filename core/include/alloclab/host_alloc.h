/*
 * host_alloc.h — the one wrapper every host allocation of the port (core/), the sim miniport
 * (hw/sim) and the simulated GPU (hw/gpu) goes through, so that a test or a fuzzer can make any
 * of them fail (SQLite's sqlite3Malloc over test_malloc.c).
 *
 * DOC: Overview
 * al_host_malloc(), al_host_calloc() and al_host_realloc() behave exactly like malloc(),
 * calloc() and realloc(), except that before calling the C library they ask the host-allocation
 * fault hook installed with al_testing_set_host_alloc_fault() (alloclab/testing.h) whether this
 * allocation must fail; when it must, they return NULL as the C library would on exhaustion and
 * change nothing (al_host_realloc() leaves the old block as it was). With no hook installed (the
 * production case) the cost is one relaxed atomic load and one branch.
 *
 * Ownership: a block from these functions is released with the C library's free(); the wrapper
 * keeps no record of it.
 *
 * Threading: every function may be called from any thread.
 */
#ifndef ALLOCLAB_HOST_ALLOC_H
#define ALLOCLAB_HOST_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * al_host_malloc - malloc(@bytes), unless the installed fault hook says this allocation fails.
 *
 * Returns: the new block (release it with free()), or NULL on exhaustion, real or injected.
 */
void *al_host_malloc(size_t bytes);

/**
 * al_host_calloc - calloc(@count, @size): zeroed; an overflowing product fails like calloc.
 *
 * Returns: the new zeroed block (release it with free()), or NULL on exhaustion or overflow.
 */
void *al_host_calloc(size_t count, size_t size);

/**
 * al_host_aligned_alloc - aligned_alloc(@alignment, @bytes), not zeroed.
 * @alignment: a power of two; @bytes: a multiple of @alignment (C17's aligned_alloc rules).
 *
 * Returns: the new block (release it with free()), or NULL on exhaustion, real or injected, or
 * when the arguments break those rules.
 */
void *al_host_aligned_alloc(size_t alignment, size_t bytes);

/**
 * al_host_reuse_allowed - asks the installed fault hook about an allocation of @bytes that a
 * cache serves from memory it kept instead of calling malloc (the sim's spare aperture pages), so
 * that the n-th allocation the hook counts is the same with and without the cache.
 *
 * Returns: false when the hook says this allocation fails (the caller must then fail it as
 * al_host_malloc would have); true otherwise, and always with no hook installed.
 */
bool al_host_reuse_allowed(size_t bytes);

/**
 * al_host_realloc - realloc(@block, @bytes).
 * @block: NULL (then it is al_host_malloc) or a block from these functions or malloc.
 *
 * Returns: the resized block, or NULL on exhaustion, real or injected: @block is then still
 * valid, unchanged, and still the caller's to free.
 */
void *al_host_realloc(void *block, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_HOST_ALLOC_H */
