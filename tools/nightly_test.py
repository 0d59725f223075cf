#!/usr/bin/python3
"""Tests of tools/nightly.py and tools/triage.py that need no fuzz build: options and budgets,
signatures of sample crash reports (testdata/), deduplication and storing with a fake fuzzer,
all-or-nothing writes on a full disk, coverage totals, the benchmark step's use of benchdb.py and
compare_runs.py (fakes with their interface), and the report (HTML, Markdown, JSON).
Run: /usr/bin/python3 tools/nightly_test.py (Bazel: //tools:nightly_test)."""

import errno
import io
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nightly  # noqa: E402
import triage  # noqa: E402

TESTDATA = os.path.join(HERE, "testdata")
PYTHON = "/usr/bin/python3"


def write(path, text, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    if mode:
        os.chmod(path, mode)


def scratch_root(tmp, targets=("ddi_sequence", "private_data")):
    """A tree with fuzz/targets/BUILD.bazel listing @targets, as ALLOCLAB_NIGHTLY_ROOT."""
    body = "".join('    "%s",\n' % t for t in targets)
    write(os.path.join(tmp, "fuzz", "targets", "BUILD.bazel"), "FUZZ_TARGETS = [\n%s]\n" % body)
    return tmp


class BudgetTest(unittest.TestCase):
    def test_durations(self):
        for text, seconds in [("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400), ("1h30m15s", 5415),
                              ("45", 45), ("3m", 180)]:
            self.assertEqual(nightly.parse_budget(text), seconds, text)

    def test_bad_durations(self):
        for text in ["", "1x", "m", "1.5h", "-5m", "0s", "0", "10 minutes", "30m1h", "200h"]:
            with self.assertRaises(nightly.NightlyError, msg=text):
                nightly.parse_budget(text)

    def test_format(self):
        self.assertEqual(nightly.format_seconds(5415), "1h30m15s")
        self.assertEqual(nightly.format_seconds(75), "1m15s")
        self.assertEqual(nightly.format_seconds(9), "9s")


class OptionsTest(unittest.TestCase):
    def run_nightly(self, args, env_extra=None):
        with tempfile.TemporaryDirectory() as tmp:
            root = scratch_root(tmp)
            env = dict(os.environ, ALLOCLAB_NIGHTLY_ROOT=root, **(env_extra or {}))
            done = subprocess.run([PYTHON, os.path.join(HERE, "nightly.py")] + args, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            reports = os.path.join(root, ".lab", "nightly")
            made_report = os.path.isdir(reports) and bool(os.listdir(reports))
        return done.returncode, done.stderr, made_report

    def test_bad_options_exit_3_with_a_clear_message_and_no_report(self):
        cases = [
            (["--budget", "1x"], "--budget '1x' is not a duration"),
            (["--budget", "0s"], "--budget '0s' is zero"),
            (["--jobs", "0"], "--jobs must be a whole number"),
            (["--jobs", "many"], "--jobs must be a whole number"),
            (["--targets", "nope"], "unknown target 'nope'; the targets are: ddi_sequence, private_data"),
            (["--targets", "private_data,private_data"], "names a target twice"),
            (["--targets", ","], "--targets is empty"),
            (["--frobnicate"], "unrecognized arguments: --frobnicate"),
            (["--budget"], "expected one argument"),
        ]
        for args, message in cases:
            rc, stderr, made_report = self.run_nightly(args)
            self.assertEqual(rc, 3, args)
            self.assertIn(message, stderr, args)
            self.assertTrue(stderr.startswith("nightly: error: "), stderr)
            self.assertFalse(made_report, args)

    def test_not_enough_disk_space_is_exit_3(self):
        rc, stderr, made_report = self.run_nightly(["--no-bench"], {"ALLOCLAB_NIGHTLY_MIN_FREE_MB": str(1 << 40)})
        self.assertEqual(rc, 3)
        self.assertIn("MiB free on the disk", stderr)
        self.assertFalse(made_report)

    def test_targets_come_from_the_build_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(nightly.fuzz_targets(scratch_root(tmp, ("a", "b_c", "close_destroy"))),
                             ["a", "b_c", "close_destroy"])
            write(os.path.join(tmp, "fuzz", "targets", "BUILD.bazel"), "cc_library(name = 'x')\n")
            with self.assertRaisesRegex(nightly.NightlyError, "no FUZZ_TARGETS list"):
                nightly.fuzz_targets(tmp)

    def test_defaults(self):
        args = nightly.parse_args([], ["a", "b"])
        self.assertEqual(args.budget_seconds, 180)
        self.assertEqual(args.jobs, os.cpu_count())
        self.assertEqual(args.targets, ["a", "b"])
        self.assertFalse(args.no_bench)
        self.assertFalse(args.no_canaries)
        self.assertTrue(nightly.parse_args(["--no-canaries"], ["a"]).no_canaries)


class ProgressTest(unittest.TestCase):
    def test_plain_and_fork_lines(self):
        self.assertEqual(nightly.parse_progress_line("#4096\tpulse  cov: 12 ft: 20 corp: 5/112b lim: 4 exec/s: 2048 rss: 30Mb"),
                         {"execs": 4096, "cov": 12, "ft": 20, "corpus": 5})
        self.assertEqual(nightly.parse_progress_line(
            "#42908: cov: 10 ft: 11 corp: 2 exec/s 0 oom/timeout/crash: 0/0/3 time: 0s job: 1 dft_time: 0"),
            {"execs": 42908, "cov": 10, "ft": 11, "corpus": 2})
        self.assertIsNone(nightly.parse_progress_line("INFO: Seed: 1234"))
        self.assertIsNone(nightly.parse_progress_line("#2 INITED"))


def sample(name: str) -> str:
    with open(os.path.join(TESTDATA, name), encoding="utf-8") as f:
        return f.read()


# Oracle messages as fuzz/common/execute.c writes them (the tag at the end).
ORACLE_STALE_DESTROY = ("alloclab oracle: call 7 destroy_allocations(dev=v1, list=[v3.a0, 0xdead0001], flags=0): "
                        "port returned STATUS_SUCCESS, model expected STATUS_INVALID_HANDLE (a listed handle is "
                        "not a live allocation) [oracle:status-mismatch:success destroy_allocations]")
ORACLE_STALE_DESTROY_MINIMIZED = (
    "alloclab oracle: call 3 destroy_allocations(dev=v1, list=[v2.a0], flags=0): port returned STATUS_SUCCESS, "
    "model expected STATUS_INVALID_HANDLE (a listed handle is not a live allocation) "
    "[oracle:status-mismatch:success destroy_allocations]")
ORACLE_LIVE_OBJECTS = ("alloclab oracle: call 4 destroy_allocations(dev=v1, list=[v2.a0], flags=0): statistics "
                       "disagree with the model: live allocations: port 2, model 1 "
                       "[oracle:live-objects:live-allocations-port-model destroy_allocations]")
ORACLE_STATUS_ON_OPEN = ("alloclab oracle: call 5 open_resource(dev=v2, resource=v3): port returned STATUS_SUCCESS, "
                         "model expected STATUS_INVALID_PARAMETER (not shared) [oracle:status-mismatch:success "
                         "open_resource]")
ORACLE_WALK = ("alloclab oracle: teardown: al_adapter_check: segment heap: a free block overlaps a used one "
               "[oracle:invariant-walk:segment-heap-a-free-block-overlaps teardown]")


def oracle_report(message: str) -> "triage.CrashReport":
    """oracle_abort.txt (real libFuzzer output of an oracle abort) with @message as the oracle's."""
    text = "\n".join(message if line.startswith("alloclab oracle:") else line
                     for line in sample("oracle_abort.txt").splitlines())
    return triage.parse_report(text)


class SignatureTest(unittest.TestCase):
    EXPECTED = {
        "asan_heap_buffer_overflow.txt": "heap-buffer-overflow | planted_write_past_end | planted_parse | LLVMFuzzerTestOneInput",
        "ubsan_signed_overflow.txt": "undefined-behavior: signed integer overflow | fz_execute | LLVMFuzzerTestOneInput",
        # An oracle message without the tag (before fuzz/common/execute.c wrote one): the old form.
        "oracle_abort.txt": "alloclab oracle | mismatch | check_call | fz_execute",
        "verifier_abort.txt": "verifier:rule-3-destroy | verifier_fail | verify_destroy | al_allocation_destroy",
        "sim_gpu_fault.txt": "sim GPU fault | sim_gpu_fault | sim_engine_run_command | sim_ddi_run_engine",
        "lsan_leak.txt": "memory leak | segment_heap_grow | segment_heap_alloc | placement_place",
    }

    def test_samples(self):
        for name, signature in self.EXPECTED.items():
            with open(os.path.join(TESTDATA, name), encoding="utf-8") as f:
                # The ASan sample was built outside Bazel, in /tmp/plant/src (the repository root).
                report = triage.parse_report(f.read(), repo_root="/tmp/plant/src")
            self.assertIsNotNone(report, name)
            self.assertEqual(report.signature, signature, name)
            self.assertIn("SUMMARY:", report.trace, name)
        with open(os.path.join(TESTDATA, "oracle_abort.txt"), encoding="utf-8") as f:
            trace = triage.parse_report(f.read()).trace
        self.assertTrue(trace.startswith("alloclab oracle: call 5 destroy_allocations"), trace[:80])

    def test_oracle_tag_makes_the_signature(self):
        self.assertEqual(oracle_report(ORACLE_STALE_DESTROY).signature,
                         "oracle:status-mismatch:success | destroy_allocations | check_call | fz_execute")
        # The trace still starts with the oracle's whole message, tag included.
        self.assertTrue(oracle_report(ORACLE_STALE_DESTROY).trace.startswith(ORACLE_STALE_DESTROY))

    def test_same_oracle_failure_minimized_twice_has_one_signature(self):
        # The same bug at another call number, with other handles and another program before it.
        self.assertEqual(oracle_report(ORACLE_STALE_DESTROY).signature,
                         oracle_report(ORACLE_STALE_DESTROY_MINIMIZED).signature)

    def test_different_oracle_failures_have_different_signatures(self):
        signatures = {oracle_report(m).signature for m in (ORACLE_STALE_DESTROY, ORACLE_LIVE_OBJECTS,
                                                            ORACLE_STATUS_ON_OPEN, ORACLE_WALK)}
        self.assertEqual(len(signatures), 4, signatures)
        # Before the tag all four were one: the limit the tag removes.
        legacy = {triage.parse_report(sample("oracle_abort.txt").replace(
            "alloclab oracle: call 5", m.split(" [oracle:")[0] + " was")).signature
                  for m in (ORACLE_STALE_DESTROY, ORACLE_LIVE_OBJECTS)}
        self.assertEqual(legacy, {"alloclab oracle | mismatch | check_call | fz_execute"})

    def test_legacy_signatures(self):
        self.assertTrue(triage.is_legacy_signature("alloclab oracle | mismatch | step | fz_execute"))
        self.assertTrue(triage.is_legacy_signature("alloclab verifier | verifier_fail | verify_destroy | x"))
        self.assertFalse(triage.is_legacy_signature("oracle:status-mismatch:success | destroy_allocations | step | x"))
        self.assertFalse(triage.is_legacy_signature("heap-use-after-free | f | g | h"))

    def test_numbers_and_lines_do_not_change_a_signature(self):
        with open(os.path.join(TESTDATA, "lsan_leak.txt"), encoding="utf-8") as f:
            text = f.read()
        other = re.sub(r"\.c:\d+:\d+", ".c:999:1", text.replace("32 byte(s) leaked in 2", "4096 byte(s) leaked in 7"))
        self.assertEqual(triage.parse_report(text).signature, triage.parse_report(other).signature)

    def test_only_our_code_counts(self):
        self.assertEqual(triage.our_source_path("/proc/self/cwd/core/src/adapter.c"), "core/src/adapter.c")
        self.assertEqual(triage.our_source_path("/repo/hw/sim/x.c", "/repo"), "hw/sim/x.c")
        self.assertIsNone(triage.our_source_path("/build/llvm/compiler-rt/lib/fuzzer/FuzzerLoop.cpp"))
        self.assertIsNone(triage.our_source_path("/proc/self/cwd/third_party/benchmark/x.cc"))
        self.assertIsNone(triage.our_source_path("stdlib/./stdlib/abort.c"))

    def test_no_crash_is_none(self):
        self.assertIsNone(triage.parse_report("INFO: Seed: 1\nDone 100 runs in 1 second(s)\n"))


# A fake libFuzzer binary: an input holding "BUG" crashes with the ASan sample (or, with "LEAK",
# the leak sample; one that starts with "alloclab oracle:", the oracle sample with that message);
# FLAKY_COUNTER makes it crash only on every other run; -minimize_crash copies
# the input to -exact_artifact_path.
FAKE_FUZZER = textwrap.dedent("""\
    #!/usr/bin/python3
    import os, shutil, sys
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    flags = dict(a[1:].split("=", 1) for a in sys.argv[1:] if a.startswith("-") and "=" in a)
    data = open(args[0], "rb").read()
    if "minimize_crash" in flags:
        shutil.copyfile(args[0], flags["exact_artifact_path"])
        sys.exit(0)
    counter = os.environ.get("FLAKY_COUNTER")
    if counter:
        n = int(open(counter).read()) if os.path.exists(counter) else 0
        open(counter, "w").write(str(n + 1))
        if n %% 2:
            sys.exit(0)
    sample = "lsan_leak.txt" if b"LEAK" in data else "asan_heap_buffer_overflow.txt" if b"BUG" in data else None
    oracle = data.startswith(b"alloclab oracle:")
    if oracle:
        sample = "oracle_abort.txt"
    if sample is None:
        sys.exit(0)
    text = open(os.path.join(%r, sample)).read().replace("/tmp/plant/src/", "/proc/self/cwd/")
    if oracle:
        text = "\\n".join(data.decode() if l.startswith("alloclab oracle:") else l for l in text.splitlines())
    sys.stdout.write(text)
    sys.exit(1)
    """) % TESTDATA
# A fake text form: trace prints the bytes as "hex = ..." after a "# FILE:" line; encode reads it back.
FAKE_TRACE = "#!/bin/sh\nprintf '# %s: fake\\nhex = %s\\n' \"$1\" \"$(od -An -tx1 -v \"$1\" | tr -d ' \\n')\"\n"
FAKE_ENCODE = "#!/bin/sh\nsed -n 's/^hex = //p' \"$1\" | xxd -r -p > \"$2\"\n"


class TriageTest(unittest.TestCase):
    def setUp(self):
        self.umask = os.umask(0o022)  # stored regressions must be readable by all under it
        self.tmp = tempfile.TemporaryDirectory()
        t = self.tmp.name
        self.fuzzer = os.path.join(t, "bin", "fuzzer")
        write(self.fuzzer, FAKE_FUZZER, 0o755)
        write(os.path.join(t, "bin", "trace"), FAKE_TRACE, 0o755)
        write(os.path.join(t, "bin", "encode"), FAKE_ENCODE, 0o755)
        self.codec = triage.Codec("ddi_sequence", os.path.join(t, "bin", "trace"), os.path.join(t, "bin", "encode"))
        self.corpus = os.path.join(t, "corpus")
        os.makedirs(os.path.join(self.corpus, "ddi_sequence", "regressions"))
        self.crashes = []
        for i, content in enumerate([b"xxBUGxx", b"BUG-other-input", b"harmless"]):
            path = os.path.join(t, "crashes", "crash-%d" % i)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
            self.crashes.append(path)

    def tearDown(self):
        self.tmp.cleanup()
        os.umask(self.umask)

    def triage(self, **kw):
        work = tempfile.mkdtemp(dir=self.tmp.name)
        return triage.Triage("ddi_sequence", self.fuzzer, self.codec, self.corpus, work, "0123456789abcdef" * 2 + "01234567",
                             date="2026-01-02", **kw)

    def stored(self):
        folder = os.path.join(self.corpus, "ddi_sequence", "regressions")
        return sorted(os.listdir(folder))

    def test_same_crash_twice_is_stored_once_then_known(self):
        results = self.triage().triage(self.crashes)
        self.assertEqual([r.status for r in results], ["new", "duplicate", "unreproducible"])
        self.assertEqual(results[0].reproduced, "3/3")
        self.assertFalse(results[0].flaky)
        name = triage.regression_name(results[0].signature, "2026-01-02")
        self.assertEqual(self.stored(), [name + ".bin", name + ".txt"])
        mode = os.stat(os.path.join(self.corpus, "ddi_sequence", "regressions", name + ".txt")).st_mode
        self.assertTrue(mode & stat.S_IRGRP and mode & stat.S_IROTH, oct(mode))
        with open(os.path.join(self.corpus, "ddi_sequence", "regressions", name + ".txt")) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[:5], [
            "# bug: found by nightly, not yet diagnosed",
            "# target: ddi_sequence",
            "# signature: heap-buffer-overflow | planted_write_past_end | planted_parse | LLVMFuzzerTestOneInput",
            "# first-seen: 0123456789ab 2026-01-02",
            "# reproduced: 3/3",
        ])
        self.assertEqual(lines[5], "hex = " + b"xxBUGxx".hex())
        with open(os.path.join(self.corpus, "ddi_sequence", "regressions", name + ".bin"), "rb") as f:
            self.assertEqual(f.read(), b"xxBUGxx")
        # A later run reads the signature back from corpus/: counted as known, nothing written.
        before = {n: os.stat(os.path.join(self.corpus, "ddi_sequence", "regressions", n)).st_mtime_ns for n in self.stored()}
        again = self.triage().triage(self.crashes[:2])
        self.assertEqual([r.status for r in again], ["known", "known"])
        self.assertTrue(again[0].known_as.endswith(name + ".txt"))
        after = {n: os.stat(os.path.join(self.corpus, "ddi_sequence", "regressions", n)).st_mtime_ns for n in self.stored()}
        self.assertEqual(before, after)

    def test_a_different_crash_is_stored_separately(self):
        leak = os.path.join(self.tmp.name, "crashes", "leak-1")
        with open(leak, "wb") as f:
            f.write(b"LEAK")
        results = self.triage().triage([self.crashes[0], leak])
        self.assertEqual([r.status for r in results], ["new", "new"])
        self.assertEqual(len(self.stored()), 4)

    def test_flaky_crash_is_marked(self):
        with mock.patch.dict(os.environ, {"FLAKY_COUNTER": os.path.join(self.tmp.name, "counter")}):
            results = self.triage().triage(self.crashes[:1])
        self.assertEqual(results[0].status, "new")
        self.assertEqual(results[0].reproduced, "2/3")
        self.assertTrue(results[0].flaky)

    def oracle_crashes(self, *messages):
        paths = []
        for i, message in enumerate(messages):
            path = os.path.join(self.tmp.name, "crashes", "oracle-%d" % i)
            with open(path, "w") as f:
                f.write(message)
            paths.append(path)
        return paths

    def test_oracle_failures_are_told_apart_and_minimized_ones_are_not(self):
        results = self.triage().triage(self.oracle_crashes(ORACLE_STALE_DESTROY, ORACLE_STALE_DESTROY_MINIMIZED,
                                                           ORACLE_LIVE_OBJECTS, ORACLE_STATUS_ON_OPEN))
        self.assertEqual([r.status for r in results], ["new", "duplicate", "new", "new"])
        self.assertEqual(results[0].signature, "oracle:status-mismatch:success | destroy_allocations | check_call | fz_execute")
        self.assertEqual(results[1].known_as, results[0].stored + ".txt")
        self.assertEqual(len(self.stored()), 6)

    def test_regression_stored_with_the_old_oracle_signature_stays_known(self):
        folder = os.path.join(self.corpus, "ddi_sequence", "regressions")
        write(os.path.join(folder, "old.txt"), "# bug: x\n# signature: alloclab oracle | mismatch | step | fz_execute\nv1\n")
        write(os.path.join(folder, "old.bin"), ORACLE_STALE_DESTROY)
        # Fixed since: it no longer crashes, so it holds no signature of today.
        write(os.path.join(folder, "fixed.txt"), "# bug: y\n# signature: alloclab oracle | mismatch | step | fz_execute\nv1\n")
        write(os.path.join(folder, "fixed.bin"), "harmless")
        logs = []
        results = self.triage(log=logs.append).triage(
            self.oracle_crashes(ORACLE_STALE_DESTROY_MINIMIZED, ORACLE_LIVE_OBJECTS))
        self.assertEqual([r.status for r in results], ["known", "new"])
        self.assertEqual(results[0].known_as, os.path.join(folder, "old.txt"))
        self.assertTrue(any("old.txt" in m and "crashes as oracle:status-mismatch" in m for m in logs), logs)
        # The old files are read, never rewritten.
        with open(os.path.join(folder, "old.txt")) as f:
            self.assertIn("# signature: alloclab oracle | mismatch | step | fz_execute", f.read())

    def test_known_signatures_read_every_target(self):
        write(os.path.join(self.corpus, "fault_injection", "regressions", "a.txt"),
              "# bug: x\n# signature: alloclab oracle | f | g | h\nv1 = create_device()\n")
        write(os.path.join(self.corpus, "fault_injection", "regressions", "b.txt"), "# bug: before signatures\n")
        self.assertEqual(list(triage.known_signatures(self.corpus)), ["alloclab oracle | f | g | h"])

    def test_command_line(self):
        done = subprocess.run([PYTHON, os.path.join(HERE, "triage.py"), "--target", "ddi_sequence", "--fuzzer", self.fuzzer,
                               "--trace", self.codec.trace, "--encode", self.codec.encode, "--corpus", self.corpus,
                               "--commit", "a" * 40] + self.crashes[:2], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertEqual([line.split("\t")[1] for line in done.stdout.splitlines()], ["new", "duplicate"])
        missing = subprocess.run([PYTHON, os.path.join(HERE, "triage.py"), "--target", "t", "--fuzzer", "/nonexistent",
                                  "--trace", "x", "--encode", "y", "c"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(missing.returncode, 3)
        self.assertIn("/nonexistent does not exist", missing.stderr)


class RunBoundedTest(unittest.TestCase):
    def test_a_hang_is_killed_with_everything_it_started(self):
        with tempfile.TemporaryDirectory() as tmp:
            pid_file = os.path.join(tmp, "child")
            # A child in the background holds the output pipe open, as fork mode's children do.
            script = "sleep 60 & echo $! > %s; wait" % pid_file
            with self.assertRaises(subprocess.TimeoutExpired):
                triage.run_bounded(["sh", "-c", script], 1, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            with open(pid_file) as f:
                child = int(f.read())
            for _ in range(50):  # the kill is asynchronous: give it up to 5 s to be reaped
                try:
                    os.kill(child, 0)
                except ProcessLookupError:
                    break
                with open("/proc/%d/stat" % child) as f:
                    if f.read().split()[2] == "Z":
                        break
                time.sleep(0.1)
            else:
                self.fail("the background child %d survived" % child)

    def test_a_quick_command_returns_its_output(self):
        done = triage.run_bounded(["sh", "-c", "echo out; exit 3"], 10, stdout=subprocess.PIPE, text=True)
        self.assertEqual((done.returncode, done.stdout), (3, "out\n"))


class FullDiskTest(unittest.TestCase):
    def test_nothing_stored_is_lost_or_half_written(self):
        with tempfile.TemporaryDirectory() as tmp:
            old_txt, old_bin = os.path.join(tmp, "r.txt"), os.path.join(tmp, "r.bin")
            write(old_txt, "old text\n")
            write(old_bin, "old bytes")
            real_fsync, calls = os.fsync, []

            def fsync_fills_the_disk(fd):
                calls.append(fd)
                if len(calls) == 2:
                    raise OSError(errno.ENOSPC, "No space left on device")
                real_fsync(fd)

            with mock.patch("os.fsync", fsync_fills_the_disk):
                with self.assertRaisesRegex(triage.TriageError, "the disk is full"):
                    triage.write_files_atomically({old_txt: b"new text\n", old_bin: b"new bytes"})
            self.assertEqual(sorted(os.listdir(tmp)), ["r.bin", "r.txt"])  # no temporary left behind
            with open(old_txt) as f:
                self.assertEqual(f.read(), "old text\n")
            with open(old_bin) as f:
                self.assertEqual(f.read(), "old bytes")


class BenchTest(unittest.TestCase):
    """run_benchmarks against fakes of ./lab bench, benchdb.py and compare_runs.py that keep
    their interface (record prints a run id; runs lists ids; export RUN OUT; previous-commit
    prints a run id; compare_runs OLD NEW --json OUT exits 2 on a regression)."""

    def make_root(self, tmp, compare_exit):
        write(os.path.join(tmp, "lab"), textwrap.dedent("""\
            #!/bin/sh
            # fake ./lab bench: writes a Google Benchmark report to --out
            while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
            printf '{"context": {"git_commit": "cccccccccccccc"}, "benchmarks": [{"name": "BM_teardown_median", "run_name": "BM_teardown", "run_type": "aggregate", "aggregate_name": "median", "real_time": 30.0, "time_unit": "ns"}]}' > "$out"
            """), 0o755)
        runs = {"1": ("a" * 40, 20.0), "2": ("b" * 40, 25.0), "3": ("c" * 40, 30.0)}
        # benchdb.py's interface: record prints the run id; previous-commit --before SHA prints a
        # commit; find-run --commit SHA prints that commit's run id; runs prints a header, then
        # one run a line (id first, right-aligned); export RUN OUT writes per-repetition rows.
        write(os.path.join(tmp, "tools", "benchdb.py"), textwrap.dedent("""\
            import json, sys
            runs = %r
            cmd = sys.argv[1]
            if cmd == "record": print("3")
            elif cmd == "previous-commit": print("b" * 40)
            elif cmd == "find-run":
                assert sys.argv[sys.argv.index("--commit") + 1] == "b" * 40
                print("2")
            elif cmd == "runs":
                print("   id  recorded (UTC)    commit")
                for k, v in runs.items(): print("%%5s  2026-01-0%%s 00:00  %%s" %% (k, k, v[0][:12]))
            elif cmd == "export":
                commit, ns = runs[sys.argv[2]]
                rows = [{"name": "BM_teardown", "run_type": "iteration", "real_time": 1.0, "time_unit": "us",
                         "ns_per_allocation": ns + d} for d in (-1.0, 0.0, 5.0)]
                json.dump({"context": {"git_commit": commit, "date": "2026-01-0" + sys.argv[2]}, "benchmarks": rows},
                          open(sys.argv[3], "w"))
            """) % runs)
        write(os.path.join(tmp, "tools", "compare_runs.py"), textwrap.dedent("""\
            import json, os, sys
            json.dump(sys.argv[1:], open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare_args.json"), "w"))
            json.dump({"regressions": [], "benchmarks": [{"name": "BM_teardown", "old_ns": 25.0, "new_ns": 30.0,
                                                          "change": "+20%%", "verdict": "slower"}]},
                      open(sys.argv[sys.argv.index("--json") + 1], "w"))
            sys.exit(%d)
            """) % compare_exit)
        os.makedirs(os.path.join(tmp, "report", "logs"))

    def test_records_compares_and_builds_the_trend(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.make_root(tmp, compare_exit=2)
            with redirect_stdout(io.StringIO()):
                section = nightly.run_benchmarks(tmp, os.path.join(tmp, "report"), os.path.join(tmp, "report", "logs"))
            with open(os.path.join(tmp, "tools", "compare_args.json")) as f:
                compare_args = json.load(f)
        # The previous run was recorded at another time: judged against each run's own anchor.
        self.assertEqual(compare_args[compare_args.index("--normalize-by") + 1], "BM_anchor_jemalloc")
        self.assertEqual(section["status"], "ok")
        self.assertEqual((section["run_id"], section["previous"], section["regression"]), ("3", "2", True))
        self.assertEqual(section["previous_commit"], "b" * 40)
        self.assertEqual(section["compare"][0]["verdict"], "slower")
        self.assertEqual([r["commit"] for r in section["trend"]], ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"])
        # The median of each run's repetitions, in ns_per_allocation (compare_runs.py's metric).
        self.assertEqual([r["values"]["BM_teardown"] for r in section["trend"]], [20.0, 25.0, 30.0])
        self.assertEqual(nightly.exit_status({"bench": section, "crashes": [], "errors": []}), 2)

    def test_missing_history_tool_fails_the_step(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.make_root(tmp, compare_exit=0)
            os.unlink(os.path.join(tmp, "tools", "benchdb.py"))
            with self.assertRaisesRegex(nightly.NightlyError, "tools/benchdb.py is missing"):
                nightly.run_benchmarks(tmp, os.path.join(tmp, "report"), os.path.join(tmp, "report", "logs"))


class CanariesTest(unittest.TestCase):
    """run_canaries against a fake fuzz/canaries/canaries.py with its interface (--targets LIST,
    --json FILE: {"canaries": rows, "missed": names, "error": null or why it stopped})."""

    def fake(self, tmp, document, exit_code=0):
        write(os.path.join(tmp, "fuzz", "canaries", "canaries.py"), textwrap.dedent("""\
            import json, os, sys
            json.dump(sys.argv[1:], open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "args.json"), "w"))
            document = %r
            if document is not None:
                json.dump(document, open(sys.argv[sys.argv.index("--json") + 1], "w"))
            sys.exit(%d)
            """) % (document, exit_code))
        os.makedirs(os.path.join(tmp, "report", "logs"), exist_ok=True)

    def run_step(self, tmp, targets=("ddi_sequence", "schedules")):
        return nightly.run_canaries(tmp, os.path.join(tmp, "report"), os.path.join(tmp, "report", "logs"), list(targets))

    ROWS = [{"name": "skip_close", "target": "ddi_sequence", "detected": True, "seconds": 0.0,
             "fired": "verifier rule 4 (close before destroy)", "exec_per_sec": None},
            {"name": "missing_lock", "target": "schedules", "detected": False, "seconds": None,
             "fired": "nothing in 60s", "exec_per_sec": 900}]

    def test_a_missed_canary_is_exit_4(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.fake(tmp, {"canaries": self.ROWS, "missed": ["missing_lock"], "error": None}, exit_code=1)
            section = self.run_step(tmp)
            with open(os.path.join(tmp, "fuzz", "canaries", "args.json")) as f:
                args = json.load(f)
        self.assertEqual(args[:2], ["--targets", "ddi_sequence,schedules"])
        self.assertEqual(args[2], "--json")
        self.assertEqual(section, {"status": "ok", "canaries": self.ROWS, "missed": ["missing_lock"]})
        summary = {"canaries": section, "crashes": [], "errors": [], "bench": {"regression": True}}
        self.assertEqual(nightly.exit_status(summary), 4)  # outranks a benchmark regression
        summary["crashes"] = [{"status": "new"}]
        self.assertEqual(nightly.exit_status(summary), 1)  # a new crash outranks it
        summary["crashes"] = []
        md = nightly.render_markdown(dict(summary, exit_status=4))
        self.assertIn("Verdict: **canary missed** (exit 4)", md)
        self.assertIn("1 of 2 found; MISSED: missing_lock", md)
        self.assertIn("| missing_lock | schedules | NO | - | nothing in 60s |", md)
        self.assertIn("| skip_close | ddi_sequence | yes | 0.0 | verifier rule 4 (close before destroy) |", md)
        page = nightly.render_html(dict(summary, exit_status=4))
        self.assertIn("1 of 2 planted bugs found; missed: missing_lock.", page)
        self.assertIn('class="verdict v4">canary missed (exit 4)', page)

    def test_all_found_is_clean(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.fake(tmp, {"canaries": self.ROWS[:1], "missed": [], "error": None})
            section = self.run_step(tmp)
        self.assertEqual(nightly.exit_status({"canaries": section, "crashes": [], "errors": [], "bench": {}}), 0)

    def test_a_run_that_could_not_fuzz_fails_the_step(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.fake(tmp, {"canaries": [], "missed": [], "error": "baseline: the UNPATCHED tree crashes on corpus/gpu"},
                      exit_code=1)
            with self.assertRaisesRegex(nightly.NightlyError, "the canaries did not run: baseline: the UNPATCHED tree"):
                self.run_step(tmp)
            self.fake(tmp, None, exit_code=1)  # no results at all
            with self.assertRaisesRegex(nightly.NightlyError, "canaries.py exited 1 without its results"):
                self.run_step(tmp)
            self.fake(tmp, {"canaries": "?"}, exit_code=0)  # not the interface
            with self.assertRaisesRegex(nightly.NightlyError, "without its results"):
                self.run_step(tmp)
            with open(os.path.join(tmp, "report", "logs", "canaries.log")) as f:
                self.assertIn("--targets ddi_sequence,schedules --json", f.read())

    def test_skipped_without_canaries(self):
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "report", "logs"))
            self.assertEqual(self.run_step(tmp)["status"], "skipped (no fuzz/canaries/canaries.py in the tree)")
            self.fake(tmp, {"canaries": [], "missed": [], "error": None})
            section = self.run_step(tmp, ("private_data",))
        self.assertEqual(section["status"], "skipped (no canary for these targets)")
        self.assertIn("skipped (no canary", nightly.render_canaries_html(section))

    def test_the_run_records_a_failed_step(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.fake(tmp, None, exit_code=1)
            run = mock.Mock(root=tmp, report_dir=os.path.join(tmp, "report"), logs=os.path.join(tmp, "report", "logs"),
                            summary={}, args=mock.Mock(targets=["ddi_sequence"]))
            with redirect_stdout(io.StringIO()):
                nightly.Run.canaries(run)
        self.assertTrue(run.summary["canaries"]["status"].startswith("failed: canaries.py exited 1"))
        run.fail.assert_called_once()
        self.assertEqual(run.fail.call_args[0][0], "canaries")


def synthetic_summary():
    trace = "==1==ERROR: AddressSanitizer: heap-use-after-free <script>alert(1)</script>\nSUMMARY: AddressSanitizer: heap-use-after-free"
    return {
        "schema": nightly.SCHEMA, "commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False,
        "started": "2026-01-02T03:04:05+00:00", "budget_seconds": 180, "jobs": 2, "targets": ["ddi_sequence", "private_data"],
        "options": {"no_bench": False, "update_corpus": False},
        "fuzz": [{"target": t, "seconds": 90, "elapsed": 91.0, "execs": 9000 * (i + 1), "exec_per_sec": 100 * (i + 1),
                  "cov": 500, "ft": 700, "corpus_before": 10, "corpus_after": 30, "crash_files": ["c"] * i,
                  "series": [{"t": s, "cov": 400 + s, "ft": 600 + s, "corpus": 10 + s // 5, "exec_per_sec": 100, "crashes": 0}
                             for s in range(0, 91, 10)]} for i, t in enumerate(["ddi_sequence", "private_data"])],
        "crashes": [{"target": "private_data", "status": "new", "signature": "heap-use-after-free | f | g | h",
                     "reproduced": "3/3", "flaky": False, "stored": "corpus/private_data/regressions/nightly-x",
                     "stored_reproduced": "3/3", "crash_file": "crashes/private_data/crash-1", "trace": trace},
                    {"target": "private_data", "status": "known", "signature": "alloclab oracle | a | b | c",
                     "reproduced": "1/1", "known_as": "corpus/ddi_sequence/regressions/old.txt", "crash_file": "crashes/x"}],
        "crash_counts": {"new": 1, "known": 1},
        "coverage": {"status": "ok", "lines": {"covered": 80, "count": 100, "percent": 80.0},
                     "functions": {"covered": 9, "count": 10, "percent": 90.0},
                     "regions": {"covered": 70, "count": 100, "percent": 70.0},
                     "files": [{"file": "core/src/adapter.c", "lines_percent": 80.0}]},
        "bench": {"status": "ok", "run_id": "7", "previous": "6", "regression": False,
                  "compare": [{"name": "BM_teardown", "old_ns": 25.0, "new_ns": 24.0, "verdict": "same"}],
                  "trend": [{"run": str(i), "commit": "%dabcdef01234" % i, "date": "", "values": {"BM_teardown": 20.0 + i, "BM_anchor": 16.0}}
                            for i in range(4)]},
        "canaries": {"status": "ok", "missed": [],
                     "canaries": [{"name": "skip_close", "target": "ddi_sequence", "detected": True, "seconds": 0.1,
                                   "fired": "verifier rule 4 (close before destroy)", "exec_per_sec": None}]},
        "errors": [], "report_dir": "/x/.lab/nightly/20260102-030405-0123456789ab",
    }


class ReportTest(unittest.TestCase):
    def test_html_is_self_contained_and_complete(self):
        summary = synthetic_summary()
        summary["exit_status"] = nightly.exit_status(summary)
        page = nightly.render_html(summary)
        self.assertNotRegex(page, r"(?i)https?://")
        self.assertNotRegex(page, r"(?i)<script|<link|<img|\bsrc=|@import|url\(")
        self.assertNotIn("<script>alert", page)  # the trace is escaped
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", page)
        # cov and corpus over the run, exec/s per target, coverage per file, the benchmark trend.
        self.assertEqual(page.count("<svg"), 5)
        for needle in ["coverage (cov) over the run", "corpus size over the run", "exec/s per target",
                       "Trend over recorded commits", "Against the previous recorded commit", "3abcdef",
                       "heap-use-after-free | f | g | h", "corpus/private_data/regressions/nightly-x", "known",
                       "new crash (exit 1)", "<table", "polyline", "Canaries: the fuzzers' own test",
                       "1 of 1 planted bugs found."]:
            self.assertIn(needle, page)

    def test_markdown(self):
        summary = synthetic_summary()
        summary["exit_status"] = nightly.exit_status(summary)
        md = nightly.render_markdown(summary)
        self.assertIn("Verdict: **new crash** (exit 1)", md)
        self.assertIn("| ddi_sequence | 1m31s | 9000 | 100 | 500 | 700 | 10 -> 30 | 0 |", md)
        self.assertIn("lines 80.0%, functions 90.0%, regions 70.0%", md)
        self.assertIn("| BM_teardown | 20 | 21 | 22 | 23 |", md)
        self.assertIn("1 of 1 found\n", md)
        self.assertIn("| skip_close | ddi_sequence | yes | 0.1 | verifier rule 4 (close before destroy) |", md)

    def test_bench_section_without_history(self):
        self.assertIn("skipped (--no-bench)", nightly.render_bench_html({"status": "skipped (--no-bench)"}))
        page = nightly.render_bench_html({"status": "ok", "run_id": "1", "previous": "", "compare": [], "trend": []})
        self.assertIn("no earlier recorded commit", page)

    def test_exit_status_order(self):
        summary = synthetic_summary()
        self.assertEqual(nightly.exit_status(summary), 1)
        summary["bench"]["regression"] = True
        self.assertEqual(nightly.exit_status(summary), 1)  # a new crash outranks a regression
        summary["crashes"] = [c for c in summary["crashes"] if c["status"] != "new"]
        self.assertEqual(nightly.exit_status(summary), 2)  # a known crash is not new
        summary["bench"]["regression"] = False
        self.assertEqual(nightly.exit_status(summary), 0)
        summary["errors"] = ["coverage: failed"]
        self.assertEqual(nightly.exit_status(summary), 3)

    def test_json_schema_of_a_written_report(self):
        summary = synthetic_summary()
        with tempfile.TemporaryDirectory() as tmp:
            run = mock.Mock(summary=summary, report_dir=os.path.join(tmp, "nightly", "r1"), nightly_dir=os.path.join(tmp, "nightly"))
            os.makedirs(run.report_dir)
            nightly.write_report(run)
            self.assertEqual(os.readlink(os.path.join(tmp, "nightly", "latest")), "r1")
            with open(os.path.join(run.report_dir, "summary.json")) as f:
                data = json.load(f)
            self.assertTrue(os.path.isfile(os.path.join(run.report_dir, "report.html")))
            self.assertTrue(os.path.isfile(os.path.join(run.report_dir, "summary.md")))
        schema = {"schema": str, "commit": str, "dirty": bool, "started": str, "finished": str, "budget_seconds": int,
                  "jobs": int, "targets": list, "fuzz": list, "crashes": list, "crash_counts": dict, "coverage": dict,
                  "bench": dict, "canaries": dict, "errors": list, "exit_status": int, "verdict": str, "report_dir": str}
        for key, kind in schema.items():
            self.assertIsInstance(data[key], kind, key)
        self.assertEqual(data["schema"], "alloclab-nightly/1")
        self.assertEqual((data["exit_status"], data["verdict"]), (1, "new crash"))
        for row in data["fuzz"]:
            for key in ("target", "execs", "exec_per_sec", "cov", "ft", "corpus_before", "corpus_after", "series"):
                self.assertIn(key, row)
        for row in data["crashes"]:
            for key in ("target", "status", "signature", "reproduced", "crash_file"):
                self.assertIn(key, row)


if __name__ == "__main__":
    unittest.main()
