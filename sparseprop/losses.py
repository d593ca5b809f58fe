"""Losses on spike times, each with its exact gradient with respect to the spike times.

Every loss returns a :class:`LossResult` ``(value, grad, missing, penalty)``:

* ``value`` -- the loss (float, dimensionless);
* ``grad`` -- ``dL/dt`` for every time input, in 1/s, same shape as the times;
* ``missing`` -- boolean mask of the time inputs that are absent (neuron did not spike: ``nan`` or
  ``+inf``);
* ``penalty`` -- the part of ``value`` that is due to missing spikes.

Missing spikes
--------------
A spike that does not happen has no time to differentiate, and a loss that simply ignored it would
give no gradient at all: a silent neuron would stay silent (training stalls). Both losses therefore
count a missing spike as if it happened at a fixed time ``t_missing`` (seconds; use the end of the
simulated window, ``t_max``): the loss is then finite, and continuous as a spike slides out of the
window. For a missing entry ``grad`` holds the derivative with respect to that *substituted* time,
``dL/dt~``: not a gradient to feed the backward pass (there is no spike on the tape), but a signal of
what the loss wants: ``dL/dt~ > 0`` means "this spike should come (earlier)". Feed it to
:func:`missing_spike_drive_gradient`, which turns it into a gradient with respect to the neuron's
drive (more drive -> the neuron fires), and add that to the drive gradient of the backward pass.
Entries with ``dL/dt~ <= 0`` (a silent neuron the loss is happy to keep silent) get no push.

Gradient conventions: ``grad`` is with respect to spike times in seconds, so the backward pass adds
``grad[i]`` to the adjoint of the spike event that produced time ``i`` (see :func:`kth_spike_times`,
``return_index=True``, to find that event).
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

__all__ = ["LossResult", "spike_time_mse", "ttfs_cross_entropy", "ttfs_prediction",
           "missing_spike_drive_gradient", "kth_spike_times"]


class LossResult(NamedTuple):
    """``(value, grad, missing, penalty)`` of a spike-time loss (see the module docstring)."""

    value: float
    grad: np.ndarray
    missing: np.ndarray
    penalty: float


def _times(name, times):
    arr = np.asarray(times)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected real spike times, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one spike time, got shape {arr.shape}")
    if np.any(arr == -np.inf):
        raise ValueError(f"{name}: -inf is not a spike time (use nan or +inf for a missing spike)")
    missing = ~np.isfinite(arr)
    return arr, missing


def _finite(name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name}: must be > 0, got {value}")
    return float(value)


def spike_time_mse(times, targets, *, t_missing):
    r"""Mean squared error between spike times and target times.

    With ``t~_i = t_i`` for a spike that happened and ``t~_i = t_missing`` for a missing one,

    .. math::
        L = \frac{1}{M} \sum_{i=1}^{M} (\tilde t_i - \tau_i)^2, \qquad
        \frac{\partial L}{\partial \tilde t_i} = \frac{2}{M} (\tilde t_i - \tau_i),

    with ``M = times.size``. Times are typically the k-th spike times of chosen neurons
    (:func:`kth_spike_times`). Units: times in seconds, ``L`` in s^2, ``grad`` in s.

    Parameters
    ----------
    times : array_like of float
        Spike times in seconds; ``nan`` or ``+inf`` marks a missing spike.
    targets : array_like of float
        Target times in seconds, finite, same shape as ``times`` (or broadcastable to it).
    t_missing : float
        Time (seconds) at which a missing spike is counted; use the end of the simulated window.

    Returns
    -------
    LossResult
        ``value`` (s^2); ``grad`` (s, shape of ``times``; for missing entries the derivative with
        respect to the substituted time, see the module docstring); ``missing`` mask; ``penalty`` =
        ``(1/M) sum over missing of (t_missing - tau_i)^2``.
    """
    t, missing = _times("times", times)
    tau = np.asarray(targets)
    if tau.dtype.kind not in "fiu":
        raise ValueError(f"targets: expected real times, got dtype {tau.dtype}")
    try:
        tau = np.broadcast_to(tau.astype(np.float64), t.shape)
    except ValueError:
        raise ValueError(f"targets: shape {np.shape(targets)} does not match times {t.shape}") from None
    if not np.all(np.isfinite(tau)):
        raise ValueError("targets: all target times must be finite (found NaN or inf)")
    t_missing = _finite("t_missing", t_missing)
    t_sub = np.where(missing, t_missing, t)
    diff = t_sub - tau
    m = t.size
    value = float(np.sum(diff * diff) / m)
    penalty = float(np.sum(np.where(missing, diff * diff, 0.0)) / m)
    grad = 2.0 * diff / m
    return LossResult(value, grad, missing, penalty)


def ttfs_cross_entropy(first_times, label, tau_s, *, t_missing, alpha=0.0, beta=1.0):
    r"""Time-to-first-spike cross-entropy (Goeltz et al. 2021, Nature Machine Intelligence).

    The output neurons' first spike times ``t_k`` are scored by a softmax over ``-t_k / tau_s``: the
    earliest neuron should be the labelled one ``l``. With ``t~_k = t_k`` (or ``t_missing`` for a
    neuron that never fired) and :math:`p_k = e^{-\tilde t_k/\tau_s} / \sum_j e^{-\tilde t_j/\tau_s}`,

    .. math::
        L = -\log p_l + \alpha \left(e^{\tilde t_l / (\beta \tau_s)} - 1\right), \qquad
        \frac{\partial L}{\partial \tilde t_k} = \frac{\delta_{kl} - p_k}{\tau_s}
            + \delta_{kl} \frac{\alpha}{\beta \tau_s} e^{\tilde t_l / (\beta \tau_s)}.

    The second term is the paper's optional regulariser that pulls the label neuron earlier
    (``alpha = 0`` switches it off). The softmax is evaluated shifted by ``min t~`` (stable for any
    times).

    Silent neurons: with ``t_missing`` the value and gradient are always finite. A silent non-label
    neuron adds only ``e^{-t_missing/tau_s}`` to the denominator (its limit for ``t_missing -> inf``
    is 0); its ``dL/dt~ = -p_k/tau_s <= 0`` says "stay late", so it gets no push. A silent label
    neuron gives ``dL/dt~_l > 0``: pass ``grad`` and ``missing`` to
    :func:`missing_spike_drive_gradient` to make it fire.

    Parameters
    ----------
    first_times : array_like, shape (n_out,)
        First spike time of each output neuron, seconds; ``nan`` or ``+inf`` = never fired.
    label : int
        Index of the correct output neuron, ``0 <= label < n_out``.
    tau_s : float
        Softmax temperature, seconds, ``> 0``.
    t_missing : float
        Time (seconds) at which a silent neuron is counted; use the end of the simulated window.
    alpha : float, default 0.0
        Weight of the regulariser, ``>= 0``.
    beta : float, default 1.0
        Time scale of the regulariser in units of ``tau_s``, ``> 0``.

    Returns
    -------
    LossResult
        ``value`` (dimensionless); ``grad`` (1/s, shape (n_out,)); ``missing`` mask; ``penalty`` =
        ``value`` minus the loss with silent neurons at ``t = +inf`` (all of ``value`` when the label
        neuron is silent, since that loss is infinite).
    """
    t, missing = _times("first_times", first_times)
    if t.ndim != 1:
        raise ValueError(f"first_times: expected a 1-D array (one time per output neuron), got shape {t.shape}")
    n_out = t.size
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or not 0 <= label < n_out:
        raise ValueError(f"label: expected an integer in [0, {n_out}), got {label!r}")
    label = int(label)
    tau_s = _finite("tau_s", tau_s, positive=True)
    t_missing = _finite("t_missing", t_missing)
    alpha = _finite("alpha", alpha)
    if alpha < 0:
        raise ValueError(f"alpha: must be >= 0, got {alpha}")
    beta = _finite("beta", beta, positive=True)

    def cross_entropy(times):
        shift = times.min()
        e = np.exp(-(times - shift) / tau_s)
        z = e.sum()
        return (times[label] - shift) / tau_s + np.log(z), e / z

    t_sub = np.where(missing, t_missing, t)
    ce, p = cross_entropy(t_sub)
    grad = -p / tau_s
    grad[label] += 1.0 / tau_s
    value = ce
    if alpha > 0:
        reg = np.exp(t_sub[label] / (beta * tau_s))
        value += alpha * (reg - 1.0)
        grad[label] += alpha / (beta * tau_s) * reg
    value = float(value)
    if missing[label]:
        penalty = value
    elif missing.any():
        penalty = float(ce - cross_entropy(np.where(missing, np.inf, t))[0])
    else:
        penalty = 0.0
    return LossResult(value, grad, missing, penalty)


def ttfs_prediction(first_times):
    """Predicted class of a time-to-first-spike readout: the index of the earliest output spike.

    Parameters
    ----------
    first_times : array_like, shape (n_out,) or (n_samples, n_out)
        First spike times in seconds; ``nan`` / ``+inf`` = never fired.

    Returns
    -------
    int or numpy.ndarray of int64
        Index of the earliest spike (ties: lowest index), ``-1`` where no output neuron fired
        (counts as wrong against any label).
    """
    t, missing = _times("first_times", first_times)
    if t.ndim not in (1, 2):
        raise ValueError(f"first_times: expected shape (n_out,) or (n_samples, n_out), got {t.shape}")
    t = np.where(missing, np.inf, t)
    pred = np.argmin(t, axis=-1)
    pred = np.where(np.all(missing, axis=-1), -1, pred).astype(np.int64)
    return int(pred) if pred.ndim == 0 else pred


def missing_spike_drive_gradient(grad, missing, strength=1.0, *, neurons=None, n=None):
    r"""Gradient with respect to the drive that makes missing spikes appear.

    For a missing spike ``i`` whose loss wants it (``g_i = dL/dt~_i > 0``, from a loss's ``grad``),
    assume the surrogate sensitivity ``dt_i/dI = -strength`` (seconds per unit drive: more drive, an
    earlier spike) and apply the chain rule:

    .. math::
        \frac{\partial L}{\partial I} \mathrel{+}= -\,\mathrm{strength}\cdot \max(g_i, 0).

    Gradient descent (``I <- I - lr dL/dI``) then raises the drive of exactly those silent neurons
    whose spike the loss asks for, in proportion to how much it asks. Spikes that happened, and
    missing spikes the loss is content without (``g_i <= 0``), contribute nothing. To push incoming
    weights instead, multiply by ``dI/dw`` of your model.

    Parameters
    ----------
    grad : array_like of float
        ``grad`` of a :class:`LossResult` (1/s or s, as the loss).
    missing : array_like of bool
        ``missing`` of the same :class:`LossResult`.
    strength : float, default 1.0
        Surrogate ``-dt/dI`` in seconds per unit drive, ``>= 0``.
    neurons : array_like of int, optional
        Neuron id of each entry of ``grad``; with ``n``, the result is scattered (summed) into an
        ``(n,)`` per-neuron array.
    n : int, optional
        Number of neurons (required with ``neurons``).

    Returns
    -------
    numpy.ndarray of float64
        Shape of ``grad``, or ``(n,)`` with ``neurons``: ``dL/dI``, to add to the drive gradient.
    """
    g = np.asarray(grad, dtype=np.float64)
    miss = np.asarray(missing)
    if miss.dtype != np.bool_ or miss.shape != g.shape:
        raise ValueError(f"missing: expected a boolean mask of shape {g.shape}, got {miss.dtype} {miss.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("grad: all values must be finite (found NaN or inf)")
    strength = _finite("strength", strength)
    if strength < 0:
        raise ValueError(f"strength: must be >= 0, got {strength}")
    out = np.where(miss, -strength * np.maximum(g, 0.0), 0.0)
    if neurons is None:
        if n is not None:
            raise ValueError("n: only meaningful together with neurons")
        return out
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n: expected the number of neurons (integer >= 1) with neurons=, got {n!r}")
    ids = np.asarray(neurons)
    if ids.dtype.kind not in "iu" or ids.shape != g.shape:
        raise ValueError(f"neurons: expected integer ids of shape {g.shape}, got {ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"neurons: ids must lie in [0, {n}), got range [{ids.min()}, {ids.max()}]")
    per_neuron = np.zeros(int(n))
    np.add.at(per_neuron, ids.ravel(), out.ravel())
    return per_neuron


def kth_spike_times(spike_times, spike_neurons, neurons, k=0, *, return_index=False):
    """The k-th spike time (0 = first) of each chosen neuron, from a recorded spike list.

    Parameters
    ----------
    spike_times : array_like, shape (S,)
        Spike times in seconds, nondecreasing (as in ``SimulationResult.times``).
    spike_neurons : array_like of int, shape (S,)
        Neuron id of each spike (``SimulationResult.neurons``).
    neurons : array_like of int, shape (m,)
        The neurons to read out.
    k : int or array_like of int, default 0
        Which spike (0-based), one for all or one per chosen neuron.
    return_index : bool, default False
        Also return the position of each spike in the spike list (``-1`` if missing): the backward
        pass adds ``grad[i]`` to the adjoint of spike event ``index[i]``.

    Returns
    -------
    times : numpy.ndarray, shape (m,), float64
        Seconds; ``+inf`` where the neuron has fewer than ``k + 1`` spikes.
    index : numpy.ndarray, shape (m,), int64
        Only with ``return_index=True``.
    """
    st = np.asarray(spike_times, dtype=np.float64)
    sn = np.asarray(spike_neurons)
    if st.ndim != 1 or sn.shape != st.shape:
        raise ValueError(f"spike_neurons: expected shape {st.shape} like spike_times, got {sn.shape}")
    if sn.size and sn.dtype.kind not in "iu":
        raise ValueError(f"spike_neurons: expected integer ids, got dtype {sn.dtype}")
    if st.size > 1 and np.any(np.diff(st) < 0):
        raise ValueError("spike_times: must be nondecreasing")
    sel = np.asarray(neurons)
    if sel.ndim != 1 or (sel.size and sel.dtype.kind not in "iu"):
        raise ValueError(f"neurons: expected a 1-D array of integer ids, got {sel.dtype} {sel.shape}")
    kk = np.broadcast_to(np.asarray(k), sel.shape)
    if kk.size and (kk.dtype.kind not in "iu" or kk.min() < 0):
        raise ValueError(f"k: expected integers >= 0, got {k!r}")
    order = np.argsort(sn, kind="stable")
    sorted_ids = sn[order]
    start = np.searchsorted(sorted_ids, sel, side="left")
    stop = np.searchsorted(sorted_ids, sel, side="right")
    pos = start + kk
    ok = pos < stop
    index = np.full(sel.shape, -1, dtype=np.int64)
    index[ok] = order[pos[ok]]
    times = np.full(sel.shape, np.inf)
    times[ok] = st[index[ok]]
    return (times, index) if return_index else times
