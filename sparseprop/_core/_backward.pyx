# The backward pass (exact gradients) for LIF, QIF and table-model networks, O(K) per spike, no heap.
#
# LIF. Coordinates are the engine's (see _models.pxd): clock c = exp(t/tau) (renormalised by 2**-64
# per epoch), state s_i = q_i (I_i - V_i) c with q_i = 1/(I_i - 1) above threshold (1 below). Given
# the order of events (the tape), the forward map is affine in the states:
#   spike of j at clock c:   c = s_j (free spike) or the clock of the input that lifted j (triggered)
#                            s_j <- R_j rho_j c            (reset; rho_j = exp(t_ref/tau))
#                            s_i <- s_i - w_ji q_i c        (each target not refractory)
#   input (given or Poisson) s_i <- s_i - w q_i c           (c fixed by the input's time)
#   delayed delivery at c_d  s_i <- s_i - w_ji q_i c_d      (c_d = c e^delay of the emitting spike)
#   spike time               t = tau (ln c + epoch * 64 ln 2)
# so the adjoint lam = dL/ds sweeps the tape backwards with K multiply-adds per spike. G[r] collects
# dL/dc of record r from the spikes it triggered (same instant).
#
# QIF (time-based engine, dV/dt = V^2 + I). Clock c = t/tau (minus 4 per epoch: derivatives carry
# over epochs unchanged), state s_i = next spike clock of i. With a = sqrt(I_i), D = s - c the
# remaining time, u = a D (half the remaining phase, in (0, pi]; V = a cot u):
#   input w at clock c:      cot u' = cot u + w/a,  s' = c + u'/a      (the PTC, remaining-phase form)
#     ds'/ds = rho = sin^2 u' / sin^2 u          (= (1 + cot^2 u)/(1 + cot^2 u'), via hypot)
#     ds'/dc = 1 - rho
#     ds'/dw = -sin^2 u' / I
#     ds'/dI = (rho D - D' + w sin^2 u' / I) / (2 I)      (D' = s' - c; s held fixed)
#     a target at threshold (D = 0) stays there: ds'/dc = 1, the rest 0; one at reset (u >= pi,
#     V = -inf) does not move: ds'/ds = 1, the rest 0
#   spike of j at c:         s_j <- c + t_ref/tau + P_j,  P_j = pi / a_j (the period):
#                            ds_j/dc = 1, ds_j/dI = -P_j / (2 I_j)
#   delayed delivery         c_d = c + delay/tau: dc_d/dc = 1
#   spike time               t = tau (c + 4 epoch): dt/dc = tau; a given input's dc/dt = 1/tau
# The map is not affine, so the tape holds each target's state just before each applied input
# (`pre`, in delivery order); the sweep walks a record's targets in reverse (a neuron listed twice
# in a row sees the first input's result) and consumes `pre` from its end.
#
# Precomputed (model 2; table models such as EIF, time-based like QIF with the same clock): the
# caller evaluates, per applied input in delivery order, rho = ds'/ds and ds'/dw from `pre`
# (sparseprop/grad.py, from the table's maps) and passes them in the tape as `pre_rho` and
# `pre_dsdw`; ds'/dc = 1 - rho (a "fires now" input has rho = 0, ds'/dw = 0). Spikes, resets and
# deliveries are as for QIF, with no drive gradient (dR = 0).
#
# Memory: the per-neuron values a target touches (lam, q, dq and the drive gradient being
# accumulated; QIF: q = sqrt(I), dq = 1/sqrt(I)) are packed in one 32-byte record per neuron (one
# cache line of random access per synapse instead of four), prefetched PF synapses ahead; the synapse
# rows (indices, weights, their gradients) of the spike RA records ahead are prefetched while this
# one is swept. The LIF arithmetic, and so every bit of the result, is that of the plain per-array
# loop.
from libc.stdint cimport int64_t, int32_t
from libc.math cimport ldexp, tan, atan2, hypot
from libc.stdlib cimport free

import numpy as np

