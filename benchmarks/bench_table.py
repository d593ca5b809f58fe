"""Cost of the table model (issue 4): PTC evaluation and network ns per spike, EIF table vs LIF.

    python benchmarks/bench_table.py                     # defaults: N = 1e5, K = 100, 5 rounds
    python benchmarks/bench_table.py --rounds 9 --spikes 500000 --out bench_table.json

1. PTC evaluation, each in a compiled nogil loop over 2e5 random phases (sparseprop._core._chebyshev
   bench_* kernels), ns per evaluation:
   - ``lif_analytic``: g(phi, w) = -omega ln(exp(-phi/omega) - w/I), I = 1.1 (what the issue compares with);
   - ``<table>_two_map``: the general table PTC of the engine, phase -> remaining time T -> V(T) (inverse
     fit) -> V + w -> T(V + w) (forward fit) -> phase, for the shipped EIF tables (any weight);
   - ``<table>_fused``: the engine's single-weight fast path G_w(T) (one polynomial, bits-of-T grid).
   w = -0.1 (the seed weight); ``two_map_random_w`` uses w uniform in [-0.3, 0).
2. Network: the seed LIF network (``sp.balanced_network(n, k)``) against the seed EIF network
   (``model="eif"``: the shipped interp table, drive 0.1) at the same N and K: ``eif`` (the engine's
   default, fused single-weight map), ``eif_two_map`` (fused map switched off: what heterogeneous
   weights cost), and both for the Chebyshev table. Every variant is warmed up (first run) and then
   measured as a continuation of ``--spikes`` spikes, variants interleaved in every round; ns per
   spike, medians and ratios to LIF.

The machines are shared (2 cores): all numbers are medians over interleaved rounds. Prints one JSON object.
"""
import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np

import sparseprop as sp
from sparseprop._core import _chebyshev as C
from sparseprop._core import _models

TABLES = ("eif_seed_interp", "eif_seed_chebyshev")


def _median(xs):
    return float(statistics.median(xs))


def bench_ptc(rounds, n=200_000, reps=10, seed=1):
    rng = np.random.default_rng(seed)
    phi = rng.random(n)
    w = np.full(n, -0.1)
    w_rand = -0.3 * rng.random(n)
    comp = {name: sp.TableNeuron(name).compiled for name in TABLES}
    fused = {name: c.fused(-0.1) for name, c in comp.items()}
    kernels = {"lif_analytic": lambda: C.bench_lif_ptc(1.1, phi, w, reps)}
    for name, c in comp.items():
        kernels[f"{name}_two_map"] = (lambda c=c: C.bench_table_ptc(c, phi, w, reps))
        kernels[f"{name}_two_map_random_w"] = (lambda c=c: C.bench_table_ptc(c, phi, w_rand, reps))
        if fused[name] is not None:
            kernels[f"{name}_fused"] = (lambda c=c, f=fused[name]: C.bench_table_ptc(c, phi, w, reps, f))
    times = {k: [] for k in kernels}
    for f in kernels.values():
        f()                                                     # warm up
    for _ in range(rounds):
        for key, f in kernels.items():
            t0 = time.perf_counter()
            f()
            times[key].append((time.perf_counter() - t0) / (n * reps) * 1e9)
    med = {k: _median(v) for k, v in times.items()}
    base = med["lif_analytic"]
    return {"ns_per_eval": med, "ratio_to_lif_analytic": {k: v / base for k, v in med.items()},
            "samples": n * reps, "fused_maps": {k: (f.info if f is not None else None) for k, f in fused.items()}}


def bench_network(n, k, spikes, rounds, warmup):
    eif = sp.balanced_network(n=n, k=k, model="eif")          # the shipped default (interp table)
    cheb = sp.balanced_network(n=n, k=k, model=sp.TableNeuron("eif_seed_chebyshev"))
    variants = {
        "lif": (sp.balanced_network(n=n, k=k), True),
        "eif": (eif, True),                                      # fused single-weight map
        "eif_two_map": (eif, False),                             # the path for heterogeneous weights
        "eif_chebyshev": (cheb, True),
        "eif_chebyshev_two_map": (cheb, False),
    }
    states = {}
    for key, (net, fused) in variants.items():                  # warm up (page faults, fused fit)
        _models.FUSED_ENABLED = fused
        states[key] = sp.simulate(net, spikes=warmup, record=False, progress=False).final_state
    ns = {key: [] for key in variants}
    rate = {}
    try:
        for _ in range(rounds):
            for key, (net, fused) in variants.items():
                _models.FUSED_ENABLED = fused
                r = sp.simulate(net, spikes=spikes, state=states[key], record=False, progress=False)
                states[key] = r.final_state
                ns[key].append(r.ns_per_spike)
                rate[key] = r.mean_rate()
    finally:
        _models.FUSED_ENABLED = True
    med = {key: _median(v) for key, v in ns.items()}
    return {"n": n, "k": k, "spikes_per_round": spikes, "rounds": rounds,
            "eif_table": variants["eif"][0].model.params()["table"],
            "ns_per_spike": med, "ratio_to_lif": {key: v / med["lif"] for key, v in med.items()},
            "ns_per_spike_all": ns, "rate_hz": rate,
            "extra_ns_per_synaptic_event": {key: (v - med["lif"]) / k for key, v in med.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--spikes", type=int, default=300_000, help="measured spikes per variant and round")
    ap.add_argument("--warmup", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ptc-rounds", type=int, default=9)
    ap.add_argument("--skip-network", action="store_true")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = {"benchmark": "table_model", "machine": platform.processor() or platform.machine(),
           "python": platform.python_version(), "sparseprop": sp.__version__}
    out["ptc"] = bench_ptc(args.ptc_rounds)
    if not args.skip_network:
        out["network"] = bench_network(args.n, args.k, args.spikes, args.rounds, args.warmup)
    out["wall_s"] = time.perf_counter() - t0
    text = json.dumps(out)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
