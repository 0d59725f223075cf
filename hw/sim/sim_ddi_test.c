/*
 * sim_ddi_test.c — direct DDI tests of the sim miniport, for what a correct port never does:
 * destroying an allocation whose binding is still open (a GPU access then faults on a freed
 * page), work on an allocation left in system memory (unmapped VA), writes through a read-only
 * binding, hostile submissions and paging requests, zombie devices, a removed adapter.
 *
 * The test is its own tiny port (sim_test_port.h, shared with sim_damage_test.c): DxgkInitialize,
 * a fake handle table behind DxgkCbGetHandleData and a DxgkCbNotifyInterrupt that records
 * completed fences. It does not link core/.
 *
 * The hardware walk (sim_miniport_check_hardware) is tested here too: it passes on the states the
 * other tests reach, and fails, naming the object, once the test breaks the simulated GPU behind
 * the sim's back through hw/gpu's own API (a page-table entry, a segment page, an engine
 * submission) or the sim's record of it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/hw/sim_miniport.h"
#include "sim_internal.h" /* the hardware-walk tests corrupt the simulated GPU behind the sim */
#include "sim_test_port.h"

#define KiB ((UINT64)1 << 10)
#define MiB ((UINT64)1 << 20)

static NTSTATUS open_one(fake_port *f, HANDLE device, D3DKMT_HANDLE kmt, bool read_only, HANDLE *out_binding) {
  DXGK_OPENALLOCATIONINFO info;
  memset(&info, 0, sizeof info);
  info.hAllocation = kmt;
  DXGKARG_OPENALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 1;
  args.pOpenAllocation = &info;
  args.Flags.ReadOnly = read_only;
  NTSTATUS status = f->ddi->DxgkDdiOpenAllocation(device, &args);
  if (NT_SUCCESS(status)) *out_binding = info.hDeviceSpecificAllocation;
  return status;
}

/* One allocation of @size in @segment at @offset, opened on @device. */
typedef struct placed {
  HANDLE allocation;
  D3DKMT_HANDLE kmt;
  HANDLE binding;
  UINT64 id;
} placed;

static placed place(fake_port *f, HANDLE device, UINT64 size, UINT placement, UINT segment, UINT64 offset) {
  placed p;
  memset(&p, 0, sizeof p);
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(size, placement, 0);
  expect_status(fake_alloc_create(f, &data, &p.allocation, &p.kmt), STATUS_SUCCESS, "create");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, p.allocation, size, 0, 0, segment, offset), STATUS_SUCCESS, "fill");
  expect_status(open_one(f, device, p.kmt, false, &p.binding), STATUS_SUCCESS, "open");
  p.id = sim_miniport_allocation_id(p.allocation);
  return p;
}

static size_t last_events(sim_event *out, size_t max) { return sim_miniport_events(out, max); }

/* ---- GPU page faults ------------------------------------------------------------------------------ */

/* Destroys an allocation while a binding still maps it (what a buggy port does), then submits work
 * through that binding. Returns the allocation's owner id. */
static UINT64 use_after_destroy(fake_port *f, HANDLE device, HANDLE *out_binding) {
  placed a = place(f, device, 16 * KiB, SIM_PLACEMENT_ANY, SIM_SEGMENT_ID_MEMORY, 64 * KiB);
  expect_u64_ne(a.id, 0, "owner id");
  expect_status(fake_destroy_one(f, a.allocation), STATUS_SUCCESS, "destroy while still bound (port bug)");
  uint8_t cmd[64];
  size_t n = sim_cmd_fill(cmd, 0, 4096, 4096, 0x11111111u);
  expect_status(fake_submit(f, device, &a.binding, 1, cmd, (UINT)n), STATUS_SUCCESS, "submit through the stale binding");
  fake_run_engine(f);
  *out_binding = a.binding;
  return a.id;
}

TEST(gpu_fault_on_freed_page_is_logged) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 0x40000007u);
  sim_miniport_events_clear();
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  HANDLE binding;
  UINT64 id = use_after_destroy(f, device, &binding);
  expect_u64_eq(fake_fences(f), 1, "the faulting submission still completes its fence");
  sim_miniport_get_stats(&after);
  expect_u64_eq(after.gpu_faults, before.gpu_faults + 1, "one fault");
  sim_event events[4];
  assert_u64_eq(last_events(events, 4), 1, "one event");
  expect_u64_eq(events[0].kind, SIM_EVENT_GPU_FAULT, "a GPU fault");
  expect_u64_eq(events[0].fault_kind, SIM_FAULT_FREED_PAGE, "on a freed page");
  expect_true(strcmp(sim_fault_kind_name(events[0].fault_kind), "freed page") == 0, "named 'freed page'");
  expect_u64_eq(events[0].allocation, id, "naming the allocation that last owned it");
  expect_u64_eq(events[0].device, 0x40000007u, "and the device");
  expect_u64_eq(events[0].write, 1, "a write");
  expect_u64_eq(events[0].segment_id, SIM_SEGMENT_ID_MEMORY, "segment");
  expect_u64_eq(events[0].phys, 64 * KiB + 4096, "physical offset of the first faulting byte");
  expect_u64_ne(events[0].va, 0, "VA");
  expect_status(fake_close_one(f, device, binding), STATUS_SUCCESS, "the stale binding still closes");
  expect_status(f->ddi->DxgkDdiDestroyDevice(device), STATUS_SUCCESS, "destroy device");
  fake_end(f, true);
}

static void freed_page_with_abort(void *unused) {
  (void)unused;
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  config.Flags = SIM_HW_ABORT_ON_GPU_FAULT;
  fake_port *f = fake_start(&config);
  HANDLE binding;
  use_after_destroy(f, fake_device_create(f, 0x40000001u), &binding);
}

TEST(gpu_fault_on_freed_page_aborts_by_default) {
  expect_death(freed_page_with_abort, NULL, "alloclab sim: GPU page fault: freed page at VA 0x");
  expect_death(freed_page_with_abort, NULL, "on device 0x40000001");
  expect_death(freed_page_with_abort, NULL, "page last owned by allocation 1");
}

TEST(gpu_fault_on_unmapped_va) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 2);
  placed a = place(f, device, 8 * KiB, SIM_PLACEMENT_ANY, SIM_SEGMENT_ID_MEMORY, 0);
  uint8_t cmd[128];
  size_t n = sim_cmd_fill(cmd, 0, 0, 8 * KiB, 0x77665544u);
  expect_status(fake_submit(f, device, &a.binding, 1, cmd, (UINT)n), STATUS_SUCCESS, "fill");
  fake_run_engine(f);
  /* Out to system memory: the binding is unmapped; work on it now faults. */
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a.allocation, 8 * KiB, 1, 0, 0, 0), STATUS_SUCCESS, "to system");
  sim_miniport_events_clear();
  n = sim_cmd_check(cmd, 0, 0, 8 * KiB, 0x77665544u);
  expect_status(fake_submit(f, device, &a.binding, 1, cmd, (UINT)n), STATUS_SUCCESS, "check while in system memory");
  fake_run_engine(f);
  sim_event events[4];
  assert_u64_eq(last_events(events, 4), 1, "one event");
  expect_u64_eq(events[0].fault_kind, SIM_FAULT_UNMAPPED, "unmapped");
  expect_u64_eq(events[0].write, 0, "a read");
  expect_u64_eq(events[0].allocation, 0, "no page behind it");
  /* Back in (to the aperture): re-mapped at the same VA, contents intact. */
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a.allocation, 8 * KiB, 0, 0, 2, 12 * KiB), STATUS_SUCCESS, "back");
  sim_miniport_events_clear();
  expect_status(fake_submit(f, device, &a.binding, 1, cmd, (UINT)n), STATUS_SUCCESS, "check again");
  fake_run_engine(f);
  expect_u64_eq(last_events(events, 4), 0, "contents came back from system memory");
  expect_status(fake_close_one(f, device, a.binding), STATUS_SUCCESS, "close");
  expect_status(fake_destroy_one(f, a.allocation), STATUS_SUCCESS, "destroy");
  expect_status(f->ddi->DxgkDdiDestroyDevice(device), STATUS_SUCCESS, "destroy device");
  fake_end(f, true);
}

