/*
 * input.h — the binary input format of alloclab's fuzzers: bytes <-> fz_program (program.h).
 *
 * DOC: Overview
 * Every fuzz target turns its input bytes into a program with fz_decode() and runs that. ANY
 * byte string decodes to a valid program (fz_program_validate() holds), so libFuzzer's byte
 * mutations never waste an execution on a rejected input; fz_encode() writes a program back
 * (seeds, the `encode` tool, the call-level mutator). decode(encode(p)) == p for every valid p;
 * encode(decode(x)) need not equal x (many byte strings decode to one program).
 *
 * The bytes are read through fz_cursor, a small data provider in the manner of libFuzzer's
 * FuzzedDataProvider: reading past the end yields zero bytes, so a truncated input is a shorter
 * or zero-padded program, never an error.
 *
 * DOC: Format, version 4 (versions 3, 2 and 1 below)
 * All integers are little-endian. "u8 % N" means one byte reduced modulo N.
 *
 *   input   := header? body
 *   header  := "ALFZ" version:u8           (5 bytes; the encoder always writes it)
 *   body    := faults call*                (calls until the input ends, at most FZ_MAX_CALLS)
 *
 * Header. When the input starts with the 5 bytes "ALFZ" <version>, version must be
 * FZ_FORMAT_VERSION (4), 3, 2 or 1 (FZ_FORMAT_VERSION_3 .. _1), each read by its own rules
 * (below): another value makes fz_decode() return false with an empty program (the only input it
 * refuses). Any other input (including one shorter than 5 bytes) has no header and is read as a
 * version-4 body from its first byte, so raw byte strings are programs too.
 *
 * Faults. One byte f: when f >> 6 == 3 the program arms 1 + (f & 3) faults, else none (so a
 * random first byte asks for faults 1 time in 4). Each fault is three LEB128 varints (7 bits a
 * byte, low group first, at most 5 bytes, truncated to 32 bits): point (a stable fault point id
 * of alloclab/hw/fault_injection.h, not checked here; bit 7, FZ_FAULT_AT_BRING_UP of
 * program.h, arms it before adapter bring-up: e.g. host_allocation at bring-up is the varint
 * 0x85 0x01), nth, repeat.
 * Bit 5 of f (FZ_FAULTS_BYTE_THREADED_ENGINE, 0x20) is the program's engine: set, it runs on
 * the threaded GPU engine (fz_program.threaded_engine, `options(engine=threaded)`), whether
 * or not faults follow. Versions 1 and 2 ignore the bit; before it was defined no encoder set
 * it (0x00, or 0xC0 | n), so it changed the meaning of no corpus file.
 * Bit 4 of f (FZ_FAULTS_BYTE_ADAPTER_TEARDOWN, 0x10) ends the program with al_adapter_destroy
 * alone (fz_program.adapter_teardown, `options(teardown=adapter)`); versions 1 and 2 ignore it
 * too, and no encoder set it before (0x00, 0x20, 0xC0 | n, 0xE0 | n).
 *
 * Calls. Decoding stops when no byte is left at the start of a call, or after FZ_MAX_CALLS.
 * Each call starts with an opcode byte b: op = (b & 0x0F) % FZ_OP_COUNT; when b & 0xF0 == 0xF0
 * a hostile byte follows and hostile = that byte & 0x7F (FZ_HOSTILE_*), else hostile = 0. The
 * fields the op uses follow, in this order (other fields of the call stay zero):
 *
 *   create_device        -      (info: bit 7 of the hostile byte, else bit 4 of the opcode byte)
 *   destroy_device       device:ref
 *   create_allocations   device:ref count size shape align?
 *   create_resource      device:ref count size shape align?     (shape carries `shared`)
 *   add_to_resource      device:ref resource:ref count size shape align?
 *   open_resource        resource:ref device:ref                (resource first: see refs)
 *   destroy_resource     device:ref resource:ref flags
 *   destroy_allocations  device:ref flags length ref*length
 *   submit               device:ref command length ref*length
 *   gpu_run              count
 *   fence_wait           fence:ref
 *   query                allocation:ref
 *   damage               kind:u8 pick:u8                        (program.h "Damage")
 *
 *   count   := u8 c: c < 0xC0 -> 1 + (c & 7) (small counts are the common case);
 *              0xC0..0xEF -> (c - 0xC0) % (FZ_MAX_LIST + 1); 0xF0..0xFD -> fz_count_table[c & 15]
 *              (33, 63, 64, 65, 127, 128, 255, 256, 511, 512, 513, 1000, 1023, 1024);
 *              0xFE -> u16 % (FZ_MAX_ELEMENTS + 1); 0xFF -> FZ_COUNT_OVER_MAXIMUM
 *   length  := u8 c: c < 0xC0 -> 1 + (c & 7); else (c - 0xC0) % (FZ_MAX_LIST + 1) (entries,
 *              each one element or a range)
 *   size    := u8 t: t < 0x80 -> (t + 1) * 4096 (one byte: 4 KiB .. 512 KiB);
 *              0x80..0xBF -> u16 * 4096; 0xC0..0xDF -> one of 16 edge sizes (0, 1, 4095, 4097,
 *              ... UINT64_MAX; fz_size_table); 0xE0..0xFF -> u64 verbatim
 *   shape   := u8 s: placement = (s & 3) % 3, shared = (s >> 2) & 1; s & 0x80: an align
 *              follows (else align = 0); bits 3..6 are ignored
 *   align   := u8 a: a < 32 -> 1 << a (1 B .. 2 GiB); 0xFF -> u32 verbatim; else a itself (32 ..
 *              254: mostly not a power of two, so rejected)
 *   flags   := u8 g: g < 0x80 -> g & 3 (the defined AL_DESTROY_* bits); else u8 verbatim
 *   command := u8 % 4 (nop, fill, check, copy)
 *
 * References. A ref names a handle argument. It starts with a selector byte s; j = s & 0x0F:
 *   0x00..0x8F  PREFERRED: the j-th (modulo their number) most recent object of the slot's type
 *               that is live and fits the call (below); none: as LIVE
 *   0x90..0x9F  RANGE (list entries; elsewhere: PREFERRED): a ref follows (the first element;
 *               a RANGE selector there reads as PREFERRED), then the span by j: 0 -> to the
 *               last allocation its call made (as the tracker sees it), 1 -> one element past
 *               it (off by one), 2..14 -> 1, 2, 3, 7, 15, 31, 63, 127, 255, 511, 1023, 4, 8
 *               (fz_span_table), 15 -> u16 % FZ_MAX_ELEMENTS. The span is cut so the range
 *               ends below FZ_MAX_ELEMENTS; a first element that is not vK.aE gives span 0.
 *   0xA0..0xAF  LIVE: the j-th most recent live object of the slot's type; none: literal 0
 *   0xB0..0xBF  STALE: the j-th most recent destroyed object of the slot's type; none: as LIVE
 *   0xC0..0xDF  EXPLICIT: back:u8 e:u8 — call = this - 1 - back % this, element = e when
 *               e < FZ_MAX_LIST, a following u16 % FZ_MAX_ELEMENTS when e == 0xFE, else
 *               FZ_ELEMENT_SELF (the first call: literal 0).
 *               Reaches any earlier result, of the right type or not.
 *   0xE0..0xEF  LITERAL from a table of 16 handle-shaped values (0, 0xffffffff, 0xdead0001,
 *               each handle type with generation 0 and 1, ...; fz_literal_table)
 *   0xF0..0xFF  LITERAL u32 verbatim
 * So a random selector names a live object of the right type (when there is one) 11 times in
 * 16 and a destroyed one 1 in 16; 1 in 8 is an explicit (possibly wrong-type) result, 1 in 8 a
 * literal.
 * "Live" and "destroyed" are judged statically while decoding (a tracker replays the calls so
 * far, taking every call without hostile bits to succeed when its arguments name live objects
 * the way the API requires): a device is live until destroy_device names it; a resource while
 * some device holds it (create, open; released by destroy_resource or destroy_device); an
 * allocation while it was not destroyed by a list and its owner (device or resource) lives.
 * Objects of the slot's type: device = create_device results; resource = create_resource
 * results; allocation = the elements vK.aE of creates and add_to_resource; fence = submits.
 * Candidates are ordered most recent call first, a call's allocations by ascending element.
 * "Fits the call": open_resource: a shared resource, then a device not holding it yet;
 * add_to_resource: a resource created by the call's device and held by it alone;
 * destroy_resource: a resource the device holds; submit: an allocation usable on the device
 * (device-owned by it or of a resource it holds); destroy_allocations: an allocation the
 * device may destroy (device-owned by it or of a resource it holds alone). Within one list,
 * PREFERRED, LIVE and STALE skip allocations already listed (a range lists its elements), so
 * "all selectors 0" lists distinct allocations; duplicates and foreign handles come from
 * EXPLICIT refs, ranges and the j > 0 picks. The tracker follows the first 32 elements of each
 * call exactly; elements from 32 on count as live while their owner is (a heuristic that only
 * steers which objects selectors pick: the model, not the tracker, judges the calls).
 *
 * The encoder writes each ref in the first form that decodes back to it: PREFERRED, LIVE or
 * STALE with j < 16, else EXPLICIT; a literal from the table, else verbatim; a range as RANGE
 * with the first j that gives its span, then its first element.
 *
 * DOC: Format, version 3
 * The format before the damage op, still decoded (header version 3). The one difference:
 * op = (b & 0x0F) % FZ_OP_COUNT_V3 (12), so the opcode bytes 12..15 are the ops 0..3.
 *
 * DOC: Format, version 2
 * The format before the copy command, still decoded (header version 2) so older corpora,
 * regressions and crash files keep their meaning; the encoder writes version 3 only. The one
 * differences: command := u8 % 3 (nop, fill, check); no align (bit 7 of shape is ignored); no
 * info (bit 4 of the opcode byte and bit 7 of the hostile byte are ignored); no engine choice
 * (bit 5 of the faults byte is ignored: the deterministic engine).
 *
 * DOC: Format, version 1
 * The format before ranges and long creates, still decoded (header version 1) so older
 * corpora keep their meaning. The differences from version 2:
 * hostile = byte & 0x1F; count: 0xC0..0xFE -> (c - 0xC0) % (FZ_MAX_LIST + 1); selectors
 * 0x90..0x9F are PREFERRED; EXPLICIT e >= FZ_MAX_LIST is FZ_ELEMENT_SELF.
 *
 * Versioning: a change that makes some byte string decode to a different program is a new
 * FZ_FORMAT_VERSION; versions the decoder no longer reads are refused (false), never misread —
 * re-encode such files from their text form (corpus/encode.sh; fuzz/tools: trace, encode).
 */
