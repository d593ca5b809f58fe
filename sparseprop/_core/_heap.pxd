# Indexed d-ary min-heap over a fixed set of ids 0..n-1 (keys may be +inf: "never").
#
# Layout and invariants
# - `nodes[p]` (p = 0 is the root) holds (key, id); the children of p are d*p+1 .. d*p+d.
#   The allocation is offset by d-1 nodes so that every group of d siblings starts on a 64-byte
#   boundary (one cache line for d = 4 and 16-byte nodes).
# - `pos[id * pos_stride]` is the index p of id in `nodes`. The stride lets the position map live
#   inside a caller's per-neuron struct (the engine keeps it next to the neuron's state, so one
#   cache miss fetches both).
# - Order is lexicographic in (key, id): ties go to the smaller id, so the pop order is a total
#   order that does not depend on the heap's layout (needed for bit-exact continuation).
# - Past `size`, `pad` sentinel nodes (key +inf, id INT32_MAX) let sift-down compare all d children
#   without a bounds check.
from sparseprop._core._typedefs cimport id_t

cdef extern from *:
    """
    #ifndef SPARSEPROP_HEAP_ARITY
    #define SPARSEPROP_HEAP_ARITY 4
    #endif
    #define SPARSEPROP_PREFETCH(p) __builtin_prefetch((const void*)(p), 1, 3)
    """
    const int HEAP_ARITY "SPARSEPROP_HEAP_ARITY"
    void prefetch "SPARSEPROP_PREFETCH"(const void* p) noexcept nogil


ctypedef struct HeapNode:
    double key
    id_t id
    id_t _pad


ctypedef struct Heap:
    HeapNode* nodes
    void* _mem
    id_t* pos
    Py_ssize_t pos_stride
    Py_ssize_t size


cdef int heap_init(Heap* h, Py_ssize_t n, id_t* pos, Py_ssize_t pos_stride) except -1 nogil
cdef void heap_free(Heap* h) noexcept nogil
cdef void heap_build(Heap* h, const double* keys) noexcept nogil


cdef inline bint node_less(const HeapNode* a, const HeapNode* b) noexcept nogil:
    return a.key < b.key or (a.key == b.key and a.id < b.id)


cdef inline void heap_sift_up(Heap* h, Py_ssize_t p) noexcept nogil:
    cdef HeapNode moving = h.nodes[p]
    cdef Py_ssize_t parent
    while p > 0:
        parent = (p - 1) // HEAP_ARITY
        if not node_less(&moving, &h.nodes[parent]):
            break
        h.nodes[p] = h.nodes[parent]
        h.pos[h.nodes[p].id * h.pos_stride] = <id_t>p
        p = parent
    h.nodes[p] = moving
    h.pos[moving.id * h.pos_stride] = <id_t>p


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
        h.pos[h.nodes[p].id * h.pos_stride] = <id_t>p
        p = best
    h.nodes[p] = moving
    h.pos[moving.id * h.pos_stride] = <id_t>p


cdef inline double heap_key(const Heap* h, id_t i) noexcept nogil:
    return h.nodes[h.pos[i * h.pos_stride]].key


cdef inline void heap_update(Heap* h, id_t i, double key) noexcept nogil:
    """Set the key of id i and restore the heap (sift up if it decreased, down otherwise)."""
    cdef Py_ssize_t p = h.pos[i * h.pos_stride]
    cdef double old = h.nodes[p].key
    h.nodes[p].key = key
    if key < old:
        heap_sift_up(h, p)
    elif key > old:
        heap_sift_down(h, p)


cdef inline void heap_prefetch(const Heap* h, id_t i) noexcept nogil:
    prefetch(&h.nodes[h.pos[i * h.pos_stride]])
