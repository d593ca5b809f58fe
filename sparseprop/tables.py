"""Phase tables for 1-D neuron models: file format, loader and NumPy reference evaluator.

A *table* describes a neuron dV/dt = F(V) + I (time in units of the membrane time constant tau)
through its time to spike

    T(V) = integral from V to v_spike of dV' / (F(V') + I),

and the phase phi = phi_th - omega * T(V) with omega = 1 / T(v_reset), phi_th = 1, phi_reset = 0.
The generator (:mod:`sparseprop.tablegen`) fits the two maps the event engine needs, T(V) and its
inverse V(T), on the domain v_min <= V <= v_spike (0 <= T <= t_max = T(v_min)).  This module only
reads, checks and evaluates such files: it imports NumPy and the standard library, never SciPy, and
never executes code stored in a file (``np.load(..., allow_pickle=False)``; metadata is JSON).

File format (schema ``sparseprop-table``, version 1)
-----------------------------------------------------
One ``.npz`` archive (uncompressed members, fixed zip timestamps: same content -> same bytes):

``metadata``
    0-d unicode array holding a JSON object (keys sorted), see :data:`REQUIRED_METADATA`.
``method == "chebyshev"`` (piecewise Chebyshev series, numpy.polynomial convention, window [-1, 1]):
    ``fwd_breaks`` (m+1,) increasing V breakpoints, ``fwd_breaks[0] = v_min``, ``[-1] = v_spike``;
    ``fwd_coef`` (m, d+1): on piece i, T(V) = sum_j c[i, j] T_j(x), x = (2V - a - b) / (b - a),
    [a, b] = fwd_breaks[i:i+2]; rows are zero padded beyond each piece's degree.
    ``inv_breaks`` (k+1,) increasing T breakpoints, ``inv_breaks[0] = 0``, ``[-1] = t_max``;
    ``inv_coef`` (k, e+1): V(T) on each piece, same convention.
    Interval search: binary search in the breakpoints (as SciPy's PPoly).
``method == "interp"`` (Hermite interpolation on uniform grids: the interval index is one multiply
and a floor):
    ``fwd_nodes`` (n, c): at V_i = x0 + i h (i < n) the columns are T, dT/dV (and d2T/dV2 when
    ``order == 5``).  The step h = m 2^e (integer m < 16) and x0 (a multiple of 2^e, within one
    step below v_min) make every node position exact in float64.  Beyond ``x_hi = x0 + (n-1) h``:
    ``tail == "linear"``: T falls linearly from ``t_hi`` to 0 at v_spike (omega * t_hi is far below
    the tolerance; EIF); ``tail == "hermite"``: one more Hermite interval [x_hi, v_spike] (shorter
    than h) ending at the node ``tail_node`` = [0, dT/dV, d2T/dV2] at v_spike (LIF, QIF).
    ``inv_nodes`` (n, c): the independent variable is s = ln(t_max / T) (>= 0; s = 0 at v_min), at
    s_i = x0 + i h (x0 = 0) the columns are V, dV/ds (and d2V/ds2).  Uniform in s resolves the
    logarithmic steepness of V(T) near the threshold, and s = 0 at T = t_max keeps s (hence V) at
    full absolute precision where T is large.  Below ``t_lo`` (s > x0 + (n-1) h) V goes linearly
    from ``v_lo`` (at t_lo) to v_spike (at T = 0); omega * t_lo is far below the tolerance.
    ``order`` 3 = cubic Hermite (c = 2 columns), 5 = quintic Hermite (c = 3 columns).

Evaluation outside the domain
-----------------------------
* V >= v_spike: the neuron fires now: T = 0, phase = phi_th = 1 (derivative 0).  In particular
  :meth:`Table.ptc` returns a value >= phi_th exactly when the input makes the neuron fire.
* V < v_min: if the metadata has ``continuation = {"kind": "affine", "a": a, "b": b}`` the model's
  F is (to the recorded accuracy ``phase_error``) the affine function a V + b below v_min, and
  T(V) = t_max + (1/a) ln((a v_min + b + I) / (a V + b + I))  (a < 0; (v_min - V)/(b + I) if a = 0).
  EIF far below its threshold and the LIF are of this kind.  Otherwise a ``ValueError`` is raised.
* phi > phi_th has no voltage: ``ValueError``; phi = phi_th gives v_spike.  NaN inputs: ``ValueError``.

Accuracy: ``metadata["achieved"]`` records the errors measured by the generator on an independent
check grid (reference T by adaptive Gauss-Legendre quadrature, spot-checked with QUADPACK): forward
phase error |phase_table(V) - phase_ref(V)|, inverse (backward) error |phase_ref(V_table(phi)) - phi| and the
round trips.  Near the threshold V(phi) is ill-conditioned (dV/dphi = (F + I)/omega is huge for the
EIF), so the inverse map is accurate in the backward sense only; derivatives are reliable where
phase < 1 - tol (away from the flat "fires now" zone).
"""
from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["Table", "load_table", "save_table", "list_tables", "table_search_dirs", "chebyshev_eval",
           "hermite_eval", "SCHEMA", "SCHEMA_VERSION", "PHASE_THRESHOLD", "PHASE_RESET"]

