/*
 * execute_test.c — the executor and oracle (execute.h) against the real port and the selected
 * miniport: hand-written programs covering every op, every documented error, shared resources
 * outliving their creator, deferred destroys, stale handles after many reuses, device destroy
 * with live objects, fault injection; seeded random programs; and the oracle's self-tests (a
 * broken port or a wrong prediction must be caught).
 *
 * A plain main (//core:test_harness is visible to //core/... and //hw/... only): each TEST
 * records failures with CHECK(); a filter in argv[1] runs the tests whose name contains it;
 * FZ_TEST_SEED sets the random seed; the exit status is 1 when anything failed.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloclab/alloclab.h"
#include "alloclab/damage.h"
#include "alloclab/fuzz/execute.h"
#include "alloclab/fuzz/model.h"
#include "alloclab/fuzz/program.h"
#include "alloclab/hw/fault_injection.h"
#include "alloclab/hw/miniport.h"
#include "alloclab/hw/sim_miniport.h"
#include "alloclab/status.h"
#include "alloclab/testing.h"
#include "fuzz/common/text.h"

/* ---- Harness ------------------------------------------------------------------------------ */

static int failures;
static const char *current;

__attribute__((format(printf, 4, 5))) static bool check_impl(bool ok, const char *file, int line, const char *fmt,
                                                             ...) {
  if (ok) return true;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s:%d: [%s] ", file, line, current);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  failures++;
  return false;
}

#define CHECK(cond, ...) check_impl((cond), __FILE__, __LINE__, __VA_ARGS__)

typedef struct test_case {
  const char *name;
  void (*fn)(void);
} test_case;

/* Runs fn(arg) in a child; true when it died (abort or non-zero exit) with @needle on stderr. */
static bool dies_with(void (*fn)(void *), void *arg, const char *needle) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    fn(arg);
    _exit(0);
  }
  close(fds[1]);
  static char buf[1 << 16];
  size_t len = 0;
  ssize_t n;
  while ((n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)n;
  buf[len] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  bool died = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
  bool found = strstr(buf, needle) != NULL;
  if (!died || !found)
    fprintf(stderr, "[%s] child %s; wanted \"%s\" on stderr, got:\n%s\n", current,
            died ? "died" : "did not die", needle, buf);
  return died && found;
}

/* ---- Building programs -------------------------------------------------------------------- */

#define ANY_STATUS ((NTSTATUS)0x7FFFFFFF) /* an expectation that accepts anything */

static fz_program prog;
static NTSTATUS want[FZ_MAX_CALLS];

static void begin(void) {
  memset(&prog, 0, sizeof prog);
  for (int i = 0; i < FZ_MAX_CALLS; i++) want[i] = STATUS_SUCCESS;
}

/* Appends a call; returns its value number (v1 = the first call). */
static unsigned add(fz_op op) {
  if (prog.call_count >= FZ_MAX_CALLS) {
    fprintf(stderr, "test program too long\n");
    abort();
  }
  fz_call *c = &prog.calls[prog.call_count++];
  memset(c, 0, sizeof *c);
  c->op = op;
  return prog.call_count;
}

static fz_call *last(void) { return &prog.calls[prog.call_count - 1]; }
/* The expected status of the last call. */
static void then(NTSTATUS st) { want[prog.call_count - 1] = st; }
static void hostile(uint32_t bits) { last()->hostile |= bits; }
static void align(uint32_t bytes) { last()->align = bytes; }

static fz_ref v(unsigned k) { return (fz_ref){FZ_REF_RESULT, (uint16_t)(k - 1), FZ_ELEMENT_SELF, 0, 0}; }
static fz_ref va(unsigned k, unsigned e) { return (fz_ref){FZ_REF_RESULT, (uint16_t)(k - 1), (uint16_t)e, 0, 0}; }
static fz_ref lit(uint32_t x) { return (fz_ref){FZ_REF_LITERAL, 0, 0, x, 0}; }
/* The range v<k>.a<first>..a<last> (a list entry). */
static fz_ref vr(unsigned k, unsigned first, unsigned last) {
  return (fz_ref){FZ_REF_RESULT, (uint16_t)(k - 1), (uint16_t)first, 0, (uint16_t)(last - first)};
}

static unsigned create_device(void) { return add(FZ_OP_CREATE_DEVICE); }
static unsigned destroy_device(fz_ref d) {
  unsigned k = add(FZ_OP_DESTROY_DEVICE);
  last()->device = d;
  return k;
}
static unsigned create_allocations(fz_ref d, uint32_t n, uint64_t size, fz_placement pl) {
  unsigned k = add(FZ_OP_CREATE_ALLOCATIONS);
  fz_call *c = last();
  c->device = d;
  c->count = n;
  c->size = size;
  c->placement = pl;
  return k;
}
static unsigned create_resource(fz_ref d, uint32_t n, uint64_t size, bool shared) {
  unsigned k = add(FZ_OP_CREATE_RESOURCE);
  fz_call *c = last();
  c->device = d;
  c->count = n;
  c->size = size;
  c->shared = shared;
  return k;
}
static unsigned add_to_resource(fz_ref d, fz_ref r, uint32_t n, uint64_t size) {
  unsigned k = add(FZ_OP_ADD_TO_RESOURCE);
  fz_call *c = last();
  c->device = d;
  c->resource = r;
  c->count = n;
  c->size = size;
  return k;
}
static unsigned open_resource(fz_ref d, fz_ref r) {
  unsigned k = add(FZ_OP_OPEN_RESOURCE);
  last()->device = d;
  last()->resource = r;
  return k;
}
static unsigned destroy_resource(fz_ref d, fz_ref r, uint32_t flags) {
  unsigned k = add(FZ_OP_DESTROY_RESOURCE);
  last()->device = d;
  last()->resource = r;
  last()->flags = flags;
  return k;
}
/* @n references follow (none when @n is above FZ_MAX_LIST: a hostile count). */
static void set_list(fz_call *c, unsigned n, va_list ap) {
  c->list_length = n;
  for (unsigned j = 0; n <= FZ_MAX_LIST && j < n; j++) c->list[j] = va_arg(ap, fz_ref);
}
static unsigned destroy_allocations(fz_ref d, uint32_t flags, unsigned n, ...) {
  unsigned k = add(FZ_OP_DESTROY_ALLOCATIONS);
  last()->device = d;
  last()->flags = flags;
  va_list ap;
  va_start(ap, n);
  set_list(last(), n, ap);
  va_end(ap);
  return k;
}
static unsigned submit(fz_ref d, fz_command cmd, unsigned n, ...) {
  unsigned k = add(FZ_OP_SUBMIT);
  last()->device = d;
  last()->command = cmd;
  va_list ap;
  va_start(ap, n);
  set_list(last(), n, ap);
  va_end(ap);
  return k;
}
static unsigned gpu_run(uint32_t n) {
  unsigned k = add(FZ_OP_GPU_RUN);
  last()->count = n;
  return k;
}
static unsigned fence_wait(fz_ref f) {
  unsigned k = add(FZ_OP_FENCE_WAIT);
  last()->fence = f;
  return k;
}
static unsigned query(fz_ref a) {
  unsigned k = add(FZ_OP_QUERY);
  last()->allocation = a;
  return k;
}
static void fault(uint32_t point, uint32_t nth, uint32_t repeat) {
  uint32_t f = prog.fault_count++;
  prog.faults[f].point = point;
  prog.faults[f].nth = nth;
  prog.faults[f].repeat = repeat;
}

static fz_exec_report report;
static uint64_t segment_size; /* 0: the executor's default segments */

/* Runs prog (returning on a mismatch) and checks every status against want[]. */
static bool run_line(int line) {
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  o.memory_segment_size = o.aperture_segment_size = segment_size;
  int rc = fz_execute(&prog, &o, &report);
  bool ok = CHECK(rc == FZ_EXEC_OK, "line %d: oracle: %s", line, report.message);
  for (uint32_t i = 0; ok && i < report.calls_run; i++) {
    if (want[i] == ANY_STATUS) continue;
    ok = CHECK(report.status[i] == want[i], "line %d: call v%u (%s): got %s, want %s", line, i + 1,
               fz_op_name(prog.calls[i].op), al_status_name(report.status[i]), al_status_name(want[i]));
  }
  if (ok) CHECK(report.calls_run == prog.call_count, "line %d: ran %u of %u calls", line, report.calls_run, prog.call_count);
  return ok;
}
#define RUN() run_line(__LINE__)

static const fz_placement ANY = FZ_PLACEMENT_ANY;
#define S_OK STATUS_SUCCESS
#define S_IP STATUS_INVALID_PARAMETER
#define S_IH STATUS_INVALID_HANDLE
#define S_DR STATUS_DEVICE_REMOVED
#define S_NVM STATUS_NO_VIDEO_MEMORY

/* ---- Every op, every documented error ------------------------------------------------------ */

static void test_devices(void) {
  begin();
  unsigned d1 = create_device();
  unsigned d2 = create_device();
  destroy_device(v(d2));
  destroy_device(v(d2)), then(S_IH);           /* stale */
  destroy_device(lit(0)), then(S_IH);          /* 0 */
  destroy_device(lit(0xdead0001)), then(S_IH); /* garbage */
  create_device(), hostile(FZ_HOSTILE_NULL_ARGS), then(S_IP);
  unsigned r = create_resource(v(d1), 1, 4096, false);
  destroy_device(v(r)), then(S_IH);            /* a resource handle as a device */
  destroy_device(va(r, 0)), then(S_IH);        /* an allocation handle as a device */
  destroy_device(v(d1));
  RUN();
}

static void test_create_errors(void) {
  begin();
  unsigned d = create_device();
  unsigned d2 = create_device();
  create_allocations(v(d), 3, 4096, ANY);
  create_allocations(v(d), 0, 4096, ANY), then(S_IP);
  create_allocations(v(d), FZ_COUNT_OVER_MAXIMUM, 4096, ANY), then(S_IP);
  create_allocations(v(d), 2, 4096, ANY), hostile(FZ_HOSTILE_NULL_ARGS), then(S_IP);
  create_allocations(v(d), 2, 4096, ANY), hostile(FZ_HOSTILE_NULL_LIST), then(S_IP);
  create_allocations(v(d), 2, 4096, ANY), hostile(FZ_HOSTILE_RESERVED_FLAGS), then(S_IP);
  for (int k = 0; k < 4; k++) /* every private-data variant (chosen by call index) */
    create_allocations(v(d), 2, 4096, ANY), hostile(FZ_HOSTILE_PRIVATE_DATA), then(S_IP);
  create_resource(v(d), 2, 4096, true), hostile(FZ_HOSTILE_RESERVED_FLAGS), then(S_IP);
  create_resource(v(d), 0, 4096, true), then(S_IP);
  destroy_device(v(d2));
  create_allocations(v(d2), 1, 4096, ANY), then(S_IH); /* stale device */
  create_allocations(lit(0), 1, 4096, ANY), then(S_IH);
  create_allocations(lit(0x12345678), 1, 4096, ANY), then(S_IH);
  unsigned r = create_resource(v(d), 1, 4096, false);
  create_allocations(v(r), 1, 4096, ANY), then(S_IH); /* wrong type */
  create_allocations(v(d), 1, 4096, FZ_PLACEMENT_MEMORY_ONLY);
  create_allocations(v(d), 1, 4096, FZ_PLACEMENT_APERTURE_ONLY);
  create_allocations(v(d), 1, 1, ANY);
  create_allocations(v(d), 1, 0, ANY);                        /* size 0 is asked as 1 */
  create_allocations(v(d), 1, UINT64_MAX, ANY), then(ANY_STATUS); /* too large: IP or NVM */
  create_allocations(v(d), 1, (uint64_t)1 << 40, FZ_PLACEMENT_APERTURE_ONLY), then(ANY_STATUS);
  RUN();
  CHECK(report.status[prog.call_count - 1] != S_OK && report.status[prog.call_count - 2] != S_OK,
        "oversized allocations succeeded");
}

