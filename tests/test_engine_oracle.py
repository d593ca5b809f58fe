"""The event engines against the independent brute-force oracle (tests/oracle.py).

The package's spike sequence must equal the oracle's exactly (same neuron ids in the same
order) with spike times within 1e-12 s. Both start from the same voltages
(``initial_voltages=``). Time constants and spike counts keep all times O(1 s) or less, so
1e-12 s is far above float64 roundoff (~1e-16 s) but far below any modelling difference.

Roundoff-amplification budget: LIF networks with mostly inhibitory coupling are stable
(perturbations shrink), so 500 spikes are safe. QIF networks are chaotic (positive Lyapunov
exponent), so a 1e-16 difference grows exponentially with time; we keep QIF runs to 200 spikes
(a few periods per neuron), where measured sensitivity of the spike times to a 1e-13
perturbation of one initial voltage is < 0.05 (i.e. < 1e-14 s), so 1e-12 is still robust.
"""
import math

import numpy as np
import pytest

import sparseprop as sp  # noqa: E402  (a broken build must fail, not skip)

import nets  # noqa: E402
import oracle  # noqa: E402

TAU = 0.01


def _drive(rng, name, n, hetero):
    if name == "lif":
        return rng.uniform(1.2, 3.0, n) if hetero else 2.0
    return rng.uniform(0.5, 2.0, n) if hetero else 1.0


def _csr_net(rng, name, n, hetero, density=None, how="arrays"):
    density = density if density is not None else (0.5 if n <= 10 else 0.2)
    if name == "lif":
        W = nets.random_W(rng, n, density, w_inh=0.3, w_exc=0.1, p_exc=0.2)
    else:
        W = nets.random_W(rng, n, density, w_inh=0.3, w_exc=0.2, p_exc=0.3)
    if how == "arrays":
        indptr, indices, weights = nets.csr_from_dense(W, rng)
        conn = sp.SparseConnectivity(indptr, indices, weights)
        net = sp.Network(nets.model(name), n, _drive(rng, name, n, hetero), tau=TAU, connectivity=conn)
        for j in range(n):  # the description reproduces our rows, in delivery order
            t, w = net.targets(j)
            np.testing.assert_array_equal(np.asarray(t), indices[indptr[j]:indptr[j + 1]])
            np.testing.assert_array_equal(np.asarray(w), weights[indptr[j]:indptr[j + 1]])
        return net
    if how == "dense_matrix":
        conn = sp.SparseConnectivity.from_matrix(W)
    else:
        import scipy.sparse

        conn = sp.SparseConnectivity.from_matrix(scipy.sparse.csr_matrix(W))
    net = sp.Network(nets.model(name), n, _drive(rng, name, n, hetero), tau=TAU, connectivity=conn)
    for j in range(n):  # from_matrix uses W[post, pre]
        t, w = net.targets(j)
        t = np.asarray(t)
        np.testing.assert_array_equal(np.sort(t), np.flatnonzero(W[:, j]))
        np.testing.assert_array_equal(np.asarray(w), W[t, j])
    return net


# ------------------------------------------------------------------ explicit CSR networks
@pytest.mark.parametrize("hetero", [False, True], ids=["homog", "perneuron"])
@pytest.mark.parametrize("n,seed", [(5, 1), (20, 2), (60, 3)])
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_lif_csr_vs_oracle(n, seed, hetero, engine):
    rng = np.random.default_rng(seed)
    net = _csr_net(rng, "lif", n, hetero)
    v0 = nets.initial_voltages(rng, "lif", net.drive, n)
    res, ores = nets.run_pair(net, v0, spikes=500, engine=engine)
    nets.assert_same_spikes(res, ores)


# QIF is chaotic: 200 spikes only (see module docstring)
@pytest.mark.parametrize("hetero", [False, True], ids=["homog", "perneuron"])
@pytest.mark.parametrize("n,seed", [(5, 11), (20, 12), (60, 13)])
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_qif_csr_vs_oracle(n, seed, hetero, engine):
    rng = np.random.default_rng(seed)
    net = _csr_net(rng, "qif", n, hetero)
    v0 = nets.initial_voltages(rng, "qif", net.drive, n)
    res, ores = nets.run_pair(net, v0, spikes=200, engine=engine)
    nets.assert_same_spikes(res, ores)


