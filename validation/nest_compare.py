"""Validate sparseprop against NEST 3's precise-spike-time LIF neuron (``iaf_psc_delta_ps``).

Builds one random LIF network (CSR connectivity, per-synapse or homogeneous delays, absolute
refractory period, DC drive, explicit initial voltages, one membrane time constant or one per
neuron with ``--tau-spread``), simulates it with sparseprop, exports it,
builds the identical network in NEST, simulates it there, and compares the two spike sequences
after sorting each by (time, neuron id).

    python validation/nest_compare.py [options] [--json]

Two halves, so the two simulators can live in different environments:

* the *sparseprop half* (this script, needs ``sparseprop``) builds and simulates the network and
  writes a plain ``.npz`` description (``export_spec``);
* the *NEST half* (``run_nest``, needs only ``numpy`` and ``nest``) reads that description and
  returns spike times. It runs in this process when ``import nest`` works, otherwise (or with
  ``--nest-python PY``) in a subprocess: ``PY nest_compare.py --nest-half SPEC.npz OUT.npz``.

Model mapping (sparseprop units: neuron i obeys tau_i dV/dt = -V + I_i, threshold 1, reset
v_reset, weights are voltage jumps in units of the threshold; times in s) onto
``iaf_psc_delta_ps`` with a scale theta (mV per threshold unit): E_L = 0, V_th = theta,
V_reset = v_reset*theta, tau_m = 1000*tau_i ms and C_m = tau_m pF per neuron (so
R = tau_m/C_m = 1 exactly for every neuron), I_e = I_i*theta pA (the asymptotic voltage
R*I_e = I_i*theta), t_ref = 1000*refractory ms, V_min = -DBL_MAX (NEST's default: no lower
bound), V_m(0) = v0*theta; ``static_synapse`` weight = w*theta mV, delay in ms. A network with
one tau (``net.tau`` a float) is the special case tau_i = tau; the exported spec always holds tau
per neuron (shape (n,)), and ``run_nest`` also reads older specs with a scalar tau.
NEST keeps delays and refractory periods in whole steps of the resolution (default 0.1 ms),
requires both to be >= one step, and discards inputs that arrive during the refractory period,
like sparseprop. The network generated here therefore puts every delay and refractory period on
the 0.1 ms grid; ``run_nest`` refuses values off the grid.

Where the two may legitimately differ (see validation/README.md for measured cases): both sum
inputs that arrive at exactly the same instant before testing the threshold, but NEST's grid
times make t + d1 + d2 == t + d3 exact where sparseprop's float clocks may differ by an ulp (two
events, the neuron may fire in between); and NEST accepts an input that arrives exactly when a
refractory period ends (sparseprop does not). Both need exact coincidences, which only networks
with excitation produce (instant spikes in cascades); ``diagnose_first_mismatch`` names the
cause of a first mismatch.

Output: a side-by-side table of the first spikes and of the first mismatch, or with ``--json``
exactly one JSON line with ``spikes, spikes_nest, index_mismatches, first_mismatch,
max_abs_dt_s`` (over the matching prefix), the parameters (including ``tau_spread``) and the wall
times.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

RESOLUTION_MS = 0.1


# ----------------------------------------------------------------------------------------------
# NEST half: numpy + nest only (no sparseprop import), so it can run in its own environment
# ----------------------------------------------------------------------------------------------

def _grid_steps(name, values_ms, resolution_ms):
    """Values in ms as whole steps of the resolution (>= 1); ValueError if off the grid."""
    values_ms = np.asarray(values_ms, dtype=np.float64)
    steps = np.rint(values_ms / resolution_ms)
    off = np.abs(steps * resolution_ms - values_ms) > 1e-9 * np.maximum(1.0, np.abs(values_ms))
    if np.any(off):
        bad = values_ms[off].ravel()[0]
        raise ValueError(f"{name}: NEST keeps it in whole steps of the resolution ({resolution_ms} ms); "
                         f"{bad!r} ms is off the grid. Use multiples of {resolution_ms} ms.")
    if np.any(steps < 1):
        raise ValueError(f"{name}: NEST's iaf_psc_delta_ps needs >= one resolution step "
                         f"({resolution_ms} ms), got {values_ms.min()} ms")
    return steps


def _quiet(nest, level):
    if hasattr(nest, "VerbosityLevel"):                       # NEST >= 3.10
        nest.verbosity = getattr(nest.VerbosityLevel, level.replace("M_", ""), nest.VerbosityLevel.ERROR)
    else:
        nest.set_verbosity(level)


def run_nest(spec, *, threads=1, resolution_ms=RESOLUTION_MS, theta_mv=20.0, verbosity="M_ERROR"):
    """Simulate the network described by `spec` with NEST's ``iaf_psc_delta_ps``.

    Parameters
    ----------
    spec : dict
        ``n, tau (n,) s (a scalar, as in older specs, means one tau for all), drive (n,), v_reset, refractory (n,) s, indptr, indices, weights,
        delays (nnz,) s, v0 (n,), t_max (s)`` -- the output of ``export_spec``.
    threads : int
        NEST ``local_num_threads``.
    resolution_ms : float
        NEST resolution; delays and refractory periods must be whole multiples of it.
    theta_mv : float
        mV per sparseprop threshold unit (the result does not depend on it beyond rounding).

    Returns
    -------
    dict with ``times`` (s, float64), ``neurons`` (int64, 0-based), ``wall_build_s``,
    ``wall_sim_s``, ``nest_version``.
    """
    os.environ.setdefault("PYNEST_QUIET", "1")        # no welcome banner on stdout
    import nest

    n = int(spec["n"])
    tau_ms = np.broadcast_to(np.asarray(spec["tau"], dtype=np.float64) * 1e3, (n,))
    drive = np.broadcast_to(np.asarray(spec["drive"], dtype=np.float64), (n,))
    refr_ms = np.broadcast_to(np.asarray(spec["refractory"], dtype=np.float64) * 1e3, (n,))
    v0 = np.asarray(spec["v0"], dtype=np.float64)
    indptr = np.asarray(spec["indptr"], dtype=np.int64)
    indices = np.asarray(spec["indices"], dtype=np.int64)
    weights = np.asarray(spec["weights"], dtype=np.float64)
    delays_ms = np.asarray(spec["delays"], dtype=np.float64) * 1e3
    t_max_ms = float(spec["t_max"]) * 1e3
    v_reset = float(spec["v_reset"])
    if v0.shape != (n,) or indptr.shape != (n + 1,) or weights.shape != indices.shape \
            or delays_ms.shape != indices.shape:
        raise ValueError("spec: inconsistent shapes (v0 (n,), indptr (n+1,), indices/weights/delays (nnz,))")
    ref_steps = _grid_steps("refractory", refr_ms, resolution_ms)
    delay_steps = _grid_steps("delays", delays_ms, resolution_ms) if indices.size else delays_ms
    if not np.all(v0 < 1.0):
        raise ValueError("v0: initial voltages must be below the threshold 1")
    if not np.all(tau_ms > 0):
        raise ValueError("tau: membrane time constants must be > 0")

    _quiet(nest, verbosity)
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": resolution_ms, "local_num_threads": int(threads)})

    wall0 = time.perf_counter()
    pop = nest.Create("iaf_psc_delta_ps", n, params={
        "E_L": 0.0, "V_th": theta_mv, "V_reset": v_reset * theta_mv, "V_min": -np.finfo(np.float64).max})
    # per-neuron parameters as lists (NodeCollection.set accepts one value per node);
    # C_m = tau_m per neuron: R = tau_m / C_m = 1 exactly
    pop.set({"tau_m": tau_ms.tolist(), "C_m": tau_ms.tolist(), "I_e": (drive * theta_mv).tolist(),
             "t_ref": (ref_steps * resolution_ms).tolist(), "V_m": (v0 * theta_mv).tolist()})
    if indices.size:
        gids = np.asarray(pop.tolist(), dtype=np.uint64)
        pre = gids[np.repeat(np.arange(n), np.diff(indptr))]
        post = gids[indices]
        nest.Connect(pre, post, conn_spec="one_to_one",
                     syn_spec={"synapse_model": "static_synapse", "weight": weights * theta_mv,
                               "delay": delay_steps * resolution_ms})
    rec = nest.Create("spike_recorder")
    nest.Connect(pop, rec)
    wall_build = time.perf_counter() - wall0

    wall0 = time.perf_counter()
    nest.Simulate(t_max_ms)
    wall_sim = time.perf_counter() - wall0

    ev = rec.get("events")
    first = int(pop.tolist()[0])
    return {"times": np.asarray(ev["times"], dtype=np.float64) * 1e-3,
            "neurons": np.asarray(ev["senders"], dtype=np.int64) - first,
            "wall_build_s": wall_build, "wall_sim_s": wall_sim,
            "nest_version": getattr(nest, "__version__", "?")}


def _nest_half_main(spec_path, out_path, threads, resolution_ms, theta_mv):
    with np.load(spec_path) as f:
        spec = {k: f[k] for k in f.files}
    out = run_nest(spec, threads=threads, resolution_ms=resolution_ms, theta_mv=theta_mv)
    np.savez(out_path, times=out["times"], neurons=out["neurons"],
             wall_build_s=out["wall_build_s"], wall_sim_s=out["wall_sim_s"],
             nest_version=np.array(out["nest_version"]))
    return 0


def run_nest_subprocess(spec, python, *, threads=1, resolution_ms=RESOLUTION_MS, theta_mv=20.0):
    """``run_nest`` in another interpreter (one that has NEST), exchanging ``.npz`` files."""
    with tempfile.TemporaryDirectory(prefix="nest_compare_") as tmp:
        spec_path, out_path = os.path.join(tmp, "spec.npz"), os.path.join(tmp, "out.npz")
        np.savez(spec_path, **spec)
        cmd = [python, os.path.abspath(__file__), "--nest-half", spec_path, out_path,
               "--threads", str(threads), "--resolution-ms", repr(resolution_ms),
               "--theta-mv", repr(theta_mv)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"NEST half failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        with np.load(out_path) as f:
            return {"times": f["times"], "neurons": f["neurons"],
                    "wall_build_s": float(f["wall_build_s"]), "wall_sim_s": float(f["wall_sim_s"]),
                    "nest_version": str(f["nest_version"])}


def nest_importable():
    os.environ.setdefault("PYNEST_QUIET", "1")
    try:
        import nest  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# comparison (numpy only)
# ----------------------------------------------------------------------------------------------

def _sorted(times, ids, tie_tol=0.0):
    """Sort by (time, id); with tie_tol > 0, spikes whose times differ by <= tie_tol from their
    predecessor form one group (a "tie") sorted by id, placed at the group's first time."""
    times = np.asarray(times, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64)
    order = np.lexsort((ids, times))
    times, ids = times[order], ids[order]
    if tie_tol > 0 and times.size > 1:
        group = np.concatenate([[0], np.cumsum(np.diff(times) > tie_tol)])
        order = np.lexsort((ids, group))
        times, ids = times[order], ids[order]
    return times, ids


