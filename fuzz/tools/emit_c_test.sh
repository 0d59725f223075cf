#!/bin/bash
# emit_c_test.sh — emit_c: generated programs build (Bazel builds them with ALLOCLAB_COPTS, i.e.
# -Werror) and behave like the fuzz input they came from; emit_c's errors.
#   emit_c_test.sh EMIT_C EMIT_C_BROKEN PASSING_BIN BROKEN_BIN PASSING_GEN_C PASSING_PROGRAM
#                  BROKEN_PROGRAM PRIVATE_DATA_PROGRAM BRING_UP_GEN_C BRING_UP_PROGRAM
#                  FAULT_RUNS_ON_PROGRAM EMIT_C_BROKEN_FENCE WRONG_FENCE_BIN WRONG_FENCE_PROGRAM
#                  EMIT_C_BROKEN_QUERY WRONG_SIZE_BIN WRONG_SIZE_PROGRAM OVERLAP_BIN OVERLAP_PROGRAM
#                  EMIT_C_BROKEN_STATS DEFERRED_BIN DEFERRED_PROGRAM WRONG_ANSWER_PROGRAM
#                  EMIT_C_BROKEN_UNMAP LEFT_MAPPED_BIN LEFT_MAPPED_PROGRAM
# EMIT_C_BROKEN and BROKEN_PROGRAM are linked with broken_port.c (al_resource_open reports
# success for a stale resource), EMIT_C_BROKEN_FENCE and WRONG_FENCE_PROGRAM with
# broken_fence_port.c (al_submit reports one less than its fence), EMIT_C_BROKEN_QUERY,
# WRONG_SIZE_PROGRAM and OVERLAP_PROGRAM with broken_query_port.c (al_allocation_query reports
# a page too many for a 64 KiB allocation, offset 0 for a smaller one in a segment),
# EMIT_C_BROKEN_STATS and DEFERRED_PROGRAM with broken_stats_port.c (al_adapter_get_stats
# reports no deferred destroy), EMIT_C_BROKEN_UNMAP and LEFT_MAPPED_PROGRAM with
# broken_unmap_sim.c (the simulated GPU's per-binding unmap does nothing).
set -uo pipefail

emit_c=$1 emit_c_broken=$2 passing_bin=$3 broken_bin=$4 passing_c=$5
passing_program=$6 broken_program=$7 private_data_program=$8 bring_up_c=$9 bring_up_program=${10}
fault_runs_on_program=${11}
emit_c_broken_fence=${12} wrong_fence_bin=${13} wrong_fence_program=${14}
emit_c_broken_query=${15} wrong_size_bin=${16} wrong_size_program=${17} overlap_bin=${18} overlap_program=${19}
emit_c_broken_stats=${20} deferred_bin=${21} deferred_program=${22} wrong_answer_program=${23}
emit_c_broken_unmap=${24} left_mapped_bin=${25} left_mapped_program=${26}
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
# expect_exit CODE NEEDLE CMD...: CMD must exit with CODE and print NEEDLE (stdout or stderr).
expect_exit() {
  local code=$1 needle=$2 rc=0
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if ((rc != code)); then
    fail "'$*' exited $rc, not $code: $(cat "$tmp/out" "$tmp/err")"
  elif [[ -n $needle ]] && ! grep -qF -- "$needle" "$tmp/out" "$tmp/err"; then
    fail "'$*': output lacks '$needle': $(cat "$tmp/out" "$tmp/err")"
  fi
}

# 1. A passing program: the generated program exits 0 against alloclab's port.
expect_exit 0 "every check passed" "$passing_program"
# ... and carries the executor's implicit calls: the pre-wait before the ASSUME_NOT_IN_USE
# destroy (call 8), the teardown of the devices left alive, the emptiness checks.
for needle in "fence_wait(2) before call 8 (assume_not_in_use)" "teardown destroy_device(" "expect_empty();" \
              ".check_query = true, .size_min = 4096u, .size_max = 4096u" "expect_no_overlap(" \
              ".check_gpu_completed = true" ".check_device_info = true" "al_handle list[40] = {" \
              "expect_sim_totals(" "al_handle list[2] = {v5_a[0], 0xdead0001u};" ".flags = 0x1u" \
              "al_device_create_with_info(adapter, &v13, &info);" "/* call 18: damage(kind=resource_count_above_capacity"; do
  grep -qF -- "$needle" "$passing_c" || fail "the passing program lacks '$needle'"
done
# It uses the public API only: no fuzz header, no input file.
if grep -E '#include "(fuzz/|alloclab/fuzz/)' "$passing_c"; then fail "the program includes fuzzing code"; fi
# emit_c on the passing input says so and exits 0; the file it writes is the one Bazel built.
expect_exit 0 "the recorded run passed" "$emit_c" "$passing_bin" "$tmp/passing.c"
sed -n '/^#include/,$p' "$tmp/passing.c" >"$tmp/a"
sed -n '/^#include/,$p' "$passing_c" >"$tmp/b"
cmp -s "$tmp/a" "$tmp/b" || fail "emit_c wrote a different program on a second run (not deterministic)"

