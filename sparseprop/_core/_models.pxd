# Neuron models behind one interface, in the coordinates the event engine works in.
#
# The engine keeps one global `clock` and, per neuron, a `state` s and a heap `key`: the clock value at
# which the neuron fires if nothing else happens (+inf: never on its own). Clock and key are the same
# strictly increasing function of time, chosen per model so that free flow changes nothing stored:
#   LIF  clock E = exp(t/tau)  (renormalised), s = (I - V) q E   -> an input is one multiply-add
#   QIF, shared drive (phase-based): key = diamond angle of the half-phase of the next spike,
#        unwrapped (4 per turn). The diamond angle is a rational, monotone function of a direction
#        with bounded derivative in the angle, so an input is a shear of the direction and one
#        division: no transcendental function per target (one atan2 per spike gives the time).
#   QIF, per-neuron drive (time-based): clock = t/tau, s = key = next spike time; an input applies
#        the theta-neuron PTC in remaining-phase form (tan + atan2)
#   table (EIF, any 1-D ODE; one table = one drive, shared): clock = t/tau, s = key = next spike
#        time (phase phi = 1 - omega (s - clock)). An input w at clock c: remaining time T = s - c,
#        V = V(T) from the inverse map (the table's fit, or its verified refit on the bits-of-T grid,
#        CompiledTable.inverse), V' = V + w; V' >= v_spike fires now (key c); else
#        s' = c + T(V') from the forward fit, with the table's analytic continuation below v_min.
#        A table without a continuation clamps such an input to v_min (nogil code cannot raise)
#        and counts it in *n_below; Engine.run raises a ValueError after the chunk, so a run never
#        silently continues past the table's domain.
#        Fast path: when every synapse has the same weight w <= 0 (procedural connectivity, or CSR
#        with equal weights) the engine fits G_w(T) = T(V(T) + w) once (CompiledTable.fused,
#        verified to 4e-15 in phase against the two-map composition) and an input is ONE
#        polynomial evaluation on a grid indexed by the bits of T (see _chebyshev.pxd).
#        Precision: renormalisation keeps the clock below 8 + period and the keys below
#        8 + period + T_max, so s - c (hence the phase) carries an absolute error of at most
#        ulp(8 + period + T_max), ~2e-15 tau for the seed EIF (period 3, T_max 4.3): ~7e-16 in
#        phase, far below the tables' 1e-14 tolerance and constant over any run length.
#   mixed (per-neuron models LIF/QIF and per-neuron tau; time-based): clock = t/time_unit
#        (time_unit = the smallest tau), keys = next spike clocks. Per neuron, by kind:
#        LIF with a free orbit: s = next spike clock; an input at c maps y = q(I - V) - 1 =
#          expm1(rate (s - c)) to y - w q and s' = c + log1p(y')/rate (rate = time_unit/tau_i).
#          A neuron lifted to or past threshold (y' <= 0) keeps s' = c + y' <= c, linear in V, so
#          later inputs of the same instant are summed exactly; its key is c.
#        subthreshold LIF: s = (I - V) exp(rate c), as the LIF clock (one exp per input); its
#          key is +inf, or c once V >= 1. A renormalisation multiplies s by exp(-4 rate)
#          (one rounding; every other clock value shifts exactly by 4).
#        QIF, I > 0: as QIF time-based, with omega per clock unit = 2 sqrt(I) rate.
#        QIF, I = -a^2 < 0 (excitable: rest -a, threshold a): X = (V - a)/(V + a) grows as
#          exp(g t) on the free flow (g = 2 a rate), so s = X exp(-g c); an input is a Moebius map
#          of X; the neuron fires (V = +inf, X = 1) at -log(s)/g when 0 < X < 1, never otherwise
#          (X > 1: below -a after a reset; X < 0: between -a and a). |X| is capped at 2**600
#          (V = -a to double precision) so that nothing overflows.
#        QIF, I = 0: u = -1/V grows at rate 1 (own time): s = u - rate c, fires at -s/rate if u < 0.
#        Renormalisation shifts time-form states by exactly 4 and rescales the others (one
#        rounding); keys are then recomputed from the states (and the heap rebuilt), as a continued
#        run computes them, so a continued run is bit-identical to one long run.
# Interface (all nogil, noexcept, inlined per model by the fused type `model_t`):
#   model_begin_spike(m, clock)             per-spike precomputation from the new clock
#   model_input(m, i, s, clock, w) -> s'    state after an input of size w (voltage jump)
#   model_key(m, i, s, clock)      -> key   next free firing clock; == clock if at/over threshold; +inf never
#   model_reset(m, i, clock)       -> s     state right after a spike
#   model_elapsed(m, clock, n)     -> t/tau since the origin, n = number of renormalisations so far
#   model_renorm_due(m, clock), model_renorm(m, x): rescale clock, states and keys by an exact
#     power-of-two operation (multiply by 2**-64 for LIF, subtract 4 for QIF and tables), so precision never
#     decays and a continued run is bit-identical to one long run.
#   model_renorm_state(m, i, s, clock): the same for neuron i's state (differs for some mixed-model kinds)
# Per-neuron parameters are an array of structs with stride 0 (shared) or 1 (one per neuron).
from libc.math cimport log, exp, tan, atan2, floor, fabs, log1p, expm1, fmin, copysign, nextafter, INFINITY
from sparseprop._core._chebyshev cimport (TableMaps, BitsGrid, CompiledTable, BitsHolder, maps_input,
                                          bits_eval)