def compare_spikes(times_a, ids_a, times_b, ids_b, tie_tol=0.0):
    """Compare two spike sequences after sorting each by (time, id).

    Spikes closer than ``tie_tol`` seconds count as simultaneous (sorted by id among themselves):
    NEST keeps times as (grid step, offset), so t_a + 5 steps and (t_a + 2 steps) + 3 steps are the
    same number there, while the same sums in seconds can differ by an ulp.

    Returns a dict: ``spikes`` (len a), ``spikes_b`` (len b), ``index_mismatches`` (positions of
    the common length whose ids differ, plus the length difference), ``first_mismatch`` (first such
    position, a length difference counting at the end of the shorter one; None if identical),
    ``max_abs_dt_s`` and ``mean_abs_dt_s`` (|t_a - t_b| over the matching prefix, i.e. before
    ``first_mismatch``), ``matched_prefix``.
    """
    ta, ia = _sorted(times_a, ids_a, tie_tol)
    tb, ib = _sorted(times_b, ids_b, tie_tol)
    m = min(ta.size, tb.size)
    diff = ia[:m] != ib[:m]
    mism = int(np.count_nonzero(diff)) + abs(ta.size - tb.size)
    if np.any(diff):
        first = int(np.argmax(diff))
    elif ta.size != tb.size:
        first = m
    else:
        first = None
    prefix = m if first is None else first
    dt = np.abs(ta[:prefix] - tb[:prefix])
    return {"spikes": int(ta.size), "spikes_b": int(tb.size), "index_mismatches": mism,
            "first_mismatch": first, "matched_prefix": int(prefix),
            "max_abs_dt_s": float(dt.max()) if prefix else 0.0,
            "mean_abs_dt_s": float(dt.mean()) if prefix else 0.0,
            "sorted": (ta, ia, tb, ib)}


