"""Exact gradients through the event sequence (DESIGN.md §2, "Backward pass").

A forward run with ``tape=True`` records, per event, the spiker (or input), its clock and which
input set off each spike (QIF and table models: also each target's state just before each input,
since their input maps are not affine); `vjp` sweeps that tape backwards in O(K) per spike (Cython,
no heap) and returns dL/d(parameters) for a loss given as dL/d(spike times) and dL/d(final
voltages). LIF, QIF (always time-based when taped) and table-model networks (`sp.TableNeuron`, e.g.
EIF): for a table model the input derivatives come from the table's compiled maps (the engine's),
rho = ds'/ds = T'(V + w) dV/dT(r) and ds'/dw = T'(V + w) per applied input; it has no drive
gradient (one table is one drive: ``Gradients.drive`` is None).

Spike times are differentiable while the event order does not change (the gradient of a piecewise
smooth function). A neuron below threshold fires exactly at the instant of the input that lifts it,
so its spike time depends on that input's time, not on the weights: train networks whose spiking
neurons are on their free orbit (LIF drive > 1; every QIF neuron is). In chaotic regimes gradients grow exponentially
with the horizon; clip them (`sparseprop.optim.clip_grad_norm`) or shorten the horizon.

Long runs: the tape grows by about 33 bytes per spike (LIF; QIF and tables 33 + 8 K for K applied
inputs per spike). `simulate_checkpointed` runs the forward
pass without a tape in segments of ``checkpoint_spikes`` spikes and keeps only the state at the
start of each segment; `vjp` then re-simulates the segments one at a time with a tape, last first,
and carries the adjoint across the boundaries. Peak tape memory is one segment's, for the price of
a second forward pass; the gradients are those of the one-shot tape (the same events and the same
arithmetic).
"""
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from sparseprop import _validate as v
from sparseprop._core._backward import backward_sweep
from sparseprop.inputs import SpikeTrainInput
from sparseprop.results import SimulationResult
from sparseprop.simulation import Record, _check_tape, simulate

TAPE_FREE, TAPE_TRIGGERED, TAPE_INPUT, TAPE_POISSON, TAPE_DELIVERY = 0, 1, 2, 3, 4
_EMPTY_I64, _EMPTY_I32, _EMPTY_F = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0)


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
    drive : ndarray (n,) or None
        Per-neuron drive I (units of the threshold per tau). None for table models (a table is
        computed for one drive, which is not a parameter of the network).
    initial_voltages : ndarray (n,)
        dL/dV at the start of the run. For a taped continuation (``simulate(..., state=s,
        tape=True)``): at ``s.t``, with the state held fixed for neurons refractory then (0 here).
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


@dataclass
class Checkpoints:
    """Segment boundaries of a checkpointed run (`simulate_checkpointed`).

    Attributes
    ----------
    checkpoint_spikes : int
        Network spikes per forward call. A segment boundary that would fall inside a cascade of
        simultaneous spikes moves to the end of that cascade (segments then differ from S by the
        cascade's size); a segment that reaches ``t_max`` on a spike also takes the events left
        at that instant.
    states : list
        `NetworkState` at the start of each segment; None for the first (the initial condition).
    spikes_arg, n_spikes, n_recorded : list of int
        Per segment: the ``spikes=`` it was run with, the spikes it produced, the spikes recorded.
    t_max : float or None
    start : dict
        ``simulate`` keywords of the first segment (initial condition) and of every segment
        (``seed_input``, ``engine``).
    record : Record or None
        Spike selection of the forward pass (None: every spike).
    stats : dict
        Filled by `vjp`: ``segments``, ``peak_tape_records``, ``peak_tape_bytes`` (the largest
        segment tape), ``checkpoint_bytes``, ``recompute_s`` (taped re-simulation) and
        ``backward_s`` (sweeps) wall times.
    """
    checkpoint_spikes: int
    states: list
    spikes_arg: list
    n_spikes: list
    n_recorded: list
    t_max: float
    start: dict
    record: object = None
    stats: dict = field(default_factory=dict)

    @property
    def segments(self):
        return len(self.states)

    @property
    def nbytes(self):
        """Memory held by the stored states (bytes)."""
        total = 0
        for s in self.states:
            if s is None:
                continue
            total += s.states.nbytes
            for val in (s.events or {}).values():
                total += getattr(val, "nbytes", 8)
        return total


# ---- one-shot tape --------------------------------------------------------------------------------

