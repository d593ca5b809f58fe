# Bodies of the indexed tournament tree (see _tree.pxd for layout and invariants) and `IndexedTree`,
# a thin Python wrapper used by the tests.
from libc.stdint cimport INT32_MAX, uintptr_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.math cimport INFINITY, isnan

import numpy as np

from sparseprop._core._memory cimport big_alloc
from sparseprop._core._heap import as_keys


cdef int tree_init(Tree* t, Py_ssize_t n, TreeLeaf* leaves) except -1 nogil:
    """Set up the internal levels over `leaves` (tree_padded(n) records, 64-byte aligned, owned by the
    caller); padding leaves get key +inf. Keys and the levels are set by `tree_build`."""
    cdef Py_ssize_t total = 0, c = tree_padded(n), m, i
    cdef int l = 0
    t.n = n
    t.leaves = leaves
    t.count[0] = c
    while True:
        l += 1
        if l > TREE_MAX_HEIGHT:
            with gil:
                raise ValueError(f"tree: too many ids ({n})")
        m = (c + 3) // 4
        t.count[l] = m
        total += tree_padded(m)
        c = m
        if m == 1:
            break
    t.height = l
    t.up2 = 2 if l > 1 else 1
    t._mem = big_alloc(total * sizeof(TreeNode) + 64)
    t.flags = <uint64_t*>calloc((n + 63) // 64 + 1, sizeof(uint64_t))
    if t._mem == NULL or t.flags == NULL:
        with gil:
            raise MemoryError(f"cannot allocate a tree of {n} ids")
    cdef TreeNode* p = <TreeNode*>((<uintptr_t>t._mem + 63) & ~(<uintptr_t>63))
    for l in range(1, t.height + 1):
        t.level[l] = p
        for i in range(tree_padded(t.count[l])):
            p[i].key = INFINITY
            p[i].id = INT32_MAX
            p[i]._pad = 0
        p += tree_padded(t.count[l])
    for i in range(n, t.count[0]):
        leaves[i].payload = 0.0
        leaves[i].key = INFINITY
    t.pend_n = 0
    return 0


cdef void tree_free(Tree* t) noexcept nogil:
    free(t._mem)
    free(t.flags)
    t._mem = NULL
    t.flags = NULL


cdef void tree_build(Tree* t) noexcept nogil:
    """Recompute every internal node from the leaves' keys (linear time); drops deferred repairs."""
    cdef Py_ssize_t g
    cdef int l
    for g in range(t.count[1]):
        _leaf_min(t.leaves, g, &t.level[1][g].key, &t.level[1][g].id)
    for l in range(2, t.height + 1):
        for g in range(t.count[l]):
            _node_min(&t.level[l - 1][4 * g], &t.level[l][g].key, &t.level[l][g].id)
    t.pend_n = 0


def tree_defer():
    """The compile-time number of inputs a group repair may wait (SPARSEPROP_TREE_DEFER)."""
    return TREE_DEFER


cdef class IndexedTree:
    """Indexed tournament tree over ids 0..n-1, ordered by (key, id): the same contract as
    `IndexedHeap`, plus `input` (a deferred update) and `flush`.

    Parameters
    ----------
    keys : array_like of float64, shape (n,)
        Initial key of every id; ``+inf`` means "never" and is allowed, NaN is not.
    """
    cdef Tree _t
    cdef TreeLeaf* _leaves

    def __cinit__(self, keys):
        keys = as_keys(keys)
        cdef double[::1] k = keys
        cdef Py_ssize_t n = keys.shape[0], i
        self._t._mem = NULL
        self._t.flags = NULL
        self._leaves = <TreeLeaf*>big_alloc(tree_padded(n) * sizeof(TreeLeaf))
        if self._leaves == NULL:
            raise MemoryError()
        tree_init(&self._t, n, self._leaves)
        for i in range(n):
            self._leaves[i].key = k[i]
            self._leaves[i].payload = 0.0
        tree_build(&self._t)

    def __dealloc__(self):
        tree_free(&self._t)
        free(self._leaves)

    def __len__(self):
        return self._t.n

    def _check(self, Py_ssize_t i, double key):
        if i < 0 or i >= self._t.n:
            raise IndexError(f"id {i} out of range [0, {self._t.n})")
        if isnan(key):
            raise ValueError("key: NaN is not a valid key")

    def update(self, Py_ssize_t i, double key):
        """Set the key of id ``i`` and repair at once (O(log n))."""
        self._check(i, key)
        tree_set(&self._t, <id_t>i, key)

    def input(self, Py_ssize_t i, double key):
        """Set the key of id ``i``, deferring the repair: `top` is exact only after `flush`."""
        self._check(i, key)
        tree_input(&self._t, <id_t>i, self._leaves[i].key, key)

    def flush(self):
        tree_flush(&self._t)

    def top(self):
        """``(id, key)`` with the smallest key (ties: smallest id)."""
        cdef TreeNode* r = &self._t.level[self._t.height][0]
        return int(r.id), float(r.key)

    def key(self, Py_ssize_t i):
        self._check(i, 0.0)
        return float(self._leaves[i].key)

    def keys(self):
        """Current keys indexed by id."""
        out = np.empty(self._t.n, dtype=np.float64)
        cdef double[::1] o = out
        cdef Py_ssize_t i
        for i in range(self._t.n):
            o[i] = self._leaves[i].key
        return out

    def check(self):
        """Raise AssertionError unless every internal node is the minimum of its children and the
        padding is intact (call after `flush`)."""
        cdef Tree* t = &self._t
        cdef Py_ssize_t g
        cdef int l
        cdef double k
        cdef id_t i
        for g in range(t.n, t.count[0]):
            if t.leaves[g].key != INFINITY:
                raise AssertionError(f"padding leaf {g} overwritten")
        for l in range(1, t.height + 1):
            for g in range(tree_padded(t.count[l])):
                if g >= t.count[l]:
                    if t.level[l][g].key != INFINITY or t.level[l][g].id != INT32_MAX:
                        raise AssertionError(f"padding node {g} of level {l} overwritten")
                    continue
                if l == 1:
                    _leaf_min(t.leaves, g, &k, &i)
                else:
                    _node_min(&t.level[l - 1][4 * g], &k, &i)
                if t.level[l][g].key != k or t.level[l][g].id != i:
                    raise AssertionError(f"node {g} of level {l} holds ({t.level[l][g].key}, "
                                         f"{t.level[l][g].id}), its children's minimum is ({k}, {i})")
