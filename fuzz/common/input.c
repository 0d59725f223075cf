/*
 * input.c — the versioned binary input format (input.h): data provider, decoder, encoder,
 * validation and equality of programs.
 */
#include "alloclab/fuzz/input.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fuzz/common/track.h"

const uint64_t fz_size_table[16] = {
    0u,
    1u,
    4095u,
    4097u,
    65535u,
    65537u,
    UINT64_C(1) << 21,
    (UINT64_C(1) << 21) + 4096u,
    UINT64_C(1) << 30,
    UINT64_C(1) << 31,
    UINT64_C(1) << 32,
    (UINT64_C(1) << 32) + 4096u,
    UINT64_C(1) << 48,
    UINT64_C(1) << 63,
    UINT64_MAX - 4095u,
    UINT64_MAX,
};

/* Handles are type (2) | generation (10) | slot (20): values of each type with generation 0
 * and 1 at slot 1, the edges of the slot field, and plain garbage. */
const uint32_t fz_literal_table[16] = {
    0x00000000u, 0xFFFFFFFFu, 0xDEAD0001u, 0x00000001u, 0x00100001u, 0x000FFFFFu,
    0x40000001u, 0x40100001u, 0x80000001u, 0x80100001u, 0xC0000001u, 0xC0100001u,
    0x3FFFFFFFu, 0x7FFFFFFFu, 0x80000000u, 0xFFF00000u,
};

/* Big create counts in one byte: the edges of the 32-entry lists, of powers of two and of the
 * port's maximum (1024). */
const uint16_t fz_count_table[14] = {33, 63, 64, 65, 127, 128, 255, 256, 511, 512, 513, 1000, 1023, 1024};

/* Range spans (elements after the first) of RANGE selectors 2..14. */
const uint16_t fz_span_table[13] = {1, 2, 3, 7, 15, 31, 63, 127, 255, 511, 1023, 4, 8};

/* ---- Data provider ------------------------------------------------------------------------ */

void fz_cursor_init(fz_cursor *c, const uint8_t *data, size_t size) {
  c->data = data;
  c->size = data != NULL ? size : 0u;
  c->pos = 0;
}

size_t fz_cursor_remaining(const fz_cursor *c) { return c->pos < c->size ? c->size - c->pos : 0u; }

uint8_t fz_consume_u8(fz_cursor *c) {
  if (c->pos >= c->size) {
    return 0;
  }
  return c->data[c->pos++];
}

uint16_t fz_consume_u16(fz_cursor *c) {
  uint16_t lo = fz_consume_u8(c);
  uint16_t hi = fz_consume_u8(c);
  return (uint16_t)(lo | (uint16_t)(hi << 8));
}

uint32_t fz_consume_u32(fz_cursor *c) {
  uint32_t lo = fz_consume_u16(c);
  uint32_t hi = fz_consume_u16(c);
  return lo | (hi << 16);
}

uint64_t fz_consume_u64(fz_cursor *c) {
  uint64_t lo = fz_consume_u32(c);
  uint64_t hi = fz_consume_u32(c);
  return lo | (hi << 32);
}

bool fz_consume_bool(fz_cursor *c) { return (fz_consume_u8(c) & 1u) != 0; }

uint32_t fz_consume_enum(fz_cursor *c, uint32_t count) {
  if (count <= 1) {
    return 0;
  }
  if (count <= 256) {
    return fz_consume_u8(c) % count;
  }
  if (count <= 65536) {
    return fz_consume_u16(c) % count;
  }
  return fz_consume_u32(c) % count;
}

uint32_t fz_consume_varint32(fz_cursor *c) {
  uint32_t v = 0;
  for (unsigned i = 0; i < 5; i++) {
    uint8_t b = fz_consume_u8(c);
    v |= (uint32_t)(b & 0x7Fu) << (7u * i); /* i = 4: bits above 31 fall off */
    if ((b & 0x80u) == 0) {
      break;
    }
  }
  return v;
}

size_t fz_consume_bytes(fz_cursor *c, void *out, size_t n) {
  size_t have = fz_cursor_remaining(c);
  size_t take = n < have ? n : have;
  if (take > 0) {
    memcpy(out, c->data + c->pos, take);
    c->pos += take;
  }
  if (n > take) {
    memset((uint8_t *)out + take, 0, n - take);
  }
  return take;
}

/* ---- Shared pieces -------------------------------------------------------------------------- */