def diagnose_first_mismatch(spec, cmp, tie_tol=1e-12, names=("sparseprop", "NEST")):
    """Why do the sequences first differ? Looks at the earliest spike present in only one of them.

    Returns None when the sequences agree, else a dict: ``t_s``, ``neuron``, ``only_in`` (which
    simulator fired), ``arrivals`` (inputs reaching that neuron within ``tie_tol`` of t, as
    ``[t, pre, weight]`` from the simulator that fired), ``refractory_end`` (earlier inputs to that
    neuron that arrived exactly, within ``tie_tol``, at the end of one of its refractory periods)
    and ``cause``:

    * ``"simultaneous_inputs"``: >= 2 inputs of mixed sign arrive at the same instant (within
      ``tie_tol``). NEST adds the weights of simultaneous inputs before it tests the threshold;
      so does sparseprop for exactly equal clocks, but arrival clocks that differ by an ulp are
      two events and the neuron may fire in between.
    * ``"input_at_refractory_end"``: an earlier input arrived exactly when a refractory period
      ended. NEST ends refractoriness first and takes the input; in sparseprop the neuron is still
      refractory at that instant (or not, by one ulp of the float sum t_spike + refractory). The
      voltages then differ and the spike sequences part later.
    * ``"unexplained"`` otherwise.
    """
    fm = cmp["first_mismatch"]
    if fm is None:
        return None
    ta, ia, tb, ib = cmp["sorted"]

    def spike_set(t, i):
        return {(int(n), float(x)) for x, n in zip(t, i)}

    # earliest spike (among the two at position fm) that has no partner in the other sequence
    cands = []
    for (t, i, t_other, i_other, who) in ((ta, ia, tb, ib, 0), (tb, ib, ta, ia, 1)):
        if fm < t.size:
            n, x = int(i[fm]), float(t[fm])
            sel = i_other == n
            partner = np.any(np.abs(t_other[sel] - x) <= max(tie_tol, 1e-15))
            if not partner:
                cands.append((x, n, who))
    if not cands:
        return {"t_s": float(min(ta[fm] if fm < ta.size else np.inf, tb[fm] if fm < tb.size else np.inf)),
                "neuron": None, "only_in": None, "arrivals": [], "refractory_end": False,
                "cause": "reordering within tolerance"}
    x, n, who = min(cands)
    t_seq, i_seq = (ta, ia) if who == 0 else (tb, ib)
    indptr = np.asarray(spec["indptr"], dtype=np.int64)
    indices = np.asarray(spec["indices"], dtype=np.int64)
    pre_of = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    syn = np.nonzero(indices == n)[0]
    tol = max(tie_tol, 1e-15)
    history = []                                      # every input to n up to x: [t, pre, weight]
    for s in syn:
        j, d, w = int(pre_of[s]), float(spec["delays"][s]), float(spec["weights"][s])
        tj = t_seq[i_seq == j] + d
        history.extend([float(tt), j, w] for tt in tj[tj <= x + tol])
    history.sort()
    arrivals = [a for a in history if abs(a[0] - x) <= tol]
    ref = float(np.broadcast_to(spec["refractory"], (indptr.size - 1,))[n])
    own = t_seq[(i_seq == n) & (t_seq < x - tol)]          # n's earlier spikes (common prefix)
    refr_end = [a for a in history for ts in own if abs(ts + ref - a[0]) <= tol]
    signs = {np.sign(a[2]) for a in arrivals}
    if len(arrivals) >= 2 and len(signs) > 1:
        cause = "simultaneous_inputs"
    elif refr_end:
        cause = "input_at_refractory_end"
    else:
        cause = "unexplained"
    return {"t_s": x, "neuron": n, "only_in": names[who], "arrivals": arrivals, "refractory_end": refr_end,
            "cause": cause}


