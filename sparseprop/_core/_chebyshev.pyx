# Compiled phase tables: builds the nogil structures of _chebyshev.pxd from a sparseprop.tables.Table
# (interval-guess tables, per-interval Hermite polynomials, derivative coefficients), refits the
# inverse map and the single-weight maps G_w on the bits-of-T grid (verified against the table's own
# maps before use), and exposes small vectorised wrappers for tests and benchmarks. Evaluation
# semantics are tables.py's; the wrappers raise where tables.py raises (below the domain without a
# continuation, NaN, phi > 1), the engine cannot (see the .pxd) and counts instead.
#
# Bits-grid fits (_fit_bits): on every cell, 24 Chebyshev-Lobatto samples of the function (at T whose
# engine coordinate t is exact), a least-squares degree-7 fit in the Chebyshev basis converted to
# monomials in t, then a check on 48 random points per cell plus the cell ends; the number of cells
# per octave doubles until the check passes (else no grid: the table's own maps are used).
cimport cython
from libc.math cimport exp, log
from libc.stdint cimport int32_t, int64_t

import numpy as np

_MAX_GUESS = 4096          # largest interval-guess table (int32 entries)
_MAX_MANTISSA_BITS = 12

FUSED_DEGREE = 7           # one 64-byte line of coefficients per cell
FUSED_TOL = 4e-15          # largest phase error of the fused map against the two-map composition
                           # (whose own rounding noise is ~1e-15; table tolerance 1e-14)
FUSED_T_LO = 2.0 ** -30    # below (within ~1e-9 tau of the spike) the engine uses the two maps
_FUSED_SAMPLES = 24
_FUSED_CHECKS = 48
_FUSED_MAX_BITS = 8        # at most 256 cells per octave of T


def _key(double u, int shift):
    """bits(u) >> shift for a double u >= 0 (the cell of u)."""
    return int(np.array(u, dtype=np.float64).view(np.int64)) >> shift


def guess_table(breaks):
    """Interval-guess table of a breakpoint array: (guess int32 array, key_lo, shift, nscan).

    Cells: bits(x - breaks[0]) >> shift, i.e. 2^(52 - shift) cells per octave of x - breaks[0].
    guess[k] is the piece of the lowest x that can fall into cell key_lo + k (rounding of
    x - breaks[0] included), nscan the largest number of breakpoints any cell still has to step
    over. Among tables of at most 4096 entries the one with the smallest nscan (then the smallest
    table) is chosen.
    """
    breaks = np.ascontiguousarray(breaks, dtype=np.float64)
    m = breaks.shape[0] - 1
    if m < 1:
        raise ValueError("breaks: need at least two breakpoints")
    b0 = float(breaks[0])
    u1 = float(breaks[1] - b0)
    um = float(breaks[m] - b0)
    best = None
    for mb in range(0, _MAX_MANTISSA_BITS + 1):
        shift = 52 - mb
        key_lo, key_hi = _key(u1, shift), _key(um, shift)
        if key_hi - key_lo + 1 > _MAX_GUESS:
            break
        keys = np.arange(key_lo, key_hi + 2, dtype=np.int64) << shift
        u = keys.view(np.float64)
        x = b0 + u
        margin = 4.0 * (np.spacing(np.abs(x)) + np.spacing(u))
        # lowest real x whose rounded offset fl(x - b0) can lie in cell k, and highest
        nc = x.shape[0] - 1
        lo = np.clip(np.searchsorted(breaks, x[:nc] - margin[:nc], side="right") - 1, 0, m - 1)
        hi = np.clip(np.searchsorted(breaks, x[1:] + margin[1:], side="right") - 1, 0, m - 1)
        lo[0] = 0
        hi[nc - 1] = m - 1                   # the last cell also takes everything above
        nscan = int(np.max(hi - lo))
        if best is None or nscan < best[0]:
            best = (nscan, lo, key_lo, shift)
        if nscan == 0:
            break
    nscan, lo, key_lo, shift = best
    return np.ascontiguousarray(lo, dtype=np.int32), int(key_lo), int(shift), int(nscan)