cdef extern from *:
    """
    #define SPARSEPROP_LIF_RENORM_FACTOR 18446744073709551616.0  /* 2**64 */
    #define SPARSEPROP_LIF_RENORM_LOG 44.3614195558365           /* 64 ln 2 */
    #define SPARSEPROP_QIF_RENORM_SHIFT 4.0
    /* longest advance of a LIF clock (units of tau): a clock (< 2**64 e) times exp(512) stays finite */
    #define SPARSEPROP_LIF_MAX_ADVANCE 512.0
    """
    const double LIF_RENORM_FACTOR "SPARSEPROP_LIF_RENORM_FACTOR"
    const double LIF_RENORM_LOG "SPARSEPROP_LIF_RENORM_LOG"
    const double QIF_RENORM_SHIFT "SPARSEPROP_QIF_RENORM_SHIFT"
    const double LIF_MAX_ADVANCE "SPARSEPROP_LIF_MAX_ADVANCE"


ctypedef struct LIFParams:
    double scale      # q: 1/(I - 1) if I > 1 else 1
    double fire       # h: fires when s <= h E (1 if I > 1 else I - 1)
    double reset      # (I - v_reset) q
    double free       # 1.0 if the neuron reaches threshold on its own (I > 1), else 0.0


ctypedef struct LIFModel:
    const LIFParams* p
    Py_ssize_t stride


ctypedef struct QIFParams:
    double omega          # phase velocity per clock unit (1 when the clock is the phase)
    double inv_omega
    double inv_sqrt_drive # 1/sqrt(I): an input w moves tan(theta/2) by w/sqrt(I)


ctypedef struct QIFModel:
    const QIFParams* p
    Py_ssize_t stride
    double tau_per_clock  # 1/omega for the phase clock, 1 for the time clock


cdef enum:
    MIXED_LIF_FREE = 0     # LIF with I > 1: time form
    MIXED_LIF_SUB = 1      # LIF with I <= 1: multiplicative form
    MIXED_QIF = 2
    MIXED_QIF_EXC = 3      # QIF with I < 0
    MIXED_QIF_ZERO = 4     # QIF with I = 0


cdef extern from *:
    """
    #define SPARSEPROP_QIF_X_CAP 4.149515568880993e+180   /* 2**600 */
    """
    const double QIF_X_CAP "SPARSEPROP_QIF_X_CAP"


