/*
 * gpu_exec_test.c — tests of the gpu target's decoder, text form and executor: round trips,
 * malformed text, programs the real GPU must pass, and deliberately broken GPU answers
 * (gpu_sabotage) that the model must catch, naming the op.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/hw/gpu_memory.h" /* GPU_STATUS_PAGE_FAULT */
#include "gpu_exec.h"
#include "gpu_input.h"

static gpu_input in, in2;

/* Parses @text into @out; a parse error is a test failure naming it. */
static bool parse(const char *text, gpu_input *out) {
  char err[256];
  bool ok = gpu_input_parse(text, out, err, sizeof err);
  if (!ok) al_test_fail(__FILE__, __LINE__, "parse: %s", err);
  return ok;
}

static gpu_exec_result run_text(const char *text, gpu_sabotage sabotage) {
  gpu_exec_result r;
  memset(&r, 0, sizeof r);
  if (!parse(text, &in)) return r;
  gpu_exec_options o = {sabotage, false, NULL};
  gpu_execute(&in, &o, &r);
  return r;
}

/* A program touching every kind of op, each with the status the contracts promise. */
/* Field by field: gpu_va_operand has padding, which memcmp would compare too (clang leaves it
 * as it was where gcc zeroes it). */
static bool ops_equal(const gpu_op *a, const gpu_op *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (a[i].kind != b[i].kind) return false;
    for (unsigned f = 0; f < GPU_INPUT_MAX_FIELDS; f++)
      if (a[i].value[f] != b[i].value[f] || a[i].va[f].base != b[i].va[f].base || a[i].va[f].value != b[i].va[f].value)
        return false;
  }
  return true;
}

static const char *const every_op =
    "gpu v1 address_spaces=2\n"
    "va_reserve as=0 slot=0 size=0x3000 align=0\n"
    "va_reserve as=0 slot=1 size=0x200000 align=0\n"
    "va_reserve as=0 slot=2 size=0 align=0          # size 0: invalid\n"
    "va_reserve as=0 slot=2 size=0x1000 align=100   # alignment not a power of two\n"
    "commit seg=0 offset=0 size=0x4000 owner=7\n"
    "commit seg=0 offset=0x1000 size=0x1000 owner=8  # already committed\n"
    "commit seg=1 offset=0 size=0x2000 owner=9\n"
    "commit seg=2 offset=0 size=0x200000 owner=10\n"
    "write seg=0 offset=0x10 size=0x2000 seed=3\n"
    "fill seg=1 offset=1 size=0x1ffe pattern=0xdeadbeef phase=2\n"
    "fill seg=1 offset=0 size=1 pattern=1 phase=4    # phase > 3\n"
    "map as=0 va=b0+0 seg=0 phys=0 size=0x4000 flags=0\n"
    "map as=0 va=b1+0 seg=2 phys=0 size=0x200000 flags=0\n"
    "map as=0 va=b0+0x1000 seg=0 phys=0 size=0x1000 flags=0  # mapped already\n"
    "map as=1 va=0x5000 seg=1 phys=0 size=0x2000 flags=1\n"
    "query as=0 va=b1+0x1234\n"
    "query as=1 va=0x6000\n"
    "translate as=1 va=0x5000 access=2               # read-only: fault\n"
    "translate as=0 va=b0+0x10 access=1\n"
    "as_write as=0 va=b0+0xff0 size=0x20 seed=5\n"
    "as_read as=0 va=b0+0 size=0x4000\n"
    "as_fill as=0 va=b1+0x1ffff0 size=0x20 pattern=0x01020304  # runs off the end: fault\n"
    "copy seg=0 offset=0 dst=1 dst_offset=0x100 size=0x100\n"
    "copy seg=0 offset=0 dst=0 dst_offset=0x80 size=0x100  # overlap\n"
    "cmd_fill va=b1+0x1000 size=0x100 pattern=0xaabbccdd\n"
    "cmd_copy va=b1+0x1000 dst=b1+0x3000 size=0x80\n"
    "cmd_readback va=b1+0x3000 size=0x80 offset=0x10\n"
    "cmd_nop payload=3\n"
    "submit as=0 fence=1 readback=0x100\n"
    "cmd_fill va=0x100000 size=0x10 pattern=1       # unmapped: the submission faults\n"
    "submit as=0 fence=2 readback=0\n"
    "cmd_raw opcode=9 length=0 byte=0 cut=0\n"
    "submit as=0 fence=1 readback=0                  # unknown opcode: invalid command\n"
    "submit as=0 fence=0 readback=0                  # fence not increasing\n"
    "fence_status back=1\n"
    "wait_fence back=1\n"
    "run max=2\n"
    "fence_status back=2\n"
    "wait_idle\n"
    "wait_fence back=1\n"
    "fence_status back=1\n"
    "fault_log max=300\n"
    "unmap as=0 va=b0+0x1000 size=0x1000\n"
    "unmap as=0 va=b0+0x1000 size=0x1000             # not mapped any more\n"
    "unmap as=0 va=b1+0 size=0x1000                  # would split a 2 MiB leaf\n"
    "unmap_known as=0 va=b0+0 size=0x4000\n"
    "va_release as=0 va=b0+0\n"
    "va_release as=0 va=b0+0                         # released already\n"
    "va_release as=0 va=b1+0                         # still mapped\n"
    "unmap_release as=0 va=b1+0\n"
    "copy_save seg=0 offset=0x10 size=0x2000 slot=1\n"
    "copy_read slot=1 offset=0x100 size=0x100\n"
    "copy_read slot=2 offset=0 size=1                # empty slot\n"
    "release seg=0 offset=0 size=0x4000\n"
    "copy_restore slot=1 seg=0 offset=0x10           # released: fault\n"
    "read seg=0 offset=0 size=0x10                   # released: fault\n"
    "commit seg=0 offset=0 size=0x4000 owner=11\n"
    "copy_restore slot=1 seg=0 offset=0x10\n"
    "read seg=0 offset=0 size=0x4000\n"
    "copy_free slot=1\n"
    "transfer seg=0 offset=0 dst=1 dst_offset=0x4000 size=0x4000\n"
    "to_host seg=1 offset=0x4000 size=0x4000 slot=0\n"
    "from_host seg=0 offset=0x8000 slot=0\n"
    "from_host seg=0 offset=0xc000 slot=5            # empty slot: owner 0\n"
    "inject point=0 nth=0\n"
    "commit seg=1 offset=0x8000 size=0x3000 owner=4  # the first host page fails\n"
    "inject point=1 nth=1\n"
    "map as=1 va=0x40000000 seg=0 phys=0x8000 size=0x1000 flags=0  # the second new table fails\n"
    "inject point=1 nth=5\n"
    "map as=1 va=0x40000000 seg=0 phys=0x8000 size=0x1000 flags=0  # only 2 new tables: succeeds\n"
    "fault_clear\n"
    "fault_log max=10\n"
    "detach seg=0                                    # still mapped: refused\n"
    "detach seg=2\n"
    "stats\n";

