"""Result objects: fields, rates and ISI CV against hand computation, save/load, raster plot."""
import math

import numpy as np
import pytest

import sparseprop as sp  # noqa: E402  (a broken build must fail, not skip)

import nets  # noqa: E402

TAU = 0.01


def _known_train():
    """Uncoupled LIF neurons with closed-form spike times, stopped at t_max."""
    drive = np.array([1.5, 2.0, 3.0, 1.2, 1.0001])  # the last fires at most once or twice
    phi = np.array([0.1, 0.5, 0.9, 0.0, 0.0])
    T = TAU * np.log(drive / (drive - 1.0))
    first = (1.0 - phi) * T
    t_max = 0.2531
    net = nets.isolated("lif", 5, drive, tau=TAU)
    res = sp.simulate(net, t_max=t_max, initial_phases=phi)
    expected = [first[i] + T[i] * np.arange(int(math.floor((t_max - first[i]) / T[i])) + 1)
                for i in range(5)]
    return res, drive, phi, T, t_max, expected


def test_fields_and_known_spike_train():
    res, drive, phi, T, t_max, expected = _known_train()
    times, neurons = np.asarray(res.times), np.asarray(res.neurons)
    assert times.dtype == np.float64 and neurons.dtype == np.int32
    assert np.all(np.diff(times) >= 0)
    assert res.n_spikes == times.size == neurons.size
    assert res.n == 5
    assert res.t_start == 0.0
    assert res.t_end == pytest.approx(t_max, abs=1e-15)
    assert res.interrupted is False or res.interrupted == False  # noqa: E712
    assert res.wall_s >= 0.0
    for i in range(5):
        np.testing.assert_allclose(times[neurons == i], expected[i], rtol=1e-12)


def test_rates_and_cv_known_train():
    res, drive, phi, T, t_max, expected = _known_train()
    counts = np.array([e.size for e in expected])
    np.testing.assert_allclose(res.rates(), counts / t_max, rtol=1e-12)
    assert res.mean_rate() == pytest.approx(counts.sum() / (5 * t_max), rel=1e-12)
    cv = np.asarray(res.isi_cv())
    assert cv.shape == (5,)
    assert counts[4] < 3 and np.isnan(cv[4])  # fewer than 3 spikes -> nan
    # periodic trains: the ISIs agree to ~1e-16 relative, so the CV is 0 up to ~1e-15
    np.testing.assert_allclose(cv[:4], 0.0, atol=1e-12)
    assert res.cv() == pytest.approx(np.nanmean(cv), abs=1e-12)


def _hand_rates_cv(times, neurons, n, t_start, t_end):
    rates = np.bincount(neurons, minlength=n) / (t_end - t_start)
    cv = np.full(n, np.nan)
    for i in range(n):
        ti = times[neurons == i]
        if ti.size >= 3:
            isi = np.diff(ti)
            # sample standard deviation (ddof=1), the package's convention
            cv[i] = isi.std(ddof=1) / isi.mean()
    return rates, cv


def test_rates_and_cv_irregular_network():
    net = sp.balanced_network(n=300, k=30, model="lif", seed_net=4)
    res = sp.simulate(net, t_max=2.0, seed_ic=1)
    times, neurons = np.asarray(res.times), np.asarray(res.neurons)
    rates, cv = _hand_rates_cv(times, neurons, 300, res.t_start, res.t_end)
    np.testing.assert_allclose(res.rates(), rates, rtol=1e-12)
    assert res.mean_rate() == pytest.approx(times.size / (300 * (res.t_end - res.t_start)), rel=1e-12)
    got = np.asarray(res.isi_cv())
    np.testing.assert_array_equal(np.isnan(got), np.isnan(cv))
    np.testing.assert_allclose(got[~np.isnan(cv)], cv[~np.isnan(cv)], rtol=1e-10)
    assert np.nanmax(cv) > 0.1  # an irregular train, not a trivial check
    assert res.cv() == pytest.approx(np.nanmean(cv), rel=1e-10)


def test_rates_of_continued_run_use_its_own_window():
    net = sp.balanced_network(n=300, k=30, model="lif", seed_net=4)
    a = sp.simulate(net, t_max=0.5, seed_ic=1)
    b = sp.simulate(net, t_max=1.5, state=a.final_state)
    assert b.t_start == pytest.approx(0.5, abs=1e-15)
    rates, _ = _hand_rates_cv(np.asarray(b.times), np.asarray(b.neurons), 300, b.t_start, b.t_end)
    np.testing.assert_allclose(b.rates(), rates, rtol=1e-12)


def test_final_voltages_closed_form():
    res, drive, phi, T, t_max, expected = _known_train()
    last = np.array([e[-1] if e.size else -np.inf for e in expected])
    # since the last spike (or from the initial phase), the free LIF flow from 0
    s = np.where(np.isfinite(last), t_max - last, t_max + phi * T)
    v = drive * (1.0 - np.exp(-s / TAU))
    np.testing.assert_allclose(res.final_voltages(), v, rtol=1e-11, atol=1e-12)


def test_save_load_round_trip(tmp_path):
    net = sp.balanced_network(n=200, k=20, model="qif", seed_net=2)
    res = sp.simulate(net, spikes=3000, seed_ic=5)
    path = tmp_path / "run.npz"
    res.save(path)
    with np.load(path, allow_pickle=False) as z:  # no pickle anywhere in the file
        assert np.array_equal(z["times"], np.asarray(res.times))
        assert np.array_equal(z["neurons"], np.asarray(res.neurons))
        for key in z.files:
            z[key]  # every member loads without pickle
    back = sp.load_result(path)
    assert np.array_equal(np.asarray(back.times), np.asarray(res.times))
    assert np.array_equal(np.asarray(back.neurons), np.asarray(res.neurons))
    assert np.asarray(back.times).dtype == np.float64
    assert np.asarray(back.neurons).dtype == np.int32
    assert back.n_spikes == res.n_spikes
    assert back.n == res.n
    assert back.t_start == res.t_start and back.t_end == res.t_end
    np.testing.assert_array_equal(back.rates(), res.rates())
    np.testing.assert_array_equal(back.isi_cv(), res.isi_cv())


def test_save_load_str_path(tmp_path):
    res = sp.simulate(nets.isolated("lif", 3, 2.0), spikes=10, seed_ic=1)
    p = str(tmp_path / "r.npz")
    res.save(p)
    back = sp.load_result(p)
    assert np.array_equal(np.asarray(back.times), np.asarray(res.times))


def test_raster_png(tmp_path):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    net = sp.balanced_network(n=100, k=10, model="lif", seed_net=1)
    res = sp.simulate(net, spikes=500, seed_ic=1)
    path = tmp_path / "raster.png"
    res.plot_raster(path=path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    fig, ax = plt.subplots()
    out = res.plot_raster(ax=ax)
    assert out is not None
    assert len(ax.collections) + len(ax.lines) > 0  # something was drawn on the given axes
    plt.close("all")
