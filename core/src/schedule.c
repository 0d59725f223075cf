/*
 * schedule.c — the port's schedule points (alloclab/schedule.h).
 */
#include "schedule_points.h"

_Atomic(const al_scheduler *) port_scheduler;

void al_scheduler_install(const al_scheduler *scheduler) {
  atomic_store_explicit(&port_scheduler, scheduler, memory_order_release);
}
