# The event engine: ONE loop, specialised at compile time by fused types over the model (_models.pxd)
# and over the queue that finds the next spiker:
#   Tree        SparseProp (default): indexed tournament tree (_tree.pxd), O(K log N) per spike
#   Heap        SparseProp: indexed d-ary min-heap of keys (_heap.pxd), O(K log N) per spike
#   DenseQueue  conventional event-driven baseline: keys in a plain array, every neuron scanned at
#               every spike, O(N) per spike; same arithmetic, hence the identical spike sequence
# All three order events by (key, id), so they give the same spike sequence bit for bit.
#
# Data layout
# - `slots[i]`: one 16-byte record per neuron (64-byte aligned, 4 per cache line): the state, and
#   with the tree the neuron's key (a target's state and key arrive in one cache miss), with the
#   heap its heap position (HeapEntry; the heap holds (key, id) nodes).
# - Procedural connectivity keeps no synapses: the targets of j are redrawn from (seed, j) at each
#   spike into `tbuf` (weights all equal, `wbuf`). Explicit connectivity is CSR by presynaptic neuron.
#
# One spike of j at clock c (= key of j): record (t, j); reset j; deliver w to each target in
# delivery order; a target pushed to threshold gets key c and fires when its turn comes (event
# sources at c first, then neurons at c by smaller id), unless later inputs of the same instant
# push it back below: same-instant inputs are summed. Keys never drop below the clock, so the top
# of the queue is always the next event.
#
# (Lazy key increases -- leave a lower bound in the heap, fix stale tops before each spike -- were
# measured and rejected: 23 root sift-downs per spike cost as much as the 100 eager repairs.)
from libc.stdint cimport int64_t, int32_t, uint64_t, uint32_t
from libc.stdlib cimport calloc, malloc, realloc, free
from libc.math cimport INFINITY, NAN, isfinite, log, exp

import numpy as np

from sparseprop._core._typedefs cimport id_t, prefetch
from sparseprop._core._heap cimport (Heap, HeapEntry, heap_init, heap_free, heap_build, heap_update,
                                     heap_change_key, heap_key, heap_prefetch, heap_heapify)
from sparseprop._core._tree cimport (Tree, TreeLeaf, tree_init, tree_free, tree_build, tree_set, tree_input,
                                     tree_flush, tree_prefetch_path, tree_flag, tree_set_flag, tree_padded)
from sparseprop._core._rng cimport draw_targets, target_set_words, next64, bounded
from sparseprop._core._memory cimport big_alloc
from sparseprop._core._models cimport (BoundModel, LIFModel, QIFModel, QIFPhaseModel, TableModel, MixedModel,
                                       qif_phase_input_pair, model_t, model_begin_spike, model_input,
                                       model_key, model_reset,
                                       model_elapsed, model_renorm_due, model_renorm, model_renorm_state,
                                       model_advance, model_clock_at, LIF_MAX_ADVANCE, QIF_RENORM_SHIFT,
                                       MODEL_LIF, MODEL_QIF_TIME, MODEL_QIF_PHASE, MODEL_TABLE, MODEL_MIXED)

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
    STATUS_COUNT = 0     # the requested number of spikes (or the event budget) was processed
    STATUS_TIME = 1      # the next event would be after t_stop
    STATUS_SILENT = 2    # no neuron will ever fire again and no event is pending
    STATUS_NOMEM = 3     # a pending-delivery buffer could not grow


ctypedef TreeLeaf Slot      # payload = the neuron's state; key (tree), or viewed as HeapEntry: pos (heap)


ctypedef struct DenseQueue:
    double* keys
    unsigned char* flags     # 1 = refractory (key = end of refractoriness), as HeapNode.flag
    Py_ssize_t n


ctypedef fused queue_t:
    Tree
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
    Tape* tape          # NULL: no taping


# ---- tape for the backward pass --------------------------------------------------------------------
# One record per event that changes neuron states (spikes, given-input events, Poisson events,
# delayed deliveries), in processing order: kind, src (spiker; input event index; Poisson target;
# presynaptic neuron), clock, renormalisation epoch, aux (Poisson weight; delivered run) and, for a
# spike set off by an input, the record of that input's event (`trigger`). Inputs ignored by a
# refractory target are listed as (event, position). A spike record's synapses are its zero-delay
# ones; a delivery's emitting spike is found by the backward pass (the m-th delivery of a run is
# the m-th emission of that run: equal delays keep their order).
# Models whose input map is not affine in the state (time-based QIF, tables) also need each target's state
# just before each input: `pre` holds one double per applied input (skipped ones have none), in
# delivery order (records in order, targets in row order). LIF tapes have no `pre` (33 bytes per
# record; QIF: 33 + 8 per applied input).
cdef enum:
    TAPE_FREE = 0        # spike on the neuron's own orbit: clock = its key
    TAPE_TRIGGERED = 1   # spike at the instant an input lifted the neuron to threshold
    TAPE_INPUT = 2       # given input spike (src = index into the input event arrays)
    TAPE_POISSON = 3     # Poisson event (src = target, aux = weight)
    TAPE_DELIVERY = 4    # delayed delivery of run aux (-1: whole row) of src's spike


ctypedef struct Tape:
    unsigned char* kind
    id_t* src
    double* clock
    double* aux
    int64_t* trigger
    int32_t* epoch
    Py_ssize_t n
    Py_ssize_t cap
    int64_t* skip_event
    int32_t* skip_pos
    Py_ssize_t n_skip
    Py_ssize_t cap_skip
    int64_t* trig        # per neuron: record that lifted it to threshold (-1: none, -2: at the start)
    bint nomem
    double* pre          # state of each target just before each applied input (QIF time-based, tables)
    Py_ssize_t n_pre
    Py_ssize_t cap_pre


cdef bint _grow_buf(void** p, Py_ssize_t cap, size_t size) noexcept nogil:
    cdef void* q = realloc(p[0], cap * size)
    if q == NULL:
        return False
    p[0] = q
    return True


cdef inline void tape_push(Tape* t, int kind, id_t src, double clock, double aux, int64_t trigger,
                           long long epoch) noexcept nogil:
    cdef Py_ssize_t cap
    if t.n == t.cap:
        cap = 2 * t.cap + 1024
        if not (_grow_buf(<void**>&t.kind, cap, 1) and _grow_buf(<void**>&t.src, cap, sizeof(id_t))
                and _grow_buf(<void**>&t.clock, cap, sizeof(double)) and _grow_buf(<void**>&t.aux, cap, sizeof(double))
                and _grow_buf(<void**>&t.trigger, cap, sizeof(int64_t))
                and _grow_buf(<void**>&t.epoch, cap, sizeof(int32_t))):
            t.nomem = True
            return
        t.cap = cap
    t.kind[t.n] = kind
    t.src[t.n] = src
    t.clock[t.n] = clock
    t.aux[t.n] = aux
    t.trigger[t.n] = trigger
    t.epoch[t.n] = <int32_t>epoch
    t.n += 1


