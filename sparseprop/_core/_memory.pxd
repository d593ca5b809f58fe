# Allocation of the large per-neuron arrays (heap nodes, neuron slots): 2 MiB aligned and, where the
# kernel allows it, backed by transparent huge pages (madvise). Random access to 10^6-10^7 neurons
# otherwise misses the TLB on nearly every target. Freed with `free`.
from libc.stdlib cimport free

cdef extern from *:
    """
    #include <stdlib.h>
    #include <sys/mman.h>
    static void* sparseprop_big_alloc(size_t size) {
        const size_t huge = (size_t)2 << 20;
        void* p = NULL;
        if (size < huge) return malloc(size ? size : 1);
        size = (size + huge - 1) & ~(huge - 1);
        if (posix_memalign(&p, huge, size) != 0) return NULL;
    #if defined(MADV_HUGEPAGE) && !defined(SPARSEPROP_NO_HUGEPAGE)
        madvise(p, size, MADV_HUGEPAGE);
    #endif
        return p;
    }
    """
    void* big_alloc "sparseprop_big_alloc"(size_t size) noexcept nogil
