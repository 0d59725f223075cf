#!/usr/bin/python3
"""benchdb: alloclab's benchmark history, an embedded SQLite database.

Every recorded benchmark run is one row of `runs` (commit, dirty flag, date, the machine's
fingerprint, build configuration, allocator, miniport, the report it came from) and one row of
`results` per benchmark repetition (real and CPU time, the ns_per_allocation counter, all other
counters as JSON). The default database is .lab/history.sqlite in the checkout (git-ignored);
--db PATH or $ALLOCLAB_HISTORY_DB choose another.

CLI (run with /usr/bin/python3; exit 0 on success, 1 on a bad file or database, 2 on bad usage):
  benchdb.py record REPORT.json [--config NAME] [--allocator NAME] [--miniport NAME] [--commit SHA]
      stores a Google Benchmark JSON report as one run; prints the run id
  benchdb.py runs [--bench NAME] [--limit N]
      lists the runs, newest last; with --bench, that benchmark's median per run and a trend
  benchdb.py export RUN_ID OUT.json
      writes a run back as a Google Benchmark JSON report (compare.py reads it)
  benchdb.py previous-commit [--before COMMIT] [--git-dir DIR]
      prints the newest clean recorded commit other than COMMIT (an ancestor of it when git
      knows both)
  benchdb.py find-run --commit SHA [--filter REGEX] [--min-repetitions N] [--config NAME]
                      [--allocator NAME] [--miniport NAME]
      prints the newest clean run of SHA that has >= N repetitions of every recorded benchmark
      the filter finds (at least one); exit 1 when there is none
  benchdb.py merge OUT.json IN.json...
      joins reports of single repetitions into one report with repetition_index 0..n-1

Schema versions: the `schema_version` table holds one number, SCHEMA_VERSION. An older database
is migrated in place, in one transaction, by the functions in MIGRATIONS (a database of a version
with no migration path, or of a newer alloclab, is refused and left untouched).
"""

import argparse
import datetime
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

SCHEMA_VERSION = 1
# .lab/history.sqlite of the checkout this file is in (.lab/ is git-ignored).
DEFAULT_DB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".lab",
                          "history.sqlite")

SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_sha TEXT NOT NULL,          -- 40 hex digits, or 'unknown'
    dirty INTEGER NOT NULL,            -- 1: measured with uncommitted changes
    recorded_at TEXT NOT NULL,         -- UTC, ISO 8601: when it was stored
    run_date TEXT NOT NULL,            -- the report's context.date: when it ran
    cpu_model TEXT NOT NULL,           -- /proc/cpuinfo "model name"
    cores INTEGER NOT NULL,            -- CPUs this process may use (nproc)
    governor TEXT NOT NULL,            -- cpufreq scaling governor of cpu0, or 'none'
    host_name TEXT NOT NULL,
    build_config TEXT NOT NULL,        -- Bazel config, e.g. 'opt'
    allocator TEXT NOT NULL,           -- jemalloc, glibc
    miniport TEXT NOT NULL,            -- sim, example, ...
    source_path TEXT NOT NULL,         -- the JSON report it was read from
    context_json TEXT NOT NULL         -- the report's whole context
);
CREATE TABLE results (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    benchmark TEXT NOT NULL,
    repetition INTEGER NOT NULL,
    iterations INTEGER NOT NULL,
    real_time REAL NOT NULL,
    cpu_time REAL NOT NULL,
    time_unit TEXT NOT NULL,
    ns_per_allocation REAL,            -- the teardown benchmarks' counter, else NULL
    counters_json TEXT NOT NULL,       -- every other numeric field of the row
    label TEXT NOT NULL,
    PRIMARY KEY (run_id, benchmark, repetition)
);
CREATE INDEX runs_by_commit ON runs(commit_sha);
CREATE INDEX results_by_benchmark ON results(benchmark);
"""

# version -> function(connection) that turns a database of that version into version + 1,
# inside the caller's transaction. Version 1 is the first; nothing to migrate yet.
MIGRATIONS = {}

# Fields of a Google Benchmark row that are not counters.
_ROW_FIELDS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit", "label",
    "aggregate_name", "aggregate_unit", "error_occurred", "error_message",
}
_UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


class BenchError(Exception):
    """A problem with a file or the database, worded for the person who ran the command."""


# ---- Reports ------------------------------------------------------------------------------
def load_report(path):
    """Reads a Google Benchmark JSON report; raises BenchError naming what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise BenchError(f"{path}: no such file")
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"{path}: cannot read it ({e})")
    try:
        report = json.loads(text)
    except json.JSONDecodeError as e:
        raise BenchError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno});"
                         " is it a truncated or corrupt report?")
    if not isinstance(report, dict) or not isinstance(report.get("context"), dict) \
            or not isinstance(report.get("benchmarks"), list):
        raise BenchError(f"{path}: not a Google Benchmark report (it needs a 'context' object and"
                         " a 'benchmarks' list, as --benchmark_out_format=json writes)")
    for i, row in enumerate(report["benchmarks"]):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise BenchError(f"{path}: benchmarks[{i}] has no name")
        if row.get("error_occurred"):
            continue
        for key in ("real_time", "cpu_time"):
            if not isinstance(row.get(key), (int, float)) or isinstance(row.get(key), bool) \
                    or not math.isfinite(row[key]):
                raise BenchError(f"{path}: benchmarks[{i}] ({row['name']}) has no numeric {key}")
        if row.get("time_unit", "ns") not in _UNIT_NS:
            raise BenchError(f"{path}: benchmarks[{i}] ({row['name']}) has an unknown time_unit"
                             f" '{row.get('time_unit')}'")
    return report


