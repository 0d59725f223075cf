/*
 * gpu_input.h — the input format of the `gpu` fuzz target (the simulated GPU of hw/gpu driven
 * directly: segments, MMU, address spaces, engine) and its text form.
 *
 * DOC: Binary format, version 1 (little-endian; read with a cursor)
 *   byte 0      version: 1 (any other value: the input is not for this format and runs nothing)
 *   byte 1      address spaces: 1 + (value % 3)
 *   then ops    each { u8 opcode; fields... } with the fields of gpu_op_table[opcode % GPU_OP_COUNT]
 *               in order, each of its width: U8 1 byte, U16 2, U24 3, U32 4, VA 5 (below).
 *               An op whose fields are cut off by the end of the input is dropped (the ops
 *               before it run). At most GPU_INPUT_MAX_OPS ops are decoded.
 *   VA operand  { u8 base; u32 value }: base < 16 names VA slot `base` of the op's address
 *               space (va_reserve's slot % 16: a block gpu_va_reserve returned; an empty slot counts as VA 0) and the VA
 *               is slot + value; base 0xfe is GPU_VA_LIMIT - value; any other base is the
 *               absolute VA `value`. Text: `b3+0x1000`, `top-0x1000`, `0x5000`.
 * Field values are kept raw; the executor reduces them (segment index % 4, address space %
 * count, host slots % GPU_SLOTS) so that every byte string is an input.
 *
 * DOC: Text form (gpu_text trace / encode)
 *   gpu v1 address_spaces=N          first line (N = 1..3)
 *   OP field=value field=value ...   one op a line, fields in any order, omitted fields are 0
 *   # comment                         blank lines and comments are ignored
 * Numbers are decimal or 0x hex. trace prints every field of every op; encode(trace(x)) equals
 * x for every x whose opcodes are < GPU_OP_COUNT and whose version byte is 1 and count byte < 3.
 *
 * Ownership: gpu_input_decode fills a caller-owned gpu_input (no allocation).
 */
#ifndef ALLOCLAB_FUZZ_TARGETS_GPU_INPUT_H
#define ALLOCLAB_FUZZ_TARGETS_GPU_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define GPU_INPUT_VERSION 1u
#define GPU_INPUT_MAX_OPS 512u
#define GPU_INPUT_MAX_FIELDS 6u
/* VA slots per address space (VA operand bases 0..15); host-buffer and host-copy slots. */
#define GPU_VA_SLOTS 16u
#define GPU_SLOTS 8u
#define GPU_VA_BASE_TOP 0xfeu

typedef enum gpu_op_kind {
  GPU_OP_VA_RESERVE,     /* as slot size align: align 0 -> 0, 1..49 -> 1 << (align-1), else raw */
  GPU_OP_VA_RELEASE,     /* as va */
  GPU_OP_MAP,            /* as va seg phys size flags */
  GPU_OP_UNMAP,          /* as va size */
  GPU_OP_UNMAP_KNOWN,    /* as va size (skipped when a 2 MiB leaf straddles the range: a bug) */
  GPU_OP_UNMAP_RELEASE,  /* as va */
  GPU_OP_QUERY,          /* as va */
  GPU_OP_COMMIT,         /* seg offset size owner */
  GPU_OP_RELEASE,        /* seg offset size */
  GPU_OP_READ,           /* seg offset size */
  GPU_OP_WRITE,          /* seg offset size seed (byte k = seed + 13 * k) */
  GPU_OP_FILL,           /* seg offset size pattern phase */
  GPU_OP_COPY,           /* seg offset dst dst_offset size */
  GPU_OP_TRANSFER,       /* seg offset dst dst_offset size */
  GPU_OP_TO_HOST,        /* seg offset size slot */
  GPU_OP_FROM_HOST,      /* seg offset slot (empty slot: 4 KiB of zeros, owner 0) */
  GPU_OP_COPY_SAVE,      /* seg offset size slot */
  GPU_OP_COPY_RESTORE,   /* slot seg offset (empty slot: NULL copy) */
  GPU_OP_COPY_READ,      /* slot offset size */
  GPU_OP_COPY_FREE,      /* slot */
  GPU_OP_AS_READ,        /* as va size */
  GPU_OP_AS_WRITE,       /* as va size seed */
  GPU_OP_AS_FILL,        /* as va size pattern */
  GPU_OP_TRANSLATE,      /* as va access (1 read, 2 write, else invalid) */
  GPU_OP_CMD_FILL,       /* va size pattern: appended to the pending command stream */
  GPU_OP_CMD_COPY,       /* va dst size */
  GPU_OP_CMD_READBACK,   /* va size offset */
  GPU_OP_CMD_NOP,        /* payload */
  GPU_OP_CMD_RAW,        /* opcode length byte cut: a record {opcode, length, length x byte}
                            with its last `cut` bytes dropped (malformed streams) */
  GPU_OP_SUBMIT,         /* as fence readback callback: fence = last submitted + `fence`; the pending
                            stream (then emptied) with a readback buffer of `readback` bytes.
                            The cmd_* ops resolve VA operands with address space 0's slots
                            (when built); the commands run in the submitting space. callback
                            % 3: 0 records the completion; 1 also calls gpu_engine_run and
                            gpu_engine_wait_idle from it (nothing may run); 2 also submits
                            from it when cancelled (STATUS_DEVICE_REMOVED expected) */
  GPU_OP_RUN,            /* max (0: all) */
  GPU_OP_WAIT_IDLE,      /* - */
  GPU_OP_WAIT_FENCE,     /* back: fence = last submitted + 1 - back (0 when below) */
  GPU_OP_FENCE_STATUS,   /* back: as wait_fence */
  GPU_OP_FAULT_LOG,      /* max */
  GPU_OP_FAULT_CLEAR,    /* - */
  GPU_OP_INJECT,         /* point (even: segment_space, odd: page_table_page) nth (1 + value):
                            armed for the next op only (a second inject before
                            it replaces the first) */
  GPU_OP_STATS,          /* - : compares every committed byte and every page's owners */
  GPU_OP_DETACH,         /* seg: gpu_mmu_detach_segment (refused while a page of it is mapped);
                            when it succeeds the segment is attached again at once */
  GPU_OP_SEGMENT_CREATE, /* kind id size page: gpu_segment_create of a fourth segment (kind 1
                            memory, 2 aperture, else invalid; size in 4 KiB units, 0xffff:
                            2 TiB); created, it is attached (refused when its id is taken),
                            detached and destroyed at once */
  GPU_OP_COUNT
} gpu_op_kind;

