"""The passes of an evaluation over a :class:`~fmmsolve.engine.schedule.Schedule`.

:func:`evaluate` runs P2M, M2M up the levels, M2L (:mod:`fmmsolve.operators.m2l`), P2L, L2L down
the levels, then L2P, M2P and P2P at the leaves. Python only sequences the passes: the point
work is compiled (:mod:`fmmsolve.operators.translations`), the matrix work is batched BLAS
products outside any ``prange``, with BLAS on one thread (:mod:`fmmsolve.operators.dense`).
Nothing here branches on the kernel's name. Expansions are (n_boxes, m, n) for m density
columns, with ``n = plan.n_expansion`` values: the kernel's C components at each surface point,
component-major (:mod:`fmmsolve.kernels.pair`).

The pieces are public for the evaluations that reuse them: :class:`~fmmsolve.FMMField` runs
:func:`densities`, :func:`upward` and :func:`downward` once and evaluates at new points later;
:mod:`fmmsolve.distributed` runs its shared top tree with :func:`translate`. ``lap``, where a
function takes it, is called with the name of each stage as it ends (``"p2m"``, ``"m2m"``,
``"m2l"``, ``"p2l"``, ``"l2l"``), to time it.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..operators import dense, m2l, moments, surfaces, translations

__all__ = ["densities", "upward", "downward", "translate", "evaluate", "add_near_field",
           "to_caller_order", "stopwatch"]

_log = logging.getLogger("fmmsolve")


def _no_lap(name):
    pass


def seconds(timings: dict) -> str:
    """``"tree 0.21, lists 0.06"``: a timings dict for a log line."""
    return ", ".join(f"{name} {seconds:.3f}" for name, seconds in timings.items())


def stopwatch(times):
    """The ``lap`` hook of the passes for the dict ``times``: ``lap(name)`` adds the seconds
    since the previous lap (or since this call) to ``times[name]``."""
    clock = [time.perf_counter()]

    def lap(name):
        now = time.perf_counter()
        times[name] = times.get(name, 0.0) + now - clock[0]
        clock[0] = now

    return lap


def densities(fitted, charges=None, dipoles=None, kernel=None):
    """The density passes of an evaluation, in the leaf-block layout of the compiled code.

    Parameters
    ----------
    fitted : Fitted
    charges : ndarray of shape (n_sources, m), or None
        In the caller's order.
    dipoles : ndarray of shape (n_sources, m, 3), or None
        Dipole densities (:mod:`fmmsolve.kernels.dipole`); at least one of the two is given.
    kernel : Kernel or None
        The kernel whose translations are compiled; None: ``fitted.kernel``.

    Returns
    -------
    sources : list of (translations, ndarray)
        One entry for the charges and one for the dipoles, as given: the translations compiled
        for them (:func:`fmmsolve.operators.translations.for_kernel`) and the densities in tree
        order, flat in the leaf-block layout of :mod:`fmmsolve.operators.translations`,
        ``value_dtype``.
    m : int
        Columns (of ``C`` components each: ``charges`` has ``m C`` columns for a kernel of
        ``C = kernel.components``).
    """
    kernel = kernel or fitted.kernel
    sources = []
    if charges is not None:
        sources.append((translations.for_kernel(kernel), _to_tree_order(fitted, charges)))
    if dipoles is not None:
        n, m = dipoles.shape[:2]
        sources.append((translations.for_kernel(kernel, dipoles=True),
                        _to_tree_order(fitted, dipoles.reshape(n, 3 * m))))
    return sources, (charges.shape[1] // kernel.components if charges is not None
                     else dipoles.shape[1])


def _to_tree_order(fitted, charges):
    """(n_sources, m) densities in input order -> tree order, flat in the leaf-block layout
    of :mod:`fmmsolve.operators.translations` (for one column, simply tree order)."""
    tree = fitted.tree
    q = np.asarray(charges, fitted.value_dtype)[tree.source_perm]
    m = q.shape[1]
    if m == 1:
        return np.ascontiguousarray(q[:, 0])
    flat = np.empty(q.size, fitted.value_dtype)
    flat[translations.leaf_block_index(tree.src_begin, tree.src_end, tree.leaves, m)] = q
    return flat


def upward(schedule, sources, m, lap=None, shift=None):
    """P2M at the source leaves, then M2M up to the root.

    Parameters
    ----------
    schedule : Schedule
    sources : list
        The density passes of :func:`densities`.
    m : int
        Columns.
    lap : callable or None
        Timing hook (see the module docstring).
    shift : ndarray of shape (n_shift, 4), int64, or None
        A shift table (:mod:`fmmsolve.operators.moments`): these columns hold moments, of the
        sources about their leaf's centre in ``sources``, about each box's own centre in the
        result.

    Returns
    -------
    ndarray of shape (n_boxes, m, n), ``value_dtype``
        Equivalent densities on each box's upward equivalent surface (``UP_EQUIV`` h).
    """
    lap = lap or _no_lap
    fitted = schedule.fitted
    tree, vdt = fitted.tree, fitted.value_dtype
    n_e = fitted.plan.n_expansion
    multipole = np.zeros((tree.n_boxes, m, n_e), vdt)
    leaves = schedule.source_leaves
    check = np.zeros((len(leaves), m, n_e), vdt)
    geometry = (schedule.centres, schedule.frames, schedule.half_widths, schedule.surface)
    with dense.single_threaded_blas():
        for passes, q in sources:
            passes.points_to_surfaces(  # each leaf about its own centre: nothing to move
                schedule.sources, q, leaves, *schedule.p2m, tree.src_begin, tree.src_end,
                *geometry, surfaces.UP_CHECK, fitted.wavenumber, moments.NO_SHIFT, check)
        for rows, plan in schedule.p2m_groups:
            boxes = leaves[rows]  # zero so far: each leaf is in one group
            dense.add_products(multipole, boxes, check, rows, plan.uc2e_b, plan.uc2e_a,
                               schedule.c2e_scale[boxes])
        schedule.m2m.fix(multipole, leaves, schedule.m2m.leaf_monopoles(sources, m))
        lap("p2m")
        schedule.m2m.m2m(multipole, shift)
        lap("m2m")
    return multipole


def downward(schedule, sources, multipole, lap=None, extra=None, shift=None):
    """M2L, P2L, then L2L down the levels.

    Parameters
    ----------
    schedule : Schedule
    sources : list
        The density passes of :func:`densities` whose multipoles are ``multipole``.
    multipole : ndarray of shape (n_boxes, m, n), ``value_dtype``
        From :func:`upward`.
    lap : callable or None
        Timing hook (see the module docstring).
    extra : (boxes, local) or None
        ``local`` (len(boxes), m, n) is added to those boxes before L2L (see
        :func:`evaluate`).
    shift : ndarray of shape (n_shift, 4), int64, or None
        Moment columns, as for :func:`upward`: about each box's centre in the result.

    Returns
    -------
    ndarray of shape (n_boxes, m, n), ``value_dtype``
        The local expansion of every box, on its downward equivalent surface.
    """
    lap = lap or _no_lap
    fitted = schedule.fitted
    tree, vdt, n_e = fitted.tree, fitted.value_dtype, fitted.plan.n_expansion
    m = multipole.shape[1]
    local = np.zeros((tree.n_boxes, m, n_e), vdt)
    with dense.single_threaded_blas():
        for lo, hi, plan, sched in schedule.m2l_passes:
            moved = None if shift is None else (shift, 2.0 * schedule.half_widths[lo:hi])
            m2l.apply(sched, plan, multipole[lo:hi], local[lo:hi], moved)
        lap("m2l")

        boxes = schedule.x_boxes
        if len(boxes):
            check = np.zeros((len(boxes), m, n_e), vdt)
            geometry = (schedule.centres, schedule.frames, schedule.half_widths,
                        schedule.surface, surfaces.DOWN_CHECK, fitted.wavenumber)
            table = moments.NO_SHIFT if shift is None else shift
            for passes, q in sources:  # each leaf's moments moved to the box's centre
                passes.points_to_surfaces(schedule.sources, q, boxes, *schedule.x,
                                          tree.src_begin, tree.src_end, *geometry, table, check)
            for rows, plan in schedule.p2l_groups:
                b = boxes[rows]
                dense.add_products(local, b, check, rows, plan.dc2e_b, plan.dc2e_a,
                                   schedule.c2e_scale[b])
        lap("p2l")

        if extra is not None:
            boxes, values = extra
            local[boxes] += values
        for children, parents, op_t, reflect in schedule.l2l_groups:
            if shift is None:
                dense.add_products(local, children, local, parents, op_t.T, reflect=reflect)
                continue
            # moments moved to the children's centre (this octant's) and back
            offset = schedule.centres[parents[0]] - schedule.centres[children[0]]
            unique = np.unique(parents)
            moments.shift_boxes(local, unique, offset, shift)
            dense.add_products(local, children, local, parents, op_t.T, reflect=reflect)
            moments.shift_boxes(local, unique, -offset, shift)
        lap("l2l")
    return local


def translate(schedule, multipole):
    """M2M up from the leaves' (n_boxes, m, n) ``multipole`` (in place), then M2L and L2L:
    the (n_boxes, m, n) local expansions, for trees whose leaves share one level (no W or X
    list). :mod:`fmmsolve.distributed` runs its shared top tree with it."""
    with dense.single_threaded_blas():
        schedule.m2m.m2m(multipole)
        return downward(schedule, [], multipole)


def evaluate(schedule, charges, gradient=False, dipoles=None, far_field=None, timings=None):
    """Potentials (and gradients) at the targets, in the caller's order.

    Parameters
    ----------
    schedule : Schedule
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
    timings : dict or None
        Receives the seconds of each operator (``"p2m"`` ... ``"p2p"``, ``"other"``).

    Returns
    -------
    pot : ndarray of shape (n_targets, m C), ``value_dtype``
    grad : ndarray of shape (n_targets, m C, 3), ``value_dtype``, or None
    """
    fitted = schedule.fitted
    if dipoles is not None and not fitted.dipoles:
        raise ValueError("this FMM was fit for charges only: fit it with dipoles=True to "
                         "evaluate dipoles (they need a higher order to meet eps)")
    # One level of threading: Numba's prange; BLAS single-threaded (operators/dense.py).
    with dense.single_threaded_blas():
        return _evaluate(schedule, charges, dipoles, gradient, far_field,
                         {} if timings is None else timings)


def _evaluate(schedule, charges, dipoles, gradient, far_field, times):
    fitted = schedule.fitted
    tree, k = fitted.tree, fitted.wavenumber
    lap = stopwatch(times)
    vdt, n_targets = fitted.value_dtype, fitted.n_targets
    sources, m = densities(fitted, charges, dipoles)
    rows = m * fitted.kernel.components  # the potentials' rows (C c + a: component a)
    pot = np.zeros((rows, n_targets), vdt)
    grad = np.zeros((rows, 3, n_targets if gradient else 0), vdt)
    lap("other")

    multipole = upward(schedule, sources, m, lap)
    extra = None
    if far_field is not None:
        extra = far_field(multipole)
        lap("far_field")
    local = downward(schedule, sources, multipole, lap, extra)

    compiled = translations.for_kernel(fitted.kernel)
    tgt, tgt_leaves = schedule.targets, schedule.target_leaves
    geometry = (schedule.centres, schedule.frames, schedule.half_widths, schedule.surface)
    compiled.surfaces_to_targets(
        gradient, tgt, schedule.l2p_leaves, *schedule.l2p, tree.tgt_begin, tree.tgt_end,
        *geometry, surfaces.DOWN_EQUIV, local, k, pot, grad)
    lap("l2p")
    compiled.surfaces_to_targets(
        gradient, tgt, tgt_leaves, *schedule.w, tree.tgt_begin, tree.tgt_end,
        *geometry, surfaces.UP_EQUIV, multipole, k, pot, grad)
    lap("m2p")
    add_near_field(schedule, sources, gradient, pot, grad)
    lap("p2p")

    out = to_caller_order(fitted, pot, grad if gradient else None)
    lap("other")
    _log.debug("evaluate: %d column(s)%s%s in %.3f s (%s)", m,
               " of dipoles" * (dipoles is not None), " with gradients" * gradient,
               sum(times.values()), seconds(times))
    return out


def add_near_field(schedule, sources, gradient, pot, grad):
    """Add P2P into the tree-order ``pot`` (rows, n_targets) and ``grad`` (rows, 3, .)."""
    tree = schedule.fitted.tree
    for passes, q in sources:
        passes.near_field(
            gradient, schedule.sources, q, schedule.targets, schedule.target_leaves,
            *schedule.near, tree.src_begin, tree.src_end, tree.tgt_begin, tree.tgt_end,
            schedule.frames, schedule.fitted.wavenumber, pot, grad)


def to_caller_order(fitted, pot, grad):
    """Tree-order (rows, n_targets) and (rows, 3, n_targets) -> (n_targets, rows) and
    (n_targets, rows, 3) in the caller's order (grad None stays None)."""
    perm = fitted.tree.target_perm
    out_pot = np.empty(pot.shape[::-1], pot.dtype)
    out_pot[perm] = pot.T
    out_grad = None
    if grad is not None:
        out_grad = np.empty((pot.shape[1], pot.shape[0], 3), pot.dtype)
        out_grad[perm] = grad.transpose(2, 0, 1)
    return out_pot, out_grad

