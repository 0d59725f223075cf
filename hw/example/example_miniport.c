/*
 * example_miniport.c — the "example" miniport: DDI table, adapter, devices, allocations,
 * bindings, a deterministic engine. The rules it implements are in example_miniport.h.
 *
 * Object layout (every handle points at a 32-bit magic/state word at offset 0):
 *   example_adapter_t   hAdapter; owns the device list, allocation blocks, resources, fence ring.
 *   example_device_t    hDevice (48 bytes); owns its binding blocks.
 *   example_resource_t  hResource (32 bytes); counts its allocations.
 *   example_allocation_t hAllocation (40 bytes), inside an example_allocation_block_t (32-byte
 *                       header) holding every allocation of one DxgkDdiCreateAllocation call.
 *   example_binding_t   hDeviceSpecificAllocation (16 bytes), inside an example_binding_block_t
 *                       (32-byte header) holding every binding of one DxgkDdiOpenAllocation call.
 * An object finds its block from its index (container_of), so it carries no block pointer.
 */
#include "alloclab/hw/example_miniport.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "EXAMPLE_ALLOCATION_DATA is little-endian on the wire; add byte swapping for this host"
#endif
#endif

_Static_assert(sizeof(EXAMPLE_ALLOCATION_DATA) == 24, "EXAMPLE_ALLOCATION_DATA is 24 bytes");
_Static_assert(offsetof(EXAMPLE_ALLOCATION_DATA, Flags) == 4, "wire format: Flags at 4");
_Static_assert(offsetof(EXAMPLE_ALLOCATION_DATA, Alignment) == 8, "wire format: Alignment at 8");
_Static_assert(offsetof(EXAMPLE_ALLOCATION_DATA, Priority) == 12, "wire format: Priority at 12");
_Static_assert(offsetof(EXAMPLE_ALLOCATION_DATA, SizeBytes) == 16, "wire format: SizeBytes at 16");
_Static_assert(EXAMPLE_SEGMENT_COUNT <= DXGK_MAX_SEGMENTS, "segment ids are 5-bit");

/* Magic/state words. Distinct per kind, so a handle of the wrong kind is refused. */
#define EXAMPLE_ADAPTER_LIVE 0x41445031u      /* adapter context */
#define EXAMPLE_DEVICE_LIVE 0x44455631u       /* device */
#define EXAMPLE_RESOURCE_LIVE 0x52455331u     /* resource */
#define EXAMPLE_ALLOCATION_NEW 0x414C4E30u    /* allocation being created, not yet a handle */
#define EXAMPLE_ALLOCATION_LIVE 0x414C4C31u   /* allocation */
#define EXAMPLE_ALLOCATION_DOOMED 0x414C4432u /* listed by the DestroyAllocation in progress */
#define EXAMPLE_BINDING_OPEN 0x42494E31u      /* binding */
#define EXAMPLE_BINDING_CLOSING 0x42494E32u   /* listed by the CloseAllocation in progress */
#define EXAMPLE_DEAD 0xDEADDEADu              /* destroyed (the memory may still be held) */

/* What DxgkDdiCreateDevice reports in DXGK_DEVICEINFO. */
#define EXAMPLE_DEVICE_DMA_BUFFER_SIZE 4096u
#define EXAMPLE_DEVICE_ALLOCATION_LIST_SIZE 64u
#define EXAMPLE_DEVICE_PATCH_LOCATION_LIST_SIZE 64u

#define EXAMPLE_SEGMENT_BIT(id) (1u << ((id) - 1u))
#define EXAMPLE_SEGMENT_SET_ALL (EXAMPLE_SEGMENT_BIT(1) | EXAMPLE_SEGMENT_BIT(2))
#define EXAMPLE_FENCE_RING_INITIAL 64u
#define EXAMPLE_FENCE_RING_MAX (1u << 30)

#define EXAMPLE_CONTAINER_OF(ptr, type, member)                                                    \
  ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* ---- Lists ---------------------------------------------------------------------------------- */

/* A circular doubly-linked list node; a list head is a node linked to itself when empty. */
typedef struct example_link_s {
  struct example_link_s *prev;
  struct example_link_s *next;
} example_link_t;

static void example_list_init(example_link_t *head) { head->prev = head->next = head; }

static void example_list_add(example_link_t *head, example_link_t *node) {
  node->prev = head->prev;
  node->next = head;
  head->prev->next = node;
  head->prev = node;
}

static void example_list_del(example_link_t *node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = NULL;
}

/* ---- Objects -------------------------------------------------------------------------------- */

typedef struct example_adapter_s example_adapter_t;
typedef struct example_resource_s example_resource_t;

typedef struct example_allocation_s {
  _Atomic UINT state;           /* EXAMPLE_ALLOCATION_*; written under adapter->lock */
  UINT index;                   /* position in its block */
  UINT64 size;                  /* Size reported to the port */
  UINT64 segment_address;       /* placement (BuildPagingBuffer), under adapter->lock */
  example_resource_t *resource; /* NULL, or the resource it belongs to (fixed at create) */
  UCHAR segment_id;             /* placement: 0 = system memory / not placed, under the lock */
  UCHAR supported_set;          /* segment set it may be placed in */
  UCHAR eviction_set;           /* segment set it may be evicted to */
} example_allocation_t;

typedef struct example_allocation_block_s {
  example_link_t link;        /* in adapter->allocation_blocks, under adapter->lock */
  example_adapter_t *adapter; /* the adapter that created it */
  UINT count;                 /* allocations in the block */
  UINT live;                  /* not yet destroyed; the block is freed at 0; under the lock */
  example_allocation_t allocations[];
} example_allocation_block_t;

struct example_resource_s {
  UINT magic;            /* EXAMPLE_RESOURCE_LIVE, under adapter->lock */
  UINT allocation_count; /* live allocations that belong to it, under adapter->lock */
  example_adapter_t *adapter;
  example_link_t link; /* in adapter->resources, under adapter->lock */
};

typedef struct example_device_s {
  UINT magic; /* EXAMPLE_DEVICE_LIVE */
  example_adapter_t *adapter;
  example_link_t link;           /* in adapter->devices, under adapter->lock */
  example_link_t binding_blocks; /* its example_binding_block_t (adapter->lock) */
} example_device_t;

typedef struct example_binding_s {
  _Atomic UINT state;               /* EXAMPLE_BINDING_* */
  UINT index;                       /* position in its block */
  example_allocation_t *allocation; /* what it binds; recorded, never dereferenced */
} example_binding_t;

