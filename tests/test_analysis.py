"""Results for neuroscientists: per-population statistics, population rate, Fano factor, plots,
Neo export and the version-2 result file.

Oracles: spike trains generated here with NumPy (Poisson, perfectly regular) and counted by hand
(plain loops / np.histogram over explicit edges), the exact Poisson Fano factor (1) and CV (1), the
regular train's (0), and the old (version 1) file layout written byte for byte as before.
"""
import json

import numpy as np
import pytest

import sparseprop as sp  # noqa: E402  (a broken build must fail, not skip)
from sparseprop.results import NetworkState, SimulationResult


# ---------------------------------------------------------------------------------------- helpers

def make_result(times, neurons, n, t_start, t_end, populations=None, metadata=None, **kw):
    """A SimulationResult straight from arrays (sorted by time, as simulate returns them)."""
    times = np.asarray(times, dtype=np.float64)
    neurons = np.asarray(neurons, dtype=np.int32)
    order = np.argsort(times, kind="stable")
    times, neurons = times[order], neurons[order]
    state = NetworkState(np.zeros(n), 0.0, 0, float(t_end), int(times.size), "synthetic")
    meta = {"network": {"model": "lif", "n": n}, "engine": "heap"} if metadata is None else metadata
    return SimulationResult(times, neurons, n, t_start, t_end, times.size, 0.0, False, state, meta,
                            populations=populations, **kw)


def poisson_trains(rng, rates, t0, t1):
    """Independent Poisson trains (homogeneous, rate[i] Hz) on [t0, t1]: (times, neurons)."""
    ts, ids = [], []
    for i, r in enumerate(rates):
        k = rng.poisson(r * (t1 - t0))
        ts.append(np.sort(rng.uniform(t0, t1, k)))
        ids.append(np.full(k, i))
    return np.concatenate(ts), np.concatenate(ids)


def regular_trains(periods, phases, t0, t1):
    ts, ids = [], []
    for i, (T, ph) in enumerate(zip(periods, phases)):
        t = t0 + ph * T + T * np.arange(int(np.floor((t1 - t0 - ph * T) / T)) + 1)
        t = t[t <= t1]
        ts.append(t)
        ids.append(np.full(t.size, i))
    return np.concatenate(ts), np.concatenate(ids)


POPS = {"E": (0, 8), "I": (8, 12)}


@pytest.fixture
def two_pop():
    rng = np.random.default_rng(11)
    rates = np.r_[np.full(8, 5.0), np.full(4, 20.0)]
    rates[3] = 0.0                                   # one silent excitatory neuron
    t, i = poisson_trains(rng, rates, 0.2, 3.2)
    return make_result(t, i, 12, 0.2, 3.2, populations=POPS), t, i


# ------------------------------------------------------------------------ populations and rates

def test_populations_default_and_from_metadata():
    res = make_result([0.1], [0], 5, 0.0, 1.0)
    assert res.populations == {"all": (0, 5)}
    meta = {"network": {"model": "lif", "n": 5, "populations": {"A": [0, 2], "B": [2, 5]}}}
    res = make_result([0.1], [0], 5, 0.0, 1.0, metadata=meta)
    assert res.populations == {"A": (0, 2), "B": (2, 5)}
    with pytest.raises(ValueError, match="populations"):
        make_result([0.1], [0], 5, 0.0, 1.0, populations={"A": (0, 2), "B": (3, 5)})
    with pytest.raises(ValueError, match="unknown population 'X'"):
        make_result([0.1], [0], 5, 0.0, 1.0).rates("X")


def test_population_rate_hand_count(two_pop):
    res, t, i = two_pop
    bin_s = 0.07                                     # 3 s / 0.07 s: 42 full bins + a short one
    for name, (a, b) in [("E", POPS["E"]), ("I", POPS["I"]), (None, (0, 12))]:
        edges, rate = res.population_rate(bin_s, name)
        assert edges[0] == 0.2 and edges[-1] == pytest.approx(3.2, abs=1e-15)
        np.testing.assert_allclose(np.diff(edges)[:-1], bin_s, rtol=1e-12)
        assert edges.size == 44 and 0 < edges[-1] - edges[-2] < bin_s
        sel = t[(i >= a) & (i < b)]
        hand = np.zeros(edges.size - 1)
        for s in sel:                                # plain loop: [left, right), last bin closed
            k = next(k for k in range(edges.size - 1)
                     if edges[k] <= s < edges[k + 1] or (k == edges.size - 2 and s == edges[-1]))
            hand[k] += 1
        np.testing.assert_allclose(rate, hand / ((b - a) * np.diff(edges)), rtol=1e-12)
        # the time integral of the population rate is the spike count per neuron
        assert np.sum(rate * np.diff(edges)) * (b - a) == pytest.approx(sel.size, rel=1e-12)


