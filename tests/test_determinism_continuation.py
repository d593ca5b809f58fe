"""Determinism (bit for bit), exact continuation from a final state, and long-run precision."""
import math

import numpy as np
import pytest

import sparseprop as sp  # noqa: E402  (a broken build must fail, not skip)

import nets  # noqa: E402
import oracle  # noqa: E402

TAU = 0.01


def _nets():
    rng = np.random.default_rng(12)
    yield "lif_balanced", sp.balanced_network(n=1000, k=50, model="lif", seed_net=1)
    yield "qif_balanced", sp.balanced_network(n=1000, k=50, model="qif", seed_net=1)
    yield "lif_perneuron", sp.Network(sp.LIF(), 500, rng.uniform(1.1, 2.0, 500), tau=TAU,
                                      connectivity=sp.FixedOutDegree(20, -0.2, seed=2))
    W = nets.random_W(rng, 200, 0.05, w_inh=0.2, w_exc=0.1, p_exc=0.3)
    drive = rng.uniform(1.2, 2.5, 200)
    drive[:50] = 0.9  # some subthreshold neurons
    yield "lif_mixed_csr", sp.Network(sp.LIF(), 200, drive, tau=TAU,
                                      connectivity=sp.SparseConnectivity.from_matrix(W))


NETS = dict(_nets())
NAMES = list(NETS)


def _ic(name):
    # mixed networks have no phase for subthreshold neurons: give voltages
    if name == "lif_mixed_csr":
        return {"initial_voltages": np.random.default_rng(3).uniform(0.0, 0.95, 200)}
    return {"seed_ic": 3}


# ----------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_same_seed_bit_identical(name, engine):
    net = NETS[name]
    a = sp.simulate(net, spikes=5000, engine=engine, **_ic(name))
    b = sp.simulate(net, spikes=5000, engine=engine, **_ic(name))
    assert a.n_spikes == 5000
    assert nets.same_bits(a, b)


@pytest.mark.parametrize("model", ["lif", "qif"])
def test_rebuilt_network_bit_identical(model):
    a = sp.simulate(sp.balanced_network(n=800, k=40, model=model, seed_net=5), spikes=4000, seed_ic=9)
    b = sp.simulate(sp.balanced_network(n=800, k=40, model=model, seed_net=5), spikes=4000, seed_ic=9)
    assert nets.same_bits(a, b)
    # and through the plain-dict description
    net = sp.balanced_network(n=800, k=40, model=model, seed_net=5)
    c = sp.simulate(sp.Network.from_dict(net.to_dict()), spikes=4000, seed_ic=9)
    assert nets.same_bits(a, c)


@pytest.mark.parametrize("model", ["lif", "qif"])
def test_different_seeds_differ(model):
    net = sp.balanced_network(n=800, k=40, model=model, seed_net=5)
    a = sp.simulate(net, spikes=2000, seed_ic=1)
    b = sp.simulate(net, spikes=2000, seed_ic=2)
    assert not np.array_equal(np.asarray(a.neurons), np.asarray(b.neurons))
    net2 = sp.balanced_network(n=800, k=40, model=model, seed_net=6)
    assert any(not np.array_equal(net.targets(j)[0], net2.targets(j)[0]) for j in range(20))
    c = sp.simulate(net2, spikes=2000, seed_ic=1)
    assert not nets.same_bits(a, c)


# ----------------------------------------------------------------------- continuation
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_continuation_by_spikes(name, engine):
    net = NETS[name]
    full = sp.simulate(net, spikes=7000, engine=engine, **_ic(name))
    a = sp.simulate(net, spikes=3000, engine=engine, **_ic(name))
    b = sp.simulate(net, spikes=4000, state=a.final_state, engine=engine)
    assert b.t_start == a.t_end
    t, j = nets.concat([a, b])
    assert np.array_equal(t, np.asarray(full.times))
    assert np.array_equal(j, np.asarray(full.neurons))


