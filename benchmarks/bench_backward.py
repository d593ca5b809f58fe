"""Backward vs forward cost per spike (exact gradients), and tape memory per spike.

    python benchmarks/bench_backward.py [--n 10000 100000 1000000] [--k 100] [--spikes 200000]

The network is the seed's balanced LIF network with explicit CSR connectivity (gradients need
stored weights). Forward = simulate(..., tape=True) after a warm-up; backward = grad.vjp with a
random dL/d(spike time). Prints one JSON line per N and writes benchmarks/results/backward.json.
"""
import argparse
import json
import os
import time

import numpy as np

import sparseprop as sp
from sparseprop.grad import vjp


def network(n, k, seed=1):
    rng = np.random.default_rng(seed)
    indptr = np.arange(n + 1, dtype=np.int64) * k
    pre = np.repeat(np.arange(n), k)
    indices = ((pre + 1 + rng.integers(0, n - 1, n * k)) % n).astype(np.int32)   # never j itself
    conn = sp.SparseConnectivity(indptr, indices, -1.0 / np.sqrt(k))
    drive = 1.0 + sp.balance_drive(k, 1.0, 1.0, 0.01)
    return sp.Network(sp.LIF(), n, drive, 0.01, conn)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--spikes", type=int, default=200_000)
    args = ap.parse_args(argv)
    rows = []
    for n in args.n:
        net = network(n, args.k)
        warm = sp.simulate(net, spikes=min(n, 100_000), progress=False)
        v0 = warm.final_voltages()
        t0 = time.perf_counter()
        plain = sp.simulate(net, spikes=args.spikes, initial_voltages=v0, progress=False)
        fwd_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = sp.simulate(net, spikes=args.spikes, initial_voltages=v0, tape=True, progress=False)
        fwd = time.perf_counter() - t0
        g_t = np.random.default_rng(0).normal(size=res.n_spikes)
        t0 = time.perf_counter()
        vjp(res, g_t)
        bwd = time.perf_counter() - t0
        tape_bytes = sum(a.nbytes for a in res.tape.values())
        row = {"n": n, "k": args.k, "spikes": res.n_spikes,
               "forward_ns_per_spike": 1e9 * fwd / res.n_spikes,
               "forward_untaped_ns_per_spike": 1e9 * fwd_plain / plain.n_spikes,
               "backward_ns_per_spike": 1e9 * bwd / res.n_spikes, "backward_over_forward": bwd / fwd,
               "tape_bytes_per_spike": tape_bytes / res.n_spikes}
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "backward.json")
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