static void test_resources(void) {
  begin();
  unsigned a = create_device(), b = create_device(), c = create_device();
  unsigned shared = create_resource(v(a), 2, 8192, true);
  unsigned plain = create_resource(v(a), 2, 8192, false);
  add_to_resource(v(a), v(plain), 2, 4096);
  add_to_resource(v(b), v(plain), 1, 4096), then(S_IH);     /* not created by b */
  add_to_resource(v(a), v(plain), 1, 4096), hostile(FZ_HOSTILE_RESERVED_FLAGS), then(S_IP);
  add_to_resource(v(a), v(plain), 0, 4096), then(S_IP);
  add_to_resource(v(a), v(a), 1, 4096), then(S_IH);         /* a device as the resource */
  add_to_resource(v(a), lit(0), 1, 4096);                   /* resource 0: a plain create */
  open_resource(v(b), v(plain)), then(S_IP);                /* not shared */
  add_to_resource(v(a), v(shared), 1, 4096);                /* not sealed yet */
  open_resource(v(a), v(shared)), then(S_IP);               /* a already holds it */
  open_resource(v(b), v(shared));
  open_resource(v(b), v(shared)), then(S_IP);               /* twice */
  add_to_resource(v(a), v(shared), 1, 4096), then(S_IP);    /* sealed */
  open_resource(v(c), lit(0xdead0001)), then(S_IH);
  open_resource(lit(0), v(shared)), then(S_IH);
  destroy_resource(v(c), v(shared), 0), then(S_IH);         /* c does not hold it */
  destroy_resource(v(b), v(shared), 0);                     /* b lets go; a still holds it */
  add_to_resource(v(a), v(shared), 1, 4096), then(S_IP);    /* still sealed */
  destroy_resource(v(b), v(shared), 0), then(S_IH);         /* b no longer holds it */
  open_resource(v(b), v(shared));                           /* b may open it again */
  destroy_resource(v(a), v(shared), 0);
  add_to_resource(v(a), v(shared), 1, 4096), then(S_IH);    /* a let go */
  open_resource(v(a), v(shared));                           /* the creator re-opens it */
  destroy_resource(v(a), v(shared), 0);
  destroy_resource(v(b), v(shared), 0);                     /* last holder: gone */
  open_resource(v(c), v(shared)), then(S_IH);               /* stale */
  query(va(shared, 0)), then(S_IH);
  destroy_resource(v(a), v(plain), 0), hostile(FZ_HOSTILE_NULL_ARGS), then(S_IP);
  destroy_resource(v(a), v(plain), 0), hostile(FZ_HOSTILE_RESERVED_FLAGS), then(S_IP);
  destroy_resource(v(a), v(plain), 0x10), then(S_IP);       /* reserved flag bit */
  destroy_resource(v(a), v(plain), 0), hostile(FZ_HOSTILE_BOTH_FORMS), then(S_IP);
  last()->list_length = 1, last()->list[0] = va(plain, 0);
  destroy_resource(v(a), v(plain), AL_DESTROY_SYNCHRONOUS);
  destroy_resource(v(a), v(plain), 0), then(S_IH);          /* twice */
  RUN();
}

static void test_destroy_allocations_errors(void) {
  begin();
  unsigned a = create_device(), b = create_device();
  unsigned own = create_allocations(v(a), 4, 4096, ANY);
  unsigned other = create_allocations(v(b), 1, 4096, ANY);
  unsigned r1 = create_resource(v(a), 3, 4096, true);
  unsigned r2 = create_resource(v(a), 1, 4096, false);
  destroy_allocations(v(a), 0, 2, va(own, 0), va(own, 0)), then(S_IP);       /* duplicates */
  destroy_allocations(v(a), 0, 2, va(own, 0), va(r1, 0)), then(S_IP);        /* device + resource */
  destroy_allocations(v(a), 0, 2, va(r1, 0), va(r2, 0)), then(S_IP);         /* two resources */
  destroy_allocations(v(a), 0, 1, va(other, 0)), then(S_IH);                 /* foreign */
  destroy_allocations(v(b), 0, 1, va(r1, 0)), then(S_IH);                    /* not held by b */
  destroy_allocations(v(a), 0, 0), then(S_IP);                               /* neither form */
  destroy_allocations(v(a), 0, FZ_COUNT_OVER_MAXIMUM), then(S_IP);
  destroy_allocations(v(a), 0, 1, va(own, 1)), hostile(FZ_HOSTILE_NULL_LIST), then(S_IP);
  destroy_allocations(v(a), 0, 1, va(own, 1)), hostile(FZ_HOSTILE_NULL_ARGS), then(S_IP);
  destroy_allocations(v(a), 0, 1, va(own, 1)), hostile(FZ_HOSTILE_RESERVED_FLAGS), then(S_IP);
  destroy_allocations(v(a), 0x40, 1, va(own, 1)), then(S_IP);
  destroy_allocations(v(a), 0, 1, va(own, 1)), hostile(FZ_HOSTILE_BOTH_FORMS), then(S_IP);
  last()->resource = v(r1);
  destroy_allocations(v(a), 0, 1, lit(0)), then(S_IH);
  destroy_allocations(v(a), 0, 1, lit(0xdead0001)), then(S_IH);
  destroy_allocations(v(a), 0, 1, v(a)), then(S_IH);                         /* a device */
  destroy_allocations(v(a), 0, 1, v(r1)), then(S_IH);                        /* a resource */
  open_resource(v(b), v(r1));
  destroy_allocations(v(a), 0, 1, va(r1, 0)), then(S_IP);                    /* open on 2 devices */
  destroy_allocations(v(b), 0, 1, va(r1, 0)), then(S_IP);
  destroy_resource(v(b), v(r1), 0);
  destroy_allocations(v(a), 0, 2, va(r1, 0), va(r1, 2));                     /* a holds it alone */
  destroy_allocations(v(a), 0, 1, va(r1, 0)), then(S_IH);                    /* stale */
  destroy_allocations(v(a), 0, 2, va(own, 0), va(own, 3));
  destroy_allocations(v(a), 0, 2, va(own, 1), va(own, 3)), then(S_IH);       /* one stale */
  destroy_allocations(v(a), AL_DESTROY_SYNCHRONOUS | AL_DESTROY_ASSUME_NOT_IN_USE, 1, va(own, 1));
  destroy_allocations(v(a), 0, 1, va(r2, 0));
  query(va(r1, 1));
  RUN();
}

static void test_submit_and_fences(void) {
  begin();
  unsigned a = create_device(), b = create_device();
  unsigned x = create_allocations(v(a), 3, 8192, ANY);
  unsigned y = create_allocations(v(b), 1, 4096, ANY);
  unsigned f1 = submit(v(a), FZ_COMMAND_FILL, 3, va(x, 0), va(x, 1), va(x, 2));
  unsigned f2 = submit(v(a), FZ_COMMAND_CHECK, 2, va(x, 2), va(x, 0));
  submit(v(a), FZ_COMMAND_NOP, 0);
  submit(v(a), FZ_COMMAND_CHECK, 1, va(y, 0)), then(S_IH);               /* not bound on a */
  submit(v(a), FZ_COMMAND_NOP, 2, va(x, 0), va(x, 0)), then(S_IP);       /* duplicates */
  submit(v(a), FZ_COMMAND_NOP, 1, va(x, 0)), hostile(FZ_HOSTILE_NULL_ARGS), then(S_IP);
  submit(v(a), FZ_COMMAND_NOP, 1, va(x, 0)), hostile(FZ_HOSTILE_NULL_LIST), then(S_IP);
  submit(v(a), FZ_COMMAND_NOP, 0), hostile(FZ_HOSTILE_NULL_LIST);        /* NULL with count 0 */
  submit(v(a), FZ_COMMAND_NOP, 1, va(x, 0)), hostile(FZ_HOSTILE_RESERVED_FLAGS), then(S_IP);
  submit(v(a), FZ_COMMAND_NOP, 1, va(x, 0)), hostile(FZ_HOSTILE_PRIVATE_DATA), then(S_IP);
  submit(v(a), FZ_COMMAND_NOP, 1, va(x, 0)), hostile(FZ_HOSTILE_PRIVATE_DATA), then(S_IP);
  submit(v(a), FZ_COMMAND_NOP, FZ_COUNT_OVER_MAXIMUM), then(S_IP);
  submit(lit(0), FZ_COMMAND_NOP, 0), then(S_IH);
  submit(v(a), FZ_COMMAND_NOP, 1, lit(0xdead0001)), then(S_IH);
  gpu_run(1);
  query(va(x, 0));
  fence_wait(v(f2));
  fence_wait(v(f1));                                                     /* already signalled */
  fence_wait(lit(1000)), then(S_IP);                                     /* never handed out */
  unsigned f3 = submit(v(b), FZ_COMMAND_FILL, 1, va(y, 0));
  submit(v(b), FZ_COMMAND_CHECK, 1, va(y, 0));
  gpu_run(0);
  gpu_run(FZ_COUNT_OVER_MAXIMUM), hostile(FZ_HOSTILE_NULL_ARGS);
  fence_wait(v(f3));
  query(va(y, 0)), hostile(FZ_HOSTILE_NULL_ARGS), then(S_IP);
  query(v(a)), then(S_IH);
  query(lit(0)), then(S_IH);
  submit(v(a), FZ_COMMAND_FILL, 3, va(x, 0), va(x, 1), va(x, 2));
  submit(v(a), FZ_COMMAND_CHECK, 3, va(x, 1), va(x, 2), va(x, 0));
  RUN();
  CHECK(report.gpu_fills == 7 && report.gpu_checks == 6, "fills %u checks %u", report.gpu_fills, report.gpu_checks);
}

/* ---- Lifetimes ---------------------------------------------------------------------------- */

static void test_shared_resource_outlives_creator(void) {
  begin();
  unsigned a = create_device(), b = create_device(), c = create_device();
  unsigned r = create_resource(v(a), 3, 16384, true);
  submit(v(a), FZ_COMMAND_FILL, 3, va(r, 0), va(r, 1), va(r, 2));
  open_resource(v(b), v(r));
  open_resource(v(c), v(r));
  destroy_device(v(a));                                       /* the creator goes */
  query(va(r, 1));                                            /* owner: a's stale handle */
  submit(v(b), FZ_COMMAND_CHECK, 3, va(r, 2), va(r, 0), va(r, 1));
  submit(v(c), FZ_COMMAND_FILL, 1, va(r, 1));
  submit(v(b), FZ_COMMAND_CHECK, 1, va(r, 1));
  add_to_resource(v(a), v(r), 1, 4096), then(S_IH);
  destroy_resource(v(b), v(r), 0);
  destroy_allocations(v(c), 0, 1, va(r, 0));                  /* c holds it alone now */
  submit(v(b), FZ_COMMAND_CHECK, 1, va(r, 1)), then(S_IH);    /* b let go */
  submit(v(c), FZ_COMMAND_CHECK, 1, va(r, 1));
  destroy_device(v(c));                                       /* the last holder: r goes */
  query(va(r, 1)), then(S_IH);
  open_resource(v(b), v(r)), then(S_IH);
  RUN();
}

static void test_deferred_destroy(void) {
  begin();
  unsigned a = create_device();
  unsigned x = create_allocations(v(a), 4, 8192, ANY);
  unsigned r = create_resource(v(a), 2, 8192, false);
  submit(v(a), FZ_COMMAND_FILL, 4, va(x, 0), va(x, 1), va(x, 2), va(x, 3));
  unsigned f = submit(v(a), FZ_COMMAND_FILL, 2, va(r, 0), va(r, 1));
  destroy_allocations(v(a), 0, 2, va(x, 0), va(x, 1));        /* deferred: fences pending */
  query(va(x, 0)), then(S_IH);                                /* the handle is gone at once */
  submit(v(a), FZ_COMMAND_NOP, 1, va(x, 1)), then(S_IH);
  destroy_resource(v(a), v(r), 0);                            /* deferred too */
  unsigned x2 = create_allocations(v(a), 4, 8192, ANY);       /* memory is still held */
  submit(v(a), FZ_COMMAND_FILL, 4, va(x2, 0), va(x2, 1), va(x2, 2), va(x2, 3));
  gpu_run(1);                                                 /* the first fill signals */
  destroy_allocations(v(a), AL_DESTROY_SYNCHRONOUS, 1, va(x, 2));
  fence_wait(v(f));
  destroy_allocations(v(a), AL_DESTROY_ASSUME_NOT_IN_USE, 1, va(x2, 0)); /* executor waits first */
  submit(v(a), FZ_COMMAND_CHECK, 3, va(x2, 1), va(x2, 2), va(x2, 3));
  destroy_allocations(v(a), 0, 1, va(x2, 1));
  destroy_device(v(a));                                       /* waits for its work */
  RUN();
}

static void test_stale_handles_after_many_reuses(void) {
  begin();
  unsigned d = create_device();
  unsigned first = create_allocations(v(d), 32, 4096, ANY);
  unsigned firstr = create_resource(v(d), 2, 4096, true);
  destroy_allocations(v(d), 0, 2, va(first, 0), va(first, 31));
  destroy_resource(v(d), v(firstr), 0);
  for (int round = 0; round < 25; round++) {
    unsigned k = create_allocations(v(d), 32, 4096, ANY);
    fz_call *c = &prog.calls[add(FZ_OP_DESTROY_ALLOCATIONS) - 1];
    c->device = v(d);
    c->list_length = 32;
    for (unsigned j = 0; j < 32; j++) c->list[j] = va(k, j);
  }
  query(va(first, 0)), then(S_IH);
  query(va(first, 31)), then(S_IH);
  query(va(first, 1));
  submit(v(d), FZ_COMMAND_FILL, 2, va(first, 1), va(first, 0)), then(S_IH);
  open_resource(v(d), v(firstr)), then(S_IH);
  destroy_allocations(v(d), 0, 1, va(first, 31)), then(S_IH);
  destroy_device(v(d));
  destroy_device(v(d)), then(S_IH);
  RUN();
}

