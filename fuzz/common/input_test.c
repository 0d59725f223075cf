/*
 * input_test.c — the binary input format: data provider, round trips, robustness on random and
 * truncated bytes, version handling, validation.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/damage.h"
#include "alloclab/fuzz/input.h"
#include "alloclab/hw/sim_miniport.h"
#include "fuzz/common/test_util.h"
#include "fuzz/common/text.h"
#include "fuzz/common/track.h"

static fz_program p, q;
static uint8_t buf[FZ_ENCODE_MAX_SIZE + 64];
static uint8_t buf2[FZ_ENCODE_MAX_SIZE + 64];

static void test_cursor(void) {
  static const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09};
  fz_cursor c;
  fz_cursor_init(&c, data, sizeof data);
  CHECK(fz_consume_u8(&c) == 0x01, "u8");
  CHECK(fz_consume_u16(&c) == 0x0302, "u16 little-endian");
  CHECK(fz_consume_u32(&c) == 0x07060504u, "u32 little-endian");
  CHECK(fz_cursor_remaining(&c) == 2, "remaining");
  CHECK(fz_consume_u32(&c) == 0x0908u, "u32 across the end: zeros past it");
  CHECK(fz_consume_u64(&c) == 0, "past the end: zero");
  CHECK(!fz_consume_bool(&c), "past the end: false");
  CHECK(fz_cursor_remaining(&c) == 0, "remaining at the end");

  fz_cursor_init(&c, NULL, 5);
  CHECK(fz_cursor_remaining(&c) == 0 && fz_consume_u32(&c) == 0, "NULL data reads as empty");

  static const uint8_t e[] = {7, 200, 0x34, 0x12, 0xFF};
  fz_cursor_init(&c, e, sizeof e);
  CHECK(fz_consume_enum(&c, 3) == 1, "enum: 7 %% 3");
  CHECK(fz_consume_enum(&c, 1) == 0 && fz_cursor_remaining(&c) == 4, "enum(1) reads nothing");
  CHECK(fz_consume_enum(&c, 256) == 200, "enum(256) is one byte");
  CHECK(fz_consume_enum(&c, 1000) == 0x1234 % 1000, "enum(1000) is two bytes");
  CHECK(fz_consume_bool(&c), "bool: low bit");

  static const uint8_t v[] = {0x96, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x05, 0x80};
  fz_cursor_init(&c, v, sizeof v);
  CHECK(fz_consume_varint32(&c) == 150, "varint 150");
  CHECK(fz_consume_varint32(&c) == UINT32_MAX, "varint of 5 bytes, truncated to 32 bits");
  CHECK(fz_consume_varint32(&c) == 5, "varint after a 5-byte one");
  CHECK(fz_consume_varint32(&c) == 0, "varint cut by the end");

  uint8_t out[6];
  fz_cursor_init(&c, data, 3);
  CHECK(fz_consume_bytes(&c, out, sizeof out) == 3, "bytes: 3 available");
  CHECK(out[0] == 1 && out[2] == 3 && out[3] == 0 && out[5] == 0, "bytes: zero-filled");
}

/* A hand-made input checks the documented layout. */
static void test_layout(void) {
  static const uint8_t in[] = {
      'A', 'L', 'F', 'Z', FZ_FORMAT_VERSION, /* header */
      0x00,                  /* no faults */
      0x00,                  /* v1 = create_device() */
      0x03, 0x00, 0x03, 0x0F, 0x06, /* v2 = create_resource(PREF 0 -> v1, n=4, 16 pages,
                                       placement 2, shared) */
      0x05, 0x00, 0x00,      /* v3 = open_resource(resource PREF -> v2, dev PREF -> v1) */
      0x08, 0x00, 0x01, 0x01, 0x00, 0x00, /* v4 = submit(dev v1, fill, 2 entries: v2.a0 v2.a1) */
      0xFB, 0x01, 0xE2,      /* v5 = query(0xdead0001) hostile=null_args */
      0x01, 0xC0, 0x03, 0xFF, /* v6 = destroy_device(explicit: back 3 -> v2, SELF) */
  };
  CHECK(fz_decode(in, sizeof in, &p), "decode");
  CHECK(p.call_count == 6, "6 calls, got %u", p.call_count);
  const fz_call *c = p.calls;
  CHECK(c[0].op == FZ_OP_CREATE_DEVICE, "v1 op");
  CHECK(c[1].op == FZ_OP_CREATE_RESOURCE && c[1].device.kind == FZ_REF_RESULT &&
            c[1].device.call == 0 && c[1].device.element == FZ_ELEMENT_SELF && c[1].count == 4 &&
            c[1].size == 65536 && c[1].placement == FZ_PLACEMENT_APERTURE_ONLY && c[1].shared,
        "v2: %s", fz_test_text(&p));
  CHECK(c[2].op == FZ_OP_OPEN_RESOURCE && c[2].resource.call == 1 && c[2].device.call == 0,
        "v3");
  CHECK(c[3].op == FZ_OP_SUBMIT && c[3].command == FZ_COMMAND_FILL && c[3].list_length == 2 &&
            c[3].list[0].call == 1 && c[3].list[0].element == 0 && c[3].list[1].call == 1 &&
            c[3].list[1].element == 1,
        "v4: PREFERRED 0 twice lists distinct allocations: %s", fz_test_text(&p));
  CHECK(c[4].op == FZ_OP_QUERY && c[4].hostile == FZ_HOSTILE_NULL_ARGS &&
            c[4].allocation.kind == FZ_REF_LITERAL && c[4].allocation.literal == 0xDEAD0001u,
        "v5");
  CHECK(c[5].op == FZ_OP_DESTROY_DEVICE && c[5].device.kind == FZ_REF_RESULT &&
            c[5].device.call == 1 && c[5].device.element == FZ_ELEMENT_SELF,
        "v6: explicit wrong-type reference");
  size_t n = fz_encode(&p, buf, sizeof buf);
  CHECK(n == sizeof in && memcmp(buf, in, n) == 0, "the encoder writes the documented bytes");
  /* The same body under a version-2 header is the same program (no copy in it). */
  static uint8_t v2[sizeof in];
  memcpy(v2, in, sizeof in);
  v2[4] = 2;
  CHECK(fz_decode(v2, sizeof v2, &q) && fz_program_equal(&p, &q), "version 2 reads the layout alike:\n%s",
        fz_test_text(&q));
}

