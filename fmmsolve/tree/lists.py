"""Interaction lists of the adaptive KIFMM (Ying, Biros & Zorin 2004) as CSR index arrays.

"Adjacent" means the closed cubes intersect (a box is adjacent to itself and to its
ancestors); boxes may be on any levels. With B a target box (it holds targets) and A a source
box (it holds sources):

* ``U(B)``, B a leaf: the leaves A adjacent to B, on any level (near field, P2P).
* ``V(B)``: the boxes A on B's level that are not adjacent to B but whose parent is adjacent to
  B's parent (M2L).
* ``W(B)``, B a leaf: the boxes A finer than B, not adjacent to B, whose parent is adjacent to B
  (M2P: A's multipole expansion is evaluated at B's targets).
* ``X(B)``: the leaves A coarser than B, not adjacent to B, adjacent to B's parent; that is,
  B is in the W list A would have as a target leaf (P2L).

These lists are correct on trees that are not 2:1 balanced (fmmsolve does not balance): for every
target leaf T and every source leaf S exactly one of the following holds, which
``tests/tree/test_lists.py`` checks by brute force: S is in U(T); S is, or descends from, a box in
V(B) for B = T or an ancestor of T; S is, or descends from, a box in W(T); S is in X(B) for B = T
or an ancestor of T.

Each list is stored as ``indptr`` of shape (n_boxes + 1,) and ``indices`` (box indices), as in
``scipy.sparse.csr_matrix``: the list of box ``b`` is ``indices[indptr[b]:indptr[b + 1]]``.
Boxes outside a list's domain (a non-leaf for U and W, a box without targets) have empty rows,
and boxes without sources never appear in a list.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.spatial import cKDTree

from .._config import MAX_DEPTH
from .._jit import jit, prange
from .octree import Octree
from .sorting import argsort_rows

__all__ = ["InteractionLists", "build_interaction_lists", "near_and_far",
           "leaves_away_from_sources", "narrow_far_field", "l2p_boxes"]

_STACK = 8 * 27 + 8 * (MAX_DEPTH + 1)  # bound on the depth-first stack of one traversal


@dataclass(frozen=True, eq=False)
class InteractionLists:
    """U, V, W and X lists of an :class:`~fmmsolve.tree.octree.Octree`, each in CSR form.

    Attributes
    ----------
    u_indptr, v_indptr, w_indptr, x_indptr : ndarray of shape (n_boxes + 1,), int64
    u_indices, v_indices, w_indices, x_indices : ndarray of shape (n_entries,), int64
        Source box indices; see the module docstring for what each list holds.
    """

    u_indptr: np.ndarray
    u_indices: np.ndarray
    v_indptr: np.ndarray
    v_indices: np.ndarray
    w_indptr: np.ndarray
    w_indices: np.ndarray
    x_indptr: np.ndarray
    x_indices: np.ndarray

    def get(self, name: str, box: int) -> np.ndarray:
        """The ``name`` list (``"u"``, ``"v"``, ``"w"`` or ``"x"``) of box ``box``."""
        ptr, idx = getattr(self, f"{name}_indptr"), getattr(self, f"{name}_indices")
        return idx[ptr[box]:ptr[box + 1]]

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self))

    def summary(self, tree: Octree) -> dict:
        """Mean list length over the boxes each list is defined for (leaves for U and W)."""
        has_tgt = tree.tgt_end > tree.tgt_begin
        target_leaves = tree.leaves[has_tgt[tree.leaves]]
        target_boxes = np.flatnonzero(has_tgt)
        out = {}
        for name, rows in (("u", target_leaves), ("v", target_boxes),
                           ("w", target_leaves), ("x", target_boxes)):
            ptr = getattr(self, f"{name}_indptr")
            out[f"mean_{name}"] = float(np.mean(ptr[rows + 1] - ptr[rows])) if len(rows) else 0.0
        out["nbytes"] = self.nbytes
        return out


@jit(inline="always")
def _adjacent(anchors, levels, a, b):
    """Whether the closed cubes of boxes ``a`` and ``b`` intersect (any levels)."""
    fine = max(levels[a], levels[b])
    sa, sb = fine - levels[a], fine - levels[b]
    for d in range(3):
        a0, a1 = anchors[a, d] << sa, (anchors[a, d] + 1) << sa
        b0, b1 = anchors[b, d] << sb, (anchors[b, d] + 1) << sb
        if a0 > b1 or b0 > a1:
            return False
    return True


@jit(parallel=True)
def _colleagues(keys, anchors, parent, child_ptr, level_ptr, out):
    """``out[b, s]``: the box at offset s (3x3x3, centre 13 = b itself) on b's level, or -1.

    Level by level from the root: the box at an offset is a child of the parent's colleague
    that holds it, so each entry is a scan of at most 8 children instead of a binary search
    over all boxes."""
    out[0, :] = -1
    out[0, 13] = 0
    for level in range(1, level_ptr.shape[0] - 1):
        side = np.int64(1) << level
        for b in prange(level_ptr[level], level_ptr[level + 1]):
            p = parent[b]
            for s in range(27):
                out[b, s] = -1
                i = anchors[b, 0] + s // 9 - 1
                j = anchors[b, 1] + (s // 3) % 3 - 1
                k = anchors[b, 2] + s % 3 - 1
                if not (0 <= i < side and 0 <= j < side and 0 <= k < side):
                    continue
                # the parent's colleague holding (i, j, k), then its child in that octant
                c = out[p, ((i >> 1) - anchors[p, 0] + 1) * 9
                        + ((j >> 1) - anchors[p, 1] + 1) * 3 + (k >> 1) - anchors[p, 2] + 1]
                if c < 0:
                    continue
                octant = (i & 1) | ((j & 1) << 1) | ((k & 1) << 2)
                for a in range(child_ptr[c], child_ptr[c + 1]):
                    if keys[a] & 7 == octant:
                        out[b, s] = a


@jit
def _v_row(b, anchors, levels, parent, child_ptr, colleagues, ok, out, write):
    p = parent[b]
    if p < 0:
        return 0
    n = 0
    for s in range(27):
        c = colleagues[p, s]
        if c < 0:
            continue
        for a in range(child_ptr[c], child_ptr[c + 1]):  # on b's level: adjacent is |d| <= 1
            if ok[a] and (abs(anchors[a, 0] - anchors[b, 0]) > 1
                          or abs(anchors[a, 1] - anchors[b, 1]) > 1
                          or abs(anchors[a, 2] - anchors[b, 2]) > 1):
                if write:
                    out[n] = a
                n += 1
    return n


@jit
def _uw_row(b, anchors, levels, parent, child_ptr, colleagues, ok, want_u, u_out, w_out, write):
    """U and W rows of leaf ``b``; ``ok[a]`` says whether box a may enter a list."""
    nu = 0
    nw = 0
    if want_u:
        # Leaves on b's level or coarser: colleagues of b and of each of its ancestors.
        a = b
        while a >= 0:
            for s in range(27):
                c = colleagues[a, s]
                if c >= 0 and ok[c] and child_ptr[c + 1] == child_ptr[c] \
                        and _adjacent(anchors, levels, c, b):
                    if write:
                        u_out[nu] = c
                    nu += 1
            a = parent[a]
    # Finer boxes: descend from b's colleagues through boxes adjacent to b.
    stack = np.empty(_STACK, np.int64)
    top = 0
    for s in range(27):
        c = colleagues[b, s]
        if c >= 0 and c != b:
            for a in range(child_ptr[c], child_ptr[c + 1]):
                stack[top] = a
                top += 1
    while top > 0:
        top -= 1
        a = stack[top]
        if not ok[a]:  # nothing below qualifies either: ok is a subtree property
            continue
        if not _adjacent(anchors, levels, a, b):
            if write:
                w_out[nw] = a
            nw += 1
        elif child_ptr[a + 1] == child_ptr[a]:
            if want_u:
                if write:
                    u_out[nu] = a
                nu += 1
        else:
            for c in range(child_ptr[a], child_ptr[a + 1]):
                stack[top] = c
                top += 1
    return nu, nw


@jit(parallel=True)
def _v_pass(rows, anchors, levels, parent, child_ptr, colleagues, ok, ptr, idx, write):
    for r in prange(rows.shape[0]):
        b = rows[r]
        if write:
            _v_row(b, anchors, levels, parent, child_ptr, colleagues, ok,
                   idx[ptr[b]:ptr[b + 1]], True)
        else:
            ptr[b + 1] = _v_row(b, anchors, levels, parent, child_ptr, colleagues, ok, idx, False)


@jit(parallel=True)
def _uw_pass(rows, anchors, levels, parent, child_ptr, colleagues, ok, want_u,
             u_ptr, u_idx, w_ptr, w_idx, write):
    for r in prange(rows.shape[0]):
        b = rows[r]
        if write:
            _uw_row(b, anchors, levels, parent, child_ptr, colleagues, ok, want_u,
                    u_idx[u_ptr[b]:u_ptr[b + 1]], w_idx[w_ptr[b]:w_ptr[b + 1]], True)
        else:
            nu, nw = _uw_row(b, anchors, levels, parent, child_ptr, colleagues, ok, want_u,
                             u_idx, w_idx, False)
            u_ptr[b + 1] = nu
            w_ptr[b + 1] = nw


def _csr(counts_ptr):
    """Turn counts stored at ``ptr[1:]`` into offsets, in place; return an index buffer."""
    np.cumsum(counts_ptr, out=counts_ptr)
    return np.empty(counts_ptr[-1], np.int64)


def build_interaction_lists(tree: Octree) -> InteractionLists:
    """Compute the U, V, W and X lists of ``tree`` (definitions in the module docstring)."""
    n = tree.n_boxes
    anchors, levels, parent, child_ptr = tree.anchors, tree.levels, tree.parent, tree.child_ptr
    has_src = tree.src_end > tree.src_begin
    has_tgt = tree.tgt_end > tree.tgt_begin
    colleagues = np.empty((n, 27), np.int64)
    _colleagues(tree.keys, anchors, parent, child_ptr, tree.level_ptr, colleagues)
    leaves = tree.leaves

    v_ptr = np.zeros(n + 1, np.int64)
    v_rows = np.flatnonzero(has_tgt)
    _v_pass(v_rows, anchors, levels, parent, child_ptr, colleagues, has_src, v_ptr, v_ptr, False)
    v_idx = _csr(v_ptr)
    _v_pass(v_rows, anchors, levels, parent, child_ptr, colleagues, has_src, v_ptr, v_idx, True)

    u_ptr, w_ptr = np.zeros(n + 1, np.int64), np.zeros(n + 1, np.int64)
    uw_rows = leaves[has_tgt[leaves]]
    args = (anchors, levels, parent, child_ptr, colleagues, has_src, True)
    _uw_pass(uw_rows, *args, u_ptr, u_ptr, w_ptr, w_ptr, False)
    u_idx, w_idx = _csr(u_ptr), _csr(w_ptr)
    _uw_pass(uw_rows, *args, u_ptr, u_idx, w_ptr, w_idx, True)

    # X is the transpose of W taken over source leaves: B in X(A) iff A in W_geometric(B).
    xw_ptr, no_u = np.zeros(n + 1, np.int64), np.zeros(n + 1, np.int64)
    xw_rows = leaves[has_src[leaves]]
    args = (anchors, levels, parent, child_ptr, colleagues, has_tgt, False)
    _uw_pass(xw_rows, *args, no_u, no_u, xw_ptr, xw_ptr, False)
    xw_idx = _csr(xw_ptr)
    _uw_pass(xw_rows, *args, no_u, no_u, xw_ptr, xw_idx, True)
    x_ptr, x_idx = _csr_from_rows(xw_idx, _rows(xw_ptr), n)

    return InteractionLists(u_ptr, u_idx, v_ptr, v_idx, w_ptr, w_idx, x_ptr, x_idx)


def _csr_from_rows(rows, cols, n_rows):
    """CSR ``(indptr, indices)`` of the entries ``(rows[i], cols[i])``, stable within a row."""
    order, indptr = argsort_rows(rows, n_rows)
    return indptr, np.ascontiguousarray(cols[order], dtype=np.int64)


def _rows(indptr):
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def _ranges(starts, counts):
    """The integer ranges ``[starts[i], starts[i] + counts[i])``, concatenated (int64)."""
    offsets = np.cumsum(counts) - counts  # where each range begins in the output
    return np.repeat(starts - offsets, counts) + np.arange(counts.sum(), dtype=np.int64)


def near_and_far(tree: Octree, lists: InteractionLists, min_points: int):
    """Move W and X entries that are cheaper as direct sums into the near field.

    A W-list box with fewer than ``min_points`` sources (the points of an expansion surface)
    costs less through its sources than through its multipole. An X-list leaf whose target box
    is a leaf with fewer than ``min_points`` targets costs less at those targets than at the
    check surface. Direct sums are exact, so accuracy can only improve. On surface data, where
    most leaves hold a few dozen points, this removes most of the M2P and P2L work.

    An X-list leaf of a target box that holds no source is always summed directly, at every
    target leaf under that box: a box without sources is split for its targets' count alone,
    and its own P2L would make its local expansion, refitted for the box's small width, the
    one its targets' L2P must use (see :func:`l2p_boxes`). Its targets take the coarser
    ancestor's expansion instead, whose gradient is accurate. The cost is bounded: an X-list
    leaf holds at most ``leaf_size`` sources.

    Parameters
    ----------
    tree : Octree
    lists : InteractionLists
    min_points : int
        Points of one expansion surface.

    Returns
    -------
    near, w, x : tuple of (indptr, indices), int64, indptr of shape (n_boxes + 1,)
        ``near`` lists source *leaves* for each target leaf: U plus the moved entries, a W box
        being replaced by its leaves that hold sources (they are contiguous in tree order).
        ``w`` and ``x`` are what remains of W and X. Every (target leaf, source leaf) pair is
        still covered exactly once by near + V + W + X.
    """
    n_src = tree.src_end - tree.src_begin
    n_tgt = tree.tgt_end - tree.tgt_begin
    w_rows, w_cols = _rows(lists.w_indptr), lists.w_indices
    w_direct = n_src[w_cols] < min_points
    x_rows, x_cols = _rows(lists.x_indptr), lists.x_indices
    x_direct = (tree.is_leaf[x_rows] & (n_tgt[x_rows] < min_points)) | (n_src[x_rows] == 0)
    counts, expanded = _leaves_under(tree, w_cols[w_direct], tree.src_begin, tree.src_end)
    x_counts, x_leaves = _leaves_under(tree, x_rows[x_direct], tree.tgt_begin, tree.tgt_end)

    u_rows = _rows(lists.u_indptr)
    near = _csr_from_rows(
        np.concatenate([u_rows, np.repeat(w_rows[w_direct], counts), x_leaves]),
        np.concatenate([lists.u_indices, expanded, np.repeat(x_cols[x_direct], x_counts)]),
        tree.n_boxes)
    w = _csr_from_rows(w_rows[~w_direct], w_cols[~w_direct], tree.n_boxes)
    x = _csr_from_rows(x_rows[~x_direct], x_cols[~x_direct], tree.n_boxes)
    return near, w, x


def _leaves_under(tree: Octree, boxes, begin, end):
    """The leaves holding points under each of ``boxes``, the points being the sources
    (``begin, end = tree.src_begin, tree.src_end``) or the targets: (counts, leaves), the
    leaves of ``boxes[i]`` being the i-th run of ``counts[i]`` entries (contiguous in tree
    order)."""
    held = tree.leaves[end[tree.leaves] > begin[tree.leaves]]
    held = held[np.argsort(begin[held], kind="stable")]
    starts = begin[held]
    lo = np.searchsorted(starts, begin[boxes])
    counts = np.searchsorted(starts, end[boxes]) - lo
    return counts, held[_ranges(lo, counts)]


def narrow_far_field(tree: Octree, near, w, leaves, max_half_width: float, separation: float,
                     min_points: int):
    """Rewrite the near and W lists of the target ``leaves`` so that every source reaches them
    directly or through the multipole of a box of half-width at most ``max_half_width``.

    For each leaf T, a traversal of the source boxes from the root: a box C is taken through
    M2P when every point of T lies at max-norm distance at least ``separation`` half-widths of
    C from C's centre (outside its upward check surface) and C is narrow enough; a C so taken
    with fewer than ``min_points`` sources gives its source leaves to the near list instead
    (as in :func:`near_and_far`). Otherwise a leaf C joins the near list, and an internal C is
    opened into its children that hold sources. The rows of ``leaves`` are replaced and the
    other rows kept: the caller must not add a local expansion (L2P) at ``leaves``, whose
    targets get every source exactly once through these two lists.

    Parameters
    ----------
    tree : Octree
    near, w : tuple of (indptr, indices)
        As returned by :func:`near_and_far`.
    leaves : ndarray of int64
        Target leaves to rewrite.
    max_half_width, separation : float
    min_points : int

    Returns
    -------
    near, w : tuple of (indptr, indices), int64
    """
    centres, half_widths = tree.box_centers(), tree.box_half_widths()
    n_src = tree.src_end - tree.src_begin
    rows = [[], []]  # near, w: (target leaf, source box) pairs found
    cols = [[], []]
    t = np.asarray(leaves, np.int64)
    c = np.zeros(len(t), np.int64)  # every traversal starts at the root
    while len(t):
        gap = np.abs(centres[c] - centres[t]) - half_widths[t, None]
        far = np.maximum(gap, 0.0).max(axis=1) >= separation * half_widths[c]
        far &= half_widths[c] <= max_half_width
        m2p = far & (n_src[c] >= min_points)
        small = far & ~m2p
        counts, expanded = _leaves_under(tree, c[small], tree.src_begin, tree.src_end)
        direct = ~far & tree.is_leaf[c]
        rows[0] += [np.repeat(t[small], counts), t[direct]]
        cols[0] += [expanded, c[direct]]
        rows[1].append(t[m2p])
        cols[1].append(c[m2p])
        opened = ~far & ~tree.is_leaf[c]
        first = tree.child_ptr[c[opened]]  # the children of a box are boxes in a row
        n_children = tree.child_ptr[c[opened] + 1] - first
        t, c = np.repeat(t[opened], n_children), _ranges(first, n_children)
        keep = n_src[c] > 0
        t, c = t[keep], c[keep]

    out = []
    replaced = np.zeros(tree.n_boxes, bool)
    replaced[leaves] = True
    for (indptr, indices), r, k in zip((near, w), rows, cols):
        old_rows = _rows(indptr)
        kept = ~replaced[old_rows]
        out.append(_csr_from_rows(np.concatenate([old_rows[kept], *r]).astype(np.int64),
                                  np.concatenate([indices[kept], *k]).astype(np.int64),
                                  tree.n_boxes))
    return tuple(out)


def leaves_away_from_sources(tree: Octree, lists: InteractionLists, max_half_width: float):
    """Target leaves away from the sources that expansions of boxes wider than
    ``max_half_width`` reach.

    A leaf is *away from the sources* when one of its targets is farther than
    ``2 max_half_width`` from every source and, besides, no source leaf is adjacent to the leaf
    (empty U list) or that target is farther from every source than the leaf's half-width:
    its potential then comes mostly through expansions, not from sources beside it. (Targets
    among the sources, however narrow ``max_half_width``, are never away.) The expansions that
    reach a leaf T are the local expansions of T and of its ancestors that receive a V or X
    list, and the multipoles of T's W list.

    Parameters
    ----------
    tree : Octree
    lists : InteractionLists
    max_half_width : float

    Returns
    -------
    ndarray of int64
        The leaves, in the order of ``tree.leaves``; empty when the targets are the sources
        or ``max_half_width`` is infinite.
    """
    has_tgt = tree.tgt_end > tree.tgt_begin
    leaves = tree.leaves[has_tgt[tree.leaves]]
    if tree.targets_are_sources or not np.isfinite(max_half_width):
        return leaves[:0]
    half_widths = tree.box_half_widths()
    # widest expansion reaching each leaf
    widest = np.zeros(tree.n_boxes)
    np.maximum.at(widest, _rows(lists.w_indptr), half_widths[lists.w_indices])
    widest = widest[leaves]
    local = (np.diff(lists.v_indptr) + np.diff(lists.x_indptr)) > 0
    box = leaves.copy()
    for _ in range(tree.depth + 1):  # the leaf, then its ancestors up to the root
        widest = np.where(local[box], np.maximum(widest, half_widths[box]), widest)
        box = np.maximum(tree.parent[box], 0)
    reached = widest > max_half_width
    if not reached.any():  # no wide expansion anywhere: skip the nearest-source search
        return leaves[:0]
    # nearest-source distance of every target, its largest value per leaf (the leaves are in
    # Morton order: their target ranges tile the targets in order)
    nearest = cKDTree(tree.sources.T).query(tree.targets.T, workers=-1)[0]
    farthest = np.maximum.reduceat(nearest, tree.tgt_begin[leaves])
    beside = (np.diff(lists.u_indptr)[leaves] > 0) & (farthest <= half_widths[leaves])
    return leaves[reached & (farthest > 2 * max_half_width) & ~beside]


def l2p_boxes(tree, lists, leaves, receivers=()):
    """For each target leaf, the box whose local expansion its L2P should evaluate: the deepest
    box on its path to the root (itself included) that receives a far field of its own.

    Parameters
    ----------
    tree : Octree
    lists : InteractionLists
        Boxes with a V list receive a far field (M2L).
    leaves : ndarray of shape (n,), int64
    receivers : sequence of index arrays or boolean masks over the boxes
        More boxes that receive a far field: those with P2L (an X list), those the distributed
        FMM adds the other ranks' field to.

    Returns
    -------
    ndarray of shape (n,), int64

    Notes
    -----
    The local expansion of a box below that one is the same field refitted by L2L alone. Each
    L2L refits it on a smaller box and adds an error of relative size about eps whose gradient
    grows as 1 / width. Targets clustered far below their sources sit in boxes split for the
    targets' count alone, and their gradients from the leaf's own expansion missed eps by
    factors of 1,000 to 20,000; the ancestor's expansion is the same field without those refits.
    """
    receives = np.diff(lists.v_indptr) > 0
    for extra in receivers:
        receives[extra] = True
    boxes = np.array(leaves, np.int64)
    for _ in range(tree.depth):
        up = ~receives[boxes] & (tree.parent[boxes] >= 0)
        if not up.any():
            break
        boxes[up] = tree.parent[boxes[up]]
    return boxes