uint32_t fz_op_fields(fz_op op) {
  switch (op) {
  case FZ_OP_CREATE_DEVICE:
    return FZ_FIELD_INFO;
  case FZ_OP_DESTROY_DEVICE:
    return FZ_FIELD_DEVICE;
  case FZ_OP_CREATE_ALLOCATIONS:
    return FZ_FIELD_DEVICE | FZ_FIELD_COUNT | FZ_FIELD_SIZE | FZ_FIELD_PLACEMENT | FZ_FIELD_ALIGN;
  case FZ_OP_CREATE_RESOURCE:
    return FZ_FIELD_DEVICE | FZ_FIELD_COUNT | FZ_FIELD_SIZE | FZ_FIELD_PLACEMENT |
           FZ_FIELD_SHARED | FZ_FIELD_ALIGN;
  case FZ_OP_ADD_TO_RESOURCE:
    return FZ_FIELD_DEVICE | FZ_FIELD_RESOURCE | FZ_FIELD_COUNT | FZ_FIELD_SIZE |
           FZ_FIELD_PLACEMENT | FZ_FIELD_ALIGN;
  case FZ_OP_OPEN_RESOURCE:
    return FZ_FIELD_DEVICE | FZ_FIELD_RESOURCE;
  case FZ_OP_DESTROY_RESOURCE:
    return FZ_FIELD_DEVICE | FZ_FIELD_RESOURCE | FZ_FIELD_FLAGS;
  case FZ_OP_DESTROY_ALLOCATIONS:
    return FZ_FIELD_DEVICE | FZ_FIELD_FLAGS | FZ_FIELD_LIST;
  case FZ_OP_SUBMIT:
    return FZ_FIELD_DEVICE | FZ_FIELD_COMMAND | FZ_FIELD_LIST;
  case FZ_OP_GPU_RUN:
    return FZ_FIELD_COUNT;
  case FZ_OP_FENCE_WAIT:
    return FZ_FIELD_FENCE;
  case FZ_OP_QUERY:
    return FZ_FIELD_ALLOCATION;
  case FZ_OP_DAMAGE:
    return FZ_FIELD_DAMAGE | FZ_FIELD_PICK;
  default:
    return 0;
  }
}

/* The candidates a selector's form actually uses: its own set, else its fallback (input.h).
 * False when both are empty. */
static bool effective_pick(const fz_track *t, const fz_ref_ctx *ctx, fz_pick first,
                           fz_cands *out) {
  if (fz_track_collect(t, ctx, first, out) > 0) {
    return true;
  }
  return first != FZ_PICK_LIVE && fz_track_collect(t, ctx, FZ_PICK_LIVE, out) > 0;
}

/* A list length (both versions). */
static uint32_t decode_length(uint8_t b) {
  if (b < 0xC0u) {
    return 1u + (b & 7u);
  }
  return (uint32_t)(b - 0xC0u) % (FZ_MAX_LIST + 1u);
}

static uint8_t encode_length(uint32_t v) {
  if (v >= 1 && v <= 8) {
    return (uint8_t)(v - 1u);
  }
  return (uint8_t)(0xC0u + v);
}

/* A count (creates, gpu_run); version 1 had no big counts. */
static uint32_t decode_count(fz_cursor *c, unsigned version) {
  uint8_t b = fz_consume_u8(c);
  if (b == 0xFFu) {
    return FZ_COUNT_OVER_MAXIMUM;
  }
  if (b < 0xF0u || version == FZ_FORMAT_VERSION_1) {
    return decode_length(b);
  }
  if (b < 0xFEu) {
    return fz_count_table[b & 0x0Fu];
  }
  return fz_consume_u16(c) % (FZ_MAX_ELEMENTS + 1u);
}

static uint8_t count_table_index(uint32_t v) {
  for (uint8_t i = 0; i < sizeof fz_count_table / sizeof fz_count_table[0]; i++) {
    if (fz_count_table[i] == v) {
      return i;
    }
  }
  return 0xFFu;
}

/* ---- Decoder -------------------------------------------------------------------------------- */

static fz_ref literal_ref(uint32_t value) {
  fz_ref r = {.kind = FZ_REF_LITERAL, .literal = value};
  return r;
}

/* The span of a RANGE selector with low nibble j whose first element is @first (input.h). */
static uint16_t range_span(const fz_track *t, const fz_ref *first, uint32_t j, uint16_t raw) {
  if (first->kind != FZ_REF_RESULT || first->element == FZ_ELEMENT_SELF ||
      first->element >= FZ_MAX_ELEMENTS) {
    return 0;
  }
  uint32_t e = first->element;
  uint32_t n = first->call < t->count ? t->nalloc[first->call] : 0u;
  uint32_t span;
  if (j == 0) {
    span = n > e + 1u ? n - 1u - e : 0u;
  } else if (j == 1) {
    span = n > e ? n - e : 0u;
  } else if (j < 15) {
    span = fz_span_table[j - 2u];
  } else {
    span = raw % FZ_MAX_ELEMENTS;
  }
  uint32_t room = FZ_MAX_ELEMENTS - 1u - e;
  return (uint16_t)(span < room ? span : room);
}

