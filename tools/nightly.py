#!/usr/bin/python3
"""nightly.py: the nightly job of alloclab (`./lab nightly`): fuzz, triage, coverage, benchmarks, report.

    ./lab nightly [--budget DURATION] [--jobs N] [--targets LIST] [--no-bench] [--update-corpus] [--no-prune]
                  [--no-canaries]

1. builds the fuzz targets (--config=fuzz), their replay binaries with --config=coverage, and the
   text tools (fuzz/tools:trace and :encode; fuzz/targets:<target>_text for a target that has
   fuzz/targets/<target>_text.c, such as private_data);
2. fuzzes every target (FUZZ_TARGETS of fuzz/targets/BUILD.bazel) for an even share of the
   budget, after pruning its working corpus when it grew past the limit (tools/prune.py; the
   prune's seconds come out of the target's share; not with --no-prune),
   libFuzzer fork mode with N jobs, crashes collected without stopping, on the working
   corpus .lab/fuzz/<target>/corpus (outside git; seeded from corpus/<target>/seeds and
   regressions; new coverage is merged into it); prints progress every few seconds;
   --update-corpus also writes the inputs that add coverage to corpus/<target>/seeds back
   (canonical text + bytes);
3. triages every crash (tools/triage.py): reproduced 3 times, symbolized, deduplicated by
   signature against corpus/*/regressions and within the run, minimized, stored once;
4. measures the line / function / region coverage of core/ and hw/ (tests excluded) over the
   working corpora (llvm-profdata-14, llvm-cov-14);
5. unless --no-canaries: the fuzzers' own test (fuzz/canaries/canaries.py, `./lab canaries`):
   plants each canary of the targets run in a scratch copy of the tree and fuzzes for it; a
   canary not found within its budget means the fuzzers lost the power to find that bug class;
6. unless --no-bench: runs the benchmarks, records them in the history (tools/benchdb.py) and
   compares them with the previous recorded commit (tools/compare_runs.py);
7. writes .lab/nightly/<UTC stamp>-<commit12>/ (report.html, summary.md, summary.json, logs/,
   crashes/) and points .lab/nightly/latest at it.

Exit status: 0 clean (a known crash that still fails is not new), 1 a new crash was stored,
4 a canary was missed (and no new crash), 2 a benchmark regressed (and neither of those), 3 the
run itself failed (bad option, a build or step that failed, a full disk); the report is written
in every case but a bad option.

Test hooks (environment): ALLOCLAB_NIGHTLY_ROOT (the tree whose fuzz/targets/BUILD.bazel,
corpus/ and .lab/ are used; default: this repository), ALLOCLAB_NIGHTLY_PREBUILT (a folder with
fuzz/<target>_raw, coverage/<target>_raw, trace, encode and any <target>_text: nothing is built),
ALLOCLAB_NIGHTLY_MIN_FREE_MB (free disk space required to start, default 500).
"""

import argparse
import datetime
import errno
import html
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coverage_report  # noqa: E402  (tools/coverage_report.py: replay, merge, export)
import fuzz_options  # noqa: E402  (tools/fuzz_options.py: a target's libFuzzer flags)
import prune  # noqa: E402  (tools/prune.py: corpus pruning)
import triage  # noqa: E402  (tools/triage.py, next to this file)

EXIT_CLEAN, EXIT_NEW_CRASH, EXIT_PERF_REGRESSION, EXIT_RUN_FAILED, EXIT_CANARY_MISSED = 0, 1, 2, 3, 4
VERDICTS = {EXIT_CLEAN: "clean", EXIT_NEW_CRASH: "new crash", EXIT_PERF_REGRESSION: "performance regression",
            EXIT_RUN_FAILED: "run failed", EXIT_CANARY_MISSED: "canary missed"}
DEFAULT_BUDGET = "3m"
MAX_BUDGET_SECONDS = 7 * 24 * 3600
SCHEMA = "alloclab-nightly/1"
PROGRESS_EVERY_SECONDS = 5.0
# The benchmarks a nightly runs (the anchors come with them): the teardown goals of the README.
BENCH_FILTER = "BM_teardown_resource/devices:1/allocations:(64|1024)/"
BENCH_REPETITIONS = 9
BENCH_TREND_RUNS = 20
MAX_CRASHES_TRIAGED_PER_TARGET = 50
MAX_SEEDS_ADDED_PER_TARGET = 100


class NightlyError(Exception):
    """The run cannot go on (or an option is bad): the message names the problem; exit 3."""


# ---- Options --------------------------------------------------------------------------------------

def parse_budget(text: str) -> int:
    """Seconds of a duration: "90s", "10m", "2h", "1h30m", "1h30m15s" or plain seconds ("90").
    Raises NightlyError for anything else, zero, or more than a week."""
    match = re.fullmatch(r"\s*(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?\s*", text or "")
    if text and re.fullmatch(r"\s*\d+\s*", text):
        seconds = int(text)
    elif match and any(match.groups()):
        hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise NightlyError("--budget '%s' is not a duration; write it like 90s, 10m, 2h or 1h30m" % text)
    if seconds <= 0:
        raise NightlyError("--budget '%s' is zero; give a positive duration" % text)
    if seconds > MAX_BUDGET_SECONDS:
        raise NightlyError("--budget '%s' is more than a week" % text)
    return seconds


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%dh%02dm%02ds" % (hours, minutes, secs)
    if minutes:
        return "%dm%02ds" % (minutes, secs)
    return "%ds" % secs


def fuzz_targets(root: str) -> List[str]:
    """The FUZZ_TARGETS list of @root/fuzz/targets/BUILD.bazel (one quoted name a line)."""
    path = os.path.join(root, "fuzz", "targets", "BUILD.bazel")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise NightlyError("cannot read the fuzz targets from %s: %s" % (path, e.strerror)) from e
    block = re.search(r"^FUZZ_TARGETS = \[(.*?)^\]", text, re.S | re.M)
    names = re.findall(r'"([A-Za-z0-9_]+)"', block.group(1)) if block else []
    if not names:
        raise NightlyError("no FUZZ_TARGETS list in %s" % path)
    return names


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2; nightly's bad input is exit 3 with the message
        raise NightlyError(message)


def parse_args(argv: List[str], known_targets: List[str]) -> argparse.Namespace:
    parser = _Parser(prog="./lab nightly", description="The nightly job: fuzz every target, triage the crashes, "
                     "measure coverage, run the benchmarks, write a report (tools/nightly.py).")
    parser.add_argument("--budget", default=DEFAULT_BUDGET,
                        help="fuzzing time for all targets together, split evenly (90s, 10m, 2h, 1h30m; "
                        "default %s); building, triage, coverage and benchmarks come on top" % DEFAULT_BUDGET)
    parser.add_argument("--jobs", default=str(os.cpu_count() or 1),
                        help="fuzzer processes per target (libFuzzer -fork=N; default: all cores, %d)" % (os.cpu_count() or 1))
    parser.add_argument("--targets", default=",".join(known_targets),
                        help="comma-separated targets (default: all of FUZZ_TARGETS: %s)" % ",".join(known_targets))
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmarks")
    parser.add_argument("--update-corpus", action="store_true",
                        help="write the inputs that add coverage back to corpus/<target>/seeds (text + bytes)")
    parser.add_argument("--no-canaries", action="store_true",
                        help="skip the fuzzers' own test (./lab canaries for the targets run: each planted bug "
                        "must be found within its budget)")
    parser.add_argument("--no-prune", action="store_true",
                        help="never prune a working corpus (by default one that grew past %d files and %g x its "
                        "size after the last prune is merged down to the inputs that keep its features, before "
                        "fuzzing, within the target's share)" % (prune.MIN_FILES, prune.GROWTH_FACTOR))
    args = parser.parse_args(argv)
    args.budget_seconds = parse_budget(args.budget)
    if not re.fullmatch(r"[1-9][0-9]{0,3}", args.jobs):
        raise NightlyError("--jobs must be a whole number from 1 to 9999, not '%s'" % args.jobs)
    args.jobs = int(args.jobs)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets:
        raise NightlyError("--targets is empty; the targets are: %s" % ", ".join(known_targets))
    for target in targets:
        if target not in known_targets:
            raise NightlyError("unknown target '%s'; the targets are: %s" % (target, ", ".join(known_targets)))
    if len(set(targets)) != len(targets):
        raise NightlyError("--targets names a target twice: %s" % args.targets)
    args.targets = targets
    return args


