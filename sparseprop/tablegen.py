"""Table generator for 1-D neuron models dV/dt = F(V) + I (time in units of tau).

``python -m sparseprop.tablegen make MODEL ...`` (also ``sparseprop tables make ...``) fits the two maps
the event engine needs on the domain v_min <= V <= v_spike:

* the time to spike  T(V) = int_V^{v_spike} dV' / (F(V') + I)   (phase phi = 1 - omega T(V),
  omega = 1 / T(v_reset), so phi_reset = 0 and phi_th = 1), and
* its inverse V(T),

and writes one versioned ``.npz`` file (format and evaluator: :mod:`sparseprop.tables`).

Method
------
The rate r(V) = 1 / (F(V) + I) is known in closed form, so T is an integral, not an ODE solution:
on each piece [a, b] of an adaptive bisection r is interpolated at ``max_degree`` Chebyshev points;
the piece is accepted when the last Chebyshev coefficients (times the piece length, times omega) are
below the phase tolerance, and the series is integrated exactly (``chebint``), so T is a piecewise
Chebyshev series whose error is the interpolation error of r integrated over the piece.  The pieces'
definite integrals are summed from v_spike downwards with compensated summation.  The inverse V(T)
is fitted by adaptive bisection in T, its samples obtained by safeguarded Newton iteration on the
forward fit; it is accepted in the *backward* sense, omega * r(V) * |error in V| <= tol, because
near the spike cut-off V(T) is arbitrarily steep (EIF: V ~ -dV ln T) while the phase is flat.  Pieces
whose phase width omega (b - a) is below the tolerance are straight lines; this handles the last,
logarithmically singular piece [0, T_lo] and the whole tail up to the cut-off (V = 1000 for the EIF,
where exp(V / dV) overflows: F = +inf is read as "fires instantly", 1/(F + I) = 0).

``--method interp`` samples the same maps on uniform grids (Hermite, cubic or quintic: the interval
index is a multiply and a floor): T on a V grid up to x_hi where omega T(x_hi) is negligible, and V on
a grid in s = ln T (uniform in s resolves the logarithmic steepness near the threshold), with exact
derivative data dT/dV = -r, d2T/dV2 = r^2 F', dV/ds = -T (F + I), d2V/ds2 = dV/ds (1 - T F').

Checks (independent of the fit): on a check grid of several thousand points the reference T is
computed by adaptive Gauss-Legendre quadrature of r (20- against 13-point rules, vectorised) between
consecutive points, summed with compensation, and spot-checked at 48 points with QUADPACK
(``scipy.integrate.quad``); ``scipy.integrate.solve_ivp`` (DOP853, rtol 1e-13) integrates the same
ODE dT/dV = -r as an informational check (it is good to ~2e-13, not to 1e-14, which is why it is not
the generator; nor can a time-domain solver reach the EIF cut-off V = 1000: the last 1e-13 tau from
V = 3 to 1000 is below the float64 spacing of t).  Forward phase error, backward (inverse) phase error
and round trips must all be <= tol, otherwise a ``ValueError`` says what was reached.

Models: ``eif`` F = -V + dV exp((V - V_T)/dV) (defaults dV = 0.1, V_T = 0, reset -1, cut-off 1000),
``lif`` F = -V (reset 0, threshold 1), ``qif`` F = V^2 with the finite cut-off v_spike = 1000 and reset
-1000, ``expr`` (``--rhs "-v + 0.1*exp(v/0.1)"``: parsed with ``ast`` against a whitelist and
interpreted, never ``eval``-ed) and ``callable`` (``--rhs-callable module:function``, user code run
on purpose).  Below v_min, models whose F is affine there (LIF exactly, EIF to ~exp(-40)) get the
analytic continuation of T; it is recorded in the metadata and its error measured.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import json
import math
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np

try:  # normal package import
    from . import tables as _tables
except ImportError:  # run as a script, or the package (compiled core) is not importable yet
    _tables = sys.modules.get("_sparseprop_tables")
    if _tables is None:
        import importlib.util

        _spec = importlib.util.spec_from_file_location("_sparseprop_tables", Path(__file__).with_name("tables.py"))
        _tables = importlib.util.module_from_spec(_spec)
        sys.modules["_sparseprop_tables"] = _tables
        _spec.loader.exec_module(_tables)

GENERATOR_VERSION = "1.0"
DEFAULT_TOL = 1e-14
DEFAULT_MAX_DEGREE = 24
DEFAULT_CHECK_POINTS = 3000
DEFAULT_MAX_NODES = 400_000
_EPS = np.finfo(np.float64).eps

__all__ = ["Model", "eif_model", "lif_model", "qif_model", "expression_model", "callable_model",
           "compile_expression", "make_model", "make_table", "main", "add_subparser", "GENERATOR_VERSION"]


# ==================================================================================================
# models
# ==================================================================================================
class Model:
    """A 1-D neuron model dV/dt = F(V) + I for the table generator.

    Parameters
    ----------
    name : str (``"eif"``, ``"lif"``, ``"qif"``, ``"expr"``, ``"callable"``, ...).
    f : callable, F(V) for a float64 ndarray V (vectorised).
    params : dict of the model parameters (stored in the table metadata).
    rhs : str, human-readable F(v) (stored in the metadata; never evaluated by the loader).
    df : optional callable F'(V); default: Richardson-extrapolated central differences.
    rate : optional callable (V, I) -> 1/(F(V) + I) evaluated without overflow (EIF).
    affine_tail : optional (a, b): F(V) = a V + b (to negligible error) for V <= v_min; enables the
        analytic continuation of T below v_min.  Needs a <= 0.
    v_reset, v_spike : default reset and spike cut-off.
    v_min : default lower end of the domain (number, or callable v_reset -> number; default v_reset).
    hints : voltages where F changes scale (initial breakpoints, e.g. V_T).
    """

    def __init__(self, name, f, *, params=None, rhs=None, df=None, rate=None, affine_tail=None,
                 v_reset=None, v_spike=None, v_min=None, hints=()):
        self.name = name
        self.f = f
        self.params = dict(params or {})
        self.rhs = rhs
        self.df = df
        self.rate_fn = rate
        self.affine_tail = None if affine_tail is None else (float(affine_tail[0]), float(affine_tail[1]))
        self.v_reset = v_reset
        self.v_spike = v_spike
        self.v_min = v_min
        self.hints = tuple(float(h) for h in hints)

    def F(self, v):
        v = np.asarray(v, dtype=np.float64)
        with np.errstate(all="ignore"):
            out = np.asarray(self.f(v), dtype=np.float64)
        if out.shape != v.shape:
            out = np.broadcast_to(out, v.shape).copy()
        return out

    def dF(self, v):
        v = np.asarray(v, dtype=np.float64)
        if self.df is not None:
            with np.errstate(all="ignore"):
                return np.asarray(self.df(v), dtype=np.float64) + np.zeros_like(v)
        # Richardson-extrapolated central differences, step relative to max(|v|, 1)
        h = 2.0 ** -12 * np.maximum(np.abs(v), 1.0)
        d1 = (self.F(v + h) - self.F(v - h)) / (2 * h)
        d2 = (self.F(v + h / 2) - self.F(v - h / 2)) / h
        return (4.0 * d2 - d1) / 3.0

    def describe(self):
        d = {"name": self.name, "params": self.params, "rhs": self.rhs}
        if self.affine_tail is not None:
            d["affine_tail"] = list(self.affine_tail)
        return d


def eif_model(delta_v=0.1, v_t=0.0):
    """Exponential integrate-and-fire: F(V) = -V + delta_v exp((V - v_t)/delta_v).

    Defaults (the SparseProp seed): delta_v = 0.1, v_t = 0, reset -1, spike cut-off 1000,
    v_min = min(v_reset, v_t - 40 delta_v); below v_min F = -V up to delta_v e^-40 (affine tail
    (-1, 0): the analytic continuation of T)."""
    dv = _positive("delta_v", delta_v)
    vt = _finite("v_t", v_t)

    def f(v):
        return -v + dv * np.exp((v - vt) / dv)

    def df(v):
        return -1.0 + np.exp((v - vt) / dv)

    def rate(v, drive):
        x = (v - vt) / dv
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            em = np.exp(-np.abs(x))
            low = 1.0 / (-v + dv * em + drive)           # x <= 0: em = exp(x)
            high = em / (dv + (drive - v) * em)          # x > 0: multiply through by exp(-x)
        return np.where(x <= 0, low, high)

    return Model("eif", f, params={"delta_v": dv, "v_t": vt}, rhs="-v + delta_v*exp((v - v_t)/delta_v)",
                 df=df, rate=rate, affine_tail=(-1.0, 0.0), v_reset=-1.0, v_spike=1000.0,
                 v_min=lambda v_reset: min(v_reset, vt - 40.0 * dv), hints=(vt, vt + 5 * dv, vt + 30 * dv))


def lif_model():
    """Leaky integrate-and-fire F(V) = -V: reset 0, threshold (v_spike) 1, v_min = v_reset - 1,
    exact affine continuation below v_min (closed form T = ln((I - V)/(I - 1)) for reset 0)."""
    return Model("lif", lambda v: -v, params={}, rhs="-v", df=lambda v: -np.ones_like(v),
                 affine_tail=(-1.0, 0.0), v_reset=0.0, v_spike=1.0, v_min=lambda v_reset: v_reset - 1.0)


def qif_model():
    """Quadratic integrate-and-fire F(V) = V^2 with a finite cut-off: v_spike = 1000, reset -1000
    (the theta neuron's +-infinity replaced by +-1000: the time spent beyond 1000 is about 2e-3 of
    a unit-drive period, so this table is the cut-off model, not the theta neuron).  No
    continuation below v_min (default v_min = v_reset)."""
    return Model("qif", lambda v: v * v, params={}, rhs="v**2", df=lambda v: 2.0 * v,
                 v_reset=-1000.0, v_spike=1000.0, hints=(0.0,))


# ---------------------------------------------------------------------------------- expressions
_FUNCS = {
    "exp": (np.exp, 1), "expm1": (np.expm1, 1), "log": (np.log, 1), "log1p": (np.log1p, 1),
    "sqrt": (np.sqrt, 1), "abs": (np.abs, 1), "sin": (np.sin, 1), "cos": (np.cos, 1), "tan": (np.tan, 1),
    "arctan": (np.arctan, 1), "sinh": (np.sinh, 1), "cosh": (np.cosh, 1), "tanh": (np.tanh, 1),
    "minimum": (np.minimum, 2), "maximum": (np.maximum, 2),
}
_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
           ast.Pow: np.power}
_UNOPS = {ast.UAdd: np.positive, ast.USub: np.negative}
_MAX_EXPR_LEN = 2000
_MAX_DEPTH = 64


def compile_expression(text):
    """Turn a right-hand side such as ``"-v + 0.1*exp(v/0.1)"`` into a vectorised function F(v).

    The text is parsed with :mod:`ast` and checked against a whitelist: numbers (int/float
    literals), the name ``v``, the operators + - * / ** (binary and unary) and calls (positional
    arguments only) to ``exp expm1 log log1p sqrt abs sin cos tan arctan sinh cosh tanh minimum
    maximum`` (the NumPy functions).  Anything else (other names, attributes, subscripts, lambdas,
    comparisons, keywords, strings, ...) raises ``ValueError``.  The checked tree is interpreted
    node by node with NumPy: nothing is ``eval``-ed or compiled, and there are no builtins.
    """
    if not isinstance(text, str):
        raise ValueError(f"rhs must be a string, got {type(text).__name__}")
    if len(text) > _MAX_EXPR_LEN:
        raise ValueError(f"rhs is too long ({len(text)} > {_MAX_EXPR_LEN} characters)")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"rhs {text!r} is not a valid expression: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError(f"rhs {text!r} is nested too deeply") from None

    def build(node, depth):
        if depth > _MAX_DEPTH:
            raise ValueError(f"rhs {text!r} is nested too deeply (> {_MAX_DEPTH} levels)")
        if isinstance(node, ast.Constant):
            val = node.value
            if isinstance(val, bool) or not isinstance(val, (int, float)):
                raise ValueError(f"rhs {text!r}: constant {val!r} is not allowed (numbers only)")
            c = np.float64(val)
            return lambda v: c
        if isinstance(node, ast.Name):
            if node.id != "v":
                raise ValueError(f"rhs {text!r}: name {node.id!r} is not allowed (the variable is 'v'; "
                                 f"functions: {', '.join(sorted(_FUNCS))})")
            return lambda v: v
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise ValueError(f"rhs {text!r}: operator {type(node.op).__name__} is not allowed (+ - * / **)")
            lhs, rhs = build(node.left, depth + 1), build(node.right, depth + 1)
            return lambda v: op(lhs(v), rhs(v))
        if isinstance(node, ast.UnaryOp):
            op = _UNOPS.get(type(node.op))
            if op is None:
                raise ValueError(f"rhs {text!r}: unary operator {type(node.op).__name__} is not allowed")
            arg = build(node.operand, depth + 1)
            return lambda v: op(arg(v))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS:
                what = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
                raise ValueError(f"rhs {text!r}: call of {what!r} is not allowed (allowed: "
                                 f"{', '.join(sorted(_FUNCS))})")
            fn, nargs = _FUNCS[node.func.id]
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise ValueError(f"rhs {text!r}: {node.func.id}() takes positional arguments only")
            if len(node.args) != nargs:
                raise ValueError(f"rhs {text!r}: {node.func.id}() takes {nargs} argument(s), got {len(node.args)}")
            args = [build(a, depth + 1) for a in node.args]
            if nargs == 1:
                a0 = args[0]
                return lambda v: fn(a0(v))
            a0, a1 = args
            return lambda v: fn(a0(v), a1(v))
        raise ValueError(f"rhs {text!r}: {type(node).__name__} is not allowed (numbers, v, + - * / **, "
                         f"whitelisted functions)")

    fun = build(tree.body, 0)

    def F(v):
        v = np.asarray(v, dtype=np.float64)
        with np.errstate(all="ignore"):
            return np.asarray(fun(v), dtype=np.float64) + np.zeros_like(v)

    return F


def expression_model(rhs, *, affine_tail=None, v_reset=None, v_spike=None):
    """User model F(v) given as a whitelisted expression in ``v`` (see :func:`compile_expression`)."""
    return Model("expr", compile_expression(rhs), params={}, rhs=rhs, affine_tail=affine_tail,
                 v_reset=v_reset, v_spike=v_spike)


def callable_model(func, *, affine_tail=None, v_reset=None, v_spike=None):
    """User model from a Python callable F(v) or a ``"module:function"`` spec (imported: this runs
    the user's module, on purpose; the table stores only the spec string).  F should accept a
    float64 ndarray; scalar-only functions are vectorised with ``np.vectorize``."""
    spec = func
    if isinstance(func, str):
        mod, sep, attr = func.partition(":")
        if not sep or not mod or not attr:
            raise ValueError(f"rhs_callable {func!r} must look like 'module:function'")
        try:
            obj = importlib.import_module(mod)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"rhs_callable {func!r} cannot be loaded: {exc}") from None
        func = obj
    else:
        spec = f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', repr(func))}"
    if not callable(func):
        raise ValueError(f"rhs_callable {spec!r} is not callable")
    probe = np.array([0.0, 1.0])
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(func(probe), dtype=np.float64)
        vec = out.shape == probe.shape
    except Exception:  # noqa: BLE001 - scalar-only user functions
        vec = False
    f = func if vec else np.vectorize(lambda x: float(func(float(x))), otypes=[np.float64])
    return Model("callable", f, params={}, rhs=spec, affine_tail=affine_tail, v_reset=v_reset, v_spike=v_spike)


def make_model(name, **params):
    """Built-in model by name: ``make_model("eif", delta_v=0.1, v_t=0.0)``, ``"lif"``, ``"qif"``."""
    if name == "eif":
        return eif_model(**params)
    if name == "lif":
        return lif_model(**params)
    if name == "qif":
        return qif_model(**params)
    raise ValueError(f"model {name!r} unknown (built-in: eif, lif, qif; or expression_model/callable_model)")


def _finite(name, x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return x


def _positive(name, x):
    x = _finite(name, x)
    if x <= 0:
        raise ValueError(f"{name} must be > 0, got {x!r}")
    return x


# ==================================================================================================
# the rate 1/(F + I) with the model's checks
# ==================================================================================================
class _Rate:
    """r(V) = 1/(F(V) + I) with the checks that give the user clear errors."""

    def __init__(self, model, drive, v_reset, v_min):
        self.model = model
        self.drive = drive
        self.v_reset = v_reset
        self.v_min = v_min
        self.calls = 0

    def __call__(self, v):
        v = np.asarray(v, dtype=np.float64)
        self.calls += v.size
        m = self.model
        if m.rate_fn is not None:
            r = np.asarray(m.rate_fn(v, self.drive), dtype=np.float64)
            bad = ~np.isfinite(r) | (r < 0)
            if bad.any():
                F = m.F(v[bad])
                self._complain(v[bad], F, F + self.drive)
            return r
        F = m.F(v)
        G = F + self.drive
        bad = np.isnan(F) | (F == -np.inf) | ~(G > 0)
        if bad.any():
            self._complain(v[bad], F[bad], G[bad])
        with np.errstate(divide="ignore"):
            return 1.0 / G

    def _complain(self, v, F, G):
        j = int(np.argmax(~np.isfinite(F) & ~(F == np.inf)))
        if not np.isfinite(F[j]) and F[j] != np.inf:
            raise ValueError(f"model {self.model.name} ({self.model.rhs}): F(V) is not finite at V={v[j]!r} "
                             f"(F = {F[j]!r}); restrict the domain (v_min, v_spike) or fix the right-hand side")
        j = int(np.argmin(G))
        where = float(v[j])
        if where >= self.v_reset:
            raise ValueError(f"drive I={self.drive!r} is too low to fire: F(V)+I = {float(G[j]):.6g} <= 0 at "
                             f"V={where!r} on the free path [v_reset, v_spike]; the trajectory from the reset "
                             f"stops at a rest point. Increase the drive above -min F on [v_reset, v_spike]")
        raise ValueError(f"v_min={self.v_min!r} is too low: F(V)+I = {float(G[j]):.6g} <= 0 at V={where!r} below "
                         f"the reset (a rest point: voltages there never fire). Raise v_min above {where!r}")


def _preflight(model, rate, drive, v_min, v_reset, v_spike):
    """Dense scan of F + I on [v_min, v_spike]: catches low drive, non-finite F and rest points
    before fitting, with the smallest drive that fires when the drive is too low."""
    lin = np.linspace(v_min, v_spike, 20001)
    scale = max(1e-3, 1e-3 * (v_spike - v_min))
    around = [h + scale * np.sinh(np.linspace(-12, 12, 2001)) for h in (0.0, v_reset) + model.hints]
    v = np.unique(np.clip(np.concatenate([lin, *around]), v_min, v_spike))
    F = model.F(v)
    G = F + drive
    bad = np.isnan(F) | (F == -np.inf)
    if bad.any():
        rate(v[bad][:1])  # raises the non-finite error
    if not (G > 0).all():
        on_path = (v >= v_reset) & ~(G > 0)
        if on_path.any():
            # the smallest drive that fires: -min F on [v_reset, v_spike], refined around the grid minimum
            from scipy.optimize import minimize_scalar

            k = int(np.argmin(np.where(v >= v_reset, F, np.inf)))
            lo, hi = v[max(k - 1, 0)], v[min(k + 1, v.size - 1)]
            lo = max(lo, v_reset)
            res = minimize_scalar(lambda x: float(model.F(np.array([x]))[0]), bounds=(lo, hi), method="bounded",
                                  options={"xatol": 1e-12 * max(1.0, abs(v[k]))})
            fmin = min(float(F[k]), float(res.fun))
            vv = v[on_path][int(np.argmin(G[on_path]))]
            raise ValueError(f"drive I={drive!r} is too low to fire: F(V)+I = {float(G[v == vv][0]):.6g} <= 0 at "
                             f"V={float(vv)!r} on the free path [v_reset={v_reset!r}, v_spike={v_spike!r}] (a rest "
                             f"point). The neuron fires only for I > {-fmin:.12g}")
        rate(v[~(G > 0)][:1])  # below the reset: raises the v_min error
    return float(np.min(G))


# ==================================================================================================
# piecewise Chebyshev fits
# ==================================================================================================
_CHEB_CACHE = {}


def _cheb_check_points(n):
    """Points where a fresh interpolant is verified: both ends and the midpoints between its nodes."""
    x, _ = _cheb(n)
    xs = np.sort(x)
    return np.concatenate([[-1.0, 1.0], 0.5 * (xs[:-1] + xs[1:])])


def _cheb(n):
    """First-kind Chebyshev points x_k = cos(pi (k + 1/2)/n) and the matrix M with c = M @ f(x)."""
    if n not in _CHEB_CACHE:
        # angles pi j (2k+1) / (2n) reduced exactly (integers mod 4n) and evaluated in extended
        # precision where available: cos of a rounded large argument would put ~1e-15 noise in M
        k = np.arange(n)
        m = np.outer(np.arange(n), 2 * k + 1) % (4 * n)
        pi = np.longdouble("3.14159265358979323846264338327950288")
        M = np.cos(pi * m.astype(np.longdouble) / (2 * n)) * (np.longdouble(2) / n)
        M[0] *= 0.5
        x = np.cos(pi * (2 * k + 1).astype(np.longdouble) / (2 * n))
        _CHEB_CACHE[n] = (x.astype(np.float64), M.astype(np.float64))
    return _CHEB_CACHE[n]


def _coeffs(M, f):
    """Chebyshev coefficients of samples f; the shift by f[0] keeps the rounding of the transform
    relative to the variation of f rather than its size (V ~ 1 varying by 1e-12 on a short piece)."""
    f0 = f[0]
    c = M @ (f - f0)
    c[0] += f0
    return c


def _at_noise_floor(c, scale):
    """True when the last coefficients are at the float64 rounding level of values of size ``scale``."""
    return bool(np.abs(c[-3:]).max() <= 2 * _EPS * scale)


def _chop(c, weight, limit):
    """Shortest prefix of c whose dropped tail satisfies weight * sum|dropped| <= limit."""
    tail = np.cumsum(np.abs(c[::-1]))[::-1]  # tail[j] = sum_{k >= j} |c_k|
    keep = len(c)
    for j in range(len(c) - 1, 0, -1):
        if weight * tail[j] <= limit:
            keep = j
        else:
            break
    return c[:keep]


class _Neumaier:
    def __init__(self):
        self.s = 0.0
        self.c = 0.0

    def add(self, x):
        t = self.s + x
        if abs(self.s) >= abs(x):
            self.c += (self.s - t) + x
        else:
            self.c += (x - t) + self.s
        self.s = t

    @property
    def value(self):
        return self.s + self.c


class _Unreachable(ValueError):
    pass


class ForwardFit:
    """Piecewise Chebyshev T(V) (breaks, coef) with derivative, and its inverse by Newton."""

    def __init__(self, breaks, coef):
        self.breaks = breaks
        self.coef = coef
        self.dcoef = _tables.chebyshev_derivative(breaks, coef)
        m, n = coef.shape
        self.dcoef_x = np.zeros((m, max(n - 1, 1)))  # d/dx in the window variable
        for i in range(m):
            if n > 1:
                self.dcoef_x[i, : n - 1] = np.polynomial.chebyshev.chebder(coef[i])
        # T at the breakpoints (decreasing): left ends of the pieces, then 0 at v_spike
        signs = (-1.0) ** np.arange(n)
        self.t_breaks = np.append(coef @ signs, 0.0)

    def T(self, v, derivative=False):
        if derivative:
            return _tables.chebyshev_eval(self.breaks, self.coef, v, self.dcoef)
        return _tables.chebyshev_eval(self.breaks, self.coef, v)

    def invert(self, t):
        """V with T(V) = t for 0 <= t <= T(v_min): safeguarded Newton in each piece's window."""
        t = np.asarray(t, dtype=np.float64)
        shape = t.shape
        t = t.ravel()
        tb = self.t_breaks
        m = len(self.breaks) - 1
        i = np.clip(np.searchsorted(-tb, -t, side="right") - 1, 0, m - 1)
        ta, tbb = tb[i], tb[i + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(ta > tbb, -1.0 + 2.0 * (ta - t) / (ta - tbb), 0.0)
        x = np.clip(np.nan_to_num(x), -1.0, 1.0)
        lo = np.full_like(x, -1.0)
        hi = np.ones_like(x)
        c = self.coef[i]
        dc = self.dcoef_x[i]
        active = np.ones(x.shape, dtype=bool)
        for _ in range(200):
            if not active.any():
                break
            xa = x[active]
            f = _tables._clenshaw(c[active], xa) - t[active]
            df = _tables._clenshaw(dc[active], xa)
            la, ha = lo[active], hi[active]
            la = np.where(f > 0, xa, la)      # T too large -> V (x) too small
            ha = np.where(f < 0, xa, ha)
            with np.errstate(divide="ignore", invalid="ignore"):
                xn = xa - f / df
            bad = ~np.isfinite(xn) | (xn <= la) | (xn >= ha)
            xn = np.where(bad, 0.5 * (la + ha), xn)
            done = (f == 0) | (np.abs(xn - xa) <= 2 * _EPS) | (ha - la <= 2 * _EPS)
            xn = np.where(f == 0, xa, xn)
            lo[active], hi[active] = la, ha
            x[active] = xn
            idx = np.flatnonzero(active)
            active[idx[done]] = False
        a = self.breaks[i]
        b = self.breaks[i + 1]
        v = 0.5 * (a + b) + 0.5 * (b - a) * x
        v = np.where(t <= 0, self.breaks[-1], v)
        return v.reshape(shape)


def _fit_forward(rate, breaks0, tol_T, max_degree, max_pieces, say):
    """Adaptive piecewise Chebyshev fit of T(V) = int_V^{v_spike} r, see the module docstring."""
    n = max_degree  # r at n points (degree n-1) -> T of degree n
    x, M = _cheb(n)
    y = _cheb_check_points(n)
    stack = [(breaks0[j], breaks0[j + 1]) for j in range(len(breaks0) - 1)]
    done = []
    while stack:
        a, b = stack.pop()
        half = 0.5 * (b - a)
        mid = 0.5 * (a + b)
        r = rate(mid + half * x)
        c = _coeffs(M, r)
        est = 2.0 * (b - a) * np.abs(c[-3:]).sum()  # bound on the T error contributed by this piece
        if est <= tol_T:  # the tail says converged: verify between the nodes and at the ends
            ry = rate(mid + half * y)
            est = max(est, (b - a) * float(np.max(np.abs(np.polynomial.chebyshev.chebval(y, c) - ry))))
        if est <= tol_T or _at_noise_floor(c, np.abs(r).max()):
            done.append((a, b, _chop(c, 2.0 * (b - a), tol_T / 8)))
            continue
        if half <= 64 * _EPS * max(abs(a), abs(b)) or len(done) + len(stack) >= max_pieces:
            raise _Unreachable(f"tolerance not reachable: the forward fit stalls near V={float(mid)!r} (more than "
                               f"{max_pieces} pieces or pieces at float64 resolution); reached an estimated T error "
                               f"{est:.3g} on [{float(a)!r}, {float(b)!r}], target {tol_T:.3g}")
        stack.append((mid, b))
        stack.append((a, mid))
    done.sort(key=lambda p: p[0])
    deg = max(len(p[2]) for p in done)  # T degree = r degree + 1 = len(r coefficients)
    m = len(done)
    coef = np.zeros((m, deg + 1))
    breaks = np.array([p[0] for p in done] + [done[-1][1]])
    acc = _Neumaier()
    for k in range(m - 1, -1, -1):
        a, b, c = done[k]
        half = 0.5 * (b - a)
        q = np.polynomial.chebyshev.chebint(c, lbnd=1.0)  # Q(x) = int_1^x r, Q(1) = 0
        p = -half * q                                      # int_x^1 r dV: >= 0, 0 at x = 1
        p[0] += acc.value                                   # + T(b)
        coef[k, : len(p)] = p
        integral = math.fsum(-half * q * (-1.0) ** np.arange(len(q)))  # int_a^b r dV = p(-1) - T(b)
        acc.add(integral)
    say(f"forward fit: {m} pieces, degree <= {deg}, {rate.calls} evaluations of F")
    return ForwardFit(breaks, coef)


def _fit_inverse(fwd, rate, omega, t_breaks0, v_spike, tol_phase, max_degree, max_pieces, say):
    """Adaptive piecewise Chebyshev fit of V(T), accepted in the backward (phase) sense."""
    n = max_degree + 1
    x, M = _cheb(n)
    y = _cheb_check_points(n)
    stack = [(t_breaks0[j], t_breaks0[j + 1]) for j in range(len(t_breaks0) - 1)]
    done = []
    n_linear = 0
    while stack:
        a, b = stack.pop()
        half = 0.5 * (b - a)
        mid = 0.5 * (a + b)
        if omega * (b - a) <= tol_phase / 4:
            va = v_spike if a == 0 else float(fwd.invert(a))
            vb = float(fwd.invert(b))
            done.append((a, b, np.array([0.5 * (va + vb), 0.5 * (vb - va)])))
            n_linear += 1
            continue
        V = fwd.invert(mid + half * x)
        c = _coeffs(M, V)
        rmax = float(np.max(rate(np.concatenate([V, fwd.invert(np.array([a, b]))]))))
        weight = omega * rmax
        est = 2.0 * weight * np.abs(c[-3:]).sum()
        if est <= tol_phase:  # verify between the nodes and at the ends (backward error in phase)
            vy = np.polynomial.chebyshev.chebval(y, c)
            ty = mid + half * y
            est = max(est, omega * float(np.max(np.abs(fwd.T(np.clip(vy, fwd.breaks[0], fwd.breaks[-1])) - ty))))
        if est <= tol_phase / 4 or (est <= tol_phase and _at_noise_floor(c, np.abs(V).max())):
            done.append((a, b, _chop(c, weight, tol_phase / 16)))
            continue
        floor = omega * float(np.max(rate(V) * np.spacing(np.abs(V))))
        if floor > tol_phase:
            raise _Unreachable(f"tolerance not reachable in float64: near T={float(mid)!r} (V={float(V[0])!r}) one ulp of V "
                               f"moves the phase by {floor:.3g} (omega * dphi/dV), above the target {tol_phase:.3g}; "
                               f"use a looser tol (about {8 * floor:.1g})")
        if half <= 64 * _EPS * max(abs(a), abs(b)) or len(done) + len(stack) >= max_pieces:
            raise _Unreachable(f"tolerance not reachable: the inverse fit stalls near T={float(mid)!r} (more than "
                               f"{max_pieces} pieces or pieces at float64 resolution); reached an estimated phase "
                               f"error {est:.3g}, target {tol_phase / 4:.3g}")
        stack.append((mid, b))
        stack.append((a, mid))
    done.sort(key=lambda p: p[0])
    deg = max(len(p[2]) - 1 for p in done)
    coef = np.zeros((len(done), deg + 1))
    for k, (_, _, c) in enumerate(done):
        coef[k, : len(c)] = c
    breaks = np.array([p[0] for p in done] + [done[-1][1]])
    say(f"inverse fit: {len(done)} pieces ({n_linear} linear), degree <= {deg}")
    return breaks, coef


# ==================================================================================================
# uniform-grid Hermite tables
# ==================================================================================================
def _grid_step(h):
    """Largest m * 2**e <= h with an integer 8 <= m <= 15: node positions x0 + i*step (x0 a multiple of
    2**e) are then exact in float64, so a grid far from 0 (QIF: [-1000, 1000]) loses no precision
    to rounded node positions.  Returns (step, 2**e)."""
    e = math.floor(math.log2(h)) - 3
    q = math.ldexp(1.0, e)
    m = math.floor(h / q)
    while m > 15:
        e += 1
        q = math.ldexp(1.0, e)
        m = math.floor(h / q)
    return m * q, q


def _choose_grid(build, measure, target, order, n0, max_nodes, what, say):
    """Smallest grid (iterated from the h^(order+1) error law) with measured error <= target."""
    n = n0
    p = order + 1
    err = float("inf")
    for _ in range(12):
        nodes, info = build(n)
        n_act = nodes.shape[0]
        err = measure(nodes, info)
        say(f"{what}: {n_act} nodes, error {err:.3g} (target {target:.3g})")
        if err <= target:
            return nodes, info, err
        if n_act > max_nodes or n >= max_nodes:
            raise _Unreachable(f"tolerance not reachable with --method interp: the {what} needs more than "
                               f"max_nodes={max_nodes} nodes (reached phase error {err:.3g} with {n_act} nodes, "
                               f"target {target:.3g}); use --method chebyshev, a looser --tol or a larger --max-nodes")
        grow = (err / (0.5 * target)) ** (1.0 / p) if err > 0 else 1.5
        n = min(max_nodes, int(math.ceil((n - 1) * max(grow, 1.2))) + 1)
    raise _Unreachable(f"{what}: the grid did not converge (phase error {err:.3g}, target {target:.3g})")


def _build_interp(fwd, model, rate, drive, omega, t_max, v_min, v_spike, tol, order, max_nodes, say):
    ncol = order // 2 + 1
    frac = np.array([0.13, 0.5, 0.87])
    # ---- forward: T on a uniform V grid up to x_hi, where omega T(x_hi) <= tol/16, or up to v_spike
    t_tail = tol / (16.0 * omega)
    x_hi_target = min(v_spike, float(fwd.invert(t_tail)))
    r_spike = float(rate(np.array([v_spike]))[0])
    tail_node = [0.0, -r_spike] + ([r_spike * r_spike * float(model.dF(np.array([v_spike]))[0])] if ncol == 3 else [])
    if not all(math.isfinite(z) for z in tail_node):
        tail_node = [0.0] * ncol

    def node_data(v):
        nodes = np.empty((v.size, ncol))
        inside = v >= v_min
        nodes[inside, 0] = fwd.T(v[inside])
        if not inside.all():  # node 0 below v_min (grid aligned to the step): T(v_min) + int_x0^v_min r
            below = v[~inside]
            seg, _ = _segment_integrals(rate, below, np.full(below.size, v_min), 0.0)
            nodes[~inside, 0] = t_max + seg
        r = rate(v)
        nodes[:, 1] = -r
        if ncol == 3:
            nodes[:, 2] = r * r * model.dF(v)
        return nodes

    def build_f(n):
        h, q = _grid_step((x_hi_target - v_min) / (n - 1))
        x0 = math.floor(v_min / q) * q
        m = math.ceil((x_hi_target - x0) / h)
        if x0 + m * h > v_spike:
            m = math.floor((x_hi_target - x0) / h)
        v = x0 + h * np.arange(m + 1)
        x_hi = float(v[-1])
        tail = "hermite" if v_spike - x_hi <= h else "linear"
        return node_data(v), (x0, h, x_hi, tail)

    def tail_eval(nodes, x_hi, tail, x):
        if tail == "linear":
            return nodes[-1, 0] * (v_spike - x) / (v_spike - x_hi)
        return _tables.hermite_eval(x_hi, v_spike - x_hi, np.array([nodes[-1], tail_node]), x)

    def measure_f(nodes, info):
        x0, h, x_hi, tail = info
        n = nodes.shape[0]
        xt = (x0 + h * (np.arange(n - 1)[:, None] + frac[None, :])).ravel()
        xt = xt[xt >= v_min]
        err = float(omega * np.max(np.abs(_tables.hermite_eval(x0, h, nodes, xt) - fwd.T(xt))))
        if x_hi < v_spike:
            xs = x_hi + (v_spike - x_hi) * np.concatenate([frac, [1e-6, 1e-3, 0.01, 0.1]])
            err = max(err, float(omega * np.max(np.abs(tail_eval(nodes, x_hi, tail, xs) - fwd.T(xs)))))
        return err

    fnodes, (fx0, fh, x_hi, tail), ferr = _choose_grid(build_f, measure_f, tol / 4, order, 1025, max_nodes,
                                                       "forward grid", say)
    forward = {"variable": "v", "quantity": "T", "order": order, "n": int(fnodes.shape[0]), "x0": fx0, "h": fh,
               "x_hi": x_hi, "t_hi": float(fnodes[-1, 0]), "tail": tail, "fit_error": ferr}
    if tail == "hermite":
        forward["tail_node"] = [float(z) for z in tail_node]
    # ---- inverse: V on a uniform grid in s = ln(t_max / T) from s = 0 (v_min); linear below t_lo
    s_max = math.log(t_max / (tol / (16.0 * omega)))

    def build_i(n):
        h, _ = _grid_step(s_max / (n - 1))
        m = math.ceil(s_max / h)
        s = 0.0 + h * np.arange(m + 1)
        T = t_max * np.exp(-s)
        T[0] = t_max
        V = fwd.invert(T)
        nodes = np.empty((m + 1, ncol))
        nodes[:, 0] = V
        G = 1.0 / rate(V)
        nodes[:, 1] = T * G                       # dV/ds = -T dV/dT = T (F + I)
        if ncol == 3:
            nodes[:, 2] = nodes[:, 1] * (T * model.dF(V) - 1.0)
        return nodes, (0.0, h)

    def measure_i(nodes, info):
        x0, h = info
        n = nodes.shape[0]
        st = (x0 + h * (np.arange(n - 1)[:, None] + frac[None, :])).ravel()
        V = _tables.hermite_eval(x0, h, nodes, st)
        T = t_max * np.exp(-st)
        return float(omega * np.max(np.abs(fwd.T(np.clip(V, v_min, v_spike)) - T)))

    inodes, (ix0, ih), ierr = _choose_grid(build_i, measure_i, tol / 4, order, 1025, max_nodes, "inverse grid", say)
    ni = inodes.shape[0]
    inverse = {"variable": "log(t_max/T)", "quantity": "v", "order": order, "n": ni, "x0": ix0, "h": ih,
               "t_lo": float(t_max * math.exp(-(ix0 + (ni - 1) * ih))), "v_lo": float(inodes[-1, 0]),
               "tail": "linear", "fit_error": ierr}
    return {"fwd_nodes": fnodes, "inv_nodes": inodes}, forward, inverse


# ==================================================================================================
# independent checks
# ==================================================================================================
_GL_CACHE = {}


def _gauss_legendre(n):
    if n not in _GL_CACHE:
        _GL_CACHE[n] = np.polynomial.legendre.leggauss(n)
    return _GL_CACHE[n]


def _segment_integrals(rate, lo, hi, abs_tol):
    """int_lo^hi r for many segments at once: adaptive bisection with Gauss-Legendre rules of 20 and
    13 points (accept where they agree to 1e-15 relative or ``abs_tol``).  Returns (values, error bound)."""
    x20, w20 = _gauss_legendre(20)
    x13, w13 = _gauss_legendre(13)
    owner = np.arange(lo.size)
    out = np.zeros(lo.size)
    err = 0.0
    a, b = lo.astype(np.float64), hi.astype(np.float64)
    for _ in range(80):
        if a.size == 0:
            break
        mid, half = 0.5 * (a + b), 0.5 * (b - a)
        f20 = rate((mid[:, None] + half[:, None] * x20[None, :]).ravel()).reshape(a.size, 20)
        f13 = rate((mid[:, None] + half[:, None] * x13[None, :]).ravel()).reshape(a.size, 13)
        i20 = half * (f20 @ w20)
        i13 = half * (f13 @ w13)
        diff = np.abs(i20 - i13)
        ok = (diff <= 1e-15 * np.abs(i20)) | (diff <= abs_tol) | (half <= 4 * _EPS * np.maximum(np.abs(a), np.abs(b)))
        np.add.at(out, owner[ok], i20[ok])
        if ok.any():
            err = max(err, float(diff[ok].max()))
        keep = ~ok
        a, b, owner, mid = a[keep], b[keep], owner[keep], mid[keep]
        a, b, owner = np.concatenate([a, mid]), np.concatenate([mid, b]), np.concatenate([owner, owner])
    if a.size:
        raise ValueError("the reference quadrature did not converge (is F smooth on the domain?)")
    return out, err


def _reference_T(rate, v_sorted, v_spike, abs_tol):
    """Reference T(V) at sorted points: integrals of r between consecutive points (and v_spike),
    summed downwards from v_spike with compensated summation.  Returns (T, max error estimate)."""
    pts = np.append(v_sorted, v_spike)
    seg, err = _segment_integrals(rate, pts[:-1], pts[1:], abs_tol)
    T = np.empty(v_sorted.size)
    acc = _Neumaier()
    for k in range(v_sorted.size - 1, -1, -1):
        acc.add(float(seg[k]))
        T[k] = acc.value
    return T, err


def _quad_spot_check(rate, v_points, v_spike, hints):
    """T at a few points with scipy.integrate.quad (QUADPACK), an independent library check."""
    from scipy.integrate import IntegrationWarning, quad

    def r1(x):
        return float(rate(np.array([x]))[0])

    pts = np.append(np.sort(v_points), v_spike)
    hints = np.asarray(sorted(hints))
    acc = _Neumaier()
    T = np.empty(pts.size - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        for k in range(pts.size - 2, -1, -1):
            lo, hi = pts[k], pts[k + 1]
            if hi > lo:
                inner = hints[(hints > lo) & (hints < hi)]
                acc.add(quad(r1, lo, hi, epsabs=1e-300, epsrel=1e-14, limit=400,
                             points=inner if inner.size else None)[0])
            T[k] = acc.value
    return np.sort(v_points), T


def _ivp_reference(rate, v_min, v_spike, v_eval):
    """T(V) from solve_ivp on dT/dV = -r(V) integrated from v_spike (T = 0) down to v_min."""
    from scipy.integrate import solve_ivp

    sol = solve_ivp(lambda v, y: [-float(rate(np.array([v]))[0])], (v_spike, v_min), [0.0], method="DOP853",
                    rtol=1e-13, atol=1e-18, dense_output=True)
    if sol.status != 0:
        return None, sol.nfev
    return sol.sol(v_eval)[0], sol.nfev


def _measure(table, rate, model, n_check, say):
    """Errors of ``table`` against the quadrature reference (see the module docstring)."""
    rng = np.random.default_rng(20240611)
    om = table.omega
    v_top = float(table.voltage_from_time(1e-15 / om))
    m = max(n_check // 6, 8)
    phases = np.concatenate([
        np.linspace(table.phase_min, 1.0, m, endpoint=False),
        1.0 - np.logspace(-15.5, math.log10(1.0 - table.phase_min), m),
        rng.uniform(table.phase_min, 1.0, m),
        [table.phase_min, 0.0, 0.5],
    ])
    phases = np.clip(phases, table.phase_min, 1.0)
    v_check = np.concatenate([
        np.linspace(table.v_min, v_top, m),
        table.voltage_from_phase(np.linspace(table.phase_min, 1.0, m, endpoint=False)),
        table.voltage_from_time(np.logspace(-16, math.log10(table.t_max), m)),
        rng.uniform(table.v_min, v_top, m),
        [table.v_min, table.v_reset, v_top, table.v_spike],
    ])
    if table.method == "chebyshev":
        br = table.arrays["fwd_breaks"]
        mids = 0.5 * (br[:-1] + br[1:])
        v_check = np.concatenate([v_check, mids[:: max(1, mids.size // m)]])
    v_check = np.clip(v_check, table.v_min, table.v_spike)
    v_inv = table.voltage_from_phase(phases)
    p_tab = table.phase_from_voltage(v_check)
    v_rt = table.voltage_from_phase(np.minimum(p_tab, 1.0))
    allv = np.unique(np.clip(np.concatenate([v_check, v_inv, v_rt, [table.v_reset]]), table.v_min, table.v_spike))
    say(f"check: Gauss-Legendre reference at {allv.size} points")
    T_ref, qerr = _reference_T(rate, allv, table.v_spike, 1e-20 * table.t_max)
    om_ref = 1.0 / T_ref[np.searchsorted(allv, table.v_reset)]
    spot = allv[np.unique(np.linspace(0, allv.size - 1, 48).astype(int))]
    say(f"check: scipy.integrate.quad at {spot.size} points")
    vq, Tq = _quad_spot_check(rate, spot, table.v_spike, model.hints)
    quad_vs_ref = float(np.max(np.abs(om_ref * (Tq - T_ref[np.searchsorted(allv, vq)]))))

    def phase_ref(v):
        return 1.0 - om_ref * T_ref[np.searchsorted(allv, np.clip(v, table.v_min, table.v_spike))]

    pr_check = phase_ref(v_check)
    fwd_err = float(np.max(np.abs(p_tab - pr_check)))
    inv_err = float(np.max(np.abs(phase_ref(v_inv) - phases)))
    rt_phase = float(np.max(np.abs(table.phase_from_voltage(v_inv) - phases)))
    rt_volt = float(np.max(np.abs(phase_ref(v_rt) - pr_check)))
    ok = pr_check < 1.0 - 1e-3
    rel_v = float(np.max(np.abs(v_rt[ok] - v_check[ok]) / np.maximum(1.0, np.abs(v_check[ok])))) if ok.any() else 0.0
    vd = v_check[v_check < table.v_spike]
    _, dphi = table.phase_from_voltage(vd, derivative=True)
    exact_d = om_ref * rate(vd)
    d_err = float(np.max(np.abs(dphi - exact_d)) / np.max(exact_d))
    say("check: solve_ivp (DOP853, rtol 1e-13) of dT/dV = -1/(F+I)")
    T_ivp, nfev = _ivp_reference(rate, table.v_min, table.v_spike, allv)
    achieved = {
        "phase_forward": fwd_err,
        "phase_inverse": inv_err,
        "phase_roundtrip": rt_phase,
        "voltage_roundtrip_phase": rt_volt,
        "voltage_roundtrip_rel": rel_v,
        "dphase_dv_rel": d_err,
        "omega_rel": float(abs(table.omega - om_ref) / om_ref),
        "check_points": int(v_check.size + phases.size),
        "reference_error_estimate": float(qerr * om_ref),
        "quad_vs_reference_phase": quad_vs_ref,
    }
    if T_ivp is not None:
        achieved["solve_ivp_vs_reference_phase"] = float(np.max(np.abs(om_ref * (T_ivp - T_ref))))
        achieved["period_rel_solve_ivp"] = float(abs(T_ivp[np.searchsorted(allv, table.v_reset)] - table.period)
                                                 / table.period)
    return achieved


def _check_continuation(model, rate, drive, v_min, omega):
    """Phase error of the affine continuation below v_min: omega * int_{-inf}^{v_min} |r - r_affine|."""
    from scipy.integrate import IntegrationWarning, quad

    a, b = model.affine_tail
    if a > 0:
        raise ValueError(f"affine tail slope a={a!r} must be <= 0 (F ~ a V + b below v_min)")
    g0 = a * v_min + b + drive
    if not g0 > 0:
        raise ValueError(f"affine tail: a*v_min + b + I = {g0!r} <= 0: the continuation has a rest point below "
                         f"v_min={v_min!r}")

    def diff(x):
        lin = 1.0 / (a * x + b + drive)
        return abs(float(rate(np.array([x]))[0]) - lin)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        val, _ = quad(diff, -np.inf, v_min, epsabs=1e-300, epsrel=1e-6, limit=200)
        # also scan explicitly (quad on an infinite range can miss a narrow feature)
        xs = v_min - np.expm1(np.linspace(0, 30, 301))
        pts = np.array([diff(x) for x in xs])
    if not np.all(np.isfinite(pts)):
        raise ValueError("affine tail: F is not finite below v_min")
    return float(omega * val)


# ==================================================================================================
# make_table
# ==================================================================================================
def make_table(model, drive, *, method="chebyshev", tol=DEFAULT_TOL, v_reset=None, v_spike=None, v_min=None,
               max_degree=DEFAULT_MAX_DEGREE, order=5, max_nodes=DEFAULT_MAX_NODES, check_points=DEFAULT_CHECK_POINTS,
               name=None, command=None, progress=None):
    """Fit the phase maps of ``model`` at ``drive`` and return a :class:`sparseprop.tables.Table`.

    Parameters
    ----------
    model : :class:`Model` or built-in name (``"eif"``, ``"lif"``, ``"qif"``).
    drive : float, the constant drive I (units of voltage per tau).
    method : ``"chebyshev"`` (adaptive piecewise Chebyshev) or ``"interp"`` (uniform-grid Hermite).
    tol : target maximum phase error (absolute, phi_th - phi_reset = 1); default 1e-14.
    v_reset, v_spike, v_min : domain (defaults from the model); need v_min <= v_reset < v_spike.
    max_degree : largest Chebyshev degree per piece (chebyshev).
    order : 3 (cubic) or 5 (quintic) Hermite (interp).
    max_nodes : largest grid (interp).
    check_points : size of the independent check grid (about; the reference is quadrature).
    name, command : stored in the metadata.  progress : callable(str) or None.

    Raises
    ------
    ValueError : drive too low to fire, non-finite F, domain without the reset, bad parameters, or
        tolerance not reached (the message gives the achieved errors).
    """
    say = progress or (lambda s: None)
    if isinstance(model, str):
        model = make_model(model)
    if not isinstance(model, Model):
        raise ValueError(f"model must be a Model or a built-in name, got {type(model).__name__}")
    if method not in _tables.METHODS:
        raise ValueError(f"method must be one of {', '.join(_tables.METHODS)}, got {method!r}")
    drive = _finite("drive", drive)
    tol = _finite("tol", tol)
    if not 0 < tol < 1e-2:
        raise ValueError(f"tol must be in (0, 1e-2), got {tol!r}")
    if int(max_degree) != max_degree or not 4 <= max_degree <= 200:
        raise ValueError(f"max_degree must be an integer in [4, 200], got {max_degree!r}")
    max_degree = int(max_degree)
    if order not in (3, 5):
        raise ValueError(f"order (Hermite) must be 3 or 5, got {order!r}")
    if int(max_nodes) != max_nodes or max_nodes < 1025:
        raise ValueError(f"max_nodes must be an integer >= 1025, got {max_nodes!r}")
    if int(check_points) != check_points or check_points < 50:
        raise ValueError(f"check_points must be an integer >= 50, got {check_points!r}")
    v_reset = model.v_reset if v_reset is None else v_reset
    v_spike = model.v_spike if v_spike is None else v_spike
    if v_reset is None:
        raise ValueError(f"model {model.name}: v_reset is required")
    if v_spike is None:
        raise ValueError(f"model {model.name}: v_spike (the spike cut-off) is required")
    v_reset = _finite("v_reset", v_reset)
    v_spike = _finite("v_spike", v_spike)
    if v_min is None:
        v_min = model.v_min(v_reset) if callable(model.v_min) else (v_reset if model.v_min is None else model.v_min)
    v_min = _finite("v_min", v_min)
    if not v_reset < v_spike:
        raise ValueError(f"v_spike={v_spike!r} must be above v_reset={v_reset!r}")
    if not v_min <= v_reset:
        raise ValueError(f"v_min={v_min!r} must be <= v_reset={v_reset!r}: the table domain [v_min, v_spike] must "
                         f"contain the reset")
    t0 = time.perf_counter()
    rate = _Rate(model, drive, v_reset, v_min)
    say(f"model {model.name}: F(v) = {model.rhs}, I = {drive!r}, domain [{v_min!r}, {v_spike!r}], reset {v_reset!r}")
    gmin = _preflight(model, rate, drive, v_min, v_reset, v_spike)

    # a quick period estimate sets the scale of the time tolerance (omega * dT = dphi)
    from scipy.integrate import IntegrationWarning, quad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        inner = [h for h in model.hints if v_reset < h < v_spike]
        period_est = quad(lambda x: float(rate(np.array([x]))[0]), v_reset, v_spike, limit=500,
                          points=inner or None)[0]
    if not (period_est > 0 and math.isfinite(period_est)):
        raise ValueError(f"the period estimate {period_est!r} is not a positive finite number")
    omega_est = 1.0 / period_est
    fit_tol = tol / 4 if method == "interp" else tol
    breaks0 = sorted({v_min, v_reset, v_spike, *[h for h in model.hints if v_min < h < v_spike]})
    try:
        fwd = _fit_forward(rate, np.array(breaks0), fit_tol / (4 * omega_est), max_degree, 5000, say)
        period = float(fwd.t_breaks[int(np.searchsorted(fwd.breaks, v_reset))])  # v_reset is a breakpoint
        omega = 1.0 / period
        t_max = float(fwd.t_breaks[0])
        phase_min = 1.0 - omega * t_max
        continuation = None
        if model.affine_tail is not None:
            cerr = _check_continuation(model, rate, drive, v_min, omega)
            a, b = model.affine_tail
            continuation = {"kind": "affine", "a": a, "b": b, "phase_error": cerr,
                            "formula": "T(V) = t_max + ln((a v_min + b + I)/(a V + b + I))/a for V < v_min"}
            if cerr > tol / 4:
                raise ValueError(f"the affine continuation below v_min={v_min!r} is not accurate enough: phase error "
                                 f"{cerr:.3g} > tol/4; lower v_min (or drop the affine tail)")
        arrays = {}
        if method == "chebyshev":
            tb0 = sorted({0.0, period, t_max})
            ibreaks, icoef = _fit_inverse(fwd, rate, omega, np.array(tb0), v_spike, tol, max_degree, 5000, say)
            arrays = {"fwd_breaks": fwd.breaks, "fwd_coef": fwd.coef, "inv_breaks": ibreaks, "inv_coef": icoef}
            forward = {"variable": "v", "quantity": "T", "pieces": int(fwd.coef.shape[0]),
                       "max_degree": int(fwd.coef.shape[1] - 1)}
            inverse = {"variable": "T", "quantity": "v", "pieces": int(icoef.shape[0]),
                       "max_degree": int(icoef.shape[1] - 1)}
        else:
            arrays, forward, inverse = _build_interp(fwd, model, rate, drive, omega, t_max, v_min, v_spike, tol,
                                                     order, max_nodes, say)
    except _Unreachable as exc:
        raise ValueError(str(exc)) from None
    import scipy

    metadata = {
        "schema": _tables.SCHEMA, "schema_version": _tables.SCHEMA_VERSION,
        "name": name or f"{model.name}_{method}",
        "model": model.describe(),
        "drive": drive, "v_reset": v_reset, "v_spike": v_spike, "v_min": v_min,
        "phase_threshold": _tables.PHASE_THRESHOLD, "phase_reset": _tables.PHASE_RESET,
        "omega": omega, "period": period, "t_max": t_max, "phase_min": phase_min,
        "min_f_plus_i": gmin,
        "units": "V as in the model; T, period in units of tau; omega in phase per tau; phase_threshold - "
                 "phase_reset = 1",
        "continuation": continuation,
        "method": method, "forward": forward, "inverse": inverse,
        "tol": tol, "achieved": {},
        "generator": {"name": "sparseprop.tablegen", "version": GENERATOR_VERSION, "numpy": np.__version__,
                      "scipy": scipy.__version__},
        "command": command,
    }
    table = _tables.Table(arrays, metadata)
    achieved = _measure(table, rate, model, check_points, say)
    metadata["achieved"] = achieved
    main_errs = {k: achieved[k] for k in ("phase_forward", "phase_inverse", "phase_roundtrip",
                                           "voltage_roundtrip_phase")}
    worst = max(main_errs.values())
    say("achieved: " + ", ".join(f"{k} {v:.3g}" for k, v in main_errs.items())
        + f" (target {tol:.3g}); {time.perf_counter() - t0:.2f} s")
    if not worst <= tol:
        raise ValueError(f"tolerance tol={tol:.3g} not reached: achieved "
                         + ", ".join(f"{k} {v:.3g}" for k, v in main_errs.items())
                         + " on the check grid (float64 rounding limits phase errors to a few 1e-16)")
    return _tables.Table(arrays, metadata)


# ==================================================================================================
# command line
# ==================================================================================================
_MAKE_OPTIONS = (  # (dest, flag) in the order the canonical command lists them
    ("drive", "--drive"), ("method", "--method"), ("tol", "--tol"), ("v_reset", "--v-reset"),
    ("v_spike", "--v-spike"), ("v_min", "--v-min"), ("delta_v", "--delta-v"), ("v_t", "--v-t"),
    ("rhs", "--rhs"), ("rhs_callable", "--rhs-callable"), ("linear_tail", "--linear-tail"),
    ("max_degree", "--max-degree"), ("order", "--order"), ("max_nodes", "--max-nodes"),
    ("check_points", "--check-points"), ("name", "--name"),
)


def _add_make(sub):
    p = sub.add_parser("make", help="fit and write a phase table",
                       description="Fit T(V) (time to spike) and V(T) for dV/dt = F(V) + I and write a versioned "
                       ".npz table. Progress on stderr; --json prints a one-line summary on stdout.")
    p.add_argument("model", nargs="?", choices=["eif", "lif", "qif", "expr", "callable"],
                   help="built-in model, or expr (--rhs) / callable (--rhs-callable); inferred from those")
    p.add_argument("--drive", "-I", type=float, required=True, help="constant drive I (voltage per tau)")
    p.add_argument("--method", choices=list(_tables.METHODS), default="chebyshev",
                   help="chebyshev: adaptive piecewise Chebyshev; interp: uniform-grid Hermite (default chebyshev)")
    p.add_argument("--tol", type=float, default=DEFAULT_TOL, help="target max phase error (default 1e-14)")
    p.add_argument("--v-reset", type=float, default=None, help="reset voltage (eif -1, lif 0, qif -1000)")
    p.add_argument("--v-spike", type=float, default=None, help="spike cut-off (eif 1000, lif 1, qif 1000)")
    p.add_argument("--v-min", type=float, default=None,
                   help="lower end of the domain (<= v_reset; eif min(v_reset, v_t - 40 delta_v), lif v_reset - 1, "
                   "else v_reset)")
    p.add_argument("--delta-v", type=float, default=None, help="eif slope factor (default 0.1)")
    p.add_argument("--v-t", type=float, default=None, help="eif soft threshold (default 0)")
    p.add_argument("--rhs", default=None, help="F(v) as an expression in v, e.g. \"-v + 0.1*exp(v/0.1)\"")
    p.add_argument("--rhs-callable", default=None, metavar="MODULE:FUNCTION", help="F(v) as a Python callable")
    p.add_argument("--linear-tail", type=float, nargs=2, default=None, metavar=("A", "B"),
                   help="user models: F(V) = A V + B below v_min (enables the analytic continuation)")
    p.add_argument("--max-degree", type=int, default=DEFAULT_MAX_DEGREE, help="chebyshev: max degree per piece")
    p.add_argument("--order", type=int, choices=[3, 5], default=5, help="interp: Hermite order (default 5)")
    p.add_argument("--max-nodes", type=int, default=DEFAULT_MAX_NODES, help="interp: max grid size")
    p.add_argument("--check-points", type=int, default=DEFAULT_CHECK_POINTS, help="size of the check grid")
    p.add_argument("--name", default=None, help="table name stored in the metadata (default: output stem)")
    p.add_argument("-o", "--output", default=None, metavar="FILE.npz",
                   help="output file (default NAME.npz in the current directory)")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_cmd_make)
    return p


def _add_info(sub):
    p = sub.add_parser("info", help="show a table's metadata", description="Load a table (path or shipped name), "
                       "check it and print its metadata.")
    p.add_argument("table", help="path or name of a shipped table")
    p.add_argument("--json", action="store_true", help="print the metadata as one JSON line")
    p.set_defaults(func=_cmd_info)


def _add_list(sub):
    p = sub.add_parser("list", help="list the shipped tables")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_list)


def _model_from_args(args):
    model = args.model
    if model is None:
        if args.rhs is not None and args.rhs_callable is None:
            model = "expr"
        elif args.rhs_callable is not None and args.rhs is None:
            model = "callable"
        else:
            raise ValueError("give a model (eif, lif, qif) or exactly one of --rhs / --rhs-callable")
    if model != "eif" and (args.delta_v is not None or args.v_t is not None):
        raise ValueError("--delta-v and --v-t apply to the eif model only")
    if model not in ("expr", "callable") and (args.rhs is not None or args.rhs_callable is not None
                                              or args.linear_tail is not None):
        raise ValueError(f"--rhs/--rhs-callable/--linear-tail are for user models (expr, callable), not {model}")
    if model == "eif":
        kw = {}
        if args.delta_v is not None:
            kw["delta_v"] = args.delta_v
        if args.v_t is not None:
            kw["v_t"] = args.v_t
        return eif_model(**kw), model
    if model in ("lif", "qif"):
        return make_model(model), model
    if model == "expr":
        if args.rhs is None or args.rhs_callable is not None:
            raise ValueError("model expr needs --rhs (and not --rhs-callable)")
        return expression_model(args.rhs, affine_tail=args.linear_tail), model
    if args.rhs_callable is None or args.rhs is not None:
        raise ValueError("model callable needs --rhs-callable MODULE:FUNCTION (and not --rhs)")
    if args.v_reset is None or args.v_spike is None:
        raise ValueError("user models need --v-reset and --v-spike")
    return callable_model(args.rhs_callable, affine_tail=args.linear_tail), model


def _canonical_command(args, model_name, out_name):
    words = ["sparseprop", "tables", "make", model_name]
    for dest, flag in _MAKE_OPTIONS:
        val = getattr(args, dest)
        if val is None:
            continue
        if dest == "linear_tail":
            words += [flag, repr(float(val[0])), repr(float(val[1]))]
        elif dest == "name" and val == Path(out_name).stem:
            continue
        else:
            words += [flag, repr(val) if isinstance(val, float) else str(val)]
    words += ["-o", out_name]
    return shlex.join(words)


def _cmd_make(args):
    model, model_name = _model_from_args(args)
    if model_name in ("expr", "callable") and (args.v_reset is None or args.v_spike is None):
        raise ValueError("user models need --v-reset and --v-spike")
    out = Path(args.output) if args.output else Path(f"{args.name or model_name + '_' + args.method}.npz")
    if out.suffix != ".npz":
        raise ValueError(f"output {str(out)!r} must end in .npz")
    name = args.name or out.stem
    command = _canonical_command(args, model_name, out.name)
    progress = None if args.quiet else (lambda s: print(f"tablegen: {s}", file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    table = make_table(model, args.drive, method=args.method, tol=args.tol, v_reset=args.v_reset,
                       v_spike=args.v_spike, v_min=args.v_min, max_degree=args.max_degree, order=args.order,
                       max_nodes=args.max_nodes, check_points=args.check_points, name=name, command=command,
                       progress=progress)
    if out.parent and not out.parent.exists():
        raise ValueError(f"output directory {str(out.parent)!r} does not exist")
    table.save(out)
    wall = time.perf_counter() - t0
    if progress:
        progress(f"wrote {out} ({out.stat().st_size} bytes) in {wall:.2f} s")
    if args.json:
        md = table.metadata
        summary = {"path": str(out), "name": name, "bytes": out.stat().st_size, "wall_s": round(wall, 3),
                   "model": md["model"]["name"], "drive": md["drive"], "method": md["method"], "tol": md["tol"],
                   "omega": md["omega"], "period": md["period"], "phase_min": md["phase_min"],
                   "forward": md["forward"], "inverse": md["inverse"], "achieved": md["achieved"],
                   "command": command}
        print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_info(args):
    try:
        table = _tables.load_table(args.table)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None
    if args.json:
        print(json.dumps(table.metadata, sort_keys=True))
        return 0
    md = table.metadata
    print(f"{table.source}: {md['name']}")
    print(f"  model     {md['model']['name']}: F(v) = {md['model'].get('rhs')}  params {md['model'].get('params')}")
    print(f"  drive     {md['drive']!r}   domain [{md['v_min']!r}, {md['v_spike']!r}]   reset {md['v_reset']!r}")
    print(f"  omega     {md['omega']!r}   period {md['period']!r} tau   phase_min {md['phase_min']!r}")
    print(f"  method    {md['method']}   forward {md['forward']}   inverse {md['inverse']}")
    print(f"  cont.     {md['continuation']}")
    print(f"  tol       {md['tol']!r}   achieved " + json.dumps(md["achieved"], sort_keys=True))
    print(f"  generator {md['generator']}")
    print(f"  command   {md['command']}")
    return 0


def _cmd_list(args):
    names = _tables.list_tables()
    if args.json:
        print(json.dumps(names))
    else:
        for d in _tables.table_search_dirs():
            if d.is_dir():
                for p in sorted(d.glob("*.npz")):
                    print(f"{p.stem}\t{p}")
    return 0


def _populate(sub):
    _add_make(sub)
    _add_info(sub)
    _add_list(sub)


def add_subparser(sub):
    """Add ``tables {make,info,list}`` to the ``sparseprop`` command line (``sub`` from
    ``parser.add_subparsers``); the chosen action is ``args.func(args) -> int``."""
    p = sub.add_parser("tables", help="generate and inspect phase tables for 1-D neuron models",
                       description="Phase tables (time to spike and its inverse) for dV/dt = F(V) + I.")
    s = p.add_subparsers(dest="tables_command", required=True)
    _populate(s)
    return p


def build_parser(prog="python -m sparseprop.tablegen"):
    parser = argparse.ArgumentParser(prog=prog, description="Phase tables for 1-D neuron models dV/dt = F(V) + I.")
    sub = parser.add_subparsers(dest="tables_command", required=True)
    _populate(sub)
    return parser


def main(argv=None) -> int:
    """Entry point: ``python -m sparseprop.tablegen {make,info,list} ...``.  Returns the exit code
    (0 ok, 2 bad input or tolerance not reached, with the message on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"tablegen {args.tables_command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
