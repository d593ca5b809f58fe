"""Sweeps and ensembles of independent runs on local processes or a Dask cluster.

One event-driven simulation is serial, so sparseprop scales out by running many of them: parameter
grids, seed ensembles and uncertainty-quantification designs (:mod:`sparseprop.uq`). This module is
the runner. It does not schedule anything itself: it hands runs to
:class:`concurrent.futures.ProcessPoolExecutor` (``backend="local"``, the default) or to Dask
(``backend="dask"``: a ``LocalCluster`` started for the sweep, or an existing cluster given by its
scheduler address), and collects one row of summary statistics per run.

Data layout and invariants
--------------------------
* A run is ``(run, point, replicate, seed, params)``: ``params`` is a plain dict (numbers, strings,
  lists) and is what the run function receives, with ``params["seed"] = seed`` added. Runs are
  numbered point-major: ``run = point * n_replicates + replicate``.
* Seeds come from the sweep description only, never from worker state:
  ``seed = SeedSequence(base_seed, spawn_key=(replicate,))`` (the ``replicate``-th child of
  ``SeedSequence(base_seed).spawn``), reduced to a ``uint32``. With ``common_seeds=True`` (default)
  replicate ``r`` uses the same seed at every point (common random numbers: smoother response
  surfaces); with ``False`` the key is ``(point, replicate)``. Hence a sweep gives the same numbers
  bit for bit whatever the backend and the number of workers (wall times aside).
* Each finished run is appended at once, as one JSON line, to ``OUT/runs.jsonl``, whose first line
  holds the sweep's spec hash (SHA-256 of the run function's name and every run's point, replicate
  and seed). A rerun with the same spec and output directory resumes: finished runs are read back
  and not recomputed; a different spec is refused with :class:`SpecMismatchError`. At the end (and
  on interruption) ``OUT/results.csv`` and ``OUT/meta.json`` are (re)written from the records.
* A run whose function raises is recorded with ``status="failed"`` and ``error="Type: message"``
  (NaN statistics); a run whose worker process dies is rerun alone and, if it kills its worker again,
  recorded as failed. The sweep goes on in both cases.

The network run function (:func:`simulate_network`, :func:`network_statistics`, preset ``"network"``)
imports :mod:`sparseprop` lazily, so the runner itself works without the compiled core.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import csv
import datetime as _dt
import hashlib
import importlib
import itertools
import json
import math
import numbers
import os
import pickle
import platform
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SpecError",
    "SpecMismatchError",
    "SweepResult",
    "grid",
    "run_seed",
    "run_sweep",
    "network_sweep",
    "simulate_network",
    "network_statistics",
    "spike_statistics",
    "validate_network_params",
    "ishigami",
    "load_spec",
    "run_spec",
    "load_sweep",
    "write_csv",
    "main",
    "add_subcommand",
    "run_cli",
]

FORMAT = "sparseprop-sweep"
FORMAT_VERSION = 1
RESERVED_COLUMNS = ("run", "point", "replicate", "seed", "wall_s", "cpu_s", "status", "error")
BACKENDS = ("local", "dask", "serial")
_WORKER_DIED = (
    "WorkerDied: the worker process died while running this point "
    "(killed, crashed, out of memory or os._exit); rerun alone, it died again"
)


class SpecError(ValueError):
    """A sweep description (Python arguments or a TOML spec) is invalid."""


class SpecMismatchError(SpecError):
    """The output directory holds a sweep with a different spec hash."""


# --------------------------------------------------------------------------------------------------
# Run functions: references, presets, execution in the worker
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pickled:
    """A callable serialised by value (cloudpickle) because plain pickle cannot ship it."""

    data: bytes
    name: str


def _preset_table() -> dict[str, tuple[Callable, Callable | None]]:
    return {
        "network": (simulate_network, network_statistics),
        "ishigami": (ishigami, None),
    }


PRESETS = ("network", "ishigami")


def _callable_name(obj: Any) -> str:
    """A stable, human-readable name of a run/summary/statistic function (enters the spec hash)."""
    if obj is None:
        return ""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, _Pickled):
        return obj.name
    func = getattr(obj, "func", None)  # functools.partial
    if func is not None and hasattr(obj, "args"):
        return (f"partial({_callable_name(func)}, args={_canonical(list(obj.args))}, "
                f"kwargs={_canonical(dict(obj.keywords or {}))})")
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    if mod and qual:
        return f"{mod}:{qual}"
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def _import_ref(ref: str) -> Callable:
    if ref in PRESETS:
        return _preset_table()[ref][0]
    if ":" not in ref:
        raise SpecError(
            f"function reference {ref!r} is not 'module:function' (nor a preset: {', '.join(PRESETS)})")
    mod_name, _, qual = ref.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as exc:
        raise SpecError(f"cannot import module {mod_name!r} of {ref!r}: {exc}") from exc
    for part in qual.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SpecError(f"module {mod_name!r} has no attribute {qual!r} (from {ref!r})") from None
    if not callable(obj):
        raise SpecError(f"{ref!r} is not callable")
    return obj


_RESOLVED: dict[Any, Callable] = {}


def _resolve(ref: Any) -> Callable:
    """Turn a shipped reference (string, _Pickled or callable) into a callable, cached per process."""
    if callable(ref) and not isinstance(ref, _Pickled):
        return ref
    key = ref.data if isinstance(ref, _Pickled) else ref
    fn = _RESOLVED.get(key)
    if fn is None:
        if isinstance(ref, _Pickled):
            import cloudpickle

            fn = cloudpickle.loads(ref.data)
        else:
            fn = _import_ref(ref)
        _RESOLVED[key] = fn
    return fn


def _pack(obj: Any, what: str) -> Any:
    """Make a run/summary/statistic function shippable to worker processes."""
    if obj is None or isinstance(obj, str):
        if isinstance(obj, str):
            _resolve(obj)  # fail early, in the parent, on a bad reference
        return obj
    if not callable(obj):
        raise SpecError(f"{what} must be a callable or a 'module:function' string, got {type(obj).__name__}")
    try:
        pickle.dumps(obj)
        return obj
    except Exception as exc:  # lambdas, closures, local functions
        try:
            import cloudpickle
        except ImportError:
            raise SpecError(
                f"{what} {_callable_name(obj)} cannot be pickled ({exc}); define it at module level "
                "and pass it or its 'module:function' name (or install cloudpickle)") from exc
        return _Pickled(cloudpickle.dumps(obj), _callable_name(obj))


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (numbers.Number, str, np.generic)) or v is None or (
        isinstance(v, np.ndarray) and v.ndim == 0)


def _to_scalar(v: Any, name: str) -> Any:
    if isinstance(v, np.ndarray):
        if v.ndim != 0:
            raise TypeError(f"statistic {name!r} is an array of shape {v.shape}; statistics must be scalars")
        v = v[()]
    if isinstance(v, np.generic):
        v = v.item()
    if v is None:
        return math.nan
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, str):
        return v
    raise TypeError(f"statistic {name!r} is a {type(v).__name__}; statistics must be numbers or strings")


def _add_stats(stats: dict, new: Mapping, origin: str) -> None:
    for key, value in new.items():
        key = str(key)
        if key in RESERVED_COLUMNS:
            raise ValueError(f"{origin} returned statistic {key!r}, a reserved column name "
                             f"({', '.join(RESERVED_COLUMNS)}); rename it")
        if key in stats:
            raise ValueError(f"{origin} returned statistic {key!r}, which is already set; rename it")
        stats[key] = _to_scalar(value, key)


def _execute(task: tuple) -> dict:
    """Run one point in a worker. Returns the record; never raises for a failing run function."""
    run, fn, summary, extras, params = task
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        raw = _resolve(fn)(dict(params))
        stats: dict[str, Any] = {}
        if summary is not None:
            _add_stats(stats, _resolve(summary)(raw, params), "the summary function")
        elif isinstance(raw, Mapping):
            _add_stats(stats, raw, "the run function")
        elif _is_scalar(raw):
            _add_stats(stats, {"value": raw}, "the run function")
        else:
            raise TypeError(
                f"the run function returned a {type(raw).__name__}; return a dict of scalar statistics "
                "or give a summary function")
        for name, ext in extras:
            value = _resolve(ext)(raw)
            if isinstance(value, Mapping):
                _add_stats(stats, value, f"statistic function {name}")
            else:
                _add_stats(stats, {name: value}, f"statistic function {name}")
        return {"run": run, "status": "ok", "error": "", "wall_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0, "stats": stats}
    except (Exception, SystemExit) as exc:
        return {
            "run": run,
            "status": "failed",
            "error": _error_string(exc),
            "traceback": traceback.format_exc(limit=-8),
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
            "stats": {},
        }


def _error_string(exc: BaseException) -> str:
    msg = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _failure(task: tuple, error: str) -> dict:
    return {"run": task[0], "status": "failed", "error": error, "wall_s": math.nan, "cpu_s": math.nan,
            "stats": {}}


# --------------------------------------------------------------------------------------------------
# Seeds, grids, hashing
# --------------------------------------------------------------------------------------------------


def run_seed(base_seed: int, point: int, replicate: int, common: bool = True) -> int:
    """Seed of one run, a function of the sweep description only.

    ``SeedSequence(base_seed, spawn_key=key).generate_state(1, uint32)`` with ``key = (replicate,)``
    (common random numbers across points) or ``(point, replicate)``; ``SeedSequence(base_seed,
    spawn_key=(r,))`` is the ``r``-th child of ``SeedSequence(base_seed).spawn``.
    """
    key = (int(replicate),) if common else (int(point), int(replicate))
    return int(np.random.SeedSequence(int(base_seed), spawn_key=key).generate_state(1, np.uint32)[0])


def grid(base: Mapping | None = None, **axes: Sequence) -> list[dict]:
    """Cartesian product of parameter lists merged into ``base``; the last axis varies fastest.

    >>> grid({"n": 100}, j0=[1, 2], k=[10, 20])[1]
    {'n': 100, 'j0': 1, 'k': 20}
    """
    base = dict(base or {})
    names = list(axes)
    for name in names:
        values = axes[name]
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise SpecError(f"grid axis {name!r} must be a list of values, got {type(values).__name__}")
        axes[name] = list(values)
        if not axes[name]:
            raise SpecError(f"grid axis {name!r} is empty; give at least one value")
        if name in base:
            raise SpecError(f"parameter {name!r} is both fixed and a grid axis; keep one")
    return [{**base, **dict(zip(names, combo))} for combo in itertools.product(*(axes[n] for n in names))]


def _canonical(obj: Any) -> Any:
    """JSON-able canonical form used for the spec hash and the records."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": str(obj.dtype), "data": _canonical(obj.tolist())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return _callable_name(obj) if callable(obj) else repr(obj)


