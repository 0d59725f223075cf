/*
 * private_data.c — fuzzes the sim miniport's allocation private data (SIM_ALLOCATION_DATA,
 * alloclab/hw/sim_miniport.h): the input's raw bytes are the private data.
 *
 * For each hardware configuration of the table below (4 KiB and 64 KiB memory pages, segments of
 * different sizes, and the NULL configuration = the sim's defaults), the bytes go to the pure
 * parser SimDescribeAllocation and:
 *  - an independent reference decoder, written from the header's documentation, says whether
 *    they are valid; the parser must agree (it must neither accept what the format forbids nor
 *    refuse what it allows), and on a refusal must return STATUS_INVALID_PARAMETER and leave
 *    every output untouched;
 *  - when accepted, every output rule is checked: the generic ones of d3dkmddi.h (Size a
 *    positive multiple of 4 KiB, PitchAlignedSize 0 or >= Size, supported sets non-empty and
 *    inside the described segments, preferred ids inside the supported set, eviction to
 *    aperture segments only, priority != 0, no reserved flag, Cached / PermanentSysMem only with
 *    CpuVisible) and the sim's documented values (Size = need rounded up to the largest allowed
 *    page, >= need, fitting the largest allowed segment; the sets, preference and eviction set
 *    of the placement; flags from the usage; the priority or its default; the untouched fields);
 *  - then (configurations with an adapter) the same bytes create one device-owned allocation
 *    through the port (al_allocation_create, DDI verifier on): refused bytes must give
 *    STATUS_INVALID_PARAMETER and change nothing; accepted ones must succeed when the padded
 *    size fits a supported segment of the empty adapter (else STATUS_NO_VIDEO_MEMORY), land in
 *    the first such segment of the preference order, aligned, with the described size; the
 *    allocation is then destroyed (a second destroy and a query must see a stale handle) and
 *    the adapter must be empty again and pass al_adapter_check().
 * One adapter (and one device) per configuration lives for the whole process (created on the
 * first input, destroyed at exit, which runs the verifier's teardown checks): a run costs a
 * create and a destroy, not an adapter bring-up.
 * Any disagreement prints "alloclab private_data: ..." with the decoded fields and aborts.
 * ALLOCLAB_FUZZ_VERBOSE=1 prints, per configuration, the verdict and where the port placed it.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/alloclab.h"
#include "alloclab/hw/sim_miniport.h"
#include "alloclab/status.h"
#include "fuzz/common/libfuzzer.h"

/* Segment-set bits (bit id - 1), as DXGK_ALLOCATIONINFO's sets write them. */
#define PD_BIT(id) (1u << ((id) - 1u))
#define PD_SET_ALL (PD_BIT(SIM_SEGMENT_ID_MEMORY) | PD_BIT(SIM_SEGMENT_ID_APERTURE))

/* Inputs above this are not run: the format is 56 bytes; the port refuses over 64 KiB. */
#define PD_MAX_INPUT 4096u

typedef struct pd_segment {
  uint32_t id;
  uint64_t page;
  uint64_t size;
  bool aperture;
} pd_segment;

typedef struct pd_config {
  const char *name;
  bool null_config; /* describe with Config == NULL (the defaults); no adapter */
  UINT memory_page;
  UINT64 memory_size;
  UINT64 aperture_size;
  /* set up on the first input */
  SIM_HARDWARE_CONFIG hw;
  pd_segment seg[SIM_SEGMENT_COUNT + 1]; /* by id */
  al_adapter *adapter;
  al_handle device;
} pd_config;

static pd_config configs[] = {
    /* Small segments of different sizes: the largest-allowed-segment rule differs by placement,
     * and a create's FILL (the bulk of a run) stays cheap. */
    {.name = "4k-pages", .memory_page = 4096u, .memory_size = (UINT64)1 << 20, .aperture_size = (UINT64)512 << 10},
    {.name = "64k-pages", .memory_page = 65536u, .memory_size = (UINT64)512 << 10, .aperture_size = (UINT64)1 << 20},
    {.name = "null-config", .null_config = true},
};
#define PD_CONFIGS (sizeof configs / sizeof configs[0])

