"""Scaling benchmark: wall time per network spike of the SparseProp engines (event queue: tournament
tree, the default, or d-ary heap) and of the dense (O(N)) engine.

Runs the SparseProp reference network (balanced, inhibitory, procedural fixed out-degree, recording
on) for N in {1e3, 1e4, 1e5, 1e6} (1e7 with --big) at K = 100 with all three engines (dense up to
1e6), for K in {10, 30, 100, 300, 1000} at N = 1e5 (tree), and LIF vs QIF (tree and heap at 1e5 and
1e6); every configuration is measured in the same process, interleaved over `--repeats` rounds, and
the median is reported (the machines are shared and noisy).

    python benchmarks/bench_scaling.py [--quick] [--big] [--out benchmarks/results/scaling.json]

Prints one JSON document and writes it to --out, plus a PNG next to it.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

import sparseprop as sp


def measure(model, n, k, engine, spikes, repeats, warmup):
    net = sp.balanced_network(n=n, k=k, model=model)
    samples = []
    for _ in range(repeats):
        first = sp.simulate(net, spikes=warmup, engine=engine, progress=False)   # transient + caches
        res = sp.simulate(net, spikes=spikes, engine=engine, state=first.final_state, progress=False)
        samples.append(res.ns_per_spike)
    return {"model": model, "n": n, "k": k, "engine": engine, "spikes": spikes,
            "ns_per_spike": statistics.median(samples), "samples": samples,
            "rate_hz": res.mean_rate()}


def spikes_for(n, engine, quick):
    budget = 0.3 if quick else 1.5              # seconds per sample, roughly
    per_spike = 4e-6 if engine != "dense" else 1.2e-9 * n + 3e-6
    return int(min(max(budget / per_spike, 2000), 2_000_000))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--big", action="store_true", help="include N = 1e7")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "scaling.json"))
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else args.repeats

    ns = [10**3, 10**4, 10**5, 10**6] + ([10**7] if args.big else [])
    configs = [("lif", n, 100, engine) for engine in ("tree", "heap") for n in ns]
    configs += [("lif", n, 100, "dense") for n in ns if n <= 10**6]
    configs += [("lif", 10**5, k, "tree") for k in (10, 30, 300, 1000)]
    configs += [("qif", n, 100, engine) for engine in ("tree", "heap") for n in (10**5, 10**6)]
    rows = []
    for model, n, k, engine in configs:
        spikes = spikes_for(n, engine, args.quick)
        if engine == "dense" and n >= 10**6:
            spikes = 300 if args.quick else 2000
        warmup = min(max(n // 2, 1000), 200_000) if engine != "dense" else min(spikes, 2000)
        row = measure(model, n, k, engine, spikes, repeats, warmup)
        rows.append(row)
        print(f"{model} n={n:>8} k={k:>4} {engine:5}: {row['ns_per_spike']:10.0f} ns/spike", file=sys.stderr)

    def get(model, n, k, engine):
        return next(r["ns_per_spike"] for r in rows if (r["model"], r["n"], r["k"], r["engine"]) == (model, n, k, engine))

    tree = {n: get("lif", n, 100, "tree") for n in ns}
    summary = {
        "lif_tree_us_per_spike_n1e5": tree[10**5] / 1e3,
        "lif_tree_us_per_spike_n1e6": tree[10**6] / 1e3,
        "tree_growth_1e3_to_1e6": tree[10**6] / tree[10**3],
        "heap_growth_1e3_to_1e6": get("lif", 10**6, 100, "heap") / get("lif", 10**3, 100, "heap"),
        "tree_over_heap": {str(n): tree[n] / get("lif", n, 100, "heap") for n in ns},
        "qif_over_lif_n1e5": get("qif", 10**5, 100, "tree") / tree[10**5],
        "qif_over_lif_n1e6": get("qif", 10**6, 100, "tree") / tree[10**6],
        "speedup_vs_dense": {str(n): get("lif", n, 100, "dense") / tree[n] for n in ns if n <= 10**6},
    }
    doc = {"benchmark": "scaling", "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
           "sparseprop": sp.__version__, "repeats": repeats, "quick": args.quick,
           "summary": summary, "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    print(json.dumps(doc))
    try:
        plot(rows, ns, os.path.splitext(args.out)[0] + ".png")
    except ImportError:
        print("matplotlib not installed: no figure", file=sys.stderr)
    return 0


def plot(rows, ns, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for model, engine, style in (("lif", "tree", "o-"), ("lif", "heap", "d:"), ("lif", "dense", "s--"),
                                 ("qif", "tree", "^-")):
        pts = sorted((r["n"], r["ns_per_spike"]) for r in rows
                     if r["model"] == model and r["engine"] == engine and r["k"] == 100)
        if pts:
            x, y = zip(*pts)
            a.loglog(x, np.array(y) / 1e3, style, label=f"{model.upper()} {engine}")
    a.set_xlabel("neurons N")
    a.set_ylabel("µs per network spike")
    a.set_title("K = 100")
    a.legend()
    a.grid(True, which="both", alpha=0.3)
    pts = sorted((r["k"], r["ns_per_spike"]) for r in rows
                 if r["model"] == "lif" and r["engine"] == "tree" and r["n"] == 10**5)
    x, y = zip(*pts)
    b.loglog(x, np.array(y) / 1e3, "o-", label="LIF tree")
    b.set_xlabel("synapses per neuron K")
    b.set_ylabel("µs per network spike")
    b.set_title("N = 100,000")
    b.grid(True, which="both", alpha=0.3)
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
