/*
 * fault_injection.h — the one fault injector of an alloclab adapter, shared by the simulated GPU
 * (hw/gpu) and the miniports built on it (SQLite's test_malloc.c style).
 *
 * DOC: Overview
 * Code that can fail for a reason a test cannot otherwise provoke (a host allocation, backing
 * memory for a segment, a surprise removal) asks fault_injector_should_fail() at a named fault
 * point just before doing the real work, and takes its failure path when told to. A test or a
 * fuzzer arms a point with fault_injector_arm(): "let nth - 1 calls succeed, fail the nth, and
 * then keep failing repeat - 1 more calls". The classic out-of-memory loop is
 *
 *     for (uint32_t n = 1;; n++) {
 *       uint64_t before = fault_injector_failures(&inj, FAULT_PAGE_TABLE_PAGE);
 *       fault_injector_arm(&inj, FAULT_PAGE_TABLE_PAGE, n, 0);
 *       NTSTATUS st = operation_under_test();
 *       bool injected = fault_injector_failures(&inj, FAULT_PAGE_TABLE_PAGE) != before;
 *       fault_injector_disarm_all(&inj);
 *       check_nothing_leaked_and_state_unchanged_if(!NT_SUCCESS(st));
 *       if (!injected) break;               // the operation made fewer than n calls: done
 *     }
 *
 * run once with repeat 0 (fail a single call, the later ones succeed: the "benign" retry path)
 * and once with repeat UINT32_MAX (every call from the nth on fails).
 *
 * Ownership: the fault_injector struct belongs to the caller (embed it, one per adapter); it owns
 * nothing and needs no teardown. A zeroed struct (FAULT_INJECTOR_INIT or fault_injector_init())
 * is disarmed with all counters at 0. Every function accepts a NULL injector: should_fail then
 * always answers false, so production code passes NULL and pays one branch.
 *
 * Threading: every function may be called from any thread at any time. Counting is exact under
 * concurrency: each call of fault_injector_should_fail() on a point takes a unique 1-based call
 * number (an atomic increment), and the call fails exactly when its number lies in the armed
 * window, so N threads together see exactly the armed number of failures. Arming is published
 * with a sequence lock; a call racing with fault_injector_arm() on the same point sees either
 * the old window or the new one (which of the racing calls counts as "from now" is unspecified).
 * The fields are plain integers accessed only with __atomic builtins, so the header is also
 * valid C++ (no _Atomic); never touch them directly.
 *
 * Cost: fault_injector_should_fail() is one atomic increment plus two relaxed loads between two
 * loads of the sequence word (no lock, no allocation); a failing call also bumps a counter and
 * calls fault_injector_on_failure() and the observer. Under libFuzzer the injector is not coverage-instrumented
 * (fault_injection.c says why): its callers branch on its answers.
 *
 * Glossary: point = a named place that can be made to fail (enum fault_point); call number = the
 * 1-based count of should_fail calls on that point since init; window = the call numbers
 * [first, last] that fail; nth = position of the first failing call counted from the arm call.
 */
#ifndef ALLOCLAB_HW_FAULT_INJECTION_H
#define ALLOCLAB_HW_FAULT_INJECTION_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * enum fault_point - the fault points. The numeric value is the point's stable id, the one
 * fuzzer inputs and corpus files use: it is never changed nor reused. A retired point keeps its
 * number (its slot stays, named "retired_<id>") and a new point takes the next free number,
 * just before FAULT_POINT_COUNT. Names (fault_injector_point_name()) are stable too.
 */
