"""`simulate`: compile a network description for the core, run it exactly, collect the result."""
import math
import time

import numpy as np

from sparseprop import _validate as v
from sparseprop._core._engine import Engine, Status

STATUS_COUNT, STATUS_TIME, STATUS_SILENT = (int(Status.STATUS_COUNT), int(Status.STATUS_TIME),
                                            int(Status.STATUS_SILENT))
from sparseprop._progress import Progress
from sparseprop.inputs import PoissonInput, SpikeTrainInput
from sparseprop.network import FixedOutDegree, Network, SparseConnectivity
from sparseprop.results import NetworkState, SimulationResult

_TARGET_CHUNK_S = 0.1   # wall time per nogil chunk: bounds Ctrl-C latency and progress updates


def _initial_states(network, bound, seed_ic, initial_phases, initial_voltages):
    m = network.model
    if initial_phases is not None and initial_voltages is not None:
        raise ValueError("initial_phases, initial_voltages: give at most one")
    if initial_voltages is not None:
        volts = np.asarray(initial_voltages, dtype=np.float64)
        if volts.shape != (network.n,):
            raise ValueError(f"initial_voltages: expected shape ({network.n},), got {volts.shape}")
        lif = (m.phase_reset == 0.0) if m.name == "mixed" else np.full(volts.shape, m.name == "lif")
        if np.any(np.isnan(volts)) or not np.all(np.isfinite(volts[lif])):
            raise ValueError("initial_voltages: values must be finite (QIF accepts -inf, the reset)")
        return bound.state_from_voltage(volts, bound.initial_clock)
    supra = network.suprathreshold()
    if initial_phases is not None:
        phases = np.asarray(initial_phases, dtype=np.float64)
        if phases.shape != (network.n,):
            raise ValueError(f"initial_phases: expected shape ({network.n},), got {phases.shape}")
        if not np.all((phases >= m.phase_reset) & (phases < m.phase_threshold)):
            raise ValueError(f"initial_phases: must lie in [{m.phase_reset}, {m.phase_threshold})")
        if not np.all(supra):
            raise ValueError("initial_phases: phases are defined only for suprathreshold neurons; "
                             "use initial_voltages for networks with subthreshold drive")
        return bound.state_from_phase(phases, bound.initial_clock)
    rng = np.random.default_rng(v.seed("seed_ic", seed_ic))
    u = rng.random(network.n)
    phases = m.phase_reset + u * (m.phase_threshold - m.phase_reset)
    if np.all(supra):
        return bound.state_from_phase(phases, bound.initial_clock)
    # Fluctuation-driven neurons have no phase: start them at a uniform voltage below threshold
    # (LIF: [v_reset, 1); QIF: between rest and threshold) (the map from phases is evaluated on the
    # suprathreshold ones only).
    states = bound.state_from_voltage(m._start_below(u, network.drive), bound.initial_clock)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        from_phase = bound.state_from_phase(np.where(supra, phases, m.phase_reset), bound.initial_clock)
    return np.where(supra, from_phase, states)


def _engine_kwargs(conn):
    if isinstance(conn, FixedOutDegree):
        return {"k": conn.k, "weight": conn.weight, "seed": conn.seed}
    return {"indptr": conn.indptr, "indices": conn.indices, "weights": conn.weights}


_MAX_FIFOS = 16   # distinct delay values served by FIFOs; more go to the pending-delivery heap


def _delay_runs(indptr, indices, weights, delays):
    """Sort each row by delay (stable) and cut it into runs of equal delay.

    Returns the permuted (indices, weights), run_ptr (n + 1), run_end (end of each run in the
    permuted arrays), the delay of each run and the permutation (permuted[k] = original[order[k]]).
    """
    n = indptr.shape[0] - 1
    counts = np.diff(indptr)
    row = np.repeat(np.arange(n, dtype=np.int64), counts)
    order = np.lexsort((delays, row))          # by row, then delay; stable within equal delays
    d = delays[order]
    new_run = np.ones(d.shape[0], dtype=bool)
    new_run[1:] = (d[1:] != d[:-1]) | (row[1:] != row[:-1])
    starts = np.flatnonzero(new_run)
    run_end = np.append(starts[1:], d.shape[0]).astype(np.int64)
    run_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row[starts], minlength=n), out=run_ptr[1:])
    return indices[order], weights[order], run_ptr, run_end, d[starts], order


