"""`simulate`: compile a network description for the core, run it exactly, collect the result."""
import math
import time

import numpy as np

from sparseprop import _validate as v
from sparseprop._core._engine import Engine, Status

STATUS_COUNT, STATUS_TIME, STATUS_SILENT = (int(Status.STATUS_COUNT), int(Status.STATUS_TIME),
                                            int(Status.STATUS_SILENT))
from sparseprop._progress import Progress
from sparseprop.network import FixedOutDegree, Network
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
        if np.any(np.isnan(volts)) or (m.name == "lif" and not np.all(np.isfinite(volts))):
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
    # (the map from phases is evaluated on the suprathreshold ones only).
    v_low = getattr(m, "v_reset", 0.0)
    states = bound.state_from_voltage(v_low + u * (1.0 - v_low), bound.initial_clock)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        from_phase = bound.state_from_phase(np.where(supra, phases, m.phase_reset), bound.initial_clock)
    return np.where(supra, from_phase, states)


def _engine_kwargs(conn):
    if isinstance(conn, FixedOutDegree):
        return {"k": conn.k, "weight": conn.weight, "seed": conn.seed}
    return {"indptr": conn.indptr, "indices": conn.indices, "weights": conn.weights}


def simulate(network, spikes=None, t_max=None, *, seed_ic=1, initial_phases=None,
             initial_voltages=None, state=None, engine="heap", record=True, progress=None):
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
    initial_phases, initial_voltages : array (n,), optional
        Explicit initial condition instead of the random one.
    state : NetworkState, optional
        ``result.final_state`` of an earlier run on the same network: continues it exactly
        (bit for bit the same as one long run).
    engine : {"heap", "dense"}
        ``"heap"``: SparseProp, O(K log N) per spike. ``"dense"``: the conventional event-driven
        algorithm, O(N) per spike (scans every neuron), same spike sequence; for validation and
        speed comparisons.
    record : bool
        Keep spike times and ids (False: only count them, e.g. for benchmarks).
    progress : bool or None
        Progress bar on stderr; None shows it when stderr is a terminal and the run is long.

    Returns
    -------
    SimulationResult
        Spike times (s) and neuron ids, statistics, plots, the final state. Ctrl-C stops the run
        cleanly and returns what was simulated (``result.interrupted``).
    """
    if not isinstance(network, Network):
        raise TypeError(f"network: expected a sparseprop.Network, got {type(network).__name__}")
    if spikes is None and t_max is None:
        raise ValueError("spikes, t_max: give at least one stopping condition")
    if spikes is not None:
        spikes = v.integer("spikes", spikes, minimum=1)
    if t_max is not None:
        t_max = v.real("t_max", t_max, positive=True)
    v.choice("engine", engine, {"heap", "dense"})
    bound = network.model.bind(network.drive, network.n)

    if state is not None:
        if not isinstance(state, NetworkState):
            raise TypeError("state: expected the final_state of an earlier SimulationResult")
        if state.fingerprint != network.fingerprint():
            raise ValueError("state: it belongs to a different network (model, drive, tau or connectivity differ)")
        if initial_phases is not None or initial_voltages is not None:
            raise ValueError("state: cannot be combined with initial_phases/initial_voltages")
        states, clock, n_renorm, t_start = state.states, state.clock, state.n_renorm, state.t
        spikes_before = state.n_spikes
    else:
        states = _initial_states(network, bound, seed_ic, initial_phases, initial_voltages)
        clock, n_renorm, t_start, spikes_before = bound.initial_clock, 0, 0.0, 0
        _check_can_fire(network, bound, states, clock)
    if t_max is not None and t_max <= t_start:
        raise ValueError(f"t_max: must be after the start of this run ({t_start} s), got {t_max}")

    core = Engine(bound, states, clock, n_renorm, engine, **_engine_kwargs(network.connectivity))
    t_stop = math.inf if t_max is None else t_max
    capacity = spikes if spikes is not None else 1 << 16
    times = np.empty(capacity if record else 0, dtype=np.float64)
    ids = np.empty(capacity if record else 0, dtype=np.int32)
    total = spikes if spikes is not None else None
    bar = Progress(total if total else t_max, "spikes" if total else "s", enabled=progress)

    count, chunk, status, interrupted = 0, 1024, STATUS_COUNT, False
    wall0 = time.perf_counter()
    try:
        while True:
            want = chunk if spikes is None else min(chunk, spikes - count)
            if want <= 0:
                break
            if record and count + want > times.shape[0]:
                capacity = max(2 * times.shape[0], count + want)
                times = _grow(times, capacity, count)
                ids = _grow(ids, capacity, count)
            c0 = time.perf_counter()
            done, status = core.run(times, ids, count, want, t_stop, network.tau, record)
            count += done
            dt = time.perf_counter() - c0
            if status != STATUS_COUNT:
                break
            chunk = int(min(max(chunk * min(_TARGET_CHUNK_S / max(dt, 1e-6), 4.0), 256), 1 << 24))
            if total:
                bar.update(count)
            else:
                bar.update(core.elapsed(core.clock, core.n_renorm) * network.tau, f"{count} spikes")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    wall = time.perf_counter() - wall0

    t_last = core.elapsed(core.clock, core.n_renorm) * network.tau if count else t_start
    t_end = t_max if status == STATUS_TIME else t_last
    if record:
        times = times[:count] if count == times.shape[0] else times[:count].copy()
        ids = ids[:count] if count == ids.shape[0] else ids[:count].copy()
    # The engine clock stays at the last event (that is what makes continuation bit-exact); the
    # state's time is the end of the simulated window.
    final = NetworkState(core.states(), core.clock, core.n_renorm, t_end, spikes_before + count,
                         network.fingerprint())
    meta = {"network": network.describe(), "engine": engine, "representation": bound.representation,
            "seed_ic": seed_ic if state is None else None, "spikes_requested": spikes, "t_max": t_max,
            "stopped_by": {STATUS_COUNT: "spikes", STATUS_TIME: "t_max", STATUS_SILENT: "silent"}[status]
            if not interrupted else "interrupt", "recorded": bool(record)}
    return SimulationResult(times if record else None, ids if record else None, network.n, t_start,
                            t_end, count, wall, interrupted, final, meta, network=network)


def _grow(arr, capacity, used):
    out = np.empty(capacity, dtype=arr.dtype)
    out[:used] = arr[:used]
    return out


def _check_can_fire(network, bound, states, clock):
    if np.any(network.suprathreshold()):
        return
    # No free orbit anywhere: only a neuron already at threshold could start activity.
    if not np.any(bound.voltage_from_state(states, clock) >= 1.0):
        raise ValueError("drive: no neuron reaches threshold on its own (LIF needs drive > 1) and none "
                         "starts at threshold, so nothing can ever fire; raise the drive")
