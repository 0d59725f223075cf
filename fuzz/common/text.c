/*
 * text.c — printing and parsing the text form of fuzz programs (text.h).
 */
#include "fuzz/common/text.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/damage.h"
#include "alloclab/fuzz/input.h"
#include "alloclab/hw/fault_injection.h"
#include "alloclab/hw/sim_miniport.h"

static const char *const placement_names[] = {"any", "memory_only", "aperture_only"};
static const char *const command_names[] = {"nop", "fill", "check", "copy"};
#define COMMAND_NAME_COUNT (sizeof command_names / sizeof command_names[0])
static const char *const hostile_names[] = {"null_args",    "null_list",      "reserved_flags",
                                            "both_forms",   "private_data",   "count_plus_one",
                                            "count_minus_one"};
#define HOSTILE_NAME_COUNT (sizeof hostile_names / sizeof hostile_names[0])
static const char *const flag_names[] = {"assume_not_in_use", "synchronous"};

/* The damage kind a kind byte names (program.h FZ_DAMAGE_SIM), NULL when no layer has it. */
static const al_damage_kind_info *damage_kind_of(uint8_t kind_byte) {
  unsigned kind = kind_byte & FZ_DAMAGE_KIND_MASK;
  return (kind_byte & FZ_DAMAGE_SIM) ? sim_testing_damage_kind(kind) : al_testing_damage_kind(kind);
}

/* The kind byte of the damage kind called @name. The two layers' names never clash (the sim's
 * all start with "sim_", the port's never do: damage_test and sim_damage_test check), so the
 * order the tables are searched in does not matter. */
static bool damage_kind_from_name(const char *name, uint8_t *out) {
  for (unsigned k = 0; k <= FZ_DAMAGE_KIND_MASK; k++) {
    const al_damage_kind_info *port = al_testing_damage_kind(k), *sim = sim_testing_damage_kind(k);
    if (port != NULL && strcmp(port->name, name) == 0) {
      *out = (uint8_t)k;
      return true;
    }
    if (sim != NULL && strcmp(sim->name, name) == 0) {
      *out = (uint8_t)(FZ_DAMAGE_SIM | k);
      return true;
    }
  }
  return false;
}

/* ---- Printing ---------------------------------------------------------------------------- */

typedef struct fz_sb {
  char *buf;
  size_t cap;
  size_t len; /* the whole length, even past cap */
} fz_sb;

__attribute__((format(printf, 2, 3))) static void sb_printf(fz_sb *sb, const char *fmt, ...) {
  char *dst = NULL;
  size_t room = 0;
  if (sb->len < sb->cap) {
    dst = sb->buf + sb->len;
    room = sb->cap - sb->len;
  }
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(dst, room, fmt, ap);
  va_end(ap);
  if (n > 0) {
    sb->len += (size_t)n;
  }
}

static void sb_ref(fz_sb *sb, const fz_ref *ref) {
  if (ref->kind == FZ_REF_LITERAL) {
    if (ref->literal == 0) {
      sb_printf(sb, "0");
    } else {
      sb_printf(sb, "0x%" PRIx32, ref->literal);
    }
  } else if (ref->element == FZ_ELEMENT_SELF) {
    sb_printf(sb, "v%u", (unsigned)ref->call + 1u);
  } else if (ref->span != 0) {
    sb_printf(sb, "v%u.a%u..a%u", (unsigned)ref->call + 1u, (unsigned)ref->element,
              (unsigned)ref->element + ref->span);
  } else {
    sb_printf(sb, "v%u.a%u", (unsigned)ref->call + 1u, (unsigned)ref->element);
  }
}

static void sb_finish(fz_sb *sb) {
  if (sb->cap > 0) {
    sb->buf[sb->len < sb->cap ? sb->len : sb->cap - 1u] = '\0';
  }
}

size_t fz_format_ref(char *buf, size_t cap, const fz_ref *ref) {
  fz_sb sb = {buf, cap, 0};
  sb_ref(&sb, ref);
  sb_finish(&sb);
  return sb.len;
}

static const char *name_or_null(const char *const *names, size_t n, unsigned v) {
  return v < n ? names[v] : NULL;
}

