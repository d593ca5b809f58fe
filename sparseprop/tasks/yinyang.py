r"""Yin-Yang classification with exact gradients: ``sparseprop train yinyang``.

The task (Kriener, Goeltz and Petrovici 2021) is generated in code (`sparseprop.datasets`): a point
of the Yin-Yang symbol, features ``(x, y, 1 - x, 1 - y)`` in ``[0, 1]``, three classes (a linear
classifier reaches about 64 %, the literature with exact spike-time gradients 95-97 %).

Network
-------
One `sparseprop.Network` of LIF neurons (threshold 1, rest 0, ``tau`` = 10 ms, drive ``I`` = 1.2):

* **inputs**: 5 input sources, each sending ONE spike: feature ``v`` at ``t = v * t_late``
  (latency code, `encode_latency`, ``t_late`` = 10 ms) and a **bias** source that spikes at
  ``t_bias`` = 0 for every sample. Every source projects to every hidden and output neuron with a
  trained weight: the bias weights are the neurons' trainable offsets (a voltage jump at a fixed
  time shifts a neuron's spike time by the same amount for every sample), the feature weights make
  the shift depend on the input.
* **hidden layer**: ``n_hidden`` neurons with SPARSE RECURRENT connections: each hidden neuron
  projects to ``k_recurrent`` other hidden neurons (random, fixed by ``structure_seed``; the
  weights are trained) and to the 3 output neurons.
* **outputs**: 3 neurons read out by their first spike time; the earliest one is the predicted
  class (`ttfs_prediction`). Loss: the time-to-first-spike cross-entropy (`ttfs_cross_entropy`,
  softmax temperature ``tau_s`` = 3 ms).

Every neuron fires at most once per sample: the refractory period is the whole window ``t_max``
(100 ms), so "first spike" is "the spike", and a neuron that has fired ignores later inputs.

Why suprathreshold neurons
--------------------------
Synapses are instantaneous voltage jumps. A neuron below threshold fires only at the very instant
of an input that lifts it across, so its spike time is that input's time and carries no gradient
with respect to any weight (`sparseprop.grad`). Here every neuron has drive ``I > 1``: it is on its
free orbit and would fire on its own at ``T = tau ln((I - v0) / (I - 1))``; an excitatory jump
advances and an inhibitory jump delays that spike smoothly (``dt = -tau w e^{-(T - s)/tau} /
(I - 1)`` to first order for a jump ``w`` at ``s``), so spike times are differentiable functions of
all weights and input times. The initial voltage ``v0`` is chosen per layer so that, without input,
the hidden neurons fire at ``t_hidden`` = 20 ms (after all input spikes, which come in [0, 10 ms])
and the outputs at ``t_output`` = 40 ms (after most hidden spikes): inputs arrive while a neuron is
still far below threshold, where jumps shift its spike smoothly. (``v0 = I - (I - 1) e^{T/tau}`` is
negative; it only sets the phase of the free orbit at t = 0.)

What remains non-smooth: an excitatory jump that lifts a neuron that is already close to threshold
fires it at once ("triggered" spike). Its time is then the presynaptic spike's time (the gradient
flows on to that neuron), and its own incoming weights get no gradient from it. The initial weights
are moderate (Gaussian, standard deviations: input 0.3, recurrent 0.2/sqrt(n_hidden), output
0.5/sqrt(n_hidden)): at initialisation about a third of the hidden spikes (set off by recurrent
excitation or by the input jumps) and no output spike are triggered; after the default training
about 60 % and 25-30 % are (the summary's ``triggered_fraction_hidden`` / ``_output``, measured on
200 test samples). Training works with them, since their timing still passes gradient upstream.
An output that never fires within ``t_max`` counts as firing at ``t_max`` (``t_missing``); if that
is the labelled output its bias weight is pushed up by `missing_spike_drive_gradient` (surrogate
``dt/dw = -tau``; rare with suprathreshold outputs).

Defaults: 160 hidden neurons, recurrent out-degree 16 (3,855 trained weights), 50 epochs of 5,000
samples, minibatch 50, Adam (lr 1e-3, decayed by 0.94 per epoch), the best epoch by validation
accuracy is kept: test accuracy 0.973 in 189 s on a 2-core machine (seed 0; seeds 1 and 2 of
shorter runs gave 0.957-0.969).

Speed: one simulation per minibatch chunk
-----------------------------------------
One sample is a simulation of ``n_hidden + 3`` neurons with as many spikes; the fixed Python cost
of `simulate` + `vjp` per call dominates such a small event loop. A chunk of ``chunk`` samples is
therefore simulated as ONE network of ``chunk`` disjoint copies (block-diagonal CSR, weights
shared, per-copy input spikes), and the gradients of the copies are summed. Measured with the
default network (forward + backward): 613 samples/s one sample per simulation, 1,540 with 25 or
50 per simulation (forward only: 1,240 -> 2,750-3,450). The training set is split once into
chunks, which are `sparseprop.training.fit`'s "samples": ``fit`` shuffles the chunks, takes
``batch_size / chunk`` of them per step (spread over ``workers`` processes) and handles progress,
Ctrl-C, checkpoints and early stopping; each chunk reports its `sparseprop.training.Score`, so
``fit``'s running training accuracy counts every sample (with the weights of the step that saw
it; the final training accuracy in the summary uses the final weights). Validation samples are single samples
whose evaluation is memoised by blocks: the first call with new parameters simulates a block of
samples at once. On the shared 2-core machine ``workers = 2`` did not help (the pool's traffic per
step and the other core's load; 1,060-1,330 vs 1,380 training samples/s), hence the default 1.

Learning rate: Adam with an exponential decay by ``lr_decay`` per epoch (`sparseprop.optim.DecayingAdam`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sparseprop.optim import DecayingAdam
from sparseprop.tasks import arg_int, arg_real
from sparseprop.training import Score

__all__ = ["YinYangNetwork", "ChunkLoss", "MemoEvaluator", "train", "add_subparser",
           "run", "DEFAULTS"]

N_IN = 5          # x, y, 1 - x, 1 - y, bias
N_OUT = 3

DEFAULTS = {
    "epochs": 50, "n_hidden": 160, "k_recurrent": 16, "lr": 1e-3, "lr_decay": 0.94, "batch_size": 50,
    "chunk": 25, "workers": 1, "seed": 0, "data_seed": 42, "n_train": 5000, "n_val": 1000,
    "n_test": 1000,
}


# --------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YinYangNetwork:
    """Architecture and time scales of the Yin-Yang network (see the module docstring).

    Parameters
    ----------
    n_hidden : int
        Hidden neurons, ``>= 1``.
    k_recurrent : int
        Recurrent out-degree of a hidden neuron (hidden targets), ``0 <= k_recurrent < n_hidden``.
    tau : float
        Membrane time constant, s.
    drive : float
        LIF drive of every neuron, ``> 1`` (suprathreshold).
    t_hidden, t_output : float
        Free spike time (no input) of the hidden and output neurons, s; sets their initial voltage.
    t_late : float
        Input spike time of feature value 1 (value 0 spikes at 0), s.
    t_bias : float
        Spike time of the bias input, s.
    t_max : float
        End of the simulated window and refractory period (each neuron fires at most once), s;
        a silent output counts as firing at ``t_max``.
    tau_s : float
        Softmax temperature of the time-to-first-spike cross-entropy, s.
    alpha : float
        Weight of the loss's regulariser that pulls the labelled output earlier (0: off).
    structure_seed : int
        Seed of the recurrent wiring.
    """

    n_hidden: int = 160
    k_recurrent: int = 16
    tau: float = 0.01
    drive: float = 1.2
    t_hidden: float = 0.02
    t_output: float = 0.04
    t_late: float = 0.01
    t_bias: float = 0.0
    t_max: float = 0.1
    tau_s: float = 0.003
    alpha: float = 0.0
    structure_seed: int = 0

    def __post_init__(self):
        if not isinstance(self.n_hidden, int) or self.n_hidden < 1:
            raise ValueError(f"n_hidden: expected an integer >= 1, got {self.n_hidden!r}")
        if not isinstance(self.k_recurrent, int) or not 0 <= self.k_recurrent < self.n_hidden:
            raise ValueError(f"k_recurrent: expected an integer in [0, n_hidden) = [0, {self.n_hidden}), "
                             f"got {self.k_recurrent!r}")
        for name in ("tau", "t_hidden", "t_output", "t_late", "t_max", "tau_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a finite time > 0 s, got {value!r}")
        if not (math.isfinite(self.drive) and self.drive > 1):
            raise ValueError(f"drive: must be > 1 (suprathreshold neurons), got {self.drive!r}")
        if not (math.isfinite(self.t_bias) and 0 <= self.t_bias < self.t_max):
            raise ValueError(f"t_bias: expected a time in [0, t_max), got {self.t_bias!r}")
        if not self.t_late < self.t_max:
            raise ValueError(f"t_late: must be < t_max = {self.t_max} s, got {self.t_late}")
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha: expected a real number >= 0, got {self.alpha!r}")

    # ---- derived quantities ----------------------------------------------------------------------

    @property
    def n(self):
        """Neurons per copy: hidden first, then the 3 outputs."""
        return self.n_hidden + N_OUT

    def initial_voltage(self, t_free):
        """Voltage at t = 0 of a neuron that, without input, fires at ``t_free`` seconds."""
        return self.drive - (self.drive - 1.0) * math.exp(t_free / self.tau)

    def recurrent_targets(self):
        """(n_hidden, k_recurrent) int array: the hidden targets of each hidden neuron (sorted,
        never itself), a pure function of ``structure_seed``."""
        rng = np.random.default_rng(self.structure_seed)
        nh, k = self.n_hidden, self.k_recurrent
        out = np.empty((nh, k), dtype=np.int64)
        for j in range(nh):
            pick = rng.choice(nh - 1, size=k, replace=False)
            out[j] = np.sort(pick + (pick >= j))         # skip j itself
        return out

    def init_params(self, seed, in_std=0.3, rec_scale=0.2, out_scale=0.5):
        """Initial weights: ``w_in`` (5, n), ``w_rec`` (n_hidden, k_recurrent), ``w_out``
        (n_hidden, 3), Gaussian with zero mean and standard deviations ``in_std``,
        ``rec_scale / sqrt(n_hidden)``, ``out_scale / sqrt(n_hidden)``."""
        rng = np.random.default_rng(seed)
        nh = self.n_hidden
        return {"w_in": rng.normal(0.0, in_std, (N_IN, self.n)),
                "w_rec": rng.normal(0.0, rec_scale / math.sqrt(nh), (nh, self.k_recurrent)),
                "w_out": rng.normal(0.0, out_scale / math.sqrt(nh), (nh, N_OUT))}

    # ---- simulation ------------------------------------------------------------------------------

    def input_times(self, X):
        """(B, 5) input spike times, s, of features ``X`` (B, 4)."""
        from sparseprop.datasets import encode_latency

        return encode_latency(X, 0.0, self.t_late, bias_time=self.t_bias)

    def build(self, params, X, targets=None):
        """The network of ``B = len(X)`` disjoint copies and its initial voltages.

        Copy ``b`` holds neurons ``b n ... b n + n - 1`` (hidden, then outputs) and input sources
        ``5 b ... 5 b + 4``. Recurrent CSR row of hidden neuron ``j``: its ``k_recurrent`` hidden
        targets, then the 3 outputs, i.e. weights ``[w_rec[j], w_out[j]]``; output rows are empty.
        """
        import sparseprop as sp

        X = np.asarray(X, dtype=np.float64)
        B, n, nh, k = X.shape[0], self.n, self.n_hidden, self.k_recurrent
        if targets is None:
            targets = self.recurrent_targets()
        row_targets = np.concatenate([targets, np.broadcast_to(nh + np.arange(N_OUT), (nh, N_OUT))], axis=1)
        off = n * np.arange(B, dtype=np.int64)
        deg = np.r_[np.full(nh, k + N_OUT), np.zeros(N_OUT, np.int64)]
        indptr = np.concatenate([[0], np.cumsum(np.tile(deg, B))])
        indices = (row_targets.ravel()[None, :] + off[:, None]).ravel()
        w_row = np.concatenate([params["w_rec"], params["w_out"]], axis=1).ravel()
        conn = sp.SparseConnectivity(indptr, indices, np.tile(w_row, B))
        times = self.input_times(X).ravel()                   # source 5 b + i
        order = np.argsort(times, kind="stable")
        in_indices = (off[:, None, None] + np.zeros((1, N_IN, 1), np.int64) + np.arange(n)[None, None, :]).ravel()
        in_conn = sp.SparseConnectivity(np.arange(0, N_IN * B * n + 1, n), in_indices,
                                        np.tile(params["w_in"].ravel(), B), n_post=B * n)
        inputs = [sp.SpikeTrainInput(times[order], np.arange(N_IN * B)[order], in_conn)]
        net = sp.Network(sp.LIF(), B * n, self.drive, self.tau, conn, refractory=self.t_max, inputs=inputs)
        v0 = np.tile(np.r_[np.full(nh, self.initial_voltage(self.t_hidden)),
                           np.full(N_OUT, self.initial_voltage(self.t_output))], B)
        return net, v0

    def forward(self, params, X, labels=None, *, grad=False, targets=None):
        """Simulate a chunk of samples as one network; losses, predictions and (optionally) the
        gradient of the MEAN loss over the chunk.

        Parameters
        ----------
        params : dict
            ``w_in``, ``w_rec``, ``w_out`` (see `init_params`).
        X : array (B, 4)
            Features in [0, 1].
        labels : array (B,) of int, optional
            Needed for the losses and the gradient.
        grad : bool
            Also run the backward pass.

        Returns
        -------
        dict
            ``first_times`` (B, 3) s (inf: silent), ``prediction`` (B,), ``loss`` (B,) or None,
            ``grads`` (dict like ``params``) or None, ``stats`` (spikes, triggered fractions).
        """
        import sparseprop as sp
        from sparseprop.grad import spike_records, vjp
        from sparseprop.losses import (kth_spike_times, missing_spike_drive_gradient,
                                       ttfs_cross_entropy, ttfs_prediction)

        net, v0 = self.build(params, X, targets)
        B, n, nh = len(X), self.n, self.n_hidden
        res = sp.simulate(net, spikes=B * n, t_max=self.t_max, initial_voltages=v0, tape=grad,
                          progress=False)
        out_ids = (n * np.arange(B)[:, None] + nh + np.arange(N_OUT)[None, :]).ravel()
        t_out, idx = kth_spike_times(res.times, res.neurons, out_ids, 0, return_index=True)
        t_out, idx = t_out.reshape(B, N_OUT), idx.reshape(B, N_OUT)
        out = {"first_times": t_out, "prediction": ttfs_prediction(t_out), "loss": None, "grads": None,
               "stats": {"spikes": int(res.n_spikes)}}
        if labels is None:
            return out
        labels = np.asarray(labels)
        loss = np.empty(B)
        g_times = np.zeros(res.n_spikes)
        g_bias = np.zeros(N_OUT)
        for b in range(B):
            lr = ttfs_cross_entropy(t_out[b], int(labels[b]), self.tau_s, t_missing=self.t_max,
                                    alpha=self.alpha)
            loss[b] = lr.value
            fired = idx[b] >= 0
            g_times[idx[b][fired]] = lr.grad[fired] / B
            if lr.missing.any():            # a silent output the loss wants: raise its bias weight
                g_bias += missing_spike_drive_gradient(lr.grad, lr.missing, self.tau) / B
        out["loss"] = loss
        if grad:
            g = vjp(res, g_times)
            gw = g.weights.reshape(B, nh, self.k_recurrent + N_OUT).sum(axis=0)
            g_in = g.input_weights[0].reshape(B, N_IN, n).sum(axis=0)
            g_in[N_IN - 1, nh:] += g_bias
            out["grads"] = {"w_in": g_in, "w_rec": np.ascontiguousarray(gw[:, :self.k_recurrent]),
                            "w_out": np.ascontiguousarray(gw[:, self.k_recurrent:])}
            kind = res.tape["kind"][spike_records(res)]
            is_out = (res.neurons % n) >= nh
            trig = kind == 1            # sparseprop.grad.TAPE_TRIGGERED
            out["stats"].update(triggered_hidden=float(trig[~is_out].mean()) if (~is_out).any() else 0.0,
                                triggered_output=float(trig[is_out].mean()) if is_out.any() else 0.0)
        return out

    def evaluate(self, params, X, y, block=500):
        """Mean loss, accuracy and predictions over a data set, ``block`` samples per simulation."""
        losses, preds = [], []
        for s in range(0, len(y), block):
            o = self.forward(params, X[s:s + block], y[s:s + block])
            losses.append(o["loss"])
            preds.append(o["prediction"])
        loss, pred = np.concatenate(losses), np.concatenate(preds)
        return float(loss.mean()), float(np.mean(pred == y)), pred


# --------------------------------------------------------------------------------------------------
# What sparseprop.training.fit calls (module-level classes: picklable for worker processes)
# --------------------------------------------------------------------------------------------------


class ChunkLoss:
    """``fit``'s ``value_and_grad`` for one chunk: ``x`` is a (c, 5) array (features, label),
    ``y`` the label of its first sample. Returns the chunk's mean loss, the gradient of that mean
    and the chunk's `Score` (``fit``'s running accuracy counts every sample)."""

    def __init__(self, network):
        self.network = network
        self._targets = None

    def __getstate__(self):
        return {"network": self.network, "_targets": None}

    def __call__(self, params, x, y):
        if self._targets is None:
            self._targets = self.network.recurrent_targets()
        x = np.asarray(x)
        labels = x[:, 4].astype(np.int64)
        o = self.network.forward(params, x[:, :4], labels, grad=True, targets=self._targets)
        return float(o["loss"].mean()), o["grads"], Score(int(np.sum(o["prediction"] == labels)), len(labels))


class MemoEvaluator:
    """``fit``'s ``evaluate(params, x, y) -> (loss, prediction)`` for one validation sample, with
    ``x`` = (4 features, index into ``X``). Memoised: a miss simulates samples ``index ...
    index + block - 1`` at once with these parameters (identified by a hash of their values) and
    caches their results; ``fit`` asks for the samples in order, so each block is simulated once."""

    def __init__(self, network, X, y, block=250):
        self.network, self.X, self.y, self.block = network, np.asarray(X), np.asarray(y), int(block)
        self._key, self._cache, self._targets = None, {}, None

    def __getstate__(self):
        return {"network": self.network, "X": self.X, "y": self.y, "block": self.block,
                "_key": None, "_cache": {}, "_targets": None}

    @staticmethod
    def _hash(params):
        h = hashlib.blake2b(digest_size=16)
        for name in sorted(params):
            h.update(name.encode())
            h.update(np.ascontiguousarray(params[name]).tobytes())
        return h.digest()

    def __call__(self, params, x, y):
        i = int(x[-1])
        key = self._hash(params)
        if key != self._key:
            self._key, self._cache = key, {}
        if i not in self._cache:
            if self._targets is None:
                self._targets = self.network.recurrent_targets()
            stop = min(i + self.block, len(self.y))
            o = self.network.forward(params, self.X[i:stop], self.y[i:stop], targets=self._targets)
            for j in range(i, stop):
                self._cache[j] = (float(o["loss"][j - i]), int(o["prediction"][j - i]))
        return self._cache[i]


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def _chunks(X, y, chunk):
    """Split (X, y) into near-equal consecutive chunks of at most ``chunk`` samples: ``fit``'s
    training items, each a (c, 5) array (features, label), and the first label of each."""
    n_chunks = -(-len(y) // chunk)
    parts = np.array_split(np.column_stack([X, y.astype(np.float64)]), n_chunks)
    return parts, np.array([int(p[0, 4]) for p in parts], dtype=np.int64)


def train(network=None, *, epochs=DEFAULTS["epochs"], lr=DEFAULTS["lr"], lr_decay=DEFAULTS["lr_decay"],
          batch_size=DEFAULTS["batch_size"], chunk=DEFAULTS["chunk"], workers=DEFAULTS["workers"],
          seed=DEFAULTS["seed"], data_seed=DEFAULTS["data_seed"], n_train=DEFAULTS["n_train"],
          n_val=DEFAULTS["n_val"], n_test=DEFAULTS["n_test"], out=None, resume=False,
          early_stop_patience=None, clip_norm=None, progress=None):
    """Train the Yin-Yang network with `sparseprop.training.fit`; returns a summary dict (plus the
    non-JSON entries ``_history``, ``_params``, ``_test`` used for the figure).

    ``batch_size`` must be a multiple of ``chunk`` (samples per simulation); ``n_val`` may be 0
    (no validation, no best-epoch restore). With ``out``, ``fit`` writes its checkpoint there
    (``resume`` continues from it).
    """
    from sparseprop.datasets import yinyang_split
    from sparseprop.training import fit

    if network is None:
        network = YinYangNetwork(structure_seed=seed)
    if batch_size % chunk:
        raise ValueError(f"batch_size: must be a multiple of chunk = {chunk} (samples per simulation), "
                         f"got {batch_size}")
    if n_train < chunk:
        raise ValueError(f"n_train: must be >= chunk = {chunk}, got {n_train}")
    if resume and out is None:
        raise ValueError("resume: needs --out DIR (the checkpoint to continue)")
    t0 = time.perf_counter()
    (Xtr, ytr), (Xva, yva), (Xte, yte) = yinyang_split(n_train, n_val, n_test, seed=data_seed)
    params = network.init_params(seed)
    items, first_labels = _chunks(Xtr, ytr, chunk)
    steps_per_epoch = -(-len(items) // (batch_size // chunk))
    opt = DecayingAdam(lr=lr, decay=lr_decay, decay_steps=steps_per_epoch)
    val = None
    evaluator = None
    if n_val:
        val = (np.column_stack([Xva, np.arange(n_val)]), yva)
        evaluator = MemoEvaluator(network, Xva, yva)
    t_fit = time.perf_counter()
    history = fit(ChunkLoss(network), params, (items, first_labels), val_data=val, epochs=epochs,
                  batch_size=batch_size // chunk, optimizer=opt, seed=seed, workers=workers,
                  checkpoint_dir=out, resume=resume, early_stop_patience=early_stop_patience,
                  monitor="val_accuracy", restore_best=bool(n_val), clip_norm=clip_norm,
                  progress=progress, evaluate=evaluator)
    fit_s = time.perf_counter() - t_fit
    # final numbers with the final (best-epoch) parameters, every sample
    t_eval = time.perf_counter()
    train_loss, train_acc, _ = network.evaluate(params, Xtr, ytr)
    val_loss, val_acc = (network.evaluate(params, Xva, yva)[:2] if n_val else (None, None))
    test_loss, test_acc, test_pred = network.evaluate(params, Xte, yte) if n_test else (None, None, None)
    probe = network.forward(params, Xte[:200] if n_test else Xtr[:200], yte[:200] if n_test else ytr[:200],
                            grad=True)["stats"]
    eval_s = time.perf_counter() - t_eval
    trained_samples = len(history) * n_train   # completed epochs (an interrupted epoch is not counted)
    epoch_s = [w for w in history.wall_s]
    summary = {
        "task": "yinyang",
        "test_accuracy": test_acc, "train_accuracy": train_acc, "val_accuracy": val_acc,
        "test_loss": test_loss, "train_loss": train_loss, "val_loss": val_loss,
        "final_running_train_loss": history.train_loss[-1] if len(history) else None,
        "epochs": len(history), "epochs_requested": epochs, "best_epoch": history.best_epoch,
        "interrupted": bool(history.interrupted), "stopped_early": bool(history.stopped_early),
        "wall_s": round(time.perf_counter() - t0, 3), "fit_wall_s": round(fit_s, 3),
        "eval_wall_s": round(eval_s, 3),
        "train_samples_per_s": round(trained_samples / sum(epoch_s), 1) if epoch_s and sum(epoch_s) else None,
        "n_hidden": network.n_hidden, "k_recurrent": network.k_recurrent,
        "n_params": int(sum(p.size for p in params.values())),
        "seed": seed, "data_seed": data_seed, "n_train": n_train, "n_val": n_val, "n_test": n_test,
        "batch_size": batch_size, "chunk": chunk, "workers": workers, "lr": lr, "lr_decay": lr_decay,
        "triggered_fraction_hidden": round(probe.get("triggered_hidden", math.nan), 4),
        "triggered_fraction_output": round(probe.get("triggered_output", math.nan), 4),
        "network": asdict(network),
        "_history": history, "_params": params, "_test": (Xte, yte, test_pred),
    }
    return summary


# --------------------------------------------------------------------------------------------------
# Figure and outputs
# --------------------------------------------------------------------------------------------------


def plot(history, test=None, path=None, title=None):
    """Loss and accuracy per epoch (train running / validation) and, with ``test = (X, y, pred)``,
    the test set coloured by predicted class (misclassified points marked)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = 3 if test is not None and test[2] is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8), constrained_layout=True)
    history.plot(axes=axes[:2])
    for ax in axes[:2]:                 # fit's running training accuracy: during the epoch
        for line in ax.get_lines():
            if line.get_label() == "train":
                line.set_label("train (running)")
        ax.legend()
    axes[0].set_ylabel("TTFS cross-entropy")
    axes[1].set_ylabel("accuracy")
    if panels == 3:
        from sparseprop.datasets import YINYANG_CLASSES

        X, y, pred = test
        ax = axes[2]
        colors = ["tab:blue", "tab:orange", "tab:green"]
        ok = pred == y
        for c, name in enumerate(YINYANG_CLASSES):
            sel = ok & (pred == c)
            ax.scatter(X[sel, 0], X[sel, 1], color=colors[c], s=7, lw=0, label=name)
            sel = ~ok & (pred == c)
            ax.scatter(X[sel, 0], X[sel, 1], color=colors[c], s=24, marker="x", lw=1)
        silent = pred < 0
        if silent.any():
            ax.scatter(X[silent, 0], X[silent, 1], color="0.4", s=24, marker="x", lw=1, label="no spike")
        ax.scatter([], [], color="k", s=24, marker="x", lw=1, label="wrong")
        ax.set_aspect("equal")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(loc="upper right", fontsize=7, markerscale=1.5)
        ax.set_title(f"test set by predicted class ({np.mean(ok):.1%})")
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


