/*
 * d3dkmddi.h — the DDI boundary of alloclab: what a display miniport implements and what the
 * port (core/) calls, modelled on the documented WDDM kernel-mode DDI (d3dkmddi.h, dispmprt.h).
 *
 * DOC: Overview
 * A miniport fills a DRIVER_INITIALIZATION_DATA table of DxgkDdi* function pointers in its
 * DriverEntry and hands it to the port with DxgkInitialize(). The port then brings an adapter up
 * (DxgkDdiAddDevice, DxgkDdiStartDevice, DxgkDdiQueryAdapterInfo for the segments) and drives the
 * allocation path (CreateDevice, CreateAllocation, OpenAllocation, CloseAllocation,
 * DestroyAllocation, DestroyDevice, SubmitCommand, BuildPagingBuffer) in the legal order described
 * in ../shared/wddm-contract.md. The miniport calls back into the port through DXGKRNL_INTERFACE
 * (DxgkCbGetHandleData, DxgkCbNotifyInterrupt).
 *
 * Names, fields and signatures are the documented ones for the modelled subset, so a miniport
 * written against the WDK signatures of these DDIs compiles here unchanged. Where alloclab needs
 * something Windows does differently (no kernel, a simulated GPU), the addition is marked
 * "alloclab extension" and carries an Al prefix.
 *
 * Glossary: DDI = device driver interface (port -> miniport); Cb = callback (miniport -> port);
 * segment = a range of GPU-accessible memory the miniport describes (memory or aperture);
 * segment set = bitmask in which bit (id - 1) stands for segment id (ids are 1-based, 0 = none).
 *
 * Threading: the port may call any DDI from several threads at once, also for the same adapter
 * or device (a deferred close may run while another thread opens on that device), so a miniport
 * protects its shared state. The port never calls a DDI for an object it has already destroyed,
 * and never holds a lock that a callback needs (DxgkCbGetHandleData may be called from inside
 * any DDI; DxgkCbNotifyInterrupt from any thread).
 */
#ifndef ALLOCLAB_D3DKMDDI_H
#define ALLOCLAB_D3DKMDDI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Windows base types (the subset the DDIs use) ------------------------------------------ */

typedef void VOID;
typedef void *PVOID;
typedef void *HANDLE;
typedef uint8_t BOOLEAN;
typedef uint8_t UCHAR;
typedef uint16_t UINT16;
typedef uint32_t UINT;
typedef uint32_t ULONG;
typedef uint32_t *PULONG;
typedef int32_t LONG;
typedef int64_t LONGLONG;
typedef uint64_t ULONGLONG;
typedef uint64_t UINT64;
typedef size_t SIZE_T;
typedef SIZE_T *PSIZE_T;

/* The kernel-mode handle the port gives an object (allocation, resource, device). */
typedef UINT D3DKMT_HANDLE;
typedef ULONGLONG D3DGPU_VIRTUAL_ADDRESS;

typedef union _LARGE_INTEGER {
  struct {
    ULONG LowPart;
    LONG HighPart;
  };
  LONGLONG QuadPart;
} LARGE_INTEGER, PHYSICAL_ADDRESS, *PPHYSICAL_ADDRESS;

#ifndef APIENTRY
#define APIENTRY
#endif

#ifndef TRUE
#define TRUE 1
#define FALSE 0
#endif

/* ---- NTSTATUS ------------------------------------------------------------------------------ */

typedef LONG NTSTATUS;

#define NT_SUCCESS(Status) (((NTSTATUS)(Status)) >= 0)

#define STATUS_SUCCESS ((NTSTATUS)0x00000000L)
/* A wait gave up before the fence signalled. */
#define STATUS_TIMEOUT ((NTSTATUS)0x00000102L)
/* An argument breaks a documented rule: NULL pointer, count out of range, reserved flag bit,
 * duplicate or mixed-owner list, an operation the object's state forbids. */
