/*
 * sanitizers.h — which sanitizer this translation unit is built with, in one place: AL_ASAN is
 * defined (as 1) under AddressSanitizer, AL_TSAN under ThreadSanitizer, AL_MSAN under
 * MemorySanitizer (clang only), for gcc (__SANITIZE_ADDRESS__, __SANITIZE_THREAD__) and clang
 * (__has_feature). Code that talks to a
 * sanitizer's interface (poisoning, fibers, fake stacks) or skips a check only it makes tests
 * these instead of the compilers' macros.
 */
#ifndef ALLOCLAB_SANITIZERS_H
#define ALLOCLAB_SANITIZERS_H

#if defined(__SANITIZE_ADDRESS__)
#define AL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AL_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define AL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AL_TSAN 1
#endif
#endif

#if defined(__has_feature)
#if __has_feature(memory_sanitizer)
#define AL_MSAN 1
#endif
#endif

#endif /* ALLOCLAB_SANITIZERS_H */