def min_gap(times):
    """Smallest gap between consecutive distinct-position spikes (s): how close the nearest tie is."""
    t = np.sort(np.asarray(times, dtype=np.float64))
    return float(np.diff(t).min()) if t.size > 1 else float("inf")


def side_by_side(cmp, first=8, around=4, names=("sparseprop", "NEST")):
    ta, ia, tb, ib = cmp["sorted"]
    lines = [f"{'#':>7}  {names[0] + ' t (s)':>22} {'id':>6}   {names[1] + ' t (s)':>22} {'id':>6}   "
             f"{'dt (s)':>10}"]

    def row(k):
        a = (f"{ta[k]:22.15f} {ia[k]:6d}" if k < ta.size else f"{'-':>22} {'-':>6}")
        b = (f"{tb[k]:22.15f} {ib[k]:6d}" if k < tb.size else f"{'-':>22} {'-':>6}")
        dt = f"{tb[k] - ta[k]:10.2e}" if k < min(ta.size, tb.size) else ""
        flag = "  <-- ids differ" if k < min(ta.size, tb.size) and ia[k] != ib[k] else ""
        return f"{k:7d}  {a}   {b}   {dt}{flag}"

    n = max(ta.size, tb.size)
    for k in range(min(first, n)):
        lines.append(row(k))
    fm = cmp["first_mismatch"]
    if fm is not None:
        lines.append("   ...   first mismatch:")
        for k in range(max(fm - around, first), min(fm + around + 1, n)):
            lines.append(row(k))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# sparseprop half
