"""Independent brute-force reference simulator for LIF / QIF networks WITH event sources:
transmission delays (homogeneous or per synapse), absolute refractoriness and given external
input events.

This module shares NO code with ``sparseprop`` (nor with ``tests/oracle.py``, whose approach it
follows). From a network object it reads only the plain description: ``net.n``, ``net.drive``,
``net.tau`` (a float or a per-neuron array), ``net.model.name`` (and ``net.model.v_reset`` for
LIF; for ``"mixed"`` the ``net.model.parts`` triples ``(model, start, stop)`` and each part's
``name`` / ``v_reset``), ``net.targets(j)``,
``net.delay``, ``net.refractory``, the per-synapse ``delays`` of an explicit connectivity and
the ``SpikeTrainInput`` items of ``net.inputs`` (their times, sources and projection CSR).
Poisson inputs cannot be reproduced (their random stream is the engine's); the Poisson tests
check statistics instead.

Method (deliberately naive, in VOLTAGES, never the engine's coordinates):

* every neuron i has its own model (LIF or QIF; a LIF neuron its own reset), drive I_i and
  membrane time constant tau_i (seconds); all of them may be shared scalars;
* state of neuron i: a voltage ``V[i]`` valid at time ``T[i]`` (seconds) and a flag
  ``refr[i]`` (refractory). The free flow from ``(V, T)`` to ``t >= T`` is the closed form

  - LIF  tau_i dV/dt = -V + I_i:    V(t) = I_i + (V - I_i) exp(-(t - T)/tau_i)
  - QIF  tau_i dV/dt = V^2 + I_i:   V(t) = sqrt(I_i) tan(atan(V/sqrt(I_i)) + sqrt(I_i)(t - T)/tau_i)

* ``nxt[i]``: the time of i's next *neuron event*: the end of its refractory period, or its
  threshold crossing computed analytically from ``(V, T)``

  - LIF (threshold 1):  T + tau_i ln((I_i - V)/(I_i - 1)) if I_i > 1 (and V < 1); T if V >= 1;
    else +inf
  - QIF (spike at +inf): T + tau_i (pi/2 - atan(V/sqrt(I_i)))/sqrt(I_i) for I_i > 0; for
    I_i = -a^2 <= 0 (excitable) T + tau_i ln((V + a)/(V - a))/(2a) if V > a (T + tau_i/V for
    a = 0), else +inf (flow: r = (V - a)/(V + a) grows as exp(2 a t/tau_i))

* every other event (given inputs, scheduled delayed deliveries) sits in ONE plain Python list
  kept sorted by ``(time, class, seq)`` (``bisect.insort``); the next event is the earliest of the
  list head and ``min(nxt)`` (ties: lowest neuron id, ``np.argmin``).

Event semantics (public API contract, notes/API3.md):

* at equal instants: given inputs (class 0), [Poisson (class 1): not reproducible here],
  delayed deliveries (class 2), then neuron events by increasing id (class 3). Within a class:
  given inputs in (time-stable) list order, i.e. input train, spike, synapse row order;
  deliveries in scheduling order (spike order, then row order);
* a spike of j at t: record (t, j); reset j (refractory: clamp at the reset until
  ``t + refractory``, the refractory end is a neuron event at that time); deliver j's zero-delay
  synapses at once in row order; schedule each other synapse at ``t + delay`` (synapses of one
  spike with equal delay form one delivery, in row order);
* an input of weight w to neuron i at t: ignored when i is refractory (its refractory-end event
  has not been processed yet, so an input at exactly the end instant is ignored too: sources
  precede neuron events); otherwise ``V[i] <- V_i(t) + w``, and a LIF neuron at ``V >= 1`` fires
  at t (``nxt[i] = t``) unless later inputs of the same instant (processed before its turn) take
  it back below threshold: same-instant inputs are summed;
* after its refractory period the neuron flows freely from the reset.

The contract does not say what happens when a neuron that has ALREADY fired at the current
instant is driven past threshold again at that instant; the oracle raises
:class:`AmbiguousCascade`, so tests must use networks where it cannot happen.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AmbiguousCascade", "OracleResult", "simulate", "simulate_net", "spike_train_events",
           "network_inputs", "network_models", "network_tau", "lif_flow", "INPUT", "POISSON", "DELIVERY", "NEURON"]

HALF_PI = 0.5 * math.pi
INPUT, POISSON, DELIVERY, NEURON = 0, 1, 2, 3     # event classes, in tie order


class AmbiguousCascade(RuntimeError):
    """A neuron that already fired at this instant was driven past threshold again."""


@dataclass
class OracleResult:
    times: np.ndarray            # float64, seconds
    neurons: np.ndarray          # int64
    final_voltages: np.ndarray   # voltages at t_end (refractory neurons: their reset)
    t_end: float
    sample_times: np.ndarray     # the sample times that were reached
    voltages: np.ndarray         # (len(sample_times), len(sample_ids))
    sample_refractory: np.ndarray  # same shape, True where the neuron was refractory (V = reset)
    inputs_applied: int          # inputs (given or delivered) that changed a voltage
    inputs_ignored: int          # inputs dropped (refractory target)


def lif_flow(v, drive, dt, tau):
    """LIF free flow of voltage v over dt seconds (closed form)."""
    return drive + (v - drive) * math.exp(-dt / tau)


def qif_excitable_flow(v, drive, dt, tau):
    """QIF free flow tau dV/dt = V^2 + I for I <= 0 (excitable: rest -sqrt(-I), threshold
    +sqrt(-I)), closed form; v may be -inf (the reset)."""
    if drive == 0.0:                        # 1/V(t) = 1/V - dt/tau
        inv = (0.0 if v == -math.inf else 1.0 / v) - dt / tau
        return math.inf if inv == 0.0 else 1.0 / inv
    a = math.sqrt(-drive)
    if v == -a:
        return v
    # r = (V - a)/(V + a) grows as exp(2 a t / tau); V = a (1 + r)/(1 - r)
    r0 = 1.0 if v == -math.inf else (v - a) / (v + a)
    r = r0 * math.exp(2.0 * a * dt / tau)
    return math.inf if r == 1.0 else a * (1.0 + r) / (1.0 - r)


def qif_excitable_time_to_spike(v, drive, tau):
    """Time (s) for the excitable (I <= 0) QIF free flow from v to +inf; inf if it never gets
    there (v at or below the threshold sqrt(-I))."""
    if drive == 0.0:
        return tau / v if v > 0.0 else math.inf
    a = math.sqrt(-drive)
    if not v > a:
        return math.inf
    return tau * math.log((v + a) / (v - a)) / (2.0 * a)


def simulate(model, n, drive, tau, targets, v0, *, delays=None, delay=0.0, refractory=0.0,
             inputs=(), spikes=None, t_max=None, v_reset=0.0, sample_times=None, sample_ids=None):
    """Brute-force event-driven simulation with delays, refractoriness and given inputs.

    Parameters
    ----------
    model : {"lif", "qif"} or a sequence of n such names (one model per neuron)
    n : int
    drive : float or (n,) array (dimensionless I; QIF neurons with I <= 0 are excitable: they
        rest at -sqrt(-I) and fire only when inputs lift them above +sqrt(-I))
    tau : float or (n,) array, membrane time constant(s) (s)
    targets : callable j -> (indices, weights) of j's synapses in row (delivery) order
    v0 : (n,) initial voltages at t = 0
    delays : None or callable j -> (k_j,) per-synapse delays (s) of row j; None: ``delay`` for all
    delay : homogeneous delay (s) used when ``delays`` is None
    refractory : float or (n,) absolute refractory periods (s)
    inputs : iterable of (time_s, target, weight); equal times keep their list order
    spikes, t_max : stop after this many spikes / process events with time <= t_max only
    v_reset : float or (n,) array, LIF reset voltage(s) (QIF neurons reset to -inf; their
        entries are ignored)
    sample_times, sample_ids : voltages of neurons ``sample_ids`` at the sorted ``sample_times``
        (events AT a sample time are processed before it is taken)
    """
    names = [model] * n if isinstance(model, str) else list(model)
    if len(names) != n:
        raise ValueError(f"model: {len(names)} names for {n} neurons")
    names = [str(m).lower() for m in names]
    if any(m not in ("lif", "qif") for m in names):
        raise ValueError(model)
    if spikes is None and t_max is None:
        raise ValueError("need spikes or t_max")
    is_lif = [m == "lif" for m in names]
    drv = np.broadcast_to(np.asarray(drive, dtype=float), (n,)).astype(float).tolist()
    sq = [math.sqrt(x) if x > 0 else math.nan for x in drv]
    ref = np.broadcast_to(np.asarray(refractory, dtype=float), (n,)).astype(float).tolist()
    taus = np.broadcast_to(np.asarray(tau, dtype=float), (n,)).astype(float).tolist()
    assert all(x > 0 and math.isfinite(x) for x in taus), "tau must be positive and finite"
    vres = np.broadcast_to(np.asarray(v_reset, dtype=float), (n,)).astype(float).tolist()
    resets = [float(vres[i]) if is_lif[i] else -math.inf for i in range(n)]
    V = np.array(v0, dtype=float).tolist()
    assert len(V) == n
    T = [0.0] * n
    refr = [False] * n
    nxt = np.full(n, math.inf)

    def crossing(i):
        v = V[i]
        if is_lif[i]:
            if v >= 1.0:
                return T[i]
            if drv[i] > 1.0:
                return T[i] + taus[i] * math.log((drv[i] - v) / (drv[i] - 1.0))
            return math.inf
        if drv[i] > 0.0:
            return T[i] + taus[i] * (HALF_PI - math.atan(v / sq[i])) / sq[i]
        return T[i] + qif_excitable_time_to_spike(v, drv[i], taus[i])

    def voltage_at(i, t):
        if refr[i]:
            return resets[i]
        dt = t - T[i]
        assert dt >= -1e-9 * max(1.0, abs(t)), (i, t, T[i])
        if dt <= 0.0:
            return V[i]
        if is_lif[i]:
            return lif_flow(V[i], drv[i], dt, taus[i])
        if drv[i] <= 0.0:
            return qif_excitable_flow(V[i], drv[i], dt, taus[i])
        ang = min(math.atan(V[i] / sq[i]) + sq[i] * dt / taus[i], HALF_PI)
        return sq[i] * math.tan(ang)

    for i in range(n):
        nxt[i] = crossing(i)

    row_cache = {}

    def row(j):
        if j not in row_cache:
            idx, w = targets(j)
            idx = np.asarray(idx).tolist()
            w = np.asarray(w, dtype=float).tolist()
            d = [float(delay)] * len(idx) if delays is None else np.asarray(delays(j), dtype=float).tolist()
            assert len(d) == len(idx) == len(w)
            now = [(i, x) for i, x, dd in zip(idx, w, d) if dd == 0.0]
            later = {}
            for i, x, dd in zip(idx, w, d):
                if dd != 0.0:
                    later.setdefault(dd, []).append((i, x))
            row_cache[j] = (now, list(later.items()))
        return row_cache[j]

    # the plain sorted list of pending non-neuron events: (time, class, seq, payload)
    pending = [(float(t), INPUT, k, ((int(i), float(w)),))
               for k, (t, i, w) in enumerate(inputs)]
    pending.sort(key=lambda e: (e[0], e[1], e[2]))
    seq = len(pending)

    samples = np.asarray([] if sample_times is None else sample_times, dtype=float)
    sids = np.asarray([] if sample_ids is None else sample_ids, dtype=np.int64).tolist()
    volts, vrefr = [], []
    stats = {"applied": 0, "ignored": 0}

    times, neurons = [], []
    fired_now: set[int] = set()
    t_now = -math.inf
    limit = math.inf if spikes is None else int(spikes)
    stopped_by_count = False

    def apply(i, w, t):
        if refr[i] or (not is_lif[i] and nxt[i] <= t):   # a QIF neuron at its spike instant: V = inf
            stats["ignored"] += 1
            return
        stats["applied"] += 1
        V[i] = voltage_at(i, t) + w
        T[i] = t
        if is_lif[i] and V[i] >= 1.0 and i in fired_now:
            raise AmbiguousCascade(f"neuron {i} re-driven past threshold at t={t}")
        nxt[i] = crossing(i)

    def take_samples(upto_exclusive):
        while len(volts) < samples.shape[0] and samples[len(volts)] < upto_exclusive:
            s = float(samples[len(volts)])
            volts.append([voltage_at(i, s) for i in sids])
            vrefr.append([refr[i] for i in sids])

    while True:
        if len(times) >= limit:
            stopped_by_count = True
            break
        j = int(np.argmin(nxt))
        tn = float(nxt[j])
        te = min(tn, pending[0][0]) if pending else tn
        if t_max is not None and te > t_max:
            break
        if te == math.inf:
            break
        take_samples(te)
        if te > t_now:
            fired_now.clear()
            t_now = te
        if pending and pending[0][0] <= tn:          # sources before neurons at equal instants
            t, _, _, payload = pending.pop(0)
            for i, w in payload:
                apply(i, w, t)
            continue
        t = tn
        if refr[j]:                                  # end of refractoriness: flow from the reset
            refr[j] = False
            nxt[j] = crossing(j)
            continue
        times.append(t)
        neurons.append(j)
        fired_now.add(j)
        V[j] = resets[j]
        if ref[j] > 0.0:
            refr[j] = True
            T[j] = t + ref[j]
            nxt[j] = T[j]
        else:
            T[j] = t
            nxt[j] = crossing(j)
        now, later = row(j)
        for i, w in now:
            apply(i, w, t)
        for d, syn in later:
            bisect.insort(pending, (t + d, DELIVERY, seq, tuple(syn)), key=lambda e: (e[0], e[1], e[2]))
            seq += 1

    if stopped_by_count:
        t_end = t_now
    else:
        t_end = t_max if t_max is not None else t_now
        take_samples(math.inf if t_max is None else np.nextafter(t_max, math.inf))
    final = np.array([resets[i] if refr[i] else voltage_at(i, max(t_end, T[i])) for i in range(n)])
    return OracleResult(np.array(times, dtype=float), np.array(neurons, dtype=np.int64), final,
                        t_end, samples[:len(volts)].copy(),
                        np.array(volts, dtype=float).reshape(len(volts), len(sids)),
                        np.array(vrefr, dtype=bool).reshape(len(volts), len(sids)),
                        stats["applied"], stats["ignored"])


# --------------------------------------------------------------------------------------
# Reading a sparseprop network description
# --------------------------------------------------------------------------------------
def _rows(c):
    indptr = np.asarray(c.indptr)
    return [(int(indptr[j]), int(indptr[j + 1])) for j in range(indptr.shape[0] - 1)]


def spike_train_events(times, sources, indptr, indices, weights, delays, default_delay):
    """(arrival time s, target, weight) of every synapse of every input spike, in tie order:
    spike order, then the source's row order; arrival = time + delay (the synapse's own, else
    ``default_delay``)."""
    out = []
    for t, s in zip(np.asarray(times, dtype=float).tolist(), np.asarray(sources).tolist()):
        a, b = int(indptr[s]), int(indptr[s + 1])
        for k in range(a, b):
            d = float(delays[k]) if delays is not None else float(default_delay)
            out.append((t + d, int(indices[k]), float(weights[k])))
    return out


def network_inputs(net):
    """All given input events of ``net.inputs`` (SpikeTrainInput items, in list order)."""
    events = []
    for inp in getattr(net, "inputs", ()):
        kind = getattr(inp, "kind", None)
        if kind == "poisson":
            raise NotImplementedError("oracle: Poisson inputs are random streams of the engine; "
                                      "test them statistically")
        c = inp.connectivity
        events.extend(spike_train_events(inp.times, inp.sources, c.indptr, c.indices, c.weights,
                                         c.delays, net.delay))
    events.sort(key=lambda e: e[0])     # stable: equal arrival times keep their order
    return events


def network_models(net):
    """Per-neuron model names and LIF resets of ``net``: ``(names, v_reset)``, each a plain
    string/float when the network has one model, else lists of length ``net.n`` read from
    ``net.model.parts`` (``(model, start, stop)`` triples in id order, tiling ``0..n``)."""
    name = str(net.model.name).lower()
    if name != "mixed":
        return name, float(getattr(net.model, "v_reset", 0.0)) if name == "lif" else 0.0
    n = int(net.n)
    names, resets = [None] * n, [0.0] * n
    expect = 0
    for m, start, stop in net.model.parts:
        start, stop = int(start), int(stop)
        assert start == expect and stop > start, net.model.parts
        expect = stop
        pname = (m if isinstance(m, str) else str(m.name)).lower()
        vr = 0.0 if isinstance(m, str) or pname != "lif" else float(getattr(m, "v_reset", 0.0))
        for i in range(start, stop):
            names[i] = pname
            resets[i] = vr
    assert expect == n, (net.model.parts, n)
    return names, resets


def network_tau(net):
    """``net.tau`` as a float (shared) or a float64 array of shape (n,)."""
    tau = np.asarray(net.tau, dtype=float)
    if tau.ndim == 0:
        return float(tau)
    assert tau.shape == (int(net.n),), tau.shape
    return tau.copy()


def simulate_net(net, v0, spikes=None, t_max=None, *, extra_inputs=(), sample_times=None,
                 sample_ids=None):
    """Run the oracle on a sparseprop network description (read-only access)."""
    name, v_reset = network_models(net)
    c = net.connectivity
    per_syn = getattr(c, "delays", None)
    delays = None
    if per_syn is not None:
        indptr = np.asarray(c.indptr)
        per_syn = np.asarray(per_syn, dtype=float)
        delays = lambda j: per_syn[indptr[j]:indptr[j + 1]]  # noqa: E731
    inputs = network_inputs(net) + [tuple(x) for x in extra_inputs]
    inputs.sort(key=lambda e: e[0])
    return simulate(name, int(net.n), net.drive, network_tau(net), net.targets, v0, delays=delays,
                    delay=float(net.delay), refractory=net.refractory, inputs=inputs, spikes=spikes,
                    t_max=t_max, v_reset=v_reset, sample_times=sample_times, sample_ids=sample_ids)
