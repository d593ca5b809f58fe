"""Per-neuron membrane time constants and per-neuron models (``sp.Mixed``), against oracles.

Contract under test:

* ``sp.Network(model, n, drive, tau, ...)`` with ``tau`` a float or an (n,) array of seconds:
  neuron i obeys tau_i dV/dt = F_i(V) + I_i; delays, refractory periods and input times stay in
  seconds; ``Network.time_unit`` = min tau;
* ``sp.Mixed([(model, count), ...])``: models assigned in id order, ``.name == "mixed"``,
  ``.parts`` = ``((model, start, stop), ...)``; table models refused;
* ``sp.NetworkBuilder.population(..., model=, tau=)`` per population;
* everything else (engines, delays, refractoriness, inputs, sampling, continuation, save/load,
  export) unchanged; gradients refuse these networks;
* excitable QIF neurons (drive <= 0: rest at -sqrt(-I), fire only once lifted past sqrt(-I)).

Oracles (no snapshots): closed forms (LIF period tau_i ln((I - V_r)/(I - 1)), QIF period
tau_i pi / sqrt(I)), hand-computed two-neuron events, and the independent brute-force voltage
simulator ``tests/oracle_events.py`` (per-neuron tau and model lists; it shares no code with the
package). The oracle itself is self-checked first (those tests run without the feature).

Tolerances: spike ids identical, times within 1e-12 relative + 1e-15 s absolute; heap == dense
and continuations bit for bit; LIF voltages 1e-12 absolute, QIF voltages compared in the bounded
angle atan(V / sqrt(I)) to 1e-11. The random test networks were checked with the oracle alone
to be non-chaotic over the simulated windows (a 1e-15 perturbation of the initial voltages
moves no spike by more than ~5e-15 s within 1 s), so the tolerance tests the engine, not luck.
"""
import math
import types

import numpy as np
import pytest

import sparseprop as sp  # noqa: E402  (a broken build must fail, not skip)

import nets  # noqa: E402
import oracle_events as oe  # noqa: E402
from nets import assert_matches, concat, csr, same_bits  # noqa: E402

RTOL = 1e-12
ATOL = 1e-15
TAU_RANGE = (5e-3, 30e-3)


# ============================================================================ helpers
def assert_same_bits(a, b):
    ta, tb = np.asarray(a.times), np.asarray(b.times)
    ia, ib = np.asarray(a.neurons), np.asarray(b.neurons)
    assert ta.shape == tb.shape, (ta.shape, tb.shape)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(ta, tb)


def empty(n):
    return sp.SparseConnectivity(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64),
                                 np.zeros(0, dtype=np.float64))





def lif_time(tau, drive, v0=0.0):
    """Free LIF flow from v0 to threshold 1 (s)."""
    return tau * math.log((drive - v0) / (drive - 1.0))


def qif_time(tau, drive, v0=-math.inf):
    """Free QIF flow from v0 to +inf (s)."""
    s = math.sqrt(drive)
    a = -0.5 * math.pi if v0 == -math.inf else math.atan(v0 / s)
    return tau * (0.5 * math.pi - a) / s


def qif_flow(v, drive, dt, tau):
    s = math.sqrt(drive)
    return s * math.tan(math.atan(v / s) + s * dt / tau)