typedef struct example_binding_block_s {
  example_link_t link;      /* in device->binding_blocks */
  example_device_t *device; /* the device that opened the bindings */
  UINT count;               /* bindings in the block */
  UINT live;                /* not yet closed; the block is freed at 0 */
  example_binding_t bindings[];
} example_binding_block_t;

struct example_adapter_s {
  UINT magic; /* EXAMPLE_ADAPTER_LIVE */
  UINT memory_page_size;
  UINT64 memory_segment_size;
  UINT64 aperture_segment_size;

  pthread_mutex_t lock;
  /* Under lock: */
  bool started;
  HANDLE device_handle; /* DXGKRNL_INTERFACE.DeviceHandle */
  PDXGKCB_GETHANDLEDATA get_handle_data;
  PDXGKCB_NOTIFY_INTERRUPT notify_interrupt;
  UINT *fence_ring; /* FIFO of submitted fence ids; capacity is 0 or a power of two */
  UINT fence_capacity;
  UINT fence_head;
  UINT fence_count;
  example_link_t devices;
  example_link_t allocation_blocks;
  example_link_t resources;

  /* Live counts reported by AlDdiQueryLiveObjects. */
  _Atomic UINT live_devices;
  _Atomic UINT live_resources;
  _Atomic UINT live_allocations;
  _Atomic UINT live_bindings;
  _Atomic UINT64 live_host_bytes;
};

_Static_assert(sizeof(example_allocation_t) == 40, "keep allocations lean");
_Static_assert(sizeof(example_binding_t) == 16, "keep bindings lean");
/* A block of UINT_MAX objects has a size_t size: block byte counts never overflow. */
_Static_assert(SIZE_MAX / 64u >= UINT_MAX, "64-bit size_t");

static size_t example_allocation_block_bytes(UINT count) {
  return offsetof(example_allocation_block_t, allocations) +
         (size_t)count * sizeof(example_allocation_t);
}

static size_t example_binding_block_bytes(UINT count) {
  return offsetof(example_binding_block_t, bindings) + (size_t)count * sizeof(example_binding_t);
}

static example_allocation_block_t *example_allocation_block_of(example_allocation_t *allocation) {
  return EXAMPLE_CONTAINER_OF(allocation - allocation->index, example_allocation_block_t,
                              allocations);
}

static example_binding_block_t *example_binding_block_of(example_binding_t *binding) {
  return EXAMPLE_CONTAINER_OF(binding - binding->index, example_binding_block_t, bindings);
}

static UINT example_load(_Atomic UINT *word) {
  return atomic_load_explicit(word, memory_order_relaxed);
}

static void example_store(_Atomic UINT *word, UINT value) {
  atomic_store_explicit(word, value, memory_order_relaxed);
}

static void example_count(_Atomic UINT *counter, UINT delta) {
  atomic_fetch_add_explicit(counter, delta, memory_order_relaxed);
}

static void example_uncount(_Atomic UINT *counter, UINT delta) {
  atomic_fetch_sub_explicit(counter, delta, memory_order_relaxed);
}

static void example_count_bytes(example_adapter_t *adapter, size_t bytes) {
  atomic_fetch_add_explicit(&adapter->live_host_bytes, (UINT64)bytes, memory_order_relaxed);
}

static void example_uncount_bytes(example_adapter_t *adapter, size_t bytes) {
  atomic_fetch_sub_explicit(&adapter->live_host_bytes, (UINT64)bytes, memory_order_relaxed);
}

/* ---- Handle checks (a NULL result means STATUS_INVALID_HANDLE) ------------------------------- */

static example_adapter_t *example_adapter_from(HANDLE handle) {
  example_adapter_t *adapter = handle;
  return adapter && adapter->magic == EXAMPLE_ADAPTER_LIVE ? adapter : NULL;
}

static example_device_t *example_device_from(HANDLE handle) {
  example_device_t *device = handle;
  return device && device->magic == EXAMPLE_DEVICE_LIVE ? device : NULL;
}

/* Call with adapter->lock held. */
static example_resource_t *example_resource_from(HANDLE handle, const example_adapter_t *adapter) {
  example_resource_t *resource = handle;
  if (!resource || resource->magic != EXAMPLE_RESOURCE_LIVE) return NULL;
  return resource->adapter == adapter ? resource : NULL;
}

/* A live allocation of @adapter (state read once: a concurrent destroy is the port's bug). */
static example_allocation_t *example_allocation_from(HANDLE handle,
                                                     const example_adapter_t *adapter) {
  example_allocation_t *allocation = handle;
  if (!allocation || example_load(&allocation->state) != EXAMPLE_ALLOCATION_LIVE) return NULL;
  return example_allocation_block_of(allocation)->adapter == adapter ? allocation : NULL;
}

/* ---- Segments ------------------------------------------------------------------------------- */

static UINT64 example_segment_size(const example_adapter_t *adapter, UINT segment_id) {
  return segment_id == EXAMPLE_SEGMENT_ID_MEMORY ? adapter->memory_segment_size
                                                 : adapter->aperture_segment_size;
}

static UINT example_segment_page_size(const example_adapter_t *adapter, UINT segment_id) {
  return segment_id == EXAMPLE_SEGMENT_ID_MEMORY ? adapter->memory_page_size
                                                 : EXAMPLE_APERTURE_PAGE_SIZE;
}

/* Whether @size bytes of an allocation may sit at @address of segment @segment_id (1 or 2). */
static bool example_placement_fits(const example_adapter_t *adapter, UINT segment_id,
                                   LARGE_INTEGER address, UINT64 size) {
  if (address.QuadPart < 0) return false;
  UINT64 offset = (UINT64)address.QuadPart;
  UINT64 segment_size = example_segment_size(adapter, segment_id);
  return offset % example_segment_page_size(adapter, segment_id) == 0 && size <= segment_size &&
         offset <= segment_size - size;
}

/* ---- Adapter: AddDevice / StartDevice / StopDevice / RemoveDevice ---------------------------- */

static bool example_is_multiple(UINT64 value, UINT64 unit) { return value % unit == 0; }

