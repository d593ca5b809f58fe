"""Scaling benchmark: wall time per network spike of the SparseProp engines (event queue: tournament
tree, the default, or d-ary heap) and of the dense (O(N)) engine.

Runs the SparseProp reference network (balanced, inhibitory, procedural fixed out-degree, recording
on) for N in {1e3, 1e4, 1e5, 1e6} (1e7 with --big) at K = 100 with all three engines (dense up to
1e6), for K in {10, 30, 100, 300, 1000} at N = 1e5 (tree), and LIF vs QIF (tree and heap at 1e5 and
1e6); every configuration is measured in the same process, interleaved over `--repeats` rounds, and
the median is reported (the machines are shared and noisy). Compared configurations run next to
each other in every round, and the summary's ratios are medians of these per-round ratios.

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


def measure(configs, repeats, quick):
    """Median ns per spike of every configuration, the configurations interleaved within each round
    (so that the host's load drifts over all of them alike). Each starts from a warmed-up state."""
    nets, states, spikes, samples = {}, {}, {}, {c: [] for c in configs}
    for c in configs:
        model, n, k, engine = c
        nets[c] = sp.balanced_network(n=n, k=k, model=model)
        spikes[c] = spikes_for(n, k, engine, quick)
        if engine == "dense" and n >= 10**6:
            spikes[c] = 300 if quick else 2000
        warmup = min(max(n // 2, 1000), 200_000) if engine != "dense" else min(spikes[c], 2000)
        states[c] = sp.simulate(nets[c], spikes=warmup, engine=engine, progress=False).final_state
    rows = {}
    for _ in range(repeats):
        for c in configs:
            res = sp.simulate(nets[c], spikes=spikes[c], engine=c[3], state=states[c], progress=False)
            samples[c].append(res.ns_per_spike)
            rows[c] = {"model": c[0], "n": c[1], "k": c[2], "engine": c[3], "spikes": spikes[c],
                       "ns_per_spike": statistics.median(samples[c]), "samples": samples[c],
                       "rate_hz": res.mean_rate()}
    for c in configs:
        print(f"{c[0]} n={c[1]:>8} k={c[2]:>4} {c[3]:5}: {rows[c]['ns_per_spike']:10.0f} ns/spike", file=sys.stderr)
    return [rows[c] for c in configs]


def spikes_for(n, k, engine, quick):
    budget = 0.3 if quick else 1.5              # seconds per sample, roughly
    per_spike = 4e-8 * max(k, 30) if engine != "dense" else 1.2e-9 * n + 3e-6
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
    # configurations that are compared sit next to each other in a round, so that the host's load
    # drifts as little as possible between the two halves of a ratio
    configs = []
    for n in ns:
        for engine in ("tree", "heap"):
            configs.append(("lif", n, 100, engine))
            if n in (10**5, 10**6):
                configs.append(("qif", n, 100, engine))
        if n <= 10**6:
            configs.append(("lif", n, 100, "dense"))
    configs += [("lif", 10**5, k, engine) for k in (10, 30, 300, 1000) for engine in ("tree", "heap")]
    rows = measure(configs, repeats, args.quick)
    by_config = {(r["model"], r["n"], r["k"], r["engine"]): r for r in rows}

    def get(model, n, k, engine):
        return by_config[(model, n, k, engine)]["ns_per_spike"]

    def paired(top, bottom):
        """Median over the rounds of the ratio top/bottom measured side by side in each round."""
        return statistics.median(a / b for a, b in zip(by_config[top]["samples"], by_config[bottom]["samples"]))

    tree = {n: get("lif", n, 100, "tree") for n in ns}
    summary = {
        "lif_tree_us_per_spike_n1e5": tree[10**5] / 1e3,
        "lif_tree_us_per_spike_n1e6": tree[10**6] / 1e3,
        "tree_growth_1e3_to_1e6": tree[10**6] / tree[10**3],
        "heap_growth_1e3_to_1e6": get("lif", 10**6, 100, "heap") / get("lif", 10**3, 100, "heap"),
        "tree_over_heap": {str(n): paired(("lif", n, 100, "tree"), ("lif", n, 100, "heap")) for n in ns},
        "tree_over_heap_k_n1e5": {str(k): paired(("lif", 10**5, k, "tree"), ("lif", 10**5, k, "heap"))
                                  for k in (10, 30, 100, 300, 1000)},
        "qif_over_lif_n1e5": paired(("qif", 10**5, 100, "tree"), ("lif", 10**5, 100, "tree")),
        "qif_over_lif_n1e6": paired(("qif", 10**6, 100, "tree"), ("lif", 10**6, 100, "tree")),
        "qif_over_lif_heap_n1e5": paired(("qif", 10**5, 100, "heap"), ("lif", 10**5, 100, "heap")),
        "qif_over_lif_heap_n1e6": paired(("qif", 10**6, 100, "heap"), ("lif", 10**6, 100, "heap")),
        "speedup_vs_dense": {str(n): paired(("lif", n, 100, "dense"), ("lif", n, 100, "tree"))
                             for n in ns if n <= 10**6},
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
    for engine, style in (("tree", "o-"), ("heap", "d:")):
        pts = sorted((r["k"], r["ns_per_spike"]) for r in rows
                     if r["model"] == "lif" and r["engine"] == engine and r["n"] == 10**5)
        x, y = zip(*pts)
        b.loglog(x, np.array(y) / 1e3, style, label=f"LIF {engine}")
    b.set_xlabel("synapses per neuron K")
    b.set_ylabel("µs per network spike")
    b.set_title("N = 100,000")
    b.grid(True, which="both", alpha=0.3)
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
