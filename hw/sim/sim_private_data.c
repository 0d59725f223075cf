/*
 * sim_private_data.c — the sim miniport's wire formats: the hardware configuration, the
 * allocation private data (SimDescribeAllocation) and the command-record encoders. Everything
 * here is pure: no adapter, no lock, no allocation.
 */
#include <string.h>

#include "sim_internal.h"

_Static_assert(sizeof(SIM_ALLOCATION_DATA) == SIM_ALLOCATION_DATA_SIZE, "56-byte wire format");
_Static_assert(offsetof(SIM_ALLOCATION_DATA, Width) == 16, "wire format: Width at 16");
_Static_assert(offsetof(SIM_ALLOCATION_DATA, Height) == 24, "wire format: Height at 24");
_Static_assert(offsetof(SIM_ALLOCATION_DATA, Pitch) == 32, "wire format: Pitch at 32");
_Static_assert(offsetof(SIM_ALLOCATION_DATA, Usage) == 40, "wire format: Usage at 40");
_Static_assert(offsetof(SIM_ALLOCATION_DATA, Priority) == 52, "wire format: Priority at 52");

/* Little-endian loads and stores, independent of the host's byte order. */
static UINT load_le32(const UCHAR *p) {
  return (UINT)p[0] | (UINT)p[1] << 8 | (UINT)p[2] << 16 | (UINT)p[3] << 24;
}
static UINT64 load_le64(const UCHAR *p) { return (UINT64)load_le32(p) | (UINT64)load_le32(p + 4) << 32; }
static void store_le32(UCHAR *p, UINT v) {
  for (int i = 0; i < 4; i++) p[i] = (UCHAR)(v >> (8 * i));
}
static void store_le64(UCHAR *p, UINT64 v) {
  store_le32(p, (UINT)v);
  store_le32(p + 4, (UINT)(v >> 32));
}

/* ---- Hardware configuration ------------------------------------------------------------------ */

SIM_HARDWARE_CONFIG sim_hardware_config_default(void) {
  SIM_HARDWARE_CONFIG config;
  memset(&config, 0, sizeof config);
  config.Magic = SIM_HARDWARE_MAGIC;
  config.Version = SIM_HARDWARE_VERSION;
  config.MemoryPageSize = SIM_HARDWARE_DEFAULT_PAGE_SIZE;
  config.EngineMode = SIM_HARDWARE_DEFAULT_ENGINE_MODE;
  config.MemorySegmentSize = SIM_HARDWARE_DEFAULT_MEMORY_SEGMENT_SIZE;
  config.ApertureSegmentSize = SIM_HARDWARE_DEFAULT_APERTURE_SEGMENT_SIZE;
  config.Flags = SIM_HARDWARE_DEFAULT_FLAGS;
  config.Faults = NULL;
  return config;
}

bool sim_config_valid(const SIM_HARDWARE_CONFIG *c) {
  if (c->Magic != SIM_HARDWARE_MAGIC || c->Version != SIM_HARDWARE_VERSION || c->Reserved != 0 ||
      (c->Flags & ~SIM_HW_FLAGS_ALL))
    return false;
  if (c->MemoryPageSize != 4096u && c->MemoryPageSize != 65536u) return false;
  if (c->EngineMode != SIM_ENGINE_DETERMINISTIC && c->EngineMode != SIM_ENGINE_THREADED) return false;
  if (c->MemorySegmentSize == 0 || c->MemorySegmentSize > SIM_SEGMENT_SIZE_MAX ||
      c->MemorySegmentSize % c->MemoryPageSize != 0)
    return false;
  if (c->ApertureSegmentSize == 0 || c->ApertureSegmentSize > SIM_SEGMENT_SIZE_MAX ||
      c->ApertureSegmentSize % SIM_APERTURE_PAGE_SIZE != 0)
    return false;
  return true;
}

NTSTATUS sim_config_read(const DEVICE_OBJECT *pdo, SIM_HARDWARE_CONFIG *out) {
  if (pdo->pAlHardwareConfig == NULL) {
    if (pdo->AlHardwareConfigSize != 0) return STATUS_INVALID_PARAMETER;
    *out = sim_hardware_config_default();
    return STATUS_SUCCESS;
  }
  if (pdo->AlHardwareConfigSize != sizeof(SIM_HARDWARE_CONFIG)) return STATUS_INVALID_PARAMETER;
  memcpy(out, pdo->pAlHardwareConfig, sizeof *out);
  return sim_config_valid(out) ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
}

/* ---- Allocation private data ------------------------------------------------------------------ */

