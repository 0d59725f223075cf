/*
 * schedules.c — fuzzes races: a program's first calls build objects, then its next calls run on
 * 2..4 logical threads that a deterministic scheduler interleaves at the port's lock points, as
 * the input's choice bytes say (schedules_input.h; fz_execute_concurrent in execute.h). The
 * oracle: the statuses of the concurrent calls must be explained by some order of them that
 * respects real time (linearizability against the reference model); the port's statistics, its
 * invariant walk, the DDI verifier, the sim's GPU checks and the teardown must agree; a deadlock
 * of the logical threads is a finding. The same bytes replay the same interleaving every time.
 * Mutations (fzs_mutate): a quarter structural on the schedule (move, retarget, add or drop one
 * preemption; version-1 inputs become version 2), a quarter on the program at the call level
 * (fault requests included: a concurrent call can meet an injected failure), half libFuzzer's
 * bytes on the whole input.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/execute.h"
#include "fuzz/common/libfuzzer.h"
#include "fuzz/targets/schedules_input.h"

/* Static: a program is ~80 KiB, too big for libFuzzer's stack. */
static fzs_input input;
static fz_exec_options options;
static int options_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!options_ready) {
    fz_exec_options_default(&options);
    const char *verbose = getenv("ALLOCLAB_FUZZ_VERBOSE");
    options.verbose = verbose != NULL && verbose[0] != '\0' && verbose[0] != '0';
    options_ready = 1;
  }
  if (!fzs_decode(data, size, &input)) return -1;
  fz_concurrency cc = {.fork = input.fork,
                       .threads = input.threads,
                       .choices = input.choices,
                       .choice_count = input.choice_count,
                       .preemptive = input.version == FZS_VERSION_2,
                       .preemptions = input.preemptions,
                       .preemption_count = input.preemption_count};
  fz_execute_concurrent(&input.program, &cc, &options, NULL);
  return 0;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
  return fzs_mutate(data, size, max_size, seed, LLVMFuzzerMutate);
}
