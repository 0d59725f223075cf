#!/usr/bin/python3
"""triage.py: turn the crash inputs a fuzzer found into deduplicated, minimized regressions.

Usable alone and imported by tools/nightly.py. For each crash input of one target:

1. reproduce it N times (default 3) with the libFuzzer binary under `setarch -R`, symbolized
   (ASAN_SYMBOLIZER_PATH=llvm-symbolizer-14, symbolize=1); an input that crashes in some runs
   but not all is marked flaky, one that never crashes is "unreproducible" and not stored;
2. read the crash's signature from the report: the crash type (the sanitizer's SUMMARY line, or
   "alloclab oracle" / "verifier:rule-N-..." / "sim GPU fault" / ... for alloclab's own aborts)
   and the function names of the top three frames of alloclab's code (sources under core/, hw/
   or fuzz/), joined as "TYPE | f1 | f2 | f3". The oracle's messages end with a tag
   "[oracle:KIND OP]" (fuzz/common/execute.c: the check that failed and the operation it failed
   on, free of call numbers and handles): then TYPE is "oracle:KIND", OP takes the first frame's
   place and the oracle's reporting function (always the same) is left out, e.g.
   "oracle:status-mismatch:success | destroy_allocations | step | fz_execute". A message
   without the tag (an older build) gives the old "alloclab oracle | mismatch | ..." form;
3. compare it with the signatures of every corpus/*/regressions/*.txt and with the crashes
   already triaged in this run: a known signature is counted, never stored again. A regression
   of this target stored with an older form of signature (LEGACY_SIGNATURE_TYPES: every oracle
   bug had one signature, the verifier's had no rule) is replayed once first, and the signature
   it crashes with today is known as well (a fixed one that no longer crashes adds nothing);
4. minimize a new one (libFuzzer -minimize_crash=1), turn it into its text form (fuzz/tools
   trace, or the target's own <target>_text tool, e.g. private_data_text), put the metadata
   comment lines first, store
   the canonical re-encoding (encode of that text) as corpus/<target>/regressions/NAME.bin and
   the text as NAME.txt (both or neither: written to temporary files, then renamed), and check
   that the stored input still crashes (the `reproduced:` line counts that).

The metadata lines (`./lab repro` reads them; keep the form):
    # bug: found by nightly, not yet diagnosed
    # target: <target>
    # signature: <crash type> | <frame 1> | <frame 2> | <frame 3>
    # first-seen: <commit 12 hex> <YYYY-MM-DD>
    # reproduced: <k>/<N>

Command line:
    triage.py --target T --fuzzer BIN --trace BIN --encode BIN [--corpus DIR] [--runs N] CRASH...
(--trace/--encode: fuzz/tools:trace and :encode for program targets; for a target with a text
tool of its own, fuzz/targets:<target>_text for both, e.g. private_data_text.) Prints one line
per crash; exits 0 when nothing new was stored,
1 when a new crash was stored, 3 on an error (named).
"""

import argparse
import dataclasses
import datetime
import errno
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

OUR_CODE_DIRS = ("core/", "hw/", "fuzz/")
FRAMES_IN_SIGNATURE = 3
DEFAULT_REPRO_RUNS = 3
NIGHTLY_BUG_LINE = "found by nightly, not yet diagnosed"
SYMBOLIZER = "/usr/bin/llvm-symbolizer-14"

# alloclab's own aborts print one of these first; the crash type names the checker, not the
# signal (every one of them ends in abort(), which libFuzzer reports as a "deadly signal").
OWN_ABORT_TYPES = (
    ("alloclab oracle:", "alloclab oracle"),  # refined by the message's tag (ORACLE_TAG)
    ("alloclab verifier:", "alloclab verifier"),
    ("alloclab sim: GPU page fault", "sim GPU fault"),
    ("alloclab sim: content check failed", "sim content check"),
    ("alloclab private_data:", "alloclab private_data"),
    ("alloclab gpu:", "alloclab gpu"),
)