cdef void tape_skip(Tape* t, Py_ssize_t pos) noexcept nogil:
    cdef Py_ssize_t cap
    if t.n_skip == t.cap_skip:
        cap = 2 * t.cap_skip + 256
        if not (_grow_buf(<void**>&t.skip_event, cap, sizeof(int64_t))
                and _grow_buf(<void**>&t.skip_pos, cap, sizeof(int32_t))):
            t.nomem = True
            return
        t.cap_skip = cap
    t.skip_event[t.n_skip] = t.n - 1          # the event being processed was pushed first
    t.skip_pos[t.n_skip] = <int32_t>pos
    t.n_skip += 1


cdef inline void tape_pre(Tape* t, double state) noexcept nogil:
    cdef Py_ssize_t cap
    if t.n_pre == t.cap_pre:
        cap = 2 * t.cap_pre + 4096
        if not _grow_buf(<void**>&t.pre, cap, sizeof(double)):
            t.nomem = True
            return
        t.cap_pre = cap
    t.pre[t.n_pre] = state
    t.n_pre += 1


# ---- event sources besides the neuron queue -------------------------------------------------------
# Delayed deliveries. Row j's synapses are split into runs of equal delay (CSR sorted by delay within
# each row; run r of j covers [run_end[r-1] or indptr[j], run_end[r])). A spike delivers its
# zero-delay runs at once and schedules the others. Delays with few distinct values each get a FIFO
# (spike times are monotone, so deliveries of one delay come out in order: O(1)); any other delay
# goes to a binary heap ordered by (clock, insertion order). `run = -1`: the whole row.
ctypedef struct Delivery:
    double clock
    id_t j
    int32_t run


ctypedef struct Fifo:
    Delivery* buf
    Py_ssize_t cap          # power of two
    Py_ssize_t head
    Py_ssize_t size
    double offset           # model_advance offset of this FIFO's delay


ctypedef struct Pending:
    double clock
    uint64_t seq
    id_t j
    int32_t run


ctypedef struct PendingHeap:
    Pending* nodes
    Py_ssize_t size
    Py_ssize_t cap
    uint64_t seq


cdef enum:
    DELAY_NONE = 0      # every synapse delivers at the spike
    DELAY_ROW = 1       # one delay for every synapse: whole rows through FIFO 0
    DELAY_RUNS = 2      # per-synapse delays: runs


cdef enum:
    SRC_NONE = 0
    SRC_INPUT = 1
    SRC_POISSON = 2
    SRC_FIFO = 3
    SRC_PENDING = 4


ctypedef struct Sources:
    int delay_mode
    Fifo* fifos
    int n_fifo
    PendingHeap pend
    const int64_t* run_ptr
    const int64_t* run_end
    const int32_t* run_cls      # -1: at once; 0..n_fifo-1: that FIFO; n_fifo: the pending heap
    const double* run_off       # model_advance offset of each run's delay (pending-heap runs)
    # refractoriness: a spiker's node gets flag 1 and key = end of refractoriness
    bint ref_on
    const double* ref_off
    Py_ssize_t ref_stride
    # Poisson: one process of total rate (per tau) with a random target: group g by cumulative rate,
    # then a uniform member (start + r, or ids[off + r])
    int n_pois
    double pois_rate
    const double* pois_cum
    const double* pois_weight
    const id_t* pois_start
    const id_t* pois_count
    const int64_t* pois_off
    const id_t* pois_ids
    uint64_t pois_state
    double pois_clock           # clock of the next Poisson event (+inf: none)
    bint pois_hop               # that event is a hop: an interval > LIF_MAX_ADVANCE cut short
    # given input spikes: time (units of tau), synapse range [a, b) of the input projection
    Py_ssize_t in_n
    Py_ssize_t in_pos
    const double* in_t
    const int64_t* in_a
    const int64_t* in_b
    const id_t* in_idx
    const double* in_w
    double in_clock             # clock of in_t[in_pos] in the current renormalisation epoch
    # recording
    const unsigned char* rec_mask   # NULL: every neuron
    double rec_t0
    double rec_t1
    double clock_stop
    double t_stop_tau           # t_stop in units of tau (clock_stop is recomputed per epoch)
    long long events


cdef inline bint fifo_push(Fifo* f, double clock, id_t j, int32_t run) noexcept nogil:
    cdef Delivery* nb
    cdef Py_ssize_t i, cap
    if f.size == f.cap:
        cap = 2 * f.cap if f.cap else 64
        nb = <Delivery*>malloc(cap * sizeof(Delivery))
        if nb == NULL:
            return False
        for i in range(f.size):
            nb[i] = f.buf[(f.head + i) & (f.cap - 1)]
        free(f.buf)
        f.buf = nb
        f.cap = cap
        f.head = 0
    i = (f.head + f.size) & (f.cap - 1)
    f.buf[i].clock = clock
    f.buf[i].j = j
    f.buf[i].run = run
    f.size += 1
    return True


cdef inline bint pending_less(const Pending* a, const Pending* b) noexcept nogil:
    return (a.clock < b.clock) | ((a.clock == b.clock) & (a.seq < b.seq))


cdef bint pending_push(PendingHeap* h, double clock, id_t j, int32_t run) noexcept nogil:
    cdef Pending* nb
    cdef Pending x
    cdef Py_ssize_t p, parent
    if h.size == h.cap:
        nb = <Pending*>realloc(h.nodes, (2 * h.cap + 64) * sizeof(Pending))
        if nb == NULL:
            return False
        h.nodes = nb
        h.cap = 2 * h.cap + 64
    x.clock = clock
    x.seq = h.seq
    x.j = j
    x.run = run
    h.seq += 1
    p = h.size
    h.size += 1
    while p > 0:
        parent = (p - 1) >> 1
        if not pending_less(&x, &h.nodes[parent]):
            break
        h.nodes[p] = h.nodes[parent]
        p = parent
    h.nodes[p] = x
    return True


cdef void pending_pop(PendingHeap* h) noexcept nogil:
    cdef Pending x
    cdef Py_ssize_t p = 0, c
    h.size -= 1
    if h.size == 0:
        return
    x = h.nodes[h.size]
    while True:
        c = 2 * p + 1
        if c >= h.size:
            break
        if c + 1 < h.size and pending_less(&h.nodes[c + 1], &h.nodes[c]):
            c += 1
        if not pending_less(&h.nodes[c], &x):
            break
        h.nodes[p] = h.nodes[c]
        p = c
    h.nodes[p] = x


