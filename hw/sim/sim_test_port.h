/*
 * sim_test_port.h — a tiny fake port (the dxgkrnl side) for the sim's direct DDI tests, which
 * drive the sim miniport without linking core/: it defines DxgkInitialize, keeps a handle table
 * behind DxgkCbGetHandleData (allocations only), records the fences DxgkCbNotifyInterrupt reports
 * completed, starts and removes one sim adapter per fake_port, and wraps the DDIs the tests call
 * most into one-line calls. Test-only (//hw/sim:sim_test_port).
 *
 * A test that links this must not link //core:alloclab (both define DxgkInitialize).
 */
#ifndef ALLOCLAB_HW_SIM_SIM_TEST_PORT_H
#define ALLOCLAB_HW_SIM_SIM_TEST_PORT_H

#include <pthread.h>
#include <stdbool.h>

#include "alloclab/hw/sim_miniport.h"

/* What DxgkInitialize registered: the miniport's DDI table. */
struct _DRIVER_OBJECT {
  DRIVER_INITIALIZATION_DATA ddi;
  bool registered;
};

/* Completed fences a fake_port remembers (later ones are dropped). */
#define FAKE_PORT_MAX_FENCES 1024u

/*
 * One started sim adapter and the port state around it. The adapter's DeviceHandle (what the sim
 * hands back to callbacks and what sim_miniport_check_hardware / sim_testing_damage take) is the
 * fake_port itself.
 */
typedef struct fake_port {
  DRIVER_OBJECT driver;
  const DRIVER_INITIALIZATION_DATA *ddi; /* = &driver.ddi: the sim's DDIs */
  HANDLE ctx;                            /* the sim's MiniportDeviceContext */
  SIM_HARDWARE_CONFIG config;
  pthread_mutex_t lock; /* guards fences / fence_count (the threaded engine notifies from its thread) */
  UINT fences[FAKE_PORT_MAX_FENCES];
  UINT fence_count;
  UINT next_fence; /* the SubmissionFenceId fake_submit uses next; starts at 1 */
} fake_port;

/* The default sim hardware with 4 MiB memory and aperture segments, logging GPU faults instead of
 * aborting (Flags 0). */
SIM_HARDWARE_CONFIG fake_quiet_config(void);

/*
 * Runs SimMiniportDriverEntry, AddDevice with @config (copied into the fake_port) and StartDevice.
 * Returns the started fake_port (free it with fake_end), or NULL if any step fails.
 */
fake_port *fake_start(const SIM_HARDWARE_CONFIG *config);

/* The adapter's live objects (AlDdiQueryLiveObjects). */
ALDDI_LIVE_OBJECTS fake_live(fake_port *f);

/* How many completed fences DxgkCbNotifyInterrupt has reported so far (thread-safe). */
UINT fake_fences(fake_port *f);

/*
 * Stops and removes the adapter and frees @f; expects both to succeed. With @expect_empty it first
 * expects nothing live on the adapter (no devices, resources, allocations, bindings, host bytes).
 * Afterwards it expects the sim to hold nothing process-wide (adapters, bytes, allocations,
 * bindings), so a test must have ended every other adapter it started.
 */
void fake_end(fake_port *f, bool expect_empty);

/* Registers @object in the fake handle table (thread-safe); returns its D3DKMT_HANDLE (1, 2, ...)
 * for DxgkCbGetHandleData(DXGK_HANDLE_ALLOCATION), or 0 once the table is full. Handles are never
 * reused or released. */
D3DKMT_HANDLE fake_handle_register(HANDLE object);

/* CreateDevice with hDevice = @port_handle; expects success. Returns the sim's device handle, or
 * NULL on failure. */
HANDLE fake_device_create(fake_port *f, UINT port_handle);

/* CreateAllocation of one allocation described by @data. On success stores the sim's handle in
 * @out and, when @out_kmt is not NULL, registers it (fake_handle_register) into @out_kmt.
 * Returns the DDI's status. */
NTSTATUS fake_alloc_create(fake_port *f, const SIM_ALLOCATION_DATA *data, HANDLE *out, D3DKMT_HANDLE *out_kmt);

/* BuildPagingBuffer: @op FILL fills @size bytes of @allocation at (@to, @to_offset) (@from and
 * @from_offset unused); any other @op is a transfer of @size bytes from (@from, @from_offset) to
 * (@to, @to_offset) (segment 0: system memory). Returns the DDI's status. */
NTSTATUS fake_paging(fake_port *f, DXGK_BUILDPAGINGBUFFER_OPERATION op, HANDLE allocation, UINT64 size, UINT from,
                     UINT64 from_offset, UINT to, UINT64 to_offset);

/* CloseAllocation of the one @binding on @device. Returns the DDI's status. */
NTSTATUS fake_close_one(fake_port *f, HANDLE device, HANDLE binding);

/* DestroyAllocation of the one @allocation. Returns the DDI's status. */
NTSTATUS fake_destroy_one(fake_port *f, HANDLE allocation);

/*
 * SubmitCommand on @device with fence f->next_fence: the command stream @stream of @bytes bytes
 * (0 bytes: a Null submission; @stream may then be NULL) with @bindings as its allocation list
 * (@n at most 8). next_fence advances on success. Returns the DDI's status.
 */
NTSTATUS fake_submit(fake_port *f, HANDLE device, const HANDLE *bindings, UINT n, const void *stream, UINT bytes);

/* AlDdiRunEngine with a budget of 1000 submissions; expects success. Returns how many ran. */
UINT fake_run_engine(fake_port *f);

#endif /* ALLOCLAB_HW_SIM_SIM_TEST_PORT_H */
