"""Uncertainty quantification of sweep statistics with polynomial chaos expansions (chaospy).

Declare parameter distributions, draw a design (quadrature or a low-discrepancy sequence), run the
design as a sweep (:func:`sparseprop.sweep.run_sweep`: same backends, seeds, resume and fault
tolerance), fit a polynomial chaos expansion (PCE) of each statistic and report its mean, standard
deviation and first-order / total Sobol indices, with a bar chart (matplotlib, optional).

Data layout and invariants
--------------------------
* Parameters are independent: the joint distribution is ``chaospy.J(*marginals)`` in the order the
  parameters are declared. A parameter with ``round = true`` is sampled and modelled as the
  continuous marginal, and the run receives ``int(round(x))`` (e.g. an out-degree K).
* The design is deterministic: Sobol and Halton sequences are deterministic; ``random`` and
  ``latin_hypercube`` map uniforms drawn from ``np.random.default_rng(seed)`` through the marginals'
  inverse CDFs (no global RNG state); quadrature nodes are deterministic.
* The expansion is ``chaospy.generate_expansion(order, joint, normed=True)``: orthonormal, so for
  coefficients c_k of basis polynomials with multi-index a_k, mean = c_0, Var = sum_{k>0} c_k^2,
  S1_i = sum over {a_k nonzero only in i} c_k^2 / Var and ST_i = sum over {a_k,i > 0} c_k^2 / Var
  (Sudret 2008). This equals ``chaospy.Sens_m`` / ``chaospy.Sens_t`` (``sobol="chaospy"`` uses
  those) but costs microseconds instead of the seconds to minutes chaospy's symbolic route takes at
  order >= 6.
* Replicates (``seeds > 1``) are averaged per design point before fitting: the PCE models the
  seed-averaged statistic. Points whose runs all failed are left out of a regression fit (and make
  a quadrature fit impossible, reported as an error for that statistic).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .sweep import SpecError, SweepResult, _json_record, run_sweep

__all__ = ["DISTRIBUTIONS", "DESIGNS", "make_distribution", "make_design", "run_uq", "fit_pce", "UQResult"]

# name -> required parameters (in chaospy order after translation)
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "uniform": ("lower", "upper"),
    "loguniform": ("lower", "upper"),
    "normal": ("mu", "sigma"),
    "lognormal": ("mu", "sigma"),
    "truncnormal": ("mu", "sigma", "lower", "upper"),
    "triangle": ("lower", "mid", "upper"),
}
DESIGNS = ("sobol", "halton", "latin_hypercube", "random", "quadrature")
FITS = ("regression", "quadrature")
# statistics analysed by default: every numeric one except bookkeeping columns
_BOOKKEEPING = {"sim_wall_s", "t_sim_s", "interrupted", "n_spikes_stat", "n_spikes"}


def _cp():
    import chaospy

    return chaospy


@dataclass(frozen=True)
class _Param:
    name: str
    dist: Any  # chaospy distribution
    round: bool
    spec: Any  # JSON-able description


def make_distribution(spec: Any, name: str = "parameter"):
    """A chaospy distribution from ``{"dist": "uniform", "lower": 0.5, "upper": 1.5, "round": false}``.

    Also accepts a chaospy distribution as is. Kinds and their keys: uniform (lower, upper),
    loguniform (lower > 0, upper), normal (mu, sigma), lognormal (mu, sigma of log x),
    truncnormal (mu, sigma, lower, upper), triangle (lower, mid, upper). ``round = true`` makes the
    run receive ``int(round(x))``. Raises :class:`SpecError` on a bad description.
    """
    cp = _cp()
    if isinstance(spec, cp.Distribution):
        return spec
    if not isinstance(spec, Mapping):
        raise SpecError(f"distribution of {name!r} must be a table like {{dist = 'uniform', lower = 0, "
                        f"upper = 1}}, got {spec!r}")
    kind = spec.get("dist")
    if kind not in DISTRIBUTIONS:
        raise SpecError(f"distribution of {name!r}: dist must be one of {', '.join(DISTRIBUTIONS)}, "
                        f"got {kind!r}")
    need = DISTRIBUTIONS[kind]
    allowed = {"dist", "round", *need}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise SpecError(f"distribution of {name!r} ({kind}): unknown key(s) {unknown}; needs "
                        f"{', '.join(need)} (and optional round)")
    missing = [k for k in need if k not in spec]
    if missing:
        raise SpecError(f"distribution of {name!r} ({kind}) needs {', '.join(missing)}")
    if "round" in spec and not isinstance(spec["round"], bool):
        raise SpecError(f"distribution of {name!r}: round must be true or false, got {spec['round']!r}")
    v = {}
    for k in need:
        x = spec[k]
        if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x):
            raise SpecError(f"distribution of {name!r} ({kind}): {k} must be a finite number, got {x!r}")
        v[k] = float(x)
    if "lower" in v and "upper" in v and not v["lower"] < v["upper"]:
        raise SpecError(f"distribution of {name!r} ({kind}): lower < upper required, got "
                        f"{v['lower']} >= {v['upper']}")
    if "sigma" in v and not v["sigma"] > 0:
        raise SpecError(f"distribution of {name!r} ({kind}): sigma must be > 0, got {v['sigma']}")
    if kind == "uniform":
        return cp.Uniform(v["lower"], v["upper"])
    if kind == "loguniform":
        if v["lower"] <= 0:
            raise SpecError(f"distribution of {name!r} (loguniform): lower must be > 0, got {v['lower']}")
        return cp.LogUniform(math.log(v["lower"]), math.log(v["upper"]))
    if kind == "normal":
        return cp.Normal(v["mu"], v["sigma"])
    if kind == "lognormal":
        return cp.LogNormal(v["mu"], v["sigma"])
    if kind == "truncnormal":
        return cp.TruncNormal(v["lower"], v["upper"], v["mu"], v["sigma"])
    if not v["lower"] <= v["mid"] <= v["upper"]:
        raise SpecError(f"distribution of {name!r} (triangle): lower <= mid <= upper required")
    return cp.Triangle(v["lower"], v["mid"], v["upper"])


def _params(parameters: Mapping[str, Any]) -> list[_Param]:
    if not isinstance(parameters, Mapping) or not parameters:
        raise SpecError("UQ needs at least one parameter distribution, e.g. {'j0': {'dist': 'uniform', "
                        "'lower': 0.5, 'upper': 1.5}}")
    out = []
    for name, spec in parameters.items():
        dist = make_distribution(spec, name)
        rnd = bool(spec.get("round", False)) if isinstance(spec, Mapping) else False
        desc = dict(spec) if isinstance(spec, Mapping) else repr(spec)
        out.append(_Param(str(name), dist, rnd, desc))
    return out


def validate_options(opts: Mapping) -> None:
    """Check the [uq] options other than the distributions (raises SpecError)."""
    design = opts.get("design", "sobol")
    if design not in DESIGNS:
        raise SpecError(f"[uq] design must be one of {', '.join(DESIGNS)}, got {design!r}")
    fit = opts.get("fit")
    if fit is not None and fit not in FITS:
        raise SpecError(f"[uq] fit must be one of {', '.join(FITS)}, got {fit!r}")
    if fit == "quadrature" and design != "quadrature":
        raise SpecError("[uq] fit = 'quadrature' needs design = 'quadrature'")
    for key, lo in (("samples", 1), ("order", 0), ("quadrature_order", 0), ("seed", 0)):
        if key in opts and (isinstance(opts[key], bool) or not isinstance(opts[key], int) or opts[key] < lo):
            raise SpecError(f"[uq] {key} must be an integer >= {lo}, got {opts[key]!r}")
    if "samples" in opts and design == "quadrature":
        raise SpecError("[uq] samples is for sampling designs; a quadrature design's size comes from "
                        "quadrature_order")
    stats = opts.get("statistics")
    if stats is not None and (not isinstance(stats, list) or not stats or
                              not all(isinstance(s, str) for s in stats)):
        raise SpecError(f"[uq] statistics must be a non-empty list of statistic names, got {stats!r}")


def make_design(joint, design: str = "sobol", samples: int | None = None, *, quadrature_order: int = 2,
                rule: str = "gaussian", seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Design nodes (d, M) and quadrature weights (or None) for a chaospy joint distribution."""
    cp = _cp()
    if design not in DESIGNS:
        raise SpecError(f"design must be one of {', '.join(DESIGNS)}, got {design!r}")
    d = len(joint)
    if design == "quadrature":
        nodes, weights = cp.generate_quadrature(int(quadrature_order), joint, rule=rule)
        return np.asarray(nodes, dtype=np.float64).reshape(d, -1), np.asarray(weights, dtype=np.float64)
    if samples is None or samples < 1:
        raise SpecError(f"a {design} design needs samples >= 1, got {samples!r}")
    if design in ("sobol", "halton"):
        nodes = joint.sample(int(samples), rule=design)
    else:
        rng = np.random.default_rng(int(seed))
        u = rng.random((d, int(samples)))
        if design == "latin_hypercube":
            perm = np.argsort(rng.random((d, int(samples))), axis=1)
            u = (perm + u) / samples
        nodes = joint.inv(u)
    nodes = np.asarray(nodes, dtype=np.float64).reshape(d, -1)
    if not np.isfinite(nodes).all():
        raise SpecError("the design has non-finite nodes (an unbounded distribution at u = 0 or 1)")
    return nodes, None


