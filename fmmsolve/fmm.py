"""The KIFMM engine: fit once (tree, lists, plan, grouped index arrays), evaluate many times.

``FMMEngine`` binds a :class:`~fmmsolve.operators.plan.Plan` to a geometry. ``evaluate`` runs
P2M, M2M up the levels, M2L (:mod:`fmmsolve.operators.m2l`), P2L, L2L down the levels, then L2P,
M2P and P2P at the leaves. Python only sequences the passes: the point work is compiled
(:mod:`fmmsolve.operators.translations`), the matrix work is batched BLAS products outside any
``prange``. The engine never branches on the kernel's name.

Per-level plans. A scale-invariant kernel (Laplace) has one plan for every level, rescaled by
the box half-width. The others obey G_k(h x, h y) = G_{k h}(x, y) / h, so the reference plan
(half-width 1) at the effective wavenumber ``k h_l`` is the plan of level ``l`` (its
check-to-equivalent maps still scale by ``h``). A box at level ``l`` takes its P2M, P2L,
check-to-equivalent maps, M2L (one pass per level) and L2L into its children from plan ``l``;
the M2M from its children into it too."""

from __future__ import annotations

import logging
import time

import numpy as np

from ._validation import as_points, check_positive_int, resolve_real_dtype
from .kernels import get_kernel
from .operators import dense, m2l, surfaces, translations
from .operators.upward import Upward, octant_groups
from .operators.m2l import check_strategy
from .operators.plan import level_plans, transfer_index
from .tree import build_interaction_lists, build_octree
from .tree.lists import l2p_boxes, leaves_away_from_sources, narrow_far_field, near_and_far
from . import _engine_state as checks
from . import calibration
from .accuracy import (COMPRESSION_MARGIN, check_eps, check_frequency, check_order, design_eps,
                       level_half_widths, max_expansion_half_width, max_kw2, order_for_eps)

__all__ = ["FMMEngine", "order_for_eps", "max_kw2"]

_log = logging.getLogger("fmmsolve")

def _seconds(timings: dict) -> str:
    """``"tree 0.21, lists 0.06"``: a timings dict for a log line."""
    return ", ".join(f"{name} {seconds:.3f}" for name, seconds in timings.items())