class _Coefficients:
    """Per-neuron coefficients of the backward kernel (sparseprop/_core/_backward.pyx).

    LIF, the engine's own (sparseprop/_core/_models.pyx, LIF.bind): q = scale, R = reset; their
    drive derivatives: q = 1/(I - 1) above threshold (1 below), R = (I - v_r) q. QIF (time-based):
    q = sqrt(I), dq = 1/sqrt(I), dR = dP/dI = -P/(2I) for the period P = pi/sqrt(I). Table
    (time-based, model 2): the input derivatives are precomputed per applied input (`_table_inputs`);
    q, dq, R, rho unused, dR = 0 (no drive gradient)."""

    def __init__(self, net):
        n = net.n
        self.n, self.tau = n, net.tau
        self.drive = np.broadcast_to(np.asarray(net.drive, dtype=np.float64), (n,)).copy()
        self.qif = net.model.name == "qif"
        self.table = net.model.name == "table"
        self.time_based = self.qif or self.table
        if self.table:
            self.model = 2
            self.compiled = net.model.compiled
            self.q = self.dq = self.R = self.rho = np.ones(n)
            self.dR = np.zeros(n)
            return
        if self.qif:
            self.model = 1
            a = np.sqrt(self.drive)
            self.q, self.dq = a, 1.0 / a
            self.R = self.rho = np.ones(n)
            self.dR = -np.pi / (2.0 * self.drive * a)
            return
        self.model = 0
        p = net.bind().params
        self.q = np.ascontiguousarray(np.broadcast_to(p["scale"], (n,)))
        self.R = np.ascontiguousarray(np.broadcast_to(p["reset"], (n,)))
        supra = np.broadcast_to(p["free"], (n,)) != 0.0
        self.dq = np.where(supra, -self.q * self.q, 0.0)
        self.dR = np.where(supra, self.q * (1.0 - self.R), 1.0)
        self.rho = np.broadcast_to(np.exp(np.asarray(net.refractory, dtype=np.float64) / net.tau), (n,)).copy()


class _Accumulators:
    def __init__(self, ctx, n):
        ev = ctx["events"]
        self.g_w = np.zeros(ctx["kwargs"]["weights"].shape[0])
        self.g_w_in = np.zeros(ev["in_w"].shape[0] if "in_w" in ev else 0)
        self.g_in_time = np.zeros(ev["in_a"].shape[0] if "in_a" in ev else 0)
        self.g_drive = np.zeros(n)


def _final_adjoint(result, dL_dvoltages, c, g_drive):
    """lam = dL/ds at the end of the run (epoch ``final_state.n_renorm``) from dL/d(final voltages)."""
    lam = np.zeros(c.n)
    if dL_dvoltages is None:
        return lam
    if result.metadata.get("stopped_by") != "t_max":
        raise ValueError("dL_dvoltages: final voltages are differentiable only for runs that stop at t_max")
    gv = np.asarray(dL_dvoltages, dtype=np.float64)
    if gv.shape != (c.n,):
        raise ValueError(f"dL_dvoltages: expected shape ({c.n},), got {gv.shape}")
    st = result.final_state
    c_end = result.network.bind(time_based=c.time_based).clock_at(result.t_end / c.tau, st.n_renorm)
    refr = (st.events or {}).get("refractory_until")
    free_now = ~np.isfinite(np.asarray(refr, dtype=np.float64)) if refr is not None else np.ones(c.n, bool)
    if c.table:
        # V = V(r), r = s - c_end: dV/ds = dV/dT(r)
        r = np.maximum(st.states - c_end, 0.0)
        dvdt = np.asarray(c.compiled.voltage_from_time(np.where(free_now, r, 0.0), derivative=True)[1])
        return np.where(free_now, gv * dvdt, 0.0)
    if c.qif:
        # V = a cot u, u = a D, D = s - c_end, a = sqrt(I): dV/ds = -I / sin^2 u and, with s fixed,
        # dV/dI = cot u / (2a) - D / (2 sin^2 u)
        D = st.states - c_end
        with np.errstate(divide="ignore", invalid="ignore"):
            cot = 1.0 / np.tan(c.q * D)
        inv_sin2 = 1.0 + cot * cot
        lam = np.where(free_now, -gv * c.drive * inv_sin2, 0.0)
        g_drive += np.where(free_now, gv * (0.5 * cot * c.dq - 0.5 * D * inv_sin2), 0.0)
        return lam
    q, dq = c.q, c.dq
    lam = np.where(free_now, -gv / (q * c_end), 0.0)
    g_drive += np.where(free_now, gv * (1.0 + st.states * dq / (q * q * c_end)), 0.0)
    return lam


