"""Phase tables: generator, file format, loader and NumPy evaluator against independent oracles.

Oracles (written here independently of the package):
  LIF  dV/dt = -V + I, reset 0, threshold 1:  T(V) = ln((I - V)/(I - 1)), omega = 1/T(0),
       phase = 1 - omega T(V), V(phi) = I - (I - 1) exp((1 - phi)/omega),
       g(phi, w) = -omega ln(exp(-phi/omega) - w/I)   (>= 1 means "fires now")
  QIF  dV/dt = V^2 + I with the finite cut-off +-1000:
       T(V) = (atan(1000/sqrt(I)) - atan(V/sqrt(I)))/sqrt(I)
  EIF  dV/dt = -V + 0.1 exp(V/0.1) + I: scipy.integrate.solve_ivp (time domain, event) and quad.
"""
import importlib.util
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

try:  # the installed package
    from sparseprop import tablegen, tables
except ImportError:  # compiled core not built yet: load the two pure-Python modules from the source tree
    _SRC = Path(__file__).resolve().parents[1] / "sparseprop"

    def _load(name, file):
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, _SRC / file)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    tables = _load("_sparseprop_tables", "tables.py")  # the name tablegen's own fallback uses
    tablegen = _load("_sparseprop_tablegen", "tablegen.py")

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "tables"
TABLEGEN_PY = Path(tablegen.__file__).resolve()
FAST = dict(check_points=400)  # small check grid: the default suite stays fast

I_LIF = 1.1
OM_LIF = 1.0 / math.log(I_LIF / (I_LIF - 1.0))


def lif_phase(v, I=I_LIF):
    om = 1.0 / math.log(I / (I - 1.0))
    return 1.0 - om * np.log((I - v) / (I - 1.0))


def lif_voltage(phi, I=I_LIF):
    om = 1.0 / math.log(I / (I - 1.0))
    return I - (I - 1.0) * np.exp((1.0 - phi) / om)


def qif_T(v, I, vs=1000.0):
    s = math.sqrt(I)
    return (np.arctan(vs / s) - np.arctan(np.asarray(v) / s)) / s


def eif_rate(v, I=0.1, dv=0.1):
    x = v / dv
    if x > 0:
        e = math.exp(-x)
        return e / (dv + (I - v) * e)
    return 1.0 / (-v + dv * math.exp(x) + I)


def eif_quad(a, b, I=0.1):
    """int_a^b dV/(F + I) for the seed EIF, scipy QUADPACK with the knee marked."""
    from scipy.integrate import IntegrationWarning, quad

    pts = [p for p in (0.0, 0.5, 1.0, 2.0, 4.0) if a < p < b]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        return quad(eif_rate, a, b, args=(I,), points=pts or None, epsabs=1e-300, epsrel=1e-14, limit=500)[0]


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", params=["chebyshev", "interp"])
def lif_table(request):
    return tablegen.make_table("lif", I_LIF, method=request.param, **FAST)


@pytest.fixture(scope="module")
def qif_table():
    return tablegen.make_table("qif", 1.0, **FAST)


@pytest.fixture(scope="module", params=["eif_seed_chebyshev", "eif_seed_interp"])
def eif_shipped(request):
    return tables.load_table(SHIPPED / f"{request.param}.npz")


# ---------------------------------------------------------------------------------------------- LIF oracle
def test_lif_forward_and_inverse_vs_closed_form(lif_table):
    t = lif_table
    assert t.omega == pytest.approx(OM_LIF, rel=1e-15, abs=0)
    v = np.linspace(t.v_min, 1.0, 20001)
    assert np.max(np.abs(t.phase_from_voltage(v) - lif_phase(np.minimum(v, 1.0)))) <= 1e-13
    phi = np.linspace(t.phase_min, 1.0, 20001)
    V = t.voltage_from_phase(phi)
    assert np.max(np.abs(lif_phase(V) - phi)) <= 1e-13          # backward (phase) error
    assert np.max(np.abs(V - lif_voltage(phi))) <= 1e-13         # LIF is well conditioned: V itself too
    assert t.phase_from_voltage(0.0) == pytest.approx(0.0, abs=1e-15)
    assert t.voltage_from_phase(0.0) == pytest.approx(0.0, abs=1e-14)


