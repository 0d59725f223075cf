/*
 * broken_port.c — a deliberately broken al_resource_open for emit_c_test, linked with
 * -Wl,--wrap=al_resource_open into both the emitter (whose run of the program then fails the
 * oracle) and the program it writes (which must fail the same way). It reports success where
 * the port refused a stale or unknown resource handle, a bug of the kind the oracle exists for.
 */
#include "alloclab/alloclab.h"

NTSTATUS __real_al_resource_open(al_adapter *adapter, al_handle device, al_handle resource);
NTSTATUS __wrap_al_resource_open(al_adapter *adapter, al_handle device, al_handle resource);

NTSTATUS __wrap_al_resource_open(al_adapter *adapter, al_handle device, al_handle resource) {
  NTSTATUS st = __real_al_resource_open(adapter, device, resource);
  return st == STATUS_INVALID_HANDLE ? STATUS_SUCCESS : st;
}
