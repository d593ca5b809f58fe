"""A generic minibatch training loop: per-sample value-and-gradient functions, averaged minibatch
gradients, optional worker processes, checkpoints with exact resume, early stopping, a progress bar.

The model is anything that provides ``value_and_grad(params, x, y) -> (loss, grads, prediction)`` for
ONE sample: ``params`` is a dict ``name -> float64 array``, ``grads`` a dict with the same names (or a
subset) and shapes, ``prediction`` something comparable with the label (``None`` if there is no notion
of accuracy; a :class:`Score` when the "sample" is itself a batch, scored by the model). For the
spiking networks of sparseprop, one sample is one simulation plus its backward pass; :func:`fit`
only ever sees numbers.

Data layout and invariants
--------------------------
* Minibatches: epoch ``e`` (0-based) visits the training samples in the order of the ``e``-th
  ``permutation(n)`` drawn from ``numpy.random.default_rng(seed)``, in chunks of ``batch_size`` (the
  last one may be smaller). The minibatch gradient is the mean of the per-sample gradients, summed in
  sample order in the parent process; hence the result does not depend on ``workers``, bit for bit.
* With ``workers > 1`` a :class:`concurrent.futures.ProcessPoolExecutor` ('spawn' start method: no
  fork of a process that may hold threads) is started once per :func:`fit`; the training and
  validation data and the model functions travel once, at worker start-up; each step sends the
  current parameters (pickled once) with one contiguous chunk of the minibatch's sample indices to
  each worker and gets the per-sample results back. Worker processes never see SIGINT: they are
  started with SIGINT blocked (inherited signal mask) and ignore it once running, so a Ctrl-C on the
  terminal (which signals the whole process group) reaches only the parent's handler.
* Ctrl-C (SIGINT, main thread only) sets a flag: training stops after the current step, the
  checkpoint is written and the :class:`History` so far is returned with ``interrupted=True``. A
  second Ctrl-C raises :class:`KeyboardInterrupt` at once.
* Checkpoint: ``checkpoint_dir/checkpoint.npz``, written atomically at the end of every epoch and on
  interruption; arrays ``param/<name>``, ``optim/<slot>/<name>``, ``best/<name>`` and one JSON
  string ``meta`` (position in the run, running sums of the unfinished epoch, history, optimiser
  hyperparameters and step counts, early-stopping state, run configuration). No pickle. Resuming
  restores all of it, so an interrupted-and-resumed run equals an uninterrupted one bit for bit.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import math
import multiprocessing
import numbers
import os
import pickle
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._progress import Progress
from .optim import Optimizer, clip_grad_norm, global_norm

__all__ = ["History", "Score", "fit", "evaluate_dataset", "load_checkpoint", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.npz"
_FORMAT = "sparseprop-checkpoint"
_VERSION = 1


# --------------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------------


@dataclass
class History:
    """Per-epoch record of a :func:`fit` run.

    Attributes
    ----------
    epoch : list of int
        Epoch numbers, 1-based.
    train_loss, train_accuracy : list of float
        Mean loss / fraction correct over the epoch's training samples, each evaluated with the
        parameters of the moment (running values). Accuracy is ``nan`` if the model gives no
        predictions.
    val_loss, val_accuracy : list of float
        On the validation data with the parameters at the end of the epoch (``nan`` without it).
    grad_norm : list of float
        Mean global norm of the minibatch gradient (before clipping): watch it for exploding
        gradients.
    wall_s : list of float
        Wall-clock seconds spent in the epoch (training and validation).
    monitor : str
        The quantity early stopping and ``best_epoch`` follow ("val_loss" or "val_accuracy").
    best_epoch : int or None
        Epoch (1-based) with the best monitored value.
    stopped_early, interrupted : bool
        Why the run ended before ``epochs``, if it did.
    """

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    wall_s: list = field(default_factory=list)
    monitor: str = "val_loss"
    best_epoch: int | None = None
    stopped_early: bool = False
    interrupted: bool = False

    _SERIES = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm", "wall_s")

    def __len__(self):
        return len(self.epoch)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (``nan`` stored as ``None``)."""
        d = asdict(self)
        for key in self._SERIES:
            d[key] = [None if isinstance(v, float) and math.isnan(v) else v for v in d[key]]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        for key in cls._SERIES:
            if key == "epoch":
                d[key] = [int(v) for v in d[key]]
            else:
                d[key] = [math.nan if v is None else float(v) for v in d[key]]
        return cls(**d)

    def _append(self, **row):
        for key in self._SERIES:
            getattr(self, key).append(row[key])

    def plot(self, path=None, *, axes=None):
        """Loss and accuracy curves (train and validation) against the epoch.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Save the figure there (format from the suffix).
        axes : pair of matplotlib Axes, optional
            Draw into these instead of a new figure.

        Returns
        -------
        matplotlib.figure.Figure
        """
        try:
            import matplotlib
            if axes is None and path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib "
                              "(or the sparseprop-snn[plot] extra)") from exc
        created = axes is None
        if created:
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
        else:
            fig = axes[0].figure
        ax_loss, ax_acc = axes
        for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
            for split, style in (("train", "-"), ("val", "--")):
                values = np.asarray(getattr(self, f"{split}_{key}"), dtype=float)
                if values.size and not np.all(np.isnan(values)):
                    ax.plot(self.epoch, values, style, marker="o", ms=3, label=split)
            if self.best_epoch is not None:
                ax.axvline(self.best_epoch, color="0.6", lw=0.8, ls=":", label="best")
            ax.set_xlabel("epoch")
            ax.set_title(title)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        if path is not None:
            fig.savefig(path, dpi=120)
            if created:
                plt.close(fig)
        return fig


