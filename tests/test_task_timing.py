"""``sparseprop train timing``: the recurrent spike-timing task (sparseprop/tasks/timing.py).

Oracles: central finite differences for the gradient of the task's loss (through the whole
recurrent network, with and without the extra-spike term), a short training run that must reduce
the loss, the command line (one JSON line, exit status 2 naming the bad parameter, Ctrl-C still
printing the JSON line, exact resume), and (slow) the defaults reaching the 100x target.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sparseprop import cli
from sparseprop.tasks.timing import TimingTask, train

SMALL = ["--n", "60", "--k", "8", "--n-designated", "6", "--horizon", "0.05"]
REQUIRED = {"initial_loss", "final_loss", "epochs", "wall_s", "loss_ratio", "n", "k", "n_designated",
            "spikes_per_run", "seed", "max_abs_err_ms", "interrupted"}


def _env():
    # the subprocess imports sparseprop as this process does (the installed package, or PYTHONPATH);
    # putting the source tree first would shadow an installed build with unbuilt sources
    return dict(os.environ)


def _cli(args, cwd, timeout=120):
    return subprocess.run([sys.executable, "-m", "sparseprop.cli", "train", "timing", *args], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=timeout)


def _central_differences(task, params, indices, h=1e-7):
    name = task.param_name
    base = task.simulate(task.full_weights(params))
    out = []
    for i in indices:
        values = []
        for sign in (1, -1):
            q = {name: params[name].copy()}
            q[name][i] += sign * h
            res = task.simulate(task.full_weights(q))
            # the same event sequence: the loss is smooth there
            assert np.array_equal(res.neurons, base.neurons)
            values.append(task.loss(res)[0])
        out.append((values[0] - values[1]) / (2 * h))
    return np.array(out)


@pytest.mark.parametrize("train_set", ["incoming", "all"])
def test_gradient_matches_finite_differences(train_set):
    task = TimingTask(n=60, k=8, n_designated=6, horizon=0.05, train=train_set, seed=1)
    params = task.initial_params()
    value, grads, diag = task.value_and_grad(params)
    g = grads[task.param_name]
    assert g.shape == (task.trainable.size,) and diag["n_missing"] == 0
    assert value == pytest.approx(task.evaluate(task.full_weights(params))[0], rel=0, abs=0)
    rng = np.random.default_rng(0)
    idx = list(np.argsort(-np.abs(g))[:3])
    if train_set == "all":      # synapses NOT onto designated neurons: gradient through the recurrence
        onto = np.isin(task.indices[task.trainable], task.designated)
        far = np.flatnonzero(~onto & (g != 0))
        assert far.size > 0
        idx += list(rng.choice(far, 4, replace=False))
    else:
        idx += list(rng.choice(np.flatnonzero(g != 0), 3, replace=False))
    fd = _central_differences(task, params, idx)
    np.testing.assert_allclose(g[idx], fd, rtol=1e-5, atol=1e-6 * np.abs(g).max())


def test_gradient_with_extra_spikes_matches_finite_differences():
    """Weaker inhibition onto the designated neurons: extra spikes before the horizon (hinge term)."""
    task = TimingTask(n=60, k=8, n_designated=6, horizon=0.05, seed=1)
    params = {task.param_name: 0.2 * task.initial_params()[task.param_name]}
    _, grads, diag = task.value_and_grad(params)
    assert diag["n_extra"] > 0 and diag["n_missing"] == 0
    g = grads[task.param_name]
    idx = list(np.argsort(-np.abs(g))[:5])
    np.testing.assert_allclose(g[idx], _central_differences(task, params, idx), rtol=1e-5)


def test_missing_spike_surrogate_pushes_towards_firing():
    """Much stronger inhibition silences designated neurons: the surrogate gradient must weaken the
    inhibition onto them (dL/dw < 0 for inhibitory synapses, i.e. gradient descent raises w)."""
    task = TimingTask(n=60, k=8, n_designated=6, horizon=0.05, seed=1)
    params = {task.param_name: 8.0 * task.initial_params()[task.param_name]}
    _, grads, diag = task.value_and_grad(params)
    assert diag["n_missing"] > 0
    assert np.all(np.isfinite(grads[task.param_name]))
    assert grads[task.param_name].sum() < 0


def test_short_training_reduces_loss():
    task = TimingTask(n=200, k=20, n_designated=10, horizon=0.1, seed=0)
    out = train(task, epochs=100, progress=False)
    s = out["summary"]
    assert s["epochs"] == 100 and not s["interrupted"]
    assert s["final_loss"] < s["initial_loss"] / 20
    assert s["max_abs_err_ms"] < s["initial_max_abs_err_ms"]
    assert len(out["log"]) == 100 and out["log"][0]["loss"] == pytest.approx(s["initial_loss"])


def test_teacher_reaches_zero_loss():
    """The targets are reachable: the teacher's weights give loss 0 exactly."""
    task = TimingTask(n=60, k=8, n_designated=6, horizon=0.05, seed=2)
    value, diag, _ = task.evaluate(task.teacher_weights)
    assert value == 0.0 and diag["max_abs_err_ms"] == 0.0
    assert task.evaluate(task.initial_weights)[0] > 0.0


