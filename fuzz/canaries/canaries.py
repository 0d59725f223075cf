#!/usr/bin/python3
"""canaries.py — the fuzzers' own test: plant each known bug of fuzz/canaries/ and fuzz for it.

Run as `./lab canaries [--budget S] [--only NAME]` (this file is its body; Debian's
/usr/bin/python3, standard library only).

For every canary of fuzz/canaries/canaries.txt (NAME TARGET BUDGET DESCRIPTION):
  1. sync the working tree (tracked and untracked, not ignored, files) into ONE fixed scratch
     directory, .lab/canaries/tree, so its Bazel output base and the shared disk cache are
     reused and only the files a patch touches recompile;
  2. `git apply` fuzz/canaries/NAME.patch there (a patch that no longer applies is a failing
     canary, reported as such);
  3. build //fuzz/targets:TARGET_raw with --config=fuzz and fuzz it on one process (no -jobs)
     from a fresh copy of corpus/TARGET/{seeds,regressions}, with the target's options file and
     dictionary, for at most BUDGET seconds (-max_total_time; --budget overrides every canary's);
  4. detected = the fuzzer reported a crash AND the crashing input runs clean on the unpatched
     tree (a crash the unpatched tree has too is a bug of its own, not the canary: reported as
     "no", with what fired on both); seconds = wall time from the fuzzer's start to the first
     line of the report; "what fired" names the check (verifier rule, oracle mismatch,
     AddressSanitizer, LeakSanitizer, the sim's GPU page fault, ...);
  5. revert the patch.
A canary whose TARGET is not (yet) a fuzz target of the tree is shown as "target missing".
Before the canaries, a baseline replays the seeds and regressions of every target on the
unpatched scratch tree: a crash there would make every detection meaningless (--no-baseline
skips it).

Output: a table on stdout, the same as Markdown in .lab/canaries/table.md, logs of each build
and fuzz run under .lab/canaries/logs/; with --json FILE also the rows as JSON (write_json:
./lab nightly's canaries step reads it). --targets LIST keeps the canaries of those targets. Exit status: 0 when every canary that ran was detected,
1 when one was missed (or its patch did not apply, or its build failed, or the baseline
crashed), 2 for a usage error (unknown canary, bad budget) or a bad manifest.

`--check` only validates the manifest and that every patch applies to the current tree
(`git apply --check` on a temporary copy of the files it touches); fuzz/canaries:canaries_test
runs it.
"""

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import fuzz_options  # noqa: E402  (tools/fuzz_options.py: a target's libFuzzer flags)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST = os.path.join("fuzz", "canaries", "canaries.txt")
TARGETS_BUILD = os.path.join("fuzz", "targets", "BUILD.bazel")
SCRATCH = os.path.join(".lab", "canaries")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_BUDGET = 3600
# Grace beyond -max_total_time before the fuzzer is killed: loading and replaying the corpus
# happens before libFuzzer's clock is checked.
KILL_GRACE_S = 60


class UsageError(Exception):
    """A mistake in how the tool was called or in the manifest: exit 2."""


# ---- Manifest ------------------------------------------------------------------------------


class Canary:
    def __init__(self, name, target, budget, description, line):
        self.name = name
        self.target = target
        self.budget = budget
        self.description = description
        self.line = line

    @property
    def patch(self):
        return os.path.join("fuzz", "canaries", self.name + ".patch")


