r"""Recurrent spike timing: train the recurrent weights of a sparse LIF network so that designated
neurons fire at target times (``sparseprop train timing``).

The task
--------
A sparse recurrent network of ``n`` LIF neurons (default 1000), each with exactly ``k`` random
inhibitory targets (default 50, no self-connections, weights ``-j0/sqrt(k)``; the procedural
`sparseprop.FixedOutDegree` network made explicit as a `SparseConnectivity`, so that every
synapse is a trainable parameter). Every neuron has its own constant drive, uniform in
``drive * [1 - spread, 1 + spread]`` (all above threshold: every neuron is on its free orbit,
see below). ``n_designated`` neurons (default 50) are chosen at random; their spikes in the
window ``[0, horizon)`` (default 0.1 s) must come at target times.

Targets: a teacher-student setup. The *teacher* is the same network (same connectivity, drive
and initial voltages) in which the synapses onto the designated neurons are multiplied by
independent log-normal factors ``exp(sigma xi - sigma^2/2)`` (``xi ~ N(0, 1)``, default
``sigma = 0.5``: signs and mean kept). The targets are the teacher's spike times of the
designated neurons in ``[0, horizon)``; the *student* starts from the homogeneous weights. The
targets are therefore reachable (the teacher's weights reach loss 0), they are spike trains the
network dynamics can produce (no impossible inter-spike intervals), and they differ from the
initial spikes by a few ms (rms 3-5 ms with the defaults).

Loss (in ms^2): the mean over target spikes of ``(t_dk - tau_dk)^2`` where ``t_dk`` is the k-th
spike of designated neuron d (`sparseprop.losses.kth_spike_times`,
`sparseprop.losses.spike_time_mse`), plus, per designated neuron with ``m_d`` targets, a hinge
``(horizon - t_{d,m_d})^2`` if the student fires an extra spike before the horizon. The
simulation runs to ``horizon + margin`` (``margin = max(0.2 horizon, 20 ms)``) so that a target
spike that moves slightly past the horizon is still seen. A missing spike (fewer spikes than
targets before ``horizon + margin``) is counted at that time; it has no spike on the tape, so
its gradient is a surrogate: `sparseprop.losses.missing_spike_drive_gradient` (with the LIF
period's sensitivity ``-dT/dI = tau / (I (I - 1))``) turned into weight gradients by the
mean-field relation ``dI_eff/dw_jd = tau nu_j`` (a synapse from a neuron firing at ``nu_j`` acts
on average like drive ``tau nu_j w_jd``): the neuron's inhibition weakens until it fires again.
Everything else is the exact gradient of `sparseprop.grad.vjp` through the recurrent dynamics.

Trained weights: by default (``--train incoming``) the synapses onto the designated neurons
(``n_designated * k`` on average): the family that contains the teacher. ``--train all`` trains
every recurrent synapse (the gradient is exact for all of them either way).

Optimiser: Adam with ``beta2 = 0.99`` whose step size decays exponentially from ``lr`` to
``lr * lr_final`` over the epochs (one epoch = one forward and one backward pass of the whole
network), through `sparseprop.training.fit` (checkpoints with exact resume, Ctrl-C). The short
second-moment memory matters: with the usual 0.999 the large gradients of the first epochs keep
the steps of slow neurons small for the whole run (seed 0: 426x instead of 1176x).

Why these parameters (measured with this module; N = 1000, K = 50, horizon 0.1 s, seed 0)
-----------------------------------------------------------------------------------------
Physics first. With delta synapses a neuron below threshold fires exactly at the instant of the
input that lifts it, so its spike time has no gradient with respect to weights: every neuron
here has drive > 1 (free orbit). Second, spike times are only *piecewise* smooth in the weights:
when a neuron's threshold crossing and an inhibitory input swap order, its spike jumps by
``delta = tau ln(1 + |w| / (I - 1))`` (1.8 ms in the SparseProp balanced network below), and the
jump moves the inputs of its ``k`` targets, which may swap in turn: about ``k nu delta`` further
swaps per swap (``nu`` the rate).

* The SparseProp balanced network, ``--j0 1 --drive 1.7071`` (balance condition for 10 Hz; the
  realised rate is 16 Hz), is in the cascade regime ("stable chaos", Monteforte & Wolf 2012).
  Infinitesimal perturbations decay and the gradients do not explode: a teacher with
  ``--sigma 0.001`` is 2.5 us (rms) from the student, and ``--lr 1e-6`` reduces that loss 51x in
  300 epochs. But ``--sigma 0.01`` already puts the teacher's designated spikes 10.6 ms (rms)
  away, and training fails (2.7x at ``--lr 1e-5``; with ``--lr 1e-3`` even the 2.5 us teacher
  ends at 400 ms^2): every step that moves a spike across an input triggers a cascade.
  The landscape, not the gradient, is the obstacle.
* Weak coupling (default ``j0 = 0.1``, mean drive 2, about 80 Hz; recurrent inhibition still
  lowers the free rate of 144 Hz by about 45 %) makes ``delta`` 0.14 ms and the cascades die out: the
  landscape is piecewise smooth with small jumps (the loss curve stays noisy) and the defaults
  reduce the loss 1176x (seed 0, 34 s on one core), 684x, 456x, 1549x (seeds 1-3).
  ``--j0 0.3`` is in between: 489 -> 41 ms^2 (12x) in 300 epochs.
* ``--train all``: Adam moves every synapse with a nonzero gradient by about ``lr`` per step,
  including the ~47,000 synapses whose gradient is tiny, which perturbs the whole network:
  32.8 -> 53 ms^2 at ``--lr 1e-3``, 32.8 -> 4.1 ms^2 (8x) at ``--lr 1e-4`` (1000 epochs).

Longer horizons need more epochs: the gradients stay bounded, but more spikes mean more jumps.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from sparseprop.optim import DecayingAdam
from sparseprop.tasks import arg_int, arg_real

__all__ = ["TimingTask", "train", "add_subparser", "run", "main"]

LOSS_UNIT = "ms^2"
_MS2 = 1e6        # s^2 -> ms^2


def _check_int(name, value, minimum, maximum=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        hi = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name}: must be >= {minimum}{hi}, got {value}")
    return int(value)


def _check_real(name, value, *, low=None, high=None, low_open=True, high_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name}: must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name}: must be {'<' if high_open else '<='} {high}, got {value}")
    return value


# --------------------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------------------


class TimingTask:
    """The recurrent spike-timing task (see the module docstring): network, teacher, targets, loss.

    Parameters
    ----------
    n : int
        Neurons, >= 3.
    k : int
        Out-degree (targets per neuron), ``1 <= k < n``.
    j0 : float
        Coupling: every initial weight is ``-j0 / sqrt(k)`` (units of the threshold), > 0.
    drive : float
        Mean drive I (units of the threshold per tau), > 1.
    drive_spread : float
        Drives are uniform in ``drive * [1 - spread, 1 + spread]``; all must stay > 1.
    tau : float
        Membrane time constant, s.
    n_designated : int
        Neurons with target spike times, ``1 <= n_designated <= n``.
    horizon : float
        Target window ``[0, horizon)``, s.
    sigma : float
        Log-normal spread of the teacher's synapses onto the designated neurons, > 0.
    train : {"incoming", "all"}
        Which synapses are trained.
    seed : int
        Seed of the network, drive, initial condition, designated neurons and teacher.
    """

    def __init__(self, n=1000, k=50, j0=0.1, drive=2.0, drive_spread=0.2, tau=0.01, n_designated=50,
                 horizon=0.1, sigma=0.5, train="incoming", seed=0):
        import sparseprop as sp

        self.n = _check_int("n", n, 3)
        self.k = _check_int("k", k, 1)
        if self.k >= self.n:
            raise ValueError(f"k: the out-degree must be < n = {self.n} (no self-connections), got {self.k}")
        self.j0 = _check_real("j0", j0, low=0.0)
        self.drive_mean = _check_real("drive", drive, low=1.0)
        self.drive_spread = _check_real("drive_spread", drive_spread, low=0.0, low_open=False, high=1.0,
                                        high_open=True)
        if self.drive_mean * (1.0 - self.drive_spread) <= 1.0:
            raise ValueError(f"drive_spread: drive * (1 - drive_spread) = "
                             f"{self.drive_mean * (1 - self.drive_spread):.4g} must stay > 1 (every neuron "
                             "on its free orbit: a neuron below threshold has no weight gradient)")
        self.tau = _check_real("tau", tau, low=0.0)
        self.n_designated = _check_int("n_designated", n_designated, 1, self.n)
        self.horizon = _check_real("horizon", horizon, low=0.0)
        self.sigma = _check_real("sigma", sigma, low=0.0)
        if train not in ("incoming", "all"):
            raise ValueError(f"train: choose 'incoming' or 'all', got {train!r}")
        self.train = train
        self.seed = _check_int("seed", seed, 0, 2**63 - 1)
        self.margin = max(0.2 * self.horizon, 0.02)
        self.t_sim = self.horizon + self.margin

        rng_drive, rng_ic, rng_des, rng_teacher = np.random.default_rng(self.seed).spawn(4)
        n, k = self.n, self.k
        # the procedural SparseProp network (FixedOutDegree, counter-based RNG keyed by seed), made explicit
        proc = sp.FixedOutDegree(k, -self.j0 / math.sqrt(k), seed=self.seed)
        self.indptr = np.arange(n + 1, dtype=np.int64) * k
        self.indices = np.concatenate([proc.targets(j, n)[0] for j in range(n)]).astype(np.int32)
        self.pre = np.repeat(np.arange(n), k)               # presynaptic neuron of each synapse
        self.initial_weights = np.full(n * k, proc.weight)
        self.drive = self.drive_mean * (1.0 + self.drive_spread * rng_drive.uniform(-1.0, 1.0, n))
        # uniform phases on the free orbit: V = I (1 - ((I - 1)/I)^u), u ~ U[0, 1)
        u = rng_ic.random(n)
        self.initial_voltages = self.drive * (1.0 - ((self.drive - 1.0) / self.drive) ** u)
        self.designated = np.sort(rng_des.choice(n, self.n_designated, replace=False))
        onto = np.zeros(n, dtype=bool)
        onto[self.designated] = True
        self.incoming = np.flatnonzero(onto[self.indices])  # synapses onto designated neurons
        factor = np.exp(self.sigma * rng_teacher.standard_normal(self.incoming.size) - 0.5 * self.sigma ** 2)
        self.teacher_weights = self.initial_weights.copy()
        self.teacher_weights[self.incoming] *= factor
        self.trainable = self.incoming if train == "incoming" else np.arange(n * k)
        self.param_name = "incoming_weights" if train == "incoming" else "weights"
        self.max_spikes = None

        teacher = self.simulate(self.teacher_weights)
        self.teacher_spikes = teacher.n_spikes
        in_window = teacher.times < self.horizon
        counts = np.bincount(teacher.neurons[in_window], minlength=n)[self.designated]
        self.target_counts = counts
        self.pair_neuron = np.repeat(self.designated, counts)
        self.pair_k = np.concatenate([np.arange(c) for c in counts]) if counts.sum() else np.zeros(0, np.int64)
        if self.pair_neuron.size == 0:
            raise ValueError("horizon: the designated neurons do not fire before the horizon in the teacher "
                             "network; choose a longer horizon or more designated neurons")
        from sparseprop.losses import kth_spike_times

        self.targets = kth_spike_times(teacher.times, teacher.neurons, self.pair_neuron, self.pair_k)
        # runaway guard (weights trained to strong excitation): stop a run far above the teacher's activity
        self.max_spikes = int(50 * max(teacher.n_spikes, n))

    # ---- network and simulation
    def network(self, weights):
        import sparseprop as sp

        conn = sp.SparseConnectivity(self.indptr, self.indices, weights)
        return sp.Network(sp.LIF(), self.n, self.drive, self.tau, conn)

    def simulate(self, weights, tape=False):
        import sparseprop as sp

        res = sp.simulate(self.network(weights), spikes=self.max_spikes, t_max=self.t_sim,
                          initial_voltages=self.initial_voltages, tape=tape, progress=False)
        if res.interrupted and res.metadata.get("stopped_by") == "interrupt":
            raise KeyboardInterrupt
        return res

    def full_weights(self, params):
        """The (nnz,) recurrent weights from the trained parameters (a dict)."""
        w = self.initial_weights.copy()
        w[self.trainable] = params[self.param_name]
        return w

    def initial_params(self):
        return {self.param_name: self.initial_weights[self.trainable].copy()}

    # ---- loss
    def loss(self, result):
        """Loss (ms^2) of a simulation, its gradient with respect to the spike times (ms^2/s, one
        entry per spike of ``result``), the surrogate gradient with respect to the weights for missing
        spikes, and diagnostics."""
        from sparseprop.losses import kth_spike_times, missing_spike_drive_gradient, spike_time_mse

        times, neurons = result.times, result.neurons
        t, idx = kth_spike_times(times, neurons, self.pair_neuron, self.pair_k, return_index=True)
        mse = spike_time_mse(t, self.targets, t_missing=self.t_sim)
        m = self.targets.size
        g_t = np.zeros(times.shape[0])
        hit = idx >= 0
        np.add.at(g_t, idx[hit], _MS2 * mse.grad[hit])
        # an extra spike before the horizon: hinge towards the horizon
        t_extra, i_extra = kth_spike_times(times, neurons, self.designated, self.target_counts, return_index=True)
        extra = (i_extra >= 0) & (t_extra < self.horizon)
        gap = t_extra[extra] - self.horizon
        value = mse.value + float(np.sum(gap * gap)) / m
        np.add.at(g_t, i_extra[extra], _MS2 * 2.0 * gap / m)
        # missing spikes: drive surrogate, carried to the incoming weights by dI_eff/dw_jd = tau nu_j
        g_w_missing = None
        if mse.missing.any():
            g_drive = missing_spike_drive_gradient(_MS2 * mse.grad, mse.missing, 1.0,
                                                   neurons=self.pair_neuron, n=self.n)
            g_drive *= self.tau / (self.drive * (self.drive - 1.0))       # -dT/dI of the LIF period
            rate = np.bincount(neurons, minlength=self.n) / self.t_sim
            g_w_missing = g_drive[self.indices] * self.tau * rate[self.pre]
        err = np.where(hit, t, self.t_sim) - self.targets
        diag = {"max_abs_err_ms": float(np.max(np.abs(err)) * 1e3),
                "rms_err_ms": float(np.sqrt(np.mean(err ** 2)) * 1e3),
                "n_missing": int(mse.missing.sum()), "n_extra": int(extra.sum()), "spikes": int(result.n_spikes)}
        return _MS2 * value, g_t, g_w_missing, diag

    def evaluate(self, weights):
        """``(loss_ms2, diagnostics, result)`` for full weights (forward pass only)."""
        res = self.simulate(weights)
        value, _, _, diag = self.loss(res)
        return value, diag, res

    def value_and_grad(self, params):
        """Loss (ms^2) and its gradient with respect to the trained weights (dict), diagnostics."""
        from sparseprop.grad import vjp

        res = self.simulate(self.full_weights(params), tape=True)
        value, g_t, g_w_missing, diag = self.loss(res)
        g = vjp(res, g_t).weights
        if g_w_missing is not None:
            g = g + g_w_missing
        return value, {self.param_name: g[self.trainable]}, diag

    def config(self):
        return {"n": self.n, "k": self.k, "j0": self.j0, "drive": self.drive_mean,
                "drive_spread": self.drive_spread, "tau": self.tau, "n_designated": self.n_designated,
                "horizon": self.horizon, "sigma": self.sigma, "train": self.train, "seed": self.seed}


class _Model:
    """``value_and_grad(params, x, y)`` for `sparseprop.training.fit` (one sample: the network);
    keeps per-epoch diagnostics and drives the progress bar."""

    def __init__(self, task, bar, epoch0=0):
        self.task = task
        self.bar = bar
        self.log = []
        self.epoch0 = epoch0
        self.best = math.inf

    def __call__(self, params, x, y):
        value, grads, diag = self.task.value_and_grad(params)
        self.best = min(self.best, value)
        self.log.append({"loss": value, **diag})
        done = self.epoch0 + len(self.log)
        self.bar.update(done, extra=f"loss {value:.4g} {LOSS_UNIT} best {self.best:.4g} "
                                    f"max|dt| {diag['max_abs_err_ms']:.3g} ms")
        return value, grads, None


def train(task, *, epochs=1000, lr=1e-3, lr_final=0.1, betas=(0.9, 0.99), out=None, resume=False, progress=None):
    """Train ``task`` with `sparseprop.training.fit` (one sample, Adam with a decaying step size).

    Returns a dict with the final weights, the `History`, per-epoch diagnostics and the summary.
    """
    from sparseprop._progress import Progress
    from sparseprop.training import fit

    epochs = _check_int("epochs", epochs, 1)
    lr = _check_real("lr", lr, low=0.0)
    lr_final = _check_real("lr_final", lr_final, low=0.0, high=1.0)
    t0 = time.perf_counter()
    out = Path(out) if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        cfg_path = out / "task.json"
        cfg = {**task.config(), "epochs": epochs, "lr": lr, "lr_final": lr_final, "betas": list(betas)}
        if resume and cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            if old != cfg:
                raise ValueError(f"out: {out} holds a run with another configuration {old}; use another "
                                 "directory or the same options")
        cfg_path.write_text(json.dumps(cfg, indent=1) + "\n")
    previous_log = []
    if resume and out is not None and (out / "history.json").exists():
        previous_log = json.loads((out / "history.json").read_text()).get("epochs", [])

    initial_value, initial_diag, initial_res = task.evaluate(task.initial_weights)
    params = task.initial_params()
    # from lr to lr * lr_final over the epochs
    optimizer = DecayingAdam(lr=lr, betas=betas, decay=lr_final ** (1.0 / max(epochs - 1, 1)))
    bar = Progress(epochs, "epochs", enabled=progress, label="timing")
    model = _Model(task, bar, epoch0=len(previous_log))
    interrupted = False
    try:
        history = fit(model, params, ([0], np.zeros(1)), epochs=epochs, batch_size=1, optimizer=optimizer,
                      seed=0, checkpoint_dir=out, resume=resume and out is not None, progress=False)
        interrupted = history.interrupted
    except KeyboardInterrupt:       # second Ctrl-C: stop at once, keep what we have
        interrupted = True
        history = None
    finally:
        bar.close()
    log = previous_log + model.log
    weights = task.full_weights(params)
    final_value, final_diag, final_res = task.evaluate(weights)
    losses = [row["loss"] for row in log]
    summary = {
        "task": "timing", "initial_loss": initial_value, "final_loss": final_value,
        "loss_ratio": initial_value / final_value if final_value > 0 else math.inf,
        "best_loss": min(losses + [final_value]), "loss_unit": LOSS_UNIT,
        "epochs": len(history.epoch) if history is not None else len(log), "epochs_requested": epochs,
        "wall_s": time.perf_counter() - t0,
        "n": task.n, "k": task.k, "j0": task.j0, "drive": task.drive_mean, "drive_spread": task.drive_spread,
        "tau_s": task.tau, "n_designated": task.n_designated, "n_targets": int(task.targets.size),
        "horizon_s": task.horizon, "t_sim_s": task.t_sim, "sigma": task.sigma, "train": task.train,
        "n_trainable": int(task.trainable.size), "lr": lr, "lr_final": lr_final, "adam_beta2": betas[1],
        "seed": task.seed,
        "spikes_per_run": final_diag["spikes"], "initial_spikes_per_run": initial_diag["spikes"],
        "teacher_spikes_per_run": task.teacher_spikes,
        "initial_max_abs_err_ms": initial_diag["max_abs_err_ms"], "max_abs_err_ms": final_diag["max_abs_err_ms"],
        "initial_rms_err_ms": initial_diag["rms_err_ms"], "rms_err_ms": final_diag["rms_err_ms"],
        "n_missing": final_diag["n_missing"], "n_extra": final_diag["n_extra"],
        "interrupted": bool(interrupted),
    }
    if out is not None:
        np.savez(out / "weights.npz", weights=weights, initial_weights=task.initial_weights,
                 teacher_weights=task.teacher_weights, designated=task.designated, targets=task.targets,
                 target_neurons=task.pair_neuron, trainable=task.trainable)
        (out / "history.json").write_text(json.dumps({"config": task.config(), "summary": summary,
                                                      "epochs": log}) + "\n")
    return {"weights": weights, "history": history, "log": log, "summary": summary,
            "initial_result": initial_res, "final_result": final_res}


# --------------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------------


def plot(task, outcome, path, max_designated=20, n_background=20):
    """Loss curve (log scale) and rasters before / after training with the target times."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    history = outcome["history"]
    s = outcome["summary"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1, 1.25, 1.25]})
    ax = axes[0]
    # fit's History (kept in the checkpoint, so complete after a resume), else this session's log
    losses = list(history.train_loss) if history is not None else [row["loss"] for row in outcome["log"]]
    if losses:
        epochs = np.arange(1, len(losses) + 1)
        ax.semilogy(epochs, losses, lw=0.7, color="C0", label="loss (before each step)")
        ax.semilogy(epochs, np.minimum.accumulate(losses), lw=1.2, color="k", label="lowest so far")
    ax.axhline(s["initial_loss"] / 100, color="0.5", ls=":", lw=1, label="initial / 100")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"loss ({LOSS_UNIT})")
    ax.set_title(f"loss {s['initial_loss']:.3g} -> {s['final_loss']:.3g} {LOSS_UNIT} ({s['loss_ratio']:.0f}x)")
    ax.legend(fontsize=8)

    rng = np.random.default_rng(task.seed)
    shown = task.designated[:max_designated]
    others = np.setdiff1d(np.arange(task.n), task.designated)
    background = np.sort(rng.choice(others, min(n_background, others.size), replace=False))
    rows = np.concatenate([shown, background])
    row_of = np.full(task.n, -1)
    row_of[rows] = np.arange(rows.size)
    for ax, res, title in ((axes[1], outcome["initial_result"], "before training"),
                           (axes[2], outcome["final_result"], "after training")):
        sel = row_of[res.neurons] >= 0
        r = row_of[res.neurons[sel]]
        t = res.times[sel] * 1e3
        des = r < shown.size
        ax.scatter(t[~des], r[~des], s=25, marker="|", color="0.55", lw=1.0, label="other neurons")
        ax.scatter(t[des], r[des], s=14, marker="o", color="C3", lw=0, label="designated neurons")
        tm = np.isin(task.pair_neuron, shown)
        ax.scatter(task.targets[tm] * 1e3, row_of[task.pair_neuron[tm]], s=30, marker="x", color="k",
                   lw=0.9, label="target times")
        ax.axvline(task.horizon * 1e3, color="0.3", ls="--", lw=0.8)
        ax.axhspan(shown.size - 0.5, rows.size - 0.5, color="0.95", zorder=-1)
        ax.set_xlim(0, task.t_sim * 1e3)
        ax.set_ylim(rows.size - 0.5, -0.5)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("neuron (designated on top)")
        ax.set_title(title)
    axes[1].legend(fontsize=7, loc="lower left", framealpha=0.9)
    axes[2].text(0.99, 0.01, f"max |t - target| = {s['max_abs_err_ms']:.3g} ms", transform=axes[2].transAxes,
                 ha="right", va="bottom", fontsize=8, bbox={"fc": "white", "ec": "0.7", "alpha": 0.9})
    fig.suptitle(f"Recurrent spike timing: N = {task.n}, K = {task.k}, {task.n_designated} designated neurons, "
                 f"{task.targets.size} target spikes in {task.horizon * 1e3:g} ms (seed {task.seed})", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def add_subparser(sub):
    p = sub.add_parser(
        "timing", help="recurrent spike timing: designated neurons fire at target times",
        description="Train the recurrent weights of a sparse LIF network (N neurons, K random inhibitory "
        "targets each) so that designated neurons fire at the spike times of a teacher network (the same "
        "network with log-normally perturbed synapses onto the designated neurons), with exact gradients "
        "(sparseprop.grad). Loss: mean squared spike-time error in ms^2. See sparseprop/tasks/timing.py.")
    p.add_argument("--n", type=arg_int("n", 3), default=1000, help="number of neurons (default 1000)")
    p.add_argument("--k", type=arg_int("k", 1), default=50, help="out-degree, < n (default 50)")
    p.add_argument("--n-designated", type=arg_int("n_designated", 1), default=50,
                   help="number of designated neurons with target times, <= n (default 50)")
    p.add_argument("--horizon", type=arg_real("horizon", 0.0), default=0.1, help="target window in s (default 0.1)")
    p.add_argument("--epochs", type=arg_int("epochs", 1), default=1000, help="training epochs (default 1000)")
    p.add_argument("--lr", type=arg_real("lr", 0.0), default=1e-3, help="initial Adam step size (default 1e-3)")
    p.add_argument("--lr-final", type=arg_real("lr_final", 0.0, 1.0), default=0.1,
                   help="final step size as a fraction of --lr, exponential decay (default 0.1)")
    p.add_argument("--j0", type=arg_real("j0", 0.0), default=0.1, help="coupling: weights -j0/sqrt(k) (default 0.1)")
    p.add_argument("--drive", type=arg_real("drive", 1.0), default=2.0, help="mean drive I, > 1 (default 2)")
    p.add_argument("--drive-spread", type=arg_real("drive_spread", 0.0, 1.0, low_open=False), default=0.2,
                   help="drives uniform in drive*[1-s, 1+s] (default 0.2)")
    p.add_argument("--tau", type=arg_real("tau", 0.0), default=0.01, help="membrane time constant in s (default 0.01)")
    p.add_argument("--sigma", type=arg_real("sigma", 0.0), default=0.5,
                   help="log-normal spread of the teacher's synapses onto designated neurons (default 0.5)")
    p.add_argument("--train", choices=["incoming", "all"], default="incoming",
                   help="trained synapses: those onto the designated neurons (default) or all")
    p.add_argument("--seed", type=arg_int("seed", 0), default=0, help="seed of network, teacher and targets (default 0)")
    p.add_argument("--out", metavar="DIR", help="write checkpoint.npz, history.json, weights.npz, task.json there")
    p.add_argument("--resume", action="store_true", help="continue the run checkpointed in --out")
    p.add_argument("--plot", metavar="FILE.png", help="save the figure (needs matplotlib)")
    p.add_argument("--json", action="store_true", help="print one JSON line with the summary on stdout")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """``sparseprop train timing``: returns the exit status (130 after Ctrl-C, the JSON still printed)."""
    if args.resume and not args.out:
        raise ValueError("resume: needs --out DIR (the directory of the checkpoint)")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("plot: needs matplotlib (pip install matplotlib)") from None
        parent = Path(args.plot).resolve().parent
        if not parent.is_dir():
            raise ValueError(f"plot: directory {parent} does not exist")
    t0 = time.perf_counter()
    try:
        task = TimingTask(n=args.n, k=args.k, j0=args.j0, drive=args.drive, drive_spread=args.drive_spread,
                          tau=args.tau, n_designated=args.n_designated, horizon=args.horizon, sigma=args.sigma,
                          train=args.train, seed=args.seed)
    except KeyboardInterrupt:
        _emit(args, {"task": "timing", "initial_loss": None, "final_loss": None, "epochs": 0,
                     "wall_s": time.perf_counter() - t0, "interrupted": True})
        return 130
    outcome = train(task, epochs=args.epochs, lr=args.lr, lr_final=args.lr_final, out=args.out,
                    resume=args.resume, progress=args.progress)
    summary = outcome["summary"]
    summary["wall_s"] = time.perf_counter() - t0
    summary["out"] = args.out
    summary["plot"] = args.plot
    if args.plot:
        try:
            plot(task, outcome, args.plot)
        except KeyboardInterrupt:
            summary["plot"] = None
            summary["interrupted"] = True
    _emit(args, summary)
    return 130 if summary["interrupted"] else 0


def _emit(args, summary):
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        for key, val in summary.items():
            print(f"  {key:<24} {val:.6g}" if isinstance(val, float) else f"  {key:<24} {val}")


def main(argv=None) -> int:
    """``python -m sparseprop.tasks.timing ...`` (same options as ``sparseprop train timing``)."""
    from sparseprop.cli import main as cli_main

    return cli_main(["train", "timing", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
