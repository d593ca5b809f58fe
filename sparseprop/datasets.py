"""Datasets for training spiking networks, generated in code (no download).

The Yin-Yang dataset
--------------------
Kriener, Goeltz and Petrovici (2021), "The Yin-Yang dataset" (arXiv:2102.08211; reference code in the
repository ``lkriener/yin_yang_data_set``). A point ``(x, y)`` is drawn uniformly from the square
``[0, 2 r_big]^2`` and rejected unless it lies in the disc of radius ``r_big`` centred at
``(r_big, r_big)``. Its class follows from the distances to the two "eye" centres,

    d_r = |(x, y) - (1.5 r_big, r_big)|,     d_l = |(x, y) - (0.5 r_big, r_big)|:

* class 2 ("dot") if ``d_r < r_small`` or ``d_l < r_small``;
* otherwise class 1 if ``d_r <= r_small``, or ``r_small < d_l <= r_big / 2``, or
  ``y > r_big and d_r > r_big / 2``;
* otherwise class 0.

(These are the original's comparisons, strict and non-strict alike; the original code returns
``int(is_yin)`` for the two halves, so its label 1 is the region its comments call "yin". We keep its
numeric labels and its name list ``("yin", "yang", "dot")`` unchanged.)
Classes are balanced as in the original: for every sample a goal class is drawn uniformly from
``{0, 1, 2}`` and points are drawn until one of that class turns up. Each sample's features are
``(x, y, 1 - x, 1 - y)``: the mirrored copies let neurons without an intrinsic bias see "large"
values of either sign. With the defaults ``r_big = 0.5``, ``r_small = 0.1`` all features lie in
``[0, 1]``. A linear classifier reaches about 64 % test accuracy, a 4-120-3 ANN about 98.7 %.

Our draws use :class:`numpy.random.Generator` (in blocks, see :func:`yinyang`), so the samples are
distributed exactly as in the original but are not the same numbers as its ``RandomState`` draws.

Data layout and invariants
--------------------------
* ``X`` is ``(n, 4)`` float64, ``y`` is ``(n,)`` int64 in ``{0, 1, 2}``.
* Everything is a pure function of the seed: no global RNG state is read or written.
* Input spike times from :func:`encode_latency` are in seconds, one column per input neuron, the
  optional bias input last.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["YINYANG_CLASSES", "yinyang", "yinyang_class", "yinyang_split", "encode_latency"]

YINYANG_CLASSES = ("yin", "yang", "dot")
"""Class names of the original code, indexed by label."""


def _radii(r_small, r_big):
    for name, value in (("r_small", r_small), ("r_big", r_big)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    r_small, r_big = float(r_small), float(r_big)
    if not r_big > 0:
        raise ValueError(f"r_big: must be > 0, got {r_big}")
    if not 0 < r_small < 0.5 * r_big:
        raise ValueError(f"r_small: must be in (0, r_big/2) = (0, {0.5 * r_big}), got {r_small}")
    return r_small, r_big


def yinyang_class(x, y, r_small=0.1, r_big=0.5):
    """Class of points of the Yin-Yang disc (the original's ``which_class``, vectorised).

    Parameters
    ----------
    x, y : array_like of float
        Coordinates (same units as the radii; the dataset uses ``[0, 2 r_big]``). Points outside the
        disc get a label too (the formula does not check): test ``|(x, y) - (r_big, r_big)| <= r_big``
        yourself when it matters.
    r_small : float, default 0.1
        Radius of the two dots.
    r_big : float, default 0.5
        Radius of the whole symbol.

    Returns
    -------
    numpy.ndarray of int64
        0, 1 or 2 (see the module docstring), broadcast shape of ``x`` and ``y``.
    """
    r_small, r_big = _radii(r_small, r_big)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    dist_right = np.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    dist_left = np.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    in_right_half = dist_right <= r_small
    in_left_ring = (dist_left > r_small) & (dist_left <= 0.5 * r_big)
    in_upper = (y > r_big) & (dist_right > 0.5 * r_big)
    label = (in_right_half | in_left_ring | in_upper).astype(np.int64)
    on_dot = (dist_right < r_small) | (dist_left < r_small)
    return np.where(on_dot, np.int64(2), label)


def yinyang(n, seed, *, r_small=0.1, r_big=0.5):
    """Draw ``n`` Yin-Yang samples, class-balanced as in the original.

    For every sample a goal class is drawn uniformly from ``{0, 1, 2}`` (one ``rng.integers`` call for
    all ``n``); then candidate points, uniform in the square ``[0, 2 r_big]^2``, are drawn in blocks,
    those outside the disc are rejected, and the accepted points of each class are handed, in draw
    order, to the samples whose goal is that class, in sample order. Each sample is therefore an
    independent uniform point of its goal class's region, exactly as with the original's
    draw-until-it-fits loop.

    Parameters
    ----------
    n : int
        Number of samples, ``>= 0``.
    seed : int, numpy.random.SeedSequence or numpy.random.Generator
        Randomness; passed to :func:`numpy.random.default_rng` (a Generator is used as is and
        advanced). Same seed, same samples.
    r_small, r_big : float
        Dot radius and symbol radius (defaults 0.1 and 0.5 as in the original).

    Returns
    -------
    X : numpy.ndarray, shape (n, 4), float64
        Features ``(x, y, 1 - x, 1 - y)``, dimensionless, in ``[0, 1]`` for the default radii.
    y : numpy.ndarray, shape (n,), int64
        Labels in ``{0, 1, 2}``.

    Examples
    --------
    >>> X, y = yinyang(5000, seed=42)
    >>> X.shape, np.bincount(y, minlength=3).sum()
    ((5000, 4), 5000)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n: expected an integer >= 0, got {n!r}")
    n = int(n)
    r_small, r_big = _radii(r_small, r_big)
    rng = np.random.default_rng(seed)
    goals = rng.integers(0, 3, size=n)
    need = np.bincount(goals, minlength=3)
    pools = [[], [], []]
    have = np.zeros(3, dtype=np.int64)
    # Acceptance of a square point into the rarest class (the dots) is 2 pi r_small^2 / (4 r_big^2).
    rarest = 2.0 * np.pi * r_small ** 2 / (4.0 * r_big ** 2)
    while np.any(have < need):
        missing = int(np.max(need - have))
        block = int(min(max(1024, 1.5 * missing / rarest), 2_000_000))
        pts = rng.random((block, 2)) * (2.0 * r_big)
        inside = np.sqrt((pts[:, 0] - r_big) ** 2 + (pts[:, 1] - r_big) ** 2) <= r_big
        pts = pts[inside]
        cls = yinyang_class(pts[:, 0], pts[:, 1], r_small, r_big)
        for c in range(3):
            if have[c] < need[c]:
                take = pts[cls == c][: need[c] - have[c]]
                pools[c].append(take)
                have[c] += len(take)
    xy = np.empty((n, 2), dtype=np.float64)
    for c in range(3):
        if need[c]:
            xy[goals == c] = np.concatenate(pools[c])
    X = np.column_stack([xy[:, 0], xy[:, 1], 1.0 - xy[:, 0], 1.0 - xy[:, 1]])
    return X, goals.astype(np.int64)


def yinyang_split(n_train=5000, n_val=1000, n_test=1000, seed=42, *, r_small=0.1, r_big=0.5):
    """The fixed train / validation / test split (sizes of the original publication by default).

    The three sets are drawn from three independent streams, the children
    ``numpy.random.SeedSequence(seed).spawn(3)`` (the original used three seeds, 42, 41 and 40, for the
    same purpose), so the sets never share samples by construction of the seed and each one's content
    does not depend on the others' sizes.

    Parameters
    ----------
    n_train, n_val, n_test : int
        Set sizes (defaults 5000, 1000, 1000).
    seed : int, default 42
        Base seed, ``>= 0``.
    r_small, r_big : float
        Radii, as in :func:`yinyang`.

    Returns
    -------
    train, val, test : tuple of (X, y)
        Each as returned by :func:`yinyang`.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    children = np.random.SeedSequence(int(seed)).spawn(3)
    sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    out = []
    for (name, size), child in zip(sizes.items(), children):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 0:
            raise ValueError(f"{name}: expected an integer >= 0, got {size!r}")
        out.append(yinyang(size, child, r_small=r_small, r_big=r_big))
    return tuple(out)


def encode_latency(X, t_early, t_late, bias_time=None):
    """Latency code: feature value ``v`` in ``[0, 1]`` -> one input spike at ``t_early + v (t_late - t_early)``.

    Parameters
    ----------
    X : array_like, shape (n, f) or (f,)
        Feature values in ``[0, 1]`` (dimensionless), finite.
    t_early : float
        Spike time of value 0, in seconds, ``>= 0``.
    t_late : float
        Spike time of value 1, in seconds, ``> t_early``.
    bias_time : float or None, default None
        If given, an extra input neuron (the last column) spikes at this time (seconds, ``>= 0``) for
        every sample: the "bias" input that lets the first layer act without any feature input.

    Returns
    -------
    numpy.ndarray, shape (n, f) or (n, f + 1) (no leading axis for 1-D ``X``), float64
        Input spike times in seconds; column ``i`` is the spike time of input neuron ``i``.

    Examples
    --------
    >>> encode_latency([[0.0, 0.5, 1.0, 0.25]], 0.0, 0.02, bias_time=0.01)
    array([[0.   , 0.01 , 0.02 , 0.005, 0.01 ]])
    """
    t_early = _time("t_early", t_early)
    t_late = _time("t_late", t_late)
    if not t_late > t_early:
        raise ValueError(f"t_late: must be > t_early = {t_early} s, got {t_late}")
    if bias_time is not None:
        bias_time = _time("bias_time", bias_time)
    arr = np.asarray(X)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"X: expected real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise ValueError(f"X: expected a non-empty (n, f) or (f,) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("X: all values must be finite (found NaN or inf)")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(f"X: values must lie in [0, 1], got range [{arr.min()}, {arr.max()}]")
    times = t_early + arr * (t_late - t_early)
    if bias_time is not None:
        bias = np.full(times.shape[:-1] + (1,), bias_time)
        times = np.concatenate([times, bias], axis=-1)
    return times


def _time(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite time in seconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: must be >= 0 s, got {value}")
    return float(value)
