/*
 * model.h — the reference model of alloclab's fuzz oracle: a small, obviously correct shadow of
 * what the port (core/, alloclab.h) must hold after every call of a fuzz program.
 *
 * DOC: Overview
 * The model is a second implementation written from the contract (../shared/wddm-contract.md)
 * and the API documentation (alloclab/alloclab.h), never from core's code: plain arrays of
 * devices, resources and allocations with alive flags, owners, holders (a bit set of devices),
 * sealed/shared flags, and per allocation its last fence and the last pattern the GPU was asked
 * to write. There is no handle table and no segment heap: handle values come from the port and
 * the model only checks what the documentation promises about them (non-zero, unique, never
 * repeated within a program, invalid as soon as their object is gone).
 *
 * Use, per call: fz_model_predict() says which statuses the port may return (a set, see
 * fz_status_set) and why; the caller makes the call; fz_model_commit() checks the outputs
 * (handles, fences, query results) and applies the effects of the status the port returned
 * (nothing for a failure: a failed call changes nothing); the rules it holds the outputs to
 * are fz_model_output_rules_for()'s, given as data for tools that write them out (emit_c).
 * fz_model_expected() then gives the live counts the port's statistics must show, and
 * fz_model_check_stats() compares them.
 *
 * What is exact and what is a set:
 *  - Validation is exact: each documented error condition that holds adds its status; when
 *    several hold, the documentation does not order the checks, so the set is their union
 *    (e.g. a stale device and a count of 0: {INVALID_HANDLE, INVALID_PARAMETER}). With no error
 *    condition the prediction is exactly STATUS_SUCCESS, except:
 *  - Video memory: a create whose placement the model cannot prove (from a worst-case
 *    accounting, fz_model_config) may also return STATUS_NO_VIDEO_MEMORY; once that happened
 *    in a program, a submit (which pages evicted allocations in) may too. A size above every
 *    allowed segment gives {INVALID_PARAMETER (miniport), NO_VIDEO_MEMORY (port)}.
 *  - Fault injection: when the caller reports that an injected failure happened during the call,
 *    the creating calls may also return STATUS_NO_MEMORY, STATUS_DEVICE_REMOVED or
 *    STATUS_NO_VIDEO_MEMORY (fz_prediction.allowed_if_faulted), and destroy_allocations and
 *    destroy_resource STATUS_NO_MEMORY (an injected host-allocation failure before they change
 *    anything; a failed call must still change nothing). destroy_device, gpu_run, fence_wait and
 *    query must not fail for an injected fault. Once the adapter is removed,
 *    every creating call predicts STATUS_DEVICE_REMOVED; destroys still work.
 *  - Wrong answers: when the caller reports that the miniport answered a DDI wrongly during the
 *    call (a wrong-answer fault point, fault_point_is_wrong_answer(), fired), the call must fail
 *    with STATUS_GRAPHICS_DRIVER_MISMATCH, changing nothing, or with what an injected failure
 *    allows (fz_prediction.allowed_if_wrong_answer); never succeed. Only the creating calls
 *    reach a DDI that can answer wrongly.
 *  - Alignment (DXGK_ALLOCATIONINFO.Alignment: 0 or a power of two): a create asking for
 *    another value is INVALID_PARAMETER (the miniport cannot describe it); one the miniport
 *    cannot express either (private_data_ok false: sim, above 64 MiB) too. A query of an
 *    allocation in a segment must show an offset that is a multiple of its alignment. Video
 *    memory is provable only with room for the worst-case padding (the alignment) as well.
 *  - Handle validity, live counts (devices, resources, allocations), the submitted fence, a
 *    query's resource / owner / last fence are exact. Bounded: the completed fence; deferred
 *    allocations (a deferred destroy may be released at any call once its fence signalled; it
 *    must be released by gpu_run / fence_wait; fz_model_config.threaded_engine: those due by
 *    a fence seen signalled before the call or waited for); open bindings: a binding closed while GPU work
 *    was queued may stay open (mapped) until a fence that was queued then, and must stay open
 *    while queued work of its own device uses it (the VA must not be unmapped under the GPU);
 *    a destroyed device has no binding left.
 *
 * Calling convention (shared with execute.c): the model sees what the port sees. Handles are the
 * 32-bit values passed to the port; hostile bits (FZ_HOSTILE_*) mean, per op:
 *  - NULL_ARGS: create_device: out_device NULL; create_*, add_to_resource, destroy_*, submit:
 *    args NULL; query: out_info NULL (all STATUS_INVALID_PARAMETER); gpu_run: out_completed NULL
 *    (allowed); ignored by destroy_device, open_resource, fence_wait.
 *  - NULL_LIST: create_*, add_to_resource: allocation descriptors NULL; destroy_allocations and
 *    submit: the handle list NULL with its count (INVALID_PARAMETER when count != 0).
 *  - RESERVED_FLAGS: create_*, add_to_resource, destroy_*: FZ_RESERVED_FLAG set in flags;
 *    submit: out_fence NULL (INVALID_PARAMETER).
 *  - BOTH_FORMS: destroy_resource also passes the call's list (count >= 1); destroy_allocations
 *    also passes the call's resource (INVALID_PARAMETER).
 *  - PRIVATE_DATA: create_*, add_to_resource: private data too large, or NULL with a size, or
 *    (sim miniport) corrupt; submit: a command stream too large, or (sim) malformed
 *    (INVALID_PARAMETER).
 * Commands: submit with command=copy and a one-entry list copies list[0] onto itself; a miniport
 * that validates command streams (miniport_validates_private_data: the sim) refuses the
 * overlapping ranges with INVALID_PARAMETER, after the port's checks and paging (as a malformed
 * stream); a successful copy gives list[1] list[0]'s pattern when it covered all a CHECK reads
 * (min(size, FZ_MODEL_PATTERN_BYTES) bytes), else leaves list[1] with no pattern to check.
 * Counts are as passed: 0..AL_MAX_ALLOCATIONS_PER_CALL, or above it (FZ_MODEL_COUNT_OVER, or any
 * larger value a hostile count passes: the port must then read no list at all).
 * A resource value of 0 means "no resource", as in D3DKMT: add_to_resource with 0 is a plain
 * create of device-owned allocations; a destroy with 0 is the list form (so destroy_resource(0)
 * is "neither form", and both_forms with 0 is a plain list destroy).
 *
 * Deferred teardown, as the model reads the contract: a destroyed allocation must keep its
 * memory while its own last fence is queued (unless ASSUME_NOT_IN_USE); the port may keep it
 * until the latest fence of the group torn down with it (one DxgkDdiDestroyAllocation: a whole
 * resource, a list) and of earlier teardowns of the same resource that are still waiting
 * (teardowns of a resource keep their order, closes before destroys); gpu_run and fence_wait
 * must release what is due. A destroyed device has no binding and waited for its own work.
 *
 * Ownership: fz_model_create() returns a model the caller must fz_model_destroy(); it allocates
 * nothing else. fz_model_reset() starts a new program in O(1) (no memset of the tables).
 * Threading: a model is used by one thread at a time.
 *
 * Glossary: holder = a device that created or opened a resource and has not let it go; sealed =
 * a resource that was opened on another device (nothing may be added to it any more); deferred =
 * destroyed, handle gone, memory kept until its last fence signals; possible segment = a segment
 * an allocation may occupy now (its supported set, or its eviction target).
 */
