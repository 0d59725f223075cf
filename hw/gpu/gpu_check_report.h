/*
 * gpu_check_report.h (private to hw/gpu) — how gpu_segment_check and gpu_as_check report: each
 * finding is appended to the caller's buffer, "; " between findings, cut at the buffer's end
 * with a NUL; nothing is printed.
 */
#ifndef ALLOCLAB_HW_GPU_CHECK_REPORT_H
#define ALLOCLAB_HW_GPU_CHECK_REPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Records a finding: *@ok becomes false and the finding is appended to @msg (NULL or @cap 0:
 * nothing kept). */
__attribute__((format(printf, 4, 5))) static inline void gpu_check_fail(bool *ok, char *msg, size_t cap,
                                                                        const char *fmt, ...) {
  *ok = false;
  if (msg == NULL || cap == 0) return;
  size_t used = strlen(msg);
  if (used > 0 && used + 2 < cap) {
    memcpy(msg + used, "; ", 3);
    used += 2;
  }
  if (used + 1 >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + used, cap - used, fmt, ap);
  va_end(ap);
}

#endif /* ALLOCLAB_HW_GPU_CHECK_REPORT_H */