def _delay_layout(ctx):
    """Synapses delivered at the spike (row j: [indptr[j], now_end[j])) and the run layout of the
    delayed ones, as the engine compiled them (sparseprop.simulation._compile)."""
    kwargs, ev = ctx["kwargs"], ctx["events"]
    indptr = kwargs["indptr"]
    mode = ev.get("delay_mode", 0)
    if mode == 0:
        return indptr[1:], _EMPTY_I64, _EMPTY_I64
    if mode == 1:
        return indptr[:-1], _EMPTY_I64, _EMPTY_I64
    run_ptr, run_end, cls = ev["run_ptr"], ev["run_end"], ev["run_cls"]
    first = np.minimum(run_ptr[:-1], cls.shape[0] - 1)
    has_now = (run_ptr[1:] > run_ptr[:-1]) & (cls[first] < 0)      # delay 0 sorts first in a row
    now_end = np.where(has_now, run_end[first], indptr[:-1]).astype(np.int64)
    return now_end, run_ptr, run_end


def _link_deliveries(tape, ctx, now_end, run_ptr):
    """The tape with each delayed delivery's `trigger` set to the record of the spike that emitted
    it: equal delays keep their order, so the m-th delivery of a run (row j in DELAY_ROW mode) is
    the m-th emission of that run in this tape, after the deliveries already pending at its start."""
    kind = tape["kind"]
    dl = np.flatnonzero(kind == TAPE_DELIVERY)
    if dl.size == 0:
        return tape
    ev, indptr = ctx["events"], ctx["kwargs"]["indptr"]
    spk = np.flatnonzero(kind <= TAPE_TRIGGERED)
    j = tape["src"][spk].astype(np.int64)
    if ev.get("delay_mode") == 1:
        em_key, em_rec = j, spk                                          # one emission per spike
        dl_key = tape["src"][dl].astype(np.int64)
    else:
        lo = run_ptr[j] + (now_end[j] > indptr[j])                       # first delayed run of j
        cnt = run_ptr[j + 1] - lo
        em_rec = np.repeat(spk, cnt)
        em_key = np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(cnt.sum())
        dl_key = run_ptr[tape["src"][dl]] + tape["aux"][dl].astype(np.int64)
    pend = ev.get("pending")                 # deliveries in flight when this (continued) run began
    before = np.zeros(0, np.int64)
    if pend is not None and len(pend[0]):
        pj, pr = np.asarray(pend[1], np.int64), np.asarray(pend[2], np.int64)
        before = pj if ev.get("delay_mode") == 1 else run_ptr[pj] + pr
    # rank of each delivery among the deliveries of its key, minus those pending at the start
    order = np.argsort(dl_key, kind="stable")
    sk = dl_key[order]
    rank = np.empty(dl.size, np.int64)
    rank[order] = np.arange(dl.size) - np.searchsorted(sk, sk, "left")
    rank -= np.searchsorted(np.sort(before), dl_key, "right") - np.searchsorted(np.sort(before), dl_key, "left")
    e_order = np.argsort(em_key, kind="stable")
    first = np.searchsorted(em_key[e_order], dl_key, "left")
    trigger = tape["trigger"].copy()
    ok = rank >= 0
    trigger[dl[ok]] = em_rec[e_order[first[ok] + rank[ok]]]
    trigger[dl[~ok]] = -1
    return dict(tape, trigger=trigger)