def iteration_rows(report):
    """The per-repetition rows of a report (run_type iteration, no error), in order."""
    return [row for row in report["benchmarks"]
            if row.get("run_type", "iteration") == "iteration" and not row.get("error_occurred")]


def row_metric_ns(row):
    """The number compared for a row, in ns: ns_per_allocation when the row has it (the
    teardown benchmarks: time per operation / allocations torn down), else real_time."""
    value = row.get("ns_per_allocation")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return float(row["real_time"]) * _UNIT_NS[row.get("time_unit", "ns")]


def split_commit(text):
    """'<sha>-dirty' -> (sha, True); '<sha>' -> (sha, False)."""
    text = (text or "unknown").strip()
    if text.endswith("-dirty"):
        return text[: -len("-dirty")], True
    return text, False


def write_json_atomically(path, data):
    """Writes JSON to PATH through a temporary file in the same folder: a full disk or an error
    leaves any earlier PATH as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    except OSError as e:
        raise BenchError(f"{path}: cannot write it ({e.strerror or e})")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise BenchError(f"{path}: cannot write it ({e.strerror or e})")
        raise


def merge_reports(paths):
    """Joins reports (each typically one repetition of each benchmark) into one report whose
    iteration rows carry repetition_index 0..n-1 per benchmark, in the order given. The context
    is the first report's."""
    if not paths:
        raise BenchError("merge: no reports given")
    reports = [load_report(p) for p in paths]
    counts = {}
    rows = []
    for report in reports:
        for row in iteration_rows(report):
            row = dict(row)
            row["repetition_index"] = counts.get(row["name"], 0)
            counts[row["name"]] = row["repetition_index"] + 1
            rows.append(row)
    for row in rows:
        row["repetitions"] = counts[row["name"]]
    return {"context": reports[0]["context"], "benchmarks": rows}


