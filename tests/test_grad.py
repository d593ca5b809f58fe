"""Exact gradients (sparseprop.grad) against central finite differences, and their limits."""
import numpy as np
import pytest

import sparseprop as sp
from sparseprop.grad import vjp
from sparseprop.gradcheck import gradcheck, random_problem


def assert_gradcheck(out, spikes=50, **at_least):
    """Every checked parameter agrees with central differences to 1e-6 relative; the run had more
    than `spikes` spikes and more than at_least[key] of out[key] (deliveries, triggered spikes...)."""
    assert out["spikes"] > spikes and all(out[key] > v for key, v in at_least.items()), out
    assert all(v is not None for v in out["rel_err"].values()), out
    assert out["max_rel_err"] <= 1e-6, out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("refractory", [0.0, 0.001])
def test_vjp_matches_finite_differences(seed, refractory):
    assert_gradcheck(gradcheck(n=40, seed=seed, refractory=refractory, per_param=6), triggered_spikes=0)


@pytest.mark.parametrize("delays", ["homogeneous", "few", "many"])
@pytest.mark.parametrize("seed", [0, 1])
def test_vjp_with_delays_matches_finite_differences(delays, seed):
    """Delayed deliveries (one delay: whole rows through a FIFO; a few values: runs through FIFOs,
    some zero; > 16 values: the pending heap), input projections with delays, refractoriness."""
    assert_gradcheck(gradcheck(n=40, seed=seed, refractory=0.001, per_param=6, delays=delays), deliveries=50)


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
    with pytest.raises(ValueError, match="explicit connectivity"):
        sp.simulate(sp.balanced_network(n=100, k=10), t_max=0.1, tape=True)
    eif = sp.make_model("eif")
    with pytest.raises(ValueError, match="record"):
        sp.simulate(sp.Network(eif, 2, eif.drive, 0.01, conn), t_max=0.1, tape=True,
                    record=sp.Record(t_stop=0.05))
    with pytest.raises(ValueError, match="record"):
        sp.simulate(sp.Network("lif", 2, 1.2, 0.01, conn), t_max=0.1, tape=True, record=sp.Record(neurons=[0]))
    res = sp.simulate(sp.Network("lif", 2, 1.2, 0.01, conn), t_max=0.1)
    with pytest.raises(ValueError, match="tape=True"):
        vjp(res, np.zeros(res.n_spikes))
    res = sp.simulate(sp.Network("lif", 2, 1.2, 0.01, conn), t_max=0.1, tape=True)
    with pytest.raises(ValueError, match="dL_dtimes"):
        vjp(res, np.zeros(res.n_spikes + 1))