# ----------------------------------------------------------------------------------------------

def make_network(n=1000, k=100, exc_frac=0.0, j0=1.0, g=1.0, rate=10.0, drive=None, drive_spread=0.0,
                 tau=0.01, tau_spread=0.0, v_reset=0.0, refractory=0.5e-3, delay_min=0.5e-3, delay_max=2.0e-3,
                 resolution_ms=RESOLUTION_MS, seed=1):
    """A random LIF network with fixed in-degree, on NEST's time grid.

    Neurons ``0 .. n_E-1`` (n_E = round(exc_frac*n)) are excitatory (weight ``+j0/sqrt(k)``), the
    rest inhibitory (weight ``-g*j0/sqrt(k)``). Every neuron receives exactly ``k`` synapses from
    distinct other neurons. Delays are drawn uniformly from the whole steps of the resolution in
    [delay_min, delay_max] (delay_min == delay_max: one homogeneous ``Network(delay=...)``);
    the refractory period is rounded to the grid. Drive: ``drive`` if given, else the balance
    estimate ``1 + k*rate*tau*max(0, -mean weight)`` (rate in Hz), optionally spread uniformly by
    +-``drive_spread`` (relative) across neurons. Initial voltages are uniform in [v_reset, 1).
    Membrane time constants: ``tau`` for every neuron, or with ``tau_spread`` X > 0 one per neuron,
    uniform in [tau (1 - X), tau (1 + X)] (drawn last, so the rest of the network and v0 are the
    same as with X = 0; the balance drive uses the nominal ``tau``).

    Returns ``(network, v0, info)``.
    """
    import sparseprop as sp

    if not 0.0 <= tau_spread < 1.0:          # also rejects NaN
        raise ValueError(f"tau_spread: need 0 <= tau_spread < 1 (tau_i uniform in [tau (1 - X), "
                         f"tau (1 + X)] must stay > 0), got {tau_spread!r}")
    rng = np.random.default_rng(seed)
    h = resolution_ms * 1e-3
    if k >= n:
        raise ValueError(f"k: in-degree must be < n (no self-connections), got k={k}, n={n}")
    n_exc = int(round(exc_frac * n))
    w_exc, w_inh = j0 / np.sqrt(k), -g * j0 / np.sqrt(k)
    # fixed in-degree: for every post neuron k distinct presynaptic neurons != post
    pre = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        src = rng.choice(n - 1, size=k, replace=False)
        pre[i] = src + (src >= i)
    post = np.repeat(np.arange(n), k)
    pre = pre.ravel()
    order = np.lexsort((post, pre))                   # CSR by presynaptic neuron
    pre, post = pre[order], post[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n), out=indptr[1:])
    weights = np.where(pre < n_exc, w_exc, w_inh).astype(np.float64)
    s_lo, s_hi = int(round(delay_min / h)), int(round(delay_max / h))
    if s_lo < 1 or s_hi < s_lo:
        raise ValueError(f"delay_min/delay_max: need {h} s <= delay_min <= delay_max, got "
                         f"{delay_min}, {delay_max}")
    ref_steps = int(round(refractory / h))
    if ref_steps < 1:
        raise ValueError(f"refractory: NEST needs >= one resolution step ({h} s), got {refractory}")
    refr = ref_steps * h
    if drive is None:
        mean_w = (n_exc * w_exc + (n - n_exc) * w_inh) / n
        drive = 1.0 + k * rate * tau * max(0.0, -mean_w)
    drive_arr = drive * (1.0 + drive_spread * rng.uniform(-1.0, 1.0, n)) if drive_spread else drive
    # draw order (pre, drive spread, delays, v0, tau) keeps tau_spread = 0 bit for bit as before
    delays = rng.integers(s_lo, s_hi + 1, size=post.size) * h if s_lo != s_hi else None
    v0 = rng.uniform(v_reset, 1.0, n)
    tau_arr = tau * (1.0 + tau_spread * rng.uniform(-1.0, 1.0, n)) if tau_spread else tau
    if delays is None:
        conn = sp.SparseConnectivity(indptr, post.astype(np.int32), weights)
        net = sp.Network(sp.LIF(v_reset=v_reset), n, drive_arr, tau=tau_arr, connectivity=conn,
                         delay=s_lo * h, refractory=refr)
    else:
        conn = sp.SparseConnectivity(indptr, post.astype(np.int32), weights, delays=delays)
        net = sp.Network(sp.LIF(v_reset=v_reset), n, drive_arr, tau=tau_arr, connectivity=conn,
                         refractory=refr)
    info = {"n": n, "k": k, "n_exc": n_exc, "w_exc": w_exc, "w_inh": w_inh, "drive": float(drive),
            "drive_spread": drive_spread, "tau_s": tau, "tau_spread": tau_spread,
            "tau_min_s": float(np.min(tau_arr)), "tau_max_s": float(np.max(tau_arr)), "v_reset": v_reset,
            "refractory_s": refr, "delay_min_s": s_lo * h, "delay_max_s": s_hi * h, "seed": seed}
    return net, v0, info