def read_manifest(root):
    """The canaries and the planned targets of the manifest; UsageError naming the bad line."""
    path = os.path.join(root, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"cannot read the manifest {MANIFEST}: {e.strerror}")
    canaries, planned, seen = [], set(), set()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{MANIFEST}:{number}"
        fields = line.split(None, 3)
        if fields[0] == "planned-target":
            if len(fields) < 2 or not NAME_RE.match(fields[1]):
                raise UsageError(f"{where}: 'planned-target' needs a target name")
            planned.add(fields[1])
            continue
        if len(fields) < 4:
            raise UsageError(f"{where}: expected 'NAME TARGET BUDGET DESCRIPTION', got '{line}'")
        name, target, budget, description = fields
        if not NAME_RE.match(name):
            raise UsageError(f"{where}: canary name '{name}' must be lower case letters, digits and _")
        if name in seen:
            raise UsageError(f"{where}: canary '{name}' is listed twice")
        if not NAME_RE.match(target):
            raise UsageError(f"{where}: target '{target}' is not a target name")
        if not re.fullmatch(r"[1-9][0-9]*", budget) or int(budget) > MAX_BUDGET:
            raise UsageError(f"{where}: budget '{budget}' must be whole seconds from 1 to {MAX_BUDGET}")
        seen.add(name)
        canaries.append(Canary(name, target, int(budget), description, number))
    if not canaries:
        raise UsageError(f"{MANIFEST} lists no canaries")
    return canaries, planned


def fuzz_targets(root):
    """FUZZ_TARGETS of fuzz/targets/BUILD.bazel (one quoted name a line), as ./lab fuzz reads it."""
    try:
        with open(os.path.join(root, TARGETS_BUILD), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    block = re.search(r"^FUZZ_TARGETS = \[(.*?)^\]", text, re.S | re.M)
    return re.findall(r'^\s*"([A-Za-z0-9_]+)",?\s*$', block.group(1), re.M) if block else []


def patch_paths(patch_text):
    """The files a unified diff touches (its '+++ b/PATH' lines)."""
    return sorted(set(re.findall(r"^\+\+\+ b/(\S+)", patch_text, re.M)))


def check_patches(root, canaries, planned):
    """--check: each patch exists, has a header, touches files that exist and applies cleanly;
    each target is a fuzz target or a planned one. Returns a list of problems."""
    problems = []
    targets = set(fuzz_targets(root))
    if not targets:
        problems.append(f"no FUZZ_TARGETS found in {TARGETS_BUILD}")
    for c in canaries:
        if c.target not in targets and c.target not in planned:
            problems.append(f"{c.name}: target '{c.target}' is neither in FUZZ_TARGETS of "
                            f"{TARGETS_BUILD} ({', '.join(sorted(targets))}) nor a planned-target")
        try:
            with open(os.path.join(root, c.patch), encoding="utf-8") as f:
                text = f.read()
        except OSError:
            problems.append(f"{c.name}: {c.patch} is missing")
            continue
        if not text.startswith("#"):
            problems.append(f"{c.name}: {c.patch} must start with its header comment (# lines)")
        paths = patch_paths(text)
        if not paths:
            problems.append(f"{c.name}: {c.patch} holds no diff")
            continue
        with tempfile.TemporaryDirectory(prefix="canary-check-") as tmp:
            missing = [p for p in paths if not os.path.isfile(os.path.join(root, p))]
            if missing:
                problems.append(f"{c.name}: {c.patch} touches {', '.join(missing)}, not in the tree")
                continue
            for p in paths:
                os.makedirs(os.path.dirname(os.path.join(tmp, p)), exist_ok=True)
                shutil.copyfile(os.path.join(root, p), os.path.join(tmp, p))
            ok, message = git_apply(tmp, os.path.join(root, c.patch), check=True)
            if not ok:
                problems.append(f"{c.name}: {c.patch} no longer applies: {message}")
    return problems


# ---- Scratch tree --------------------------------------------------------------------------


def tree_files(root):
    """Tracked and untracked, non-ignored files of the working tree (relative paths)."""
    out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, check=True).stdout
    files = []
    for name in sorted(set(out.decode("utf-8", "surrogateescape").split("\0"))):
        if name and os.path.isfile(os.path.join(root, name)) and not os.path.islink(os.path.join(root, name)):
            files.append(name)
    return files