def hermite_poly(nodes, double h):
    """Per-interval Horner coefficients (n-1, 6) in t = (x - x_i)/h of the cubic ((n, 2) nodes
    [y, y']) or quintic ((n, 3) nodes [y, y', y'']) Hermite interpolant (tables.hermite_eval)."""
    nodes = np.asarray(nodes, dtype=np.float64)
    if nodes.ndim != 2 or nodes.shape[0] < 2 or nodes.shape[1] not in (2, 3):
        raise ValueError(f"nodes: expected shape (n >= 2, 2 or 3), got {nodes.shape}")
    y0, y1 = nodes[:-1, 0], nodes[1:, 0]
    d0, d1 = h * nodes[:-1, 1], h * nodes[1:, 1]
    p = np.zeros((nodes.shape[0] - 1, 6))
    p[:, 0] = y0
    p[:, 1] = d0
    if nodes.shape[1] == 2:
        delta = (y1 - y0) - d0
        dd = d1 - d0
        p[:, 2] = 3.0 * delta - dd
        p[:, 3] = dd - 2.0 * delta
    else:
        s0 = h * h * nodes[:-1, 2]
        s1 = h * h * nodes[1:, 2]
        delta = (y1 - y0) - d0 - 0.5 * s0
        dd = d1 - d0 - s0
        ds = s1 - s0
        p[:, 2] = 0.5 * s0
        p[:, 3] = 10.0 * delta - 4.0 * dd + 0.5 * ds
        p[:, 4] = -15.0 * delta + 7.0 * dd - ds
        p[:, 5] = 6.0 * delta - 3.0 * dd + 0.5 * ds
    return p


def _degrees(coef):
    nz = coef != 0.0
    idx = np.arange(coef.shape[1])
    return np.ascontiguousarray(np.max(np.where(nz, idx, 0), axis=1), dtype=np.int32)


def _derivative_coef(breaks, coef):
    """d/dx coefficients per piece (tables.chebyshev_derivative, chain rule included)."""
    m, n = coef.shape
    out = np.zeros((m, max(n - 1, 1)))
    for i in range(m):
        if n > 1:
            out[i, : n - 1] = np.polynomial.chebyshev.chebder(coef[i]) * (2.0 / (breaks[i + 1] - breaks[i]))
    return out



cdef class _ChebHolder:
    """Owns the arrays of one ChebFit."""
    cdef ChebFit fit
    cdef object arrays

    def __init__(self, breaks, coef, derivative=True):
        cdef const double[::1] br, iw, cf, dc
        cdef const int32_t[::1] gs
        breaks = np.ascontiguousarray(breaks, dtype=np.float64)
        coef = np.ascontiguousarray(coef, dtype=np.float64)
        if coef.ndim != 2 or breaks.ndim != 1 or coef.shape[0] != breaks.shape[0] - 1 or coef.shape[1] < 1:
            raise ValueError(f"coef: shape {coef.shape} does not match {breaks.shape[0]} breakpoints")
        if not np.all(np.diff(breaks) > 0):
            raise ValueError("breaks: must be strictly increasing")
        inv_w = 1.0 / np.diff(breaks)
        coef = np.ascontiguousarray(coef[:, : int(np.max(_degrees(coef))) + 1])     # drop all-zero columns
        if derivative:
            dcoef = _derivative_coef(breaks, coef)
            dcoef = np.ascontiguousarray(dcoef[:, : int(np.max(_degrees(dcoef))) + 1])
        else:
            dcoef = np.zeros((coef.shape[0], 1))
        guess, key_lo, shift, nscan = guess_table(breaks)
        padded = np.concatenate([breaks, np.full(nscan + 1, np.inf)])
        self.arrays = (padded, inv_w, coef, dcoef, guess)
        br = padded
        iw = inv_w
        cf = coef.ravel()
        dc = dcoef.ravel()
        gs = guess
        self.fit.breaks = &br[0]
        self.fit.inv_w = &iw[0]
        self.fit.coef = &cf[0]
        self.fit.dcoef = &dc[0]
        self.fit.guess = &gs[0]
        self.fit.m = coef.shape[0]
        self.fit.stride = coef.shape[1]
        self.fit.degree = coef.shape[1] - 1
        self.fit.dstride = dcoef.shape[1]
        self.fit.ddegree = dcoef.shape[1] - 1
        self.fit.nguess = guess.shape[0]
        self.fit.key_lo = key_lo
        self.fit.shift = shift
        self.fit.nscan = nscan