static void check_roundtrip(const fz_program *prog, const char *what);

/* Whether @bytes start with the header the encoder writes: "ALFZ" and the current version. */
static bool current_header(const uint8_t *bytes) {
  return memcmp(bytes, FZ_FORMAT_MAGIC, FZ_FORMAT_MAGIC_SIZE) == 0 && bytes[4] == FZ_FORMAT_VERSION;
}

/* Version 3 adds align on the creates: bit 7 of shape, then the align byte. */
static void test_layout_v3_align(void) {
  static const uint8_t in[] = {
      'A', 'L', 'F', 'Z', 3, 0x00,
      0x00,                               /* v1 = create_device() */
      0x02, 0x00, 0x00, 0x00, 0x80, 0x10, /* v2 = create_allocations(v1, 1, 4 KiB, any, align 1 << 16) */
      0x03, 0x00, 0x00, 0x00, 0x84, 0xFF, 0x01, 0x30, 0x00, 0x00, /* v3 = create_resource(.., shared,
                                                                     align u32 0x3001) */
      0x04, 0x00, 0x00, 0x00, 0x00, 0x81, 0x21, /* v4 = add_to_resource(v1, v3, .., memory_only, align 33) */
      0x02, 0x00, 0x00, 0x00, 0x7A,       /* v5 = create_allocations(.., bits 3..6 ignored, no align) */
  };
  CHECK(fz_decode(in, sizeof in, &p), "decode version 3");
  const char *want =
      "v1 = create_device()\n"
      "v2 = create_allocations(dev=v1, n=1, size=4096, placement=any, align=65536)\n"
      "v3 = create_resource(dev=v1, n=1, size=4096, placement=any, shared=1, align=12289)\n"
      "v4 = add_to_resource(dev=v1, resource=v3, n=1, size=4096, placement=memory_only, align=33)\n"
      "v5 = create_allocations(dev=v1, n=1, size=4096, placement=aperture_only)\n";
  CHECK(strcmp(fz_test_text(&p), want) == 0, "version 3:\n%s", fz_test_text(&p));
  size_t n = fz_encode(&p, buf, sizeof buf);
  CHECK(n == sizeof in && current_header(buf) && memcmp(buf + 5, in + 5, n - 6u) == 0 && buf[n - 1u] == 0x02,
        "the encoder writes the documented align forms (shape without the ignored bits)");
  check_roundtrip(&p, "align");
  /* Version 2 ignores bit 7 of shape and reads no align: the byte after it starts a call. */
  static uint8_t v2[sizeof in];
  memcpy(v2, in, sizeof in);
  v2[4] = 2;
  CHECK(fz_decode(v2, sizeof v2, &q), "decode version 2");
  CHECK(q.calls[1].op == FZ_OP_CREATE_ALLOCATIONS && q.calls[1].align == 0 && q.calls[2].op == FZ_OP_CREATE_DEVICE,
        "version 2 reads no align:\n%s", fz_test_text(&q));
  /* Validation: align only on the creates. */
  char why[256];
  p.calls[0].align = 4096;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "v1 (create_device): unused align set"),
        "align on create_device: %s", why);
}

/* Version 3 adds info on create_device: bit 4 of the opcode byte, or bit 7 of the hostile byte. */
static void test_layout_v3_info(void) {
  static const uint8_t in[] = {
      'A', 'L', 'F', 'Z', 3, 0x00,
      0x10,       /* v1 = create_device(info=1) */
      0xF0, 0x81, /* v2 = create_device(info=1, hostile=null_args) */
      0xF0, 0x01, /* v3 = create_device(hostile=null_args) */
      0x00,       /* v4 = create_device() */
  };
  CHECK(fz_decode(in, sizeof in, &p), "decode version 3");
  const char *want =
      "v1 = create_device(info=1)\n"
      "v2 = create_device(info=1, hostile=null_args)\n"
      "v3 = create_device(hostile=null_args)\n"
      "v4 = create_device()\n";
  CHECK(strcmp(fz_test_text(&p), want) == 0, "version 3:\n%s", fz_test_text(&p));
  size_t n = fz_encode(&p, buf, sizeof buf);
  CHECK(n == sizeof in && current_header(buf) && memcmp(buf + 5, in + 5, n - 5u) == 0,
        "the encoder writes the documented info bits");
  check_roundtrip(&p, "info");
  static uint8_t v2[sizeof in];
  memcpy(v2, in, sizeof in);
  v2[4] = 2;
  CHECK(fz_decode(v2, sizeof v2, &q) && q.call_count == 4 && !q.calls[0].info && !q.calls[1].info &&
            q.calls[1].hostile == FZ_HOSTILE_NULL_ARGS,
        "version 2 ignores both bits:\n%s", fz_test_text(&q));
  char why[256];
  p.calls[0].op = FZ_OP_GPU_RUN;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "v1 (gpu_run): unused info set"),
        "info on gpu_run: %s", why);
}

/* Version 3 adds the engine choice: bit 5 of the faults byte, with or without faults;
 * versions 1 and 2 ignore it. */
