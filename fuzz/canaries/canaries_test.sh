#!/bin/bash
# canaries_test.sh — the canaries' manifest and patches (fuzz/canaries/BUILD.bazel):
#  - every patch applies to the current tree and every target is known (canaries.py --check);
#  - the check fails, naming the canary, for a patch that no longer applies, an unknown target
#    and a bad manifest line (so the first point cannot pass vacuously);
#  - bad options (unknown canary, bad budget, unknown flag) exit 2 with a clear message.
set -uo pipefail
py=/usr/bin/python3
here=$PWD   # the runfiles root of this workspace: fuzz/, core/, hw/ as the BUILD file declares
tool=$here/fuzz/canaries/canaries.py
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect RC PATTERN CMD...: CMD exits RC and its stderr+stdout matches PATTERN (grep -E).
expect() {
  local rc=$1 pattern=$2 out got
  shift 2
  out=$("$@" 2>&1)
  got=$?
  if [[ $got != "$rc" ]]; then
    fail "$* exited $got, expected $rc; output: $out"
  elif ! grep -qE -- "$pattern" <<<"$out"; then
    fail "$* printed no line matching '$pattern'; output: $out"
  fi
}

# 1. The real manifest and patches.
expect 0 '10 canaries: manifest fine, every patch applies' "$py" "$tool" --check
expect 0 '^skip_close +ddi_sequence +60s' "$py" "$tool" --list

# 2. A copy of the tree to break on purpose.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
copy() { rm -rf "$tmp/t"; mkdir -p "$tmp/t"; mkdir -p "$tmp/t/tools"; cp -rL "$here/fuzz" "$here/core" "$here/hw" "$tmp/t/"; cp -L "$here/tools/fuzz_options.py" "$tmp/t/tools/"; chmod -R u+w "$tmp/t"; }
copy
expect 0 'every patch applies' "$py" "$tmp/t/fuzz/canaries/canaries.py" --check
# The line skip_close.patch changes is gone: that canary no longer applies.
sed -i 's/if (teardown->close_count)$/if (teardown->close_count != 0)/' "$tmp/t/core/src/fence.c"
expect 1 'skip_close: fuzz/canaries/skip_close.patch no longer applies' "$py" "$tmp/t/fuzz/canaries/canaries.py" --check
copy
sed -i 's/^error_path_leak         fault_injection/error_path_leak         no_such_target /' "$tmp/t/fuzz/canaries/canaries.txt"
expect 1 "error_path_leak: target 'no_such_target' is neither in FUZZ_TARGETS" "$py" "$tmp/t/fuzz/canaries/canaries.py" --check
copy
sed -i 's/^skip_close              ddi_sequence     60/skip_close ddi_sequence soon/' "$tmp/t/fuzz/canaries/canaries.txt"
expect 2 "canaries.txt:[0-9]+: budget 'soon' must be whole seconds" "$py" "$tmp/t/fuzz/canaries/canaries.py" --check
copy
rm "$tmp/t/fuzz/canaries/unmap_after_free.patch"
expect 1 'unmap_after_free: fuzz/canaries/unmap_after_free.patch is missing' "$py" "$tmp/t/fuzz/canaries/canaries.py" --check