static fz_ref decode_ref(fz_cursor *c, const fz_track *t, const fz_ref_ctx *ctx, unsigned version,
                         bool range_allowed) {
  uint8_t s = fz_consume_u8(c);
  if (s >= 0x90u && s < 0xA0u && range_allowed && version != FZ_FORMAT_VERSION_1) {
    fz_ref first = decode_ref(c, t, ctx, version, false);
    uint16_t raw = (s & 0x0Fu) == 15u ? fz_consume_u16(c) : 0u;
    first.span = range_span(t, &first, s & 0x0Fu, raw);
    return first;
  }
  if (s < 0xC0u) {
    fz_pick first = s < 0xA0u ? FZ_PICK_PREFERRED : s < 0xB0u ? FZ_PICK_LIVE : FZ_PICK_STALE;
    fz_cands cands;
    if (!effective_pick(t, ctx, first, &cands)) {
      return literal_ref(0);
    }
    return fz_cands_nth(&cands, ctx->slot, (s & 0x0Fu) % cands.count);
  }
  if (s < 0xE0u) {
    uint8_t back = fz_consume_u8(c);
    uint8_t element = fz_consume_u8(c);
    if (ctx->cur == 0) {
      return literal_ref(0);
    }
    fz_ref r = {.kind = FZ_REF_RESULT};
    r.call = (uint16_t)(ctx->cur - 1u - back % ctx->cur);
    if (element < FZ_MAX_LIST) {
      r.element = element;
    } else if (element == 0xFEu && version != FZ_FORMAT_VERSION_1) {
      r.element = (uint16_t)(fz_consume_u16(c) % FZ_MAX_ELEMENTS);
    } else {
      r.element = (uint16_t)FZ_ELEMENT_SELF;
    }
    return r;
  }
  if (s < 0xF0u) {
    return literal_ref(fz_literal_table[s & 0x0Fu]);
  }
  return literal_ref(fz_consume_u32(c));
}

static uint64_t decode_size(fz_cursor *c) {
  uint8_t t = fz_consume_u8(c);
  if (t < 0x80u) {
    return ((uint64_t)t + 1u) * 4096u;
  }
  if (t < 0xC0u) {
    return (uint64_t)fz_consume_u16(c) * 4096u;
  }
  if (t < 0xE0u) {
    return fz_size_table[t & 0x0Fu];
  }
  return fz_consume_u64(c);
}

static void decode_call(fz_cursor *c, const fz_track *t, fz_call *call, unsigned version) {
  uint8_t b = fz_consume_u8(c);
  call->op = (fz_op)((b & 0x0Fu) % (version >= FZ_FORMAT_VERSION_4 ? FZ_OP_COUNT : FZ_OP_COUNT_V3));
  uint8_t info_byte = b & 0x10u ? 0x80u : 0u; /* without a hostile byte: bit 4 of the opcode */
  if ((b & 0xF0u) == 0xF0u) {
    info_byte = fz_consume_u8(c);
    call->hostile = info_byte & (version == FZ_FORMAT_VERSION_1 ? 0x1Fu : FZ_HOSTILE_ALL);
  }
  uint32_t fields = fz_op_fields(call->op);
  if ((fields & FZ_FIELD_INFO) && version >= FZ_FORMAT_VERSION_3) {
    call->info = (info_byte & 0x80u) != 0;
  }
  fz_ref_ctx ctx;
  if (call->op == FZ_OP_OPEN_RESOURCE) {
    fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_RESOURCE, NULL);
    call->resource = decode_ref(c, t, &ctx, version, false);
    fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_DEVICE, NULL);
    call->device = decode_ref(c, t, &ctx, version, false);
  } else {
    if (fields & FZ_FIELD_DEVICE) {
      fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_DEVICE, NULL);
      call->device = decode_ref(c, t, &ctx, version, false);
    }
    if (fields & FZ_FIELD_RESOURCE) {
      fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_RESOURCE, NULL);
      call->resource = decode_ref(c, t, &ctx, version, false);
    }
  }
  if (fields & FZ_FIELD_FENCE) {
    fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_FENCE, NULL);
    call->fence = decode_ref(c, t, &ctx, version, false);
  }
  if (fields & FZ_FIELD_ALLOCATION) {
    fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_ALLOCATION, NULL);
    call->allocation = decode_ref(c, t, &ctx, version, false);
  }
  if (fields & FZ_FIELD_COUNT) {
    call->count = decode_count(c, version);
  }
  if (fields & FZ_FIELD_SIZE) {
    call->size = decode_size(c);
  }
  if (fields & FZ_FIELD_PLACEMENT) {
    uint8_t shape = fz_consume_u8(c);
    call->placement = (fz_placement)((shape & 3u) % 3u);
    if (fields & FZ_FIELD_SHARED) {
      call->shared = ((shape >> 2) & 1u) != 0;
    }
    if ((fields & FZ_FIELD_ALIGN) && (shape & 0x80u) && version >= FZ_FORMAT_VERSION_3) {
      uint8_t a = fz_consume_u8(c);
      call->align = a < 32u ? 1u << a : a == 0xFFu ? fz_consume_u32(c) : a;
    }
  }
  if (fields & FZ_FIELD_FLAGS) {
    uint8_t g = fz_consume_u8(c);
    call->flags = g < 0x80u ? (g & 3u) : fz_consume_u8(c);
  }
  if (fields & FZ_FIELD_COMMAND) {
    /* Versions 1 and 2 knew nop, fill and check; version 3 adds copy. */
    call->command = (fz_command)fz_consume_enum(c, version >= FZ_FORMAT_VERSION_3 ? 4u : 3u);
  }
  if (fields & FZ_FIELD_DAMAGE) {
    call->damage = fz_consume_u8(c);
  }
  if (fields & FZ_FIELD_PICK) {
    call->pick = fz_consume_u8(c);
  }
  if (fields & FZ_FIELD_LIST) {
    uint32_t listed[FZ_MAX_CALLS];
    memset(listed, 0, sizeof listed);
    call->list_length = decode_length(fz_consume_u8(c));
    fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_ALLOCATION, listed);
    for (uint32_t i = 0; i < call->list_length; i++) {
      fz_ref r = decode_ref(c, t, &ctx, version, true);
      call->list[i] = r;
      fz_track_mark_listed(listed, &r);
    }
  }
}