def test_rates_mean_rate_cv_per_population(two_pop):
    res, t, i = two_pop
    counts = np.bincount(i, minlength=12)
    np.testing.assert_allclose(res.rates(), counts / 3.0, rtol=1e-12)
    np.testing.assert_allclose(res.rates("E"), counts[:8] / 3.0, rtol=1e-12)
    np.testing.assert_allclose(res.rates("I"), counts[8:] / 3.0, rtol=1e-12)
    assert res.mean_rate("E") == pytest.approx(counts[:8].sum() / (8 * 3.0), rel=1e-12)
    assert res.mean_rate("I") == pytest.approx(counts[8:].sum() / (4 * 3.0), rel=1e-12)
    assert res.mean_rate() == pytest.approx(counts.sum() / (12 * 3.0), rel=1e-12)
    cv_all = res.isi_cv()
    np.testing.assert_array_equal(res.isi_cv("I"), cv_all[8:])
    np.testing.assert_array_equal(res.isi_cv("E"), cv_all[:8])
    assert np.isnan(cv_all[3])                       # the silent neuron
    hand = [np.diff(t[i == k]).std(ddof=1) / np.diff(t[i == k]).mean() for k in range(8, 12)]
    np.testing.assert_allclose(res.isi_cv("I"), hand, rtol=1e-10)
    assert res.cv("I") == pytest.approx(np.mean(hand), rel=1e-10)


def test_population_stats_partition_the_spikes(two_pop):
    res, t, i = two_pop
    stats = res.population_stats(bin_s=0.1)
    assert set(stats) == {"E", "I"}
    assert stats["E"]["n"] + stats["I"]["n"] == res.n
    assert stats["E"]["spikes"] + stats["I"]["spikes"] == res.n_spikes == t.size
    assert stats["E"]["spikes"] == np.sum(i < 8)
    assert stats["I"]["rate_hz"] == pytest.approx(res.mean_rate("I"), rel=1e-12)
    assert stats["E"]["cv"] == pytest.approx(res.cv("E"), rel=1e-12)
    assert stats["I"]["fano"] == pytest.approx(res.fano_factor(0.1, "I"), rel=1e-12)
    assert res.population_stats()["E"]["fano"] is None
    json.dumps(stats)                                # JSON-friendly
    summ = res.summary()
    assert summ["population_stats"]["I"]["spikes"] == stats["I"]["spikes"]
    json.dumps(summ)
    single = make_result(t, i, 12, 0.2, 3.2)
    assert "population_stats" not in single.summary()


# ------------------------------------------------------------------------------- CV and Fano

def test_cv_and_fano_of_poisson_trains():
    rng = np.random.default_rng(2024)
    n, rate, T = 50, 20.0, 200.0                     # 50 neurons x 4000 spikes
    t, i = poisson_trains(rng, np.full(n, rate), 0.0, T)
    res = make_result(t, i, n, 0.0, T)
    # CV of a Poisson train is 1; over 200k intervals the mean CV is within ~0.5 %
    assert res.cv() == pytest.approx(1.0, abs=0.02)
    # Fano of a Poisson count is 1: per neuron (mean over 50 neurons, 2000 bins each) and for the
    # summed population count (superposition is Poisson too); sd ~ sqrt(2/2000)/sqrt(50) and ~0.03
    f = res.fano_factor(0.1)
    assert f == pytest.approx(1.0, abs=0.03)
    assert res.fano_factor(0.1, kind="population") == pytest.approx(1.0, abs=0.1)
    # independent computation: counts matrix with np.histogram, sample variance (ddof=1)
    edges = np.linspace(0.0, T, 2001)
    C = np.array([np.histogram(t[i == k], edges)[0] for k in range(n)])
    assert f == pytest.approx(np.mean(C.var(axis=1, ddof=1) / C.mean(axis=1)), rel=1e-10)
    pop = C.sum(axis=0)
    assert res.fano_factor(0.1, kind="population") == pytest.approx(pop.var(ddof=1) / pop.mean(),
                                                                    rel=1e-10)
    sel = np.array([1, 4, 9])
    assert res.fano_factor(0.1, neurons=sel) == pytest.approx(
        np.mean(C[sel].var(axis=1, ddof=1) / C[sel].mean(axis=1)), rel=1e-10)


