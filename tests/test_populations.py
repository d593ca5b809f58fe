"""Population/projection builder, Brunel (2000) preset, network export/import.

Oracles: degree counts computed from the CSR, dense matrices assembled independently from the rules'
(pre, post) pairs, exact binomial/uniform statistics (5 sigma, chi-square), hand-computed Brunel
parameters, and bit-identical round trips.
"""
import itertools
import json
import time

import numpy as np
import pytest
import scipy.sparse as sps
import scipy.stats as st

import sparseprop as sp
from sparseprop import populations as P
from sparseprop.inputs import PoissonInput
from sparseprop.populations import (BRUNEL_STATES, Bernoulli, FixedInDegree, FromArrays, FromMatrix, InDegree,
                                    NetworkBuilder, OneToOne, OutDegree, brunel_network, brunel_parameters,
                                    export_network, load_network)


# ---------------------------------------------------------------------------------------------- helpers

def csr_triples(net):
    """(pre, post, weight, delay) of every synapse of the network, from its CSR."""
    c = net.connectivity
    pre = np.repeat(np.arange(net.n), np.diff(c.indptr))
    d = np.full(pre.size, net.delay) if c.delays is None else c.delays
    return pre, c.indices.astype(np.int64), c.weights, d


def sorted_rows(*cols):
    a = np.column_stack([np.asarray(x, dtype=np.float64) for x in cols])
    return a[np.lexsort(a.T[::-1])]


def dense(n, pre, post, values):
    W = np.zeros((n, n))
    np.add.at(W, (post, pre), values)
    return W


def counts_matrix(n, pre, post):
    C = np.zeros((n, n), dtype=np.int64)
    np.add.at(C, (post, pre), 1)
    return C


def builder(sizes=(("E", 40), ("I", 10)), **kw):
    b = NetworkBuilder(sp.LIF(v_reset=0.5), tau=0.02, **kw)
    pops = [b.population(name, size, drive=0.0, refractory=0.002) for name, size in sizes]
    return b, pops


# ------------------------------------------------------------------------------------ fixed in/out-degree

@pytest.mark.parametrize("multapses", [True, False])
def test_in_degree_exact_per_post_and_projection(multapses):
    b, (E, I) = builder()
    b.connect(E, E, InDegree(7), weight=0.1, multapses=multapses)
    b.connect(E, I, InDegree(5), weight=0.2, multapses=multapses)
    b.connect(I, E, FixedInDegree(3), weight=-0.3, multapses=multapses)
    b.connect(I, I, InDegree(9), weight=-0.4, multapses=multapses)
    net = b.build(seed=11)
    pre, post, w, _ = csr_triples(net)
    is_e_pre = pre < E.stop
    np.testing.assert_array_equal(np.bincount(post[is_e_pre], minlength=50), [7] * 40 + [5] * 10)
    np.testing.assert_array_equal(np.bincount(post[~is_e_pre], minlength=50), [3] * 40 + [9] * 10)
    # weights follow the projection (block) of each synapse
    expect = np.where(is_e_pre, np.where(post < E.stop, 0.1, 0.2), np.where(post < E.stop, -0.3, -0.4))
    np.testing.assert_array_equal(w, expect)
    assert not np.any(pre == post)                      # autapses off by default
    C = counts_matrix(50, pre, post)
    if not multapses:
        assert C.max() == 1
    # I -> I without multapses: 9 of the 9 other I neurons = all of them
    if not multapses:
        block = C[40:, 40:]
        np.testing.assert_array_equal(block, 1 - np.eye(10, dtype=int))


@pytest.mark.parametrize("multapses", [True, False])
def test_out_degree_exact(multapses):
    b, (E, I) = builder()
    b.connect(E, E, OutDegree(6), weight=0.1, multapses=multapses)
    b.connect(E, I, OutDegree(4), weight=0.2, multapses=multapses)
    b.connect(I, E, OutDegree(12), weight=-0.3, multapses=multapses)
    net = b.build(seed=5)
    pre, post, _, _ = csr_triples(net)
    into_e = post < E.stop
    np.testing.assert_array_equal(np.bincount(pre[into_e], minlength=50), [6] * 40 + [12] * 10)
    np.testing.assert_array_equal(np.bincount(pre[~into_e], minlength=50), [4] * 40 + [0] * 10)
    np.testing.assert_array_equal(np.diff(net.connectivity.indptr), [10] * 40 + [12] * 10)
    assert not np.any(pre == post)
    if not multapses:
        assert counts_matrix(50, pre, post).max() == 1