# --------------------------------------------------------------------------------------------------
# Per-sample evaluation (shared by the serial path and the worker processes)
# --------------------------------------------------------------------------------------------------


def _run_samples(model, kind, params, indices):
    """Evaluate the samples ``indices`` of data set ``kind`` ("train" or "val")."""
    value_and_grad, evaluate, data = model
    X, y = data[kind]
    out = []
    for i in indices:
        i = int(i)
        if kind == "train":
            res = value_and_grad(params, X[i], y[i])
            if not isinstance(res, tuple) or len(res) != 3:
                raise ValueError("value_and_grad: must return a tuple (loss, grads, prediction), "
                                 f"got {type(res).__name__}")
            out.append(res)
        else:
            fn = evaluate if evaluate is not None else value_and_grad
            res = fn(params, X[i], y[i])
            if not isinstance(res, tuple) or len(res) not in (2, 3):
                name = "evaluate" if evaluate is not None else "value_and_grad"
                raise ValueError(f"{name}: must return a tuple (loss, prediction) or (loss, grads, "
                                 f"prediction), got {type(res).__name__}")
            out.append((res[0], res[-1]))
    return out


_WORKER_MODEL = None


def _worker_init(model):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means (the mask
    # inherited from _sigint_blocked already keeps SIGINT away; this covers 'forkserver')
    global _WORKER_MODEL
    _WORKER_MODEL = model


def _worker_run(kind, params_blob, indices):
    return _run_samples(_WORKER_MODEL, kind, pickle.loads(params_blob), indices)


@contextlib.contextmanager
def _sigint_blocked():
    """Block SIGINT in this thread for a moment. A worker process started now inherits the signal
    mask through fork and exec, so it never sees SIGINT; here a Ctrl-C meanwhile stays pending and
    is handled on unblocking (not lost)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _Serial:
    def __init__(self, model):
        self.model = model

    def run(self, kind, params, indices):
        return _run_samples(self.model, kind, params, indices)

    def close(self, wait=True):
        pass


class _Pool:
    def __init__(self, model, workers, start_method):
        self.workers = workers
        ctx = multiprocessing.get_context(start_method)
        self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                           initializer=_worker_init, initargs=(model,))

    def run(self, kind, params, indices):
        blob = pickle.dumps(params, protocol=pickle.HIGHEST_PROTOCOL)
        chunks = [c for c in np.array_split(np.asarray(indices), min(self.workers, len(indices))) if len(c)]
        futures = []
        for chunk in chunks:
            with _sigint_blocked():  # submit may start a worker process
                futures.append(self.pool.submit(_worker_run, kind, blob, chunk))
        out = []
        for fut in futures:
            out.extend(fut.result())
        return out

    def close(self, wait=True):
        self.pool.shutdown(wait=wait, cancel_futures=True)


class _StopFlag:
    """SIGINT -> flag (first time) / KeyboardInterrupt (second time); main thread only."""

    def __init__(self):
        self.set = False
        self.old = None

    def _handler(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        sys.stderr.write("\nfit: interrupt received, stopping after the current step "
                         "(Ctrl-C again to abort at once)\n")
        sys.stderr.flush()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
        return False


# --------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------


def _int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def _check_params(params):
    if not isinstance(params, dict) or not params:
        raise ValueError("params: expected a non-empty dict of name -> float64 numpy array")
    for name, p in params.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"params: names must be non-empty strings, got {name!r}")
        if not isinstance(p, np.ndarray) or p.dtype != np.float64:
            raise ValueError(f"params[{name!r}]: expected a float64 numpy array (it is updated in place), "
                             f"got {type(p).__name__} {getattr(p, 'dtype', '')}")
        if not p.flags.writeable:
            raise ValueError(f"params[{name!r}]: array is read-only (it is updated in place)")
        if not np.all(np.isfinite(p)):
            raise ValueError(f"params[{name!r}]: contains NaN or inf")


def _check_data(name, data):
    try:
        X, y = data
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a pair (X, y) of samples and labels") from None
    try:
        n = len(X)
    except TypeError:
        raise ValueError(f"{name}: X must support len() and integer indexing") from None
    y = np.asarray(y)
    if y.ndim < 1 or len(y) != n:
        raise ValueError(f"{name}: X has {n} samples but y has shape {y.shape}")
    if n == 0:
        raise ValueError(f"{name}: no samples")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: labels y contain NaN or inf")
    if isinstance(X, np.ndarray) and X.dtype.kind == "f" and not np.all(np.isfinite(X)):
        raise ValueError(f"{name}: samples X contain NaN or inf")
    return (X, y), n


def _check_loss(loss, where):
    """``loss`` as a finite float; ``where()`` names the sample in the error message."""
    if isinstance(loss, bool) or not isinstance(loss, numbers.Real | np.ndarray) or np.ndim(loss) != 0:
        raise ValueError(f"{where()}: loss must be a real scalar, got {loss!r}")
    loss = float(loss)
    if not math.isfinite(loss):
        raise ValueError(f"{where()}: loss is {loss} (non-finite)")
    return loss


_SCALARS = (int, np.integer, str)


class Score(NamedTuple):
    """A prediction that is already scored: ``correct`` of ``total`` samples right (for a
    `value_and_grad` whose one "sample" is a batch of samples, e.g. simulated as one network)."""
    correct: int
    total: int


def _correct(prediction, label):
    """(number right, number scored) for one item, or None when it has no prediction."""
    if prediction is None:
        return None
    if isinstance(prediction, Score):
        return int(prediction.correct), int(prediction.total)
    if isinstance(prediction, _SCALARS) and isinstance(label, _SCALARS):
        return int(prediction == label), 1
    return int(np.array_equal(np.asarray(prediction), np.asarray(label))), 1


def _average_grads(results, params, where):
    """Mean of the per-sample gradient dicts, summed in sample order (deterministic)."""
    total = None
    names = None
    for k, (_, grads, _) in enumerate(results):
        if not isinstance(grads, dict):
            raise ValueError(f"value_and_grad: grads must be a dict, got {type(grads).__name__} ({where(k)})")
        if names is None:
            names = list(grads)
            unknown = [g for g in names if g not in params]
            if unknown:
                raise ValueError(f"value_and_grad: gradient for unknown parameter(s) {unknown} ({where(k)})")
            total = {}
        elif len(grads) != len(names) or any(g not in grads for g in names):
            raise ValueError(f"value_and_grad: gradient names {sorted(grads)} differ from {sorted(names)} "
                             f"of the first sample of the batch ({where(k)})")
        for g in names:
            arr = grads[g]
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float64:
                arr = np.asarray(arr, dtype=np.float64)
            if arr.shape != params[g].shape:
                raise ValueError(f"value_and_grad: grads[{g!r}] has shape {arr.shape}, the parameter "
                                 f"{params[g].shape} ({where(k)})")
            if g in total:
                total[g] += arr
            else:
                total[g] = arr.copy()
    for g in names:
        if not np.all(np.isfinite(total[g])):  # find the culprit only when something is wrong
            for k, (_, grads, _) in enumerate(results):
                if not np.all(np.isfinite(np.asarray(grads[g], dtype=np.float64))):
                    raise ValueError(f"value_and_grad: grads[{g!r}] contains NaN or inf ({where(k)})")
            raise ValueError(f"value_and_grad: the sum of grads[{g!r}] over the minibatch overflows")
        total[g] /= len(results)
    return total


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def _save_checkpoint(path, params, optimizer, best_params, meta):
    arrays = {f"param/{k}": v for k, v in params.items()}
    state = optimizer.state_dict()
    for slot, d in state["slots"].items():
        arrays.update({f"optim/{slot}/{k}": v for k, v in d.items()})
    if best_params is not None:
        arrays.update({f"best/{k}": v for k, v in best_params.items()})
    meta = dict(meta, format=_FORMAT, version=_VERSION,
                optimizer={"type": state["type"], "hyper": state["hyper"], "steps": state["steps"],
                           "slots": list(state["slots"])})
    arrays["meta"] = np.array(json.dumps(meta))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path):
    """Read a checkpoint written by :func:`fit` (no pickle).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file, or the checkpoint directory.

    Returns
    -------
    dict
        ``params`` (dict of arrays), ``best_params`` (dict, empty without validation tracking),
        ``optimizer`` (a ``state_dict``, for ``load_state_dict``), ``history`` (:class:`History`),
        ``meta`` (the rest: ``epoch``, ``step``, ``config``, ...).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    with np.load(path, allow_pickle=False) as z:
        if "meta" not in z.files:
            raise ValueError(f"path: {path} is not a sparseprop checkpoint (no 'meta')")
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"path: {path} is not a sparseprop checkpoint (format {meta.get('format')!r})")
        params, best, slots = {}, {}, {s: {} for s in meta["optimizer"]["slots"]}
        for key in z.files:
            kind, _, rest = key.partition("/")
            if kind == "param":
                params[rest] = z[key]
            elif kind == "best":
                best[rest] = z[key]
            elif kind == "optim":
                slot, _, name = rest.partition("/")
                slots[slot][name] = z[key]
    opt = meta.pop("optimizer")
    optimizer = {"type": opt["type"], "hyper": opt["hyper"], "steps": opt["steps"], "slots": slots}
    history = History.from_dict(meta.pop("history"))
    return {"params": params, "best_params": best, "optimizer": optimizer, "history": history, "meta": meta}