def export_spec(net, v0, t_max):
    """Plain description of a sparseprop LIF network with explicit connectivity (for ``run_nest``)."""
    import sparseprop as sp

    if not isinstance(net.model, sp.LIF):
        raise ValueError("network: only LIF networks map onto iaf_psc_delta_ps")
    c = net.connectivity
    if not isinstance(c, sp.SparseConnectivity):
        raise ValueError("network: export needs explicit SparseConnectivity (not procedural)")
    if getattr(net, "inputs", ()):
        raise ValueError("network: external inputs are not exported (use recurrent drive only)")
    if c.delays is None:
        delays = np.full(c.indices.shape[0], float(net.delay))
    else:
        delays = np.asarray(c.delays, dtype=np.float64)
    n = net.n
    return {"n": np.int64(n),
            "tau": np.broadcast_to(np.asarray(net.tau, dtype=np.float64), (n,)).copy(),  # per neuron
            "drive": np.broadcast_to(np.asarray(net.drive, dtype=np.float64), (n,)).copy(),
            "v_reset": np.float64(net.model.v_reset),
            "refractory": np.broadcast_to(np.asarray(net.refractory, dtype=np.float64), (n,)).copy(),
            "indptr": np.asarray(c.indptr, dtype=np.int64), "indices": np.asarray(c.indices, dtype=np.int64),
            "weights": np.asarray(c.weights, dtype=np.float64), "delays": delays,
            "v0": np.asarray(v0, dtype=np.float64), "t_max": np.float64(t_max)}


