/*
 * model.c — the reference model of the fuzz oracle (see alloclab/fuzz/model.h).
 *
 * Written from the contract and alloclab.h only. Objects live in three plain arrays indexed by
 * creation order; a small open-addressing map (reset by bumping an epoch) takes a handle value
 * the port returned to its object, alive or not: values never repeat within a program (the port
 * documents a million frees between two equal values), so a value names at most one object.
 */
#include "alloclab/fuzz/model.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE 0xFFFFu
#define MAP_BITS 17u /* more than twice FZ_MODEL_MAX_ALLOCATIONS + devices + resources */
#define MAP_SIZE (1u << MAP_BITS)

enum { OBJ_NONE = 0, OBJ_DEVICE = 1, OBJ_RESOURCE = 2, OBJ_ALLOCATION = 3 };
enum { A_ALIVE = 1, A_DEFERRED = 2, A_GONE = 3 };

typedef struct m_device {
  al_handle handle;
  bool alive;
  uint64_t last_fence; /* the last fence of work this device submitted */
} m_device;

typedef struct m_resource {
  al_handle handle;
  bool alive;
  bool shared;
  bool sealed;          /* opened on another device once: nothing may be added any more */
  uint16_t creator;     /* device index */
  uint64_t holders;     /* bit per device index */
  uint32_t allocations; /* live allocations */
} m_resource;

typedef struct m_allocation {
  al_handle handle;
  uint8_t state; /* A_* */
  uint8_t placement;
  bool has_pattern;
  uint16_t device;   /* creating device index (the owner of a device-owned allocation) */
  uint16_t resource; /* resource index, NONE for device-owned */
  uint32_t fills;
  uint32_t pattern;
  uint64_t size;  /* requested */
  uint64_t rsize; /* worst-case placed size */
  uint32_t align; /* requested alignment, 0 = the page */
  uint64_t last_fence;
  uint64_t release_fence; /* deferred: released for sure once this signalled (a release point) */
  uint32_t need_stamp; /* scratch of close_begin(): need_fence is valid when == model stamp */
  uint64_t need_fence;
} m_allocation;

/* A submission whose fence has not been seen signalled. */
typedef struct m_submission {
  uint64_t fence;
  uint16_t device;
  uint16_t count;
  uint16_t allocations[AL_MAX_ALLOCATIONS_PER_CALL];
} m_submission;

/* Bindings closed by a call while GPU work was queued: the port may keep them open (mapped)
 * until a fence, and must keep those that queued work of their own device still uses.
 * @needed: the last queued fence of @device's work using them (0: none; they may close at once);
 * @bound: fence_submitted at the close (the port waits for no later fence); @count bindings. */
typedef struct m_closing {
  uint16_t device;   /* NONE after an overflow merge */
  uint16_t resource; /* the allocations' resource; NONE: device-owned; ANY_RES after a merge */
  uint32_t count;
  uint64_t needed;
  uint64_t bound;
} m_closing;

#define MAX_CLOSING 512u
#define ANY_RES 0xFFFEu

typedef struct m_slot {
  uint32_t key;
  uint32_t epoch;
  uint16_t type;
  uint16_t index;
} m_slot;

struct fz_model {
  fz_model_config cfg;
  uint32_t epoch;
  uint32_t ndev, nres, nalloc;
  uint32_t live_dev, live_res, live_alloc, device_owned_live;
  uint64_t submitted, completed;
  bool removed, pressure_seen;
  /* Worst-case occupancy of each segment: bytes and blocks of every allocation that may be in
   * it now (live or deferred). */
  uint64_t w_bytes[DXGK_MAX_SEGMENTS];
  uint32_t w_blocks[DXGK_MAX_SEGMENTS];
  uint64_t possible_bytes; /* sum of rsize over live and deferred allocations */
  /* Submissions not known complete, in fence order. */
  uint32_t npend;
  m_submission pend[FZ_MAX_CALLS];
  /* Bindings whose close may be deferred. */
  uint32_t nclosing;
  m_closing closing[MAX_CLOSING];
  uint32_t stamp;
  /* Deferred allocations (indices). */
  uint32_t ndeferred;
  uint16_t deferred[FZ_MODEL_MAX_ALLOCATIONS];
  m_device dev[FZ_MODEL_MAX_DEVICES];
  m_resource res[FZ_MODEL_MAX_RESOURCES];
  m_allocation al[FZ_MODEL_MAX_ALLOCATIONS];
  m_slot map[MAP_SIZE];
};

/* ---- Statuses ----------------------------------------------------------------------------- */

fz_status_set fz_status_bit(NTSTATUS status) {
  switch (status) {
  case STATUS_SUCCESS: return FZ_ST_SUCCESS;
  case STATUS_INVALID_PARAMETER: return FZ_ST_INVALID_PARAMETER;
  case STATUS_INVALID_HANDLE: return FZ_ST_INVALID_HANDLE;
  case STATUS_NO_MEMORY: return FZ_ST_NO_MEMORY;
  case STATUS_NO_VIDEO_MEMORY: return FZ_ST_NO_VIDEO_MEMORY;
  case STATUS_DEVICE_REMOVED: return FZ_ST_DEVICE_REMOVED;
  case STATUS_TIMEOUT: return FZ_ST_TIMEOUT;
  case STATUS_GRAPHICS_DRIVER_MISMATCH: return FZ_ST_DRIVER_MISMATCH;
  default: return 0;
  }
}

const char *fz_status_set_format(fz_status_set set, char *buf, size_t cap) {
  static const struct {
    fz_status_set bit;
    NTSTATUS status;
  } names[] = {
      {FZ_ST_SUCCESS, STATUS_SUCCESS},           {FZ_ST_INVALID_PARAMETER, STATUS_INVALID_PARAMETER},
      {FZ_ST_INVALID_HANDLE, STATUS_INVALID_HANDLE}, {FZ_ST_NO_MEMORY, STATUS_NO_MEMORY},
      {FZ_ST_NO_VIDEO_MEMORY, STATUS_NO_VIDEO_MEMORY}, {FZ_ST_DEVICE_REMOVED, STATUS_DEVICE_REMOVED},
      {FZ_ST_TIMEOUT, STATUS_TIMEOUT},         {FZ_ST_DRIVER_MISMATCH, STATUS_GRAPHICS_DRIVER_MISMATCH},
  };
  if (cap == 0) return buf;
  buf[0] = '\0';
  size_t used = 0;
  bool first = true;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (!(set & names[i].bit)) continue;
    int n = snprintf(buf + used, cap - used, "%s%s", first ? "" : " or ", al_status_name(names[i].status));
    if (n < 0 || (size_t)n >= cap - used) break;
    used += (size_t)n;
    first = false;
  }
  if (first) snprintf(buf, cap, "(nothing)");
  return buf;
}

/* ---- The handle map ------------------------------------------------------------------------- */

static uint32_t map_hash(uint32_t key) { return (key * 0x9E3779B1u) >> (32u - MAP_BITS); }

static const m_slot *map_find(const fz_model *m, uint32_t key) {
  if (key == 0) return NULL;
  for (uint32_t i = map_hash(key), n = 0; n < MAP_SIZE; i = (i + 1u) & (MAP_SIZE - 1u), n++) {
    const m_slot *s = &m->map[i];
    if (s->epoch != m->epoch) return NULL;
    if (s->key == key) return s;
  }
  return NULL;
}

/* Inserts a new value; false when it is already there (a repeated handle). */
static bool map_insert(fz_model *m, uint32_t key, uint16_t type, uint16_t index) {
  for (uint32_t i = map_hash(key), n = 0; n < MAP_SIZE; i = (i + 1u) & (MAP_SIZE - 1u), n++) {
    m_slot *s = &m->map[i];
    if (s->epoch != m->epoch) {
      s->epoch = m->epoch;
      s->key = key;
      s->type = type;
      s->index = index;
      return true;
    }
    if (s->key == key) return false;
  }
  return false; /* cannot happen: the map has twice the room of every object */
}

static int find_device(const fz_model *m, al_handle h) {
  const m_slot *s = map_find(m, h);
  if (s == NULL || s->type != OBJ_DEVICE || !m->dev[s->index].alive) return -1;
  return s->index;
}