def _table_inputs(tape, ctx, now_end, run_ptr, run_end, c):
    """Per applied input of a table-model tape (delivery order, aligned with ``tape["pre"]``):
    rho = ds'/ds and ds'/dw. With r = pre - clock, V = V(r), V' = V + w: V' >= v_spike fires now
    (rho = 0, ds'/dw = 0: s' = clock); else rho = T'(V') dV/dT(r), ds'/dw = T'(V'). The values
    and derivatives are the engine's compiled maps'."""
    kwargs, ev = ctx["kwargs"], ctx["events"]
    indptr, weights = kwargs["indptr"], kwargs["weights"]
    in_a, in_b = ev.get("in_a", _EMPTY_I64), ev.get("in_b", _EMPTY_I64)
    in_w = ev.get("in_w", _EMPTY_F)
    kind, src, aux = tape["kind"], tape["src"].astype(np.int64), tape["aux"]
    nrec = kind.shape[0]
    # each record's targets as a range of a pool of weights: [recurrent | input | Poisson (aux)]
    a0 = np.zeros(nrec, np.int64)
    a1 = np.zeros(nrec, np.int64)
    spk = kind <= TAPE_TRIGGERED
    a0[spk] = indptr[src[spk]]
    a1[spk] = now_end[src[spk]]
    inp = kind == TAPE_INPUT
    off_in = weights.shape[0]
    a0[inp] = in_a[src[inp]] + off_in
    a1[inp] = in_b[src[inp]] + off_in
    dl = np.flatnonzero(kind == TAPE_DELIVERY)
    if dl.size:
        j = src[dl]
        run = aux[dl].astype(np.int64)
        whole = run < 0
        ra = np.where(whole, 0, run + run_ptr[j] if run_ptr.size else 0)
        first = whole | (ra == (run_ptr[j] if run_ptr.size else 0))
        prev = run_end[np.maximum(ra - 1, 0)] if run_end.size else np.zeros_like(ra)
        a0[dl] = np.where(first, indptr[j], prev)
        a1[dl] = np.where(whole, indptr[j + 1], run_end[ra] if run_end.size else 0)
    pois = np.flatnonzero(kind == TAPE_POISSON)
    off_p = off_in + in_w.shape[0]
    a0[pois] = off_p + np.arange(pois.size)
    a1[pois] = a0[pois] + 1
    pool = np.concatenate([weights, in_w, aux[pois]])
    cnt = a1 - a0
    total = int(cnt.sum())
    start = np.cumsum(cnt) - cnt                    # first flat position of each record
    flat_rec = np.repeat(np.arange(nrec), cnt)
    within = np.arange(total) - start[flat_rec]
    keep = np.ones(total, bool)
    if tape["skip_event"].size:
        keep[start[tape["skip_event"]] + tape["skip_pos"]] = False
    rec = flat_rec[keep]
    w = pool[a0[rec] + within[keep]]
    pre = tape["pre"]
    if w.shape[0] != pre.shape[0]:
        raise RuntimeError(f"backward pass: the tape's pre-input states ({pre.shape[0]}) do not match its "
                           f"applied inputs ({w.shape[0]})")
    r = np.maximum(pre - tape["clock"][rec], 0.0)
    cm = c.compiled
    v, dvdt = cm.voltage_from_time(r, derivative=False), cm.voltage_from_time(r, derivative=True)[1]
    v1 = np.asarray(v) + w
    fires = v1 >= cm.table.v_spike
    dtdv = np.asarray(cm.time_to_spike(np.where(fires, cm.table.v_reset, v1), derivative=True)[1])
    rho = np.where(fires, 0.0, dtdv * np.asarray(dvdt))
    dsdw = np.where(fires, 0.0, dtdv)
    return np.ascontiguousarray(rho, dtype=np.float64), np.ascontiguousarray(dsdw, dtype=np.float64)


def _sweep(res, lam, g_time, c, acc):
    """Sweep the tape of one taped run backwards (lam: dL/ds at its end, in units of its final
    epoch; returned in units of its first epoch, ``tape_context["initial_n_renorm"]``)."""
    tape, ctx = res.tape, res.tape_context
    kwargs, ev = ctx["kwargs"], ctx["events"]
    e0 = int(ctx.get("initial_n_renorm", 0))
    # epochs relative to the first: the sweep ends in that epoch's units, not in epoch 0's
    t = tape if e0 == 0 else dict(tape, epoch=(tape["epoch"] - e0).astype(np.int32))
    now_end, run_ptr, run_end = _delay_layout(ctx)
    t = _link_deliveries(t, ctx, now_end, run_ptr)
    if c.table:
        rho, dsdw = _table_inputs(t, ctx, now_end, run_ptr, run_end, c)
        t = dict(t, pre_rho=rho, pre_dsdw=dsdw)
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    backward_sweep(c.model, t, kwargs["indptr"], kwargs["indices"], kwargs["weights"], np.ascontiguousarray(now_end),
                 run_ptr, run_end, ev.get("in_a", _EMPTY_I64),
                 ev.get("in_b", _EMPTY_I64), ev.get("in_idx", _EMPTY_I32), ev.get("in_w", _EMPTY_F), c.q, c.dq,
                 c.R, c.dR, c.rho, lam, int(res.final_state.n_renorm) - e0, g_time, c.tau, acc.g_w, acc.g_w_in,
                 acc.g_drive, acc.g_in_time)
    return lam


