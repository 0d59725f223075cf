/*
 * schedules_input.c — the schedules target's input: bytes and text (schedules_input.h).
 */
#include "fuzz/targets/schedules_input.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/input.h"
#include "fuzz/common/text.h"

bool fzs_decode(const uint8_t *data, size_t size, fzs_input *out) {
  size_t at = 0;
  out->version = 1;
  out->choice_count = 0;
  out->preemption_count = 0;
  if (size >= 5 && memcmp(data, FZS_MAGIC, 4) == 0 && data[4] == FZS_VERSION_2) {
    out->version = FZS_VERSION_2;
    at = 5;
  }
#define NEXT_BYTE() (at < size ? data[at++] : 0u)
  out->threads = 2u + NEXT_BYTE() % 3u;
  out->fork = NEXT_BYTE();
  if (out->version == FZS_VERSION_2) {
    uint32_t n = NEXT_BYTE();
    out->preemption_count = n < FZS_MAX_PREEMPTIONS ? n : FZS_MAX_PREEMPTIONS;
    for (uint32_t i = 0; i < out->preemption_count; i++) {
      fz_preemption *pre = &out->preemptions[i];
      pre->thread = NEXT_BYTE() % out->threads;
      pre->after = NEXT_BYTE() + 1u;
      pre->to = NEXT_BYTE() % out->threads;
    }
  } else {
    out->choice_count = NEXT_BYTE();
    for (uint32_t i = 0; i < out->choice_count; i++) out->choices[i] = (uint8_t)NEXT_BYTE();
  }
#undef NEXT_BYTE
  return fz_decode(data + at, size - at, &out->program);
}

static bool schedule_valid(const fzs_input *in) {
  if (in->threads < 2 || in->threads > 4 || in->fork > 255) return false;
  if (in->version == FZS_VERSION_2) {
    if (in->preemption_count > FZS_MAX_PREEMPTIONS) return false;
    for (uint32_t i = 0; i < in->preemption_count; i++) {
      const fz_preemption *pre = &in->preemptions[i];
      if (pre->thread >= in->threads || pre->to >= in->threads || pre->after < 1 || pre->after > FZS_MAX_AFTER)
        return false;
    }
    return true;
  }
  return in->version == 1 && in->choice_count <= FZS_MAX_CHOICES;
}

size_t fzs_encode(const fzs_input *in, uint8_t *buf, size_t cap) {
  if (!schedule_valid(in)) return 0;
  bool v2 = in->version == FZS_VERSION_2;
  size_t head = v2 ? 5u + 3u + 3u * in->preemption_count : 3u + in->choice_count;
  if (cap < head) return 0;
  size_t at = 0;
  if (v2) {
    memcpy(buf, FZS_MAGIC, 4);
    buf[4] = FZS_VERSION_2;
    at = 5;
  }
  buf[at++] = (uint8_t)(in->threads - 2u);
  buf[at++] = (uint8_t)in->fork;
  if (v2) {
    buf[at++] = (uint8_t)in->preemption_count;
    for (uint32_t i = 0; i < in->preemption_count; i++) {
      buf[at++] = (uint8_t)in->preemptions[i].thread;
      buf[at++] = (uint8_t)(in->preemptions[i].after - 1u);
      buf[at++] = (uint8_t)in->preemptions[i].to;
    }
  } else {
    buf[at++] = (uint8_t)in->choice_count;
    memcpy(buf + at, in->choices, in->choice_count);
    at += in->choice_count;
  }
  size_t n = fz_encode(&in->program, buf + head, cap - head);
  return n == 0 ? 0 : head + n;
}

size_t fzs_format_schedule(const fzs_input *in, char *buf, size_t cap) {
  size_t len = 0;
#define PUT(...)                                                                  \
  do {                                                                            \
    const bool room_ = buf != NULL && len < cap;                                  \
    int w_ = snprintf(room_ ? buf + len : NULL, room_ ? cap - len : 0, __VA_ARGS__); \
    if (w_ > 0) len += (size_t)w_;                                                \
  } while (0)
  if (buf != NULL && cap) buf[0] = '\0';
  PUT("schedule(threads=%u, fork=%u, ", in->threads, in->fork);
  if (in->version == FZS_VERSION_2) {
    PUT("preempt=[");
    for (uint32_t i = 0; i < in->preemption_count; i++)
      PUT("%st%u@%u->t%u", i ? ", " : "", in->preemptions[i].thread, in->preemptions[i].after, in->preemptions[i].to);
  } else {
    PUT("choices=[");
    for (uint32_t i = 0; i < in->choice_count; i++) PUT("%s%u", i ? ", " : "", in->choices[i]);
  }
  PUT("])");
#undef PUT
  return len;
}