#ifndef ALLOCLAB_FUZZ_INPUT_H
#define ALLOCLAB_FUZZ_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/fuzz/program.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FZ_FORMAT_MAGIC "ALFZ"
#define FZ_FORMAT_MAGIC_SIZE 4u
#define FZ_FORMAT_VERSION 4u
#define FZ_FORMAT_VERSION_4 4u /* the current version, by its number */
#define FZ_FORMAT_VERSION_3 3u /* still decoded (see above) */
#define FZ_FORMAT_VERSION_2 2u /* still decoded (see above) */
#define FZ_FORMAT_VERSION_1 1u /* still decoded (see above) */
#define FZ_FORMAT_HEADER_SIZE 5u
/* The faults byte's bit that selects the threaded GPU engine (version 3 on; see above). */
#define FZ_FAULTS_BYTE_THREADED_ENGINE 0x20u
/* The faults byte's bit that leaves the live devices to al_adapter_destroy (version 3 on). */
#define FZ_FAULTS_BYTE_ADAPTER_TEARDOWN 0x10u

/* ---- The data provider ------------------------------------------------------------------- */

/* A read cursor over borrowed bytes. Reading past the end yields zeros (and advances nothing),
 * as FuzzedDataProvider does. data may be NULL when size is 0. */
typedef struct fz_cursor {
  const uint8_t *data;
  size_t size;
  size_t pos;
} fz_cursor;

