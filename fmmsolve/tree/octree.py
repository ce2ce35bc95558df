"""The adaptive octree: a frozen record of flat arrays, and its construction.

Layout
------
* One tree covers sources and targets together: the root is the smallest cube (slightly
  enlarged) holding both sets. Points are sorted by Morton key (:mod:`.morton`), sources and
  targets separately, and the permutations are kept, so every box owns a contiguous range of
  sorted sources and one of sorted targets.
* Boxes are stored level by level (breadth first) and in Morton order within a level, which is
  the order of their keys: ``keys`` is sorted, so a box is found by binary search on its key.
  The children of box ``b`` are the boxes ``child_ptr[b] : child_ptr[b + 1]`` (none for a leaf).
* Refinement: a box is split while it holds more than ``leaf_size`` sources or more than
  ``leaf_size`` targets (with ``targets=None`` the two are the same points, counted once).
  Children that would hold no point are not stored.
* Depth limit: no box is deeper than ``max_depth`` (at most ``MAX_DEPTH`` = 20, the resolution
  of the keys). Extremely clustered points therefore stop splitting there, and such leaves may
  hold more than ``leaf_size`` points. A box whose points all share one key at that resolution
  (coincident points, or closer than 2^-20 of the root) is not split at all: no split would
  separate them, and a chain of boxes down to the limit would only make the far field of a
  tiny box travel through 20 levels (which float32 dipoles cannot afford).
* The tree is *not* 2:1 balanced; :mod:`.lists` builds the adaptive U/V/W/X lists, which are
  correct for any level difference between neighbouring leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numba
import numpy as np

from .._config import DEFAULT_LEAF_SIZE, MAX_DEPTH
from .._jit import jit, prange
from .._validation import as_points, check_positive_int
from .morton import decode_array, point_keys
from .sorting import argsort_keys, take_columns

__all__ = ["Octree", "build_octree"]


@dataclass(frozen=True, eq=False)
class Octree:
    """An adaptive octree over sources and targets, stored as flat arrays.

    Attributes
    ----------
    center : ndarray of shape (3,), float64
        Centre of the root cube.
    half_width : float
        Half the edge of the root cube.
    leaf_size, max_depth : int
        The refinement parameters the tree was built with.
    keys : ndarray of shape (n_boxes,), int64
        Box keys (placeholder-bit Morton keys, see :mod:`.morton`), sorted.
    levels : ndarray of shape (n_boxes,), int64
        Level of each box; the root is level 0.
    anchors : ndarray of shape (n_boxes, 3), int64
        Integer anchor of each box at its own level.
    parent : ndarray of shape (n_boxes,), int64
        Index of the parent box, -1 for the root.
    child_ptr : ndarray of shape (n_boxes + 1,), int64
        Children of box ``b`` are ``range(child_ptr[b], child_ptr[b + 1])``.
    level_ptr : ndarray of shape (depth + 2,), int64
        Boxes of level ``l`` are ``range(level_ptr[l], level_ptr[l + 1])``.
    src_begin, src_end, tgt_begin, tgt_end : ndarray of shape (n_boxes,), int64
        Each box's range of sorted sources and of sorted targets.
    leaves : ndarray of shape (n_leaves,), int64
        Leaf boxes in Morton (point) order: their point ranges follow one another.
    sources : ndarray of shape (3, n_sources), float64, C-contiguous
        Source coordinates in tree order, structure of arrays.
    source_perm : ndarray of shape (n_sources,), int64
        ``sources[:, p]`` is input source ``source_perm[p]``.
    targets, target_perm
        The same for targets; the very same arrays as ``sources, source_perm`` when the tree
        was built with ``targets=None``.
    targets_are_sources : bool
        Whether the tree was built with ``targets=None``.
    """

    center: np.ndarray
    half_width: float
    leaf_size: int
    max_depth: int
    keys: np.ndarray
    levels: np.ndarray
    anchors: np.ndarray
    parent: np.ndarray
    child_ptr: np.ndarray
    level_ptr: np.ndarray
    src_begin: np.ndarray
    src_end: np.ndarray
    tgt_begin: np.ndarray
    tgt_end: np.ndarray
    leaves: np.ndarray
    sources: np.ndarray
    source_perm: np.ndarray
    targets: np.ndarray
    target_perm: np.ndarray
    targets_are_sources: bool

    @property
    def n_boxes(self) -> int:
        return self.keys.shape[0]

    @property
    def n_leaves(self) -> int:
        return self.leaves.shape[0]

    @property
    def n_sources(self) -> int:
        return self.sources.shape[1]

    @property
    def n_targets(self) -> int:
        return self.targets.shape[1]

    @property
    def depth(self) -> int:
        """Deepest level holding a box."""
        return self.level_ptr.shape[0] - 2

    @property
    def is_leaf(self) -> np.ndarray:
        """Boolean mask of shape (n_boxes,)."""
        return self.child_ptr[1:] == self.child_ptr[:-1]

    def box_half_widths(self) -> np.ndarray:
        """Half-width of every box, shape (n_boxes,), float64."""
        return self.half_width / 2.0 ** self.levels

    def box_centers(self) -> np.ndarray:
        """Centre of every box, shape (n_boxes, 3), float64."""
        hw = self.box_half_widths()[:, None]
        return self.center - self.half_width + hw * (2 * self.anchors + 1)

    @property
    def nbytes(self) -> int:
        """Bytes held by the tree's arrays (shared source/target arrays counted once)."""
        seen, total = set(), 0
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and id(value) not in seen:
                seen.add(id(value))
                total += value.nbytes
        return total

    def summary(self) -> dict:
        """Depth, box and leaf counts and point counts per leaf, as plain numbers."""
        leaves = self.leaves
        n_src = self.src_end[leaves] - self.src_begin[leaves]
        n_tgt = self.tgt_end[leaves] - self.tgt_begin[leaves]
        return {
            "depth": self.depth,
            "n_boxes": self.n_boxes,
            "n_leaves": self.n_leaves,
            "n_sources": self.n_sources,
            "n_targets": self.n_targets,
            "mean_sources_per_leaf": float(n_src.mean()),
            "max_sources_per_leaf": int(n_src.max()),
            "max_targets_per_leaf": int(n_tgt.max()),
            "nbytes": self.nbytes,
        }