/* ---- Reporting ------------------------------------------------------------------------------ */

/* The raw input's fields, decoded independently of the sim (little-endian, as documented). */
typedef struct pd_fields {
  uint32_t magic, version, kind, format;
  uint64_t width, height, pitch;
  uint32_t usage, placement, alignment, priority;
} pd_fields;

static bool verbose;
static const uint8_t *cur_data;
static size_t cur_size;

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static void decode_fields(const uint8_t *b, pd_fields *f) {
  f->magic = le32(b + 0);
  f->version = le32(b + 4);
  f->kind = le32(b + 8);
  f->format = le32(b + 12);
  f->width = le64(b + 16);
  f->height = le64(b + 24);
  f->pitch = le64(b + 32);
  f->usage = le32(b + 40);
  f->placement = le32(b + 44);
  f->alignment = le32(b + 48);
  f->priority = le32(b + 52);
}

__attribute__((format(printf, 2, 3), noreturn)) static void fail(const pd_config *c, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "alloclab private_data: config %s: ", c ? c->name : "-");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nalloclab private_data: the input (%zu bytes)", cur_size);
  if (cur_size >= SIM_ALLOCATION_DATA_SIZE) {
    pd_fields f;
    decode_fields(cur_data, &f);
    fprintf(stderr,
            ": magic=0x%08" PRIx32 " version=%" PRIu32 " kind=%" PRIu32 " format=%" PRIu32
            " width=%" PRIu64 " height=%" PRIu64 " pitch=%" PRIu64 " usage=0x%" PRIx32
            " placement=%" PRIu32 " alignment=%" PRIu32 " priority=0x%" PRIx32,
            f.magic, f.version, f.kind, f.format, f.width, f.height, f.pitch, f.usage, f.placement,
            f.alignment, f.priority);
  }
  fputc('\n', stderr);
  fflush(stderr);
  abort();
}

#define REQUIRE(c, cond, ...)                                                                      \
  do {                                                                                             \
    if (!(cond)) fail(c, __VA_ARGS__);                                                             \
  } while (0)

/* ---- The reference decoder (from sim_miniport.h's documentation) ----------------------------- */

typedef struct pd_expect {
  uint64_t need;
  uint64_t size; /* the documented Size */
  uint64_t page; /* the largest page among the allowed segments */
  uint32_t supported;
  uint32_t first, second; /* PreferredSegment ids, memory first (0: none) */
  uint32_t eviction;
} pd_expect;

static bool is_pow2_or_zero(uint64_t v) { return (v & (v - 1u)) == 0; }

