"""The KIFMM engine: fit once (tree, lists, plan, grouped index arrays), evaluate many times.

``FMMEngine`` binds a :class:`~fmmsolve.operators.plan.Plan` to a geometry. ``evaluate`` runs
the passes in this order: P2M, M2M up the levels, M2L (compressed, matrix products per
transfer vector over chunks of target boxes, :mod:`fmmsolve.operators.m2l`), P2L, L2L down the levels, and
finally L2P, M2P and P2P at the leaves. Python only sequences the passes. The point work is
compiled (:mod:`fmmsolve.operators.translations`), and the matrix work is batched matrix
products through NumPy's BLAS, outside any ``prange``. The engine never branches on the kernel's
name.
"""

from __future__ import annotations

import time

import numpy as np

from ._config import DEFAULT_LEAF_SIZE
from ._validation import as_points, check_positive_int, resolve_real_dtype
from .kernels import get_kernel
from .operators import m2l, surfaces, translations
from .operators.plan import compute_plan, transfer_index
from .tree import build_interaction_lists, build_octree

__all__ = ["FMMEngine", "order_for_eps"]

# eps -> expansion order, from the measured relative L2 error of the potential (20k points,
# float64, worst of uniform / clusters / curve; docs/accuracy.md): p=3 1.5e-3, 4 2.0e-4,
# 5 1.8e-5, 6 1.9e-6, 7 2.5e-7, 8 3.6e-8, 9 5.2e-9, 10 2.1e-9 (stalls), 11 1.1e-10. Each eps
# gets the lowest order whose worst error is at least 4x below it.
_ORDERS = ((1e-2, 3), (1e-3, 4), (1e-4, 5), (1e-5, 6), (1e-6, 7), (1e-7, 8), (1e-8, 9),
           (1e-9, 11))
# M2L compression keeps singular values above this fraction of eps times the largest.
_COMPRESSION_MARGIN = 0.1


def order_for_eps(eps: float) -> int:
    """Expansion order used for a requested relative accuracy ``eps``."""
    for bound, order in _ORDERS:
        if eps >= bound:
            return order
    raise ValueError(f"eps must be at least 1e-9 (the smallest accuracy fmmsolve is measured "
                     f"to reach), got {eps!r}")


def _rmul(x, op):
    """``x[..., :] @ op.T`` for a stack x of shape (n, m, k) as one matrix product."""
    n, m, k = x.shape
    return (x.reshape(n * m, k) @ op.T).reshape(n, m, op.shape[0])


def _octant_groups(tree, boxes):
    """Split ``boxes`` (one level) by octant: a list of (octant, boxes, their parents)."""
    octant = tree.keys[boxes] & 7
    return [(c, boxes[octant == c], tree.parent[boxes[octant == c]])
            for c in range(8) if np.any(octant == c)]


