"""A :class:`~fmmsolve.engine.fitted.Fitted` record as plain values and back (:func:`state_of`
and :func:`restore`, behind ``FMMEngine.state`` and ``from_state``), with the consistency checks
of a saved state.

Tables of the dtype and shape of every array field of the tree, lists and plan, and checks of
the links between them, so that an inconsistent file raises a clear ``ValueError`` instead of
crashing compiled code or giving wrong numbers. A plan's M2L arrays follow the rules of its
strategy (``RULES`` and ``inconsistency`` of its data record, :mod:`fmmsolve.operators.m2l`),
named by the parameter ``<plan group>.m2l_strategy``.
"""

from __future__ import annotations

import numbers
from dataclasses import fields

import numpy as np

from ._config import MAX_DEPTH
from ._validation import resolve_real_dtype
from .accuracy import MAX_ORDER
from .kernels import kernel_for_key
from .engine.fitted import Fitted
from .operators import surfaces
from .operators.m2l import M2LData, STRATEGY_NAMES, get_strategy, transfer_vectors
from .operators.plan import FFT_M2L, Plan
from .tree import InteractionLists, Octree
from .tree.morton import decode_array

# Arrays a tree built with targets=None shares between targets and sources: stored once.
SHARED_TARGET_FIELDS = {"targets": "sources", "target_perm": "source_perm",
                         "tgt_begin": "src_begin", "tgt_end": "src_end"}

# (dtype, shape) of every array field, in named dimensions: a name is bound by its first use,
# "name+1" is one more. "value" is the engine's value dtype, "complex" the complex dtype of its
# precision. A field without a rule is refused,
# so adding an array field to a record means adding its rule here.
_I8, _F8, _VALUE = np.dtype(np.int64), np.dtype(np.float64), "value"
TREE_RULES = {
    "keys": (_I8, ("boxes",)), "center": (_F8, (3,)), "levels": (_I8, ("boxes",)),
    "anchors": (_I8, ("boxes", 3)), "parent": (_I8, ("boxes",)),
    "child_ptr": (_I8, ("boxes+1",)), "level_ptr": (_I8, ("level_ptr",)),
    "src_begin": (_I8, ("boxes",)), "src_end": (_I8, ("boxes",)),
    "tgt_begin": (_I8, ("boxes",)), "tgt_end": (_I8, ("boxes",)), "leaves": (_I8, ("leaves",)),
    "sources": (_F8, (3, "sources")), "source_perm": (_I8, ("sources",)),
    "targets": (_F8, (3, "targets")), "target_perm": (_I8, ("targets",)),
}
LISTS_RULES = {f"{name}_{part}": (_I8, ("boxes+1",) if part == "indptr" else (name,))
                for name in "uvwx" for part in ("indptr", "indices")}
# The plan's own arrays; its M2L strategy's follow the strategy's rules (plan_record).
# "points": surface points; "n": values of an expansion (points times the kernel's components).
PLAN_RULES = {
    "surface": (_F8, ("points", 3)),
    "uc2e_a": (_VALUE, ("n", "r_up")), "uc2e_b": (_VALUE, ("r_up", "n")),
    "dc2e_a": (_VALUE, ("n", "r_down")), "dc2e_b": (_VALUE, ("r_down", "n")),
    "m2m": (_VALUE, ("octants", "n", "n")), "l2l": (_VALUE, ("octants", "n", "n")),
}
# M2M and L2L: octant 0's (the others are its reflections, plan.reflection); files of format 1
# hold all 8, of which octant 0's is read.
STORED_OCTANTS = (1, 8)


def radii():
    return (surfaces.UP_EQUIV, surfaces.UP_CHECK, surfaces.DOWN_EQUIV, surfaces.DOWN_CHECK)


def require(condition, message):
    if not condition:
        raise ValueError(message)


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def param(attrs, key, kind):
    """``attrs[key]``, which must be an instance of ``kind`` (a bool is not a number here)."""
    if key not in attrs:
        raise ValueError(f"missing parameter {key!r}")
    value = attrs[key]
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise ValueError(f"parameter {key!r} must be of type {kind.__name__}, got {value!r}")
    return value


def record(record_cls, group, groups, attrs, rules, dims, shared, value_dtype=None):
    """Build ``record_cls`` from ``groups[group]`` (array fields, checked against ``rules``
    with the dimensions ``dims``, completed in place) and ``attrs["<group>.<field>"]``."""
    names = [f.name for f in fields(record_cls)]
    return record_cls(**_values(names, group, groups, attrs, rules, dims, shared, value_dtype))


