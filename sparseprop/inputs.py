"""External inputs as exact event sources (see DESIGN.md §2, "Event sources").

`PoissonInput`: every target neuron receives its own independent Poisson train. The superposition of
m independent processes of rate nu is one process of rate m*nu whose events pick a uniformly random
target, so the engine draws one exponential interval and one target per event: O(1), exact.

`SpikeTrainInput`: user-given spike times of input sources, projected onto the network through an
explicit CSR (`SparseConnectivity` with one row per source and ``n_post`` = network size).
"""
import numpy as np

from sparseprop import _validate as v


class PoissonInput:
    """Independent Poisson spike trains into a set of neurons.

    Parameters
    ----------
    rate : float
        Rate of each neuron's train in Hz (> 0).
    weight : float
        Voltage jump of every event (units of the threshold).
    targets : None, (start, stop) or int array
        Receiving neurons: all (None), a contiguous id range, or explicit distinct ids.
    """

    kind = "poisson"

    def __init__(self, rate, weight, targets=None):
        self.rate = v.real("rate", rate, positive=True)
        self.weight = v.real("weight", weight)
        if targets is None or isinstance(targets, tuple):
            self.targets = None if targets is None else tuple(
                v.integer("targets", t, minimum=0, maximum=v.INT32_LIMIT) for t in targets)
            if self.targets is not None and (len(self.targets) != 2 or self.targets[0] >= self.targets[1]):
                raise ValueError(f"targets: expected a (start, stop) range with start < stop, got {targets}")
        else:
            ids = np.asarray(targets)
            if ids.dtype.kind not in "iu" or ids.ndim != 1 or ids.size == 0:
                raise ValueError("targets: expected None, a (start, stop) range or a non-empty 1-D int array")
            if np.unique(ids).size != ids.size:
                raise ValueError("targets: neuron ids must be distinct")
            self.targets = np.ascontiguousarray(ids, dtype=np.int32)

    def target_ids(self, n):
        """The receiving neurons as an int32 array (validated against the network size n)."""
        if self.targets is None:
            return np.arange(n, dtype=np.int32)
        if isinstance(self.targets, tuple):
            start, stop = self.targets
            if stop > n:
                raise ValueError(f"targets: range {self.targets} exceeds the network size n = {n}")
            return np.arange(start, stop, dtype=np.int32)
        if self.targets.min() < 0 or self.targets.max() >= n:
            raise ValueError(f"targets: ids must lie in [0, {n})")
        return self.targets

    def to_dict(self):
        t = self.targets
        return {"kind": self.kind, "rate": self.rate, "weight": self.weight,
                "targets": None if t is None else (list(t) if isinstance(t, tuple) else t)}

    def __repr__(self):
        return f"PoissonInput(rate={self.rate!r} Hz, weight={self.weight!r}, targets={self.targets!r})"


class SpikeTrainInput:
    """Given input spike times projected onto the network.

    Parameters
    ----------
    times : float array
        Spike times in seconds, sorted (non-decreasing), >= 0.
    sources : int array
        Input source of each spike, in ``[0, connectivity.n)``.
    connectivity : SparseConnectivity
        Input projection: row s = targets of source s with weights (and optional delays, s: a spike
        at t reaches its targets at t + delay).
    """

    kind = "spike_train"

    def __init__(self, times, sources, connectivity):
        from sparseprop.network import SparseConnectivity

        times = np.asarray(times)
        sources = np.asarray(sources)
        if times.dtype.kind not in "fiu" or times.ndim != 1:
            raise ValueError("times: expected a 1-D array of spike times in s")
        if sources.dtype.kind not in "iu" or sources.shape != times.shape:
            raise ValueError(f"sources: expected {times.shape[0]} integer source ids (one per spike), "
                             f"got shape {sources.shape} dtype {sources.dtype}")
        self.times = np.ascontiguousarray(times, dtype=np.float64)
        if not np.all(np.isfinite(self.times)) or np.any(self.times < 0):
            raise ValueError("times: spike times must be finite and >= 0")
        if np.any(np.diff(self.times) < 0):
            raise ValueError("times: spike times must be sorted (non-decreasing); sort them together "
                             "with sources, e.g. order = np.argsort(times, kind='stable')")
        if not isinstance(connectivity, SparseConnectivity):
            raise TypeError("connectivity: expected a SparseConnectivity (one row per input source, "
                            "n_post = network size)")
        self.connectivity = connectivity
        if sources.size and (sources.min() < 0 or sources.max() >= connectivity.n):
            raise ValueError(f"sources: ids must lie in [0, {connectivity.n}) (rows of connectivity)")
        self.sources = np.ascontiguousarray(sources, dtype=np.int32)

    def check(self, n):
        if self.connectivity.n_post != n:
            raise ValueError(f"connectivity: the input projection targets {self.connectivity.n_post} "
                             f"neurons, the network has n = {n}; pass n_post={n}")

    def has_excitation(self):
        return self.connectivity.has_excitation()

    def to_dict(self):
        return {"kind": self.kind, "times": self.times, "sources": self.sources,
                "connectivity": self.connectivity.to_dict()}

    def __repr__(self):
        return (f"SpikeTrainInput({self.times.shape[0]} spikes from {self.connectivity.n} sources, "
                f"{self.connectivity.indices.shape[0]} synapses)")


def input_from_dict(d):
    from sparseprop.network import connectivity_from_dict

    d = dict(d)
    kind = d.pop("kind")
    if kind == PoissonInput.kind:
        t = d.get("targets")
        if isinstance(t, list):
            d["targets"] = tuple(t)
        return PoissonInput(**d)
    if kind == SpikeTrainInput.kind:
        return SpikeTrainInput(d["times"], d["sources"], connectivity_from_dict(d["connectivity"]))
    raise ValueError(f"inputs: unknown kind {kind!r}")
