"""The engine's event sources (issue 3) against oracles, never snapshots.

* transmission delays (homogeneous; per synapse with few distinct values = FIFOs, with > 16
  distinct values = the pending heap), absolute refractoriness, given spike-train inputs:
  hand-computed tiny networks and the independent brute-force simulator tests/oracle_events.py
  (voltages + analytic threshold crossings, a plain sorted event list), for both engines;
* Poisson inputs: statistics (counts, exponential intervals, uniform targets) and the exact
  jump sizes reconstructed from exact voltage samples;
* recording options (subset, window, voltages, memory cap stop/stream), continuation of every
  source in flight (bit for bit), heap == dense, QIF networks (time-based with event sources);
* validation of every new parameter.

Tolerances: spike ids must agree exactly; spike times to 1e-12 relative (float64 roundoff of the
two different arithmetics is ~1e-15 here). Test networks draw delays as random reals: delays on a
common grid (1 ms, 2 ms, ...) make deliveries of different spikes coincide in exact arithmetic
(t + 2d = (t + d) + d), and the order of such coincidences is decided by roundoff in both the
engine (clock products) and the oracle (sums of seconds), not by a documented rule.
"""
import math
import os

import numpy as np
import pytest

import sparseprop as sp  # noqa: E402  (a broken build must fail, not skip)

import nets  # noqa: E402
import oracle_events as oe  # noqa: E402
from nets import assert_matches, concat, csr, same_bits  # noqa: E402

TAU = 0.01
RTOL = 1e-12


# ----------------------------------------------------------------------------- helpers
def lif_first_spike(drive, v0=0.0, v_reset=0.0):
    """Time (s) for the free LIF flow from v0 to threshold 1."""
    return TAU * math.log((drive - v0) / (drive - 1.0))


def flow(v, drive, dt):
    return drive + (v - drive) * math.exp(-dt / TAU)


def spike_train(times, sources, rows, n_post, delays=None):
    order = np.argsort(np.asarray(times, dtype=float), kind="stable")
    return sp.SpikeTrainInput(np.asarray(times, dtype=float)[order], np.asarray(sources)[order],
                              csr(rows, n_post=n_post, delays=delays))