cdef inline id_t queue_top(const queue_t* q, double* key) noexcept nogil:
    cdef Py_ssize_t i, best = 0
    cdef double bk, m0, m1, m2, m3
    if queue_t is Tree:
        key[0] = q.level[q.height][0].key
        return q.level[q.height][0].id
    elif queue_t is Heap:
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
    if queue_t is Tree:
        return q.leaves[i].key
    elif queue_t is Heap:
        return heap_key(q, i)
    else:
        return q.keys[i]


cdef inline bint queue_flag(const queue_t* q, id_t i) noexcept nogil:
    if queue_t is Tree:
        return tree_flag(q, i)
    elif queue_t is Heap:
        return q.nodes[q.entries[i].pos].flag != 0
    else:
        return q.flags[i] != 0


cdef inline void queue_set(queue_t* q, id_t i, double key, int flag) noexcept nogil:
    cdef Py_ssize_t p
    if queue_t is Tree:
        tree_set_flag(q, i, flag)
        tree_set(q, i, key)
    elif queue_t is Heap:
        p = q.entries[i].pos
        q.nodes[p].flag = flag
        heap_change_key(q, p, q.nodes[p].key, key)
    else:
        q.keys[i] = key
        q.flags[i] = flag


cdef inline void queue_prefetch(const queue_t* q, id_t i) noexcept nogil:
    if queue_t is Heap:
        heap_prefetch(q, i)
    elif queue_t is DenseQueue:
        prefetch(&q.keys[i])
    # Tree: the key is in the neuron's slot, prefetched with it


cdef void renormalise(const model_t* m, queue_t* q, Core* e, Sources* src) noexcept nogil:
    """Rescale every clock value exactly (power-of-two operation): order and bits preserved (the mixed
    model's rescaled states get their keys recomputed)."""
    cdef Py_ssize_t i, f
    if model_t is MixedModel:
        # the next event is at clock >= 8: "now" may move to 4 (free flow changes nothing stored), so
        # that the renormalised clock stays >= 0 where exp(rate * clock) of the exponential-form
        # states cannot underflow, however long a silent stretch lasts
        if e.clock < QIF_RENORM_SHIFT:
            e.clock = QIF_RENORM_SHIFT
    cdef double at
    for i in range(e.n):
        at = e.clock
        if model_t is MixedModel:
            # a refractory neuron's state is its reset at the end of the period (its key)
            if queue_flag(q, <id_t>i):
                at = queue_key(q, <id_t>i)
        e.slots[i].payload = model_renorm_state(m, i, e.slots[i].payload, at)
    if queue_t is Tree:
        for i in range(e.n):
            q.leaves[i].key = model_renorm(m, q.leaves[i].key)
    elif queue_t is Heap:
        for i in range(q.size):
            q.nodes[i].key = model_renorm(m, q.nodes[i].key)
    else:
        for i in range(q.n):
            q.keys[i] = model_renorm(m, q.keys[i])
    e.clock = model_renorm(m, e.clock)
    e.n_renorm += 1
    if model_t is MixedModel:
        # some states were rescaled (rounded): recompute the keys from them, as a continued run does
        if queue_t is Tree:
            for i in range(e.n):
                if not tree_flag(q, <id_t>i):
                    q.leaves[i].key = model_key(m, i, e.slots[i].payload, e.clock)
        elif queue_t is Heap:
            for i in range(q.size):
                if q.nodes[i].flag == 0:
                    q.nodes[i].key = model_key(m, q.nodes[i].id, e.slots[q.nodes[i].id].payload, e.clock)
            heap_heapify(q)
        else:
            for i in range(q.n):
                if q.flags[i] == 0:
                    q.keys[i] = model_key(m, i, e.slots[i].payload, e.clock)
    if queue_t is Tree:
        tree_build(q)
    for f in range(src.n_fifo):
        for i in range(src.fifos[f].size):
            src.fifos[f].buf[(src.fifos[f].head + i) & (src.fifos[f].cap - 1)].clock = model_renorm(
                m, src.fifos[f].buf[(src.fifos[f].head + i) & (src.fifos[f].cap - 1)].clock)
    for i in range(src.pend.size):
        src.pend.nodes[i].clock = model_renorm(m, src.pend.nodes[i].clock)
    src.pois_clock = model_renorm(m, src.pois_clock)
    src.clock_stop = model_clock_at(m, src.t_stop_tau, e.n_renorm)
    if src.in_pos < src.in_n:
        src.in_clock = model_clock_at(m, src.in_t[src.in_pos], e.n_renorm)


cdef inline void settle(queue_t* q, Core* e, id_t i, double key, double clock) noexcept nogil:
    """Give target i its new key in the queue (its key before the input is read here, so that a
    repeated target of the same row sees the previous input's key)."""
    cdef Py_ssize_t p
    cdef double old
    if queue_t is Tree:
        old = e.slots[i].key
    elif queue_t is Heap:
        p = q.entries[i].pos
        old = q.nodes[p].key
    else:
        old = q.keys[i]
    if e.tape != NULL:
        # the record that lifted i to threshold (first crossing); -1 once pushed back below
        if key != clock:
            e.tape.trig[i] = -1
        elif old != clock:
            e.tape.trig[i] = e.tape.n - 1
    if queue_t is Tree:
        tree_input(q, i, old, key)
    elif queue_t is Heap:
        heap_change_key(q, p, old, key)
    else:
        q.keys[i] = key


cdef inline void deliver(model_t* m, queue_t* q, Core* e, double clock, const id_t* tg,
                         const double* wp, Py_ssize_t nt) noexcept nogil:
    """Inputs wp[a] to neurons tg[a] at `clock`, in order; a refractory target (flag) ignores them.
    A target at threshold (key == clock) still takes inputs of the same instant: it fires only if
    it is at threshold when its turn comes, so same-instant inputs are summed (as NEST does)."""
    cdef Py_ssize_t a
    cdef id_t i, held = -1
    cdef double s, key, held_key = 0.0, s_next = 0.0
    cdef bint have_next = False
    # Software pipeline over the targets' random memory: slots PF_SLOT ahead, queue nodes
    # PF_NODE ahead (a heap position comes from the slot fetched earlier). The queue update of a
    # target runs one target behind its model arithmetic, so that the two overlap (a long input
    # map such as QIF's would otherwise stall the update that waits for its key).
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
        if queue_flag(q, i):              # refractory: inputs ignored
            if e.tape != NULL:
                tape_skip(e.tape, a)
            continue
        if model_t is QIFPhaseModel:
            # QIF's input map is long: two targets share one 2-wide vector when the next is another
            # neuron and not refractory; the second one's result waits in s_next for its turn
            if have_next:
                s = s_next
                have_next = False
            elif a + 1 < nt and tg[a + 1] != i and not queue_flag(q, tg[a + 1]):
                qif_phase_input_pair(m, e.slots[i].payload, e.slots[tg[a + 1]].payload, clock, wp[a],
                                     wp[a + 1], &s, &s_next)
                have_next = True
            else:
                s = model_input(m, i, e.slots[i].payload, clock, wp[a])
        else:
            if model_t is QIFModel or model_t is TableModel:
                if e.tape != NULL:
                    tape_pre(e.tape, e.slots[i].payload)     # QIF/table backward: pre-input states
            s = model_input(m, i, e.slots[i].payload, clock, wp[a])
        e.slots[i].payload = s
        key = model_key(m, i, s, clock)
        if held >= 0:
            settle(q, e, held, held_key, clock)
        held = i
        held_key = key
    if held >= 0:
        settle(q, e, held, held_key, clock)
    if queue_t is Tree:
        tree_flush(q)


