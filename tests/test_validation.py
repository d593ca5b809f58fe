"""Validation at the Python boundary: clear ValueError (TypeError for wrong types) naming the
parameter. Where the contract does not say whether a check happens when the description is
built or when it is simulated, both steps are inside ``pytest.raises``.
"""
import math

import numpy as np
import pytest

import sparseprop as sp  # noqa: E402  (a broken build must fail, not skip)

import nets  # noqa: E402

NAN, INF = math.nan, math.inf
N_RE = r"\bn\b"
K_RE = r"\bk\b"


def _build_and_run(model, n, drive, tau=0.01, connectivity=None, **sim):
    if connectivity is None:
        connectivity = sp.FixedOutDegree(2, -0.1, seed=1)
    net = sp.Network(model, n, drive, tau=tau, connectivity=connectivity)
    sim.setdefault("spikes", 10)
    return sp.simulate(net, **sim)


def _good_net(n=10, drive=2.0, model=None):
    return sp.Network(model or sp.LIF(), n, drive, tau=0.01, connectivity=sp.FixedOutDegree(3, -0.1, seed=1))


# ----------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("n", [0, -3])
def test_n_nonpositive(n):
    with pytest.raises(ValueError, match=N_RE):
        sp.balanced_network(n=n, k=1)
    with pytest.raises(ValueError, match=N_RE):
        sp.Network(sp.LIF(), n, 2.0, tau=0.01, connectivity=sp.FixedOutDegree(1, -0.1, seed=1))


def test_n_not_integer():
    with pytest.raises((TypeError, ValueError), match=N_RE):
        sp.Network(sp.LIF(), 10.5, 2.0, tau=0.01, connectivity=sp.FixedOutDegree(1, -0.1, seed=1))


@pytest.mark.parametrize("k", [10, 11])
def test_k_not_less_than_n(k):
    with pytest.raises(ValueError, match=K_RE):
        sp.balanced_network(n=10, k=k)
    with pytest.raises(ValueError, match=K_RE):
        _build_and_run(sp.LIF(), 10, 2.0, connectivity=sp.FixedOutDegree(k, -0.1, seed=1))


@pytest.mark.parametrize("k", [0, -1])
def test_k_nonpositive(k):
    with pytest.raises(ValueError, match=K_RE):
        sp.balanced_network(n=10, k=k)
    with pytest.raises(ValueError, match=K_RE):
        _build_and_run(sp.LIF(), 10, 2.0, connectivity=sp.FixedOutDegree(k, -0.1, seed=1))


# ----------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_drive_not_finite(bad):
    with pytest.raises(ValueError, match="drive"):
        _build_and_run(sp.LIF(), 10, bad)
    arr = np.full(10, 2.0)
    arr[3] = bad
    with pytest.raises(ValueError, match="drive"):
        _build_and_run(sp.LIF(), 10, arr)
    with pytest.raises(ValueError, match="drive"):
        _build_and_run(sp.QIF(), 10, arr)


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_weight_not_finite(bad):
    with pytest.raises(ValueError, match="weight"):
        _build_and_run(sp.LIF(), 10, 2.0, connectivity=sp.FixedOutDegree(2, bad, seed=1))
    indptr = np.array([0, 1, 2], dtype=np.int64)
    with pytest.raises(ValueError, match="weight"):
        _build_and_run(sp.LIF(), 2, 2.0, connectivity=sp.SparseConnectivity(
            indptr, np.array([1, 0], np.int64), np.array([-0.1, bad])))
    W = np.zeros((3, 3))
    W[0, 1] = bad
    with pytest.raises(ValueError, match="weight|W|matrix"):
        _build_and_run(sp.LIF(), 3, 2.0, connectivity=sp.SparseConnectivity.from_matrix(W))


@pytest.mark.parametrize("bad", [NAN, INF, 0.0, -0.01])
def test_tau_invalid(bad):
    with pytest.raises(ValueError, match="tau"):
        _build_and_run(sp.LIF(), 10, 2.0, tau=bad)
    with pytest.raises(ValueError, match="tau"):
        sp.balanced_network(n=10, k=2, tau=bad)


@pytest.mark.parametrize("shape", [(9,), (11,), (2, 10), (10, 1)])
def test_drive_wrong_shape(shape):
    with pytest.raises(ValueError, match="drive"):
        _build_and_run(sp.LIF(), 10, np.full(shape, 2.0))