# ---- The machine ---------------------------------------------------------------------------
def machine_fingerprint():
    """CPU model, usable cores and cpufreq governor of this machine."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 0
    governor = "none"
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", encoding="utf-8") as f:
            governor = f.read().strip() or "none"
    except OSError:
        pass
    return {"cpu_model": model, "cores": cores, "governor": governor}


# ---- The database --------------------------------------------------------------------------
def default_db_path():
    return os.environ.get("ALLOCLAB_HISTORY_DB") or DEFAULT_DB


def open_db(path, create=True):
    """Opens (and with create, makes) a history database at the current schema version.
    An older version is migrated in one transaction; a newer one, a file that is not SQLite or
    a SQLite file without our tables is refused with BenchError, and nothing in it is changed."""
    exists = os.path.exists(path)
    if not exists and not create:
        raise BenchError(f"{path}: no history database yet (record a run first:"
                         " tools/benchdb.py record REPORT.json)")
    if not exists:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as e:
                raise BenchError(f"{path}: cannot create its folder ({e.strerror or e})")
    try:
        db = sqlite3.connect(path, isolation_level=None)  # transactions are explicit
        db.execute("PRAGMA foreign_keys = ON")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise BenchError(f"{path}: not a readable SQLite database ({e}); it is left as it is."
                         " Move it away to start a new history, or give another with --db")
    try:
        if not tables:
            _transaction(db, path, lambda: db.executescript(
                "BEGIN;" + SCHEMA + f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION});"
                "COMMIT;"), script=True)
            return db
        if "schema_version" not in tables:
            raise BenchError(f"{path}: a SQLite database, but not an alloclab benchmark history"
                             " (no schema_version table); it is left as it is")
        rows = db.execute("SELECT version FROM schema_version").fetchall()
        if len(rows) != 1 or not isinstance(rows[0][0], int):
            raise BenchError(f"{path}: its schema_version table should hold one number; it is"
                             " left as it is")
        version = rows[0][0]
        if version > SCHEMA_VERSION:
            raise BenchError(f"{path}: schema version {version} is newer than this alloclab's"
                             f" ({SCHEMA_VERSION}); use a newer checkout to read it (the file is"
                             " left as it is)")
        if version < SCHEMA_VERSION:
            _migrate(db, path, version)
        return db
    except BaseException:
        db.close()
        raise


def _transaction(db, path, work, script=False):
    """Runs work() inside BEGIN IMMEDIATE ... COMMIT (work does its own for script=True), rolling
    back on any error; SQLite errors become BenchError."""
    try:
        if not script:
            db.execute("BEGIN IMMEDIATE")
        result = work()
        if not script:
            db.execute("COMMIT")
        return result
    except sqlite3.Error as e:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if "full" in str(e):
            raise BenchError(f"{path}: the disk (or the database's size limit) is full: {e};"
                             " nothing was stored and the runs already there are intact")
        raise BenchError(f"{path}: {e}; nothing was changed")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _migrate(db, path, version):
    missing = [v for v in range(version, SCHEMA_VERSION) if v not in MIGRATIONS]
    if missing:
        raise BenchError(f"{path}: schema version {version} is older than this alloclab's"
                         f" ({SCHEMA_VERSION}) and there is no migration from version"
                         f" {missing[0]}; the file is left as it is")

    def work():
        for v in range(version, SCHEMA_VERSION):
            MIGRATIONS[v](db)
            db.execute("UPDATE schema_version SET version = ?", (v + 1,))

    _transaction(db, path, work)


def record(db, db_path, report_path, build_config="opt", allocator=None, miniport=None,
           commit=None, fingerprint=None):
    """Stores a report as one run in one transaction; returns the run id. allocator, miniport
    and commit default to the report's context (allocator, miniport, git_commit)."""
    report = load_report(report_path)
    rows = iteration_rows(report)
    if not rows:
        raise BenchError(f"{report_path}: the report holds no benchmark results")
    context = report["context"]
    sha, dirty = split_commit(commit if commit is not None else context.get("git_commit"))
    machine = fingerprint or machine_fingerprint()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    reps = {}

    def work():
        cur = db.execute(
            "INSERT INTO runs (commit_sha, dirty, recorded_at, run_date, cpu_model, cores,"
            " governor, host_name, build_config, allocator, miniport, source_path, context_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sha, int(dirty), now, str(context.get("date", now)), machine["cpu_model"],
             machine["cores"], machine["governor"], str(context.get("host_name", "")),
             build_config, allocator or str(context.get("allocator", "unknown")),
             miniport or str(context.get("miniport", "unknown")),
             os.path.abspath(report_path), json.dumps(context, sort_keys=True)))
        run_id = cur.lastrowid
        for row in rows:
            index = reps.get(row["name"], 0)
            reps[row["name"]] = index + 1
            counters = {k: v for k, v in row.items()
                        if k not in _ROW_FIELDS and k != "ns_per_allocation"
                        and isinstance(v, (int, float)) and not isinstance(v, bool)}
            npa = row.get("ns_per_allocation")
            db.execute(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, row["name"], index, int(row.get("iterations", 0)),
                 float(row["real_time"]), float(row["cpu_time"]), row.get("time_unit", "ns"),
                 float(npa) if isinstance(npa, (int, float)) else None,
                 json.dumps(counters, sort_keys=True), str(row.get("label", ""))))
        return run_id

    return _transaction(db, db_path, work)


