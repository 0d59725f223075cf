/*
 * verifier.c — the DDI verifier (see verifier.h).
 *
 * DOC: Shadow state
 * Built only from handle values that cross the DDI boundary; the port's bookkeeping is never
 * read. Six open-addressing hash maps (linear probing, backward-shift deletion, no tombstones),
 * keyed by one or two pointer values:
 *  - allocations: hAllocation -> resource (NULL = device-owned), open bindings, last fence, serial
 *  - resources:   hResource -> live allocations
 *  - bindings:    hDeviceSpecificAllocation -> driver device, allocation, last fence
 *  - devices:     driver hDevice -> live bindings
 *  - pairs:       (hDevice, hAllocation) -> binding: one binding per allocation per device
 *  - holds:       (hDevice, hResource) -> that device's live bindings of the resource, and the
 *                 allocations its last close left "partially closed" (rule 4's one-call rule)
 * Every hook costs O(1) per listed handle. Duplicates inside one call's list are found with a
 * per-call stamp stored in the records (no scan, no extra memory).
 *
 * DOC: Rule 4's one-call rule
 * A close that closes a strict subset of a device's bindings of a resource is legal only as the
 * first half of destroying exactly those allocations. The close records, in the device's hold on
 * the resource, which allocations it closed (handle and creation serial, so a reused handle value
 * is not mistaken for the old allocation). The next close on that device that touches the
 * resource fails when any of them is still live. The marks are per device: a partial destroy of a
 * resource opened on several devices closes the same subset once on each device, legally.
 *
 * DOC: Rule 6
 * after_submit records the fence on each listed binding and on its allocation. A destroy fails
 * when an allocation's last fence has not signalled, unless AssumeNotInUse. A close is not judged
 * (see verifier_before_close_allocation): the hook does not know whether AssumeNotInUse was
 * asserted, and the port closes at once when it was.
 *
 * DOC: Concurrency notes
 * One mutex protects everything. The port calls a hook outside the DDI call it surrounds, so a
 * hook can see the effect of another thread's DDI call before the hook of that call ran. Two
 * consequences: a fence the miniport reports is checked against the larger of the port's
 * submitted count and the highest fence after_submit saw; and after_submit ignores a listed
 * binding that is no longer open (closed between the submit DDI and its hook).
 */
#include "verifier.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The verifier is an oracle, like the invariant walks (check.h AL_CHECK_CODE): under libFuzzer
 * (clang's SanitizerCoverage) none of it is instrumented. On a sound run every rule takes its
 * passing branch, and the rest is the probing of its shadow hash maps, whose branches and
 * compares follow hash values (and, in clang 14, UBSan's inserted alignment and overflow
 * checks), not anything an input did; the port's own branches around each DDI call stay
 * instrumented. It ran for every listed handle of every DDI call: in close_destroy its map
 * probes were ~16% of the CPU, most of it compare tracing. ASan and UBSan still check it. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)
#endif

/* ---- Rules ---------------------------------------------------------------------------------- */

#define RULE_CREATE "1 (create)"
#define RULE_OPEN "3 (open)"
#define RULE_CLOSE "4 (close before destroy)"
#define RULE_DESTROY "5 (destroy)"
#define RULE_FENCES "6 (fences)"
#define RULE_DEVICE "7 (destroy device)"
#define RULE_LEAK "teardown (leak)"
#define RULE_MINIPORT_LEAK "teardown (miniport leak)"
#define RULE_INTERNAL "internal (verifier state)"

