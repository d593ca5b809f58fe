# Indexed tournament (winner) tree over ids 0..n-1: the event engine's priority queue.
#
# Why not the heap (_heap.pxd): a heap moves nodes, so finding a neuron's key goes through a position
# map and every sift level writes another neuron's position: at 10^6 neurons an input touches at
# least two random cache lines (record with position, heap node), plus two per sift level. Here a
# neuron's key never moves: it sits in the caller's per-neuron record next to the neuron's state, and
# an input touches that one line (plus, for about 1 input in 4, the line of its group's summary). A spiker's path to the root is known from its id alone, so all of its
# lines are fetched at once instead of one dependent miss per level.
#
# Layout and invariants
# - `leaves[i]` (the caller's array, n rounded up to a multiple of 4, 64-byte aligned) holds a
#   `payload` double that belongs to the caller (the engine keeps the neuron's state there) and the
#   `key`. Padding leaves have key +inf. Four leaves = one cache line = one group.
# - Internal levels 1..height, each an array of (key, id) nodes padded to a multiple of 4 with
#   (+inf, INT32_MAX); node g of level l is the minimum of its 4 children (leaves 4g..4g+3 for
#   l = 1, nodes 4g..4g+3 of level l-1 above), in the total order (key, id): ties go to the smaller
#   id, so the top is the same as the heap's, whatever the history. Level `height` is the root.
# - Deferred repairs (`tree_input`): an input changes a leaf key at once and, only when its group's
#   minimum changed, queues the group; its summary lines are prefetched, and repairs run TREE_DEFER
#   at a time once TREE_PENDING groups wait (and at `tree_flush`), so each waits >= 8 queued groups.
#   Between an input and the flush only leaves are exact; the root is exact again after
#   `tree_flush`. Every other operation repairs immediately.
# - `flags`: one caller's bit per id (the engine: 1 = refractory, key = its end).
from libc.stdint cimport uint64_t
from libc.math cimport signbit
from sparseprop._core._typedefs cimport id_t, prefetch

cdef extern from *:
    """
    #ifndef SPARSEPROP_TREE_DEFER
    #define SPARSEPROP_TREE_DEFER 8
    #endif
    #if SPARSEPROP_TREE_DEFER < 1 || SPARSEPROP_TREE_DEFER > 16
    #error "SPARSEPROP_TREE_DEFER must lie in 1..16 (TREE_PENDING)"
    #endif
    """
    const int TREE_DEFER "SPARSEPROP_TREE_DEFER"

cdef enum:
    TREE_MAX_HEIGHT = 24       # 4**24 > 2**31 ids
    TREE_PENDING = 16          # capacity of the pending list; when full, the oldest TREE_DEFER are repaired


ctypedef struct TreeLeaf:
    double payload
    double key


ctypedef struct TreeNode:
    double key
    id_t id
    id_t _pad


ctypedef struct Tree:
    TreeLeaf* leaves
    TreeNode* level[TREE_MAX_HEIGHT + 1]   # level[l] for l = 1..height; level[height][0] is the root
    Py_ssize_t count[TREE_MAX_HEIGHT + 1]  # nodes per level (count[0] = padded number of leaves)
    int height
    int up2                                # level of the second summary line prefetched by an input (1 if height == 1)
    Py_ssize_t n
    uint64_t* flags
    void* _mem
    Py_ssize_t pend[TREE_PENDING]         # level-1 groups waiting for a repair, oldest first
    int pend_n


cdef int tree_init(Tree* t, Py_ssize_t n, TreeLeaf* leaves) except -1 nogil
cdef void tree_free(Tree* t) noexcept nogil
cdef void tree_build(Tree* t) noexcept nogil


cdef inline Py_ssize_t tree_padded(Py_ssize_t n) noexcept nogil:
    """Number of leaves the caller allocates for n ids (a multiple of 4)."""
    return (n + 3) & ~(<Py_ssize_t>3)


cdef inline void _leaf_min(const TreeLeaf* a, Py_ssize_t g, double* key, id_t* id) noexcept nogil:
    """Minimum of leaf group g by (key, id): the smallest key, then its first index (no branch).
    The key is read back from the winner, so that the summary holds its exact bits (-0.0 vs 0.0)."""
    cdef const TreeLeaf* b = a + 4 * g
    cdef double k0 = b[0].key, k1 = b[1].key, k2 = b[2].key, k3 = b[3].key
    cdef double m01 = k0 if k0 < k1 else k1
    cdef double m23 = k2 if k2 < k3 else k3
    cdef double m = m01 if m01 < m23 else m23
    cdef int c = 3
    c = 2 if k2 == m else c
    c = 1 if k1 == m else c
    c = 0 if k0 == m else c
    key[0] = b[c].key
    id[0] = <id_t>(4 * g + c)