@pytest.mark.parametrize("how", ["dense_matrix", "scipy_sparse"])
@pytest.mark.parametrize("name", ["lif", "qif"])
def test_from_matrix_vs_oracle(name, how):
    rng = np.random.default_rng(21)
    n = 30
    net = _csr_net(rng, name, n, True, how=how)
    v0 = nets.initial_voltages(rng, name, net.drive, n)
    res, ores = nets.run_pair(net, v0, spikes=500 if name == "lif" else 200)
    nets.assert_same_spikes(res, ores)


@pytest.mark.parametrize("v_reset", [-0.5, 0.3])
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_lif_v_reset_vs_oracle(v_reset, engine):
    rng = np.random.default_rng(2)
    n = 20
    W = nets.random_W(rng, n, 0.2, w_inh=0.3, w_exc=0.1, p_exc=0.2)
    net = sp.Network(sp.LIF(v_reset=v_reset), n, rng.uniform(1.2, 3.0, n), tau=TAU,
                     connectivity=sp.SparseConnectivity.from_matrix(W))
    v0 = rng.uniform(v_reset, 0.95, n)
    res, ores = nets.run_pair(net, v0, spikes=500, engine=engine)
    nets.assert_same_spikes(res, ores)


@pytest.mark.parametrize("name", ["lif", "qif"])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_csr_duplicates_and_self_connections_vs_oracle(seed, engine, name):
    # rows may repeat a target (two inputs, delivered in order: here back to back, which the
    # engine's one-behind queue update must respect) and contain the presynaptic neuron itself
    # (it has already been reset when its own input arrives)
    rng = np.random.default_rng(seed)
    n = 15
    indptr, indices, weights = [0], [], []
    for j in range(n):
        t = rng.integers(0, n, size=4)
        t[0] = j
        t[1] = t[2]
        indices += t.tolist()
        weights += rng.uniform(-0.3, 0.15, 4).tolist()
        indptr.append(len(indices))
    conn = sp.SparseConnectivity(np.array(indptr), np.array(indices), np.array(weights))
    drive = rng.uniform(1.2, 2.5, n)
    net = sp.Network(nets.model(name), n, drive if name == "lif" else 1.5, tau=TAU, connectivity=conn)
    v0 = nets.initial_voltages(rng, name, net.drive, n)
    res, ores = nets.run_pair(net, v0, spikes=500 if name == "lif" else 200, engine=engine)
    nets.assert_same_spikes(res, ores)


# ------------------------------------------------------------------ procedural networks
def test_fixed_out_degree_targets_contract():
    n, k = 50, 7
    net = sp.Network(sp.LIF(), n, 2.0, tau=TAU, connectivity=sp.FixedOutDegree(k, -0.2, seed=9))
    for j in range(n):
        t, w = net.targets(j)
        t, w = np.asarray(t), np.asarray(w)
        assert t.shape == (k,) and w.shape == (k,)
        assert len(set(t.tolist())) == k, "targets must be distinct"
        assert j not in t, "no self-connections"
        assert np.all((t >= 0) & (t < n))
        assert np.all(w == -0.2)
        t2, _ = net.targets(j)
        np.testing.assert_array_equal(t, np.asarray(t2))  # regenerated identically
    # a different seed gives a different graph
    net2 = sp.Network(sp.LIF(), n, 2.0, tau=TAU, connectivity=sp.FixedOutDegree(k, -0.2, seed=10))
    assert any(not np.array_equal(net.targets(j)[0], net2.targets(j)[0]) for j in range(n))