cdef inline Py_ssize_t row_targets(Core* e, id_t j, const id_t** tg, const double** wp) noexcept nogil:
    if e.procedural:
        draw_targets(e.seed, j, e.n, e.k, e.tbuf, e.seen)
        tg[0] = e.tbuf
        wp[0] = e.wbuf
        return e.k
    tg[0] = e.indices + e.indptr[j]
    wp[0] = e.weights + e.indptr[j]
    return e.indptr[j + 1] - e.indptr[j]


cdef inline void deliver_run(model_t* m, queue_t* q, Core* e, Sources* src, double clock, id_t j,
                             int32_t run) noexcept nogil:
    cdef const id_t* tg
    cdef const double* wp
    cdef Py_ssize_t nt, r, a
    if e.tape != NULL:
        tape_push(e.tape, TAPE_DELIVERY, j, clock, <double>run, -1, e.n_renorm)
    if run < 0:
        nt = row_targets(e, j, &tg, &wp)
    else:
        r = src.run_ptr[j] + run
        a = e.indptr[j] if run == 0 else src.run_end[r - 1]
        tg = e.indices + a
        wp = e.weights + a
        nt = src.run_end[r] - a
    deliver(m, q, e, clock, tg, wp, nt)


cdef inline bint emit(model_t* m, queue_t* q, Core* e, Sources* src, double clock, id_t j) noexcept nogil:
    """Send j's spike at `clock`: zero-delay synapses now, the others scheduled. False: out of memory."""
    cdef const id_t* tg
    cdef const double* wp
    cdef Py_ssize_t nt, r, r0, a
    cdef int cls
    if src.delay_mode == DELAY_NONE:
        nt = row_targets(e, j, &tg, &wp)
        deliver(m, q, e, clock, tg, wp, nt)
        return True
    if src.delay_mode == DELAY_ROW:
        return fifo_push(&src.fifos[0], model_advance(m, clock, src.fifos[0].offset), j, -1)
    r0 = src.run_ptr[j]
    a = e.indptr[j]
    for r in range(r0, src.run_ptr[j + 1]):
        cls = src.run_cls[r]
        if cls < 0:
            deliver(m, q, e, clock, e.indices + a, e.weights + a, src.run_end[r] - a)
        elif cls < src.n_fifo:
            if not fifo_push(&src.fifos[cls], model_advance(m, clock, src.fifos[cls].offset), j,
                             <int32_t>(r - r0)):
                return False
        elif not pending_push(&src.pend, model_advance(m, clock, src.run_off[r]), j, <int32_t>(r - r0)):
            return False
        a = src.run_end[r]
    return True


cdef inline double model_offset_of(const model_t* m, double dt) noexcept nogil:
    if model_t is LIFModel:
        return exp(dt)
    else:
        return dt


cdef inline void poisson_next(model_t* m, Sources* src, double clock) noexcept nogil:
    """Schedule the next Poisson event an exponential interval after `clock`. A LIF clock cannot
    advance by more than LIF_MAX_ADVANCE: a longer interval becomes a hop, an event that delivers
    nothing and draws a fresh interval (exact: the process is memoryless)."""
    cdef double u = ((next64(&src.pois_state) >> 11) + 1) * (1.0 / 9007199254740992.0)   # (0, 1]
    cdef double gap = -log(u) / src.pois_rate
    src.pois_hop = False
    if model_t is LIFModel:
        if gap > LIF_MAX_ADVANCE:
            gap = LIF_MAX_ADVANCE
            src.pois_hop = True
    src.pois_clock = model_advance(m, clock, model_offset_of(m, gap))


cdef inline void poisson_event(model_t* m, queue_t* q, Core* e, Sources* src, double clock) noexcept nogil:
    cdef double x = ((next64(&src.pois_state) >> 11) * (1.0 / 9007199254740992.0)) * src.pois_rate
    cdef int g = 0
    cdef id_t i
    while g + 1 < src.n_pois and x >= src.pois_cum[g]:
        g += 1
    i = <id_t>bounded(&src.pois_state, <uint64_t>src.pois_count[g])
    if src.pois_ids != NULL:
        i = src.pois_ids[src.pois_off[g] + i]
    else:
        i += src.pois_start[g]
    if e.tape != NULL:
        tape_push(e.tape, TAPE_POISSON, i, clock, src.pois_weight[g], -1, e.n_renorm)
    deliver(m, q, e, clock, &i, &src.pois_weight[g], 1)
    poisson_next(m, src, clock)