ctypedef struct MixedParams:
    QIFParams qif         # QIF neurons: omega per clock unit, its inverse, 1/sqrt(I)
    double kind           # MIXED_LIF_FREE, MIXED_LIF_SUB or MIXED_QIF (a double: one flat float64 record)
    double rate           # time_unit / tau_i: the neuron's own time per clock unit (<= 1)
    double inv_rate
    double q              # LIF free: 1/(I - 1)
    double fire           # LIF sub: I - 1 (fires when s <= fire exp(rate c))
    double reset          # LIF free: period in clock units; LIF sub: I - v_reset
    double renorm         # LIF sub: exp(-4 rate), the state factor of one renormalisation
    double a              # QIF I < 0: sqrt(-I)
    double growth         # QIF I < 0: g = 2 a rate, growth rate of log X per clock unit
    double inv_growth
    double v_reset        # voltage right after a spike (-inf for QIF): what a refractory neuron reads


ctypedef struct MixedModel:
    const MixedParams* p


cdef extern from *:
    """
    /* QIF phase input for two targets at once (QIFPhaseModel; the maths: qif_phase_input_pair's
       docstring). A single target runs it with both lanes equal, so a neuron's result never
       depends on whether it shared the vector with another. k: QIFPhaseModel.lanes, each value
       twice: cx, cy, ux, uy, mid, late, scale. SSE2 (every x86-64); elsewhere, or built with
       SPARSEPROP_DEFINE=SPARSEPROP_QIF_SCALAR, the lanes in turn (the same bits). */
    enum { SPARSEPROP_QIF_LANES = 14 };
    #if defined(__SSE2__) && !defined(SPARSEPROP_QIF_SCALAR)
    #include <emmintrin.h>
    static inline void sparseprop_qif_phase_input2(const double* k, double s0, double s1, double w0,
                                                   double w1, double clock, double* out0, double* out1)
    {
        const __m128d sign = _mm_set1_pd(-0.0), one = _mm_set1_pd(1.0), c = _mm_set1_pd(clock);
        const __m128d mid = _mm_loadu_pd(k + 8);
        __m128d s = _mm_set_pd(s1, s0);
        __m128d h = _mm_sub_pd(s, mid);
        __m128d x = _mm_sub_pd(_mm_andnot_pd(sign, h), one);
        __m128d y = _mm_sub_pd(one, _mm_andnot_pd(sign, _mm_add_pd(one, h)));
        __m128d ry = _mm_sub_pd(_mm_mul_pd(_mm_loadu_pd(k), y), _mm_mul_pd(_mm_loadu_pd(k + 2), x));
        __m128d acts = _mm_cmpgt_pd(ry, _mm_set1_pd(1e-12));
        __m128d p, now;
        ry = _mm_mul_pd(ry, _mm_mul_pd(_mm_set_pd(w1, w0), _mm_loadu_pd(k + 12)));
        x = _mm_add_pd(x, _mm_mul_pd(ry, _mm_loadu_pd(k + 4)));
        y = _mm_add_pd(y, _mm_mul_pd(ry, _mm_loadu_pd(k + 6)));
        p = _mm_add_pd(one, _mm_div_pd(x, _mm_add_pd(_mm_andnot_pd(sign, x), _mm_andnot_pd(sign, y))));
        p = _mm_sub_pd(mid, _mm_or_pd(_mm_andnot_pd(sign, p), _mm_and_pd(sign, y)));
        now = _mm_or_pd(_mm_cmple_pd(p, c), _mm_cmpgt_pd(p, _mm_loadu_pd(k + 10)));
        p = _mm_or_pd(_mm_and_pd(now, c), _mm_andnot_pd(now, p));
        p = _mm_or_pd(_mm_and_pd(acts, p), _mm_andnot_pd(acts, s));
        _mm_storel_pd(out0, p);
        _mm_storeh_pd(out1, p);
    }
    #else
    #include <math.h>
    static inline double sparseprop_qif_phase_input1(const double* k, double s, double w, double clock)
    {
        double h = s - k[8], x = fabs(h) - 1.0, y = 1.0 - fabs(1.0 + h), ry = k[0] * y - k[2] * x, p;
        if (!(ry > 1e-12))
            return s;
        ry *= w * k[12];
        x += ry * k[4];
        y += ry * k[6];
        p = k[8] - copysign(1.0 + x / (fabs(x) + fabs(y)), y);
        return (p <= clock || p > k[10]) ? clock : p;
    }
    static inline void sparseprop_qif_phase_input2(const double* k, double s0, double s1, double w0,
                                                   double w1, double clock, double* out0, double* out1)
    {
        *out0 = sparseprop_qif_phase_input1(k, s0, w0, clock);
        *out1 = sparseprop_qif_phase_input1(k, s1, w1, clock);
    }
    #endif
    """
    enum: QIF_LANES "SPARSEPROP_QIF_LANES"
    void qif_phase_input2 "sparseprop_qif_phase_input2"(const double* k, double s0, double s1, double w0,
                                                       double w1, double clock, double* out0,
                                                       double* out1) noexcept nogil


