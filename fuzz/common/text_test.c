/*
 * text_test.c — the text form: print/parse round trips, the documented syntax, error lines.
 */
#include <stdlib.h>
#include <string.h>

#include "alloclab/damage.h"
#include "alloclab/fuzz/input.h"
#include "alloclab/hw/sim_miniport.h"
#include "fuzz/common/test_util.h"
#include "fuzz/common/text.h"

static fz_program p, q;

static void test_roundtrip_random(void) {
  uint64_t rng = fz_test_seed() ^ 0x7777u;
  char err[256];
  for (int i = 0; i < 3000 && fz_test_failures == 0; i++) {
    fz_test_random_program(&rng, &p);
    const char *text = fz_test_text(&p);
    bool ok = fz_parse_program(text, &q, err, sizeof err);
    CHECK(ok, "program %d: parse(print(p)) failed: %s\n%s", i, err, text);
    CHECK(!ok || fz_program_equal(&p, &q), "program %d: parse(print(p)) != p\n%s", i, text);
  }
}

static const char example[] =
    "# the example of program.h\n"
    "fault(point=driver_object, nth=2, repeat=forever)\n"
    "v1 = create_device()\n"
    "v2 = create_resource(dev=v1, n=4, size=65536, placement=any, shared=1)\n"
    "v3 = open_resource(dev=v1, resource=v2)\n"
    "v4 = destroy_allocations(dev=v1, list=[v2.a0, v2.a3, 0xdead0001], flags=0)\n"
    "v5 = submit(dev=v1, list=[v2.a1], command=fill) = STATUS_SUCCESS\n"
    "\n"
    "  gpu_run( n = over_max )   # no vN prefix, spaces\n"
    "v7 = fence_wait(fence=v5)\n"
    "v8 = query(allocation=v2.a1, hostile=null_args|reserved_flags)\n"
    "v9 = create_allocations(size=0x1000, n=0, placement=aperture_only, dev=7)\n"
    "v10 = add_to_resource(dev=v1, resource=v2, n=32, size=18446744073709551615, "
    "placement=memory_only)\n"
    "v11 = destroy_resource(dev=v1, resource=v2, flags=assume_not_in_use|synchronous)\n"
    "v12 = destroy_device(dev=v1)\n";

static void test_example(void) {
  char err[256];
  bool ok = fz_parse_program(example, &p, err, sizeof err);
  CHECK(ok, "parse: %s", err);
  if (!ok) {
    return;
  }
  CHECK(p.fault_count == 1 && p.faults[0].point == 2 && p.faults[0].nth == 2 &&
            p.faults[0].repeat == UINT32_MAX,
        "fault");
  CHECK(p.call_count == 12, "12 calls, got %u", p.call_count);
  const fz_call *c = p.calls;
  CHECK(c[1].op == FZ_OP_CREATE_RESOURCE && c[1].count == 4 && c[1].size == 65536 &&
            c[1].shared && c[1].device.kind == FZ_REF_RESULT && c[1].device.call == 0 &&
            c[1].device.element == FZ_ELEMENT_SELF,
        "v2");
  CHECK(c[3].list_length == 3 && c[3].list[1].call == 1 && c[3].list[1].element == 3 &&
            c[3].list[2].kind == FZ_REF_LITERAL && c[3].list[2].literal == 0xDEAD0001u,
        "v4 list");
  CHECK(c[4].command == FZ_COMMAND_FILL, "v5 command (status ignored)");
  CHECK(c[5].op == FZ_OP_GPU_RUN && c[5].count == FZ_COUNT_OVER_MAXIMUM, "v6");
  CHECK(c[6].fence.call == 4, "v7 fence");
  CHECK(c[7].hostile == (FZ_HOSTILE_NULL_ARGS | FZ_HOSTILE_RESERVED_FLAGS), "v8 hostile");
  CHECK(c[8].size == 4096 && c[8].count == 0 && c[8].placement == FZ_PLACEMENT_APERTURE_ONLY &&
            c[8].device.kind == FZ_REF_LITERAL && c[8].device.literal == 7,
        "v9 (arguments in any order)");
  CHECK(c[9].size == UINT64_MAX && c[9].count == 32, "v10");
  CHECK(c[10].flags == 3, "v11 flags");
  /* And back. */
  const char *text = fz_test_text(&p);
  CHECK(strstr(text, "fault(point=driver_object, nth=2, repeat=forever)\n") != NULL,
        "fault printed by name:\n%s", text);
  CHECK(strstr(text, "v2 = create_resource(dev=v1, n=4, size=65536, placement=any, "
                     "shared=1)\n") != NULL,
        "v2 printed:\n%s", text);
  CHECK(strstr(text, "v4 = destroy_allocations(dev=v1, list=[v2.a0, v2.a3, 0xdead0001], "
                     "flags=0)\n") != NULL,
        "v4 printed:\n%s", text);
  CHECK(strstr(text, "v8 = query(allocation=v2.a1, hostile=null_args|reserved_flags)\n") != NULL,
        "v8 printed:\n%s", text);
  CHECK(fz_parse_program(text, &q, err, sizeof err) && fz_program_equal(&p, &q),
        "reparse: %s", err);
}