@pytest.mark.parametrize("name", ["lif_balanced", "lif_mixed_csr"])
def test_continuation_many_uneven_pieces(name):
    net = NETS[name]
    sizes = [1, 1, 2, 997, 1, 500, 3, 1495]
    full = sp.simulate(net, spikes=sum(sizes), **_ic(name))
    parts, state = [], None
    for k, s in enumerate(sizes):
        kw = _ic(name) if state is None else {"state": state}
        r = sp.simulate(net, spikes=s, **kw)
        assert r.n_spikes == s
        parts.append(r)
        state = r.final_state
    t, j = nets.concat(parts)
    assert np.array_equal(t, np.asarray(full.times))
    assert np.array_equal(j, np.asarray(full.neurons))


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_continuation_split_inside_cascade(engine):
    # a cascade of 4 simultaneous spikes (see test_engine_oracle._cascade_net); stopping after
    # 1 or 2 of them and continuing must give the same sequence as one run
    indptr = np.array([0, 2, 4, 5, 5], dtype=np.int64)
    indices = np.array([3, 1, 3, 2, 3], dtype=np.int64)
    weights = np.array([0.6, 0.6, -5.0, 0.6, -5.0])
    net = sp.Network(sp.LIF(), 4, np.array([2.0, 0.5, 0.5, 0.5]), tau=TAU,
                     connectivity=sp.SparseConnectivity(indptr, indices, weights))
    v0 = np.array([0.99, 0.5, 0.5, 0.5])
    full = sp.simulate(net, spikes=40, initial_voltages=v0, engine=engine)
    for first in (1, 2, 3):
        a = sp.simulate(net, spikes=first, initial_voltages=v0, engine=engine)
        b = sp.simulate(net, spikes=40 - first, state=a.final_state, engine=engine)
        t, j = nets.concat([a, b])
        assert np.array_equal(j, np.asarray(full.neurons)), first
        assert np.array_equal(t, np.asarray(full.times)), first


@pytest.mark.parametrize("name", NAMES)
def test_continuation_by_t_max(name):
    # t_max is the absolute simulated time at which a run stops (also for a continued run:
    # the time axis continues). Split [0, 0.3] at 0.1 and 0.2 and compare to one run.
    net = NETS[name]
    full = sp.simulate(net, t_max=0.3, **_ic(name))
    a = sp.simulate(net, t_max=0.1, **_ic(name))
    assert a.t_end == pytest.approx(0.1, abs=1e-15)
    b = sp.simulate(net, t_max=0.2, state=a.final_state)
    c = sp.simulate(net, t_max=0.3, state=b.final_state)
    assert full.n_spikes > 100
    t, j = nets.concat([a, b, c])
    assert np.array_equal(j, np.asarray(full.neurons))
    assert np.array_equal(t, np.asarray(full.times))
    assert c.t_end == pytest.approx(0.3, abs=1e-15)


def test_record_false_same_count_and_state():
    net = NETS["lif_perneuron"]
    a = sp.simulate(net, spikes=3000, seed_ic=2)
    b = sp.simulate(net, spikes=3000, seed_ic=2, record=False)
    assert b.n_spikes == 3000 and b.t_end == a.t_end
    ca = sp.simulate(net, spikes=500, state=a.final_state)
    cb = sp.simulate(net, spikes=500, state=b.final_state)
    assert nets.same_bits(ca, cb)


def test_final_state_reusable_twice():
    # continuing twice from the same state gives the same result (state is not consumed)
    net = NETS["lif_balanced"]
    a = sp.simulate(net, spikes=1000, seed_ic=4)
    b1 = sp.simulate(net, spikes=1000, state=a.final_state)
    b2 = sp.simulate(net, spikes=1000, state=a.final_state)
    assert nets.same_bits(b1, b2)


# ----------------------------------------------------------------------- long-run precision
def _uncoupled(name, n, seed):
    rng = np.random.default_rng(seed)
    if name == "lif":
        drive = rng.uniform(1.5, 4.0, n)
        T = np.log(drive / (drive - 1.0))
        phi = rng.uniform(0.0, 1.0, n)
        first = (1.0 - phi) * T
    else:
        drive = rng.uniform(0.5, 3.0, n)
        T = math.pi / np.sqrt(drive)
        phi = rng.uniform(-math.pi, math.pi, n)
        first = (math.pi - phi) / (2.0 * np.sqrt(drive))
    return nets.isolated(name, n, drive, tau=TAU), phi, TAU * first, TAU * T


