"""The shared coarse top of the distributed FMM: the far field between cut boxes.

Every rank holds the sources of its *near* cut boxes (:mod:`.partition`, convention 4) and runs
an ordinary :class:`~fmmsolve.fmm.FMMEngine` on them. What is missing at its targets is the
field of every other cut box, and none of those is adjacent to any of its own cut boxes. So:

1. Each rank computes the multipole expansions of its own cut boxes (its engine's upward pass),
   and the sum over ranks gives every rank the expansion of every source cut box (one
   numba-mpi ``allreduce`` of (n_source_cut_boxes, m, n_surface) numbers;
   :func:`~._mpi.sum_over_ranks`). Multipoles are linear in the densities and a cut box
   belongs to one rank, so the sum is exact.
2. A rank keeps the expansions of the cut boxes that are not near it and runs the far-field
   passes (M2M, M2L, L2L; :meth:`FMMEngine.translate`) on a small engine whose leaves are the
   cut boxes: sources at the centres of those far cut boxes, targets at the centres of its own.
   All its leaves lie on the cut level, so a target leaf receives, through the V lists of its
   ancestors, the field of every source leaf not adjacent to it: here, all of them.
3. The resulting local expansion of each own cut box is added to that box of the rank's engine
   before its L2L pass (``far_field`` of :meth:`FMMEngine.evaluate`); the engine's tree has the
   same root cube and is refined at least to the cut level, so the box exists and its
   expansion means the same thing in both engines.

The near cut boxes are left out of step 2 because the rank's own engine already sums them
exactly as the serial FMM would; every source therefore counts once at every target.
"""

from __future__ import annotations

import time

import numpy as np

from ..fmm import FMMEngine
from ..tree.morton import decode_array
from ._mpi import sum_over_ranks

__all__ = ["TopTree", "check_boxes", "cut_box_centres", "surface_points"]


def cut_box_centres(partition, boxes):
    """Centres (len(boxes), 3), float64, of the cut boxes ``boxes`` (indices into
    ``partition.keys``)."""
    center, half = partition.root
    width = 2.0 * half / 2 ** partition.level
    return center - half + width * (decode_array(partition.keys[boxes]) + 0.5)


def surface_points(partition, boxes, surface, radius):
    """The expansion surface of ``radius`` half-widths around each of cut boxes ``boxes``:
    (len(boxes), n, 3), float64, for the unit ``surface`` (n, 3)."""
    half = partition.root[1] / 2 ** partition.level
    return cut_box_centres(partition, boxes)[:, None, :] + radius * half * surface[None]


def _surface_field(equivalent, expansions, points, gradient, kernel, wavenumber):
    """The field at ``points`` (k, 3) of the expansions (b, m, n), equivalent densities at
    ``equivalent`` (b, n, 3), by direct sums: ``(pot (k, m), grad (k, m, 3) or None)``, of
    ``expansions.dtype``."""
    from ..kernels.direct import direct  # not at import: direct compiles on first use

    b, m, n = len(equivalent), expansions.shape[1], equivalent.shape[1]
    shape = (len(points), m)
    if len(points) == 0 or b == 0:
        return np.zeros(shape, expansions.dtype), \
            np.zeros((*shape, 3), expansions.dtype) if gradient else None
    densities = expansions.reshape(b, m, n).transpose(0, 2, 1).reshape(-1, m)
    out = direct(equivalent.reshape(-1, 3), points, densities, kernel=kernel.name,
                 wavenumber=wavenumber, gradient=gradient)
    pot, grad = out if gradient else (out, None)
    return pot.astype(expansions.dtype, copy=False), \
        None if grad is None else grad.astype(expansions.dtype, copy=False)


def check_boxes(keys, rows, expected, what):
    """Raise ``ValueError`` unless ``keys[rows]`` are the box keys ``expected`` (rows found by
    ``searchsorted`` in a tree read from a file)."""
    found = rows < len(keys)
    if not found.all() or not np.array_equal(keys[rows], expected):
        raise ValueError(f"{what}: its tree lacks boxes of this rank's cut boxes")