static void test_device_destroy_with_live_objects(void) {
  begin();
  unsigned a = create_device(), b = create_device();
  unsigned own = create_allocations(v(a), 5, 4096, ANY);
  unsigned plain = create_resource(v(a), 3, 4096, false);
  unsigned shared = create_resource(v(a), 2, 4096, true);
  unsigned theirs = create_resource(v(b), 2, 4096, true);
  open_resource(v(b), v(shared));
  open_resource(v(a), v(theirs));
  submit(v(a), FZ_COMMAND_FILL, 4, va(own, 0), va(plain, 1), va(shared, 0), va(theirs, 1));
  submit(v(b), FZ_COMMAND_FILL, 1, va(shared, 1));
  destroy_device(v(a));                                       /* work pending, objects live */
  query(va(own, 0)), then(S_IH);
  query(va(plain, 2)), then(S_IH);
  destroy_resource(v(b), v(plain), 0), then(S_IH);
  submit(v(b), FZ_COMMAND_CHECK, 4, va(shared, 0), va(shared, 1), va(theirs, 1), va(theirs, 0));
  destroy_allocations(v(b), 0, 1, va(theirs, 0));             /* b holds it alone now */
  gpu_run(8);
  destroy_device(v(b));
  RUN();
}

static void test_empty_resources(void) {
  begin();
  unsigned a = create_device(), b = create_device();
  unsigned r = create_resource(v(a), 2, 4096, true);
  destroy_allocations(v(a), 0, 2, va(r, 0), va(r, 1)); /* the resource stays, empty */
  open_resource(v(b), v(r));                           /* opening an empty resource */
  add_to_resource(v(a), v(r), 1, 4096), then(S_IP);    /* sealed */
  destroy_resource(v(a), v(r), 0);
  query(va(r, 0)), then(S_IH);
  destroy_resource(v(b), v(r), AL_DESTROY_SYNCHRONOUS);
  open_resource(v(a), v(r)), then(S_IH);
  unsigned p = create_resource(v(a), 1, 4096, false);
  destroy_allocations(v(a), 0, 1, va(p, 0));
  unsigned more = add_to_resource(v(a), v(p), 2, 4096); /* adding to an empty resource */
  submit(v(a), FZ_COMMAND_FILL, 2, va(more, 0), va(more, 1));
  destroy_device(v(a));
  RUN();
}

static void test_unknown_op_is_skipped(void) {
  begin();
  unsigned d = create_device();
  add(FZ_OP_COUNT);
  add((fz_op)1000);
  destroy_device(v(d));
  RUN();
}

/* ---- Memory pressure ---------------------------------------------------------------------- */

static void test_memory_pressure(void) {
  begin();
  unsigned d = create_device();
  unsigned first = 0;
  for (int k = 0; k < 12; k++) {
    unsigned c = create_allocations(v(d), 4, 256 << 10, (fz_placement)(k % 3));
    then(ANY_STATUS);
    if (!first) first = c;
    submit(v(d), FZ_COMMAND_FILL, 4, va(c, 0), va(c, 1), va(c, 2), va(c, 3)), then(ANY_STATUS);
  }
  submit(v(d), FZ_COMMAND_CHECK, 4, va(first, 0), va(first, 1), va(first, 2), va(first, 3)), then(ANY_STATUS);
  gpu_run(100);
  create_allocations(v(d), 8, 512 << 10, ANY), then(ANY_STATUS);
  submit(v(d), FZ_COMMAND_CHECK, 4, va(first, 0), va(first, 1), va(first, 2), va(first, 3)), then(ANY_STATUS);
  fence_wait(lit(3)), then(ANY_STATUS);
  RUN();
  CHECK(report.no_video_memory > 0, "no call ran out of video memory");
}

/* ---- Fault injection ---------------------------------------------------------------------- */

/* A program that reaches every creating DDI, paging and the command path. */
static void build_fault_program(void) {
  begin();
  unsigned a = create_device(), b = create_device();
  unsigned x = create_allocations(v(a), 3, 8192, ANY);
  unsigned r = create_resource(v(a), 2, 16384, true);
  unsigned p = create_resource(v(a), 1, 4096, false);
  add_to_resource(v(a), v(p), 2, 4096);
  open_resource(v(b), v(r));
  submit(v(a), FZ_COMMAND_FILL, 4, va(x, 0), va(x, 2), va(r, 0), va(p, 0));
  submit(v(b), FZ_COMMAND_CHECK, 1, va(r, 0));
  unsigned big = create_allocations(v(b), 4, 512 << 10, ANY);
  submit(v(b), FZ_COMMAND_FILL, 2, va(big, 0), va(big, 3));
  destroy_allocations(v(a), 0, 1, va(x, 2));
  gpu_run(1);
  create_allocations(v(b), 4, 512 << 10, FZ_PLACEMENT_MEMORY_ONLY);
  submit(v(a), FZ_COMMAND_CHECK, 2, va(x, 0), va(p, 0));
  destroy_resource(v(a), v(r), 0);
  destroy_device(v(a));
  query(va(r, 1));
  create_device();
  for (uint32_t i = 0; i < prog.call_count; i++) want[i] = ANY_STATUS;
}

static void test_faults_every_point(void) {
  uint32_t runs = 0, injected = 0;
  for (uint32_t pt = 0; pt < FAULT_POINT_COUNT; pt++) {
    for (int forever = 0; forever < 2; forever++) {
      for (uint32_t nth = 1; nth < 400; nth++) {
        build_fault_program();
        fault(pt, nth, forever ? FAULT_REPEAT_FOREVER : 0);
        if (!RUN()) {
          fprintf(stderr, "  (point %u nth %u repeat %s)\n", pt, nth, forever ? "forever" : "once");
          return;
        }
        runs++;
        injected += report.faults_injected;
        if (report.faults_injected == 0) break; /* fewer than nth calls of the point: done */
      }
    }
  }
  if (strcmp(al_selected_miniport.name, "sim") == 0) CHECK(injected > 0, "no fault was injected");
  fprintf(stderr, "  faults: %u runs, %u injected failures\n", runs, injected);
}

static void build_removed_program(uint32_t nth) {
  begin();
  unsigned a = create_device();
  unsigned x = create_allocations(v(a), 2, 4096, ANY);
  unsigned r = create_resource(v(a), 1, 4096, true);
  submit(v(a), FZ_COMMAND_FILL, 2, va(x, 0), va(x, 1));
  unsigned b = create_device();
  create_device();
  create_allocations(v(a), 1, 4096, ANY);
  create_allocations(v(a), 0, 4096, ANY), then(S_IP);
  open_resource(v(a), v(r)), then(S_IP);                     /* already held */
  submit(v(a), FZ_COMMAND_CHECK, 2, va(x, 0), va(x, 1));
  destroy_allocations(v(a), 0, 1, va(x, 0));                 /* destroys always work */
  destroy_device(v(b)), then(ANY_STATUS);
  gpu_run(5);
  query(va(x, 1));
  destroy_resource(v(a), v(r), 0);
  destroy_device(v(a));
  for (uint32_t i = 0; i < prog.call_count; i++) want[i] = ANY_STATUS; /* the oracle predicts them */
  fault(FAULT_DEVICE_REMOVED, nth, 0);
}

static void test_device_removed(void) {
  if (strcmp(al_selected_miniport.name, "sim") != 0) return;
  uint32_t removed_runs = 0;
  for (uint32_t nth = 1; nth < 60; nth++) {
    build_removed_program(nth);
    if (!RUN()) return;
    if (report.faults_injected == 0) break;
    /* After the first STATUS_DEVICE_REMOVED every creating call returns it too (the oracle
     * predicts exactly that; here it is checked by hand as well). */
    uint32_t first = UINT32_MAX;
    for (uint32_t i = 0; i < report.calls_run; i++) {
      fz_op op = prog.calls[i].op;
      bool creating = op == FZ_OP_CREATE_DEVICE || op == FZ_OP_CREATE_ALLOCATIONS || op == FZ_OP_SUBMIT;
      if (first == UINT32_MAX && report.status[i] == S_DR) first = i;
      if (first != UINT32_MAX && creating && i > first && prog.calls[i].count != 0)
        CHECK(report.status[i] == S_DR, "nth %u: call v%u after removal: %s", nth, i + 1,
              al_status_name(report.status[i]));
    }
    if (first != UINT32_MAX) removed_runs++;
  }
  CHECK(removed_runs > 3, "removal happened in %u runs", removed_runs);
}

/* ---- Wrong answers ------------------------------------------------------------------------ */

#define S_DM STATUS_GRAPHICS_DRIVER_MISMATCH

/* Creates of every shape (a new resource of one allocation, of 100: more than one undo batch,
 * add_to_resource, device-owned, an open on a second device); the first the armed point hits
 * fails with STATUS_GRAPHICS_DRIVER_MISMATCH. */
static void build_wrong_answer_program(void) {
  begin();
  unsigned a = create_device(), b = create_device();
  unsigned one = create_resource(v(a), 1, 4096, true);
  unsigned big = create_resource(v(a), 100, 4096, true);
  unsigned pool = create_resource(v(a), 2, 8192, false);
  add_to_resource(v(a), v(pool), 3, 4096);
  unsigned x = create_allocations(v(b), 2, 4096, ANY);
  open_resource(v(b), v(one));
  open_resource(v(b), v(big));
  submit(v(b), FZ_COMMAND_FILL, 2, va(x, 0), va(big, 99));
  destroy_resource(v(a), v(pool), 0);
  create_device();
  destroy_device(v(a));
  for (uint32_t i = 0; i < prog.call_count; i++) want[i] = ANY_STATUS; /* the oracle predicts them */
}

static void test_wrong_answers(void) {
  if (strcmp(al_selected_miniport.name, "sim") != 0) return;
  uint32_t mismatches = 0;
  for (uint32_t pt = 0; pt < FAULT_POINT_COUNT; pt++) {
    if (!fault_point_is_wrong_answer((enum fault_point)pt)) continue;
    uint32_t caught_here = 0;
    for (uint32_t nth = 1; nth < 40; nth++) {
      build_wrong_answer_program();
      fault(pt, nth, 0);
      if (!RUN()) {
        fprintf(stderr, "  (point %u nth %u)\n", pt, nth);
        return;
      }
      if (report.faults_injected == 0) break;
      uint32_t failed = 0;
      for (uint32_t i = 0; i < report.calls_run; i++) failed += report.status[i] == S_DM;
      CHECK(failed == 1, "point %u nth %u: %u calls returned STATUS_GRAPHICS_DRIVER_MISMATCH", pt, nth, failed);
      mismatches += failed;
      caught_here += failed;
    }
    CHECK(caught_here >= 1, "wrong answer %s was never caught", fault_injector_point_name((enum fault_point)pt));
  }
  CHECK(mismatches >= 12 * 3, "only %u wrong answers caught", mismatches);

  /* The first create of a resource answered with a NULL handle fails exactly, and the next
   * create succeeds: the answer was undone, nothing of it is left (the executor's teardown
   * checks the adapter and the sim's totals). */
  begin();
  unsigned a = create_device();
  create_resource(v(a), 3, 4096, true), then(S_DM);
  create_resource(v(a), 3, 4096, true);
  fault(FAULT_CREATE_NULL_ALLOCATION, 1, 0);
  RUN();
  /* Every create of the miniport answered wrongly, forever. */
  begin();
  a = create_device();
  create_resource(v(a), 2, 4096, true), then(S_DM);
  create_allocations(v(a), 70, 4096, ANY), then(S_DM);
  fault(FAULT_CREATE_UNDESCRIBED_SEGMENT, 1, FAULT_REPEAT_FOREVER);
  RUN();
  begin();
  create_device(), then(S_DM);
  create_device(), then(S_OK);
  fault(FAULT_CREATE_DEVICE_NULL, 1, 0);
  RUN();
}

/* The port's undo of a wrong answer must not need host memory: with every host allocation
 * position failing once on top of a wrong answer, the port must still leave the miniport
 * nothing (an undo whose handle list could not be allocated leaked every allocation the
 * miniport made). */
static void test_wrong_answer_undo_under_host_failure(void) {
  if (strcmp(al_selected_miniport.name, "sim") != 0) return;
  static const enum fault_point wrong[] = {FAULT_CREATE_NULL_ALLOCATION, FAULT_OPEN_NULL_BINDING};
  for (size_t w = 0; w < sizeof wrong / sizeof wrong[0]; w++) {
    for (uint32_t nth = 1; nth < 200; nth++) {
      begin();
      unsigned a = create_device(), b = create_device();
      unsigned r = create_resource(v(a), 5, 4096, true);
      create_resource(v(a), 2, 4096, true);
      open_resource(v(b), v(r));
      for (uint32_t i = 0; i < prog.call_count; i++) want[i] = ANY_STATUS;
      fault(wrong[w], 1, FAULT_REPEAT_FOREVER);
      fault(FAULT_HOST_ALLOCATION, nth, 0);
      if (!RUN()) {
        fprintf(stderr, "  (wrong answer %u, host allocation %u)\n", (unsigned)wrong[w], nth);
        return;
      }
      /* Stop once the host allocation's position lies past the program. */
      bool host_failed = report.faults_injected > 1;
      if (!host_failed && nth > 20) break;
    }
  }
}

/* ---- Faults during adapter bring-up ---------------------------------------------------------- */

/* Every failure point armed at=bring_up, once and forever, at every position until one lies
 * past bring-up and the program: each run either brings the adapter up and runs the program
 * as usual, or ends cleanly after al_adapter_create failed with STATUS_NO_MEMORY, the executor
 * having checked that the sim's totals are back (and ASan, under --config=asan, that the port
 * freed everything). The hook must be gone afterwards. */
