/*
 * status.h — names for the NTSTATUS values alloclab uses, for messages and traces.
 */
#ifndef ALLOCLAB_STATUS_H
#define ALLOCLAB_STATUS_H

#include "alloclab/d3dkmddi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the documented name of @status ("STATUS_INVALID_HANDLE"), or "STATUS_<hex>" in a
 * static buffer of the calling thread for a value alloclab does not use. Never NULL. */
const char *al_status_name(NTSTATUS status);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_STATUS_H */
