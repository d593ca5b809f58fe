# The event engine: ONE loop, specialised at compile time by fused types over the model (_models.pxd)
# and over the queue that finds the next spiker:
#   Heap        SparseProp: indexed d-ary min-heap of keys, O(K log N) per spike
#   DenseQueue  conventional event-driven baseline: keys in a plain array, every neuron scanned at
#               every spike, O(N) per spike; same arithmetic, hence the identical spike sequence
#
# Data layout
# - `slots[i]` = (state, heap position): one 16-byte struct per neuron, so a target's state and its
#   heap position arrive in one cache miss. The heap holds (key, id) nodes.
# - Procedural connectivity keeps no synapses: the targets of j are redrawn from (seed, j) at each
#   spike into `tbuf` (weights all equal, `wbuf`). Explicit connectivity is CSR by presynaptic neuron.
#
# One spike of j at clock c (= key of j): record (t, j); reset j; deliver w to each target in
# delivery order (a target whose key is already c is committed to fire now and ignores it); a
# target pushed to threshold gets key c and fires next (ties: smaller id first). Keys never drop
# below the clock, so the top of the queue is always the next event.
#
# (Lazy key increases -- leave a lower bound in the heap, fix stale tops before each spike -- were
# measured and rejected: 23 root sift-downs per spike cost as much as the 100 eager repairs.)
from libc.stdint cimport int64_t, uint64_t, uint32_t
from libc.stdlib cimport calloc, malloc, free
from libc.math cimport INFINITY, isfinite

import numpy as np

from sparseprop._core._typedefs cimport id_t
from sparseprop._core._heap cimport (Heap, HeapEntry, heap_init, heap_free, heap_build, heap_update,
                                     heap_change_key, heap_key, heap_prefetch, prefetch)
from sparseprop._core._rng cimport draw_targets
from sparseprop._core._memory cimport big_alloc
from sparseprop._core._models cimport (BoundModel, LIFModel, QIFModel, QIFPhaseModel, TableModel,
                                       model_t, model_begin_spike, model_input, model_key, model_reset,
                                       model_elapsed, model_renorm_due, model_renorm,
                                       MODEL_LIF, MODEL_QIF_TIME, MODEL_QIF_PHASE, MODEL_TABLE)

# Prefetch distances (in targets) for the neuron slot and, once its position is known, the heap node
# (build-time macros so that benchmarks/ab_compare.py can measure alternatives; prefetching all K
# targets up front instead measured the same, 0.96-0.99x, and was removed).
cdef extern from *:
    """
    #ifndef SPARSEPROP_PF_SLOT
    #define SPARSEPROP_PF_SLOT 16
    #endif
    #ifndef SPARSEPROP_PF_NODE
    #define SPARSEPROP_PF_NODE 8
    #endif
    """
    const Py_ssize_t PF_SLOT "SPARSEPROP_PF_SLOT"
    const Py_ssize_t PF_NODE "SPARSEPROP_PF_NODE"

cpdef enum Status:
    STATUS_COUNT = 0     # the requested number of spikes was processed
    STATUS_TIME = 1      # the next spike would be after t_stop
    STATUS_SILENT = 2    # no neuron will ever fire again


ctypedef HeapEntry Slot     # payload = the neuron's state, pos = its heap position


ctypedef struct DenseQueue:
    double* keys
    Py_ssize_t n


ctypedef fused queue_t:
    Heap
    DenseQueue


ctypedef struct Core:
    Slot* slots
    id_t n
    bint procedural
    uint64_t seed
    id_t k
    id_t* tbuf
    double* wbuf
    uint64_t* seen
    const int64_t* indptr
    const id_t* indices
    const double* weights
    double clock
    long long n_renorm


cdef inline id_t queue_top(const queue_t* q, double* key) noexcept nogil:
    cdef Py_ssize_t i, best = 0
    cdef double bk, m0, m1, m2, m3
    if queue_t is Heap:
        key[0] = q.nodes[0].key
        return q.nodes[0].id
    else:
        # Minimum with four independent chains (no branch), then the first id holding it.
        m0 = m1 = m2 = m3 = INFINITY
        i = 0
        while i + 4 <= q.n:
            m0 = q.keys[i] if q.keys[i] < m0 else m0
            m1 = q.keys[i + 1] if q.keys[i + 1] < m1 else m1
            m2 = q.keys[i + 2] if q.keys[i + 2] < m2 else m2
            m3 = q.keys[i + 3] if q.keys[i + 3] < m3 else m3
            i += 4
        while i < q.n:
            m0 = q.keys[i] if q.keys[i] < m0 else m0
            i += 1
        m0 = m0 if m0 < m1 else m1
        m2 = m2 if m2 < m3 else m3
        bk = m0 if m0 < m2 else m2
        while q.keys[best] != bk and best + 1 < q.n:
            best += 1
        key[0] = bk
        return <id_t>best