/* NULL when the bytes are valid for @c (with *e filled in), else why they are not. */
static const char *reference(const pd_config *c, const uint8_t *data, size_t size, pd_expect *e) {
  if (size != SIM_ALLOCATION_DATA_SIZE) return "size is not 56";
  pd_fields f;
  decode_fields(data, &f);
  if (f.magic != SIM_ALLOCATION_MAGIC) return "bad magic";
  if (f.version != SIM_ALLOCATION_VERSION) return "bad version";
  if (f.usage & ~SIM_USAGE_ALL) return "reserved usage bits";
  if ((f.usage & SIM_USAGE_CPU_CACHED) && !(f.usage & SIM_USAGE_CPU_VISIBLE)) return "cached without visible";
  if (f.placement > SIM_PLACEMENT_APERTURE_ONLY) return "bad placement";
  if (!is_pow2_or_zero(f.alignment) || f.alignment > SIM_ALLOCATION_ALIGNMENT_MAX) return "bad alignment";
  unsigned __int128 need;
  if (f.kind == SIM_KIND_BUFFER) {
    if (f.format != 0) return "buffer with a format";
    if (f.width == 0) return "zero width";
    if (f.height > 1) return "buffer height above 1";
    if (f.pitch != 0) return "buffer with a pitch";
    if (f.usage & SIM_USAGE_RENDER_TARGET) return "render-target buffer";
    need = f.width;
  } else if (f.kind == SIM_KIND_TEXTURE2D) {
    if (f.format != 1 && f.format != 2 && f.format != 4 && f.format != 8 && f.format != 16) return "bad texel size";
    if (f.width == 0 || f.height == 0) return "empty texture";
    unsigned __int128 row = (unsigned __int128)f.width * f.format;
    if (row > UINT64_MAX) return "width * format overflows";
    unsigned __int128 pitch = f.pitch;
    if (pitch == 0) {
      pitch = (row + SIM_TEXTURE_PITCH_ALIGNMENT - 1u) / SIM_TEXTURE_PITCH_ALIGNMENT * SIM_TEXTURE_PITCH_ALIGNMENT;
      if (pitch > UINT64_MAX) return "computed pitch overflows";
    } else if (pitch < row || pitch % SIM_TEXTURE_PITCH_ALIGNMENT != 0) {
      return "bad pitch";
    }
    need = pitch * f.height; /* < 2^128: both factors < 2^64 */
    if (need > UINT64_MAX) return "pitch * height overflows";
  } else {
    return "bad kind";
  }
  uint32_t supported = PD_SET_ALL;
  if (f.placement == SIM_PLACEMENT_MEMORY_ONLY) supported = PD_BIT(SIM_SEGMENT_ID_MEMORY);
  if (f.placement == SIM_PLACEMENT_APERTURE_ONLY) supported = PD_BIT(SIM_SEGMENT_ID_APERTURE);
  uint64_t page = 0, largest = 0;
  for (uint32_t id = 1; id <= SIM_SEGMENT_COUNT; id++) {
    if (!(supported & PD_BIT(id))) continue;
    if (c->seg[id].page > page) page = c->seg[id].page;
    if (c->seg[id].size > largest) largest = c->seg[id].size;
  }
  unsigned __int128 rounded = (need + page - 1u) / page * page;
  if (rounded > largest) return "too large for every allowed segment";
  e->need = (uint64_t)need;
  e->size = (uint64_t)rounded;
  e->page = page;
  e->supported = supported;
  e->first = f.placement == SIM_PLACEMENT_APERTURE_ONLY ? SIM_SEGMENT_ID_APERTURE : SIM_SEGMENT_ID_MEMORY;
  e->second = f.placement == SIM_PLACEMENT_ANY ? SIM_SEGMENT_ID_APERTURE : 0u;
  e->eviction = f.placement == SIM_PLACEMENT_APERTURE_ONLY ? 0u : PD_BIT(SIM_SEGMENT_ID_APERTURE);
  return NULL;
}

/* ---- The parser's outputs -------------------------------------------------------------------- */

