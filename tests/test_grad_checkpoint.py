"""Checkpointed gradients (sparseprop.grad.simulate_checkpointed): the same gradients as the one-shot
tape (oracle: grad.vjp of simulate(..., tape=True)) with the memory of one segment's tape, and
central finite differences."""
import numpy as np
import pytest

import sparseprop as sp
from sparseprop.grad import simulate_checkpointed, spike_records, value_and_grad, vjp
from sparseprop.gradcheck import random_problem


def max_rel_diff(g1, g2):
    """Largest difference between two Gradients relative to the largest entry of each parameter."""
    worst = 0.0
    for name in ("weights", "drive", "initial_voltages", "input_weights", "input_times"):
        a, b = getattr(g1, name), getattr(g2, name)
        if isinstance(a, list):
            assert len(a) == len(b)
            a, b = (np.concatenate(x) if x else np.zeros(0) for x in (a, b))
        assert a.shape == b.shape, name
        if a.size and np.any(a != 0):
            worst = max(worst, float(np.max(np.abs(a - b)) / np.max(np.abs(a))))
        else:
            assert np.array_equal(a, b), name
    return worst


def one_shot(net, **kw):
    return sp.simulate(net, tape=True, progress=False, **kw)


def split_cascades(res, S):
    """Spikes set off, at the same instant, by a record before a boundary every S spikes."""
    rec = spike_records(res)
    seg = np.searchsorted(rec, np.arange(res.tape["kind"].shape[0]), side="left") // S   # segment of a record
    trig = res.tape["trigger"]
    r = np.flatnonzero(trig >= 0)
    return int(np.sum(seg[trig[r]] != seg[r]))


def expected_segments(times, S, by_time):
    """Spikes per segment: the forward pass runs calls of S spikes; a call boundary inside a cascade
    of simultaneous spikes moves to the end of that cascade (and disappears if the cascade fills
    the next call); a run stopped at t_max after a multiple of S spikes ends with a call without
    spikes."""
    m = times.shape[0]
    bounds = [0]
    for p in range(S, m, S):
        end, q = min(p + S, m), p
        while q < end and times[q] == times[p - 1]:
            q += 1
        if q < end:
            bounds.append(q)
    sizes = [int(x) for x in np.diff(bounds + [m])]
    return sizes + [0] if by_time and m % S == 0 else sizes


@pytest.mark.parametrize("seed,refractory", [(0, 0.0), (1, 0.001), (2, 0.0005)])
def test_equals_one_shot_tape(seed, refractory):
    params, build, ct, cv, t_max = random_problem(n=40, seed=seed, refractory=refractory)
    net, v0 = build(params), params["initial_voltages"]
    ref = one_shot(net, t_max=t_max, initial_voltages=v0)
    g_ref = vjp(ref, ct[:ref.n_spikes], cv)
    n_split = 0
    for S in (1, 2, 3, 7, 50, 10**6):
        res = simulate_checkpointed(net, t_max=t_max, initial_voltages=v0, checkpoint_spikes=S)
        assert np.array_equal(res.times, ref.times) and np.array_equal(res.neurons, ref.neurons)
        assert res.final_state.clock == ref.final_state.clock and res.t_end == ref.t_end
        assert res.metadata["stopped_by"] == "t_max" and not hasattr(res, "tape")
        g = vjp(res, ct[:res.n_spikes], cv)
        assert max_rel_diff(g_ref, g) <= 1e-12, S
        assert res.checkpoints.n_spikes == expected_segments(ref.times, S, by_time=True)
        assert res.checkpoints.stats["peak_tape_records"] <= max(res.checkpoints.n_spikes) + 10   # + inputs
        n_split += split_cascades(ref, S)
    # cascades that a boundary every S spikes would cut happen here (and are kept in one segment)
    assert n_split > 0 and np.sum(ref.tape["kind"] == 1) > 0