#define STATUS_INVALID_PARAMETER ((NTSTATUS)0xC000000DL)
/* A handle is 0, stale, of the wrong type, or not usable from the device named in the call. */
#define STATUS_INVALID_HANDLE ((NTSTATUS)0xC0000008L)
/* Host memory (not video memory) ran out. */
#define STATUS_NO_MEMORY ((NTSTATUS)0xC0000017L)
/* The adapter was removed (surprise removal, hung GPU): only teardown still works. */
#define STATUS_DEVICE_REMOVED ((NTSTATUS)0xC00002B6L)
/* The miniport's table or its answers do not match what the port requires. */
#define STATUS_GRAPHICS_DRIVER_MISMATCH ((NTSTATUS)0xC01E0009L)
/* No segment in the allocation's supported set has room for it. */
#define STATUS_GRAPHICS_NO_VIDEO_MEMORY ((NTSTATUS)0xC01E0100L)
#define STATUS_NO_VIDEO_MEMORY STATUS_GRAPHICS_NO_VIDEO_MEMORY

/* ---- Kernel objects the port hands the miniport --------------------------------------------- */

/* The driver object. Opaque to the miniport; the port keeps the registered DDI table in it. */
typedef struct _DRIVER_OBJECT DRIVER_OBJECT, *PDRIVER_OBJECT;

typedef struct _UNICODE_STRING {
  UINT16 Length;
  UINT16 MaximumLength;
  const UINT16 *Buffer;
} UNICODE_STRING, *PUNICODE_STRING;

/* The physical device object of an adapter. alloclab extension: the fields describe the
 * (simulated) hardware the adapter was created with: an opaque configuration blob that the
 * port passes through unchanged from al_adapter_create(). */
typedef struct _DEVICE_OBJECT {
  const VOID *pAlHardwareConfig;
  SIZE_T AlHardwareConfigSize;
} DEVICE_OBJECT, *PDEVICE_OBJECT;

/* ---- Segments ------------------------------------------------------------------------------ */

typedef struct _DXGK_SEGMENTFLAGS {
  union {
    struct {
      UINT Aperture : 1;
      UINT Agp : 1;
      UINT CpuVisible : 1;
      UINT UseBanking : 1;
      UINT CacheCoherent : 1;
      UINT PitchAlignment : 1;
      UINT PopulatedFromSystemMemory : 1;
      UINT PreservedDuringStandby : 1;
      UINT PreservedDuringHibernate : 1;
      UINT PartiallyPreservedDuringHibernate : 1;
      UINT DirectFlip : 1;
      UINT Use64KBPages : 1;
      UINT ReservedSysMem : 1;
      UINT SupportsCpuHostAperture : 1;
      UINT SupportsCachedCpuHostAperture : 1;
      UINT ApplicationTarget : 1;
      UINT VprSupported : 1;
      UINT VprPreservedDuringStandby : 1;
      UINT EncryptedPagingSupported : 1;
      UINT LocalBudgetGroup : 1;
      UINT NonLocalBudgetGroup : 1;
      UINT PopulatedByReservedDDRByFirmware : 1;
      UINT Reserved : 10;
    };
    UINT Value;
  };
} DXGK_SEGMENTFLAGS;

typedef struct _DXGK_SEGMENTDESCRIPTOR {
  PHYSICAL_ADDRESS BaseAddress;
  PHYSICAL_ADDRESS CpuTranslatedAddress;
  SIZE_T Size;
  UINT NbOfBanks;
  SIZE_T *pBankRangeTable;
  SIZE_T CommitLimit;
  DXGK_SEGMENTFLAGS Flags;
  /* alloclab extension: the segment's page size in bytes (4 KiB or 64 KiB; 0 means 4 KiB).
   * The port places allocations at multiples of it. */
  SIZE_T AlPageSize;
} DXGK_SEGMENTDESCRIPTOR;

/* The most segments an adapter may describe: segment ids are 5-bit fields in the DDI. */
#define DXGK_MAX_SEGMENTS 31

typedef struct _DXGK_QUERYSEGMENTIN {
  PHYSICAL_ADDRESS AgpApertureBase;
  SIZE_T AgpApertureSize;
} DXGK_QUERYSEGMENTIN;

/* Asked twice: first with pSegmentDescriptor NULL (the miniport sets NbSegment), then with an
 * array of NbSegment descriptors to fill. */
