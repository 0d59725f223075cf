/*
 * libfuzzer_mutator.c — LLVMFuzzerCustomMutator for the fuzz targets (mutator.h). Linked only
 * into fuzz targets (//fuzz/common:libfuzzer_mutator, alwayslink). Without libFuzzer (replay
 * builds) LLVMFuzzerMutate is NULL and nothing calls this.
 */
#include "fuzz/common/libfuzzer.h"
#include "fuzz/common/mutator.h"

size_t fz_libfuzzer_custom_mutator(uint8_t *data, size_t size, size_t max_size, unsigned seed) {
  if (LLVMFuzzerMutate != NULL && seed % 4u == 0) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  return fz_mutate(data, size, max_size, seed, LLVMFuzzerMutate);
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
  return fz_libfuzzer_custom_mutator(data, size, max_size, seed);
}