TEST(read_only_binding_refuses_writes) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE d1 = fake_device_create(f, 1), d2 = fake_device_create(f, 2), ro;
  placed a = place(f, d1, 4 * KiB, SIM_PLACEMENT_APERTURE_ONLY, SIM_SEGMENT_ID_APERTURE, 0);
  expect_status(open_one(f, d2, a.kmt, true, &ro), STATUS_SUCCESS, "read-only open on d2");
  sim_miniport_events_clear();
  uint8_t cmd[128];
  size_t n = sim_cmd_check(cmd, 0, 0, 4096, 0);
  expect_status(fake_submit(f, d2, &ro, 1, cmd, (UINT)n), STATUS_SUCCESS, "read");
  fake_run_engine(f);
  sim_event events[2];
  expect_u64_eq(last_events(events, 2), 0, "reads are fine");
  n = sim_cmd_fill(cmd, 0, 0, 4096, 1);
  expect_status(fake_submit(f, d2, &ro, 1, cmd, (UINT)n), STATUS_SUCCESS, "write");
  fake_run_engine(f);
  assert_u64_eq(last_events(events, 2), 1, "the write faulted");
  expect_u64_eq(events[0].fault_kind, SIM_FAULT_WRITE_READ_ONLY, "write to read-only page");
  expect_u64_eq(events[0].allocation, a.id, "the page's owner");
  expect_status(fake_close_one(f, d2, ro), STATUS_SUCCESS, "close ro");
  expect_status(fake_close_one(f, d1, a.binding), STATUS_SUCCESS, "close");
  expect_status(fake_destroy_one(f, a.allocation), STATUS_SUCCESS, "destroy");
  f->ddi->DxgkDdiDestroyDevice(d1);
  f->ddi->DxgkDdiDestroyDevice(d2);
  fake_end(f, true);
}

/* ---- Hostile submissions --------------------------------------------------------------------------- */

TEST(hostile_submissions_queue_nothing) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE d1 = fake_device_create(f, 1), d2 = fake_device_create(f, 2);
  placed a = place(f, d1, 8 * KiB, SIM_PLACEMENT_ANY, 1, 0);
  placed b = place(f, d2, 8 * KiB, SIM_PLACEMENT_ANY, 1, 8 * KiB);
  uint8_t cmd[64];
  UINT n = (UINT)sim_cmd_fill(cmd, 0, 0, 16, 1);
  DXGK_ALLOCATIONLIST list = {.hDeviceSpecificAllocation = a.binding};
  DXGKARG_SUBMITCOMMAND good;
  memset(&good, 0, sizeof good);
  good.DmaBufferSize = n;
  good.DmaBufferSubmissionEndOffset = n;
  good.SubmissionFenceId = 1;
  good.hContext = d1;
  good.pAlDmaBuffer = cmd;
  good.pAlAllocationList = &list;
  good.AlAllocationListSize = 1;
  DXGKARG_SUBMITCOMMAND args;
#define BAD(change, want, what)                                                        \
  do {                                                                                 \
    args = good;                                                                       \
    change;                                                                            \
    expect_status(f->ddi->DxgkDdiSubmitCommand(f->ctx, &args), want, what);            \
  } while (0)
  BAD(args.hContext = NULL, STATUS_INVALID_HANDLE, "no context");
  BAD(args.hContext = a.binding, STATUS_INVALID_HANDLE, "a binding as the context");
  BAD(list.hDeviceSpecificAllocation = b.binding, STATUS_INVALID_HANDLE, "a binding of another device");
  list.hDeviceSpecificAllocation = a.binding;
  BAD(list.hDeviceSpecificAllocation = NULL, STATUS_INVALID_HANDLE, "NULL binding");
  list.hDeviceSpecificAllocation = a.binding;
  BAD(args.pAlAllocationList = NULL, STATUS_INVALID_PARAMETER, "no list");
  BAD(args.AlAllocationListSize = SIM_MAX_ALLOCATION_LIST + 1, STATUS_INVALID_PARAMETER, "list too long");
  BAD(args.DmaBufferSubmissionStartOffset = n + 1, STATUS_INVALID_PARAMETER, "start after end");
  BAD(args.DmaBufferSubmissionEndOffset = n + 1, STATUS_INVALID_PARAMETER, "end past the buffer");
  BAD((args.DmaBufferSize = SIM_CMD_MAX_STREAM_BYTES + 8, args.DmaBufferSubmissionEndOffset = SIM_CMD_MAX_STREAM_BYTES + 8),
      STATUS_INVALID_PARAMETER, "stream too long");
  BAD(args.pAlDmaBuffer = NULL, STATUS_INVALID_PARAMETER, "no stream");
  BAD(args.Flags.Reserved = 1, STATUS_INVALID_PARAMETER, "reserved flag");
  BAD(args.AlAllocationListSize = 0, STATUS_INVALID_PARAMETER, "index 0 of an empty list");
  BAD(args.DmaBufferSubmissionStartOffset = 4, STATUS_INVALID_PARAMETER, "stream starting mid-record");
#undef BAD
  expect_u64_eq(fake_run_engine(f), 0, "nothing was queued");
  /* Check bytes are bounded per submission. */
  uint8_t many[SIM_CMD_CHECK_BYTES * 3];
  UINT bytes = 0;
  for (int i = 0; i < 3; i++) bytes += (UINT)sim_cmd_check(many + bytes, 0, 0, 8 * KiB, 0);
  expect_status(fake_submit(f, d1, &a.binding, 1, many, bytes), STATUS_SUCCESS, "a few checks");
  expect_u64_eq(fake_run_engine(f), 1, "ran");
  /* A closed binding is no longer usable (b and a opened on d2 in one call: the block, and so the
   * closed binding's memory, lives on while a's binding is open). */
  DXGK_OPENALLOCATIONINFO two[2];
  memset(two, 0, sizeof two);
  two[0].hAllocation = b.kmt;
  two[1].hAllocation = a.kmt;
  DXGKARG_OPENALLOCATION open_args;
  memset(&open_args, 0, sizeof open_args);
  open_args.NumAllocations = 2;
  open_args.pOpenAllocation = two;
  expect_status(fake_close_one(f, d2, b.binding), STATUS_SUCCESS, "close b's first binding");
  assert_status(f->ddi->DxgkDdiOpenAllocation(d2, &open_args), STATUS_SUCCESS, "open b and a on d2 at once");
  HANDLE closed = two[0].hDeviceSpecificAllocation;
  expect_status(fake_close_one(f, d2, closed), STATUS_SUCCESS, "close");
  expect_status(fake_submit(f, d2, &closed, 1, cmd, n), STATUS_INVALID_HANDLE, "closed binding");
  expect_status(fake_close_one(f, d2, closed), STATUS_INVALID_HANDLE, "double close");
  HANDLE both[2] = {two[1].hDeviceSpecificAllocation, two[1].hDeviceSpecificAllocation};
  DXGKARG_CLOSEALLOCATION close_args = {2, both};
  expect_status(f->ddi->DxgkDdiCloseAllocation(d2, &close_args), STATUS_INVALID_PARAMETER, "listed twice");
  expect_status(fake_close_one(f, d1, two[1].hDeviceSpecificAllocation), STATUS_INVALID_HANDLE, "another device's");
  expect_status(fake_close_one(f, d2, two[1].hDeviceSpecificAllocation), STATUS_SUCCESS, "close a on d2");
  expect_status(fake_close_one(f, d1, a.binding), STATUS_SUCCESS, "close a");
  expect_status(fake_destroy_one(f, a.allocation), STATUS_SUCCESS, "destroy a");
  expect_status(fake_destroy_one(f, b.allocation), STATUS_SUCCESS, "destroy b");
  f->ddi->DxgkDdiDestroyDevice(d1);
  f->ddi->DxgkDdiDestroyDevice(d2);
  fake_end(f, true);
}

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state += 0x9E3779B97F4A7C15ull;
  uint64_t z = rng_state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static UINT64 near(UINT64 size) {
  switch (rnd() % 6) {
  case 0: return 0;
  case 1: return size;
  case 2: return size - rnd() % 64;
  case 3: return rnd() % (size + 64);
  case 4: return UINT64_MAX - rnd() % 8;
  default: return rnd();
  }
}

/* Random streams (valid records with hostile fields, random bytes, truncation): every one is
 * accepted or rejected with STATUS_INVALID_PARAMETER, and no accepted one ever faults the GPU. */
