"""Accuracy of the table model against the analytic LIF: ``sparseprop compare-lif``.

The seed LIF network (N inhibitory neurons, K random targets each, weights -J0/sqrt(K), drive from
the balance condition, as ``sparseprop run``) is simulated twice from the same initial voltages
(the analytic model's default phases for ``seed_ic``, converted to voltages) and the same
connectivity: once with the analytic model ``sp.LIF()`` and once with ``sp.TableNeuron`` on a LIF
table generated on the fly by :func:`sparseprop.tablegen.make_table` (``"chebyshev"``, ``"interp"``
or both). The spike sequences are compared index by index: mismatching neuron ids, the first
mismatch, and the differences of the spike times (seconds).

The table run uses the generic table arithmetic of the engine (remaining time -> voltage by the
inverse fit, plus the jump, -> remaining time by the forward fit), not the LIF's closed form, so
this is an end-to-end check of the table machinery against an exact solution.
"""
import argparse
import json
import math
import sys
import time

import numpy as np

__all__ = ["compare_lif", "add_subparser", "main"]

METHODS = ("chebyshev", "interp")


def _methods(method):
    if method == "both":
        return list(METHODS)
    if method not in METHODS:
        raise ValueError(f"method: choose chebyshev, interp or both, got {method!r}")
    return [method]


def compare_lif(n=100_000, k=100, j0=1.0, rate=1.0, tau=0.01, spikes=1_000_000, *, method="chebyshev",
                seed_ic=1, seed_net=1, engine="tree", tol=None, fused=True, progress=None, say=None):
    """Simulate the seed LIF network with the analytic model and with LIF tables; compare spikes.

    Parameters
    ----------
    n, k, j0, rate, tau, seed_net : the network (as :func:`sparseprop.balanced_network`).
    spikes : int, number of network spikes of each run.
    method : ``"chebyshev"``, ``"interp"`` or ``"both"`` (one table and one run per method).
    seed_ic : seed of the default initial phases of the analytic model (turned into voltages that
        both runs start from).
    engine : ``"tree"``, ``"heap"`` or ``"dense"`` (see `sparseprop.simulate`).
    tol : phase tolerance of the generated tables (default: the generator's, 1e-14).
    fused : let the engine use its fused single-weight map G_w(T) = T(V(T) + w) (the default for a
        network with one weight); False forces the two-map evaluation (inverse fit, jump, forward fit).
    progress : progress bars of the runs (None: when stderr is a terminal).
    say : optional callable(str) for progress messages.

    Returns
    -------
    list of dict, one per method, with ``n, k, spikes, method, drive, index_mismatches,
    first_mismatch`` (spike index or None), ``max_abs_dt_s, median_abs_dt_s, dt_abs_s`` (array of
    |t_table - t_analytic| per spike, seconds), the wall times, ns per spike of both runs, the
    table's size and achieved errors.
    """
    import sparseprop as sp
    from sparseprop import tablegen
    from sparseprop._core import _models

    say = say or (lambda s: None)
    methods = _methods(method)
    lif = sp.balanced_network(n=n, k=k, j0=j0, rate=rate, tau=tau, model="lif", seed_net=seed_net)
    drive = float(lif.drive)
    phases = np.random.default_rng(seed_ic).random(lif.n)          # the analytic model's default
    v0 = lif.model.voltage_from_phase(phases, drive)
    say(f"analytic LIF: n={n} k={k} drive={drive!r}, {spikes} spikes")
    ref = sp.simulate(lif, spikes=spikes, initial_voltages=v0, engine=engine, progress=progress)
    out = []
    for m in methods:
        t0 = time.perf_counter()
        kwargs = {} if tol is None else {"tol": tol}
        table = tablegen.make_table("lif", drive, method=m, name=f"lif_i{drive!r}_{m}", **kwargs)
        t_gen = time.perf_counter() - t0
        say(f"table {m}: made in {t_gen:.2f} s; simulating")
        model = sp.TableNeuron(table)
        net = sp.Network(model, lif.n, drive, tau, lif.connectivity)
        fused_info = model.compiled.fused(lif.connectivity.weight) if fused else None
        saved = _models.FUSED_ENABLED
        _models.FUSED_ENABLED = bool(fused)
        try:
            res = sp.simulate(net, spikes=spikes, initial_voltages=v0, engine=engine, progress=progress)
        finally:
            _models.FUSED_ENABLED = saved
        c = min(ref.n_spikes, res.n_spikes)
        ids_a, ids_b = ref.neurons[:c], res.neurons[:c]
        mism = np.flatnonzero(ids_a != ids_b)
        dt = np.abs(res.times[:c] - ref.times[:c])
        arrays = table.arrays
        out.append({
            "n": n, "k": k, "spikes": int(c), "method": m, "engine": engine, "drive": drive, "tau_s": tau,
            "seed_ic": seed_ic, "seed_net": seed_net,
            "index_mismatches": int(mism.size) + abs(ref.n_spikes - res.n_spikes),
            "first_mismatch": int(mism[0]) if mism.size else None,
            "max_abs_dt_s": float(dt.max()) if c else 0.0,
            "median_abs_dt_s": float(np.median(dt)) if c else 0.0,
            "sim_time_s": ref.t_end,
            "rate_hz": ref.mean_rate(),
            "ns_per_spike_analytic": ref.ns_per_spike, "ns_per_spike_table": res.ns_per_spike,
            "table_bytes": int(sum(a.nbytes for a in arrays.values())),
            "table_phase_error": max(table.achieved[key] for key in ("phase_forward", "phase_inverse",
                                                                      "phase_roundtrip")),
            "table_tol": table.tol, "table_gen_s": t_gen,
            "path": "fused" if fused_info is not None else "two-map",
            "fused_cells": fused_info.info["cells"] if fused_info is not None else None,
            "fused_phase_error": fused_info.info["max_phase_error"] if fused_info is not None else None,
            "dt_abs_s": dt,
        })
    return out


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for r in results:
        dt = r["dt_abs_s"]
        floor = 1e-20
        ax.semilogy(np.arange(dt.size), np.maximum(dt, floor), ",", alpha=0.5,
                    label=f"{r['method']} ({r['path']}): max {r['max_abs_dt_s']:.2g} s, {r['index_mismatches']} id mismatches")
    ax.axhline(1e-12, color="k", lw=0.8, ls="--", label="1e-12 s")
    ax.set_xlabel("spike index")
    ax.set_ylabel("|t_table - t_analytic| (s)  (0 drawn at 1e-20)")
    r0 = results[0]
    ax.set_title(f"LIF table vs analytic LIF: N={r0['n']} K={r0['k']} I={r0['drive']:.4g}")
    ax.legend(loc="lower right", fontsize=8, markerscale=20)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(p):
    p.add_argument("--n", type=int, default=100_000, help="number of neurons (default 1e5)")
    p.add_argument("--k", type=int, default=100, help="out-degree (default 100)")
    p.add_argument("--j0", type=float, default=1.0, help="coupling strength J0 (default 1)")
    p.add_argument("--rate", type=float, default=1.0, help="target rate in Hz for the balance condition")
    p.add_argument("--tau", type=float, default=0.01, help="membrane time constant in s (default 0.01)")
    p.add_argument("--spikes", type=int, default=1_000_000, help="network spikes per run (default 1e6)")
    p.add_argument("--method", choices=["chebyshev", "interp", "both"], default="chebyshev",
                   help="fit kind of the generated LIF table (default chebyshev)")
    p.add_argument("--tol", type=float, default=None, help="phase tolerance of the table (default 1e-14)")
    p.add_argument("--seed-ic", type=int, default=1, help="seed of the initial condition")
    p.add_argument("--seed-net", type=int, default=1, help="seed of the network realisation")
    p.add_argument("--engine", choices=["tree", "heap", "dense"], default="tree")
    p.add_argument("--no-fused", dest="fused", action="store_false",
                   help="force the two-map table evaluation (default: the engine's fused single-weight map)")
    p.add_argument("--plot", metavar="FILE.png", help="save |dt| per spike (needs matplotlib)")
    p.add_argument("--json", action="store_true", help="one JSON line per method on stdout")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: when stderr is a terminal)")