from sparseprop._core._typedefs cimport prefetch
from sparseprop._core._memory cimport big_alloc


ctypedef struct Neuron:        # 32 bytes, aligned: one cache line holds two neurons
    double lam
    double q
    double dq
    double g_drive

cdef enum:
    PF = 16                    # prefetch distance in synapses
    RA = 2                     # prefetch distance in records (synapse rows)

cdef enum:
    TAPE_FREE = 0
    TAPE_TRIGGERED = 1
    TAPE_INPUT = 2
    TAPE_POISSON = 3
    TAPE_DELIVERY = 4


cdef enum:
    SWEEP_LIF = 0
    SWEEP_QIF = 1
    SWEEP_PRECOMPUTED = 2


cdef inline double qif_input_adjoint(Neuron* t, double s, double c, double w, double li,
                                     double* dsdw) noexcept nogil:
    """Adjoint step of one QIF input w at clock c to a neuron with pre-input state s and adjoint li
    (dL/ds after): updates t.lam (dL/ds before) and t.g_drive; returns li ds'/dc, sets *dsdw."""
    cdef double a = t.q, k = t.dq, kk, D, y0, y, h1, rho, sin2p
    D = s - c
    if not D > 0.0:                      # at threshold: stays there, s' = c
        t.lam = 0.0
        dsdw[0] = 0.0
        return li
    if a * D >= 3.141592653589793:       # at reset (the engine's test r >= 2 pi): no effect, s' = s
        dsdw[0] = 0.0
        return 0.0
    kk = k * k
    y0 = 1.0 / tan(a * D)                # cot u, as the engine computes it
    y = y0 + w * k                       # cot u'
    h1 = hypot(1.0, y)
    rho = hypot(1.0, y0) / h1
    rho = rho * rho                      # sin^2 u' / sin^2 u
    sin2p = (1.0 / h1) / h1
    dsdw[0] = -sin2p * kk
    t.g_drive += li * 0.5 * kk * (rho * D - atan2(1.0, y) * k + w * sin2p * kk)
    t.lam = li * rho
    return li * (1.0 - rho)


