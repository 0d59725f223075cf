/*
 * schedules_input.c — the schedules target's input: bytes and text (schedules_input.h).
 */
#include "fuzz/targets/schedules_input.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/input.h"
#include "fuzz/common/text.h"

bool fzs_decode(const uint8_t *data, size_t size, fzs_input *out) {
  size_t at = 0;
#define NEXT_BYTE() (at < size ? data[at++] : 0u)
  out->threads = 2u + NEXT_BYTE() % 3u;
  out->fork = NEXT_BYTE();
  out->choice_count = NEXT_BYTE();
  for (uint32_t i = 0; i < out->choice_count; i++) out->choices[i] = (uint8_t)NEXT_BYTE();
#undef NEXT_BYTE
  return fz_decode(data + at, size - at, &out->program);
}

size_t fzs_encode(const fzs_input *in, uint8_t *buf, size_t cap) {
  if (in->threads < 2 || in->threads > 4 || in->fork > 255 || in->choice_count > FZS_MAX_CHOICES) return 0;
  size_t head = 3u + in->choice_count;
  if (cap < head) return 0;
  buf[0] = (uint8_t)(in->threads - 2u);
  buf[1] = (uint8_t)in->fork;
  buf[2] = (uint8_t)in->choice_count;
  memcpy(buf + 3, in->choices, in->choice_count);
  size_t n = fz_encode(&in->program, buf + head, cap - head);
  return n == 0 ? 0 : head + n;
}

/* Reads "key=" then a number; advances *s. */
static bool parse_number(const char **s, const char *key, unsigned long max, unsigned long *out, char *err,
                         size_t cap, unsigned line) {
  const char *p = *s;
  while (*p == ' ' || *p == '\t') p++;
  size_t klen = strlen(key);
  if (strncmp(p, key, klen) != 0 || p[klen] != '=') {
    snprintf(err, cap, "line %u: schedule(...) needs '%s=' here", line, key);
    return false;
  }
  p += klen + 1;
  char *end;
  errno = 0;
  unsigned long v = strtoul(p, &end, 10);
  if (end == p || errno != 0 || v > max || *p == '-') {
    snprintf(err, cap, "line %u: schedule(...): %s must be a number from 0 to %lu", line, key, max);
    return false;
  }
  *out = v;
  *s = end;
  return true;
}

static bool expect_char(const char **s, char c, char *err, size_t cap, unsigned line) {
  const char *p = *s;
  while (*p == ' ' || *p == '\t') p++;
  if (*p != c) {
    snprintf(err, cap, "line %u: schedule(...): expected '%c'", line, c);
    return false;
  }
  *s = p + 1;
  return true;
}

bool fzs_parse(const char *text, fzs_input *out, char *err, size_t cap) {
  memset(out, 0, sizeof *out);
  /* Find the schedule line: the first line that is neither blank nor a comment. */
  const char *line = text;
  unsigned number = 1;
  for (;;) {
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0') {
      snprintf(err, cap, "no schedule(threads=..., fork=..., choices=[...]) line before the program");
      return false;
    }
    if (*p != '\n' && *p != '#' && *p != '\r') break;
    const char *nl = strchr(line, '\n');
    if (nl == NULL) {
      snprintf(err, cap, "no schedule(threads=..., fork=..., choices=[...]) line before the program");
      return false;
    }
    line = nl + 1;
    number++;
  }
  const char *s = line;
  while (*s == ' ' || *s == '\t') s++;
  if (strncmp(s, "schedule(", 9) != 0) {
    snprintf(err, cap, "line %u: the first line must be schedule(threads=..., fork=..., choices=[...])", number);
    return false;
  }
  s += 9;
  unsigned long threads, fork;
  if (!parse_number(&s, "threads", 4, &threads, err, cap, number)) return false;
  if (threads < 2) {
    snprintf(err, cap, "line %u: schedule(...): threads must be 2, 3 or 4", number);
    return false;
  }
  if (!expect_char(&s, ',', err, cap, number) || !parse_number(&s, "fork", 255, &fork, err, cap, number) ||
      !expect_char(&s, ',', err, cap, number))
    return false;
  while (*s == ' ') s++;
  if (strncmp(s, "choices=", 8) != 0) {
    snprintf(err, cap, "line %u: schedule(...) needs 'choices=[...]'", number);
    return false;
  }
  s += 8;
  if (!expect_char(&s, '[', err, cap, number)) return false;
  while (*s == ' ') s++;
  while (*s != ']') {
    if (out->choice_count == FZS_MAX_CHOICES) {
      snprintf(err, cap, "line %u: schedule(...): more than %u choices", number, FZS_MAX_CHOICES);
      return false;
    }
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || errno != 0 || v > 255 || *s == '-') {
      snprintf(err, cap, "line %u: schedule(...): a choice must be a number from 0 to 255", number);
      return false;
    }
    out->choices[out->choice_count++] = (uint8_t)v;
    s = end;
    while (*s == ' ') s++;
    if (*s == ',') {
      s++;
      while (*s == ' ') s++;
    } else if (*s != ']') {
      snprintf(err, cap, "line %u: schedule(...): expected ',' or ']' in choices", number);
      return false;
    }
  }
  s++;
  if (!expect_char(&s, ')', err, cap, number)) return false;
  while (*s == ' ' || *s == '\t' || *s == '\r') s++;
  if (*s != '\n' && *s != '\0') {
    snprintf(err, cap, "line %u: unexpected text after schedule(...)", number);
    return false;
  }
  out->threads = (uint32_t)threads;
  out->fork = (uint32_t)fork;
  /* The program: the text with the schedule line blanked, so its line numbers stay right. */
  size_t len = strlen(text);
  char *copy = malloc(len + 1);
  if (copy == NULL) {
    snprintf(err, cap, "out of host memory");
    return false;
  }
  memcpy(copy, text, len + 1);
  for (char *c = copy + (line - text); *c != '\n' && *c != '\0'; c++) *c = ' ';
  bool ok = fz_parse_program(copy, &out->program, err, cap);
  free(copy);
  return ok;
}