cdef inline double queue_key(const queue_t* q, id_t i) noexcept nogil:
    if queue_t is Heap:
        return heap_key(q, i)
    else:
        return q.keys[i]


cdef inline void queue_set(queue_t* q, id_t i, double key) noexcept nogil:
    if queue_t is Heap:
        heap_update(q, i, key)
    else:
        q.keys[i] = key


cdef inline void queue_prefetch(const queue_t* q, id_t i) noexcept nogil:
    if queue_t is Heap:
        heap_prefetch(q, i)
    else:
        prefetch(&q.keys[i])


cdef void renormalise(const model_t* m, queue_t* q, Core* e) noexcept nogil:
    """Rescale clock, states and keys exactly (power-of-two operation): order and bits preserved."""
    cdef Py_ssize_t i
    for i in range(e.n):
        e.slots[i].payload = model_renorm(m, e.slots[i].payload)
    if queue_t is Heap:
        for i in range(q.size):
            q.nodes[i].key = model_renorm(m, q.nodes[i].key)
    else:
        for i in range(q.n):
            q.keys[i] = model_renorm(m, q.keys[i])
    e.clock = model_renorm(m, e.clock)
    e.n_renorm += 1


cdef int run_loop(model_t* m, queue_t* q, Core* e, double* times, id_t* ids,
                  Py_ssize_t max_spikes, double t_stop, double tau, Py_ssize_t* n_done) noexcept nogil:
    cdef Py_ssize_t count = 0, nt, a, p
    cdef int status = STATUS_COUNT
    cdef id_t j, i
    cdef const id_t* tg
    cdef const double* wp
    cdef double key, t, s, clock, old
    while count < max_spikes:
        j = queue_top(q, &key)
        if key == INFINITY:
            status = STATUS_SILENT
            break
        t = model_elapsed(m, key, e.n_renorm) * tau
        if t > t_stop:
            status = STATUS_TIME
            break
        clock = key
        e.clock = clock
        model_begin_spike(m, clock)
        if times != NULL:
            times[count] = t
            ids[count] = j
        count += 1

        s = model_reset(m, j, clock)
        e.slots[j].payload = s
        queue_set(q, j, model_key(m, j, s, clock))

        if e.procedural:
            draw_targets(e.seed, j, e.n, e.k, e.tbuf, e.seen)
            tg = e.tbuf
            wp = e.wbuf
            nt = e.k
        else:
            tg = e.indices + e.indptr[j]
            wp = e.weights + e.indptr[j]
            nt = e.indptr[j + 1] - e.indptr[j]

        # Software pipeline over the targets' random memory: slots PF_SLOT ahead, heap nodes
        # PF_NODE ahead (their position comes from the slot fetched earlier).
        for a in range(min(PF_SLOT, nt)):
            prefetch(&e.slots[tg[a]])
        for a in range(min(PF_NODE, nt)):
            queue_prefetch(q, tg[a])
        for a in range(nt):
            if a + PF_SLOT < nt:
                prefetch(&e.slots[tg[a + PF_SLOT]])
            if a + PF_NODE < nt:
                queue_prefetch(q, tg[a + PF_NODE])
            i = tg[a]
            if queue_t is Heap:
                p = e.slots[i].pos
                old = q.nodes[p].key
            else:
                old = q.keys[i]
            if old <= clock:
                continue                    # committed to fire at this instant
            s = model_input(m, i, e.slots[i].payload, clock, wp[a])
            e.slots[i].payload = s
            if queue_t is Heap:
                heap_change_key(q, p, old, model_key(m, i, s, clock))
            else:
                q.keys[i] = model_key(m, i, s, clock)

        if model_renorm_due(m, e.clock):
            renormalise(m, q, e)
    n_done[0] = count
    return status


