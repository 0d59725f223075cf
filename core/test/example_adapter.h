/*
 * example_adapter.h — a small adapter over the example miniport (//hw/example) for the port's
 * tests that need memory pressure after a few allocations (residency_test, damage_test). Test-only
 * (//core:example_adapter); al_test.h stays miniport-agnostic.
 */
#ifndef ALLOCLAB_CORE_TEST_EXAMPLE_ADAPTER_H
#define ALLOCLAB_CORE_TEST_EXAMPLE_ADAPTER_H

#include "alloclab/alloclab.h"

/*
 * Creates an example-miniport adapter with the verifier on (AL_ADAPTER_VERIFIER), 4 KiB pages, a
 * 64 KiB memory segment (four allocations of 16 KiB) and a 32 KiB aperture segment (two of them).
 * Returns it (the caller destroys it with al_adapter_destroy), or NULL if al_adapter_create fails.
 */
al_adapter *small_example_adapter(void);

#endif /* ALLOCLAB_CORE_TEST_EXAMPLE_ADAPTER_H */
