#!/usr/bin/python3
"""coverage_report.py: line coverage of core/ and hw/ by the fuzz targets' corpora (`./lab coverage`).

    ./lab coverage [--targets LIST] [--corpus seeds|regressions|all|DIR] [--show-missing] [--html DIR]
                   [--exclude FILE] [--json FILE]

1. builds //fuzz/targets:<target>_raw with --config=coverage (clang source-based coverage; the
   binary is the replay driver, fuzz/common/replay_main.c) for every target of FUZZ_TARGETS
   (fuzz/targets/BUILD.bazel) or those of --targets a,b;
2. replays the chosen corpus of each: `seeds` (corpus/<target>/seeds/*.bin, the default),
   `regressions` (corpus/<target>/regressions/*.bin), `all` (both), or a folder DIR: DIR/<target>/
   for each target when DIR has such folders, else DIR itself for the one target --targets names
   (every file but the *.txt text forms); an input that crashes or hangs is replayed again file
   by file so that the others still count;
3. merges the profiles (llvm-profdata-14) and prints the line coverage of each file of core/ and
   hw/ (tests excluded) and the total; --show-missing adds each file's uncovered line ranges,
   --html DIR writes llvm-cov's annotated sources of those files. --exclude FILE leaves the
   lines of the functions FILE lists (`PATH FUNCTION  # why`, one a line) out of the line
   counts and says so; a listed function that the replays reach counts again, with a warning.

Exit status: 0 measured; 1 the measurement failed (build, replay, llvm tools); 2 bad usage (an
unknown target, a missing folder, a bad option), named on stderr, nothing run.

The replay, merge and export helpers are shared with the coverage step of tools/nightly.py.
Work files: .lab/coverage/ (inputs, profiles, one replay log per target).
Test hooks (environment): ALLOCLAB_COVERAGE_ROOT (the tree whose fuzz/targets/BUILD.bazel and
corpus/ are used; default: this repository), ALLOCLAB_COVERAGE_PREBUILT (a folder holding
<target>_raw coverage binaries: nothing is built).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import triage  # noqa: E402  (tools/triage.py, next to this file)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CORPUS_CHOICES = ("seeds", "regressions", "all")
# Seconds a replay of one file may take when a folder's replay failed and each file runs alone.
FILE_REPLAY_SECONDS = 10


class CoverageError(Exception):
    """The measurement failed (a build, a replay that wrote nothing, an llvm tool): exit 1."""


class UsageError(Exception):
    """A bad option, an unknown target or a missing folder: exit 2."""


# ---- Shared with nightly.py ---------------------------------------------------------------------

def replay(binary: str, inputs: str, profile_dir: str, name: str, log) -> None:
    """Runs the coverage @binary on every file of the folder @inputs, each process writing
    @profile_dir/@name-<pid>.profraw; the replay's output goes to the open file @log.

    `-runs=0` / `-runs=1`: the replay driver ignores libFuzzer flags, and a coverage binary linked
    with libFuzzer then only replays the folder or the file. When the folder's replay fails (a
    crash or a hang: the coverage build has no ASan, so a heap overflow can corrupt the heap and
    deadlock the crash handler) its files are replayed one by one, so that the others count."""
    env = dict(os.environ, LLVM_PROFILE_FILE=os.path.join(profile_dir, name + "-%p.profraw"))
    files = sorted(os.listdir(inputs))
    try:
        rc = triage.run_bounded(["setarch", "-R", binary, "-runs=0", inputs], 120 + 0.05 * len(files),
                                stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    if rc == 0:
        return
    log.write("coverage: the replay of the folder failed (%d); replaying file by file\n" % rc)
    log.flush()
    for file_name in files:
        try:
            done = triage.run_bounded(["setarch", "-R", binary, "-runs=1", os.path.join(inputs, file_name)],
                                      FILE_REPLAY_SECONDS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            if done.returncode != 0:
                log.write("coverage: %s failed (%d); its coverage is left out\n" % (file_name, done.returncode))
        except subprocess.TimeoutExpired:
            log.write("coverage: %s hung; left out\n" % file_name)


def merge_profiles(profile_dir: str, merged: str) -> None:
    """llvm-profdata-14 merge of every .profraw in @profile_dir into @merged; CoverageError when
    there is none or the merge fails. Empty ones (a process that crashed) are left out."""
    raws = sorted(os.path.join(profile_dir, n) for n in os.listdir(profile_dir)
                  if n.endswith(".profraw") and os.path.getsize(os.path.join(profile_dir, n)) > 0)
    if not raws:
        raise CoverageError("the replays wrote no .profraw")
    done = subprocess.run(["llvm-profdata-14", "merge", "-sparse", "-o", merged] + raws,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise CoverageError("llvm-profdata-14 merge failed: %s" % done.stdout.strip()[-500:])


def _objects(binaries: List[str]) -> List[str]:
    args = [binaries[0]]
    for extra in binaries[1:]:
        args += ["-object", extra]
    return args


def export_summary(merged: str, binaries: List[str], root: str) -> dict:
    """`llvm-cov-14 export -summary-only` of @binaries under the profile @merged, parsed. Run in
    @root: Bazel records sources as /proc/self/cwd/<path>, which then resolve to @root's files."""
    done = subprocess.run(["llvm-cov-14", "export", "-summary-only", "-instr-profile=" + merged] + _objects(binaries),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
    if done.returncode != 0:
        raise CoverageError("llvm-cov-14 export failed: %s" % done.stderr.strip()[-500:])
    try:
        return json.loads(done.stdout)
    except ValueError as e:
        raise CoverageError("llvm-cov-14 export wrote no JSON: %s" % e) from e


def measured_source(recorded: str, root: str) -> Optional[str]:
    """The repository path of a source file as the coverage mapping records it, when it is one
    whose coverage counts (core/ and hw/, tests excluded), else None."""
    path = triage.our_source_path(recorded, root)
    if path is None or not path.startswith(("core/", "hw/")):
        return None
    if "/test/" in path or re.search(r"_test\.c$|/testing/", path):
        return None
    return path


def measured_files(export: dict, root: str) -> Dict[str, str]:
    """Repository path -> the name the coverage mapping records, for every measured file."""
    files = {}
    for data in export.get("data", []):
        for entry in data.get("files", []):
            path = measured_source(entry.get("filename", ""), root)
            if path is not None:
                files[path] = entry["filename"]
    return files


def summarize_coverage(export: dict, root: str) -> dict:
    """Totals of an `llvm-cov export -summary-only` document over core/ and hw/, tests excluded:
    {"status": "ok", "lines"|"functions"|"regions": {"covered", "count", "percent"}, "files": [
    {"file", "lines_percent", "functions_percent", "regions_percent", "lines_covered",
    "lines_count"}]} (files by name)."""
    totals = {key: {"covered": 0, "count": 0} for key in ("lines", "functions", "regions")}
    files = []
    for data in export.get("data", []):
        for entry in data.get("files", []):
            path = measured_source(entry.get("filename", ""), root)
            if path is None:
                continue
            summary = entry.get("summary", {})
            row = {"file": path}
            for key in totals:
                covered, count = summary.get(key, {}).get("covered", 0), summary.get(key, {}).get("count", 0)
                totals[key]["covered"] += covered
                totals[key]["count"] += count
                row[key + "_percent"] = round(100.0 * covered / count, 1) if count else 100.0
                if key == "lines":
                    row["lines_covered"], row["lines_count"] = covered, count
            files.append(row)
    for key, value in totals.items():
        value["percent"] = round(100.0 * value["covered"] / value["count"], 2) if value["count"] else 0.0
    return dict(status="ok", files=sorted(files, key=lambda r: r["file"]), **totals)


# ---- Uncovered lines ----------------------------------------------------------------------------

_SHOW_LINE = re.compile(r"^\s*(\d+)\|\s*([0-9.]+[kMGTPEZY]?)?\|")


def parse_show_text(text: str, single_file: Optional[str] = None) -> Dict[str, Dict[int, bool]]:
    """`llvm-cov show -format=text` output -> recorded file name -> {line: covered} for the lines
    that have a count (lines without one are not code). A file's part starts with the line
    "<name>:"; llvm-cov leaves that header out when it shows one file only (@single_file)."""
    files: Dict[str, Dict[int, bool]] = {}
    current = files.setdefault(single_file, {}) if single_file else None
    for line in text.splitlines():
        match = _SHOW_LINE.match(line)
        if match:
            if current is not None and match.group(2):
                current[int(match.group(1))] = match.group(2) not in ("0", "0.0")
        elif line.endswith(":") and not line.startswith(" ") and "|" not in line:
            current = files.setdefault(line[:-1], {})
    return files


def uncovered_ranges(lines: Dict[int, bool]) -> List[Tuple[int, int]]:
    """The uncovered lines as (first, last) ranges; lines that are not code (no count) between
    two uncovered lines do not split a range."""
    ranges: List[Tuple[int, int]] = []
    for number in sorted(lines):
        if lines[number]:
            continue
        if ranges and all(lines.get(n) is None for n in range(ranges[-1][1] + 1, number)):
            ranges[-1] = (ranges[-1][0], number)
        else:
            ranges.append((number, number))
    return ranges


def format_ranges(ranges: List[Tuple[int, int]]) -> str:
    return ", ".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in ranges)


