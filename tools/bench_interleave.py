#!/usr/bin/python3
"""bench_interleave: runs benchmark binaries in turn, one repetition at a time, and records them.

  bench_interleave.py --side NAME BINARY COMMIT [--side NAME BINARY COMMIT] --out-dir DIR
                      [--repetitions N] [--filter REGEX] [--record] [--db PATH] [--config NAME]

With two sides it runs NAME1 rep 1, NAME2 rep 1, NAME1 rep 2, ... so that drift of the machine
(load, heat, frequency) falls on both equally. Each call is one Google Benchmark repetition
(--benchmark_repetitions=1) written to DIR/NAME-<rep>.json; afterwards the repetitions of each
side are merged into DIR/NAME.json (repetition_index 0..N-1; compare.py and compare_runs.py read
it) and, with --record, stored in the history database as one run each (the run ids are
printed). COMMIT goes into the report's context as git_commit (sha, or sha-dirty).

Exit status: 0 done, 1 a binary failed or wrote no report (its output is in DIR/NAME-<rep>.log),
2 bad usage.
"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchdb  # noqa: E402


def _repetitions(text):
    if not re.fullmatch(r"[1-9][0-9]{0,3}", text):
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 9999, not '{text}'")
    return int(text)


def run_interleaved(sides, out_dir, repetitions, bench_filter=None, progress=print):
    """sides: list of (name, binary, commit). Returns {name: merged report path}. Raises
    BenchError when a binary fails or writes no report."""
    os.makedirs(out_dir, exist_ok=True)
    parts = {name: [] for name, _, _ in sides}
    for rep in range(1, repetitions + 1):
        took = []
        for name, binary, commit in sides:
            out = os.path.join(out_dir, f"{name}-{rep}.json")
            log = os.path.join(out_dir, f"{name}-{rep}.log")
            command = [binary, "--benchmark_repetitions=1", f"--benchmark_out={out}",
                       "--benchmark_out_format=json", "--benchmark_color=false",
                       f"--benchmark_context=git_commit={commit}"]
            if bench_filter:
                command.append(f"--benchmark_filter={bench_filter}")
            start = time.monotonic()
            try:
                with open(log, "w", encoding="utf-8") as f:
                    rc = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT).returncode
            except OSError as e:
                raise benchdb.BenchError(f"{binary}: cannot run it ({e.strerror or e})")
            if rc != 0:
                raise benchdb.BenchError(f"{name}: {binary} exited with status {rc} in repetition"
                                         f" {rep} (its output: {log})")
            if not os.path.isfile(out) or not benchdb.iteration_rows(benchdb.load_report(out)):
                raise benchdb.BenchError(f"{name}: {binary} wrote no benchmark results in"
                                         f" repetition {rep} (filter '{bench_filter or ''}'"
                                         f" matches nothing? its output: {log})")
            parts[name].append(out)
            took.append(f"{name} {time.monotonic() - start:.1f}s")
        progress(f"repetition {rep}/{repetitions}: " + ", ".join(took))
    merged = {}
    for name, _, _ in sides:
        path = os.path.join(out_dir, f"{name}.json")
        benchdb.write_json_atomically(path, benchdb.merge_reports(parts[name]))
        merged[name] = path
    return merged


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv=None):
    parser = _Parser(prog="bench_interleave.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", nargs=3, action="append", required=True,
                        metavar=("NAME", "BINARY", "COMMIT"))
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--repetitions", type=_repetitions, default=9)
    parser.add_argument("--filter", dest="bench_filter")
    parser.add_argument("--record", action="store_true", help="store each side in the history")
    parser.add_argument("--db", help="the history database (default: benchdb's)")
    parser.add_argument("--config", default="opt", help="build config to record (opt)")
    args = parser.parse_args(argv)
    names = [s[0] for s in args.side]
    if len(args.side) > 2 or len(set(names)) != len(names) \
            or not all(re.fullmatch(r"[A-Za-z0-9_.]+", n) for n in names):
        parser.error("give one or two --side options with distinct plain names (letters, digits)")
    for name, binary, _ in args.side:
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            parser.error(f"--side {name}: '{binary}' is not an executable file")
    try:
        merged = run_interleaved(args.side, args.out_dir, args.repetitions, args.bench_filter,
                                 progress=lambda line: print(line, flush=True))
        db = None
        if args.record:
            db_path = args.db or benchdb.default_db_path()
            db = benchdb.open_db(db_path)
        for name, _, _ in args.side:
            line = f"{name}: {merged[name]}"
            if db is not None:
                line += f" (history run {benchdb.record(db, db_path, merged[name], args.config)})"
            print(line)
        if db is not None:
            db.close()
    except benchdb.BenchError as e:
        print(f"bench_interleave: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
