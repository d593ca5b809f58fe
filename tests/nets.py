"""Network builders and comparison helpers shared by the sparseprop test modules.

Only builds descriptions through the public API (sp.Network, sp.SparseConnectivity,
sp.FixedOutDegree) and compares results; all reference numbers come from tests/oracle.py.
"""
import math

import numpy as np

import sparseprop as sp

import oracle

# Every event queue: the SparseProp tree (default) and heap, and the O(N) dense baseline. All three
# order events by (key, id), so each test that runs them expects the same results from each.
ENGINES = ("tree", "heap", "dense")


def model(name, v_reset=0.0):
    return sp.LIF(v_reset=v_reset) if name == "lif" else sp.QIF()


def empty_csr(n):
    return sp.SparseConnectivity(
        np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    )


def isolated(name, n, drive, tau=0.01, v_reset=0.0):
    return sp.Network(model(name, v_reset), n, drive, tau=tau, connectivity=empty_csr(n))


def csr_from_dense(W, rng=None):
    """CSR by presynaptic neuron from W[post, pre]; rows optionally shuffled (delivery order)."""
    n = W.shape[0]
    indptr = [0]
    indices, weights = [], []
    for j in range(n):
        idx = np.flatnonzero(W[:, j])
        if rng is not None:
            idx = rng.permutation(idx)
        indices.extend(idx.tolist())
        weights.extend(W[idx, j].tolist())
        indptr.append(len(indices))
    return (np.array(indptr, dtype=np.int64), np.array(indices, dtype=np.int64),
            np.array(weights, dtype=np.float64))


def random_W(rng, n, density, w_inh, w_exc, p_exc):
    """W[post, pre]: sparse, no self-connections, inhibitory U(-w_inh, 0) with probability
    1 - p_exc, excitatory U(0, w_exc) with probability p_exc."""
    mask = rng.random((n, n)) < density
    exc = rng.random((n, n)) < p_exc
    W = np.where(exc, rng.uniform(0.0, w_exc, (n, n)), rng.uniform(-w_inh, 0.0, (n, n))) * mask
    np.fill_diagonal(W, 0.0)
    return W


def initial_voltages(rng, name, drive, n):
    """Random voltages strictly between reset and threshold on the free orbit (or below rest)."""
    drive = np.broadcast_to(np.asarray(drive, float), (n,))
    if name == "lif":
        return rng.uniform(0.0, 0.95, n)
    return np.sqrt(drive) * np.tan(rng.uniform(-0.45 * math.pi, 0.45 * math.pi, n))


def run_pair(net, v0, spikes=None, t_max=None, engine="tree"):
    res = sp.simulate(net, spikes=spikes, t_max=t_max, initial_voltages=v0, engine=engine)
    ores = oracle.simulate_net(net, v0, spikes=spikes, t_max=t_max)
    return res, ores


def assert_same_spikes(res, ores, atol=1e-12):
    times = np.asarray(res.times)
    neurons = np.asarray(res.neurons)
    assert times.dtype == np.float64
    n = min(len(neurons), len(ores.neurons))
    if not np.array_equal(neurons[:n], ores.neurons[:n]):
        k = int(np.flatnonzero(neurons[:n] != ores.neurons[:n])[0])
        raise AssertionError(
            f"spike sequences differ at spike {k}: package (t={times[k]!r}, j={neurons[k]}) "
            f"vs oracle (t={ores.times[k]!r}, j={ores.neurons[k]}); "
            f"previous: package {list(zip(times[max(0, k - 3):k].tolist(), neurons[max(0, k - 3):k].tolist()))}"
        )
    assert len(neurons) == len(ores.neurons), (len(neurons), len(ores.neurons))
    err = np.max(np.abs(times - ores.times)) if n else 0.0
    assert err <= atol, f"max |t_package - t_oracle| = {err:.3e} s > {atol:.0e}"


def voltage_angle(name, v, drive):
    """Compare QIF voltages in the bounded angle atan(V/sqrt(I)); LIF voltages as they are."""
    if name == "lif":
        return np.asarray(v, float)
    return np.arctan(np.asarray(v, float) / np.sqrt(np.asarray(drive, float)))


