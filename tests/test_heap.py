"""The indexed heap (sparseprop._core._heap.IndexedHeap) against a plain reference.

Contract: IndexedHeap(keys) builds from one float64 key per id 0..n-1; update(i, key);
top() -> (id, key) with the smallest key, ties -> smallest id; key(i); keys() (current keys by
id); check() raises AssertionError on an inconsistent heap / position map; len(). Keys may be
+inf. The reference is the minimum over (key, id) pairs of a plain list.
"""
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sparseprop._core import _heap  # noqa: E402
IndexedHeap = _heap.IndexedHeap

INF = math.inf

# few distinct values (many ties) mixed with arbitrary finite floats and +inf
keys_st = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, INF, 1e-300, -1e300]),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.just(INF),
)


def ref_top(keys):
    """Smallest key, ties -> smallest id."""
    return min(((k, i) for i, k in enumerate(keys)), key=lambda p: (p[0], p[1]))


def assert_matches(heap, keys):
    heap.check()
    assert len(heap) == len(keys)
    k, i = ref_top(keys)
    hi, hk = heap.top()
    assert int(hi) == i
    assert hk == k
    got = np.asarray(heap.keys(), dtype=float)
    assert got.shape == (len(keys),)
    assert np.array_equal(got, np.asarray(keys, dtype=float))
    for j in range(len(keys)):
        assert heap.key(j) == keys[j]


class HeapMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.heap = None
        self.keys = None

    @initialize(keys=st.lists(keys_st, min_size=1, max_size=64))
    def build(self, keys):
        self.keys = list(keys)
        self.heap = IndexedHeap(np.array(keys, dtype=np.float64))

    @precondition(lambda self: self.heap is not None)
    @rule(data=st.data(), key=keys_st)
    def update(self, data, key):
        i = data.draw(st.integers(0, len(self.keys) - 1), label="i")
        self.heap.update(i, key)
        self.keys[i] = key

    @precondition(lambda self: self.heap is not None)
    @rule(data=st.data())
    def update_top(self, data):
        # the engine's typical move: the top item gets a new (usually larger) key
        i, _ = self.heap.top()
        key = data.draw(keys_st, label="key")
        self.heap.update(int(i), key)
        self.keys[int(i)] = key

    @precondition(lambda self: self.heap is not None)
    @rule(data=st.data())
    def tie_with_top(self, data):
        # give another item exactly the top key: the smaller id must win
        i = data.draw(st.integers(0, len(self.keys) - 1), label="i")
        _, k = self.heap.top()
        self.heap.update(i, k)
        self.keys[i] = k

    @precondition(lambda self: self.heap is not None)
    @rule(data=st.data())
    def same_key(self, data):
        # updating to the current key is a no-op
        i = data.draw(st.integers(0, len(self.keys) - 1), label="i")
        self.heap.update(i, self.keys[i])

    @invariant()
    def consistent(self):
        if self.heap is not None:
            assert_matches(self.heap, self.keys)


HeapMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestHeapMachine = HeapMachine.TestCase


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_build_all_orders_small(n):
    # every ordering of keys with ties and +inf builds a valid heap with the right top
    base = [0.0, 1.0, 1.0, INF, -2.0, INF][:n]
    for perm in set(itertools.permutations(base)):
        h = IndexedHeap(np.array(perm, dtype=np.float64))
        assert_matches(h, list(perm))


def test_all_inf_and_all_equal():
    h = IndexedHeap(np.full(17, INF))
    assert_matches(h, [INF] * 17)
    assert int(h.top()[0]) == 0 and h.top()[1] == INF
    h.update(9, 3.0)
    assert int(h.top()[0]) == 9
    h.update(9, INF)
    assert int(h.top()[0]) == 0
    h = IndexedHeap(np.full(33, 0.25))
    for i in range(33):
        assert int(h.top()[0]) == i
        h.update(i, 1.0)
        h.check()
    assert int(h.top()[0]) == 0


@pytest.mark.parametrize("n", [1, 7, 1000])
def test_many_random_updates(n):
    rng = np.random.default_rng(1234 + n)
    keys = rng.random(n)
    keys[rng.random(n) < 0.1] = INF
    h = IndexedHeap(keys.copy())
    ref = keys.copy()
    assert_matches(h, ref.tolist())
    pool = np.array([0.0, 0.5, 1.0, INF])
    for step in range(20000):
        i = int(rng.integers(n))
        r = rng.random()
        if r < 0.2:
            k = INF
        elif r < 0.4:
            k = float(pool[rng.integers(len(pool))])  # many exact ties
        elif r < 0.6:
            k = float(ref.min()) + rng.random() * 1e-3  # near the top
        elif r < 0.7:
            i = int(h.top()[0])  # re-key the top (what the engine does)
            k = float(ref[i]) + rng.random()
        else:
            k = float(rng.normal() * 10.0)
        h.update(i, k)
        ref[i] = k
        m = ref.min()
        top_id = int(np.flatnonzero(ref == m)[0])
        hi, hk = h.top()
        assert int(hi) == top_id, step
        assert hk == m
        assert h.key(i) == k
        if step % 500 == 0:
            h.check()
            assert np.array_equal(np.asarray(h.keys()), ref)
    h.check()
    assert np.array_equal(np.asarray(h.keys()), ref)
    assert len(h) == n


def test_monotone_schedule_like_engine():
    # simulate a time-heap use: repeatedly take the top and push it later; the popped
    # sequence must be nondecreasing and equal to a sorted merge computed independently
    rng = np.random.default_rng(7)
    n = 200
    periods = rng.uniform(0.5, 2.0, n)
    keys = rng.random(n) * periods
    h = IndexedHeap(keys.copy())
    popped = []
    for _ in range(5000):
        i, k = h.top()
        i = int(i)
        popped.append((k, i))
        h.update(i, k + periods[i])
    ks = [p[0] for p in popped]
    assert all(a <= b for a, b in zip(ks, ks[1:]))
    h.check()
    # independent reference: all (k0 + m*period, i) events, sorted, first 5000
    ref = []
    for i in range(n):
        t = keys[i]
        while t <= ks[-1]:
            ref.append((t, i))
            t = t + periods[i]
    ref.sort()
    assert popped == ref[: len(popped)]


def test_size_one():
    h = IndexedHeap(np.array([INF]))
    h.check()
    assert len(h) == 1
    assert int(h.top()[0]) == 0 and h.top()[1] == INF
    h.update(0, -5.0)
    assert h.top()[1] == -5.0 and h.key(0) == -5.0
