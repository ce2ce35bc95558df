"""M2L strategies: one module per way of translating multipole into local expansions over the
V lists, chosen by name (``FMMOperator(..., m2l="svd")``).

The registry: :data:`STRATEGY_NAMES`, :data:`DEFAULT`, :func:`get_strategy` and
:func:`check_strategy`. :func:`schedule` and :func:`apply` dispatch to a strategy; the engine
calls only these two, and the plan (:mod:`fmmsolve.operators.plan`) calls its ``precompute``.

What a strategy module provides (:mod:`.svd` is the production one, :mod:`.fft` serves the high
orders of high frequencies, :mod:`.dense` is the smallest example; ``docs/methods.md`` walks
through adding one):

``NAME`` : str
    Its registry name. It is part of every plan cache key and is stored in cache entries and
    saved files (``plan.m2l_strategy``), so two strategies never share precomputed data.
``MAX_ORDER`` : int
    The highest expansion order it accepts (:func:`check_strategy`).
``Data`` : a frozen dataclass, subclass of :class:`~.base.M2LData`
    Its precomputed operators: array fields only, held by the Plan (``plan.m2l_data``). It
    defines ``rank`` (0 for a record without operators), ``RULES`` (dtype and named shape of
    each field: the checks of a saved file before it is read) and ``inconsistency(n, dtype)``
    (the check of a cache entry or a saved file once read). The base class gives ``nbytes``,
    ``arrays()`` and ``from_arrays()`` (fields stored as ``m2l_<field>`` beside the plan's own
    arrays, in cache entries and saved plan groups), ``map_arrays`` (the float32 cast) and
    equality.
``precompute(mat, order, up_equiv, down_check, compression_tol, dc2e_a, dc2e_b, *, parities)``
    The ``Data`` record, in float64 (complex128 for a complex kernel), for the reference box of
    half-width 1, with the target's downward check-to-equivalent map ``dc2e_a @ dc2e_b`` folded
    in; ``mat(targets, sources)`` is the kernel's matrix. For a kernel of ``C`` components
    (``parities``, one per component: :mod:`fmmsolve.kernels.pair`) expansions have ``C n``
    values, component-major, and ``mat`` is ``(C n_t, C n_s)``. The plan casts the record to
    other dtypes.
``empty(n, dtype) -> Data``
    The record of a plan without M2L operators (tree levels 0 and 1 of a wave kernel).
``schedule(targets, sources, vectors, chunk_boxes)``
    A frozen record of index arrays that ``apply`` walks (both strategies use
    :func:`.base.schedule`).
``apply(sched, data, multipole, local, shift=None)``
    ``local += M2L(multipole)`` for (n_boxes, m, n) arrays of the plan's value dtype (``n``:
    values of an expansion, :attr:`~fmmsolve.operators.plan.Plan.n_expansion`). ``shift``,
    ``(table, edges)`` or None, names moment columns (:mod:`fmmsolve.operators.moments`) to
    move to each target's centre; both strategies pass it to :func:`.base.gather_group`.
"""

from __future__ import annotations

from . import dense, fft, svd
from .base import (CHUNK_BOXES, M2LData, M2LSchedule, transfer_index, transfer_vectors,
                   v_list_pairs)

__all__ = ["CHUNK_BOXES", "DEFAULT", "M2LData", "M2LSchedule", "STRATEGY_NAMES", "apply",
           "check_strategy", "get_strategy", "schedule", "transfer_index", "transfer_vectors",
           "v_list_pairs"]

_STRATEGIES = {module.NAME: module for module in (svd, dense, fft)}
#: Names of the registered strategies.
STRATEGY_NAMES = tuple(_STRATEGIES)
#: The strategy an engine uses unless told otherwise.
DEFAULT = svd.NAME


def get_strategy(name):
    """The strategy module registered as ``name``; ValueError listing the names otherwise."""
    if not isinstance(name, str) or name not in _STRATEGIES:
        raise ValueError(f"m2l must be one of {', '.join(map(repr, STRATEGY_NAMES))}, "
                         f"got {name!r}")
    return _STRATEGIES[name]


def check_strategy(name, order=None) -> str:
    """``name`` if it is a strategy that accepts expansion order ``order`` (None: any), else
    ValueError naming the argument ``m2l`` and what it accepts."""
    strategy = get_strategy(name)
    if order is not None and order > strategy.MAX_ORDER:
        raise ValueError(f"m2l={name!r} takes expansion orders up to {strategy.MAX_ORDER}, got "
                         f"{order}: use m2l={DEFAULT!r} (or a larger eps)")
    return name


def schedule(targets, sources, vectors, chunk_boxes=CHUNK_BOXES, strategy=DEFAULT):
    """The V-list pairs ``(targets, sources, vectors)`` (each (n_pairs,), int64) scheduled for
    ``strategy``'s :func:`apply`, in chunks of ``chunk_boxes`` target boxes."""
    return get_strategy(strategy).schedule(targets, sources, vectors, chunk_boxes)


def apply(sched, plan, multipole, local, shift=None):
    """``local += M2L(multipole)`` over the pairs of ``sched`` with ``plan``'s strategy.

    Parameters
    ----------
    sched
        From :func:`schedule` with the plan's strategy.
    plan : Plan
        Its matrices have the dtype of ``multipole``.
    multipole : ndarray (n_boxes, m, n_surface)
        Equivalent densities of the multipole expansions.
    local : ndarray (n_boxes, m, n_surface)
        Local equivalent densities, updated in place.
    shift : (table, edges) or None
        Moment columns (:mod:`fmmsolve.operators.moments`): the shift table, and the edge of
        each box of ``multipole`` (n_boxes,), float64.
    """
    get_strategy(plan.m2l_strategy).apply(sched, plan.m2l_data, multipole, local, shift)
