# Allocation of the per-neuron arrays (queue nodes, neuron slots): at least cache-line (64-byte)
# aligned, so that a group of 4 16-byte records is one line; from 2 MiB on, 2 MiB aligned and, where
# the kernel allows it, backed by transparent huge pages (madvise): random access to 10^6-10^7
# neurons otherwise misses the TLB on nearly every target. Freed with `free`.
from libc.stdlib cimport free

cdef extern from *:
    """
    #include <stdlib.h>
    #include <sys/mman.h>
    static void* sparseprop_big_alloc(size_t size) {
        const size_t huge = (size_t)2 << 20;
        void* p = NULL;
        if (size < huge) return posix_memalign(&p, 64, size ? size : 64) == 0 ? p : NULL;
        size = (size + huge - 1) & ~(huge - 1);
        if (posix_memalign(&p, huge, size) != 0) return NULL;
    #if defined(MADV_HUGEPAGE) && !defined(SPARSEPROP_NO_HUGEPAGE)
        madvise(p, size, MADV_HUGEPAGE);
    #endif
        return p;
    }
    """
    void* big_alloc "sparseprop_big_alloc"(size_t size) noexcept nogil
