#!/usr/bin/python3
"""A stand-in for //bench:alloclab_benchmark in the tools' tests: it takes Google Benchmark's
flags (--benchmark_out, --benchmark_context, --benchmark_filter, --benchmark_repetitions) and
writes a Google Benchmark 1.7 JSON report of two benchmarks whose time is a measured sleep:
  BM_steady/sleep_ms:5                          sleeps 5 ms per iteration
  BM_teardown_changed/allocations:8/manual_time sleeps $FAKE_BENCH_SLEEP_MS (default 10) ms per
      iteration and reports it as ns_per_allocation (time / 8); its real_time column is a
      constant 1000 ns, so only a tool that compares ns_per_allocation sees a change.
Each reports the shortest of 3 sleeps. Its context is that of the opt build (allocator jemalloc,
miniport sim), so lab finds its stored runs as it would a real build's. Each call appends
"$FAKE_BENCH_NAME <repetitions>" to $FAKE_BENCH_LOG when set."""
import json
import os
import re
import sys
import time

args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
changed_ms = float(os.environ.get("FAKE_BENCH_SLEEP_MS", "10"))
repetitions = int(args.get("benchmark_repetitions", "1"))
pattern = args.get("benchmark_filter", ".")
if os.environ.get("FAKE_BENCH_LOG"):
    with open(os.environ["FAKE_BENCH_LOG"], "a") as log:
        log.write(f"{os.environ.get('FAKE_BENCH_NAME', '?')} {repetitions}\n")


def measure(ms, iterations=3):
    """The shortest of a few timed sleeps, in ns: a loaded machine only ever adds to a sleep,
    so the minimum stays close to what was asked for."""
    best = None
    for _ in range(iterations):
        start = time.perf_counter()
        time.sleep(ms / 1000)
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    return best * 1e9


context = {"date": "2026-01-01T00:00:00+00:00", "host_name": "fake", "num_cpus": 1,
           "allocator": "jemalloc", "miniport": "sim"}
if "benchmark_context" in args:
    key, _, value = args["benchmark_context"].partition("=")
    context[key] = value
rows = []
for rep in range(repetitions):
    for name, ms in (("BM_steady/sleep_ms:5", 5.0),
                     ("BM_teardown_changed/allocations:8/manual_time", changed_ms)):
        if not re.search(pattern, name):
            continue
        ns = measure(ms)
        row = {"name": name, "run_name": name, "run_type": "iteration",
               "repetitions": repetitions, "repetition_index": rep, "threads": 1,
               "iterations": 3, "real_time": ns, "cpu_time": 1000.0, "time_unit": "ns"}
        if "teardown" in name:
            row["real_time"] = 1000.0
            row["ns_per_allocation"] = ns / 8
        rows.append(row)
print(f"fake benchmark: {len(rows)} rows")
if "benchmark_out" in args:
    with open(args["benchmark_out"], "w") as f:
        json.dump({"context": context, "benchmarks": rows}, f)
