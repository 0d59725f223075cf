/*
 * sim_private_data_test.c — SIM_ALLOCATION_DATA parsing (SimDescribeAllocation) as hostile input,
 * against a reference decoder written independently of the miniport (byte by byte, 128-bit
 * arithmetic so that overflow needs no care), and the outputs against the DDI rules. Also the
 * hardware-config rules and the command-record encoders' wire layout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/hw/sim_miniport.h"

typedef unsigned __int128 u128;

/* ---- Reference decoder ------------------------------------------------------------------------ */

static uint64_t rd(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

typedef struct ref_out {
  NTSTATUS status;
  uint64_t size, pitch_aligned;
  uint32_t alignment, supported, eviction, preferred, priority;
  bool cpu_visible, cached;
} ref_out;

static ref_out reference(const SIM_HARDWARE_CONFIG *config, const void *data, uint32_t size) {
  ref_out r = {.status = STATUS_INVALID_PARAMETER};
  if (data == NULL || size != 56) return r;
  const uint8_t *p = data;
  uint32_t magic = (uint32_t)rd(p, 4), version = (uint32_t)rd(p + 4, 4), kind = (uint32_t)rd(p + 8, 4);
  uint32_t format = (uint32_t)rd(p + 12, 4);
  u128 width = rd(p + 16, 8), height = rd(p + 24, 8), pitch = rd(p + 32, 8);
  uint32_t usage = (uint32_t)rd(p + 40, 4), placement = (uint32_t)rd(p + 44, 4);
  uint32_t alignment = (uint32_t)rd(p + 48, 4), priority = (uint32_t)rd(p + 52, 4);
  if (magic != 0x414C5341u || version != 1) return r;
  if (usage > 0x1F) return r;
  if ((usage & 0x10) && !(usage & 0x1)) return r;
  if (placement > 2) return r;
  bool pow2 = alignment == 0 || (alignment & (alignment - 1)) == 0;
  if (!pow2 || alignment > (1u << 26)) return r;
  u128 need;
  if (kind == 1) {
    if (format != 0 || width == 0 || height > 1 || pitch != 0 || (usage & 0x2)) return r;
    need = width;
  } else if (kind == 2) {
    if (!(format == 1 || format == 2 || format == 4 || format == 8 || format == 16)) return r;
    if (width == 0 || height == 0) return r;
    u128 row = width * format;
    if (row > UINT64_MAX) return r;
    u128 row_pitch = pitch;
    if (row_pitch == 0) {
      row_pitch = (row + 255) / 256 * 256;
      if (row_pitch > UINT64_MAX) return r;
    } else if (row_pitch < row || row_pitch % 256 != 0) {
      return r;
    }
    need = row_pitch * height; /* < 2^128 */
    if (need > UINT64_MAX) return r;
  } else {
    return r;
  }
  uint32_t supported = placement == 0 ? 3 : placement == 1 ? 1 : 2;
  u128 page = 4096, largest = 0;
  if (supported & 1) {
    if (config->MemoryPageSize > page) page = config->MemoryPageSize;
    if (config->MemorySegmentSize > largest) largest = config->MemorySegmentSize;
  }
  if ((supported & 2) && config->ApertureSegmentSize > largest) largest = config->ApertureSegmentSize;
  u128 rounded = (need + page - 1) / page * page;
  if (rounded > largest) return r;
  r.status = STATUS_SUCCESS;
  r.size = (uint64_t)rounded;
  r.pitch_aligned = kind == 2 ? (uint64_t)rounded : 0;
  r.alignment = alignment;
  r.supported = supported;
  r.eviction = placement == 2 ? 0 : 2;
  r.preferred = placement == 0 ? (1u | 2u << 6) : placement == 1 ? 1u : 2u;
  r.priority = priority ? priority : 0x78000000u;
  r.cpu_visible = usage & 1;
  r.cached = (usage & 0x10) != 0;
  return r;
}

/* The DDI rules for one allocation's outputs (as d3dkmddi.h / the contract state them). */
static const char *rule_broken(const DXGK_ALLOCATIONINFO *info, const SIM_HARDWARE_CONFIG *config) {
  uint32_t write = info->SupportedWriteSegmentSet;
  if (info->Size == 0 || info->Size % 4096 != 0) return "Size not a positive multiple of 4096";
  if (info->PitchAlignedSize != 0 && info->PitchAlignedSize < info->Size) return "PitchAlignedSize";
  if (info->Alignment && (info->Alignment & (info->Alignment - 1))) return "Alignment not a power of two";
  if (write == 0 || (write & ~3u)) return "write set";
  if (info->EvictionSegmentSet & ~2u) return "eviction set names a non-aperture segment";
  if (info->AllocationPriority == 0) return "priority 0";
  if ((info->Flags.PermanentSysMem || info->Flags.Cached) && !info->Flags.CpuVisible) return "Cached w/o CpuVisible";
  if (info->Flags.Value & DXGK_ALLOCATIONINFOFLAGS_RESERVED_MASK) return "reserved flags";
  if (info->PreferredSegment.Reserved) return "PreferredSegment.Reserved";
  UINT ids[5] = {info->PreferredSegment.SegmentId0, info->PreferredSegment.SegmentId1,
                 info->PreferredSegment.SegmentId2, info->PreferredSegment.SegmentId3,
                 info->PreferredSegment.SegmentId4};
  for (int k = 0; k < 5 && ids[k]; k++)
    if (!(write & (1u << (ids[k] - 1)))) return "preferred outside the write set";
  uint64_t fits = 0;
  if ((write & 1) && info->Size <= config->MemorySegmentSize && info->Size % config->MemoryPageSize == 0) fits = 1;
  if ((write & 2) && info->Size <= config->ApertureSegmentSize) fits = 1;
  if (!fits) return "fits no allowed segment";
  return NULL;
}

/* Runs the parser and the reference on the same bytes; checks that they agree. */
static void compare(const SIM_HARDWARE_CONFIG *config, const void *data, uint32_t size, const char *what) {
  DXGK_ALLOCATIONINFO info;
  memset(&info, 0xA5, sizeof info);
  HANDLE marker = (HANDLE)(uintptr_t)0x1234;
  info.hAllocation = marker;
  NTSTATUS got = SimDescribeAllocation(config, data, size, &info);
  ref_out want = reference(config, data, size);
  expect_status(got, want.status, "%s (size %u)", what, size);
  expect_ptr_eq(info.hAllocation, marker, "%s: hAllocation untouched", what);
  if (got != STATUS_SUCCESS || want.status != STATUS_SUCCESS) return;
  expect_u64_eq(info.Size, want.size, "%s: Size", what);
  expect_u64_eq(info.PitchAlignedSize, want.pitch_aligned, "%s: PitchAlignedSize", what);
  expect_u64_eq(info.Alignment, want.alignment, "%s: Alignment", what);
  expect_u64_eq(info.SupportedWriteSegmentSet, want.supported, "%s: write set", what);
  expect_u64_eq(info.SupportedReadSegmentSet, want.supported, "%s: read set", what);
  expect_u64_eq(info.EvictionSegmentSet, want.eviction, "%s: eviction set", what);
  expect_u64_eq(info.PreferredSegment.Value, want.preferred, "%s: preferred", what);
  expect_u64_eq(info.AllocationPriority, want.priority, "%s: priority", what);
  expect_u64_eq(info.Flags.CpuVisible, want.cpu_visible, "%s: CpuVisible", what);
  expect_u64_eq(info.Flags.Cached, want.cached, "%s: Cached", what);
  expect_u64_eq(info.Flags.Value & ~5u, 0, "%s: other flags", what);
  expect_u64_eq(info.HintedBank.Value, 0, "%s: HintedBank", what);
  const char *broken = rule_broken(&info, config);
  expect_true(broken == NULL, "%s: DDI rule broken: %s", what, broken ? broken : "");
}

/* ---- Random ------------------------------------------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state += 0x9E3779B97F4A7C15ull;
  uint64_t z = rng_state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void wr(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A field value that is often interesting: small, a power of two, near a limit, or random. */
static uint64_t interesting(void) {
  switch (rnd() % 10) {
  case 0: return 0;
  case 1: return 1;
  case 2: return rnd() % 5000;
  case 3: return 1ull << (rnd() % 64);
  case 4: return (1ull << (rnd() % 64)) - 1;
  case 5: return UINT64_MAX - rnd() % 300;
  case 6: return (rnd() % 64 + 1) * 256;
  case 7: return UINT64_MAX / (rnd() % 16 + 1);
  default: return rnd();
  }
}

static void random_data(uint8_t out[56]) {
  SIM_ALLOCATION_DATA valid = (rnd() & 1) ? sim_allocation_buffer(1 + rnd() % (8u << 20), (UINT)(rnd() % 3), 0)
                                          : sim_allocation_texture2d(1 + rnd() % 3000, 1 + rnd() % 3000,
                                                                     1u << (rnd() % 5), (UINT)(rnd() % 3), 0);
  memcpy(out, &valid, 56);
  int changes = (int)(rnd() % 4);
  for (int c = 0; c < changes; c++) {
    switch (rnd() % 12) {
    case 0: wr(out + 8, rnd() % 4, 4); break;                  /* Kind */
    case 1: wr(out + 12, rnd() % 18, 4); break;                /* Format */
    case 2: wr(out + 16, interesting(), 8); break;             /* Width */
    case 3: wr(out + 24, interesting(), 8); break;             /* Height */
    case 4: wr(out + 32, interesting(), 8); break;             /* Pitch */
    case 5: wr(out + 40, rnd() % 0x40, 4); break;              /* Usage */
    case 6: wr(out + 44, rnd() % 4, 4); break;                 /* Placement */
    case 7: wr(out + 48, (uint32_t)interesting(), 4); break;   /* Alignment */
    case 8: wr(out + 52, (uint32_t)rnd(), 4); break;           /* Priority */
    case 9: out[rnd() % 56] ^= (uint8_t)(1u << (rnd() % 8)); break;
    case 10: wr(out + 4, rnd() % 3, 4); break;                 /* Version */
    default: out[rnd() % 56] = (uint8_t)rnd(); break;
    }
  }
}

/* ---- Tests -------------------------------------------------------------------------------------- */

TEST(valid_buffers_and_textures) {
  SIM_HARDWARE_CONFIG config = sim_hardware_config_default();
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(1, SIM_PLACEMENT_ANY, SIM_USAGE_CPU_VISIBLE);
  DXGK_ALLOCATIONINFO info;
  memset(&info, 0, sizeof info);
  assert_status(SimDescribeAllocation(NULL, &data, sizeof data, &info), STATUS_SUCCESS, "1-byte buffer");
  expect_u64_eq(info.Size, 4096, "rounded to a page");
  expect_u64_eq(info.Flags.CpuVisible, 1, "cpu visible");
  compare(&config, &data, sizeof data, "1-byte buffer");
  data = sim_allocation_texture2d(100, 10, 4, SIM_PLACEMENT_MEMORY_ONLY, SIM_USAGE_RENDER_TARGET);
  assert_status(SimDescribeAllocation(NULL, &data, sizeof data, &info), STATUS_SUCCESS, "texture");
  expect_u64_eq(info.Size, 8192, "pitch 512 x 10 rows = 5120 bytes -> 8192");
  compare(&config, &data, sizeof data, "texture");
  /* 64 KiB pages: sizes allowed in memory round to 64 KiB; aperture-only ones to 4 KiB. */
  config.MemoryPageSize = 65536;
  data = sim_allocation_buffer(5000, SIM_PLACEMENT_ANY, 0);
  assert_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_SUCCESS, "64K any");
  expect_u64_eq(info.Size, 65536, "64K page");
  data.Placement = SIM_PLACEMENT_APERTURE_ONLY;
  assert_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_SUCCESS, "64K aperture");
  expect_u64_eq(info.Size, 8192, "aperture pages stay 4K");
  expect_u64_eq(info.EvictionSegmentSet, 0, "aperture-only evicts to system memory");
  /* Too large for every allowed segment. */
  data = sim_allocation_buffer(config.MemorySegmentSize + 1, SIM_PLACEMENT_MEMORY_ONLY, 0);
  expect_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_INVALID_PARAMETER, "too big");
}

