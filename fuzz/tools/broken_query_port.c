/*
 * broken_query_port.c — a deliberately broken al_allocation_query for emit_c_test, linked with
 * -Wl,--wrap=al_allocation_query into both the emitter and the program it writes. Two wrong
 * answers with a right status, told apart by the allocation's size so that one port serves two
 * test inputs: an allocation placed with 64 KiB or more reports a page more than its placed
 * size (the model's size bound, an output-mismatch); a smaller one resident in a segment
 * reports offset 0, so two of them in one segment overlap (the executor's overlap check).
 */
#include "alloclab/alloclab.h"

NTSTATUS __real_al_allocation_query(al_adapter *adapter, al_handle allocation, al_allocation_info *out);
NTSTATUS __wrap_al_allocation_query(al_adapter *adapter, al_handle allocation, al_allocation_info *out);

NTSTATUS __wrap_al_allocation_query(al_adapter *adapter, al_handle allocation, al_allocation_info *out) {
  NTSTATUS st = __real_al_allocation_query(adapter, allocation, out);
  if (st != STATUS_SUCCESS || out == NULL) return st;
  if (out->size >= 65536u) out->size += 4096u;
  else if (out->segment_id != 0) out->segment_offset = 0;
  return st;
}