static void test_layout_v3_threaded_engine(void) {
  static const uint8_t in[] = {
      'A', 'L', 'F', 'Z', FZ_FORMAT_VERSION, 0x20, /* threaded engine, no faults */
      0x00,                        /* v1 = create_device() */
  };
  CHECK(fz_decode(in, sizeof in, &p) && p.threaded_engine && p.fault_count == 0 && p.call_count == 1,
        "decode version 3:\n%s", fz_test_text(&p));
  CHECK(strcmp(fz_test_text(&p), "options(engine=threaded)\nv1 = create_device()\n") == 0, "text:\n%s",
        fz_test_text(&p));
  size_t n = fz_encode(&p, buf, sizeof buf);
  CHECK(n == sizeof in && memcmp(buf, in, n) == 0, "the encoder writes the documented engine bit");
  check_roundtrip(&p, "threaded engine");

  static const uint8_t with_fault[] = {'A', 'L', 'F', 'Z', FZ_FORMAT_VERSION, 0xE0, 0x05, 0x02, 0x01, 0x00};
  CHECK(fz_decode(with_fault, sizeof with_fault, &q) && q.threaded_engine && q.fault_count == 1 &&
            q.faults[0].point == 5 && q.faults[0].nth == 2 && q.faults[0].repeat == 1 && q.call_count == 1,
        "the bit with a fault:\n%s", fz_test_text(&q));
  n = fz_encode(&q, buf, sizeof buf);
  CHECK(n == sizeof with_fault && memcmp(buf, with_fault, n) == 0, "the encoder keeps the bit beside faults");
  CHECK(!fz_program_equal(&p, &q), "programs that differ in the engine only... differ");
  q = p;
  q.threaded_engine = false;
  CHECK(!fz_program_equal(&p, &q), "fz_program_equal compares the engine");

  static uint8_t old[sizeof in];
  memcpy(old, in, sizeof in);
  for (uint8_t version = 1; version <= 2; version++) {
    old[4] = version;
    CHECK(fz_decode(old, sizeof old, &q) && !q.threaded_engine && q.call_count == 1,
          "version %u ignores the bit:\n%s", version, fz_test_text(&q));
  }
  /* A raw (headerless) input is a version-3 body. */
  CHECK(fz_decode(in + FZ_FORMAT_HEADER_SIZE, sizeof in - FZ_FORMAT_HEADER_SIZE, &q) && q.threaded_engine,
        "a raw body reads the bit");
  /* decode clears a previous program's choice. */
  static const uint8_t plain[] = {'A', 'L', 'F', 'Z', FZ_FORMAT_VERSION, 0x00, 0x00};
  p.threaded_engine = true;
  CHECK(fz_decode(plain, sizeof plain, &p) && !p.threaded_engine, "decode leaves no stale engine choice");
}

/* Bit 4 of the faults byte: the live devices left to al_adapter_destroy (version 3 on), beside
 * the engine bit and faults; versions 1 and 2 ignore it. */
static void test_layout_v3_adapter_teardown(void) {
  static const uint8_t in[] = {
      'A', 'L', 'F', 'Z', FZ_FORMAT_VERSION, 0x10, /* adapter teardown, no faults */
      0x00,                        /* v1 = create_device() */
  };
  CHECK(fz_decode(in, sizeof in, &p) && p.adapter_teardown && !p.threaded_engine && p.fault_count == 0 &&
            p.call_count == 1,
        "decode version 3:\n%s", fz_test_text(&p));
  CHECK(strcmp(fz_test_text(&p), "options(teardown=adapter)\nv1 = create_device()\n") == 0, "text:\n%s",
        fz_test_text(&p));
  size_t n = fz_encode(&p, buf, sizeof buf);
  CHECK(n == sizeof in && memcmp(buf, in, n) == 0, "the encoder writes the documented teardown bit");
  check_roundtrip(&p, "adapter teardown");

  static const uint8_t all[] = {'A', 'L', 'F', 'Z', FZ_FORMAT_VERSION, 0xF0, 0x05, 0x02, 0x01, 0x00};
  CHECK(fz_decode(all, sizeof all, &q) && q.adapter_teardown && q.threaded_engine && q.fault_count == 1 &&
            q.faults[0].point == 5 && q.call_count == 1,
        "both bits with a fault:\n%s", fz_test_text(&q));
  n = fz_encode(&q, buf, sizeof buf);
  CHECK(n == sizeof all && memcmp(buf, all, n) == 0, "the encoder keeps both bits beside faults");
  q = p;
  q.adapter_teardown = false;
  CHECK(!fz_program_equal(&p, &q), "fz_program_equal compares the teardown");

  static uint8_t old[sizeof in];
  memcpy(old, in, sizeof in);
  for (uint8_t version = 1; version <= 2; version++) {
    old[4] = version;
    CHECK(fz_decode(old, sizeof old, &q) && !q.adapter_teardown && q.call_count == 1,
          "version %u ignores the bit:\n%s", version, fz_test_text(&q));
  }
  static const uint8_t plain[] = {'A', 'L', 'F', 'Z', FZ_FORMAT_VERSION, 0x00, 0x00};
  p.adapter_teardown = true;
  CHECK(fz_decode(plain, sizeof plain, &p) && !p.adapter_teardown, "decode leaves no stale teardown choice");
}

