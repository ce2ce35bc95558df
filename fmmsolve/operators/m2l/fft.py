"""The FFT M2L strategy (``"fft"``): each translation a convolution on the surfaces' grid, for
high expansion orders (the high-frequency levels of the Helmholtz FMM).

Why a convolution. A surface of order ``p`` is the boundary of a ``p x p x p`` grid of spacing
``2 r h / (p - 1)`` (:mod:`~fmmsolve.operators.surfaces`). The source's upward equivalent
surface and the target's downward check surface have the same radius (``UP_EQUIV ==
DOWN_CHECK``), so check point ``j`` of the target and equivalent point ``i`` of the source
(grid indices in 0..p-1 per axis) lie ``(c_t - c_s) + 2 r h (j - i) / (p - 1)`` apart: the
translation is a 3-D convolution of the densities with the kernel sampled at those offsets, and
a circular convolution of size ``N = 2 p`` (at least ``2 p - 1``) computes it with FFTs.

Precomputation (:func:`precompute`). Per transfer vector, the kernel at the ``(2 p - 1)^3``
offsets, placed at grid index ``d mod N``, and its FFT: ``316 N^3`` values (166 MB at order 16
in complex128), and the downward check-to-equivalent map. No factorisation: under a second at
order 16, where the SVD strategy's compression takes about a minute per level (n = 1352).
Nothing is compressed either: the error is the check-to-equivalent solve's, as for ``"dense"``.

Evaluation (:func:`apply`), in batches of target boxes: the batch's source boxes' equivalent
densities scattered onto the grid and transformed; per target box, the products of its pairs'
kernel and source spectra summed (compiled, ``prange`` over target boxes, in slabs of
:data:`SLAB` frequencies that stay in cache); one inverse FFT per target box and column; the
check potentials read at the surface points; the check-to-equivalent map applied to the batch
in one product. Per pair ``N^3`` complex multiply-adds (32,768 at order 16, where a dense
translation costs ``n^2`` = 1.8 million). Memory at evaluation: the batch's spectra, ``N^3``
values per box and column, at most about :data:`BATCH_BYTES`.

Scalar kernels only (one component); moment columns (``shift``) are moved in the frequency
domain, which the shift's linearity allows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np
import scipy.fft

from ..._jit import jit, prange
from ..moments import shift_rows
from .base import M2LData, schedule as _schedule, shift_arguments, transfer_vectors

__all__ = ["NAME", "MAX_ORDER", "Data", "FFTData", "precompute", "empty", "schedule", "apply",
           "grid_size"]

NAME = "fft"
#: Highest expansion order (the engine's own limit, :data:`fmmsolve.accuracy.MAX_ORDER`).
MAX_ORDER = 20
#: Frequencies per slab of the compiled products: a box's slab is 16 KiB in complex128, so the
#: slabs of a batch's boxes and of the 316 kernels stay in the last-level cache.
SLAB = 1024
#: Spectra held at once by one evaluation (sources and targets of a batch), in bytes.
BATCH_BYTES = 256 * 2**20


def grid_size(order: int) -> int:
    """``N = 2 order``: the FFT grid's points per axis."""
    return 2 * int(order)


def _order_of(n: int) -> int:
    """The order of an ``n``-point surface (``n = 6 (p - 1)^2 + 2``)."""
    return 1 + int(round(np.sqrt((n - 2) / 6.0)))


def _complex(dtype):
    return np.result_type(dtype, np.complex64)