SCHEMA = "sparseprop-table"
SCHEMA_VERSION = 1
PHASE_THRESHOLD = 1.0
PHASE_RESET = 0.0
METHODS = ("chebyshev", "interp")

REQUIRED_METADATA = ("schema", "schema_version", "name", "model", "drive", "v_reset", "v_spike", "v_min",
                     "phase_threshold", "phase_reset", "omega", "period", "t_max", "phase_min",
                     "continuation", "method", "forward", "inverse", "tol", "achieved", "generator",
                     "command")
_ARRAYS = {"chebyshev": ("fwd_breaks", "fwd_coef", "inv_breaks", "inv_coef"),
           "interp": ("fwd_nodes", "inv_nodes")}

# Fixed zip member timestamp (the earliest the zip format allows): deterministic bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------------
# functional core
# --------------------------------------------------------------------------------------------------
def _clenshaw(c, x):
    """Sum_j c[:, j] T_j(x) for per-point coefficient rows ``c`` (npts, d+1) and points ``x`` (npts,)."""
    d = c.shape[1] - 1
    if d == 0:
        return c[:, 0].copy()
    b1 = np.zeros_like(x)
    b2 = np.zeros_like(x)
    x2 = 2.0 * x
    for j in range(d, 0, -1):
        b1, b2 = c[:, j] + x2 * b1 - b2, b1
    return c[:, 0] + x * b1 - b2


def chebyshev_pieces(breaks, x):
    """Piece index i with breaks[i] <= x < breaks[i+1] (clipped to the first/last piece)."""
    i = np.searchsorted(breaks, x, side="right") - 1
    return np.clip(i, 0, len(breaks) - 2)


def chebyshev_eval(breaks, coef, x, dcoef=None):
    """Evaluate a piecewise Chebyshev series (and optionally its derivative) at ``x``.

    Parameters
    ----------
    breaks : (m+1,) float64, increasing.
    coef : (m, d+1) float64, coefficients of piece i in x' = (2x - a - b)/(b - a) on [a, b].
    x : array of points (anything outside [breaks[0], breaks[-1]] is extrapolated from the end pieces).
    dcoef : optional (m, d) coefficients of the derivative d/dx (see :func:`chebyshev_derivative`).

    Returns
    -------
    values, or (values, derivatives) when ``dcoef`` is given.
    """
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    xf = x.ravel()
    i = chebyshev_pieces(breaks, xf)
    a = breaks[i]
    b = breaks[i + 1]
    t = (2.0 * xf - a - b) / (b - a)
    val = _clenshaw(coef[i], t).reshape(shape)
    if dcoef is None:
        return val
    return val, _clenshaw(dcoef[i], t).reshape(shape)


def chebyshev_derivative(breaks, coef):
    """Coefficients (m, max(d, 1)) of d/dx of each piece (chain rule 2/(b - a) included)."""
    m, n = coef.shape
    out = np.zeros((m, max(n - 1, 1)))
    for i in range(m):
        if n > 1:
            out[i, : n - 1] = np.polynomial.chebyshev.chebder(coef[i]) * (2.0 / (breaks[i + 1] - breaks[i]))
    return out