SIM_ALLOCATION_DATA sim_allocation_buffer(UINT64 size_bytes, UINT placement, UINT usage) {
  SIM_ALLOCATION_DATA data;
  memset(&data, 0, sizeof data);
  data.Magic = SIM_ALLOCATION_MAGIC;
  data.Version = SIM_ALLOCATION_VERSION;
  data.Kind = SIM_KIND_BUFFER;
  data.Width = size_bytes;
  data.Usage = usage;
  data.Placement = placement;
  return data;
}

SIM_ALLOCATION_DATA sim_allocation_texture2d(UINT64 width, UINT64 height, UINT bytes_per_texel,
                                             UINT placement, UINT usage) {
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(width, placement, usage);
  data.Kind = SIM_KIND_TEXTURE2D;
  data.Format = bytes_per_texel;
  data.Height = height;
  return data;
}

static bool is_texel_size(UINT format) {
  return format == 1 || format == 2 || format == 4 || format == 8 || format == 16;
}

NTSTATUS SimDescribeAllocation(const SIM_HARDWARE_CONFIG *Config, const VOID *pPrivateDriverData,
                               UINT PrivateDriverDataSize, DXGK_ALLOCATIONINFO *pInfo) {
  SIM_HARDWARE_CONFIG defaults;
  if (Config == NULL) {
    defaults = sim_hardware_config_default();
    Config = &defaults;
  }
  if (pInfo == NULL || !sim_config_valid(Config)) return STATUS_INVALID_PARAMETER;
  if (pPrivateDriverData == NULL || PrivateDriverDataSize != SIM_ALLOCATION_DATA_SIZE)
    return STATUS_INVALID_PARAMETER;
  /* One copy, then decode from it: no double fetch, nothing read past the 56 bytes. */
  UCHAR raw[SIM_ALLOCATION_DATA_SIZE];
  memcpy(raw, pPrivateDriverData, sizeof raw);
  const UINT magic = load_le32(raw + 0), version = load_le32(raw + 4), kind = load_le32(raw + 8);
  const UINT format = load_le32(raw + 12);
  const UINT64 width = load_le64(raw + 16), height = load_le64(raw + 24), pitch = load_le64(raw + 32);
  const UINT usage = load_le32(raw + 40), placement = load_le32(raw + 44);
  const UINT alignment = load_le32(raw + 48), priority = load_le32(raw + 52);

  if (magic != SIM_ALLOCATION_MAGIC || version != SIM_ALLOCATION_VERSION) return STATUS_INVALID_PARAMETER;
  if ((usage & ~SIM_USAGE_ALL) || ((usage & SIM_USAGE_CPU_CACHED) && !(usage & SIM_USAGE_CPU_VISIBLE)))
    return STATUS_INVALID_PARAMETER;
  if (placement > SIM_PLACEMENT_APERTURE_ONLY) return STATUS_INVALID_PARAMETER;
  if ((alignment & (alignment - 1u)) != 0 || alignment > SIM_ALLOCATION_ALIGNMENT_MAX)
    return STATUS_INVALID_PARAMETER;

  UINT64 need;
  if (kind == SIM_KIND_BUFFER) {
    if (format != 0 || width == 0 || height > 1 || pitch != 0 || (usage & SIM_USAGE_RENDER_TARGET))
      return STATUS_INVALID_PARAMETER;
    need = width;
  } else if (kind == SIM_KIND_TEXTURE2D) {
    if (!is_texel_size(format) || width == 0 || height == 0) return STATUS_INVALID_PARAMETER;
    if (width > UINT64_MAX / format) return STATUS_INVALID_PARAMETER; /* Width * bpp overflows */
    const UINT64 row = width * format;
    UINT64 row_pitch = pitch;
    if (row_pitch == 0) {
      if (row > UINT64_MAX - (SIM_TEXTURE_PITCH_ALIGNMENT - 1u)) return STATUS_INVALID_PARAMETER;
      row_pitch = (row + SIM_TEXTURE_PITCH_ALIGNMENT - 1u) / SIM_TEXTURE_PITCH_ALIGNMENT *
                  SIM_TEXTURE_PITCH_ALIGNMENT;
    } else if (row_pitch < row || row_pitch % SIM_TEXTURE_PITCH_ALIGNMENT != 0) {
      return STATUS_INVALID_PARAMETER;
    }
    if (row_pitch > UINT64_MAX / height) return STATUS_INVALID_PARAMETER; /* Pitch * Height */
    need = row_pitch * height;
  } else {
    return STATUS_INVALID_PARAMETER;
  }

  UINT supported = SIM_SEGMENT_SET_ALL;
  if (placement == SIM_PLACEMENT_MEMORY_ONLY) supported = SIM_SEGMENT_BIT(SIM_SEGMENT_ID_MEMORY);
  if (placement == SIM_PLACEMENT_APERTURE_ONLY) supported = SIM_SEGMENT_BIT(SIM_SEGMENT_ID_APERTURE);
  UINT64 page = SIM_APERTURE_PAGE_SIZE, largest = 0;
  for (UINT id = 1; id <= SIM_SEGMENT_COUNT; id++) {
    if (!(supported & SIM_SEGMENT_BIT(id))) continue;
    UINT64 id_page = id == SIM_SEGMENT_ID_MEMORY ? Config->MemoryPageSize : SIM_APERTURE_PAGE_SIZE;
    UINT64 id_size = id == SIM_SEGMENT_ID_MEMORY ? Config->MemorySegmentSize : Config->ApertureSegmentSize;
    if (id_page > page) page = id_page;
    if (id_size > largest) largest = id_size;
  }
  /* largest <= SIM_SEGMENT_SIZE_MAX (2^40): need <= largest makes the rounding overflow-free. */
  if (need > largest) return STATUS_INVALID_PARAMETER;
  const UINT64 size = (need + page - 1u) / page * page;
  if (size > largest) return STATUS_INVALID_PARAMETER;
  if ((UINT64)(SIZE_T)size != size) return STATUS_INVALID_PARAMETER;

  const UINT eviction = placement == SIM_PLACEMENT_APERTURE_ONLY ? 0u : SIM_SEGMENT_BIT(SIM_SEGMENT_ID_APERTURE);
  pInfo->Alignment = alignment;
  pInfo->Size = (SIZE_T)size;
  pInfo->PitchAlignedSize = kind == SIM_KIND_TEXTURE2D ? (SIZE_T)size : 0;
  pInfo->HintedBank.Value = 0;
  pInfo->PreferredSegment.Value = 0;
  if (supported == SIM_SEGMENT_SET_ALL) {
    pInfo->PreferredSegment.SegmentId0 = SIM_SEGMENT_ID_MEMORY;
    pInfo->PreferredSegment.SegmentId1 = SIM_SEGMENT_ID_APERTURE;
  } else {
    pInfo->PreferredSegment.SegmentId0 =
        placement == SIM_PLACEMENT_MEMORY_ONLY ? SIM_SEGMENT_ID_MEMORY : SIM_SEGMENT_ID_APERTURE;
  }
  pInfo->SupportedReadSegmentSet = supported;
  pInfo->SupportedWriteSegmentSet = supported;
  pInfo->EvictionSegmentSet = eviction;
  pInfo->MaximumRenamingListLength = 0;
  pInfo->Flags.Value = 0;
  pInfo->Flags.CpuVisible = (usage & SIM_USAGE_CPU_VISIBLE) ? 1u : 0u;
  pInfo->Flags.Cached = (usage & SIM_USAGE_CPU_CACHED) ? 1u : 0u;
  pInfo->pAllocationUsageHint = NULL;
  pInfo->AllocationPriority = priority ? priority : SIM_ALLOCATION_PRIORITY_DEFAULT;
  return STATUS_SUCCESS;
}

