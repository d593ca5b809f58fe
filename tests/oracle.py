"""Independent brute-force reference simulator for pulse-coupled LIF / QIF networks.

This module shares NO code with ``sparseprop``. From a network object it reads only the
plain description: ``net.n``, ``net.drive``, ``net.tau``, ``net.model.name``,
``net.targets(j)`` and, for LIF, ``net.model.v_reset``.

Method (deliberately the naive O(N)-per-spike, voltage-based scheme):

* state: the voltage ``V_i`` of every neuron and the absolute time ``t`` (seconds);
* each step computes every neuron's time to threshold from its voltage in closed form
  (units of tau, converted to seconds):

  - LIF  dV/dt = -V + I, threshold 1:   T = ln((I - V)/(I - 1))  if I > 1 else +inf
  - QIF  dV/dt = V^2 + I (I > 0), spike at +inf:
         T = (pi/2 - atan(V/sqrt(I))) / sqrt(I)

* the earliest neuron fires (ties -> lowest index); ALL voltages are advanced analytically
  to that instant

  - LIF  V <- I + (V - I) exp(-dt/tau)
  - QIF  V <- sqrt(I) tan(atan(V/sqrt(I)) + sqrt(I) dt/tau)

* the spike (t, j) is recorded, j is reset (LIF: v_reset, QIF: -inf) and j's inputs are
  delivered in delivery order (``net.targets(j)``) by adding w to the target voltage.

Event semantics (public API contract): a target driven to or past threshold (LIF V >= 1)
fires at that same instant, after the inputs of that instant that precede its turn: it keeps
taking inputs (they are summed) and fires only if it is still at or past threshold when it is
the next spiker; simultaneous spikes are processed in increasing neuron index.

The contract does not say what happens when a neuron that has ALREADY fired at the current
instant is driven past threshold again at the same instant; the oracle raises
:class:`AmbiguousCascade` in that case, so tests must use networks where it cannot happen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AmbiguousCascade",
    "OracleResult",
    "simulate",
    "simulate_net",
    "lif_voltage_from_phase",
    "qif_voltage_from_phase",
    "phases_to_voltages",
    "default_initial_phases",
    "default_initial_voltages",
    "lif_period",
    "qif_period",
]

HALF_PI = 0.5 * math.pi


class AmbiguousCascade(RuntimeError):
    """A neuron that already fired at this instant was driven past threshold again."""


@dataclass
class OracleResult:
    times: np.ndarray  # float64, seconds
    neurons: np.ndarray  # int64
    final_voltages: np.ndarray  # voltages at t_end (after the last processed event)
    t_end: float


# --------------------------------------------------------------------------------------
# Closed forms written independently of sparseprop
# --------------------------------------------------------------------------------------
def lif_period(drive, v_reset=0.0):
    """Free LIF period in units of tau: time from v_reset to threshold 1."""
    drive = np.asarray(drive, dtype=float)
    return np.log((drive - v_reset) / (drive - 1.0))


def qif_period(drive):
    """Free QIF period in units of tau: time from -inf to +inf, pi/sqrt(I)."""
    return math.pi / np.sqrt(np.asarray(drive, dtype=float))


def lif_voltage_from_phase(phi, drive, v_reset=0.0):
    """LIF voltage at phase phi in [0, 1): the free trajectory from v_reset after phi * period.

    With v_reset = 0 this is V = I (1 - exp(-phi/omega)), omega = 1/ln(I/(I-1)).
    """
    phi = np.asarray(phi, dtype=float)
    drive = np.asarray(drive, dtype=float)
    omega = 1.0 / np.log((drive - v_reset) / (drive - 1.0))
    return drive + (v_reset - drive) * np.exp(-phi / omega)


def qif_voltage_from_phase(theta, drive):
    """QIF (theta neuron) voltage at phase theta in [-pi, pi): V = sqrt(I) tan(theta/2)."""
    theta = np.asarray(theta, dtype=float)
    return np.sqrt(np.asarray(drive, dtype=float)) * np.tan(theta / 2.0)


def _model_name(net):
    return str(net.model.name).lower()


def _drive_array(net):
    return np.broadcast_to(np.asarray(net.drive, dtype=float), (int(net.n),)).astype(float).copy()


def _v_reset(net):
    return float(getattr(net.model, "v_reset", 0.0)) if _model_name(net) == "lif" else -math.inf


def phases_to_voltages(net, phases):
    """Convert API phases (LIF: [0, 1), QIF: [-pi, pi)) to voltages with the oracle's closed form."""
    name = _model_name(net)
    drive = _drive_array(net)
    phases = np.asarray(phases, dtype=float)
    if name == "lif":
        return lif_voltage_from_phase(phases, drive, _v_reset(net))
    if name == "qif":
        return qif_voltage_from_phase(phases, drive)
    raise ValueError(f"oracle: unsupported model {name!r}")