def backward_sweep(int model, dict tape, const int64_t[::1] indptr, const int32_t[::1] indices,
                   const double[::1] weights, const int64_t[::1] now_end, const int64_t[::1] run_ptr,
                   const int64_t[::1] run_end, const int64_t[::1] in_a, const int64_t[::1] in_b,
                   const int32_t[::1] in_idx, const double[::1] in_w, const double[::1] q, const double[::1] dq,
                   const double[::1] R, const double[::1] dR, const double[::1] rho, double[::1] lam,
                   int end_epoch, const double[::1] g_time, double tau, double[::1] g_w, double[::1] g_w_in,
                   double[::1] g_drive, double[::1] g_in_time):
    """Sweep the tape backwards (model 0: LIF, 1: QIF time-based, 2: precomputed input
    derivatives, e.g. table models; see the top of this file).

    Synapses of row j delivered at the spike: [indptr[j], now_end[j]); a delayed delivery of run
    `aux` (-1: the whole row) covers that run (run_ptr/run_end as in the engine) and its `trigger`
    field holds the record of the spike that emitted it (filled in by the caller, -1: before the
    tape). lam (n,) enters as dL/ds at the end (epoch `end_epoch`) and leaves as dL/ds at the start
    (epoch 0); g_time[r] = dL/dt (per second) of tape record r (spikes only). Gradients are
    accumulated into g_w (recurrent synapses), g_w_in (input synapses), g_drive (n,) -- the part
    from the dynamics; the caller adds the initial and final state terms -- and g_in_time (per
    given input event). All per-neuron arrays have one entry per neuron. Per-neuron coefficients:
    LIF q, dq = dq/dI, R, dR = dR/dI, rho = exp(t_ref/tau); QIF q = sqrt(I), dq = 1/sqrt(I),
    dR = dP/dI (P the period; R and rho unused); the QIF tape has `pre`. Model 2: the tape has
    `pre_rho` and `pre_dsdw` (one per applied input, delivery order); q, dq, R, rho unused, dR = 0.
    """
    cdef const unsigned char[::1] kind = tape["kind"]
    cdef const int32_t[::1] src = tape["src"]
    cdef const double[::1] clock = tape["clock"]
    cdef const double[::1] aux = tape["aux"]
    cdef const int64_t[::1] trigger = tape["trigger"]
    cdef const int32_t[::1] epoch = tape["epoch"]
    cdef const int64_t[::1] skip_event = tape["skip_event"]
    cdef const int32_t[::1] skip_pos = tape["skip_pos"]
    cdef const double[::1] pre
    cdef const double[::1] pre_dsdw
    cdef bint lif = model == SWEEP_LIF
    cdef bint pc = model == SWEEP_PRECOMPUTED
    cdef double rr
    if model != SWEEP_LIF and model != SWEEP_QIF and model != SWEEP_PRECOMPUTED:
        raise ValueError(f"model: expected 0 (LIF), 1 (QIF) or 2 (precomputed), got {model}")
    if pc:
        pre = tape["pre_rho"]
        pre_dsdw = tape["pre_dsdw"]
        if pre_dsdw.shape[0] != pre.shape[0]:
            raise ValueError("tape: pre_rho and pre_dsdw differ in length")
    else:
        pre = np.zeros(1) if lif else tape["pre"]
        pre_dsdw = pre
    cdef Py_ssize_t nrec = kind.shape[0], n = lam.shape[0]
    cdef double[::1] G = np.zeros(max(nrec, 1))
    cdef Py_ssize_t r, a, a0, a1, pos, sk = skip_event.shape[0] - 1, i, lo
    cdef Py_ssize_t p = pre.shape[0] - 1 if not lif else -1
    cdef int cur = end_epoch, k
    cdef int32_t j
    cdef int64_t m
    cdef double c, Gc, w, li, qi, dsdw
    cdef const int32_t* tg
    cdef const double* wp
    cdef double* gw
    cdef Neuron* nb = <Neuron*>big_alloc(max(n, 1) * sizeof(Neuron))
    cdef Neuron* t
    if nb == NULL:
        raise MemoryError(f"backward pass: cannot allocate {n} neuron records")
    with nogil:
        for i in range(n):
            nb[i].lam = lam[i]
            nb[i].q = q[i]
            nb[i].dq = dq[i]
            nb[i].g_drive = g_drive[i]
        for r in range(nrec - 1, -1, -1):
            while cur > epoch[r]:
                if lif:                      # QIF epochs shift the clock: derivatives unchanged
                    for i in range(n):
                        nb[i].lam = ldexp(nb[i].lam, -64)
                cur -= 1
            if r >= RA and kind[r - RA] <= TAPE_TRIGGERED:
                # the synapse rows of the spike RA records ahead stream in meanwhile
                j = src[r - RA]
                for a in range(indptr[j], indptr[j + 1], 8):
                    prefetch(&weights[a])
                    prefetch(&g_w[a])
                for a in range(indptr[j], indptr[j + 1], 16):
                    prefetch(&indices[a])
            c = clock[r]
            k = kind[r]
            # skipped target positions of this record: skip_pos[lo..sk] (ascending)
            lo = sk
            while lo >= 0 and skip_event[lo] == r:
                lo -= 1
            lo += 1
            if k == TAPE_POISSON:
                i = src[r]
                if lo > sk:                  # not skipped
                    if lif:
                        nb[i].g_drive -= nb[i].lam * aux[r] * c * nb[i].dq
                    else:
                        li = nb[i].lam
                        if li != 0.0:
                            if pc:
                                nb[i].lam = li * pre[p]
                            else:
                                qif_input_adjoint(&nb[i], pre[p], c, aux[r], li, &dsdw)
                        p -= 1
                sk = lo - 1
                continue
            Gc = G[r]
            if k == TAPE_DELIVERY:
                j = src[r]
                a = <Py_ssize_t>aux[r]
                if a < 0:
                    a0 = indptr[j]
                    a1 = indptr[j + 1]
                else:
                    a += run_ptr[j]
                    a0 = indptr[j] if a == run_ptr[j] else run_end[a - 1]
                    a1 = run_end[a]
                tg = &indices[0] if indices.shape[0] else NULL
                wp = &weights[0] if weights.shape[0] else NULL
                gw = &g_w[0] if g_w.shape[0] else NULL
            elif k == TAPE_INPUT:
                a0 = in_a[src[r]]
                a1 = in_b[src[r]]
                tg = &in_idx[0] if in_idx.shape[0] else NULL
                wp = &in_w[0] if in_w.shape[0] else NULL
                gw = &g_w_in[0] if g_w_in.shape[0] else NULL
            else:
                j = src[r]
                a0 = indptr[j]
                a1 = now_end[j]
                Gc += g_time[r] * tau / c if lif else g_time[r] * tau
                tg = &indices[0] if indices.shape[0] else NULL
                wp = &weights[0] if weights.shape[0] else NULL
                gw = &g_w[0] if g_w.shape[0] else NULL
            if lif:
                for a in range(a0, min(a0 + PF, a1)):
                    prefetch(&nb[tg[a]])
                pos = lo
                for a in range(a0, a1):
                    if a + PF < a1:
                        prefetch(&nb[tg[a + PF]])
                    if pos <= sk and skip_pos[pos] == a - a0:
                        pos += 1
                        continue
                    t = &nb[tg[a]]
                    w = wp[a]
                    li = t.lam
                    qi = t.q
                    gw[a] -= li * qi * c
                    Gc -= li * w * qi
                    t.g_drive -= li * w * c * t.dq
            else:
                # targets in reverse delivery order (pre-input states from the end of `pre`)
                for a in range(a1 - 1, max(a1 - 1 - PF, a0 - 1), -1):
                    prefetch(&nb[tg[a]])
                pos = sk
                for a in range(a1 - 1, a0 - 1, -1):
                    if a - PF >= a0:
                        prefetch(&nb[tg[a - PF]])
                    if pos >= lo and skip_pos[pos] == a - a0:
                        pos -= 1
                        continue
                    t = &nb[tg[a]]
                    li = t.lam
                    if li != 0.0:
                        if pc:
                            rr = pre[p]
                            t.lam = li * rr
                            Gc += li * (1.0 - rr)
                            gw[a] += li * pre_dsdw[p]
                        else:
                            Gc += qif_input_adjoint(t, pre[p], c, wp[a], li, &dsdw)
                            gw[a] += li * dsdw
                    p -= 1
            sk = lo - 1
            if k == TAPE_INPUT:
                g_in_time[src[r]] += Gc * c / tau if lif else Gc / tau
                continue
            if k == TAPE_DELIVERY:
                m = trigger[r]                       # c = c_m e^delay (LIF), c_m + delay (QIF)
                if m >= 0:
                    G[m] += Gc * c / clock[m] if lif else Gc
                continue
            # reset of the spiker (after the target loop: an autapse input came after the reset)
            t = &nb[j]
            if lif:
                Gc += t.lam * R[j] * rho[j]
                t.g_drive += t.lam * c * rho[j] * dR[j]
            else:
                Gc += t.lam
                t.g_drive += t.lam * dR[j]
            if k == TAPE_FREE:
                t.lam = Gc                   # c = s_j
            else:
                t.lam = 0.0
                m = trigger[r]
                if m >= 0:
                    G[m] += ldexp(Gc, -64 * (epoch[r] - epoch[m])) if lif else Gc
        while cur > 0:
            if lif:
                for i in range(n):
                    nb[i].lam = ldexp(nb[i].lam, -64)
            cur -= 1
        for i in range(n):
            lam[i] = nb[i].lam
            g_drive[i] = nb[i].g_drive
    free(nb)
    if not lif and p != -1:
        raise RuntimeError(f"backward pass: the tape's pre-input states do not match its records ({p + 1} left)")