bool fz_decode(const uint8_t *data, size_t size, fz_program *out) {
  /* Only the header fields and the calls decoded are cleared: calls past call_count are
   * ignored by definition, and clearing all 64 would cost more than decoding most inputs. */
  out->call_count = 0;
  out->fault_count = 0;
  memset(out->faults, 0, sizeof out->faults);
  out->threaded_engine = false;
  out->adapter_teardown = false;
  fz_cursor c;
  fz_cursor_init(&c, data, size);
  unsigned version = FZ_FORMAT_VERSION;
  if (c.size >= FZ_FORMAT_HEADER_SIZE && memcmp(data, FZ_FORMAT_MAGIC, FZ_FORMAT_MAGIC_SIZE) == 0) {
    version = data[FZ_FORMAT_MAGIC_SIZE];
    if (version != FZ_FORMAT_VERSION && version != FZ_FORMAT_VERSION_3 && version != FZ_FORMAT_VERSION_2 &&
        version != FZ_FORMAT_VERSION_1) {
      return false;
    }
    c.pos = FZ_FORMAT_HEADER_SIZE;
  }
  uint8_t f = fz_consume_u8(&c);
  /* Versions 1 and 2 ignore the bit (no corpus file of theirs sets it: the encoders wrote 0x00
   * or 0xC0 | n). */
  if (version >= FZ_FORMAT_VERSION_3) {
    out->threaded_engine = (f & FZ_FAULTS_BYTE_THREADED_ENGINE) != 0;
    out->adapter_teardown = (f & FZ_FAULTS_BYTE_ADAPTER_TEARDOWN) != 0;
  }
  if ((f >> 6) == 3u) {
    out->fault_count = 1u + (f & 3u);
    for (uint32_t i = 0; i < out->fault_count; i++) {
      out->faults[i].point = fz_consume_varint32(&c);
      out->faults[i].nth = fz_consume_varint32(&c);
      out->faults[i].repeat = fz_consume_varint32(&c);
    }
  }
  fz_track t;
  fz_track_init(&t);
  while (out->call_count < FZ_MAX_CALLS && fz_cursor_remaining(&c) > 0) {
    fz_call *call = &out->calls[out->call_count];
    memset(call, 0, sizeof *call);
    decode_call(&c, &t, call, version);
    fz_track_apply(&t, call);
    out->call_count++;
  }
  return true;
}

/* ---- Encoder -------------------------------------------------------------------------------- */

typedef struct fz_writer {
  uint8_t *out;
  size_t cap;
  size_t len;
} fz_writer;

static void put_u8(fz_writer *w, uint8_t b) {
  if (w->len < w->cap) {
    w->out[w->len] = b;
  }
  w->len++;
}