/* Version 3 adds the copy command (command := u8 % 4); version 2 keeps reading u8 % 3. */
static void test_layout_v3_copy(void) {
  static const uint8_t in[] = {
      'A', 'L', 'F', 'Z', 3, 0x00,
      0x00,                         /* v1 = create_device() */
      0x02, 0x00, 0x01, 0x00, 0x00, /* v2 = create_allocations(v1, n=2, 4 KiB, any) */
      0x08, 0x00, 0x03, 0x01, 0x00, 0x00, /* v3 = submit(v1, command 3, 2 entries) */
      0x08, 0x00, 0x07, 0x00, 0x00, /* v4 = submit(v1, command 7, 1 entry) */
  };
  CHECK(fz_decode(in, sizeof in, &p), "decode version 3");
  const char *want_v3 =
      "v1 = create_device()\n"
      "v2 = create_allocations(dev=v1, n=2, size=4096, placement=any)\n"
      "v3 = submit(dev=v1, list=[v2.a0, v2.a1], command=copy)\n"
      "v4 = submit(dev=v1, list=[v2.a0], command=copy)\n";
  CHECK(strcmp(fz_test_text(&p), want_v3) == 0, "version 3:\n%s", fz_test_text(&p));
  size_t n = fz_encode(&p, buf, sizeof buf);
  CHECK(n == sizeof in && memcmp(buf, in, 4) == 0 && buf[4] == FZ_FORMAT_VERSION && memcmp(buf + 5, in + 5, 15) == 0 &&
            buf[20] == 0x03 && memcmp(buf + 21, in + 21, 2) == 0,
        "the encoder writes copy as 3 (7 %% 4 == 3 decodes alike), under the current version");
  check_roundtrip(&p, "copy");
  /* Under a version-2 header the same bytes mean what they meant before: 3 % 3 = nop, 7 % 3 =
   * fill; old corpus files and crash files keep their programs. */
  static uint8_t v2[sizeof in];
  memcpy(v2, in, sizeof in);
  v2[4] = 2;
  CHECK(fz_decode(v2, sizeof v2, &q), "decode version 2");
  CHECK(q.call_count == 4 && q.calls[2].command == FZ_COMMAND_NOP && q.calls[3].command == FZ_COMMAND_FILL,
        "version 2 reads commands modulo 3:\n%s", fz_test_text(&q));
  /* A headerless body is read as the current version (the same program: no opcode above 11). */
  CHECK(fz_decode(in + FZ_FORMAT_HEADER_SIZE, sizeof in - FZ_FORMAT_HEADER_SIZE, &q) && fz_program_equal(&p, &q),
        "a headerless body reads as the current version:\n%s", fz_test_text(&q));
  /* Re-encoding the version-2 program writes the current version with the same meaning. */
  static fz_program r;
  CHECK(fz_decode(v2, sizeof v2, &q), "decode version 2 again");
  n = fz_encode(&q, buf, sizeof buf);
  CHECK(n > 5 && buf[4] == FZ_FORMAT_VERSION && fz_decode(buf, n, &r) && fz_program_equal(&q, &r),
        "a version-2 program re-encoded as the current version");
}

/* Version 4 adds the damage op (opcode 12, then kind and pick bytes); under a version-3 header
 * (and 2, 1) opcode 12 is op 12 % 12 = create_device, as it always was. */
static void test_layout_v4_damage(void) {
  static const uint8_t in[] = {
      'A', 'L', 'F', 'Z', 4, 0x00,
      0x00,             /* v1 = create_device() */
      0x0C, 0x00, 0x02, /* v2 = damage(kind=port kind 0, pick=2) */
      0x0C, 0x80, 0x00, /* v3 = damage(kind=sim kind 0, pick=0) */
      0x0C, 0x7F, 0x05, /* v4 = damage(kind=0x7f: no such port kind, pick=5) */
      0x0D,             /* v5 = op 13 % 13 = create_device() */
  };
  CHECK(fz_decode(in, sizeof in, &p) && p.call_count == 5, "decode version 4: %u calls", p.call_count);
  CHECK(p.calls[1].op == FZ_OP_DAMAGE && p.calls[1].damage == 0x00 && p.calls[1].pick == 2 &&
            p.calls[2].op == FZ_OP_DAMAGE && p.calls[2].damage == FZ_DAMAGE_SIM && p.calls[2].pick == 0 &&
            p.calls[3].op == FZ_OP_DAMAGE && p.calls[3].damage == 0x7F && p.calls[3].pick == 5 &&
            p.calls[4].op == FZ_OP_CREATE_DEVICE,
        "the damage fields:\n%s", fz_test_text(&p));
  /* The text names the kinds by their layer's tables; a byte no layer has prints as a number. */
  char line[256];
  fz_format_call(line, sizeof line, &p, 1);
  char want[256];
  snprintf(want, sizeof want, "v2 = damage(kind=%s, pick=2)", al_testing_damage_kind(0)->name);
  CHECK(strcmp(line, want) == 0, "port kind 0: %s (want %s)", line, want);
  fz_format_call(line, sizeof line, &p, 2);
  snprintf(want, sizeof want, "v3 = damage(kind=%s, pick=0)", sim_testing_damage_kind(0)->name);
  CHECK(strcmp(line, want) == 0, "sim kind 0: %s (want %s)", line, want);
  fz_format_call(line, sizeof line, &p, 3);
  CHECK(strcmp(line, "v4 = damage(kind=0x7f, pick=5)") == 0, "an unknown kind: %s", line);
  size_t n = fz_encode(&p, buf, sizeof buf);
  CHECK(n == sizeof in && memcmp(buf, in, sizeof in - 1) == 0 && buf[sizeof in - 1] == 0x00,
        "the encoder writes the same bytes (op 13 as 0)");
  check_roundtrip(&p, "damage");
  /* The same bytes under a version-3 header: opcode 12 and 13 are create_device and destroy_device. */
  static uint8_t v3[sizeof in];
  memcpy(v3, in, sizeof in);
  v3[4] = 3;
  CHECK(fz_decode(v3, sizeof v3, &q) && q.calls[1].op == FZ_OP_CREATE_DEVICE && q.calls[1].damage == 0,
        "version 3 reads opcode 12 as create_device:\n%s", fz_test_text(&q));
  for (uint32_t k = 0; k < q.call_count; k++)
    CHECK(q.calls[k].op != FZ_OP_DAMAGE, "version 3 has no damage op (call %u)", k + 1);
}

