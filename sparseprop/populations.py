"""Populations and projections: a NEST/Brian2-style builder for explicit networks, the Brunel (2000)
network, and network export/import.

>>> import numpy as np, sparseprop as sp
>>> b = sp.NetworkBuilder(model=sp.LIF(v_reset=0.5), tau=0.02)
>>> E = b.population("E", 800, drive=0.0, refractory=0.002)
>>> I = b.population("I", 200, drive=0.0, refractory=0.002)
>>> for post in (E, I):
...     _ = b.connect(E, post, sp.InDegree(80), weight=0.005, delay=0.0015)
...     _ = b.connect(I, post, sp.InDegree(20), weight=-0.025, delay=0.0015)
>>> _ = b.poisson(None, rate=800.0, weight=0.005)       # every neuron, 800 Hz each
>>> net = b.build(seed=1)                               # deterministic for a given seed
>>> net.populations
{'E': (0, 800), 'I': (800, 1000)}

Data layout
-----------
Populations are contiguous ranges of global neuron ids, ``[start, stop)``, in the order they were
created (the first population starts at 0). A projection ``connect(pre, post, rule, ...)`` draws
(pre, post) pairs in LOCAL ids (0..size-1 within each population) and the builder shifts them by the
populations' starts.

`NetworkBuilder.build` assembles ONE global CSR by presynaptic neuron (``SparseConnectivity``): row
j lists the targets of neuron j sorted by target id; synapses with the same (pre, post) pair
(multapses) keep the order of their ``connect`` calls and, within a call, the rule's generation
order. Arrays: ``indptr`` int64 (n + 1), ``indices`` int32 (nnz), ``weights`` float64 (nnz) and
``delays`` float64 (nnz) only when not all synapses share one delay (otherwise the network's
homogeneous ``delay``). Drive and refractory period are scalars when uniform, else (n,) arrays.

Generation order (what an array of per-synapse weights or delays is aligned with)
-----------------------------------------------------------------------------------
* `InDegree` (alias `FixedInDegree`): for each postsynaptic neuron in increasing local id, its k
  sources: in draw order with multapses, in increasing id without.
* `OutDegree`: for each presynaptic neuron in increasing local id, its k targets: in draw order
  with multapses, in increasing id without.
* `Bernoulli`: by presynaptic id, then by postsynaptic id (both increasing).
* `OneToOne`: pairs (i, i) for i = 0..size-1.
* `FromArrays`: the order of the given arrays.
* `FromMatrix`: by presynaptic id (column of ``W[post, pre]``), then by postsynaptic id.

`NetworkBuilder.synapses` returns exactly these per-projection arrays (global ids), drawn with the
same random numbers as `build`.

Random numbers
--------------
`build` draws everything from one ``numpy.random.Generator`` (``rng=`` or ``seed=``), projection by
projection in ``connect`` order: first the pairs, then weights (if a distribution), then delays (if a
distribution). A given seed and builder give the same network, bit for bit.

Units: voltages in units of the threshold (LIF: threshold 1, rest 0), times and delays in seconds,
rates in Hz.
"""
import json
import numbers
from dataclasses import dataclass

import numpy as np

from sparseprop import _validate as v
from sparseprop.results import _json_default
from sparseprop._core._models import LIF, Mixed, NeuronModel, make_model
from sparseprop.network import Network, SparseConnectivity

__all__ = ["NetworkBuilder", "Population", "ConnectionRule", "InDegree", "FixedInDegree", "OutDegree",
           "Bernoulli", "OneToOne", "FromArrays", "FromMatrix", "ProjectionSynapses", "brunel_network",
           "brunel_parameters", "BRUNEL_STATES", "export_network", "load_network"]

_CHUNK = 1 << 20          # synapses decoded per chunk when assembling the CSR (bounds temporaries)
_DENSE_BLOCK = 1 << 22    # random keys per block in the dense distinct sampler
_PACK_LIMIT = 63          # bits available for (pre, post, synapse index) sort keys (tests lower it)


# ---------------------------------------------------------------------------------------------------
# populations

@dataclass(frozen=True, eq=False)
class Population:
    """A contiguous block of neurons of a `NetworkBuilder` (global ids ``start .. stop-1``).

    Attributes
    ----------
    name : str
    start, stop : int
        Global id range ``[start, stop)``.
    drive : float or ndarray (size,)
        Constant input I (units of the threshold per tau).
    refractory : float or ndarray (size,)
        Absolute refractory period in seconds.
    model : NeuronModel
    tau : float or ndarray (size,)
        Membrane time constant in seconds.
    """
    name: str
    start: int
    stop: int
    drive: object
    refractory: object
    model: object = None
    tau: object = None

    @property
    def size(self):
        """Number of neurons."""
        return self.stop - self.start

    @property
    def ids(self):
        """Global neuron ids, int64 array."""
        return np.arange(self.start, self.stop, dtype=np.int64)

    def __len__(self):
        return self.size

    def __repr__(self):
        return f"Population({self.name!r}, size={self.size}, ids=[{self.start}, {self.stop}))"


# ---------------------------------------------------------------------------------------------------
# connection rules

class ConnectionRule:
    """Base class of the rules that draw (pre, post) pairs between two populations.

    Subclasses set ``default_autapses`` / ``default_multapses`` (used when ``connect`` gets None)
    and ``can_multapse`` (False: the rule never repeats a pair, ``multapses=True`` is an error).
    """

    default_autapses = False
    default_multapses = True
    can_multapse = True

    def _check(self, n_pre, n_post, same, autapses, multapses):
        """Raise ValueError when the rule cannot be realised between populations of these sizes."""

    def _count(self, n_pre, n_post, same, autapses, multapses):
        """Number of synapses, or None when it is random."""
        raise NotImplementedError

    def _pairs(self, rng, n_pre, n_post, same, autapses, multapses):
        """(pre, post) local ids as two broadcastable int arrays (C order of the broadcast = order)."""
        raise NotImplementedError

    def pairs(self, n_pre, n_post, rng, *, same=False, autapses=None, multapses=None):
        """Draw the (pre, post) pairs of one projection in generation order (local ids).

        Parameters
        ----------
        n_pre, n_post : int
            Population sizes.
        rng : numpy.random.Generator
        same : bool
            Whether pre and post are the same population (autapses only possible then).
        autapses, multapses : bool, optional
            Default: the rule's defaults.

        Returns
        -------
        pre, post : int64 arrays of equal length
        """
        n_pre = v.integer("n_pre", n_pre, minimum=1)
        n_post = v.integer("n_post", n_post, minimum=1)
        autapses, multapses = self._options(autapses, multapses)
        self._check(n_pre, n_post, bool(same), autapses, multapses)
        pre, post = self._pairs(rng, n_pre, n_post, bool(same), autapses, multapses)
        pre, post = np.broadcast_arrays(pre, post)
        return pre.astype(np.int64).ravel(), post.astype(np.int64).ravel()

    def _options(self, autapses, multapses):
        autapses = self.default_autapses if autapses is None else _flag("autapses", autapses)
        multapses = self.default_multapses if multapses is None else _flag("multapses", multapses)
        if multapses and not self.can_multapse:
            raise ValueError(f"multapses: {type(self).__name__} never creates more than one synapse per "
                             f"(pre, post) pair; leave multapses unset (or False), or use InDegree/OutDegree/"
                             f"FromArrays for repeated pairs")
        return autapses, multapses


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


