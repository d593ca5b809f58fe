# Bodies of the indexed d-ary heap (see _heap.pxd for layout and invariants) and `IndexedHeap`,
# a thin Python wrapper used by the tests and by anyone who wants the structure from Python.
from libc.stdint cimport INT32_MAX, uintptr_t
from libc.stdlib cimport calloc, free, malloc
from libc.math cimport INFINITY, isnan

import numpy as np

from sparseprop._core._memory cimport big_alloc

cdef Py_ssize_t _CACHE_LINE = 64


cdef int heap_init(Heap* h, Py_ssize_t n, HeapEntry* entries) except -1 nogil:
    """Allocate room for n ids; `entries` is the caller's per-id record array (n entries)."""
    # d-1 leading nodes shift each sibling group onto a cache-line boundary; d trailing sentinels.
    cdef Py_ssize_t total = n + 2 * HEAP_ARITY
    cdef Py_ssize_t i
    h._mem = big_alloc(total * sizeof(HeapNode) + _CACHE_LINE)
    if h._mem == NULL:
        with gil:
            raise MemoryError(f"cannot allocate a heap of {n} nodes")
    cdef uintptr_t aligned = (<uintptr_t>h._mem + _CACHE_LINE - 1) & ~(<uintptr_t>_CACHE_LINE - 1)
    h.nodes = (<HeapNode*>aligned) + (HEAP_ARITY - 1)
    h.entries = entries
    h.size = n
    for i in range(n, n + HEAP_ARITY + 1):
        h.nodes[i].key = INFINITY
        h.nodes[i].id = INT32_MAX
        h.nodes[i].flag = 0
    return 0


cdef void heap_free(Heap* h) noexcept nogil:
    free(h._mem)
    h._mem = NULL
    h.nodes = NULL
    h.size = 0


cdef void heap_build(Heap* h, const double* keys, const unsigned char* flags) noexcept nogil:
    """Floyd's linear-time build: ids 0..size-1 with the given keys (and node flags, NULL: all 0)."""
    cdef Py_ssize_t i
    for i in range(h.size):
        h.nodes[i].key = keys[i]
        h.nodes[i].id = <id_t>i
        h.nodes[i].flag = 0 if flags == NULL else flags[i]
        h.entries[i].pos = <id_t>i
    heap_heapify(h)


def heap_arity():
    """The compile-time arity d of the heap (set with SPARSEPROP_HEAP_ARITY at build time)."""
    return HEAP_ARITY


def as_keys(keys):
    """`keys` as a contiguous float64 array for IndexedHeap / IndexedTree, or a ValueError."""
    keys = np.ascontiguousarray(keys, dtype=np.float64)
    if keys.ndim != 1 or keys.shape[0] == 0:
        raise ValueError("keys: expected a non-empty 1-D array")
    if keys.shape[0] >= INT32_MAX:
        raise ValueError("keys: at most 2**31 - 2 ids")
    if np.isnan(keys).any():
        raise ValueError("keys: NaN is not a valid key")
    return keys


cdef class IndexedHeap:
    """Indexed min-heap over ids 0..n-1, ordered by (key, id).

    Parameters
    ----------
    keys : array_like of float64, shape (n,)
        Initial key of every id; ``+inf`` means "never" and is allowed, NaN is not.
    """
    cdef Heap _h
    cdef HeapEntry* _entries

    def __cinit__(self, keys):
        keys = as_keys(keys)
        cdef double[::1] k = keys
        self._entries = <HeapEntry*>calloc(keys.shape[0], sizeof(HeapEntry))
        if self._entries == NULL:
            raise MemoryError()
        heap_init(&self._h, keys.shape[0], self._entries)
        heap_build(&self._h, &k[0], NULL)

    def __dealloc__(self):
        heap_free(&self._h)
        free(self._entries)

    def __len__(self):
        return self._h.size

    def _check_id(self, Py_ssize_t i):
        if i < 0 or i >= self._h.size:
            raise IndexError(f"id {i} out of range [0, {self._h.size})")

    def update(self, Py_ssize_t i, double key):
        """Set the key of id ``i`` (O(log n))."""
        self._check_id(i)
        if isnan(key):
            raise ValueError("key: NaN is not a valid key")
        heap_update(&self._h, <id_t>i, key)

    def top(self):
        """``(id, key)`` with the smallest key (ties: smallest id)."""
        return int(self._h.nodes[0].id), float(self._h.nodes[0].key)

    def key(self, Py_ssize_t i):
        self._check_id(i)
        return float(heap_key(&self._h, <id_t>i))

    def keys(self):
        """Current keys indexed by id."""
        out = np.empty(self._h.size, dtype=np.float64)
        cdef double[::1] o = out
        cdef Py_ssize_t i
        for i in range(self._h.size):
            o[i] = heap_key(&self._h, <id_t>i)
        return out

    def check(self):
        """Raise AssertionError unless heap order, position map and sentinels are consistent."""
        cdef Heap* h = &self._h
        cdef Py_ssize_t p, parent
        seen = np.zeros(h.size, dtype=bool)
        for p in range(h.size):
            i = h.nodes[p].id
            if not (0 <= i < h.size) or seen[i]:
                raise AssertionError(f"node {p} holds invalid or duplicate id {i}")
            seen[i] = True
            if h.entries[i].pos != p:
                raise AssertionError(f"pos[{i}] = {h.entries[i].pos}, but id {i} sits at {p}")
            if p > 0:
                parent = (p - 1) // HEAP_ARITY
                if node_less(&h.nodes[p], &h.nodes[parent]):
                    raise AssertionError(f"node {p} is smaller than its parent {parent}")
        for p in range(h.size, h.size + HEAP_ARITY):
            if h.nodes[p].key != INFINITY or h.nodes[p].id != INT32_MAX:
                raise AssertionError(f"sentinel {p} overwritten")