class FMMEngine:
    """A fitted FMM for fixed sources and targets.

    Parameters
    ----------
    sources : array_like of shape (n_sources, 3)
    targets : array_like of shape (n_targets, 3) or None
        None means the targets are the sources.
    kernel : str, default "laplace"
    wavenumber : scalar or None
    eps : float, default 1e-6
        Requested relative L2 accuracy of the potential, in [1e-9, 1).
    expansion_order : int or None
        Overrides the order chosen from ``eps`` (2 to 16).
    leaf_size : int or None
        Maximum points per leaf; None picks a default for the expansion order.
    dtype : None, np.float32 or np.float64
        Real working precision (default float64).

    Attributes
    ----------
    kernel : Kernel
    real_dtype, value_dtype : numpy.dtype
        Precision of coordinates, and of densities and potentials.
    n_sources, n_targets : int
    expansion_order : int
    eps : float
    tree : Octree
    lists : InteractionLists
    plan : Plan
    timings : dict of str to float
        Seconds per operator in the last ``evaluate``.
    fit_timings : dict of str to float
        Seconds spent in each fitting stage.
    """

    def __init__(self, sources, targets=None, *, kernel="laplace", wavenumber=None, eps=1e-6,
                 expansion_order=None, leaf_size=None, dtype=None):
        t0 = time.perf_counter()
        self.kernel = get_kernel(kernel)
        self._compiled = translations.for_kernel(self.kernel)
        self.wavenumber = self.kernel.check_wavenumber(wavenumber)
        self.real_dtype = resolve_real_dtype(dtype)
        self.value_dtype = self.kernel.value_dtype(self.real_dtype)
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) \
                or not 0.0 < eps < 1.0:
            raise ValueError(f"eps must be a number in (0, 1), got {eps!r}")
        self.eps = float(eps)
        if expansion_order is None:
            self.expansion_order = order_for_eps(self.eps)
        else:
            self.expansion_order = check_positive_int(expansion_order, "expansion_order")
            if not 2 <= self.expansion_order <= 16:
                raise ValueError(f"expansion_order must be in [2, 16], got {expansion_order!r}")
        if leaf_size is None:
            # about one surface's worth of points per leaf balances near and far field
            leaf_size = max(DEFAULT_LEAF_SIZE, surfaces.n_surface_points(self.expansion_order))
        leaf_size = check_positive_int(leaf_size, "leaf_size")
        src = as_points(sources, "sources")
        tgt = None if targets is None else as_points(targets, "targets")
        t1 = time.perf_counter()
        self.tree = build_octree(src, tgt, leaf_size=leaf_size)
        t2 = time.perf_counter()
        self.lists = build_interaction_lists(self.tree)
        t3 = time.perf_counter()
        self.plan = compute_plan(self.kernel.name, self.expansion_order,
                                 _COMPRESSION_MARGIN * self.eps, self.value_dtype.str)
        t4 = time.perf_counter()
        self._bind_geometry()
        t5 = time.perf_counter()
        self.fit_timings = {"validate": t1 - t0, "tree": t2 - t1, "lists": t3 - t2,
                            "plan": t4 - t3, "bind": t5 - t4}
        self.timings = {}

    def _bind_geometry(self):
        """Index arrays and real-dtype geometry that every evaluation reuses."""
        tree, lists, real = self.tree, self.lists, self.real_dtype
        # Geometry stays float64; points are stored relative to their leaf's centre (see
        # operators/translations.py, "Frames") in the working precision.
        self._centres = tree.box_centers()
        self._half_widths = tree.box_half_widths()
        # check-to-equivalent scale per box, cast once here rather than in every matvec
        self._c2e_scale = (self._half_widths ** self.plan.scale_degree).astype(self.value_dtype)
        self._surf = np.ascontiguousarray(self.plan.surface.T, dtype=real)
        has_src = tree.src_end > tree.src_begin
        has_tgt = tree.tgt_end > tree.tgt_begin

        def local(points, begin, end):
            owner = np.repeat(tree.leaves, (end - begin)[tree.leaves])  # leaves tile the points
            return np.ascontiguousarray(points - self._centres[owner].T, dtype=real)

        self._src = local(tree.sources, tree.src_begin, tree.src_end)
        self._tgt = self._src if tree.targets_are_sources else \
            local(tree.targets, tree.tgt_begin, tree.tgt_end)

        self._src_leaves = tree.leaves[has_src[tree.leaves]]
        self._tgt_leaves = tree.leaves[has_tgt[tree.leaves]]
        self._x_boxes = np.flatnonzero(np.diff(lists.x_indptr) > 0)

        # M2M (deepest level first, up to the root so the upward pass is complete) and L2L
        # (shallowest first, from level 2: no V or X list reaches a box above it).
        self._m2m_groups, self._l2l_groups = [], []
        for level in range(tree.depth, 0, -1):
            boxes = np.arange(tree.level_ptr[level], tree.level_ptr[level + 1])
            self._m2m_groups += _octant_groups(tree, boxes[has_src[boxes]])
        for level in range(3, tree.depth + 1):
            boxes = np.arange(tree.level_ptr[level], tree.level_ptr[level + 1])
            self._l2l_groups += _octant_groups(tree, boxes[has_tgt[boxes]])

        # M2L pairs, scheduled in cache-sized chunks of targets (operators/m2l.py).
        t = np.repeat(np.arange(tree.n_boxes), np.diff(lists.v_indptr))
        s = lists.v_indices
        vec = transfer_index(tree.anchors[s] - tree.anchors[t])
        assert (vec >= 0).all(), "a V-list pair is not at a transfer vector"
        self._m2l = m2l.schedule(t, s, vec, m2l.CHUNK_BOXES)

    @property
    def n_sources(self) -> int:
        return self.tree.n_sources

    @property
    def n_targets(self) -> int:
        return self.tree.n_targets

    def evaluate(self, charges, gradient=False):
        """Potentials (and gradients) at the targets, in the caller's order.

        Parameters
        ----------
        charges : ndarray of shape (n_sources, m), ``value_dtype``, C-contiguous
            Already validated by the caller.
        gradient : bool

        Returns
        -------
        pot : ndarray of shape (n_targets, m), ``value_dtype``
        grad : ndarray of shape (n_targets, m, 3), ``value_dtype``, or None
        """
        tree, plan, k = self.tree, self.plan, self.wavenumber
        times = {}
        clock = [time.perf_counter()]

        def lap(name):
            now = time.perf_counter()
            times[name] = times.get(name, 0.0) + now - clock[0]
            clock[0] = now

        vdt = self.value_dtype
        m, n_e = charges.shape[1], plan.n_surface
        q = self._to_tree_order(charges)
        pot = np.zeros((m, self.n_targets), vdt)
        grad = np.zeros((m, 3, self.n_targets if gradient else 0), vdt)
        local = np.zeros((tree.n_boxes, m, n_e), vdt)
        scale = self._c2e_scale
        lap("other")

        multipole = self._upward(q, m, lap)

        m2l.apply(self._m2l, plan, multipole, local)
        lap("m2l")

        boxes = self._x_boxes
        if len(boxes):
            check = np.zeros((len(boxes), m, n_e), vdt)
            self._compiled.x_list_to_surfaces(
                self._src, q, boxes, self.lists.x_indptr, self.lists.x_indices,
                tree.src_begin, tree.src_end, self._centres, self._half_widths, self._surf,
                surfaces.DOWN_CHECK, k, check)
            local[boxes] += scale[boxes, None, None] * _rmul(_rmul(check, plan.dc2e_b),
                                                             plan.dc2e_a)
        lap("p2l")

        for octant, children, parents in self._l2l_groups:
            local[children] += _rmul(local[parents], plan.l2l[octant])
        lap("l2l")

        compiled = self._compiled
        common = (gradient, self._tgt, self._tgt_leaves)
        compiled.surfaces_to_targets(
            *common, tree.tgt_begin, tree.tgt_end, self._centres, self._half_widths, self._surf,
            surfaces.DOWN_EQUIV, local, k, pot, grad)
        lap("l2p")
        compiled.w_list_to_targets(
            *common, self.lists.w_indptr, self.lists.w_indices, tree.tgt_begin, tree.tgt_end,
            self._centres, self._half_widths, self._surf, surfaces.UP_EQUIV, multipole, k,
            pot, grad)
        lap("m2p")
        compiled.near_field(
            gradient, self._src, q, self._tgt, self._tgt_leaves,
            self.lists.u_indptr, self.lists.u_indices, tree.src_begin, tree.src_end,
            tree.tgt_begin, tree.tgt_end, self._centres, k, pot, grad)
        lap("p2p")

        out_pot = np.empty((self.n_targets, m), vdt)
        out_pot[tree.target_perm] = pot.T
        out_grad = None
        if gradient:
            out_grad = np.empty((self.n_targets, m, 3), vdt)
            out_grad[tree.target_perm] = grad.transpose(2, 0, 1)
        lap("other")
        self.timings = times
        return out_pot, out_grad

    def _to_tree_order(self, charges):
        """(n_sources, m) densities in input order -> tree order, flat in the leaf-block layout
        of :mod:`fmmsolve.operators.translations` (for one column, simply tree order)."""
        tree = self.tree
        q = np.asarray(charges, self.value_dtype)[tree.source_perm]
        m = q.shape[1]
        if m == 1:
            return np.ascontiguousarray(q[:, 0])
        flat = np.empty(q.size, self.value_dtype)
        flat[translations.leaf_block_index(tree.src_begin, tree.src_end, tree.leaves, m)] = q
        return flat

    def _upward(self, q, m, lap):
        """P2M at the source leaves, then M2M up to the root; returns (n_boxes, m, n) expansions
        of the m density columns ``q`` (leaf-block layout)."""
        tree, plan, vdt = self.tree, self.plan, self.value_dtype
        n_e = plan.n_surface
        multipole = np.zeros((tree.n_boxes, m, n_e), vdt)
        leaves = self._src_leaves
        check = np.zeros((len(leaves), m, n_e), vdt)
        self._compiled.points_to_surfaces(
            self._src, q, leaves, tree.src_begin, tree.src_end, self._centres,
            self._half_widths, self._surf, surfaces.UP_CHECK, self.wavenumber, check)
        scale = self._c2e_scale[leaves, None, None]
        multipole[leaves] = scale * _rmul(_rmul(check, plan.uc2e_b), plan.uc2e_a)
        lap("p2m")
        for octant, children, parents in self._m2m_groups:
            multipole[parents] += _rmul(multipole[children], plan.m2m[octant])
        lap("m2m")
        return multipole

    def upward(self, charges):
        """Multipole expansions of every box (the upward pass alone, for tests and users).

        Parameters
        ----------
        charges : ndarray of shape (n_sources, m), in the caller's order

        Returns
        -------
        ndarray of shape (n_boxes, m, n_surface), ``value_dtype``
            Equivalent densities on each box's upward equivalent surface (radius
            ``surfaces.UP_EQUIV`` times the box half-width).
        """
        charges = np.asarray(charges)
        return self._upward(self._to_tree_order(charges), charges.shape[1], lambda name: None)

    def tree_summary(self) -> dict:
        """Depth, leaf count, points per leaf and mean interaction-list sizes."""
        return {**self.tree.summary(), **self.lists.summary(self.tree)}
