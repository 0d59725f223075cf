/*
 * fault_injection.c — ddi_sequence with the program's fault requests honoured: each input arms
 * the sim's fault injector (alloclab/hw/fault_injection.h: segment space, page-table pages,
 * driver objects, private-data buffers, device removal, host allocations; the n-th call fails,
 * repeat times; or the miniport answers wrongly, ids 6-17, which the port must refuse) and
 * the executor checks that every failing call changed nothing and every later call still agrees
 * with the model (fuzz/common/include/alloclab/fuzz/execute.h). A fault marked at=bring_up
 * (program.h FZ_FAULT_AT_BRING_UP) is armed before the adapter comes up: a bring-up it fails
 * must fail cleanly, leaving nothing behind, and the input ends there. Inputs that request no
 * valid fault point, and threaded programs (options(engine=threaded): they arm no fault), are
 * not run (-1: kept out of the corpus; ddi_sequence covers them).
 */
#include "fuzz/common/libfuzzer.h"
#include "fuzz/targets/program_target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fzt_run_program_input(data, size, FZT_FAULTS_REQUIRED);
}