static NTSTATUS example_config_read(const DEVICE_OBJECT *pdo, EXAMPLE_HARDWARE_CONFIG *out) {
  if (pdo->pAlHardwareConfig == NULL) {
    if (pdo->AlHardwareConfigSize != 0) return STATUS_INVALID_PARAMETER;
    out->Magic = EXAMPLE_HARDWARE_MAGIC;
    out->MemoryPageSize = EXAMPLE_HARDWARE_DEFAULT_PAGE_SIZE;
    out->MemorySegmentSize = EXAMPLE_HARDWARE_DEFAULT_MEMORY_SEGMENT_SIZE;
    out->ApertureSegmentSize = EXAMPLE_HARDWARE_DEFAULT_APERTURE_SEGMENT_SIZE;
    return STATUS_SUCCESS;
  }
  if (pdo->AlHardwareConfigSize != sizeof(EXAMPLE_HARDWARE_CONFIG)) return STATUS_INVALID_PARAMETER;
  memcpy(out, pdo->pAlHardwareConfig, sizeof *out);
  if (out->Magic != EXAMPLE_HARDWARE_MAGIC) return STATUS_INVALID_PARAMETER;
  if (out->MemoryPageSize != 4096u && out->MemoryPageSize != 65536u)
    return STATUS_INVALID_PARAMETER;
  if (out->MemorySegmentSize == 0 || out->MemorySegmentSize > EXAMPLE_SEGMENT_SIZE_MAX ||
      !example_is_multiple(out->MemorySegmentSize, out->MemoryPageSize))
    return STATUS_INVALID_PARAMETER;
  if (out->ApertureSegmentSize == 0 || out->ApertureSegmentSize > EXAMPLE_SEGMENT_SIZE_MAX ||
      !example_is_multiple(out->ApertureSegmentSize, EXAMPLE_APERTURE_PAGE_SIZE))
    return STATUS_INVALID_PARAMETER;
  return STATUS_SUCCESS;
}

static DXGKDDI_ADD_DEVICE example_ddi_add_device;
static NTSTATUS APIENTRY example_ddi_add_device(const PDEVICE_OBJECT PhysicalDeviceObject,
                                                PVOID *MiniportDeviceContext) {
  if (!PhysicalDeviceObject || !MiniportDeviceContext) return STATUS_INVALID_PARAMETER;
  *MiniportDeviceContext = NULL;
  EXAMPLE_HARDWARE_CONFIG config;
  NTSTATUS status = example_config_read(PhysicalDeviceObject, &config);
  if (!NT_SUCCESS(status)) return status;

  example_adapter_t *adapter = calloc(1, sizeof *adapter);
  if (!adapter) return STATUS_NO_MEMORY;
  if (pthread_mutex_init(&adapter->lock, NULL) != 0) {
    free(adapter);
    return STATUS_NO_MEMORY;
  }
  adapter->memory_page_size = config.MemoryPageSize;
  adapter->memory_segment_size = config.MemorySegmentSize;
  adapter->aperture_segment_size = config.ApertureSegmentSize;
  example_list_init(&adapter->devices);
  example_list_init(&adapter->allocation_blocks);
  example_list_init(&adapter->resources);
  atomic_init(&adapter->live_devices, 0);
  atomic_init(&adapter->live_resources, 0);
  atomic_init(&adapter->live_allocations, 0);
  atomic_init(&adapter->live_bindings, 0);
  atomic_init(&adapter->live_host_bytes, 0);
  adapter->magic = EXAMPLE_ADAPTER_LIVE;
  *MiniportDeviceContext = adapter;
  return STATUS_SUCCESS;
}

static DXGKDDI_START_DEVICE example_ddi_start_device;
static NTSTATUS APIENTRY example_ddi_start_device(const PVOID MiniportDeviceContext,
                                                  PDXGK_START_INFO DxgkStartInfo,
                                                  PDXGKRNL_INTERFACE DxgkInterface,
                                                  PULONG NumberOfVideoPresentSources,
                                                  PULONG NumberOfChildren) {
  (void)DxgkStartInfo;
  example_adapter_t *adapter = example_adapter_from(MiniportDeviceContext);
  if (!adapter) return STATUS_INVALID_HANDLE;
  if (!DxgkInterface || !DxgkInterface->DxgkCbGetHandleData ||
      !DxgkInterface->DxgkCbNotifyInterrupt)
    return STATUS_INVALID_PARAMETER;
  pthread_mutex_lock(&adapter->lock);
  bool was_started = adapter->started;
  if (!was_started) {
    adapter->device_handle = DxgkInterface->DeviceHandle;
    adapter->get_handle_data = DxgkInterface->DxgkCbGetHandleData;
    adapter->notify_interrupt = DxgkInterface->DxgkCbNotifyInterrupt;
    adapter->started = true;
  }
  pthread_mutex_unlock(&adapter->lock);
  if (was_started) return STATUS_INVALID_PARAMETER;
  /* No display: no video present sources, no children. */
  if (NumberOfVideoPresentSources) *NumberOfVideoPresentSources = 0;
  if (NumberOfChildren) *NumberOfChildren = 0;
  return STATUS_SUCCESS;
}

/* Stops the engine: pending fences are dropped (a stopped GPU completes nothing) and the
 * callbacks forgotten. Objects stay; DxgkDdiRemoveDevice frees them. */
static DXGKDDI_STOP_DEVICE example_ddi_stop_device;
static NTSTATUS APIENTRY example_ddi_stop_device(const PVOID MiniportDeviceContext) {
  example_adapter_t *adapter = example_adapter_from(MiniportDeviceContext);
  if (!adapter) return STATUS_INVALID_HANDLE;
  pthread_mutex_lock(&adapter->lock);
  adapter->started = false;
  adapter->device_handle = NULL;
  adapter->get_handle_data = NULL;
  adapter->notify_interrupt = NULL;
  adapter->fence_head = adapter->fence_count = 0;
  pthread_mutex_unlock(&adapter->lock);
  return STATUS_SUCCESS;
}

static void example_device_free_bindings(example_device_t *device);

/* Frees the adapter and everything still held for it: devices with their bindings, allocation
 * blocks, resources, the fence ring. The port calls it once nothing else runs on the adapter. */
static DXGKDDI_REMOVE_DEVICE example_ddi_remove_device;
static NTSTATUS APIENTRY example_ddi_remove_device(const PVOID MiniportDeviceContext) {
  example_adapter_t *adapter = example_adapter_from(MiniportDeviceContext);
  if (!adapter) return STATUS_INVALID_HANDLE;
  adapter->magic = EXAMPLE_DEAD;
  while (adapter->devices.next != &adapter->devices) {
    example_device_t *device = EXAMPLE_CONTAINER_OF(adapter->devices.next, example_device_t, link);
    example_device_free_bindings(device);
    example_list_del(&device->link);
    device->magic = EXAMPLE_DEAD;
    free(device);
  }
  while (adapter->allocation_blocks.next != &adapter->allocation_blocks) {
    example_allocation_block_t *block =
        EXAMPLE_CONTAINER_OF(adapter->allocation_blocks.next, example_allocation_block_t, link);
    example_list_del(&block->link);
    for (UINT i = 0; i < block->count; i++)
      example_store(&block->allocations[i].state, EXAMPLE_DEAD);
    free(block);
  }
  while (adapter->resources.next != &adapter->resources) {
    example_resource_t *resource =
        EXAMPLE_CONTAINER_OF(adapter->resources.next, example_resource_t, link);
    example_list_del(&resource->link);
    resource->magic = EXAMPLE_DEAD;
    free(resource);
  }
  free(adapter->fence_ring);
  pthread_mutex_destroy(&adapter->lock);
  free(adapter);
  return STATUS_SUCCESS;
}

