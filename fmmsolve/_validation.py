"""Input checks shared by the public entry points: every error names the argument and what was
expected, so a user sees ``sources must have shape (n, 3)`` rather than an index error deep in
compiled code."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_points", "as_densities", "as_dipoles", "resolve_real_dtype", "check_positive_int"]

_REAL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def resolve_real_dtype(dtype, *arrays) -> np.dtype:
    """The real working dtype: ``dtype`` if given, else float32 when every array is float32
    (or complex64).

    Parameters
    ----------
    dtype : None, np.float32 or np.float64
        Explicit choice; anything else raises ``ValueError``.
    *arrays : array_like or None
        Inputs whose dtypes decide when ``dtype`` is None (None entries are ignored).
    """
    if dtype is not None:
        dt = np.dtype(dtype)
        if dt not in _REAL_DTYPES:
            raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
        return dt
    given = [np.asarray(a).dtype for a in arrays if a is not None]
    if given and all(d in (np.float32, np.complex64) for d in given):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_points(points, name: str, dtype=np.float64, allow_empty: bool = False) -> np.ndarray:
    """Validate a point array and return it as a C-contiguous ``(n, 3)`` array of ``dtype``.

    Raises ``ValueError`` naming ``name`` for a wrong shape, a non-numeric or complex dtype,
    no points (unless ``allow_empty``) or a NaN/inf coordinate.
    """
    arr = np.asarray(points)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n, 3), got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: at least one point is needed")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return arr


def as_densities(values, n: int, name: str, dtype) -> np.ndarray:
    """Validate densities for ``n`` sources: shape ``(n,)`` or ``(n, m)``, finite, cast to ``dtype``.

    A complex input for a real ``dtype`` raises ``ValueError`` rather than dropping the
    imaginary part.
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.dtype.kind == "c" and np.dtype(dtype).kind != "c":
        raise ValueError(f"{name} is complex but the computation is real ({np.dtype(dtype)})")
    if arr.ndim not in (1, 2) or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, m), got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_dipoles(values, n: int, name: str, dtype) -> np.ndarray:
    """Validate dipole densities for ``n`` sources: shape ``(n, 3)`` or ``(n, m, 3)``, finite,
    cast to ``dtype`` (complex values for a real ``dtype`` raise, as in :func:`as_densities`)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.dtype.kind == "c" and np.dtype(dtype).kind != "c":
        raise ValueError(f"{name} is complex but the computation is real ({np.dtype(dtype)})")
    if arr.ndim not in (2, 3) or arr.shape[0] != n or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape ({n}, 3) or ({n}, m, 3), got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_columns(charges, dipoles) -> None:
    """Raise ``ValueError`` unless at least one of ``charges`` (n,) / (n, m) and ``dipoles``
    (n, 3) / (n, m, 3) is given and, if both are, they have the same columns."""
    if charges is None and dipoles is None:
        raise ValueError("give charges, dipoles or both; got neither")
    if charges is not None and dipoles is not None \
            and np.shape(charges)[1:] != np.shape(dipoles)[1:-1]:
        raise ValueError(f"charges of shape {np.shape(charges)} and dipoles of shape "
                         f"{np.shape(dipoles)} disagree: use (n,) with (n, 3), or (n, m) with "
                         f"(n, m, 3)")


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int, raising ``ValueError`` naming ``name`` unless it is >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