cdef void compute_keys(const model_t* m, Core* e, double* keys) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(e.n):
        keys[i] = model_key(m, i, e.slots[i].payload, e.clock)


cdef class Engine:
    """Event engine over a bound model, a connectivity and a state (internal; see sparseprop.simulate).

    Parameters
    ----------
    model : BoundModel
    states : float64 array (n,)
        Engine states (model coordinates, see _models.pxd) at clock `clock`.
    clock : float
    n_renorm : int
        Number of renormalisations so far (part of the time origin).
    queue : {"heap", "dense"}
    k, weight, seed : procedural fixed out-degree connectivity (k > 0), or
    indptr, indices, weights : CSR by presynaptic neuron (int64, int32, float64).
    """
    cdef Core c
    cdef Heap heap
    cdef DenseQueue dense
    cdef readonly BoundModel model
    cdef readonly str queue
    cdef object _csr

    def __cinit__(self):
        self.c.slots = NULL
        self.c.tbuf = NULL
        self.c.wbuf = NULL
        self.c.seen = NULL
        self.heap._mem = NULL
        self.dense.keys = NULL

    def __init__(self, BoundModel model, states, double clock, long long n_renorm, str queue,
                 Py_ssize_t k=0, double weight=0.0, uint64_t seed=0,
                 indptr=None, indices=None, weights=None):
        cdef double[::1] st = np.ascontiguousarray(states, dtype=np.float64)
        cdef Py_ssize_t n = st.shape[0], i
        if queue not in ("heap", "dense"):
            raise ValueError(f"engine: choose 'heap' or 'dense', got {queue!r}")
        self.model = model
        self.queue = queue
        self.c.n = <id_t>n
        self.c.clock = clock
        self.c.n_renorm = n_renorm
        self.c.slots = <Slot*>big_alloc(n * sizeof(Slot))
        if self.c.slots == NULL:
            raise MemoryError(f"cannot allocate state for {n} neurons")
        for i in range(n):
            self.c.slots[i].payload = st[i]
            self.c.slots[i].pos = 0
            self.c.slots[i]._pad = 0
        self.c.procedural = indptr is None
        cdef int64_t[::1] ip
        cdef id_t[::1] ix
        cdef double[::1] wt
        if self.c.procedural:
            self.c.seed = seed
            self.c.k = <id_t>k
            self.c.tbuf = <id_t*>malloc(max(k, 1) * sizeof(id_t))
            self.c.wbuf = <double*>malloc(max(k, 1) * sizeof(double))
            self.c.seen = <uint64_t*>calloc((n + 63) // 64, sizeof(uint64_t))
            if self.c.tbuf == NULL or self.c.wbuf == NULL or self.c.seen == NULL:
                raise MemoryError("cannot allocate target buffers")
            for i in range(k):
                self.c.wbuf[i] = weight
        else:
            ip = indptr
            ix = indices
            wt = weights
            self._csr = (indptr, indices, weights)
            self.c.indptr = &ip[0]
            self.c.indices = &ix[0] if ix.shape[0] else NULL
            self.c.weights = &wt[0] if wt.shape[0] else NULL

        if model.code == MODEL_TABLE:
            # one weight for every synapse: the table model's fused fast path (see _models.pxd)
            if self.c.procedural:
                model.use_fused(weight)
            else:
                w_all = np.asarray(weights)
                model.use_fused(float(w_all[0]) if w_all.size and np.all(w_all == w_all[0]) else None)

        keys = np.empty(n, dtype=np.float64)
        cdef double[::1] kv = keys
        if model.code == MODEL_LIF:
            compute_keys(&model.lif, &self.c, &kv[0])
        elif model.code == MODEL_QIF_TIME:
            compute_keys(&model.qif, &self.c, &kv[0])
        elif model.code == MODEL_TABLE:
            compute_keys(&model.tab, &self.c, &kv[0])
        else:
            compute_keys(&model.qifp, &self.c, &kv[0])
        if queue == "heap":
            heap_init(&self.heap, n, self.c.slots)
            heap_build(&self.heap, &kv[0])
        else:
            self.dense.keys = <double*>malloc(n * sizeof(double))
            if self.dense.keys == NULL:
                raise MemoryError(f"cannot allocate keys for {n} neurons")
            self.dense.n = n
            for i in range(n):
                self.dense.keys[i] = kv[i]

    def __dealloc__(self):
        free(self.c.slots)
        free(self.c.tbuf)
        free(self.c.wbuf)
        free(self.c.seen)
        free(self.dense.keys)
        if self.heap._mem != NULL:
            heap_free(&self.heap)

    def run(self, double[::1] times, id_t[::1] ids, Py_ssize_t offset, Py_ssize_t max_spikes,
            double t_stop, double tau, bint record=True):
        """Process up to `max_spikes` spikes with time <= t_stop (s); returns (count, status).

        With `record`, spike times (s) and ids are written to times/ids from `offset` on (the caller
        guarantees room for max_spikes).
        """
        cdef double* tp = NULL
        cdef id_t* ip = NULL
        cdef Py_ssize_t done = 0
        cdef int status
        cdef int code = self.model.code
        cdef bint heap = self.queue == "heap"
        if max_spikes <= 0:
            return 0, STATUS_COUNT
        if record:
            if offset + max_spikes > times.shape[0] or offset + max_spikes > ids.shape[0]:
                raise ValueError("output buffers too small")
            tp = &times[offset]
            ip = &ids[offset]
        with nogil:
            if code == MODEL_LIF:
                if heap:
                    status = run_loop(&self.model.lif, &self.heap, &self.c, tp, ip, max_spikes, t_stop, tau, &done)
                else:
                    status = run_loop(&self.model.lif, &self.dense, &self.c, tp, ip, max_spikes, t_stop, tau, &done)
            elif code == MODEL_QIF_TIME:
                if heap:
                    status = run_loop(&self.model.qif, &self.heap, &self.c, tp, ip, max_spikes, t_stop, tau, &done)
                else:
                    status = run_loop(&self.model.qif, &self.dense, &self.c, tp, ip, max_spikes, t_stop, tau, &done)
            elif code == MODEL_TABLE:
                if heap:
                    status = run_loop(&self.model.tab, &self.heap, &self.c, tp, ip, max_spikes, t_stop, tau, &done)
                else:
                    status = run_loop(&self.model.tab, &self.dense, &self.c, tp, ip, max_spikes, t_stop, tau, &done)
            else:
                if heap:
                    status = run_loop(&self.model.qifp, &self.heap, &self.c, tp, ip, max_spikes, t_stop, tau, &done)
                else:
                    status = run_loop(&self.model.qifp, &self.dense, &self.c, tp, ip, max_spikes, t_stop, tau, &done)
        if code == MODEL_TABLE and self.model.tab_below:
            raise ValueError(
                f"table model: {self.model.tab_below} input(s) drove a neuron below the domain of table "
                f"{self.model.model.table_ref!r} (v_min = {self.model.tab.maps.v_min!r}), which has no analytic "
                f"continuation there; regenerate the table with a lower --v-min")
        return done, status

    def states(self):
        """Copy of the per-neuron engine states."""
        out = np.empty(self.c.n, dtype=np.float64)
        cdef double[::1] o = out
        cdef Py_ssize_t i
        for i in range(self.c.n):
            o[i] = self.c.slots[i].payload
        return out

    def keys(self):
        """Per-neuron keys (next free firing clock; +inf = never), computed from the states."""
        out = np.empty(self.c.n, dtype=np.float64)
        cdef double[::1] o = out
        cdef Py_ssize_t i
        if self.model.code == MODEL_LIF:
            compute_keys(&self.model.lif, &self.c, &o[0])
        elif self.model.code == MODEL_QIF_TIME:
            compute_keys(&self.model.qif, &self.c, &o[0])
        else:
            compute_keys(&self.model.qifp, &self.c, &o[0])
        return out

    @property
    def clock(self):
        return self.c.clock

    @property
    def n_renorm(self):
        return self.c.n_renorm

    def elapsed(self, double clock, long long n_renorm):
        """Time since the origin in units of tau for an engine clock value."""
        if self.model.code == MODEL_LIF:
            return model_elapsed(&self.model.lif, clock, n_renorm)
        if self.model.code == MODEL_QIF_TIME:
            return model_elapsed(&self.model.qif, clock, n_renorm)
        if self.model.code == MODEL_TABLE:
            return model_elapsed(&self.model.tab, clock, n_renorm)
        return model_elapsed(&self.model.qifp, clock, n_renorm)