cdef class _HermiteHolder:
    """Owns the polynomial array of one HermiteFit."""
    cdef HermiteFit fit
    cdef object poly

    def __init__(self, double x0, double h, nodes):
        cdef const double[::1] pv
        if not (h > 0.0):
            raise ValueError(f"h: must be > 0, got {h}")
        poly = np.ascontiguousarray(hermite_poly(nodes, h)).ravel()
        self.poly = poly
        pv = poly
        self.fit.poly = &pv[0]
        self.fit.n = np.asarray(nodes).shape[0]
        self.fit.x0 = x0
        self.fit.h = h
        self.fit.inv_h = 1.0 / h


def eval_chebyshev(breaks, coef, x, derivative=False):
    """Compiled piecewise Chebyshev evaluation (numpy.polynomial convention on each piece; points
    outside [breaks[0], breaks[-1]] use the end pieces). Returns values or (values, d/dx)."""
    cdef _ChebHolder hd = _ChebHolder(breaks, coef, derivative)
    xs = np.ascontiguousarray(x, dtype=np.float64)
    cdef const double[::1] xv = xs.ravel()
    out = np.empty(xv.shape[0])
    dout = np.empty(xv.shape[0])
    cdef double[::1] ov = out, dv = dout
    cdef Py_ssize_t i
    cdef bint der = derivative
    with nogil:
        for i in range(xv.shape[0]):
            if der:
                ov[i] = cheb_eval_d(&hd.fit, xv[i], &dv[i])
            else:
                ov[i] = cheb_eval(&hd.fit, xv[i])
    if derivative:
        return out.reshape(xs.shape), dout.reshape(xs.shape)
    return out.reshape(xs.shape)


def find_piece(breaks, x):
    """Compiled interval search: piece index of each x (as np.searchsorted(breaks, x, 'right') - 1
    clipped to [0, m-1])."""
    cdef _ChebHolder hd = _ChebHolder(breaks, np.zeros((np.asarray(breaks).shape[0] - 1, 1)), False)
    xs = np.ascontiguousarray(x, dtype=np.float64)
    cdef const double[::1] xv = xs.ravel()
    out = np.empty(xv.shape[0], dtype=np.intp)
    cdef Py_ssize_t[::1] ov = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(xv.shape[0]):
            ov[i] = cheb_piece(&hd.fit, xv[i])
    return out.reshape(xs.shape)


def eval_hermite(double x0, double h, nodes, x, derivative=False):
    """Compiled Hermite interpolation on the grid x0 + i h (tables.hermite_eval's conventions)."""
    cdef _HermiteHolder hd = _HermiteHolder(x0, h, nodes)
    xs = np.ascontiguousarray(x, dtype=np.float64)
    cdef const double[::1] xv = xs.ravel()
    out = np.empty(xv.shape[0])
    dout = np.empty(xv.shape[0])
    cdef double[::1] ov = out, dv = dout
    cdef Py_ssize_t i
    cdef bint der = derivative
    with nogil:
        for i in range(xv.shape[0]):
            if der:
                ov[i] = hermite_eval_d(&hd.fit, xv[i], &dv[i])
            else:
                ov[i] = hermite_eval(&hd.fit, xv[i])
    if derivative:
        return out.reshape(xs.shape), dout.reshape(xs.shape)
    return out.reshape(xs.shape)


cdef class BitsHolder:
    """A fused map G_w(T) = T(V(T) + w) for one weight (see _chebyshev.pxd); built by
    CompiledTable.fused. `info`: weight, fitted domain, cells, bytes, achieved phase error."""

    def __call__(self, T):
        """G_w(T) for T in [t_lo, t_hi] (no domain check beyond that: ValueError outside)."""
        T = np.asarray(T, dtype=np.float64)
        if np.any(~((T >= self.map.t_lo) & (T <= self.map.t_hi))):
            raise ValueError(f"T outside the fused domain [{self.map.t_lo}, {self.map.t_hi}]")
        cdef const double[::1] tv = np.ascontiguousarray(T).ravel()
        out = np.empty(tv.shape[0])
        cdef double[::1] ov = out
        cdef Py_ssize_t i
        with nogil:
            for i in range(tv.shape[0]):
                ov[i] = bits_eval(&self.map, tv[i])
        return _out(out, T.shape)