# The end of the oracle's message: " [oracle:KIND OP]" (fuzz/common/execute.c oracle_tag).
ORACLE_TAG = re.compile(r"^alloclab oracle: .*\[oracle:(\S+) (\S+)\]\s*$", re.MULTILINE)
# The oracle's function that prints every disagreement: the same in every oracle crash, so it
# says nothing about which bug it is.
ORACLE_REPORTERS = ("mismatch",)
# "alloclab verifier: rule 5 (destroy): ..." -> the rule, part of the crash type.
VERIFIER_RULE = re.compile(r"^alloclab verifier: rule ([^:\n]+):", re.MULTILINE)
# Crash types of signatures stored before the oracle's tag and the verifier's rule were part of
# them: such a stored regression is replayed to learn its signature of today (Triage).
LEGACY_SIGNATURE_TYPES = ("alloclab oracle", "alloclab verifier")

# "    #3 0x55d0 in function_name path/to/file.c:12:5" (function names may hold spaces: C++).
_FRAME = re.compile(r"^\s*#(\d+)\s+0x[0-9a-fA-F]+\s+in\s+(.+?)\s+(\S+?):(\d+)(?::\d+)?\s*$")
_SUMMARY = re.compile(r"^SUMMARY:\s+(\w+Sanitizer|libFuzzer):\s+(.*)$")


class TriageError(Exception):
    """A triage step could not run (missing tool, unreadable input, full disk)."""


def kill_group(proc: subprocess.Popen) -> None:
    """Kills @proc's whole process group (it was started with start_new_session=True)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_bounded(cmd: List[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(@cmd, **@kwargs) with a time limit that holds for everything it starts.

    The command runs in a session of its own; after @timeout seconds the whole group is killed
    (libFuzzer's fork-mode children, a replay that deadlocked printing a stack trace after a
    heap corruption) and subprocess.TimeoutExpired is raised. OSError when it cannot start."""
    with subprocess.Popen(cmd, start_new_session=True, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@dataclasses.dataclass
class CrashReport:
    crash_type: str
    frames: List[str]  # function names of alloclab's code, innermost first
    trace: str  # the sanitizer's report, from its ERROR line to its SUMMARY line
    operation: str = ""  # the oracle tag's OP: it takes the first frame's place

    @property
    def signature(self) -> str:
        first = [self.operation] if self.operation else []
        return " | ".join([self.crash_type] + first + self.frames[:FRAMES_IN_SIGNATURE - len(first)])


def is_legacy_signature(signature: str) -> bool:
    """True for a signature of the form stored before oracle tags and verifier rules."""
    return signature.split(" | ", 1)[0] in LEGACY_SIGNATURE_TYPES


def our_source_path(path: str, repo_root: Optional[str] = None) -> Optional[str]:
    """The path of @path relative to the repository if it is alloclab's code, else None.

    Bazel builds print sources as /proc/self/cwd/core/...; plain relative paths and paths under
    @repo_root count as well. Only core/, hw/ and fuzz/ are alloclab's code (not libFuzzer,
    libc, the sanitizer runtimes or third_party)."""
    for prefix in ("/proc/self/cwd/", "./"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    if repo_root and path.startswith(repo_root.rstrip("/") + "/"):
        path = path[len(repo_root.rstrip("/")) + 1:]
    return path if path.startswith(OUR_CODE_DIRS) else None


def _crash_type(text: str, summary: Optional[str]) -> str:
    rule = VERIFIER_RULE.search(text)
    if rule:
        return "verifier:rule-" + "-".join(re.findall(r"[A-Za-z0-9_]+", rule.group(1))).lower()
    for marker, name in OWN_ABORT_TYPES:
        if marker in text:
            return name
    if summary is None:
        return "crash"
    kind = summary
    if "LeakSanitizer" in text and re.search(r"\bleaked in\b", kind):
        return "memory leak"
    runtime_error = re.search(r"runtime error: ([^:\n]+)", text)
    if kind.startswith("undefined-behavior") and runtime_error:
        # UBSan's SUMMARY only says "undefined-behavior": its runtime error line names the kind.
        return "undefined-behavior: " + re.sub(r"0x[0-9a-fA-F]+|\d+", "N", runtime_error.group(1)).strip()
    # "heap-use-after-free /path:1:2 in f" -> "heap-use-after-free"; numbers never belong to
    # the type (leak sizes, addresses), so the same bug keeps one signature.
    kind = re.sub(r"\s+\S+:\d+(:\d+)?(\s+in\b.*)?$", "", kind)
    kind = re.sub(r"\s+\(.*$", "", kind)
    kind = re.sub(r"0x[0-9a-fA-F]+|\d+", "N", kind).strip()
    return kind or "crash"


def parse_report(text: str, repo_root: Optional[str] = None) -> Optional[CrashReport]:
    """Reads a sanitizer / libFuzzer crash report: its type and alloclab's frames.

    @text: the output of one run of a crashing input. Returns None when it holds no crash report
    (no SUMMARY line, no ERROR line and no alloclab abort message). Frames come from the first
    stack of the report (the crash, not the allocation or free stacks)."""
    lines = text.splitlines()
    summary = None
    for line in lines:
        match = _SUMMARY.match(line.strip())
        if match:
            summary = match.group(2).strip()
            break
    error_at = next((i for i, line in enumerate(lines)
                     if re.search(r"==\d+==\s*ERROR:|^ERROR: libFuzzer|runtime error:", line)), None)
    own = any(marker in text for marker, _ in OWN_ABORT_TYPES)
    if summary is None and error_at is None and not own:
        return None
    start = error_at if error_at is not None else 0
    # alloclab's own message (the oracle's disagreement and program, the verifier's rule) comes
    # before libFuzzer's "deadly signal" line: the trace starts with it.
    own_at = next((i for i, line in enumerate(lines) if any(line.startswith(m) for m, _ in OWN_ABORT_TYPES)), None)
    trace_start = min(start, own_at) if own_at is not None else start
    frames: List[str] = []
    in_stack = False
    for line in lines[start:]:
        match = _FRAME.match(line)
        if match is None:
            if in_stack and line.strip() == "":
                break  # the first stack ended
            continue
        in_stack = True
        number, function, path = int(match.group(1)), match.group(2), match.group(3)
        if in_stack and number == 0 and frames:
            break  # the next stack began
        if our_source_path(path, repo_root) is not None:
            frames.append(function)
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("SUMMARY:")), len(lines) - 1)
    trace = "\n".join(lines[trace_start:end + 1])
    tag = ORACLE_TAG.search(text)
    if tag:
        frames = [f for f in frames if f not in ORACLE_REPORTERS]
        return CrashReport("oracle:" + tag.group(1), frames, trace, operation=tag.group(2))
    return CrashReport(_crash_type(text, summary), frames, trace)