def assert_matches(res, ores, rtol=1e-12, atol=1e-15):
    """Same spike ids in the same order, times equal to `rtol` relative (+ `atol` seconds)."""
    t = np.asarray(res.times)
    ids = np.asarray(res.neurons)
    m = min(ids.shape[0], ores.neurons.shape[0])
    bad = np.flatnonzero((ids[:m] != ores.neurons[:m])
                         | (np.abs(t[:m] - ores.times[:m]) > rtol * np.abs(ores.times[:m]) + atol))
    if bad.size:
        k = int(bad[0])
        lo = max(0, k - 3)
        raise AssertionError(
            f"spike {k} differs: engine (t={t[k]!r}, j={ids[k]}) vs oracle (t={ores.times[k]!r}, "
            f"j={ores.neurons[k]}); before: engine {list(zip(t[lo:k].tolist(), ids[lo:k].tolist()))} "
            f"oracle {list(zip(ores.times[lo:k].tolist(), ores.neurons[lo:k].tolist()))}")
    assert ids.shape[0] == ores.neurons.shape[0], (ids.shape[0], ores.neurons.shape[0])


def same_bits(a, b):
    return (np.array_equal(np.asarray(a.times), np.asarray(b.times))
            and np.array_equal(np.asarray(a.neurons), np.asarray(b.neurons)))


def assert_same_state(a, b):
    """Two NetworkStates are identical: states, clock, epoch, time, spike count, network and
    pending events, to the bit."""
    np.testing.assert_array_equal(a.states, b.states)
    assert (a.clock, a.n_renorm, a.t, a.n_spikes, a.fingerprint) == (b.clock, b.n_renorm, b.t, b.n_spikes,
                                                                      b.fingerprint)
    assert set(a.events) == set(b.events)
    for key, val in a.events.items():
        np.testing.assert_array_equal(np.asarray(b.events[key]), np.asarray(val), err_msg=key)


def concat(parts):
    return (np.concatenate([np.asarray(p.times) for p in parts]),
            np.concatenate([np.asarray(p.neurons) for p in parts]))


def csr(rows, n_post=None, delays=None):
    """CSR from a list of rows [(target, weight), ...]; delays: flat per-synapse list or None."""
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    indices = np.array([i for r in rows for i, _ in r], dtype=np.int64)
    weights = np.array([w for r in rows for _, w in r], dtype=np.float64)
    return sp.SparseConnectivity(indptr, indices, weights,
                                 delays=None if delays is None else np.asarray(delays, dtype=float),
                                 n_post=n_post)


def assert_chained_runs_equal(net, full, t_max, first, fractions, engine):
    """Runs chained through final_state equal `full` (one run to t_max) bit for bit. Cuts: 0.1 us
    after some spikes (the spiker refractory, its deliveries in flight) and at `fractions` of
    t_max; `first` = keyword arguments of the first run (initial state, seed_input). Returns the
    parts; asserts that deliveries and refractory periods did cross cuts."""
    ft = np.asarray(full.times)
    n_sp = ft.shape[0]
    cuts = np.unique(np.r_[ft[[n_sp // 7, n_sp // 3, n_sp // 2, (4 * n_sp) // 5]] + 1e-7,
                           [f * t_max for f in fractions], t_max])
    parts = [sp.simulate(net, t_max=float(cuts[0]), engine=engine, **first)]
    in_flight = refractory = 0
    for c in cuts[1:].tolist():
        ev = parts[-1].final_state.events
        in_flight += len(ev["pending_clock"])
        refractory += int(np.sum(np.isfinite(ev["refractory_until"])))
        parts.append(sp.simulate(net, t_max=c, state=parts[-1].final_state, engine=engine))
    t, ids = concat(parts)
    np.testing.assert_array_equal(ids, full.neurons)
    np.testing.assert_array_equal(t, full.times)
    np.testing.assert_array_equal(parts[-1].final_state.states, full.final_state.states)
    assert parts[-1].final_state.clock == full.final_state.clock
    assert in_flight > 0 and refractory > 0
    return parts
