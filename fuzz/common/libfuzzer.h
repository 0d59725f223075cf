/*
 * libfuzzer.h — the libFuzzer entry points alloclab's fuzz targets define or call, declared
 * once (the build uses -Wmissing-prototypes). A fuzz target defines LLVMFuzzerTestOneInput and
 * may define LLVMFuzzerInitialize; the replay driver (replay_main.c) calls them in builds
 * without libFuzzer. LLVMFuzzerMutate exists only when libFuzzer is linked: it is weak, test it
 * for NULL.
 */
#ifndef ALLOCLAB_FUZZ_COMMON_LIBFUZZER_H
#define ALLOCLAB_FUZZ_COMMON_LIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size) __attribute__((weak));

/* AddressSanitizer reads its defaults from this (sanitizer_defaults.c defines it). */
const char *__asan_default_options(void);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_FUZZ_COMMON_LIBFUZZER_H */
