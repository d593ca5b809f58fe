"""Single neurons and the model maps against their closed forms.

Closed forms (units of tau, written here independently of the package):
  LIF  dV/dt = -V + I, threshold 1, reset v_r:  period T = ln((I - v_r)/(I - 1)),
       omega = 1/T, V(phi) = I + (v_r - I) exp(-phi/omega); with v_r = 0 the PTC is
       g(phi, w) = -omega ln(exp(-phi/omega) - w/I)
  QIF  dV/dt = V^2 + I:  period T = pi/sqrt(I), omega = 2 sqrt(I), V(theta) = sqrt(I) tan(theta/2),
       g(theta, w) = 2 atan(tan(theta/2) + w/sqrt(I))
"""
import math

import numpy as np
import pytest

import sparseprop as sp  # noqa: E402  (a broken build must fail, not skip)

import nets  # noqa: E402
import oracle  # noqa: E402

TAU = 0.01


def lif_T(I, vr=0.0):
    return math.log((I - vr) / (I - 1.0))


def qif_T(I):
    return math.pi / math.sqrt(I)


def _check_periodic(times, t_first, period, n_expected):
    times = np.asarray(times)
    assert times.size == n_expected
    k = np.arange(n_expected)
    expected = t_first + k * period
    rel = np.abs(times - expected) / expected
    assert rel.max() <= 1e-12, f"max relative error {rel.max():.3e} at spike {int(rel.argmax())}"


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("I,vr", [(1.05, 0.0), (1.5, 0.0), (3.0, 0.0), (20.0, 0.0), (2.0, -0.5),
                                  (1.2, 0.3)])
def test_lif_isolated_period(I, vr, engine):
    net = nets.isolated("lif", 1, I, tau=TAU, v_reset=vr)
    T = TAU * lif_T(I, vr)
    res = sp.simulate(net, spikes=1000, initial_phases=np.array([0.0]), engine=engine)
    assert np.all(np.asarray(res.neurons) == 0)
    _check_periodic(res.times, T, T, 1000)


@pytest.mark.parametrize("engine", nets.ENGINES)
@pytest.mark.parametrize("I", [0.01, 0.3, 1.0, 4.0, 100.0])
def test_qif_isolated_period(I, engine):
    net = nets.isolated("qif", 1, I, tau=TAU)
    T = TAU * qif_T(I)
    res = sp.simulate(net, spikes=1000, initial_phases=np.array([-math.pi]), engine=engine)
    assert np.all(np.asarray(res.neurons) == 0)
    _check_periodic(res.times, T, T, 1000)


@pytest.mark.parametrize("name", ["lif", "qif"])
@pytest.mark.parametrize("engine", nets.ENGINES)
def test_uncoupled_population_distinct_drives(name, engine):
    # 10 uncoupled neurons with distinct drives and random phases: neuron i's k-th spike is at
    # (phi_th - phi_i)/omega_i * tau + (k-1) T_i tau
    rng = np.random.default_rng(42)
    n = 10
    if name == "lif":
        drive = rng.uniform(1.1, 4.0, n)
        T = np.log(drive / (drive - 1.0))
        phi = rng.uniform(0.0, 1.0, n)
        first = (1.0 - phi) * T
    else:
        drive = rng.uniform(0.2, 3.0, n)
        T = math.pi / np.sqrt(drive)
        phi = rng.uniform(-math.pi, math.pi, n)
        first = (math.pi - phi) / (2.0 * np.sqrt(drive))
    net = nets.isolated(name, n, drive, tau=TAU)
    res = sp.simulate(net, spikes=3000, initial_phases=phi, engine=engine)
    times, neurons = np.asarray(res.times), np.asarray(res.neurons)
    assert np.all(np.diff(times) >= 0)
    for i in range(n):
        ti = times[neurons == i]
        assert ti.size > 100
        k = np.arange(ti.size)
        expected = TAU * first[i] + k * (TAU * T[i])
        rel = np.abs(ti - expected) / expected
        assert rel.max() <= 1e-12, (i, rel.max())


