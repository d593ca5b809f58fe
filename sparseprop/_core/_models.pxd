# Neuron models behind one interface, in the coordinates the event engine works in.
#
# The engine keeps one global `clock` and, per neuron, a `state` s and a heap `key`: the clock value at
# which the neuron fires if nothing else happens (+inf: never on its own). Clock and key are the same
# strictly increasing function of time, chosen per model so that free flow changes nothing stored:
#   LIF  clock E = exp(t/tau)  (renormalised), s = (I - V) q E   -> an input is one multiply-add
#   QIF  clock = phase (shared drive: phase-based) or t/tau (per-neuron drive: time-based);
#        s = key = next spike clock; an input applies the theta-neuron PTC in remaining-phase form
# Interface (all nogil, noexcept, inlined per model by the fused type `model_t`):
#   model_input(m, i, s, clock, w) -> s'    state after an input of size w (voltage jump)
#   model_key(m, i, s, clock)      -> key   next free firing clock; == clock if at/over threshold; +inf never
#   model_reset(m, i, clock)       -> s     state right after a spike
#   model_elapsed(m, clock, n)     -> t/tau since the origin, n = number of renormalisations so far
#   model_renorm_due(m, clock), model_renorm(m, x): rescale clock, states and keys by an exact
#     power-of-two operation (multiply by 2**-64 for LIF, subtract 4 for QIF), so precision never
#     decays and a continued run is bit-identical to one long run.
# Per-neuron parameters are an array of structs with stride 0 (shared) or 1 (one per neuron).
from libc.math cimport log, tan, atan2, INFINITY

cdef extern from *:
    """
    #define SPARSEPROP_LIF_RENORM_FACTOR 18446744073709551616.0  /* 2**64 */
    #define SPARSEPROP_LIF_RENORM_LOG 44.3614195558365           /* 64 ln 2 */
    #define SPARSEPROP_QIF_RENORM_SHIFT 4.0
    """
    const double LIF_RENORM_FACTOR "SPARSEPROP_LIF_RENORM_FACTOR"
    const double LIF_RENORM_LOG "SPARSEPROP_LIF_RENORM_LOG"
    const double QIF_RENORM_SHIFT "SPARSEPROP_QIF_RENORM_SHIFT"


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


ctypedef fused model_t:
    LIFModel
    QIFModel


cdef inline double model_input(const model_t* m, Py_ssize_t i, double s, double clock,
                               double w) noexcept nogil:
    cdef double r, y
    if model_t is LIFModel:
        return s - w * m.p[i * m.stride].scale * clock
    else:
        r = m.p[i * m.stride].omega * (s - clock)          # remaining phase to threshold, (0, 2 pi]
        y = 1.0 / tan(0.5 * r) + w * m.p[i * m.stride].inv_sqrt_drive   # tan(theta/2) after the jump
        return clock + 2.0 * atan2(1.0, y) * m.p[i * m.stride].inv_omega


cdef inline double model_key(const model_t* m, Py_ssize_t i, double s, double clock) noexcept nogil:
    if model_t is LIFModel:
        if s <= m.p[i * m.stride].fire * clock:
            return clock
        return s if m.p[i * m.stride].free != 0.0 else INFINITY
    else:
        return s


cdef inline double model_reset(const model_t* m, Py_ssize_t i, double clock) noexcept nogil:
    if model_t is LIFModel:
        return m.p[i * m.stride].reset * clock
    else:
        return clock + 6.283185307179586 * m.p[i * m.stride].inv_omega


cdef inline double model_elapsed(const model_t* m, double clock, long long n_renorm) noexcept nogil:
    if model_t is LIFModel:
        return log(clock) + n_renorm * LIF_RENORM_LOG
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


cdef class BoundModel:
    """A model bound to the drive of a network: parameter arrays plus the C struct the engine uses."""
    cdef readonly object model
    cdef readonly object params          # numpy structured array owning the parameter memory
    cdef readonly str representation     # "phase" (shared phase velocity) or "time"
    cdef readonly object drive
    cdef LIFModel lif
    cdef QIFModel qif