def _values(names, group, groups, attrs, rules, dims, shared, value_dtype=None):
    """The fields ``names`` of :func:`record`, by name."""
    arrays = groups.get(group)
    require(isinstance(arrays, dict), f"missing group {group!r}")
    unexpected = sorted(set(arrays) - (set(names) - set(shared)))
    require(not unexpected, f"unexpected arrays in {group!r}: {unexpected}")
    values = {}
    rank = {name: i for i, name in enumerate(rules)}  # rules order: dimensions bind first
    for name in sorted(names, key=lambda name: rank.get(name, len(rank))):
        if name in shared:
            values[name] = None
        elif name in rules:
            require(name in arrays, f"missing array {group}/{name}")
            values[name] = value = arrays[name]
            dtype, shape = rules[name]
            dtype = value_dtype if dtype == _VALUE else \
                np.result_type(value_dtype, np.complex64) if dtype == "complex" else dtype
            require(isinstance(value, np.ndarray) and value.dtype == dtype,
                     f"{group}/{name} has dtype {getattr(value, 'dtype', type(value))}, "
                     f"expected {dtype}")
            ok = value.ndim == len(shape)
            for size, dim in zip(value.shape, shape) if ok else ():
                if isinstance(dim, str):
                    dim = dims[dim[:-2]] + 1 if dim.endswith("+1") else dims.setdefault(dim, size)
                ok = ok and size == dim
            expected = ", ".join(
                str(d) if not isinstance(d, str) else f"{d}={dims[d[:-2]] + 1}"
                if d.endswith("+1") else f"{d}={dims[d]}" if d in dims else d for d in shape)
            require(ok, f"{group}/{name} has shape {value.shape}, expected ({expected})")
        elif name in arrays:
            raise ValueError(f"{group}/{name}: an array without a consistency rule in fmm.py")
        else:
            key = f"{group}.{name}"
            require(key in attrs, f"missing parameter {key!r}")
            require(not isinstance(attrs[key], np.ndarray), f"{key} must be a scalar")
            values[name] = attrs[key]
    for name, same in shared.items():
        values[name] = values[same]
    return values


def plan_record(group, groups, attrs, dims, value_dtype):
    """The :class:`Plan` of ``groups[group]``: its own arrays by :data:`PLAN_RULES`, its M2L
    strategy's (named by ``attrs["<group>.m2l_strategy"]``) by that strategy's rules. Files
    written before there were strategies do not name one: they hold the SVD strategy's arrays
    (the names of the format are the same)."""
    key = f"{group}.m2l_strategy"
    name = param(attrs, key, str) if key in attrs else "svd"
    require(name in STRATEGY_NAMES, f"{group}.m2l_strategy {name!r} is not an M2L strategy of "
                                    f"this fmmsolve ({', '.join(STRATEGY_NAMES)})")
    data_cls = get_strategy(name).Data
    names = [f.name for f in fields(Plan) if f.name not in ("m2l_strategy", "m2l_data")]
    rules = {**PLAN_RULES, **data_cls.stored_rules()}
    values = _values(names + list(data_cls.stored_rules()), group, groups, attrs, rules, dims,
                     {}, value_dtype)
    data = data_cls.from_arrays(values)
    require(dims["octants"] in STORED_OCTANTS,
            f"{group}/m2m and l2l hold {dims['octants']} octants, not one of {STORED_OCTANTS}")
    values.update({k: values[k][:1] for k in ("m2m", "l2l")})
    return Plan(**{k: values[k] for k in names}, m2l_strategy=name, m2l_data=data)


def plan_dims(kernel, order):
    """The named dimensions of a plan's arrays (:data:`PLAN_RULES`) for ``kernel`` at
    ``order``."""
    points = surfaces.n_surface_points(order)
    return {"points": points, "n": points * kernel.components,
            "vectors": len(transfer_vectors())}


def check_csr(name, indptr, indices, n_boxes):
    require(indptr[0] == 0 and indptr[-1] == len(indices) and (np.diff(indptr) >= 0).all(),
             f"{name}_indptr is not a CSR pointer array over {len(indices)} entries")
    require(len(indices) == 0 or (indices.min() >= 0 and indices.max() < n_boxes),
             f"{name}_indices holds box indices outside [0, {n_boxes})")