@pytest.mark.parametrize("hetero", [False, True], ids=["homog", "perneuron"])
@pytest.mark.parametrize("name,n,k,w,spikes", [
    ("lif", 10, 3, -0.25, 500),
    ("lif", 40, 8, -0.15, 500),
    ("lif", 60, 5, 0.05, 500),   # purely excitatory, weak
    ("qif", 10, 3, -0.3, 200),   # QIF: chaotic, see module docstring
    ("qif", 40, 8, -0.2, 200),
])
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_procedural_vs_oracle(name, n, k, w, spikes, hetero, engine):
    rng = np.random.default_rng(100 + n + k)
    drive = _drive(rng, name, n, hetero)
    net = sp.Network(nets.model(name), n, drive, tau=TAU, connectivity=sp.FixedOutDegree(k, w, seed=4))
    v0 = nets.initial_voltages(rng, name, drive, n)
    res, ores = nets.run_pair(net, v0, spikes=spikes, engine=engine)
    nets.assert_same_spikes(res, ores)


@pytest.mark.parametrize("name", ["lif", "qif"])
def test_default_initial_phases_vs_oracle(name):
    # default IC: phases = reset + u (threshold - reset), u = default_rng(seed_ic).random(n)
    n = 25
    rng = np.random.default_rng(31)
    drive = _drive(rng, name, n, True)
    net = sp.Network(nets.model(name), n, drive, tau=TAU, connectivity=sp.FixedOutDegree(4, -0.2, seed=2))
    res = sp.simulate(net, spikes=200, seed_ic=17)
    v0 = oracle.default_initial_voltages(net, 17)
    ores = oracle.simulate_net(net, v0, spikes=200)
    nets.assert_same_spikes(res, ores)


def test_balanced_network_vs_oracle():
    net = sp.balanced_network(n=200, k=20, j0=1.0, rate=1.0, tau=TAU, model="lif", seed_net=3)
    np.testing.assert_allclose(np.asarray(net.drive), 1.0 + TAU * math.sqrt(20), rtol=1e-15)
    t, w = net.targets(0)
    np.testing.assert_allclose(np.asarray(w), -1.0 / math.sqrt(20), rtol=1e-15)
    rng = np.random.default_rng(5)
    v0 = rng.uniform(0.0, 0.95, 200)
    res, ores = nets.run_pair(net, v0, spikes=500)
    nets.assert_same_spikes(res, ores)


# ------------------------------------------------------------------ mixed supra/subthreshold LIF
def _mixed_W(rng, n, n_sub):
    """Neurons 0..n-1; drives: the n_sub neurons in `sub` are subthreshold. Every neuron gets
    at most 2 excitatory inputs of <= 0.4 (sum < 1 = threshold - reset), so a neuron that
    fired at an instant can never be re-driven past threshold at that same instant."""
    W = nets.random_W(rng, n, 0.15, w_inh=0.15, w_exc=0.0, p_exc=0.0)
    for post in range(n):
        pres = rng.choice([p for p in range(n) if p != post], size=2, replace=False)
        W[post, pres] = rng.uniform(0.25, 0.4, 2)
    return W


@pytest.mark.parametrize("n,seed", [(12, 1), (40, 2)])
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_lif_mixed_subthreshold_vs_oracle(n, seed, engine):
    rng = np.random.default_rng(seed)
    n_sub = n // 3
    drive = rng.uniform(1.3, 2.5, n)
    sub = rng.choice(n, size=n_sub, replace=False)
    drive[sub] = rng.uniform(0.6, 0.95, n_sub)
    W = _mixed_W(rng, n, n_sub)
    indptr, indices, weights = nets.csr_from_dense(W, rng)
    net = sp.Network(sp.LIF(), n, drive, tau=TAU,
                     connectivity=sp.SparseConnectivity(indptr, indices, weights))
    v0 = rng.uniform(0.0, 0.95, n)
    res, ores = nets.run_pair(net, v0, spikes=500, engine=engine)
    nets.assert_same_spikes(res, ores)
    fired = set(ores.neurons.tolist())
    assert len(fired & set(sub.tolist())) >= n_sub // 2, "test must exercise subthreshold firing"
    assert np.any(np.diff(ores.times) == 0.0), "test must exercise cascades"


def test_lif_mixed_final_voltages_vs_oracle():
    rng = np.random.default_rng(8)
    n = 20
    drive = rng.uniform(1.3, 2.5, n)
    drive[:6] = rng.uniform(0.6, 0.95, 6)
    W = _mixed_W(rng, n, 6)
    net = sp.Network(sp.LIF(), n, drive, tau=TAU, connectivity=sp.SparseConnectivity.from_matrix(W))
    v0 = rng.uniform(0.0, 0.95, n)
    t_max = 0.0923  # not a spike time
    res, ores = nets.run_pair(net, v0, t_max=t_max)
    nets.assert_same_spikes(res, ores)
    assert res.t_end == pytest.approx(t_max, abs=1e-15)
    np.testing.assert_allclose(res.final_voltages(), ores.final_voltages, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["lif", "qif"])
def test_final_voltages_vs_oracle(name):
    rng = np.random.default_rng(9)
    n = 30
    net = _csr_net(rng, name, n, True)
    v0 = nets.initial_voltages(rng, name, net.drive, n)
    t_max = 0.0731 if name == "lif" else 0.0517
    res, ores = nets.run_pair(net, v0, t_max=t_max)
    nets.assert_same_spikes(res, ores)
    assert ores.times.size > 30
    np.testing.assert_allclose(nets.voltage_angle(name, res.final_voltages(), net.drive),
                               nets.voltage_angle(name, ores.final_voltages, net.drive),
                               rtol=0, atol=1e-12)