TEST(random_streams_never_fault) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  rng_state = al_test_seed();
  HANDLE device = fake_device_create(f, 1);
  placed a = place(f, device, 8 * KiB, SIM_PLACEMENT_ANY, 1, 0);
  placed b = place(f, device, 12 * KiB, SIM_PLACEMENT_APERTURE_ONLY, 2, 0);
  HANDLE bindings[2] = {a.binding, b.binding};
  const UINT64 sizes[2] = {8 * KiB, 12 * KiB};
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  uint64_t accepted = 0, rejected = 0;
  for (int round = 0; round < 20000; round++) {
    uint8_t stream[512];
    UINT bytes = 0;
    int records = (int)(rnd() % 6);
    for (int r = 0; r < records && bytes + 40 <= sizeof stream; r++) {
      UINT i = (UINT)(rnd() % 3), j = (UINT)(rnd() % 3);
      UINT64 si = sizes[i % 2], sj = sizes[j % 2];
      switch (rnd() % 5) {
      case 0: bytes += (UINT)sim_cmd_fill(stream + bytes, i, near(si), near(si), (UINT)rnd()); break;
      case 1: bytes += (UINT)sim_cmd_check(stream + bytes, i, near(si), near(si), (UINT)rnd()); break;
      case 2: bytes += (UINT)sim_cmd_copy(stream + bytes, i, near(si), j, near(sj), near(sj)); break;
      case 3: bytes += (UINT)sim_cmd_nop(stream + bytes, (UINT)(rnd() % 16)); break;
      default:
        for (int k = 0; k < 8; k++) stream[bytes++] = (uint8_t)rnd();
      }
    }
    if (bytes && rnd() % 8 == 0) bytes -= (UINT)(rnd() % bytes);
    if (rnd() % 16 == 0) stream[rnd() % sizeof stream] ^= (uint8_t)rnd();
    NTSTATUS status = fake_submit(f, device, bindings, 2, stream, bytes);
    if (status == STATUS_SUCCESS)
      accepted++;
    else {
      expect_status(status, STATUS_INVALID_PARAMETER, "round %d", round);
      rejected++;
    }
    if (round % 64 == 0) fake_run_engine(f);
  }
  fake_run_engine(f);
  sim_miniport_get_stats(&after);
  expect_u64_gt(accepted, 1000, "valid streams are accepted");
  expect_u64_gt(rejected, 1000, "hostile ones rejected");
  expect_u64_eq(after.gpu_faults, before.gpu_faults, "no accepted stream faults");
  expect_u64_eq(after.completions - before.completions, accepted, "every accepted one completed");
  expect_u64_eq(fake_fences(f), accepted > 1024 ? 1024 : accepted, "and was reported");
  fake_close_one(f, device, a.binding);
  fake_close_one(f, device, b.binding);
  fake_destroy_one(f, a.allocation);
  fake_destroy_one(f, b.allocation);
  f->ddi->DxgkDdiDestroyDevice(device);
  fake_end(f, true);
}

/* ---- Paging rules ------------------------------------------------------------------------------------ */

TEST(paging_rules_and_round_trip) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 1);
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(16 * KiB, SIM_PLACEMENT_ANY, 0);
  HANDLE a, ap;
  D3DKMT_HANDLE kmt;
  assert_status(fake_alloc_create(f, &data, &a, &kmt), STATUS_SUCCESS, "a");
  SIM_ALLOCATION_DATA ap_data = sim_allocation_buffer(4 * KiB, SIM_PLACEMENT_APERTURE_ONLY, 0);
  assert_status(fake_alloc_create(f, &ap_data, &ap, NULL), STATUS_SUCCESS, "aperture-only");
  const UINT64 S = 16 * KiB, SEG = config.MemorySegmentSize;
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, a, S, 0, 0, 0, 0), STATUS_INVALID_PARAMETER, "fill to system memory");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, a, S, 0, 0, 3, 0), STATUS_INVALID_PARAMETER, "segment 3");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, a, S, 0, 0, 1, 100), STATUS_INVALID_PARAMETER, "misaligned");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, a, S, 0, 0, 1, SEG - 4096), STATUS_INVALID_PARAMETER, "past the end");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, a, S + 1, 0, 0, 1, 0), STATUS_INVALID_PARAMETER, "FillSize too big");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, ap, 4096, 0, 0, 1, 0), STATUS_INVALID_PARAMETER, "outside its set");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, NULL, S, 0, 0, 1, 0), STATUS_INVALID_HANDLE, "no allocation");
  expect_status(fake_paging(f, DXGK_OPERATION_DISCARD_CONTENT, a, S, 0, 0, 1, 0), STATUS_INVALID_PARAMETER, "unknown op");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, a, S, 0, 0, 1, 8 * KiB), STATUS_SUCCESS, "fill");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, a, S, 0, 0, 1, 64 * KiB), STATUS_INVALID_PARAMETER, "fill twice");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, ap, 4096, 0, 0, 2, 0), STATUS_SUCCESS, "fill ap");
  /* Another allocation may not be placed over a's pages. */
  HANDLE c;
  assert_status(fake_alloc_create(f, &data, &c, NULL), STATUS_SUCCESS, "c");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, c, S, 0, 0, 1, 12 * KiB), STATUS_INVALID_PARAMETER, "overlapping fill");
  HANDLE binding;
  assert_status(open_one(f, device, kmt, false, &binding), STATUS_SUCCESS, "open a");
  uint8_t cmd[128];
  size_t n = sim_cmd_fill(cmd, 0, 0, S, 0x12345678u);
  assert_status(fake_submit(f, device, &binding, 1, cmd, (UINT)n), STATUS_SUCCESS, "fill contents");
  fake_run_engine(f);
  /* TRANSFER rules. */
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 1, 0, 2, 0), STATUS_INVALID_PARAMETER, "wrong source offset");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 2, 8 * KiB, 2, 0), STATUS_INVALID_PARAMETER, "wrong source segment");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 0, 0, 2, 0), STATUS_INVALID_PARAMETER, "not in system memory");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S - 4096, 1, 8 * KiB, 2, 0), STATUS_INVALID_PARAMETER, "partial");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 1, 8 * KiB, 2, 0), STATUS_INVALID_PARAMETER, "onto ap's page");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 1, 8 * KiB, 1, 16 * KiB), STATUS_INVALID_PARAMETER,
                "overlapping itself");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 1, 8 * KiB, 2, 6), STATUS_INVALID_PARAMETER, "misaligned");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, ap, 4096, 2, 0, 1, 0), STATUS_INVALID_PARAMETER,
                "aperture-only to memory");
  /* Round trip: memory -> aperture -> system -> memory (another place), contents kept. */
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 1, 8 * KiB, 2, 64 * KiB), STATUS_SUCCESS, "to aperture");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 2, 64 * KiB, 0, 0), STATUS_SUCCESS, "to system");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 0, 0, 0, 0), STATUS_INVALID_PARAMETER, "system to system");
  ALDDI_LIVE_OBJECTS live = fake_live(f);
  expect_u64_ge(live.HostBytes, S, "the system copy is host memory");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 0, 0, 1, 1 * MiB), STATUS_SUCCESS, "back to memory");
  sim_miniport_events_clear();
  n = sim_cmd_check(cmd, 0, 0, S, 0x12345678u);
  assert_status(fake_submit(f, device, &binding, 1, cmd, (UINT)n), STATUS_SUCCESS, "check");
  fake_run_engine(f);
  sim_event events[2];
  expect_u64_eq(last_events(events, 2), 0, "contents survived three moves");
  fake_close_one(f, device, binding);
  fake_destroy_one(f, a);
  fake_destroy_one(f, ap);
  fake_destroy_one(f, c);
  f->ddi->DxgkDdiDestroyDevice(device);
  fake_end(f, true);
}

/* Eviction to system memory keeps contents sparse: only the 4 KiB pieces written since the last
 * zero fill cost host memory (HostBytes), and the contents come back whole (pattern and zeros). */