@cython.final
cdef class CompiledTable:
    """The nogil form of a :class:`sparseprop.tables.Table` (what the event engine evaluates).

    Parameters
    ----------
    table : sparseprop.tables.Table
    fast_inverse : bool
        Refit the inverse map V(T) on the bits-of-T grid (``self.inverse``, None if the fit fails its
        check) and use it in :meth:`voltage_from_time`, :meth:`input` and the engine (not in the
        derivative evaluations, which keep the table's fits). False: the table's fits only.

    The vectorised methods mirror the Table's (same semantics, same errors); they exist for tests
    and benchmarks and to convert states at the Python boundary consistently with the engine.
    """

    def __init__(self, table, fast_inverse=True):
        from sparseprop.tables import Table

        if not isinstance(table, Table):
            raise TypeError(f"table: expected a sparseprop.tables.Table, got {type(table).__name__}")
        cdef TableMaps* t = &self.maps
        self.table = table
        md = table.metadata
        a = table.arrays
        t.v_min = table.v_min
        t.v_spike = table.v_spike
        t.t_max = table.t_max
        t.period = table.period
        t.omega = table.omega
        keep = []
        if table.method == "chebyshev":
            t.method = TABLE_CHEBYSHEV
            f = _ChebHolder(a["fwd_breaks"], a["fwd_coef"])
            i = _ChebHolder(a["inv_breaks"], a["inv_coef"])
            t.fwd_c = (<_ChebHolder>f).fit
            t.inv_c = (<_ChebHolder>i).fit
            keep += [f, i]
            t.x_hi = table.v_spike
            t.t_lo = 0.0
        else:
            t.method = TABLE_INTERP
            fm, im = md["forward"], md["inverse"]
            f = _HermiteHolder(float(fm["x0"]), float(fm["h"]), a["fwd_nodes"])
            i = _HermiteHolder(float(im["x0"]), float(im["h"]), a["inv_nodes"])
            t.fwd_h = (<_HermiteHolder>f).fit
            t.inv_h = (<_HermiteHolder>i).fit
            keep += [f, i]
            t.x_hi = float(fm["x_hi"])
            t.t_hi = float(fm["t_hi"])
            t.ftail = TAIL_LINEAR if fm["tail"] == "linear" else TAIL_HERMITE
            t.ftail_slope = t.t_hi / (t.v_spike - t.x_hi) if t.v_spike > t.x_hi else 0.0
            if t.ftail == TAIL_HERMITE:
                ht = t.v_spike - t.x_hi
                fwd_nodes = a["fwd_nodes"]
                tn = np.vstack([fwd_nodes[fwd_nodes.shape[0] - 1], np.asarray(fm["tail_node"], dtype=np.float64)])
                p = hermite_poly(tn, ht)[0]
                for k in range(6):
                    t.ftail_poly[k] = p[k]
                t.ftail_inv_h = 1.0 / ht
            t.t_lo = float(im["t_lo"])
            t.v_lo = float(im["v_lo"])
            t.itail_slope = (t.v_lo - t.v_spike) / t.t_lo
        self._fused = {}
        cont = table.continuation
        t.has_cont = cont is not None
        t.cdrive = table.drive
        if cont is not None:
            t.ca = float(cont["a"])
            t.cb = float(cont["b"])
            t.cg0 = t.ca * t.v_min + t.cb + table.drive
        self._arrays = keep
        t.inv_b.t_lo = np.inf                 # off while it is fitted to the table's own inverse
        t.inv_b.t_hi = -np.inf
        self.inverse = _build_inverse(self) if fast_inverse else None
        if self.inverse is not None:
            t.inv_b = (<BitsHolder>self.inverse).map

    # --------------------------------------------------------------------------------- properties
    @property
    def method(self):
        return self.table.method

    @property
    def period(self):
        return self.maps.period

    @property
    def t_max(self):
        return self.maps.t_max

    # --------------------------------------------------------------------------------- checks
    def _check_v(self, v):
        if np.isnan(v).any():
            raise ValueError("v contains NaN")
        if not self.maps.has_cont and (v < self.maps.v_min).any():
            self.table._below_domain("v", float(v.min()))

    def _check_T(self, T):
        if np.isnan(T).any():
            raise ValueError("T contains NaN")
        if (T < 0).any():
            raise ValueError(f"time to spike T={float(T.min())!r} < 0: beyond the threshold")
        if not self.maps.has_cont and (T > self.maps.t_max * (1.0 + 3.552713678800501e-15)).any():
            self.table._below_domain("phase", float(1.0 - self.maps.omega * T.max()))

    # --------------------------------------------------------------------------------- evaluation
    def time_to_spike(self, v, derivative=False):
        """T(V) in units of tau (0 for V >= v_spike); with ``derivative`` also dT/dV."""
        vs = np.ascontiguousarray(v, dtype=np.float64)
        self._check_v(vs)
        return self._map(vs, maps_time, maps_time_d, derivative)

    def voltage_from_time(self, T, derivative=False):
        """V(T) for T >= 0 (V(0) = v_spike); with ``derivative`` also dV/dT."""
        ts = np.ascontiguousarray(T, dtype=np.float64)
        self._check_T(ts)
        return self._map(ts, maps_voltage, maps_voltage_d, derivative)

    cdef _map(self, xs, map_fn f, map_d_fn fd, bint derivative):
        """Apply a compiled map (and optionally its derivative) elementwise, nogil."""
        cdef const double[::1] xv = xs.ravel()
        out = np.empty(xv.shape[0])
        dout = np.empty(xv.shape[0])
        cdef double[::1] ov = out, dv = dout
        cdef Py_ssize_t i
        with nogil:
            for i in range(xv.shape[0]):
                if derivative:
                    ov[i] = fd(&self.maps, xv[i], &dv[i])
                else:
                    ov[i] = f(&self.maps, xv[i])
        if derivative:
            return _out(out, xs.shape), _out(dout, xs.shape)
        return _out(out, xs.shape)

    def input(self, T, w):
        """What the engine does to a neuron with remaining time T (units of tau) receiving a jump w:
        returns the new remaining time T(V(T) + w) (0 = fires now). Raises ValueError where the
        engine would count an input below the domain."""
        T, w = np.broadcast_arrays(np.asarray(T, dtype=np.float64), np.asarray(w, dtype=np.float64))
        shape = T.shape
        cdef const double[::1] tv = np.ascontiguousarray(T).ravel()
        cdef const double[::1] wv = np.ascontiguousarray(w).ravel()
        out = np.empty(tv.shape[0])
        cdef double[::1] ov = out
        cdef Py_ssize_t i, nbelow = 0
        cdef bint below
        self._check_T(np.asarray(tv))
        with nogil:
            for i in range(tv.shape[0]):
                below = False
                ov[i] = maps_input(&self.maps, tv[i], wv[i], &below)
                nbelow += below
        if nbelow:
            raise ValueError(f"{nbelow} inputs drive the voltage below the table domain (v_min="
                             f"{self.maps.v_min!r}) and the table has no analytic continuation there")
        return _out(out, shape)

    def fused(self, double w):
        """The fused fast map G_w(T) = T(V(T) + w) for one weight w <= 0 (a BitsHolder), built on
        first use and cached; None if w > 0, w is not finite, or the fit does not reach FUSED_TOL
        with at most 256 cells per octave (the engine then keeps the two maps)."""
        if w in self._fused:
            return self._fused[w]
        holder = _build_fused(self, w) if (w <= 0.0 and np.isfinite(w)) else None
        self._fused[w] = holder
        return holder

    def fused_input(self, T, double w):
        """What the engine does for weight w when it has a fused map for w: G_w(T) on the fused
        domain, the two-map composition (:meth:`input`) elsewhere."""
        cdef BitsHolder f = self.fused(w)
        T = np.asarray(T, dtype=np.float64)
        out = np.array(self.input(T, w), dtype=np.float64, ndmin=1).ravel()
        if f is None:
            return _out(out, T.shape)
        cdef const double[::1] tv = np.ascontiguousarray(T).ravel()
        cdef double[::1] ov = out
        cdef Py_ssize_t i
        with nogil:
            for i in range(tv.shape[0]):
                if tv[i] >= f.map.t_lo and tv[i] <= f.map.t_hi:
                    ov[i] = bits_eval(&f.map, tv[i])
        return _out(out, T.shape)

    def ptc(self, phi, w, derivatives=False):
        """g(phi, w) = phi(V(phi) + w) (>= 1: fires now); with ``derivatives`` also dg/dphi and dg/dw
        (tables.Table.ptc's formulas: from the derivative of the forward fit)."""
        phi, w = np.broadcast_arrays(np.asarray(phi, dtype=np.float64), np.asarray(w, dtype=np.float64))
        shape = phi.shape
        pa = np.ascontiguousarray(phi).ravel()
        if np.isnan(pa).any() or np.isnan(w).any():
            raise ValueError("phi/w contain NaN")
        if (pa > 1.0).any():
            raise ValueError(f"phase {float(pa.max())!r} > phase_threshold = 1 has no voltage (the neuron has fired)")
        self._check_T((1.0 - pa) * self.maps.period)
        cdef const double[::1] pv = pa
        cdef const double[::1] wv = np.ascontiguousarray(w).ravel()
        g = np.empty(pv.shape[0])
        gp = np.empty(pv.shape[0])
        gw = np.empty(pv.shape[0])
        cdef double[::1] gv = g, gpv = gp, gwv = gw
        cdef Py_ssize_t i, nbelow = 0
        cdef double V, T, dTu, dTv, om = self.maps.omega, u
        cdef bint der = derivatives
        with nogil:
            for i in range(pv.shape[0]):
                T = (1.0 - pv[i]) / om
                V = maps_voltage(&self.maps, T)
                u = V + wv[i]
                if not u >= self.maps.v_min and not self.maps.has_cont:
                    nbelow += 1
                if der:
                    T = maps_time_d(&self.maps, u, &dTu)
                    maps_time_d(&self.maps, V, &dTv)
                    gv[i] = 1.0 - om * T
                    gwv[i] = -om * dTu
                    gpv[i] = dTu / dTv if dTv < 0.0 else 1.0
                else:
                    gv[i] = 1.0 - om * maps_time(&self.maps, u)
        if nbelow:
            raise ValueError(f"{nbelow} of the inputs drive the voltage below the table domain (v_min="
                             f"{self.maps.v_min!r}) and the table has no analytic continuation there")
        if derivatives:
            return _out(g, shape), _out(gp, shape), _out(gw, shape)
        return _out(g, shape)


