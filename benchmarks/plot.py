#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""Draws a Google Benchmark JSON file as a PNG bar chart, one bar per benchmark.

  /usr/bin/python3 benchmarks/plot.py in.json out.png [--filter REGEX] [--title T]
                                      [--baseline REGEX]

Each benchmark is drawn by the first of these it reports: the FLOP/s counter (as GFLOP/s),
bytes_per_second (as GB/s), real_time (in the file's time unit, lower is better). Benchmarks
measured in different quantities get one panel each. With repetitions, the median aggregate is
used when the file has one (--benchmark_report_aggregates_only), else the median of the
repetitions. --baseline names one benchmark (first match); every bar in its panel is then also
labelled with its ratio to it. Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import math
import os
import re
import statistics
import sys

# (key in the JSON entry, axis label, scale, higher is better)
METRICS = [
    ("FLOP/s", "GFLOP/s", 1e-9, True),
    ("bytes_per_second", "GB/s", 1e-9, True),
    ("real_time", None, None, False),
]
TIME_SCALE = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def fail(msg):
    print(f"plot.py: {msg}", file=sys.stderr)
    sys.exit(2)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    except (ValueError, UnicodeDecodeError) as e:
        fail(f"{path} is not valid JSON: {e}")
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        fail(f"{path} has no 'benchmarks' list (is it a --benchmark_out JSON file?)")
    return doc


def metric_of(entry):
    """(metric index, value in seconds or raw units) for one JSON entry, or None."""
    for i, (key, _, _, _) in enumerate(METRICS):
        v = entry.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            if key == "real_time":
                unit = entry.get("time_unit", "ns")
                if unit not in TIME_SCALE:
                    return None
                return i, v * TIME_SCALE[unit]
            return i, float(v)
    return None


def collect(doc, pattern):
    """Ordered list of (name, metric index, value): medians per benchmark."""
    order = []
    runs = {}  # name -> {"median": (i, v) or None, "iters": [(i, v)]}
    for e in doc["benchmarks"]:
        if not isinstance(e, dict) or e.get("error_occurred"):
            continue
        name = e.get("run_name") or e.get("name")
        if not isinstance(name, str) or (pattern and not pattern.search(name)):
            continue
        if name not in runs:
            runs[name] = {"median": None, "iters": []}
            order.append(name)
        m = metric_of(e)
        if m is None:
            continue
        if e.get("run_type") == "aggregate":
            if e.get("aggregate_name") == "median":
                runs[name]["median"] = m
        else:
            runs[name]["iters"].append(m)
    rows = []
    for name in order:
        r = runs[name]
        if r["median"] is not None:
            rows.append((name, *r["median"]))
        elif r["iters"]:
            i = min(m for m, _ in r["iters"])
            rows.append((name, i, statistics.median(v for m, v in r["iters"] if m == i)))
    return rows


def time_unit(values):
    """A readable unit for times given in seconds: (label, scale)."""
    top = max(values) if values else 1.0
    for label, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if top >= scale:
            return label, scale
    return "ns", 1e-9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", help="Google Benchmark JSON (--benchmark_out_format=json)")
    ap.add_argument("output", help="PNG file to write")
    ap.add_argument("--filter", help="only benchmarks whose name matches this regex")
    ap.add_argument("--title", help="chart title (default: the input file name and the machine)")
    ap.add_argument("--baseline", help="label bars with their ratio to the first match of this regex")
    args = ap.parse_args()

    try:
        pattern = re.compile(args.filter) if args.filter else None
        baseline = re.compile(args.baseline) if args.baseline else None
    except re.error as e:
        fail(f"bad regular expression: {e}")
    doc = load(args.input)
    rows = collect(doc, pattern)
    if not rows:
        fail(f"no benchmark in {args.input}"
             + (f" matches --filter {args.filter!r}" if args.filter else "")
             + " (or none has a FLOP/s, bytes_per_second or real_time value)")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("needs matplotlib: run it with /usr/bin/python3 (apt-get install python3-matplotlib)")

    panels = [i for i in range(len(METRICS)) if any(m == i for _, m, _ in rows)]
    heights = [max(1, sum(1 for _, m, _ in rows if m == i)) for i in panels]
    fig_h = 1.2 + 0.38 * sum(heights) + 0.9 * len(panels)
    width = 10.0
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, fig_h), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, i in zip(axes[:, 0], panels):
        key, label, scale, higher_better = METRICS[i]
        sel = [(n, v) for n, m, v in rows if m == i]
        values = [v for _, v in sel]
        if key == "real_time":
            label, scale = time_unit(values)
            label = f"real time ({label}, lower is better)"
            shown = [v / scale for v in values]
        else:
            shown = [v * scale for v in values]
            label = f"{label} (higher is better)"
        names = [n for n, _ in sel]
        y = list(range(len(sel)))
        color = "#4C72B0" if higher_better else "#DD8452"
        base = None
        if baseline:
            for n, v in zip(names, shown):
                if baseline.search(n):
                    base = v
                    break
        colors = [color] * len(sel)
        if base is not None:
            colors = ["#55A868" if baseline.search(n) and v == base else color
                      for n, v in zip(names, shown)]
        ax.barh(y, shown, color=colors)
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        top = max(shown) if shown else 1.0
        ax.set_xlim(0, top * 1.25 if top > 0 else 1.0)
        for yy, v in zip(y, shown):
            text = f"{v:.3g}"
            if base:
                text += f"  (x{v / base:.2f}{'' if higher_better else ' time'})"
            ax.text(v, yy, " " + text, va="center", fontsize=8)

    ctx = doc.get("context", {}) if isinstance(doc.get("context"), dict) else {}
    if args.title:
        title = args.title
    else:
        bits = [os.path.basename(args.input)]
        if ctx.get("host_name"):
            bits.append(str(ctx["host_name"]))
        if ctx.get("num_cpus"):
            bits.append(f"{ctx['num_cpus']} CPUs")
        if ctx.get("attnkit.arch"):
            bits.append(str(ctx["attnkit.arch"]))
        title = " | ".join(bits)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    try:
        fig.savefig(args.output, dpi=110)
    except OSError as e:
        fail(f"cannot write {args.output}: {e.strerror}")
    print(f"plot.py: wrote {args.output} ({len(rows)} benchmarks)")


if __name__ == "__main__":
    main()