def hermite_eval(x0, h, nodes, x, derivative=False):
    """Hermite interpolation on the uniform grid x_i = x0 + i h, i = 0..n-1.

    ``nodes`` is (n, 2) [y, dy/dx] (cubic) or (n, 3) [y, dy/dx, d2y/dx2] (quintic).  The interval
    index is ``floor((x - x0) / h)`` clipped to [0, n-2]; with t in [0, 1] the interpolant is
    written as y0 + t (h y0' + t (...)) (Horner), which keeps the rounding error relative to the
    local increment.  The local coordinate is t = (x - (x0 + i h)) / h with the node position
    rounded exactly as the generator rounded it (``x0 + h * arange(n)``), so t carries no
    cancellation error from a large offset x - x0.  Returns values, or (values, d/dx) when ``derivative``.
    """
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    xf = x.ravel()
    n = nodes.shape[0]
    i = np.clip(np.floor((xf - x0) / h), 0, n - 2).astype(np.intp)
    t = (xf - (x0 + i * h)) / h  # node positions x0 + i h rounded exactly as when the table was made
    y0 = nodes[i, 0]
    y1 = nodes[i + 1, 0]
    d0 = h * nodes[i, 1]
    d1 = h * nodes[i + 1, 1]
    if nodes.shape[1] == 2:  # cubic
        delta = (y1 - y0) - d0
        dd = d1 - d0
        a2 = 3.0 * delta - dd
        a3 = dd - 2.0 * delta
        val = y0 + t * (d0 + t * (a2 + t * a3))
        if derivative:
            der = (d0 + t * (2.0 * a2 + t * 3.0 * a3)) / h
    else:  # quintic
        s0 = h * h * nodes[i, 2]
        s1 = h * h * nodes[i + 1, 2]
        delta = (y1 - y0) - d0 - 0.5 * s0
        dd = d1 - d0 - s0
        ds = s1 - s0
        a3 = 10.0 * delta - 4.0 * dd + 0.5 * ds
        a4 = -15.0 * delta + 7.0 * dd - ds
        a5 = 6.0 * delta - 3.0 * dd + 0.5 * ds
        val = y0 + t * (d0 + t * (0.5 * s0 + t * (a3 + t * (a4 + t * a5))))
        if derivative:
            der = (d0 + t * (s0 + t * (3.0 * a3 + t * (4.0 * a4 + t * 5.0 * a5)))) / h
    if derivative:
        return val.reshape(shape), der.reshape(shape)
    return val.reshape(shape)


# --------------------------------------------------------------------------------------------------
# file format
# --------------------------------------------------------------------------------------------------
def _json_dumps(metadata):
    return json.dumps(metadata, sort_keys=True, allow_nan=False, separators=(",", ":"))


def save_table(path, arrays, metadata):
    """Write ``arrays`` (name -> ndarray) and ``metadata`` (JSON-able dict) as a deterministic .npz.

    Members are stored uncompressed with a fixed timestamp and permissions, in sorted order, each in
    NumPy's .npy format (version 1.0), plus ``metadata`` (a 0-d unicode array with the JSON text):
    identical inputs give byte-identical files, and ``np.load`` reads them without pickle.
    """
    path = Path(path)
    members = {name: np.ascontiguousarray(arr) for name, arr in arrays.items()}
    if "metadata" in members:
        raise ValueError("array name 'metadata' is reserved")
    members["metadata"] = np.array(_json_dumps(metadata))
    for name, arr in members.items():
        if arr.dtype.hasobject:
            raise ValueError(f"array {name!r} has dtype object; tables hold numbers and text only")
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(members):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, members[name], version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)
    return path


def table_search_dirs():
    """Directories searched for table *names* (in order): the installed package data directory
    ``sparseprop/data/tables`` and the source tree's ``tables/`` folder (a git checkout)."""
    here = Path(__file__).resolve().parent
    return [here / "data" / "tables", here.parent / "tables"]


