# Python access to the counter-based generator (see _rng.pxd): used by the network description to
# list the targets of a neuron, and by tests.
import numpy as np
from libc.stdint cimport uint64_t


def fixed_out_degree_targets(uint64_t seed, Py_ssize_t j, Py_ssize_t n, Py_ssize_t k):
    """Targets of neuron ``j`` in the procedural fixed out-degree network, in delivery order.

    Returns an int32 array of ``k`` distinct ids in ``[0, n)`` without ``j``; the engine draws the
    same sequence at every spike of ``j``.
    """
    if not (0 < k < n) or not (0 <= j < n):
        raise ValueError(f"need 0 < k < n and 0 <= j < n, got n={n}, k={k}, j={j}")
    out = np.empty(k, dtype=np.int32)
    seen = np.zeros(target_set_words(<id_t>n, <id_t>k), dtype=np.uint64)
    cdef id_t[::1] o = out
    cdef uint64_t[::1] s = seen
    draw_targets(seed, <id_t>j, <id_t>n, <id_t>k, &o[0], &s[0])
    return out