def get_run(db, run_id):
    row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    names = [d[0] for d in db.execute("SELECT * FROM runs LIMIT 0").description]
    return dict(zip(names, row))


def export_report(db, run_id):
    """A run as a Google Benchmark report (context as recorded, one iteration row per
    repetition)."""
    run = get_run(db, run_id)
    if run is None:
        raise BenchError(f"no run with id {run_id} in the history")
    context = json.loads(run["context_json"])
    counts = dict(db.execute("SELECT benchmark, COUNT(*) FROM results WHERE run_id = ?"
                             " GROUP BY benchmark", (run_id,)).fetchall())
    rows = []
    for (name, rep, iterations, real, cpu, unit, npa, counters, label) in db.execute(
            "SELECT benchmark, repetition, iterations, real_time, cpu_time, time_unit,"
            " ns_per_allocation, counters_json, label FROM results WHERE run_id = ?"
            " ORDER BY rowid", (run_id,)):
        row = {"name": name, "run_name": name, "run_type": "iteration",
               "repetitions": counts[name], "repetition_index": rep, "threads": 1,
               "iterations": iterations, "real_time": real, "cpu_time": cpu, "time_unit": unit}
        row.update(json.loads(counters))
        if npa is not None:
            row["ns_per_allocation"] = npa
        if label:
            row["label"] = label
        rows.append(row)
    return {"context": context, "benchmarks": rows}


def list_runs(db, limit=None, bench=None):
    """Runs oldest first (the newest `limit`), each a dict; with bench, only runs that measured
    it, each with 'median_ns' (median over repetitions of its metric) and 'repetitions'."""
    query = ("SELECT r.*, (SELECT COUNT(DISTINCT benchmark) FROM results WHERE run_id = r.id)"
             " AS benchmarks FROM runs r")
    args = []
    if bench is not None:
        query += " WHERE EXISTS (SELECT 1 FROM results WHERE run_id = r.id AND benchmark = ?)"
        args.append(bench)
    query += " ORDER BY r.id DESC"
    if limit is not None:
        query += " LIMIT ?"
        args.append(limit)
    cur = db.execute(query, args)
    names = [d[0] for d in cur.description]
    runs = [dict(zip(names, r)) for r in cur.fetchall()][::-1]
    if bench is not None:
        for run in runs:
            values = []
            for real, unit, npa in db.execute(
                    "SELECT real_time, time_unit, ns_per_allocation FROM results"
                    " WHERE run_id = ? AND benchmark = ?", (run["id"], bench)):
                values.append(npa if npa is not None else real * _UNIT_NS.get(unit, 1.0))
            run["median_ns"] = median(values)
            run["repetitions"] = len(values)
    return runs


def find_benchmark(db, pattern):
    """The one benchmark name that is PATTERN, or else the one that PATTERN (a regular
    expression) finds; BenchError when none or several do."""
    names = [r[0] for r in db.execute("SELECT DISTINCT benchmark FROM results ORDER BY 1")]
    if pattern in names:
        return pattern
    try:
        found = [n for n in names if re.search(pattern, n)]
    except re.error as e:
        raise BenchError(f"--bench '{pattern}': not a benchmark name nor a valid regular"
                         f" expression ({e})")
    if not found:
        raise BenchError(f"--bench '{pattern}': no recorded benchmark matches"
                         f" ({len(names)} recorded; list them with no --bench)")
    if len(found) > 1:
        shown = "\n  ".join(found[:15]) + ("\n  ..." if len(found) > 15 else "")
        raise BenchError(f"--bench '{pattern}' matches {len(found)} benchmarks; name one:\n  "
                         + shown)
    return found[0]


