"""Argument checks at the Python boundary: every error names the parameter and says what is expected."""
import numbers

import numpy as np

INT32_LIMIT = 2**31 - 2


def integer(name, value, *, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {value}")
    return value


def seed(name, value):
    return integer(name, value, minimum=0, maximum=2**64 - 1)


def real(name, value, *, positive=False, allow_inf=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise ValueError(f"{name}: must be finite, got {value}")
    if positive and not value > 0:
        raise ValueError(f"{name}: must be > 0, got {value}")
    return value


def per_neuron(name, value, n):
    """A scalar or an (n,) float64 array of finite values; returns float or contiguous array."""
    if np.ndim(value) == 0:
        return real(name, value)
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or shape ({n},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: all values must be finite (found NaN or inf)")
    return arr


def choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name}: choose one of {sorted(options)}, got {value!r}")
    return value
