"""The indexed tournament tree (sparseprop._core._tree.IndexedTree) against a plain reference.

Contract (as IndexedHeap, see test_heap.py): IndexedTree(keys); update(i, key) repairs at once;
input(i, key) sets the key and defers the repair of the summaries until flush(); top() -> (id, key)
with the smallest key, ties -> smallest id (exact after flush); key(i), keys() are exact at any
time; check() raises AssertionError unless every summary is its children's minimum (after flush).
The reference is the minimum over (key, id) pairs of a plain list.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sparseprop._core import _tree
from test_heap import keys_st, ref_top   # the heap's reference and key strategy

IndexedTree = _tree.IndexedTree
INF = math.inf


class TreeMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.tree = None
        self.keys = None
        self.dirty = False       # deferred inputs not flushed yet

    @initialize(keys=st.lists(keys_st, min_size=1, max_size=80))
    def build(self, keys):
        self.keys = list(keys)
        self.tree = IndexedTree(np.array(keys, dtype=np.float64))

    def _id(self, data):
        return data.draw(st.integers(0, len(self.keys) - 1), label="i")

    @precondition(lambda self: self.tree is not None)
    @rule(data=st.data(), key=keys_st)
    def update(self, data, key):
        i = self._id(data)
        self.tree.update(i, key)
        self.keys[i] = key

    @precondition(lambda self: self.tree is not None)
    @rule(data=st.data(), key=keys_st)
    def deferred_input(self, data, key):
        i = self._id(data)
        self.tree.input(i, key)
        self.keys[i] = key
        self.dirty = True

    @precondition(lambda self: self.tree is not None)
    @rule(data=st.data())
    def many_inputs(self, data):
        # more inputs than the pending ring holds: repairs run in batches before the flush
        n = data.draw(st.integers(1, 60), label="count")
        for _ in range(n):
            i = self._id(data)
            key = data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, INF, self.keys[i], self.keys[i] + 1.0]))
            self.tree.input(i, key)
            self.keys[i] = key
        self.dirty = True

    @precondition(lambda self: self.tree is not None)
    @rule()
    def flush(self):
        self.tree.flush()
        self.dirty = False

    @precondition(lambda self: self.tree is not None and not self.dirty)
    @rule(data=st.data())
    def reset_top(self, data):
        # the engine's move at a spike: the top gets a new (usually larger) key, repaired at once
        i, _ = self.tree.top()
        key = data.draw(keys_st, label="key")
        self.tree.update(i, key)
        self.keys[i] = key

    @precondition(lambda self: self.tree is not None and not self.dirty)
    @rule(data=st.data())
    def tie_with_top(self, data):
        # another id takes exactly the top key (an input lifting a neuron to threshold): smaller id wins
        i = self._id(data)
        _, k = self.tree.top()
        self.tree.input(i, k)
        self.keys[i] = k
        self.dirty = True

    @invariant()
    def consistent(self):
        if self.tree is None:
            return
        assert np.array_equal(self.tree.keys(), np.asarray(self.keys, dtype=float))
        if not self.dirty:
            self.tree.check()
            k, i = ref_top(self.keys)
            ti, tk = self.tree.top()
            assert (ti, tk) == (i, k)
            assert math.copysign(1.0, tk) == math.copysign(1.0, self.keys[ti])   # exact bits of the winner


TreeMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestTreeMachine = TreeMachine.TestCase


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 257, 4097])
def test_random_inputs_match_argmin(n):
    # sizes around powers of 4 (padding of leaves and of every level), many deferred inputs
    rng = np.random.default_rng(n)
    keys = rng.choice([0.25, 0.5, 1.0, INF], n) if n < 64 else rng.random(n)
    tree = IndexedTree(keys)
    tree.check()
    for step in range(400):
        i = int(rng.integers(n))
        keys[i] = rng.choice([rng.random(), 0.5, INF, keys[i] + rng.random()])
        if step % 3:
            tree.input(i, keys[i])
        else:
            tree.update(i, keys[i])
        if step % 37 == 0:
            tree.flush()
            tree.check()
            best = int(np.lexsort((np.arange(n), keys))[0])
            assert tree.top() == (best, keys[best])
    tree.flush()
    tree.check()
    best = int(np.lexsort((np.arange(n), keys))[0])
    assert tree.top() == (best, keys[best])


def test_all_never():
    tree = IndexedTree(np.full(9, INF))
    tree.check()
    assert tree.top() == (0, INF)          # a real id, never a padding one
    tree.input(8, 3.0)
    tree.flush()
    assert tree.top() == (8, 3.0)


@pytest.mark.parametrize("bad, err", [(np.array([]), ValueError), (np.array([[1.0]]), ValueError),
                                      (np.array([1.0, np.nan]), ValueError)])
def test_bad_keys(bad, err):
    with pytest.raises(err):
        IndexedTree(bad)


def test_bad_update():
    tree = IndexedTree(np.zeros(5))
    with pytest.raises(IndexError):
        tree.update(5, 1.0)
    with pytest.raises(IndexError):
        tree.input(-1, 1.0)
    with pytest.raises(ValueError):
        tree.update(0, np.nan)
    tree.check()
    assert tree.top() == (0, 0.0)