size_t fz_format_call(char *buf, size_t cap, const fz_program *p, uint32_t index) {
  fz_sb sb = {buf, cap, 0};
  if (index >= p->call_count || index >= FZ_MAX_CALLS) {
    sb_finish(&sb);
    return 0;
  }
  const fz_call *call = &p->calls[index];
  const char *op = fz_op_name(call->op);
  uint32_t fields = fz_op_fields(call->op);
  if (op != NULL) {
    sb_printf(&sb, "v%u = %s(", index + 1u, op);
  } else {
    sb_printf(&sb, "v%u = op_%u(", index + 1u, (unsigned)call->op);
  }
  const char *sep = "";
#define ARG(key) (sb_printf(&sb, "%s%s=", sep, key), sep = ", ")
  if (fields & FZ_FIELD_DEVICE) {
    ARG("dev");
    sb_ref(&sb, &call->device);
  }
  if (fields & FZ_FIELD_RESOURCE) {
    ARG("resource");
    sb_ref(&sb, &call->resource);
  }
  if (fields & FZ_FIELD_FENCE) {
    ARG("fence");
    sb_ref(&sb, &call->fence);
  }
  if (fields & FZ_FIELD_ALLOCATION) {
    ARG("allocation");
    sb_ref(&sb, &call->allocation);
  }
  if (fields & FZ_FIELD_COUNT) {
    ARG("n");
    if (call->count == FZ_COUNT_OVER_MAXIMUM) {
      sb_printf(&sb, "over_max");
    } else {
      sb_printf(&sb, "%" PRIu32, call->count);
    }
  }
  if (fields & FZ_FIELD_SIZE) {
    ARG("size");
    sb_printf(&sb, "%" PRIu64, call->size);
  }
  if (fields & FZ_FIELD_PLACEMENT) {
    ARG("placement");
    const char *name = name_or_null(placement_names, 3, (unsigned)call->placement);
    if (name != NULL) {
      sb_printf(&sb, "%s", name);
    } else {
      sb_printf(&sb, "%u", (unsigned)call->placement);
    }
  }
  if (fields & FZ_FIELD_SHARED) {
    ARG("shared");
    sb_printf(&sb, "%d", call->shared ? 1 : 0);
  }
  if ((fields & FZ_FIELD_INFO) && call->info) { /* optional: printed when set */
    ARG("info");
    sb_printf(&sb, "1");
  }
  if ((fields & FZ_FIELD_ALIGN) && call->align != 0) { /* optional: printed when set */
    ARG("align");
    sb_printf(&sb, "%" PRIu32, call->align);
  }
  if (fields & FZ_FIELD_LIST) {
    ARG("list");
    sb_printf(&sb, "[");
    uint32_t n = call->list_length < FZ_MAX_LIST ? call->list_length : FZ_MAX_LIST;
    for (uint32_t i = 0; i < n; i++) {
      if (i > 0) {
        sb_printf(&sb, ", ");
      }
      sb_ref(&sb, &call->list[i]);
    }
    sb_printf(&sb, "]");
  }
  if (fields & FZ_FIELD_FLAGS) {
    ARG("flags");
    sb_printf(&sb, "%" PRIu32, call->flags);
  }
  if (fields & FZ_FIELD_COMMAND) {
    ARG("command");
    const char *name = name_or_null(command_names, COMMAND_NAME_COUNT, (unsigned)call->command);
    if (name != NULL) {
      sb_printf(&sb, "%s", name);
    } else {
      sb_printf(&sb, "%u", (unsigned)call->command);
    }
  }
  if (fields & FZ_FIELD_DAMAGE) { /* a kind no layer has prints as its byte */
    ARG("kind");
    const al_damage_kind_info *info = damage_kind_of(call->damage);
    if (info != NULL) {
      sb_printf(&sb, "%s", info->name);
    } else {
      sb_printf(&sb, "0x%02x", (unsigned)call->damage);
    }
  }
  if (fields & FZ_FIELD_PICK) {
    ARG("pick");
    sb_printf(&sb, "%u", (unsigned)call->pick);
  }
  if (call->hostile != 0) {
    ARG("hostile");
    const char *bar = "";
    uint32_t rest = call->hostile;
    for (unsigned i = 0; i < HOSTILE_NAME_COUNT; i++) {
      if (rest & (UINT32_C(1) << i)) {
        sb_printf(&sb, "%s%s", bar, hostile_names[i]);
        bar = "|";
        rest &= ~(UINT32_C(1) << i);
      }
    }
    if (rest != 0) {
      sb_printf(&sb, "%s0x%" PRIx32, bar, rest);
    }
  }
#undef ARG
  sb_printf(&sb, ")");
  sb_finish(&sb);
  return sb.len;
}

/* A named point prints its name and, when FZ_FAULT_AT_BRING_UP is set, ", at=bring_up" last;
 * any other value prints as a number (the flag included), so the text gives back the value. */
static void print_fault(FILE *out, uint32_t point, uint32_t nth, uint32_t repeat) {
  uint32_t id = point & ~FZ_FAULT_AT_BRING_UP;
  const char *name = id < FAULT_POINT_COUNT ? fault_injector_point_name((enum fault_point)id) : NULL;
  const char *at = name != NULL && (point & FZ_FAULT_AT_BRING_UP) ? ", at=bring_up" : "";
  if (name != NULL) {
    fprintf(out, "fault(point=%s, nth=%" PRIu32 ", ", name, nth);
  } else {
    fprintf(out, "fault(point=%" PRIu32 ", nth=%" PRIu32 ", ", point, nth);
  }
  if (repeat == FAULT_REPEAT_FOREVER) {
    fprintf(out, "repeat=forever%s)\n", at);
  } else {
    fprintf(out, "repeat=%" PRIu32 "%s)\n", repeat, at);
  }
}

