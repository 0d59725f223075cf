/*
 * execute.c — the executor and oracle of alloclab's fuzz programs (see alloclab/fuzz/execute.h).
 */
#include "alloclab/fuzz/execute.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/damage.h"
#include "alloclab/hw/fault_injection.h"
#include "alloclab/hw/miniport.h"
#include "alloclab/testing.h"
#include "alloclab/hw/sim_miniport.h"
#include "alloclab/status.h"
#include "fuzz/common/text.h"

/* The sim's hardware walk for the adapter the port made: the port hands the sim its al_adapter
 * pointer as DXGKRNL_INTERFACE.DeviceHandle, which names the sim adapter behind it. */
static bool sim_hardware_check(al_adapter *adapter, char *msg, size_t cap) {
  return sim_miniport_check_hardware((HANDLE)adapter, 0, msg, cap);
}
static bool sim_hardware_check_live(al_adapter *adapter, char *msg, size_t cap) {
  return sim_miniport_check_hardware((HANDLE)adapter, SIM_CHECK_HARDWARE_LIVE, msg, cap);
}
static al_damage_result sim_hardware_damage(al_adapter *adapter, unsigned kind, unsigned pick, char *msg,
                                            size_t cap) {
  return sim_testing_damage((HANDLE)adapter, kind, pick, msg, cap);
}

const fz_port_ops fz_port_alloclab = {
    .adapter_create = al_adapter_create,
    .adapter_destroy = al_adapter_destroy,
    .device_create = al_device_create,
    .device_create_with_info = al_device_create_with_info,
    .device_destroy = al_device_destroy,
    .allocation_create = al_allocation_create,
    .resource_open = al_resource_open,
    .allocation_destroy = al_allocation_destroy,
    .submit = al_submit,
    .fence_completed = al_fence_completed,
    .fence_submitted = al_fence_submitted,
    .fence_wait = al_fence_wait,
    .gpu_run = al_gpu_run,
    .get_stats = al_adapter_get_stats,
    .allocation_query = al_allocation_query,
    .adapter_check = al_adapter_check,
    .adapter_check_live = al_adapter_check_live,
    .hardware_check = sim_hardware_check,
    .hardware_check_live = sim_hardware_check_live,
    .damage = al_testing_damage,
    .damage_kind = al_testing_damage_kind,
    .hardware_damage = sim_hardware_damage,
    .hardware_damage_kind = sim_testing_damage_kind,
};

void fz_exec_options_default(fz_exec_options *out) {
  memset(out, 0, sizeof *out);
  out->check_adapter_each_call = true;
  out->check_stats_each_call = true;
  out->check_miniport_totals = true;
  out->strict_release = true; /* memory no work uses is released at once, as documented */
}

/* ---- Context ------------------------------------------------------------------------------ */

/* A list as passed: up to FZ_MODEL_COUNT_OVER expanded entries, and the one a hostile count of
 * one more reads past them. */
#define LIST_CAP (FZ_MODEL_COUNT_OVER + 1u)
#define BLOB_CAP 1024u
/* A FILL or CHECK for every allocation of the longest list: the model takes every listed
 * allocation as filled, so the stream must never be cut short (sim: 1024 x 24 bytes). */
#define CMD_CAP AL_MAX_COMMAND_SIZE
#define HW_CAP 1024u
#define IMPLICIT UINT32_MAX /* call index of a call the executor adds */

/* Oversized private data / command stream (never written: the port takes const pointers). */
#define BIG_BYTES ((AL_MAX_PRIVATE_DATA_SIZE > AL_MAX_COMMAND_SIZE ? AL_MAX_PRIVATE_DATA_SIZE : AL_MAX_COMMAND_SIZE) + 1u)
static const uint8_t big_buffer[BIG_BYTES];

typedef struct exec_ctx {
  fz_model *model;
  fault_injector inj;
  bool faults_on;
  al_host_alloc_fault host_fault; /* bridges host allocations to inj (while faults_on) */
  uint64_t failures_seen;
  al_adapter *adapter;
  const fz_port_ops *port;
  const fz_exec_options *o;
  fz_exec_report *rep;
  const fz_program *p;
  bool sim;
  bool threaded; /* the adapter's GPU engine has its own thread (fz_program.threaded_engine) */
  bool failed; /* a mismatch was reported (return_on_mismatch) */
  /* The sim's process-wide totals before the program (fz_execute with check_miniport_totals),
   * or NULL: teardown compares the miniport's live objects before the adapter goes. */
  const sim_miniport_stats *totals_before;
  uint64_t value[FZ_MAX_CALLS];
  uint16_t nalloc[FZ_MAX_CALLS];
  al_handle allocs[FZ_MAX_CALLS][FZ_MAX_ELEMENTS];
  al_handle list[LIST_CAP]; /* the expanded list; the entry past it is 0 */
  al_allocation_desc descs[LIST_CAP];
  al_handle outs[LIST_CAP];
  al_handle live[FZ_MODEL_MAX_ALLOCATIONS];
  _Alignas(8) uint8_t blob[BLOB_CAP];
  _Alignas(8) uint8_t bad_blob[BLOB_CAP];
  _Alignas(8) uint8_t cmd[CMD_CAP];
  _Alignas(8) uint8_t hw[HW_CAP];
  char msg[1024];
  fz_exec_report local_report;
} exec_ctx;

static _Thread_local exec_ctx *tls_ctx;

static exec_ctx *ctx_get(void) {
  if (tls_ctx) return tls_ctx;
  exec_ctx *x = calloc(1, sizeof *x);
  if (x == NULL) return NULL;
  fz_model_config empty;
  memset(&empty, 0, sizeof empty);
  x->model = fz_model_create(&empty);
  if (x->model == NULL) {
    free(x);
    return NULL;
  }
  tls_ctx = x;
  return x;
}

void fz_execute_release_thread_context(void) {
  if (tls_ctx == NULL) return;
  fz_model_destroy(tls_ctx->model);
  free(tls_ctx);
  tls_ctx = NULL;
}

/* ---- Messages ----------------------------------------------------------------------------- */

/* "destroy_allocations(dev=v1, ...)" for program call @i, or @label for an implicit call. */
static const char *call_text(const exec_ctx *x, uint32_t i, const char *label, char *buf, size_t cap) {
  if (i == IMPLICIT) {
    snprintf(buf, cap, "%s", label);
    return buf;
  }
  fz_format_call(buf, cap, x->p, i);
  const char *eq = strstr(buf, " = ");
  return eq && buf[0] == 'v' ? eq + 3 : buf;
}

static void print_program(const exec_ctx *x, uint32_t upto) {
  fz_program *copy = malloc(sizeof *copy);
  if (copy == NULL) return;
  memcpy(copy, x->p, sizeof *copy);
  if (upto < copy->call_count) copy->call_count = upto;
  fprintf(stderr, "alloclab oracle: the program (statuses the port returned):\n");
  fz_print_program(stderr, copy, x->rep->status);
  free(copy);
}

/* The words of @text that hold no digit (numbers, handles, addresses and fences vary between
 * runs and between minimizations of one input), lowercased, joined by '-', at most @max_words,
 * appended to @out: what makes a message's detail part of a stable oracle kind. */
static void append_stable_words(const char *text, unsigned max_words, char *out, size_t cap) {
  size_t used = strlen(out);
  unsigned words = 0;
  for (const char *s = text; *s && words < max_words;) {
    while (*s && !(isalnum((unsigned char)*s) || *s == '_')) s++;
    const char *start = s;
    bool digit = false;
    while (isalnum((unsigned char)*s) || *s == '_') digit |= isdigit((unsigned char)*s++) != 0;
    if (s == start || digit) continue;
    for (const char *c = words ? "-" : ""; *c && used + 1 < cap;) out[used++] = *c++;
    for (const char *c = start; c < s && used + 1 < cap; c++) out[used++] = (char)tolower((unsigned char)*c);
    words++;
  }
  if (cap) out[used < cap ? used : cap - 1] = '\0';
}

/* The oracle's tag, " [oracle:KIND OP]", that ends every oracle message: KIND is the check that
 * failed (@kind, then ':' and the stable words of @kind_detail when not NULL), OP the operation
 * it failed on. Both are free of step numbers, handles and addresses, so that tools/triage.py can
 * put them in a crash's signature: two different oracle bugs get two signatures, and the same
 * bug found or minimized twice gets one. */
static void oracle_tag(const char *kind, const char *kind_detail, const char *op, char *buf, size_t cap) {
  char k[160], o[96];
  snprintf(k, sizeof k, "%s%s", kind, kind_detail ? ":" : "");
  if (kind_detail) append_stable_words(kind_detail, 6, k, sizeof k);
  o[0] = '\0';
  append_stable_words(op, 4, o, sizeof o);
  snprintf(buf, cap, " [oracle:%s %s]", k, o[0] ? o : "program");
}

/* The operation program call @i (or the implicit call @label) makes: "destroy_allocations",
 * "teardown-destroy_device", "fence_wait-before-call-assume_not_in_use". */
static const char *call_operation(const exec_ctx *x, uint32_t i, const char *label) {
  if (i == IMPLICIT) return label;
  const char *name = fz_op_name(x->p->calls[i].op);
  return name ? name : "unknown_op";
}

/* "success" for STATUS_SUCCESS: a status as a word of an oracle kind. */
static const char *status_word(NTSTATUS st) {
  const char *name = al_status_name(st);
  return strncmp(name, "STATUS_", 7) == 0 ? name + 7 : name;
}

/* Reports a disagreement about program call @i (or an implicit call): aborts, or records it.
 * @kind (and @kind_detail, may be NULL) name the check for the message's tag (oracle_tag). */