static void test_bring_up_faults(void) {
  if (strcmp(al_selected_miniport.name, "sim") != 0) return;
  static const enum fault_point points[] = {FAULT_HOST_ALLOCATION, FAULT_SEGMENT_SPACE, FAULT_PAGE_TABLE_PAGE,
                                            FAULT_DRIVER_OBJECT};
  uint32_t failed_by_point[sizeof points / sizeof points[0]] = {0};
  for (size_t k = 0; k < sizeof points / sizeof points[0]; k++) {
    for (int forever = 0; forever < 2; forever++) {
      for (uint32_t nth = 1; nth < 400; nth++) {
        build_fault_program();
        fault(points[k] | FZ_FAULT_AT_BRING_UP, nth, forever ? FAULT_REPEAT_FOREVER : 0);
        fz_exec_options o;
        fz_exec_options_default(&o);
        o.return_on_mismatch = true;
        int rc = fz_execute(&prog, &o, &report);
        if (!CHECK(rc == FZ_EXEC_OK, "point %u nth %u repeat %s at bring-up: oracle: %s", (unsigned)points[k], nth,
                   forever ? "forever" : "once", report.message))
          return;
        if (report.bring_up_failed) {
          failed_by_point[k]++;
          CHECK(report.calls_run == 0 && report.bring_up_status == STATUS_NO_MEMORY && report.faults_injected > 0,
                "point %u nth %u: bring-up failed with %s after %u calls, %u failures injected", (unsigned)points[k],
                nth, al_status_name(report.bring_up_status), report.calls_run, report.faults_injected);
        } else if (report.faults_injected == 0) {
          break; /* past bring-up and past the program: done */
        }
        const al_host_alloc_fault *left = al_testing_set_host_alloc_fault(NULL);
        CHECK(left == NULL, "point %u nth %u: the host-allocation hook was left installed", (unsigned)points[k], nth);
      }
    }
  }
  /* The sim's bring-up allocates on the host and takes segment space; page-table pages and
   * driver objects come with devices and allocations only, so those windows run on into the
   * program (checked as usual). */
  CHECK(failed_by_point[0] >= 10, "host allocation failed bring-up %u times", failed_by_point[0]);
  CHECK(failed_by_point[1] >= 1, "segment space failed bring-up %u times", failed_by_point[1]);
  fprintf(stderr, "  bring-up failures: host_allocation %u, segment_space %u, page_table_page %u, driver_object %u\n",
          failed_by_point[0], failed_by_point[1], failed_by_point[2], failed_by_point[3]);

  /* A window bring-up does not use up runs on into the program: the device create fails. */
  begin();
  create_device(), then(STATUS_DEVICE_REMOVED);
  fault(FAULT_DEVICE_REMOVED | FZ_FAULT_AT_BRING_UP, 1, 0);
  RUN();
  CHECK(!report.bring_up_failed, "bring-up failed");
}

/* Broken bring-ups the oracle must reject: one that fails with an injected failure but leaves
 * an adapter of the sim behind (a leak on the error path), and one that fails without any
 * failure injected. */
static al_adapter *leaked_adapter;
static NTSTATUS create_leaking_adapter(const al_adapter_config *config, al_adapter **out_adapter) {
  NTSTATUS st = al_adapter_create(config, out_adapter); /* the armed failure hits this one */
  if (NT_SUCCESS(st)) return st;
  st = al_adapter_create(config, &leaked_adapter); /* ... and this one comes up and stays */
  *out_adapter = NULL;
  return NT_SUCCESS(st) ? STATUS_NO_MEMORY : st;
}
static NTSTATUS create_failing_adapter(const al_adapter_config *config, al_adapter **out_adapter) {
  (void)config;
  *out_adapter = NULL;
  return STATUS_NO_MEMORY;
}

static void test_bring_up_failure_checks(void) {
  if (strcmp(al_selected_miniport.name, "sim") != 0) return;
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  fz_port_ops ports = fz_port_alloclab;
  o.port = &ports;

  ports.adapter_create = create_leaking_adapter;
  build_fault_program();
  fault(FAULT_HOST_ALLOCATION | FZ_FAULT_AT_BRING_UP, 1, 0);
  int rc = fz_execute(&prog, &o, &report);
  CHECK(leaked_adapter != NULL, "the broken bring-up made no second adapter");
  CHECK(rc == FZ_EXEC_MISMATCH && strstr(report.message, "[oracle:miniport-leak:adapters "),
        "a bring-up that leaves an adapter behind was not caught: rc %d: %s", rc, report.message);
  al_adapter_destroy(leaked_adapter);
  leaked_adapter = NULL;

  ports.adapter_create = create_failing_adapter;
  build_fault_program();
  fault(FAULT_HOST_ALLOCATION | FZ_FAULT_AT_BRING_UP, 1000000, 0); /* armed, never reached */
  rc = fz_execute(&prog, &o, &report);
  CHECK(rc == FZ_EXEC_SETUP_FAILED && strstr(report.message, "[oracle:adapter-create setup]"),
        "a bring-up failing with no injected failure was not caught: rc %d: %s", rc, report.message);
  CHECK(al_testing_set_host_alloc_fault(NULL) == NULL, "the host-allocation hook was left installed");
}

/* options(teardown=adapter): the executor leaves the live devices to al_adapter_destroy, which
 * must destroy them (shared resources, deferred destroys and queued work included) and leave the
 * miniport as before the program; by default the executor destroys every device first. */
static uint32_t devices_at_adapter_destroy = UINT32_MAX;
static void counting_adapter_destroy(al_adapter *adapter) {
  al_adapter_stats st;
  fz_port_alloclab.get_stats(adapter, &st);
  devices_at_adapter_destroy = st.devices;
  fz_port_alloclab.adapter_destroy(adapter);
}

static void test_adapter_teardown(void) {
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  fz_port_ops ports = fz_port_alloclab;
  ports.adapter_destroy = counting_adapter_destroy;
  o.port = &ports;
  static const char body[] =
      "v1 = create_device()\nv2 = create_device()\n"
      "v3 = create_resource(dev=v1, n=2, size=8192, placement=any, shared=1)\n"
      "v4 = open_resource(dev=v2, resource=v3)\n"
      "v5 = create_allocations(dev=v2, n=3, size=4096, placement=memory_only)\n"
      "v6 = submit(dev=v2, list=[v3.a0, v5.a0], command=fill)\n"
      "v7 = destroy_allocations(dev=v2, list=[v5.a0], flags=0)\n";
  static const char *const options[] = {"options(teardown=adapter)\n",
                                        "options(engine=threaded, teardown=adapter)\n", "", "options(teardown=devices)\n"};
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
    char text[1024];
    snprintf(text, sizeof text, "%s%s", options[i], body);
    devices_at_adapter_destroy = UINT32_MAX;
    int rc = fz_execute_text(text, &o, &report);
    CHECK(rc == FZ_EXEC_OK, "'%s': rc %d: %s", options[i], rc, report.message);
    uint32_t live = strstr(options[i], "teardown=adapter") ? 2u : 0u;
    CHECK(devices_at_adapter_destroy == live, "'%s': %u devices live at al_adapter_destroy, expected %u",
          options[i], devices_at_adapter_destroy, live);
  }
}

/* ---- Damage: the walks' own test (program.h "Damage") ------------------------------------------- */

/* A state where most kinds have a target: two devices, a shared resource opened on both,
 * device-owned allocations in both segments, queued GPU work. */
static const char damage_state[] =
    "v1 = create_device()\n"
    "v2 = create_device()\n"
    "v3 = create_resource(dev=v1, n=2, size=8192, placement=any, shared=1)\n"
    "v4 = open_resource(dev=v2, resource=v3)\n"
    "v5 = create_allocations(dev=v2, n=2, size=4096, placement=memory_only)\n"
    "v6 = create_allocations(dev=v1, n=1, size=4096, placement=aperture_only)\n"
    "v7 = submit(dev=v2, list=[v3.a0, v5.a0], command=fill)\n";
#define DAMAGE_STATE_CALLS 7u

/* Every kind of both layers, at two picks, after damage_state: each is caught with its phrase
 * (STATUS_SUCCESS) or finds no target (STATUS_INVALID_HANDLE); nothing else, and the restored
 * state passes every check to the end of the program. */
static void test_damage_every_kind_is_caught(void) {
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  const bool sim = strcmp(al_selected_miniport.name, "sim") == 0;
  const unsigned port_kinds = al_testing_damage_kind_count(), sim_kinds = sim_testing_damage_kind_count();
  CHECK(port_kinds > 0 && sim_kinds > 0, "no damage kinds (port %u, sim %u)", port_kinds, sim_kinds);
  unsigned caught = 0, no_target = 0;
  for (unsigned layer = 0; layer < 2; layer++) {
    const unsigned count = layer ? sim_kinds : port_kinds;
    for (unsigned k = 0; k < count; k++) {
      const al_damage_kind_info *info = layer ? sim_testing_damage_kind(k) : al_testing_damage_kind(k);
      char text[2048];
      snprintf(text, sizeof text, "%sv8 = damage(kind=%s, pick=0)\nv9 = damage(kind=%s, pick=1)\n", damage_state,
               info->name, info->name);
      int rc = fz_execute_text(text, &o, &report);
      if (!CHECK(rc == FZ_EXEC_OK, "damage %s: rc %d: %s", info->name, rc, report.message)) continue;
      for (uint32_t i = DAMAGE_STATE_CALLS; i < DAMAGE_STATE_CALLS + 2; i++) {
        NTSTATUS st = report.status[i];
        if (layer && !sim) {
          CHECK(st == S_IP, "damage %s without the sim: %s, want STATUS_INVALID_PARAMETER", info->name,
                al_status_name(st));
          continue;
        }
        CHECK(st == S_OK || st == S_IH, "damage %s: %s", info->name, al_status_name(st));
        caught += st == S_OK;
        no_target += st == S_IH;
      }
    }
  }
  /* Most kinds have a target in this state: a kind that never finds one here tests nothing. */
  CHECK(caught >= (sim ? port_kinds + sim_kinds : port_kinds), "only %u damages caught (%u found no target)", caught,
        no_target);
}

/* A port whose damage hook answers what the test says, to check the executor's verdicts. */
static al_damage_result fake_result;
static const char *fake_message;
static unsigned fake_calls;
static al_damage_result fake_damage(al_adapter *adapter, unsigned kind, unsigned pick, char *msg, size_t cap) {
  (void)adapter;
  (void)kind;
  (void)pick;
  fake_calls++;
  if (msg != NULL && cap > 0) snprintf(msg, cap, "%s", fake_message);
  return fake_result;
}
static const al_damage_kind_info fake_info = {"fake_kind", "fake target", "the expected phrase"};
static const al_damage_kind_info *fake_kind(unsigned kind) { return kind == 0 ? &fake_info : NULL; }

/* Runs "create_device, damage(kind=@kind), create_device" under @options through a port whose
 * damage hook (none unless @hooked) answers @result with @message. */
static int run_fake_damage(al_damage_result result, const char *message, const char *options, unsigned kind,
                           bool hooked) {
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  static fz_port_ops ports;
  ports = fz_port_alloclab;
  ports.damage = hooked ? fake_damage : NULL;
  ports.damage_kind = fake_kind;
  o.port = &ports;
  fake_result = result;
  fake_message = message;
  fake_calls = 0;
  char text[256];
  snprintf(text, sizeof text, "%sv1 = create_device()\nv2 = damage(kind=%u, pick=0)\nv3 = create_device()\n",
           options, kind);
  return fz_execute_text(text, &o, &report);
}

/* The executor's verdicts on what the hook answers. */
static void test_damage_verdicts(void) {
  int rc = run_fake_damage(AL_DAMAGE_DETECTED, "walk: the expected phrase, with details", "", 0, true);
  CHECK(rc == FZ_EXEC_OK && report.status[1] == S_OK && fake_calls == 1, "caught with the phrase: rc %d %s: %s", rc,
        al_status_name(report.status[1]), report.message);
  rc = run_fake_damage(AL_DAMAGE_MISSED, "", "", 0, true);
  CHECK(rc == FZ_EXEC_MISMATCH && strstr(report.message, "passed with it in place") &&
            strstr(report.message, "[oracle:damage-missed:fake_kind"),
        "a miss is a mismatch naming the kind: %s", report.message);
  rc = run_fake_damage(AL_DAMAGE_DETECTED, "walk: some other check failed", "", 0, true);
  CHECK(rc == FZ_EXEC_MISMATCH && strstr(report.message, "not with \"the expected phrase\"") &&
            strstr(report.message, "some other check failed") &&
            strstr(report.message, "[oracle:damage-misreported:fake_kind"),
        "a catch by another check is a mismatch: %s", report.message);
  rc = run_fake_damage(AL_DAMAGE_NO_TARGET, "", "", 0, true);
  CHECK(rc == FZ_EXEC_OK && report.status[1] == S_IH && report.calls_run == 3, "no target: rc %d %s", rc,
        al_status_name(report.status[1]));
  rc = run_fake_damage(AL_DAMAGE_UNKNOWN_KIND, "", "", 0, true);
  CHECK(rc == FZ_EXEC_OK && report.status[1] == S_IP, "unknown kind: rc %d %s", rc, al_status_name(report.status[1]));
  /* Not run: a kind the layer does not have, or the threaded engine (its thread would race). */
  rc = run_fake_damage(AL_DAMAGE_MISSED, "", "", 5, true);
  CHECK(rc == FZ_EXEC_OK && report.status[1] == S_IP && fake_calls == 0, "a kind without info: rc %d %s, %u calls",
        rc, al_status_name(report.status[1]), fake_calls);
  rc = run_fake_damage(AL_DAMAGE_MISSED, "", "options(engine=threaded)\n", 0, true);
  CHECK(rc == FZ_EXEC_OK && report.status[1] == S_IP && fake_calls == 0, "threaded engine: rc %d %s, %u calls", rc,
        al_status_name(report.status[1]), fake_calls);
  /* A port without the hook: the op is skipped. */
  rc = run_fake_damage(AL_DAMAGE_MISSED, "", "", 0, false);
  CHECK(rc == FZ_EXEC_OK && report.status[1] == S_IP && fake_calls == 0, "no hook: rc %d %s, %u calls", rc,
        al_status_name(report.status[1]), fake_calls);
}

