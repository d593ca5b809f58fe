"""Brunel (2000) benchmark: sparseprop (exact) vs NEST 3 (precise and grid), single thread.

Network (model A of Brunel 2000, asynchronous-irregular state g = 5, eta = 2): N_E = 10000
excitatory and N_I = 2500 inhibitory LIF neurons, tau = 20 ms, theta = 20 mV, V_r = 10 mV,
t_ref = 2 ms, fixed in-degree C_E = 1000 excitatory and C_I = 250 inhibitory inputs (no autapses,
multapses allowed), J = 0.1 mV, inhibitory weight -g J, delay D = 1.5 ms, and every neuron receives
its own Poisson train of rate C_E * eta * nu_thr (nu_thr = theta / (J C_E tau) = 10 Hz, so
20 kHz) with weight J.

Simulators, each measured in this one run, one after the other, single thread:

* ``sparseprop``  exact event-based (tree engine), `sparseprop.PoissonInput` (exact Poisson);
* ``sparseprop_ifirst``  the same network with ids renumbered inhibitory-first. sparseprop delivers
  inputs that arrive at the same instant one at a time, in order, and a neuron fires at the first
  crossing, so with E ids first a synchronous volley's excitation acts before its inhibition
  (NEST sums simultaneous inputs). This variant shows the effect on the rates; see
  validation/README.md;
* ``nest_ps``     NEST ``iaf_psc_delta_ps`` + ``poisson_generator_ps`` (precise spike times);
* ``nest_grid``   NEST ``iaf_psc_delta`` + ``poisson_generator`` at resolution 0.1 ms.

Each network starts from voltages uniform in [0, theta), runs ``--warmup`` seconds (not timed),
then ``--t-sim`` seconds (timed). Reported per simulator: construction wall time, warm-up wall
time, simulation wall time, wall seconds per simulated second, spikes and mean E/I rates in the
timed window. Prints one JSON line and writes ``benchmarks/results/brunel_nest.json``.

    PYTHONPATH=. python benchmarks/bench_brunel_nest.py [--t-sim 1.0] [--quick] [--only sparseprop,nest_ps]

``--quick``: a 5x smaller network (N_E = 2000, N_I = 500, same in-degrees so the same mean-field
regime) for 0.2 s: a smoke test, not the headline number.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

PARAMS = {"n_e": 10000, "n_i": 2500, "c_e": 1000, "c_i": 250, "j_mv": 0.1, "g": 5.0, "eta": 2.0,
          "delay_s": 1.5e-3, "t_ref_s": 2e-3, "theta_mv": 20.0, "v_reset_mv": 10.0, "tau_s": 20e-3}


def ext_rate(p):
    """Per-neuron external Poisson rate (Hz): C_E * eta * nu_thr, nu_thr = theta / (J C_E tau)."""
    nu_thr = p["theta_mv"] / (p["j_mv"] * p["c_e"] * p["tau_s"])
    return p["c_e"] * p["eta"] * nu_thr


def _rates(times, ids, p, t0, t1, e_first=True):
    m = (times > t0) & (times <= t1)
    ids = ids[m]
    n_e, n_i = p["n_e"], p["n_i"]
    exc = int(np.count_nonzero(ids < n_e if e_first else ids >= n_i))
    return {"spikes": int(ids.size), "rate_e_hz": exc / (n_e * (t1 - t0)),
            "rate_i_hz": (ids.size - exc) / (n_i * (t1 - t0)),
            "rate_hz": ids.size / ((n_e + n_i) * (t1 - t0))}


# ----------------------------------------------------------------------------------------------
# sparseprop
# ----------------------------------------------------------------------------------------------

def _fixed_indegree_csr(p, rng):
    """CSR (by presynaptic neuron) of the Brunel connectivity: C_E E and C_I I inputs per neuron,
    never itself (distinct here; brunel_network and NEST allow multapses). Weights in threshold units."""
    n_e, n_i, c_e, c_i = p["n_e"], p["n_i"], p["c_e"], p["c_i"]
    n = n_e + n_i
    k = c_e + c_i
    pre = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        if i < n_e:
            e = rng.choice(n_e - 1, size=c_e, replace=False)
            e += e >= i
            inh = n_e + rng.choice(n_i, size=c_i, replace=False)
        else:
            e = rng.choice(n_e, size=c_e, replace=False)
            inh = rng.choice(n_i - 1, size=c_i, replace=False)
            inh += inh >= (i - n_e)
            inh += n_e
        pre[i, :c_e], pre[i, c_e:] = e, inh
    post = np.repeat(np.arange(n, dtype=np.int32), k)
    pre = pre.ravel()
    order = np.argsort(pre, kind="stable")
    pre, post = pre[order], post[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n), out=indptr[1:])
    w = p["j_mv"] / p["theta_mv"]
    weights = np.where(pre < n_e, w, -p["g"] * w)
    return indptr, post, weights


def build_sparseprop(p, seed):
    """The Brunel network in sparseprop units (threshold 1, rest 0): `sparseprop.populations.brunel_network`
    (in-degrees via epsilon = C_E / N_E), or, in a sparseprop without it, the same network built here."""
    import sparseprop as sp

    try:
        from sparseprop.populations import brunel_network
    except ImportError:
        brunel_network = None
    if brunel_network is not None:
        eps = p["c_e"] / p["n_e"]
        if int(round(eps * p["n_i"])) != p["c_i"]:
            raise ValueError("C_E/N_E must equal C_I/N_I for brunel_network's single epsilon")
        kw = dict(state=None, n_e=p["n_e"], n_i=p["n_i"], epsilon=eps, j_mv=p["j_mv"], g=p["g"], eta=p["eta"],
                  delay=p["delay_s"], refractory=p["t_ref_s"], theta_mv=p["theta_mv"],
                  v_reset_mv=p["v_reset_mv"], tau=p["tau_s"], seed=seed)
        return brunel_network(**kw), "sparseprop.populations.brunel_network(" + ", ".join(
            f"{k}={v!r}" for k, v in kw.items()) + ")"
    rng = np.random.default_rng(seed)
    indptr, indices, weights = _fixed_indegree_csr(p, rng)
    n = p["n_e"] + p["n_i"]
    conn = sp.SparseConnectivity(indptr, indices, weights)
    net = sp.Network(sp.LIF(v_reset=p["v_reset_mv"] / p["theta_mv"]), n, 0.0, tau=p["tau_s"], connectivity=conn,
                     delay=p["delay_s"], refractory=p["t_ref_s"],
                     inputs=[sp.PoissonInput(ext_rate(p), p["j_mv"] / p["theta_mv"])],
                     populations={"E": (0, p["n_e"]), "I": (p["n_e"], n)})
    return net, "built in bench_brunel_nest.py (sp.Network + SparseConnectivity + PoissonInput)"


def inhibitory_first(net, n_e, n_i):
    """The same network with ids renumbered: inhibitory neurons 0..n_i-1, excitatory after them."""
    import sparseprop as sp

    n = net.n
    c = net.connectivity
    new_of_old = np.concatenate([np.arange(n_i, n), np.arange(n_i)])      # E -> n_i.., I -> 0..
    pre = new_of_old[np.repeat(np.arange(n), np.diff(c.indptr))]
    post = new_of_old[np.asarray(c.indices, dtype=np.int64)]
    order = np.lexsort((post, pre))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n), out=indptr[1:])
    delays = None if c.delays is None else np.asarray(c.delays)[order]
    conn = sp.SparseConnectivity(indptr, post[order].astype(np.int32), np.asarray(c.weights)[order], delays=delays)
    return sp.Network(net.model, n, net.drive, tau=net.tau, connectivity=conn, delay=net.delay,
                      refractory=net.refractory, inputs=net.inputs,
                      populations={"I": (0, n_i), "E": (n_i, n)})


def run_sparseprop(p, t_warm, t_sim, seed, id_order="E-first"):
    import sparseprop as sp

    w0 = time.perf_counter()
    net, how = build_sparseprop(p, seed)
    if id_order == "I-first":
        net = inhibitory_first(net, p["n_e"], p["n_i"])
        how += " with ids renumbered inhibitory-first"
    build = time.perf_counter() - w0
    n = p["n_e"] + p["n_i"]
    v0 = np.random.default_rng(seed + 1).uniform(0.0, 1.0, n)
    w0 = time.perf_counter()
    warm = sp.simulate(net, t_max=t_warm, initial_voltages=v0, seed_input=seed + 2, progress=False)
    warm_wall = time.perf_counter() - w0
    w0 = time.perf_counter()
    res = sp.simulate(net, t_max=t_warm + t_sim, state=warm.final_state, progress=False)
    sim = time.perf_counter() - w0
    out = {"build_s": build, "warmup_s": warm_wall, "sim_s": sim, "network": how, "id_order": id_order,
           **_rates(np.asarray(res.times), np.asarray(res.neurons), p, t_warm, t_warm + t_sim,
                    e_first=id_order == "E-first")}
    return out


# ----------------------------------------------------------------------------------------------
# NEST
# ----------------------------------------------------------------------------------------------

def run_nest(p, t_warm, t_sim, seed, precise, resolution_ms=0.1):
    os.environ.setdefault("PYNEST_QUIET", "1")        # keep stdout to the one JSON line
    import nest

    if hasattr(nest, "VerbosityLevel"):
        nest.verbosity = nest.VerbosityLevel.ERROR
    else:
        nest.set_verbosity("M_ERROR")
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": resolution_ms, "local_num_threads": 1, "rng_seed": seed})
    model = "iaf_psc_delta_ps" if precise else "iaf_psc_delta"
    gen = "poisson_generator_ps" if precise else "poisson_generator"
    n_e, n_i = p["n_e"], p["n_i"]
    theta, j, d_ms = p["theta_mv"], p["j_mv"], p["delay_s"] * 1e3

    w0 = time.perf_counter()
    params = {"E_L": 0.0, "V_th": theta, "V_reset": p["v_reset_mv"], "tau_m": p["tau_s"] * 1e3,
              "C_m": 250.0, "t_ref": p["t_ref_s"] * 1e3, "I_e": 0.0}
    pop = nest.Create(model, n_e + n_i, params=params)
    pop.V_m = nest.random.uniform(0.0, theta)
    exc, inh = pop[:n_e], pop[n_e:]
    noise = nest.Create(gen, params={"rate": ext_rate(p)})
    rec = nest.Create("spike_recorder")
    syn_e = {"synapse_model": "static_synapse", "weight": j, "delay": d_ms}
    syn_i = {"synapse_model": "static_synapse", "weight": -p["g"] * j, "delay": d_ms}
    rule = {"allow_autapses": False, "allow_multapses": True}       # as brunel_network (and NEST's default)
    nest.Connect(exc, pop, {"rule": "fixed_indegree", "indegree": p["c_e"], **rule}, syn_e)
    nest.Connect(inh, pop, {"rule": "fixed_indegree", "indegree": p["c_i"], **rule}, syn_i)
    nest.Connect(noise, pop, syn_spec={"weight": j, "delay": resolution_ms})
    nest.Connect(pop, rec)
    nest.Prepare()   # allocates buffers; counted as construction
    build = time.perf_counter() - w0

    w0 = time.perf_counter()
    nest.Run(t_warm * 1e3)
    warm = time.perf_counter() - w0
    w0 = time.perf_counter()
    nest.Run(t_sim * 1e3)
    sim = time.perf_counter() - w0
    nest.Cleanup()
    ev = rec.get("events")
    first = int(pop.tolist()[0])
    times = np.asarray(ev["times"], dtype=np.float64) * 1e-3
    ids = np.asarray(ev["senders"], dtype=np.int64) - first
    return {"build_s": build, "warmup_s": warm, "sim_s": sim, "model": model, "generator": gen,
            "resolution_ms": resolution_ms, "nest_version": getattr(nest, "__version__", "?"),
            **_rates(times, ids, p, t_warm, t_warm + t_sim)}


RUNNERS = {
    "sparseprop": lambda p, tw, ts, s: run_sparseprop(p, tw, ts, s),
    "sparseprop_ifirst": lambda p, tw, ts, s: run_sparseprop(p, tw, ts, s, id_order="I-first"),
    "nest_ps": lambda p, tw, ts, s: run_nest(p, tw, ts, s, precise=True),
    "nest_grid": lambda p, tw, ts, s: run_nest(p, tw, ts, s, precise=False),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--t-sim", type=float, default=1.0, help="timed simulated time, s (default 1)")
    ap.add_argument("--warmup", type=float, default=0.1, help="untimed warm-up, s (default 0.1)")
    ap.add_argument("--quick", action="store_true", help="N/5 network for 0.2 s (smoke test)")
    ap.add_argument("--scale", type=float, default=None, help="multiply N_E, N_I (in-degrees kept)")
    ap.add_argument("--only", default="sparseprop,sparseprop_ifirst,nest_ps,nest_grid",
                    help="comma-separated subset of: " + ",".join(RUNNERS))
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--out", default=None,
                    help="JSON file (default benchmarks/results/brunel_nest.json; *_quick.json with --quick)")
    args = ap.parse_args(argv)
    p = dict(PARAMS)
    scale = args.scale if args.scale is not None else (0.2 if args.quick else 1.0)
    t_sim = 0.2 if args.quick and args.t_sim == 1.0 else args.t_sim
    p["n_e"], p["n_i"] = int(round(p["n_e"] * scale)), int(round(p["n_i"] * scale))
    if p["c_e"] >= p["n_e"] or p["c_i"] >= p["n_i"]:
        ap.error(f"--scale {scale}: in-degrees C_E={p['c_e']}, C_I={p['c_i']} need N_E, N_I larger")
    which = [w.strip() for w in args.only.split(",") if w.strip()]
    for w in which:
        if w not in RUNNERS:
            ap.error(f"--only: unknown simulator {w!r} (choose from {', '.join(RUNNERS)})")

    results = {}
    for w in which:
        print(f"# running {w} ...", file=sys.stderr, flush=True)
        r = RUNNERS[w](p, args.warmup, t_sim, args.seed)
        r["wall_per_sim_s"] = r["sim_s"] / t_sim
        r["us_per_spike"] = 1e6 * r["sim_s"] / max(r["spikes"], 1)
        results[w] = r
        print(f"# {w}: build {r['build_s']:.1f} s, {r['wall_per_sim_s']:.2f} s per simulated s, "
              f"rates E {r['rate_e_hz']:.2f} Hz I {r['rate_i_hz']:.2f} Hz", file=sys.stderr, flush=True)
    # wall time per simulated second of each NEST variant over each sparseprop variant, and whether
    # the two simulate the same regime (mean rates within 20 %)
    ratios, regime = {}, {}
    for a in (w for w in which if w.startswith("sparseprop")):
        for b in (w for w in which if w.startswith("nest")):
            ratios[f"{b}_over_{a}"] = results[b]["wall_per_sim_s"] / results[a]["wall_per_sim_s"]
            regime[f"{a}_vs_{b}"] = abs(results[a]["rate_hz"] / results[b]["rate_hz"] - 1.0) < 0.2
    doc = {"benchmark": "brunel_nest", "params": {**p, "ext_rate_hz": ext_rate(p)}, "quick": args.quick,
           "scale": scale, "t_sim_s": t_sim, "warmup_s": args.warmup, "threads": 1, "seed": args.seed,
           "results": results, "speed_ratios": ratios, "same_regime": regime,
           "machine": {"python": platform.python_version(), "platform": platform.platform(),
                       "cpus": os.cpu_count()}}
    line = json.dumps(doc)
    print(line)
    if args.out is None:
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                "brunel_nest_quick.json" if args.quick else "brunel_nest.json")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