static int find_resource(const fz_model *m, al_handle h) {
  const m_slot *s = map_find(m, h);
  if (s == NULL || s->type != OBJ_RESOURCE || !m->res[s->index].alive) return -1;
  return s->index;
}

static int find_allocation(const fz_model *m, al_handle h) {
  const m_slot *s = map_find(m, h);
  if (s == NULL || s->type != OBJ_ALLOCATION || m->al[s->index].state != A_ALIVE) return -1;
  return s->index;
}

/* ---- Lifetime ----------------------------------------------------------------------------- */

fz_model *fz_model_create(const fz_model_config *config) {
  fz_model *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  fz_model_reset(m, config);
  return m;
}

void fz_model_destroy(fz_model *model) { free(model); }

void fz_model_reset(fz_model *m, const fz_model_config *config) {
  fz_model_config cfg = *config;
  if (cfg.segment_count > DXGK_MAX_SEGMENTS) cfg.segment_count = DXGK_MAX_SEGMENTS;
  if (cfg.page_size_max == 0) cfg.page_size_max = 4096;
  m->cfg = cfg;
  m->epoch++;
  if (m->epoch == 0) { /* wrapped: the old stamps are ambiguous, clear them once */
    memset(m->map, 0, sizeof m->map);
    m->epoch = 1;
  }
  m->ndev = m->nres = m->nalloc = 0;
  m->live_dev = m->live_res = m->live_alloc = m->device_owned_live = 0;
  m->submitted = m->completed = 0;
  m->removed = m->pressure_seen = false;
  memset(m->w_bytes, 0, sizeof m->w_bytes);
  memset(m->w_blocks, 0, sizeof m->w_blocks);
  m->possible_bytes = 0;
  m->npend = 0;
  m->ndeferred = 0;
  m->nclosing = 0;
}

/* ---- Memory: worst-case occupancy --------------------------------------------------------- */

static uint64_t round_up_sat(uint64_t v, uint64_t page) {
  if (v > UINT64_MAX / 4) return UINT64_MAX / 4;
  return (v + page - 1) / page * page;
}

/* The segments an allocation of @p may occupy now: its supported set or an eviction target
 * (aperture segments; system memory is not a segment). */
static bool segment_possible(const fz_model *m, uint32_t s, uint8_t p) {
  return m->cfg.segments[s].aperture || p != FZ_PLACEMENT_APERTURE_ONLY;
}

/* The segments a new allocation of @p may be placed in. */
static bool segment_allowed(const fz_model *m, uint32_t s, uint8_t p) {
  switch (p) {
  case FZ_PLACEMENT_MEMORY_ONLY: return !m->cfg.segments[s].aperture;
  case FZ_PLACEMENT_APERTURE_ONLY: return m->cfg.segments[s].aperture;
  default: return true;
  }
}

static void occupy(fz_model *m, const m_allocation *a, bool add) {
  for (uint32_t s = 0; s < m->cfg.segment_count; s++) {
    if (!segment_possible(m, s, a->placement)) continue;
    if (add) {
      m->w_bytes[s] += a->rsize;
      m->w_blocks[s]++;
    } else {
      m->w_bytes[s] -= a->rsize;
      m->w_blocks[s]--;
    }
  }
  if (add) m->possible_bytes += a->rsize;
  else m->possible_bytes -= a->rsize;
}

/* Whether @n allocations of @size with @p surely fit in one allowed segment without evicting:
 * a segment heap that joins free neighbours has at most (blocks + 1) free ranges, so its largest
 * free range is at least free / (blocks + 1); ask for twice the rounded size (size classes). */
static bool placement_provable(const fz_model *m, uint64_t size, uint32_t align, uint32_t n, uint8_t p) {
  /* An aligned block may need up to its alignment of padding in front of it (given back free). */
  uint64_t r = round_up_sat(size, m->cfg.page_size_max) + align;
  for (uint32_t s = 0; s < m->cfg.segment_count; s++) {
    if (!segment_allowed(m, s, p)) continue;
    uint64_t cap = m->cfg.segments[s].size;
    uint64_t need = r * n;
    if (m->w_bytes[s] > cap || need > cap - m->w_bytes[s]) continue;
    uint64_t free_bytes = cap - m->w_bytes[s] - need;
    uint64_t ranges = (uint64_t)m->w_blocks[s] + n + 1;
    if (free_bytes / ranges >= 2 * r) return true;
  }
  return false;
}

/* The largest allowed segment for @p (0 when none). */
static uint64_t allowed_capacity(const fz_model *m, uint8_t p) {
  uint64_t best = 0;
  for (uint32_t s = 0; s < m->cfg.segment_count; s++)
    if (segment_allowed(m, s, p) && m->cfg.segments[s].size > best) best = m->cfg.segments[s].size;
  return best;
}

/* ---- Prediction --------------------------------------------------------------------------- */

typedef struct verdict {
  fz_status_set errs;
  const char *reason;
} verdict;

static void err(verdict *v, fz_status_set bit, const char *why) {
  if (v->errs == 0) v->reason = why;
  v->errs |= bit;
}

static bool creating_op(fz_op op) {
  return op == FZ_OP_CREATE_DEVICE || op == FZ_OP_CREATE_ALLOCATIONS || op == FZ_OP_CREATE_RESOURCE ||
         op == FZ_OP_ADD_TO_RESOURCE || op == FZ_OP_OPEN_RESOURCE || op == FZ_OP_SUBMIT;
}

static uint8_t norm_placement(fz_placement p) {
  return p <= FZ_PLACEMENT_APERTURE_ONLY ? (uint8_t)p : (uint8_t)FZ_PLACEMENT_ANY;
}

static bool count_bad(uint32_t count) { return count == 0 || count > AL_MAX_ALLOCATIONS_PER_CALL; }

/* Whether @a's allocation is bound on device @d (device-owned by it, or of a resource it holds). */
static bool bound_on(const fz_model *m, const m_allocation *a, int d) {
  if (a->resource == NONE) return a->device == d;
  return (m->res[a->resource].holders >> d) & 1u;
}

static unsigned popcount64(uint64_t v) { return (unsigned)__builtin_popcountll(v); }

static int compare_handles(const void *a, const void *b) {
  al_handle x = *(const al_handle *)a, y = *(const al_handle *)b;
  return x < y ? -1 : x > y;
}

/* Whether a list of @n handles (n <= AL_MAX_ALLOCATIONS_PER_CALL) holds a value twice: short
 * lists pairwise, long ones (ranges of up to 1024) sorted. */
static bool has_duplicates(const al_handle *list, uint32_t n) {
  if (n <= 32) {
    for (uint32_t i = 1; i < n; i++)
      for (uint32_t j = 0; j < i; j++)
        if (list[j] == list[i]) return true;
    return false;
  }
  al_handle sorted[AL_MAX_ALLOCATIONS_PER_CALL];
  memcpy(sorted, list, n * sizeof sorted[0]);
  qsort(sorted, n, sizeof sorted[0], compare_handles);
  for (uint32_t i = 1; i < n; i++)
    if (sorted[i] == sorted[i - 1]) return true;
  return false;
}

/* Checks a handle list (destroy or submit). @destroy: owner rules of destroy. */
static void check_list(const fz_model *m, const fz_model_args *a, int d, bool destroy, verdict *v) {
  uint32_t n = a->list_length;
  if (n > AL_MAX_ALLOCATIONS_PER_CALL || a->list == NULL) return;
  if (has_duplicates(a->list, n)) err(v, FZ_ST_INVALID_PARAMETER, "the list has duplicates");
  uint32_t owner = UINT32_MAX; /* (kind << 16) | index of the first live entry's owner */
  for (uint32_t i = 0; i < n; i++) {
    int k = find_allocation(m, a->list[i]);
    if (k < 0) {
      err(v, FZ_ST_INVALID_HANDLE, "a listed handle is not a live allocation");
      continue;
    }
    const m_allocation *x = &m->al[k];
    if (destroy) { /* every live entry's owner counts, foreign or not: the checks are not ordered */
      uint32_t key = x->resource == NONE ? x->device : (1u << 16) | x->resource;
      if (owner == UINT32_MAX) owner = key;
      else if (owner != key) err(v, FZ_ST_INVALID_PARAMETER, "the listed allocations have different owners");
      if (x->resource != NONE && popcount64(m->res[x->resource].holders) > 1)
        err(v, FZ_ST_INVALID_PARAMETER, "a listed allocation's resource is open on several devices");
    }
    if (d >= 0 && !bound_on(m, x, d))
      err(v, FZ_ST_INVALID_HANDLE, destroy ? "a listed allocation is not held by the device"
                                           : "a listed allocation is not bound on the device");
  }
}