@jit(parallel=True)
def _extent(points, n_slices, lo, hi):
    """Per coordinate, ``lo`` and ``hi`` lowered and raised to the points' extent: one pass in
    ``n_slices`` slices, where NumPy's ``min(axis=0)`` of an (n, 3) array strides."""
    n, dims = points.shape
    part_lo = np.empty((n_slices, dims))
    part_hi = np.empty((n_slices, dims))
    for t in prange(n_slices):
        for d in range(dims):
            part_lo[t, d], part_hi[t, d] = lo[d], hi[d]
        for i in range(t * n // n_slices, (t + 1) * n // n_slices):
            for d in range(dims):
                part_lo[t, d] = min(part_lo[t, d], points[i, d])
                part_hi[t, d] = max(part_hi[t, d], points[i, d])
    for t in range(n_slices):
        for d in range(dims):
            lo[d], hi[d] = min(lo[d], part_lo[t, d]), max(hi[d], part_hi[t, d])


def bounding_cube(points_list):
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for p in points_list:
        _extent(np.ascontiguousarray(p, dtype=np.float64), numba.get_num_threads(), lo, hi)
    center = 0.5 * (lo + hi)
    half = 0.5 * float(np.max(hi - lo))
    # Enlarge a little so no point sits on the upper faces, and never let the cube collapse
    # (one point, or all coincident): the floor keeps key computation finite at any scale.
    floor = max(float(np.max(np.abs(center))) * 1e-12, np.finfo(np.float64).tiny * 1e6)
    half = max(half * (1.0 + 1e-9), floor) if half > 0 else max(1.0, floor)
    return center, half


def _check_root(root, points_list):
    """Validate an explicit root cube ``(center, half_width)`` against the points."""
    try:
        center, half = root
        center = np.asarray(center, np.float64).reshape(3)
        half = float(half)
    except (TypeError, ValueError):
        raise ValueError(f"root must be a pair (center of shape (3,), half_width), "
                         f"got {root!r}") from None
    if not (np.isfinite(center).all() and np.isfinite(half) and half > 0):
        raise ValueError(f"root must have a finite center and a positive half_width, got {root!r}")
    for p in points_list:
        if len(p) and ((p < center - half).any() or (p >= center + half).any()):
            raise ValueError("root does not hold every point: points must lie in "
                             "[center - half_width, center + half_width)")
    return center, half


def _sort_by_key(points, lower, edge):
    keys = point_keys(points, lower, edge)
    perm = argsort_keys(keys)
    return keys[perm], perm, take_columns(points, perm)


def _inseparable(s_keys, t_keys, sr, tr):
    """Per box (point ranges ``sr``, ``tr`` into the sorted keys): whether all its sources and
    targets share one key at the finest level, so that no split would ever separate them."""
    def one_key(keys, rng):
        empty = rng[:, 1] == rng[:, 0]
        first = keys[np.minimum(rng[:, 0], len(keys) - 1)]
        last = keys[np.maximum(rng[:, 1] - 1, 0)]
        return empty, first, first == last

    s_empty, s_key, s_one = one_key(s_keys, sr)
    t_empty, t_key, t_one = one_key(t_keys, tr)
    return (s_empty | s_one) & (t_empty | t_one) & (s_empty | t_empty | (s_key == t_key))


def build_octree(sources, targets=None, *, leaf_size=DEFAULT_LEAF_SIZE, max_depth=MAX_DEPTH,
                 root=None, min_depth=0):
    """Build the adaptive octree of ``sources`` and ``targets``.

    Parameters
    ----------
    sources : array_like of shape (n_sources, 3)
        Finite coordinates, any location and scale.
    targets : array_like of shape (n_targets, 3) or None
        None means the targets are the sources.
    leaf_size : int, default 64
        Maximum number of sources, and of targets, in a leaf above ``max_depth``.
    max_depth : int, default 20
        Deepest level allowed, 0 <= max_depth <= 20.
    root : tuple (center, half_width) or None
        The root cube: ``center`` of shape (3,) and ``half_width`` > 0, which must hold every
        point strictly inside its upper faces. None (default) takes the smallest cube holding
        the points, slightly enlarged. The distributed FMM passes the cube of all ranks' points
        so that every rank's tree has the same boxes.
    min_depth : int, default 0
        Every box above this level that holds a point is split, whatever its count, so each
        point lies in a box of level ``min_depth`` (at most ``max_depth``).

    Returns
    -------
    Octree
    """
    leaf_size = check_positive_int(leaf_size, "leaf_size")
    if isinstance(max_depth, bool) or not isinstance(max_depth, (int, np.integer)) \
            or not 0 <= max_depth <= MAX_DEPTH:
        raise ValueError(f"max_depth must be an integer in [0, {MAX_DEPTH}], got {max_depth!r}")
    if isinstance(min_depth, bool) or not isinstance(min_depth, (int, np.integer)) \
            or not 0 <= min_depth <= max_depth:
        raise ValueError(f"min_depth must be an integer in [0, max_depth={max_depth}], "
                         f"got {min_depth!r}")
    src = as_points(sources, "sources")
    tgt = None if targets is None else as_points(targets, "targets")

    if root is None:
        center, half = bounding_cube([src] if tgt is None else [src, tgt])
    else:
        center, half = _check_root(root, [src] if tgt is None else [src, tgt])
    lower, edge = center - half, 2.0 * half
    s_keys, s_perm, s_sorted = _sort_by_key(src, lower, edge)
    if tgt is None:
        t_keys, t_perm, t_sorted = s_keys, s_perm, s_sorted
    else:
        t_keys, t_perm, t_sorted = _sort_by_key(tgt, lower, edge)

    # Level by level: split every box over the limits, locating each child's point range by
    # binary search of its key range in the sorted point keys (vectorised over the level).
    keys = [np.array([1], np.int64)]
    parents = [np.array([-1], np.int64)]
    s_rng = [np.array([[0, len(s_keys)]], np.int64)]
    t_rng = [np.array([[0, len(t_keys)]], np.int64)]
    n_children = []
    offset = 0
    for level in range(max_depth + 1):
        k, sr, tr = keys[-1], s_rng[-1], t_rng[-1]
        split = ((sr[:, 1] - sr[:, 0]) > leaf_size) | ((tr[:, 1] - tr[:, 0]) > leaf_size)
        split &= ~_inseparable(s_keys, t_keys, sr, tr)
        if level < min_depth:  # every stored box holds a point
            split[:] = True
        if level == max_depth:
            split[:] = False
        counts = np.zeros(len(k), np.int64)
        if not split.any():
            n_children.append(counts)
            break
        morton = k[split] ^ (np.int64(1) << (3 * level))
        shift = 3 * (MAX_DEPTH - level - 1)
        bounds = ((morton[:, None] << 3) + np.arange(9)) << shift  # child c spans [c, c+1)
        s_idx = np.searchsorted(s_keys, bounds)
        t_idx = s_idx if tgt is None else np.searchsorted(t_keys, bounds)
        occupied = (s_idx[:, 1:] > s_idx[:, :-1]) | (t_idx[:, 1:] > t_idx[:, :-1])
        counts[split] = occupied.sum(axis=1)
        n_children.append(counts)

        rows, octant = np.nonzero(occupied)  # row-major: parent order, then octant order
        keys.append((k[split][rows] << 3) | octant)
        parents.append(offset + np.flatnonzero(split)[rows])
        s_rng.append(np.stack([s_idx[rows, octant], s_idx[rows, octant + 1]], axis=1))
        t_rng.append(np.stack([t_idx[rows, octant], t_idx[rows, octant + 1]], axis=1))
        offset += len(k)

    level_sizes = np.array([len(k) for k in keys], np.int64)
    level_ptr = np.concatenate([[0], np.cumsum(level_sizes)])
    all_keys = np.concatenate(keys)
    levels = np.repeat(np.arange(len(keys), dtype=np.int64), level_sizes)
    n_child = np.concatenate(n_children)
    child_ptr = np.concatenate([[1], 1 + np.cumsum(n_child)]).astype(np.int64)
    s_all, t_all = np.concatenate(s_rng), np.concatenate(t_rng)
    anchors = decode_array(all_keys ^ (np.int64(1) << (3 * levels)))

    src_begin, src_end = np.ascontiguousarray(s_all[:, 0]), np.ascontiguousarray(s_all[:, 1])
    if tgt is None:  # share, not copy, the source arrays
        tgt_begin, tgt_end = src_begin, src_end
    else:
        tgt_begin, tgt_end = np.ascontiguousarray(t_all[:, 0]), np.ascontiguousarray(t_all[:, 1])

    leaves = np.flatnonzero(n_child == 0)
    # Morton order of leaves across levels: compare their anchors at the finest resolution.
    fine = (all_keys[leaves] ^ (np.int64(1) << (3 * levels[leaves]))) << (
        3 * (MAX_DEPTH - levels[leaves]))
    leaves = leaves[argsort_keys(fine)]

    return Octree(
        center=center,
        half_width=half,
        leaf_size=leaf_size,
        max_depth=int(max_depth),
        keys=all_keys,
        levels=levels,
        anchors=anchors,
        parent=np.concatenate(parents),
        child_ptr=child_ptr,
        level_ptr=level_ptr.astype(np.int64),
        src_begin=src_begin,
        src_end=src_end,
        tgt_begin=tgt_begin,
        tgt_end=tgt_end,
        leaves=leaves.astype(np.int64),
        sources=s_sorted,
        source_perm=s_perm,
        targets=t_sorted,
        target_perm=t_perm,
        targets_are_sources=tgt is None,
    )