TEST(texture_size_is_pitch_times_height) {
  SIM_HARDWARE_CONFIG config = sim_hardware_config_default();
  DXGK_ALLOCATIONINFO info;
  SIM_ALLOCATION_DATA data = sim_allocation_texture2d(100, 10, 4, SIM_PLACEMENT_ANY, 0);
  assert_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_SUCCESS, "computed pitch");
  expect_u64_eq(info.Size, 8192, "pitch 512 (400 rounded to 256) * 10 = 5120 -> 8192");
  expect_u64_eq(info.PitchAlignedSize, info.Size, "textures report PitchAlignedSize = Size");
  data.Pitch = 1024;
  assert_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_SUCCESS, "explicit pitch");
  expect_u64_eq(info.Size, 12288, "1024 * 10 = 10240 -> 12288");
  data.Pitch = 384; /* < row (400) */
  expect_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_INVALID_PARAMETER, "pitch < row");
  data.Pitch = 600; /* not a multiple of 256 */
  expect_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_INVALID_PARAMETER, "pitch align");
  data.Pitch = 0;
  data.Format = 3;
  expect_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_INVALID_PARAMETER, "bpp 3");
}

TEST(overflow_cases) {
  SIM_HARDWARE_CONFIG config = sim_hardware_config_default();
  config.MemorySegmentSize = (UINT64)1 << 40;
  config.ApertureSegmentSize = (UINT64)1 << 40;
  DXGK_ALLOCATIONINFO info;
  struct {
    UINT64 width, height, pitch;
    UINT bpp;
    const char *what;
  } cases[] = {
      {UINT64_MAX / 16 + 1, 1, 0, 16, "Width * bpp overflows"},
      {UINT64_MAX / 2 + 1, 1, 0, 2, "Width * 2 overflows"},
      {UINT64_MAX / 4, 1, 0, 4, "Width * bpp fits, rounding the pitch up overflows"},
      {1, UINT64_MAX, 0, 1, "Pitch(256) * Height overflows"},
      {1, (UINT64)1 << 56, 0, 1, "Pitch * Height = 2^64 exactly"},
      {1, 3, (UINT64)1 << 63, 1, "explicit Pitch * Height overflows"},
      {1, UINT64_MAX / 256 + 1, 256, 1, "explicit 256 * Height overflows"},
      {1, (UINT64)1 << 33, 256, 1, "Pitch * Height = 2^41 fits u64 but no segment"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    SIM_ALLOCATION_DATA data = sim_allocation_texture2d(cases[i].width, cases[i].height, cases[i].bpp, 0, 0);
    data.Pitch = cases[i].pitch;
    expect_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_INVALID_PARAMETER, "%s",
                  cases[i].what);
    compare(&config, &data, sizeof data, cases[i].what);
  }
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(UINT64_MAX, 0, 0);
  expect_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_INVALID_PARAMETER,
                "buffer of 2^64-1: rounding must not wrap");
  data.Width = UINT64_MAX - 4095;
  expect_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_INVALID_PARAMETER, "near max");
  data.Width = (UINT64)1 << 40;
  expect_status(SimDescribeAllocation(&config, &data, sizeof data, &info), STATUS_SUCCESS, "exactly 1 TiB fits");
}

