/*
 * scheduler.c — logical threads as ucontext coroutines, switched at the port's schedule points
 * (see alloclab/fuzz/scheduler.h).
 */
#include "alloclab/fuzz/scheduler.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include "alloclab/schedule.h"

#include "alloclab/sanitizers.h"

#ifdef AL_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef AL_TSAN
/* ThreadSanitizer's fiber API (sanitizer/tsan_interface.h): each logical thread is a fiber;
 * a switch synchronises, as handing over a baton does. */
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#define TSAN_SWITCH(fiber) __tsan_switch_to_fiber((fiber), 0)
#else
#define TSAN_SWITCH(fiber) ((void)0)
#endif

/* ASan's instrumentation and the port's calls need room; allocated once per OS thread. */
#define STACK_BYTES ((size_t)1 << 20)

typedef enum { T_RUNNABLE, T_BLOCKED, T_DONE } thread_state;

typedef struct logical_thread {
  ucontext_t context;
  void *stack;
  thread_state state;
  pthread_mutex_t *waiting_for; /* T_BLOCKED */
  void *fake_stack;             /* ASan's fake stack while suspended */
  void *tsan_fiber;             /* ThreadSanitizer's fiber (NULL without TSan) */
} logical_thread;

typedef struct scheduler {
  logical_thread threads[FZ_SCHED_MAX_THREADS];
  uint32_t count;
  uint32_t current;
  ucontext_t main_context;
  const void *main_stack_bottom;
  size_t main_stack_size;
  void *main_fake_stack;
  void *main_tsan_fiber;
  fz_logical_thread body;
  void *arg;
  const uint8_t *choices;
  size_t choice_count, next_choice;
  /* Preemptive mode (fz_scheduler_run_preempting): the preemptions, and each thread's own count
   * of the schedule points it reached while running. */
  bool preemptive;
  const fz_preemption *preemptions;
  size_t preemption_count;
  uint32_t own_points[FZ_SCHED_MAX_THREADS];
  bool deadlocked;
  fz_schedule_report *report;
  al_scheduler hooks;
} scheduler;

static _Thread_local scheduler *tls_scheduler;
static _Thread_local void *tls_stacks[FZ_SCHED_MAX_THREADS];

/* ---- Switching ---------------------------------------------------------------------------- */

/* From the running logical thread back to the scheduler loop (fz_scheduler_run). */
static void switch_to_main(scheduler *s) {
  logical_thread *t = &s->threads[s->current];
#ifdef AL_ASAN
  /* A finished thread never comes back: NULL lets ASan free its fake stack. */
  __sanitizer_start_switch_fiber(t->state == T_DONE ? NULL : &t->fake_stack, s->main_stack_bottom,
                                 s->main_stack_size);
#endif
  TSAN_SWITCH(s->main_tsan_fiber);
  swapcontext(&t->context, &s->main_context);
#ifdef AL_ASAN
  __sanitizer_finish_switch_fiber(t->fake_stack, &s->main_stack_bottom, &s->main_stack_size);
#endif
}

static void thread_entry(void) {
  scheduler *s = tls_scheduler;
#ifdef AL_ASAN
  __sanitizer_finish_switch_fiber(NULL, &s->main_stack_bottom, &s->main_stack_size);
#endif
  uint32_t index = s->current;
  s->body(s->arg, index);
  s->threads[index].state = T_DONE;
  switch_to_main(s);
  abort(); /* never resumed */
}

static void fail_deadlock(scheduler *s, const char *what) {
  s->deadlocked = true;
  if (s->report) {
    char *m = s->report->message;
    size_t cap = sizeof s->report->message;
    int n = snprintf(m, cap, "%s:", what);
    for (uint32_t i = 0; i < s->count && n > 0 && (size_t)n < cap; i++) {
      const logical_thread *t = &s->threads[i];
      n += snprintf(m + n, cap - (size_t)n, " t%u %s", i,
                    t->state == T_DONE ? "done" : t->state == T_BLOCKED ? "waits for lock " : "runnable");
      if (t->state == T_BLOCKED && n > 0 && (size_t)n < cap)
        n += snprintf(m + n, cap - (size_t)n, "%p", (void *)t->waiting_for);
    }
  }
}

/* Preemptive mode: the running thread goes on unless a preemption names its point (then the
 * preemption's target runs, or, when that one cannot, the next runnable thread after it in
 * index order); a thread that blocked hands over to the lowest-numbered runnable one. */
