/*
 * program.h — the vocabulary of alloclab's fuzz programs: a decoded fuzz input is a program, a
 * list of calls of the public API, each naming earlier results by reference.
 *
 * DOC: Overview
 * A program is what every fuzz target runs, what `trace` prints, what `encode` reads back, what
 * the custom mutator edits at the call level, and what the reference model (model.h) predicts
 * the outcome of. It is independent of any byte format (input.h decodes and encodes bytes).
 *
 * Results and references. Call k produces the value v<k>: for a device create, the device
 * handle; for a create of allocations or of a resource, the resource handle (0 for device-owned
 * allocations) and its allocations v<k>.a0 .. v<k>.a<n-1>; for a submit, a fence. An argument
 * names a handle by reference: (call, element) — element FZ_ELEMENT_SELF for the primary handle,
 * else the allocation index — so a program stays meaningful when calls before it are inserted
 * or removed (the mutator rewires references), and "stale" is just a reference to an object a
 * later call destroyed. An argument may instead be a literal 32-bit value (garbage, 0, or a
 * value of the wrong type), which is how hostile handles are written.
 *
 * Text form (trace / encode), one call per line, numbered by its result:
 *   v1 = create_device()
 *   v2 = create_resource(dev=v1, n=4, size=65536, placement=any, shared=1)
 *   v3 = create_allocations(dev=v1, n=1, size=4096, placement=any, align=65536)
 *   v4 = open_resource(dev=v1, resource=v2)
 *   v6 = destroy_allocations(dev=v1, list=[v2.a0, v2.a3, 0xdead0001], flags=0)
 *   v6 = submit(dev=v1, list=[v2.a1], command=fill)
 *   v7 = submit(dev=v1, list=[v2.a1, v2.a2], command=copy)
 *   v8 = destroy_allocations(dev=v1, list=[v2.a0..a3, v2.a1], flags=0, hostile=count_plus_one)
 * Statuses are printed after the call by trace: "... = STATUS_SUCCESS". align= and info= are
 * optional (0 when left out, and then not printed).
 *
 * Device info (format version 3 on). create_device(info=1) creates the device with
 * al_device_create_with_info(), asking the miniport for the device's limits (pInfo).
 *
 * Alignment (format version 3 on). The creates ask for each allocation's placement alignment in
 * bytes: 0 = the segment's page (DXGK_ALLOCATIONINFO.Alignment), else a power of two that the
 * miniport accepts (sim: at most SIM_ALLOCATION_ALIGNMENT_MAX, 64 MiB); any other value is
 * written too, and the miniport rejects it (STATUS_INVALID_PARAMETER). The port places each
 * allocation at a segment offset that is a multiple of its alignment.
 *
 * Engine (format version 3 on). A program runs on the deterministic GPU engine (completions only
 * when the port runs it: gpu_run, fence_wait) unless it says `options(engine=threaded)`
 * (fz_program.threaded_engine): then the adapter's GPU engine has a thread of its own and fences
 * signal on that thread while the program's calls run. How the executor keeps its verdicts
 * deterministic then: execute.h "Threaded engine".
 *
 * Teardown (format version 3 on). After the last call the executor destroys every device still
 * live itself, checking each status, and only then the adapter. With `options(teardown=adapter)`
 * (fz_program.adapter_teardown) it destroys the adapter at once: al_adapter_destroy must destroy
 * the live devices itself, as when a process exits with its devices open, and leave nothing in
 * the miniport (the executor compares the sim's totals with those before the program) or the
 * port (LeakSanitizer).
 *
 * Long lists. A create makes up to FZ_MAX_ELEMENTS (1024, the port's maximum per call)
 * allocations, but a list holds at most FZ_MAX_LIST entries: an entry may be a RANGE of one
 * result's elements, vK.aE..aF (fz_ref.span = F - E), which the executor expands in order, so
 * "every allocation of a 1024-allocation resource" is one entry and a program stays small. The
 * hostile list shapes are written with it: the same range twice (duplicates), a range one element
 * past its call's last allocation (off by one: that element is the value 0), and the count
 * passed to the port one above or below the expanded length (FZ_HOSTILE_COUNT_PLUS_ONE / _MINUS_ONE).
 *
 * Damage (format version 4 on). `damage(kind=NAME, pick=N)` tests the oracle itself: it breaks
 * one invariant of the live state (alloclab/testing.h, DOC: Damage), through the port's testing
 * hook (alloclab/damage.h, judged by al_adapter_check) or the sim's (a kind named sim_*, judged
 * by sim_miniport_check_hardware), and the walk must catch it with the kind's expected phrase
 * before the state is put back. The executor aborts when the walk misses it ("damage-missed")
 * or reports something else ("damage-misreported"); then the usual checks run on the restored
 * state. Its status in a trace: STATUS_SUCCESS (caught), STATUS_INVALID_HANDLE (nothing of the
 * kind's target is live; nothing was changed), STATUS_INVALID_PARAMETER (a kind number no layer
 * has, or a run that cannot damage safely: the threaded engine, a concurrent program, a miniport
 * other than the sim for sim kinds, a port without the hook). It creates and destroys nothing.
 */