/* ---- Mutation ---------------------------------------------------------------------------- */

static uint32_t next_random(uint32_t *state) {
  uint32_t x = *state ? *state : 0x9E3779B9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x;
}

static uint32_t below(uint32_t *rng, uint32_t n) { return n ? next_random(rng) % n : 0; }

/* A fresh preemption: early points are where shallow races are (most calls take a few locks). */
static fz_preemption random_preemption(const fzs_input *in, uint32_t *rng) {
  fz_preemption pre = {.thread = below(rng, in->threads), .after = 1u + below(rng, 24), .to = below(rng, in->threads)};
  return pre;
}

static void mutate_v1(fzs_input *in, uint32_t *rng) {
  switch (below(rng, 3)) {
  case 0: /* the same threads and program, interleaved by one preemption instead */
    in->version = FZS_VERSION_2;
    in->choice_count = 0;
    in->preemptions[0] = random_preemption(in, rng);
    in->preemption_count = 1;
    return;
  case 1: /* one choice to another thread */
    if (in->choice_count) {
      uint32_t i = below(rng, in->choice_count);
      in->choices[i] = (uint8_t)((in->choices[i] + 1u + below(rng, in->threads - 1u)) % in->threads);
      return;
    }
    break; /* no choice to change: add one */
  default:
    break;
  }
  /* one more choice at the end (the running thread's next point) */
  if (in->choice_count < FZS_MAX_CHOICES) in->choices[in->choice_count++] = (uint8_t)below(rng, in->threads);
  else in->choices[below(rng, in->choice_count)] ^= 1u;
}

static void mutate_v2(fzs_input *in, uint32_t *rng) {
  uint32_t n = in->preemption_count;
  fz_preemption *pre = n ? &in->preemptions[below(rng, n)] : NULL;
  switch (below(rng, 8)) {
  case 0:
  case 1:
  case 2: { /* move one switch point a little (the most useful step: next to a lock point) */
    if (pre == NULL) break;
    uint32_t step = 1u + below(rng, 3);
    if (below(rng, 2) && pre->after > step) pre->after -= step;
    else if (pre->after + step <= FZS_MAX_AFTER) pre->after += step;
    else pre->after -= step;
    return;
  }
  case 3: /* switch to another thread */
    if (pre == NULL || in->threads < 2) break;
    pre->to = (pre->to + 1u + below(rng, in->threads - 1u)) % in->threads;
    return;
  case 4: /* preempt another thread at the same point */
    if (pre == NULL) break;
    pre->thread = (pre->thread + 1u + below(rng, in->threads - 1u)) % in->threads;
    return;
  case 5: /* drop one; the others keep their order (of two at one point, the first wins) */
    if (pre == NULL) break;
    memmove(pre, pre + 1, (size_t)(&in->preemptions[n - 1] - pre) * sizeof *pre);
    in->preemption_count--;
    return;
  case 6: /* fork one call earlier or later: the split between setup and race moves */
    if (below(rng, 2) && in->fork > 0) in->fork--;
    else if (in->fork < 255) in->fork++;
    return;
  default:
    break;
  }
  /* add one */
  if (n < FZS_MAX_PREEMPTIONS) in->preemptions[in->preemption_count++] = random_preemption(in, rng);
  else in->preemptions[below(rng, n)] = random_preemption(in, rng);
}

void fzs_mutate_schedule(fzs_input *in, uint32_t *rng) {
  if (in->version == FZS_VERSION_2) mutate_v2(in, rng);
  else mutate_v1(in, rng);
}

/* Static: an input holds a program (~80 KiB), too big for libFuzzer's stack. */
static fzs_input mutated;
static uint8_t mutated_bytes[1u << 16];

