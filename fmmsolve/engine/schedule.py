"""The index arrays every evaluation reuses: :class:`Schedule`, and :func:`bind`, which derives
it from a :class:`~fmmsolve.engine.fitted.Fitted`.

Binding is cheap next to fitting (no plan is computed) and is redone when a saved state is
read. Geometry stays float64; points are stored relative to their leaf's origin, the centre of
its points' bounding box (:mod:`fmmsolve.operators.translations`, "Frames"), in the working
precision. CSR lists are ``(indptr, indices)`` pairs of int64 arrays, ``indptr`` of shape
(n_boxes + 1,), read by the compiled passes of :mod:`fmmsolve.operators.translations`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..accuracy import max_expansion_half_width
from ..operators import m2l, surfaces, translations
from ..operators.plan import Plan
from ..operators.upward import Upward, octant_groups
from ..tree.lists import l2p_boxes, leaves_away_from_sources, near_and_far
from ..tree.lists import narrow_far_field as narrow_lists  # the name of bind's flag
from .fitted import Fitted

__all__ = ["Schedule", "bind"]


@dataclass(frozen=True, eq=False)
class Schedule:
    """A :class:`~fmmsolve.engine.fitted.Fitted` bound to its index arrays: what
    :func:`fmmsolve.engine.passes.evaluate` reads. Frozen: a field cannot be assigned.

    Attributes
    ----------
    fitted : Fitted
    narrow_far_field : bool
        Whether target leaves away from the sources of a decaying kernel take their field from
        narrow boxes and direct sums (see :func:`bind`).
    min_depth : int
        Boxes down to this level may receive a far field from outside the tree at evaluation
        (``far_field`` of :func:`~fmmsolve.engine.passes.evaluate`).
    centres, frames : ndarray of shape (n_boxes, 3), float64
        Each box's centre, and the origin of its frame (the centre, except for a leaf holding
        points: the centre of their bounding box).
    half_widths : ndarray of shape (n_boxes,), float64
    c2e_scale : ndarray of shape (n_boxes,), ``value_dtype``
        The check-to-equivalent scale of each box, ``half_width ** plan.scale_degree``.
    surface : ndarray of shape (3, n_surface), ``real_dtype``, C-contiguous
        The unit expansion surface.
    sources, targets : ndarray of shape (3, n_sources) and (3, n_targets), ``real_dtype``
        Points in tree order, relative to their leaf's frame; one array when the targets are
        the sources.
    source_leaves, target_leaves : ndarray of int64
        The leaves holding sources, and those holding targets.
    near, w, x : tuple of (indptr, indices), int64
        The near field (source leaves of each target leaf: U plus the W and X entries cheaper
        as direct sums), and the remaining W (M2P) and X (P2L) lists
        (:func:`~fmmsolve.tree.lists.near_and_far`, :func:`~fmmsolve.tree.lists.narrow_far_field`).
    l2p_leaves : ndarray of int64
        The target leaves that take an L2P.
    x_boxes : ndarray of int64
        The boxes with a P2L (a non-empty X list).
    l2p_box_of : ndarray of shape (n_boxes,), int64
        For each box, the box whose local expansion the L2P of its targets evaluates
        (:func:`~fmmsolve.tree.lists.l2p_boxes`); :class:`~fmmsolve.FMMField` uses it too.
    l2p, p2m : tuple of (indptr, indices), int64
        CSR lists in which each of ``l2p_leaves`` lists its ``l2p_box_of`` box, and each of
        ``source_leaves`` itself.
    p2m_groups, p2l_groups : tuple of (rows, Plan)
        Rows of ``source_leaves`` and of ``x_boxes`` (int64 arrays, or ``slice(None)``) by the
        plan of their level.
    m2m : Upward
        M2M up to the root, with exact monopoles (:mod:`fmmsolve.operators.upward`).
    l2l_groups : tuple of (children, parents, matrix, reflection)
        L2L, shallowest level first from level 3, by octant: int64 box arrays, octant 0's
        (n, n) ``value_dtype`` L2L of the parents' plan transposed (C-contiguous, one per
        level; the products take its ``.T``) and the octant's reflection
        (:func:`~fmmsolve.operators.plan.reflection`).
    m2l_passes : tuple of (lo, hi, Plan, M2L schedule)
        One M2L pass over boxes ``lo:hi`` with their plan (one pass over every box when all
        levels share a plan, else one per level), its V-list pairs counted from ``lo``
        (:mod:`fmmsolve.operators.m2l`).
    """

    fitted: Fitted
    narrow_far_field: bool
    min_depth: int
    centres: np.ndarray
    frames: np.ndarray
    half_widths: np.ndarray
    c2e_scale: np.ndarray
    surface: np.ndarray
    sources: np.ndarray
    targets: np.ndarray
    source_leaves: np.ndarray
    target_leaves: np.ndarray
    near: tuple[np.ndarray, np.ndarray]
    w: tuple[np.ndarray, np.ndarray]
    x: tuple[np.ndarray, np.ndarray]
    l2p_leaves: np.ndarray
    x_boxes: np.ndarray
    l2p_box_of: np.ndarray
    l2p: tuple[np.ndarray, np.ndarray]
    p2m: tuple[np.ndarray, np.ndarray]
    p2m_groups: tuple
    p2l_groups: tuple
    m2m: Upward
    l2l_groups: tuple
    m2l_passes: tuple

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays this schedule holds (in tuples and M2L schedules too), each
        counted once (the transposed L2L matrices of ``l2l_groups`` too). Not counted: the
        fitted record (its tree, lists and plans), views, and ``m2m`` (its per-source weights
        and transposed M2M matrices)."""
        seen = set()
        return sum(_array_bytes(getattr(self, f.name), seen)
                   for f in dataclasses.fields(self) if f.name not in ("fitted", "m2m"))


