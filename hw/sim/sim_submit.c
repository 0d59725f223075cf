/*
 * sim_submit.c — GPU work: DxgkDdiSubmitCommand (validate and translate a SIM command stream into
 * GPU VA commands through the submitting device's bindings, queue it on the engine), the
 * completion (fault and check reporting, DxgkCbNotifyInterrupt) and AlDdiRunEngine.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/host_alloc.h"
#include "sim_internal.h"

/* One CHECK of a queued submission: readback[readback_offset, +size) against the pattern. */
typedef struct sim_check {
  UINT64 readback_offset;
  UINT64 size;
  UINT64 offset; /* inside the allocation */
  UINT64 allocation;
  UINT pattern;
  UINT list_index;
} sim_check;

/* A queued submission: one host block (header, checks, readback), freed at completion. */
typedef struct sim_submission {
  sim_adapter *adapter;
  sim_device *device;
  size_t bytes; /* of the whole block (counted in object_bytes while queued) */
  UINT check_count;
  sim_check *checks;
  UCHAR *readback;
  size_t readback_bytes;
} sim_submission;

/* What a list entry resolved to (under the lock, at submit). */
typedef struct sim_target {
  UINT64 va;
  UINT64 size;
  UINT64 allocation; /* owner id, 0 when the binding is orphaned */
} sim_target;

static UINT load_le32(const UCHAR *p) {
  return (UINT)p[0] | (UINT)p[1] << 8 | (UINT)p[2] << 16 | (UINT)p[3] << 24;
}
static UINT64 load_le64(const UCHAR *p) { return (UINT64)load_le32(p) | (UINT64)load_le32(p + 4) << 32; }

/* ---- Parsing and translation ----------------------------------------------------------------------- */

/* What a stream needs: filled by the first (counting) pass. */
typedef struct sim_plan {
  size_t gpu_bytes;
  size_t check_count;
  UINT64 check_bytes;
} sim_plan;

static UINT64 chunks(UINT64 size) { return (size + GPU_CMD_MAX_BYTES - 1) / GPU_CMD_MAX_BYTES; }

/* Whether [offset, offset + size) lies inside @target (no overflow). */
static bool in_range(const sim_target *target, UINT64 offset, UINT64 size) {
  return offset <= target->size && size <= target->size - offset;
}

static bool overlaps(UINT64 a, UINT64 b, UINT64 size) {
  return size != 0 && (a < b ? b - a < size : a - b < size);
}

/*
 * Walks the stream @s of @bytes. With @gpu NULL it validates everything and fills @plan; else
 * (a second pass over the same bytes, already valid) it writes the GPU commands to @gpu and the
 * checks to @checks. Returns STATUS_SUCCESS or STATUS_INVALID_PARAMETER.
 */
