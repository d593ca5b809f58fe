"""Simulation results: spikes, statistics, raster plots, save/load (npz + JSON, no pickle)."""
import json
from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 1


@dataclass(frozen=True)
class NetworkState:
    """Everything needed to continue a run exactly (engine coordinates, see sparseprop._core._models).

    Attributes
    ----------
    states : ndarray (n,)
        Per-neuron engine states at engine clock `clock`.
    clock : float
        Engine clock of the last processed event (free flow changes no stored value, so the state
        is valid for any time between that event and the next one).
    n_renorm : int
        Renormalisations of the clock so far (part of the time origin).
    t : float
        End of the simulated window, seconds (a continued run starts here).
    n_spikes : int
        Spikes processed since t = 0.
    fingerprint : str
        Digest of the network the state belongs to.
    events : dict or None
        Event sources in flight (networks with delays, refractoriness or inputs): pending
        deliveries (``pending_clock``, ``pending_j``, ``pending_run``, ``pending_fifo``), the
        Poisson generator (``pois_state``, ``pois_clock``), the next given input (``in_pos``) and
        ``refractory_until`` (clock per neuron, NaN: not refractory).
    """
    states: np.ndarray
    clock: float
    n_renorm: int
    t: float
    n_spikes: int
    fingerprint: str
    events: dict = None

    def to_arrays(self, prefix="state_"):
        out = {f"{prefix}states": self.states,
               f"{prefix}scalars": np.array([self.clock, self.t]),
               f"{prefix}counts": np.array([self.n_renorm, self.n_spikes], dtype=np.int64),
               f"{prefix}fingerprint": np.array(self.fingerprint)}
        for key, val in (self.events or {}).items():
            out[f"{prefix}ev_{key}"] = np.asarray(val)
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix="state_"):
        clock, t = arrays[f"{prefix}scalars"]
        n_renorm, n_spikes = arrays[f"{prefix}counts"]
        tag = f"{prefix}ev_"
        events = {k[len(tag):]: (np.array(val) if np.ndim(val) else val[()])
                  for k, val in arrays.items() if k.startswith(tag)} or None
        return cls(np.array(arrays[f"{prefix}states"]), float(clock), int(n_renorm), float(t),
                   int(n_spikes), str(arrays[f"{prefix}fingerprint"]), events)