/* ---- QueryAdapterInfo: the two segments ------------------------------------------------------ */

static void example_describe_segment(const example_adapter_t *adapter, UINT segment_id,
                                     DXGK_SEGMENTDESCRIPTOR *out) {
  memset(out, 0, sizeof *out);
  out->Size = (SIZE_T)example_segment_size(adapter, segment_id);
  out->CommitLimit = out->Size;
  out->AlPageSize = example_segment_page_size(adapter, segment_id);
  out->Flags.CpuVisible = 1;
  if (segment_id == EXAMPLE_SEGMENT_ID_APERTURE)
    out->Flags.Aperture = 1;
  else
    out->Flags.Use64KBPages = adapter->memory_page_size == 65536u;
}

static DXGKDDI_QUERYADAPTERINFO example_ddi_query_adapter_info;
static NTSTATUS APIENTRY example_ddi_query_adapter_info(
    const HANDLE hAdapter, const DXGKARG_QUERYADAPTERINFO *pQueryAdapterInfo) {
  example_adapter_t *adapter = example_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  if (!pQueryAdapterInfo || pQueryAdapterInfo->Type != DXGKQAITYPE_QUERYSEGMENT ||
      !pQueryAdapterInfo->pOutputData ||
      pQueryAdapterInfo->OutputDataSize < sizeof(DXGK_QUERYSEGMENTOUT))
    return STATUS_INVALID_PARAMETER;
  DXGK_QUERYSEGMENTOUT *out = pQueryAdapterInfo->pOutputData;
  if (out->pSegmentDescriptor != NULL) {
    if (out->NbSegment < EXAMPLE_SEGMENT_COUNT) return STATUS_INVALID_PARAMETER;
    example_describe_segment(adapter, EXAMPLE_SEGMENT_ID_MEMORY, &out->pSegmentDescriptor[0]);
    example_describe_segment(adapter, EXAMPLE_SEGMENT_ID_APERTURE, &out->pSegmentDescriptor[1]);
  }
  out->NbSegment = EXAMPLE_SEGMENT_COUNT;
  /* The paging "buffer" is executed during DxgkDdiBuildPagingBuffer: none is needed. */
  out->PagingBufferSegmentId = 0;
  out->PagingBufferSize = 0;
  out->PagingBufferPrivateDataSize = 0;
  return STATUS_SUCCESS;
}

/* ---- Devices --------------------------------------------------------------------------------- */

static DXGKDDI_CREATEDEVICE example_ddi_create_device;
static NTSTATUS APIENTRY example_ddi_create_device(const HANDLE hAdapter,
                                                   DXGKARG_CREATEDEVICE *pCreateDevice) {
  example_adapter_t *adapter = example_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  if (!pCreateDevice || pCreateDevice->Flags.Reserved != 0) return STATUS_INVALID_PARAMETER;
  example_device_t *device = malloc(sizeof *device);
  if (!device) return STATUS_NO_MEMORY;
  device->magic = EXAMPLE_DEVICE_LIVE;
  device->adapter = adapter;
  example_list_init(&device->binding_blocks);
  pthread_mutex_lock(&adapter->lock);
  example_list_add(&adapter->devices, &device->link);
  pthread_mutex_unlock(&adapter->lock);
  example_count(&adapter->live_devices, 1);
  example_count_bytes(adapter, sizeof *device);
  if (pCreateDevice->pInfo) {
    DXGK_DEVICEINFO *info = pCreateDevice->pInfo;
    memset(info, 0, sizeof *info);
    info->DmaBufferSize = EXAMPLE_DEVICE_DMA_BUFFER_SIZE;
    info->AllocationListSize = EXAMPLE_DEVICE_ALLOCATION_LIST_SIZE;
    info->PatchLocationListSize = EXAMPLE_DEVICE_PATCH_LOCATION_LIST_SIZE;
  }
  pCreateDevice->hDevice = device;
  return STATUS_SUCCESS;
}

/* Frees every binding block of @device (closed or forgotten by the port). */
static void example_device_free_bindings(example_device_t *device) {
  example_adapter_t *adapter = device->adapter;
  while (device->binding_blocks.next != &device->binding_blocks) {
    example_binding_block_t *block =
        EXAMPLE_CONTAINER_OF(device->binding_blocks.next, example_binding_block_t, link);
    example_list_del(&block->link);
    example_uncount(&adapter->live_bindings, block->live);
    example_uncount_bytes(adapter, example_binding_block_bytes(block->count));
    for (UINT i = 0; i < block->count; i++) example_store(&block->bindings[i].state, EXAMPLE_DEAD);
    free(block);
  }
}

static DXGKDDI_DESTROYDEVICE example_ddi_destroy_device;
static NTSTATUS APIENTRY example_ddi_destroy_device(const HANDLE hDevice) {
  example_device_t *device = example_device_from(hDevice);
  if (!device) return STATUS_INVALID_HANDLE;
  example_adapter_t *adapter = device->adapter;
  example_device_free_bindings(device);
  pthread_mutex_lock(&adapter->lock);
  example_list_del(&device->link);
  pthread_mutex_unlock(&adapter->lock);
  device->magic = EXAMPLE_DEAD;
  free(device);
  example_uncount(&adapter->live_devices, 1);
  example_uncount_bytes(adapter, sizeof *device);
  return STATUS_SUCCESS;
}

/* ---- CreateAllocation ------------------------------------------------------------------------ */

/* Validates one allocation's private data, initialises @allocation from it and fills every
 * output of @info except hAllocation (written only once the whole call succeeds). */