def _json_record(obj: Any) -> Any:
    """Like _canonical but NaN becomes null (restored to NaN on reading)."""
    if isinstance(obj, Mapping):
        return {str(k): _json_record(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_record(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, np.ndarray):
        return _json_record(obj.tolist())
    if isinstance(obj, np.generic):
        return _json_record(obj.item())
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def _spec_hash(fn_name: str, summary_name: str, extra_names: list[str], runs: list[tuple]) -> str:
    h = hashlib.sha256()
    head = {"format": FORMAT, "version": FORMAT_VERSION, "fn": fn_name, "summary": summary_name,
            "extra": extra_names}
    h.update(json.dumps(head, sort_keys=True).encode())
    for run, point, rep, seed, params in runs:
        h.update(b"\n")
        h.update(json.dumps([run, point, rep, seed, _canonical(params)], sort_keys=True).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Results: records -> structured array, CSV, storage
# --------------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """Outcome of a sweep.

    Attributes
    ----------
    table : numpy structured array (or pandas DataFrame with ``as_frame=True``)
        One row per run, sorted by ``run``: ``run, point, replicate, seed``, the scalar parameters,
        the statistics, ``wall_s`` and ``cpu_s`` (wall and CPU seconds of the run in its worker; CPU
        well below wall means the worker waited for a core), ``status`` (``"ok"``/``"failed"``) and
        ``error``. Statistics of failed runs are NaN.
    records : list of dict
        The raw per-run records (as in ``runs.jsonl``), sorted by run.
    """

    table: Any
    records: list[dict]
    spec_hash: str
    n_runs: int
    n_failed: int
    n_resumed: int
    wall_s: float
    backend: str
    workers: int
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def n_ok(self) -> int:
        return self.n_runs - self.n_failed

    def summary(self) -> dict:
        """Plain dict for ``--json`` output."""
        return {"runs": self.n_runs, "ok": self.n_ok, "failed": self.n_failed,
                "resumed": self.n_resumed, "computed": self.n_runs - self.n_resumed,
                "wall_s": round(self.wall_s, 6), "backend": self.backend, "workers": self.workers,
                "spec_hash": self.spec_hash, **self.paths}


def _column_kind(values: list) -> str:
    present = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    if any(isinstance(v, str) for v in present):
        return "str"
    if len(present) == len(values) and present and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in present):
        return "int"
    if all(isinstance(v, bool) for v in present) and present and len(present) == len(values):
        return "bool"
    return "float"


def _records_to_table(records: list[dict]) -> np.ndarray:
    """Structured array from run records (see :class:`SweepResult`)."""
    records = sorted(records, key=lambda r: r["run"])
    param_names: list[str] = []
    stat_names: list[str] = []
    seen_p: set = set()
    seen_s: set = set()
    for rec in records:
        for k, v in rec.get("params", {}).items():
            if k not in seen_p and k != "seed" and _is_scalar(v) and k not in RESERVED_COLUMNS:
                seen_p.add(k)
                param_names.append(k)
        for k in rec.get("stats", {}):
            if k not in seen_s:
                seen_s.add(k)
                stat_names.append(k)
    dup = set(param_names) & set(stat_names)
    stat_cols = [(f"stat_{s}" if s in dup else s, s) for s in stat_names]

    def param_value(rec, k):
        v = rec.get("params", {}).get(k, math.nan)
        return math.nan if v is None else (v.item() if isinstance(v, np.generic) else v)

    cols: list[tuple[str, list]] = [
        ("run", [r["run"] for r in records]),
        ("point", [r.get("point", -1) for r in records]),
        ("replicate", [r.get("replicate", -1) for r in records]),
        ("seed", [r.get("seed", -1) for r in records]),
    ]
    cols += [(k, [param_value(r, k) for r in records]) for k in param_names]
    for col, s in stat_cols:
        vals = []
        for r in records:
            v = r.get("stats", {}).get(s, math.nan)
            vals.append(math.nan if v is None else v)
        cols.append((col, vals))
    for col in ("wall_s", "cpu_s"):
        cols.append((col, [math.nan if r.get(col) is None else float(r[col]) for r in records]))
    cols.append(("status", [r["status"] for r in records]))
    cols.append(("error", [r.get("error", "") for r in records]))

    dtype = []
    converted = []
    for name, vals in cols:
        kind = "float" if name in ("wall_s", "cpu_s") else _column_kind(vals)
        if kind == "str":
            vals = ["" if (isinstance(v, float) and math.isnan(v)) else str(v) for v in vals]
            dt = f"<U{max([1] + [len(v) for v in vals])}"
        elif kind == "int":
            dt = np.int64
        elif kind == "bool":
            dt = np.bool_
        else:
            dt = np.float64
            vals = [float(v) for v in vals]
        dtype.append((name, dt))
        converted.append(vals)
    table = np.empty(len(records), dtype=dtype)
    for (name, _), vals in zip(dtype, converted):
        table[name] = vals
    return table


def _fmt_csv(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))  # shortest round-trip repr: CSV values read back bit for bit
    if isinstance(v, np.generic):
        return str(v.item())
    return str(v)


def write_csv(table: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a structured array as CSV (header + one line per row, floats round-trip exactly)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(table.dtype.names)
        for row in table:
            w.writerow([_fmt_csv(v) for v in row.tolist()])
    os.replace(tmp, path)
    return path


def _to_frame(table: np.ndarray):
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("as_frame=True needs pandas (pip install pandas)") from exc
    return pd.DataFrame.from_records(table)


class _Store:
    """``OUT/runs.jsonl`` (incremental), ``OUT/results.csv`` and ``OUT/meta.json``."""

    def __init__(self, out: str | os.PathLike, spec_hash: str, resume: bool):
        self.dir = Path(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.dir / "runs.jsonl"
        self.csv = self.dir / "results.csv"
        self.meta = self.dir / "meta.json"
        self.spec_hash = spec_hash
        self.previous: dict[int, dict] = {}
        if self.jsonl.exists() and resume:
            self.previous = self._load()
        else:
            for p in (self.csv,):
                if p.exists():
                    p.unlink()
            with open(self.jsonl, "w", encoding="utf-8") as fh:
                fh.write(self._header() + "\n")
        self._fh = open(self.jsonl, "a", encoding="utf-8")

    def _header(self) -> str:
        return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "spec_hash": self.spec_hash,
                           "created": _now()})

    def _load(self) -> dict[int, dict]:
        raw = self.jsonl.read_bytes()
        if raw and not raw.endswith(b"\n"):
            # interrupted in the middle of a line: drop the partial record
            cut = raw.rfind(b"\n") + 1
            raw = raw[:cut]
            with open(self.jsonl, "r+b") as fh:
                fh.truncate(cut)
        lines = raw.decode("utf-8").splitlines()
        header = None
        if lines:
            try:
                header = json.loads(lines[0])
            except json.JSONDecodeError:
                header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            if not lines:
                with open(self.jsonl, "w", encoding="utf-8") as fh:
                    fh.write(self._header() + "\n")
                return {}
            raise SpecMismatchError(
                f"{self.jsonl} is not a sparseprop sweep log; choose another output directory")
        old = header.get("spec_hash", "")
        if old != self.spec_hash:
            raise SpecMismatchError(
                f"output directory {self.dir} holds a different sweep (spec hash {old[:12]} there, "
                f"{self.spec_hash[:12]} now): the run function, parameters or seeds changed. Use another "
                "output directory, or start over with resume=False (CLI: --no-resume), which "
                "overwrites it")
        records: dict[int, dict] = {}
        for line in lines[1:]:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "run" in rec and "status" in rec:
                rec["stats"] = {k: (math.nan if v is None else v) for k, v in rec.get("stats", {}).items()}
                records[int(rec["run"])] = rec
        return records

    def append(self, record: dict) -> None:
        self._fh.write(json.dumps(_json_record(record), allow_nan=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def write_meta(self, meta: dict) -> None:
        tmp = self.meta.with_name("meta.json.tmp")
        tmp.write_text(json.dumps(_json_record(meta), indent=1, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.meta)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def load_sweep(out: str | os.PathLike, as_frame: bool = False):
    """Read the table of a (finished or interrupted) sweep from ``OUT/runs.jsonl``."""
    path = Path(out) / "runs.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    records = {}
    for line in lines[1:]:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        rec["stats"] = {k: (math.nan if v is None else v) for k, v in rec.get("stats", {}).items()}
        records[int(rec["run"])] = rec
    table = _records_to_table(list(records.values()))
    return _to_frame(table) if as_frame else table


# --------------------------------------------------------------------------------------------------
# Progress bar (stderr)
# --------------------------------------------------------------------------------------------------


class _Progress:
    """Run counter in front of the shared progress bar (sparseprop/_progress.py)."""

    def __init__(self, total: int, done: int, failed: int, enabled: bool, stream=None):
        self.done, self.failed = done, failed
        self.bar = None
        if enabled and total > 0:
            from sparseprop._progress import Progress   # lazy: the runner also works without the core

            self.bar = Progress(total, "runs", enabled=True, delay=0.0, stream=stream, label="sweep")
            self.bar.update(done, f"failed {failed}", force=True)

    def update(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        if self.bar is not None:
            self.bar.update(self.done, f"failed {self.failed}", force=self.done == self.bar.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------


def _run_serial(tasks: list[tuple], on_record: Callable[[dict], None]) -> int:
    for task in tasks:
        on_record(_execute(task))
    return 1


def _run_local(tasks: list[tuple], workers: int, on_record: Callable[[dict], None]) -> int:
    """ProcessPoolExecutor with bounded in-flight work; a dead worker breaks the pool, so the runs in
    flight are rerun one at a time on a fresh pool to find (and record) the one that kills it."""
    from concurrent.futures.process import BrokenProcessPool

    max_inflight = 2 * workers
    pending = collections.deque(tasks)
    suspects: collections.deque = collections.deque()
    inflight: dict[cf.Future, tuple[tuple, bool]] = {}
    pool = cf.ProcessPoolExecutor(max_workers=workers)
    try:
        while pending or suspects or inflight:
            if suspects:
                if not inflight:
                    task = suspects.popleft()
                    inflight[pool.submit(_execute, task)] = (task, True)
            else:
                while pending and len(inflight) < max_inflight:
                    task = pending.popleft()
                    inflight[pool.submit(_execute, task)] = (task, False)
            done, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
            broken = False
            for fut in done:
                task, isolated = inflight.pop(fut)
                try:
                    rec = fut.result()
                except BrokenProcessPool:
                    broken = True
                    if isolated:
                        on_record(_failure(task, _WORKER_DIED))
                    else:
                        suspects.append(task)
                    continue
                except (Exception, SystemExit) as exc:  # e.g. a result that does not unpickle
                    rec = _failure(task, _error_string(exc))
                on_record(rec)
            if broken:
                # the broken pool's manager fails every future it still holds, then exits: wait for
                # it, so that the futures still in flight are all settled, and sort them out
                pool.shutdown(wait=True)
                for fut in list(inflight):
                    task, isolated = inflight.pop(fut)
                    if not fut.done():  # not expected after shutdown(wait=True); rerun it
                        suspects.append(task)
                        continue
                    exc = None if fut.cancelled() else fut.exception()
                    if fut.cancelled() or isinstance(exc, BrokenProcessPool):
                        if isolated:
                            on_record(_failure(task, _WORKER_DIED))
                        else:
                            suspects.append(task)
                    elif exc is None:
                        on_record(fut.result())
                    else:
                        on_record(_failure(task, _error_string(exc)))
                pool = cf.ProcessPoolExecutor(max_workers=workers)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return workers


def _run_dask(tasks: list[tuple], workers: int | None, scheduler: str | None,
              on_record: Callable[[dict], None]) -> int:
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ImportError('backend="dask" needs dask.distributed: pip install "dask[distributed]" '
                          "(or the sparseprop-snn[sweep] extra)") from exc
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        n = workers or os.cpu_count() or 1
        # one run per single-threaded worker at a time (saturation 1.0), so a run that kills its
        # worker takes no bystander with it; it is retried once elsewhere, then reported (KilledWorker)
        with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                              "distributed.scheduler.worker-saturation": 1.0}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")  # random port: no clash with 8787
        client = Client(cluster)
    try:
        nthreads = sum(client.nthreads().values()) or 1
        it = iter(tasks)
        ac = as_completed()
        owner: dict[str, tuple] = {}
        token = uuid.uuid4().hex[:10]

        def submit_next() -> bool:
            task = next(it, None)
            if task is None:
                return False
            fut = client.submit(_execute, task, key=f"sparseprop-run-{token}-{task[0]}", pure=False)
            owner[fut.key] = task
            ac.add(fut)
            return True

        for _ in range(2 * nthreads + 2):
            if not submit_next():
                break
        for fut in ac:
            task = owner.pop(fut.key)
            try:
                rec = fut.result()
            except (Exception, SystemExit) as exc:  # KilledWorker, CancelledError, ...
                rec = _failure(task, _error_string(exc))
            fut.release()
            on_record(rec)
            submit_next()
        return nthreads
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------------


def _normalise_points(points: Any) -> list[dict]:
    if points is None:
        return [{}]
    if isinstance(points, Mapping):
        return [dict(points)]
    pts = list(points)
    if not pts:
        raise SpecError("the sweep has no points (empty grid or point list)")
    out = []
    for i, p in enumerate(pts):
        if not isinstance(p, Mapping):
            raise SpecError(f"point {i} is a {type(p).__name__}; each point must be a dict of parameters")
        if "seed" in p:
            raise SpecError(f"point {i} sets 'seed', which the sweep sets per run; give seeds=[...] instead "
                            "(or seed_net/seed_ic for the network)")
        out.append(dict(p))
    return out


def _normalise_seeds(seeds: Any) -> tuple[int | None, list[int] | None]:
    if isinstance(seeds, bool) or seeds is None:
        raise SpecError(f"seeds must be a positive int (number of replicates) or a list of ints, got {seeds!r}")
    if isinstance(seeds, numbers.Integral):
        if seeds < 1:
            raise SpecError(f"seeds must be >= 1 (number of replicates per point), got {seeds}")
        return int(seeds), None
    try:
        lst = list(seeds)
    except TypeError:
        raise SpecError(f"seeds must be a positive int or a list of ints, got {type(seeds).__name__}") from None
    if not lst or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in lst):
        raise SpecError(f"seeds list must be a non-empty list of non-negative ints, got {seeds!r}")
    return len(lst), [int(s) for s in lst]


def run_sweep(
    fn: Callable | str,
    points: Sequence[Mapping] | Mapping | None = None,
    *,
    seeds: int | Sequence[int] = 1,
    base_seed: int = 0,
    common_seeds: bool = True,
    summary: Callable | str | None = None,
    extra: Sequence[Callable | str] | Mapping[str, Callable | str] = (),
    backend: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = True,
    retry_failed: bool = False,
    progress: bool | None = None,
    as_frame: bool = False,
    meta: Mapping | None = None,
) -> SweepResult:
    """Run ``fn`` on every point x seed and collect one row of statistics per run.

    Parameters
    ----------
    fn : callable or str
        ``fn(params: dict) -> dict`` of scalar statistics (or any object if ``summary`` is given).
        A picklable callable, an importable ``"module:function"`` string, or a preset name
        (``"network"``: :func:`simulate_network` + :func:`network_statistics`; ``"ishigami"``).
        ``params`` is the point with ``params["seed"]`` (the run's seed) added.
    points : list of dict, dict or None
        Parameter points (see :func:`grid`); None means one point ``{}``.
    seeds : int or list of int
        Replicates per point: a count (seeds derived from ``base_seed``, see :func:`run_seed`) or
        explicit seeds.
    summary : callable or str, optional
        ``summary(result, params) -> dict`` turning the run function's result into statistics
        (computed in the worker, so large results never travel).
    extra : list (or dict name -> function) of callables / "module:function" strings
        User statistics ``f(result) -> scalar or dict``, ``result`` being what ``fn`` returned.
        A scalar goes in a column named after the function (or the dict key).
    backend : {"local", "dask", "serial"}
        ``local``: a process pool of ``workers`` (default: CPU count). ``dask``: a ``LocalCluster``
        of ``workers`` single-threaded processes, or the existing cluster at ``scheduler``
        (``"tcp://host:port"``; workers need sparseprop installed). ``serial``: in this process
        (debugging; no protection against crashes).
    out : path, optional
        Output directory (``runs.jsonl``, ``results.csv``, ``meta.json``). Without it nothing is
        written and nothing can be resumed.
    resume : bool
        Continue the sweep stored in ``out`` (same spec hash) without recomputing finished runs;
        a different spec raises :class:`SpecMismatchError`. ``False`` overwrites ``out``.
    retry_failed : bool
        On resume, rerun the runs recorded as failed.
    progress : bool, optional
        Progress bar on stderr (default: when stderr is a terminal).
    as_frame : bool
        Return ``table`` as a pandas DataFrame (needs pandas).
    meta : dict, optional
        Extra metadata stored in ``meta.json``.

    Returns
    -------
    SweepResult
    """
    if backend not in BACKENDS:
        raise SpecError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                or workers < 1):
        raise SpecError(f"workers must be a positive int, got {workers!r}")
    if scheduler and backend != "dask":
        raise SpecError("scheduler= is only used with backend='dask'")
    if not isinstance(base_seed, numbers.Integral) or isinstance(base_seed, bool) or base_seed < 0:
        raise SpecError(f"base_seed must be a non-negative int, got {base_seed!r}")
    pts = _normalise_points(points)
    n_rep, explicit = _normalise_seeds(seeds)

    # function references: presets resolve in the worker; their summary ships by reference
    if isinstance(fn, str) and fn in PRESETS:
        preset_summary = _preset_table()[fn][1]
        if summary is None and preset_summary is not None:
            summary_packed, summary_name = preset_summary, f"{fn}:summary"
        else:
            summary_packed, summary_name = _pack(summary, "the summary function"), _callable_name(summary)
        fn_ref = fn
    else:
        fn_ref = fn
        summary_packed, summary_name = _pack(summary, "the summary function"), _callable_name(summary)
    fn_packed = _pack(fn_ref, "the run function")
    if isinstance(extra, Mapping):
        extra_items = list(extra.items())
    else:
        extra_items = []
        for e in extra:
            name = _callable_name(e).rpartition(":")[2].rpartition(".")[2]
            extra_items.append((name, e))
    names = [n for n, _ in extra_items]
    if len(set(names)) != len(names):
        raise SpecError(f"extra statistic names must be unique, got {names}")
    extras_packed = tuple((n, _pack(e, f"statistic function {n}")) for n, e in extra_items)
    extra_names = [f"{n}={_callable_name(e)}" for n, e in extra_items]

    runs = []
    for p_i, point in enumerate(pts):
        for r in range(n_rep):
            seed = explicit[r] if explicit is not None else run_seed(base_seed, p_i, r, common_seeds)
            runs.append((p_i * n_rep + r, p_i, r, seed, {**point, "seed": seed}))
    spec_hash = _spec_hash(_callable_name(fn_ref), summary_name, extra_names, runs)
    by_run = {run[0]: run for run in runs}

    store = _Store(out, spec_hash, resume) if out is not None else None
    records: dict[int, dict] = {}
    if store is not None:
        for run_id, rec in store.previous.items():
            if run_id in by_run and not (retry_failed and rec["status"] != "ok"):
                records[run_id] = rec
    n_resumed = len(records)
    todo = [(run, fn_packed, summary_packed, extras_packed, params)
            for run, _, _, _, params in runs if run not in records]

    if progress is None:
        progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
    bar = _Progress(len(runs), len(records), sum(r["status"] != "ok" for r in records.values()), progress)

    def on_record(rec: dict) -> None:
        run, point, rep, seed, params = by_run[rec["run"]]
        rec = {"run": run, "point": point, "replicate": rep, "seed": seed,
               "params": _canonical(params), **{k: v for k, v in rec.items() if k != "run"}}
        records[run] = rec
        if store is not None:
            store.append(rec)
        bar.update(rec["status"] == "ok")

    base_meta = {
        "format": FORMAT, "version": FORMAT_VERSION, "spec_hash": spec_hash,
        "fn": _callable_name(fn_ref), "summary": summary_name, "extra": extra_names,
        "n_points": len(pts), "n_replicates": n_rep, "n_runs": len(runs),
        "seeds": explicit if explicit is not None else n_rep, "base_seed": int(base_seed),
        "common_seeds": bool(common_seeds), "backend": backend, "scheduler": scheduler or "",
        "python": platform.python_version(), "numpy": np.__version__, "sparseprop": _sparseprop_version(),
        "host": platform.node(), "started": _now(), **dict(meta or {}),
    }
    t0 = time.perf_counter()
    status = "interrupted"
    n_workers = 0
    try:
        if store is not None:
            store.write_meta({**base_meta, "status": "running"})
        if todo:
            if backend == "serial":
                n_workers = _run_serial(todo, on_record)
            elif backend == "local":
                n_workers = _run_local(todo, workers or os.cpu_count() or 1, on_record)
            else:
                n_workers = _run_dask(todo, workers, scheduler, on_record)
        status = "complete"
    finally:
        wall = time.perf_counter() - t0
        bar.close()
        table = _records_to_table(list(records.values()))
        n_failed = int(sum(r["status"] != "ok" for r in records.values()))
        paths = {}
        if store is not None:
            store.close()
            write_csv(table, store.csv)
            store.write_meta({**base_meta, "status": status, "finished": _now(), "wall_s": wall,
                              "workers": n_workers, "n_done": len(records), "n_failed": n_failed,
                              "n_resumed": n_resumed, "columns": list(table.dtype.names)})
            paths = {"out": str(store.dir), "csv": str(store.csv), "jsonl": str(store.jsonl),
                     "meta": str(store.meta)}
    recs = [records[k] for k in sorted(records)]
    return SweepResult(
        table=_to_frame(table) if as_frame else table, records=recs, spec_hash=spec_hash,
        n_runs=len(runs), n_failed=n_failed, n_resumed=n_resumed, wall_s=wall, backend=backend,
        workers=n_workers, paths=paths)


def _sparseprop_version() -> str:
    try:
        from importlib.metadata import version

        return version("sparseprop-snn")
    except Exception:
        return ""


# --------------------------------------------------------------------------------------------------
# Built-in run functions
# --------------------------------------------------------------------------------------------------


def ishigami(params: Mapping) -> dict:
    """Ishigami test function ``sin x1 + a sin^2 x2 + b x3^4 sin x1`` (keys x1, x2, x3, a=7, b=0.1).

    With X_i ~ U(-pi, pi): first-order Sobol indices 0.3139, 0.4424, 0; total 0.5576, 0.4424, 0.2437.
    Used to validate the UQ pipeline without the simulator.
    """
    x1, x2, x3 = float(params["x1"]), float(params["x2"]), float(params["x3"])
    a, b = float(params.get("a", 7.0)), float(params.get("b", 0.1))
    return {"y": math.sin(x1) + a * math.sin(x2) ** 2 + b * x3 ** 4 * math.sin(x1)}


# name -> (allowed types, default, description)
NETWORK_PARAMS: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "model": ((str,), "lif", "neuron model: 'lif' or 'qif'"),
    "n": ((int,), 1000, "number of neurons"),
    "k": ((int,), 100, "out-degree (targets per neuron)"),
    "j0": ((int, float), 1.0, "coupling strength: weight = -j0/sqrt(k)"),
    "rate": ((int, float), 1.0, "target rate (Hz) of the balance condition that sets the drive"),
    "tau": ((int, float), 0.01, "membrane time constant (s)"),
    "drive": ((int, float), None, "explicit drive I (overrides the balance condition)"),
    "drive_sd": ((int, float), 0.0, "heterogeneity: per-neuron drive I_i = I + drive_sd * N(0, 1)"),
    "spikes": ((int,), None, "stop after this many network spikes"),
    "t_max": ((int, float), None, "stop at this simulated time (s)"),
    "seed_net": ((int,), None, "connectivity seed (default: the run's seed)"),
    "seed_ic": ((int,), None, "initial-condition seed (default: the run's seed)"),
    "engine": ((str,), "tree", "'tree' or 'heap' (SparseProp) or 'dense' (O(N) baseline)"),
    "t_transient": ((int, float), 0.0, "seconds discarded before computing statistics"),
    "fano_window": ((int, float), 0.1, "window (s) of the spike counts of the Fano factor"),
    "sync_bin": ((int, float), None, "bin (s) of the synchrony measure chi (default: tau)"),
    "seed": ((int,), None, "set by the sweep"),
}


def validate_network_params(params: Mapping) -> dict:
    """Check the parameters of :func:`simulate_network`; returns them with defaults filled in.

    Raises :class:`SpecError` naming the parameter and the fix.
    """
    unknown = sorted(set(params) - set(NETWORK_PARAMS))
    if unknown:
        raise SpecError(f"unknown network parameter(s) {', '.join(map(repr, unknown))}; known: "
                        f"{', '.join(k for k in NETWORK_PARAMS if k != 'seed')}")
    p = {k: v[1] for k, v in NETWORK_PARAMS.items()}
    for key, value in params.items():
        types = NETWORK_PARAMS[key][0]
        if value is not None:
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, types):
                raise SpecError(f"network parameter {key!r} must be {' or '.join(t.__name__ for t in types)} "
                                f"({NETWORK_PARAMS[key][2]}), got {value!r}")
        p[key] = value
    if p["model"] not in ("lif", "qif"):
        raise SpecError(f"network parameter 'model' must be 'lif' or 'qif', got {p['model']!r}")
    if p["engine"] not in ("tree", "heap", "dense"):
        raise SpecError(f"network parameter 'engine' must be 'tree', 'heap' or 'dense', got {p['engine']!r}")
    if p["n"] < 2:
        raise SpecError(f"network parameter 'n' must be >= 2, got {p['n']}")
    if not 1 <= p["k"] < p["n"]:
        raise SpecError(f"network parameter 'k' must satisfy 1 <= k < n = {p['n']}, got {p['k']}")
    for key in ("j0", "rate", "tau", "fano_window"):
        if not (math.isfinite(p[key]) and p[key] > 0):
            raise SpecError(f"network parameter {key!r} must be finite and > 0, got {p[key]}")
    for key in ("drive_sd", "t_transient"):
        if not (math.isfinite(p[key]) and p[key] >= 0):
            raise SpecError(f"network parameter {key!r} must be finite and >= 0, got {p[key]}")
    if p["sync_bin"] is not None and not (math.isfinite(p["sync_bin"]) and p["sync_bin"] > 0):
        raise SpecError(f"network parameter 'sync_bin' must be > 0, got {p['sync_bin']}")
    if p["spikes"] is None and p["t_max"] is None:
        raise SpecError("network parameters need 'spikes' or 't_max' (or both) to end the run")
    if p["spikes"] is not None and p["spikes"] < 1:
        raise SpecError(f"network parameter 'spikes' must be >= 1, got {p['spikes']}")
    if p["t_max"] is not None and not (math.isfinite(p["t_max"]) and p["t_max"] > 0):
        raise SpecError(f"network parameter 't_max' must be > 0, got {p['t_max']}")
    return p


def simulate_network(params: Mapping):
    """Build ``sp.balanced_network`` from plain parameters and run ``sp.simulate`` (in the worker).

    Parameters are those of :data:`NETWORK_PARAMS`; ``seed`` (set by the sweep) is the default of
    ``seed_net`` and ``seed_ic``. Returns the ``SimResult``.
    """
    import sparseprop as sp

    p = validate_network_params(params)
    seed = 1 if p["seed"] is None else int(p["seed"])
    seed_net = seed if p["seed_net"] is None else p["seed_net"]
    seed_ic = seed if p["seed_ic"] is None else p["seed_ic"]
    net = sp.balanced_network(n=p["n"], k=p["k"], j0=float(p["j0"]), rate=float(p["rate"]),
                              tau=float(p["tau"]), model=p["model"],
                              drive=None if p["drive"] is None else float(p["drive"]), seed_net=seed_net)
    if p["drive_sd"] > 0:
        rng = np.random.default_rng([int(seed_net), 0x5EED_D71E])
        drive = np.asarray(net.drive, dtype=np.float64) + p["drive_sd"] * rng.standard_normal(p["n"])
        net = sp.Network(net.model, p["n"], np.ascontiguousarray(drive, dtype=np.float64), tau=net.tau,
                         connectivity=net.connectivity)
    kwargs = {}
    if p["spikes"] is not None:
        kwargs["spikes"] = int(p["spikes"])
    if p["t_max"] is not None:
        kwargs["t_max"] = float(p["t_max"])
    return sp.simulate(net, seed_ic=seed_ic, engine=p["engine"], **kwargs)


def network_statistics(res: Any, params: Mapping) -> dict:
    """Summary statistics of a network run (see :func:`spike_statistics`) plus its bookkeeping."""
    p = validate_network_params(params)
    stats = spike_statistics(
        res.times, res.neurons, int(res.n), float(res.t_start), float(res.t_end),
        t_transient=float(p["t_transient"]), fano_window=float(p["fano_window"]),
        sync_bin=float(p["tau"] if p["sync_bin"] is None else p["sync_bin"]))
    stats["n_spikes"] = int(res.n_spikes)
    stats["t_sim_s"] = float(res.t_end) - float(res.t_start)
    stats["sim_wall_s"] = float(res.wall_s)
    stats["interrupted"] = int(bool(getattr(res, "interrupted", False)))
    return stats


def _sparse_count_moments(neurons: np.ndarray, bins: np.ndarray, n: int, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron sums of counts and of squared counts over ``nb`` bins, in O(spikes) memory."""
    key = neurons * np.int64(nb) + bins
    uniq, cnt = np.unique(key, return_counts=True)
    owner = uniq // nb
    cnt = cnt.astype(np.float64)
    s1 = np.bincount(owner, weights=cnt, minlength=n)
    s2 = np.bincount(owner, weights=cnt * cnt, minlength=n)
    return s1, s2


def spike_statistics(times, neurons, n: int, t_start: float, t_end: float, *, t_transient: float = 0.0,
                     fano_window: float = 0.1, sync_bin: float = 0.005) -> dict:
    """Rate, ISI variability, count variability and synchrony of a spike train set.

    Spikes before ``t0 = t_start + t_transient`` are discarded; ``T = t_end - t0``.

    Returns
    -------
    dict with
        ``rate_hz``: spikes / (n T).
        ``cv_isi``: mean over neurons with >= 3 spikes of std(ISI)/mean(ISI) (sample std, ddof=1,
        as ``SimulationResult.cv()``).
        ``fano``: mean over neurons with a spike of var/mean of their counts in windows of
        ``fano_window`` s (NaN if fewer than two windows fit).
        ``chi``: Golomb's synchrony measure from binned activity, ``chi^2 = Var_t(A) / mean_i
        Var_t(c_i)``, ``c_i(t)`` the count of neuron i in bins of ``sync_bin`` s and ``A = mean_i c_i``
        (1 for full synchrony, about 1/sqrt(n) for independent neurons).
        ``n_spikes_stat``: number of spikes used.
    """
    times = np.asarray(times, dtype=np.float64)
    neurons = np.asarray(neurons, dtype=np.int64)
    if times.shape != neurons.shape or times.ndim != 1:
        raise ValueError("times and neurons must be 1-D arrays of equal length")
    t0 = float(t_start) + float(t_transient)
    span = float(t_end) - t0
    if not span > 0:
        raise ValueError(f"no time left for statistics: t_end - t_start - t_transient = {span} s <= 0")
    keep = times >= t0
    times, neurons = times[keep], neurons[keep]
    m = times.size
    out: dict[str, float | int] = {"rate_hz": m / (n * span)}

    # ISI CV (two-pass per-neuron mean and sample variance)
    order = np.lexsort((times, neurons))
    tn, nn = times[order], neurons[order]
    same = nn[1:] == nn[:-1]
    isi = np.diff(tn)[same]
    owner = nn[1:][same]
    cnt = np.bincount(owner, minlength=n)
    valid = cnt >= 2
    if valid.any():
        mean = np.bincount(owner, weights=isi, minlength=n)
        mean[valid] /= cnt[valid]
        dev = isi - mean[owner]
        var = np.bincount(owner, weights=dev * dev, minlength=n)
        var[valid] /= cnt[valid] - 1  # sample variance, as SimulationResult.isi_cv
        with np.errstate(divide="ignore", invalid="ignore"):
            cv = np.sqrt(var[valid]) / mean[valid]
        out["cv_isi"] = float(np.nanmean(cv)) if np.isfinite(cv).any() else math.nan
    else:
        out["cv_isi"] = math.nan

    # Fano factor of counts in windows
    nw = int(math.floor(span / fano_window * (1 + 1e-12)))
    if nw >= 2 and m:
        inside = times < t0 + nw * fano_window
        win = np.minimum(((times[inside] - t0) / fano_window).astype(np.int64), nw - 1)
        s1, s2 = _sparse_count_moments(neurons[inside], win, n, nw)
        mu = s1 / nw
        active = mu > 0
        var = s2[active] / nw - mu[active] ** 2
        out["fano"] = float(np.mean(np.maximum(var, 0.0) / mu[active]))
    else:
        out["fano"] = math.nan

    # Golomb's chi from binned counts
    nb = int(math.floor(span / sync_bin * (1 + 1e-12)))
    if nb >= 2 and m:
        inside = times < t0 + nb * sync_bin
        b = np.minimum(((times[inside] - t0) / sync_bin).astype(np.int64), nb - 1)
        pop = np.bincount(b, minlength=nb).astype(np.float64) / n
        var_pop = float(np.var(pop))
        s1, s2 = _sparse_count_moments(neurons[inside], b, n, nb)
        mu = s1 / nb
        var_i = np.maximum(s2 / nb - mu * mu, 0.0)
        denom = float(np.mean(var_i))
        out["chi"] = math.sqrt(var_pop / denom) if denom > 0 else math.nan
    else:
        out["chi"] = math.nan
    out["n_spikes_stat"] = int(m)
    return out


def network_sweep(params: Mapping | None = None, grid_axes: Mapping[str, Sequence] | None = None, *,
                  points: Sequence[Mapping] | None = None, **kwargs) -> SweepResult:
    """Sweep of :func:`simulate_network`: fixed ``params`` x ``grid_axes`` (or explicit ``points``).

    Parameters are validated here, before anything runs. Other keyword arguments go to
    :func:`run_sweep` (``seeds``, ``base_seed``, ``extra``, ``backend``, ``workers``, ``out``...).
    """
    if points is not None and grid_axes:
        raise SpecError("give grid_axes or points, not both")
    pts = [{**dict(params or {}), **dict(p)} for p in points] if points is not None else \
        grid(params, **dict(grid_axes or {}))
    for p in pts:
        validate_network_params(p)
    return run_sweep("network", pts, **kwargs)


# --------------------------------------------------------------------------------------------------
# TOML specs
# --------------------------------------------------------------------------------------------------

_TOP_KEYS = {"sweep", "params", "grid", "points", "uq"}
# key -> (allowed types, description)
_SWEEP_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "name of the sweep (default output directory out/NAME)"),
    "run": ((str,), "'network' (default), 'ishigami' or 'module:function'"),
    "summary": ((str,), "'module:function' summary(result, params) -> dict"),
    "extra": ((list,), "list of 'module:function' user statistics f(result)"),
    "seeds": ((int, list), "replicates per point (int) or explicit seeds (list of ints)"),
    "base_seed": ((int,), "root of the derived seeds"),
    "common_seeds": ((bool,), "same seeds at every point (default true)"),
    "backend": ((str,), "'local' (default), 'dask' or 'serial'"),
    "workers": ((int,), "worker processes"),
    "scheduler": ((str,), "Dask scheduler address tcp://host:port"),
    "out": ((str,), "output directory"),
    "retry_failed": ((bool,), "on resume, rerun failed runs"),
}
_UQ_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "parameters": ((dict,), "table of distributions, [uq.parameters.NAME] dist = ..."),
    "design": ((str,), "sobol | halton | latin_hypercube | random | quadrature"),
    "samples": ((int,), "design size (sampling designs)"),
    "order": ((int,), "polynomial order of the PCE"),
    "quadrature_order": ((int,), "order of the quadrature rule (design = quadrature)"),
    "rule": ((str,), "quadrature rule (chaospy name, default gaussian)"),
    "fit": ((str,), "regression | quadrature"),
    "statistics": ((list,), "statistics to analyse (default: all numeric)"),
    "seed": ((int,), "seed of random / latin_hypercube designs"),
    "figure": ((bool,), "write uq_sobol.png (needs matplotlib)"),
}


@dataclass
class Spec:
    """A validated TOML sweep spec."""

    name: str
    run: str
    points: list[dict]
    sweep: dict
    uq: dict | None
    raw: dict
    path: str = ""


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "a table"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _check_table(table: Mapping, allowed: Mapping[str, tuple[tuple[type, ...], str]], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise SpecError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}; allowed: "
                        f"{', '.join(allowed)}")
    for key, value in table.items():
        types = allowed[key][0]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            raise SpecError(f"{where} key {key!r} must be {_type_names(types)} ({allowed[key][1]}), "
                            f"got {value!r}")


