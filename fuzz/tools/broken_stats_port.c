/*
 * broken_stats_port.c — a deliberately broken al_adapter_get_stats for emit_c_test, linked with
 * -Wl,--wrap=al_adapter_get_stats into both the emitter and the program it writes: it reports
 * no deferred destroy ever (deferred_destroys 0, the other counts right), so a teardown that
 * must wait for a fence breaks the deferred-destroy count rules of fz_model_check_stats.
 */
#include "alloclab/alloclab.h"

void __real_al_adapter_get_stats(al_adapter *adapter, al_adapter_stats *out_stats);
void __wrap_al_adapter_get_stats(al_adapter *adapter, al_adapter_stats *out_stats);

void __wrap_al_adapter_get_stats(al_adapter *adapter, al_adapter_stats *out_stats) {
  __real_al_adapter_get_stats(adapter, out_stats);
  out_stats->deferred_destroys = 0;
}