def _cheb_to_monomial(n):
    """(n+1, n+1) matrix M: monomial coefficients in t of the Chebyshev basis T_j(2t - 1) (row j)."""
    Ch, P = np.polynomial.Chebyshev, np.polynomial.Polynomial
    M = np.zeros((n + 1, n + 1))
    for j in range(n + 1):
        c = Ch.basis(j, domain=[0.0, 1.0]).convert(kind=P, domain=[0.0, 1.0], window=[0.0, 1.0]).coef
        M[j, : c.size] = c
    return M


def _fit_cells(ts, G, n):
    """Least-squares degree-n fits (rows of G sampled at ts in [0, 1]) -> monomial coefficients."""
    V = np.polynomial.chebyshev.chebvander(2.0 * ts - 1.0, n)
    C = np.linalg.lstsq(V, G.T, rcond=None)[0].T                 # Chebyshev coefficients per row
    return C @ _cheb_to_monomial(n)


cdef BitsHolder _make_bits(arr, int64_t key_lo, int64_t ncell, int shift, double t_lo, double t_hi, double w):
    cdef BitsHolder h = BitsHolder.__new__(BitsHolder)
    cdef const double[::1] cv = arr.ravel()
    h.coef = arr
    h.map.coef = &cv[0]
    h.map.key_lo = key_lo
    h.map.ncell = ncell
    h.map.shift = shift
    h.map.mask = (<int64_t>1 << shift) - 1
    h.map.t_scale = 2.0 ** -shift
    h.map.t_lo = t_lo
    h.map.t_hi = t_hi
    h.map.w = w
    return h


