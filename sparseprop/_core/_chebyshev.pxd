# Compiled evaluation of phase tables (format: sparseprop/tables.py): piecewise Chebyshev series and
# Hermite interpolation on uniform grids, and the two maps of a table, the time to spike T(V) and
# its inverse V(T), with the tails and the analytic continuation of tables.py. All nogil, noexcept,
# inline (the event engine inlines them into its loop); the arrays belong to a CompiledTable.
#
# Data layout and invariants
# - ChebFit: `m` pieces on breaks[0] < ... < breaks[m]; row i of `coef` (row stride `stride`) holds
#   the Chebyshev coefficients of piece i in x' = (2x - a - b)/(b - a), [a, b] = breaks[i:i+2],
#   zero padded to the fit's largest degree (evaluated in full: the same trip count for every piece,
#   so no loop exit mispredicts); `inv_w[i]` = 1/(b - a). `dcoef` holds the coefficients of d/dx
#   (chain rule included, tables.chebyshev_derivative).
#   Interval search in O(1): for x >= breaks[0] the IEEE bit pattern of u = x - breaks[0] is monotone
#   in u, so bits(u) >> shift cuts the positive reals into cells uniform within each octave
#   (2^(52 - shift) cells per octave): a uniform index table for uniform breakpoints and for the
#   geometric (octave) breakpoints of the inverse maps near the threshold alike. guess[k] is a piece
#   at or before every x whose cell is key_lo + k (cells below key_lo map to 0, above to the last);
#   `nscan` branch-free conditional steps over the breakpoints (the most any cell needs; +inf
#   sentinels pad `breaks`) finish the search, so the result is exactly the piece with
#   breaks[i] <= x < breaks[i+1] (clipped to [0, m-1]) for any x, including NaN.
# - HermiteFit: uniform grid x_i = x0 + i h, i = 0..n-1; `poly` row i (6 doubles) holds the
#   coefficients in t = (x - (x0 + i h))/h of the quintic (or cubic, p4 = p5 = 0) Hermite interpolant
#   on [x_i, x_{i+1}], precomputed from the node data with the formulas of tables.hermite_eval:
#   y = p0 + t p1 + ... + t^5 p5 (the increment over p0 summed first, in Estrin's order). The index
#   is floor((x - x0)/h), clipped to [0, n-2]: a subtraction, a multiplication by 1/h, a truncation.
# - BitsGrid: a function of T > 0 as degree-7 polynomials on cells given by the IEEE bit pattern of
#   T: cell k covers [U_k, U_k+1) with 2^(52 - shift) cells per octave, index = (bits(T) >> shift) -
#   key_lo, local coordinate t = (bits(T) & mask) * 2^-shift in [0, 1) EXACTLY (no log, no
#   division, no rounding); row k of `coef` (8 doubles, one 64-byte line): monomial coefficients in
#   t, evaluated by Estrin's scheme. Valid for t_lo <= T <= t_hi. Two uses, both refitted from the
#   table's own maps when it is compiled and verified against them (see _chebyshev.pyx):
#   * TableMaps.inv_b, the fast inverse V(T): replaces the interp table's log(t_max/T) + Hermite
#     in maps_voltage (the Chebyshev tables' inverse is accurate in the backward sense only and
#     fails the check: they keep their own fit);
#   * the engine's fast path for ONE weight w <= 0 (e.g. the seed network's -J0/sqrt(K)):
#     G_w(T) = T(V(T) + w), the remaining time after an input at remaining time T, fitted as a
#     whole: one polynomial per input instead of two maps (CompiledTable.fused; `w` records the
#     weight, NaN for other grids). Outside [t_lo, t_hi] (within 1e-9 tau of the spike, the
#     continuation region) and for other weights the engine uses the two maps.
# - TableMaps: the forward map T(V) on [v_min, v_spike] and the inverse V(T) on [0, t_max] of one
#   table (method chebyshev or interp), the interp tails (forward: linear or one Hermite interval on
#   [x_hi, v_spike]; inverse: linear below t_lo, grid in s = log(t_max/T) above), the affine
#   continuation below v_min (`has_cont`) and the fast inverse.
#
# Semantics outside the domain (tables.py's module docstring): V >= v_spike -> T = 0 (fires now).
# V < v_min: the affine continuation if the table has one; otherwise T is CLAMPED to t_max (as if
# V = v_min): nogil code cannot raise, so callers that may leave the domain must check
# `V < v_min and not has_cont` themselves (the engine counts such inputs and Engine.run raises a
# ValueError after the chunk; the Python wrappers raise before evaluating). T > t_max: the inverse
# continuation, or v_min (clamped) without one. Results are clipped to [0, t_max] and [v_min, v_spike]
# inside the domain exactly as tables.py clips them.
cimport cython
from libc.stdint cimport int32_t, int64_t
from libc.math cimport log, log1p, expm1