#ifndef ALLOCLAB_FUZZ_MODEL_H
#define ALLOCLAB_FUZZ_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/alloclab.h"
#include "alloclab/fuzz/program.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Capacity of one model: every object a program of FZ_MAX_CALLS calls can create. */
#define FZ_MODEL_MAX_DEVICES FZ_MAX_CALLS
#define FZ_MODEL_MAX_RESOURCES FZ_MAX_CALLS
#define FZ_MODEL_MAX_ALLOCATIONS (FZ_MAX_CALLS * FZ_MAX_ELEMENTS)
/* The count passed for FZ_COUNT_OVER_MAXIMUM (and any count above FZ_MAX_ELEMENTS). */
#define FZ_MODEL_COUNT_OVER (AL_MAX_ALLOCATIONS_PER_CALL + 1u)
/* The reserved flag bit set by FZ_HOSTILE_RESERVED_FLAGS. */
#define FZ_RESERVED_FLAG 0x80000000u
/* What every byte of the DXGK_DEVICEINFO of create_device(info=1) holds before the call (the
 * executor fills it): a failed call must leave it so, a successful one must have written every
 * field (al_device_create_with_info zeroes what the miniport leaves). */
#define FZ_MODEL_INFO_SENTINEL_BYTE 0xA5u
/* Bytes a FILL writes and a CHECK reads, from offset 0: min(size, FZ_MODEL_PATTERN_BYTES). */
#define FZ_MODEL_PATTERN_BYTES 64u