def test_lif_ptc_and_derivatives_vs_closed_form(lif_table):
    t = lif_table
    P, W = np.meshgrid(np.linspace(-0.25, 0.999, 157), np.linspace(-0.5, 0.3, 81))
    g, dphi, dw = t.ptc(P, W, derivatives=True)
    arg = np.exp(-P / OM_LIF) - W / I_LIF
    fires = arg <= (I_LIF - 1.0) / I_LIF     # V(phi) + w >= 1
    assert fires.any() and (~fires).any()
    assert np.all(g[fires] >= 1.0)
    m = ~fires
    gex = -OM_LIF * np.log(arg[m])
    assert np.max(np.abs(g[m] - gex)) <= 1e-13
    dphi_ex = np.exp(-P[m] / OM_LIF) / arg[m]
    dw_ex = OM_LIF / (I_LIF * arg[m])
    tol_d = 1e-11 if t.method == "chebyshev" else 1e-9
    assert np.max(np.abs(dphi[m] - dphi_ex) / dphi_ex) <= tol_d
    assert np.max(np.abs(dw[m] - dw_ex) / dw_ex) <= tol_d
    # finite differences of the tabulated PTC itself
    h = 1e-6
    p0, w0 = np.array([-0.2, 0.1, 0.5, 0.9]), np.array([-0.3, 0.05, -0.1, -0.02])
    _, d1, d2 = t.ptc(p0, w0, derivatives=True)
    fd1 = (t.ptc(p0 + h, w0) - t.ptc(p0 - h, w0)) / (2 * h)
    fd2 = (t.ptc(p0, w0 + h) - t.ptc(p0, w0 - h)) / (2 * h)
    np.testing.assert_allclose(d1, fd1, rtol=1e-7)
    np.testing.assert_allclose(d2, fd2, rtol=1e-7)


def test_lif_affine_continuation_below_v_min(lif_table):
    t = lif_table
    assert t.continuation["kind"] == "affine" and t.continuation["a"] == -1.0
    v = np.array([-1.5, -3.0, -10.0, -100.0, -1e4])
    assert np.all(v < t.v_min)
    np.testing.assert_allclose(t.phase_from_voltage(v), lif_phase(v), rtol=1e-14, atol=1e-13)
    phi = np.array([t.phase_min - 1e-3, -1.0, -5.0, -40.0])
    np.testing.assert_allclose(t.voltage_from_phase(phi), lif_voltage(phi), rtol=1e-13)
    # continuity across v_min
    e = 1e-12
    assert abs(t.phase_from_voltage(t.v_min - e) - t.phase_from_voltage(t.v_min + e)) < 1e-12
    # a strongly inhibitory input from low phases goes through the continuation
    g = t.ptc(np.array([-0.2]), np.array([-5.0]))
    assert g[0] == pytest.approx(-OM_LIF * math.log(math.exp(0.2 / OM_LIF) + 5.0 / I_LIF), abs=1e-13)


def test_shipped_lif_table_vs_closed_form():
    t = tables.load_table(SHIPPED / "lif_i1.1_chebyshev.npz")
    assert t.metadata["model"]["name"] == "lif" and t.drive == 1.1 and t.method == "chebyshev"
    v = np.linspace(-2.0, 1.0, 5001)
    assert np.max(np.abs(t.phase_from_voltage(v) - lif_phase(v))) <= 1e-13
    phi = np.linspace(-0.5, 1.0, 5001)
    assert np.max(np.abs(lif_phase(t.voltage_from_phase(phi)) - phi)) <= 1e-13
    assert max(t.achieved[k] for k in ("phase_forward", "phase_inverse", "phase_roundtrip")) <= t.tol