/* ---- Text form ---------------------------------------------------------------------------- */

static void test_execute_text(void) {
  static const char text[] =
      "v1 = create_device()\n"
      "v2 = create_resource(dev=v1, n=4, size=65536, placement=any, shared=1)\n"
      "v3 = create_device()\n"
      "v4 = open_resource(dev=v3, resource=v2)\n"
      "v5 = destroy_allocations(dev=v1, list=[v2.a0, v2.a3, 0xdead0001], flags=0)\n"
      "v6 = submit(dev=v1, list=[v2.a1], command=fill)\n"
      "v7 = submit(dev=v3, list=[v2.a1], command=check)\n"
      "v8 = destroy_device(dev=v1)\n"
      "v9 = query(allocation=v2.a1)\n";
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  int rc = fz_execute_text(text, &o, &report);
  CHECK(rc == FZ_EXEC_OK, "rc %d: %s", rc, report.message);
  CHECK(report.calls_run == 9, "ran %u calls", report.calls_run);
  CHECK(report.status[4] == S_IH, "v5: %s", al_status_name(report.status[4]));
  CHECK(report.status[8] == S_OK, "v9: %s", al_status_name(report.status[8]));
  CHECK(fz_execute_text("v1 = nonsense()\n", &o, &report) == FZ_EXEC_PARSE_FAILED, "parse error accepted");
}

/* ---- Random programs ---------------------------------------------------------------------- */

static uint64_t rng;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return n ? (uint32_t)(rng % n) : 0;
}

typedef struct gen_state {
  unsigned devices[FZ_MAX_CALLS], ndev;
  unsigned resources[FZ_MAX_CALLS], nres;
  unsigned allocs[FZ_MAX_CALLS], nallocs;
  unsigned fences[FZ_MAX_CALLS], nfence;
  fz_ref filled[FZ_MAX_CALLS * 4];
  unsigned nfilled;
} gen_state;

static fz_ref pick_from(const unsigned *calls, unsigned n) {
  if (n == 0 || rnd(20) == 0) {
    static const uint32_t lits[] = {0, 0xdead0001u, 0x40000001u, 0x00100001u, 1, 0xffffffffu};
    return lit(lits[rnd(6)]);
  }
  return v(calls[n - 1 - rnd(n < 4 ? n : 4)]);
}

static fz_ref pick_alloc(const gen_state *g) {
  if (g->nallocs == 0 || rnd(20) == 0) return pick_from(g->devices, g->ndev);
  if (g->nfilled && rnd(2) == 0) return g->filled[g->nfilled - 1 - rnd(g->nfilled < 6 ? g->nfilled : 6)];
  unsigned k = g->allocs[g->nallocs - 1 - rnd(g->nallocs < 6 ? g->nallocs : 6)];
  uint32_t n = prog.calls[k - 1].count;
  if (n > FZ_MAX_LIST) n = FZ_MAX_LIST - 1;
  return va(k, n ? rnd(n + (rnd(10) == 0)) : 0);
}

/* A random program of @len calls, mostly valid, with stale and hostile references. */
static void gen_program(uint32_t len, bool faults) {
  static const uint64_t sizes[] = {1, 4096, 4096, 8192, 65536, 100000, 300000, 1 << 20};
  gen_state g;
  memset(&g, 0, sizeof g);
  begin();
  for (uint32_t i = 0; i < FZ_MAX_CALLS; i++) want[i] = ANY_STATUS;
  for (uint32_t i = 0; i < len; i++) {
    unsigned k;
    uint32_t op = g.ndev == 0 ? FZ_OP_CREATE_DEVICE : rnd(100);
    if (g.ndev && op < 8) op = FZ_OP_CREATE_DEVICE;
    else if (g.ndev && op < 12) op = FZ_OP_DESTROY_DEVICE;
    else if (g.ndev && op < 27) op = FZ_OP_CREATE_ALLOCATIONS;
    else if (g.ndev && op < 37) op = FZ_OP_CREATE_RESOURCE;
    else if (g.ndev && op < 41) op = FZ_OP_ADD_TO_RESOURCE;
    else if (g.ndev && op < 48) op = FZ_OP_OPEN_RESOURCE;
    else if (g.ndev && op < 54) op = FZ_OP_DESTROY_RESOURCE;
    else if (g.ndev && op < 64) op = FZ_OP_DESTROY_ALLOCATIONS;
    else if (g.ndev && op < 82) op = FZ_OP_SUBMIT;
    else if (g.ndev && op < 88) op = FZ_OP_GPU_RUN;
    else if (g.ndev && op < 93) op = FZ_OP_FENCE_WAIT;
    else if (g.ndev && op < 97) op = FZ_OP_QUERY;
    else if (g.ndev) op = FZ_OP_DAMAGE; /* the walks' own test, in whatever state the program reached */
    k = add((fz_op)op);
    fz_call *c = last();
    c->device = pick_from(g.devices, g.ndev);
    c->resource = pick_from(g.resources, g.nres);
    c->count = rnd(8) == 0 ? rnd(33) : 1 + rnd(4);
    if (rnd(40) == 0) c->count = FZ_COUNT_OVER_MAXIMUM;
    c->size = sizes[rnd(8)];
    c->placement = (fz_placement)rnd(3);
    c->shared = rnd(2);
    c->flags = rnd(4) == 0 ? rnd(4) : 0;
    if (rnd(50) == 0) c->flags |= 0x10;
    c->command = (fz_command)rnd(3);
    c->list_length = rnd(10) == 0 ? 0 : 1 + rnd(4);
    for (uint32_t j = 0; j < c->list_length; j++) c->list[j] = pick_alloc(&g);
    if (rnd(30) == 0) c->list[c->list_length ? c->list_length - 1 : 0] = c->list[0];
    c->allocation = pick_alloc(&g);
    c->fence = pick_from(g.fences, g.nfence);
    if (rnd(25) == 0) c->hostile = 1u << rnd(5);
    switch (op) {
    case FZ_OP_CREATE_DEVICE: g.devices[g.ndev++] = k; break;
    case FZ_OP_CREATE_ALLOCATIONS: g.allocs[g.nallocs++] = k; break;
    case FZ_OP_CREATE_RESOURCE:
      g.resources[g.nres++] = k;
      g.allocs[g.nallocs++] = k;
      break;
    case FZ_OP_ADD_TO_RESOURCE: g.allocs[g.nallocs++] = k; break;
    case FZ_OP_SUBMIT:
      g.fences[g.nfence++] = k;
      c->command = g.nfilled && rnd(5) < 2 ? FZ_COMMAND_CHECK : (fz_command)rnd(2) * FZ_COMMAND_FILL;
      if (c->command == FZ_COMMAND_FILL)
        for (uint32_t j = 0; j < c->list_length && g.nfilled < FZ_MAX_CALLS * 4; j++) g.filled[g.nfilled++] = c->list[j];
      break;
    case FZ_OP_GPU_RUN: c->count = rnd(4); break;
    case FZ_OP_DAMAGE: {
      const unsigned port = al_testing_damage_kind_count(), sim = sim_testing_damage_kind_count();
      const unsigned kind = rnd(port + sim);
      c->damage = (uint8_t)(kind < port ? kind : FZ_DAMAGE_SIM | (kind - port));
      c->pick = (uint8_t)rnd(8);
      break;
    }
    default: break;
    }
  }
  if (faults) {
    uint32_t n = 1 + rnd(2);
    for (uint32_t f = 0; f < n; f++) fault(rnd(FAULT_POINT_COUNT), 1 + rnd(40), rnd(3) == 0 ? FAULT_REPEAT_FOREVER : rnd(3));
  }
}

static uint64_t seed(void) {
  const char *e = getenv("FZ_TEST_SEED");
  static uint64_t s;
  if (s == 0) {
    s = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) * 2654435761u;
    if (s == 0) s = 1;
    fprintf(stderr, "FZ_TEST_SEED=%" PRIu64 "\n", s);
  }
  return s;
}

static void test_random_programs(void) {
  rng = seed();
  uint32_t n = getenv("FZ_TEST_PROGRAMS") ? (uint32_t)atoi(getenv("FZ_TEST_PROGRAMS")) : 3000;
  uint32_t calls = 0, nvm = 0, injected = 0, checks = 0;
  uint32_t per_status[8] = {0};
  for (uint32_t k = 0; k < n; k++) {
    gen_program(4 + rnd(40), rnd(8) == 0);
    if (!RUN()) {
      fprintf(stderr, "  random program %u of seed %" PRIu64 ":\n", k, seed());
      fz_print_program(stderr, &prog, report.status);
      return;
    }
    calls += report.calls_run;
    nvm += report.no_video_memory;
    injected += report.faults_injected;
    checks += report.gpu_checks;
    for (uint32_t i = 0; i < report.calls_run; i++) {
      fz_status_set b = fz_status_bit(report.status[i]);
      per_status[b ? __builtin_ctz(b) : 7]++;
    }
  }
  fprintf(stderr, "  %u programs, %u calls: success %u, invalid_parameter %u, invalid_handle %u, no_memory %u, "
                  "no_video_memory %u (%u), device_removed %u; %u injected failures, %u GPU checks\n",
          n, calls, per_status[0], per_status[1], per_status[2], per_status[3], per_status[4], nvm, per_status[5],
          injected, checks);
}

/* Programs per second of @progs for about @seconds (each must run clean). */
static double rate(const fz_program *progs, int n, const fz_exec_options *o, double seconds) {
  struct timespec t0, t1;
  uint32_t runs = 0;
  double elapsed = 0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    for (int k = 0; k < n; k++) {
      if (fz_execute(&progs[k], o, &report) != FZ_EXEC_OK) {
        CHECK(false, "speed program %d: %s", k, report.message);
        return 0;
      }
    }
    runs += (uint32_t)n;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  } while (elapsed < seconds);
  return runs / elapsed;
}

/* Programs per second (printed, not asserted): the empty program (adapter bring-up and teardown
 * with every check), typical short programs with small allocations (4..64 KiB), and the random
 * mix (up to 1 MiB: the simulated GPU zero-fills and pages every byte). */
static void test_speed(void) {
  enum { N = 64 };
  static fz_program small[N], mixed[N], empty[1];
  rng = 12345;
  for (int k = 0; k < N; k++) {
    gen_program(8 + rnd(16), false);
    mixed[k] = prog;
    for (uint32_t i = 0; i < prog.call_count; i++) prog.calls[i].size = 4096u << rnd(5);
    small[k] = prog;
  }
  memset(empty, 0, sizeof empty);
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  double e = rate(empty, 1, &o, 0.3), s1 = rate(small, N, &o, 0.5), m1 = rate(mixed, N, &o, 0.5);
  o.check_adapter_each_call = false;
  double s2 = rate(small, N, &o, 0.5);
  fprintf(stderr, "  speed: empty %.0f/s; 8..23 calls, 4..64 KiB: %.0f/s (%.0f/s without per-call "
                  "al_adapter_check); mixed sizes up to 1 MiB: %.0f/s\n", e, s1, s2, m1);
}

/* core releases an idle device-owned allocation's memory late when an earlier teardown of the
 * same device is deferred (alloclab.h promises "at once"). The default model tolerates it; this
 * prints whether the divergence is still there (not a failure: see the report). */
static void test_idle_allocation_released_behind_a_deferred_one(void) {
  begin();
  unsigned d = create_device();
  unsigned x = create_allocations(v(d), 1, 4096, ANY);
  unsigned y = create_allocations(v(d), 1, 4096, ANY);
  submit(v(d), FZ_COMMAND_NOP, 1, va(x, 0));
  destroy_allocations(v(d), 0, 1, va(x, 0)); /* deferred: its fence is queued */
  destroy_allocations(v(d), 0, 1, va(y, 0)); /* idle: must be released at once */
  RUN();
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  CHECK(o.strict_release, "strict release is the default");
  CHECK(fz_execute(&prog, &o, &report) == FZ_EXEC_OK,
        "an idle device-owned allocation is released at once behind a deferred one: %s", report.message);
}

