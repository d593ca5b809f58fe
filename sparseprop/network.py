"""Network description: a neuron model, its drive, a membrane time constant and connectivity.

Descriptions are plain data (picklable, `to_dict`/`from_dict`); `simulate` compiles them for the core.
"""
import hashlib
import json

import numpy as np

from sparseprop import _validate as v
from sparseprop._core._models import MODELS, NeuronModel, make_model
from sparseprop._core._rng import fixed_out_degree_targets


class FixedOutDegree:
    """Procedural random connectivity: every neuron has exactly ``k`` distinct targets (never itself).

    The targets of neuron j are a pure function of ``(seed, j)`` drawn from a counter-based generator
    at each of j's spikes, so no synapse is stored (10^7 neurons fit in memory).

    Parameters
    ----------
    k : int
        Out-degree, ``0 < k < n``.
    weight : float
        Voltage jump of every synapse in units of the threshold (negative: inhibitory).
    seed : int
        Network realisation, ``0 <= seed < 2**64``.
    """

    kind = "fixed_out_degree"

    def __init__(self, k, weight, seed=1):
        self.k = v.integer("k", k, minimum=1, maximum=v.INT32_LIMIT)
        self.weight = v.real("weight", weight)
        self.seed = v.seed("seed_net", seed)

    def check(self, n):
        if self.k >= n:
            raise ValueError(f"k: the out-degree must be < n = {n} (no self-connections), got {self.k}")

    def targets(self, j, n):
        return (fixed_out_degree_targets(self.seed, j, n, self.k).astype(np.int64),
                np.full(self.k, self.weight))

    def has_excitation(self):
        return self.weight > 0

    def to_dict(self):
        return {"kind": self.kind, "k": self.k, "weight": self.weight, "seed": self.seed}

    def __repr__(self):
        return f"FixedOutDegree(k={self.k}, weight={self.weight!r}, seed={self.seed})"


class SparseConnectivity:
    """Explicit connectivity in CSR form by presynaptic neuron.

    The targets of neuron j are ``indices[indptr[j]:indptr[j+1]]`` with voltage jumps
    ``weights[indptr[j]:indptr[j+1]]`` (units of the threshold), delivered in that order.

    Parameters
    ----------
    indptr : int array, shape (n + 1,)
    indices : int array, shape (nnz,)
    weights : float array, shape (nnz,) or scalar
    """

    kind = "csr"

    def __init__(self, indptr, indices, weights):
        indptr = np.asarray(indptr)
        indices = np.asarray(indices)
        if indptr.dtype.kind not in "iu" or indptr.ndim != 1 or indptr.shape[0] < 2:
            raise ValueError("indptr: expected a 1-D integer array of length n + 1 >= 2")
        if indices.dtype.kind not in "iu" or indices.ndim != 1:
            raise ValueError("indices: expected a 1-D integer array")
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        if self.indptr[0] != 0 or np.any(np.diff(self.indptr) < 0):
            raise ValueError("indptr: must start at 0 and be non-decreasing")
        if self.indptr[-1] != indices.shape[0]:
            raise ValueError(f"indptr: last entry {self.indptr[-1]} must equal len(indices) = {indices.shape[0]}")
        n = self.indptr.shape[0] - 1
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"indices: target ids must lie in [0, {n}), got range "
                             f"[{indices.min()}, {indices.max()}]")
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        if np.ndim(weights) == 0:
            weights = np.full(indices.shape[0], v.real("weights", weights))
        weights = np.asarray(weights)
        if weights.dtype.kind not in "fiu" or weights.shape != indices.shape:
            raise ValueError(f"weights: expected {indices.shape[0]} real numbers (one per synapse), "
                             f"got shape {weights.shape} dtype {weights.dtype}")
        self.weights = np.ascontiguousarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(self.weights)):
            raise ValueError("weights: all values must be finite")

    @classmethod
    def from_matrix(cls, W):
        """From a weight matrix ``W[post, pre]`` (scipy.sparse or dense array; zeros are no synapse)."""
        import scipy.sparse as sps

        if sps.issparse(W):
            W = sps.csr_array(W)
        else:
            W = np.asarray(W, dtype=np.float64)
            if W.ndim != 2:
                raise ValueError(f"W: expected a 2-D matrix, got shape {W.shape}")
            W = sps.csr_array(W)
        if W.shape[0] != W.shape[1]:
            raise ValueError(f"W: expected a square matrix, got shape {W.shape}")
        by_pre = sps.csr_array(W.T)      # rows = presynaptic neurons
        by_pre.sort_indices()
        by_pre.eliminate_zeros()
        return cls(by_pre.indptr, by_pre.indices, by_pre.data)

    @property
    def n(self):
        return self.indptr.shape[0] - 1

    def check(self, n):
        if self.n != n:
            raise ValueError(f"indptr: connectivity is for {self.n} neurons, the network has n = {n}")

    def targets(self, j, n=None):
        a, b = self.indptr[j], self.indptr[j + 1]
        return self.indices[a:b].astype(np.int64), self.weights[a:b].copy()

    def has_excitation(self):
        return bool(np.any(self.weights > 0))

    def to_dict(self):
        return {"kind": self.kind, "indptr": self.indptr, "indices": self.indices, "weights": self.weights}

    def __repr__(self):
        return f"SparseConnectivity(n={self.n}, nnz={self.indices.shape[0]})"


