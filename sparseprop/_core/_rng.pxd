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
                              id_t* table, uint32_t table_mask) noexcept nogil:
    """The k distinct targets of j among 0..n-1 without j, in draw order (the delivery order).

    `table` is scratch of table_mask + 1 slots (a power of two >= 2k): an open-addressing set that
    lives in L1 and is cleared here, so duplicates are rejected in O(1).
    """
    cdef uint64_t state = stream_init(seed, <uint64_t>j)
    cdef uint32_t slot
    cdef id_t r, m = 0
    cdef uint32_t s
    for s in range(table_mask + 1):
        table[s] = -1
    while m < k:
        r = <id_t>bounded(&state, <uint64_t>(n - 1))
        if r >= j:
            r += 1
        slot = (<uint32_t>r * <uint32_t>0x9E3779B1) & table_mask
        while table[slot] != -1 and table[slot] != r:
            slot = (slot + 1) & table_mask
        if table[slot] == r:
            continue
        table[slot] = r
        out[m] = r
        m += 1


cdef inline uint32_t table_mask_for(Py_ssize_t k) noexcept nogil:
    """Mask of the smallest power-of-two scratch set (>= 16 slots) holding k ids at load <= 1/2."""
    cdef uint32_t size = 16
    while size < 2 * k:
        size *= 2
    return size - 1