typedef enum gpu_field_type { GPU_F_U8 = 1, GPU_F_U16 = 2, GPU_F_U24 = 3, GPU_F_U32 = 4, GPU_F_VA = 5 } gpu_field_type;

typedef struct gpu_field_desc {
  const char *name;
  gpu_field_type type;
} gpu_field_desc;

typedef struct gpu_op_desc {
  const char *name;
  unsigned field_count;
  gpu_field_desc fields[GPU_INPUT_MAX_FIELDS];
} gpu_op_desc;

extern const gpu_op_desc gpu_op_table[GPU_OP_COUNT];

/* A VA operand (see DOC). */
typedef struct gpu_va_operand {
  uint8_t base;
  uint32_t value;
} gpu_va_operand;

typedef struct gpu_op {
  gpu_op_kind kind;
  /* Field values in table order; a VA field uses va[i] and leaves value[i] 0. */
  uint32_t value[GPU_INPUT_MAX_FIELDS];
  gpu_va_operand va[GPU_INPUT_MAX_FIELDS];
} gpu_op;

typedef struct gpu_input {
  unsigned address_spaces; /* 1..3 */
  size_t op_count;
  gpu_op ops[GPU_INPUT_MAX_OPS];
} gpu_input;

/* gpu_input_decode - bytes to ops. Returns false (and runs nothing) when @size < 2 or the
 * version byte is not GPU_INPUT_VERSION; otherwise true with every whole op decoded. */
bool gpu_input_decode(const uint8_t *data, size_t size, gpu_input *out);

/* gpu_input_encode - ops to bytes. @out: room for @cap bytes. Returns the bytes needed (write
 * happens only when they fit in @cap). */
size_t gpu_input_encode(const gpu_input *in, uint8_t *out, size_t cap);

/* gpu_op_field - the value of field @name of @op (U* fields), 0 when it has none. */
uint32_t gpu_op_field(const gpu_op *op, const char *name);
/* gpu_op_va - the VA operand of field @name ({0, 0} when it has none). */
gpu_va_operand gpu_op_va(const gpu_op *op, const char *name);

/* gpu_op_format - one op as its text line (no newline) into @buf of @cap bytes. */
void gpu_op_format(const gpu_op *op, char *buf, size_t cap);

/* gpu_input_print - the whole text form (header line, one op a line). */
void gpu_input_print(const gpu_input *in, FILE *out);

/* gpu_input_parse - text to ops. On an error writes "LINE: what" into @err (of @err_cap bytes)
 * and returns false (a bad op name, field, value or header, a field given twice, or too many ops). */
bool gpu_input_parse(const char *text, gpu_input *out, char *err, size_t err_cap);

#endif /* ALLOCLAB_FUZZ_TARGETS_GPU_INPUT_H */
