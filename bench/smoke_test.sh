#!/usr/bin/env bash
# smoke_test.sh BINARY — runs every benchmark of alloclab_benchmark once, briefly, and checks:
#  - the binary exits 0 (al_bench_main: every selected benchmark ran, none ended in an error);
#  - every listed benchmark has a run in the JSON report, and no run has an error;
#  - every benchmark whose name holds "teardown" reports the counter ns_per_allocation;
#  - the context names the miniport, the allocator and the git commit;
#  - ALLOCLAB_LATENCY_TRACE (op_driver.h) gets a header and one line of 7 numbers per timed
#    operation for every latency run, and a trace file that cannot be written fails the run.
set -euo pipefail

bin=${1:?usage: smoke_test.sh BINARY}
out=${TEST_TMPDIR:-$(mktemp -d)}/smoke.json
fail() {
  echo "smoke_test: FAIL: $*" >&2
  exit 1
}

mapfile -t listed < <("$bin" --alloclab_smoke --benchmark_list_tests)
((${#listed[@]} > 0)) || fail "no benchmark listed"

trace=${out%.json}-latency.tsv
rc=0
ALLOCLAB_GIT_COMMIT=smoke-test ALLOCLAB_LATENCY_TRACE=$trace "$bin" --alloclab_smoke \
  --benchmark_min_time=0.001 --benchmark_out="$out" --benchmark_out_format=json || rc=$?
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

# The latency trace: a header per latency run (each of Google Benchmark's runs of a latency
# benchmark writes one), then a line per timed operation.
latency_benchmarks=0
for name in "${listed[@]}"; do
  [[ $name == *_latency_* ]] && latency_benchmarks=$((latency_benchmarks + 1))
done
((latency_benchmarks > 0)) || fail "no latency benchmark listed"
[[ -s $trace ]] || fail "ALLOCLAB_LATENCY_TRACE: no trace written to $trace"
trace_runs=$(grep -c '^# run [0-9]*: ' "$trace" || true)
((trace_runs >= latency_benchmarks)) \
  || fail "trace: $trace_runs run headers for $latency_benchmarks latency benchmarks"
grep -q '^# run [0-9]*: teardown devices:1 allocations:64 p99$' "$trace" \
  || fail "trace: no header names the teardown p99 run of 64 allocations"
bad=$(awk -F '\t' '!/^#/ && (NF != 7 || $3 !~ /^[0-9]+$/ || $3 == 0 || $4 !~ /^[0-9]+$/ ||
                              $5 !~ /^[0-9]+$/ || $6 !~ /^[0-9]+$/ || $7 !~ /^[01]$/) { n++ }
                  END { print n + 0 }' "$trace")
((bad == 0)) || fail "trace: $bad lines are not 7 tab-separated numbers with wall_ns > 0"
ops=$(grep -vc '^#' "$trace" || true)
((ops >= trace_runs)) || fail "trace: $ops operation lines for $trace_runs runs"

# A trace file that cannot be written is an error that names it.
missing=${out%/*}/no-such-directory/trace.tsv
rc=0
message=$(ALLOCLAB_LATENCY_TRACE=$missing "$bin" --alloclab_smoke --benchmark_min_time=0.001 \
  --benchmark_filter='BM_teardown_latency_p50/allocations:64' 2>&1) || rc=$?
((rc != 0)) || fail "an unwritable ALLOCLAB_LATENCY_TRACE did not fail the run"
grep -qF "ALLOCLAB_LATENCY_TRACE: cannot write '$missing'" <<<"$message" \
  || fail "an unwritable ALLOCLAB_LATENCY_TRACE: no error naming it in: $message"

echo "smoke_test: ${#listed[@]} benchmarks ran without error; latency trace: $trace_runs runs, $ops operations"
