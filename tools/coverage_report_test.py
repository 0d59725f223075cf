#!/usr/bin/python3
"""Tests of tools/coverage_report.py (`./lab coverage`).

The parsing parts run on fixtures; the whole command runs on a scratch tree with one fuzz
target, "tiny", whose coverage binary (core/src/tiny.c and hw/tiny_hw.c with a replay main) is
compiled here with clang 14's source-based coverage, the way --config=coverage builds the real
ones; ALLOCLAB_COVERAGE_PREBUILT makes the command use it instead of building with Bazel.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import coverage_report  # noqa: E402

SCRIPT = os.path.join(HERE, "coverage_report.py")


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)


class ParseTest(unittest.TestCase):
    def test_show_text_of_several_files(self):
        text = textwrap.dedent("""\
            /proc/self/cwd/core/src/a.c:
                1|       |/* a */
                2|      3|int a(int x) {
                3|      3|  if (x)
                4|      0|    return 1;
                5|  1.20k|  return 0;
                6|      3|}

            /proc/self/cwd/hw/b.c:
                1|      0|int b(void) {
                2|      0|  return 2;
                3|      0|}
            """)
        files = coverage_report.parse_show_text(text)
        self.assertEqual(files["/proc/self/cwd/core/src/a.c"], {2: True, 3: True, 4: False, 5: True, 6: True})
        self.assertEqual(files["/proc/self/cwd/hw/b.c"], {1: False, 2: False, 3: False})

    def test_show_text_of_one_file_has_no_header(self):
        files = coverage_report.parse_show_text("    1|      0|int x;\n    2|      1|int y;\n", "core/x.c")
        self.assertEqual(files, {"core/x.c": {1: False, 2: True}})

    def test_ranges_join_across_lines_that_are_not_code(self):
        lines = {1: False, 2: False, 5: False, 6: True, 7: False, 9: False, 10: True}
        self.assertEqual(coverage_report.uncovered_ranges(lines), [(1, 5), (7, 9)])
        self.assertEqual(coverage_report.format_ranges([(1, 5), (7, 7)]), "1-5, 7")
        self.assertEqual(coverage_report.uncovered_ranges({1: True}), [])

    def test_summary_counts_core_and_hw_without_tests(self):
        def entry(name, covered, count):
            part = {"covered": covered, "count": count}
            return {"filename": name, "summary": {"lines": part, "functions": part, "regions": part}}

        export = {"data": [{"files": [
            entry("/proc/self/cwd/core/src/adapter.c", 80, 100),
            entry("/proc/self/cwd/hw/sim/sim_ddi.c", 20, 100),
            entry("/proc/self/cwd/core/test/port_test.c", 0, 500),
            entry("/proc/self/cwd/hw/sim/sim_ddi_test.c", 0, 500),
            entry("/proc/self/cwd/fuzz/common/execute.c", 0, 500),
            entry("/usr/include/stdio.h", 0, 5),
        ]}]}
        summary = coverage_report.summarize_coverage(export, "/repo")
        self.assertEqual([(f["file"], f["lines_covered"], f["lines_count"]) for f in summary["files"]],
                         [("core/src/adapter.c", 80, 100), ("hw/sim/sim_ddi.c", 20, 100)])
        self.assertEqual(summary["lines"], {"covered": 100, "count": 200, "percent": 50.0})
        self.assertEqual(coverage_report.measured_files(export, "/repo"),
                         {"core/src/adapter.c": "/proc/self/cwd/core/src/adapter.c",
                          "hw/sim/sim_ddi.c": "/proc/self/cwd/hw/sim/sim_ddi.c"})


class CorpusFoldersTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        for target in ("one", "two"):
            os.makedirs(os.path.join(self.root, "corpus", target, "seeds"))
        os.makedirs(os.path.join(self.root, "corpus", "one", "regressions"))

    def test_named_corpora(self):
        folders = coverage_report.corpus_folders("all", ["one", "two"], self.root)
        self.assertEqual(folders["one"], [os.path.join(self.root, "corpus/one/seeds"),
                                          os.path.join(self.root, "corpus/one/regressions")])
        self.assertEqual(folders["two"], [os.path.join(self.root, "corpus/two/seeds")])

    def test_missing_seeds_folder(self):
        with self.assertRaisesRegex(coverage_report.UsageError, "three has no seeds"):
            coverage_report.corpus_folders("seeds", ["three"], self.root)

    def test_folder_per_target_or_for_one_target(self):
        mine = os.path.join(self.root, "mine")
        os.makedirs(os.path.join(mine, "one"))
        self.assertEqual(coverage_report.corpus_folders(mine, ["one"], self.root), {"one": [os.path.join(mine, "one")]})
        with self.assertRaisesRegex(coverage_report.UsageError, "no folder for two"):
            coverage_report.corpus_folders(mine, ["one", "two"], self.root)
        flat = os.path.join(self.root, "flat")
        os.makedirs(flat)
        self.assertEqual(coverage_report.corpus_folders(flat, ["two"], self.root), {"two": [flat]})
        with self.assertRaisesRegex(coverage_report.UsageError, "name its one target"):
            coverage_report.corpus_folders(flat, ["one", "two"], self.root)

    def test_missing_folder(self):
        with self.assertRaisesRegex(coverage_report.UsageError, "no such folder"):
            coverage_report.corpus_folders(os.path.join(self.root, "nope"), ["one"], self.root)

    def test_inputs_leave_out_text_forms(self):
        seeds = os.path.join(self.root, "corpus/one/seeds")
        for name in ("a.bin", "a.txt", "notes"):
            write(os.path.join(seeds, name), "x")
        out = os.path.join(self.root, "out")
        self.assertEqual(coverage_report.collect_inputs([seeds], out), 1)
        self.assertEqual(os.listdir(out), ["0-a.bin"])


TINY_CORE = """\
#include <stddef.h>
int tiny_core(const unsigned char *data, size_t size) {
  if (size == 0)
    return 0;
  if (data[0] == 'a')
    return 1;
  if (data[0] == 'r')
    return 2;
  if (data[0] == '!')
    __builtin_trap();
  return 3;
}
"""

TINY_HW = """\
int tiny_hw(int kind) {
  if (kind == 2)
    return 20;
  return 10;
}
"""

# Nothing calls it: what --exclude is for.
TINY_UNUSED = """\
int tiny_unused(int x) {
  if (x)
    return 1;
  return 0;
}
"""

TINY_MAIN = """\
#include <dirent.h>
#include <stdio.h>
#include <string.h>
int tiny_core(const unsigned char *data, size_t size);
int tiny_hw(int kind);
static void run(const char *path) {
  unsigned char buf[64];
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return;
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  tiny_hw(tiny_core(buf, n));
}
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-')
      continue;
    DIR *dir = opendir(argv[i]);
    if (dir == NULL) {
      run(argv[i]);
      continue;
    }
    struct dirent *e;
    char path[4096];
    while ((e = readdir(dir)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      run(path);
    }
    closedir(dir);
  }
  return 0;
}
"""


@unittest.skipUnless(shutil.which("clang") and shutil.which("llvm-cov-14"), "needs clang and llvm-cov-14")
class CommandTest(unittest.TestCase):
    """./lab coverage on the scratch tree: corpora, totals, missing ranges, HTML, bad input."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.root = os.path.join(cls.tmp, "src")
        write(os.path.join(cls.root, "fuzz/targets/BUILD.bazel"), 'FUZZ_TARGETS = [\n    "tiny",\n]\n')
        write(os.path.join(cls.root, "core/src/tiny.c"), TINY_CORE)
        write(os.path.join(cls.root, "hw/tiny_hw.c"), TINY_HW)
        write(os.path.join(cls.root, "hw/tiny_unused.c"), TINY_UNUSED)
        write(os.path.join(cls.root, "fuzz/tiny_main.c"), TINY_MAIN)
        write(os.path.join(cls.root, "corpus/tiny/seeds/a.bin"), "a")
        write(os.path.join(cls.root, "corpus/tiny/seeds/a.txt"), "r")  # text forms are not replayed
        write(os.path.join(cls.root, "corpus/tiny/regressions/r.bin"), "r")
        cls.prebuilt = os.path.join(cls.tmp, "prebuilt")
        os.makedirs(cls.prebuilt)
        # As Bazel records them: /proc/self/cwd/<path>, so llvm-cov run in the tree finds the sources.
        subprocess.run(["clang", "-O0", "-fcoverage-prefix-map=%s=/proc/self/cwd" % cls.root,
                        "-fprofile-instr-generate", "-fcoverage-mapping", "core/src/tiny.c", "hw/tiny_hw.c",
                        "hw/tiny_unused.c", "fuzz/tiny_main.c", "-o", os.path.join(cls.prebuilt, "tiny_raw")], cwd=cls.root, check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def lab_coverage(self, *args):
        env = dict(os.environ, ALLOCLAB_COVERAGE_ROOT=self.root, ALLOCLAB_COVERAGE_PREBUILT=self.prebuilt)
        return subprocess.run([sys.executable, SCRIPT] + list(args), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)

    def rows(self, stdout):
        return {parts[0]: parts[1:] for parts in (line.split() for line in stdout.splitlines())
                if parts and parts[0].startswith(("core/", "hw/"))}

    def test_seeds_only_by_default(self):
        done = self.lab_coverage("--show-missing")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("tiny: replaying 1 input(s)", done.stderr)
        rows = self.rows(done.stdout)
        self.assertEqual(sorted(rows), ["core/src/tiny.c", "hw/tiny_hw.c", "hw/tiny_unused.c"])  # not fuzz/
        # 'a' returns on line 6: lines 7-12 are not reached, nor the hw branch of kind 2.
        self.assertIn("missing: 4, 7-12", done.stdout)
        self.assertIn("missing: 3", done.stdout)
        self.assertRegex(done.stdout, r"TOTAL core/ \+ hw/\s+\d+\s+\d+\s+\d+\.\d+%")

    def test_all_adds_the_regressions(self):
        seeds = self.rows(self.lab_coverage().stdout)
        done = self.lab_coverage("--corpus", "all", "--json", os.path.join(self.tmp, "all.json"))
        self.assertEqual(done.returncode, 0, done.stderr)
        every = self.rows(done.stdout)
        self.assertLess(int(every["core/src/tiny.c"][1]), int(seeds["core/src/tiny.c"][1]))  # fewer missed
        self.assertEqual(every["hw/tiny_hw.c"][1], "0")
        with open(os.path.join(self.tmp, "all.json")) as f:
            result = json.load(f)
        self.assertEqual(result["inputs"], {"tiny": 2})
        self.assertEqual(result["missing"]["hw/tiny_hw.c"], [])
        self.assertEqual(result["missing"]["core/src/tiny.c"], [[4, 4], [9, 12]])

    def test_folder_with_a_crashing_input(self):
        folder = os.path.join(self.tmp, "mine")
        write(os.path.join(folder, "1-crash"), "!")
        write(os.path.join(folder, "2-r"), "r")
        done = self.lab_coverage("--corpus", folder, "--show-missing")
        self.assertEqual(done.returncode, 0, done.stderr)
        # The crash ends the folder's replay; replayed file by file, 2-r still counts (line 8 and
        # the hw branch of kind 2) and the crash's lines (9-10) do not.
        self.assertIn("missing: 4, 6, 9-12\n", done.stdout)
        self.assertIn("missing: 4\n", done.stdout)
        with open(os.path.join(self.root, ".lab/coverage/replay-tiny.log")) as f:
            self.assertIn("1-crash failed", f.read())

    def test_exclude_leaves_out_unreached_functions(self):
        plain = self.lab_coverage("--json", os.path.join(self.tmp, "plain.json"))
        listing = os.path.join(self.tmp, "exclude.txt")
        write(listing, "# comment\nhw/tiny_unused.c tiny_unused  # nothing calls it\n"
                       "core/src/tiny.c tiny_core  # reached: counted again\n")
        done = self.lab_coverage("--exclude", listing, "--json", os.path.join(self.tmp, "ex.json"), "--show-missing")
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(os.path.join(self.tmp, "plain.json")) as f:
            before = json.load(f)
        with open(os.path.join(self.tmp, "ex.json")) as f:
            after = json.load(f)
        excluded = after["excluded"]
        self.assertEqual([(e["file"], e["function"], e["why"]) for e in excluded],
                         [("hw/tiny_unused.c", "tiny_unused", "nothing calls it")])
        self.assertGreater(excluded[0]["lines"], 0)
        # The same covered lines over fewer lines: nothing but the excluded ones leaves.
        self.assertEqual(after["lines"]["covered"], before["lines"]["covered"])
        self.assertEqual(after["lines"]["count"], before["lines"]["count"] - excluded[0]["lines"])
        self.assertEqual(after["lines_without_exclusions"], before["lines"])
        self.assertEqual(after["missing"]["hw/tiny_unused.c"], [])
        self.assertIn("excluded: %d lines in 1 functions" % excluded[0]["lines"], done.stdout)
        self.assertIn("warning: core/src/tiny.c tiny_core is listed but the replays reached it", done.stdout)

    def test_exclude_file_errors(self):
        for text, message in [("hw/tiny_unused.c tiny_unused\n", "has no `# why`"),
                              ("tiny_unused  # why\n", "line 1: expected"),
                              ("fuzz/x.c f  # why\n", "line 1: expected")]:
            listing = os.path.join(self.tmp, "bad.txt")
            write(listing, text)
            done = self.lab_coverage("--exclude", listing)
            self.assertEqual(done.returncode, 2, (text, done.stderr))
            self.assertIn(message, done.stderr)
        done = self.lab_coverage("--exclude", os.path.join(self.tmp, "none.txt"))
        self.assertEqual(done.returncode, 2)
        self.assertIn("No such file", done.stderr)

    def test_html(self):
        out = os.path.join(self.tmp, "html")
        done = self.lab_coverage("--html", out)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertTrue(os.path.isfile(os.path.join(out, "index.html")))
        pages = [os.path.join(d, n) for d, _, names in os.walk(out) for n in names if n.endswith("tiny.c.html")]
        self.assertEqual(len(pages), 1, pages)

    def test_bad_input(self):
        for args, message in [(["--targets", "tiny,huge"], "unknown target huge"),
                              (["--corpus", os.path.join(self.tmp, "missing")], "no such folder"),
                              (["--targets", ""], "--targets is empty"),
                              (["--frobnicate"], "unrecognized arguments")]:
            done = self.lab_coverage(*args)
            self.assertEqual(done.returncode, 2, (args, done.stderr))
            self.assertIn(message, done.stderr)
            self.assertEqual(done.stdout, "")

    def test_no_binary_is_a_failure(self):
        env = dict(os.environ, ALLOCLAB_COVERAGE_ROOT=self.root, ALLOCLAB_COVERAGE_PREBUILT=os.path.join(self.tmp, "none"))
        done = subprocess.run([sys.executable, SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(done.returncode, 1)
        self.assertIn("no coverage binary", done.stderr)


if __name__ == "__main__":
    unittest.main()