static NTSTATUS example_allocation_describe(const example_adapter_t *adapter,
                                            DXGK_ALLOCATIONINFO *info,
                                            example_allocation_t *allocation) {
  EXAMPLE_ALLOCATION_DATA data;
  if (!info->pPrivateDriverData || info->PrivateDriverDataSize != sizeof data)
    return STATUS_INVALID_PARAMETER;
  memcpy(&data, info->pPrivateDriverData, sizeof data); /* one read: no double fetch */
  if (data.Magic != EXAMPLE_ALLOCATION_MAGIC || (data.Flags & ~EXAMPLE_ALLOCATION_FLAGS_ALL) ||
      ((data.Flags & EXAMPLE_ALLOCATION_APERTURE_ONLY) &&
       (data.Flags & EXAMPLE_ALLOCATION_MEMORY_ONLY)))
    return STATUS_INVALID_PARAMETER;
  if ((data.Alignment & (data.Alignment - 1u)) != 0 ||
      data.Alignment > EXAMPLE_ALLOCATION_ALIGNMENT_MAX)
    return STATUS_INVALID_PARAMETER;

  UINT supported = EXAMPLE_SEGMENT_SET_ALL;
  if (data.Flags & EXAMPLE_ALLOCATION_MEMORY_ONLY)
    supported = EXAMPLE_SEGMENT_BIT(EXAMPLE_SEGMENT_ID_MEMORY);
  else if (data.Flags & EXAMPLE_ALLOCATION_APERTURE_ONLY)
    supported = EXAMPLE_SEGMENT_BIT(EXAMPLE_SEGMENT_ID_APERTURE);
  UINT64 page = EXAMPLE_APERTURE_PAGE_SIZE;
  UINT64 largest = 0;
  for (UINT id = 1; id <= EXAMPLE_SEGMENT_COUNT; id++) {
    if (!(supported & EXAMPLE_SEGMENT_BIT(id))) continue;
    if (example_segment_page_size(adapter, id) > page)
      page = example_segment_page_size(adapter, id);
    if (example_segment_size(adapter, id) > largest) largest = example_segment_size(adapter, id);
  }
  /* largest <= EXAMPLE_SEGMENT_SIZE_MAX, so the rounding below cannot overflow. */
  if (data.SizeBytes == 0 || data.SizeBytes > largest) return STATUS_INVALID_PARAMETER;
  UINT64 size = (data.SizeBytes + page - 1) / page * page;
  if (size > largest) return STATUS_INVALID_PARAMETER;

  UINT eviction = (data.Flags & EXAMPLE_ALLOCATION_APERTURE_ONLY)
                      ? 0u
                      : EXAMPLE_SEGMENT_BIT(EXAMPLE_SEGMENT_ID_APERTURE);
  allocation->size = size;
  allocation->segment_id = 0;
  allocation->segment_address = 0;
  allocation->supported_set = (UCHAR)supported;
  allocation->eviction_set = (UCHAR)eviction;

  info->Alignment = data.Alignment;
  info->Size = (SIZE_T)size;
  info->PitchAlignedSize = 0;
  info->HintedBank.Value = 0;
  info->PreferredSegment.Value = 0;
  if (supported == EXAMPLE_SEGMENT_SET_ALL) {
    info->PreferredSegment.SegmentId0 = EXAMPLE_SEGMENT_ID_MEMORY;
    info->PreferredSegment.SegmentId1 = EXAMPLE_SEGMENT_ID_APERTURE;
  } else {
    info->PreferredSegment.SegmentId0 = supported == EXAMPLE_SEGMENT_BIT(EXAMPLE_SEGMENT_ID_MEMORY)
                                            ? EXAMPLE_SEGMENT_ID_MEMORY
                                            : EXAMPLE_SEGMENT_ID_APERTURE;
  }
  info->SupportedReadSegmentSet = supported;
  info->SupportedWriteSegmentSet = supported;
  info->EvictionSegmentSet = eviction;
  info->MaximumRenamingListLength = 0;
  info->Flags.Value = 0;
  info->Flags.CpuVisible = (data.Flags & EXAMPLE_ALLOCATION_CPU_VISIBLE) ? 1u : 0u;
  info->pAllocationUsageHint = NULL;
  info->AllocationPriority = data.Priority ? data.Priority : EXAMPLE_ALLOCATION_PRIORITY_DEFAULT;
  return STATUS_SUCCESS;
}

/*
 * All-or-nothing without unwinding objects: the block is allocated first and filled while the
 * private data is validated; a failure at allocation k frees the block (the k-1 before it were
 * never published). Only then, under the lock, the resource is checked or created and the block
 * linked; handles are written last.
 */
static DXGKDDI_CREATEALLOCATION example_ddi_create_allocation;
static NTSTATUS APIENTRY
example_ddi_create_allocation(const HANDLE hAdapter, DXGKARG_CREATEALLOCATION *pCreateAllocation) {
  example_adapter_t *adapter = example_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  DXGKARG_CREATEALLOCATION *args = pCreateAllocation;
  if (!args || args->Flags.Reserved != 0 || args->NumAllocations == 0 || !args->pAllocationInfo)
    return STATUS_INVALID_PARAMETER;
  const UINT count = args->NumAllocations;
  const bool with_resource = args->Flags.Resource;
  HANDLE existing_resource = with_resource ? args->hResource : NULL;

  const size_t block_bytes = example_allocation_block_bytes(count);
  example_allocation_block_t *block = malloc(block_bytes);
  if (!block) return STATUS_NO_MEMORY;
  block->adapter = adapter;
  block->count = block->live = count;
  for (UINT i = 0; i < count; i++) {
    example_allocation_t *allocation = &block->allocations[i];
    atomic_init(&allocation->state, EXAMPLE_ALLOCATION_NEW);
    allocation->index = i;
    allocation->resource = NULL;
    NTSTATUS status = example_allocation_describe(adapter, &args->pAllocationInfo[i], allocation);
    if (!NT_SUCCESS(status)) {
      free(block);
      return status;
    }
  }

  example_resource_t *new_resource = NULL;
  if (with_resource && !existing_resource) {
    new_resource = malloc(sizeof *new_resource);
    if (!new_resource) {
      free(block);
      return STATUS_NO_MEMORY;
    }
    new_resource->magic = EXAMPLE_RESOURCE_LIVE;
    new_resource->allocation_count = 0;
    new_resource->adapter = adapter;
  }

  pthread_mutex_lock(&adapter->lock);
  example_resource_t *resource = new_resource;
  if (existing_resource) {
    resource = example_resource_from(existing_resource, adapter);
    if (!resource || resource->allocation_count > UINT_MAX - count) {
      pthread_mutex_unlock(&adapter->lock);
      free(block);
      return resource ? STATUS_INVALID_PARAMETER : STATUS_INVALID_HANDLE;
    }
  }
  if (new_resource) example_list_add(&adapter->resources, &new_resource->link);
  if (resource) resource->allocation_count += count;
  for (UINT i = 0; i < count; i++) {
    block->allocations[i].resource = resource;
    example_store(&block->allocations[i].state, EXAMPLE_ALLOCATION_LIVE);
  }
  example_list_add(&adapter->allocation_blocks, &block->link);
  pthread_mutex_unlock(&adapter->lock);

  /* Counted before the handles escape, so a destroy can never count below zero. */
  example_count(&adapter->live_allocations, count);
  example_count_bytes(adapter, block_bytes);
  if (new_resource) {
    example_count(&adapter->live_resources, 1);
    example_count_bytes(adapter, sizeof *new_resource);
    args->hResource = new_resource;
  }
  for (UINT i = 0; i < count; i++) args->pAllocationInfo[i].hAllocation = &block->allocations[i];
  return STATUS_SUCCESS;
}