def read_signature(txt_path: str) -> Optional[str]:
    """The `# signature:` value of a regression's text file, or None if it has none."""
    try:
        with open(txt_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("# signature:"):
                    return line[len("# signature:"):].strip()
    except OSError:
        return None
    return None


def known_signatures(corpus_dir: str) -> Dict[str, str]:
    """Every signature stored under @corpus_dir/*/regressions/*.txt -> the file that holds it."""
    known: Dict[str, str] = {}
    if not os.path.isdir(corpus_dir):
        return known
    for target in sorted(os.listdir(corpus_dir)):
        folder = os.path.join(corpus_dir, target, "regressions")
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.endswith(".txt"):
                sig = read_signature(os.path.join(folder, name))
                if sig:
                    known.setdefault(sig, os.path.join(folder, name))
    return known


def regression_name(signature: str, date: str) -> str:
    """NAME of a stored regression: the date found and a hash of the signature (unique per bug)."""
    digest = hashlib.sha1(signature.encode("utf-8")).hexdigest()[:10]
    return "nightly-%s-%s" % (date.replace("-", ""), digest)


def metadata_lines(target: str, signature: str, commit: str, date: str, reproduced: int, runs: int) -> List[str]:
    return [
        "# bug: " + NIGHTLY_BUG_LINE,
        "# target: " + target,
        "# signature: " + signature,
        "# first-seen: %s %s" % (commit[:12], date),
        "# reproduced: %d/%d" % (reproduced, runs),
    ]


def write_files_atomically(files: Dict[str, bytes]) -> None:
    """Writes every path -> bytes of @files, all or none: each goes to a temporary file in its
    folder first, and only when all were written are they renamed into place. On an error (a
    full disk) the temporary files are removed, nothing that existed is touched, and
    TriageError names the problem."""
    temps: Dict[str, str] = {}
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        for path, data in files.items():
            fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=os.path.dirname(path))
            temps[path] = temp
            os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; these are ordinary files
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except OSError as e:
        for temp in temps.values():
            try:
                os.unlink(temp)
            except OSError:
                pass
        what = "the disk is full" if e.errno == errno.ENOSPC else e.strerror
        raise TriageError("cannot write %s: %s" % (", ".join(sorted(files)), what)) from e
    for path, temp in temps.items():
        os.replace(temp, path)