static void put_u16(fz_writer *w, uint16_t v) {
  put_u8(w, (uint8_t)v);
  put_u8(w, (uint8_t)(v >> 8));
}

static void put_u32(fz_writer *w, uint32_t v) {
  put_u16(w, (uint16_t)v);
  put_u16(w, (uint16_t)(v >> 16));
}

static void put_u64(fz_writer *w, uint64_t v) {
  put_u32(w, (uint32_t)v);
  put_u32(w, (uint32_t)(v >> 32));
}

static void put_varint32(fz_writer *w, uint32_t v) {
  while (v >= 0x80u) {
    put_u8(w, (uint8_t)(v | 0x80u));
    v >>= 7;
  }
  put_u8(w, (uint8_t)v);
}

static void encode_ref(fz_writer *w, const fz_track *t, const fz_ref_ctx *ctx, const fz_ref *ref) {
  if (ref->kind == FZ_REF_RESULT && ref->span != 0) {
    fz_ref first = *ref;
    first.span = 0;
    for (uint8_t j = 0; j < 15; j++) {
      if (range_span(t, &first, j, 0) == ref->span) {
        put_u8(w, (uint8_t)(0x90u | j));
        encode_ref(w, t, ctx, &first);
        return;
      }
    }
    put_u8(w, 0x9Fu);
    encode_ref(w, t, ctx, &first);
    put_u16(w, ref->span);
    return;
  }
  if (ref->kind == FZ_REF_RESULT) {
    static const struct {
      uint8_t base;
      fz_pick pick;
    } forms[] = {{0x00u, FZ_PICK_PREFERRED}, {0xA0u, FZ_PICK_LIVE}, {0xB0u, FZ_PICK_STALE}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
      fz_cands cands;
      if (!effective_pick(t, ctx, forms[i].pick, &cands)) {
        continue;
      }
      int rank = fz_cands_rank(&cands, ctx->slot, ref);
      if (rank >= 0 && rank < 16) {
        put_u8(w, (uint8_t)(forms[i].base | (uint8_t)rank));
        return;
      }
    }
    put_u8(w, 0xC0u);
    put_u8(w, (uint8_t)(ctx->cur - 1u - ref->call));
    if (ref->element == FZ_ELEMENT_SELF) {
      put_u8(w, 0xFFu);
    } else if (ref->element < FZ_MAX_LIST) {
      put_u8(w, (uint8_t)ref->element);
    } else {
      put_u8(w, 0xFEu);
      put_u16(w, ref->element);
    }
    return;
  }
  for (uint8_t i = 0; i < 16; i++) {
    if (fz_literal_table[i] == ref->literal) {
      put_u8(w, (uint8_t)(0xE0u | i));
      return;
    }
  }
  put_u8(w, 0xF0u);
  put_u32(w, ref->literal);
}

static void encode_size(fz_writer *w, uint64_t size) {
  if (size % 4096u == 0) {
    uint64_t pages = size / 4096u;
    if (pages >= 1 && pages <= 0x80u) {
      put_u8(w, (uint8_t)(pages - 1u));
      return;
    }
    if (pages <= 0xFFFFu) {
      put_u8(w, 0x80u);
      put_u16(w, (uint16_t)pages);
      return;
    }
  }
  for (uint8_t i = 0; i < 16; i++) {
    if (fz_size_table[i] == size) {
      put_u8(w, (uint8_t)(0xC0u | i));
      return;
    }
  }
  put_u8(w, 0xE0u);
  put_u64(w, size);
}

static void encode_align(fz_writer *w, uint32_t align) {
  if ((align & (align - 1u)) == 0) {
    put_u8(w, (uint8_t)__builtin_ctz(align));
  } else if (align >= 32u && align < 0xFFu) {
    put_u8(w, (uint8_t)align);
  } else {
    put_u8(w, 0xFFu);
    put_u32(w, align);
  }
}