# --------------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------------


def fit(value_and_grad, params, train_data, *, val_data=None, epochs, batch_size, optimizer, seed,
        workers=1, checkpoint_dir=None, resume=False, early_stop_patience=None, monitor="val_loss",
        min_delta=0.0, restore_best=False, clip_norm=None, progress=None, evaluate=None,
        start_method="spawn"):
    """Train ``params`` in place by minibatch gradient descent on per-sample losses.

    Parameters
    ----------
    value_and_grad : callable
        ``value_and_grad(params, x, y) -> (loss, grads, prediction)`` for one sample ``x = X[i]``
        with label ``y = y[i]``: ``loss`` a finite float, ``grads`` a dict ``name -> array`` (the
        same names at every sample, a subset of ``params``; parameters without a gradient are not
        updated), ``prediction`` compared with the label by equality for the accuracy, or ``None``.
        Must not modify ``params``. With ``workers > 1`` it must be picklable (a module-level
        function, or an instance of a module-level class, importable by a fresh interpreter).
    params : dict of str -> numpy.ndarray (float64)
        Initial parameters; updated in place (and, on resume, overwritten from the checkpoint).
    train_data : tuple (X, y)
        Training samples (anything with ``len`` and integer indexing; a NumPy array is checked for
        NaN) and labels (array, same length).
    val_data : tuple (X, y), optional
        Validation data, evaluated at the end of every epoch.
    epochs : int
        Total number of epochs (including those already done when resuming), ``>= 1``.
    batch_size : int
        Samples per minibatch, ``>= 1``; the minibatch gradient is the mean over its samples.
    optimizer : sparseprop.optim.Optimizer
        E.g. ``Adam(lr=1e-3)``. Its state is part of the checkpoint.
    seed : int
        Shuffling seed, ``>= 0`` (``numpy.random.default_rng(seed)``, one permutation per epoch).
    workers : int, default 1
        Processes evaluating the samples of a minibatch in parallel; the result is identical for any
        value.
    checkpoint_dir : str or os.PathLike, optional
        Directory for ``checkpoint.npz`` (created if needed).
    resume : bool, default False
        Continue from ``checkpoint_dir/checkpoint.npz`` if it exists (parameters, optimiser,
        history, position in the epoch); the seed, batch size, training-set size and parameter
        shapes must match. The optimiser's hyperparameters are taken from the checkpoint.
    early_stop_patience : int, optional
        Stop when the monitored validation quantity has not improved (by more than ``min_delta``)
        for this many epochs, ``>= 1``. Needs ``val_data``.
    monitor : {"val_loss", "val_accuracy"}, default "val_loss"
        What "improved" means (lower loss, higher accuracy); also defines ``History.best_epoch``.
    min_delta : float, default 0
        Minimal improvement, ``>= 0``.
    restore_best : bool, default False
        At the end, copy the parameters of the best epoch back into ``params``. Needs ``val_data``.
    clip_norm : float, optional
        Clip the minibatch gradient to this global norm (:func:`sparseprop.optim.clip_grad_norm`).
    progress : bool or None, default None
        Progress bar on stderr with the running loss/accuracy (None: only on a terminal).
    evaluate : callable, optional
        ``evaluate(params, x, y) -> (loss, prediction)`` for validation (e.g. a forward pass without
        the backward pass); default: ``value_and_grad``, gradients discarded.
    start_method : {"spawn", "forkserver"}, default "spawn"
        Start method of the worker processes.

    Returns
    -------
    History
        Per-epoch losses, accuracies, gradient norms and wall times.
    """
    if not callable(value_and_grad):
        raise ValueError("value_and_grad: expected a callable (params, x, y) -> (loss, grads, prediction)")
    if evaluate is not None and not callable(evaluate):
        raise ValueError("evaluate: expected a callable (params, x, y) -> (loss, prediction)")
    _check_params(params)
    train_data, n_train = _check_data("train_data", train_data)
    if val_data is not None:
        val_data, _ = _check_data("val_data", val_data)
    epochs = _int("epochs", epochs, 1)
    batch_size = _int("batch_size", batch_size, 1)
    seed = _int("seed", seed, 0)
    workers = _int("workers", workers, 1)
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer: expected a sparseprop.optim optimizer (Adam, SGD), got {optimizer!r}")
    if monitor not in ("val_loss", "val_accuracy"):
        raise ValueError(f"monitor: choose 'val_loss' or 'val_accuracy', got {monitor!r}")
    if early_stop_patience is not None:
        early_stop_patience = _int("early_stop_patience", early_stop_patience, 1)
    if (early_stop_patience is not None or restore_best) and val_data is None:
        raise ValueError("val_data: required for early_stop_patience / restore_best")
    if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not min_delta >= 0:
        raise ValueError(f"min_delta: expected a real number >= 0, got {min_delta!r}")
    if clip_norm is not None and (isinstance(clip_norm, bool) or not isinstance(clip_norm, numbers.Real)
                                  or not math.isfinite(clip_norm) or clip_norm <= 0):
        raise ValueError(f"clip_norm: expected a finite number > 0, got {clip_norm!r}")
    if start_method not in ("spawn", "forkserver"):
        raise ValueError(f"start_method: choose 'spawn' or 'forkserver', got {start_method!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("checkpoint_dir: required with resume=True")
    if workers > 1:
        for name, fn in (("value_and_grad", value_and_grad), ("evaluate", evaluate)):
            try:
                pickle.dumps(fn)
            except Exception as exc:
                raise ValueError(f"{name}: must be picklable with workers > 1 (a module-level function "
                                 f"or class instance): {exc}") from None

    config = {"seed": seed, "batch_size": batch_size, "n_train": n_train,
              "params": {k: list(v.shape) for k, v in params.items()}}
    history = History(monitor=monitor)
    start_epoch, start_step = 0, 0
    running = {"loss": 0.0, "correct": 0, "predicted": 0, "count": 0, "norm": 0.0, "wall": 0.0}
    es = {"best": None, "best_epoch": None, "bad": 0}
    best_params = None
    ckpt = None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        ckpt = checkpoint_dir / CHECKPOINT_NAME
    if resume and ckpt.exists():
        saved = load_checkpoint(ckpt)
        meta = saved["meta"]
        if meta["config"] != config:
            raise ValueError(f"resume: checkpoint {ckpt} was written with a different configuration "
                             f"{meta['config']} than this run {config}; use another checkpoint_dir")
        for k, v in saved["params"].items():
            params[k][...] = v
        optimizer.load_state_dict(saved["optimizer"])
        history = saved["history"]
        if history.monitor != monitor:
            raise ValueError(f"monitor: the checkpoint monitors {history.monitor!r}, not {monitor!r}")
        start_epoch, start_step = meta["epoch"], meta["step"]
        running, es = meta["running"], meta["early_stop"]
        best_params = saved["best_params"] or None
        history.interrupted = False
        if history.stopped_early:
            if restore_best and best_params is not None:
                for k, v in best_params.items():
                    params[k][...] = v
            return history

    rng = np.random.default_rng(seed)
    for _ in range(start_epoch):  # replay the permutations of the epochs already done
        rng.permutation(n_train)
    n_steps = -(-n_train // batch_size)
    data = {"train": train_data, "val": val_data}
    model = (value_and_grad, evaluate, data)
    bar = Progress(epochs * n_steps, "steps", enabled=progress, label="fit")

    def meta(epoch, step):
        return {"epoch": epoch, "step": step, "running": running, "early_stop": es, "config": config,
                "history": history.to_dict()}

    runner = None
    clean = False
    try:
        runner = _Pool(model, workers, start_method) if workers > 1 else _Serial(model)
        with _StopFlag() as stop:
            for epoch in range(start_epoch, epochs):
                perm = rng.permutation(n_train)
                first = start_step if epoch == start_epoch else 0
                t_epoch = time.perf_counter() - running["wall"]
                for step in range(first, n_steps):
                    if stop.set:
                        running["wall"] = time.perf_counter() - t_epoch
                        history.interrupted = True
                        if ckpt is not None:
                            _save_checkpoint(ckpt, params, optimizer, best_params, meta(epoch, step))
                        break
                    idx = perm[step * batch_size:(step + 1) * batch_size]
                    results = runner.run("train", params, idx)

                    def where(k, idx=idx, epoch=epoch):
                        return f"training sample {int(idx[k])}, epoch {epoch + 1}"

                    labels = train_data[1]
                    for k, (loss, _, pred) in enumerate(results):
                        running["loss"] += _check_loss(loss, lambda: f"value_and_grad ({where(k)})")
                        ok = _correct(pred, labels[idx[k]])
                        if ok is not None:
                            running["correct"] += ok[0]
                            running["predicted"] += ok[1]
                    running["count"] += len(results)
                    grads = _average_grads(results, params, where)
                    if clip_norm is not None:
                        norm = clip_grad_norm(grads, clip_norm)
                    else:
                        norm = global_norm(grads)
                    running["norm"] += norm
                    optimizer.step(params, grads)
                    done = epoch * n_steps + step + 1
                    acc = running["correct"] / running["predicted"] if running["predicted"] else math.nan
                    bar.update(done, extra=f"epoch {epoch + 1}/{epochs} loss {running['loss'] / running['count']:.4g} "
                                           f"acc {acc:.3f}")
                if history.interrupted:
                    break
                # ---- end of epoch: validation, record, early stopping, checkpoint
                val_loss = val_acc = math.nan
                if val_data is not None:
                    val_loss, val_acc = _score(runner, params, val_data[1])
                history._append(
                    epoch=epoch + 1, train_loss=running["loss"] / running["count"],
                    train_accuracy=running["correct"] / running["predicted"] if running["predicted"] else math.nan,
                    val_loss=val_loss, val_accuracy=val_acc, grad_norm=running["norm"] / n_steps,
                    wall_s=time.perf_counter() - t_epoch)
                running = {"loss": 0.0, "correct": 0, "predicted": 0, "count": 0, "norm": 0.0, "wall": 0.0}
                if val_data is not None:
                    value = val_loss if monitor == "val_loss" else val_acc
                    better = (es["best"] is None or
                              (value < es["best"] - min_delta if monitor == "val_loss"
                               else value > es["best"] + min_delta))
                    if better and not math.isnan(value):
                        es.update(best=value, best_epoch=epoch + 1, bad=0)
                        best_params = {k: v.copy() for k, v in params.items()}
                    else:
                        es["bad"] += 1
                    history.best_epoch = es["best_epoch"]
                    if early_stop_patience is not None and es["bad"] >= early_stop_patience:
                        history.stopped_early = True
                if stop.set and epoch + 1 < epochs and not history.stopped_early:
                    history.interrupted = True
                if ckpt is not None:
                    _save_checkpoint(ckpt, params, optimizer, best_params, meta(epoch + 1, 0))
                if val_data is not None:
                    bar.update((epoch + 1) * n_steps, force=True,
                               extra=f"epoch {epoch + 1}/{epochs} loss {history.train_loss[-1]:.4g} "
                                     f"acc {history.train_accuracy[-1]:.3f} val_loss {val_loss:.4g} "
                                     f"val_acc {val_acc:.3f}")
                if history.stopped_early or history.interrupted:
                    break
        clean = True
    finally:
        bar.close()
        if runner is not None:
            runner.close(wait=clean)
    if restore_best and best_params is not None and not history.interrupted:
        for k, v in best_params.items():
            params[k][...] = v
    return history


def _score(runner, params, labels):
    results = runner.run("val", params, np.arange(len(labels)))
    loss = 0.0
    correct = predicted = 0
    for k, (value, pred) in enumerate(results):
        loss += _check_loss(value, lambda: f"evaluation of sample {k}")
        ok = _correct(pred, labels[k])
        if ok is not None:
            correct += ok[0]
            predicted += ok[1]
    return loss / len(results), (correct / predicted if predicted else math.nan)


def evaluate_dataset(evaluate, params, data, *, workers=1, start_method="spawn"):
    """Mean loss and accuracy of a model on a data set.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(params, x, y) -> (loss, prediction)``, or a ``value_and_grad`` function (its
        3-tuple's gradients are discarded).
    params : dict of str -> numpy.ndarray
        Parameters (not modified).
    data : tuple (X, y)
        Samples and labels.
    workers : int, default 1
        Worker processes (the result does not depend on it).
    start_method : {"spawn", "forkserver"}
        Start method of the worker processes.

    Returns
    -------
    loss : float
        Mean loss over the samples.
    accuracy : float
        Fraction of predictions equal to the label (``nan`` if there are none).
    """
    if not callable(evaluate):
        raise ValueError("evaluate: expected a callable (params, x, y) -> (loss, prediction)")
    data, _ = _check_data("data", data)
    workers = _int("workers", workers, 1)
    if start_method not in ("spawn", "forkserver"):
        raise ValueError(f"start_method: choose 'spawn' or 'forkserver', got {start_method!r}")
    if workers > 1:
        try:
            pickle.dumps(evaluate)
        except Exception as exc:
            raise ValueError(f"evaluate: must be picklable with workers > 1 (a module-level function "
                             f"or class instance): {exc}") from None
    model = (evaluate, evaluate, {"val": data})
    runner = _Pool(model, workers, start_method) if workers > 1 else _Serial(model)
    try:
        return _score(runner, params, data[1])
    finally:
        runner.close()
