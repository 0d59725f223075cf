/*
 * ubsan_set_test.c — which UBSan checks a build carries. The fuzz config leaves out alignment
 * and pointer-overflow (.bazelrc: clang 14 traces each of their per-access checks as a compare,
 * a third of a fuzzed input's CPU); the asan config, under which `./lab test` replays every seed
 * and regression, must keep them. Each probe runs in a child process: a check that is there
 * aborts the child (-fno-sanitize-recover=all) with UBSan's report.
 *
 * Without UBSan (gcc, tsan) there is nothing to check: the test says so and passes.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int int_max = INT32_MAX;
static volatile uintptr_t misalign = 1;
static volatile uintptr_t wrap_offset = UINTPTR_MAX - 7u;
static uint64_t words[4];

/* Signed overflow: in every UBSan set; tells whether UBSan is there at all. */
static void overflow_signed(void) {
  volatile int sum = int_max + 1;
  (void)sum;
}

static void load_misaligned(void) {
  /* Through an integer: the direct cast is what -Wcast-align rejects, and rightly. */
  uint32_t *p = (uint32_t *)((uintptr_t)words + misalign);
  volatile uint32_t v = *p;
  (void)v;
}

static void wrap_pointer(void) {
  char *volatile base = (char *)words + 16;
  char *volatile wrapped = base + wrap_offset; /* wraps below base: pointer-overflow */
  (void)wrapped;
}

/* Whether @probe, run in a child with stderr silenced, ends the child abnormally. */
static bool probe_aborts(void (*probe)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("ubsan_set_test: fork");
    exit(2);
  }
  if (pid == 0) {
    if (freopen("/dev/null", "w", stderr) == NULL) _exit(3);
    probe();
    _exit(0);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) {
    perror("ubsan_set_test: waitpid");
    exit(2);
  }
  return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
  if (!probe_aborts(overflow_signed)) {
    printf("skip: this build has no UBSan (signed overflow is not caught)\n");
    return 0;
  }
#ifdef ALLOCLAB_FUZZ_UBSAN_SET
  const bool want = false; /* the fuzz config: OSS-Fuzz's set */
  const char *config = "fuzz";
#else
  const bool want = true;
  const char *config = "non-fuzz (asan)";
#endif
  int failed = 0;
  struct {
    const char *name;
    void (*probe)(void);
  } checks[] = {{"alignment", load_misaligned}, {"pointer-overflow", wrap_pointer}};
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
    bool got = probe_aborts(checks[i].probe);
    printf("%s: %s check %s (want %s)\n", got == want ? "ok" : "FAIL", checks[i].name,
           got ? "present" : "absent", want ? "present" : "absent");
    failed += got != want;
  }
  printf("%s config: %d of 2 wrong\n", config, failed);
  return failed ? 1 : 0;
}
