/*
 * sanitizer_defaults.c — AddressSanitizer's defaults for every fuzz target binary (<name>_raw and
 * the <name> corpus replays; bazel/fuzz.bzl links it). ASAN_OPTIONS in the environment still
 * wins, flag by flag.
 *
 * quarantine_size_mb=10, as OSS-Fuzz runs its fuzzers: ASan keeps freed chunks unusable until
 * the quarantine is full, 256 MB by default. The simulated GPU commits aperture pages and
 * placements churn through host memory, so with the default every allocation came from memory
 * never touched before (a page fault and a fresh fill), which was a third of a typical
 * ddi_sequence input's time (README, "Fuzzing speed"). 10 MB still holds everything one input
 * frees up to its last ~10 MB, so a use after free inside an input is still caught.
 */
#include "fuzz/common/libfuzzer.h"

const char *__asan_default_options(void) { return "quarantine_size_mb=10"; }