def test_boundaries_on_renormalisation_epochs_and_a_long_run():
    # 2 s at tau = 10 ms crosses the clock renormalisation (every 64 ln 2 tau) four times
    params, build, ct, cv, _ = random_problem(n=20, seed=7, w_std=0.02, p=0.1, refractory=0.001)
    net, v0 = build(params), params["initial_voltages"]
    ref = one_shot(net, t_max=2.0, initial_voltages=v0)
    assert ref.final_state.n_renorm >= 4
    rng = np.random.default_rng(0)
    gt, gv = rng.normal(size=ref.n_spikes), rng.normal(size=net.n)
    g_ref = vjp(ref, gt, gv)
    # spike counts after which the clock was renormalised (the next record is in a new epoch)
    ep, rec = ref.tape["epoch"], spike_records(ref)
    at_epoch = [i + 1 for i, r in enumerate(rec) if r + 1 < ep.shape[0] and ep[r + 1] > ep[r]]
    assert len(at_epoch) >= 3
    for S in at_epoch[:2] + [1, 97]:
        res = simulate_checkpointed(net, t_max=2.0, initial_voltages=v0, checkpoint_spikes=S)
        if S in at_epoch:
            # the clock was renormalised between the last spike of the first segment and the
            # first event of the second (the boundary state is in either epoch)
            assert res.checkpoints.states[1].n_renorm in (ep[rec[S - 1]], ep[rec[S - 1]] + 1)
        assert max_rel_diff(g_ref, vjp(res, gt, gv)) <= 1e-12, S
        assert res.checkpoints.n_spikes == expected_segments(ref.times, S, by_time=True)
        assert res.checkpoints.stats["peak_tape_records"] <= max(res.checkpoints.n_spikes) + 10
        assert S == 1 or max(res.checkpoints.n_spikes) <= 2 * S


def test_stop_on_spikes_poisson_inputs_and_recording_subsets():
    params, build, ct, cv, t_max = random_problem(n=40, seed=3, refractory=0.0005)
    base = build(params)
    net = sp.Network(base.model, base.n, base.drive, base.tau, base.connectivity, refractory=base.refractory,
                     inputs=list(base.inputs) + [sp.PoissonInput(200.0, 0.3, targets=(0, 20))])
    v0 = params["initial_voltages"]
    rng = np.random.default_rng(1)
    for stop in ({"spikes": 60}, {"spikes": 1000, "t_max": t_max}, {"spikes": 30, "t_max": t_max}):
        ref = one_shot(net, initial_voltages=v0, seed_input=5, **stop)
        assert np.sum(ref.tape["kind"] == 3) > 0                 # Poisson events on the tape
        gt = rng.normal(size=ref.n_spikes)
        g_ref = vjp(ref, gt)
        for S in (1, 4, 30):
            res = simulate_checkpointed(net, initial_voltages=v0, seed_input=5, checkpoint_spikes=S, **stop)
            assert np.array_equal(res.times, ref.times)
            assert res.metadata["stopped_by"] == ref.metadata["stopped_by"]
            assert res.checkpoints.n_spikes == expected_segments(ref.times, S, ref.metadata["stopped_by"] == "t_max")
            assert max_rel_diff(g_ref, vjp(res, gt)) <= 1e-12, (stop, S)
    # only the spikes the loss needs are kept: dL_dtimes is aligned with them
    ref = one_shot(net, t_max=t_max, initial_voltages=v0, seed_input=5)
    keep = np.isin(ref.neurons, np.arange(10, 30)) & (ref.times >= 0.01) & (ref.times <= 0.04)
    gt, gv = rng.normal(size=ref.n_spikes) * keep, rng.normal(size=net.n)
    g_ref = vjp(ref, gt, gv)
    res = simulate_checkpointed(net, t_max=t_max, initial_voltages=v0, seed_input=5, checkpoint_spikes=4,
                                record=sp.Record(neurons=np.arange(10, 30), t_start=0.01, t_stop=0.04))
    assert np.array_equal(res.times, ref.times[keep]) and res.n_spikes == ref.n_spikes
    assert max_rel_diff(g_ref, vjp(res, gt[keep], gv)) <= 1e-12
    res = simulate_checkpointed(net, t_max=t_max, initial_voltages=v0, seed_input=5, checkpoint_spikes=4,
                                record=False)
    assert res.times is None
    assert max_rel_diff(vjp(ref, None, gv), vjp(res, None, gv)) <= 1e-12