static NTSTATUS translate(const UCHAR *s, size_t bytes, const sim_target *targets, UINT n, sim_plan *plan,
                          UCHAR *gpu, sim_check *checks) {
  size_t pos = 0, out = 0, check = 0;
  UINT64 readback = 0;
  while (pos < bytes) {
    if (bytes - pos < SIM_CMD_HEADER_BYTES) return STATUS_INVALID_PARAMETER;
    const UINT opcode = load_le32(s + pos), length = load_le32(s + pos + 4);
    pos += SIM_CMD_HEADER_BYTES;
    if (length > bytes - pos) return STATUS_INVALID_PARAMETER;
    const UCHAR *p = s + pos;
    pos += length;
    switch (opcode) {
    case SIM_CMD_NOP:
      break;
    case SIM_CMD_FILL:
    case SIM_CMD_CHECK: {
      if (length != SIM_CMD_FILL_BYTES - SIM_CMD_HEADER_BYTES) return STATUS_INVALID_PARAMETER;
      const UINT index = load_le32(p), pattern = load_le32(p + 4);
      const UINT64 offset = load_le64(p + 8), size = load_le64(p + 16);
      if (index >= n || !in_range(&targets[index], offset, size)) return STATUS_INVALID_PARAMETER;
      if (size == 0) break;
      const UINT64 va = targets[index].va + offset;
      if (opcode == SIM_CMD_FILL) {
        if (gpu == NULL) {
          plan->gpu_bytes += chunks(size) * GPU_CMD_FILL_BYTES;
          if (plan->gpu_bytes > GPU_ENGINE_MAX_STREAM_BYTES) return STATUS_INVALID_PARAMETER;
          break;
        }
        /* Chunks are multiples of 4 bytes: the pattern continues across them. */
        for (UINT64 done = 0; done < size; done += GPU_CMD_MAX_BYTES) {
          UINT64 piece = size - done < GPU_CMD_MAX_BYTES ? size - done : GPU_CMD_MAX_BYTES;
          out += gpu_cmd_fill(gpu + out, va + done, piece, pattern);
        }
      } else {
        if (gpu == NULL) {
          plan->gpu_bytes += chunks(size) * GPU_CMD_READBACK_BYTES;
          plan->check_count++;
          if (size > SIM_CMD_MAX_CHECK_BYTES - plan->check_bytes) return STATUS_INVALID_PARAMETER;
          plan->check_bytes += size;
          if (plan->gpu_bytes > GPU_ENGINE_MAX_STREAM_BYTES) return STATUS_INVALID_PARAMETER;
          break;
        }
        checks[check++] = (sim_check){.readback_offset = readback, .size = size, .offset = offset,
                                      .allocation = targets[index].allocation, .pattern = pattern,
                                      .list_index = index};
        for (UINT64 done = 0; done < size; done += GPU_CMD_MAX_BYTES) {
          UINT64 piece = size - done < GPU_CMD_MAX_BYTES ? size - done : GPU_CMD_MAX_BYTES;
          out += gpu_cmd_readback(gpu + out, va + done, piece, readback + done);
        }
        readback += size;
      }
      break;
    }
    case SIM_CMD_COPY: {
      if (length != SIM_CMD_COPY_BYTES - SIM_CMD_HEADER_BYTES) return STATUS_INVALID_PARAMETER;
      const UINT src = load_le32(p), dst = load_le32(p + 4);
      const UINT64 src_offset = load_le64(p + 8), dst_offset = load_le64(p + 16), size = load_le64(p + 24);
      if (src >= n || dst >= n || !in_range(&targets[src], src_offset, size) ||
          !in_range(&targets[dst], dst_offset, size))
        return STATUS_INVALID_PARAMETER;
      const UINT64 src_va = targets[src].va + src_offset, dst_va = targets[dst].va + dst_offset;
      if (overlaps(src_va, dst_va, size)) return STATUS_INVALID_PARAMETER;
      if (size == 0) break;
      if (gpu == NULL) {
        plan->gpu_bytes += chunks(size) * GPU_CMD_COPY_BYTES;
        if (plan->gpu_bytes > GPU_ENGINE_MAX_STREAM_BYTES) return STATUS_INVALID_PARAMETER;
        break;
      }
      for (UINT64 done = 0; done < size; done += GPU_CMD_MAX_BYTES) {
        UINT64 piece = size - done < GPU_CMD_MAX_BYTES ? size - done : GPU_CMD_MAX_BYTES;
        out += gpu_cmd_copy(gpu + out, src_va + done, dst_va + done, piece);
      }
      break;
    }
    default:
      return STATUS_INVALID_PARAMETER;
    }
  }
  return STATUS_SUCCESS;
}

/* ---- Completion ----------------------------------------------------------------------------------- */

