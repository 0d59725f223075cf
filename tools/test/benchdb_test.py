#!/usr/bin/python3
"""Tests of tools/benchdb.py: the history database and its CLI."""
import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, TOOLS)
import benchdb  # noqa: E402

MACHINE = {"cpu_model": "Test CPU", "cores": 2, "governor": "performance"}


def report(commit="a" * 40, reps=3, base=100.0, extra_rows=()):
    rows = []
    for rep in range(reps):
        rows.append({"name": "BM_plain/8", "run_name": "BM_plain/8", "run_type": "iteration",
                     "repetitions": reps, "repetition_index": rep, "threads": 1,
                     "iterations": 1000, "real_time": base + rep, "cpu_time": base + rep - 0.5,
                     "time_unit": "ns", "items_per_second": 1e7, "label": "plain"})
        rows.append({"name": "BM_teardown/64/manual_time", "run_name": "BM_teardown/64/manual_time",
                     "run_type": "iteration", "repetitions": reps, "repetition_index": rep,
                     "threads": 1, "iterations": 50, "real_time": 3.5 + rep, "cpu_time": 4.0,
                     "time_unit": "us", "ns_per_allocation": 40.0 + rep, "p99_ns": 90.0})
    rows.append({"name": "BM_plain/8_mean", "run_name": "BM_plain/8", "run_type": "aggregate",
                 "aggregate_name": "mean", "repetitions": reps, "threads": 1, "iterations": reps,
                 "real_time": base + 1, "cpu_time": base, "time_unit": "ns"})
    rows.extend(extra_rows)
    return {"context": {"date": "2026-11-21T07:00:00+00:00", "host_name": "vm",
                        "allocator": "jemalloc", "miniport": "sim", "git_commit": commit},
            "benchmarks": rows}


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.db_path = os.path.join(self.dir, "history.sqlite")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
        return path

    def record(self, data, name="r.json", **kw):
        db = benchdb.open_db(self.db_path)
        try:
            return benchdb.record(db, self.db_path, self.write(name, data), fingerprint=MACHINE, **kw)
        finally:
            db.close()

    def cli(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = benchdb.main(["--db", self.db_path, *args])
            except SystemExit as e:
                rc = e.code
        return rc, out.getvalue(), err.getvalue()

    def run_count(self):
        db = sqlite3.connect(self.db_path)
        try:
            return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0], \
                db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        finally:
            db.close()


