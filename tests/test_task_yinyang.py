"""`sparseprop train yinyang` (sparseprop/tasks/yinyang.py): the task's gradient against central
finite differences of the task's own loss, the batched simulation (disjoint copies) against one
simulation per sample, a short training run, the command line (JSON line, outputs, bad arguments,
Ctrl-C) and, marked slow, the default run's accuracy target."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sparseprop.cli import main
from sparseprop.datasets import yinyang_split
from sparseprop.tasks.yinyang import ChunkLoss, MemoEvaluator, YinYangNetwork, train
from sparseprop.training import Score

TINY = ["--epochs", "2", "--hidden", "16", "--recurrent", "3", "--n-train", "100", "--n-val", "50",
        "--n-test", "50", "--batch-size", "20", "--chunk", "10"]
REQUIRED = ("test_accuracy", "train_accuracy", "epochs", "wall_s")
RUN = [sys.executable, "-c", "import sys; from sparseprop.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def small():
    net = YinYangNetwork(n_hidden=14, k_recurrent=3, structure_seed=3)
    (X, y), _, _ = yinyang_split(6, 0, 0, seed=7)
    return net, net.init_params(3), X, y


def mean_loss(net, params, X, y):
    return float(net.forward(params, X, y)["loss"].mean())


def test_gradient_matches_central_finite_differences(small):
    net, params, X, y = small
    out = net.forward(params, X, y, grad=True)
    assert np.all(np.isfinite(out["first_times"])), "the oracle needs every output to fire"
    rng = np.random.default_rng(0)
    checked = nonzero = 0
    for name, g in out["grads"].items():
        flat = g.ravel()
        picks = list(rng.choice(flat.size, 4, replace=False)) + list(np.argsort(-np.abs(flat))[:3])
        for k in picks:
            fd = {}
            for h in (1e-6, 1e-7):
                plus = {n: v.copy() for n, v in params.items()}
                minus = {n: v.copy() for n, v in params.items()}
                plus[name].flat[k] += h
                minus[name].flat[k] -= h
                fd[h] = (mean_loss(net, plus, X, y) - mean_loss(net, minus, X, y)) / (2 * h)
            if abs(fd[1e-6] - fd[1e-7]) > 1e-4 * max(1.0, abs(fd[1e-6])):
                continue            # an event-order change within h: not a smooth point
            scale = max(abs(fd[1e-6]), 1e-3)
            assert abs(flat[k] - fd[1e-6]) <= 2e-5 * scale, (name, k, flat[k], fd)
            checked += 1
            nonzero += abs(flat[k]) > 1e-6
    assert checked >= 15 and nonzero >= 9, (checked, nonzero)


def test_chunk_equals_one_simulation_per_sample(small):
    net, params, X, y = small
    batch = net.forward(params, X, y, grad=True)
    singles = [net.forward(params, X[i:i + 1], y[i:i + 1], grad=True) for i in range(len(y))]
    times = np.concatenate([s["first_times"] for s in singles])
    np.testing.assert_allclose(batch["first_times"], times, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(batch["prediction"], np.concatenate([s["prediction"] for s in singles]))
    for name, g in batch["grads"].items():         # gradient of the mean = mean of the gradients
        mean = sum(s["grads"][name] for s in singles) / len(y)
        np.testing.assert_allclose(g, mean, rtol=1e-9, atol=1e-12 * np.abs(mean).max())


def test_fit_callables_pickle_and_memo_evaluator_agrees(small):
    net, params, X, y = small
    loss_fn = pickle.loads(pickle.dumps(ChunkLoss(net)))
    value, grads, pred = loss_fn(params, np.column_stack([X, y]), y[0])
    assert value == pytest.approx(mean_loss(net, params, X, y), rel=1e-12)
    right = int(np.sum(net.forward(params, X)["prediction"] == y))
    assert set(grads) == set(params) and pred == Score(right, len(y))
    ev = pickle.loads(pickle.dumps(MemoEvaluator(net, X, y, block=4)))
    direct = net.forward(params, X, y)
    for i in range(len(y)):
        loss, p = ev(params, np.r_[X[i], i], y[i])
        assert loss == pytest.approx(direct["loss"][i], rel=1e-12) and p == direct["prediction"][i]
    changed = {k: v * 1.01 for k, v in params.items()}
    assert ev(changed, np.r_[X[0], 0], y[0])[0] == pytest.approx(net.forward(changed, X[:1], y[:1])["loss"][0])


def test_short_training_lowers_the_loss():
    net = YinYangNetwork(n_hidden=16, k_recurrent=3)
    (X, y), _, _ = yinyang_split(200, 0, 0)
    before = mean_loss(net, net.init_params(0), X, y)
    s = train(net, epochs=10, lr=1e-2, lr_decay=1.0, batch_size=20, chunk=10, n_train=200, n_val=0,
              n_test=50, progress=False)
    assert s["epochs"] == 10 and s["train_loss"] < 0.7 * before, (before, s["train_loss"])
    assert s["train_accuracy"] > 0.6


def test_workers_give_the_same_history():
    kw = dict(epochs=1, batch_size=20, chunk=10, n_train=80, n_val=20, n_test=20, progress=False)
    a = train(YinYangNetwork(n_hidden=10, k_recurrent=2), workers=1, **kw)
    b = train(YinYangNetwork(n_hidden=10, k_recurrent=2), workers=2, **kw)
    assert a["_history"].train_loss == b["_history"].train_loss
    assert a["_history"].val_accuracy == b["_history"].val_accuracy
    assert a["test_accuracy"] == b["test_accuracy"]


def test_cli_prints_one_json_line_and_writes_outputs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "yinyang", "--json", *TINY, "--out", "run", "--plot", "fig.png"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    for key in REQUIRED + ("val_accuracy", "n_hidden", "seed", "train_samples_per_s", "best_epoch"):
        assert key in out, key
    assert out["epochs"] == 2 and out["n_hidden"] == 16 and not out["interrupted"]
    assert 0 <= out["test_accuracy"] <= 1 and out["wall_s"] > 0
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("checkpoint.npz", "history.json", "summary.json", "params.npz", "yinyang.png"):
        assert (tmp_path / "run" / name).exists(), name
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())["epoch"]) == 2
    # resume: 2 more epochs from the checkpoint
    assert main(["train", "yinyang", "--json", *TINY[2:], "--epochs", "4", "--out", "run", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 4


def _status(argv):
    try:
        return main(argv)
    except SystemExit as exc:          # argparse type errors
        return exc.code


@pytest.mark.parametrize("args, name", [
    (["--epochs", "0"], "epochs"), (["--hidden", "-3"], "hidden"), (["--lr", "nan"], "lr"),
    (["--lr-decay", "1.5"], "lr_decay"), (["--workers", "0"], "workers"), (["--chunk", "x"], "chunk"),
    (["--batch-size", "30", "--chunk", "25"], "batch_size"), (["--hidden", "10", "--recurrent", "10"], "recurrent"),
    (["--resume"], "resume"), (["--n-train", "5", "--chunk", "10", "--batch-size", "10"], "n_train"),
    (["--plot", "figure.txt"], "plot")])
def test_bad_arguments_exit_2_naming_the_parameter(args, name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _status(["train", "yinyang", *args]) == 2
    assert f"{name}:" in capsys.readouterr().err


def test_ctrl_c_stops_cleanly_and_still_reports(tmp_path):
    args = ["train", "yinyang", "--json", "--epochs", "500", "--hidden", "16", "--recurrent", "3",
            "--n-train", "200", "--n-val", "20", "--n-test", "20", "--batch-size", "20", "--chunk", "10",
            "--out", "run"]
    proc = subprocess.Popen(RUN + args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "run" / "checkpoint.npz").exists():   # first epoch done
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    summary = json.loads(lines[0])
    assert summary["interrupted"] and 1 <= summary["epochs"] < 500
    assert summary["test_accuracy"] is not None and "interrupt" in err


@pytest.mark.slow
def test_default_run_reaches_95_percent(tmp_path):
    proc = subprocess.run(RUN + ["train", "yinyang", "--json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=1800, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["test_accuracy"] >= 0.95, summary
