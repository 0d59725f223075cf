/*
 * execute.h — the executor of alloclab's fuzz programs: runs a program (program.h) against the
 * port over the selected miniport, and is the oracle: every status, every output, every live
 * count and every invariant is compared with the reference model (model.h).
 *
 * DOC: Overview
 * fz_execute() creates one adapter per program over al_selected_miniport (small segments from
 * make_hardware_config, the deterministic engine unless the program asks for the threaded one
 * (below, "Threaded engine"), AL_ADAPTER_VERIFIER on; with the sim miniport,
 * a fault injector armed from p->faults after bring-up (those marked FZ_FAULT_AT_BRING_UP
 * before it, with the host-allocation hook installed before it too) and passed in
 * SIM_HARDWARE_CONFIG.Faults. Bring-up may then fail: al_adapter_create must return
 * STATUS_NO_MEMORY, only when an injected failure happened during it, with no adapter, and
 * leave nothing behind (the sim's process-wide live totals, host bytes included, back to their
 * values before, checked here; the port's memory, by LeakSanitizer); the hook is removed and
 * the program ends there, cleanly (FZ_EXEC_OK, fz_exec_report.bring_up_failed). Any other
 * failure of bring-up is the finding setup:adapter-create;
 * a program that arms a wrong-answer point (fault_point_is_wrong_answer()) runs with the verifier
 * OFF, since the verifier aborts on a broken miniport rule by design: the port's own answer
 * checks must catch it), then runs each call:
 *  1. its references become handle values: v<k> is call k's primary value (a device or resource
 *     handle, a submit's fence, 0 for create_allocations and the other calls), v<k>.a<e> its
 *     e-th allocation; a reference to a later call, to a call that failed or to a missing
 *     element is 0. A reference to an object that is gone yields its old, stale value (the ABA
 *     probe); a literal is passed as is;
 *  2. the model predicts the allowed statuses (model.h "what is exact and what is a set");
 *  3. the call is made; FILL writes a pattern the model derives from the allocation (serial,
 *     fill count) over its first min(size, 64) bytes; COPY copies list[0]'s first min(both
 *     sizes, 64) bytes onto list[1]'s (onto list[0] itself with one entry); CHECK reads back,
 *     for every listed allocation that holds a known pattern (a FILL, or a COPY that covered
 *     all a CHECK reads), that pattern. CHECK is emitted whether or not the fences before it
 *     signalled: the GPU runs submissions in order, so a CHECK always sees what was submitted
 *     before it (the sim aborts on a failed check or GPU fault: memory freed while mapped, or
 *     reused while in flight, shows up there). create_device(info=1) calls
 *     al_device_create_with_info with an info struct filled with FZ_MODEL_INFO_SENTINEL_BYTE;
 *     creates pass align= to the miniport as the allocation's alignment;
 *  4. the status must be in the predicted set (widened for the creating calls when an injected
 *     failure happened during this call: fault_injector_failures() moved; when a wrong answer
 *     was given, STATUS_GRAPHICS_DRIVER_MISMATCH and never success); the outputs are
 *     committed to the model (new handles non-zero and never seen before in the program,
 *     fences, query results; a query also checks that the allocation overlaps no other live
 *     allocation in its segment); the adapter's statistics must show the model's live counts;
 *     al_adapter_check() must pass; with the sim, after a submit, gpu_run, fence_wait or a
 *     destroy made while work was queued, the simulated hardware's walk
 *     (sim_miniport_check_hardware: segments, page tables, engine fences against the sim's
 *     records) must pass too (both only with check_adapter_each_call).
 * A destroy with AL_DESTROY_ASSUME_NOT_IN_USE is preceded by al_fence_wait(fence_submitted)
 * when work is queued, so that the caller's promise holds (breaking it is the caller's bug).
 *
 * DOC: Threaded engine
 * A program with fz_program.threaded_engine (`options(engine=threaded)`) runs over an adapter
 * whose GPU engine has a thread of its own (al_hardware_request.threaded_engine; the model
 * with fz_model_config.threaded_engine): fences signal on that thread while the program's
 * calls run, so the port's completion interrupt, its timed fence wait, the deferred destroys
 * reaped after the engine thread signalled and device destroys that wait for queued work all
 * run for real. The verdicts stay exact and do not depend on timing:
 *  - a submit is not followed by a wait: the calls after it (the next submits and the first
 *    call that is not a submit) run while the engine thread works, and every bound the model
 *    checks after them is one a fence signalling at any moment keeps (model.h "Bounded");
 *  - after every other program call, when work is queued, the executor waits for the last
 *    fence handed out with al_fence_wait (an implicit call, checked like the others): the
 *    engine is then idle, every fence signalled, and the deferred destroys the call queued
 *    were released by that wait, so the checks after it are exact and no call starts with
 *    work the model does not know to be done;
 *  - gpu_run runs nothing on such an engine (alloclab.h): out_completed must be 0
 *    (fz_exec_report.gpu_run_completed sums it), and it releases only what was due before it;
 *  - CHECK commands read what was submitted before them, as on the deterministic engine (the
 *    engine runs submissions in order).
 * A threaded program's fault requests are ignored: the engine thread reaches fault points too
 * (a segment page committed by a FILL, the copy's bounce buffer), so which call is the n-th
 * would depend on timing. fz_execute_concurrent() ignores the choice (the deterministic
 * scheduler must own every thread that takes a port lock).
 * An op out of range is skipped (status STATUS_SUCCESS, nothing called). Counts above
 * FZ_MAX_LIST are passed as AL_MAX_ALLOCATIONS_PER_CALL + 1; a size of 0 is asked as 1; a
 * placement out of range as any. FZ_HOSTILE_* bits are applied as model.h describes.
 * At the end every live device is destroyed, the GPU drained, and the adapter must be empty
 * (no object, no deferred destroy, no segment byte) and pass al_adapter_check() before
 * al_adapter_destroy() (whose verifier checks the miniport's live objects); with the sim, the
 * hardware walk must pass at the end of the program (before the teardown's destroys) and again
 * after that al_adapter_check(), and the miniport's process-wide live totals must be back to
 * their values before the program. A program with options(teardown=adapter) (program.h
 * "Teardown") skips the destroys, the drain and the emptiness checks: after the end-of-program
 * hardware walk the adapter is destroyed at once, with its live devices, and the totals check
 * (and LeakSanitizer, for the port) must still pass.
 *
 * A disagreement is a finding: by default the process aborts with
 *   alloclab oracle: call 7 destroy_allocations(...): port returned STATUS_SUCCESS, model
 *   expected STATUS_INVALID_HANDLE (a listed handle is not a live allocation)
 *   [oracle:status-mismatch:success destroy_allocations]
 * followed by the program (text form, statuses of the calls run). The tag at the end names the
 * check that failed and the operation, without call numbers, handles or addresses (they change
 * from one minimization to the next): tools/triage.py makes it the crash's signature. Checks:
 * status-mismatch:<status returned>, output-mismatch:<the model's words>, live-objects:<which
 * count>, invariant-walk:<the walk's words>, hardware-walk:<the sim walk's words>, overlap, query-live-failed, teardown-leak:<what>,
 * miniport-leak:<total>, setup:<step>; concurrent programs: linearizability (OP: the call of the
 * deepest disagreement), schedule:<the scheduler's words>. With
 * fz_exec_options.return_on_mismatch the message goes to fz_exec_report.message instead and
 * fz_execute() returns FZ_EXEC_MISMATCH.
 *
 * Cost: one adapter per program; the model is reset in O(1). Contexts (model, buffers) are
 * cached per thread: fz_execute() allocates nothing per program but what the port does. After
 * every call the executor walks al_adapter_check_live() (bounded by what is live: O(objects +
 * blocks + high water)); the full al_adapter_check() (which also reads every unused chunk
 * pointer and empty free-list head) runs once, at the end. The invariant walks are not
 * coverage-instrumented (core/src/check.h AL_CHECK_CODE), and neither are the helpers they
 * read through (AL_CHECK_INLINE bodies, *_check_* accessors), the DDI verifier (an oracle too)
 * and the MMU's read-only range predicates: in clang 14 SanitizerCoverage also traces the
 * compares UBSan inserts (alignment, shift, pointer overflow), several per call of a helper,
 * and that compare tracing was about half the CPU of close_destroy. The sim's segment host
 * regions are recycled from one adapter to the next (gpu_segment_cached_regions()), and its
 * memory contents are sparse (gpu_memory.h: a stored/zero bit per 4 KiB). The MMU's pt_clear
 * costs what is mapped, not the address space. The linearizability search of
 * fz_execute_concurrent() takes one model snapshot per input (fz_model_copy copies 6.5 MB) and
 * backtracks by re-applying its path. Measured under --config=fuzz (ASan+UBSan+libFuzzer), one
 * process, on the shared 2-core machine (load average ~2 from others' work: compare CPU per
 * execution, not exec/s), `<t>_raw -max_total_time=20 -seed=1 -print_final_stats=1` from a
 * fresh copy of corpus/<t>/seeds, CPU (user+sys, /usr/bin/time) per execution, before the
 * speed2 branch (a3756d8) -> after: ddi_sequence 1.72 -> 1.53 ms (567 -> 641 exec/s),
 * fault_injection 1.09 -> 1.11 ms (825 -> 886 exec/s), close_destroy 17.5 -> 8.1 ms (57 -> 122
 * exec/s), schedules 2.32 -> 0.82 ms (426 -> 1206 exec/s); private_data 15 us (64k exec/s).
 * Replaying one fixed corpus per target (the inputs a 8 s run kept; 3 x -runs=0, CPU per
 * input): ddi_sequence 4.70 -> 3.48 ms, fault_injection 2.33 -> 2.02, close_destroy 14.1 ->
 * 8.95, schedules 4.29 -> 1.65. The fuzzers' `cov:` figure dropped by the edges no longer
 * instrumented (ddi_sequence 1948 -> 1791 on the same fixed corpus, the same drop as in the
 * 20 s runs: the port's coverage is unchanged). Still far from the 20k exec/s goal (except
 * private_data). What is left, in order (perf, ddi_sequence): libFuzzer's own per-feature
 * bookkeeping (UpdateFeatureFrequency + AddRareFeature, ~17%; it shrinks as feature frequencies
 * saturate in long runs); the ASan allocator (~13%: malloc, its 4 KiB malloc fill (the memset),
 * quarantine, stack depot), half of it one host page per committed aperture page (session 5:
 * those blocks are now kept for reuse, gpu_memory.c "Spare aperture page blocks", and ASan's
 * quarantine is 10 MB, fuzz/common/sanitizer_defaults.c); the invariant walks' own (uninstrumented) work, ~8% (sh_check, ht_check,
 * check_resource: O(live) after every call; an incremental walk would have to stay as strong);
 * in close_destroy, the verifier's hash-map probes (cache misses over 56-byte entries, ~7%)
 * and the sim's and port's bind/unbind paths; in schedules, still ~20% fz_model_copy (the
 * model copies all its fixed arrays; copying only the used prefixes belongs in model.c).
 * The sim's hardware walk (sim_miniport_check_hardware; the live form after GPU calls, the whole
 * walk twice at the end) is not instrumented either, nor are the hw/gpu functions only it calls
 * in a fuzz target (with them instrumented, the oracle's reads gave libFuzzer features of their
 * own). Its share of the CPU in 20 s runs from the seeds (perf): ddi_sequence 5.7%,
 * close_destroy 6.5% (the port's per-call walk: 10.8% and 9.5%); replaying one fixed corpus
 * (the inputs a 20 s run of 98bb6ef kept), 9.3% and 9.2% of the executions' CPU (the port's
 * per-call walk: 18.6% and 12.7%). The same 20 s runs, 98bb6ef -> with the walk (CPU per
 * execution; exec/s): ddi_sequence 1.71 -> 2.06 ms and
 * 2.14 -> 2.32 ms (524 -> 452, 429 -> 403), close_destroy 10.3 -> 13.3 ms and 10.2 -> 12.3 ms
 * (92 -> 74, 97 -> 80): more than the walk's share, because each binary's run keeps other inputs
 * (seeds 2 and 3 of close_destroy: 7.9 -> 11.7 ms, 15.0 -> 16.1 ms; the spread between seeds is
 * larger than the change).
 * Session 5 (README "Fuzzing speed"): the 10 MB quarantine, the kept aperture blocks and
 * placement's scan memo (placement.c scan_known_fruitless: a create under pressure rescanned a
 * full segment per allocation) took the median CPU of replaying 150-300 working-corpus inputs
 * from 1.53 to 0.79 s (ddi_sequence), 0.75 -> 0.33 (fault_injection), 0.99 -> 0.47
 * (schedules) and, with the spares' cap at 16384, close_destroy 2.59 -> 2.03 s (that one
 * against a binary with the quarantine already at 10 MB).
 * Session 7: the fuzz config's UBSan is OSS-Fuzz's set, without alignment and pointer-overflow
 * (.bazelrc; the asan config keeps them and replays every seed and regression): clang 14 traced
 * their per-access checks as compares, a third of the CPU. check_resource takes its locks once
 * per resource and once per run of records in a segment; fz_model_copy copies what the model
 * holds, not its 6.5 MB; the fault injector and the hardware walk's helpers are not traced,
 * hw/gpu's per-page and per-entry loops are untraced or unchecked. Together, the median CPU of
 * replaying fixed typical inputs (150-300 per target from the working corpora; 7 alternating
 * runs, 6b8a4e5 -> a1bdc6a): ddi_sequence 0.76 -> 0.47 s, close_destroy 2.20 -> 1.52,
 * fault_injection 0.35 -> 0.25, schedules 0.42 -> 0.29, gpu 0.33 -> 0.27 (1.2-1.6x); an empty
 * ddi_sequence program 95 -> 73 us,
 * close_destroy's 404 -> 238 us. What is left (perf, typical ddi_sequence inputs): the port's
 * and the sim's real work (~40%, its compare tracing spread through it), the per-call walks
 * (~27%), teardown (~14%), the ASan allocator, and at the end of a program the full walks,
 * which cost the segments' and tables' capacity (a fifth of an empty program).
 * Threading: fz_execute() may run on several threads at once (one context each), but the sim's
 * process-wide totals check (check_miniport_totals) then races: turn it off.
 */
