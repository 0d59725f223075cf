/*
 * recording_miniport.h — a miniport for the port's tests: every DDI of the selected miniport
 * (al_selected_miniport, //hw:miniport; by default hw/example), wrapped so that each call is
 * recorded in a global log and may be made to fail or to answer badly, then forwarded to the
 * selected miniport's real DDI ("the inner miniport").
 *
 * DOC: How it forwards
 * RecordingMiniportDriverEntry() obtains the inner miniport's own table by running
 * al_selected_miniport.driver_entry on a private DRIVER_OBJECT (core's DxgkInitialize fills it;
 * the struct comes from core/src/port.h through //core:internal_for_tests), keeps it as the
 * "inner" table, and registers a table of wrappers (same Version; an optional DDI the inner
 * miniport lacks stays NULL) on the driver object the port gave it.
 * StartDevice hands the inner miniport a copy of the port's DXGKRNL_INTERFACE whose
 * DxgkCbNotifyInterrupt is a wrapper too, so fence completions are logged (REC_NOTIFY_INTERRUPT).
 * The copy lives in static storage (a ring of REC_MAX_INTERFACES), in case a miniport keeps the
 * pointer rather than the callbacks.
 *
 * DOC: The log
 * One entry per call, in call order (a mutex serialises appends; entries of concurrent calls
 * interleave). Lists are copied, so an entry stays valid until recording_reset(). What an entry
 * holds per DDI is documented in struct rec_call.
 *
 * DOC: Injection (each one-shot unless said otherwise; recording_reset() disarms all)
 *  - recording_fail_call(ddi, skip, status): the (skip + 1)-th next call of @ddi returns @status
 *    without reaching the inner miniport (so the miniport changes nothing).
 *  - recording_edit_create(index, edit): after the next successful CreateAllocation, @edit
 *    rewrites the DXGK_ALLOCATIONINFO outputs of allocation @index (REC_ALL: of every allocation).
 *    An edit that sets hAllocation to NULL makes the wrapper destroy that allocation in the
 *    inner miniport first, so the miniport holds exactly what the port was told about.
 *    Ready-made edits: rec_edit_null_allocation, rec_edit_zero_size, rec_edit_outside_segments.
 *  - recording_null_open_binding(index): the next successful OpenAllocation returns a NULL
 *    hDeviceSpecificAllocation for entry @index (that binding is closed in the inner miniport first).
 *  - recording_null_device(): the next successful CreateDevice returns a NULL hDevice (the
 *    inner miniport's device is destroyed first).
 *  - recording_break_segments(kind): every QueryAdapterInfo(QUERYSEGMENT) answer is broken in the
 *    given way until recording_reset().
 *
 * DOC: Checking the port
 * recording_check_contract() replays the log against the contract (../shared/wddm-contract.md)
 * with a shadow state of its own: paging operations only on live allocations, rules 1, 3, 4
 * (close before destroy; a device's bindings of a
 * resource closed in one call), 5, 7, fences reported in order, and (optionally) rule 6. Answers
 * the wrappers broke on purpose are taken as what the miniport really holds.
 *
 * Not thread-safe against recording_reset(): reset only while no DDI runs.
 */
#ifndef ALLOCLAB_TEST_RECORDING_MINIPORT_H
#define ALLOCLAB_TEST_RECORDING_MINIPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/d3dkmddi.h"

typedef enum rec_ddi {
  REC_ADD_DEVICE,
  REC_START_DEVICE,
  REC_STOP_DEVICE,
  REC_REMOVE_DEVICE,
  REC_QUERY_ADAPTER_INFO,
  REC_CREATE_DEVICE,
  REC_DESTROY_DEVICE,
  REC_CREATE_ALLOCATION,
  REC_OPEN_ALLOCATION,
  REC_CLOSE_ALLOCATION,
  REC_DESTROY_ALLOCATION,
  REC_SUBMIT_COMMAND,
  REC_BUILD_PAGING_BUFFER,
  REC_RUN_ENGINE,
  REC_QUERY_LIVE_OBJECTS,
  REC_NOTIFY_INTERRUPT, /* not a DDI: the miniport's DxgkCbNotifyInterrupt (a fence completed) */
  REC_DDI_COUNT
} rec_ddi;

/* "every allocation of the call", for recording_edit_create() */
#define REC_ALL UINT32_MAX

/*
 * One recorded call.
 * @adapter:     hAdapter / MiniportDeviceContext (AddDevice: the one returned); for
 *               REC_NOTIFY_INTERRUPT the DeviceHandle the port gave (its al_adapter).
 * @device:      hDevice (CreateDevice: returned; Open/Close/DestroyDevice: given); Submit: hContext.
 * @port_handle: CreateDevice: the port's handle of the device (DXGKARG_CREATEDEVICE.hDevice in).
 * @resource_in: CreateAllocation: hResource before the call; DestroyAllocation: hResource.
 * @resource_out: CreateAllocation: hResource after the call (success only).
 * @flags:       Create/Open/Destroy/Submit: Flags.Value; BuildPagingBuffer: Operation.
 * @count:       NumAllocations / list length.
 * @handles:     Create: the hAllocation outputs (success only); Open: the hDeviceSpecificAllocation
 *               outputs (success only); Close: pOpenHandleList; Destroy: pAllocationList; Submit:
 *               the bindings of the allocation list; BuildPagingBuffer (FILL, TRANSFER): the
 *               hAllocation, once per location below.
 * @allocations: Open: the hAllocation each pOpenAllocation[i].hAllocation resolves to
 *               (DxgkCbGetHandleData, before the call).
 * @port_handles: Open: pOpenAllocation[i].hAllocation (the port's handles).
 * @segment_ids, @segment_offsets: Submit: SegmentId and PhysicalAddress of each list entry;
 *               BuildPagingBuffer: FILL count 1, [Destination]; TRANSFER count 2, [Source,
 *               Destination] (segment id 0 = system memory); other operations count 0.
 * @fence:       Submit: SubmissionFenceId; NOTIFY: the completed fence id; RunEngine: how many ran.
 * @status:      what the wrapper returned.
 * @injected:    the status or the outputs were injected by the test.
 */