@dataclass(frozen=True, eq=False)
class FFTData(M2LData):
    """The translations' spectra, for ``n`` surface points of order ``p`` (``N = 2 p``).

    Attributes
    ----------
    spectra : ndarray (316, N^3), or (0, 0) for a plan without M2L operators
        FFT of the kernel sampled at transfer vector ``v``'s grid offsets (index into
        :func:`~fmmsolve.operators.m2l.transfer_vectors`), flattened in C order; complex of
        the plan's precision (complex128 for a real float64 kernel too).
    dc2e_a, dc2e_b : ndarray (n, r), (r, n)
        The downward check-to-equivalent map, applied after the products; the value dtype.
    """

    spectra: np.ndarray
    dc2e_a: np.ndarray
    dc2e_b: np.ndarray

    strategy = NAME
    RULES = {"spectra": ("complex", ("m2l_vectors", "cells")),
             "dc2e_a": ("value", ("n", "r_fft")), "dc2e_b": ("value", ("r_fft", "n"))}

    @property
    def rank(self) -> int:
        """``n`` (nothing is compressed), or 0 for a record without operators."""
        return self.dc2e_a.shape[0] if len(self.spectra) else 0

    def inconsistency(self, n, dtype):
        dtype = np.dtype(dtype)
        cells = grid_size(_order_of(n)) ** 3
        s, a, b = self.spectra, self.dc2e_a, self.dc2e_b
        if s.dtype != _complex(dtype) or s.shape not in {(len(transfer_vectors()), cells),
                                                         (0, 0)}:
            return f"m2l_spectra of shape {s.shape} and dtype {s.dtype}, not (316, {cells}) " \
                   f"{_complex(dtype)}"
        if a.dtype != dtype or b.dtype != dtype or a.ndim != 2 or a.shape[0] != n \
                or b.shape != a.shape[::-1]:
            return f"m2l_dc2e_a, m2l_dc2e_b of shapes {a.shape}, {b.shape} and dtype " \
                   f"{a.dtype}, not ({n}, r), (r, {n}) {dtype}"
        return None


#: The strategy's data record (the name the registry's contract uses).
Data = FFTData


def empty(n, dtype) -> FFTData:
    """The record of a plan without M2L operators: no spectra."""
    return FFTData(spectra=np.zeros((0, 0), _complex(dtype)), dc2e_a=np.zeros((n, 0), dtype),
                   dc2e_b=np.zeros((0, n), dtype))


def precompute(mat, order, up_equiv, down_check, compression_tol, dc2e_a, dc2e_b, *,
               parities=(0,)) -> FFTData:
    """The spectra of the module docstring, in complex128.

    Parameters
    ----------
    mat : callable
        ``mat(targets, sources)``: the kernel's (n_t, n_s) matrix between two point sets; the
        kernel must be translation invariant (every KIFMM kernel is).
    order : int
    up_equiv, down_check : float
        Radii of the source's upward equivalent and the target's downward check surfaces:
        they must be equal (one grid spacing).
    compression_tol : float
        Not used: nothing is compressed.
    dc2e_a, dc2e_b : ndarray (n, r), (r, n)
        The downward check-to-equivalent map.
    parities : tuple of int
        One entry: the strategy takes scalar kernels only.

    Raises
    ------
    ValueError
        For kernels of several components, or unequal radii.
    """
    if len(parities) != 1:
        raise ValueError(f"m2l='fft' takes scalar kernels only, got a kernel of "
                         f"{len(parities)} components; use m2l='svd'")
    if up_equiv != down_check:
        raise ValueError(f"m2l='fft' needs the upward equivalent and downward check surfaces "
                         f"on one grid (equal radii), got {up_equiv} and {down_check}")
    p, n_grid = int(order), grid_size(order)
    d = np.arange(-(p - 1), p)
    offsets = np.stack(np.meshgrid(d, d, d, indexing="ij"), axis=-1).reshape(-1, 3)
    at = (offsets % n_grid) @ (n_grid * n_grid, n_grid, 1)
    origin = np.zeros((1, 3))
    step = 2.0 * up_equiv / (p - 1)
    spectra = np.empty((len(transfer_vectors()), n_grid**3), np.complex128)
    grid = np.zeros(n_grid**3, np.complex128)
    for i, v in enumerate(transfer_vectors()):  # check point minus equivalent point
        grid[at] = mat(-2.0 * v + step * offsets, origin)[:, 0]
        spectra[i] = scipy.fft.fftn(grid.reshape((n_grid,) * 3)).ravel()
    return FFTData(spectra=spectra, dc2e_a=np.ascontiguousarray(dc2e_a),
                   dc2e_b=np.ascontiguousarray(dc2e_b))


def schedule(targets, sources, vectors, chunk_boxes):
    """The pairs scheduled one target box per chunk (``chunk_boxes`` is not used): the
    products run in parallel over target boxes."""
    return _schedule(targets, sources, vectors, 1)


@functools.lru_cache(maxsize=16)
def _grid_index(order):
    """(n,) int64: each surface point's flat index in the ``N^3`` grid."""
    from .. import surfaces
    n_grid = grid_size(order)
    g = np.rint((surfaces.surface(order) + 1.0) * (order - 1) / 2.0).astype(np.int64)
    out = g @ np.array([n_grid * n_grid, n_grid, 1], np.int64)
    out.flags.writeable = False
    return out