class _FixedDegree(ConnectionRule):
    _side = None          # "in": k sources per post neuron; "out": k targets per pre neuron

    def __init__(self, k):
        if isinstance(k, numbers.Integral) and not isinstance(k, bool) and k < 0:
            raise ValueError(f"k: the {self._side}-degree must be >= 0, got {k}")
        self.k = v.integer("k", k, minimum=0, maximum=v.INT32_LIMIT)

    def _sizes(self, n_pre, n_post):
        return (n_post, n_pre) if self._side == "in" else (n_pre, n_post)

    def _check(self, n_pre, n_post, same, autapses, multapses):
        rows, pool = self._sizes(n_pre, n_post)
        available = pool - (1 if same and not autapses else 0)
        other = "presynaptic" if self._side == "in" else "postsynaptic"
        if self.k == 0:
            return
        if not multapses and self.k > available:
            raise ValueError(f"k: {type(self).__name__}({self.k}) without multapses needs k distinct {other} "
                             f"neurons, but only {available} are available"
                             f"{' (autapses excluded)' if same and not autapses else ''}; lower k or pass "
                             f"multapses=True")
        if available == 0:
            raise ValueError(f"k: {type(self).__name__}({self.k}) has no {other} neuron to choose from "
                             f"(a population of one neuron connected to itself without autapses); pass "
                             f"autapses=True or connect another population")
        if rows * self.k > np.iinfo(np.int64).max // 4:
            raise ValueError(f"k: {rows} x {self.k} synapses is too many")

    def _count(self, n_pre, n_post, same, autapses, multapses):
        return self._sizes(n_pre, n_post)[0] * self.k

    def _pairs(self, rng, n_pre, n_post, same, autapses, multapses):
        rows, pool = self._sizes(n_pre, n_post)
        chosen = _sample_rows(rng, rows, pool, self.k, distinct=not multapses,
                              exclude_self=same and not autapses)
        own = np.arange(rows, dtype=np.int32)[:, None]
        return (chosen, own) if self._side == "in" else (own, chosen)

    def __repr__(self):
        return f"{type(self).__name__}({self.k})"


class InDegree(_FixedDegree):
    """Every postsynaptic neuron receives exactly ``k`` synapses from the presynaptic population.

    Sources are drawn uniformly: with multapses (default) independently with replacement, without
    multapses ``k`` distinct neurons. Without autapses (default) a neuron never chooses itself when
    pre and post are the same population. Like NEST's ``fixed_indegree``.

    Parameters
    ----------
    k : int
        In-degree per postsynaptic neuron, >= 0.
    """
    _side = "in"


FixedInDegree = InDegree


class OutDegree(_FixedDegree):
    """Every presynaptic neuron makes exactly ``k`` synapses onto the postsynaptic population.

    (The explicit, stored counterpart of the procedural ``sparseprop.FixedOutDegree``.) Targets are
    drawn uniformly, with replacement with multapses (default), else ``k`` distinct neurons;
    without autapses (default) never the neuron itself. Like NEST's ``fixed_outdegree``.

    Parameters
    ----------
    k : int
        Out-degree per presynaptic neuron, >= 0.
    """
    _side = "out"


class Bernoulli(ConnectionRule):
    """Every (pre, post) pair is connected independently with probability ``p``.

    Exact: the gaps between connected pairs (in pre-major order) are drawn from the geometric
    distribution, O(number of synapses) time and memory. Without autapses (default) the pairs
    (i, i) of a population connected to itself are excluded. At most one synapse per pair. Like
    NEST's ``pairwise_bernoulli`` or Brian2's ``connect(p=...)``.

    Parameters
    ----------
    p : float
        Connection probability in [0, 1].
    """
    can_multapse = False
    default_multapses = False

    def __init__(self, p):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p: the connection probability must be a number in [0, 1], got {p!r}")
        self.p = float(p)

    def _count(self, n_pre, n_post, same, autapses, multapses):
        return None

    def _pairs(self, rng, n_pre, n_post, same, autapses, multapses):
        exclude = same and not autapses
        cols = n_post - 1 if exclude else n_post
        pos = _bernoulli_positions(rng, n_pre * cols, self.p)
        pre = pos // max(cols, 1)
        post = pos - pre * cols
        if exclude:
            post += post >= pre
        return pre, post

    def __repr__(self):
        return f"Bernoulli({self.p!r})"


class OneToOne(ConnectionRule):
    """Neuron i of the presynaptic population connects to neuron i of the postsynaptic one.

    Both populations must have the same size. Within one population every synapse is an autapse,
    so ``autapses`` defaults to True here.
    """
    default_autapses = True
    default_multapses = False
    can_multapse = False

    def _check(self, n_pre, n_post, same, autapses, multapses):
        if n_pre != n_post:
            raise ValueError(f"pre/post: OneToOne needs populations of equal size, got {n_pre} and {n_post}")
        if same and not autapses:
            raise ValueError("autapses: OneToOne within one population connects every neuron to itself; "
                             "autapses=False would leave no synapse (drop the connect call or pass "
                             "autapses=True)")

    def _count(self, n_pre, n_post, same, autapses, multapses):
        return n_pre

    def _pairs(self, rng, n_pre, n_post, same, autapses, multapses):
        ids = np.arange(n_pre, dtype=np.int64)
        return ids, ids

    def __repr__(self):
        return "OneToOne()"


