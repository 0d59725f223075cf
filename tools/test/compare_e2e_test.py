#!/usr/bin/python3
"""End to end: two "commits" of a benchmark binary, the second made 50% slower on purpose (sleeps of 10 and 15 ms, the shortest of three reported, long
enough that a loaded machine's scheduling jitter stays small beside them), run
interleaved by bench_interleave.py, recorded in a history database, judged by compare_runs.py.
The binaries are tools/test/fake_benchmark.py (measured sleeps) behind two wrapper scripts, so
the test needs no Bazel build; `./lab compare` does the same with two real builds."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..")
PY = "/usr/bin/python3"


class CompareTwoCommits(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.log = os.path.join(self.dir, "calls.log")
        self.db = os.path.join(self.dir, "history.sqlite")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def binary(self, name, sleep_ms):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nFAKE_BENCH_SLEEP_MS={sleep_ms} FAKE_BENCH_NAME={name} "
                    f"FAKE_BENCH_LOG='{self.log}' exec {PY} '{HERE}/fake_benchmark.py' \"$@\"\n")
        os.chmod(path, 0o755)
        return path

    def tool(self, name, *args):
        return subprocess.run([PY, os.path.join(TOOLS, name), *args], capture_output=True,
                              text=True)

    def test_the_slower_commit_is_a_regression_and_the_unchanged_benchmark_is_not(self):
        old_bin, new_bin = self.binary("old", 10), self.binary("new", 15)
        out_dir = os.path.join(self.dir, "runs")
        done = self.tool("bench_interleave.py", "--side", "old", old_bin, "a" * 40,
                         "--side", "new", new_bin, "b" * 40 + "-dirty", "--repetitions", "9",
                         "--out-dir", out_dir, "--record", "--db", self.db)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("repetition 9/9", done.stdout)
        self.assertIn("(history run 1)", done.stdout)
        self.assertIn("(history run 2)", done.stdout)
        with open(self.log) as f:  # interleaved, one repetition per call
            self.assertEqual(f.read().split("\n")[:-1], ["old 1", "new 1"] * 9)

        db = sqlite3.connect(self.db)
        self.assertEqual(db.execute("SELECT id, commit_sha, dirty FROM runs ORDER BY id").fetchall(),
                         [(1, "a" * 40, 0), (2, "b" * 40, 1)])
        self.assertEqual(db.execute("SELECT COUNT(*) FROM results").fetchone()[0], 36)
        db.close()

        verdicts = os.path.join(self.dir, "verdicts.json")
        done = self.tool("compare_runs.py", os.path.join(out_dir, "old.json"),
                         os.path.join(out_dir, "new.json"), "--json", verdicts)
        self.assertEqual(done.returncode, 2, done.stdout + done.stderr)
        self.assertIn("REGRESSION", done.stdout)
        with open(verdicts) as f:
            rows = {r["name"]: r for r in json.load(f)["benchmarks"]}
        changed = rows["BM_teardown_changed/allocations:8/manual_time"]
        self.assertEqual(changed["verdict"], "regression", done.stdout)
        self.assertLess(changed["p_value"], 0.05)
        self.assertGreater(changed["change"], 0.25)
        self.assertNotEqual(rows["BM_steady/sleep_ms:5"]["verdict"], "regression", done.stdout)

        # The same two runs, back out of the database, read by compare.py as well.
        for run_id in ("1", "2"):
            done = self.tool("benchdb.py", "--db", self.db, "export", run_id,
                             os.path.join(self.dir, f"run{run_id}.json"))
            self.assertEqual(done.returncode, 0, done.stderr)
        done = self.tool("compare_runs.py", os.path.join(self.dir, "run1.json"),
                         os.path.join(self.dir, "run2.json"))
        self.assertEqual(done.returncode, 2, done.stdout)
        if os.path.exists("/usr/share/benchmark/compare.py"):
            done = subprocess.run([PY, "/usr/share/benchmark/compare.py", "benchmarks",
                                   os.path.join(self.dir, "run1.json"),
                                   os.path.join(self.dir, "run2.json")],
                                  capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn("BM_teardown_changed", done.stdout)

    def test_a_failing_binary_is_reported_and_nothing_is_recorded(self):
        broken = os.path.join(self.dir, "broken")
        with open(broken, "w") as f:
            f.write("#!/bin/sh\necho 'segment heap: boom' >&2\nexit 3\n")
        os.chmod(broken, 0o755)
        done = self.tool("bench_interleave.py", "--side", "old", self.binary("old", 1), "a" * 40,
                         "--side", "new", broken, "b" * 40, "--repetitions", "2",
                         "--out-dir", os.path.join(self.dir, "runs"), "--record", "--db", self.db)
        self.assertEqual(done.returncode, 1)
        self.assertIn("exited with status 3 in repetition 1", done.stderr)
        self.assertFalse(os.path.exists(self.db))
        done = self.tool("bench_interleave.py", "--side", "old", self.binary("old", 1), "a" * 40,
                         "--filter", "NoSuchBenchmark", "--repetitions", "1",
                         "--out-dir", os.path.join(self.dir, "runs"))
        self.assertEqual(done.returncode, 1)
        self.assertIn("wrote no benchmark results", done.stderr)
        done = self.tool("bench_interleave.py", "--side", "old", "/no/such/binary", "a" * 40,
                         "--out-dir", os.path.join(self.dir, "runs"))
        self.assertEqual(done.returncode, 2)
        self.assertIn("is not an executable file", done.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
