"""Compiled KIFMM translations that touch points: P2M, P2L (onto check surfaces), and L2P,
M2P, P2P (onto targets).

Three templates serve the five: :func:`points_to_surfaces` (P2M and P2L), whose boxes each list
the leaves whose sources they see (P2M: the box itself), :func:`surfaces_to_targets` (L2P and
M2P), whose leaves each list the boxes whose expansions they see (L2P: the one box the leaf
takes its local expansion from), and :func:`near_field` (P2P). Each template is compiled once
per kernel and precision, so a first run compiles three parallel functions, not five.

Every function is a ``prange`` over boxes or leaves. Each one calls the kernel's block
functions (:mod:`fmmsolve.kernels._kernel`) through the module globals ``p2p`` and
``p2p_gradient``; :func:`for_kernel` compiles the templates with those names bound to one
kernel's functions (see :func:`fmmsolve._jit.bind` for why they are not arguments). The
translations between expansions are matrix products: M2M in :mod:`fmmsolve.operators.upward`,
M2L in :mod:`fmmsolve.operators.m2l`, L2L in :mod:`fmmsolve.fmm`.

Layouts: coordinates are structure of arrays ``(3, n)`` in tree order, and *local*: each point
is stored relative to its leaf's origin (see Frames). Densities are flat, in *leaf blocks*: the
sources of the leaf ``[s0, s1)`` own ``charges[m * s0:m * s1]``, a C-contiguous ``(m, s1 - s0)``
block (:func:`leaf_block_index` builds the layout), which is what the block functions want.
Potentials are ``(m, n_targets)`` and gradients ``(m, 3, n_targets)``. Expansions (equivalent
densities) are ``(n_boxes, m, n_surface)``. ``surf`` is the unit surface as ``(3, n_surface)``, and
a box's surface points are ``centre + radius * half_width * surf``.

Frames: every interaction is computed in the frame of one box: coordinates relative to the
box's *origin* ``frames[box]``. An internal box's origin is its centre; a leaf's is the centre
of the bounding box of its own points (:func:`leaf_frames`), so that local coordinates are as
small as the points' spread, whatever the leaf's size. A leaf at the depth limit can be much
wider than a tight cluster it holds, and coordinates taken relative to its centre would lose the
digits that tell the cluster's points apart. The offsets between origins (and from an origin to
a box centre, where surfaces are) are taken in float64 and then cast. Working precision is
therefore relative to the points' spread, not to the root cube or to the leaves.
"""

from __future__ import annotations

import numpy as np

import functools
import types

from .._jit import bind, jit, prange
from ..kernels import dipole
from .moments import shift_rows

__all__ = ["for_kernel", "leaf_block_index", "leaf_frames", "leaf_offsets", "singleton_lists",
           "box_surface",
           "leaf_densities", "to_targets"]

# Placeholders: the templates read these globals, `for_kernel` binds them to a kernel.
p2p = p2p_gradient = None


@jit(inline="always")
def box_surface(surf, centres, frames, half_widths, radius, box, frame):
    """Surface points of ``box`` in the frame of box ``frame``; dtype of ``surf``."""
    pts = np.empty_like(surf)
    scale = radius * half_widths[box]
    for d in range(3):
        shift = centres[box, d] - frames[frame, d]
        for i in range(surf.shape[1]):
            pts[d, i] = shift + scale * surf[d, i]
    return pts


@jit(inline="always")
def _points_in_frame(pts, s0, s1, frames, box, frame):
    """Copy of the local points ``pts[:, s0:s1]`` of leaf ``box``, moved to the frame of
    ``frame``."""
    out = np.empty((3, s1 - s0), pts.dtype)
    for d in range(3):
        shift = pts.dtype.type(frames[box, d] - frames[frame, d])
        for i in range(s1 - s0):
            out[d, i] = pts[d, s0 + i] + shift
    return out


@jit(inline="always")
def leaf_densities(charges, s0, s1, n_sources):
    """The C-contiguous (m, s1 - s0) block of leaf ``[s0, s1)`` in the leaf-block layout of
    ``n_sources`` sources (m is 3 times the columns for dipoles)."""
    m = charges.shape[0] // n_sources
    return charges[m * s0:m * s1].reshape((m, s1 - s0))