class RoundTrip(Base):
    def test_record_then_export_gives_the_same_rows(self):
        run_id = self.record(report(commit="b" * 40 + "-dirty"))
        db = benchdb.open_db(self.db_path)
        run = benchdb.get_run(db, run_id)
        self.assertEqual((run["commit_sha"], run["dirty"]), ("b" * 40, 1))
        self.assertEqual((run["cpu_model"], run["cores"], run["governor"]),
                         ("Test CPU", 2, "performance"))
        self.assertEqual((run["build_config"], run["allocator"], run["miniport"]),
                         ("opt", "jemalloc", "sim"))
        exported = benchdb.export_report(db, run_id)
        db.close()
        original = [r for r in report()["benchmarks"] if r["run_type"] == "iteration"]
        self.assertEqual(len(exported["benchmarks"]), len(original))
        for old, new in zip(original, exported["benchmarks"]):
            for key in ("name", "repetition_index", "real_time", "cpu_time", "time_unit",
                        "iterations"):
                self.assertEqual(old[key], new[key], key)
            self.assertEqual(old.get("ns_per_allocation"), new.get("ns_per_allocation"))
            self.assertEqual(old.get("p99_ns"), new.get("p99_ns"))
            self.assertEqual(old.get("items_per_second"), new.get("items_per_second"))
            self.assertEqual(new["repetitions"], 3)
        self.assertEqual(exported["context"]["git_commit"], "b" * 40 + "-dirty")

    def test_cli_record_prints_the_id_and_export_writes_a_readable_report(self):
        path = self.write("r.json", report())
        self.assertEqual(self.cli("record", path, "--allocator", "glibc")[:2], (0, "1\n"))
        self.assertEqual(self.cli("record", path)[:2], (0, "2\n"))
        out = os.path.join(self.dir, "out.json")
        self.assertEqual(self.cli("export", "1", out)[0], 0)
        again = benchdb.load_report(out)
        self.assertEqual(len(benchdb.iteration_rows(again)), 6)
        compare_py = "/usr/share/benchmark/compare.py"
        if os.path.exists(compare_py):
            done = subprocess.run(["/usr/bin/python3", compare_py, "benchmarks", out, out],
                                  capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn("BM_teardown/64/manual_time", done.stdout)
        rc, _, err = self.cli("export", "9", out)
        self.assertEqual(rc, 1)
        self.assertIn("no run with id 9", err)

    def test_runs_lists_and_draws_a_trend(self):
        for i, base in enumerate((100.0, 150.0, 120.0)):
            self.record(report(commit=str(i) * 40, base=base))
        rc, out, _ = self.cli("runs")
        self.assertEqual(rc, 0)
        self.assertEqual(len(out.strip().splitlines()), 4)  # header + 3 runs
        self.assertIn("Test CPU, 2 cores, performance", out)
        rc, out, _ = self.cli("runs", "--bench", "BM_plain")
        self.assertEqual(rc, 0, out)
        lines = out.splitlines()
        self.assertIn("101.0 ns", lines[1])  # median of 100, 101, 102
        self.assertIn("151.0 ns", lines[2])
        self.assertEqual(lines[1].count("#"), 1)   # the fastest: the shortest bar
        self.assertEqual(lines[2].count("#"), 30)  # the slowest: the longest
        self.assertIn("▁█", lines[-1])
        rc, out, _ = self.cli("runs", "--bench", "BM_teardown", "--limit", "2")
        self.assertIn("41.0 ns", out)  # ns_per_allocation, not real_time
        self.assertEqual(len(out.splitlines()), 4)  # title + 2 runs + trend
        rc, _, err = self.cli("runs", "--bench", "BM_")
        self.assertEqual(rc, 1)
        self.assertIn("matches 2 benchmarks", err)
        rc, _, err = self.cli("runs", "--bench", "nothing")
        self.assertEqual(rc, 1)
        self.assertIn("no recorded benchmark matches", err)

    def test_merge_numbers_the_repetitions(self):
        a = self.write("a.json", report(reps=1, base=10))
        b = self.write("b.json", report(reps=1, base=20))
        out = os.path.join(self.dir, "m.json")
        self.assertEqual(self.cli("merge", out, a, b)[0], 0)
        rows = [r for r in benchdb.load_report(out)["benchmarks"] if r["name"] == "BM_plain/8"]
        self.assertEqual([(r["repetition_index"], r["real_time"], r["repetitions"]) for r in rows],
                         [(0, 10.0, 2), (1, 20.0, 2)])


class BadInput(Base):
    def test_corrupt_or_foreign_reports_are_refused_and_nothing_is_stored(self):
        self.record(report())
        before = self.run_count()
        cases = {
            "truncated.json": (json.dumps(report())[:200], "not valid JSON"),
            "list.json": ("[1, 2]", "not a Google Benchmark report"),
            "nocontext.json": (json.dumps({"benchmarks": []}), "not a Google Benchmark report"),
            "empty.json": (json.dumps({"context": {}, "benchmarks": []}), "no benchmark results"),
            "notime.json": (json.dumps({"context": {}, "benchmarks": [{"name": "x"}]}),
                            "no numeric real_time"),
            "unit.json": (json.dumps({"context": {}, "benchmarks": [
                {"name": "x", "real_time": 1, "cpu_time": 1, "time_unit": "h"}]}),
                "unknown time_unit"),
        }
        for name, (text, message) in cases.items():
            rc, out, err = self.cli("record", self.write(name, text))
            self.assertEqual(rc, 1, name)
            self.assertIn(message, err, name)
            self.assertEqual(out, "", name)
        rc, _, err = self.cli("record", os.path.join(self.dir, "absent.json"))
        self.assertEqual(rc, 1)
        self.assertIn("no such file", err)
        self.assertEqual(self.run_count(), before)

    def test_reading_commands_do_not_create_a_database(self):
        rc, _, err = self.cli("runs")
        self.assertEqual(rc, 1)
        self.assertIn("no history database yet", err)
        self.assertFalse(os.path.exists(self.db_path))

    def test_a_full_disk_stores_nothing_and_keeps_earlier_runs(self):
        self.record(report())
        before = self.run_count()
        db = benchdb.open_db(self.db_path)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")  # what a full disk looks like to SQLite
        many = [{"name": f"BM_x/{i}", "run_type": "iteration", "real_time": 1.0, "cpu_time": 1.0,
                 "time_unit": "ns", "iterations": 1, "label": "x" * 200} for i in range(2000)]
        path = self.write("big.json", report(extra_rows=many))
        with self.assertRaises(benchdb.BenchError) as caught:
            benchdb.record(db, self.db_path, path, fingerprint=MACHINE)
        db.close()
        self.assertIn("full", str(caught.exception))
        self.assertIn("nothing was stored", str(caught.exception))
        self.assertEqual(self.run_count(), before)

    def test_write_json_atomically_keeps_the_old_file_when_it_fails(self):
        path = self.write("keep.json", "old")
        with self.assertRaises(TypeError):
            benchdb.write_json_atomically(path, {"bad": object()})
        with open(path) as f:
            self.assertEqual(f.read(), "old")
        self.assertEqual(os.listdir(self.dir), ["keep.json"])


class SchemaVersions(Base):
    def snapshot(self):
        with open(self.db_path, "rb") as f:
            return f.read()

    def test_a_new_database_has_the_current_version(self):
        self.record(report())
        db = sqlite3.connect(self.db_path)
        self.assertEqual(db.execute("SELECT version FROM schema_version").fetchall(),
                         [(benchdb.SCHEMA_VERSION,)])
        db.close()

    def test_a_newer_database_is_refused_untouched(self):
        self.record(report())
        db = sqlite3.connect(self.db_path)
        db.execute("UPDATE schema_version SET version = ?", (benchdb.SCHEMA_VERSION + 1,))
        db.commit()
        db.close()
        before = self.snapshot()
        rc, _, err = self.cli("record", self.write("r2.json", report()))
        self.assertEqual(rc, 1)
        self.assertIn(f"schema version {benchdb.SCHEMA_VERSION + 1} is newer", err)
        self.assertEqual(self.snapshot(), before)

    def test_files_that_are_not_our_database_are_refused_untouched(self):
        with open(self.db_path, "wb") as f:
            f.write(b"this is not sqlite at all, just some bytes" * 100)
        before = self.snapshot()
        rc, _, err = self.cli("runs")
        self.assertEqual(rc, 1)
        self.assertIn("not a readable SQLite database", err)
        self.assertEqual(self.snapshot(), before)
        os.unlink(self.db_path)
        db = sqlite3.connect(self.db_path)
        db.execute("CREATE TABLE something (x)")
        db.commit()
        db.close()
        rc, _, err = self.cli("record", self.write("r.json", report()))
        self.assertEqual(rc, 1)
        self.assertIn("not an alloclab benchmark history", err)

    def test_an_older_database_is_migrated_and_keeps_its_runs(self):
        self.record(report(commit="c" * 40))
        saved = benchdb.SCHEMA_VERSION, dict(benchdb.MIGRATIONS)
        try:
            benchdb.SCHEMA_VERSION = saved[0] + 1
            benchdb.MIGRATIONS[saved[0]] = lambda db: db.execute(
                "ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT 'migrated'")
            db = benchdb.open_db(self.db_path)
            self.assertEqual(db.execute("SELECT version FROM schema_version").fetchone()[0],
                             saved[0] + 1)
            self.assertEqual(db.execute("SELECT commit_sha, note FROM runs").fetchall(),
                             [("c" * 40, "migrated")])
            self.assertEqual(db.execute("SELECT COUNT(*) FROM results").fetchone()[0], 6)
            db.close()
        finally:
            benchdb.SCHEMA_VERSION = saved[0]
            benchdb.MIGRATIONS.clear()
            benchdb.MIGRATIONS.update(saved[1])

    def test_a_failing_migration_changes_nothing(self):
        self.record(report())
        before = self.snapshot()
        saved = benchdb.SCHEMA_VERSION, dict(benchdb.MIGRATIONS)

        def half_then_fail(db):
            db.execute("DELETE FROM results")
            db.execute("SELECT * FROM no_such_table")

        try:
            benchdb.SCHEMA_VERSION = saved[0] + 1
            benchdb.MIGRATIONS[saved[0]] = half_then_fail
            with self.assertRaises(benchdb.BenchError) as caught:
                benchdb.open_db(self.db_path)
            self.assertIn("nothing was changed", str(caught.exception))
            benchdb.SCHEMA_VERSION = saved[0] + 2  # and no path from saved[0] + 1
            with self.assertRaises(benchdb.BenchError) as caught:
                benchdb.open_db(self.db_path)
            self.assertIn("no migration from version", str(caught.exception))
        finally:
            benchdb.SCHEMA_VERSION = saved[0]
            benchdb.MIGRATIONS.clear()
            benchdb.MIGRATIONS.update(saved[1])
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.run_count(), (1, 6))