static void encode_call(fz_writer *w, const fz_track *t, const fz_call *call) {
  put_u8(w, (uint8_t)((uint8_t)call->op | (call->hostile ? 0xF0u : call->info ? 0x10u : 0u)));
  if (call->hostile) {
    put_u8(w, (uint8_t)(call->hostile | (call->info ? 0x80u : 0u)));
  }
  uint32_t fields = fz_op_fields(call->op);
  fz_ref_ctx ctx;
  if (call->op == FZ_OP_OPEN_RESOURCE) {
    fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_RESOURCE, NULL);
    encode_ref(w, t, &ctx, &call->resource);
    fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_DEVICE, NULL);
    encode_ref(w, t, &ctx, &call->device);
  } else {
    if (fields & FZ_FIELD_DEVICE) {
      fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_DEVICE, NULL);
      encode_ref(w, t, &ctx, &call->device);
    }
    if (fields & FZ_FIELD_RESOURCE) {
      fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_RESOURCE, NULL);
      encode_ref(w, t, &ctx, &call->resource);
    }
  }
  if (fields & FZ_FIELD_FENCE) {
    fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_FENCE, NULL);
    encode_ref(w, t, &ctx, &call->fence);
  }
  if (fields & FZ_FIELD_ALLOCATION) {
    fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_ALLOCATION, NULL);
    encode_ref(w, t, &ctx, &call->allocation);
  }
  if (fields & FZ_FIELD_COUNT) {
    uint8_t table = count_table_index(call->count);
    if (call->count == FZ_COUNT_OVER_MAXIMUM) {
      put_u8(w, 0xFFu);
    } else if (call->count <= FZ_MAX_LIST) {
      put_u8(w, encode_length(call->count));
    } else if (table != 0xFFu) {
      put_u8(w, (uint8_t)(0xF0u | table));
    } else {
      put_u8(w, 0xFEu);
      put_u16(w, (uint16_t)call->count);
    }
  }
  if (fields & FZ_FIELD_SIZE) {
    encode_size(w, call->size);
  }
  if (fields & FZ_FIELD_PLACEMENT) {
    put_u8(w, (uint8_t)((uint8_t)call->placement | (call->shared ? 4u : 0u) | (call->align ? 0x80u : 0u)));
    if (call->align != 0) {
      encode_align(w, call->align);
    }
  }
  if (fields & FZ_FIELD_FLAGS) {
    if (call->flags <= 3u) {
      put_u8(w, (uint8_t)call->flags);
    } else {
      put_u8(w, 0x80u);
      put_u8(w, (uint8_t)call->flags);
    }
  }
  if (fields & FZ_FIELD_COMMAND) {
    put_u8(w, (uint8_t)call->command);
  }
  if (fields & FZ_FIELD_DAMAGE) {
    put_u8(w, call->damage);
  }
  if (fields & FZ_FIELD_PICK) {
    put_u8(w, call->pick);
  }
  if (fields & FZ_FIELD_LIST) {
    uint32_t listed[FZ_MAX_CALLS];
    memset(listed, 0, sizeof listed);
    put_u8(w, encode_length(call->list_length));
    fz_ref_ctx_init(&ctx, t, call, FZ_SLOT_ALLOCATION, listed);
    for (uint32_t i = 0; i < call->list_length; i++) {
      const fz_ref *r = &call->list[i];
      encode_ref(w, t, &ctx, r);
      fz_track_mark_listed(listed, r);
    }
  }
}

size_t fz_encode(const fz_program *p, uint8_t *out, size_t cap) {
  if (!fz_program_validate(p, NULL, 0)) {
    return 0;
  }
  return fz_encode_valid(p, out, cap);
}

size_t fz_encode_valid(const fz_program *p, uint8_t *out, size_t cap) {
  fz_writer w = {.out = out, .cap = out != NULL ? cap : 0u, .len = 0};
  for (size_t i = 0; i < FZ_FORMAT_MAGIC_SIZE; i++) {
    put_u8(&w, (uint8_t)FZ_FORMAT_MAGIC[i]);
  }
  put_u8(&w, FZ_FORMAT_VERSION);
  uint8_t faults_byte = p->fault_count == 0 ? 0u : (uint8_t)(0xC0u | (p->fault_count - 1u));
  if (p->threaded_engine) faults_byte |= FZ_FAULTS_BYTE_THREADED_ENGINE;
  if (p->adapter_teardown) faults_byte |= FZ_FAULTS_BYTE_ADAPTER_TEARDOWN;
  put_u8(&w, faults_byte);
  for (uint32_t i = 0; i < p->fault_count; i++) {
    put_varint32(&w, p->faults[i].point);
    put_varint32(&w, p->faults[i].nth);
    put_varint32(&w, p->faults[i].repeat);
  }
  fz_track t;
  fz_track_init(&t);
  for (uint32_t k = 0; k < p->call_count; k++) {
    encode_call(&w, &t, &p->calls[k]);
    fz_track_apply(&t, &p->calls[k]);
  }
  return w.len;
}