def apply(sched, data: FFTData, multipole, local, shift=None):
    """``local += M2L(multipole)`` over every V-list pair.

    Parameters
    ----------
    sched : M2LSchedule
        From :func:`schedule` (one target box per chunk).
    data : FFTData
        Its arrays have the precision of ``multipole``.
    multipole : ndarray (n_boxes, m, n_surface), C-contiguous
        Equivalent densities of the multipole expansions.
    local : ndarray (n_boxes, m, n_surface), C-contiguous
        Local equivalent densities, updated in place.
    shift : (table, edges) or None
        Moment columns to move to each target's centre (:func:`~.base.shift_arguments`).
    """
    if len(sched.targets) == 0:
        return
    m, n = multipole.shape[1:]
    order = _order_of(n)
    n_grid = grid_size(order)
    grid = _grid_index(order)
    spectra = data.spectra
    per_box = m * n_grid**3 * spectra.dtype.itemsize
    workers = numba.get_num_threads()
    table, edges, vectors = shift_arguments(shift)
    chunk_ptr, group_ptr = sched.chunk_ptr, sched.group_ptr
    n_chunks = len(chunk_ptr) - 1
    step = max(1, BATCH_BYTES // (4 * per_box))
    c0 = 0
    while c0 < n_chunks:
        c1 = min(n_chunks, c0 + step)
        a, b = group_ptr[chunk_ptr[c0]], group_ptr[chunk_ptr[c1]]
        boxes = np.unique(sched.sources[a:b])
        if (len(boxes) + c1 - c0) * per_box > BATCH_BYTES and c1 - c0 > 1:
            step = max(1, (c1 - c0) // 2)
            continue
        shape = (len(boxes), m, n_grid, n_grid, n_grid)
        src = np.zeros((len(boxes), m, n_grid**3), spectra.dtype)
        src[:, :, grid] = multipole[boxes]
        src = scipy.fft.fftn(src.reshape(shape), axes=(2, 3, 4), overwrite_x=True,
                             workers=workers).reshape(len(boxes), m, -1)
        out = np.zeros((c1 - c0, m, n_grid**3), spectra.dtype)
        position = np.searchsorted(boxes, sched.sources[a:b])
        with numba.parallel_chunksize(1):  # target boxes differ in work
            _products(src, spectra, out, c0, chunk_ptr, group_ptr, sched.group_vec,
                      sched.sources, position, a, table, edges, vectors, SLAB)
        del src
        out = scipy.fft.ifftn(out.reshape((c1 - c0, m) + shape[2:]), axes=(2, 3, 4),
                              overwrite_x=True, workers=workers).reshape(c1 - c0, m, -1)
        check = out[:, :, grid]
        if not np.iscomplexobj(local):
            check = check.real
        targets = sched.targets[group_ptr[chunk_ptr[c0:c1]]]
        flat = check.reshape(-1, n) @ data.dc2e_b.T
        local[targets] += (flat @ data.dc2e_a.T).reshape(c1 - c0, m, n).astype(local.dtype,
                                                                              copy=False)
        c0 = c1


@jit(parallel=True)
def _products(src, spectra, out, c0, chunk_ptr, group_ptr, group_vec, sources, position, a,
              shift, edges, vectors, slab):
    """``out[i, j] += spectra[v] * src[position[pair - a], j]`` for every pair of chunk (target
    box) ``c0 + i``, frequencies in slabs of ``slab``; moment columns (``shift``) moved to the
    target's centre first, as :func:`~.base.gather_group` does."""
    n_out, m, cells = out.shape
    for lo in range(0, cells, slab):
        hi = min(lo + slab, cells)
        for i in prange(n_out):
            c = c0 + i
            x = np.empty((m, hi - lo), out.dtype)
            for g in range(chunk_ptr[c], chunk_ptr[c + 1]):
                v = group_vec[g]
                for pair in range(group_ptr[g], group_ptr[g + 1]):
                    s = position[pair - a]
                    if shift.shape[0]:
                        for j in range(m):
                            for f in range(hi - lo):
                                x[j, f] = src[s, j, lo + f]
                        h = edges[sources[pair]]
                        shift_rows(x, 0, shift, h * vectors[v, 0], h * vectors[v, 1],
                                   h * vectors[v, 2])
                        for j in range(m):
                            for f in range(hi - lo):
                                out[i, j, lo + f] += spectra[v, lo + f] * x[j, f]
                    else:
                        for j in range(m):
                            for f in range(hi - lo):
                                out[i, j, lo + f] += spectra[v, lo + f] * src[s, j, lo + f]
