"""What accuracy each expansion order reaches, measured: eps -> order, and the low-frequency
range of oscillatory kernels.

The engine reads its numerical choices from here, so that the measured tables live apart from
the code that runs the passes. Every number below was measured against the direct sum (the
comments say on what); change them only with a new measurement.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._validation import check_positive_int

__all__ = ["order_for_eps", "design_eps", "check_eps", "check_order", "max_kw2", "check_frequency", "level_half_widths",
           "screening_margin", "AccuracyWarning", "COMPRESSION_MARGIN", "DIPOLE_MARGIN",
           "FLOAT32_MIN_EPS", "MIN_EPS", "MAX_SCREENING_EXPONENT"]


class AccuracyWarning(UserWarning):
    """The FMM cannot promise the requested eps for these points (the message says why)."""

# eps -> expansion order, from the measured relative L2 error of the potential (20k points,
# float64, worst of uniform / clusters / curve; benchmarks/accuracy_table.py): p=3 1.5e-3, 4 2.0e-4,
# 5 1.8e-5, 6 1.9e-6, 7 2.5e-7, 8 3.6e-8, 9 5.2e-9, 10 2.1e-9 (stalls), 11 1.1e-10. Each eps
# gets the lowest order whose worst error is at least 4x below it. The rows below 1e-9 are
# reached only by the operators of dipole densities (see DIPOLE_MARGIN, where they are
# measured); a user's eps stops at MIN_EPS.
_ORDERS = ((1e-2, 3), (1e-3, 4), (1e-4, 5), (1e-5, 6), (1e-6, 7), (1e-7, 8), (1e-8, 9),
           (1e-9, 11), (1e-10, 12), (1e-11, 15))
#: Smallest eps a user may ask for.
MIN_EPS = 1e-9
# Smallest eps float32 is allowed: at eps 1e-4 every test distribution is within eps (8000
# points), at 1e-5 the sphere surface reached 1.46e-5 (rounding in the near field and in the
# translations, whatever the order).
FLOAT32_MIN_EPS = 1e-4
# An FMM fit for dipole densities picks its order and compression for eps / DIPOLE_MARGIN:
# the far field of a dipole is a derivative higher than a charge's, and an equivalent-density
# expansion of a given order reaches a poorer relative accuracy on it. Measured (Laplace, 6000
# uniform sources in the unit cube, 3000 targets on a sphere of radius 3 around them, where
# every interaction is far; relative L2 of the dipole potential / its gradient at the order of
# eps): eps 1e-3 7.9e-3 / 3.1e-2, 1e-4 7.2e-4 / 4.4e-3, 1e-5 1.4e-4 / 6.9e-4, 1e-6 1.2e-5 /
# 1.1e-4, 1e-7 2.0e-6 / 2.6e-5, 1e-8 2.2e-7 / 2.7e-6. Two decades lower bring the potential
# within eps and the gradient within 10 eps. Near-field-dominated sums (targets among the
# sources) meet eps at the charges' order.
# The same set-up (leaf size 100) at the orders of eps / 100 below 1e-7, with the compression
# tolerance COMPRESSION_MARGIN * eps / 100: eps 1e-8 (order 12, 1e-11) 2.1e-9 / 4.2e-8;
# eps 1e-9 at order 13 2.8e-10 / 1.1e-8, 14 2.1e-10 / 1.0e-8, 15 1.0e-10 / 2.6e-9 (all at
# 1e-12; order 15 at 1e-13 1.4e-9): hence 12 and 15 in _ORDERS.
DIPOLE_MARGIN = 100.0
# M2L compression keeps singular values above this fraction of eps times the largest.
COMPRESSION_MARGIN = 0.1


# Low-frequency range of an oscillatory kernel: expansion order -> largest |k| w_2 (w_2 the
# width of a level-2 box) allowed. Measured for Helmholtz with real k (the worst case: no
# decay), 3000 uniform points, depth 2, relative L2 error of the potential at the order's
# largest-error eps (the lowest eps that gets the order):
#   order 3 (eps 1e-2): |k| w_2 = 2.5 5.3e-3, 3.0 1.2e-2
#   order 4 (eps 1e-3): 2.5 3.2e-4, 3.0 4.9e-4, 3.5 7.9e-4, 3.75 1.1e-3, 5.0 5.5e-3, 10 6.7
#   order 5 (eps 1e-4): 2.5 1.8e-5, 3.0 2.4e-5, 3.5 4.0e-5
#   order 6 (eps 1e-5): 2.5 1.9e-6, 3.0 2.9e-6, 3.5 3.6e-6
#   order 7 (eps 1e-6): 2.75 2.1e-7, 3.1 3.2e-7, 3.5 5.3e-7, 4.0 6.1e-7
# Each bound keeps the error at about half of eps or less. Orders not measured (8 and up,
# eps < 1e-6) get the smallest bound.
_MAX_KW2 = {3: 2.5, 4: 3.0, 5: 3.5, 6: 3.5, 7: 3.5}


def max_kw2(expansion_order: int) -> float:
    """Largest ``|k| w_2`` (wavenumber times the width of a level-2 box) at which the FMM of an
    oscillatory kernel is measured to meet the eps that gets ``expansion_order``."""
    return _MAX_KW2.get(int(expansion_order), min(_MAX_KW2.values()))


def check_eps(eps, real_dtype) -> float:
    """``eps`` as a float, checked: a number in (0, 1), at least :data:`FLOAT32_MIN_EPS` in
    float32 (the lower bound of float64 is :func:`order_for_eps`'s)."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) \
            or not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be a number in (0, 1), got {eps!r}")
    if np.dtype(real_dtype) == np.float32 and eps < FLOAT32_MIN_EPS:
        raise ValueError(f"eps must be at least {FLOAT32_MIN_EPS:g} in float32 (rounding "
                         f"limits it: 1.5e-5 was measured at eps 1e-5 on a sphere), got "
                         f"{eps!r}; use dtype=np.float64")
    return float(eps)


def check_order(expansion_order) -> int:
    """A user's ``expansion_order``, checked: an integer in [2, 16]."""
    order = check_positive_int(expansion_order, "expansion_order")
    if not 2 <= order <= 16:
        raise ValueError(f"expansion_order must be in [2, 16], got {expansion_order!r}")
    return order


def design_eps(eps: float, dipoles: bool = False, margin: float = 1.0) -> float:
    """The accuracy the operators are built for: ``eps``, divided by ``DIPOLE_MARGIN`` for an
    FMM that evaluates dipole densities and by a :func:`screening_margin`."""
    return (eps / DIPOLE_MARGIN if dipoles else eps) / margin


def order_for_eps(eps: float, dipoles: bool = False, margin: float = 1.0) -> int:
    """Expansion order used for a requested relative accuracy ``eps`` (at least
    :data:`MIN_EPS`), of charges only or also of dipoles, tightened by ``margin``."""
    if eps < MIN_EPS * (1 - 1e-9):
        raise ValueError(f"eps must be at least {MIN_EPS:g} (the smallest accuracy fmmsolve is "
                         f"measured to reach), got {eps!r}")
    target = design_eps(eps, dipoles, margin) * (1 + 1e-9)  # 1e-9 / 100 is a hair above 1e-11
    for bound, order in _ORDERS:
        if target >= bound:
            return order
    return _ORDERS[-1][1]  # a screening margin beyond the table: screening_margin warned


def level_half_widths(tree):
    """Half-width of the boxes of each level 0..depth, float64 (as ``tree.box_half_widths``)."""
    return tree.half_width / 2.0 ** np.arange(tree.depth + 1)


def check_frequency(kernel, wavenumber, tree, order, eps):
    """Refuse an oscillatory kernel whose level-2 boxes are too large for its wavenumber.

    M2L, M2P and P2L act from level 2 down; the operators of a level are accurate while
    ``|k| w`` stays below :func:`max_kw2` (``w`` the box width), and deeper boxes are smaller.
    A tree of depth < 2 computes every interaction directly, at any wavenumber.
    """
    if not kernel.oscillatory or tree.depth < 2:
        return
    width = 2.0 * float(level_half_widths(tree)[2])
    bound = max_kw2(order)
    if abs(wavenumber) * width > bound:
        raise ValueError(
            f"the {kernel.name!r} FMM is accurate to eps={eps:g} only while |k| w_2 <= "
            f"{bound:g}, with w_2 the width of a level-2 box; here |k| = {abs(wavenumber):g} and "
            f"w_2 = {width:g} (a quarter of the root cube's edge, {4 * width:g}), so "
            f"|k| w_2 = {abs(wavenumber) * width:g}. The low-frequency KIFMM does not reach "
            f"higher frequencies; use fmmsolve.direct, or a smaller domain or wavenumber.")


# Targets far from every source, with a kernel that decays as e^(-d r): each expansion is fit
# to a field that varies by about e^(d w) across a box of width w, and its error is relative to
# the field's largest value there, so the error at the weak end grows by up to e^(2 d w) (an
# upward and a downward fit). Measured (modified Helmholtz, 2000 uniform sources in the unit
# cube, 1500 targets on a sphere of radius 3 around them, w = 1.5; relative L2 error of the
# potential by order 4 / 5 / 6 / 7 / 9 / 11, Laplace 2.0e-4 at 4 and 1.1e-10 at 11):
#   k = 1 (2 d w = 3): 1.2e-3 / 7.9e-5 / 7.5e-6 / 1.2e-6 / 2.9e-8 / 2.1e-9
#   k = 3 (2 d w = 9): 1.3e-2 / 2.3e-3 / 3.4e-4 / 8.2e-5 / 2.9e-6 / 7.7e-8
#   k = 10 (2 d w = 30): of order 1 at orders 4 and 7.
# Dividing eps by e^(2 d w) meets it in the measured range; beyond it the FMM warns.
MAX_SCREENING_EXPONENT = 9.0


def screening_margin(kernel, wavenumber, tree, lists, design: float) -> float:
    """The factor ``e^(2 d w)`` by which eps is divided for targets far from every source.

    ``d`` is the kernel's decay rate (:attr:`fmmsolve.kernels.Kernel.decay`) and ``w`` the
    width of the coarsest box whose expansions reach a target leaf with no source in a leaf
    adjacent to it (empty U list): such targets get their whole potential through expansions.
    Targets among the sources get most of theirs from the direct near field, and need no
    margin. Returns 1.0 when there are no such leaves. Warns with :class:`AccuracyWarning`
    when ``2 d w`` exceeds :data:`MAX_SCREENING_EXPONENT` (and returns 1.0: the error can be of
    order 1 whatever the order), or when ``design`` (the accuracy the operators would be built
    for otherwise) divided by the factor is finer than the finest order's (and returns the
    factor that reaches that order).
    """
    decay = kernel.decay(wavenumber)
    if decay <= 0.0 or tree.targets_are_sources or tree.depth < 2:
        return 1.0
    has_targets = tree.tgt_end > tree.tgt_begin
    leaves = tree.leaves[has_targets[tree.leaves]]
    box = leaves[np.diff(lists.u_indptr)[leaves] == 0]  # far-only target leaves
    if len(box) == 0:
        return 1.0
    reached = np.diff(lists.v_indptr) + np.diff(lists.x_indptr) + np.diff(lists.w_indptr)
    coarsest = np.full(len(box), tree.depth)
    for _ in range(tree.depth + 1):  # climb to the root: the coarsest level expansions reach
        hit = reached[box] > 0
        coarsest[hit] = np.minimum(coarsest[hit], tree.levels[box[hit]])
        box = np.maximum(tree.parent[box], 0)
    width = 2.0 * float(level_half_widths(tree)[coarsest.min()])
    exponent, finest = 2.0 * decay * width, _ORDERS[-1][0]
    if exponent <= MAX_SCREENING_EXPONENT and design / np.exp(exponent) >= finest:
        return float(np.exp(exponent))
    why = (f"eps is met there only while 2 d w <= {MAX_SCREENING_EXPONENT:g}, and here it is "
           f"{exponent:g}; of order 1 was measured at 30" if exponent > MAX_SCREENING_EXPONENT
           else f"that needs operators built for {design / np.exp(exponent):.1e}, finer than "
                f"the finest order's {finest:g}")
    warnings.warn(AccuracyWarning(
        f"some targets are far from every source (the {kernel.name!r} kernel decays at the "
        f"rate d = {decay:g}): their potential comes through boxes of width w = {width:g}, "
        f"across which it falls by e^(-d w), and the relative error there grows by up to "
        f"e^(2 d w); {why}. Their relative error may be above eps: use fmmsolve.direct for "
        f"them, a larger eps, or targets nearer the sources."), stacklevel=4)
    return 1.0 if exponent > MAX_SCREENING_EXPONENT else design / finest