/* ---- Command records -------------------------------------------------------------------------- */

size_t sim_cmd_nop(void *out, UINT payload_bytes) {
  UCHAR *p = out;
  store_le32(p, SIM_CMD_NOP);
  store_le32(p + 4, payload_bytes);
  memset(p + 8, 0, payload_bytes);
  return SIM_CMD_HEADER_BYTES + (size_t)payload_bytes;
}

size_t sim_cmd_fill(void *out, UINT index, UINT64 offset, UINT64 size, UINT pattern) {
  UCHAR *p = out;
  store_le32(p, SIM_CMD_FILL);
  store_le32(p + 4, SIM_CMD_FILL_BYTES - SIM_CMD_HEADER_BYTES);
  store_le32(p + 8, index);
  store_le32(p + 12, pattern);
  store_le64(p + 16, offset);
  store_le64(p + 24, size);
  return SIM_CMD_FILL_BYTES;
}

size_t sim_cmd_copy(void *out, UINT src_index, UINT64 src_offset, UINT dst_index,
                    UINT64 dst_offset, UINT64 size) {
  UCHAR *p = out;
  store_le32(p, SIM_CMD_COPY);
  store_le32(p + 4, SIM_CMD_COPY_BYTES - SIM_CMD_HEADER_BYTES);
  store_le32(p + 8, src_index);
  store_le32(p + 12, dst_index);
  store_le64(p + 16, src_offset);
  store_le64(p + 24, dst_offset);
  store_le64(p + 32, size);
  return SIM_CMD_COPY_BYTES;
}

size_t sim_cmd_check(void *out, UINT index, UINT64 offset, UINT64 size, UINT pattern) {
  size_t bytes = sim_cmd_fill(out, index, offset, size, pattern);
  store_le32(out, SIM_CMD_CHECK);
  return bytes;
}
