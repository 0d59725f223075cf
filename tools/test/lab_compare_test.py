#!/usr/bin/python3
"""`./lab compare` and `./lab history` end to end, on a tiny git repository holding a copy of
lab and tools/, with a fake `bazel` first on PATH: its "build" writes a benchmark binary
(tools/test/fake_benchmark.py) whose teardown sleeps the milliseconds in bench/sleep_ms of the
tree it builds. So two commits differ in speed the way two alloclab commits would, and lab's own
steps run for real: resolving commits, the history's previous commit, the scratch worktree,
binaries kept per commit, interleaved runs, recording, reuse of stored runs, verdicts, exit
status."""
import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..")
LAB = os.path.join(TOOLS, "..", "lab")

FAKE_BAZEL = """#!/bin/sh
# Fake bazel for lab_compare_test: skips startup options, then
#   build ...: writes fake-bin/bench/alloclab_benchmark for the tree in the current directory
#   info ... bazel-bin: prints that folder
while [ $# -gt 0 ]; do case $1 in --*) shift ;; *) break ;; esac; done
command=$1
echo "$command $PWD" >>"$FAKE_BAZEL_LOG"
case $command in
  build)
    [ -f bench/sleep_ms ] || { echo "fake bazel: no bench/sleep_ms" >&2; exit 1; }
    mkdir -p fake-bin/bench
    printf '#!/bin/sh\\nFAKE_BENCH_SLEEP_MS=%s exec /usr/bin/python3 %s "$@"\\n' \\
      "$(cat bench/sleep_ms)" "$FAKE_BENCHMARK" >fake-bin/bench/alloclab_benchmark
    chmod +x fake-bin/bench/alloclab_benchmark ;;
  info) echo "$PWD/fake-bin" ;;
  *) echo "fake bazel: $command?" >&2; exit 1 ;;
esac
"""


