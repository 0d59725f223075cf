/*
 * schedule.h — schedule points: where a deterministic scheduler may switch between the logical
 * threads that call the port, so that a race found once replays every time.
 *
 * DOC: Overview
 * Every lock the port takes on its objects (device, resource, segment, the adapter's reap,
 * submit, deferred and fence locks) is a schedule point: with a scheduler installed the port
 * asks it to take the lock (the scheduler may first run other logical threads, and must not
 * block the OS thread on a lock another logical thread holds), and tells it after each release.
 * The handle-table and verifier locks are not schedule points: they are innermost and never
 * held across another lock, so no interleaving hides behind them.
 *
 * Inside a DDI call (and the DXGKCB callbacks it makes) the miniport may hold its own locks,
 * which the scheduler cannot see: there @may_switch is false and the scheduler must let the
 * current logical thread go on. Outside a DDI call the port holds no miniport lock.
 *
 * Without a scheduler (the default) a schedule point is a plain pthread_mutex_lock/unlock plus
 * one atomic load. Used by fuzz/targets/schedules.c (fuzz/common/scheduler.h).
 */
#ifndef ALLOCLAB_SCHEDULE_H
#define ALLOCLAB_SCHEDULE_H

#include <pthread.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct al_scheduler {
  void *ctx;
  /* Take @mutex (a default pthread mutex) and return with it held. The scheduler may run other
   * logical threads first when @may_switch. */
  void (*lock)(void *ctx, pthread_mutex_t *mutex, bool may_switch);
  /* The port has just released @mutex: threads waiting for it may run again. */
  void (*unlocked)(void *ctx, pthread_mutex_t *mutex, bool may_switch);
} al_scheduler;

/*
 * al_scheduler_install - routes the port's schedule points to @scheduler (NULL: plain locks).
 * Process-wide: install it before any port call that should be scheduled, and uninstall it only
 * when no port call is running and no port lock is held. @scheduler is borrowed until then.
 */
void al_scheduler_install(const al_scheduler *scheduler);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_SCHEDULE_H */
