"""How the distributed FMM splits space between ranks: the shared root cube, the cut level and
the Morton ranges of cut boxes each rank owns, and where every point must go.

Conventions
-----------
1. All ranks use one root cube, the one the serial FMM would build from all ranks' points
   (:func:`global_root`): the boxes of every rank's tree are boxes of one global octree.
2. The *cut level* ``L`` (2 to :data:`MAX_CUT_LEVEL`) splits the cube into cut boxes. Only the
   nonempty ones are listed, sorted by Morton number (``Partition.keys``, no placeholder bit),
   and rank ``r`` owns a contiguous run of them (``Partition.owner`` is non-decreasing),
   balanced by weight = sources + targets (:func:`assign`).
3. ``L`` is the deepest level at which :data:`FULL` of the points lie in cut boxes holding at
   least ``leaf_size / 8`` points (about the leaves' level: a thin ghost layer, and few boxes
   forced deeper than the serial tree's leaves), then deeper while the heaviest rank carries
   more than :data:`BALANCE` times the mean load. One rank takes level 2 (no ghosts). A cut box is
   never split between ranks, so a cluster tighter than a cut box of level ``MAX_CUT_LEVEL`` stays
   on one rank: that bounds the balance of very clustered points (stated in docs/mpi.md).
4. A rank's *near* cut boxes are its own and those adjacent to them (closed cubes touch). It
   receives the sources of all of them (its own sources and the *ghosts*) and the targets of its
   own; the sources of every other cut box reach it as multipole expansions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._config import MAX_DEPTH
from ..tree.morton import decode_array, encode_array, point_keys
from ..tree.octree import bounding_cube

__all__ = ["BALANCE", "FULL", "MAX_CUT_LEVEL", "Partition", "assign", "choose_level",
           "global_root"]

#: Deepest cut level: at most 8**5 cut boxes, whose multipoles every rank sums.
MAX_CUT_LEVEL = 5
#: Accepted ratio of the heaviest rank's load (sources + targets) to the mean.
BALANCE = 1.1
#: Share of the points that must lie in cut boxes about as full as leaves (convention 3).
FULL = 0.9

_OFFSETS = np.array([(i, j, k) for k in (-1, 0, 1) for j in (-1, 0, 1) for i in (-1, 0, 1)],
                    np.int64)


def global_root(lo, hi):
    """The serial FMM's root cube of points whose coordinate-wise extremes are ``lo``, ``hi``
    (each of shape (3,)): ``(center, half_width)``."""
    return bounding_cube([np.stack([lo, hi])])


def fine_keys(points, root):
    """Morton numbers of ``points`` (n, 3) on level :data:`MAX_CUT_LEVEL` of ``root``."""
    center, half = root
    keys = point_keys(np.ascontiguousarray(points, np.float64), center - half, 2.0 * half)
    return keys >> (3 * (MAX_DEPTH - MAX_CUT_LEVEL))


def assign(weights, size):
    """Owner rank of each box of a Morton-ordered run: contiguous ranges of about equal weight.

    A box goes to the rank whose share ``[r W / size, (r + 1) W / size)`` holds the middle of
    its weight, so every rank gets a contiguous (possibly empty) range.

    Parameters
    ----------
    weights : ndarray of shape (n,), non-negative
    size : int
        Number of ranks.

    Returns
    -------
    ndarray of shape (n,), int64, non-decreasing, in [0, size)
    """
    weights = np.asarray(weights, np.float64)
    total = weights.sum()
    if total <= 0:
        return np.zeros(len(weights), np.int64)
    middle = np.cumsum(weights) - 0.5 * weights
    return np.minimum((middle * size / total).astype(np.int64), size - 1)


def _coarsen(keys, counts, level):
    """Histogram ``counts`` (n, c) over sorted level-``MAX_CUT_LEVEL`` ``keys``, summed onto
    ``level``: (keys, counts) of that level."""
    coarse, first = np.unique(keys >> (3 * (MAX_CUT_LEVEL - level)), return_index=True)
    return coarse, np.add.reduceat(counts, first, axis=0) if len(keys) else counts


def choose_level(keys, counts, size, leaf_size):
    """The cut level (convention 3) for the global level-:data:`MAX_CUT_LEVEL` histogram.

    Parameters
    ----------
    keys : ndarray of shape (n,), int64, sorted, unique
    counts : ndarray of shape (n, 2), int64
        Sources and targets per box.
    size, leaf_size : int

    Returns
    -------
    int
    """
    if size == 1:  # no ghosts to thin: the serial tree
        return 2
    floor = 2
    for level in range(3, MAX_CUT_LEVEL + 1):
        points = _coarsen(keys, counts, level)[1].max(axis=1)  # a leaf splits on either
        if points[8 * points >= leaf_size].sum() >= FULL * points.sum():
            floor = level
    best, best_ratio = floor, np.inf
    for level in range(floor, MAX_CUT_LEVEL + 1):
        weight = _coarsen(keys, counts, level)[1].sum(axis=1)
        load = np.bincount(assign(weight, size), weight, minlength=size)
        ratio = load.max() / load.mean() if load.mean() > 0 else 1.0
        if ratio < best_ratio - 1e-12:
            best, best_ratio = level, ratio
        if ratio <= BALANCE:
            break
    return best


@dataclass(frozen=True)
class Partition:
    """The cut boxes of the global tree and their owners (see the module docstring).

    Attributes
    ----------
    root : tuple (center ndarray of shape (3,), half_width float)
    level : int
        The cut level ``L``.
    size : int
        Number of ranks.
    keys : ndarray of shape (n_cut,), int64
        Morton numbers (level ``L``) of the nonempty cut boxes, sorted.
    counts : ndarray of shape (n_cut, 2), int64
        Sources and targets in each cut box, over all ranks.
    owner : ndarray of shape (n_cut,), int64
        Owner rank of each cut box, non-decreasing.
    """

    root: tuple
    level: int
    size: int
    keys: np.ndarray
    counts: np.ndarray
    owner: np.ndarray

    @classmethod
    def from_histogram(cls, root, keys, counts, size, leaf_size):
        """The partition of a global level-:data:`MAX_CUT_LEVEL` histogram (as for
        :func:`choose_level`)."""
        level = choose_level(keys, counts, size, leaf_size)
        cut, cut_counts = _coarsen(keys, counts, level)
        return cls(root, level, size, cut, cut_counts, assign(cut_counts.sum(axis=1), size))

    def box_keys(self, boxes):
        """Placeholder-bit box keys (:mod:`fmmsolve.tree.morton`) of cut boxes ``boxes``."""
        return self.keys[boxes] | (np.int64(1) << (3 * self.level))

    def box_of(self, points):
        """Index into ``keys`` of the cut box of each point (n, 3); every point must lie in a
        listed box."""
        keys = fine_keys(points, self.root) >> (3 * (MAX_CUT_LEVEL - self.level))
        return np.searchsorted(self.keys, keys)

    def neighbours(self, boxes):
        """(len(boxes), 27) indices of the listed cut boxes adjacent to each of ``boxes`` (the
        box itself included), -1 where that neighbour is empty or outside the cube."""
        anchors = decode_array(self.keys[boxes])[:, None, :] + _OFFSETS
        inside = ((anchors >= 0) & (anchors < (1 << self.level))).all(axis=2)
        codes = encode_array(np.clip(anchors, 0, (1 << self.level) - 1).reshape(-1, 3))
        pos = np.minimum(np.searchsorted(self.keys, codes), len(self.keys) - 1)
        found = (self.keys[pos] == codes).reshape(inside.shape) & inside
        return np.where(found, pos.reshape(inside.shape), -1)

    def owned(self, rank):
        """Indices of the cut boxes ``rank`` owns (a contiguous range)."""
        return np.arange(*np.searchsorted(self.owner, [rank, rank + 1]))

    def near(self, rank):
        """Boolean mask (n_cut,): the cut boxes whose sources ``rank`` holds (convention 4)."""
        mask = np.zeros(len(self.keys), bool)
        nb = self.neighbours(self.owned(rank))
        mask[nb[nb >= 0]] = True
        return mask

    def route(self, points, ghosts):
        """Where each of this rank's ``points`` goes: to its cut box's owner, and with
        ``ghosts`` also to the owners of the adjacent cut boxes.

        Returns
        -------
        order : ndarray of shape (n_sent,), int64
            Indices into ``points`` in the order they are sent (by destination rank; a point
            may appear once per destination).
        counts : ndarray of shape (size,), int64
            Points sent to each rank.
        """
        box = self.box_of(points)
        if not ghosts:
            dest, index = self.owner[box], np.arange(len(box))
        else:  # (point's box, destination) pairs, each destination once per box
            boxes, inverse = np.unique(box, return_inverse=True)
            nb = self.neighbours(boxes)
            rows = np.nonzero(nb >= 0)[0]
            pairs = np.unique(rows * self.size + self.owner[nb[nb >= 0]])  # by box, then rank
            pair_box, pair_dest = pairs // self.size, pairs % self.size
            ptr = np.searchsorted(pair_box, np.arange(len(boxes) + 1))
            per_point = np.diff(ptr)[inverse]
            index = np.repeat(np.arange(len(box)), per_point)
            within = np.arange(len(index)) - np.repeat(np.cumsum(per_point) - per_point,
                                                       per_point)
            dest = pair_dest[np.repeat(ptr[inverse], per_point) + within]
        order = np.argsort(dest, kind="stable")
        return index[order], np.bincount(dest, minlength=self.size).astype(np.int64)