static void check_outputs(const pd_config *c, const pd_expect *e, const DXGK_ALLOCATIONINFO *info,
                          const DXGK_ALLOCATIONINFO *before) {
  pd_fields f;
  decode_fields(cur_data, &f);
  const uint32_t described = PD_SET_ALL;
  const uint32_t apertures = PD_BIT(SIM_SEGMENT_ID_APERTURE);
  /* The generic rules (d3dkmddi.h). */
  REQUIRE(c, info->Size > 0 && info->Size % 4096u == 0, "Size %zu is not a positive multiple of 4 KiB", (size_t)info->Size);
  REQUIRE(c, info->PitchAlignedSize == 0 || info->PitchAlignedSize >= info->Size,
          "PitchAlignedSize %zu is below Size %zu", (size_t)info->PitchAlignedSize, (size_t)info->Size);
  REQUIRE(c, is_pow2_or_zero(info->Alignment), "Alignment 0x%x is not a power of two", info->Alignment);
  REQUIRE(c, info->SupportedWriteSegmentSet != 0 && (info->SupportedWriteSegmentSet & ~described) == 0,
          "SupportedWriteSegmentSet 0x%x is empty or outside the described segments 0x%x",
          info->SupportedWriteSegmentSet, described);
  REQUIRE(c, (info->SupportedReadSegmentSet & ~described) == 0,
          "SupportedReadSegmentSet 0x%x is outside the described segments 0x%x", info->SupportedReadSegmentSet, described);
  REQUIRE(c, (info->EvictionSegmentSet & ~apertures) == 0, "EvictionSegmentSet 0x%x names a non-aperture segment",
          info->EvictionSegmentSet);
  DXGK_SEGMENTPREFERENCE pref = info->PreferredSegment;
  const uint32_t ids[5] = {pref.SegmentId0, pref.SegmentId1, pref.SegmentId2, pref.SegmentId3, pref.SegmentId4};
  for (int k = 0; k < 5; k++) {
    REQUIRE(c, ids[k] == 0 || (ids[k] <= 31u && (info->SupportedWriteSegmentSet & (1u << (ids[k] - 1u)))),
            "PreferredSegment id %u (position %d) is outside the supported set 0x%x", ids[k], k,
            info->SupportedWriteSegmentSet);
  }
  REQUIRE(c, info->AllocationPriority != 0, "AllocationPriority is 0");
  REQUIRE(c, (info->Flags.Value & DXGK_ALLOCATIONINFOFLAGS_RESERVED_MASK) == 0, "reserved Flags bits: 0x%x",
          info->Flags.Value);
  REQUIRE(c, !(info->Flags.Cached || info->Flags.PermanentSysMem) || info->Flags.CpuVisible,
          "Flags 0x%x: Cached / PermanentSysMem without CpuVisible", info->Flags.Value);

  /* The sim's documented outputs. */
  REQUIRE(c, info->Size >= e->need && info->Size % e->page == 0 && info->Size - e->need < e->page,
          "Size %zu is not need %" PRIu64 " rounded up to the page %" PRIu64, (size_t)info->Size, e->need, e->page);
  REQUIRE(c, info->Size == e->size, "Size %zu, documented %" PRIu64, (size_t)info->Size, e->size);
  uint64_t largest = 0;
  for (uint32_t id = 1; id <= SIM_SEGMENT_COUNT; id++)
    if ((e->supported & PD_BIT(id)) && c->seg[id].size > largest) largest = c->seg[id].size;
  REQUIRE(c, info->Size <= largest, "Size %zu does not fit the largest allowed segment (%" PRIu64 ")",
          (size_t)info->Size, largest);
  REQUIRE(c, info->PitchAlignedSize == (f.kind == SIM_KIND_TEXTURE2D ? info->Size : 0),
          "PitchAlignedSize %zu for kind %u (Size %zu)", (size_t)info->PitchAlignedSize, f.kind, (size_t)info->Size);
  REQUIRE(c, info->Alignment == f.alignment, "Alignment 0x%x, given 0x%x", info->Alignment, f.alignment);
  REQUIRE(c, info->SupportedReadSegmentSet == e->supported && info->SupportedWriteSegmentSet == e->supported,
          "supported sets read 0x%x write 0x%x, documented 0x%x for placement %u", info->SupportedReadSegmentSet,
          info->SupportedWriteSegmentSet, e->supported, f.placement);
  REQUIRE(c, ids[0] == e->first && ids[1] == e->second && ids[2] == 0 && ids[3] == 0 && ids[4] == 0 &&
                 pref.Direction0 == 0 && pref.Direction1 == 0 && pref.Reserved == 0,
          "PreferredSegment 0x%x, documented ids %u, %u", pref.Value, e->first, e->second);
  REQUIRE(c, info->EvictionSegmentSet == e->eviction, "EvictionSegmentSet 0x%x, documented 0x%x",
          info->EvictionSegmentSet, e->eviction);
  REQUIRE(c, info->Flags.CpuVisible == ((f.usage & SIM_USAGE_CPU_VISIBLE) ? 1u : 0u) &&
                 info->Flags.Cached == ((f.usage & SIM_USAGE_CPU_CACHED) ? 1u : 0u) &&
                 (info->Flags.Value & ~(DXGK_ALLOCATIONINFOFLAGS){.CpuVisible = 1, .Cached = 1}.Value) == 0,
          "Flags 0x%x for usage 0x%x", info->Flags.Value, f.usage);
  REQUIRE(c, info->AllocationPriority == (f.priority ? f.priority : SIM_ALLOCATION_PRIORITY_DEFAULT),
          "AllocationPriority 0x%x for Priority 0x%x", info->AllocationPriority, f.priority);
  REQUIRE(c, info->HintedBank.Value == 0 && info->MaximumRenamingListLength == 0 && info->pAllocationUsageHint == NULL,
          "HintedBank 0x%x, MaximumRenamingListLength %u, pAllocationUsageHint %p: documented 0, 0, NULL",
          info->HintedBank.Value, info->MaximumRenamingListLength, (void *)info->pAllocationUsageHint);
  REQUIRE(c, info->hAllocation == before->hAllocation && info->pPrivateDriverData == before->pPrivateDriverData &&
                 info->PrivateDriverDataSize == before->PrivateDriverDataSize,
          "hAllocation / pPrivateDriverData / PrivateDriverDataSize were written");
}

