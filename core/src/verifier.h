/*
 * verifier.h — the DDI verifier: an optional layer between port and miniport that checks the
 * contract (../shared/wddm-contract.md) in both directions with a shadow state of its own.
 *
 * DOC: Overview
 * ddi.c calls a verifier hook around every DDI call when the adapter was created with
 * AL_ADAPTER_VERIFIER. The verifier keeps its own record of what the miniport created and which
 * bindings are open (built only from what crosses the DDI boundary, never from the port's
 * bookkeeping), so a bug in the port's own state is caught instead of copied.
 * Port-side rules: DDIs called with live handles in a legal order: Open(Create) after create;
 * every binding closed before DxgkDdiDestroyAllocation (rule 4); a device's bindings of a resource
 * closed together in one call when that device lets the resource go; DestroyResource exactly when
 * the whole resource goes (rule 5); no allocation destroyed or closed while submitted work that
 * references it has not signalled, unless the caller asserted AssumeNotInUse (rule 6); no binding
 * left when DxgkDdiDestroyDevice is called (rule 7).
 * Miniport-side rules: the create outputs (ddi_check_create_output), non-NULL distinct
 * hDeviceSpecificAllocation values, fences reported in order and only once submitted, and at
 * teardown the miniport's live objects (AlDdiQueryLiveObjects) back to zero.
 * A broken rule aborts through verifier_fail(): "alloclab verifier: rule N (name): details", so a
 * fuzzer reports it as a crash with a message that names the rule and the objects.
 *
 * Locking: the verifier has one lock of its own (inner to every port lock but the handle tables);
 * hooks may be called from several threads.
 */
#ifndef ALLOCLAB_CORE_VERIFIER_H
#define ALLOCLAB_CORE_VERIFIER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/d3dkmddi.h"

typedef struct verifier verifier;

/* Creates a verifier for an adapter whose segments are @segment_set_all (bit id-1), of which
 * @segment_set_aperture are aperture segments. NULL when out of memory. */
verifier *verifier_create(uint32_t segment_set_all, uint32_t segment_set_aperture);
void verifier_destroy(verifier *v);

/* Aborts the process with "alloclab verifier: rule <rule>: <details>". */
_Noreturn void verifier_fail(const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* After a successful DxgkDdiCreateAllocation whose outputs passed ddi_check_create_output.
 * @resource_in: hResource before the call (NULL for a new resource or none). */
void verifier_after_create_allocation(verifier *v, const DXGKARG_CREATEALLOCATION *args,
                                      HANDLE resource_in);
/* Around DxgkDdiOpenAllocation. @allocations[i] is the miniport hAllocation of
 * args->pOpenAllocation[i].hAllocation. after_ is called only on success. */
void verifier_before_open_allocation(verifier *v, HANDLE driver_device,
                                     const DXGKARG_OPENALLOCATION *args, const HANDLE *allocations);
void verifier_after_open_allocation(verifier *v, HANDLE driver_device,
                                    const DXGKARG_OPENALLOCATION *args, const HANDLE *allocations);
/* Before DxgkDdiCloseAllocation (which must not fail). Unless @assume_not_in_use (the caller's
 * AssumeNotInUse), every binding's last submitted fence must have signalled. */
void verifier_before_close_allocation(verifier *v, HANDLE driver_device, const HANDLE *bindings,
                                      uint32_t count, bool assume_not_in_use);
/* Before DxgkDdiDestroyAllocation. */
void verifier_before_destroy_allocation(verifier *v, const HANDLE *allocations, uint32_t count,
                                        HANDLE resource, bool destroy_resource,
                                        bool assume_not_in_use);
/* After a successful DxgkDdiCreateDevice; before DxgkDdiDestroyDevice. A create the port rolls
 * back (placement failed) is destroyed without ever being opened: that is legal. */
void verifier_after_create_device(verifier *v, HANDLE driver_device);
void verifier_before_destroy_device(verifier *v, HANDLE driver_device);
/* After a successful DxgkDdiSubmitCommand: the listed bindings are in use until @fence. */
void verifier_after_submit(verifier *v, HANDLE driver_device, uint64_t fence,
                           const DXGK_ALLOCATIONLIST *list, uint32_t count);
/* A completion the miniport reported, extended to 64 bits, and the highest fence submitted. */
void verifier_on_fence_completed(verifier *v, uint64_t fence, uint64_t submitted);
/* At adapter teardown, after every device is gone: nothing may be left on either side. */
void verifier_at_teardown(verifier *v, const ALDDI_LIVE_OBJECTS *miniport_live);
/* For al_adapter_check: the verifier's counts of live miniport objects as seen at the DDI. */
void verifier_counts(verifier *v, uint32_t *out_allocations, uint32_t *out_bindings,
                     uint32_t *out_devices);
/* For the damage kind that skews the verifier's view (damage.c): the verifier's count of live
 * devices, which *out_lock guards. The caller changes it and writes it back under that lock. */
size_t *verifier_damage_device_count(verifier *v, pthread_mutex_t **out_lock);

#endif /* ALLOCLAB_CORE_VERIFIER_H */