TEST(every_size_0_to_128) {
  SIM_HARDWARE_CONFIG config = sim_hardware_config_default();
  rng_state = al_test_seed();
  /* A heap buffer of exactly @size bytes: ASan catches any read past it. */
  for (uint32_t size = 0; size <= 128; size++) {
    for (int round = 0; round < 40; round++) {
      uint8_t *buffer = malloc(size ? size : 1);
      assert_true(buffer != NULL, "malloc");
      if (round == 0 && size >= 56) {
        SIM_ALLOCATION_DATA valid = sim_allocation_buffer(4096, 0, 0);
        memcpy(buffer, &valid, 56);
        for (uint32_t i = 56; i < size; i++) buffer[i] = (uint8_t)rnd();
      } else if (round < 20 && size >= 56) {
        random_data(buffer);
        for (uint32_t i = 56; i < size; i++) buffer[i] = (uint8_t)rnd();
      } else {
        for (uint32_t i = 0; i < size; i++) buffer[i] = (uint8_t)rnd();
        if (size >= 8 && (round & 1)) wr(buffer, 0x414C5341u | (uint64_t)1 << 32, 8);
      }
      char what[64];
      snprintf(what, sizeof what, "size %u round %d", size, round);
      compare(&config, buffer, size, what);
      if (size != 56) {
        DXGK_ALLOCATIONINFO info;
        expect_status(SimDescribeAllocation(&config, buffer, size, &info), STATUS_INVALID_PARAMETER,
                      "only 56 bytes are version 1");
      }
      free(buffer);
    }
  }
  DXGK_ALLOCATIONINFO info;
  expect_status(SimDescribeAllocation(&config, NULL, 56, &info), STATUS_INVALID_PARAMETER, "NULL data");
  SIM_ALLOCATION_DATA valid = sim_allocation_buffer(1, 0, 0);
  expect_status(SimDescribeAllocation(&config, &valid, 56, NULL), STATUS_INVALID_PARAMETER, "NULL info");
}

