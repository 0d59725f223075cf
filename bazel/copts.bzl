"""Compiler and linker flags shared by every alloclab target.

Use them on every cc_library / cc_binary / cc_test:

    load("@rules_cc//cc:defs.bzl", "cc_library", "cc_test")
    load("//bazel:copts.bzl", "ALLOCLAB_COPTS", "ALLOCLAB_LINKOPTS")

    cc_library(name = "emap", srcs = ["emap.c"], hdrs = ["emap.h"],
               copts = ALLOCLAB_COPTS, linkopts = ALLOCLAB_LINKOPTS)

C sources take ALLOCLAB_COPTS, C++ sources (the Google Benchmark shim) take ALLOCLAB_CXXOPTS.
Bazel 4.2 has no per-target `conlyopts`, so a target's `copts` reach both its .c and .cc files:
keep C and C++ sources in separate targets. (-std=c17 is an error for clang++, and the
-Wstrict-prototypes / -Wmissing-prototypes pair is C-only.)

Every flag below is accepted by both gcc 12 and clang 14, so one list serves both compilers and
no per-compiler select() is needed. Sanitizer, coverage and optimisation flags are not here:
they come from the named configs in .bazelrc, so a target never hard-codes them.
"""

ALLOCLAB_COPTS = [
    "-std=c17",
    "-D_GNU_SOURCE",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Wpointer-arith",
    "-Wcast-align",
    "-Wvla",
    "-Wformat=2",
    "-Wundef",
]

ALLOCLAB_CXXOPTS = [
    "-std=c++17",
    "-Wall",
    "-Wextra",
    "-Werror",
]

ALLOCLAB_LINKOPTS = [
    "-lpthread",
]