void fz_cursor_init(fz_cursor *c, const uint8_t *data, size_t size);
size_t fz_cursor_remaining(const fz_cursor *c);
uint8_t fz_consume_u8(fz_cursor *c);
uint16_t fz_consume_u16(fz_cursor *c); /* little-endian */
uint32_t fz_consume_u32(fz_cursor *c);
uint64_t fz_consume_u64(fz_cursor *c);
bool fz_consume_bool(fz_cursor *c); /* the low bit of one byte */
/* A value in 0 .. count-1: one byte modulo count for count <= 256, two bytes for <= 65536,
 * else four. count 0 or 1: returns 0 and reads nothing. */
uint32_t fz_consume_enum(fz_cursor *c, uint32_t count);
/* A LEB128 varint of at most 5 bytes, truncated to 32 bits. */
uint32_t fz_consume_varint32(fz_cursor *c);
/* Copies n bytes to out (zero-filled past the end); returns how many came from the input. */
size_t fz_consume_bytes(fz_cursor *c, void *out, size_t n);

/* ---- Programs ---------------------------------------------------------------------------- */

/*
 * fz_decode - decode any bytes into a valid program (see the format above).
 * Never fails on malformed input: truncated, random or hostile bytes give some program.
 * Returns false only when the input's header names an unsupported format version; *out is
 * then the empty program. data may be NULL when size is 0. Only the calls decoded (and the
 * faults) are written: entries of out->calls past call_count keep what they held.
 */