TEST(random_matches_reference) {
  rng_state = al_test_seed() ^ 0x5A5A;
  SIM_HARDWARE_CONFIG configs[3] = {sim_hardware_config_default(), sim_hardware_config_default(),
                                    sim_hardware_config_default()};
  configs[1].MemoryPageSize = 65536;
  configs[1].MemorySegmentSize = (UINT64)64 << 20;
  configs[2].MemorySegmentSize = (UINT64)1 << 40;
  configs[2].ApertureSegmentSize = 4096;
  uint64_t accepted = 0;
  for (int i = 0; i < 200000; i++) {
    uint8_t data[56];
    random_data(data);
    compare(&configs[i % 3], data, 56, "random");
    DXGK_ALLOCATIONINFO info;
    accepted += SimDescribeAllocation(&configs[i % 3], data, 56, &info) == STATUS_SUCCESS;
  }
  expect_u64_gt(accepted, 10000, "the generator reaches valid inputs too");
  expect_u64_lt(accepted, 190000, "and invalid ones");
}

TEST(every_single_field_rule) {
  SIM_HARDWARE_CONFIG config = sim_hardware_config_default();
  DXGK_ALLOCATIONINFO info;
  SIM_ALLOCATION_DATA base = sim_allocation_buffer(4096, 0, 0), d;
#define REJECT(change, what)                                                                         \
  do {                                                                                               \
    d = base;                                                                                        \
    change;                                                                                          \
    expect_status(SimDescribeAllocation(&config, &d, sizeof d, &info), STATUS_INVALID_PARAMETER, what); \
  } while (0)
  REJECT(d.Magic++, "magic");
  REJECT(d.Version = 2, "version");
  REJECT(d.Kind = 0, "kind 0");
  REJECT(d.Kind = 3, "kind 3");
  REJECT(d.Format = 4, "buffer with a format");
  REJECT(d.Width = 0, "empty buffer");
  REJECT(d.Height = 2, "buffer with rows");
  REJECT(d.Pitch = 256, "buffer with a pitch");
  REJECT(d.Usage = 0x20, "reserved usage");
  REJECT(d.Usage = SIM_USAGE_CPU_CACHED, "cached without cpu visible");
  REJECT(d.Usage = SIM_USAGE_RENDER_TARGET, "render target buffer");
  REJECT(d.Placement = 3, "placement");
  REJECT(d.Alignment = 3 * 4096, "alignment not a power of two");
  REJECT(d.Alignment = 1u << 27, "alignment too large");
#undef REJECT
  d = base;
  d.Usage = SIM_USAGE_CPU_VISIBLE | SIM_USAGE_CPU_CACHED | SIM_USAGE_SHADER_READ | SIM_USAGE_SHADER_WRITE;
  d.Alignment = 1u << 16;
  d.Priority = 7;
  assert_status(SimDescribeAllocation(&config, &d, sizeof d, &info), STATUS_SUCCESS, "all good bits");
  expect_u64_eq(info.Flags.Cached, 1, "cached");
  expect_u64_eq(info.Alignment, 1u << 16, "alignment reported");
  expect_u64_eq(info.AllocationPriority, 7, "priority reported");
}

