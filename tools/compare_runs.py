#!/usr/bin/python3
"""compare_runs: are the benchmarks of NEW.json slower than those of OLD.json?

For each benchmark in both reports it takes one number per repetition (the rows with run_type
iteration: the ns_per_allocation counter when the row has one, as the teardown benchmarks do,
else real_time) and runs a two-sided Mann-Whitney U test (normal approximation with tie and
continuity correction, as scipy's method='asymptotic'; meant for >= 9 repetitions a side).
Change is median(new) / median(old) - 1. Verdicts:

  regression  p < alpha and change > +threshold      (the only alarm: exit status 2)
  slower      p < alpha and 0 < change <= threshold  (real, but under the threshold)
  faster      p < alpha and change < 0
  same        p >= alpha: noise can explain the difference
  missing     in one report only, or no usable repetition on a side
  anchor      with --normalize-by: an anchor benchmark, shown, not judged

With --normalize-by REGEX every other benchmark is judged relative to the anchor matching REGEX
in its own report (its samples divided by the anchor's median there): two runs recorded hours
apart on a machine whose speed changed in between (load, frequency) then raise no alarm, as
long as the anchor moved with them. The change and p-value are of those ratios; old and new
stay in ns.

The overall line is the geometric mean of new/old median ratios over the benchmarks in both.

Usage: compare_runs.py OLD.json NEW.json [--threshold PERCENT] [--alpha A] [--json OUT]
                       [--normalize-by REGEX]
Exit status: 0 no regression, 2 a regression, 1 a bad or missing report, 64 bad usage.
"""

import argparse
import re
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchdb  # noqa: E402  (the report reader, next to this file)

MIN_REPETITIONS = 9


def rank_with_ties(values):
    """Average ranks (1-based) of values; returns (ranks, sum over tie groups of t^3 - t)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    tie_term = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        average = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = average
        t = j - i + 1
        tie_term += t ** 3 - t
        i = j + 1
    return ranks, tie_term


def mann_whitney_u(x, y):
    """Two-sided Mann-Whitney U test of samples x and y. Returns (U of x, p-value), with the
    normal approximation, tie correction and continuity correction (scipy.stats.mannwhitneyu
    with method='asymptotic', use_continuity=True). Both samples need at least one value."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney_u needs at least one value in each sample")
    ranks, tie_term = rank_with_ties(list(x) + list(y))
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u2 = n1 * n2 - u1
    n = n1 + n2
    mu = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return u1, 1.0  # every value the same: no evidence of a difference
    z = (max(u1, u2) - mu - 0.5) / math.sqrt(variance)
    p = math.erfc(z / math.sqrt(2))  # 2 * (1 - Phi(z))
    return u1, min(max(p, 0.0), 1.0)


def samples_by_benchmark(report):
    """benchmark name -> list of its per-repetition metric values (ns)."""
    samples = {}
    for row in benchdb.iteration_rows(report):
        samples.setdefault(row["name"], []).append(benchdb.row_metric_ns(row))
    return samples


def anchor_of(samples, pattern, which):
    """The name of the first benchmark (sorted) of @samples matching @pattern, and its median."""
    names = sorted(n for n in samples if re.search(pattern, n))
    if not names:
        raise benchdb.BenchError(f"the {which} report has no benchmark matching the anchor '{pattern}'")
    median = benchdb.median(samples[names[0]])
    if not median or median <= 0:
        raise benchdb.BenchError(f"the {which} report's anchor {names[0]} has no positive time")
    return names[0], median


def compare(old_report, new_report, threshold=0.05, alpha=0.05, normalize_by=None):
    """Compares two reports; returns (rows, geomean ratio or None). Each row: name, old/new
    median (ns, None when missing), n_old, n_new, change (fraction), p, verdict.
    With @normalize_by (a regex naming an anchor benchmark, e.g. BM_anchor_jemalloc), every
    other benchmark's samples are divided by the anchor's median in the same report before the
    change and the U test, so a machine that is slower or faster as a whole (two runs recorded
    hours apart) moves the anchor with them and raises no alarm; anchors (BM_anchor_*) are
    shown with the verdict "anchor" and never judged."""
    old, new = samples_by_benchmark(old_report), samples_by_benchmark(new_report)
    scale_old = scale_new = 1.0
    if normalize_by:
        _, scale_old = anchor_of(old, normalize_by, "old")
        _, scale_new = anchor_of(new, normalize_by, "new")
    names = list(old) + [n for n in new if n not in old]
    rows, log_ratios = [], []
    for name in names:
        a, b = old.get(name, []), new.get(name, [])
        row = {"name": name, "n_old": len(a), "n_new": len(b),
               "old_median_ns": benchdb.median(a), "new_median_ns": benchdb.median(b),
               "change": None, "p_value": None, "verdict": "missing"}
        if normalize_by and a and b:
            if name.startswith("BM_anchor_") or re.search(normalize_by, name):
                om, nm = row["old_median_ns"], row["new_median_ns"]
                row["change"] = nm / om - 1 if om > 0 else None
                row["verdict"] = "anchor"
                rows.append(row)
                continue
            a = [v / scale_old for v in a]
            b = [v / scale_new for v in b]
        if a and b:
            _, p = mann_whitney_u(a, b)
            om, nm = benchdb.median(a), benchdb.median(b)
            change = nm / om - 1 if om > 0 else (0.0 if nm == 0 else math.inf)
            row["change"], row["p_value"] = change, p
            if p >= alpha:
                row["verdict"] = "same"
            elif change > threshold:
                row["verdict"] = "regression"
            elif change > 0:
                row["verdict"] = "slower"
            elif change < 0:
                row["verdict"] = "faster"
            else:
                row["verdict"] = "same"
            if om > 0 and nm > 0:
                log_ratios.append(math.log(nm / om))
        rows.append(row)
    geomean = math.exp(sum(log_ratios) / len(log_ratios)) if log_ratios else None
    return rows, geomean