TEST(test_round_trip) {
  assert_true(parse(every_op, &in), "every_op parses");
  size_t need = gpu_input_encode(&in, NULL, 0);
  uint8_t *bytes = malloc(need);
  assert_ptr_ne(bytes, NULL, "room for the encoded input");
  expect_u64_eq(gpu_input_encode(&in, bytes, need), need, "encode writes what it said it needs");
  expect_u64_eq(bytes[0], GPU_INPUT_VERSION, "version byte");
  expect_u64_eq(bytes[1], 1, "address-space byte (2 spaces)");
  expect_true(gpu_input_decode(bytes, need, &in2), "the encoded bytes decode");
  expect_u64_eq(in2.op_count, in.op_count, "ops decoded");
  expect_u64_eq(in2.address_spaces, 2, "address spaces decoded");
  expect_true(ops_equal(in.ops, in2.ops, in.op_count), "decoded ops equal the parsed ones");
  /* An op cut short by the end of the input is dropped; the ones before it stay. */
  expect_true(gpu_input_decode(bytes, need - 1, &in2), "a cut input still decodes");
  expect_u64_eq(in2.op_count, in.op_count - 1, "the cut op is dropped");
  /* Not version 1: nothing runs. */
  bytes[0] = 2;
  expect_false(gpu_input_decode(bytes, need, &in2), "version 2 is refused");
  expect_false(gpu_input_decode(bytes, 1, &in2), "one byte is refused");
  free(bytes);
  /* trace's text reads back to the same ops. */
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  gpu_input_print(&in, f);
  fclose(f);
  expect_true(parse(text, &in2), "trace's text parses");
  expect_u64_eq(in2.op_count, in.op_count, "ops read back from the text");
  expect_true(ops_equal(in.ops, in2.ops, in.op_count), "the text reads back to the same ops");
  free(text);
  /* VA operands: slot + offset, top - value, absolute, other bases. */
  assert_true(parse("gpu v1 address_spaces=1\nquery va=b15+0x10\nquery va=top-0x1000\nquery va=0x5000\nquery va=abs17:0x9\n", &in),
              "VA operands parse");
  expect_u64_eq(in.ops[0].va[1].base, 15, "b15+0x10: slot");
  expect_u64_eq(in.ops[0].va[1].value, 0x10, "b15+0x10: offset");
  expect_u64_eq(in.ops[1].va[1].base, GPU_VA_BASE_TOP, "top-0x1000: base");
  expect_u64_eq(in.ops[1].va[1].value, 0x1000, "top-0x1000: value");
  expect_u64_eq(in.ops[2].va[1].base, 0xff, "0x5000: absolute base");
  expect_u64_eq(in.ops[2].va[1].value, 0x5000, "0x5000: value");
  expect_u64_eq(in.ops[3].va[1].base, 17, "abs17:0x9: base");
  expect_u64_eq(in.ops[3].va[1].value, 9, "abs17:0x9: value");
}