def run_comparison(*, t_max=1.0, engine="heap", threads=1, theta_mv=20.0, resolution_ms=RESOLUTION_MS,
                   nest_python=None, tie_tol=1e-12, **net_kwargs):
    """Build, simulate in both, compare. Returns the JSON-ready summary and the comparison dict."""
    import sparseprop as sp

    net, v0, info = make_network(resolution_ms=resolution_ms, **net_kwargs)
    wall0 = time.perf_counter()
    res = sp.simulate(net, t_max=t_max, initial_voltages=v0, engine=engine, progress=False)
    wall_sp = time.perf_counter() - wall0
    spec = export_spec(net, v0, t_max)
    if nest_python is None:
        if not nest_importable():
            raise RuntimeError("NEST is not importable in this interpreter: pip install nest-simulator, or pass "
                               "--nest-python /path/to/python (an interpreter that has NEST) to run the NEST half there")
        out = run_nest(spec, threads=threads, resolution_ms=resolution_ms, theta_mv=theta_mv)
    else:
        out = run_nest_subprocess(spec, nest_python, threads=threads, resolution_ms=resolution_ms,
                                  theta_mv=theta_mv)
    cmp = compare_spikes(res.times, res.neurons, out["times"], out["neurons"], tie_tol=tie_tol)
    strict = compare_spikes(res.times, res.neurons, out["times"], out["neurons"])
    summary = {
        "spikes": cmp["spikes"], "spikes_nest": cmp["spikes_b"],
        "index_mismatches": cmp["index_mismatches"], "first_mismatch": cmp["first_mismatch"],
        "matched_prefix": cmp["matched_prefix"], "max_abs_dt_s": cmp["max_abs_dt_s"],
        "mean_abs_dt_s": cmp["mean_abs_dt_s"], "tie_tol_s": tie_tol,
        "index_mismatches_strict": strict["index_mismatches"], "first_mismatch_strict": strict["first_mismatch"],
        "min_gap_s": min_gap(res.times),
        "first_mismatch_diagnosis": diagnose_first_mismatch(spec, cmp, tie_tol),
        "rate_hz": cmp["spikes"] / (net.n * t_max),
        "t_max_s": t_max, "engine": engine, "theta_mv": theta_mv, "resolution_ms": resolution_ms,
        "nest_threads": threads, **info,
        "wall_sparseprop_s": wall_sp, "wall_nest_build_s": out["wall_build_s"],
        "wall_nest_sim_s": out["wall_sim_s"], "nest_version": out["nest_version"],
        "sparseprop_version": sp.__version__,
    }
    return summary, cmp


