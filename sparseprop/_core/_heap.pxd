# Indexed d-ary min-heap over a fixed set of ids 0..n-1 (keys may be +inf: "never").
#
# Layout and invariants
# - `nodes[p]` (p = 0 is the root) holds (key, id); the children of p are d*p+1 .. d*p+d.
#   The allocation is offset by d-1 nodes so that every group of d siblings is aligned to its own
#   size (d x 16 bytes: a whole cache line for d = 4) and never straddles two cache lines.
#   d is a build-time constant (SPARSEPROP_HEAP_ARITY, default 4; d = 2 measured no faster).
# - `entries[id]` is a 16-byte record per id: a `payload` double that belongs to the caller (the engine
#   keeps the neuron's state there) and `pos`, the index of id in `nodes`. Keeping both in one record
#   means one cache miss fetches a neuron's state and its heap position.
# - Order is lexicographic in (key, id): ties go to the smaller id, so the pop order is a total
#   order that does not depend on the heap's layout (needed for bit-exact continuation).
# - Past `size`, `pad` sentinel nodes (key +inf, id INT32_MAX) let sift-down compare all d children
#   without a bounds check.
from sparseprop._core._typedefs cimport id_t, prefetch

cdef extern from *:
    """
    #ifndef SPARSEPROP_HEAP_ARITY
    #define SPARSEPROP_HEAP_ARITY 4
    #endif
    """
    const int HEAP_ARITY "SPARSEPROP_HEAP_ARITY"


ctypedef struct HeapNode:
    double key
    id_t id
    id_t flag      # caller's mark travelling with the node (the engine: 1 = refractory, key = its end)


ctypedef struct HeapEntry:
    double payload
    id_t pos
    id_t _pad


ctypedef struct Heap:
    HeapNode* nodes
    void* _mem
    HeapEntry* entries
    Py_ssize_t size


cdef int heap_init(Heap* h, Py_ssize_t n, HeapEntry* entries) except -1 nogil
cdef void heap_free(Heap* h) noexcept nogil
cdef void heap_build(Heap* h, const double* keys, const unsigned char* flags) noexcept nogil


cdef inline bint node_less(const HeapNode* a, const HeapNode* b) noexcept nogil:
    # bitwise, not short-circuit: no unpredictable branch in the sift loops
    return (a.key < b.key) | ((a.key == b.key) & (a.id < b.id))


cdef inline void heap_sift_up(Heap* h, Py_ssize_t p) noexcept nogil:
    cdef HeapNode moving = h.nodes[p]
    cdef Py_ssize_t parent
    while p > 0:
        parent = (p - 1) // HEAP_ARITY
        if not node_less(&moving, &h.nodes[parent]):
            break
        h.nodes[p] = h.nodes[parent]
        h.entries[h.nodes[p].id].pos = <id_t>p
        p = parent
    h.nodes[p] = moving
    h.entries[moving.id].pos = <id_t>p


cdef inline void heap_sift_down(Heap* h, Py_ssize_t p) noexcept nogil:
    cdef HeapNode moving = h.nodes[p]
    cdef Py_ssize_t first, best, c
    cdef Py_ssize_t size = h.size
    while True:
        first = HEAP_ARITY * p + 1
        if first >= size:
            break
        best = first
        for c in range(first + 1, first + HEAP_ARITY):   # sentinels pad the last group
            if node_less(&h.nodes[c], &h.nodes[best]):
                best = c
        if not node_less(&h.nodes[best], &moving):
            break
        h.nodes[p] = h.nodes[best]
        h.entries[h.nodes[p].id].pos = <id_t>p
        p = best
    h.nodes[p] = moving
    h.entries[moving.id].pos = <id_t>p


cdef inline void heap_heapify(Heap* h) noexcept nogil:
    """Restore the heap order after arbitrary key changes in place (Floyd, linear time)."""
    cdef Py_ssize_t i
    if h.size > 1:
        for i in range((h.size - 2) // HEAP_ARITY, -1, -1):
            heap_sift_down(h, i)


cdef inline double heap_key(const Heap* h, id_t i) noexcept nogil:
    return h.nodes[h.entries[i].pos].key


cdef inline void heap_change_key(Heap* h, Py_ssize_t p, double old, double key) noexcept nogil:
    """Set the key of the node at position p (whose key was `old`) and restore the heap."""
    h.nodes[p].key = key
    if key < old:
        heap_sift_up(h, p)
    elif key > old:
        heap_sift_down(h, p)


cdef inline void heap_update(Heap* h, id_t i, double key) noexcept nogil:
    """Set the key of id i and restore the heap (sift up if it decreased, down otherwise)."""
    cdef Py_ssize_t p = h.entries[i].pos
    heap_change_key(h, p, h.nodes[p].key, key)


cdef inline void heap_prefetch(const Heap* h, id_t i) noexcept nogil:
    """Prefetch the node of id i and the group of its children (a sift-down visits them next)."""
    cdef Py_ssize_t p = h.entries[i].pos
    cdef Py_ssize_t c = HEAP_ARITY * p + 1
    if c > h.size:
        c = h.size                  # a leaf: point at the sentinel instead (valid memory)
    prefetch(&h.nodes[p])
    prefetch(&h.nodes[c])
