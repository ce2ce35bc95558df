"""The densities of a distributed product: checked on each rank, and of one layout on every
rank (columns, charges and/or dipoles, gradients), so that every rank takes part in the same
exchanges.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_array, as_densities, as_dipoles, check_columns, check_flag

__all__ = ["check_densities", "check_layouts"]


def check_densities(q, d, gradient, n, dtype, dipoles):
    """One rank's densities, checked; for :func:`~._mpi.gather_agreed`.

    Parameters
    ----------
    q : array_like of shape (n,) or (n, m), or None
        Charges (``q_local``).
    d : array_like of shape (n, 3) or (n, m, 3), or None
        Dipoles.
    gradient : bool
    n : int
        The rank's sources.
    dtype : numpy.dtype
        The operator's value dtype.
    dipoles : bool
        Whether the operator was fit for dipoles.

    Returns
    -------
    result : tuple
        ``(q as (n, m) or None, d as (n, m, 3) or None, whether they came without a column
        axis)``, of ``dtype``, or complex for a real ``dtype`` given complex densities.
    summary : tuple
        ``((m, q given, d given, gradient), complex)``, compared by :func:`check_layouts`.

    Raises
    ------
    ValueError
        Naming the argument: neither given, columns that disagree, a wrong shape, NaN, no
        column, dipoles for an operator fit for charges only, a ``gradient`` not a bool.
    """
    gradient = check_flag(gradient, "gradient")
    check_columns(q, d, "q_local")
    if d is not None and not dipoles:
        raise ValueError("dipoles: this FMM was fit for charges only: fit it with "
                         "dipoles=True to evaluate dipoles (they need a higher order)")
    given = [as_array(a, name, shape) for a, name, shape in
             ((q, "q_local", f"shape ({n},) or ({n}, m)"),
              (d, "dipoles", f"shape ({n}, 3) or ({n}, m, 3)")) if a is not None]
    if any(a.dtype.kind == "c" for a in given) and dtype.kind != "c":
        dtype = np.result_type(dtype, np.complex64)
    vector = (q is not None and given[0].ndim == 1) or (q is None and given[0].ndim == 2)
    if q is not None:  # not reshape(n, -1): a rank may hold no source (n = 0)
        q = as_densities(q, n, "q_local", dtype)
        q = q[:, None] if q.ndim == 1 else q
    if d is not None:
        d = as_dipoles(d, n, "dipoles", dtype)
        d = d[:, None] if d.ndim == 2 else d
    m = (q if q is not None else d).shape[1]
    if m == 0:
        raise ValueError(f"q_local must have at least one column, got shape "
                         f"{(q if q is not None else d).shape}")
    return (q, d, vector), ((m, q is not None, d is not None, gradient),
                            dtype.kind == "c")


def check_layouts(summaries):
    """The layouts of every rank's :func:`check_densities` summary (rank 0 first), the same on
    every rank, or ``ValueError`` (raised on every rank: they all hold the same list).

    Returns
    -------
    list of tuple
        ``(m, q given, d given, gradient)`` of each rank, all equal.
    """
    layouts = [layout for layout, _ in summaries]
    if len({m for m, *_ in layouts}) > 1:
        raise ValueError("q_local must have the same number of columns m on every rank, got "
                         + ", ".join(f"{m} on rank {r}" for r, (m, *_) in enumerate(layouts)))
    if len(set(layouts)) > 1:
        raise ValueError("the densities must have the same layout on every rank (columns m, "
                         "charges q_local, dipoles, gradient), got " + ", ".join(
                             f"(m={m}, q_local={hq}, dipoles={hd}, gradient={g}) on rank {r}"
                             for r, (m, hq, hd, g) in enumerate(layouts)))
    return layouts