cdef int run_loop(model_t* m, queue_t* q, Core* e, Sources* src, double* times, id_t* ids,
                  Py_ssize_t max_spikes, long long max_events, double t_stop, double tau,
                  Py_ssize_t* n_done, Py_ssize_t* n_rec) noexcept nogil:
    cdef Py_ssize_t count = 0, rec = 0, f
    cdef long long events = 0
    cdef int status = STATUS_COUNT, kind
    cdef id_t j
    cdef double key, t, clock, ck, s
    cdef Delivery* d
    cdef bint extra = (src.delay_mode != DELAY_NONE) | (src.n_pois > 0) | (src.in_n > 0)
    cdef int which = 0
    if src.n_pois and src.pois_clock != src.pois_clock:
        poisson_next(m, src, e.clock)            # NaN: first event of a fresh run
    while count < max_spikes:
        j = queue_top(q, &key)
        if extra:
            # Earliest other event; on equal clocks: inputs, Poisson, deliveries, then neurons.
            if events >= max_events:
                break
            events += 1
            kind = SRC_NONE
            ck = INFINITY
            if src.in_pos < src.in_n:
                ck = src.in_clock
                kind = SRC_INPUT
            if src.pois_clock < ck:
                ck = src.pois_clock
                kind = SRC_POISSON
            for f in range(src.n_fifo):
                if src.fifos[f].size and src.fifos[f].buf[src.fifos[f].head].clock < ck:
                    ck = src.fifos[f].buf[src.fifos[f].head].clock
                    kind = SRC_FIFO
                    which = f
            if src.pend.size and src.pend.nodes[0].clock < ck:
                ck = src.pend.nodes[0].clock
                kind = SRC_PENDING
            if ck == INFINITY and key == INFINITY and kind != SRC_NONE:
                # the next event lies beyond the clock's range (> ~700 tau ahead of this epoch) and
                # nothing fires before it: step the epoch (free flow; subthreshold voltages have
                # relaxed to their drive by then) until its clock is finite. Only given inputs can
                # be that far ahead: delays and refractory periods are limited to LIF_MAX_ADVANCE
                # (Python checks) and longer Poisson intervals hop.
                events -= 1
                if kind != SRC_INPUT or src.clock_stop < INFINITY:
                    status = STATUS_TIME if src.clock_stop < INFINITY else STATUS_SILENT
                    break
                renormalise(m, q, e, src)
                continue
            if kind != SRC_NONE and ck <= key:
                if ck > src.clock_stop:
                    status = STATUS_TIME
                    events -= 1                  # not processed
                    break
                if model_renorm_due(m, ck):
                    # renormalise BEFORE an event past the bound: what it schedules (up to
                    # LIF_MAX_ADVANCE ahead) must start from a renormalised clock
                    events -= 1
                    renormalise(m, q, e, src)
                    continue
                e.clock = ck
                model_begin_spike(m, ck)
                if kind == SRC_FIFO:
                    d = &src.fifos[which].buf[src.fifos[which].head]
                    src.fifos[which].head = (src.fifos[which].head + 1) & (src.fifos[which].cap - 1)
                    src.fifos[which].size -= 1
                    deliver_run(m, q, e, src, ck, d.j, d.run)
                elif kind == SRC_PENDING:
                    j = src.pend.nodes[0].j
                    f = src.pend.nodes[0].run
                    pending_pop(&src.pend)
                    deliver_run(m, q, e, src, ck, j, <int32_t>f)
                elif kind == SRC_POISSON:
                    if src.pois_hop:
                        events -= 1
                        poisson_next(m, src, ck)
                    else:
                        poisson_event(m, q, e, src, ck)
                else:
                    if e.tape != NULL:
                        tape_push(e.tape, TAPE_INPUT, <id_t>src.in_pos, ck, 0.0, -1, e.n_renorm)
                    deliver(m, q, e, ck, src.in_idx + src.in_a[src.in_pos], src.in_w + src.in_a[src.in_pos],
                            src.in_b[src.in_pos] - src.in_a[src.in_pos])
                    src.in_pos += 1
                    if src.in_pos < src.in_n:
                        src.in_clock = model_clock_at(m, src.in_t[src.in_pos], e.n_renorm)
                continue
        if key == INFINITY:
            status = STATUS_SILENT
            events -= extra
            break
        if key > src.clock_stop:
            status = STATUS_TIME
            events -= extra
            break
        if model_renorm_due(m, key):
            events -= extra
            renormalise(m, q, e, src)
            continue
        clock = key
        if queue_flag(q, j):
            # end of j's refractory period: it flows freely from its reset state from now on
            e.clock = clock
            queue_set(q, j, model_key(m, j, e.slots[j].payload, clock), 0)
            continue
        if queue_t is Tree:
            tree_prefetch_path(q, j)             # j's reset repairs its whole path: fetch it at once
        t = model_elapsed(m, key, e.n_renorm) * tau
        if t > t_stop:
            status = STATUS_TIME
            events -= extra
            break
        e.clock = clock
        model_begin_spike(m, clock)
        if times != NULL and (src.rec_mask == NULL or src.rec_mask[j]) and t >= src.rec_t0 and t <= src.rec_t1:
            times[rec] = t
            ids[rec] = j
            rec += 1
        count += 1
        if e.tape != NULL:
            if e.tape.trig[j] == -1:
                tape_push(e.tape, TAPE_FREE, j, clock, 0.0, -1, e.n_renorm)
            else:
                tape_push(e.tape, TAPE_TRIGGERED, j, clock, 0.0, e.tape.trig[j], e.n_renorm)
                e.tape.trig[j] = -1
            if e.tape.nomem:
                status = STATUS_NOMEM
                break

        if src.ref_on:
            ck = model_advance(m, clock, src.ref_off[j * src.ref_stride])
            s = model_reset(m, j, ck)
            e.slots[j].payload = s
            queue_set(q, j, ck if ck > clock else model_key(m, j, s, clock), ck > clock)
        else:
            s = model_reset(m, j, clock)
            e.slots[j].payload = s
            queue_set(q, j, model_key(m, j, s, clock), 0)
        if not emit(m, q, e, src, clock, j):
            status = STATUS_NOMEM
            break
    n_done[0] = count
    n_rec[0] = rec
    src.events += events
    return status


cdef enum:
    QUEUE_TREE = 0
    QUEUE_HEAP = 1
    QUEUE_DENSE = 2


cdef int run_queue(model_t* m, int which, Tree* tree, Heap* heap, DenseQueue* dense, Core* e, Sources* src,
                   double* times, id_t* ids, Py_ssize_t max_spikes, long long max_events, double t_stop,
                   double tau, Py_ssize_t* n_done, Py_ssize_t* n_rec) noexcept nogil:
    if which == QUEUE_TREE:
        return run_loop(m, tree, e, src, times, ids, max_spikes, max_events, t_stop, tau, n_done, n_rec)
    if which == QUEUE_HEAP:
        return run_loop(m, heap, e, src, times, ids, max_spikes, max_events, t_stop, tau, n_done, n_rec)
    return run_loop(m, dense, e, src, times, ids, max_spikes, max_events, t_stop, tau, n_done, n_rec)


cdef void compute_keys(const model_t* m, Core* e, double* keys) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(e.n):
        keys[i] = model_key(m, i, e.slots[i].payload, e.clock)