cdef inline void _node_min(const TreeNode* b, double* key, id_t* id) noexcept nogil:
    """Minimum of 4 sibling nodes by (key, id)."""
    cdef double k0 = b[0].key, k1 = b[1].key, k2 = b[2].key, k3 = b[3].key
    cdef double m01 = k0 if k0 < k1 else k1
    cdef double m23 = k2 if k2 < k3 else k3
    cdef double m = m01 if m01 < m23 else m23
    cdef int c, best = 0
    cdef id_t best_id = 2147483647
    for c in range(4):
        if (b[c].key == m) & (b[c].id < best_id):
            best = c
            best_id = b[c].id
    key[0] = b[best].key
    id[0] = best_id


cdef inline void _repair(Tree* t, Py_ssize_t g) noexcept nogil:
    """Recompute level-1 node g from its leaves and the levels above while they change."""
    cdef double k
    cdef id_t i
    cdef int l
    cdef TreeNode* node
    _leaf_min(t.leaves, g, &k, &i)
    for l in range(1, t.height + 1):
        node = &t.level[l][g]
        if node.key == k and node.id == i and signbit(node.key) == signbit(k):
            return                  # unchanged (to the bit: -0.0 is not 0.0 here)
        node.key = k
        node.id = i
        g >>= 2
        if l < t.height:
            _node_min(&t.level[l][4 * g], &k, &i)


cdef inline void tree_set(Tree* t, id_t i, double key) noexcept nogil:
    """Set the key of id i and repair its path now."""
    t.leaves[i].key = key
    _repair(t, i >> 2)


cdef inline void tree_prefetch_path(const Tree* t, id_t i) noexcept nogil:
    """Fetch every line of i's path to the root at once (they are known from i alone)."""
    cdef Py_ssize_t g = i
    cdef int l
    prefetch(&t.leaves[i])
    for l in range(1, t.height):
        g >>= 2
        prefetch(&t.level[l][g & ~(<Py_ssize_t>3)])


cdef inline void tree_flush(Tree* t) noexcept nogil:
    """Apply every deferred repair: the root is exact again."""
    cdef int a
    for a in range(t.pend_n):
        _repair(t, t.pend[a])
    t.pend_n = 0


cdef inline void tree_input(Tree* t, id_t i, double old, double key) noexcept nogil:
    """Set the key of id i (whose key was `old`, possibly equal), deferring the repair of its group's
    summary.

    The group's minimum changes iff (min(old, key), i) beats the minimum of the other three leaves:
    i was the minimum, or becomes it. Most inputs (3 in 4) stop here, on the line of i's leaf. The
    outcome is data-dependent, hence unpredictable: no branch on it (the group is always written
    to the pending list, and counted only if it changed; repairs run in batches)."""
    cdef Py_ssize_t g = i >> 2
    cdef int c = i & 3, d
    cdef TreeLeaf* b = t.leaves + 4 * g
    cdef double k1 = b[(c + 1) & 3].key, k2 = b[(c + 2) & 3].key, k3 = b[(c + 3) & 3].key
    cdef double m = k1 if k1 < k2 else k2
    cdef double lo = key if key < old else old
    cdef Py_ssize_t changed
    cdef bint same
    m = k3 if k3 < m else m
    b[c].key = key
    same = (<uint64_t*>&key)[0] == (<uint64_t*>&old)[0]      # to the bit: -0.0 is not 0.0 here
    changed = (lo < m) & (not same)
    if lo == m:                 # a tie on the key: i wins unless a smaller index holds it
        changed = not same
        for d in range(c):
            if b[d].key == m:
                changed = 0
    # prefetch the summary lines (when unchanged: the first line of each level, as good as cached),
    # by arithmetic rather than a branch
    prefetch(t.level[1] + (g & ~(<Py_ssize_t>3)) * changed)
    prefetch(t.level[t.up2] + ((g >> 2) & ~(<Py_ssize_t>3)) * changed)
    t.pend[t.pend_n] = g
    t.pend_n += <int>changed
    if t.pend_n == TREE_PENDING:
        for d in range(TREE_DEFER):
            _repair(t, t.pend[d])
        for d in range(TREE_DEFER, TREE_PENDING):
            t.pend[d - TREE_DEFER] = t.pend[d]
        t.pend_n = TREE_PENDING - TREE_DEFER


cdef inline bint tree_flag(const Tree* t, id_t i) noexcept nogil:
    return (t.flags[i >> 6] >> (i & 63)) & 1


cdef inline void tree_set_flag(Tree* t, id_t i, bint flag) noexcept nogil:
    if flag:
        t.flags[i >> 6] |= (<uint64_t>1) << (i & 63)
    else:
        t.flags[i >> 6] &= ~((<uint64_t>1) << (i & 63))
