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
assert LIF_PARAMS_DTYPE.itemsize == sizeof(LIFParams)
assert QIF_PARAMS_DTYPE.itemsize == sizeof(QIFParams)


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
    """Quadratic integrate-and-fire (theta) neuron: dV/dt = V**2 + I, I > 0.

    Spikes at V = +inf and resets to -inf. Phase theta with V = sqrt(I) tan(theta/2) advances at
    omega = 2 sqrt(I) per tau from -pi to pi; the PTC is g(theta, w) = 2 atan(tan(theta/2) + w/sqrt(I)).
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

    def _check_drive(self, drive):
        if np.any(np.asarray(drive) <= 0.0):
            raise ValueError("drive: the QIF model needs drive > 0 (excitable, fluctuation-driven "
                             "QIF neurons are not supported yet)")

    def phase_velocity(self, drive):
        return 2.0 * np.sqrt(np.asarray(drive, dtype=np.float64))

    def voltage_from_phase(self, phi, drive):
        return np.sqrt(drive) * np.tan(0.5 * np.asarray(phi))

    def phase_from_voltage(self, v, drive):
        return 2.0 * np.arctan(np.asarray(v) / np.sqrt(drive))

    def ptc(self, phi, w, drive):
        return 2.0 * np.arctan(np.tan(0.5 * np.asarray(phi)) + np.asarray(w) / np.sqrt(drive))

    def bind(self, drive, Py_ssize_t n):
        self._check_drive(drive)
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


MODELS = {"lif": LIF, "qif": QIF, "table": TableNeuron, "eif": _eif}

_QCOS = np.array([1.0, 0.0, -1.0, 0.0])
_QSIN = np.array([0.0, 1.0, 0.0, -1.0])
_TWO_PI = 2.0 * np.pi


def _key_from_half_angle(a):
    """Unwrapped diamond key of half-phase angles a (NumPy twin of _models.pxd's diamond_angle)."""
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
    def __init__(self, model, drive, params, representation):
        self.model = model
        self.drive = drive
        self.params = params
        self.representation = representation
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
        return 1.0 if self.kind == "lif" else 0.0

    def state_from_voltage(self, v, double clock):
        v = np.asarray(v, dtype=np.float64)
        d = self.drive
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
        if self.code == MODEL_QIF_TIME or self.code == MODEL_TABLE:
            return t_tau - n_renorm * QIF_RENORM_SHIFT
        theta = t_tau / self.qifp.tau_per_clock - n_renorm * 4.0 * np.pi
        return float(_key_from_half_angle(0.5 * theta))

    @property
    def voltage_reset(self):
        """Voltage right after a spike (what a refractory neuron reads)."""
        if self.code == MODEL_TABLE:
            return float(self.model.table.v_reset)
        return float(getattr(self.model, "v_reset", -np.inf))

    def clock_offset(self, dt_tau, name="dt_tau"):
        """What `model_advance` needs to move a clock by dt_tau (units of tau; scalar or array).

        LIF clocks are exp(t/tau): a fixed advance (delay, refractory period) is limited to
        LIF_MAX_ADVANCE = 512 tau so that it cannot overflow; longer ones are a ValueError naming
        `name`."""
        if self.code == MODEL_QIF_PHASE:
            raise ValueError("the QIF phase clock has no fixed offset; bind with representation 'time'")
        dt = np.asarray(dt_tau, dtype=np.float64)
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