def test_boundary_exactly_at_t_max_and_input_times():
    # an input at exactly t_max sets off a cascade at t_max: a segment that ends on one of those
    # spikes cannot be continued (t_max is its end), so it takes the rest of the instant
    n = 4
    W = np.zeros((n, n))
    W[1, 0], W[2, 1], W[3, 2], W[0, 3] = 0.6, 0.6, 0.5, -0.1
    inp = sp.SpikeTrainInput(np.array([0.002, 0.005, 0.005]), np.array([0, 0, 1]),
                             sp.SparseConnectivity([0, 1, 2], [0, 1], [1.0, 0.5], n_post=n))
    net = sp.Network(sp.LIF(), n, np.array([0.8, 0.8, 0.8, 1.2]), 0.01, sp.SparseConnectivity.from_matrix(W),
                     inputs=[inp])
    v0 = np.array([0.5, 0.5, 0.5, 0.1])
    ref = one_shot(net, t_max=0.005, initial_voltages=v0)
    assert np.sum(ref.times == 0.005) >= 2 and ref.metadata["stopped_by"] == "t_max"
    gt, gv = np.arange(1.0, ref.n_spikes + 1), np.array([1.0, -2.0, 3.0, 0.5])
    g_ref = vjp(ref, gt, gv)
    assert np.all(g_ref.input_times[0][:2] != 0)
    for S in (1, 2, 3):
        res = simulate_checkpointed(net, t_max=0.005, initial_voltages=v0, checkpoint_spikes=S)
        assert np.array_equal(res.times, ref.times) and res.metadata["stopped_by"] == "t_max"
        assert max_rel_diff(g_ref, vjp(res, gt, gv)) <= 1e-12, S
        if S == 1:
            assert res.checkpoints.n_spikes[-1] >= 2         # the instant t_max in one segment


def test_matches_finite_differences():
    params, build, ct, cv, t_max = random_problem(n=30, seed=4, refractory=0.001)

    def loss(pr, S=None):
        kw = dict(t_max=t_max, initial_voltages=pr["initial_voltages"])
        res = simulate_checkpointed(build(pr), checkpoint_spikes=S, **kw) if S else sp.simulate(build(pr), **kw)
        return float(np.sum(ct[:res.n_spikes] * res.times) + np.sum(cv * res.final_voltages())), res

    value, res = loss(params, S=5)
    g = vjp(res, ct[:res.n_spikes], cv)
    assert res.checkpoints.segments > 5
    rng = np.random.default_rng(2)
    checked = 0
    for name, grad in (("drive", g.drive), ("weights", g.weights), ("input_weights", g.input_weights[0])):
        for i in rng.choice(grad.size, 3, replace=False):
            h = 1e-6
            out = []
            for sign in (1, -1):
                pr = {k: x.copy() for k, x in params.items()}
                pr[name][i] += sign * h
                out.append(loss(pr))
            if not all(np.array_equal(r.neurons, res.neurons) for _, r in out):
                continue
            fd = (out[0][0] - out[1][0]) / (2 * h)
            assert abs(fd - grad[i]) <= 1e-5 * max(abs(fd), 1e-2), (name, i, fd, grad[i])
            checked += 1
    assert checked >= 6


def test_value_and_grad_and_memory_bound():
    params, build, ct, cv, t_max = random_problem(n=40, seed=1)
    net, v0 = build(params), params["initial_voltages"]

    def loss_fn(res):
        return float(np.sum(ct[:res.n_spikes] * res.times)), ct[:res.n_spikes], None

    val1, g1, r1 = value_and_grad(loss_fn, net, t_max=t_max, initial_voltages=v0)
    val2, g2, r2 = value_and_grad(loss_fn, net, t_max=t_max, initial_voltages=v0, checkpoint_spikes=8)
    assert val1 == val2 and max_rel_diff(g1, g2) <= 1e-12
    st = r2.checkpoints.stats
    full = sum(a.nbytes for a in r1.tape.values())
    assert st["segments"] == r2.checkpoints.segments >= 10
    assert st["peak_tape_records"] <= max(r2.checkpoints.n_spikes) + 10 and st["peak_tape_bytes"] < full / 5
    assert max(r2.checkpoints.n_spikes) <= 8 + np.max(np.unique(r2.times, return_counts=True)[1])
    assert st["checkpoint_bytes"] > 0 and st["recompute_s"] > 0