/* ---- DestroyAllocation ----------------------------------------------------------------------- */

/*
 * Validates the whole list under the lock, marking each allocation DOOMED (a second sighting is
 * a duplicate); any failure restores the marks and changes nothing. Then every listed allocation
 * is released (its block freed with its last allocation) and, with DestroyResource, the resource.
 * Without DestroyResource, hResource is not used: allocations of a resource may go one by one
 * and leave the resource empty.
 */
static DXGKDDI_DESTROYALLOCATION example_ddi_destroy_allocation;
static NTSTATUS APIENTRY example_ddi_destroy_allocation(
    const HANDLE hAdapter, const DXGKARG_DESTROYALLOCATION *pDestroyAllocation) {
  example_adapter_t *adapter = example_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  const DXGKARG_DESTROYALLOCATION *args = pDestroyAllocation;
  if (!args || args->Flags.Reserved != 0) return STATUS_INVALID_PARAMETER;
  const UINT count = args->NumAllocations;
  const bool destroy_resource = args->Flags.DestroyResource;
  if ((count == 0 && !destroy_resource) || (count != 0 && !args->pAllocationList))
    return STATUS_INVALID_PARAMETER;

  NTSTATUS status = STATUS_SUCCESS;
  example_resource_t *resource = NULL;
  UINT marked = 0;
  size_t freed_bytes = 0;
  pthread_mutex_lock(&adapter->lock);
  if (destroy_resource) {
    resource = example_resource_from(args->hResource, adapter);
    if (!resource) status = STATUS_INVALID_HANDLE;
  }
  for (; NT_SUCCESS(status) && marked < count; marked++) {
    example_allocation_t *allocation = args->pAllocationList[marked];
    if (allocation && example_load(&allocation->state) == EXAMPLE_ALLOCATION_DOOMED) {
      status = STATUS_INVALID_PARAMETER; /* listed twice */
      break;
    }
    if (!example_allocation_from(allocation, adapter)) {
      status = STATUS_INVALID_HANDLE;
      break;
    }
    if (destroy_resource && allocation->resource != resource) {
      status = STATUS_INVALID_PARAMETER;
      break;
    }
    example_store(&allocation->state, EXAMPLE_ALLOCATION_DOOMED);
  }
  /* The list is duplicate-free and inside the resource: it must name all of the resource. */
  if (NT_SUCCESS(status) && destroy_resource && resource->allocation_count != count)
    status = STATUS_INVALID_PARAMETER;
  if (!NT_SUCCESS(status)) {
    for (UINT i = 0; i < marked; i++)
      example_store(&((example_allocation_t *)args->pAllocationList[i])->state,
                    EXAMPLE_ALLOCATION_LIVE);
    pthread_mutex_unlock(&adapter->lock);
    return status;
  }

  for (UINT i = 0; i < count; i++) {
    example_allocation_t *allocation = args->pAllocationList[i];
    example_allocation_block_t *block = example_allocation_block_of(allocation);
    example_store(&allocation->state, EXAMPLE_DEAD);
    if (allocation->resource) allocation->resource->allocation_count--;
    if (--block->live == 0) {
      example_list_del(&block->link);
      freed_bytes += example_allocation_block_bytes(block->count);
      free(block);
    }
  }
  if (resource) {
    example_list_del(&resource->link);
    resource->magic = EXAMPLE_DEAD;
    free(resource);
    freed_bytes += sizeof *resource;
  }
  pthread_mutex_unlock(&adapter->lock);
  example_uncount(&adapter->live_allocations, count);
  if (resource) example_uncount(&adapter->live_resources, 1);
  example_uncount_bytes(adapter, freed_bytes);
  return STATUS_SUCCESS;
}

/* ---- OpenAllocation / CloseAllocation -------------------------------------------------------- */

static DXGKDDI_OPENALLOCATIONINFO example_ddi_open_allocation;
static NTSTATUS APIENTRY
example_ddi_open_allocation(const HANDLE hDevice, const DXGKARG_OPENALLOCATION *pOpenAllocation) {
  example_device_t *device = example_device_from(hDevice);
  if (!device) return STATUS_INVALID_HANDLE;
  example_adapter_t *adapter = device->adapter;
  const DXGKARG_OPENALLOCATION *args = pOpenAllocation;
  if (!args || args->Flags.Reserved != 0 || (args->NumAllocations != 0 && !args->pOpenAllocation))
    return STATUS_INVALID_PARAMETER;
  const UINT count = args->NumAllocations;
  if (count == 0) return STATUS_SUCCESS; /* an empty resource: nothing to bind */

  pthread_mutex_lock(&adapter->lock);
  PDXGKCB_GETHANDLEDATA get_handle_data = adapter->get_handle_data;
  pthread_mutex_unlock(&adapter->lock);
  if (!get_handle_data) return STATUS_INVALID_PARAMETER; /* not started */

  const size_t block_bytes = example_binding_block_bytes(count);
  example_binding_block_t *block = malloc(block_bytes);
  if (!block) return STATUS_NO_MEMORY;
  block->device = device;
  block->count = block->live = count;
  for (UINT i = 0; i < count; i++) {
    DXGKARGCB_GETHANDLEDATA query;
    memset(&query, 0, sizeof query);
    query.hObject = args->pOpenAllocation[i].hAllocation;
    query.Type = DXGK_HANDLE_ALLOCATION;
    example_allocation_t *allocation = example_allocation_from(get_handle_data(&query), adapter);
    if (!allocation) {
      free(block);
      return STATUS_INVALID_HANDLE;
    }
    atomic_init(&block->bindings[i].state, EXAMPLE_BINDING_OPEN);
    block->bindings[i].index = i;
    block->bindings[i].allocation = allocation;
  }
  /* Under the adapter lock: the port may open and close on one device from two threads. */
  pthread_mutex_lock(&adapter->lock);
  example_list_add(&device->binding_blocks, &block->link);
  pthread_mutex_unlock(&adapter->lock);
  example_count(&adapter->live_bindings, count);
  example_count_bytes(adapter, block_bytes);
  for (UINT i = 0; i < count; i++)
    args->pOpenAllocation[i].hDeviceSpecificAllocation = &block->bindings[i];
  return STATUS_SUCCESS;
}

