/*
 * gpu_input.c — decode, encode and the text form of the gpu target's inputs (gpu_input.h).
 */
#include "gpu_input.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define U8 GPU_F_U8
#define U16 GPU_F_U16
#define U24 GPU_F_U24
#define U32 GPU_F_U32
#define VA GPU_F_VA

const gpu_op_desc gpu_op_table[GPU_OP_COUNT] = {
    [GPU_OP_VA_RESERVE] = {"va_reserve", 4, {{"as", U8}, {"slot", U8}, {"size", U24}, {"align", U8}}},
    [GPU_OP_VA_RELEASE] = {"va_release", 2, {{"as", U8}, {"va", VA}}},
    [GPU_OP_MAP] = {"map", 6, {{"as", U8}, {"va", VA}, {"seg", U8}, {"phys", U24}, {"size", U24}, {"flags", U8}}},
    [GPU_OP_UNMAP] = {"unmap", 3, {{"as", U8}, {"va", VA}, {"size", U24}}},
    [GPU_OP_UNMAP_KNOWN] = {"unmap_known", 3, {{"as", U8}, {"va", VA}, {"size", U24}}},
    [GPU_OP_UNMAP_RELEASE] = {"unmap_release", 2, {{"as", U8}, {"va", VA}}},
    [GPU_OP_QUERY] = {"query", 2, {{"as", U8}, {"va", VA}}},
    [GPU_OP_COMMIT] = {"commit", 4, {{"seg", U8}, {"offset", U24}, {"size", U24}, {"owner", U8}}},
    [GPU_OP_RELEASE] = {"release", 3, {{"seg", U8}, {"offset", U24}, {"size", U24}}},
    [GPU_OP_READ] = {"read", 3, {{"seg", U8}, {"offset", U24}, {"size", U24}}},
    [GPU_OP_WRITE] = {"write", 4, {{"seg", U8}, {"offset", U24}, {"size", U24}, {"seed", U8}}},
    [GPU_OP_FILL] = {"fill", 5, {{"seg", U8}, {"offset", U24}, {"size", U24}, {"pattern", U32}, {"phase", U8}}},
    [GPU_OP_COPY] = {"copy", 5, {{"seg", U8}, {"offset", U24}, {"dst", U8}, {"dst_offset", U24}, {"size", U24}}},
    [GPU_OP_TRANSFER] = {"transfer", 5, {{"seg", U8}, {"offset", U24}, {"dst", U8}, {"dst_offset", U24}, {"size", U24}}},
    [GPU_OP_TO_HOST] = {"to_host", 4, {{"seg", U8}, {"offset", U24}, {"size", U24}, {"slot", U8}}},
    [GPU_OP_FROM_HOST] = {"from_host", 3, {{"seg", U8}, {"offset", U24}, {"slot", U8}}},
    [GPU_OP_COPY_SAVE] = {"copy_save", 4, {{"seg", U8}, {"offset", U24}, {"size", U24}, {"slot", U8}}},
    [GPU_OP_COPY_RESTORE] = {"copy_restore", 3, {{"slot", U8}, {"seg", U8}, {"offset", U24}}},
    [GPU_OP_COPY_READ] = {"copy_read", 3, {{"slot", U8}, {"offset", U24}, {"size", U24}}},
    [GPU_OP_COPY_FREE] = {"copy_free", 1, {{"slot", U8}}},
    [GPU_OP_AS_READ] = {"as_read", 3, {{"as", U8}, {"va", VA}, {"size", U24}}},
    [GPU_OP_AS_WRITE] = {"as_write", 4, {{"as", U8}, {"va", VA}, {"size", U24}, {"seed", U8}}},
    [GPU_OP_AS_FILL] = {"as_fill", 4, {{"as", U8}, {"va", VA}, {"size", U24}, {"pattern", U32}}},
    [GPU_OP_TRANSLATE] = {"translate", 3, {{"as", U8}, {"va", VA}, {"access", U8}}},
    [GPU_OP_CMD_FILL] = {"cmd_fill", 3, {{"va", VA}, {"size", U24}, {"pattern", U32}}},
    [GPU_OP_CMD_COPY] = {"cmd_copy", 3, {{"va", VA}, {"dst", VA}, {"size", U24}}},
    [GPU_OP_CMD_READBACK] = {"cmd_readback", 3, {{"va", VA}, {"size", U24}, {"offset", U24}}},
    [GPU_OP_CMD_NOP] = {"cmd_nop", 1, {{"payload", U8}}},
    [GPU_OP_CMD_RAW] = {"cmd_raw", 4, {{"opcode", U8}, {"length", U8}, {"byte", U8}, {"cut", U8}}},
    [GPU_OP_SUBMIT] = {"submit", 4, {{"as", U8}, {"fence", U8}, {"readback", U16}, {"callback", U8}}},
    [GPU_OP_RUN] = {"run", 1, {{"max", U8}}},
    [GPU_OP_WAIT_IDLE] = {"wait_idle", 0, {{NULL, 0}}},
    [GPU_OP_WAIT_FENCE] = {"wait_fence", 1, {{"back", U8}}},
    [GPU_OP_FENCE_STATUS] = {"fence_status", 1, {{"back", U8}}},
    [GPU_OP_FAULT_LOG] = {"fault_log", 1, {{"max", U16}}},
    [GPU_OP_FAULT_CLEAR] = {"fault_clear", 0, {{NULL, 0}}},
    [GPU_OP_INJECT] = {"inject", 2, {{"point", U8}, {"nth", U8}}},
    [GPU_OP_STATS] = {"stats", 0, {{NULL, 0}}},
    [GPU_OP_DETACH] = {"detach", 1, {{"seg", U8}}},
    [GPU_OP_SEGMENT_CREATE] = {"segment_create", 4, {{"kind", U8}, {"id", U8}, {"size", U16}, {"page", U32}}},
};