enum fault_point {
  /* "segment_space": host backing for a segment: a memory segment's region at creation and a
   * committed range of it, one aperture page at a time on commit (hw/gpu gpu_memory). */
  FAULT_SEGMENT_SPACE = 0,
  /* "page_table_page": one page-table page of a GPU address space (hw/gpu gpu_mmu). */
  FAULT_PAGE_TABLE_PAGE = 1,
  /* "driver_object": a miniport's host allocation of a driver object (device, allocation,
   * resource, binding). */
  FAULT_DRIVER_OBJECT = 2,
  /* "private_data_buffer": a miniport's host copy of DDI private driver data. */
  FAULT_PRIVATE_DATA_BUFFER = 3,
  /* "device_removed": a DDI finds the device removed part-way through the call. */
  FAULT_DEVICE_REMOVED = 4,
  /* "host_allocation": any host allocation (malloc/calloc/realloc) of the port, the sim
   * miniport or the simulated GPU. hw/fault does not ask it itself: those allocations go through
   * alloclab/host_alloc.h, whose process-wide hook (alloclab/testing.h) a test or fuzzer bridges
   * to this point of its adapter's injector, so the point counts and fails like the others. */
  FAULT_HOST_ALLOCATION = 5,
  /*
   * Wrong answers (ids 6-17): a miniport that asks one of these points, when told to fail,
   * does NOT fail its DDI: it reports success with one broken output, the misbehaviour the
   * port's checks of the miniport's answers (core/src/ddi.c) must catch. The miniport first
   * takes back what the broken output no longer names (an object behind a NULL handle), so what
   * it still holds is exactly what its answer names. fault_point_is_wrong_answer() tells them
   * apart. A port running its verifier aborts on them by design (a broken miniport rule).
   */
  /* "create_null_allocation": DxgkDdiCreateAllocation answers a NULL hAllocation for its last
   * allocation. */
  FAULT_CREATE_NULL_ALLOCATION = 6,
  /* "create_unaligned_size": DxgkDdiCreateAllocation answers a Size that is not a multiple of
   * 4096 for its last allocation. */
  FAULT_CREATE_UNALIGNED_SIZE = 7,
  /* "create_bad_alignment": DxgkDdiCreateAllocation answers an Alignment that is not a power
   * of two for its last allocation. */
  FAULT_CREATE_BAD_ALIGNMENT = 8,
  /* "create_undescribed_segment": DxgkDdiCreateAllocation answers a SupportedWriteSegmentSet
   * naming a segment it never described, for its last allocation. */
  FAULT_CREATE_UNDESCRIBED_SEGMENT = 9,
  /* "open_null_binding": DxgkDdiOpenAllocation answers a NULL hDeviceSpecificAllocation for its
   * last allocation. */
  FAULT_OPEN_NULL_BINDING = 10,
  /* "create_device_null": DxgkDdiCreateDevice answers a NULL hDevice. */
  FAULT_CREATE_DEVICE_NULL = 11,
  /* More wrong answers of DxgkDdiCreateAllocation, each for its last allocation (ids 12-17,
   * one per remaining rule of its outputs): */
  /* "create_short_pitch": a PitchAlignedSize that is neither 0 nor >= Size (Size / 2). */
  FAULT_CREATE_SHORT_PITCH = 12,
  /* "create_eviction_not_aperture": an EvictionSegmentSet naming a segment that is not an
   * aperture segment (the memory segment). */
  FAULT_CREATE_EVICTION_NOT_APERTURE = 13,
  /* "create_zero_priority": AllocationPriority 0. */
  FAULT_CREATE_ZERO_PRIORITY = 14,
  /* "create_cached_not_cpu_visible": Flags.Cached set and Flags.CpuVisible clear. */
  FAULT_CREATE_CACHED_NOT_CPU_VISIBLE = 15,
  /* "create_preferred_reserved": PreferredSegment.Reserved not 0. */
  FAULT_CREATE_PREFERRED_RESERVED = 16,
  /* "create_preferred_unsupported": a PreferredSegment.SegmentId0 outside
   * SupportedWriteSegmentSet (a described segment outside it when there is one, else one the
   * miniport never described). */
  FAULT_CREATE_PREFERRED_UNSUPPORTED = 17,
  /* Number of ids (array size); not a point. */
  FAULT_POINT_COUNT = 18
};

/* fault_injector_arm() @repeat value: fail every call from the nth on, until disarmed. */
#define FAULT_REPEAT_FOREVER UINT32_MAX

/*
 * struct fault_injector_point_state - one point's state; private to fault_injection.c.
 * @calls: should_fail calls so far (the last call number handed out).
 * @failures: calls that were told to fail.
 * @first / @last: the armed window of call numbers, inclusive; @first == 0: disarmed.
 *	Written only under @fault_injector.lock and published through @fault_injector.seq.
 */
struct fault_injector_point_state {
  uint64_t calls;
  uint64_t failures;
  uint64_t first;
  uint64_t last;
};

/*
 * struct fault_injector - one adapter's fault injector. Visible so callers can embed it
 * (608 bytes); only fault_injector_*() may touch the fields.
 * @seq: sequence word of the windows: odd while an arm/disarm is writing them.
 * @lock: spin lock serialising writers (arm, disarm); 0 = free.
 * @observer / @observer_ctx: fault_injector_observe()'s callback; NULL: none.
 */
typedef void (*fault_observer)(void *ctx, enum fault_point point);

typedef struct fault_injector {
  uint64_t seq;
  uint32_t lock;
  uint32_t reserved;
  struct fault_injector_point_state points[FAULT_POINT_COUNT];
  fault_observer observer;
  void *observer_ctx;
} fault_injector;

/* A disarmed injector with every counter at 0. */
#define FAULT_INJECTOR_INIT {0}

/**
 * fault_injector_init - disarm every point and zero every counter.
 * @inj: the injector (NULL: nothing happens).
 *
 * Not atomic with respect to concurrent calls: use it before the injector is shared.
 */
