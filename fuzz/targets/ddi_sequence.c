/*
 * ddi_sequence.c — fuzzes sequences of port calls: each input is a program (create and destroy
 * devices, allocations and resources, open shared resources, submit GPU work, wait, query), run
 * against the port over the selected miniport (//hw:miniport) with the DDI verifier on and the
 * reference model checking every status, handle, fence, count and invariant after every call
 * (fuzz/common: input.h, execute.h). Fault requests in the input are ignored (fault_injection
 * honours them). Links the call-level custom mutator (fuzz/common/mutator.h).
 */
#include "fuzz/common/libfuzzer.h"
#include "fuzz/targets/program_target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fzt_run_program_input(data, size, FZT_FAULTS_IGNORED);
}