# ---------------------------------------------------------------------------------------------- QIF oracle
def test_qif_cutoff_table_vs_closed_form(qif_table):
    t = qif_table
    T0 = qif_T(-1000.0, 1.0)
    assert t.period == pytest.approx(T0, rel=1e-15)
    assert t.omega == pytest.approx(1.0 / T0, rel=1e-15)
    v = np.concatenate([np.linspace(-1000, 1000, 20001), np.linspace(-3, 3, 5001)])
    assert np.max(np.abs(t.phase_from_voltage(v) - (1.0 - qif_T(v, 1.0) / T0))) <= 1e-13
    phi = np.linspace(0.0, 1.0, 20001)
    V = t.voltage_from_phase(phi)
    assert np.max(np.abs((1.0 - qif_T(V, 1.0) / T0) - phi)) <= 1e-13
    assert t.continuation is None
    with pytest.raises(ValueError, match="below the table domain"):
        t.phase_from_voltage(-1001.0)
    with pytest.raises(ValueError, match="below the table domain"):
        t.ptc(0.01, -2000.0)   # V(0.01) ~ -30: minus 2000 leaves the domain [-1000, 1000]


# ---------------------------------------------------------------------------------------------- EIF oracle
def test_eif_period_vs_solve_ivp(eif_shipped):
    """Free EIF neuron from the reset, solve_ivp in time (DOP853, rtol 1e-13) with a spike event.

    The event cannot sit at V = 1000 itself: past V ~ 4 the remaining time to the cut-off is below one
    ulp of t (~ 4e-16 at t ~ 3), so the solver stops with 'step size less than spacing between
    numbers'.  The event is put at V = 3 and the time from 3 to 1000 is taken from the table (it is
    ~1e-13) and, independently, the whole period is integrated with V as the independent variable
    (dt/dV = 1/(F + I)) all the way to V = 1000."""
    from scipy.integrate import solve_ivp

    t = eif_shipped

    def rhs(_, y):
        return [-y[0] + 0.1 * math.exp(y[0] / 0.1) + 0.1]

    def event(_, y):
        return y[0] - 3.0

    event.terminal, event.direction = True, 1
    sol = solve_ivp(rhs, (0.0, 50.0), [-1.0], method="DOP853", rtol=1e-13, atol=1e-15, events=event)
    assert sol.status == 1
    t_to_3 = sol.t_events[0][0]
    T3 = t.time_to_spike(3.0)
    assert 0 < T3 < 1e-12
    assert abs((t_to_3 + T3) - t.period) / t.period <= 1e-12
    sol_v = solve_ivp(lambda v, y: [eif_rate(v)], (-1.0, 1000.0), [0.0], method="DOP853", rtol=1e-13, atol=1e-18)
    assert sol_v.status == 0
    assert abs(sol_v.y[0, -1] - t.period) / t.period <= 1e-12


def test_eif_phase_vs_quad(eif_shipped):
    t = eif_shipped
    period = eif_quad(-1.0, 1000.0)
    assert abs(t.period - period) / period <= 1e-14
    rng = np.random.default_rng(7)
    v = np.concatenate([rng.uniform(-4.0, 3.0, 30), [-4.0, -1.0, -0.5, 0.0, 0.05, 0.3, 1.0, 2.5]])
    ref = np.array([1.0 - eif_quad(x, 1000.0) / period for x in v])
    assert np.max(np.abs(t.phase_from_voltage(v) - ref)) <= 2e-14
    phi = np.concatenate([rng.uniform(t.phase_min, 1.0, 30), 1.0 - np.logspace(-14, -1, 8)])
    V = t.voltage_from_phase(phi)
    back = np.array([1.0 - eif_quad(x, 1000.0) / period for x in V])
    assert np.max(np.abs(back - phi)) <= 2e-14


def test_eif_continuation_vs_quad(eif_shipped):
    t = eif_shipped
    assert t.continuation["kind"] == "affine" and t.v_min == -4.0
    for v in (-4.5, -6.0, -10.0, -30.0):
        dT = t.time_to_spike(v) - t.time_to_spike(t.v_min)
        assert dT == pytest.approx(eif_quad(v, t.v_min), rel=1e-14)
    # the inverse continuation is the inverse
    phi = np.array([t.phase_min - 0.01, -1.0, -3.0])
    np.testing.assert_allclose(t.phase_from_voltage(t.voltage_from_phase(phi)), phi, rtol=0, atol=1e-14)


