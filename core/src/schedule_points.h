/*
 * schedule_points.h — port_lock/port_unlock: how the port takes its object locks, so that a
 * scheduler (alloclab/schedule.h) can interleave logical threads there. Private to core/.
 */
#ifndef ALLOCLAB_CORE_SCHEDULE_POINTS_H
#define ALLOCLAB_CORE_SCHEDULE_POINTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "alloclab/alloclab.h"
#include "alloclab/schedule.h"

extern _Atomic(const al_scheduler *) port_scheduler;
/* Non-NULL while this thread runs a DDI call (ddi.c): no switch there. */
extern _Thread_local al_adapter *ddi_current_adapter;

static inline void port_lock(pthread_mutex_t *mutex) {
  const al_scheduler *s = atomic_load_explicit(&port_scheduler, memory_order_acquire);
  if (s == NULL) {
    pthread_mutex_lock(mutex);
  } else {
    s->lock(s->ctx, mutex, ddi_current_adapter == NULL);
  }
}

static inline void port_unlock(pthread_mutex_t *mutex) {
  pthread_mutex_unlock(mutex);
  const al_scheduler *s = atomic_load_explicit(&port_scheduler, memory_order_acquire);
  if (s != NULL) s->unlocked(s->ctx, mutex, ddi_current_adapter == NULL);
}

#endif /* ALLOCLAB_CORE_SCHEDULE_POINTS_H */