TEST(bad_configs_refused) {
  SIM_HARDWARE_CONFIG c;
  SIM_ALLOCATION_DATA d = sim_allocation_buffer(1, 0, 0);
  DXGK_ALLOCATIONINFO info;
#define BAD(change, what)                                                                          \
  do {                                                                                             \
    c = sim_hardware_config_default();                                                             \
    change;                                                                                        \
    expect_status(SimDescribeAllocation(&c, &d, sizeof d, &info), STATUS_INVALID_PARAMETER, what); \
  } while (0)
  BAD(c.Magic = 0, "magic");
  BAD(c.Version = 2, "version");
  BAD(c.MemoryPageSize = 8192, "page size");
  BAD(c.EngineMode = 3, "engine mode");
  BAD(c.MemorySegmentSize = 0, "empty memory");
  BAD(c.MemorySegmentSize = 4097, "memory not a page multiple");
  BAD(c.MemorySegmentSize = ((UINT64)1 << 40) + 4096, "memory above 1 TiB");
  BAD(c.ApertureSegmentSize = 100, "aperture not a page multiple");
  BAD(c.Flags = 2, "reserved flag");
  BAD(c.Reserved = 1, "reserved");
  BAD((c.MemoryPageSize = 65536, c.MemorySegmentSize = 4096 * 17), "64K pages, size not a multiple");
#undef BAD
  c = sim_hardware_config_default();
  expect_u64_eq(c.Flags, SIM_HW_ABORT_ON_GPU_FAULT, "abort on fault by default");
  expect_u64_eq(c.MemorySegmentSize, 16u << 20, "16 MiB memory");
  expect_u64_eq(c.EngineMode, SIM_ENGINE_DETERMINISTIC, "deterministic");
}

