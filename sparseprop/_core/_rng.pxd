# Counter-based random numbers for procedural connectivity: the stream of neuron j under seed s is a
# pure function of (s, j), so the K targets of j can be regenerated at each of j's spikes and no
# synapse is ever stored. Generator: SplitMix64 (Steele, Lea & Flood 2014) seeded by a mix of (s, j);
# bounded integers by Lemire's multiply-shift with rejection (exactly uniform).
from libc.stdint cimport uint64_t, uint32_t
from sparseprop._core._typedefs cimport id_t

cdef extern from *:
    """
    static inline uint64_t sparseprop_mulhi64(uint64_t a, uint64_t b, uint64_t* lo) {
        unsigned __int128 m = (unsigned __int128)a * b;
        *lo = (uint64_t)m;
        return (uint64_t)(m >> 64);
    }
    """
    uint64_t mulhi64 "sparseprop_mulhi64"(uint64_t a, uint64_t b, uint64_t* lo) noexcept nogil


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline uint64_t stream_init(uint64_t seed, uint64_t stream) noexcept nogil:
    return mix64(mix64(seed + <uint64_t>0x9E3779B97F4A7C15) ^ (stream * <uint64_t>0xD1342543DE82EF95))


cdef inline uint64_t next64(uint64_t* state) noexcept nogil:
    state[0] += <uint64_t>0x9E3779B97F4A7C15
    return mix64(state[0])


cdef inline uint64_t bounded(uint64_t* state, uint64_t n) noexcept nogil:
    """Uniform integer in [0, n), n >= 1 (Lemire 2019, unbiased)."""
    cdef uint64_t lo
    cdef uint64_t hi = mulhi64(next64(state), n, &lo)
    cdef uint64_t threshold
    if lo < n:
        threshold = (-n) % n
        while lo < threshold:
            hi = mulhi64(next64(state), n, &lo)
    return hi


cdef inline void draw_targets(uint64_t seed, id_t j, id_t n, id_t k, id_t* out,
                              uint64_t* seen) noexcept nogil:
    """The k distinct targets of j among 0..n-1 without j, in draw order (the delivery order).

    `seen` is a bitmap of n bits, all zero on entry and again on return: a duplicate draw (rare for
    k << n) is the only data-dependent branch.
    """
    cdef uint64_t state = stream_init(seed, <uint64_t>j)
    cdef uint64_t bit
    cdef id_t r, m = 0
    while m < k:
        r = <id_t>bounded(&state, <uint64_t>(n - 1))
        r += r >= j
        bit = (<uint64_t>1) << (r & 63)
        if seen[r >> 6] & bit:
            continue
        seen[r >> 6] |= bit
        out[m] = r
        m += 1
    for m in range(k):
        seen[out[m] >> 6] = 0