class FromArrays(ConnectionRule):
    """Explicit synapses ``pre_ids[s] -> post_ids[s]`` in LOCAL ids of the two populations.

    The pairs are used as given (order included). Defaults ``autapses=True, multapses=True``;
    passing False makes ``connect`` check the pairs and raise if one is an autapse / repeated.

    Parameters
    ----------
    pre_ids, post_ids : int arrays of equal length
        Local ids, ``0 <= pre_ids < pre.size`` and ``0 <= post_ids < post.size``.
    """
    default_autapses = True
    default_multapses = True

    def __init__(self, pre_ids, post_ids):
        self.pre_ids = _id_array("pre_ids", pre_ids)
        self.post_ids = _id_array("post_ids", post_ids)
        if self.pre_ids.shape != self.post_ids.shape:
            raise ValueError(f"post_ids: expected as many ids as pre_ids ({self.pre_ids.size}), "
                             f"got {self.post_ids.size}")

    def _check(self, n_pre, n_post, same, autapses, multapses):
        for name, ids, size in (("pre_ids", self.pre_ids, n_pre), ("post_ids", self.post_ids, n_post)):
            if ids.size and (ids.min() < 0 or ids.max() >= size):
                bad = ids[(ids < 0) | (ids >= size)][0]
                raise ValueError(f"{name}: local ids must lie in [0, {size}) (the population size), found {bad}; "
                                 f"ids are local to each population (global id - population.start)")
        if same and not autapses and np.any(self.pre_ids == self.post_ids):
            i = int(self.pre_ids[self.pre_ids == self.post_ids][0])
            raise ValueError(f"autapses: the pairs contain the autapse {i} -> {i}; remove it or pass "
                             f"autapses=True")
        if not multapses and self.pre_ids.size:
            code = self.pre_ids * n_post + self.post_ids
            if np.unique(code).size != code.size:
                raise ValueError("multapses: the pairs contain repeated (pre, post) pairs; remove them or "
                                 "pass multapses=True")

    def _count(self, n_pre, n_post, same, autapses, multapses):
        return int(self.pre_ids.size)

    def _pairs(self, rng, n_pre, n_post, same, autapses, multapses):
        return self.pre_ids, self.post_ids

    def __repr__(self):
        return f"FromArrays({self.pre_ids.size} pairs)"


class FromMatrix(ConnectionRule):
    """Synapses from a weight matrix ``W[post, pre]`` (dense or scipy.sparse, local ids).

    Every nonzero entry is one synapse; its value is the weight unless ``connect`` gets
    ``weight=``. Order: by presynaptic id (column), then postsynaptic id. Default ``autapses=True``
    (a nonzero diagonal of a population onto itself is kept); ``autapses=False`` raises if the
    diagonal has nonzeros.

    Parameters
    ----------
    W : array_like or scipy.sparse matrix, shape (post.size, pre.size)
    """
    default_autapses = True
    default_multapses = False
    can_multapse = False

    def __init__(self, W):
        import scipy.sparse as sps

        if sps.issparse(W):
            if W.ndim != 2:
                raise ValueError(f"W: expected a 2-D matrix, got shape {W.shape}")
            if W.dtype.kind not in "fiub":
                raise TypeError(f"W: expected real values, got dtype {W.dtype}")
            m = sps.csc_array(W, dtype=np.float64)   # sums duplicate entries
        else:
            W = np.asarray(W)
            if W.ndim != 2:
                raise ValueError(f"W: expected a 2-D matrix W[post, pre], got shape {W.shape}")
            if W.dtype.kind not in "fiub":
                raise TypeError(f"W: expected real values, got dtype {W.dtype}")
            m = sps.csc_array(W.astype(np.float64))
        m.eliminate_zeros()
        m.sort_indices()
        if not np.all(np.isfinite(m.data)):
            raise ValueError("W: all entries must be finite (NaN or inf found)")
        self.shape = m.shape
        counts = np.diff(m.indptr)
        self.pre_ids = np.repeat(np.arange(m.shape[1], dtype=np.int64), counts)
        self.post_ids = m.indices.astype(np.int64)
        self.values = np.ascontiguousarray(m.data, dtype=np.float64)

    def _check(self, n_pre, n_post, same, autapses, multapses):
        if self.shape != (n_post, n_pre):
            raise ValueError(f"W: expected shape (post.size, pre.size) = ({n_post}, {n_pre}), got {self.shape} "
                             f"(W is indexed W[post, pre])")
        if same and not autapses and np.any(self.pre_ids == self.post_ids):
            raise ValueError("autapses: W has nonzero diagonal entries (autapses); zero them or pass "
                             "autapses=True")

    def _count(self, n_pre, n_post, same, autapses, multapses):
        return int(self.values.size)

    def _pairs(self, rng, n_pre, n_post, same, autapses, multapses):
        return self.pre_ids, self.post_ids

    def __repr__(self):
        return f"FromMatrix(shape={self.shape}, nnz={self.values.size})"