class SimulationResult:
    """Spikes of one run and what can be computed from them.

    Attributes
    ----------
    times : float64 array
        Spike times in seconds, non-decreasing.
    neurons : int32 array
        Id of the neuron that fired each spike.
    n : int
        Number of neurons in the network.
    t_start, t_end : float
        Simulated interval in seconds (t_end is t_max when the run stopped on time, else the
        time of the last spike).
    n_spikes : int
    wall_s : float
        Wall-clock duration of the simulation loop.
    interrupted : bool
        True when Ctrl-C stopped the run (what was simulated is kept).
    final_state : NetworkState
        Pass as ``simulate(..., state=result.final_state)`` to continue exactly.
    metadata : dict
    """

    def __init__(self, times, neurons, n, t_start, t_end, n_spikes, wall_s, interrupted,
                 final_state, metadata, network=None):
        self.times = times
        self.neurons = neurons
        self.n = int(n)
        self.t_start = float(t_start)
        self.t_end = float(t_end)
        self.n_spikes = int(n_spikes)
        self.wall_s = float(wall_s)
        self.interrupted = bool(interrupted)
        self.final_state = final_state
        self.metadata = metadata
        self.network = network

    @property
    def duration(self):
        return self.t_end - self.t_start

    @property
    def ns_per_spike(self):
        return 1e9 * self.wall_s / self.n_spikes if self.n_spikes else float("nan")

    def _need_spikes(self):
        if self.times is None:
            raise ValueError("record: this run was simulated with record=False; no spikes were kept")

    def mean_rate(self):
        """Population-averaged firing rate in Hz."""
        if self.duration <= 0:
            return float("nan")
        return self.n_spikes / (self.n * self.duration)

    def rates(self):
        """Firing rate of every neuron in Hz."""
        self._need_spikes()
        if self.duration <= 0:
            return np.full(self.n, np.nan)
        return np.bincount(self.neurons, minlength=self.n) / self.duration

    def isi_cv(self):
        """Coefficient of variation of each neuron's inter-spike intervals (NaN with < 3 spikes)."""
        self._need_spikes()
        order = np.argsort(self.neurons, kind="stable")   # times stay sorted within each neuron
        ids, t = self.neurons[order], self.times[order]
        same = ids[1:] == ids[:-1]
        isi, owner = np.diff(t)[same], ids[1:][same]
        count = np.bincount(owner, minlength=self.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(owner, isi, minlength=self.n) / count
            dev = isi - mean[owner]                       # two passes: no cancellation
            var = np.bincount(owner, dev * dev, minlength=self.n) / np.maximum(count - 1, 1)
            cv = np.sqrt(var) / mean
        cv[count < 2] = np.nan
        return cv

    def cv(self):
        """Mean ISI CV over neurons with at least 3 spikes (NaN if there are none)."""
        cvs = self.isi_cv()
        return float(np.nanmean(cvs)) if np.any(np.isfinite(cvs)) else float("nan")

    def final_voltages(self):
        """Membrane voltage of every neuron at ``t_end`` (exact: computed from the phases)."""
        if self.network is None:
            raise ValueError("network: this result was loaded from disk; rebuild the network and "
                             "use network.model to convert final_state")
        st = self.final_state
        bound = self.network.model.bind(self.network.drive, self.network.n)
        clock = bound.clock_at(st.t / self.network.tau, st.n_renorm)
        return bound.voltage_from_state(st.states, clock)

    def summary(self):
        """JSON-friendly summary of the run."""
        cv = self.cv() if self.times is not None else float("nan")
        def num(x):
            return None if x is None or not np.isfinite(x) else float(x)
        return {**self.metadata.get("network", {}), "engine": self.metadata.get("engine"),
                "spikes": self.n_spikes, "sim_time_s": self.duration, "wall_s": self.wall_s,
                "ns_per_spike": num(self.ns_per_spike), "rate_hz": num(self.mean_rate()),
                "cv": num(cv), "interrupted": self.interrupted,
                "stopped_by": self.metadata.get("stopped_by")}

    def plot_raster(self, ax=None, path=None, max_neurons=None, markersize=1.0):
        """Raster plot (dots at (time, neuron)) with the population rate below.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Draw only the raster into this axes.
        path : str, optional
            Save the figure (PNG, PDF, ...) to this path.
        max_neurons : int, optional
            Show only neurons with id < max_neurons (default: at most 1000).
        """
        self._need_spikes()
        try:
            import matplotlib
            if ax is None and path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("plotting needs matplotlib: pip install sparseprop-snn[plot]") from exc
        max_neurons = min(self.n, 1000) if max_neurons is None else int(max_neurons)
        keep = self.neurons < max_neurons
        fig = None
        if ax is None:
            fig, (ax, ax_rate) = plt.subplots(2, 1, sharex=True, figsize=(8, 5),
                                              gridspec_kw={"height_ratios": [3, 1]})
        ax.plot(self.times[keep], self.neurons[keep], ".", markersize=markersize, color="k")
        ax.set_ylabel("neuron")
        net = self.metadata.get("network", {})
        ax.set_title(f"{net.get('model', '').upper()} n={self.n}  {self.n_spikes} spikes  "
                     f"rate {self.mean_rate():.3g} Hz")
        if fig is not None:
            bins = max(10, min(200, int(np.sqrt(max(self.n_spikes, 1)))))
            if self.duration > 0:
                h, edges = np.histogram(self.times, bins=bins, range=(self.t_start, self.t_end))
                ax_rate.plot(0.5 * (edges[1:] + edges[:-1]), h / (self.n * np.diff(edges)), color="C0")
            ax_rate.set_xlabel("time (s)")
            ax_rate.set_ylabel("rate (Hz)")
            fig.tight_layout()
            if path is not None:
                fig.savefig(path, dpi=120)
                plt.close(fig)
        elif path is not None:
            ax.figure.savefig(path, dpi=120)
        return ax

    def save(self, path):
        """Save to ``.npz``: arrays ``times``, ``neurons``, the final state and JSON metadata."""
        self._need_spikes()
        header = {"format": "sparseprop.result", "version": FORMAT_VERSION, "n": self.n,
                  "t_start": self.t_start, "t_end": self.t_end, "n_spikes": self.n_spikes,
                  "wall_s": self.wall_s, "interrupted": self.interrupted, "metadata": self.metadata}
        np.savez(path, times=self.times, neurons=self.neurons,
                 metadata=np.array(json.dumps(header, default=_json_default)),
                 **self.final_state.to_arrays())

    @classmethod
    def load(cls, path):
        """Load a result written by `save` (never unpickles)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"path: cannot read a sparseprop result from {path!r}: {exc}") from exc
        try:
            header = json.loads(str(arrays["metadata"]))
            if header.get("format") != "sparseprop.result":
                raise KeyError("format")
            if header["version"] > FORMAT_VERSION:
                raise ValueError(f"path: result format version {header['version']} is newer than this "
                                 f"sparseprop understands ({FORMAT_VERSION}); upgrade sparseprop")
            state = NetworkState.from_arrays(arrays)
            return cls(arrays["times"], arrays["neurons"], header["n"], header["t_start"],
                       header["t_end"], header["n_spikes"], header["wall_s"], header["interrupted"],
                       state, header["metadata"])
        except KeyError as exc:
            raise ValueError(f"path: {path!r} is not a sparseprop result file (missing {exc})") from None

    def __repr__(self):
        return (f"SimulationResult(n={self.n}, spikes={self.n_spikes}, t=[{self.t_start:.6g}, "
                f"{self.t_end:.6g}] s, rate={self.mean_rate():.4g} Hz)")


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def load_result(path):
    """Load a `SimulationResult` saved with ``result.save(path)``."""
    return SimulationResult.load(path)
