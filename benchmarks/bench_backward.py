"""Backward vs forward cost per spike (exact gradients), tape memory per spike, and the
checkpointed mode (bounded tape memory).

    python benchmarks/bench_backward.py [--n 10000 100000 1000000] [--k 100] [--spikes 1000000]
                                        [--segments 0] [--warmup 1.0] [--repeat 2]

The network is the seed's balanced LIF network with explicit CSR connectivity (gradients need
stored weights). It is first warmed up (``--warmup`` spikes per neuron, from random phases to the
balanced state), then from the warmed-up voltages:

* forward untaped / taped = ``simulate(..., spikes=M)`` without / with ``tape=True`` (the whole
  call: compilation, the network's fingerprint -- an O(synapses) hash -- and the engine loop);
* backward = ``grad.vjp`` of the taped run with a random dL/d(spike time) (the whole call);
* checkpointed = ``grad.simulate_checkpointed(..., checkpoint_spikes=S)`` and its ``vjp`` (taped
  re-simulation of each segment + its sweep), with the largest segment tape, the stored states,
  and the largest difference from the one-shot gradients. By default S minimises peak memory:
  about sqrt(8 n M / 33) (M / S states of 8 n bytes against one tape of 33 S bytes).

Times are the best of ``--repeat`` runs in CPU seconds of this process (the machines these run on
are shared; the engine and the sweep are single-threaded), wall-clock times under "wall".
Prints one JSON line per N and writes benchmarks/results/backward.json.
"""
import argparse
import json
import os
import platform
import time

import numpy as np

import sparseprop as sp
from sparseprop.grad import simulate_checkpointed, vjp


def network(n, k, seed=1):
    rng = np.random.default_rng(seed)
    indptr = np.arange(n + 1, dtype=np.int64) * k
    indices = np.empty(n * k, dtype=np.int32)
    rows = max(1, (1 << 22) // k)                 # in chunks: N = 10^6 without GBs of temporaries
    for a in range(0, n, rows):
        b = min(n, a + rows)
        pre = np.repeat(np.arange(a, b), k)
        indices[a * k:b * k] = (pre + 1 + rng.integers(0, n - 1, pre.shape[0])) % n   # never j itself
    conn = sp.SparseConnectivity(indptr, indices, -1.0 / np.sqrt(k))
    drive = 1.0 + sp.balance_drive(k, 1.0, 1.0, 0.01)
    return sp.Network(sp.LIF(), n, drive, 0.01, conn)


def _max_rel_diff(g1, g2):
    worst = 0.0
    for name in ("weights", "drive", "initial_voltages"):
        a, b = getattr(g1, name), getattr(g2, name)
        scale = np.max(np.abs(a))
        if scale > 0:
            worst = max(worst, float(np.max(np.abs(a - b)) / scale))
    return worst


def timed(fn, repeat=1):
    """Run fn() `repeat` times: (last result, best wall s, best CPU s of this process). On a shared
    machine the CPU time is the robust measure (the core runs single-threaded, nogil)."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        out = None
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return out, best_wall, best_cpu


def bench(n, k, spikes, segments, warmup, repeat):
    net, build, _ = timed(lambda: network(n, k))
    fingerprint, fp_wall, fp_cpu = timed(net.fingerprint)
    warm = sp.simulate(net, spikes=max(1, int(warmup * n)), progress=False, record=False)
    v0 = warm.final_voltages()

    plain, fwd_plain_wall, fwd_plain = timed(
        lambda: sp.simulate(net, spikes=spikes, initial_voltages=v0, progress=False), repeat)
    res, fwd_wall, fwd = timed(
        lambda: sp.simulate(net, spikes=spikes, initial_voltages=v0, tape=True, progress=False), repeat)
    assert np.array_equal(res.neurons, plain.neurons)
    m = res.n_spikes
    g_t = np.random.default_rng(0).normal(size=m)
    g, bwd_wall, bwd = timed(lambda: vjp(res, g_t), repeat)
    tape_bytes = sum(a.nbytes for a in res.tape.values())
    del res

    if not segments:
        # the memory optimum: M / S stored states of b n bytes against one S-spike tape
        b = 16 if net.uses_event_sources() else 8
        segments = max(1, int(round(m / np.sqrt(b * n * m / (tape_bytes / m)))))
    S = -(-spikes // segments)
    cres, ck_fwd_wall, ck_fwd = timed(
        lambda: simulate_checkpointed(net, spikes=spikes, initial_voltages=v0, checkpoint_spikes=S))
    gc, ck_vjp_wall, ck_vjp = timed(lambda: vjp(cres, g_t))
    st = cres.checkpoints.stats
    ns = 1e9 / m
    return {
        "n": n, "k": k, "spikes": m, "sim_time_s": plain.t_end - plain.t_start, "repeat": repeat,
        "forward_untaped_ns_per_spike": fwd_plain * ns, "forward_ns_per_spike": fwd * ns,
        "backward_ns_per_spike": bwd * ns, "backward_over_forward": bwd / fwd,
        "backward_over_untaped_forward": bwd / fwd_plain,
        "wall": {"forward_untaped_ns_per_spike": fwd_plain_wall * ns, "forward_ns_per_spike": fwd_wall * ns,
                 "backward_ns_per_spike": bwd_wall * ns, "backward_over_forward": bwd_wall / fwd_wall},
        "tape_bytes_per_spike": tape_bytes / m, "tape_bytes": tape_bytes,
        "network_build_s": build, "network_fingerprint_s": fp_cpu, "fingerprint": fingerprint,
        "checkpoint": {
            "checkpoint_spikes": S, "segments": st["segments"],
            "forward_s": ck_fwd, "vjp_s": ck_vjp, "total_s": ck_fwd + ck_vjp,
            "wall_total_s": ck_fwd_wall + ck_vjp_wall,
            "recompute_wall_s": st["recompute_s"], "sweeps_wall_s": st["backward_s"],
            "one_shot_total_s": fwd + bwd, "total_over_one_shot": (ck_fwd + ck_vjp) / (fwd + bwd),
            "peak_tape_bytes": st["peak_tape_bytes"], "peak_tape_records": st["peak_tape_records"],
            "checkpoint_bytes": st["checkpoint_bytes"],
            "peak_tape_over_one_shot": st["peak_tape_bytes"] / tape_bytes,
            "peak_memory_over_one_shot": (st["peak_tape_bytes"] + st["checkpoint_bytes"]) / tape_bytes,
            "max_rel_diff_vs_one_shot": _max_rel_diff(g, gc),
        },
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--spikes", type=int, default=1_000_000)
    ap.add_argument("--segments", type=int, default=0,
                    help="segments of the checkpointed mode (0: the memory optimum, S = sqrt(8 n M / 33))")
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up spikes per neuron")
    ap.add_argument("--repeat", type=int, default=2, help="best of this many forward/backward runs")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "backward.json"))
    args = ap.parse_args(argv)
    rows = []
    for n in args.n:
        row = bench(n, args.k, args.spikes, args.segments, args.warmup, args.repeat)
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = {"command": "python benchmarks/bench_backward.py",
           "args": {key: val for key, val in vars(args).items() if key != "out"},
           "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "sparseprop": sp.__version__, "rows": rows}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