def _support(expansion, d: int) -> np.ndarray:
    """(P, d) bool: which variables each basis polynomial depends on."""
    rows = []
    for poly in expansion:
        exps = np.asarray(poly.exponents).reshape(-1, d)
        coef = np.asarray(poly.coefficients, dtype=np.float64).reshape(-1)
        rows.append((exps[coef != 0] > 0).any(axis=0) if exps.size else np.zeros(d, bool))
    return np.array(rows, dtype=bool).reshape(-1, d)


@dataclass
class PCEFit:
    """One fitted statistic."""

    poly: Any
    coefficients: np.ndarray
    mean: float
    std: float
    s1: np.ndarray
    st: np.ndarray
    n_used: int
    q2: float  # leave-one-out coefficient of determination (regression), NaN for quadrature


def fit_pce(nodes: np.ndarray, values: np.ndarray, joint, order: int, *, weights: np.ndarray | None = None,
            fit: str = "regression", sobol: str = "coefficients", expansion=None) -> PCEFit:
    """Fit an orthonormal PCE of ``values`` (M,) at ``nodes`` (d, M) and compute Sobol indices."""
    cp = _cp()
    import numpoly

    nodes = np.asarray(nodes, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    d = nodes.shape[0]
    if expansion is None:
        expansion = cp.generate_expansion(int(order), joint, normed=True)
    n_terms = len(expansion)
    q2 = math.nan
    if fit == "quadrature":
        if weights is None:
            raise ValueError("fit='quadrature' needs quadrature weights")
        if not np.isfinite(values).all():
            raise ValueError("a quadrature fit needs every design point; some runs failed or gave NaN")
        poly, coefs = cp.fit_quadrature(expansion, nodes, weights, values, retall=1)
        coefs = np.asarray(coefs, dtype=np.float64)
        n_used = values.size
    elif fit == "regression":
        ok = np.isfinite(values)
        n_used = int(ok.sum())
        if n_used < n_terms:
            raise ValueError(f"{n_used} usable design points for an order-{order} PCE with {n_terms} terms; "
                             f"need at least {n_terms} (2x recommended): raise samples or lower order")
        a = np.asarray(expansion(*nodes[:, ok]), dtype=np.float64).reshape(n_terms, -1).T  # (M, P)
        y = values[ok]
        coefs, *_ = np.linalg.lstsq(a, y, rcond=None)
        poly = numpoly.sum(expansion * coefs, axis=0)
        q, _ = np.linalg.qr(a)
        h = np.sum(q * q, axis=1)
        resid = y - a @ coefs
        var_y = float(np.var(y))
        with np.errstate(divide="ignore", invalid="ignore"):
            loo = resid / (1.0 - h)
        if n_used > n_terms and var_y > 0 and np.all(h < 1 - 1e-10):
            q2 = 1.0 - float(np.mean(loo ** 2)) / var_y
    else:
        raise ValueError(f"fit must be 'regression' or 'quadrature', got {fit!r}")
    if sobol == "chaospy":
        mean = float(cp.E(poly, joint))
        std = float(cp.Std(poly, joint))
        s1 = np.asarray(cp.Sens_m(poly, joint), dtype=np.float64)
        st = np.asarray(cp.Sens_t(poly, joint), dtype=np.float64)
    elif sobol == "coefficients":
        supp = _support(expansion, d)
        const = ~supp.any(axis=1)
        p0 = np.asarray(expansion(*np.zeros((d, 1))), dtype=np.float64).reshape(-1)
        mean = float(np.sum(coefs[const] * p0[const]))
        c2 = np.where(const, 0.0, coefs ** 2)
        var = float(c2.sum())
        std = math.sqrt(var)
        if var > 0:
            only = supp & (supp.sum(axis=1) == 1)[:, None]
            s1 = np.array([c2[only[:, i]].sum() / var for i in range(d)])
            st = np.array([c2[supp[:, i]].sum() / var for i in range(d)])
        else:
            s1 = st = np.full(d, np.nan)
    else:
        raise ValueError(f"sobol must be 'coefficients' or 'chaospy', got {sobol!r}")
    return PCEFit(poly, coefs, mean, std, s1, st, n_used, q2)


@dataclass
class UQResult:
    """Outcome of :func:`run_uq`.

    ``statistics[name]`` holds ``mean``, ``std`` (of the PCE), ``S1`` and ``ST`` (dicts parameter ->
    index), ``q2`` (leave-one-out R^2 of a regression fit), ``n_used`` and the design's direct
    estimates ``sample_mean``/``sample_std``; or ``error`` if the statistic could not be fitted.
    """

    names: list[str]
    distributions: dict
    design: str
    order: int
    fit: str
    nodes: np.ndarray
    weights: np.ndarray | None
    statistics: dict[str, dict]
    sweep: SweepResult
    pce: dict[str, PCEFit] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": "sparseprop-uq", "version": 1, "parameters": self.names,
                "distributions": self.distributions, "design": self.design, "order": self.order,
                "fit": self.fit, "n_points": int(self.nodes.shape[1]), "statistics": self.statistics,
                "nodes": self.nodes.tolist(),
                "weights": None if self.weights is None else self.weights.tolist(),
                "spec_hash": self.sweep.spec_hash}

    def summary(self) -> dict:
        """Short dict for ``--json``."""
        return {"uq": {k: {kk: v[kk] for kk in ("mean", "std", "S1", "ST", "q2", "error") if kk in v}
                       for k, v in self.statistics.items()}, "design": self.design,
                "n_points": int(self.nodes.shape[1]), **{f"uq_{k}": v for k, v in self.paths.items()}}

    def report(self) -> str:
        lines = [f"PCE order {self.order} ({self.fit}) on a {self.design} design of {self.nodes.shape[1]} points"]
        width = max(8, *(len(n) for n in self.names))
        for stat, s in self.statistics.items():
            if "error" in s:
                lines.append(f"  {stat}: not fitted: {s['error']}")
                continue
            q2 = f"  Q2 {s['q2']:.3f}" if s.get("q2") is not None and math.isfinite(s["q2"]) else ""
            lines.append(f"  {stat}: mean {s['mean']:.6g}  std {s['std']:.4g}{q2}")
            lines.append(f"    {'parameter':<{width}}      S1      ST")
            for n in self.names:
                lines.append(f"    {n:<{width}}  {s['S1'][n]:6.3f}  {s['ST'][n]:6.3f}")
        for k, v in self.paths.items():
            lines.append(f"  {k}: {v}")
        return "\n".join(lines) + "\n"

    def plot(self, path: str | os.PathLike | None = None, statistics: Sequence[str] | None = None):
        """Bar chart of first-order and total Sobol indices, one panel per statistic (matplotlib)."""
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ImportError("plotting needs matplotlib (pip install matplotlib)") from exc
        stats = [s for s in (statistics or self.statistics) if "error" not in self.statistics[s]]
        n = max(1, len(stats))
        fig = Figure(figsize=(1.2 + 1.1 * len(self.names) * 1.0 + 0.5, 2.8 * n), layout="constrained")
        axes = fig.subplots(n, 1, squeeze=False)[:, 0]
        x = np.arange(len(self.names))
        for ax, stat in zip(axes, stats):
            s = self.statistics[stat]
            s1 = [s["S1"][p] for p in self.names]
            st = [s["ST"][p] for p in self.names]
            ax.bar(x - 0.2, s1, 0.4, label="first order $S_i$")
            ax.bar(x + 0.2, st, 0.4, label="total $S_{T,i}$")
            ax.set_xticks(x, self.names)
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("Sobol index")
            ax.set_title(f"{stat}: mean {s['mean']:.4g}, std {s['std']:.3g}", fontsize=10)
            ax.legend(fontsize=8, frameon=False)
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