static void test_statuses(void) {
  char err[256];
  CHECK(fz_parse_program("v1 = create_device()\nv2 = destroy_device(dev=v1)\n", &p, err,
                         sizeof err),
        "parse: %s", err);
  NTSTATUS st[2] = {STATUS_SUCCESS, STATUS_INVALID_HANDLE};
  static char text[4096];
  FILE *f = fmemopen(text, sizeof text, "w");
  fz_print_program(f, &p, st);
  fclose(f);
  CHECK(strcmp(text, "v1 = create_device() = STATUS_SUCCESS\n"
                     "v2 = destroy_device(dev=v1) = STATUS_INVALID_HANDLE\n") == 0,
        "statuses:\n%s", text);
  CHECK(fz_parse_program(text, &q, err, sizeof err) && fz_program_equal(&p, &q),
        "a trace with statuses parses back: %s", err);
  char small[12];
  size_t n = fz_format_call(small, sizeof small, &p, 1);
  CHECK(n == strlen("v2 = destroy_device(dev=v1)") && strlen(small) == sizeof small - 1u,
        "fz_format_call cuts and returns the whole length (%zu, '%s')", n, small);
  fz_ref lit = {.kind = FZ_REF_LITERAL, .literal = 0};
  CHECK(fz_format_ref(small, sizeof small, &lit) == 1 && strcmp(small, "0") == 0, "literal 0");
}

/* options(engine=...): printed first (only when threaded), parsed on any line, the default
 * spelled out parses too. */
static void test_options_engine(void) {
  char err[256];
  static const char text[] = "v1 = create_device()\noptions( engine = threaded )  # late is fine\n";
  CHECK(fz_parse_program(text, &p, err, sizeof err), "parse: %s", err);
  CHECK(p.threaded_engine && p.call_count == 1, "engine=threaded sets the choice");
  CHECK(strcmp(fz_test_text(&p), "options(engine=threaded)\nv1 = create_device()\n") == 0, "printed first:\n%s",
        fz_test_text(&p));
  CHECK(fz_parse_program(fz_test_text(&p), &q, err, sizeof err) && fz_program_equal(&p, &q), "round trip: %s", err);
  CHECK(fz_parse_program("options(engine=deterministic)\nv1 = create_device()\n", &q, err, sizeof err) &&
            !q.threaded_engine,
        "engine=deterministic: %s", err);
  CHECK(strcmp(fz_test_text(&q), "v1 = create_device()\n") == 0, "the default is not printed:\n%s",
        fz_test_text(&q));
  /* A parse starts from the default, whatever the program held before. */
  CHECK(fz_parse_program("v1 = create_device()\n", &p, err, sizeof err) && !p.threaded_engine,
        "no options line: deterministic");
}

/* options(teardown=...): the live devices left to al_adapter_destroy; printed only when set,
 * with the engine in one line when both are chosen, in either order, and reset by each parse. */
