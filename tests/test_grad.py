"""Exact gradients (sparseprop.grad) against central finite differences, and their limits."""
import numpy as np
import pytest

import sparseprop as sp
from sparseprop.grad import vjp
from sparseprop.gradcheck import gradcheck, random_problem


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("refractory", [0.0, 0.001])
def test_vjp_matches_finite_differences(seed, refractory):
    out = gradcheck(n=40, seed=seed, refractory=refractory, per_param=6)
    assert out["spikes"] > 50 and out["triggered_spikes"] > 0
    assert all(v is not None for v in out["rel_err"].values())
    assert out["max_rel_err"] <= 1e-6, out


@pytest.mark.parametrize("delays", ["homogeneous", "few", "many"])
@pytest.mark.parametrize("seed", [0, 1])
def test_vjp_with_delays_matches_finite_differences(delays, seed):
    """Delayed deliveries (one delay: whole rows through a FIFO; a few values: runs through FIFOs,
    some zero; > 16 values: the pending heap), input projections with delays, refractoriness."""
    out = gradcheck(n=40, seed=seed, refractory=0.001, per_param=6, delays=delays)
    assert out["spikes"] > 50 and out["deliveries"] > 50
    assert all(v is not None for v in out["rel_err"].values())
    assert out["max_rel_err"] <= 1e-6, out


def test_delivery_links_with_a_continued_run():
    """A taped continuation starts with deliveries in flight: they are not attributed to the
    spikes of this tape, and the gradient of this run alone still matches finite differences of a
    run continued from the same state (the state is held fixed)."""
    params, build, ct, cv, t_max = random_problem(n=30, seed=3, delays="few")
    net = build(params)
    first = sp.simulate(net, t_max=t_max / 2, initial_voltages=params["initial_voltages"])
    assert first.final_state.events["pending_clock"].size > 0

    def run(pr, tape=False):
        n2 = build(pr)
        st = sp.NetworkState(first.final_state.states, first.final_state.clock, first.final_state.n_renorm,
                             first.final_state.t, first.final_state.n_spikes, n2.fingerprint(),
                             first.final_state.events)
        return sp.simulate(n2, t_max=t_max, state=st, tape=tape)

    base = run(params, tape=True)
    g = vjp(base, ct[:base.n_spikes]).weights
    h = 1e-7
    checked = 0
    for i in np.flatnonzero(np.abs(g) > 1e-6)[:6]:
        pp = {k: v.copy() for k, v in params.items()}
        pm = {k: v.copy() for k, v in params.items()}
        pp["weights"][i] += h
        pm["weights"][i] -= h
        rp, rm = run(pp), run(pm)
        if not (np.array_equal(rp.neurons, base.neurons) and np.array_equal(rm.neurons, base.neurons)):
            continue
        fd = (np.sum(ct[:rp.n_spikes] * rp.times) - np.sum(ct[:rm.n_spikes] * rm.times)) / (2 * h)
        assert abs(fd - g[i]) <= 1e-5 * max(abs(fd), 1e-3), (i, fd, g[i])
        checked += 1
    assert checked >= 3


def test_input_time_gradient_matches_finite_differences():
    params, build, ct, cv, t_max = random_problem(n=30, seed=5)
    net = build(params)
    inp = net.inputs[0]

    def loss_for(times):
        x = sp.SpikeTrainInput(times, inp.sources, inp.connectivity)
        n2 = sp.Network(net.model, net.n, net.drive, net.tau, net.connectivity, inputs=[x])
        r = sp.simulate(n2, t_max=t_max, initial_voltages=params["initial_voltages"], tape=True)
        return r, float(np.sum(ct[:r.n_spikes] * r.times))

    base, _ = loss_for(inp.times)
    g = vjp(base, ct[:base.n_spikes]).input_times[0]
    h = 1e-9
    for k in range(0, inp.times.size, 3):
        tp, tm = inp.times.copy(), inp.times.copy()
        tp[k] += h
        tm[k] -= h
        if np.any(np.diff(tp) < 0) or np.any(np.diff(tm) < 0):
            continue
        (rp, lp), (rm, lm) = loss_for(tp), loss_for(tm)
        assert np.array_equal(rp.neurons, base.neurons) and np.array_equal(rm.neurons, base.neurons)
        fd = (lp - lm) / (2 * h)
        assert abs(fd - g[k]) <= 1e-5 * max(abs(fd), 1.0), (k, fd, g[k])