/* Whether the port sees a list pointer in a destroy (see the calling convention). */
static bool destroy_list_passed(const fz_model_args *a) {
  if (a->op == FZ_OP_DESTROY_RESOURCE) return (a->hostile & FZ_HOSTILE_BOTH_FORMS) != 0;
  return !(a->hostile & FZ_HOSTILE_NULL_LIST);
}

/* The resource form is used when the port sees a non-zero resource (else the list form). */
static bool destroy_resource_form(const fz_model_args *a) { return a->resource != 0; }

/* al_allocation_destroy: the shape (exactly one of resource and count; no list with a resource),
 * then the form's rules. */
static void predict_destroy(const fz_model *m, const fz_model_args *a, verdict *v) {
  bool list_passed = destroy_list_passed(a);
  uint32_t count = a->op == FZ_OP_DESTROY_RESOURCE && !list_passed ? 0 : a->list_length;
  if (a->flags & ~AL_DESTROY_FLAGS_ALL) err(v, FZ_ST_INVALID_PARAMETER, "a reserved destroy flag is set");
  int d = find_device(m, a->device);
  if (d < 0) err(v, FZ_ST_INVALID_HANDLE, "not a live device");
  if (destroy_resource_form(a)) {
    int r = find_resource(m, a->resource);
    if (count != 0 || list_passed) {
      err(v, FZ_ST_INVALID_PARAMETER, "both a resource and a list");
      /* the port may look at the resource first */
      if (r < 0 || d < 0 || !((m->res[r].holders >> d) & 1u)) v->errs |= FZ_ST_INVALID_HANDLE;
      return;
    }
    if (r < 0) err(v, FZ_ST_INVALID_HANDLE, "not a live resource");
    else if (d >= 0 && !((m->res[r].holders >> d) & 1u))
      err(v, FZ_ST_INVALID_HANDLE, "the device does not hold the resource");
    return;
  }
  if (count == 0) {
    err(v, FZ_ST_INVALID_PARAMETER, "neither a resource nor a list");
    return;
  }
  if (count > AL_MAX_ALLOCATIONS_PER_CALL) err(v, FZ_ST_INVALID_PARAMETER, "count above the maximum");
  if (!list_passed) {
    err(v, FZ_ST_INVALID_PARAMETER, "the list is NULL");
    return;
  }
  check_list(m, a, d, true, v);
}

void fz_model_predict(const fz_model *m, const fz_model_args *a, fz_prediction *out) {
  verdict v = {0, "valid"};
  fz_status_set extra = 0; /* allowed besides success when the call is valid */
  fz_status_set hard = 0;  /* memory outcomes that hold even with other errors */
  bool null_args = (a->hostile & FZ_HOSTILE_NULL_ARGS) != 0;
  bool null_list = (a->hostile & FZ_HOSTILE_NULL_LIST) != 0;
  bool reserved = (a->hostile & FZ_HOSTILE_RESERVED_FLAGS) != 0;
  bool bad_data = (a->hostile & FZ_HOSTILE_PRIVATE_DATA) != 0;

  switch (a->op) {
  case FZ_OP_CREATE_DEVICE:
    if (null_args) err(&v, FZ_ST_INVALID_PARAMETER, "out_device is NULL");
    break;

  case FZ_OP_DESTROY_DEVICE:
    if (find_device(m, a->device) < 0) err(&v, FZ_ST_INVALID_HANDLE, "not a live device");
    break;

  case FZ_OP_CREATE_ALLOCATIONS:
  case FZ_OP_CREATE_RESOURCE:
  case FZ_OP_ADD_TO_RESOURCE: {
    if (null_args) {
      err(&v, FZ_ST_INVALID_PARAMETER, "args is NULL");
      break;
    }
    if (count_bad(a->count)) err(&v, FZ_ST_INVALID_PARAMETER, "allocation count 0 or above the maximum");
    if (null_list) err(&v, FZ_ST_INVALID_PARAMETER, "the allocation descriptors are NULL");
    if (reserved) err(&v, FZ_ST_INVALID_PARAMETER, "a reserved create flag is set");
    if (bad_data || !a->private_data_ok) err(&v, FZ_ST_INVALID_PARAMETER, "bad private data");
    if ((a->align & (a->align - 1u)) != 0) err(&v, FZ_ST_INVALID_PARAMETER, "the alignment is not a power of two");
    int d = find_device(m, a->device);
    if (d < 0) err(&v, FZ_ST_INVALID_HANDLE, "not a live device");
    if (a->op == FZ_OP_ADD_TO_RESOURCE && a->resource != 0) { /* 0: no resource, a plain create */
      int r = find_resource(m, a->resource);
      if (r < 0) {
        err(&v, FZ_ST_INVALID_HANDLE, "not a live resource");
      } else if (d >= 0) {
        const m_resource *x = &m->res[r];
        if (x->creator != d) err(&v, FZ_ST_INVALID_HANDLE, "the resource was not created by the device");
        else if (!((x->holders >> d) & 1u)) err(&v, FZ_ST_INVALID_HANDLE, "the device let the resource go");
        if (x->sealed) err(&v, FZ_ST_INVALID_PARAMETER, "the resource is sealed (opened on another device)");
      }
    }
    uint8_t p = norm_placement(a->placement);
    if (a->size > allowed_capacity(m, p)) {
      hard |= FZ_ST_INVALID_PARAMETER | FZ_ST_NO_VIDEO_MEMORY;
      if (v.errs == 0) v.reason = "the size exceeds every allowed segment";
    } else if (!count_bad(a->count) && !placement_provable(m, a->size, a->align, a->count, p)) {
      extra |= FZ_ST_NO_VIDEO_MEMORY;
      if (round_up_sat(a->size, m->cfg.page_size_max) > allowed_capacity(m, p)) extra |= FZ_ST_INVALID_PARAMETER;
    }
    break;
  }

  case FZ_OP_OPEN_RESOURCE: {
    int d = find_device(m, a->device);
    int r = find_resource(m, a->resource);
    if (d < 0) err(&v, FZ_ST_INVALID_HANDLE, "not a live device");
    if (r < 0) err(&v, FZ_ST_INVALID_HANDLE, "not a live resource");
    if (r >= 0 && !m->res[r].shared) err(&v, FZ_ST_INVALID_PARAMETER, "the resource is not shared");
    if (r >= 0 && d >= 0 && ((m->res[r].holders >> d) & 1u))
      err(&v, FZ_ST_INVALID_PARAMETER, "the device already holds the resource");
    break;
  }

  case FZ_OP_DESTROY_RESOURCE:
  case FZ_OP_DESTROY_ALLOCATIONS:
    if (null_args) {
      err(&v, FZ_ST_INVALID_PARAMETER, "args is NULL");
      break;
    }
    predict_destroy(m, a, &v);
    break;

  case FZ_OP_SUBMIT: {
    if (null_args) {
      err(&v, FZ_ST_INVALID_PARAMETER, "args is NULL");
      break;
    }
    if (reserved) err(&v, FZ_ST_INVALID_PARAMETER, "out_fence is NULL");
    if (a->list_length > AL_MAX_ALLOCATIONS_PER_CALL) err(&v, FZ_ST_INVALID_PARAMETER, "count above the maximum");
    if (null_list && a->list_length != 0) err(&v, FZ_ST_INVALID_PARAMETER, "the list is NULL");
    int d = find_device(m, a->device);
    if (d < 0) err(&v, FZ_ST_INVALID_HANDLE, "not a live device");
    if (!null_list) check_list(m, a, d, false, &v);
    if (a->command == FZ_COMMAND_COPY && a->list_length == 1 && !null_list && v.errs == 0 && !bad_data &&
        m->cfg.miniport_validates_private_data) {
      /* A one-entry copy is list[0] onto itself: overlapping ranges, which the sim rejects
       * (DxgkDdiSubmitCommand), after the port's checks and paging (as a bad stream, below). */
      hard |= FZ_ST_INVALID_PARAMETER;
      if (m->pressure_seen) hard |= FZ_ST_NO_VIDEO_MEMORY;
      v.reason = "copy onto itself (overlapping ranges)";
    }
    if (bad_data && v.errs == 0) {
      /* The miniport rejects the stream (DxgkDdiSubmitCommand), after the port has checked the
       * call and paged its allocations in: under memory pressure the paging may fail first. */
      hard |= FZ_ST_INVALID_PARAMETER;
      if (m->pressure_seen) hard |= FZ_ST_NO_VIDEO_MEMORY;
      v.reason = "bad command stream";
    } else if (bad_data) {
      err(&v, FZ_ST_INVALID_PARAMETER, "bad command stream");
    }
    if (m->pressure_seen) extra |= FZ_ST_NO_VIDEO_MEMORY;
    break;
  }

  case FZ_OP_GPU_RUN:
    break;

  case FZ_OP_FENCE_WAIT:
    if (a->fence > m->submitted) err(&v, FZ_ST_INVALID_PARAMETER, "a fence never handed out");
    else if (a->fence == 0) extra |= FZ_ST_INVALID_PARAMETER; /* 0 is never handed out, yet signalled */
    break;

  case FZ_OP_QUERY:
    if (null_args) err(&v, FZ_ST_INVALID_PARAMETER, "out_info is NULL");
    if (find_allocation(m, a->allocation) < 0) err(&v, FZ_ST_INVALID_HANDLE, "not a live allocation");
    break;

  default: /* an op out of range is skipped by the executor */
    v.reason = "unknown op: skipped";
    break;
  }

  fz_status_set allowed;
  if (v.errs) {
    allowed = v.errs | hard;
  } else if (hard) {
    allowed = hard;
  } else {
    allowed = FZ_ST_SUCCESS | extra;
  }
  if (m->removed && creating_op(a->op) && !(a->op == FZ_OP_CREATE_DEVICE && null_args)) {
    /* The miniport refuses every creating DDI; checks the port makes first may still win. */
    allowed = (v.errs | hard) ? (allowed | FZ_ST_DEVICE_REMOVED) : FZ_ST_DEVICE_REMOVED;
    if (!(v.errs | hard)) v.reason = "the adapter was removed";
  }
  out->allowed = allowed;
  out->allowed_if_faulted = allowed;
  if (creating_op(a->op))
    out->allowed_if_faulted |= FZ_ST_NO_MEMORY | FZ_ST_DEVICE_REMOVED | FZ_ST_NO_VIDEO_MEMORY;
  /* A destroy of listed allocations or a resource needs host memory for its lists before it
   * changes anything, so an injected host-allocation failure may refuse it (changing nothing);
   * destroy_device, gpu_run, fence_wait and query never fail for memory. */
  if (a->op == FZ_OP_DESTROY_ALLOCATIONS || a->op == FZ_OP_DESTROY_RESOURCE)
    out->allowed_if_faulted |= FZ_ST_NO_MEMORY;
  /* A wrong answer is caught by the port's checks right after the DDI returns: the call fails
   * (undoing what the miniport made); it can never succeed. */
  out->allowed_if_wrong_answer = out->allowed_if_faulted;
  if (creating_op(a->op))
    out->allowed_if_wrong_answer = (out->allowed_if_faulted & ~FZ_ST_SUCCESS) | FZ_ST_DRIVER_MISMATCH;
  out->reason = v.reason;
}

