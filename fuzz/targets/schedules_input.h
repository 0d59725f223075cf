/*
 * schedules_input.h — the input of the `schedules` fuzz target: a schedule, then a program.
 *
 * DOC: Format
 *   input    := threads:u8 fork:u8 n:u8 choice:u8*n program
 * threads = 2 + (byte % 3) logical threads (2..4); fork = how many of the program's first calls
 * run alone before the threads start (clamped to the program); choice = the scheduler's choice
 * bytes (alloclab/fuzz/scheduler.h); program = a program input (alloclab/fuzz/input.h: any
 * bytes). Reading past the end yields zero bytes, as everywhere, so any bytes are an input.
 * Calls fork, fork+1, ... run on threads 0, 1, ... in turn (fz_execute_concurrent).
 *
 * Text form (schedules_text): the program's text form (text.h) with one more line before the
 * first call:
 *   schedule(threads=3, fork=4, choices=[0, 1, 1, 2])
 */
#ifndef ALLOCLAB_FUZZ_TARGETS_SCHEDULES_INPUT_H
#define ALLOCLAB_FUZZ_TARGETS_SCHEDULES_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/fuzz/program.h"

#define FZS_MAX_CHOICES 255u

typedef struct fzs_input {
  uint32_t threads; /* 2..4 */
  uint32_t fork;    /* as read (0..255); fz_execute_concurrent clamps it */
  uint32_t choice_count;
  uint8_t choices[FZS_MAX_CHOICES];
  fz_program program;
} fzs_input;

/* Decodes any bytes; false only when the program part has an unsupported format version. */
bool fzs_decode(const uint8_t *data, size_t size, fzs_input *out);

/* Writes @in's bytes into @buf; returns the size (0 when @cap is too small or @in is invalid:
 * threads outside 2..4, fork above 255). */
size_t fzs_encode(const fzs_input *in, uint8_t *buf, size_t cap);

/* Parses the text form; false with a message naming the line in @err. */
bool fzs_parse(const char *text, fzs_input *out, char *err, size_t cap);

#endif /* ALLOCLAB_FUZZ_TARGETS_SCHEDULES_INPUT_H */