def format_table(rows, geomean, old_name, new_name, threshold, alpha):
    lines = [f"old: {old_name}", f"new: {new_name}",
             f"metric: ns per allocation (teardown benchmarks) or real time per iteration; "
             f"median of the repetitions; Mann-Whitney U, alpha {alpha:g}, threshold "
             f"{threshold * 100:g}%", ""]
    width = max([len("benchmark")] + [len(r["name"]) for r in rows])
    lines.append(f"{'benchmark':<{width}}  {'old (ns)':>12} {'new (ns)':>12} {'change':>8}"
                 f" {'p-value':>8} {'n':>7}  verdict")

    def num(v):
        return "-" if v is None else f"{v:.2f}" if v < 100 else f"{v:.1f}"

    for r in rows:
        change = "-" if r["change"] is None else f"{r['change'] * 100:+.1f}%"
        p = "-" if r["p_value"] is None else f"{r['p_value']:.4f}"
        n = f"{r['n_old']}/{r['n_new']}"
        lines.append(f"{r['name']:<{width}}  {num(r['old_median_ns']):>12}"
                     f" {num(r['new_median_ns']):>12} {change:>8} {p:>8} {n:>7}  {r['verdict']}")
    lines.append("")
    if geomean is None:
        lines.append("overall: no benchmark in both reports")
    else:
        lines.append(f"overall (geometric mean of new/old): {geomean:.4f}"
                     f" ({(geomean - 1) * 100:+.1f}%)")
    counts = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    lines.append("verdicts: " + ", ".join(f"{counts[v]} {v}" for v in
                                          ("regression", "slower", "same", "faster", "missing", "anchor")
                                          if v in counts))
    few = [r["name"] for r in rows if r["verdict"] != "missing"
           and min(r["n_old"], r["n_new"]) < MIN_REPETITIONS]
    if few:
        lines.append(f"warning: {len(few)} benchmark(s) have fewer than {MIN_REPETITIONS}"
                     " repetitions on a side: the p-values are rough and small changes cannot"
                     " reach significance (run with --repetitions 9 or more)")
    return lines


def _percent(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a percentage such as 5 or 2.5, not '{text}'")
    if not (0 <= value < 1000) or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be from 0 to 1000 (percent), not '{text}'")
    return value / 100


def _alpha(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, not '{text}'")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), not '{text}'")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(64)


def main(argv=None):
    parser = _Parser(prog="compare_runs.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the baseline Google Benchmark JSON report")
    parser.add_argument("new", help="the report to judge")
    parser.add_argument("--threshold", type=_percent, default=0.05,
                        help="a significant slowdown larger than this percentage is a"
                        " regression (default 5)")
    parser.add_argument("--alpha", type=_alpha, default=0.05,
                        help="significance level of the U test (default 0.05)")
    parser.add_argument("--json", metavar="OUT", help="also write the verdicts as JSON")
    parser.add_argument("--normalize-by", metavar="REGEX",
                        help="judge every benchmark relative to the anchor benchmark matching REGEX"
                        " in the same report (e.g. BM_anchor_jemalloc): for runs recorded at"
                        " different times, when the machine itself may have changed speed")
    args = parser.parse_args(argv)
    if args.normalize_by is not None:
        try:
            re.compile(args.normalize_by)
        except re.error as e:
            parser.error(f"--normalize-by: not a regular expression: {e}")
    try:
        old_report = benchdb.load_report(args.old)
        new_report = benchdb.load_report(args.new)
        rows, geomean = compare(old_report, new_report, args.threshold, args.alpha, args.normalize_by)
        if not rows:
            raise benchdb.BenchError("neither report holds a benchmark result")
        for line in format_table(rows, geomean, args.old, args.new, args.threshold, args.alpha):
            print(line)
        regressions = [r["name"] for r in rows if r["verdict"] == "regression"]
        if args.json:
            benchdb.write_json_atomically(args.json, {
                "old": os.path.abspath(args.old), "new": os.path.abspath(args.new),
                "old_commit": old_report["context"].get("git_commit"),
                "new_commit": new_report["context"].get("git_commit"),
                "threshold": args.threshold, "alpha": args.alpha,
                "metric": "median ns: ns_per_allocation if present, else real_time"
                          + (f"; judged relative to the anchor matching '{args.normalize_by}'" if args.normalize_by else ""),
                "geomean_ratio": geomean, "regressions": regressions, "benchmarks": rows})
    except benchdb.BenchError as e:
        print(f"compare_runs: {e}", file=sys.stderr)
        return 1
    if regressions:
        print(f"REGRESSION: {len(regressions)} benchmark(s) significantly slower than the"
              f" {args.threshold * 100:g}% threshold: " + ", ".join(regressions))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
