"""Gradient check: `grad.vjp` against central finite differences on a random LIF network.

``sparseprop gradcheck --json`` runs it and prints one JSON line with ``max_rel_err``.
"""
import json
import time

import numpy as np

from sparseprop.grad import vjp
from sparseprop.inputs import SpikeTrainInput
from sparseprop.network import Network, SparseConnectivity
from sparseprop._core._models import LIF
from sparseprop.simulation import simulate


DELAYS = ("none", "homogeneous", "few", "many")


def random_problem(n=40, p=0.2, w_std=0.15, n_inputs=3, n_input_spikes=10, refractory=0.0, seed=0,
                   tau=0.01, t_max=0.05, delays="none"):
    """A random LIF network (mixed-sign weights, heterogeneous drive, some neurons below threshold,
    given input spikes) with initial voltages and a random linear loss on spike times and final
    voltages. Returns a dict of parameters and a function building the network from them.

    delays: "none"; "homogeneous" (2 ms for every synapse); "few" (per synapse from {0, 1, 2.5} ms,
    FIFOs and zero-delay runs; input projections 0.5 ms); "many" (per synapse uniform in
    [0.5, 3] ms: the pending-delivery heap)."""
    if delays not in DELAYS:
        raise ValueError(f"delays: expected one of {DELAYS}, got {delays!r}")
    rng = np.random.default_rng(seed)
    W = (rng.random((n, n)) < p) * rng.normal(0.0, w_std, (n, n))
    np.fill_diagonal(W, 0.0)
    conn = SparseConnectivity.from_matrix(W)
    syn_delays = {"none": None, "homogeneous": None,
                  "few": rng.choice([0.0, 1e-3, 2.5e-3], conn.indices.size),
                  "many": rng.uniform(0.5e-3, 3e-3, conn.indices.size)}[delays]
    delay = 2e-3 if delays == "homogeneous" else 0.0
    drive = rng.uniform(1.05, 1.5, n)
    drive[: max(1, n // 8)] = rng.uniform(0.5, 0.95, max(1, n // 8))
    per = 4
    in_conn = SparseConnectivity(np.arange(n_inputs + 1) * per, rng.integers(0, n, n_inputs * per),
                                 rng.normal(0.2, 0.1, n_inputs * per), n_post=n)
    in_delays = None if delays == "none" else rng.choice([0.0, 0.5e-3], n_inputs * per)
    times = np.sort(rng.random(n_input_spikes) * 0.6 * t_max)
    sources = rng.integers(0, n_inputs, n_input_spikes)
    params = {"weights": conn.weights.copy(), "drive": drive, "input_weights": in_conn.weights.copy(),
              "initial_voltages": rng.uniform(0.0, 0.9, n)}

    def build(pr):
        c = SparseConnectivity(conn.indptr, conn.indices, pr["weights"], delays=syn_delays)
        ic = SparseConnectivity(in_conn.indptr, in_conn.indices, pr["input_weights"], delays=in_delays, n_post=n)
        return Network(LIF(v_reset=0.1), n, pr["drive"], tau, c, refractory=refractory, delay=delay,
                       inputs=[SpikeTrainInput(times, sources, ic)])

    coef_t = rng.normal(size=100_000)
    coef_v = rng.normal(size=n)
    return params, build, coef_t, coef_v, t_max


def _same_events(a, b):
    return all(np.array_equal(a[k], b[k]) for k in ("kind", "src", "skip_event", "skip_pos"))


def gradcheck(n=40, seed=0, refractory=0.0, h=1e-6, per_param=8, t_max=0.05, delays="none"):
    """Compare vjp with central differences (steps h, 4h and h/8, the best per parameter);
    returns a JSON-friendly report."""
    params, build, ct, cv, t_max = random_problem(n=n, seed=seed, refractory=refractory, t_max=t_max,
                                                  delays=delays)
    rng = np.random.default_rng(seed + 1)

    def run(pr, tape=False):
        return simulate(build(pr), t_max=t_max, initial_voltages=pr["initial_voltages"], tape=tape,
                        progress=False)

    def loss(res):
        return float(np.sum(ct[: res.n_spikes] * res.times) + np.sum(cv * res.final_voltages()))

    t0 = time.perf_counter()
    base = run(params, tape=True)
    g = vjp(base, ct[: base.n_spikes], cv)
    analytic = {"weights": g.weights, "drive": g.drive, "input_weights": g.input_weights[0],
                "initial_voltages": g.initial_voltages}
    worst, report, skipped = 0.0, {}, 0
    for name, value in params.items():
        idx = rng.choice(value.size, min(per_param, value.size), replace=False)
        errs = []
        for i in idx:
            # Central differences at steps h, 4h and h/8; the error is the best of them, because
            # rounding dominates small steps and truncation large ones (a wrong gradient disagrees
            # with all). A step counts only if it leaves every event in place: the same records in
            # the tape and the same inputs ignored (not just the same spiking neurons).
            best = None
            for step in (h, 4 * h, h / 8):
                out = []
                for sign in (1, -1):
                    pr = {k: v.copy() for k, v in params.items()}
                    pr[name][i] += sign * step
                    out.append(run(pr, tape=True))
                if not all(_same_events(r.tape, base.tape) for r in out):
                    continue            # the event order changed within +-step: not differentiable
                fd = (loss(out[0]) - loss(out[1])) / (2 * step)
                err = abs(fd - analytic[name][i]) / max(abs(fd), 1e-3)
                best = err if best is None else min(best, err)
            if best is None:
                skipped += 1
                continue
            errs.append(best)
        report[name] = float(max(errs)) if errs else None
        worst = max([worst] + errs)
    return {"n": n, "seed": seed, "refractory_s": refractory, "delays": delays, "spikes": base.n_spikes,
            "triggered_spikes": int(np.sum(base.tape["kind"] == 1)),
            "deliveries": int(np.sum(base.tape["kind"] == 4)),
            "ignored_inputs": int(base.tape["skip_event"].size), "h": h, "max_rel_err": worst,
            "rel_err": report, "skipped_order_changes": skipped, "wall_s": time.perf_counter() - t0}


def main(args):
    out = gradcheck(n=args.n, seed=args.seed, refractory=args.refractory, h=args.h, t_max=args.t_max,
                    delays=args.delays)
    if args.json:
        print(json.dumps(out))
    else:
        for key, val in out.items():
            print(f"{key:>22}: {val}")
    return 0 if out["max_rel_err"] <= args.tol else 1