def random_net(seed, n, *, model="lif", delays="few", refractory=True, inputs=None, poisson=False,
               hetero=True, v_reset=0.0, density=None):
    """Random sparse network with mixed-sign weights; LIF drive heterogeneous with ~30% of the
    neurons below threshold. delays: None, "homog" (Network(delay=)), "few" (<= 5 distinct
    values incl. 0: FIFOs), "many" (all distinct, 20% zero: the pending heap).
    inputs: None, "plain" (spike trains, no delay), "delayed" (own per-synapse delays)."""
    rng = np.random.default_rng(seed)
    density = min(0.2, 12.0 / n) if density is None else density
    if model == "lif":
        W = nets.random_W(rng, n, density, w_inh=0.3, w_exc=0.15, p_exc=0.3)
    else:
        W = nets.random_W(rng, n, density, w_inh=0.3, w_exc=0.2, p_exc=0.3)
    indptr, indices, weights = nets.csr_from_dense(W, rng)
    nnz = indices.shape[0]
    d, delay = None, 0.0
    if delays == "homog":
        delay = float(rng.uniform(0.5e-3, 3e-3))
    elif delays == "few":
        d = rng.choice(np.r_[0.0, rng.uniform(0.2e-3, 4e-3, 4)], nnz)
    elif delays == "many":
        d = rng.uniform(0.2e-3, 4e-3, nnz)
        d[rng.random(nnz) < 0.2] = 0.0
        assert np.unique(d).size > 17          # more than the 16 FIFOs: the pending heap
    if model == "lif":
        if hetero:
            drive = rng.uniform(1.1, 2.5, n)
            drive[rng.random(n) < 0.3] = rng.uniform(0.5, 1.0)
        else:
            drive = 1.6
        mdl = sp.LIF(v_reset=v_reset)
    else:
        drive = rng.uniform(0.5, 2.0, n) if hetero else 1.2
        mdl = sp.QIF()
    refr = rng.uniform(0.0, 3e-3, n) if refractory else 0.0
    ins = []
    if inputs:
        ns = 6
        rows = [[(int(i), float(rng.uniform(-0.3, 0.7))) for i in rng.choice(n, 5, replace=False)]
                for _ in range(ns)]
        nsp = 150
        idl = rng.uniform(0.0, 3e-3, ns * 5) if inputs == "delayed" else None
        ins.append(spike_train(rng.uniform(0, 0.4, nsp), rng.integers(0, ns, nsp), rows, n, idl))
    if poisson:
        ins.append(sp.PoissonInput(30.0, 0.25, targets=(0, n // 2)))
        ins.append(sp.PoissonInput(20.0, -0.2, targets=rng.choice(n, n // 3, replace=False)))
    net = sp.Network(mdl, n, drive, tau=TAU,
                     connectivity=sp.SparseConnectivity(indptr, indices, weights, delays=d),
                     delay=delay, refractory=refr, inputs=ins)
    v0 = nets.initial_voltages(rng, model, drive, n)
    if model == "lif" and v_reset < 0:
        v0 = rng.uniform(v_reset, 0.95, n)
    return net, v0


# ================================================================ 1. delay semantics (hand-computed)
PAD = 20   # zero-weight synapses with distinct delays to a dummy neuron: forces the pending heap


def _fan(delays_row, targets, weight, pad=False, homogeneous=None):
    """Neuron 0 (drive 1.5, V0 = 0) -> `targets` with per-synapse `delays_row`; targets at rest
    0.5 (drive 0.5). With `pad`, neuron 0 also has PAD zero-weight synapses of distinct delays
    to an extra dummy neuron (no effect, but > 16 distinct delays: the pending-heap path)."""
    n_t = max(targets) + 1
    row = [(t, weight) for t in targets]
    delays = list(delays_row)
    n = n_t
    if pad:
        n = n_t + 1
        row += [(n_t, 0.0)] * PAD
        delays += list(np.linspace(0.5e-3, 9.5e-3, PAD) + 1e-7)
    rows = [row] + [[] for _ in range(n - 1)]
    drive = np.full(n, 0.5)
    drive[0] = 1.5
    if homogeneous is not None:
        conn = csr(rows)
        net = sp.Network(sp.LIF(), n, drive, tau=TAU, connectivity=conn, delay=homogeneous)
    else:
        net = sp.Network(sp.LIF(), n, drive, tau=TAU, connectivity=csr(rows, delays=delays))
    v0 = np.full(n, 0.5)
    v0[0] = 0.0
    return net, v0


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("kind", ["homogeneous", "per_synapse", "pending_heap"])
@pytest.mark.parametrize("D", [0.3e-3, 2e-3, 7e-3])
def test_spike_reaches_target_at_exactly_t_plus_delay(D, kind, engine):
    net, v0 = _fan([D], [1], 0.6, pad=kind == "pending_heap",
                   homogeneous=D if kind == "homogeneous" else None)
    t0 = lif_first_spike(1.5)
    arrive = t0 + D
    res = sp.simulate(net, t_max=arrive + 1e-4, initial_voltages=v0, engine=engine,
                      record=sp.Record(voltages=[1], sample_times=[arrive - 1e-9, arrive + 5e-5]))
    t, ids = np.asarray(res.times), np.asarray(res.neurons)
    assert ids[0] == 0 and t[0] == pytest.approx(t0, rel=1e-14)
    t1 = t[ids == 1]
    assert t1.shape == (1,)
    assert t1[0] == pytest.approx(t[0] + D, rel=1e-13, abs=0)        # exactly at the spike + D
    # just before the arrival the target still rests at its drive (nothing arrived early)
    assert res.voltages[0, 0] == pytest.approx(0.5, abs=1e-14)
    # after firing (0.5 + 0.6 >= 1) it flows from the reset
    assert res.voltages[1, 0] == pytest.approx(flow(0.0, 0.5, arrive + 5e-5 - t1[0]), abs=1e-13)


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("pad", [False, True], ids=["fifo", "pending_heap"])
@pytest.mark.parametrize("d1,fires", [(0.5e-3, False), (4e-3, True)])
def test_subthreshold_target_sums_two_delayed_inputs(d1, fires, pad, engine):
    """Neurons 0 (I = 1.5) and 1 (I = 2) fire first at tau ln 3 and tau ln 2 and reach neuron 2
    (at rest 0.5) with w = 0.3 after d0 = 1 ms and d1. Neuron 2 fires at the second arrival iff
    0.5 + 0.3 exp(-(a0 - a1)/tau) + 0.3 >= 1."""
    d0 = 1e-3
    rows = [[(2, 0.3)], [(2, 0.3)], []]
    delays = [d0, d1]
    n = 3
    if pad:
        rows = [[(2, 0.3)] + [(3, 0.0)] * PAD, [(2, 0.3)], [], []]
        delays = [d0] + list(np.linspace(0.5e-3, 9.5e-3, PAD) + 1e-7) + [d1]
        n = 4
    drive = np.array([1.5, 2.0] + [0.5] * (n - 2))
    v0 = np.array([0.0, 0.0] + [0.5] * (n - 2))
    net = sp.Network(sp.LIF(), n, drive, tau=TAU, connectivity=csr(rows, delays=delays))
    a0 = lif_first_spike(1.5) + d0
    a1 = lif_first_spike(2.0) + d1
    first, second = min(a0, a1), max(a0, a1)
    t_end = 0.013          # before the next arrivals (2 tau ln 2 + d1 >= 14.4 ms)
    st = np.sort(np.r_[np.linspace(0.0, t_end, 60), first + 1e-7, second - 1e-7, second + 1e-7])
    res = sp.simulate(net, t_max=t_end, initial_voltages=v0, engine=engine,
                      record=sp.Record(voltages=[2], sample_times=st))
    ids, t = np.asarray(res.neurons), np.asarray(res.times)
    assert fires == (0.5 + 0.3 * math.exp(-(second - first) / TAU) + 0.3 >= 1.0)
    if fires:
        assert t[ids == 2] == pytest.approx([second], rel=1e-13)
    else:
        assert not np.any(ids == 2)
    for s, v in zip(res.sample_times, res.voltages[:, 0]):
        if fires and s >= second:
            expect = flow(0.0, 0.5, s - second)
        else:
            expect = 0.5 + sum(0.3 * math.exp(-(s - a) / TAU) for a in (a0, a1) if a <= s)
        assert v == pytest.approx(expect, abs=1e-13), s


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_zero_delay_is_unchanged(engine):
    net, v0 = random_net(7, 80, delays=None, refractory=False)
    c = net.connectivity
    base = sp.simulate(net, spikes=1500, initial_voltages=v0, engine=engine)
    variants = [
        sp.Network(net.model, net.n, net.drive, tau=TAU, connectivity=c, delay=0.0),
        sp.Network(net.model, net.n, net.drive, tau=TAU,
                   connectivity=sp.SparseConnectivity(c.indptr, c.indices, c.weights, delays=0.0)),
        sp.Network(net.model, net.n, net.drive, tau=TAU,
                   connectivity=sp.SparseConnectivity(c.indptr, c.indices, c.weights,
                                                      delays=np.zeros(c.indices.shape[0]))),
    ]
    for other in variants:
        assert same_bits(base, sp.simulate(other, spikes=1500, initial_voltages=v0, engine=engine))
    assert_matches(base, oe.simulate_net(net, v0, spikes=1500))


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("pad", [False, True], ids=["fifo", "pending_heap"])
def test_per_synapse_delays_of_one_neuron(pad, engine):
    """0 -> (1, 2, 3) with delays (1, 3, 2) ms: the targets fire at t0 + delay, i.e. 1, 3, 2."""
    net, v0 = _fan([1e-3, 3e-3, 2e-3], [1, 2, 3], 0.6, pad=pad)
    t0 = lif_first_spike(1.5)
    res = sp.simulate(net, t_max=t0 + 4e-3, initial_voltages=v0, engine=engine)
    np.testing.assert_array_equal(res.neurons, [0, 1, 3, 2])
    np.testing.assert_allclose(res.times, t0 + np.array([0.0, 1e-3, 2e-3, 3e-3]), rtol=1e-13)
    assert_matches(res, oe.simulate_net(net, v0, t_max=t0 + 4e-3))


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("pad", [False, True], ids=["fifo", "pending_heap"])
def test_zero_and_nonzero_delays_in_one_row(pad, engine):
    """0 -> (1, 2, 3) with delays (0, 2 ms, 0): 1 and 3 fire at the spike instant itself (after
    0, by id), 2 fires 2 ms later."""
    net, v0 = _fan([0.0, 2e-3, 0.0], [1, 2, 3], 0.6, pad=pad)
    t0 = lif_first_spike(1.5)
    res = sp.simulate(net, t_max=t0 + 3e-3, initial_voltages=v0, engine=engine)
    np.testing.assert_array_equal(res.neurons, [0, 1, 3, 2])
    t = np.asarray(res.times)
    assert t[0] == t[1] == t[2]                      # the same instant, bit for bit
    assert t[3] == pytest.approx(t0 + 2e-3, rel=1e-13)
    assert_matches(res, oe.simulate_net(net, v0, t_max=t0 + 3e-3))


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
@pytest.mark.parametrize("second,fires", [(-0.5, False), (0.1, True)])
def test_same_instant_inputs_are_summed_before_the_threshold_test(order, second, fires, engine):
    """Two given input spikes at the same instant into a resting (V = I = 0.5) neuron: +0.6 alone
    would lift it past threshold; with -0.5 at the same instant the sum (0.6) stays below in either
    order (as in NEST), with +0.1 it fires once, at that instant, in either order."""
    inp = sp.SpikeTrainInput([0.005, 0.005], order, csr([[(0, 0.6)], [(0, second)]], n_post=1))
    net = sp.Network(sp.LIF(), 1, 0.5, tau=TAU, connectivity=nets.empty_csr(1), inputs=[inp])
    res = sp.simulate(net, t_max=0.02, initial_voltages=[0.5], engine=engine)
    assert list(res.times) == ([0.005] if fires else [])
    assert_matches(res, oe.simulate_net(net, [0.5], t_max=0.02))
    v_end = 0.5 * (1 - math.exp(-1.5)) if fires else 0.5 + 0.1 * math.exp(-1.5)
    assert res.final_voltages()[0] == pytest.approx(v_end, rel=1e-12)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_inputs_before_spikes_and_spikes_by_id_at_one_instant(engine):
    """At one instant all given inputs come before the spikes they cause: inputs lift 0, 1, 3 and 2
    past threshold (1.1); 0 fires first (lowest id) and its zero-delay inhibitory spike (-0.5)
    reaches 1 before 1's turn, so 1 ends at 0.6 and does not fire; 2 and 3 fire in id order."""
    rows = [[(0, 0.6)], [(1, 0.6), (3, 0.6), (2, 0.6)]]
    inp = sp.SpikeTrainInput([0.005, 0.005], [0, 1], csr(rows, n_post=4))
    net = sp.Network(sp.LIF(), 4, 0.5, tau=TAU, connectivity=csr([[(1, -0.5)], [], [], []]),
                     inputs=[inp])
    v0 = np.full(4, 0.5)
    res = sp.simulate(net, t_max=0.02, initial_voltages=v0, engine=engine)
    np.testing.assert_array_equal(res.neurons, [0, 2, 3])
    assert np.all(np.asarray(res.times) == 0.005)
    assert_matches(res, oe.simulate_net(net, v0, t_max=0.02))


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_input_projection_delays(engine):
    """A given input spike at t reaches its targets at t + the projection's delay (the network's
    homogeneous delay for a projection without its own delays)."""
    rows = [[(0, 0.6), (1, 0.6)]]
    own = sp.SpikeTrainInput([0.004], [0], csr(rows, n_post=2, delays=[1e-3, 2.5e-3]))
    net = sp.Network(sp.LIF(), 2, 0.5, tau=TAU, connectivity=nets.empty_csr(2), inputs=[own])
    res = sp.simulate(net, t_max=0.02, initial_voltages=[0.5, 0.5], engine=engine)
    np.testing.assert_array_equal(res.neurons, [0, 1])
    np.testing.assert_allclose(res.times, [0.005, 0.0065], rtol=1e-13)
    inherit = sp.SpikeTrainInput([0.004], [0], csr(rows, n_post=2))
    net = sp.Network(sp.LIF(), 2, 0.5, tau=TAU, connectivity=nets.empty_csr(2), inputs=[inherit],
                     delay=3e-3)
    res = sp.simulate(net, t_max=0.02, initial_voltages=[0.5, 0.5], engine=engine)
    np.testing.assert_array_equal(res.neurons, [0, 1])
    np.testing.assert_allclose(res.times, [0.007, 0.007], rtol=1e-13)


# ================================================================ 2. engine vs oracle, random networks
@pytest.mark.parametrize("model", ["lif", "qif"])
def test_oracle_agrees_with_the_plain_oracle_without_event_sources(model):
    """Self-check: tests/oracle_events.py (per-neuron times, event list) and tests/oracle.py
    (advance everyone) are independent; without delays, refractoriness and inputs they agree."""
    import oracle

    net, v0 = random_net(91, 60, model=model, delays=None, refractory=False)
    a = oracle.simulate_net(net, v0, spikes=400)
    b = oe.simulate_net(net, v0, spikes=400)
    np.testing.assert_array_equal(a.neurons, b.neurons)
    np.testing.assert_allclose(a.times, b.times, rtol=1e-12)


ORACLE_CASES = {
    "n30-homog-ref": dict(seed=1, n=30, delays="homog"),
    "n60-few-ref-inputs": dict(seed=2, n=60, delays="few", inputs="plain"),
    "n100-many-ref": dict(seed=3, n=100, delays="many"),
    "n200-many-ref-delayedinputs": dict(seed=4, n=200, delays="many", inputs="delayed"),
    "n200-few-homdrive": dict(seed=5, n=200, delays="few", hetero=False),
    "n50-nodelay-ref-inputs": dict(seed=6, n=50, delays=None, inputs="delayed"),
    "n80-homog-vreset-inputs": dict(seed=7, n=80, delays="homog", inputs="plain", v_reset=-0.3),
    "n120-few-noref-vreset": dict(seed=8, n=120, delays="few", refractory=False, v_reset=0.2),
}


@pytest.mark.parametrize("case", list(ORACLE_CASES))
def test_lif_vs_oracle(case):
    kw = dict(ORACLE_CASES[case])
    net, v0 = random_net(kw.pop("seed"), kw.pop("n"), **kw)
    ores = oe.simulate_net(net, v0, spikes=1500)
    assert ores.neurons.shape[0] == 1500
    assert ores.inputs_ignored > 0 or not np.any(np.asarray(net.refractory) > 0)
    for engine in nets.ENGINES:
        assert_matches(sp.simulate(net, spikes=1500, initial_voltages=v0, engine=engine), ores)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_procedural_connectivity_with_delay_and_refractory_vs_oracle(engine):
    n = 150
    rng = np.random.default_rng(21)
    net = sp.Network(sp.LIF(), n, rng.uniform(1.2, 2.5, n), tau=TAU,
                     connectivity=sp.FixedOutDegree(15, -0.15, seed=4), delay=1.3e-3,
                     refractory=rng.uniform(0, 2e-3, n))
    v0 = rng.uniform(0, 0.95, n)
    assert_matches(sp.simulate(net, spikes=1500, initial_voltages=v0, engine=engine),
                   oe.simulate_net(net, v0, spikes=1500))


@pytest.mark.parametrize("case", ["few", "many"])
def test_lif_vs_oracle_by_time_with_renormalisations(case):
    """A t_max run past several clock renormalisations (every 64 ln 2 tau ~ 0.44 s) with
    deliveries and given inputs pending across them."""
    net, v0 = random_net(31, 40, delays=case, inputs="delayed")
    ores = oe.simulate_net(net, v0, t_max=1.5)
    assert ores.times[-1] > 1.3
    for engine in nets.ENGINES:
        res = sp.simulate(net, t_max=1.5, initial_voltages=v0, engine=engine)
        assert_matches(res, ores)
        assert res.t_end == 1.5


# ================================================================ 3. refractoriness, analytic
@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("v_reset", [0.0, -0.5, 0.4])
def test_refractory_isi_analytic(v_reset, engine):
    drive = np.array([1.2, 1.5, 3.0, 1.05])
    ref = np.array([1e-3, 2.5e-3, 0.3e-3, 0.0])
    v0 = np.array([0.0, 0.3, 0.9, 0.5])
    net = sp.Network(sp.LIF(v_reset=v_reset), 4, drive, tau=TAU, connectivity=nets.empty_csr(4),
                     refractory=ref)
    res = sp.simulate(net, t_max=0.5, initial_voltages=v0, engine=engine)
    for i in range(4):
        t = np.asarray(res.times)[np.asarray(res.neurons) == i]
        isi = TAU * math.log((drive[i] - v_reset) / (drive[i] - 1.0)) + ref[i]
        first = TAU * math.log((drive[i] - v0[i]) / (drive[i] - 1.0))
        k = np.arange(t.shape[0])
        assert t.shape[0] == int((0.5 - first) // isi) + 1
        np.testing.assert_allclose(t, first + k * isi, rtol=1e-12)


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("w", [0.3, -0.4, 2.0])
def test_input_during_refractoriness_has_no_effect(w, engine):
    """Drive 1.5 from V = 0: spikes at t0 = tau ln 3, refractory 2 ms. An input inside the
    refractory period (even a suprathreshold one) changes nothing: the next spike is at
    t0 + 2 ms + tau ln 3 exactly; an input just after the end changes the next spike as the
    analytic flow from the reset predicts."""
    ref = 2e-3
    t0 = lif_first_spike(1.5)
    period = t0 + ref

    def run(t_in):
        inp = sp.SpikeTrainInput([t_in], [0], csr([[(0, w)]], n_post=1))
        net = sp.Network(sp.LIF(), 1, 1.5, tau=TAU, connectivity=nets.empty_csr(1), refractory=ref,
                         inputs=[inp])
        res = sp.simulate(net, spikes=2, initial_voltages=[0.0], engine=engine)
        assert_matches(res, oe.simulate_net(net, [0.0], spikes=2))
        return np.asarray(res.times)

    for t_in in (t0 + 1e-9, t0 + 1e-3, t0 + ref - 1e-9):
        t = run(t_in)
        assert t[0] == pytest.approx(t0, rel=1e-14)
        assert t[1] == pytest.approx(t0 + period, rel=1e-13)
    t_in = t0 + ref + 1e-4
    t = run(t_in)
    v = flow(0.0, 1.5, 1e-4) + w
    expect = t_in if v >= 1.0 else t_in + TAU * math.log((1.5 - v) / 0.5)
    assert t[1] == pytest.approx(expect, rel=1e-13)
    assert abs(t[1] - (t0 + period)) > 1e-6                          # the input did act


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_refractory_voltage_is_reset_then_free_flow(engine):
    ref, v_reset, drive = 3e-3, -0.2, 1.5
    net = sp.Network(sp.LIF(v_reset=v_reset), 1, drive, tau=TAU, connectivity=nets.empty_csr(1),
                     refractory=ref)
    t0 = lif_first_spike(drive, 0.0)
    isi = TAU * math.log((drive - v_reset) / (drive - 1.0)) + ref
    st = np.linspace(0.0, 0.06, 601)
    res = sp.simulate(net, t_max=0.06, initial_voltages=[0.0], engine=engine,
                      record=sp.Record(voltages=[0], sample_times=st))
    np.testing.assert_allclose(res.times, t0 + isi * np.arange(res.n_spikes), rtol=1e-12)
    spikes = np.asarray(res.times)
    for s, v in zip(res.sample_times, res.voltages[:, 0]):
        before = spikes[spikes <= s]
        if before.size == 0:
            expect = flow(0.0, drive, s)
        elif s < before[-1] + ref:
            assert v == v_reset, s                                    # clamped, exactly
            continue
        else:
            expect = flow(v_reset, drive, s - before[-1] - ref)       # free flow from the reset
        assert v == pytest.approx(expect, abs=1e-13), s


# ================================================================ 4. Poisson inputs
def _poisson_neuron(rate, w, drive=0.5, tau=TAU, **kw):
    """One neuron (subthreshold drive) receiving Poisson input (rate, w)."""
    return sp.Network(sp.LIF(), 1, drive, tau=tau, connectivity=nets.empty_csr(1),
                      inputs=[sp.PoissonInput(rate, w)], **kw)


def test_inhibitory_input_into_a_silent_network_runs_to_t_max():
    """Nothing can fire, but with t_max the run is a valid experiment: it lasts until t_max and the
    voltage responds to the inputs; with spikes= only it could never end, which is an error."""
    inp = sp.SpikeTrainInput([0.004], [0], csr([[(0, -0.2)]], n_post=1))
    net = sp.Network(sp.LIF(), 1, 0.5, tau=TAU, connectivity=nets.empty_csr(1), inputs=[inp])
    res = sp.simulate(net, t_max=0.01, initial_voltages=[0.5])
    assert res.n_spikes == 0 and res.t_end == 0.01 and res.metadata["stopped_by"] == "t_max"
    assert res.final_voltages()[0] == pytest.approx(0.5 - 0.2 * math.exp(-0.6), rel=1e-13)
    with pytest.raises(ValueError, match="drive: no neuron reaches threshold"):
        sp.simulate(net, spikes=1, initial_voltages=[0.5])


def reconstruct_jumps(net, t_max, w, v0, seed_input, grid=1e-3, eps=1e-9):
    """Jump times and sizes of a lone LIF neuron's voltage from exact voltage samples.

    Between samples s0 < s1 the voltage obeys V(s1) = flow(V(s0)) + sum_jumps w e^{-(s1 - t_j)/tau},
    so r/w lies in [k e^{-(s1-s0)/tau}, k] for k jumps of size w; one jump gives its time
    t = s1 + tau ln(r/w); intervals with k >= 2 are refined by further runs (same seed: the
    stream does not depend on sampling). A last run samples t -/+ eps around every jump and
    measures its size. Returns (times, sizes, zero-jump residuals)."""
    drive, tau = float(net.drive), net.tau

    def sample(pts):
        res = sp.simulate(net, t_max=t_max, initial_voltages=np.full(net.n, v0),
                          seed_input=seed_input, record=sp.Record(voltages=[0], sample_times=pts))
        assert res.n_spikes == 0 and np.array_equal(res.sample_times, pts)
        return res.voltages[:, 0]

    found, quiet = [], []
    intervals, m = [(0.0, t_max)], int(round(t_max / grid))
    while intervals:
        grids = [np.linspace(a, b, m + 1) for a, b in intervals]
        pts = np.unique(np.concatenate(grids))
        vals = dict(zip(pts.tolist(), sample(pts).tolist()))
        nxt = []
        for g in grids:
            for s0, s1 in zip(g[:-1].tolist(), g[1:].tolist()):
                r = vals[s1] - (drive + (vals[s0] - drive) * math.exp(-(s1 - s0) / tau))
                k = r / w
                jumps = 0 if k < 1e-9 else math.ceil(k - 1e-9)
                # consistent with an integer number of jumps of size w each
                assert k >= jumps * math.exp(-(s1 - s0) / tau) - 1e-9, (s0, s1, k)
                if jumps == 0:
                    quiet.append(r)
                elif jumps == 1:
                    t = s1 + tau * math.log(k)
                    assert s0 - 1e-15 <= t <= s1 + 1e-15
                    found.append(t)
                else:
                    nxt.append((s0, s1))
        intervals, m = nxt, 64
    found = np.sort(np.array(found))
    assert found.size > 2 and np.min(np.diff(found)) > 4 * eps
    pts = np.sort(np.r_[found - eps, found + eps])
    v = sample(pts).reshape(-1, 2)
    sizes = (v[:, 1] - (drive + (v[:, 0] - drive) * math.exp(-2 * eps / tau))) * math.exp(eps / tau)
    return found, sizes, np.array(quiet)


@pytest.mark.parametrize("w", [0.01, -0.02])
def test_poisson_single_neuron_jumps_exact_size_and_exponential_intervals(w):
    scipy_stats = pytest.importorskip("scipy.stats")
    rate, t_max = 200.0, 5.0
    net = _poisson_neuron(rate, w)
    times, sizes, quiet = reconstruct_jumps(net, t_max, w, 0.5, seed_input=11)
    n = times.size
    assert abs(n - rate * t_max) < 5 * math.sqrt(rate * t_max)
    # every jump has size w (exact up to roundoff); between jumps the free flow is exact
    np.testing.assert_allclose(sizes, w, rtol=1e-10)
    assert np.max(np.abs(quiet)) < 1e-13
    isi = np.diff(np.r_[0.0, times])
    assert abs(isi.mean() - 1 / rate) < 5 / rate / math.sqrt(n)
    assert scipy_stats.kstest(isi, "expon", args=(0, 1 / rate)).pvalue > 1e-3
    if w > 0:
        # a plain run (no sampling) sees the same number of Poisson events (+ at most the stop check)
        plain = sp.simulate(net, t_max=t_max, initial_voltages=[0.5], seed_input=11)
        assert plain.metadata["events"] - n in (0, 1)


@pytest.mark.parametrize("t_max", [5.0, 20.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_poisson_event_count_matches_rate(seed, t_max):
    rate = 300.0
    res = sp.simulate(_poisson_neuron(rate, 0.005), t_max=t_max, initial_voltages=[0.5],
                      seed_input=seed)
    assert res.n_spikes == 0
    ev = res.metadata["events"]
    assert abs(ev - rate * t_max) < 5 * math.sqrt(rate * t_max), ev


def test_poisson_event_counter_counts_processed_events_only():
    rate, t_max, w = 200.0, 1.0, 0.01
    net = _poisson_neuron(rate, w)
    st = np.linspace(0.0, t_max, 2001)
    res = sp.simulate(net, t_max=t_max, initial_voltages=[0.5], seed_input=5,
                      record=sp.Record(voltages=[0], sample_times=st))
    v = res.voltages[:, 0]
    r = v[1:] - (0.5 + (v[:-1] - 0.5) * math.exp(-(st[1] - st[0]) / TAU))
    jumps = int(np.sum(np.ceil(r / w - 1e-9)))     # each interval holds ceil(r/w) jumps of size w
    assert res.metadata["events"] == jumps


def _one_spike_per_event(n, inputs, **kw):
    """Neurons at rest 0.5 (drive 0.5) where every Poisson event (weight 1.5) is exactly one spike
    of its target at the event time."""
    return sp.Network(sp.LIF(), n, 0.5, tau=TAU, connectivity=nets.empty_csr(n), inputs=inputs, **kw)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_poisson_targets_uniform_over_range(engine):
    stats = pytest.importorskip("scipy.stats")
    n, rate, t_max, (a, b) = 100, 40.0, 5.0, (20, 70)
    net = _one_spike_per_event(n, [sp.PoissonInput(rate, 1.5, targets=(a, b))])
    res = sp.simulate(net, t_max=t_max, initial_voltages=np.full(n, 0.5), engine=engine, seed_input=3)
    ids = np.asarray(res.neurons)
    assert ids.min() >= a and ids.max() < b
    lam = rate * (b - a) * t_max
    assert abs(ids.size - lam) < 5 * math.sqrt(lam)
    assert stats.chisquare(np.bincount(ids - a, minlength=b - a)).pvalue > 1e-3
    # the pooled train is a Poisson process of rate (b - a) * rate; so is each neuron's
    isi = np.diff(np.r_[0.0, res.times])
    assert stats.kstest(isi, "expon", args=(0, 1 / (rate * (b - a)))).pvalue > 1e-3
    per = np.concatenate([np.diff(np.r_[0.0, np.asarray(res.times)[ids == i]]) for i in range(a, b)])
    assert stats.kstest(per, "expon", args=(0, 1 / rate)).pvalue > 1e-3
    assert res.metadata["events"] - 2 * ids.size in (0, 1)        # each event + its spike


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_poisson_targets_uniform_over_id_array(engine):
    stats = pytest.importorskip("scipy.stats")
    n, rate, t_max = 100, 150.0, 4.0
    ids_in = np.array([93, 4, 57, 12, 60, 31, 0, 99])
    net = _one_spike_per_event(n, [sp.PoissonInput(rate, 1.5, targets=ids_in)])
    res = sp.simulate(net, t_max=t_max, initial_voltages=np.full(n, 0.5), engine=engine)
    ids = np.asarray(res.neurons)
    assert set(np.unique(ids).tolist()) == set(ids_in.tolist())
    lam = rate * ids_in.size * t_max
    assert abs(ids.size - lam) < 5 * math.sqrt(lam)
    assert stats.chisquare(np.bincount(ids, minlength=n)[ids_in]).pvalue > 1e-3


def test_poisson_populations_get_events_in_proportion():
    stats = pytest.importorskip("scipy.stats")
    n, t_max = 100, 5.0
    # (0, 50) at 20 Hz, (50, 100) at 80 Hz, and an overlapping group (40, 60) at 30 Hz more
    net = _one_spike_per_event(n, [sp.PoissonInput(20.0, 1.5, targets=(0, 50)),
                                   sp.PoissonInput(80.0, 1.5, targets=(50, 100)),
                                   sp.PoissonInput(30.0, 1.5, targets=(40, 60))])
    res = sp.simulate(net, t_max=t_max, initial_voltages=np.full(n, 0.5), seed_input=9)
    counts = np.bincount(np.asarray(res.neurons), minlength=n)
    for (a, b), r in (((0, 40), 20.0), ((40, 50), 50.0), ((50, 60), 110.0), ((60, 100), 80.0)):
        lam = r * (b - a) * t_max
        assert abs(counts[a:b].sum() - lam) < 5 * math.sqrt(lam), (a, b, counts[a:b].sum(), lam)
        assert stats.chisquare(counts[a:b]).pvalue > 1e-3


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_sampling_and_chunking_do_not_change_the_poisson_stream(engine):
    net, v0 = random_net(41, 80, delays="many", poisson=True, inputs="plain")
    a = sp.simulate(net, t_max=0.8, initial_voltages=v0, engine=engine, seed_input=4)
    b = sp.simulate(net, t_max=0.8, initial_voltages=v0, engine=engine, seed_input=4,
                    record=sp.Record(voltages=[0, 5], sample_times=np.linspace(0, 0.8, 997)))
    assert a.n_spikes > 1000 and same_bits(a, b)
    c = sp.simulate(net, t_max=0.8, initial_voltages=v0, engine=engine, seed_input=5)
    assert not same_bits(a, c)                      # the seed does drive the stream


# ---- LIF clock overflow: events more than ~665 tau after the current clock epoch are lost
def test_low_rate_poisson_stream_does_not_die():
    # 1 Hz into one neuron, tau = 10 ms: mean interval 100 tau; every event is one spike
    res = sp.simulate(_one_spike_per_event(1, [sp.PoissonInput(1.0, 1.5)]), t_max=200.0,
                      initial_voltages=[0.5])
    assert abs(res.n_spikes - 200) < 5 * math.sqrt(200), res.n_spikes


def test_late_given_input_into_a_silent_network():
    inp = sp.SpikeTrainInput([7.5], [0], csr([[(0, 1.5)]], n_post=1))
    res = sp.simulate(_one_spike_per_event(1, [inp]), t_max=10.0, initial_voltages=[0.5])
    np.testing.assert_allclose(res.times, [7.5], rtol=1e-12)


@pytest.mark.parametrize("what", ["delay", "refractory"])
def test_long_delay_and_refractory_period(what):
    """Up to 512 tau (the LIF clock's limit, 5.12 s at tau = 10 ms) exact; longer: a clear error."""
    if what == "delay":
        net = sp.Network(sp.LIF(), 2, [1.5, 0.5], tau=TAU, connectivity=csr([[(1, 1.5)], []]), delay=5.0)
        res = sp.simulate(net, t_max=5.02, initial_voltages=[0.0, 0.5])
        t1 = np.asarray(res.times)[np.asarray(res.neurons) == 1]
        assert t1.size and t1[0] == pytest.approx(lif_first_spike(1.5) + 5.0, rel=1e-12)
    else:
        net = sp.Network(sp.LIF(), 1, 1.5, tau=TAU, connectivity=nets.empty_csr(1), refractory=5.0)
        res = sp.simulate(net, t_max=10.0, initial_voltages=[0.0])
        np.testing.assert_allclose(res.times, lif_first_spike(1.5) + np.arange(2) * (lif_first_spike(1.5) + 5.0),
                                   rtol=1e-12)
    net = sp.Network(net.model, net.n, net.drive, tau=TAU, connectivity=net.connectivity, **{what: 5.13})
    with pytest.raises(ValueError, match=f"{what}: 513 tau is longer than the LIF engine's limit of 512 tau"):
        sp.simulate(net, t_max=20.0, initial_voltages=np.zeros(net.n))


@pytest.mark.parametrize("seed", [1, 2])
def test_poisson_intervals_longer_than_the_clock_range(seed):
    """Input at 0.05 Hz (intervals ~ 2000 tau > 512 tau: they hop): the event count and the
    intervals are those of a Poisson process, every event is a jump of the given size, and a
    continued run equals one run."""
    rate, t_max, w = 0.05, 4000.0, 0.01
    net = _poisson_neuron(rate, w)
    st = np.linspace(0.0, t_max, 40001)
    res = sp.simulate(net, t_max=t_max, initial_voltages=[0.5], seed_input=seed,
                      record=sp.Record(voltages=[0], sample_times=st))
    ev = res.metadata["events"]
    assert abs(ev - rate * t_max) < 5 * math.sqrt(rate * t_max), ev
    v = res.voltages[:, 0]
    r = v[1:] - (0.5 + (v[:-1] - 0.5) * math.exp(-(st[1] - st[0]) / TAU))
    # one jump per 0.1 s (10 tau) interval at most: its remainder at the interval's end lies in
    # [w e^-10, w] = [4.5e-7, 0.01]; no jump: round-off only
    assert np.all((r > -1e-13) & (r < w * (1 + 1e-9)))
    assert np.all((r < 1e-13) | (r > w * math.exp(-10) * (1 - 1e-6)))
    assert int(np.sum(r > 1e-9)) == ev
    a = sp.simulate(net, t_max=t_max / 2, initial_voltages=[0.5], seed_input=seed)
    b = sp.simulate(net, t_max=t_max, state=a.final_state)
    one = sp.simulate(net, t_max=t_max, initial_voltages=[0.5], seed_input=seed)
    assert a.metadata["events"] + b.metadata["events"] == one.metadata["events"] == ev
    assert b.final_voltages()[0] == one.final_voltages()[0]


def test_run_to_t_max_beyond_709_tau():
    """One run to 8 s (800 tau) must equal a run to 4 s continued to 8 s (which is correct: the
    continued run starts in a later renormalisation epoch, so exp(t_max/tau - n 64 ln 2) is finite).
    Today the single run processes Poisson events until ~218 s, its final voltage is inf and
    metadata["events"] is 65537 instead of ~2400."""
    net = _poisson_neuron(300.0, 0.005)
    one = sp.simulate(net, t_max=8.0, initial_voltages=[0.5])
    a = sp.simulate(net, t_max=4.0, initial_voltages=[0.5])
    b = sp.simulate(net, t_max=8.0, state=a.final_state)
    assert np.all(np.isfinite(b.final_voltages()))
    # (+-1: metadata["events"] also counts each run's final stop check, see the counter xfail)
    assert abs(one.metadata["events"] - (a.metadata["events"] + b.metadata["events"])) <= 1
    np.testing.assert_array_equal(one.final_voltages(), b.final_voltages())


# ================================================================ 5. exact voltages
@pytest.mark.parametrize("hetero", [True, False], ids=["perneuron", "shared_drive"])
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_sampled_voltages_equal_oracle_free_flow(hetero, engine):
    net, v0 = random_net(51, 40, delays="few", inputs="delayed", hetero=hetero, v_reset=-0.1)
    rng = np.random.default_rng(3)
    st = np.sort(rng.uniform(0.0, 0.5, 400))
    ids = np.arange(net.n)
    res = sp.simulate(net, t_max=0.5, initial_voltages=v0, engine=engine,
                      record=sp.Record(voltages=ids, sample_times=st))
    ores = oe.simulate_net(net, v0, t_max=0.5, sample_times=st, sample_ids=ids)
    assert_matches(res, ores)
    np.testing.assert_array_equal(res.sample_times, st)
    np.testing.assert_allclose(res.voltages, ores.voltages, rtol=0, atol=1e-12)
    busy = ores.sample_refractory
    assert busy.sum() > 50
    assert np.all(res.voltages[busy] == -0.1)                     # clamped at V_reset, exactly
    np.testing.assert_allclose(res.final_voltages(), ores.final_voltages, atol=1e-12)


# ================================================================ 6. recording options
@pytest.fixture(scope="module")
def rec_net():
    return random_net(61, 100, delays="many", poisson=True, inputs="plain")


def test_record_subset_and_window_select_exactly(rec_net):
    net, v0 = rec_net
    full = sp.simulate(net, t_max=0.6, initial_voltages=v0)
    t, ids = np.asarray(full.times), np.asarray(full.neurons)
    pick = np.array([3, 17, 18, 50, 77, 99])
    for kw, keep in (
        (dict(neurons=pick), np.isin(ids, pick)),
        (dict(t_start=0.1, t_stop=0.35), (t >= 0.1) & (t <= 0.35)),
        (dict(neurons=pick, t_start=0.2), np.isin(ids, pick) & (t >= 0.2)),
        (dict(t_stop=float(t[500])), t <= t[500]),                   # inclusive bound
    ):
        res = sp.simulate(net, t_max=0.6, initial_voltages=v0, record=sp.Record(**kw))
        assert keep.sum() > 20
        np.testing.assert_array_equal(res.times, t[keep])
        np.testing.assert_array_equal(res.neurons, ids[keep])
        assert res.n_spikes == full.n_spikes                         # the dynamics are unchanged
        np.testing.assert_array_equal(res.final_state.states, full.final_state.states)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_record_memory_cap_stop(rec_net, engine):
    net, v0 = rec_net
    full = sp.simulate(net, t_max=0.6, initial_voltages=v0, engine=engine)
    assert full.n_spikes > 3000
    cap = 1000
    res = sp.simulate(net, t_max=0.6, initial_voltages=v0, engine=engine,
                      record=sp.Record(max_spikes=cap))
    assert res.interrupted and res.metadata["stopped_by"] == "memory"
    assert np.asarray(res.times).shape == (cap,)
    np.testing.assert_array_equal(res.times, np.asarray(full.times)[:cap])
    np.testing.assert_array_equal(res.neurons, np.asarray(full.neurons)[:cap])
    # with a neuron filter the cap counts recorded spikes only
    pick = np.arange(0, 100, 3)
    sub = sp.simulate(net, t_max=0.6, initial_voltages=v0, engine=engine,
                      record=sp.Record(neurons=pick, max_spikes=200))
    keep = np.isin(np.asarray(full.neurons), pick)
    assert sub.metadata["stopped_by"] == "memory"
    np.testing.assert_array_equal(sub.times, np.asarray(full.times)[keep][:200])
    np.testing.assert_array_equal(sub.neurons, np.asarray(full.neurons)[keep][:200])


def test_record_memory_cap_stream(rec_net, tmp_path):
    net, v0 = rec_net
    full = sp.simulate(net, t_max=0.6, initial_voltages=v0)
    d = tmp_path / "spikes"
    res = sp.simulate(net, t_max=0.6, initial_voltages=v0,
                      record=sp.Record(max_spikes=300, on_full="stream", stream_dir=str(d)))
    assert not res.interrupted and res.metadata["stopped_by"] == "t_max"
    assert isinstance(res.times, np.memmap) and isinstance(res.neurons, np.memmap)
    assert same_bits(res, full)
    assert os.path.getsize(d / "times.f64") == 8 * full.n_spikes
    # filtered and streamed: the filter of the full run
    pick = np.arange(1, 100, 2)
    res = sp.simulate(net, t_max=0.6, initial_voltages=v0,
                      record=sp.Record(neurons=pick, t_start=0.1, max_spikes=128, on_full="stream",
                                       stream_dir=str(tmp_path / "s2")))
    t, ids = np.asarray(full.times), np.asarray(full.neurons)
    keep = np.isin(ids, pick) & (t >= 0.1)
    np.testing.assert_array_equal(res.times, t[keep])
    np.testing.assert_array_equal(res.neurons, ids[keep])


# ================================================================ 7. continuation, heap == dense
ALL_FEATURES = {
    "lif-many-perneuron": dict(seed=71, n=120, delays="many", poisson=True, inputs="delayed"),
    "lif-few-shared": dict(seed=72, n=120, delays="few", poisson=True, inputs="plain", hetero=False),
    "lif-homog-vreset": dict(seed=73, n=80, delays="homog", poisson=True, inputs="delayed",
                             v_reset=-0.2),
    "qif-many": dict(seed=74, n=60, model="qif", delays="many", poisson=True, inputs="delayed"),
    "qif-homog-shared": dict(seed=75, n=60, model="qif", delays="homog", poisson=True, hetero=False),
}


def _all_features(name):
    kw = dict(ALL_FEATURES[name])
    return random_net(kw.pop("seed"), kw.pop("n"), **kw)


@pytest.mark.parametrize("name", list(ALL_FEATURES))
def test_heap_equals_dense_with_all_features(name):
    net, v0 = _all_features(name)
    t_max = 1.0 if name.startswith("lif") else 0.6
    a = sp.simulate(net, t_max=t_max, initial_voltages=v0, engine="heap", seed_input=2)
    b = sp.simulate(net, t_max=t_max, initial_voltages=v0, engine="dense", seed_input=2)
    assert a.n_spikes > 1000
    assert same_bits(a, b)
    np.testing.assert_array_equal(a.final_state.states, b.final_state.states)
    assert a.metadata["events"] == b.metadata["events"]


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("name", list(ALL_FEATURES))
def test_continuation_by_time_is_bit_exact(name, engine):
    net, v0 = _all_features(name)
    t_max = 1.5 if name.startswith("lif") else 0.6
    full = sp.simulate(net, t_max=t_max, initial_voltages=v0, engine=engine, seed_input=6)
    # arbitrary cut times (LIF: 0.45 s and 0.9 s lie just past clock renormalisations)
    parts = nets.assert_chained_runs_equal(net, full, t_max, {"initial_voltages": v0, "seed_input": 6},
                                           (0.3, 0.6), engine)
    assert sum(p.n_spikes for p in parts) == full.n_spikes


EXP_BUG = ("engine bug: a continued run computes the clock of the next given input with "
           "BoundModel.clock_at (np.exp) while the loop uses model_clock_at (libm exp); they differ "
           "by 1 ulp for ~5% of arguments, so the continuation is not bit-identical; see "
           "test_continuation_next_given_input_clock_is_bit_exact")


def _cascade_net(source):
    """20 neurons, strong excitation, zero and nonzero delays, refractory 1 ms: cascades of
    simultaneous spikes, triggered by given inputs (1.2 to 10 neurons at once) or by Poisson."""
    rng = np.random.default_rng(5)
    n = 20
    hi = 0.4 if source == "given" else 0.6
    W = (rng.random((n, n)) < 0.3) * rng.uniform(-0.3 if source == "given" else -0.2, hi, (n, n))
    np.fill_diagonal(W, 0)
    ip, ii, iw = nets.csr_from_dense(W)
    d = rng.choice(np.r_[0.0, rng.uniform(0.3e-3, 3e-3, 2)], ii.shape[0])
    if source == "given":
        inputs = [spike_train(rng.uniform(0, 0.5, 30), rng.integers(0, 2, 30),
                              [[(i, 1.2) for i in range(10)], [(i, 1.2) for i in range(10, 20)]], n),
                  sp.PoissonInput(5.0, 0.3)]
    else:
        inputs = [sp.PoissonInput(30.0, 0.5)]
    net = sp.Network(sp.LIF(), n, rng.uniform(0.5, 1.5, n), tau=TAU,
                     connectivity=sp.SparseConnectivity(ip, ii, iw, delays=d), refractory=1e-3,
                     inputs=inputs)
    return net, rng.uniform(0, 0.9, n)


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("source", ["poisson", "given"])
def test_continuation_by_spike_count_inside_cascades(source, engine):
    """Cut after every one of the first 150 spikes (many of them simultaneous) and continue."""
    net, v0 = _cascade_net(source)
    full = sp.simulate(net, t_max=0.6, initial_voltages=v0, engine=engine)
    t = np.asarray(full.times)
    assert np.unique(t[:150]).size < 100                 # many simultaneous spikes
    for k in range(1, 151):
        a = sp.simulate(net, spikes=k, initial_voltages=v0, engine=engine)
        b = sp.simulate(net, t_max=0.6, state=a.final_state, engine=engine)
        tt, ids = concat([a, b])
        assert np.array_equal(tt, full.times) and np.array_equal(ids, full.neurons), k


def test_continuation_next_given_input_clock_is_bit_exact():
    """Smallest reproducer: one neuron (drive 1.5), given inputs at 5 ms and t2; cut at 10 ms.
    np.exp(t2/tau) != math.exp(t2/tau) (libm) for this t2, and spike 6 moves by 1 ulp."""
    t2 = 0.038704692666125015
    assert float(np.exp(t2 / TAU)) != math.exp(t2 / TAU)
    inp = sp.SpikeTrainInput([0.005, t2], [0, 0], csr([[(0, 0.2)]], n_post=1))
    net = sp.Network(sp.LIF(), 1, 1.5, tau=TAU, connectivity=nets.empty_csr(1), inputs=[inp])
    full = sp.simulate(net, t_max=0.1, initial_voltages=[0.0])
    a = sp.simulate(net, t_max=0.01, initial_voltages=[0.0])
    b = sp.simulate(net, t_max=0.1, state=a.final_state)
    np.testing.assert_array_equal(concat([a, b])[0], full.times)


def test_continuation_state_round_trips_through_save_and_load(tmp_path):
    net, v0 = _all_features("lif-many-perneuron")
    full = sp.simulate(net, t_max=0.8, initial_voltages=v0, seed_input=8)
    first = sp.simulate(net, t_max=0.37, initial_voltages=v0, seed_input=8)
    ev = first.final_state.events
    assert len(ev["pending_clock"]) > 0 and np.isfinite(ev["pois_clock"])
    path = tmp_path / "first.npz"
    first.save(str(path))
    loaded = sp.load_result(str(path))
    nets.assert_same_state(first.final_state, loaded.final_state)
    rest = sp.simulate(net, t_max=0.8, state=loaded.final_state)
    t, ids = concat([first, rest])
    np.testing.assert_array_equal(t, full.times)
    np.testing.assert_array_equal(ids, full.neurons)


# ================================================================ 8. QIF (time-based with event sources)
QIF_CASES = {
    "n30-few-ref-inputs": dict(seed=81, n=30, delays="few", inputs="delayed"),
    "n100-many-ref": dict(seed=82, n=100, delays="many"),
    "n60-homog-shared": dict(seed=83, n=60, delays="homog", hetero=False, inputs="plain"),
}


@pytest.mark.parametrize("case", list(QIF_CASES))
def test_qif_vs_oracle(case):
    """QIF is chaotic: 300 spikes (see test_engine_oracle.py)."""
    kw = dict(QIF_CASES[case])
    net, v0 = random_net(kw.pop("seed"), kw.pop("n"), model="qif", **kw)
    ores = oe.simulate_net(net, v0, spikes=300)
    for engine in nets.ENGINES:
        assert_matches(sp.simulate(net, spikes=300, initial_voltages=v0, engine=engine), ores)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_qif_refractory_isi_and_reset_voltage(engine):
    drive = np.array([0.5, 1.0, 2.0])
    ref = np.array([2e-3, 0.5e-3, 1e-3])
    net = sp.Network(sp.QIF(), 3, drive, tau=TAU, connectivity=nets.empty_csr(3), refractory=ref)
    v0 = np.array([-1.0, 0.0, 3.0])
    st = np.linspace(0, 0.2, 401)
    res = sp.simulate(net, t_max=0.2, initial_voltages=v0, engine=engine,
                      record=sp.Record(voltages=[0, 1, 2], sample_times=st))
    ores = oe.simulate_net(net, v0, t_max=0.2, sample_times=st, sample_ids=[0, 1, 2])
    assert_matches(res, ores)
    for i in range(3):
        t = np.asarray(res.times)[np.asarray(res.neurons) == i]
        np.testing.assert_allclose(np.diff(t), TAU * math.pi / math.sqrt(drive[i]) + ref[i], rtol=1e-11)
    busy = ores.sample_refractory
    assert busy.any() and np.all(res.voltages[busy] == -np.inf)
    free = ~busy
    np.testing.assert_allclose(nets.voltage_angle("qif", res.voltages[free], np.broadcast_to(drive, busy.shape)[free]),
                               nets.voltage_angle("qif", ores.voltages[free], np.broadcast_to(drive, busy.shape)[free]),
                               atol=1e-11)


# ================================================================ 9. validation
def _net(n=4, **kw):
    return sp.Network(sp.LIF(), n, 1.5, tau=TAU, connectivity=nets.empty_csr(n), **kw)


def _inp(n_post=4, times=(0.1,), sources=(0,)):
    return sp.SpikeTrainInput(np.asarray(times, float), np.asarray(sources),
                              csr([[(0, 0.5)], [(1, 0.5)]], n_post=n_post))


@pytest.mark.parametrize("make,exc,match", [
    (lambda: _net(delay=-1e-3), ValueError, "delay"),
    (lambda: _net(delay=float("nan")), ValueError, "delay"),
    (lambda: sp.SparseConnectivity([0, 1, 1], [1], [0.5], delays=[-1e-3]), ValueError, "delays"),
    (lambda: sp.SparseConnectivity([0, 1, 1], [1], [0.5], delays=[1e-3, 2e-3]), ValueError, "delays"),
    (lambda: sp.SparseConnectivity([0, 1, 1], [1], [0.5], delays=-1.0), ValueError, "delays"),
    (lambda: _net(refractory=-1e-3), ValueError, "refractory"),
    (lambda: _net(refractory=[1e-3, 0.0, -1e-3, 0.0]), ValueError, "refractory"),
    (lambda: _net(refractory=[1e-3, 0.0]), ValueError, "refractory"),
    (lambda: _inp(times=(0.2, 0.1), sources=(0, 1)), ValueError, "times"),
    (lambda: _inp(times=(-0.1,)), ValueError, "times"),
    (lambda: _inp(times=(0.1, 0.2), sources=(0, 2)), ValueError, "sources"),
    (lambda: _inp(times=(0.1,), sources=(-1,)), ValueError, "sources"),
    (lambda: _inp(times=(0.1, 0.2), sources=(0,)), ValueError, "sources"),
    (lambda: _net(inputs=[_inp(n_post=5)]), ValueError, "n_post|connectivity"),
    (lambda: sp.PoissonInput(0.0, 0.1), ValueError, "rate"),
    (lambda: sp.PoissonInput(-5.0, 0.1), ValueError, "rate"),
    (lambda: sp.PoissonInput(float("inf"), 0.1), ValueError, "rate"),
    (lambda: _net(inputs=[sp.PoissonInput(5.0, 0.1, targets=(0, 5))]), ValueError, "targets"),
    (lambda: _net(inputs=[sp.PoissonInput(5.0, 0.1, targets=np.array([0, 4]))]), ValueError, "targets"),
    (lambda: _net(inputs=[sp.PoissonInput(5.0, 0.1, targets=np.array([-1, 2]))]), ValueError, "targets"),
    (lambda: sp.PoissonInput(5.0, 0.1, targets=(2, 2)), ValueError, "targets"),
    (lambda: sp.PoissonInput(5.0, 0.1, targets=np.array([], dtype=int)), ValueError, "targets"),
    (lambda: sp.PoissonInput(5.0, 0.1, targets=np.array([1, 1])), ValueError, "targets"),
    (lambda: _net(populations={"a": (0, 0), "b": (0, 4)}), ValueError, "populations"),
    (lambda: sp.Record(voltages=[0]), ValueError, "sample_times"),
    (lambda: sp.Record(sample_times=[0.1]), ValueError, "voltages"),
    (lambda: sp.Record(voltages=[0], sample_times=[0.2, 0.1]), ValueError, "sample_times"),
    (lambda: sp.Record(voltages=[0], sample_times=[-0.1, 0.1]), ValueError, "sample_times"),
    (lambda: sp.Record(on_full="drop"), ValueError, "on_full"),
    (lambda: sp.Record(max_spikes=10, on_full="stream"), ValueError, "stream_dir"),
    (lambda: sp.Record(max_spikes=0), ValueError, "max_spikes"),
    (lambda: sp.Record(t_start=0.5, t_stop=0.1), ValueError, "t_stop"),
    (lambda: sp.simulate(_net(), t_max=0.1, record=sp.Record(voltages=[7], sample_times=[0.05])),
     ValueError, "voltages"),
    (lambda: sp.simulate(_net(), t_max=0.1, record=sp.Record(neurons=[4])), ValueError, "neurons"),
    (lambda: sp.simulate(_net(), t_max=0.1, record="yes"), TypeError, "record"),
])
def test_bad_parameters_are_named(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_continuation_state_of_another_network_is_refused():
    a = _net(delay=1e-3)
    b = _net(delay=2e-3)
    res = sp.simulate(a, t_max=0.05)
    with pytest.raises(ValueError, match="state"):
        sp.simulate(b, t_max=0.1, state=res.final_state)