def sync_tree(root, tree):
    """Makes @tree a copy of the working tree: copies what differs (size or mtime; copy2 keeps
    the mtime, so an unchanged file is not touched and Bazel does not recompile it), removes
    what the tree no longer has. Bazel's convenience symlinks at the top stay."""
    wanted = tree_files(root)
    extra = ["user.bazelrc"]  # personal Bazel settings: ignored by git, still part of the build
    for name in extra:
        if os.path.isfile(os.path.join(root, name)):
            wanted.append(name)
    wanted_set = set(wanted)
    copied = 0
    for name in wanted:
        src, dst = os.path.join(root, name), os.path.join(tree, name)
        s = os.stat(src)
        try:
            d = os.lstat(dst)
            same = d.st_size == s.st_size and d.st_mtime_ns == s.st_mtime_ns and not os.path.islink(dst)
        except FileNotFoundError:
            same = False
        if not same:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.lexists(dst):
                os.unlink(dst)
            shutil.copy2(src, dst)
            copied += 1
    removed = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        rel_dir = os.path.relpath(dirpath, tree)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if not d.startswith("bazel-")]
            filenames = [f for f in filenames if not f.startswith("bazel-")]
        for f in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, f))
            if rel not in wanted_set:
                os.unlink(os.path.join(dirpath, f))
                removed += 1
    return copied, removed


def git_apply(tree, patch, check=False, reverse=False):
    """`git apply` @patch inside @tree (no repository needed). Returns (ok, message)."""
    cmd = ["git", "apply", "--whitespace=nowarn"]
    if check:
        cmd.append("--check")
    if reverse:
        cmd.append("-R")
    cmd.append(patch)
    # GIT_DIR pointing nowhere keeps git from finding an enclosing repository (the scratch tree
    # lives inside the worktree), so paths are taken relative to @tree.
    env = dict(os.environ, GIT_DIR=os.path.join(tree, ".no-git"), GIT_CEILING_DIRECTORIES=tree)
    r = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=env)
    message = " ".join(r.stderr.split())
    return r.returncode == 0, message


# ---- Bazel in the scratch tree ---------------------------------------------------------------


def bazel(tree, args, log):
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "CXX")}
    # The scratch tree has its own Bazel server: let it go away soon after the run.
    cmd = ["bazel", "--max_idle_secs=300"] + args
    with open(log, "w", encoding="utf-8") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        r = subprocess.run(cmd, cwd=tree, stdout=out, stderr=subprocess.STDOUT, env=env)
    return r.returncode


def build_targets(tree, targets, log):
    labels = [f"//fuzz/targets:{t}_raw" for t in targets]
    return bazel(tree, ["build", "--config=fuzz", "--color=no", "--curses=no", "--noshow_progress"]
                 + labels, log) == 0


def bazel_bin(tree):
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "CXX")}
    r = subprocess.run(["bazel", "--max_idle_secs=300", "info", "--config=fuzz", "bazel-bin"],
                       cwd=tree, capture_output=True, text=True, env=env)
    return r.stdout.strip() if r.returncode == 0 else None


# ---- Fuzzing ---------------------------------------------------------------------------------

# The first line of an abort of the handle tables (ht_bug) or of hw/gpu's address spaces
# ("gpu_as_destroy: ..."). gpu_as_check returns its findings to its caller instead (older
# builds printed them, and the damage seeds make it report on purpose), so a line of it is not
# an abort.
ABORT_LINE = r"^(handle_table_\w+|gpu_as_(?!check:)\w+): "