static uint32_t preemptive_next(scheduler *s, bool current_runnable, const uint32_t *runnable, uint32_t n) {
  uint32_t me = s->current;
  if (!current_runnable) return runnable[0];
  uint32_t point = ++s->own_points[me];
  for (size_t i = 0; i < s->preemption_count; i++) {
    const fz_preemption *pre = &s->preemptions[i];
    if (pre->thread != me || pre->after != point) continue;
    if (n < 2) return me; /* nobody else can run */
    if (s->report) s->report->preemptions++;
    uint32_t to = pre->to < s->count ? pre->to : me;
    if (to != me && s->threads[to].state == T_RUNNABLE) return to;
    for (uint32_t k = 1; k < s->count; k++) {
      uint32_t other = (me + k) % s->count;
      if (s->threads[other].state == T_RUNNABLE) return other;
    }
    return me;
  }
  return me;
}

/* At a schedule point: picks who runs next (from the choices) and switches if it is another
 * thread. The current thread may be blocked: then another one must run. */
static void schedule_point(scheduler *s) {
  uint32_t runnable[FZ_SCHED_MAX_THREADS], n = 0;
  for (uint32_t i = 0; i < s->count; i++)
    if (s->threads[i].state == T_RUNNABLE) runnable[n++] = i;
  if (s->report) s->report->points++;
  if (n == 0) {
    fail_deadlock(s, "deadlock: every unfinished logical thread waits for a lock another one holds");
    switch_to_main(s); /* abandoned: never resumed */
    abort();
  }
  uint32_t next = s->current;
  bool current_runnable = s->threads[s->current].state == T_RUNNABLE;
  if (s->preemptive) {
    next = preemptive_next(s, current_runnable, runnable, n);
  } else if (s->next_choice < s->choice_count && n > 1) {
    next = runnable[s->choices[s->next_choice++] % n];
    if (s->report) s->report->choices_used++;
  } else if (!current_runnable) {
    next = runnable[0];
  }
  if (next == s->current) return;
  if (s->report) s->report->switches++;
  s->threads[s->current].fake_stack = NULL;
  /* Hand over through the loop in fz_scheduler_run, which resumes s->current. */
  uint32_t me = s->current;
  s->current = next;
  logical_thread *t = &s->threads[me];
#ifdef AL_ASAN
  __sanitizer_start_switch_fiber(&t->fake_stack, s->main_stack_bottom, s->main_stack_size);
#endif
  TSAN_SWITCH(s->main_tsan_fiber);
  swapcontext(&t->context, &s->main_context);
#ifdef AL_ASAN
  __sanitizer_finish_switch_fiber(t->fake_stack, &s->main_stack_bottom, &s->main_stack_size);
#endif
}

/* ---- Hooks (alloclab/schedule.h) ---------------------------------------------------------- */

static void hook_lock(void *ctx, pthread_mutex_t *mutex, bool may_switch) {
  scheduler *s = ctx;
  if (!may_switch) {
    /* Inside a DDI call: no switch. A lock held by a suspended thread would hang the OS thread. */
    int rc = pthread_mutex_trylock(mutex);
    if (rc == 0) return;
    fprintf(stderr,
            "alloclab schedules: a port lock (%p) is needed inside a DDI call while suspended logical "
            "thread holds it (a lock held across a DDI that its callbacks need)\n",
            (void *)mutex);
    abort();
  }
  schedule_point(s);
  while (pthread_mutex_trylock(mutex) != 0) {
    logical_thread *t = &s->threads[s->current];
    t->state = T_BLOCKED;
    t->waiting_for = mutex;
    if (s->report) s->report->blocked_waits++;
    schedule_point(s);
  }
}

static void hook_unlocked(void *ctx, pthread_mutex_t *mutex, bool may_switch) {
  scheduler *s = ctx;
  for (uint32_t i = 0; i < s->count; i++) {
    logical_thread *t = &s->threads[i];
    if (t->state == T_BLOCKED && t->waiting_for == mutex) {
      t->state = T_RUNNABLE;
      t->waiting_for = NULL;
    }
  }
  if (may_switch) schedule_point(s);
}

/* ---- Running ------------------------------------------------------------------------------ */