/* A set of statuses, one bit per status the port documents. */
typedef uint32_t fz_status_set;
#define FZ_ST_SUCCESS (1u << 0)
#define FZ_ST_INVALID_PARAMETER (1u << 1)
#define FZ_ST_INVALID_HANDLE (1u << 2)
#define FZ_ST_NO_MEMORY (1u << 3)
#define FZ_ST_NO_VIDEO_MEMORY (1u << 4)
#define FZ_ST_DEVICE_REMOVED (1u << 5)
#define FZ_ST_TIMEOUT (1u << 6)
#define FZ_ST_DRIVER_MISMATCH (1u << 7) /* STATUS_GRAPHICS_DRIVER_MISMATCH */

/* The bit of @status; 0 for a status the port does not document (never allowed). */
fz_status_set fz_status_bit(NTSTATUS status);
/* Writes "STATUS_A or STATUS_B" into @buf (cut to @cap); returns @buf. */
const char *fz_status_set_format(fz_status_set set, char *buf, size_t cap);

/* What the model needs to know of the adapter: its segments (al_adapter_get_stats() right
 * after al_adapter_create()) and the largest page size among them. */
typedef struct fz_model_config {
  uint32_t segment_count;
  struct {
    uint32_t id;
    bool aperture;
    uint64_t size;
  } segments[DXGK_MAX_SEGMENTS];
  uint64_t page_size_max; /* placed sizes are rounded up to at most this */
  /* The miniport rejects corrupt private data / command streams with INVALID_PARAMETER (sim):
   * lets the executor use its corrupt variants of FZ_HOSTILE_PRIVATE_DATA. */
  bool miniport_validates_private_data;
  /* The placed size is at most the request rounded up to page_size_max (sim): enables the
   * upper bound on segment bytes in fz_model_check_stats(). */
  bool placed_size_is_page_rounded;
  /* alloclab.h: an idle allocation's memory is released "at once". false tolerates what core
   * does today: a device-owned teardown queued behind an earlier deferred teardown of the same
   * device waits too, for a later fence (memory held longer, never shorter; see execute_test.c
   * test_known_divergence_deferred_release). */
  bool strict_release;
  /* The GPU engine has a thread of its own (al_hardware_request.threaded_engine): fences signal
   * whenever that thread gets to them, not only when the port runs the engine. The model then
   * reads the contract's words for such an engine (alloclab.h): gpu_run runs nothing
   * (out_completed 0) and signals nothing; gpu_run and fence_wait release the deferred
   * destroys that are certainly due when the port reaps (fences up to the larger of the
   * completed fence seen before the call and, for fence_wait, the fence waited for), and
   * those due by a fence that signalled later stay "may be released" (the port reaped before
   * it signalled). Every other bound was already one that a fence signalling at any moment
   * keeps. */
  bool threaded_engine;
} fz_model_config;

/* A call as the port sees it (see the calling convention above). */
typedef struct fz_model_args {
  fz_op op;
  uint32_t hostile;      /* FZ_HOSTILE_* bits the executor applied */
  uint32_t variant;      /* which PRIVATE_DATA variant (executor's choice, see execute.c) */
  al_handle device;
  al_handle resource;    /* ADD_TO_RESOURCE, OPEN_RESOURCE, DESTROY_RESOURCE; DESTROY_ALLOCATIONS
                            with BOTH_FORMS */
  uint64_t fence;        /* FENCE_WAIT */
  al_handle allocation;  /* QUERY */
  uint32_t count;        /* CREATE_*, ADD_TO_RESOURCE: allocations; GPU_RUN: max submissions */
  uint64_t size;         /* bytes per allocation as requested (>= 1) */
  fz_placement placement;
  uint32_t align;        /* CREATE_*, ADD_TO_RESOURCE: bytes as requested (0 = the page) */
  bool shared;
  bool info;             /* CREATE_DEVICE: al_device_create_with_info() with an info struct */
  bool private_data_ok;  /* make_allocation_data could express the request */
  uint32_t flags;        /* DESTROY_*: as passed, reserved bits included */
  fz_command command;
  const al_handle *list; /* DESTROY_ALLOCATIONS, SUBMIT, DESTROY_RESOURCE with BOTH_FORMS */
  uint32_t list_length;  /* the count passed (list holds that many entries when it is at most
                            AL_MAX_ALLOCATIONS_PER_CALL) */
} fz_model_args;