def test_multapses_occur_when_allowed_and_never_when_off():
    b, (A,) = builder((("A", 5),))
    b.connect(A, A, InDegree(40), weight=0.1)          # 40 draws from 4 others: repeats are certain
    pre, post, _, _ = csr_triples(b.build(seed=1))
    C = counts_matrix(5, pre, post)
    assert C.max() > 1 and np.all(np.diag(C) == 0)
    np.testing.assert_array_equal(C.sum(axis=1), 40)
    b2, (A2,) = builder((("A", 30),))
    b2.connect(A2, A2, InDegree(20), weight=0.1, multapses=False)
    b2.connect(A2, A2, OutDegree(25), weight=0.2, multapses=False)
    for s in b2.synapses(seed=2):
        code = s.pre * 30 + s.post
        assert np.unique(code).size == code.size and not np.any(s.pre == s.post)


def test_autapses_present_when_allowed_dense_case():
    b, (A,) = builder((("A", 6),))
    b.connect(A, A, InDegree(6), weight=0.1, autapses=True, multapses=False)   # every pre, itself included
    b.connect(A, A, Bernoulli(1.0), weight=0.2, autapses=True)
    b.connect(A, A, OutDegree(6), weight=0.3, autapses=True, multapses=False)
    pre, post, w, _ = csr_triples(b.build(seed=1))
    for weight in (0.1, 0.2, 0.3):
        sel = w == weight
        np.testing.assert_array_equal(counts_matrix(6, pre[sel], post[sel]), np.ones((6, 6), dtype=int))
    # and without autapses the dense cases are the complete graph minus the diagonal
    b, (A,) = builder((("A", 6),))
    b.connect(A, A, InDegree(5), weight=0.1, multapses=False)
    b.connect(A, A, Bernoulli(1.0), weight=0.2)
    pre, post, w, _ = csr_triples(b.build(seed=1))
    for weight in (0.1, 0.2):
        sel = w == weight
        np.testing.assert_array_equal(counts_matrix(6, pre[sel], post[sel]), 1 - np.eye(6, dtype=int))


@pytest.mark.parametrize("m,k,exclude", [(6, 2, False), (6, 4, False), (7, 3, True), (7, 5, True)])
def test_distinct_sampler_uniform_over_subsets(m, k, exclude):
    """Both samplers (sparse: 2k <= m, dense: 2k > m) give uniform k-subsets (chi-square)."""
    rng = np.random.default_rng(123)
    # exclude_self is for a population onto itself: m rows, row r never draws r
    out = np.concatenate([P._sample_rows(rng, m, m, k, distinct=True, exclude_self=exclude)
                          for _ in range(1000)])
    assert out.shape == (1000 * m, k) and out.dtype == np.int32
    assert np.all(np.diff(out, axis=1) > 0)             # distinct, increasing
    rows = np.tile(np.arange(m), 1000)
    if exclude:
        assert not np.any(out == rows[:, None])
    r = 3 if exclude else 0
    pool = [i for i in range(m) if not (exclude and i == r)]
    subsets = {s: i for i, s in enumerate(itertools.combinations(pool, k))}
    counts = np.bincount([subsets[tuple(x)] for x in out[rows == r].tolist()], minlength=len(subsets))
    assert st.chisquare(counts).pvalue > 1e-4


def test_with_replacement_uniform_and_self_excluded():
    rng = np.random.default_rng(9)
    out = np.concatenate([P._sample_rows(rng, 5, 5, 40, distinct=False, exclude_self=True) for _ in range(200)])
    rows = np.tile(np.arange(5), 200)
    assert not np.any(out == rows[:, None])
    counts = np.bincount(out[rows == 2].ravel(), minlength=5)
    assert counts[2] == 0 and counts.sum() == 200 * 40
    assert st.chisquare(counts[[0, 1, 3, 4]]).pvalue > 1e-4


# ---------------------------------------------------------------------------------------------- Bernoulli

