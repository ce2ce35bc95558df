"""Equivalent and check surfaces of the KIFMM.

A surface of order ``p`` is the set of points of a ``p x p x p`` grid on the cube [-1, 1]^3 that
lie on the cube's boundary: ``6 (p - 1)^2 + 2`` points. A box of centre ``c`` and half-width ``h``
uses ``c + radius * h * surface``. The radii are relative to the box half-width. They are the
values known to work (see ARCHITECTURE.md):

* upward equivalent 1.05 and upward check 2.95;
* downward equivalent 2.95 and downward check 1.05.

The 8 axis reflections map the surface onto itself (:func:`octant_permutations`): the plan
(M2M, L2L) and the SVD M2L strategy use them to compute one operator and reflect the others.

Wave kernels: at an interior Dirichlet resonance of the inner cube (half-width 1.05 h: ``k``
times it equal to ``(pi / 2) sqrt(l^2 + m^2 + n^2)``, ``l, m, n >= 1``, the first at
``k h = 2.59``), a single layer on the upward equivalent surface cannot represent every field
outside it, and the potential on the downward check surface does not determine the field inside
it: both check-to-equivalent maps then miss by O(1) (measured: 0.2 to 0.8 at orders 8 to 17),
and within a relative distance ``t`` of it by about ``C / t`` (C = 4e-11 at order 17 and
k h = 12.5, 3e-14 at order 12 and k h = 2.6). The outer cube (2.95 h) is harmless: its
exterior problem is unique, and its interior one is only asked for a field, not a density.
:func:`near_resonance` tells which box sizes to avoid; the engine widens the root cube a little
to keep every level at least :data:`RESONANCE_MARGIN` away (:func:`fmmsolve.engine.fit`).
"""

from __future__ import annotations

import functools

import numpy as np

from .._config import DEFAULT_LEAF_SIZE

__all__ = ["surface", "n_surface_points", "default_leaf_size", "radii", "octant_offsets",
           "octant_permutations", "UP_EQUIV", "UP_CHECK", "DOWN_EQUIV", "DOWN_CHECK",
           "SEPARATION", "RESONANCE_MARGIN", "cube_resonances", "near_resonance"]

UP_EQUIV = 1.05
UP_CHECK = 2.95
DOWN_EQUIV = 2.95
DOWN_CHECK = 1.05
#: A point whose max-norm distance from a box's centre is at least this many half-widths lies
#: outside the box's upward check surface (``UP_CHECK``), where the box's multipole expansion
#: holds to the requested accuracy: M2P from the box may be used there.
SEPARATION = 3.0
#: Relative distance from the inner cube's resonances that the boxes of a wave kernel keep
#: (the error near one grows as C / t, see the module docstring: at most 2e-8 extra here).
RESONANCE_MARGIN = 2e-3


@functools.lru_cache(maxsize=8)
def _resonances(count: int) -> np.ndarray:
    i = np.arange(1, count + 1)
    squares = (i[:, None, None] ** 2 + i[None, :, None] ** 2 + i[None, None, :] ** 2).ravel()
    values = np.unique(squares[squares <= count**2])
    return 0.5 * np.pi * np.sqrt(values)


def cube_resonances(limit: float) -> np.ndarray:
    """``k a`` at the interior Dirichlet eigenvalues of a cube of half-width ``a``, ascending,
    up to ``limit``: ``(pi / 2) sqrt(l^2 + m^2 + n^2)`` for integers ``l, m, n >= 1``.

    Returns
    -------
    ndarray of float64
    """
    count = max(1, int(np.ceil(2.0 * float(limit) / np.pi)) + 1)
    values = _resonances(count)
    return values[values <= limit]


def near_resonance(kh, margin: float = RESONANCE_MARGIN) -> bool:
    """Whether boxes of half-width ``h`` at wavenumber ``k`` (``kh = k h``, complex for a
    complex k) put the inner surfaces (:data:`UP_EQUIV`, :data:`DOWN_CHECK`) within relative
    distance ``margin`` of a resonance of their cube (the module docstring says why)."""
    for radius in {UP_EQUIV, DOWN_CHECK}:
        x = complex(kh) * radius
        rho = cube_resonances(abs(x) * (1.0 + margin) + 1.0)
        if len(rho) and np.min(np.abs(x - rho) / rho) < margin:
            return True
    return False


def n_surface_points(order: int) -> int:
    """Number of points of a surface of order ``order`` (>= 2)."""
    return 6 * (order - 1) ** 2 + 2


def default_leaf_size(order: int) -> int:
    """Sources per leaf when the user gives none: about one surface's worth of points (at least
    ``DEFAULT_LEAF_SIZE``), which balances the near field against the far field."""
    return max(DEFAULT_LEAF_SIZE, n_surface_points(order))


def surface(order: int) -> np.ndarray:
    """Points of the order-``order`` surface of [-1, 1]^3, shape (n, 3), float64.

    The order is fixed: lexicographic in (x, y, z) over the grid.
    """
    if order < 2:
        raise ValueError(f"expansion_order must be at least 2, got {order}")
    g = np.linspace(-1.0, 1.0, order)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    on_boundary = np.any(np.abs(grid) == 1.0, axis=1)
    pts = grid[on_boundary]
    assert len(pts) == n_surface_points(order)
    return pts


def radii() -> tuple:
    """The current ``(UP_EQUIV, UP_CHECK, DOWN_EQUIV, DOWN_CHECK)``: part of every Plan's key."""
    return (UP_EQUIV, UP_CHECK, DOWN_EQUIV, DOWN_CHECK)


def octant_offsets() -> np.ndarray:
    """Centre offset of child octant ``c``, in half the parent's half-width, shape (8, 3),
    float64: ``((c & 1), (c >> 1 & 1), (c >> 2 & 1)) * 2 - 1`` (:mod:`fmmsolve.tree.morton`,
    convention 2). Row ``c`` is also the reflection with flip mask ``c`` applied to octant 0."""
    c = np.arange(8)
    return np.stack([c & 1, (c >> 1) & 1, (c >> 2) & 1], axis=1) * 2.0 - 1.0


@functools.lru_cache(maxsize=32)
def octant_permutations(order: int) -> np.ndarray:
    """``perm[c, i]``: the surface point that is point ``i`` reflected from octant 0 into
    octant ``c``, shape (8, n), int64. Computed on the surface's integer grid, so exact."""
    surf = surface(order)
    grid = np.rint((surf + 1.0) * (order - 1) / 2).astype(np.int64)  # 0 .. order-1 per axis
    index = np.full(order**3, -1, np.int64)
    index[(grid[:, 0] * order + grid[:, 1]) * order + grid[:, 2]] = np.arange(len(surf))
    perm = np.empty((8, len(surf)), np.int64)
    for c, sign in enumerate(-octant_offsets()):  # octant 0 has offset (-1, -1, -1)
        g = np.where(sign < 0, order - 1 - grid, grid)
        perm[c] = index[(g[:, 0] * order + g[:, 1]) * order + g[:, 2]]
    return perm