def _id_array(name, ids):
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of neuron ids, got shape {arr.shape}")
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer neuron ids, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _sample_rows(rng, rows, pool, k, *, distinct, exclude_self):
    """(rows, k) int32 array: for each row r, k ids in [0, pool) drawn uniformly.

    ``distinct``: a uniformly random k-subset (sorted increasingly) instead of k draws with
    replacement. ``exclude_self``: row r never draws id r (it draws from the pool - 1 others).
    """
    assert not exclude_self or rows == pool, "exclude_self: a population onto itself (rows == pool)"
    m = pool - 1 if exclude_self else pool
    if k == 0 or rows == 0:
        return np.empty((rows, k), dtype=np.int32)
    if not distinct:
        out = rng.integers(0, m, size=(rows, k), dtype=np.int32)
    elif k == m:
        out = np.broadcast_to(np.arange(m, dtype=np.int32), (rows, k)).copy()
    elif 2 * k > m:
        # dense: the k smallest of m uniform keys per row (block of rows at a time)
        out = np.empty((rows, k), dtype=np.int32)
        block = max(1, _DENSE_BLOCK // m)
        for a in range(0, rows, block):
            keys = rng.random((min(block, rows - a), m))
            sel = np.argpartition(keys, k - 1, axis=1)[:, :k]
            sel.sort(axis=1)
            out[a:a + block] = sel
    else:
        # sparse: draw k with replacement, redraw repeated values until every row is distinct. The
        # procedure commutes with any relabelling of [0, m), so the final set is a uniform k-subset.
        out = rng.integers(0, m, size=(rows, k), dtype=np.int32)
        todo = np.arange(rows)
        while todo.size:
            sub = out[todo]
            sub.sort(axis=1)
            dup = sub[:, 1:] == sub[:, :-1]
            tail = sub[:, 1:]
            ndup = int(dup.sum())
            if ndup:
                tail[dup] = rng.integers(0, m, size=ndup, dtype=np.int32)
            out[todo] = sub
            todo = todo[dup.any(axis=1)]
    if exclude_self:
        out += out >= np.arange(rows, dtype=np.int32)[:, None]
    return out


def _bernoulli_positions(rng, total, p, chunk=None):
    """Sorted positions in [0, total) each included independently with probability p (int64).

    ``chunk``: geometric gaps drawn per round (default: enough for all with overwhelming probability).
    """
    if total == 0 or p == 0.0:
        return np.empty(0, dtype=np.int64)
    if p == 1.0:
        return np.arange(total, dtype=np.int64)
    if p < 1e-12:  # geometric gaps could overflow int64; few synapses expected
        count = int(rng.binomial(total, p))
        return np.sort(rng.choice(total, size=count, replace=False)).astype(np.int64)
    parts = []
    last = -1
    while True:
        remaining = (total - last - 1) * p
        size = int(remaining + 6.0 * np.sqrt(remaining) + 16) if chunk is None else chunk
        pos = last + np.cumsum(rng.geometric(p, size=size))
        inside = pos < total
        if not inside[-1]:
            parts.append(pos[inside])
            break
        parts.append(pos)
        last = int(pos[-1])
    return np.concatenate(parts)


# ---------------------------------------------------------------------------------------------------
# per-synapse values: scalar, array or distribution

def _spec(name, value, count, rule, *, nonneg):
    """Validate a weight/delay specification at connect time; returns float, float64 array or callable."""
    what = "delays in s (>= 0)" if nonneg else "weights"
    if callable(value) or hasattr(value, "rvs"):
        return value
    if np.ndim(value) == 0:
        if isinstance(value, np.ndarray):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}: expected a number, an array (one value per synapse) or a callable "
                            f"f(rng, size), got {value!r}")
        x = float(value)
        if not np.isfinite(x):
            raise ValueError(f"{name}: must be finite, got {x}")
        if nonneg and x < 0:
            raise ValueError(f"{name}: delays must be >= 0 seconds, got {x}")
        return x
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real {what}, got dtype {arr.dtype}")
    if count is None:
        raise ValueError(f"{name}: {rule!r} makes a random number of synapses, so an array of {what} cannot "
                         f"be aligned with them; pass a scalar or a distribution f(rng, size) -> array")
    if arr.shape != (count,):
        raise ValueError(f"{name}: expected {count} {what} (one per synapse of this projection, in the "
                         f"order {rule!r} generates them), got shape {arr.shape}")
    return _check_values(name, np.array(arr, dtype=np.float64), nonneg)


def _check_values(name, arr, nonneg):
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: all values must be finite (found NaN or inf)")
    if nonneg and arr.size and arr.min() < 0:
        raise ValueError(f"{name}: delays must be >= 0 seconds, found {arr.min()}")
    return arr


def _realise(name, spec, rng, count, nonneg):
    """Scalar stays scalar; arrays are checked; distributions are sampled from rng (count values)."""
    if isinstance(spec, float) or isinstance(spec, np.ndarray):
        return spec
    out = spec.rvs(size=count, random_state=rng) if hasattr(spec, "rvs") else spec(rng, count)
    arr = np.asarray(out)
    if arr.dtype.kind not in "fiu" or arr.shape != (count,):
        raise ValueError(f"{name}: the distribution must return {count} real numbers (shape ({count},)), got "
                         f"shape {arr.shape} dtype {arr.dtype}")
    return _check_values(name, np.array(arr, dtype=np.float64), nonneg)


# ---------------------------------------------------------------------------------------------------
# the builder

@dataclass(frozen=True, eq=False)
class Projection:
    """One ``connect`` call (as recorded by the builder)."""
    pre: Population
    post: Population
    rule: ConnectionRule
    weight: object
    delay: object
    autapses: bool
    multapses: bool

    @property
    def same(self):
        return self.pre is self.post

    def __repr__(self):
        w = self.weight if isinstance(self.weight, float) else type(self.weight).__name__
        d = self.delay if isinstance(self.delay, float) else type(self.delay).__name__
        return (f"Projection({self.pre.name} -> {self.post.name}, {self.rule!r}, weight={w}, delay={d}, "
                f"autapses={self.autapses}, multapses={self.multapses})")


@dataclass(frozen=True, eq=False)
class ProjectionSynapses:
    """The realised synapses of one projection in generation order (see the module docstring).

    Attributes
    ----------
    projection : Projection
    pre, post : int64 arrays
        GLOBAL neuron ids.
    weight : float64 array
        Voltage jumps (units of the threshold).
    delay : float64 array
        Transmission delays in seconds.
    """
    projection: Projection
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    delay: np.ndarray