#ifndef ALLOCLAB_FUZZ_PROGRAM_H
#define ALLOCLAB_FUZZ_PROGRAM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits that keep one input cheap: a program holds at most FZ_MAX_CALLS calls, a list at most
 * FZ_MAX_LIST entries (each one element or a range), a create at most FZ_MAX_ELEMENTS
 * allocations (the port's own maximum, AL_MAX_ALLOCATIONS_PER_CALL; one more is written
 * FZ_COUNT_OVER_MAXIMUM). Element indexes are 0 .. FZ_MAX_ELEMENTS - 1. */
#define FZ_MAX_CALLS 64

/* The status a report gives a program call that was not made (execute.h: fz_execute_concurrent
 * runs no gpu_run or fence_wait after its fork, and no call past FZ_CONCURRENT_MAX_CALLS): no
 * NTSTATUS the port returns (severity error, customer bit, facility 0xA1C). fz_print_program()
 * writes such a call with the comment "# not run" instead of a status. */
#define FZ_STATUS_NOT_RUN ((NTSTATUS)0xE0A1C001)
#define FZ_MAX_LIST 32
#define FZ_MAX_ELEMENTS 1024u
#define FZ_ELEMENT_SELF 0xFFFFu

typedef enum fz_op {
  FZ_OP_CREATE_DEVICE = 0,      /* v = create_device(info?) */
  FZ_OP_DESTROY_DEVICE = 1,     /* destroy_device(dev) */
  FZ_OP_CREATE_ALLOCATIONS = 2, /* v = create_allocations(dev, n, size, placement): device-owned */
  FZ_OP_CREATE_RESOURCE = 3,    /* v = create_resource(dev, n, size, placement, shared) */
  FZ_OP_ADD_TO_RESOURCE = 4,    /* v = add_to_resource(dev, resource, n, size, placement) */
  FZ_OP_OPEN_RESOURCE = 5,      /* open_resource(dev, resource) */
  FZ_OP_DESTROY_RESOURCE = 6,   /* destroy_resource(dev, resource, flags) */
  FZ_OP_DESTROY_ALLOCATIONS = 7,/* destroy_allocations(dev, list, flags) */
  FZ_OP_SUBMIT = 8,             /* v = submit(dev, list, command) : v is the fence */
  FZ_OP_GPU_RUN = 9,            /* gpu_run(count) */
  FZ_OP_FENCE_WAIT = 10,        /* fence_wait(fence) : fence = a submit's result */
  FZ_OP_QUERY = 11,             /* query(allocation) */
  FZ_OP_DAMAGE = 12,            /* damage(kind, pick): the walks' own test (see "Damage" above) */
  FZ_OP_COUNT
} fz_op;

/* The ops of format versions 1 to 3 (input.h), before damage. */
#define FZ_OP_COUNT_V3 12

typedef enum fz_ref_kind {
  FZ_REF_RESULT = 0,  /* v<call>.a<element>, or v<call> when element == FZ_ELEMENT_SELF */
  FZ_REF_LITERAL = 1, /* a raw 32-bit value */
} fz_ref_kind;

typedef struct fz_ref {
  fz_ref_kind kind;
  uint16_t call;    /* index of the call whose result is named (< the referring call) */
  uint16_t element; /* FZ_ELEMENT_SELF or an allocation index (< FZ_MAX_ELEMENTS) */
  uint32_t literal; /* FZ_REF_LITERAL */
  /* List entries only: 0 names one element; n > 0 names the n + 1 elements element ..
   * element + n of the same call (a RANGE, "vK.aE..aF"; element + n < FZ_MAX_ELEMENTS). */
  uint16_t span;
} fz_ref;

typedef enum fz_placement {
  FZ_PLACEMENT_ANY = 0,
  FZ_PLACEMENT_MEMORY_ONLY = 1,
  FZ_PLACEMENT_APERTURE_ONLY = 2,
} fz_placement;

typedef enum fz_command {
  FZ_COMMAND_NOP = 0,
  FZ_COMMAND_FILL = 1,  /* fill each listed allocation's first bytes with a pattern */
  FZ_COMMAND_CHECK = 2, /* check a pattern an earlier FILL wrote (the model knows which) */
  /* copy list[0]'s first bytes onto list[1]'s (min of both sizes and FZ_MODEL_PATTERN_BYTES,
   * offset 0 to offset 0); with a one-entry list, list[0] onto itself (overlapping ranges: the
   * sim rejects the stream). Format version 3 on. */
  FZ_COMMAND_COPY = 3,
} fz_command;

/* Count encodings beyond a plain 0..FZ_MAX_ELEMENTS value (hostile counts). */
#define FZ_COUNT_OVER_MAXIMUM 0xFFFFu /* AL_MAX_ALLOCATIONS_PER_CALL + 1 */

