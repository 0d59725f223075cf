#!/bin/bash
# emit_c_standalone_test.sh — ./lab repro --emit-c's plain-clang build of a generated program:
# the command emit_c_build_command.sh prints, over the source list Bazel queries
# (emit_c_sources), must build each given program from the source tree and the program must
# exit 0 (they were written from runs that passed). Also: the list names no test file, and the
# script refuses a missing or empty list.
#   emit_c_standalone_test.sh BUILD_COMMAND_SH SOURCES PROGRAM.c...
set -uo pipefail
script=$(realpath "$1") sources=$(realpath "$2")
shift 2
root=$PWD # the runfiles tree mirrors the source tree
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

grep -q '_test\.c$\|_test_' "$sources" && fail "the source list names test files: $(grep '_test' "$sources")"
grep -q '//core:src/adapter.c' "$sources" || fail "the source list lacks the port (//core:src/adapter.c)"
grep -q '//hw/sim:sim_adapter.c' "$sources" || fail "the source list lacks the sim miniport"

for program in "$@"; do
  name=$(basename "$program" .c)
  cmd=$("$script" "$root" "$sources" "$(realpath "$program")" "$tmp/$name") || { fail "$name: no command"; continue; }
  if ! bash -c "${cmd% && setarch*}" >"$tmp/$name.build.log" 2>&1; then
    fail "$name: the command did not build it: $(tail -n 15 "$tmp/$name.build.log")"
    continue
  fi
  setarch -R "$tmp/$name" >"$tmp/$name.run.log" 2>&1 || fail "$name exited $?: $(tail -n 15 "$tmp/$name.run.log")"
done

# Bad input: a missing list, a list without sources, a wrong argument count.
rc=0; "$script" "$root" "$tmp/missing" x.c x >/dev/null 2>"$tmp/err" || rc=$?
((rc == 2)) && grep -q "cannot read" "$tmp/err" || fail "a missing list: exit $rc, $(cat "$tmp/err")"
: >"$tmp/empty"
rc=0; "$script" "$root" "$tmp/empty" x.c x >/dev/null 2>"$tmp/err" || rc=$?
((rc == 2)) && grep -q "no .c file" "$tmp/err" || fail "an empty list: exit $rc, $(cat "$tmp/err")"
rc=0; "$script" "$root" >/dev/null 2>"$tmp/err" || rc=$?
((rc == 2)) && grep -q "usage" "$tmp/err" || fail "no arguments: exit $rc, $(cat "$tmp/err")"

((failures == 0)) && echo "emit_c_standalone_test: passed" || echo "emit_c_standalone_test: $failures failure(s)"
((failures == 0))