@pytest.mark.parametrize("excitable", [0.0, -1.0])
def test_qif_drive_nonpositive(excitable):
    # excitable QIF neurons (drive <= 0) run, but an inhibitory network of them started below
    # threshold can never fire: the "nothing can ever fire" error names the drive
    with pytest.raises(ValueError, match="drive: no neuron reaches threshold"):
        _build_and_run(sp.QIF(), 10, excitable)
    arr = np.full(10, 1.0)
    arr[4] = excitable
    res = _build_and_run(sp.QIF(), 10, arr, spikes=200, seed_ic=3)
    assert res.metadata["representation"] == "time" and 4 not in set(res.neurons.tolist())
    # far below zero the excitable engine's range ends: a clear error, not an overflow
    arr[4] = -1e4
    with pytest.raises(ValueError, match="drive: QIF neuron 4"):
        _build_and_run(sp.QIF(), 10, arr)


# ----------------------------------------------------------------------------- seeds
def test_seeds_negative_or_not_integer():
    net = _good_net()
    with pytest.raises(ValueError, match="seed_ic"):
        sp.simulate(net, spikes=10, seed_ic=-1)
    with pytest.raises((TypeError, ValueError), match="seed_ic"):
        sp.simulate(net, spikes=10, seed_ic=1.5)
    with pytest.raises((TypeError, ValueError), match="seed_ic"):
        sp.simulate(net, spikes=10, seed_ic="1")
    with pytest.raises(ValueError, match="seed"):
        _build_and_run(sp.LIF(), 10, 2.0, connectivity=sp.FixedOutDegree(2, -0.1, seed=-1))
    with pytest.raises((TypeError, ValueError), match="seed"):
        _build_and_run(sp.LIF(), 10, 2.0, connectivity=sp.FixedOutDegree(2, -0.1, seed=2.5))
    with pytest.raises(ValueError, match="seed_net"):
        sp.balanced_network(n=10, k=2, seed_net=-1)
    with pytest.raises((TypeError, ValueError), match="seed_net"):
        sp.balanced_network(n=10, k=2, seed_net=0.5)


def test_numpy_integer_seeds_accepted():
    net = _good_net()
    a = sp.simulate(net, spikes=10, seed_ic=np.int64(3))
    b = sp.simulate(net, spikes=10, seed_ic=3)
    assert np.array_equal(np.asarray(a.times), np.asarray(b.times))


# ----------------------------------------------------------------------------- stopping
@pytest.mark.parametrize("bad", [0, -5])
def test_spikes_nonpositive(bad):
    with pytest.raises(ValueError, match="spikes"):
        sp.simulate(_good_net(), spikes=bad)


def test_spikes_not_integer():
    with pytest.raises((TypeError, ValueError), match="spikes"):
        sp.simulate(_good_net(), spikes=2.5)


@pytest.mark.parametrize("bad", [0.0, -1.0, NAN])
def test_t_max_invalid(bad):
    with pytest.raises(ValueError, match="t_max"):
        sp.simulate(_good_net(), t_max=bad)


def test_neither_spikes_nor_t_max():
    with pytest.raises(ValueError, match="spikes|t_max"):
        sp.simulate(_good_net())


# ----------------------------------------------------------------------------- nothing fires
def test_nothing_can_ever_fire():
    with pytest.raises(ValueError, match="drive"):
        _build_and_run(sp.LIF(), 10, 0.5, connectivity=sp.FixedOutDegree(3, -0.1, seed=1))
    with pytest.raises(ValueError, match="drive"):
        _build_and_run(sp.LIF(), 10, np.linspace(0.1, 1.0, 10),
                       connectivity=sp.FixedOutDegree(3, -0.1, seed=1))
    with pytest.raises(ValueError, match="drive"):
        _build_and_run(sp.LIF(), 10, 0.9, connectivity=nets.empty_csr(10))


def test_subthreshold_network_with_one_suprathreshold_neuron_is_fine():
    drive = np.full(10, 0.5)
    drive[7] = 1.5
    res = _build_and_run(sp.LIF(), 10, drive, connectivity=sp.FixedOutDegree(3, 0.2, seed=1),
                         initial_voltages=np.zeros(10))
    assert res.n_spikes == 10


# ----------------------------------------------------------------------------- CSR
def _csr(indptr, indices, weights, n=None):
    c = sp.SparseConnectivity(np.asarray(indptr, np.int64), np.asarray(indices, np.int64),
                              np.asarray(weights, float))
    n = n if n is not None else len(indptr) - 1
    return _build_and_run(sp.LIF(), n, 2.0, connectivity=c)