@pytest.mark.parametrize("model", ["lif", "qif", "eif"])
def test_gradcheck_cli_prints_one_json_line(model, capsys):
    from sparseprop.cli import main
    import json

    assert main(["gradcheck", "--model", model, "--json", "--n", "25"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out["model"] == model and out["max_rel_err"] <= 1e-6 and out["spikes"] > 0


@pytest.mark.parametrize("model", ["qif", "eif"])
def test_checkpointed_gradients_equal_the_one_shot_tape_for_nonlinear_models(model):
    from sparseprop.grad import simulate_checkpointed

    params, build, ct, cv, t_max = random_problem(n=30, seed=2, model=model, refractory=0.001)
    net = build(params)
    one = sp.simulate(net, t_max=t_max, initial_voltages=params["initial_voltages"], tape=True)
    cp = simulate_checkpointed(net, t_max=t_max, initial_voltages=params["initial_voltages"], checkpoint_spikes=17)
    assert cp.checkpoints.segments > 2 and np.array_equal(cp.times, one.times)
    dv = cv * np.isfinite(one.final_voltages())          # refractory QIF neurons read V = -inf
    a, b = vjp(one, ct[:one.n_spikes], dv), vjp(cp, ct[:one.n_spikes], dv)
    assert (a.drive is None) == (b.drive is None) == (model == "eif")
    for x, y in [(a.weights, b.weights), (a.drive, b.drive), (a.initial_voltages, b.initial_voltages),
                 (a.input_weights[0], b.input_weights[0]), (a.input_times[0], b.input_times[0])]:
        assert (x is None and y is None) or np.array_equal(x, y)


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


# ---- QIF ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("refractory", [0.0, 0.001])
def test_qif_vjp_matches_finite_differences(seed, refractory):
    assert_gradcheck(gradcheck(n=40, seed=seed, refractory=refractory, per_param=6, model="qif"))


@pytest.mark.parametrize("delays", ["homogeneous", "few", "many"])
def test_qif_vjp_with_delays_matches_finite_differences(delays):
    out = gradcheck(n=40, seed=1, refractory=0.001, per_param=6, delays=delays, model="qif")
    assert_gradcheck(out, deliveries=50, ignored_inputs=0)


def test_qif_tape_holds_one_pre_input_state_per_applied_input():
    params, build, ct, cv, t_max = random_problem(n=30, seed=4, model="qif", refractory=0.001)
    res = sp.simulate(build(params), t_max=t_max, initial_voltages=params["initial_voltages"], tape=True)
    tape, ctx = res.tape, res.tape_context
    kind = tape["kind"]
    spk = tape["src"][kind <= 1]
    inp = tape["src"][kind == 2]
    row = np.diff(ctx["kwargs"]["indptr"])[spk].sum()
    ev = ctx["events"]
    applied = row + (ev["in_b"][inp] - ev["in_a"][inp]).sum() - tape["skip_event"].size
    assert tape["pre"].shape == (applied,) and applied > 0
    lif = random_problem(n=30, seed=4)
    r = sp.simulate(lif[1](lif[0]), t_max=lif[4], initial_voltages=lif[0]["initial_voltages"], tape=True)
    assert "pre" not in r.tape


@pytest.mark.parametrize("refractory", [0.0, 0.002])
def test_single_qif_neuron_gradients_are_analytic(refractory):
    # theta_0 = 2 atan(V0 / sqrt(I)), omega = 2 sqrt(I) per tau: t_1 = tau (pi - theta_0) / omega,
    # then one period 2 pi tau / omega (+ t_ref) per spike. Shared drive: without refractoriness
    # the taped run is the time-based form of the phase engine's run.
    tau, I, v0 = 0.01, 1.7, -0.4
    net = sp.Network(sp.QIF(), 1, I, tau, sp.SparseConnectivity([0, 0], [], []), refractory=refractory)
    res = sp.simulate(net, spikes=4, initial_voltages=[v0], tape=True)
    plain = sp.simulate(net, spikes=4, initial_voltages=[v0])
    np.testing.assert_allclose(res.times, plain.times, rtol=1e-13)
    g = vjp(res, np.ones(4))
    a = np.sqrt(I)
    theta0, omega = 2 * np.arctan(v0 / a), 2 * a
    t1 = tau * (np.pi - theta0) / omega
    assert res.times[0] == pytest.approx(t1, rel=1e-13)
    assert res.times[1] - res.times[0] == pytest.approx(2 * np.pi * tau / omega + refractory, rel=1e-12)
    dtheta0_dI = -v0 / (a * (I + v0 ** 2))
    dt1_dI = tau * (-dtheta0_dI / omega - (np.pi - theta0) / (a * omega ** 2))
    dT_dI = -np.pi * tau / (2 * I * a)
    assert g.drive[0] == pytest.approx(4 * dt1_dI + 6 * dT_dI, rel=1e-12)
    assert g.initial_voltages[0] == pytest.approx(-4 * tau / (I + v0 ** 2), rel=1e-12)


def test_shared_drive_qif_tape_runs_time_based_and_continues():
    rng = np.random.default_rng(0)
    n = 30
    W = (rng.random((n, n)) < 0.2) * rng.normal(0.0, 0.4, (n, n))
    np.fill_diagonal(W, 0.0)
    conn = sp.SparseConnectivity.from_matrix(W)
    v0 = rng.uniform(-2, 2, n)
    tau, t_max = 0.01, 0.05

    def net(I=2.0, weights=conn.weights):
        return sp.Network(sp.QIF(), n, I, tau, sp.SparseConnectivity(conn.indptr, conn.indices, weights))

    plain = sp.simulate(net(), t_max=t_max, initial_voltages=v0)
    assert plain.metadata["representation"] == "phase"
    res = sp.simulate(net(), t_max=t_max, initial_voltages=v0, tape=True)
    assert res.metadata["representation"] == "time" and res.final_state.representation == "time"
    assert np.array_equal(res.neurons, plain.neurons)
    np.testing.assert_allclose(res.times, plain.times, rtol=1e-12)
    np.testing.assert_allclose(res.final_voltages(), plain.final_voltages(), rtol=1e-9, atol=1e-9)
    # the time-based state continues time-based (taped or not); a phase-based one cannot be taped
    more = sp.simulate(net(), t_max=2 * t_max, state=res.final_state)
    more_taped = sp.simulate(net(), t_max=2 * t_max, state=res.final_state, tape=True)
    assert np.array_equal(more.times, more_taped.times)
    with pytest.raises(ValueError, match="phase-based"):
        sp.simulate(net(), t_max=2 * t_max, state=plain.final_state, tape=True)
    # the gradient of a scalar drive (sum over neurons) and of the weights against finite differences
    ct = rng.normal(size=res.n_spikes)
    g = vjp(res, ct)
    h = 1e-6
    loss = [np.sum(ct * sp.simulate(net(I=2.0 + s * h), t_max=t_max, initial_voltages=v0).times) for s in (1, -1)]
    assert g.drive.sum() == pytest.approx((loss[0] - loss[1]) / (2 * h), rel=1e-6)
    for i in np.flatnonzero(np.abs(g.weights) > 1e-4)[:4]:
        out = []
        for s in (1, -1):
            w = conn.weights.copy()
            w[i] += s * h
            out.append(np.sum(ct * sp.simulate(net(weights=w), t_max=t_max, initial_voltages=v0).times))
        fd = (out[0] - out[1]) / (2 * h)
        assert g.weights[i] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_checkpointed_qif_needs_the_time_based_engine():
    from sparseprop.grad import simulate_checkpointed

    shared = sp.Network(sp.QIF(), 2, 1.5, 0.01, sp.SparseConnectivity([0, 1, 1], [1], [0.1]))
    with pytest.raises(ValueError, match="per neuron"):
        simulate_checkpointed(shared, t_max=0.05, checkpoint_spikes=5)


def test_qif_input_at_the_reset_instant_has_no_effect():
    # An autapse delivers at the reset instant: V = -inf, the input changes nothing. (Rounding of
    # s - clock used to put some resets a hair past 2 pi, read as "about to fire": bursts of
    # spikes 1e-18 s apart.)
    tau = 0.01
    for I in np.linspace(1.0, 4.0, 13):
        net = sp.Network(sp.QIF(), 1, np.array([I]), tau, sp.SparseConnectivity([0, 1], [0], [-0.1]))
        res = sp.simulate(net, spikes=300, initial_voltages=[0.0])
        np.testing.assert_allclose(np.diff(res.times), np.pi * tau / np.sqrt(I), rtol=1e-9)


# ---- EIF (table model) ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eif_vjp_matches_finite_differences(seed):
    out = gradcheck(n=40, seed=seed, per_param=6, model="eif")
    assert set(out["rel_err"]) == {"weights", "input_weights", "initial_voltages"}
    assert_gradcheck(out, spikes=40)


@pytest.mark.parametrize("delays", ["homogeneous", "many"])
def test_eif_vjp_with_refractoriness_and_delays_matches_finite_differences(delays):
    out = gradcheck(n=40, seed=2, refractory=0.002, per_param=6, delays=delays, model="eif")
    assert_gradcheck(out, spikes=40, deliveries=40, ignored_inputs=0)


def test_eif_gradients_have_no_drive_and_pre_matches_the_applied_inputs():
    params, build, ct, cv, t_max = random_problem(n=30, seed=4, model="eif", refractory=0.001)
    net = build(params)
    net.inputs.append(sp.PoissonInput(2000.0, 0.05))
    res = sp.simulate(net, t_max=t_max, initial_voltages=params["initial_voltages"], tape=True)
    tape, ctx = res.tape, res.tape_context
    kind = tape["kind"]
    assert np.any(kind == 3)
    row = np.diff(ctx["kwargs"]["indptr"])[tape["src"][kind <= 1]].sum()
    ev = ctx["events"]
    inp = tape["src"][kind == 2]
    applied = row + (ev["in_b"][inp] - ev["in_a"][inp]).sum() + np.sum(kind == 3) - tape["skip_event"].size
    assert tape["pre"].shape == (applied,) and applied > 0
    g = vjp(res, ct[:res.n_spikes], None)
    assert g.drive is None
    assert np.all(np.isfinite(g.weights)) and np.any(g.weights != 0.0)
    assert np.all(np.isfinite(g.initial_voltages))



def test_table_model_triggered_spike_gradients_match_finite_differences():
    """An EIF neuron kicked past the cut-off fires at the input's instant (a triggered spike): its
    time moves with the input's time, and the other gradients still match central differences."""
    m = sp.TableNeuron("eif_seed_interp")

    def run(w, win, tin, v0):
        conn = sp.SparseConnectivity([0, 2, 3, 3], [1, 2, 2], w)
        ic = sp.SparseConnectivity([0, 1], [0], [win], n_post=3)
        net = sp.Network(m, 3, m.table.drive, 0.01, conn,
                         inputs=[sp.SpikeTrainInput(np.array([tin]), np.array([0]), ic)])
        return sp.simulate(net, t_max=0.025, initial_voltages=v0, tape=True)

    w, win, tin, v0 = np.array([0.3, -0.2, 0.15]), 1500.0, 0.004, np.array([-0.8, -0.5, -0.9])
    base = run(w, win, tin, v0)
    assert np.any(base.tape["kind"] == 1)                    # TAPE_TRIGGERED
    ct = np.random.default_rng(0).normal(size=base.n_spikes)
    g = vjp(base, ct)
    assert g.drive is None                                   # one table = one drive

    def fd(f, x, h):
        rp, rm = f(x + h), f(x - h)
        assert np.array_equal(rp.neurons, base.neurons) and np.array_equal(rm.neurons, base.neurons)
        return (np.sum(ct * rp.times) - np.sum(ct * rm.times)) / (2 * h)

    h = 1e-7
    for i in range(3):
        e = np.eye(3)[i]
        assert fd(lambda x: run(w + x * e, win, tin, v0), 0.0, h) == pytest.approx(g.weights[i], rel=1e-5, abs=1e-9)
        assert fd(lambda x: run(w, win, tin, v0 + x * e), 0.0, h) == pytest.approx(g.initial_voltages[i], rel=1e-5,
                                                                                  abs=1e-9)
    assert fd(lambda x: run(w, win, tin + x, v0), 0.0, h) == pytest.approx(g.input_times[0][0], rel=1e-5)