/* ---- Commit ------------------------------------------------------------------------------- */

typedef struct msgbuf {
  char *buf;
  size_t cap;
  bool ok;
} msgbuf;

__attribute__((format(printf, 2, 3))) static void fail(msgbuf *mb, const char *fmt, ...) {
  if (!mb->ok) return; /* keep the first */
  mb->ok = false;
  if (mb->cap == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(mb->buf, mb->cap, fmt, ap);
  va_end(ap);
}

static uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

static uint32_t pattern_of(uint32_t serial, uint32_t fills) {
  return mix32(serial * 0x9E3779B1u + (fills + 1u) * 0x85EBCA77u) | 0x01010101u;
}

static bool new_handle(fz_model *m, msgbuf *mb, al_handle h, uint16_t type, uint16_t index, const char *what) {
  if (h == 0) {
    fail(mb, "the port returned 0 as a %s handle", what);
    return false;
  }
  const m_slot *s = map_find(m, h);
  if (s != NULL) {
    static const char *const kinds[] = {"?", "device", "resource", "allocation"};
    fail(mb, "the port returned %s handle 0x%08x, a value it already gave %s #%u in this program "
             "(handle reused)", what, h, kinds[s->type < 4 ? s->type : 0], s->index);
    return false;
  }
  map_insert(m, h, type, index);
  return true;
}

/* Destroys allocation @k, one of a group torn down together whose largest last fence is
 * @group_fence: gone at once when nothing of the group is queued (or the caller asserts it is
 * not in use); else deferred. It must stay while its own last fence is queued; the port may
 * keep it until the group's fence (one DxgkDdiDestroyAllocation for the group). */
static void kill_allocation(fz_model *m, uint32_t k, bool assume_not_in_use, uint64_t completed_before,
                            uint64_t group_fence) {
  m_allocation *x = &m->al[k];
  if (x->state != A_ALIVE) return;
  m->live_alloc--;
  if (x->resource == NONE) m->device_owned_live--;
  else m->res[x->resource].allocations--;
  if (assume_not_in_use || (group_fence <= completed_before && x->last_fence <= completed_before)) {
    x->state = A_GONE;
    occupy(m, x, false);
  } else {
    x->state = A_DEFERRED;
    x->release_fence = group_fence > x->last_fence ? group_fence : x->last_fence;
    m->deferred[m->ndeferred++] = (uint16_t)k;
  }
}

/* Releases the deferred allocations whose fence <= @upto (they must be gone by now). */
static void release_deferred(fz_model *m, uint64_t upto) {
  uint32_t w = 0;
  for (uint32_t i = 0; i < m->ndeferred; i++) {
    m_allocation *x = &m->al[m->deferred[i]];
    if (x->state == A_DEFERRED && x->release_fence <= upto) {
      x->state = A_GONE;
      occupy(m, x, false);
    } else if (x->state == A_DEFERRED) {
      m->deferred[w++] = m->deferred[i];
    }
  }
  m->ndeferred = w;
}

/* A synchronous destroy returned: the allocations it deferred (deferred[first..]) are gone. */
static void release_tail(fz_model *m, uint32_t first) {
  for (uint32_t i = first; i < m->ndeferred; i++) {
    m_allocation *x = &m->al[m->deferred[i]];
    x->state = A_GONE;
    occupy(m, x, false);
  }
  m->ndeferred = first;
}

/* ---- Deferred closes of bindings ---------------------------------------------------------- */

/* Prepares close_binding() for device @d: marks, per allocation, the last queued fence of @d's
 * work that uses it. */
static void close_begin(fz_model *m, int d) {
  m->stamp++;
  for (uint32_t i = 0; i < m->npend; i++) {
    const m_submission *sub = &m->pend[i];
    if (sub->device != d) continue;
    for (uint32_t j = 0; j < sub->count; j++) {
      m_allocation *x = &m->al[sub->allocations[j]];
      x->need_stamp = m->stamp;
      x->need_fence = sub->fence; /* pend is in fence order: the last write is the largest */
    }
  }
}

/* The binding of allocation @k on device @d is closed by the call being committed. */
static void close_binding(fz_model *m, int d, uint32_t k, uint64_t completed_before) {
  uint64_t bound = m->submitted;
  if (bound <= completed_before) return; /* nothing queued: closed at once */
  const m_allocation *x = &m->al[k];
  uint64_t needed = x->need_stamp == m->stamp ? x->need_fence : 0;
  for (uint32_t i = m->nclosing; i-- > 0 && m->closing[i].bound == bound;) {
    m_closing *c = &m->closing[i];
    if (c->device == d && c->needed == needed && c->resource == x->resource) {
      c->count++;
      return;
    }
  }
  if (m->nclosing == MAX_CLOSING) { /* merge soundly: never certain, released last */
    m_closing *c = &m->closing[MAX_CLOSING - 1];
    c->device = NONE;
    c->resource = ANY_RES;
    c->needed = 0;
    c->count++;
    if (bound > c->bound) c->bound = bound;
    return;
  }
  m->closing[m->nclosing++] =
      (m_closing){.device = (uint16_t)d, .resource = x->resource, .count = 1, .needed = needed, .bound = bound};
}

/* Drops the closing records of device @d (DestroyDevice releases every binding of the device),
 * or (d < 0) those added since @first. */
static void closing_drop(fz_model *m, int d, uint32_t first) {
  uint32_t w = 0;
  for (uint32_t i = 0; i < m->nclosing; i++) {
    const m_closing *c = &m->closing[i];
    bool drop = d >= 0 ? c->device == d : i >= first;
    if (!drop) m->closing[w++] = *c;
  }
  m->nclosing = w;
}

/* Drops the closing records whose bound fence is <= @due (released by a reap at @due). */
static void closing_drop_due(fz_model *m, uint64_t due) {
  uint32_t w = 0;
  for (uint32_t i = 0; i < m->nclosing; i++)
    if (m->closing[i].bound > due) m->closing[w++] = m->closing[i];
  m->nclosing = w;
}

/* The latest release fence of resource @r's deferred allocations: the teardowns of a resource
 * keep their order (its final DestroyAllocation(DestroyResource) comes after the earlier ones),
 * so a later teardown of the resource may wait for it too. */
static uint64_t resource_deferred_fence(const fz_model *m, uint32_t r) {
  uint64_t f = 0;
  for (uint32_t i = 0; i < m->ndeferred; i++) {
    const m_allocation *x = &m->al[m->deferred[i]];
    if (x->state == A_DEFERRED && x->resource == r && x->release_fence > f) f = x->release_fence;
  }
  for (uint32_t i = 0; i < m->nclosing; i++) { /* close before destroy: open bindings first */
    const m_closing *c = &m->closing[i];
    if ((c->resource == r || c->resource == ANY_RES) && c->bound > f) f = c->bound;
  }
  return f;
}

/* The fence a device-owned teardown of device @d may wait for besides its own: none for the
 * documented behaviour; for core's (fz_model_config.strict_release off), a teardown queued behind
 * an earlier deferred teardown of the same device may wait for any fence handed out by then. */
static uint64_t device_deferred_fence(const fz_model *m, uint32_t d) {
  if (m->cfg.strict_release) return 0;
  for (uint32_t i = 0; i < m->ndeferred; i++) {
    const m_allocation *x = &m->al[m->deferred[i]];
    if (x->state == A_DEFERRED && x->resource == NONE && x->device == d) return m->submitted;
  }
  return 0;
}

/* Destroys resource @r's remaining allocations (one group) and the resource. */
static void kill_resource(fz_model *m, uint32_t r, bool assume, uint64_t completed_before, uint64_t *max_fence) {
  uint64_t group = resource_deferred_fence(m, r), own = 0;
  for (uint32_t k = 0; k < m->nalloc; k++)
    if (m->al[k].resource == r && m->al[k].state == A_ALIVE && m->al[k].last_fence > own) own = m->al[k].last_fence;
  if (own > group) group = own;
  if (own > *max_fence) *max_fence = own; /* what a synchronous destroy must wait for */
  for (uint32_t k = 0; k < m->nalloc && m->res[r].allocations; k++)
    if (m->al[k].resource == r && m->al[k].state == A_ALIVE) kill_allocation(m, k, assume, completed_before, group);
  m->res[r].alive = false;
  m->res[r].holders = 0;
  m->live_res--;
}

static bool add_allocations(fz_model *m, msgbuf *mb, const fz_model_args *a, const fz_model_result *r,
                            int d, int res) {
  if (r->allocations == NULL) {
    fail(mb, "no allocation handles");
    return false;
  }
  uint8_t p = norm_placement(a->placement);
  for (uint32_t i = 0; i < a->count; i++) {
    if (m->nalloc >= FZ_MODEL_MAX_ALLOCATIONS) {
      fail(mb, "model capacity exceeded (%u allocations)", FZ_MODEL_MAX_ALLOCATIONS);
      return false;
    }
    uint32_t k = m->nalloc;
    if (!new_handle(m, mb, r->allocations[i], OBJ_ALLOCATION, (uint16_t)k, "allocation")) continue;
    m->nalloc++;
    m_allocation *x = &m->al[k];
    memset(x, 0, sizeof *x);
    x->handle = r->allocations[i];
    x->state = A_ALIVE;
    x->placement = p;
    x->device = (uint16_t)d;
    x->resource = res < 0 ? NONE : (uint16_t)res;
    x->size = a->size;
    x->rsize = round_up_sat(a->size, m->cfg.page_size_max);
    x->align = a->align;
    occupy(m, x, true);
    m->live_alloc++;
    if (res < 0) m->device_owned_live++;
    else m->res[res].allocations++;
  }
  return true;
}

/* A successful copy of min(both sizes, FZ_MODEL_PATTERN_BYTES) bytes from @src to @dst (the
 * executor's COPY, program.h): @dst holds @src's pattern when the copy covers all that a CHECK
 * of @dst reads; else its first bytes are mixed and no CHECK is predicted for it. */
static void commit_copy(fz_model *m, al_handle src, al_handle dst) {
  int s = find_allocation(m, src), d = find_allocation(m, dst);
  if (s < 0 || d < 0 || s == d) return;
  const m_allocation *from = &m->al[s];
  m_allocation *to = &m->al[d];
  uint64_t copied = from->size < to->size ? from->size : to->size;
  if (copied > FZ_MODEL_PATTERN_BYTES) copied = FZ_MODEL_PATTERN_BYTES;
  uint64_t checked = to->size < FZ_MODEL_PATTERN_BYTES ? to->size : FZ_MODEL_PATTERN_BYTES;
  to->has_pattern = from->has_pattern && copied >= checked;
  to->pattern = to->has_pattern ? from->pattern : 0u;
}

void fz_model_output_rules_for(const fz_model *m, const fz_model_args *a, NTSTATUS status,
                               fz_model_output_rules *out) {
  memset(out, 0, sizeof *out);
  out->fence_submitted_before = m->submitted;
  out->completed_before = m->completed;
  out->check_device_info = a->op == FZ_OP_CREATE_DEVICE && a->info;
  if (status != STATUS_SUCCESS) return;
  switch (a->op) {
  case FZ_OP_SUBMIT: out->submit_fence = true; return;

  case FZ_OP_DESTROY_DEVICE: {
    int d = find_device(m, a->device);
    if (d < 0) return;
    out->wait = FZ_MODEL_WAIT_DESTROY_DEVICE;
    out->wait_fence = m->dev[d].last_fence;
    return;
  }

  case FZ_OP_DESTROY_RESOURCE:
  case FZ_OP_DESTROY_ALLOCATIONS: {
    /* A synchronous destroy that releases memory (not one that only lets go of a resource
     * other devices still hold) returns after the destroyed allocations' last fence. */
    int d = find_device(m, a->device);
    if (d < 0 || !(a->flags & AL_DESTROY_SYNCHRONOUS)) return;
    uint64_t fence = 0;
    if (destroy_resource_form(a)) {
      int x = find_resource(m, a->resource);
      if (x < 0 || (m->res[x].holders & ~(1ull << d)) != 0) return;
      for (uint32_t k = 0; k < m->nalloc; k++)
        if (m->al[k].resource == x && m->al[k].state == A_ALIVE && m->al[k].last_fence > fence)
          fence = m->al[k].last_fence;
    } else {
      for (uint32_t i = 0; i < a->list_length && i < AL_MAX_ALLOCATIONS_PER_CALL; i++) {
        int k = find_allocation(m, a->list[i]);
        if (k >= 0 && m->al[k].last_fence > fence) fence = m->al[k].last_fence;
      }
    }
    out->wait = FZ_MODEL_WAIT_SYNCHRONOUS_DESTROY;
    out->wait_fence = fence;
    return;
  }

  case FZ_OP_GPU_RUN: {
    out->check_gpu_completed = !(a->hostile & FZ_HOSTILE_NULL_ARGS);
    out->gpu_threaded = m->cfg.threaded_engine;
    out->gpu_queued = m->npend;
    out->wait_count = a->count;
    if (m->cfg.threaded_engine) return; /* alloclab.h: it runs none (out_completed 0) */
    /* m->pend holds exactly the model's submissions above the completed fence (pruned after
     * every commit): a deterministic engine runs min(count, queued) of them. */
    out->gpu_completed = a->count < m->npend ? a->count : m->npend;
    if (out->gpu_completed > 0) {
      out->wait = FZ_MODEL_WAIT_GPU_RUN;
      out->wait_fence = m->pend[out->gpu_completed - 1].fence;
    }
    return;
  }

  case FZ_OP_FENCE_WAIT:
    out->wait = FZ_MODEL_WAIT_FENCE_WAIT;
    out->wait_fence = a->fence;
    return;

  case FZ_OP_QUERY: {
    int k = find_allocation(m, a->allocation);
    if (k < 0) return;
    const m_allocation *x = &m->al[k];
    out->check_query = true;
    out->resource = x->resource == NONE ? 0 : m->res[x->resource].handle;
    out->owner_device = m->dev[x->device].handle;
    out->last_fence = x->last_fence;
    out->size_min = x->size;
    out->size_page_rounded = m->cfg.placed_size_is_page_rounded;
    out->size_max = out->size_page_rounded ? x->rsize : UINT64_MAX;
    out->align = x->align;
    out->placement = x->placement;
    out->segment_count = m->cfg.segment_count;
    for (uint32_t s = 0; s < m->cfg.segment_count; s++) {
      out->segments[s].id = m->cfg.segments[s].id;
      out->segments[s].size = m->cfg.segments[s].size;
      out->segments[s].possible = segment_possible(m, s, x->placement);
    }
    return;
  }

  default:
    return;
  }
}

/* The lower bound of a successful call on al_fence_completed() (fz_model_output_rules.wait). */
static void check_wait(msgbuf *mb, const fz_model_output_rules *ex, const fz_model_result *r) {
  if (ex->wait == FZ_MODEL_WAIT_NONE || r->fence_completed >= ex->wait_fence) return;
  unsigned long long fence = ex->wait_fence, completed = r->fence_completed;
  switch (ex->wait) {
  case FZ_MODEL_WAIT_DESTROY_DEVICE:
    fail(mb, "destroy_device returned before the device's work completed (fence %llu, completed %llu)", fence,
         completed);
    return;
  case FZ_MODEL_WAIT_SYNCHRONOUS_DESTROY:
    fail(mb, "a synchronous destroy returned before fence %llu signalled (completed %llu)", fence, completed);
    return;
  case FZ_MODEL_WAIT_GPU_RUN:
    fail(mb, "gpu_run(%u) left fence %llu unsignalled (completed %llu)", ex->wait_count, fence, completed);
    return;
  case FZ_MODEL_WAIT_FENCE_WAIT:
    fail(mb, "fence_wait(%llu) returned before the fence signalled (completed %llu)", fence, completed);
    return;
  case FZ_MODEL_WAIT_NONE: return;
  }
}

static void commit_success(fz_model *m, msgbuf *mb, const fz_model_args *a, const fz_model_result *r,
                           uint64_t completed_before, const fz_model_output_rules *ex) {
  switch (a->op) {
  case FZ_OP_CREATE_DEVICE: {
    if (m->ndev >= FZ_MODEL_MAX_DEVICES) {
      fail(mb, "model capacity exceeded (%u devices)", FZ_MODEL_MAX_DEVICES);
      return;
    }
    uint32_t d = m->ndev;
    if (!new_handle(m, mb, r->device, OBJ_DEVICE, (uint16_t)d, "device")) return;
    m->ndev++;
    m->dev[d] = (m_device){.handle = r->device, .alive = true, .last_fence = 0};
    m->live_dev++;
    return;
  }

  case FZ_OP_DESTROY_DEVICE: {
    int d = find_device(m, a->device);
    if (d < 0) return;
    uint64_t bit = 1ull << d;
    uint64_t ignored = 0;
    for (uint32_t i = 0; i < m->nres; i++) {
      m_resource *x = &m->res[i];
      if (!x->alive || !(x->holders & bit)) continue;
      x->holders &= ~bit;
      if (x->holders == 0) kill_resource(m, i, false, completed_before, &ignored);
    }
    uint64_t group = 0;
    for (uint32_t k = 0; k < m->nalloc; k++)
      if (m->al[k].state == A_ALIVE && m->al[k].resource == NONE && m->al[k].device == d && m->al[k].last_fence > group)
        group = m->al[k].last_fence;
    for (uint32_t k = 0; k < m->nalloc; k++)
      if (m->al[k].state == A_ALIVE && m->al[k].resource == NONE && m->al[k].device == d)
        kill_allocation(m, k, false, completed_before, group);
    closing_drop(m, d, 0); /* every binding of the device is gone with it */
    m->dev[d].alive = false;
    m->live_dev--;
    check_wait(mb, ex, r);
    return;
  }

  case FZ_OP_CREATE_ALLOCATIONS:
    add_allocations(m, mb, a, r, find_device(m, a->device), -1);
    return;

  case FZ_OP_CREATE_RESOURCE: {
    int d = find_device(m, a->device);
    if (m->nres >= FZ_MODEL_MAX_RESOURCES) {
      fail(mb, "model capacity exceeded (%u resources)", FZ_MODEL_MAX_RESOURCES);
      return;
    }
    uint32_t x = m->nres;
    if (!new_handle(m, mb, r->resource, OBJ_RESOURCE, (uint16_t)x, "resource")) return;
    m->nres++;
    m->res[x] = (m_resource){.handle = r->resource, .alive = true, .shared = a->shared, .sealed = false,
                             .creator = (uint16_t)d, .holders = 1ull << d, .allocations = 0};
    m->live_res++;
    add_allocations(m, mb, a, r, d, (int)x);
    return;
  }

  case FZ_OP_ADD_TO_RESOURCE:
    add_allocations(m, mb, a, r, find_device(m, a->device), find_resource(m, a->resource));
    return;

  case FZ_OP_OPEN_RESOURCE: {
    int d = find_device(m, a->device), x = find_resource(m, a->resource);
    if (d < 0 || x < 0) return;
    m->res[x].holders |= 1ull << d;
    m->res[x].sealed = true;
    return;
  }

  case FZ_OP_DESTROY_RESOURCE:
  case FZ_OP_DESTROY_ALLOCATIONS: {
    int d = find_device(m, a->device);
    if (d < 0) return;
    bool sync = (a->flags & AL_DESTROY_SYNCHRONOUS) != 0;
    bool assume = (a->flags & AL_DESTROY_ASSUME_NOT_IN_USE) != 0;
    uint64_t max_fence = 0;
    uint32_t first_deferred = m->ndeferred, first_closing = m->nclosing;
    bool released = false; /* memory goes (not only a hold) */
    close_begin(m, d);
    if (destroy_resource_form(a)) {
      int x = find_resource(m, a->resource);
      if (x < 0) return;
      for (uint32_t k = 0; k < m->nalloc; k++)
        if (m->al[k].resource == x && m->al[k].state == A_ALIVE) close_binding(m, d, k, completed_before);
      m->res[x].holders &= ~(1ull << d);
      if (m->res[x].holders == 0) {
        kill_resource(m, (uint32_t)x, assume, completed_before, &max_fence);
        released = true;
      }
    } else {
      uint64_t group = 0;
      for (uint32_t i = 0; i < a->list_length && i < AL_MAX_ALLOCATIONS_PER_CALL; i++) {
        int k = find_allocation(m, a->list[i]);
        if (k < 0) continue;
        if (m->al[k].last_fence > max_fence) max_fence = m->al[k].last_fence;
        uint64_t before = m->al[k].resource != NONE ? resource_deferred_fence(m, m->al[k].resource)
                                                     : device_deferred_fence(m, (uint32_t)d);
        if (before > group) group = before;
      }
      if (max_fence > group) group = max_fence;
      for (uint32_t i = 0; i < a->list_length && i < AL_MAX_ALLOCATIONS_PER_CALL; i++) {
        int k = find_allocation(m, a->list[i]);
        if (k < 0) continue;
        close_binding(m, d, (uint32_t)k, completed_before);
        kill_allocation(m, (uint32_t)k, assume, completed_before, group);
      }
      released = true;
    }
    if (sync && released) {
      check_wait(mb, ex, r);
      release_tail(m, first_deferred);
      closing_drop(m, -1, first_closing);
    }
    return;
  }

  case FZ_OP_SUBMIT: {
    int d = find_device(m, a->device);
    if (ex->submit_fence && r->fence <= ex->fence_submitted_before) {
      fail(mb, "submit handed out fence %llu, not above the last one (%llu)", (unsigned long long)r->fence,
           (unsigned long long)m->submitted);
      return;
    }
    m->submitted = r->fence;
    m_submission *sub = m->npend < FZ_MAX_CALLS ? &m->pend[m->npend++] : NULL;
    if (sub) *sub = (m_submission){.fence = r->fence, .device = (uint16_t)(d < 0 ? 0 : d), .count = 0};
    if (d >= 0) m->dev[d].last_fence = r->fence;
    for (uint32_t i = 0; i < a->list_length && i < AL_MAX_ALLOCATIONS_PER_CALL; i++) {
      int k = find_allocation(m, a->list[i]);
      if (k < 0) continue;
      if (sub) sub->allocations[sub->count++] = (uint16_t)k;
      m_allocation *x = &m->al[k];
      x->last_fence = r->fence;
      if (a->command == FZ_COMMAND_FILL) {
        x->pattern = pattern_of((uint32_t)k, x->fills);
        x->fills++;
        x->has_pattern = true;
      }
    }
    if (a->command == FZ_COMMAND_COPY && a->list_length >= 2 && a->list_length <= AL_MAX_ALLOCATIONS_PER_CALL)
      commit_copy(m, a->list[0], a->list[1]);
    return;
  }

  case FZ_OP_GPU_RUN:
    if (ex->check_gpu_completed && r->gpu_completed != ex->gpu_completed) {
      if (ex->gpu_threaded)
        fail(mb, "gpu_run(%u) on a threaded engine completed %u submissions (it runs none)", a->count,
             r->gpu_completed);
      else
        fail(mb, "gpu_run(%u) completed %u submissions, %u were queued", a->count, r->gpu_completed,
             ex->gpu_queued);
    }
    check_wait(mb, ex, r);
    return;

  case FZ_OP_FENCE_WAIT:
    check_wait(mb, ex, r);
    return;

  case FZ_OP_QUERY: {
    if (!ex->check_query || r->info == NULL) return;
    const al_allocation_info *in = r->info;
    if (in->resource != ex->resource)
      fail(mb, "query: resource 0x%08x, model has 0x%08x", in->resource, ex->resource);
    if (in->owner_device != ex->owner_device)
      fail(mb, "query: owner_device 0x%08x, model has 0x%08x", in->owner_device, ex->owner_device);
    if (in->last_fence != ex->last_fence)
      fail(mb, "query: last_fence %llu, model has %llu", (unsigned long long)in->last_fence,
           (unsigned long long)ex->last_fence);
    if (in->size < ex->size_min)
      fail(mb, "query: placed size %llu below the requested %llu", (unsigned long long)in->size,
           (unsigned long long)ex->size_min);
    if (ex->size_page_rounded && in->size > ex->size_max)
      fail(mb, "query: placed size %llu above the page-rounded request %llu", (unsigned long long)in->size,
           (unsigned long long)ex->size_max);
    if (in->segment_id != 0 && ex->align != 0 && in->segment_offset % ex->align != 0)
      fail(mb, "query: segment offset 0x%llx is not a multiple of the alignment %u",
           (unsigned long long)in->segment_offset, ex->align);
    if (in->segment_id != 0) {
      uint32_t s = 0;
      while (s < ex->segment_count && ex->segments[s].id != in->segment_id) s++;
      if (s == ex->segment_count) {
        fail(mb, "query: segment %u does not exist", in->segment_id);
      } else {
        if (!ex->segments[s].possible)
          fail(mb, "query: an allocation of placement %u lies in segment %u", ex->placement, in->segment_id);
        if (in->segment_offset > ex->segments[s].size || in->size > ex->segments[s].size - in->segment_offset)
          fail(mb, "query: [%llu, +%llu) lies outside segment %u", (unsigned long long)in->segment_offset,
               (unsigned long long)in->size, in->segment_id);
      }
    }
    return;
  }

  default:
    return;
  }
}

/* al_device_create_with_info: *out_info written on success (every field: the port zeroes what
 * the miniport leaves, so none still holds the sentinel the executor wrote), untouched on
 * failure. The values are the miniport's (the port documents none). */
static void check_device_info(msgbuf *mb, const fz_model_result *r) {
  const UINT fields[] = {r->device_info->DmaBufferSize,         r->device_info->DmaBufferSegmentSet,
                         r->device_info->DmaBufferPrivateDataSize, r->device_info->AllocationListSize,
                         r->device_info->PatchLocationListSize, r->device_info->Flags};
  static const char *const names[] = {"DmaBufferSize",      "DmaBufferSegmentSet",   "DmaBufferPrivateDataSize",
                                      "AllocationListSize", "PatchLocationListSize", "Flags"};
  const UINT sentinel = FZ_MODEL_INFO_SENTINEL_BYTE * 0x01010101u;
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if (r->status == STATUS_SUCCESS && fields[i] == sentinel) {
      fail(mb, "create_device with info succeeded but left the info's %s unwritten (0x%08x)", names[i], sentinel);
      return;
    }
    if (r->status != STATUS_SUCCESS && fields[i] != sentinel) {
      fail(mb, "create_device with info failed but wrote the info's %s (0x%08x): a failed call changes nothing",
           names[i], fields[i]);
      return;
    }
  }
}

