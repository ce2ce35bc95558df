"""How the distributed FMM splits space between ranks: the shared root cube, the cut level and
the Morton ranges of cut boxes each rank owns, and where every point must go.

Conventions
-----------
1. All ranks use one root cube, the one the serial FMM would build from all ranks' points
   (:func:`global_root`): the boxes of every rank's tree are boxes of one global octree.
2. The *cut level* ``L`` (2 to :data:`MAX_CUT_LEVEL`) splits the cube into cut boxes. Only the
   nonempty ones are listed, sorted by Morton number (``Partition.keys``, no placeholder bit).
   Rank ``r`` owns a contiguous run of pieces (convention 4; ``Partition.piece_owner`` is
   non-decreasing), balanced by weight (:func:`weights`: sources + targets, and a cost for
   each whole cut box, whose boxes the ranks' trees must reach) with :func:`assign`.
3. ``L`` is the deepest level at which :data:`FULL` of the points lie in cut boxes holding at
   least ``leaf_size / 8`` points (about the leaves' level: a thin ghost layer, and few boxes
   forced deeper than the serial tree's leaves), then deeper while the heaviest rank carries
   more than :data:`BALANCE` times the mean load. One rank takes level 2 (no ghosts).
4. The ranks are dealt *pieces*: the cut boxes, except that a cut box heavier than
   :data:`PIECE` of a rank's mean load is split into its nonempty descendants some levels down
   (:func:`split_heavy`, from deeper histograms of those boxes only), so that a cluster
   tighter than any cut box is shared between ranks. A cut box's pieces are contiguous in
   Morton order, so the ranks owning them are consecutive (``Partition.owners``; a rank between
   two may own none of them when an indivisible piece outweighs its share). Only a cluster of
   points at one place (a deepest box) stays on one rank.
5. A rank owns the targets of its pieces. It receives the sources of every cut box it owns a
   piece of and of the cut boxes adjacent to those (closed cubes touch): its *near* cut boxes,
   with their sources (its own and the *ghosts*). The sources of every other cut box reach it
   as multipole expansions; the expansion of a cut box split between ranks is computed by the
   first of them (each holds all its sources).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._config import MAX_DEPTH
from ..tree.morton import decode_array, encode_array, point_keys
from ..tree.octree import bounding_cube

__all__ = ["BALANCE", "BOX_WEIGHT", "FULL", "MAX_CUT_LEVEL", "PIECE", "Partition", "assign",
           "choose_level", "global_root", "local_histogram", "merge_histograms",
           "merge_refined", "refine_counts", "split_heavy", "weights"]

#: Deepest cut level: at most 8**5 cut boxes, whose multipoles every rank sums.
MAX_CUT_LEVEL = 5
#: Accepted ratio of the heaviest rank's load (sources + targets) to the mean.
BALANCE = 1.1
#: Share of the points that must lie in cut boxes about as full as leaves (convention 3).
FULL = 0.9
#: A piece heavier than this share of a rank's mean load is split (convention 5).
PIECE = 0.05
#: Levels a heavy piece is split down by at a time (8^3 children at most).
SPLIT_LEVELS = 3
#: The work of a cut box's far field, in points (:func:`weights`). Measured (Laplace, eps
#: 1e-6, 100,000 clustered points on 4 ranks): a leaf forced down to a sparse cut box spent
#: 128 us in M2L, a point about 10 us in P2P and P2M, per product.
BOX_WEIGHT = 12

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


def weights(counts, levels, level):
    """The work of each piece, in points: its sources and targets, plus :data:`BOX_WEIGHT` for a
    piece that is a whole cut box (``levels == level``): a rank's tree is refined down to the
    cut level, so a cut box with few points still has a leaf whose far field (its V list)
    costs about that many points' near field."""
    return counts.sum(axis=1) + BOX_WEIGHT * (np.asarray(levels) == level)


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


def local_histogram(src, tgt, root):
    """This rank's share of the global histogram: the level-:data:`MAX_CUT_LEVEL` boxes of
    ``root`` holding its sources (n, 3) or targets (k, 3), sorted, and ``(n_boxes, 2)`` counts
    of each."""
    keys = np.unique(np.concatenate([np.unique(fine_keys(p, root)) for p in (src, tgt)]))
    counts = np.stack([np.bincount(np.searchsorted(keys, fine_keys(p, root)),
                                   minlength=len(keys)) for p in (src, tgt)], axis=1)
    return keys, counts.astype(np.int64)