def _fit_bits(func, double t_lo, double t_hi, check, double w=np.nan, int min_bits=2,
              int max_bits=_FUSED_MAX_BITS):
    """Fit `func` (vectorised T -> values) on [t_lo, t_hi] by degree-7 polynomials on the bits-of-T
    grid with 2^b cells per octave, b = min_bits, ..., max_bits, until `check(T, fitted, func(T))` (the
    error normalised so that <= 1 passes) holds on 48 random points per cell plus the cell ends.
    Returns (BitsHolder, error, check points, b) or None."""
    n = FUSED_DEGREE
    nodes = 0.5 - 0.5 * np.cos(np.pi * np.arange(_FUSED_SAMPLES) / (_FUSED_SAMPLES - 1))
    rng = np.random.default_rng(12345)
    cdef BitsHolder h
    cdef Py_ssize_t i
    for mb in range(min_bits, max_bits + 1):
        shift = 52 - mb
        key_lo = _key(t_lo, shift)
        ncell = _key(t_hi, shift) - key_lo + 1
        U = ((key_lo + np.arange(ncell + 1, dtype=np.int64)) << shift).view(np.float64)
        Wd = U[1:] - U[:ncell]
        t_end = np.ones(ncell)
        t_end[ncell - 1] = (t_hi - U[ncell - 1]) / Wd[ncell - 1]
        hi = np.minimum(U[1:], t_hi)
        T = np.clip(U[:ncell, None] + (nodes[None, :] * t_end[:, None]) * Wd[:, None], U[:ncell, None], hi[:, None])
        ts = (T - U[:ncell, None]) / Wd[:, None]                # exact: the engine's t for these T
        G = np.asarray(func(T.ravel())).reshape(T.shape)
        coef = np.empty((ncell, n + 1))
        full = t_end == 1.0
        if np.any(full):
            first = int(np.flatnonzero(full)[0])                # full cells share their sample t
            coef[full] = _fit_cells(ts[first], G[full], n)
        for i in np.flatnonzero(~full):
            coef[i] = _fit_cells(ts[i], G[i : i + 1], n)[0]
        buf = np.zeros(ncell * 8 + 8)                           # 64-byte aligned rows
        off = (-buf.ctypes.data % 64) // 8
        arr = buf[off : off + ncell * 8].reshape(ncell, 8)
        arr[:, : n + 1] = coef
        h = _make_bits(arr, key_lo, ncell, shift, t_lo, t_hi, w)
        # independent check points (random in every cell, plus the cell ends) against func
        Tc = U[:ncell, None] + rng.random((ncell, _FUSED_CHECKS)) * (hi - U[:ncell])[:, None]
        Tc = np.concatenate([Tc.ravel(), U[:ncell], hi, np.nextafter(hi, 0.0)])
        Tc = Tc[(Tc >= t_lo) & (Tc <= t_hi)]
        err = float(check(Tc, h(Tc), np.asarray(func(Tc))))
        if err <= 1.0:
            return h, err, int(Tc.size), mb
    return None