def test_cv_and_fano_of_regular_trains():
    periods = np.array([0.025, 0.025, 0.025])
    t, i = regular_trains(periods, [0.5, 0.3, 0.9], 0.0, 10.0)
    res = make_result(t, i, 4, 0.0, 10.0)            # neuron 3 is silent
    np.testing.assert_allclose(res.isi_cv()[:3], 0.0, atol=1e-9)
    assert np.isnan(res.isi_cv()[3])
    assert res.cv() == pytest.approx(0.0, abs=1e-9)
    assert res.fano_factor(0.025) == pytest.approx(0.0, abs=1e-12)   # one spike in every bin
    assert res.fano_factor(0.025, kind="population") == pytest.approx(0.0, abs=1e-12)
    assert res.fano_factor(0.05) == pytest.approx(0.0, abs=1e-12)    # two spikes in every bin
    assert res.fano_factor(0.0375) > 0.1              # 1.5 periods: counts alternate 1, 2


def test_fano_bad_input():
    res = make_result([0.1, 0.2], [0, 1], 2, 0.0, 1.0)
    with pytest.raises(ValueError, match="bin_s"):
        res.fano_factor(0.6)
    with pytest.raises(ValueError, match="bin_s"):
        res.fano_factor(-1.0)
    with pytest.raises(ValueError, match="kind"):
        res.fano_factor(0.1, kind="neurons")
    assert np.isnan(make_result([], [], 2, 0.0, 1.0).fano_factor(0.1))


def test_recording_window_and_subset():
    """Rates use the recorded window and the recorded neurons, not the whole run."""
    t = np.array([1.2, 1.5, 1.7, 1.9])
    i = np.array([0, 0, 2, 2])
    meta = {"network": {"model": "lif", "n": 4}, "record": {"neurons": 2, "t_start": 1.0,
                                                              "t_stop": 2.0}}
    res = make_result(t, i, 4, 0.0, 5.0, metadata=meta, recorded_neurons=np.array([0, 2]))
    r = res.rates()
    np.testing.assert_allclose(r[[0, 2]], [2.0, 2.0])
    assert np.isnan(r[1]) and np.isnan(r[3])
    assert res.mean_rate() == pytest.approx(2.0)
    edges, rate = res.population_rate(0.5)
    np.testing.assert_allclose(edges, [1.0, 1.5, 2.0])
    np.testing.assert_allclose(rate, [1 / (2 * 0.5), 3 / (2 * 0.5)])


# -------------------------------------------------------------------------------------- plots

@pytest.fixture
def plt():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    yield plt
    plt.close("all")


def test_plot_raster_populations(two_pop, tmp_path, plt):
    res, t, i = two_pop
    path = tmp_path / "raster.png"
    ax = res.plot_raster(path=path, bin_s=0.1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    raster, rate = ax.figure.axes
    assert len(raster.lines) == 2                     # one dot series per population
    assert [text.get_text() for text in raster.get_legend().get_texts()] == ["E", "I"]
    assert len(rate.lines) == 2                       # one population rate per population
    edges, r_i = res.population_rate(0.1, "I")
    np.testing.assert_allclose(rate.lines[1].get_ydata(), r_i)
    # every spike is drawn (no subsampling at this size), at its neuron's row
    xs = np.concatenate([ln.get_xdata() for ln in raster.lines])
    ys = np.concatenate([ln.get_ydata() for ln in raster.lines])
    assert sorted(zip(xs, ys)) == sorted(zip(t, i.astype(float)))


def test_plot_raster_subsamples_each_population(two_pop, plt):
    res, t, i = two_pop
    fig, ax = plt.subplots()
    res.plot_raster(ax=ax, max_neurons=3)
    e, inh = ax.lines
    assert set(np.unique(e.get_ydata())) <= {0.0, 1.0, 2.0}          # E neurons 0..2
    np.testing.assert_array_equal(np.sort(inh.get_ydata()),            # I neurons 8..10 -> rows 3..5
                                  np.sort(i[(i >= 8) & (i < 11)] - 8 + 3.0))
    assert e.get_label() == "E (3 of 8)" and inh.get_label() == "I (3 of 4)"


def test_plot_voltages(tmp_path, plt):
    st = np.linspace(0.0, 1.0, 11)
    v = np.column_stack([np.sin(st), np.cos(st)])
    res = make_result([0.5], [0], 4, 0.0, 1.0, populations={"A": (0, 2), "B": (2, 4)},
                      sample_times=st, voltages=v, voltage_neurons=np.array([1, 3], dtype=np.int32))
    path = tmp_path / "v.png"
    ax = res.plot_voltages(path=path)
    assert path.stat().st_size > 1000
    assert len(ax.lines) == 2
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), v[:, 1])
    assert ax.lines[1].get_label() == "3 (B)"
    with pytest.raises(ValueError, match="voltages"):
        make_result([0.5], [0], 4, 0.0, 1.0).plot_voltages()