/* Argument-shape faults a call may carry, to reach the port's validation paths. */
enum {
  FZ_HOSTILE_NULL_ARGS = 0x1,      /* pass NULL for the args struct */
  FZ_HOSTILE_NULL_LIST = 0x2,      /* a NULL list with a non-zero count */
  FZ_HOSTILE_RESERVED_FLAGS = 0x4, /* set a reserved flag bit */
  FZ_HOSTILE_BOTH_FORMS = 0x8,     /* destroy with a resource and a list */
  FZ_HOSTILE_PRIVATE_DATA = 0x10,  /* corrupt / oversize private data */
  /* destroy_allocations, submit, destroy_resource with both_forms: the count passed to the
   * port is the expanded list length + 1 (the entry past the list is 0) or - 1 (0 - 1 wraps to
   * 0xffffffff: a count far above the maximum). */
  FZ_HOSTILE_COUNT_PLUS_ONE = 0x20,
  FZ_HOSTILE_COUNT_MINUS_ONE = 0x40,
};
#define FZ_HOSTILE_ALL 0x7Fu

typedef struct fz_call {
  fz_op op;
  uint32_t hostile; /* FZ_HOSTILE_* */
  fz_ref device;
  fz_ref resource;  /* ADD_TO_RESOURCE, OPEN_RESOURCE, DESTROY_RESOURCE */
  fz_ref fence;     /* FENCE_WAIT: a submit's result */
  fz_ref allocation;/* QUERY */
  uint32_t count;   /* CREATE_*, ADD_TO_RESOURCE: allocations; GPU_RUN: submissions:
                       0..FZ_MAX_ELEMENTS or FZ_COUNT_OVER_MAXIMUM */
  uint64_t size;    /* bytes per allocation */
  fz_placement placement;
  uint32_t align;   /* CREATE_*, ADD_TO_RESOURCE: bytes, 0 = the segment's page (see above) */
  bool shared;      /* CREATE_RESOURCE */
  bool info;        /* CREATE_DEVICE: ask for the device info (al_device_create_with_info) */
  uint32_t flags;   /* DESTROY_*: AL_DESTROY_* bits */
  fz_command command;
  uint32_t list_length;
  fz_ref list[FZ_MAX_LIST]; /* DESTROY_ALLOCATIONS, SUBMIT; entries may be ranges */
  uint8_t damage;           /* DAMAGE: the kind byte (FZ_DAMAGE_SIM: a sim kind; see "Damage") */
  uint8_t pick;             /* DAMAGE: which of the kind's targets */
} fz_call;

/* The damage kind byte: bit 7 set names a kind of the sim miniport (sim_testing_damage_kind),
 * clear a kind of the port (al_testing_damage_kind); the low 7 bits are the kind's number. */
#define FZ_DAMAGE_SIM 0x80u
#define FZ_DAMAGE_KIND_MASK 0x7Fu

typedef struct fz_program {
  uint32_t call_count;
  fz_call calls[FZ_MAX_CALLS];
  /* Which backend and miniport faults the input asks for (fault_injection target): point ids
   * of alloclab/hw/fault_injection.h, the n-th call to fail, and a repeat count. A point with
   * FZ_FAULT_AT_BRING_UP set is armed before the adapter is brought up (below). */
  uint32_t fault_count;
  struct {
    uint32_t point;
    uint32_t nth;
    uint32_t repeat;
  } faults[4];
  /* Run on the threaded GPU engine (al_hardware_request.threaded_engine), not the
   * deterministic one. Format version 3 on: bit 5 of the faults byte (input.h). */
  bool threaded_engine;
  /* End the program with al_adapter_destroy alone, the devices still live left to it (program.h
   * "Teardown"). Format version 3 on: bit 4 of the faults byte (input.h). */
  bool adapter_teardown;
} fz_program;

/*
 * FZ_FAULT_AT_BRING_UP - a flag bit of a fault's `point` (text: `at=bring_up`): the fault is
 * armed before al_adapter_create instead of after it, so its nth counts from the first call of
 * the point during bring-up (DriverEntry, DxgkDdiAddDevice, DxgkDdiStartDevice, the segment
 * query: the sim's GPU segments, MMU and engine), and a window that bring-up does not use up
 * runs on into the program. The point id is `point & ~FZ_FAULT_AT_BRING_UP`; ids stay below
 * this bit (a static assertion in execute.c). Without the flag a fault is armed after bring-up
 * and counts from the program's first call. Carried inside `point` so the byte format is
 * unchanged (input.h: the varint simply holds the bit). The oracle's prediction (execute.h):
 * bring-up succeeds and the program runs as usual, or it fails with STATUS_NO_MEMORY because
 * an armed failure was injected, leaving nothing behind, and the program ends there.
 */
#define FZ_FAULT_AT_BRING_UP 0x80u

/* The op's name in the text form ("create_resource"); NULL for an op out of range. */
const char *fz_op_name(fz_op op);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_FUZZ_PROGRAM_H */