cdef BitsHolder _build_fused(CompiledTable tab, double w):
    import time

    cdef TableMaps* m = &tab.maps
    cdef BitsHolder h
    t0 = time.perf_counter()
    t_hi = m.t_max
    if not m.has_cont:           # stay where V(T) + w >= v_min (else the two maps count the input)
        t_hi = min(t_hi, maps_time(m, m.v_min - w) * (1.0 - 1e-9))
    t_lo = FUSED_T_LO
    if not t_hi > 4.0 * t_lo:
        return None
    omega = m.omega
    res = _fit_bits(lambda T: tab.input(T, w), t_lo, t_hi,
                    lambda T, got, ref: np.max(np.abs(got - ref)) * omega / FUSED_TOL, w)
    if res is None:
        return None
    h, err, nchk, mb = res
    h.info = {"weight": w, "t_lo": t_lo, "t_hi": t_hi, "cells_per_octave": 1 << mb, "cells": int(h.map.ncell),
              "bytes": int(h.map.ncell * 64), "degree": FUSED_DEGREE, "max_phase_error": err * FUSED_TOL,
              "check_points": nchk, "build_s": time.perf_counter() - t0}
    return h


INVERSE_TOL = 3e-15        # fast inverse: largest phase difference it may make to the PTC against the
                           # table's own inverse, for |w| <= 1 (see _build_inverse); the difference is
                           # mostly the rounding noise of the table's evaluation (p99 ~ 1e-15)