ctypedef struct QIFPhaseModel:
    double inv_sqrt_drive
    double tau_per_clock  # tau per unit of phase theta, 1/(2 sqrt(I))
    # scratch set by model_begin_spike, each value twice (the lanes of a 2-wide vector), in the frame
    # Q of the clock's quadrant (the global frame turned back by whole quarter turns, so that
    # diamond angles there are the keys' minus an integer): the clock's direction c = (cx, cy),
    # u = c/|c|^2, mid = the key of Q's half turn, late = a key past any reachable one (mid + 1.5:
    # angle 3.5 in Q, i.e. rounded behind the clock), scale = 1/sqrt(I)
    double lanes[QIF_LANES]


cdef inline void qif_phase_input_pair(const QIFPhaseModel* m, double s0, double s1, double clock,
                                      double w0, double w1, double* out0, double* out1) noexcept nogil:
    """Inputs w0, w1 to two different neurons with states s0, s1, as model_input does for one
    (which calls this with both lanes equal, so that there is one formula).

    Keys lie in [clock, clock + 2], so their diamond angles in frame Q lie in [0, 3): no
    wrap-around and no quadrant to find. With h = angle - 2 in [-2, 1), the direction of the next
    spike's half-phase is v = (|h| - 1, 1 - |1 + h|) (|x| + |y| = 1), and back:
    h = -copysign(1 + x/(|x| + |y|), y). Both are branch-free.
    In the clock's frame v ~ (cos, sin) of the remaining half-phase r/2 in (0, pi], and
    cot(r/2) = tan(theta/2): the jump by w/sqrt(I) is the shear v -> v + w' ry c/|c|^2, ry = c x v,
    which keeps v in the half plane left of c.
    - ry <= 1e-12 (or NaN): within ~1e-12 of reset (V = -inf) or of threshold, where an input moves
      the phase by ~w ry^2, nothing: the state is kept. (Rounding of s can put a reset a hair past
      the half turn, ry < 0, where the shear would read "about to fire".)
    - a new key at or behind the clock (<= clock, or past `late`): rounded onto the clock, fires now.
    """
    qif_phase_input2(m.lanes, s0, s1, w0, w1, clock, out0, out1)


ctypedef struct TableModel:
    TableMaps maps
    BitsGrid fused        # fast path for the network's single weight (fused.w = NaN: none)
    long long* n_below    # inputs that left the domain below v_min without a continuation (clamped)


ctypedef fused model_t:
    LIFModel
    QIFModel
    QIFPhaseModel
    TableModel
    MixedModel