def _delay_classes(run_delay, bound, tau):
    """FIFO per distinct nonzero delay when there are few, else the pending heap for all of them."""
    nonzero = np.unique(run_delay[run_delay > 0])
    if nonzero.size <= _MAX_FIFOS:
        cls = np.searchsorted(nonzero, run_delay).astype(np.int32)
        fifo_offsets = np.atleast_1d(bound.clock_offset(nonzero / tau, "delay"))
    else:
        cls = np.zeros(run_delay.shape[0], dtype=np.int32)       # == n_fifo: the pending heap
        fifo_offsets = np.empty(0)
    cls[run_delay == 0] = -1
    return cls, fifo_offsets


def _input_events(network, tau):
    """Given input spikes as arrival events (time / tau, synapse range) sorted by arrival time."""
    trains = [x for x in network.inputs if isinstance(x, SpikeTrainInput)]
    if not trains:
        return {}
    t_all, a_all, b_all, idx_all, w_all, spike_all, perm_all = [], [], [], [], [], [], []
    base = spikes_before = 0
    for x in trains:
        c = x.connectivity
        delays = c.delays if c.delays is not None else np.full(c.indices.shape[0], network.delay)
        idx, w, run_ptr, run_end, run_delay, perm = _delay_runs(c.indptr, c.indices, c.weights, delays)
        run_start = np.concatenate([[0], run_end[:-1]])
        nruns = np.diff(run_ptr)
        # one event per (input spike, run of its source)
        spike_of = np.repeat(np.arange(x.times.shape[0]), nruns[x.sources])
        first = run_ptr[x.sources]
        run = np.arange(spike_of.shape[0]) - np.repeat(np.cumsum(nruns[x.sources]) - nruns[x.sources],
                                                       nruns[x.sources]) + first[spike_of]
        t_all.append(x.times[spike_of] + run_delay[run])
        a_all.append(run_start[run] + base)
        b_all.append(run_end[run] + base)
        idx_all.append(idx)
        w_all.append(w)
        perm_all.append(perm + base)
        spike_all.append(spike_of + spikes_before)
        base += idx.shape[0]
        spikes_before += x.times.shape[0]
    t = np.concatenate(t_all)
    order = np.argsort(t, kind="stable")
    return {"in_t": t[order] / tau, "in_a": np.concatenate(a_all)[order],
            "in_b": np.concatenate(b_all)[order], "in_idx": np.concatenate(idx_all),
            "in_w": np.concatenate(w_all), "in_spike": np.concatenate(spike_all)[order],
            "in_order": np.concatenate(perm_all)}


def _poisson_groups(network, tau):
    groups = [x for x in network.inputs if isinstance(x, PoissonInput)]
    if not groups:
        return {}
    ids = [g.target_ids(network.n) for g in groups]
    ranges = all(g.targets is None or isinstance(g.targets, tuple) for g in groups)
    count = np.array([len(i) for i in ids], dtype=np.int32)
    out = {"pois_cum": np.cumsum([g.rate * tau * len(i) for g, i in zip(groups, ids)]),
           "pois_weight": np.array([g.weight for g in groups]),
           "pois_start": np.array([i[0] for i in ids], dtype=np.int32), "pois_count": count,
           "pois_off": np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)}
    if not ranges:
        out["pois_ids"] = np.concatenate(ids)
    return out