# ---- The run --------------------------------------------------------------------------------------

def _say(message: str) -> None:
    print("nightly: " + message, flush=True)


def _git(root: str, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", root] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


class Run:
    """One nightly run: its options, folders, binaries and the results that the report shows."""

    def __init__(self, args: argparse.Namespace, root: str, lab_root: str):
        self.args, self.root, self.lab_root = args, root, lab_root
        self.corpus_dir = os.path.join(root, "corpus")
        self.started = datetime.datetime.now(datetime.timezone.utc)
        commit = _git(root, "rev-parse", "HEAD")
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            commit = "0" * 40
        self.commit = commit
        self.dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
        stamp = self.started.strftime("%Y%m%d-%H%M%S")
        self.nightly_dir = os.path.join(root, ".lab", "nightly")
        self.report_dir = os.path.join(self.nightly_dir, "%s-%s" % (stamp, commit[:12]))
        self.logs = os.path.join(self.report_dir, "logs")
        self.errors: List[str] = []
        self.binaries: Dict[str, Dict[str, str]] = {}
        self.summary: dict = {
            "schema": SCHEMA, "commit": commit, "dirty": self.dirty, "started": self.started.isoformat(),
            "budget_seconds": args.budget_seconds, "jobs": args.jobs, "targets": args.targets,
            "options": {"no_bench": args.no_bench, "update_corpus": args.update_corpus, "no_prune": args.no_prune,
                        "no_canaries": args.no_canaries},
            "fuzz": [], "crashes": [], "crash_counts": {}, "coverage": {"status": "not run"},
            "bench": {"status": "skipped (--no-bench)" if args.no_bench else "not run"},
            "canaries": {"status": "skipped (--no-canaries)" if args.no_canaries else "not run"},
            "errors": self.errors, "report_dir": self.report_dir,
        }

    def fail(self, step: str, message: str) -> None:
        self.errors.append("%s: %s" % (step, message))
        _say("error: %s: %s" % (step, message))

    # -- building ---------------------------------------------------------------------------------
    def bazel(self, *args: str, log: str) -> Tuple[int, str]:
        cmd = ["env", "-u", "CC", "-u", "CXX", "bazel"] + list(args)
        with open(os.path.join(self.logs, log), "ab") as out:
            done = subprocess.run(cmd, cwd=self.root, stdout=out, stderr=subprocess.STDOUT)
        return done.returncode, os.path.join(self.logs, log)

    def bazel_bin(self, config: Optional[str]) -> str:
        cmd = ["env", "-u", "CC", "-u", "CXX", "bazel", "info"] + (["--config=" + config] if config else []) + ["bazel-bin"]
        done = subprocess.run(cmd, cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if done.returncode != 0 or not done.stdout.strip():
            raise NightlyError("bazel info%s bazel-bin failed" % (" --config=" + config if config else ""))
        return done.stdout.strip()

    def build(self) -> None:
        """Finds or builds the fuzzers, the coverage replays and the text tools (self.binaries)."""
        targets = self.args.targets
        prebuilt = os.environ.get("ALLOCLAB_NIGHTLY_PREBUILT")
        if prebuilt:
            _say("using the prebuilt binaries of %s (ALLOCLAB_NIGHTLY_PREBUILT)" % prebuilt)
            self.binaries = {
                "fuzz": {t: os.path.join(prebuilt, "fuzz", t + "_raw") for t in targets},
                "coverage": {t: os.path.join(prebuilt, "coverage", t + "_raw") for t in targets},
                "tools": {name: os.path.join(prebuilt, name) for name in ["trace", "encode"] + [
                    t + "_text" for t in targets if os.path.exists(os.path.join(prebuilt, t + "_text"))]},
            }
        else:
            labels = ["//fuzz/targets:%s_raw" % t for t in targets]
            _say("building the fuzz targets (--config=fuzz): %s" % " ".join(labels))
            rc, log = self.bazel("build", "--config=fuzz", "--color=no", "--curses=no", "--noshow_progress", *labels,
                                 log="build-fuzz.log")
            if rc != 0:
                raise NightlyError("the fuzz build failed (log: %s)" % os.path.relpath(log, self.lab_root))
            # A target with a text form of its own has fuzz/targets/<target>_text.c (private_data,
            # schedules: `<target>_text encode|trace`); program targets share trace and encode.
            own_text = [t for t in targets if os.path.isfile(os.path.join(self.root, "fuzz", "targets", t + "_text.c"))]
            tool_labels = ["//fuzz/tools:trace", "//fuzz/tools:encode"] + ["//fuzz/targets:%s_text" % t for t in own_text]
            _say("building the text tools (%s)" % " ".join(tool_labels))
            rc, log = self.bazel("build", "--color=no", "--curses=no", "--noshow_progress", *tool_labels,
                                 log="build-tools.log")
            if rc != 0:
                raise NightlyError("the tools build failed (log: %s)" % os.path.relpath(log, self.lab_root))
            fuzz_bin, tools_bin = self.bazel_bin("fuzz"), self.bazel_bin(None)
            self.binaries = {
                "fuzz": {t: os.path.join(fuzz_bin, "fuzz", "targets", t + "_raw") for t in targets},
                "coverage": {},
                "tools": dict({"trace": os.path.join(tools_bin, "fuzz/tools/trace"),
                               "encode": os.path.join(tools_bin, "fuzz/tools/encode")},
                              **{t + "_text": os.path.join(tools_bin, "fuzz/targets", t + "_text") for t in own_text}),
            }
            _say("building the coverage replays (--config=coverage)")
            rc, log = self.bazel("build", "--config=coverage", "--color=no", "--curses=no", "--noshow_progress", *labels,
                                 log="build-coverage.log")
            if rc != 0:
                self.fail("coverage", "the coverage build failed (log: %s)" % os.path.relpath(log, self.lab_root))
            else:
                cov_bin = self.bazel_bin("coverage")
                self.binaries["coverage"] = {t: os.path.join(cov_bin, "fuzz", "targets", t + "_raw") for t in targets}
        for kind in ("fuzz", "tools"):
            for name, path in self.binaries[kind].items():
                if not os.access(path, os.X_OK):
                    raise NightlyError("built, but %s is missing" % path)

    def codec(self, target: str) -> triage.Codec:
        tools = self.binaries["tools"]
        if target + "_text" in tools:
            return triage.Codec(target, tools[target + "_text"], tools[target + "_text"])
        return triage.Codec(target, tools["trace"], tools["encode"])

    # -- fuzzing ----------------------------------------------------------------------------------
    def libfuzzer_flags(self, target: str) -> List[str]:
        """The options file's [libfuzzer] `key = value` lines and the dictionary, as ./lab fuzz uses them."""
        return fuzz_options.libfuzzer_flags(self.root, target)

    def working_corpus(self, target: str) -> str:
        """.lab/fuzz/<target>/corpus (shared with ./lab fuzz), refreshed with the seeds and regressions."""
        folder = os.path.join(self.root, ".lab", "fuzz", target, "corpus")
        try:
            # A prune killed mid-swap leaves the corpus under another name: never start an empty one.
            recovered = prune.recover(folder)
        except prune.PruneError as e:
            raise NightlyError(str(e)) from e
        if recovered:
            _say("%s: %s" % (target, recovered))
        os.makedirs(folder, exist_ok=True)
        for kind in ("seeds", "regressions"):
            source = os.path.join(self.corpus_dir, target, kind)
            if not os.path.isdir(source):
                continue
            for name in sorted(os.listdir(source)):
                if name.endswith(".bin"):
                    shutil.copyfile(os.path.join(source, name), os.path.join(folder, "%s-%s" % (kind, name)))
        return folder

    def prune_step(self, target: str) -> dict:
        """Prunes the working corpus of @target when it is over the limit (prune.should_prune) and
        --no-prune is not given: the prune section of the target's fuzz row (status "pruned",
        "not needed", "skipped (--no-prune)", "skipped (in use)" or "failed"; files_before,
        files_after, seconds, reason, log). A failed merge leaves the corpus as it was and fails
        the step (exit 3); a corpus another process holds (a prune, or `./lab fuzz` writing into
        it) is left alone and fuzzed as it is."""
        if self.args.no_prune:
            return {"status": "skipped (--no-prune)", "seconds": 0}
        corpus = self.working_corpus(target)
        files = prune.count_files(corpus)
        wanted, why = prune.should_prune(files, prune.read_state(os.path.dirname(corpus)))
        if not wanted:
            return {"status": "not needed", "reason": why, "files_before": files, "files_after": files, "seconds": 0}
        _say("pruning %s: %s; merging it with -merge=1" % (target, why))
        log_path = os.path.join(self.logs, "prune-%s.log" % target)
        try:
            result = prune.prune(self.binaries["fuzz"][target], corpus, self.libfuzzer_flags(target), log_path)
        except prune.PruneError as e:
            raise NightlyError(str(e)) from e
        row = result.as_dict()
        row["log"] = os.path.relpath(log_path, self.report_dir)
        if result.status == "pruned":
            row["reason"] = why
            _say("%s: pruned %d -> %d files in %s (logs/prune-%s.log)" % (
                target, result.files_before, result.files_after, format_seconds(result.seconds), target))
        elif result.status == "busy":
            row["status"] = "skipped (in use)"
            _say("%s: not pruned: %s" % (target, result.reason))
        else:
            self.fail("prune", "%s: %s; the corpus is unchanged (log: %s)" % (
                target, result.reason, os.path.relpath(log_path, self.lab_root)))
        return row

    def fuzz(self, target: str, index: int, seconds: int, deadline: float) -> dict:
        fuzzer = self.binaries["fuzz"][target]
        # After a prune this copies back the seeds and regressions that added no feature.
        corpus = self.working_corpus(target)
        crashes = os.path.join(self.report_dir, "crashes", target)
        work = os.path.join(self.report_dir, "work", target)
        os.makedirs(crashes, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        before = len(os.listdir(corpus))
        flags = self.libfuzzer_flags(target) + [
            "-fork=%d" % self.args.jobs, "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1",
            "-max_total_time=%d" % seconds, "-print_final_stats=1", "-artifact_prefix=" + crashes + "/"]
        cmd = ["setarch", "-R", fuzzer] + flags + [corpus]
        log_path = os.path.join(self.logs, "fuzz-%s.log" % target)
        _say("fuzzing %s [%d/%d] for %s, %d job(s), corpus %s (%d files)" % (
            target, index + 1, len(self.args.targets), format_seconds(seconds), self.args.jobs,
            os.path.relpath(corpus, self.root), before))
        result = {"target": target, "seconds": seconds, "corpus_before": before, "series": [],
                  "execs": 0, "exec_per_sec": 0, "cov": 0, "ft": 0}
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "symbolize=0:" + env.get("ASAN_OPTIONS", "")  # triage symbolizes
        started = time.monotonic()
        lines: "queue.Queue[Optional[str]]" = queue.Queue()
        try:
            # Shared with other fuzzers; a prune of this corpus (another nightly, ./lab fuzz
            # --prune) cannot rename it away while libFuzzer writes into it.
            corpus_lock = prune.hold_for_fuzzing(corpus)
        except prune.Busy as e:
            self.fail("fuzz", "%s: not fuzzed: %s" % (target, e))
            result.update({"rc": None, "elapsed": 0, "corpus_after": before, "crash_files": [],
                           "log": os.path.relpath(log_path, self.report_dir)})
            return result
        with corpus_lock:
            with open(log_path, "w", encoding="utf-8", errors="replace") as log:
                log.write("$ %s\n" % " ".join(cmd))
                try:
                    # A session of its own: the hard stop kills fork mode's children too.
                    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True, pass_fds=(corpus_lock.fileno(),))
                except OSError as e:
                    raise NightlyError("cannot run %s: %s" % (fuzzer, e.strerror)) from e

                def pump():
                    for raw in proc.stdout:
                        lines.put(raw.decode("utf-8", errors="replace"))
                    lines.put(None)

                threading.Thread(target=pump, daemon=True).start()
                stats = {"execs": 0, "cov": 0, "ft": 0, "corpus": before}
                last_print = last_sample = started
                finished = False
                hard_stop, stopped = started + seconds + 120, False
                while not finished:
                    try:
                        line = lines.get(timeout=1.0)
                    except queue.Empty:
                        line = ""
                    if line is None:
                        finished = True
                        line = ""
                    log.write(line)
                    parsed = parse_progress_line(line)
                    if parsed:
                        stats.update(parsed)
                    now = time.monotonic()
                    if now - last_sample >= 1.0 or finished:
                        # Fork mode reports executions when a job ends: the average so far is steadier
                        # than a rate over one second.
                        rate = stats["execs"] / max(now - started, 1e-3)
                        last_sample = now
                        crash_count = len(os.listdir(crashes))
                        result["series"].append({"t": round(now - started, 1), "cov": stats["cov"], "ft": stats["ft"],
                                                 "corpus": stats["corpus"], "exec_per_sec": round(rate),
                                                 "crashes": crash_count})
                        if now - last_print >= PROGRESS_EVERY_SECONDS or finished:
                            last_print = now
                            target_left = max(0, seconds - (now - started))
                            _say("%s: %s left (%s in all) | %d exec/s | cov %d ft %d | corpus %d | crashes %d" % (
                                target, format_seconds(target_left), format_seconds(max(0, deadline - time.time())),
                                rate, stats["cov"], stats["ft"], stats["corpus"], crash_count))
                    if now > hard_stop and not stopped:
                        stopped = True
                        triage.kill_group(proc)
                        self.fail("fuzz", "%s ran %ds past its budget and was stopped" % (target, now - started - seconds))
                    if proc.poll() is not None and line == "" and now > hard_stop + 10:
                        break  # the fuzzer is gone but something still holds its output open
                rc = proc.wait()
        elapsed = time.monotonic() - started
        crash_files = sorted(os.path.join(crashes, name) for name in os.listdir(crashes)
                             if name.startswith(("crash-", "leak-", "timeout-", "oom-")))
        result.update({"rc": rc, "elapsed": round(elapsed, 1), "execs": stats["execs"],
                       "exec_per_sec": round(stats["execs"] / elapsed) if elapsed > 0 else 0,
                       "cov": stats["cov"], "ft": stats["ft"], "corpus_after": len(os.listdir(corpus)),
                       "crash_files": crash_files, "log": os.path.relpath(log_path, self.report_dir)})
        # libFuzzer exits 1 when an input crashed, which the crash files tell; anything else failed.
        if rc not in (0, 1) or (rc == 1 and not crash_files):
            self.fail("fuzz", "%s: libFuzzer exited with status %d (log: %s)" % (
                target, rc, os.path.relpath(log_path, self.lab_root)))
        if self.args.update_corpus:
            result["seeds_added"] = self.update_corpus(target, corpus, work)
        return result

    def update_corpus(self, target: str, working: str, work: str) -> int:
        """Writes the working corpus's inputs that add coverage to corpus/<target>/seeds
        (libFuzzer -merge=1 onto the current seeds) as canonical NAME.txt + NAME.bin pairs."""
        seeds = os.path.join(self.corpus_dir, target, "seeds")
        merged = os.path.join(work, "merge")
        shutil.rmtree(merged, ignore_errors=True)
        os.makedirs(merged)
        existing = set()
        for name in sorted(os.listdir(seeds)) if os.path.isdir(seeds) else []:
            if name.endswith(".bin"):
                shutil.copyfile(os.path.join(seeds, name), os.path.join(merged, name))
                existing.add(name)
        cmd = ["setarch", "-R", self.binaries["fuzz"][target], "-merge=1"] + self.libfuzzer_flags(target) + [merged, working]
        with open(os.path.join(self.logs, "merge-%s.log" % target), "w") as log:
            try:
                done = triage.run_bounded(cmd, 600 + 0.2 * len(os.listdir(working)), cwd=work, stdout=log,
                                          stderr=subprocess.STDOUT)
            except subprocess.TimeoutExpired:
                done = subprocess.CompletedProcess(cmd, -1)
        if done.returncode != 0:
            self.fail("update-corpus", "%s: the merge failed (logs/merge-%s.log)" % (target, target))
            return 0
        codec, added = self.codec(target), 0
        date = self.started.strftime("%Y-%m-%d")
        for name in sorted(set(os.listdir(merged)) - existing)[:MAX_SEEDS_ADDED_PER_TARGET]:
            base = os.path.join(seeds, "nightly-" + name[:12])
            if os.path.exists(base + ".bin"):
                continue
            text = ("# Added by ./lab nightly --update-corpus (%s %s): new coverage.\n" % (self.commit[:12], date)
                    + codec.to_text(os.path.join(merged, name)))
            draft, canonical = os.path.join(work, "seed.txt"), os.path.join(work, "seed.bin")
            with open(draft, "w", encoding="utf-8") as f:
                f.write(text)
            codec.to_bytes(draft, canonical)
            with open(canonical, "rb") as f:
                triage.write_files_atomically({base + ".txt": text.encode("utf-8"), base + ".bin": f.read()})
            added += 1
        _say("%s: %d input(s) that add coverage written to %s" % (target, added, os.path.relpath(seeds, self.root)))
        return added

    # -- triage -----------------------------------------------------------------------------------
    def triage(self, fuzz_results: List[dict]) -> None:
        known = triage.known_signatures(self.corpus_dir)
        for result in fuzz_results:
            target, files = result["target"], result.get("crash_files", [])
            if not files:
                continue
            # The smallest first: the one kept for a signature is then the quickest to minimize.
            files = sorted(files, key=lambda p: (os.path.getsize(p), p))
            skipped = files[MAX_CRASHES_TRIAGED_PER_TARGET:]
            files = files[:MAX_CRASHES_TRIAGED_PER_TARGET]
            _say("triaging %d crash input(s) of %s%s" % (len(files), target,
                                                          " (%d more left untriaged)" % len(skipped) if skipped else ""))
            work = os.path.join(self.report_dir, "work", target)
            t = triage.Triage(target, self.binaries["fuzz"][target], self.codec(target), self.corpus_dir, work,
                              self.commit, date=self.started.strftime("%Y-%m-%d"), known=known,
                              repo_root=self.root, log=lambda m, t=target: _say("triage %s: %s" % (t, m)))
            results = t.triage(files)
            statuses = {}
            for r in results:
                statuses[r.status] = statuses.get(r.status, 0) + 1
            _say("triage %s: %s" % (target, ", ".join("%d %s" % (n, s) for s, n in sorted(statuses.items()))))
            for r in results:
                row = r.as_dict()
                row["target"] = target
                row["crash_file"] = os.path.relpath(r.crash_file, self.report_dir)
                if r.stored:
                    row["stored"] = os.path.relpath(r.stored, self.root)
                if r.known_as:
                    row["known_as"] = os.path.relpath(r.known_as, self.root) if os.path.isabs(r.known_as) else r.known_as
                self.summary["crashes"].append(row)
            for path in skipped:
                self.summary["crashes"].append({"target": target, "crash_file": os.path.relpath(path, self.report_dir),
                                                "status": "untriaged", "signature": "", "reproduced": ""})
        counts = {}
        for row in self.summary["crashes"]:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        self.summary["crash_counts"] = counts

    # -- coverage ---------------------------------------------------------------------------------
    def coverage(self) -> None:
        binaries = {t: p for t, p in self.binaries.get("coverage", {}).items() if os.access(p, os.X_OK)}
        if not binaries:
            self.summary["coverage"] = {"status": "failed: no coverage binaries were built"}
            if os.environ.get("ALLOCLAB_NIGHTLY_PREBUILT") is None:
                return  # the build step already named the error
            self.fail("coverage", "no coverage binaries in ALLOCLAB_NIGHTLY_PREBUILT")
            return
        _say("measuring coverage of the working corpora (core/ and hw/, tests excluded)")
        profiles = os.path.join(self.report_dir, "work", "coverage")
        shutil.rmtree(profiles, ignore_errors=True)
        os.makedirs(profiles)
        for target, binary in binaries.items():
            replay = self.coverage_inputs(target, os.path.join(profiles, target + "-inputs"))
            with open(os.path.join(self.logs, "coverage-%s.log" % target), "w") as log:
                coverage_report.replay(binary, replay, profiles, target, log)
        merged = os.path.join(profiles, "merged.profdata")
        try:
            coverage_report.merge_profiles(profiles, merged)
            export = coverage_report.export_summary(merged, list(binaries.values()), self.root)
        except coverage_report.CoverageError as e:
            self.summary["coverage"] = {"status": "failed: %s" % e}
            self.fail("coverage", "%s (logs/coverage-*.log)" % e)
            return
        self.summary["coverage"] = summarize_coverage(export, self.root)
        totals = self.summary["coverage"]
        _say("coverage of core/ and hw/: lines %.1f%%, functions %.1f%%, regions %.1f%% (%d files)" % (
            totals["lines"]["percent"], totals["functions"]["percent"], totals["regions"]["percent"], len(totals["files"])))

    def coverage_inputs(self, target: str, folder: str) -> str:
        """@folder filled with the working corpus of @target (hard links) minus the copies of
        regressions that still crash the fuzzer: the coverage build has no ASan, so such an
        input can corrupt the heap and deadlock the replay in its crash handler."""
        corpus = os.path.join(self.root, ".lab", "fuzz", target, "corpus")
        os.makedirs(folder)
        for name in sorted(os.listdir(corpus)):
            path = os.path.join(corpus, name)
            if name.startswith("regressions-"):
                try:
                    done = triage.run_bounded(["setarch", "-R", self.binaries["fuzz"][target], "-runs=1", "-timeout=10", path],
                                              30, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    if done.returncode != 0:
                        continue
                except subprocess.TimeoutExpired:
                    continue
            try:
                os.link(path, os.path.join(folder, name))
            except OSError:
                shutil.copyfile(path, os.path.join(folder, name))
        return folder

    # -- canaries ---------------------------------------------------------------------------------
    def canaries(self) -> None:
        """Runs the canaries step (run_canaries) and records its outcome in the summary."""
        _say("the fuzzers' own test: the canaries of %s (./lab canaries)" % ",".join(self.args.targets))
        try:
            self.summary["canaries"] = run_canaries(self.root, self.report_dir, self.logs, self.args.targets)
        except NightlyError as e:
            self.summary["canaries"] = {"status": "failed: %s" % e}
            self.fail("canaries", str(e))
            return
        for row in self.summary["canaries"].get("canaries", []):
            _say("canary %s (%s): %s" % (row["name"], row["target"], "found in %ss: %s" % (row["seconds"], row["fired"])
                                         if row["detected"] else "MISSED: %s" % row["fired"]))

    # -- benchmarks -------------------------------------------------------------------------------
    def bench(self) -> None:
        """Runs the benchmark step (run_benchmarks) and records its outcome in the summary."""
        try:
            self.summary["bench"] = run_benchmarks(self.lab_root, self.report_dir, self.logs)
        except NightlyError as e:
            self.summary["bench"] = {"status": "failed: %s" % e}
            self.fail("bench", str(e))


def parse_progress_line(line: str) -> Optional[dict]:
    """libFuzzer's status lines -> {"execs", "cov", "ft", "corpus"} (the fields present), or None.

    Plain mode: "#4096	pulse  cov: 12 ft: 20 corp: 5/112b lim: 4 exec/s: 2048 rss: 30Mb";
    fork mode:  "#42908: cov: 10 ft: 10 corp: 2 exec/s 0 oom/timeout/crash: 0/0/0 time: 0s job: 1"."""
    match = re.match(r"^#(\d+):?\s", line)
    if not match:
        return None
    out = {"execs": int(match.group(1))}
    for key, name in (("cov", "cov"), ("ft", "ft"), ("corp", "corpus")):
        field = re.search(r"\b%s: (\d+)" % key, line)
        if field:
            out[name] = int(field.group(1))
    return out if len(out) > 1 else None


# The coverage step's totals (tools/coverage_report.py, shared with ./lab coverage).
summarize_coverage = coverage_report.summarize_coverage


# ---- Benchmarks and history ----------------------------------------------------------------------

def _run_tool(cmd: List[str], log_path: str, cwd: str) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ %s\n%s%s(exit %d)\n" % (" ".join(cmd), done.stdout, done.stderr, done.returncode))
    return done


def run_canaries(root: str, report_dir: str, logs: str, targets: List[str]) -> dict:
    """The canaries step: fuzz/canaries/canaries.py --targets TARGETS --json canaries.json (in the
    report folder). Returns {"status": "ok", "canaries": rows, "missed": names}, or a "skipped
    (...)" status when the tree has no canaries.py or no canary for these targets. NightlyError
    when the canaries could not run (the unpatched tree does not build or crashes on its corpus,
    another run holds the scratch tree, canaries.py wrote no results)."""
    tool = os.path.join(root, "fuzz", "canaries", "canaries.py")
    if not os.path.isfile(tool):
        return {"status": "skipped (no fuzz/canaries/canaries.py in the tree)"}
    out = os.path.join(report_dir, "canaries.json")
    log = os.path.join(logs, "canaries.log")
    if os.path.exists(out):
        os.unlink(out)  # only this run's results count
    done = _run_tool(["/usr/bin/python3", tool, "--targets", ",".join(targets), "--json", out], log, root)
    try:
        with open(out, encoding="utf-8") as f:
            document = json.load(f)
        rows, missed, error = document["canaries"], document["missed"], document["error"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NightlyError("canaries.py exited %d without its results (%s; log: logs/canaries.log)"
                           % (done.returncode, e)) from e
    if error:
        raise NightlyError("the canaries did not run: %s (log: logs/canaries.log)" % error)
    if not rows:
        return {"status": "skipped (no canary for these targets)"}
    return {"status": "ok", "canaries": rows, "missed": missed}


def benchmark_values(report: dict) -> Dict[str, float]:
    """Google Benchmark JSON -> benchmark name -> its median in ns over the repetitions, with
    compare_runs.py's metric: the ns_per_allocation counter where a row has one, else real time
    (a report holding only aggregates gives its median rows)."""
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
    repetitions: Dict[str, List[float]] = {}
    medians: Dict[str, float] = {}
    for b in report.get("benchmarks", []):
        name = b.get("run_name") or b.get("name", "")
        if "ns_per_allocation" in b:
            ns = float(b["ns_per_allocation"])
        elif "real_time" in b:
            ns = float(b["real_time"]) * scale.get(b.get("time_unit", "ns"), 1.0)
        else:
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = ns
        else:
            repetitions.setdefault(name, []).append(ns)
    values = dict(medians)
    for name, samples in repetitions.items():
        samples.sort()
        middle = len(samples) // 2
        values[name] = samples[middle] if len(samples) % 2 else (samples[middle - 1] + samples[middle]) / 2
    return values


def run_benchmarks(root: str, report_dir: str, logs: str) -> dict:
    """The benchmark step: `./lab bench` into DIR/bench.json, `tools/benchdb.py record` (history),
    `tools/compare_runs.py` against the newest run of the previous recorded commit (`benchdb.py
    previous-commit --before HEAD`, `find-run`, `export`), and the trend over the last recorded
    runs (`runs --limit`, `export`). Returns the bench
    section of the summary: status, run_id, previous, regression, compare (rows of the
    comparison), trend (one row per recorded run: commit, values by benchmark). Raises
    NightlyError when a tool is missing or fails."""
    benchdb, compare = os.path.join(root, "tools", "benchdb.py"), os.path.join(root, "tools", "compare_runs.py")
    for tool in (benchdb, compare):
        if not os.path.isfile(tool):
            raise NightlyError("%s is missing (benchmark history: it arrives with the benchdb work)" %
                               os.path.relpath(tool, root))
    log = os.path.join(logs, "bench.log")
    bench_json = os.path.join(report_dir, "bench.json")
    _say("running the benchmarks (./lab bench --repetitions %d --filter '%s')" % (BENCH_REPETITIONS, BENCH_FILTER))
    with open(log, "a") as out:
        done = subprocess.run([os.path.join(root, "lab"), "bench", "--repetitions", str(BENCH_REPETITIONS),
                               "--filter", BENCH_FILTER, "--out", bench_json], cwd=root, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0 or not os.path.isfile(bench_json):
        raise NightlyError("./lab bench failed (exit %d; logs/bench.log)" % done.returncode)
    py = "/usr/bin/python3"
    recorded = _run_tool([py, benchdb, "record", bench_json, "--config", "opt", "--allocator", "jemalloc",
                          "--miniport", "sim"], log, root)
    if recorded.returncode != 0:
        raise NightlyError("benchdb.py record failed: %s" % recorded.stderr.strip()[-300:])
    run_id = recorded.stdout.strip().split()[-1] if recorded.stdout.strip() else ""
    section = {"status": "ok", "run_id": run_id, "previous": "", "previous_commit": "", "regression": False,
               "compare": [], "trend": []}
    commit = _git(root, "rev-parse", "HEAD")
    # The newest clean recorded commit other than this one, then its newest run of this setup.
    previous = _run_tool([py, benchdb, "previous-commit"] + (["--before", commit, "--git-dir", root] if commit else []),
                         log, root)
    prev_commit = previous.stdout.strip().split()[0] if previous.returncode == 0 and previous.stdout.strip() else ""
    prev_id = ""
    if prev_commit:
        found = _run_tool([py, benchdb, "find-run", "--commit", prev_commit, "--config", "opt", "--allocator", "jemalloc",
                           "--miniport", "sim"], log, root)
        prev_id = found.stdout.strip().split()[0] if found.returncode == 0 and found.stdout.strip() else ""
    section["previous_commit"] = prev_commit
    if prev_id:
        old_json, compare_json = os.path.join(report_dir, "bench-previous.json"), os.path.join(report_dir, "compare.json")
        exported = _run_tool([py, benchdb, "export", prev_id, old_json], log, root)
        if exported.returncode != 0:
            raise NightlyError("benchdb.py export %s failed: %s" % (prev_id, exported.stderr.strip()[-300:]))
        # Judged against the jemalloc anchor of each run: the previous run was recorded at
        # another time, when the machine may have been faster or slower as a whole.
        compared = _run_tool([py, compare, old_json, bench_json, "--json", compare_json,
                              "--normalize-by", "BM_anchor_jemalloc"], log, root)
        if compared.returncode not in (0, 2):
            raise NightlyError("compare_runs.py failed (exit %d): %s" % (compared.returncode, compared.stderr.strip()[-300:]))
        section.update(previous=prev_id, regression=compared.returncode == 2)
        try:
            with open(compare_json, encoding="utf-8") as f:
                section["compare"] = compare_rows(json.load(f))
        except (OSError, ValueError) as e:
            raise NightlyError("compare_runs.py wrote no readable %s: %s" % (compare_json, e)) from e
    # `runs` lists the runs newest last, one a line starting with its id (after a header line).
    runs = _run_tool([py, benchdb, "runs", "--limit", str(BENCH_TREND_RUNS)], log, root)
    ids = [line.split()[0] for line in runs.stdout.splitlines()
           if line.split() and line.split()[0].isdigit()] if runs.returncode == 0 else []
    with tempfile.TemporaryDirectory() as tmp:
        for rid in ids[-BENCH_TREND_RUNS:]:
            out = os.path.join(tmp, "run.json")
            if _run_tool([py, benchdb, "export", rid, out], log, root).returncode != 0:
                continue
            with open(out, encoding="utf-8") as f:
                report = json.load(f)
            context = report.get("context", {})
            section["trend"].append({"run": rid, "commit": str(context.get("git_commit", ""))[:12],
                                     "date": str(context.get("date", ""))[:10], "values": benchmark_values(report)})
    return section


def compare_rows(document) -> List[dict]:
    """The rows of compare_runs.py's --json output: a list of objects, or the first list of
    objects found under a key (e.g. {"benchmarks": [...]}), as flat dicts for a table."""
    if isinstance(document, list):
        rows = document
    elif isinstance(document, dict):
        rows = next((v for v in document.values() if isinstance(v, list) and v and isinstance(v[0], dict)), [])
    else:
        rows = []
    return [{k: v for k, v in row.items() if not isinstance(v, (list, dict))} for row in rows if isinstance(row, dict)]


# ---- The report -----------------------------------------------------------------------------------

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0} th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{display:inline-block;padding:.2em .7em;border-radius:4px;color:#fff;font-weight:bold}
.v0{background:#2ca02c}.v1{background:#d62728}.v2{background:#ff7f0e}.v3{background:#7f7f7f}.v4{background:#9467bd}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow-x:auto;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:1em} .muted{color:#777} svg text{font:11px sans-serif}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def svg_line_chart(title: str, series: Dict[str, List[Tuple[float, float]]], x_label: str, y_label: str,
                   x_ticks: Optional[List[str]] = None, width: int = 520, height: int = 260) -> str:
    """An inline SVG line chart: one polyline per series (name -> [(x, y)]), axes, legend.
    @x_ticks: labels for x = 0, 1, 2, ... (categorical x, e.g. commits)."""
    left, right, top, bottom = 60, 130, 28, 40
    points = [p for values in series.values() for p in values]
    out = ['<svg role="img" width="%d" height="%d" viewBox="0 0 %d %d">'
           % (width, height, width, height), '<title>%s</title>' % _e(title),
           '<text x="%d" y="16" font-weight="bold">%s</text>' % (left, _e(title))]
    if not points:
        out.append('<text x="%d" y="%d" class="muted">no data</text></svg>' % (left, height // 2))
        return "".join(out)
    x_min, x_max = min(p[0] for p in points), max(p[0] for p in points)
    y_min, y_max = 0.0, max(p[1] for p in points)
    if x_max == x_min:
        x_max = x_min + 1
    if y_max <= y_min:
        y_max = y_min + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x):
        return left + (x - x_min) / (x_max - x_min) * plot_w

    def sy(y):
        return top + plot_h - (y - y_min) / (y_max - y_min) * plot_h

    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>' % (left, top + plot_h, left + plot_w, top + plot_h))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>' % (left, top, left, top + plot_h))
    for i in range(5):
        y = y_min + (y_max - y_min) * i / 4
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (left - 4, sy(y) + 4, _e(_short_number(y))))
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>' % (left, sy(y), left + plot_w, sy(y)))
    if x_ticks:
        for i, label in enumerate(x_ticks):
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (sx(i), top + plot_h + 14, _e(label)))
    else:
        for i in range(5):
            x = x_min + (x_max - x_min) * i / 4
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (sx(x), top + plot_h + 14, _e(_short_number(x))))
    out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' % (left + plot_w // 2, height - 6, _e(x_label)))
    out.append('<text x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>'
               % (top + plot_h // 2, top + plot_h // 2, _e(y_label)))
    for i, (name, values) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        if values:
            coords = " ".join("%.1f,%.1f" % (sx(x), sy(y)) for x, y in values)
            out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (colour, coords))
            for x, y in values if len(values) < 40 else []:
                out.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>' % (sx(x), sy(y), colour))
        ly = top + 14 * i + 6
        out.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' % (left + plot_w + 10, ly - 8, colour))
        out.append('<text x="%d" y="%d">%s</text>' % (left + plot_w + 24, ly + 1, _e(name[:18])))
    out.append("</svg>")
    return "".join(out)


def svg_bar_chart(title: str, values: Dict[str, float], unit: str, width: int = 520, height: int = 0) -> str:
    """An inline SVG horizontal bar chart (label -> value)."""
    bar, left = 22, 140
    height = height or 40 + bar * max(1, len(values))
    out = ['<svg role="img" width="%d" height="%d" viewBox="0 0 %d %d">'
           % (width, height, width, height), '<title>%s</title>' % _e(title),
           '<text x="4" y="16" font-weight="bold">%s</text>' % _e(title)]
    top = max(values.values(), default=0) or 1
    for i, (label, value) in enumerate(values.items()):
        y = 28 + i * bar
        w = (width - left - 90) * value / top
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 6, y + 14, _e(label)))
        out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (left, y + 2, w, bar - 6, PALETTE[i % len(PALETTE)]))
        out.append('<text x="%.1f" y="%d">%s %s</text>' % (left + w + 4, y + 14, _e(_short_number(value)), _e(unit)))
    out.append("</svg>")
    return "".join(out)


