/*
 * example_adapter.c — the small example-miniport adapter of the port's tests (example_adapter.h).
 */
#include "example_adapter.h"

#include "alloclab/hw/example_miniport.h"

al_adapter *small_example_adapter(void) {
  static const EXAMPLE_HARDWARE_CONFIG hardware = {EXAMPLE_HARDWARE_MAGIC, 4096, 65536, 32768};
  al_adapter_config config = {.driver_entry = ExampleMiniportDriverEntry,
                              .hardware_config = &hardware,
                              .hardware_config_size = sizeof hardware,
                              .flags = AL_ADAPTER_VERIFIER};
  al_adapter *adapter = NULL;
  if (al_adapter_create(&config, &adapter) != STATUS_SUCCESS) return NULL;
  return adapter;
}