def check_tree(t):
    """Raise ValueError unless the Octree ``t`` is consistent: levels, keys and anchors, links
    between parents and children, leaves, point ranges and permutations."""
    n, lp, cp = t.n_boxes, t.level_ptr, t.child_ptr
    require(isinstance(t.half_width, numbers.Real) and np.isfinite(t.half_width)
             and t.half_width > 0 and np.isfinite(t.center).all(),
             "tree.half_width must be positive and tree/center finite")
    require(is_int(t.leaf_size) and t.leaf_size >= 1 and is_int(t.max_depth)
             and 0 <= t.max_depth <= MAX_DEPTH, "tree.leaf_size or tree.max_depth is invalid")
    require(n >= 1 and len(lp) >= 2 and lp[0] == 0 and lp[-1] == n
             and (np.diff(lp) > 0).all() and len(lp) - 2 <= t.max_depth,
             f"tree/level_ptr does not split the {n} boxes into levels 0..depth <= max_depth")
    require(np.array_equal(t.levels, np.repeat(np.arange(len(lp) - 1), np.diff(lp))),
             "tree/levels disagrees with tree/level_ptr")
    one = np.int64(1)
    require((t.anchors >= 0).all() and (t.anchors < (one << t.levels)[:, None]).all()
             and (t.keys >> (3 * t.levels) == 1).all()
             and np.array_equal(decode_array(t.keys ^ (one << (3 * t.levels))), t.anchors),
             "tree/keys and tree/anchors disagree")
    require(cp[0] == 1 and cp[-1] == n and (np.diff(cp) >= 0).all() and t.parent[0] == -1
             and np.array_equal(t.parent[1:], np.repeat(np.arange(n), np.diff(cp)))
             and (t.levels[1:] == t.levels[t.parent[1:]] + 1).all(),
             "tree/parent and tree/child_ptr disagree")
    require(np.array_equal(np.sort(t.leaves), np.flatnonzero(np.diff(cp) == 0)),
             "tree/leaves are not the boxes without children")
    for side, begin, end, perm, points in (
            ("sources", t.src_begin, t.src_end, t.source_perm, t.sources),
            ("targets", t.tgt_begin, t.tgt_end, t.target_perm, t.targets)):
        m = len(perm)
        require(m >= 1 and (begin >= 0).all() and (begin <= end).all() and (end <= m).all(),
                 f"tree: box ranges of {side} outside [0, {m}]")
        first, last = begin[t.leaves], end[t.leaves]
        require(first[0] == 0 and last[-1] == m and np.array_equal(last[:-1], first[1:]),
                 f"tree: the leaves' ranges of {side} do not tile the {m} points")
        require(perm.min() >= 0 and perm.max() < m
                 and (np.bincount(perm, minlength=m) == 1).all(),
                 f"tree: the permutation of {side} is not a permutation of 0..{m - 1}")
        require(np.isfinite(points).all(), f"tree: {side} hold NaN or infinite coordinates")


def check_plan(plan, kernel_name, order, value_dtype):
    require(plan.kernel_name == kernel_name and plan.expansion_order == order,
             f"the plan is for kernel {plan.kernel_name!r}, order {plan.expansion_order!r}; "
             f"the engine's are {kernel_name!r}, {order}")
    require(is_int(plan.scale_degree) and isinstance(plan.compression_tol, float)
             and plan.compression_tol > 0, "plan.scale_degree or plan.compression_tol is invalid")
    why = plan.m2l_data.inconsistency(plan.n_expansion, value_dtype)
    require(why is None, f"the plan's M2L operators are inconsistent: {why}")
    arrays = [v for v in vars(plan).values() if isinstance(v, np.ndarray)]
    require(all(np.isfinite(v).all() for v in arrays + list(plan.m2l_data.arrays().values())),
             "the plan holds NaN or infinite values")


def plan_groups(kernel, depth):
    """Group name of the plan of each level 0..depth: ``"plan"`` for level 0 (and for every
    level of a scale-invariant kernel, which shares one plan), ``"plan_<l>"`` for level l >= 1
    of the others (the plan of level l is the reference plan at the wavenumber ``k h_l``)."""
    if kernel.scale_invariant:
        return ["plan"] * (depth + 1)
    return ["plan"] + [f"plan_{level}" for level in range(1, depth + 1)]