typedef struct _DXGK_QUERYSEGMENTOUT {
  UINT NbSegment;
  DXGK_SEGMENTDESCRIPTOR *pSegmentDescriptor;
  UINT PagingBufferSegmentId;
  UINT PagingBufferSize;
  UINT PagingBufferPrivateDataSize;
} DXGK_QUERYSEGMENTOUT;

typedef enum _DXGK_QUERYADAPTERINFOTYPE {
  DXGKQAITYPE_UMDRIVERPRIVATE = 0,
  DXGKQAITYPE_DRIVERCAPS = 1,
  DXGKQAITYPE_QUERYSEGMENT = 2,
} DXGK_QUERYADAPTERINFOTYPE;

typedef struct _DXGK_QUERYADAPTERINFOFLAGS {
  union {
    struct {
      UINT VirtualMachineData : 1;
      UINT Reserved : 31;
    };
    UINT Value;
  };
} DXGK_QUERYADAPTERINFOFLAGS;

typedef struct _DXGKARG_QUERYADAPTERINFO {
  DXGK_QUERYADAPTERINFOTYPE Type;
  VOID *pInputData;
  UINT InputDataSize;
  VOID *pOutputData;
  UINT OutputDataSize;
  DXGK_QUERYADAPTERINFOFLAGS Flags;
  HANDLE hKmdProcessHandle;
} DXGKARG_QUERYADAPTERINFO;

/* ---- Devices ------------------------------------------------------------------------------- */

typedef struct _DXGK_CREATEDEVICEFLAGS {
  union {
    struct {
      UINT SystemDevice : 1;
      UINT GdiDevice : 1;
      UINT Reserved : 30;
    };
    UINT Value;
  };
} DXGK_CREATEDEVICEFLAGS;

typedef struct _DXGK_DEVICEINFO {
  UINT DmaBufferSize;
  UINT DmaBufferSegmentSet;
  UINT DmaBufferPrivateDataSize;
  UINT AllocationListSize;
  UINT PatchLocationListSize;
  UINT Flags;
} DXGK_DEVICEINFO;

typedef struct _DXGKARG_CREATEDEVICE {
  /* in: the port's handle of the device; out: the miniport's handle of its device object. */
  HANDLE hDevice;
  DXGK_CREATEDEVICEFLAGS Flags;
  DXGK_DEVICEINFO *pInfo;
} DXGKARG_CREATEDEVICE;

/* ---- Allocations: create ------------------------------------------------------------------ */

/* Five segment preferences in order; SegmentIdN 0 ends the list; DirectionN 1 = place from the
 * end of the segment (alloclab places from the start either way). */
typedef struct _DXGK_SEGMENTPREFERENCE {
  union {
    struct {
      UINT SegmentId0 : 5;
      UINT Direction0 : 1;
      UINT SegmentId1 : 5;
      UINT Direction1 : 1;
      UINT SegmentId2 : 5;
      UINT Direction2 : 1;
      UINT SegmentId3 : 5;
      UINT Direction3 : 1;
      UINT SegmentId4 : 5;
      UINT Direction4 : 1;
      UINT Reserved : 2;
    };
    UINT Value;
  };
} DXGK_SEGMENTPREFERENCE;

typedef struct _DXGK_SEGMENTBANKPREFERENCE {
  union {
    struct {
      UINT Bank0 : 7;
      UINT Direction0 : 1;
      UINT Bank1 : 7;
      UINT Direction1 : 1;
      UINT Bank2 : 7;
      UINT Direction2 : 1;
      UINT Bank3 : 7;
      UINT Direction3 : 1;
    };
    UINT Value;
  };
} DXGK_SEGMENTBANKPREFERENCE;

typedef struct _DXGK_ALLOCATIONINFOFLAGS {
  union {
    struct {
      UINT CpuVisible : 1;
      UINT PermanentSysMem : 1; /* needs CpuVisible */
      UINT Cached : 1;          /* needs CpuVisible */
      UINT Protected : 1;
      UINT ExistingSysMem : 1;
      UINT ExistingKernelSysMem : 1;
      UINT FromEndOfSegment : 1;
      UINT Swizzled : 1;
      UINT Overlay : 1;
      UINT Capture : 1;
      UINT UseAlternateVA : 1;
      UINT SynchronousPaging : 1;
      UINT LinkMirrored : 1;
      UINT LinkInstanced : 1;
      UINT HistoryBuffer : 1;
      UINT AccessedPhysically : 1;
      UINT ExplicitResidencyNotification : 1;
      UINT HardwareProtected : 1;
      UINT CpuVisibleOnDemand : 1;
      UINT Reserved : 13;
    };
    UINT Value;
  };
} DXGK_ALLOCATIONINFOFLAGS;

