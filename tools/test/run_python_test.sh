#!/usr/bin/env bash
# Runs one of the tools' Python unittest files with Debian's /usr/bin/python3 (the tools use
# only the standard library, plus scipy in one optional cross-check). Bazel 4.2's py_test would
# pick its own interpreter; this keeps to the one the tools are run with.
set -euo pipefail
[[ -x /usr/bin/python3 ]] || { echo "run_python_test: /usr/bin/python3 is missing (Debian package python3)" >&2; exit 1; }
exec /usr/bin/python3 "$1"