class FMMEngine:
    """A fitted FMM for fixed sources and targets.

    Oscillatory kernels (``"helmholtz"``) are handled in the low-frequency range only: ``|k|``
    times the width ``w_2`` of a level-2 box (a quarter of the root cube's edge) must not
    exceed :func:`max_kw2` (2.5 to 3.5, by expansion order; measured for real k, and ``|k|``
    is used for complex k). Beyond it the requested eps is not met, so the constructor raises
    ValueError. The modified Helmholtz kernel meets eps up to ``k w_2 = 100`` with targets among
    the sources. With a kernel that decays, targets away from the sources take their far field
    from boxes narrow enough for the decay (see ``narrow_far_field``).

    Parameters
    ----------
    sources : array_like of shape (n_sources, 3)
    targets : array_like of shape (n_targets, 3) or None
        None means the targets are the sources.
    kernel : str, default "laplace"
    wavenumber : scalar or None
    eps : float or None
        Relative L2 accuracy of the potential, in [1e-9, 1); None: 1e-6 (1e-4 in float32).
    dipoles : bool, default False
        Whether dipole densities will be evaluated: the order and the M2L compression are then
        chosen for ``eps / DIPOLE_MARGIN`` (:mod:`fmmsolve.accuracy`), so that dipole potentials
        meet eps too (order 15 at eps 1e-9).
    expansion_order : int or None
        Overrides the order chosen from ``eps`` (2 to 16).
    leaf_size : int or None
        Maximum points per leaf; None picks a default for the expansion order.
    dtype : None, np.float32 or np.float64
        Real working precision; None follows the points (float32 if all are, else float64).
    plan_loader : callable or None
        ``plan_loader(kernel_key, order, compression_tol, dtype_str, wavenumber, m2l=True)
        -> Plan``, also given ``m2l_strategy=`` when ``m2l`` is not the default, and ``scale=h``
        for a kernel without a homogeneity law (:func:`~fmmsolve.operators.plan.level_plans`);
        None computes it (memoised in this process). :class:`~fmmsolve.FMMOperator` passes the
        disk cache of :mod:`fmmsolve.cache` here.
    tree_options : dict or None
        More keyword arguments of :func:`~fmmsolve.tree.build_octree` (``root``, ``min_depth``,
        ``max_depth``), for :mod:`fmmsolve.distributed`.
    narrow_far_field : bool, default True
        With a kernel that decays, target leaves away from the sources take their field from
        boxes no wider than :func:`~fmmsolve.accuracy.max_expansion_half_width` allows
        (:func:`~fmmsolve.tree.lists.narrow_far_field`). :mod:`fmmsolve.distributed` turns it
        off: the other ranks' field reaches a leaf through its local expansion.
    m2l : str, default "svd"
        The M2L strategy (:data:`fmmsolve.operators.m2l.STRATEGY_NAMES`): ``"svd"``
        (compressed), or ``"dense"`` (uncompressed, orders up to 8: the oracle of the others).

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
        The plan of level 0 (for Laplace, of every level).
    plans : list of Plan
        The plan of each level 0..depth.
    m2l : str
        The M2L strategy.
    timings : dict of str to float
        Seconds per operator in the last ``evaluate``.
    fit_timings : dict of str to float
        Seconds spent in each fitting stage.
    """

    def __init__(self, sources, targets=None, *, kernel="laplace", wavenumber=None, eps=None,
                 dipoles=False, expansion_order=None, leaf_size=None, dtype=None,
                 plan_loader=None, tree_options=None, narrow_far_field=True, m2l="svd"):
        t0 = time.perf_counter()
        self.kernel = get_kernel(kernel)
        self._compiled = translations.for_kernel(self.kernel)
        self.wavenumber = self.kernel.check_wavenumber(wavenumber)
        self.real_dtype = resolve_real_dtype(dtype, sources, targets)
        self.value_dtype = self.kernel.value_dtype(self.real_dtype)
        self.eps, self.dipoles = check_eps(eps, self.real_dtype), bool(dipoles)
        if self.dipoles and self.kernel.radial is None:
            raise ValueError(f"dipoles=True: the {self.kernel.name!r} kernel has no dipoles")
        # the accuracy the operators are built for (tighter when dipoles are evaluated)
        self._design_eps = design_eps(self.eps, self.dipoles)
        if expansion_order is not None:
            self.expansion_order = check_order(expansion_order)
        elif self.kernel.measured:  # else calibrated below, from the points' extent
            self.expansion_order = order_for_eps(self.eps, self.dipoles)
        self._narrow = bool(narrow_far_field)
        self.m2l = check_strategy(m2l)  # its order limit: in level_plans, once the order is known
        if leaf_size is not None:
            leaf_size = check_positive_int(leaf_size, "leaf_size")
        src = as_points(sources, "sources", precision=self.real_dtype)
        tgt = None if targets is None else as_points(targets, "targets",
                                                     precision=self.real_dtype)
        if expansion_order is None and not self.kernel.measured:
            self.expansion_order = calibration.order_for_points(
                self.kernel, self.wavenumber, self._design_eps, (src, tgt), plan_loader)
        if leaf_size is None:
            leaf_size = surfaces.default_leaf_size(self.expansion_order)
        t1 = time.perf_counter()
        self.tree = build_octree(src, tgt, leaf_size=leaf_size, **(tree_options or {}))
        t2 = time.perf_counter()
        self.lists = build_interaction_lists(self.tree)
        t3 = time.perf_counter()
        check_frequency(self.kernel, self.wavenumber, self.tree, self.expansion_order,
                         self.eps)
        self.plans = level_plans(self.kernel, self.wavenumber, self.expansion_order,
                                 COMPRESSION_MARGIN * self._design_eps, self.value_dtype,
                                 level_half_widths(self.tree), plan_loader, self.m2l)
        self.plan = self.plans[0]
        t4 = time.perf_counter()
        self._bind_geometry((tree_options or {}).get("min_depth", 0))
        t5 = time.perf_counter()
        self.fit_timings = {"validate": t1 - t0, "tree": t2 - t1, "lists": t3 - t2,
                            "plan": t4 - t3, "bind": t5 - t4}
        self.timings = {}
        _log.info("fit: %d sources, %d targets, order %d, depth %d, %d leaves in %.3f s (%s)",
                  self.n_sources, self.n_targets, self.expansion_order, self.tree.depth,
                  len(self.tree.leaves), t5 - t0, _seconds(self.fit_timings))

    def _bind_geometry(self, tree_min_depth=0):
        """Index arrays and real-dtype geometry that every evaluation reuses; boxes down to
        ``tree_min_depth`` may receive a far field at evaluation (see :meth:`evaluate`)."""
        tree, lists, real = self.tree, self.lists, self.real_dtype
        # Geometry stays float64; points are stored relative to their leaf's origin, the centre
        # of its points' bounding box (see operators/translations.py, "Frames"), in the
        # working precision.
        self._centres = tree.box_centers()
        self._frames = translations.leaf_frames(tree)
        self._half_widths = tree.box_half_widths()
        # Boxes of one level share a plan; for Laplace every level shares one.
        self._shared_plan = all(p is self.plan for p in self.plans)
        # check-to-equivalent scale per box, cast once here rather than in every matvec
        self._c2e_scale = (self._half_widths ** self.plan.scale_degree).astype(self.value_dtype)
        self._surf = np.ascontiguousarray(self.plan.surface.T, dtype=real)
        has_src = tree.src_end > tree.src_begin
        has_tgt = tree.tgt_end > tree.tgt_begin

        def local(points, begin, end):
            owner = np.repeat(tree.leaves, (end - begin)[tree.leaves])  # leaves tile the points
            return np.ascontiguousarray(points - self._frames[owner].T, dtype=real)

        self._src = local(tree.sources, tree.src_begin, tree.src_end)
        self._tgt = self._src if tree.targets_are_sources else \
            local(tree.targets, tree.tgt_begin, tree.tgt_end)

        self._src_leaves = tree.leaves[has_src[tree.leaves]]
        self._tgt_leaves = tree.leaves[has_tgt[tree.leaves]]
        # W and X entries that are cheaper as direct sums join the near field (U).
        self._near, self._w, self._x = near_and_far(tree, lists, self.plan.n_surface)
        # A decaying kernel: leaves away from the sources take their field from narrow boxes
        # and direct sums alone, and skip L2P.
        max_hw = max_expansion_half_width(self.kernel, self.wavenumber)
        away = leaves_away_from_sources(tree, lists, max_hw) if self._narrow else []
        if len(away):
            self._near, self._w = narrow_far_field(tree, self._near, self._w, away, max_hw,
                                                   surfaces.SEPARATION, self.plan.n_surface)
        self._l2p_leaves = self._tgt_leaves[~np.isin(self._tgt_leaves, away)]
        self._x_boxes = np.flatnonzero(np.diff(self._x[0]) > 0)
        # L2P of each box's targets from the deepest box above it that receives a far field of
        # its own (tree/lists.py); FMMField uses the same map for its points
        self._l2p_box_of = l2p_boxes(tree, lists, np.arange(tree.n_boxes),
                                     receivers=[self._x_boxes, tree.levels <= tree_min_depth])
        self._l2p = translations.singleton_lists(tree.n_boxes, self._l2p_leaves,
                                                 self._l2p_box_of[self._l2p_leaves])
        self._p2m = translations.singleton_lists(tree.n_boxes, self._src_leaves,
                                                 self._src_leaves)
        self._p2m_groups = self._by_plan(self._src_leaves)
        self._p2l_groups = self._by_plan(self._x_boxes)

        # M2M, deepest level first, up to the root so the upward pass is complete, with exact
        # monopoles (operators/upward.py); L2L shallowest first, from level 2: no V or X list
        # reaches a box above it.
        self._upward_pass = Upward(self.kernel, self.wavenumber, tree, self.plans,
                                   self._src_leaves)
        self._l2l_groups = []
        for level in range(3, tree.depth + 1):
            boxes = np.arange(tree.level_ptr[level], tree.level_ptr[level + 1])
            self._l2l_groups += octant_groups(tree, boxes[has_tgt[boxes]],
                                              self.plans[level - 1].l2l)

        # M2L pairs, scheduled in cache-sized chunks of targets (operators/m2l/).
        t = np.repeat(np.arange(tree.n_boxes), np.diff(lists.v_indptr))
        s = lists.v_indices
        vec = transfer_index(tree.anchors[s] - tree.anchors[t])
        if (vec < 0).any():
            raise ValueError("a V-list pair is not at a transfer vector")
        # One pass over all boxes with a shared plan, else one per level (its ranks differ):
        # (first box, end box, plan, schedule of the pairs in boxes counted from the first).
        if self._shared_plan:
            self._m2l = [(0, tree.n_boxes, self.plan,
                          m2l.schedule(t, s, vec, m2l.CHUNK_BOXES, self.m2l))]
        else:
            self._m2l = []
            for level in range(2, tree.depth + 1):
                lo, hi = tree.level_ptr[level], tree.level_ptr[level + 1]
                pairs = (t >= lo) & (t < hi)
                if pairs.any():
                    self._m2l.append((lo, hi, self.plans[level], m2l.schedule(
                        t[pairs] - lo, s[pairs] - lo, vec[pairs], m2l.CHUNK_BOXES, self.m2l)))

    def _by_plan(self, boxes):
        """``boxes`` split by plan: a list of (rows of ``boxes``, plan); one entry with
        ``slice(None)`` when every level shares the plan."""
        if self._shared_plan:
            return [(slice(None), self.plan)]
        levels = self.tree.levels[boxes]
        return [(np.flatnonzero(levels == lv), self.plans[lv]) for lv in np.unique(levels)]

    @property
    def n_sources(self) -> int:
        return self.tree.n_sources

    @property
    def n_targets(self) -> int:
        return self.tree.n_targets

    def evaluate(self, charges, gradient=False, dipoles=None, far_field=None):
        """Potentials (and gradients) at the targets, in the caller's order.

        Parameters
        ----------
        charges : ndarray of shape (n_sources, m C), ``value_dtype``, C-contiguous, or None
            Already validated by the caller; for a kernel of C components (``kernel.components``)
            column ``C c + a`` is component ``a`` of column ``c``.
        gradient : bool
        dipoles : ndarray of shape (n_sources, m, 3), ``value_dtype``, or None
            Dipole densities (:mod:`fmmsolve.kernels.dipole`), with the same m columns as
            ``charges``; at least one of the two is given.
        far_field : callable or None
            ``far_field(multipole) -> (boxes, local)``, called between the passes with the
            (n_boxes, m, n) multipoles; ``local`` (len(boxes), m, n) is added to those boxes
            (level >= 2) before L2L: the other ranks' far field in :mod:`fmmsolve.distributed`.

        Returns
        -------
        pot : ndarray of shape (n_targets, m C), ``value_dtype``
        grad : ndarray of shape (n_targets, m C, 3), ``value_dtype``, or None
        """
        if dipoles is not None and not self.dipoles:
            raise ValueError("this FMM was fit for charges only: fit it with dipoles=True to "
                             "evaluate dipoles (they need a higher order to meet eps)")
        # One level of threading: Numba's prange; BLAS single-threaded (operators/dense.py).
        with dense.single_threaded_blas():
            return self._evaluate(charges, dipoles, gradient, far_field)

    def _sources(self, charges, dipoles):
        """The density passes of an evaluation: a list of (compiled translations, densities in
        the leaf-block layout), one for charges and one for dipoles, as given; and m."""
        passes = []
        if charges is not None:
            passes.append((self._compiled, self._to_tree_order(charges)))
        if dipoles is not None:
            n, m = dipoles.shape[:2]
            passes.append((translations.for_kernel(self.kernel, dipoles=True),
                           self._to_tree_order(dipoles.reshape(n, 3 * m))))
        return passes, (charges.shape[1] // self.kernel.components if charges is not None
                        else dipoles.shape[1])

    def _evaluate(self, charges, dipoles, gradient, far_field=None):
        tree, k = self.tree, self.wavenumber
        times = {}
        clock = [time.perf_counter()]

        def lap(name):
            now = time.perf_counter()
            times[name] = times.get(name, 0.0) + now - clock[0]
            clock[0] = now

        vdt = self.value_dtype
        sources, m = self._sources(charges, dipoles)
        rows = m * self.kernel.components  # the potentials' rows (C c + a: component a)
        pot = np.zeros((rows, self.n_targets), vdt)
        grad = np.zeros((rows, 3, self.n_targets if gradient else 0), vdt)
        lap("other")

        multipole = self._upward(sources, m, lap)
        extra = None
        if far_field is not None:
            extra = far_field(multipole)
            lap("far_field")
        local = self._downward(sources, multipole, lap, extra)

        compiled = self._compiled
        common = (gradient, self._tgt, self._tgt_leaves)
        compiled.surfaces_to_targets(
            gradient, self._tgt, self._l2p_leaves, *self._l2p, tree.tgt_begin, tree.tgt_end,
            self._centres, self._frames, self._half_widths, self._surf, surfaces.DOWN_EQUIV,
            local, k, pot, grad)
        lap("l2p")
        compiled.surfaces_to_targets(
            *common, *self._w, tree.tgt_begin, tree.tgt_end,
            self._centres, self._frames, self._half_widths, self._surf, surfaces.UP_EQUIV,
            multipole, k, pot, grad)
        lap("m2p")
        for passes, q in sources:
            passes.near_field(
                gradient, self._src, q, self._tgt, self._tgt_leaves,
                *self._near, tree.src_begin, tree.src_end,
                tree.tgt_begin, tree.tgt_end, self._frames, k, pot, grad)
        lap("p2p")

        out_pot = np.empty((self.n_targets, rows), vdt)
        out_pot[tree.target_perm] = pot.T
        out_grad = None
        if gradient:
            out_grad = np.empty((self.n_targets, rows, 3), vdt)
            out_grad[tree.target_perm] = grad.transpose(2, 0, 1)
        lap("other")
        self.timings = times
        _log.debug("evaluate: %d column(s)%s%s in %.3f s (%s)", m,
                   " of dipoles" * (dipoles is not None), " with gradients" * gradient,
                   sum(times.values()), _seconds(times))
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

    def _upward(self, sources, m, lap):
        """P2M at the source leaves, then M2M up to the root; returns (n_boxes, m, n) expansions
        of the m density columns of ``sources`` (a list from :meth:`_sources`)."""
        tree, vdt = self.tree, self.value_dtype
        n_e = self.plan.n_expansion
        multipole = np.zeros((tree.n_boxes, m, n_e), vdt)
        leaves = self._src_leaves
        check = np.zeros((len(leaves), m, n_e), vdt)
        for passes, q in sources:
            passes.points_to_surfaces(
                self._src, q, leaves, *self._p2m, tree.src_begin, tree.src_end, self._centres,
                self._frames, self._half_widths, self._surf, surfaces.UP_CHECK, self.wavenumber,
                check)
        for rows, plan in self._p2m_groups:
            boxes = leaves[rows]
            scale = self._c2e_scale[boxes, None, None]
            multipole[boxes] = scale * dense.rmul(dense.rmul(check[rows], plan.uc2e_b),
                                                  plan.uc2e_a)
        self._upward_pass.fix(multipole, leaves, self._upward_pass.leaf_monopoles(sources, m))
        lap("p2m")
        self._upward_pass.m2m(multipole)
        lap("m2m")
        return multipole

    def _downward(self, sources, multipole, lap, extra=None):
        """M2L, P2L, then L2L down the levels: returns the (n_boxes, m, n) local expansions
        from the multipoles and the densities ``sources`` (from :meth:`_sources`) of the
        upward pass, plus ``extra = (boxes, local)`` added before L2L (see :meth:`evaluate`).
        :class:`~fmmsolve.field.FMMField` calls it too."""
        tree, vdt, n_e = self.tree, self.value_dtype, self.plan.n_expansion
        m = multipole.shape[1]
        local = np.zeros((tree.n_boxes, m, n_e), vdt)
        for lo, hi, plan, sched in self._m2l:
            m2l.apply(sched, plan, multipole[lo:hi], local[lo:hi])
        lap("m2l")

        boxes = self._x_boxes
        if len(boxes):
            check = np.zeros((len(boxes), m, n_e), vdt)
            for passes, q in sources:
                passes.points_to_surfaces(
                    self._src, q, boxes, *self._x,
                    tree.src_begin, tree.src_end, self._centres, self._frames, self._half_widths,
                    self._surf, surfaces.DOWN_CHECK, self.wavenumber, check)
            for rows, plan in self._p2l_groups:
                b = boxes[rows]
                local[b] += self._c2e_scale[b, None, None] * dense.rmul(
                    dense.rmul(check[rows], plan.dc2e_b), plan.dc2e_a)
        lap("p2l")

        if extra is not None:
            boxes, values = extra
            local[boxes] += values
        for children, parents, op in self._l2l_groups:
            local[children] += dense.rmul(local[parents], op)
        lap("l2l")
        return local

    def upward(self, charges):
        """Multipole expansions of every box (the upward pass alone, for tests and users).

        Parameters
        ----------
        charges : ndarray of shape (n_sources, m), in the caller's order

        Returns
        -------
        ndarray of shape (n_boxes, m, n_surface), ``value_dtype``
            Equivalent densities on each box's upward equivalent surface (``UP_EQUIV`` h).
        """
        sources, m = self._sources(np.asarray(charges), None)
        with dense.single_threaded_blas():
            return self._upward(sources, m, lambda name: None)

    def translate(self, multipole):
        """M2M up from the leaves' (n_boxes, m, n) ``multipole`` (in place), then M2L and L2L:
        the (n_boxes, m, n) local expansions, for trees whose leaves share one level (no W or X
        list). :mod:`fmmsolve.distributed` runs its shared top tree with it."""
        with dense.single_threaded_blas():
            self._upward_pass.m2m(multipole)
            return self._downward([], multipole, lambda name: None)

    def tree_summary(self) -> dict:
        """Depth, leaf count, points per leaf and mean interaction-list sizes."""
        return {**self.tree.summary(), **self.lists.summary(self.tree)}

    # -- saving and loading: the fitted state as plain values (fmmsolve.io stores them) ----------

    def state(self):
        """The fitted state as plain arrays and parameters, for :meth:`from_state`: ``(groups,
        attrs)``, laid out as :func:`fmmsolve._engine_state.state_of` documents."""
        return checks.state_of(self)

    @classmethod
    def from_state(cls, groups, attrs):
        """Rebuild a fitted engine from :meth:`state`'s output without recomputing it.

        The tree, lists and plan are used as given (no copy); only the cheap derived index
        arrays are rebuilt. Everything is checked first (presence, dtypes, shapes, index bounds,
        links between boxes, permutations, point ranges), so that inconsistent arrays raise
        here instead of crashing compiled code or giving wrong numbers.

        Parameters
        ----------
        groups, attrs : dict
            As returned by :meth:`state`; other attributes are ignored.

        Returns
        -------
        FMMEngine
            ``fit_timings`` holds ``"validate"`` and ``"bind"`` seconds; ``timings`` is empty.

        Raises
        ------
        ValueError
            Naming the array or parameter that is missing, of the wrong dtype or shape, or
            inconsistent with the rest.
        """
        t0 = time.perf_counter()
        self = cls.__new__(cls)
        checks.restore(self, groups, attrs)
        self._narrow = True  # a saved engine is serial (fmmsolve.distributed does not save)
        t1 = time.perf_counter()
        self._bind_geometry()
        self.fit_timings = {"validate": t1 - t0, "bind": time.perf_counter() - t1}
        self.timings = {}
        return self
