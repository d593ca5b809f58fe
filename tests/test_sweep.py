"""Sweep / UQ layer: backends agree bit for bit, failures are recorded, sweeps resume, PCE recovers
known Sobol indices, specs are validated. The generic runner is tested with small pure-Python run
functions (a helper module written at import time, importable by worker processes); the network
run function with the compiled core (skipped when it is not built)."""

import atexit
import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

try:
    import sparseprop  # noqa: F401

    HAVE_CORE = True
except ImportError:
    HAVE_CORE = False

try:
    from sparseprop import sweep, uq
except ImportError:
    # The compiled core is not built: test the pure-Python sweep layer of the source tree through a
    # throw-away package (importable by worker processes, which receive sys.path).
    _shim = Path(tempfile.mkdtemp(prefix="sp-sweep-shim-"))
    atexit.register(shutil.rmtree, _shim, True)
    (_shim / "spsweep_shim").mkdir()
    (_shim / "spsweep_shim" / "__init__.py").write_text("")
    for _name in ("sweep.py", "uq.py"):
        (_shim / "spsweep_shim" / _name).symlink_to(ROOT / "sparseprop" / _name)
    sys.path.insert(0, str(_shim))
    sweep = importlib.import_module("spsweep_shim.sweep")
    uq = importlib.import_module("spsweep_shim.uq")

HELPERS = '''
import os, time
import numpy as np

def square(params):
    rng = np.random.default_rng(params["seed"])
    return {"y": params["x"] ** 2, "noise": float(rng.standard_normal()), "label": f"x{params['x']}"}

def maybe_fail(params):
    if params["x"] == 2:
        raise ValueError(f"bad point x={params['x']}")
    return {"y": float(params["x"])}

def die(params):
    if params["x"] == 2:
        os._exit(3)
    return {"y": float(params["x"])}

def logged(params):
    with open(params["log"], "a") as fh:
        fh.write(f"{params['x']}\\n")
    if params["x"] == params.get("stop_at") and not os.path.exists(params["marker"]):
        open(params["marker"], "w").close()
        raise KeyboardInterrupt
    if params.get("kill_parent_at") == params["x"] and not os.path.exists(params["marker"]):
        open(params["marker"], "w").close()
        os.kill(os.getppid(), 9)
        time.sleep(5)
    time.sleep(params.get("sleep", 0.0))
    return {"y": params["x"] * 10.0}

def busy(params):
    t = time.perf_counter()
    while time.perf_counter() - t < params["s"]:
        pass
    return {"y": params["s"]}

def twice(result):
    return 2 * result["y"]

def last_time(result):
    return float(result.times[-1])

def pair(result):
    return {"a": 1, "b": result["y"] + 0.5}
'''

_helpers_dir = Path(tempfile.mkdtemp(prefix="sp-sweep-helpers-"))
atexit.register(shutil.rmtree, _helpers_dir, True)
(_helpers_dir / "sweep_test_helpers.py").write_text(HELPERS)
sys.path.insert(0, str(_helpers_dir))
H = "sweep_test_helpers"

ISHIGAMI_S1 = np.array([0.3139, 0.4424, 0.0])
ISHIGAMI_ST = np.array([0.5576, 0.4424, 0.2437])
PI_UNIFORM = {"dist": "uniform", "lower": -math.pi, "upper": math.pi}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
    return env


def _strip_wall(table):
    names = [n for n in table.dtype.names if n not in ("wall_s", "cpu_s", "sim_wall_s")]
    return table[names]


def assert_same_table(a, b):
    a, b = _strip_wall(a), _strip_wall(b)
    assert a.dtype == b.dtype
    for name in a.dtype.names:
        if a.dtype[name].kind == "f":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # NaN == NaN here, bit for bit
        else:
            assert list(a[name]) == list(b[name]), name


def _log_counts(path):
    if not Path(path).exists():
        return {}
    xs = [int(line) for line in Path(path).read_text().split()]
    return {x: xs.count(x) for x in set(xs)}


# --------------------------------------------------------------------------------------------------
# seeds, grid, table
# --------------------------------------------------------------------------------------------------


