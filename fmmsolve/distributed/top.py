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

import numpy as np

from ..fmm import FMMEngine
from ..tree.morton import decode_array
from ._mpi import sum_over_ranks

__all__ = ["TopTree", "cut_box_centres"]


def cut_box_centres(partition, boxes):
    """Centres (len(boxes), 3), float64, of the cut boxes ``boxes`` (indices into
    ``partition.keys``)."""
    center, half = partition.root
    width = 2.0 * half / 2 ** partition.level
    return center - half + width * (decode_array(partition.keys[boxes]) + 0.5)


class TopTree:
    """One rank's share of the shared coarse top.

    Parameters
    ----------
    partition : Partition
    rank : int
    engine_options : dict
        ``kernel``, ``wavenumber``, ``eps``, ``expansion_order``, ``dtype``, ``plan_loader``
        of the rank's engine (the same plans serve both).

    Attributes
    ----------
    source_boxes : ndarray of shape (n_src_cut,), int64
        The cut boxes holding sources, anywhere: the rows of the summed expansions.
    own_targets : ndarray of shape (k,), int64
        This rank's cut boxes holding targets, where :meth:`far_field` gives expansions.
    engine : FMMEngine or None
        None when this rank has no far cut box or no target.
    """

    def __init__(self, partition, rank, engine_options):
        has_src = partition.counts[:, 0] > 0
        self.source_boxes = np.flatnonzero(has_src)
        own = partition.owned(rank)
        self.own_targets = own[partition.counts[own, 1] > 0]
        far = np.flatnonzero(has_src & ~partition.near(rank))
        self.engine = None
        if len(far) and len(self.own_targets):
            level = partition.level
            self.engine = FMMEngine(
                cut_box_centres(partition, far), cut_box_centres(partition, self.own_targets),
                leaf_size=1, **engine_options,
                tree_options={"root": partition.root, "min_depth": level, "max_depth": level})
            keys = self.engine.tree.keys
            self._far_slots = np.searchsorted(self.source_boxes, far)
            self._far_rows = np.searchsorted(keys, partition.box_keys(far))
            self._target_rows = np.searchsorted(keys, partition.box_keys(self.own_targets))

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
        ndarray of shape (len(own_targets), m, n), or None when there is nothing to add
        """
        total = sum_over_ranks(comm, multipole, rows, slots, len(self.source_boxes))
        if self.engine is None:
            return None
        top = np.zeros((self.engine.tree.n_boxes, *multipole.shape[1:]), multipole.dtype)
        top[self._far_rows] = total[self._far_slots]
        return self.engine.translate(top)[self._target_rows]

    @property
    def nbytes(self) -> int:
        """Bytes of the top tree and its lists on this rank (0 without one)."""
        if self.engine is None:
            return 0
        return self.engine.tree.nbytes + self.engine.lists.nbytes
