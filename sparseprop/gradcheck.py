"""Gradient check: `grad.vjp` against central finite differences on a random LIF, QIF or EIF
(table model) network.

``sparseprop gradcheck --json`` runs it and prints one JSON line with ``max_rel_err``.
"""
import json
import time

import numpy as np

from sparseprop.grad import vjp
from sparseprop.inputs import SpikeTrainInput
from sparseprop.network import Network, SparseConnectivity
from sparseprop._core._models import LIF, QIF, TableNeuron
from sparseprop.simulation import simulate


DELAYS = ("none", "homogeneous", "few", "many")
MODELS = ("lif", "qif", "eif")
EIF_TABLE = "eif_seed_interp"


def random_problem(n=40, p=0.2, w_std=0.15, n_inputs=3, n_input_spikes=10, refractory=0.0, seed=0,
                   tau=0.01, t_max=0.05, delays="none", model="lif"):
    """A random network (mixed-sign weights, heterogeneous drive, given input spikes) with initial
    voltages and a random linear loss on spike times and final voltages. Returns a dict of
    parameters and a function building the network from them.

    model: "lif" (LIF, v_reset 0.1, drive in [1.05, 1.5] with 1/8 of the neurons below threshold,
    voltages from [0, 0.9]) or "qif" (QIF, drive in [1, 4] with 1/8 of the neurons slow, in
    [0.1, 0.5]; weights and input weights three times larger; voltages from [-2, 2]) or "eif"
    (`TableNeuron` of the shipped table "eif_seed_interp", the table's drive for every neuron (no
    "drive" parameter: a table is one drive), voltages from [-1.5, 0]).

    delays: "none"; "homogeneous" (2 ms for every synapse); "few" (per synapse from {0, 1, 2.5} ms,
    FIFOs and zero-delay runs; input projections 0.5 ms); "many" (per synapse uniform in
    [0.5, 3] ms: the pending-delivery heap)."""
    if delays not in DELAYS:
        raise ValueError(f"delays: expected one of {DELAYS}, got {delays!r}")
    if model not in MODELS:
        raise ValueError(f"model: expected one of {MODELS}, got {model!r}")
    qif, eif = model == "qif", model == "eif"
    rng = np.random.default_rng(seed)
    W = (rng.random((n, n)) < p) * rng.normal(0.0, w_std, (n, n))
    np.fill_diagonal(W, 0.0)
    conn = SparseConnectivity.from_matrix(W)
    syn_delays = {"none": None, "homogeneous": None,
                  "few": rng.choice([0.0, 1e-3, 2.5e-3], conn.indices.size),
                  "many": rng.uniform(0.5e-3, 3e-3, conn.indices.size)}[delays]
    delay = 2e-3 if delays == "homogeneous" else 0.0
    if eif:
        table_model = TableNeuron(EIF_TABLE)
        drive = table_model.table.drive
    elif qif:
        conn = SparseConnectivity(conn.indptr, conn.indices, 3.0 * conn.weights, n_post=n)
        drive = rng.uniform(1.0, 4.0, n)
        drive[: max(1, n // 8)] = rng.uniform(0.1, 0.5, max(1, n // 8))
    else:
        drive = rng.uniform(1.05, 1.5, n)
        drive[: max(1, n // 8)] = rng.uniform(0.5, 0.95, max(1, n // 8))
    per = 4
    in_conn = SparseConnectivity(np.arange(n_inputs + 1) * per, rng.integers(0, n, n_inputs * per),
                                 (3.0 if qif else 1.0) * rng.normal(0.2, 0.1, n_inputs * per), n_post=n)
    in_delays = None if delays == "none" else rng.choice([0.0, 0.5e-3], n_inputs * per)
    times = np.sort(rng.random(n_input_spikes) * 0.6 * t_max)
    sources = rng.integers(0, n_inputs, n_input_spikes)
    v0 = rng.uniform(-2.0, 2.0, n) if qif else rng.uniform(-1.5, 0.0, n) if eif else rng.uniform(0.0, 0.9, n)
    params = {"weights": conn.weights.copy(), "drive": drive, "input_weights": in_conn.weights.copy(),
              "initial_voltages": v0}
    if eif:
        del params["drive"]

    def build(pr):
        c = SparseConnectivity(conn.indptr, conn.indices, pr["weights"], delays=syn_delays)
        ic = SparseConnectivity(in_conn.indptr, in_conn.indices, pr["input_weights"], delays=in_delays, n_post=n)
        neuron = table_model if eif else QIF() if qif else LIF(v_reset=0.1)
        return Network(neuron, n, pr.get("drive", drive), tau, c, refractory=refractory, delay=delay,
                       inputs=[SpikeTrainInput(times, sources, ic)])

    coef_t = rng.normal(size=100_000)
    coef_v = rng.normal(size=n)
    return params, build, coef_t, coef_v, t_max


def _same_events(a, b):
    return all(np.array_equal(a[k], b[k]) for k in ("kind", "src", "skip_event", "skip_pos"))


def gradcheck(n=40, seed=0, refractory=0.0, h=None, per_param=8, t_max=0.05, delays="none", model="lif"):
    """Compare vjp with central differences (steps h, 4h and h/8, the best per parameter) on
    `random_problem` (model "lif", "qif" or "eif"); returns a JSON-friendly report.

    h: None takes 1e-6 for LIF, 4e-6 for QIF and 2e-6 for EIF: time-based states carry an
    absolute rounding error (about ulp(8) tau) that smaller steps would amplify (EIF spike times
    near the threshold are strongly curved, so a smaller step than QIF's)."""
    if h is None:
        h = {"qif": 4e-6, "eif": 2e-6}.get(model, 1e-6)
    params, build, ct, cv, t_max = random_problem(n=n, seed=seed, refractory=refractory, t_max=t_max,
                                                  delays=delays, model=model)
    rng = np.random.default_rng(seed + 1)

    def run(pr, tape=False):
        return simulate(build(pr), t_max=t_max, initial_voltages=pr["initial_voltages"], tape=tape,
                        progress=False)

    def loss(res):
        if model in ("qif", "eif"):
            v_end = res.final_voltages()
            return float(np.sum(ct[: res.n_spikes] * res.times) + np.sum(cv * np.where(cv != 0.0, v_end, 0.0)))
        return float(np.sum(ct[: res.n_spikes] * res.times) + np.sum(cv * res.final_voltages()))

    t0 = time.perf_counter()
    base = run(params, tape=True)
    if model in ("qif", "eif"):
        # A QIF (EIF) voltage about to fire is huge (V ~ 1/(time to spike)) and its rounding noise grows as
        # V^2: weight each final voltage by 1/(1 + V^2) at the base point (a fixed linear loss still)
        # so that finite differences resolve the gradient.
        # Refractory neurons read the reset, V = -inf: no loss on those.
        v_base = base.final_voltages()
        cv = np.where(np.isfinite(v_base), cv / (1.0 + np.where(np.isfinite(v_base), v_base, 0.0) ** 2), 0.0)
    g = vjp(base, ct[: base.n_spikes], cv)
    analytic = {"weights": g.weights, "drive": g.drive, "input_weights": g.input_weights[0],
                "initial_voltages": g.initial_voltages}     # EIF: no drive parameter (g.drive is None)
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
                if not np.isfinite(err):
                    err = np.inf        # a NaN anywhere is a failure, not a pass
                best = err if best is None else min(best, err)
            if best is None:
                skipped += 1
                continue
            errs.append(best)
        report[name] = float(max(errs)) if errs else None
        worst = max([worst] + errs)
    return {"model": model, "n": n, "seed": seed, "refractory_s": refractory, "delays": delays, "spikes": base.n_spikes,
            "triggered_spikes": int(np.sum(base.tape["kind"] == 1)),
            "deliveries": int(np.sum(base.tape["kind"] == 4)),
            "ignored_inputs": int(base.tape["skip_event"].size), "h": h,
            "tape_bytes_per_spike": sum(a.nbytes for a in base.tape.values()) / max(base.n_spikes, 1),
            "max_rel_err": worst,
            "rel_err": report, "skipped_order_changes": skipped, "wall_s": time.perf_counter() - t0}


def main(args):
    out = gradcheck(n=args.n, seed=args.seed, refractory=args.refractory, h=args.h, t_max=args.t_max,
                    delays=args.delays, model=getattr(args, "model", "lif"))
    if args.json:
        print(json.dumps(out))
    else:
        for key, val in out.items():
            print(f"{key:>22}: {val}")
    return 0 if out["max_rel_err"] <= args.tol else 1