_Noreturn void verifier_fail(const char *rule, const char *fmt, ...) {
  char details[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(details, sizeof details, fmt, ap);
  va_end(ap);
  /* One write, so that a message is not interleaved with another thread's output. */
  fprintf(stderr, "alloclab verifier: rule %s: %s\n", rule, details);
  fflush(stderr);
  abort();
}

static inline unsigned long long ull(uint64_t value) { return (unsigned long long)value; }

/* ---- Records -------------------------------------------------------------------------------- */

/* An allocation a close left partially closed on a device. */
typedef struct vf_partial {
  HANDLE allocation;
  uint64_t serial;
} vf_partial;

typedef struct vf_allocation {
  HANDLE resource;   /* NULL: device-owned (or a resource without a miniport handle) */
  uint64_t fence;    /* last submitted fence that referenced it through any binding */
  uint64_t serial;   /* creation number: tells a reused handle value from the old allocation */
  uint64_t stamp;    /* per-call duplicate detection */
  uint32_t bindings; /* open bindings on all devices */
} vf_allocation;

typedef struct vf_resource {
  uint32_t allocations;
} vf_resource;

typedef struct vf_binding {
  HANDLE device;
  HANDLE allocation;
  uint64_t fence; /* last submitted fence that referenced it */
  uint64_t stamp;
} vf_binding;

typedef struct vf_device {
  uint32_t bindings;
} vf_device;

typedef struct vf_pair {
  HANDLE binding;
} vf_pair;

/* A device's bindings of one resource. Exists while bindings > 0. */
typedef struct vf_hold {
  uint32_t bindings;
  uint32_t in_call; /* bindings of the current close call (valid when stamp is current) */
  uint64_t stamp;
  vf_partial *partial; /* what the last partial close on this device closed (malloc'd) */
  uint32_t partial_count;
} vf_hold;

typedef struct vf_entry {
  uintptr_t key[2]; /* key[0] == 0: empty slot (every key's first part is a non-NULL handle) */
  union {
    vf_allocation allocation;
    vf_resource resource;
    vf_binding binding;
    vf_device device;
    vf_pair pair;
    vf_hold hold;
  } u;
} vf_entry;

/* ---- Open-addressing map -------------------------------------------------------------------- */

typedef struct vf_map {
  vf_entry *slots; /* NULL until the first insert */
  size_t mask;     /* capacity - 1 (capacity a power of two) */
  size_t count;
} vf_map;

#define VF_MAP_MIN_CAPACITY 16u

static inline size_t vf_hash(uintptr_t a, uintptr_t b) {
  uint64_t h = (uint64_t)a * 0x9E3779B97F4A7C15u;
  h ^= ((uint64_t)b + 0x632BE59BD9B4E019u) * 0xC2B2AE3D27D4EB4Fu;
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93u;
  h ^= h >> 32;
  return (size_t)h;
}

static vf_entry *map_find(const vf_map *map, uintptr_t a, uintptr_t b) {
  if (map->slots == NULL || a == 0) return NULL;
  for (size_t i = vf_hash(a, b) & map->mask;; i = (i + 1) & map->mask) {
    vf_entry *entry = &map->slots[i];
    if (entry->key[0] == a && entry->key[1] == b) return entry;
    if (entry->key[0] == 0) return NULL;
  }
}

static void map_grow(vf_map *map) {
  size_t capacity = map->slots ? (map->mask + 1) * 2 : VF_MAP_MIN_CAPACITY;
  vf_entry *slots = calloc(capacity, sizeof *slots);
  if (slots == NULL)
    verifier_fail(RULE_INTERNAL, "out of memory growing a map to %zu entries", capacity);
  size_t mask = capacity - 1;
  if (map->slots) {
    for (size_t i = 0; i <= map->mask; i++) {
      const vf_entry *old = &map->slots[i];
      if (old->key[0] == 0) continue;
      size_t j = vf_hash(old->key[0], old->key[1]) & mask;
      while (slots[j].key[0] != 0) j = (j + 1) & mask;
      slots[j] = *old;
    }
    free(map->slots);
  }
  map->slots = slots;
  map->mask = mask;
}

/* Inserts a key that is not present; returns its zeroed entry. Invalidates other entry pointers
 * of this map. */
static vf_entry *map_insert(vf_map *map, uintptr_t a, uintptr_t b) {
  if (a == 0) verifier_fail(RULE_INTERNAL, "insert of a NULL key");
  /* Load factor at most 5/8. */
  if (map->slots == NULL || (map->count + 1) * 8 > (map->mask + 1) * 5) map_grow(map);
  size_t i = vf_hash(a, b) & map->mask;
  while (map->slots[i].key[0] != 0) i = (i + 1) & map->mask;
  vf_entry *entry = &map->slots[i];
  memset(entry, 0, sizeof *entry);
  entry->key[0] = a;
  entry->key[1] = b;
  map->count++;
  return entry;
}

/* Removes @entry by backward-shift deletion. Invalidates other entry pointers of this map. */
static void map_remove(vf_map *map, vf_entry *entry) {
  size_t hole = (size_t)(entry - map->slots);
  for (size_t j = (hole + 1) & map->mask;; j = (j + 1) & map->mask) {
    const vf_entry *next = &map->slots[j];
    if (next->key[0] == 0) break;
    size_t home = vf_hash(next->key[0], next->key[1]) & map->mask;
    /* It may move back into the hole when its home is not cyclically inside (hole, j]. */
    if (((j - home) & map->mask) >= ((j - hole) & map->mask)) {
      map->slots[hole] = *next;
      hole = j;
    }
  }
  memset(&map->slots[hole], 0, sizeof map->slots[hole]);
  map->count--;
}

/* Any live key of @map (for messages), or NULL when it is empty. */
static HANDLE map_any(const vf_map *map) {
  if (map->count == 0) return NULL;
  for (size_t i = 0; i <= map->mask; i++)
    if (map->slots[i].key[0] != 0) return (HANDLE)map->slots[i].key[0];
  return NULL;
}

static void map_free(vf_map *map) {
  free(map->slots);
  map->slots = NULL;
  map->mask = 0;
  map->count = 0;
}

static inline uintptr_t K(HANDLE handle) { return (uintptr_t)handle; }

/* ---- The verifier --------------------------------------------------------------------------- */

struct verifier {
  pthread_mutex_t lock;
  uint32_t segment_set_all;
  uint32_t segment_set_aperture;
  vf_map allocations;
  vf_map resources;
  vf_map bindings;
  vf_map devices;
  vf_map pairs;
  vf_map holds;
  uint64_t submitted; /* highest fence seen by after_submit or passed to on_fence_completed */
  uint64_t completed; /* highest fence the miniport reported */
  uint64_t stamp;     /* per-call stamp for duplicate detection */
  uint64_t serial;    /* allocations created so far */
};

verifier *verifier_create(uint32_t segment_set_all, uint32_t segment_set_aperture) {
  verifier *v = calloc(1, sizeof *v);
  if (v == NULL) return NULL;
  if (pthread_mutex_init(&v->lock, NULL) != 0) {
    free(v);
    return NULL;
  }
  v->segment_set_all = segment_set_all;
  v->segment_set_aperture = segment_set_aperture;
  return v;
}

void verifier_destroy(verifier *v) {
  if (v == NULL) return;
  if (v->holds.slots) {
    for (size_t i = 0; i <= v->holds.mask; i++)
      if (v->holds.slots[i].key[0] != 0) free(v->holds.slots[i].u.hold.partial);
  }
  map_free(&v->allocations);
  map_free(&v->resources);
  map_free(&v->bindings);
  map_free(&v->devices);
  map_free(&v->pairs);
  map_free(&v->holds);
  pthread_mutex_destroy(&v->lock);
  free(v);
}

static inline void vf_lock(verifier *v) { pthread_mutex_lock(&v->lock); }
static inline void vf_unlock(verifier *v) { pthread_mutex_unlock(&v->lock); }

static inline uint64_t vf_next_stamp(verifier *v) { return ++v->stamp; }

/* ---- Create --------------------------------------------------------------------------------- */

void verifier_after_create_allocation(verifier *v, const DXGKARG_CREATEALLOCATION *args,
                                      HANDLE resource_in) {
  const uint32_t n = args->NumAllocations;
  vf_lock(v);
  if (args->Flags.Reserved != 0)
    verifier_fail(RULE_CREATE, "DxgkDdiCreateAllocation called with reserved flag bits 0x%x",
                  args->Flags.Value & ~1u);
  HANDLE resource = NULL;
  if (args->Flags.Resource) {
    if (resource_in != NULL) {
      if (map_find(&v->resources, K(resource_in), 0) == NULL)
        verifier_fail(RULE_CREATE, "%u allocations added to resource %p, which is not live", n,
                      resource_in);
      if (args->hResource != resource_in)
        verifier_fail(RULE_CREATE,
                      "allocations added to resource %p, but the miniport returned hResource %p",
                      resource_in, args->hResource);
      resource = resource_in;
    } else if (args->hResource != NULL) {
      if (map_find(&v->resources, K(args->hResource), 0) != NULL)
        verifier_fail(RULE_CREATE,
                      "the miniport returned hResource %p for a new resource, but %p is already "
                      "a live resource",
                      args->hResource, args->hResource);
      resource = args->hResource;
      map_insert(&v->resources, K(resource), 0);
    }
  }
  for (uint32_t i = 0; i < n; i++) {
    HANDLE allocation = args->pAllocationInfo[i].hAllocation;
    if (allocation == NULL)
      verifier_fail(RULE_CREATE,
                    "the miniport returned a NULL hAllocation for allocation %u of %u "
                    "(resource %p)",
                    i, n, resource);
    const vf_entry *live = map_find(&v->allocations, K(allocation), 0);
    if (live != NULL)
      verifier_fail(RULE_CREATE,
                    "the miniport returned hAllocation %p for allocation %u of %u (resource %p), "
                    "but %p is already live (resource %p) or listed twice",
                    allocation, i, n, resource, allocation, live->u.allocation.resource);
    vf_entry *entry = map_insert(&v->allocations, K(allocation), 0);
    entry->u.allocation.resource = resource;
    entry->u.allocation.serial = ++v->serial;
  }
  if (resource != NULL) map_find(&v->resources, K(resource), 0)->u.resource.allocations += n;
  vf_unlock(v);
}

/* ---- Open ----------------------------------------------------------------------------------- */

void verifier_before_open_allocation(verifier *v, HANDLE driver_device,
                                     const DXGKARG_OPENALLOCATION *args,
                                     const HANDLE *allocations) {
  const uint32_t n = args->NumAllocations;
  vf_lock(v);
  if (args->Flags.Reserved != 0)
    verifier_fail(RULE_OPEN, "open on device %p with reserved flag bits 0x%x", driver_device,
                  args->Flags.Value & ~3u);
  if (map_find(&v->devices, K(driver_device), 0) == NULL)
    verifier_fail(RULE_OPEN, "open of %u allocations on device %p, which is not live", n,
                  driver_device);
  const uint64_t stamp = vf_next_stamp(v);
  for (uint32_t i = 0; i < n; i++) {
    HANDLE allocation = allocations[i];
    vf_entry *entry = map_find(&v->allocations, K(allocation), 0);
    if (entry == NULL)
      verifier_fail(RULE_OPEN, "allocation %p (entry %u of %u) opened on device %p is not live",
                    allocation, i, n, driver_device);
    if (entry->u.allocation.stamp == stamp)
      verifier_fail(RULE_OPEN, "allocation %p listed twice in one open on device %p", allocation,
                    driver_device);
    entry->u.allocation.stamp = stamp;
    const vf_entry *pair = map_find(&v->pairs, K(driver_device), K(allocation));
    if (pair != NULL)
      verifier_fail(RULE_OPEN,
                    "allocation %p opened on device %p, which already has binding %p of it: a "
                    "second binding on one device",
                    allocation, driver_device, pair->u.pair.binding);
  }
  vf_unlock(v);
}

void verifier_after_open_allocation(verifier *v, HANDLE driver_device,
                                    const DXGKARG_OPENALLOCATION *args, const HANDLE *allocations) {
  const uint32_t n = args->NumAllocations;
  vf_lock(v);
  vf_entry *device = map_find(&v->devices, K(driver_device), 0);
  if (device == NULL)
    verifier_fail(RULE_OPEN, "device %p was destroyed while it opened %u allocations",
                  driver_device, n);
  device->u.device.bindings += n;
  for (uint32_t i = 0; i < n; i++) {
    HANDLE allocation = allocations[i];
    HANDLE binding = args->pOpenAllocation[i].hDeviceSpecificAllocation;
    if (binding == NULL)
      verifier_fail(RULE_OPEN,
                    "the miniport returned a NULL hDeviceSpecificAllocation for allocation %p "
                    "(entry %u of %u) on device %p",
                    allocation, i, n, driver_device);
    const vf_entry *live = map_find(&v->bindings, K(binding), 0);
    if (live != NULL)
      verifier_fail(RULE_OPEN,
                    "the miniport returned binding %p for allocation %p on device %p, but %p is "
                    "already a live binding (of allocation %p on device %p)",
                    binding, allocation, driver_device, binding, live->u.binding.allocation,
                    live->u.binding.device);
    vf_entry *entry = map_find(&v->allocations, K(allocation), 0);
    if (entry == NULL)
      verifier_fail(RULE_OPEN, "allocation %p was destroyed while device %p opened it", allocation,
                    driver_device);
    if (map_find(&v->pairs, K(driver_device), K(allocation)) != NULL)
      verifier_fail(RULE_OPEN,
                    "allocation %p was opened twice on device %p: a second binding on one device",
                    allocation, driver_device);
    entry->u.allocation.bindings++;
    HANDLE resource = entry->u.allocation.resource;

    vf_entry *record = map_insert(&v->bindings, K(binding), 0);
    record->u.binding.device = driver_device;
    record->u.binding.allocation = allocation;
    map_insert(&v->pairs, K(driver_device), K(allocation))->u.pair.binding = binding;
    if (resource != NULL) {
      vf_entry *hold = map_find(&v->holds, K(driver_device), K(resource));
      if (hold == NULL) hold = map_insert(&v->holds, K(driver_device), K(resource));
      hold->u.hold.bindings++;
    }
  }
  vf_unlock(v);
}

/* ---- Close ---------------------------------------------------------------------------------- */

static vf_entry *binding_allocation(verifier *v, HANDLE binding, const vf_binding *record) {
  vf_entry *entry = map_find(&v->allocations, K(record->allocation), 0);
  if (entry == NULL)
    verifier_fail(RULE_INTERNAL, "binding %p names allocation %p, which is not live", binding,
                  record->allocation);
  return entry;
}

static vf_entry *device_hold(verifier *v, HANDLE driver_device, HANDLE resource) {
  vf_entry *hold = map_find(&v->holds, K(driver_device), K(resource));
  if (hold == NULL)
    verifier_fail(RULE_INTERNAL, "device %p has a binding of resource %p but no hold on it",
                  driver_device, resource);
  return hold;
}

/* @judge_fences: fail rule 6 for a binding whose last fence has not signalled. Only a caller that
 * knows AssumeNotInUse was not asserted may ask for it (see verifier_before_close_allocation). */
static void vf_before_close(verifier *v, HANDLE driver_device, const HANDLE *bindings,
                            uint32_t count, bool judge_fences) {
  vf_lock(v);
  const uint64_t stamp = vf_next_stamp(v);

  /* Pass 1: checks; count this call's bindings per resource. */
  for (uint32_t i = 0; i < count; i++) {
    HANDLE binding = bindings[i];
    vf_entry *entry = map_find(&v->bindings, K(binding), 0);
    if (entry == NULL)
      verifier_fail(RULE_CLOSE, "binding %p (entry %u of %u) closed on device %p is not live",
                    binding, i, count, driver_device);
    vf_binding *record = &entry->u.binding;
    if (record->device != driver_device)
      verifier_fail(RULE_CLOSE,
                    "binding %p (allocation %p) belongs to device %p, but was closed on device %p",
                    binding, record->allocation, record->device, driver_device);
    if (record->stamp == stamp)
      verifier_fail(RULE_CLOSE, "binding %p listed twice in one close on device %p", binding,
                    driver_device);
    record->stamp = stamp;
    if (judge_fences && record->fence > v->completed)
      verifier_fail(RULE_FENCES,
                    "binding %p of allocation %p closed on device %p while fence %llu it is used "
                    "by has not signalled (completed %llu)",
                    binding, record->allocation, driver_device, ull(record->fence),
                    ull(v->completed));
    HANDLE resource = binding_allocation(v, binding, record)->u.allocation.resource;
    if (resource == NULL) continue;
    vf_hold *hold = &device_hold(v, driver_device, resource)->u.hold;
    if (hold->stamp != stamp) {
      /* First binding of this resource in the call: an earlier partial close of it on this
       * device must have been followed by the destroy of what it closed. */
      for (uint32_t p = 0; p < hold->partial_count; p++) {
        const vf_entry *left = map_find(&v->allocations, K(hold->partial[p].allocation), 0);
        if (left != NULL && left->u.allocation.serial == hold->partial[p].serial)
          verifier_fail(RULE_CLOSE,
                        "bindings of resource %p on device %p closed in several calls "
                        "(allocation %p was closed by an earlier call and is still live)",
                        resource, driver_device, hold->partial[p].allocation);
      }
      free(hold->partial);
      hold->partial = NULL;
      hold->partial_count = 0;
      hold->stamp = stamp;
      hold->in_call = 0;
    }
    hold->in_call++;
  }

  /* Pass 2: a strict subset of a device's bindings of a resource marks what it closed. */
  for (uint32_t i = 0; i < count; i++) {
    const vf_binding *record = &map_find(&v->bindings, K(bindings[i]), 0)->u.binding;
    const vf_allocation *allocation = &binding_allocation(v, bindings[i], record)->u.allocation;
    if (allocation->resource == NULL) continue;
    vf_hold *hold = &device_hold(v, driver_device, allocation->resource)->u.hold;
    if (hold->in_call >= hold->bindings) continue;
    if (hold->partial == NULL) {
      hold->partial = malloc(hold->in_call * sizeof *hold->partial);
      if (hold->partial == NULL)
        verifier_fail(RULE_INTERNAL, "out of memory recording a partial close of %u bindings",
                      hold->in_call);
    }
    hold->partial[hold->partial_count].allocation = record->allocation;
    hold->partial[hold->partial_count].serial = allocation->serial;
    hold->partial_count++;
  }

  /* Pass 3: the bindings go. */
  vf_entry *device = map_find(&v->devices, K(driver_device), 0);
  if (count > 0 && (device == NULL || device->u.device.bindings < count))
    verifier_fail(RULE_INTERNAL, "device %p has fewer bindings than the %u it closes",
                  driver_device, count);
  for (uint32_t i = 0; i < count; i++) {
    vf_entry *entry = map_find(&v->bindings, K(bindings[i]), 0);
    HANDLE allocation_handle = entry->u.binding.allocation;
    map_remove(&v->bindings, entry);
    map_remove(&v->pairs, map_find(&v->pairs, K(driver_device), K(allocation_handle)));
    vf_allocation *allocation = &map_find(&v->allocations, K(allocation_handle), 0)->u.allocation;
    allocation->bindings--;
    device->u.device.bindings--;
    if (allocation->resource != NULL) {
      vf_entry *hold = device_hold(v, driver_device, allocation->resource);
      if (--hold->u.hold.bindings == 0) {
        free(hold->u.hold.partial);
        map_remove(&v->holds, hold);
      }
    }
  }
  vf_unlock(v);
}

/*
 * Rule 6 at close. The port closes bindings whose work has not signalled when the caller asserted
 * AssumeNotInUse (fence_teardown_or_defer runs such a teardown at once), and this hook is not
 * told whether it did. So the close is not judged here: the binding's fence is already part of
 * its allocation's last fence, and the DxgkDdiDestroyAllocation that follows (which is told) fails
 * rule 6 unless AssumeNotInUse. Once the hook takes the flag, pass judge_fences =
 * !assume_not_in_use to also catch a close-only teardown (a device letting a shared resource go)
 * that ran early.
 */
void verifier_before_close_allocation(verifier *v, HANDLE driver_device, const HANDLE *bindings,
                                      uint32_t count, bool assume_not_in_use) {
  vf_before_close(v, driver_device, bindings, count, !assume_not_in_use);
}

/* ---- Destroy -------------------------------------------------------------------------------- */

void verifier_before_destroy_allocation(verifier *v, const HANDLE *allocations, uint32_t count,
                                        HANDLE resource, bool destroy_resource,
                                        bool assume_not_in_use) {
  vf_lock(v);
  vf_entry *resource_entry = NULL;
  if (destroy_resource) {
    if (resource == NULL)
      verifier_fail(RULE_DESTROY, "DestroyResource of %u allocations without a resource handle",
                    count);
    resource_entry = map_find(&v->resources, K(resource), 0);
    if (resource_entry == NULL)
      verifier_fail(RULE_DESTROY, "DestroyResource of resource %p, which is not live", resource);
  }
  const uint64_t stamp = vf_next_stamp(v);
  for (uint32_t i = 0; i < count; i++) {
    HANDLE allocation = allocations[i];
    vf_entry *entry = map_find(&v->allocations, K(allocation), 0);
    if (entry == NULL)
      verifier_fail(RULE_DESTROY, "allocation %p (entry %u of %u) destroyed, but it is not live",
                    allocation, i, count);
    vf_allocation *record = &entry->u.allocation;
    if (record->stamp == stamp)
      verifier_fail(RULE_DESTROY, "allocation %p listed twice in one destroy", allocation);
    record->stamp = stamp;
    if (record->resource != resource)
      verifier_fail(RULE_DESTROY,
                    "allocation %p belongs to resource %p, but was destroyed as part of "
                    "resource %p",
                    allocation, record->resource, resource);
    if (record->bindings != 0)
      verifier_fail(RULE_CLOSE, "allocation %p destroyed while %u bindings of it are still open",
                    allocation, record->bindings);
    if (!assume_not_in_use && record->fence > v->completed)
      verifier_fail(RULE_FENCES,
                    "allocation %p destroyed while fence %llu it is used by has not signalled "
                    "(completed %llu)",
                    allocation, ull(record->fence), ull(v->completed));
  }
  if (destroy_resource && resource_entry->u.resource.allocations != count)
    verifier_fail(RULE_DESTROY,
                  "DestroyResource of resource %p lists %u allocations, but the resource has %u "
                  "live",
                  resource, count, resource_entry->u.resource.allocations);

  for (uint32_t i = 0; i < count; i++)
    map_remove(&v->allocations, map_find(&v->allocations, K(allocations[i]), 0));
  if (resource != NULL && (count > 0 || destroy_resource)) {
    /* Live: every listed allocation belongs to it (or destroy_resource checked it). */
    vf_entry *entry = map_find(&v->resources, K(resource), 0);
    if (entry == NULL || entry->u.resource.allocations < count)
      verifier_fail(RULE_INTERNAL, "resource %p has fewer allocations than the %u destroyed",
                    resource, count);
    entry->u.resource.allocations -= count;
    if (destroy_resource) map_remove(&v->resources, entry);
  }
  vf_unlock(v);
}

/* ---- Devices -------------------------------------------------------------------------------- */

void verifier_after_create_device(verifier *v, HANDLE driver_device) {
  vf_lock(v);
  if (driver_device == NULL)
    verifier_fail(RULE_DEVICE, "the miniport returned a NULL hDevice from DxgkDdiCreateDevice");
  if (map_find(&v->devices, K(driver_device), 0) != NULL)
    verifier_fail(RULE_DEVICE,
                  "the miniport returned hDevice %p from DxgkDdiCreateDevice, but %p is already "
                  "a live device",
                  driver_device, driver_device);
  map_insert(&v->devices, K(driver_device), 0);
  vf_unlock(v);
}

void verifier_before_destroy_device(verifier *v, HANDLE driver_device) {
  vf_lock(v);
  vf_entry *entry = map_find(&v->devices, K(driver_device), 0);
  if (entry == NULL)
    verifier_fail(RULE_DEVICE, "device %p destroyed, but it is not live", driver_device);
  if (entry->u.device.bindings != 0)
    verifier_fail(RULE_DEVICE, "device %p destroyed while %u bindings on it are still open",
                  driver_device, entry->u.device.bindings);
  map_remove(&v->devices, entry);
  vf_unlock(v);
}

/* ---- Fences --------------------------------------------------------------------------------- */

void verifier_after_submit(verifier *v, HANDLE driver_device, uint64_t fence,
                           const DXGK_ALLOCATIONLIST *list, uint32_t count) {
  vf_lock(v);
  if (fence > v->submitted) v->submitted = fence;
  for (uint32_t i = 0; i < count; i++) {
    HANDLE binding = list[i].hDeviceSpecificAllocation;
    vf_entry *entry = map_find(&v->bindings, K(binding), 0);
    /* Not open: it was closed between the submit DDI and this hook (the reaper once the work
     * was done, or an AssumeNotInUse teardown at once): nothing to record. */
    if (entry == NULL) continue;
    if (entry->u.binding.device != driver_device) {
      /* The same value reused by another device after such a close is harmless only once the
       * work is done; before that the port submitted another device's binding. */
      if (fence > v->completed)
        verifier_fail(RULE_OPEN,
                      "work with fence %llu submitted on device %p references binding %p, which "
                      "is open on device %p (allocation %p)",
                      ull(fence), driver_device, binding, entry->u.binding.device,
                      entry->u.binding.allocation);
      continue;
    }
    vf_binding *record = &entry->u.binding;
    if (fence > record->fence) record->fence = fence;
    vf_allocation *allocation = &binding_allocation(v, binding, record)->u.allocation;
    if (fence > allocation->fence) allocation->fence = fence;
  }
  vf_unlock(v);
}

void verifier_on_fence_completed(verifier *v, uint64_t fence, uint64_t submitted) {
  vf_lock(v);
  if (submitted > v->submitted) v->submitted = submitted;
  if (fence > v->submitted)
    verifier_fail(RULE_FENCES, "miniport reported fence %llu beyond the last submitted %llu",
                  ull(fence), ull(v->submitted));
  if (fence < v->completed)
    verifier_fail(RULE_FENCES,
                  "miniport reported fence %llu after fence %llu: completed fences went backwards",
                  ull(fence), ull(v->completed));
  v->completed = fence;
  vf_unlock(v);
}

/* ---- Teardown and counts -------------------------------------------------------------------- */

void verifier_at_teardown(verifier *v, const ALDDI_LIVE_OBJECTS *miniport_live) {
  vf_lock(v);
  if (v->allocations.count || v->resources.count || v->bindings.count || v->devices.count)
    verifier_fail(RULE_LEAK,
                  "%zu allocations still live (first %p), %zu resources (first %p), %zu bindings "
                  "(first %p), %zu devices (first %p)",
                  v->allocations.count, map_any(&v->allocations), v->resources.count,
                  map_any(&v->resources), v->bindings.count, map_any(&v->bindings),
                  v->devices.count, map_any(&v->devices));
  if (miniport_live != NULL &&
      (miniport_live->Allocations || miniport_live->Resources || miniport_live->OpenAllocations ||
       miniport_live->Devices || miniport_live->HostBytes))
    verifier_fail(RULE_MINIPORT_LEAK,
                  "the miniport still holds %u allocations, %u resources, %u bindings, %u "
                  "devices, %llu host bytes",
                  miniport_live->Allocations, miniport_live->Resources,
                  miniport_live->OpenAllocations, miniport_live->Devices,
                  ull(miniport_live->HostBytes));
  vf_unlock(v);
}

void verifier_counts(verifier *v, uint32_t *out_allocations, uint32_t *out_bindings,
                     uint32_t *out_devices) {
  vf_lock(v);
  if (out_allocations) *out_allocations = (uint32_t)v->allocations.count;
  if (out_bindings) *out_bindings = (uint32_t)v->bindings.count;
  if (out_devices) *out_devices = (uint32_t)v->devices.count;
  vf_unlock(v);
}

size_t *verifier_damage_device_count(verifier *v, pthread_mutex_t **out_lock) {
  *out_lock = &v->lock;
  return &v->devices.count;
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