@jit(inline="always")
def _per_point(expansion, n):
    """An (m, C n) expansion, component-major, as the (m C, n) densities of its n surface
    points (the block functions' layout, row ``C c + a``): a view; itself when C is 1."""
    return expansion.reshape((expansion.shape[0] * (expansion.shape[1] // n), n))


@jit(inline="always")
def to_targets(p2p, p2p_gradient, gradient, sx, sy, sz, q, tgt, a, b, wavenumber, pot, grad):
    if gradient:
        p2p_gradient(sx, sy, sz, q, tgt[0, a:b], tgt[1, a:b], tgt[2, a:b], wavenumber,
                     pot[:, a:b], grad[:, 0, a:b], grad[:, 1, a:b], grad[:, 2, a:b])
    else:
        p2p(sx, sy, sz, q, tgt[0, a:b], tgt[1, a:b], tgt[2, a:b], wavenumber, pot[:, a:b])


def points_to_surfaces(src, charges, boxes, list_ptr, list_idx, src_begin, src_end, centres,
                       frames, half_widths, surf, radius, wavenumber, shift, out):
    """P2M and P2L check step: ``out[i]`` (m, n_surface) += potential at box ``boxes[i]``'s
    surface of ``radius`` due to the sources of every leaf in its list
    ``list_idx[list_ptr[b]:list_ptr[b + 1]]``: the box itself for P2M
    (:func:`singleton_lists`), its X list for P2L.

    ``shift`` is a shift table (:mod:`fmmsolve.operators.moments`; ``NO_SHIFT`` for most
    kernels): its moment columns are about each leaf's centre in ``charges``, so each leaf's
    potential is moved to the box's centre before it is added."""
    for i in prange(boxes.shape[0]):
        b = boxes[i]
        pts = box_surface(surf, centres, frames, half_widths, radius, b, b)
        check = _per_point(out[i], surf.shape[1])
        moved = shift.shape[0] > 0
        part = np.empty_like(check) if moved else check  # each leaf's own, to be moved
        for e in range(list_ptr[b], list_ptr[b + 1]):
            a = list_idx[e]
            s0, s1 = src_begin[a], src_end[a]
            s = _points_in_frame(src, s0, s1, frames, a, b)
            if moved:
                part[:] = 0
            p2p(s[0], s[1], s[2], leaf_densities(charges, s0, s1, src.shape[1]),
                pts[0], pts[1], pts[2], wavenumber, part)
            if moved:
                shift_rows(part, 0, shift, centres[a, 0] - centres[b, 0],
                           centres[a, 1] - centres[b, 1], centres[a, 2] - centres[b, 2])
                for r in range(check.shape[0]):
                    for j in range(check.shape[1]):
                        check[r, j] += part[r, j]


def surfaces_to_targets(gradient, tgt, leaves, list_ptr, list_idx, tgt_begin, tgt_end, centres,
                        frames, half_widths, surf, radius, expansions, wavenumber, pot, grad):
    """L2P and M2P: add, at the targets of each leaf ``leaves[i]``, the field of the expansions
    (equivalent densities on the surface of ``radius``) of every box in its list: for L2P the
    one box whose local expansion the leaf's targets take (the leaf, or an ancestor whose
    expansion the leaf's only refines; see ``FMMEngine``), for M2P the multipoles of its W
    list."""
    for i in prange(leaves.shape[0]):
        b = leaves[i]
        for e in range(list_ptr[b], list_ptr[b + 1]):
            a = list_idx[e]
            pts = box_surface(surf, centres, frames, half_widths, radius, a, b)
            to_targets(p2p, p2p_gradient, gradient, pts[0], pts[1], pts[2],
                        _per_point(expansions[a], surf.shape[1]), tgt, tgt_begin[b],
                        tgt_end[b], wavenumber, pot, grad)


def near_field(gradient, src, charges, tgt, leaves, u_ptr, u_idx, src_begin,
               src_end, tgt_begin, tgt_end, frames, wavenumber, pot, grad):
    """P2P: add the direct interaction of each leaf's targets with the sources of its U list."""
    for i in prange(leaves.shape[0]):
        b = leaves[i]
        for e in range(u_ptr[b], u_ptr[b + 1]):
            a = u_idx[e]
            s0, s1 = src_begin[a], src_end[a]
            s = _points_in_frame(src, s0, s1, frames, a, b)
            to_targets(p2p, p2p_gradient, gradient, s[0], s[1], s[2],
                        leaf_densities(charges, s0, s1, src.shape[1]), tgt, tgt_begin[b],
                        tgt_end[b], wavenumber, pot, grad)


_TEMPLATES = (points_to_surfaces, surfaces_to_targets, near_field)


@functools.lru_cache(maxsize=None)
def for_kernel(kernel, dipoles=False):
    """The translation templates above compiled for ``kernel``, for charges or (``dipoles``)
    for dipole densities in the leaf-block layout of 3 m columns
    (:mod:`fmmsolve.kernels.dipole`). Only P2M, P2L and P2P read densities; L2P and M2P are the
    same either way.

    Returns a namespace whose attributes are named and called like the templates.
    """
    blocks = dipole.blocks(kernel) if dipoles else kernel
    bindings = {"p2p": blocks.p2p, "p2p_gradient": blocks.p2p_gradient}
    if dipoles:  # `radial` too, for the source stamp (see fmmsolve._jit.bind)
        bindings["radial"] = kernel.radial
    suffix = f"{kernel.tag}_dipole" if dipoles else kernel.tag
    return types.SimpleNamespace(**{
        t.__name__: bind(t, suffix, bindings, parallel=True) for t in _TEMPLATES
    })


def singleton_lists(n_boxes, boxes, entries):
    """The CSR lists ``(ptr, idx)`` over ``n_boxes`` boxes, shapes (n_boxes + 1,) and
    (len(boxes),), int64, in which box ``boxes[i]`` lists only ``entries[i]`` and every other
    box nothing: P2M and L2P as :func:`points_to_surfaces` and :func:`surfaces_to_targets`.
    Raises ValueError when a box appears twice (one entry would be lost)."""
    boxes = np.asarray(boxes, np.int64)
    counts = np.bincount(boxes, minlength=n_boxes)
    if len(boxes) and counts.max() > 1:
        raise ValueError("singleton_lists: boxes must be distinct")
    ptr = np.concatenate([[0], np.cumsum(counts)])
    idx = np.empty(len(boxes), np.int64)
    idx[ptr[boxes]] = entries
    return ptr, idx


def leaf_block_index(src_begin, src_end, leaves, m):
    """Where each density goes in the leaf-block layout.

    Parameters
    ----------
    src_begin, src_end : ndarray (n_boxes,), int64
        Source ranges of the boxes, in tree order.
    leaves : ndarray, int64
        Leaves whose ranges partition the sources.
    m : int
        Number of density columns.

    Returns
    -------
    ndarray (n_sources, m), int64
        ``flat[idx] = q`` for ``q`` of shape (n_sources, m) in tree order gives each leaf
        ``[s0, s1)`` the C-contiguous (m, s1 - s0) block ``flat[m * s0:m * s1]``.
    """
    sizes = src_end[leaves] - src_begin[leaves]
    n = int(sizes.sum())
    order = np.argsort(src_begin[leaves])
    start = np.repeat(src_begin[leaves][order], sizes[order])  # s0 of each source's leaf
    size = np.repeat(sizes[order], sizes[order])
    offset = np.arange(n) - start
    return m * start[:, None] + np.arange(m)[None, :] * size[:, None] + offset[:, None]


@jit(parallel=True)
def _leaf_bounds(points, begin, end, leaves, lo, hi):
    """``lo[b]``, ``hi[b]`` lowered and raised to the extent of the (3, n) ``points[:, begin[b]:
    end[b]]`` of each of ``leaves``."""
    for i in prange(leaves.shape[0]):
        b = leaves[i]
        for d in range(3):
            for p in range(begin[b], end[b]):
                lo[b, d] = min(lo[b, d], points[d, p])
                hi[b, d] = max(hi[b, d], points[d, p])


def leaf_frames(tree):
    """Origin of every box's frame, shape (n_boxes, 3), float64: the box centre, except for a
    leaf holding points, whose origin is the centre of the bounding box of its sources and
    targets (see "Frames" above)."""
    frames = tree.box_centers()
    lo = np.full((tree.n_boxes, 3), np.inf)
    hi = np.full((tree.n_boxes, 3), -np.inf)
    _leaf_bounds(tree.sources, tree.src_begin, tree.src_end, tree.leaves, lo, hi)
    if not tree.targets_are_sources:
        _leaf_bounds(tree.targets, tree.tgt_begin, tree.tgt_end, tree.leaves, lo, hi)
    held = np.isfinite(lo[:, 0])
    frames[held] = 0.5 * lo[held] + 0.5 * hi[held]  # halves first: no overflow
    return frames


@jit(parallel=True)
def _leaf_offsets(points, begin, end, leaves, origins, out):
    for i in prange(leaves.shape[0]):
        b = leaves[i]
        for d in range(3):
            origin = origins[b, d]
            for p in range(begin[b], end[b]):
                out[d, p] = points[d, p] - origin


def leaf_offsets(points, begin, end, leaves, origins, dtype=np.float64):
    """Points relative to an origin of the leaf holding them, in one parallel pass.

    Parameters
    ----------
    points : ndarray of shape (3, n), float64, C-contiguous
        In tree order.
    begin, end : ndarray of shape (n_boxes,), int64
        Each box's range of ``points``.
    leaves : ndarray of int64
        Leaves whose ranges tile ``points``.
    origins : ndarray of shape (n_boxes, 3), float64
        Box centres or frames (:func:`leaf_frames`).
    dtype : numpy dtype, default float64
        Of the result: each float64 difference rounded once, as ``astype`` would.

    Returns
    -------
    ndarray of shape (3, n), ``dtype``, C-contiguous
    """
    out = np.empty(points.shape, dtype)
    _leaf_offsets(points, begin, end, leaves, np.ascontiguousarray(origins), out)
    return out
