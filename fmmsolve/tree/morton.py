"""Morton (Z-order) keys for points and octree boxes.

Conventions fixed here and used everywhere else:

1. The root cube has centre ``c`` and half-width ``h``; its lower corner is ``lo = c - h`` and
   its edge ``2 h``. The box of level ``l`` with integer *anchor* ``(i, j, k)``, each in
   ``[0, 2**l)``, is ``lo + (2 h / 2**l) * ([i, i+1] x [j, j+1] x [k, k+1])``.
2. Interleaving: bit ``b`` of ``i`` (x) becomes bit ``3 b`` of the Morton number, bit ``b`` of
   ``j`` (y) bit ``3 b + 1`` and bit ``b`` of ``k`` (z) bit ``3 b + 2``. The octant of a child is
   therefore ``c = xbit | ybit << 1 | zbit << 2``.
3. A *point key* is the Morton number of the point's anchor at level ``MAX_DEPTH`` (20), an
   int64 below 2**60. Coordinates are floored onto that grid and clipped into it.
4. A *box key* carries its level in a placeholder bit: ``key = (1 << 3 l) | morton``. The root
   is 1, ``parent = key >> 3``, ``child(c) = (key << 3) | c``. Sorting box keys orders boxes by
   level, then in Morton order within a level.
"""

from __future__ import annotations

import numpy as np

from .._config import MAX_DEPTH
from .._jit import jit, prange

__all__ = [
    "MAX_DEPTH",
    "encode",
    "decode",
    "box_key",
    "key_level",
    "key_anchor",
    "parent_key",
    "child_key",
    "point_keys",
    "encode_array",
    "decode_array",
]


@jit(inline="always")
def _spread(v):
    """Move bit b of a 21-bit integer to bit 3 b."""
    v = v & 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    v = (v | (v << 2)) & 0x1249249249249249
    return v


@jit(inline="always")
def _compact(v):
    """Inverse of ``_spread``: gather bits 0, 3, 6, ... into a 21-bit integer."""
    v = v & 0x1249249249249249
    v = (v ^ (v >> 2)) & 0x10C30C30C30C30C3
    v = (v ^ (v >> 4)) & 0x100F00F00F00F00F
    v = (v ^ (v >> 8)) & 0x1F0000FF0000FF
    v = (v ^ (v >> 16)) & 0x1F00000000FFFF
    v = (v ^ (v >> 32)) & 0x1FFFFF
    return v


@jit
def encode(i, j, k):
    """Morton number of the anchor ``(i, j, k)`` (each below 2**20)."""
    return _spread(np.int64(i)) | (_spread(np.int64(j)) << 1) | (_spread(np.int64(k)) << 2)


@jit
def decode(m):
    """Anchor ``(i, j, k)`` of the Morton number ``m``."""
    m = np.int64(m)
    return _compact(m), _compact(m >> 1), _compact(m >> 2)


@jit
def box_key(i, j, k, level):
    """Box key of the level-``level`` box with anchor ``(i, j, k)``."""
    return (np.int64(1) << (3 * level)) | encode(i, j, k)


@jit
def key_level(key):
    """Level of a box key (position of the placeholder bit divided by 3)."""
    level = 0
    while (key >> (3 * (level + 1))) > 0:
        level += 1
    return level


@jit
def key_anchor(key):
    """``(level, i, j, k)`` of a box key."""
    level = key_level(key)
    i, j, k = decode(key ^ (np.int64(1) << (3 * level)))
    return level, i, j, k


@jit
def parent_key(key):
    """Key of the parent box (the root's parent is 0, which is no box)."""
    return key >> 3


@jit
def child_key(key, octant):
    """Key of child ``octant`` (0..7, see convention 2)."""
    return (key << 3) | octant


@jit(parallel=True)
def _point_keys(points, lo, scale, out):
    top = (np.int64(1) << MAX_DEPTH) - 1
    for p in prange(points.shape[0]):
        i = min(max(np.int64(np.floor((points[p, 0] - lo[0]) * scale)), 0), top)
        j = min(max(np.int64(np.floor((points[p, 1] - lo[1]) * scale)), 0), top)
        k = min(max(np.int64(np.floor((points[p, 2] - lo[2]) * scale)), 0), top)
        out[p] = encode(i, j, k)


def point_keys(points, lower_corner, edge):
    """Point keys (convention 3) of ``points`` in the cube ``lower_corner + [0, edge]^3``.

    Parameters
    ----------
    points : ndarray of shape (n, 3), float64, C-contiguous
    lower_corner : ndarray of shape (3,), float64
    edge : float
        Edge length of the root cube.

    Returns
    -------
    keys : ndarray of shape (n,), int64
    """
    out = np.empty(points.shape[0], dtype=np.int64)
    _point_keys(points, np.asarray(lower_corner, dtype=np.float64), float(2**MAX_DEPTH) / edge,
                out)
    return out


@jit
def _encode_array(anchors, out):
    for p in range(anchors.shape[0]):
        out[p] = encode(anchors[p, 0], anchors[p, 1], anchors[p, 2])


@jit
def _decode_array(codes, out):
    for p in range(codes.shape[0]):
        out[p, 0], out[p, 1], out[p, 2] = decode(codes[p])


def encode_array(anchors):
    """Morton numbers of an ``(n, 3)`` integer array of anchors; returns ``(n,)`` int64."""
    anchors = np.ascontiguousarray(anchors, dtype=np.int64)
    out = np.empty(anchors.shape[0], dtype=np.int64)
    _encode_array(anchors, out)
    return out


def decode_array(codes):
    """Anchors ``(n, 3)`` int64 of an ``(n,)`` array of Morton numbers."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    out = np.empty((codes.shape[0], 3), dtype=np.int64)
    _decode_array(codes, out)
    return out
