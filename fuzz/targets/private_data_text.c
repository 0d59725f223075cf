/*
 * private_data_text.c — the text form of private_data inputs (SIM_ALLOCATION_DATA bytes), so
 * that its seeds are written and reviewed as text, like the programs of the other targets.
 *
 *   private_data_text encode IN.txt OUT.bin    text -> input bytes
 *   private_data_text trace FILE...            input bytes -> text (what encode reads back)
 *
 * Text: one `key = value` a line; blank lines and `#` comments are ignored. Keys, each at most
 * once, the 56-byte wire format's fields in order (alloclab/hw/sim_miniport.h):
 *   magic version kind format width height pitch usage placement alignment priority
 * then `size` (the input's length: below 56 cuts the fields' bytes, above 56 appends `tail` and
 * then zero bytes) and `tail` (hex bytes after the 56, e.g. `tail = 00ff`).
 * Values: numbers (decimal or 0x hex, up to 64 bits; 32-bit fields take the low 32 bits only
 * when the value fits); kind: buffer | texture2d | number; placement: any | memory_only |
 * aperture_only | number; usage: names joined by | (cpu_visible, render_target, shader_read,
 * shader_write, cpu_cached) or a number. Omitted keys: magic and version valid, the others 0,
 * size 56.
 * trace prints every field (names where they exist), then size when it is not 56 and tail when
 * the input is longer than 56; encode(trace(x)) == x for every input x.
 * Exit status: 0, 1 on an error (named with file and line), 2 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/hw/sim_miniport.h"

#define MAX_TAIL 4096u

typedef struct field {
  const char *key;
  unsigned offset;
  unsigned width; /* 4 or 8 */
} field;