# --------------------------------------------------------------------------------- Neo export

def test_to_neo(two_pop):
    neo = pytest.importorskip("neo")
    res, t, i = two_pop
    res.sample_times = np.array([0.5, 1.0, 1.5])                      # regular: AnalogSignal
    res.voltages = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    res.voltage_neurons = np.array([2, 9], dtype=np.int32)
    block = res.to_neo()
    assert isinstance(block, neo.Block) and len(block.segments) == 1
    seg = block.segments[0]
    assert len(seg.spiketrains) == 12
    for k, train in enumerate(seg.spiketrains):
        assert train.annotations["neuron"] == k
        assert train.annotations["population"] == ("E" if k < 8 else "I")
        np.testing.assert_array_equal(train.rescale("s").magnitude, t[i == k])
        assert float(train.t_start.rescale("s")) == 0.2
        assert float(train.t_stop.rescale("s")) == 3.2
    sig, = seg.analogsignals
    np.testing.assert_array_equal(sig.magnitude, res.voltages)
    assert float(sig.sampling_period.rescale("s")) == pytest.approx(0.5)
    assert float(sig.t_start.rescale("s")) == 0.5
    assert list(sig.array_annotations["neuron"]) == [2, 9]
    assert list(sig.array_annotations["population"]) == ["E", "I"]

    res.sample_times = np.array([0.5, 0.7, 1.5])                      # irregular
    seg = res.to_neo(neurons=np.array([9, 3])).segments[0]
    assert [s.annotations["neuron"] for s in seg.spiketrains] == [9, 3]
    assert seg.spiketrains[1].size == 0                               # the silent neuron
    sig, = seg.irregularlysampledsignals
    np.testing.assert_array_equal(sig.times.rescale("s").magnitude, [0.5, 0.7, 1.5])
    np.testing.assert_array_equal(sig.magnitude, res.voltages)


def test_to_neo_without_neo(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "neo":
            raise ImportError("no neo")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"sparseprop-snn\[neo\]"):
        make_result([0.1], [0], 1, 0.0, 1.0).to_neo()


# ------------------------------------------------------------------------------------ save/load