def run_uq(
    fn: Callable | str,
    parameters: Mapping[str, Any],
    *,
    params: Mapping | None = None,
    design: str = "sobol",
    samples: int | None = None,
    order: int = 2,
    quadrature_order: int | None = None,
    rule: str = "gaussian",
    fit: str | None = None,
    statistics: Sequence[str] | None = None,
    seed: int = 0,
    sobol: str = "coefficients",
    figure: bool | None = None,
    **sweep_kwargs,
) -> UQResult:
    """Run a UQ design as a sweep and fit a PCE of each statistic.

    Parameters
    ----------
    fn : run function of :func:`sparseprop.sweep.run_sweep` (e.g. ``"network"``).
    parameters : dict name -> distribution (see :func:`make_distribution`)
    params : fixed parameters merged into every point.
    design : sobol | halton | latin_hypercube | random | quadrature
    samples : design size for sampling designs (default: twice the number of PCE terms).
    order : PCE order. ``quadrature_order`` (default ``order``) sizes a quadrature design.
    fit : regression (default) or quadrature (default for a quadrature design).
    statistics : statistics to analyse (default: every numeric statistic but bookkeeping ones).
    seed : seed of random / latin_hypercube designs.
    sobol : "coefficients" (fast, exact for the orthonormal PCE) or "chaospy" (Sens_m / Sens_t).
    figure : write ``uq_sobol.png`` to the output directory (default: if matplotlib is installed).
    sweep_kwargs : ``seeds``, ``backend``, ``workers``, ``out``... of :func:`run_sweep`.
    """
    cp = _cp()
    validate_options({"design": design, "order": order, "seed": seed,
                      **({"fit": fit} if fit is not None else {}),
                      **({"quadrature_order": quadrature_order} if quadrature_order is not None else {}),
                      **({"statistics": list(statistics)} if statistics is not None else {})})
    plist = _params(parameters)
    fixed = dict(params or {})
    clash = sorted(set(fixed) & {p.name for p in plist})
    if clash:
        raise SpecError(f"parameter(s) {clash} are both fixed and uncertain; keep one")
    names = [p.name for p in plist]
    joint = cp.J(*[p.dist for p in plist])
    expansion = cp.generate_expansion(int(order), joint, normed=True)
    fit = fit or ("quadrature" if design == "quadrature" else "regression")
    if design != "quadrature" and samples is None:
        samples = 2 * len(expansion)
    nodes, weights = make_design(joint, design, samples,
                                 quadrature_order=order if quadrature_order is None else quadrature_order,
                                 rule=rule, seed=seed)
    points = []
    for m in range(nodes.shape[1]):
        pt = dict(fixed)
        for i, p in enumerate(plist):
            x = float(nodes[i, m])
            pt[p.name] = int(round(x)) if p.round else x
        points.append(pt)
    meta = dict(sweep_kwargs.pop("meta", None) or {})
    meta["uq"] = {"parameters": {p.name: p.spec for p in plist}, "design": design, "order": order, "fit": fit}
    res = run_sweep(fn, points, meta=meta, **sweep_kwargs)

    n_rep = res.records and (max(r["replicate"] for r in res.records) + 1) or 1
    n_pts = nodes.shape[1]
    stat_names: list[str] = []
    for rec in res.records:
        if rec["status"] == "ok":
            for k, v in rec["stats"].items():
                if k not in stat_names and isinstance(v, (int, float)) and not isinstance(v, bool):
                    stat_names.append(k)
    if statistics is None:
        wanted = [s for s in stat_names if s not in _BOOKKEEPING]
    else:
        wanted = list(statistics)
        unknown = [s for s in wanted if s not in stat_names]
        if unknown and stat_names:
            raise SpecError(f"unknown statistic(s) {unknown}; the runs produced {stat_names}")
    out: dict[str, dict] = {}
    pces: dict[str, PCEFit] = {}
    for stat in wanted:
        y = np.full((n_pts, n_rep), np.nan)
        for rec in res.records:
            if rec["status"] == "ok":
                v = rec["stats"].get(stat)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    y[rec["point"], rec["replicate"]] = float(v)
        with np.errstate(all="ignore"), _quiet_nanmean():
            ybar = np.nanmean(y, axis=1)
        entry: dict[str, Any] = {"n_points": n_pts, "n_replicates": n_rep}
        good = np.isfinite(ybar)
        if weights is not None and good.all():
            entry["sample_mean"] = float(np.sum(weights * ybar))
            entry["sample_std"] = float(math.sqrt(max(0.0, np.sum(weights * (ybar - entry["sample_mean"]) ** 2))))
        elif good.any():
            entry["sample_mean"] = float(np.mean(ybar[good]))
            entry["sample_std"] = float(np.std(ybar[good], ddof=1)) if good.sum() > 1 else math.nan
        try:
            f = fit_pce(nodes, ybar, joint, order, weights=weights, fit=fit, sobol=sobol, expansion=expansion)
        except (ValueError, np.linalg.LinAlgError) as exc:
            entry["error"] = str(exc)
            out[stat] = entry
            continue
        pces[stat] = f
        entry.update({"mean": f.mean, "std": f.std,
                      "S1": {n: float(v) for n, v in zip(names, f.s1)},
                      "ST": {n: float(v) for n, v in zip(names, f.st)},
                      "q2": f.q2, "n_used": f.n_used})
        out[stat] = entry
    result = UQResult(names=names, distributions={p.name: p.spec for p in plist}, design=design,
                      order=int(order), fit=fit, nodes=nodes, weights=weights, statistics=out, sweep=res,
                      pce=pces)
    outdir = res.paths.get("out")
    if outdir:
        path = Path(outdir) / "uq.json"
        path.write_text(json.dumps(_json_record(result.to_dict()), indent=1) + "\n", encoding="utf-8")
        result.paths["json"] = str(path)
        want_fig = figure
        if want_fig is None:
            try:
                import matplotlib  # noqa: F401

                want_fig = True
            except ImportError:
                want_fig = False
        if want_fig and pces:
            fig_path = Path(outdir) / "uq_sobol.png"
            result.plot(fig_path)
            result.paths["figure"] = str(fig_path)
    return result


class _quiet_nanmean:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def run_uq_spec(spec, **kwargs) -> UQResult:
    """Run the [uq] table of a validated :class:`sparseprop.sweep.Spec`."""
    u = spec.uq
    return run_uq(
        spec.run, u["parameters"], params=spec.points[0], design=u.get("design", "sobol"),
        samples=u.get("samples"), order=u.get("order", 2), quadrature_order=u.get("quadrature_order"),
        rule=u.get("rule", "gaussian"), fit=u.get("fit"), statistics=u.get("statistics"),
        seed=u.get("seed", kwargs.get("base_seed", 0)), figure=u.get("figure"), **kwargs)