cdef enum:
    TABLE_CHEBYSHEV = 0
    TABLE_INTERP = 1
    TAIL_LINEAR = 0
    TAIL_HERMITE = 1


ctypedef struct ChebFit:
    const double* breaks     # (m + 1 + nscan,): the breakpoints, then nscan sentinels +inf
    const double* inv_w      # (m,) 1 / (breaks[i+1] - breaks[i])
    const double* coef       # (m, stride), stride = degree + 1
    const double* dcoef      # (m, dstride) derivative coefficients, dstride = ddegree + 1
    const int32_t* guess     # (nguess,)
    Py_ssize_t m, stride, dstride, nguess
    int64_t key_lo
    int shift, nscan, degree, ddegree


ctypedef struct HermiteFit:
    const double* poly       # (n - 1, 6)
    Py_ssize_t n
    double x0, h, inv_h


ctypedef struct BitsGrid:
    const double* coef       # (ncell, 8), 64-byte aligned rows
    int64_t key_lo, ncell
    int shift
    int64_t mask             # 2^shift - 1
    double t_scale           # 2^-shift
    double t_lo, t_hi        # fitted domain of T (t_lo is a cell boundary); t_lo = +inf: none
    double w                 # G_w maps: the weight it is valid for (NaN for other grids / none)


ctypedef struct TableMaps:
    int method
    ChebFit fwd_c, inv_c
    HermiteFit fwd_h, inv_h
    double v_min, v_spike, t_max, period, omega
    # interp forward tail (V > x_hi)
    int ftail
    double x_hi, t_hi, ftail_slope, ftail_inv_h
    double ftail_poly[6]
    # interp inverse tail (T < t_lo)
    double t_lo, v_lo, itail_slope
    # affine continuation below v_min: F(V) = a V + b, g0 = a v_min + b + I
    bint has_cont
    double ca, cb, cg0, cdrive
    # fast inverse: V(T) refitted on the bits-of-T grid (no log, no division), for T in
    # [inv_b.t_lo, inv_b.t_hi]; used by maps_voltage (maps_voltage_d keeps the table's fit)
    BitsGrid inv_b


cdef extern from *:
    """
    #include <string.h>
    static inline long long sparseprop_double_bits(double x) {
        long long b; memcpy(&b, &x, sizeof b); return b;
    }
    """
    int64_t double_bits "sparseprop_double_bits"(double x) noexcept nogil


# ------------------------------------------------------------------------------------------ Chebyshev
cdef inline Py_ssize_t cheb_piece(const ChebFit* f, double x) noexcept nogil:
    """Index i of the piece with breaks[i] <= x < breaks[i+1], clipped to [0, m-1].

    Branch-free after the guess: `nscan` conditional increments (breaks is padded with +inf), so the
    trip count is the same for every x and never mispredicts."""
    cdef double u = x - f.breaks[0]
    cdef int64_t k = (double_bits(u) >> f.shift) - f.key_lo   # u < 0 has a negative bit pattern
    k = 0 if k < 0 else k
    k = f.nguess - 1 if k >= f.nguess else k
    cdef Py_ssize_t i = f.guess[k]
    cdef int j
    for j in range(f.nscan):
        i += x >= f.breaks[i + 1]
    return f.m - 1 if i >= f.m else i


cdef inline double clenshaw(const double* c, int deg, double x) noexcept nogil:
    """sum_{j <= deg} c[j] T_j(x) by Clenshaw's recurrence (b2 is subtracted first: one
    multiply-add per degree on the dependency chain). `deg` is the fit's largest degree (rows are
    zero padded): one trip count for every piece."""
    cdef double b1 = 0.0, b2 = 0.0, x2 = x + x, tmp
    cdef int j = deg
    while j > 0:
        tmp = (c[j] - b2) + x2 * b1
        b2 = b1
        b1 = tmp
        j -= 1
    return (c[0] - b2) + x * b1


cdef inline double cheb_eval(const ChebFit* f, double x) noexcept nogil:
    cdef Py_ssize_t i = cheb_piece(f, x)
    cdef double t = (2.0 * x - f.breaks[i] - f.breaks[i + 1]) * f.inv_w[i]
    return clenshaw(f.coef + i * f.stride, f.degree, t)


cdef inline double cheb_eval_d(const ChebFit* f, double x, double* d) noexcept nogil:
    cdef Py_ssize_t i = cheb_piece(f, x)
    cdef double t = (2.0 * x - f.breaks[i] - f.breaks[i + 1]) * f.inv_w[i]
    d[0] = clenshaw(f.dcoef + i * f.dstride, f.ddegree, t)
    return clenshaw(f.coef + i * f.stride, f.degree, t)


