"""Independent references for the EIF table model (shares NO code with sparseprop).

Seed EIF: dV/dt = F(V) + I, F(V) = -V + 0.1 exp(V/0.1), I = 0.1 (units of tau), reset -1, spike at
the cut-off V = 1000 (where exp(V/0.1) overflows: the neuron is gone).

* :func:`time_to_spike` T(V) = int_V^1000 dV'/(F(V') + I) by scipy QUADPACK (relative 1e-14),
  the knee of the exponential marked as breakpoints; :func:`voltage_at` inverts it by safeguarded
  Newton (dT/dV = -1/(F + I) exactly).
* :func:`simulate` a brute-force, voltage-based event simulation: every neuron keeps its voltage
  and the time it was last brought up to date; between events a neuron follows its free ODE
  solution (V after dt: the voltage whose time to spike is T(V) - dt); every step scans all N
  neurons for the earliest spike (O(N) per spike), advances the spiker and the targets, resets the
  spiker and delivers its inputs in delivery order with the public API's semantics (V + w >= 1000
  fires at that instant unless later inputs of the instant take it back below, a neuron at the
  cut-off counts as V = 1000; ties -> lowest index).
* :func:`solve_ivp_segment` integrates the ODE in time with ``scipy.integrate.solve_ivp`` (DOP853)
  up to a duration or a threshold event (used by the single-neuron test).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

DV = 0.1
DRIVE = 0.1
V_RESET = -1.0
V_SPIKE = 1000.0
_KNEES = (0.0, 0.5, 1.0, 2.0, 4.0, 10.0, 30.0, 100.0)


def F(v):
    return -v + DV * math.exp(v / DV)


def rate(v, drive=DRIVE):
    """1/(F(v) + I) without overflow."""
    x = v / DV
    if x > 0:
        e = math.exp(-x)
        return e / (DV + (drive - v) * e)
    return 1.0 / (-v + DV * math.exp(x) + drive)


def _quad(a, b, drive=DRIVE):
    from scipy.integrate import IntegrationWarning, quad

    pts = [p for p in _KNEES if a < p < b]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        return quad(rate, a, b, args=(drive,), points=pts or None, epsabs=1e-300, epsrel=1e-14, limit=500)[0]


_TAIL = {}


def time_to_spike(v, drive=DRIVE):
    """Free time (units of tau) from V to the cut-off 1000; 0 at or above it."""
    if v >= V_SPIKE:
        return 0.0
    if drive not in _TAIL:
        _TAIL[drive] = _quad(4.0, V_SPIKE, drive)
    if v >= 4.0:
        return _quad(v, V_SPIKE, drive)
    return _quad(v, 4.0, drive) + _TAIL[drive]


def voltage_at(T, v_guess=None, drive=DRIVE):
    """Voltage whose time to spike is T > 0 (Newton on time_to_spike, bracketed)."""
    if T <= 0.0:
        return V_SPIKE
    lo, hi = -60.0, 60.0                      # T(-60) > any T used here, T(60) ~ 0
    while time_to_spike(lo, drive) < T:
        lo *= 2.0
    v = v_guess if v_guess is not None and lo < v_guess < hi else 0.5 * (lo + hi)
    for _ in range(100):
        g = time_to_spike(v, drive) - T        # decreasing in v
        if g > 0:
            lo = v
        else:
            hi = v
        if abs(g) <= 2e-16 * max(T, 1e-300):
            return v
        step = g / rate(v, drive)              # Newton: dT/dV = -rate
        nv = v + step
        if not lo < nv < hi:
            nv = 0.5 * (lo + hi)
        if nv == v or hi - lo <= 4e-16 * max(1.0, abs(v)):
            return nv
        v = nv
    return v


@dataclass
class Result:
    times: np.ndarray       # seconds
    neurons: np.ndarray
    voltages: np.ndarray    # at the last event


def simulate(n, targets, v0, spikes, tau=0.01, drive=DRIVE):
    """Brute-force voltage-based event simulation of n EIF neurons.

    targets : callable j -> (indices, weights) in delivery order.
    v0 : initial voltages. spikes : number of spikes to produce. tau : seconds.
    """
    v = np.array(v0, dtype=float)
    t_upd = np.zeros(n)                       # time (units of tau) at which v[i] is valid
    nxt = np.array([time_to_spike(x, drive) for x in v])   # next free spike time (units of tau)
    period = time_to_spike(V_RESET, drive)
    times, ids = [], []
    t = 0.0
    while len(times) < spikes:
        j = int(np.argmin(nxt))               # first index among ties
        t = float(nxt[j])
        times.append(t * tau)
        ids.append(j)
        v[j] = V_RESET
        t_upd[j] = t
        nxt[j] = t + period
        idx, w = targets(j)
        for i, wi in zip(np.asarray(idx).tolist(), np.asarray(w, dtype=float).tolist()):
            # the free flow from t_upd[i] to t: the voltage with the remaining time to spike
            v[i] = voltage_at(nxt[i] - t, v[i], drive)
            t_upd[i] = t
            v[i] += wi
            nxt[i] = t + time_to_spike(v[i], drive) if v[i] < V_SPIKE else t
    return Result(np.array(times), np.array(ids, dtype=np.int64), v)


def solve_ivp_segment(v0, duration=None, v_event=3.0, drive=DRIVE):
    """Integrate dV/dt = F + I from v0 (DOP853, rtol 1e-13) for `duration` (units of tau) or until
    V reaches v_event, whichever comes first. Returns (time elapsed, V at the end, crossed)."""
    from scipy.integrate import solve_ivp

    def rhs(_, y):
        return [F(y[0]) + drive]

    def event(_, y):
        return y[0] - v_event

    event.terminal, event.direction = True, 1
    t_end = duration if duration is not None else 1e3
    sol = solve_ivp(rhs, (0.0, t_end), [v0], method="DOP853", rtol=1e-13, atol=1e-15, events=event)
    if sol.status == 1:
        return float(sol.t_events[0][0]), v_event, True
    return float(sol.t[-1]), float(sol.y[0, -1]), False