static void report_fault(sim_adapter *adapter, sim_device *device, UINT64 fence) {
  gpu_fault fault;
  memset(&fault, 0, sizeof fault);
  (void)gpu_mmu_fault_log(adapter->mmu, &fault, 1);
  sim_event event;
  memset(&event, 0, sizeof event);
  event.kind = SIM_EVENT_GPU_FAULT;
  event.adapter = adapter->serial;
  event.device = device->port_handle;
  event.as_id = gpu_as_id(device->as);
  event.fence = fence;
  event.fault_kind = (uint32_t)fault.kind;
  event.write = fault.access == GPU_ACCESS_WRITE;
  event.va = fault.va;
  event.segment_id = fault.segment_id;
  event.phys = fault.phys;
  event.allocation = fault.last_owner;
  sim_event_record(&event);
  sim_total_add(&sim_global_totals.gpu_faults, 1);
  if (adapter->config.Flags & SIM_HW_ABORT_ON_GPU_FAULT) {
    fprintf(stderr,
            "alloclab sim: GPU page fault: %s at VA 0x%" PRIx64 " on device 0x%08x (%s, address "
            "space %u, fence %" PRIu64 ", segment %u offset 0x%" PRIx64 "), page last owned by "
            "allocation %" PRIu64 "\n",
            sim_fault_kind_name(event.fault_kind), event.va, event.device, event.write ? "write" : "read",
            event.as_id, fence, event.segment_id, event.phys, event.allocation);
    fflush(stderr);
    abort();
  }
}

static void run_checks(sim_adapter *adapter, const sim_submission *record, UINT64 fence) {
  for (UINT c = 0; c < record->check_count; c++) {
    const sim_check *check = &record->checks[c];
    const UCHAR *bytes = record->readback + check->readback_offset;
    for (UINT64 k = 0; k < check->size; k++) {
      const UCHAR expected = (UCHAR)(check->pattern >> (8 * (k % 4)));
      if (bytes[k] == expected) continue;
      sim_event event;
      memset(&event, 0, sizeof event);
      event.kind = SIM_EVENT_CHECK_FAILED;
      event.adapter = adapter->serial;
      event.device = record->device->port_handle;
      event.as_id = gpu_as_id(record->device->as);
      event.fence = fence;
      event.allocation = check->allocation;
      event.list_index = check->list_index;
      event.offset = check->offset + k;
      event.expected = expected;
      event.found = bytes[k];
      sim_event_record(&event);
      sim_total_add(&sim_global_totals.check_failures, 1);
      if (adapter->config.Flags & SIM_HW_ABORT_ON_GPU_FAULT) {
        fprintf(stderr,
                "alloclab sim: content check failed: allocation %" PRIu64 " (list index %u) at "
                "offset 0x%" PRIx64 ": expected 0x%02x, found 0x%02x (device 0x%08x, fence %" PRIu64 ")\n",
                event.allocation, event.list_index, event.offset, event.expected, event.found,
                event.device, fence);
        fflush(stderr);
        abort();
      }
      break; /* one event per check: the first wrong byte */
    }
  }
}

/* The engine's completion callback (engine thread, or inside AlDdiRunEngine, or the cancel in
 * RemoveDevice). Reports, frees the record (and a zombie device whose last work this was), then
 * tells the port, with no lock held. */
static void on_complete(void *ctx, uint64_t fence, NTSTATUS status) {
  sim_submission *record = ctx;
  sim_adapter *adapter = record->adapter;
  sim_device *device = record->device;
  sim_total_add(&sim_global_totals.completions, 1);
  if (status == GPU_STATUS_PAGE_FAULT)
    report_fault(adapter, device, fence);
  else if (status == STATUS_SUCCESS)
    run_checks(adapter, record, fence);

  DXGKARGCB_NOTIFY_INTERRUPT_DATA interrupt;
  memset(&interrupt, 0, sizeof interrupt);
  interrupt.InterruptType = DXGK_INTERRUPT_DMA_COMPLETED;
  interrupt.DmaCompleted.SubmissionFenceId = (UINT)fence;
  pthread_mutex_lock(&adapter->lock);
  PDXGKCB_NOTIFY_INTERRUPT notify = adapter->started ? adapter->notify_interrupt : NULL;
  HANDLE device_handle = adapter->device_handle;
  adapter->completed_fence = fence;
  adapter->completed_status = status;
  adapter->completions++;
  if (--device->pending == 0 && device->magic == SIM_DEVICE_ZOMBIE) {
    atomic_fetch_sub(&adapter->live_zombies, 1);
    sim_device_free_locked(device);
  }
  atomic_fetch_sub(&adapter->queued, 1);
  sim_uncount_bytes(&adapter->object_bytes, record->bytes);
  pthread_mutex_unlock(&adapter->lock);
  free(record);
  if (notify && status != STATUS_DEVICE_REMOVED) notify(device_handle, &interrupt);
}

