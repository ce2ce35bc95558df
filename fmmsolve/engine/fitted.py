"""What a fit computes, as one frozen value: :class:`Fitted`, and :func:`fit`, which builds it.

A fit checks the parameters and points, builds the octree and its interaction lists, and loads
or computes the plan of every tree level: exactly what :mod:`fmmsolve.io` saves
(:mod:`fmmsolve._engine_state` turns a ``Fitted`` into plain arrays and back). The index arrays
that evaluations reuse are derived from it by :func:`fmmsolve.engine.schedule.bind`.

Per-level plans. A scale-invariant kernel (Laplace) has one plan for every level, rescaled by
the box half-width. The others obey G_k(h x, h y) = G_{k h}(x, y) / h, so the reference plan
(half-width 1) at the effective wavenumber ``k h_l`` is the plan of level ``l`` (its
check-to-equivalent maps still scale by ``h``). A box at level ``l`` takes its P2M, P2L,
check-to-equivalent maps, M2L (one pass per level) and L2L into its children from plan ``l``;
the M2M from its children into it too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, is_dataclass

import numpy as np

from .. import calibration
from .._validation import as_points, check_positive_int, resolve_real_dtype
from ..accuracy import (COMPRESSION_MARGIN, check_eps, check_order, choose_order, design_eps,
                        level_half_widths, order_for_eps)
from ..kernels import Kernel, get_kernel
from ..operators import surfaces
from ..operators.m2l import check_strategy
from ..operators.plan import Plan, level_plans
from ..tree import InteractionLists, Octree, build_interaction_lists, build_octree

__all__ = ["Fitted", "fit", "off_resonance"]


@dataclass(frozen=True, eq=False)
class Fitted:
    """A fitted FMM: its parameters, tree, interaction lists and plans, none of them
    depending on densities. Frozen: a field cannot be assigned.

    Attributes
    ----------
    kernel : Kernel
    wavenumber : scalar or None
        As checked by the kernel (``kernel.check_wavenumber``).
    real_dtype : numpy.dtype
        float64 or float32: the precision of coordinates.
    value_dtype : numpy.dtype
        The precision of densities and potentials (complex for a complex kernel).
    eps : float
        The requested relative L2 accuracy of the potential.
    dipoles : bool
        Whether the order and compression were chosen so that dipole densities meet eps.
    expansion_order : int
    m2l : str
        The M2L strategy (:data:`fmmsolve.operators.m2l.STRATEGY_NAMES`).
    tree : Octree
    lists : InteractionLists
    plans : tuple of Plan
        The plan of each level 0..depth (the same object at every level of a scale-invariant
        kernel).
    timings : dict of str to float
        Seconds of each fitting stage (``"validate"``, ``"tree"``, ``"lists"``, ``"plan"``);
        empty for a record read back from a saved state. Neither saved nor compared.

    Two records are equal (``==``) when every other field is: arrays of the same dtype and
    values, the tree, lists and plans field by field.
    """

    kernel: Kernel
    wavenumber: complex | float | None
    real_dtype: np.dtype
    value_dtype: np.dtype
    eps: float
    dipoles: bool
    expansion_order: int
    m2l: str
    tree: Octree
    lists: InteractionLists
    plans: tuple[Plan, ...]
    timings: dict = field(default_factory=dict, repr=False)

    def __eq__(self, other):
        if not isinstance(other, Fitted):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name))
                   for f in fields(self) if f.name != "timings")

    __hash__ = None  # arrays inside: no hash, as for an ndarray

    @property
    def plan(self):
        """The plan of level 0 (for a scale-invariant kernel, of every level)."""
        return self.plans[0]

    @property
    def n_sources(self) -> int:
        return self.tree.n_sources

    @property
    def n_targets(self) -> int:
        return self.tree.n_targets


def _same(a, b) -> bool:
    """Whether ``a`` and ``b`` hold the same values: arrays by dtype and values, tuples item by
    item, records without an ``__eq__`` of their own (tree, lists, plans) field by field."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if is_dataclass(a) and type(a) is type(b) and type(a).__eq__ is object.__eq__:
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    return bool(a == b)


#: The root cube of a wave kernel's tree widens by steps of this factor, at most
#: RESONANCE_STEPS times, until no level sits near a resonance of the expansion surfaces.
RESONANCE_STEP, RESONANCE_STEPS = 5e-4, 200


def _resonant_levels(wavenumber, half_width, depth) -> list:
    """The levels from 2 down (those whose expansions are used) whose boxes put the expansion
    surfaces near a resonance (:func:`~fmmsolve.operators.surfaces.near_resonance`)."""
    return [level for level in range(2, depth + 1)
            if surfaces.near_resonance(complex(wavenumber) * half_width / 2.0**level)]


def off_resonance(wavenumber, half_width, depth) -> float:
    """The half-width of a root cube, at most 10 % wider than ``half_width``, whose levels 2 to
    ``depth`` keep the expansion surfaces off the resonances: ``half_width`` itself when they
    are off already. :mod:`fmmsolve.distributed` calls it with the deepest level a tree may
    have, before the ranks share the root."""
    for step in range(RESONANCE_STEPS + 1):
        widened = half_width * (1.0 + RESONANCE_STEP * step)
        if not _resonant_levels(wavenumber, widened, depth):
            return widened
    raise AssertionError("no root cube within 10 % is off the resonances")  # never measured


def _off_resonance(wavenumber, tree, root_given) -> float:
    """:func:`off_resonance` for ``tree``'s root and depth; ValueError when the caller gave
    the root."""
    levels = _resonant_levels(wavenumber, tree.half_width, tree.depth)
    if root_given:
        raise ValueError(
            f"wavenumber: k = {wavenumber} puts the boxes of level(s) {levels} (half-width "
            f"{tree.half_width / 2.0**levels[0]:.6g}) at an interior resonance of the "
            f"expansion surfaces, where the FMM misses eps, and the root cube was given; "
            f"change k or the root's half-width by 0.5 %")
    return off_resonance(wavenumber, tree.half_width, tree.depth)