def _parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="neurons (default 2000)")
    ap.add_argument("--k", type=int, default=100, help="in-degree (default 100)")
    ap.add_argument("--exc-frac", type=float, default=0.0,
                    help="fraction of excitatory neurons (default 0: purely inhibitory)")
    ap.add_argument("--j0", type=float, default=1.0, help="coupling: weights +-j0/sqrt(k) (default 1)")
    ap.add_argument("--g", type=float, default=1.0, help="inhibitory/excitatory weight ratio (default 1)")
    ap.add_argument("--rate", type=float, default=10.0, help="target rate for the balance drive, Hz")
    ap.add_argument("--drive", type=float, default=None, help="DC drive I (threshold 1); default: balance")
    ap.add_argument("--drive-spread", type=float, default=0.0, help="relative +- spread of the drive")
    ap.add_argument("--tau", type=float, default=0.01, help="membrane time constant, s (default 0.01)")
    ap.add_argument("--tau-spread", type=float, default=0.0,
                    help="per-neuron tau uniform in [tau (1 - X), tau (1 + X)], 0 <= X < 1 "
                         "(default 0: one tau for all)")
    ap.add_argument("--v-reset", type=float, default=0.0, help="reset voltage (threshold 1)")
    ap.add_argument("--refractory", type=float, default=0.5e-3, help="refractory period, s (default 0.5e-3)")
    ap.add_argument("--delay-min", type=float, default=0.5e-3, help="s (default 0.5e-3)")
    ap.add_argument("--delay-max", type=float, default=2.0e-3, help="s (default 2e-3; = min: homogeneous)")
    ap.add_argument("--t-max", type=float, default=2.0, help="simulated time, s (default 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--engine", choices=("heap", "dense"), default="heap")
    ap.add_argument("--theta-mv", type=float, default=20.0, help="mV per threshold unit in NEST (default 20)")
    ap.add_argument("--resolution-ms", type=float, default=RESOLUTION_MS)
    ap.add_argument("--threads", type=int, default=1, help="NEST local_num_threads (default 1)")
    ap.add_argument("--nest-python", default=None,
                    help="run the NEST half in this interpreter (default: in-process if nest imports)")
    ap.add_argument("--tie-tol", type=float, default=1e-12,
                    help="spikes closer than this (s) count as simultaneous when sorting (default 1e-12; "
                         "0 = strict (time, id) order)")
    ap.add_argument("--json", action="store_true", help="print exactly one JSON line")
    ap.add_argument("--nest-half", nargs=2, metavar=("SPEC_NPZ", "OUT_NPZ"), help=argparse.SUPPRESS)
    return ap


def main(argv=None):
    ap = _parser()
    args = ap.parse_args(argv)
    if not 0.0 <= args.tau_spread < 1.0:
        ap.error(f"--tau-spread: need 0 <= X < 1 (tau_i uniform in [tau (1 - X), tau (1 + X)] must stay > 0), "
                 f"got {args.tau_spread!r}")
    if args.nest_half:
        return _nest_half_main(*args.nest_half, args.threads, args.resolution_ms, args.theta_mv)
    summary, cmp = run_comparison(
        t_max=args.t_max, engine=args.engine, threads=args.threads, theta_mv=args.theta_mv,
        resolution_ms=args.resolution_ms, nest_python=args.nest_python, tie_tol=args.tie_tol,
        n=args.n, k=args.k, exc_frac=args.exc_frac, j0=args.j0, g=args.g, rate=args.rate, drive=args.drive,
        drive_spread=args.drive_spread, tau=args.tau, tau_spread=args.tau_spread, v_reset=args.v_reset, refractory=args.refractory,
        delay_min=args.delay_min, delay_max=args.delay_max, seed=args.seed)
    if args.json:
        print(json.dumps(summary))
    else:
        print(side_by_side(cmp))
        print()
        for key in ("spikes", "spikes_nest", "index_mismatches", "first_mismatch", "index_mismatches_strict",
                    "first_mismatch_strict", "max_abs_dt_s",
                    "mean_abs_dt_s", "min_gap_s", "rate_hz", "wall_sparseprop_s", "wall_nest_build_s",
                    "wall_nest_sim_s"):
            print(f"{key:>18}: {summary[key]}")
        diag = summary["first_mismatch_diagnosis"]
        if diag is not None:
            print(f"first mismatch: neuron {diag['neuron']} fires at t = {diag['t_s']!r} s only in "
                  f"{diag['only_in']}; cause: {diag['cause']}")
            for t, j, w in diag["arrivals"]:
                print(f"    input at {t!r} s from neuron {j}, weight {w:+g}")
            for t, j, w in diag["refractory_end"]:
                print(f"    earlier input at the end of its refractory period: {t!r} s from neuron {j}, weight {w:+g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