# 2. Failing programs: emit_c's run against a broken port fails the oracle (exit 3) with a
# message; the generated program, linked with the same broken port, fails with that message;
# against alloclab's own port the same input passes.
#   expect_finding EMITTER BIN PROGRAM MESSAGE_START TAG
expect_finding() {
  local emitter=$1 bin=$2 program=$3 start=$4 tag=$5 message rc=0
  expect_exit 3 "the recorded run failed" "$emitter" "$bin" "$tmp/finding.c"
  message=$(grep '^alloclab oracle: ' "$tmp/err" | head -1)
  [[ $message == "$start"* ]] || fail "$emitter's oracle message: '$message', not '$start...'"
  "$program" >"$tmp/out" 2>"$tmp/err" || rc=$?
  ((rc != 0)) || fail "$program exited 0"
  # The executor's message ends with the tag tools/triage.py reads (" [oracle:KIND OP]"); the
  # generated program writes the message without it.
  [[ $message == *" [oracle:$tag]" ]] || fail "no oracle tag '$tag' in '$message'"
  message=${message% \[oracle:*}
  grep -qxF -- "$message" "$tmp/err" || fail "$program did not fail with '$message': $(cat "$tmp/err")"
  expect_exit 0 "the recorded run passed" "$emit_c" "$bin" "$tmp/fixed.c"
}
# A wrong status (the status check).
expect_finding "$emit_c_broken" "$broken_bin" "$broken_program" \
  "alloclab oracle: call 5 open_resource(dev=v2, resource=v3): port returned STATUS_SUCCESS, model expected STATUS_INVALID_HANDLE" \
  "status-mismatch:success open_resource"
# Wrong outputs with the right status (the model's output rules, fz_model_output_rules): a
# submit's fence not above the last one, a query's placed size above the page-rounded request.
expect_finding "$emit_c_broken_fence" "$wrong_fence_bin" "$wrong_fence_program" \
  "alloclab oracle: call 3 submit(dev=v1, list=[v2.a0], command=fill): port returned STATUS_SUCCESS, but submit handed out fence 0, not above the last one (0)" \
  "output-mismatch:submit-handed-out-fence-not-above submit"
grep -qF 'expect_outputs("call 3 submit(dev=v1, list=[v2.a0], command=fill)", st, &rules, &values, v3, 0, NULL, NULL);' \
  "$tmp/finding.c" || fail "the submit's outputs are not checked with its fence variable: $(cat "$tmp/finding.c")"
expect_finding "$emit_c_broken_query" "$wrong_size_bin" "$wrong_size_program" \
  "alloclab oracle: call 3 query(allocation=v2.a0): port returned STATUS_SUCCESS, but query: placed size 69632 above the page-rounded request 65536" \
  "output-mismatch:query-placed-size-above-the-page query"
# Two live allocations overlapping in a segment (the executor's overlap check after a query).
expect_finding "$emit_c_broken_query" "$overlap_bin" "$overlap_program" \
  "alloclab oracle: call 3 query(allocation=v2.a0): allocations 0x" "overlap query"
grep -qF "expect_no_overlap(\"call 3 query(allocation=v2.a0)\", &info, v2_a[0], v2_a[1], 0u);" "$tmp/fixed.c" ||
  fail "the overlap check after the query is not written: $(cat "$tmp/fixed.c")"
# A teardown that must wait for a fence, with no deferred destroy counted (the deferred-destroy
# count rules of fz_model_check_stats).
expect_finding "$emit_c_broken_stats" "$deferred_bin" "$deferred_program" \
  "alloclab oracle: call 4 destroy_allocations(dev=v1, list=[v2.a0], flags=0): statistics disagree with the model: deferred destroys: port 0 while 1 allocations" \
  "live-objects:deferred-destroys-port-while-allocations-bindings destroy_allocations"
# A closed binding left mapped by the simulated GPU: no call reports it, the sim's hardware walk
# at the end of the program does, in the recorded run and in the program.
expect_finding "$emit_c_broken_unmap" "$left_mapped_bin" "$left_mapped_program" \
  "alloclab oracle: end of program: sim_miniport_check_hardware: device 0x" \
  "hardware-walk:device-a-closed-binding-at-va end-of-program"
grep -qF 'expect_hardware_walk("end of program", false);' "$tmp/fixed.c" ||
  fail "the end-of-program hardware walk is not written: $(cat "$tmp/fixed.c")"
grep -qF 'expect_hardware_walk("teardown", false);' "$tmp/fixed.c" ||
  fail "the teardown's hardware walk is not written: $(cat "$tmp/fixed.c")"

# 3. private_data: the program creates the allocation on both configurations and passes.
expect_exit 0 "every check passed" "$private_data_program"
grep -q "4k-pages: al_allocation_create = STATUS_SUCCESS" "$tmp/out" || fail "private_data program: $(cat "$tmp/out")"

# 3b. A fault_injection seed with a fault armed at=bring_up: armed before al_adapter_create, whose
# injected failure ends the program cleanly (the sim's totals still checked at the end).
expect_exit 0 "adapter bring-up failed as recorded" "$bring_up_program"
grep -qF "every check passed" "$tmp/out" || fail "the bring-up program did not reach its final checks"
arm_line=$(grep -n "arm_fault(5u, 5u, 0u);" "$bring_up_c" | cut -d: -f1)
create_line=$(grep -n "al_adapter_create(&config, &adapter)" "$bring_up_c" | cut -d: -f1)
[[ -n $arm_line && -n $create_line && $arm_line -lt $create_line ]] ||
  fail "the bring-up fault is not armed before al_adapter_create (lines '$arm_line', '$create_line')"
# A bring-up window running on into the program: v1 create_device fails, the rest is checked.
expect_exit 0 "every check passed" "$fault_runs_on_program"

# 3c. A fault_injection seed whose miniport answers a DDI wrongly: the call fails with
# STATUS_GRAPHICS_DRIVER_MISMATCH, the status the model allows after a wrong answer.
expect_exit 0 "every check passed" "$wrong_answer_program"

# 4. Errors: usage (2), unreadable or undecodable input and unwritable output (1, nothing left).
expect_exit 2 "usage: emit_c" "$emit_c"
expect_exit 2 "unknown option '--bogus'" "$emit_c" --bogus "$passing_bin" "$tmp/x.c"
expect_exit 2 "do not go together" "$emit_c" --keep-faults --private-data "$passing_bin" "$tmp/x.c"
expect_exit 1 "cannot read '$tmp/missing.bin'" "$emit_c" "$tmp/missing.bin" "$tmp/x.c"
printf 'ALFZ\x09garbage' >"$tmp/v9.bin"
expect_exit 1 "unsupported format version 9" "$emit_c" "$tmp/v9.bin" "$tmp/x.c"
[[ ! -e $tmp/x.c ]] || fail "emit_c left $tmp/x.c after an error"
expect_exit 1 "cannot write '$tmp/no/such/dir/x.c'" "$emit_c" "$passing_bin" "$tmp/no/such/dir/x.c"
# A threaded program (bit 5 of the faults byte: options(engine=threaded)) is refused, nothing
# written: its checks would fix one run's timing of the engine thread.
printf 'ALFZ\x03\x20\x00' >"$tmp/threaded.bin" # v1 = create_device() on the threaded engine
rm -f "$tmp/threaded.c"
expect_exit 1 "options(engine=threaded) cannot be written" "$emit_c" "$tmp/threaded.bin" "$tmp/threaded.c"
[[ ! -e $tmp/threaded.c ]] || fail "emit_c left $tmp/threaded.c for a threaded program"
# A damage op (a test of the oracle's walks, format version 4) is left out of the written
# program, with a comment, and the summary says so; the port calls around it are written.
printf 'ALFZ\x04\x00\x00\x0c\x00\x00\x00' >"$tmp/damage.bin" # create_device(); damage(port kind 0); create_device()
expect_exit 0 "the recorded run passed; 1 damage op left out" "$emit_c" "$tmp/damage.bin" "$tmp/damage.c"
grep -qF "/* call 2: damage(kind=" "$tmp/damage.c" || fail "no comment for the damage op left out: $(cat "$tmp/damage.c")"
grep -qF "left out: a damage op tests the oracle's walks" "$tmp/damage.c" || fail "the comment does not say why"
(($(grep -c "al_device_create(" "$tmp/damage.c") == 2)) || fail "the two create_device calls are not both written"

# 5. options(teardown=adapter) (bit 4 of the faults byte): the program ends with al_adapter_destroy
# on the live device, with no destroy_device and no emptiness check before it; the sim's totals
# are still checked after it.
printf 'ALFZ\x03\x10\x00' >"$tmp/teardown.bin" # v1 = create_device(), left to al_adapter_destroy
expect_exit 0 "the recorded run passed" "$emit_c" "$tmp/teardown.bin" "$tmp/teardown.c"
grep -qF "al_adapter_destroy(adapter);" "$tmp/teardown.c" || fail "the teardown=adapter program destroys no adapter"
grep -qF "expect_sim_totals(" "$tmp/teardown.c" || fail "the teardown=adapter program checks no totals"
if grep -qE "teardown destroy_device\(|^  expect_empty\(\);" "$tmp/teardown.c"; then
  fail "the teardown=adapter program destroys the devices itself"
fi

if ((failures)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "emit_c_test: all checks passed"
