/* status.c — names of the NTSTATUS values the DDI header defines. */
#include "alloclab/status.h"

#include <stdio.h>

const char *al_status_name(NTSTATUS status) {
  switch (status) {
  case STATUS_SUCCESS: return "STATUS_SUCCESS";
  case STATUS_TIMEOUT: return "STATUS_TIMEOUT";
  case STATUS_INVALID_PARAMETER: return "STATUS_INVALID_PARAMETER";
  case STATUS_INVALID_HANDLE: return "STATUS_INVALID_HANDLE";
  case STATUS_NO_MEMORY: return "STATUS_NO_MEMORY";
  case STATUS_DEVICE_REMOVED: return "STATUS_DEVICE_REMOVED";
  case STATUS_GRAPHICS_DRIVER_MISMATCH: return "STATUS_GRAPHICS_DRIVER_MISMATCH";
  case STATUS_GRAPHICS_NO_VIDEO_MEMORY: return "STATUS_NO_VIDEO_MEMORY";
  default: {
    static _Thread_local char unknown[24];
    snprintf(unknown, sizeof unknown, "STATUS_%08X", (unsigned)status);
    return unknown;
  }
  }
}