/* ---- Through the port ------------------------------------------------------------------------ */

static void teardown(void) {
  for (size_t i = 0; i < PD_CONFIGS; i++) {
    pd_config *c = &configs[i];
    if (c->adapter == NULL) continue;
    NTSTATUS st = al_device_destroy(c->adapter, c->device);
    REQUIRE(c, st == STATUS_SUCCESS, "al_device_destroy at exit returned %s", al_status_name(st));
    al_adapter_destroy(c->adapter);
    c->adapter = NULL;
  }
}

static void setup(void) {
  static bool ready;
  if (ready) return;
  ready = true;
  const char *v = getenv("ALLOCLAB_FUZZ_VERBOSE");
  verbose = v != NULL && v[0] != '\0' && v[0] != '0';
  for (size_t i = 0; i < PD_CONFIGS; i++) {
    pd_config *c = &configs[i];
    c->hw = sim_hardware_config_default();
    if (!c->null_config) {
      c->hw.MemoryPageSize = c->memory_page;
      c->hw.MemorySegmentSize = c->memory_size;
      c->hw.ApertureSegmentSize = c->aperture_size;
    }
    c->seg[SIM_SEGMENT_ID_MEMORY] = (pd_segment){SIM_SEGMENT_ID_MEMORY, c->hw.MemoryPageSize, c->hw.MemorySegmentSize, false};
    c->seg[SIM_SEGMENT_ID_APERTURE] = (pd_segment){SIM_SEGMENT_ID_APERTURE, SIM_APERTURE_PAGE_SIZE, c->hw.ApertureSegmentSize, true};
    if (c->null_config) continue;
    al_adapter_config ac = {.driver_entry = SimMiniportDriverEntry, .hardware_config = &c->hw,
                            .hardware_config_size = sizeof c->hw, .flags = AL_ADAPTER_VERIFIER};
    NTSTATUS st = al_adapter_create(&ac, &c->adapter);
    REQUIRE(c, st == STATUS_SUCCESS && c->adapter != NULL, "al_adapter_create returned %s", al_status_name(st));
    st = al_device_create(c->adapter, &c->device);
    REQUIRE(c, st == STATUS_SUCCESS && c->device != 0, "al_device_create returned %s", al_status_name(st));
    /* The segments the port was told about are the ones the rules are checked against. */
    al_adapter_stats stats;
    al_adapter_get_stats(c->adapter, &stats);
    REQUIRE(c, stats.segment_count == SIM_SEGMENT_COUNT, "%u segments described", stats.segment_count);
    for (uint32_t s = 0; s < stats.segment_count; s++) {
      const pd_segment *want = &c->seg[s + 1];
      REQUIRE(c, stats.segments[s].id == want->id && stats.segments[s].size == want->size &&
                     stats.segments[s].page_size == want->page && stats.segments[s].aperture == want->aperture,
              "segment %u described as id %u, %" PRIu64 " bytes, page %" PRIu64 ", aperture %d", s,
              stats.segments[s].id, stats.segments[s].size, stats.segments[s].page_size, stats.segments[s].aperture);
    }
  }
  atexit(teardown);
}