def _parse_spec(data: Mapping, path: str = "") -> Spec:
    where = path or "spec"
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SpecError(f"unknown table(s) {', '.join(map(repr, unknown))} in {where}; allowed: "
                        "[sweep], [params], [grid], [[points]], [uq]")
    sweep = dict(data.get("sweep", {}))
    if not isinstance(data.get("sweep", {}), Mapping):
        raise SpecError("[sweep] must be a table")
    _check_table(sweep, _SWEEP_KEYS, "[sweep]")
    if "extra" in sweep and not all(isinstance(e, str) for e in sweep["extra"]):
        raise SpecError("[sweep] extra must be a list of 'module:function' strings")
    if "seeds" in sweep:
        _normalise_seeds(sweep["seeds"])
    if "backend" in sweep and sweep["backend"] not in BACKENDS:
        raise SpecError(f"[sweep] backend must be one of {', '.join(BACKENDS)}, got {sweep['backend']!r}")
    if "workers" in sweep and sweep["workers"] < 1:
        raise SpecError(f"[sweep] workers must be >= 1, got {sweep['workers']}")
    if "base_seed" in sweep and sweep["base_seed"] < 0:
        raise SpecError(f"[sweep] base_seed must be >= 0, got {sweep['base_seed']}")
    run = sweep.get("run", "network")
    if run not in PRESETS and ":" not in run:
        raise SpecError(f"[sweep] run must be one of {', '.join(PRESETS)} or 'module:function', got {run!r}")

    params = data.get("params", {})
    if not isinstance(params, Mapping):
        raise SpecError("[params] must be a table of fixed parameters")
    params = dict(params)
    if "seed" in params:
        raise SpecError("[params] may not set 'seed' (set per run from [sweep] seeds/base_seed); "
                        "use seed_net / seed_ic to fix the network's seeds")
    grid_tab = data.get("grid")
    points_tab = data.get("points")
    uq = data.get("uq")
    given = [n for n, v in (("[grid]", grid_tab), ("[[points]]", points_tab), ("[uq]", uq)) if v is not None]
    if len(given) > 1:
        raise SpecError(f"use one of [grid], [[points]] and [uq], not {' and '.join(given)}")
    if grid_tab is not None:
        if not isinstance(grid_tab, Mapping) or not grid_tab:
            raise SpecError("[grid] must be a table of lists, e.g. j0 = [0.5, 1.0]; it is empty")
        for key, values in grid_tab.items():
            if not isinstance(values, list):
                raise SpecError(f"[grid] {key!r} must be a list of values, got {values!r}")
            if not values:
                raise SpecError(f"[grid] {key!r} is an empty list: the grid would have no points")
            if key == "seed":
                raise SpecError("[grid] may not vary 'seed'; use [sweep] seeds")
        points = grid(params, **grid_tab)
    elif points_tab is not None:
        if not isinstance(points_tab, list) or not points_tab:
            raise SpecError("[[points]] must be a non-empty array of tables")
        points = []
        for i, p in enumerate(points_tab):
            if not isinstance(p, Mapping):
                raise SpecError(f"[[points]] entry {i} must be a table")
            clash = sorted(set(p) & set(params))
            if clash:
                raise SpecError(f"[[points]] entry {i} sets {clash} also fixed in [params]; keep one")
            points.append({**params, **p})
        _normalise_points(points)
    else:
        points = [params]
    uq_spec = None
    if uq is not None:
        if not isinstance(uq, Mapping):
            raise SpecError("[uq] must be a table")
        _check_table(uq, _UQ_KEYS, "[uq]")
        from . import uq as _uq

        uq_spec = dict(uq)
        dists = uq_spec.get("parameters")
        if not dists:
            raise SpecError("[uq] needs at least one distribution: [uq.parameters.NAME] dist = 'uniform' ...")
        for pname, d in dists.items():
            if pname in params:
                raise SpecError(f"[uq.parameters] {pname!r} is also fixed in [params]; keep one")
            _uq.make_distribution(d, pname)  # validates
        _uq.validate_options(uq_spec)
    if run == "network":
        varying = dict(uq_spec["parameters"]) if uq_spec else {}
        for pname, d in varying.items():
            if pname not in NETWORK_PARAMS or pname == "seed":
                raise SpecError(f"[uq.parameters] {pname!r} is not a network parameter; known: "
                                f"{', '.join(k for k in NETWORK_PARAMS if k != 'seed')}")
            if NETWORK_PARAMS[pname][0] == (int,) and not (isinstance(d, Mapping) and d.get("round")):
                raise SpecError(f"[uq.parameters] {pname!r} is an integer parameter: add round = true")
        for p in points:
            probe = dict(p)
            for pname in varying:  # stand-in values: the distribution's values are checked per run
                probe[pname] = 1 if NETWORK_PARAMS[pname][0] == (int,) else 1.0
            if "n" in varying:
                probe["n"] = max(2, probe.get("k", 100) + 1)
            validate_network_params(probe)
    elif run == "ishigami":
        allowed = {"x1", "x2", "x3", "a", "b"}
        for p in points:
            bad = sorted(set(p) - allowed)
            if bad:
                raise SpecError(f"unknown ishigami parameter(s) {bad}; known: x1, x2, x3, a, b")
    name = sweep.get("name") or (Path(path).stem if path else "sweep")
    return Spec(name=name, run=run, points=points, sweep=sweep, uq=uq_spec, raw=dict(data), path=path)


