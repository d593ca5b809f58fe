"""The shared progress bar (sparseprop/_progress.py) and its users: simulate and sweeps."""
import io

import sparseprop as sp
from sparseprop import sweep
from sparseprop._progress import Progress


def test_plain_lines_off_a_terminal_and_rate_limited():
    out = io.StringIO()                        # not a tty: one plain line per draw, no \r
    bar = Progress(10, "runs", enabled=True, delay=0.0, stream=out, label="job")
    bar.update(3, "x", force=True)
    bar.update(4)                              # within 5 s of the last line: not drawn
    bar.update(10, force=True)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0].startswith("job [") and "3/10 runs" in lines[0] and lines[0].endswith("x")
    assert "100.0%" in lines[1] and "eta" not in lines[1]


def test_disabled_by_default_off_a_terminal():
    out = io.StringIO()
    bar = Progress(10, "runs", stream=out, delay=0.0)
    bar.update(5, force=True)
    assert out.getvalue() == ""


def test_sweep_draws_through_the_shared_bar(tmp_path, capsys):
    res = sweep.run_sweep("ishigami", [{"x1": 0.1, "x2": 0.2, "x3": 0.3}, {"x1": 1.0, "x2": 0.5, "x3": -1.0}],
                          backend="serial", progress=True)
    assert len(res.table) == 2
    err = capsys.readouterr().err
    assert "sweep [" in err and "2/2 runs" in err and "failed 0" in err


def test_simulate_progress_on_request(capsys, monkeypatch):
    monkeypatch.setattr("sparseprop._progress.time.perf_counter", iter(range(0, 10**6, 10)).__next__)
    sp.simulate(sp.balanced_network(n=500, k=20), spikes=3000, progress=True)
    err = capsys.readouterr().err
    assert "spikes" in err and "/3000" in err
