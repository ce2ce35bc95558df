"""``FMMField``: the field of fixed sources and charges, evaluated at any new points.

:class:`~fmmsolve.fmm.FMMEngine` builds one octree over sources and targets together, so new
targets would normally mean a new tree and a new upward pass. ``FMMField`` does the source-side
work once, when it is built: an engine over the sources alone, then the upward pass (P2M, M2M)
and the downward pass (M2L, P2L, L2L). It keeps the multipole and the local expansion of every
box. Evaluating at new points then needs no new tree. Each point ``y`` is located in the
existing tree: ``B`` is the deepest box that contains it (:func:`fmmsolve.tree.queries.locate`:
its Morton key relative to the root cube, searched in the sorted box keys level by level).

* ``B`` is a leaf. The FMM's own decomposition applies unchanged: L2P of B's local expansion,
  M2P from B's W list, and P2P from B's near list (the U list plus the W and X entries that
  :func:`~fmmsolve.tree.lists.near_and_far` turned into direct sums; it holds B itself).
  These are the engine's compiled passes (:mod:`fmmsolve.operators.translations`), given the new
  points sorted by leaf, with their own per-box ranges.
* ``B`` is an internal box (``y`` lies in one of its empty octants), or ``y`` lies outside the
  root cube (then B is "nothing": no local expansion). B's local expansion covers every
  source except those in B's *neighbourhood*. The neighbourhood is B and its same-level
  colleagues with their subtrees, plus the coarser leaves adjacent to B (the root, outside the
  cube; :func:`fmmsolve.tree.queries.neighbourhoods`). The reason is that V and X lists are
  complete for every internal box, and ``near_and_far`` only rewrites the lists of leaves.
  The neighbourhood is summed by a bounded traversal for each point. A box ``C`` is used
  through M2P when ``y`` is well separated from it (max-norm distance from C's centre >=
  ``SEPARATION`` = 3 half-widths, outside its upward check surface at 2.95) and, for a kernel
  that decays at the rate d, C is narrow enough for its multipole to hold relative to the
  decaying field (d w <= ``DECAY_WIDTH``, :mod:`fmmsolve.accuracy`), and for an oscillatory
  kernel no wider than a level-2 box (the expansion order was chosen for ``|k| w_2``,
  :func:`~fmmsolve.accuracy.choose_order`; wider boxes' expansions miss eps). Otherwise
  the traversal recurses into C's children, and a leaf is summed directly. Points inside a
  closed surface of sources (the interior of a sphere) fall into large empty boxes. Their
  cost is bounded by the boxes near them, never a direct sum over all sources.

With a constant kernel and one charge column per source, the field counts how many times each
source reaches each point; ``tests/test_field.py`` checks that every count is 1.

Zero-distance pairs contribute nothing, as everywhere in fmmsolve: a point that coincides with a
source skips it. Such a point has the source's Morton key, so it lands in the source's leaf, and
both are taken relative to that leaf's origin, bit for bit.

Pickling stores the constructor arguments and fits again when unpickled, as
:class:`~fmmsolve.FMMOperator` does.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from . import cache
from ._jit import bind, prange
from ._validation import as_densities, as_points, check_flag, resolve_real_dtype
from .accuracy import DECAY_WIDTH, max_expansion_half_width
from .engine import passes
from .fmm import FMMEngine
from .kernels import get_kernel
from .operators import dense, surfaces, translations
from .operators.surfaces import SEPARATION
from .operators.translations import box_surface, leaf_densities, to_targets
from .tree import queries

__all__ = ["FMMField", "SEPARATION", "DECAY_WIDTH"]

# Placeholders: the template reads these globals, `_traversal` binds them to a kernel.
p2p = p2p_gradient = None


def neighbourhood_to_targets(gradient, points, groups, start_ptr, start_idx, child_ptr,
                             centres, frames, half_widths, src, charges, src_begin, src_end, surf,
                             radius, multipole, wavenumber, max_m2p_half_width, stack_size, pot,
                             grad):
    """Add, at each point, the field of the boxes of its neighbourhood: M2P from the boxes it is
    well separated from, P2P from the leaves it is not, descending in between.

    ``points`` (n, 3) float64 are absolute coordinates; point ``t`` starts from the boxes
    ``start_idx[start_ptr[groups[t]]:start_ptr[groups[t] + 1]]``. Every interaction is computed
    in the frame of the source box. Boxes of half-width above ``max_m2p_half_width`` are never
    used through M2P
    (:func:`~fmmsolve.accuracy.max_expansion_half_width`).
    """
    for t in prange(points.shape[0]):
        stack = np.empty(stack_size, np.int64)
        top = 0
        g = groups[t]
        for e in range(start_ptr[g], start_ptr[g + 1]):
            stack[top] = start_idx[e]
            top += 1
        tgt = np.empty((3, 1), src.dtype)
        pot_t = pot[:, t:t + 1]
        grad_t = grad[:, :, t:t + 1]
        while top > 0:
            top -= 1
            c = stack[top]
            far = 0.0
            for d in range(3):
                far = max(far, abs(points[t, d] - centres[c, d]))
                tgt[d, 0] = points[t, d] - frames[c, d]
            is_leaf = child_ptr[c + 1] == child_ptr[c]
            if far >= SEPARATION * half_widths[c] and half_widths[c] <= max_m2p_half_width:
                pts = box_surface(surf, centres, frames, half_widths, radius, c, c)
                to_targets(p2p, p2p_gradient, gradient, pts[0], pts[1], pts[2], multipole[c],
                            tgt, 0, 1, wavenumber, pot_t, grad_t)
            elif is_leaf:
                s0, s1 = src_begin[c], src_end[c]
                to_targets(p2p, p2p_gradient, gradient, src[0, s0:s1], src[1, s0:s1],
                            src[2, s0:s1], leaf_densities(charges, s0, s1, src.shape[1]),
                            tgt, 0, 1, wavenumber, pot_t, grad_t)
            else:
                for child in range(child_ptr[c], child_ptr[c + 1]):
                    stack[top] = child
                    top += 1


@functools.lru_cache(maxsize=None)
def _traversal(kernel):
    """:func:`neighbourhood_to_targets` compiled for ``kernel``."""
    bindings = {"p2p": kernel.p2p, "p2p_gradient": kernel.p2p_gradient}
    return bind(neighbourhood_to_targets, kernel.tag, bindings, parallel=True)


def _restore(sources, charges, params):
    """Unpickle an :class:`FMMField` by fitting it again."""
    return FMMField(sources, charges, **params)


def _read_only(array):
    out = np.array(array)
    out.flags.writeable = False
    return out


class FMMField:
    """The field ``phi(y) = sum_j G(y, x_j) q_j`` of fixed sources, at any points ``y``.

    The tree, the plan and the expansions of every box are computed once, here; each
    :meth:`evaluate` then costs only the work at the new points (see the module docstring).

    Parameters
    ----------
    sources : array_like of shape (n_sources, 3)
        Source points ``x_j``.
    charges : array_like of shape (n_sources,) or (n_sources, m)
        Densities ``q_j``; m columns are m fields evaluated together. Complex only for a
        complex kernel.
    kernel : str, default "laplace"
        A name from :data:`fmmsolve.KERNEL_NAMES`, or of a kernel registered with
        :func:`fmmsolve.register_kernel`.
    wavenumber : scalar or None
        Required by the Helmholtz kernels; None for ``"laplace"``.
    eps : float or None, default None
        Requested relative L2 accuracy of the field over the evaluation points, in (0, 1);
        None is 1e-6 in float64 and 1e-4 in float32.
    expansion_order : int or None
        Overrides the order chosen from ``eps``.
    leaf_size : int or None
        Maximum sources per leaf; None picks a tuned default.
    dtype : None, np.float32 or np.float64
        Real working precision; None follows the sources (float32 if they are, else float64),
        as for :class:`~fmmsolve.FMMOperator`.
    memory : "default", str, os.PathLike, joblib.Memory or None, default "default"
        Disk cache of the precomputed operators, as for :class:`~fmmsolve.FMMOperator`.

    Attributes
    ----------
    sources : ndarray of shape (n_sources, 3), float64, read-only
    charges : ndarray of shape (n_sources,) or (n_sources, m), read-only
        The value dtype: float64, float32, or complex for a complex kernel.
    kernel : str
    wavenumber, eps, leaf_size, memory
        The constructor arguments.
    expansion_order : int
    value_dtype : numpy.dtype
    tree : dict
        Tree and interaction-list summary of the sources' octree.
    fit_timings : dict of str to float
        Seconds to build the engine (tree, lists, plan), and of the ``"upward"`` and
        ``"downward"`` passes.
    timings : dict of str to float
        Seconds per stage of the last :meth:`evaluate`: ``"locate"``, ``"l2p"``, ``"m2p"``,
        ``"p2p"``, ``"neighbourhood"``.

    Examples
    --------
    >>> import numpy as np, fmmsolve
    >>> x = np.random.default_rng(0).random((5000, 3))
    >>> field = fmmsolve.FMMField(x, np.ones(5000), eps=1e-6)
    >>> phi = field.evaluate(np.random.default_rng(1).random((100, 3)) * 4 - 2)
    """

    def __init__(self, sources, charges, *, kernel="laplace", wavenumber=None, eps=None,
                 expansion_order=None, leaf_size=None, dtype=None, memory="default"):
        t0 = time.perf_counter()
        dtype = resolve_real_dtype(dtype, sources)  # before the sources become float64
        src = as_points(sources, "sources")
        kern = get_kernel(kernel).require_scalar("FMMField")
        q = as_densities(charges, src.shape[0], "charges", kern.value_dtype(dtype))
        loader = cache.plan_loader(memory)
        engine = FMMEngine(src, None, kernel=kern, wavenumber=wavenumber, eps=eps,
                           expansion_order=expansion_order, leaf_size=leaf_size, dtype=dtype,
                           plan_loader=loader)
        self._set_up(engine.schedule, src, q, wavenumber, leaf_size, memory, dtype, t0)

    @classmethod
    def from_operator(cls, operator, charges) -> "FMMField":
        """The field of ``charges`` at the sources of a fitted :class:`~fmmsolve.FMMOperator`,
        on its tree, lists and plans: no second fit.

        Parameters
        ----------
        operator : FMMOperator
            Fitted on its sources alone (``targets=None``); with ``dipoles=True`` its higher
            order serves the charges too.
        charges : array_like of shape (n_sources,) or (n_sources, m)
            As for the constructor.

        Returns
        -------
        FMMField
            Equal, bit for bit, to ``FMMField(operator.sources, charges, ...)`` with the
            operator's kernel, wavenumber, eps, leaf size, dtype and memory.
        """
        from .linear_operator import FMMOperator  # the operator module does not need fields

        t0 = time.perf_counter()
        if not isinstance(operator, FMMOperator):
            raise TypeError(f"operator must be an FMMOperator, got {type(operator).__name__}")
        if operator.targets is not None:
            raise ValueError("operator must be fitted on its sources alone (targets=None): a "
                             "field needs the tree of its sources only")
        schedule = operator.engine.schedule
        fitted = schedule.fitted
        fitted.kernel.require_scalar("FMMField")
        q = as_densities(charges, fitted.n_sources, "charges", fitted.value_dtype)
        field = cls.__new__(cls)
        field._set_up(schedule, operator.sources, q, operator.wavenumber, operator.leaf_size,
                      operator.memory, fitted.real_dtype, t0)
        return field

    def _set_up(self, schedule, src, q, wavenumber, leaf_size, memory, dtype, t0):
        """Everything after the fit (the engine's :class:`~fmmsolve.engine.Schedule`):
        attributes, then the upward and downward passes of the charges ``q`` (validated, of
        the engine's value dtype)."""
        fitted = schedule.fitted
        self._schedule, self._fitted = schedule, fitted
        self._compiled = translations.for_kernel(fitted.kernel)
        self.sources, self.charges = _read_only(src), _read_only(q)
        self.kernel, self.wavenumber, self.eps = fitted.kernel.name, wavenumber, fitted.eps
        self.leaf_size, self.memory, self._dtype = leaf_size, memory, dtype
        self.value_dtype = fitted.value_dtype
        self._max_m2p_half_width = max_expansion_half_width(fitted.kernel, fitted.wavenumber)
        if fitted.kernel.oscillatory:  # the order was chosen for |k| w_2 (accuracy.choose_order)
            self._max_m2p_half_width = fitted.tree.half_width / 4.0
        t1 = time.perf_counter()
        columns = q.reshape(src.shape[0], -1)
        self._m = columns.shape[1]
        self._sources = passes.densities(fitted, np.ascontiguousarray(columns))[0]
        self._q = self._sources[0][1]
        with dense.single_threaded_blas():  # one level of threading, as in FMMEngine.evaluate
            self._multipole = passes.upward(schedule, self._sources, self._m)
            t2 = time.perf_counter()
            self._local = self._downward()
        t3 = time.perf_counter()
        self.fit_timings = {"engine": t1 - t0, "upward": t2 - t1, "downward": t3 - t2}
        self.timings = {}

    def _params(self) -> dict:
        return dict(kernel=self._fitted.kernel.key, wavenumber=self.wavenumber, eps=self.eps,
                    expansion_order=self.expansion_order, leaf_size=self.leaf_size,
                    dtype=self._dtype, memory=self.memory)

    def __reduce__(self):
        return _restore, (self.sources, self.charges, self._params())

    @property
    def expansion_order(self) -> int:
        return int(self._fitted.expansion_order)

    @property
    def n_sources(self) -> int:
        return self._fitted.n_sources

    @property
    def tree(self) -> dict:
        return {**self._fitted.tree.summary(), **self._fitted.lists.summary(self._fitted.tree)}

    def _downward(self):
        """M2L, P2L and L2L: the local expansion of every box, (n_boxes, m, n_surface), by
        the engine's own downward pass (the tests check that the field at the sources equals
        the engine's potentials)."""
        return passes.downward(self._schedule, self._sources, self._multipole)

    # -- locating points -------------------------------------------------------------------------

    def _sort(self, points):
        """Points ordered for the passes: targets of leaves first, by leaf; then the rest (in
        empty octants or outside the root), by box. Returns the order, boxes in that order, the
        number of leaf targets and per-box target ranges."""
        tree = self._fitted.tree
        box = queries.locate(tree, points)
        at_leaf = np.zeros(len(points), bool)
        at_leaf[box >= 0] = tree.is_leaf[box[box >= 0]]
        order = np.lexsort((box, ~at_leaf))
        sorted_box = box[order]
        boxes, first, count = np.unique(sorted_box, return_index=True, return_counts=True)
        keep = boxes >= 0
        begin, end = np.zeros(tree.n_boxes, np.int64), np.zeros(tree.n_boxes, np.int64)
        begin[boxes[keep]] = first[keep]
        end[boxes[keep]] = first[keep] + count[keep]
        return order, sorted_box, int(at_leaf.sum()), begin, end, boxes[keep]

    def _traverse(self, gradient, points, boxes):
        """Neighbourhood sums at ``points`` (n, 3) whose deepest boxes ``boxes`` are internal
        (or -1); returns pot (m, n) and grad (m, 3, n or 0)."""
        sched, fitted, tree = self._schedule, self._fitted, self._fitted.tree
        starts, groups = np.unique(boxes, return_inverse=True)
        ptr, idx = queries.neighbourhoods(tree, starts)
        stack = int(np.diff(ptr).max()) + 8 * (tree.depth + 2)
        n, vdt = len(points), self.value_dtype
        pot = np.zeros((self._m, n), vdt)
        grad = np.zeros((self._m, 3, n if gradient else 0), vdt)
        _traversal(fitted.kernel)(
            gradient, np.ascontiguousarray(points), groups.astype(np.int64).ravel(), ptr, idx,
            tree.child_ptr, sched.centres, sched.frames, sched.half_widths, sched.sources,
            self._q,
            tree.src_begin, tree.src_end, sched.surface, surfaces.UP_EQUIV, self._multipole,
            fitted.wavenumber, self._max_m2p_half_width, stack, pot, grad)
        return pot, grad

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self, points, gradient=False):
        """The field (and its gradient) at ``points``.

        Parameters
        ----------
        points : array_like of shape (n_points, 3)
            Any finite points: inside the sources' cloud, in empty regions, far away, or on
            sources (a coinciding source is skipped). ``n_points`` may be 0.
        gradient : bool, default False
            Also return the gradient with respect to the point.

        Returns
        -------
        pot : ndarray of shape (n_points,) or (n_points, m), ``value_dtype``
            m is the number of charge columns; 1-D charges give 1-D potentials.
        grad : ndarray of shape (n_points, 3) or (n_points, m, 3), ``value_dtype``
            Only when ``gradient=True``.
        """
        t0 = time.perf_counter()
        sched, fitted, tree = self._schedule, self._fitted, self._fitted.tree
        gradient = check_flag(gradient, "gradient")
        y = as_points(points, "points", allow_empty=True, precision=fitted.real_dtype)
        n, m, vdt, k = len(y), self._m, self.value_dtype, fitted.wavenumber
        order, sorted_box, n_leaf, begin, end, boxes = self._sort(y)
        ys = y[order]
        frame = sched.frames[np.maximum(sorted_box, 0)]
        tgt = np.ascontiguousarray((ys - frame).T, dtype=fitted.real_dtype)
        leaves = np.ascontiguousarray(boxes[tree.is_leaf[boxes]])
        pot = np.zeros((m, n), vdt)
        grad = np.zeros((m, 3, n if gradient else 0), vdt)
        compiled = self._compiled
        t1 = time.perf_counter()
        geometry = (sched.centres, sched.frames, sched.half_widths, sched.surface)
        l2p = translations.singleton_lists(tree.n_boxes, boxes, sched.l2p_box_of[boxes])
        compiled.surfaces_to_targets(gradient, tgt, boxes, *l2p, begin, end, *geometry,
                                     surfaces.DOWN_EQUIV, self._local, k, pot, grad)
        t2 = time.perf_counter()
        compiled.surfaces_to_targets(gradient, tgt, leaves, *sched.w, begin, end, *geometry,
                                     surfaces.UP_EQUIV, self._multipole, k, pot, grad)
        t3 = time.perf_counter()
        compiled.near_field(gradient, sched.sources, self._q, tgt, leaves, *sched.near,
                            tree.src_begin, tree.src_end, begin, end, sched.frames, k,
                            pot, grad)
        t4 = time.perf_counter()
        if n_leaf < n:
            p, g = self._traverse(gradient, ys[n_leaf:], sorted_box[n_leaf:])
            pot[:, n_leaf:] += p
            if gradient:
                grad[:, :, n_leaf:] += g
        t5 = time.perf_counter()
        out_pot = np.empty((n, m), vdt)
        out_pot[order] = pot.T
        out_grad = None
        if gradient:
            out_grad = np.empty((n, m, 3), vdt)
            out_grad[order] = grad.transpose(2, 0, 1)
        if self.charges.ndim == 1:
            out_pot = out_pot[:, 0]
            out_grad = None if out_grad is None else out_grad[:, 0, :]
        self.timings = {"locate": t1 - t0, "l2p": t2 - t1, "m2p": t3 - t2, "p2p": t4 - t3,
                        "neighbourhood": t5 - t4, "other": time.perf_counter() - t5}
        return (out_pot, out_grad) if gradient else out_pot