def _gradients(res, lam, c, acc):
    """Add the initial-state terms (lam = dL/ds at the start of taped run `res`) and split the
    input gradients."""
    net, ctx = res.network, res.tape_context
    ev = ctx["events"]
    c0 = ctx["initial_clock"]
    if res.t_start != 0.0:
        # a continuation: the state holds for any time after its last event; V at t_start
        c0 = net.bind(time_based=c.time_based).clock_at(res.t_start / c.tau, int(ctx["initial_n_renorm"]))
    refr = ev.get("refractory_until")
    free0 = ~np.isfinite(np.asarray(refr, dtype=np.float64)) if refr is not None else np.ones(c.n, bool)
    if c.table:
        # s0 = c0 + T(V0): ds0/dV0 = T'(V0)
        # (V0 read back from the state: at the start of a continuation this is V at t_start)
        v0 = np.asarray(c.compiled.voltage_from_time(np.maximum(ctx["initial_states"] - c0, 0.0)))
        dtdv = np.asarray(c.compiled.time_to_spike(np.where(free0, v0, c.compiled.table.v_reset), derivative=True)[1])
        g_v0 = np.where(free0, lam * dtdv, 0.0)
    elif c.qif:
        # s0 = c0 + atan2(a, V0)/a (a = sqrt(I)), u0 = a (s0 - c0): ds0/dV0 = -sin^2 u0 / I and,
        # with V0 fixed, ds0/dI = sin u0 cos u0 / (2 I a) - (s0 - c0) / (2I)
        D0 = ctx["initial_states"] - c0
        u0 = c.q * D0
        g_v0 = np.where(free0, -lam * np.sin(u0) ** 2 / c.drive, 0.0)
        acc.g_drive += np.where(free0, lam * (np.sin(u0) * np.cos(u0) * c.dq - D0) / (2.0 * c.drive), 0.0)
    else:
        q = c.q
        v0 = c.drive - ctx["initial_states"] / (q * c0)
        g_v0 = np.where(free0, -lam * q * c0, 0.0)
        acc.g_drive += np.where(free0, lam * c0 * ((c.drive - v0) * c.dq + q), 0.0)
    # the engine's synapse order (rows sorted by delay) back to the user's
    g_w = acc.g_w
    if "syn_order" in ev:
        g_w = np.empty_like(acc.g_w)
        g_w[ev["syn_order"]] = acc.g_w
    g_w_in = acc.g_w_in
    if "in_order" in ev:
        g_w_in = np.empty_like(acc.g_w_in)
        g_w_in[ev["in_order"]] = acc.g_w_in
    # split the input gradients per SpikeTrainInput (compiled in order)
    in_w_grads, in_t_grads = [], []
    trains = [x for x in net.inputs if isinstance(x, SpikeTrainInput)]
    g_t_by_spike = np.zeros(sum(x.times.shape[0] for x in trains))
    if trains:
        np.add.at(g_t_by_spike, ev["in_spike"], acc.g_in_time)
    off_w = off_t = 0
    for x in trains:
        m = x.connectivity.weights.shape[0]
        in_w_grads.append(g_w_in[off_w:off_w + m])
        off_w += m
        k = x.times.shape[0]
        in_t_grads.append(g_t_by_spike[off_t:off_t + k])
        off_t += k
    return Gradients(g_w, in_w_grads, in_t_grads, None if c.table else acc.g_drive, g_v0)


def vjp(result, dL_dtimes=None, dL_dvoltages=None):
    """Vector-Jacobian product: gradients of L given dL/d(spike times) and dL/d(final voltages).

    Parameters
    ----------
    result : SimulationResult
        From ``sparseprop.simulate(..., tape=True)`` or from `simulate_checkpointed` (then the
        segments are re-simulated with a tape one at a time, last first: peak memory is one
        segment's tape; ``result.checkpoints.stats`` reports it).
    dL_dtimes : array (n_spikes,), optional
        dL/dt (per second) for each spike in ``result.times``.
    dL_dvoltages : array (n,), optional
        dL/dV for the voltages at ``result.t_end`` (the run must have stopped at ``t_max``).

    Returns
    -------
    Gradients

    Notes
    -----
    For a taped continuation (``simulate(..., state=s, tape=True)``) the gradients are those of
    that run alone: the starting state is an input (``initial_voltages`` holds dL/dV at ``s.t``)
    and a spike due at ``s.t`` because of an earlier input passes no gradient to that input.
    `simulate_checkpointed` chains such runs with boundaries outside cascades of simultaneous
    spikes, so that nothing is lost there.
    """
    if getattr(result, "checkpoints", None) is not None:
        return _vjp_checkpointed(result, dL_dtimes, dL_dvoltages)
    tape = getattr(result, "tape", None)
    if tape is None:
        raise ValueError("result: simulate with tape=True (or use grad.simulate_checkpointed) to compute gradients")
    net, ctx = result.network, result.tape_context
    c = _Coefficients(net)
    rec = spike_records(result)
    g_time = np.zeros(tape["kind"].shape[0])
    if dL_dtimes is not None:
        d = np.asarray(dL_dtimes, dtype=np.float64)
        if d.shape != (rec.shape[0],):
            raise ValueError(f"dL_dtimes: expected {rec.shape[0]} values (one per spike), got shape {d.shape}")
        g_time[rec] = d
    acc = _Accumulators(ctx, c.n)
    lam = _final_adjoint(result, dL_dvoltages, c, acc.g_drive)
    lam = _sweep(result, lam, g_time, c, acc)
    return _gradients(result, lam, c, acc)


