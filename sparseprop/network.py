"""Network description: neuron models, their drive and membrane time constants, and connectivity.

Descriptions are plain data (picklable, `to_dict`/`from_dict`); `simulate` compiles them for the core.
"""
import hashlib
import json

import numpy as np

from sparseprop import _validate as v
from sparseprop._core._models import MODELS, Mixed, NeuronModel, bind_time, make_model
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
    delays : None, float or float array of shape (nnz,)
        Transmission delays in seconds (>= 0); None uses the network's homogeneous ``delay``.
    n_post : int, optional
        Number of postsynaptic neurons (default: the number of rows, a square network). An input
        projection (`SpikeTrainInput`) has one row per input source and ``n_post`` = the network size.
    """

    kind = "csr"

    def __init__(self, indptr, indices, weights, delays=None, n_post=None):
        indptr = np.asarray(indptr)
        indices = np.asarray(indices)
        if indices.size == 0:
            indices = indices.astype(np.int32)          # [] arrives as float64
        if indptr.dtype.kind not in "iu" or indptr.ndim != 1 or indptr.shape[0] < 2:
            raise ValueError("indptr: expected a 1-D integer array of length n + 1 >= 2")
        if indices.dtype.kind not in "iu" or indices.ndim != 1:
            raise ValueError("indices: expected a 1-D integer array")
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        if self.indptr[0] != 0 or np.any(np.diff(self.indptr) < 0):
            raise ValueError("indptr: must start at 0 and be non-decreasing")
        if self.indptr[-1] != indices.shape[0]:
            raise ValueError(f"indptr: last entry {self.indptr[-1]} must equal len(indices) = {indices.shape[0]}")
        n = self.indptr.shape[0] - 1 if n_post is None else v.integer("n_post", n_post, minimum=1,
                                                                       maximum=v.INT32_LIMIT)
        self.n_post = n
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"indices: target ids must lie in [0, {n}), got range "
                             f"[{indices.min()}, {indices.max()}]")
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        self.weights = _per_synapse("weights", weights, indices.shape[0], "real numbers")
        self.delays = None if delays is None else _per_synapse("delays", delays, indices.shape[0],
                                                               "delays in s", nonneg=True)

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
        """Number of presynaptic neurons (rows)."""
        return self.indptr.shape[0] - 1

    def check(self, n):
        if self.n != n or self.n_post != n:
            raise ValueError(f"indptr: connectivity is {self.n} x {self.n_post} (pre x post), the network "
                             f"has n = {n}")

    def targets(self, j, n=None):
        a, b = self.indptr[j], self.indptr[j + 1]
        return self.indices[a:b].astype(np.int64), self.weights[a:b].copy()

    def has_excitation(self):
        return bool(np.any(self.weights > 0))

    def has_delays(self):
        return self.delays is not None and bool(np.any(self.delays > 0))

    def to_dict(self):
        d = {"kind": self.kind, "indptr": self.indptr, "indices": self.indices, "weights": self.weights}
        if self.delays is not None:
            d["delays"] = self.delays
        if self.n_post != self.n:
            d["n_post"] = self.n_post
        return d

    def __repr__(self):
        return f"SparseConnectivity(n={self.n}, n_post={self.n_post}, nnz={self.indices.shape[0]})"


def _per_synapse(name, value, nnz, what, nonneg=False):
    """A scalar or one finite float64 per synapse (>= 0 with nonneg)."""
    if np.ndim(value) == 0:
        value = np.full(nnz, v.real(name, value))
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.shape != (nnz,):
        raise ValueError(f"{name}: expected {nnz} {what} (one per synapse), got shape {arr.shape} "
                         f"dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or (nonneg and np.any(arr < 0)):
        raise ValueError(f"{name}: all values must be finite" + (" and >= 0 (seconds)" if nonneg else ""))
    return arr


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
        ``sp.LIF()``, ``sp.QIF()``, a table model, a registry name (``"lif"``, ``"qif"``), or
        ``sp.Mixed([(model, count), ...])`` for different models in contiguous blocks of ids.
    n : int
        Number of neurons.
    drive : float or array of shape (n,)
        Constant input I in dV/dt = F(V) + I (units of the threshold per tau). LIF neurons with
        I > 1 fire on their own; I <= 1 makes a neuron fluctuation-driven (fires only when inputs
        lift it to threshold).
    tau : float or array of shape (n,)
        Membrane time constant in seconds: neuron i obeys tau_i dV/dt = F(V) + I_i. An array with
        different values (LIF and QIF only) runs on the engine's time-based mixed representation;
        an array of equal values is stored as that float.
    connectivity : FixedOutDegree or SparseConnectivity
    delay : float
        Homogeneous transmission delay in seconds (>= 0) of every synapse without its own delay
        (`SparseConnectivity(..., delays=...)`): a spike at t reaches its targets at t + delay.
    refractory : float or array of shape (n,)
        Absolute refractory period in seconds (>= 0): after a spike the neuron is clamped at its
        reset and ignores every input for this long, then flows freely from the reset.
    inputs : sequence of PoissonInput / SpikeTrainInput
        External event sources.
    populations : dict, optional
        ``name -> (start, stop)``: contiguous id ranges covering ``0..n-1`` (for per-population
        statistics and plots). Default: one population ``"all"``.
    """

    def __init__(self, model, n, drive, tau=0.01, connectivity=None, *, delay=0.0, refractory=0.0,
                 inputs=(), populations=None):
        from sparseprop.inputs import PoissonInput, SpikeTrainInput

        if isinstance(model, str):
            model = make_model(model)
        if not isinstance(model, NeuronModel):
            raise TypeError(f"model: expected a neuron model such as sparseprop.LIF(), got {model!r}")
        self.n = v.integer("n", n, minimum=1, maximum=v.INT32_LIMIT)
        if isinstance(model, Mixed):
            if model.n != self.n:
                raise ValueError(f"model: the Mixed model's counts sum to {model.n} neurons but n = {self.n}")
            model = model.uniform() or model           # one model in every part: just that model
        self.model = model
        self.drive = v.per_neuron("drive", drive, self.n)
        model._check_drive(self.drive)
        self.tau = v.per_neuron("tau", tau, self.n)
        if np.any(np.asarray(self.tau) <= 0):
            raise ValueError("tau: membrane time constants must be > 0 seconds")
        if np.ndim(self.tau) and np.all(self.tau == self.tau[0]):
            self.tau = float(self.tau[0])
        if np.ndim(self.tau):
            self.tau = self.tau.copy()                 # frozen: the user's array stays writeable
            self.tau.flags.writeable = False
        if self.uses_mixed_engine():
            self.bind()                                # table models and out-of-range drives refuse here
        if connectivity is None:
            raise ValueError("connectivity: pass sparseprop.FixedOutDegree(...) or SparseConnectivity(...)")
        if not isinstance(connectivity, (FixedOutDegree, SparseConnectivity)):
            raise TypeError(f"connectivity: expected FixedOutDegree or SparseConnectivity, got {connectivity!r}")
        connectivity.check(self.n)
        self.connectivity = connectivity
        self.delay = v.real("delay", delay)
        if self.delay < 0:
            raise ValueError(f"delay: must be >= 0 seconds, got {self.delay}")
        self.refractory = v.per_neuron("refractory", refractory, self.n)
        if np.any(np.asarray(self.refractory) < 0):
            raise ValueError("refractory: must be >= 0 seconds")
        if isinstance(inputs, (PoissonInput, SpikeTrainInput)):
            inputs = [inputs]
        self.inputs = list(inputs)
        for inp in self.inputs:
            if isinstance(inp, PoissonInput):
                inp.target_ids(self.n)
            elif isinstance(inp, SpikeTrainInput):
                inp.check(self.n)
            else:
                raise TypeError(f"inputs: expected PoissonInput or SpikeTrainInput items, got {inp!r}")
        self.populations = _check_populations(populations, self.n)

    def targets(self, j):
        """``(targets, weights)`` of neuron j in delivery order."""
        j = v.integer("j", j, minimum=0, maximum=self.n - 1)
        return self.connectivity.targets(j, self.n)

    @property
    def time_unit(self):
        """The engine's unit of time in seconds: tau, or the smallest tau when it varies."""
        return float(np.min(self.tau))

    def uses_mixed_engine(self):
        """True when the network mixes models or membrane time constants, or has excitable QIF
        neurons (drive <= 0): the engine's time-based mixed model runs it."""
        return (isinstance(self.model, Mixed) or np.ndim(self.tau) != 0
                or (self.model.name == "qif" and bool(np.any(np.asarray(self.drive) <= 0.0))))

    def bind(self, time_based=False):
        """The model bound to this network's drive, in the representation the engine uses (QIF
        networks with delays, refractoriness or inputs run time-based; ``time_based=True`` makes
        any QIF network do so, as taped runs do: the backward pass has one QIF form)."""
        if self.uses_mixed_engine():
            return bind_time(self.model, self.drive, np.broadcast_to(self.tau, (self.n,)) / self.time_unit)
        drive = self.drive
        if (time_based or self.uses_event_sources()) and self.model.name == "qif" and np.ndim(drive) == 0:
            drive = np.full(self.n, drive)      # the QIF phase clock has no fixed delay offsets
        return self.model.bind(drive, self.n)

    def suprathreshold(self):
        """Boolean array: which neurons reach threshold without input."""
        return np.broadcast_to(self.model.suprathreshold(self.drive), (self.n,))

    def has_events(self):
        """True when anything besides the free flow can make a neuron fire (inputs)."""
        return any(getattr(inp, "has_excitation", lambda: inp.weight > 0)() for inp in self.inputs)

    def uses_event_sources(self):
        """True when the run needs the engine's extra event sources (delays, refractoriness, inputs)."""
        c = self.connectivity
        return bool(self.delay > 0 or (isinstance(c, SparseConnectivity) and c.has_delays())
                    or np.any(np.asarray(self.refractory) > 0) or self.inputs)

    def to_dict(self):
        d = {"model": self.model.name, "model_params": self.model.params(), "n": self.n,
             "drive": self.drive, "tau": self.tau, "connectivity": self.connectivity.to_dict()}
        if self.delay:
            d["delay"] = self.delay
        if np.any(np.asarray(self.refractory) != 0):
            d["refractory"] = self.refractory
        if self.inputs:
            d["inputs"] = [inp.to_dict() for inp in self.inputs]
        if self.populations != {"all": (0, self.n)}:
            d["populations"] = {k: list(r) for k, r in self.populations.items()}
        return d

    @classmethod
    def from_dict(cls, d):
        from sparseprop.inputs import input_from_dict

        pops = d.get("populations")
        return cls(make_model(d["model"], **d.get("model_params", {})), d["n"], d["drive"], d["tau"],
                   connectivity_from_dict(d["connectivity"]), delay=d.get("delay", 0.0),
                   refractory=d.get("refractory", 0.0),
                   inputs=[input_from_dict(x) for x in d.get("inputs", [])],
                   populations=None if pops is None else {k: tuple(r) for k, r in pops.items()})

    def fingerprint(self):
        """Short digest identifying the network (used to refuse continuing a run on another network)."""
        h = hashlib.sha256()
        for key, val in sorted(self._flat().items()):
            h.update(key.encode())
            h.update(np.ascontiguousarray(val).tobytes() if isinstance(val, np.ndarray) else repr(val).encode())
        return h.hexdigest()[:16]

    def _flat(self):
        d = self.to_dict()
        d["model_params"] = json.dumps(d["model_params"], sort_keys=True)
        return _flatten(d)

    def describe(self):
        """JSON-friendly summary (no large arrays)."""
        c = self.connectivity
        out = {"model": self.model.name, **self.model.params(), "n": self.n,
               "tau_s": self.tau if np.ndim(self.tau) == 0 else "per-neuron",
               "drive": self.drive if np.ndim(self.drive) == 0 else "per-neuron",
               "connectivity": c.kind}
        if isinstance(c, FixedOutDegree):
            out.update(k=c.k, weight=c.weight, seed_net=c.seed)
        else:
            out.update(synapses=int(c.indices.shape[0]))
        if self.delay or (isinstance(c, SparseConnectivity) and c.delays is not None):
            out["delay_s"] = self.delay if c.kind != "csr" or c.delays is None else "per-synapse"
        if np.any(np.asarray(self.refractory) != 0):
            out["refractory_s"] = self.refractory if np.ndim(self.refractory) == 0 else "per-neuron"
        if self.inputs:
            out["inputs"] = [repr(inp) for inp in self.inputs]
        if len(self.populations) > 1:
            out["populations"] = {k: list(r) for k, r in self.populations.items()}
        return out

    def __repr__(self):
        return f"Network({self.model!r}, n={self.n}, tau={self.tau}, {self.connectivity!r})"