cdef inline double diamond_to_angle(double key) noexcept nogil:
    """Unwrapped angle (radians) of an unwrapped diamond key: in the frame of its quadrant
    (floor(key) quarter turns) the direction is (1 - f, f), f = key - floor(key)."""
    cdef double q = floor(key)
    cdef double f = key - q
    return 1.5707963267948966 * q + atan2(f, 1.0 - f)


cdef inline void model_begin_spike(model_t* m, double clock) noexcept nogil:
    cdef double p, f, cx, cy, inv_norm2
    cdef double values[7]
    cdef int a
    if model_t is QIFPhaseModel:
        p = floor(clock)                           # clock - p: the clock's diamond angle in frame Q
        f = clock - p
        cx = 1.0 - f
        cy = f
        inv_norm2 = 1.0 / (cx * cx + cy * cy)
        values[0] = cx
        values[1] = cy
        values[2] = cx * inv_norm2
        values[3] = cy * inv_norm2
        values[4] = p + 2.0
        values[5] = p + 3.5
        values[6] = m.inv_sqrt_drive
        for a in range(7):
            m.lanes[2 * a] = values[a]
            m.lanes[2 * a + 1] = values[a]


cdef inline double qif_time_input(const QIFParams* p, double s, double clock, double w) noexcept nogil:
    """Time-based QIF: next spike clock after an input w at `clock` (state s = next spike clock)."""
    cdef double r = p.omega * (s - clock)          # remaining phase to threshold, (0, 2 pi]
    if r >= 6.283185307179586:
        # at reset (V = -inf: an input has no effect). Rounding of s - clock can put a neuron
        # just reset a hair past 2 pi, where tan(r/2) > 0 would read "about to fire"
        return s
    return clock + 2.0 * atan2(1.0, 1.0 / tan(0.5 * r) + w * p.inv_sqrt_drive) * p.inv_omega


cdef inline double mixed_lif_free_input(const MixedParams* p, double s, double clock, double w) noexcept nogil:
    cdef double y = expm1(p.rate * (s - clock)) if s > clock else s - clock     # q(I - V) - 1
    y -= w * p.q
    if y > 0.0:
        return clock + log1p(y) * p.inv_rate
    return clock + y                               # at or past threshold: linear in V


# Excitable QIF states live on a projective line where V = -inf (reset) and V = +inf (spike) meet
# (X = 1, u = 0): a stored state is nudged by ulps until the branch its clock reads back (fires:
# 0 < X < 1, u < 0; does not) is the branch it was computed in, so rounding can never turn a
# neuron just reset into one about to fire (or back), in an input, a reset or a renormalisation.
cdef inline double qif_exc_store(double x, double e) noexcept nogil:
    """State s = X/e that reads back (s e) on the same side of 0 and 1 as X."""
    cdef double s = copysign(fmin(fabs(x), QIF_X_CAP), x) / e
    if x >= 1.0:
        while s * e < 1.0:
            s = nextafter(s, INFINITY)
    elif x > 0.0:
        while s * e >= 1.0:
            s = nextafter(s, 0.0)
    return s


cdef inline double qif_zero_store(double u, double rc) noexcept nogil:
    """State s = u - rc (rc = rate * clock) that reads back (s + rc) with the sign class of u (< 0 or not)."""
    cdef double s = u - rc
    if u < 0.0:
        while not s + rc < 0.0:
            s = nextafter(s, -INFINITY)
    else:
        while s + rc < 0.0:
            s = nextafter(s, INFINITY)
    return s


cdef inline double qif_exc_input(const MixedParams* p, double s, double clock, double w) noexcept nogil:
    cdef double e = exp(p.growth * clock)
    cdef double x = s * e                          # X = (V - a)/(V + a)
    cdef double d = w * (1.0 - x)
    if d == 0.0:
        return s                                   # X = 1 (V = -inf, just reset): no effect
    return qif_exc_store((2.0 * p.a * x + d) / (2.0 * p.a + d), e)