/* Bits above the last named flag (CpuVisibleOnDemand) are reserved and must be 0. */
#define DXGK_ALLOCATIONINFOFLAGS_RESERVED_MASK 0xFFF80000u

typedef struct _DXGK_ALLOCATIONUSAGEHINT DXGK_ALLOCATIONUSAGEHINT;

/* One allocation to create. The port fills pPrivateDriverData/PrivateDriverDataSize; the
 * miniport fills every other field (outputs) from that private data. */
typedef struct _DXGK_ALLOCATIONINFO {
  VOID *pPrivateDriverData;
  UINT PrivateDriverDataSize;
  UINT Alignment;          /* out: 0 = the segment's page size; else a power of two */
  SIZE_T Size;             /* out: a multiple of 4 KiB, > 0 */
  SIZE_T PitchAlignedSize; /* out: 0, or >= Size */
  DXGK_SEGMENTBANKPREFERENCE HintedBank;
  DXGK_SEGMENTPREFERENCE PreferredSegment; /* out: ids must lie inside the supported set */
  UINT SupportedReadSegmentSet;
  UINT SupportedWriteSegmentSet; /* out: non-empty, inside the described segments (WDDM 2) */
  UINT EvictionSegmentSet;       /* out: aperture segments only; 0 = system memory */
  UINT MaximumRenamingListLength;
  HANDLE hAllocation; /* out: the miniport's handle, non-NULL on success */
  DXGK_ALLOCATIONINFOFLAGS Flags;
  DXGK_ALLOCATIONUSAGEHINT *pAllocationUsageHint;
  UINT AllocationPriority; /* out: 0 is invalid */
} DXGK_ALLOCATIONINFO;

typedef struct _DXGK_CREATEALLOCATIONFLAGS {
  union {
    struct {
      UINT Resource : 1;
      UINT Reserved : 31; /* must be 0 */
    };
    UINT Value;
  };
} DXGK_CREATEALLOCATIONFLAGS;

typedef struct _DXGKARG_CREATEALLOCATION {
  const VOID *pPrivateDriverData; /* resource-level private data */
  UINT PrivateDriverDataSize;
  UINT NumAllocations;
  DXGK_ALLOCATIONINFO *pAllocationInfo;
  /* in/out: with Flags.Resource, NULL to make a new resource (the miniport may return its
   * handle) or the miniport's handle of an existing resource to add to. */
  HANDLE hResource;
  DXGK_CREATEALLOCATIONFLAGS Flags;
} DXGKARG_CREATEALLOCATION;

/* ---- Allocations: open / close ----------------------------------------------------------- */

typedef struct _DXGK_OPENALLOCATIONINFO {
  D3DKMT_HANDLE hAllocation;        /* in: the port's handle (resolve with DxgkCbGetHandleData) */
  VOID *pPrivateDriverData;         /* in/out: may be changed only when Flags.Create is set */
  UINT PrivateDriverDataSize;
  HANDLE hDeviceSpecificAllocation; /* out: non-NULL on success */
} DXGK_OPENALLOCATIONINFO;

typedef struct _DXGK_OPENALLOCATIONFLAGS {
  union {
    struct {
      UINT Create : 1;   /* the opening device is the one that created the allocations */
      UINT ReadOnly : 1;
      UINT Reserved : 30; /* must be 0 */
    };
    UINT Value;
  };
} DXGK_OPENALLOCATIONFLAGS;

typedef struct _DXGKARG_OPENALLOCATION {
  UINT NumAllocations;
  DXGK_OPENALLOCATIONINFO *pOpenAllocation;
  VOID *pPrivateDriverData; /* the resource-level private data given at create */
  UINT PrivateDriverSize;
  DXGK_OPENALLOCATIONFLAGS Flags;
  UINT SubresourceIndex;
  SIZE_T SubresourceOffset;
  UINT Pitch;
} DXGKARG_OPENALLOCATION;

