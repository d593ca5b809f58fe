"""Simulation results: spikes, per-population statistics, raster and voltage plots, Neo export,
save/load (npz + JSON, no pickle)."""
import json
from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 2   # 2: voltages, sample_times, voltage_neurons, recorded_neurons, populations


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
        Poisson generator (``pois_state``, ``pois_clock``, ``pois_hop``: the next event only
        restarts an interval longer than the clock's range), the next given input (``in_pos``) and
        ``refractory_until`` (clock per neuron, NaN: not refractory).
    representation : str or None
        "time" when the run used the time representation where the network's default is another
        (a taped QIF run with a shared drive); None: the default (``network.bind()``).
    """
    states: np.ndarray
    clock: float
    n_renorm: int
    t: float
    n_spikes: int
    fingerprint: str
    events: dict = None
    representation: str = None

    def to_arrays(self, prefix="state_"):
        out = {f"{prefix}states": self.states,
               f"{prefix}scalars": np.array([self.clock, self.t]),
               f"{prefix}counts": np.array([self.n_renorm, self.n_spikes], dtype=np.int64),
               f"{prefix}fingerprint": np.array(self.fingerprint)}
        for key, val in (self.events or {}).items():
            out[f"{prefix}ev_{key}"] = np.asarray(val)
        if self.representation is not None:
            out[f"{prefix}representation"] = np.array(self.representation)
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix="state_"):
        clock, t = arrays[f"{prefix}scalars"]
        n_renorm, n_spikes = arrays[f"{prefix}counts"]
        tag = f"{prefix}ev_"
        events = {k[len(tag):]: (np.array(val) if np.ndim(val) else val[()])
                  for k, val in arrays.items() if k.startswith(tag)} or None
        rep = arrays.get(f"{prefix}representation")
        return cls(np.array(arrays[f"{prefix}states"]), float(clock), int(n_renorm), float(t),
                   int(n_spikes), str(arrays[f"{prefix}fingerprint"]), events,
                   None if rep is None else str(rep))


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
    populations : dict
        ``name -> (start, stop)``: contiguous id ranges (``stop`` excluded) tiling ``0..n-1``.
        Taken from the network (or, after `load`, from the file); ``{"all": (0, n)}`` by default.
    sample_times : float64 array (n_samples,) or None
        Times (s) at which the voltages were sampled (``sp.Record(voltages=..., sample_times=...)``).
    voltages : float64 array (n_samples, n_recorded) or None
        Exact membrane voltages at `sample_times`, in units of the threshold (LIF: threshold 1,
        rest 0); column ``k`` belongs to neuron ``voltage_neurons[k]``.
    voltage_neurons : int32 array (n_recorded,) or None
        Ids of the neurons whose voltages were sampled.
    recorded_neurons : int array or None
        Ids of the neurons whose spikes were recorded (``sp.Record(neurons=...)``); None: all.
        Rates of the other neurons are NaN and population rates are normalised by the number of
        recorded neurons of the population.

    Notes
    -----
    Statistics are computed over the *analysis window*: ``[t_start, t_end]`` intersected with the
    recording window of ``sp.Record(t_start=..., t_stop=...)`` (stored in
    ``metadata["record"]``), so a rate is always spikes recorded / time recorded.
    """

    def __init__(self, times, neurons, n, t_start, t_end, n_spikes, wall_s, interrupted,
                 final_state, metadata, network=None, *, populations=None, sample_times=None,
                 voltages=None, voltage_neurons=None, recorded_neurons=None):
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
        self.sample_times = sample_times
        self.voltages = voltages
        self.voltage_neurons = voltage_neurons
        self.recorded_neurons = recorded_neurons
        if populations is None and network is not None:
            populations = getattr(network, "populations", None)
        if populations is None:
            populations = ((metadata or {}).get("network") or {}).get("populations")
        self.populations = _check_populations(populations, self.n)

    @property
    def duration(self):
        return self.t_end - self.t_start

    @property
    def ns_per_spike(self):
        return 1e9 * self.wall_s / self.n_spikes if self.n_spikes else float("nan")

    def _need_spikes(self):
        if self.times is None:
            raise ValueError("record: this run was simulated with record=False; no spikes were kept")

    # ------------------------------------------------------------------ selection helpers
    def _window(self):
        """Analysis window (t0, t1) in seconds: the run intersected with the recording window."""
        rec = (self.metadata or {}).get("record") or {}
        t0, t1 = self.t_start, self.t_end
        if rec.get("t_start") is not None:
            t0 = max(t0, float(rec["t_start"]))
        if rec.get("t_stop") is not None:
            t1 = min(t1, float(rec["t_stop"]))
        return t0, max(t0, t1)

    def _restricted(self):
        rec = (self.metadata or {}).get("record") or {}
        return (self.recorded_neurons is not None or rec.get("t_start") is not None
                or rec.get("t_stop") is not None)

    def _range(self, population):
        """(start, stop) of a population name; None: the whole network."""
        if population is None:
            return 0, self.n
        if isinstance(population, str):
            try:
                return self.populations[population]
            except KeyError:
                raise ValueError(f"population: unknown population {population!r}; this result has "
                                 f"{sorted(self.populations)}") from None
        raise TypeError(f"population: expected a population name (str) or None, got "
                        f"{type(population).__name__}")

    def _recorded_mask(self, start, stop):
        """Boolean mask over ids start..stop-1: True where spikes were recorded."""
        mask = np.ones(stop - start, dtype=bool)
        if self.recorded_neurons is not None:
            ids = np.asarray(self.recorded_neurons)
            mask[:] = False
            mask[ids[(ids >= start) & (ids < stop)] - start] = True
        return mask

    def _spikes_in(self, start, stop):
        """Recorded spikes (times, ids) of neurons start..stop-1 inside the analysis window."""
        self._need_spikes()
        t, ids = np.asarray(self.times), np.asarray(self.neurons)
        keep = np.ones(t.shape[0], dtype=bool)
        if (start, stop) != (0, self.n):
            keep &= (ids >= start) & (ids < stop)
        t0, t1 = self._window()
        if (t0, t1) != (self.t_start, self.t_end):
            keep &= (t >= t0) & (t <= t1)
        return (t, ids) if keep.all() else (t[keep], ids[keep])

    def population_of(self, neurons):
        """Population name of each neuron id (array of str, same shape as `neurons`)."""
        ids = np.asarray(neurons)
        out = np.empty(ids.shape, dtype=object)
        for name, (a, b) in self.populations.items():
            out[(ids >= a) & (ids < b)] = name
        return out

    # ------------------------------------------------------------------ statistics
    def mean_rate(self, population=None):
        """Mean firing rate in Hz (spikes per neuron per second).

        Parameters
        ----------
        population : str, optional
            Population name (see `populations`); None: the whole network.

        Returns
        -------
        float
            Without `population` and without a restricted recording this is
            ``n_spikes / (n * duration)`` (also available with ``record=False``); otherwise the
            mean of `rates` over the recorded neurons of the population.
        """
        if population is None and not self._restricted():
            if self.duration <= 0:
                return float("nan")
            return self.n_spikes / (self.n * self.duration)
        r = self.rates(population)
        return float(np.nanmean(r)) if np.any(np.isfinite(r)) else float("nan")

    def rates(self, population=None):
        """Firing rate of every neuron in Hz.

        Parameters
        ----------
        population : str, optional
            Population name; None: all neurons.

        Returns
        -------
        float64 array (stop - start,)
            Recorded spikes / length of the analysis window (s) for neurons ``start..stop-1`` of
            the population (index ``i`` is neuron ``start + i``); NaN for neurons whose spikes
            were not recorded.
        """
        start, stop = self._range(population)
        _, ids = self._spikes_in(start, stop)
        t0, t1 = self._window()
        if t1 - t0 <= 0:
            return np.full(stop - start, np.nan)
        r = np.bincount(ids - start, minlength=stop - start) / (t1 - t0)
        r[~self._recorded_mask(start, stop)] = np.nan
        return r

    def isi_cv(self, population=None):
        """Coefficient of variation of each neuron's inter-spike intervals.

        ``CV_i = std(ISI_i) / mean(ISI_i)`` with the sample standard deviation (ddof = 1); NaN
        for neurons with fewer than 3 spikes (fewer than 2 intervals).

        Parameters
        ----------
        population : str, optional
            Population name; None: all neurons.

        Returns
        -------
        float64 array (stop - start,)
            Index ``i`` is neuron ``start + i``.
        """
        start, stop = self._range(population)
        t, ids = self._spikes_in(start, stop)
        m = stop - start
        order = np.argsort(ids, kind="stable")            # times stay sorted within each neuron
        ids, t = ids[order] - start, t[order]
        same = ids[1:] == ids[:-1]
        isi, owner = np.diff(t)[same], ids[1:][same]
        count = np.bincount(owner, minlength=m)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(owner, isi, minlength=m) / count
            dev = isi - mean[owner]                       # two passes: no cancellation
            var = np.bincount(owner, dev * dev, minlength=m) / np.maximum(count - 1, 1)
            cv = np.sqrt(var) / mean
        cv[count < 2] = np.nan
        return cv

    def cv(self, population=None):
        """Mean ISI CV over the neurons (of `population`) with at least 3 spikes (NaN if none)."""
        cvs = self.isi_cv(population)
        return float(np.nanmean(cvs)) if np.any(np.isfinite(cvs)) else float("nan")

    def _edges(self, bin_s, full_only):
        bin_s = _positive("bin_s", bin_s)
        t0, t1 = self._window()
        m = int(np.floor((t1 - t0) / bin_s + 1e-9))
        edges = t0 + bin_s * np.arange(m + 1)
        if m and edges[-1] > t1:
            edges[-1] = t1
        if not full_only and t1 - edges[-1] > 1e-9 * bin_s:
            edges = np.append(edges, t1)                 # a last, shorter bin
        return edges

    def population_rate(self, bin_s, population=None):
        """Population firing rate in time bins.

        ``rate[b] = (spikes of the population in bin b) / (recorded neurons of the population *
        width of bin b)``.

        Parameters
        ----------
        bin_s : float
            Bin width in seconds. Bins start at the beginning of the analysis window; when the
            window is not a multiple of `bin_s` the last bin is shorter (ending at ``t_end``) and
            normalised by its own width. Each bin is ``[left, right)``, the last one closed.
        population : str, optional
            Population name; None: all neurons.

        Returns
        -------
        edges : float64 array (n_bins + 1,)
            Bin edges in seconds.
        rate_hz : float64 array (n_bins,)
            Population rate in Hz (spikes per neuron per second).
        """
        start, stop = self._range(population)
        t, _ = self._spikes_in(start, stop)
        edges = self._edges(bin_s, full_only=False)
        if edges.shape[0] < 2:
            return edges, np.empty(0)
        counts, _ = np.histogram(t, bins=edges)
        size = int(self._recorded_mask(start, stop).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            return edges, counts / (size * np.diff(edges))

    def fano_factor(self, bin_s, population=None, neurons=None, kind="neuron"):
        """Fano factor of spike counts in time bins.

        The analysis window is cut into ``m = floor(window / bin_s)`` full bins of width `bin_s`
        (a shorter remainder at the end is ignored). With ``c_ib`` the spike count of neuron
        ``i`` in bin ``b``:

        * ``kind="neuron"``: ``F_i = var_b(c_ib) / mean_b(c_ib)`` (sample variance, ddof = 1),
          averaged over the selected neurons with a nonzero mean count (silent neurons have no
          Fano factor).
        * ``kind="population"``: the same for the summed count ``C_b = sum_i c_ib`` of the
          selected neurons (large when the population fires synchronously).

        A Poisson process gives F = 1, a perfectly regular train with bins equal to its period
        gives F = 0.

        Parameters
        ----------
        bin_s : float
            Bin width in seconds; at least 2 full bins must fit in the window.
        population : str, optional
            Population name; None: all neurons.
        neurons : int array, optional
            Explicit neuron ids instead of a population.
        kind : {"neuron", "population"}

        Returns
        -------
        float
            Dimensionless; NaN when no selected neuron fired in the full bins.
        """
        if kind not in ("neuron", "population"):
            raise ValueError(f"kind: expected 'neuron' or 'population', got {kind!r}")
        if neurons is not None and population is not None:
            raise ValueError("population, neurons: give at most one")
        start, stop = self._range(population)
        t, ids = self._spikes_in(start, stop)
        if neurons is not None:
            sel = np.asarray(neurons)
            if sel.ndim != 1 or sel.dtype.kind not in "iu":
                raise ValueError("neurons: expected a 1-D integer array of neuron ids")
            if sel.size and (sel.min() < 0 or sel.max() >= self.n):
                raise ValueError(f"neurons: ids must lie in [0, {self.n})")
            keep = np.isin(ids, sel)
            t, ids = t[keep], ids[keep]
        edges = self._edges(bin_s, full_only=True)
        m = edges.shape[0] - 1
        if m < 2:
            t0, t1 = self._window()
            raise ValueError(f"bin_s: {bin_s} s leaves {m} full bin(s) in the {t1 - t0:.6g} s "
                             "window; the Fano factor needs at least 2")
        b = np.searchsorted(edges, t, side="right") - 1
        b[t == edges[-1]] = m - 1                          # the last bin is closed
        ok = (b >= 0) & (b < m)
        b, ids = b[ok], ids[ok]
        if kind == "population":
            c = np.bincount(b, minlength=m).astype(np.float64)
            mean = c.mean()
            return float(c.var(ddof=1) / mean) if mean > 0 else float("nan")
        if ids.size == 0:
            return float("nan")
        key = (ids.astype(np.int64) - start) * m + b
        ukey, cnt = np.unique(key, return_counts=True)
        owner = ukey // m
        s = np.bincount(owner, cnt.astype(np.float64))    # sum over bins of c_ib
        q = np.bincount(owner, cnt.astype(np.float64) ** 2)
        fired = s > 0
        s, q = s[fired], q[fired]
        mean = s / m
        var = (q - s * mean) / (m - 1)
        return float(np.mean(var / mean))

    def population_stats(self, bin_s=None):
        """Statistics of every population.

        Parameters
        ----------
        bin_s : float, optional
            Bin width (s) of the Fano factor; None: no Fano factor (``"fano": None``).

        Returns
        -------
        dict
            ``name -> {"rate_hz", "cv", "fano", "n", "spikes"}``: mean rate (Hz), mean ISI CV,
            per-neuron Fano factor (`fano_factor` with ``kind="neuron"``), number of neurons and
            number of recorded spikes in the analysis window. NaN values are reported as None
            (JSON-friendly).
        """
        out = {}
        for name, (a, b) in self.populations.items():
            t, _ = self._spikes_in(a, b)
            out[name] = {"rate_hz": _num(self.mean_rate(name)), "cv": _num(self.cv(name)),
                         "fano": None if bin_s is None else _num(self.fano_factor(bin_s, name)),
                         "n": int(b - a), "spikes": int(t.shape[0])}
        return out

    def final_voltages(self):
        """Membrane voltage of every neuron at ``t_end`` (exact: computed from the phases;
        refractory neurons read their reset voltage)."""
        if self.network is None:
            raise ValueError("network: this result was loaded from disk; rebuild the network and "
                             "use network.model to convert final_state")
        st = self.final_state
        bound = self.network.bind(time_based=st.representation == "time")
        clock = bound.clock_at(st.t / self.network.time_unit, st.n_renorm)
        volts = np.asarray(bound.voltage_from_state(st.states, clock), dtype=np.float64)
        if st.events is not None and "refractory_until" in st.events:
            busy = np.isfinite(np.asarray(st.events["refractory_until"], dtype=np.float64))
            volts[busy] = np.broadcast_to(bound.voltage_reset, volts.shape)[busy]   # clamped at the reset
        return volts

    def summary(self):
        """JSON-friendly summary of the run (with per-population statistics when there are
        several populations)."""
        cv = self.cv() if self.times is not None else float("nan")
        out = {**self.metadata.get("network", {}), "engine": self.metadata.get("engine"),
               "spikes": self.n_spikes, "sim_time_s": self.duration, "wall_s": self.wall_s,
               "ns_per_spike": _num(self.ns_per_spike), "rate_hz": _num(self.mean_rate()),
               "cv": _num(cv), "interrupted": self.interrupted,
               "stopped_by": self.metadata.get("stopped_by")}
        if len(self.populations) > 1 and self.times is not None:
            out["population_stats"] = self.population_stats()
        return out

    # ------------------------------------------------------------------ plots
    def plot_raster(self, ax=None, path=None, max_neurons=None, markersize=1.0, bin_s=None):
        """Raster plot (dots at (time, neuron)), one colour per population, with the population
        rates below.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Draw only the raster into this axes (no rate panel).
        path : str, optional
            Save the figure (PNG, PDF, ...) to this path.
        max_neurons : int, optional
            Show at most this many neurons *per population*: its first ``max_neurons`` ids.
            Default: about 1000 neurons in total, shared in proportion to population sizes.
            With one population this is "neurons with id < max_neurons".
        markersize : float
        bin_s : float, optional
            Bin width (s) of the rate panel; default: the window cut into
            ``clip(sqrt(spikes), 10, 200)`` bins.

        Returns
        -------
        matplotlib Axes
            The raster axes (the rate axes is ``ax.figure.axes[1]`` when the figure was made here).

        Notes
        -----
        When a population is subsampled the rows are packed: population ``p`` occupies the rows
        right after the shown neurons of the previous populations (tick labels name the
        populations, named in the legend); without subsampling the row is the neuron id.
        """
        self._need_spikes()
        plt = _pyplot(ax is None and path is not None)
        pops = sorted(self.populations.items(), key=lambda kv: kv[1][0])
        if max_neurons is None:
            caps = [min(b - a, max(1, int(np.ceil(min(self.n, 1000) * (b - a) / self.n))))
                    for _, (a, b) in pops]
        else:
            max_neurons = int(max_neurons)
            if max_neurons < 1:
                raise ValueError(f"max_neurons: expected a positive integer, got {max_neurons}")
            caps = [min(b - a, max_neurons) for _, (a, b) in pops]
        multi = len(pops) > 1
        fig = None
        if ax is None:
            fig, (ax, ax_rate) = plt.subplots(2, 1, sharex=True, figsize=(8, 5),
                                              gridspec_kw={"height_ratios": [3, 1]})
        t, ids = self._spikes_in(0, self.n)
        row0 = 0
        for k, ((name, (a, b)), cap) in enumerate(zip(pops, caps)):
            keep = (ids >= a) & (ids < a + cap)
            colour = f"C{k}" if multi else "k"
            ax.plot(t[keep], ids[keep] - a + row0, ".", markersize=markersize, color=colour,
                    label=f"{name} ({cap} of {b - a})" if cap < b - a else name)
            row0 += cap
        ax.set_ylim(-0.5, row0 - 0.5)
        if multi:
            ax.legend(loc="upper right", markerscale=max(1.0, 6.0 / max(markersize, 1e-3)),
                      fontsize="small")
        packed = any(cap < b - a for (_, (a, b)), cap in zip(pops, caps)) and multi
        ax.set_ylabel("row (first neurons of each population)" if packed else "neuron")
        net = self.metadata.get("network", {})
        ax.set_title(f"{net.get('model', '').upper()} n={self.n}  {self.n_spikes} spikes  "
                     f"rate {self.mean_rate():.3g} Hz")
        if fig is not None:
            t0, t1 = self._window()
            if t1 > t0:
                if bin_s is None:
                    bin_s = (t1 - t0) / max(10, min(200, int(np.sqrt(max(t.shape[0], 1)))))
                for k, (name, _) in enumerate(pops):
                    edges, rate = self.population_rate(bin_s, name if multi else None)
                    ax_rate.plot(0.5 * (edges[1:] + edges[:-1]), rate,
                                 color=f"C{k}" if multi else "C0", label=name)
            ax_rate.set_xlabel("time (s)")
            ax_rate.set_ylabel("rate (Hz)")
            fig.tight_layout()
            if path is not None:
                fig.savefig(path, dpi=120)
                plt.close(fig)
        elif path is not None:
            ax.figure.savefig(path, dpi=120)
        return ax

    def plot_voltages(self, path=None, ax=None, max_traces=20):
        """Sampled membrane voltages against time, one line per recorded neuron.

        Parameters
        ----------
        path : str, optional
            Save the figure to this path.
        ax : matplotlib Axes, optional
            Draw into this axes.
        max_traces : int
            Plot at most this many neurons (the first recorded ones).

        Returns
        -------
        matplotlib Axes
            Voltages are in units of the threshold (LIF: threshold 1, rest 0); time in seconds.
        """
        if self.voltages is None or self.sample_times is None:
            raise ValueError("voltages: none were sampled; simulate with "
                             "record=sp.Record(voltages=ids, sample_times=times)")
        plt = _pyplot(ax is None and path is not None)
        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(8, 3.5))
        v = np.asarray(self.voltages)
        ids = (np.arange(v.shape[1]) if self.voltage_neurons is None
               else np.asarray(self.voltage_neurons))
        shown = min(v.shape[1], int(max_traces))
        names = self.population_of(ids[:shown])
        for k in range(shown):
            label = f"{ids[k]}" + (f" ({names[k]})" if len(self.populations) > 1 else "")
            ax.plot(self.sample_times, v[:, k], lw=1.0, label=label)
        if 0 < shown <= 10:
            ax.legend(title="neuron", fontsize="small", loc="upper right")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("V (threshold = 1)")
        if fig is not None:
            fig.tight_layout()
            if path is not None:
                fig.savefig(path, dpi=120)
                plt.close(fig)
        elif path is not None:
            ax.figure.savefig(path, dpi=120)
        return ax

    # ------------------------------------------------------------------ export
    def to_neo(self, neurons=None):
        """Export to a `neo.Block` (for Elephant, NWB/NIX writers, ...).

        Parameters
        ----------
        neurons : int array, optional
            Export the spike trains of these neurons only (default: all ``n``; beware that one
            Python object per neuron is created).

        Returns
        -------
        neo.Block
            One `neo.Segment` holding one `neo.SpikeTrain` per neuron (times in s, ``t_start``/
            ``t_stop`` the analysis window, annotations ``neuron`` (id) and ``population``), and,
            when voltages were sampled, one signal with a channel per recorded neuron: a
            `neo.AnalogSignal` when the sample times are evenly spaced, else a
            `neo.IrregularlySampledSignal` (dimensionless: units of the threshold), with array
            annotations ``neuron`` and ``population``.

        Raises
        ------
        ImportError
            If neo is not installed: ``pip install sparseprop-snn[neo]``.
        """
        try:
            import neo
            import quantities as pq
        except ImportError as exc:
            raise ImportError("to_neo needs neo and quantities: pip install sparseprop-snn[neo]") from exc
        self._need_spikes()
        if neurons is None:
            sel = np.arange(self.n)
        else:
            sel = np.asarray(neurons)
            if sel.ndim != 1 or sel.dtype.kind not in "iu":
                raise ValueError("neurons: expected a 1-D integer array of neuron ids")
            if sel.size and (sel.min() < 0 or sel.max() >= self.n):
                raise ValueError(f"neurons: ids must lie in [0, {self.n})")
        t0, t1 = self._window()
        t, ids = self._spikes_in(0, self.n)
        order = np.argsort(ids, kind="stable")            # times stay sorted within each neuron
        t, ids = t[order], ids[order]
        bounds = np.searchsorted(ids, np.stack([sel, sel + 1]))
        names = self.population_of(sel)
        net = (self.metadata or {}).get("network", {})
        block = neo.Block(name="sparseprop", description=f"{net.get('model', '')} network, n={self.n}",
                          sparseprop_metadata=json.dumps(self.metadata, default=_json_default))
        seg = neo.Segment(name="run", index=0)
        block.segments.append(seg)
        for k, i in enumerate(sel):
            st = neo.SpikeTrain(np.array(t[bounds[0, k]:bounds[1, k]]), t_stop=t1, units="s",
                                t_start=t0, name=f"neuron {int(i)}", neuron=int(i),
                                population=str(names[k]))
            seg.spiketrains.append(st)
            st.segment = seg
        if self.voltages is not None and self.sample_times is not None and len(self.sample_times):
            st_times = np.asarray(self.sample_times, dtype=np.float64)
            v = np.asarray(self.voltages, dtype=np.float64)
            vid = (np.arange(v.shape[1]) if self.voltage_neurons is None
                   else np.asarray(self.voltage_neurons))
            ann = {"neuron": vid.astype(np.int64), "population": self.population_of(vid).astype(str)}
            d = np.diff(st_times)
            if d.size and d[0] > 0 and np.allclose(d, d[0], rtol=1e-9, atol=0.0):
                sig = neo.AnalogSignal(v, units=pq.dimensionless, t_start=st_times[0] * pq.s,
                                       sampling_period=float(d[0]) * pq.s, name="v",
                                       array_annotations=ann)
            else:
                sig = neo.IrregularlySampledSignal(st_times, v, units=pq.dimensionless,
                                                   time_units=pq.s, name="v",
                                                   array_annotations=ann)
            sig.annotate(description="membrane voltage in units of the threshold")
            if isinstance(sig, neo.AnalogSignal):
                seg.analogsignals.append(sig)
            else:
                seg.irregularlysampledsignals.append(sig)
            sig.segment = seg
        return block

    # ------------------------------------------------------------------ save / load
    def save(self, path):
        """Save to ``.npz``: spikes, final state, sampled voltages and JSON metadata (no pickle).

        Arrays ``times``, ``neurons``, ``state_*``, and when present ``sample_times``,
        ``voltages``, ``voltage_neurons``, ``recorded_neurons``; the JSON header (``metadata``)
        holds the scalars, the run metadata and the populations. Format version 2; files of
        version 1 still load.
        """
        self._need_spikes()
        header = {"format": "sparseprop.result", "version": FORMAT_VERSION, "n": self.n,
                  "t_start": self.t_start, "t_end": self.t_end, "n_spikes": self.n_spikes,
                  "wall_s": self.wall_s, "interrupted": self.interrupted, "metadata": self.metadata,
                  "populations": {k: [int(a), int(b)] for k, (a, b) in self.populations.items()}}
        extra = {}
        for key in ("sample_times", "voltages", "voltage_neurons", "recorded_neurons"):
            val = getattr(self, key)
            if val is not None:
                extra[key] = np.asarray(val)
        np.savez(path, times=self.times, neurons=self.neurons,
                 metadata=np.array(json.dumps(header, default=_json_default)),
                 **extra, **self.final_state.to_arrays())

    @classmethod
    def load(cls, path):
        """Load a result written by `save` (never unpickles; reads format versions 1 and 2)."""
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
            pops = header.get("populations")               # version >= 2; else from the metadata
            return cls(arrays["times"], arrays["neurons"], header["n"], header["t_start"],
                       header["t_end"], header["n_spikes"], header["wall_s"], header["interrupted"],
                       state, header["metadata"], populations=pops,
                       sample_times=arrays.get("sample_times"), voltages=arrays.get("voltages"),
                       voltage_neurons=arrays.get("voltage_neurons"),
                       recorded_neurons=arrays.get("recorded_neurons"))
        except KeyError as exc:
            raise ValueError(f"path: {path!r} is not a sparseprop result file (missing {exc})") from None

    def __repr__(self):
        return (f"SimulationResult(n={self.n}, spikes={self.n_spikes}, t=[{self.t_start:.6g}, "
                f"{self.t_end:.6g}] s, rate={self.mean_rate():.4g} Hz)")


def _num(x):
    """JSON-friendly float: None for None/NaN/inf."""
    return None if x is None or not np.isfinite(x) else float(x)


def _positive(name, x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a positive number (seconds), got {x!r}") from None
    if not np.isfinite(x) or x <= 0:
        raise ValueError(f"{name}: expected a positive finite number (seconds), got {x}")
    return x


def _pyplot(headless):
    try:
        import matplotlib
        if headless:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install sparseprop-snn[plot]") from exc
    return plt


def _check_populations(populations, n):
    """``{name: (start, stop)}`` with int bounds tiling 0..n-1; None: ``{"all": (0, n)}``."""
    if not populations:
        return {"all": (0, n)}
    out = {}
    try:
        for name, r in populations.items():
            start, stop = (int(x) for x in r)
            out[str(name)] = (start, stop)
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"populations: expected a dict name -> (start, stop), got {populations!r}") from None
    ranges = sorted(out.values())
    if (ranges[0][0] != 0 or ranges[-1][1] != n or any(a >= b for a, b in ranges)
            or any(r[1] != s[0] for r, s in zip(ranges, ranges[1:]))):
        raise ValueError(f"populations: the ranges {ranges} must tile 0..{n} without gaps or overlaps")
    return out


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def load_result(path):
    """Load a `SimulationResult` saved with ``result.save(path)``."""
    return SimulationResult.load(path)
