#!/usr/bin/python3
"""Tests of tools/prune.py (corpus pruning) and of nightly's prune step, with a fake fuzzer whose
-merge=1 keeps the smallest input per first byte (its one "feature"): the merged set replaces the
corpus; a failing, hanging or empty merge changes nothing and fails the step; a swap interrupted
after any rename recovers with no loss; the limit decides; the report shows the figures.
Run: /usr/bin/python3 tools/prune_test.py (Bazel: //tools:prune_test)."""

import argparse
import html
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from contextlib import redirect_stdout
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fuzz_options  # noqa: E402
import nightly  # noqa: E402
import prune  # noqa: E402

PYTHON = "/usr/bin/python3"

# A fake libFuzzer binary for -merge=1 NEW OLD: an input's feature is its first byte; the smallest
# input of each feature (then the first by name) is copied to NEW. FAKE_MERGE=fail copies a few
# then exits 1 (a crash of the merge itself), =hang sleeps, =empty keeps nothing. Every flag it
# got is written to FAKE_FLAGS_LOG, its pid to FAKE_PID_FILE, when set.
FAKE_FUZZER = textwrap.dedent("""\
    #!/usr/bin/python3
    import os, shutil, sys, time
    flags = [a for a in sys.argv[1:] if a.startswith("-")]
    folders = [a for a in sys.argv[1:] if not a.startswith("-")]
    if os.environ.get("FAKE_PID_FILE"):
        open(os.environ["FAKE_PID_FILE"], "w").write(str(os.getpid()))
    if os.environ.get("FAKE_FLAGS_LOG"):
        open(os.environ["FAKE_FLAGS_LOG"], "w").write("\\n".join(flags))
    if "-merge=1" not in flags:  # ./lab fuzz's run (LabFuzzPruneTest): a clean, empty one
        print("Done 0 runs in 0 second(s)")
        sys.exit(0)
    new, olds = folders[0], folders[1:]
    mode = os.environ.get("FAKE_MERGE", "")
    if mode == "hang":
        time.sleep(60)
    best = {}
    for old in olds:
        for name in sorted(os.listdir(old)):
            data = open(os.path.join(old, name), "rb").read()
            key = data[:1]
            if key not in best or len(data) < len(best[key][1]):
                best[key] = (name, data)
    print("MERGE-OUTER: %d files" % len(best))
    for i, (name, data) in enumerate(sorted(best.values())):
        if mode == "empty":
            break
        if mode == "fail" and i == 2:
            print("==1==ERROR: the merge crashed")
            sys.exit(1)
        open(os.path.join(new, name), "wb").write(data)
    """)


def write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def snapshot(folder):
    """name -> bytes of every file in @folder."""
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = f.read()
    return out


def leftovers(corpus):
    parent = os.path.dirname(corpus)
    return sorted(n for n in os.listdir(parent) if n.startswith(os.path.basename(corpus) + ".prune-"))


class PruneTestBase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        t = self.tmp.name
        self.fuzzer = os.path.join(t, "bin", "fuzzer")
        os.makedirs(os.path.dirname(self.fuzzer))
        with open(self.fuzzer, "w") as f:
            f.write(FAKE_FUZZER)
        os.chmod(self.fuzzer, 0o755)
        self.corpus = os.path.join(t, ".lab", "fuzz", "gpu", "corpus")
        # 30 inputs, 3 features (first bytes a, b, c): the merge keeps the shortest of each.
        for i in range(30):
            key = b"abc"[i % 3:i % 3 + 1]
            write_bytes(os.path.join(self.corpus, "input-%02d" % i), key + b"x" * (30 - i))
        self.expected = {"input-27": b"a" + b"x" * 3, "input-28": b"b" + b"x" * 2, "input-29": b"c" + b"x"}
        self.log = os.path.join(t, "logs", "prune-gpu.log")

    def tearDown(self):
        self.tmp.cleanup()


