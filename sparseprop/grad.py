"""Exact gradients through the event sequence (DESIGN.md §2, "Backward pass").

A forward run with ``tape=True`` records, per event, the spiker (or input), its clock and which
input set off each spike; `vjp` sweeps that tape backwards in O(K) per spike (Cython, no heap) and
returns dL/d(parameters) for a loss given as dL/d(spike times) and dL/d(final voltages).

Spike times are differentiable while the event order does not change (the gradient of a piecewise
smooth function). A neuron below threshold fires exactly at the instant of the input that lifts it,
so its spike time depends on that input's time, not on the weights: train networks whose spiking
neurons are on their free orbit (LIF drive > 1). In chaotic regimes gradients grow exponentially
with the horizon; clip them (`sparseprop.optim.clip_grad_norm`) or shorten the horizon.
"""
from dataclasses import dataclass

import numpy as np

from sparseprop._core._backward import backward_lif
from sparseprop.inputs import SpikeTrainInput
from sparseprop.simulation import simulate

TAPE_FREE, TAPE_TRIGGERED, TAPE_INPUT, TAPE_POISSON = 0, 1, 2, 3


@dataclass
class Gradients:
    """dL/d(parameter) for one loss.

    Attributes
    ----------
    weights : ndarray (nnz,)
        Recurrent synapses, aligned with ``network.connectivity.weights``.
    input_weights : list of ndarray
        One array per `SpikeTrainInput`, aligned with its ``connectivity.weights``.
    input_times : list of ndarray
        dL/d(input spike time) (per second) for each `SpikeTrainInput` spike.
    drive : ndarray (n,)
        Per-neuron drive I (units of the threshold per tau).
    initial_voltages : ndarray (n,)
    """
    weights: np.ndarray
    input_weights: list
    input_times: list
    drive: np.ndarray
    initial_voltages: np.ndarray


def spike_records(result):
    """Tape record of each recorded spike (aligned with ``result.times``)."""
    kind = result.tape["kind"]
    return np.flatnonzero((kind == TAPE_FREE) | (kind == TAPE_TRIGGERED))


def vjp(result, dL_dtimes=None, dL_dvoltages=None):
    """Vector-Jacobian product: gradients of L given dL/d(spike times) and dL/d(final voltages).

    Parameters
    ----------
    result : SimulationResult
        From ``sparseprop.simulate(..., tape=True)``.
    dL_dtimes : array (n_spikes,), optional
        dL/dt (per second) for each spike in ``result.times``.
    dL_dvoltages : array (n,), optional
        dL/dV for the voltages at ``result.t_end`` (the run must have stopped at ``t_max``).
    """
    tape = getattr(result, "tape", None)
    if tape is None:
        raise ValueError("result: simulate with tape=True to compute gradients")
    net = result.network
    ctx = result.tape_context
    n, tau = net.n, net.tau
    rec = spike_records(result)
    g_time = np.zeros(tape["kind"].shape[0])
    if dL_dtimes is not None:
        d = np.asarray(dL_dtimes, dtype=np.float64)
        if d.shape != (rec.shape[0],):
            raise ValueError(f"dL_dtimes: expected {rec.shape[0]} values (one per spike), got shape {d.shape}")
        g_time[rec] = d
    drive = np.broadcast_to(np.asarray(net.drive, dtype=np.float64), (n,)).copy()
    # the engine's own LIF coefficients (sparseprop/_core/_models.pyx, LIF.bind): q = scale,
    # R = reset; their drive derivatives: q = 1/(I - 1) above threshold (1 below), R = (I - v_r) q
    p = net.bind().params
    q = np.ascontiguousarray(np.broadcast_to(p["scale"], (n,)))
    R = np.ascontiguousarray(np.broadcast_to(p["reset"], (n,)))
    supra = np.broadcast_to(p["free"], (n,)) != 0.0
    dq = np.where(supra, -q * q, 0.0)
    dR = np.where(supra, q * (1.0 - R), 1.0)
    rho = np.broadcast_to(np.exp(np.asarray(net.refractory, dtype=np.float64) / tau), (n,)).copy()

    g_drive = np.zeros(n)
    lam = np.zeros(n)
    st = result.final_state
    if dL_dvoltages is not None:
        if result.metadata.get("stopped_by") != "t_max":
            raise ValueError("dL_dvoltages: final voltages are differentiable only for runs that stop at t_max")
        gv = np.asarray(dL_dvoltages, dtype=np.float64)
        if gv.shape != (n,):
            raise ValueError(f"dL_dvoltages: expected shape ({n},), got {gv.shape}")
        c_end = net.bind().clock_at(result.t_end / tau, st.n_renorm)
        free_now = ~np.isfinite(st.events["refractory_until"]) if st.events else np.ones(n, bool)
        s = st.states
        lam = np.where(free_now, -gv / (q * c_end), 0.0)
        g_drive += np.where(free_now, gv * (1.0 + s * dq / (q * q * c_end)), 0.0)
    kwargs, ev = ctx["kwargs"], ctx["events"]
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
    in_a = ev.get("in_a", empty_i)
    g_w = np.zeros(kwargs["weights"].shape[0])
    g_w_in = np.zeros(ev["in_w"].shape[0] if "in_w" in ev else 0)
    g_in_time = np.zeros(in_a.shape[0])
    backward_lif(tape, kwargs["indptr"], kwargs["indices"], kwargs["weights"], in_a,
                 ev.get("in_b", empty_i), ev.get("in_idx", np.zeros(0, np.int32)), ev.get("in_w", empty_f),
                 q, dq, R, dR, rho, lam, int(st.n_renorm), g_time, tau, g_w, g_w_in, g_drive, g_in_time)
    c0 = ctx["initial_clock"]
    v0 = drive - ctx["initial_states"] / (q * c0)
    g_v0 = -lam * q * c0
    g_drive += lam * c0 * ((drive - v0) * dq + q)
    # split the input gradients per SpikeTrainInput (compiled in order, no delays: CSR order)
    in_w_grads, in_t_grads = [], []
    off_w = 0
    trains = [x for x in net.inputs if isinstance(x, SpikeTrainInput)]
    g_t_by_spike = np.zeros(sum(x.times.shape[0] for x in trains))
    if trains:
        np.add.at(g_t_by_spike, ev["in_spike"], g_in_time)
    off_t = 0
    for x in trains:
        m = x.connectivity.weights.shape[0]
        in_w_grads.append(g_w_in[off_w:off_w + m])
        off_w += m
        k = x.times.shape[0]
        in_t_grads.append(g_t_by_spike[off_t:off_t + k])
        off_t += k
    return Gradients(g_w, in_w_grads, in_t_grads, g_drive, g_v0)


def value_and_grad(loss_fn, network, *, t_max, initial_voltages, **simulate_kwargs):
    """Simulate with taping, evaluate ``loss_fn(result) -> (value, dL_dtimes, dL_dvoltages)`` and
    return ``(value, Gradients, result)``."""
    res = simulate(network, t_max=t_max, initial_voltages=initial_voltages, tape=True, progress=False,
                   **simulate_kwargs)
    value, g_t, g_v = loss_fn(res)
    return value, vjp(res, g_t, g_v), res