void fz_print_program(FILE *out, const fz_program *p, const NTSTATUS *statuses) {
  if (p->threaded_engine && p->adapter_teardown) {
    fprintf(out, "options(engine=threaded, teardown=adapter)\n");
  } else if (p->threaded_engine) {
    fprintf(out, "options(engine=threaded)\n");
  } else if (p->adapter_teardown) {
    fprintf(out, "options(teardown=adapter)\n");
  }
  uint32_t nf = p->fault_count < 4u ? p->fault_count : 4u;
  for (uint32_t i = 0; i < nf; i++) {
    print_fault(out, p->faults[i].point, p->faults[i].nth, p->faults[i].repeat);
  }
  uint32_t nc = p->call_count < FZ_MAX_CALLS ? p->call_count : FZ_MAX_CALLS;
  for (uint32_t k = 0; k < nc; k++) {
    char line[2048];
    fz_format_call(line, sizeof line, p, k);
    if (statuses != NULL && statuses[k] == FZ_STATUS_NOT_RUN) {
      fprintf(out, "%s  # not run\n", line);
    } else if (statuses != NULL) {
      fprintf(out, "%s = %s\n", line, al_status_name(statuses[k]));
    } else {
      fprintf(out, "%s\n", line);
    }
  }
}

/* ---- Parsing ------------------------------------------------------------------------------ */

typedef struct fz_parser {
  const char *s;   /* the next character of the line */
  const char *end; /* the end of the line (its newline, '#' or NUL) */
  unsigned line;
  char *err;
  size_t cap;
} fz_parser;