def test_seeds_come_from_spawned_seed_sequences():
    children = np.random.SeedSequence(1234).spawn(3)
    for r, child in enumerate(children):
        assert sweep.run_seed(1234, point=7, replicate=r) == int(child.generate_state(1, np.uint32)[0])
    a = sweep.run_seed(5, 0, 0, common=False)
    b = sweep.run_seed(5, 1, 0, common=False)
    assert a != b
    assert sweep.run_seed(5, 0, 0) == sweep.run_seed(5, 1, 0)


def test_grid_product_and_errors():
    pts = sweep.grid({"n": 10}, j0=[1, 2], k=[3, 4, 5])
    assert len(pts) == 6 and pts[1] == {"n": 10, "j0": 1, "k": 4}
    with pytest.raises(sweep.SpecError, match="empty"):
        sweep.grid(j0=[])
    with pytest.raises(sweep.SpecError, match="both fixed and a grid axis"):
        sweep.grid({"j0": 1}, j0=[1, 2])


def test_serial_and_local_with_any_worker_count_agree(tmp_path):
    pts = sweep.grid(x=[1, 2, 3, 4])
    ref = sweep.run_sweep(f"{H}:square", pts, seeds=3, base_seed=9, backend="serial")
    assert ref.n_runs == 12 and ref.n_failed == 0
    t = ref.table
    assert list(t["run"]) == list(range(12))
    assert list(t["x"]) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    np.testing.assert_array_equal(t["y"], t["x"] ** 2)
    assert t["label"][3] == "x2"
    # common random numbers: replicate r has the same seed (and noise) at every point
    np.testing.assert_array_equal(t["noise"][0::3], t["noise"][0])
    for workers in (1, 2):
        res = sweep.run_sweep(f"{H}:square", pts, seeds=3, base_seed=9, workers=workers,
                              out=tmp_path / f"w{workers}")
        assert_same_table(ref.table, res.table)
    indep = sweep.run_sweep(f"{H}:square", pts, seeds=3, base_seed=9, common_seeds=False, backend="serial")
    assert len(set(indep.table["seed"])) == 12


def test_explicit_seeds_and_user_statistics(tmp_path):
    import sweep_test_helpers as helpers

    extra = [f"{H}:twice", helpers.pair]
    try:
        import cloudpickle  # noqa: F401  (ships lambdas and closures by value)

        extra.append(lambda r: r["y"] + 1)
    except ImportError:
        pass
    res = sweep.run_sweep(f"{H}:square", [{"x": 3}], seeds=[11, 12], extra=extra, workers=2)
    t = res.table
    assert list(t["seed"]) == [11, 12]
    assert list(t["twice"]) == [18, 18] and list(t["a"]) == [1, 1] and list(t["b"]) == [9.5, 9.5]
    if len(extra) == 3:
        assert list(t["<lambda>"]) == [10, 10]