def test_single_neuron_drive_gradient_is_analytic():
    # free LIF neuron from v0: spike k at t_k = tau ln((I-v0)/(I-1)) + k (tau ln((I-vr)/(I-1)) + t_ref)
    tau, I, v0, vr, tref = 0.01, 1.3, 0.2, 0.1, 0.002
    net = sp.Network(sp.LIF(v_reset=vr), 1, I, tau, sp.SparseConnectivity([0, 0], [], []), refractory=tref)
    res = sp.simulate(net, spikes=4, initial_voltages=[v0], tape=True)
    g = vjp(res, np.ones(4))
    dt1 = tau * (1 / (I - v0) - 1 / (I - 1))
    disi = tau * (1 / (I - vr) - 1 / (I - 1))
    assert g.drive[0] == pytest.approx(4 * dt1 + 6 * disi, rel=1e-12)
    assert g.initial_voltages[0] == pytest.approx(-4 * tau / (I - v0), rel=1e-12)


def test_renormalisation_epochs_are_crossed_exactly():
    # 2 s at tau = 10 ms crosses the LIF clock renormalisation (every 64 ln 2 tau) four times
    params, build, ct, cv, _ = random_problem(n=20, seed=7, w_std=0.02, p=0.1)
    net = build(params)
    res = sp.simulate(net, t_max=2.0, initial_voltages=params["initial_voltages"], tape=True)
    assert res.final_state.n_renorm >= 4
    k = res.n_spikes
    g = vjp(res, np.zeros(k) + (np.arange(k) == k - 1))      # d(last spike time)
    j = res.neurons[-1]
    h = 1e-7
    out = []
    for sign in (1, -1):
        pr = {key: v.copy() for key, v in params.items()}
        pr["drive"][j] += sign * h
        r = sp.simulate(build(pr), t_max=2.0, initial_voltages=pr["initial_voltages"])
        assert np.array_equal(r.neurons, res.neurons)
        out.append(r.times[-1])
    fd = (out[0] - out[1]) / (2 * h)
    assert g.drive[j] == pytest.approx(fd, rel=1e-5)


def test_tape_rejects_what_the_backward_pass_does_not_cover():
    conn = sp.SparseConnectivity([0, 1, 1], [1], [0.1])
    with pytest.raises(ValueError, match="LIF"):
        sp.simulate(sp.Network("qif", 2, 1.2, 0.01, conn), t_max=0.1, tape=True)
    with pytest.raises(ValueError, match="explicit connectivity"):
        sp.simulate(sp.balanced_network(n=100, k=10), t_max=0.1, tape=True)
    with pytest.raises(ValueError, match="record"):
        sp.simulate(sp.Network("lif", 2, 1.2, 0.01, conn), t_max=0.1, tape=True, record=sp.Record(neurons=[0]))
    res = sp.simulate(sp.Network("lif", 2, 1.2, 0.01, conn), t_max=0.1)
    with pytest.raises(ValueError, match="tape=True"):
        vjp(res, np.zeros(res.n_spikes))
    res = sp.simulate(sp.Network("lif", 2, 1.2, 0.01, conn), t_max=0.1, tape=True)
    with pytest.raises(ValueError, match="dL_dtimes"):
        vjp(res, np.zeros(res.n_spikes + 1))


def test_gradcheck_cli_prints_one_json_line(capsys):
    from sparseprop.cli import main
    import json

    assert main(["gradcheck", "--json", "--n", "25"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out["max_rel_err"] <= 1e-6 and out["spikes"] > 0


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    import sparseprop.gradcheck as gc

    real = gc.vjp

    def off_by_1e4(*args, **kwargs):
        g = real(*args, **kwargs)
        g.drive = g.drive * (1 + 1e-4)
        return g

    monkeypatch.setattr(gc, "vjp", off_by_1e4)
    out = gc.gradcheck(n=30, seed=0, per_param=4)
    assert out["rel_err"]["drive"] > 5e-5 and out["rel_err"]["weights"] <= 1e-6