__attribute__((format(printf, 2, 3))) static bool perr(fz_parser *ps, const char *fmt, ...) {
  if (ps->err != NULL && ps->cap > 0) {
    int n = snprintf(ps->err, ps->cap, "line %u: ", ps->line);
    if (n >= 0 && (size_t)n < ps->cap) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(ps->err + n, ps->cap - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return false;
}

static char peek(const fz_parser *ps) { return ps->s < ps->end ? *ps->s : '\0'; }

static void skip_ws(fz_parser *ps) {
  while (ps->s < ps->end && (*ps->s == ' ' || *ps->s == '\t' || *ps->s == '\r')) {
    ps->s++;
  }
}

/* What is at the cursor, for messages: "'abc...'" or "the end of the line". */
static const char *near(fz_parser *ps, char *buf, size_t cap) {
  skip_ws(ps);
  if (ps->s >= ps->end) {
    return "the end of the line";
  }
  int n = (int)(ps->end - ps->s);
  snprintf(buf, cap, "'%.*s%s'", n > 20 ? 20 : n, ps->s, n > 20 ? "..." : "");
  return buf;
}

static bool expect(fz_parser *ps, char c, const char *context) {
  skip_ws(ps);
  if (peek(ps) == c) {
    ps->s++;
    return true;
  }
  char buf[40];
  return perr(ps, "expected '%c' %s, got %s", c, context, near(ps, buf, sizeof buf));
}

static bool is_word_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool is_word_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* An identifier into buf; false (no message) when there is none. */
static bool word(fz_parser *ps, char *buf, size_t cap) {
  skip_ws(ps);
  if (!is_word_start(peek(ps))) {
    return false;
  }
  size_t n = 0;
  while (ps->s < ps->end && is_word_char(*ps->s)) {
    if (n + 1 < cap) {
      buf[n++] = *ps->s;
    }
    ps->s++;
  }
  buf[n] = '\0';
  return true;
}

static bool number(fz_parser *ps, uint64_t *out, const char *what) {
  skip_ws(ps);
  const char *s = ps->s;
  if (!isdigit((unsigned char)peek(ps))) {
    char buf[40];
    return perr(ps, "expected %s, got %s", what, near(ps, buf, sizeof buf));
  }
  unsigned base = 10;
  if (s + 1 < ps->end && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s += 2;
  }
  const char *digits = s;
  uint64_t v = 0;
  while (s < ps->end && is_word_char(*s)) {
    unsigned char c = (unsigned char)*s;
    unsigned d = isdigit(c) ? (unsigned)(c - '0')
                 : isxdigit(c) ? (unsigned)(tolower(c) - 'a' + 10)
                               : 99u;
    if (d >= base) {
      int n = (int)(ps->end - ps->s);
      return perr(ps, "bad number '%.*s'", n > 20 ? 20 : n, ps->s);
    }
    if (v > (UINT64_MAX - d) / base) {
      return perr(ps, "%s too large (more than 64 bits)", what);
    }
    v = v * base + d;
    s++;
  }
  if (s == digits) {
    return perr(ps, "bad number: '0x' without digits");
  }
  ps->s = s;
  *out = v;
  return true;
}

static bool number32(fz_parser *ps, uint32_t *out, const char *what) {
  uint64_t v = 0;
  if (!number(ps, &v, what)) {
    return false;
  }
  if (v > UINT32_MAX) {
    return perr(ps, "%s 0x%" PRIx64 " does not fit 32 bits", what, v);
  }
  *out = (uint32_t)v;
  return true;
}

static int lookup(const char *const *names, size_t n, const char *w) {
  for (size_t i = 0; i < n; i++) {
    if (strcmp(names[i], w) == 0) {
      return (int)i;
    }
  }
  return -1;
}

/* A reference of call k; a range (vK.aE..aF) only when @range_allowed (list entries). */
static bool parse_ref(fz_parser *ps, uint32_t k, fz_ref *out, const char *what,
                      bool range_allowed) {
  skip_ws(ps);
  memset(out, 0, sizeof *out);
  if (peek(ps) == 'v' && ps->s + 1 < ps->end && isdigit((unsigned char)ps->s[1])) {
    ps->s++;
    uint64_t n = 0;
    if (!number(ps, &n, "a call number")) {
      return false;
    }
    if (n == 0 || n > k) {
      if (k == 0) {
        return perr(ps, "%s: v%" PRIu64 " is not an earlier call (the first call can only "
                        "name literal values)", what, n);
      }
      return perr(ps, "%s: v%" PRIu64 " is not an earlier call (v%u can name v1..v%u)", what, n,
                  k + 1u, k);
    }
    out->kind = FZ_REF_RESULT;
    out->call = (uint16_t)(n - 1u);
    out->element = FZ_ELEMENT_SELF;
    if (peek(ps) == '.') {
      ps->s++;
      if (peek(ps) != 'a') {
        return perr(ps, "%s: expected '.a<element>' after v%" PRIu64, what, n);
      }
      ps->s++;
      uint64_t e = 0;
      if (!number(ps, &e, "an allocation index")) {
        return false;
      }
      if (e >= FZ_MAX_ELEMENTS) {
        return perr(ps, "%s: allocation index %" PRIu64 " out of range (0..%u)", what, e,
                    FZ_MAX_ELEMENTS - 1u);
      }
      out->element = (uint16_t)e;
      if (ps->s + 1 < ps->end && ps->s[0] == '.' && ps->s[1] == '.') {
        ps->s += 2;
        if (!range_allowed) {
          return perr(ps, "%s: a range (vK.aE..aF) is only allowed in a list", what);
        }
        if (peek(ps) != 'a') {
          return perr(ps, "%s: expected 'a<last element>' after '..'", what);
        }
        ps->s++;
        uint64_t last = 0;
        if (!number(ps, &last, "the range's last allocation index")) {
          return false;
        }
        if (last >= FZ_MAX_ELEMENTS) {
          return perr(ps, "%s: allocation index %" PRIu64 " out of range (0..%u)", what, last,
                      FZ_MAX_ELEMENTS - 1u);
        }
        if (last <= e) {
          return perr(ps, "%s: range a%" PRIu64 "..a%" PRIu64 " must end after it starts", what,
                      e, last);
        }
        out->span = (uint16_t)(last - e);
      }
    }
    return true;
  }
  if (isdigit((unsigned char)peek(ps))) {
    out->kind = FZ_REF_LITERAL;
    return number32(ps, &out->literal, "a literal handle");
  }
  char buf[40];
  return perr(ps, "%s: expected a reference (vK, vK.aE or a number), got %s", what,
              near(ps, buf, sizeof buf));
}

/* After an argument: ')' ends the list (*closed), ',' leads to the next one; else an error. */
static bool end_of_argument(fz_parser *ps, bool *closed) {
  skip_ws(ps);
  if (peek(ps) == ')') {
    ps->s++;
    *closed = true;
    return true;
  }
  return expect(ps, ',', "or ')' after an argument");
}

/* A 0-or-1 argument such as "shared=1" into *out; the error names @field. */
static bool parse_switch(fz_parser *ps, const char *field, bool *out) {
  char what[48];
  snprintf(what, sizeof what, "%s (0 or 1)", field);
  uint64_t v = 0;
  if (!number(ps, &v, what)) return false;
  if (v > 1) return perr(ps, "%s: expected 0 or 1, got %" PRIu64, field, v);
  *out = v != 0;
  return true;
}

/* Names and numbers joined by '|' (flags, hostile). */
static bool parse_bits(fz_parser *ps, const char *const *names, size_t n, uint32_t *out,
                       const char *what) {
  uint32_t v = 0;
  for (;;) {
    skip_ws(ps);
    char w[64];
    if (isdigit((unsigned char)peek(ps))) {
      uint32_t x = 0;
      if (!number32(ps, &x, what)) {
        return false;
      }
      v |= x;
    } else if (word(ps, w, sizeof w)) {
      int i = lookup(names, n, w);
      if (i < 0) {
        char list[160] = "";
        for (size_t j = 0; j < n; j++) {
          strncat(list, j ? ", " : "", sizeof list - strlen(list) - 1);
          strncat(list, names[j], sizeof list - strlen(list) - 1);
        }
        return perr(ps, "unknown %s '%s' (expected a number or %s)", what, w, list);
      }
      v |= UINT32_C(1) << i;
    } else {
      char buf[40];
      return perr(ps, "expected %s, got %s", what, near(ps, buf, sizeof buf));
    }
    skip_ws(ps);
    if (peek(ps) != '|') {
      break;
    }
    ps->s++;
  }
  *out = v;
  return true;
}

static bool parse_name(fz_parser *ps, const char *const *names, size_t n, unsigned *out,
                       const char *what) {
  char w[64];
  if (!word(ps, w, sizeof w)) {
    char buf[40];
    return perr(ps, "expected %s, got %s", what, near(ps, buf, sizeof buf));
  }
  int i = lookup(names, n, w);
  if (i < 0) {
    char list[160] = "";
    for (size_t j = 0; j < n; j++) {
      strncat(list, j ? ", " : "", sizeof list - strlen(list) - 1);
      strncat(list, names[j], sizeof list - strlen(list) - 1);
    }
    return perr(ps, "unknown %s '%s' (expected %s)", what, w, list);
  }
  *out = (unsigned)i;
  return true;
}

#define FZ_FIELD_HOSTILE 0x10000u

static const struct {
  const char *key;
  uint32_t field;
} arg_keys[] = {
    {"dev", FZ_FIELD_DEVICE},     {"resource", FZ_FIELD_RESOURCE},
    {"fence", FZ_FIELD_FENCE},    {"allocation", FZ_FIELD_ALLOCATION},
    {"n", FZ_FIELD_COUNT},        {"size", FZ_FIELD_SIZE},
    {"placement", FZ_FIELD_PLACEMENT}, {"shared", FZ_FIELD_SHARED},
    {"list", FZ_FIELD_LIST},      {"flags", FZ_FIELD_FLAGS},
    {"command", FZ_FIELD_COMMAND}, {"align", FZ_FIELD_ALIGN},     {"info", FZ_FIELD_INFO},
    {"kind", FZ_FIELD_DAMAGE},    {"pick", FZ_FIELD_PICK},
    {"hostile", FZ_FIELD_HOSTILE},
};
#define ARG_KEY_COUNT (sizeof arg_keys / sizeof arg_keys[0])
/* Arguments a call may leave out (0 when absent; printed only when set). */
#define OPTIONAL_FIELDS ((uint32_t)(FZ_FIELD_ALIGN | FZ_FIELD_INFO))

static void list_keys(char *buf, size_t cap, uint32_t fields) {
  buf[0] = '\0';
  for (size_t i = 0; i < ARG_KEY_COUNT; i++) {
    if (fields & arg_keys[i].field) {
      strncat(buf, buf[0] ? ", " : "", cap - strlen(buf) - 1);
      strncat(buf, arg_keys[i].key, cap - strlen(buf) - 1);
    }
  }
  if (buf[0] == '\0') {
    snprintf(buf, cap, "no arguments");
  }
}

static bool parse_value(fz_parser *ps, uint32_t k, fz_call *call, uint32_t field) {
  switch (field) {
  case FZ_FIELD_DEVICE:
    return parse_ref(ps, k, &call->device, "dev", false);
  case FZ_FIELD_RESOURCE:
    return parse_ref(ps, k, &call->resource, "resource", false);
  case FZ_FIELD_FENCE:
    return parse_ref(ps, k, &call->fence, "fence", false);
  case FZ_FIELD_ALLOCATION:
    return parse_ref(ps, k, &call->allocation, "allocation", false);
  case FZ_FIELD_COUNT: {
    char w[32];
    skip_ws(ps);
    if (is_word_start(peek(ps))) {
      word(ps, w, sizeof w);
      if (strcmp(w, "over_max") != 0) {
        return perr(ps, "n: expected a count (0..%u) or over_max, got '%s'", FZ_MAX_ELEMENTS, w);
      }
      call->count = FZ_COUNT_OVER_MAXIMUM;
      return true;
    }
    uint64_t v = 0;
    if (!number(ps, &v, "a count")) {
      return false;
    }
    if (v > FZ_MAX_ELEMENTS) {
      return perr(ps, "n: count %" PRIu64 " out of range (0..%u, or over_max)", v,
                  FZ_MAX_ELEMENTS);
    }
    call->count = (uint32_t)v;
    return true;
  }
  case FZ_FIELD_SIZE:
    return number(ps, &call->size, "a size");
  case FZ_FIELD_PLACEMENT: {
    unsigned v = 0;
    if (!parse_name(ps, placement_names, 3, &v, "placement")) {
      return false;
    }
    call->placement = (fz_placement)v;
    return true;
  }
  case FZ_FIELD_ALIGN: {
    uint64_t v = 0;
    if (!number(ps, &v, "an alignment in bytes")) {
      return false;
    }
    if (v > UINT32_MAX) {
      return perr(ps, "align: %" PRIu64 " out of range (at most 4294967295)", v);
    }
    call->align = (uint32_t)v;
    return true;
  }
  case FZ_FIELD_INFO:
    return parse_switch(ps, "info", &call->info);
  case FZ_FIELD_SHARED:
    return parse_switch(ps, "shared", &call->shared);
  case FZ_FIELD_FLAGS:
    if (!parse_bits(ps, flag_names, 2, &call->flags, "flags")) {
      return false;
    }
    if (call->flags > 0xFFu) {
      return perr(ps, "flags 0x%" PRIx32 " out of range (at most 0xff)", call->flags);
    }
    return true;
  case FZ_FIELD_COMMAND: {
    unsigned v = 0;
    if (!parse_name(ps, command_names, COMMAND_NAME_COUNT, &v, "command")) {
      return false;
    }
    call->command = (fz_command)v;
    return true;
  }
  case FZ_FIELD_DAMAGE: {
    skip_ws(ps);
    if (!is_word_start(peek(ps))) { /* a number: the kind byte itself */
      uint64_t v = 0;
      if (!number(ps, &v, "a damage kind name or byte")) {
        return false;
      }
      if (v > 0xFFu) {
        return perr(ps, "kind: %" PRIu64 " out of range (a name, or a byte 0..0xff)", v);
      }
      call->damage = (uint8_t)v;
      return true;
    }
    char w[64];
    word(ps, w, sizeof w);
    if (!damage_kind_from_name(w, &call->damage)) {
      return perr(ps, "kind: unknown damage kind '%s' (`trace --damage-kinds` lists them)", w);
    }
    return true;
  }
  case FZ_FIELD_PICK: {
    uint64_t v = 0;
    if (!number(ps, &v, "a pick (0..255)")) {
      return false;
    }
    if (v > 0xFFu) {
      return perr(ps, "pick: %" PRIu64 " out of range (0..255)", v);
    }
    call->pick = (uint8_t)v;
    return true;
  }
  case FZ_FIELD_HOSTILE:
    if (!parse_bits(ps, hostile_names, HOSTILE_NAME_COUNT, &call->hostile, "hostile")) {
      return false;
    }
    if (call->hostile & ~(uint32_t)FZ_HOSTILE_ALL) {
      return perr(ps, "hostile: unknown bits 0x%" PRIx32 " (known: 0x%x)",
                  call->hostile & ~(uint32_t)FZ_HOSTILE_ALL, FZ_HOSTILE_ALL);
    }
    return true;
  case FZ_FIELD_LIST: {
    if (!expect(ps, '[', "to open the list")) {
      return false;
    }
    skip_ws(ps);
    if (peek(ps) == ']') {
      ps->s++;
      return true;
    }
    for (;;) {
      if (call->list_length >= FZ_MAX_LIST) {
        return perr(ps, "list: more than %u entries", FZ_MAX_LIST);
      }
      char what[32];
      snprintf(what, sizeof what, "list[%u]", call->list_length);
      if (!parse_ref(ps, k, &call->list[call->list_length], what, true)) {
        return false;
      }
      call->list_length++;
      skip_ws(ps);
      if (peek(ps) == ']') {
        ps->s++;
        return true;
      }
      if (!expect(ps, ',', "or ']' in the list")) {
        return false;
      }
    }
  }
  default:
    return perr(ps, "internal: no parser for field 0x%" PRIx32, field);
  }
}

static bool parse_call(fz_parser *ps, uint32_t k, const char *opname, fz_call *call) {
  int op = -1;
  for (int i = 0; i < FZ_OP_COUNT && op < 0; i++) {
    if (strcmp(fz_op_name((fz_op)i), opname) == 0) {
      op = i;
    }
  }
  if (op < 0) {
    return perr(ps, "unknown call '%s' (expected create_device, destroy_device, "
                    "create_allocations, create_resource, add_to_resource, open_resource, "
                    "destroy_resource, destroy_allocations, submit, gpu_run, fence_wait, query, "
                    "damage or fault)", opname);
  }
  memset(call, 0, sizeof *call);
  call->op = (fz_op)op;
  uint32_t fields = fz_op_fields(call->op);
  uint32_t allowed = fields | FZ_FIELD_HOSTILE;
  uint32_t seen = 0;
  if (!expect(ps, '(', "after the call name")) {
    return false;
  }
  skip_ws(ps);
  if (peek(ps) == ')') {
    ps->s++;
  } else {
    for (;;) {
      char key[32];
      char keys[160];
      if (!word(ps, key, sizeof key)) {
        char buf[40];
        return perr(ps, "expected an argument name, got %s", near(ps, buf, sizeof buf));
      }
      uint32_t field = 0;
      for (size_t i = 0; i < ARG_KEY_COUNT && field == 0; i++) {
        if (strcmp(arg_keys[i].key, key) == 0) {
          field = arg_keys[i].field;
        }
      }
      if (!(field & allowed)) {
        list_keys(keys, sizeof keys, fields);
        return perr(ps, "%s has no argument '%s' (it takes %s%s)", opname, key, keys,
                    fields ? ", hostile" : "; hostile is allowed");
      }
      if (seen & field) {
        return perr(ps, "argument '%s' given twice", key);
      }
      seen |= field;
      if (!expect(ps, '=', "after the argument name")) {
        return false;
      }
      if (!parse_value(ps, k, call, field)) {
        return false;
      }
      bool closed = false;
      if (!end_of_argument(ps, &closed)) {
        return false;
      }
      if (closed) {
        break;
      }
    }
  }
  for (size_t i = 0; i < ARG_KEY_COUNT; i++) {
    if ((fields & arg_keys[i].field & ~OPTIONAL_FIELDS) && !(seen & arg_keys[i].field)) {
      return perr(ps, "%s needs argument '%s'", opname, arg_keys[i].key);
    }
  }
  return true;
}

static bool parse_fault(fz_parser *ps, fz_program *out) {
  if (out->fault_count >= 4) {
    return perr(ps, "more than 4 faults");
  }
  uint32_t v[4] = {0, 0, 0, 0}; /* point, nth, repeat, and the at=bring_up flag */
  unsigned seen = 0;
  static const char *const keys[4] = {"point", "nth", "repeat", "at"};
  if (!expect(ps, '(', "after 'fault'")) {
    return false;
  }
  for (;;) {
    char key[32];
    if (!word(ps, key, sizeof key)) {
      char buf[40];
      return perr(ps, "expected point=, nth=, repeat= or at=, got %s", near(ps, buf, sizeof buf));
    }
    int i = lookup(keys, 4, key);
    if (i < 0) {
      return perr(ps, "fault has no argument '%s' (it takes point, nth, repeat, at)", key);
    }
    if (seen & (1u << i)) {
      return perr(ps, "argument '%s' given twice", key);
    }
    seen |= 1u << i;
    if (!expect(ps, '=', "after the argument name")) {
      return false;
    }
    skip_ws(ps);
    char w[64];
    if (i == 3) {
      if (!is_word_start(peek(ps)) || !word(ps, w, sizeof w) ||
          (strcmp(w, "bring_up") != 0 && strcmp(w, "program") != 0)) {
        return perr(ps, "at: expected bring_up or program");
      }
      v[3] = strcmp(w, "bring_up") == 0 ? FZ_FAULT_AT_BRING_UP : 0u;
    } else if (i != 1 && is_word_start(peek(ps))) {
      word(ps, w, sizeof w);
      if (i == 0) {
        enum fault_point point;
        if (!fault_injector_point_from_name(w, &point)) {
          return perr(ps, "unknown fault point '%s'", w);
        }
        v[0] = (uint32_t)point;
      } else if (strcmp(w, "forever") == 0) {
        v[2] = FAULT_REPEAT_FOREVER;
      } else {
        return perr(ps, "repeat: expected a number or forever, got '%s'", w);
      }
    } else if (!number32(ps, &v[i], keys[i])) {
      return false;
    }
    bool closed = false;
    if (!end_of_argument(ps, &closed)) {
      return false;
    }
    if (closed) {
      break;
    }
  }
  for (int i = 0; i < 3; i++) {
    if (!(seen & (1u << i))) {
      return perr(ps, "fault needs argument '%s'", keys[i]);
    }
  }
  if (v[3] != 0 && (v[0] & ~FZ_FAULT_AT_BRING_UP) >= FAULT_POINT_COUNT) {
    return perr(ps, "at=bring_up needs a known fault point");
  }
  out->faults[out->fault_count].point = v[0] | v[3];
  out->faults[out->fault_count].nth = v[1];
  out->faults[out->fault_count].repeat = v[2];
  out->fault_count++;
  return true;
}

/* options(engine=threaded|deterministic, teardown=adapter|devices): the program-level choices
 * (program.h "Engine" and "Teardown"), each at most once, in any order. */
static bool parse_options(fz_parser *ps, fz_program *out, bool *seen_options) {
  if (*seen_options) {
    return perr(ps, "options(...) given twice");
  }
  *seen_options = true;
  if (!expect(ps, '(', "after 'options'")) {
    return false;
  }
  bool seen_engine = false, seen_teardown = false;
  for (;;) {
    char key[32];
    if (!word(ps, key, sizeof key)) {
      char buf[40];
      return perr(ps, "expected engine= or teardown=, got %s", near(ps, buf, sizeof buf));
    }
    bool engine = strcmp(key, "engine") == 0;
    if (!engine && strcmp(key, "teardown") != 0) {
      return perr(ps, "options has no argument '%s' (it takes engine and teardown)", key);
    }
    bool *seen = engine ? &seen_engine : &seen_teardown;
    if (*seen) {
      return perr(ps, "argument '%s' given twice", key);
    }
    *seen = true;
    if (!expect(ps, '=', "after the argument name")) {
      return false;
    }
    skip_ws(ps);
    const char *choices = engine ? "threaded or deterministic" : "adapter or devices";
    char w[64];
    if (!word(ps, w, sizeof w)) {
      char buf[40];
      return perr(ps, "%s: expected %s, got %s", key, choices, near(ps, buf, sizeof buf));
    }
    if (engine && strcmp(w, "threaded") == 0) {
      out->threaded_engine = true;
    } else if (engine && strcmp(w, "deterministic") == 0) {
      out->threaded_engine = false;
    } else if (!engine && strcmp(w, "adapter") == 0) {
      out->adapter_teardown = true;
    } else if (!engine && strcmp(w, "devices") == 0) {
      out->adapter_teardown = false;
    } else {
      return perr(ps, "%s: expected %s, got '%s'", key, choices, w);
    }
    bool closed = false;
    if (!end_of_argument(ps, &closed)) {
      return false;
    }
    if (closed) {
      break;
    }
  }
  return true;
}

static bool parse_line(fz_parser *ps, fz_program *out, bool *seen_options) {
  skip_ws(ps);
  if (ps->s >= ps->end) {
    return true;
  }
  char w[64];
  if (!word(ps, w, sizeof w)) {
    char buf[40];
    return perr(ps, "expected a call (vN = op(...)), fault(...) or options(...), got %s",
                near(ps, buf, sizeof buf));
  }
  if (strcmp(w, "options") == 0) {
    if (!parse_options(ps, out, seen_options)) {
      return false;
    }
  } else if (strcmp(w, "fault") == 0) {
    if (!parse_fault(ps, out)) {
      return false;
    }
  } else {
    uint32_t k = out->call_count;
    skip_ws(ps);
    if (peek(ps) == '=') {
      /* "vN = op(...)": N must be this call's number. */
      const char *digits = w + 1;
      bool numbered = w[0] == 'v' && digits[0] != '\0' && strspn(digits, "0123456789") ==
                                                               strlen(digits);
      if (!numbered) {
        return perr(ps, "expected vN before '=', got '%s'", w);
      }
      if (strlen(digits) > 6 || (uint32_t)strtoul(digits, NULL, 10) != k + 1u) {
        return perr(ps, "this is call v%u (calls are numbered in order), not %s", k + 1u, w);
      }
      ps->s++;
      if (!word(ps, w, sizeof w)) {
        char buf[40];
        return perr(ps, "expected a call name after '=', got %s", near(ps, buf, sizeof buf));
      }
    }
    if (k >= FZ_MAX_CALLS) {
      return perr(ps, "more than %u calls", FZ_MAX_CALLS);
    }
    if (!parse_call(ps, k, w, &out->calls[k])) {
      return false;
    }
    out->call_count = k + 1u;
    skip_ws(ps);
    if (peek(ps) == '=') {
      /* A status printed by trace: "= STATUS_SUCCESS". */
      ps->s++;
      skip_ws(ps);
      if (ps->s >= ps->end) {
        return perr(ps, "expected a status after '='");
      }
      while (ps->s < ps->end && *ps->s != ' ' && *ps->s != '\t' && *ps->s != '\r') {
        ps->s++;
      }
    }
  }
  skip_ws(ps);
  if (ps->s < ps->end) {
    char buf[40];
    return perr(ps, "unexpected %s at the end of the line", near(ps, buf, sizeof buf));
  }
  return true;
}

bool fz_parse_program(const char *text, fz_program *out, char *err, size_t cap) {
  /* As fz_decode: the calls parsed are cleared one by one, the rest is left alone. */
  out->call_count = 0;
  out->fault_count = 0;
  memset(out->faults, 0, sizeof out->faults);
  out->threaded_engine = false;
  out->adapter_teardown = false;
  bool seen_options = false;
  if (err != NULL && cap > 0) {
    err[0] = '\0';
  }
  fz_parser ps = {.line = 0, .err = err, .cap = cap};
  const char *line = text;
  while (*line != '\0') {
    const char *nl = strchr(line, '\n');
    const char *eol = nl != NULL ? nl : line + strlen(line);
    const char *hash = memchr(line, '#', (size_t)(eol - line));
    ps.line++;
    ps.s = line;
    ps.end = hash != NULL ? hash : eol;
    if (!parse_line(&ps, out, &seen_options)) {
      return false;
    }
    line = nl != NULL ? nl + 1 : eol;
  }
  char why[160];
  if (!fz_program_validate(out, why, sizeof why)) {
    ps.line = 0;
    return perr(&ps, "internal: the parsed program is invalid: %s", why);
  }
  return true;
}