typedef struct _DXGKARG_CLOSEALLOCATION {
  UINT NumAllocations;
  const HANDLE *pOpenHandleList; /* hDeviceSpecificAllocation values of one device */
} DXGKARG_CLOSEALLOCATION;

/* ---- Allocations: destroy ---------------------------------------------------------------- */

typedef struct _DXGK_DESTROYALLOCATIONFLAGS {
  union {
    struct {
      UINT DestroyResource : 1; /* also release hResource */
      UINT Reserved : 31;       /* must be 0 */
    };
    UINT Value;
  };
} DXGK_DESTROYALLOCATIONFLAGS;

typedef struct _DXGKARG_DESTROYALLOCATION {
  UINT NumAllocations;
  const HANDLE *pAllocationList; /* hAllocation values returned by DxgkDdiCreateAllocation */
  HANDLE hResource;
  DXGK_DESTROYALLOCATIONFLAGS Flags;
} DXGKARG_DESTROYALLOCATION;

/* ---- GPU work ------------------------------------------------------------------------------ */

/* One allocation referenced by submitted work; the command stream names allocations by their
 * index in this list. */
typedef struct _DXGK_ALLOCATIONLIST {
  HANDLE hDeviceSpecificAllocation;
  struct {
    UINT WriteOperation : 1;
    UINT SegmentId : 5;
    UINT Reserved : 26;
  };
  PHYSICAL_ADDRESS PhysicalAddress; /* offset of the allocation inside SegmentId */
} DXGK_ALLOCATIONLIST;

typedef struct _DXGK_SUBMITCOMMANDFLAGS {
  union {
    struct {
      UINT Null : 1;    /* nothing to execute; only signal the fence */
      UINT Paging : 1;
      UINT Present : 1;
      UINT Reserved : 29;
    };
    UINT Value;
  };
} DXGK_SUBMITCOMMANDFLAGS;

typedef struct _DXGKARG_SUBMITCOMMAND {
  PHYSICAL_ADDRESS DmaBufferPhysicalAddress;
  UINT DmaBufferSize;
  UINT DmaBufferSubmissionStartOffset;
  UINT DmaBufferSubmissionEndOffset;
  VOID *pDmaBufferPrivateData;
  UINT DmaBufferPrivateDataSize;
  UINT DmaBufferPrivateDataSubmissionStartOffset;
  UINT DmaBufferPrivateDataSubmissionEndOffset;
  UINT SubmissionFenceId; /* signal this through DxgkCbNotifyInterrupt when the work is done */
  DXGK_SUBMITCOMMANDFLAGS Flags;
  HANDLE hContext; /* alloclab: the miniport's device handle (one context per device) */
  UINT EngineOrdinal;
  UINT NodeOrdinal;
  /* alloclab extension: the command stream in host memory (no DMA addresses here) and the
   * allocations it references. Both stay valid only for the duration of the call. */
  const VOID *pAlDmaBuffer;
  const DXGK_ALLOCATIONLIST *pAlAllocationList;
  UINT AlAllocationListSize;
} DXGKARG_SUBMITCOMMAND;

/* ---- Paging -------------------------------------------------------------------------------- */

typedef enum _DXGK_BUILDPAGINGBUFFER_OPERATION {
  DXGK_OPERATION_TRANSFER = 0,
  DXGK_OPERATION_FILL = 1,
  DXGK_OPERATION_DISCARD_CONTENT = 2,
  DXGK_OPERATION_READ_PHYSICAL = 3,
  DXGK_OPERATION_WRITE_PHYSICAL = 4,
  DXGK_OPERATION_MAP_APERTURE_SEGMENT = 5,
  DXGK_OPERATION_UNMAP_APERTURE_SEGMENT = 6,
} DXGK_BUILDPAGINGBUFFER_OPERATION;

typedef struct _DXGK_PAGING_LOCATION {
  UINT SegmentId; /* 0 = system memory */
  LARGE_INTEGER SegmentAddress;
} DXGK_PAGING_LOCATION;

