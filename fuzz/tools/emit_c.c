/*
 * emit_c.c — write a fuzz input out as a standalone C program that makes the same calls through
 * the public API (alloclab.h, the selected miniport's descriptor) and checks what the oracle
 * checked, so a crash can be read, debugged and attached to a bug without the fuzzing code.
 *
 *   emit_c [--keep-faults] [--build-command CMD] INPUT OUT.c      (program targets)
 *   emit_c --private-data [--build-command CMD] INPUT OUT.c       (private_data inputs)
 *
 * Program targets: INPUT is decoded into a program (alloclab/fuzz/input.h; its fault requests
 * dropped, as ddi_sequence does, unless --keep-faults, as fault_injection does) and run once by
 * the executor (alloclab/fuzz/execute.h) with its default options, through a recording port:
 * every port call the executor makes — the program's calls and its implicit ones (the adapter
 * bring-up, pre-waits before ASSUME_NOT_IN_USE destroys, the end-of-program teardown) — is
 * written as the same call with the same argument values (private data and command streams as
 * byte arrays, handles as variables holding what the port returned). After each call come the
 * oracle's checks, with the model's expectations written in as constants: the status must be in
 * the predicted set (the wider one after an injected failure during the call, the wrong-answer
 * one after a wrong answer of the miniport, as the program's injector counts them), new handles
 * non-zero and never repeated; then the call's outputs keep the
 * rules fz_model_commit checks (alloclab/fuzz/model.h fz_model_output_rules, which the model
 * gives for the call and checks itself, so the rule lives there; the program's
 * expect_outputs() compares, in the model's order and with its words): al_fence_submitted()
 * unchanged, or a successful submit's fence above the last one and then al_fence_submitted();
 * al_fence_completed() never back from the last value seen and never above the submitted one;
 * a successful gpu_run's *out_completed exactly the model's count and the last fence it ran
 * signalled; fence_wait, destroy_device and a synchronous destroy returning after the fence
 * they wait for; a query's resource, owner and last fence exact, its placed size between the
 * request and the page-rounded request (a bound, as in the model), its offset aligned, its
 * segment one the allocation may occupy, the range inside it; create_device's info all written
 * on success, untouched on failure. Handles and fences in these rules are written as the
 * variables that hold what the port returned and the last completed fence is the one the program
 * saw, so these rules fix none of the recorded run's own values (the fence arguments of
 * fence_wait and the fences in the statistics' counts still are the recorded ones, as
 * the deterministic engine makes them). After a successful
 * query, the executor's overlap check (execute.c check_overlap): the same queries of the other
 * live allocations, each must succeed, lie at a multiple of its alignment and not overlap the
 * queried one in its segment. Then the adapter's statistics equal to the model's counts,
 * deferred-destroy count rules included (fz_model_counts: deferred_destroys must be 0 when
 * nothing may wait for a fence, non-zero when something must), al_adapter_check() must pass;
 * at the end the adapter must be empty (unless options(teardown=adapter) leaves the live
 * devices to al_adapter_destroy) and the sim's process-wide totals back to where they were. A
 * failed check prints the oracle's message ("alloclab oracle: call 3 ...: port returned X, model
 * expected Y (...)", "...: port returned STATUS_SUCCESS, but query: ...") without the executor's
 * " [oracle:...]" tag and aborts. With the sim, the program runs the sim's hardware walk
 * (sim_miniport_check_hardware, alloclab/hw/sim_miniport.h) where the executor ran it: the
 * live form after GPU-related calls, the whole walk at the end of the program and of the
 * teardown. So every finding of the executor's run of a sequential program fails the program
 * the same way, except those of damage ops (below). The run happens in a child process, so an abort or a sanitizer report during it
 * (a crash in the port, the verifier, a GPU fault) still leaves a program: it ends with the
 * last call whose block was complete before the crash.
 *
 * --private-data: INPUT is raw SIM_ALLOCATION_DATA (the private_data target); the program
 * creates one device-owned allocation with those bytes on the target's two adapter
 * configurations (verifier on), destroys it, and checks the adapter is empty and consistent.
 *
 * The program includes alloclab/alloclab.h, alloclab/status.h, alloclab/hw/miniport.h, and
 * with the sim alloclab/hw/sim_miniport.h (+ alloclab/hw/fault_injection.h with faults). CMD,
 * when given, is written into its header comment as the way to build it.
 * Prints one line saying what it wrote and how the run went. Exits 0 when the program was
 * written and the run agreed with the model, 3 when it was written and the run failed (the
 * program fails the same way), 1 when INPUT cannot be read or decoded, is a threaded program
 * (options(engine=threaded): the checks written in would fix one run's timing of the engine
 * thread), or OUT.c cannot be written (nothing is left at OUT.c), 2 on a usage error. A damage
 * op (program.h "Damage": a test of the oracle's walks, not a port call) is left out of the
 * written program, with a comment; the header and the summary line say how many were.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloclab/fuzz/execute.h"
#include "alloclab/fuzz/input.h"
#include "alloclab/fuzz/model.h"
#include "alloclab/hw/fault_injection.h"
#include "alloclab/hw/miniport.h"
#include "alloclab/hw/sim_miniport.h"
#include "alloclab/status.h"
#include "fuzz/common/text.h"
#include "fuzz/tools/read_file.h"

#define NO_CALL UINT32_MAX
#define MAX_NAMES (FZ_MAX_CALLS * (FZ_MAX_LIST + 1))

/* ---- Recording state (the child process) -------------------------------------------------- */

static struct {
  FILE *body;              /* the statements of main() */
  const fz_program *p;
  bool sim;
  bool faults_on;
  uint32_t call;           /* the program call the next port call belongs to, or NO_CALL */
  char where[600];         /* its text in messages: "call 3 destroy_allocations(...)" or a label */
  bool pending;            /* a prediction is waiting for its call */
  fz_prediction pred;
  char reason[256];
  uint32_t blobs;          /* byte arrays written */
  uint32_t implicit_serial;/* names of implicit calls' outputs */
  uint32_t name_count;
  struct {
    al_handle value;
    char name[48];
  } names[MAX_NAMES];
  /* The block of the last call stays open until its output checks are written (the outputs
   * are its locals); what each call declared there: */
  bool block_open;
  bool has_info;        /* al_allocation_info info (query) */
  bool has_device_info; /* DXGK_DEVICEINFO info (create_device with info) */
  bool has_completed;   /* uint32_t completed (gpu_run) */
  char fence_var[24];   /* the submit's fence variable, or "" */
  uint64_t fence_value; /* and what the port wrote there */
  /* Fences the port handed out, named by the variable that holds them. */
  uint32_t fence_count;
  struct {
    uint64_t value;
    char name[24];
  } fences[FZ_MAX_CALLS];
} rec;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void close_block(void);
static void out(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(rec.body, fmt, ap);
  va_end(ap);
}