class FindRun(Base):
    def test_the_newest_clean_run_with_enough_repetitions(self):
        sha = "d" * 40
        first = self.record(report(commit=sha, reps=9))
        self.record(report(commit=sha, reps=3))
        self.record(report(commit=sha + "-dirty", reps=9))
        self.record(report(commit=sha, reps=9), allocator="glibc")
        db = benchdb.open_db(self.db_path)
        self.assertEqual(benchdb.find_run(db, sha, "BM_plain", 9), first)
        self.assertEqual(benchdb.find_run(db, sha, "BM_plain", 3), 2)
        self.assertEqual(benchdb.find_run(db, sha, None, 9, allocator="glibc"), 4)
        self.assertIsNone(benchdb.find_run(db, sha, "BM_absent", 1))
        self.assertIsNone(benchdb.find_run(db, "e" * 40, None, 1))
        self.assertIsNone(benchdb.find_run(db, sha, None, 9, miniport="example"))
        with self.assertRaises(benchdb.BenchError):
            benchdb.find_run(db, sha, "(", 1)
        db.close()
        self.assertEqual(self.cli("find-run", "--commit", sha, "--min-repetitions", "9")[:2],
                         (0, f"{first}\n"))
        rc, _, err = self.cli("find-run", "--commit", sha, "--min-repetitions", "10")
        self.assertEqual(rc, 1)
        self.assertIn("no stored run", err)


