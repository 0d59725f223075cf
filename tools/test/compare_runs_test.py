#!/usr/bin/python3
"""Tests of tools/compare_runs.py: the U test, the verdicts, the CLI."""
import contextlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import unittest

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, TOOLS)
import compare_runs  # noqa: E402


def report(samples, commit="x"):
    """samples: {name: [ns...]}; names holding 'teardown' carry them as ns_per_allocation."""
    rows = []
    for name, values in samples.items():
        for i, v in enumerate(values):
            row = {"name": name, "run_type": "iteration", "repetitions": len(values),
                   "repetition_index": i, "iterations": 10, "real_time": v, "cpu_time": v,
                   "time_unit": "ns"}
            if "teardown" in name:
                row["real_time"] = 5.0  # a constant: only ns_per_allocation shows the change
                row["ns_per_allocation"] = v
            rows.append(row)
    return {"context": {"git_commit": commit}, "benchmarks": rows}


def lognormal(rng, n, scale, sigma=0.03):
    return [scale * rng.lognormvariate(0, sigma) for _ in range(n)]


class MannWhitney(unittest.TestCase):
    # Values from scipy 1.10.1: mannwhitneyu(x, y, method='asymptotic') (two-sided, continuity).
    KNOWN = [
        ([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30],
         [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29], 58.0, 0.13291945818531892),
        ([10, 11, 12, 13, 14, 15, 16, 17, 18],
         [12, 13, 14, 15, 16, 17, 18, 19, 20, 21], 24.5, 0.1014154472690683),
        (list(range(1, 10)), list(range(10, 19)), 0.0, 0.00041229480206169127),
    ]

    def test_known_values(self):
        for x, y, u, p in self.KNOWN:
            got_u, got_p = compare_runs.mann_whitney_u(x, y)
            self.assertEqual(got_u, u)
            self.assertAlmostEqual(got_p, p, places=12)

    def test_symmetry_and_all_ties(self):
        x, y, u, p = self.KNOWN[1]
        got_u, got_p = compare_runs.mann_whitney_u(y, x)
        self.assertEqual(got_u, len(x) * len(y) - u)
        self.assertAlmostEqual(got_p, p, places=12)
        self.assertEqual(compare_runs.mann_whitney_u([5] * 9, [5] * 9), (40.5, 1.0))
        with self.assertRaises(ValueError):
            compare_runs.mann_whitney_u([], [1])

    def test_agrees_with_scipy_when_it_is_installed(self):
        try:
            from scipy.stats import mannwhitneyu
        except ImportError:
            self.skipTest("scipy is not installed")
        rng = random.Random(7)
        for _ in range(200):
            x = [round(rng.gauss(10, 2), rng.choice([0, 1, 3])) for _ in range(rng.randint(1, 15))]
            y = [round(rng.gauss(11, 2), rng.choice([0, 1, 3])) for _ in range(rng.randint(1, 15))]
            expected = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
            u, p = compare_runs.mann_whitney_u(x, y)
            self.assertAlmostEqual(u, expected.statistic, places=9)
            self.assertAlmostEqual(p, expected.pvalue, places=9)