/* Writes @s as a C string literal. */
static void write_cstr(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch == '\n') fputs("\\n", f);
    else if (ch < 0x20 || ch >= 0x7F) fprintf(f, "\\%03o", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

/* The expression for a handle value passed to the port: the variable that holds what the port
 * returned (stale or not), 0, or the literal (a hostile value the program made up). */
static const char *handle_expr(al_handle v, char *buf, size_t cap) {
  /* Every caller's buffer holds a literal; names are returned in place. */
  if (v == 0) return "0";
  for (uint32_t k = rec.name_count; k-- > 0;)
    if (rec.names[k].value == v) return rec.names[k].name;
  snprintf(buf, cap, "0x%08" PRIx32 "u", v);
  return buf;
}

static void name_handle(al_handle v, const char *name) {
  if (rec.name_count == MAX_NAMES) return;
  rec.names[rec.name_count].value = v;
  snprintf(rec.names[rec.name_count].name, sizeof rec.names[0].name, "%s", name);
  rec.name_count++;
}

/* The prefix of the variables a call's outputs go to: "v3" for program call 2 (as in the text
 * form), "implicit1" for an implicit call. */
static const char *output_prefix(char *buf, size_t cap) {
  close_block(); /* its declarations go before the call's block */
  if (rec.call != NO_CALL) snprintf(buf, cap, "v%u", rec.call + 1);
  else snprintf(buf, cap, "implicit%u", ++rec.implicit_serial);
  return buf;
}

/* Writes @size bytes at @data as a static array (at most once per pointer and size within one
 * call: @seen) and returns its name in @name. */
typedef struct blob_seen {
  const void *data;
  uint32_t size;
  char name[24];
} blob_seen;

static const char *blob_expr(const void *data, uint32_t size, blob_seen *seen, uint32_t *nseen, char *name,
                             size_t cap) {
  if (data == NULL) return "NULL";
  for (uint32_t k = 0; k < *nseen; k++)
    if (seen[k].data == data && seen[k].size == size) return seen[k].name;
  snprintf(name, cap, "bytes%u", ++rec.blobs);
  const uint8_t *b = data;
  bool zero = true;
  for (uint32_t k = 0; k < size && zero; k++) zero = b[k] == 0;
  if (zero) {
    out("    static const uint8_t %s[%u]; /* all zero */\n", name, size ? size : 1u);
  } else {
    out("    static const uint8_t %s[%u] = {", name, size);
    for (uint32_t k = 0; k < size; k++) out("%s0x%02x,", k % 16 ? " " : "\n        ", b[k]);
    out("\n    };\n");
  }
  if (*nseen < 8) {
    seen[*nseen].data = data;
    seen[*nseen].size = size;
    snprintf(seen[*nseen].name, sizeof seen[0].name, "%s", name);
    (*nseen)++;
  }
  return name;
}

/* A list of handles as a local array named @name: the @count entries the executor passed (a
 * range such as v2.a0..a511 passes all of them; trailing zeros are left to the initializer), or
 * one 0 when @count is 0 or above AL_MAX_ALLOCATIONS_PER_CALL (the port must read none of it:
 * an array of a hostile count's size would not fit on any stack). */
static void list_decl(const char *name, const al_handle *list, uint32_t count) {
  uint32_t given = count <= AL_MAX_ALLOCATIONS_PER_CALL ? count : 0;
  uint32_t size = given ? given : 1u;
  while (given > 0 && list[given - 1] == 0) given--;
  out("    al_handle %s[%u] = {", name, size);
  char buf[24];
  for (uint32_t j = 0; j < given; j++)
    out("%s%s", j == 0 ? "" : j % 8 ? ", " : ",\n        ", handle_expr(list[j], buf, sizeof buf));
  if (given == 0) out("0");
  out("};\n");
}

static void block_end(void) {
  out("  }\n");
  rec.block_open = false;
  fflush(rec.body);
}

/* The call's block is left open for the checks of its outputs (observe_outputs,
 * observe_overlap_query); whatever comes next closes it. */
static void block_defer(void) { rec.block_open = true; }

static void close_block(void) {
  if (rec.block_open) block_end();
}

/* The expression for a fence value in a check: the variable of the submit that handed it out
 * (the latest one, were a value repeated), or the literal. */
static const char *fence_expr(uint64_t v, char *buf, size_t cap) {
  for (uint32_t k = rec.fence_count; k-- > 0;)
    if (rec.fences[k].value == v) return rec.fences[k].name;
  snprintf(buf, cap, "%" PRIu64 "u", v);
  return buf;
}

/* Before a port call: closes the last call's block, opens its own and, with faults, notes the
 * injector's count. */
static void call_begin(const char *comment) {
  close_block();
  rec.has_info = rec.has_device_info = rec.has_completed = false;
  rec.fence_var[0] = '\0';
  out("  /* %s */\n  {\n", comment);
  if (rec.faults_on) out("    uint64_t failures_before = failures_total();\n    wrong_answers_before = wrong_answers_total();\n");
}

/* After it: the status check against the pending prediction, and closes the block. Flushes, so
 * that what was written survives a crash in the next call. */
static void call_end(void) {
  if (rec.pending) {
    char allowed[200], faulted[200], wrong[200];
    fz_status_set_format(rec.pred.allowed, allowed, sizeof allowed);
    fz_status_set_format(rec.pred.allowed_if_faulted, faulted, sizeof faulted);
    fz_status_set_format(rec.pred.allowed_if_wrong_answer, wrong, sizeof wrong);
    out("    expect_status(");
    write_cstr(rec.body, rec.where);
    out(", st, 0x%xu, ", rec.pred.allowed);
    write_cstr(rec.body, allowed);
    out(", 0x%xu, ", rec.pred.allowed_if_faulted);
    write_cstr(rec.body, faulted);
    out(",\n                  0x%xu, ", rec.pred.allowed_if_wrong_answer);
    write_cstr(rec.body, wrong);
    out(", ");
    write_cstr(rec.body, rec.reason);
    out(", %s);\n", rec.faults_on ? "failures_total() != failures_before, wrong_answers_total() != wrong_answers_before"
                                   : "false, false");
    rec.pending = false;
  }
}

static void expect_new(const char *what, const char *expr) {
  out("    expect_new_handle(");
  write_cstr(rec.body, rec.where);
  out(", \"%s\", %s);\n", what, expr);
}

/* ---- The recording port ------------------------------------------------------------------- */

/* arm_fault() lines for the program's fault requests made at bring-up (@at_bring_up) or after. */
static void emit_fault_requests(bool at_bring_up) {
  const fz_program *p = rec.p;
  for (uint32_t f = 0; f < p->fault_count && f < 4u; f++) {
    enum fault_point point;
    uint32_t id = p->faults[f].point & ~FZ_FAULT_AT_BRING_UP;
    if (!fault_injector_point_from_id(id, &point) || ((p->faults[f].point & FZ_FAULT_AT_BRING_UP) != 0) != at_bring_up)
      continue;
    out("    arm_fault(%" PRIu32 "u, %" PRIu32 "u, %" PRIu32 "u);\n", id, p->faults[f].nth ? p->faults[f].nth : 1u,
        p->faults[f].repeat);
  }
}

static NTSTATUS rec_adapter_create(const al_adapter_config *config, al_adapter **out_adapter) {
  SIM_HARDWARE_CONFIG hw;
  rec.faults_on = rec.sim && config->hardware_config_size == sizeof hw &&
                  (memcpy(&hw, config->hardware_config, sizeof hw), hw.Faults != NULL);
  call_begin("the adapter, as the executor brings it up (small segments, deterministic engine)");
  out("    al_hardware_request request = {.memory_segment_size = %" PRIu64 "u, .aperture_segment_size = %" PRIu64
      "u,\n                                   .memory_page_size = 0, .threaded_engine = false};\n",
      (uint64_t)FZ_EXEC_DEFAULT_MEMORY_SEGMENT_SIZE, (uint64_t)FZ_EXEC_DEFAULT_APERTURE_SEGMENT_SIZE);
  out("    static _Alignas(8) uint8_t hw[1024];\n"
      "    uint32_t hw_size = al_selected_miniport.make_hardware_config(&request, hw, sizeof hw);\n"
      "    if (hw_size != %zuu) fail(\"setup\", \"make_hardware_config wrote %%u bytes, %zu when the program was "
      "recorded\", hw_size);\n",
      config->hardware_config_size, config->hardware_config_size);
  if (rec.faults_on) {
    out("    SIM_HARDWARE_CONFIG sim_config;\n"
        "    memcpy(&sim_config, hw, sizeof sim_config);\n"
        "    sim_config.Faults = &injector;\n"
        "    memcpy(hw, &sim_config, sizeof sim_config);\n");
  }
  out("    al_adapter_config config = {.driver_entry = al_selected_miniport.driver_entry, .hardware_config = hw,\n"
      "                                .hardware_config_size = hw_size, .flags = 0x%xu};\n",
      config->flags);
  if (rec.faults_on) {
    out("    /* The program's fault requests marked at=bring_up, armed before bring-up; every host\n"
        "     * allocation of the port, the sim and the GPU counts as point host_allocation. */\n");
    emit_fault_requests(true);
    out("    al_testing_set_host_alloc_fault(&host_fault);\n");
  }
  out("    NTSTATUS st = al_adapter_create(&config, &adapter);\n");
  NTSTATUS recorded = fz_port_alloclab.adapter_create(config, out_adapter);
  if (rec.faults_on && recorded == STATUS_NO_MEMORY && *out_adapter == NULL) {
    /* The executor accepts this end only after an injected failure: the program ends here,
     * and the sim's totals must be back (checked at the end of main). */
    out("    al_testing_set_host_alloc_fault(NULL);\n"
        "    if (st != STATUS_NO_MEMORY || adapter != NULL || failures_total() == failures_before)\n"
        "      fail(\"setup\", \"bring-up should have failed with STATUS_NO_MEMORY after an injected failure, as "
        "recorded: it returned %%s\", al_status_name(st));\n"
        "    printf(\"adapter bring-up failed as recorded (an injected failure): no call runs\\n\");\n");
    block_end();
    return recorded;
  }
  out("    if (st != STATUS_SUCCESS || adapter == NULL)\n"
      "      fail(\"setup\", \"al_adapter_create over \\\"%%s\\\" returned %%s\", al_selected_miniport.name, "
      "al_status_name(st));\n");
  if (rec.faults_on) {
    out("    (void)failures_before; /* a failure bring-up survived changes nothing */\n"
        "    /* The program's other fault requests, armed after bring-up. */\n");
    emit_fault_requests(false);
  }
  block_end();
  return recorded;
}

static void rec_adapter_destroy(al_adapter *adapter) {
  call_begin("the adapter goes (its verifier checks the miniport's live objects)");
  out("    al_adapter_destroy(adapter);\n    adapter = NULL;\n");
  /* The destroy cannot fail, so call_begin's count is not compared (-Wunused-variable). */
  if (rec.faults_on) out("    (void)failures_before;\n    al_testing_set_host_alloc_fault(NULL);\n");
  block_end();
  fz_port_alloclab.adapter_destroy(adapter);
}

/* al_device_create, or al_device_create_with_info when @out_info is not NULL. */
static NTSTATUS rec_device_create_with_info(al_adapter *adapter, al_handle *out_device, DXGK_DEVICEINFO *out_info) {
  char prefix[24];
  output_prefix(prefix, sizeof prefix);
  if (out_device) out("  al_handle %s = 0;\n", prefix);
  call_begin(rec.where);
  const char *amp = out_device ? "&" : "", *device = out_device ? prefix : "NULL";
  NTSTATUS st;
  if (out_info) {
    out("    DXGK_DEVICEINFO info;\n    memset(&info, 0x%02x, sizeof info);\n", FZ_MODEL_INFO_SENTINEL_BYTE);
    rec.has_device_info = true;
    out("    NTSTATUS st = al_device_create_with_info(adapter, %s%s, &info);\n", amp, device);
    st = fz_port_alloclab.device_create_with_info(adapter, out_device, out_info);
  } else {
    out("    NTSTATUS st = al_device_create(adapter, %s%s);\n", amp, device);
    st = fz_port_alloclab.device_create(adapter, out_device);
  }
  call_end();
  if (st == STATUS_SUCCESS && out_device) {
    expect_new("device", prefix);
    name_handle(*out_device, prefix);
  }
  block_defer();
  return st;
}

static NTSTATUS rec_device_create(al_adapter *adapter, al_handle *out_device) {
  return rec_device_create_with_info(adapter, out_device, NULL);
}

static NTSTATUS rec_device_destroy(al_adapter *adapter, al_handle device) {
  char buf[24];
  call_begin(rec.where);
  out("    NTSTATUS st = al_device_destroy(adapter, %s);\n", handle_expr(device, buf, sizeof buf));
  NTSTATUS st = fz_port_alloclab.device_destroy(adapter, device);
  call_end();
  block_defer();
  return st;
}

static NTSTATUS rec_allocation_create(al_adapter *adapter, const al_create_allocation_args *a) {
  char prefix[24], outs[40], buf[24], name[48];
  output_prefix(prefix, sizeof prefix);
  snprintf(outs, sizeof outs, "%s_a", prefix);
  if (a) {
    out("  al_handle %s_a[%u] = {0};\n", prefix, a->allocation_count ? a->allocation_count : 1u);
    if (a->out_resource) out("  al_handle %s = 0;\n", prefix);
  }
  call_begin(rec.where);
  if (a == NULL) {
    out("    NTSTATUS st = al_allocation_create(adapter, NULL);\n");
  } else {
    blob_seen seen[8];
    uint32_t nseen = 0, n = a->allocation_count;
    if (a->allocations) {
      out("    static al_allocation_desc descs[%u];\n", n ? n : 1u);
      for (uint32_t j = 0; j < n;) {
        uint32_t k = j + 1;
        while (k < n && a->allocations[k].private_data == a->allocations[j].private_data &&
               a->allocations[k].private_data_size == a->allocations[j].private_data_size)
          k++;
        const char *data = blob_expr(a->allocations[j].private_data, a->allocations[j].private_data_size, seen, &nseen,
                                     name, sizeof name);
        out("    for (uint32_t j = %u; j < %u; j++) descs[j] = (al_allocation_desc){%s, %" PRIu32 "u};\n", j, k, data,
            a->allocations[j].private_data_size);
        j = k;
      }
    }
    char rname[24];
    const char *rdata =
        blob_expr(a->resource_private_data, a->resource_private_data_size, seen, &nseen, rname, sizeof rname);
    out("    al_create_allocation_args args = {\n"
        "        .device = %s,\n",
        handle_expr(a->device, buf, sizeof buf));
    out("        .resource = %s,\n", handle_expr(a->resource, buf, sizeof buf));
    out("        .flags = 0x%" PRIx32 "u,\n"
        "        .resource_private_data = %s,\n"
        "        .resource_private_data_size = %" PRIu32 "u,\n"
        "        .allocation_count = %" PRIu32 "u,\n"
        "        .allocations = %s,\n"
        "        .out_allocations = %s,\n"
        "        .out_resource = %s%s,\n"
        "    };\n"
        "    NTSTATUS st = al_allocation_create(adapter, &args);\n",
        a->flags, rdata, a->resource_private_data_size, n, a->allocations ? "descs" : "NULL",
        a->out_allocations ? outs : "NULL", a->out_resource ? "&" : "", a->out_resource ? prefix : "NULL");
  }
  NTSTATUS st = fz_port_alloclab.allocation_create(adapter, a);
  call_end();
  if (st == STATUS_SUCCESS && a) {
    if (a->out_resource) {
      expect_new("resource", prefix);
      name_handle(*a->out_resource, prefix);
    }
    if (a->out_allocations && a->allocation_count <= FZ_MAX_LIST) {
      for (uint32_t j = 0; j < a->allocation_count; j++) {
        snprintf(name, sizeof name, "%s_a[%u]", prefix, j);
        expect_new("allocation", name);
        name_handle(a->out_allocations[j], name);
      }
    }
  }
  block_defer();
  return st;
}

static NTSTATUS rec_resource_open(al_adapter *adapter, al_handle device, al_handle resource) {
  char b1[24], b2[24];
  call_begin(rec.where);
  out("    NTSTATUS st = al_resource_open(adapter, %s, %s);\n", handle_expr(device, b1, sizeof b1),
      handle_expr(resource, b2, sizeof b2));
  NTSTATUS st = fz_port_alloclab.resource_open(adapter, device, resource);
  call_end();
  block_defer();
  return st;
}

static NTSTATUS rec_allocation_destroy(al_adapter *adapter, const al_destroy_allocation_args *a) {
  char buf[24];
  call_begin(rec.where);
  if (a == NULL) {
    out("    NTSTATUS st = al_allocation_destroy(adapter, NULL);\n");
  } else {
    if (a->allocations) list_decl("list", a->allocations, a->allocation_count);
    out("    al_destroy_allocation_args args = {\n"
        "        .device = %s,\n",
        handle_expr(a->device, buf, sizeof buf));
    out("        .resource = %s,\n", handle_expr(a->resource, buf, sizeof buf));
    out("        .allocations = %s,\n"
        "        .allocation_count = %" PRIu32 "u,\n"
        "        .flags = 0x%" PRIx32 "u,\n"
        "    };\n"
        "    NTSTATUS st = al_allocation_destroy(adapter, &args);\n",
        a->allocations ? "list" : "NULL", a->allocation_count, a->flags);
  }
  NTSTATUS st = fz_port_alloclab.allocation_destroy(adapter, a);
  call_end();
  block_defer();
  return st;
}

static NTSTATUS rec_submit(al_adapter *adapter, const al_submit_args *a) {
  char buf[24], prefix[24], name[24];
  output_prefix(prefix, sizeof prefix);
  if (a && a->out_fence) out("  uint64_t %s = 0; /* the fence */\n", prefix);
  call_begin(rec.where);
  if (a && a->out_fence) snprintf(rec.fence_var, sizeof rec.fence_var, "%s", prefix);
  if (a == NULL) {
    out("    NTSTATUS st = al_submit(adapter, NULL);\n");
  } else {
    blob_seen seen[8];
    uint32_t nseen = 0;
    if (a->allocations) list_decl("list", a->allocations, a->allocation_count);
    const char *command = blob_expr(a->command, a->command_size, seen, &nseen, name, sizeof name);
    out("    al_submit_args args = {\n"
        "        .device = %s,\n"
        "        .allocations = %s,\n"
        "        .allocation_count = %" PRIu32 "u,\n"
        "        .command = %s,\n"
        "        .command_size = %" PRIu32 "u,\n"
        "        .out_fence = %s%s,\n"
        "    };\n"
        "    NTSTATUS st = al_submit(adapter, &args);\n",
        handle_expr(a->device, buf, sizeof buf), a->allocations ? "list" : "NULL", a->allocation_count, command,
        a->command_size, a->out_fence ? "&" : "", a->out_fence ? prefix : "NULL");
  }
  NTSTATUS st = fz_port_alloclab.submit(adapter, a);
  if (a && a->out_fence) rec.fence_value = *a->out_fence;
  call_end();
  block_defer();
  return st;
}

static NTSTATUS rec_fence_wait(al_adapter *adapter, uint64_t fence, uint64_t timeout_ns) {
  call_begin(rec.where);
  out("    NTSTATUS st = al_fence_wait(adapter, %" PRIu64 "u, %s);\n", fence,
      timeout_ns == UINT64_MAX ? "UINT64_MAX" : "0");
  if (timeout_ns != UINT64_MAX && timeout_ns != 0) out("    /* timeout %" PRIu64 " ns */\n", timeout_ns);
  NTSTATUS st = fz_port_alloclab.fence_wait(adapter, fence, timeout_ns);
  call_end();
  block_defer();
  return st;
}

static NTSTATUS rec_gpu_run(al_adapter *adapter, uint32_t max_submissions, uint32_t *out_completed) {
  call_begin(rec.where);
  if (out_completed) {
    out("    uint32_t completed = 0;\n");
    rec.has_completed = true;
  }
  out("    NTSTATUS st = al_gpu_run(adapter, %" PRIu32 "u, %s);\n", max_submissions,
      out_completed ? "&completed" : "NULL");
  NTSTATUS st = fz_port_alloclab.gpu_run(adapter, max_submissions, out_completed);
  call_end();
  block_defer();
  return st;
}

static NTSTATUS rec_allocation_query(al_adapter *adapter, al_handle allocation, al_allocation_info *info) {
  /* The oracle's own queries (the overlap check after a query) are not program calls. */
  if (!rec.pending) return fz_port_alloclab.allocation_query(adapter, allocation, info);
  char buf[24];
  call_begin(rec.where);
  if (info) {
    out("    al_allocation_info info;\n");
    rec.has_info = true;
  }
  out("    NTSTATUS st = al_allocation_query(adapter, %s, %s);\n", handle_expr(allocation, buf, sizeof buf),
      info ? "&info" : "NULL");
  NTSTATUS st = fz_port_alloclab.allocation_query(adapter, allocation, info);
  call_end();
  block_defer();
  return st;
}

/* The sim's hardware walk (the executor runs it after GPU-related calls, live form, and at the
 * end of the program and of its teardown, whole): written where it ran, with the executor's words
 * for its place, so a hardware-walk finding fails the program as it failed the run. */
static bool rec_hardware_walk(al_adapter *adapter, bool live, char *msg, size_t cap) {
  close_block();
  /* A whole walk runs at the end of the program, then (as the last check) in the teardown. */
  if (!live && strcmp(rec.where, "teardown") != 0) snprintf(rec.where, sizeof rec.where, "end of program");
  out("  expect_hardware_walk(");
  write_cstr(rec.body, rec.where);
  out(", %s);\n", live ? "true" : "false");
  fflush(rec.body);
  return live ? fz_port_alloclab.hardware_check_live(adapter, msg, cap)
              : fz_port_alloclab.hardware_check(adapter, msg, cap);
}
static bool rec_hardware_check(al_adapter *adapter, char *msg, size_t cap) {
  return rec_hardware_walk(adapter, false, msg, cap);
}
static bool rec_hardware_check_live(al_adapter *adapter, char *msg, size_t cap) {
  return rec_hardware_walk(adapter, true, msg, cap);
}

/* ---- Observers ---------------------------------------------------------------------------- */

static void observe_prediction(void *ctx, uint32_t call, const char *label, const fz_prediction *pr) {
  (void)ctx;
  rec.call = call;
  if (call == NO_CALL) {
    snprintf(rec.where, sizeof rec.where, "%s", label ? label : "implicit call");
  } else {
    char text[512];
    fz_format_call(text, sizeof text, rec.p, call);
    const char *eq = strstr(text, " = ");
    snprintf(rec.where, sizeof rec.where, "call %u %s", call + 1, eq && text[0] == 'v' ? eq + 3 : text);
  }
  rec.pred = *pr;
  snprintf(rec.reason, sizeof rec.reason, "%s", pr->reason ? pr->reason : "");
  rec.pending = true;
}

static const char *wait_name(fz_model_wait wait) {
  switch (wait) {
  case FZ_MODEL_WAIT_DESTROY_DEVICE: return "WAIT_DESTROY_DEVICE";
  case FZ_MODEL_WAIT_SYNCHRONOUS_DESTROY: return "WAIT_SYNCHRONOUS_DESTROY";
  case FZ_MODEL_WAIT_GPU_RUN: return "WAIT_GPU_RUN";
  case FZ_MODEL_WAIT_FENCE_WAIT: return "WAIT_FENCE_WAIT";
  case FZ_MODEL_WAIT_NONE: break;
  }
  return "WAIT_NONE";
}

/* After a call whose status the model allowed: its output rules (fz_model_output_rules_for, what
 * fz_model_commit checks) as an output_rules constant, checked by expect_outputs() in the call's
 * block. Handles and fences are written as the variables that hold them. A successful submit's
 * fence is named after its check (the check compares it with the fences before it). */
static void observe_outputs(void *ctx, uint32_t call, const char *label, NTSTATUS status,
                            const fz_model_output_rules *e) {
  (void)ctx, (void)call, (void)label;
  if (!rec.block_open) return; /* not a recorded port call */
  char b1[24], b2[24];
  out("    static const output_rules rules = {\n");
  if (e->submit_fence) out("        .submit_fence = true,\n");
  if (e->wait != FZ_MODEL_WAIT_NONE)
    out("        .wait = %s, .wait_count = %" PRIu32 "u,\n", wait_name(e->wait), e->wait_count);
  if (e->check_gpu_completed)
    out("        .check_gpu_completed = true, .gpu_threaded = %s, .gpu_completed = %" PRIu32 "u, .gpu_queued = %" PRIu32
        "u,\n",
        e->gpu_threaded ? "true" : "false", e->gpu_completed, e->gpu_queued);
  if (e->check_query) {
    out("        .check_query = true, .size_min = %" PRIu64 "u, .size_max = %" PRIu64 "u, .size_page_rounded = %s,\n"
        "        .align = %" PRIu32 "u, .placement = %" PRIu32 "u, .segment_count = %" PRIu32 "u,\n"
        "        .segments = {",
        e->size_min, e->size_max, e->size_page_rounded ? "true" : "false", e->align, e->placement, e->segment_count);
    for (uint32_t k = 0; k < e->segment_count && k < DXGK_MAX_SEGMENTS; k++)
      out("%s{%" PRIu32 "u, %" PRIu64 "u, %s}", k ? ", " : "", e->segments[k].id, e->segments[k].size,
          e->segments[k].possible ? "true" : "false");
    out("},\n");
  }
  if (e->check_device_info) out("        .check_device_info = true,\n");
  out("    };\n");
  /* The values that are the port's own (fences handed out, handles): variables, set at run time. */
  out("    output_values values = {.fence_submitted_before = %s",
      fence_expr(e->fence_submitted_before, b1, sizeof b1));
  if (e->wait != FZ_MODEL_WAIT_NONE) out(", .wait_fence = %s", fence_expr(e->wait_fence, b2, sizeof b2));
  if (e->check_query) {
    out(",\n                            .resource = %s", handle_expr(e->resource, b1, sizeof b1));
    out(", .owner_device = %s", handle_expr(e->owner_device, b1, sizeof b1));
    out(", .last_fence = %s", fence_expr(e->last_fence, b1, sizeof b1));
  }
  out("};\n    expect_outputs(");
  write_cstr(rec.body, rec.where);
  out(", st, &rules, &values, %s, %s, %s, %s);\n", rec.fence_var[0] ? rec.fence_var : "0",
      rec.has_completed ? "completed" : "0", rec.has_info ? "&info" : "NULL", rec.has_device_info ? "&info" : "NULL");
  if (status == STATUS_SUCCESS && e->submit_fence && rec.fence_var[0] && rec.fence_count < FZ_MAX_CALLS) {
    rec.fences[rec.fence_count].value = rec.fence_value;
    snprintf(rec.fences[rec.fence_count].name, sizeof rec.fences[0].name, "%s", rec.fence_var);
    rec.fence_count++;
  }
}

/* Before each of the oracle's own queries after a successful query (execute.c check_overlap):
 * the same query, and the same alignment and overlap checks. */
static void observe_overlap_query(void *ctx, uint32_t call, const char *label, al_handle queried, al_handle other,
                                  uint32_t other_align) {
  (void)ctx, (void)call, (void)label;
  if (!rec.block_open || !rec.has_info) return;
  char b1[24], b2[24];
  out("    expect_no_overlap(");
  write_cstr(rec.body, rec.where);
  out(", &info, %s, %s, %" PRIu32 "u);\n", handle_expr(queried, b1, sizeof b1), handle_expr(other, b2, sizeof b2),
      other_align);
}

static void observe_check(void *ctx, uint32_t call, const char *label, const fz_model_counts *e, bool walk) {
  (void)ctx;
  close_block();
  if (call != NO_CALL && call != rec.call) { /* no port call was predicted: a damage op, left out */
    char text[512];
    fz_format_call(text, sizeof text, rec.p, call);
    const char *eq = strstr(text, " = ");
    snprintf(rec.where, sizeof rec.where, "after call %u %s (left out)", call + 1, eq && text[0] == 'v' ? eq + 3 : text);
    rec.call = call;
    out("  /* call %u: %s, left out: a damage op tests the oracle's walks, not the port */\n", call + 1,
        eq && text[0] == 'v' ? eq + 3 : text);
  }
  /* Program calls: rec.where is already the call's text; the teardown check has its label. */
  if (call == NO_CALL && label && strcmp(label, "teardown") == 0) {
    snprintf(rec.where, sizeof rec.where, "teardown");
    out("  expect_empty();\n");
  }
  if (e) {
    out("  expect_stats(");
    write_cstr(rec.body, rec.where);
    out(", (const expected_counts){%" PRIu32 "u, %" PRIu32 "u, %" PRIu32 "u, %" PRIu32 "u, %" PRIu32 "u, %" PRIu32
        "u, %" PRIu32 "u, %" PRIu64 "u, %" PRIu64 "u, %" PRIu64 "u, %s, %s, %" PRIu32 "u});\n",
        e->devices, e->resources, e->allocations, e->bindings_min, e->bindings_max, e->deferred_min, e->deferred_max,
        e->fence_submitted, e->fence_completed, e->segment_bytes_max, e->deferred_destroys_allowed ? "true" : "false",
        e->deferred_destroys_required ? "true" : "false", e->bindings_waiting);
  }
  if (walk) {
    out("  expect_adapter_check(");
    write_cstr(rec.body, rec.where);
    out(");\n");
  }
  fflush(rec.body);
}

/* ---- The program around the recorded calls ------------------------------------------------ */

static void write_header(FILE *f, const char *input, const char *what, const char *build, const char *outcome) {
  fprintf(f, "/*\n * Generated by fuzz/tools:emit_c from %s (%s).\n", input, what);
  fprintf(f,
          " * A standalone program: the same calls through the public API (alloclab.h and the selected\n"
          " * miniport's descriptor), with the oracle's checks written in. No fuzzing code, no input file.\n"
          " * When recorded: %s\n",
          outcome);
  if (build && build[0]) fprintf(f, " * Build and run:\n *   %s\n", build);
  fprintf(f, " */\n");
  fprintf(f,
          "#include <stdarg.h>\n#include <stdbool.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
          "#include <string.h>\n\n#include \"alloclab/alloclab.h\"\n#include \"alloclab/hw/miniport.h\"\n"
          "#include \"alloclab/status.h\"\n");
}

static const char program_helpers[] =
    "\n"
    "/* Not every program uses every check. */\n"
    "#define UNUSED_OK __attribute__((unused))\n"
    "\n"
    "static al_adapter *adapter;\n"
    "\n"
    "/* A failed check: the oracle's message, then abort (as the fuzz target does). */\n"
    "__attribute__((noreturn, format(printf, 2, 3))) static void fail(const char *where, const char *fmt, ...) {\n"
    "  va_list ap;\n"
    "  fprintf(stderr, \"alloclab oracle: %s: \", where);\n"
    "  va_start(ap, fmt);\n"
    "  vfprintf(stderr, fmt, ap);\n"
    "  va_end(ap);\n"
    "  fprintf(stderr, \"\\n\");\n"
    "  fflush(stderr);\n"
    "  abort();\n"
    "}\n"
    "\n"
    "/* The statuses of the model's sets, by bit (alloclab/fuzz/model.h fz_status_set). */\n"
    "static const NTSTATUS status_bits[] = {STATUS_SUCCESS, STATUS_INVALID_PARAMETER, STATUS_INVALID_HANDLE,\n"
    "                                       STATUS_NO_MEMORY, STATUS_NO_VIDEO_MEMORY, STATUS_DEVICE_REMOVED,\n"
    "                                       STATUS_TIMEOUT, STATUS_GRAPHICS_DRIVER_MISMATCH};\n"
    "\n"
    "/* @st must be in the set the model predicted: the wider one when an injected failure happened\n"
    " * (@faulted), the wrong-answer one when the miniport answered a DDI wrongly (@wrong). */\n"
    "static UNUSED_OK void expect_status(const char *where, NTSTATUS st, uint32_t allowed, const char *allowed_text,\n"
    "                          uint32_t allowed_if_faulted, const char *faulted_text,\n"
    "                          uint32_t allowed_if_wrong, const char *wrong_text, const char *reason,\n"
    "                          bool faulted, bool wrong) {\n"
    "  uint32_t set = wrong ? allowed_if_wrong : faulted ? allowed_if_faulted : allowed;\n"
    "  for (uint32_t b = 0; b < sizeof status_bits / sizeof status_bits[0]; b++)\n"
    "    if (status_bits[b] == st && (set & (1u << b))) return;\n"
    "  fail(where, \"port returned %s, model expected %s (%s)%s\", al_status_name(st),\n"
    "       wrong ? wrong_text : faulted ? faulted_text : allowed_text, reason,\n"
    "       wrong     ? \" [the miniport answered wrongly during the call]\"\n"
    "       : faulted ? \" [an injected failure happened during the call]\"\n"
    "                 : \"\");\n"
    "}\n"
    "\n"
    "/* Every handle the port returns is non-zero and new within the program. */\n"
    "static al_handle seen_handles[4096];\n"
    "static uint32_t seen_count;\n"
    "static UNUSED_OK void expect_new_handle(const char *where, const char *what, al_handle h) {\n"
    "  if (h == 0) fail(where, \"port returned STATUS_SUCCESS, but the port returned 0 as a %s handle\", what);\n"
    "  for (uint32_t k = 0; k < seen_count; k++)\n"
    "    if (seen_handles[k] == h)\n"
    "      fail(where, \"port returned STATUS_SUCCESS, but the port returned %s handle 0x%08x, a value it \"\n"
    "                  \"already gave in this program\", what, h);\n"
    "  if (seen_count < sizeof seen_handles / sizeof seen_handles[0]) seen_handles[seen_count++] = h;\n"
    "}\n"
    "\n"
    "/* What the model said the statistics must show after the call (fz_model_counts). */\n"
    "typedef struct expected_counts {\n"
    "  uint32_t devices, resources, allocations, bindings_min, bindings_max, deferred_min, deferred_max;\n"
    "  uint64_t fence_submitted, fence_completed, segment_bytes_max;\n"
    "  bool deferred_destroys_allowed, deferred_destroys_required;\n"
    "  uint32_t bindings_waiting;\n"
    "} expected_counts;\n"
    "\n"
    "#define STATS_FAIL(...) fail(where, \"statistics disagree with the model: \" __VA_ARGS__)\n"
    "static UNUSED_OK void expect_stats(const char *where, expected_counts c) {\n"
    "  al_adapter_stats st;\n"
    "  al_adapter_get_stats(adapter, &st);\n"
    "  if (st.devices != c.devices) STATS_FAIL(\"live devices: port %u, model %u\", st.devices, c.devices);\n"
    "  if (st.resources != c.resources) STATS_FAIL(\"live resources: port %u, model %u\", st.resources, c.resources);\n"
    "  if (st.allocations != c.allocations)\n"
    "    STATS_FAIL(\"live allocations: port %u, model %u\", st.allocations, c.allocations);\n"
    "  if (st.bindings < c.bindings_min)\n"
    "    STATS_FAIL(\"bindings: port %u, model at least %u (a binding closed while its device's GPU work still \"\n"
    "               \"uses it)\", st.bindings, c.bindings_min);\n"
    "  if (st.bindings > c.bindings_max)\n"
    "    STATS_FAIL(\"bindings: port %u, model %s %u (a binding leaked)\", st.bindings,\n"
    "               c.bindings_min == c.bindings_max ? \"exactly\" : \"at most\", c.bindings_max);\n"
    "  if (st.deferred_allocations < c.deferred_min)\n"
    "    STATS_FAIL(\"deferred allocations: port %u, model at least %u (memory released while GPU work still \"\n"
    "               \"references it)\", st.deferred_allocations, c.deferred_min);\n"
    "  if (st.deferred_allocations > c.deferred_max)\n"
    "    STATS_FAIL(\"deferred allocations: port %u, model at most %u (a deferred destroy that should be \"\n"
    "               \"released, or a leak)\", st.deferred_allocations, c.deferred_max);\n"
    "  if (!c.deferred_destroys_allowed && st.deferred_destroys != 0)\n"
    "    STATS_FAIL(\"deferred destroys: port %u with nothing that may wait for a fence\", st.deferred_destroys);\n"
    "  if (c.deferred_destroys_required && st.deferred_destroys == 0)\n"
    "    STATS_FAIL(\"deferred destroys: port 0 while %u allocations / %u bindings must wait for a fence\",\n"
    "               c.deferred_min, c.bindings_waiting);\n"
    "  if (st.fence_submitted != c.fence_submitted)\n"
    "    STATS_FAIL(\"fence_submitted: port %llu, model %llu\", (unsigned long long)st.fence_submitted,\n"
    "               (unsigned long long)c.fence_submitted);\n"
    "  if (st.fence_completed < c.fence_completed || st.fence_completed > st.fence_submitted)\n"
    "    STATS_FAIL(\"fence_completed: port %llu, model at least %llu\", (unsigned long long)st.fence_completed,\n"
    "               (unsigned long long)c.fence_completed);\n"
    "  uint64_t used = 0;\n"
    "  for (uint32_t s = 0; s < st.segment_count && s < DXGK_MAX_SEGMENTS; s++) {\n"
    "    if (st.segments[s].used_bytes > st.segments[s].size)\n"
    "      STATS_FAIL(\"segment %u: %llu bytes used of %llu\", st.segments[s].id,\n"
    "                 (unsigned long long)st.segments[s].used_bytes, (unsigned long long)st.segments[s].size);\n"
    "    used += st.segments[s].used_bytes;\n"
    "  }\n"
    "  if (used > c.segment_bytes_max)\n"
    "    STATS_FAIL(\"segments hold %llu bytes, the live and deferred allocations at most %llu (memory leaked)\",\n"
    "               (unsigned long long)used, (unsigned long long)c.segment_bytes_max);\n"
    "}\n"
    "\n"
    "static UNUSED_OK void expect_adapter_check(const char *where) {\n"
    "  char msg[1024];\n"
    "  if (!al_adapter_check(adapter, msg, sizeof msg)) fail(where, \"al_adapter_check: %s\", msg);\n"
    "}\n"
    "\n"
    "/* After every device was destroyed and the GPU drained, nothing may be left. */\n"
    "static UNUSED_OK void expect_empty(void) {\n"
    "  al_adapter_stats st;\n"
    "  al_adapter_get_stats(adapter, &st);\n"
    "  const char *what = NULL;\n"
    "  if (st.devices || st.resources || st.allocations || st.bindings) what = \"objects are left\";\n"
    "  else if (st.deferred_allocations || st.deferred_destroys) what = \"deferred destroys are left\";\n"
    "  for (uint32_t s = 0; what == NULL && s < st.segment_count && s < DXGK_MAX_SEGMENTS; s++)\n"
    "    if (st.segments[s].used_bytes || st.segments[s].live_blocks) what = \"segment memory is left\";\n"
    "  if (what)\n"
    "    fail(\"teardown\", \"%s after every device was destroyed and the GPU drained: devices %u resources %u \"\n"
    "         \"allocations %u bindings %u deferred %u/%u\", what, st.devices, st.resources, st.allocations,\n"
    "         st.bindings, st.deferred_destroys, st.deferred_allocations);\n"
    "}\n";

/* The checks of a call's outputs (fz_model_output_rules) and the overlap check after a query,
 * in programs of program targets. */
static const char output_helpers[] =
    "\n"
    "/* Why a successful call bounds al_fence_completed() from below (fz_model_wait). */\n"
    "enum { WAIT_NONE, WAIT_DESTROY_DEVICE, WAIT_SYNCHRONOUS_DESTROY, WAIT_GPU_RUN, WAIT_FENCE_WAIT };\n"
    "\n"
    "/* The model's rules for a call's outputs (fz_model_output_rules), the constant part. */\n"
    "typedef struct output_rules {\n"
    "  bool submit_fence;\n"
    "  int wait;\n"
    "  uint32_t wait_count;\n"
    "  bool check_gpu_completed, gpu_threaded;\n"
    "  uint32_t gpu_completed, gpu_queued;\n"
    "  bool check_query;\n"
    "  uint64_t size_min, size_max;\n"
    "  bool size_page_rounded;\n"
    "  uint32_t align, placement, segment_count;\n"
    "  struct {\n"
    "    uint32_t id;\n"
    "    uint64_t size;\n"
    "    bool possible;\n"
    "  } segments[DXGK_MAX_SEGMENTS];\n"
    "  bool check_device_info;\n"
    "} output_rules;\n"
    "\n"
    "/* The rules' values that are the port's own (fences it handed out, handles), from variables. */\n"
    "typedef struct output_values {\n"
    "  uint64_t fence_submitted_before, wait_fence, last_fence;\n"
    "  al_handle resource, owner_device;\n"
    "} output_values;\n"
    "\n"
    "/* al_fence_completed() never goes back: the last value seen after a call. */\n"
    "static uint64_t completed_seen;\n"
    "\n"
    "#define OUTPUT_FAIL(...) (snprintf(msg, sizeof msg, __VA_ARGS__), failed = true)\n"
    "\n"
    "/* The outputs of a call whose status was allowed keep the model's rules (fz_model_commit): the\n"
    " * first broken one fails with the oracle's words. @fence: a submit's *out_fence; @gpu_completed:\n"
    " * gpu_run's *out_completed; @info: a query's; @device_info: create_device's with info. */\n"
    "static UNUSED_OK void expect_outputs(const char *where, NTSTATUS st, const output_rules *e, const output_values *v,\n"
    "                                     uint64_t fence, uint32_t gpu_completed, const al_allocation_info *info,\n"
    "                                     const DXGK_DEVICEINFO *device_info) {\n"
    "  char msg[512];\n"
    "  bool failed = false;\n"
    "  uint64_t submitted = al_fence_submitted(adapter), completed = al_fence_completed(adapter);\n"
    "  uint64_t want_submitted = v->fence_submitted_before;\n"
    "  bool success = st == STATUS_SUCCESS;\n"
    "  if (success && e->submit_fence) {\n"
    "    if (fence <= v->fence_submitted_before)\n"
    "      OUTPUT_FAIL(\"submit handed out fence %llu, not above the last one (%llu)\", (unsigned long long)fence,\n"
    "                  (unsigned long long)v->fence_submitted_before);\n"
    "    else\n"
    "      want_submitted = fence;\n"
    "  }\n"
    "  if (success && !failed && e->check_gpu_completed && gpu_completed != e->gpu_completed) {\n"
    "    if (e->gpu_threaded)\n"
    "      OUTPUT_FAIL(\"gpu_run(%u) on a threaded engine completed %u submissions (it runs none)\", e->wait_count,\n"
    "                  gpu_completed);\n"
    "    else\n"
    "      OUTPUT_FAIL(\"gpu_run(%u) completed %u submissions, %u were queued\", e->wait_count, gpu_completed,\n"
    "                  e->gpu_queued);\n"
    "  }\n"
    "  if (success && !failed && e->wait != WAIT_NONE && completed < v->wait_fence) {\n"
    "    unsigned long long f = v->wait_fence, c = completed;\n"
    "    if (e->wait == WAIT_DESTROY_DEVICE)\n"
    "      OUTPUT_FAIL(\"destroy_device returned before the device's work completed (fence %llu, completed %llu)\", f, c);\n"
    "    else if (e->wait == WAIT_SYNCHRONOUS_DESTROY)\n"
    "      OUTPUT_FAIL(\"a synchronous destroy returned before fence %llu signalled (completed %llu)\", f, c);\n"
    "    else if (e->wait == WAIT_GPU_RUN)\n"
    "      OUTPUT_FAIL(\"gpu_run(%u) left fence %llu unsignalled (completed %llu)\", e->wait_count, f, c);\n"
    "    else\n"
    "      OUTPUT_FAIL(\"fence_wait(%llu) returned before the fence signalled (completed %llu)\", f, c);\n"
    "  }\n"
    "  if (success && !failed && e->check_query && info != NULL) {\n"
    "    const al_allocation_info *in = info;\n"
    "    if (in->resource != v->resource)\n"
    "      OUTPUT_FAIL(\"query: resource 0x%08x, model has 0x%08x\", in->resource, v->resource);\n"
    "    else if (in->owner_device != v->owner_device)\n"
    "      OUTPUT_FAIL(\"query: owner_device 0x%08x, model has 0x%08x\", in->owner_device, v->owner_device);\n"
    "    else if (in->last_fence != v->last_fence)\n"
    "      OUTPUT_FAIL(\"query: last_fence %llu, model has %llu\", (unsigned long long)in->last_fence,\n"
    "                  (unsigned long long)v->last_fence);\n"
    "    else if (in->size < e->size_min)\n"
    "      OUTPUT_FAIL(\"query: placed size %llu below the requested %llu\", (unsigned long long)in->size,\n"
    "                  (unsigned long long)e->size_min);\n"
    "    else if (e->size_page_rounded && in->size > e->size_max)\n"
    "      OUTPUT_FAIL(\"query: placed size %llu above the page-rounded request %llu\", (unsigned long long)in->size,\n"
    "                  (unsigned long long)e->size_max);\n"
    "    else if (in->segment_id != 0 && e->align != 0 && in->segment_offset % e->align != 0)\n"
    "      OUTPUT_FAIL(\"query: segment offset 0x%llx is not a multiple of the alignment %u\",\n"
    "                  (unsigned long long)in->segment_offset, e->align);\n"
    "    else if (in->segment_id != 0) {\n"
    "      uint32_t s = 0;\n"
    "      while (s < e->segment_count && e->segments[s].id != in->segment_id) s++;\n"
    "      if (s == e->segment_count)\n"
    "        OUTPUT_FAIL(\"query: segment %u does not exist\", in->segment_id);\n"
    "      else if (!e->segments[s].possible)\n"
    "        OUTPUT_FAIL(\"query: an allocation of placement %u lies in segment %u\", e->placement, in->segment_id);\n"
    "      else if (in->segment_offset > e->segments[s].size || in->size > e->segments[s].size - in->segment_offset)\n"
    "        OUTPUT_FAIL(\"query: [%llu, +%llu) lies outside segment %u\", (unsigned long long)in->segment_offset,\n"
    "                    (unsigned long long)in->size, in->segment_id);\n"
    "    }\n"
    "  }\n"
    "  if (!failed && e->check_device_info && device_info != NULL) {\n"
    "    const UINT fields[] = {device_info->DmaBufferSize,         device_info->DmaBufferSegmentSet,\n"
    "                           device_info->DmaBufferPrivateDataSize, device_info->AllocationListSize,\n"
    "                           device_info->PatchLocationListSize, device_info->Flags};\n"
    "    static const char *const names[] = {\"DmaBufferSize\",      \"DmaBufferSegmentSet\",   \"DmaBufferPrivateDataSize\",\n"
    "                                        \"AllocationListSize\", \"PatchLocationListSize\", \"Flags\"};\n"
    "    const UINT sentinel = INFO_SENTINEL;\n"
    "    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !failed; i++) {\n"
    "      if (success && fields[i] == sentinel)\n"
    "        OUTPUT_FAIL(\"create_device with info succeeded but left the info's %s unwritten (0x%08x)\", names[i],\n"
    "                    sentinel);\n"
    "      else if (!success && fields[i] != sentinel)\n"
    "        OUTPUT_FAIL(\"create_device with info failed but wrote the info's %s (0x%08x): a failed call changes \"\n"
    "                    \"nothing\", names[i], fields[i]);\n"
    "    }\n"
    "  }\n"
    "  if (!failed && submitted != want_submitted)\n"
    "    OUTPUT_FAIL(\"fence_submitted is %llu, model has %llu (a failed call changes nothing)\",\n"
    "                (unsigned long long)submitted, (unsigned long long)want_submitted);\n"
    "  else if (!failed && completed < completed_seen)\n"
    "    OUTPUT_FAIL(\"fence_completed went back from %llu to %llu\", (unsigned long long)completed_seen,\n"
    "                (unsigned long long)completed);\n"
    "  else if (!failed && completed > submitted)\n"
    "    OUTPUT_FAIL(\"fence_completed %llu above fence_submitted %llu\", (unsigned long long)completed,\n"
    "                (unsigned long long)submitted);\n"
    "  if (failed) fail(where, \"port returned %s, but %s\", al_status_name(st), msg);\n"
    "  if (completed > completed_seen) completed_seen = completed;\n"
    "}\n"
    "\n"
    "/* After a successful query of @queried (in @in): the other live allocation @other must answer a\n"
    " * query, lie at a multiple of its alignment @other_align, and not overlap @queried in its\n"
    " * segment (execute.c check_overlap). */\n"
    "static UNUSED_OK void expect_no_overlap(const char *where, const al_allocation_info *in, al_handle queried,\n"
    "                                        al_handle other, uint32_t other_align) {\n"
    "  if (in->segment_id == 0) return;\n"
    "  al_allocation_info o;\n"
    "  NTSTATUS st = al_allocation_query(adapter, other, &o);\n"
    "  if (st != STATUS_SUCCESS) fail(where, \"querying live allocation 0x%08x returned %s\", other, al_status_name(st));\n"
    "  if (o.segment_id != 0 && other_align != 0 && o.segment_offset % other_align != 0)\n"
    "    fail(where, \"allocation 0x%08x is at offset 0x%llx of segment %u, not a multiple of its alignment %u\", other,\n"
    "         (unsigned long long)o.segment_offset, o.segment_id, other_align);\n"
    "  if (o.segment_id != in->segment_id) return;\n"
    "  if (o.segment_offset < in->segment_offset + in->size && in->segment_offset < o.segment_offset + o.size)\n"
    "    fail(where, \"allocations 0x%08x [%llu, +%llu) and 0x%08x [%llu, +%llu) overlap in segment %u\", queried,\n"
    "         (unsigned long long)in->segment_offset, (unsigned long long)in->size, other,\n"
    "         (unsigned long long)o.segment_offset, (unsigned long long)o.size, in->segment_id);\n"
    "}\n";

static const char sim_helpers[] =
    "\n"
    "/* The sim's hardware walk (its segments, page tables and engine against its own records), where\n"
    " * the oracle ran it: @live, the per-call form (SIM_CHECK_HARDWARE_LIVE). */\n"
    "static UNUSED_OK void expect_hardware_walk(const char *where, bool live) {\n"
    "  char msg[1024];\n"
    "  if (!sim_miniport_check_hardware((HANDLE)adapter, live ? SIM_CHECK_HARDWARE_LIVE : 0, msg, sizeof msg))\n"
    "    fail(where, \"sim_miniport_check_hardware%s: %s\", live ? \" (live)\" : \"\", msg);\n"
    "}\n"
    "\n"
    "/* The sim's process-wide live totals must be back where they were (no leak in the miniport). */\n"
    "static UNUSED_OK void expect_sim_totals(const sim_miniport_stats *a, const sim_miniport_stats *b) {\n"
    "#define TOTAL(f)                                                                                   \\\n"
    "  if (a->f != b->f)                                                                                \\\n"
    "    fail(\"after al_adapter_destroy\", \"the sim miniport's live totals: \" #f \" %llu before the program, \" \\\n"
    "         \"%llu after (leak)\", (unsigned long long)a->f, (unsigned long long)b->f);\n"
    "  TOTAL(adapters) TOTAL(devices) TOTAL(zombie_devices) TOTAL(resources) TOTAL(allocations) TOTAL(bindings)\n"
    "  TOTAL(host_bytes) TOTAL(committed_bytes) TOTAL(mapped_bytes) TOTAL(va_reserved_bytes)\n"
    "  TOTAL(queued_submissions)\n"
    "#undef TOTAL\n"
    "}\n";

static const char fault_helpers[] =
    "\n"
    "/* The sim's fault injector, armed from the program's fault requests. */\n"
    "static fault_injector injector;\n"
    "static UNUSED_OK uint64_t failures_total(void) {\n"
    "  uint64_t n = 0;\n"
    "  for (uint32_t pt = 0; pt < FAULT_POINT_COUNT; pt++) n += fault_injector_failures(&injector, (enum fault_point)pt);\n"
    "  return n;\n"
    "}\n"
    "/* Failures at the wrong-answer points (fault_point_is_wrong_answer), and their count before the\n"
    " * current call. */\n"
    "static uint64_t wrong_answers_before;\n"
    "static UNUSED_OK uint64_t wrong_answers_total(void) {\n"
    "  uint64_t n = 0;\n"
    "  for (uint32_t pt = 0; pt < FAULT_POINT_COUNT; pt++)\n"
    "    if (fault_point_is_wrong_answer((enum fault_point)pt)) n += fault_injector_failures(&injector, (enum fault_point)pt);\n"
    "  return n;\n"
    "}\n"
    "static UNUSED_OK void arm_fault(uint32_t id, uint32_t nth, uint32_t repeat) {\n"
    "  enum fault_point point;\n"
    "  if (fault_injector_point_from_id(id, &point)) fault_injector_arm(&injector, point, nth, repeat);\n"
    "}\n"
    "static bool host_allocation_should_fail(void *context, size_t bytes) {\n"
    "  (void)bytes;\n"
    "  return fault_injector_should_fail(context, FAULT_HOST_ALLOCATION);\n"
    "}\n"
    "static const al_host_alloc_fault host_fault = {host_allocation_should_fail, &injector};\n";

/* ---- Program targets ---------------------------------------------------------------------- */

static const fz_port_ops recording_port = {
    .adapter_create = rec_adapter_create,
    .adapter_destroy = rec_adapter_destroy,
    .device_create = rec_device_create,
    .device_create_with_info = rec_device_create_with_info,
    .device_destroy = rec_device_destroy,
    .allocation_create = rec_allocation_create,
    .resource_open = rec_resource_open,
    .allocation_destroy = rec_allocation_destroy,
    .submit = rec_submit,
    .fence_completed = al_fence_completed,
    .fence_submitted = al_fence_submitted,
    .fence_wait = rec_fence_wait,
    .gpu_run = rec_gpu_run,
    .get_stats = al_adapter_get_stats,
    .allocation_query = rec_allocation_query,
    .adapter_check = al_adapter_check,
    .hardware_check = rec_hardware_check, /* the executor runs them with the sim only */
    .hardware_check_live = rec_hardware_check_live,
};

static fz_program program;
static fz_exec_report report;

/* The child: runs the program through the recording port, writing main()'s body to @body and
 * the oracle's message (if any) to @message. Exits 0 (agreed) or 3 (mismatch); a crash is its
 * own signal. */
static void record_child(FILE *body, FILE *message) {
  rec.body = body;
  rec.p = &program;
  rec.sim = strcmp(al_selected_miniport.name, "sim") == 0;
  rec.call = NO_CALL;
  snprintf(rec.where, sizeof rec.where, "setup");
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  o.port = &recording_port;
  o.observe_prediction = observe_prediction;
  o.observe_check = observe_check;
  o.observe_outputs = observe_outputs;
  o.observe_overlap_query = observe_overlap_query;
  int rc = fz_execute(&program, &o, &report);
  close_block();
  fflush(body);
  if (rc != FZ_EXEC_OK) {
    fprintf(message, "%s", report.message);
    fflush(message);
    fprintf(stderr, "%s\n", report.message);
    _exit(3);
  }
  fflush(message);
  _exit(0);
}

static bool copy_stream(FILE *from, FILE *to) {
  char buf[65536];
  size_t n;
  rewind(from);
  while ((n = fread(buf, 1, sizeof buf, from)) > 0)
    if (fwrite(buf, 1, n, to) != n) return false;
  return !ferror(from);
}

/* Returns the exit status of main (see the file comment). */
static int emit_program(const char *input, const uint8_t *data, size_t size, bool keep_faults, const char *build,
                        const char *out_path) {
  if (!fz_decode(data, size, &program)) {
    fprintf(stderr, "emit_c: %s: not a program input: unsupported format version %u (this build reads %u)\n", input,
            size > 4 ? (unsigned)data[4] : 0u, FZ_FORMAT_VERSION);
    return 1;
  }
  if (!keep_faults) program.fault_count = 0;
  if (program.threaded_engine) {
    /* The checks written in are the model's bounds as one run saw them; on the threaded engine
     * they depend on how far the engine thread had got at each call (the executor reads
     * fence_completed live), so another run of the written program would fail spuriously. */
    fprintf(stderr,
            "emit_c: %s: a program with options(engine=threaded) cannot be written as a standalone program: "
            "the checks after each call depend on how far the engine thread had got in the recorded run; "
            "replay it with the fuzz target instead\n",
            input);
    return 1;
  }
  /* A damage op tests the oracle's walks through testing hooks of the port and the sim, and
   * changes nothing: the written program leaves it out (the recording port has no hook, so the
   * recorded run skips it too) and says so, since a finding about the walks themselves
   * (damage-missed) only replays with the fuzz target. */
  uint32_t damage_ops = 0;
  for (uint32_t k = 0; k < program.call_count; k++) damage_ops += program.calls[k].op == FZ_OP_DAMAGE;
  FILE *body = tmpfile(), *message = tmpfile();
  if (body == NULL || message == NULL) {
    fprintf(stderr, "emit_c: cannot make a temporary file: %s\n", strerror(errno));
    return 1;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "emit_c: fork: %s\n", strerror(errno));
    return 1;
  }
  if (pid == 0) record_child(body, message);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "emit_c: waitpid: %s\n", strerror(errno));
      return 1;
    }
  }
  char outcome[1200] = "the run agreed with the model; this program exits 0.";
  int status = 0;
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 3) {
    char msg[1024] = "";
    rewind(message);
    size_t n = fread(msg, 1, sizeof msg - 1, message);
    msg[n] = '\0';
    snprintf(outcome, sizeof outcome, "the oracle failed; this program aborts with the same message:\n *   %s", msg);
    status = 3;
  } else if (WIFSIGNALED(wstatus) || (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0)) {
    snprintf(outcome, sizeof outcome,
             "the run crashed (%s %d) in its last call below; this program crashes there the same way.",
             WIFSIGNALED(wstatus) ? "signal" : "exit status", WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus));
    status = 3;
  }

  FILE *f = fopen(out_path, "w");
  if (f == NULL) {
    fprintf(stderr, "emit_c: cannot write '%s': %s\n", out_path, strerror(errno));
    return 1;
  }
  bool sim = strcmp(al_selected_miniport.name, "sim") == 0;
  bool faults = false;
  for (uint32_t k = 0; k < program.fault_count && k < 4u; k++) {
    enum fault_point point;
    if (fault_injector_point_from_id(program.faults[k].point & ~FZ_FAULT_AT_BRING_UP, &point)) faults = true;
  }
  faults = faults && sim;
  char what[320], left_out[200] = "";
  if (damage_ops)
    snprintf(left_out, sizeof left_out,
             "; %u damage op%s left out (a test of the oracle's walks, not a port call: the fuzz target runs "
             "%s)",
             damage_ops, damage_ops == 1 ? "" : "s", damage_ops == 1 ? "it" : "them");
  snprintf(what, sizeof what, "a program of %u calls%s, miniport \"%s\"%s", program.call_count,
           faults ? " with fault requests" : "", al_selected_miniport.name, left_out);
  write_header(f, input, what, build, outcome);
  if (sim) fprintf(f, "#include \"alloclab/hw/sim_miniport.h\"\n");
  if (faults) fprintf(f, "#include \"alloclab/hw/fault_injection.h\"\n#include \"alloclab/testing.h\"\n");
  fputs(program_helpers, f);
  fprintf(f, "\n/* What every byte of create_device's info holds before the call (FZ_MODEL_INFO_SENTINEL_BYTE). */\n"
             "#define INFO_SENTINEL 0x%08xu\n", FZ_MODEL_INFO_SENTINEL_BYTE * 0x01010101u);
  fputs(output_helpers, f);
  if (sim) fputs(sim_helpers, f);
  if (faults) fputs(fault_helpers, f);
  fprintf(f, "\nint main(void) {\n");
  if (sim) fprintf(f, "  sim_miniport_stats totals_before, totals_after;\n  sim_miniport_get_stats(&totals_before);\n");
  bool ok = copy_stream(body, f);
  if (sim) fprintf(f, "  sim_miniport_get_stats(&totals_after);\n  expect_sim_totals(&totals_before, &totals_after);\n");
  fprintf(f, "  printf(\"the program ran to its end: every check passed\\n\");\n  return 0;\n}\n");
  ok = ok && fflush(f) == 0 && !ferror(f);
  if (fclose(f) != 0 || !ok) {
    fprintf(stderr, "emit_c: cannot write '%s'\n", out_path);
    remove(out_path);
    return 1;
  }
  printf("emit_c: wrote %s; %s%s\n", out_path,
         status ? "the recorded run failed (the program fails the same way)" : "the recorded run passed", left_out);
  return status;
}