_INVERSE_CHECK_W = (-1.0, -0.5, -0.2, -0.05, 0.0, 0.05, 0.2, 0.5)


cdef BitsHolder _build_inverse(CompiledTable tab):
    """V(T) on the bits grid, checked where it matters: for each test weight w, the phase error of
    T(V + w) (the PTC) against the table's own inverse must stay below INVERSE_TOL (points where V + w
    leaves the domain of a table without continuation are skipped)."""
    import time

    cdef TableMaps* m = &tab.maps
    cdef BitsHolder h
    t0 = time.perf_counter()
    t_lo, t_hi = FUSED_T_LO, m.t_max
    omega = m.omega

    fwd = tab.time_to_spike

    def check(T, got, ref):
        err = 0.0
        for w in _INVERSE_CHECK_W:
            ok = (ref + w >= m.v_min) | m.has_cont
            ok &= (got + w >= m.v_min) | m.has_cont
            if np.any(ok):
                d = np.abs(fwd(got[ok] + w) - fwd(ref[ok] + w)) * omega
                err = max(err, float(np.max(d)))
        return err / INVERSE_TOL

    res = _fit_bits(tab.voltage_from_time, t_lo, t_hi, check, min_bits=5, max_bits=6)
    if res is None:
        return None
    h, err, nchk, mb = res
    h.info = {"t_lo": t_lo, "t_hi": t_hi, "cells_per_octave": 1 << mb, "cells": int(h.map.ncell),
              "bytes": int(h.map.ncell * 64), "degree": FUSED_DEGREE, "max_ptc_phase_error": err * INVERSE_TOL,
              "check_weights": list(_INVERSE_CHECK_W), "check_points": nchk, "build_s": time.perf_counter() - t0}
    return h


def _out(x, shape):
    x = x.reshape(shape)
    return float(x) if x.ndim == 0 else x


# ------------------------------------------------------------------------------------------ benchmarks
def bench_table_ptc(CompiledTable table, phi, w, Py_ssize_t reps=1, fused=None):
    """Nogil loop: sum of g(phi_i, w_i) over the arrays, `reps` times (phase in, phase out, the
    engine's arithmetic: T = (1 - phi)/omega, T' = T(V(T) + w), g = 1 - omega T'). With a
    BitsHolder `fused` the engine's fused path is taken where it applies (weight and domain).
    Returns the sum (so the work cannot be optimised away)."""
    cdef const double[::1] pv = np.ascontiguousarray(phi, dtype=np.float64)
    cdef const double[::1] wv = np.ascontiguousarray(w, dtype=np.float64)
    cdef Py_ssize_t r, i, n = pv.shape[0]
    cdef double acc = 0.0, om = table.maps.omega, inv_om = 1.0 / table.maps.omega, T
    cdef bint below = False
    cdef BitsGrid fm
    fm.w = np.nan
    if fused is not None:
        fm = (<BitsHolder>fused).map
    with nogil:
        for r in range(reps):
            for i in range(n):
                T = (1.0 - pv[i]) * inv_om
                if wv[i] == fm.w and T >= fm.t_lo and T <= fm.t_hi:
                    acc += 1.0 - om * bits_eval(&fm, T)
                else:
                    acc += 1.0 - om * maps_input(&table.maps, T, wv[i], &below)
    return acc


def bench_lif_ptc(double drive, phi, w, Py_ssize_t reps=1, double v_reset=0.0):
    """Nogil loop: sum of the analytic LIF PTC g(phi, w) = -omega ln(exp(-phi/omega) - w/(I - v_r))."""
    cdef const double[::1] pv = np.ascontiguousarray(phi, dtype=np.float64)
    cdef const double[::1] wv = np.ascontiguousarray(w, dtype=np.float64)
    cdef Py_ssize_t r, i, n = pv.shape[0]
    cdef double omega = 1.0 / log((drive - v_reset) / (drive - 1.0))
    cdef double inv_om = 1.0 / omega, inv_i = 1.0 / (drive - v_reset), acc = 0.0
    with nogil:
        for r in range(reps):
            for i in range(n):
                acc += -omega * log(exp(-pv[i] * inv_om) - wv[i] * inv_i)
    return acc
