"""``FMMEngine``: a fitted FMM for fixed sources and targets, evaluated many times.

The engine is the records of :mod:`fmmsolve.engine` held together:
:func:`~fmmsolve.engine.fit` gives the frozen :class:`~fmmsolve.engine.Fitted` (tree, lists,
plans), :func:`~fmmsolve.engine.bind` the frozen :class:`~fmmsolve.engine.Schedule` (index
arrays), and :func:`~fmmsolve.engine.evaluate` runs the passes. ``FMMEngine`` adds what
changes per call: the timings of the last evaluation, and its log lines.
:class:`~fmmsolve.FMMOperator`, the estimators, saving and loading, and
:mod:`fmmsolve.distributed` use it; every other module reads the records' public fields
(``engine.fitted``, ``engine.schedule``).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from . import _engine_state as state
from .accuracy import max_kw2, order_for_eps
from .engine import harmonic, passes
from .engine.fitted import fit
from .engine.schedule import bind
from .kernels import get_kernel, kernel_for_key

__all__ = ["FMMEngine", "order_for_eps", "max_kw2"]

_log = logging.getLogger("fmmsolve")


def _of_fitted(name, doc):
    """A read-only property giving the field ``name`` of the engine's fitted record."""
    return property(lambda self: getattr(self.schedule.fitted, name), doc=doc)