TEST(paging_system_copy_is_sparse) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 1);
  const UINT64 S = 256 * KiB;
  SIM_ALLOCATION_DATA data = sim_allocation_buffer((UINT)S, SIM_PLACEMENT_ANY, 0);
  HANDLE a;
  D3DKMT_HANDLE kmt;
  assert_status(fake_alloc_create(f, &data, &a, &kmt), STATUS_SUCCESS, "a");
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, a, 0, 0, 0, 1, 0), STATUS_SUCCESS, "fill (zeros)");
  HANDLE binding;
  assert_status(open_one(f, device, kmt, false, &binding), STATUS_SUCCESS, "open a");
  uint8_t cmd[128];
  size_t n = sim_cmd_fill(cmd, 0, 100 * KiB + 8, 64, 0x0BADF00Du); /* one 4 KiB piece */
  assert_status(fake_submit(f, device, &binding, 1, cmd, (UINT)n), STATUS_SUCCESS, "write 64 bytes");
  fake_run_engine(f);
  sim_miniport_stats before, during, after;
  sim_miniport_get_stats(&before);
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 1, 0, 0, 0), STATUS_SUCCESS, "to system");
  sim_miniport_get_stats(&during);
  const UINT64 header = 24 + 8 * (S / 4096);
  expect_u64_eq(during.system_bytes - before.system_bytes, header + 4096, "the system copy: header + one 4 KiB block");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a, S, 0, 0, 1, 512 * KiB), STATUS_SUCCESS, "back to memory");
  sim_miniport_get_stats(&after);
  expect_u64_eq(after.system_bytes, before.system_bytes, "the system copy is freed");
  sim_miniport_events_clear();
  n = sim_cmd_check(cmd, 0, 0, 100 * KiB + 8, 0);
  n += sim_cmd_check(cmd + n, 0, 100 * KiB + 8, 64, 0x0BADF00Du);
  n += sim_cmd_check(cmd + n, 0, 100 * KiB + 72, S - 100 * KiB - 72, 0);
  assert_status(fake_submit(f, device, &binding, 1, cmd, (UINT)n), STATUS_SUCCESS, "check");
  fake_run_engine(f);
  sim_event events[2];
  expect_u64_eq(last_events(events, 2), 0, "zeros, the pattern, zeros: contents survived");
  fake_close_one(f, device, binding);
  fake_destroy_one(f, a);
  f->ddi->DxgkDdiDestroyDevice(device);
  fake_end(f, true);
}

/* ---- Objects: open rules, create rollback, resources, zombies, removal -------------------------------- */

TEST(open_rules_and_rollback) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 1);
  placed a = place(f, device, 8 * KiB, SIM_PLACEMENT_ANY, 1, 0);
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  ALDDI_LIVE_OBJECTS live_before = fake_live(f);
  HANDLE binding;
  expect_status(open_one(f, device, a.kmt, false, &binding), STATUS_INVALID_PARAMETER, "second binding on one device");
  expect_status(open_one(f, device, 0xFFFF, false, &binding), STATUS_INVALID_HANDLE, "unknown handle");
  /* Two in one call, the second bad: the first is undone. */
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(4 * KiB, SIM_PLACEMENT_ANY, 0);
  HANDLE b;
  D3DKMT_HANDLE b_kmt;
  assert_status(fake_alloc_create(f, &data, &b, &b_kmt), STATUS_SUCCESS, "b");
  assert_status(fake_paging(f, DXGK_OPERATION_FILL, b, 4096, 0, 0, 2, 0), STATUS_SUCCESS, "fill b");
  sim_miniport_get_stats(&before);
  live_before = fake_live(f);
  DXGK_OPENALLOCATIONINFO infos[2];
  memset(infos, 0, sizeof infos);
  infos[0].hAllocation = b_kmt;
  infos[1].hAllocation = 0xFFFE;
  DXGKARG_OPENALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 2;
  args.pOpenAllocation = infos;
  expect_status(f->ddi->DxgkDdiOpenAllocation(device, &args), STATUS_INVALID_HANDLE, "second entry unknown");
  expect_ptr_eq(infos[0].hDeviceSpecificAllocation, NULL, "no handle written");
  sim_miniport_get_stats(&after);
  ALDDI_LIVE_OBJECTS live_after = fake_live(f);
  expect_u64_eq(live_after.OpenAllocations, live_before.OpenAllocations, "no binding left");
  expect_u64_eq(after.mapped_bytes, before.mapped_bytes, "no mapping left");
  expect_u64_eq(after.va_reserved_bytes, before.va_reserved_bytes, "no VA left");
  expect_u64_eq(live_after.HostBytes, live_before.HostBytes, "no host bytes");
  args.Flags.Reserved = 1;
  args.NumAllocations = 1;
  expect_status(f->ddi->DxgkDdiOpenAllocation(device, &args), STATUS_INVALID_PARAMETER, "reserved flag");
  fake_close_one(f, device, a.binding);
  fake_destroy_one(f, a.allocation);
  fake_destroy_one(f, b);
  f->ddi->DxgkDdiDestroyDevice(device);
  fake_end(f, true);
}

TEST(create_is_all_or_nothing_and_resources) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  SIM_ALLOCATION_DATA good = sim_allocation_buffer(4096, 0, 0), bad = good;
  bad.Placement = 7;
  DXGK_ALLOCATIONINFO infos[3];
  memset(infos, 0, sizeof infos);
  const SIM_ALLOCATION_DATA *datas[3] = {&good, &bad, &good};
  for (int i = 0; i < 3; i++) {
    infos[i].pPrivateDriverData = (void *)datas[i];
    infos[i].PrivateDriverDataSize = sizeof good;
  }
  DXGKARG_CREATEALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 3;
  args.pAllocationInfo = infos;
  args.Flags.Resource = 1;
  expect_status(f->ddi->DxgkDdiCreateAllocation(f->ctx, &args), STATUS_INVALID_PARAMETER, "the second is bad");
  expect_ptr_eq(infos[0].hAllocation, NULL, "no handle written");
  expect_ptr_eq(args.hResource, NULL, "no resource");
  ALDDI_LIVE_OBJECTS live = fake_live(f);
  expect_u64_eq(live.Allocations + live.Resources + live.HostBytes, 0, "nothing made");
  infos[1].pPrivateDriverData = &good;
  assert_status(f->ddi->DxgkDdiCreateAllocation(f->ctx, &args), STATUS_SUCCESS, "three in a resource");
  HANDLE resource = args.hResource;
  expect_ptr_ne(resource, NULL, "resource");
  live = fake_live(f);
  expect_u64_eq(live.Allocations, 3, "three");
  expect_u64_eq(live.Resources, 1, "one resource");
  /* Add one more to it. */
  DXGK_ALLOCATIONINFO more;
  memset(&more, 0, sizeof more);
  more.pPrivateDriverData = &good;
  more.PrivateDriverDataSize = sizeof good;
  DXGKARG_CREATEALLOCATION add;
  memset(&add, 0, sizeof add);
  add.NumAllocations = 1;
  add.pAllocationInfo = &more;
  add.Flags.Resource = 1;
  add.hResource = resource;
  assert_status(f->ddi->DxgkDdiCreateAllocation(f->ctx, &add), STATUS_SUCCESS, "add");
  expect_ptr_eq(add.hResource, resource, "same resource");
  /* DestroyResource must name all four. */
  HANDLE list[4] = {infos[0].hAllocation, infos[1].hAllocation, infos[2].hAllocation, more.hAllocation};
  DXGKARG_DESTROYALLOCATION destroy;
  memset(&destroy, 0, sizeof destroy);
  destroy.NumAllocations = 3;
  destroy.pAllocationList = list;
  destroy.hResource = resource;
  destroy.Flags.DestroyResource = 1;
  expect_status(f->ddi->DxgkDdiDestroyAllocation(f->ctx, &destroy), STATUS_INVALID_PARAMETER, "not all of it");
  HANDLE twice[2] = {list[0], list[0]};
  destroy.NumAllocations = 2;
  destroy.pAllocationList = twice;
  destroy.Flags.DestroyResource = 0;
  expect_status(f->ddi->DxgkDdiDestroyAllocation(f->ctx, &destroy), STATUS_INVALID_PARAMETER, "duplicate");
  destroy.NumAllocations = 4;
  destroy.pAllocationList = list;
  destroy.Flags.DestroyResource = 1;
  expect_status(f->ddi->DxgkDdiDestroyAllocation(f->ctx, &destroy), STATUS_SUCCESS, "all four and the resource");
  fake_end(f, true);
}