def _write_outputs(summary, out, plot_path):
    history, params, test = summary["_history"], summary["_params"], summary["_test"]
    title = (f"Yin-Yang, {summary['n_hidden']} hidden neurons (recurrent out-degree {summary['k_recurrent']}): "
             f"test accuracy {summary['test_accuracy']:.3f}" if summary["test_accuracy"] is not None else None)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "history.json").write_text(json.dumps(history.to_dict(), indent=1))
        net = YinYangNetwork(**summary["network"])
        np.savez(out / "params.npz", recurrent_targets=net.recurrent_targets(), **params)
        if len(history):
            try:
                plot(history, test, out / "yinyang.png", title)
            except ImportError:         # no matplotlib: everything but the figure
                pass
    if plot_path is not None and len(history):
        plot(history, test, plot_path, title)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def add_subparser(sub):
    d = DEFAULTS
    p = sub.add_parser(
        "yinyang", help="Yin-Yang classification (sparse recurrent hidden layer, first-spike readout)",
        description="Train a spiking network with exact gradients on the Yin-Yang data set (Kriener et "
        "al. 2021): inputs (x, y, 1-x, 1-y) and a bias as input spike times, a hidden layer of "
        "suprathreshold LIF neurons with sparse recurrent connections, 3 outputs read out by their "
        "first spike (time-to-first-spike cross-entropy). Ctrl-C stops after the current step and "
        "still reports.")
    p.add_argument("--epochs", type=arg_int("epochs", 1), default=d["epochs"],
                   help=f"training epochs (default {d['epochs']})")
    p.add_argument("--hidden", dest="n_hidden", metavar="N", type=arg_int("hidden", 1), default=d["n_hidden"],
                   help=f"hidden neurons (default {d['n_hidden']})")
    p.add_argument("--recurrent", dest="k_recurrent", metavar="K", type=arg_int("recurrent", 0),
                   default=d["k_recurrent"], help="recurrent out-degree of a hidden neuron (hidden targets, "
                   f"default {d['k_recurrent']}; 0: feed-forward)")
    p.add_argument("--lr", type=arg_real("lr", 0.0), default=d["lr"],
                   help=f"Adam learning rate (default {d['lr']})")
    p.add_argument("--lr-decay", type=arg_real("lr_decay", 0.0, 1.0),
                   default=d["lr_decay"], help=f"learning-rate factor per epoch (default {d['lr_decay']})")
    p.add_argument("--batch-size", type=arg_int("batch_size", 1), default=d["batch_size"],
                   help=f"samples per minibatch (default {d['batch_size']}; a multiple of --chunk)")
    p.add_argument("--chunk", type=arg_int("chunk", 1), default=d["chunk"],
                   help=f"samples simulated together as one network (default {d['chunk']})")
    p.add_argument("--workers", type=arg_int("workers", 1), default=d["workers"],
                   help=f"worker processes (default {d['workers']}; results do not depend on it)")
    p.add_argument("--seed", type=arg_int("seed", 0), default=d["seed"],
                   help="seed of the initial weights, the recurrent wiring and the shuffling (default 0)")
    p.add_argument("--data-seed", type=arg_int("data_seed", 0), default=d["data_seed"],
                   help=f"seed of the data set (default {d['data_seed']})")
    p.add_argument("--n-train", type=arg_int("n_train", 1), default=d["n_train"],
                   help=f"training samples (default {d['n_train']})")
    p.add_argument("--n-val", type=arg_int("n_val", 0), default=d["n_val"],
                   help=f"validation samples (default {d['n_val']}; best epoch restored)")
    p.add_argument("--n-test", type=arg_int("n_test", 1), default=d["n_test"],
                   help=f"test samples (default {d['n_test']})")
    p.add_argument("--patience", type=arg_int("patience", 1), default=None,
                   help="early stopping after this many epochs without a better validation accuracy")
    p.add_argument("--clip-norm", type=arg_real("clip_norm", 0.0), default=None,
                   help="clip the minibatch gradient to this global norm")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write the checkpoint (every epoch), history.json, summary.json, params.npz and "
                   "yinyang.png there")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="figure: loss and accuracy per epoch, test set coloured by predicted class")
    p.add_argument("--json", action="store_true", help="print one JSON line with the summary on stdout")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=run)
    return p