class PruneTest(PruneTestBase):
    def test_the_merged_set_replaces_the_corpus(self):
        flags_log = os.path.join(self.tmp.name, "flags")
        with mock.patch.dict(os.environ, {"FAKE_FLAGS_LOG": flags_log}):
            result = prune.prune(self.fuzzer, self.corpus, ["-max_len=4096", "-dict=/x/gpu.dict"], self.log)
        self.assertEqual((result.status, result.files_before, result.files_after), ("pruned", 30, 3))
        self.assertEqual(snapshot(self.corpus), self.expected)
        self.assertEqual(leftovers(self.corpus), [])
        with open(flags_log) as f:
            flags = f.read().split("\n")
        self.assertIn("-max_len=4096", flags)  # the target's options and dictionary are passed
        self.assertIn("-dict=/x/gpu.dict", flags)
        state = prune.read_state(os.path.dirname(self.corpus))
        self.assertEqual((state["files_before"], state["files_after"]), (30, 3))
        with open(self.log) as f:
            self.assertIn("-merge=1", f.readline())

    def test_relative_paths(self):
        cwd = os.getcwd()
        os.chdir(self.tmp.name)
        try:
            result = prune.prune(os.path.relpath(self.fuzzer), os.path.relpath(self.corpus), [], "prune.log")
        finally:
            os.chdir(cwd)
        self.assertEqual((result.status, result.files_after), ("pruned", 3), result.reason)
        self.assertEqual(snapshot(self.corpus), self.expected)

    def check_failed_merge(self, mode, reason, timeout=None):
        before = snapshot(self.corpus)
        with mock.patch.dict(os.environ, {"FAKE_MERGE": mode}):
            result = prune.prune(self.fuzzer, self.corpus, [], self.log, timeout=timeout)
        self.assertEqual(result.status, "failed")
        self.assertIn(reason, result.reason)
        self.assertEqual((result.files_before, result.files_after), (30, 30))
        self.assertEqual(snapshot(self.corpus), before)
        self.assertEqual(leftovers(self.corpus), [])
        self.assertEqual(prune.read_state(os.path.dirname(self.corpus)), {})  # no prune recorded
        return result

    def test_a_failing_merge_leaves_the_corpus_as_it_was(self):
        self.check_failed_merge("fail", "the merge exited with status 1")
        with open(self.log) as f:
            self.assertIn("the merge crashed", f.read())  # the log keeps the fuzzer's output

    def test_a_hanging_merge_is_stopped_and_changes_nothing(self):
        self.check_failed_merge("hang", "ran past 2s and was stopped", timeout=2)

    def test_a_merge_that_keeps_nothing_changes_nothing(self):
        self.check_failed_merge("empty", "the merge kept no input of 30")

    def test_a_missing_fuzzer_fails_the_prune(self):
        before = snapshot(self.corpus)
        result = prune.prune(os.path.join(self.tmp.name, "nope"), self.corpus, [], self.log)
        self.assertEqual(result.status, "failed")
        self.assertIn("cannot run", result.reason)
        self.assertEqual(snapshot(self.corpus), before)