/* The adapter holds nothing but the device; with @walk, it also passes its invariant walk
 * (al_adapter_check: after each create that succeeded; a refused create is checked by the
 * counts only, the walk being most of a run's cost). */
static void check_empty(const pd_config *c, const char *when, bool walk) {
  al_adapter_stats st;
  al_adapter_get_stats(c->adapter, &st);
  REQUIRE(c, st.devices == 1 && st.resources == 0 && st.allocations == 0 && st.bindings == 0 &&
                 st.deferred_destroys == 0 && st.deferred_allocations == 0,
          "%s: devices %u resources %u allocations %u bindings %u deferred %u/%u (expected 1 device only)", when,
          st.devices, st.resources, st.allocations, st.bindings, st.deferred_destroys, st.deferred_allocations);
  for (uint32_t s = 0; s < st.segment_count && s < DXGK_MAX_SEGMENTS; s++)
    REQUIRE(c, st.segments[s].used_bytes == 0 && st.segments[s].live_blocks == 0,
            "%s: segment %u holds %" PRIu64 " bytes in %" PRIu64 " blocks", when, st.segments[s].id,
            st.segments[s].used_bytes, st.segments[s].live_blocks);
  if (!walk) return;
  char msg[512];
  REQUIRE(c, al_adapter_check(c->adapter, msg, sizeof msg), "%s: al_adapter_check: %s", when, msg);
}

/* Whether @e's allocation fits segment @id of the empty adapter (segment_heap's padding rule). */
static bool fits(const pd_config *c, const pd_expect *e, uint32_t alignment, uint32_t id) {
  if (id == 0 || !(e->supported & PD_BIT(id))) return false;
  const pd_segment *s = &c->seg[id];
  uint64_t pad = alignment > s->page ? alignment - s->page : 0;
  return e->size <= s->size && pad <= s->size - e->size;
}