# ---- checkpointed: bounded tape memory ---------------------------------------------------------------

@contextmanager
def _fingerprint_once(network):
    """Hash the network once for a chain of continued runs: `simulate` hashes every array of the
    network (twice per continued run; seconds at N = 10^6, K = 100). Computed afresh at each entry,
    so a network changed between the forward pass and `vjp` is still refused."""
    if "fingerprint" in vars(network):
        yield
        return
    fp = network.fingerprint()
    network.fingerprint = lambda: fp
    try:
        yield
    finally:
        del network.fingerprint


def _forward_record(record):
    if record is True or record is False:
        return None if record else False
    if not isinstance(record, Record):
        raise TypeError("record: expected True, False or a sparseprop.Record")
    if record.max_spikes or record.voltages is not None:
        raise ValueError("record: checkpointed gradients take Record(neurons=..., t_start=..., t_stop=...) "
                         "only (no memory cap, no voltage sampling)")
    return record


def simulate_checkpointed(network, spikes=None, t_max=None, *, checkpoint_spikes, seed_ic=1, seed_input=1,
                          initial_phases=None, initial_voltages=None, engine="tree", record=True):
    """Simulate without a tape, keeping the state at every ``checkpoint_spikes`` spikes, so that
    `vjp` can compute exact gradients with the memory of one segment's tape.

    Parameters
    ----------
    network, spikes, t_max, seed_ic, seed_input, initial_phases, initial_voltages, engine
        As in `sparseprop.simulate` (the network must be one the backward pass covers: LIF, QIF
        or a table model, explicit connectivity, no delays; QIF with a per-neuron drive array or event
        sources, i.e. time-based even without a tape).
    checkpoint_spikes : int
        Network spikes per segment, S >= 1.
    record : bool or Record
        Spikes kept for the loss: True (all), False (none: a loss on final voltages only) or
        ``Record(neurons=..., t_start=..., t_stop=...)``. `dL_dtimes` is aligned with the kept
        spikes.

    Returns
    -------
    SimulationResult
        The whole run as one result (``times``, ``neurons``, ``final_state``, ...), the same as
        ``simulate`` would return, with ``result.checkpoints`` (`Checkpoints`) and no tape.

    Notes
    -----
    Memory and time, for a run of M spikes on n neurons. One-shot taping holds 33 bytes per spike
    (33 M; QIF tapes add 8 bytes per applied input, 33 + 8K per spike: read 33 as that below). Here the forward pass keeps one state per segment boundary, b n bytes each (b = 8, or
    16 with refractoriness or inputs; M / S of them) and `vjp` holds one segment's tape (33 S
    bytes, plus the given-input and Poisson events in that segment, plus the rest of a cascade of
    simultaneous spikes the boundary would have cut); the recorded spikes (12
    bytes each) are kept in both cases. S = sqrt(b n M / 33) minimises the sum, 2 sqrt(33 b n M)
    bytes: for n = 10^5 and M = 10^8 spikes, 0.1 GB instead of 3.3 GB. The price is one more
    forward pass: `vjp` re-simulates every segment with a tape (and the network's fingerprint
    is hashed once per pass), about 1.5-2 times the one-shot forward + backward time.

    The gradients are the one-shot tape's, bit for bit: each segment continues the previous one
    exactly (see ``simulate(..., state=)``), the adjoint crosses a boundary in the units of that
    boundary's renormalisation epoch of the clock, and no boundary separates a spike set off by
    an input from that input (the boundary moves to the end of the cascade).
    """
    _check_tape(network, None, True)
    if network.model.name == "qif" and network.bind().representation != "time":
        raise ValueError("network: checkpointed gradients of a QIF network need its time-based engine; give the "
                         "drive per neuron (np.full(n, drive)), or use simulate(..., tape=True)")
    c = network.connectivity
    if network.delay > 0 or (c.delays is not None and np.any(c.delays > 0)):
        raise ValueError("network: checkpointed gradients do not support recurrent transmission delays yet "
                         "(deliveries in flight at a boundary); use simulate(..., tape=True)")
    S = v.integer("checkpoint_spikes", checkpoint_spikes, minimum=1)
    if spikes is None and t_max is None:
        raise ValueError("spikes, t_max: give at least one stopping condition")
    if spikes is not None:
        spikes = v.integer("spikes", spikes, minimum=1)
    rec = _forward_record(record)
    start = {"seed_ic": seed_ic,       # copies: vjp re-simulates the first segment from them
             "initial_phases": None if initial_phases is None else np.array(initial_phases, dtype=np.float64),
             "initial_voltages": None if initial_voltages is None else np.array(initial_voltages, dtype=np.float64)}
    every = {"seed_input": seed_input, "engine": engine, "progress": False}
    states, spikes_arg, n_spikes, n_recorded, times, ids = [], [], [], [], [], []
    state, remaining, wall, events, r = None, spikes, 0.0, 0, None
    with _fingerprint_once(network):
        while True:
            want = S if remaining is None else min(S, remaining)
            kw = dict(every, **(start if state is None else {"state": state}))
            # every spike is recorded (transiently, one segment at a time): cascades cut by a
            # boundary are found from the spike times; `record` selects what is kept
            r = simulate(network, want, t_max, **kw)
            if r.interrupted:
                raise KeyboardInterrupt
            by = r.metadata["stopped_by"]
            if (by == "spikes" and t_max is not None and r.final_state.t >= t_max
                    and (remaining is None or remaining > r.n_spikes)):
                # the segment ended on a spike at exactly t_max: `simulate` cannot continue a run at
                # its end time, so this last segment also takes the events left at that instant
                want = remaining
                r = simulate(network, want, t_max, **kw)
                by = r.metadata["stopped_by"]
            if rec is not False:
                keep = _recorded(r, rec)
                times.append(r.times[keep])
                ids.append(r.neurons[keep])
            kept = 0 if rec is False else times[-1].shape[0]
            if state is not None and r.n_spikes and r.times[0] == state.t:
                # The previous segment ended inside a cascade of simultaneous spikes: a neuron
                # lifted to threshold there fires here, set off by an input there. Move the boundary
                # to the end of the cascade (c spikes on; the next spike comes later, so no neuron
                # is at threshold then), so that the gradient of that spike reaches its input.
                c = int(np.searchsorted(r.times, state.t, side="right"))
                kept_c = 0 if rec is False else int(np.count_nonzero(keep[:c]))
                n_spikes[-1] += c
                n_recorded[-1] += kept_c
                if c < r.n_spikes:
                    spikes_arg[-1] += c
                    state = simulate(network, c, t_max, record=False, **dict(every, state=state)).final_state
                    states.append(state)
                    spikes_arg.append(None if want is None else want - c)
                    n_spikes.append(r.n_spikes - c)
                    n_recorded.append(kept - kept_c)
                else:
                    # the whole call was at that instant: the previous segment takes all of it
                    spikes_arg[-1] = None if want is None else spikes_arg[-1] + want
            else:
                states.append(state)
                spikes_arg.append(want)
                n_spikes.append(r.n_spikes)
                n_recorded.append(kept)
            wall += r.wall_s
            events += r.metadata.get("events", 0)
            state = r.final_state
            if remaining is not None:
                remaining -= r.n_spikes
            if by != "spikes" or remaining == 0:
                break
    cp = Checkpoints(S, states, spikes_arg, n_spikes, n_recorded, t_max, dict(start, **every),
                     None if rec is False else rec)
    meta = dict(r.metadata, seed_ic=seed_ic, spikes_requested=spikes, t_max=t_max, events=events,
                checkpoint_spikes=S, segments=len(states), recorded=rec is not False)
    if isinstance(rec, Record) and (rec.neurons is not None or np.isfinite(rec.t_start) or np.isfinite(rec.t_stop)):
        meta["record"] = {"neurons": None if rec.neurons is None else int(rec.neurons.size),
                          "t_start": rec.t_start if np.isfinite(rec.t_start) else None,
                          "t_stop": rec.t_stop if np.isfinite(rec.t_stop) else None}
    res = SimulationResult(np.concatenate(times) if times else None, np.concatenate(ids) if ids else None,
                           network.n, 0.0, r.t_end, sum(n_spikes), wall, False, r.final_state, meta,
                           network=network)
    if isinstance(rec, Record) and rec.neurons is not None:
        res.recorded_neurons = rec.neurons
    res.checkpoints = cp
    return res