def merge_histograms(parts):
    """Sum the ranks' :func:`local_histogram` ``[(keys, (n, 2) counts), ...]`` into one."""
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts]).reshape(-1, 2)
    uniq, inverse = np.unique(keys, return_inverse=True)
    total = np.zeros((len(uniq), 2), np.int64)
    np.add.at(total, inverse.reshape(-1), counts)
    return uniq, total


def choose_level(keys, counts, size, leaf_size, min_level=2, balance=True):
    """The cut level (convention 3) for the global level-:data:`MAX_CUT_LEVEL` histogram.

    Parameters
    ----------
    keys : ndarray of shape (n,), int64, sorted, unique
    counts : ndarray of shape (n, 2), int64
        Sources and targets per box.
    size, leaf_size : int
    min_level : int, default 2
        The shallowest level allowed (up to :data:`MAX_CUT_LEVEL`): the decay of a kernel
        may need narrow cut boxes.
    balance : bool, default True
        Go deeper while whole cut boxes cannot be dealt within :data:`BALANCE`; False when
        heavy cut boxes are split instead (:func:`split_heavy`): deeper cut levels force the
        ranks' trees down to them, which costs far-field work where points are sparse.

    Returns
    -------
    int
    """
    if size == 1:  # no ghosts to thin: the serial tree
        return 2
    floor = min(max(min_level, 2), MAX_CUT_LEVEL)
    for level in range(floor + 1, MAX_CUT_LEVEL + 1):
        points = _coarsen(keys, counts, level)[1].max(axis=1)  # a leaf splits on either
        if points[8 * points >= leaf_size].sum() >= FULL * points.sum():
            floor = level
    if not balance:
        return floor
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


def piece_starts(keys, levels):
    """The first level-``MAX_DEPTH`` Morton number inside each box ``keys`` of ``levels``
    (no placeholder bit): the boxes' order along the Morton curve, whatever their levels."""
    return np.asarray(keys, np.int64) << (3 * (MAX_DEPTH - np.asarray(levels, np.int64)))


def split_heavy(keys, levels, counts, size, refine, level):
    """Split the boxes (pieces) too heavy for a contiguous split within :data:`BALANCE`.

    A piece heavier than :data:`PIECE` times the mean load of a rank is replaced by its
    nonempty descendants :data:`SPLIT_LEVELS` levels down (at most ``MAX_DEPTH``), until no
    piece is that heavy or the heavy ones cannot be split (all their points in one deepest
    box); the loop stops early once :func:`assign` balances within :data:`BALANCE`.

    Parameters
    ----------
    keys, levels : ndarray of shape (n,), int64
        Morton numbers (no placeholder bit) and levels of the pieces, in Morton order.
    counts : ndarray of shape (n, 2), int64
        Sources and targets per piece.
    size : int
    refine : callable
        ``refine(keys, levels, deeper) -> (parent index, child keys, child counts)``: the
        global histogram, ``deeper`` levels further down, of the pieces ``(keys, levels)``
        (collective: an allgather of each rank's counts).
    level : int
        The cut level (for :func:`weights`).

    Returns
    -------
    keys, levels, counts : the pieces after splitting, in Morton order.
    """
    while True:
        weight = weights(counts, levels, level)
        load = np.bincount(assign(weight, size), weight, minlength=size)
        if size == 1 or load.max() <= BALANCE * load.mean():
            break
        heavy = (weight > PIECE * weight.sum() / size) & (levels < MAX_DEPTH)
        if not heavy.any():  # what is left heavy is one deepest box: it cannot be split
            break
        deeper = np.minimum(SPLIT_LEVELS, MAX_DEPTH - levels[heavy])
        parent, child_keys, child_counts = refine(keys[heavy], levels[heavy], deeper)
        child_levels = levels[heavy][parent] + deeper[parent]
        keys = np.concatenate([keys[~heavy], child_keys])
        levels = np.concatenate([levels[~heavy], child_levels])
        counts = np.concatenate([counts[~heavy], child_counts])
        order = np.argsort(piece_starts(keys, levels), kind="stable")
        keys, levels, counts = keys[order], levels[order], counts[order]
    return keys, levels, counts