def connectivity_from_dict(d):
    d = dict(d)
    kind = d.pop("kind")
    if kind == FixedOutDegree.kind:
        return FixedOutDegree(**d)
    if kind == SparseConnectivity.kind:
        return SparseConnectivity(**d)
    raise ValueError(f"connectivity: unknown kind {kind!r}")


class Network:
    """A network of pulse-coupled neurons.

    Parameters
    ----------
    model : NeuronModel or str
        ``sp.LIF()``, ``sp.QIF()`` or a registry name (``"lif"``, ``"qif"``).
    n : int
        Number of neurons.
    drive : float or array of shape (n,)
        Constant input I in dV/dt = F(V) + I (units of the threshold per tau). LIF neurons with
        I > 1 fire on their own; I <= 1 makes a neuron fluctuation-driven (fires only when inputs
        lift it to threshold).
    tau : float
        Membrane time constant in seconds (shared by all neurons).
    connectivity : FixedOutDegree or SparseConnectivity
    """

    def __init__(self, model, n, drive, tau=0.01, connectivity=None):
        if isinstance(model, str):
            model = make_model(model)
        if not isinstance(model, NeuronModel):
            raise TypeError(f"model: expected a neuron model such as sparseprop.LIF(), got {model!r}")
        self.model = model
        self.n = v.integer("n", n, minimum=1, maximum=v.INT32_LIMIT)
        self.drive = v.per_neuron("drive", drive, self.n)
        model._check_drive(self.drive)
        self.tau = v.real("tau", tau, positive=True)
        if connectivity is None:
            raise ValueError("connectivity: pass sparseprop.FixedOutDegree(...) or SparseConnectivity(...)")
        if not isinstance(connectivity, (FixedOutDegree, SparseConnectivity)):
            raise TypeError(f"connectivity: expected FixedOutDegree or SparseConnectivity, got {connectivity!r}")
        connectivity.check(self.n)
        self.connectivity = connectivity

    def targets(self, j):
        """``(targets, weights)`` of neuron j in delivery order."""
        j = v.integer("j", j, minimum=0, maximum=self.n - 1)
        return self.connectivity.targets(j, self.n)

    def suprathreshold(self):
        """Boolean array: which neurons reach threshold without input."""
        return np.broadcast_to(self.model.suprathreshold(self.drive), (self.n,))

    def to_dict(self):
        return {"model": self.model.name, "model_params": self.model.params(), "n": self.n,
                "drive": self.drive, "tau": self.tau, "connectivity": self.connectivity.to_dict()}

    @classmethod
    def from_dict(cls, d):
        return cls(make_model(d["model"], **d.get("model_params", {})), d["n"], d["drive"], d["tau"],
                   connectivity_from_dict(d["connectivity"]))

    def fingerprint(self):
        """Short digest identifying the network (used to refuse continuing a run on another network)."""
        h = hashlib.sha256()
        for key, val in sorted(self._flat().items()):
            h.update(key.encode())
            h.update(np.ascontiguousarray(val).tobytes() if isinstance(val, np.ndarray) else repr(val).encode())
        return h.hexdigest()[:16]

    def _flat(self):
        d = self.to_dict()
        conn = d.pop("connectivity")
        d.update({f"connectivity.{k}": val for k, val in conn.items()})
        d["model_params"] = json.dumps(d["model_params"], sort_keys=True)
        return d

    def describe(self):
        """JSON-friendly summary (no large arrays)."""
        c = self.connectivity
        out = {"model": self.model.name, **self.model.params(), "n": self.n, "tau_s": self.tau,
               "drive": self.drive if np.ndim(self.drive) == 0 else "per-neuron",
               "connectivity": c.kind}
        if isinstance(c, FixedOutDegree):
            out.update(k=c.k, weight=c.weight, seed_net=c.seed)
        else:
            out.update(synapses=int(c.indices.shape[0]))
        return out

    def __repr__(self):
        return f"Network({self.model!r}, n={self.n}, tau={self.tau}, {self.connectivity!r})"


def balance_drive(k, j0, rate, tau):
    """External drive from the balance condition, I_ext = tau sqrt(K) J0 nu (dimensionless)."""
    return tau * np.sqrt(k) * j0 * rate


def balanced_network(n=100_000, k=100, j0=1.0, rate=1.0, tau=0.01, model="lif", drive=None, seed_net=1):
    """The SparseProp reference network: N inhibitory neurons with K random targets each.

    Weights are ``-j0/sqrt(k)``; the drive follows the balance condition
    ``I_ext = tau sqrt(k) j0 rate`` (``rate`` the target rate in Hz, ``tau`` in s), i.e.
    ``I = 1 + I_ext`` for LIF and ``I = I_ext`` for QIF, unless ``drive`` is given.
    (At k = 100 the realised LIF rate is about 3.4 Hz, not 1 Hz: finite-k corrections.)
    """
    n = v.integer("n", n, minimum=2, maximum=v.INT32_LIMIT)
    k = v.integer("k", k, minimum=1, maximum=v.INT32_LIMIT)
    j0 = v.real("j0", j0, positive=True)
    rate = v.real("rate", rate, positive=True)
    tau = v.real("tau", tau, positive=True)
    model = make_model(model) if isinstance(model, str) else model
    if drive is None:
        i_ext = balance_drive(k, j0, rate, tau)
        drive = 1.0 + i_ext if model.name == "lif" else i_ext
    return Network(model, n, drive, tau, FixedOutDegree(k, -j0 / np.sqrt(k), seed=seed_net))