def state_of(fitted):
    """The :class:`~fmmsolve.engine.fitted.Fitted` record ``fitted`` as plain arrays and
    parameters, for :func:`restore` (:meth:`FMMEngine.state <fmmsolve.fmm.FMMEngine.state>`).

    Returns
    -------
    groups : dict of str to dict of str to ndarray
        ``"tree"``, ``"lists"`` and ``"plan"``: the array fields of the
        :class:`~fmmsolve.tree.Octree`, :class:`~fmmsolve.tree.InteractionLists` and
        :class:`~fmmsolve.operators.plan.Plan`, by field name (the arrays themselves, not
        copies; shapes and dtypes as documented there; the plan's M2L data record gives its
        arrays by their stored names, ``m2l_<field>``); a kernel that is not scale
        invariant adds ``"plan_1"`` ... ``"plan_<depth>"``, the plans of the other levels.
        A tree built with ``targets=None`` gives its shared arrays once, as the sources'.
    attrs : dict of str to scalar
        ``"engine.kernel"`` (registry name), ``"engine.kernel_digest"`` (the digest of its
        definition, :attr:`~fmmsolve.kernels.Kernel.digest`), ``"engine.wavenumber"`` (the
        value passed to the kernel), ``"engine.eps"``, ``"engine.dipoles"``,
        ``"engine.expansion_order"``, ``"engine.leaf_size"``,
        ``"engine.real_dtype"`` (``"float64"`` or ``"float32"``), ``"engine.radii"`` (the
        surface radii the plan was computed for), ``"engine.m2l"`` (the M2L strategy asked
        for; a level's plan may use ``"fft"`` instead:
        :func:`~fmmsolve.operators.plan.level_strategy`), and every other field of the records as
        ``"tree.<field>"``, ``"lists.<field>"``, ``"plan.<field>"`` or ``"plan_<l>.<field>"``
        (among them ``"plan.m2l_strategy"``, the name of the M2L strategy).
    """
    attrs = {"engine.kernel": fitted.kernel.name, "engine.kernel_digest": fitted.kernel.digest,
             "engine.wavenumber": fitted.wavenumber,
             "engine.eps": fitted.eps, "engine.dipoles": fitted.dipoles,
             "engine.expansion_order": fitted.expansion_order,
             "engine.leaf_size": fitted.tree.leaf_size,
             "engine.real_dtype": fitted.real_dtype.name,
             "engine.radii": radii(), "engine.m2l": fitted.m2l}
    groups = {}
    shared = SHARED_TARGET_FIELDS if fitted.tree.targets_are_sources else {}
    records = [("tree", fitted.tree), ("lists", fitted.lists)]
    records += dict(zip(plan_groups(fitted.kernel, fitted.tree.depth), fitted.plans)).items()
    for name, record in records:
        arrays = groups[name] = {}
        for field in fields(record):
            value = getattr(record, field.name)
            if isinstance(value, M2LData):
                arrays.update(value.arrays())
            elif isinstance(value, np.ndarray):
                if field.name not in shared:
                    arrays[field.name] = value
            else:
                attrs[f"{name}.{field.name}"] = value
    return groups, attrs


def restore(groups, attrs):
    """The :class:`~fmmsolve.engine.fitted.Fitted` record of :func:`state_of`'s output (kernel,
    parameters, tree, lists and plans), checking everything first; see
    :meth:`FMMEngine.from_state <fmmsolve.fmm.FMMEngine.from_state>`. Its ``timings`` are
    empty."""
    kernel = saved_kernel(attrs)
    wavenumber = param(attrs, "engine.wavenumber", numbers.Number)
    real_dtype = resolve_real_dtype(param(attrs, "engine.real_dtype", str))
    value_dtype = kernel.value_dtype(real_dtype)
    eps = float(param(attrs, "engine.eps", numbers.Real))
    # files written before dipole densities existed hold charges-only operators
    dipoles = param(attrs, "engine.dipoles", bool) if "engine.dipoles" in attrs else False
    order = param(attrs, "engine.expansion_order", numbers.Integral)
    require(0 < eps < 1, f"engine.eps must be in (0, 1), got {eps!r}")
    require(2 <= order <= MAX_ORDER,
            f"engine.expansion_order must be in [2, {MAX_ORDER}], got {order!r}")
    saved_radii = param(attrs, "engine.radii", tuple)
    require(saved_radii == radii(), f"the plan was computed for surface radii {saved_radii}, "
                                    f"but this fmmsolve uses {radii()}")
    shared_targets = param(attrs, "tree.targets_are_sources", bool)
    shared = SHARED_TARGET_FIELDS if shared_targets else {}
    tree = record(Octree, "tree", groups, attrs, TREE_RULES, {}, shared)
    check_tree(tree)
    leaf_size = param(attrs, "engine.leaf_size", numbers.Integral)
    require(leaf_size == tree.leaf_size, "engine.leaf_size differs from tree.leaf_size")
    lists = record(InteractionLists, "lists", groups, attrs, LISTS_RULES,
                   {"boxes": tree.n_boxes}, {})
    for name in "uvwx":
        check_csr(f"lists/{name}", getattr(lists, f"{name}_indptr"),
                  getattr(lists, f"{name}_indices"), tree.n_boxes)
    names = plan_groups(kernel, tree.depth)
    plans = {}
    for name in dict.fromkeys(names):  # each distinct plan once, level order
        dims = plan_dims(kernel, order)
        plans[name] = plan_record(name, groups, attrs, dims, value_dtype)
        check_plan(plans[name], kernel.name, order, value_dtype)
    plans = tuple(plans[name] for name in names)
    # the strategy asked for (files before it was saved: the plans'); the levels of a wave
    # kernel past FFT_ABOVE_KW use "fft" (operators.plan.level_strategy)
    strategy = param(attrs, "engine.m2l", str) if "engine.m2l" in attrs \
        else plans[0].m2l_strategy
    require(strategy in STRATEGY_NAMES, f"engine.m2l {strategy!r} is not an M2L strategy of "
                                        f"this fmmsolve")
    require(all(p.m2l_strategy in {strategy, FFT_M2L} for p in plans),
            f"the plans of the levels have M2L strategies "
            f"{sorted({p.m2l_strategy for p in plans})}, not {strategy!r} (or 'fft')")
    # a level with V-list pairs needs M2L operators (levels 0 and 1 are saved without them)
    levels = tree.levels[np.repeat(np.arange(tree.n_boxes), np.diff(lists.v_indptr))]
    for level in np.unique(levels):
        require(plans[level].rank > 0,
                f"{names[level]} has no M2L operators, but level {level} has V-list pairs")
    return Fitted(kernel=kernel, wavenumber=wavenumber, real_dtype=real_dtype,
                  value_dtype=value_dtype, eps=eps, dipoles=dipoles, expansion_order=order,
                  m2l=strategy, tree=tree, lists=lists, plans=plans)