def test_eif_out_of_domain_semantics(eif_shipped):
    t = eif_shipped
    assert t.phase_from_voltage(1000.0) == 1.0 and t.phase_from_voltage(5000.0) == 1.0
    p, d = t.phase_from_voltage(np.array([1000.0, 2000.0]), derivative=True)
    assert np.all(p == 1.0) and np.all(d == 0.0)
    assert t.voltage_from_phase(1.0) == 1000.0
    with pytest.raises(ValueError, match="phase_threshold"):
        t.voltage_from_phase(1.0 + 1e-9)
    with pytest.raises(ValueError, match="NaN"):
        t.phase_from_voltage(np.array([0.0, np.nan]))
    # excitation past the cut-off: "fires now" (>= phi_th); a neuron within 1e-15 of threshold stays there
    assert t.ptc(0.5, 2000.0) == 1.0
    assert t.ptc(1.0 - 1e-15, 0.5) >= 1.0 - 1e-15
    assert isinstance(t.phase_from_voltage(0.0), float)


def test_eif_chebyshev_and_interp_agree():
    a = tables.load_table(SHIPPED / "eif_seed_chebyshev.npz")
    b = tables.load_table(SHIPPED / "eif_seed_interp.npz")
    assert a.omega == pytest.approx(b.omega, rel=1e-15)
    v = np.linspace(-8.0, 5.0, 40001)
    assert np.max(np.abs(a.phase_from_voltage(v) - b.phase_from_voltage(v))) <= 1e-14
    P, W = np.meshgrid(np.linspace(-0.4, 0.999, 101), np.linspace(-1.0, 0.5, 61))
    assert np.max(np.abs(a.ptc(P, W) - b.ptc(P, W))) <= 2e-14


