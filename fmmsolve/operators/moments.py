"""Expansion columns that hold a moment about their own box's centre, and their shift.

The Stokeslet's FMM (:mod:`fmmsolve.engine.harmonic`) runs Laplace expansions of four columns
per force column: the potentials ``Phi_a = sum f_a G`` of the three force components and
``Phi_c = sum ((x - c) . f) G``, whose charges are the forces' moment about a centre ``c``.
Each box keeps that moment about its own centre: taken about one centre for the whole domain,
``(x - c) . f`` would be as large as the domain while the velocity it helps make is as small
as a box, and every truncation error of the expansion would be multiplied by that ratio.

When an expansion moves from a box about ``c`` to one about ``c'`` (M2M, M2L, L2L, P2L),
``Phi_c' = Phi_c + (c - c') . (Phi_x, Phi_y, Phi_z)``. The expansions are linear in their
charges, so the same holds for their equivalent densities, column by column: the shift is a
mix of columns, applied to the source expansion before it is translated. A *shift table* names
the columns: an (n_shift, 4) int64 array whose rows are ``[moment, x, y, z]`` column indices;
:data:`NO_SHIFT` has no rows (every other kernel).
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

__all__ = ["NO_SHIFT", "shift_table", "shift_rows", "shift_boxes"]

#: The shift table of expansions without moment columns.
NO_SHIFT = np.zeros((0, 4), np.int64)


def shift_table(m: int, per_column: int = 4) -> np.ndarray:
    """The shift table of ``m`` columns of ``per_column`` Laplace columns each, laid out
    ``[f_x, f_y, f_z, moment]``: rows ``[per_column c + 3, per_column c, ... + 1, ... + 2]``."""
    c = per_column * np.arange(m, dtype=np.int64)
    return np.ascontiguousarray(np.stack([c + 3, c, c + 1, c + 2], axis=1))


@jit(inline="always")
def shift_rows(x, base, table, ox, oy, oz):
    """``x[base + t[0]] += ox x[base + t[1]] + oy x[base + t[2]] + oz x[base + t[3]]`` for each
    row ``t`` of ``table``: the columns ``base:base + m`` of a 2-D ``x`` (one expansion's m
    rows) moved to a centre ``(ox, oy, oz)`` behind the present one."""
    for r in range(table.shape[0]):
        d = base + table[r, 0]
        a, b, c = base + table[r, 1], base + table[r, 2], base + table[r, 3]
        for j in range(x.shape[1]):
            x[d, j] += ox * x[a, j] + oy * x[b, j] + oz * x[c, j]


@jit
def shift_boxes(expansions, boxes, offset, table):
    """:func:`shift_rows` on ``expansions[b]`` (an (n_boxes, m, n) array) for each of
    ``boxes``, by the one ``offset`` (3,) float64: from each box's centre ``c`` to ``c -
    offset``. In place; ``-offset`` undoes it up to rounding."""
    ox, oy, oz = offset[0], offset[1], offset[2]
    for i in range(boxes.shape[0]):
        shift_rows(expansions[boxes[i]], 0, table, ox, oy, oz)
