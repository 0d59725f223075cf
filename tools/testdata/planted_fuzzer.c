/*
 * planted_fuzzer.c — a test-only libFuzzer target with a planted bug, for nightly_e2e_test.sh.
 * It reads its input as SIM_ALLOCATION_DATA bytes (56 bytes, little endian; the private_data
 * target's format, so the real private_data_text tool gives it a text form) and overflows a heap
 * buffer when the `priority` field (bytes 52..55) is 0x0badf00d: one bug, reached through three
 * functions of "our code", so every crash it finds has the same signature. libFuzzer's
 * comparison tracing finds the value within seconds. The test compiles it as
 * hw/planted/planted.c, so its frames and coverage count as alloclab's own code.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PLANTED_INPUT_SIZE 56u
#define PLANTED_PRIORITY_OFFSET 52u
#define PLANTED_MAGIC_PRIORITY 0x0badf00du

static uint32_t planted_le32(const uint8_t *bytes) {
  return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

__attribute__((noinline)) static void planted_write_past_end(uint8_t *buffer, size_t size) {
  buffer[size] = 1; /* the planted bug: one byte past the end */
}

__attribute__((noinline)) static int planted_parse(const uint8_t *data, size_t size) {
  if (size < PLANTED_INPUT_SIZE) return 0;
  uint32_t priority = planted_le32(data + PLANTED_PRIORITY_OFFSET);
  uint8_t *copy = malloc(size);
  if (copy == NULL) return 0;
  memcpy(copy, data, size);
  if (priority == PLANTED_MAGIC_PRIORITY) planted_write_past_end(copy, size);
  int sum = copy[0];
  free(copy);
  return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  volatile int sink = planted_parse(data, size);
  (void)sink;
  return 0;
}
