#!/bin/bash
# repro_target_test.sh — ./lab repro's target detection (repro_target.sh): --target, metadata in
# the file or its sibling .txt, the path, the kind of input the target reads, and the errors.
#   repro_target_test.sh REPRO_TARGET
set -uo pipefail
detect=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
# expect WANT ARGS...: detection prints WANT as the target.
expect() {
  local want=$1 out
  shift
  out=$("$detect" "$tmp/BUILD.bazel" "$@" 2>&1) || { fail "'$*': exit $?: $out"; return; }
  [[ ${out%%$'\t'*} == "$want" ]] || fail "'$*': got '$out', want '$want'"
}
# expect_error NEEDLE ARGS...: exit 2 with NEEDLE in the message.
expect_error() {
  local needle=$1 out rc=0
  shift
  out=$("$detect" "$tmp/BUILD.bazel" "$@" 2>&1) || rc=$?
  ((rc == 2)) || fail "'$*': exit $rc, not 2: $out"
  [[ $out == *"$needle"* ]] || fail "'$*': message lacks '$needle': $out"
}

# expect_kind TARGET KIND: the kind of input detection reports for TARGET.
expect_kind() {
  local out
  out=$("$detect" "$tmp/BUILD.bazel" "$tmp/elsewhere/plain.bin" "$1" 2>&1) || { fail "kind of $1: exit $?: $out"; return; }
  out=${out#*$'\t'}
  [[ ${out%%$'\t'*} == "$2" ]] || fail "kind of $1: got '${out%%$'\t'*}', want '$2'"
}

cat >"$tmp/BUILD.bazel" <<'B'
FUZZ_TARGETS = [
    "ddi_sequence",
    "fault_injection",
    "private_data",
    "schedules",
    "bytes_only",
]
B
# The targets' sources, as far as the kind goes.
printf 'return fzt_run_program_input(data, size, &options);\n' >"$tmp/ddi_sequence.c"
printf '#define FZT_FAULTS_REQUIRED 1\nreturn fzt_run_program_input(data, size, &o);\n' >"$tmp/fault_injection.c"
printf 'fz_execute_concurrent(&input.program, &cc, &options, NULL);\n' >"$tmp/schedules.c"
printf 'int main(void) { return 0; }\n' >"$tmp/schedules_text.c"
printf 'int LLVMFuzzerTestOneInput(void) { return 0; }\n' >"$tmp/bytes_only.c"
mkdir -p "$tmp/corpus/fault_injection/regressions" "$tmp/.lab/fuzz/private_data/crashes" "$tmp/elsewhere"
printf 'ALFZ\x01' >"$tmp/corpus/fault_injection/regressions/r.bin"
printf 'xx' >"$tmp/.lab/fuzz/private_data/crashes/crash-0123"
printf 'ALFZ\x01' >"$tmp/elsewhere/plain.bin"

# The path.
expect fault_injection "$tmp/corpus/fault_injection/regressions/r.bin"
expect private_data "$tmp/.lab/fuzz/private_data/crashes/crash-0123"
# Metadata in the sibling .txt wins over the path; --target wins over both.
printf '# bug: x\n# target: ddi_sequence\n# signature: a | b | c | d\n# reproduced: 3/3\nv1 = create_device()\n' \
  >"$tmp/corpus/fault_injection/regressions/r.txt"
expect ddi_sequence "$tmp/corpus/fault_injection/regressions/r.bin"
expect private_data "$tmp/corpus/fault_injection/regressions/r.bin" private_data
# Metadata inside the file itself (a text file given as FILE).
printf 'junk\n# target: private_data\n' >"$tmp/elsewhere/meta.bin"
expect private_data "$tmp/elsewhere/meta.bin"
# Without metadata the metadata lines are not required: the path decides.
rm "$tmp/corpus/fault_injection/regressions/r.txt"
expect fault_injection "$tmp/corpus/fault_injection/regressions/r.bin"

# The kinds: how ./lab repro shows an input of each target (schedules: its own text tool).
expect_kind ddi_sequence program
expect_kind fault_injection program-faults
expect_kind private_data private_data
expect_kind schedules own-text
expect_kind bytes_only other
out=$("$detect" "$tmp/BUILD.bazel" "$tmp/corpus/fault_injection/regressions/r.bin" 2>&1)
[[ $out == $'fault_injection\tprogram-faults\tthe path' ]] || fail "the whole line: '$out'"

# Errors: nothing to go on (lists the targets), unknown targets from each source, a missing file.
expect_error "cannot tell which target" "$tmp/elsewhere/plain.bin"
expect_error "one of: ddi_sequence fault_injection private_data schedules bytes_only" "$tmp/elsewhere/plain.bin"
expect_error "unknown target 'nosuch' (from --target); the targets are: ddi_sequence fault_injection private_data schedules bytes_only" \
  "$tmp/elsewhere/plain.bin" nosuch
printf '# target: gone_target\n' >"$tmp/elsewhere/plain.txt"
expect_error "unknown target 'gone_target' (from the '# target:' line of" "$tmp/elsewhere/plain.bin"
expect_error "does not exist" "$tmp/elsewhere/missing.bin"
out=$("$detect" "$tmp/elsewhere/plain.txt" "$tmp/elsewhere/plain.bin" 2>&1) && fail "a BUILD without FUZZ_TARGETS was accepted"
[[ $out == *"no targets found"* ]] || fail "a BUILD without FUZZ_TARGETS: $out"

if ((failures)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "repro_target_test: all checks passed"