cdef inline const void* _ptr(object arr):
    """Data pointer of a contiguous numpy array kept alive by the caller (NULL for None/empty)."""
    if arr is None or arr.size == 0:
        return NULL
    return <const void*><size_t>arr.ctypes.data


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
    queue : {"tree", "heap", "dense"}
    k, weight, seed : procedural fixed out-degree connectivity (k > 0), or
    indptr, indices, weights : CSR by presynaptic neuron (int64, int32, float64).
    events : dict, optional
        Event sources and recording options, compiled by sparseprop.simulation (all arrays contiguous,
        clock offsets from BoundModel.clock_offset, times in units of tau):
        refractory_until (n,) clock or NaN; ref_off (1,) or (n,);
        delay_mode 0/1/2, fifo_offsets (F,), run_ptr/run_end (int64), run_cls (int32), run_off;
        pending (clock, j, run, fifo) arrays in processing order;
        pois_cum, pois_weight, pois_start, pois_count (int32), pois_off (int64), pois_ids (int32 or
        None), pois_state (uint64), pois_clock; in_t, in_a, in_b (int64), in_idx (int32), in_w, in_pos;
        rec_mask (uint8 or None), rec_t0, rec_t1 (s).
    """
    cdef Core c
    cdef Tree tree
    cdef Heap heap
    cdef DenseQueue dense
    cdef Sources src
    cdef readonly BoundModel model
    cdef readonly str queue
    cdef object _keep

    def __cinit__(self):
        self.c.tape = NULL
        self.c.slots = NULL
        self.c.tbuf = NULL
        self.c.wbuf = NULL
        self.c.seen = NULL
        self.heap._mem = NULL
        self.tree._mem = NULL
        self.tree.flags = NULL
        self.dense.keys = NULL
        self.dense.flags = NULL
        self.src.fifos = NULL
        self.src.n_fifo = 0
        self.src.pend.nodes = NULL
        self.src.pend.size = 0
        self.src.pend.cap = 0

    def __init__(self, BoundModel model, states, double clock, long long n_renorm, str queue,
                 Py_ssize_t k=0, double weight=0.0, uint64_t seed=0,
                 indptr=None, indices=None, weights=None, events=None):
        cdef double[::1] st = np.ascontiguousarray(states, dtype=np.float64)
        cdef Py_ssize_t n = st.shape[0], i
        if queue not in ("tree", "heap", "dense"):
            raise ValueError(f"engine: choose 'tree', 'heap' or 'dense', got {queue!r}")
        self.model = model
        self.queue = queue
        self._keep = []
        self.c.n = <id_t>n
        self.c.clock = clock
        self.c.n_renorm = n_renorm
        self.c.slots = <Slot*>big_alloc(tree_padded(n) * sizeof(Slot))
        if self.c.slots == NULL:
            raise MemoryError(f"cannot allocate state for {n} neurons")
        for i in range(n):
            self.c.slots[i].payload = st[i]
            self.c.slots[i].key = 0.0
        self.c.procedural = indptr is None
        if self.c.procedural:
            self.c.seed = seed
            self.c.k = <id_t>k
            self.c.tbuf = <id_t*>malloc(max(k, 1) * sizeof(id_t))
            self.c.wbuf = <double*>malloc(max(k, 1) * sizeof(double))
            self.c.seen = <uint64_t*>calloc(target_set_words(<id_t>n, <id_t>k), sizeof(uint64_t))
            if self.c.tbuf == NULL or self.c.wbuf == NULL or self.c.seen == NULL:
                raise MemoryError("cannot allocate target buffers")
            for i in range(k):
                self.c.wbuf[i] = weight
        else:
            indptr = self._hold(indptr, np.int64)
            indices = self._hold(indices, np.int32)
            weights = self._hold(weights, np.float64)
            self.c.indptr = <const int64_t*>_ptr(indptr)
            self.c.indices = <const id_t*>_ptr(indices)
            self.c.weights = <const double*>_ptr(weights)

        if model.code == MODEL_TABLE:
            # one weight for every synapse: the table model's fused fast path (see _models.pxd)
            if self.c.procedural:
                model.use_fused(weight)
            else:
                w_all = np.asarray(weights)
                model.use_fused(float(w_all[0]) if w_all.size and np.all(w_all == w_all[0]) else None)

        ev = {} if events is None else events
        refr = ev.get("refractory_until")
        flags = np.zeros(n, dtype=np.uint8)
        keys = np.empty(n, dtype=np.float64)
        cdef double[::1] kv = keys
        if model.code == MODEL_LIF:
            compute_keys(&model.lif, &self.c, &kv[0])
        elif model.code == MODEL_QIF_TIME:
            compute_keys(&model.qif, &self.c, &kv[0])
        elif model.code == MODEL_TABLE:
            compute_keys(&model.tab, &self.c, &kv[0])
        elif model.code == MODEL_MIXED:
            compute_keys(&model.mix, &self.c, &kv[0])
        else:
            compute_keys(&model.qifp, &self.c, &kv[0])
        if refr is not None:
            refr = np.asarray(refr, dtype=np.float64)
            busy = np.isfinite(refr)
            keys[busy] = refr[busy]
            flags[busy] = 1
        cdef unsigned char[::1] fv = flags
        if queue == "tree":
            tree_init(&self.tree, n, self.c.slots)
            for i in range(n):
                self.c.slots[i].key = kv[i]
                tree_set_flag(&self.tree, <id_t>i, fv[i])
            tree_build(&self.tree)
        elif queue == "heap":
            heap_init(&self.heap, n, <HeapEntry*>self.c.slots)
            heap_build(&self.heap, &kv[0], &fv[0])
        else:
            self.dense.keys = <double*>malloc(n * sizeof(double))
            self.dense.flags = <unsigned char*>malloc(n)
            if self.dense.keys == NULL or self.dense.flags == NULL:
                raise MemoryError(f"cannot allocate keys for {n} neurons")
            self.dense.n = n
            for i in range(n):
                self.dense.keys[i] = kv[i]
                self.dense.flags[i] = fv[i]
        self._init_sources(ev, n)

    cdef object _hold(self, arr, dtype):
        if arr is None:
            return None
        arr = np.ascontiguousarray(arr, dtype=dtype)
        self._keep.append(arr)
        return arr

    cdef _init_sources(self, dict ev, Py_ssize_t n):
        cdef Sources* s = &self.src
        cdef Py_ssize_t f, i
        ref_off = self._hold(ev.get("ref_off"), np.float64)
        s.ref_on = ref_off is not None
        s.ref_off = <const double*>_ptr(ref_off)
        s.ref_stride = 0 if ref_off is None or ref_off.shape[0] == 1 else 1

        s.delay_mode = ev.get("delay_mode", DELAY_NONE)
        fifo_off = self._hold(ev.get("fifo_offsets", np.empty(0)), np.float64)
        s.n_fifo = fifo_off.shape[0]
        if s.n_fifo:
            s.fifos = <Fifo*>calloc(s.n_fifo, sizeof(Fifo))
            if s.fifos == NULL:
                raise MemoryError()
            for f in range(s.n_fifo):
                s.fifos[f].offset = fifo_off[f]
        run_ptr = self._hold(ev.get("run_ptr"), np.int64)
        run_end = self._hold(ev.get("run_end"), np.int64)
        run_cls = self._hold(ev.get("run_cls"), np.int32)
        run_off = self._hold(ev.get("run_off"), np.float64)
        s.run_ptr = <const int64_t*>_ptr(run_ptr)
        s.run_end = <const int64_t*>_ptr(run_end)
        s.run_cls = <const int32_t*>_ptr(run_cls)
        s.run_off = <const double*>_ptr(run_off)
        s.pend.seq = 0
        pending = ev.get("pending")
        if pending is not None:
            pc, pj, pr, pf = pending
            for i in range(len(pc)):
                if pf[i] >= 0:
                    ok = fifo_push(&s.fifos[pf[i]], pc[i], pj[i], pr[i])
                else:
                    ok = pending_push(&s.pend, pc[i], pj[i], pr[i])
                if not ok:
                    raise MemoryError("cannot allocate pending deliveries")

        pois_cum = self._hold(ev.get("pois_cum"), np.float64)
        s.n_pois = 0 if pois_cum is None else pois_cum.shape[0]
        s.pois_rate = pois_cum[s.n_pois - 1] if s.n_pois else 0.0
        s.pois_cum = <const double*>_ptr(pois_cum)
        s.pois_weight = <const double*>_ptr(self._hold(ev.get("pois_weight"), np.float64))
        s.pois_start = <const id_t*>_ptr(self._hold(ev.get("pois_start"), np.int32))
        s.pois_count = <const id_t*>_ptr(self._hold(ev.get("pois_count"), np.int32))
        s.pois_off = <const int64_t*>_ptr(self._hold(ev.get("pois_off"), np.int64))
        s.pois_ids = <const id_t*>_ptr(self._hold(ev.get("pois_ids"), np.int32))
        s.pois_state = <uint64_t>ev.get("pois_state", 0)
        s.pois_clock = ev.get("pois_clock", INFINITY) if s.n_pois else INFINITY
        s.pois_hop = bool(ev.get("pois_hop", False))

        in_t = self._hold(ev.get("in_t"), np.float64)
        s.in_n = 0 if in_t is None else in_t.shape[0]
        s.in_pos = ev.get("in_pos", 0)
        s.in_t = <const double*>_ptr(in_t)
        s.in_a = <const int64_t*>_ptr(self._hold(ev.get("in_a"), np.int64))
        s.in_b = <const int64_t*>_ptr(self._hold(ev.get("in_b"), np.int64))
        s.in_idx = <const id_t*>_ptr(self._hold(ev.get("in_idx"), np.int32))
        s.in_w = <const double*>_ptr(self._hold(ev.get("in_w"), np.float64))
        if s.in_pos < s.in_n:
            s.in_clock = self.model.clock_at(in_t[s.in_pos], self.c.n_renorm)
        self.set_recording(ev.get("rec_mask"), ev.get("rec_t0", -INFINITY), ev.get("rec_t1", INFINITY))
        s.events = 0

    def set_recording(self, mask, double t0, double t1):
        """Record only neurons with mask[i] != 0 (None: all) and spikes with t0 <= t <= t1 (s)."""
        mask = self._hold(mask, np.uint8)
        self.src.rec_mask = <const unsigned char*>_ptr(mask)
        self.src.rec_t0 = t0
        self.src.rec_t1 = t1

    def enable_tape(self):
        """Record the tape of the backward pass from now on (see `tape`)."""
        cdef Tape* t
        cdef Py_ssize_t i
        if self.c.tape != NULL:
            return
        if self.model.code != MODEL_LIF and self.model.code != MODEL_QIF_TIME and self.model.code != MODEL_TABLE:
            raise ValueError("tape: the backward pass covers LIF, time-based QIF and table engines")
        t = <Tape*>calloc(1, sizeof(Tape))
        if t == NULL:
            raise MemoryError()
        t.trig = <int64_t*>malloc(max(self.c.n, 1) * sizeof(int64_t))
        if t.trig == NULL:
            free(t)
            raise MemoryError()
        keys = self.keys()
        for i in range(self.c.n):
            t.trig[i] = -2 if keys[i] <= self.c.clock else -1
        self.c.tape = t

    def tape(self):
        """The recorded tape as a dict of NumPy arrays (copies)."""
        cdef Tape* t = self.c.tape
        if t == NULL:
            raise ValueError("tape: taping was not enabled for this engine")
        n, m = t.n, t.n_skip
        out = {"kind": np.empty(n, np.uint8), "src": np.empty(n, np.int32), "clock": np.empty(n),
               "aux": np.empty(n), "trigger": np.empty(n, np.int64), "epoch": np.empty(n, np.int32),
               "skip_event": np.empty(m, np.int64), "skip_pos": np.empty(m, np.int32)}
        cdef Py_ssize_t i
        for i in range(n):
            out["kind"][i] = t.kind[i]
            out["src"][i] = t.src[i]
            out["clock"][i] = t.clock[i]
            out["aux"][i] = t.aux[i]
            out["trigger"][i] = t.trigger[i]
            out["epoch"][i] = t.epoch[i]
        for i in range(m):
            out["skip_event"][i] = t.skip_event[i]
            out["skip_pos"][i] = t.skip_pos[i]
        cdef double[::1] pre
        if self.model.code == MODEL_QIF_TIME or self.model.code == MODEL_TABLE:
            out["pre"] = np.empty(t.n_pre)
            pre = out["pre"]
            for i in range(t.n_pre):
                pre[i] = t.pre[i]
        return out

    def __dealloc__(self):
        cdef int f
        cdef Tape* t = self.c.tape
        if t != NULL:
            free(t.kind); free(t.src); free(t.clock); free(t.aux); free(t.trigger); free(t.epoch)
            free(t.skip_event); free(t.skip_pos); free(t.trig); free(t.pre); free(t)
        free(self.c.slots)
        free(self.c.tbuf)
        free(self.c.wbuf)
        free(self.c.seen)
        free(self.dense.keys)
        free(self.dense.flags)
        if self.heap._mem != NULL:
            heap_free(&self.heap)
        tree_free(&self.tree)
        if self.src.fifos != NULL:
            for f in range(self.src.n_fifo):
                free(self.src.fifos[f].buf)
            free(self.src.fifos)
        free(self.src.pend.nodes)

    def run(self, double[::1] times, id_t[::1] ids, Py_ssize_t offset, Py_ssize_t max_spikes,
            double t_stop, double tau, bint record=True, long long max_events=-1):
        """Process up to `max_spikes` spikes (and at most `max_events` events of any kind, -1: no
        limit) with time <= t_stop (s); returns (spikes, recorded, status).

        With `record`, the times (s) and ids of the recorded spikes are written to times/ids from
        `offset` on (the caller guarantees room for max_spikes).
        """
        cdef double* tp = NULL
        cdef id_t* ip = NULL
        cdef Py_ssize_t done = 0, rec = 0
        cdef int status
        cdef int code = self.model.code
        cdef int which = QUEUE_TREE if self.queue == "tree" else (QUEUE_HEAP if self.queue == "heap" else QUEUE_DENSE)
        if max_spikes <= 0:
            return 0, 0, STATUS_COUNT
        if max_events < 0:
            max_events = 1LL << 62
        if record:
            if offset + max_spikes > times.shape[0] or offset + max_spikes > ids.shape[0]:
                raise ValueError("output buffers too small")
            tp = &times[offset]
            ip = &ids[offset]
        self.src.t_stop_tau = t_stop / tau
        self.src.clock_stop = self.model.clock_at(t_stop / tau, self.c.n_renorm) if t_stop < INFINITY else INFINITY
        with nogil:
            if code == MODEL_LIF:
                status = run_queue(&self.model.lif, which, &self.tree, &self.heap, &self.dense, &self.c, &self.src, tp, ip, max_spikes, max_events, t_stop, tau, &done, &rec)
            elif code == MODEL_QIF_TIME:
                status = run_queue(&self.model.qif, which, &self.tree, &self.heap, &self.dense, &self.c, &self.src, tp, ip, max_spikes, max_events, t_stop, tau, &done, &rec)
            elif code == MODEL_TABLE:
                status = run_queue(&self.model.tab, which, &self.tree, &self.heap, &self.dense, &self.c, &self.src, tp, ip, max_spikes, max_events, t_stop, tau, &done, &rec)
            elif code == MODEL_MIXED:
                status = run_queue(&self.model.mix, which, &self.tree, &self.heap, &self.dense, &self.c, &self.src, tp, ip, max_spikes, max_events, t_stop, tau, &done, &rec)
            else:
                status = run_queue(&self.model.qifp, which, &self.tree, &self.heap, &self.dense, &self.c, &self.src, tp, ip, max_spikes, max_events, t_stop, tau, &done, &rec)
        if code == MODEL_TABLE and self.model.tab_below:
            raise ValueError(
                f"table model: {self.model.tab_below} input(s) drove a neuron below the domain of table "
                f"{self.model.model.table_ref!r} (v_min = {self.model.tab.maps.v_min!r}), which has no analytic "
                f"continuation there; regenerate the table with a lower --v-min")
        if status == STATUS_NOMEM:
            raise MemoryError("cannot grow the buffer of pending spike deliveries")
        return done, rec, status

    def states(self):
        """Copy of the per-neuron engine states."""
        out = np.empty(self.c.n, dtype=np.float64)
        cdef double[::1] o = out
        cdef Py_ssize_t i
        for i in range(self.c.n):
            o[i] = self.c.slots[i].payload
        return out

    cdef inline double _key(self, id_t i) noexcept:
        if self.tree._mem != NULL:
            return queue_key(&self.tree, i)
        return queue_key(&self.heap, i) if self.heap._mem != NULL else self.dense.keys[i]

    cdef inline bint _flagged(self, id_t i) noexcept:
        if self.tree._mem != NULL:
            return queue_flag(&self.tree, i)
        return queue_flag(&self.heap, i) if self.heap._mem != NULL else self.dense.flags[i] != 0

    def keys(self):
        """Per-neuron queue keys (next event clock: a spike, or the end of refractoriness; +inf = never)."""
        out = np.empty(self.c.n, dtype=np.float64)
        cdef double[::1] o = out
        cdef Py_ssize_t i
        for i in range(self.c.n):
            o[i] = self._key(<id_t>i)
        return out

    def sample(self, ids):
        """States of neurons `ids` and whether each is refractory (for exact voltage sampling)."""
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        st = np.empty(ids.shape[0], dtype=np.float64)
        busy = np.zeros(ids.shape[0], dtype=np.uint8)
        cdef const id_t[::1] iv = ids
        cdef double[::1] sv = st
        cdef unsigned char[::1] bv = busy
        cdef Py_ssize_t a
        for a in range(iv.shape[0]):
            sv[a] = self.c.slots[iv[a]].payload
            bv[a] = self._flagged(iv[a])
        return st, busy.astype(bool)

    def refractory_until(self):
        """Per-neuron clock at which refractoriness ends (NaN: not refractory)."""
        out = np.empty(self.c.n, dtype=np.float64)
        cdef double[::1] o = out
        cdef Py_ssize_t i
        for i in range(self.c.n):
            o[i] = self._key(<id_t>i) if self._flagged(<id_t>i) else NAN
        return out

    def event_state(self):
        """Pending deliveries (in processing order), Poisson and input positions: what continuation needs."""
        cdef Sources* s = &self.src
        cdef Py_ssize_t f, i
        rows = []
        for f in range(s.n_fifo):
            for i in range(s.fifos[f].size):
                d = s.fifos[f].buf[(s.fifos[f].head + i) & (s.fifos[f].cap - 1)]
                rows.append((d.clock, f, i, d.j, d.run))
        order = sorted(range(s.pend.size), key=lambda i: (s.pend.nodes[i].clock, s.pend.nodes[i].seq))
        for rank, i in enumerate(order):
            rows.append((s.pend.nodes[i].clock, s.n_fifo, rank, s.pend.nodes[i].j, s.pend.nodes[i].run))
        rows.sort()
        return {"pending_clock": np.array([r[0] for r in rows], dtype=np.float64),
                "pending_j": np.array([r[3] for r in rows], dtype=np.int32),
                "pending_run": np.array([r[4] for r in rows], dtype=np.int32),
                "pending_fifo": np.array([r[1] if r[1] < s.n_fifo else -1 for r in rows], dtype=np.int32),
                "pois_state": np.uint64(s.pois_state), "pois_clock": s.pois_clock, "pois_hop": bool(s.pois_hop), "in_pos": s.in_pos,
                "events": s.events}

    @property
    def clock(self):
        return self.c.clock

    @property
    def n_renorm(self):
        return self.c.n_renorm

    @property
    def events(self):
        """Events processed so far by this engine (spikes, deliveries, inputs, refractory ends), when
        any event source besides the neurons is active; else 0."""
        return self.src.events

    def elapsed(self, double clock, long long n_renorm):
        """Time since the origin in units of tau for an engine clock value."""
        if self.model.code == MODEL_LIF:
            return model_elapsed(&self.model.lif, clock, n_renorm)
        if self.model.code == MODEL_QIF_TIME:
            return model_elapsed(&self.model.qif, clock, n_renorm)
        if self.model.code == MODEL_TABLE:
            return model_elapsed(&self.model.tab, clock, n_renorm)
        if self.model.code == MODEL_MIXED:
            return model_elapsed(&self.model.mix, clock, n_renorm)
        return model_elapsed(&self.model.qifp, clock, n_renorm)