def _flatten(d, prefix=""):
    out = {}
    items = d.items() if isinstance(d, dict) else enumerate(d)
    for key, val in items:
        name = f"{prefix}{key}"
        if isinstance(val, (dict, list)) and not (isinstance(val, list) and all(
                isinstance(x, (int, float)) for x in val)):
            out.update(_flatten(val, name + "."))
        else:
            out[name] = val
    return out


def _check_populations(populations, n):
    if populations is None:
        return {"all": (0, n)}
    if not isinstance(populations, dict) or not populations:
        raise TypeError("populations: expected a non-empty dict name -> (start, stop)")
    ranges = []
    out = {}
    for name, r in populations.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"populations: names must be non-empty strings, got {name!r}")
        try:
            start, stop = (int(x) for x in r)
        except (TypeError, ValueError):
            raise ValueError(f"populations: {name!r} must map to (start, stop), got {r!r}") from None
        if not 0 <= start < stop <= n:
            raise ValueError(f"populations: {name!r} = ({start}, {stop}) must satisfy 0 <= start < stop <= n = {n} "
                             "(empty populations are not allowed)")
        out[name] = (start, stop)
        ranges.append((start, stop))
    ranges.sort()
    if ranges[0][0] != 0 or ranges[-1][1] != n or any(a[1] != b[0] for a, b in zip(ranges, ranges[1:])):
        raise ValueError(f"populations: the ranges {ranges} must tile 0..{n} without gaps or overlaps")
    return out


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