/* ---- The oracle can fail: wrong predictions and broken ports are caught --------------------- */

static void force_invalid_handle(void *ctx, uint32_t call, const fz_call *c, fz_prediction *pr) {
  (void)c;
  if (call == *(const uint32_t *)ctx) pr->allowed = pr->allowed_if_faulted = FZ_ST_INVALID_HANDLE;
}

static void build_small_program(void) {
  begin();
  unsigned d = create_device();
  create_device();
  unsigned x = create_allocations(v(d), 2, 4096, ANY);
  submit(v(d), FZ_COMMAND_FILL, 2, va(x, 0), va(x, 1));
  destroy_allocations(v(d), 0, 1, va(x, 0));
  destroy_allocations(v(d), 0, 1, va(x, 0)), then(S_IH);
  submit(v(d), FZ_COMMAND_CHECK, 1, va(x, 1));
  gpu_run(1);
  query(va(x, 1));
}

static void test_oracle_catches_wrong_prediction(void) {
  build_small_program();
  static uint32_t target = 1; /* the second create_device */
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  o.adjust_prediction = force_invalid_handle;
  o.adjust_ctx = &target;
  int rc = fz_execute(&prog, &o, &report);
  CHECK(rc == FZ_EXEC_MISMATCH, "rc %d", rc);
  CHECK(report.mismatches == 1 && report.calls_run == 2, "mismatches %u calls %u", report.mismatches, report.calls_run);
  CHECK(strstr(report.message, "alloclab oracle: call 2 create_device(): port returned STATUS_SUCCESS, "
                               "model expected STATUS_INVALID_HANDLE") != NULL,
        "message: %s", report.message);
  /* The executor is usable again afterwards. */
  CHECK(fz_execute(&prog, NULL, &report) == FZ_EXEC_OK, "clean run after a mismatch: %s", report.message);
}

static void run_with_wrong_prediction(void *arg) {
  (void)arg;
  build_small_program();
  static uint32_t target = 5; /* the stale destroy: the model is told to expect success */
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.adjust_prediction = force_invalid_handle;
  o.adjust_ctx = &target;
  target = 4; /* the valid destroy: the port says success, the model "expects" INVALID_HANDLE */
  fz_execute(&prog, &o, NULL);
}

static void test_oracle_aborts_with_message(void) {
  CHECK(dies_with(run_with_wrong_prediction, NULL,
                  "alloclab oracle: call 5 destroy_allocations(dev=v1, list=[v3.a0], flags=0): port returned "
                  "STATUS_SUCCESS, model expected STATUS_INVALID_HANDLE"),
        "no abort with the oracle's message");
  CHECK(dies_with(run_with_wrong_prediction, NULL, "v5 = destroy_allocations(dev=v1, list=[v3.a0], flags=0) = STATUS_SUCCESS"),
        "the program is not printed");
}

/* Broken ports: alloclab's with one function replaced. */
static fz_port_ops broken;
static int broken_state;
static al_handle saved_handle;

static NTSTATUS destroy_accepts_stale(al_adapter *ad, const al_destroy_allocation_args *a) {
  NTSTATUS st = al_allocation_destroy(ad, a);
  return st == STATUS_INVALID_HANDLE ? STATUS_SUCCESS : st;
}
static NTSTATUS destroy_does_nothing(al_adapter *ad, const al_destroy_allocation_args *a) {
  (void)ad;
  (void)a;
  return STATUS_SUCCESS;
}
static NTSTATUS destroy_frees_in_flight(al_adapter *ad, const al_destroy_allocation_args *a) {
  al_destroy_allocation_args copy = *a;
  copy.flags |= AL_DESTROY_ASSUME_NOT_IN_USE; /* as if the port ignored queued work */
  return al_allocation_destroy(ad, &copy);
}
static NTSTATUS create_reuses_handle(al_adapter *ad, const al_create_allocation_args *a) {
  NTSTATUS st = al_allocation_create(ad, a);
  if (st == STATUS_SUCCESS && a->out_allocations) {
    if (broken_state++ == 0) saved_handle = a->out_allocations[0];
    else a->out_allocations[0] = saved_handle; /* hands a destroyed handle's value out again */
  }
  return st;
}
static NTSTATUS wait_returns_early(al_adapter *ad, uint64_t fence, uint64_t timeout) {
  (void)ad;
  (void)fence;
  (void)timeout;
  return STATUS_SUCCESS;
}
static NTSTATUS run_does_nothing(al_adapter *ad, uint32_t n, uint32_t *out) {
  (void)ad;
  (void)n;
  if (out) *out = 0;
  return STATUS_SUCCESS;
}
static void stats_hide_deferred(al_adapter *ad, al_adapter_stats *st) {
  al_adapter_get_stats(ad, st);
  st->deferred_allocations = 0;
  st->deferred_destroys = 0;
}
static void stats_leak_binding(al_adapter *ad, al_adapter_stats *st) {
  al_adapter_get_stats(ad, st);
  if (st->allocations) st->bindings++;
}
static NTSTATUS query_wrong_fence(al_adapter *ad, al_handle h, al_allocation_info *out) {
  NTSTATUS st = al_allocation_query(ad, h, out);
  if (st == STATUS_SUCCESS && out) out->last_fence ^= 1;
  return st;
}
static bool check_fails(al_adapter *ad, char *msg, size_t cap) {
  (void)ad;
  snprintf(msg, cap, "segment heap: a free block overlaps a used one");
  return false;
}
static NTSTATUS open_skips_check(al_adapter *ad, al_handle dev, al_handle res) {
  NTSTATUS st = al_resource_open(ad, dev, res);
  return st == STATUS_INVALID_PARAMETER ? STATUS_SUCCESS : st; /* "opens" a non-shared resource */
}

typedef struct broken_case {
  const char *name;
  void (*patch)(fz_port_ops *ops);
  const char *needle;
  const char *tag; /* the message's oracle tag (what tools/triage.py puts in the signature) */
} broken_case;

static void p_destroy_stale(fz_port_ops *o) { o->allocation_destroy = destroy_accepts_stale; }
static void p_destroy_nothing(fz_port_ops *o) { o->allocation_destroy = destroy_does_nothing; }
static void p_destroy_in_flight(fz_port_ops *o) { o->allocation_destroy = destroy_frees_in_flight; }
static void p_reuse(fz_port_ops *o) { o->allocation_create = create_reuses_handle; }
static void p_wait(fz_port_ops *o) { o->fence_wait = wait_returns_early; }
static void p_run(fz_port_ops *o) { o->gpu_run = run_does_nothing; }
static void p_hide_deferred(fz_port_ops *o) { o->get_stats = stats_hide_deferred; }
static void p_leak(fz_port_ops *o) { o->get_stats = stats_leak_binding; }
static void p_query(fz_port_ops *o) { o->allocation_query = query_wrong_fence; }
static void p_check(fz_port_ops *o) { o->adapter_check = check_fails; }
static void p_check_live(fz_port_ops *o) { o->adapter_check_live = check_fails; }
static void p_open(fz_port_ops *o) { o->resource_open = open_skips_check; }

/* The program the broken ports run; first @padding devices created and destroyed, so that every
 * later call has another number and the devices other handle values. */
static void build_broken_port_program(unsigned padding) {
  begin();
  for (unsigned k = 0; k < padding; k++) destroy_device(v(create_device()));
  unsigned d = create_device(), e = create_device();
  unsigned x = create_allocations(v(d), 2, 4096, ANY);
  unsigned r = create_resource(v(d), 1, 4096, false);
  /* NOP work: after a mismatch the adapter is torn down with the broken port's damage, and
   * the GPU must not touch memory a broken destroy freed */
  submit(v(d), FZ_COMMAND_NOP, 2, va(x, 0), va(x, 1));
  destroy_allocations(v(d), 0, 1, va(x, 0));
  destroy_allocations(v(d), 0, 1, va(x, 0));
  fence_wait(lit(1)); /* the padding submits nothing: the first submit above is still fence 1 */
  create_allocations(v(d), 1, 4096, ANY);
  submit(v(d), FZ_COMMAND_NOP, 1, va(x, 1));
  gpu_run(1);
  query(va(x, 1));
  open_resource(v(e), v(r));
}

static const broken_case broken_cases[] = {
    {"accepts a stale handle", p_destroy_stale, "port returned STATUS_SUCCESS, model expected STATUS_INVALID_HANDLE",
     "[oracle:status-mismatch:success destroy_allocations]"},
    {"destroy does nothing", p_destroy_nothing, "live allocations: port",
     "[oracle:live-objects:live-allocations-port-model destroy_allocations]"},
    {"frees memory in flight", p_destroy_in_flight, "GPU work still",
     "[oracle:live-objects:bindings-port-model-at-least-a destroy_allocations]"},
    {"reuses a handle (ABA)", p_reuse, "handle reused",
     "[oracle:output-mismatch:the-port-returned-allocation-handle-a create_resource]"},
    {"fence_wait returns early", p_wait, "returned before the fence signalled",
     "[oracle:output-mismatch:fence_wait-returned-before-the-fence-signalled fence_wait]"},
    {"gpu_run runs nothing", p_run, "gpu_run(1) completed 0 submissions",
     "[oracle:output-mismatch:gpu_run-completed-submissions-were-queued gpu_run]"},
    {"hides deferred destroys", p_hide_deferred, "memory released while GPU work still references it",
     "[oracle:live-objects:deferred-allocations-port-model-at-least destroy_allocations]"},
    {"leaks a binding", p_leak, "bindings: port",
     "[oracle:live-objects:bindings-port-model-exactly-a-binding create_allocations]"},
    {"query lies", p_query, "query: last_fence", "[oracle:output-mismatch:query-last_fence-model-has query]"},
    {"invariant walk fails (the full one, at the end)", p_check, "teardown: al_adapter_check: segment heap",
     "[oracle:invariant-walk:segment-heap-a-free-block-overlaps teardown]"},
    {"invariant walk fails (the per-call one, at the first call)", p_check_live,
     "call 1 create_device(): al_adapter_check_live: segment heap",
     "[oracle:invariant-walk:segment-heap-a-free-block-overlaps create_device]"},
    {"opens a non-shared resource", p_open, "model expected STATUS_INVALID_PARAMETER",
     "[oracle:status-mismatch:success open_resource]"},
};
#define BROKEN_CASES (sizeof broken_cases / sizeof broken_cases[0])

/* Runs the broken port of @k on build_broken_port_program(@padding); the mismatch's message. */
static bool run_broken_port(size_t k, unsigned padding, char *message, size_t cap) {
  build_broken_port_program(padding);
  broken = fz_port_alloclab;
  broken_state = 0;
  broken_cases[k].patch(&broken);
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  o.port = &broken;
  int rc = fz_execute(&prog, &o, &report);
  snprintf(message, cap, "%s", report.message);
  return rc == FZ_EXEC_MISMATCH;
}

static void test_oracle_catches_broken_ports(void) {
  for (size_t k = 0; k < BROKEN_CASES; k++) {
    char message[sizeof report.message];
    bool caught = run_broken_port(k, 0, message, sizeof message);
    CHECK(caught && strstr(message, broken_cases[k].needle) != NULL,
          "broken port \"%s\" not caught as expected: %s", broken_cases[k].name, message);
  }
}

/* The message ends with the tag " [oracle:KIND OP]" naming the check and the operation, free of
 * call numbers and handles: each broken port has its own, and the same broken port found in a
 * longer program (other call numbers, other handle values) has the same one. */
static void test_oracle_tag_names_the_check_stably(void) {
  for (size_t k = 0; k < BROKEN_CASES; k++) {
    char message[sizeof report.message], padded[sizeof report.message];
    run_broken_port(k, 0, message, sizeof message);
    run_broken_port(k, 2, padded, sizeof padded);
    const char *tag = strstr(message, " [oracle:");
    const char *padded_tag = strstr(padded, " [oracle:");
    CHECK(tag && tag[strlen(tag) - 1] == ']' && strcmp(tag + 1, broken_cases[k].tag) == 0,
          "\"%s\": tag %s, expected %s", broken_cases[k].name, tag ? tag + 1 : "(none)", broken_cases[k].tag);
    CHECK(padded_tag && tag && strcmp(tag, padded_tag) == 0, "\"%s\": tag %s in a longer program, %s here",
          broken_cases[k].name, padded_tag ? padded_tag + 1 : "(none)", tag ? tag + 1 : "(none)");
    /* A program call's message names its number, which the padding moved (teardown has none). */
    bool numbered = strncmp(message, "alloclab oracle: call ", 22) == 0 &&
                    strncmp(message, "alloclab oracle: call 1 ", 24) != 0;
    CHECK(!numbered || strcmp(message, padded) != 0, "\"%s\": the longer program failed at the same call: %s",
          broken_cases[k].name, padded);
    for (size_t j = 0; j < k; j++)
      CHECK(strcmp(broken_cases[j].tag, broken_cases[k].tag) != 0, "\"%s\" and \"%s\" share the tag %s",
            broken_cases[j].name, broken_cases[k].name, broken_cases[k].tag);
  }
}