/* ---- Validation and equality ------------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static bool fail(char *err, size_t cap, const char *fmt,
                                                       ...) {
  if (err != NULL && cap > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
  }
  return false;
}

static bool zero_ref(const fz_ref *r) {
  return r->kind == FZ_REF_RESULT && r->call == 0 && r->element == 0 && r->literal == 0 &&
         r->span == 0;
}

static const char *op_name_or(fz_op op) {
  const char *name = fz_op_name(op);
  return name != NULL ? name : "?";
}

static bool validate_ref(const fz_ref *r, uint32_t k, fz_op op, const char *what, bool in_list,
                         char *err, size_t cap) {
  const char *name = op_name_or(op);
  if (r->kind == FZ_REF_LITERAL) {
    if (r->call != 0 || r->element != 0 || r->span != 0) {
      return fail(err, cap, "v%u (%s): %s: a literal with call/element/span set", k + 1u, name,
                  what);
    }
    return true;
  }
  if (r->kind != FZ_REF_RESULT) {
    return fail(err, cap, "v%u (%s): %s: unknown reference kind %d", k + 1u, name, what,
                (int)r->kind);
  }
  if (r->literal != 0) {
    return fail(err, cap, "v%u (%s): %s: a result reference with a literal set", k + 1u, name,
                what);
  }
  if (r->call >= k) {
    return fail(err, cap, "v%u (%s): %s names v%u, not an earlier call", k + 1u, name, what,
                (unsigned)r->call + 1u);
  }
  if (r->element != FZ_ELEMENT_SELF && r->element >= FZ_MAX_ELEMENTS) {
    return fail(err, cap, "v%u (%s): %s: element %u out of range (0..%u)", k + 1u, name, what,
                (unsigned)r->element, FZ_MAX_ELEMENTS - 1u);
  }
  if (r->span != 0) {
    if (!in_list) {
      return fail(err, cap, "v%u (%s): %s: a range outside a list", k + 1u, name, what);
    }
    if (r->element == FZ_ELEMENT_SELF) {
      return fail(err, cap, "v%u (%s): %s: a range of v%u itself, not of its elements", k + 1u,
                  name, what, (unsigned)r->call + 1u);
    }
    if ((uint32_t)r->element + r->span >= FZ_MAX_ELEMENTS) {
      return fail(err, cap, "v%u (%s): %s: range a%u..a%u ends past element %u", k + 1u, name,
                  what, (unsigned)r->element, (unsigned)r->element + r->span,
                  FZ_MAX_ELEMENTS - 1u);
    }
  }
  return true;
}

static bool validate_call(const fz_call *call, uint32_t k, char *err, size_t cap) {
  if ((unsigned)call->op >= FZ_OP_COUNT) {
    return fail(err, cap, "v%u: op %u out of range", k + 1u, (unsigned)call->op);
  }
  const char *name = op_name_or(call->op);
  uint32_t fields = fz_op_fields(call->op);
  if (call->hostile & ~(uint32_t)FZ_HOSTILE_ALL) {
    return fail(err, cap, "v%u (%s): unknown hostile bits 0x%x", k + 1u, name, call->hostile);
  }
  const struct {
    uint32_t field;
    const fz_ref *ref;
    const char *what;
  } refs[] = {
      {FZ_FIELD_DEVICE, &call->device, "device"},
      {FZ_FIELD_RESOURCE, &call->resource, "resource"},
      {FZ_FIELD_FENCE, &call->fence, "fence"},
      {FZ_FIELD_ALLOCATION, &call->allocation, "allocation"},
  };
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
    if (fields & refs[i].field) {
      if (!validate_ref(refs[i].ref, k, call->op, refs[i].what, false, err, cap)) {
        return false;
      }
    } else if (!zero_ref(refs[i].ref)) {
      return fail(err, cap, "v%u (%s): unused %s argument set", k + 1u, name, refs[i].what);
    }
  }
  if (fields & FZ_FIELD_COUNT) {
    if (call->count > FZ_MAX_ELEMENTS && call->count != FZ_COUNT_OVER_MAXIMUM) {
      return fail(err, cap, "v%u (%s): count %u out of range (0..%u or over_max)", k + 1u, name,
                  call->count, FZ_MAX_ELEMENTS);
    }
  } else if (call->count != 0) {
    return fail(err, cap, "v%u (%s): unused count set", k + 1u, name);
  }
  if (!(fields & FZ_FIELD_SIZE) && call->size != 0) {
    return fail(err, cap, "v%u (%s): unused size set", k + 1u, name);
  }
  if ((fields & FZ_FIELD_PLACEMENT) ? (unsigned)call->placement > FZ_PLACEMENT_APERTURE_ONLY
                                    : call->placement != FZ_PLACEMENT_ANY) {
    return fail(err, cap, "v%u (%s): placement %u not allowed", k + 1u, name,
                (unsigned)call->placement);
  }
  if (!(fields & FZ_FIELD_ALIGN) && call->align != 0) {
    return fail(err, cap, "v%u (%s): unused align set", k + 1u, name);
  }
  if (!(fields & FZ_FIELD_INFO) && call->info) {
    return fail(err, cap, "v%u (%s): unused info set", k + 1u, name);
  }
  if (!(fields & FZ_FIELD_SHARED) && call->shared) {
    return fail(err, cap, "v%u (%s): unused shared set", k + 1u, name);
  }
  if ((fields & FZ_FIELD_FLAGS) ? call->flags > 0xFFu : call->flags != 0) {
    return fail(err, cap, "v%u (%s): flags 0x%x not allowed", k + 1u, name, call->flags);
  }
  if ((fields & FZ_FIELD_COMMAND) ? (unsigned)call->command > FZ_COMMAND_COPY
                                  : call->command != FZ_COMMAND_NOP) {
    return fail(err, cap, "v%u (%s): command %u not allowed", k + 1u, name,
                (unsigned)call->command);
  }
  if (fields & FZ_FIELD_LIST) {
    if (call->list_length > FZ_MAX_LIST) {
      return fail(err, cap, "v%u (%s): list of %u entries (at most %u)", k + 1u, name,
                  call->list_length, FZ_MAX_LIST);
    }
    for (uint32_t i = 0; i < call->list_length; i++) {
      char what[32];
      snprintf(what, sizeof what, "list[%u]", i);
      if (!validate_ref(&call->list[i], k, call->op, what, true, err, cap)) {
        return false;
      }
    }
  } else if (call->list_length != 0) {
    return fail(err, cap, "v%u (%s): unused list set", k + 1u, name);
  }
  if (!(fields & FZ_FIELD_DAMAGE) && call->damage != 0) {
    return fail(err, cap, "v%u (%s): unused damage kind set", k + 1u, name);
  }
  if (!(fields & FZ_FIELD_PICK) && call->pick != 0) {
    return fail(err, cap, "v%u (%s): unused pick set", k + 1u, name);
  }
  return true;
}

bool fz_program_validate(const fz_program *p, char *err, size_t cap) {
  if (p->call_count > FZ_MAX_CALLS) {
    return fail(err, cap, "%u calls (at most %u)", p->call_count, FZ_MAX_CALLS);
  }
  if (p->fault_count > sizeof p->faults / sizeof p->faults[0]) {
    return fail(err, cap, "%u faults (at most %zu)", p->fault_count,
                sizeof p->faults / sizeof p->faults[0]);
  }
  for (uint32_t k = 0; k < p->call_count; k++) {
    if (!validate_call(&p->calls[k], k, err, cap)) {
      return false;
    }
  }
  if (err != NULL && cap > 0) {
    err[0] = '\0';
  }
  return true;
}

static bool ref_equal(const fz_ref *a, const fz_ref *b) {
  return a->kind == b->kind && a->call == b->call && a->element == b->element &&
         a->literal == b->literal && a->span == b->span;
}

static bool call_equal(const fz_call *a, const fz_call *b) {
  if (a->op != b->op || a->hostile != b->hostile || !ref_equal(&a->device, &b->device) ||
      !ref_equal(&a->resource, &b->resource) || !ref_equal(&a->fence, &b->fence) ||
      !ref_equal(&a->allocation, &b->allocation) || a->count != b->count || a->size != b->size ||
      a->placement != b->placement || a->align != b->align || a->shared != b->shared || a->info != b->info || a->flags != b->flags ||
      a->command != b->command || a->list_length != b->list_length || a->damage != b->damage ||
      a->pick != b->pick) {
    return false;
  }
  uint32_t n = a->list_length < FZ_MAX_LIST ? a->list_length : FZ_MAX_LIST;
  for (uint32_t i = 0; i < n; i++) {
    if (!ref_equal(&a->list[i], &b->list[i])) {
      return false;
    }
  }
  return true;
}

bool fz_program_equal(const fz_program *a, const fz_program *b) {
  if (a->call_count != b->call_count || a->fault_count != b->fault_count ||
      a->threaded_engine != b->threaded_engine || a->adapter_teardown != b->adapter_teardown) {
    return false;
  }
  uint32_t nf = a->fault_count < 4u ? a->fault_count : 4u;
  for (uint32_t i = 0; i < nf; i++) {
    if (a->faults[i].point != b->faults[i].point || a->faults[i].nth != b->faults[i].nth ||
        a->faults[i].repeat != b->faults[i].repeat) {
      return false;
    }
  }
  uint32_t nc = a->call_count < FZ_MAX_CALLS ? a->call_count : FZ_MAX_CALLS;
  for (uint32_t k = 0; k < nc; k++) {
    if (!call_equal(&a->calls[k], &b->calls[k])) {
      return false;
    }
  }
  return true;
}
