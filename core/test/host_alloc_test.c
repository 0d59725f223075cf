/* host_alloc_test.c — the host-allocation wrapper and its fault hook (alloclab/host_alloc.h,
 * alloclab/testing.h). */
#include "alloclab/host_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/testing.h"

/* A counting hook: lets calls before @nth succeed, fails the nth and, with @forever, every call
 * after it; records the sizes it was asked about. */
typedef struct counting_hook {
  uint64_t calls;
  uint64_t nth;
  bool forever;
  size_t last_bytes;
} counting_hook;

static bool counting_should_fail(void *context, size_t bytes) {
  counting_hook *h = context;
  h->calls++;
  h->last_bytes = bytes;
  return h->calls == h->nth || (h->forever && h->calls > h->nth);
}

TEST(test_no_hook_allocates) {
  unsigned long long before = al_testing_host_alloc_failures();
  char *m = al_host_malloc(16);
  unsigned char *c = al_host_calloc(4, 8);
  assert_ptr_ne(m, NULL, "malloc with no hook");
  assert_ptr_ne(c, NULL, "calloc with no hook");
  for (int i = 0; i < 32; i++) expect_u64_eq(c[i], 0, "calloc zeroes byte %d", i);
  memset(m, 'x', 16);
  char *r = al_host_realloc(m, 64);
  assert_ptr_ne(r, NULL, "realloc with no hook");
  expect_u64_eq(r[15], 'x', "realloc keeps the contents");
  free(r);
  free(c);
  expect_u64_eq(al_testing_host_alloc_failures(), before, "nothing was injected");
}

TEST(test_nth_fails_once) {
  counting_hook h = {.nth = 3};
  al_host_alloc_fault hook = {counting_should_fail, &h};
  expect_ptr_eq(al_testing_set_host_alloc_fault(&hook), NULL, "no hook before");
  unsigned long long before = al_testing_host_alloc_failures();
  void *blocks[5];
  for (int i = 0; i < 5; i++) blocks[i] = al_host_malloc(8);
  expect_ptr_eq(al_testing_set_host_alloc_fault(NULL), &hook, "set returns the hook it replaces");
  for (int i = 0; i < 5; i++) {
    if (i == 2) {
      expect_ptr_eq(blocks[i], NULL, "the third allocation fails");
    } else {
      expect_ptr_ne(blocks[i], NULL, "allocation %d succeeds", i + 1);
    }
    free(blocks[i]);
  }
  expect_u64_eq(h.calls, 5, "the hook is asked once per allocation");
  expect_u64_eq(al_testing_host_alloc_failures() - before, 1, "one failure counted");
}

TEST(test_forever_fails_every_kind) {
  counting_hook h = {.nth = 2, .forever = true};
  al_host_alloc_fault hook = {counting_should_fail, &h};
  al_testing_set_host_alloc_fault(&hook);
  char *first = al_host_malloc(8);
  void *c = al_host_calloc(3, 5);
  expect_u64_eq(h.last_bytes, 15, "calloc asks about count * size");
  void *m = al_host_malloc(1);
  char *r = first ? al_host_realloc(first, 4096) : NULL;
  expect_u64_eq(h.last_bytes, 4096, "realloc asks about the new size");
  al_testing_set_host_alloc_fault(NULL);
  assert_ptr_ne(first, NULL, "the first allocation succeeds");
  expect_ptr_eq(c, NULL, "calloc fails from the 2nd call on");
  expect_ptr_eq(m, NULL, "malloc fails from the 2nd call on");
  expect_ptr_eq(r, NULL, "realloc fails from the 2nd call on");
  first[7] = 1; /* still the caller's after a failed realloc (ASan would report otherwise) */
  free(first);
  void *after = al_host_malloc(8);
  expect_ptr_ne(after, NULL, "removing the hook ends the failures");
  free(after);
}

TEST(test_calloc_overflow_saturates) {
  counting_hook h = {.nth = UINT64_MAX};
  al_host_alloc_fault hook = {counting_should_fail, &h};
  al_testing_set_host_alloc_fault(&hook);
  void *p = al_host_calloc(SIZE_MAX / 2, 4);
  al_testing_set_host_alloc_fault(NULL);
  expect_ptr_eq(p, NULL, "an overflowing calloc fails as the C library's does");
  expect_u64_eq(h.last_bytes, SIZE_MAX, "the hook sees a saturated size");
  free(p);
}

TEST(test_aligned_alloc) {
  void *p = al_host_aligned_alloc(4096, 8192);
  assert_ptr_ne(p, NULL, "an aligned block with no hook");
  expect_u64_eq((uintptr_t)p % 4096, 0, "4 KiB aligned");
  free(p);
  expect_ptr_eq(al_host_aligned_alloc(3000, 6000), NULL, "an alignment that is not a power of two fails");
  expect_ptr_eq(al_host_aligned_alloc(4096, 5000), NULL, "a size that is not a multiple of the alignment fails");
  counting_hook h = {.nth = 1};
  al_host_alloc_fault hook = {counting_should_fail, &h};
  al_testing_set_host_alloc_fault(&hook);
  void *q = al_host_aligned_alloc(4096, 4096);
  al_testing_set_host_alloc_fault(NULL);
  expect_ptr_eq(q, NULL, "the hook fails an aligned allocation too");
  expect_u64_eq(h.last_bytes, 4096, "and is asked about its size");
  free(q);
}

/* A cache serving memory it kept asks the hook as an allocation would: the same n-th call fails
 * with and without the cache, and with no hook every reuse is allowed. */
TEST(test_reuse_asks_the_hook) {
  expect_true(al_host_reuse_allowed(4096), "no hook: allowed");
  counting_hook h = {.nth = 2};
  al_host_alloc_fault hook = {counting_should_fail, &h};
  unsigned long long before = al_testing_host_alloc_failures();
  al_testing_set_host_alloc_fault(&hook);
  bool first = al_host_reuse_allowed(4096), second = al_host_reuse_allowed(4096), third = al_host_reuse_allowed(8);
  al_testing_set_host_alloc_fault(NULL);
  expect_true(first, "1st reuse allowed");
  expect_false(second, "the hook's 2nd call fails it");
  expect_true(third, "3rd allowed");
  expect_u64_eq(h.calls, 3, "one hook call per reuse");
  expect_u64_eq(h.last_bytes, 8, "asked with the size");
  expect_u64_eq(al_testing_host_alloc_failures() - before, 1, "counted as an injected failure");
}

RUN_TESTS(T(test_reuse_asks_the_hook), T(test_no_hook_allocates), T(test_nth_fails_once), T(test_forever_fails_every_kind),
          T(test_calloc_overflow_saturates), T(test_aligned_alloc))