class TopTree:
    """One rank's share of the shared coarse top.

    Parameters
    ----------
    partition : Partition
    rank : int
    engine_options : dict or None
        ``kernel``, ``wavenumber``, ``eps``, ``dipoles``, ``expansion_order``, ``dtype``,
        ``plan_loader`` of the rank's engine (the same plans serve both); None with ``engine``.
    engine : FMMEngine or None
        An engine fitted before and read back (:func:`~.files.load`), in place of a fit; it
        must be the one this partition and rank give (None when they give none).

    Attributes
    ----------
    source_boxes : ndarray of shape (n_src_cut,), int64
        The cut boxes holding sources, anywhere: the rows of the summed expansions.
    own_targets : ndarray of shape (k,), int64
        This rank's cut boxes holding targets, where :meth:`far_field` gives expansions.
    engine : FMMEngine or None
        None when this rank has no far cut box or no target.
    far : ndarray of shape (n_far,), int64
        The cut boxes holding sources that are not near this rank.
    timings : dict of str to float
        Seconds of the last :meth:`far_field`: ``"allreduce"`` (the sum over ranks, waiting
        for the slowest rank's upward pass included) and ``"top"`` (the top tree's passes).
    """

    def __init__(self, partition, rank, engine_options, engine=None):
        has_src = partition.counts[:, 0] > 0
        self.source_boxes = np.flatnonzero(has_src)
        self.own_targets = partition.target_boxes(rank)
        self.timings = {}
        far = np.flatnonzero(has_src & ~partition.near(rank))
        self.engine = None
        level, needed = partition.level, bool(len(far) and len(self.own_targets))
        if engine_options is None:
            if (engine is not None) != needed:
                raise ValueError(f"top engine: this rank's cut boxes need "
                                 f"{'one' if needed else 'none'}, got "
                                 f"{'none' if engine is None else 'one'}")
            if needed and (engine.n_sources != len(far) or engine.tree.depth != level
                           or engine.n_targets != len(self.own_targets)):
                raise ValueError(f"top engine: {engine.n_sources} sources, "
                                 f"{engine.n_targets} targets, depth {engine.tree.depth} "
                                 f"disagree with the partition's {len(far)} far and "
                                 f"{len(self.own_targets)} own cut boxes on level {level}")
            self.engine = engine
        elif needed:
            self.engine = FMMEngine(
                cut_box_centres(partition, far), cut_box_centres(partition, self.own_targets),
                leaf_size=1, **engine_options,
                tree_options={"root": partition.root, "min_depth": level, "max_depth": level})
        self.far = far
        self._far_slots = np.searchsorted(self.source_boxes, far)
        if self.engine is not None:
            keys = self.engine.tree.keys
            self._far_rows = np.searchsorted(keys, partition.box_keys(far))
            self._target_rows = np.searchsorted(keys, partition.box_keys(self.own_targets))
            if engine is not None:  # a restored tree must hold these boxes
                check_boxes(keys, self._far_rows, partition.box_keys(far), "top engine")
                check_boxes(keys, self._target_rows, partition.box_keys(self.own_targets),
                            "top engine")

    def far_field(self, comm, multipole, rows, slots):
        """Collective: the local expansions of this rank's target cut boxes due to every source
        cut box not near it.

        Parameters
        ----------
        comm : mpi4py.MPI.Intracomm
        multipole : ndarray of shape (n_boxes, m, n)
            The rank engine's multipole expansions.
        rows, slots : ndarray of shape (k,), int64
            The engine's boxes of this rank's source cut boxes, and their positions in
            ``source_boxes``.

        Returns
        -------
        local : ndarray of shape (len(own_targets), m, n), or None when there is nothing to add
        far : ndarray of shape (len(far), m, n)
            The multipole expansions of the far cut boxes (for :meth:`far_to_points`).
        """
        t0 = time.perf_counter()
        total = sum_over_ranks(comm, multipole, rows, slots, len(self.source_boxes))
        far = total[self._far_slots]
        t1 = time.perf_counter()
        local = None
        if self.engine is not None:
            top = np.zeros((self.engine.tree.n_boxes, *multipole.shape[1:]), multipole.dtype)
            top[self._far_rows] = far
            local = self.engine.translate(top)[self._target_rows]
        self.timings = {"allreduce": t1 - t0, "top": time.perf_counter() - t1}
        return local, far

    def local_to_points(self, local, equivalent, points, rows, bounds, gradient, kernel,
                        wavenumber):
        """L2P: the field at ``points`` of the local expansions ``local`` of this rank's target
        cut boxes, summed directly from their equivalent densities: the other ranks' far field
        at targets among the sources, when the targets away from them take theirs by
        :meth:`far_to_points`.

        Parameters and returns as :meth:`far_to_points`, with ``local`` of shape
        (len(own_targets), m, n) from :meth:`far_field`, ``equivalent`` their downward
        equivalent surfaces (:func:`surface_points`, ``DOWN_EQUIV``), the points grouped by
        cut box: ``points[bounds[i]:bounds[i + 1]]`` lie in cut box ``own_targets[rows[i]]``.
        """
        m = local.shape[1]
        pot = np.zeros((len(points), m), local.dtype)
        grad = np.zeros((len(points), m, 3), local.dtype) if gradient else None
        for row, lo, hi in zip(rows, bounds[:-1], bounds[1:]):
            p, g = _surface_field(equivalent[row:row + 1], local[row:row + 1], points[lo:hi],
                                  gradient, kernel, wavenumber)
            pot[lo:hi] = p
            if gradient:
                grad[lo:hi] = g
        return pot, grad

    def far_to_points(self, far, equivalent, points, gradient, kernel, wavenumber):
        """M2P: the field at ``points`` of the far cut boxes' multipoles ``far``, summed
        directly from their equivalent densities.

        For targets away from the sources with a decaying kernel (the narrow far field,
        :mod:`.narrow`): the cut boxes are then no wider than the decay allows, and the points,
        in this rank's cut boxes, lie outside every far cut box's check surface (non-adjacent
        boxes of one level: 3 half-widths away at least).

        Parameters
        ----------
        far : ndarray of shape (len(self.far), m, n)
            From :meth:`far_field`.
        equivalent : ndarray of shape (len(self.far), n, 3)
            Their upward equivalent surfaces (:func:`surface_points`, ``UP_EQUIV``), computed
            once by the caller.
        points : ndarray of shape (k, 3)
        gradient : bool
        kernel : Kernel
        wavenumber : scalar or None

        Returns
        -------
        pot : ndarray of shape (k, m), ``far.dtype``
        grad : ndarray of shape (k, m, 3) or None
        """
        return _surface_field(equivalent, far, points, gradient, kernel, wavenumber)

    @property
    def nbytes(self) -> int:
        """Bytes of the top tree and its lists on this rank (0 without one)."""
        if self.engine is None:
            return 0
        return self.engine.tree.nbytes + self.engine.lists.nbytes
