/* al_test.c — the runner behind al_test.h. */
#include "al_test.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static jmp_buf current_test_exit;
static int current_failures;
static const char *current_skip;

bool al_test_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  current_failures++;
  return false;
}

_Noreturn void al_test_abort_current(void) { longjmp(current_test_exit, 1); }

void al_test_skip(const char *why) { current_skip = why; }

uint64_t al_test_seed(void) {
  static uint64_t seed;
  static bool chosen;
  if (!chosen) {
    const char *env = getenv("AL_TEST_SEED");
    seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    chosen = true;
    fprintf(stderr, "random seed: AL_TEST_SEED=%llu\n", (unsigned long long)seed);
  }
  return seed;
}

bool al_test_expect_death_impl(const char *file, int line, void (*fn)(void *), void *arg,
                               const char *needle) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return al_test_fail(file, line, "expect_death: pipe failed");
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return al_test_fail(file, line, "expect_death: fork failed");
  if (pid == 0) {
    close(pipe_fds[0]);
    dup2(pipe_fds[1], STDERR_FILENO);
    signal(SIGABRT, SIG_DFL);
    fn(arg);
    _exit(0);
  }
  close(pipe_fds[1]);
  char output[8192];
  size_t used = 0;
  ssize_t got;
  while ((got = read(pipe_fds[0], output + used, sizeof output - 1 - used)) > 0) {
    used += (size_t)got;
    if (used == sizeof output - 1) break;
  }
  output[used] = '\0';
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  bool died = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
  if (!died)
    return al_test_fail(file, line, "expected the call to abort with \"%s\"; it returned. stderr:\n%s",
                        needle, output);
  if (strstr(output, needle) == NULL)
    return al_test_fail(file, line, "the call aborted, but its stderr lacks \"%s\":\n%s", needle,
                        output);
  return true;
}

int al_test_main(int argc, char **argv, const al_test_case *cases, size_t count) {
  const char *filter = argc > 1 ? argv[1] : NULL;
  /* volatile: live across the setjmp below */
  volatile int passed = 0, failed = 0, skipped = 0;
  for (volatile size_t i = 0; i < count; i++) {
    if (filter && strstr(cases[i].name, filter) == NULL) continue;
    current_failures = 0;
    current_skip = NULL;
    fprintf(stderr, "[ RUN      ] %s\n", cases[i].name);
    if (setjmp(current_test_exit) == 0) cases[i].fn();
    if (current_failures) {
      failed++;
      fprintf(stderr, "[  FAILED  ] %s\n", cases[i].name);
    } else if (current_skip) {
      skipped++;
      fprintf(stderr, "[  SKIPPED ] %s: %s\n", cases[i].name, current_skip);
    } else {
      passed++;
      fprintf(stderr, "[       OK ] %s\n", cases[i].name);
    }
  }
  fprintf(stderr, "%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  if (passed + failed == 0 && skipped == 0) {
    fprintf(stderr, "no test matched\n");
    return 1;
  }
  return failed ? 1 : 0;
}
