# Shared C types of the core. Neuron ids are int32 (N < 2**31); counts are int64; reals are float64.
from libc.stdint cimport int32_t, int64_t, uint64_t, uint8_t

ctypedef double float64_t
ctypedef int32_t id_t
ctypedef int64_t count_t

cdef extern from *:
    """
    #define SPARSEPROP_PREFETCH(p) __builtin_prefetch((const void*)(p), 1, 3)
    """
    void prefetch "SPARSEPROP_PREFETCH"(const void* p) noexcept nogil