# What a crash report starts with, in order of precedence for "what fired" (the most specific
# check first; libFuzzer's own "deadly signal" follows every abort).
FIRED = [
    (re.compile(r"alloclab verifier: rule ([^:]+)"), lambda m: f"verifier rule {m.group(1)}"),
    (re.compile(r"alloclab oracle: call (\d+) ([a-z_]+)"), lambda m: f"oracle: call {m.group(1)} {m.group(2)}"),
    (re.compile(r"alloclab oracle: ([^:]+)"), lambda m: f"oracle: {m.group(1)}"),
    (re.compile(r"alloclab sim: GPU page fault: ([a-z ]+?)(?: at|$)"), lambda m: f"sim GPU page fault ({m.group(1)})"),
    (re.compile(r"ERROR: LeakSanitizer: detected memory leaks"), lambda m: "LeakSanitizer leak"),
    (re.compile(r"ERROR: AddressSanitizer: ([\w-]+)"), lambda m: f"ASan {m.group(1)}"),
    (re.compile(r"runtime error: (.{0,60})"), lambda m: f"UBSan: {m.group(1).strip()}"),
    (re.compile(ABORT_LINE), lambda m: f"{m.group(1)} abort"),
    (re.compile(r"ERROR: libFuzzer: timeout"), lambda m: "libFuzzer timeout"),
    (re.compile(r"ERROR: libFuzzer: out-of-memory"), lambda m: "libFuzzer out-of-memory"),
    (re.compile(r"ERROR: libFuzzer: deadly signal"), lambda m: "abort (deadly signal)"),
]
# Any of these lines means a crash is being reported.
CRASH_START = re.compile(r"alloclab (verifier|oracle|sim): |==\d+==ERROR: |runtime error: |"
                         + ABORT_LINE + r"|ERROR: libFuzzer: ")
EXECS = re.compile(r"^#(\d+)\s.*\bexec/s: (\d+)")


def libfuzzer_flags(root, target, budget, artifacts):
    flags = fuzz_options.libfuzzer_flags(root, target)
    flags += [f"-max_total_time={budget}", "-print_final_stats=1", f"-artifact_prefix={artifacts}/"]
    return flags


def fresh_corpus(tree, target, corpus):
    shutil.rmtree(corpus, ignore_errors=True)
    os.makedirs(corpus)
    n = 0
    for kind in ("seeds", "regressions"):
        folder = os.path.join(tree, "corpus", target, kind)
        if not os.path.isdir(folder):
            continue
        for f in sorted(os.listdir(folder)):
            if f.endswith(".bin"):
                shutil.copyfile(os.path.join(folder, f), os.path.join(corpus, f"{kind}-{f}"))
                n += 1
    return n


def crash_artifact(run_dir):
    """The input libFuzzer wrote for the crash (crash-/leak-/timeout-/oom-*), or None."""
    found = [f for f in sorted(os.listdir(run_dir))
             if re.match(r"(crash|leak|timeout|oom|slow-unit)-", f)] if os.path.isdir(run_dir) else []
    return os.path.join(run_dir, found[0]) if found else None


def judge(crashed, seconds, fired, artifact, replay_unpatched):
    """A canary run's verdict: {"detected": "yes"/"no", "seconds", "fired"}. A crash counts only
    when its input runs clean on the unpatched tree: replay_unpatched(artifact) -> (crashed,
    what fired) replays it there."""
    shown = f"{seconds:.1f}" if seconds is not None else "?"
    if not crashed:
        return {"detected": "no", "seconds": "-", "fired": None}
    if artifact is None:
        return {"detected": "yes", "seconds": shown,
                "fired": f"{fired} (no crash input to check against the unpatched tree)"}
    again, fired_there = replay_unpatched(artifact)
    if again:
        return {"detected": "no", "seconds": shown,
                "fired": f"{fired}; the unpatched tree crashes on it too ({fired_there}): not the canary"}
    return {"detected": "yes", "seconds": shown, "fired": fired}


def replay_flags(root, target, artifacts):
    """The target's options for replaying inputs once (no time budget)."""
    return [f for f in libfuzzer_flags(root, target, 60, artifacts)
            if not f.startswith("-max_total_time")] + ["-runs=0"]


