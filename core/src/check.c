/* check.c — the invariant walks' report format (see check.h). */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>

bool check_fail(char *msg, size_t cap, const char *fmt, ...) {
  if (msg && cap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
  }
  return false;
}