static void check_roundtrip(const fz_program *prog, const char *what) {
  char why[256];
  CHECK(fz_program_validate(prog, why, sizeof why), "%s: invalid: %s", what, why);
  memset(buf, 0xA5, sizeof buf);
  size_t n = fz_encode(prog, buf, FZ_ENCODE_MAX_SIZE);
  CHECK(n >= FZ_FORMAT_HEADER_SIZE && n <= FZ_ENCODE_MAX_SIZE, "%s: encode size %zu", what, n);
  CHECK(buf[FZ_ENCODE_MAX_SIZE] == 0xA5, "%s: wrote past cap", what);
  CHECK(current_header(buf), "%s: header", what);
  CHECK(fz_decode(buf, n, &q), "%s: decode refused", what);
  if (!fz_program_equal(prog, &q)) {
    char a[64 * 1024];
    snprintf(a, sizeof a, "%s", fz_test_text(prog));
    CHECK(false, "%s: decode(encode(p)) != p\n--- p:\n%s--- decoded:\n%s", what, a,
          fz_test_text(&q));
  }
  /* A short buffer: same size reported, nothing written past the cap. */
  size_t cap = n / 2;
  memset(buf2, 0x5A, sizeof buf2);
  CHECK(fz_encode(prog, buf2, cap) == n, "%s: needed size with a short buffer", what);
  CHECK(buf2[cap] == 0x5A, "%s: wrote past a short cap", what);
  CHECK(memcmp(buf2, buf, cap) == 0, "%s: prefix differs with a short buffer", what);
  CHECK(fz_encode(prog, NULL, 0) == n, "%s: size query with NULL", what);
}

static void test_roundtrip_random(void) {
  uint64_t rng = fz_test_seed();
  for (int i = 0; i < 3000 && fz_test_failures == 0; i++) {
    fz_test_random_program(&rng, &p);
    char what[64];
    snprintf(what, sizeof what, "random program %d", i);
    check_roundtrip(&p, what);
  }
  fz_program empty;
  memset(&empty, 0, sizeof empty);
  check_roundtrip(&empty, "the empty program");
}

/* Every decoded program is valid and its references name earlier calls or are literals. */
static void check_decoded(const uint8_t *data, size_t size, const char *what) {
  char why[256];
  bool ok = fz_decode(data, size, &p);
  bool versioned = size >= 5 && memcmp(data, "ALFZ", 4) == 0 && (data[4] < 1 || data[4] > FZ_FORMAT_VERSION);
  CHECK(ok == !versioned, "%s: decode returned %d", what, ok);
  CHECK(fz_program_validate(&p, why, sizeof why), "%s: invalid program: %s", what, why);
  if (ok) {
    check_roundtrip(&p, what);
  }
}

static void test_decode_random_bytes(void) {
  uint64_t rng = fz_test_seed() ^ 0x1234u;
  static uint8_t data[4096];
  for (int i = 0; i < 4000 && fz_test_failures == 0; i++) {
    size_t size = fz_test_below(&rng, 8) == 0 ? fz_test_below(&rng, sizeof data)
                                              : fz_test_below(&rng, 400);
    for (size_t j = 0; j < size; j++) {
      data[j] = (uint8_t)fz_test_next(&rng);
    }
    if (size >= 5 && fz_test_below(&rng, 2)) {
      memcpy(data, "ALFZ", 4);
      data[4] = fz_test_below(&rng, 8) == 0 ? (uint8_t)fz_test_next(&rng)
                                            : (uint8_t)(1u + fz_test_below(&rng, 2));
    }
    char what[64];
    snprintf(what, sizeof what, "random bytes %d (%zu bytes)", i, size);
    check_decoded(data, size, what);
  }
  /* Uniform bytes. */
  for (int b = 0; b < 256; b++) {
    memset(data, b, 600);
    char what[64];
    snprintf(what, sizeof what, "600 bytes of 0x%02x", b);
    check_decoded(data, 600, what);
  }
}

static void test_truncations(void) {
  uint64_t rng = fz_test_seed() ^ 0x5678u;
  static uint8_t enc[FZ_ENCODE_MAX_SIZE];
  for (int i = 0; i < 150 && fz_test_failures == 0; i++) {
    fz_program prog;
    fz_test_random_program(&rng, &prog);
    size_t n = fz_encode(&prog, enc, sizeof enc);
    for (size_t cut = 0; cut <= n && fz_test_failures == 0; cut++) {
      /* An exact-size copy, so ASan would see a read past the end. */
      uint8_t *exact = malloc(cut > 0 ? cut : 1u);
      memcpy(exact, enc, cut);
      char what[64];
      snprintf(what, sizeof what, "program %d cut to %zu of %zu bytes", i, cut, n);
      check_decoded(exact, cut, what);
      if (cut == n) {
        CHECK(fz_program_equal(&p, &prog), "%s: the whole input is the program", what);
      }
      free(exact);
    }
  }
}