/* alloclab models the paging buffer as executed by the miniport during the call: when
 * DxgkDdiBuildPagingBuffer returns STATUS_SUCCESS the operation has happened. */
typedef struct _DXGKARG_BUILDPAGINGBUFFER {
  VOID *pDmaBuffer;
  UINT DmaSize;
  VOID *pDmaBufferPrivateData;
  UINT DmaBufferPrivateDataSize;
  DXGK_BUILDPAGINGBUFFER_OPERATION Operation;
  UINT MultipassOffset;
  union {
    struct {
      HANDLE hAllocation;
      UINT TransferOffset;
      SIZE_T TransferSize;
      DXGK_PAGING_LOCATION Source;
      DXGK_PAGING_LOCATION Destination;
    } Transfer;
    struct {
      HANDLE hAllocation;
      SIZE_T FillSize;
      UINT FillPattern;
      DXGK_PAGING_LOCATION Destination;
    } Fill;
    struct {
      HANDLE hAllocation;
      UINT SegmentId;
      PHYSICAL_ADDRESS SegmentAddress;
    } DiscardContent;
  };
} DXGKARG_BUILDPAGINGBUFFER;

/* ---- Callbacks (miniport -> port) ------------------------------------------------------------ */

typedef enum _DXGK_HANDLE_TYPE {
  DXGK_HANDLE_ALLOCATION = 1,
  DXGK_HANDLE_RESOURCE = 2,
} DXGK_HANDLE_TYPE;

typedef struct _DXGKARGCB_GETHANDLEDATA {
  D3DKMT_HANDLE hObject;
  DXGK_HANDLE_TYPE Type;
  struct {
    UINT DeviceSpecific : 1;
    UINT Reserved : 31;
  } Flags;
} DXGKARGCB_GETHANDLEDATA;

typedef enum _DXGK_INTERRUPT_TYPE {
  DXGK_INTERRUPT_DMA_COMPLETED = 1,
  DXGK_INTERRUPT_DMA_PREEMPTED = 2,
  DXGK_INTERRUPT_DMA_FAULTED = 3,
} DXGK_INTERRUPT_TYPE;

typedef struct _DXGKARGCB_NOTIFY_INTERRUPT_DATA {
  DXGK_INTERRUPT_TYPE InterruptType;
  union {
    struct {
      UINT SubmissionFenceId;
      UINT NodeOrdinal;
      UINT EngineOrdinal;
    } DmaCompleted;
    struct {
      UINT FaultedFenceId;
      NTSTATUS Status;
      UINT NodeOrdinal;
      UINT EngineOrdinal;
    } DmaFaulted;
  };
  UINT Flags;
} DXGKARGCB_NOTIFY_INTERRUPT_DATA;

/* Returns the hAllocation the miniport gave DxgkDdiCreateAllocation for a port handle (or the
 * hResource for DXGK_HANDLE_RESOURCE); NULL for a handle the port does not know. */
typedef VOID *APIENTRY DXGKCB_GETHANDLEDATA(const DXGKARGCB_GETHANDLEDATA *pData);
typedef DXGKCB_GETHANDLEDATA *PDXGKCB_GETHANDLEDATA;

/* Reports completed (or faulted) work. DeviceHandle is DXGKRNL_INTERFACE.DeviceHandle. */
typedef VOID APIENTRY DXGKCB_NOTIFY_INTERRUPT(const HANDLE hAdapter,
                                               const DXGKARGCB_NOTIFY_INTERRUPT_DATA *pArgs);
typedef DXGKCB_NOTIFY_INTERRUPT *PDXGKCB_NOTIFY_INTERRUPT;

typedef struct _DXGKRNL_INTERFACE {
  ULONG Size;
  ULONG Version;
  HANDLE DeviceHandle;
  PDXGKCB_GETHANDLEDATA DxgkCbGetHandleData;
  PDXGKCB_NOTIFY_INTERRUPT DxgkCbNotifyInterrupt;
} DXGKRNL_INTERFACE, *PDXGKRNL_INTERFACE;

typedef struct _DXGK_START_INFO {
  ULONG RequiredDxgkInterfaceVersion;
  UINT64 AdapterLuid;
} DXGK_START_INFO, *PDXGK_START_INFO;