TEST(test_parse_errors) {
  static const char *const bad[][2] = {
      {"map as=0\n", "line 1: the first line"},
      {"gpu v1 address_spaces=4\n", "line 1: the first line"},
      {"gpu v1 address_spaces=2x\n", "line 1: the first line"},
      {"gpu v1 address_spaces=-2\n", "line 1: the first line"},
      {"gpu v1 address_spaces=1\nfrobnicate\n", "line 2: unknown op 'frobnicate'"},
      {"gpu v1 address_spaces=1\ncommit seg=0 color=1\n", "line 2: commit has no field 'color'"},
      {"gpu v1 address_spaces=1\ncommit seg=256\n", "line 2: commit seg: bad value '256'"},
      {"gpu v1 address_spaces=1\ncommit size=0x1000000\n", "line 2: commit size: bad value"},
      {"gpu v1 address_spaces=1\nquery va=b16+0\n", "line 2: query va: bad value"},
      {"gpu v1 address_spaces=1\ncommit seg\n", "line 2: 'seg' is not field=value"},
      {"gpu v1 address_spaces=1\ncommit seg=1 size=0x1000 seg=2\n", "line 2: commit: field 'seg' given twice"},
      {"", "no `gpu v1"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[256] = "";
    bool ok = gpu_input_parse(bad[i][0], &in, err, sizeof err);
    expect_false(ok, "case %zu is refused", i);
    expect_true(strstr(err, bad[i][1]) != NULL, "case %zu: error '%s' says '%s'", i, err, bad[i][1]);
  }
}

TEST(test_every_op_agrees) {
  gpu_exec_result r = run_text(every_op, GPU_SABOTAGE_NONE);
  expect_true(r.ok, "every_op: %s", r.message);
  expect_u64_eq(r.ops_run, in.op_count, "every op ran");
}

/* A broken GPU answer must be caught at the op that shows it, naming it. */
static void expect_caught(const char *text, gpu_sabotage sabotage, size_t op, const char *words) {
  gpu_exec_result clean = run_text(text, GPU_SABOTAGE_NONE);
  expect_true(clean.ok, "unsabotaged: %s", clean.message);
  gpu_exec_result r = run_text(text, sabotage);
  expect_false(r.ok, "sabotage %d is caught", (int)sabotage);
  char prefix[32];
  snprintf(prefix, sizeof prefix, "op %zu (", op);
  expect_true(r.failed_op == op && strncmp(r.message, prefix, strlen(prefix)) == 0 && strstr(r.message, words) != NULL,
              "sabotage %d: expected op %zu and '%s', got op %zu: %s", (int)sabotage, op, words, r.failed_op,
              r.message);
}

TEST(test_sabotage_caught) {
  expect_caught("gpu v1 address_spaces=1\n"
                "commit seg=0 offset=0 size=0x2000 owner=1\n"
                "map as=0 va=0x10000 seg=0 phys=0 size=0x2000 flags=0\n"
                "unmap as=0 va=0x10000 size=0x2000\n",
                GPU_SABOTAGE_UNMAP_LEAVES_PAGE, 2, "mapped_4k 1, model 0");
  expect_caught("gpu v1 address_spaces=1\ncommit seg=1 offset=0x1000 size=0x1000 owner=3\n",
                GPU_SABOTAGE_COMMIT_STATUS, 0,
                "gpu_segment_commit returned STATUS_INVALID_PARAMETER, the model expects STATUS_SUCCESS");
  expect_caught("gpu v1 address_spaces=1\n"
                "commit seg=2 offset=0 size=0x10000 owner=1\n"
                "write seg=2 offset=0x100 size=0x10 seed=9\n",
                GPU_SABOTAGE_WRITE_BYTE, 1, "segment 3 page 0 contents: byte 271");
  expect_caught("gpu v1 address_spaces=1\n"
                "commit seg=0 offset=0 size=0x1000 owner=1\n"
                "release seg=0 offset=0 size=0x1000\n",
                GPU_SABOTAGE_RELEASE_KEEPS_PAGE, 1, "committed_bytes 4096");
}

/*
 * The model held to statuses worked out by hand from the headers (not from the model): each
 * line's expected status is its comment. A model that expects the wrong status for one of them
 * agrees with nothing (the GPU returns the right one) or, if it were wrong the same way as the
 * GPU, still fails here.
 */
TEST(test_statuses_by_hand) {
  static const struct {
    const char *line;
    NTSTATUS want;
  } prog[] = {
      {"commit seg=0 offset=0 size=0x2000 owner=1", STATUS_SUCCESS},
      {"commit seg=0 offset=0x1000 size=0x1000 owner=2", STATUS_INVALID_PARAMETER}, /* committed */
      {"commit seg=2 offset=0x1000 size=0x10000 owner=2", STATUS_INVALID_PARAMETER}, /* 64 KiB pages */
      {"commit seg=1 offset=0 size=0x1000 owner=0", STATUS_INVALID_PARAMETER},      /* owner 0 */
      {"release seg=0 offset=0x1000 size=0x1000", STATUS_SUCCESS},
      {"release seg=0 offset=0x1000 size=0x1000", STATUS_INVALID_PARAMETER},        /* twice */
      {"read seg=0 offset=0xff0 size=0x20", GPU_STATUS_PAGE_FAULT},                  /* runs onto the free page */
      {"read seg=0 offset=0x10000 size=0", STATUS_SUCCESS},                          /* empty, at the end */
      {"fill seg=0 offset=0 size=4 pattern=1 phase=4", STATUS_INVALID_PARAMETER},
      {"va_reserve slot=0 size=0x3000 align=0", STATUS_SUCCESS},
      {"va_reserve slot=1 size=0x1000 align=100", STATUS_INVALID_PARAMETER},        /* 100: not a power of two */
      {"map va=b0+0 seg=0 phys=0 size=0x2000 flags=0", STATUS_SUCCESS},
      {"map va=b0+0x1000 seg=0 phys=0 size=0x1000 flags=0", STATUS_INVALID_PARAMETER}, /* mapped */
      {"map va=b0+0x2000 seg=0 phys=0 size=0x1000 flags=8", STATUS_INVALID_PARAMETER}, /* flag */
      {"translate va=b0+0x1000 access=1", GPU_STATUS_PAGE_FAULT},                   /* page released */
      {"translate va=b0+0 access=2", STATUS_SUCCESS},
      {"translate va=b0+0 access=3", STATUS_INVALID_PARAMETER},
      {"va_release va=b0+0", STATUS_INVALID_PARAMETER},                             /* still mapped */
      {"unmap va=b0+0 size=0x3000", STATUS_INVALID_PARAMETER},                      /* a page unmapped */
      {"unmap va=b0+0 size=0x2000", STATUS_SUCCESS},
      {"va_release va=b0+0", STATUS_SUCCESS},
      {"unmap_release va=b0+0", STATUS_INVALID_PARAMETER},                          /* released */
      {"transfer seg=0 offset=0 dst=2 dst_offset=0 size=0x1000", STATUS_INVALID_PARAMETER}, /* 64 KiB */
      {"transfer seg=0 offset=0 dst=1 dst_offset=0 size=0x1000", STATUS_SUCCESS},
      {"to_host seg=1 offset=0 size=0x1000 slot=0", STATUS_SUCCESS},
      {"from_host seg=1 offset=0 slot=1", STATUS_INVALID_PARAMETER},                /* empty slot: owner 0 */
      {"copy_restore slot=0 seg=0 offset=0", STATUS_INVALID_PARAMETER},             /* no copy */
      {"inject point=0 nth=0", GPU_EXEC_NO_STATUS},
      {"commit seg=1 offset=0 size=0x1000 owner=3", STATUS_NO_MEMORY},
      {"submit fence=0 readback=0", STATUS_INVALID_PARAMETER},                      /* fence 0 */
      {"submit fence=1 readback=0", STATUS_SUCCESS},
      {"wait_fence back=0", STATUS_TIMEOUT},
      {"run max=0", GPU_EXEC_NO_STATUS},
      {"wait_fence back=1", STATUS_SUCCESS},
  };
  enum { N = sizeof prog / sizeof prog[0] };
  char text[4096] = "gpu v1 address_spaces=1\n";
  for (size_t i = 0; i < N; i++) {
    strcat(text, prog[i].line);
    strcat(text, "\n");
  }
  assert_true(parse(text, &in), "the by-hand program parses");
  assert_u64_eq(in.op_count, N, "its ops");
  NTSTATUS got[N];
  gpu_exec_options o = {GPU_SABOTAGE_NONE, false, got};
  gpu_exec_result r;
  expect_true(gpu_execute(&in, &o, &r), "statuses: %s", r.message);
  for (size_t i = 0; i < N; i++) {
    expect_u64_eq((uint32_t)got[i], (uint32_t)prog[i].want, "op %zu (%s): status by hand", i, prog[i].line);
  }
}

RUN_TESTS(T(test_round_trip), T(test_parse_errors), T(test_every_op_agrees), T(test_sabotage_caught),
          T(test_statuses_by_hand))
