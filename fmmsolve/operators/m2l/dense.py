"""The dense M2L strategy (``"dense"``): every translation kept whole, uncompressed. It serves
small orders and is the oracle that the other strategies are tested against.

Precomputation (:func:`precompute`). For each of the 316 transfer vectors ``v``, the (n, n)
map from a source box's multipole (its upward equivalent densities) to the target box's local
expansion (its downward equivalent densities), for boxes of half-width 1:
``T_v = dc2e_a @ (dc2e_b @ K_v)``, with ``K_v`` the kernel matrix from the source's upward
equivalent surface (centre ``2 v``) to the target's downward check surface. Nothing is
compressed, truncated or reflected: its error is the check-to-equivalent solve's, which every
strategy shares, and ``compression_tol`` is not used.

Memory. The record holds 316 n^2 values: 24 MB at order 6 and 221 MB at order 8 in float64
(twice that for a complex kernel, and once per tree level for a kernel that is not scale
invariant). Orders above :data:`MAX_ORDER` are refused.

Evaluation (:func:`apply`), over the schedule of :mod:`~fmmsolve.operators.m2l.base`: within a
chunk, each group of pairs that share a transfer vector is gathered, multiplied by ``T_v^T`` in
one product (BLAS, single-threaded inside the ``prange``), and scatter-added into the targets'
local expansions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..._jit import jit, prange
from .. import surfaces
from ..dense import single_threaded_blas
from .base import (M2LData, gather_group, scatter_group, schedule, shift_arguments,
                   transfer_vectors)

__all__ = ["NAME", "MAX_ORDER", "Data", "DenseData", "precompute", "empty", "schedule",
           "apply"]

NAME = "dense"
#: Highest expansion order: 316 n^2 values per plan, 221 MB at order 8 (n = 296) in float64.
MAX_ORDER = 8


@dataclass(frozen=True, eq=False)
class DenseData(M2LData):
    """The uncompressed translations, for ``n`` surface points.

    Attributes
    ----------
    translations : ndarray (316, n, n), or (0, n, n) for a plan without M2L operators
        ``local += translations[v] @ multipole`` for a source box at transfer vector ``v``
        (index into :func:`~fmmsolve.operators.m2l.transfer_vectors`); the plan's value dtype.
    """

    translations: np.ndarray

    strategy = NAME
    RULES = {"translations": ("value", ("m2l_vectors", "n", "n"))}

    @property
    def rank(self) -> int:
        """``n`` (nothing is compressed), or 0 for a record without operators."""
        return self.translations.shape[2] if len(self.translations) else 0

    def inconsistency(self, n, dtype):
        t = self.translations
        if t.dtype != np.dtype(dtype) or t.shape not in {(len(transfer_vectors()), n, n),
                                                         (0, n, n)}:
            return f"m2l_translations of shape {t.shape} and dtype {t.dtype}, not (316, {n}, " \
                   f"{n}) or (0, {n}, {n}) {dtype}"
        return None


#: The strategy's data record (the name the registry's contract uses).
Data = DenseData


def empty(n, dtype) -> DenseData:
    """The record of a plan without M2L operators: no translations."""
    return DenseData(translations=np.zeros((0, n, n), dtype))


def precompute(mat, order, up_equiv, down_check, compression_tol, dc2e_a, dc2e_b, *,
               parities=(0,)) -> DenseData:
    """The 316 translations ``dc2e_a @ (dc2e_b @ K_v)`` of the module docstring.

    Parameters
    ----------
    mat : callable
        ``mat(targets, sources)``: the kernel's (n_t, n_s) matrix between two (n, 3) point sets.
    order : int
        Expansion order, at most :data:`MAX_ORDER`.
    up_equiv, down_check : float
        Radii of the source's upward equivalent and the target's downward check surfaces.
    compression_tol : float
        Not used: nothing is compressed.
    dc2e_a, dc2e_b : ndarray (n, r), (r, n)
        The downward check-to-equivalent map.
    parities : tuple of int
        Not used (nothing is reflected); with ``C`` components every ``n`` above but the
        surface's is ``C n``.

    Raises
    ------
    ValueError
        For an order above :data:`MAX_ORDER`.
    """
    if order > MAX_ORDER:
        n = surfaces.n_surface_points(order)
        raise ValueError(f"the dense M2L strategy stores 316 matrices of {n} x {n} values "
                         f"({316 * n * n * 8 / 2**20:.0f} MiB in float64) at order {order}: it "
                         f"takes orders up to {MAX_ORDER}; use m2l='svd'")
    surf = surfaces.surface(order)
    check = down_check * surf
    translations = [dc2e_a @ (dc2e_b @ mat(check, 2.0 * v + up_equiv * surf))
                    for v in transfer_vectors()]
    return DenseData(translations=np.ascontiguousarray(np.stack(translations)))


@jit(parallel=True)
def _translate_chunks(multipole, targets, sources, group_ptr, group_vec, chunk_ptr,
                      translations, local, shift, scale, vectors):
    """``local[t] += translations[v] @ multipole[s]`` (per column) for every scheduled pair.

    ``multipole`` and ``local`` are (n_boxes, m, n); ``translations`` is (316, n, n). Moment
    columns are shifted by :func:`~.base.gather_group`.
    """
    m, n = multipole.shape[1], multipole.shape[2]
    for c in prange(chunk_ptr.shape[0] - 1):
        largest = 0
        for g in range(chunk_ptr[c], chunk_ptr[c + 1]):
            largest = max(largest, group_ptr[g + 1] - group_ptr[g])
        # Buffers reused by every group of the chunk (the product writes into ``y``).
        x = np.empty((largest * m, n), multipole.dtype)
        y = np.empty((largest * m, n), multipole.dtype)
        for g in range(chunk_ptr[c], chunk_ptr[c + 1]):
            a, b = group_ptr[g], group_ptr[g + 1]
            rows = (b - a) * m
            gather_group(x, multipole, sources, a, b, shift, scale, vectors[group_vec[g]])
            np.dot(x[:rows], translations[group_vec[g]].T, y[:rows])
            scatter_group(local, y, targets, a, b)


def apply(sched, data: DenseData, multipole, local, shift=None):
    """``local += M2L(multipole)`` over every V-list pair.

    Parameters
    ----------
    sched : M2LSchedule
    data : DenseData
        Its translations have the dtype of ``multipole``.
    multipole : ndarray (n_boxes, m, n_surface), C-contiguous
        Equivalent densities of the multipole expansions.
    local : ndarray (n_boxes, m, n_surface), C-contiguous
        Local equivalent densities, updated in place.
    shift : (table, edges) or None
        Moment columns to move to each target's centre (:func:`~.base.shift_arguments`).
    """
    if len(sched.targets) == 0:
        return
    with single_threaded_blas(), numba.parallel_chunksize(1):  # chunks differ in work
        _translate_chunks(multipole, sched.targets, sched.sources, sched.group_ptr,
                          sched.group_vec, sched.chunk_ptr, data.translations, local,
                          *shift_arguments(shift))