size_t fzs_mutate(uint8_t *data, size_t size, size_t max_size, unsigned seed, fz_mutate_bytes_fn mutate_bytes) {
  bool bytes = mutate_bytes != NULL && (seed & 1u) == 0;
  if (!bytes && fzs_decode(data, size, &mutated)) {
    if (seed & 2u) {
      uint64_t rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull | 1u;
      fz_mutate_program(&mutated.program, &rng, mutate_bytes);
    } else {
      uint32_t rng = seed | 1u;
      fzs_mutate_schedule(&mutated, &rng);
    }
    size_t n = fzs_encode(&mutated, mutated_bytes, sizeof mutated_bytes);
    if (n != 0 && n <= max_size) {
      memcpy(data, mutated_bytes, n);
      return n;
    }
  }
  return mutate_bytes != NULL ? mutate_bytes(data, size, max_size) : size;
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

/* Reads a list "[...]" of @item, separated by commas; advances *s past ']'. */
static bool parse_list(const char **s, fzs_input *out, bool (*item)(const char **, fzs_input *, char *, size_t, unsigned),
                       const char *what, char *err, size_t cap, unsigned line) {
  if (!expect_char(s, '[', err, cap, line)) return false;
  const char *p = *s;
  while (*p == ' ') p++;
  while (*p != ']') {
    if (!item(&p, out, err, cap, line)) return false;
    while (*p == ' ') p++;
    if (*p == ',') {
      p++;
      while (*p == ' ') p++;
    } else if (*p != ']') {
      snprintf(err, cap, "line %u: schedule(...): expected ',' or ']' in %s", line, what);
      return false;
    }
  }
  *s = p + 1;
  return true;
}

static bool parse_choice(const char **s, fzs_input *out, char *err, size_t cap, unsigned line) {
  if (out->choice_count == FZS_MAX_CHOICES) {
    snprintf(err, cap, "line %u: schedule(...): more than %u choices", line, FZS_MAX_CHOICES);
    return false;
  }
  char *end;
  errno = 0;
  unsigned long v = strtoul(*s, &end, 10);
  if (end == *s || errno != 0 || v > 255 || **s == '-') {
    snprintf(err, cap, "line %u: schedule(...): a choice must be a number from 0 to 255", line);
    return false;
  }
  out->choices[out->choice_count++] = (uint8_t)v;
  *s = end;
  return true;
}

/* "t<thread>" with thread < out->threads; advances *s. */
static bool parse_thread(const char **s, const fzs_input *out, uint32_t *thread, char *err, size_t cap,
                         unsigned line) {
  const char *p = *s;
  char *end = NULL;
  errno = 0;
  unsigned long v = p[0] == 't' && p[1] >= '0' && p[1] <= '9' ? strtoul(p + 1, &end, 10) : ULONG_MAX;
  if (v >= out->threads || errno != 0) {
    snprintf(err, cap, "line %u: schedule(...): a preemption names threads t0 to t%u (as in t0@3->t1)", line,
             out->threads - 1u);
    return false;
  }
  *thread = (uint32_t)v;
  *s = end;
  return true;
}

/* "t<thread>@<after>->t<to>". */
static bool parse_preemption(const char **s, fzs_input *out, char *err, size_t cap, unsigned line) {
  if (out->preemption_count == FZS_MAX_PREEMPTIONS) {
    snprintf(err, cap, "line %u: schedule(...): more than %u preemptions", line, FZS_MAX_PREEMPTIONS);
    return false;
  }
  fz_preemption *pre = &out->preemptions[out->preemption_count];
  if (!parse_thread(s, out, &pre->thread, err, cap, line)) return false;
  const char *p = *s;
  char *end = NULL;
  errno = 0;
  unsigned long after = *p == '@' && p[1] >= '0' && p[1] <= '9' ? strtoul(p + 1, &end, 10) : 0;
  if (after < 1 || after > FZS_MAX_AFTER || errno != 0) {
    snprintf(err, cap, "line %u: schedule(...): a preemption's point (t0@K->t1) must be a number from 1 to %u",
             line, FZS_MAX_AFTER);
    return false;
  }
  pre->after = (uint32_t)after;
  if (strncmp(end, "->", 2) != 0) {
    snprintf(err, cap, "line %u: schedule(...): expected '->' in a preemption (t0@3->t1)", line);
    return false;
  }
  *s = end + 2;
  if (!parse_thread(s, out, &pre->to, err, cap, line)) return false;
  out->preemption_count++;
  return true;
}

static bool parse_choices(const char **s, fzs_input *out, char *err, size_t cap, unsigned line) {
  return parse_list(s, out, parse_choice, "choices", err, cap, line);
}

static bool parse_preemptions(const char **s, fzs_input *out, char *err, size_t cap, unsigned line) {
  return parse_list(s, out, parse_preemption, "preempt", err, cap, line);
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
  out->threads = (uint32_t)threads;
  out->version = 1;
  if (strncmp(s, "preempt=", 8) == 0) {
    out->version = FZS_VERSION_2;
    s += 8;
    if (!parse_preemptions(&s, out, err, cap, number)) return false;
  } else if (strncmp(s, "choices=", 8) != 0) {
    snprintf(err, cap, "line %u: schedule(...) needs 'choices=[...]' or 'preempt=[...]'", number);
    return false;
  } else {
    s += 8;
    if (!parse_choices(&s, out, err, cap, number)) return false;
  }
  if (!expect_char(&s, ')', err, cap, number)) return false;
  while (*s == ' ' || *s == '\t' || *s == '\r') s++;
  if (*s != '\n' && *s != '\0') {
    snprintf(err, cap, "line %u: unexpected text after schedule(...)", number);
    return false;
  }
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
