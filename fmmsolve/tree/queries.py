"""Queries of a built :class:`~.octree.Octree` at points and integer anchors it was not built
from: the deepest box holding a point, the box of a level at an anchor, and the neighbourhood
of a box (its colleagues and the coarser leaves adjacent to it).

Conventions
-----------
1. A box is found by binary search of its key in ``tree.keys`` (sorted, see :mod:`.octree`);
   -1 stands for "no box" everywhere.
2. A point belongs to the half-open root cube ``lower + [0, edge)^3`` (``lower`` = ``center -
   half_width``, ``edge`` = ``2 half_width``); a point outside it is in no box.
3. Anchors are integer coordinates at a level ``l``: the box of anchor ``a`` covers
   ``lower + edge 2^-l [a, a + 1)`` per axis, with ``0 <= a < 2^l``.
"""

from __future__ import annotations

import itertools

import numpy as np

from .._config import MAX_DEPTH
from .morton import encode_array, point_keys

__all__ = ["locate", "find", "neighbourhoods"]

_OFFSETS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), np.int64)  # (27, 3)


def locate(tree, points):
    """The deepest box of ``tree`` that holds each point.

    Parameters
    ----------
    tree : Octree
    points : ndarray of shape (n, 3), float64 (or float32)

    Returns
    -------
    ndarray of shape (n,), int64
        Box index per point; -1 for a point outside the root cube. A point in an empty octant
        of a box gets that box (which is then internal).
    """
    lower, edge = tree.center - tree.half_width, 2.0 * tree.half_width
    inside = np.all((points >= lower) & (points < lower + edge), axis=1)
    keys = point_keys(points, lower, edge)
    box = np.full(len(points), -1, np.int64)
    found = inside
    for level in range(tree.depth + 1):  # a box exists only if its parent does
        key = (np.int64(1) << (3 * level)) | (keys >> (3 * (MAX_DEPTH - level)))
        pos = np.minimum(np.searchsorted(tree.keys, key), tree.n_boxes - 1)
        found = found & (tree.keys[pos] == key)
        if not found.any():
            break
        box[found] = pos[found]
    return box


def find(tree, anchors, level):
    """The box of ``level`` at each integer anchor.

    Parameters
    ----------
    tree : Octree
    anchors : ndarray of shape (..., 3), int64
        Anchors at ``level``; any integers (those outside ``[0, 2^level)`` find nothing).
    level : int

    Returns
    -------
    ndarray of shape (...), int64
        Box index per anchor, -1 where the tree has no box there.
    """
    side = np.int64(1) << level
    valid = np.all((anchors >= 0) & (anchors < side), axis=-1)
    morton = encode_array(np.clip(anchors, 0, side - 1).reshape(-1, 3))
    key = (np.int64(1) << (3 * level)) | morton.reshape(anchors.shape[:-1])
    pos = np.minimum(np.searchsorted(tree.keys, key), tree.n_boxes - 1)
    return np.where(valid & (tree.keys[pos] == key), pos, -1)


def neighbourhoods(tree, starts):
    """The boxes a traversal from each start box begins with, as CSR.

    Row ``i`` holds the colleagues of ``starts[i]`` (the boxes of its level whose cubes touch
    or equal its own, itself included) and the leaves of coarser levels whose cubes touch its
    cube (faces, edges or corners). For an internal box, these and their subtrees hold every
    source that the box's local expansion does not cover (:mod:`fmmsolve.field`). A start of -1
    (outside the root cube) has the root alone.

    Parameters
    ----------
    tree : Octree
    starts : ndarray of shape (n_starts,), int64
        Box indices, sorted, or -1.

    Returns
    -------
    ptr : ndarray of shape (n_starts + 1,), int64
    idx : ndarray of shape (ptr[-1],), int64, C-contiguous
        Row ``i`` is ``idx[ptr[i]:ptr[i + 1]]``: colleagues first (in offset order), then the
        coarser leaves from the parent's level upwards.
    """
    rows, cols = [np.flatnonzero(starts < 0)], [np.zeros(int(np.sum(starts < 0)), np.int64)]
    for level in np.unique(tree.levels[starts[starts >= 0]]):
        sel = np.flatnonzero((starts >= 0) & (tree.levels[np.maximum(starts, 0)] == level))
        anchor = tree.anchors[starts[sel]]
        found = find(tree, anchor[:, None, :] + _OFFSETS, level)
        r, e = np.nonzero(found >= 0)
        rows.append(sel[r])
        cols.append(found[r, e])
        for up in range(1, level + 1):  # leaves of ancestors' levels touching the box
            found = find(tree, (anchor >> up)[:, None, :] + _OFFSETS, level - up)
            box = np.maximum(found, 0)
            lo, hi = tree.anchors[box] << up, (tree.anchors[box] + 1) << up
            touch = np.all((lo <= anchor[:, None, :] + 1) & (anchor[:, None, :] <= hi), -1)
            r, e = np.nonzero((found >= 0) & tree.is_leaf[box] & touch)
            rows.append(sel[r])
            cols.append(found[r, e])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    order = np.argsort(rows, kind="stable")
    ptr = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=len(starts)), out=ptr[1:])
    return ptr, np.ascontiguousarray(cols[order], dtype=np.int64)
