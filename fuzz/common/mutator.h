/*
 * mutator.h — a call-level mutator for fuzz programs, and its libFuzzer glue.
 *
 * DOC: Overview
 * libFuzzer's byte mutations of an encoded program mostly shift references and fields around;
 * fz_mutate() edits the program instead: it decodes the input (input.h), applies one to three
 * edits, keeps every reference pointing at an earlier call (renumbering the calls after an
 * insertion, deletion or move, rewiring the references to a deleted call), and re-encodes:
 *  - insert a generated call (its references mostly name live objects of the right type, as
 *    the tracker of track.h sees them at that point), delete, duplicate, move or swap calls;
 *  - rewire one handle argument or list entry to another live object, a destroyed (stale) one,
 *    any earlier result (wrong type, foreign device), or a literal;
 *  - tweak a count, size, placement, shared, flags, command, hostile bit or the op itself;
 *    add, drop or duplicate list entries; add, drop or change fault requests; switch the
 *    program's GPU engine (deterministic <-> threaded);
 *  - change a numeric value (count, size, flags, literal, fault numbers) with @mutate_bytes
 *    (libFuzzer's LLVMFuzzerMutate, which brings its dictionary and compare tables) or, when
 *    NULL, with a built-in bit/arith tweak.
 * The result always decodes to a valid program different from the input's (except when
 * @max_size cannot hold any changed program). Given the same input and seed (and a
 * deterministic @mutate_bytes) it is the same.
 */
#ifndef ALLOCLAB_FUZZ_COMMON_MUTATOR_H
#define ALLOCLAB_FUZZ_COMMON_MUTATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/fuzz/program.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef size_t (*fz_mutate_bytes_fn)(uint8_t *data, size_t size, size_t max_size);

/*
 * fz_mutate - mutate the input data[0..size) in place at the call level (see above).
 * @data has room for max_size bytes. Returns the new size (<= max_size). An input whose
 * header names an unsupported version is treated as the empty program.
 */
size_t fz_mutate(uint8_t *data, size_t size, size_t max_size, unsigned seed,
                 fz_mutate_bytes_fn mutate_bytes);

/*
 * fz_mutate_program - the same on a decoded program: applies one to three edits to the valid
 * program *p with a random state *rng (any value; advanced). Returns true when *p changed
 * (it stays valid either way).
 */
bool fz_mutate_program(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mutate_bytes);

/*
 * fz_program_insert_call - insert @call as call @pos (0..call_count) of the valid program *p;
 * references of the calls after it that name calls >= pos are renumbered (+1). @call's own
 * references must name calls < pos. False (nothing changed) when full or pos is out of range.
 */
bool fz_program_insert_call(fz_program *p, uint32_t pos, const fz_call *call);

/*
 * fz_program_delete_call - delete call @pos of the valid program *p. References to later
 * calls are renumbered (-1); references to the deleted call are rewired to the closest earlier
 * call with the same kind of result (a create_device for a device; a create of allocations,
 * of a resource or an add_to_resource for allocations; a submit for a fence), else to the
 * literal 0. False when pos is out of range.
 */
bool fz_program_delete_call(fz_program *p, uint32_t pos);

/*
 * fz_libfuzzer_custom_mutator - what a fuzz target's LLVMFuzzerCustomMutator does (defined in
 * libfuzzer_mutator.c; link //fuzz/common:libfuzzer_mutator to get both): one mutation in four
 * is libFuzzer's own byte-level LLVMFuzzerMutate (so the decoder still sees raw bytes), the
 * others fz_mutate().
 */
size_t fz_libfuzzer_custom_mutator(uint8_t *data, size_t size, size_t max_size, unsigned seed);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_FUZZ_COMMON_MUTATOR_H */