/* ---- SubmitCommand -------------------------------------------------------------------------------- */

/* The next 64-bit fence after @last whose low 32 bits are @id. */
static UINT64 extend_fence(UINT64 last, UINT id) {
  UINT64 fence = (last & ~(UINT64)UINT32_MAX) | id;
  if (fence <= last) fence += (UINT64)1 << 32;
  return fence;
}

static NTSTATUS submit(sim_adapter *adapter, sim_device *device, const DXGKARG_SUBMITCOMMAND *args) {
  const UINT n = args->AlAllocationListSize;
  const size_t stream_bytes =
      args->Flags.Null ? 0 : (size_t)args->DmaBufferSubmissionEndOffset - args->DmaBufferSubmissionStartOffset;
  if (sim_check_removed(adapter)) return STATUS_DEVICE_REMOVED;

  /* One copy of the stream: parsed twice, from memory no one else writes. */
  UCHAR *stream = NULL;
  if (stream_bytes) {
    if (fault_injector_should_fail(adapter->faults, FAULT_PRIVATE_DATA_BUFFER) ||
        (stream = al_host_malloc(stream_bytes)) == NULL)
      return STATUS_NO_MEMORY;
    memcpy(stream, (const UCHAR *)args->pAlDmaBuffer + args->DmaBufferSubmissionStartOffset, stream_bytes);
  }
  sim_target *targets = n ? al_host_malloc((size_t)n * sizeof *targets) : NULL;
  if (n && !targets) {
    free(stream);
    return STATUS_NO_MEMORY;
  }

  /* Resolve the list: open bindings of this device, mapped (on demand) where their allocation is. */
  NTSTATUS status = STATUS_SUCCESS;
  pthread_mutex_lock(&adapter->lock);
  if (sim_device_from(args->hContext) != device) status = STATUS_INVALID_HANDLE;
  for (UINT i = 0; i < n && NT_SUCCESS(status); i++) {
    sim_binding *binding = sim_binding_from(args->pAlAllocationList[i].hDeviceSpecificAllocation, device);
    if (!binding) {
      status = STATUS_INVALID_HANDLE;
      break;
    }
    if (!binding->mapped) {
      status = sim_binding_map_locked(adapter, binding);
      if (!NT_SUCCESS(status)) {
        status = STATUS_NO_MEMORY;
        break;
      }
      if (binding->mapped) sim_total_add(&sim_global_totals.lazy_maps, 1);
    }
    targets[i] = (sim_target){binding->va, sim_binding_size(binding),
                              binding->allocation ? sim_allocation_id(binding->allocation) : 0};
  }
  pthread_mutex_unlock(&adapter->lock);

  sim_plan plan = {0, 0, 0};
  if (NT_SUCCESS(status)) status = translate(stream, stream_bytes, targets, n, &plan, NULL, NULL);
  UCHAR *gpu = NULL;
  sim_submission *record = NULL;
  size_t record_bytes = sizeof *record + plan.check_count * sizeof(sim_check) + (size_t)plan.check_bytes;
  if (NT_SUCCESS(status)) {
    gpu = plan.gpu_bytes ? al_host_malloc(plan.gpu_bytes) : NULL;
    record = sim_object_alloc(adapter, record_bytes);
    if ((plan.gpu_bytes && !gpu) || !record) status = STATUS_NO_MEMORY;
  }
  if (NT_SUCCESS(status)) {
    memset(record, 0, sizeof *record);
    record->adapter = adapter;
    record->device = device;
    record->bytes = record_bytes;
    record->check_count = (UINT)plan.check_count;
    record->checks = (sim_check *)(void *)(record + 1);
    record->readback = (UCHAR *)(record->checks + plan.check_count);
    record->readback_bytes = (size_t)plan.check_bytes;
    (void)translate(stream, stream_bytes, targets, n, &plan, gpu, record->checks);

    pthread_mutex_lock(&adapter->lock);
    if (!adapter->started)
      status = STATUS_INVALID_PARAMETER;
    else if (sim_device_from(args->hContext) != device)
      status = STATUS_INVALID_HANDLE;
    else if (atomic_load(&adapter->removed))
      status = STATUS_DEVICE_REMOVED;
    if (NT_SUCCESS(status)) {
      const UINT64 fence = extend_fence(adapter->last_fence, args->SubmissionFenceId);
      gpu_submission submission = {
          .as = device->as,
          .commands = gpu,
          .command_bytes = plan.gpu_bytes,
          .fence = fence,
          .readback = record->readback_bytes ? record->readback : NULL,
          .readback_bytes = record->readback_bytes,
          .callback = on_complete,
          .callback_ctx = record,
      };
      device->pending++;
      atomic_fetch_add(&adapter->queued, 1);
      sim_count_bytes(&adapter->object_bytes, record_bytes);
      status = gpu_engine_submit(adapter->engine, &submission);
      if (NT_SUCCESS(status)) {
        adapter->last_fence = fence;
        record = NULL; /* the completion owns it now */
      } else {
        device->pending--;
        atomic_fetch_sub(&adapter->queued, 1);
        sim_uncount_bytes(&adapter->object_bytes, record_bytes);
        if (status != STATUS_NO_MEMORY && status != STATUS_DEVICE_REMOVED) status = STATUS_INVALID_PARAMETER;
      }
    }
    pthread_mutex_unlock(&adapter->lock);
  }
  free(record);
  free(gpu);
  free(targets);
  free(stream);
  return status;
}