static void test_versions(void) {
  static const uint8_t v5[] = {'A', 'L', 'F', 'Z', 5, 0x00, 0x00};
  memset(&p, 0xFF, sizeof p);
  CHECK(!fz_decode(v5, sizeof v5, &p), "version 5 is refused");
  CHECK(p.call_count == 0 && p.fault_count == 0, "a refused input gives the empty program");
  static const uint8_t v0[] = {'A', 'L', 'F', 'Z', 0};
  CHECK(!fz_decode(v0, sizeof v0, &p), "version 0 is refused");
  static const uint8_t v1[] = {'A', 'L', 'F', 'Z', 1};
  CHECK(fz_decode(v1, sizeof v1, &p) && p.call_count == 0, "version 1, nothing else: empty");
  static const uint8_t v2[] = {'A', 'L', 'F', 'Z', 2, 0x00, 0x00};
  CHECK(fz_decode(v2, sizeof v2, &p) && p.call_count == 1, "version 2 is read");
  static const uint8_t v3[] = {'A', 'L', 'F', 'Z', 3, 0x00, 0x00};
  CHECK(fz_decode(v3, sizeof v3, &p) && p.call_count == 1, "version 3 is read");
  static const uint8_t v4[] = {'A', 'L', 'F', 'Z', 4, 0x00, 0x00};
  CHECK(fz_decode(v4, sizeof v4, &p) && p.call_count == 1, "version 4 is read");
  static const uint8_t magic_only[] = {'A', 'L', 'F', 'Z'};
  CHECK(fz_decode(magic_only, sizeof magic_only, &p), "4 bytes are no header: a body");
  /* 'A' is the faults byte, 'L' (0x4C) opcode 12: a damage op whose kind and pick are 'F', 'Z'. */
  CHECK(p.call_count == 1 && p.calls[0].op == FZ_OP_DAMAGE && p.calls[0].damage == 'F' && p.calls[0].pick == 'Z',
        "'ALFZ' as a body: faults byte, then 1 damage call (got %u calls):\n%s", p.call_count, fz_test_text(&p));
  static const uint8_t headerless[] = {0x00, 0x00, 0x00};
  CHECK(fz_decode(headerless, sizeof headerless, &p) && p.call_count == 2 &&
            p.calls[0].op == FZ_OP_CREATE_DEVICE,
        "a headerless body decodes");
  CHECK(fz_decode(NULL, 0, &p) && p.call_count == 0, "no bytes: the empty program");
}

static void test_validate(void) {
  char why[256];
  fz_program base;
  memset(&base, 0, sizeof base);
  base.call_count = 2;
  base.calls[0].op = FZ_OP_CREATE_DEVICE;
  base.calls[1].op = FZ_OP_DESTROY_DEVICE;
  base.calls[1].device.element = FZ_ELEMENT_SELF;
  CHECK(fz_program_validate(&base, why, sizeof why), "base: %s", why);

  p = base;
  p.calls[1].device.call = 1;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "not an earlier call"),
        "self reference: %s", why);
  p = base;
  p.calls[1].device.element = 1024;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "element 1024"),
        "element out of range: %s", why);
  p = base;
  p.calls[0].count = 1;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "unused count"),
        "an unused field: %s", why);
  p = base;
  p.calls[1].op = FZ_OP_GPU_RUN;
  p.calls[1].device.element = 0;
  p.calls[1].count = 33;
  CHECK(fz_program_validate(&p, why, sizeof why), "count 33 (above a list's 32): %s", why);
  p.calls[1].count = FZ_COUNT_OVER_MAXIMUM;
  CHECK(fz_program_validate(&p, why, sizeof why), "over_max is a valid count: %s", why);
  p.calls[1].count = FZ_MAX_ELEMENTS;
  CHECK(fz_program_validate(&p, why, sizeof why), "1024 is a valid count: %s", why);
  p.calls[1].count = FZ_MAX_ELEMENTS + 1u;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "count 1025"), "count: %s", why);
  p = base;
  p.calls[1].hostile = FZ_HOSTILE_COUNT_MINUS_ONE;
  CHECK(fz_program_validate(&p, why, sizeof why), "count_minus_one is a hostile bit: %s", why);
  p.calls[1].hostile = 0x80;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "hostile"), "hostile: %s", why);
  p = base;
  p.calls[1].device.span = 3;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "a range outside a list"),
        "a range outside a list: %s", why);
  p = base;
  p.calls[1].op = FZ_OP_SUBMIT;
  p.calls[1].device.element = FZ_ELEMENT_SELF;
  p.calls[1].list_length = 1;
  p.calls[1].list[0] = (fz_ref){.kind = FZ_REF_RESULT, .call = 0, .element = 1000, .span = 23};
  CHECK(fz_program_validate(&p, why, sizeof why), "range a1000..a1023: %s", why);
  p.calls[1].list[0].span = 24;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "ends past element 1023"),
        "range past element 1023: %s", why);
  p.calls[1].list[0] = (fz_ref){.kind = FZ_REF_RESULT, .element = FZ_ELEMENT_SELF, .span = 1};
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "itself"), "range of SELF: %s",
        why);
  p.calls[1].list[0] = (fz_ref){.kind = FZ_REF_LITERAL, .literal = 5, .span = 1};
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "literal"), "literal range: %s",
        why);
  p = base;
  p.calls[1].op = FZ_OP_COUNT;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "op 13"), "op: %s", why);
  p = base;
  p.calls[0].damage = 1;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "unused damage kind set"), "damage kind: %s", why);
  p = base;
  p.calls[0].pick = 1;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "unused pick set"), "pick: %s", why);
  p = base;
  p.call_count = FZ_MAX_CALLS + 1u;
  CHECK(!fz_program_validate(&p, why, sizeof why), "too many calls");
  p = base;
  p.calls[1].device.kind = FZ_REF_LITERAL;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "literal"),
        "a literal with an element: %s", why);
  p = base;
  p.calls[0].op = FZ_OP_QUERY;
  p.calls[0].allocation.element = FZ_ELEMENT_SELF;
  CHECK(!fz_program_validate(&p, why, sizeof why), "the first call names a result");
  CHECK(fz_encode(&p, buf, sizeof buf) == 0, "encode refuses an invalid program");
  p = base;
  p.calls[1].op = FZ_OP_SUBMIT;
  p.calls[1].list_length = FZ_MAX_LIST + 1u;
  CHECK(!fz_program_validate(&p, why, sizeof why) && strstr(why, "list of 33"), "list: %s", why);
}

