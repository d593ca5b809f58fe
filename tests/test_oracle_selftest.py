"""Self-test of the brute-force oracle (tests/oracle.py) against numerical ODE integration.

Deliberately does NOT import sparseprop: the oracle must be trustworthy on its own.
The reference integrates the ODEs with scipy.integrate.solve_ivp (DOP853, rtol = atol = 1e-12)
and locates threshold crossings with event functions; pulses are applied by hand between
integrations (LIF cascades re-implemented by hand). QIF is integrated in the canonical theta variable (V = tan(theta/2),
dtheta/dt = (1 - cos theta) + I (1 + cos theta)), which is a different coordinate from the
one the oracle uses, so the two are independent.
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import oracle


class FakeNet:
    """Minimal network description with the attributes the oracle reads."""

    def __init__(self, model, drive, tau, W, v_reset=0.0):
        # W[post, pre]
        self.n = W.shape[0]
        self.drive = drive
        self.tau = tau
        self.model = SimpleNamespace(name=model, v_reset=v_reset)
        self._W = np.asarray(W, dtype=float)

    def targets(self, j):
        idx = np.flatnonzero(self._W[:, j])
        return idx.astype(np.int64), self._W[idx, j].copy()


def _random_W(rng, n, density, wlo, whi):
    W = rng.uniform(wlo, whi, size=(n, n)) * (rng.random((n, n)) < density)
    np.fill_diagonal(W, 0.0)
    return W


# ---------------------------------------------------------------- ODE reference simulators
def _ode_lif(net, v0, n_spikes, v_reset=0.0):
    n, tau = net.n, net.tau
    drive = np.broadcast_to(np.asarray(net.drive, float), (n,)).copy()
    rhs = lambda t, y: (-y + drive) / tau  # noqa: E731
    events = []
    for k in range(n):
        ev = lambda t, y, k=k: y[k] - 1.0  # noqa: E731
        ev.terminal, ev.direction = True, 1.0
        events.append(ev)
    t, y = 0.0, np.array(v0, float)
    times, neurons = [], []
    while len(times) < n_spikes:
        sol = solve_ivp(rhs, (t, t + 50 * tau), y, method="DOP853", rtol=1e-12, atol=1e-12,
                        events=events)
        assert sol.status == 1, "no spike found"
        fired = [k for k in range(n) if len(sol.t_events[k])]
        assert len(fired) == 1
        j = fired[0]
        t = float(sol.t_events[j][0])
        y = sol.y_events[j][0].copy()
        # cascade at this instant: pending neurons fire in increasing index; a pending neuron
        # keeps taking inputs (summed) and leaves the cascade if they take it back below
        # threshold; nobody may be re-driven past threshold
        pending, done = {j}, set()
        while pending:
            j = min(pending)
            pending.discard(j)
            done.add(j)
            times.append(t)
            neurons.append(j)
            y[j] = v_reset
            idx, w = net.targets(j)
            for i, wi in zip(idx, w):
                y[i] += wi
                if y[i] >= 1.0:
                    assert i not in done
                    pending.add(i)
                else:
                    pending.discard(i)
    return np.array(times), np.array(neurons)


def _ode_qif(net, v0, n_spikes):
    n, tau = net.n, net.tau
    drive = np.broadcast_to(np.asarray(net.drive, float), (n,)).copy()
    # canonical theta neuron for dV/dt = V^2 + I, V = tan(theta/2)
    rhs = lambda t, th: ((1.0 - np.cos(th)) + drive * (1.0 + np.cos(th))) / tau  # noqa: E731
    events = []
    for k in range(n):
        ev = lambda t, th, k=k: th[k] - math.pi  # noqa: E731
        ev.terminal, ev.direction = True, 1.0
        events.append(ev)
    t, th = 0.0, 2.0 * np.arctan(np.asarray(v0, float))
    times, neurons = [], []
    while len(times) < n_spikes:
        sol = solve_ivp(rhs, (t, t + 50 * tau), th, method="DOP853", rtol=1e-12, atol=1e-12,
                        events=events)
        assert sol.status == 1, "no spike found"
        fired = [k for k in range(n) if len(sol.t_events[k])]
        assert len(fired) == 1
        j = fired[0]
        t = float(sol.t_events[j][0])
        th = sol.y_events[j][0].copy()
        times.append(t)
        neurons.append(j)
        th[j] = -math.pi
        idx, w = net.targets(j)
        th[idx] = 2.0 * np.arctan(np.tan(th[idx] / 2.0) + w)
    return np.array(times), np.array(neurons)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_oracle_lif_vs_solve_ivp(seed):
    rng = np.random.default_rng(seed)
    n = 5
    W = _random_W(rng, n, 0.6, -0.3, 0.08)
    drive = rng.uniform(1.2, 2.5, n)
    net = FakeNet("lif", drive, 0.02, W)
    v0 = rng.uniform(0.0, 0.9, n)
    t_ref, n_ref = _ode_lif(net, v0, 25)
    res = oracle.simulate_net(net, v0, spikes=len(t_ref))
    np.testing.assert_array_equal(res.neurons, n_ref)
    np.testing.assert_allclose(res.times, t_ref, rtol=0, atol=1e-10)


def test_oracle_lif_vreset_vs_solve_ivp():
    rng = np.random.default_rng(11)
    n = 4
    W = _random_W(rng, n, 0.7, -0.2, 0.05)
    drive = np.array([1.5, 2.0, 1.3, 3.0])
    net = FakeNet("lif", drive, 0.01, W, v_reset=-0.4)
    v0 = rng.uniform(-0.4, 0.9, n)
    t_ref, n_ref = _ode_lif(net, v0, 20, v_reset=-0.4)
    res = oracle.simulate_net(net, v0, spikes=len(t_ref))
    np.testing.assert_array_equal(res.neurons, n_ref)
    np.testing.assert_allclose(res.times, t_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", [5, 6])
def test_oracle_qif_vs_solve_ivp(seed):
    rng = np.random.default_rng(seed)
    n = 4
    W = _random_W(rng, n, 0.6, -0.5, 0.3)
    drive = rng.uniform(0.5, 2.0, n)
    net = FakeNet("qif", drive, 0.02, W)
    v0 = rng.uniform(-3.0, 3.0, n)
    t_ref, n_ref = _ode_qif(net, v0, 20)
    res = oracle.simulate_net(net, v0, spikes=20)
    np.testing.assert_array_equal(res.neurons, n_ref)
    np.testing.assert_allclose(res.times, t_ref, rtol=0, atol=1e-10)


def test_oracle_isolated_periods():
    tau = 0.01
    drive = np.array([1.1, 1.5, 4.0])
    net = FakeNet("lif", drive, tau, np.zeros((3, 3)))
    v0 = np.zeros(3)
    res = oracle.simulate_net(net, v0, spikes=300)
    T = tau * np.log(drive / (drive - 1.0))
    for i in range(3):
        ti = res.times[res.neurons == i]
        k = np.arange(1, len(ti) + 1)
        np.testing.assert_allclose(ti, k * T[i], rtol=1e-13)
    qnet = FakeNet("qif", drive, tau, np.zeros((3, 3)))
    res = oracle.simulate_net(qnet, np.full(3, -np.inf), spikes=300)
    T = tau * np.pi / np.sqrt(drive)
    for i in range(3):
        ti = res.times[res.neurons == i]
        k = np.arange(1, len(ti) + 1)
        np.testing.assert_allclose(ti, k * T[i], rtol=1e-13)


def test_oracle_phase_maps():
    I = np.array([1.2, 2.0, 5.0])
    np.testing.assert_allclose(oracle.lif_voltage_from_phase(0.0, I), 0.0, atol=1e-15)
    np.testing.assert_allclose(oracle.lif_voltage_from_phase(1.0, I), 1.0, rtol=1e-14)
    np.testing.assert_allclose(oracle.lif_voltage_from_phase(0.0, I, -0.5), -0.5, rtol=1e-15)
    np.testing.assert_allclose(oracle.lif_voltage_from_phase(1.0, I, -0.5), 1.0, rtol=1e-14)
    # half-period point of the free flow
    T = np.log(I / (I - 1.0))
    np.testing.assert_allclose(oracle.lif_voltage_from_phase(0.5, I), I * (1 - np.exp(-T / 2)),
                               rtol=1e-14)
    np.testing.assert_allclose(oracle.qif_voltage_from_phase(0.0, I), 0.0, atol=0)
    np.testing.assert_allclose(oracle.qif_voltage_from_phase(np.pi / 2, I), np.sqrt(I), rtol=1e-14)


def test_oracle_cascade_order_and_same_instant_sum():
    # 0 fires first and drives 3 then 1 past threshold; 1 (lower index) fires first although
    # lifted later; 1 excites 2 and inhibits 3 (summed: 3 falls below threshold and does not
    # fire); 2 fires; 0 fires again tau ln 2 later.
    W = np.zeros((4, 4))
    tgt = {0: ([3, 1], [0.6, 0.6]), 1: ([3, 2], [-5.0, 0.6]), 2: ([3], [-5.0]), 3: ([], [])}
    net = FakeNet("lif", np.array([2.0, 0.5, 0.5, 0.5]), 0.01, W)
    net.targets = lambda j: (np.array(tgt[j][0], np.int64), np.array(tgt[j][1], float))
    v0 = np.array([0.99, 0.5, 0.5, 0.5])
    res = oracle.simulate_net(net, v0, spikes=4)
    np.testing.assert_array_equal(res.neurons, [0, 1, 2, 0])
    assert np.all(res.times[:3] == res.times[0])
    np.testing.assert_allclose(res.times[0], 0.01 * math.log(1.01), rtol=1e-14)
    np.testing.assert_allclose(res.times[3], 0.01 * math.log(1.01) + 0.01 * math.log(2.0), rtol=1e-14)


def test_oracle_ambiguous_refire_detected():
    # 0 and 1 excite each other with w = 2: after 0 fires, 1 fires, and 0 (already fired at
    # this instant) is re-driven past threshold: the contract does not define this.
    W = np.array([[0.0, 2.0], [2.0, 0.0]])
    net = FakeNet("lif", np.array([2.0, 0.5]), 0.01, W)
    with pytest.raises(oracle.AmbiguousCascade):
        oracle.simulate_net(net, np.array([0.5, 0.0]), spikes=5)


def test_oracle_t_max_advances_voltages():
    net = FakeNet("lif", np.array([2.0, 0.5]), 0.01, np.zeros((2, 2)))
    res = oracle.simulate_net(net, np.array([0.0, 0.0]), t_max=0.005)
    assert res.times.size == 0 and res.t_end == 0.005
    np.testing.assert_allclose(res.final_voltages, np.array([2.0, 0.5]) * (1 - np.exp(-0.5)), rtol=1e-14)


def test_oracle_lif_mixed_subthreshold_vs_solve_ivp():
    # neurons 2..4 have I < 1 and fire only when excitation lifts them across threshold,
    # i.e. always inside a cascade at the instant of an input
    rng = np.random.default_rng(21)
    n = 5
    W = np.zeros((n, n))
    W[2, 0] = W[3, 1] = W[4, 2] = 0.35
    W[2, 1] = W[3, 0] = 0.3
    W[0, 3] = W[1, 4] = -0.2
    W[4, 3] = 0.25
    drive = np.array([2.0, 1.6, 0.8, 0.9, 0.7])
    net = FakeNet("lif", drive, 0.01, W)
    v0 = rng.uniform(0.0, 0.9, n)
    t_ref, n_ref = _ode_lif(net, v0, 40)
    res = oracle.simulate_net(net, v0, spikes=len(t_ref))
    np.testing.assert_array_equal(res.neurons, n_ref)
    np.testing.assert_allclose(res.times, t_ref, rtol=0, atol=1e-10)
    assert set(n_ref.tolist()) >= {2, 3, 4}
    assert np.any(np.diff(t_ref) == 0.0)  # cascades happened
