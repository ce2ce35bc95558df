"""Seeded point clouds and error measures for tests, examples and benchmarks.

Every generator takes ``n`` and a ``seed`` (or a ``numpy.random.Generator``) and returns an
``(n, 3)`` float64 array; nothing here touches global random state.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DISTRIBUTIONS", "fibonacci_sphere", "magnitude_field", "point_cloud",
           "relative_l2_error"]


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


def _radial_derivatives(r, k):
    """``G, G', G''`` of ``G(r) = exp(i k r) / (4 pi r)`` (complex128) at distances ``r > 0``."""
    g = np.exp(1j * k * r) / (4 * np.pi * r)
    a = 1j * k - 1 / r
    return g, g * a, g * (a * a + 1 / (r * r))


def magnitude_field(sources, targets=None, charges=None, dipoles=None, *, kernel="laplace",
                    wavenumber=None, gradient=False):
    """The field of the densities' magnitudes: the scale the FMM's eps is relative to.

    ``P_i = sum_j |G(y_i, x_j)| |q_j| + |grad_x G(y_i, x_j)| |d_j|`` and, with ``gradient``,
    ``D_i = sum_j |grad_y G(y_i, x_j)| |q_j| + ||Hess G(y_i, x_j)||_2 |d_j|`` (``|d_j|`` the
    Euclidean length of a dipole). Unlike the field itself, these sums cannot cancel, so an
    error bound relative to them stays meaningful at targets where a field of mixed-sign
    densities is small. Pairs at zero distance contribute nothing, as everywhere in fmmsolve.

    The kernels are radial, ``G(r) = exp(i k r) / (4 pi r)`` with ``r = |y - x|`` (Laplace:
    k = 0; modified Helmholtz: ``exp(-k r) / (4 pi r)``, i.e. k -> i k), so ``|grad G| = |G'|``
    and, as the Hessian is ``G'' r r^T / r^2 + (G' / r) (I - r r^T / r^2)``,
    ``||Hess G||_2 = max(|G''|, |G' / r|)``, with ``G' = G (i k - 1 / r)`` and
    ``G'' = G ((i k - 1 / r)^2 + 1 / r^2)``.

    Dense NumPy in float64 over every pair (``O(n_targets n_sources)`` time, memory in blocks
    of targets): for the small point sets of tests only.

    Parameters
    ----------
    sources : array_like of shape (n_sources, 3)
    targets : array_like of shape (n_targets, 3) or None
        None means the sources themselves.
    charges : array_like of shape (n_sources,) or (n_sources, m), or None
    dipoles : array_like of shape (n_sources, 3) or (n_sources, m, 3), or None
        At least one of ``charges`` and ``dipoles``; with both, the same columns.
    kernel : str, default "laplace"
        ``"laplace"``, ``"helmholtz"`` or ``"modified_helmholtz"``.
    wavenumber : scalar or None
        As for :func:`fmmsolve.direct` (complex allowed for ``"helmholtz"``).
    gradient : bool, default False
        Also return ``D``.

    Returns
    -------
    (P,) or (P, D) : tuple of ndarray of shape (n_targets,) or (n_targets, m), float64
        One column per density column, the shape of :func:`fmmsolve.direct`'s potential.
    """
    src = np.asarray(sources, np.float64).reshape(-1, 3)
    tgt = src if targets is None else np.asarray(targets, np.float64).reshape(-1, 3)
    if charges is None and dipoles is None:
        raise ValueError("give charges, dipoles or both")
    if kernel == "laplace":
        k = 0j
    elif kernel in ("helmholtz", "modified_helmholtz") and wavenumber is not None:
        k = complex(wavenumber) * (1j if kernel == "modified_helmholtz" else 1)
    else:
        raise ValueError(f"kernel must be 'laplace', or 'helmholtz' or 'modified_helmholtz' "
                         f"with a wavenumber; got {kernel!r}, wavenumber={wavenumber!r}")
    # |densities| as (n_sources, m) columns.
    one_column = (np.ndim(charges) == 1) if charges is not None else (np.ndim(dipoles) == 2)
    n = src.shape[0]
    q = None if charges is None else np.abs(np.asarray(charges)).reshape(n, -1)
    d = None if dipoles is None else \
        np.linalg.norm(np.asarray(dipoles).reshape(n, -1, 3), axis=-1)
    m = (q if q is not None else d).shape[1]
    pot = np.zeros((tgt.shape[0], m))
    grad = np.zeros((tgt.shape[0], m))
    block = max(1, 2 ** 22 // max(n, 1))  # targets per block: about 32 MB per pair array
    for a in range(0, tgt.shape[0], block):
        r = np.linalg.norm(tgt[a:a + block, None, :] - src[None, :, :], axis=-1)
        apart = r > 0
        safe = np.where(apart, r, 1.0)
        g, g1, g2 = (np.where(apart, np.abs(v), 0.0) for v in _radial_derivatives(safe, k))
        if q is not None:
            pot[a:a + block] += g @ q
            grad[a:a + block] += g1 @ q
        if d is not None:
            pot[a:a + block] += g1 @ d
            grad[a:a + block] += np.maximum(g2, g1 / safe) @ d
    if one_column:
        pot, grad = pot[:, 0], grad[:, 0]
    return (pot, grad) if gradient else (pot,)