bool fz_model_commit(fz_model *m, const fz_model_args *a, const fz_model_result *r, char *msg, size_t cap) {
  msgbuf mb = {msg, cap, true};
  if (cap) msg[0] = '\0';
  uint64_t completed_before = m->completed;

  fz_prediction pr;
  fz_model_predict(m, a, &pr);
  fz_model_output_rules ex;
  fz_model_output_rules_for(m, a, r->status, &ex);
  if (pr.allowed & FZ_ST_NO_VIDEO_MEMORY) m->pressure_seen = true;
  if (r->removed || r->status == STATUS_DEVICE_REMOVED) m->removed = true;

  if (r->status == STATUS_SUCCESS) commit_success(m, &mb, a, r, completed_before, &ex);
  if (ex.check_device_info && r->device_info != NULL) check_device_info(&mb, r);

  /* Fences: the submitted one exact, the completed one monotonic and bounded. */
  if (r->fence_submitted != m->submitted)
    fail(&mb, "fence_submitted is %llu, model has %llu (a failed call changes nothing)",
         (unsigned long long)r->fence_submitted, (unsigned long long)m->submitted);
  if (r->fence_completed < ex.completed_before)
    fail(&mb, "fence_completed went back from %llu to %llu", (unsigned long long)ex.completed_before,
         (unsigned long long)r->fence_completed);
  if (r->fence_completed > r->fence_submitted)
    fail(&mb, "fence_completed %llu above fence_submitted %llu", (unsigned long long)r->fence_completed,
         (unsigned long long)r->fence_submitted);
  if (r->fence_completed > m->completed) m->completed = r->fence_completed;
  uint32_t w = 0;
  for (uint32_t i = 0; i < m->npend; i++)
    if (m->pend[i].fence > m->completed) m->pend[w++] = m->pend[i];
  m->npend = w;

  /* Release points: deferred destroys whose fence signalled are gone now. A threaded engine
   * may signal more fences after the port's reap and before fence_completed was read: only
   * what had certainly signalled when it reaped is due (fz_model_config.threaded_engine). */
  if ((a->op == FZ_OP_GPU_RUN || a->op == FZ_OP_FENCE_WAIT) && r->status == STATUS_SUCCESS) {
    uint64_t due = m->completed;
    if (m->cfg.threaded_engine) {
      due = completed_before;
      if (a->op == FZ_OP_FENCE_WAIT && a->fence > due) due = a->fence;
    }
    release_deferred(m, due);
    closing_drop_due(m, due);
  }
  return mb.ok;
}