def test_cli_main_prints_one_json_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = cli.main(["train", "timing", "--json", *SMALL, "--epochs", "5", "--seed", "3"])
    assert status == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert REQUIRED <= summary.keys()
    assert summary["epochs"] == 5 and summary["n"] == 60 and summary["k"] == 8
    assert summary["n_designated"] == 6 and summary["seed"] == 3 and summary["interrupted"] is False
    assert summary["loss_ratio"] == pytest.approx(summary["initial_loss"] / summary["final_loss"])
    assert list(tmp_path.iterdir()) == []          # nothing written without --out / --plot


def test_cli_subprocess_json_out_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    proc = _cli(["--json", *SMALL, "--epochs", "8", "--out", "run", "--plot", "fig.png"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert REQUIRED <= summary.keys() and summary["epochs"] == 8
    for name in ("checkpoint.npz", "history.json", "weights.npz", "task.json"):
        assert (tmp_path / "run" / name).is_file(), name
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(hist["epochs"]) == 8 and hist["summary"]["final_loss"] == summary["final_loss"]
    assert (tmp_path / "fig.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, name", [
    (["--n", "0"], "--n"),
    (["--k", "abc"], "--k"),
    (["--lr", "-1"], "--lr"),
    (["--horizon", "0"], "--horizon"),
    (["--drive", "0.9"], "--drive"),
    (["--epochs", "0"], "--epochs"),
    (["--lr-final", "2"], "--lr-final"),
    (["--n", "20", "--k", "20"], "k:"),
    (["--n", "20", "--k", "5", "--n-designated", "21"], "n_designated:"),
    (["--drive", "1.1", "--drive-spread", "0.2"], "drive_spread:"),
    (["--resume"], "resume:"),
])
def test_cli_bad_arguments_exit_2(tmp_path, args, name):
    proc = _cli(["--json", "--epochs", "1", *args] if "--epochs" not in args else ["--json", *args], cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert name in proc.stderr
    assert proc.stdout == ""


def test_cli_ctrl_c_prints_json_and_resume_finishes(tmp_path):
    epochs = 400
    args = ["--json", *SMALL, "--epochs", str(epochs), "--out", "run"]
    proc = subprocess.Popen([sys.executable, "-m", "sparseprop.cli", "train", "timing", *args], cwd=tmp_path,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "run" / "checkpoint.npz"
    deadline = time.monotonic() + 60
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["interrupted"] is True and 0 < summary["epochs"] < epochs
    assert REQUIRED <= summary.keys()
    # resume: continues from the checkpoint to the end (same options)
    done = _cli([*args, "--resume"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    assert resumed["epochs"] == epochs and resumed["interrupted"] is False
    assert resumed["initial_loss"] == summary["initial_loss"]
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(hist["epochs"]) == epochs
    # exact resume: the same result as one uninterrupted run
    straight = train(TimingTask(n=60, k=8, n_designated=6, horizon=0.05), epochs=epochs, progress=False)
    assert resumed["final_loss"] == straight["summary"]["final_loss"]
    assert [row["loss"] for row in hist["epochs"]] == [row["loss"] for row in straight["log"]]
    # another configuration in the same directory is refused
    bad = _cli([*args[:-2], "--out", "run", "--seed", "5", "--resume"], cwd=tmp_path)
    assert bad.returncode == 2 and "out:" in bad.stderr


@pytest.mark.slow
def test_defaults_reduce_loss_100x(tmp_path):
    proc = _cli(["--json"], cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["n"] == 1000 and summary["k"] == 50 and summary["epochs"] == 1000
    assert summary["final_loss"] <= summary["initial_loss"] / 100
