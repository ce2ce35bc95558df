"""Equivalent and check surfaces of the KIFMM.

A surface of order ``p`` is the set of points of a ``p x p x p`` grid on the cube [-1, 1]^3 that
lie on the cube's boundary: ``6 (p - 1)^2 + 2`` points. A box of centre ``c`` and half-width ``h``
uses ``c + radius * h * surface``. The radii are relative to the box half-width. They are the
values known to work (see ARCHITECTURE.md):

* upward equivalent 1.05 and upward check 2.95;
* downward equivalent 2.95 and downward check 1.05.
"""

from __future__ import annotations

import numpy as np

from .._config import DEFAULT_LEAF_SIZE

__all__ = ["surface", "n_surface_points", "default_leaf_size", "radii", "UP_EQUIV", "UP_CHECK",
           "DOWN_EQUIV", "DOWN_CHECK", "SEPARATION"]

UP_EQUIV = 1.05
UP_CHECK = 2.95
DOWN_EQUIV = 2.95
DOWN_CHECK = 1.05
#: A point whose max-norm distance from a box's centre is at least this many half-widths lies
#: outside the box's upward check surface (``UP_CHECK``), where the box's multipole expansion
#: holds to the requested accuracy: M2P from the box may be used there.
SEPARATION = 3.0


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