def refine_counts(points, root, keys, levels, deeper):
    """This rank's share of :func:`split_heavy`'s ``refine``: for each of ``points`` (a list
    of (n, 3) arrays: sources, targets) inside one of the pieces ``(keys, levels)``, its
    descendant ``deeper`` levels down; returns ``(piece index, child key, counts (k, 2))``
    over the nonempty children, sorted by child key within each piece."""
    center, half = root
    starts = piece_starts(keys, levels)
    found = []
    for column, pts in enumerate(points):
        full = point_keys(np.ascontiguousarray(pts, np.float64), center - half, 2.0 * half)
        piece = np.searchsorted(starts, full, side="right") - 1
        inside = piece >= 0
        inside[inside] = (full[inside] >> (3 * (MAX_DEPTH - levels[piece[inside]]))) \
            == keys[piece[inside]]
        piece = piece[inside]
        child = full[inside] >> (3 * (MAX_DEPTH - levels[piece] - deeper[piece]))
        found.append((piece, child, np.full(len(piece), column)))
    piece, child, column = (np.concatenate(a) for a in zip(*found))
    pairs, inverse = np.unique(np.stack([piece, child], axis=1), axis=0, return_inverse=True)
    counts = np.zeros((len(pairs), 2), np.int64)
    np.add.at(counts, (inverse.reshape(-1), column), 1)
    return pairs[:, 0], pairs[:, 1], counts


def merge_refined(parts):
    """Sum the ranks' :func:`refine_counts` into one global ``(piece, child, counts)``."""
    piece = np.concatenate([p for p, _, _ in parts])
    child = np.concatenate([c for _, c, _ in parts])
    counts = np.concatenate([n for _, _, n in parts]).reshape(-1, 2)
    pairs, inverse = np.unique(np.stack([piece, child], axis=1).reshape(-1, 2), axis=0,
                               return_inverse=True)
    total = np.zeros((len(pairs), 2), np.int64)
    np.add.at(total, inverse.reshape(-1), counts)
    return pairs[:, 0], pairs[:, 1], total