class RecoverTest(PruneTestBase):
    """Each state an interrupted prune can leave, made by hand, then the state after every step
    of a real swap that is cut short."""

    def setUp(self):
        super().setUp()
        self.original = snapshot(self.corpus)

    def make(self, suffix, files):
        folder = self.corpus + suffix
        os.makedirs(folder, exist_ok=True)
        for name, data in files.items():
            write_bytes(os.path.join(folder, name), data)

    def test_an_unfinished_merge_is_deleted(self):
        self.make(prune.NEW_SUFFIX, {"input-27": b"axxx"})
        self.assertIn("unfinished merge", prune.recover(self.corpus))
        self.assertEqual(snapshot(self.corpus), self.original)
        self.assertEqual(leftovers(self.corpus), [])

    def test_a_finished_merge_not_yet_swapped_is_swapped_in(self):
        self.make(prune.READY_SUFFIX, self.expected)
        self.assertIn("swapped in", prune.recover(self.corpus))
        self.assertEqual(snapshot(self.corpus), self.expected)
        self.assertEqual(leftovers(self.corpus), [])

    def test_killed_between_the_renames(self):
        os.rename(self.corpus, self.corpus + prune.OLD_SUFFIX)
        self.make(prune.READY_SUFFIX, self.expected)
        self.assertIn("finished an interrupted swap", prune.recover(self.corpus))
        self.assertEqual(snapshot(self.corpus), self.expected)
        self.assertEqual(leftovers(self.corpus), [])

    def test_killed_between_the_renames_then_seeds_copied_into_a_new_folder(self):
        os.rename(self.corpus, self.corpus + prune.OLD_SUFFIX)
        self.make(prune.READY_SUFFIX, self.expected)
        self.make("", {"seeds-one.bin": b"seed"})  # ./lab fuzz of an older commit: mkdir + cp
        prune.recover(self.corpus)
        self.assertEqual(snapshot(self.corpus), dict(self.expected, **{"seeds-one.bin": b"seed"}))
        self.assertEqual(leftovers(self.corpus), [])

    def test_killed_while_deleting_the_old_corpus(self):
        shutil.copytree(self.corpus, self.corpus + prune.OLD_SUFFIX)
        os.unlink(os.path.join(self.corpus + prune.OLD_SUFFIX, "input-00"))  # half deleted
        shutil.rmtree(self.corpus)
        self.make("", self.expected)
        self.assertIn("deleted the corpus from before", prune.recover(self.corpus))
        self.assertEqual(snapshot(self.corpus), self.expected)
        self.assertEqual(leftovers(self.corpus), [])

    def test_an_old_corpus_alone_is_renamed_back(self):
        os.rename(self.corpus, self.corpus + prune.OLD_SUFFIX)
        self.assertIn("renamed", prune.recover(self.corpus))
        self.assertEqual(snapshot(self.corpus), self.original)

    def test_a_prune_in_progress_elsewhere_is_left_alone(self):
        # Another process (a nightly) holds the lock and is merging into corpus.prune-new.
        self.make(prune.NEW_SUFFIX, {"input-27": b"axxx"})
        child = subprocess.Popen([PYTHON, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                                  "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)",
                                  os.path.join(os.path.dirname(self.corpus), prune.LOCK_FILE)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(child.stdout.readline(), "locked\n")
            self.assertIn("is in use: another prune", prune.recover(self.corpus))
            self.assertEqual(leftovers(self.corpus), ["corpus.prune-new"])
            result = prune.prune(self.fuzzer, self.corpus, [], self.log)
            self.assertEqual(result.status, "busy")
            self.assertIn("is in use: another prune", result.reason)
            with self.assertRaises(prune.Busy):  # no fuzzer starts on it either
                prune.hold_for_fuzzing(self.corpus).close()
            self.assertEqual(leftovers(self.corpus), ["corpus.prune-new"])
            self.assertEqual(snapshot(self.corpus), self.original)
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
        # Its owner gone (the lock dies with it), the leftover is an interrupted merge.
        self.assertIn("unfinished merge", prune.recover(self.corpus))
        self.assertEqual(leftovers(self.corpus), [])

    def test_nothing_to_recover(self):
        self.assertEqual(prune.recover(self.corpus), "")
        self.assertEqual(snapshot(self.corpus), self.original)

    def test_a_real_prune_killed_after_each_step_recovers_without_loss(self):
        # prune()'s own renames and deletes in order: rmtree(prune-work), rename(new -> ready),
        # rename(corpus -> old), rename(ready -> corpus), rmtree(old), rmtree(prune-work). Killed
        # before each: after recovery the corpus is the whole original or the whole merged set
        # (merged once the merge's folder was renamed ready), and nothing is left over.
        real_rename, real_rmtree = os.rename, shutil.rmtree
        states = []
        for allowed in range(6):
            with self.subTest(killed_before_step=allowed + 1):
                shutil.rmtree(self.corpus)
                self.make("", self.original)
                calls = []

                def cut(real):
                    def step(*args, **kwargs):
                        calls.append(os.path.basename(args[0]))
                        if len(calls) > allowed:
                            raise KeyboardInterrupt("killed")
                        return real(*args, **kwargs)
                    return step

                with mock.patch.object(prune.os, "rename", cut(real_rename)), \
                        mock.patch.object(prune.shutil, "rmtree", cut(real_rmtree)):
                    with self.assertRaises(KeyboardInterrupt):
                        prune.prune(self.fuzzer, self.corpus, [], self.log)
                states.append((calls[-1], os.path.isdir(self.corpus), leftovers(self.corpus)))
                prune.recover(self.corpus)
                self.assertEqual(snapshot(self.corpus), self.expected if allowed >= 2 else self.original, calls)
                self.assertEqual(leftovers(self.corpus), [])
        # The states the kills left: every one recover() has a rule for.
        self.assertEqual(states, [
            ("prune-work", True, []),
            ("corpus.prune-new", True, ["corpus.prune-new"]),
            ("corpus", True, ["corpus.prune-ready"]),
            ("corpus.prune-ready", False, ["corpus.prune-old", "corpus.prune-ready"]),
            ("corpus.prune-old", True, ["corpus.prune-old"]),
            ("prune-work", True, []),
        ])


class KilledPrunerTest(PruneTestBase):
    """The process that prunes dies while its merge runs."""

    def start_pruner(self):
        self.pid_file = os.path.join(self.tmp.name, "merge.pid")
        code = ("import sys; sys.path.insert(0, %r); import prune; prune.prune(%r, %r, [], %r)"
                % (HERE, self.fuzzer, self.corpus, self.log))
        pruner = subprocess.Popen([PYTHON, "-c", code], env=dict(os.environ, FAKE_MERGE="hang", FAKE_PID_FILE=self.pid_file),
                                  stderr=subprocess.DEVNULL)  # the KeyboardInterrupt traceback
        for _ in range(600):  # 30 s for two Python starts on a loaded machine
            if os.path.exists(self.pid_file) and os.path.getsize(self.pid_file):
                break
            time.sleep(0.05)
        with open(self.pid_file) as f:
            return pruner, int(f.read())

    def alive(self, pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie of an exited child counts as gone.
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"

    def test_sigkill_leaves_the_merge_holding_the_lock(self):
        original = snapshot(self.corpus)
        pruner, merge = self.start_pruner()
        try:
            pruner.kill()
            pruner.wait()
            self.assertTrue(self.alive(merge))
            # The orphaned merge still writes corpus.prune-new: recovery leaves it alone.
            self.assertIn("is in use: another prune", prune.recover(self.corpus))
            self.assertEqual(leftovers(self.corpus), ["corpus.prune-new"])
        finally:
            os.killpg(merge, signal.SIGKILL)
        for _ in range(100):
            if "unfinished merge" in prune.recover(self.corpus):
                break
            time.sleep(0.05)
        self.assertEqual(leftovers(self.corpus), [])
        self.assertEqual(snapshot(self.corpus), original)

    def test_ctrl_c_kills_the_merge(self):
        pruner, merge = self.start_pruner()
        pruner.send_signal(signal.SIGINT)
        pruner.wait()
        for _ in range(100):
            if not self.alive(merge):
                break
            time.sleep(0.05)
        self.assertFalse(self.alive(merge))
        prune.recover(self.corpus)
        self.assertEqual(leftovers(self.corpus), [])
        self.assertEqual(len(snapshot(self.corpus)), 30)


class FuzzingLockTest(PruneTestBase):
    """hold_for_fuzzing: fuzzers share the corpus; a prune never runs under one, nor one under a
    prune."""

    def setUp(self):
        super().setUp()
        self.original = snapshot(self.corpus)

    def test_a_prune_leaves_a_corpus_a_fuzzer_writes_into_alone(self):
        first = prune.hold_for_fuzzing(self.corpus)
        second = prune.hold_for_fuzzing(self.corpus)  # fuzzers share it
        try:
            result = prune.prune(self.fuzzer, self.corpus, [], self.log)
            self.assertEqual((result.status, result.files_before, result.files_after), ("busy", 30, 30))
            self.assertIn("a fuzzer writing into it", result.reason)
            self.assertEqual(snapshot(self.corpus), self.original)
            self.assertEqual(leftovers(self.corpus), [])
            first.close()
            self.assertEqual(prune.prune(self.fuzzer, self.corpus, [], self.log).status, "busy")
        finally:
            first.close()
            second.close()
        self.assertEqual(prune.prune(self.fuzzer, self.corpus, [], self.log).status, "pruned")

    def test_the_lock_lives_as_long_as_the_fuzzer_it_was_passed_to(self):
        lock = prune.hold_for_fuzzing(self.corpus)
        child = subprocess.Popen(["sleep", "30"], pass_fds=(lock.fileno(),))
        try:
            lock.close()  # the parent is done; the fuzzer still runs
            self.assertEqual(prune.prune(self.fuzzer, self.corpus, [], self.log).status, "busy")
        finally:
            child.kill()
            child.wait()
        self.assertEqual(prune.prune(self.fuzzer, self.corpus, [], self.log).status, "pruned")

    def test_the_command_line_says_the_corpus_is_in_use(self):
        lock = prune.hold_for_fuzzing(self.corpus)
        try:
            r = subprocess.run([PYTHON, os.path.join(HERE, "prune.py"), "--fuzzer", self.fuzzer,
                                "--root", self.tmp.name, "gpu"], capture_output=True, text=True)
        finally:
            lock.close()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("is in use", r.stderr)
        self.assertEqual(snapshot(self.corpus), self.original)


class LimitTest(unittest.TestCase):
    def test_never_pruned(self):
        self.assertFalse(prune.should_prune(prune.MIN_FILES, {})[0])
        wanted, why = prune.should_prune(prune.MIN_FILES + 1, {})
        self.assertTrue(wanted)
        self.assertIn("no prune recorded yet", why)

    def test_relative_to_the_last_prune(self):
        state = {"files_after": 3000}
        self.assertFalse(prune.should_prune(6000, state)[0])
        wanted, why = prune.should_prune(6001, state)
        self.assertTrue(wanted)
        self.assertIn("6001 files > limit 6000", why)
        # A corpus that pruned down to little is not merged again for a few hundred new files.
        self.assertFalse(prune.should_prune(prune.MIN_FILES, {"files_after": 10})[0])
        self.assertTrue(prune.should_prune(prune.MIN_FILES + 1, {"files_after": 10})[0])

    def test_an_unreadable_state_counts_as_none(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(prune.read_state(tmp), {})
            with open(os.path.join(tmp, prune.STATE_FILE), "w") as f:
                f.write("{not json")
            self.assertEqual(prune.read_state(tmp), {})


class FlagsTest(unittest.TestCase):
    def test_options_and_an_absolute_dictionary(self):
        with tempfile.TemporaryDirectory() as tmp:
            targets = os.path.join(tmp, "fuzz", "targets")
            os.makedirs(targets)
            with open(os.path.join(targets, "gpu.options"), "w") as f:
                f.write("# x\n[libfuzzer]\nmax_len = 4096  # why\ntimeout=10\n[asan]\ndetect_odr = 0\n")
            with open(os.path.join(targets, "gpu.dict"), "w") as f:
                f.write('"x"\n')
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                # The merge runs in prune-work/: a relative root must still give a dictionary it finds.
                flags = fuzz_options.libfuzzer_flags(".", "gpu")
            finally:
                os.chdir(cwd)
            want = ["-max_len=4096", "-timeout=10", "-dict=" + os.path.realpath(os.path.join(targets, "gpu.dict"))]
            self.assertEqual(flags, want)
            self.assertEqual(fuzz_options.libfuzzer_flags(tmp, "none"), [])
            script = os.path.join(HERE, "fuzz_options.py")
            r = subprocess.run([PYTHON, script, "--root", tmp, "gpu"], capture_output=True, text=True)
            self.assertEqual((r.returncode, r.stdout.split()), (0, want))
            r = subprocess.run([PYTHON, script, "--root", tmp, "../gpu"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertIn("target must be a name", r.stderr)


class CommandLineTest(PruneTestBase):
    def run_prune(self, *args, env=None):
        return subprocess.run([PYTHON, os.path.join(HERE, "prune.py"), "--root", self.tmp.name] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, **(env or {})))

    def test_prune_now(self):
        done = self.run_prune("--fuzzer", self.fuzzer, "gpu")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("prune: gpu: 30 -> 3 files in", done.stdout)
        self.assertEqual(snapshot(self.corpus), self.expected)

    def test_a_failed_merge_exits_1_naming_the_log(self):
        done = self.run_prune("--fuzzer", self.fuzzer, "gpu", env={"FAKE_MERGE": "fail"})
        self.assertEqual(done.returncode, 1)
        self.assertIn("the merge exited with status 1; the corpus is unchanged (30 files; log: .lab/fuzz/gpu/prune.log)",
                      done.stderr)
        self.assertEqual(len(snapshot(self.corpus)), 30)

    def test_bad_usage(self):
        done = self.run_prune("gpu")
        self.assertEqual(done.returncode, 2)
        self.assertIn("--fuzzer must name", done.stderr)
        done = self.run_prune("--fuzzer", self.fuzzer, "../x")
        self.assertEqual(done.returncode, 2)
        self.assertIn("not a target name", done.stderr)

    def test_recover_only(self):
        os.rename(self.corpus, self.corpus + prune.OLD_SUFFIX)
        done = self.run_prune("--recover-only", "gpu")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("renamed the corpus from before an interrupted prune back", done.stdout)
        self.assertEqual(len(snapshot(self.corpus)), 30)


class NightlyPruneStepTest(PruneTestBase):
    def make_run(self, *argv):
        root = self.tmp.name
        os.makedirs(os.path.join(root, "fuzz", "targets"), exist_ok=True)
        with open(os.path.join(root, "fuzz", "targets", "BUILD.bazel"), "w") as f:
            f.write('FUZZ_TARGETS = [\n    "gpu",\n]\n')
        with open(os.path.join(root, "fuzz", "targets", "gpu.options"), "w") as f:
            f.write("[libfuzzer]\nmax_len = 4096\n")
        write_bytes(os.path.join(root, "corpus", "gpu", "seeds", "one.bin"), b"a-long-seed-that-adds-nothing")
        args = nightly.parse_args(list(argv), ["gpu"])
        run = nightly.Run(args, root, root)
        os.makedirs(run.logs, exist_ok=True)  # two runs in one second share a folder
        run.binaries = {"fuzz": {"gpu": self.fuzzer}}
        return run

    def test_over_the_limit_prunes_and_the_seeds_come_back(self):
        run = self.make_run()
        with mock.patch.object(prune, "MIN_FILES", 20), redirect_stdout(io.StringIO()) as out:
            row = run.prune_step("gpu")
        self.assertEqual((row["status"], row["files_before"], row["files_after"]), ("pruned", 31, 3))
        self.assertEqual(row["log"], "logs/prune-gpu.log")
        self.assertIn("nightly: pruning gpu: 31 files > limit 20", out.getvalue())
        self.assertIn("nightly: gpu: pruned 31 -> 3 files in", out.getvalue())
        self.assertNotIn("seeds-one.bin", os.listdir(self.corpus))  # the merge dropped it...
        run.working_corpus("gpu")
        self.assertIn("seeds-one.bin", os.listdir(self.corpus))  # ...and the fuzz step copies it back
        self.assertEqual(run.errors, [])
        # The next night: 4 files, far under the limit.
        with mock.patch.object(prune, "MIN_FILES", 20):
            self.assertEqual(run.prune_step("gpu")["status"], "not needed")

    def test_under_the_limit_and_no_prune(self):
        run = self.make_run()
        row = run.prune_step("gpu")
        self.assertEqual((row["status"], row["files_before"], row["seconds"]), ("not needed", 31, 0))
        self.assertEqual(len(os.listdir(self.corpus)), 31)
        run = self.make_run("--no-prune")
        with mock.patch.object(prune, "MIN_FILES", 20):
            self.assertEqual(run.prune_step("gpu")["status"], "skipped (--no-prune)")
        self.assertEqual(len(os.listdir(self.corpus)), 31)
        self.assertTrue(run.summary["options"]["no_prune"])

    def test_a_corpus_in_use_is_not_pruned_and_the_run_goes_on(self):
        run = self.make_run()
        lock = prune.hold_for_fuzzing(self.corpus)  # ./lab fuzz gpu, running meanwhile
        try:
            with mock.patch.object(prune, "MIN_FILES", 20), redirect_stdout(io.StringIO()) as out:
                row = run.prune_step("gpu")
        finally:
            lock.close()
        self.assertEqual((row["status"], row["files_after"]), ("skipped (in use)", 31))
        self.assertIn("gpu: not pruned:", out.getvalue())
        self.assertEqual(run.errors, [])
        self.assertEqual(len(os.listdir(self.corpus)), 31)

    def test_no_fuzzing_while_a_prune_runs(self):
        run = self.make_run()
        with prune._locked(self.corpus), redirect_stdout(io.StringIO()):
            result = run.fuzz("gpu", 0, 5, time.time() + 60)
        self.assertEqual((result["rc"], result["execs"], result["crash_files"]), (None, 0, []))
        self.assertEqual(len(run.errors), 1)
        self.assertIn("gpu: not fuzzed: a prune of", str(run.errors[0]))

    def test_a_failed_prune_fails_the_run_and_keeps_the_corpus(self):
        run = self.make_run()
        before = snapshot(self.corpus)
        with mock.patch.object(prune, "MIN_FILES", 20), mock.patch.dict(os.environ, {"FAKE_MERGE": "fail"}), \
                redirect_stdout(io.StringIO()):
            row = run.prune_step("gpu")
        self.assertEqual(row["status"], "failed")
        self.assertEqual(len(run.errors), 1)
        self.assertRegex(run.errors[0], r"^prune: gpu: the merge exited with status 1; the corpus is unchanged "
                                        r"\(log: .*logs/prune-gpu.log\)")
        self.assertEqual(snapshot(self.corpus), dict(before, **{"seeds-one.bin": b"a-long-seed-that-adds-nothing"}))
        run.summary["fuzz"] = [{"target": "gpu", "prune": row}]
        self.assertEqual(nightly.exit_status(run.summary), nightly.EXIT_RUN_FAILED)

    def test_working_corpus_recovers_an_interrupted_prune(self):
        run = self.make_run()
        os.rename(self.corpus, self.corpus + prune.OLD_SUFFIX)
        with redirect_stdout(io.StringIO()) as out:
            run.working_corpus("gpu")
        self.assertIn("renamed the corpus from before an interrupted prune back", out.getvalue())
        self.assertEqual(len(os.listdir(self.corpus)), 31)


class ReportTest(unittest.TestCase):
    def summary(self):
        rows = [("gpu", {"status": "pruned", "files_before": 5850, "files_after": 1025, "seconds": 12.9,
                         "log": "logs/prune-gpu.log", "reason": "5850 files > limit 1000"}),
                ("schedules", {"status": "failed", "files_before": 7897, "files_after": 7897, "seconds": 3.0,
                               "reason": "the merge exited with status 1", "log": "logs/prune-schedules.log"}),
                ("private_data", {"status": "not needed", "files_before": 400, "files_after": 400, "seconds": 0}),
                ("close_destroy", {"status": "skipped (--no-prune)", "seconds": 0})]
        return {"commit": "0" * 40, "started": "", "budget_seconds": 60, "jobs": 1, "exit_status": 3,
                "errors": ["prune: schedules: the merge exited with status 1"],
                "fuzz": [{"target": t, "corpus_before": 10, "corpus_after": 12, "prune": p} for t, p in rows]}

    def test_markdown_and_html_show_the_prune(self):
        md = nightly.render_markdown(self.summary())
        page = html.unescape(nightly.render_html(self.summary()))
        for text in (md, page):
            self.assertIn("5850 -> 1025 files in 13s", text)
            self.assertIn("failed after 3s: the merge exited with status 1 (corpus unchanged)", text)
            self.assertIn("not needed (400 files)", text)
            self.assertIn("skipped (--no-prune)", text)
        self.assertIn("| gpu | 0s | 0 | 0 | 0 | 0 | 10 -> 12 | 0 | 5850 -> 1025 files in 13s |", md)
        self.assertIn("<th>prune</th>", page)

    def test_no_prune_option_parses(self):
        self.assertTrue(nightly.parse_args(["--no-prune"], ["gpu"]).no_prune)
        self.assertFalse(nightly.parse_args([], ["gpu"]).no_prune)
        self.assertIsInstance(nightly.parse_args([], ["gpu"]), argparse.Namespace)


# A fake bazel for LabFuzzPruneTest: "build" writes the fake fuzzer as
# fake-bin/fuzz/targets/tiny_raw, "info" prints fake-bin; startup options are skipped.
FAKE_BAZEL = textwrap.dedent("""\
    #!/bin/sh
    while [ $# -gt 0 ]; do case $1 in --*) shift ;; *) break ;; esac; done
    case $1 in
      build) mkdir -p fake-bin/fuzz/targets && cp "$FAKE_FUZZER_SRC" fake-bin/fuzz/targets/tiny_raw &&
             chmod +x fake-bin/fuzz/targets/tiny_raw ;;
      info) echo "$PWD/fake-bin" ;;
      *) echo "fake bazel: $1?" >&2; exit 1 ;;
    esac
    """)


class LabFuzzPruneTest(unittest.TestCase):
    """./lab fuzz TARGET --prune end to end on a scratch tree (the real lab and tools/, a fake
    bazel whose fuzzer is FAKE_FUZZER): it prunes the working corpus, copies the seeds back in,
    says how many files it holds and exits 0; it refuses fuzzing options; it puts back a corpus
    an interrupted prune left aside before it touches anything."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.repo = os.path.join(self.dir, "tree")
        shutil.copytree(HERE, os.path.join(self.repo, "tools"),
                        ignore=shutil.ignore_patterns("__pycache__", "test", "testdata"))
        shutil.copy(os.path.join(HERE, "..", "lab"), os.path.join(self.repo, "lab"))
        write_bytes(os.path.join(self.repo, "fuzz", "targets", "BUILD.bazel"),
                    b'FUZZ_TARGETS = [\n    "tiny",\n]\n')
        write_bytes(os.path.join(self.repo, "fuzz", "targets", "tiny.options"), b"[libfuzzer]\nmax_len = 64\n")
        write_bytes(os.path.join(self.repo, "corpus", "tiny", "seeds", "s.bin"), b"sxx")
        self.corpus = os.path.join(self.repo, ".lab", "fuzz", "tiny", "corpus")
        # 1200 inputs over 3 first bytes: the merge keeps 3 (the shortest of each).
        for i in range(1200):
            write_bytes(os.path.join(self.corpus, "in%04d" % i), bytes([ord("a") + i % 3]) + b"y" * (1 + i % 7))
        bin_dir = os.path.join(self.dir, "bin")
        write_bytes(os.path.join(bin_dir, "bazel"), FAKE_BAZEL.encode())
        fuzzer = os.path.join(self.dir, "fake_fuzzer.py")
        write_bytes(fuzzer, FAKE_FUZZER.encode())
        os.chmod(os.path.join(bin_dir, "bazel"), 0o755)
        self.env = dict(os.environ, PATH=bin_dir + ":" + os.environ.get("PATH", "/usr/bin:/bin"), CI="true",
                        FAKE_FUZZER_SRC=fuzzer)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def lab(self, *args):
        return subprocess.run([os.path.join(self.repo, "lab"), *args], cwd=self.repo, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def test_prunes_copies_the_seeds_back_and_exits(self):
        r = self.lab("fuzz", "tiny", "--prune")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        names = sorted(os.listdir(self.corpus))
        self.assertEqual(len(names), 4, names)  # one input per first byte, and the seed
        self.assertIn("seeds-s.bin", names)
        self.assertIn("holds 4 files", r.stdout + r.stderr)
        self.assertFalse([n for n in os.listdir(os.path.dirname(self.corpus)) if n.startswith("corpus.prune")])

    def test_fuzzing_options_are_refused_and_nothing_changes(self):
        for extra in (["--time", "5"], ["--jobs=2"], ["--", "-runs=1"]):
            r = self.lab("fuzz", "tiny", "--prune", *extra)
            self.assertEqual(r.returncode, 2, (extra, r.stdout + r.stderr))
            self.assertIn("--prune prunes and exits", r.stderr)
        self.assertEqual(len(os.listdir(self.corpus)), 1200)

    def test_no_fuzzing_under_a_prune_and_no_prune_under_a_fuzzer(self):
        with prune._locked(self.corpus):  # a nightly pruning it
            r = self.lab("fuzz", "tiny", "--time", "1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("a prune of .lab/fuzz/tiny/corpus is running", r.stderr)
        lock = prune.hold_for_fuzzing(self.corpus)  # another ./lab fuzz tiny
        try:
            r = self.lab("fuzz", "tiny", "--prune")
        finally:
            lock.close()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is in use", r.stdout + r.stderr)
        self.assertEqual(len(os.listdir(self.corpus)), 1200)

    def test_fuzzing_passes_the_targets_options_and_dictionary(self):
        write_bytes(os.path.join(self.repo, "fuzz", "targets", "tiny.dict"), b'"kw"\n')
        flags_log = os.path.join(self.dir, "flags")
        self.env["FAKE_FLAGS_LOG"] = flags_log
        r = self.lab("fuzz", "tiny", "--time", "3", "--", "-seed=7")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(flags_log) as f:
            flags = f.read().split("\n")
        dictionary = "-dict=" + os.path.join(self.repo, "fuzz", "targets", "tiny.dict")
        self.assertEqual(flags[:3], ["-max_len=64", dictionary, "-max_total_time=3"])
        self.assertEqual(flags[-1], "-seed=7")  # the user's flags come last: they win

    def test_a_corpus_left_aside_by_an_interrupted_prune_is_put_back_first(self):
        aside = os.path.join(os.path.dirname(self.corpus), "corpus.prune-old")
        os.rename(self.corpus, aside)
        r = self.lab("fuzz", "tiny", "--prune")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(aside))
        self.assertEqual(len(os.listdir(self.corpus)), 4)


if __name__ == "__main__":
    unittest.main()