cdef inline double qif_zero_input(const MixedParams* p, double s, double clock, double w) noexcept nogil:
    cdef double rc = p.rate * clock
    cdef double u = s + rc                         # u = -1/V
    if u == 0.0:
        return s                                   # V = -inf (just reset): no effect
    return qif_zero_store(-1.0 / (-1.0 / u + w), rc)


cdef inline double model_input(const model_t* m, Py_ssize_t i, double s, double clock,
                               double w) noexcept nogil:
    cdef double r, p
    cdef bint below
    if model_t is LIFModel:
        return s - w * m.p[i * m.stride].scale * clock
    elif model_t is MixedModel:
        if m.p[i].kind == MIXED_LIF_FREE:
            return mixed_lif_free_input(&m.p[i], s, clock, w)
        if m.p[i].kind == MIXED_LIF_SUB:
            return s - w * exp(m.p[i].rate * clock)
        if m.p[i].kind == MIXED_QIF:
            return qif_time_input(&m.p[i].qif, s, clock, w)
        if m.p[i].kind == MIXED_QIF_EXC:
            return qif_exc_input(&m.p[i], s, clock, w)
        return qif_zero_input(&m.p[i], s, clock, w)
    elif model_t is TableModel:
        r = s - clock
        if w == m.fused.w and r >= m.fused.t_lo and r <= m.fused.t_hi:
            return clock + bits_eval(&m.fused, r)
        below = False
        r = maps_input(&m.maps, r, w, &below)
        if below:
            m.n_below[0] += 1
        return clock + r
    elif model_t is QIFPhaseModel:
        qif_phase_input_pair(m, s, s, clock, w, w, &p, &r)
        return p
    else:
        return qif_time_input(&m.p[i * m.stride], s, clock, w)


cdef inline double model_key(const model_t* m, Py_ssize_t i, double s, double clock) noexcept nogil:
    cdef double x
    if model_t is LIFModel:
        if s <= m.p[i * m.stride].fire * clock:
            return clock
        return s if m.p[i * m.stride].free != 0.0 else INFINITY
    elif model_t is MixedModel:
        if m.p[i].kind == MIXED_LIF_SUB:
            return clock if s <= m.p[i].fire * exp(m.p[i].rate * clock) else INFINITY
        if m.p[i].kind == MIXED_QIF_EXC:
            x = s * exp(m.p[i].growth * clock)
            if not (x > 0.0 and x < 1.0):
                return INFINITY
            x = -log(s) * m.p[i].inv_growth        # from s alone: the same bits whatever the clock
        elif m.p[i].kind == MIXED_QIF_ZERO:
            if not s + m.p[i].rate * clock < 0.0:
                return INFINITY
            x = -s * m.p[i].inv_rate
        else:
            x = s
        return x if x > clock else clock
    else:
        return s


cdef inline double model_reset(const model_t* m, Py_ssize_t i, double clock) noexcept nogil:
    if model_t is LIFModel:
        return m.p[i * m.stride].reset * clock
    elif model_t is MixedModel:
        if m.p[i].kind == MIXED_LIF_FREE:
            return clock + m.p[i].reset
        if m.p[i].kind == MIXED_LIF_SUB:
            return m.p[i].reset * exp(m.p[i].rate * clock)
        if m.p[i].kind == MIXED_QIF:
            return clock + 6.283185307179586 * m.p[i].qif.inv_omega
        if m.p[i].kind == MIXED_QIF_EXC:
            return qif_exc_store(1.0, exp(m.p[i].growth * clock))        # X = 1
        return qif_zero_store(0.0, m.p[i].rate * clock)                 # u = 0
    elif model_t is QIFPhaseModel:
        return clock + 2.0                         # half a turn of the half-phase: one period
    elif model_t is TableModel:
        return clock + m.maps.period               # T(v_reset) = period: phase 0
    else:
        return clock + 6.283185307179586 * m.p[i * m.stride].inv_omega