TEST(zombie_device_freed_by_its_last_completion) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 1);
  expect_status(fake_submit(f, device, NULL, 0, NULL, 0), STATUS_SUCCESS, "a Null submission");
  expect_status(f->ddi->DxgkDdiDestroyDevice(device), STATUS_SUCCESS, "destroy with work queued");
  sim_miniport_stats s;
  sim_miniport_get_stats(&s);
  expect_u64_eq(s.devices, 0, "no live device");
  expect_u64_eq(s.zombie_devices, 1, "a zombie keeps the address space");
  expect_u64_gt(fake_live(f).HostBytes, 0, "its page tables still count");
  expect_status(f->ddi->DxgkDdiDestroyDevice(device), STATUS_INVALID_HANDLE, "no longer a device");
  expect_u64_eq(fake_run_engine(f), 1, "the work runs");
  sim_miniport_get_stats(&s);
  expect_u64_eq(s.zombie_devices, 0, "freed by the completion");
  expect_u64_eq(fake_fences(f), 1, "fence reported");
  /* A zombie left at RemoveDevice is freed there (its work is cancelled, not reported). */
  device = fake_device_create(f, 2);
  expect_status(fake_submit(f, device, NULL, 0, NULL, 0), STATUS_SUCCESS, "queued");
  expect_status(f->ddi->DxgkDdiDestroyDevice(device), STATUS_SUCCESS, "zombie");
  fake_end(f, false);
}

TEST(device_removed_sticks) {
  fault_injector inj;
  fault_injector_init(&inj);
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  config.Faults = &inj;
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 1);
  placed a = place(f, device, 4 * KiB, SIM_PLACEMENT_ANY, 1, 0);
  fault_injector_arm(&inj, FAULT_DEVICE_REMOVED, 1, 0);
  uint8_t cmd[64];
  UINT n = (UINT)sim_cmd_fill(cmd, 0, 0, 16, 1);
  expect_status(fake_submit(f, device, &a.binding, 1, cmd, n), STATUS_DEVICE_REMOVED, "removed now");
  expect_status(fake_submit(f, device, &a.binding, 1, cmd, n), STATUS_DEVICE_REMOVED, "and stays removed");
  DXGKARG_CREATEDEVICE create;
  memset(&create, 0, sizeof create);
  expect_status(f->ddi->DxgkDdiCreateDevice(f->ctx, &create), STATUS_DEVICE_REMOVED, "no new device");
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(4096, 0, 0);
  HANDLE b;
  expect_status(fake_alloc_create(f, &data, &b, NULL), STATUS_DEVICE_REMOVED, "no new allocation");
  HANDLE binding;
  expect_status(open_one(f, device, a.kmt, true, &binding), STATUS_DEVICE_REMOVED, "no new binding");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a.allocation, 4096, 1, 0, 0, 0), STATUS_DEVICE_REMOVED, "no paging");
  expect_u64_eq(fault_injector_failures(&inj, FAULT_DEVICE_REMOVED), 1, "asked once, then remembered");
  /* Teardown still works. */
  expect_status(fake_close_one(f, device, a.binding), STATUS_SUCCESS, "close");
  expect_status(fake_destroy_one(f, a.allocation), STATUS_SUCCESS, "destroy");
  expect_status(f->ddi->DxgkDdiDestroyDevice(device), STATUS_SUCCESS, "destroy device");
  fake_end(f, true);
}

/* The wrong-answer points: each makes a DDI that succeeds answer one broken output, and the sim
 * keeps exactly what its answer names (an object behind a NULL handle is taken back). */
TEST(wrong_answers_are_answered_and_take_back_what_they_hide) {
  fault_injector inj;
  fault_injector_init(&inj);
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  config.Faults = &inj;
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 1);
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(4096, 0, 0);
  HANDLE good;
  D3DKMT_HANDLE good_kmt;
  assert_status(fake_alloc_create(f, &data, &good, &good_kmt), STATUS_SUCCESS, "a plain create");
  DXGK_ALLOCATIONINFO reference;
  memset(&reference, 0, sizeof reference);
  expect_status(SimDescribeAllocation(&config, &data, sizeof data, &reference), STATUS_SUCCESS, "describe");

  /* Size, alignment, segment set, pitch, eviction set, priority, flags, preferred segment: the
   * last allocation's output is broken, the objects live. */
  static const enum fault_point field_points[] = {
      FAULT_CREATE_UNALIGNED_SIZE,         FAULT_CREATE_BAD_ALIGNMENT,         FAULT_CREATE_UNDESCRIBED_SEGMENT,
      FAULT_CREATE_SHORT_PITCH,            FAULT_CREATE_EVICTION_NOT_APERTURE, FAULT_CREATE_ZERO_PRIORITY,
      FAULT_CREATE_CACHED_NOT_CPU_VISIBLE, FAULT_CREATE_PREFERRED_RESERVED,    FAULT_CREATE_PREFERRED_UNSUPPORTED};
  for (size_t k = 0; k < sizeof field_points / sizeof field_points[0]; k++) {
    DXGK_ALLOCATIONINFO infos[2];
    memset(infos, 0, sizeof infos);
    for (int i = 0; i < 2; i++) {
      infos[i].pPrivateDriverData = &data;
      infos[i].PrivateDriverDataSize = sizeof data;
    }
    DXGKARG_CREATEALLOCATION args;
    memset(&args, 0, sizeof args);
    args.NumAllocations = 2;
    args.pAllocationInfo = infos;
    fault_injector_arm(&inj, field_points[k], 1, 0);
    assert_status(f->ddi->DxgkDdiCreateAllocation(f->ctx, &args), STATUS_SUCCESS, "answers success");
    expect_u64_eq(fault_injector_failures(&inj, field_points[k]), 1, "point %zu fired", k);
    expect_u64_eq(infos[0].Size, reference.Size, "the first answer is right");
    expect_u64_eq(infos[0].Alignment, reference.Alignment, "first alignment");
    expect_u64_eq(infos[0].SupportedWriteSegmentSet, reference.SupportedWriteSegmentSet, "first set");
    switch (field_points[k]) {
    case FAULT_CREATE_UNALIGNED_SIZE: expect_u64_ne(infos[1].Size % 4096, 0, "size not a multiple of 4096"); break;
    case FAULT_CREATE_BAD_ALIGNMENT:
      expect_true(infos[1].Alignment & (infos[1].Alignment - 1), "alignment not a power of two");
      break;
    case FAULT_CREATE_UNDESCRIBED_SEGMENT:
      expect_true(infos[1].SupportedWriteSegmentSet & ~0x3u, "a segment the sim never described");
      break;
    case FAULT_CREATE_SHORT_PITCH:
      expect_true(infos[1].PitchAlignedSize != 0 && infos[1].PitchAlignedSize < infos[1].Size, "pitch below size");
      break;
    case FAULT_CREATE_EVICTION_NOT_APERTURE:
      expect_true(infos[1].EvictionSegmentSet & (1u << (SIM_SEGMENT_ID_MEMORY - 1)), "evicts to the memory segment");
      break;
    case FAULT_CREATE_ZERO_PRIORITY: expect_u64_eq(infos[1].AllocationPriority, 0, "priority 0"); break;
    case FAULT_CREATE_CACHED_NOT_CPU_VISIBLE:
      expect_true(infos[1].Flags.Cached && !infos[1].Flags.CpuVisible, "cached, not CPU-visible");
      break;
    case FAULT_CREATE_PREFERRED_RESERVED: expect_u64_ne(infos[1].PreferredSegment.Reserved, 0, "reserved bits"); break;
    default:
      expect_true(!(infos[1].SupportedWriteSegmentSet & (1u << (infos[1].PreferredSegment.SegmentId0 - 1))),
                  "a preferred segment outside the supported set");
      break;
    }
    expect_u64_ne(infos[0].AllocationPriority, 0, "the first priority is right");
    expect_u64_eq(infos[0].PreferredSegment.Value, reference.PreferredSegment.Value, "first preferred segment");
    expect_u64_eq(infos[0].EvictionSegmentSet, reference.EvictionSegmentSet, "first eviction set");
    expect_u64_eq(fake_live(f).Allocations, 3, "both allocations live");
    HANDLE list[2] = {infos[0].hAllocation, infos[1].hAllocation};
    DXGKARG_DESTROYALLOCATION destroy;
    memset(&destroy, 0, sizeof destroy);
    destroy.NumAllocations = 2;
    destroy.pAllocationList = list;
    expect_status(f->ddi->DxgkDdiDestroyAllocation(f->ctx, &destroy), STATUS_SUCCESS, "destroy both");
  }

  /* A NULL handle: the last allocation is gone already; a new resource stays (named). */
  DXGK_ALLOCATIONINFO infos[3];
  memset(infos, 0, sizeof infos);
  for (int i = 0; i < 3; i++) {
    infos[i].pPrivateDriverData = &data;
    infos[i].PrivateDriverDataSize = sizeof data;
  }
  DXGKARG_CREATEALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 3;
  args.pAllocationInfo = infos;
  args.Flags.Resource = 1;
  fault_injector_arm(&inj, FAULT_CREATE_NULL_ALLOCATION, 1, 0);
  assert_status(f->ddi->DxgkDdiCreateAllocation(f->ctx, &args), STATUS_SUCCESS, "answers success");
  expect_ptr_eq(infos[2].hAllocation, NULL, "the last handle is NULL");
  expect_ptr_ne(infos[1].hAllocation, NULL, "the others are not");
  ALDDI_LIVE_OBJECTS live = fake_live(f);
  expect_u64_eq(live.Allocations, 3, "the plain one and two of three");
  expect_u64_eq(live.Resources, 1, "the resource");
  HANDLE list[2] = {infos[0].hAllocation, infos[1].hAllocation};
  DXGKARG_DESTROYALLOCATION destroy;
  memset(&destroy, 0, sizeof destroy);
  destroy.NumAllocations = 2;
  destroy.pAllocationList = list;
  destroy.hResource = args.hResource;
  destroy.Flags.DestroyResource = 1;
  expect_status(f->ddi->DxgkDdiDestroyAllocation(f->ctx, &destroy), STATUS_SUCCESS,
                "the two it named are the whole resource");

  /* A NULL binding: the others stay open, the last is closed already. */
  HANDLE binding = (HANDLE)1;
  fault_injector_arm(&inj, FAULT_OPEN_NULL_BINDING, 1, 0);
  assert_status(open_one(f, device, good_kmt, false, &binding), STATUS_SUCCESS, "answers success");
  expect_ptr_eq(binding, NULL, "a NULL binding");
  expect_u64_eq(fake_live(f).OpenAllocations, 0, "and nothing open");

  /* A NULL device: nothing is left behind. */
  DXGKARG_CREATEDEVICE create;
  memset(&create, 0, sizeof create);
  create.hDevice = (HANDLE)(uintptr_t)2;
  fault_injector_arm(&inj, FAULT_CREATE_DEVICE_NULL, 1, 0);
  assert_status(f->ddi->DxgkDdiCreateDevice(f->ctx, &create), STATUS_SUCCESS, "answers success");
  expect_ptr_eq(create.hDevice, NULL, "a NULL device");
  expect_u64_eq(fake_live(f).Devices, 1, "only the first device");

  expect_status(fake_destroy_one(f, good), STATUS_SUCCESS, "destroy the plain one");
  expect_status(f->ddi->DxgkDdiDestroyDevice(device), STATUS_SUCCESS, "destroy device");
  fake_end(f, true);
}