class Spec:
    """A random test network as plain data: per-neuron models (parts), drive, tau, CSR, delays,
    refractory, given inputs, initial voltages. ``net()`` builds the sparseprop description,
    ``oracle()`` runs tests/oracle_events.simulate directly on the plain data."""

    def __init__(self, seed, n, *, kind="mixed", delays=None, refractory=False, inputs=None,
                 poisson=False, tau=TAU_RANGE, n_relay=0, w_exc=0.15, w_inh=0.3, density=None):
        rng = np.random.default_rng(seed)
        self.n = n
        if kind == "mixed":
            a = 2 * n // 5
            b = 3 * n // 10
            self.parts = [("lif", 0.0, a), ("qif", 0.0, b), ("lif", -0.2, n - a - b)]
        elif kind == "lif":
            self.parts = [("lif", 0.1, n)]
        else:
            self.parts = [("qif", 0.0, n)]
        self.names = [m for m, _, k in self.parts for _ in range(k)]
        self.v_reset = np.array([r for _, r, k in self.parts for _ in range(k)])
        lif = np.array([m == "lif" for m in self.names])
        self.lif = lif
        drive = np.where(lif, rng.uniform(1.1, 2.5, n), rng.uniform(0.5, 2.0, n))
        sub = lif & (rng.random(n) < 0.3)                      # fluctuation-driven LIF neurons
        drive[sub] = rng.uniform(0.5, 1.0, int(sub.sum()))
        self.tau = rng.uniform(*tau, n) if isinstance(tau, tuple) else np.broadcast_to(
            np.asarray(tau, float), (n,)).copy()
        density = min(0.2, 12.0 / n) if density is None else density
        mask = rng.random((n, n)) < density
        exc = rng.random((n, n)) < 0.3
        W = np.where(exc, rng.uniform(0.0, w_exc, (n, n)), rng.uniform(-w_inh, 0.0, (n, n))) * mask
        np.fill_diagonal(W, 0.0)
        v0 = np.where(lif, rng.uniform(0.0, 0.95, n),
                      np.sqrt(np.abs(drive)) * np.tan(rng.uniform(-0.45 * math.pi, 0.45 * math.pi, n)))
        if n_relay:                    # LIF relays at rest (I = V = 0.5): no input from the network
            assert self.names[:n_relay] == ["lif"] * n_relay
            drive[:n_relay] = 0.5
            v0[:n_relay] = 0.5
            W[:n_relay, :] = 0.0
            W[n_relay:, :n_relay] = np.where(rng.random((n - n_relay, n_relay)) < 0.3,
                                             rng.uniform(-0.3, 0.4, (n - n_relay, n_relay)), 0.0)
        self.n_relay = n_relay
        self.drive = drive
        self.v0 = v0
        self.W = W
        self.indptr, self.indices, self.weights = nets.csr_from_dense(W, rng)
        nnz = self.indices.shape[0]
        self.syn_delays, self.delay = None, 0.0
        if delays == "homog":
            self.delay = float(rng.uniform(0.5e-3, 3e-3))
        elif delays == "few":
            self.syn_delays = rng.choice(np.r_[0.0, rng.uniform(0.2e-3, 4e-3, 4)], nnz)
        elif delays == "many":
            d = rng.uniform(0.2e-3, 4e-3, nnz)
            d[rng.random(nnz) < 0.2] = 0.0
            assert np.unique(d).size > 17                     # more than 16 FIFOs: pending heap
            self.syn_delays = d
        self.refractory = rng.uniform(0.0, 3e-3, n) if refractory else 0.0
        if n_relay and refractory:
            self.refractory[:n_relay] = 0.0
        self.train = None
        if inputs:
            ns = 6
            rows = [[(int(i), float(rng.uniform(-0.3, 0.7)))
                     for i in rng.choice(np.arange(n_relay, n), 5, replace=False)] for _ in range(ns)]
            nsp = 150
            idl = rng.uniform(0.0, 3e-3, ns * 5) if inputs == "delayed" else None
            times = np.sort(rng.uniform(0, 0.4, nsp))
            self.train = (times, rng.integers(0, ns, nsp), rows, idl)
        self.poisson = poisson

    # ---- sparseprop description
    def model(self):
        if len(self.parts) == 1:
            m, r, _ = self.parts[0]
            return nets.model(m, r)
        return sp.Mixed([(nets.model(m, r), k) for m, r, k in self.parts])

    def inputs(self, poisson=None):
        ins = []
        if self.train is not None:
            times, sources, rows, idl = self.train
            ins.append(sp.SpikeTrainInput(times, sources, csr(rows, n_post=self.n, delays=idl)))
        if self.poisson if poisson is None else poisson:
            if self.n_relay:
                ins.append(sp.PoissonInput(40.0, 1.5, targets=(0, self.n_relay)))
            else:
                ins.append(sp.PoissonInput(60.0, 0.25, targets=(0, self.n // 2)))
                ins.append(sp.PoissonInput(40.0, -0.2, targets=np.arange(1, self.n, 3)))
        return ins

    def net(self, tau=None, poisson=None, model=None):
        conn = sp.SparseConnectivity(self.indptr, self.indices, self.weights, delays=self.syn_delays)
        return sp.Network(self.model() if model is None else model, self.n, self.drive,
                          self.tau if tau is None else tau, conn, delay=self.delay,
                          refractory=self.refractory, inputs=self.inputs(poisson))

    # ---- direct oracle run (no sparseprop object)
    def oracle(self, names=None, tau=None, v_reset=None, **kw):
        ip, ii, ww = self.indptr, self.indices, self.weights

        def targets(j):
            return ii[ip[j]:ip[j + 1]], ww[ip[j]:ip[j + 1]]

        delays = None
        if self.syn_delays is not None:
            d = self.syn_delays

            def delays(j):
                return d[ip[j]:ip[j + 1]]
        inputs = []
        if self.train is not None:
            times, sources, rows, idl = self.train
            offs = np.cumsum([0] + [len(r) for r in rows])
            for t, src in zip(times.tolist(), sources.tolist()):      # spike order, then row order
                for m, (i, w) in enumerate(rows[src]):
                    dd = self.delay if idl is None else float(idl[offs[src] + m])
                    inputs.append((t + dd, i, w))
            inputs.sort(key=lambda e: e[0])                             # stable
        inputs += list(kw.pop("extra_inputs", ()))
        inputs.sort(key=lambda e: e[0])
        return oe.simulate(self.names if names is None else names, self.n, self.drive,
                           self.tau if tau is None else tau, targets, self.v0, delays=delays,
                           delay=self.delay, refractory=self.refractory, inputs=inputs,
                           v_reset=self.v_reset if v_reset is None else v_reset, **kw)


def per_neuron_models(net):
    """The model name of every neuron of `net` (Mixed or one model)."""
    if net.model.name == "mixed":
        return [m.name for m, a, z in net.model.parts for _ in range(a, z)]
    return [net.model.name] * net.n


def angle_cols(volts, spec_or_names, drive, ids):
    """LIF columns unchanged; QIF columns as atan(V / sqrt(I))."""
    names = spec_or_names
    v = np.array(volts, dtype=float, copy=True)
    for c, i in enumerate(np.asarray(ids).tolist()):
        if names[i] == "qif":
            v[:, c] = np.arctan(v[:, c] / math.sqrt(drive[i]))
    return v


def assert_voltages(res, ores, names, drive, ids, v_reset):
    np.testing.assert_array_equal(res.sample_times, ores.sample_times)
    assert res.voltages.shape == ores.voltages.shape
    busy = ores.sample_refractory
    for c, i in enumerate(np.asarray(ids).tolist()):
        col = busy[:, c]
        expect = -np.inf if names[i] == "qif" else v_reset[i]
        assert np.all(res.voltages[col, c] == expect), (i, res.voltages[col, c][:5], expect)
    free = ~busy
    a = angle_cols(res.voltages, names, drive, ids)
    b = angle_cols(ores.voltages, names, drive, ids)
    err = np.abs(a - b)[free]
    assert err.size and np.max(err) <= 1e-11, float(np.max(err))
    lif_cols = np.array([names[i] == "lif" for i in np.asarray(ids).tolist()])
    lif_err = np.abs(a - b)[:, lif_cols][free[:, lif_cols]]
    assert lif_err.size == 0 or np.max(lif_err) <= 1e-12, float(np.max(lif_err))


# ============================================================================ 1. oracle self-checks
def test_oracle_scalar_call_unchanged_by_array_arguments():
    """Per-neuron tau, model names and resets that are all equal reproduce the scalar-argument
    oracle bit for bit (spikes, samples, final voltages), for LIF and QIF, with delays,
    refractoriness and given inputs."""
    for kind in ("lif", "qif"):
        s = Spec(3, 30, kind=kind, delays="few", refractory=True, inputs="delayed", tau=0.013)
        st = np.linspace(0.0, 0.3, 97)
        kw = dict(t_max=0.4, sample_times=st, sample_ids=[0, 7, 29])
        scalar = s.oracle(names=kind, tau=0.013, v_reset=float(s.v_reset[0]), **kw)
        arrays = s.oracle(names=[kind] * 30, tau=np.full(30, 0.013), v_reset=np.full(30, s.v_reset[0]),
                          **kw)
        assert scalar.neurons.shape[0] > 300
        np.testing.assert_array_equal(scalar.neurons, arrays.neurons)
        np.testing.assert_array_equal(scalar.times, arrays.times)
        np.testing.assert_array_equal(scalar.voltages, arrays.voltages)
        np.testing.assert_array_equal(scalar.final_voltages, arrays.final_voltages)
        assert scalar.inputs_ignored == arrays.inputs_ignored > 0


@pytest.mark.parametrize("refractory", [0.0, 1.7e-3])
def test_oracle_single_neurons_closed_form(refractory):
    """Isolated neurons of different models and time constants in one oracle run: each fires
    with the closed-form period tau_i ln((I - V_r)/(I - 1)) (+ refractory) or tau_i pi/sqrt(I)."""
    names = ["lif", "qif", "lif", "qif", "lif", "lif"]
    drive = np.array([1.5, 0.8, 3.0, 2.5, 1.05, 0.7])
    tau = np.array([0.004, 0.011, 0.027, 0.0065, 0.019, 0.01])
    v_reset = np.array([0.0, 0.0, -0.4, 0.0, 0.3, 0.0])
    v0 = np.array([0.2, -1.0, 0.9, 4.0, 0.3, 0.7])
    n = len(names)
    res = oe.simulate(names, n, drive, tau, lambda j: ([], []), v0, refractory=refractory, t_max=1.0,
                      v_reset=v_reset)
    for i in range(n):
        t = res.times[res.neurons == i]
        if names[i] == "lif" and drive[i] <= 1:
            assert t.size == 0 and res.final_voltages[i] == 0.7      # at rest
            continue
        if names[i] == "lif":
            first = lif_time(tau[i], drive[i], v0[i])
            period = lif_time(tau[i], drive[i], v_reset[i]) + refractory
        else:
            first = qif_time(tau[i], drive[i], v0[i])
            period = qif_time(tau[i], drive[i]) + refractory
        assert period == pytest.approx(
            tau[i] * (math.log((drive[i] - v_reset[i]) / (drive[i] - 1)) if names[i] == "lif"
                      else math.pi / math.sqrt(drive[i])) + refractory, rel=1e-14)
        k = np.arange(t.size)
        assert t.size == int((1.0 - first) // period) + 1
        np.testing.assert_allclose(t, first + k * period, rtol=1e-12)


def test_oracle_mixed_uncoupled_equals_separate_runs():
    """A mixed network without cross-coupling is the union of a LIF and a QIF network: each
    neuron's spike train equals that of the single-model oracle run (per-neuron dispatch)."""
    s = Spec(5, 40, kind="mixed", delays="many", refractory=True)
    names = s.names
    lif = np.array([m == "lif" for m in names])
    block = np.equal.outer(lif, lif)                   # keep LIF->LIF and QIF->QIF synapses only
    W = s.W * block
    s.indptr, s.indices, s.weights = nets.csr_from_dense(W)
    s.syn_delays = np.random.default_rng(1).uniform(0.2e-3, 4e-3, s.indices.shape[0])
    both = s.oracle(t_max=0.5)
    assert both.neurons.shape[0] > 500
    for model, sel in (("lif", lif), ("qif", ~lif)):
        ids = np.flatnonzero(sel)
        loc = -np.ones(s.n, dtype=np.int64)
        loc[ids] = np.arange(ids.size)
        sub = W[np.ix_(ids, ids)]
        ip, ii, ww = nets.csr_from_dense(sub)
        # same synapses in the same row order, with their delays
        dmap = {}
        for j in ids.tolist():
            a, b = s.indptr[j], s.indptr[j + 1]
            for k in range(a, b):
                dmap[(j, int(s.indices[k]))] = float(s.syn_delays[k])
        d = np.array([dmap[(int(ids[j]), int(ids[ii[k]]))]
                      for j in range(ids.size) for k in range(ip[j], ip[j + 1])])
        one = oe.simulate(model, ids.size, s.drive[ids], s.tau[ids],
                          lambda j: (ii[ip[j]:ip[j + 1]], ww[ip[j]:ip[j + 1]]), s.v0[ids],
                          delays=lambda j: d[ip[j]:ip[j + 1]], refractory=np.asarray(s.refractory)[ids],
                          v_reset=s.v_reset[ids], t_max=0.5)
        for i in ids.tolist():
            np.testing.assert_array_equal(both.times[both.neurons == i], one.times[one.neurons == loc[i]])


def test_oracle_time_rescaling():
    """Scaling every tau, delay, refractory period and input time by c scales every spike time
    by c (the dynamics are in units of each neuron's own tau)."""
    s = Spec(11, 30, kind="mixed", delays="few", refractory=True, inputs="delayed")
    base = s.oracle(spikes=600)
    c = 2.5
    s.tau = s.tau * c
    s.syn_delays = s.syn_delays * c
    s.refractory = s.refractory * c
    times, sources, rows, idl = s.train
    s.train = (times * c, sources, rows, idl * c)
    scaled = s.oracle(spikes=600)
    np.testing.assert_array_equal(base.neurons, scaled.neurons)
    np.testing.assert_allclose(scaled.times, c * base.times, rtol=1e-12)


def _two_neuron_reference(tau0, tau1, i0, i1, w, delay, t_end):
    """LIF neuron 0 (tau0, drive i0, V0 = 0, reset 0) -> QIF neuron 1 (tau1, drive i1, V1 = -2)
    with weight w after `delay`: event list computed by hand from the closed forms."""
    period0 = lif_time(tau0, i0)
    spikes0 = [period0 * (k + 1) for k in range(int(t_end / period0) + 1)]
    arrivals = [t + delay for t in spikes0]
    out = [(t, 0) for t in spikes0 if t <= t_end]
    v, T = -2.0, 0.0
    s1 = math.sqrt(i1)
    k = 0
    while True:
        fire = T + tau1 * (0.5 * math.pi - math.atan(v / s1)) / s1 if v > -math.inf else T + qif_time(tau1, i1)
        if k < len(arrivals) and arrivals[k] < fire:
            t = arrivals[k]
            v = (qif_flow(v, i1, t - T, tau1) if v > -math.inf else
                 s1 * math.tan(-0.5 * math.pi + s1 * (t - T) / tau1)) + w
            T = t
            k += 1
            continue
        if fire > t_end:
            break
        out.append((fire, 1))
        v, T = -math.inf, fire
    out.sort()
    return np.array([t for t, _ in out]), np.array([j for _, j in out])


def test_oracle_hand_computed_lif_to_qif():
    args = (0.007, 0.023, 1.5, 0.8, 0.5, 1.3e-3, 0.3)
    t_ref, ids_ref = _two_neuron_reference(*args)
    tau0, tau1, i0, i1, w, d, t_end = args
    res = oe.simulate(["lif", "qif"], 2, [i0, i1], [tau0, tau1],
                      lambda j: ([1], [w]) if j == 0 else ([], []), [0.0, -2.0], delay=d, t_max=t_end)
    assert np.sum(ids_ref == 1) > 5
    np.testing.assert_array_equal(res.neurons, ids_ref)
    np.testing.assert_allclose(res.times, t_ref, rtol=1e-13)


def test_oracle_reads_a_mixed_description():
    """simulate_net reads net.model.parts (model names, LIF resets) and an array net.tau exactly
    like the plain call (a stand-in description object: no sparseprop needed)."""
    s = Spec(13, 30, kind="mixed", delays="few", refractory=True)
    ip, ii, ww = s.indptr, s.indices, s.weights
    lif0 = types.SimpleNamespace(name="lif", v_reset=0.0)
    lif2 = types.SimpleNamespace(name="lif", v_reset=-0.2)
    qif = types.SimpleNamespace(name="qif")
    (_, _, a), (_, _, b), (_, _, c) = s.parts
    model = types.SimpleNamespace(name="mixed", parts=((lif0, 0, a), (qif, a, a + b), (lif2, a + b, a + b + c)))
    conn = types.SimpleNamespace(indptr=ip, indices=ii, weights=ww, delays=s.syn_delays)
    fake = types.SimpleNamespace(n=s.n, drive=s.drive, tau=s.tau, model=model, connectivity=conn,
                                 delay=s.delay, refractory=s.refractory, inputs=[],
                                 targets=lambda j: (ii[ip[j]:ip[j + 1]], ww[ip[j]:ip[j + 1]]))
    x = oe.simulate_net(fake, s.v0, spikes=500)
    y = s.oracle(spikes=500)
    np.testing.assert_array_equal(x.neurons, y.neurons)
    np.testing.assert_array_equal(x.times, y.times)
    assert oe.network_models(fake) == (s.names, s.v_reset.tolist())


def test_oracle_excitable_qif_closed_form():
    """Excitable QIF (I = -a^2 <= 0), the oracle's flow against the textbook forms:
    |V| < a: V(t) = -a tanh(a t/tau - atanh(V/a)); V > a: V(t) = -a coth(a t/tau - acoth(V/a)),
    blowing up at tau acoth(V/a)/a; I = 0: V(t) = V/(1 - V t/tau)."""
    tau = 0.013
    for a in (0.2, 1.0):
        for v in (-0.9 * a, 0.0, 0.5 * a):
            for dt in (1e-4, 3e-3, 0.05):
                want = -a * math.tanh(a * dt / tau - math.atanh(v / a))
                assert oe.qif_excitable_flow(v, -a * a, dt, tau) == pytest.approx(want, rel=1e-12, abs=1e-15)
            assert oe.qif_excitable_time_to_spike(v, -a * a, tau) == math.inf
        for v in (1.01 * a, 2 * a, 50 * a):
            t_spike = tau * math.atanh(a / v) / a
            assert oe.qif_excitable_time_to_spike(v, -a * a, tau) == pytest.approx(t_spike, rel=1e-12)
            for frac in (0.1, 0.5, 0.99):
                dt = frac * t_spike
                want = -a / math.tanh(a * dt / tau - math.atanh(a / v))
                assert oe.qif_excitable_flow(v, -a * a, dt, tau) == pytest.approx(want, rel=1e-9)
        for v in (-1.5 * a, -20 * a):                     # below the rest: rises towards -a
            x = oe.qif_excitable_flow(v, -a * a, 0.01, tau)
            assert v < x < -a and oe.qif_excitable_time_to_spike(v, -a * a, tau) == math.inf
            want = -a / math.tanh(a * 0.01 / tau + math.atanh(a / -v))
            assert x == pytest.approx(want, rel=1e-12)
        assert oe.qif_excitable_flow(-math.inf, -a * a, 0.01, tau) == pytest.approx(
            -a / math.tanh(a * 0.01 / tau), rel=1e-12)
    for v in (-2.0, 0.3, 4.0):
        assert oe.qif_excitable_flow(v, 0.0, 1e-3, tau) == pytest.approx(v / (1 - v * 1e-3 / tau), rel=1e-13)
    assert oe.qif_excitable_time_to_spike(0.3, 0.0, tau) == pytest.approx(tau / 0.3, rel=1e-15)
    assert oe.qif_excitable_flow(-math.inf, 0.0, 1e-3, tau) == pytest.approx(-tau / 1e-3, rel=1e-15)


# ============================================================================ 2. API
def test_mixed_model_api():
    m = sp.Mixed([(sp.LIF(v_reset=-0.3), 3), ("qif", 2), ("lif", 4)])
    assert m.name == "mixed"
    parts = tuple(m.parts)
    assert [(p[1], p[2]) for p in parts] == [(0, 3), (3, 5), (5, 9)]
    assert [p[0].name for p in parts] == ["lif", "qif", "lif"]
    assert parts[0][0] == sp.LIF(v_reset=-0.3) and parts[0][0].v_reset == -0.3
    assert parts[2][0].v_reset == 0.0
    net = sp.Network(m, 9, np.r_[np.full(3, 1.5), np.full(2, 0.7), np.full(4, 0.9)],
                     np.linspace(0.004, 0.02, 9), empty(9))
    assert net.model.name == "mixed"
    assert net.time_unit == 0.004
    np.testing.assert_array_equal(net.tau, np.linspace(0.004, 0.02, 9))
    assert sp.Network(sp.LIF(), 3, 1.5, 0.017, empty(3)).time_unit == 0.017
    assert sp.Network(sp.QIF(), 3, 1.5, np.array([0.03, 0.02, 0.05]), empty(3)).time_unit == 0.02


# ============================================================================ 3. single neurons
@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("refractory", [0.0, 0.8e-3], ids=["noref", "ref"])
def test_single_neurons_closed_form(engine, refractory):
    """Isolated LIF and QIF neurons with tau from 0.5 ms to 0.2 s in one network (1 s = 2000
    min-tau: many clock renormalisations): spike times = first + k * period, closed form."""
    names = ["lif", "qif", "lif", "qif", "lif", "qif", "lif", "lif"]
    drive = np.array([1.5, 0.8, 3.0, 2.5, 1.05, 1.0, 2.0, 0.6])
    tau = np.array([0.0005, 0.011, 0.027, 0.0013, 0.2, 0.07, 0.0041, 0.001])
    v_reset = [0.0, 0.0, -0.4, 0.0, 0.3, 0.0, 0.0, 0.0]
    v0 = np.array([0.2, -1.0, 0.9, 4.0, 0.3, 0.0, 0.0, 0.7])
    parts = [(nets.model(m, r), 1) for m, r in zip(names, v_reset)]
    net = sp.Network(sp.Mixed(parts), 8, drive, tau, empty(8), refractory=refractory)
    assert net.time_unit == 0.0005
    res = sp.simulate(net, t_max=1.0, initial_voltages=v0, engine=engine)
    t_all, ids = np.asarray(res.times), np.asarray(res.neurons)
    for i, name in enumerate(names):
        t = t_all[ids == i]
        if name == "lif" and drive[i] <= 1:
            assert t.size == 0
            continue
        if name == "lif":
            first = lif_time(tau[i], drive[i], v0[i])
            period = tau[i] * math.log((drive[i] - v_reset[i]) / (drive[i] - 1.0)) + refractory
        else:
            first = qif_time(tau[i], drive[i], v0[i])
            period = tau[i] * math.pi / math.sqrt(drive[i]) + refractory
        assert t.size == int((1.0 - first) // period) + 1, (i, t.size)
        expect = first + np.arange(t.size) * period
        err = np.max(np.abs(t - expect) / expect)
        assert err <= RTOL, (i, name, err)
    # the subthreshold LIF neuron relaxes to its drive with its own tau
    v7 = res.final_voltages()[7]
    assert v7 == pytest.approx(0.6 + (0.7 - 0.6) * math.exp(-1.0 / 0.001), abs=1e-14)


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("kind", ["lif", "qif", "lif-shared-drive", "qif-shared-drive"])
def test_single_model_tau_array_closed_form(engine, kind):
    """A one-model network with a per-neuron tau array (no Mixed), per-neuron or shared drive."""
    n = 5
    tau = np.array([0.002, 0.009, 0.013, 0.03, 0.0051])
    drive = np.array([1.2, 1.7, 2.4, 1.05, 3.0]) if kind == "lif" else np.array([0.3, 1.0, 2.0, 4.0, 0.9])
    if kind.endswith("shared-drive"):
        kind = kind.split("-")[0]
        drive = np.full(n, 1.7)
    net = sp.Network(nets.model(kind), n, 1.7 if np.all(drive == 1.7) else drive, tau, empty(n))
    v0 = np.zeros(n)
    res = sp.simulate(net, t_max=0.5, initial_voltages=v0, engine=engine)
    for i in range(n):
        t = np.asarray(res.times)[np.asarray(res.neurons) == i]
        if kind == "lif":
            period = tau[i] * math.log(drive[i] / (drive[i] - 1.0))
            first = period
        else:
            period = tau[i] * math.pi / math.sqrt(drive[i])
            first = 0.5 * period
        expect = first + np.arange(t.size) * period
        assert t.size == int((0.5 - first) // period) + 1
        np.testing.assert_allclose(t, expect, rtol=RTOL)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_qif_starting_at_its_reset_and_lif_refusing_it(engine):
    """initial_voltages: -inf is a QIF neuron's reset (it fires after tau_i pi / sqrt(I)), and
    not a valid LIF voltage."""
    net = sp.Network(sp.Mixed([(sp.LIF(), 1), (sp.QIF(), 2)]), 3, [1.5, 2.0, 0.7], [0.004, 0.013, 0.021],
                     empty(3))
    res = sp.simulate(net, t_max=0.1, initial_voltages=[0.0, -np.inf, -np.inf], engine=engine)
    t1 = np.asarray(res.times)[np.asarray(res.neurons) == 1]
    t2 = np.asarray(res.times)[np.asarray(res.neurons) == 2]
    assert t1[0] == pytest.approx(0.013 * math.pi / math.sqrt(2.0), rel=RTOL)
    assert t2[0] == pytest.approx(0.021 * math.pi / math.sqrt(0.7), rel=RTOL)
    t0 = np.asarray(res.times)[np.asarray(res.neurons) == 0]
    np.testing.assert_allclose(t0, lif_time(0.004, 1.5) * np.arange(1, t0.size + 1), rtol=RTOL)
    with pytest.raises(ValueError, match="initial_voltages"):
        sp.simulate(net, spikes=3, initial_voltages=[-np.inf, 0.0, 0.0], engine=engine)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_hand_computed_lif_to_qif(engine):
    """LIF neuron 0 (tau 7 ms) -> QIF neuron 1 (tau 23 ms), w = 0.5, delay 1.3 ms: every event
    from the closed forms."""
    tau0, tau1, i0, i1, w, d, t_end = 0.007, 0.023, 1.5, 0.8, 0.5, 1.3e-3, 0.3
    t_ref, ids_ref = _two_neuron_reference(tau0, tau1, i0, i1, w, d, t_end)
    net = sp.Network(sp.Mixed([(sp.LIF(), 1), (sp.QIF(), 1)]), 2, [i0, i1], [tau0, tau1],
                     csr([[(1, w)], []]), delay=d)
    res = sp.simulate(net, t_max=t_end, initial_voltages=[0.0, -2.0], engine=engine)
    np.testing.assert_array_equal(res.neurons, ids_ref)
    np.testing.assert_allclose(res.times, t_ref, rtol=RTOL, atol=ATOL)
    assert_matches(res, oe.simulate_net(net, [0.0, -2.0], t_max=t_end))


# ============================================================================ 4. random networks vs oracle
CASES = {
    # (a) LIF with per-neuron tau
    "lif-tau": dict(seed=1, n=40, kind="lif"),
    "lif-tau-ref-inputs": dict(seed=2, n=50, kind="lif", delays="few", refractory=True, inputs="plain"),
    # (b) mixed LIF + QIF with per-neuron tau
    "mixed-tau": dict(seed=3, n=40, kind="mixed"),
    "mixed-tau-n60": dict(seed=4, n=60, kind="mixed"),
    "qif-tau": dict(seed=5, n=30, kind="qif"),
    # (c) delays (homogeneous, per synapse: FIFOs and the pending heap), refractoriness, inputs
    "mixed-homog-ref-inputs": dict(seed=6, n=40, kind="mixed", delays="homog", refractory=True,
                                   inputs="plain"),
    "mixed-few-ref-delayedinputs": dict(seed=7, n=50, kind="mixed", delays="few", refractory=True,
                                        inputs="delayed"),
    "mixed-many-ref": dict(seed=8, n=40, kind="mixed", delays="many", refractory=True),
    "mixed-many-noref-inputs": dict(seed=9, n=30, kind="mixed", delays="many", inputs="delayed"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_random_network_vs_oracle(case):
    kw = dict(CASES[case])
    s = Spec(kw.pop("seed"), kw.pop("n"), **kw)
    net = s.net()
    assert np.ndim(net.tau) == 1 and net.time_unit == s.tau.min()
    ores = oe.simulate_net(net, s.v0, t_max=0.5)
    direct = s.oracle(t_max=0.5)                       # the description says what the Spec says
    np.testing.assert_array_equal(ores.times, direct.times)
    np.testing.assert_array_equal(ores.neurons, direct.neurons)
    assert ores.neurons.shape[0] > 300
    if kw.get("refractory"):
        assert ores.inputs_ignored > 0
    ids = np.unique(ores.neurons)
    if kw["kind"] == "mixed":                          # both models fire
        assert np.any(~s.lif[ids]) and np.any(s.lif[ids])
    runs = {e: sp.simulate(net, t_max=0.5, initial_voltages=s.v0, engine=e) for e in nets.ENGINES}
    for e, res in runs.items():
        assert_matches(res, ores)
    for e in ("tree", "heap"):
        assert_same_bits(runs[e], runs["dense"])
        np.testing.assert_array_equal(runs[e].final_state.states, runs["dense"].final_state.states)


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("kind", ["lif", "mixed"])
def test_voltage_samples_vs_oracle(engine, kind):
    """(d) exact voltages of chosen neurons (LIF: 1e-12 absolute; QIF: in angle; refractory
    samples exactly at the neuron's own reset, -inf for QIF) and final voltages."""
    s = Spec(21, 40, kind=kind, delays="few", refractory=True, inputs="delayed")
    net = s.net()
    rng = np.random.default_rng(3)
    st = np.sort(rng.uniform(0.0, 0.4, 500))
    ids = np.arange(s.n) if kind == "lif" else np.r_[0:3, 14:20, 30:40]
    res = sp.simulate(net, t_max=0.4, initial_voltages=s.v0, engine=engine,
                      record=sp.Record(voltages=ids, sample_times=st))
    ores = oe.simulate_net(net, s.v0, t_max=0.4, sample_times=st, sample_ids=ids)
    assert_matches(res, ores)
    assert ores.sample_refractory.sum() > 30
    assert_voltages(res, ores, s.names, s.drive, ids, s.v_reset)
    fin = res.final_voltages()
    all_ids = np.arange(s.n)
    a = angle_cols(fin[None, :], s.names, s.drive, all_ids)[0]
    b = angle_cols(ores.final_voltages[None, :], s.names, s.drive, all_ids)[0]
    finite = np.isfinite(b)
    np.testing.assert_array_equal(a[~finite], b[~finite])
    np.testing.assert_allclose(a[finite], b[finite], rtol=0, atol=1e-11)


@pytest.mark.parametrize("kind", ["lif", "mixed"])
def test_long_run_many_renormalisations(kind):
    """t_max = 200 min-tau (the engine clock renormalises every few time units): the last spikes
    agree with the oracle as well as the first ones."""
    s = Spec(31, 30, kind=kind, delays="few", refractory=True, tau=(4e-3, 30e-3))
    net = s.net()
    t_max = 200 * net.time_unit
    ores = oe.simulate_net(net, s.v0, t_max=t_max)
    assert ores.times[-1] > 0.95 * t_max and ores.neurons.shape[0] > 1000
    for engine in nets.ENGINES:
        res = sp.simulate(net, t_max=t_max, initial_voltages=s.v0, engine=engine)
        assert_matches(res, ores)
        assert res.t_end == t_max
        # no loss of precision late in the run: the last 100 spikes are as exact as the first
        late = np.abs(np.asarray(res.times)[-100:] - ores.times[-100:]) / ores.times[-100:]
        assert np.max(late) <= 1e-13, float(np.max(late))


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_uniform_tau_array_equals_scalar_tau(engine):
    """An (n,) tau array with one value gives the spikes of the scalar-tau network."""
    for kind in ("lif", "qif"):
        s = Spec(41, 40, kind=kind, delays="few", refractory=True, inputs="plain", tau=0.012)
        a = sp.simulate(s.net(tau=0.012), t_max=0.4, initial_voltages=s.v0, engine=engine)
        b = sp.simulate(s.net(tau=np.full(s.n, 0.012)), t_max=0.4, initial_voltages=s.v0, engine=engine)
        np.testing.assert_array_equal(a.neurons, b.neurons)
        np.testing.assert_allclose(b.times, a.times, rtol=RTOL, atol=ATOL)
        assert a.n_spikes > 300


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_random_initial_state_with_seed_ic(engine):
    """seed_ic draws a valid initial state per model (LIF in [V_r, 1), QIF finite): read it
    back as voltage samples at t = 0 and run the oracle from there."""
    s = Spec(43, 40, kind="mixed", delays="homog")
    assert np.any(s.lif & (s.drive <= 1.0))               # fluctuation-driven neurons included
    net = s.net()
    st = np.r_[0.0, np.linspace(0.01, 0.3, 30)]
    res = sp.simulate(net, t_max=0.3, seed_ic=7, engine=engine,
                      record=sp.Record(voltages=np.arange(s.n), sample_times=st))
    v0 = res.voltages[0]
    assert np.all(np.isfinite(v0))
    assert np.all((v0[s.lif] >= s.v_reset[s.lif]) & (v0[s.lif] < 1.0))
    ores = oe.simulate_net(net, v0, t_max=0.3, sample_times=st, sample_ids=np.arange(s.n))
    assert_matches(res, ores)
    other = sp.simulate(net, t_max=0.3, seed_ic=8, engine=engine)
    assert not same_bits(res, other)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_procedural_connectivity_vs_oracle(engine):
    """FixedOutDegree (targets regenerated at each spike) with a Mixed model and tau array."""
    n = 60
    rng = np.random.default_rng(45)
    model = sp.Mixed([(sp.LIF(), 30), (sp.QIF(), 15), (sp.LIF(v_reset=0.2), 15)])
    drive = np.r_[rng.uniform(1.2, 2.5, 30), rng.uniform(0.5, 2.0, 15), rng.uniform(1.2, 2.5, 15)]
    net = sp.Network(model, n, drive, rng.uniform(*TAU_RANGE, n), sp.FixedOutDegree(6, -0.15, seed=4),
                     delay=1.3e-3, refractory=rng.uniform(0, 2e-3, n))
    v0 = np.r_[rng.uniform(0, 0.95, 30), rng.uniform(-2, 2, 15), rng.uniform(0.2, 0.95, 15)]
    ores = oe.simulate_net(net, v0, t_max=0.4)
    assert ores.neurons.shape[0] > 500
    assert_matches(sp.simulate(net, t_max=0.4, initial_voltages=v0, engine=engine), ores)


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("model", ["lif", "mixed", "mixed-scalar-tau"])
def test_subthreshold_lif_stays_silent_across_a_long_gap(model, engine):
    """The only spiking neuron (LIF tau 1 s or QIF tau 0.1 s with time unit 0.5 ms; or, with one
    tau of 10 ms, a QIF neuron with I = 1e-6) fires every ~2000-3000 time units; neuron 0 (LIF,
    I = 0.5, at rest, no synapses) must never fire. Found: neuron 0 fires without end at t = 0."""
    conn = empty(2)
    t_max = 3.0
    if model == "lif":
        net = sp.Network(sp.LIF(), 2, [0.5, 1.5], np.array([0.0005, 1.0]), conn)
        v0, first, period = [0.5, 0.0], lif_time(1.0, 1.5), lif_time(1.0, 1.5)
    elif model == "mixed":
        net = sp.Network(sp.Mixed([(sp.LIF(), 1), (sp.QIF(), 1)]), 2, [0.5, 0.05], np.array([0.0005, 0.1]), conn)
        v0, first, period = [0.5, -np.inf], qif_time(0.1, 0.05), qif_time(0.1, 0.05)
    else:
        net = sp.Network(sp.Mixed([(sp.LIF(), 1), (sp.QIF(), 1)]), 2, [0.5, 1e-6], 0.01, conn)
        v0, first, period, t_max = [0.5, 0.0], qif_time(0.01, 1e-6, 0.0), qif_time(0.01, 1e-6), 80.0
    res = sp.simulate(net, t_max=t_max, initial_voltages=v0, engine=engine, record=sp.Record(max_spikes=100))
    assert res.metadata["stopped_by"] == "t_max"
    k = int((t_max - first) // period) + 1
    np.testing.assert_array_equal(res.neurons, [1] * k)
    np.testing.assert_allclose(res.times, first + period * np.arange(k), rtol=RTOL)
    assert res.final_voltages()[0] == 0.5


@pytest.mark.parametrize("kind", ["homog", "per_synapse"])
def test_delays_of_thousands_of_time_units(kind):
    """Delays stay in seconds: 1 s is 2000 time units of the 0.5 ms neuron (and 50 tau of the
    QIF neuron); the LIF spikes reach the QIF neuron exactly 1 s later."""
    D = 1.0
    conn = csr([[(1, 0.3)], []], delays=None if kind == "homog" else [D])
    net = sp.Network(sp.Mixed([(sp.LIF(), 1), (sp.QIF(), 1)]), 2, [1.5, 0.04], np.array([0.0005, 0.02]), conn,
                     delay=D if kind == "homog" else 0.0)
    v0 = [0.0, -3.0]
    res = sp.simulate(net, t_max=D + 0.02, initial_voltages=v0)
    ores = oe.simulate_net(net, v0, t_max=D + 0.02)
    assert_matches(res, ores)
    t1 = np.asarray(res.times)[np.asarray(res.neurons) == 1]
    free = qif_time(0.02, 0.04, -3.0) + np.arange(3) * qif_time(0.02, 0.04)
    np.testing.assert_allclose(t1[:3], free, rtol=RTOL)   # free flow before the first arrival
    assert np.all(t1[:3] < D) and np.any(t1 > D)


def test_long_silences_in_units_of_the_smallest_tau():
    """min tau = 0.5 ms: Poisson intervals (1 Hz) and a given input 7.5 s late are thousands
    of time units away (longer than the clock's range); relays make the Poisson events
    visible, and the oracle reproduces everything from them."""
    n = 5
    model = sp.Mixed([(sp.LIF(), 3), (sp.QIF(), 1), (sp.LIF(v_reset=-0.3), 1)])
    tau = np.array([0.0005, 0.08, 0.05, 0.1, 0.03])
    drive = np.array([0.5, 0.5, 0.8, 0.05, 0.9])
    rows = [[(2, 0.3), (3, -0.5)], [(2, 0.25), (4, 0.2)], [(4, 0.15)], [(2, 0.05)], []]
    train = sp.SpikeTrainInput([7.5], [0], csr([[(4, 0.6), (2, 0.4)]], n_post=n))
    mk = lambda inputs: sp.Network(model, n, drive, tau, csr(rows), delay=2e-3, inputs=inputs)  # noqa: E731
    net = mk([train, sp.PoissonInput(1.0, 1.5, targets=(0, 2))])
    v0 = np.array([0.5, 0.5, 0.8, -1.0, 0.0])
    t_max = 40.0
    cap = sp.Record(max_spikes=20000)        # a runaway (spurious spikes) fails instead of eating RAM
    res = sp.simulate(net, t_max=t_max, initial_voltages=v0, seed_input=7, record=cap)
    assert res.metadata["stopped_by"] == "t_max", res.metadata["stopped_by"]
    dense = sp.simulate(net, t_max=t_max, initial_voltages=v0, seed_input=7, engine="dense", record=cap)
    assert_same_bits(res, dense)
    t, ids = np.asarray(res.times), np.asarray(res.neurons)
    relay = ids < 2
    assert abs(relay.sum() - 2 * t_max) < 5 * math.sqrt(2 * t_max), relay.sum()
    late = t[(ids == 4) & (np.abs(t - 7.502) < 1e-11)]      # the late input (+ the 2 ms delay)
    assert late.size == 1                                    # made neuron 4 fire
    ores = oe.simulate_net(mk([train]), v0, t_max=t_max,
                           extra_inputs=[(float(x), int(j), 1.5) for x, j in zip(t[relay], ids[relay])])
    assert_matches(res, ores)
    assert np.sum(ids == 3) > 10 and np.sum(ids == 2) > 10


def test_descriptions_summaries_and_pickling():
    import json
    import pickle

    s = Spec(47, 30, kind="mixed", delays="few", refractory=True, inputs="plain", poisson=True)
    net = s.net()
    json.dumps(net.describe())
    back = pickle.loads(pickle.dumps(net))
    assert back.fingerprint() == net.fingerprint()
    assert [(m, a, z) for m, a, z in back.model.parts] == [(m, a, z) for m, a, z in net.model.parts]
    res = sp.simulate(net, t_max=0.2, initial_voltages=s.v0)
    json.dumps(res.summary())
    assert res.n_spikes > 100 and np.isfinite(res.mean_rate())
    x = sp.simulate(back, t_max=0.2, initial_voltages=s.v0)
    assert_same_bits(res, x)


# ============================================================================ 5. heap == dense, continuation
@pytest.mark.parametrize("kind", ["lif", "mixed"])
def test_heap_equals_dense_with_all_features(kind):
    s = Spec(51, 60, kind=kind, delays="many", refractory=True, inputs="delayed", poisson=True)
    net = s.net()
    a = sp.simulate(net, t_max=0.8, initial_voltages=s.v0, engine="heap", seed_input=2)
    b = sp.simulate(net, t_max=0.8, initial_voltages=s.v0, engine="dense", seed_input=2)
    assert a.n_spikes > 1000
    assert_same_bits(a, b)
    np.testing.assert_array_equal(a.final_state.states, b.final_state.states)
    assert a.metadata["events"] == b.metadata["events"]


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("kind", ["lif", "mixed"])
def test_continuation_is_bit_exact(kind, engine):
    """Runs chained through final_state (cuts just after spikes, with deliveries in flight and
    neurons refractory, and at arbitrary times) equal one long run bit for bit."""
    s = Spec(61, 50, kind=kind, delays="few", refractory=True, inputs="delayed", poisson=True)
    net = s.net()
    t_max = 0.9
    full = sp.simulate(net, t_max=t_max, initial_voltages=s.v0, engine=engine, seed_input=6)
    assert full.n_spikes > 1000
    parts = nets.assert_chained_runs_equal(net, full, t_max, {"initial_voltages": s.v0, "seed_input": 6},
                                           (0.3, 0.61), engine)
    np.testing.assert_array_equal(parts[-1].final_voltages(), full.final_voltages())


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_continuation_by_spike_count(engine):
    s = Spec(62, 30, kind="mixed", delays="homog", refractory=True, inputs="plain")
    net = s.net()
    full = sp.simulate(net, t_max=0.3, initial_voltages=s.v0, engine=engine)
    for k in (1, 17, 150, 333):
        a = sp.simulate(net, spikes=k, initial_voltages=s.v0, engine=engine)
        b = sp.simulate(net, t_max=0.3, state=a.final_state, engine=engine)
        t, ids = concat([a, b])
        np.testing.assert_array_equal(ids, full.neurons)
        np.testing.assert_array_equal(t, full.times)


def test_state_of_a_network_with_other_tau_is_refused():
    s = Spec(63, 20, kind="mixed")
    res = sp.simulate(s.net(), t_max=0.05, initial_voltages=s.v0)
    tau = s.tau.copy()
    tau[3] *= 1.001
    other = s.net(tau=tau)
    assert other.fingerprint() != s.net().fingerprint()
    with pytest.raises(ValueError, match="state"):
        sp.simulate(other, t_max=0.1, state=res.final_state)
    # and another model split (the Spec's is 8 + 6 + 6)
    assert [(a, z) for _, a, z in s.net().model.parts] == [(0, 8), (8, 14), (14, 20)]
    m = sp.Mixed([(sp.LIF(), 9), (sp.QIF(), 5), (sp.LIF(v_reset=-0.2), 6)])
    third = s.net(model=m)
    assert third.fingerprint() != s.net().fingerprint()
    with pytest.raises(ValueError, match="state"):
        sp.simulate(third, t_max=0.1, state=res.final_state)


# ============================================================================ 6. builder
def _builder_parts():
    rng = np.random.default_rng(71)
    sizes = {"A": 12, "Q": 8, "R": 10}
    n = sum(sizes.values())
    tau_a = rng.uniform(*TAU_RANGE, 12)
    tau_q = 0.02
    tau_r = rng.uniform(*TAU_RANGE, 10)
    drive = np.r_[rng.uniform(1.1, 2.5, 12), rng.uniform(0.5, 2.0, 8), rng.uniform(0.6, 2.0, 10)]
    refr = np.r_[np.full(12, 1e-3), np.zeros(8), rng.uniform(0, 2e-3, 10)]
    W = (rng.random((n, n)) < 0.3) * np.where(rng.random((n, n)) < 0.3, rng.uniform(0, 0.15, (n, n)),
                                             rng.uniform(-0.3, 0, (n, n)))
    np.fill_diagonal(W, 0.0)
    v0 = np.r_[rng.uniform(0, 0.95, 12), rng.uniform(-2, 2, 8), rng.uniform(-0.2, 0.95, 10)]
    return sizes, tau_a, tau_q, tau_r, drive, refr, W, v0


def test_builder_per_population_model_and_tau_equals_hand_built():
    sizes, tau_a, tau_q, tau_r, drive, refr, W, v0 = _builder_parts()
    b = sp.NetworkBuilder(sp.LIF(), tau=0.01, delay=1.1e-3)
    A = b.population("A", 12, drive=drive[:12], refractory=1e-3, tau=tau_a)
    Q = b.population("Q", 8, drive=drive[12:20], model=sp.QIF(), tau=tau_q)
    R = b.population("R", 10, drive=drive[20:], refractory=refr[20:], model=sp.LIF(v_reset=-0.2), tau=tau_r)
    pops = {"A": slice(0, 12), "Q": slice(12, 20), "R": slice(20, 30)}
    for pre_name, pre in (("A", A), ("Q", Q), ("R", R)):
        for post_name, post in (("A", A), ("Q", Q), ("R", R)):
            block = W[pops[post_name], pops[pre_name]]
            if np.any(block):
                b.connect(pre, post, sp.FromMatrix(block))
    built = b.build(seed=1)
    hand = sp.Network(sp.Mixed([(sp.LIF(), 12), (sp.QIF(), 8), (sp.LIF(v_reset=-0.2), 10)]), 30, drive,
                      np.r_[tau_a, np.full(8, tau_q), tau_r],
                      sp.SparseConnectivity(*nets.csr_from_dense(W)), delay=1.1e-3, refractory=refr)
    assert built.model.name == "mixed"
    assert [(m, a, z) for m, a, z in built.model.parts] == [(m, a, z) for m, a, z in hand.model.parts]
    np.testing.assert_array_equal(built.tau, hand.tau)
    assert built.time_unit == hand.time_unit == min(tau_a.min(), tau_q, tau_r.min())
    np.testing.assert_array_equal(built.drive, hand.drive)
    np.testing.assert_array_equal(built.refractory, hand.refractory)
    assert built.populations == {"A": (0, 12), "Q": (12, 20), "R": (20, 30)}
    for engine in nets.ENGINES:
        x = sp.simulate(built, t_max=0.4, initial_voltages=v0, engine=engine)
        y = sp.simulate(hand, t_max=0.4, initial_voltages=v0, engine=engine)
        assert x.n_spikes > 300
        assert_same_bits(x, y)
    assert_matches(x, oe.simulate_net(built, v0, t_max=0.4))


def test_builder_shared_model_or_shared_tau():
    """Per-population tau with one model: no Mixed, a tau array; per-population models with one
    tau: Mixed, scalar tau; neither differs: the plain network (scalar tau, one model)."""
    b = sp.NetworkBuilder(sp.LIF(v_reset=0.1), tau=0.01)
    b.population("A", 3, drive=1.5)
    b.population("B", 2, drive=1.5, tau=np.array([0.02, 0.03]))
    net = b.build(seed=1)
    assert net.model == sp.LIF(v_reset=0.1)
    np.testing.assert_array_equal(net.tau, [0.01, 0.01, 0.01, 0.02, 0.03])
    assert net.time_unit == 0.01
    b = sp.NetworkBuilder("qif", tau=0.02)
    b.population("A", 3, drive=1.5)
    b.population("B", 2, drive=1.2, model="lif", tau=0.02)
    net = b.build(seed=1)
    assert net.model.name == "mixed" and np.ndim(net.tau) == 0 and net.tau == 0.02
    assert [(m.name, a, z) for m, a, z in net.model.parts] == [("qif", 0, 3), ("lif", 3, 5)]
    b = sp.NetworkBuilder(sp.LIF(), tau=0.01)
    b.population("A", 3, drive=1.5, model=sp.LIF(), tau=0.01)
    b.population("B", 2, drive=1.5, tau=np.full(2, 0.01))
    net = b.build(seed=1)
    assert net.model == sp.LIF() and np.ndim(net.tau) == 0 and net.tau == 0.01
    # adjacent populations with equal models share one part or not: the per-neuron models agree
    b = sp.NetworkBuilder(sp.LIF(), tau=0.01)
    b.population("A", 2, drive=1.5)
    b.population("B", 2, drive=1.5)
    b.population("C", 3, drive=1.5, model=sp.QIF())
    net = b.build(seed=1)
    assert net.model.name == "mixed"
    assert per_neuron_models(net) == ["lif"] * 4 + ["qif"] * 3


# ============================================================================ 7. Poisson input
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_poisson_through_relays_is_exact(engine):
    """Poisson events (weight 1.5) hit LIF relays at rest: each event is one relay spike at the
    event instant, so the relay spikes ARE the realised Poisson events. Feeding them to the
    oracle as given inputs must reproduce the whole mixed network's spikes; the event count is
    that of the Poisson rate (5 sigma)."""
    s = Spec(81, 40, kind="mixed", delays="few", refractory=True, poisson=True, n_relay=5)
    net = s.net()
    t_max = 1.0
    res = sp.simulate(net, t_max=t_max, initial_voltages=s.v0, engine=engine, seed_input=3)
    t, ids = np.asarray(res.times), np.asarray(res.neurons)
    relay = ids < s.n_relay
    lam = 40.0 * s.n_relay * t_max
    assert abs(relay.sum() - lam) < 5 * math.sqrt(lam), relay.sum()
    isi = np.diff(np.r_[0.0, t[relay]])
    assert abs(isi.mean() - 1 / (40.0 * s.n_relay)) < 5 / (40.0 * s.n_relay) / math.sqrt(relay.sum())
    assert relay.sum() < ids.size - 300                 # the network responds
    twin = s.net(poisson=False)
    ores = oe.simulate_net(twin, s.v0, t_max=t_max,
                           extra_inputs=[(float(x), int(j), 1.5) for x, j in zip(t[relay], ids[relay])])
    assert_matches(res, ores)


def test_poisson_into_mixed_network_rate_heap_dense_continuation():
    """Poisson input straight into QIF and LIF neurons of a mixed network (both signs): the
    rate is sane, the seed drives the stream, heap == dense and a continued run == one run."""
    s = Spec(82, 60, kind="mixed", delays="homog", refractory=True, poisson=True)
    net = s.net()
    quiet = sp.simulate(s.net(poisson=False), t_max=0.6, initial_voltages=s.v0)
    a = sp.simulate(net, t_max=0.6, initial_voltages=s.v0, seed_input=4)
    b = sp.simulate(net, t_max=0.6, initial_voltages=s.v0, seed_input=4, engine="dense")
    c = sp.simulate(net, t_max=0.6, initial_voltages=s.v0, seed_input=5)
    assert_same_bits(a, b)
    assert not same_bits(a, c)
    rate = a.mean_rate()
    assert np.isfinite(rate) and 1.0 < rate < 1000.0
    # the excitatory input (first half of the neurons) makes the fluctuation-driven LIF neurons
    # there fire more than without it
    sub = np.flatnonzero(s.lif & (s.drive <= 1.0) & (np.arange(s.n) < s.n // 2))
    assert sub.size >= 2
    n_with = np.isin(np.asarray(a.neurons), sub).sum()
    n_without = np.isin(np.asarray(quiet.neurons), sub).sum()
    assert n_with > n_without + 10, (n_with, n_without)
    first = sp.simulate(net, t_max=0.27, initial_voltages=s.v0, seed_input=4)
    rest = sp.simulate(net, t_max=0.6, state=first.final_state)
    t, ids = concat([first, rest])
    np.testing.assert_array_equal(ids, a.neurons)
    np.testing.assert_array_equal(t, a.times)


# ============================================================================ 8. refractory limit, gradients
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_long_refractory_relative_to_own_tau(engine):
    """The 512-tau limit of a LIF refractory period is per neuron: 1 s at tau = 10 ms (100 tau,
    but 1000 time units of the network's min tau = 1 ms) is fine and exact."""
    tau = np.array([0.001, 0.01])
    drive = np.array([1.5, 2.0])
    ref = np.array([0.0, 1.0])
    net = sp.Network(sp.LIF(), 2, drive, tau, empty(2), refractory=ref)
    assert net.time_unit == 0.001
    res = sp.simulate(net, t_max=2.5, initial_voltages=[0.0, 0.0], engine=engine)
    t1 = np.asarray(res.times)[np.asarray(res.neurons) == 1]
    p1 = lif_time(0.01, 2.0)
    np.testing.assert_allclose(t1, p1 + np.arange(3) * (p1 + 1.0), rtol=RTOL)
    t0 = np.asarray(res.times)[np.asarray(res.neurons) == 0]
    p0 = lif_time(0.001, 1.5)
    assert t0.size == int(2.5 // p0)
    np.testing.assert_allclose(t0, p0 * np.arange(1, t0.size + 1), rtol=RTOL)


@pytest.mark.parametrize("model", ["lif", "mixed"])
def test_refractory_longer_than_512_own_tau_is_refused(model):
    tau = np.array([0.01, 0.001])
    m = sp.LIF() if model == "lif" else sp.Mixed([(sp.QIF(), 1), (sp.LIF(), 1)])
    with pytest.raises(ValueError, match="refractory"):
        net = sp.Network(m, 2, 1.5, tau, empty(2), refractory=np.array([0.1, 0.52]))
        sp.simulate(net, t_max=1.0, initial_voltages=[0.0, 0.0])
    # 0.5 s = 500 tau of neuron 1: accepted
    net = sp.Network(m, 2, 1.5, tau, empty(2), refractory=np.array([0.1, 0.5]))
    res = sp.simulate(net, t_max=1.2, initial_voltages=[0.0, 0.0])
    t1 = np.asarray(res.times)[np.asarray(res.neurons) == 1]
    p = lif_time(0.001, 1.5)
    np.testing.assert_allclose(t1, [p, 2 * p + 0.5, 3 * p + 1.0], rtol=RTOL)


def test_gradients_refuse_mixed_and_tau_array_networks():
    from sparseprop import grad

    s = Spec(91, 20, kind="mixed")
    lif = Spec(92, 20, kind="lif")
    for net, v0 in ((s.net(), s.v0), (lif.net(), lif.v0)):
        with pytest.raises(ValueError):
            sp.simulate(net, t_max=0.05, initial_voltages=v0, tape=True)
        with pytest.raises(ValueError):
            grad.simulate_checkpointed(net, t_max=0.05, checkpoint_spikes=10, initial_voltages=v0)
    # a scalar-tau single-model network still tapes (the refusal is specific)
    plain = sp.Network(sp.LIF(), lif.n, lif.drive, 0.01,
                       sp.SparseConnectivity(lif.indptr, lif.indices, lif.weights))
    assert sp.simulate(plain, t_max=0.05, initial_voltages=lif.v0, tape=True).n_spikes > 0


# ============================================================================ 9. validation
def _bad_mixed(counts, n):
    return sp.Network(sp.Mixed([(sp.LIF(), counts[0]), (sp.QIF(), counts[1])]), n, 1.5, 0.01, empty(n))


@pytest.mark.parametrize("make,match", [
    (lambda: sp.Network(sp.LIF(), 4, 1.5, np.full(3, 0.01), empty(4)), "tau"),
    (lambda: sp.Network(sp.LIF(), 4, 1.5, np.full(5, 0.01), empty(4)), "tau"),
    (lambda: sp.Network(sp.LIF(), 4, 1.5, np.full((4, 1), 0.01), empty(4)), "tau"),
    (lambda: sp.Network(sp.LIF(), 4, 1.5, np.full((2, 2), 0.01), empty(4)), "tau"),
    (lambda: sp.Network(sp.LIF(), 4, 1.5, np.array([0.01, 0.0, 0.01, 0.01]), empty(4)), "tau"),
    (lambda: sp.Network(sp.QIF(), 4, 1.5, np.array([0.01, -0.01, 0.01, 0.01]), empty(4)), "tau"),
    (lambda: sp.Network(sp.LIF(), 4, 1.5, 0.0, empty(4)), "tau"),
    (lambda: sp.Network(sp.LIF(), 4, 1.5, -0.01, empty(4)), "tau"),
    (lambda: sp.Network(sp.LIF(), 4, 1.5, np.array([0.01, np.nan, 0.01, 0.01]), empty(4)), "tau"),
    (lambda: sp.Network(sp.LIF(), 4, 1.5, np.array([0.01, np.inf, 0.01, 0.01]), empty(4)), "tau"),
    (lambda: sp.Network(sp.LIF(), 4, 1.5, float("nan"), empty(4)), "tau"),
    (lambda: sp.Network(sp.LIF(), 4, 1.5, float("inf"), empty(4)), "tau"),
    (lambda: _bad_mixed((2, 3), 4), "parts|model"),
    (lambda: _bad_mixed((2, 1), 4), "parts|model"),
    (lambda: sp.Mixed([]), "parts"),
    (lambda: sp.Mixed([(sp.LIF(), 0), (sp.QIF(), 2)]), "parts|count"),
    (lambda: sp.Mixed([(sp.LIF(), -1), (sp.QIF(), 2)]), "parts|count"),
    # excitable QIF (drive <= 0) is supported down to 2 sqrt(-I) tau_min/tau <= 32
    (lambda: sp.Network(sp.Mixed([(sp.LIF(), 2), (sp.QIF(), 2)]), 4, [1.5, 0.5, 1.0, -300.0], 0.01, empty(4)),
     "drive: QIF neuron 3"),
    (lambda: sp.Network(sp.QIF(), 2, [1.0, -1e4], np.array([0.01, 0.02]), empty(2)), "drive: QIF neuron 1"),
    (lambda: sp.Mixed([(sp.TableNeuron("eif_seed_interp"), 2), (sp.LIF(), 2)]), "model|parts|table"),
    (lambda: sp.Mixed([("eif", 2), ("lif", 2)]), "model|parts|table|eif"),
    (lambda: sp.Network(sp.TableNeuron("eif_seed_interp"), 3, 0.1, np.array([0.01, 0.02, 0.01]), empty(3)),
     "tau"),
    (lambda: sp.NetworkBuilder(sp.LIF(), tau=0.01).population("A", 3, tau=np.full(2, 0.01)), "tau"),
    (lambda: sp.NetworkBuilder(sp.LIF(), tau=0.01).population("A", 3, tau=-0.01), "tau"),
    (lambda: sp.NetworkBuilder(sp.LIF(), tau=0.01).population("A", 3, tau=np.array([0.01, np.nan, 0.01])),
     "tau"),
])
def test_bad_parameters_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_good_edge_parameters_are_accepted():
    """The positive counterparts of the refusals: LIF parts may be subthreshold or negative,
    one-part Mixed, a tau list, names in Mixed."""
    net = sp.Network(sp.Mixed([(sp.LIF(), 2), (sp.QIF(), 2)]), 4, [-0.5, 0.5, 1e-3, 1.0], [0.01] * 4, empty(4))
    assert net.model.name == "mixed"
    one = sp.Network(sp.Mixed([("qif", 3)]), 3, 1.0, 0.01, empty(3))
    assert per_neuron_models(one) == ["qif"] * 3          # (may be stored as the plain QIF model)
    res = sp.simulate(one, t_max=0.1, initial_voltages=[0.0, 1.0, -1.0])
    t = np.asarray(res.times)[np.asarray(res.neurons) == 0]
    np.testing.assert_allclose(t, 0.005 * math.pi + np.arange(t.size) * 0.01 * math.pi, rtol=RTOL)


# ============================================================================ 9b. excitable QIF (drive <= 0)
def _excitable_spec(seed):
    s = Spec(seed, 40, kind="mixed", delays="few", refractory=True, inputs="delayed", w_exc=0.3)
    rng = np.random.default_rng(seed)
    ex = np.flatnonzero(~s.lif)[::2]
    s.drive[ex] = -rng.uniform(0, 0.04, ex.size)
    s.drive[ex[0]] = 0.0
    s.v0[ex] = rng.uniform(-0.5, 0.1, ex.size)
    return s, ex


@pytest.mark.parametrize("seed", [200, 201, 202])
def test_excitable_qif_in_mixed_network_vs_oracle(seed):
    """The contract (item 5) refuses QIF drive <= 0; an implementation that accepts it (QIF
    neurons resting at -sqrt(-I), firing only when lifted past +sqrt(-I)) must be exact."""
    s, ex = _excitable_spec(seed)
    net = s.net()
    ores = oe.simulate_net(net, s.v0, t_max=0.5)
    assert np.isin(ores.neurons, ex).sum() > 10
    for engine in nets.ENGINES:
        res = sp.simulate(net, t_max=0.5, initial_voltages=s.v0, engine=engine, record=sp.Record(max_spikes=20000))
        assert_matches(res, ores)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_excitable_qif_voltages_and_continuation(engine):
    s, ex = _excitable_spec(203)
    net = s.net()
    st = np.sort(np.random.default_rng(5).uniform(0.0, 0.4, 300))
    res = sp.simulate(net, t_max=0.4, initial_voltages=s.v0, engine=engine,
                      record=sp.Record(voltages=ex, sample_times=st))
    ores = oe.simulate_net(net, s.v0, t_max=0.4, sample_times=st, sample_ids=ex)
    assert_matches(res, ores)
    assert np.isin(ores.neurons, ex).sum() > 5
    busy = ores.sample_refractory
    assert np.all(res.voltages[busy] == -np.inf)
    # compare in the bounded angle atan(V): I <= 0 has no sqrt(I) scale
    np.testing.assert_allclose(np.arctan(res.voltages[~busy]), np.arctan(ores.voltages[~busy]), rtol=0, atol=1e-11)
    a = sp.simulate(net, t_max=0.17, initial_voltages=s.v0, engine=engine)
    b = sp.simulate(net, t_max=0.4, state=a.final_state, engine=engine)
    t, ids = concat([a, b])
    np.testing.assert_array_equal(ids, res.neurons)
    np.testing.assert_array_equal(t, res.times)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_excitable_qif_with_zero_drive_does_not_refire_after_refractoriness(engine):
    """I = 0: after a spike the neuron flows from -inf towards 0 (V = -tau/t) and never fires
    again without input; found re-firing at the end of its refractory period."""
    tau, ref, v0 = 0.015113795995538203, 0.000595539133527766, 0.12649808898514078
    net = sp.Network(sp.Mixed([(sp.LIF(), 1), (sp.QIF(), 1)]), 2, [1.5, 0.0], np.array([0.005, tau]), empty(2),
                     refractory=[0.0, ref])
    res = sp.simulate(net, t_max=0.2, initial_voltages=[0.0, v0], engine=engine, record=sp.Record(max_spikes=1000))
    t1 = np.asarray(res.times)[np.asarray(res.neurons) == 1]
    np.testing.assert_allclose(t1, [tau / v0], rtol=RTOL)


# ============================================================================ 10. save / load, export
def test_result_save_load_round_trip_and_continue(tmp_path):
    s = Spec(101, 40, kind="mixed", delays="many", refractory=True, inputs="delayed", poisson=True)
    net = s.net()
    st = np.linspace(0.0, 0.3, 50)
    full = sp.simulate(net, t_max=0.7, initial_voltages=s.v0, seed_input=8)
    first = sp.simulate(net, t_max=0.3, initial_voltages=s.v0, seed_input=8,
                        record=sp.Record(voltages=[0, 20, 39], sample_times=st))
    path = tmp_path / "mixed_result.npz"
    first.save(str(path))
    back = sp.load_result(str(path))
    assert_same_bits(first, back)
    np.testing.assert_array_equal(back.voltages, first.voltages)
    np.testing.assert_array_equal(back.sample_times, first.sample_times)
    nets.assert_same_state(first.final_state, back.final_state)
    rest = sp.simulate(net, t_max=0.7, state=back.final_state)
    t, ids = concat([first, rest])
    np.testing.assert_array_equal(ids, full.neurons)
    np.testing.assert_array_equal(t, full.times)


def test_export_load_network_round_trip(tmp_path):
    s = Spec(102, 40, kind="mixed", delays="few", refractory=True, inputs="delayed", poisson=True)
    net = s.net()
    path = sp.export_network(net, tmp_path / "mixed_net")
    back = sp.load_network(path)
    assert back.fingerprint() == net.fingerprint()
    assert back.model.name == "mixed"
    assert [(m, a, z) for m, a, z in back.model.parts] == [(m, a, z) for m, a, z in net.model.parts]
    assert [m.v_reset for m, _, _ in back.model.parts if m.name == "lif"] == [0.0, -0.2]
    np.testing.assert_array_equal(back.tau, net.tau)
    assert back.time_unit == net.time_unit
    np.testing.assert_array_equal(back.drive, net.drive)
    np.testing.assert_array_equal(back.refractory, net.refractory)
    x = sp.simulate(net, t_max=0.4, initial_voltages=s.v0, seed_input=3)
    y = sp.simulate(back, t_max=0.4, initial_voltages=s.v0, seed_input=3)
    assert x.n_spikes > 300
    assert_same_bits(x, y)
    # a continuation state of the original continues on the loaded network
    z = sp.simulate(back, t_max=0.6, state=x.final_state)
    full = sp.simulate(net, t_max=0.6, initial_voltages=s.v0, seed_input=3)
    t, ids = concat([x, z])
    np.testing.assert_array_equal(ids, full.neurons)
    np.testing.assert_array_equal(t, full.times)
    # the same with a one-model network and a tau array
    lif = Spec(103, 20, kind="lif", delays="homog")
    lnet = lif.net()
    back = sp.load_network(sp.export_network(lnet, tmp_path / "lif_tau.npz"))
    assert back.fingerprint() == lnet.fingerprint() and back.model == lnet.model
    np.testing.assert_array_equal(back.tau, lnet.tau)