/* ---- Expectations ------------------------------------------------------------------------- */

static uint32_t bindings(const fz_model *m) {
  uint32_t n = m->device_owned_live;
  for (uint32_t i = 0; i < m->nres; i++)
    if (m->res[i].alive) n += popcount64(m->res[i].holders) * m->res[i].allocations;
  return n;
}

void fz_model_expected(const fz_model *m, fz_model_counts *out) {
  out->devices = m->live_dev;
  out->resources = m->live_res;
  out->allocations = m->live_alloc;
  uint32_t live = bindings(m), closing_min = 0, closing_max = 0;
  for (uint32_t i = 0; i < m->nclosing; i++) {
    closing_max += m->closing[i].count;
    if (m->closing[i].needed > m->completed) closing_min += m->closing[i].count;
  }
  out->bindings_min = live + closing_min;
  out->bindings_max = live + closing_max;
  uint32_t certain = 0, possible = 0;
  for (uint32_t i = 0; i < m->ndeferred; i++) {
    const m_allocation *x = &m->al[m->deferred[i]];
    if (x->state != A_DEFERRED) continue;
    possible++;
    if (x->last_fence > m->completed) certain++;
  }
  out->deferred_min = certain;
  out->deferred_max = possible;
  out->fence_submitted = m->submitted;
  out->fence_completed = m->completed;
  out->segment_bytes_max = m->cfg.placed_size_is_page_rounded ? m->possible_bytes : UINT64_MAX;
  bool closing_possible = out->bindings_max > out->bindings_min || m->nclosing > 0;
  out->bindings_waiting = out->bindings_min - live;
  out->deferred_destroys_allowed = out->deferred_max > 0 || closing_possible;
  out->deferred_destroys_required = out->deferred_min > 0 || out->bindings_waiting > 0;
}