/* ---- The DDIs (port -> miniport) ----------------------------------------------------------- */

typedef NTSTATUS APIENTRY DXGKDDI_ADD_DEVICE(const PDEVICE_OBJECT PhysicalDeviceObject,
                                              PVOID *MiniportDeviceContext);
typedef NTSTATUS APIENTRY DXGKDDI_START_DEVICE(const PVOID MiniportDeviceContext,
                                                PDXGK_START_INFO DxgkStartInfo,
                                                PDXGKRNL_INTERFACE DxgkInterface,
                                                PULONG NumberOfVideoPresentSources,
                                                PULONG NumberOfChildren);
typedef NTSTATUS APIENTRY DXGKDDI_STOP_DEVICE(const PVOID MiniportDeviceContext);
typedef NTSTATUS APIENTRY DXGKDDI_REMOVE_DEVICE(const PVOID MiniportDeviceContext);
typedef NTSTATUS APIENTRY DXGKDDI_QUERYADAPTERINFO(const HANDLE hAdapter,
                                                    const DXGKARG_QUERYADAPTERINFO *pQueryAdapterInfo);
typedef NTSTATUS APIENTRY DXGKDDI_CREATEDEVICE(const HANDLE hAdapter,
                                                DXGKARG_CREATEDEVICE *pCreateDevice);
typedef NTSTATUS APIENTRY DXGKDDI_DESTROYDEVICE(const HANDLE hDevice);
typedef NTSTATUS APIENTRY DXGKDDI_CREATEALLOCATION(const HANDLE hAdapter,
                                                    DXGKARG_CREATEALLOCATION *pCreateAllocation);
typedef NTSTATUS APIENTRY DXGKDDI_OPENALLOCATIONINFO(const HANDLE hDevice,
                                                      const DXGKARG_OPENALLOCATION *pOpenAllocation);
typedef NTSTATUS APIENTRY DXGKDDI_CLOSEALLOCATION(const HANDLE hDevice,
                                                   const DXGKARG_CLOSEALLOCATION *pCloseAllocation);
typedef NTSTATUS APIENTRY DXGKDDI_DESTROYALLOCATION(
    const HANDLE hAdapter, const DXGKARG_DESTROYALLOCATION *pDestroyAllocation);
typedef NTSTATUS APIENTRY DXGKDDI_SUBMITCOMMAND(const HANDLE hAdapter,
                                                 const DXGKARG_SUBMITCOMMAND *pSubmitCommand);
typedef NTSTATUS APIENTRY DXGKDDI_BUILDPAGINGBUFFER(const HANDLE hAdapter,
                                                     DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer);

typedef DXGKDDI_ADD_DEVICE *PDXGKDDI_ADD_DEVICE;
typedef DXGKDDI_START_DEVICE *PDXGKDDI_START_DEVICE;
typedef DXGKDDI_STOP_DEVICE *PDXGKDDI_STOP_DEVICE;
typedef DXGKDDI_REMOVE_DEVICE *PDXGKDDI_REMOVE_DEVICE;
typedef DXGKDDI_QUERYADAPTERINFO *PDXGKDDI_QUERYADAPTERINFO;
typedef DXGKDDI_CREATEDEVICE *PDXGKDDI_CREATEDEVICE;
typedef DXGKDDI_DESTROYDEVICE *PDXGKDDI_DESTROYDEVICE;
typedef DXGKDDI_CREATEALLOCATION *PDXGKDDI_CREATEALLOCATION;
typedef DXGKDDI_OPENALLOCATIONINFO *PDXGKDDI_OPENALLOCATIONINFO;
typedef DXGKDDI_CLOSEALLOCATION *PDXGKDDI_CLOSEALLOCATION;
typedef DXGKDDI_DESTROYALLOCATION *PDXGKDDI_DESTROYALLOCATION;
typedef DXGKDDI_SUBMITCOMMAND *PDXGKDDI_SUBMITCOMMAND;
typedef DXGKDDI_BUILDPAGINGBUFFER *PDXGKDDI_BUILDPAGINGBUFFER;

/* alloclab extension. A deterministic engine executes queued work only when told: the port
 * calls this to let it complete at most MaxSubmissions submissions (completions are reported
 * through DxgkCbNotifyInterrupt before it returns) and learns how many ran. An engine with a
 * thread of its own may leave the entry NULL. */