class FMMEngine:
    """A fitted FMM for fixed sources and targets.

    Oscillatory kernels (``"helmholtz"``): past :func:`max_kw2` of the eps's order (2.5 to
    3.5), the expansion order grows with ``|k|`` times the width ``w_2`` of a level-2 box (a
    quarter of the root cube's edge) by a measured table
    (:func:`~fmmsolve.accuracy.choose_order`; ``|k|`` for complex k), and the wide levels use
    the FFT M2L. Beyond :func:`~fmmsolve.accuracy.max_frequency` of the eps (``|k| w_2`` of
    25 to 30: k D of 100 to 120 for a domain of diameter D) the requested eps is not met, so
    the constructor raises a :class:`~fmmsolve.accuracy.FrequencyError` (a ValueError). The
    modified Helmholtz kernel meets eps up to ``k w_2 = 100`` with targets among
    the sources. With a kernel that decays, targets away from the sources take their far field
    from boxes narrow enough for the decay (see ``narrow_far_field``). A kernel with a harmonic
    form (Stokes) is fitted as the Laplace FMM it is made of (:mod:`fmmsolve.engine.harmonic`):
    :attr:`fitted` is that Laplace FMM's record, :attr:`kernel` the kernel asked for.

    Parameters
    ----------
    sources : array_like of shape (n_sources, 3)
    targets : array_like of shape (n_targets, 3) or None
        None means the targets are the sources.
    kernel, wavenumber, eps, dipoles, expansion_order, leaf_size, dtype, plan_loader, m2l
        As for :func:`fmmsolve.engine.fit`.
    tree_options : dict or None
        As for :func:`fmmsolve.engine.fit`; its ``"min_depth"`` is passed to ``bind`` too.
    narrow_far_field : bool, default True
        As for :func:`fmmsolve.engine.bind`.

    Attributes
    ----------
    fitted : Fitted
        The frozen record of the fit: parameters, tree, lists and plans.
    schedule : Schedule
        The frozen index arrays bound to it.
    kernel, wavenumber, real_dtype, value_dtype, eps, dipoles, expansion_order, m2l, tree
        Those of :attr:`fitted` (read-only).
    lists, plans, plan, n_sources, n_targets
        Those of :attr:`fitted` (read-only).
    timings : dict of str to float
        Seconds per operator in the last ``evaluate``.
    fit_timings : dict of str to float
        Seconds spent in each fitting stage, and in ``"bind"``.
    """

    wavenumber = _of_fitted("wavenumber", "scalar or None, as checked by the kernel")
    real_dtype = _of_fitted("real_dtype", "numpy.dtype of coordinates")
    value_dtype = _of_fitted("value_dtype", "numpy.dtype of densities and potentials")
    eps = _of_fitted("eps", "float")
    dipoles = _of_fitted("dipoles", "bool")
    expansion_order = _of_fitted("expansion_order", "int")
    m2l = _of_fitted("m2l", "str: the M2L strategy")
    tree = _of_fitted("tree", "Octree")
    lists = _of_fitted("lists", "InteractionLists")
    plans = _of_fitted("plans", "tuple of Plan: the plan of each level 0..depth")
    plan = _of_fitted("plan", "Plan of level 0 (for Laplace, of every level)")
    n_sources = _of_fitted("n_sources", "int")
    n_targets = _of_fitted("n_targets", "int")

    def __init__(self, sources, targets=None, *, kernel="laplace", wavenumber=None, eps=None,
                 dipoles=False, expansion_order=None, leaf_size=None, dtype=None,
                 plan_loader=None, tree_options=None, narrow_far_field=True, m2l="svd"):
        t0 = time.perf_counter()
        self._kernel = kernel = get_kernel(kernel)
        margin = 1.0
        if kernel.harmonic:  # checked here: the Laplace fit would name Laplace
            kernel.check_wavenumber(wavenumber)  # dipoles=True: for stresslets
            if tree_options:
                raise ValueError(f"the {kernel.name!r} kernel is not distributed")
            margin = harmonic.eps_margin(dipoles)
        fitted = fit(sources, targets, kernel=harmonic.base_kernel(kernel), wavenumber=wavenumber,
                     eps=eps, dipoles=dipoles, expansion_order=expansion_order,
                     leaf_size=leaf_size, dtype=dtype, plan_loader=plan_loader,
                     tree_options=tree_options, m2l=m2l, eps_margin=margin)
        t1 = time.perf_counter()
        self.schedule = bind(fitted, narrow_far_field=narrow_far_field,
                             min_depth=(tree_options or {}).get("min_depth", 0))
        self._offsets = harmonic.source_offsets(self.schedule) if kernel.harmonic else None
        t2 = time.perf_counter()
        self.fit_timings = {**fitted.timings, "bind": t2 - t1}
        self.timings = {}
        _log.info("fit: %d sources, %d targets, order %d, depth %d, %d leaves in %.3f s (%s)",
                  self.n_sources, self.n_targets, self.expansion_order, self.tree.depth,
                  len(self.tree.leaves), t2 - t0, passes.seconds(self.fit_timings))

    @property
    def fitted(self):
        """The :class:`~fmmsolve.engine.Fitted` record of this engine."""
        return self.schedule.fitted

    @property
    def kernel(self):
        """The Kernel asked for (for a harmonic one, not ``fitted.kernel``: Laplace)."""
        return self._kernel

    def evaluate(self, charges, gradient=False, dipoles=None, far_field=None, pressure=False,
                 normals=None):
        """Potentials (and gradients) at the targets, in the caller's order: see
        :func:`fmmsolve.engine.evaluate` (``charges`` of shape (n_sources, m C),
        ``value_dtype``, C-contiguous, or None; ``dipoles`` of shape (n_sources, m, 3) or
        None), or :func:`fmmsolve.engine.harmonic.evaluate` for a harmonic kernel (Stokes:
        ``charges`` are forces, ``dipoles`` stresslet strengths with their ``normals`` of shape
        (n_sources, 3)). Sets :attr:`timings`.

        Returns
        -------
        pot : ndarray of shape (n_targets, m C), ``value_dtype``
        grad : ndarray of shape (n_targets, m C, 3), ``value_dtype``, or None
        p : ndarray of shape (n_targets, m), ``value_dtype``
            Only with ``pressure=True`` (a kernel whose harmonic form has a pressure).
        """
        times = {}
        kernel = self._kernel
        if pressure and not kernel.pressure:
            raise ValueError(f"pressure=True: the {kernel.name!r} kernel has no pressure")
        if not kernel.harmonic:
            out = passes.evaluate(self.schedule, charges, gradient, dipoles, far_field, times)
        else:
            out = harmonic.evaluate(self.schedule, kernel, self._offsets, charges, gradient,
                                    pressure, times, stresslets=dipoles, normals=normals)
            out = out if pressure else out[:2]
        self.timings = times
        return out

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
        sources, m = passes.densities(self.fitted, np.asarray(charges))
        return passes.upward(self.schedule, sources, m)

    def translate(self, multipole):
        """M2M, M2L and L2L from the leaves' multipoles: see :func:`fmmsolve.engine.translate`.
        :mod:`fmmsolve.distributed` runs its shared top tree with it."""
        return passes.translate(self.schedule, multipole)

    def tree_summary(self) -> dict:
        """Depth, leaf count, points per leaf and mean interaction-list sizes."""
        return {**self.tree.summary(), **self.lists.summary(self.tree)}

    # -- saving and loading: the fitted state as plain values (fmmsolve.io stores them) ----------

    def state(self):
        """The fitted state as plain arrays and parameters, for :meth:`from_state`: ``(groups,
        attrs)``, laid out as :func:`fmmsolve._engine_state.state_of` documents."""
        groups, attrs = state.state_of(self.fitted)
        if self._kernel.harmonic:  # a Laplace state, made of for this kernel
            attrs = {**attrs, "engine.harmonic_kernel": self._kernel.key}
        return groups, attrs

    @classmethod
    def from_state(cls, groups, attrs, *, narrow_far_field=True, min_depth=0):
        """Rebuild a fitted engine from :meth:`state`'s output without recomputing it.

        The tree, lists and plan are used as given (no copy); only the cheap derived index
        arrays are rebuilt (:func:`fmmsolve.engine.bind`). Everything is checked first
        (presence, dtypes, shapes, index bounds, links between boxes, permutations, point
        ranges), so that inconsistent arrays raise here instead of crashing compiled code or
        giving wrong numbers.

        Parameters
        ----------
        groups, attrs : dict
            As returned by :meth:`state`; other attributes are ignored.
        narrow_far_field, min_depth
            As for :func:`fmmsolve.engine.bind`: the values the engine was fitted with (a
            serial engine's defaults; :mod:`fmmsolve.distributed` passes its own).

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
        fitted = state.restore(groups, attrs)
        t1 = time.perf_counter()
        self = cls.__new__(cls)
        self._kernel = fitted.kernel
        if "engine.harmonic_kernel" in attrs:
            key = attrs["engine.harmonic_kernel"]
            kernel = kernel_for_key(key) if isinstance(key, str) else None
            if kernel is None or not kernel.harmonic \
                    or harmonic.base_kernel(kernel).key != fitted.kernel.key:
                raise ValueError(f"engine.harmonic_kernel {key!r} is not a kernel made of "
                                 f"{fitted.kernel.name!r} sums")
            self._kernel = kernel
        self.schedule = bind(fitted, narrow_far_field=narrow_far_field, min_depth=min_depth)
        self._offsets = harmonic.source_offsets(self.schedule) if self._kernel.harmonic else None
        self.fit_timings = {"validate": t1 - t0, "bind": time.perf_counter() - t1}
        self.timings = {}
        return self
