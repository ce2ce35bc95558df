"""Seeded point clouds and error measures for tests, examples and benchmarks.

Every generator takes ``n`` and a ``seed`` (or a ``numpy.random.Generator``) and returns an
``(n, 3)`` float64 array; nothing here touches global random state.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DISTRIBUTIONS", "point_cloud", "relative_l2_error", "fibonacci_sphere"]


def fibonacci_sphere(n, indices=None):
    """Points of the n-point Fibonacci lattice on the unit sphere: nearly equal areas, so the
    weights 4 pi / n make a quadrature rule (the boundary examples and tests use it).

    Parameters
    ----------
    n : int
        Size of the lattice.
    indices : array_like of int or None
        Which lattice points (default all ``n``, in order).

    Returns
    -------
    ndarray of shape (len(indices), 3), float64
    """
    i = (np.arange(n) if indices is None else np.asarray(indices)) + 0.5
    z = 1 - 2 * i / n
    t = np.pi * (1 + 5 ** 0.5) * i
    s = np.sqrt(1 - z * z)
    return np.stack([s * np.cos(t), s * np.sin(t), z], axis=1)


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _uniform(n, rng):
    return rng.random((n, 3))


def _sphere(n, rng):
    x = rng.standard_normal((n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clusters(n, rng):
    """Five Gaussian clusters with widths from 1e-1 down to 1e-5."""
    widths = np.array([1e-1, 1e-2, 1e-3, 1e-4, 1e-5])
    centres = rng.random((len(widths), 3))
    which = rng.integers(0, len(widths), n)
    return centres[which] + widths[which, None] * rng.standard_normal((n, 3))


def _curve(n, rng):
    """A helix discretised like a wire: one point per equal parameter interval, jittered.

    (Sorted uniform parameters would put pairs about 1/n^2 apart, closer than float32 can
    resolve; see the float32 notes in docs/index.md.)
    """
    t = (np.arange(n) + 0.25 + 0.5 * rng.random(n)) / n * 6 * np.pi
    return np.stack([np.cos(t), np.sin(t), t / (6 * np.pi)], axis=1)


def _duplicates(n, rng):
    """A uniform cloud of which about half the points are exact copies of 16 points."""
    x = rng.random((n, 3))
    copies = rng.random(n) < 0.5
    x[copies] = rng.random((16, 3))[rng.integers(0, 16, copies.sum())]
    return x


_GENERATORS = {
    "uniform": _uniform,
    "sphere": _sphere,
    "clusters": _clusters,
    "curve": _curve,
    "duplicates": _duplicates,
}

#: Names accepted by :func:`point_cloud`.
DISTRIBUTIONS: tuple[str, ...] = tuple(_GENERATORS)


def point_cloud(distribution: str, n: int, seed=0) -> np.ndarray:
    """``n`` points of a named distribution.

    Parameters
    ----------
    distribution : str
        ``"uniform"`` (unit cube), ``"sphere"`` (unit sphere surface), ``"clusters"`` (tight
        Gaussian clusters of widths 1e-1 to 1e-5), ``"curve"`` (a helix) or ``"duplicates"``
        (half the points are copies of 16 points).
    n : int
        Number of points.
    seed : int or numpy.random.Generator

    Returns
    -------
    ndarray of shape (n, 3), float64
    """
    try:
        gen = _GENERATORS[distribution]
    except KeyError:
        raise ValueError(
            f"unknown distribution {distribution!r}; expected one of {DISTRIBUTIONS}"
        ) from None
    return gen(int(n), _rng(seed))


def relative_l2_error(approx, exact) -> float:
    """``||approx - exact||_2 / ||exact||_2`` over all entries (float64 arithmetic)."""
    approx = np.asarray(approx).astype(np.complex128 if np.iscomplexobj(approx) else np.float64)
    exact = np.asarray(exact).astype(np.complex128 if np.iscomplexobj(exact) else np.float64)
    if approx.shape != exact.shape:
        raise ValueError(f"shapes differ: {approx.shape} and {exact.shape}")
    return float(np.linalg.norm(approx - exact) / np.linalg.norm(exact))