class Codec:
    """The text form of a target's inputs: `to_text` (trace) and `to_bytes` (encode)."""

    def __init__(self, target: str, trace: str, encode: str):
        self.target, self.trace, self.encode = target, trace, encode
        # A target's own text tool (<target>_text: private_data_text, schedules_text) takes a
        # subcommand; fuzz/tools' trace and encode do not.
        self.subcommands = os.path.basename(trace).endswith("_text")

    def to_text(self, path: str) -> str:
        cmd = [self.trace, "trace", path] if self.subcommands else [self.trace, path]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise TriageError("%s failed on %s: %s" % (" ".join(cmd), path, done.stderr.strip()))
        lines = done.stdout.splitlines()
        # The tools start with "# FILE: ..." naming the (temporary) file: not part of the input.
        if lines and lines[0].startswith("# " + path + ":"):
            lines = lines[1:]
        return "\n".join(lines).strip("\n") + "\n"

    def to_bytes(self, text_path: str, out: str) -> None:
        cmd = [self.encode, "encode", text_path, out] if self.subcommands else [self.encode, text_path, out]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise TriageError("%s failed: %s" % (" ".join(cmd), done.stderr.strip()))


@dataclasses.dataclass
class TriageResult:
    crash_file: str
    status: str  # new | known (stored before this run) | duplicate (stored earlier this run) | unreproducible
    signature: str = ""
    reproduced: str = ""  # "k/N" of the input as found
    flaky: bool = False
    stored: str = ""  # corpus/<target>/regressions/NAME (without .bin/.txt) when new
    stored_reproduced: str = ""  # "k/N" of the stored canonical input
    known_as: str = ""  # the regression file or crash file that holds the signature
    trace: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class Triage:
    """Triages the crashes of one fuzz target against one corpus folder.

    @fuzzer: the libFuzzer binary (--config=fuzz) of @target; @codec: its text form; @corpus_dir:
    the corpus/ folder (regressions are stored in @corpus_dir/@target/regressions); @known: the
    signatures already stored (shared between targets of one run, and updated as crashes are
    stored); @work_dir: scratch space for minimized inputs. Nothing is written outside those two
    folders."""

    def __init__(self, target: str, fuzzer: str, codec: Codec, corpus_dir: str, work_dir: str,
                 commit: str, date: Optional[str] = None, runs: int = DEFAULT_REPRO_RUNS,
                 known: Optional[Dict[str, str]] = None, repo_root: Optional[str] = None,
                 minimize_seconds: int = 30, run_timeout: int = 60, log=None):
        self.target, self.fuzzer, self.codec = target, fuzzer, codec
        self.corpus_dir, self.work_dir, self.commit = corpus_dir, work_dir, commit
        self.date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        self.runs, self.repo_root = runs, repo_root
        self.known = known if known is not None else known_signatures(corpus_dir)
        self.minimize_seconds, self.run_timeout = minimize_seconds, run_timeout
        self.log = log or (lambda message: None)
        self.found_this_run = set()  # signatures stored by this Triage (later ones: "duplicate")
        self.legacy_learned = False

    def learn_legacy_signatures(self) -> None:
        """Replays, once, each regression of this target stored with an older form of signature
        (is_legacy_signature) and knows the signature it crashes with today, held by that file:
        a bug stored before oracle tags is then still known, not stored again."""
        if self.legacy_learned:
            return
        self.legacy_learned = True
        folder = os.path.join(self.corpus_dir, self.target, "regressions")
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        for name in names:
            txt = os.path.join(folder, name)
            signature = read_signature(txt) if name.endswith(".txt") else None
            binary = txt[:-len(".txt")] + ".bin"
            if signature is None or not is_legacy_signature(signature) or not os.path.isfile(binary):
                continue
            report = self.run_once(binary)
            if report is not None and report.signature not in self.known:
                self.known[report.signature] = txt
                self.log("%s (stored as %s) crashes as %s today" % (name, signature, report.signature))

    def _env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env["ASAN_SYMBOLIZER_PATH"] = SYMBOLIZER
        env["ASAN_OPTIONS"] = "symbolize=1:detect_leaks=1:" + env.get("ASAN_OPTIONS", "")
        env["UBSAN_OPTIONS"] = "symbolize=1:print_stacktrace=1:" + env.get("UBSAN_OPTIONS", "")
        return env

    def run_once(self, path: str) -> Optional[CrashReport]:
        """Runs @path once through the fuzzer binary; its crash report, or None if it did not crash."""
        # libFuzzer's -timeout turns a hang into a report ("libFuzzer: timeout") with a stack;
        # run_bounded's limit is for a run that cannot even report.
        cmd = ["setarch", "-R", self.fuzzer, "-runs=1", "-timeout=%d" % max(1, self.run_timeout // 2), path]
        try:
            done = run_bounded(cmd, self.run_timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=self._env(), cwd=self.work_dir)
        except subprocess.TimeoutExpired:
            return CrashReport("timeout", [], "timed out after %ds" % self.run_timeout)
        except OSError as e:
            raise TriageError("cannot run %s: %s" % (self.fuzzer, e.strerror)) from e
        if done.returncode == 0:
            return None
        text = done.stdout.decode("utf-8", errors="replace")
        report = parse_report(text, self.repo_root)
        return report or CrashReport("exit status %d" % done.returncode, [], text[-4000:])

    def reproduce(self, path: str, first: Optional[CrashReport] = None):
        """Runs @path self.runs times (counting @first as one): (crashes, first report)."""
        crashes = 1 if first else 0
        report = first
        for _ in range(self.runs - (1 if first else 0)):
            again = self.run_once(path)
            if again is not None:
                crashes += 1
                report = report or again
        return crashes, report

    def minimize(self, path: str) -> str:
        """A smaller input that still crashes (libFuzzer -minimize_crash), or @path itself."""
        out = os.path.join(self.work_dir, "minimized-" + os.path.basename(path))
        cmd = ["setarch", "-R", self.fuzzer, "-minimize_crash=1", "-runs=100000",
               "-max_total_time=%d" % self.minimize_seconds, "-exact_artifact_path=" + out, path]
        try:
            run_bounded(cmd, self.minimize_seconds + 60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        env=self._env(), cwd=self.work_dir)
        except (subprocess.TimeoutExpired, OSError):
            return path
        if os.path.isfile(out) and os.path.getsize(out) > 0:
            return out
        return path

    def _store(self, signature: str, minimized: str) -> TriageResult:
        folder = os.path.join(self.corpus_dir, self.target, "regressions")
        os.makedirs(folder, exist_ok=True)
        name = regression_name(signature, self.date)
        base = os.path.join(folder, name)
        body = self.codec.to_text(minimized)
        # The canonical input: encode(text), what corpus_text_test will check the .bin against.
        draft_txt = os.path.join(self.work_dir, name + ".draft.txt")
        canonical = os.path.join(self.work_dir, name + ".canonical.bin")
        with open(draft_txt, "w", encoding="utf-8") as f:
            f.write("\n".join(metadata_lines(self.target, signature, self.commit, self.date, 0, self.runs)) + "\n" + body)
        self.codec.to_bytes(draft_txt, canonical)
        crashes, report = self.reproduce(canonical)
        if report is not None and report.signature != signature:
            self.log("%s: the canonical re-encoding crashes differently (%s)" % (name, report.signature))
        text = "\n".join(metadata_lines(self.target, signature, self.commit, self.date, crashes, self.runs)) + "\n" + body
        with open(canonical, "rb") as f:
            data = f.read()
        write_files_atomically({base + ".txt": text.encode("utf-8"), base + ".bin": data})
        return TriageResult(crash_file="", status="new", signature=signature, stored=base,
                            stored_reproduced="%d/%d" % (crashes, self.runs))

    def triage(self, crash_files: List[str]) -> List[TriageResult]:
        """Triages @crash_files in order; each gets one TriageResult (see the module's docstring).
        Raises TriageError when a tool cannot run or a regression cannot be written."""
        results = []
        if crash_files:
            self.learn_legacy_signatures()
        for path in crash_files:
            first = self.run_once(path)
            if first is not None and first.signature in self.known:
                # Seen before: one run tells which bug it is; counted, not stored again.
                status = "duplicate" if first.signature in self.found_this_run else "known"
                results.append(TriageResult(path, status, first.signature, "1/1",
                                            known_as=self.known[first.signature], trace=first.trace))
                continue
            crashes, report = self.reproduce(path, first)
            if report is None:
                results.append(TriageResult(path, "unreproducible", reproduced="0/%d" % self.runs))
                self.log("%s: did not crash in %d runs" % (os.path.basename(path), self.runs))
                continue
            signature = report.signature
            if signature in self.known:
                status = "duplicate" if signature in self.found_this_run else "known"
                results.append(TriageResult(path, status, signature, "%d/%d" % (crashes, self.runs),
                                            crashes < self.runs, known_as=self.known[signature], trace=report.trace))
                continue
            self.log("%s: new crash %s (reproduced %d/%d), minimizing" % (os.path.basename(path), signature, crashes, self.runs))
            minimized = self.minimize(path) if crashes == self.runs else path
            stored = self._store(signature, minimized)
            stored.crash_file, stored.reproduced = path, "%d/%d" % (crashes, self.runs)
            stored.flaky, stored.trace = crashes < self.runs, report.trace
            self.known[signature] = stored.stored + ".txt"
            self.found_this_run.add(signature)
            results.append(stored)
            self.log("%s: stored as %s.{bin,txt}" % (os.path.basename(path), stored.stored))
        return results


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--fuzzer", required=True, help="the target's libFuzzer binary (--config=fuzz)")
    parser.add_argument("--trace", required=True, help="fuzz/tools:trace, or the target's <target>_text")
    parser.add_argument("--encode", required=True, help="fuzz/tools:encode, or the target's <target>_text")
    parser.add_argument("--corpus", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "corpus"))
    parser.add_argument("--runs", type=int, default=DEFAULT_REPRO_RUNS)
    parser.add_argument("--commit", default="")
    parser.add_argument("crashes", nargs="+")
    args = parser.parse_args(argv)
    for path in [args.fuzzer, args.trace, args.encode] + args.crashes:
        if not os.path.isfile(path):
            print("triage: error: %s does not exist" % path, file=sys.stderr)
            return 3
    if args.runs < 1:
        print("triage: error: --runs must be at least 1", file=sys.stderr)
        return 3
    commit = args.commit or subprocess.run(["git", "rev-parse", "HEAD"], stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, text=True).stdout.strip() or "unknown"
    with tempfile.TemporaryDirectory(prefix="triage-") as work:
        triage = Triage(args.target, os.path.abspath(args.fuzzer), Codec(args.target, args.trace, args.encode),
                        args.corpus, work, commit, runs=args.runs,
                        log=lambda m: print("triage: " + m, file=sys.stderr))
        try:
            results = triage.triage([os.path.abspath(p) for p in args.crashes])
        except TriageError as e:
            print("triage: error: %s" % e, file=sys.stderr)
            return 3
    for r in results:
        print("%s\t%s\t%s\t%s%s" % (r.crash_file, r.status, r.reproduced, r.signature,
                                    "\t" + r.stored if r.stored else ""))
    return 1 if any(r.status == "new" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