/* Decoding random bytes mostly names live objects of the right type when there are some. */
static void test_preferences(void) {
  uint64_t rng = fz_test_seed() ^ 0x9ABCu;
  static uint8_t data[512];
  unsigned dev_refs = 0, dev_live = 0, list_refs = 0, list_live = 0;
  for (int i = 0; i < 2000; i++) {
    for (size_t j = 0; j < sizeof data; j++) {
      data[j] = (uint8_t)fz_test_next(&rng);
    }
    data[0] = 0; /* no faults */
    fz_decode(data, sizeof data, &p);
    fz_track t;
    fz_track_init(&t);
    for (uint32_t k = 0; k < p.call_count; k++) {
      const fz_call *c = &p.calls[k];
      fz_ref_ctx ctx;
      fz_ref_ctx_init(&ctx, &t, c, FZ_SLOT_DEVICE, NULL);
      if ((c->op == FZ_OP_CREATE_RESOURCE || c->op == FZ_OP_CREATE_ALLOCATIONS) &&
          fz_track_count(&t, &ctx, FZ_PICK_LIVE) > 0) {
        int d = fz_track_device_of(&t, &c->device);
        dev_refs++;
        dev_live += d >= 0 && ((t.devices_live >> d) & 1u);
      }
      fz_ref_ctx_init(&ctx, &t, c, FZ_SLOT_ALLOCATION, NULL);
      if (c->op == FZ_OP_SUBMIT && fz_track_count(&t, &ctx, FZ_PICK_LIVE) >= c->list_length) {
        for (uint32_t e = 0; e < c->list_length; e++) {
          list_refs++;
          list_live += fz_track_allocation_live(&t, c->list[e].call, c->list[e].element);
        }
      }
      fz_track_apply(&t, c);
    }
  }
  printf("  create device arguments naming a live device: %u of %u\n", dev_live, dev_refs);
  printf("  submit list entries naming a live allocation: %u of %u\n", list_live, list_refs);
  CHECK(dev_refs > 100 && dev_live * 10 > dev_refs * 6, "device refs: %u of %u live", dev_live,
        dev_refs);
  CHECK(list_refs > 100 && list_live * 10 > list_refs * 6, "list entries: %u of %u live",
        list_live, list_refs);
}

/* The largest encodings fit FZ_ENCODE_MAX_SIZE. */
static void test_max_size(void) {
  memset(&p, 0, sizeof p);
  p.fault_count = 4;
  for (int i = 0; i < 4; i++) {
    p.faults[i].point = p.faults[i].nth = p.faults[i].repeat = UINT32_MAX;
  }
  for (fz_op op = 0; op < FZ_OP_COUNT; op++) {
    p.call_count = FZ_MAX_CALLS;
    for (uint32_t k = 0; k < FZ_MAX_CALLS; k++) {
      fz_call *c = &p.calls[k];
      memset(c, 0, sizeof *c);
      c->op = op;
      c->hostile = FZ_HOSTILE_ALL;
      uint32_t f = fz_op_fields(op);
      fz_ref lit = {.kind = FZ_REF_LITERAL, .literal = 0x12345678u};
      c->device = (f & FZ_FIELD_DEVICE) ? lit : c->device;
      c->resource = (f & FZ_FIELD_RESOURCE) ? lit : c->resource;
      c->fence = (f & FZ_FIELD_FENCE) ? lit : c->fence;
      c->allocation = (f & FZ_FIELD_ALLOCATION) ? lit : c->allocation;
      c->count = (f & FZ_FIELD_COUNT) ? 777u : 0u; /* the u16 form */
      c->size = (f & FZ_FIELD_SIZE) ? UINT64_C(0x123456789) : 0u;
      c->flags = (f & FZ_FIELD_FLAGS) ? 0xFEu : 0u;
      if (f & FZ_FIELD_LIST) {
        c->list_length = FZ_MAX_LIST;
        for (uint32_t i = 0; i < FZ_MAX_LIST; i++) {
          c->list[i] = lit;
        }
      }
    }
    size_t n = fz_encode(&p, NULL, 0);
    CHECK(n > 0 && n <= FZ_ENCODE_MAX_SIZE, "%s x64: %zu bytes (max %u)", fz_op_name(op), n,
          (unsigned)FZ_ENCODE_MAX_SIZE);
    char what[64];
    snprintf(what, sizeof what, "64 x %s", fz_op_name(op));
    check_roundtrip(&p, what);
  }
}

/* Version 2's new forms, byte by byte: big counts, ranges (each span form), explicit
 * elements past 31, the new hostile bits. */