class Verdicts(unittest.TestCase):
    def test_noise_alone_raises_no_alarm(self):
        # 300 comparisons of two samples from one distribution (3% noise, 9 repetitions): the
        # U test alone flags about alpha = 5% of them (about 15); with the 5% threshold on top
        # the medians must also differ by more than 2.8 standard errors: about 1 in 300.
        rng = random.Random(1)
        flagged = significant = 0
        for _ in range(300):
            rows, _ = compare_runs.compare(report({"BM_a": lognormal(rng, 9, 100)}),
                                           report({"BM_a": lognormal(rng, 9, 100)}))
            flagged += rows[0]["verdict"] == "regression"
            significant += rows[0]["p_value"] < 0.05
        self.assertLessEqual(flagged, 3)
        self.assertGreater(significant, 5)  # the U test is calibrated: neither blind...
        self.assertLess(significant, 30)  # ...nor trigger-happy

    def test_noisy_samples_with_a_large_but_insignificant_change_are_same(self):
        old = [100, 300, 110, 280, 120, 260, 130, 250, 140]
        new = [v * 1.1 for v in [300, 100, 280, 110, 260, 120, 250, 130, 140]]
        rows, _ = compare_runs.compare(report({"BM_a": old}), report({"BM_a": new}))
        self.assertGreater(rows[0]["change"], 0.05)
        self.assertEqual(rows[0]["verdict"], "same")

    def test_a_twenty_percent_slowdown_is_a_regression(self):
        rng = random.Random(2)
        old = report({"BM_a": lognormal(rng, 9, 100), "BM_teardown/64": lognormal(rng, 9, 40),
                      "BM_fast": lognormal(rng, 9, 50), "BM_small": lognormal(rng, 9, 100, 0.002),
                      "BM_gone": [1.0] * 9})
        new = report({"BM_a": lognormal(rng, 9, 100), "BM_teardown/64": lognormal(rng, 9, 48),
                      "BM_fast": lognormal(rng, 9, 40), "BM_small": lognormal(rng, 9, 102, 0.002),
                      "BM_new": [1.0] * 9})
        rows, geomean = compare_runs.compare(old, new)
        by_name = {r["name"]: r for r in rows}
        slow = by_name["BM_teardown/64"]
        self.assertEqual(slow["verdict"], "regression")
        self.assertLess(slow["p_value"], 0.05)
        self.assertAlmostEqual(slow["change"], 0.20, delta=0.04)
        self.assertEqual(by_name["BM_a"]["verdict"], "same")
        self.assertEqual(by_name["BM_fast"]["verdict"], "faster")
        self.assertEqual(by_name["BM_small"]["verdict"], "slower")  # real, under the threshold
        self.assertEqual(by_name["BM_gone"]["verdict"], "missing")
        self.assertEqual(by_name["BM_new"]["verdict"], "missing")
        ratios = [r["new_median_ns"] / r["old_median_ns"] for r in rows if r["change"] is not None]
        product = 1.0
        for ratio in ratios:
            product *= ratio
        self.assertAlmostEqual(geomean, product ** (1 / len(ratios)), places=12)
        # A higher threshold turns the same slowdown into "slower": no alarm.
        rows, _ = compare_runs.compare(old, new, threshold=0.30)
        self.assertEqual({r["name"]: r["verdict"] for r in rows}["BM_teardown/64"], "slower")


class Normalized(unittest.TestCase):
    """--normalize-by: runs recorded at different times, judged against their own anchor."""

    def runs(self, machine, teardown):
        rng = random.Random(5)
        old = report({"BM_anchor_jemalloc_malloc_free/bytes:64": lognormal(rng, 9, 12.7),
                      "BM_teardown/64": lognormal(rng, 9, 34.7)})
        new = report({"BM_anchor_jemalloc_malloc_free/bytes:64": lognormal(rng, 9, 12.7 * machine),
                      "BM_teardown/64": lognormal(rng, 9, 34.7 * machine * teardown)})
        return old, new

    def test_a_machine_slower_as_a_whole_is_no_regression(self):
        old, new = self.runs(machine=1.25, teardown=1.0)
        raw = {r["name"]: r for r in compare_runs.compare(old, new)[0]}
        self.assertEqual(raw["BM_teardown/64"]["verdict"], "regression")  # the alarm it avoids
        rows, geomean = compare_runs.compare(old, new, normalize_by="BM_anchor_jemalloc")
        by_name = {r["name"]: r for r in rows}
        self.assertNotEqual(by_name["BM_teardown/64"]["verdict"], "regression")
        self.assertLess(abs(by_name["BM_teardown/64"]["change"]), 0.05)
        self.assertEqual(by_name["BM_anchor_jemalloc_malloc_free/bytes:64"]["verdict"], "anchor")
        self.assertAlmostEqual(geomean, 1.0, delta=0.05)

    def test_the_port_slower_against_its_anchor_is_a_regression(self):
        old, new = self.runs(machine=0.9, teardown=1.2)  # a faster machine does not hide it
        rows, _ = compare_runs.compare(old, new, normalize_by="BM_anchor_jemalloc")
        slow = {r["name"]: r for r in rows}["BM_teardown/64"]
        self.assertEqual(slow["verdict"], "regression")
        self.assertAlmostEqual(slow["change"], 0.2, delta=0.05)
        self.assertEqual(slow["old_median_ns"], compare_runs.benchdb.median(
            compare_runs.samples_by_benchmark(old)["BM_teardown/64"]))  # shown in ns


