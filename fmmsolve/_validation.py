"""Input checks shared by the public entry points: every error names the argument and what was
expected, so a user sees ``sources must have shape (n, 3)`` rather than an index error deep in
compiled code, or NumPy's "inhomogeneous shape" or "data type not understood"."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_array", "as_densities", "as_dipoles", "as_points", "check_columns", "check_flag",
           "check_positive_int", "reject_ragged_or_bool", "resolve_real_dtype"]

_REAL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_array(values, name: str, expected: str) -> np.ndarray:
    """``np.asarray(values)``, with NumPy's conversion errors (ragged nested lists, objects that
    are not arrays) raised as ``ValueError`` naming ``name`` and ``expected`` (say "shape
    (n, 3)")."""
    try:
        return np.asarray(values)
    except (ValueError, TypeError) as exc:
        got = ("a ragged sequence (nested lists of different lengths)"
               if "inhomogeneous" in str(exc) else f"an object NumPy cannot convert ({exc})")
        raise ValueError(f"{name} must be an array of {expected}, got {got}") from None


def reject_ragged_or_bool(points, name: str) -> None:
    """For points that go on to another library's checks (scikit-learn's ``validate_data``,
    which would convert bools and pass on NumPy's ragged-shape message): raise ``ValueError``
    naming ``name`` for a ragged nested sequence or bool coordinates; leave everything else
    (data frames, sparse matrices, ...) to those checks."""
    if isinstance(points, (list, tuple)):
        points = as_array(points, name, "shape (n, 3)")
    if getattr(getattr(points, "dtype", None), "kind", None) == "b":
        raise ValueError(f"{name} must be a real numeric (integer or float) array of "
                         f"coordinates, got dtype bool")


def check_flag(value, name: str) -> bool:
    """Return ``value`` as a bool, raising ``TypeError`` naming ``name`` unless it is ``True``,
    ``False`` or a NumPy bool (``"no"`` or ``0`` would otherwise be read by truth value)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def resolve_real_dtype(dtype, *arrays) -> np.dtype:
    """The real working dtype: ``dtype`` if given, else float32 when every array is float32
    (or complex64), float64 otherwise (float64, integer, mixed float32 and float64: NumPy's
    ``result_type``, widened to float64 where it is not float32). The one rule of every entry
    point, applied to the arrays it receives (points, and densities where they come with them).

    Parameters
    ----------
    dtype : None, np.float32 or np.float64
        Explicit choice; anything else raises ``ValueError``.
    *arrays : array_like or None
        Inputs whose dtypes decide when ``dtype`` is None (None entries are ignored).
    """
    if dtype is not None:
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError):  # "data type 'bogus' not understood"
            dt = np.dtype(object)
        if dt not in _REAL_DTYPES:
            raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
        return dt
    # an array NumPy cannot build is skipped here: its own check names it
    given = [_dtype_or_none(a) for a in arrays if a is not None]
    if given and all(d in (np.float32, np.complex64) for d in given):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _dtype_or_none(values):
    try:
        return np.asarray(values).dtype
    except (ValueError, TypeError):
        return None


#: Largest coordinate magnitude accepted, by the precision that pair distances are computed in:
#: squared distances between points within +-1e150 stay below 1.2e301 (float64 overflows at
#: 1.8e308), within +-1e18 below 1.2e37 (float32 overflows at 3.4e38).
MAX_COORDINATE = {np.dtype(np.float64): 1e150, np.dtype(np.float32): 1e18}


def as_points(points, name: str, dtype=np.float64, allow_empty: bool = False,
              precision=None) -> np.ndarray:
    """Validate a point array and return it as a C-contiguous ``(n, 3)`` array of ``dtype``.

    Raises ``ValueError`` naming ``name`` for a ragged sequence, a wrong shape, a bool,
    non-numeric or complex dtype, no points (unless ``allow_empty``), a NaN/inf coordinate, or
    a coordinate beyond :data:`MAX_COORDINATE` of ``precision`` (the real dtype the distances
    are computed in; default ``dtype``), where squared distances would overflow and every
    sum would silently be 0 or NaN. Integer coordinates are accepted and converted.
    """
    arr = as_array(points, name, "shape (n, 3)")
    if arr.dtype.kind not in "iuf":  # bools are masks, not coordinates
        raise ValueError(f"{name} must be a real numeric (integer or float) array of "
                         f"coordinates, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n, 3), got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: at least one point is needed")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    precision = np.dtype(dtype if precision is None else precision)
    limit = MAX_COORDINATE[precision]
    largest = float(np.max(np.abs(arr), initial=0.0))
    if largest > limit:
        raise ValueError(
            f"{name} has coordinates of magnitude up to {largest:.3g}: fmmsolve computes "
            f"squared distances in {precision.name}, which overflow beyond +-{limit:.0e}, so "
            f"coordinates must lie within [-{limit:.0e}, {limit:.0e}]. Rescale the problem: "
            f"the kernels are homogeneous (for Laplace, phi(s x) = phi(x) / s)")
    return np.ascontiguousarray(arr, dtype=dtype)


def as_densities(values, n: int, name: str, dtype, components: int = 1) -> np.ndarray:
    """Validate densities for ``n`` sources: shape ``(n,)`` or ``(n, m)``, finite, cast to
    ``dtype``; for a kernel of ``components > 1`` values per point, ``(n, components)`` or
    ``(n, m, components)``.

    A complex input for a real ``dtype`` raises ``ValueError`` rather than dropping the
    imaginary part.
    """
    expected = f"shape ({n},) or ({n}, m)" if components == 1 else \
        f"shape ({n}, {components}) or ({n}, m, {components})"
    arr = as_array(values, name, expected)
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.dtype.kind == "c" and np.dtype(dtype).kind != "c":
        raise ValueError(f"{name} is complex but the computation is real ({np.dtype(dtype)})")
    ndims = (1, 2) if components == 1 else (2, 3)
    if arr.ndim not in ndims or arr.shape[0] != n \
            or (components > 1 and arr.shape[-1] != components):
        raise ValueError(f"{name} must have {expected}, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_dipoles(values, n: int, name: str, dtype) -> np.ndarray:
    """Validate dipole densities for ``n`` sources: shape ``(n, 3)`` or ``(n, m, 3)``, finite,
    cast to ``dtype`` (complex values for a real ``dtype`` raise, as in :func:`as_densities`)."""
    return as_densities(values, n, name, dtype, components=3)


def check_columns(charges, dipoles, charges_name: str = "charges") -> None:
    """Raise ``ValueError`` unless at least one of ``charges`` (n,) / (n, m) and ``dipoles``
    (n, 3) / (n, m, 3) is given and, if both are, they have the same columns. ``charges_name``
    is the charges' argument name in the caller (``q`` in :meth:`FMMOperator.evaluate`)."""
    if charges is None and dipoles is None:
        raise ValueError("give charges, dipoles or both; got neither")
    if charges is not None and dipoles is not None:
        q_shape = as_array(charges, charges_name, "shape (n,) or (n, m)").shape
        d_shape = as_array(dipoles, "dipoles", "shape (n, 3) or (n, m, 3)").shape
        if q_shape[1:] != d_shape[1:-1]:
            raise ValueError(f"{charges_name} of shape {q_shape} and dipoles of shape {d_shape} "
                             f"disagree: use (n,) with (n, 3), or (n, m) with (n, m, 3)")


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int, raising ``ValueError`` naming ``name`` unless it is >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
