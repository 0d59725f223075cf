#!/usr/bin/env bash
# smoke_test.sh BINARY — runs every benchmark of alloclab_benchmark once, briefly, and checks:
#  - the binary exits 0 (al_bench_main: every selected benchmark ran, none ended in an error);
#  - every listed benchmark has a run in the JSON report, and no run has an error;
#  - every benchmark whose name holds "teardown" reports the counter ns_per_allocation;
#  - the context names the miniport, the allocator and the git commit.
set -euo pipefail

bin=${1:?usage: smoke_test.sh BINARY}
out=${TEST_TMPDIR:-$(mktemp -d)}/smoke.json
fail() {
  echo "smoke_test: FAIL: $*" >&2
  exit 1
}

mapfile -t listed < <("$bin" --alloclab_smoke --benchmark_list_tests)
((${#listed[@]} > 0)) || fail "no benchmark listed"

rc=0
ALLOCLAB_GIT_COMMIT=smoke-test "$bin" --alloclab_smoke --benchmark_min_time=0.001 \
  --benchmark_out="$out" --benchmark_out_format=json || rc=$?
((rc == 0)) || fail "the benchmark binary exited with $rc"

# One "name" line per run, then its fields; print "name<TAB>error<TAB>has_ns_per_allocation".
runs=$(awk '
  /^  "benchmarks": \[/ { inside = 1 }
  !inside { next }
  /^      "name": / {
    if (name != "") print name "\t" error "\t" ns
    name = $0; sub(/^      "name": "/, "", name); sub(/",$/, "", name)
    error = 0; ns = 0
  }
  /^      "error_occurred": true/ { error = 1 }
  /^      "ns_per_allocation": / { ns = 1 }
  END { if (name != "") print name "\t" error "\t" ns }
' "$out")

for name in "${listed[@]}"; do
  row=$(awk -F '\t' -v name="$name" '$1 == name { print; exit }' <<<"$runs")
  [[ -n $row ]] || fail "$name: listed but no run in the report"
  IFS=$'\t' read -r _ error ns <<<"$row"
  ((error == 0)) || fail "$name: the run ended with an error"
  if [[ $name == *teardown* ]]; then
    ((ns == 1)) || fail "$name: no ns_per_allocation counter"
  fi
done

for key in miniport allocator git_commit compiler build_flags host_bytes_source; do
  grep -q "^    \"$key\": " "$out" || fail "context has no $key"
done
grep -q '"git_commit": "smoke-test"' "$out" || fail "git_commit does not come from \$ALLOCLAB_GIT_COMMIT"

echo "smoke_test: ${#listed[@]} benchmarks ran without error"