bool fz_decode(const uint8_t *data, size_t size, fz_program *out);

/*
 * fz_encode - write @p (which must be valid: fz_program_validate) in the current format.
 * Writes at most @cap bytes to @out (may be NULL with cap 0) and returns the number of bytes
 * the whole encoding needs: the output is complete only when the result is <= cap.
 * Returns 0 for an invalid program (a valid one needs at least the header).
 */
size_t fz_encode(const fz_program *p, uint8_t *out, size_t cap);

/* The most bytes fz_encode() can need for any valid program. */
#define FZ_ENCODE_MAX_SIZE (FZ_FORMAT_HEADER_SIZE + 1u + 4u * 15u + FZ_MAX_CALLS * (24u + 8u * (FZ_MAX_LIST + 1u)))

/*
 * fz_program_validate - whether @p is a valid, canonical program: counts within their limits,
 * ops/placements/commands/hostile bits in range, every used reference either a literal
 * (call = element = span = 0) or a result of an EARLIER call (literal = 0) with element
 * FZ_ELEMENT_SELF or < FZ_MAX_ELEMENTS, a reference in the first call a literal, a span only
 * on list entries naming an element (element + span < FZ_MAX_ELEMENTS), and every field the op
 * does not use (see the format table) zero. count: 0..FZ_MAX_ELEMENTS or
 * FZ_COUNT_OVER_MAXIMUM (ops with a count); flags <= 0xFF; hostile within FZ_HOSTILE_ALL;
 * align any value (creates); info only on create_device. Calls past call_count, list entries
 * past list_length and faults past fault_count are ignored (by fz_program_equal too).
 * On false, writes the first problem ("v4 (create_resource): ...") to @err (may be NULL).
 */
bool fz_program_validate(const fz_program *p, char *err, size_t cap);

/* Field-by-field equality of two programs (valid or not; struct padding is ignored). */
bool fz_program_equal(const fz_program *a, const fz_program *b);

/* Which optional fields an op uses (FZ_FIELD_* bits), for printers and the mutator. */
enum {
  FZ_FIELD_DEVICE = 0x1,
  FZ_FIELD_RESOURCE = 0x2,
  FZ_FIELD_FENCE = 0x4,
  FZ_FIELD_ALLOCATION = 0x8,
  FZ_FIELD_COUNT = 0x10,
  FZ_FIELD_SIZE = 0x20,
  FZ_FIELD_PLACEMENT = 0x40,
  FZ_FIELD_SHARED = 0x80,
  FZ_FIELD_FLAGS = 0x100,
  FZ_FIELD_COMMAND = 0x200,
  FZ_FIELD_LIST = 0x400,
  FZ_FIELD_ALIGN = 0x800, /* optional in the text form (0 when left out) */
  FZ_FIELD_INFO = 0x1000, /* optional in the text form (0 when left out); in the opcode byte */
  FZ_FIELD_DAMAGE = 0x2000, /* damage: the kind byte (text: kind=NAME) */
  FZ_FIELD_PICK = 0x4000,   /* damage: which target (text: pick=N) */
};
uint32_t fz_op_fields(fz_op op); /* 0 for an op out of range */

/* The edge values the format names in one byte (see above). */
extern const uint64_t fz_size_table[16];
extern const uint32_t fz_literal_table[16];
extern const uint16_t fz_count_table[14];
extern const uint16_t fz_span_table[13];

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_FUZZ_INPUT_H */