/* What the model expects of one call. */
typedef struct fz_prediction {
  fz_status_set allowed;            /* without an injected failure */
  fz_status_set allowed_if_faulted; /* when one happened during the call (a superset) */
  fz_status_set allowed_if_wrong_answer; /* when the miniport answered wrongly during the call */
  const char *reason;               /* why, for messages: the first error found, or "valid" */
} fz_prediction;

/* What the call did, for fz_model_commit(). */
typedef struct fz_model_result {
  NTSTATUS status;
  al_handle device;             /* CREATE_DEVICE: *out_device */
  const DXGK_DEVICEINFO *device_info; /* CREATE_DEVICE with info: the struct after the call */
  al_handle resource;           /* CREATE_RESOURCE: *out_resource */
  const al_handle *allocations; /* CREATE_*, ADD_TO_RESOURCE: out_allocations (count) */
  uint64_t fence;               /* SUBMIT: *out_fence */
  uint32_t gpu_completed;       /* GPU_RUN: *out_completed (when asked) */
  const al_allocation_info *info; /* QUERY: *out_info */
  uint64_t fence_submitted;     /* al_fence_submitted() after the call */
  uint64_t fence_completed;     /* al_fence_completed() after the call */
  bool fault_injected;          /* an injected failure happened during the call */
  bool removed;                 /* the adapter has been removed (injected, so far) */
} fz_model_result;

/* What the port's statistics must show after a call. */
typedef struct fz_model_counts {
  uint32_t devices, resources, allocations;
  uint32_t bindings_min, bindings_max; /* open bindings: bounds (closes that may wait for a fence) */
  uint32_t deferred_min, deferred_max; /* deferred allocations: bounds */
  uint64_t fence_submitted;
  uint64_t fence_completed; /* the value last observed (a lower bound for the next call) */
  uint64_t segment_bytes_max; /* upper bound of the bytes in segments (UINT64_MAX: unknown) */
  /* al_adapter_stats.deferred_destroys (teardowns waiting for a fence): must be 0 when
   * !deferred_destroys_allowed (nothing may wait), non-zero when deferred_destroys_required
   * (deferred_min allocations or bindings_waiting bindings must wait). */
  bool deferred_destroys_allowed, deferred_destroys_required;
  uint32_t bindings_waiting; /* closed bindings that must stay open for a fence (for the message) */
} fz_model_counts;

/* What the model knows of one allocation (for building commands and messages). */
typedef struct fz_model_allocation_view {
  bool alive;
  uint32_t serial;     /* 0-based creation order within the program */
  uint64_t size;       /* requested bytes */
  fz_placement placement;
  uint32_t align;      /* requested alignment (0 = the segment's page) */
  uint64_t last_fence;
  bool has_pattern;    /* a FILL was submitted (successfully) since creation, or a COPY (program.h)
                          delivered a pattern over all that a CHECK reads */
  uint32_t pattern;    /* the last pattern submitted */
} fz_model_allocation_view;

/* Why a successful call bounds al_fence_completed() from below (fz_model_output_rules.wait). */
typedef enum fz_model_wait {
  FZ_MODEL_WAIT_NONE = 0,
  FZ_MODEL_WAIT_DESTROY_DEVICE,      /* the device's last fence: its work completed first */
  FZ_MODEL_WAIT_SYNCHRONOUS_DESTROY, /* AL_DESTROY_SYNCHRONOUS that released memory: the
                                        destroyed allocations' last fence */
  FZ_MODEL_WAIT_GPU_RUN,             /* the last fence of the submissions it ran */
  FZ_MODEL_WAIT_FENCE_WAIT,          /* the fence waited for */
} fz_model_wait;

/*
 * What the outputs of one call must be: every rule fz_model_commit() checks besides the new
 * handles, as data (fz_model_output_rules_for), so that a tool can write them out (emit_c) and
 * fz_model_commit() checks exactly these. Fences are the port's values the model has seen.
 * Every call, after it: al_fence_submitted() equals @fence_submitted_before (a failed call, or
 * any other op, changes nothing), except after a successful submit, whose *out_fence must be
 * above @fence_submitted_before and is then al_fence_submitted(); al_fence_completed() is at
 * least @completed_before (the last value observed: it never goes back) and at most
 * al_fence_submitted().
 */