def run(args):
    """``sparseprop train yinyang``: train, report, write outputs; exit status (130 if interrupted)."""
    t0 = time.perf_counter()
    if args.k_recurrent >= args.n_hidden:
        raise ValueError(f"recurrent: the out-degree must be < hidden = {args.n_hidden}, got {args.k_recurrent}")
    if args.plot is not None:
        if not str(args.plot).lower().endswith((".png", ".pdf", ".svg")):
            raise ValueError(f"plot: expected a .png, .pdf or .svg file name, got {args.plot!r}")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("plot: needs matplotlib (pip install matplotlib)") from None
    network = YinYangNetwork(n_hidden=args.n_hidden, k_recurrent=args.k_recurrent, structure_seed=args.seed)
    summary = train(network, epochs=args.epochs, lr=args.lr, lr_decay=args.lr_decay,
                    batch_size=args.batch_size, chunk=args.chunk, workers=args.workers, seed=args.seed,
                    data_seed=args.data_seed, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                    out=args.out, resume=args.resume, early_stop_patience=args.patience,
                    clip_norm=args.clip_norm, progress=args.progress)
    summary["out"], summary["plot"] = args.out, args.plot
    _write_outputs(summary, args.out, args.plot)
    summary["wall_s"] = round(time.perf_counter() - t0, 3)
    public = {k: v for k, v in summary.items() if not k.startswith("_")}
    if args.out is not None:
        (Path(args.out) / "summary.json").write_text(json.dumps(public, indent=1))
    if args.json:
        print(json.dumps(public))
    else:
        print(f"sparseprop Yin-Yang: {public['n_hidden']} hidden neurons (recurrent out-degree "
              f"{public['k_recurrent']}), {public['epochs']} epochs in {public['wall_s']:.1f} s")
        for key in ("train_accuracy", "val_accuracy", "test_accuracy", "test_loss", "best_epoch",
                    "train_samples_per_s", "interrupted"):
            print(f"  {key:<22} {public[key]}")
    sys.stdout.flush()
    return 130 if public["interrupted"] else 0
