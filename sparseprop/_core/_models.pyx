from libc.math cimport exp
# Neuron models: closed-form phase maps and PTCs for users and tests (NumPy, vectorised), and the
# binding of a model to a network's drive that yields the C parameter structs of _models.pxd.
#
# Units: voltage normalised so that the LIF threshold is 1; time in units of the membrane time
# constant tau; phases as in DESIGN.md section 2 (LIF: 0 at reset, 1 at threshold; QIF: theta in
# (-pi, pi], spike at pi).
cimport cython
import numpy as np

LIF_PARAMS_DTYPE = np.dtype([("scale", "f8"), ("fire", "f8"), ("reset", "f8"), ("free", "f8")])
QIF_PARAMS_DTYPE = np.dtype([("omega", "f8"), ("inv_omega", "f8"), ("inv_sqrt_drive", "f8")])
MIXED_PARAMS_DTYPE = np.dtype([("omega", "f8"), ("inv_omega", "f8"), ("inv_sqrt_drive", "f8"), ("kind", "f8"),
                               ("rate", "f8"), ("inv_rate", "f8"), ("q", "f8"), ("fire", "f8"), ("reset", "f8"),
                               ("renorm", "f8"), ("a", "f8"), ("growth", "f8"), ("inv_growth", "f8"),
                               ("v_reset", "f8")])
# QIF with I < 0: the growth rate g = 2 sqrt(-I) tau_unit/tau_i of X = (V - a)/(V + a) is limited so that
# exp(g * clock) times the capped |X| (2**600) stays finite for clocks below 8 (QIF_X_CAP in _models.pxd)
QIF_MAX_GROWTH = 32.0
assert LIF_PARAMS_DTYPE.itemsize == sizeof(LIFParams)
assert QIF_PARAMS_DTYPE.itemsize == sizeof(QIFParams)
assert MIXED_PARAMS_DTYPE.itemsize == sizeof(MixedParams)


cdef class NeuronModel:
    """Base class of the 1-D pulse-coupled neuron models (dV/dt = F(V) + I in units of tau)."""
    name = None
    phase_threshold = None
    phase_reset = None

    def suprathreshold(self, drive):
        """Whether a neuron with this drive reaches threshold on its own (bool array)."""
        raise NotImplementedError

    def phase_velocity(self, drive):
        """Phase advance per unit tau on the free orbit."""
        raise NotImplementedError

    def period(self, drive):
        """Free period from reset to threshold, in units of tau."""
        return (self.phase_threshold - self.phase_reset) / self.phase_velocity(drive)

    def params(self):
        """Model parameters as a plain dict (for metadata and to rebuild the model)."""
        return {}

    def _check_drive(self, drive):
        pass

    def bind(self, drive, Py_ssize_t n):
        """Bind to a network of n neurons with this drive (scalar or (n,) array)."""
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.params() == other.params()

    def __reduce__(self):
        return (type(self), tuple(self.params().values()))


