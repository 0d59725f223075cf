#!/usr/bin/python3
"""goals.py REPORT.json — the benchmark goals of alloclab, as ratios within one run.

Reads a Google Benchmark JSON report of //bench:alloclab_benchmark and prints, for each goal
whose benchmarks are in the report, the measured value, the target and a verdict:

  teardown/jemalloc  whole-resource teardown per allocation (BM_teardown_resource/devices:1,
                     N >= 64, ns_per_allocation) over one jemalloc malloc + free pair
                     (BM_anchor_jemalloc_malloc_free/bytes:64): target <= 4x, > 8x is a defect
  teardown p99/p50   BM_teardown_latency_p99 over BM_teardown_latency_p50 (same N): <= 2x
  1M/1k live         BM_teardown_scaling ns_per_allocation at 1M live over 1k live: <= 1.5x
  host bytes         BM_memory_host_bytes host_bytes_per_allocation: <= 256 bytes

With repetitions, each benchmark's median aggregate is used; else the mean of its runs. The
exit status is 0 whatever the verdicts (goals are reported, not asserted); 2 on a bad report.
Run with /usr/bin/python3 (standard library only).
"""
import json
import re
import statistics
import sys


def load(path):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    runs = {}     # run_name -> list of iteration runs
    medians = {}  # run_name -> median aggregate
    for b in report.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        name = b.get("run_name", b.get("name"))
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
        else:
            runs.setdefault(name, []).append(b)
    return report.get("context", {}), runs, medians


def value(runs, medians, name, field):
    """The benchmark's @field (median over repetitions, else mean of its runs), or None."""
    if name in medians and field in medians[name]:
        return float(medians[name][field])
    values = [float(r[field]) for r in runs.get(name, []) if field in r]
    return statistics.mean(values) if values else None


def find(runs, pattern):
    return sorted((n for n in runs if re.fullmatch(pattern, n)), key=natural)


def natural(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def verdict(measured, target, defect=None):
    if measured is None:
        return "n/a"
    if defect is not None and measured > defect:
        return "DEFECT"
    return "ok" if measured <= target else "MISSED"


def main(argv):
    if len(argv) != 2:
        print("usage: goals.py REPORT.json", file=sys.stderr)
        return 2
    try:
        context, runs, medians = load(argv[1])
    except (OSError, ValueError) as e:
        print(f"goals.py: cannot read {argv[1]}: {e}", file=sys.stderr)
        return 2
    rows = []  # (goal, benchmark, measured text, target text, verdict)

    anchor = value(runs, medians, "BM_anchor_jemalloc_malloc_free/bytes:64", "real_time")
    for name in find(runs, r"BM_teardown_resource/devices:1/allocations:(\d+)/manual_time"):
        n = int(re.search(r"allocations:(\d+)", name).group(1))
        if n < 64:
            continue
        per = value(runs, medians, name, "ns_per_allocation")
        ratio = per / anchor if per is not None and anchor else None
        text = f"{per:.1f} ns / {anchor:.1f} ns = {ratio:.1f}x" if ratio is not None else "-"
        rows.append(("teardown/jemalloc", name, text, "<= 4x (> 8x defect)", verdict(ratio, 4, 8)))

    for p99 in find(runs, r"BM_teardown_latency_p99/allocations:\d+/manual_time"):
        p50 = p99.replace("_p99/", "_p50/")
        a, b = value(runs, medians, p99, "real_time"), value(runs, medians, p50, "real_time")
        ratio = a / b if a is not None and b else None
        text = f"{a:.0f} ns / {b:.0f} ns = {ratio:.2f}x" if ratio is not None else "-"
        rows.append(("teardown p99/p50", p99.replace("/manual_time", ""), text, "<= 2x", verdict(ratio, 2)))

    scaling = {int(re.search(r"live:(\d+)", n).group(1)): n
               for n in find(runs, r"BM_teardown_scaling/live:\d+/allocations:\d+/manual_time")}
    if len(scaling) >= 2:
        lo, hi = min(scaling), max(scaling)
        a = value(runs, medians, scaling[hi], "ns_per_allocation")
        b = value(runs, medians, scaling[lo], "ns_per_allocation")
        ratio = a / b if a is not None and b else None
        text = f"{a:.1f} ns / {b:.1f} ns = {ratio:.2f}x" if ratio is not None else "-"
        rows.append((f"{hi} / {lo} live", "BM_teardown_scaling", text, "<= 1.5x", verdict(ratio, 1.5)))

    for name in find(runs, r"BM_memory_host_bytes/live:\d+/iterations:1/manual_time"):
        per = value(runs, medians, name, "host_bytes_per_allocation")
        text = f"{per:.0f} bytes" if per is not None else "-"
        rows.append(("host bytes/allocation", name.split("/iterations")[0], text, "<= 256", verdict(per, 256)))

    print(f"goals (miniport {context.get('miniport', '?')}, allocator {context.get('allocator', '?')}, "
          f"commit {context.get('git_commit', '?')}):")
    if not rows:
        print("  no goal's benchmarks in this report")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  " + "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