bool fz_model_check_stats(const fz_model *m, const al_adapter_stats *st, char *msg, size_t cap) {
  msgbuf mb = {msg, cap, true};
  if (cap) msg[0] = '\0';
  fz_model_counts c;
  fz_model_expected(m, &c);
  if (st->devices != c.devices) fail(&mb, "live devices: port %u, model %u", st->devices, c.devices);
  if (st->resources != c.resources) fail(&mb, "live resources: port %u, model %u", st->resources, c.resources);
  if (st->allocations != c.allocations)
    fail(&mb, "live allocations: port %u, model %u", st->allocations, c.allocations);
  if (st->bindings < c.bindings_min)
    fail(&mb, "bindings: port %u, model at least %u (a binding closed while its device's GPU work still "
              "uses it)", st->bindings, c.bindings_min);
  if (st->bindings > c.bindings_max)
    fail(&mb, "bindings: port %u, model %s %u (a binding leaked)", st->bindings,
         c.bindings_min == c.bindings_max ? "exactly" : "at most", c.bindings_max);
  if (st->deferred_allocations < c.deferred_min)
    fail(&mb, "deferred allocations: port %u, model at least %u (memory released while GPU work still "
              "references it)", st->deferred_allocations, c.deferred_min);
  if (st->deferred_allocations > c.deferred_max)
    fail(&mb, "deferred allocations: port %u, model at most %u (a deferred destroy that should be released, "
              "or a leak)", st->deferred_allocations, c.deferred_max);
  if (!c.deferred_destroys_allowed && st->deferred_destroys != 0)
    fail(&mb, "deferred destroys: port %u with nothing that may wait for a fence", st->deferred_destroys);
  if (c.deferred_destroys_required && st->deferred_destroys == 0)
    fail(&mb, "deferred destroys: port 0 while %u allocations / %u bindings must wait for a fence",
         c.deferred_min, c.bindings_waiting);
  if (st->fence_submitted != c.fence_submitted)
    fail(&mb, "fence_submitted: port %llu, model %llu", (unsigned long long)st->fence_submitted,
         (unsigned long long)c.fence_submitted);
  if (st->fence_completed < c.fence_completed || st->fence_completed > st->fence_submitted)
    fail(&mb, "fence_completed: port %llu, model at least %llu", (unsigned long long)st->fence_completed,
         (unsigned long long)c.fence_completed);
  uint64_t used = 0;
  for (uint32_t s = 0; s < st->segment_count && s < DXGK_MAX_SEGMENTS; s++) {
    if (st->segments[s].used_bytes > st->segments[s].size)
      fail(&mb, "segment %u: %llu bytes used of %llu", st->segments[s].id,
           (unsigned long long)st->segments[s].used_bytes, (unsigned long long)st->segments[s].size);
    used += st->segments[s].used_bytes;
  }
  if (used > c.segment_bytes_max)
    fail(&mb, "segments hold %llu bytes, the live and deferred allocations at most %llu (memory leaked)",
         (unsigned long long)used, (unsigned long long)c.segment_bytes_max);
  return mb.ok;
}