# ------------------------------------------------------------------------------------------ Hermite
cdef inline Py_ssize_t hermite_index(const HermiteFit* g, double x) noexcept nogil:
    cdef double r = (x - g.x0) * g.inv_h
    cdef Py_ssize_t i
    if not r > 0.0:                      # also NaN
        return 0
    if r >= <double>(g.n - 2):
        return g.n - 2
    i = <Py_ssize_t>r                    # r > 0: truncation is floor
    return i


cdef inline double horner5(const double* p, double t) noexcept nogil:
    """p0 + t (p1 + t (p2 + ...)): the increment over p0 is summed first (so its rounding stays
    relative to the local increment, as tables.hermite_eval's Horner form) but in Estrin's order,
    dependency depth 6 operations instead of Horner's 10."""
    cdef double t2 = t * t
    cdef double a = p[1] + p[2] * t
    cdef double b = (p[3] + p[4] * t) + p[5] * t2
    return p[0] + t * (a + b * t2)


cdef inline double horner5_d(const double* p, double t) noexcept nogil:
    """d/dt of horner5 (tables.hermite_eval's derivative form, before the division by h)."""
    return p[1] + t * (2.0 * p[2] + t * (3.0 * p[3] + t * (4.0 * p[4] + t * 5.0 * p[5])))


cdef inline double hermite_eval(const HermiteFit* g, double x) noexcept nogil:
    cdef Py_ssize_t i = hermite_index(g, x)
    cdef double t = (x - (g.x0 + i * g.h)) * g.inv_h
    return horner5(g.poly + 6 * i, t)


cdef inline double hermite_eval_d(const HermiteFit* g, double x, double* d) noexcept nogil:
    cdef Py_ssize_t i = hermite_index(g, x)
    cdef double t = (x - (g.x0 + i * g.h)) * g.inv_h
    d[0] = horner5_d(g.poly + 6 * i, t) * g.inv_h
    return horner5(g.poly + 6 * i, t)


cdef inline double bits_eval(const BitsGrid* f, double T) noexcept nogil:
    """The grid's function at t_lo <= T <= t_hi (Estrin: depth 3 instead of Horner's 7)."""
    cdef int64_t b = double_bits(T)
    cdef int64_t k = (b >> f.shift) - f.key_lo
    cdef double t = <double>(b & f.mask) * f.t_scale
    cdef const double* a = f.coef + 8 * k
    cdef double t2 = t * t
    cdef double t4 = t2 * t2
    return (((a[0] + a[1] * t) + (a[2] + a[3] * t) * t2)
            + ((a[4] + a[5] * t) + (a[6] + a[7] * t) * t2) * t4)


# ------------------------------------------------------------------------------------------ the maps
cdef inline double cont_time(const TableMaps* t, double v) noexcept nogil:
    """Affine continuation of T below v_min (tables.Table._cont_T)."""
    cdef double dv = v - t.v_min
    if t.ca == 0.0:
        return t.t_max - dv / t.cg0
    return t.t_max - log1p(t.ca * dv / t.cg0) / t.ca


cdef inline double cont_voltage(const TableMaps* t, double T) noexcept nogil:
    """Inverse of the continuation for T > t_max (tables.Table._cont_V)."""
    cdef double d = T - t.t_max
    if t.ca == 0.0:
        return t.v_min - t.cg0 * d
    return t.v_min + t.cg0 * expm1(-t.ca * d) / t.ca


cdef inline double fit_time(const TableMaps* t, double v) noexcept nogil:
    """The fitted T(V) for v_min <= V < v_spike (not clipped)."""
    if t.method == TABLE_CHEBYSHEV:
        return cheb_eval(&t.fwd_c, v)
    if v > t.x_hi:
        if t.ftail == TAIL_LINEAR:
            return t.ftail_slope * (t.v_spike - v)
        return horner5(t.ftail_poly, (v - t.x_hi) * t.ftail_inv_h)
    return hermite_eval(&t.fwd_h, v)


cdef inline double maps_time(const TableMaps* t, double v) noexcept nogil:
    """Time to spike T(V) in units of tau: 0 for V >= v_spike; the continuation (or t_max, clamped,
    without one) below v_min; the fit clipped to [0, t_max] in between."""
    cdef double T
    if v >= t.v_spike:
        return 0.0
    if not v >= t.v_min:                 # below the domain (or NaN)
        if t.has_cont:
            return cont_time(t, v)
        return t.t_max
    T = fit_time(t, v)
    if T < 0.0:
        return 0.0
    if T > t.t_max:
        return t.t_max
    return T


