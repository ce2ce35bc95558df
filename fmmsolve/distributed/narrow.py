"""The narrow far field of the distributed FMM: targets away from the sources of a kernel that
decays.

The serial FMM gives a target away from the sources its far field from boxes no wider than
the decay allows (:func:`fmmsolve.tree.lists.narrow_far_field`, ``accuracy.DECAY_WIDTH``): an
expansion of a field that falls by ``e^(-d w)`` across its box of width ``w`` loses up to
``e^(2 d w)`` of relative accuracy where nothing nearer dominates. A rank's engine does the
same for the sources it holds. The other ranks' field would reach its targets through the
top tree's local expansions, built down from the widest levels; so, for such operators:

1. the cut boxes are made no wider than the decay allows (a minimum cut level), and the top's
   local expansions are not added before L2L;
2. a target farther than twice that half-width from every source its rank holds takes the far
   cut boxes' field directly from their multipole expansions (M2P, :meth:`TopTree.far_to_points
   <.top.TopTree.far_to_points>`);
3. every other target takes it from its cut box's local expansion, evaluated at the target
   (L2P, :meth:`TopTree.local_to_points <.top.TopTree.local_to_points>`): a narrow expansion.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.spatial import cKDTree

from ..accuracy import max_expansion_half_width
from ..operators.surfaces import DOWN_EQUIV, UP_EQUIV
from ._mpi import MPI
from .top import surface_points

__all__ = ["NarrowFarField", "min_cut_level"]


def min_cut_level(kernel, wavenumber, half_width) -> int:
    """The shallowest level whose boxes are no wider than ``kernel``'s decay allows, in a root
    cube of ``half_width`` (at least 2; may exceed the deepest cut level)."""
    width = max_expansion_half_width(kernel, wavenumber)
    return max(2, int(np.ceil(np.log2(max(half_width / width, 1.0)))))


class NarrowFarField:
    """Which of a rank's own targets take the other ranks' field by M2P and which by L2P, and
    the sums that add it.

    Collective (one allreduce): refused on every rank, with a ``ValueError`` naming the
    wavenumber, when some rank has targets away from its sources and the cut boxes are wider
    than the decay allows (cut boxes finer than level 5 would be needed).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    engine : FMMEngine or None
        The rank's engine.
    top : TopTree
    partition : Partition
    options : dict
        The operator's resolved options (``kernel``, ``wavenumber``).
    n_own_targets, n_held_sources : int
        The engine's first ``n_own_targets`` targets are the rank's own (a placeholder may
        follow); ``n_held_sources`` 0 means its one source is a placeholder.

    Attributes
    ----------
    away_index, near_index : ndarray of int64
        Positions among the rank's own targets (the engine's caller order); the near ones
        grouped by cut box.
    away_points, near_points : ndarray of shape (k, 3), float64
    near_rows, near_bounds : ndarray of int64
        The rows in ``top.own_targets`` of the near targets' cut boxes, and where each one's
        group starts in ``near_points`` (with the end last).
    near_equivalent, far_equivalent : ndarray of shape (k, n, 3), float64
        The downward equivalent surfaces of ``top.own_targets`` and the upward ones of
        ``top.far`` (empty when this rank has no target away from the sources).
    """

    def __init__(self, comm, engine, top, partition, options, n_own_targets, n_held_sources):
        self.top, self.partition = top, partition
        self.kernel, self.wavenumber = options["kernel"], options["wavenumber"]
        width = max_expansion_half_width(self.kernel, self.wavenumber)
        points, away = np.zeros((0, 3)), np.zeros(0, bool)
        if engine is not None and n_own_targets:
            tree = engine.tree
            points = np.empty((tree.targets.shape[1], 3))
            points[tree.target_perm] = tree.targets.T
            points = points[:n_own_targets]  # not the placeholder target
            distance = np.full(len(points), np.inf)
            if n_held_sources:
                distance = cKDTree(tree.sources.T).query(points)[0]
            away = distance > 2.0 * width
        self.away_index, self.away_points = np.flatnonzero(away), points[away]
        # the near targets grouped by cut box, once: L2P goes box by box
        near = np.flatnonzero(~away)
        rows = np.searchsorted(top.own_targets, partition.box_of(points[near]))
        order = np.argsort(rows, kind="stable")
        self.near_index, self.near_points = near[order], points[near[order]]
        self.near_rows, starts = np.unique(rows[order], return_index=True)
        self.near_bounds = np.append(starts, len(order))
        # the equivalent surfaces the sums start from, once (the far ones only if needed)
        surface = np.zeros((0, 3)) if engine is None else engine.plan.surface
        self.near_equivalent = surface_points(partition, top.own_targets, surface, DOWN_EQUIV)
        self.far_equivalent = surface_points(
            partition, top.far if len(self.away_index) else top.far[:0], surface, UP_EQUIV)
        if not comm.allreduce(len(self.away_index) if len(top.far) else 0, op=MPI.MAX):
            return
        half = partition.root[1] / 2 ** partition.level
        if half > width * (1 + 1e-12):
            raise ValueError(
                f"wavenumber: the {self.kernel.name!r} kernel decays too fast (k = "
                f"{self.wavenumber}) for the distributed operator's targets away from the "
                f"sources: their far field must come from boxes of half-width <= {width:.3g}, "
                f"and the finest cut boxes (level {partition.level}) have {half:.3g}; put the "
                f"targets among the sources, or use the serial FMMOperator")

    def add(self, pot, grad, local, far, gradient):
        """Add the other ranks' field at the rank's own targets to ``pot`` (n, m) and, with
        ``gradient``, ``grad`` (n, m, 3), in place: L2P from ``local`` (the top's local
        expansions of ``top.own_targets``), M2P from ``far`` (the far cut boxes' multipoles).
        Returns the seconds it took."""
        t0 = time.perf_counter()
        rest = (gradient, self.kernel, self.wavenumber)
        near = self.top.local_to_points(local, self.near_equivalent, self.near_points,
                                        self.near_rows, self.near_bounds, *rest)
        away = self.top.far_to_points(far, self.far_equivalent, self.away_points, *rest)
        for index, (p, g) in ((self.near_index, near), (self.away_index, away)):
            pot[index] += p
            if gradient:
                grad[index] += g
        return time.perf_counter() - t0