static void test_layout_v2(void) {
  static const uint8_t in[] = {
      'A', 'L', 'F', 'Z', 2, 0x00,
      0x00,                         /* v1 = create_device() */
      0x03, 0x00, 0xFD, 0x00, 0x04, /* v2 = create_resource(v1, n=fz_count_table[13]=1024, 4 KiB,
                                       any, shared) */
      0x02, 0x00, 0xFE, 0x2C, 0x01, 0x00, 0x00, /* v3 = create_allocations(v1, n=300 (u16)) */
      0xF7, 0x20, 0x00, 0x00, 0x04,  /* v4 = destroy_allocations(v1, flags 0, 5 entries,
                                       hostile=count_plus_one): */
      0x90, 0x00,                   /*   RANGE to the end: v3.a0..a299 (v2 is not preferred:
                                         open on v1 alone, it is, but v3 is more recent) */
      0x91, 0xC0, 0x01, 0x00,       /*   RANGE one past the end of explicit v2.a0: a0..a1024 cut
                                         to a0..a1023 */
      0x93, 0xC0, 0x01, 0xFE, 0xE8, 0x03, /* RANGE span 2 of explicit v2.a1000: a1000..a1002 */
      0x9F, 0xE2, 0x10, 0x00,       /*   RANGE u16 of a literal: a plain 0xdead0001 */
      0xC0, 0x01, 0xFE, 0x00, 0x02, /*   explicit v2.a512 */
  };
  CHECK(fz_decode(in, sizeof in, &p), "decode");
  CHECK(p.call_count == 4, "4 calls, got %u:\n%s", p.call_count, fz_test_text(&p));
  if (p.call_count != 4) {
    return;
  }
  const char *want =
      "v1 = create_device()\n"
      "v2 = create_resource(dev=v1, n=1024, size=4096, placement=any, shared=1)\n"
      "v3 = create_allocations(dev=v1, n=300, size=4096, placement=any)\n"
      "v4 = destroy_allocations(dev=v1, list=[v3.a0..a299, v2.a0..a1023, v2.a1000..a1002, "
      "0xdead0001, v2.a512], flags=0, hostile=count_plus_one)\n";
  CHECK(strcmp(fz_test_text(&p), want) == 0, "decoded:\n%s", fz_test_text(&p));
  check_roundtrip(&p, "v2 layout");
  /* The encoder picks the shortest form of each range. */
  size_t n = fz_encode(&p, buf, sizeof buf);
  CHECK(n < sizeof in, "re-encoded in %zu bytes (input %zu)", n, sizeof in);
}

/* A version-1 input keeps its meaning where version 2 reads the same bytes differently. */
static void test_version_1(void) {
  static const uint8_t in[] = {
      'A', 'L', 'F', 'Z', 1, 0x00,
      0x00,                         /* v1 = create_device() */
      0x03, 0x00, 0xF5, 0x00, 0x04, /* v2 = create_resource(n: v1 (0x35 % 33 = 20), v2 128) */
      0xF7, 0x60, 0x00, 0x00, 0x02, /* v3 = destroy_allocations(hostile: v1 0, v2 0x60), 3 */
      0x95,                         /*   v1: PREFERRED 5; v2: a RANGE */
      0x00,
      0xC0, 0x00, 0xFE,             /*   v1: explicit v2 SELF; v2: a u16 element follows */
      0x00, 0x00,
  };
  CHECK(fz_decode(in, sizeof in, &p), "decode version 1");
  const char *want_v1 =
      "v1 = create_device()\n"
      "v2 = create_resource(dev=v1, n=20, size=4096, placement=any, shared=1)\n"
      "v3 = destroy_allocations(dev=v1, list=[v2.a5, v2.a0, v2], flags=0)\n"
      "v4 = create_device()\n"
      "v5 = create_device()\n";
  CHECK(strcmp(fz_test_text(&p), want_v1) == 0, "version 1:\n%s", fz_test_text(&p));
  /* The same body under a version-2 header reads the new forms. */
  static uint8_t v2[sizeof in];
  memcpy(v2, in, sizeof in);
  v2[4] = 2;
  CHECK(fz_decode(v2, sizeof v2, &q), "decode version 2");
  CHECK(q.calls[1].count == 128 && q.calls[2].hostile == 0x60 && q.calls[2].list[0].span != 0,
        "version 2 reads them anew:\n%s", fz_test_text(&q));
  /* Re-encoding a version-1 program writes the current version with the same meaning. */
  size_t n = fz_encode(&p, buf, sizeof buf);
  CHECK(n > 5 && buf[4] == FZ_FORMAT_VERSION && fz_decode(buf, n, &q) && fz_program_equal(&p, &q),
        "a version-1 program re-encoded as the current version");
}

/* A fault at bring-up is the FZ_FAULT_AT_BRING_UP bit of its point varint: no new format. */
static void test_fault_at_bring_up(void) {
  const uint8_t bytes[] = {'A', 'L', 'F', 'Z', FZ_FORMAT_VERSION, 0xC0, 0x85, 0x01, 0x03, 0x00};
  CHECK(fz_decode(bytes, sizeof bytes, &p), "decodes");
  CHECK(p.fault_count == 1 && p.faults[0].point == (5u | FZ_FAULT_AT_BRING_UP) && p.faults[0].nth == 3 &&
            p.faults[0].repeat == 0 && p.call_count == 0,
        "host_allocation at bring-up, nth 3, repeat 0 (point 0x%x)", p.faults[0].point);
  uint8_t out[sizeof bytes + 1];
  size_t n = fz_encode(&p, out, sizeof out);
  CHECK(n == sizeof bytes && memcmp(out, bytes, n) == 0, "encodes back to the same %zu bytes (%zu)", sizeof bytes, n);
}

int main(void) {
  fz_test_run("fault_at_bring_up", test_fault_at_bring_up);
  fz_test_run("layout_v2", test_layout_v2);
  fz_test_run("layout_v3_copy", test_layout_v3_copy);
  fz_test_run("layout_v3_align", test_layout_v3_align);
  fz_test_run("layout_v3_info", test_layout_v3_info);
  fz_test_run("layout_v3_threaded_engine", test_layout_v3_threaded_engine);
  fz_test_run("layout_v3_adapter_teardown", test_layout_v3_adapter_teardown);
  fz_test_run("layout_v4_damage", test_layout_v4_damage);
  fz_test_run("version_1", test_version_1);
  fz_test_run("cursor", test_cursor);
  fz_test_run("layout", test_layout);
  fz_test_run("roundtrip_random", test_roundtrip_random);
  fz_test_run("decode_random_bytes", test_decode_random_bytes);
  fz_test_run("truncations", test_truncations);
  fz_test_run("versions", test_versions);
  fz_test_run("validate", test_validate);
  fz_test_run("preferences", test_preferences);
  fz_test_run("max_size", test_max_size);
  return fz_test_finish();
}