void fault_injector_init(fault_injector *inj);

/**
 * fault_injector_arm - make the @nth call from now of @point fail, and maybe the ones after it.
 * @inj: the injector.
 * @point: the point to arm.
 * @nth: 1-based: 1 fails the very next call, 2 lets one call succeed first, and so on.
 * @repeat: how many calls fail in a row from the nth: 0 or 1 = that one call only; N = the nth
 *	and the N - 1 calls after it; FAULT_REPEAT_FOREVER = every call from the nth on.
 *
 * Replaces any window armed on @point before. Counters are not reset. O(1).
 *
 * Returns: true when armed; false (nothing changed) when @inj is NULL, @point is not a valid
 * point or @nth is 0.
 */
bool fault_injector_arm(fault_injector *inj, enum fault_point point, uint32_t nth,
                        uint32_t repeat);

/**
 * fault_injector_observe - have @observer(@ctx, point) called for every injected failure.
 * @inj: the injector (NULL: nothing happens).
 * @observer: called on the thread whose fault_injector_should_fail() call fails, after the
 *	failure was counted and before that call returns; NULL removes it. It must not call back
 *	into @inj.
 * @ctx: handed to @observer; the injector does not own it.
 *
 * Who failed, when counters cannot tell: a scheduler that interleaves several logical calls
 * learns which of them an injected failure belongs to (the `schedules` fuzz target). Not
 * atomic with respect to concurrent calls, like fault_injector_init(): set it before the
 * injector is shared. fault_injector_init() removes it.
 */
void fault_injector_observe(fault_injector *inj, fault_observer observer, void *ctx);

/**
 * fault_injector_disarm - cancel the window armed on @point (no-op when none or @inj is NULL).
 */
void fault_injector_disarm(fault_injector *inj, enum fault_point point);

/**
 * fault_injector_disarm_all - cancel every armed window; counters are kept. O(points).
 */
void fault_injector_disarm_all(fault_injector *inj);

/**
 * fault_injector_should_fail - ask whether this call at @point must fail.
 * @inj: the adapter's injector, or NULL (never fails; nothing is counted).
 * @point: the point being passed. An invalid point never fails and is not counted.
 *
 * Counts the call; a failing call is counted in the failures too and reported to
 * fault_injector_on_failure() and to the observer, if any (fault_injector_observe()). O(1),
 * lock-free.
 *
 * Returns: true when the caller must take its failure path.
 */
bool fault_injector_should_fail(fault_injector *inj, enum fault_point point);

/**
 * fault_injector_armed - whether @point still has failures ahead of it.
 *
 * Returns: true when a window is armed and its last call number has not been reached yet.
 */
bool fault_injector_armed(const fault_injector *inj, enum fault_point point);

/* Calls of fault_injector_should_fail() on @point since init (0 for NULL / invalid). */
uint64_t fault_injector_calls(const fault_injector *inj, enum fault_point point);
/* Calls of @point that were told to fail since init (0 for NULL / invalid). */
uint64_t fault_injector_failures(const fault_injector *inj, enum fault_point point);

/**
 * fault_injector_on_failure - called once for every injected failure, after it was counted.
 * @point: the point that fails.
 *
 * Does nothing. It exists as a stable, never-inlined symbol to break on
 * (`break fault_injector_on_failure` in gdb), like SQLite's sqlite3Fault breakpoint.
 */
__attribute__((noinline)) void fault_injector_on_failure(enum fault_point point);

/**
 * fault_injector_point_name - the stable name of @point ("segment_space", ...).
 *
 * Returns: a static string, or NULL when @point is not a valid point.
 */
const char *fault_injector_point_name(enum fault_point point);

/**
 * fault_injector_point_from_name - parse a point name (command lines, corpus files).
 * @name: the exact name, case-sensitive ("page_table_page"); NULL is refused.
 * @out_point: where the point goes on success; not written on failure.
 *
 * Returns: true when @name names a point; false for an unknown name (the caller reports it).
 */
bool fault_injector_point_from_name(const char *name, enum fault_point *out_point);

/**
 * fault_injector_point_from_id - map a stable numeric id (a fuzzer input byte) to its point.
 *
 * Returns: true and writes @out_point when @id < FAULT_POINT_COUNT names a live point; false
 * otherwise (@out_point not written).
 */
bool fault_injector_point_from_id(uint32_t id, enum fault_point *out_point);

/**
 * fault_point_is_wrong_answer - whether @point is a wrong-answer point (ids 6-17 above): the
 * miniport answers success with a broken output instead of failing.
 *
 * Returns: false for the failure points and for an invalid @point.
 */
bool fault_point_is_wrong_answer(enum fault_point point);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_HW_FAULT_INJECTION_H */
