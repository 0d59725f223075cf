#!/bin/bash
# tools_test.sh — trace and encode: round trips and their errors.
#   tools_test.sh TRACE ENCODE
set -uo pipefail

trace=$1
encode=$2
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
# expect_error NEEDLE CMD...: CMD must exit non-zero with NEEDLE on stderr.
expect_error() {
  local needle=$1
  shift
  if "$@" >"$tmp/out" 2>"$tmp/err"; then
    fail "'$*' succeeded"
  elif ! grep -qF -- "$needle" "$tmp/err"; then
    fail "'$*': stderr lacks '$needle': $(cat "$tmp/err")"
  fi
}

cat >"$tmp/prog.txt" <<'PROG'
# a comment
fault(point=driver_object, nth=3, repeat=1)
v1 = create_device()
v2 = create_resource(dev=v1, n=4, size=65536, placement=any, shared=1)
v3 = open_resource(dev=v1, resource=v2)
v4 = destroy_allocations(dev=v1, list=[v2.a0, v2.a3, 0xdead0001], flags=0)
v5 = submit(dev=v1, list=[v2.a1], command=fill) = STATUS_SUCCESS
PROG

"$encode" "$tmp/prog.txt" "$tmp/prog.bin" >"$tmp/out" 2>"$tmp/err" ||
  fail "encode: $(cat "$tmp/err")"
grep -q "5 calls, 1 faults" "$tmp/out" || fail "encode summary: $(cat "$tmp/out")"
head -c 5 "$tmp/prog.bin" | grep -q "^ALFZ" || fail "the input lacks its header"

"$trace" "$tmp/prog.bin" >"$tmp/trace.txt" 2>"$tmp/err" || fail "trace: $(cat "$tmp/err")"
grep -qx "v2 = create_resource(dev=v1, n=4, size=65536, placement=any, shared=1)" \
  "$tmp/trace.txt" || fail "trace output: $(cat "$tmp/trace.txt")"
grep -qx "fault(point=driver_object, nth=3, repeat=1)" "$tmp/trace.txt" ||
  fail "trace fault line: $(cat "$tmp/trace.txt")"
grep -q "^# .*prog.bin: [0-9]* bytes, format version 4, 5 calls, 1 faults" "$tmp/trace.txt" ||
  fail "trace header line: $(head -1 "$tmp/trace.txt")"

# trace --run executes the program (port + miniport + model) and prints each call's status.
cat >"$tmp/run.txt" <<'PROG'
v1 = create_device()
v2 = create_resource(dev=v1, n=2, size=4096, placement=any, shared=0)
v3 = destroy_allocations(dev=v1, list=[v2.a0, 0xdead0001], flags=0)
v4 = destroy_resource(dev=v1, resource=v2, flags=0)
PROG
"$encode" "$tmp/run.txt" "$tmp/run.bin" >/dev/null 2>"$tmp/err" || fail "encode run.txt: $(cat "$tmp/err")"
"$trace" --run "$tmp/run.bin" >"$tmp/run.out" 2>"$tmp/err" || fail "trace --run: $(cat "$tmp/run.out" "$tmp/err")"
grep -qx "v2 = create_resource(dev=v1, n=2, size=4096, placement=any, shared=0) = STATUS_SUCCESS" \
  "$tmp/run.out" || fail "trace --run create status: $(cat "$tmp/run.out")"
grep -qx "v3 = destroy_allocations(dev=v1, list=\[v2.a0, 0xdead0001\], flags=0) = STATUS_INVALID_HANDLE" \
  "$tmp/run.out" || fail "trace --run error status: $(cat "$tmp/run.out")"
expect_error "usage: trace" "$trace" --run

# trace --damage-kinds lists both layers' damage kinds; a name from the list runs, caught.
"$trace" --damage-kinds >"$tmp/kinds.txt" 2>"$tmp/err" || fail "trace --damage-kinds: $(cat "$tmp/err")"
grep -q '^port resource_count_above_capacity .*(pick: .*; expect: "above capacity")$' "$tmp/kinds.txt" ||
  fail "port kind missing from: $(head -3 "$tmp/kinds.txt")"
grep -q '^sim  sim_live_devices_count ' "$tmp/kinds.txt" || fail "sim kind missing from: $(tail -3 "$tmp/kinds.txt")"
(($(wc -l <"$tmp/kinds.txt") >= 90)) || fail "only $(wc -l <"$tmp/kinds.txt") damage kinds listed"
[[ -z $(awk '{print $2}' "$tmp/kinds.txt" | sort | uniq -d) ]] || fail "a damage kind is listed twice"
expect_error "--damage-kinds takes no other argument" "$trace" --damage-kinds "$tmp/run.bin"
printf 'v1 = create_device()\nv2 = create_resource(dev=v1, n=2, size=4096, placement=any, shared=0)\nv3 = damage(kind=%s, pick=0)\n' \
  "$(awk '$2 == "resource_count_above_capacity" {print $2}' "$tmp/kinds.txt")" >"$tmp/damage.txt"
"$encode" "$tmp/damage.txt" "$tmp/damage.bin" >/dev/null 2>"$tmp/err" || fail "encode damage.txt: $(cat "$tmp/err")"
"$trace" --run "$tmp/damage.bin" >"$tmp/damage.out" 2>"$tmp/err" || fail "trace --run damage: $(cat "$tmp/damage.out" "$tmp/err")"
grep -qx "v3 = damage(kind=resource_count_above_capacity, pick=0) = STATUS_SUCCESS" "$tmp/damage.out" ||
  fail "trace --run damage status: $(cat "$tmp/damage.out")"