typedef struct rec_call {
  rec_ddi ddi;
  NTSTATUS status;
  bool injected;
  HANDLE adapter;
  HANDLE device;
  uint32_t port_handle;
  HANDLE resource_in;
  HANDLE resource_out;
  uint32_t flags;
  uint32_t count;
  HANDLE *handles;
  HANDLE *allocations;
  D3DKMT_HANDLE *port_handles;
  uint32_t *segment_ids;
  uint64_t *segment_offsets;
  uint64_t fence;
} rec_call;

/* The recording miniport's DriverEntry (pass it as al_adapter_config.driver_entry). */
NTSTATUS RecordingMiniportDriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath);

/* The inner (selected) miniport's own table (loaded once; aborts if its DriverEntry fails). */
const DRIVER_INITIALIZATION_DATA *recording_inner_table(void);
/* The table of recording wrappers, for tests that register a modified copy in their own
 * DriverEntry. */
void recording_table(DRIVER_INITIALIZATION_DATA *out);

/* Clears the log and disarms every injection. */
void recording_reset(void);
/* Logging on (default) or off; injection and forwarding work either way. */
void recording_set_enabled(bool enabled);

size_t recording_count(void);
/* A copy of entry @index (< recording_count()); its lists stay valid until recording_reset(). */
rec_call recording_get(size_t index);
/* Entries of @ddi at positions [from, recording_count()). */
size_t recording_count_of(rec_ddi ddi, size_t from);
/* The position of the first entry of @ddi at or after @from, or SIZE_MAX. */
size_t recording_find(rec_ddi ddi, size_t from);
const char *recording_ddi_name(rec_ddi ddi);
/* Prints the log (from @from) to stderr, one line per entry. */
void recording_dump(size_t from);
/* The hAdapter the inner miniport returned from the last AddDevice. */
HANDLE recording_last_adapter(void);
/* The miniport's hDevice of the port's device handle @device (from the CreateDevice log). */
HANDLE recording_driver_device(uint32_t device);

/* ---- Injection ------------------------------------------------------------------------------ */

void recording_fail_call(rec_ddi ddi, uint32_t skip, NTSTATUS status);
typedef void rec_create_edit(DXGK_ALLOCATIONINFO *info);
void recording_edit_create(uint32_t index, rec_create_edit *edit);
/* Edits that break one rule of the create outputs (rule 1 and ddi_check_create_output). */
rec_create_edit rec_edit_null_allocation;  /* hAllocation = NULL */
rec_create_edit rec_edit_zero_size;        /* Size = 0 */
rec_create_edit rec_edit_outside_segments; /* SupportedWriteSegmentSet names segment 32 only */
void recording_null_open_binding(uint32_t index);
void recording_null_device(void);

typedef enum rec_bad_segments {
  REC_SEGMENTS_OK = 0,
  REC_SEGMENTS_NONE,           /* NbSegment = 0 */
  REC_SEGMENTS_TOO_MANY,       /* NbSegment = DXGK_MAX_SEGMENTS + 1 */
  REC_SEGMENTS_COUNT_CHANGES,  /* the second answer names fewer segments than the first */
  REC_SEGMENTS_BAD_PAGE_SIZE,  /* AlPageSize 3000 */
  REC_SEGMENTS_NOT_PAGE_MULTIPLE, /* Size not a multiple of the page size */
  REC_SEGMENTS_ZERO_SIZE,      /* a segment of 0 bytes */
} rec_bad_segments;
void recording_break_segments(rec_bad_segments kind);

/* ---- Direct access to the inner miniport (not logged as DDIs, not seen by the port) ---------- */

/* AlDdiQueryLiveObjects of the inner miniport for @adapter (the port's al_adapter.miniport);
 * STATUS_INVALID_PARAMETER when the inner miniport has none. */
NTSTATUS recording_query_live(HANDLE adapter, ALDDI_LIVE_OBJECTS *out);
/* Runs the inner miniport's engine without the port asking (STATUS_INVALID_PARAMETER
 * without AlDdiRunEngine): completions reach the port through
 * DxgkCbNotifyInterrupt, but the port does not reap deferred destroys (as with an engine that has
 * a thread of its own). */
NTSTATUS recording_run_engine_directly(HANDLE adapter, uint32_t max_submissions, uint32_t *out_ran);

/* ---- Checking --------------------------------------------------------------------------------- */

/* Replays the whole log; true when the port kept the contract. @fences: also check rule 6 (no
 * binding closed and no allocation destroyed while work that references it has not signalled):
 * only for logs without AL_DESTROY_ASSUME_NOT_IN_USE. On failure @msg names the entry and rule. */
bool recording_check_contract(bool fences, char *msg, size_t cap);

#endif /* ALLOCLAB_TEST_RECORDING_MINIPORT_H */
