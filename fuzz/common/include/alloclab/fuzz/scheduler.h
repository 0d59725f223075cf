/*
 * scheduler.h — a deterministic scheduler of logical threads over the port's schedule points
 * (alloclab/schedule.h), for the `schedules` fuzz target: a race found once replays every time.
 *
 * DOC: Overview
 * fz_scheduler_run() runs N logical threads as coroutines on the calling OS thread, one at a
 * time. Whenever the running thread reaches a schedule point outside a DDI call (before taking
 * one of the port's locks, after releasing one), the scheduler reads the next choice byte c and
 * runs the (c mod n)-th of the n runnable threads (in index order; it may be the same one).
 * When the choices run out the running thread goes on until it finishes or blocks. A thread
 * that wants a lock another logical thread holds is blocked (it never blocks the OS thread)
 * until that lock is released. So the interleaving is a pure function of the choices: the same
 * bytes give the same run.
 *
 * A deadlock (every unfinished thread waits for a lock another holds) is a finding: the port
 * took its locks against its own order. So is a lock that a thread inside a DDI call needs
 * while a suspended thread holds it (the DDI would hang: the port held a lock across a DDI
 * that a callback needs). Both make fz_scheduler_run() return FZ_SCHED_DEADLOCK with a message.
 *
 * Threading: one scheduler per OS thread at a time; it installs itself with
 * al_scheduler_install() for the duration of fz_scheduler_run() (process-wide: no other thread
 * may call the port meanwhile). Under AddressSanitizer the stack switches are annotated
 * (__sanitizer_start_switch_fiber), so ASan keeps working inside logical threads.
 */
#ifndef ALLOCLAB_FUZZ_SCHEDULER_H
#define ALLOCLAB_FUZZ_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FZ_SCHED_MAX_THREADS 4u

#define FZ_SCHED_OK 0
#define FZ_SCHED_DEADLOCK 1

typedef struct fz_schedule_report {
  uint32_t points;        /* schedule points reached where a switch was allowed */
  uint32_t switches;      /* times another thread was chosen */
  uint32_t choices_used;  /* choice bytes read */
  uint32_t blocked_waits; /* times a thread found its lock taken and was blocked */
  uint32_t preemptions;   /* preemptive mode: preemptions whose point was reached */
  char message[512];      /* FZ_SCHED_DEADLOCK: who waits for what */
} fz_schedule_report;

/* The body of logical thread @index (0..count-1); @arg as given to fz_scheduler_run(). */
typedef void (*fz_logical_thread)(void *arg, uint32_t index);

/*
 * fz_scheduler_run - run @count (1..FZ_SCHED_MAX_THREADS) logical threads to completion,
 * interleaved by @choices (@choice_count bytes; may be NULL when 0). Thread 0 runs first.
 * @report (may be NULL) receives what happened. Returns FZ_SCHED_OK or FZ_SCHED_DEADLOCK (the
 * threads are then abandoned mid-call: the caller must not use the port's objects again, only
 * report and abort). Coroutine stacks are allocated once per OS thread and reused; aborts with
 * a message when host memory runs out.
 */
int fz_scheduler_run(uint32_t count, fz_logical_thread body, void *arg, const uint8_t *choices,
                     size_t choice_count, fz_schedule_report *report);

/*
 * DOC: Preemptive mode (PCT-style: few preemptions at named points)
 * Random choice bytes at every point make noisy schedules: most shallow races need one or two
 * context switches at the right places (Burckhardt et al., "A Randomized Scheduler with
 * Probabilistic Guarantees of Finding Bugs", ASPLOS 2010; CHESS's preemption bounding).
 * fz_scheduler_run_preempting() runs each thread without preemption until it finishes or
 * blocks (then the lowest-numbered runnable thread runs), except at the points its preemptions
 * name: "when thread T reaches its own k-th schedule point, switch to thread U". A thread's own
 * count only grows while it runs, so a preemption keeps its place in T's code when other
 * preemptions move: a mutation that moves one switch point changes one thing.
 */
typedef struct fz_preemption {
  uint32_t thread; /* the running thread to preempt (0..count-1; others never match) */
  uint32_t after;  /* at its after-th own schedule point (1 = its first; 0 never matches) */
  uint32_t to;     /* the thread to run instead; when that one is not runnable (or is @thread, or
                      out of range), the next runnable thread after @thread in index order */
} fz_preemption;

/*
 * fz_scheduler_run_preempting - as fz_scheduler_run(), but interleaved by @preemptions
 * (@preemption_count entries; may be NULL when 0; the first one matching a point wins; a point
 * where only the running thread can run preempts nothing) instead of choice bytes. With none,
 * thread 0 runs to its end, then thread 1, and so on (a thread that blocks hands over). Same
 * return values, report (report->preemptions counts the preemptions that switched or tried to)
 * and aborts as fz_scheduler_run().
 */
int fz_scheduler_run_preempting(uint32_t count, fz_logical_thread body, void *arg,
                                const fz_preemption *preemptions, size_t preemption_count,
                                fz_schedule_report *report);

/* fz_scheduler_running_thread()'s answer outside a logical thread. */
#define FZ_SCHED_NO_THREAD UINT32_MAX

/*
 * fz_scheduler_running_thread - the index (0..count-1) of the logical thread running now on the
 * calling OS thread, for code a logical thread calls (a hook, a fault injector's observer) that
 * must know whose work it is: the logical threads share one OS thread, so _Thread_local cannot
 * tell them apart. Returns FZ_SCHED_NO_THREAD when no fz_scheduler_run*() is running on the
 * calling OS thread.
 */
uint32_t fz_scheduler_running_thread(void);

/* Frees the calling thread's coroutine stacks (optional: for leak checkers). */
void fz_scheduler_release_thread_stacks(void);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_FUZZ_SCHEDULER_H */