def previous_commit(db, before=None, git_dir=None):
    """The newest clean (not dirty) recorded commit other than BEFORE; when git can tell, only
    ancestors of BEFORE count. None when there is none."""
    rows = db.execute("SELECT commit_sha FROM runs WHERE dirty = 0 AND commit_sha != 'unknown'"
                      " GROUP BY commit_sha ORDER BY MAX(id) DESC").fetchall()
    for (sha,) in rows:
        if before is not None and sha == before:
            continue
        if before is not None and git_dir is not None:
            rc = subprocess.run(["git", "-C", git_dir, "merge-base", "--is-ancestor", sha, before],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            if rc == 1:
                continue  # known to git, not an ancestor (another branch)
        return sha
    return None


def find_run(db, commit, bench_filter=None, min_repetitions=1, build_config="opt",
             allocator="jemalloc", miniport=None):
    """The id of the newest clean run of COMMIT (with that config, allocator and, if given,
    miniport) holding >= min_repetitions of each of its benchmarks that bench_filter (a regular
    expression, searched) finds, and at least one such benchmark; None when there is none."""
    try:
        pattern = re.compile(bench_filter or "")
    except re.error as e:
        raise BenchError(f"--filter '{bench_filter}': not a valid regular expression ({e})")
    query = ("SELECT id FROM runs WHERE commit_sha = ? AND dirty = 0 AND build_config = ?"
             " AND allocator = ?")
    args = [commit, build_config, allocator]
    if miniport:
        query += " AND miniport = ?"
        args.append(miniport)
    for (run_id,) in db.execute(query + " ORDER BY id DESC", args).fetchall():
        counts = [n for name, n in db.execute(
            "SELECT benchmark, COUNT(*) FROM results WHERE run_id = ? GROUP BY benchmark",
            (run_id,)) if pattern.search(name)]
        if counts and min(counts) >= min_repetitions:
            return run_id
    return None


def median(values):
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


SPARK = "▁▂▃▄▅▆▇█"


def trend_lines(runs):
    """Text lines: one per run with its median and a bar scaled between the smallest and the
    largest median, then a sparkline of them all."""
    values = [r["median_ns"] for r in runs]
    low, high = min(values), max(values)
    span = high - low
    lines = []
    width = 30
    for run in runs:
        v = run["median_ns"]
        fill = width if span == 0 else 1 + round((v - low) / span * (width - 1))
        change = "" if low == 0 else f"{(v / low - 1) * 100:+6.1f}% vs best"
        lines.append(f"{run['id']:>5}  {run['recorded_at'][:16]}  {short_commit(run):<18}"
                     f" {run['allocator']:<8} {run['miniport']:<7} {v:>12.1f} ns"
                     f"  n={run['repetitions']:<3} {'#' * fill:<{width}}  {change}")
    spark = "".join(SPARK[0 if span == 0 else round((v - low) / span * (len(SPARK) - 1))]
                    for v in values)
    lines.append(f"trend (oldest -> newest): {spark}   min {low:.1f} ns, max {high:.1f} ns")
    return lines


def short_commit(run):
    return run["commit_sha"][:12] + ("-dirty" if run["dirty"] else "")


# ---- CLI -----------------------------------------------------------------------------------
def _positive_int(text):
    if not re.fullmatch(r"[1-9][0-9]{0,8}", text):
        raise argparse.ArgumentTypeError(f"must be a whole number from 1, not '{text}'")
    return int(text)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="benchdb.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None,
                        help=f"the history database (default: $ALLOCLAB_HISTORY_DB or {DEFAULT_DB})")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record", help="store a Google Benchmark JSON report; prints the run id")
    p.add_argument("report")
    p.add_argument("--config", default="opt", help="the Bazel config it was built with (opt)")
    p.add_argument("--allocator", help="default: the report's context.allocator")
    p.add_argument("--miniport", help="default: the report's context.miniport")
    p.add_argument("--commit", help="default: the report's context.git_commit (sha[-dirty])")
    p = sub.add_parser("runs", help="list runs; with --bench, one benchmark's trend")
    p.add_argument("--bench", help="a benchmark name (or a regular expression finding one)")
    p.add_argument("--limit", type=_positive_int, help="only the newest N runs")
    p = sub.add_parser("export", help="write a run as a Google Benchmark JSON report")
    p.add_argument("run_id", type=_positive_int)
    p.add_argument("out")
    p = sub.add_parser("previous-commit", help="the newest clean recorded commit before another")
    p.add_argument("--before", help="a full commit sha to skip (and whose ancestors to prefer)")
    p.add_argument("--git-dir", help="a git checkout that knows the commits (ancestry check)")
    p = sub.add_parser("find-run", help="the newest stored run of a commit that has enough"
                       " repetitions")
    p.add_argument("--commit", required=True)
    p.add_argument("--filter", dest="bench_filter")
    p.add_argument("--min-repetitions", type=_positive_int, default=1)
    p.add_argument("--config", default="opt")
    p.add_argument("--allocator", default="jemalloc")
    p.add_argument("--miniport")
    p = sub.add_parser("merge", help="join single-repetition reports into one")
    p.add_argument("out")
    p.add_argument("inputs", nargs="+")
    args = parser.parse_args(argv)
    db_path = args.db or default_db_path()
    try:
        if args.command == "merge":
            write_json_atomically(args.out, merge_reports(args.inputs))
            return 0
        db = open_db(db_path, create=args.command == "record")
        try:
            if args.command == "record":
                print(record(db, db_path, args.report, args.config, args.allocator,
                             args.miniport, args.commit))
            elif args.command == "export":
                write_json_atomically(args.out, export_report(db, args.run_id))
            elif args.command == "previous-commit":
                sha = previous_commit(db, args.before, args.git_dir)
                if sha is None:
                    raise BenchError(f"{db_path}: no recorded commit"
                                     + (f" before {args.before[:12]}" if args.before else "")
                                     + " (record one: ./lab bench, then tools/benchdb.py record)")
                print(sha)
            elif args.command == "find-run":
                run_id = find_run(db, args.commit, args.bench_filter, args.min_repetitions,
                                  args.config, args.allocator, args.miniport)
                if run_id is None:
                    raise BenchError(f"no stored run of {args.commit[:12]} with"
                                     f" {args.min_repetitions} repetitions of the benchmarks"
                                     f" '{args.bench_filter or ''}' finds")
                print(run_id)
            elif args.command == "runs":
                return _print_runs(db, db_path, args)
        finally:
            db.close()
        return 0
    except BenchError as e:
        print(f"benchdb: {e}", file=sys.stderr)
        return 1


def _print_runs(db, db_path, args):
    if args.bench is None:
        runs = list_runs(db, args.limit)
        if not runs:
            print(f"{db_path}: no runs recorded yet")
            return 0
        print(f"{'id':>5}  {'recorded (UTC)':<16}  {'commit':<18} {'config':<6} {'allocator':<9}"
              f" {'miniport':<8} {'benchmarks':>10}  machine")
        for r in runs:
            print(f"{r['id']:>5}  {r['recorded_at'][:16]}  {short_commit(r):<18} "
                  f"{r['build_config']:<6} {r['allocator']:<9} {r['miniport']:<8} "
                  f"{r['benchmarks']:>10}  {r['cpu_model']}, {r['cores']} cores, {r['governor']}")
        return 0
    name = find_benchmark(db, args.bench)
    runs = list_runs(db, args.limit, name)
    print(f"{name}: median per run (ns per allocation for teardown benchmarks, else real time)")
    for line in trend_lines(runs):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