__attribute__((format(printf, 6, 7))) static void mismatch(exec_ctx *x, uint32_t i, const char *label,
                                                           const char *kind, const char *kind_detail,
                                                           const char *fmt, ...) {
  char text[512], detail[1024], tag[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  oracle_tag(kind, kind_detail, call_operation(x, i, label), tag, sizeof tag);
  const char *what = call_text(x, i, label, text, sizeof text);
  if (i == IMPLICIT)
    snprintf(x->rep->message, sizeof x->rep->message, "alloclab oracle: %s: %s%s", what, detail, tag);
  else
    snprintf(x->rep->message, sizeof x->rep->message, "alloclab oracle: call %u %s: %s%s", i + 1, what, detail,
             tag);
  x->rep->mismatches++;
  x->failed = true;
  if (x->o->return_on_mismatch) return;
  fprintf(stderr, "%s\n", x->rep->message);
  print_program(x, i == IMPLICIT ? x->p->call_count : i + 1);
  fflush(stderr);
  abort();
}

/* ---- One call ----------------------------------------------------------------------------- */

typedef struct exec_call {
  fz_model_args a;
  bool null_args;
  al_create_allocation_args cargs;
  al_destroy_allocation_args dargs;
  al_submit_args sargs;
  al_handle out_device, out_resource;
  uint64_t out_fence;
  uint32_t out_completed;
  al_allocation_info info;
  DXGK_DEVICEINFO device_info; /* CREATE_DEVICE with info */
  uint32_t fills, checks, copies;
} exec_call;

static uint64_t resolve(const exec_ctx *x, uint32_t i, const fz_ref *r) {
  if (r->kind == FZ_REF_LITERAL) return r->literal;
  if (r->kind != FZ_REF_RESULT || r->call >= i) return 0;
  if (r->element == FZ_ELEMENT_SELF) return x->value[r->call];
  return r->element < x->nalloc[r->call] ? x->allocs[r->call][r->element] : 0;
}

static uint32_t norm_count(uint32_t c) { return c <= FZ_MAX_ELEMENTS ? c : FZ_MODEL_COUNT_OVER; }

static fz_placement norm_placement(fz_placement p) {
  return p <= FZ_PLACEMENT_APERTURE_ONLY ? p : FZ_PLACEMENT_ANY;
}

/* Resolves the call's list into x->list, each range expanded to its elements in order (an
 * element its call did not make is 0); returns the count passed: the expanded length (above
 * AL_MAX_ALLOCATIONS_PER_CALL: FZ_MODEL_COUNT_OVER), +1 or -1 with the hostile count bits. */
static uint32_t resolve_list(exec_ctx *x, uint32_t i, const fz_call *c) {
  uint32_t entries = c->list_length < FZ_MAX_LIST ? c->list_length : FZ_MAX_LIST;
  uint32_t n = 0;
  if (c->list_length > FZ_MAX_LIST) { /* not a valid program: passed as over the maximum */
    memset(x->list, 0, LIST_CAP * sizeof x->list[0]);
    entries = 0;
    n = FZ_MODEL_COUNT_OVER;
  }
  for (uint32_t j = 0; j < entries && n < FZ_MODEL_COUNT_OVER; j++) {
    fz_ref r = c->list[j];
    uint32_t span = r.span;
    r.span = 0;
    for (uint32_t e = 0; e <= span && n < FZ_MODEL_COUNT_OVER; e++, r.element++) {
      x->list[n++] = (al_handle)resolve(x, i, &r);
    }
  }
  x->list[n] = 0; /* what a count of one more reads */
  if (c->hostile & FZ_HOSTILE_COUNT_PLUS_ONE) n++;
  if (c->hostile & FZ_HOSTILE_COUNT_MINUS_ONE) n--; /* 0 - 1: far above the maximum */
  return n;
}

static void prepare_create(exec_ctx *x, uint32_t i, const fz_call *c, exec_call *e) {
  fz_model_args *a = &e->a;
  uint32_t n = norm_count(c->count);
  a->count = n;
  a->size = c->size ? c->size : 1;
  a->placement = norm_placement(c->placement);
  a->align = c->align;
  a->shared = c->op == FZ_OP_CREATE_RESOURCE && c->shared;
  a->device = (al_handle)resolve(x, i, &c->device);
  if (c->op == FZ_OP_ADD_TO_RESOURCE) a->resource = (al_handle)resolve(x, i, &c->resource);
  al_allocation_request req = {
      .size = a->size, .alignment = c->align, .placement = (al_placement)a->placement, .cpu_visible = false};
  uint32_t blob_size = al_selected_miniport.make_allocation_data(&req, x->blob, BLOB_CAP);
  a->private_data_ok = blob_size != 0;
  if (blob_size == 0 && x->sim && c->align != 0) {
    /* An alignment the sim documents to refuse (no power of two, above 64 MiB): written into
     * its private data anyway, so the miniport's own check answers (the model expects
     * STATUS_INVALID_PARAMETER either way). */
    req.alignment = 0;
    blob_size = al_selected_miniport.make_allocation_data(&req, x->blob, BLOB_CAP);
    if (blob_size == sizeof(SIM_ALLOCATION_DATA)) {
      SIM_ALLOCATION_DATA data;
      memcpy(&data, x->blob, sizeof data);
      data.Alignment = c->align;
      memcpy(x->blob, &data, sizeof data);
    }
  }
  for (uint32_t j = 0; j < n; j++) x->descs[j] = (al_allocation_desc){x->blob, blob_size};

  al_create_allocation_args *ca = &e->cargs;
  memset(ca, 0, sizeof *ca);
  ca->device = a->device;
  ca->resource = a->resource;
  if (c->op == FZ_OP_CREATE_RESOURCE) ca->flags = AL_CREATE_RESOURCE | (a->shared ? AL_CREATE_SHARED : 0u);
  if (c->hostile & FZ_HOSTILE_RESERVED_FLAGS) ca->flags |= FZ_RESERVED_FLAG;
  ca->allocation_count = n;
  ca->allocations = (c->hostile & FZ_HOSTILE_NULL_LIST) ? NULL : x->descs;
  ca->out_allocations = x->outs;
  ca->out_resource = c->op == FZ_OP_CREATE_RESOURCE ? &e->out_resource : NULL;
  if (c->hostile & FZ_HOSTILE_PRIVATE_DATA) {
    /* 0: one descriptor's data too large; 1: NULL with a size; 2: the resource's data too large;
     * 3 (sim: documented to reject it): one descriptor's data corrupt (bad magic). */
    a->variant = i % (x->sim && blob_size >= 4 ? 4u : 3u);
    al_allocation_desc *last = n ? &x->descs[n - 1] : NULL;
    switch (a->variant) {
    case 0:
      if (last) *last = (al_allocation_desc){big_buffer, AL_MAX_PRIVATE_DATA_SIZE + 1u};
      break;
    case 1:
      if (last) *last = (al_allocation_desc){NULL, blob_size ? blob_size : 1u};
      break;
    case 2:
      ca->resource_private_data = big_buffer;
      ca->resource_private_data_size = AL_MAX_PRIVATE_DATA_SIZE + 1u;
      break;
    default:
      memcpy(x->bad_blob, x->blob, blob_size);
      x->bad_blob[0] ^= 0xFFu;
      if (last) *last = (al_allocation_desc){x->bad_blob, blob_size};
      break;
    }
    /* With no descriptor to spoil, spoil the resource's data instead. */
    if (last == NULL && a->variant != 2) {
      ca->resource_private_data = big_buffer;
      ca->resource_private_data_size = AL_MAX_PRIVATE_DATA_SIZE + 1u;
    }
  }
}

static uint32_t min_u64(uint64_t a, uint64_t b) { return (uint32_t)(a < b ? a : b); }

static void prepare_submit(exec_ctx *x, uint32_t i, const fz_call *c, exec_call *e) {
  fz_model_args *a = &e->a;
  a->device = (al_handle)resolve(x, i, &c->device);
  a->list_length = resolve_list(x, i, c);
  a->list = x->list;
  a->command = c->command;
  const al_miniport_descriptor *mp = &al_selected_miniport;
  uint32_t used = 0, cmax = mp->command_size_max;
  if (c->command == FZ_COMMAND_NOP) {
    al_command_request rq = {.kind = AL_COMMAND_NOP};
    used += mp->append_command(&rq, x->cmd, CMD_CAP);
  } else if (c->command == FZ_COMMAND_COPY) {
    /* list[0] onto list[1] (onto itself with one entry), as program.h defines it; nothing when
     * either is not live (the port refuses the list before any command matters). */
    fz_model_allocation_view src, dst;
    uint32_t to = a->list_length >= 2 ? 1u : 0u;
    if (a->list_length >= 1 && a->list_length <= AL_MAX_ALLOCATIONS_PER_CALL &&
        fz_model_allocation(x->model, x->list[0], &src) && src.alive &&
        fz_model_allocation(x->model, x->list[to], &dst) && dst.alive) {
      uint64_t bytes = src.size < dst.size ? src.size : dst.size;
      al_command_request rq = {.kind = AL_COMMAND_COPY, .index = 0, .offset = 0, .dst_index = to,
                               .dst_offset = 0, .size = min_u64(bytes, FZ_MODEL_PATTERN_BYTES)};
      used += mp->append_command(&rq, x->cmd, CMD_CAP);
      e->copies++;
    }
  } else if (a->list_length <= AL_MAX_ALLOCATIONS_PER_CALL) {
    for (uint32_t j = 0; j < a->list_length && used + cmax <= CMD_CAP; j++) {
      fz_model_allocation_view v;
      if (!fz_model_allocation(x->model, x->list[j], &v) || !v.alive) continue;
      al_command_request rq = {.index = j, .offset = 0, .size = min_u64(v.size, FZ_MODEL_PATTERN_BYTES)};
      if (c->command == FZ_COMMAND_FILL) {
        rq.kind = AL_COMMAND_FILL;
        fz_model_fill_pattern(x->model, x->list[j], &rq.pattern);
        e->fills++;
      } else {
        if (!v.has_pattern) continue;
        rq.kind = AL_COMMAND_CHECK;
        rq.pattern = v.pattern;
        e->checks++;
      }
      used += mp->append_command(&rq, x->cmd + used, CMD_CAP - used);
    }
  }
  al_submit_args *sa = &e->sargs;
  sa->device = a->device;
  sa->allocations = (c->hostile & FZ_HOSTILE_NULL_LIST) ? NULL : x->list;
  sa->allocation_count = a->list_length;
  sa->command = used ? x->cmd : NULL;
  sa->command_size = used;
  sa->out_fence = (c->hostile & FZ_HOSTILE_RESERVED_FLAGS) ? NULL : &e->out_fence;
  if (c->hostile & FZ_HOSTILE_PRIVATE_DATA) {
    /* 0: a stream above the maximum; 1 (sim: documented to reject it): an unknown opcode. */
    a->variant = i % (x->sim ? 2u : 1u);
    if (a->variant == 0) {
      sa->command = big_buffer;
      sa->command_size = AL_MAX_COMMAND_SIZE + 1u;
    } else {
      static const uint32_t bad[2] = {0x7Fu, 0u}; /* opcode 0x7F, length 0 */
      sa->command = bad;
      sa->command_size = sizeof bad;
    }
  }
}

/* Builds the model's view and the API arguments of program call @i. */
static void prepare(exec_ctx *x, uint32_t i, const fz_call *c, exec_call *e) {
  memset(&e->a, 0, sizeof e->a);
  e->fills = e->checks = e->copies = 0;
  fz_model_args *a = &e->a;
  a->op = c->op;
  a->hostile = c->hostile;
  a->private_data_ok = true;
  e->null_args = (c->hostile & FZ_HOSTILE_NULL_ARGS) != 0;
  switch (c->op) {
  case FZ_OP_CREATE_DEVICE:
    a->info = c->info;
    memset(&e->device_info, FZ_MODEL_INFO_SENTINEL_BYTE, sizeof e->device_info);
    break;
  case FZ_OP_DESTROY_DEVICE:
    a->device = (al_handle)resolve(x, i, &c->device);
    break;
  case FZ_OP_CREATE_ALLOCATIONS:
  case FZ_OP_CREATE_RESOURCE:
  case FZ_OP_ADD_TO_RESOURCE:
    prepare_create(x, i, c, e);
    break;
  case FZ_OP_OPEN_RESOURCE:
    a->device = (al_handle)resolve(x, i, &c->device);
    a->resource = (al_handle)resolve(x, i, &c->resource);
    break;
  case FZ_OP_DESTROY_RESOURCE: {
    a->device = (al_handle)resolve(x, i, &c->device);
    a->resource = (al_handle)resolve(x, i, &c->resource);
    a->flags = c->flags | ((c->hostile & FZ_HOSTILE_RESERVED_FLAGS) ? FZ_RESERVED_FLAG : 0u);
    al_destroy_allocation_args *da = &e->dargs;
    *da = (al_destroy_allocation_args){.device = a->device, .resource = a->resource, .flags = a->flags};
    if (c->hostile & FZ_HOSTILE_BOTH_FORMS) {
      uint32_t n = resolve_list(x, i, c);
      a->list = x->list;
      a->list_length = n ? n : 1u;
      da->allocations = x->list;
      da->allocation_count = a->list_length;
    }
    break;
  }
  case FZ_OP_DESTROY_ALLOCATIONS: {
    a->device = (al_handle)resolve(x, i, &c->device);
    a->flags = c->flags | ((c->hostile & FZ_HOSTILE_RESERVED_FLAGS) ? FZ_RESERVED_FLAG : 0u);
    a->list_length = resolve_list(x, i, c);
    a->list = x->list;
    if (c->hostile & FZ_HOSTILE_BOTH_FORMS) a->resource = (al_handle)resolve(x, i, &c->resource);
    al_destroy_allocation_args *da = &e->dargs;
    *da = (al_destroy_allocation_args){.device = a->device,
                                       .resource = a->resource,
                                       .allocations = (c->hostile & FZ_HOSTILE_NULL_LIST) ? NULL : x->list,
                                       .allocation_count = a->list_length,
                                       .flags = a->flags};
    break;
  }
  case FZ_OP_SUBMIT:
    prepare_submit(x, i, c, e);
    break;
  case FZ_OP_GPU_RUN:
    a->count = c->count;
    break;
  case FZ_OP_FENCE_WAIT:
    a->fence = resolve(x, i, &c->fence);
    break;
  case FZ_OP_QUERY:
    a->allocation = (al_handle)resolve(x, i, &c->allocation);
    break;
  default:
    break;
  }
}

/* Makes the call. */
static NTSTATUS invoke(exec_ctx *x, exec_call *e) {
  const fz_port_ops *port = x->port;
  al_adapter *ad = x->adapter;
  const fz_model_args *a = &e->a;
  switch (a->op) {
  case FZ_OP_CREATE_DEVICE:
    if (a->info) return port->device_create_with_info(ad, e->null_args ? NULL : &e->out_device, &e->device_info);
    return port->device_create(ad, e->null_args ? NULL : &e->out_device);
  case FZ_OP_DESTROY_DEVICE:
    return port->device_destroy(ad, a->device);
  case FZ_OP_CREATE_ALLOCATIONS:
  case FZ_OP_CREATE_RESOURCE:
  case FZ_OP_ADD_TO_RESOURCE:
    return port->allocation_create(ad, e->null_args ? NULL : &e->cargs);
  case FZ_OP_OPEN_RESOURCE:
    return port->resource_open(ad, a->device, a->resource);
  case FZ_OP_DESTROY_RESOURCE:
  case FZ_OP_DESTROY_ALLOCATIONS:
    return port->allocation_destroy(ad, e->null_args ? NULL : &e->dargs);
  case FZ_OP_SUBMIT:
    return port->submit(ad, e->null_args ? NULL : &e->sargs);
  case FZ_OP_GPU_RUN:
    e->out_completed = 0;
    return port->gpu_run(ad, a->count, e->null_args ? NULL : &e->out_completed);
  case FZ_OP_FENCE_WAIT:
    return port->fence_wait(ad, a->fence, UINT64_MAX);
  case FZ_OP_QUERY:
    memset(&e->info, 0, sizeof e->info);
    return port->allocation_query(ad, a->allocation, e->null_args ? NULL : &e->info);
  default:
    return STATUS_SUCCESS;
  }
}

static uint64_t failures_total(const exec_ctx *x) {
  uint64_t n = 0;
  for (uint32_t pt = 0; pt < FAULT_POINT_COUNT; pt++) n += fault_injector_failures(&x->inj, (enum fault_point)pt);
  return n;
}

/* Wrong answers the miniport gave so far (the wrong-answer points' failures). */
static uint64_t wrong_answers_total(const exec_ctx *x) {
  uint64_t n = 0;
  for (uint32_t pt = 0; pt < FAULT_POINT_COUNT; pt++)
    if (fault_point_is_wrong_answer((enum fault_point)pt)) n += fault_injector_failures(&x->inj, (enum fault_point)pt);
  return n;
}

/* ---- Checks ------------------------------------------------------------------------------- */

/* A successful query: no other live allocation overlaps the queried one in its segment. */
static bool check_overlap(exec_ctx *x, uint32_t i, const char *label, al_handle h, const al_allocation_info *in) {
  if (in->segment_id == 0) return true;
  uint32_t n = fz_model_live_allocations(x->model, x->live, FZ_MODEL_MAX_ALLOCATIONS);
  for (uint32_t k = 0; k < n; k++) {
    if (x->live[k] == h) continue;
    fz_model_allocation_view view;
    bool known = fz_model_allocation(x->model, x->live[k], &view);
    if (x->o->observe_overlap_query)
      x->o->observe_overlap_query(x->o->observe_ctx, i, label, h, x->live[k], known ? view.align : 0);
    al_allocation_info o;
    NTSTATUS st = x->port->allocation_query(x->adapter, x->live[k], &o);
    if (st != STATUS_SUCCESS) {
      mismatch(x, i, label, "query-live-failed", NULL, "querying live allocation 0x%08x returned %s", x->live[k],
               al_status_name(st));
      return false;
    }
    if (o.segment_id != 0 && known && view.align != 0 &&
        o.segment_offset % view.align != 0) {
      mismatch(x, i, label, "misaligned", NULL,
               "allocation 0x%08x is at offset 0x%llx of segment %u, not a multiple of its alignment %u",
               x->live[k], (unsigned long long)o.segment_offset, o.segment_id, view.align);
      return false;
    }
    if (o.segment_id != in->segment_id) continue;
    if (o.segment_offset < in->segment_offset + in->size && in->segment_offset < o.segment_offset + o.size) {
      mismatch(x, i, label, "overlap", NULL,
               "allocations 0x%08x [%llu, +%llu) and 0x%08x [%llu, +%llu) overlap in segment %u", h,
               (unsigned long long)in->segment_offset, (unsigned long long)in->size, x->live[k],
               (unsigned long long)o.segment_offset, (unsigned long long)o.size, in->segment_id);
      return false;
    }
  }
  return true;
}

/* @walk: al_adapter_check_live() (the per-call walk) when @full is false, else the full
 * al_adapter_check() (at the end of the program). */
static bool check_adapter(exec_ctx *x, uint32_t i, const char *label, bool stats, bool walk, bool full) {
  if (x->o->observe_check) {
    fz_model_counts expected;
    if (stats) fz_model_expected(x->model, &expected);
    x->o->observe_check(x->o->observe_ctx, i, label, stats ? &expected : NULL, walk);
  }
  if (stats) {
    al_adapter_stats st;
    x->port->get_stats(x->adapter, &st);
    if (!fz_model_check_stats(x->model, &st, x->msg, sizeof x->msg)) {
      mismatch(x, i, label, "live-objects", x->msg, "statistics disagree with the model: %s", x->msg);
      return false;
    }
  }
  if (!walk) return true;
  bool (*walker)(al_adapter *, char *, size_t) =
      full || x->port->adapter_check_live == NULL ? x->port->adapter_check : x->port->adapter_check_live;
  if (!walker(x->adapter, x->msg, sizeof x->msg)) {
    const char *name = walker == x->port->adapter_check ? "al_adapter_check" : "al_adapter_check_live";
    mismatch(x, i, label, "invariant-walk", x->msg, "%s: %s", name, x->msg);
    return false;
  }
  return true;
}

/* The simulated hardware's walk (sim_miniport_check_hardware: segments, page tables, engine
 * against the sim's records), when the selected miniport is the sim: the per-call form unless
 * @full (the end of the program). */
static bool check_hardware(exec_ctx *x, uint32_t i, const char *label, bool full) {
  bool (*walker)(al_adapter *, char *, size_t) =
      full || x->port->hardware_check_live == NULL ? x->port->hardware_check : x->port->hardware_check_live;
  if (!x->sim || walker == NULL || x->adapter == NULL) return true;
  if (walker(x->adapter, x->msg, sizeof x->msg)) return true;
  mismatch(x, i, label, "hardware-walk", x->msg, "sim_miniport_check_hardware%s: %s",
           walker == x->port->hardware_check ? "" : " (live)", x->msg);
  return false;
}

/* Whether call @op touches what the hardware walk checks beyond what every call does: GPU work
 * (submit, gpu_run, fence_wait) or a destroy while work is queued (deferred teardown, zombies). */
static bool gpu_related(fz_op op, bool work_queued) {
  switch (op) {
  case FZ_OP_SUBMIT:
  case FZ_OP_GPU_RUN:
  case FZ_OP_FENCE_WAIT: return true;
  case FZ_OP_DESTROY_DEVICE:
  case FZ_OP_DESTROY_RESOURCE:
  case FZ_OP_DESTROY_ALLOCATIONS: return work_queued;
  default: return false;
  }
}

/* Makes program call @i's results what later calls' references name: v<i> (a device or
 * resource handle, a fence) and v<i>.a<e> from @outs. */
static void publish_result(exec_ctx *x, uint32_t i, const exec_call *e, NTSTATUS st, const al_handle *outs) {
  uint64_t v = 0;
  uint32_t n = 0;
  if (st == STATUS_SUCCESS) {
    switch (e->a.op) {
    case FZ_OP_CREATE_DEVICE: v = e->out_device; break;
    case FZ_OP_CREATE_RESOURCE: v = e->out_resource; n = e->a.count; break;
    case FZ_OP_ADD_TO_RESOURCE: v = e->a.resource; n = e->a.count; break;
    case FZ_OP_CREATE_ALLOCATIONS: n = e->a.count; break;
    case FZ_OP_SUBMIT: v = e->out_fence; break;
    default: break;
    }
  }
  if (n > FZ_MAX_ELEMENTS) n = 0;
  x->value[i] = v;
  x->rep->value[i] = v;
  x->nalloc[i] = (uint16_t)n;
  if (n) memcpy(x->allocs[i], outs, n * sizeof outs[0]);
}

/* Predicts, calls, compares, commits and checks one call. false after a mismatch. */
static bool step(exec_ctx *x, uint32_t i, const char *label, const fz_call *c, exec_call *e) {
  fz_prediction pr;
  fz_model_predict(x->model, &e->a, &pr);
  if (c != NULL && x->o->adjust_prediction) x->o->adjust_prediction(x->o->adjust_ctx, i, c, &pr);
  if (x->o->observe_prediction) x->o->observe_prediction(x->o->observe_ctx, i, label, &pr);
  uint64_t before = x->faults_on ? failures_total(x) : 0;
  uint64_t wrong_before = x->faults_on ? wrong_answers_total(x) : 0;
  /* Read before the call: a destroy that met queued work is what the hardware walk follows. */
  const bool work_queued = x->sim && x->o->check_adapter_each_call &&
                           x->port->fence_submitted(x->adapter) > x->port->fence_completed(x->adapter);
  NTSTATUS st = invoke(x, e);
  if (i != IMPLICIT) {
    x->rep->status[i] = st;
    x->rep->calls_run = i + 1;
  } else {
    x->rep->implicit_calls++;
  }
  bool faulted = false, removed = false, wrong = false;
  if (x->faults_on) {
    uint64_t after = failures_total(x);
    faulted = after != before;
    wrong = wrong_answers_total(x) != wrong_before;
    x->rep->faults_injected += (uint32_t)(after - before);
    removed = fault_injector_failures(&x->inj, FAULT_DEVICE_REMOVED) != 0;
  }
  fz_status_set allowed = wrong ? pr.allowed_if_wrong_answer : faulted ? pr.allowed_if_faulted : pr.allowed;
  if (!(fz_status_bit(st) & allowed)) {
    char want[160];
    mismatch(x, i, label, "status-mismatch", status_word(st), "port returned %s, model expected %s (%s)%s",
             al_status_name(st), fz_status_set_format(allowed, want, sizeof want), pr.reason,
             wrong     ? " [the miniport answered wrongly during the call]"
             : faulted ? " [an injected failure happened during the call]"
                       : "");
    return false;
  }
  if (x->o->observe_outputs) {
    fz_model_output_rules rules;
    fz_model_output_rules_for(x->model, &e->a, st, &rules);
    x->o->observe_outputs(x->o->observe_ctx, i, label, st, &rules);
  }
  fz_model_result r = {
      .status = st,
      .device = e->out_device,
      .device_info = e->a.info ? &e->device_info : NULL,
      .resource = e->out_resource,
      .allocations = x->outs,
      .fence = e->out_fence,
      .gpu_completed = e->out_completed,
      .info = e->null_args ? NULL : &e->info,
      .fence_submitted = x->port->fence_submitted(x->adapter),
      .fence_completed = x->port->fence_completed(x->adapter),
      .fault_injected = faulted,
      .removed = removed,
  };
  if (!fz_model_commit(x->model, &e->a, &r, x->msg, sizeof x->msg)) {
    mismatch(x, i, label, "output-mismatch", x->msg, "port returned %s, but %s", al_status_name(st), x->msg);
    return false;
  }
  if (st == STATUS_NO_VIDEO_MEMORY) x->rep->no_video_memory++;
  if (e->a.op == FZ_OP_GPU_RUN) x->rep->gpu_run_completed += e->out_completed;
  if (st == STATUS_SUCCESS) {
    x->rep->gpu_fills += e->fills;
    x->rep->gpu_checks += e->checks;
    x->rep->gpu_copies += e->copies;
  }
  if (i != IMPLICIT) publish_result(x, i, e, st, x->outs);
  if (e->a.op == FZ_OP_QUERY && st == STATUS_SUCCESS && !check_overlap(x, i, label, e->a.allocation, &e->info))
    return false;
  if (!check_adapter(x, i, label, x->o->check_stats_each_call, x->o->check_adapter_each_call, false)) return false;
  return !x->o->check_adapter_each_call || !gpu_related(e->a.op, work_queued) || check_hardware(x, i, label, false);
}

static bool implicit_call(exec_ctx *x, fz_op op, al_handle device, uint64_t fence, const char *label) {
  exec_call e;
  memset(&e, 0, sizeof e);
  e.a.op = op;
  e.a.device = device;
  e.a.fence = fence;
  e.a.private_data_ok = true;
  return step(x, IMPLICIT, label, NULL, &e);
}

/* ---- Damage: the walks' own test ----------------------------------------------------------- */

/* Program call @i, a damage op (program.h "Damage"): the layer's walk must catch the damage with
 * the kind's phrase; then the per-call checks run on the restored state (the hardware walk too
 * for a sim kind), so a damage that was not undone exactly is a mismatch as well. Skipped
 * (STATUS_INVALID_PARAMETER) where damage is not safe or not possible: the threaded engine
 * (its thread would race the damaged fields), a miniport other than the sim for sim kinds, a
 * port without the hook. false after a mismatch. */
static bool run_damage(exec_ctx *x, uint32_t i, const fz_call *c) {
  const bool sim_kind = (c->damage & FZ_DAMAGE_SIM) != 0;
  const unsigned kind = c->damage & FZ_DAMAGE_KIND_MASK;
  al_damage_result (*damage)(al_adapter *, unsigned, unsigned, char *, size_t) =
      sim_kind ? x->port->hardware_damage : x->port->damage;
  const al_damage_kind_info *(*kind_info)(unsigned) = sim_kind ? x->port->hardware_damage_kind : x->port->damage_kind;
  const al_damage_kind_info *info = kind_info != NULL ? kind_info(kind) : NULL;
  NTSTATUS st = STATUS_INVALID_PARAMETER;
  if (!x->threaded && damage != NULL && info != NULL && (!sim_kind || x->sim)) {
    const char *walk = sim_kind ? "sim_miniport_check_hardware" : "al_adapter_check";
    x->msg[0] = '\0';
    switch (damage(x->adapter, kind, c->pick, x->msg, sizeof x->msg)) {
    case AL_DAMAGE_DETECTED:
      if (strstr(x->msg, info->expect) == NULL) {
        char caught[sizeof x->msg];
        snprintf(caught, sizeof caught, "%s", x->msg);
        mismatch(x, i, NULL, "damage-misreported", info->name,
                 "damage %s (pick %u of the %ss): %s caught it, but not with \"%s\": %s", info->name,
                 (unsigned)c->pick, info->target, walk, info->expect, caught);
        return false;
      }
      st = STATUS_SUCCESS;
      break;
    case AL_DAMAGE_MISSED:
      mismatch(x, i, NULL, "damage-missed", info->name,
               "damage %s (pick %u of the %ss): %s passed with it in place (a blind spot of the walk)",
               info->name, (unsigned)c->pick, info->target, walk);
      return false;
    case AL_DAMAGE_NO_TARGET: st = STATUS_INVALID_HANDLE; break;
    case AL_DAMAGE_UNKNOWN_KIND: st = STATUS_INVALID_PARAMETER; break;
    }
  }
  x->rep->status[i] = st;
  x->rep->calls_run = i + 1;
  x->value[i] = x->rep->value[i] = 0;
  x->nalloc[i] = 0;
  if (!check_adapter(x, i, NULL, x->o->check_stats_each_call, x->o->check_adapter_each_call, false)) return false;
  return !sim_kind || !x->o->check_adapter_each_call || check_hardware(x, i, NULL, false);
}


/* ---- Program ------------------------------------------------------------------------------ */

/* When the model knows of work not yet complete: an implicit fence_wait for every fence handed
 * out, labelled "fence_wait(N) @when call <i + 1> (@why)". false when that wait disagreed. */
static bool wait_for_submitted(exec_ctx *x, const char *when, uint32_t i, const char *why) {
  fz_model_counts cnt;
  fz_model_expected(x->model, &cnt);
  if (cnt.fence_submitted <= cnt.fence_completed) return true;
  char label[96];
  snprintf(label, sizeof label, "fence_wait(%llu) %s call %u (%s)", (unsigned long long)cnt.fence_submitted, when,
           i + 1, why);
  return implicit_call(x, FZ_OP_FENCE_WAIT, 0, cnt.fence_submitted, label);
}

/* Prepares program call @i into @e; before a destroy with AL_DESTROY_ASSUME_NOT_IN_USE it waits
 * for queued work, to make the caller's promise true. false when that wait disagreed. */
static bool prepare_program_call(exec_ctx *x, uint32_t i, const fz_call *c, exec_call *e) {
  memset(e, 0, sizeof *e);
  prepare(x, i, c, e);
  if ((c->op != FZ_OP_DESTROY_RESOURCE && c->op != FZ_OP_DESTROY_ALLOCATIONS) ||
      !(e->a.flags & AL_DESTROY_ASSUME_NOT_IN_USE))
    return true;
  return wait_for_submitted(x, "before", i, "assume_not_in_use");
}

/* Threaded engine: after program call @i (not a submit) while work is queued, waits for every
 * fence handed out, through the port (its timed-wait path), so that a call never meets work
 * the model does not know to be done, and the deferred destroys the call queued are released
 * and checked exactly (execute.h "Threaded engine"). Submits are not followed by a wait: the
 * calls after them (up to the next call that is not a submit) run while the engine thread
 * works. false when the wait disagreed. */
static bool drain_after_call(exec_ctx *x, uint32_t i, const fz_call *c) {
  if (!x->threaded || c->op == FZ_OP_SUBMIT) return true;
  return wait_for_submitted(x, "after", i, "threaded engine");
}

/* Runs program call @i in sequence (fz_execute, and a concurrent program's calls before the
 * fork); a mismatch sets x->failed. false when the call was not made (the wait before it
 * disagreed). */
static bool run_program_call(exec_ctx *x, uint32_t i, const fz_call *c, exec_call *e) {
  if (c->op == FZ_OP_DAMAGE) {
    run_damage(x, i, c);
    return true;
  }
  if (!prepare_program_call(x, i, c, e)) return false;
  if (step(x, i, NULL, c, e)) drain_after_call(x, i, c);
  return true;
}

/* Points the context at a new program run: its options, port, report and results. */
static void begin_program(exec_ctx *x, const fz_program *p, const fz_exec_options *o, fz_exec_report *out) {
  x->o = o;
  x->port = o->port ? o->port : &fz_port_alloclab;
  x->p = p;
  x->rep = out ? out : &x->local_report;
  memset(x->rep, 0, sizeof *x->rep);
  x->failed = false;
  x->totals_before = NULL; /* fz_execute sets it */
  x->sim = strcmp(al_selected_miniport.name, "sim") == 0;
  x->threaded = p->threaded_engine;
  x->rep->threaded_engine = x->threaded;
  memset(x->nalloc, 0, sizeof x->nalloc);
}

/* The host-allocation fault hook (alloclab/testing.h): every host allocation of the port, the
 * sim and the GPU is one call of the injector's FAULT_HOST_ALLOCATION point. */
static bool host_allocation_should_fail(void *context, size_t bytes) {
  (void)bytes;
  return fault_injector_should_fail(context, FAULT_HOST_ALLOCATION);
}

/* The point a fault request names (FZ_FAULT_AT_BRING_UP stripped), and whether it is live. */
_Static_assert(FAULT_POINT_COUNT <= FZ_FAULT_AT_BRING_UP, "fault point ids must stay below the at=bring_up bit");
static bool requested_point(const exec_ctx *x, uint32_t f, enum fault_point *out_point) {
  return fault_injector_point_from_id(x->p->faults[f].point & ~FZ_FAULT_AT_BRING_UP, out_point);
}

/* Arms the program's fault requests made at bring-up (@at_bring_up) or after it. */
static void arm_requests(exec_ctx *x, bool at_bring_up) {
  uint32_t nfaults = x->p->fault_count < 4 ? x->p->fault_count : 4;
  for (uint32_t f = 0; f < nfaults; f++) {
    enum fault_point pt;
    if (!requested_point(x, f, &pt) || ((x->p->faults[f].point & FZ_FAULT_AT_BRING_UP) != 0) != at_bring_up) continue;
    uint32_t nth = x->p->faults[f].nth ? x->p->faults[f].nth : 1u;
    fault_injector_arm(&x->inj, pt, nth, x->p->faults[f].repeat);
  }
}

typedef enum setup_result {
  SETUP_READY,          /* the adapter is up: run the program */
  SETUP_MISMATCH,       /* reported (the adapter could not be brought up for no good reason) */
  SETUP_BRING_UP_FAILED /* an injected bring-up failure: a clean, checked end of the program */
} setup_result;

static setup_result setup(exec_ctx *x) {
  const al_miniport_descriptor *mp = &al_selected_miniport;
  const fz_exec_options *o = x->o;
  al_hardware_request req = {
      .memory_segment_size = o->memory_segment_size ? o->memory_segment_size : FZ_EXEC_DEFAULT_MEMORY_SEGMENT_SIZE,
      .aperture_segment_size =
          o->aperture_segment_size ? o->aperture_segment_size : FZ_EXEC_DEFAULT_APERTURE_SEGMENT_SIZE,
      .memory_page_size = o->memory_page_size,
      .threaded_engine = x->threaded,
  };
  uint32_t hw_size = mp->make_hardware_config(&req, x->hw, HW_CAP);
  if (hw_size == 0) {
    mismatch(x, IMPLICIT, "setup", "hardware-config", NULL, "miniport \"%s\" cannot make the hardware configuration",
             mp->name);
    return SETUP_MISMATCH;
  }
  x->faults_on = false;
  fault_injector_init(&x->inj);
  /* A threaded program arms no fault: the engine thread reaches fault points too (a segment
   * page committed by a FILL, the copy's bounce buffer: FAULT_SEGMENT_SPACE and
   * FAULT_HOST_ALLOCATION), so which call is the n-th would depend on timing. */
  uint32_t nfaults = x->threaded ? 0u : x->p->fault_count < 4 ? x->p->fault_count : 4;
  bool want_faults = false, wrong_answers = false;
  for (uint32_t f = 0; f < nfaults; f++) {
    enum fault_point pt;
    if (requested_point(x, f, &pt)) {
      want_faults = true;
      if (fault_point_is_wrong_answer(pt)) wrong_answers = true;
    }
  }
  if (want_faults && x->sim && hw_size == sizeof(SIM_HARDWARE_CONFIG)) {
    SIM_HARDWARE_CONFIG cfg;
    memcpy(&cfg, x->hw, sizeof cfg);
    cfg.Faults = &x->inj;
    memcpy(x->hw, &cfg, sizeof cfg);
    x->faults_on = true;
  }
  al_adapter_config ac = {
      .driver_entry = mp->driver_entry, .hardware_config = x->hw, .hardware_config_size = hw_size,
      /* The verifier aborts on a broken miniport rule by design, so a program that arms a
       * wrong answer runs without it: the port's own checks (ddi.c) must then catch the answer
       * and fail the call, which the model predicts. */
      .flags = x->faults_on && wrong_answers ? 0u : AL_ADAPTER_VERIFIER};
  if (x->faults_on) {
    /* The requests marked at=bring_up count from bring-up's first call of their point; the
     * hook is installed now so that bring-up's host allocations count too, and removed in
     * teardown() after the adapter is destroyed (teardown's destroys must not need memory), or
     * below when bring-up fails. */
    arm_requests(x, true);
    x->host_fault = (al_host_alloc_fault){host_allocation_should_fail, &x->inj};
    al_testing_set_host_alloc_fault(&x->host_fault);
  }
  x->adapter = NULL;
  NTSTATUS st = x->port->adapter_create(&ac, &x->adapter);
  if (st != STATUS_SUCCESS || x->adapter == NULL) {
    if (x->faults_on) al_testing_set_host_alloc_fault(NULL);
    uint64_t injected = x->faults_on ? failures_total(x) : 0;
    x->rep->faults_injected = (uint32_t)injected;
    x->rep->bring_up_status = st;
    /* al_adapter_create documents STATUS_NO_MEMORY for host memory, and the sim turns a failed
     * segment, page-table page or driver object at AddDevice into it; "on failure nothing is
     * left" (fz_execute compares the sim's totals, ASan the port's memory). */
    if (injected != 0 && st == STATUS_NO_MEMORY && x->adapter == NULL) {
      x->rep->bring_up_failed = true;
      return SETUP_BRING_UP_FAILED;
    }
    mismatch(x, IMPLICIT, "setup", "adapter-create", NULL, "al_adapter_create over \"%s\" returned %s%s%s", mp->name,
             al_status_name(st), x->adapter != NULL ? " and an adapter" : "",
             injected ? " [an injected failure happened during bring-up: only STATUS_NO_MEMORY and no adapter may follow]"
                      : "");
    x->adapter = NULL;
    return SETUP_MISMATCH;
  }
  al_adapter_stats stats;
  x->port->get_stats(x->adapter, &stats);
  fz_model_config mc;
  memset(&mc, 0, sizeof mc);
  mc.segment_count = stats.segment_count < DXGK_MAX_SEGMENTS ? stats.segment_count : DXGK_MAX_SEGMENTS;
  mc.page_size_max = 4096;
  for (uint32_t s = 0; s < mc.segment_count; s++) {
    mc.segments[s].id = stats.segments[s].id;
    mc.segments[s].aperture = stats.segments[s].aperture;
    mc.segments[s].size = stats.segments[s].size;
    if (stats.segments[s].page_size > mc.page_size_max) mc.page_size_max = stats.segments[s].page_size;
  }
  mc.miniport_validates_private_data = x->sim;
  mc.placed_size_is_page_rounded = x->sim;
  mc.strict_release = o->strict_release;
  mc.threaded_engine = x->threaded;
  fz_model_reset(x->model, &mc);
  /* The other requests count from the program's first call. */
  if (x->faults_on) arm_requests(x, false);
  return SETUP_READY;
}

/* Destroys the adapter, then removes the host-allocation fault hook (teardown's destroys must
 * not need memory: setup() explains). */
static void destroy_adapter(exec_ctx *x) {
  x->port->adapter_destroy(x->adapter);
  x->adapter = NULL;
  if (x->faults_on) al_testing_set_host_alloc_fault(NULL);
}

static void teardown(exec_ctx *x) {
  char label[96];
  if (!x->failed) check_hardware(x, IMPLICIT, "end of program", true);
  if (x->p->adapter_teardown) {
    /* options(teardown=adapter): al_adapter_destroy destroys the live devices itself (program.h
     * "Teardown"); the sim's totals after it (fz_execute) and LeakSanitizer check it left
     * nothing behind. */
    destroy_adapter(x);
    return;
  }
  if (!x->failed) {
    al_handle devs[FZ_MODEL_MAX_DEVICES];
    uint32_t n = fz_model_live_devices(x->model, devs, FZ_MODEL_MAX_DEVICES);
    for (uint32_t k = 0; k < n && !x->failed; k++) {
      snprintf(label, sizeof label, "teardown destroy_device(0x%08x)", devs[k]);
      implicit_call(x, FZ_OP_DESTROY_DEVICE, devs[k], 0, label);
    }
  }
  if (!x->failed) {
    fz_model_counts cnt;
    fz_model_expected(x->model, &cnt);
    if (cnt.fence_submitted) {
      snprintf(label, sizeof label, "teardown fence_wait(%llu)", (unsigned long long)cnt.fence_submitted);
      implicit_call(x, FZ_OP_FENCE_WAIT, 0, cnt.fence_submitted, label);
    }
  }
  if (!x->failed) {
    al_adapter_stats st;
    x->port->get_stats(x->adapter, &st);
    const char *what = NULL;
    if (st.devices || st.resources || st.allocations || st.bindings) what = "objects are left";
    else if (st.deferred_allocations || st.deferred_destroys) what = "deferred destroys are left";
    for (uint32_t s = 0; what == NULL && s < st.segment_count && s < DXGK_MAX_SEGMENTS; s++)
      if (st.segments[s].used_bytes || st.segments[s].live_blocks) what = "segment memory is left";
    if (what == NULL && x->totals_before != NULL) {
      /* The miniport must hold nothing more than before the program either: RemoveDevice would
       * free what the port leaked in it (an undo that missed objects), hiding the leak from the
       * totals compared after al_adapter_destroy (the verifier, when on, checks it there). */
      sim_miniport_stats now;
      sim_miniport_get_stats(&now);
      const sim_miniport_stats *b = x->totals_before;
      if (now.devices != b->devices || now.resources != b->resources || now.allocations != b->allocations ||
          now.bindings != b->bindings || now.zombie_devices != b->zombie_devices)
        mismatch(x, IMPLICIT, "teardown", "miniport-leak", "objects",
                 "the sim miniport still holds objects the port no longer names after every device "
                 "was destroyed: devices %llu resources %llu allocations %llu bindings %llu zombies %llu "
                 "(before the program: %llu %llu %llu %llu %llu)",
                 (unsigned long long)now.devices, (unsigned long long)now.resources,
                 (unsigned long long)now.allocations, (unsigned long long)now.bindings,
                 (unsigned long long)now.zombie_devices, (unsigned long long)b->devices,
                 (unsigned long long)b->resources, (unsigned long long)b->allocations,
                 (unsigned long long)b->bindings, (unsigned long long)b->zombie_devices);
    }
    if (x->failed) {
      /* reported just above */
    } else if (what)
      mismatch(x, IMPLICIT, "teardown", "teardown-leak", what,
               "%s after every device was destroyed and the GPU drained: devices %u resources %u "
               "allocations %u bindings %u deferred %u/%u",
               what, st.devices, st.resources, st.allocations, st.bindings, st.deferred_destroys,
               st.deferred_allocations);
    else if (check_adapter(x, IMPLICIT, "teardown", true, true, true))
      check_hardware(x, IMPLICIT, "teardown", true);
  }
  destroy_adapter(x);
}

static bool totals_equal(const sim_miniport_stats *a, const sim_miniport_stats *b, char *buf, size_t cap) {
#define FZ_TOTAL(f)                                                                                \
  if (a->f != b->f) {                                                                              \
    snprintf(buf, cap, #f " %llu before the program, %llu after", (unsigned long long)a->f,        \
             (unsigned long long)b->f);                                                            \
    return false;                                                                                  \
  }
  FZ_TOTAL(adapters)
  FZ_TOTAL(devices)
  FZ_TOTAL(zombie_devices)
  FZ_TOTAL(resources)
  FZ_TOTAL(allocations)
  FZ_TOTAL(bindings)
  FZ_TOTAL(host_bytes)
  FZ_TOTAL(committed_bytes)
  FZ_TOTAL(mapped_bytes)
  FZ_TOTAL(va_reserved_bytes)
  FZ_TOTAL(queued_submissions)
#undef FZ_TOTAL
  return true;
}

/* Reads the sim miniport's process-wide live totals into @before, when the options ask for the
 * check (and the sim runs), before the adapter is brought up; totals_check() compares. */
static void totals_begin(exec_ctx *x, sim_miniport_stats *before) {
  bool totals = x->sim && x->o->check_miniport_totals;
  if (totals) sim_miniport_get_stats(before);
  x->totals_before = totals ? before : NULL;
}

/* After the adapter is gone (torn down, or its bring-up failed as @ready says): the totals must
 * be back to what totals_begin() read. */
static void totals_check(exec_ctx *x, setup_result ready) {
  if (x->totals_before == NULL || x->failed) return;
  sim_miniport_stats after;
  sim_miniport_get_stats(&after);
  if (!totals_equal(x->totals_before, &after, x->msg, sizeof x->msg)) {
    char field[64]; /* the total that changed: the message's first word */
    snprintf(field, sizeof field, "%.*s", (int)strcspn(x->msg, " "), x->msg);
    mismatch(x, IMPLICIT, ready == SETUP_READY ? "after al_adapter_destroy" : "after the failed bring-up",
             "miniport-leak", field, "the sim miniport's live totals: %s (leak)", x->msg);
  }
}

int fz_execute(const fz_program *p, const fz_exec_options *o, fz_exec_report *out) {
  fz_exec_options defaults;
  if (o == NULL) {
    fz_exec_options_default(&defaults);
    o = &defaults;
  }
  exec_ctx *x = ctx_get();
  if (x == NULL) {
    fprintf(stderr, "alloclab oracle: out of host memory for the executor\n");
    abort();
  }
  begin_program(x, p, o, out);
  uint32_t ncalls = p->call_count < FZ_MAX_CALLS ? p->call_count : FZ_MAX_CALLS;

  sim_miniport_stats before;
  totals_begin(x, &before);
  setup_result ready = setup(x);
  if (ready == SETUP_MISMATCH) return FZ_EXEC_SETUP_FAILED;
  if (ready == SETUP_READY) {
    exec_call e;
    for (uint32_t i = 0; i < ncalls && !x->failed; i++) {
      const fz_call *c = &p->calls[i];
      if (!run_program_call(x, i, c, &e)) break;
      if (o->verbose) {
        char text[512];
        fz_format_call(text, sizeof text, p, i);
        fprintf(stderr, "%s = %s\n", text, al_status_name(x->rep->status[i]));
      }
    }
    teardown(x);
  } else if (o->verbose) {
    fprintf(stderr, "adapter bring-up failed: %s (an injected failure; the program ends here)\n",
            al_status_name(x->rep->bring_up_status));
  }

  totals_check(x, ready);
  return x->failed ? FZ_EXEC_MISMATCH : FZ_EXEC_OK;
}

int fz_execute_text(const char *text, const fz_exec_options *o, fz_exec_report *out) {
  fz_program *p = malloc(sizeof *p);
  if (p == NULL) {
    fprintf(stderr, "alloclab oracle: out of host memory\n");
    abort();
  }
  char err[256];
  if (!fz_parse_program(text, p, err, sizeof err)) {
    if (out) {
      memset(out, 0, sizeof *out);
      snprintf(out->message, sizeof out->message, "not a program: %s", err);
    }
    free(p);
    return FZ_EXEC_PARSE_FAILED;
  }
  int rc = fz_execute(p, o, out);
  free(p);
  return rc;
}

/* ---- Concurrent programs (fz_execute_concurrent) ------------------------------------------ */

/* One concurrent call: its own copies of every buffer its arguments point into, so the other
 * logical threads' calls (prepared in the shared context while it is suspended) cannot change
 * them, and the model can read its list after the run. */
typedef struct conc_call {
  uint32_t index;  /* program call */
  uint32_t thread; /* logical thread */
  uint64_t start, end; /* logical clock: prepared at start, returned at end */
  bool ran;
  NTSTATUS status;
  /* Injected failures during the call (conc_fault_seen): one failed, one was a wrong answer,
   * one was FAULT_DEVICE_REMOVED. */
  bool faulted, wrong, removed;
  uint64_t completed_after; /* al_fence_completed() when it returned */
  exec_call e;
  al_handle list[LIST_CAP];
  al_allocation_desc descs[LIST_CAP];
  al_handle outs[LIST_CAP];
  _Alignas(8) uint8_t blob[BLOB_CAP];
  _Alignas(8) uint8_t bad_blob[BLOB_CAP];
  _Alignas(8) uint8_t cmd[CMD_CAP];
} conc_call;

typedef struct conc_ctx {
  exec_ctx *x;
  const fz_program *p;
  const fz_concurrency *cc;
  uint32_t count; /* concurrent calls */
  uint64_t clock;
  conc_call calls[FZ_CONCURRENT_MAX_CALLS];
  fz_model *snapshot;
  uint32_t order[FZ_CONCURRENT_MAX_CALLS]; /* the linearization found */
  /* The search's backtracking (conc_linearize): snapshot holds the model before the first
   * node that had a choice (at depth base_depth, once have_base); path[d] is the call the
   * current path applied at depth d. */
  bool have_base;
  uint32_t base_depth;
  uint32_t path[FZ_CONCURRENT_MAX_CALLS];
  uint64_t search_nodes;
  char why[1024]; /* the deepest disagreement seen by the search */
  const char *why_op; /* its call's operation (the oracle tag's OP) */
  uint32_t why_depth;
  /* Injected failures so far, per logical thread (conc_fault_seen): the logical threads
   * interleave on one OS thread, so the injector's counters alone cannot say whose call a
   * failure belongs to. */
  struct conc_fault_counts {
    uint32_t failures, wrong_answers, removals;
  } seen[FZ_SCHED_MAX_THREADS];
} conc_ctx;

static _Thread_local conc_ctx *tls_conc;

/* Moves a pointer into the shared context's buffers to the same place in @k's copies. */
#define CONC_REBASE(ptr, x, k, field)                                                            \
  do {                                                                                           \
    const uint8_t *p_ = (const uint8_t *)(ptr);                                                  \
    const uint8_t *b_ = (const uint8_t *)(x)->field;                                             \
    if (p_ >= b_ && p_ < b_ + sizeof (x)->field)                                                 \
      (ptr) = (void *)((uint8_t *)(k)->field + (p_ - b_));                                       \
  } while (0)

static void conc_rebase(exec_ctx *x, conc_call *k) {
  exec_call *e = &k->e;
  memcpy(k->list, x->list, sizeof k->list);
  memcpy(k->descs, x->descs, sizeof k->descs);
  memcpy(k->blob, x->blob, sizeof k->blob);
  memcpy(k->bad_blob, x->bad_blob, sizeof k->bad_blob);
  const uint8_t *command = e->sargs.command;
  if (command >= x->cmd && command < x->cmd + sizeof x->cmd)
    memcpy(k->cmd, x->cmd, e->sargs.command_size < sizeof k->cmd ? e->sargs.command_size : sizeof k->cmd);
  CONC_REBASE(e->a.list, x, k, list);
  CONC_REBASE(e->dargs.allocations, x, k, list);
  CONC_REBASE(e->sargs.allocations, x, k, list);
  CONC_REBASE(e->sargs.command, x, k, cmd);
  CONC_REBASE(e->cargs.allocations, x, k, descs);
  CONC_REBASE(e->cargs.out_allocations, x, k, outs);
  uint32_t descs = e->cargs.allocation_count < LIST_CAP ? e->cargs.allocation_count : LIST_CAP;
  for (uint32_t j = 0; j < descs; j++) {
    CONC_REBASE(k->descs[j].private_data, x, k, blob);
    CONC_REBASE(k->descs[j].private_data, x, k, bad_blob);
  }
}

/* The call as it runs concurrently: GPU commands become NOP (a FILL's pattern depends on the
 * order of calls the run has not fixed yet), destroys lose ASSUME_NOT_IN_USE (nothing can make
 * that promise true while other threads submit). */
static fz_call conc_adjust(const fz_call *c) {
  fz_call a = *c;
  if (a.op == FZ_OP_SUBMIT) a.command = FZ_COMMAND_NOP;
  if (a.op == FZ_OP_DESTROY_RESOURCE || a.op == FZ_OP_DESTROY_ALLOCATIONS) a.flags &= ~AL_DESTROY_ASSUME_NOT_IN_USE;
  return a;
}

/* Damage is not run concurrently: another logical thread would see the damaged fields. */
static bool conc_runs(fz_op op) {
  return op != FZ_OP_GPU_RUN && op != FZ_OP_FENCE_WAIT && op != FZ_OP_DAMAGE && op < FZ_OP_COUNT;
}

/* The injector's observer while the logical threads run (fault_injector_observe): a failure
 * belongs to the call of the logical thread running when it was injected. The failures of the
 * calls before the fork and of the teardown are counted by step(), as in fz_execute. */
static void conc_fault_seen(void *ctx, enum fault_point point) {
  conc_ctx *cx = ctx;
  uint32_t t = fz_scheduler_running_thread();
  if (t >= FZ_SCHED_MAX_THREADS) return;
  cx->seen[t].failures++;
  if (fault_point_is_wrong_answer(point)) cx->seen[t].wrong_answers++;
  if (point == FAULT_DEVICE_REMOVED) cx->seen[t].removals++;
}

static void conc_thread(void *arg, uint32_t thread) {
  conc_ctx *cx = arg;
  exec_ctx *x = cx->x;
  for (uint32_t k = 0; k < cx->count; k++) {
    conc_call *q = &cx->calls[k];
    if (q->thread != thread) continue;
    fz_call c = conc_adjust(&cx->p->calls[q->index]);
    memset(&q->e, 0, sizeof q->e);
    q->start = ++cx->clock;
    prepare(x, q->index, &c, &q->e);
    conc_rebase(x, q);
    const struct conc_fault_counts before = cx->seen[thread];
    q->status = invoke(x, &q->e);
    q->faulted = cx->seen[thread].failures != before.failures;
    q->wrong = cx->seen[thread].wrong_answers != before.wrong_answers;
    q->removed = cx->seen[thread].removals != before.removals;
    q->completed_after = x->port->fence_completed(x->adapter);
    q->end = ++cx->clock;
    q->ran = true;
    publish_result(x, q->index, &q->e, q->status, q->outs);
    x->rep->status[q->index] = q->status;
  }
}

/* True for a call that places allocations in a segment while it runs (a create, or a submit
 * paging its allocations in), even when it then fails and gives the space back. */
static bool conc_places_memory(const conc_call *q) {
  switch (q->e.a.op) {
  case FZ_OP_CREATE_ALLOCATIONS:
  case FZ_OP_CREATE_RESOURCE:
  case FZ_OP_ADD_TO_RESOURCE:
  case FZ_OP_SUBMIT: return true;
  default: return false;
  }
}

/* Segment space is shared capacity, not state a call leaves behind: while one call holds space
 * it will give back (a create that fails later, pinned allocations of a submit), another may
 * find the segment full. So STATUS_NO_VIDEO_MEMORY is accepted from a call that overlapped, in
 * time, a call placing memory on another thread; every other status must fit an order. */
static bool conc_capacity_contended(const conc_ctx *cx, const conc_call *q) {
  if (q->status != STATUS_NO_VIDEO_MEMORY) return false;
  for (uint32_t k = 0; k < cx->count; k++) {
    const conc_call *o = &cx->calls[k];
    if (o != q && o->ran && o->thread != q->thread && conc_places_memory(o) && o->start < q->end &&
        q->start < o->end)
      return true;
  }
  return false;
}

/* What a report says of a call that met an injected failure (step()'s words). */
static const char *conc_fault_note(const conc_call *q) {
  return q->wrong ? " [the miniport answered wrongly during the call]"
         : q->faulted ? " [an injected failure happened during the call]"
                      : "";
}

/* Tries to commit concurrent call @k to the model: its status must be one the model allows
 * there (with an injected failure during it, one the model allows then), and its outputs must
 * fit. */
static bool conc_apply(conc_ctx *cx, uint32_t k, uint32_t depth) {
  exec_ctx *x = cx->x;
  conc_call *q = &cx->calls[k];
  fz_prediction pr;
  fz_model_predict(x->model, &q->e.a, &pr);
  char text[512];
  fz_status_set allowed = q->wrong ? pr.allowed_if_wrong_answer : q->faulted ? pr.allowed_if_faulted : pr.allowed;
  if (!(fz_status_bit(q->status) & allowed) && !conc_capacity_contended(cx, q)) {
    if (depth >= cx->why_depth) {
      char want[160];
      cx->why_depth = depth;
      cx->why_op = fz_op_name(cx->p->calls[q->index].op);
      fz_format_call(text, sizeof text, cx->p, q->index);
      snprintf(cx->why, sizeof cx->why, "after %u calls in order, call %u %.400s returned %s, model expected %s (%.200s)%s",
               depth, q->index + 1, text, al_status_name(q->status), fz_status_set_format(allowed, want, sizeof want),
               pr.reason, conc_fault_note(q));
    }
    return false;
  }
  fz_model_counts cnt;
  fz_model_expected(x->model, &cnt);
  /* What had completed when the call returned, but never more than was submitted at the point
   * this order puts it: a call that returned late (after others' work was submitted and had
   * completed) may be placed before that work. */
  uint64_t submitted_here =
      q->e.a.op == FZ_OP_SUBMIT && q->status == STATUS_SUCCESS ? q->e.out_fence : cnt.fence_submitted;
  uint64_t completed_here = q->completed_after > cnt.fence_completed ? q->completed_after : cnt.fence_completed;
  if (completed_here > submitted_here && submitted_here >= cnt.fence_completed) completed_here = submitted_here;
  fz_model_result r = {
      .status = q->status,
      .device = q->e.out_device,
      .device_info = q->e.a.info ? &q->e.device_info : NULL,
      .resource = q->e.out_resource,
      .allocations = q->outs,
      .fence = q->e.out_fence,
      .info = q->e.null_args ? NULL : &q->e.info,
      .fence_submitted = submitted_here,
      .fence_completed = completed_here,
      .fault_injected = q->faulted,
      .removed = q->removed,
  };
  if (!fz_model_commit(x->model, &q->e.a, &r, x->msg, sizeof x->msg)) {
    if (depth >= cx->why_depth) {
      cx->why_depth = depth;
      cx->why_op = fz_op_name(cx->p->calls[q->index].op);
      fz_format_call(text, sizeof text, cx->p, q->index);
      snprintf(cx->why, sizeof cx->why, "after %u calls in order, call %u %.400s returned %s, but %.400s%s", depth,
               q->index + 1, text, al_status_name(q->status), x->msg, conc_fault_note(q));
    }
    return false;
  }
  return true;
}

/* Puts the model back in the state it had at @depth of the current path: the base snapshot,
 * then the path's calls from the base down to @depth again (they were accepted in that order
 * before, and the model is deterministic). */
static void conc_restore(conc_ctx *cx, uint32_t depth) {
  exec_ctx *x = cx->x;
  fz_model_copy(x->model, cx->snapshot);
  for (uint32_t d = cx->base_depth; d < depth; d++) {
    if (!conc_apply(cx, cx->path[d], d)) {
      fprintf(stderr, "alloclab oracle: internal: replaying call %u at depth %u of a linearization "
              "failed (the model is not deterministic)\n", cx->calls[cx->path[d]].index + 1, d);
      abort();
    }
  }
}

/* Wing & Gong: is there an order of the remaining calls (bit set @left), consistent with real
 * time (a call that returned before another started comes first), in which the model accepts
 * every status? Leaves the model in the state after the order found.
 * Cost: the search takes one snapshot per input, at the first node with a choice, and
 * backtracks by restoring it and re-applying the path above (conc_restore), instead of a
 * snapshot at every node with a choice: when fz_model_copy copied the whole model (several
 * MiB), those copies were ~60% of the CPU of a schedules input, and the one snapshot still
 * ~16%; it now copies what the model holds. */
static bool conc_linearize(conc_ctx *cx, uint32_t left, uint32_t depth) {
  if (left == 0) return true;
  if (++cx->search_nodes > FZ_CONCURRENT_SEARCH_LIMIT) return false;
  uint64_t min_end = UINT64_MAX;
  for (uint32_t k = 0; k < cx->count; k++)
    if ((left >> k & 1u) && cx->calls[k].end < min_end) min_end = cx->calls[k].end;
  /* Candidates: started before the earliest return among the rest; tried in return order. */
  uint32_t cand[FZ_CONCURRENT_MAX_CALLS], n = 0;
  for (uint32_t k = 0; k < cx->count; k++)
    if ((left >> k & 1u) && cx->calls[k].start <= min_end) cand[n++] = k;
  for (uint32_t a = 1; a < n; a++)
    for (uint32_t b = a; b > 0 && cx->calls[cand[b]].end < cx->calls[cand[b - 1]].end; b--) {
      uint32_t t = cand[b];
      cand[b] = cand[b - 1];
      cand[b - 1] = t;
    }
  if (n > 1 && !cx->have_base) {
    fz_model_copy(cx->snapshot, cx->x->model);
    cx->have_base = true;
    cx->base_depth = depth;
  }
  for (uint32_t j = 0; j < n; j++) {
    uint32_t k = cand[j];
    cx->path[depth] = k;
    if (conc_apply(cx, k, depth) && conc_linearize(cx, left & ~(1u << k), depth + 1)) {
      cx->order[depth] = k;
      return true;
    }
    if (n == 1) return false; /* nothing else to try here: the caller restores */
    conc_restore(cx, depth);
  }
  return false;
}

static conc_ctx *conc_get(exec_ctx *x) {
  if (tls_conc == NULL) {
    conc_ctx *cx = calloc(1, sizeof *cx);
    if (cx == NULL) return NULL;
    fz_model_config empty;
    memset(&empty, 0, sizeof empty);
    if ((cx->snapshot = fz_model_create(&empty)) == NULL) return NULL;
    tls_conc = cx;
  }
  tls_conc->x = x;
  return tls_conc;
}

/* Prints the concurrent calls: thread, interval, status (the interleaving that failed). */
static void conc_print(const conc_ctx *cx) {
  fprintf(stderr, "concurrent calls (thread, [start, end] on the logical clock, status):\n");
  for (uint32_t k = 0; k < cx->count; k++) {
    const conc_call *q = &cx->calls[k];
    char text[512];
    fz_format_call(text, sizeof text, cx->p, q->index);
    fprintf(stderr, "  t%u [%llu, %llu] %s = %s%s\n", q->thread, (unsigned long long)q->start,
            (unsigned long long)q->end, text, al_status_name(q->status), conc_fault_note(q));
  }
}

int fz_execute_concurrent(const fz_program *p, const fz_concurrency *cc, const fz_exec_options *o,
                          fz_exec_report *out) {
  fz_exec_options defaults;
  if (o == NULL) {
    fz_exec_options_default(&defaults);
    o = &defaults;
  }
  exec_ctx *x = ctx_get();
  conc_ctx *cx = x ? conc_get(x) : NULL;
  if (x == NULL || cx == NULL) {
    fprintf(stderr, "alloclab oracle: out of host memory for the executor\n");
    abort();
  }
  begin_program(x, p, o, out);
  uint32_t ncalls = p->call_count < FZ_MAX_CALLS ? p->call_count : FZ_MAX_CALLS;
  uint32_t fork = cc->fork < ncalls ? cc->fork : ncalls;
  uint32_t threads = cc->threads < 1 ? 1 : cc->threads > FZ_SCHED_MAX_THREADS ? FZ_SCHED_MAX_THREADS : cc->threads;
  memset(x->value, 0, sizeof x->value);
  cx->p = p;
  cx->cc = cc;
  cx->clock = 0;
  cx->count = 0;
  cx->search_nodes = 0;
  cx->why[0] = '\0';
  cx->why_op = NULL;
  cx->why_depth = 0;

  /* No threaded engine: the deterministic scheduler owns every thread that takes a port lock,
   * and an engine thread of the sim's own would take the port's fence lock unscheduled. So the
   * fault requests are armed as in fz_execute: only the logical threads reach fault points, one
   * at a time in the order the schedule fixes, so the n-th call of a point is the same call
   * every run, and conc_fault_seen tells each concurrent call the failures it met. */
  x->threaded = false;
  x->rep->threaded_engine = false;
  memset(cx->seen, 0, sizeof cx->seen);
  sim_miniport_stats before;
  totals_begin(x, &before);
  setup_result ready = setup(x);
  if (ready == SETUP_MISMATCH) return FZ_EXEC_SETUP_FAILED;
  if (ready == SETUP_BRING_UP_FAILED) {
    /* An injected bring-up failure ends the program cleanly, as in fz_execute. */
    for (uint32_t i = 0; i < ncalls; i++) x->rep->status[i] = FZ_STATUS_NOT_RUN;
    totals_check(x, ready);
    return x->failed ? FZ_EXEC_MISMATCH : FZ_EXEC_OK;
  }

  exec_call e;
  for (uint32_t i = 0; i < fork && !x->failed; i++) {
    if (!run_program_call(x, i, &p->calls[i], &e)) break;
  }
  if (!x->failed) {
    /* The calls after the fork that are not run say so: the report's zeroed status would read
     * STATUS_SUCCESS. A damage op's status says it was not run (program.h "Damage"); gpu_run,
     * fence_wait and the calls past FZ_CONCURRENT_MAX_CALLS read FZ_STATUS_NOT_RUN (those run
     * concurrently get their status from conc_thread). */
    for (uint32_t i = fork; i < ncalls; i++)
      x->rep->status[i] = p->calls[i].op == FZ_OP_DAMAGE ? STATUS_INVALID_PARAMETER : FZ_STATUS_NOT_RUN;
    for (uint32_t i = fork, j = 0; i < ncalls && cx->count < FZ_CONCURRENT_MAX_CALLS; i++, j++) {
      if (!conc_runs(p->calls[i].op)) continue;
      conc_call *q = &cx->calls[cx->count++];
      q->index = i;
      q->thread = j % threads;
      q->ran = false;
    }
    fz_schedule_report sr;
    if (x->faults_on) fault_injector_observe(&x->inj, conc_fault_seen, cx);
    int rc = cc->preemptive
                 ? fz_scheduler_run_preempting(threads, conc_thread, cx, cc->preemptions, cc->preemption_count, &sr)
                 : fz_scheduler_run(threads, conc_thread, cx, cc->choices, cc->choice_count, &sr);
    fault_injector_observe(&x->inj, NULL, NULL);
    for (uint32_t t = 0; t < FZ_SCHED_MAX_THREADS; t++) x->rep->faults_injected += cx->seen[t].failures;
    x->rep->calls_run = ncalls;
    if (rc != FZ_SCHED_OK) {
      char tag[300];
      oracle_tag("schedule", sr.message, "concurrent calls", tag, sizeof tag);
      snprintf(x->rep->message, sizeof x->rep->message, "alloclab oracle: schedules: %s%s", sr.message, tag);
      x->rep->mismatches++;
      x->failed = true;
      fprintf(stderr, "%s\n", x->rep->message);
      conc_print(cx);
      print_program(x, ncalls);
      fflush(stderr);
      abort(); /* the logical threads are stuck mid-call: nothing can be torn down */
    }
    if (o->verbose) conc_print(cx);
    uint32_t all = cx->count == 32 ? UINT32_MAX : (1u << cx->count) - 1u;
    cx->have_base = false;
    if (!conc_linearize(cx, all, 0)) {
      bool gave_up = cx->search_nodes > FZ_CONCURRENT_SEARCH_LIMIT;
      char tag[300];
      oracle_tag(gave_up ? "linearizability:search-limit" : "linearizability", NULL,
                 cx->why_op ? cx->why_op : "concurrent calls", tag, sizeof tag);
      snprintf(x->rep->message, sizeof x->rep->message,
               "alloclab oracle: no order of the %u concurrent calls explains their statuses%s; deepest "
               "disagreement: %.900s%s",
               cx->count, gave_up ? " (search limit reached)" : "", cx->why, tag);
      x->rep->mismatches++;
      x->failed = true;
      if (!o->return_on_mismatch) {
        fprintf(stderr, "%s\n", x->rep->message);
        conc_print(cx);
        print_program(x, ncalls);
        fflush(stderr);
        abort();
      }
    }
    if (!x->failed) {
      /* The model is now in the state after the order found: check the port against it. */
      check_adapter(x, IMPLICIT, "after the concurrent calls", true, true, true);
    }
  }
  teardown(x);
  totals_check(x, ready);
  return x->failed ? FZ_EXEC_MISMATCH : FZ_EXEC_OK;
}