#ifndef ALLOCLAB_FUZZ_EXECUTE_H
#define ALLOCLAB_FUZZ_EXECUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/alloclab.h"
#include "alloclab/fuzz/model.h"
#include "alloclab/fuzz/program.h"
#include "alloclab/fuzz/scheduler.h"
#include "alloclab/testing.h"

#ifdef __cplusplus
extern "C" {
#endif

/* fz_execute() results. */
#define FZ_EXEC_OK 0
#define FZ_EXEC_MISMATCH 1     /* only with return_on_mismatch */
#define FZ_EXEC_SETUP_FAILED 2 /* the adapter could not be brought up (return_on_mismatch) */
#define FZ_EXEC_PARSE_FAILED 3 /* fz_execute_text(): the text is not a program */

/* Defaults: small segments, so memory pressure and eviction are reachable. */
#define FZ_EXEC_DEFAULT_MEMORY_SEGMENT_SIZE ((uint64_t)2 << 20)
#define FZ_EXEC_DEFAULT_APERTURE_SEGMENT_SIZE ((uint64_t)2 << 20)

/* The port's functions the executor calls. fz_port_alloclab is alloclab's own; the oracle's
 * self-tests pass a copy with some entries replaced by broken ones. */
typedef struct fz_port_ops {
  NTSTATUS (*adapter_create)(const al_adapter_config *config, al_adapter **out_adapter);
  void (*adapter_destroy)(al_adapter *adapter);
  NTSTATUS (*device_create)(al_adapter *adapter, al_handle *out_device);
  NTSTATUS (*device_create_with_info)(al_adapter *adapter, al_handle *out_device, DXGK_DEVICEINFO *out_info);
  NTSTATUS (*device_destroy)(al_adapter *adapter, al_handle device);
  NTSTATUS (*allocation_create)(al_adapter *adapter, const al_create_allocation_args *args);
  NTSTATUS (*resource_open)(al_adapter *adapter, al_handle device, al_handle resource);
  NTSTATUS (*allocation_destroy)(al_adapter *adapter, const al_destroy_allocation_args *args);
  NTSTATUS (*submit)(al_adapter *adapter, const al_submit_args *args);
  uint64_t (*fence_completed)(al_adapter *adapter);
  uint64_t (*fence_submitted)(al_adapter *adapter);
  NTSTATUS (*fence_wait)(al_adapter *adapter, uint64_t fence, uint64_t timeout_ns);
  NTSTATUS (*gpu_run)(al_adapter *adapter, uint32_t max_submissions, uint32_t *out_completed);
  void (*get_stats)(al_adapter *adapter, al_adapter_stats *out_stats);
  NTSTATUS (*allocation_query)(al_adapter *adapter, al_handle allocation, al_allocation_info *out_info);
  bool (*adapter_check)(al_adapter *adapter, char *msg, size_t cap);
  /* The per-call walk (NULL: adapter_check after every call too). */
  bool (*adapter_check_live)(al_adapter *adapter, char *msg, size_t cap);
  /* The simulated hardware's walk (sim_miniport_check_hardware for the sim adapter behind
   * @adapter), run only when the selected miniport is the sim; NULL: none. The per-call form
   * (SIM_CHECK_HARDWARE_LIVE; NULL: hardware_check after GPU calls too). */
  bool (*hardware_check)(al_adapter *adapter, char *msg, size_t cap);
  bool (*hardware_check_live)(al_adapter *adapter, char *msg, size_t cap);
  /* The walks' own test, for the damage op (program.h "Damage"): the port's kinds
   * (al_testing_damage, judged by adapter_check) and the sim's (sim_testing_damage for the sim
   * adapter behind @adapter, judged by hardware_check). NULL: that layer's damage ops are not
   * run (status STATUS_INVALID_PARAMETER). */
  al_damage_result (*damage)(al_adapter *adapter, unsigned kind, unsigned pick, char *msg, size_t cap);
  const al_damage_kind_info *(*damage_kind)(unsigned kind);
  al_damage_result (*hardware_damage)(al_adapter *adapter, unsigned kind, unsigned pick, char *msg, size_t cap);
  const al_damage_kind_info *(*hardware_damage_kind)(unsigned kind);
} fz_port_ops;

extern const fz_port_ops fz_port_alloclab;

typedef struct fz_exec_options {
  uint64_t memory_segment_size;   /* 0: FZ_EXEC_DEFAULT_MEMORY_SEGMENT_SIZE */
  uint64_t aperture_segment_size; /* 0: FZ_EXEC_DEFAULT_APERTURE_SEGMENT_SIZE */
  uint32_t memory_page_size;      /* 0: the miniport's default */
  bool check_adapter_each_call;   /* al_adapter_check_live() after every call (al_adapter_check()
                                     at the end in any case) */
  bool check_stats_each_call;     /* live counts after every call (else only at the end) */
  bool check_miniport_totals;     /* sim: process-wide live totals back to before (single thread) */
  bool return_on_mismatch;        /* false: abort with the message (what a fuzzer wants) */
  bool verbose;                   /* print every call and its status on stderr */
  bool strict_release;            /* fz_model_config.strict_release (default on: memory no queued
                                     work uses must be released at once) */
  const fz_port_ops *port;        /* NULL: fz_port_alloclab */
  /* Called with each prediction before the call (NULL: none): lets a self-test make the model
   * deliberately wrong and check that the oracle notices. */
  void (*adjust_prediction)(void *ctx, uint32_t call, const fz_call *c, fz_prediction *prediction);
  void *adjust_ctx;
  /* Observers (NULL: none), for tools that turn a run into something else (fuzz/tools:emit_c
   * writes it out as a standalone C program). observe_prediction is called before every call
   * the executor makes, program or implicit (@call: the program call's index, or UINT32_MAX
   * with @label naming the implicit call: "teardown destroy_device(0x...)", ...), with the
   * prediction it will be checked against. observe_check is called before the checks that
   * follow a call (or end the program: @label "teardown"), with the counts the statistics must
   * show (@expected; NULL when they are not checked) and whether al_adapter_check() runs. */
  void (*observe_prediction)(void *ctx, uint32_t call, const char *label, const fz_prediction *prediction);
  void (*observe_check)(void *ctx, uint32_t call, const char *label, const fz_model_counts *expected,
                        bool adapter_check);
  /* observe_outputs: after a call whose status was allowed, before its outputs are committed,
   * with the rules they must keep (fz_model_output_rules_for: what fz_model_commit() checks).
   * observe_overlap_query: after a successful query of @queried, before the executor queries
   * each other live allocation @other (alignment @other_align, 0: the page) for the overlap
   * check (the queried allocation's segment range must not meet @other's). */
  void (*observe_outputs)(void *ctx, uint32_t call, const char *label, NTSTATUS status,
                          const fz_model_output_rules *rules);
  void (*observe_overlap_query)(void *ctx, uint32_t call, const char *label, al_handle queried, al_handle other,
                                uint32_t other_align);
  void *observe_ctx;
} fz_exec_options;

/* The defaults: every check on, abort on mismatch, alloclab's port. */
void fz_exec_options_default(fz_exec_options *out);

typedef struct fz_exec_report {
  uint32_t calls_run;               /* program calls made */
  uint32_t mismatches;              /* 0, or 1 (the run stops at the first) */
  NTSTATUS status[FZ_MAX_CALLS];    /* per program call (for `trace`) */
  uint64_t value[FZ_MAX_CALLS];     /* per call: its primary value v<k> (handle or fence) */
  uint32_t implicit_calls;          /* teardown and pre-waits made by the executor */
  uint32_t faults_injected;         /* injected failures during the program */
  uint32_t gpu_fills, gpu_checks;   /* FILL / CHECK commands in successful submissions */
  uint32_t gpu_copies;              /* COPY commands in successful submissions */
  uint32_t no_video_memory;         /* calls that returned STATUS_NO_VIDEO_MEMORY */
  /* An injected failure made al_adapter_create fail (a fault armed at=bring_up, program.h
   * FZ_FAULT_AT_BRING_UP): the program ended there, cleanly (calls_run 0, FZ_EXEC_OK). */
  bool bring_up_failed;
  NTSTATUS bring_up_status;         /* al_adapter_create's status when it failed */
  bool threaded_engine;             /* the adapter ran on the threaded GPU engine */
  uint32_t gpu_run_completed;       /* submissions gpu_run calls reported run (out_completed):
                                       0 on a threaded engine, which runs by itself */
  char message[2048];               /* the mismatch, when there was one */
} fz_exec_report;

/*
 * fz_execute - run @p against a new adapter and check everything against the model.
 * @o: options (NULL: the defaults). @out: the report (may be NULL).
 * Returns: FZ_EXEC_OK; with return_on_mismatch, FZ_EXEC_MISMATCH or FZ_EXEC_SETUP_FAILED (the
 * adapter is torn down, best effort). Without it a mismatch aborts the process.
 */
int fz_execute(const fz_program *p, const fz_exec_options *o, fz_exec_report *out);

/* fz_execute() on the text form (fuzz/common/text.h); FZ_EXEC_PARSE_FAILED with the parser's
 * message in @out->message when it is not a program. */
int fz_execute_text(const char *text, const fz_exec_options *o, fz_exec_report *out);

/* ---- Concurrent programs (the schedules target) ---------------------------------------------- */

/* At most this many calls of a program run concurrently (later ones are not run), so that the
 * search for an order that explains them stays small. */
#define FZ_CONCURRENT_MAX_CALLS 16u
#define FZ_CONCURRENT_SEARCH_LIMIT 200000u

typedef struct fz_concurrency {
  uint32_t fork;          /* calls [0, fork) run first, one at a time, checked as fz_execute does */
  uint32_t threads;       /* 1..FZ_SCHED_MAX_THREADS logical threads; call fork+j runs on j % threads */
  const uint8_t *choices; /* the scheduler's choices (alloclab/fuzz/scheduler.h) */
  size_t choice_count;
  /* preemptive: interleave by @preemptions instead of @choices (fz_scheduler_run_preempting) */
  bool preemptive;
  const fz_preemption *preemptions;
  size_t preemption_count;
} fz_concurrency;

/*
 * fz_execute_concurrent - run @p's first @cc->fork calls as fz_execute() does, then the next
 * calls (at most FZ_CONCURRENT_MAX_CALLS) on @cc->threads logical threads interleaved by the
 * deterministic scheduler at the port's schedule points, then tear down as fz_execute() does.
 * The concurrent calls are checked by linearizability (Wing & Gong): there must be an order of
 * them, consistent with real time (a call that returned before another began comes first), in
 * which the reference model accepts every status and output; the adapter's statistics and
 * al_adapter_check() must then match the model. Differences from fz_execute() in the concurrent
 * part: gpu_run and fence_wait are not run (their status is FZ_STATUS_NOT_RUN, as for the calls
 * past FZ_CONCURRENT_MAX_CALLS), nor damage ops (their status is STATUS_INVALID_PARAMETER:
 * another thread would see the damaged state); submits carry a NOP
 * command (a FILL pattern depends on the order); destroys lose AL_DESTROY_ASSUME_NOT_IN_USE (other threads may queue work).
 * Fault requests are armed as fz_execute() arms them (the engine is never threaded here, so only
 * the logical threads reach fault points, in the order the schedule fixes: the same input fails
 * the same call every run). A concurrent call during which a failure was injected (the running
 * logical thread's, whatever the others did meanwhile) is checked against the statuses the model
 * allows after an injected failure, and must change nothing when it fails; an injected bring-up
 * failure ends the program cleanly (every call FZ_STATUS_NOT_RUN). A deadlock or a lock needed
 * inside a DDI while a suspended thread holds it aborts (the threads cannot be unwound). Returns
 * as fz_execute() does.
 */
int fz_execute_concurrent(const fz_program *p, const fz_concurrency *cc, const fz_exec_options *o,
                          fz_exec_report *out);

/* Frees the calling thread's cached context (optional: for leak checkers and tests). */
void fz_execute_release_thread_context(void);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_FUZZ_EXECUTE_H */