typedef NTSTATUS APIENTRY ALDDI_RUN_ENGINE(const HANDLE hAdapter, UINT MaxSubmissions,
                                            UINT *pCompleted);
typedef ALDDI_RUN_ENGINE *PALDDI_RUN_ENGINE;

/* alloclab extension: the miniport's count of the objects it holds, for leak checks. */
typedef struct _ALDDI_LIVE_OBJECTS {
  UINT Devices;
  UINT Resources;
  UINT Allocations;
  UINT OpenAllocations; /* device-specific bindings */
  UINT64 HostBytes;     /* host memory the miniport holds for them, if it counts it */
} ALDDI_LIVE_OBJECTS;
typedef NTSTATUS APIENTRY ALDDI_QUERY_LIVE_OBJECTS(const HANDLE hAdapter,
                                                    ALDDI_LIVE_OBJECTS *pLiveObjects);
typedef ALDDI_QUERY_LIVE_OBJECTS *PALDDI_QUERY_LIVE_OBJECTS;

/* The interface revision the port implements. A table with another Version is refused with
 * STATUS_GRAPHICS_DRIVER_MISMATCH. */
#define DXGKDDI_INTERFACE_VERSION_ALLOCLAB_1 0xA10C0001u
#define DXGKDDI_INTERFACE_VERSION DXGKDDI_INTERFACE_VERSION_ALLOCLAB_1

/* The registration table. Required: every entry but the ones marked optional. */
typedef struct _DRIVER_INITIALIZATION_DATA {
  ULONG Version;
  PDXGKDDI_ADD_DEVICE DxgkDdiAddDevice;
  PDXGKDDI_START_DEVICE DxgkDdiStartDevice;
  PDXGKDDI_STOP_DEVICE DxgkDdiStopDevice;
  PDXGKDDI_REMOVE_DEVICE DxgkDdiRemoveDevice;
  PDXGKDDI_QUERYADAPTERINFO DxgkDdiQueryAdapterInfo;
  PDXGKDDI_CREATEDEVICE DxgkDdiCreateDevice;
  PDXGKDDI_DESTROYDEVICE DxgkDdiDestroyDevice;
  PDXGKDDI_CREATEALLOCATION DxgkDdiCreateAllocation;
  PDXGKDDI_DESTROYALLOCATION DxgkDdiDestroyAllocation;
  PDXGKDDI_OPENALLOCATIONINFO DxgkDdiOpenAllocation;
  PDXGKDDI_CLOSEALLOCATION DxgkDdiCloseAllocation;
  PDXGKDDI_SUBMITCOMMAND DxgkDdiSubmitCommand;
  PDXGKDDI_BUILDPAGINGBUFFER DxgkDdiBuildPagingBuffer; /* optional */
  PALDDI_RUN_ENGINE AlDdiRunEngine;                    /* optional (alloclab extension) */
  PALDDI_QUERY_LIVE_OBJECTS AlDdiQueryLiveObjects;     /* optional (alloclab extension) */
} DRIVER_INITIALIZATION_DATA, *PDRIVER_INITIALIZATION_DATA;

/* A miniport's entry point: fills a DRIVER_INITIALIZATION_DATA and calls DxgkInitialize. */
typedef NTSTATUS DRIVER_INITIALIZE(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath);
typedef DRIVER_INITIALIZE *PDRIVER_INITIALIZE;

/*
 * DxgkInitialize - register a miniport's DDI table with the port.
 * @DriverObject: the driver object the port passed to the miniport's DriverEntry.
 * @RegistryPath: passed through from DriverEntry (may be NULL).
 * @DriverInitializationData: the table; the port copies it, so it may live on the stack.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for a NULL argument or a missing required
 * entry; STATUS_GRAPHICS_DRIVER_MISMATCH for a Version other than DXGKDDI_INTERFACE_VERSION or
 * a second registration on the same driver object. On failure nothing is registered.
 */
NTSTATUS DxgkInitialize(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath,
                        PDRIVER_INITIALIZATION_DATA DriverInitializationData);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_D3DKMDDI_H */