def line_coverage(merged: str, binaries: List[str], root: str, recorded: List[str]) -> Dict[str, Dict[int, bool]]:
    """{recorded name: {line: covered}} of the files @recorded, from `llvm-cov-14 show`."""
    done = subprocess.run(["llvm-cov-14", "show", "-format=text", "-instr-profile=" + merged]
                          + _objects(binaries) + ["--"] + recorded,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
    if done.returncode != 0:
        raise CoverageError("llvm-cov-14 show failed: %s" % done.stderr.strip()[-500:])
    return parse_show_text(done.stdout, recorded[0] if len(recorded) == 1 else None)


def write_html(merged: str, binaries: List[str], root: str, recorded: List[str], out_dir: str) -> None:
    """llvm-cov's HTML report of the files @recorded (index.html and a page per file) in @out_dir."""
    done = subprocess.run(["llvm-cov-14", "show", "-format=html", "-output-dir=" + out_dir,
                           "-show-line-counts-or-regions", "-instr-profile=" + merged]
                          + _objects(binaries) + ["--"] + recorded,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
    if done.returncode != 0:
        raise CoverageError("llvm-cov-14 show -format=html failed: %s" % done.stderr.strip()[-500:])


# ---- Exclusions -------------------------------------------------------------------------------

def read_exclusions(path: str) -> Dict[Tuple[str, str], str]:
    """(repository path, function) -> why, from @path: `PATH FUNCTION  # why` a line, blank lines
    and `#` comments skipped. UsageError naming the line for anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UsageError("--exclude %s: %s" % (path, e.strerror)) from e
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        body, _, why = line.partition("#")
        fields = body.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].startswith(("core/", "hw/")):
            raise UsageError("--exclude %s line %d: expected `core/... or hw/... FILE FUNCTION  # why`, got %r"
                             % (path, number, line.strip()))
        if not why.strip():
            raise UsageError("--exclude %s line %d: %s %s has no `# why`" % (path, number, fields[0], fields[1]))
        out[(fields[0], fields[1])] = why.strip()
    return out


def function_extents(merged: str, binaries: List[str], root: str) -> Dict[Tuple[str, str], dict]:
    """(repository path, function name) -> {"first", "last", "count"} for every function of a
    measured file (`llvm-cov-14 export`; a static function's name loses its "file.c:" prefix;
    the count is the highest over the binaries)."""
    done = subprocess.run(["llvm-cov-14", "export", "-skip-expansions", "-instr-profile=" + merged] + _objects(binaries),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
    if done.returncode != 0:
        raise CoverageError("llvm-cov-14 export failed: %s" % done.stderr.strip()[-500:])
    out: Dict[Tuple[str, str], dict] = {}
    for data in json.loads(done.stdout).get("data", []):
        for function in data.get("functions", []):
            path = measured_source(function["filenames"][0], root) if function.get("filenames") else None
            if path is None or not function.get("regions"):
                continue
            name = function["name"].rsplit(":", 1)[-1]
            first = min(r[0] for r in function["regions"] if r[5] == 0)
            last = max(r[2] for r in function["regions"] if r[5] == 0)
            entry = out.setdefault((path, name), {"first": first, "last": last, "count": 0})
            entry["count"] = max(entry["count"], function.get("count", 0))
    return out


def apply_exclusions(result: dict, lines_by_file: Dict[str, Dict[int, bool]], extents: Dict[Tuple[str, str], dict],
                     exclusions: Dict[Tuple[str, str], str]) -> None:
    """Recounts @result's line totals without the lines of the @exclusions functions that no
    replay reached, and drops those lines from @lines_by_file (so they are not reported missing);
    result["excluded"] lists each function with its lines and why, result["warnings"] the listed
    functions that were reached (counted) or that do not exist."""
    excluded, warnings = [], []
    dropped: Dict[str, set] = {}
    for (path, name), why in sorted(exclusions.items()):
        extent = extents.get((path, name))
        if extent is None:
            warnings.append("%s %s is listed but no measured file has that function" % (path, name))
            continue
        if extent["count"] > 0:
            warnings.append("%s %s is listed but the replays reached it (%d calls): counted" % (path, name, extent["count"]))
            continue
        lines = {n for n in range(extent["first"], extent["last"] + 1) if n in lines_by_file.get(path, {})}
        dropped.setdefault(path, set()).update(lines)
        excluded.append({"file": path, "function": name, "lines": len(lines), "why": why})
    # The totals stay llvm-cov's summary, less the excluded lines (all uncovered: no replay
    # reached their functions), so the figure with --exclude and the one without add up.
    for path, numbers in dropped.items():
        lines_by_file[path] = {n: c for n, c in lines_by_file.get(path, {}).items() if n not in numbers}
    totals = {"covered": 0, "count": 0}
    for row in result["files"]:
        row["lines_excluded"] = len(dropped.get(row["file"], ()))
        row["lines_count"] -= row["lines_excluded"]
        row["lines_percent"] = round(100.0 * row["lines_covered"] / row["lines_count"], 1) if row["lines_count"] else 100.0
        totals["covered"] += row["lines_covered"]
        totals["count"] += row["lines_count"]
    totals["percent"] = round(100.0 * totals["covered"] / totals["count"], 2) if totals["count"] else 0.0
    result["lines_without_exclusions"] = result["lines"]
    result["lines"] = totals
    result["excluded"] = excluded
    result["warnings"] = warnings


# ---- ./lab coverage -----------------------------------------------------------------------------

def parse_args(argv: List[str], known_targets: List[str], root: str) -> argparse.Namespace:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(message)

    parser = Parser(prog="./lab coverage", description="Line coverage of core/ and hw/ by the fuzz targets' "
                    "corpora, through the coverage build and the replay driver (tools/coverage_report.py).")
    parser.add_argument("--targets", default=",".join(known_targets),
                        help="comma-separated fuzz targets (default: all of %s)" % ",".join(known_targets))
    parser.add_argument("--corpus", default="seeds",
                        help="seeds (default), regressions, all (both), or a folder: DIR/<target>/ per target, "
                        "or DIR itself for one target")
    parser.add_argument("--show-missing", action="store_true", help="print each file's uncovered line ranges")
    parser.add_argument("--html", metavar="DIR", help="write llvm-cov's annotated sources of core/ and hw/ to DIR")
    parser.add_argument("--exclude", metavar="FILE", help="leave the lines of the functions FILE lists out of the line "
                        "counts (PATH FUNCTION  # why, one a line; e.g. corpus/coverage_unreachable.txt)")
    parser.add_argument("--json", metavar="FILE", help="write the totals, the files and their uncovered ranges as JSON")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets:
        raise UsageError("--targets is empty; name at least one of %s" % ", ".join(known_targets))
    unknown = [t for t in targets if t not in known_targets]
    if unknown:
        raise UsageError("unknown target %s; the fuzz targets are %s" % (", ".join(unknown), ", ".join(known_targets)))
    args.targets = list(dict.fromkeys(targets))
    args.inputs = corpus_folders(args.corpus, args.targets, root)
    args.exclusions = read_exclusions(args.exclude) if args.exclude else {}
    return args


def corpus_folders(corpus: str, targets: List[str], root: str) -> Dict[str, List[str]]:
    """Target -> the folders whose inputs it replays (see the module's docstring); UsageError
    for a folder that does not exist or that fits no target."""
    if corpus in CORPUS_CHOICES:
        kinds = ["seeds", "regressions"] if corpus == "all" else [corpus]
        folders = {t: [os.path.join(root, "corpus", t, k) for k in kinds] for t in targets}
        for target, paths in folders.items():
            if corpus == "seeds" and not os.path.isdir(paths[0]):
                raise UsageError("%s has no seeds: %s is missing" % (target, os.path.relpath(paths[0], root)))
        return {t: [p for p in paths if os.path.isdir(p)] for t, paths in folders.items()}
    if not os.path.isdir(corpus):
        raise UsageError("--corpus %s: no such folder (or give seeds, regressions or all)" % corpus)
    per_target = {t: os.path.join(corpus, t) for t in targets if os.path.isdir(os.path.join(corpus, t))}
    if per_target:
        missing = [t for t in targets if t not in per_target]
        if missing:
            raise UsageError("--corpus %s has no folder for %s (it has %s)" % (corpus, ", ".join(missing),
                                                                               ", ".join(sorted(per_target))))
        return {t: [p] for t, p in per_target.items()}
    if len(targets) != 1:
        raise UsageError("--corpus %s holds no <target>/ folders; name its one target with --targets" % corpus)
    return {targets[0]: [corpus]}


def collect_inputs(folders: List[str], out: str) -> int:
    """Hard links (or copies) of the inputs of @folders in @out: seeds and regressions folders
    give their .bin files, any other folder every regular file but the .txt text forms. Returns
    how many."""
    os.makedirs(out)
    count = 0
    for index, folder in enumerate(folders):
        corpus_kind = os.path.basename(folder.rstrip("/")) in ("seeds", "regressions")
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if not os.path.isfile(path) or name.endswith(".txt") or (corpus_kind and not name.endswith(".bin")):
                continue
            target_path = os.path.join(out, "%d-%s" % (index, name))
            try:
                os.link(path, target_path)
            except OSError:
                shutil.copyfile(path, target_path)
            count += 1
    return count


def build(targets: List[str], root: str, log_path: str) -> Dict[str, str]:
    """Target -> its coverage replay binary (built with --config=coverage, or from
    ALLOCLAB_COVERAGE_PREBUILT)."""
    prebuilt = os.environ.get("ALLOCLAB_COVERAGE_PREBUILT")
    if prebuilt:
        binaries = {t: os.path.join(prebuilt, t + "_raw") for t in targets}
    else:
        labels = ["//fuzz/targets:%s_raw" % t for t in targets]
        _say("building the coverage replays (--config=coverage): %s" % " ".join(labels))
        bazel = ["env", "-u", "CC", "-u", "CXX", "bazel"]
        with open(log_path, "w") as log:
            done = subprocess.run(bazel + ["build", "--config=coverage", "--color=no", "--curses=no", "--noshow_progress"]
                                  + labels, cwd=root, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise CoverageError("the coverage build failed (log: %s)" % log_path)
        info = subprocess.run(bazel + ["info", "--config=coverage", "bazel-bin"], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
        if info.returncode != 0 or not info.stdout.strip():
            raise CoverageError("bazel info --config=coverage bazel-bin failed")
        binaries = {t: os.path.join(info.stdout.strip(), "fuzz", "targets", t + "_raw") for t in targets}
    for path in binaries.values():
        if not os.access(path, os.X_OK):
            raise CoverageError("no coverage binary %s" % path)
    return binaries


def measure(args: argparse.Namespace, root: str, work: str) -> dict:
    """Replays, merges and reads back the coverage; the result is summarize_coverage's, with
    "missing" (file -> uncovered ranges) and "inputs" (target -> how many replayed)."""
    binaries = build(args.targets, root, os.path.join(work, "build.log"))
    profiles = os.path.join(work, "profiles")
    os.makedirs(profiles)
    replayed = {}
    for target in args.targets:
        inputs = os.path.join(work, "inputs", target)
        replayed[target] = collect_inputs(args.inputs[target], inputs)
        if replayed[target] == 0:
            _say("%s: no inputs in %s; left out" % (target, ", ".join(os.path.relpath(f, root) for f in args.inputs[target])))
            continue
        _say("%s: replaying %d input(s)" % (target, replayed[target]))
        with open(os.path.join(work, "replay-%s.log" % target), "w") as log:
            replay(binaries[target], inputs, profiles, target, log)
    merged = os.path.join(work, "merged.profdata")
    merge_profiles(profiles, merged)
    objects = [binaries[t] for t in args.targets if replayed[t]]
    export = export_summary(merged, objects, root)
    result = summarize_coverage(export, root)
    files = measured_files(export, root)
    result["inputs"] = replayed
    result["missing"] = {}
    if files and (args.show_missing or args.json or args.exclusions):
        by_recorded = line_coverage(merged, objects, root, [files[p] for p in sorted(files)])
        lines_by_file = {path: by_recorded.get(files[path], {}) for path in files}
        if args.exclusions:
            apply_exclusions(result, lines_by_file, function_extents(merged, objects, root), args.exclusions)
        for path in sorted(files):
            result["missing"][path] = uncovered_ranges(lines_by_file[path])
    if args.html and files:
        write_html(merged, objects, root, [files[p] for p in sorted(files)], args.html)
    return result


def render(result: dict, show_missing: bool) -> str:
    width = max([len(r["file"]) for r in result["files"]] + [5])
    out = ["%-*s %7s %7s %7s" % (width, "file", "lines", "missed", "cover")]
    for row in result["files"]:
        out.append("%-*s %7d %7d %6.1f%%" % (width, row["file"], row["lines_count"], row["lines_count"] - row["lines_covered"],
                                            row["lines_percent"]))
        if show_missing and result["missing"].get(row["file"]):
            out.append("    missing: " + format_ranges(result["missing"][row["file"]]))
    lines = result["lines"]
    out.append("%-*s %7d %7d %6.2f%%" % (width, "TOTAL core/ + hw/", lines["count"], lines["count"] - lines["covered"],
                                        lines["percent"]))
    if "excluded" in result:
        before = result["lines_without_exclusions"]
        out.append("excluded: %d lines in %d functions no fuzz target can call (without --exclude: %d of %d, %.2f%%)" % (
            sum(e["lines"] for e in result["excluded"]), len(result["excluded"]), before["covered"], before["count"],
            before["percent"]))
        for warning in result["warnings"]:
            out.append("warning: " + warning)
    out.append("functions %.1f%%, regions %.1f%% (exclusions apply to lines only)" % (
        result["functions"]["percent"], result["regions"]["percent"]) if "excluded" in result else
        "functions %.1f%%, regions %.1f%%" % (result["functions"]["percent"], result["regions"]["percent"]))
    return "\n".join(out)


def _say(text: str) -> None:
    print("coverage: %s" % text, file=sys.stderr, flush=True)


def main(argv: List[str]) -> int:
    lab_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = os.path.abspath(os.environ.get("ALLOCLAB_COVERAGE_ROOT") or lab_root)
    import nightly  # here, not at the top: nightly imports this module
    try:
        args = parse_args(argv, nightly.fuzz_targets(root), root)
        if args.html and os.path.exists(args.html) and not os.path.isdir(args.html):
            raise UsageError("--html %s is a file, not a folder" % args.html)
    except (UsageError, nightly.NightlyError) as e:
        print("coverage: error: %s (./lab coverage --help)" % e, file=sys.stderr)
        return EXIT_USAGE
    work = os.path.join(root, ".lab", "coverage")
    try:
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        result = measure(args, root, work)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=1, sort_keys=True)
    except (CoverageError, OSError) as e:
        print("coverage: error: %s" % e, file=sys.stderr)
        return EXIT_FAILED
    print(render(result, args.show_missing))
    if args.html:
        _say("annotated sources: %s" % os.path.join(args.html, "index.html"))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