/* An open binding of @device; NULL for anything else. */
static example_binding_t *example_binding_from(HANDLE handle, const example_device_t *device) {
  example_binding_t *binding = handle;
  if (!binding || example_load(&binding->state) != EXAMPLE_BINDING_OPEN) return NULL;
  return example_binding_block_of(binding)->device == device ? binding : NULL;
}

static DXGKDDI_CLOSEALLOCATION example_ddi_close_allocation;
static NTSTATUS APIENTRY example_ddi_close_allocation(
    const HANDLE hDevice, const DXGKARG_CLOSEALLOCATION *pCloseAllocation) {
  example_device_t *device = example_device_from(hDevice);
  if (!device) return STATUS_INVALID_HANDLE;
  example_adapter_t *adapter = device->adapter;
  const DXGKARG_CLOSEALLOCATION *args = pCloseAllocation;
  if (!args || (args->NumAllocations != 0 && !args->pOpenHandleList))
    return STATUS_INVALID_PARAMETER;
  const UINT count = args->NumAllocations;

  NTSTATUS status = STATUS_SUCCESS;
  UINT marked = 0;
  for (; marked < count; marked++) {
    example_binding_t *binding = args->pOpenHandleList[marked];
    if (binding && example_load(&binding->state) == EXAMPLE_BINDING_CLOSING) {
      status = STATUS_INVALID_PARAMETER; /* listed twice */
      break;
    }
    if (!example_binding_from(binding, device)) {
      status = STATUS_INVALID_HANDLE;
      break;
    }
    example_store(&binding->state, EXAMPLE_BINDING_CLOSING);
  }
  if (!NT_SUCCESS(status)) {
    for (UINT i = 0; i < marked; i++)
      example_store(&((example_binding_t *)args->pOpenHandleList[i])->state, EXAMPLE_BINDING_OPEN);
    return status;
  }

  size_t freed_bytes = 0;
  pthread_mutex_lock(&adapter->lock); /* block->live and the device's block list */
  for (UINT i = 0; i < count; i++) {
    example_binding_t *binding = args->pOpenHandleList[i];
    example_binding_block_t *block = example_binding_block_of(binding);
    example_store(&binding->state, EXAMPLE_DEAD);
    if (--block->live == 0) {
      example_list_del(&block->link);
      freed_bytes += example_binding_block_bytes(block->count);
      free(block);
    }
  }
  pthread_mutex_unlock(&adapter->lock);
  example_uncount(&adapter->live_bindings, count);
  example_uncount_bytes(adapter, freed_bytes);
  return STATUS_SUCCESS;
}

/* ---- GPU work: SubmitCommand / RunEngine ----------------------------------------------------- */

/* Appends @fence to the ring, growing it (x2) when full. Call with adapter->lock held. */
static bool example_fence_push(example_adapter_t *adapter, UINT fence) {
  if (adapter->fence_count == adapter->fence_capacity) {
    UINT old_capacity = adapter->fence_capacity;
    if (old_capacity >= EXAMPLE_FENCE_RING_MAX) return false;
    UINT capacity = old_capacity ? old_capacity * 2u : EXAMPLE_FENCE_RING_INITIAL;
    UINT *ring = malloc((size_t)capacity * sizeof *ring);
    if (!ring) return false;
    for (UINT i = 0; i < adapter->fence_count; i++)
      ring[i] = adapter->fence_ring[(adapter->fence_head + i) & (old_capacity - 1u)];
    free(adapter->fence_ring);
    adapter->fence_ring = ring;
    adapter->fence_capacity = capacity;
    adapter->fence_head = 0;
  }
  adapter
      ->fence_ring[(adapter->fence_head + adapter->fence_count) & (adapter->fence_capacity - 1u)] =
      fence;
  adapter->fence_count++;
  return true;
}

/* Queues the submission's fence. hContext NULL (a paging submission) or a device of the
 * adapter; every allocation-list entry must be an open binding (of hContext, when given). The
 * command stream itself is not interpreted. */
static DXGKDDI_SUBMITCOMMAND example_ddi_submit_command;
static NTSTATUS APIENTRY example_ddi_submit_command(const HANDLE hAdapter,
                                                    const DXGKARG_SUBMITCOMMAND *pSubmitCommand) {
  example_adapter_t *adapter = example_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  const DXGKARG_SUBMITCOMMAND *args = pSubmitCommand;
  if (!args || (args->AlAllocationListSize != 0 && !args->pAlAllocationList))
    return STATUS_INVALID_PARAMETER;
  const example_device_t *device = NULL;
  if (args->hContext) {
    device = example_device_from(args->hContext);
    if (!device || device->adapter != adapter) return STATUS_INVALID_HANDLE;
  }
  for (UINT i = 0; i < args->AlAllocationListSize; i++) {
    example_binding_t *binding = args->pAlAllocationList[i].hDeviceSpecificAllocation;
    if (!binding || example_load(&binding->state) != EXAMPLE_BINDING_OPEN)
      return STATUS_INVALID_HANDLE;
    if (device && example_binding_block_of(binding)->device != device) return STATUS_INVALID_HANDLE;
  }
  pthread_mutex_lock(&adapter->lock);
  NTSTATUS status = STATUS_SUCCESS;
  if (!adapter->started)
    status = STATUS_INVALID_PARAMETER;
  else if (!example_fence_push(adapter, args->SubmissionFenceId))
    status = STATUS_NO_MEMORY;
  pthread_mutex_unlock(&adapter->lock);
  return status;
}

/*
 * Completes up to MaxSubmissions queued fences, oldest first. Each fence is popped under the
 * lock and reported after unlocking, so the callback may re-enter any DDI. One caller sees its
 * fences reported in submission order; callers running at once share the queue and may report
 * interleaved.
 */
static ALDDI_RUN_ENGINE example_ddi_run_engine;
static NTSTATUS APIENTRY example_ddi_run_engine(const HANDLE hAdapter, UINT MaxSubmissions,
                                                UINT *pCompleted) {
  example_adapter_t *adapter = example_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  if (!pCompleted) return STATUS_INVALID_PARAMETER;
  *pCompleted = 0;
  pthread_mutex_lock(&adapter->lock);
  bool started = adapter->started;
  pthread_mutex_unlock(&adapter->lock);
  if (!started) return STATUS_INVALID_PARAMETER;

  UINT completed = 0;
  while (completed < MaxSubmissions) {
    pthread_mutex_lock(&adapter->lock);
    if (!adapter->started || adapter->fence_count == 0) {
      pthread_mutex_unlock(&adapter->lock);
      break;
    }
    UINT fence = adapter->fence_ring[adapter->fence_head];
    adapter->fence_head = (adapter->fence_head + 1u) & (adapter->fence_capacity - 1u);
    adapter->fence_count--;
    HANDLE device_handle = adapter->device_handle;
    PDXGKCB_NOTIFY_INTERRUPT notify = adapter->notify_interrupt;
    pthread_mutex_unlock(&adapter->lock);

    DXGKARGCB_NOTIFY_INTERRUPT_DATA interrupt;
    memset(&interrupt, 0, sizeof interrupt);
    interrupt.InterruptType = DXGK_INTERRUPT_DMA_COMPLETED;
    interrupt.DmaCompleted.SubmissionFenceId = fence;
    notify(device_handle, &interrupt);
    completed++;
  }
  *pCompleted = completed;
  return STATUS_SUCCESS;
}