# ---------------------------------------------------------------------------------------------- evaluators
def test_chebyshev_eval_matches_numpy_chebval():
    rng = np.random.default_rng(3)
    breaks = np.cumsum(np.concatenate([[-2.0], rng.uniform(0.1, 1.5, 7)]))
    coef = rng.normal(size=(7, 9)) / (1 + np.arange(9)) ** 2
    x = rng.uniform(breaks[0], breaks[-1], 2000)
    dcoef = tables.chebyshev_derivative(breaks, coef)
    val, der = tables.chebyshev_eval(breaks, coef, x, dcoef)
    C = np.polynomial.chebyshev
    for i in range(7):
        a, b = breaks[i], breaks[i + 1]
        m = (x >= a) & (x < b)
        series = C.Chebyshev(coef[i], domain=[a, b])
        np.testing.assert_allclose(val[m], series(x[m]), rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(der[m], series.deriv()(x[m]), rtol=1e-12, atol=1e-12)
        u = (2 * x[m] - a - b) / (b - a)
        np.testing.assert_allclose(val[m], C.chebval(u, coef[i]), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("order", [3, 5])
def test_hermite_reproduces_polynomials(order):
    p = np.polynomial.Polynomial(np.arange(1.0, order + 2.0) * (-0.5) ** np.arange(order + 1))  # degree = order
    x0, h, n = -1000.0, 0.375, 41    # node positions far from 0, exact in float64
    xs = x0 + h * np.arange(n)
    cols = [p(xs), p.deriv()(xs)] + ([p.deriv(2)(xs)] if order == 5 else [])
    nodes = np.column_stack(cols)
    x = np.linspace(xs[0], xs[-1], 997)
    val, der = tables.hermite_eval(x0, h, nodes, x, derivative=True)
    np.testing.assert_allclose(val, p(x), rtol=1e-12)
    np.testing.assert_allclose(der, p.deriv()(x), rtol=1e-10)


# ---------------------------------------------------------------------------------------------- file format
def test_save_load_round_trip(tmp_path, lif_table):
    path = lif_table.save(tmp_path / "t.npz")
    back = tables.load_table(path)
    assert back.metadata == lif_table.metadata
    assert set(back.arrays) == set(lif_table.arrays)
    for k, arr in lif_table.arrays.items():
        assert back.arrays[k].dtype == np.float64
        np.testing.assert_array_equal(back.arrays[k], arr)
    x = np.linspace(-0.3, 1.0, 101)
    np.testing.assert_array_equal(back.ptc(x, -0.05), lif_table.ptc(x, -0.05))
    with np.load(path, allow_pickle=False) as z:   # plain npz + a JSON string
        md = json.loads(str(z["metadata"]))
    assert md["schema"] == "sparseprop-table" and md["schema_version"] == tables.SCHEMA_VERSION


def test_generation_is_deterministic(tmp_path, capsys):
    args = ["make", "lif", "--drive", "1.1", "--v-min", "-0.5", "--check-points", "300", "-q"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert tablegen.main(args + ["-o", str(tmp_path / "a" / "lif.npz")]) == 0
    assert tablegen.main(args + ["-o", str(tmp_path / "b" / "lif.npz"), "--json"]) == 0
    assert (tmp_path / "a" / "lif.npz").read_bytes() == (tmp_path / "b" / "lif.npz").read_bytes()
    md = tables.load_table(tmp_path / "a" / "lif.npz").metadata
    assert md["command"].startswith("sparseprop tables make lif --drive 1.1 ")
    assert md["command"].endswith("-o lif.npz") and md["generator"]["version"] == tablegen.GENERATOR_VERSION


def test_cli_json_summary_and_progress(tmp_path, capsys):
    out = tmp_path / "e.npz"
    rc = tablegen.main(["make", "eif", "--drive", "0.1", "--tol", "1e-12", "--check-points", "300", "--json",
                        "-o", str(out)])
    assert rc == 0
    cap = capsys.readouterr()
    lines = cap.out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["path"] == str(out) and summary["model"] == "eif" and summary["bytes"] == out.stat().st_size
    assert summary["achieved"]["phase_inverse"] <= 1e-12
    assert "tablegen:" in cap.err and "achieved" in cap.err


def test_cli_as_script_and_exit_code(tmp_path):
    out = tmp_path / "x.npz"
    ok = subprocess.run([sys.executable, str(TABLEGEN_PY), "make", "--rhs=-v", "--drive", "1.5", "--v-reset", "0",
                         "--v-spike", "1", "--check-points", "200", "--json", "-q", "-o", str(out)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["model"] == "expr" and ok.stderr == ""
    bad = subprocess.run([sys.executable, str(TABLEGEN_PY), "make", "lif", "--drive", "0.9", "-q", "-o",
                          str(tmp_path / "y.npz")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "drive" in bad.stderr and "too low" in bad.stderr and not (tmp_path / "y.npz").exists()
    info = subprocess.run([sys.executable, str(TABLEGEN_PY), "info", str(out), "--json"], capture_output=True,
                          text=True, timeout=120)
    assert info.returncode == 0 and json.loads(info.stdout)["model"]["rhs"] == "-v"


def _corrupt(tmp_path, table, *, meta=None, arrays=None, name="c.npz"):
    md = json.loads(json.dumps(table.metadata))
    if meta:
        meta(md)
    arr = dict(table.arrays)
    if arrays:
        arrays(arr)
    path = tmp_path / name
    tables.save_table(path, arr, md)
    return path


def test_loader_rejects_bad_files(tmp_path, lif_table):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(ValueError, match="not a readable table"):
        tables.load_table(junk)
    cases = [
        (dict(meta=lambda m: m.update(schema_version=99)), "newer"),
        (dict(meta=lambda m: m.update(schema="other")), "not a sparseprop table"),
        (dict(meta=lambda m: m.pop("omega")), "lacks omega"),
        (dict(meta=lambda m: m.update(method="spline")), "unknown fit method"),
        (dict(meta=lambda m: m.update(omega=float("nan")) if False else m.update(omega="fast")), "finite number"),
        (dict(meta=lambda m: m.update(v_min=0.5)), "v_min <= v_reset"),
    ]
    key = "fwd_coef" if lif_table.method == "chebyshev" else "fwd_nodes"
    cases += [
        (dict(arrays=lambda a: a.pop(key)), "needs arrays"),
        (dict(arrays=lambda a: a.update({key: a[key][:-1]})), "shape|match"),
        (dict(arrays=lambda a: a.update({key: a[key].astype(np.float32)})), "float64"),
        (dict(arrays=lambda a: a.update({key: np.where(np.ones_like(a[key], bool), np.inf, 0.0)})), "non-finite"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            tables.load_table(_corrupt(tmp_path, lif_table, **kw))
    # metadata that is not JSON, and an object (pickle) array: refused without executing anything
    np.savez(tmp_path / "nojson.npz", metadata=np.array("{not json"), **lif_table.arrays)
    with pytest.raises(ValueError, match="JSON"):
        tables.load_table(tmp_path / "nojson.npz")
    np.savez(tmp_path / "pickle.npz", metadata=np.array(json.dumps(lif_table.metadata)),
             evil=np.array([{"a": 1}], dtype=object), **lif_table.arrays)
    with pytest.raises(ValueError):
        tables.load_table(tmp_path / "pickle.npz")


def test_load_by_name(tmp_path, monkeypatch, lif_table):
    lif_table.save(tmp_path / "my_lif.npz")
    monkeypatch.setattr(tables, "table_search_dirs", lambda: [tmp_path / "nowhere", tmp_path])
    assert tables.list_tables() == ["my_lif"]
    assert tables.load_table("my_lif").metadata == lif_table.metadata
    with pytest.raises(FileNotFoundError, match="available: my_lif"):
        tables.load_table("no_such_table")


def test_shipped_tables_are_small_and_consistent():
    names = sorted(p.stem for p in SHIPPED.glob("*.npz"))
    assert names == ["eif_seed_chebyshev", "eif_seed_interp", "lif_i1.1_chebyshev"]
    readme = (SHIPPED / "README.md").read_text()
    for n in names:
        p = SHIPPED / f"{n}.npz"
        assert p.stat().st_size < 1_000_000
        t = tables.load_table(p)
        assert t.name == n and t.metadata["command"] in readme
        assert max(t.achieved[k] for k in ("phase_forward", "phase_inverse", "phase_roundtrip",
                                            "voltage_roundtrip_phase")) <= t.tol <= 1e-14


# ---------------------------------------------------------------------------------------------- errors
def test_error_drive_too_low():
    with pytest.raises(ValueError, match=r"drive I=0.9 is too low.*I > 1\b"):
        tablegen.make_table("lif", 0.9, **FAST)
    with pytest.raises(ValueError, match=r"drive I=-0.2 is too low.*I > -0\.1\b"):
        tablegen.make_table("eif", -0.2, **FAST)


def test_error_rest_point_below_reset():
    # F + I = 1 - v^2 + ... : LIF-like drive fine above the reset but a rest point below v_min
    m = tablegen.expression_model("-v - 0.5*v**2")
    with pytest.raises(ValueError, match="v_min=-5.0 is too low"):
        tablegen.make_table(m, 1.0, v_reset=0.0, v_spike=0.5, v_min=-5.0, **FAST)


def test_error_non_finite_rhs():
    m = tablegen.expression_model("-v + log(v)")
    with pytest.raises(ValueError, match="not finite"):
        tablegen.make_table(m, 5.0, v_reset=-1.0, v_spike=1.0, **FAST)


def test_error_domain_without_reset():
    with pytest.raises(ValueError, match="v_min=0.5 must be <= v_reset=0.0"):
        tablegen.make_table("lif", 1.1, v_min=0.5, **FAST)
    with pytest.raises(ValueError, match="v_spike=-2.0 must be above v_reset"):
        tablegen.make_table("eif", 0.1, v_spike=-2.0, **FAST)
    with pytest.raises(ValueError, match="v_reset must be finite"):
        tablegen.make_table("lif", 1.1, v_reset=float("nan"), **FAST)


def test_error_tolerance_not_reachable():
    with pytest.raises(ValueError, match=r"not reachable.*target 1e-17"):
        tablegen.make_table("lif", 1.1, tol=1e-17, **FAST)
    with pytest.raises(ValueError, match=r"not reachable with --method interp.*reached phase error"):
        tablegen.make_table("qif", 1.0, method="interp", max_nodes=4096, **FAST)
    with pytest.raises(ValueError, match="tol must be in"):
        tablegen.make_table("lif", 1.1, tol=0.5, **FAST)


def test_error_continuation_not_accurate():
    # EIF with v_min close to its threshold: exp((v_min - v_t)/delta_v) is not negligible there
    with pytest.raises(ValueError, match="continuation below v_min=-1.0 is not accurate"):
        tablegen.make_table("eif", 0.1, v_min=-1.0, **FAST)
    with pytest.raises(ValueError, match="slope a=1.0 must be <= 0"):
        tablegen.make_table(tablegen.expression_model("-v", affine_tail=(1.0, 0.0)), 1.5, v_reset=0.0, v_spike=1.0,
                            **FAST)


# ---------------------------------------------------------------------------------------------- user models
@pytest.mark.parametrize("expr", [
    "__import__('os')", "__import__('os').system('true')", "v.real", "(lambda x: x)(v)", "w + 1", "os",
    "exp(v, out=v)", "exp(*v)", "v if v else 1", "[v]", "v[0]", "'abc'", "True", "v < 1", "getattr(v, 'x')",
    "numpy.exp(v)", "np.exp(v)", "exp", "sqrt(v, v)", "v @ v", "v // 2", "v % 2", "1j", "(v := 2)", "f'{v}'",
    "import os", "exec('1')", "eval('v')", "open('/etc/passwd')", "__builtins__", "{}", "",
])
def test_expression_whitelist_rejects(expr):
    with pytest.raises(ValueError):
        tablegen.compile_expression(expr)


def test_expression_whitelist_evaluates():
    v = np.linspace(-2.0, 0.9, 13)
    F = tablegen.compile_expression("-v + 0.1*exp(v/0.1) - abs(v)**2/2 + maximum(v, 0) + +1e-3 - -2")
    np.testing.assert_array_equal(F(v), -v + 0.1 * np.exp(v / 0.1) - np.abs(v) ** 2 / 2 + np.maximum(v, 0) + 1e-3 + 2)
    assert tablegen.compile_expression("3")(v).shape == v.shape
    assert not hasattr(tablegen, "eval")


def test_expression_and_callable_models_match_builtin():
    ref = tablegen.make_table("lif", 1.5, v_min=-1.0, **FAST)
    a = tablegen.make_table(tablegen.expression_model("-v", affine_tail=(-1.0, 0.0)), 1.5, v_reset=0.0, v_spike=1.0,
                            v_min=-1.0, **FAST)
    b = tablegen.make_table(tablegen.callable_model("numpy:negative", affine_tail=(-1.0, 0.0)), 1.5, v_reset=0.0,
                            v_spike=1.0, v_min=-1.0, **FAST)
    v = np.linspace(-3.0, 1.0, 1001)
    for t in (a, b):
        assert np.max(np.abs(t.phase_from_voltage(v) - ref.phase_from_voltage(v))) <= 1e-15
    assert a.metadata["model"]["rhs"] == "-v" and b.metadata["model"]["rhs"] == "numpy:negative"
    # a scalar-only callable (math.exp) is vectorised; compare with quad
    c = tablegen.make_table(tablegen.callable_model("math:exp"), 0.5, v_reset=-1.0, v_spike=1.0, **FAST)
    from scipy.integrate import quad

    T = quad(lambda x: 1.0 / (math.exp(x) + 0.5), -1.0, 1.0, epsabs=1e-300, epsrel=1e-13)[0]
    assert c.period == pytest.approx(T, rel=1e-14)
    with pytest.raises(ValueError, match="cannot be loaded"):
        tablegen.callable_model("no_such_module_xyz:f")


# ---------------------------------------------------------------------------------------------- slow
@pytest.mark.slow
@pytest.mark.parametrize("name", ["eif_seed_chebyshev", "eif_seed_interp", "lif_i1.1_chebyshev"])
def test_regenerate_shipped_tables(tmp_path, name):
    """The command stored in each shipped table regenerates it (identical bytes with the same NumPy and
    SciPy; identical arrays to 1e-15 otherwise) in well under a minute."""
    import shlex
    import time

    shipped = tables.load_table(SHIPPED / f"{name}.npz")
    argv = shlex.split(shipped.metadata["command"])[2:]   # drop "sparseprop tables"
    i = argv.index("-o")
    argv[i + 1] = str(tmp_path / argv[i + 1])
    t0 = time.perf_counter()
    assert tablegen.main(argv + ["-q"]) == 0
    assert time.perf_counter() - t0 < 60
    new = tables.load_table(tmp_path / f"{name}.npz")
    if new.metadata["generator"] == shipped.metadata["generator"]:
        assert (tmp_path / f"{name}.npz").read_bytes() == (SHIPPED / f"{name}.npz").read_bytes()
    for k, arr in shipped.arrays.items():
        np.testing.assert_allclose(new.arrays[k], arr, rtol=1e-15, atol=1e-15 * np.abs(arr).max())