static unsigned field_bytes(gpu_field_type t) { return (unsigned)t; }

static uint32_t get_le(const uint8_t *p, unsigned n) {
  uint32_t v = 0;
  for (unsigned i = 0; i < n; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}

bool gpu_input_decode(const uint8_t *data, size_t size, gpu_input *out) {
  if (data == NULL || out == NULL || size < 2 || data[0] != GPU_INPUT_VERSION) return false;
  out->address_spaces = 1u + data[1] % 3u;
  out->op_count = 0;
  size_t pos = 2;
  while (pos < size && out->op_count < GPU_INPUT_MAX_OPS) {
    gpu_op op;
    memset(&op, 0, sizeof op);
    op.kind = (gpu_op_kind)(data[pos] % GPU_OP_COUNT);
    const gpu_op_desc *d = &gpu_op_table[op.kind];
    size_t need = 1;
    for (unsigned f = 0; f < d->field_count; f++) need += field_bytes(d->fields[f].type);
    if (size - pos < need) break; /* cut off: dropped */
    size_t at = pos + 1;
    for (unsigned f = 0; f < d->field_count; f++) {
      if (d->fields[f].type == GPU_F_VA) {
        op.va[f].base = data[at];
        op.va[f].value = get_le(data + at + 1, 4);
      } else {
        op.value[f] = get_le(data + at, field_bytes(d->fields[f].type));
      }
      at += field_bytes(d->fields[f].type);
    }
    out->ops[out->op_count++] = op;
    pos += need;
  }
  return true;
}

size_t gpu_input_encode(const gpu_input *in, uint8_t *out, size_t cap) {
  size_t need = 2;
  for (size_t i = 0; i < in->op_count; i++) {
    const gpu_op_desc *d = &gpu_op_table[in->ops[i].kind];
    need += 1;
    for (unsigned f = 0; f < d->field_count; f++) need += field_bytes(d->fields[f].type);
  }
  if (need > cap) return need;
  size_t at = 0;
  out[at++] = GPU_INPUT_VERSION;
  out[at++] = (uint8_t)(in->address_spaces - 1u);
  for (size_t i = 0; i < in->op_count; i++) {
    const gpu_op *op = &in->ops[i];
    const gpu_op_desc *d = &gpu_op_table[op->kind];
    out[at++] = (uint8_t)op->kind;
    for (unsigned f = 0; f < d->field_count; f++) {
      uint32_t v = op->value[f];
      unsigned n = field_bytes(d->fields[f].type);
      if (d->fields[f].type == GPU_F_VA) {
        out[at++] = op->va[f].base;
        v = op->va[f].value;
        n = 4;
      }
      for (unsigned b = 0; b < n; b++) out[at++] = (uint8_t)(v >> (8 * b));
    }
  }
  return need;
}

static int field_index(const gpu_op_desc *d, const char *name) {
  for (unsigned f = 0; f < d->field_count; f++) {
    if (strcmp(d->fields[f].name, name) == 0) return (int)f;
  }
  return -1;
}

uint32_t gpu_op_field(const gpu_op *op, const char *name) {
  int f = field_index(&gpu_op_table[op->kind], name);
  return f < 0 ? 0 : op->value[f];
}

gpu_va_operand gpu_op_va(const gpu_op *op, const char *name) {
  int f = field_index(&gpu_op_table[op->kind], name);
  gpu_va_operand none = {0, 0};
  return f < 0 ? none : op->va[f];
}

static void format_va(gpu_va_operand v, char *buf, size_t cap) {
  if (v.base < GPU_VA_SLOTS) {
    snprintf(buf, cap, "b%u+0x%" PRIx32, (unsigned)v.base, v.value);
  } else if (v.base == GPU_VA_BASE_TOP) {
    snprintf(buf, cap, "top-0x%" PRIx32, v.value);
  } else if (v.base == 0xffu) {
    snprintf(buf, cap, "0x%" PRIx32, v.value);
  } else {
    snprintf(buf, cap, "abs%u:0x%" PRIx32, (unsigned)v.base, v.value);
  }
}

void gpu_op_format(const gpu_op *op, char *buf, size_t cap) {
  const gpu_op_desc *d = &gpu_op_table[op->kind];
  size_t at = (size_t)snprintf(buf, cap, "%s", d->name);
  for (unsigned f = 0; f < d->field_count && at < cap; f++) {
    char v[48];
    if (d->fields[f].type == GPU_F_VA) {
      format_va(op->va[f], v, sizeof v);
    } else if (op->value[f] >= 4096u) {
      snprintf(v, sizeof v, "0x%" PRIx32, op->value[f]);
    } else {
      snprintf(v, sizeof v, "%" PRIu32, op->value[f]);
    }
    at += (size_t)snprintf(buf + at, cap - at, " %s=%s", d->fields[f].name, v);
  }
}

void gpu_input_print(const gpu_input *in, FILE *out) {
  fprintf(out, "gpu v%u address_spaces=%u\n", GPU_INPUT_VERSION, in->address_spaces);
  char line[256];
  for (size_t i = 0; i < in->op_count; i++) {
    gpu_op_format(&in->ops[i], line, sizeof line);
    fprintf(out, "%s\n", line);
  }
}

/* ---- Parsing ---------------------------------------------------------------------------------- */

static bool parse_number(const char *s, uint64_t max, uint32_t *out) {
  if (*s == '\0' || *s == '-' || *s == '+') return false;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno != 0 || *end != '\0' || v > max) return false;
  *out = (uint32_t)v;
  return true;
}