/* A TRANSFER whose re-map fails (page-table page) still moves the contents; the binding is mapped
 * again at the next submit, which fails cleanly while the map cannot be made. */
TEST(remap_failure_maps_on_demand) {
  fault_injector inj;
  fault_injector_init(&inj);
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  config.Faults = &inj;
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 1);
  placed a = place(f, device, 8 * KiB, SIM_PLACEMENT_ANY, 1, 0);
  uint8_t cmd[64];
  UINT n = (UINT)sim_cmd_fill(cmd, 0, 0, 8 * KiB, 0xFEEDFACEu);
  assert_status(fake_submit(f, device, &a.binding, 1, cmd, n), STATUS_SUCCESS, "fill");
  fake_run_engine(f);
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  fault_injector_arm(&inj, FAULT_PAGE_TABLE_PAGE, 1, FAULT_REPEAT_FOREVER);
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a.allocation, 8 * KiB, 1, 0, 2, 0), STATUS_SUCCESS,
                "the transfer succeeds");
  sim_miniport_get_stats(&after);
  expect_u64_eq(after.mapped_bytes, before.mapped_bytes - 8 * KiB, "the binding was left unmapped");
  n = (UINT)sim_cmd_check(cmd, 0, 0, 8 * KiB, 0xFEEDFACEu);
  expect_status(fake_submit(f, device, &a.binding, 1, cmd, n), STATUS_NO_MEMORY, "the map on demand fails");
  expect_u64_eq(fake_run_engine(f), 0, "nothing queued");
  fault_injector_disarm_all(&inj);
  sim_miniport_events_clear();
  expect_status(fake_submit(f, device, &a.binding, 1, cmd, n), STATUS_SUCCESS, "mapped on demand");
  expect_u64_eq(fake_run_engine(f), 1, "ran");
  sim_event events[2];
  expect_u64_eq(last_events(events, 2), 0, "contents moved");
  sim_miniport_get_stats(&after);
  expect_u64_eq(after.lazy_maps, before.lazy_maps + 1, "one lazy map");
  fake_close_one(f, device, a.binding);
  fake_destroy_one(f, a.allocation);
  f->ddi->DxgkDdiDestroyDevice(device);
  fake_end(f, true);
}

/* ---- Host memory per allocation --------------------------------------------------------------------- */

/* 1024 allocations of 4 KiB, one CreateAllocation and one OpenAllocation each, side by side in one
 * device's address space: what each costs in host memory (HostBytes). */
TEST(host_bytes_per_4k_allocation) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 1);
  enum { N = 1024 };
  static placed all[N];
  UINT64 before = fake_live(f).HostBytes;
  sim_miniport_stats s0, s1;
  sim_miniport_get_stats(&s0);
  for (int i = 0; i < N; i++) all[i] = place(f, device, 4096, SIM_PLACEMENT_ANY, 1, (UINT64)i * 4096);
  UINT64 after = fake_live(f).HostBytes;
  sim_miniport_get_stats(&s1);
  UINT64 per = (after - before) / N;
  printf("HostBytes per 4 KiB allocation + binding: %llu (objects 88 + 88, page tables %llu); VA records %llu\n",
         (unsigned long long)per, (unsigned long long)((s1.page_table_bytes - s0.page_table_bytes) / N),
         (unsigned long long)((s1.va_host_bytes - s0.va_host_bytes) / N));
  /* One-allocation blocks: a 48-byte header + a 40-byte object each (sim_internal.h). */
  expect_u64_ge(per, 88 + 88 + 8, "at least the objects and a leaf");
  expect_u64_le(per, 240, "lean");
  for (int i = 0; i < N; i++) {
    fake_close_one(f, device, all[i].binding);
    fake_destroy_one(f, all[i].allocation);
  }
  f->ddi->DxgkDdiDestroyDevice(device);
  fake_end(f, true);
}

/* ---- Concurrency (TSan) --------------------------------------------------------------------------------- */

typedef struct race {
  fake_port *f;
  HANDLE device;
  D3DKMT_HANDLE shared_kmt;
  HANDLE shared;
  placed own;
  int rounds;
} race;

/* Opens and closes a binding of the shared allocation, and works on its own allocation. */
static void *race_binder(void *arg) {
  race *r = arg;
  uint8_t cmd[64];
  for (int i = 0; i < r->rounds; i++) {
    HANDLE binding;
    if (open_one(r->f, r->device, r->shared_kmt, (i & 1) != 0, &binding) == STATUS_SUCCESS)
      fake_close_one(r->f, r->device, binding);
    UINT n = (UINT)sim_cmd_fill(cmd, 0, 0, 4096, (UINT)i);
    DXGK_ALLOCATIONLIST list = {.hDeviceSpecificAllocation = r->own.binding};
    DXGKARG_SUBMITCOMMAND args;
    memset(&args, 0, sizeof args);
    args.DmaBufferSize = args.DmaBufferSubmissionEndOffset = n;
    args.SubmissionFenceId = (UINT)(i + 1);
    args.hContext = r->device;
    args.pAlDmaBuffer = cmd;
    args.pAlAllocationList = &list;
    args.AlAllocationListSize = 1;
    r->f->ddi->DxgkDdiSubmitCommand(r->f->ctx, &args);
  }
  return NULL;
}