def saved_kernel(attrs):
    """The registered kernel a saved state names: its name and, if saved (always, since
    kernels have digests), the digest of its definition must match a registered kernel's.
    A state without a digest can only be of a built-in kernel."""
    name = param(attrs, "engine.kernel", str)
    if "engine.kernel_digest" not in attrs:
        return kernel_for_key(name)
    digest = param(attrs, "engine.kernel_digest", str)
    kernel = kernel_for_key(f"{name}-{digest[:16]}")
    require(kernel.digest == digest, f"engine.kernel_digest {digest!r} is not the digest of "
                                     f"the registered kernel {name!r}")
    return kernel


def check_layout(layout, attrs):
    """Check the groups, dtypes and shapes a saved state declares, before any array is read.

    The rules :func:`restore` applies to the arrays (``TREE_RULES``, ``LISTS_RULES``,
    ``PLAN_RULES`` through :func:`record`) are applied to zero-memory stand-ins of the declared
    shapes, so that a file whose shapes disagree (a permutation longer than its points, a plan
    for another expansion order, an extra group) is refused before anything is allocated.
    :func:`restore` checks the values once they are read.

    Parameters
    ----------
    layout : dict of str to dict of str to (numpy.dtype, tuple of int)
        Group name -> array name -> declared dtype and shape, as
        :func:`fmmsolve.io.read_groups` passes it.
    attrs : dict
        The parameters, as for :func:`restore`.

    Raises
    ------
    ValueError
        Naming the group, array or parameter that does not fit.
    """
    stand_ins = {group: {name: np.broadcast_to(np.zeros((), dtype), shape)
                         for name, (dtype, shape) in arrays.items()}
                 for group, arrays in layout.items()}
    kernel = saved_kernel(attrs)
    value_dtype = kernel.value_dtype(resolve_real_dtype(param(attrs, "engine.real_dtype", str)))
    order = param(attrs, "engine.expansion_order", numbers.Integral)
    require(2 <= order <= MAX_ORDER,
            f"engine.expansion_order must be in [2, {MAX_ORDER}], got {order!r}")
    shared = SHARED_TARGET_FIELDS if param(attrs, "tree.targets_are_sources", bool) else {}
    tree = record(Octree, "tree", stand_ins, attrs, TREE_RULES, {}, shared)
    require(0 <= tree.depth <= MAX_DEPTH, f"tree/level_ptr has shape {tree.level_ptr.shape}, "
                                          f"expected 2 to {MAX_DEPTH + 2} entries (levels)")
    record(InteractionLists, "lists", stand_ins, attrs, LISTS_RULES, {"boxes": tree.n_boxes}, {})
    names = plan_groups(kernel, tree.depth)
    unexpected = sorted(set(layout) - {"tree", "lists", *names})
    require(not unexpected, f"unexpected groups {unexpected}")
    for name in dict.fromkeys(names):
        plan_record(name, stand_ins, attrs, plan_dims(kernel, order), value_dtype)