static void test_options_teardown(void) {
  char err[256];
  CHECK(fz_parse_program("options(teardown=adapter)\nv1 = create_device()\n", &p, err, sizeof err), "parse: %s", err);
  CHECK(p.adapter_teardown && !p.threaded_engine && p.call_count == 1, "teardown=adapter sets the choice only");
  CHECK(strcmp(fz_test_text(&p), "options(teardown=adapter)\nv1 = create_device()\n") == 0, "printed:\n%s",
        fz_test_text(&p));
  CHECK(fz_parse_program(fz_test_text(&p), &q, err, sizeof err) && fz_program_equal(&p, &q), "round trip: %s", err);
  CHECK(fz_parse_program("options(teardown = adapter, engine=threaded)\nv1 = create_device()\n", &p, err, sizeof err) &&
            p.adapter_teardown && p.threaded_engine,
        "both, teardown first: %s", err);
  CHECK(strcmp(fz_test_text(&p), "options(engine=threaded, teardown=adapter)\nv1 = create_device()\n") == 0,
        "both printed in one line:\n%s", fz_test_text(&p));
  CHECK(fz_parse_program(fz_test_text(&p), &q, err, sizeof err) && fz_program_equal(&p, &q), "round trip: %s", err);
  q.adapter_teardown = false;
  CHECK(!fz_program_equal(&p, &q), "programs that differ in their teardown differ");
  CHECK(fz_parse_program("options(teardown=devices)\nv1 = create_device()\n", &q, err, sizeof err) &&
            !q.adapter_teardown && strcmp(fz_test_text(&q), "v1 = create_device()\n") == 0,
        "teardown=devices is the default, not printed: %s", err);
  CHECK(fz_parse_program("v1 = create_device()\n", &p, err, sizeof err) && !p.adapter_teardown,
        "no options line: the executor destroys the devices");
}

