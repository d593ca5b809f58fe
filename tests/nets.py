"""Network builders and comparison helpers shared by the sparseprop test modules.

Only builds descriptions through the public API (sp.Network, sp.SparseConnectivity,
sp.FixedOutDegree) and compares results; all reference numbers come from tests/oracle.py.
"""
import math

import numpy as np

import sparseprop as sp

import oracle


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


def run_pair(net, v0, spikes=None, t_max=None, engine="heap"):
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