class NetworkBuilder:
    """Build an explicit network from populations and projections (NEST/Brian2 style).

    Parameters
    ----------
    model : NeuronModel or str
        The default neuron model of the populations (``sp.LIF(v_reset=...)``, ``"qif"``, ...);
        ``population(..., model=...)`` overrides it (LIF and QIF mix; see `sparseprop.Mixed`).
    tau : float
        Default membrane time constant in seconds; ``population(..., tau=...)`` overrides it.
    delay : float
        Default transmission delay in seconds for ``connect`` calls without ``delay=`` (>= 0).

    Examples
    --------
    >>> b = NetworkBuilder(LIF(v_reset=0.5), tau=0.02)
    >>> E = b.population("E", 80, drive=0.0, refractory=0.002)
    >>> I = b.population("I", 20, drive=0.0, refractory=0.002)
    >>> _ = b.connect(E, I, InDegree(8), weight=0.005, delay=0.0015)
    >>> _ = b.connect(I, E, Bernoulli(0.2), weight=lambda rng, size: rng.normal(-0.02, 0.002, size))
    >>> b.poisson(E, rate=200.0, weight=0.005)                     # doctest: +ELLIPSIS
    PoissonInput(...)
    >>> net = b.build(seed=1)
    >>> net.populations
    {'E': (0, 80), 'I': (80, 100)}
    """

    def __init__(self, model, tau=0.01, *, delay=0.0):
        if isinstance(model, str):
            model = make_model(model)
        if not isinstance(model, NeuronModel):
            raise TypeError(f"model: expected a neuron model such as sparseprop.LIF(), got {model!r}")
        self.model = model
        self.tau = v.real("tau", tau, positive=True)
        if np.ndim(delay) != 0 or callable(delay):
            raise TypeError(f"delay: the builder's default delay must be a number of seconds, got {delay!r} "
                            f"(per-synapse delays go to connect(..., delay=...))")
        self.delay = _spec("delay", delay, None, None, nonneg=True)
        self._populations = {}
        self._projections = []
        self._inputs = []
        self._n = 0

    # -- description ------------------------------------------------------------------------------
    @property
    def n(self):
        """Total number of neurons so far."""
        return self._n

    @property
    def populations(self):
        """Dict name -> Population, in creation order."""
        return dict(self._populations)

    @property
    def projections(self):
        """The ``connect`` calls so far (list of Projection)."""
        return list(self._projections)

    @property
    def inputs(self):
        """External inputs added so far."""
        return list(self._inputs)

    def population(self, name, size, drive=0.0, refractory=0.0, *, model=None, tau=None):
        """Add ``size`` neurons as a named population; returns the `Population`.

        Parameters
        ----------
        name : str
            Unique, non-empty.
        size : int
            Number of neurons, > 0.
        drive : float or array (size,)
            Constant input I (units of the threshold per tau); LIF: I > 1 fires on its own, I <= 1 is
            fluctuation-driven.
        refractory : float or array (size,)
            Absolute refractory period in seconds (>= 0).
        model : NeuronModel or str, optional
            This population's neuron model (default: the builder's). Populations with different
            LIF/QIF models make a `sparseprop.Mixed` network.
        tau : float or array (size,), optional
            Membrane time constant(s) in seconds (default: the builder's).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: a population needs a non-empty string name, got {name!r}")
        if name in self._populations:
            raise ValueError(f"name: a population {name!r} already exists; choose another name")
        if isinstance(size, numbers.Integral) and not isinstance(size, bool) and size <= 0:
            raise ValueError(f"size: a population needs at least one neuron, got {size}")
        size = v.integer("size", size, minimum=1, maximum=v.INT32_LIMIT)
        if self._n + size > v.INT32_LIMIT:
            raise ValueError(f"size: the network would exceed {v.INT32_LIMIT} neurons")
        model = self.model if model is None else make_model(model) if isinstance(model, str) else model
        if not isinstance(model, NeuronModel) or isinstance(model, Mixed):
            raise TypeError(f"model: expected a neuron model such as sparseprop.QIF(), got {model!r}")
        tau = self.tau if tau is None else v.per_neuron("tau", tau, size)
        if np.any(np.asarray(tau) <= 0):
            raise ValueError(f"tau: membrane time constants must be > 0 seconds (population {name!r})")
        drive = v.per_neuron("drive", drive, size)
        model._check_drive(drive)
        refractory = v.per_neuron("refractory", refractory, size)
        if np.any(np.asarray(refractory) < 0):
            raise ValueError(f"refractory: must be >= 0 seconds (population {name!r})")
        if isinstance(tau, np.ndarray):
            tau = tau.copy()
        for arr in (drive, refractory, tau):
            if isinstance(arr, np.ndarray):
                arr.flags.writeable = False
        pop = Population(name, self._n, self._n + size, drive, refractory, model, tau)
        self._populations[name] = pop
        self._n += size
        return pop

    def _pop(self, name, pop):
        if isinstance(pop, str):
            if pop not in self._populations:
                raise ValueError(f"{name}: unknown population {pop!r}; known: {list(self._populations)}")
            return self._populations[pop]
        if not isinstance(pop, Population):
            raise TypeError(f"{name}: expected a Population (from builder.population) or its name, got {pop!r}")
        if self._populations.get(pop.name) is not pop:
            raise ValueError(f"{name}: unknown population {pop!r}: it was not created by this builder")
        return pop

    def connect(self, pre, post, rule, weight=None, delay=None, *, autapses=None, multapses=None):
        """Add a projection from ``pre`` to ``post`` drawn by ``rule``.

        Parameters
        ----------
        pre, post : Population or str
        rule : ConnectionRule
            `InDegree`, `OutDegree`, `Bernoulli`, `OneToOne`, `FromArrays`, `FromMatrix`.
        weight : float, array or callable
            Voltage jump per synapse (units of the threshold; < 0 inhibitory): a number, an array with
            one value per synapse in the rule's generation order (module docstring), or a distribution
            ``f(rng, size) -> array`` (or a frozen scipy.stats distribution) sampled from the build's
            Generator. Required, except for `FromMatrix` (default: the matrix entries).
        delay : float, array or callable, optional
            Transmission delay in seconds (>= 0), same forms as ``weight``. Default: the builder's.
        autapses : bool, optional
            Allow a neuron to connect to itself (only when pre is post). Default: the rule's
            (False for InDegree/OutDegree/Bernoulli, True for OneToOne/FromArrays/FromMatrix).
        multapses : bool, optional
            Allow repeated (pre, post) pairs. Default: True for InDegree/OutDegree/FromArrays;
            rules that never repeat a pair reject True.

        Returns
        -------
        Projection
        """
        pre = self._pop("pre", pre)
        post = self._pop("post", post)
        if not isinstance(rule, ConnectionRule):
            hint = (" (sparseprop.FixedOutDegree is the procedural whole-network connectivity; use "
                    "OutDegree(k) here)" if type(rule).__name__ == "FixedOutDegree" else "")
            raise TypeError(f"rule: expected a connection rule such as InDegree(k), OutDegree(k), Bernoulli(p), "
                            f"OneToOne(), FromArrays(pre_ids, post_ids) or FromMatrix(W), got {rule!r}{hint}")
        autapses, multapses = rule._options(autapses, multapses)
        same = pre is post
        rule._check(pre.size, post.size, same, autapses, multapses)
        count = rule._count(pre.size, post.size, same, autapses, multapses)
        if weight is None:
            if not isinstance(rule, FromMatrix):
                raise ValueError("weight: required (a number, an array or a distribution f(rng, size)); only "
                                 "FromMatrix defaults to its matrix entries")
            weight = rule.values
        weight = _spec("weight", weight, count, rule, nonneg=False)
        delay = _spec("delay", self.delay if delay is None else delay, count, rule, nonneg=True)
        proj = Projection(pre, post, rule, weight, delay, autapses, multapses)
        self._projections.append(proj)
        return proj

    def poisson(self, target, rate, weight):
        """Independent Poisson input of ``rate`` Hz into every neuron of ``target``.

        Parameters
        ----------
        target : Population, str or None
            Receiving population (None: all neurons of the network, including populations added later).
        rate : float
            Rate of each neuron's own train, Hz (> 0).
        weight : float
            Voltage jump per event (units of the threshold).

        Returns
        -------
        PoissonInput
        """
        from sparseprop.inputs import PoissonInput

        targets = None if target is None else self._pop("target", target)
        inp = PoissonInput(rate, weight, targets=None if targets is None else (targets.start, targets.stop))
        self._inputs.append(inp)
        return inp

    def add_input(self, inp):
        """Add any external input (``PoissonInput``, ``SpikeTrainInput``) in global neuron ids."""
        from sparseprop.inputs import PoissonInput, SpikeTrainInput

        if not isinstance(inp, (PoissonInput, SpikeTrainInput)):
            raise TypeError(f"inp: expected a PoissonInput or SpikeTrainInput, got {inp!r}")
        self._inputs.append(inp)
        return inp

    # -- realisation ------------------------------------------------------------------------------
    @staticmethod
    def _rng(rng, seed):
        if rng is not None and seed is not None:
            raise ValueError("rng/seed: pass one of them, not both")
        if isinstance(rng, np.random.Generator):
            return rng
        if rng is not None:
            if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
                return np.random.default_rng(v.seed("rng", rng))
            raise TypeError(f"rng: expected a numpy.random.Generator (or use seed=), got {rng!r}")
        return np.random.default_rng(1 if seed is None else v.seed("seed", seed))

    def _generate(self, rng):
        """Yield (projection, pre_local, post_local (broadcastable), weight, delay) per projection."""
        for proj in self._projections:
            pre, post = proj.rule._pairs(rng, proj.pre.size, proj.post.size, proj.same, proj.autapses,
                                         proj.multapses)
            count = int(np.prod(np.broadcast_shapes(np.shape(pre), np.shape(post)), dtype=np.int64))
            w = _realise("weight", proj.weight, rng, count, nonneg=False)
            d = _realise("delay", proj.delay, rng, count, nonneg=True)
            yield proj, pre, post, count, w, d

    def synapses(self, rng=None, *, seed=None):
        """Realise every projection without assembling the network (same random numbers as `build`).

        Returns
        -------
        list of ProjectionSynapses
            One per ``connect`` call, global ids, in generation order.
        """
        out = []
        for proj, pre, post, count, w, d in self._generate(self._rng(rng, seed)):
            pre, post = np.broadcast_arrays(pre, post)
            out.append(ProjectionSynapses(
                proj, pre.astype(np.int64).ravel() + proj.pre.start, post.astype(np.int64).ravel() + proj.post.start,
                np.broadcast_to(np.asarray(w, dtype=np.float64), (count,)).copy(),
                np.broadcast_to(np.asarray(d, dtype=np.float64), (count,)).copy()))
        return out

    def build(self, rng=None, *, seed=None):
        """Draw all projections and assemble the `Network`.

        Parameters
        ----------
        rng : numpy.random.Generator or int, optional
            Source of all random numbers (an int is a seed).
        seed : int, optional
            Seed for ``numpy.random.default_rng`` (default 1 when neither is given).

        Returns
        -------
        Network
            ``connectivity`` is a `SparseConnectivity` (CSR by presynaptic neuron, targets sorted by id,
            per-synapse ``delays`` only when they differ), ``populations`` = {name: (start, stop)},
            per-neuron drive/refractory (scalars when uniform) and the inputs.
        """
        if not self._populations:
            raise ValueError("populations: add at least one population (builder.population(name, size)) "
                             "before build()")
        rng = self._rng(rng, seed)
        n = self._n
        indptr, indices, weights, delays, delay = _assemble(n, self._generate(rng), self.delay)
        conn = SparseConnectivity(indptr, indices, weights, delays=delays)
        pops = list(self._populations.values())
        drive = _uniform_or_array([p.drive for p in pops], [p.size for p in pops])
        refractory = _uniform_or_array([p.refractory for p in pops], [p.size for p in pops])
        tau = _uniform_or_array([p.tau for p in pops], [p.size for p in pops])
        model = pops[0].model
        if any(p.model != model for p in pops):
            model = Mixed([(p.model, p.size) for p in pops])
        return Network(model, n, drive, tau, conn, delay=delay, refractory=refractory,
                       inputs=list(self._inputs), populations={p.name: (p.start, p.stop) for p in pops})

    def __repr__(self):
        pops = ", ".join(f"{p.name}={p.size}" for p in self._populations.values())
        return (f"NetworkBuilder({self.model!r}, tau={self.tau}, populations=[{pops}], "
                f"projections={len(self._projections)}, inputs={len(self._inputs)})")


def _uniform_or_array(values, sizes):
    """Scalar when every neuron has the same value, else the concatenated float64 array."""
    if all(np.ndim(x) == 0 for x in values):
        if all(x == values[0] for x in values):
            return float(values[0])
    arr = np.concatenate([np.broadcast_to(np.asarray(x, dtype=np.float64), (s,)) for x, s in zip(values, sizes)])
    if np.all(arr == arr[0]):
        return float(arr[0])
    return arr


def _assemble(n, generated, default_delay):
    """One global CSR by presynaptic neuron from the per-projection pairs.

    Each synapse gets the int64 code ``pre * n + post`` (global ids). When ``n**2 * 2**b`` fits into 63
    bits (b bits for the synapse index) the key ``code << b | index`` is unique, so one in-place value
    sort orders synapses by (pre, post, generation) with no permutation array; otherwise a stable
    argsort of the codes does the same with more memory.
    """
    codes = []
    wspec, dspec, offsets = [], [], [0]
    for proj, pre, post, count, w, d in generated:
        shape = np.broadcast_shapes(np.shape(pre), np.shape(post))
        c = np.empty(shape, dtype=np.int64)
        np.multiply(pre, np.int64(n), out=c, casting="unsafe")
        c += post
        c += np.int64(proj.pre.start) * n + proj.post.start
        codes.append(c.reshape(-1))
        del c
        wspec.append(w)
        dspec.append(d)
        offsets.append(offsets[-1] + count)
    nnz = offsets[-1]
    offsets = np.asarray(offsets, dtype=np.int64)

    # one delay for every synapse? (projections without synapses have no say)
    common, uniform = None, True
    for x, a, b in zip(dspec, offsets[:-1], offsets[1:]):
        if a == b:
            continue
        x0 = x if isinstance(x, float) else float(x[0])
        if (common is not None and x0 != common) or (isinstance(x, np.ndarray) and not np.all(x == x0)):
            uniform = False
            break
        common = x0
    delay = (default_delay if common is None else common) if uniform else 0.0

    key = codes[0] if len(codes) == 1 else (np.concatenate(codes) if codes else np.empty(0, dtype=np.int64))
    del codes
    bits = max(1, int(nnz - 1).bit_length()) if nnz > 1 else 1
    packed = (n * n) << bits <= (1 << _PACK_LIMIT) - 1
    if packed:
        key <<= bits
        for a in range(0, nnz, _CHUNK):
            b = min(a + _CHUNK, nnz)
            key[a:b] |= np.arange(a, b, dtype=np.int64)
        key.sort()
        order = None
        starts = np.arange(n + 1, dtype=np.int64) * n << bits
    else:
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = np.arange(n + 1, dtype=np.int64) * n
    indptr = np.searchsorted(key, starts).astype(np.int64)

    def table(specs):
        if all(isinstance(x, float) for x in specs):
            return np.array(specs, dtype=np.float64), None
        full = np.empty(nnz, dtype=np.float64)
        for x, a, b in zip(specs, offsets[:-1], offsets[1:]):
            full[a:b] = x
        return None, full

    wtab, wfull = table(wspec)
    del wspec
    dtab, dfull = (None, None) if uniform else table(dspec)
    del dspec
    indices = np.empty(nnz, dtype=np.int32)
    weights = np.empty(nnz, dtype=np.float64)
    delays = None if uniform else np.empty(nnz, dtype=np.float64)
    mask = np.int64((1 << bits) - 1)
    for a in range(0, nnz, _CHUNK):
        b = min(a + _CHUNK, nnz)
        if packed:
            code = key[a:b] >> bits
            idx = key[a:b] & mask
        else:
            code = key[a:b]
            idx = order[a:b]
        indices[a:b] = code % n
        pid = None
        if wfull is None or (not uniform and dfull is None):
            pid = np.searchsorted(offsets, idx, side="right") - 1
        weights[a:b] = wtab[pid] if wfull is None else wfull[idx]
        if not uniform:
            delays[a:b] = dtab[pid] if dfull is None else dfull[idx]
    return indptr, indices, weights, delays, delay


# ---------------------------------------------------------------------------------------------------
# Brunel (2000)

BRUNEL_STATES = {"SR": (3.0, 2.0), "SIfast": (6.0, 4.0), "AI": (5.0, 2.0), "SIslow": (4.5, 0.9)}
"""Brunel (2000) Fig. 8 states: name -> (g, eta) (relative inhibition, external rate / nu_thr).
SR: synchronous regular; SIfast: synchronous irregular, fast oscillation; AI: asynchronous
irregular; SIslow: synchronous irregular, slow oscillation."""


def brunel_parameters(state="AI", n_e=10000, n_i=2500, epsilon=0.1, j_mv=0.1, g=None, eta=None,
                      theta_mv=20.0, v_reset_mv=10.0, tau=0.02):
    """Derived parameters of the Brunel (2000) model A (see `brunel_network`).

    Returns
    -------
    dict
        ``g, eta, c_e, c_i`` (in-degrees), ``j`` (= j_mv / theta_mv, units of the threshold),
        ``v_reset`` (= v_reset_mv / theta_mv), ``nu_thr_hz`` (= theta / (J C_E tau)),
        ``nu_ext_hz`` (= eta nu_thr, per external source), ``poisson_rate_hz`` (= C_E nu_ext, per neuron).
    """
    if state is not None:
        key = {k.lower(): k for k in BRUNEL_STATES}.get(str(state).lower())
        if key is None:
            raise ValueError(f"state: unknown Brunel state {state!r}; choose one of {list(BRUNEL_STATES)} "
                             f"or pass state=None with g= and eta=")
        g0, eta0 = BRUNEL_STATES[key]
        g = g0 if g is None else g
        eta = eta0 if eta is None else eta
    elif g is None or eta is None:
        raise ValueError("state: with state=None pass both g= and eta=")
    g = v.real("g", g)
    eta = v.real("eta", eta)
    if g < 0:
        raise ValueError(f"g: relative inhibitory strength must be >= 0, got {g}")
    if eta < 0:
        raise ValueError(f"eta: external rate relative to nu_thr must be >= 0, got {eta}")
    n_e = v.integer("n_e", n_e, minimum=2, maximum=v.INT32_LIMIT)
    n_i = v.integer("n_i", n_i, minimum=1, maximum=v.INT32_LIMIT)
    epsilon = v.real("epsilon", epsilon)
    if not 0.0 < epsilon <= 1.0:
        raise ValueError(f"epsilon: connection probability must be in (0, 1], got {epsilon}")
    j_mv = v.real("j_mv", j_mv, positive=True)
    theta_mv = v.real("theta_mv", theta_mv, positive=True)
    v_reset_mv = v.real("v_reset_mv", v_reset_mv)
    if v_reset_mv >= theta_mv:
        raise ValueError(f"v_reset_mv: the reset must lie below the threshold theta_mv = {theta_mv}, got {v_reset_mv}")
    tau = v.real("tau", tau, positive=True)
    c_e = int(round(epsilon * n_e))
    c_i = int(round(epsilon * n_i))
    if c_e < 1:
        raise ValueError(f"epsilon: C_E = epsilon * n_e = {epsilon * n_e:g} rounds to 0; raise epsilon or n_e")
    nu_thr = theta_mv / (j_mv * c_e * tau)
    nu_ext = eta * nu_thr
    return {"g": g, "eta": eta, "n_e": n_e, "n_i": n_i, "epsilon": epsilon, "c_e": c_e, "c_i": c_i,
            "j": j_mv / theta_mv, "v_reset": v_reset_mv / theta_mv, "tau": tau, "nu_thr_hz": nu_thr,
            "nu_ext_hz": nu_ext, "poisson_rate_hz": c_e * nu_ext}


def brunel_network(state="AI", n_e=10000, n_i=2500, epsilon=0.1, j_mv=0.1, g=None, eta=None, delay=0.0015,
                   refractory=0.002, theta_mv=20.0, v_reset_mv=10.0, tau=0.02, seed=1):
    """Brunel (2000) model A: sparsely connected excitatory and inhibitory LIF neurons, delta synapses.

    Voltages are normalised by the threshold theta (threshold 1, rest 0, reset
    ``v_reset_mv / theta_mv`` = 0.5, EPSP J = ``j_mv / theta_mv`` = 0.005 by default). Every neuron
    receives C_E = round(epsilon n_e) excitatory synapses of weight J and C_I = round(epsilon n_i)
    inhibitory ones of weight -g J (fixed in-degree, multapses allowed, no autapses), no DC drive,
    and C_E independent external Poisson sources of rate nu_ext = eta nu_thr each, i.e. one
    ``PoissonInput`` of rate C_E nu_ext per neuron with weight J, where
    nu_thr = theta / (J C_E tau) (10 Hz with the defaults). All synapses have the same ``delay``.

    Parameters
    ----------
    state : str or None
        A key of `BRUNEL_STATES` ("SR", "SIfast", "AI", "SIslow") giving (g, eta); explicit ``g`` /
        ``eta`` override it. None requires both.
    n_e, n_i : int
        Numbers of excitatory (ids ``0..n_e-1``, population "E") and inhibitory (population "I") neurons.
    epsilon : float
        Connection probability, sets the in-degrees C_E = epsilon n_e, C_I = epsilon n_i.
    j_mv : float
        EPSP amplitude J in mV.
    g, eta : float, optional
        Relative inhibition and external rate in units of nu_thr.
    delay : float
        Transmission delay D in seconds (1.5 ms).
    refractory : float
        Absolute refractory period in seconds (2 ms).
    theta_mv, v_reset_mv : float
        Threshold and reset in mV above rest (20, 10).
    tau : float
        Membrane time constant in seconds (20 ms).
    seed : int
        Connectivity realisation.

    Returns
    -------
    Network
        With populations {"E": (0, n_e), "I": (n_e, n_e + n_i)}. `brunel_parameters` gives the
        derived quantities (C_E, C_I, J, nu_thr, ...).

    References
    ----------
    N. Brunel, "Dynamics of sparsely connected networks of excitatory and inhibitory spiking
    neurons", J. Comput. Neurosci. 8, 183-208 (2000).
    """
    p = brunel_parameters(state, n_e, n_i, epsilon, j_mv, g, eta, theta_mv, v_reset_mv, tau)
    b = NetworkBuilder(LIF(v_reset=p["v_reset"]), tau=p["tau"], delay=delay)
    E = b.population("E", p["n_e"], drive=0.0, refractory=refractory)
    I = b.population("I", p["n_i"], drive=0.0, refractory=refractory)
    j = p["j"]
    for post in (E, I):
        b.connect(E, post, InDegree(p["c_e"]), weight=j, autapses=False, multapses=True)
        b.connect(I, post, InDegree(p["c_i"]), weight=-p["g"] * j, autapses=False, multapses=True)
    if p["poisson_rate_hz"] > 0:
        b.poisson(None, rate=p["poisson_rate_hz"], weight=j)
    return b.build(seed=seed)


# ---------------------------------------------------------------------------------------------------
# export / import

NETWORK_FORMAT_VERSION = 1


def _split(obj, path, arrays):
    """JSON-able tree with arrays replaced by {"__array__": key} (arrays collected in ``arrays``)."""
    if isinstance(obj, dict):
        out = {}
        for k, val in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"network: cannot export a non-string key {k!r}")
            out[k] = _split(val, f"{path}{k}.", arrays)
        return out
    if isinstance(obj, (list, tuple)):
        return [_split(x, f"{path}{i}.", arrays) for i, x in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"network: cannot export array {path[:-1]!r} of dtype {obj.dtype} without pickle")
        key = path[:-1]
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"network: cannot export {path[:-1]!r} of type {type(obj).__name__}")


def _join(obj, arrays):
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        return {k: _join(val, arrays) for k, val in obj.items()}
    if isinstance(obj, list):
        return [_join(x, arrays) for x in obj]
    return obj


def export_network(net, path):
    """Write a network to ``.npz`` (arrays + JSON metadata, readable with ``allow_pickle=False``).

    Arrays (names are paths in ``net.to_dict()``): ``connectivity.indptr`` (int64),
    ``connectivity.indices`` (int32), ``connectivity.weights`` (float64), ``connectivity.delays``
    (float64 s, if per-synapse), ``drive`` / ``refractory`` (if per-neuron), input arrays. The
    array ``metadata`` holds a JSON document: format, version, the network description with every
    array replaced by ``{"__array__": name}`` (model name and parameters, n, tau in s, delay in s,
    populations, inputs), ``describe()`` and the network's ``fingerprint()``.

    Parameters
    ----------
    net : Network
    path : str or path-like
        Output file (NumPy appends ``.npz`` when missing).

    Returns
    -------
    str
        The path written.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net: expected a sparseprop Network, got {type(net).__name__}")
    arrays = {}
    tree = _split(net.to_dict(), "", arrays)
    if "metadata" in arrays:
        raise ValueError("network: an array path collides with the reserved name 'metadata'")
    header = {"format": "sparseprop.network", "version": NETWORK_FORMAT_VERSION,
              "fingerprint": net.fingerprint(), "network": tree, "describe": net.describe()}
    path = str(path)
    np.savez(path, metadata=np.array(json.dumps(header, default=_json_default)), **arrays)
    return path if path.endswith(".npz") else path + ".npz"


def load_network(path):
    """Read a network written by `export_network` (never unpickles).

    Raises ValueError when the file is not a sparseprop network, is from a newer format, or does not
    rebuild to the recorded fingerprint.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"path: cannot read a sparseprop network from {path!r}: {exc}") from exc
    try:
        header = json.loads(str(arrays.pop("metadata")))
        if header.get("format") != "sparseprop.network":
            raise KeyError("format")
        if header["version"] > NETWORK_FORMAT_VERSION:
            raise ValueError(f"path: network format version {header['version']} is newer than this sparseprop "
                             f"understands ({NETWORK_FORMAT_VERSION}); upgrade sparseprop")
        net = Network.from_dict(_join(header["network"], arrays))
    except KeyError as exc:
        raise ValueError(f"path: {path!r} is not a sparseprop network file (missing {exc})") from None
    if net.fingerprint() != header["fingerprint"]:
        raise ValueError(f"path: {path!r} rebuilds to fingerprint {net.fingerprint()}, the file recorded "
                         f"{header['fingerprint']} (corrupted file or incompatible sparseprop version)")
    return net