def _array_bytes(obj, seen):
    """Bytes of the arrays reachable from ``obj`` through tuples, lists and dataclasses other
    than plans, each counted once (ids in ``seen``); views are not counted."""
    if isinstance(obj, np.ndarray):
        if id(obj) in seen or obj.base is not None:
            return 0
        seen.add(id(obj))
        return obj.nbytes
    if isinstance(obj, (list, tuple)):
        return sum(_array_bytes(o, seen) for o in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, Plan):  # M2L schedules
        return sum(_array_bytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    return 0


def bind(fitted: Fitted, *, narrow_far_field=True, min_depth=0) -> Schedule:
    """The index arrays and real-dtype geometry that every evaluation of ``fitted`` reuses.

    Parameters
    ----------
    fitted : Fitted
    narrow_far_field : bool, default True
        With a kernel that decays, target leaves away from the sources take their field from
        boxes no wider than :func:`~fmmsolve.accuracy.max_expansion_half_width` allows
        (:func:`~fmmsolve.tree.lists.narrow_far_field`). :mod:`fmmsolve.distributed` turns it
        off: the other ranks' field reaches a leaf through its local expansion.
    min_depth : int, default 0
        Boxes down to this level may receive a far field at evaluation (the ``min_depth`` the
        tree was built with, in :mod:`fmmsolve.distributed`).

    Returns
    -------
    Schedule
    """
    tree, lists, plans, real = fitted.tree, fitted.lists, fitted.plans, fitted.real_dtype
    plan = plans[0]
    centres = tree.box_centers()
    frames = translations.leaf_frames(tree)
    half_widths = tree.box_half_widths()
    # Boxes of one level share a plan; for Laplace every level shares one.
    shared_plan = all(p is plan for p in plans)
    # check-to-equivalent scale per box, cast once here rather than in every matvec
    c2e_scale = (half_widths ** plan.scale_degree).astype(fitted.value_dtype)
    surface = np.ascontiguousarray(plan.surface.T, dtype=real)
    has_src = tree.src_end > tree.src_begin
    has_tgt = tree.tgt_end > tree.tgt_begin

    def local(points, begin, end):
        return translations.leaf_offsets(points, begin, end, tree.leaves, frames, real)

    def by_plan(boxes):
        """``boxes`` split by plan: (rows of ``boxes``, plan) pairs; one pair with
        ``slice(None)`` when every level shares the plan."""
        if shared_plan:
            return ((slice(None), plan),)
        levels = tree.levels[boxes]
        return tuple((np.flatnonzero(levels == lv), plans[lv]) for lv in np.unique(levels))

    src = local(tree.sources, tree.src_begin, tree.src_end)
    tgt = src if tree.targets_are_sources else local(tree.targets, tree.tgt_begin, tree.tgt_end)
    src_leaves = tree.leaves[has_src[tree.leaves]]
    tgt_leaves = tree.leaves[has_tgt[tree.leaves]]
    # W and X entries that are cheaper as direct sums join the near field (U).
    near, w, x = near_and_far(tree, lists, plan.n_surface)
    # A decaying kernel: leaves away from the sources take their field from narrow boxes
    # and direct sums alone, and skip L2P.
    max_hw = max_expansion_half_width(fitted.kernel, fitted.wavenumber)
    away = leaves_away_from_sources(tree, lists, max_hw) if narrow_far_field else []
    if len(away):
        near, w = narrow_lists(tree, near, w, away, max_hw, surfaces.SEPARATION,
                               plan.n_surface)
    l2p_leaves = tgt_leaves[~np.isin(tgt_leaves, away)]
    x_boxes = np.flatnonzero(np.diff(x[0]) > 0)
    # L2P of each box's targets from the deepest box above it that receives a far field of
    # its own (tree/lists.py); FMMField uses the same map for its points
    l2p_box_of = l2p_boxes(tree, lists, np.arange(tree.n_boxes),
                           receivers=[x_boxes, tree.levels <= min_depth])

    # L2L shallowest first, from level 2: no V or X list reaches a box above it.
    l2l_groups = []
    for level in range(3, tree.depth + 1):
        boxes = np.arange(tree.level_ptr[level], tree.level_ptr[level + 1])
        plan = plans[level - 1]
        l2l_groups += octant_groups(tree, boxes[has_tgt[boxes]], plan.l2l, plan.expansion_order,
                                    fitted.kernel.parities)

    return Schedule(
        fitted=fitted, narrow_far_field=bool(narrow_far_field), min_depth=int(min_depth),
        centres=centres, frames=frames, half_widths=half_widths, c2e_scale=c2e_scale,
        surface=surface, sources=src, targets=tgt, source_leaves=src_leaves,
        target_leaves=tgt_leaves, near=near, w=w, x=x, l2p_leaves=l2p_leaves, x_boxes=x_boxes,
        l2p_box_of=l2p_box_of,
        l2p=translations.singleton_lists(tree.n_boxes, l2p_leaves, l2p_box_of[l2p_leaves]),
        p2m=translations.singleton_lists(tree.n_boxes, src_leaves, src_leaves),
        p2m_groups=by_plan(src_leaves), p2l_groups=by_plan(x_boxes),
        # M2M, deepest level first, up to the root so the upward pass is complete, with exact
        # monopoles (operators/upward.py)
        m2m=Upward(fitted.kernel, fitted.wavenumber, tree, plans, src_leaves),
        l2l_groups=tuple(l2l_groups), m2l_passes=_m2l_passes(fitted, shared_plan))


def _m2l_passes(fitted, shared_plan):
    """The M2L passes of :attr:`Schedule.m2l_passes`: V-list pairs scheduled in cache-sized
    chunks of targets (:mod:`fmmsolve.operators.m2l`), each level for its plan's strategy."""
    tree, lists, plans = fitted.tree, fitted.lists, fitted.plans
    # One pass over all boxes with a shared plan, else one per level (its ranks differ).
    if shared_plan:
        ranges = [(0, tree.n_boxes, plans[0])]
    else:
        ranges = [(tree.level_ptr[level], tree.level_ptr[level + 1], plans[level])
                  for level in range(2, tree.depth + 1)]
    passes = []
    for lo, hi, plan in ranges:
        t, s, vec = m2l.v_list_pairs(lists.v_indptr, lists.v_indices, tree.anchors, lo, hi)
        if shared_plan or len(t):
            passes.append((lo, hi, plan, m2l.schedule(t, s, vec, m2l.CHUNK_BOXES,
                                                              plan.m2l_strategy)))
    return tuple(passes)