def list_tables():
    """Names of the tables found in :func:`table_search_dirs` (sorted, without ``.npz``)."""
    names = set()
    for d in table_search_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.npz"))
    return sorted(names)


def _resolve(path_or_name):
    p = Path(path_or_name)
    if p.is_file():
        return p
    name = str(path_or_name)
    looks_like_name = os.sep not in name and "/" not in name
    if looks_like_name:
        for d in table_search_dirs():
            for cand in (d / name, d / (name + ".npz")):
                if cand.is_file():
                    return cand
    avail = ", ".join(list_tables()) or "none found"
    raise FileNotFoundError(f"table {name!r}: no such file, and not the name of a shipped table "
                            f"(searched {', '.join(str(d) for d in table_search_dirs())}; available: {avail})")


def load_table(path_or_name):
    """Load a table from a path or the name of a shipped table (e.g. ``"eif_seed_chebyshev"``).

    The file is read with ``allow_pickle=False`` and checked (schema and version, required metadata,
    array names, dtypes, shapes, finiteness, monotone breakpoints); anything corrupt or incompatible
    raises ``ValueError`` naming the file and the problem.  Nothing in the file is executed.
    """
    path = _resolve(path_or_name)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable table file ({type(exc).__name__}: {exc})") from None
    if "metadata" not in arrays:
        raise ValueError(f"{path}: not a sparseprop table (no 'metadata' member)")
    meta_arr = arrays.pop("metadata")
    if meta_arr.ndim != 0 or meta_arr.dtype.kind != "U":
        raise ValueError(f"{path}: 'metadata' must be a 0-d unicode array holding JSON")
    try:
        metadata = json.loads(str(meta_arr))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: metadata is not valid JSON ({exc})") from None
    return Table(arrays, metadata, source=str(path))


def _check_metadata(md, where):
    if not isinstance(md, dict):
        raise ValueError(f"{where}: metadata must be a JSON object")
    if md.get("schema") != SCHEMA:
        raise ValueError(f"{where}: not a sparseprop table (schema {md.get('schema')!r}, expected {SCHEMA!r})")
    ver = md.get("schema_version")
    if not isinstance(ver, int) or isinstance(ver, bool):
        raise ValueError(f"{where}: schema_version must be an integer, got {ver!r}")
    if ver > SCHEMA_VERSION:
        raise ValueError(f"{where}: table schema version {ver} is newer than this sparseprop understands "
                         f"({SCHEMA_VERSION}); upgrade sparseprop or regenerate the table")
    if ver < 1:
        raise ValueError(f"{where}: unsupported table schema version {ver}")
    missing = [k for k in REQUIRED_METADATA if k not in md]
    if missing:
        raise ValueError(f"{where}: metadata lacks {', '.join(missing)}")
    if md["method"] not in METHODS:
        raise ValueError(f"{where}: unknown fit method {md['method']!r} (known: {', '.join(METHODS)})")
    for key in ("drive", "v_reset", "v_spike", "v_min", "omega", "period", "t_max", "phase_min", "tol"):
        val = md[key]
        if not isinstance(val, (int, float)) or isinstance(val, bool) or not math.isfinite(val):
            raise ValueError(f"{where}: metadata {key!r} must be a finite number, got {val!r}")
    if md["phase_threshold"] != PHASE_THRESHOLD or md["phase_reset"] != PHASE_RESET:
        raise ValueError(f"{where}: phase_threshold/phase_reset must be {PHASE_THRESHOLD}/{PHASE_RESET}")
    if not md["v_min"] <= md["v_reset"] < md["v_spike"]:
        raise ValueError(f"{where}: need v_min <= v_reset < v_spike, got {md['v_min']}, {md['v_reset']}, "
                         f"{md['v_spike']}")
    if not (md["omega"] > 0 and md["t_max"] >= md["period"] > 0):
        raise ValueError(f"{where}: need omega > 0 and t_max >= period > 0")
    cont = md["continuation"]
    if cont is not None:
        if not isinstance(cont, dict) or cont.get("kind") != "affine":
            raise ValueError(f"{where}: unknown continuation {cont!r} (known: null or kind 'affine')")
        a, b = cont.get("a"), cont.get("b")
        if not all(isinstance(z, (int, float)) and math.isfinite(z) for z in (a, b)):
            raise ValueError(f"{where}: affine continuation needs finite 'a' and 'b'")
        if a > 0 or a * md["v_min"] + b + md["drive"] <= 0:
            raise ValueError(f"{where}: affine continuation must have a <= 0 and a*v_min + b + I > 0")
    for key in ("forward", "inverse"):
        if not isinstance(md[key], dict):
            raise ValueError(f"{where}: metadata {key!r} must be an object")