/* ---- Views -------------------------------------------------------------------------------- */

bool fz_model_fill_pattern(const fz_model *m, al_handle allocation, uint32_t *out_pattern) {
  int k = find_allocation(m, allocation);
  if (k < 0) return false;
  *out_pattern = pattern_of((uint32_t)k, m->al[k].fills);
  return true;
}

bool fz_model_allocation(const fz_model *m, al_handle allocation, fz_model_allocation_view *out) {
  const m_slot *s = map_find(m, allocation);
  if (s == NULL || s->type != OBJ_ALLOCATION) return false;
  const m_allocation *x = &m->al[s->index];
  out->alive = x->state == A_ALIVE;
  out->serial = s->index;
  out->size = x->size;
  out->placement = (fz_placement)x->placement;
  out->align = x->align;
  out->last_fence = x->last_fence;
  out->has_pattern = x->has_pattern;
  out->pattern = x->pattern;
  return true;
}

uint32_t fz_model_live_devices(const fz_model *m, al_handle *out, uint32_t cap) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < m->ndev && n < cap; i++)
    if (m->dev[i].alive) out[n++] = m->dev[i].handle;
  return n;
}

uint32_t fz_model_live_allocations(const fz_model *m, al_handle *out, uint32_t cap) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < m->nalloc && n < cap; i++)
    if (m->al[i].state == A_ALIVE) out[n++] = m->al[i].handle;
  return n;
}

bool fz_model_removed(const fz_model *m) { return m->removed; }

/* Copies @src's map entry for @key (if any) into @dst at the same slot (so lookups probe the
 * same way), stamped @epoch. */
static void map_copy_entry(fz_model *dst, const fz_model *src, al_handle key, uint32_t epoch) {
  const m_slot *s = map_find(src, key);
  if (s == NULL) return;
  m_slot *d = &dst->map[s - src->map];
  *d = *s;
  d->epoch = epoch;
}

/* What a later call can read: the scalars, each array up to its count, and the map's entries
 * of the current epoch, which are the objects' handles (new_handle is the one insert, made
 * just before the object is counted). The copy gets an epoch newer than any stamp in its own
 * map, which retires the entries it held before. */
void fz_model_copy(fz_model *dst, const fz_model *src) {
  if (dst == src) return;
  uint32_t epoch = (dst->epoch > src->epoch ? dst->epoch : src->epoch) + 1u;
  if (epoch == 0) { /* wrapped: the old stamps are ambiguous, clear them once */
    memset(dst->map, 0, sizeof dst->map);
    epoch = 1;
  }
  memcpy(dst, src, offsetof(fz_model, pend));
  dst->epoch = epoch;
  memcpy(dst->pend, src->pend, src->npend * sizeof src->pend[0]);
  dst->nclosing = src->nclosing;
  memcpy(dst->closing, src->closing, src->nclosing * sizeof src->closing[0]);
  dst->stamp = src->stamp;
  dst->ndeferred = src->ndeferred;
  memcpy(dst->deferred, src->deferred, src->ndeferred * sizeof src->deferred[0]);
  memcpy(dst->dev, src->dev, src->ndev * sizeof src->dev[0]);
  memcpy(dst->res, src->res, src->nres * sizeof src->res[0]);
  memcpy(dst->al, src->al, src->nalloc * sizeof src->al[0]);
  for (uint32_t k = 0; k < src->ndev; k++) map_copy_entry(dst, src, src->dev[k].handle, epoch);
  for (uint32_t k = 0; k < src->nres; k++) map_copy_entry(dst, src, src->res[k].handle, epoch);
  for (uint32_t k = 0; k < src->nalloc; k++) map_copy_entry(dst, src, src->al[k].handle, epoch);
}