cdef inline double maps_time_d(const TableMaps* t, double v, double* dT) noexcept nogil:
    """T(V) and dT/dV (0 at and beyond v_spike; -1/(a V + b + I) on the continuation; 0 when clamped)."""
    cdef double T, r, s
    if v >= t.v_spike:
        dT[0] = 0.0
        return 0.0
    if not v >= t.v_min:
        if t.has_cont:
            dT[0] = -1.0 / (t.ca * v + t.cb + t.cdrive)
            return cont_time(t, v)
        dT[0] = 0.0
        return t.t_max
    if t.method == TABLE_CHEBYSHEV:
        T = cheb_eval_d(&t.fwd_c, v, dT)
    elif v > t.x_hi:
        if t.ftail == TAIL_LINEAR:
            dT[0] = -t.ftail_slope
            T = t.ftail_slope * (t.v_spike - v)
        else:
            s = (v - t.x_hi) * t.ftail_inv_h
            dT[0] = horner5_d(t.ftail_poly, s) * t.ftail_inv_h
            T = horner5(t.ftail_poly, s)
    else:
        T = hermite_eval_d(&t.fwd_h, v, dT)
    if T < 0.0:
        return 0.0
    if T > t.t_max:
        return t.t_max
    return T


cdef inline double fit_voltage(const TableMaps* t, double T) noexcept nogil:
    """The fitted V(T) for 0 < T <= t_max (not clipped)."""
    if t.method == TABLE_CHEBYSHEV:
        return cheb_eval(&t.inv_c, T)
    if T < t.t_lo:
        return t.v_spike + t.itail_slope * T
    return hermite_eval(&t.inv_h, log(t.t_max / T))


cdef inline double maps_voltage(const TableMaps* t, double T) noexcept nogil:
    """Voltage with time to spike T >= 0: v_spike at T <= 0; the inverse continuation (or v_min,
    clamped, without one) above t_max (1 + 16 eps); the fit clipped to [v_min, v_spike] between."""
    cdef double V
    if not T > 0.0:
        return t.v_spike
    if T > t.t_max:
        if T > t.t_max * (1.0 + 3.552713678800501e-15):     # tables.py: 16 eps of slack
            if t.has_cont:
                return cont_voltage(t, T)
            return t.v_min
        T = t.t_max
    if T >= t.inv_b.t_lo and T <= t.inv_b.t_hi:
        V = bits_eval(&t.inv_b, T)
    else:
        V = fit_voltage(t, T)
    if V < t.v_min:
        return t.v_min
    if V > t.v_spike:
        return t.v_spike
    return V


cdef inline double maps_voltage_d(const TableMaps* t, double T, double* dV) noexcept nogil:
    """V(T) and dV/dT."""
    cdef double V
    if not T > 0.0:
        dV[0] = 0.0
        return t.v_spike
    if T > t.t_max:
        if T > t.t_max * (1.0 + 3.552713678800501e-15):
            if t.has_cont:
                V = cont_voltage(t, T)
                dV[0] = -(t.ca * V + t.cb + t.cdrive)
                return V
            dV[0] = 0.0
            return t.v_min
        T = t.t_max
    if t.method == TABLE_CHEBYSHEV:
        V = cheb_eval_d(&t.inv_c, T, dV)
    elif T < t.t_lo:
        dV[0] = t.itail_slope
        V = t.v_spike + t.itail_slope * T
    else:
        V = hermite_eval_d(&t.inv_h, log(t.t_max / T), dV)
        dV[0] = -dV[0] / T                                   # ds/dT = -1/T
    if V < t.v_min:
        return t.v_min
    if V > t.v_spike:
        return t.v_spike
    return V


cdef inline double maps_input(const TableMaps* t, double T, double w, bint* below) noexcept nogil:
    """Remaining time to spike after a voltage jump w at remaining time T: T(V(T) + w).

    0 means "fires now" (V + w >= v_spike). `below` is set when V + w < v_min and the table has no
    continuation (the result is then clamped to t_max)."""
    cdef double v = maps_voltage(t, T) + w
    if v >= t.v_spike:
        return 0.0
    if not v >= t.v_min and not t.has_cont:
        below[0] = True
    return maps_time(t, v)


@cython.final
cdef class BitsHolder:
    cdef BitsGrid map
    cdef readonly object coef         # owns map.coef (inside an over-allocated buffer)
    cdef readonly dict info           # weight, domain, cells per octave, achieved error, build time


ctypedef double (*map_fn)(const TableMaps*, double) noexcept nogil
ctypedef double (*map_d_fn)(const TableMaps*, double, double*) noexcept nogil


@cython.final
cdef class CompiledTable:
    cdef TableMaps maps
    cdef readonly object table        # the sparseprop.tables.Table
    cdef object _arrays               # keeps every array the struct points into alive
    cdef dict _fused                  # weight -> BitsHolder (or None: no fused map for it)
    cdef readonly BitsHolder inverse  # the fast inverse V(T) (None: the table's inverse fit is used)
    cdef _map(self, xs, map_fn f, map_d_fn fd, bint derivative)