/* A port that frees memory under queued GPU work: the oracle aborts before the GPU runs it. */
static void run_freeing_port(void *arg) {
  (void)arg;
  begin();
  unsigned d = create_device();
  unsigned x = create_allocations(v(d), 2, 4096, ANY);
  submit(v(d), FZ_COMMAND_FILL, 2, va(x, 0), va(x, 1));
  destroy_allocations(v(d), 0, 1, va(x, 0));
  gpu_run(1);
  broken = fz_port_alloclab;
  broken.allocation_destroy = destroy_frees_in_flight;
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.port = &broken;
  fz_execute(&prog, &o, NULL);
}

static void test_oracle_aborts_on_free_in_flight(void) {
  CHECK(dies_with(run_freeing_port, NULL,
                  "alloclab oracle: call 4 destroy_allocations(dev=v1, list=[v2.a0], flags=0): statistics "
                  "disagree with the model: "),
        "memory freed in flight not caught by the oracle");
}

/* A port that corrupts the data the GPU writes: the sim's content check aborts. */
static NTSTATUS submit_corrupts_fill(al_adapter *ad, const al_submit_args *a) {
  if (a == NULL || a->command_size < 16 || a->command_size > 4096) return al_submit(ad, a);
  static uint8_t cmd[4096];
  memcpy(cmd, a->command, a->command_size);
  uint32_t opcode;
  memcpy(&opcode, cmd, 4);
  if (opcode == 1u) cmd[12] ^= 0x5A; /* SIM_CMD_FILL: the pattern's first byte */
  al_submit_args copy = *a;
  copy.command = cmd;
  return al_submit(ad, &copy);
}

static void run_corrupting_port(void *arg) {
  (void)arg;
  begin();
  unsigned d = create_device();
  unsigned x = create_allocations(v(d), 1, 4096, ANY);
  submit(v(d), FZ_COMMAND_FILL, 1, va(x, 0));
  submit(v(d), FZ_COMMAND_CHECK, 1, va(x, 0));
  gpu_run(2);
  broken = fz_port_alloclab;
  broken.submit = submit_corrupts_fill;
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.port = &broken;
  fz_execute(&prog, &o, NULL);
}

static void test_gpu_content_check_catches_corruption(void) {
  if (strcmp(al_selected_miniport.name, "sim") != 0) return;
  CHECK(dies_with(run_corrupting_port, NULL, "content check failed"), "corrupted contents not caught");
}

/* COPY: list[0]'s first bytes onto list[1]; the CHECKs that follow read what the model says the
 * copy left (the source's pattern, or nothing to check when the copy covered part of it). */
static void copy_program(void) {
  begin();
  unsigned d = create_device();
  unsigned x = create_allocations(v(d), 2, 4096, ANY);
  unsigned small = create_allocations(v(d), 1, 16, ANY);
  submit(v(d), FZ_COMMAND_FILL, 2, va(x, 0), va(x, 1));              /* two different patterns */
  submit(v(d), FZ_COMMAND_FILL, 1, va(small, 0));
  submit(v(d), FZ_COMMAND_COPY, 2, va(x, 0), va(x, 1));              /* x1 now holds x0's */
  submit(v(d), FZ_COMMAND_CHECK, 2, va(x, 1), va(x, 0));
  submit(v(d), FZ_COMMAND_COPY, 2, va(small, 0), va(x, 0));          /* 16 of 64 bytes: mixed */
  submit(v(d), FZ_COMMAND_CHECK, 2, va(x, 0), va(x, 1));             /* only x1 is checked */
  submit(v(d), FZ_COMMAND_COPY, 2, va(x, 1), va(small, 0));          /* covers all 16 bytes */
  submit(v(d), FZ_COMMAND_CHECK, 1, va(small, 0));
  gpu_run(FZ_COUNT_OVER_MAXIMUM);
}

static void test_copy_runs_clean(void) {
  copy_program();
  submit(v(1), FZ_COMMAND_COPY, 1, va(2, 0));
  if (strcmp(al_selected_miniport.name, "sim") == 0) then(S_IP); /* onto itself: overlapping */
  submit(v(1), FZ_COMMAND_COPY, 2, va(2, 0), va(2, 0)), then(S_IP);    /* duplicates */
  submit(v(1), FZ_COMMAND_COPY, 2, va(2, 0), lit(0xdead0001)), then(S_IH);
  submit(v(1), FZ_COMMAND_COPY, 0);                                   /* no command at all */
  submit(v(1), FZ_COMMAND_COPY, 3, va(2, 1), va(2, 0), va(3, 0));      /* extra entries: listed only */
  submit(v(1), FZ_COMMAND_CHECK, 1, va(2, 0));
  gpu_run(FZ_COUNT_OVER_MAXIMUM);
  RUN();
  /* Successful copies: the program's 3 and the one with extra entries (+ the self copy that a
   * miniport reading no commands takes). */
  unsigned want_copies = strcmp(al_selected_miniport.name, "sim") == 0 ? 4u : 5u;
  CHECK(report.gpu_copies == want_copies && report.gpu_checks == 5, "copies %u checks %u", report.gpu_copies,
        report.gpu_checks);
}

/* A port that loses the copy (its stream's COPY becomes a NOP of the same length): the GPU then
 * holds what a model that forgot the copy would predict, and the next CHECK fails. */
static NTSTATUS submit_drops_copy(al_adapter *ad, const al_submit_args *a) {
  if (a == NULL || a->command_size < 8 || a->command_size > 4096) return al_submit(ad, a);
  static uint8_t cmd[4096];
  memcpy(cmd, a->command, a->command_size);
  uint32_t opcode, nop = 0;
  memcpy(&opcode, cmd, 4);
  if (opcode == 2u) memcpy(cmd, &nop, 4); /* SIM_CMD_COPY -> SIM_CMD_NOP, payload skipped */
  al_submit_args copy = *a;
  copy.command = cmd;
  return al_submit(ad, &copy);
}

static void run_copy_dropping_port(void *arg) {
  (void)arg;
  copy_program();
  broken = fz_port_alloclab;
  broken.submit = submit_drops_copy;
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.port = &broken;
  fz_execute(&prog, &o, NULL);
}

static void test_lost_copy_caught(void) {
  if (strcmp(al_selected_miniport.name, "sim") != 0) return;
  CHECK(dies_with(run_copy_dropping_port, NULL, "content check failed"), "a lost copy not caught");
}

/* Alignment: creates that ask for one are placed at multiples of it (every query checks all
 * live allocations); alignments no miniport takes are refused. */
static void align_program(void) {
  begin();
  unsigned d = create_device();
  unsigned x = create_allocations(v(d), 2, 4096, ANY);
  align(65536);
  unsigned r = create_resource(v(d), 1, 8192, false);
  align(1u << 20);
  add_to_resource(v(d), v(r), 1, 4096), align(16384);
  unsigned y = create_allocations(v(d), 1, 4096, FZ_PLACEMENT_APERTURE_ONLY);
  align(8192);
  create_allocations(v(d), 1, 4096, ANY), align(3u * 4096u), then(S_IP);       /* no power of two */
  create_allocations(v(d), 1, 4096, ANY), align(1u << 27), then(S_IP);         /* above every maximum */
  create_allocations(v(d), 1, 4096, ANY), align(1u);                           /* below the page */
  submit(v(d), FZ_COMMAND_FILL, 3, va(x, 0), va(x, 1), va(y, 0));
  submit(v(d), FZ_COMMAND_CHECK, 3, va(x, 0), va(x, 1), va(y, 0));
  gpu_run(FZ_COUNT_OVER_MAXIMUM);
  query(va(x, 1));
  query(va(r, 0));
}

static void test_align_runs_clean(void) {
  align_program();
  RUN();
}

/* A port that places an aligned allocation one page off (as its query reports it). */
static NTSTATUS query_misaligned(al_adapter *ad, al_handle h, al_allocation_info *out) {
  NTSTATUS st = al_allocation_query(ad, h, out);
  if (st == STATUS_SUCCESS && out != NULL && out->segment_id != 0 && out->segment_offset % 65536u == 0)
    out->segment_offset += 4096u;
  return st;
}

static void test_misaligned_placement_caught(void) {
  align_program();
  broken = fz_port_alloclab;
  broken.allocation_query = query_misaligned;
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  o.port = &broken;
  CHECK(fz_execute(&prog, &o, &report) == FZ_EXEC_MISMATCH && strstr(report.message, "not a multiple of"),
        "a misaligned placement not caught: %s", report.message);
}

/* create_device(info=1): al_device_create_with_info, its info checked by the model. */
static void info_program(void) {
  begin();
  unsigned d = create_device();
  last()->info = true;
  create_device(), hostile(FZ_HOSTILE_NULL_ARGS), then(S_IP);
  last()->info = true;
  unsigned x = create_allocations(v(d), 1, 4096, ANY);
  submit(v(d), FZ_COMMAND_FILL, 1, va(x, 0));
  create_device();
  last()->info = true;
  gpu_run(1);
}

static void test_device_info_runs_clean(void) {
  info_program();
  RUN();
}

/* Ports that break al_device_create_with_info's promise. */
static NTSTATUS info_ignored(al_adapter *ad, al_handle *out_device, DXGK_DEVICEINFO *out_info) {
  (void)out_info;
  return al_device_create(ad, out_device);
}
static NTSTATUS info_written_on_failure(al_adapter *ad, al_handle *out_device, DXGK_DEVICEINFO *out_info) {
  NTSTATUS st = al_device_create_with_info(ad, out_device, out_info);
  if (st != STATUS_SUCCESS && out_info != NULL) memset(out_info, 0, sizeof *out_info);
  return st;
}

static void test_device_info_broken_ports_caught(void) {
  static const struct {
    NTSTATUS (*fn)(al_adapter *, al_handle *, DXGK_DEVICEINFO *);
    const char *needle;
  } cases[] = {{info_ignored, "left the info's DmaBufferSize unwritten"},
               {info_written_on_failure, "failed but wrote the info's DmaBufferSize"}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    info_program();
    broken = fz_port_alloclab;
    broken.device_create_with_info = cases[k].fn;
    fz_exec_options o;
    fz_exec_options_default(&o);
    o.return_on_mismatch = true;
    o.port = &broken;
    CHECK(fz_execute(&prog, &o, &report) == FZ_EXEC_MISMATCH && strstr(report.message, cases[k].needle),
          "case %zu not caught: %s", k, report.message);
  }
}

/* The sim's hardware walk (sim_miniport_check_hardware) as the executor runs it: a port whose
 * walk counts its runs (passing on to the real one) or fails from its n-th run on. */
static unsigned hardware_runs, hardware_full_runs, hardware_fail_from;
static bool hardware_run(bool passed, char *msg, size_t cap) {
  hardware_runs++;
  if (hardware_fail_from && hardware_runs >= hardware_fail_from) {
    snprintf(msg, cap, "segment 1 (memory) has 0x2000 bytes committed, the allocations placed in it 0x1000");
    return false;
  }
  return passed;
}
static bool hardware_check_counted(al_adapter *ad, char *msg, size_t cap) {
  hardware_full_runs++;
  return hardware_run(fz_port_alloclab.hardware_check(ad, msg, cap), msg, cap);
}
static bool hardware_check_live_counted(al_adapter *ad, char *msg, size_t cap) {
  return hardware_run(fz_port_alloclab.hardware_check_live(ad, msg, cap), msg, cap);
}

/* create_device, create_allocations, submit, query, destroy_allocations with work queued,
 * gpu_run, fence_wait: the hardware walk follows four of them (submit, the destroy, gpu_run,
 * fence_wait), not the creates or the query. */
static void build_hardware_program(void) {
  begin();
  unsigned d = create_device();
  unsigned x = create_allocations(v(d), 2, 4096, ANY);
  unsigned f = submit(v(d), FZ_COMMAND_FILL, 2, va(x, 0), va(x, 1));
  query(va(x, 0));
  destroy_allocations(v(d), 0, 1, va(x, 0)); /* deferred: the fill still runs */
  gpu_run(1);
  fence_wait(v(f));
}

static int run_hardware_program(bool each_call, unsigned fail_from) {
  build_hardware_program();
  broken = fz_port_alloclab;
  broken.hardware_check = hardware_check_counted;
  broken.hardware_check_live = hardware_check_live_counted;
  hardware_runs = hardware_full_runs = 0;
  hardware_fail_from = fail_from;
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  o.check_adapter_each_call = each_call;
  o.port = &broken;
  return fz_execute(&prog, &o, &report);
}