@cython.final
cdef class LIF(NeuronModel):
    """Leaky integrate-and-fire neuron: dV/dt = -V + I, threshold 1, reset to ``v_reset``.

    Parameters
    ----------
    v_reset : float
        Reset voltage in units of the threshold (< 1). Default 0.

    Notes
    -----
    On the free orbit (I > 1) the phase is phi = t/T in [0, 1) with period
    T = ln((I - v_reset)/(I - 1)) tau, so V(phi) = I - (I - v_reset) exp(-phi T) and the phase
    transition curve is g(phi, w) = -omega ln(exp(-phi/omega) - w/(I - v_reset)), omega = 1/T.
    A neuron with I <= 1 relaxes to V = I and fires only when inputs lift it to threshold.
    """
    name = "lif"
    phase_threshold = 1.0
    phase_reset = 0.0
    cdef readonly double v_reset

    def __init__(self, double v_reset=0.0):
        if not np.isfinite(v_reset) or v_reset >= 1.0:
            raise ValueError(f"v_reset: must be finite and below the threshold 1, got {v_reset}")
        self.v_reset = v_reset

    def params(self):
        return {"v_reset": self.v_reset}

    def suprathreshold(self, drive):
        return np.asarray(drive, dtype=np.float64) > 1.0

    def _free_period(self, drive):
        drive = np.asarray(drive, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(drive > 1.0, np.log((drive - self.v_reset) / (drive - 1.0)), np.inf)

    def phase_velocity(self, drive):
        return 1.0 / self._free_period(drive)

    def _start_below(self, u, drive):
        """Initial voltages of neurons without a free orbit, from uniforms u: in [v_reset, 1)."""
        return self.v_reset + np.asarray(u) * (1.0 - self.v_reset)

    def voltage_from_phase(self, phi, drive):
        return drive - (drive - self.v_reset) * np.exp(-np.asarray(phi) * self._free_period(drive))

    def phase_from_voltage(self, v, drive):
        return np.log((drive - self.v_reset) / (drive - np.asarray(v))) / self._free_period(drive)

    def ptc(self, phi, w, drive):
        omega = self.phase_velocity(drive)
        return -omega * np.log(np.exp(-np.asarray(phi) / omega) - np.asarray(w) / (drive - self.v_reset))

    def bind(self, drive, Py_ssize_t n):
        drive = np.asarray(drive, dtype=np.float64)
        shared = drive.ndim == 0
        d = drive.reshape(1) if shared else drive
        p = np.empty(d.shape[0], dtype=LIF_PARAMS_DTYPE)
        supra = d > 1.0
        p["scale"] = np.where(supra, 1.0 / np.where(supra, d - 1.0, 1.0), 1.0)
        p["fire"] = np.where(supra, 1.0, d - 1.0)
        p["reset"] = (d - self.v_reset) * p["scale"]
        p["free"] = supra.astype(np.float64)
        return BoundModel(self, drive, p, "phase" if shared else "time")


@cython.final
cdef class QIF(NeuronModel):
    """Quadratic integrate-and-fire (theta) neuron: dV/dt = V**2 + I.

    Spikes at V = +inf and resets to -inf. With I > 0 the phase theta with V = sqrt(I) tan(theta/2)
    advances at omega = 2 sqrt(I) per tau from -pi to pi; the PTC is
    g(theta, w) = 2 atan(tan(theta/2) + w/sqrt(I)). With I = -a**2 <= 0 the neuron is excitable: it
    rests at -a and fires only after inputs lift it above a (then V reaches +inf after
    ln((V + a)/(V - a))/(2a), or 1/V for I = 0); such networks run on the time-based mixed engine.
    """
    name = "qif"
    phase_threshold = np.pi
    phase_reset = -np.pi

    def __init__(self):
        pass

    def params(self):
        return {}

    def suprathreshold(self, drive):
        return np.asarray(drive, dtype=np.float64) > 0.0

    def _check_drive(self, drive, excitable=True):
        if not excitable and np.any(np.asarray(drive) <= 0.0):
            raise ValueError("drive: this QIF engine needs drive > 0; networks with excitable QIF neurons "
                             "(drive <= 0) run on the mixed engine (sp.Network does this)")

    def _start_below(self, u, drive):
        """Initial voltages of neurons without a free orbit, from uniforms u: between the rest
        -sqrt(-I) and the threshold sqrt(-I) (the saddle 0 for I = 0)."""
        a = np.sqrt(-np.minimum(np.asarray(drive, dtype=np.float64), 0.0))
        return a * (2.0 * np.asarray(u) - 1.0)

    def phase_velocity(self, drive):
        return 2.0 * np.sqrt(np.asarray(drive, dtype=np.float64))

    def voltage_from_phase(self, phi, drive):
        return np.sqrt(drive) * np.tan(0.5 * np.asarray(phi))

    def phase_from_voltage(self, v, drive):
        return 2.0 * np.arctan(np.asarray(v) / np.sqrt(drive))

    def ptc(self, phi, w, drive):
        return 2.0 * np.arctan(np.tan(0.5 * np.asarray(phi)) + np.asarray(w) / np.sqrt(drive))

    def bind(self, drive, Py_ssize_t n):
        self._check_drive(drive, excitable=False)
        drive = np.asarray(drive, dtype=np.float64)
        shared = drive.ndim == 0
        d = drive.reshape(1) if shared else drive
        p = np.empty(d.shape[0], dtype=QIF_PARAMS_DTYPE)
        p["omega"] = 2.0 * np.sqrt(d)
        p["inv_omega"] = 1.0 / p["omega"]
        p["inv_sqrt_drive"] = 1.0 / np.sqrt(d)
        return BoundModel(self, drive, p, "phase" if shared else "time")


FUSED_ENABLED = True   # engine fast path for a single weight (tests switch it off to compare)
_TABLE_REGISTRY = {}   # content hash -> Table, for tables built in this process (no file to reload)
_COMPILED = {}         # content hash -> CompiledTable (compiling fits the fast inverse: done once)
# The shipped seed EIF table `make_model("eif")` uses. interp, measured against chebyshev
# (benchmarks/bench_table.py): the same speed on the seed network (fused single-weight map, built
# from either), 2.5-5x faster for other weights (its inverse refits on the bits grid; the Chebyshev
# table's inverse is accurate in the backward sense only, does not pass that check and costs two
# degree-22 Clenshaw sums), and its PTC stays at ~1e-15 in phase for |w| up to 0.5 where the
# Chebyshev table's reaches 4.5e-14 (tests/test_table_engine.py).
_EIF_SEED_TABLE = "eif_seed_interp"


def table_hash(table):
    """Content hash of a table (hex, 16 digits): metadata JSON and every array (name, dtype, shape,
    bytes). Identifies a table in `params()`, `Network.fingerprint()` and `to_dict()`."""
    import hashlib
    import json

    h = hashlib.sha256()
    h.update(json.dumps(table.metadata, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(table.arrays):
        arr = np.ascontiguousarray(table.arrays[name])
        h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


@cython.final
cdef class TableNeuron(NeuronModel):
    """Neuron dV/dt = F(V) + I given by a phase table (EIF or any 1-D ODE; see sparseprop.tables).

    Parameters
    ----------
    table : sparseprop.tables.Table, or a path, or the name of a shipped table
        (``"eif_seed_interp"``, ``"eif_seed_chebyshev"``; ``sparseprop tables list``).
    table_sha256 : str, optional
        Expected content hash (``params()["table_sha256"]``): loading a different table raises.

    Notes
    -----
    Phase phi = 1 - omega T(V), T the free time to spike, omega = 1/T(v_reset): phi_reset = 0,
    phi_th = 1. The PTC is g(phi, w) = phi(V(phi) + w) from the table's fitted maps, so any weight
    (heterogeneous, trained) works; V + w >= v_spike fires at once; below the table's v_min the
    table's analytic continuation is used, and a table without one makes the run raise ValueError.
    One table describes one drive: the network's drive must equal ``table.drive`` (a heterogeneous
    drive would need one table per drive value and is not supported).

    The engine works in remaining time (state = time of the next spike); with a single synaptic
    weight w <= 0 it evaluates the fused map G_w(T) = T(V(T) + w) (one polynomial per input,
    ``compiled.fused(w)``), otherwise the two maps (``compiled.input``). Both are fitted from the
    table when it is compiled and verified against its own maps (``compiled.inverse.info``,
    ``compiled.fused(w).info``). The state of a neuron pushed past threshold at the last instant
    is "fires now": its voltage reads v_spike.
    """
    name = "table"
    phase_threshold = 1.0
    phase_reset = 0.0
    cdef readonly object table
    cdef readonly str table_ref
    cdef readonly str table_sha256
    cdef readonly CompiledTable compiled

    def __init__(self, table, table_sha256=None):
        from sparseprop.tables import Table, load_table, table_search_dirs
        from pathlib import Path

        ref = None
        if isinstance(table, Table):
            pass
        elif isinstance(table, (str, Path)):
            h = None if table_sha256 is None else str(table_sha256)
            if h is not None and h in _TABLE_REGISTRY:
                table = _TABLE_REGISTRY[h]
            else:
                table = load_table(table)
        else:
            raise TypeError(f"table: expected a sparseprop.tables.Table, a path or a table name, got "
                            f"{type(table).__name__}")
        digest = table_hash(table)
        if table_sha256 is not None and str(table_sha256) != digest:
            raise ValueError(f"table: {table.source or table.name!r} has content hash {digest}, expected "
                             f"{table_sha256} (the file changed or is another table)")
        if table.source:
            src = Path(table.source).resolve()
            shipped = any(src.parent == d.resolve() for d in table_search_dirs())
            ref = src.stem if shipped else str(src)
        else:
            ref = table.name
            _TABLE_REGISTRY[digest] = table
        self.table = table
        self.table_ref = ref
        self.table_sha256 = digest
        if digest not in _COMPILED:
            _COMPILED[digest] = CompiledTable(table)
        self.compiled = _COMPILED[digest]

    def params(self):
        return {"table": self.table_ref, "table_sha256": self.table_sha256}

    def __reduce__(self):
        return (_table_neuron, (dict(self.table.arrays), self.table.metadata, self.table.source,
                                self.table_ref, self.table_sha256))

    def __eq__(self, other):
        return isinstance(other, TableNeuron) and other.table_sha256 == self.table_sha256

    def __hash__(self):
        return hash(("table", self.table_sha256))

    @property
    def drive(self):
        """The drive I the table was made for."""
        return self.table.drive

    def _check_drive(self, drive):
        d = np.asarray(drive, dtype=np.float64)
        td = self.table.drive
        bad = ~(np.abs(d - td) <= 4.0 * np.finfo(np.float64).eps * abs(td))
        if np.any(bad):
            if d.ndim and np.unique(d).size > 1:
                raise ValueError(f"drive: a table model needs one drive for all neurons, equal to the table's "
                                 f"drive {td!r}; a heterogeneous drive would need one table per drive value "
                                 f"(not supported)")
            got = float(d.ravel()[np.flatnonzero(bad.ravel())[0]])
            raise ValueError(f"drive: {got!r} differs from the drive {td!r} the table {self.table_ref!r} was made "
                             f"for; make a table for this drive, e.g. `sparseprop tables make "
                             f"{self.table.metadata['model'].get('name', 'eif')} --drive {got!r} -o my_table.npz`, "
                             f"and use it with `--table my_table.npz` / sp.TableNeuron('my_table.npz')")

    def suprathreshold(self, drive):
        self._check_drive(drive)
        return np.ones(np.shape(drive), dtype=bool)

    def phase_velocity(self, drive):
        self._check_drive(drive)
        return np.full(np.shape(drive), self.table.omega) if np.ndim(drive) else self.table.omega

    def period(self, drive):
        self._check_drive(drive)
        return np.full(np.shape(drive), self.table.period) if np.ndim(drive) else self.table.period

    def voltage_from_phase(self, phi, drive):
        self._check_drive(drive)
        return self.table.voltage_from_phase(phi)

    def phase_from_voltage(self, v, drive):
        self._check_drive(drive)
        return self.table.phase_from_voltage(v)

    def ptc(self, phi, w, drive):
        self._check_drive(drive)
        return self.table.ptc(phi, w)

    def bind(self, drive, Py_ssize_t n):
        self._check_drive(drive)
        drive = np.asarray(drive, dtype=np.float64)
        return BoundModel(self, drive, None, "time")


def _table_neuron(arrays, metadata, source, ref, digest):
    """Unpickle a TableNeuron (rebuilds the Table from its arrays and metadata: nothing executed)."""
    from sparseprop.tables import Table

    table = _TABLE_REGISTRY.get(digest) or Table(arrays, metadata, source=source)
    return TableNeuron(table, digest)


def _eif(table=None, table_sha256=None):
    """The seed EIF (F = -V + 0.1 exp(V/0.1), reset -1, cut-off 1000) from the shipped table."""
    return TableNeuron(_EIF_SEED_TABLE if table is None else table, table_sha256)


class Mixed(NeuronModel):
    """Several neuron models in one network, assigned to contiguous blocks of neuron ids.

    Parameters
    ----------
    parts : sequence of (model, count)
        ``model`` is ``sp.LIF(...)``, ``sp.QIF()`` or a registry name (``"lif"``, ``"qif"``);
        ``count`` > 0 neurons get it, in id order: the first ``count`` ids the first model, and so on.

    Notes
    -----
    Networks with a Mixed model (or a per-neuron membrane time constant) run on the engine's
    time-based mixed representation (see ``sparseprop/_core/_models.pxd``). Table models
    (`TableNeuron`) cannot be mixed yet. Phases (``phase_reset``, ``phase_threshold``) and the
    LIF ``v_reset`` are per-neuron arrays; a QIF neuron reads ``v_reset`` as 0 (it never uses it).

    Examples
    --------
    >>> m = Mixed([(LIF(v_reset=0.5), 800), (QIF(), 200)])
    >>> m.parts[1]
    (QIF(), 800, 1000)
    """
    name = "mixed"

    def __init__(self, parts):
        if isinstance(parts, (str, NeuronModel)) or not hasattr(parts, "__iter__"):
            raise TypeError(f"parts: expected a sequence of (model, count) pairs, got {parts!r}")
        out = []
        start = 0
        for item in parts:
            try:
                model, count = item
            except (TypeError, ValueError):
                raise TypeError(f"parts: each item must be a (model, count) pair, got {item!r}") from None
            if isinstance(model, str):
                model = make_model(model)
            if isinstance(model, Mixed):
                raise TypeError("parts: a Mixed model cannot contain another Mixed model")
            if not isinstance(model, (LIF, QIF)):
                if isinstance(model, TableNeuron):
                    raise ValueError("parts: table models (TableNeuron, 'eif') cannot be mixed with other models "
                                     "yet; use one table model per network")
                raise TypeError(f"parts: expected sp.LIF(...), sp.QIF() or a model name, got {model!r}")
            if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count <= 0:
                raise ValueError(f"parts: each count must be a positive integer, got {count!r} for {model!r}")
            out.append((model, start, start + int(count)))
            start += int(count)
        if not out:
            raise ValueError("parts: a Mixed model needs at least one (model, count) pair")
        self.parts = tuple(out)
        self.n = start

    def params(self):
        return {"parts": [[m.name, m.params(), stop - start] for m, start, stop in self.parts]}

    def __reduce__(self):
        return (Mixed, ([(m, stop - start) for m, start, stop in self.parts],))

    def __repr__(self):
        return f"Mixed([{', '.join(f'({m!r}, {stop - start})' for m, start, stop in self.parts)}])"

    def _per_neuron(self, f, *arrays):
        """Concatenate f(model, *slices) over the parts (arrays broadcast to (n,))."""
        arrays = [np.broadcast_to(np.asarray(a, dtype=np.float64), (self.n,)) for a in arrays]
        return np.concatenate([np.broadcast_to(f(m, *(a[start:stop] for a in arrays)), (stop - start,))
                               for m, start, stop in self.parts])

    @property
    def phase_reset(self):
        return self._per_neuron(lambda m: m.phase_reset)

    @property
    def phase_threshold(self):
        return self._per_neuron(lambda m: m.phase_threshold)

    @property
    def v_reset(self):
        return self._per_neuron(lambda m: getattr(m, "v_reset", 0.0))

    def uniform(self):
        """The single model when every part has the same one, else None."""
        first = self.parts[0][0]
        return first if all(m == first for m, _, _ in self.parts) else None

    def _check_drive(self, drive):
        self._per_neuron(lambda m, d: m._check_drive(d) or 0.0, drive)

    def suprathreshold(self, drive):
        return self._per_neuron(lambda m, d: m.suprathreshold(d), drive).astype(bool)

    def _start_below(self, u, drive):
        return self._per_neuron(lambda m, x, d: m._start_below(x, d), u, drive)

    def phase_velocity(self, drive):
        return self._per_neuron(lambda m, d: m.phase_velocity(d), drive)

    def period(self, drive):
        return self._per_neuron(lambda m, d: m.period(d), drive)

    def voltage_from_phase(self, phi, drive):
        return self._per_neuron(lambda m, p, d: m.voltage_from_phase(p, d), phi, drive)

    def phase_from_voltage(self, v, drive):
        return self._per_neuron(lambda m, x, d: m.phase_from_voltage(x, d), v, drive)

    def ptc(self, phi, w, drive):
        return self._per_neuron(lambda m, p, x, d: m.ptc(p, x, d), phi, w, drive)

    def bind(self, drive, Py_ssize_t n):
        return bind_time(self, drive, np.ones(n))


def _mixed(parts):
    """Mixed model from `params()` (items [name, params, count]) or (model, count) pairs."""
    return Mixed([(make_model(p[0], **p[1]), p[2]) if len(p) == 3 else tuple(p) for p in parts])


def bind_time(model, drive, tau_rel):
    """Bind LIF/QIF neurons with per-neuron membrane time constants to the engine's mixed model.

    `model` is a LIF, QIF or Mixed model, `drive` scalar or (n,), `tau_rel` (n,) = tau_i / time_unit
    (>= 1: the clock unit is the smallest tau)."""
    tau_rel = np.ascontiguousarray(tau_rel, dtype=np.float64)
    n = tau_rel.shape[0]
    if isinstance(model, TableNeuron):
        raise ValueError("tau: a table model needs one membrane time constant for the whole network (a table "
                         "describes one drive and one tau); per-neuron tau works with LIF and QIF")
    parts = model.parts if isinstance(model, Mixed) else ((model, 0, n),)
    covered = parts[len(parts) - 1][2]          # (no negative indexing: wraparound is off)
    if covered != n:
        raise ValueError(f"model: the Mixed model covers {covered} neurons but the network has {n}")
    d = np.ascontiguousarray(np.broadcast_to(np.asarray(drive, dtype=np.float64), (n,)))
    model._check_drive(d)
    p = np.zeros(n, dtype=MIXED_PARAMS_DTYPE)
    p["rate"] = 1.0 / tau_rel
    p["inv_rate"] = tau_rel
    for m, start, stop in parts:
        sl = slice(start, stop)
        ds, rate = d[sl], p["rate"][sl]
        if isinstance(m, QIF):
            supra = ds > 0.0
            sq = np.sqrt(np.abs(ds))
            with np.errstate(divide="ignore"):
                p["kind"][sl] = np.where(supra, MIXED_QIF, np.where(ds < 0.0, MIXED_QIF_EXC, MIXED_QIF_ZERO))
                p["omega"][sl] = np.where(supra, 2.0 * sq * rate, np.inf)
                p["inv_omega"][sl] = np.where(supra, 1.0 / p["omega"][sl], 0.0)
                p["inv_sqrt_drive"][sl] = np.where(supra, 1.0 / sq, 0.0)
                growth = np.where(ds < 0.0, 2.0 * sq * rate, 0.0)
                p["a"][sl] = np.where(ds < 0.0, sq, 0.0)
                p["growth"][sl] = growth
                p["inv_growth"][sl] = np.where(ds < 0.0, 1.0 / growth, 0.0)
                p["renorm"][sl] = 1.0
                p["v_reset"][sl] = -np.inf
            if np.any(growth > QIF_MAX_GROWTH):
                worst = start + int(np.argmax(growth))
                raise ValueError(f"drive: QIF neuron {worst} has drive {d[worst]!r}; with its tau the engine needs "
                                 f"2 sqrt(-drive) tau_min/tau <= {QIF_MAX_GROWTH:g} (drive >= "
                                 f"{-(QIF_MAX_GROWTH / 2 * tau_rel[worst]) ** 2:g} for this neuron)")
            continue
        supra = ds > 1.0
        safe = np.where(supra, ds - 1.0, 1.0)
        p["kind"][sl] = np.where(supra, MIXED_LIF_FREE, MIXED_LIF_SUB)
        p["q"][sl] = np.where(supra, 1.0 / safe, 1.0)
        p["fire"][sl] = np.where(supra, 0.0, ds - 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            period = np.log((ds - m.v_reset) / safe) * tau_rel[sl]
        p["reset"][sl] = np.where(supra, period, ds - m.v_reset)
        p["renorm"][sl] = np.where(supra, 1.0, np.exp(-QIF_RENORM_SHIFT * rate))
        p["v_reset"][sl] = m.v_reset
    return BoundModel(model, d, p, "time", tau_rel)


MODELS = {"lif": LIF, "qif": QIF, "table": TableNeuron, "eif": _eif, "mixed": _mixed}

_QCOS = np.array([1.0, 0.0, -1.0, 0.0])
_QSIN = np.array([0.0, 1.0, 0.0, -1.0])
_TWO_PI = 2.0 * np.pi


def _key_from_half_angle(a):
    """Unwrapped diamond key of half-phase angles a (the keys of _models.pxd's QIFPhaseModel)."""
    a = np.asarray(a, dtype=np.float64)
    turns = np.floor(a / _TWO_PI)
    a0 = a - _TWO_PI * turns
    x, y = np.cos(a0), np.sin(a0)
    q = (2 * (y < 0) + ((x < 0) != (y < 0))).astype(np.intp)
    xr = _QCOS[q] * x + _QSIN[q] * y
    yr = _QCOS[q] * y - _QSIN[q] * x
    return 4.0 * turns + q + yr / (xr + yr)


def _half_angle_from_key(key):
    """Inverse of _key_from_half_angle."""
    key = np.asarray(key, dtype=np.float64)
    turns = np.floor(0.25 * key)
    p = key - 4.0 * turns
    q = np.minimum(p.astype(np.intp), 3)
    f = p - q
    x = _QCOS[q] * (1.0 - f) - _QSIN[q] * f
    y = _QSIN[q] * (1.0 - f) + _QCOS[q] * f
    return _TWO_PI * turns + np.mod(np.arctan2(y, x), _TWO_PI)


def make_model(name, **params):
    """Model instance from its registry name and parameters: ``"lif"``, ``"qif"``, ``"table"``
    (``table=`` a Table, path or shipped name) and ``"eif"`` (the shipped seed EIF table)."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"model: unknown model {name!r}; choose one of {sorted(MODELS)}") from None
    return cls(**params)


cdef class BoundModel:
    """A model bound to a drive; converts between voltages/phases and the engine's states.

    `clock` arguments are engine clocks (see _models.pxd): for LIF E = exp(t/tau) renormalised,
    for QIF the phase (shared drive) or t/tau (per-neuron drive).
    """
    def __init__(self, model, drive, params, representation, tau_rel=None):
        self.model = model
        self.drive = drive
        self.params = params
        self.representation = representation
        self.tau_rel = tau_rel
        if tau_rel is not None:
            self.code = MODEL_MIXED
            self.mix.p = <const MixedParams*><size_t>params.ctypes.data
            return
        if isinstance(model, TableNeuron):
            self.code = MODEL_TABLE
            self.compiled = (<TableNeuron>model).compiled
            self.tab.maps = self.compiled.maps
            self.tab_below = 0
            self.tab.n_below = &self.tab_below
            self.use_fused(None)
            return
        stride = 0 if params.shape[0] == 1 else 1
        if isinstance(model, LIF):
            self.code = MODEL_LIF
            self.lif.p = <const LIFParams*><size_t>params.ctypes.data
            self.lif.stride = stride
        elif representation == "time":
            self.code = MODEL_QIF_TIME
            self.qif.p = <const QIFParams*><size_t>params.ctypes.data
            self.qif.stride = stride
            self.qif.tau_per_clock = 1.0
        else:
            self.code = MODEL_QIF_PHASE
            self.qifp.inv_sqrt_drive = 1.0 / np.sqrt(float(drive))
            self.qifp.tau_per_clock = 1.0 / (2.0 * np.sqrt(float(drive)))

    @property
    def kind(self):
        return self.model.name

    def use_fused(self, weight):
        """Table model: use the fused map for `weight` (the network's single synaptic weight) when
        one can be built (weight <= 0 and the fit meets its tolerance) and FUSED_ENABLED; None
        (or any other case) keeps the two-map evaluation. Returns the map's info dict or None."""
        cdef BitsHolder holder = None
        if self.code != MODEL_TABLE:
            return None
        if weight is not None and FUSED_ENABLED:
            holder = self.compiled.fused(float(weight))
        self.fused = holder
        if holder is None:
            self.tab.fused.w = np.nan           # never equal to a weight: fast path off
            self.tab.fused.t_lo = np.inf
            self.tab.fused.t_hi = -np.inf
            return None
        self.tab.fused = holder.map
        return holder.info

    @property
    def n_below(self):
        """Table model: inputs so far that drove a neuron below the domain of a table without
        continuation (clamped; Engine.run raises when this is nonzero)."""
        return self.tab_below

    @property
    def initial_clock(self):
        """Clock value at t = 0."""
        return 1.0 if self.code == MODEL_LIF else 0.0

    def subset(self, ids):
        """The model bound to neurons `ids` only (for their voltage conversions)."""
        if self.params is None or self.params.shape[0] == 1:
            return self
        ids = np.asarray(ids)
        tau_rel = None if self.tau_rel is None else self.tau_rel[ids]
        return BoundModel(self.model, np.ascontiguousarray(np.broadcast_to(self.drive, self.params.shape)[ids]),
                          np.ascontiguousarray(self.params[ids]), self.representation, tau_rel)

    def _mixed_kinds(self):
        k = self.params["kind"]
        return k == MIXED_LIF_FREE, k == MIXED_LIF_SUB, k == MIXED_QIF, k == MIXED_QIF_EXC, k == MIXED_QIF_ZERO

    def can_fire(self, states, double clock):
        """Bool array: which neurons fire without further input (from their state at `clock`)."""
        if self.code != MODEL_MIXED:
            v = np.asarray(self.voltage_from_state(states, clock))
            return np.asarray(self.free(), dtype=bool) | (v >= 1.0)
        p, s = self.params, np.asarray(states, dtype=np.float64)
        free, sub, qif, exc, zero = self._mixed_kinds()
        with np.errstate(over="ignore", invalid="ignore"):
            x = s * np.exp(p["growth"] * clock)
            return (free | qif | (sub & (s <= p["fire"] * np.exp(p["rate"] * clock)))
                    | (exc & (x > 0.0) & (x < 1.0)) | (zero & (s + p["rate"] * clock < 0.0) & np.isfinite(s)))

    def state_from_voltage(self, v, double clock):
        v = np.asarray(v, dtype=np.float64)
        d = self.drive
        if self.code == MODEL_MIXED:
            p = self.params
            free, sub, qif, exc, zero = self._mixed_kinds()
            a = p["a"]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                y = p["q"] * (d - v) - 1.0
                x = np.where(np.isneginf(v), 1.0, (v - a) / (v + a))
                x = np.copysign(np.minimum(np.abs(x), QIF_X_CAP), x)
                return np.select(
                    [free, sub, qif, exc],
                    [np.where(y > 0.0, clock + np.log1p(np.maximum(y, 0.0)) * p["inv_rate"], clock + y),
                     (d - v) * np.exp(p["rate"] * clock),
                     clock + 2.0 * np.arctan2(np.sqrt(np.where(qif, d, 1.0)), v) * p["inv_omega"],
                     x * np.exp(-p["growth"] * clock)],
                    np.where(np.isneginf(v), 0.0, -1.0 / v) - p["rate"] * clock)      # zero: u = -1/V
        if self.code == MODEL_TABLE:
            return clock + np.asarray(self.compiled.time_to_spike(v))
        if self.kind == "lif":
            return (d - v) * self.params["scale"] * clock
        if self.code == MODEL_QIF_PHASE:
            # half of the remaining phase, atan2(sqrt(I), V), ahead of the clock's half-phase
            return _key_from_half_angle(_half_angle_from_key(clock) + np.arctan2(np.sqrt(d), v))
        # remaining phase pi - theta = 2 atan2(sqrt(I), V): exact at V = -inf (2 pi) and near +inf
        return clock + 2.0 * np.arctan2(np.sqrt(d), v) * self.params["inv_omega"]

    def state_from_phase(self, phi, double clock):
        phi = np.asarray(phi, dtype=np.float64)
        if self.code == MODEL_MIXED:
            # remaining time to threshold: (1 - phi) periods (LIF), (pi - phi)/omega (QIF); no phase
            # without a free orbit
            p = self.params
            free, sub, qif, exc, zero = self._mixed_kinds()
            s = np.where(qif, clock + (np.pi - phi) * p["inv_omega"], clock + (1.0 - phi) * p["reset"])
            return np.where(free | qif, s, np.nan)
        if self.code == MODEL_TABLE:
            return clock + (1.0 - phi) * self.compiled.period     # phi = 0: one period (= reset)
        if self.kind == "lif":
            return self.params["reset"] * np.exp(-phi * self.model._free_period(self.drive)) * clock
        if self.code == MODEL_QIF_PHASE:
            return _key_from_half_angle(_half_angle_from_key(clock) + 0.5 * (np.pi - phi))
        return clock + (np.pi - phi) * self.params["inv_omega"]

    def voltage_from_state(self, s, double clock):
        s = np.asarray(s, dtype=np.float64)
        d = self.drive
        if self.code == MODEL_MIXED:
            p = self.params
            free, sub, qif, exc, zero = self._mixed_kinds()
            r = s - clock
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                x = s * np.exp(p["growth"] * clock)
                u = s + p["rate"] * clock
                return np.select(
                    [free, sub, qif, exc],
                    [d - (1.0 + np.where(r > 0.0, np.expm1(p["rate"] * np.maximum(r, 0.0)), r)) / p["q"],
                     d - s * np.exp(-p["rate"] * clock),
                     np.sqrt(np.where(qif, d, 1.0)) / np.tan(0.5 * p["omega"] * r),
                     np.where(x == 1.0, -np.inf, p["a"] * (1.0 + x) / (1.0 - x))],
                    np.where(u == 0.0, -np.inf, -1.0 / u))
        if self.code == MODEL_TABLE:
            return np.asarray(self.compiled.voltage_from_time(np.maximum(s - clock, 0.0)))
        if self.kind == "lif":
            return d - s / (self.params["scale"] * clock)
        if self.code == MODEL_QIF_PHASE:
            with np.errstate(divide="ignore"):
                return np.sqrt(d) / np.tan(_half_angle_from_key(s) - _half_angle_from_key(clock))
        r = self.params["omega"] * (s - clock)
        with np.errstate(divide="ignore"):
            return np.sqrt(d) / np.tan(0.5 * r)

    def clock_at(self, double t_tau, long long n_renorm):
        """Engine clock at time t_tau (units of tau) in the renormalisation epoch n_renorm."""
        if self.code == MODEL_LIF:
            return exp(t_tau - n_renorm * LIF_RENORM_LOG)       # libm exp, as the engine's model_clock_at
        if self.code == MODEL_QIF_TIME or self.code == MODEL_TABLE or self.code == MODEL_MIXED:
            return t_tau - n_renorm * QIF_RENORM_SHIFT
        theta = t_tau / self.qifp.tau_per_clock - n_renorm * 4.0 * np.pi
        return float(_key_from_half_angle(0.5 * theta))

    @property
    def voltage_reset(self):
        """Voltage right after a spike (what a refractory neuron reads)."""
        if self.code == MODEL_TABLE:
            return float(self.model.table.v_reset)
        if self.code == MODEL_MIXED:
            return self.params["v_reset"].copy()
        return float(getattr(self.model, "v_reset", -np.inf))

    def clock_offset(self, dt_tau, name="dt_tau"):
        """What `model_advance` needs to move a clock by dt_tau (units of tau; scalar or array).

        LIF clocks are exp(t/tau): a fixed advance (delay, refractory period) is limited to
        LIF_MAX_ADVANCE = 512 tau so that it cannot overflow; longer ones are a ValueError naming
        `name`."""
        if self.code == MODEL_QIF_PHASE:
            raise ValueError("the QIF phase clock has no fixed offset; bind with representation 'time'")
        dt = np.asarray(dt_tau, dtype=np.float64)
        if self.code == MODEL_MIXED:
            # subthreshold LIF states are (I - V) exp(t/tau_i): a refractory end (where the reset
            # state is computed) must stay within LIF_MAX_ADVANCE of that neuron's tau
            # states in exponential form are computed at a refractory end, up to 8 + dt clock units
            # ahead: subthreshold LIF (I - V) exp(rate c) within LIF_MAX_ADVANCE of its tau, excitable
            # QIF exp(-g c) above the smallest double
            if name == "refractory":
                k = self.params["kind"]
                own = np.broadcast_to(dt, k.shape) * self.params["rate"]
                lif = (k == MIXED_LIF_FREE) | (k == MIXED_LIF_SUB)
                if np.any(own[lif] > LIF_MAX_ADVANCE):
                    raise ValueError(f"{name}: {float(np.max(own[lif])):g} tau of a LIF neuron is longer than "
                                     f"the engine's limit of {LIF_MAX_ADVANCE:g} membrane time constants; use "
                                     "shorter periods or a longer membrane time constant")
                g = self.params["growth"] * (8.0 + np.broadcast_to(dt, k.shape))
                if np.any(g > 700.0):
                    raise ValueError(f"{name}: too long for an excitable QIF neuron (drive < 0): 2 sqrt(-I) "
                                     "(8 tau_min + refractory)/tau must stay below 700")
            return dt
        if self.code != MODEL_LIF:
            return dt
        if np.any(dt > LIF_MAX_ADVANCE):
            raise ValueError(f"{name}: {float(np.max(dt)):g} tau is longer than the LIF engine's limit of "
                             f"{LIF_MAX_ADVANCE:g} tau (its clock exp(t/tau) would overflow); use shorter "
                             "periods or a longer membrane time constant")
        return np.exp(dt)

    def free(self):
        """Boolean array (or scalar): which neurons reach threshold on their own."""
        return self.model.suprathreshold(self.drive)