class LabCompare(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.repo = os.path.join(self.dir, "alloclab")
        os.makedirs(os.path.join(self.repo, "tools"))
        os.makedirs(os.path.join(self.repo, "bench"))
        shutil.copy(LAB, os.path.join(self.repo, "lab"))
        for name in ("benchdb.py", "compare_runs.py", "bench_interleave.py"):
            shutil.copy(os.path.join(TOOLS, name), os.path.join(self.repo, "tools", name))
        with open(os.path.join(self.repo, ".gitignore"), "w") as f:
            f.write("/.lab/\n/fake-bin/\n__pycache__/\n")
        with open(os.path.join(self.repo, "bench", "BUILD.bazel"), "w") as f:
            f.write("# the fake build reads sleep_ms\n")
        bin_dir = os.path.join(self.dir, "bin")
        os.mkdir(bin_dir)
        with open(os.path.join(bin_dir, "bazel"), "w") as f:
            f.write(FAKE_BAZEL)
        os.chmod(os.path.join(bin_dir, "bazel"), 0o755)
        self.bazel_log = os.path.join(self.dir, "bazel.log")
        self.env = dict(os.environ, PATH=bin_dir + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
                        FAKE_BAZEL_LOG=self.bazel_log, CI="true",
                        FAKE_BENCHMARK=os.path.join(HERE, "fake_benchmark.py"))
        self.env.pop("ALLOCLAB_HISTORY_DB", None)
        self.git("init", "-q")

    def tearDown(self):
        subprocess.run(["chmod", "-R", "u+w", self.dir])
        shutil.rmtree(self.dir)

    def git(self, *args):
        return subprocess.run(["git", "-C", self.repo, "-c", "user.name=t", "-c", "user.email=t@t",
                               *args], check=True, capture_output=True, text=True).stdout.strip()

    def commit_with_sleep(self, ms, message):
        with open(os.path.join(self.repo, "bench", "sleep_ms"), "w") as f:
            f.write(f"{ms}\n")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def lab(self, *args):
        return subprocess.run([os.path.join(self.repo, "lab"), *args], cwd=self.repo,
                              env=self.env, capture_output=True, text=True)

    def runs(self):
        db = sqlite3.connect(os.path.join(self.repo, ".lab", "history.sqlite"))
        try:
            return db.execute("SELECT id, commit_sha, dirty FROM runs ORDER BY id").fetchall()
        finally:
            db.close()

    def test_compare_commits_then_the_working_tree(self):
        fast = self.commit_with_sleep(10, "fast")
        slow = self.commit_with_sleep(20, "made slower on purpose")

        # No history yet: the default A cannot be found.
        done = self.lab("compare", "--filter", "teardown")
        self.assertEqual(done.returncode, 1)
        self.assertIn("no benchmark history yet", done.stderr)

        # Two commits: both built in the scratch worktree, run interleaved, recorded.
        verdicts = os.path.join(self.dir, "verdicts.json")
        done = self.lab("compare", fast, "HEAD", "--filter", "teardown", "--json", verdicts)
        self.assertEqual(done.returncode, 2, done.stdout + done.stderr)
        self.assertIn("repetition 9/9", done.stdout)
        self.assertIn("regression", done.stdout)
        with open(verdicts) as f:
            result = json.load(f)
        self.assertEqual(result["regressions"], ["BM_teardown_changed/allocations:8/manual_time"])
        self.assertEqual((result["old_commit"], result["new_commit"]), (fast, slow))
        self.assertEqual(self.runs(), [(1, fast, 0), (2, slow, 0)])
        for sha in (fast, slow):
            self.assertTrue(os.access(os.path.join(self.repo, ".lab", "compare", "bin", sha),
                                      os.X_OK))
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".lab", "compare", "worktree")))
        self.assertEqual(len(self.git("worktree", "list").splitlines()), 1)
        with open(self.bazel_log) as f:
            builds = [line.split()[1] for line in f if line.startswith("build ")]
        self.assertEqual(builds, [os.path.join(self.repo, ".lab", "compare", "worktree")] * 2)

        # The defaults: A = the newest recorded ancestor of HEAD other than HEAD (fast), from
        # the history; B = the working tree (clean: the slow commit), built and run.
        done = self.lab("compare", "--filter", "teardown")
        self.assertEqual(done.returncode, 2, done.stdout + done.stderr)
        self.assertIn(f"A = {fast}, the newest recorded commit before HEAD", done.stdout)
        self.assertIn(f"{fast[:12]}: history run 1", done.stdout)
        self.assertIn("running 1 binary 9 times", done.stdout)
        self.assertEqual(self.runs()[-1], (3, slow, 0))

        # A dirty working tree back at the fast speed, against the slow commit's stored run.
        with open(os.path.join(self.repo, "bench", "sleep_ms"), "w") as f:
            f.write("10\n")
        done = self.lab("compare", "HEAD", "--filter", "teardown")
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn(f"{slow[:12]}: history run 3", done.stdout)  # the newest of slow's runs
        self.assertIn("faster", done.stdout)
        self.assertEqual(self.runs()[-1], (4, slow, 1))

        # --fresh runs a stored commit again; the binary kept from the first build is reused.
        done = self.lab("compare", fast, slow, "--filter", "teardown", "--fresh")
        self.assertEqual(done.returncode, 2, done.stdout + done.stderr)
        self.assertIn("binary built earlier", done.stdout + done.stderr)
        self.assertEqual(len(self.runs()), 6)

        # The history of the changed benchmark: six runs, fast ones at the short end.
        done = self.lab("history", "--bench", "teardown")
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.splitlines()
        self.assertEqual(len(lines), 8)  # title, 6 runs, trend
        self.assertIn("trend (oldest -> newest)", lines[-1])
        self.assertIn("-dirty", lines[4])
        done = self.lab("history", "--limit", "2")
        self.assertEqual(len(done.stdout.splitlines()), 3)

    def test_bad_input(self):
        self.commit_with_sleep(10, "one")
        for args, status, message in [
                (("nosuchcommit",), 1, "'nosuchcommit' is not a commit git knows"),
                (("HEAD", "HEAD"), 1, "A and B are the same commit"),
                (("--repetitions", "5"), 64, "from 9 to 1000"),
                (("--threshold", "x"), 64, "--threshold must be a percentage"),
                (("a.json",), 64, "give two JSON reports, or two commits"),
                (("a.json", "b.json"), 1, "no such report: a.json"),
                (("HEAD", "worktree", "--json", "/no/such/dir/v.json"), 64, "does not exist"),
                (("--bogus",), 64, "unknown option '--bogus'")]:
            done = self.lab("compare", *args)
            self.assertEqual(done.returncode, status, (args, done.stderr))
            self.assertIn(message, done.stderr, args)
        with open(os.path.join(self.repo, "bench", "sleep_ms"), "w") as f:
            f.write("11\n")  # a dirty working tree: HEAD and worktree differ
        os.makedirs(os.path.join(self.repo, ".lab", "compare"))
        with open(os.path.join(self.repo, ".lab", "compare", ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # as a running ./lab compare holds it
            done = self.lab("compare", "HEAD", "worktree")
        self.assertEqual(done.returncode, 1)
        self.assertIn("another ./lab compare is running", done.stderr)
        done = self.lab("history")
        self.assertEqual(done.returncode, 1)
        self.assertIn("no history database yet", done.stderr)
        done = self.lab("history", "--limit", "0")
        self.assertEqual(done.returncode, 2)
        self.assertIn("--limit must be a whole number", done.stderr)

    def test_a_commit_that_does_not_build_is_named_and_leaves_no_worktree(self):
        good = self.commit_with_sleep(10, "good")
        os.unlink(os.path.join(self.repo, "bench", "sleep_ms"))
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "broken build")
        done = self.lab("compare", good, "HEAD", "--filter", "teardown")
        self.assertEqual(done.returncode, 1)
        self.assertIn("does not build", done.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".lab", "compare", "worktree")))
        self.assertEqual(len(self.git("worktree", "list").splitlines()), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