static bool parse_va(const char *s, gpu_va_operand *out) {
  uint32_t base, value;
  if (s[0] == 'b' && isdigit((unsigned char)s[1])) {
    char tmp[32];
    const char *plus = strchr(s, '+');
    size_t n = plus ? (size_t)(plus - s - 1) : strlen(s + 1);
    if (n == 0 || n >= sizeof tmp) return false;
    memcpy(tmp, s + 1, n);
    tmp[n] = '\0';
    if (!parse_number(tmp, GPU_VA_SLOTS - 1u, &base)) return false;
    value = 0;
    if (plus != NULL && !parse_number(plus + 1, UINT32_MAX, &value)) return false;
    *out = (gpu_va_operand){(uint8_t)base, value};
    return true;
  }
  if (strncmp(s, "top-", 4) == 0) {
    if (!parse_number(s + 4, UINT32_MAX, &value)) return false;
    *out = (gpu_va_operand){GPU_VA_BASE_TOP, value};
    return true;
  }
  if (strncmp(s, "abs", 3) == 0) {
    char *colon = strchr(s, ':');
    if (colon == NULL) return false;
    char tmp[8];
    size_t n = (size_t)(colon - s - 3);
    if (n == 0 || n >= sizeof tmp) return false;
    memcpy(tmp, s + 3, n);
    tmp[n] = '\0';
    if (!parse_number(tmp, 255, &base) || base < GPU_VA_SLOTS || base == GPU_VA_BASE_TOP) return false;
    if (!parse_number(colon + 1, UINT32_MAX, &value)) return false;
    *out = (gpu_va_operand){(uint8_t)base, value};
    return true;
  }
  if (!parse_number(s, UINT32_MAX, &value)) return false;
  *out = (gpu_va_operand){0xffu, value};
  return true;
}