def test_zero_weight_procedural_network_is_uncoupled():
    rng = np.random.default_rng(3)
    n = 8
    drive = rng.uniform(1.2, 2.5, n)
    net = sp.Network(sp.LIF(), n, drive, tau=TAU, connectivity=sp.FixedOutDegree(3, 0.0, seed=5))
    phi = rng.uniform(0.0, 1.0, n)
    res = sp.simulate(net, spikes=2000, initial_phases=phi)
    T = np.log(drive / (drive - 1.0))
    for i in range(n):
        ti = np.asarray(res.times)[np.asarray(res.neurons) == i]
        expected = TAU * (1.0 - phi[i]) * T[i] + np.arange(ti.size) * TAU * T[i]
        np.testing.assert_allclose(ti, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("engine", nets.ENGINES)
def test_initial_voltage_below_reset_and_qif_at_minus_inf(engine):
    # LIF from V0 < v_reset: first spike after tau ln((I - V0)/(I - 1)), then periodic
    I, v0 = 1.8, -0.7
    res = sp.simulate(nets.isolated("lif", 1, I, tau=TAU), spikes=50,
                      initial_voltages=np.array([v0]), engine=engine)
    t1 = TAU * math.log((I - v0) / (I - 1.0))
    _check_periodic(res.times, t1, TAU * lif_T(I), 50)
    # QIF from -inf (the reset) and from a finite voltage
    I = 0.7
    res = sp.simulate(nets.isolated("qif", 2, I, tau=TAU), spikes=60,
                      initial_voltages=np.array([-np.inf, 3.0]), engine=engine)
    times, neurons = np.asarray(res.times), np.asarray(res.neurons)
    T = TAU * qif_T(I)
    _check_periodic(times[neurons == 0], T, T, 30)
    t1 = TAU * (math.pi / 2 - math.atan(3.0 / math.sqrt(I))) / math.sqrt(I)
    _check_periodic(times[neurons == 1], t1, T, 30)


# ------------------------------------------------------------------------- model maps
def test_model_constants():
    lif, qif = sp.LIF(), sp.QIF()
    assert lif.name == "lif" and qif.name == "qif"
    assert lif.phase_threshold == 1.0 and lif.phase_reset == 0.0
    assert qif.phase_threshold == math.pi and qif.phase_reset == -math.pi
    I = np.array([1.01, 1.5, 2.0, 7.0, 1e3])
    np.testing.assert_allclose(lif.phase_velocity(I), 1.0 / np.log(I / (I - 1.0)), rtol=1e-14)
    np.testing.assert_allclose(lif.period(I), np.log(I / (I - 1.0)), rtol=1e-14)
    np.testing.assert_allclose(qif.phase_velocity(I), 2.0 * np.sqrt(I), rtol=1e-15)
    np.testing.assert_allclose(qif.period(I), math.pi / np.sqrt(I), rtol=1e-15)
    lr = sp.LIF(v_reset=-0.5)
    np.testing.assert_allclose(lr.period(I), np.log((I + 0.5) / (I - 1.0)), rtol=1e-14)
    # scalar input works too
    assert abs(float(lif.phase_velocity(2.0)) - 1.0 / math.log(2.0)) < 1e-15


@pytest.mark.parametrize("vr", [0.0, -0.5, 0.4])
def test_lif_voltage_phase_maps(vr):
    m = sp.LIF(v_reset=vr)
    rng = np.random.default_rng(1)
    I = rng.uniform(1.05, 5.0, 500)
    phi = rng.uniform(0.0, 1.0, 500)
    v = m.voltage_from_phase(phi, I)
    np.testing.assert_allclose(v, oracle.lif_voltage_from_phase(phi, I, vr), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(m.phase_from_voltage(v, I), phi, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(m.voltage_from_phase(np.zeros(3), I[:3]), vr, atol=1e-15)
    np.testing.assert_allclose(m.voltage_from_phase(np.ones(3), I[:3]), 1.0, rtol=1e-13)
    # voltage -> phase -> voltage, including voltages below reset (negative phase)
    vv = rng.uniform(-1.0, 0.999, 500)
    np.testing.assert_allclose(m.voltage_from_phase(m.phase_from_voltage(vv, I), I), vv,
                               rtol=1e-12, atol=1e-12)


def test_qif_voltage_phase_maps():
    m = sp.QIF()
    rng = np.random.default_rng(2)
    I = rng.uniform(0.05, 10.0, 500)
    th = rng.uniform(-3.0, 3.0, 500)
    v = m.voltage_from_phase(th, I)
    np.testing.assert_allclose(v, oracle.qif_voltage_from_phase(th, I), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(m.phase_from_voltage(v, I), th, rtol=1e-13, atol=1e-13)
    vv = rng.normal(scale=20.0, size=500)
    np.testing.assert_allclose(m.voltage_from_phase(m.phase_from_voltage(vv, I), I), vv,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("vr", [0.0, -0.3])
def test_lif_ptc_identity(vr):
    m = sp.LIF(v_reset=vr)
    rng = np.random.default_rng(5)
    n = 2000
    I = rng.uniform(1.05, 4.0, n)
    phi = rng.uniform(0.0, 1.0, n)
    v = oracle.lif_voltage_from_phase(phi, I, vr)
    # both signs; keep V + w below threshold
    w = np.minimum(rng.uniform(-1.0, 1.0, n), (1.0 - v) * 0.999)
    assert (w < 0).sum() > 500 and (w > 0).sum() > 500
    g = m.ptc(phi, w, I)
    via_v = m.phase_from_voltage(m.voltage_from_phase(phi, I) + w, I)
    np.testing.assert_allclose(g, via_v, rtol=1e-12, atol=1e-12)
    # independent: phase of V + w from the closed form
    T = np.log((I - vr) / (I - 1.0))  # period; omega = 1/T, V(phi) = I + (vr - I) exp(-phi T)
    g_ref = -np.log((I - (v + w)) / (I - vr)) / T
    np.testing.assert_allclose(g, g_ref, rtol=1e-11, atol=1e-12)


def test_lif_ptc_design_closed_form():
    # DESIGN.md: g(phi, w) = -omega ln(exp(-phi/omega) - w/I)   (v_reset = 0)
    m = sp.LIF()
    rng = np.random.default_rng(6)
    n = 2000
    I = rng.uniform(1.05, 4.0, n)
    omega = 1.0 / np.log(I / (I - 1.0))
    phi = rng.uniform(0.0, 1.0, n)
    v = I * (1.0 - np.exp(-phi / omega))
    w = np.minimum(rng.uniform(-0.8, 0.8, n), (1.0 - v) * 0.999)
    g_ref = -omega * np.log(np.exp(-phi / omega) - w / I)
    np.testing.assert_allclose(m.ptc(phi, w, I), g_ref, rtol=1e-12, atol=1e-12)
    # w = 0 is the identity
    np.testing.assert_allclose(m.ptc(phi, np.zeros(n), I), phi, rtol=1e-14, atol=1e-15)
    # strictly increasing in w
    assert np.all(m.ptc(phi, w - 0.01, I) < m.ptc(phi, w, I))


def test_qif_ptc_identity():
    m = sp.QIF()
    rng = np.random.default_rng(7)
    n = 2000
    I = rng.uniform(0.05, 5.0, n)
    th = rng.uniform(-3.0, 3.0, n)
    w = rng.uniform(-3.0, 3.0, n)
    g = m.ptc(th, w, I)
    via_v = m.phase_from_voltage(m.voltage_from_phase(th, I) + w, I)
    np.testing.assert_allclose(g, via_v, rtol=1e-12, atol=1e-12)
    g_ref = 2.0 * np.arctan(np.tan(th / 2.0) + w / np.sqrt(I))
    np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-12)
    assert np.all((g > -math.pi) & (g < math.pi))


def test_ptc_scalar_arguments():
    for m, phi, w, I in [(sp.LIF(), 0.3, -0.2, 1.7), (sp.QIF(), 0.3, 0.7, 1.7)]:
        g = float(m.ptc(phi, w, I))
        assert g == pytest.approx(float(m.phase_from_voltage(m.voltage_from_phase(phi, I) + w, I)),
                                  rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("drive", [0.3, 2.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_qif_phase_inputs_of_every_size_and_sign_vs_oracle(drive, seed):
    """A QIF network with a shared drive (no delays or inputs) runs in the phase form, where an
    input is a shear of the half-phase direction and the key a diamond angle: synapses of both
    signs from 1e-3 to 30 (beyond a half turn of phase), delivered at spike instants (every
    position of the clock in its quadrant) to neurons at every phase, against the voltage oracle
    (300 spikes: QIF networks are chaotic)."""
    rng = np.random.default_rng(seed)
    n, k = 60, 3
    rows = [[(int(i), float(rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(-3.0, 1.5)))
             for i in rng.choice(np.delete(np.arange(n), j), k, replace=False)] for j in range(n)]
    net = sp.Network(sp.QIF(), n, drive, tau=TAU, connectivity=nets.csr(rows))
    assert net.bind().kind == "qif" and np.ndim(net.bind().drive) == 0   # the phase form
    v0 = nets.initial_voltages(rng, "qif", drive, n)
    res, ores = nets.run_pair(net, v0, spikes=300)
    nets.assert_same_spikes(res, ores)


@pytest.mark.parametrize("seed", [1, 2])
def test_qif_phase_spikes_do_not_depend_on_how_targets_pair(seed):
    """The phase form computes two consecutive targets' inputs in one 2-wide vector and a lone
    target with both lanes equal. Reversed rows of odd length pair the targets differently (and
    leave another one alone) but deliver the same inputs: the spikes must agree to the bit."""
    rng = np.random.default_rng(seed)
    n, k, drive = 40, 5, 1.0
    rows = [[(int(i), float(rng.uniform(-0.5, 0.2)))
             for i in rng.choice(np.delete(np.arange(n), j), k, replace=False)] for j in range(n)]
    v0 = nets.initial_voltages(rng, "qif", drive, n)
    runs = [sp.simulate(sp.Network(sp.QIF(), n, drive, tau=TAU, connectivity=nets.csr(r)), spikes=3000,
                        initial_voltages=v0)
            for r in (rows, [row[::-1] for row in rows])]
    bound = sp.Network(sp.QIF(), n, drive, tau=TAU, connectivity=nets.csr(rows)).bind()
    assert bound.kind == "qif" and np.ndim(bound.drive) == 0                   # the phase form
    assert len(runs[0].times) == 3000
    assert nets.same_bits(runs[0], runs[1])
