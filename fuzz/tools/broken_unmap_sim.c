/*
 * broken_unmap_sim.c — a deliberately broken simulated GPU for emit_c_test, linked with
 * -Wl,--wrap=gpu_as_unmap_known into both the emitter and the program it writes: the sim's
 * per-binding unmap (a partial close, an eviction) leaves the page-table entries in place, so a
 * closed binding stays mapped. Nothing the program calls reports it; only the sim's hardware
 * walk (sim_miniport_check_hardware) does.
 */
#include "alloclab/hw/gpu_mmu.h"

NTSTATUS __wrap_gpu_as_unmap_known(gpu_as *as, uint64_t va, uint64_t size);

NTSTATUS __wrap_gpu_as_unmap_known(gpu_as *as, uint64_t va, uint64_t size) {
  (void)as, (void)va, (void)size;
  return STATUS_SUCCESS;
}
