/*
 * fence.c — fences, GPU work submission, and deferred teardown (rule 6: memory that queued work
 * still references is released only after that work's fence has signalled).
 *
 * A teardown that must wait is copied onto the adapter's deferred list in insertion order. The
 * reaper (fence_reap) runs, one thread at a time under reap_lock, every entry whose fence has
 * signalled, in insertion order. That order is enough: an entry only ever depends on earlier
 * entries of the same resource, and a teardown is queued whenever its resource still has entries
 * queued, with a fence not below theirs (a resource's fences only grow).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloclab/host_alloc.h"
#include "port.h"
#include "verifier.h"

void fence_run_teardown(al_adapter *adapter, port_teardown *teardown) {
  if (teardown->close_count)
    ddi_close_allocation(adapter, teardown->driver_device, teardown->close_list, teardown->close_count,
                         teardown->assume_not_in_use);
  port_open_free(teardown->open_to_free);
  if (teardown->destroy) {
    port_resource *resource = teardown->resource;
    if (teardown->destroy_count || (teardown->destroy_resource && resource->miniport_resource))
      ddi_destroy_allocation(adapter, teardown->destroy_list, teardown->destroy_count,
                             resource->miniport_resource,
                             teardown->destroy_resource && resource->miniport_resource != NULL,
                             teardown->assume_not_in_use);
    placement_release(adapter, teardown->records, teardown->destroy_count);
  }
  free(teardown->owned);
  if (teardown->resource) port_resource_unref(adapter, teardown->resource);
}

uint64_t fence_teardown_or_defer(al_adapter *adapter, const port_teardown *teardown, bool assume_not_in_use) {
  port_resource *resource = teardown->resource;
  bool ready = assume_not_in_use || teardown->fence <= atomic_load(&adapter->fence_completed);
  /* Teardowns of one resource keep their order (rule 4: a destroy never overtakes a queued
   * close, and a device's bindings of a resource are closed together): run what is ready first,
   * and queue behind what is not. A device's pool is no resource: its allocations have one
   * device, no hResource and nothing to close together, so each goes on its own fence. */
  bool ordered = !(resource->flags & RESOURCE_POOL);
  if (ordered && ready && atomic_load(&resource->pending_teardowns) != 0) fence_reap(adapter);
  bool behind_others = ordered && atomic_load(&resource->pending_teardowns) != 0;
  if (!behind_others &&
      (assume_not_in_use || teardown->fence <= atomic_load(&adapter->fence_completed))) {
    port_teardown now = *teardown;
    now.assume_not_in_use = assume_not_in_use;
    fence_run_teardown(adapter, &now);
    return 0;
  }
  uint64_t fence = teardown->fence;
  /* Behind others: wait at least for every fence the resource's queued entries wait for. */
  if (behind_others && fence < resource->deferred_fence) fence = resource->deferred_fence;
  port_teardown *entry = al_host_malloc(sizeof *entry);
  if (entry == NULL) {
    /* Cannot queue it: wait for the GPU (and the queued entries) instead of releasing memory
     * it may still use. */
    (void)al_fence_wait(adapter, fence, UINT64_MAX);
    if (behind_others) fence_reap(adapter);
    port_teardown now = *teardown;
    fence_run_teardown(adapter, &now);
    return 0;
  }
  *entry = *teardown;
  entry->fence = fence;
  entry->next = NULL;
  if (fence > resource->deferred_fence) resource->deferred_fence = fence;
  atomic_fetch_add(&resource->pending_teardowns, 1);
  port_lock(&adapter->deferred_lock);
  if (adapter->deferred_tail)
    adapter->deferred_tail->next = entry;
  else
    adapter->deferred_head = entry;
  adapter->deferred_tail = entry;
  atomic_fetch_add(&adapter->deferred_count, 1);
  if (entry->destroy) atomic_fetch_add(&adapter->deferred_allocations, entry->destroy_count);
  port_unlock(&adapter->deferred_lock);
  return fence;
}