def _compile(network, bound, seed_input):
    """Engine connectivity and event-source arguments for a network."""
    tau = network.time_unit
    conn = network.connectivity
    kwargs = _engine_kwargs(conn)
    ev = {}
    ref = np.asarray(network.refractory, dtype=np.float64)
    if np.any(ref > 0):
        ev["ref_off"] = np.atleast_1d(bound.clock_offset(ref / tau, "refractory"))
    if isinstance(conn, SparseConnectivity) and conn.delays is not None and np.unique(conn.delays).size > 1:
        idx, w, run_ptr, run_end, run_delay, order = _delay_runs(conn.indptr, conn.indices, conn.weights,
                                                                 conn.delays)
        cls, fifo_offsets = _delay_classes(run_delay, bound, tau)
        kwargs.update(indices=idx, weights=w)
        ev["syn_order"] = order             # the backward pass maps weight gradients back with it
        ev.update(delay_mode=2, run_ptr=run_ptr, run_end=run_end, run_cls=cls, fifo_offsets=fifo_offsets,
                  run_off=np.atleast_1d(bound.clock_offset(run_delay / tau, "delay")))
    else:
        delay = network.delay
        if isinstance(conn, SparseConnectivity) and conn.delays is not None and conn.delays.size:
            delay = float(conn.delays[0])
        if delay > 0:
            ev.update(delay_mode=1, fifo_offsets=np.atleast_1d(bound.clock_offset(delay / tau, "delay")))
    pois = _poisson_groups(network, tau)
    if pois:
        ev.update(pois)
        ev["pois_state"] = _mix_seed(seed_input)
        ev["pois_clock"] = np.nan                    # the engine draws the first event
    ev.update(_input_events(network, tau))
    return kwargs, ev