static void through_port(const pd_config *c, const uint8_t *data, size_t size, const pd_expect *e) {
  al_allocation_desc desc = {.private_data = data, .private_data_size = (uint32_t)size};
  al_handle handle = 0;
  al_create_allocation_args args = {.device = c->device, .allocation_count = 1, .allocations = &desc,
                                    .out_allocations = &handle};
  NTSTATUS st = al_allocation_create(c->adapter, &args);
  if (e == NULL) {
    REQUIRE(c, st == STATUS_INVALID_PARAMETER && handle == 0,
            "the port created refused private data: %s (expected STATUS_INVALID_PARAMETER), handle 0x%08x",
            al_status_name(st), handle);
    check_empty(c, "after a refused create", false);
    return;
  }
  pd_fields f;
  decode_fields(data, &f);
  uint32_t where = fits(c, e, f.alignment, e->first) ? e->first : fits(c, e, f.alignment, e->second) ? e->second : 0;
  if (where == 0) {
    REQUIRE(c, st == STATUS_NO_VIDEO_MEMORY && handle == 0,
            "size %" PRIu64 " alignment 0x%x fits no supported segment of the empty adapter: got %s, handle 0x%08x "
            "(expected STATUS_NO_VIDEO_MEMORY)",
            e->size, f.alignment, al_status_name(st), handle);
    check_empty(c, "after a create without room", false);
    if (verbose) fprintf(stderr, "  %s: port: STATUS_NO_VIDEO_MEMORY (no segment has room)\n", c->name);
    return;
  }
  REQUIRE(c, st == STATUS_SUCCESS && handle != 0,
          "create of %" PRIu64 " bytes (alignment 0x%x) on the empty adapter: %s, handle 0x%08x (it fits segment %u)",
          e->size, f.alignment, al_status_name(st), handle, where);
  al_allocation_info info;
  st = al_allocation_query(c->adapter, handle, &info);
  REQUIRE(c, st == STATUS_SUCCESS, "al_allocation_query of the new allocation: %s", al_status_name(st));
  const pd_segment *s = &c->seg[where];
  uint64_t align = f.alignment > s->page ? f.alignment : s->page;
  REQUIRE(c, info.resource == 0 && info.owner_device == c->device && info.last_fence == 0,
          "query: resource 0x%08x owner 0x%08x last_fence %" PRIu64 " (expected 0, 0x%08x, 0)", info.resource,
          info.owner_device, info.last_fence, c->device);
  REQUIRE(c, info.segment_id == where && info.size == e->size && info.segment_offset % align == 0 &&
                 info.segment_offset <= s->size - e->size,
          "placed in segment %u at 0x%" PRIx64 ", %" PRIu64 " bytes; expected segment %u (the first of the "
          "preference with room), %" PRIu64 " bytes, aligned to 0x%" PRIx64,
          info.segment_id, info.segment_offset, info.size, where, e->size, align);
  al_adapter_stats stats;
  al_adapter_get_stats(c->adapter, &stats);
  REQUIRE(c, stats.allocations == 1 && stats.bindings == 1 && stats.segments[where - 1].used_bytes == e->size,
          "after the create: allocations %u bindings %u, segment %u used %" PRIu64 " (expected 1, 1, %" PRIu64 ")",
          stats.allocations, stats.bindings, where, stats.segments[where - 1].used_bytes, e->size);

  al_destroy_allocation_args d = {.device = c->device, .allocations = &handle, .allocation_count = 1};
  st = al_allocation_destroy(c->adapter, &d);
  REQUIRE(c, st == STATUS_SUCCESS, "al_allocation_destroy: %s", al_status_name(st));
  if (verbose)
    fprintf(stderr, "  %s: port: placed in segment %u at 0x%" PRIx64 ", %" PRIu64 " bytes\n", c->name,
            info.segment_id, info.segment_offset, info.size);
  check_empty(c, "after the destroy", true);
  st = al_allocation_destroy(c->adapter, &d);
  REQUIRE(c, st == STATUS_INVALID_HANDLE, "a second destroy of the same handle: %s (expected STATUS_INVALID_HANDLE)",
          al_status_name(st));
  st = al_allocation_query(c->adapter, handle, &info);
  REQUIRE(c, st == STATUS_INVALID_HANDLE, "a query of the destroyed handle: %s (expected STATUS_INVALID_HANDLE)",
          al_status_name(st));
}

/* ---- The target ------------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > PD_MAX_INPUT) return -1;
  setup();
  cur_data = data;
  cur_size = size;
  for (size_t i = 0; i < PD_CONFIGS; i++) {
    const pd_config *c = &configs[i];
    pd_expect e;
    const char *why = reference(c, data, size, &e);
    DXGK_ALLOCATIONINFO info, before;
    memset(&info, 0xA5, sizeof info);
    info.pPrivateDriverData = (VOID *)data;
    info.PrivateDriverDataSize = (UINT)size;
    memcpy(&before, &info, sizeof before);
    NTSTATUS st = SimDescribeAllocation(c->null_config ? NULL : &c->hw, data, (UINT)size, &info);
    if (verbose) {
      if (why != NULL) fprintf(stderr, "%s: refused (%s)\n", c->name, why);
      else fprintf(stderr, "%s: accepted: need %" PRIu64 ", Size %" PRIu64 ", supported 0x%x\n", c->name, e.need, e.size, e.supported);
    }
    if (why != NULL) {
      REQUIRE(c, st == STATUS_INVALID_PARAMETER,
              "SimDescribeAllocation returned %s for invalid private data (%s); expected STATUS_INVALID_PARAMETER",
              al_status_name(st), why);
      REQUIRE(c, memcmp(&info, &before, sizeof info) == 0, "SimDescribeAllocation wrote outputs while refusing (%s)",
              why);
    } else {
      REQUIRE(c, st == STATUS_SUCCESS, "SimDescribeAllocation refused valid private data: %s", al_status_name(st));
      check_outputs(c, &e, &info, &before);
    }
    if (c->adapter != NULL) through_port(c, data, size, why == NULL ? &e : NULL);
  }
  return 0;
}