def fit(sources, targets=None, *, kernel="laplace", wavenumber=None, eps=None, dipoles=False,
        expansion_order=None, leaf_size=None, dtype=None, plan_loader=None, tree_options=None,
        m2l="svd", eps_margin=1.0) -> Fitted:
    """Check the parameters and points, build the tree and lists, and load the plans.

    Oscillatory kernels (``"helmholtz"``): past :func:`~fmmsolve.accuracy.max_kw2` of the
    eps's order, the order grows with ``|k|`` times the width ``w_2`` of a level-2 box (a
    quarter of the root cube's edge) by a measured table
    (:func:`~fmmsolve.accuracy.choose_order`; ``|k|`` for complex k), up to
    :func:`~fmmsolve.accuracy.max_frequency`; beyond it, or beyond what an explicit
    ``expansion_order`` reaches, :class:`~fmmsolve.accuracy.FrequencyError` (a ValueError).
    The modified Helmholtz kernel meets eps up to ``k w_2 = 100`` with targets among the
    sources.

    Parameters
    ----------
    sources : array_like of shape (n_sources, 3)
    targets : array_like of shape (n_targets, 3) or None
        None means the targets are the sources.
    kernel : str or Kernel, default "laplace"
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
    m2l : str, default "svd"
        The M2L strategy (:data:`fmmsolve.operators.m2l.STRATEGY_NAMES`): ``"svd"``
        (compressed), or ``"dense"`` (uncompressed, orders up to 8: the oracle of the others).
    eps_margin : float, default 1.0
        Build the operators for ``eps / eps_margin`` (:func:`~fmmsolve.accuracy.design_eps`):
        the Laplace FMM of a kernel made of Laplace sums (:mod:`fmmsolve.engine.harmonic`).

    Returns
    -------
    Fitted
    """
    t0 = time.perf_counter()
    kernel = get_kernel(kernel)
    if kernel.harmonic:
        raise ValueError(f"kernel: the {kernel.name!r} FMM is made of {kernel.harmonic!r} FMMs; "
                         f"fit it with FMMEngine (fmmsolve.engine.harmonic)")
    wavenumber = kernel.check_wavenumber(wavenumber)
    real_dtype = resolve_real_dtype(dtype, sources, targets)
    value_dtype = kernel.value_dtype(real_dtype)
    eps, dipoles = check_eps(eps, real_dtype), bool(dipoles)
    if dipoles and kernel.radial is None:
        raise ValueError(f"dipoles=True: the {kernel.name!r} kernel has no dipoles")
    # the accuracy the operators are built for (tighter when dipoles are evaluated)
    design = design_eps(eps, dipoles, eps_margin)
    order = None
    if expansion_order is not None:
        order = check_order(expansion_order)
    elif kernel.measured:  # else calibrated below, from the points' extent
        order = order_for_eps(eps, dipoles, eps_margin)
    m2l = check_strategy(m2l)  # its order limit: in level_plans, once the order is known
    if leaf_size is not None:
        leaf_size = check_positive_int(leaf_size, "leaf_size")
    src = as_points(sources, "sources", precision=real_dtype)
    tgt = None if targets is None else as_points(targets, "targets", precision=real_dtype)
    if order is None:
        order = calibration.order_for_points(kernel, wavenumber, design, (src, tgt),
                                             plan_loader)
    t1 = time.perf_counter()
    tree_options = dict(tree_options or {})
    root_given = "root" in tree_options
    tree = build_octree(src, tgt, leaf_size=leaf_size or surfaces.default_leaf_size(order),
                        **tree_options)
    points_edge = None  # the points' own cube's edge, once the root was widened
    for _ in range(4):  # the order, then the cube off the resonances: each may move the other
        if tree.depth < 2:  # every interaction is direct, exact at any frequency
            break
        # The order (and the frequency limit) is the points' cube's: a widening (1.25 % at
        # most) stays inside the frequency table's margin.
        edge = 2.0 * tree.half_width if points_edge is None else points_edge
        raised = choose_order(kernel, wavenumber, edge, order, design, eps,
                              explicit=expansion_order is not None)
        if raised != order and leaf_size is None:  # the default leaf size follows the order
            tree = build_octree(src, tgt, leaf_size=surfaces.default_leaf_size(raised),
                                **tree_options)
        order = raised
        if not kernel.oscillatory or not _resonant_levels(wavenumber, tree.half_width,
                                                         tree.depth):
            break
        points_edge = edge
        tree_options["root"] = (tree.center, _off_resonance(wavenumber, tree, root_given))
        tree = build_octree(src, tgt, leaf_size=tree.leaf_size, **tree_options)
    else:  # a widened cube whose new depth met a resonance four times: never measured
        raise AssertionError("the root cube did not settle off the surfaces' resonances")
    t2 = time.perf_counter()
    lists = build_interaction_lists(tree)
    t3 = time.perf_counter()
    plans = level_plans(kernel, wavenumber, order, COMPRESSION_MARGIN * design, value_dtype,
                        level_half_widths(tree), plan_loader, m2l)
    t4 = time.perf_counter()
    return Fitted(kernel=kernel, wavenumber=wavenumber, real_dtype=real_dtype,
                  value_dtype=value_dtype, eps=eps, dipoles=dipoles, expansion_order=order,
                  m2l=m2l, tree=tree, lists=lists, plans=tuple(plans),
                  timings={"validate": t1 - t0, "tree": t2 - t1, "lists": t3 - t2,
                           "plan": t4 - t3})