def _mix_seed(seed):
    """64-bit SplitMix state for the Poisson stream of a seed (never the raw seed: seeds 1, 2, ...
    would otherwise give overlapping streams)."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + 0x5851F42D4C957F2D) & (2**64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return np.uint64(z ^ (z >> 31))


class Record:
    """What `simulate` keeps.

    Parameters
    ----------
    neurons : None or int array
        Record spikes of these neurons only (None: all).
    t_start, t_stop : float, optional
        Record spikes with t_start <= t <= t_stop (s) only.
    voltages : None or int array
        Neurons whose membrane voltage is sampled at `sample_times` (exact: from the state, no
        integration). Refractory neurons read their reset voltage.
    sample_times : float array
        Sorted sampling times in seconds.
    max_spikes : int, optional
        Memory cap: at most this many recorded spikes in memory. Then ``on_full="stop"`` ends the
        run there (``result.metadata["stopped_by"] == "memory"``) and ``on_full="stream"`` appends
        the buffer to raw files in `stream_dir` (``times.f64``, ``neurons.i32``) and goes on; the
        result's ``times``/``neurons`` are then memory-mapped from those files.
    """

    def __init__(self, neurons=None, t_start=None, t_stop=None, voltages=None, sample_times=None,
                 max_spikes=None, on_full="stop", stream_dir=None):
        self.neurons = None if neurons is None else _ids("neurons", neurons)
        self.t_start = -math.inf if t_start is None else v.real("t_start", t_start)
        self.t_stop = math.inf if t_stop is None else v.real("t_stop", t_stop)
        if self.t_stop < self.t_start:
            raise ValueError(f"t_stop: must be >= t_start ({self.t_start}), got {self.t_stop}")
        self.voltages = None if voltages is None else _ids("voltages", voltages)
        if (voltages is None) != (sample_times is None):
            raise ValueError("voltages, sample_times: give both (which neurons, when) or neither")
        if sample_times is not None:
            st = np.asarray(sample_times, dtype=np.float64)
            if st.ndim != 1 or not np.all(np.isfinite(st)) or np.any(st < 0) or np.any(np.diff(st) < 0):
                raise ValueError("sample_times: expected a sorted 1-D array of finite times >= 0 (s)")
            self.sample_times = st
        else:
            self.sample_times = None
        self.max_spikes = None if max_spikes is None else v.integer("max_spikes", max_spikes, minimum=1)
        self.on_full = v.choice("on_full", on_full, {"stop", "stream"})
        if on_full == "stream" and stream_dir is None:
            raise ValueError("stream_dir: on_full='stream' needs a directory for the spike files")
        self.stream_dir = stream_dir

    def check(self, n):
        for name in ("neurons", "voltages"):
            ids = getattr(self, name)
            if ids is not None and ids.size and (ids.min() < 0 or ids.max() >= n):
                raise ValueError(f"{name}: neuron ids must lie in [0, {n})")


def _ids(name, ids):
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D integer array of neuron ids")
    return np.ascontiguousarray(arr, dtype=np.int32)


class _SpikeStream:
    """Appends spike chunks to raw files (the memory cap's "stream" behaviour)."""

    def __init__(self, directory):
        import os

        os.makedirs(directory, exist_ok=True)
        self.paths = (os.path.join(directory, "times.f64"), os.path.join(directory, "neurons.i32"))
        self.files = [open(p, "wb") for p in self.paths]
        self.count = 0

    def write(self, times, ids):
        self.files[0].write(np.ascontiguousarray(times, dtype=np.float64).tobytes())
        self.files[1].write(np.ascontiguousarray(ids, dtype=np.int32).tobytes())
        self.count += times.shape[0]

    def close(self):
        for f in self.files:
            f.close()
        if self.count == 0:
            return np.empty(0), np.empty(0, dtype=np.int32)
        return (np.memmap(self.paths[0], dtype=np.float64, mode="r"),
                np.memmap(self.paths[1], dtype=np.int32, mode="r"))


def simulate(network, spikes=None, t_max=None, *, seed_ic=1, seed_input=1, initial_phases=None,
             initial_voltages=None, state=None, engine="tree", record=True, progress=None, tape=False):
    """Simulate a network exactly, event by event.

    Parameters
    ----------
    network : Network
    spikes : int, optional
        Stop after this many network spikes.
    t_max : float, optional
        Stop at this simulated time (seconds since the network's origin; for a continued run, the
        absolute end time). At least one of `spikes` and `t_max` is required; the first reached wins.
    seed_ic : int
        Seed of the random initial phases (uniform in [phase_reset, phase_threshold)); neurons
        without a free orbit start at a uniform voltage in [v_reset, 1).
    seed_input : int
        Seed of the Poisson inputs (`PoissonInput`).
    initial_phases, initial_voltages : array (n,), optional
        Explicit initial condition instead of the random one.
    state : NetworkState, optional
        ``result.final_state`` of an earlier run on the same network: continues it exactly
        (bit for bit the same as one long run, including pending deliveries and Poisson inputs).
    engine : {"tree", "heap", "dense"}
        ``"tree"`` (default): SparseProp with an indexed tournament tree as the event queue, O(K log N)
        per spike, fastest for large networks (each input touches one cache line). ``"heap"``:
        SparseProp with an indexed d-ary heap. ``"dense"``: the conventional event-driven algorithm,
        O(N) per spike (scans every neuron). All three give the same spike sequence bit for bit;
        ``"heap"`` and ``"dense"`` are there for validation and speed comparisons.
    record : bool or Record
        Keep spike times and ids (False: only count them, e.g. for benchmarks); a `Record` selects
        neurons, a time window, voltage sampling and a memory cap.
    progress : bool or None
        Progress bar on stderr; None shows it when stderr is a terminal and the run is long.
    tape : bool
        Record the tape of the backward pass (`sparseprop.grad.vjp`): LIF or QIF networks with
        explicit connectivity, recording every spike. With `state`, the tape covers this run only
        (gradients w.r.t. the state it starts from; see `sparseprop.grad.vjp`). A QIF network with
        a shared drive then runs time-based (the same spikes; ``final_state.representation``).

    Returns
    -------
    SimulationResult
        Spike times (s) and neuron ids, statistics, plots, the final state. Ctrl-C stops the run
        cleanly and returns what was simulated (``result.interrupted``).
    """
    if tape:
        _check_tape(network, state, record)
    if not isinstance(network, Network):
        raise TypeError(f"network: expected a sparseprop.Network, got {type(network).__name__}")
    if spikes is None and t_max is None:
        raise ValueError("spikes, t_max: give at least one stopping condition")
    if spikes is not None:
        spikes = v.integer("spikes", spikes, minimum=1)
    if t_max is not None:
        t_max = v.real("t_max", t_max, positive=True)
    v.choice("engine", engine, {"tree", "heap", "dense"})
    seed_input = v.seed("seed_input", seed_input)
    rec = record if isinstance(record, Record) else Record() if record else None
    if record is not None and not isinstance(record, (bool, Record)):
        raise TypeError("record: expected True, False or a sparseprop.Record")
    if rec is not None:
        rec.check(network.n)
    # A taped QIF run is time-based even with a shared drive (one QIF backward pass); its final
    # state says so, and a continuation of it runs time-based too.
    time_based = bool(tape) or (state is not None and getattr(state, "representation", None) == "time")
    bound = network.bind(time_based=time_based)
    forced = (time_based and network.model.name == "qif" and np.ndim(network.drive) == 0
              and not network.uses_event_sources())
    drive = bound.drive

    if state is not None:
        if not isinstance(state, NetworkState):
            raise TypeError("state: expected the final_state of an earlier SimulationResult")
        if forced and state.representation != "time":
            raise ValueError("state: a taped QIF run with a shared drive is time-based and cannot continue an "
                             "untaped (phase-based) run; continue a taped run's state, or give the drive per "
                             "neuron (np.full(n, drive)) so that every run is time-based")
        if state.fingerprint != network.fingerprint():
            raise ValueError("state: it belongs to a different network (model, drive, tau or connectivity differ)")
        if initial_phases is not None or initial_voltages is not None:
            raise ValueError("state: cannot be combined with initial_phases/initial_voltages")
        states, clock, n_renorm, t_start = state.states, state.clock, state.n_renorm, state.t
        spikes_before = state.n_spikes
    else:
        states = _initial_states(network, bound, seed_ic, initial_phases, initial_voltages)
        clock, n_renorm, t_start, spikes_before = bound.initial_clock, 0, 0.0, 0
        _check_can_fire(network, bound, states, clock, t_max)
    if t_max is not None and t_max <= t_start:
        raise ValueError(f"t_max: must be after the start of this run ({t_start} s), got {t_max}")

    kwargs, ev = _compile(network, bound, seed_input)
    if state is not None and state.events:
        se = state.events
        if "pois_state" in ev:
            ev["pois_state"] = np.uint64(se["pois_state"])
            ev["pois_clock"] = float(se["pois_clock"])
            ev["pois_hop"] = bool(se.get("pois_hop", False))
        ev["in_pos"] = int(se.get("in_pos", 0))
        ev["refractory_until"] = se.get("refractory_until")
        if len(se.get("pending_clock", ())):
            ev["pending"] = (se["pending_clock"], se["pending_j"], se["pending_run"], se["pending_fifo"])
    if rec is not None:
        ev.update(rec_mask=None if rec.neurons is None else np.isin(np.arange(network.n), rec.neurons).astype(np.uint8),
                  rec_t0=rec.t_start, rec_t1=rec.t_stop)
    core = Engine(bound, states, clock, n_renorm, engine, events=ev, **kwargs)
    if tape:
        core.enable_tape()
    record = rec is not None
    t_stop = math.inf if t_max is None else t_max
    cap_mem = rec.max_spikes if rec is not None and rec.max_spikes else None
    capacity = min(spikes if spikes is not None else 1 << 16, cap_mem or (1 << 62))
    times = np.empty(capacity if record else 0, dtype=np.float64)
    ids = np.empty(capacity if record else 0, dtype=np.int32)
    stream = _SpikeStream(rec.stream_dir) if record and rec.on_full == "stream" and cap_mem else None
    samples = rec.sample_times if record and rec.sample_times is not None else np.empty(0)
    samples = samples[samples >= t_start]
    if t_max is not None:
        samples = samples[samples <= t_max]
    volts = np.full((samples.shape[0], 0 if not samples.size else rec.voltages.shape[0]), np.nan)
    n_sampled = 0
    sampler = _sampling_model(bound, network, rec.voltages) if samples.size else None
    total = spikes if spikes is not None else None
    bar = Progress(total if total else t_max, "spikes" if total else "s", enabled=progress)

    count, n_rec, chunk, status, interrupted, stopped = 0, 0, 1024, STATUS_COUNT, False, None
    wall0 = time.perf_counter()
    try:
        while True:
            want = chunk if spikes is None else min(chunk, spikes - count)
            if want <= 0:
                break
            if record:
                if cap_mem and n_rec + want > cap_mem:
                    if stream is not None and n_rec:
                        stream.write(times[:n_rec], ids[:n_rec])
                        n_rec = 0
                    want = min(want, cap_mem - n_rec)
                    if want <= 0:
                        stopped = "memory"
                        break
                if n_rec + want > times.shape[0]:
                    capacity = max(2 * times.shape[0], n_rec + want)
                    if cap_mem:
                        capacity = min(capacity, cap_mem)
                    times = _grow(times, capacity, n_rec)
                    ids = _grow(ids, capacity, n_rec)
            stop_at = samples[n_sampled] if n_sampled < samples.shape[0] else t_stop
            c0 = time.perf_counter()
            done, got, status = core.run(times, ids, n_rec, want, stop_at, network.time_unit, record,
                                         max(64 * chunk, 1 << 16))
            count += done
            n_rec += got
            dt = time.perf_counter() - c0
            if status == STATUS_TIME and n_sampled < samples.shape[0] and stop_at < t_stop:
                volts[n_sampled] = _voltages_at(core, bound, sampler, network, rec.voltages, stop_at)
                n_sampled += 1
                status = STATUS_COUNT
                continue
            if status != STATUS_COUNT:
                break
            chunk = int(min(max(chunk * min(_TARGET_CHUNK_S / max(dt, 1e-6), 4.0), 256), 1 << 24))
            if total:
                bar.update(count)
            else:
                bar.update(core.elapsed(core.clock, core.n_renorm) * network.time_unit, f"{count} spikes")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    wall = time.perf_counter() - wall0
    # samples at t_max itself, or after the network fell silent (nothing changes any more)
    while (n_sampled < samples.shape[0] and not interrupted
           and (status == STATUS_SILENT or (status == STATUS_TIME and samples[n_sampled] <= t_stop))):
        volts[n_sampled] = _voltages_at(core, bound, sampler, network, rec.voltages, samples[n_sampled])
        n_sampled += 1

    t_last = core.elapsed(core.clock, core.n_renorm) * network.time_unit if core.clock != clock else t_start
    if status == STATUS_SILENT and t_max is not None and not interrupted:
        status = STATUS_TIME        # nothing can happen any more: the run extends to t_max
    t_end = t_max if status == STATUS_TIME else t_last
    if record:
        times = times[:n_rec] if n_rec == times.shape[0] else times[:n_rec].copy()
        ids = ids[:n_rec] if n_rec == ids.shape[0] else ids[:n_rec].copy()
        if stream is not None:
            if n_rec:
                stream.write(times, ids)
            times, ids = stream.close()
    # The engine clock stays at the last event (that is what makes continuation bit-exact); the
    # state's time is the end of the simulated window.
    events = None
    if network.uses_event_sources():
        events = core.event_state()
        events["refractory_until"] = core.refractory_until()
    final = NetworkState(core.states(), core.clock, core.n_renorm, t_end, spikes_before + count,
                         network.fingerprint(), events, "time" if forced else None)
    by = {STATUS_COUNT: "spikes", STATUS_TIME: "t_max", STATUS_SILENT: "silent"}[status]
    meta = {"network": network.describe(), "engine": engine, "representation": bound.representation,
            "seed_ic": seed_ic if state is None else None, "seed_input": seed_input,
            "spikes_requested": spikes, "t_max": t_max,
            "stopped_by": "interrupt" if interrupted else stopped or by, "recorded": bool(record),
            "events": int(core.events)}
    if record and (rec.neurons is not None or np.isfinite(rec.t_start) or np.isfinite(rec.t_stop)):
        meta["record"] = {"neurons": None if rec.neurons is None else int(rec.neurons.size),
                          "t_start": rec.t_start if np.isfinite(rec.t_start) else None,
                          "t_stop": rec.t_stop if np.isfinite(rec.t_stop) else None}
    res = SimulationResult(times if record else None, ids if record else None, network.n, t_start,
                           t_end, count, wall, interrupted or stopped == "memory", final, meta, network=network)
    if rec is not None and rec.neurons is not None:
        res.recorded_neurons = rec.neurons
    if tape:
        res.tape = core.tape()
        res.tape_context = {"kwargs": kwargs, "events": ev, "initial_states": np.array(states, dtype=np.float64),
                            "initial_clock": clock, "initial_n_renorm": int(n_renorm), "drive": drive}
    if samples.size:
        res.sample_times = samples[:n_sampled]
        res.voltages = volts[:n_sampled]
        res.voltage_neurons = rec.voltages
    return res


def _check_tape(network, state, record):
    if not isinstance(network, Network):
        raise TypeError(f"network: expected a sparseprop.Network, got {type(network).__name__}")
    if network.model.name not in ("lif", "qif", "table"):
        raise ValueError(f"tape: the backward pass supports LIF, QIF and table-model networks (sp.LIF, sp.QIF, "
                         f"sp.TableNeuron), not the {network.model.name!r} model")
    if network.uses_mixed_engine():
        raise ValueError("tape: the backward pass needs one model and one membrane time constant tau for the "
                         "whole network, and QIF drive > 0 (per-neuron tau, mixed models and excitable QIF "
                         "neurons are simulated exactly but not differentiated yet)")
    conn = network.connectivity
    if not isinstance(conn, SparseConnectivity):
        raise ValueError("tape: gradients need explicit connectivity (SparseConnectivity or a NetworkBuilder "
                         "network), not the procedural FixedOutDegree")
    if isinstance(record, Record) and (record.neurons is not None or np.isfinite(record.t_start)
                                       or np.isfinite(record.t_stop) or record.max_spikes):
        raise ValueError("tape: record every spike (no neuron subset, time window or memory cap)")
    if record is False:
        raise ValueError("tape: needs record=True")


def _sampling_model(bound, network, ids):
    """The model bound to the sampled neurons only (their voltage conversion)."""
    return bound if ids is None else bound.subset(ids)


def _voltages_at(core, bound, sub, network, ids, t):
    """Exact voltages of neurons `ids` at time t (s), between events (`sub`: see _sampling_model)."""
    st, busy = core.sample(ids)
    clock = bound.clock_at(t / network.time_unit, core.n_renorm)
    with np.errstate(divide="ignore", invalid="ignore"):
        volts = np.asarray(sub.voltage_from_state(st, clock), dtype=np.float64)
    if np.any(busy):
        volts[busy] = np.broadcast_to(sub.voltage_reset, volts.shape)[busy]
    return volts


def _grow(arr, capacity, used):
    out = np.empty(capacity, dtype=arr.dtype)
    out[:used] = arr[:used]
    return out


def _check_can_fire(network, bound, states, clock, t_max):
    # inhibitory inputs alone into a silent network are a valid experiment when the run has a
    # duration (voltages, sampled or final, respond to them); with spikes= only it could never end
    if np.any(network.suprathreshold()) or network.has_events() or (t_max is not None and network.inputs):
        return
    # No free orbit anywhere: only a neuron already at (LIF) or past (excitable QIF) threshold could
    # start activity.
    if not np.any(bound.can_fire(states, clock)):
        raise ValueError("drive: no neuron reaches threshold on its own (LIF needs drive > 1, QIF drive > 0), "
                         "none starts at or past threshold and no excitatory input is given, so nothing can "
                         "ever fire; raise the drive or add excitatory inputs")