/* Moves the shared allocation back and forth between the segments and system memory. */
static void *race_pager(void *arg) {
  race *r = arg;
  UINT from = 1;
  UINT64 offset = 0;
  for (int i = 0; i < r->rounds; i++) {
    UINT to = (UINT)(i % 3 == 2 ? 0 : (i % 3) + 1);
    if (to == from) to = to == 1 ? 2 : 1;
    UINT64 to_offset = to ? (UINT64)(1 + i % 8) * 64 * KiB : 0;
    if (fake_paging(r->f, DXGK_OPERATION_TRANSFER, r->shared, 8 * KiB, from, offset, to, to_offset) == STATUS_SUCCESS) {
      from = to;
      offset = to_offset;
    }
  }
  return NULL;
}

TEST(concurrent_open_close_paging_threaded_engine) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  config.EngineMode = SIM_ENGINE_THREADED;
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  race r[2];
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(8 * KiB, SIM_PLACEMENT_ANY, 0);
  HANDLE shared;
  D3DKMT_HANDLE shared_kmt;
  assert_status(fake_alloc_create(f, &data, &shared, &shared_kmt), STATUS_SUCCESS, "shared");
  assert_status(fake_paging(f, DXGK_OPERATION_FILL, shared, 8 * KiB, 0, 0, 1, 0), STATUS_SUCCESS, "fill");
  for (int i = 0; i < 2; i++) {
    r[i] = (race){.f = f, .device = fake_device_create(f, (UINT)(10 + i)), .shared_kmt = shared_kmt, .shared = shared,
                  .rounds = 300};
    r[i].own = place(f, r[i].device, 4 * KiB, SIM_PLACEMENT_APERTURE_ONLY, 2, (UINT64)(2 * MiB + i * 64 * KiB));
  }
  race pager = {.f = f, .shared = shared, .rounds = 300};
  pthread_t threads[3];
  pthread_create(&threads[0], NULL, race_binder, &r[0]);
  pthread_create(&threads[1], NULL, race_binder, &r[1]);
  pthread_create(&threads[2], NULL, race_pager, &pager);
  for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
  /* Drain the engine thread: wait for every fence to be reported. */
  for (int spin = 0; spin < 10000; spin++) {
    sim_miniport_stats s;
    sim_miniport_get_stats(&s);
    if (s.queued_submissions == 0) break;
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  sim_miniport_get_stats(&after);
  expect_u64_eq(after.gpu_faults, before.gpu_faults, "no fault: work never touched the moving allocation");
  expect_u64_eq(after.queued_submissions, 0, "drained");
  for (int i = 0; i < 2; i++) {
    fake_close_one(f, r[i].device, r[i].own.binding);
    fake_destroy_one(f, r[i].own.allocation);
    f->ddi->DxgkDdiDestroyDevice(r[i].device);
  }
  fake_destroy_one(f, shared);
  fake_end(f, true);
}

/* ---- The hardware walk ---------------------------------------------------------------------------- */

static bool hardware_ok(fake_port *f, char *msg, size_t cap) {
  msg[0] = '\0';
  char live[512];
  const bool ok = sim_miniport_check_hardware(f, 0, msg, cap);
  /* The per-call form agrees here: no test corrupts what only gpu_segment_check sees. */
  const bool live_ok = sim_miniport_check_hardware(f, SIM_CHECK_HARDWARE_LIVE, live, sizeof live);
  expect_true(ok == live_ok && (ok || strcmp(msg, live) == 0), "the live walk says %s: %s", live_ok ? "ok" : "broken", live);
  return ok;
}

#define expect_hardware_ok(f, what)                                                                          \
  do {                                                                                                       \
    char msg_[512];                                                                                          \
    expect_true(hardware_ok(f, msg_, sizeof msg_), "%s: the hardware walk fails: %s", what, msg_);          \
  } while (0)

/* The walk fails, and its message holds @needle. */
#define expect_hardware_broken(f, needle, what)                                                               \
  do {                                                                                                       \
    char msg_[512];                                                                                          \
    bool ok_ = hardware_ok(f, msg_, sizeof msg_);                                                            \
    expect_false(ok_, "%s: the hardware walk passes", what);                                                 \
    expect_true(strstr(msg_, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg_, needle);        \
  } while (0)

/* Opens @a and @b on @device in ONE call: one binding block holding both. */
static void open_two(fake_port *f, HANDLE device, D3DKMT_HANDLE a, D3DKMT_HANDLE b, HANDLE out[2]) {
  DXGK_OPENALLOCATIONINFO info[2];
  memset(info, 0, sizeof info);
  info[0].hAllocation = a;
  info[1].hAllocation = b;
  DXGKARG_OPENALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 2;
  args.pOpenAllocation = info;
  expect_status(f->ddi->DxgkDdiOpenAllocation(device, &args), STATUS_SUCCESS, "open two");
  out[0] = info[0].hDeviceSpecificAllocation;
  out[1] = info[1].hDeviceSpecificAllocation;
}

TEST(hardware_walk_passes_on_sound_states) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  expect_hardware_ok(f, "empty adapter");
  char msg[256];
  expect_false(sim_miniport_check_hardware(&config, 0, msg, sizeof msg), "a handle no adapter was started with");
  expect_true(strstr(msg, "no live sim adapter was started with DeviceHandle") != NULL, "named: %s", msg);
  expect_false(sim_miniport_check_hardware(NULL, 0, NULL, 0), "NULL handle, no message buffer");
  expect_false(sim_miniport_check_hardware(f, 0x80u, msg, sizeof msg), "an unknown flag");
  expect_true(strstr(msg, "unknown flags 0x80") != NULL, "named: %s", msg);

  HANDLE d1 = fake_device_create(f, 1), d2 = fake_device_create(f, 2);
  placed a = place(f, d1, 16 * KiB, SIM_PLACEMENT_ANY, SIM_SEGMENT_ID_MEMORY, 0);
  placed b = place(f, d1, 8 * KiB, SIM_PLACEMENT_APERTURE_ONLY, SIM_SEGMENT_ID_APERTURE, 64 * KiB);
  expect_hardware_ok(f, "two placed allocations, bound");
  HANDLE pair[2];
  open_two(f, d2, a.kmt, b.kmt, pair);
  expect_status(fake_close_one(f, d2, pair[0]), STATUS_SUCCESS, "close one of a block");
  expect_hardware_ok(f, "a closed binding in a block still held");
  HANDLE read_only;
  expect_status(open_one(f, fake_device_create(f, 3), b.kmt, true, &read_only), STATUS_SUCCESS, "read-only binding");
  expect_hardware_ok(f, "a read-only binding");

  uint8_t cmd[64];
  size_t n = sim_cmd_fill(cmd, 0, 0, 4096, 0x5A5A5A5Au);
  expect_status(fake_submit(f, d1, &a.binding, 1, cmd, (UINT)n), STATUS_SUCCESS, "fill");
  expect_hardware_ok(f, "work queued");
  expect_u64_eq(fake_run_engine(f), 1, "runs");
  expect_hardware_ok(f, "work completed");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a.allocation, 16 * KiB, SIM_SEGMENT_ID_MEMORY, 0, 0, 0),
                STATUS_SUCCESS, "evict to system memory");
  expect_hardware_ok(f, "an allocation in system memory, its bindings unmapped");
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a.allocation, 16 * KiB, 0, 0, SIM_SEGMENT_ID_APERTURE, 0),
                STATUS_SUCCESS, "back to the aperture");
  expect_hardware_ok(f, "back in a segment, remapped");
  expect_status(fake_submit(f, d2, NULL, 0, NULL, 0), STATUS_SUCCESS, "queued on d2");
  expect_status(f->ddi->DxgkDdiDestroyDevice(d2), STATUS_SUCCESS, "d2 becomes a zombie");
  expect_hardware_ok(f, "a zombie device");
  expect_u64_eq(fake_run_engine(f), 1, "the zombie's work runs");
  expect_hardware_ok(f, "the zombie freed");
  /* What a buggy port does: destroy under an open binding. The stale mapping is the sim's
   * documented state (a GPU access faults on it), not a broken hardware invariant. */
  expect_status(fake_destroy_one(f, b.allocation), STATUS_SUCCESS, "destroy while bound");
  expect_hardware_ok(f, "an orphaned binding keeps its stale mapping");
  fake_end(f, false);
}