@dataclass(frozen=True)
class Partition:
    """The cut boxes of the global tree, the pieces they are dealt in, and their owners (see
    the module docstring).

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
    piece_keys, piece_levels : ndarray of shape (n_pieces,), int64
        The pieces: the cut boxes and, inside those split between ranks, boxes of deeper
        levels; Morton order.
    piece_counts : ndarray of shape (n_pieces, 2), int64
    piece_owner : ndarray of shape (n_pieces,), int64
        Owner rank of each piece, non-decreasing.
    piece_box : ndarray of shape (n_pieces,), int64
        The cut box of each piece (derived).
    owner_ptr, owners : ndarray of int64
        The ranks owning pieces of cut box ``b``: ``owners[owner_ptr[b]:owner_ptr[b + 1]]``,
        ascending (derived); ``first`` and ``last`` are the first and last of them.
    """

    root: tuple
    level: int
    size: int
    keys: np.ndarray
    counts: np.ndarray
    piece_keys: np.ndarray
    piece_levels: np.ndarray
    piece_counts: np.ndarray
    piece_owner: np.ndarray

    def __post_init__(self):
        # the cut box of each piece, and the ranks owning pieces of each cut box (CSR; a rank
        # may own none of the pieces between two it owns, when an indivisible piece outweighs
        # its share)
        box = np.searchsorted(self.keys,
                              self.piece_keys >> (3 * (self.piece_levels - self.level)))
        pairs = np.unique(box * self.size + self.piece_owner)
        pair_box, owners = pairs // self.size, pairs % self.size
        ptr = np.searchsorted(pair_box, np.arange(len(self.keys) + 1))
        for name, value in (("piece_box", box), ("owner_ptr", ptr), ("owners", owners),
                            ("first", owners[ptr[:-1]] if len(owners) else ptr[:-1]),
                            ("last", owners[ptr[1:] - 1] if len(owners) else ptr[:-1])):
            object.__setattr__(self, name, value)

    @classmethod
    def from_histogram(cls, root, keys, counts, size, leaf_size, refine=None, min_level=2):
        """The partition of a global level-:data:`MAX_CUT_LEVEL` histogram (as for
        :func:`choose_level`), with the heavy cut boxes split by :func:`split_heavy` when
        ``refine`` is given."""
        level = choose_level(keys, counts, size, leaf_size, min_level, balance=refine is None)
        cut, cut_counts = _coarsen(keys, counts, level)
        p_keys, p_levels, p_counts = cut, np.full(len(cut), level, np.int64), cut_counts
        if refine is not None:
            p_keys, p_levels, p_counts = split_heavy(p_keys, p_levels, p_counts, size, refine,
                                                     level)
        return cls(root, level, size, cut, cut_counts, p_keys, p_levels, p_counts,
                   assign(weights(p_counts, p_levels, level), size))

    def loads(self):
        """The work of each rank: the sum of its pieces' :func:`weights`, shape (size,)."""
        return np.bincount(self.piece_owner,
                           weights(self.piece_counts, self.piece_levels, self.level),
                           minlength=self.size)

    @property
    def owner(self):
        """The owner of each cut box held by one rank; -1 for a box split between ranks."""
        return np.where(self.first == self.last, self.first, -1)

    def box_keys(self, boxes):
        """Placeholder-bit box keys (:mod:`fmmsolve.tree.morton`) of cut boxes ``boxes``."""
        return self.keys[boxes] | (np.int64(1) << (3 * self.level))

    def box_of(self, points):
        """Index into ``keys`` of the cut box of each point (n, 3); every point must lie in a
        listed box."""
        keys = fine_keys(points, self.root) >> (3 * (MAX_CUT_LEVEL - self.level))
        return np.searchsorted(self.keys, keys)

    def piece_of(self, points):
        """Index of the piece of each point (n, 3); every point must lie in a listed piece."""
        center, half = self.root
        full = point_keys(np.ascontiguousarray(points, np.float64), center - half, 2.0 * half)
        starts = piece_starts(self.piece_keys, self.piece_levels)
        return np.searchsorted(starts, full, side="right") - 1

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
        """Indices of the cut boxes ``rank`` owns a piece of, ascending."""
        return np.unique(self.piece_box[self.piece_owner == rank])

    def contributed(self, rank):
        """The cut boxes holding sources whose multipole ``rank`` adds to the sum over ranks:
        those whose first piece it owns (every owner of a piece holds all the box's
        sources)."""
        return np.flatnonzero((self.first == rank) & (self.counts[:, 0] > 0))

    def target_boxes(self, rank):
        """The cut boxes where ``rank`` owns targets (in pieces holding targets)."""
        held = (self.piece_owner == rank) & (self.piece_counts[:, 1] > 0)
        return np.unique(self.piece_box[held])

    def near(self, rank):
        """Boolean mask (n_cut,): the cut boxes whose sources ``rank`` holds (convention 4)."""
        mask = np.zeros(len(self.keys), bool)
        nb = self.neighbours(self.owned(rank))
        mask[nb[nb >= 0]] = True
        return mask

    def route(self, points, ghosts):
        """Where each of this rank's ``points`` goes: a target to its piece's owner; a source,
        with ``ghosts``, to every owner of a piece of its cut box or of an adjacent one.

        Returns
        -------
        order : ndarray of shape (n_sent,), int64
            Indices into ``points`` in the order they are sent (by destination rank; a point
            may appear once per destination).
        counts : ndarray of shape (size,), int64
            Points sent to each rank.
        """
        if not ghosts:
            dest, index = self.piece_owner[self.piece_of(points)], np.arange(len(points))
        else:  # (point's box, destination) pairs, each destination once per box
            box = self.box_of(points)
            boxes, inverse = np.unique(box, return_inverse=True)
            nb = self.neighbours(boxes)
            rows, cols = np.nonzero(nb >= 0)
            nb = nb[rows, cols]
            spans = np.diff(self.owner_ptr)[nb]  # the ranks owning pieces of nb
            at = np.repeat(self.owner_ptr[nb], spans) + np.arange(spans.sum()) \
                - np.repeat(np.cumsum(spans) - spans, spans)
            ranks = self.owners[at]
            pairs = np.unique(np.repeat(rows, spans) * self.size + ranks)  # by box, then rank
            pair_box, pair_dest = pairs // self.size, pairs % self.size
            ptr = np.searchsorted(pair_box, np.arange(len(boxes) + 1))
            per_point = np.diff(ptr)[inverse]
            index = np.repeat(np.arange(len(box)), per_point)
            within = np.arange(len(index)) - np.repeat(np.cumsum(per_point) - per_point,
                                                       per_point)
            dest = pair_dest[np.repeat(ptr[inverse], per_point) + within]
        order = np.argsort(dest, kind="stable")
        return index[order], np.bincount(dest, minlength=self.size).astype(np.int64)