printf 'v1 = damage(kind=no_such_kind, pick=0)\n' >"$tmp/bad_kind.txt"
expect_error "unknown damage kind 'no_such_kind' (\`trace --damage-kinds\` lists them)" "$encode" "$tmp/bad_kind.txt" "$tmp/bad_kind.bin"

# --target close_destroy replays with that target's segments: a resource of 1024 allocations
# of 16 KiB (16 MiB) fits there, not in ddi_sequence's 2 MiB segments; long lists as ranges.
cat >"$tmp/big.txt" <<'PROG'
v1 = create_device()
v2 = create_device()
v3 = create_resource(dev=v1, n=1024, size=16384, placement=any, shared=1)
v4 = open_resource(dev=v2, resource=v3)
v5 = destroy_allocations(dev=v1, list=[v3.a0..a1023, v3.a0], flags=0)
v6 = destroy_allocations(dev=v1, list=[v3.a1000..a1023], flags=0, hostile=count_minus_one)
PROG
"$encode" "$tmp/big.txt" "$tmp/big.bin" >/dev/null 2>"$tmp/err" || fail "encode big.txt: $(cat "$tmp/err")"
"$trace" "$tmp/big.bin" >"$tmp/big.out" 2>"$tmp/err" || fail "trace big: $(cat "$tmp/err")"
grep -qx "v5 = destroy_allocations(dev=v1, list=\[v3.a0..a1023, v3.a0\], flags=0)" "$tmp/big.out" ||
  fail "trace prints ranges: $(cat "$tmp/big.out")"
"$trace" --target close_destroy --run "$tmp/big.bin" >"$tmp/big.run" 2>"$tmp/err" ||
  fail "trace --target close_destroy --run: $(cat "$tmp/big.run" "$tmp/err")"
grep -qx "v3 = create_resource(dev=v1, n=1024, size=16384, placement=any, shared=1) = STATUS_SUCCESS" \
  "$tmp/big.run" || fail "close_destroy segments: $(cat "$tmp/big.run")"
grep -qx "v5 = destroy_allocations(dev=v1, list=\[v3.a0..a1023, v3.a0\], flags=0) = STATUS_INVALID_PARAMETER" \
  "$tmp/big.run" || fail "1025 entries: $(cat "$tmp/big.run")"
"$trace" --run "$tmp/big.bin" >"$tmp/big.default" 2>"$tmp/err" || fail "trace --run big: $(cat "$tmp/err")"
grep -q "^v3 = create_resource.* = STATUS_SUCCESS" "$tmp/big.default" &&
  fail "ddi_sequence's segments held 16 MiB: $(cat "$tmp/big.default")"
expect_error "trace: unknown target 'nosuch'" "$trace" --target nosuch "$tmp/big.bin"
expect_error "trace: --target needs a target name" "$trace" --target

# trace | encode is the identity on inputs.
"$encode" "$tmp/trace.txt" "$tmp/again.bin" >/dev/null 2>"$tmp/err" ||
  fail "encode of trace output: $(cat "$tmp/err")"
cmp -s "$tmp/prog.bin" "$tmp/again.bin" || fail "trace | encode changed the input"

# Several files, raw bytes without a header.
printf '\x00\x00\x03\x00\x03\x0f\x06' >"$tmp/raw.bin"
"$trace" "$tmp/prog.bin" "$tmp/raw.bin" >"$tmp/two.txt" 2>"$tmp/err" ||
  fail "trace of two files: $(cat "$tmp/err")"
grep -q "raw.bin: 7 bytes, no header" "$tmp/two.txt" || fail "headerless: $(cat "$tmp/two.txt")"
grep -qx "v2 = create_resource(dev=v1, n=4, size=65536, placement=aperture_only, shared=1)" \
  "$tmp/two.txt" || fail "raw bytes decode: $(cat "$tmp/two.txt")"

# Errors.
expect_error "usage: trace" "$trace"
expect_error "usage: encode" "$encode" "$tmp/prog.txt"
expect_error "trace: cannot read '$tmp/missing.bin': No such file or directory" \
  "$trace" "$tmp/missing.bin"
expect_error "cannot read '$tmp': it is a directory" "$trace" "$tmp"
printf 'ALFZ\x07\x00' >"$tmp/v7.bin"
expect_error "trace: $tmp/v7.bin: unsupported format version 7 (this build reads versions 1 to 4)" \
  "$trace" "$tmp/v7.bin"
# A bad file among good ones: the good ones are printed, the exit status is 1.
if "$trace" "$tmp/prog.bin" "$tmp/missing.bin" >"$tmp/out" 2>/dev/null; then
  fail "trace with a missing file exited 0"
fi
grep -q "^v5 = submit" "$tmp/out" || fail "trace stopped at the missing file"

expect_error "encode: cannot read '$tmp/missing.txt'" "$encode" "$tmp/missing.txt" "$tmp/x.bin"
printf 'v1 = create_device()\nv2 = destroy_device(dev=v5)\n' >"$tmp/bad.txt"
expect_error "encode: $tmp/bad.txt: line 2: dev: v5 is not an earlier call" \
  "$encode" "$tmp/bad.txt" "$tmp/bad.bin"
[[ -e $tmp/bad.bin ]] && fail "encode wrote an output for bad text"
expect_error "not a text file" "$encode" "$tmp/prog.bin" "$tmp/x.bin"
expect_error "encode: cannot write '$tmp/no/such/dir/x.bin'" \
  "$encode" "$tmp/prog.txt" "$tmp/no/such/dir/x.bin"

if [[ $failures -gt 0 ]]; then
  echo "$failures failures" >&2
  exit 1
fi
echo "PASS"