static void test_errors(void) {
  static const struct {
    const char *text;
    const char *needle;
  } cases[] = {
      {"v1 = create_device()\nv2 = frobnicate()\n", "line 2: unknown call 'frobnicate'"},
      {"v1 = create_device()\n\n# c\nv2 = destroy_device(dev=v3)\n",
       "line 4: dev: v3 is not an earlier call (v2 can name v1..v1)"},
      {"v1 = destroy_device(dev=v1)\n", "line 1: dev: v1 is not an earlier call"},
      {"v1 = create_device()\nv3 = create_device()\n", "line 2: this is call v2"},
      {"v1 = create_device()\nv2 = create_resource(dev=v1, n=4, size=4096, placement=any)\n",
       "line 2: create_resource needs argument 'shared'"},
      {"v1 = create_device(dev=0)\n", "line 1: create_device has no argument 'dev'"},
      {"v1 = gpu_run(n=1, n=2)\n", "line 1: argument 'n' given twice"},
      {"v1 = gpu_run(n=1025)\n", "line 1: n: count 1025 out of range"},
      {"v1 = create_device()\nv2 = query(allocation=v1.a0..a3)\n",
       "line 2: allocation: a range (vK.aE..aF) is only allowed in a list"},
      {"v1 = create_device()\nv2 = submit(dev=v1, list=[v1.a3..a3], command=nop)\n",
       "line 2: list[0]: range a3..a3 must end after it starts"},
      {"v1 = create_device()\nv2 = submit(dev=v1, list=[v1.a3..a1024], command=nop)\n",
       "line 2: list[0]: allocation index 1024 out of range"},
      {"v1 = create_device()\nv2 = submit(dev=v1, list=[v1.a3..7], command=nop)\n",
       "line 2: list[0]: expected 'a<last element>' after '..'"},
      {"v1 = gpu_run(n=12abc)\n", "line 1: bad number"},
      {"v1 = query(allocation=0x100000000)\n", "line 1: a literal handle 0x100000000 does not fit"},
      {"v1 = create_device()\nv2 = query(allocation=v1.a1024)\n",
       "line 2: allocation: allocation index 1024 out of range"},
      {"v1 = create_device()\nv2 = query(allocation=v1.b2)\n", "line 2: allocation: expected '.a"},
      {"v1 = create_device()\nv2 = submit(dev=v1, list=[v1 v1], command=nop)\n",
       "line 2: expected ',' or ']' in the list"},
      {"v1 = create_device()\nv2 = submit(dev=v1, list=[], command=paint)\n",
       "line 2: unknown command 'paint'"},
      {"v1 = create_device()\nv2 = destroy_resource(dev=v1, resource=0, flags=0x100)\n",
       "line 2: flags 0x100 out of range"},
      {"v1 = create_device(hostile=evil)\n", "line 1: unknown hostile 'evil'"},
      {"v1 = create_device() extra\n", "line 1: unexpected 'extra'"},
      {"v1 = create_device() =\n", "line 1: expected a status"},
      {"v1 = create_device() = STATUS_SUCCESS junk\n", "line 1: unexpected 'junk'"},
      {"v1 = create_device(\n", "line 1: expected an argument name"},
      {"fault(point=nowhere, nth=1, repeat=1)\n", "line 1: unknown fault point 'nowhere'"},
      {"fault(point=1, nth=1)\n", "line 1: fault needs argument 'repeat'"},
      {"fault(point=1,nth=1,repeat=1)\nfault(point=1,nth=1,repeat=1)\n"
       "fault(point=1,nth=1,repeat=1)\nfault(point=1,nth=1,repeat=1)\n"
       "fault(point=1,nth=1,repeat=1)\n",
       "line 5: more than 4 faults"},
      {"= create_device()\n", "line 1: expected a call"},
      {"options(engine=magic)\n", "line 1: engine: expected threaded or deterministic, got 'magic'"},
      {"options(speed=11)\n", "line 1: options has no argument 'speed' (it takes engine and teardown)"},
      {"options(engine=threaded, engine=threaded)\n", "line 1: argument 'engine' given twice"},
      {"options(teardown=process)\n", "line 1: teardown: expected adapter or devices, got 'process'"},
      {"options(teardown=adapter, engine=threaded, teardown=devices)\n",
       "line 1: argument 'teardown' given twice"},
      {"options(teardown=)\n", "line 1: teardown: expected adapter or devices, got"},
      {"options(engine=threaded)\nv1 = create_device()\noptions(engine=threaded)\n",
       "line 3: options(...) given twice"},
      {"options engine=threaded\n", "line 1: expected '(' after 'options'"},
      {"x1 = create_device()\n", "line 1: expected vN before '='"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[256] = "";
    bool ok = fz_parse_program(cases[i].text, &p, err, sizeof err);
    CHECK(!ok, "case %zu parsed:\n%s", i, cases[i].text);
    CHECK(strstr(err, cases[i].needle) != NULL, "case %zu: error '%s' lacks '%s'", i, err,
          cases[i].needle);
  }
  /* Too many calls. */
  static char many[80 * 24];
  many[0] = '\0';
  for (int i = 0; i < FZ_MAX_CALLS + 1; i++) {
    strcat(many, "create_device()\n");
  }
  char err[256];
  CHECK(!fz_parse_program(many, &p, err, sizeof err) && strstr(err, "line 65: more than 64"),
        "65 calls: %s", err);
  /* A tiny error buffer still gets a NUL-terminated prefix. */
  char tiny[8];
  CHECK(!fz_parse_program("bogus()\n", &p, tiny, sizeof tiny) && strlen(tiny) == 7,
        "tiny buffer");
  CHECK(!fz_parse_program("bogus()\n", &p, NULL, 0), "no buffer");
  CHECK(fz_parse_program("", &p, err, sizeof err) && p.call_count == 0, "empty text");
  CHECK(fz_parse_program("v1 = create_device()", &p, err, sizeof err) && p.call_count == 1,
        "no final newline");
  CHECK(fz_parse_program("v1 = create_device()\r\n", &p, err, sizeof err) && p.call_count == 1,
        "CRLF");
}

/* The copy command (format version 3): parsed, printed back, and refused as a number. */
static void test_copy(void) {
  static const char text[] =
      "v1 = create_device()\n"
      "v2 = create_allocations(dev=v1, n=2, size=4096, placement=any)\n"
      "v3 = submit(dev=v1, list=[v2.a0, v2.a1], command=copy)\n";
  char err[256];
  bool ok = fz_parse_program(text, &p, err, sizeof err);
  CHECK(ok, "parse: %s", err);
  if (!ok) {
    return;
  }
  CHECK(p.calls[2].command == FZ_COMMAND_COPY, "command=copy parsed as FZ_COMMAND_COPY");
  CHECK(strcmp(fz_test_text(&p), text) == 0, "printed back:\n%s", fz_test_text(&p));
  ok = fz_parse_program("v1 = create_device()\nv2 = submit(dev=v1, list=[], command=move)\n", &q, err, sizeof err);
  CHECK(!ok && strstr(err, "line 2: unknown command 'move'"), "an unknown command: %s", err);
}

/* The damage op (format version 4): kinds by name from both layers' tables, or as a byte;
 * printed back by name; bad kinds and picks are refused with the reason. */
static void test_damage(void) {
  char text[512], err[256];
  const char *port = al_testing_damage_kind(0)->name, *sim = sim_testing_damage_kind(0)->name;
  /* The kind byte holds a layer's kind in its low 7 bits: a kind past them could not be named. */
  CHECK(al_testing_damage_kind_count() <= FZ_DAMAGE_KIND_MASK + 1u &&
            sim_testing_damage_kind_count() <= FZ_DAMAGE_KIND_MASK + 1u,
        "damage kinds: port %u, sim %u; a kind byte holds at most %u a layer", al_testing_damage_kind_count(),
        sim_testing_damage_kind_count(), FZ_DAMAGE_KIND_MASK + 1u);
  snprintf(text, sizeof text,
           "v1 = create_device()\n"
           "v2 = damage(kind=%s, pick=3)\n"
           "v3 = damage(kind=%s, pick=0)\n"
           "v4 = damage(kind=0x7f, pick=255)\n",
           port, sim);
  bool ok = fz_parse_program(text, &p, err, sizeof err);
  CHECK(ok, "parse: %s", err);
  if (!ok) {
    return;
  }
  CHECK(p.calls[1].op == FZ_OP_DAMAGE && p.calls[1].damage == 0 && p.calls[1].pick == 3, "port kind 0, pick 3");
  CHECK(p.calls[2].damage == FZ_DAMAGE_SIM && p.calls[2].pick == 0, "sim kind 0 carries FZ_DAMAGE_SIM");
  CHECK(p.calls[3].damage == 0x7F && p.calls[3].pick == 255, "a kind byte no layer has");
  CHECK(strcmp(fz_test_text(&p), text) == 0, "printed back:\n%s", fz_test_text(&p));
  /* A kind given by its byte prints back by its name. */
  ok = fz_parse_program("v1 = damage(kind=0x80, pick=1)\n", &q, err, sizeof err);
  CHECK(ok && q.calls[0].damage == FZ_DAMAGE_SIM, "kind as a byte: %s", err);
  snprintf(text, sizeof text, "v1 = damage(kind=%s, pick=1)\n", sim);
  CHECK(strcmp(fz_test_text(&q), text) == 0, "a byte prints as its name:\n%s", fz_test_text(&q));
  ok = fz_parse_program("v1 = damage(kind=no_such_kind, pick=0)\n", &q, err, sizeof err);
  CHECK(!ok && strstr(err, "unknown damage kind 'no_such_kind'"), "an unknown kind name: %s", err);
  ok = fz_parse_program("v1 = damage(kind=256, pick=0)\n", &q, err, sizeof err);
  CHECK(!ok && strstr(err, "kind: 256 out of range"), "a kind above a byte: %s", err);
  snprintf(text, sizeof text, "v1 = damage(kind=%s, pick=256)\n", port);
  ok = fz_parse_program(text, &q, err, sizeof err);
  CHECK(!ok && strstr(err, "pick: 256 out of range"), "a pick above a byte: %s", err);
  snprintf(text, sizeof text, "v1 = damage(kind=%s)\n", port);
  ok = fz_parse_program(text, &q, err, sizeof err);
  CHECK(!ok && strstr(err, "damage needs argument 'pick'"), "pick is required: %s", err);
  ok = fz_parse_program("v1 = create_device(kind=0)\n", &q, err, sizeof err);
  CHECK(!ok && strstr(err, "has no argument 'kind'"), "kind only on damage: %s", err);
}

/* align= is optional on the creates: 0 when left out, printed only when set. */
static void test_align(void) {
  static const char text[] =
      "v1 = create_device()\n"
      "v2 = create_resource(dev=v1, n=2, size=4096, placement=any, shared=0, align=1048576)\n"
      "v3 = add_to_resource(dev=v1, resource=v2, n=1, size=4096, placement=any, align=12288)\n"
      "v4 = create_allocations(dev=v1, n=1, size=4096, placement=any)\n";
  char err[256];
  bool ok = fz_parse_program(text, &p, err, sizeof err);
  CHECK(ok, "parse: %s", err);
  if (!ok) {
    return;
  }
  CHECK(p.calls[1].align == 1048576u && p.calls[2].align == 12288u && p.calls[3].align == 0, "align values");
  CHECK(strcmp(fz_test_text(&p), text) == 0, "printed back:\n%s", fz_test_text(&p));
  ok = fz_parse_program("v1 = create_device()\nv2 = submit(dev=v1, list=[], command=nop, align=4096)\n", &q,
                        err, sizeof err);
  CHECK(!ok && strstr(err, "line 2: submit has no argument 'align'"), "align on submit: %s", err);
  ok = fz_parse_program("v1 = create_device()\nv2 = create_allocations(dev=v1, n=1, size=1, placement=any, "
                        "align=4294967296)\n", &q, err, sizeof err);
  CHECK(!ok && strstr(err, "line 2: align: 4294967296 out of range"), "align above 32 bits: %s", err);
}

/* info= is optional on create_device: 0 when left out, printed only when set. */
static void test_info(void) {
  static const char text[] = "v1 = create_device(info=1)\nv2 = create_device()\n";
  char err[256];
  bool ok = fz_parse_program(text, &p, err, sizeof err);
  CHECK(ok && p.calls[0].info && !p.calls[1].info, "parse: %s", err);
  CHECK(ok && strcmp(fz_test_text(&p), text) == 0, "printed back:\n%s", fz_test_text(&p));
  ok = fz_parse_program("v1 = create_device(info=0)\n", &q, err, sizeof err);
  CHECK(ok && !q.calls[0].info, "info=0 parses: %s", err);
  ok = fz_parse_program("v1 = create_device(info=2)\n", &q, err, sizeof err);
  CHECK(!ok && strstr(err, "line 1: info: expected 0 or 1, got 2"), "info=2: %s", err);
  ok = fz_parse_program("v1 = create_device()\nv2 = destroy_device(dev=v1, info=1)\n", &q, err, sizeof err);
  CHECK(!ok && strstr(err, "line 2: destroy_device has no argument 'info'"), "info on destroy_device: %s", err);
}

/* Long lists: ranges, big counts and the count hostile bits, printed and parsed back. */
static void test_ranges(void) {
  static const char text[] =
      "v1 = create_device()\n"
      "v2 = create_resource(dev=v1, n=1024, size=4096, placement=any, shared=1)\n"
      "v3 = destroy_allocations(dev=v1, list=[v2.a0..a511, v2.a0..a511, v2.a1000..a1024, "
      "v2.a1023], flags=0, hostile=count_plus_one|count_minus_one)\n";
  char err[256];
  bool ok = fz_parse_program(text, &p, err, sizeof err);
  CHECK(!ok && strstr(err, "line 3: list[2]: allocation index 1024 out of range"),
        "a range past element 1023 is refused: %s", err);
  static const char good[] =
      "v1 = create_device()\n"
      "v2 = create_resource(dev=v1, n=1024, size=4096, placement=any, shared=1)\n"
      "v3 = destroy_allocations(dev=v1, list=[v2.a0..a511, v2.a0..a511, v2.a1000..a1023, "
      "v2.a1023], flags=0, hostile=count_plus_one|count_minus_one)\n";
  ok = fz_parse_program(good, &p, err, sizeof err);
  CHECK(ok, "parse: %s", err);
  if (!ok) {
    return;
  }
  CHECK(p.calls[1].count == 1024, "n=1024");
  const fz_call *c = &p.calls[2];
  CHECK(c->list_length == 4 && c->list[0].element == 0 && c->list[0].span == 511 &&
            c->list[2].element == 1000 && c->list[2].span == 23 && c->list[3].element == 1023 &&
            c->list[3].span == 0,
        "ranges parsed");
  CHECK(c->hostile == (FZ_HOSTILE_COUNT_PLUS_ONE | FZ_HOSTILE_COUNT_MINUS_ONE), "hostile bits");
  CHECK(strcmp(fz_test_text(&p), good) == 0, "printed back:\n%s", fz_test_text(&p));
}

/* at=bring_up: parsed into the point's FZ_FAULT_AT_BRING_UP bit, printed last, round-trips;
 * at=program is the default; a point the flag cannot name is refused. */
static void test_fault_at_bring_up(void) {
  char err[256] = "";
  CHECK(fz_parse_program("fault(at=bring_up, point=host_allocation, nth=3, repeat=0)\n"
                         "fault(point=segment_space, nth=1, repeat=forever, at=bring_up)\n"
                         "fault(point=driver_object, nth=2, repeat=1, at=program)\n"
                         "v1 = create_device()\n",
                         &p, err, sizeof err),
        "parse: %s", err);
  CHECK(p.fault_count == 3 && p.faults[0].point == (5u | FZ_FAULT_AT_BRING_UP) && p.faults[0].nth == 3 &&
            p.faults[1].point == (0u | FZ_FAULT_AT_BRING_UP) && p.faults[1].repeat == UINT32_MAX &&
            p.faults[2].point == 2u,
        "points 0x%x 0x%x 0x%x", p.faults[0].point, p.faults[1].point, p.faults[2].point);
  const char *text = fz_test_text(&p);
  CHECK(strstr(text, "fault(point=host_allocation, nth=3, repeat=0, at=bring_up)\n"
                     "fault(point=segment_space, nth=1, repeat=forever, at=bring_up)\n"
                     "fault(point=driver_object, nth=2, repeat=1)\n") == text,
        "printed:\n%s", text);
  CHECK(fz_parse_program(text, &q, err, sizeof err) && fz_program_equal(&p, &q), "reparse: %s", err);
  /* A number keeps the bit (and an unnamed id prints as the number, flag included). */
  CHECK(fz_parse_program("fault(point=0xff, nth=1, repeat=0)\n", &p, err, sizeof err) && p.faults[0].point == 0xFFu,
        "numeric point: %s", err);
  text = fz_test_text(&p);
  CHECK(strstr(text, "fault(point=255, nth=1, repeat=0)\n") == text, "unnamed point printed:\n%s", text);
  static const struct {
    const char *text, *needle;
  } bad[] = {
      {"fault(point=host_allocation, nth=1, repeat=0, at=boot)\n", "line 1: at: expected bring_up or program"},
      {"fault(point=host_allocation, nth=1, repeat=0, at=3)\n", "line 1: at: expected bring_up or program"},
      {"fault(point=200, nth=1, repeat=0, at=bring_up)\n", "line 1: at=bring_up needs a known fault point"},
      {"fault(point=1, nth=1, repeat=0, at=bring_up, at=program)\n", "line 1: argument 'at' given twice"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    CHECK(!fz_parse_program(bad[i].text, &p, err, sizeof err) && strstr(err, bad[i].needle) != NULL,
          "%s: got '%s', want '%s'", bad[i].text, err, bad[i].needle);
  }
}

int main(void) {
  fz_test_run("fault_at_bring_up", test_fault_at_bring_up);
  fz_test_run("ranges", test_ranges);
  fz_test_run("copy", test_copy);
  fz_test_run("damage", test_damage);
  fz_test_run("align", test_align);
  fz_test_run("info", test_info);
  fz_test_run("options_engine", test_options_engine);
  fz_test_run("options_teardown", test_options_teardown);
  fz_test_run("roundtrip_random", test_roundtrip_random);
  fz_test_run("example", test_example);
  fz_test_run("statuses", test_statuses);
  fz_test_run("errors", test_errors);
  return fz_test_finish();
}