# 3. The verdict: a crash is the canary's only when its input runs clean on the unpatched tree.
verdicts=$("$py" - "$tool" <<'PY' 2>&1
import importlib.util, sys
spec = importlib.util.spec_from_file_location("canaries", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
clean = lambda path: (False, None)
also = lambda path: (True, "oracle mismatch")
print(m.judge(True, 1.25, "verifier rule 4", "/x/crash-1", clean))
print(m.judge(True, 2.0, "oracle mismatch", "/x/crash-2", also))
print(m.judge(False, None, None, None, clean))
print(m.judge(True, 3.0, "AddressSanitizer", None, also))
PY
)
grep -qF "{'detected': 'yes', 'seconds': '1.2', 'fired': 'verifier rule 4'}" <<<"$verdicts" ||
  fail "a crash the unpatched tree does not have is a detection; got: $verdicts"
grep -qF "{'detected': 'no', 'seconds': '2.0', 'fired': 'oracle mismatch; the unpatched tree crashes on it too (oracle mismatch): not the canary'}" <<<"$verdicts" ||
  fail "a crash the unpatched tree has too is not a detection; got: $verdicts"
grep -qF "{'detected': 'no', 'seconds': '-', 'fired': None}" <<<"$verdicts" || fail "no crash is no detection; got: $verdicts"
grep -qF "(no crash input to check against the unpatched tree)" <<<"$verdicts" || fail "a crash without input is flagged; got: $verdicts"

# 3b. What starts a crash report: an abort's first line, not gpu_as_check's findings (the damage
# seeds make that walk report on purpose, and it returns false instead of aborting).
starts=$("$py" - "$tool" <<'PY' 2>&1
import importlib.util, sys
spec = importlib.util.spec_from_file_location("canaries", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
for line in ["gpu_as_check: AS 1: page 0 is mapped", "gpu_as_destroy: address space 1 has 2 pins",
             "handle_table_lookup: handle 0x40000001: stale", "alloclab oracle: call 3 query(...)"]:
    print(bool(m.CRASH_START.search(line)), line)
PY
)
grep -qx "False gpu_as_check: AS 1: page 0 is mapped" <<<"$starts" || fail "gpu_as_check's finding read as a crash: $starts"
grep -qx "True gpu_as_destroy: address space 1 has 2 pins" <<<"$starts" || fail "gpu_as_destroy's abort missed: $starts"
grep -qx "True handle_table_lookup: handle 0x40000001: stale" <<<"$starts" || fail "ht_bug's abort missed: $starts"
grep -qx "True alloclab oracle: call 3 query(...)" <<<"$starts" || fail "the oracle's report missed: $starts"

# 3c. --json: the rows as ./lab nightly reads them (detected as a boolean, null when not run;
# seconds and exec/s as numbers), the missed ones named, and why a run stopped early.
json_out=$("$py" - "$tool" "$tmp/rows.json" <<'PY' 2>&1
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("canaries", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
rows = [{"name": "a", "target": "t", "detected": "yes", "seconds": "0.2", "fired": "ASan", "execs": "-"},
        {"name": "b", "target": "t", "detected": "no", "seconds": "-", "fired": "nothing in 60s", "execs": "812"},
        {"name": "c", "target": "u", "detected": "-", "seconds": "-", "fired": "target missing", "execs": "-"}]
m.write_json(sys.argv[2], rows)
print(json.dumps(json.load(open(sys.argv[2])), sort_keys=True))
m.write_json(sys.argv[2], [], "baseline: the UNPATCHED tree crashes")
print(json.dumps(json.load(open(sys.argv[2])), sort_keys=True))
PY
)
grep -qF '{"canaries": [{"detected": true, "exec_per_sec": null, "fired": "ASan", "name": "a", "seconds": 0.2, "target": "t"}, {"detected": false, "exec_per_sec": 812, "fired": "nothing in 60s", "name": "b", "seconds": null, "target": "t"}, {"detected": null, "exec_per_sec": null, "fired": "target missing", "name": "c", "seconds": null, "target": "u"}], "error": null, "missed": ["b"]}' <<<"$json_out" ||
  fail "--json rows; got: $json_out"
grep -qF '{"canaries": [], "error": "baseline: the UNPATCHED tree crashes", "missed": []}' <<<"$json_out" ||
  fail "--json of a run that stopped early; got: $json_out"

# 3d. --targets keeps the canaries of those targets (with --list: nothing is fuzzed).
listed=$("$py" "$tool" --list --targets schedules,gpu 2>&1)
[[ $(grep -c . <<<"$listed") == 2 ]] && grep -q '^missing_lock ' <<<"$listed" && grep -q '^lookup_ref_outside_lock ' <<<"$listed" ||
  fail "--list --targets schedules,gpu: $listed"

# 4. Bad options: nothing is built or fuzzed, exit 2, the problem named.
expect 2 "unknown target 'bogus' in --targets; the fuzz targets are: " "$py" "$tool" --targets ddi_sequence,bogus
expect 2 "--targets is empty" "$py" "$tool" --targets ,
expect 2 "unknown canary 'no_such_canary'; the canaries are: skip_close, " "$py" "$tool" --only no_such_canary
expect 2 "--budget must be whole seconds from 1 to 3600, not '0'" "$py" "$tool" --budget 0
expect 2 "--budget must be whole seconds from 1 to 3600, not 'abc'" "$py" "$tool" --budget abc
expect 2 "--budget must be whole seconds from 1 to 3600, not '99999'" "$py" "$tool" --budget 99999
expect 2 "unrecognized arguments: --frobnicate" "$py" "$tool" --frobnicate
expect 2 "expected one argument" "$py" "$tool" --budget

if ((failures)); then
  echo "canaries_test: $failures failure(s)" >&2
  exit 1
fi
echo "canaries_test: all checks passed"