def test_csv_json_and_metadata_written(tmp_path):
    res = sweep.run_sweep(f"{H}:maybe_fail", sweep.grid(x=[1, 2, 3]), seeds=1, out=tmp_path / "o", workers=2)
    meta = json.loads((tmp_path / "o" / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["n_failed"] == 1 and meta["spec_hash"] == res.spec_hash
    lines = (tmp_path / "o" / "results.csv").read_text().splitlines()
    assert lines[0].split(",") == list(res.table.dtype.names)
    assert len(lines) == 4 and "ValueError: bad point x=2" in lines[2]
    back = sweep.load_sweep(tmp_path / "o")
    assert_same_table(back, res.table)
    assert set(res.summary()) >= {"runs", "failed", "wall_s", "csv", "jsonl", "meta"}


def test_failing_point_is_recorded_and_sweep_goes_on():
    for backend in ("serial", "local"):
        res = sweep.run_sweep(f"{H}:maybe_fail", sweep.grid(x=[1, 2, 3]), seeds=2, backend=backend)
        t = res.table
        assert res.n_failed == 2 and res.n_runs == 6
        bad = t["x"] == 2
        assert all(t["status"][bad] == "failed") and all(t["status"][~bad] == "ok")
        assert all(e == "ValueError: bad point x=2" for e in t["error"][bad])
        assert np.isnan(t["y"][bad]).all() and list(t["y"][~bad]) == [1, 1, 3, 3]
        assert "Traceback" in res.records[2]["traceback"]


def test_killed_worker_is_recorded_and_sweep_goes_on():
    res = sweep.run_sweep(f"{H}:die", sweep.grid(x=[1, 2, 3, 4, 5]), seeds=1, workers=2)
    t = res.table
    assert list(t["status"]) == ["ok", "failed", "ok", "ok", "ok"]
    assert t["error"][1].startswith("WorkerDied")
    assert list(t["y"][[0, 2, 3, 4]]) == [1, 3, 4, 5]


def test_unpicklable_result_or_bad_reference_is_clear():
    with pytest.raises(sweep.SpecError, match="no attribute"):
        sweep.run_sweep(f"{H}:nope", [{"x": 1}])
    with pytest.raises(sweep.SpecError, match="cannot import module"):
        sweep.run_sweep("no_such_module_xyz:f", [{"x": 1}])
    with pytest.raises(sweep.SpecError, match="seed"):
        sweep.run_sweep(f"{H}:square", [{"x": 1, "seed": 3}])
    with pytest.raises(sweep.SpecError, match="backend"):
        sweep.run_sweep(f"{H}:square", [{"x": 1}], backend="slurm")
    with pytest.raises(sweep.SpecError, match="no points"):
        sweep.run_sweep(f"{H}:square", [])


def test_as_frame():
    pd = pytest.importorskip("pandas")
    res = sweep.run_sweep(f"{H}:square", sweep.grid(x=[1, 2]), backend="serial", as_frame=True)
    assert isinstance(res.table, pd.DataFrame) and list(res.table["y"]) == [1, 4]


# --------------------------------------------------------------------------------------------------
# resume
# --------------------------------------------------------------------------------------------------


def _logged_points(tmp_path, n=8, **extra):
    return [{"x": x, "log": str(tmp_path / "calls.log"), "marker": str(tmp_path / "marker"), **extra}
            for x in range(n)]


def test_resume_after_keyboard_interrupt(tmp_path):
    pts = _logged_points(tmp_path, stop_at=5)
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(f"{H}:logged", pts, out=out, backend="serial")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["n_done"] == 5
    assert len((out / "results.csv").read_text().splitlines()) == 6  # partial table is readable
    res = sweep.run_sweep(f"{H}:logged", pts, out=out, backend="serial")
    assert res.n_resumed == 5 and res.n_failed == 0 and list(res.table["y"]) == [10.0 * x for x in range(8)]
    assert _log_counts(tmp_path / "calls.log") == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 1, 7: 1}
    # a third call recomputes nothing
    again = sweep.run_sweep(f"{H}:logged", pts, out=out, workers=2)
    assert again.n_resumed == 8
    assert sum(_log_counts(tmp_path / "calls.log").values()) == 9
    assert_same_table(res.table, again.table)


def test_resume_after_truncated_log(tmp_path):
    pts = _logged_points(tmp_path)
    out = tmp_path / "o"
    full = sweep.run_sweep(f"{H}:logged", pts, out=out, workers=2)
    lines = (out / "runs.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) == 9  # header + 8 runs
    finished = [json.loads(line)["run"] for line in lines[1:6]]
    # keep 5 records and half of the 6th, as if the process died while writing
    (out / "runs.jsonl").write_text("".join(lines[:6]) + lines[6][: len(lines[6]) // 2])
    (tmp_path / "calls.log").unlink()
    res = sweep.run_sweep(f"{H}:logged", pts, out=out, workers=2)
    assert res.n_resumed == 5
    recomputed = set(_log_counts(tmp_path / "calls.log"))
    assert recomputed == set(range(8)) - set(finished)
    assert_same_table(full.table, res.table)
    assert all(json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines())


def test_resume_after_the_sweep_process_is_killed(tmp_path):
    """A sweep process killed outright (SIGKILL, here by its own worker) resumes from its log."""
    pts = _logged_points(tmp_path, n=10, kill_parent_at=6, sleep=0.05)
    out = tmp_path / "o"
    script = textwrap.dedent(f"""
        import importlib, json, sys
        sweep = importlib.import_module({sweep.__name__!r})
        pts = json.loads(sys.argv[1])
        sweep.run_sweep("{H}:logged", pts, out=sys.argv[2], workers=1)
    """)
    # cwd: `python -c` puts the working directory first on sys.path, and a checkout holds the
    # uncompiled sources, which would shadow the installed package
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(pts), str(out)], env=_env(), cwd=tmp_path,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned pool worker, if still alive
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    done = len((out / "runs.jsonl").read_text().splitlines()) - 1
    assert 3 <= done <= 6
    res = sweep.run_sweep(f"{H}:logged", pts, out=out, workers=2)
    assert res.n_resumed == done and res.n_failed == 0
    assert list(res.table["y"]) == [10.0 * x for x in range(10)]
    counts = _log_counts(tmp_path / "calls.log")
    assert set(counts) == set(range(10)) and max(counts.values()) <= 2
    assert all(counts[x] == 1 for x in range(done - 1))  # finished points were not recomputed


def test_mismatched_spec_is_refused_and_no_resume_overwrites(tmp_path):
    out = tmp_path / "o"
    sweep.run_sweep(f"{H}:square", sweep.grid(x=[1, 2]), out=out, backend="serial")
    with pytest.raises(sweep.SpecMismatchError, match="different sweep"):
        sweep.run_sweep(f"{H}:square", sweep.grid(x=[1, 3]), out=out, backend="serial")
    with pytest.raises(sweep.SpecMismatchError):
        sweep.run_sweep(f"{H}:square", sweep.grid(x=[1, 2]), seeds=2, out=out, backend="serial")
    res = sweep.run_sweep(f"{H}:square", sweep.grid(x=[1, 3]), out=out, backend="serial", resume=False)
    assert res.n_resumed == 0 and list(res.table["y"]) == [1, 9]


def test_retry_failed(tmp_path):
    out = tmp_path / "o"
    sweep.run_sweep(f"{H}:maybe_fail", sweep.grid(x=[1, 2]), out=out, backend="serial")
    res = sweep.run_sweep(f"{H}:maybe_fail", sweep.grid(x=[1, 2]), out=out, backend="serial")
    assert res.n_resumed == 2 and res.n_failed == 1
    res = sweep.run_sweep(f"{H}:maybe_fail", sweep.grid(x=[1, 2]), out=out, backend="serial",
                          retry_failed=True)
    assert res.n_resumed == 1 and res.n_failed == 1


# --------------------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_scheduler():
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_dask_cluster_matches_local(dask_scheduler, tmp_path):
    pts = sweep.grid(x=[1, 2, 3, 4, 5])
    local = sweep.run_sweep(f"{H}:square", pts, seeds=2, base_seed=3, workers=2)
    res = sweep.run_sweep(f"{H}:square", pts, seeds=2, base_seed=3, backend="dask",
                          scheduler=dask_scheduler, out=tmp_path / "d")
    assert res.workers == 2
    assert_same_table(local.table, res.table)
    failing = sweep.run_sweep(f"{H}:maybe_fail", pts, backend="dask", scheduler=dask_scheduler)
    assert failing.n_failed == 1 and failing.table["error"][1] == "ValueError: bad point x=2"


def test_dask_local_cluster_started_for_the_sweep(tmp_path):
    pytest.importorskip("distributed")
    pts = sweep.grid(x=[1, 2, 3])
    ref = sweep.run_sweep(f"{H}:square", pts, seeds=2, backend="serial")
    res = sweep.run_sweep(f"{H}:square", pts, seeds=2, backend="dask", workers=2)
    assert_same_table(ref.table, res.table)


@pytest.mark.slow
def test_dask_killed_worker_is_recorded(tmp_path):
    pytest.importorskip("distributed")
    res = sweep.run_sweep(f"{H}:die", sweep.grid(x=[1, 2, 3, 4]), backend="dask", workers=2)
    assert list(res.table["status"]) == ["ok", "failed", "ok", "ok"]
    assert "KilledWorker" in res.table["error"][1]


# --------------------------------------------------------------------------------------------------
# UQ
# --------------------------------------------------------------------------------------------------


def test_pce_recovers_ishigami_sobol_indices(tmp_path):
    res = uq.run_uq("ishigami", {f"x{i}": PI_UNIFORM for i in (1, 2, 3)}, design="sobol", samples=600,
                    order=7, workers=2, out=tmp_path / "u", figure=False)
    s = res.statistics["y"]
    np.testing.assert_allclose([s["S1"][f"x{i}"] for i in (1, 2, 3)], ISHIGAMI_S1, atol=1e-2)
    np.testing.assert_allclose([s["ST"][f"x{i}"] for i in (1, 2, 3)], ISHIGAMI_ST, atol=1e-2)
    a, b = 7.0, 0.1
    mean = a / 2
    var = a ** 2 / 8 + b * math.pi ** 4 / 5 + b ** 2 * math.pi ** 8 / 18 + 0.5
    assert s["mean"] == pytest.approx(mean, abs=2e-2) and s["std"] == pytest.approx(math.sqrt(var), rel=1e-2)
    assert s["q2"] > 0.95
    saved = json.loads((tmp_path / "u" / "uq.json").read_text())
    assert saved["statistics"]["y"]["S1"]["x2"] == s["S1"]["x2"] and len(saved["nodes"][0]) == 600


def test_pce_quadrature_design_and_chaospy_indices_agree():
    params = {f"x{i}": PI_UNIFORM for i in (1, 2, 3)}
    quad = uq.run_uq("ishigami", params, design="quadrature", order=8, quadrature_order=9, workers=2)
    s = quad.statistics["y"]
    assert quad.fit == "quadrature" and quad.nodes.shape == (3, 1000)
    np.testing.assert_allclose([s["ST"][f"x{i}"] for i in (1, 2, 3)], ISHIGAMI_ST, atol=1e-2)
    # the coefficient formula equals chaospy's Sens_m / Sens_t (checked at low order: they are slow)
    import chaospy

    joint = chaospy.J(*[chaospy.Uniform(-math.pi, math.pi) for _ in range(3)])
    nodes, _ = uq.make_design(joint, "halton", 60)
    y = np.array([sweep.ishigami({"x1": a, "x2": b, "x3": c})["y"] for a, b, c in nodes.T])
    fast = uq.fit_pce(nodes, y, joint, 3)
    slow = uq.fit_pce(nodes, y, joint, 3, sobol="chaospy")
    np.testing.assert_allclose(fast.s1, slow.s1, atol=1e-10)
    np.testing.assert_allclose(fast.st, slow.st, atol=1e-10)
    assert fast.mean == pytest.approx(slow.mean, abs=1e-10) and fast.std == pytest.approx(slow.std, rel=1e-10)


def test_uq_designs_are_deterministic_and_rounding():
    import chaospy

    joint = chaospy.J(chaospy.Uniform(0, 1), chaospy.Normal(0, 1))
    for design in ("sobol", "halton", "latin_hypercube", "random"):
        a, _ = uq.make_design(joint, design, 16, seed=4)
        b, _ = uq.make_design(joint, design, 16, seed=4)
        np.testing.assert_array_equal(a, b)
        assert a.shape == (2, 16) and np.isfinite(a).all()
    res = uq.run_uq(f"{H}:square", {"x": {"dist": "uniform", "lower": 0.5, "upper": 4.5, "round": True}},
                    design="sobol", samples=8, order=1, backend="serial", statistics=["y"])
    assert res.sweep.table["x"].dtype.kind == "i"
    assert set(res.sweep.table["x"]) <= {1, 2, 3, 4}


def test_uq_figure(tmp_path):
    pytest.importorskip("matplotlib")
    res = uq.run_uq("ishigami", {f"x{i}": PI_UNIFORM for i in (1, 2, 3)}, design="sobol", samples=40,
                    order=2, backend="serial", out=tmp_path / "f")
    png = Path(res.paths["figure"])
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("spec, match", [
    ({"dist": "gamma", "lower": 0, "upper": 1}, "dist must be one of"),
    ({"dist": "uniform", "lower": 2, "upper": 1}, "lower < upper"),
    ({"dist": "uniform", "lower": 0}, "needs upper"),
    ({"dist": "normal", "mu": 0, "sigma": -1}, "sigma must be > 0"),
    ({"dist": "uniform", "lower": 0, "upper": 1, "scale": 3}, "unknown key"),
    ({"dist": "uniform", "lower": "a", "upper": 1}, "finite number"),
    ({"dist": "loguniform", "lower": 0, "upper": 1}, "lower must be > 0"),
    ({"dist": "uniform", "lower": 0, "upper": 1, "round": "yes"}, "round must be"),
    ([0, 1], "must be a table"),
])
def test_bad_distributions(spec, match):
    with pytest.raises(sweep.SpecError, match=match):
        uq.make_distribution(spec, "j0")


def test_too_small_regression_design_is_reported():
    res = uq.run_uq("ishigami", {f"x{i}": PI_UNIFORM for i in (1, 2, 3)}, samples=5, order=3,
                    backend="serial")
    assert "need at least 20" in res.statistics["y"]["error"]


# --------------------------------------------------------------------------------------------------
# statistics of spike trains
# --------------------------------------------------------------------------------------------------


def test_spike_statistics_on_known_trains():
    rng = np.random.default_rng(0)
    n, rate, T = 400, 20.0, 50.0
    counts = rng.poisson(rate * T, n)
    neurons = np.repeat(np.arange(n), counts)
    times = rng.uniform(0, T, counts.sum())
    order = np.argsort(times)
    s = sweep.spike_statistics(times[order], neurons[order], n, 0.0, T, fano_window=0.5, sync_bin=0.01)
    assert s["rate_hz"] == pytest.approx(rate, rel=0.01)
    assert s["cv_isi"] == pytest.approx(1.0, abs=0.02)
    assert s["fano"] == pytest.approx(1.0, abs=0.03)
    assert s["chi"] == pytest.approx(1 / math.sqrt(n), rel=0.2)
    # perfectly synchronous, regular 10 Hz firing
    t = np.repeat(np.arange(0.05, 10.0, 0.1), n)
    j = np.tile(np.arange(n), t.size // n)
    s = sweep.spike_statistics(t, j, n, 0.0, 10.0, fano_window=1.0, sync_bin=0.01)
    assert s["rate_hz"] == pytest.approx(10.0)
    assert s["cv_isi"] == pytest.approx(0.0, abs=1e-9) and s["fano"] == pytest.approx(0.0, abs=1e-9)
    assert s["chi"] == pytest.approx(1.0)
    s = sweep.spike_statistics(t, j, n, 0.0, 10.0, t_transient=5.0, fano_window=1.0, sync_bin=0.01)
    assert s["n_spikes_stat"] == 50 * n and s["rate_hz"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="no time left"):
        sweep.spike_statistics(t, j, n, 0.0, 10.0, t_transient=10.0)


# --------------------------------------------------------------------------------------------------
# specs and the CLI
# --------------------------------------------------------------------------------------------------


def _write(tmp_path, text, name="spec.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


ISHIGAMI_GRID = """
    [sweep]
    run = "ishigami"
    seeds = 2
    [params]
    x3 = 0.5
    [grid]
    x1 = [0.0, 1.0]
    x2 = [1.0, 2.0, 3.0]
"""


def test_cli_json_and_resume(tmp_path, capsys):
    spec = _write(tmp_path, ISHIGAMI_GRID)
    out = str(tmp_path / "o")
    assert sweep.main([spec, "--out", out, "--json", "--workers", "2", "--quiet"]) == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1
    rec = json.loads(line[0])
    assert rec["runs"] == 12 and rec["failed"] == 0 and rec["computed"] == 12 and rec["wall_s"] > 0
    assert Path(rec["csv"]).exists() and Path(rec["meta"]).exists() and Path(rec["jsonl"]).exists()
    assert sweep.main([spec, "--out", out, "--json", "--backend", "serial"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["resumed"] == 12
    assert "sweep [" in captured.err and "12/12 runs" in captured.err
    # the text report
    assert sweep.main([spec, "--out", out]) == 0
    assert "12 runs (0 failed, 12 resumed)" in capsys.readouterr().err


def test_cli_uq_spec(tmp_path, capsys):
    spec = _write(tmp_path, """
        [sweep]
        run = "ishigami"
        [uq]
        design = "halton"
        samples = 120
        order = 4
        figure = false
        [uq.parameters.x1]
        dist = "uniform"
        lower = -3.141592653589793
        upper = 3.141592653589793
        [uq.parameters.x2]
        dist = "uniform"
        lower = -3.141592653589793
        upper = 3.141592653589793
        [uq.parameters.x3]
        dist = "uniform"
        lower = -3.141592653589793
        upper = 3.141592653589793
    """)
    assert sweep.main([spec, "--out", str(tmp_path / "u"), "--json", "--backend", "serial"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["runs"] == 120 and set(rec["uq"]["y"]["S1"]) == {"x1", "x2", "x3"}
    assert Path(rec["uq_json"]).exists()


@pytest.mark.parametrize("text, match", [
    ("[sweep]\nrun = 'ishigami'\nbogus = 1\n", "unknown key"),
    ("[sweeps]\n", "unknown table"),
    ("[sweep]\nrun = 'ishigami'\nseeds = 'many'\n", "seeds"),
    ("[sweep]\nrun = 'ishigami'\nseeds = 0\n", "seeds must be >= 1"),
    ("[sweep]\nrun = 'ishigami'\nworkers = 1.5\n", "workers"),
    ("[sweep]\nrun = 'ishigami'\n[grid]\nx1 = []\n", "empty"),
    ("[sweep]\nrun = 'ishigami'\n[grid]\n", "empty"),
    ("[sweep]\nrun = 'ishigami'\n[grid]\nx1 = 1.0\n", "must be a list"),
    ("[sweep]\nrun = 'ishigami'\n[params]\nx1 = 1.0\n[grid]\nx1 = [1.0]\n", "both fixed"),
    ("[sweep]\nrun = 'ishigami'\n[params]\nx9 = 1.0\n", "unknown ishigami parameter"),
    ("[sweep]\nrun = 'ishigami'\n[grid]\nx1 = [1.0]\n[uq.parameters.x2]\ndist = 'uniform'\n", "not \\[grid\\] and"),
    ("[sweep]\nrun = 'ishigami'\n[uq]\ndesign = 'sobol'\n", "at least one distribution"),
    ("[sweep]\nrun = 'ishigami'\n[uq]\ndesign = 'grid'\n[uq.parameters.x1]\ndist = 'uniform'\nlower = 0\nupper = 1\n",
     "design must be one of"),
    ("[sweep]\nrun = 'ishigami'\n[uq.parameters.x1]\ndist = 'beta'\n", "dist must be one of"),
    ("[params]\nn = 100\nk = 10\nj0 = 'strong'\nt_max = 1.0\n", "'j0' must be"),
    ("[params]\nn = 100.0\nk = 10\nt_max = 1.0\n", "'n' must be int"),
    ("[params]\nn = 100\nk = 10\nspeed = 3\nt_max = 1.0\n", "unknown network parameter"),
    ("[params]\nn = 100\nk = 10\n", "'spikes' or 't_max'"),
    ("[params]\nn = 100\nk = 100\nt_max = 1.0\n", "1 <= k < n"),
    ("[params]\nn = 100\nt_max = 1.0\n[uq.parameters.k]\ndist = 'uniform'\nlower = 5\nupper = 50\n",
     "add round = true"),
    ("[sweep]\nrun = 'ishigami'\nbackend = 'slurm'\n", "backend must be one of"),
    ("this is = not toml [", "invalid TOML"),
])
def test_spec_validation_errors(tmp_path, capsys, text, match):
    spec = _write(tmp_path, text)
    assert sweep.main([spec, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err
    import re

    assert re.search(match, err), err
    assert not (tmp_path / "o").exists()


def test_cli_other_errors(tmp_path, capsys):
    assert sweep.main([str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    spec = _write(tmp_path, ISHIGAMI_GRID)
    assert sweep.main([spec, "--scheduler", "tcp://127.0.0.1:1", "--backend", "local"]) == 2
    assert sweep.main([spec, "--workers", "0"]) == 2
    out = str(tmp_path / "o")
    assert sweep.main([spec, "--out", out, "--backend", "serial"]) == 0
    other = _write(tmp_path, ISHIGAMI_GRID.replace("seeds = 2", "seeds = 3"), "other.toml")
    assert sweep.main([other, "--out", out]) == 2
    assert "different sweep" in capsys.readouterr().err
    assert sweep.main([other, "--out", out, "--no-resume", "--backend", "serial"]) == 0


def test_subcommand_registers_on_a_parent_cli(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="sparseprop")
    sweep.add_subcommand(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sweep", _write(tmp_path, ISHIGAMI_GRID), "--out", str(tmp_path / "o"),
                              "--backend", "serial", "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == 12


def test_cli_strict_exit_code(tmp_path):
    spec = _write(tmp_path, f"""
        [sweep]
        run = "{H}:maybe_fail"
        [grid]
        x = [1, 2]
    """)
    assert sweep.main([spec, "--out", str(tmp_path / "o"), "--backend", "serial", "--quiet"]) == 0
    assert sweep.main([spec, "--out", str(tmp_path / "o"), "--quiet", "--strict"]) == 1


@pytest.mark.parametrize("name", ["seed_sweep.toml", "uq_rate.toml"])
def test_example_specs_are_valid(name):
    spec = sweep.load_spec(ROOT / "examples" / name)
    assert spec.run == "network"


# --------------------------------------------------------------------------------------------------
# the network run function (needs the compiled core)
# --------------------------------------------------------------------------------------------------

needs_core = pytest.mark.skipif(not HAVE_CORE, reason="compiled core not built")


@needs_core
def test_network_sweep_local_equals_serial(tmp_path):
    params = {"n": 300, "k": 30, "t_max": 1.0, "fano_window": 0.1}
    kw = {"seeds": 2, "base_seed": 1}
    ref = sweep.network_sweep(params, {"j0": [0.5, 1.0]}, backend="serial", **kw)
    res = sweep.network_sweep(params, {"j0": [0.5, 1.0]}, workers=2, out=tmp_path / "n", **kw)
    assert res.n_failed == 0, res.table["error"]
    assert_same_table(ref.table, res.table)
    t = res.table
    assert (t["rate_hz"] > 0).all() and (t["n_spikes"] > 0).all() and (t["t_sim_s"] == 1.0).all()
    assert np.isfinite(t["cv_isi"]).all() and np.isfinite(t["chi"]).all()
    # the row is the statistics of the run it describes
    import sparseprop as sp

    net = sp.balanced_network(n=300, k=30, j0=0.5, seed_net=int(t["seed"][0]))
    direct = sp.simulate(net, t_max=1.0, seed_ic=int(t["seed"][0]))
    assert t["n_spikes"][0] == direct.n_spikes
    assert t["rate_hz"][0] == pytest.approx(direct.mean_rate(), rel=1e-12)
    assert t["cv_isi"][0] == pytest.approx(direct.cv(), rel=1e-9)


@needs_core
def test_network_user_statistic_and_bad_point(tmp_path):
    # run_sweep (unlike network_sweep) does not validate up front: the bad point fails in its worker
    pts = [{"n": 200, "k": 20, "spikes": 500, "j0": j0} for j0 in (1.0, -1.0)]
    res = sweep.run_sweep("network", pts, extra={"last_t": f"{H}:last_time"}, workers=2)
    t = res.table
    assert t["status"][0] == "ok" and t["last_t"][0] > 0
    assert t["status"][1] == "failed" and "j0" in t["error"][1]


@needs_core
def test_network_validation():
    with pytest.raises(sweep.SpecError, match="unknown network parameter"):
        sweep.network_sweep({"n": 100, "k": 10, "t_max": 1.0, "kk": 3})
    with pytest.raises(sweep.SpecError, match="'spikes' or 't_max'"):
        sweep.network_sweep({"n": 100, "k": 10})


@needs_core
def test_network_drive_heterogeneity_runs():
    res = sweep.network_sweep({"n": 200, "k": 20, "t_max": 0.5, "drive_sd": 0.05}, backend="serial")
    assert res.n_failed == 0, res.table["error"]


@needs_core
@pytest.mark.slow
def test_example_seed_sweep_on_dask(tmp_path, capsys):
    assert sweep.main([str(ROOT / "examples" / "seed_sweep.toml"), "--backend", "dask", "--workers", "2",
                       "--out", str(tmp_path / "s"), "--json", "--quiet"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["runs"] == 8 and rec["failed"] == 0
    t = sweep.load_sweep(tmp_path / "s")
    assert 2.5 < t["rate_hz"].mean() < 4.5  # the K = 100 LIF reference network fires at ~3.4 Hz


@needs_core
@pytest.mark.slow
def test_example_uq_rate(tmp_path, capsys):
    assert sweep.main([str(ROOT / "examples" / "uq_rate.toml"), "--out", str(tmp_path / "u"), "--json",
                       "--quiet"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["failed"] == 0
    st = rec["uq"]["rate_hz"]["ST"]
    assert set(st) == {"j0", "k", "rate"} and all(0 <= v <= 1.0 + 1e-9 for v in st.values())
