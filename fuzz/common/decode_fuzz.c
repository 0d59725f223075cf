/*
 * decode_fuzz.c — fuzzes the input format itself: any bytes must decode to a valid program
 * (or be refused only for an unsupported version, as the empty program), which must encode,
 * decode back to itself, re-encode to the same bytes, and survive the text form
 * (parse(print(p)) == p). Links the call-level custom mutator, so the mutator runs under ASan
 * and UBSan here too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/input.h"
#include "fuzz/common/libfuzzer.h"
#include "fuzz/common/text.h"

#define REQUIRE(cond, ...)                                                                 \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "decode_fuzz: %s failed: ", #cond);                                  \
      fprintf(stderr, __VA_ARGS__);                                                        \
      fputc('\n', stderr);                                                                 \
      abort();                                                                             \
    }                                                                                      \
  } while (0)

static fz_program p, q, r;
static uint8_t buf[FZ_ENCODE_MAX_SIZE];
static uint8_t buf2[FZ_ENCODE_MAX_SIZE];
static char text[64 * 1024];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char why[256];
  if (!fz_decode(data, size, &p)) {
    REQUIRE(size >= FZ_FORMAT_HEADER_SIZE && memcmp(data, "ALFZ", 4) == 0 &&
                data[4] != FZ_FORMAT_VERSION && data[4] != FZ_FORMAT_VERSION_3 &&
                data[4] != FZ_FORMAT_VERSION_2 &&
                data[4] != FZ_FORMAT_VERSION_1,
            "refused an input without an unsupported version header");
    REQUIRE(p.call_count == 0 && p.fault_count == 0, "a refused input left calls");
    return 0;
  }
  REQUIRE(fz_program_validate(&p, why, sizeof why), "decoded an invalid program: %s", why);
  size_t n = fz_encode(&p, buf, sizeof buf);
  REQUIRE(n >= FZ_FORMAT_HEADER_SIZE && n <= sizeof buf, "encode returned %zu", n);
  REQUIRE(fz_decode(buf, n, &q), "the encoding is refused");
  REQUIRE(fz_program_equal(&p, &q), "decode(encode(p)) != p");
  size_t n2 = fz_encode(&q, buf2, sizeof buf2);
  REQUIRE(n2 == n && memcmp(buf, buf2, n) == 0, "encode is not canonical");

  FILE *f = fmemopen(text, sizeof text, "w");
  REQUIRE(f != NULL, "fmemopen");
  fz_print_program(f, &p, NULL);
  long len = ftell(f);
  fclose(f);
  REQUIRE(len >= 0 && (size_t)len < sizeof text, "text too long (%ld)", len);
  text[len] = '\0';
  REQUIRE(fz_parse_program(text, &r, why, sizeof why), "parse(print(p)) failed: %s\n%s", why,
          text);
  REQUIRE(fz_program_equal(&p, &r), "parse(print(p)) != p:\n%s", text);
  return 0;
}