def run_fuzzer(binary, flags, inputs, work, log, wall_limit):
    """Runs the fuzzer under setarch -R; returns (crashed, seconds to the report or None,
    what fired, last exec/s, exit code)."""
    os.makedirs(work, exist_ok=True)
    cmd = ["setarch", "-R", binary] + flags + inputs
    start = time.monotonic()
    crash_at, fired, fired_rank, execs = None, None, len(FIRED), None
    with open(log, "w", encoding="utf-8", errors="replace") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            for raw in proc.stdout:
                now = time.monotonic() - start
                line = raw.decode("utf-8", "replace").rstrip("\n")
                out.write(f"[{now:7.2f}s] {line}\n")
                if crash_at is None and CRASH_START.search(line):
                    crash_at = now
                if crash_at is not None:
                    for rank, (pattern, describe) in enumerate(FIRED):
                        m = pattern.search(line)
                        if m and rank < fired_rank:
                            fired, fired_rank = describe(m), rank
                            break
                m = EXECS.search(line)
                if m:
                    execs = int(m.group(2))
                if now > wall_limit:
                    proc.kill()
                    break
        finally:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    crashed = crash_at is not None or proc.returncode not in (0, None)
    if crashed and fired is None:
        fired = f"exit status {proc.returncode}"
    return crashed, crash_at, fired, execs, proc.returncode


# ---- Table -------------------------------------------------------------------------------------


def format_table(rows):
    head = ["canary", "target", "detected", "seconds", "what fired", "exec/s"]
    cells = [[r["name"], r["target"], r["detected"], r["seconds"], r["fired"], r["execs"]] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    text = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    text.append("  ".join("-" * w for w in widths))
    text += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)) for cell in cells]
    md = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in cell) + " |" for cell in cells]
    return "\n".join(text), "\n".join(md)


def say(message):
    print(f"lab: canaries: {message}", flush=True)


def json_rows(rows):
    """The table's rows for --json: detected true/false (null: not run), seconds and exec/s as
    numbers (null: none)."""
    def number(text, kind):
        try:
            return kind(text)
        except ValueError:
            return None
    return [{"name": r["name"], "target": r["target"],
             "detected": {"yes": True, "no": False}.get(r["detected"]),
             "seconds": number(r["seconds"], float), "fired": r["fired"], "exec_per_sec": number(r["execs"], int)}
            for r in rows]


def write_json(path, rows, error=None):
    """--json FILE: {"canaries": [...], "missed": [names], "error": null or why the run stopped}.
    Written whole (a temporary file renamed over it)."""
    document = {"canaries": json_rows(rows), "missed": [r["name"] for r in rows if r["detected"] == "no"],
                "error": error}
    temp = path + ".tmp"
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    os.replace(temp, path)


