# Counter-based random numbers for procedural connectivity: the stream of neuron j under seed s is a
# pure function of (s, j), so the K targets of j can be regenerated at each of j's spikes and no
# synapse is ever stored. Generator: SplitMix64 (Steele, Lea & Flood 2014) seeded by a mix of (s, j);
# bounded integers by Lemire's multiply-shift with rejection (exactly uniform).
from libc.stdint cimport uint64_t, uint32_t, int64_t
from libc.string cimport memset
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


cdef inline int target_set_bits(id_t k) noexcept nogil:
    """log2 of the slots of the hash set of draw_targets: the smallest power of two >= 4 k (>= 16)."""
    cdef int b = 4
    while (<int64_t>1 << b) < 4 * <int64_t>k:
        b += 1
    return b


cdef inline Py_ssize_t target_set_words(id_t n, id_t k) noexcept nogil:
    """Size in uint64 words of the `seen` buffer of draw_targets: the smaller of a bitmap of n bits
    and a hash set of 1 << target_set_bits(k) uint32 slots."""
    cdef Py_ssize_t bitmap = (<Py_ssize_t>n + 63) // 64
    cdef Py_ssize_t hashset = (<Py_ssize_t>1 << target_set_bits(k)) // 2
    return bitmap if bitmap <= hashset else hashset


cdef inline void draw_targets(uint64_t seed, id_t j, id_t n, id_t k, id_t* out,
                              uint64_t* seen) noexcept nogil:
    """The k distinct targets of j among 0..n-1 without j, in draw order (the delivery order).

    `seen` (target_set_words(n, k) words, all zero on entry and again on return) filters duplicate
    draws (rare for k << n), whichever of the two is smaller, so that it stays in L1 for any n:
    - a bitmap of n bits (small n), cleared by walking the k targets;
    - else an open-addressing hash set of uint32 slots holding r + 1 (0 = empty; Fibonacci hashing,
      linear probing, load <= 1/4), cleared with memset.
    The filter does not change the drawn sequence.
    """
    cdef uint64_t state = stream_init(seed, <uint64_t>j)
    cdef uint64_t bit
    cdef uint32_t* slot = <uint32_t*>seen
    cdef int b = target_set_bits(k)
    cdef uint32_t mask = (<uint32_t>1 << b) - 1
    cdef uint32_t h, r1
    cdef id_t r, m = 0
    if (<Py_ssize_t>n + 63) // 64 <= (<Py_ssize_t>1 << b) // 2:
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
        return
    while m < k:
        r = <id_t>bounded(&state, <uint64_t>(n - 1))
        r += r >= j
        r1 = <uint32_t>r + 1
        h = (r1 * <uint32_t>0x9E3779B1) >> (32 - b)
        while slot[h] != r1 and slot[h] != 0:
            h = (h + 1) & mask
        if slot[h] == r1:
            continue
        slot[h] = r1
        out[m] = r
        m += 1
    memset(seen, 0, (<size_t>mask + 1) * sizeof(uint32_t))