def _check_long_run(res, phi, first, T, n, min_tau):
    times, neurons = np.asarray(res.times), np.asarray(res.neurons)
    assert times[-1] >= min_tau * TAU, f"run too short: {times[-1] / TAU:.0f} tau"
    for i in range(n):
        ti = times[neurons == i]
        k = np.arange(ti.size)
        expected = first[i] + k * T[i]
        rel = np.abs(ti - expected) / expected
        late = rel[ti.size // 2:]
        assert rel.max() <= 1e-12, (i, rel.max(), int(rel.argmax()))
        assert late.max() <= 1e-12


@pytest.mark.parametrize("name", ["lif", "qif"])
@pytest.mark.parametrize("homogeneous", [False, True], ids=["perneuron", "homog"])
def test_long_run_no_precision_decay(name, homogeneous):
    n = 10
    net, phi, first, T = _uncoupled(name, n, 99)
    if homogeneous:  # same drive (phase-shift engine), distinct phases
        d = float(np.asarray(net.drive)[0])
        net = nets.isolated(name, n, d, tau=TAU)
        T = np.full(n, T[0])
        first = (1.0 - phi) * T if name == "lif" else (math.pi - phi) / (2 * math.pi) * T
    res = sp.simulate(net, spikes=300_000, initial_phases=phi)
    _check_long_run(res, phi, first, T, n, min_tau=1e4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lif", "qif"])
def test_long_run_no_precision_decay_slow(name):
    n = 10
    net, phi, first, T = _uncoupled(name, n, 7)
    res = sp.simulate(net, spikes=5_000_000, initial_phases=phi)
    _check_long_run(res, phi, first, T, n, min_tau=1e5)


def test_long_run_continuation_in_pieces_matches():
    # many continuations over a long run still equal one run bit for bit
    net, phi, first, T = _uncoupled("lif", 10, 5)
    full = sp.simulate(net, spikes=100_000, initial_phases=phi)
    parts, state = [], None
    for _ in range(10):
        kw = {"initial_phases": phi} if state is None else {"state": state}
        r = sp.simulate(net, spikes=10_000, **kw)
        parts.append(r)
        state = r.final_state
    t, j = nets.concat(parts)
    assert np.array_equal(t, np.asarray(full.times))
    assert np.array_equal(j, np.asarray(full.neurons))


def _coupled_long(name, hetero, spikes):
    # a small purely inhibitory network (stable: roundoff differences do not grow), run for
    # >= 1e3..1e4 tau, i.e. through hundreds of clock renormalisations; compare to the oracle
    rng = np.random.default_rng(3)
    n = 10
    W = nets.random_W(rng, n, 0.4, w_inh=0.2, w_exc=0.0, p_exc=0.0)
    if name == "lif":
        drive = rng.uniform(1.2, 2.5, n) if hetero else 1.8
    else:
        drive = rng.uniform(0.5, 2.0, n)
    net = sp.Network(nets.model(name), n, drive, tau=TAU,
                     connectivity=sp.SparseConnectivity.from_matrix(W))
    v0 = nets.initial_voltages(rng, name, drive, n)
    res, ores = nets.run_pair(net, v0, spikes=spikes)
    assert np.array_equal(np.asarray(res.neurons), ores.neurons)
    rel = np.abs(np.asarray(res.times) - ores.times) / ores.times
    assert rel.max() <= 1e-12, rel.max()
    return res


@pytest.mark.parametrize("name,hetero", [("lif", False), ("qif", True)])
def test_long_coupled_run_vs_oracle(name, hetero):
    res = _coupled_long(name, hetero, 20000)
    assert res.times[-1] > 2000 * TAU


@pytest.mark.slow
@pytest.mark.parametrize("name,hetero", [("lif", False), ("lif", True), ("qif", True)])
def test_long_coupled_run_vs_oracle_slow(name, hetero):
    res = _coupled_long(name, hetero, 100000)
    assert res.times[-1] > 1e4 * TAU