static int run_threads(uint32_t count, fz_logical_thread body, void *arg, const uint8_t *choices,
                       size_t choice_count, const fz_preemption *preemptions, size_t preemption_count,
                       bool preemptive, fz_schedule_report *report) {
  if (count == 0 || count > FZ_SCHED_MAX_THREADS || body == NULL || tls_scheduler != NULL) {
    fprintf(stderr, "alloclab schedules: fz_scheduler_run: bad arguments (count %u)\n", count);
    abort();
  }
  static _Thread_local scheduler storage;
  scheduler *s = &storage;
  memset(s, 0, sizeof *s);
  s->count = count;
  s->body = body;
  s->arg = arg;
  s->choices = choices;
  s->choice_count = choices ? choice_count : 0;
  s->preemptive = preemptive;
  s->preemptions = preemptions;
  s->preemption_count = preemptions ? preemption_count : 0;
  s->report = report;
  if (report) memset(report, 0, sizeof *report);
  s->hooks = (al_scheduler){.ctx = s, .lock = hook_lock, .unlocked = hook_unlocked};
  for (uint32_t i = 0; i < count; i++) {
    if (tls_stacks[i] == NULL && (tls_stacks[i] = malloc(STACK_BYTES)) == NULL) {
      fprintf(stderr, "alloclab schedules: out of host memory for coroutine stacks\n");
      abort();
    }
    logical_thread *t = &s->threads[i];
    t->stack = tls_stacks[i];
    t->state = T_RUNNABLE;
    if (getcontext(&t->context) != 0) {
      fprintf(stderr, "alloclab schedules: getcontext failed (%s)\n", strerror(errno));
      abort();
    }
    t->context.uc_stack.ss_sp = t->stack;
    t->context.uc_stack.ss_size = STACK_BYTES;
    t->context.uc_link = NULL;
    makecontext(&t->context, thread_entry, 0);
#ifdef AL_TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
  }
#ifdef AL_TSAN
  s->main_tsan_fiber = __tsan_get_current_fiber();
#endif
  tls_scheduler = s;
  al_scheduler_install(&s->hooks);
  s->current = 0;
  for (;;) {
    if (s->deadlocked) break;
    logical_thread *t = &s->threads[s->current];
    if (t->state == T_DONE) {
      /* It finished: run the next unfinished one (runnable first: a blocked one waits). */
      uint32_t next = count;
      for (uint32_t i = 0; i < count && next == count; i++)
        if (s->threads[i].state == T_RUNNABLE) next = i;
      if (next == count) {
        bool any_blocked = false;
        for (uint32_t i = 0; i < count; i++) any_blocked |= s->threads[i].state == T_BLOCKED;
        if (any_blocked) fail_deadlock(s, "deadlock: a logical thread finished holding a lock others wait for");
        break;
      }
      s->current = next;
      t = &s->threads[next];
    }
#ifdef AL_ASAN
    __sanitizer_start_switch_fiber(&s->main_fake_stack, t->stack, STACK_BYTES);
#endif
    TSAN_SWITCH(t->tsan_fiber);
    swapcontext(&s->main_context, &t->context);
#ifdef AL_ASAN
    __sanitizer_finish_switch_fiber(s->main_fake_stack, NULL, NULL);
#endif
  }
  al_scheduler_install(NULL);
  tls_scheduler = NULL;
#ifdef AL_TSAN
  for (uint32_t i = 0; i < count; i++) __tsan_destroy_fiber(s->threads[i].tsan_fiber);
#endif
  return s->deadlocked ? FZ_SCHED_DEADLOCK : FZ_SCHED_OK;
}

int fz_scheduler_run(uint32_t count, fz_logical_thread body, void *arg, const uint8_t *choices,
                     size_t choice_count, fz_schedule_report *report) {
  return run_threads(count, body, arg, choices, choice_count, NULL, 0, false, report);
}

int fz_scheduler_run_preempting(uint32_t count, fz_logical_thread body, void *arg,
                                const fz_preemption *preemptions, size_t preemption_count,
                                fz_schedule_report *report) {
  return run_threads(count, body, arg, NULL, 0, preemptions, preemption_count, true, report);
}

uint32_t fz_scheduler_running_thread(void) {
  return tls_scheduler != NULL ? tls_scheduler->current : FZ_SCHED_NO_THREAD;
}

void fz_scheduler_release_thread_stacks(void) {
  for (uint32_t i = 0; i < FZ_SCHED_MAX_THREADS; i++) {
    free(tls_stacks[i]);
    tls_stacks[i] = NULL;
  }
}