TEST(command_encoders_layout) {
  uint8_t buffer[64];
  memset(buffer, 0xEE, sizeof buffer);
  expect_u64_eq(sim_cmd_fill(buffer, 3, 0x1122334455667788ull, 0x99, 0xA1B2C3D4u), 32, "fill bytes");
  expect_u64_eq(rd(buffer, 4), SIM_CMD_FILL, "opcode");
  expect_u64_eq(rd(buffer + 4, 4), 24, "length");
  expect_u64_eq(rd(buffer + 8, 4), 3, "index");
  expect_u64_eq(rd(buffer + 12, 4), 0xA1B2C3D4u, "pattern");
  expect_u64_eq(rd(buffer + 16, 8), 0x1122334455667788ull, "offset");
  expect_u64_eq(rd(buffer + 24, 8), 0x99, "size");
  expect_u64_eq(sim_cmd_check(buffer, 1, 2, 3, 4), 32, "check bytes");
  expect_u64_eq(rd(buffer, 4), SIM_CMD_CHECK, "check opcode");
  expect_u64_eq(sim_cmd_copy(buffer, 5, 6, 7, 8, 9), 40, "copy bytes");
  expect_u64_eq(rd(buffer, 4), SIM_CMD_COPY, "copy opcode");
  expect_u64_eq(rd(buffer + 4, 4), 32, "copy length");
  expect_u64_eq(rd(buffer + 8, 4), 5, "src index");
  expect_u64_eq(rd(buffer + 12, 4), 7, "dst index");
  expect_u64_eq(rd(buffer + 16, 8), 6, "src offset");
  expect_u64_eq(rd(buffer + 24, 8), 8, "dst offset");
  expect_u64_eq(rd(buffer + 32, 8), 9, "size");
  expect_u64_eq(sim_cmd_nop(buffer, 4), 12, "nop bytes");
  expect_u64_eq(rd(buffer + 4, 4), 4, "nop length");
  expect_u64_eq(rd(buffer + 8, 4), 0, "nop payload zero");
}

RUN_TESTS(T(valid_buffers_and_textures), T(texture_size_is_pitch_times_height), T(overflow_cases),
          T(every_size_0_to_128), T(random_matches_reference), T(every_single_field_rule),
          T(bad_configs_refused), T(command_encoders_layout))