class Cli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
        return path

    def cli(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = compare_runs.main(list(args))
            except SystemExit as e:
                rc = e.code
        return rc, out.getvalue(), err.getvalue()

    def test_exit_status_table_and_json(self):
        rng = random.Random(3)
        old = self.write("old.json", report({"BM_teardown/64": lognormal(rng, 9, 40)}, "aaa"))
        new = self.write("new.json", report({"BM_teardown/64": lognormal(rng, 9, 48)}, "bbb"))
        out_json = os.path.join(self.dir, "verdicts.json")
        rc, out, _ = self.cli(old, new, "--json", out_json)
        self.assertEqual(rc, 2)
        self.assertIn("regression", out)
        overall = [l for l in out.splitlines() if l.startswith("overall (geometric mean")]
        self.assertAlmostEqual(float(overall[0].split()[5]), 1.2, delta=0.04)
        self.assertIn("REGRESSION: 1 benchmark(s)", out)
        with open(out_json) as f:
            verdicts = json.load(f)
        self.assertEqual(verdicts["regressions"], ["BM_teardown/64"])
        self.assertEqual((verdicts["old_commit"], verdicts["new_commit"]), ("aaa", "bbb"))
        self.assertEqual(verdicts["benchmarks"][0]["verdict"], "regression")
        rc, out, _ = self.cli(old, old)
        self.assertEqual(rc, 0)
        self.assertIn("1 same", out)
        rc, out, _ = self.cli(old, new, "--threshold", "25")
        self.assertEqual(rc, 0)

    def test_normalize_by_anchor(self):
        rng = random.Random(6)
        old = self.write("old.json", report({"BM_anchor_jemalloc_x": lognormal(rng, 9, 10),
                                             "BM_teardown/64": lognormal(rng, 9, 40)}))
        new = self.write("new.json", report({"BM_anchor_jemalloc_x": lognormal(rng, 9, 13),
                                             "BM_teardown/64": lognormal(rng, 9, 52)}))
        rc, out, _ = self.cli(old, new)
        self.assertEqual(rc, 2)
        rc, out, _ = self.cli(old, new, "--normalize-by", "BM_anchor_jemalloc")
        self.assertEqual(rc, 0, out)
        self.assertIn("1 anchor", out)
        bare = self.write("bare.json", report({"BM_teardown/64": lognormal(rng, 9, 40)}))
        rc, _, err = self.cli(bare, new, "--normalize-by", "BM_anchor_jemalloc")
        self.assertEqual(rc, 1)
        self.assertIn("the old report has no benchmark matching the anchor 'BM_anchor_jemalloc'", err)
        rc, _, err = self.cli(old, new, "--normalize-by", "BM_(")
        self.assertEqual(rc, 64)
        self.assertIn("--normalize-by: not a regular expression", err)

    def test_few_repetitions_warn(self):
        old = self.write("old.json", report({"BM_a": [1.0, 2.0]}))
        rc, out, _ = self.cli(old, old)
        self.assertEqual(rc, 0)
        self.assertIn("fewer than 9 repetitions", out)

    def test_bad_input(self):
        good = self.write("good.json", report({"BM_a": [1.0] * 9}))
        corrupt = self.write("corrupt.json", '{"context": {}, "bench')
        for args, status, message in [
                ((good, os.path.join(self.dir, "none.json")), 1, "no such file"),
                ((corrupt, good), 1, "not valid JSON"),
                ((good, good, "--threshold", "five"), 64, "percentage"),
                ((good, good, "--threshold", "-1"), 64, "from 0 to 1000"),
                ((good, good, "--alpha", "1.5"), 64, "between 0 and 1"),
                ((good,), 64, "required"),
                ((good, good, "--json", os.path.join(self.dir, "no", "dir.json")), 1,
                 "cannot write it")]:
            rc, _, err = self.cli(*args)
            self.assertEqual(rc, status, args)
            self.assertIn(message, err, args)


if __name__ == "__main__":
    unittest.main(verbosity=2)