cdef inline double model_elapsed(const model_t* m, double clock, long long n_renorm) noexcept nogil:
    if model_t is LIFModel:
        return log(clock) + n_renorm * LIF_RENORM_LOG
    elif model_t is QIFPhaseModel:
        # theta = 2 * half-phase; one renormalisation removes a turn of the half-phase (4 pi)
        return (2.0 * diamond_to_angle(clock) + n_renorm * 12.566370614359172) * m.tau_per_clock
    elif model_t is TableModel or model_t is MixedModel:
        return clock + n_renorm * QIF_RENORM_SHIFT
    else:
        return (clock + n_renorm * QIF_RENORM_SHIFT) * m.tau_per_clock


cdef inline bint model_renorm_due(const model_t* m, double clock) noexcept nogil:
    if model_t is LIFModel:
        return clock >= LIF_RENORM_FACTOR
    else:
        return clock >= 2.0 * QIF_RENORM_SHIFT


cdef inline double model_renorm(const model_t* m, double x) noexcept nogil:
    if model_t is LIFModel:
        return x * (1.0 / LIF_RENORM_FACTOR)
    else:
        return x - QIF_RENORM_SHIFT


cdef inline double model_renorm_state(const model_t* m, Py_ssize_t i, double s, double clock) noexcept nogil:
    """Neuron i's state s at `clock` in the renormalised epoch (clock - 4 for the time-based models)."""
    if model_t is MixedModel:
        if m.p[i].kind == MIXED_LIF_SUB:
            return s * m.p[i].renorm
        if m.p[i].kind == MIXED_QIF_EXC:
            return qif_exc_store(s * exp(m.p[i].growth * clock), exp(m.p[i].growth * (clock - QIF_RENORM_SHIFT)))
        if m.p[i].kind == MIXED_QIF_ZERO:
            return qif_zero_store(s + m.p[i].rate * clock, m.p[i].rate * (clock - QIF_RENORM_SHIFT))
    return model_renorm(m, s)


cdef inline double model_advance(const model_t* m, double clock, double offset) noexcept nogil:
    """Clock a fixed duration after `clock`; offset = BoundModel.clock_offset(duration): exp(d) for
    LIF (the clock is exp(t/tau)), d for the time-based models. (Not used with the QIF phase clock:
    networks with delays, refractoriness or inputs run QIF time-based.)"""
    if model_t is LIFModel:
        return clock * offset
    else:
        return clock + offset


cdef inline double model_clock_at(const model_t* m, double t_tau, long long n_renorm) noexcept nogil:
    """Clock at time t_tau (units of tau since the origin) after n_renorm renormalisations."""
    if model_t is LIFModel:
        return exp(t_tau - n_renorm * LIF_RENORM_LOG)
    else:
        return t_tau - n_renorm * QIF_RENORM_SHIFT


cdef enum:
    MODEL_LIF = 0
    MODEL_QIF_TIME = 1
    MODEL_QIF_PHASE = 2
    MODEL_TABLE = 3
    MODEL_MIXED = 4


cdef class BoundModel:
    """A model bound to the drive of a network: parameter arrays plus the C struct the engine uses."""
    cdef readonly object model
    cdef readonly object params          # numpy structured array owning the parameter memory
    cdef readonly str representation     # "phase" (shared phase velocity) or "time"
    cdef readonly int code               # which struct the engine uses: MODEL_LIF, MODEL_QIF_TIME, ...
    cdef readonly object drive
    cdef readonly object tau_rel         # mixed model: tau_i / time_unit per neuron (None otherwise)
    cdef LIFModel lif
    cdef QIFModel qif
    cdef QIFPhaseModel qifp
    cdef TableModel tab
    cdef MixedModel mix
    cdef long long tab_below             # counter behind tab.n_below
    cdef readonly CompiledTable compiled # owns the table arrays tab.maps points into
    cdef readonly BitsHolder fused      # owns the arrays of tab.fused (None: no fused map)