def load_spec(path: str | os.PathLike) -> Spec:
    """Read and validate a TOML sweep spec (see ``examples/*.toml``)."""
    import tomllib

    path = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SpecError(f"spec file {path!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    return _parse_spec(data, path)


def run_spec(spec: Spec, *, backend: str | None = None, workers: int | None = None,
             scheduler: str | None = None, out: str | os.PathLike | None = None, resume: bool = True,
             retry_failed: bool | None = None, progress: bool | None = None):
    """Run a validated spec: a :class:`SweepResult`, or a ``sparseprop.uq.UQResult`` for ``[uq]``."""
    s = spec.sweep
    backend = backend or s.get("backend", "local")
    if scheduler is None:
        scheduler = s.get("scheduler") or None
    if scheduler and backend == "local" and "backend" not in s:
        backend = "dask"
    kwargs = dict(
        seeds=s.get("seeds", 1), base_seed=s.get("base_seed", 0), common_seeds=s.get("common_seeds", True),
        summary=s.get("summary"), extra=list(s.get("extra", ())), backend=backend,
        workers=workers if workers is not None else s.get("workers"), scheduler=scheduler,
        out=out if out is not None else s.get("out", os.path.join("out", spec.name)), resume=resume,
        retry_failed=retry_failed if retry_failed is not None else s.get("retry_failed", False),
        progress=progress, meta={"name": spec.name, "spec_file": spec.path, "spec": spec.raw})
    if spec.uq is not None:
        from . import uq as _uq

        return _uq.run_uq_spec(spec, **kwargs)
    return run_sweep(spec.run, spec.points, **kwargs)


def _print_summary(res: SweepResult, stream) -> None:
    stream.write(f"{res.n_runs} runs ({res.n_failed} failed, {res.n_resumed} resumed) in {res.wall_s:.2f} s"
                 f" on {res.backend} x{res.workers}\n")
    table = res.table if isinstance(res.table, np.ndarray) else None
    if table is not None and len(table):
        ok = table["status"] == "ok"
        stat_names = []
        for rec in res.records:
            for k in rec.get("stats", {}):
                col = k if k in table.dtype.names and k not in stat_names else f"stat_{k}"
                if col in table.dtype.names and col not in stat_names:
                    stat_names.append(col)
        for n in stat_names + ["wall_s"]:
            if table.dtype[n].kind not in "fiu":
                continue
            v = table[n][ok].astype(np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                stream.write(f"  {n:>14s}: mean {v.mean():.6g}  std {v.std(ddof=1) if v.size > 1 else 0:.3g}"
                             f"  [{v.min():.6g}, {v.max():.6g}]\n")
        for rec in res.records:
            if rec["status"] != "ok":
                stream.write(f"  run {rec['run']} failed: {rec['error']}\n")
                break
    if res.paths:
        stream.write(f"  results: {res.paths['csv']}\n")


_CLI_DESCRIPTION = ("Run a parameter sweep, seed ensemble or UQ study described by a TOML spec, on local "
                    "processes (default) or Dask. Finished runs are saved as they come; rerunning the same "
                    "command resumes.")
_CLI_EPILOG = ("exit codes: 0 done (failed runs are recorded, not fatal), 1 failed runs with --strict, "
               "2 invalid spec or arguments or mismatched output directory, 130 interrupted")


def _add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("spec", help="TOML spec (see examples/seed_sweep.toml, examples/uq_rate.toml)")
    ap.add_argument("--backend", choices=BACKENDS, help="default: the spec's, else local")
    ap.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler address tcp://host:port (implies dask)")
    ap.add_argument("--workers", type=int, metavar="N", help="worker processes (default: CPU count)")
    ap.add_argument("--out", metavar="DIR", help="output directory (default: the spec's, else out/NAME)")
    ap.add_argument("--json", action="store_true", help="print one JSON line with the outcome on stdout")
    ap.add_argument("--no-resume", action="store_true", help="overwrite the output directory")
    ap.add_argument("--retry-failed", action="store_true", help="on resume, rerun failed runs")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--strict", action="store_true", help="exit 1 if any run failed")


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Register ``sweep`` on the ``sparseprop`` CLI's subparsers (``args.func(args)`` runs it)."""
    p = subparsers.add_parser("sweep", help="run a parameter sweep / seed ensemble / UQ study from a TOML spec",
                              description=_CLI_DESCRIPTION, epilog=_CLI_EPILOG)
    _add_arguments(p)
    p.set_defaults(func=run_cli)
    return p


def run_cli(args: argparse.Namespace) -> int:
    """Run parsed ``sparseprop sweep`` arguments; returns the exit code."""
    err = sys.stderr
    try:
        spec = load_spec(args.spec)
        if args.workers is not None and args.workers < 1:
            raise SpecError(f"--workers must be >= 1, got {args.workers}")
        backend = args.backend
        if args.scheduler and backend is None:
            backend = "dask"
        if args.scheduler and backend != "dask":
            raise SpecError("--scheduler needs --backend dask")
        res = run_spec(spec, backend=backend, workers=args.workers, scheduler=args.scheduler, out=args.out,
                       resume=not args.no_resume, retry_failed=args.retry_failed or None,
                       progress=not args.quiet)
    except SpecError as exc:
        err.write(f"sparseprop sweep: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        err.write("\nsparseprop sweep: interrupted; finished runs are saved, rerun the same command to resume\n")
        return 130
    sweep_res = getattr(res, "sweep", res)
    if args.json:
        payload = sweep_res.summary()
        payload["name"] = spec.name
        if sweep_res is not res:
            payload.update(res.summary())
        sys.stdout.write(json.dumps(_json_record(payload)) + "\n")
        sys.stdout.flush()
    else:
        _print_summary(sweep_res, err)
        if sweep_res is not res:
            err.write(res.report())
    return 1 if (args.strict and sweep_res.n_failed) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``sparseprop sweep SPEC.toml [--backend local|dask|serial] [--scheduler ADDR] [--workers N]
    [--out DIR] [--json] [--no-resume] [--retry-failed] [--quiet] [--strict]``; returns the exit code.
    """
    ap = argparse.ArgumentParser(prog="sparseprop sweep", description=_CLI_DESCRIPTION, epilog=_CLI_EPILOG)
    _add_arguments(ap)
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