/* ---- private_data ------------------------------------------------------------------------- */

static int emit_private_data(const char *input, const uint8_t *data, size_t size, const char *build,
                             const char *out_path) {
  if (size > AL_MAX_PRIVATE_DATA_SIZE) {
    fprintf(stderr, "emit_c: %s: %zu bytes is not private data (at most %u)\n", input, size, AL_MAX_PRIVATE_DATA_SIZE);
    return 1;
  }
  FILE *f = fopen(out_path, "w");
  if (f == NULL) {
    fprintf(stderr, "emit_c: cannot write '%s': %s\n", out_path, strerror(errno));
    return 1;
  }
  char what[96];
  snprintf(what, sizeof what, "%zu bytes of SIM_ALLOCATION_DATA, target private_data", size);
  write_header(f, input, what, build, "not run by emit_c (private data is only written out).");
  fprintf(f, "#include \"alloclab/hw/sim_miniport.h\"\n");
  fputs(program_helpers, f);
  fprintf(f, "\nstatic const uint8_t private_data[%zu] = {", size ? size : 1u);
  for (size_t k = 0; k < size; k++) fprintf(f, "%s0x%02x,", k % 16 ? " " : "\n    ", data[k]);
  if (size == 0) fprintf(f, "0");
  fprintf(f,
          "\n};\n\n"
          "/* One device-owned allocation with the bytes above, on an adapter of the target's configuration. */\n"
          "static void create_with_private_data(const char *name, UINT memory_page, UINT64 memory_size,\n"
          "                                     UINT64 aperture_size) {\n"
          "  char where[96];\n"
          "  snprintf(where, sizeof where, \"config %%s\", name);\n"
          "  SIM_HARDWARE_CONFIG hw = sim_hardware_config_default();\n"
          "  hw.MemorySegmentSize = memory_size;\n"
          "  hw.ApertureSegmentSize = aperture_size;\n"
          "  hw.MemoryPageSize = memory_page;\n"
          "  al_adapter_config config = {.driver_entry = SimMiniportDriverEntry, .hardware_config = &hw,\n"
          "                              .hardware_config_size = sizeof hw, .flags = AL_ADAPTER_VERIFIER};\n"
          "  NTSTATUS st = al_adapter_create(&config, &adapter);\n"
          "  if (st != STATUS_SUCCESS) fail(where, \"al_adapter_create returned %%s\", al_status_name(st));\n"
          "  al_handle device = 0, allocation = 0;\n"
          "  st = al_device_create(adapter, &device);\n"
          "  if (st != STATUS_SUCCESS) fail(where, \"al_device_create returned %%s\", al_status_name(st));\n"
          "  al_allocation_desc desc = {private_data, (uint32_t)sizeof private_data};\n"
          "  al_create_allocation_args args = {.device = device, .allocation_count = 1, .allocations = &desc,\n"
          "                                    .out_allocations = &allocation};\n"
          "  st = al_allocation_create(adapter, &args);\n"
          "  printf(\"%%s: al_allocation_create = %%s\\n\", where, al_status_name(st));\n"
          "  if (st != STATUS_SUCCESS && st != STATUS_INVALID_PARAMETER && st != STATUS_NO_VIDEO_MEMORY)\n"
          "    fail(where, \"al_allocation_create returned %%s (expected success, STATUS_INVALID_PARAMETER or \"\n"
          "         \"STATUS_NO_VIDEO_MEMORY)\", al_status_name(st));\n"
          "  expect_adapter_check(where);\n"
          "  if (st == STATUS_SUCCESS) {\n"
          "    al_destroy_allocation_args destroy = {.device = device, .allocations = &allocation, .allocation_count = 1};\n"
          "    st = al_allocation_destroy(adapter, &destroy);\n"
          "    if (st != STATUS_SUCCESS) fail(where, \"destroying it returned %%s\", al_status_name(st));\n"
          "    al_allocation_info info;\n"
          "    st = al_allocation_query(adapter, allocation, &info);\n"
          "    if (st != STATUS_INVALID_HANDLE) fail(where, \"a query after the destroy returned %%s\", al_status_name(st));\n"
          "  }\n"
          "  st = al_device_destroy(adapter, device);\n"
          "  if (st != STATUS_SUCCESS) fail(where, \"al_device_destroy returned %%s\", al_status_name(st));\n"
          "  expect_empty();\n"
          "  expect_adapter_check(where);\n"
          "  al_adapter_destroy(adapter);\n"
          "  adapter = NULL;\n"
          "}\n\n"
          "int main(void) {\n"
          "  create_with_private_data(\"4k-pages\", 4096u, (UINT64)1 << 20, (UINT64)512 << 10);\n"
          "  create_with_private_data(\"64k-pages\", 65536u, (UINT64)512 << 10, (UINT64)1 << 20);\n"
          "  printf(\"the program ran to its end: every check passed\\n\");\n"
          "  return 0;\n"
          "}\n");
  bool ok = fflush(f) == 0 && !ferror(f);
  if (fclose(f) != 0 || !ok) {
    fprintf(stderr, "emit_c: cannot write '%s'\n", out_path);
    remove(out_path);
    return 1;
  }
  printf("emit_c: wrote %s: one allocation with %zu bytes of private data on 2 adapter configurations\n", out_path,
         size);
  return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

static int usage(void) {
  fprintf(stderr,
          "usage: emit_c [--keep-faults | --private-data] [--build-command CMD] INPUT OUT.c\n"
          "Writes INPUT (a fuzz input) as a standalone C program of the same public-API calls with the\n"
          "oracle's checks. --keep-faults: arm the input's fault requests (fault_injection);\n"
          "--private-data: INPUT is SIM_ALLOCATION_DATA bytes (private_data). Exits 0 written (run passed),\n"
          "3 written (run failed: the program fails the same way), 1 on a file error, 2 on a usage error.\n");
  return 2;
}

int main(int argc, char **argv) {
  bool keep_faults = false, private_data = false;
  const char *build = NULL, *paths[2];
  int npaths = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--keep-faults") == 0) keep_faults = true;
    else if (strcmp(argv[i], "--private-data") == 0) private_data = true;
    else if (strcmp(argv[i], "--build-command") == 0 && i + 1 < argc) build = argv[++i];
    else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return usage(), 0;
    else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      fprintf(stderr, "emit_c: unknown option '%s'\n", argv[i]);
      return usage();
    } else if (npaths < 2) paths[npaths++] = argv[i];
    else {
      fprintf(stderr, "emit_c: one INPUT and one OUT.c ('%s' is extra)\n", argv[i]);
      return usage();
    }
  }
  if (npaths != 2) return usage();
  if (keep_faults && private_data) {
    fprintf(stderr, "emit_c: --keep-faults and --private-data do not go together\n");
    return usage();
  }
  uint8_t *data;
  size_t size;
  if (!fz_read_file("emit_c", paths[0], &data, &size)) return 1;
  int rc = private_data ? emit_private_data(paths[0], data, size, build, paths[1])
                        : emit_program(paths[0], data, size, keep_faults, build, paths[1]);
  free(data);
  return rc;
}