def test_bernoulli_count_and_uniformity():
    n_pre, n_post, p = 300, 200, 0.05
    b, (A, B) = builder((("A", n_pre), ("B", n_post)))
    b.connect(A, B, Bernoulli(p), weight=0.1)
    b.connect(B, B, Bernoulli(0.3), weight=0.2)
    pre, post, w, _ = csr_triples(b.build(seed=7))
    ab = w == 0.1
    total = n_pre * n_post
    count = int(ab.sum())
    assert abs(count - total * p) < 5 * np.sqrt(total * p * (1 - p))
    C = counts_matrix(500, pre[ab], post[ab])
    assert C.max() == 1
    # per-presynaptic out-degrees ~ Binomial(n_post, p): chi-square on pooled classes
    k = np.bincount(pre[ab], minlength=500)[:n_pre]
    edges = [0, 6, 8, 10, 12, 14, 1000]
    obs = np.histogram(k, bins=edges)[0]
    cdf = st.binom.cdf(np.array(edges) - 1, n_post, p)
    expct = np.diff(cdf) * n_pre
    assert st.chisquare(obs, expct * obs.sum() / expct.sum()).pvalue > 1e-4
    # targets uniform over the post population (chi-square over 10 blocks of 20)
    blocks = np.bincount((post[ab] - n_pre) // 20, minlength=10)
    assert st.chisquare(blocks).pvalue > 1e-4
    # recurrent B -> B: no autapses, count within 5 sigma of n(n-1) p
    bb = w == 0.2
    assert not np.any(pre[bb] == post[bb])
    tot = n_post * (n_post - 1)
    assert abs(bb.sum() - 0.3 * tot) < 5 * np.sqrt(tot * 0.3 * 0.7)
    diag_free = counts_matrix(500, pre[bb], post[bb])[n_pre:, n_pre:]
    # no trivial bias towards pairs just above or below the (skipped) diagonal
    up, low = np.triu(diag_free, 1).sum(), np.tril(diag_free, -1).sum()
    assert abs(up - low) < 5 * np.sqrt(up + low)


def test_bernoulli_positions_in_many_rounds():
    """The geometric-gap sampler gives the same law when it needs many rounds of gaps."""
    rng = np.random.default_rng(5)
    total, p = 20000, 0.1
    counts = np.zeros(10, dtype=np.int64)
    sizes = []
    for _ in range(20):
        pos = P._bernoulli_positions(rng, total, p, chunk=37)
        assert np.all(np.diff(pos) > 0) and pos[0] >= 0 and pos[-1] < total and pos.dtype == np.int64
        sizes.append(pos.size)
        counts += np.bincount(pos * 10 // total, minlength=10)
    assert abs(np.sum(sizes) - 20 * total * p) < 5 * np.sqrt(20 * total * p * (1 - p))
    assert st.chisquare(counts).pvalue > 1e-4


def test_bernoulli_extremes_and_order():
    b, (A, B) = builder((("A", 4), ("B", 3)))
    b.connect(A, B, Bernoulli(0.0), weight=0.1)
    b.connect(A, B, Bernoulli(1.0), weight=0.2)
    syn = b.synapses(seed=1)
    assert syn[0].pre.size == 0
    np.testing.assert_array_equal(syn[1].pre, np.repeat(np.arange(4), 3))       # pre-major order
    np.testing.assert_array_equal(syn[1].post, np.tile(np.arange(4, 7), 4))
    pre, post = Bernoulli(1e-13).pairs(1000, 1000, np.random.default_rng(0))    # tiny-p branch
    assert pre.size == post.size and pre.size <= 3


# ------------------------------------------------------------------------- one-to-one, arrays, matrices

def test_one_to_one():
    b, (A, B) = builder((("A", 5), ("B", 5)))
    b.connect(A, B, OneToOne(), weight=0.3)
    b.connect(B, B, OneToOne(), weight=-0.1)            # autapses by construction (default True here)
    pre, post, w, _ = csr_triples(b.build(seed=1))
    np.testing.assert_array_equal(sorted_rows(pre, post, w),
                                  sorted_rows(np.r_[0:5, 5:10], np.r_[5:10, 5:10], [0.3] * 5 + [-0.1] * 5))


def test_from_arrays_weights_and_delays_land_on_their_synapses():
    rng = np.random.default_rng(3)
    b, (E, I) = builder((("E", 12), ("I", 7)))
    npairs = 200
    pre_l, post_l = rng.integers(0, 12, npairs), rng.integers(0, 7, npairs)   # multapses included
    w = rng.normal(size=npairs)
    d = rng.uniform(0, 0.005, npairs)
    b.connect(E, I, FromArrays(pre_l, post_l), weight=w, delay=d)
    pre2, post2 = rng.integers(0, 7, 30), rng.integers(0, 12, 30)
    b.connect(I, E, FromArrays(pre2, post2), weight=-0.5, delay=0.001)
    net = b.build(seed=1)
    pre, post, ww, dd = csr_triples(net)
    gpre = np.r_[pre_l + E.start, pre2 + I.start]
    gpost = np.r_[post_l + I.start, post2 + E.start]
    gw = np.r_[w, np.full(30, -0.5)]
    gd = np.r_[d, np.full(30, 0.001)]
    np.testing.assert_array_equal(sorted_rows(pre, post, ww, dd), sorted_rows(gpre, gpost, gw, gd))
    np.testing.assert_allclose(dense(19, pre, post, ww), dense(19, gpre, gpost, gw), rtol=0, atol=1e-14)
    np.testing.assert_allclose(dense(19, pre, post, dd), dense(19, gpre, gpost, gd), rtol=0, atol=1e-15)
    c = net.connectivity
    assert c.indptr.dtype == np.int64 and c.indices.dtype == np.int32 and c.weights.dtype == np.float64
    for j in range(19):                                  # targets sorted within each row
        assert np.all(np.diff(c.indices[c.indptr[j]:c.indptr[j + 1]]) >= 0)
    # multapses with different weights keep their generation order within a row
    for j in range(12):
        row = slice(c.indptr[j], c.indptr[j + 1])
        for t in np.unique(c.indices[row]):
            given = w[(pre_l == j) & (post_l + I.start == t)]
            np.testing.assert_array_equal(c.weights[row][c.indices[row] == t], given)


@pytest.mark.parametrize("sparse", [False, True])
def test_from_matrix(sparse):
    rng = np.random.default_rng(4)
    W = rng.normal(size=(6, 9)) * (rng.random((6, 9)) < 0.4)    # W[post, pre]: 9 pre (A), 6 post (B)
    b, (A, B) = builder((("A", 9), ("B", 6)))
    b.connect(A, B, FromMatrix(sps.csr_array(W) if sparse else W))
    scale = rng.random(int((W != 0).sum()))
    b.connect(A, B, FromMatrix(W), weight=scale)                # explicit weights in (pre, post) order
    pre, post, w, _ = csr_triples(b.build(seed=1))
    first = np.isin(w, W[W != 0]) & ~np.isin(w, scale)
    got = np.zeros((15, 15))
    got[post[first], pre[first]] = w[first]
    np.testing.assert_array_equal(got[9:, :9], W)
    jj, ii = np.nonzero(W.T)                                     # pre-major, post increasing
    exp2 = np.zeros((15, 15))
    exp2[ii + 9, jj] = scale
    got2 = np.zeros((15, 15))
    got2[post[~first], pre[~first]] = w[~first]
    np.testing.assert_array_equal(got2, exp2)


# ---------------------------------------------------------------------------- rules vs builder, order

def test_synapses_match_rule_pairs_and_documented_order():
    b, (E, I) = builder((("E", 20), ("I", 8)))
    b.connect(E, I, InDegree(4), weight=0.1)
    b.connect(I, E, OutDegree(3), weight=-0.2, multapses=False)
    syn = b.synapses(seed=21)
    np.testing.assert_array_equal(syn[0].post, np.repeat(np.arange(8), 4) + I.start)   # post-major
    np.testing.assert_array_equal(syn[1].pre, np.repeat(np.arange(8), 3) + I.start)    # pre-major
    # same random numbers as the rules' public pairs() with the same Generator
    rng = np.random.default_rng(21)
    p0 = InDegree(4).pairs(20, 8, rng)
    p1 = OutDegree(3).pairs(8, 20, rng, multapses=False)
    np.testing.assert_array_equal(syn[0].pre, p0[0] + E.start)
    np.testing.assert_array_equal(syn[1].post, p1[1] + E.start)
    assert np.all(np.diff(p1[1].reshape(8, 3), axis=1) > 0)                           # sorted w/o multapses


def test_distribution_weights_on_right_synapses_and_reproducible():
    def build(seed):
        b, (E, I) = builder()
        b.connect(E, E, InDegree(5), weight=lambda rng, size: rng.uniform(0.0, 0.1, size),
                  delay=lambda rng, size: rng.uniform(0.001, 0.003, size))
        b.connect(E, I, Bernoulli(0.3), weight=st.norm(0.05, 0.01), delay=0.002)
        b.connect(I, E, OutDegree(4), weight=-0.2, delay=st.uniform(0.0, 0.004))
        return b
    b = build(0)
    net = b.build(seed=8)
    syn = b.synapses(seed=8)
    pre, post, w, d = csr_triples(net)
    gpre, gpost, gw, gd = (np.concatenate([getattr(s, f) for s in syn]) for f in ("pre", "post", "weight", "delay"))
    np.testing.assert_array_equal(sorted_rows(pre, post, w, d), sorted_rows(gpre, gpost, gw, gd))
    assert net.connectivity.delays is not None and np.all(d >= 0)
    assert np.all((syn[0].weight >= 0) & (syn[0].weight < 0.1)) and np.unique(syn[0].weight).size == 200
    # same seed (as seed=, or Generator) -> identical; other seed -> different
    again = build(0).build(rng=np.random.default_rng(8))
    other = build(0).build(seed=9)
    c, c2, c3 = net.connectivity, again.connectivity, other.connectivity
    for name in ("indptr", "indices", "weights", "delays"):
        np.testing.assert_array_equal(getattr(c, name), getattr(c2, name))
    assert net.fingerprint() == again.fingerprint() != other.fingerprint()
    assert not np.array_equal(c.weights, c3.weights[:c.weights.size]) or c.indices.size != c3.indices.size


def test_sort_fallback_identical_to_packed(monkeypatch):
    b, (E, I) = builder()
    b.connect(E, E, InDegree(30), weight=lambda rng, size: rng.normal(0, 1, size))
    b.connect(E, I, Bernoulli(0.4), weight=0.1, delay=lambda rng, size: rng.uniform(0, 1e-3, size))
    b.connect(I, E, FromArrays([1, 1, 1, 2], [0, 0, 0, 0]), weight=[1.0, 2.0, 3.0, 4.0])
    packed = b.build(seed=3)
    monkeypatch.setattr(P, "_PACK_LIMIT", 8)
    fallback = b.build(seed=3)
    for name in ("indptr", "indices", "weights", "delays"):
        np.testing.assert_array_equal(getattr(packed.connectivity, name), getattr(fallback.connectivity, name))
    row = slice(*packed.connectivity.indptr[41:43])
    np.testing.assert_array_equal(packed.connectivity.weights[row][:3], [1.0, 2.0, 3.0])   # call order kept


# ----------------------------------------------------------------------- delays, drive, refractoriness

def test_homogeneous_delays_not_stored():
    b, (E, I) = builder(delay=0.0015)
    b.connect(E, I, InDegree(3), weight=0.1)                           # builder default
    b.connect(I, E, InDegree(2), weight=-0.1, delay=0.0015)
    b.connect(I, I, InDegree(2), weight=-0.1, delay=np.full(20, 0.0015))
    b.connect(E, E, InDegree(0), weight=0.1, delay=0.9)               # no synapse: no say
    net = b.build(seed=1)
    assert net.connectivity.delays is None and net.delay == 0.0015
    b.connect(E, E, InDegree(1), weight=0.1, delay=0.002)
    net = b.build(seed=1)
    pre, post, w, d = csr_triples(net)
    assert net.connectivity.delays is not None
    np.testing.assert_array_equal(d, np.where((pre < 40) & (post < 40), 0.002, 0.0015))
    empty = NetworkBuilder("lif", tau=0.01, delay=0.003)
    empty.population("A", 3, drive=1.5)
    net = empty.build()
    assert net.connectivity.indices.size == 0 and net.delay == 0.003


def test_drive_and_refractory_per_population():
    b = NetworkBuilder(sp.LIF(), tau=0.01)
    b.population("A", 3, drive=1.2, refractory=0.001)
    b.population("B", 2, drive=[1.5, 2.0])
    net = b.build(seed=1)
    np.testing.assert_array_equal(net.drive, [1.2, 1.2, 1.2, 1.5, 2.0])
    np.testing.assert_array_equal(net.refractory, [0.001] * 3 + [0.0] * 2)
    b2 = NetworkBuilder(sp.LIF(), tau=0.01)
    b2.population("A", 3, drive=1.2, refractory=0.001)
    b2.population("B", 2, drive=np.full(2, 1.2), refractory=0.001)
    net2 = b2.build(seed=1)
    assert net2.drive == 1.2 and net2.refractory == 0.001 and net2.populations == {"A": (0, 3), "B": (3, 5)}


def test_poisson_inputs():
    b, (E, I) = builder()
    inp = b.poisson(E, rate=50.0, weight=0.02)
    b.poisson("I", rate=10.0, weight=-0.01)
    b.poisson(None, rate=1.0, weight=0.001)
    net = b.build(seed=1)
    assert [x.targets for x in net.inputs] == [(0, 40), (40, 50), None]
    assert net.inputs[0] is inp and inp.rate == 50.0 and inp.weight == 0.02


# ------------------------------------------------------------------------------------------ Brunel

def _check_brunel(net, n_e, n_i, c_e, c_i, j, g):
    assert net.populations == {"E": (0, n_e), "I": (n_e, n_e + n_i)}
    c = net.connectivity
    pre, post, w, _ = csr_triples(net)
    exc = pre < n_e
    np.testing.assert_array_equal(np.bincount(post[exc], minlength=n_e + n_i), c_e)
    np.testing.assert_array_equal(np.bincount(post[~exc], minlength=n_e + n_i), c_i)
    assert np.all(w[exc] == j) and np.all(w[~exc] == -g * j)
    assert not np.any(pre == post)
    assert c.delays is None and net.drive == 0.0 and net.refractory == 0.002 and net.delay == 0.0015
    assert net.model == sp.LIF(v_reset=0.5) and net.tau == 0.02


def test_brunel_small():
    net = brunel_network("SR", n_e=400, n_i=100, seed=2)
    g, eta = BRUNEL_STATES["SR"]
    _check_brunel(net, 400, 100, 40, 10, 0.005, g)
    p = brunel_parameters("SR", n_e=400, n_i=100)
    assert p["nu_thr_hz"] == pytest.approx(20.0 / (0.1 * 40 * 0.02))
    (inp,) = net.inputs
    assert inp.targets is None and inp.weight == 0.005
    assert inp.rate == pytest.approx(40 * eta * p["nu_thr_hz"], rel=1e-15)
    # same seed -> same network; override of the state's g/eta
    assert brunel_network("SR", n_e=400, n_i=100, seed=2).fingerprint() == net.fingerprint()
    net2 = brunel_network("AI", n_e=400, n_i=100, g=7.0, eta=0.5, seed=2)
    _check_brunel(net2, 400, 100, 40, 10, 0.005, 7.0)
    assert net2.inputs[0].rate == pytest.approx(40 * 0.5 * p["nu_thr_hz"])


def test_brunel_parameters_defaults_and_states():
    assert BRUNEL_STATES == {"SR": (3.0, 2.0), "SIfast": (6.0, 4.0), "AI": (5.0, 2.0), "SIslow": (4.5, 0.9)}
    p = brunel_parameters()
    assert (p["c_e"], p["c_i"], p["g"], p["eta"]) == (1000, 250, 5.0, 2.0)
    assert p["j"] == 0.005 and p["v_reset"] == 0.5
    assert p["nu_thr_hz"] == pytest.approx(10.0, rel=1e-14)
    assert p["poisson_rate_hz"] == pytest.approx(1000 * 2.0 * 10.0, rel=1e-14)
    for state, (g, eta) in BRUNEL_STATES.items():
        q = brunel_parameters(state.lower())
        assert (q["g"], q["eta"]) == (g, eta)
    assert brunel_parameters(None, g=1.0, eta=0.0)["poisson_rate_hz"] == 0.0
    assert brunel_network(None, n_e=20, n_i=5, g=1.0, eta=0.0).inputs == []


@pytest.mark.slow
def test_brunel_full_size_build():
    t0 = time.perf_counter()
    net = brunel_network()
    elapsed = time.perf_counter() - t0
    c = net.connectivity
    assert c.indices.size == 12500 * 1250
    _check_brunel(net, 10000, 2500, 1000, 250, 0.005, 5.0)
    assert net.inputs[0].rate == pytest.approx(20000.0)
    assert elapsed < 30.0, f"Brunel build took {elapsed:.1f} s"


# ------------------------------------------------------------------------------------- export / load

def test_export_load_round_trip(tmp_path):
    b, (E, I) = builder()
    b.population("X", 3, drive=[0.1, 0.2, 0.3], refractory=[0.0, 0.001, 0.002])
    b.connect(E, I, InDegree(4), weight=lambda rng, size: rng.normal(0.1, 0.01, size),
              delay=lambda rng, size: rng.uniform(0, 0.002, size))
    b.connect(I, E, Bernoulli(0.2), weight=-0.3)
    b.poisson(E, rate=100.0, weight=0.01)
    b.add_input(PoissonInput(5.0, 0.2, targets=np.array([0, 7, 44])))
    net = b.build(seed=4)
    path = export_network(net, tmp_path / "net")
    assert path.endswith(".npz")
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["metadata"]))
        assert meta["format"] == "sparseprop.network" and meta["fingerprint"] == net.fingerprint()
        np.testing.assert_array_equal(f["connectivity.indices"], net.connectivity.indices)
        assert meta["network"]["tau"] == 0.02 and meta["network"]["model"] == "lif"
    back = load_network(path)
    assert back.fingerprint() == net.fingerprint()
    for name in ("indptr", "indices", "weights", "delays"):
        a, z = getattr(net.connectivity, name), getattr(back.connectivity, name)
        np.testing.assert_array_equal(a, z)
        assert a.dtype == z.dtype
    np.testing.assert_array_equal(back.drive, net.drive)
    np.testing.assert_array_equal(back.refractory, net.refractory)
    assert back.populations == net.populations and back.model == net.model and back.tau == net.tau
    assert [repr(x) for x in back.inputs] == [repr(x) for x in net.inputs]
    # Brunel (scalar drive, homogeneous delay) and the procedural reference network
    for other in (brunel_network(n_e=80, n_i=20), sp.balanced_network(n=50, k=5)):
        p = export_network(other, tmp_path / "other.npz")
        assert load_network(p).fingerprint() == other.fingerprint()