NTSTATUS APIENTRY sim_ddi_submit_command(const HANDLE hAdapter, const DXGKARG_SUBMITCOMMAND *pSubmitCommand) {
  sim_adapter *adapter = sim_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  const DXGKARG_SUBMITCOMMAND *args = pSubmitCommand;
  if (!args) return STATUS_INVALID_PARAMETER;
  sim_device *device = sim_device_from(args->hContext);
  if (!device || device->adapter != adapter) return STATUS_INVALID_HANDLE;
  NTSTATUS status = STATUS_SUCCESS;
  if ((args->AlAllocationListSize != 0 && !args->pAlAllocationList) ||
      args->AlAllocationListSize > SIM_MAX_ALLOCATION_LIST || args->Flags.Reserved != 0)
    status = STATUS_INVALID_PARAMETER;
  else if (!args->Flags.Null &&
           (args->DmaBufferSubmissionStartOffset > args->DmaBufferSubmissionEndOffset ||
            args->DmaBufferSubmissionEndOffset > args->DmaBufferSize ||
            args->DmaBufferSubmissionEndOffset - args->DmaBufferSubmissionStartOffset > SIM_CMD_MAX_STREAM_BYTES ||
            (args->DmaBufferSubmissionEndOffset > args->DmaBufferSubmissionStartOffset && !args->pAlDmaBuffer)))
    status = STATUS_INVALID_PARAMETER;
  else
    status = submit(adapter, device, args);
  if (NT_SUCCESS(status))
    sim_total_add(&sim_global_totals.submissions, 1);
  else
    sim_total_add(&sim_global_totals.rejected_submissions, 1);
  return status;
}

/* ---- RunEngine -------------------------------------------------------------------------------------- */

NTSTATUS APIENTRY sim_ddi_run_engine(const HANDLE hAdapter, UINT MaxSubmissions, UINT *pCompleted) {
  sim_adapter *adapter = sim_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  if (!pCompleted) return STATUS_INVALID_PARAMETER;
  *pCompleted = 0;
  if (adapter->config.EngineMode == SIM_ENGINE_THREADED) {
    /* The engine thread runs by itself. Once the adapter is removed the port stops waiting for
     * fences and tears down: let it do so only after everything queued has run and been reported,
     * so no queued work touches memory the teardown releases. */
    if (atomic_load(&adapter->removed)) gpu_engine_wait_idle(adapter->engine);
    return STATUS_SUCCESS;
  }
  if (MaxSubmissions == 0) return STATUS_SUCCESS;
  *pCompleted = (UINT)gpu_engine_run(adapter->engine, MaxSubmissions);
  return STATUS_SUCCESS;
}