class PreviousCommit(Base):
    def git(self, *args):
        return subprocess.run(["git", "-C", self.repo, "-c", "user.name=t", "-c",
                               "user.email=t@t", *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    def commit(self, message):
        self.git("commit", "--allow-empty", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def test_the_newest_clean_ancestor_other_than_the_given_commit(self):
        self.repo = os.path.join(self.dir, "repo")
        os.mkdir(self.repo)
        self.git("init", "-q")
        c1, c2 = self.commit("one"), self.commit("two")
        self.git("checkout", "-q", "-b", "side", c1)
        side = self.commit("side")
        self.git("checkout", "-q", "-")
        c3 = self.commit("three")
        for sha in (c1, c2, side, c3 + "-dirty"):
            self.record(report(commit=sha))
        db = benchdb.open_db(self.db_path)
        self.assertEqual(benchdb.previous_commit(db, c3, self.repo), c2)  # not side, not dirty c3
        self.assertEqual(benchdb.previous_commit(db, c2, self.repo), c1)
        self.assertEqual(benchdb.previous_commit(db, None), side)  # the newest clean one
        self.assertIsNone(benchdb.previous_commit(db, c1, self.repo))
        db.close()
        self.assertEqual(self.cli("previous-commit", "--before", c3, "--git-dir", self.repo)[:2],
                         (0, c2 + "\n"))
        rc, _, err = self.cli("previous-commit", "--before", c1, "--git-dir", self.repo)
        self.assertEqual(rc, 1)
        self.assertIn("no recorded commit before", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