__attribute__((format(printf, 4, 5))) static void set_err(char *err, size_t cap, unsigned line, const char *fmt, ...) {
  int n = snprintf(err, cap, "line %u: ", line);
  if (n < 0 || (size_t)n >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + n, cap - (size_t)n, fmt, ap);
  va_end(ap);
}

static uint64_t type_max(gpu_field_type t) {
  switch (t) {
  case GPU_F_U8: return 0xffu;
  case GPU_F_U16: return 0xffffu;
  case GPU_F_U24: return 0xffffffu;
  default: return 0xffffffffu;
  }
}

bool gpu_input_parse(const char *text, gpu_input *out, char *err, size_t err_cap) {
  memset(out, 0, sizeof *out);
  bool header = false;
  unsigned lineno = 0;
  const char *p = text;
  while (*p != '\0') {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char line[512];
    lineno++;
    if (len >= sizeof line) {
      set_err(err, err_cap, lineno, "line longer than %zu characters", sizeof line - 1);
      return false;
    }
    memcpy(line, p, len);
    line[len] = '\0';
    p = eol ? eol + 1 : p + len;
    char *hash = strchr(line, '#');
    if (hash != NULL) *hash = '\0';
    char *save = NULL;
    char *tok = strtok_r(line, " \t\r", &save);
    if (tok == NULL) continue;
    if (!header) {
      uint32_t as = 0;
      char *v = strtok_r(NULL, " \t\r", &save);
      char *a = strtok_r(NULL, " \t\r", &save);
      /* parse_number, not sscanf's %u: the whole value must be a number ("2x" is refused). */
      if (strcmp(tok, "gpu") != 0 || v == NULL || strcmp(v, "v1") != 0 || a == NULL ||
          strncmp(a, "address_spaces=", 15) != 0 || !parse_number(a + 15, 3, &as) || as < 1 ||
          strtok_r(NULL, " \t\r", &save) != NULL) {
        set_err(err, err_cap, lineno, "the first line must be `gpu v1 address_spaces=N` (N 1..3)");
        return false;
      }
      out->address_spaces = as;
      header = true;
      continue;
    }
    int kind = -1;
    for (int k = 0; k < GPU_OP_COUNT; k++) {
      if (strcmp(gpu_op_table[k].name, tok) == 0) kind = k;
    }
    if (kind < 0) {
      set_err(err, err_cap, lineno, "unknown op '%s'", tok);
      return false;
    }
    if (out->op_count >= GPU_INPUT_MAX_OPS) {
      set_err(err, err_cap, lineno, "more than %u ops", GPU_INPUT_MAX_OPS);
      return false;
    }
    gpu_op *op = &out->ops[out->op_count];
    memset(op, 0, sizeof *op);
    op->kind = (gpu_op_kind)kind;
    const gpu_op_desc *d = &gpu_op_table[kind];
    unsigned fields_seen = 0; /* bit f: field f given (a second value would silently win) */
    while ((tok = strtok_r(NULL, " \t\r", &save)) != NULL) {
      char *eq = strchr(tok, '=');
      if (eq == NULL) {
        set_err(err, err_cap, lineno, "'%s' is not field=value", tok);
        return false;
      }
      *eq = '\0';
      int f = field_index(d, tok);
      if (f < 0) {
        set_err(err, err_cap, lineno, "%s has no field '%s'", d->name, tok);
        return false;
      }
      if (fields_seen & (1u << f)) {
        set_err(err, err_cap, lineno, "%s: field '%s' given twice", d->name, tok);
        return false;
      }
      fields_seen |= 1u << f;
      bool ok = d->fields[f].type == GPU_F_VA ? parse_va(eq + 1, &op->va[f])
                                             : parse_number(eq + 1, type_max(d->fields[f].type), &op->value[f]);
      if (!ok) {
        set_err(err, err_cap, lineno, "%s %s: bad value '%s'", d->name, tok, eq + 1);
        return false;
      }
    }
    out->op_count++;
  }
  if (!header) {
    set_err(err, err_cap, lineno, "no `gpu v1 address_spaces=N` line");
    return false;
  }
  return true;
}