def _check_array(arrays, name, ndim, where):
    arr = arrays[name]
    if arr.dtype != np.float64:
        raise ValueError(f"{where}: array {name!r} must be float64, got {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{where}: array {name!r} must be {ndim}-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: array {name!r} has non-finite entries")
    return arr


class Table:
    """A fitted phase table with a vectorised NumPy evaluator (reference for the Cython kernels).

    Parameters
    ----------
    arrays : dict name -> ndarray (see the module docstring for the names per method).
    metadata : dict (the JSON metadata).
    source : optional description of where the table came from (file path), used in messages.

    Attributes
    ----------
    name, method, drive, v_reset, v_spike, v_min, omega, period, t_max, phase_min, tol, continuation,
    achieved, metadata (dict), arrays (dict of read-only float64 arrays).
    phase_threshold = 1.0, phase_reset = 0.0.
    """

    phase_threshold = PHASE_THRESHOLD
    phase_reset = PHASE_RESET

    def __init__(self, arrays, metadata, *, source=None):
        where = source or f"table {metadata.get('name', '?') if isinstance(metadata, dict) else '?'}"
        _check_metadata(metadata, where)
        method = metadata["method"]
        want = set(_ARRAYS[method])
        have = set(arrays)
        if have != want:
            raise ValueError(f"{where}: method {method!r} needs arrays {sorted(want)}, file has {sorted(have)}")
        self.metadata = metadata
        self.source = source
        md = metadata
        self.name = md["name"]
        self.method = method
        self.drive = float(md["drive"])
        self.v_reset = float(md["v_reset"])
        self.v_spike = float(md["v_spike"])
        self.v_min = float(md["v_min"])
        self.omega = float(md["omega"])
        self.period = float(md["period"])
        self.t_max = float(md["t_max"])
        self.phase_min = float(md["phase_min"])
        self.tol = float(md["tol"])
        self.continuation = md["continuation"]
        self.achieved = md["achieved"]
        self.arrays = {}
        for k, v in arrays.items():
            v = np.ascontiguousarray(v)
            v.setflags(write=False)
            self.arrays[k] = v
        if method == "chebyshev":
            self._init_chebyshev(where)
        else:
            self._init_interp(where)

    # ---------------------------------------------------------------- construction / validation
    def _init_chebyshev(self, where):
        a = self.arrays
        fb = _check_array(a, "fwd_breaks", 1, where)
        fc = _check_array(a, "fwd_coef", 2, where)
        ib = _check_array(a, "inv_breaks", 1, where)
        ic = _check_array(a, "inv_coef", 2, where)
        for br, co, nm in ((fb, fc, "fwd"), (ib, ic, "inv")):
            if br.size < 2 or co.shape[0] != br.size - 1 or co.shape[1] < 1:
                raise ValueError(f"{where}: {nm}_coef shape {co.shape} does not match {nm}_breaks "
                                 f"({br.size} breakpoints -> {br.size - 1} pieces)")
            if not np.all(np.diff(br) > 0):
                raise ValueError(f"{where}: {nm}_breaks must be strictly increasing")
        if fb[0] != self.v_min or fb[-1] != self.v_spike:
            raise ValueError(f"{where}: fwd_breaks must span [v_min, v_spike] = [{self.v_min}, {self.v_spike}]")
        if ib[0] != 0.0 or ib[-1] != self.t_max:
            raise ValueError(f"{where}: inv_breaks must span [0, t_max] = [0, {self.t_max}]")
        self._fwd_dcoef = chebyshev_derivative(fb, fc)
        self._inv_dcoef = chebyshev_derivative(ib, ic)

    def _init_interp(self, where):
        a = self.arrays
        fwd = _check_array(a, "fwd_nodes", 2, where)
        inv = _check_array(a, "inv_nodes", 2, where)
        for nodes, key in ((fwd, "forward"), (inv, "inverse")):
            g = self.metadata[key]
            try:
                order, n, x0, h = int(g["order"]), int(g["n"]), float(g["x0"]), float(g["h"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{where}: metadata {key!r} needs order, n, x0, h") from None
            if order not in (3, 5):
                raise ValueError(f"{where}: {key} Hermite order must be 3 or 5, got {order}")
            if nodes.shape != (n, order // 2 + 1) or n < 2:
                raise ValueError(f"{where}: {key} nodes have shape {nodes.shape}, expected ({n}, {order // 2 + 1})")
            if not (h > 0 and math.isfinite(h) and math.isfinite(x0)):
                raise ValueError(f"{where}: {key} grid needs finite x0 and h > 0")
        f = self.metadata["forward"]
        i = self.metadata["inverse"]
        self._fx0, self._fh, self._fn = float(f["x0"]), float(f["h"]), int(f["n"])
        try:
            self._x_hi, self._t_hi = float(f["x_hi"]), float(f["t_hi"])
            self._ix0, self._ih, self._in = float(i["x0"]), float(i["h"]), int(i["n"])
            self._t_lo, self._v_lo = float(i["t_lo"]), float(i["v_lo"])
            self._ftail = f["tail"]
            if self._ftail == "hermite":
                tn = np.array(f["tail_node"], dtype=np.float64)
                if tn.shape != (fwd.shape[1],) or not np.all(np.isfinite(tn)):
                    raise ValueError
                self._ftail_nodes = np.vstack([fwd[-1], tn])
            elif self._ftail != "linear":
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: metadata forward/inverse grids need x_hi, t_hi, tail ('linear' or "
                             f"'hermite' with tail_node), t_lo, v_lo") from None
        if not (self._fx0 <= self.v_min < self._fx0 + self._fh) or not (self.v_min < self._x_hi <= self.v_spike):
            raise ValueError(f"{where}: forward grid must start within one step below v_min and end at x_hi <= v_spike")
        if abs(self._fx0 + (self._fn - 1) * self._fh - self._x_hi) > 1e-12 * max(1.0, abs(self._x_hi)):
            raise ValueError(f"{where}: forward grid end x0 + (n-1) h does not match x_hi")
        if not (0 < self._t_lo < self.t_max):
            raise ValueError(f"{where}: inverse grid needs 0 < t_lo < t_max")

    # ---------------------------------------------------------------- persistence
    def save(self, path):
        """Write this table to ``path`` (.npz, deterministic bytes).  Returns the path."""
        return save_table(path, self.arrays, self.metadata)

    def __repr__(self):
        m = self.metadata["model"]
        ach = self.achieved or {}
        err = max((v for k, v in ach.items() if k.startswith("phase_") and isinstance(v, (int, float))),
                  default=float("nan"))
        return (f"Table({self.name!r}, model={m.get('name')!r}, drive={self.drive!r}, method={self.method!r}, "
                f"domain=[{self.v_min!r}, {self.v_spike!r}], omega={self.omega!r}, max phase error={err:.2g})")

    # ---------------------------------------------------------------- evaluation helpers
    @staticmethod
    def _as_array(x, name):
        arr = np.asarray(x, dtype=np.float64)
        if np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN")
        return arr

    def _cont_T(self, v, derivative):
        """Affine continuation of T below v_min."""
        c = self.continuation
        a, b = float(c["a"]), float(c["b"])
        g0 = a * self.v_min + b + self.drive
        dv = v - self.v_min  # <= 0
        if a == 0.0:
            T = self.t_max - dv / g0
        else:
            T = self.t_max - np.log1p(a * dv / g0) / a
        if derivative:
            return T, -1.0 / (a * v + b + self.drive)
        return T, None

    def _cont_V(self, T, derivative):
        """Inverse of the affine continuation for T > t_max."""
        c = self.continuation
        a, b = float(c["a"]), float(c["b"])
        g0 = a * self.v_min + b + self.drive
        d = T - self.t_max  # >= 0
        if a == 0.0:
            V = self.v_min - g0 * d
        else:
            V = self.v_min + g0 * np.expm1(-a * d) / a
        if derivative:
            return V, -(a * V + b + self.drive)
        return V, None

    def _below_domain(self, what, value):
        raise ValueError(f"{what}={value!r} is below the table domain (v_min={self.v_min!r}, phase_min="
                         f"{self.phase_min!r}) and model {self.metadata['model'].get('name')!r} has no analytic "
                         f"continuation there; regenerate the table with a lower --v-min")

    def _fit_T(self, v, derivative):
        if self.method == "chebyshev":
            a = self.arrays
            if derivative:
                return chebyshev_eval(a["fwd_breaks"], a["fwd_coef"], v, self._fwd_dcoef)
            return chebyshev_eval(a["fwd_breaks"], a["fwd_coef"], v), None
        # interp: grid on [v_min, x_hi], linear tail to v_spike
        T = np.empty_like(v)
        dT = np.empty_like(v) if derivative else None
        tail = v > self._x_hi
        grid = ~tail
        nodes = self.arrays["fwd_nodes"]
        if grid.any():
            if derivative:
                T[grid], dT[grid] = hermite_eval(self._fx0, self._fh, nodes, v[grid], True)
            else:
                T[grid] = hermite_eval(self._fx0, self._fh, nodes, v[grid])
        if tail.any():
            if self._ftail == "linear":
                slope = self._t_hi / (self.v_spike - self._x_hi)
                T[tail] = slope * (self.v_spike - v[tail])
                if derivative:
                    dT[tail] = -slope
            else:
                res = hermite_eval(self._x_hi, self.v_spike - self._x_hi, self._ftail_nodes, v[tail], derivative)
                if derivative:
                    T[tail], dT[tail] = res
                else:
                    T[tail] = res
        return T, dT

    def _fit_V(self, T, derivative):
        if self.method == "chebyshev":
            a = self.arrays
            if derivative:
                return chebyshev_eval(a["inv_breaks"], a["inv_coef"], T, self._inv_dcoef)
            return chebyshev_eval(a["inv_breaks"], a["inv_coef"], T), None
        V = np.empty_like(T)
        dV = np.empty_like(T) if derivative else None
        tail = T < self._t_lo
        grid = ~tail
        nodes = self.arrays["inv_nodes"]
        if grid.any():
            Tg = T[grid]
            s = np.log(self.t_max / Tg)
            if derivative:
                V[grid], dVds = hermite_eval(self._ix0, self._ih, nodes, s, True)
                dV[grid] = -dVds / Tg  # ds/dT = -1/T
            else:
                V[grid] = hermite_eval(self._ix0, self._ih, nodes, s)
        if tail.any():
            slope = (self._v_lo - self.v_spike) / self._t_lo
            V[tail] = self.v_spike + slope * T[tail]
            if derivative:
                dV[tail] = slope
        return V, dV

    # ---------------------------------------------------------------- public evaluator
    def time_to_spike(self, v, derivative=False):
        """Free time to spike T(V) in units of tau (0 for V >= v_spike); with ``derivative`` also dT/dV."""
        v = self._as_array(v, "v")
        shape = v.shape
        v = v.ravel()
        T = np.zeros_like(v)
        dT = np.zeros_like(v)
        below = v < self.v_min
        inside = ~below & (v < self.v_spike)
        if below.any():
            if self.continuation is None:
                self._below_domain("v", float(v[below].min()))
            T[below], d = self._cont_T(v[below], derivative)
            if derivative:
                dT[below] = d
        if inside.any():
            t, d = self._fit_T(v[inside], derivative)
            T[inside] = np.clip(t, 0.0, self.t_max)  # the fit's rounding never leaves [0, t_max]
            if derivative:
                dT[inside] = d
        T = _shape(T, shape)
        return (T, _shape(dT, shape)) if derivative else T

    def voltage_from_time(self, T, derivative=False):
        """Voltage V with time to spike T >= 0 (inverse of :meth:`time_to_spike`); optionally dV/dT."""
        T = self._as_array(T, "T")
        if (T < 0).any():
            raise ValueError(f"time to spike T={float(T.min())!r} < 0: beyond the threshold")
        shape = T.shape
        T = T.ravel()
        V = np.full_like(T, self.v_spike)
        dV = np.zeros_like(T)
        # phases within a few ulp of phase_min (rounding of 1 - phi) count as inside the domain
        above = T > self.t_max * (1.0 + 16 * _EPS)
        inside = ~above & (T > 0)
        T = np.where(inside, np.minimum(T, self.t_max), T)
        if above.any():
            if self.continuation is None:
                self._below_domain("phase", float(1.0 - self.omega * T[above].max()))
            V[above], d = self._cont_V(T[above], derivative)
            if derivative:
                dV[above] = d
        if inside.any():
            v, d = self._fit_V(T[inside], derivative)
            V[inside] = np.clip(v, self.v_min, self.v_spike)  # never leaves the domain
            if derivative:
                dV[inside] = d
        V = _shape(V, shape)
        return (V, _shape(dV, shape)) if derivative else V

    def phase_from_voltage(self, v, derivative=False):
        """Phase phi(V) = 1 - omega T(V); 1 (= phi_th, "fires now") for V >= v_spike.

        With ``derivative`` returns (phi, dphi/dV).  V < v_min uses the documented continuation or
        raises ``ValueError``.
        """
        if derivative:
            T, dT = self.time_to_spike(v, True)
            return _shape(1.0 - self.omega * T), _shape(-self.omega * dT)
        return _shape(1.0 - self.omega * self.time_to_spike(v))

    def voltage_from_phase(self, phi, derivative=False):
        """Voltage V(phi) for phi <= phi_th = 1 (V(1) = v_spike); with ``derivative`` also dV/dphi.

        phi > 1 raises ``ValueError``; phi < phase_min uses the continuation or raises.
        """
        phi = self._as_array(phi, "phi")
        if (phi > PHASE_THRESHOLD).any():
            raise ValueError(f"phase {float(phi.max())!r} > phase_threshold = 1 has no voltage (the neuron "
                             f"has fired)")
        T = (PHASE_THRESHOLD - phi) / self.omega
        if derivative:
            V, dV = self.voltage_from_time(T, True)
            return V, _shape(-dV / self.omega)
        return self.voltage_from_time(T)

    def ptc(self, phi, w, derivatives=False):
        """Phase transition curve g(phi, w) = phi(V(phi) + w) (broadcasting phi and w).

        A result >= phi_th = 1 means the input makes the neuron fire now (V + w >= v_spike gives
        exactly 1).  With ``derivatives`` returns (g, dg/dphi, dg/dw), computed from the derivative of
        the forward fit: dg/dw = phi'(V + w) and dg/dphi = phi'(V + w) / phi'(V), V = V(phi).
        """
        phi = self._as_array(phi, "phi")
        w = self._as_array(w, "w")
        phi, w = np.broadcast_arrays(phi, w)
        V = self.voltage_from_phase(phi)
        if not derivatives:
            return self.phase_from_voltage(V + w)
        g, dg_du = self.phase_from_voltage(V + w, True)
        _, dphi_dv = self.phase_from_voltage(V, True)
        with np.errstate(divide="ignore", invalid="ignore"):
            dg_dphi = np.where(dphi_dv > 0, dg_du / np.where(dphi_dv > 0, dphi_dv, 1.0), 1.0)
        return g, _shape(dg_dphi), _shape(dg_du)


def _shape(x, shape=None):
    """Reshape and return Python floats for 0-d results."""
    x = np.asarray(x)
    if shape is not None:
        x = x.reshape(shape)
    if x.ndim == 0:
        return float(x)
    return x