typedef struct fz_model_output_rules {
  uint64_t fence_submitted_before;
  uint64_t completed_before;
  bool submit_fence; /* a successful submit: the fence rule above applies */
  /* A successful call after which al_fence_completed() >= @wait_fence (exact: the model knows
   * the fence; a bound on the completed value). */
  fz_model_wait wait;
  uint64_t wait_fence;
  uint32_t wait_count; /* GPU_RUN: max_submissions as passed (for the message) */
  /* GPU_RUN, success, out_completed asked: *out_completed must be exactly @gpu_completed (the
   * deterministic engine runs min(max_submissions, @gpu_queued); a threaded one runs none). */
  bool check_gpu_completed;
  bool gpu_threaded;
  uint32_t gpu_completed, gpu_queued;
  /* QUERY, success of a live allocation: resource, owner_device and last_fence exact; size in
   * [size_min, size_max] (size_max UINT64_MAX: no upper bound, size_page_rounded false); with a
   * segment (segment_id != 0): an offset that is a multiple of @align (when not 0), a segment
   * among @segments that is @possible for the allocation's @placement, [offset, +size) inside it. */
  bool check_query;
  al_handle resource, owner_device;
  uint64_t last_fence, size_min, size_max;
  bool size_page_rounded;
  uint32_t align;
  uint32_t placement;
  uint32_t segment_count;
  struct {
    uint32_t id;
    uint64_t size;
    bool possible;
  } segments[DXGK_MAX_SEGMENTS];
  /* CREATE_DEVICE with info: on success no field of the DXGK_DEVICEINFO still holds
   * FZ_MODEL_INFO_SENTINEL_BYTE in every byte; on failure every field does. */
  bool check_device_info;
} fz_model_output_rules;

typedef struct fz_model fz_model;

/* A new model (NULL when host memory ran out); reset with @config. */
fz_model *fz_model_create(const fz_model_config *config);
void fz_model_destroy(fz_model *model);
/* Forget everything: a new program on a new adapter. O(1). */
void fz_model_reset(fz_model *model, const fz_model_config *config);

/*
 * fz_model_predict - which statuses the port may return for @args, given everything committed
 * so far. Changes nothing. Never fails.
 */
void fz_model_predict(const fz_model *model, const fz_model_args *args, fz_prediction *out);

/*
 * fz_model_commit - check the outputs of a call that returned @result->status (the caller has
 * checked it against the prediction) and apply its effects.
 * Returns: true when every output holds; false with a message in @msg (cut to @cap) naming the
 * broken promise (a handle 0 or repeated, a fence that went backwards, a query that disagrees,
 * ...). The model is still updated as well as it can be.
 */
bool fz_model_commit(fz_model *model, const fz_model_args *args, const fz_model_result *result,
                     char *msg, size_t cap);

/*
 * fz_model_output_rules_for - the rules the outputs of @args must keep when the call returns
 * @status (fz_model_commit() checks these after the call; call this before committing it).
 * Changes nothing. Never fails.
 */
void fz_model_output_rules_for(const fz_model *model, const fz_model_args *args, NTSTATUS status,
                               fz_model_output_rules *out);

/* The counts the port's statistics must show now. */
void fz_model_expected(const fz_model *model, fz_model_counts *out);

/*
 * fz_model_check_stats - compare @stats (al_adapter_get_stats() after the last committed call)
 * with fz_model_expected(). Returns true when they agree; else false with a message.
 */
bool fz_model_check_stats(const fz_model *model, const al_adapter_stats *stats, char *msg,
                          size_t cap);

/* The pattern the next FILL of @allocation writes (a function of the allocation's serial and of
 * how many FILLs it had: never 0, every byte non-zero). false when @allocation is not live. */
bool fz_model_fill_pattern(const fz_model *model, al_handle allocation, uint32_t *out_pattern);

/* What the model knows of @allocation (any handle the program saw, live or not). false for a
 * value that never named an allocation. */
bool fz_model_allocation(const fz_model *model, al_handle allocation,
                         fz_model_allocation_view *out);

/* The live devices, in creation order (for teardown): writes at most @cap, returns how many. */
uint32_t fz_model_live_devices(const fz_model *model, al_handle *out, uint32_t cap);

/* The live allocations' handles (for overlap checks): writes at most @cap, returns how many. */
uint32_t fz_model_live_allocations(const fz_model *model, al_handle *out, uint32_t cap);

/* Whether the adapter is known to be removed. */
bool fz_model_removed(const fz_model *model);
/* Makes @dst (from fz_model_create) a copy of @src that answers every later call exactly as
 * @src would: a snapshot to go back to when a search over call orders (fz_execute_concurrent)
 * backtracks. What @dst held before is gone. Costs what @src holds (its objects, submissions
 * and handle-map entries), not the model's size (several MiB). */
void fz_model_copy(fz_model *dst, const fz_model *src);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_FUZZ_MODEL_H */
