/*
 * broken_fence_port.c — a deliberately broken al_submit for emit_c_test, linked with
 * -Wl,--wrap=al_submit into both the emitter and the program it writes: a successful submit
 * reports one less than the fence the port handed out (the first one 0), a wrong output with a
 * right status, which only the model's output rules (fz_model_output_rules) catch.
 */
#include "alloclab/alloclab.h"

NTSTATUS __real_al_submit(al_adapter *adapter, const al_submit_args *args);
NTSTATUS __wrap_al_submit(al_adapter *adapter, const al_submit_args *args);

NTSTATUS __wrap_al_submit(al_adapter *adapter, const al_submit_args *args) {
  NTSTATUS st = __real_al_submit(adapter, args);
  if (st == STATUS_SUCCESS && args != NULL && args->out_fence != NULL) *args->out_fence -= 1;
  return st;
}