def _segment(network, cp, k):
    """Segment k re-simulated with a tape, recording every spike."""
    kw = {key: cp.start[key] for key in ("seed_input", "engine", "progress")}
    if k == 0:
        kw.update({key: cp.start[key] for key in ("seed_ic", "initial_phases", "initial_voltages")})
    else:
        kw["state"] = cp.states[k]
    return simulate(network, cp.spikes_arg[k], cp.t_max, tape=True, **kw)


def _recorded(seg, record):
    """Which spikes of a taped segment (recording all) the forward pass with `record` kept."""
    keep = np.ones(seg.n_spikes, bool)
    if record is None:
        return keep
    if record.neurons is not None:
        keep &= np.isin(seg.neurons, record.neurons)
    return keep & (seg.times >= record.t_start) & (seg.times <= record.t_stop)


def _vjp_checkpointed(result, dL_dtimes, dL_dvoltages):
    cp, net = result.checkpoints, result.network
    c = _Coefficients(net)
    d = None
    if dL_dtimes is not None:
        if result.times is None:
            raise ValueError("dL_dtimes: this run kept no spikes (record=False); give dL_dvoltages only")
        d = np.asarray(dL_dtimes, dtype=np.float64)
        if d.shape != (result.times.shape[0],):
            raise ValueError(f"dL_dtimes: expected {result.times.shape[0]} values (one per recorded spike), "
                             f"got shape {d.shape}")
    ends = np.cumsum(cp.n_recorded)
    acc = lam = None
    peak_records = peak_bytes = 0
    t_sim = t_back = 0.0
    with _fingerprint_once(net):
        for k in range(cp.segments - 1, -1, -1):
            t0 = time.perf_counter()
            seg = _segment(net, cp, k)
            t_sim += time.perf_counter() - t0
            end = cp.states[k + 1] if k + 1 < cp.segments else result.final_state
            if (seg.n_spikes != cp.n_spikes[k] or seg.final_state.clock != end.clock
                    or seg.final_state.n_renorm != end.n_renorm):
                raise RuntimeError(f"checkpoint segment {k}: the taped re-simulation differs from the forward "
                                   f"pass ({seg.n_spikes} vs {cp.n_spikes[k]} spikes); was the network changed?")
            t0 = time.perf_counter()
            if acc is None:
                acc = _Accumulators(seg.tape_context, c.n)
                lam = _final_adjoint(result, dL_dvoltages, c, acc.g_drive)
            tape = seg.tape
            peak_records = max(peak_records, tape["kind"].shape[0])
            peak_bytes = max(peak_bytes, sum(a.nbytes for a in tape.values()))
            g_time = np.zeros(tape["kind"].shape[0])
            if d is not None and cp.n_recorded[k]:
                rec = spike_records(seg)
                keep = _recorded(seg, cp.record)
                if keep.sum() != cp.n_recorded[k]:
                    raise RuntimeError(f"checkpoint segment {k}: recorded spikes differ from the forward pass")
                g_time[rec[keep]] = d[ends[k] - cp.n_recorded[k]:ends[k]]
            if k and np.any((tape["kind"] == TAPE_TRIGGERED) & (tape["trigger"] == -2)):
                # cannot happen: simulate_checkpointed moves boundaries out of cascades
                raise RuntimeError(f"checkpoint segment {k}: it starts inside a cascade of simultaneous "
                                   "spikes, whose gradient would be cut")
            lam = _sweep(seg, lam, g_time, c, acc)
            t_back += time.perf_counter() - t0
            if k:
                del seg, tape
    out = _gradients(seg, lam, c, acc)
    cp.stats = {"segments": cp.segments, "peak_tape_records": int(peak_records), "peak_tape_bytes": int(peak_bytes),
                "checkpoint_bytes": int(cp.nbytes), "recompute_s": t_sim, "backward_s": t_back}
    return out


def value_and_grad(loss_fn, network, *, t_max, initial_voltages, checkpoint_spikes=None, **simulate_kwargs):
    """Simulate with taping, evaluate ``loss_fn(result) -> (value, dL_dtimes, dL_dvoltages)`` and
    return ``(value, Gradients, result)``.

    With ``checkpoint_spikes=S`` the run is taped segment by segment (`simulate_checkpointed`):
    the same gradients with the memory of one S-spike tape, for one more forward pass.
    """
    if checkpoint_spikes is None:
        res = simulate(network, t_max=t_max, initial_voltages=initial_voltages, tape=True, progress=False,
                       **simulate_kwargs)
    else:
        simulate_kwargs.pop("progress", None)
        res = simulate_checkpointed(network, t_max=t_max, initial_voltages=initial_voltages,
                                    checkpoint_spikes=checkpoint_spikes, **simulate_kwargs)
    value, g_t, g_v = loss_fn(res)
    return value, vjp(res, g_t, g_v), res
