/*
 * text.h — the text form of fuzz programs (program.h), for `trace`, `encode`, regression files
 * and messages of the executor.
 *
 * DOC: Syntax
 * One statement a line; blank lines and `#` comments (to the end of the line) are ignored.
 *
 *   options(engine=threaded)                        the program's options (at most once; any
 *                                                   line): engine=threaded | deterministic
 *                                                   (the default; program.h "Engine")
 *   fault(point=driver_object, nth=2, repeat=1)     arm a fault (at most 4; any line)
 *   fault(point=host_allocation, nth=3, repeat=0, at=bring_up)   ... armed before bring-up
 *   v1 = create_device()
 *   v2 = create_resource(dev=v1, n=4, size=65536, placement=any, shared=1)
 *   v3 = open_resource(dev=v1, resource=v2)
 *   v4 = destroy_allocations(dev=v1, list=[v2.a0, v2.a3, 0xdead0001], flags=0)
 *   v5 = submit(dev=v1, list=[v2.a1], command=fill) = STATUS_SUCCESS
 *
 * A call line is `vN = op(args)`; N must be the call's number (1, 2, 3, ... in order); the
 * `vN =` prefix may be left out. A trailing `= STATUS_...` (what trace prints) is ignored.
 * Arguments are `key=value` in any order; every argument the op uses must be given once,
 * except hostile, which is optional:
 *   create_device()                         destroy_device(dev)
 *   create_allocations(dev, n, size, placement)
 *   create_resource(dev, n, size, placement, shared)
 *   add_to_resource(dev, resource, n, size, placement)
 *   open_resource(dev, resource)            destroy_resource(dev, resource, flags)
 *   destroy_allocations(dev, list, flags)   submit(dev, list, command)
 *   gpu_run(n)                              fence_wait(fence)    query(allocation)
 * Values:
 *   references (dev, resource, fence, allocation, list entries): vK (the result of call K),
 *     vK.aE (allocation E of call K; E < 1024), or a number (a literal 32-bit handle value);
 *     K must be an earlier call. A list entry may be a range vK.aE..aF (E < F < 1024): the
 *     allocations E to F of call K, in order
 *   n: 0..1024 or over_max (FZ_COUNT_OVER_MAXIMUM)   size: a 64-bit number
 *   placement: any | memory_only | aperture_only      shared: 0 | 1
 *   flags: a number <= 0xff, or names joined by | (assume_not_in_use, synchronous)
 *   command: nop | fill | check                       list: [ref, ref, ...] (at most 32)
 *   hostile: names joined by | (null_args, null_list, reserved_flags, both_forms,
 *     private_data, count_plus_one, count_minus_one), or a number
 *   fault point: a fault point name (alloclab/hw/fault_injection.h) or a number; nth: a
 *     number; repeat: a number or forever; at (optional): program (the default: armed after
 *     bring-up) or bring_up (armed before it: program.h FZ_FAULT_AT_BRING_UP; a named point
 *     only, printed last); a numeric point may carry the flag bit itself
 * Numbers are decimal or 0x-prefixed hexadecimal.
 *
 * fz_print_program() writes exactly this form (options first, only when not the default; then
 * faults, canonical argument order) and
 * fz_parse_program(fz_print_program(p)) == p for every valid program.
 */
#ifndef ALLOCLAB_FUZZ_COMMON_TEXT_H
#define ALLOCLAB_FUZZ_COMMON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "alloclab/fuzz/program.h"
#include "alloclab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * fz_print_program - write @p to @out, one line per fault and per call. @statuses, when not
 * NULL, holds p->call_count statuses: each call line then ends with " = <status name>".
 */
void fz_print_program(FILE *out, const fz_program *p, const NTSTATUS *statuses);

/* The text of call @index of @p ("v3 = open_resource(dev=v1, resource=v2)"), without status
 * or newline, into @buf (NUL-terminated, cut to @cap). Returns the length of the whole text,
 * as snprintf does. */
size_t fz_format_call(char *buf, size_t cap, const fz_program *p, uint32_t index);

/* The text of one reference ("v2", "v2.a3", "0xdead0001"); returns as snprintf. */
size_t fz_format_ref(char *buf, size_t cap, const fz_ref *ref);

/*
 * fz_parse_program - parse the text form (NUL-terminated) into *out.
 * Returns true with a valid program; false with "line N: <what is wrong>" in @err (cut to
 * @cap; may be NULL), *out then holding the calls parsed before the bad line. As fz_decode(),
 * it writes only the calls it parses: entries past call_count keep what they held.
 */
bool fz_parse_program(const char *text, fz_program *out, char *err, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_FUZZ_COMMON_TEXT_H */