# ------------------------------------------------------------------ hand-built cascades
def _cascade_net():
    # 0 (I = 2) fires first and delivers +0.6 to 3, then to 1 (both at rest 0.5, I = 0.5): both
    # reach 1.1, past threshold. 1 fires before 3 (lower index) and sends -5 to 3 (3 takes it:
    # same-instant inputs are summed, 3 drops to -3.9 and will not fire) and +0.6 to 2 (past
    # threshold). 2 fires next (index order, not FIFO) and sends -5 to 3 (-8.9). Three spikes at one
    # instant; then 0 alone, tau ln 2 later (from reset 0 towards I = 2).
    indptr = np.array([0, 2, 4, 5, 5], dtype=np.int64)
    indices = np.array([3, 1, 3, 2, 3], dtype=np.int64)
    weights = np.array([0.6, 0.6, -5.0, 0.6, -5.0])
    drive = np.array([2.0, 0.5, 0.5, 0.5])
    net = sp.Network(sp.LIF(), 4, drive, tau=TAU,
                     connectivity=sp.SparseConnectivity(indptr, indices, weights))
    v0 = np.array([0.99, 0.5, 0.5, 0.5])
    return net, v0


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_cascade_order_and_same_instant_inputs_are_summed(engine):
    net, v0 = _cascade_net()
    res = sp.simulate(net, spikes=4, initial_voltages=v0, engine=engine)
    np.testing.assert_array_equal(np.asarray(res.neurons), [0, 1, 2, 0])
    times = np.asarray(res.times)
    assert np.all(times[:3] == times[0]), f"cascade spikes must share one instant: {times!r}"
    t0 = TAU * math.log(1.01)  # LIF from 0.99 with I = 2: tau ln((I - V)/(I - 1))
    assert abs(times[0] - t0) <= 1e-12 * t0 + 1e-16
    assert times[3] == pytest.approx(t0 + TAU * math.log(2.0), rel=1e-12)
    ores = oracle.simulate_net(net, v0, spikes=4)
    nets.assert_same_spikes(res, ores)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_cascade_final_voltages(engine):
    # after the cascade at t0, 1 and 2 restart from reset 0 and relax towards 0.5, 3 from
    # 1.1 - 10 = -8.9; 0 restarts from 0 towards 2 (next spike at t0 + tau ln 2). Stop at t0 + tau/2.
    net, v0 = _cascade_net()
    t0 = TAU * math.log(1.01)
    res = sp.simulate(net, t_max=t0 + TAU / 2, initial_voltages=v0, engine=engine)
    np.testing.assert_array_equal(np.asarray(res.neurons), [0, 1, 2])
    d = math.exp(-0.5)
    np.testing.assert_allclose(res.final_voltages(), [2.0 * (1 - d), 0.5 * (1 - d), 0.5 * (1 - d),
                                                      0.5 - 9.4 * d], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_cascade_longer_run_vs_oracle(engine):
    net, v0 = _cascade_net()
    res, ores = nets.run_pair(net, v0, spikes=400, engine=engine)
    nets.assert_same_spikes(res, ores)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_input_exactly_to_threshold_fires(engine):
    # "driven to or past threshold": 1 sits at its rest point V = I = 0.5 and receives
    # exactly +0.5 -> V = 1.0 (all numbers exact in binary): it must fire at that instant.
    indptr = np.array([0, 1, 1], dtype=np.int64)
    net = sp.Network(sp.LIF(), 2, np.array([2.0, 0.5]), tau=TAU,
                     connectivity=sp.SparseConnectivity(indptr, np.array([1], np.int64), np.array([0.5])))
    v0 = np.array([0.5, 0.5])
    res = sp.simulate(net, spikes=2, initial_voltages=v0, engine=engine)
    np.testing.assert_array_equal(np.asarray(res.neurons), [0, 1])
    assert res.times[0] == res.times[1]


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_simultaneous_natural_spikes_increasing_index(engine):
    # neurons 5 and 2 (and 4) are identical and uncoupled from each other: they reach
    # threshold at exactly the same time and must be reported in increasing index order
    n = 6
    drive = np.array([1.7, 2.3, 2.0, 1.4, 2.0, 2.0])
    indptr = np.array([0, 1, 2, 2, 3, 3, 3], dtype=np.int64)
    indices = np.array([3, 0, 1], dtype=np.int64)
    weights = np.array([-0.1, -0.1, -0.1])
    net = sp.Network(sp.LIF(), n, drive, tau=TAU,
                     connectivity=sp.SparseConnectivity(indptr, indices, weights))
    v0 = np.array([0.1, 0.2, 0.7, 0.3, 0.7, 0.7])
    res = sp.simulate(net, spikes=40, initial_voltages=v0, engine=engine)
    neurons, times = np.asarray(res.neurons), np.asarray(res.times)
    for a, b in [(2, 4), (4, 5)]:
        ia, ib = np.flatnonzero(neurons == a), np.flatnonzero(neurons == b)
        m = min(ia.size, ib.size)
        assert m >= 3
        assert np.all(ia[:m] < ib[:m])
        np.testing.assert_array_equal(times[ia[:m]], times[ib[:m]])
    ores = oracle.simulate_net(net, v0, spikes=40)
    nets.assert_same_spikes(res, ores)


# ------------------------------------------------------------------ heap vs dense engine
def _assert_identical(a, b):
    assert np.array_equal(np.asarray(a.times), np.asarray(b.times)), "times differ"
    assert np.array_equal(np.asarray(a.neurons), np.asarray(b.neurons)), "neurons differ"


@pytest.mark.parametrize("name", ["lif", "qif"])
def test_tree_heap_dense_identical_balanced_2000(name):
    net = sp.balanced_network(n=2000, k=50, model=name, seed_net=7)
    a = sp.simulate(net, spikes=20000, seed_ic=3, engine="heap")
    b = sp.simulate(net, spikes=20000, seed_ic=3, engine="dense")
    c = sp.simulate(net, spikes=20000, seed_ic=3, engine="tree")
    _assert_identical(c, b)
    assert a.n_spikes == 20000
    _assert_identical(a, b)


@pytest.mark.parametrize("name", ["lif", "qif"])
def test_tree_heap_dense_identical_perneuron_drive(name):
    rng = np.random.default_rng(77)
    n = 2000
    drive = rng.uniform(1.1, 2.0, n) if name == "lif" else rng.uniform(0.2, 2.0, n)
    net = sp.Network(nets.model(name), n, drive, tau=TAU, connectivity=sp.FixedOutDegree(50, -0.1, seed=3))
    a = sp.simulate(net, spikes=20000, seed_ic=4, engine="heap")
    b = sp.simulate(net, spikes=20000, seed_ic=4, engine="dense")
    c = sp.simulate(net, spikes=20000, seed_ic=4, engine="tree")
    _assert_identical(c, b)
    _assert_identical(a, b)


def test_tree_heap_dense_identical_mixed_csr():
    rng = np.random.default_rng(78)
    n = 300
    drive = rng.uniform(1.3, 2.5, n)
    sub = rng.choice(n, 100, replace=False)
    drive[sub] = rng.uniform(0.6, 0.95, 100)
    W = _mixed_W(rng, n, 100)
    net = sp.Network(sp.LIF(), n, drive, tau=TAU, connectivity=sp.SparseConnectivity.from_matrix(W))
    v0 = rng.uniform(0, 0.95, n)
    a = sp.simulate(net, spikes=10000, initial_voltages=v0, engine="heap")
    b = sp.simulate(net, spikes=10000, initial_voltages=v0, engine="dense")
    c = sp.simulate(net, spikes=10000, initial_voltages=v0, engine="tree")
    _assert_identical(c, b)
    _assert_identical(a, b)


# ------------------------------------------------------------------ larger networks
@pytest.mark.parametrize("hetero", [False, True], ids=["homog", "perneuron"])
def test_lif_larger_csr_vs_oracle(hetero):
    rng = np.random.default_rng(500)
    n = 300
    net = _csr_net(rng, "lif", n, hetero, density=0.05)
    v0 = nets.initial_voltages(rng, "lif", net.drive, n)
    res, ores = nets.run_pair(net, v0, spikes=5000)
    nets.assert_same_spikes(res, ores)


def test_lif_mixed_larger_vs_oracle():
    rng = np.random.default_rng(501)
    n = 200
    drive = rng.uniform(1.3, 2.5, n)
    sub = rng.choice(n, 70, replace=False)
    drive[sub] = rng.uniform(0.6, 0.95, 70)
    net = sp.Network(sp.LIF(), n, drive, tau=TAU,
                     connectivity=sp.SparseConnectivity.from_matrix(_mixed_W(rng, n, 70)))
    v0 = rng.uniform(0, 0.95, n)
    res, ores = nets.run_pair(net, v0, spikes=5000)
    nets.assert_same_spikes(res, ores)


def _mixed_default_net():
    rng = np.random.default_rng(502)
    n = 30
    drive = rng.uniform(1.3, 2.5, n)
    drive[::3] = 0.8
    return sp.Network(sp.LIF(), n, drive, tau=TAU,
                      connectivity=sp.SparseConnectivity.from_matrix(_mixed_W(rng, n, 10)))


def test_default_ic_mixed_network_documented_rule():
    # simulate()'s docstring: neurons without a free orbit start at v_reset + u (1 - v_reset),
    # with the same uniform draw u that gives the other neurons their phases
    net = _mixed_default_net()
    n, drive = net.n, np.asarray(net.drive)
    res = sp.simulate(net, spikes=300, seed_ic=8)
    u = np.random.default_rng(8).random(n)
    supra = drive > 1.0
    v0 = np.where(supra, oracle.lif_voltage_from_phase(u, np.where(supra, drive, 2.0)), u)
    ores = oracle.simulate_net(net, v0, spikes=300)
    nets.assert_same_spikes(res, ores)


def test_default_ic_mixed_network_no_runtime_warning():
    import warnings

    net = _mixed_default_net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from NaN intermediates
        sp.simulate(net, spikes=10, seed_ic=8)


# ------------------------------------------------------------------ slow, larger variants
@pytest.mark.slow
def test_lif_procedural_2000_vs_oracle_slow():
    rng = np.random.default_rng(600)
    n = 2000
    drive = rng.uniform(1.2, 2.5, n)
    net = sp.Network(sp.LIF(), n, drive, tau=TAU, connectivity=sp.FixedOutDegree(50, -0.1, seed=6))
    v0 = rng.uniform(0.0, 0.95, n)
    res, ores = nets.run_pair(net, v0, spikes=20000)
    nets.assert_same_spikes(res, ores)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lif", "qif"])
def test_tree_heap_dense_identical_large_slow(name):
    net = sp.balanced_network(n=20000, k=100, model=name, seed_net=11)
    a = sp.simulate(net, spikes=200000, seed_ic=5, engine="heap")
    b = sp.simulate(net, spikes=200000, seed_ic=5, engine="dense")
    c = sp.simulate(net, spikes=200000, seed_ic=5, engine="tree")
    _assert_identical(c, b)
    _assert_identical(a, b)