/* ---- BuildPagingBuffer: placement only ------------------------------------------------------- */

/*
 * FILL places the allocation (Destination.SegmentId in its supported set, page-aligned address,
 * inside the segment; FillSize <= Size). TRANSFER moves it (TransferOffset + TransferSize <=
 * Size; each end is system memory (id 0) or, inside bounds, a segment of the supported set or,
 * for the destination, of the eviction set). The source is checked for validity, not against the
 * recorded placement: the port may place allocations without telling the miniport.
 */
static bool example_location_valid(const example_adapter_t *adapter,
                                   const example_allocation_t *allocation,
                                   const DXGK_PAGING_LOCATION *location, UINT allowed_set) {
  if (location->SegmentId == 0) return true;
  if (location->SegmentId > EXAMPLE_SEGMENT_COUNT ||
      !(allowed_set & EXAMPLE_SEGMENT_BIT(location->SegmentId)))
    return false;
  return example_placement_fits(adapter, location->SegmentId, location->SegmentAddress,
                                allocation->size);
}

static DXGKDDI_BUILDPAGINGBUFFER example_ddi_build_paging_buffer;
static NTSTATUS APIENTRY example_ddi_build_paging_buffer(
    const HANDLE hAdapter, DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer) {
  example_adapter_t *adapter = example_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  DXGKARG_BUILDPAGINGBUFFER *args = pBuildPagingBuffer;
  if (!args) return STATUS_INVALID_PARAMETER;
  example_allocation_t *allocation;
  const DXGK_PAGING_LOCATION *destination;
  switch (args->Operation) {
  case DXGK_OPERATION_FILL:
    allocation = example_allocation_from(args->Fill.hAllocation, adapter);
    if (!allocation) return STATUS_INVALID_HANDLE;
    destination = &args->Fill.Destination;
    if (args->Fill.FillSize > allocation->size || destination->SegmentId == 0 ||
        !example_location_valid(adapter, allocation, destination, allocation->supported_set))
      return STATUS_INVALID_PARAMETER;
    break;
  case DXGK_OPERATION_TRANSFER:
    allocation = example_allocation_from(args->Transfer.hAllocation, adapter);
    if (!allocation) return STATUS_INVALID_HANDLE;
    destination = &args->Transfer.Destination;
    if (args->Transfer.TransferSize > allocation->size ||
        args->Transfer.TransferOffset > allocation->size - args->Transfer.TransferSize ||
        !example_location_valid(adapter, allocation, &args->Transfer.Source,
                                allocation->supported_set | allocation->eviction_set) ||
        !example_location_valid(adapter, allocation, destination,
                                allocation->supported_set | allocation->eviction_set))
      return STATUS_INVALID_PARAMETER;
    break;
  default: return STATUS_INVALID_PARAMETER;
  }
  pthread_mutex_lock(&adapter->lock);
  allocation->segment_id = (UCHAR)destination->SegmentId;
  allocation->segment_address =
      destination->SegmentId ? (UINT64)destination->SegmentAddress.QuadPart : 0;
  pthread_mutex_unlock(&adapter->lock);
  return STATUS_SUCCESS;
}

/* ---- QueryLiveObjects ------------------------------------------------------------------------ */

static ALDDI_QUERY_LIVE_OBJECTS example_ddi_query_live_objects;
static NTSTATUS APIENTRY example_ddi_query_live_objects(const HANDLE hAdapter,
                                                        ALDDI_LIVE_OBJECTS *pLiveObjects) {
  example_adapter_t *adapter = example_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  if (!pLiveObjects) return STATUS_INVALID_PARAMETER;
  pLiveObjects->Devices = example_load(&adapter->live_devices);
  pLiveObjects->Resources = example_load(&adapter->live_resources);
  pLiveObjects->Allocations = example_load(&adapter->live_allocations);
  pLiveObjects->OpenAllocations = example_load(&adapter->live_bindings);
  pLiveObjects->HostBytes = atomic_load_explicit(&adapter->live_host_bytes, memory_order_relaxed);
  return STATUS_SUCCESS;
}

/* ---- Public ---------------------------------------------------------------------------------- */

EXAMPLE_ALLOCATION_DATA example_allocation_data(UINT64 size_bytes, UINT flags) {
  EXAMPLE_ALLOCATION_DATA data;
  memset(&data, 0, sizeof data);
  data.Magic = EXAMPLE_ALLOCATION_MAGIC;
  data.Flags = flags;
  data.SizeBytes = size_bytes;
  return data;
}

NTSTATUS ExampleMiniportDriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath) {
  DRIVER_INITIALIZATION_DATA init;
  memset(&init, 0, sizeof init);
  init.Version = DXGKDDI_INTERFACE_VERSION;
  init.DxgkDdiAddDevice = example_ddi_add_device;
  init.DxgkDdiStartDevice = example_ddi_start_device;
  init.DxgkDdiStopDevice = example_ddi_stop_device;
  init.DxgkDdiRemoveDevice = example_ddi_remove_device;
  init.DxgkDdiQueryAdapterInfo = example_ddi_query_adapter_info;
  init.DxgkDdiCreateDevice = example_ddi_create_device;
  init.DxgkDdiDestroyDevice = example_ddi_destroy_device;
  init.DxgkDdiCreateAllocation = example_ddi_create_allocation;
  init.DxgkDdiDestroyAllocation = example_ddi_destroy_allocation;
  init.DxgkDdiOpenAllocation = example_ddi_open_allocation;
  init.DxgkDdiCloseAllocation = example_ddi_close_allocation;
  init.DxgkDdiSubmitCommand = example_ddi_submit_command;
  init.DxgkDdiBuildPagingBuffer = example_ddi_build_paging_buffer;
  init.AlDdiRunEngine = example_ddi_run_engine;
  init.AlDdiQueryLiveObjects = example_ddi_query_live_objects;
  return DxgkInitialize(DriverObject, RegistryPath, &init);
}