static const field fields[] = {
    {"magic", 0, 4},  {"version", 4, 4}, {"kind", 8, 4},   {"format", 12, 4},
    {"width", 16, 8}, {"height", 24, 8}, {"pitch", 32, 8}, {"usage", 40, 4},
    {"placement", 44, 4}, {"alignment", 48, 4}, {"priority", 52, 4},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static const char *const kinds[] = {NULL, "buffer", "texture2d"};
static const char *const placements[] = {"any", "memory_only", "aperture_only"};
static const char *const usages[] = {"cpu_visible", "render_target", "shader_read", "shader_write", "cpu_cached"};

static void put(uint8_t *b, unsigned width, uint64_t v) {
  for (unsigned i = 0; i < width; i++) b[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get(const uint8_t *b, unsigned width) {
  uint64_t v = 0;
  for (unsigned i = 0; i < width; i++) v |= (uint64_t)b[i] << (8 * i);
  return v;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
  return s;
}

static bool number(const char *s, uint64_t *out) {
  if (*s == '\0' || *s == '-' || *s == '+') return false;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

static bool named(const char *s, const char *const *names, size_t n, uint64_t *out) {
  for (size_t i = 0; i < n; i++) {
    if (names[i] != NULL && strcmp(s, names[i]) == 0) {
      *out = i;
      return true;
    }
  }
  return number(s, out);
}

static bool usage_value(char *s, uint64_t *out) {
  if (number(s, out)) return true;
  uint64_t v = 0;
  for (char *part = strtok(s, "|"); part != NULL; part = strtok(NULL, "|")) {
    part = trim(part);
    size_t i = 0;
    while (i < 5 && strcmp(part, usages[i]) != 0) i++;
    if (i == 5) return false;
    v |= 1u << i;
  }
  *out = v;
  return true;
}

static int encode(const char *in, const char *out) {
  FILE *f = fopen(in, "r");
  if (f == NULL) {
    fprintf(stderr, "private_data_text: cannot read '%s': %s\n", in, strerror(errno));
    return 1;
  }
  uint8_t bytes[SIM_ALLOCATION_DATA_SIZE + MAX_TAIL];
  memset(bytes, 0, sizeof bytes);
  put(bytes + 0, 4, SIM_ALLOCATION_MAGIC);
  put(bytes + 4, 4, SIM_ALLOCATION_VERSION);
  bool seen[NFIELDS + 2] = {false};
  uint64_t size = SIM_ALLOCATION_DATA_SIZE;
  size_t tail = 0;
  char line[8192];
  unsigned lineno = 0;
  int status = 0;
  while (status == 0 && fgets(line, sizeof line, f) != NULL) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *s = trim(line);
    if (*s == '\0') continue;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
      fprintf(stderr, "private_data_text: %s: line %u: expected 'key = value'\n", in, lineno);
      status = 1;
      break;
    }
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    size_t k = 0;
    while (k < NFIELDS && strcmp(key, fields[k].key) != 0) k++;
    if (k == NFIELDS && strcmp(key, "size") == 0) k = NFIELDS;
    else if (k == NFIELDS && strcmp(key, "tail") == 0) k = NFIELDS + 1;
    else if (k == NFIELDS) {
      fprintf(stderr, "private_data_text: %s: line %u: unknown key '%s'\n", in, lineno, key);
      status = 1;
      break;
    }
    if (seen[k]) {
      fprintf(stderr, "private_data_text: %s: line %u: '%s' given twice\n", in, lineno, key);
      status = 1;
      break;
    }
    seen[k] = true;
    uint64_t v = 0;
    bool ok;
    if (k == NFIELDS + 1) {
      size_t n = strlen(value);
      ok = n % 2 == 0 && n / 2 <= MAX_TAIL;
      for (size_t i = 0; ok && i < n; i += 2) {
        char hex[3] = {value[i], value[i + 1], '\0'};
        char *end;
        unsigned long b = strtoul(hex, &end, 16);
        ok = *end == '\0' && hex[0] != '-' && hex[0] != '+' && hex[0] != ' ';
        bytes[SIM_ALLOCATION_DATA_SIZE + i / 2] = (uint8_t)b;
      }
      tail = n / 2;
    } else if (k == NFIELDS) {
      ok = number(value, &size) && size <= SIM_ALLOCATION_DATA_SIZE + MAX_TAIL;
    } else {
      const char *key_name = fields[k].key;
      if (strcmp(key_name, "kind") == 0) ok = named(value, kinds, 3, &v);
      else if (strcmp(key_name, "placement") == 0) ok = named(value, placements, 3, &v);
      else if (strcmp(key_name, "usage") == 0) ok = usage_value(value, &v);
      else ok = number(value, &v);
      ok = ok && (fields[k].width == 8 || v <= UINT32_MAX);
      if (ok) put(bytes + fields[k].offset, fields[k].width, v);
    }
    if (!ok) {
      fprintf(stderr, "private_data_text: %s: line %u: bad value for '%s'\n", in, lineno, key);
      status = 1;
    }
  }
  fclose(f);
  if (status != 0) return status;
  if (!seen[NFIELDS]) size = SIM_ALLOCATION_DATA_SIZE + tail;
  if (tail != 0 && size < SIM_ALLOCATION_DATA_SIZE + tail) {
    fprintf(stderr, "private_data_text: %s: size %" PRIu64 " is shorter than the 56 bytes and the tail\n", in, size);
    return 1;
  }
  FILE *o = fopen(out, "wb");
  if (o == NULL) {
    fprintf(stderr, "private_data_text: cannot write '%s': %s\n", out, strerror(errno));
    return 1;
  }
  size_t w = fwrite(bytes, 1, (size_t)size, o);
  if (fclose(o) != 0 || w != size) {
    fprintf(stderr, "private_data_text: cannot write '%s'\n", out);
    remove(out);
    return 1;
  }
  return 0;
}

static int trace(const char *path, bool first) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "private_data_text: cannot read '%s': %s\n", path, strerror(errno));
    return 1;
  }
  uint8_t bytes[SIM_ALLOCATION_DATA_SIZE + MAX_TAIL + 1];
  memset(bytes, 0, sizeof bytes);
  size_t size = fread(bytes, 1, sizeof bytes, f);
  bool error = ferror(f) != 0;
  fclose(f);
  if (error || size > SIM_ALLOCATION_DATA_SIZE + MAX_TAIL) {
    fprintf(stderr, "private_data_text: %s: %s\n", path, error ? "read error" : "longer than 56 + 4096 bytes");
    return 1;
  }
  if (!first) printf("\n");
  printf("# %s: %zu bytes\n", path, size);
  for (size_t k = 0; k < NFIELDS; k++) {
    uint64_t v = get(bytes + fields[k].offset, fields[k].width);
    const char *key = fields[k].key;
    if (strcmp(key, "kind") == 0 && v >= 1 && v <= 2) {
      printf("kind = %s\n", kinds[v]);
    } else if (strcmp(key, "placement") == 0 && v <= 2) {
      printf("placement = %s\n", placements[v]);
    } else if (strcmp(key, "usage") == 0 && v != 0 && (v & ~(uint64_t)0x1F) == 0) {
      printf("usage = ");
      const char *sep = "";
      for (unsigned i = 0; i < 5; i++)
        if (v & (1u << i)) {
          printf("%s%s", sep, usages[i]);
          sep = "|";
        }
      printf("\n");
    } else if (strcmp(key, "magic") == 0 || strcmp(key, "usage") == 0 || strcmp(key, "priority") == 0 ||
               v > 0xFFFF) {
      printf("%s = 0x%" PRIx64 "\n", key, v);
    } else {
      printf("%s = %" PRIu64 "\n", key, v);
    }
  }
  if (size != SIM_ALLOCATION_DATA_SIZE) printf("size = %zu\n", size);
  if (size > SIM_ALLOCATION_DATA_SIZE) {
    printf("tail = ");
    for (size_t i = SIM_ALLOCATION_DATA_SIZE; i < size; i++) printf("%02x", bytes[i]);
    printf("\n");
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "encode") == 0) return encode(argv[2], argv[3]);
  if (argc >= 3 && strcmp(argv[1], "trace") == 0) {
    int status = 0;
    for (int i = 2; i < argc; i++)
      if (trace(argv[i], i == 2) != 0) status = 1;
    return status;
  }
  fprintf(stderr, "usage: private_data_text encode IN.txt OUT.bin\n"
                  "       private_data_text trace FILE...\n"
                  "The text form of private_data fuzz inputs (SIM_ALLOCATION_DATA bytes).\n");
  return 2;
}