def _cmd(args):
    say = (lambda s: print(s, file=sys.stderr)) if not args.json else None
    results = compare_lif(n=args.n, k=args.k, j0=args.j0, rate=args.rate, tau=args.tau, spikes=args.spikes,
                          method=args.method, seed_ic=args.seed_ic, seed_net=args.seed_net, engine=args.engine,
                          tol=args.tol, fused=args.fused, progress=args.progress, say=say)
    if args.plot:
        _plot(results, args.plot)
    for r in results:
        line = {key: val for key, val in r.items() if key != "dt_abs_s"}
        line["plot"] = args.plot
        if args.json:
            print(json.dumps(line))
        else:
            print(f"LIF table ({r['method']}, {r['path']}) vs analytic LIF: n={r['n']} k={r['k']} drive={r['drive']:.6g}, "
                  f"{r['spikes']} spikes ({r['sim_time_s']:.4g} s simulated)")
            print(f"  index mismatches    {r['index_mismatches']}"
                  + (f" (first at spike {r['first_mismatch']})" if r["first_mismatch"] is not None else ""))
            print(f"  max |dt| (s)        {r['max_abs_dt_s']:.3g}")
            print(f"  median |dt| (s)     {r['median_abs_dt_s']:.3g}")
            print(f"  ns per spike        analytic {r['ns_per_spike_analytic']:.0f}, table {r['ns_per_spike_table']:.0f}")
            if args.plot:
                print(f"  plot                {args.plot}")
    ok = all(r["index_mismatches"] == 0 for r in results)
    return 0 if ok else 1


def add_subparser(sub):
    """Add ``compare-lif`` to the ``sparseprop`` command line."""
    p = sub.add_parser("compare-lif", help="accuracy of the table model against the analytic LIF",
                       description="Simulate the seed LIF network with the analytic model and with a LIF "
                       "table generated on the fly (same seeds, same initial voltages); report spike id "
                       "mismatches and spike time differences. Exit status 1 if any spike id differs.")
    add_arguments(p)
    p.set_defaults(func=_cmd)
    return p


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="compare_lif", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _cmd(args)
    except (ValueError, TypeError) as exc:
        print(f"compare-lif: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