def _short_number(value: float) -> str:
    if value >= 1e6:
        return "%.1fM" % (value / 1e6)
    if value >= 1e4:
        return "%.0fk" % (value / 1e3)
    if value == int(value):
        return "%d" % value
    return "%.3g" % value


def _table(headers: List[str], rows: List[List], numeric: Optional[set] = None) -> str:
    numeric = numeric or set()
    out = ["<table><tr>" + "".join("<th>%s</th>" % _e(h) for h in headers) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join('<td%s>%s</td>' % (' class="num"' if i in numeric else "", _e(c))
                                    for i, c in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def bench_trend(trend: List[dict]) -> Tuple[List[str], List[str], Dict[str, List[Tuple[float, float]]]]:
    """(commit labels, benchmark names, series name -> [(run index, ns)]) of the trend rows."""
    labels = [row.get("commit", "")[:7] or str(row.get("run", "")) for row in trend]
    names = sorted({name for row in trend for name in row.get("values", {})})
    series = {name: [(i, float(row["values"][name])) for i, row in enumerate(trend) if name in row.get("values", {})]
              for name in names}
    return labels, names, series


def render_bench_html(bench: dict) -> str:
    status = bench.get("status", "not run")
    if status != "ok":
        return '<p class="muted">Benchmarks: %s.</p>' % _e(status)
    out = ['<p>Run <code>%s</code> recorded in the history%s.</p>' % (
        _e(bench.get("run_id", "")), ", compared with <code>%s</code>" % _e(bench["previous"]) if bench.get("previous")
        else "; no earlier recorded commit to compare with")]
    if bench.get("compare"):
        headers = list(dict.fromkeys(k for row in bench["compare"] for k in row))
        out.append("<h3>Against the previous recorded commit%s</h3>" % (" (regression)" if bench.get("regression") else ""))
        out.append(_table(headers, [["%.4g" % row[h] if isinstance(row.get(h), float) else row.get(h, "") for h in headers]
                                    for row in bench["compare"]]))
    trend = bench.get("trend", [])
    if trend:
        labels, names, series = bench_trend(trend)
        out.append("<h3>Trend over recorded commits (ns, median of repetitions)</h3>")
        out.append(svg_line_chart("benchmark time per recorded commit", series, "commit", "ns", x_ticks=labels,
                                  width=760, height=300))
        out.append(_table(["benchmark"] + labels, [[n] + [_short_number(row["values"][n]) if n in row["values"] else ""
                                                           for row in trend] for n in names],
                          numeric=set(range(1, len(labels) + 1))))
    return "".join(out)


def prune_cell(pruned: Optional[dict]) -> str:
    """The prune column of the fuzzing table: "5850 -> 1025 files in 13s", "failed after 3s: ...",
    "not needed (1200 files)", "skipped (--no-prune)", or "" for a row without one."""
    if not pruned:
        return ""
    status = pruned.get("status", "")
    if status == "pruned":
        return "%d -> %d files in %s" % (pruned.get("files_before", 0), pruned.get("files_after", 0),
                                         format_seconds(pruned.get("seconds", 0)))
    if status == "failed":
        return "failed after %s: %s (corpus unchanged)" % (format_seconds(pruned.get("seconds", 0)), pruned.get("reason", ""))
    if status == "not needed":
        return "not needed (%d files)" % pruned.get("files_before", 0)
    return status


def canary_cells(row: dict) -> Tuple[str, str, str, str, str]:
    """A canary's row as the report shows it: name, target, yes/no, seconds, what fired."""
    found = {True: "yes", False: "NO"}.get(row.get("detected"), "-")
    seconds = "%.1f" % row["seconds"] if isinstance(row.get("seconds"), (int, float)) else "-"
    return (row.get("name", ""), row.get("target", ""), found, seconds, row.get("fired", ""))


def render_canaries_html(canaries: dict) -> str:
    out = ["<h2>Canaries: the fuzzers' own test</h2>"]
    if canaries.get("status") != "ok":
        return out[0] + '<p class="muted">%s</p>' % _e(canaries.get("status", "not run"))
    missed = canaries.get("missed", [])
    out.append("<p>%d of %d planted bugs found%s.</p>" % (
        len(canaries["canaries"]) - len(missed), len(canaries["canaries"]),
        _e("; missed: " + ", ".join(missed)) if missed else ""))
    out.append(_table(["canary", "target", "found", "seconds", "what fired"],
                      [list(canary_cells(row)) for row in canaries["canaries"]], numeric={3}))
    return "".join(out)


def render_html(summary: dict) -> str:
    """The one-page report: verdict, fuzzing table + charts, crashes with traces, coverage,
    benchmarks. Self-contained: inline CSS and SVG, no scripts, no external references."""
    code = summary.get("exit_status", EXIT_RUN_FAILED)
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>alloclab nightly %s</title>"
           "<style>%s</style></head><body>" % (_e(summary.get("commit", "")[:12]), CSS)]
    out.append("<h1>alloclab nightly</h1>")
    out.append('<p>Commit <code>%s</code>%s, started %s, budget %s, %s job(s) per target. '
               '<span class="verdict v%d">%s (exit %d)</span></p>' % (
                   _e(summary.get("commit", "")[:12]), " (uncommitted changes)" if summary.get("dirty") else "",
                   _e(summary.get("started", "")), _e(format_seconds(summary.get("budget_seconds", 0))),
                   _e(summary.get("jobs", "")), code, _e(VERDICTS.get(code, "?")), code))
    if summary.get("errors"):
        out.append("<h2>Errors</h2><ul>" + "".join("<li>%s</li>" % _e(e) for e in summary["errors"]) + "</ul>")
    fuzz = summary.get("fuzz", [])
    out.append("<h2>Fuzzing</h2>")
    out.append(_table(["target", "time", "executions", "exec/s", "cov", "ft", "corpus before", "corpus after", "crash inputs",
                       "prune"],
                      [[f["target"], format_seconds(f.get("elapsed", f.get("seconds", 0))), f.get("execs", 0),
                        f.get("exec_per_sec", 0), f.get("cov", 0), f.get("ft", 0), f.get("corpus_before", 0),
                        f.get("corpus_after", 0), len(f.get("crash_files", [])), prune_cell(f.get("prune"))] for f in fuzz],
                      numeric=set(range(2, 9))))
    out.append('<div class="charts">')
    out.append(svg_line_chart("coverage (cov) over the run", {f["target"]: [(s["t"], s["cov"]) for s in f.get("series", [])]
                                                                for f in fuzz}, "seconds into the target's share", "cov"))
    out.append(svg_line_chart("corpus size over the run", {f["target"]: [(s["t"], s["corpus"]) for s in f.get("series", [])]
                                                             for f in fuzz}, "seconds into the target's share", "inputs"))
    out.append(svg_bar_chart("exec/s per target", {f["target"]: f.get("exec_per_sec", 0) for f in fuzz}, "exec/s"))
    out.append("</div>")
    crashes = summary.get("crashes", [])
    counts = summary.get("crash_counts", {})
    out.append("<h2>Crashes</h2>")
    out.append("<p>%s</p>" % _e(", ".join("%s: %d" % (k, v) for k, v in sorted(counts.items())) or "none"))
    if crashes:
        out.append(_table(["target", "status", "signature", "reproduced", "stored as / known as", "input"],
                          [[c["target"], c["status"] + (" (flaky)" if c.get("flaky") else ""), c.get("signature", ""),
                            c.get("reproduced", ""), c.get("stored") or c.get("known_as", ""), c.get("crash_file", "")]
                           for c in crashes]))
        for c in crashes:
            if c["status"] == "new":
                out.append("<h3>New: %s</h3><p>%s (%s), stored input reproduced %s</p><pre>%s</pre>" % (
                    _e(c.get("signature", "")), _e(c.get("stored", "")), _e(c["target"]), _e(c.get("stored_reproduced", "")),
                    _e(c.get("trace", ""))))
    cov = summary.get("coverage", {})
    out.append("<h2>Coverage of core/ and hw/ (tests excluded), over the working corpora</h2>")
    if cov.get("status") == "ok":
        out.append(_table(["", "covered", "total", "%"], [[k, cov[k]["covered"], cov[k]["count"], "%.1f" % cov[k]["percent"]]
                                                            for k in ("lines", "functions", "regions")], numeric={1, 2, 3}))
        out.append(svg_bar_chart("line coverage per file (%)", {r["file"]: r["lines_percent"] for r in cov.get("files", [])}, "%",
                                 width=760))
    else:
        out.append('<p class="muted">%s</p>' % _e(cov.get("status", "not run")))
    out.append(render_canaries_html(summary.get("canaries", {})))
    out.append("<h2>Benchmarks</h2>")
    out.append(render_bench_html(summary.get("bench", {})))
    out.append('<p class="muted">Files: summary.json, summary.md, logs/, crashes/ in %s</p></body></html>'
               % _e(summary.get("report_dir", "")))
    return "\n".join(out)


def render_markdown(summary: dict) -> str:
    code = summary.get("exit_status", EXIT_RUN_FAILED)
    lines = ["# alloclab nightly %s" % summary.get("commit", "")[:12], "",
             "Verdict: **%s** (exit %d). Started %s, budget %s, %s job(s) per target." % (
                 VERDICTS.get(code, "?"), code, summary.get("started", ""), format_seconds(summary.get("budget_seconds", 0)),
                 summary.get("jobs", "")), ""]
    if summary.get("errors"):
        lines += ["## Errors", ""] + ["- " + e for e in summary["errors"]] + [""]
    lines += ["## Fuzzing", "", "| target | time | executions | exec/s | cov | ft | corpus | crash inputs | prune |",
              "|---|---|---|---|---|---|---|---|---|"]
    for f in summary.get("fuzz", []):
        lines.append("| %s | %s | %d | %d | %d | %d | %d -> %d | %d | %s |" % (
            f["target"], format_seconds(f.get("elapsed", f.get("seconds", 0))), f.get("execs", 0), f.get("exec_per_sec", 0),
            f.get("cov", 0), f.get("ft", 0), f.get("corpus_before", 0), f.get("corpus_after", 0), len(f.get("crash_files", [])),
            prune_cell(f.get("prune"))))
    counts = summary.get("crash_counts", {})
    lines += ["", "## Crashes", "", ", ".join("%s: %d" % kv for kv in sorted(counts.items())) or "none", ""]
    for c in summary.get("crashes", []):
        if c["status"] in ("new", "known", "unreproducible"):
            lines.append("- %s %s%s: `%s` %s" % (c["target"], c["status"], " (flaky)" if c.get("flaky") else "",
                                                c.get("signature", ""), c.get("stored") or c.get("known_as", "")))
    cov = summary.get("coverage", {})
    lines += ["", "## Coverage (core/ and hw/, tests excluded)", ""]
    if cov.get("status") == "ok":
        lines.append("lines %.1f%%, functions %.1f%%, regions %.1f%%" % (
            cov["lines"]["percent"], cov["functions"]["percent"], cov["regions"]["percent"]))
    else:
        lines.append(cov.get("status", "not run"))
    lines += ["", "## Canaries (the fuzzers' own test)", ""]
    canaries = summary.get("canaries", {})
    if canaries.get("status") == "ok":
        lines.append("%d of %d found%s" % (len(canaries["canaries"]) - len(canaries["missed"]), len(canaries["canaries"]),
                                          "; MISSED: " + ", ".join(canaries["missed"]) if canaries["missed"] else ""))
        lines += ["", "| canary | target | found | seconds | what fired |", "|---|---|---|---|---|"]
        for row in canaries["canaries"]:
            lines.append("| %s | %s | %s | %s | %s |" % canary_cells(row))
    else:
        lines.append(canaries.get("status", "not run"))
    bench = summary.get("bench", {})
    lines += ["", "## Benchmarks", ""]
    if bench.get("status") == "ok":
        lines.append("run %s%s%s" % (bench.get("run_id", ""), ", compared with %s" % bench["previous"] if bench.get("previous") else "",
                                     ": REGRESSION" if bench.get("regression") else ""))
        labels, names, _ = bench_trend(bench.get("trend", []))
        if names:
            lines += ["", "| benchmark | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
            for n in names:
                lines.append("| %s | %s |" % (n, " | ".join(_short_number(r["values"][n]) if n in r["values"] else ""
                                                           for r in bench["trend"])))
    else:
        lines.append(bench.get("status", "not run"))
    return "\n".join(lines) + "\n"


def exit_status(summary: dict) -> int:
    """3 if the run failed, else 1 if a new crash was stored, else 4 if a canary was missed, else 2
    if a benchmark regressed, else 0."""
    if summary.get("errors"):
        return EXIT_RUN_FAILED
    if any(c.get("status") == "new" for c in summary.get("crashes", [])):
        return EXIT_NEW_CRASH
    if summary.get("canaries", {}).get("missed"):
        return EXIT_CANARY_MISSED
    if summary.get("bench", {}).get("regression"):
        return EXIT_PERF_REGRESSION
    return EXIT_CLEAN


def write_report(run: Run) -> None:
    summary = run.summary
    summary["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    summary["exit_status"] = exit_status(summary)
    summary["verdict"] = VERDICTS[summary["exit_status"]]
    files = {
        os.path.join(run.report_dir, "summary.json"): (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode(),
        os.path.join(run.report_dir, "summary.md"): render_markdown(summary).encode(),
        os.path.join(run.report_dir, "report.html"): render_html(summary).encode(),
    }
    try:
        triage.write_files_atomically(files)
    except triage.TriageError as e:
        raise NightlyError("cannot write the report: %s" % e) from e
    latest = os.path.join(run.nightly_dir, "latest")
    temp = latest + ".new"
    if os.path.lexists(temp):
        os.unlink(temp)
    os.symlink(os.path.basename(run.report_dir), temp)
    os.replace(temp, latest)


def main(argv: List[str]) -> int:
    lab_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = os.path.abspath(os.environ.get("ALLOCLAB_NIGHTLY_ROOT") or lab_root)
    try:
        args = parse_args(argv, fuzz_targets(root))
    except NightlyError as e:
        print("nightly: error: %s (./lab nightly --help)" % e, file=sys.stderr)
        return EXIT_RUN_FAILED
    run = None
    try:
        min_free = int(os.environ.get("ALLOCLAB_NIGHTLY_MIN_FREE_MB", "500"))
        os.makedirs(os.path.join(root, ".lab"), exist_ok=True)
        free = shutil.disk_usage(os.path.join(root, ".lab")).free // (1 << 20)
        if free < min_free:
            raise NightlyError("only %d MiB free on the disk of %s; nightly needs %d MiB (corpora, crashes, profiles)"
                               % (free, os.path.join(root, ".lab"), min_free))
        run = Run(args, root, lab_root)
        os.makedirs(run.logs)
        _say("commit %s%s, targets %s, fuzzing budget %s, %d job(s), report %s" % (
            run.commit[:12], " (dirty)" if run.dirty else "", ",".join(args.targets), format_seconds(args.budget_seconds),
            args.jobs, os.path.relpath(run.report_dir, root)))
        run.build()
        deadline = time.time() + args.budget_seconds
        for i, target in enumerate(args.targets):
            # Each target gets an even share of what is left, so an early finish is not lost.
            share = max(1, int((deadline - time.time()) / (len(args.targets) - i)))
            # The prune comes first and out of the share: fork mode would spend as long loading
            # the unpruned corpus (a merge runs every input once, as that load does), and the
            # fuzzer then starts on the small corpus; later targets share what is left.
            pruned = run.prune_step(target)
            result = run.fuzz(target, i, max(1, int(share - pruned.get("seconds", 0))), deadline)
            result["prune"] = pruned
            run.summary["fuzz"].append(result)
        run.triage(run.summary["fuzz"])
        run.coverage()
        if not args.no_canaries:
            run.canaries()
        if not args.no_bench:
            run.bench()
    except (NightlyError, triage.TriageError) as e:
        if run is None:
            print("nightly: error: %s" % e, file=sys.stderr)
            return EXIT_RUN_FAILED
        run.fail("run", str(e))
    except OSError as e:
        reason = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        if run is None:
            print("nightly: error: %s (%s)" % (reason, e.filename or ""), file=sys.stderr)
            return EXIT_RUN_FAILED
        run.fail("run", "%s (%s)" % (reason, e.filename or ""))
    try:
        write_report(run)
    except (NightlyError, OSError) as e:
        print("nightly: error: %s" % e, file=sys.stderr)
        return EXIT_RUN_FAILED
    code = run.summary["exit_status"]
    counts = run.summary.get("crash_counts", {})
    _say("crashes: %s" % (", ".join("%d %s" % (v, k) for k, v in sorted(counts.items())) or "none"))
    for c in run.summary["crashes"]:
        if c["status"] == "new":
            _say("NEW crash in %s: %s -> %s.{bin,txt}" % (c["target"], c["signature"], c["stored"]))
    _say("report: %s" % os.path.relpath(os.path.join(run.report_dir, "report.html"), root))
    _say("verdict: %s (exit %d)" % (VERDICTS[code], code))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