def test_taped_continuation_gives_gradients_from_its_start():
    # without inputs the dynamics are time invariant: a taped continuation from V(t1) has the
    # gradients of a fresh run from the same voltages (initial_voltages = dL/dV(t1))
    params, build, ct, cv, _ = random_problem(n=30, seed=2)
    b = build(params)
    net = sp.Network(b.model, b.n, b.drive, b.tau, b.connectivity)
    first = sp.simulate(net, t_max=0.03, initial_voltages=params["initial_voltages"])
    cont = sp.simulate(net, t_max=0.08, state=first.final_state, tape=True)
    fresh = sp.simulate(net, t_max=0.05, initial_voltages=first.final_voltages(), tape=True)
    assert np.array_equal(cont.neurons, fresh.neurons) and cont.n_spikes > 20
    np.testing.assert_allclose(cont.times - 0.03, fresh.times, rtol=0, atol=1e-12)
    ga, gb = vjp(cont, ct[:cont.n_spikes], cv), vjp(fresh, ct[:fresh.n_spikes], cv)
    assert max_rel_diff(gb, ga) <= 1e-9


def test_bad_arguments_are_refused():
    params, build, ct, cv, t_max = random_problem(n=20, seed=0)
    net, v0 = build(params), params["initial_voltages"]
    for bad in (0, -3, 2.5, "10"):
        with pytest.raises((ValueError, TypeError), match="checkpoint_spikes"):
            simulate_checkpointed(net, t_max=t_max, initial_voltages=v0, checkpoint_spikes=bad)
    with pytest.raises(TypeError, match="checkpoint_spikes"):
        simulate_checkpointed(net, t_max=t_max, initial_voltages=v0)
    with pytest.raises(ValueError, match="stopping condition"):
        simulate_checkpointed(net, initial_voltages=v0, checkpoint_spikes=5)
    with pytest.raises(ValueError, match="explicit connectivity"):
        simulate_checkpointed(sp.balanced_network(n=100, k=10), t_max=0.1, checkpoint_spikes=5)
    with pytest.raises(ValueError, match="record"):
        simulate_checkpointed(net, t_max=t_max, checkpoint_spikes=5, record=sp.Record(max_spikes=10))
    res = simulate_checkpointed(net, t_max=t_max, initial_voltages=v0, checkpoint_spikes=5)
    with pytest.raises(ValueError, match="dL_dtimes"):
        vjp(res, np.zeros(res.n_spikes + 1))
    with pytest.raises(ValueError, match="dL_dvoltages"):
        vjp(res, None, np.zeros(net.n + 1))
    res = simulate_checkpointed(net, spikes=20, initial_voltages=v0, checkpoint_spikes=5)
    with pytest.raises(ValueError, match="t_max"):
        vjp(res, None, np.zeros(net.n))
    res = simulate_checkpointed(net, t_max=t_max, initial_voltages=v0, checkpoint_spikes=5, record=False)
    with pytest.raises(ValueError, match="record=False"):
        vjp(res, np.zeros(3))


def test_a_network_changed_before_the_backward_pass_is_refused():
    params, build, ct, cv, t_max = random_problem(n=20, seed=0)
    net = build(params)
    res = simulate_checkpointed(net, t_max=t_max, initial_voltages=params["initial_voltages"], checkpoint_spikes=5)
    net.connectivity.weights[0] += 0.01          # e.g. an optimiser step before vjp
    with pytest.raises(ValueError, match="different network"):
        vjp(res, ct[:res.n_spikes])
    assert "fingerprint" not in vars(net)        # the hash is memoised only during the passes