def test_csr_index_out_of_range():
    with pytest.raises(ValueError, match="indices"):
        _csr([0, 1, 2, 3], [1, 2, 3], [-0.1, -0.1, -0.1])
    with pytest.raises(ValueError, match="indices"):
        _csr([0, 1, 2, 3], [1, -1, 0], [-0.1, -0.1, -0.1])


def test_csr_wrong_lengths():
    with pytest.raises(ValueError, match="weights|indices"):
        _csr([0, 1, 2, 3], [1, 2, 0], [-0.1, -0.1])
    with pytest.raises(ValueError, match="indptr"):
        _csr([0, 1, 2, 4], [1, 2, 0], [-0.1, -0.1, -0.1])  # indptr[-1] != nnz
    with pytest.raises(ValueError, match="indptr"):
        _csr([1, 1, 2, 3], [1, 2, 0], [-0.1, -0.1, -0.1])  # indptr[0] != 0
    with pytest.raises(ValueError, match=r"indptr|\bn\b"):
        _csr([0, 1, 2, 3], [1, 2, 0], [-0.1, -0.1, -0.1], n=4)  # network n != len(indptr) - 1


def test_csr_unsorted_indptr():
    with pytest.raises(ValueError, match="indptr"):
        _csr([0, 2, 1, 3], [1, 2, 0], [-0.1, -0.1, -0.1])


def test_from_matrix_not_square():
    with pytest.raises(ValueError, match="W|matrix|shape|square"):
        sp.SparseConnectivity.from_matrix(np.zeros((3, 4)))


# ----------------------------------------------------------------------------- names
def test_bad_engine_name():
    with pytest.raises(ValueError, match="engine"):
        sp.simulate(_good_net(), spikes=10, engine="turbo")


def test_bad_model_name():
    with pytest.raises(ValueError, match="model"):
        sp.balanced_network(n=10, k=2, model="hodgkin-huxley")


# ----------------------------------------------------------------------------- initial state
@pytest.mark.parametrize("shape", [(9,), (11,), (10, 1)])
def test_initial_phases_wrong_shape(shape):
    with pytest.raises(ValueError, match="initial_phases"):
        sp.simulate(_good_net(), spikes=10, initial_phases=np.full(shape, 0.5))


def test_initial_voltages_wrong_shape():
    with pytest.raises(ValueError, match="initial_voltages"):
        sp.simulate(_good_net(), spikes=10, initial_voltages=np.full(9, 0.5))


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.01, NAN, INF])
def test_lif_initial_phases_out_of_range(bad):
    ph = np.full(10, 0.5)
    ph[2] = bad
    with pytest.raises(ValueError, match="initial_phases"):
        sp.simulate(_good_net(), spikes=10, initial_phases=ph)


@pytest.mark.parametrize("bad", [math.pi, 4.0, -3.2, NAN])
def test_qif_initial_phases_out_of_range(bad):
    ph = np.zeros(10)
    ph[5] = bad
    with pytest.raises(ValueError, match="initial_phases"):
        sp.simulate(_good_net(drive=1.0, model=sp.QIF()), spikes=10, initial_phases=ph)


def test_initial_phases_at_reset_is_valid():
    # the interval is [phase_reset, phase_threshold): reset itself is allowed
    res = sp.simulate(_good_net(), spikes=5, initial_phases=np.zeros(10))
    assert res.n_spikes == 5
    res = sp.simulate(_good_net(drive=1.0, model=sp.QIF()), spikes=5,
                      initial_phases=np.full(10, -math.pi))
    assert res.n_spikes == 5


def test_state_from_network_of_other_size():
    a = sp.simulate(_good_net(n=10), spikes=20, seed_ic=1)
    with pytest.raises(ValueError, match="state"):
        sp.simulate(_good_net(n=12), spikes=20, state=a.final_state)


def test_state_from_other_network_same_size():
    # same n, different drive / model: continuing from it would silently be wrong
    a = sp.simulate(_good_net(n=10, drive=2.0), spikes=20, seed_ic=1)
    with pytest.raises(ValueError, match="state"):
        sp.simulate(_good_net(n=10, drive=np.linspace(1.5, 2.5, 10)), spikes=20, state=a.final_state)
    with pytest.raises(ValueError, match="state"):
        sp.simulate(_good_net(n=10, drive=1.0, model=sp.QIF()), spikes=20, state=a.final_state)