void fence_reap(al_adapter *adapter) {
  if (atomic_load(&adapter->deferred_count) == 0) return;
  port_lock(&adapter->reap_lock);
  port_teardown *ready = NULL, **ready_tail = &ready;
  port_lock(&adapter->deferred_lock);
  uint64_t completed = atomic_load(&adapter->fence_completed);
  port_teardown *previous = NULL;
  for (port_teardown *entry = adapter->deferred_head; entry;) {
    port_teardown *next = entry->next;
    /* A whole-resource teardown also waits for the earlier entries of its resource. */
    bool ready_now = entry->fence <= completed;
    if (ready_now) {
      if (previous)
        previous->next = next;
      else
        adapter->deferred_head = next;
      if (adapter->deferred_tail == entry) adapter->deferred_tail = previous;
      entry->next = NULL;
      *ready_tail = entry;
      ready_tail = &entry->next;
    } else {
      previous = entry;
    }
    entry = next;
  }
  port_unlock(&adapter->deferred_lock);
  while (ready) {
    port_teardown *entry = ready;
    ready = entry->next;
    port_resource *resource = entry->resource;
    port_resource_ref(resource); /* keep it while its counter is touched below */
    uint32_t destroyed = entry->destroy ? entry->destroy_count : 0;
    fence_run_teardown(adapter, entry);
    atomic_fetch_sub(&resource->pending_teardowns, 1);
    port_resource_unref(adapter, resource);
    atomic_fetch_sub(&adapter->deferred_allocations, destroyed);
    atomic_fetch_sub(&adapter->deferred_count, 1);
    free(entry);
  }
  port_unlock(&adapter->reap_lock);
}

void fence_wait_idle(al_adapter *adapter) {
  uint64_t submitted = atomic_load(&adapter->fence_submitted);
  if (submitted && al_fence_wait(adapter, submitted, UINT64_MAX) == STATUS_DEVICE_REMOVED) {
    /* A removed GPU runs nothing any more: what it was given counts as finished. */
    port_lock(&adapter->fence_lock);
    if (atomic_load(&adapter->fence_completed) < submitted) {
      if (adapter->verifier) verifier_on_fence_completed(adapter->verifier, submitted, submitted);
      atomic_store(&adapter->fence_completed, submitted);
    }
    pthread_cond_broadcast(&adapter->fence_signalled);
    port_unlock(&adapter->fence_lock);
  }
  fence_reap(adapter);
}

uint64_t al_fence_completed(al_adapter *adapter) {
  return adapter ? atomic_load(&adapter->fence_completed) : 0;
}

uint64_t al_fence_submitted(al_adapter *adapter) {
  return adapter ? atomic_load(&adapter->fence_submitted) : 0;
}

static void deadline_after(struct timespec *deadline, uint64_t ns) {
  clock_gettime(CLOCK_REALTIME, deadline);
  uint64_t total = (uint64_t)deadline->tv_nsec + ns % 1000000000u;
  deadline->tv_sec += (time_t)(ns / 1000000000u + total / 1000000000u);
  deadline->tv_nsec = (long)(total % 1000000000u);
}

NTSTATUS al_fence_wait(al_adapter *adapter, uint64_t fence, uint64_t timeout_ns) {
  if (adapter == NULL || fence > atomic_load(&adapter->fence_submitted)) return STATUS_INVALID_PARAMETER;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (atomic_load(&adapter->fence_completed) < fence) {
    uint32_t ran = 0;
    NTSTATUS status = ddi_run_engine(adapter, 1, &ran);
    if (ran != 0 && NT_SUCCESS(status)) continue;
    /* Another thread is running the engine, or it has a thread of its own: wait a little. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t waited = (uint64_t)(now.tv_sec - start.tv_sec) * 1000000000u +
                      (uint64_t)(now.tv_nsec - start.tv_nsec);
    if (timeout_ns != UINT64_MAX && waited >= timeout_ns) return STATUS_TIMEOUT;
    if (atomic_load(&adapter->removed)) return STATUS_DEVICE_REMOVED;
    struct timespec deadline;
    deadline_after(&deadline, 1000000u);
    port_lock(&adapter->fence_lock);
    if (atomic_load(&adapter->fence_completed) < fence)
      pthread_cond_timedwait(&adapter->fence_signalled, &adapter->fence_lock, &deadline);
    port_unlock(&adapter->fence_lock);
  }
  fence_reap(adapter);
  return STATUS_SUCCESS;
}

NTSTATUS al_gpu_run(al_adapter *adapter, uint32_t max_submissions, uint32_t *out_completed) {
  if (adapter == NULL) return STATUS_INVALID_PARAMETER;
  uint32_t ran = 0;
  NTSTATUS status = ddi_run_engine(adapter, max_submissions, &ran);
  fence_reap(adapter);
  if (out_completed) *out_completed = ran;
  return status;
}