def test_load_rejects_foreign_and_tampered_files(tmp_path):
    np.savez(tmp_path / "foreign.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="not a sparseprop network"):
        load_network(tmp_path / "foreign.npz")
    with pytest.raises(ValueError, match="cannot read"):
        load_network(tmp_path / "missing.npz")
    net = brunel_network(n_e=40, n_i=10)
    path = export_network(net, tmp_path / "net.npz")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["connectivity.weights"] = arrays["connectivity.weights"] * 2
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(ValueError, match="fingerprint"):
        load_network(tmp_path / "tampered.npz")
    with pytest.raises(TypeError, match="net"):
        export_network("not a network", tmp_path / "x.npz")


# --------------------------------------------------------------------------------------- validation

def test_population_errors():
    b, (E, I) = builder()
    with pytest.raises(ValueError, match="name"):
        b.population("", 3)
    with pytest.raises(ValueError, match="already exists"):
        b.population("E", 3)
    with pytest.raises(ValueError, match="size"):
        b.population("Z", 0)
    with pytest.raises(ValueError, match="size"):
        b.population("Z", -2)
    with pytest.raises(ValueError, match="drive"):
        b.population("Z", 3, drive=[1.0, 2.0])
    with pytest.raises(ValueError, match="refractory"):
        b.population("Z", 3, refractory=-0.001)
    with pytest.raises(ValueError, match="model: unknown model"):
        b.population("Z", 3, model="hh")
    with pytest.raises(TypeError, match="model"):
        b.population("Z", 3, model=object())
    with pytest.raises(TypeError, match="model"):
        b.population("Z", 3, model=sp.Mixed([("lif", 3)]))
    with pytest.raises(ValueError, match="tau"):
        b.population("Z", 3, tau=-0.01)
    with pytest.raises(ValueError, match="tau"):
        b.population("Z", 3, tau=[0.01, 0.02])
    with pytest.raises(ValueError, match="tau"):
        b.population("Z", 3, tau=float("nan"))
    assert "Z" not in b.populations                                 # nothing half-added
    b.population("Z", 3, model=sp.LIF(v_reset=0.5), tau=0.02)
    with pytest.raises(TypeError, match="model"):
        NetworkBuilder(object(), tau=0.01)
    with pytest.raises(ValueError, match="populations"):
        NetworkBuilder("lif").build()


def test_connect_errors():
    b, (E, I) = builder()
    other, (F,) = builder((("F", 4),))
    with pytest.raises(ValueError, match="unknown population"):
        b.connect("nope", I, InDegree(1), weight=0.1)
    with pytest.raises(ValueError, match="unknown population"):
        b.connect(F, I, InDegree(1), weight=0.1)
    with pytest.raises(ValueError, match="unknown population"):
        b.poisson("nope", rate=1.0, weight=0.1)
    with pytest.raises(TypeError, match="rule"):
        b.connect(E, I, sp.FixedOutDegree(2, 0.1), weight=0.1)
    for bad_p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p"):
            Bernoulli(bad_p)
    with pytest.raises(ValueError, match="k"):
        InDegree(-1)
    with pytest.raises(ValueError, match="k"):
        OutDegree(-3)
    with pytest.raises(ValueError, match="k: .* 39 are available"):
        b.connect(E, E, InDegree(40), weight=0.1, multapses=False)          # 40 > 39 others
    with pytest.raises(ValueError, match="k: .* 10 are available"):
        b.connect(E, I, OutDegree(11), weight=0.1, multapses=False)
    lone, (A,) = builder((("A", 1),))
    with pytest.raises(ValueError, match="no presynaptic neuron"):
        lone.connect(A, A, InDegree(1), weight=0.1)
    with pytest.raises(ValueError, match="delay"):
        b.connect(E, I, InDegree(1), weight=0.1, delay=-0.001)
    with pytest.raises(ValueError, match="delay"):
        b.connect(E, I, InDegree(1), weight=0.1, delay=np.r_[np.zeros(9), -1.0])
    with pytest.raises(ValueError, match="delay"):
        NetworkBuilder("lif", delay=-1.0)
    with pytest.raises(ValueError, match="weight"):
        b.connect(E, I, InDegree(1), weight=float("nan"))
    with pytest.raises(ValueError, match="weight"):
        b.connect(E, I, InDegree(2), weight=np.r_[np.ones(19), np.nan])
    with pytest.raises(ValueError, match="weight: expected 20"):
        b.connect(E, I, InDegree(2), weight=np.ones(21))
    with pytest.raises(ValueError, match="delay: expected 20"):
        b.connect(E, I, InDegree(2), weight=0.1, delay=np.ones(3))
    with pytest.raises(ValueError, match="random number of synapses"):
        b.connect(E, I, Bernoulli(0.1), weight=np.ones(5))
    with pytest.raises(ValueError, match="weight: required"):
        b.connect(E, I, InDegree(1))
    with pytest.raises(TypeError, match="weight"):
        b.connect(E, I, InDegree(1), weight="strong")
    with pytest.raises(ValueError, match="multapses"):
        b.connect(E, I, Bernoulli(0.1), weight=0.1, multapses=True)
    with pytest.raises(TypeError, match="autapses"):
        b.connect(E, E, InDegree(1), weight=0.1, autapses="no")
    with pytest.raises(ValueError, match="equal size"):
        b.connect(E, I, OneToOne(), weight=0.1)
    with pytest.raises(ValueError, match="autapses"):
        b.connect(E, E, OneToOne(), weight=0.1, autapses=False)
    assert not b.projections                                            # nothing half-added


def test_from_arrays_and_matrix_errors():
    b, (E, I) = builder()
    with pytest.raises(ValueError, match="post_ids: expected as many"):
        FromArrays([0, 1], [0])
    with pytest.raises(TypeError, match="pre_ids"):
        FromArrays([0.5], [0])
    with pytest.raises(ValueError, match="pre_ids: local ids must lie in \\[0, 40\\)"):
        b.connect(E, I, FromArrays([40], [0]), weight=0.1)
    with pytest.raises(ValueError, match="post_ids: local ids"):
        b.connect(E, I, FromArrays([0], [-1]), weight=0.1)
    with pytest.raises(ValueError, match="autapses"):
        b.connect(E, E, FromArrays([0, 3], [1, 3]), weight=0.1, autapses=False)
    with pytest.raises(ValueError, match="multapses"):
        b.connect(E, I, FromArrays([0, 0], [1, 1]), weight=0.1, multapses=False)
    with pytest.raises(ValueError, match="W: expected shape"):
        b.connect(E, I, FromMatrix(np.ones((40, 10))))
    with pytest.raises(ValueError, match="W"):
        FromMatrix(np.ones(3))
    with pytest.raises(ValueError, match="W"):
        FromMatrix(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="autapses"):
        b.connect(I, I, FromMatrix(np.eye(10)), autapses=False)


def test_build_errors_from_distributions():
    for kw, match in ((dict(weight=lambda rng, size: np.full(size, np.nan)), "weight"),
                      (dict(weight=lambda rng, size: np.ones(size + 1)), "weight"),
                      (dict(weight=0.1, delay=lambda rng, size: -np.ones(size)), "delay")):
        b, (E, I) = builder()
        b.connect(E, I, InDegree(2), **kw)
        with pytest.raises(ValueError, match=match):
            b.build(seed=1)
    b, _ = builder()
    with pytest.raises(ValueError, match="rng/seed"):
        b.build(np.random.default_rng(1), seed=1)
    with pytest.raises(TypeError, match="rng"):
        b.build(rng="x")


def test_brunel_errors():
    with pytest.raises(ValueError, match="state"):
        brunel_parameters("XYZ")
    with pytest.raises(ValueError, match="state"):
        brunel_parameters(None, g=5.0)
    with pytest.raises(ValueError, match="g"):
        brunel_parameters(g=-1.0)
    with pytest.raises(ValueError, match="eta"):
        brunel_parameters(eta=-1.0)
    with pytest.raises(ValueError, match="epsilon"):
        brunel_parameters(epsilon=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        brunel_parameters(n_e=4, epsilon=0.1)
    with pytest.raises(ValueError, match="v_reset_mv"):
        brunel_parameters(v_reset_mv=25.0)


# ------------------------------------------------------------------------------------- integration

def test_built_networks_simulate_identically_in_both_engines():
    """Builder output is a valid Network: heap and O(N) engines give the same spikes (delays, inputs)."""
    b = NetworkBuilder(sp.LIF(), tau=0.01)
    E = b.population("E", 80, drive=np.linspace(1.05, 1.5, 80), refractory=0.001)
    I = b.population("I", 20, drive=1.2)
    b.connect(E, I, Bernoulli(0.2), weight=0.05, delay=lambda rng, size: rng.uniform(0, 0.003, size))
    b.connect(I, E, InDegree(5), weight=-0.1, delay=0.001)
    b.connect(E, E, OutDegree(4), weight=lambda rng, size: rng.normal(0.02, 0.01, size), delay=0.0)
    b.poisson(I, rate=50.0, weight=0.02)
    for net in (b.build(seed=2), brunel_network("AI", n_e=200, n_i=50, seed=3)):
        heap = sp.simulate(net, t_max=0.1)
        dense_run = sp.simulate(net, t_max=0.1, engine="dense")
        assert heap.n_spikes > 0
        np.testing.assert_array_equal(heap.times, dense_run.times)
        np.testing.assert_array_equal(heap.neurons, dense_run.neurons)