def default_initial_phases(net, seed_ic):
    """The API's default initial phases: one draw of n uniforms from default_rng(seed_ic)."""
    name = _model_name(net)
    lo, hi = {"lif": (0.0, 1.0), "qif": (-math.pi, math.pi)}[name]
    u = np.random.default_rng(seed_ic).random(int(net.n))
    return lo + u * (hi - lo)


def default_initial_voltages(net, seed_ic):
    return phases_to_voltages(net, default_initial_phases(net, seed_ic))


# --------------------------------------------------------------------------------------
# The brute-force simulator
# --------------------------------------------------------------------------------------
def _time_to_threshold(model, v, drive, tau):
    """Time (seconds) from voltage v to the next threshold crossing of the free flow."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if model == "lif":
            supra = drive > 1.0
            tt = np.full(v.shape, np.inf)
            tt[supra] = tau * np.log((drive[supra] - v[supra]) / (drive[supra] - 1.0))
            # V >= 1 (only possible through roundoff of an exact tie): fire now
            tt[v >= 1.0] = 0.0
        else:
            sq = np.sqrt(drive)
            tt = tau * (HALF_PI - np.arctan(v / sq)) / sq
        np.maximum(tt, 0.0, out=tt)
    return tt


def _advance(model, v, drive, tau, dt):
    if dt <= 0.0:
        return v
    if model == "lif":
        return drive + (v - drive) * math.exp(-dt / tau)
    sq = np.sqrt(drive)
    ang = np.arctan(v / sq) + sq * (dt / tau)
    # a neuron tied with the spiker must stay at +threshold, never wrap to -inf
    np.minimum(ang, HALF_PI, out=ang)
    return sq * np.tan(ang)


def simulate(model, n, drive, tau, targets, v0, spikes=None, t_max=None, v_reset=0.0):
    """Brute-force event-driven simulation.

    Parameters
    ----------
    model : {"lif", "qif"}
    n : int
    drive : float or (n,) array, dimensionless drive I
    tau : float, membrane time constant in seconds
    targets : callable j -> (indices, weights) in delivery order
    v0 : (n,) initial voltages
    spikes : stop after this many spikes (optional)
    t_max : stop at this time in seconds (optional); voltages are advanced to t_max
    v_reset : LIF reset voltage (ignored for QIF, which resets to -inf)
    """
    model = model.lower()
    if model not in ("lif", "qif"):
        raise ValueError(model)
    if spikes is None and t_max is None:
        raise ValueError("need spikes or t_max")
    drive = np.broadcast_to(np.asarray(drive, dtype=float), (n,)).astype(float).copy()
    v = np.array(v0, dtype=float, copy=True)
    assert v.shape == (n,)
    if model == "qif":
        assert np.all(drive > 0)
    reset = v_reset if model == "lif" else -math.inf

    cache = {}

    def tgt(j):
        if j not in cache:
            idx, w = targets(j)
            cache[j] = list(zip(np.asarray(idx).tolist(), np.asarray(w, dtype=float).tolist()))
        return cache[j]

    times, neurons = [], []
    at_threshold: set[int] = set()     # LIF neurons at or past threshold: they fire at this instant
    fired_now: set[int] = set()
    if model == "lif":
        at_threshold.update(np.flatnonzero(v >= 1.0).tolist())
    t = 0.0
    limit = math.inf if spikes is None else int(spikes)
    while len(times) < limit:
        tt = _time_to_threshold(model, v, drive, tau)
        if at_threshold:
            tt[list(at_threshold)] = 0.0
        j = int(np.argmin(tt))  # first index among ties
        dt = float(tt[j])
        if not math.isfinite(dt):
            break
        if t_max is not None and t + dt > t_max:
            break
        if dt > 0.0:
            fired_now.clear()
            v = _advance(model, v, drive, tau, dt)
            t = t + dt
        times.append(t)
        neurons.append(j)
        at_threshold.discard(j)
        fired_now.add(j)
        v[j] = reset
        for i, w in tgt(j):
            v[i] = v[i] + w
            if model != "lif":
                continue
            if v[i] >= 1.0:
                if i in fired_now:
                    raise AmbiguousCascade(f"neuron {i} re-driven past threshold at t={t}")
                at_threshold.add(i)
            else:
                at_threshold.discard(i)
    if t_max is not None and not at_threshold and len(times) < limit:
        v = _advance(model, v, drive, tau, t_max - t)
        t = t_max
    return OracleResult(np.array(times, dtype=float), np.array(neurons, dtype=np.int64), v, t)


def simulate_net(net, v0, spikes=None, t_max=None):
    """Run the oracle on a sparseprop network description (read-only access)."""
    name = _model_name(net)
    return simulate(
        name,
        int(net.n),
        _drive_array(net),
        float(net.tau),
        net.targets,
        v0,
        spikes=spikes,
        t_max=t_max,
        v_reset=_v_reset(net) if name == "lif" else 0.0,
    )