# ---- Main --------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="./lab canaries",
        description="Plant each known bug of fuzz/canaries/ in a scratch copy of the tree and "
                    "check that its fuzz target finds it (see fuzz/canaries/canaries.py).")
    parser.add_argument("--budget", metavar="S",
                        help="fuzz each canary at most S seconds (default: its manifest budget, 60)")
    parser.add_argument("--only", metavar="NAME", action="append",
                        help="run only this canary (repeatable)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip replaying the corpus on the unpatched tree first")
    parser.add_argument("--check", action="store_true",
                        help="only check the manifest and that every patch applies; fuzz nothing")
    parser.add_argument("--list", action="store_true", help="list the canaries and exit")
    parser.add_argument("--targets", metavar="LIST",
                        help="only the canaries of these fuzz targets (comma-separated; ./lab nightly --targets)")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the results as JSON to FILE (./lab nightly's canaries step reads it)")

    def error(message):
        raise UsageError(message)

    parser.error = error
    args = parser.parse_args(argv)
    if args.budget is not None:
        if not re.fullmatch(r"[1-9][0-9]*", args.budget) or int(args.budget) > MAX_BUDGET:
            raise UsageError(f"--budget must be whole seconds from 1 to {MAX_BUDGET}, not '{args.budget}'")
        args.budget = int(args.budget)
    return args


def main(argv):
    try:
        args = parse_args(argv)
        canaries, planned = read_manifest(ROOT)
        names = [c.name for c in canaries]
        if args.only:
            unknown = [n for n in args.only if n not in names]
            if unknown:
                raise UsageError(f"unknown canary '{unknown[0]}'; the canaries are: {', '.join(names)}")
            canaries = [c for c in canaries if c.name in args.only]
        if args.targets is not None:
            wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
            if not wanted:
                raise UsageError("--targets is empty")
            known = fuzz_targets(ROOT)
            unknown = [t for t in wanted if t not in known]
            if unknown:
                raise UsageError(f"unknown target '{unknown[0]}' in --targets; the fuzz targets are: {', '.join(known)}")
            canaries = [c for c in canaries if c.target in wanted]
    except UsageError as e:
        print(f"lab: canaries: {e}", file=sys.stderr)
        print("usage: ./lab canaries [--budget S] [--only NAME]... [--targets LIST] [--no-baseline] [--check] [--list] "
              "[--json FILE]", file=sys.stderr)
        return 2

    if args.list:
        for c in canaries:
            print(f"{c.name:24} {c.target:16} {c.budget:4}s  {c.description}")
        return 0
    if args.check:
        problems = check_patches(ROOT, canaries, planned)
        for p in problems:
            print(f"lab: canaries: {p}", file=sys.stderr)
        if problems:
            return 1
        say(f"{len(canaries)} canaries: manifest fine, every patch applies")
        return 0

    rows = []

    def stop(message):
        """Ends the run early (exit 1): the message on stderr, and in the --json file."""
        print(f"lab: canaries: {message}", file=sys.stderr)
        if args.json:
            write_json(args.json, rows, message)
        return 1

    scratch = os.path.join(ROOT, SCRATCH)
    tree, logs, work = (os.path.join(scratch, d) for d in ("tree", "logs", "work"))
    os.makedirs(tree, exist_ok=True)
    # One run at a time: the scratch tree is shared.
    lock = open(os.path.join(scratch, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return stop(f"another ./lab canaries is running in this tree ({SCRATCH}/lock); wait for it to finish")
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    copied, removed = sync_tree(ROOT, tree)
    say(f"scratch tree {SCRATCH}/tree in step with the working tree ({copied} copied, {removed} removed)")
    targets = fuzz_targets(tree)
    runnable = sorted({c.target for c in canaries if c.target in targets})
    failed = False

    binaries = {}
    if runnable:
        say(f"building {', '.join(t + '_raw' for t in runnable)} (--config=fuzz) in the scratch tree")
        if not build_targets(tree, runnable, os.path.join(logs, "baseline-build.log")):
            return stop(f"the unpatched scratch tree does not build (log: {SCRATCH}/logs/baseline-build.log)")
        bin_dir = bazel_bin(tree)
        if bin_dir is None:
            return stop("bazel info bazel-bin failed in the scratch tree")
        binaries = {t: os.path.join(bin_dir, "fuzz", "targets", t + "_raw") for t in runnable}
        # Keep the unpatched binaries: a canary's crash is replayed on them (step 4).
        unpatched_dir = os.path.join(work, "unpatched")
        os.makedirs(unpatched_dir, exist_ok=True)
        unpatched = {}
        for t in runnable:
            unpatched[t] = os.path.join(unpatched_dir, t + "_raw")
            shutil.copyfile(binaries[t], unpatched[t])
            os.chmod(unpatched[t], 0o755)

    if runnable and not args.no_baseline:
        # The unpatched tree must not crash on its own corpus (-runs=0: replay only).
        for t in runnable:
            corpus = os.path.join(work, "baseline", t, "corpus")
            n = fresh_corpus(tree, t, corpus)
            flags = replay_flags(tree, t, os.path.join(work, "baseline", t))
            crashed, _, fired, _, _ = run_fuzzer(binaries[t], flags, [corpus], os.path.join(work, "baseline", t),
                                                  os.path.join(logs, f"baseline-{t}.log"), 600)
            if crashed:
                return stop(f"baseline: the UNPATCHED tree crashes on corpus/{t} ({fired}; "
                            f"log: {SCRATCH}/logs/baseline-{t}.log): fix that first")
            say(f"baseline: {t} replays its {n} corpus inputs clean on the unpatched tree")

    for c in canaries:
        budget = args.budget if args.budget is not None else c.budget
        row = {"name": c.name, "target": c.target, "detected": "-", "seconds": "-", "fired": "", "execs": "-"}
        rows.append(row)
        if c.target not in targets:
            row["fired"] = f"target missing (no '{c.target}' in FUZZ_TARGETS)"
            say(f"{c.name}: target {c.target} is not a fuzz target of this tree: not run")
            continue
        patch = os.path.join(tree, c.patch)
        ok, message = git_apply(tree, patch)
        if not ok:
            row["detected"] = "no"
            row["fired"] = "patch does not apply"
            failed = True
            say(f"{c.name}: {c.patch} no longer applies: {message}")
            continue
        try:
            say(f"{c.name}: planted ({c.patch}); building {c.target}_raw")
            build_log = os.path.join(logs, f"{c.name}-build.log")
            if not build_targets(tree, [c.target], build_log):
                row["detected"] = "no"
                row["fired"] = "build failed"
                failed = True
                say(f"{c.name}: the patched tree does not build (log: {os.path.relpath(build_log, ROOT)})")
                continue
            run_dir = os.path.join(work, c.name)
            shutil.rmtree(run_dir, ignore_errors=True)
            corpus = os.path.join(run_dir, "corpus")
            n = fresh_corpus(tree, c.target, corpus)
            flags = libfuzzer_flags(tree, c.target, budget, run_dir)
            fuzz_log = os.path.join(logs, f"{c.name}-fuzz.log")
            say(f"{c.name}: fuzzing {c.target} for at most {budget}s from {n} corpus inputs, one process")
            crashed, seconds, fired, execs, _ = run_fuzzer(binaries[c.target], flags, [corpus], run_dir,
                                                           fuzz_log, budget + KILL_GRACE_S)
            row["execs"] = str(execs) if execs is not None else "-"
            artifact = crash_artifact(run_dir) if crashed else None

            def replay_unpatched(path, c=c, run_dir=run_dir):
                check_dir = os.path.join(run_dir, "unpatched-replay")
                again, _, fired_there, _, _ = run_fuzzer(
                    unpatched[c.target], replay_flags(tree, c.target, check_dir), [path], check_dir,
                    os.path.join(logs, f"{c.name}-unpatched-replay.log"), 600)
                return again, fired_there

            verdict = judge(crashed, seconds, fired, artifact, replay_unpatched)
            if crashed:
                row.update(verdict)
            if crashed and verdict["detected"] == "no":
                failed = True
                say(f"{c.name}: NOT DETECTED: the crash after {row['seconds']}s ({fired}) happens on the "
                    f"unpatched tree too: a bug of its own (input: {os.path.relpath(artifact, ROOT)})")
            elif crashed:
                say(f"{c.name}: detected after {row['seconds']}s: {fired}")
            else:
                row["detected"] = "no"
                row["fired"] = f"nothing in {budget}s"
                failed = True
                say(f"{c.name}: MISSED: no crash in {budget}s (log: {os.path.relpath(fuzz_log, ROOT)})")
        finally:
            ok, message = git_apply(tree, patch, reverse=True)
            if not ok:
                # The next sync restores the file anyway (its size or mtime differ).
                say(f"{c.name}: reverting failed ({message}); the next sync restores the tree")
    sync_tree(ROOT, tree)

    text, md = format_table(rows)
    print()
    print(text)
    with open(os.path.join(scratch, "table.md"), "w", encoding="utf-8") as f:
        f.write(md + "\n")
    say(f"table written to {SCRATCH}/table.md; logs in {SCRATCH}/logs/")
    if args.json:
        write_json(args.json, rows)
    missing = [r["name"] for r in rows if r["fired"].startswith("target missing")]
    if missing:
        say(f"not run (target missing): {', '.join(missing)}")
    if failed:
        missed = [r["name"] for r in rows if r["detected"] == "no"]
        print(f"lab: canaries: missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