static void test_hardware_walk(void) {
  if (strcmp(al_selected_miniport.name, "sim") != 0) return; /* the sim's walk only */
  int rc = run_hardware_program(true, 0);
  CHECK(rc == FZ_EXEC_OK, "a sound run fails the real hardware walk: %s", report.message);
  /* the live walk after submit, the destroy (work queued), gpu_run, fence_wait and teardown's
   * own fence_wait; the whole walk at the end of the program and after teardown */
  CHECK(hardware_runs == 7 && hardware_full_runs == 2,
        "the hardware walk ran %u times (%u whole) after every call, expected 7 (2)", hardware_runs,
        hardware_full_runs);
  rc = run_hardware_program(false, 0);
  CHECK(rc == FZ_EXEC_OK && hardware_runs == 2 && hardware_full_runs == 2,
        "the hardware walk ran %u times (%u whole) without per-call checks, expected 2 (end of program, after "
        "teardown)", hardware_runs, hardware_full_runs);

  const struct {
    bool each_call;
    unsigned fail_from;
    const char *message, *tag;
  } cases[] = {
      {true, 1, "alloclab oracle: call 3 submit(dev=v1, list=[v2.a0, v2.a1], command=fill): sim_miniport_check_hardware (live): "
                "segment 1 (memory) has 0x2000 bytes committed",
       "[oracle:hardware-walk:segment-memory-has-bytes-committed-the submit]"},
      {true, 2, "call 5 destroy_allocations(", "[oracle:hardware-walk:segment-memory-has-bytes-committed-the destroy_allocations]"},
      {true, 5, "alloclab oracle: end of program: sim_miniport_check_hardware: segment 1",
       "[oracle:hardware-walk:segment-memory-has-bytes-committed-the end-of-program]"},
      {false, 2, "alloclab oracle: teardown: sim_miniport_check_hardware: segment 1",
       "[oracle:hardware-walk:segment-memory-has-bytes-committed-the teardown]"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    rc = run_hardware_program(cases[k].each_call, cases[k].fail_from);
    const char *tag = strstr(report.message, " [oracle:");
    CHECK(rc == FZ_EXEC_MISMATCH && strstr(report.message, cases[k].message) != NULL,
          "failing hardware walk (run %u): expected \"%s\", got rc %d: %s", cases[k].fail_from, cases[k].message, rc,
          report.message);
    CHECK(tag && strcmp(tag + 1, cases[k].tag) == 0, "failing hardware walk (run %u): tag %s, expected %s",
          cases[k].fail_from, tag ? tag + 1 : "(none)", cases[k].tag);
  }
}

/* ---- main --------------------------------------------------------------------------------- */

/* The close/destroy scenario with long lists: a shared resource of 1024 allocations on three
 * devices, device-owned ones, GPU work pending, and every hostile list shape through ranges. The
 * port's DDI verifier checks the close/destroy rules on each call. */
static void test_long_lists(void) {
  begin();
  segment_size = 16u << 20;
  unsigned a = create_device(), b = create_device(), c = create_device();
  unsigned r = create_resource(v(a), 1024, 4096, true);
  open_resource(v(b), v(r));
  open_resource(v(c), v(r));
  unsigned own = create_allocations(v(c), 300, 4096, ANY);
  submit(v(b), FZ_COMMAND_FILL, 1, vr(r, 0, 1023));                         /* fence pending */
  submit(v(c), FZ_COMMAND_FILL, 2, vr(own, 0, 299), vr(r, 1000, 1023));
  destroy_allocations(v(c), 0, 2, vr(own, 0, 149), vr(own, 100, 199)), then(S_IP); /* overlap */
  destroy_allocations(v(c), 0, 2, vr(own, 0, 149), vr(own, 0, 149)), then(S_IP);  /* twice */
  destroy_allocations(v(c), 0, 1, vr(own, 0, 300)), then(S_IH);             /* one past the end */
  destroy_allocations(v(c), 0, 1, vr(own, 0, 299)), hostile(FZ_HOSTILE_COUNT_PLUS_ONE), then(S_IH);
  destroy_allocations(v(c), 0, 0), hostile(FZ_HOSTILE_COUNT_MINUS_ONE), then(S_IP); /* 0 - 1 */
  destroy_allocations(v(c), 0, 2, vr(r, 0, 1023), va(r, 0)), then(S_IP);     /* 1025 entries */
  destroy_allocations(v(c), 0, 2, vr(own, 0, 9), va(r, 5)), then(ANY_STATUS); /* mixed owners */
  destroy_allocations(v(a), 0, 1, vr(own, 0, 9)), then(S_IH);               /* foreign */
  destroy_allocations(v(c), 0, 1, vr(own, 0, 300)), hostile(FZ_HOSTILE_COUNT_MINUS_ONE); /* ok */
  destroy_allocations(v(c), 0, 1, vr(own, 0, 299)), then(S_IH);             /* stale */
  destroy_resource(v(b), v(r), 0);                  /* b's bindings close behind its fill */
  destroy_resource(v(c), v(r), AL_DESTROY_SYNCHRONOUS);
  destroy_allocations(v(a), 0, 1, vr(r, 0, 511));   /* a holds it alone: a partial destroy */
  destroy_allocations(v(a), 0, 1, vr(r, 511, 1023)), then(S_IH);           /* a511 is stale */
  destroy_device(v(a));                             /* the rest goes with DestroyResource */
  gpu_run(8);
  RUN();
  CHECK(report.gpu_fills == 1024 + 300 + 24, "fills: %u", report.gpu_fills);
  segment_size = 0;
}

/* The program of test_deferred_destroy with its gpu_run, on the engine @threaded asks for. */
static void deferred_destroy_program(bool threaded) {
  begin();
  prog.threaded_engine = threaded;
  unsigned a = create_device();
  unsigned x = create_allocations(v(a), 4, 8192, ANY);
  unsigned r = create_resource(v(a), 2, 8192, false);
  submit(v(a), FZ_COMMAND_FILL, 4, va(x, 0), va(x, 1), va(x, 2), va(x, 3));
  unsigned f = submit(v(a), FZ_COMMAND_FILL, 2, va(r, 0), va(r, 1));
  destroy_allocations(v(a), 0, 2, va(x, 0), va(x, 1)); /* pending fences: deferred (as a rule) */
  submit(v(a), FZ_COMMAND_CHECK, 2, va(x, 2), va(r, 1));
  destroy_resource(v(a), v(r), 0);
  unsigned x2 = create_allocations(v(a), 4, 8192, ANY);
  submit(v(a), FZ_COMMAND_FILL, 4, va(x2, 0), va(x2, 1), va(x2, 2), va(x2, 3));
  gpu_run(1); /* deterministic: runs one; threaded: none */
  destroy_allocations(v(a), AL_DESTROY_SYNCHRONOUS, 1, va(x, 2));
  fence_wait(v(f));
  submit(v(a), FZ_COMMAND_FILL, 1, va(x2, 0));
  destroy_allocations(v(a), AL_DESTROY_ASSUME_NOT_IN_USE, 1, va(x2, 0));
  submit(v(a), FZ_COMMAND_CHECK, 3, va(x2, 1), va(x2, 2), va(x2, 3));
  destroy_device(v(a)); /* with work queued */
}

/* A threaded program runs clean, every time (timing must not change a verdict), on the engine
 * it asked for: gpu_run ran nothing (a deterministic engine runs one submission there). (How
 * many waits the executor adds depends on timing: none where the engine thread was faster.) */
static void test_threaded_engine_runs_clean(void) {
  deferred_destroy_program(false);
  if (!RUN()) return;
  CHECK(!report.threaded_engine && report.gpu_run_completed == 1, "deterministic: gpu_run ran %u",
        report.gpu_run_completed);
  for (int round = 0; round < 50 && failures == 0; round++) {
    deferred_destroy_program(true);
    if (!RUN()) return;
    CHECK(report.threaded_engine, "the report names the engine");
    CHECK(report.gpu_run_completed == 0, "gpu_run ran %u submissions: not the threaded engine",
          report.gpu_run_completed);
  }
  /* The text form selects it too. */
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  int rc = fz_execute_text("options(engine=threaded)\nv1 = create_device()\nv2 = create_allocations(dev=v1, n=1, "
                           "size=4096, placement=any)\nv3 = submit(dev=v1, list=[v2.a0], command=fill)\n"
                           "v4 = gpu_run(n=1)\n",
                           &o, &report);
  CHECK(rc == FZ_EXEC_OK && report.threaded_engine && report.gpu_run_completed == 0, "text: rc %d %s", rc,
        report.message);
}

/* A port whose gpu_run claims to have run work on a threaded engine: the model holds it to the
 * contract (out_completed 0). */
static NTSTATUS gpu_run_claims_one(al_adapter *ad, uint32_t max_submissions, uint32_t *out_completed) {
  NTSTATUS st = al_gpu_run(ad, max_submissions, out_completed);
  if (out_completed) *out_completed = 1;
  return st;
}

static void test_threaded_gpu_run_claim_caught(void) {
  begin();
  prog.threaded_engine = true;
  unsigned d = create_device();
  unsigned x = create_allocations(v(d), 1, 4096, ANY);
  submit(v(d), FZ_COMMAND_FILL, 1, va(x, 0));
  gpu_run(1);
  broken = fz_port_alloclab;
  broken.gpu_run = gpu_run_claims_one;
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  o.port = &broken;
  int rc = fz_execute(&prog, &o, &report);
  CHECK(rc == FZ_EXEC_MISMATCH && strstr(report.message, "on a threaded engine completed 1"), "rc %d: %s", rc,
        report.message);
}

/* A threaded program arms none of its fault requests (the engine thread reaches fault points
 * in an order that depends on timing): a fault that fails the first create on the deterministic
 * engine changes nothing on the threaded one. */
static void test_threaded_program_arms_no_fault(void) {
  if (strcmp(al_selected_miniport.name, "sim") != 0) return;
  for (int threaded = 0; threaded < 2; threaded++) {
    begin();
    prog.threaded_engine = threaded != 0;
    prog.fault_count = 1;
    prog.faults[0].point = FAULT_DRIVER_OBJECT;
    prog.faults[0].nth = 1;
    prog.faults[0].repeat = FAULT_REPEAT_FOREVER;
    create_device();
    then(threaded ? S_OK : STATUS_NO_MEMORY);
    if (!RUN()) return;
    CHECK(report.faults_injected == (threaded ? 0u : 1u), "threaded %d: %u injected failures", threaded,
          report.faults_injected);
  }
}

int main(int argc, char **argv) {
  static const test_case tests[] = {
      {"devices", test_devices},
      {"create_errors", test_create_errors},
      {"resources", test_resources},
      {"destroy_allocations_errors", test_destroy_allocations_errors},
      {"submit_and_fences", test_submit_and_fences},
      {"shared_resource_outlives_creator", test_shared_resource_outlives_creator},
      {"deferred_destroy", test_deferred_destroy},
      {"threaded_engine_runs_clean", test_threaded_engine_runs_clean},
      {"threaded_gpu_run_claim_caught", test_threaded_gpu_run_claim_caught},
      {"threaded_program_arms_no_fault", test_threaded_program_arms_no_fault},
      {"stale_handles_after_many_reuses", test_stale_handles_after_many_reuses},
      {"device_destroy_with_live_objects", test_device_destroy_with_live_objects},
      {"empty_resources", test_empty_resources},
      {"unknown_op_is_skipped", test_unknown_op_is_skipped},
      {"memory_pressure", test_memory_pressure},
      {"faults_every_point", test_faults_every_point},
      {"device_removed", test_device_removed},
      {"wrong_answers", test_wrong_answers},
      {"wrong_answer_undo_under_host_failure", test_wrong_answer_undo_under_host_failure},
      {"bring_up_faults", test_bring_up_faults},
      {"bring_up_failure_checks", test_bring_up_failure_checks},
      {"adapter_teardown", test_adapter_teardown},
      {"damage_every_kind_is_caught", test_damage_every_kind_is_caught},
      {"damage_verdicts", test_damage_verdicts},
      {"execute_text", test_execute_text},
      {"oracle_catches_wrong_prediction", test_oracle_catches_wrong_prediction},
      {"oracle_aborts_with_message", test_oracle_aborts_with_message},
      {"oracle_catches_broken_ports", test_oracle_catches_broken_ports},
      {"oracle_tag_names_the_check_stably", test_oracle_tag_names_the_check_stably},
      {"oracle_aborts_on_free_in_flight", test_oracle_aborts_on_free_in_flight},
      {"gpu_content_check_catches_corruption", test_gpu_content_check_catches_corruption},
      {"copy_runs_clean", test_copy_runs_clean},
      {"lost_copy_caught", test_lost_copy_caught},
      {"align_runs_clean", test_align_runs_clean},
      {"misaligned_placement_caught", test_misaligned_placement_caught},
      {"device_info_runs_clean", test_device_info_runs_clean},
      {"device_info_broken_ports_caught", test_device_info_broken_ports_caught},
      {"hardware_walk", test_hardware_walk},
      {"random_programs", test_random_programs},
      {"known_divergence_deferred_release", test_idle_allocation_released_behind_a_deferred_one},
      {"long_lists", test_long_lists},
      {"speed", test_speed},
  };
  const char *filter = argc > 1 ? argv[1] : NULL;
  int ran = 0;
  for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++) {
    if (filter && strstr(tests[k].name, filter) == NULL) continue;
    current = tests[k].name;
    int before = failures;
    tests[k].fn();
    fprintf(stderr, "%s %s\n", failures == before ? "PASS" : "FAIL", tests[k].name);
    ran++;
  }
  fz_execute_release_thread_context();
  fprintf(stderr, "%d tests, %d failures (miniport \"%s\")\n", ran, failures, al_selected_miniport.name);
  return failures ? 1 : 0;
}
