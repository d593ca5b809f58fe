"""First-order optimisers over a dict of named float64 arrays, and global-norm gradient clipping.

Parameters are a ``dict`` ``name -> numpy.ndarray`` (float64), updated **in place** by
``optimizer.step(params, grads)``; ``grads`` has the same names (a subset is allowed: parameters
without a gradient are left alone, their optimiser state untouched) and shapes.

Data layout and invariants
--------------------------
* An optimiser's state is per parameter name: "slots" (arrays shaped like the parameter: Adam's
  ``m`` and ``v``, SGD's momentum buffer) and a per-parameter step count. Slots are created (zeros)
  at the first step that has a gradient for that name.
* ``state_dict()`` is plain data: ``{"type", "hyper", "steps", "slots"}`` where ``hyper`` and
  ``steps`` are JSON-serialisable and ``slots`` is ``{slot: {name: array}}`` (copies).
  ``load_state_dict`` restores it exactly, so a checkpointed run continues bit for bit.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["Optimizer", "Adam", "DecayingAdam", "SGD", "clip_grad_norm", "global_norm"]


def _real(name, value, *, minimum=None, positive=False, below=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    value = float(value)
    if positive and not value > 0:
        raise ValueError(f"{name}: must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if below is not None and not value < below:
        raise ValueError(f"{name}: must be < {below}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {value}")
    return value


def _check(params, grads):
    if not isinstance(params, dict):
        raise ValueError(f"params: expected a dict of name -> float64 array, got {type(params).__name__}")
    if not isinstance(grads, dict):
        raise ValueError(f"grads: expected a dict of name -> array, got {type(grads).__name__}")
    out = {}
    for name, g in grads.items():
        if name not in params:
            raise ValueError(f"grads[{name!r}]: no parameter of that name (params has {sorted(params)})")
        p = params[name]
        if not isinstance(p, np.ndarray) or p.dtype != np.float64:
            raise ValueError(f"params[{name!r}]: expected a float64 numpy array (updated in place), "
                             f"got {type(p).__name__} {getattr(p, 'dtype', '')}")
        g = np.asarray(g, dtype=np.float64)
        if g.shape != p.shape:
            raise ValueError(f"grads[{name!r}]: shape {g.shape} does not match the parameter's {p.shape}")
        if not np.all(np.isfinite(g)):
            raise ValueError(f"grads[{name!r}]: contains NaN or inf")
        out[name] = g
    return out


class Optimizer:
    """Base class: per-name slots and step counts, ``state_dict`` / ``load_state_dict``."""

    slot_names: tuple = ()

    def __init__(self, lr):
        self.lr = _real("lr", lr, positive=True)
        self.steps: dict[str, int] = {}
        self.slots: dict[str, dict[str, np.ndarray]] = {s: {} for s in self.slot_names}

    def hyper(self) -> dict:
        """Hyperparameters as a JSON-serialisable dict."""
        raise NotImplementedError

    def step(self, params, grads):
        """Update ``params`` in place from ``grads`` (same names and shapes).

        Parameters
        ----------
        params : dict of str -> numpy.ndarray (float64)
            Parameters, modified in place.
        grads : dict of str -> array_like
            Gradients of the loss (finite), for all or some of the parameters.
        """
        grads = _check(params, grads)
        for name, g in grads.items():
            p = params[name]
            if name not in self.steps:
                self.steps[name] = 0
                for s in self.slot_names:
                    self.slots[s][name] = np.zeros_like(p)
            self.steps[name] += 1
            self._update(name, p, g, self.steps[name])

    def _update(self, name, p, g, t):
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Plain-data state: ``{"type", "hyper", "steps", "slots"}`` (arrays copied)."""
        return {"type": type(self).__name__, "hyper": self.hyper(), "steps": dict(self.steps),
                "slots": {s: {k: v.copy() for k, v in d.items()} for s, d in self.slots.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (hyperparameters included)."""
        if not isinstance(state, dict) or state.get("type") != type(self).__name__:
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state: expected a {type(self).__name__} state_dict, got {got!r}")
        fresh = type(self)(**state["hyper"])
        steps = {str(k): int(v) for k, v in state["steps"].items()}
        slots = state["slots"]
        if set(slots) != set(self.slot_names) or any(set(slots[s]) != set(steps) for s in self.slot_names):
            raise ValueError(f"state: slots {sorted(slots)} / names do not match {self.slot_names} / {sorted(steps)}")
        self.__dict__.update(fresh.__dict__)
        self.steps = steps
        self.slots = {s: {k: np.array(v, dtype=np.float64) for k, v in slots[s].items()} for s in self.slot_names}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper().items())
        return f"{type(self).__name__}({args})"


class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015) with optional L2 weight decay.

    Per parameter, at its step ``t = 1, 2, ...`` with gradient ``g`` (plus ``weight_decay * p``):

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
        p \leftarrow p - \mathrm{lr}\, \frac{m / (1 - \beta_1^t)}{\sqrt{v / (1 - \beta_2^t)} + \epsilon}.

    ``weight_decay`` is the classical L2 penalty added to the gradient (as ``torch.optim.Adam``), not
    AdamW's decoupled decay.

    Parameters
    ----------
    lr : float, default 1e-3
        Step size, ``> 0`` (units of the parameters).
    betas : tuple of float, default (0.9, 0.999)
        Decay rates of the first and second moment estimates, each in ``[0, 1)``.
    eps : float, default 1e-8
        Added to the denominator, ``> 0`` (units of the gradient).
    weight_decay : float, default 0
        L2 coefficient, ``>= 0``.
    """

    slot_names = ("m", "v")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}") from None
        self.betas = (_real("betas[0]", b1, minimum=0.0, below=1.0), _real("betas[1]", b2, minimum=0.0, below=1.0))
        self.eps = _real("eps", eps, positive=True)
        self.weight_decay = _real("weight_decay", weight_decay, minimum=0.0)

    def hyper(self):
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def _update(self, name, p, g, t):
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p
        m, v = self.slots["m"][name], self.slots["v"][name]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        m_hat = m / (1.0 - b1 ** t)
        v_hat = v / (1.0 - b2 ** t)
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class DecayingAdam(Adam):
    """Adam whose step size decays exponentially: ``lr * decay ** ((t - 1) // decay_steps)`` at the
    parameter's step ``t = 1, 2, ...`` (e.g. ``decay_steps`` = steps per epoch: a factor ``decay``
    per epoch). Its state is plain data like `Adam`'s, so a checkpointed run resumes exactly.

    Parameters
    ----------
    lr, betas, eps, weight_decay
        As `Adam`; ``lr`` is the initial step size.
    decay : float, default 1
        Factor per ``decay_steps`` steps, in ``(0, 1]``.
    decay_steps : int, default 1
        Steps between decays, ``>= 1``.
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decay=1.0, decay_steps=1):
        super().__init__(lr, betas, eps, weight_decay)
        self.decay = _real("decay", decay, positive=True, maximum=1.0)
        if isinstance(decay_steps, bool) or not isinstance(decay_steps, numbers.Integral) or decay_steps < 1:
            raise ValueError(f"decay_steps: expected an integer >= 1, got {decay_steps!r}")
        self.decay_steps = int(decay_steps)

    def hyper(self):
        return dict(super().hyper(), decay=self.decay, decay_steps=self.decay_steps)

    def lr_at(self, t):
        """Step size at step ``t`` (1-based)."""
        return self.lr * self.decay ** ((t - 1) // self.decay_steps)

    def _update(self, name, p, g, t):
        lr = self.lr
        self.lr = self.lr_at(t)
        try:
            super()._update(name, p, g, t)
        finally:
            self.lr = lr


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional (heavy-ball) momentum and L2 weight decay.

    With ``g`` the gradient (plus ``weight_decay * p``): ``b <- momentum * b + g`` (``b = g`` at the
    first step), ``p <- p - lr * b`` (the ``torch.optim.SGD`` convention); ``momentum = 0`` is plain
    gradient descent.

    Parameters
    ----------
    lr : float
        Step size, ``> 0``.
    momentum : float, default 0
        In ``[0, 1)``.
    weight_decay : float, default 0
        L2 coefficient, ``>= 0``.
    """

    slot_names = ("momentum_buffer",)

    def __init__(self, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = _real("momentum", momentum, minimum=0.0, below=1.0)
        self.weight_decay = _real("weight_decay", weight_decay, minimum=0.0)

    def hyper(self):
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay}

    def _update(self, name, p, g, t):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            b = self.slots["momentum_buffer"][name]
            if t == 1:
                b[...] = g
            else:
                b *= self.momentum
                b += g
            g = b
        p -= self.lr * g


def global_norm(grads) -> float:
    """Euclidean norm of all gradient arrays taken together, ``sqrt(sum_k ||g_k||^2)``."""
    if not isinstance(grads, dict):
        raise ValueError(f"grads: expected a dict of name -> array, got {type(grads).__name__}")
    total = 0.0
    for name, g in grads.items():
        g = np.asarray(g, dtype=np.float64)
        if not np.all(np.isfinite(g)):
            raise ValueError(f"grads[{name!r}]: contains NaN or inf")
        total += float(np.dot(g.ravel(), g.ravel()))
    return math.sqrt(total)


def clip_grad_norm(grads, max_norm) -> float:
    """Scale all gradients by one factor so that their global norm is at most ``max_norm``.

    If the global norm ``G`` (:func:`global_norm`) exceeds ``max_norm``, every array is multiplied in
    place by ``max_norm / G`` (the direction is kept, the new norm is ``max_norm`` up to rounding);
    otherwise nothing changes.

    Parameters
    ----------
    grads : dict of str -> numpy.ndarray (float64)
        Gradients, modified in place.
    max_norm : float
        ``> 0``, units of the gradient.

    Returns
    -------
    float
        The global norm before clipping.
    """
    max_norm = _real("max_norm", max_norm, positive=True)
    norm = global_norm(grads)
    for name, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype != np.float64 or not g.flags.writeable:
            raise ValueError(f"grads[{name!r}]: expected a writable float64 numpy array (scaled in place)")
    if norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm
