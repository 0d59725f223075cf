"""cc_fuzz_test: one libFuzzer target, its regression test and its runner (rules_fuzzing naming).

    load("//bazel:fuzz.bzl", "cc_fuzz_test")

    cc_fuzz_test(
        name = "port_fuzz",
        srcs = ["port_fuzz.c"],            # defines LLVMFuzzerTestOneInput
        deps = ["//fuzz/common:input", "//fuzz/common:libfuzzer_mutator"],
        corpus = "//corpus:port_fuzz",     # the default; a filegroup of seeds + regressions
        dict = "port_fuzz.dict",           # optional libFuzzer dictionary
        options = "port_fuzz.options",     # optional: [libfuzzer] section, key = value lines
    )

makes:
  <name>_raw  the fuzzer binary. Under --config=fuzz (--define=alloclab_fuzzing=1) it links
              libFuzzer (-fsanitize=fuzzer); in every other config it links the replay driver
              (//fuzz/common:replay_main) instead, so it builds with gcc too and runs any input
              (`bazel-bin/.../<name>_raw FILE_OR_DIR...`, also under valgrind).
  <name>      a cc_test tagged "fuzz-test" that replays every file of the corpus through the
              replay driver, in any config (plain, asan, tsan, fuzz). The corpus must hold at
              least one file.
  <name>_run  `bazel run --config=fuzz //pkg:<name>_run -- [libFuzzer flags]`: runs <name>_raw
              on a writable copy of the corpus ($ALLOCLAB_FUZZ_DIR, default
              ${TMPDIR:-/tmp}/alloclab_fuzz/<name>: corpus/ and artifacts/), with the dictionary
              and the options file's flags; extra arguments go to the fuzzer last and win.
  <name>_lib  the target's code (alwayslink), shared by the three.

Every target links //fuzz/common:sanitizer_defaults (ASan's defaults for fuzzing: a 10 MB
quarantine, as OSS-Fuzz runs; ASAN_OPTIONS still wins). Every target gets ALLOCLAB_COPTS / ALLOCLAB_LINKOPTS unless copts / linkopts are given; the
sources may include "fuzz/common/libfuzzer.h" for the LLVMFuzzer* prototypes (added as a dep).
Extra keyword arguments go to the cc_library.
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")
load("//bazel:copts.bzl", "ALLOCLAB_COPTS", "ALLOCLAB_LINKOPTS")

_FUZZING = "//fuzz/common:fuzzing"
_REPLAY_MAIN = "//fuzz/common:replay_main"
_LIBFUZZER_API = "//fuzz/common:libfuzzer_api"
_SANITIZER_DEFAULTS = "//fuzz/common:sanitizer_defaults"
_RUNNER = "//fuzz/common:fuzz_run.sh"

def cc_fuzz_test(
        name,
        srcs,
        deps = [],
        corpus = None,
        dict = None,
        options = None,
        copts = None,
        linkopts = None,
        size = "small",
        tags = [],
        visibility = None,
        **kwargs):
    """Defines <name>_raw, <name> and <name>_run (see the file's docstring)."""
    if corpus == None:
        corpus = "//corpus:" + name
    if copts == None:
        copts = ALLOCLAB_COPTS
    if linkopts == None:
        linkopts = ALLOCLAB_LINKOPTS
    lib = name + "_lib"

    cc_library(
        name = lib,
        srcs = srcs,
        deps = deps + [_LIBFUZZER_API, _SANITIZER_DEFAULTS],
        copts = copts,
        linkopts = linkopts,
        alwayslink = True,
        linkstatic = True,
        tags = tags,
        visibility = ["//visibility:private"],
        **kwargs
    )

    # features: the auto-configured toolchain links a static binary's libraries as objects
    # between --start-lib / --end-lib (gold), which GNU ld (used by asan and fuzz) does not know;
    # without the feature they are linked as archives (as bench/BUILD.bazel does).
    cc_binary(
        name = name + "_raw",
        features = ["-supports_start_end_lib"],
        deps = [":" + lib] + select({
            _FUZZING: [],
            "//conditions:default": [_REPLAY_MAIN],
        }),
        copts = copts,
        linkopts = linkopts + select({
            _FUZZING: ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = tags,
        visibility = visibility,
    )

    cc_test(
        name = name,
        size = size,
        features = ["-supports_start_end_lib"],
        deps = [":" + lib, _REPLAY_MAIN],
        data = [corpus],
        args = ["$(rootpaths %s)" % corpus],
        copts = copts,
        linkopts = linkopts,
        linkstatic = True,
        tags = tags + ["fuzz-test"],
        visibility = visibility,
    )

    data = [":" + name + "_raw", corpus]
    args = ["$(rootpath :%s_raw)" % name, name]
    for f in [dict, options]:
        if f == None:
            args.append("-")
        else:
            data.append(f)
            args.append("$(rootpath %s)" % f)
    args += ["$(rootpaths %s)" % corpus, "--"]
    native.sh_binary(
        name = name + "_run",
        srcs = [_RUNNER],
        data = data,
        args = args,
        tags = tags,
        visibility = visibility,
    )
