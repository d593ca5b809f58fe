"""The `sparseprop` command line: JSON summary, errors, outputs, and a clean Ctrl-C."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import sparseprop as sp
from sparseprop.cli import main

# Run from a temporary directory: `python -m` from the checkout would import the uncompiled sources.
RUN = [sys.executable, "-c", "import sys; from sparseprop.cli import main; sys.exit(main())"]


def test_run_json_fields_match_a_direct_simulation(capsys):
    assert main(["run", "--n", "2000", "--k", "50", "--spikes", "5000", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    for key in ("model", "n", "k", "spikes", "sim_time_s", "wall_s", "ns_per_spike", "rate_hz", "cv"):
        assert key in out
    direct = sp.simulate(sp.balanced_network(n=2000, k=50), spikes=5000)
    assert out["spikes"] == 5000 and out["n"] == 2000 and out["k"] == 50 and out["model"] == "lif"
    assert out["sim_time_s"] == pytest.approx(direct.duration, rel=0, abs=0)
    assert out["rate_hz"] == pytest.approx(direct.mean_rate(), rel=1e-15)
    assert out["drive"] == pytest.approx(1.0 + 0.01 * np.sqrt(50) * 1.0 * 1.0)


def test_run_drive_override_and_t_max(capsys):
    assert main(["run", "--model", "qif", "--n", "500", "--k", "20", "--drive", "0.5",
                 "--t-max", "0.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["drive"] == 0.5 and out["model"] == "qif"
    assert out["sim_time_s"] == pytest.approx(0.2) and out["stopped_by"] == "t_max"


def test_run_out_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "run.npz", tmp_path / "raster.png"
    assert main(["run", "--n", "1000", "--k", "20", "--spikes", "3000", "--out", str(out),
                 "--plot", str(png)]) == 0
    res = sp.load_result(out)
    assert res.n_spikes == 3000 and res.times.shape == (3000,)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mean rate" in capsys.readouterr().out


@pytest.mark.parametrize("args, name", [(["--n", "0"], "n"), (["--k", "5000", "--n", "100"], "k"),
                                        (["--tau", "-1"], "tau"), (["--spikes", "0"], "spikes"),
                                        (["--drive", "nan"], "drive"), (["--seed-net", "-3"], "seed_net"),
                                        (["--model", "qif", "--drive", "-1"], "drive")])
def test_run_bad_arguments_exit_2_naming_the_parameter(args, name, capsys):
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert f"{name}:" in err


def test_ctrl_c_stops_cleanly_and_saves(tmp_path):
    out = tmp_path / "partial.npz"
    proc = subprocess.Popen(RUN + ["run", "--n", "20000", "--k", "50", "--spikes", "2000000000",
                                   "--out", str(out), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            # as from a terminal: a runner started in the background (`make test &`)
                            # would otherwise pass SIGINT down as ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(3.0)                   # import + start; the run itself would take hours
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()                       # never leave the child running if the test fails
    assert proc.returncode == 130, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["interrupted"] is True and summary["stopped_by"] == "interrupt"
    res = sp.load_result(out)
    assert res.interrupted and res.n_spikes == summary["spikes"] > 0
    assert np.all(np.diff(res.times) >= 0)
    # what was kept is exactly the beginning of the uninterrupted run
    again = sp.simulate(sp.balanced_network(n=20000, k=50), spikes=res.n_spikes)
    np.testing.assert_array_equal(again.times, res.times)
    np.testing.assert_array_equal(again.neurons, res.neurons)


def test_unwritable_output_is_an_error_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "missing-dir" / "run.npz"
    assert main(["run", "--n", "200", "--k", "10", "--spikes", "100", "--out", str(bad)]) == 2
    assert "run: error:" in capsys.readouterr().err