TEST(hardware_walk_catches_a_broken_page_table_entry) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 0x40000005u);
  placed a = place(f, device, 8 * KiB, SIM_PLACEMENT_ANY, SIM_SEGMENT_ID_MEMORY, 0);
  expect_hardware_ok(f, "sound");
  gpu_as *as = ((sim_device *)device)->as;
  gpu_segment *memory = ((sim_adapter *)f->ctx)->segments[0];
  const UINT64 va = ((sim_binding *)a.binding)->va;
  /* The binding's first page points at another physical page. */
  expect_status(gpu_as_unmap_known(as, va, 4096), STATUS_SUCCESS, "corrupt: unmap the first page");
  expect_hardware_broken(f, "is mapped, but VA 0x", "a lost entry");
  expect_status(gpu_as_map(as, va, memory, 64 * KiB, 4096, 0), STATUS_SUCCESS, "corrupt: map it elsewhere");
  expect_hardware_broken(f, "maps segment 1 offset 0x10000, the allocation is at segment 1 offset 0x0", "a wrong entry");
  expect_hardware_broken(f, "device 0x40000005: binding of allocation", "the message names the device");
  expect_status(gpu_as_unmap_known(as, va, 4096), STATUS_SUCCESS, "repair");
  expect_status(gpu_as_map(as, va, memory, 0, 4096, 0), STATUS_SUCCESS, "repair");
  expect_hardware_ok(f, "repaired");
  /* Its last page loses write access. */
  expect_status(gpu_as_unmap_known(as, va + 4096, 4096), STATUS_SUCCESS, "corrupt: unmap the last page");
  expect_hardware_broken(f, "is mapped, but VA 0x", "a lost last entry");
  expect_status(gpu_as_map(as, va + 4096, memory, 4096, 4096, GPU_MAP_READ_ONLY), STATUS_SUCCESS, "corrupt: read-only");
  expect_hardware_broken(f, "is read-only, opened read-write", "a read-only entry");
  expect_status(gpu_as_unmap_known(as, va + 4096, 4096), STATUS_SUCCESS, "repair");
  expect_status(gpu_as_map(as, va + 4096, memory, 4096, 4096, 0), STATUS_SUCCESS, "repair");
  expect_hardware_ok(f, "repaired");

  /* A closed binding whose range is mapped again. */
  placed b = place(f, device, 4 * KiB, SIM_PLACEMENT_ANY, SIM_SEGMENT_ID_MEMORY, 64 * KiB);
  HANDLE pair[2];
  HANDLE other = fake_device_create(f, 0x40000006u);
  open_two(f, other, a.kmt, b.kmt, pair);
  expect_status(fake_close_one(f, other, pair[1]), STATUS_SUCCESS, "close one of the block");
  expect_hardware_ok(f, "partially closed block");
  const UINT64 closed_va = ((sim_binding *)pair[1])->va;
  expect_status(gpu_as_map(((sim_device *)other)->as, closed_va, memory, 64 * KiB, 4096, 0), STATUS_SUCCESS,
                "corrupt: map the closed range");
  expect_hardware_broken(f, "a closed binding at VA 0x", "a closed binding still mapped");
  expect_status(gpu_as_unmap_known(((sim_device *)other)->as, closed_va, 4096), STATUS_SUCCESS, "repair");
  expect_hardware_ok(f, "repaired");
  fake_end(f, false);
}

TEST(hardware_walk_catches_a_segment_page_freed_behind_the_sim) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  HANDLE device = fake_device_create(f, 7);
  placed a = place(f, device, 16 * KiB, SIM_PLACEMENT_ANY, SIM_SEGMENT_ID_MEMORY, 32 * KiB);
  gpu_segment *memory = ((sim_adapter *)f->ctx)->segments[0];
  expect_status(gpu_segment_release(memory, 44 * KiB, 4 * KiB), STATUS_SUCCESS, "corrupt: free its last page");
  char needle[160];
  snprintf(needle, sizeof needle,
           "allocation %llu is placed in segment 1 (memory) at 0x8000, but the page at 0xb000 is owned by 0",
           (unsigned long long)a.id);
  expect_hardware_broken(f, needle, "a freed page");
  expect_status(gpu_segment_commit(memory, 44 * KiB, 4 * KiB, a.id + 1), STATUS_SUCCESS, "corrupt: another owner");
  expect_hardware_broken(f, "is owned by", "a foreign owner");
  expect_status(gpu_segment_release(memory, 44 * KiB, 4 * KiB), STATUS_SUCCESS, "undo");
  expect_status(gpu_segment_commit(memory, 44 * KiB, 4 * KiB, a.id), STATUS_SUCCESS, "repair");
  expect_hardware_ok(f, "repaired");
  expect_status(gpu_segment_commit(memory, 1024 * KiB, 64 * KiB, 99), STATUS_SUCCESS, "corrupt: a stray commit");
  expect_hardware_broken(f, "segment 1 (memory) has 0x14000 bytes committed, the allocations placed in it 0x4000",
                         "committed bytes nobody placed");
  expect_status(gpu_segment_release(memory, 1024 * KiB, 64 * KiB), STATUS_SUCCESS, "repair");
  expect_hardware_ok(f, "repaired");
  fake_end(f, false);
}

TEST(hardware_walk_catches_engine_disagreement) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  fake_port *f = fake_start(&config);
  assert_ptr_ne(f, NULL, "adapter");
  sim_adapter *adapter = f->ctx;
  HANDLE device = fake_device_create(f, 9);
  expect_status(fake_submit(f, device, NULL, 0, NULL, 0), STATUS_SUCCESS, "fence 1");
  expect_u64_eq(fake_run_engine(f), 1, "runs");
  expect_hardware_ok(f, "sound");
  /* The sim's record of the completion disagrees with the engine's history. */
  adapter->completed_status = GPU_STATUS_PAGE_FAULT;
  expect_hardware_broken(f, "fence 1 completed with STATUS_SUCCESS in the engine, the sim was told GPU_STATUS_PAGE_FAULT",
                         "a completion status");
  adapter->completed_status = STATUS_SUCCESS;
  adapter->completed_fence = 0;
  expect_hardware_broken(f, "the engine's completed fence is 1, the sim's record 0", "a completed fence");
  adapter->completed_fence = 1;
  expect_hardware_ok(f, "repaired");
  /* Work the sim never submitted. */
  gpu_submission raw = {.as = ((sim_device *)device)->as, .fence = 7};
  expect_status(gpu_engine_submit(adapter->engine, &raw), STATUS_SUCCESS, "corrupt: submit behind the sim");
  expect_hardware_broken(f, "the engine's last submitted fence is 7, the sim gave it 1", "a foreign submission");
  adapter->last_fence = 7; /* now only the queued counts disagree */
  expect_hardware_broken(f, "the engine has 1 submissions queued, the sim 0", "queued counts");
  fake_end(f, false); /* RemoveDevice cancels the raw submission */
}

RUN_TESTS(T(gpu_fault_on_freed_page_is_logged), T(gpu_fault_on_freed_page_aborts_by_default),
          T(gpu_fault_on_unmapped_va), T(read_only_binding_refuses_writes), T(hostile_submissions_queue_nothing),
          T(random_streams_never_fault), T(paging_rules_and_round_trip), T(paging_system_copy_is_sparse),
          T(open_rules_and_rollback),
          T(create_is_all_or_nothing_and_resources), T(zombie_device_freed_by_its_last_completion),
          T(device_removed_sticks), T(wrong_answers_are_answered_and_take_back_what_they_hide), T(remap_failure_maps_on_demand), T(host_bytes_per_4k_allocation),
          T(concurrent_open_close_paging_threaded_engine), T(hardware_walk_passes_on_sound_states),
          T(hardware_walk_catches_a_broken_page_table_entry),
          T(hardware_walk_catches_a_segment_page_freed_behind_the_sim),
          T(hardware_walk_catches_engine_disagreement))
