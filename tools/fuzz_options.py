#!/usr/bin/python3
"""fuzz_options.py: the libFuzzer flags of a fuzz target, read from the files next to it in
fuzz/targets/: the `[libfuzzer]` section's `key = value` lines of <target>.options as -key=value
(`#` starts a comment), then -dict=<absolute path of <target>.dict> when there is one. The one
reader of those files for ./lab fuzz, ./lab nightly (tools/nightly.py, tools/prune.py) and
./lab canaries (fuzz/canaries/canaries.py); flags given later on a command line win.

    fuzz_options.py [--root DIR] TARGET    prints the flags, one a line
"""
import argparse
import os
import re
import sys
from typing import List


def libfuzzer_flags(root: str, target: str) -> List[str]:
    """The flags of @target under the tree @root (none for a target without the files)."""
    flags = []
    options = os.path.join(root, "fuzz", "targets", target + ".options")
    if os.path.isfile(options):
        section = ""
        with open(options, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                header = re.fullmatch(r"\[(.*)\]", line)
                if header:
                    section = header.group(1)
                    continue
                match = re.fullmatch(r"([A-Za-z_0-9]+)\s*=\s*(.*)", line)
                if section == "libfuzzer" and match:
                    flags.append("-%s=%s" % match.groups())
    dictionary = os.path.join(root, "fuzz", "targets", target + ".dict")
    if os.path.isfile(dictionary):
        flags.append("-dict=" + os.path.abspath(dictionary))  # fuzzers may run in another folder
    return flags


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="fuzz_options.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                        help="the source tree (default: this script's)")
    parser.add_argument("target")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_]+", args.target):
        parser.error("target must be a name like ddi_sequence, not %r" % args.target)
    for flag in libfuzzer_flags(args.root, args.target):
        print(flag)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