def test_save_load_new_fields(tmp_path):
    st = np.array([0.1, 0.35, 0.9])
    v = np.array([[0.1, -0.2], [0.5, 0.99], [0.0, np.nan]])
    res = make_result([0.2, 0.4, 0.6], [0, 3, 1], 4, 0.0, 1.0, populations={"E": (0, 3), "I": (3, 4)},
                      sample_times=st, voltages=v, voltage_neurons=np.array([0, 3], dtype=np.int32),
                      recorded_neurons=np.array([0, 1, 3]))
    res.save(tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz", allow_pickle=False) as z:
        assert json.loads(str(z["metadata"]))["version"] == 2
    back = sp.load_result(tmp_path / "r.npz")
    assert back.populations == {"E": (0, 3), "I": (3, 4)}
    np.testing.assert_array_equal(back.sample_times, st)
    np.testing.assert_array_equal(back.voltages, v)
    np.testing.assert_array_equal(back.voltage_neurons, [0, 3])
    assert back.voltage_neurons.dtype == np.int32
    np.testing.assert_array_equal(back.recorded_neurons, [0, 1, 3])
    np.testing.assert_array_equal(back.rates(), res.rates())
    # a result without the optional fields loads them as None
    plain = make_result([0.2], [0], 2, 0.0, 1.0)
    plain.save(tmp_path / "p.npz")
    back = sp.load_result(tmp_path / "p.npz")
    assert back.voltages is None and back.sample_times is None and back.voltage_neurons is None
    assert back.recorded_neurons is None and back.populations == {"all": (0, 2)}


def _save_version_1(res, path, metadata):
    """The version-1 writer, verbatim (sparseprop 0.1 before issue 3)."""
    header = {"format": "sparseprop.result", "version": 1, "n": res.n,
              "t_start": res.t_start, "t_end": res.t_end, "n_spikes": res.n_spikes,
              "wall_s": res.wall_s, "interrupted": res.interrupted, "metadata": metadata}
    np.savez(path, times=res.times, neurons=res.neurons, metadata=np.array(json.dumps(header)),
             **res.final_state.to_arrays())


def test_version_1_files_still_load(tmp_path):
    res = make_result([0.2, 0.4, 0.6], [0, 3, 1], 4, 0.0, 1.0)
    meta = {"network": {"model": "lif", "n": 4, "populations": {"E": [0, 3], "I": [3, 4]}}}
    _save_version_1(res, tmp_path / "v1.npz", meta)
    back = sp.load_result(tmp_path / "v1.npz")
    np.testing.assert_array_equal(back.times, res.times)
    assert back.populations == {"E": (0, 3), "I": (3, 4)}             # from the network metadata
    assert back.voltages is None and back.sample_times is None
    assert back.mean_rate("I") == pytest.approx(1.0)
    _save_version_1(res, tmp_path / "v1b.npz", {"engine": "heap"})    # no populations at all
    assert sp.load_result(tmp_path / "v1b.npz").populations == {"all": (0, 4)}


def test_newer_version_refused(tmp_path):
    res = make_result([0.2], [0], 1, 0.0, 1.0)
    res.save(tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays["metadata"]))
    header["version"] = 99
    arrays["metadata"] = np.array(json.dumps(header))
    np.savez(tmp_path / "new.npz", **arrays)
    with pytest.raises(ValueError, match="newer"):
        sp.load_result(tmp_path / "new.npz")


# ---------------------------------------------------------------------------------- end to end

def _ei_network(seed=3):
    """100 LIF neurons, E = 0..79 (weight +0.02), I = 80..99 (weight -0.08), 10 random targets."""
    rng = np.random.default_rng(seed)
    n, k = 100, 10
    indices = np.concatenate([rng.choice(np.delete(np.arange(n), j), k, replace=False)
                              for j in range(n)])
    weights = np.repeat(np.where(np.arange(n) < 80, 0.02, -0.08), k)
    conn = sp.SparseConnectivity(np.arange(0, n * k + 1, k, dtype=np.int64), indices, weights)
    drive = np.where(np.arange(n) < 80, 1.2, 1.4)
    return sp.Network(sp.LIF(), n, drive, tau=0.01, connectivity=conn,
                      populations={"E": (0, 80), "I": (80, 100)})


def test_end_to_end_two_populations(tmp_path):
    net = _ei_network()
    rec = sp.Record(voltages=np.array([0, 90]), sample_times=np.linspace(0.0, 0.5, 26))
    res = sp.simulate(net, t_max=0.5, seed_ic=2, record=rec)
    assert res.populations == {"E": (0, 80), "I": (80, 100)}
    t, i = np.asarray(res.times), np.asarray(res.neurons)
    assert np.sum(i < 80) > 50 and np.sum(i >= 80) > 20
    stats = res.population_stats(bin_s=0.05)
    assert stats["E"]["spikes"] + stats["I"]["spikes"] == res.n_spikes
    assert stats["E"]["rate_hz"] == pytest.approx(np.sum(i < 80) / (80 * 0.5), rel=1e-12)
    assert stats["I"]["rate_hz"] == pytest.approx(np.sum(i >= 80) / (20 * 0.5), rel=1e-12)
    edges, rate = res.population_rate(0.05, "I")
    hand, _ = np.histogram(t[i >= 80], edges)
    np.testing.assert_allclose(rate, hand / (20 * 0.05), rtol=1e-12)
    assert res.voltages.shape == (26, 2)
    summ = res.summary()
    assert set(summ["population_stats"]) == {"E", "I"}

    res.save(tmp_path / "ei.npz")
    back = sp.load_result(tmp_path / "ei.npz")
    assert back.populations == res.populations
    np.testing.assert_array_equal(back.voltages, res.voltages)
    np.testing.assert_array_equal(back.sample_times, res.sample_times)
    np.testing.assert_array_equal(back.voltage_neurons, res.voltage_neurons)
    assert back.population_stats(0.05) == stats
