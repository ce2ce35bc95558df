"""What accuracy each expansion order reaches, measured: eps -> order, and the frequency range of
oscillatory kernels (the order that ``|k| w_2`` needs).

The engine reads its numerical choices from here, so that the measured tables live apart from
the code that runs the passes. Every number below was measured against the direct sum (the
comments say on what); change them only with a new measurement.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_positive_int

__all__ = ["order_for_eps", "design_eps", "check_eps", "check_order", "max_kw2",
           "FrequencyError", "frequency_order", "max_frequency", "choose_order",
           "FREQUENCY_MARGIN", "MAX_ORDER", "level_half_widths",
           "max_expansion_half_width",
           "COMPRESSION_MARGIN", "DIPOLE_MARGIN", "DECAY_WIDTH", "DEFAULT_EPS", "FLOAT32_MIN_EPS",
           "MIN_EPS"]

# eps -> expansion order, from the measured relative L2 error of the potential (20k points,
# float64, worst of uniform / clusters / curve; benchmarks/accuracy_table.py): p=3 1.5e-3, 4
# 2.0e-4, 5 1.8e-5, 6 1.9e-6, 7 2.5e-7, 8 3.6e-8, 9 5.2e-9, 10 2.1e-9 (stalls), 11 1.1e-10. Each
# eps gets the lowest order whose worst error is at least 4x below it. The rows below 1e-9 are
# reached only by the operators of dipole densities (see DIPOLE_MARGIN, where they are measured); a
# user's eps stops at MIN_EPS.
_ORDERS = ((1e-2, 3), (1e-3, 4), (1e-4, 5), (1e-5, 6), (1e-6, 7), (1e-7, 8), (1e-8, 9),
           (1e-9, 11), (1e-10, 12), (1e-11, 15))
#: Smallest eps a user may ask for.
MIN_EPS = 1e-9
#: The eps of ``eps=None`` in float64 (in float32 it is FLOAT32_MIN_EPS).
DEFAULT_EPS = 1e-6
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
    """Largest ``|k| w_2`` (wavenumber times the width of a level-2 box, a quarter of the root
    cube's edge) at which the FMM of an oscillatory kernel meets its eps.

    Parameters
    ----------
    expansion_order : int
        The expansion order, not eps: the bound was measured per order, at the least accurate
        eps that gets it. For a requested eps, use ``max_kw2(order_for_eps(eps))``.

    Returns
    -------
    float
        2.5 (order 3) to 3.5 (orders 5-7); orders not measured get the smallest bound.
    """
    return _MAX_KW2.get(int(expansion_order), min(_MAX_KW2.values()))


# High frequencies: past max_kw2 of the eps's order, the frequency sets the order. Errors of the
# orders _FREQUENCY_ORDERS at each tabulated |k| w_2 (Helmholtz, real k: no decay, the worst
# case), measured by benchmarks/frequency_table.py: 20,000 points, a tree of depth 2 (the
# level-2 translations carry the highest |k| w and most of the far field), eps 1e-9 (so the
# compression is not what is measured; past FFT_ABOVE_KW the FFT M2L compresses nothing),
# relative L2 error of the potential over 400 of the points, the worst of the unit cube and
# the sphere surface. An eps gets the lowest order whose error at the smallest tabulated
# |k| w_2 at or above the points' is FREQUENCY_MARGIN times below it; no order within the
# table: refused. A row ends where the error fell below 1e-10 (the measurement stopped: the
# higher orders are taken to reach that error too); None: not measured (never chosen). Orders
# 17 to 20 and the row 30 are the cube's: the sphere stayed below it wherever both were
# measured (rows 20 and 25 at orders 16 to 19: 3.8e-10, 1.9e-11; 2.0e-7, 2.0e-8, 1.1e-9,
# 7.8e-11; row 30 at 16 to 19: 3.8e-5, 4.7e-6, 4.1e-7, 4.0e-8).
_FREQUENCY_ORDERS = tuple(range(5, 21))
#: Highest expansion order (the frequency rule's; eps alone asks at most 15).
MAX_ORDER = _FREQUENCY_ORDERS[-1]
_FREQUENCY_ERRORS = {  # orders 5 ... 20
    3.5: (3.4e-05, 3.8e-06, 5.7e-07, 5.6e-08, 3.9e-08, 2.7e-09, 1.2e-09, 3.8e-11),
    5.0: (2.0e-04, 1.1e-05, 8.0e-07, 1.6e-07, 5.3e-08, 5.7e-09, 2.1e-09, 1.3e-10, 1.4e-11),
    7.5: (4.3e-03, 2.1e-04, 9.6e-06, 5.5e-07, 5.1e-08, 7.6e-09, 8.2e-09, 3.4e-10, 1.9e-11),
    10.0: (5.7e-02, 6.5e-03, 2.1e-04, 1.8e-05, 5.3e-07, 4.6e-08, 2.7e-09, 6.9e-10, 1.2e-10,
           9.6e-11),
    12.5: (2.6e+00, 3.5e-02, 3.0e-03, 1.9e-04, 1.4e-05, 6.8e-07, 3.6e-08, 2.0e-09, 2.0e-10,
           1.9e-11),
    15.0: (2.2e+00, 3.9e-01, 2.6e-02, 2.1e-03, 2.3e-04, 1.3e-05, 1.0e-06, 4.6e-08, 2.7e-09,
           1.5e-10, 1.4e-11),
    20.0: (5.3e+00, 8.9e+00, 6.2e+00, 1.7e-01, 2.1e-02, 2.7e-03, 2.8e-04, 2.8e-05, 2.3e-06,
           1.6e-07, 9.8e-09, 5.2e-10, 2.7e-11),
    25.0: (1.4e+01, 1.8e+01, 1.4e+01, 5.7e+00, 5.1e+00, 1.1e-01, 2.3e-02, 2.4e-03, 4.5e-04,
           3.4e-05, 5.1e-06, 2.9e-07, 3.2e-08, 1.6e-09, 1.3e-10, 5.1e-12),
    30.0: (None,) * 11 + (6.0e-05, 7.8e-06, 6.3e-07, 6.7e-08, 4.3e-09),
}
#: The error of the chosen order is at least this factor below the design eps (as for
#: :data:`_ORDERS`).
FREQUENCY_MARGIN = 4.0


def frequency_order(design: float, kw2: float):
    """Lowest expansion order whose error (the measured table above) is
    :data:`FREQUENCY_MARGIN` times below ``design`` at ``|k| w_2 = kw2``; None when no order
    up to the highest measured reaches it, or ``kw2`` is beyond the table."""
    # the table's k came from the points' extent, and the root cube is 1e-9 wider than it
    row = next((errors for bound, errors in sorted(_FREQUENCY_ERRORS.items())
                if kw2 <= bound * (1 + 1e-6)), None)
    if row is None:
        return None
    row = row + row[-1:] * (len(_FREQUENCY_ORDERS) - len(row))  # see the table's comment
    return next((order for order, error in zip(_FREQUENCY_ORDERS, row)
                 if error is not None and error * FREQUENCY_MARGIN <= design), None)


def max_frequency(design: float, order: int | None = None) -> float:
    """Largest ``|k| w_2`` accepted at the design eps ``design``
    (:func:`design_eps`): the largest tabulated one whose :func:`frequency_order` is at most
    ``order`` (None: the highest measured), or :func:`max_kw2` of the eps's own order when
    that is larger."""
    order = _FREQUENCY_ORDERS[-1] if order is None else order
    accepted = [bound for bound in _FREQUENCY_ERRORS
                if (need := frequency_order(design, bound)) is not None and need <= order]
    return max(accepted + [max_kw2(order)])


def choose_order(kernel, wavenumber, edge, order, design, eps, explicit=False):
    """The expansion order of an FMM of ``kernel`` whose root cube has edge ``edge``: ``order``
    (from eps, or the user's), raised for an oscillatory kernel whose ``|k| w_2`` (``w_2 =
    edge / 4``) is past :func:`max_kw2` of it to :func:`frequency_order` (not raised when
    ``explicit``: the user's order must reach it). :class:`FrequencyError` beyond
    :func:`max_frequency`."""
    if not kernel.oscillatory:
        return order
    kw2 = abs(wavenumber) * edge / 4.0
    if kw2 <= max_kw2(order):
        return order
    need = frequency_order(design, kw2)
    if need is None or (explicit and need > order):
        bound = max_frequency(design, order if explicit else None)
        raise FrequencyError(kernel.name, wavenumber, eps, order, edge, bound=bound,
                             highest=not explicit)
    return max(order, need)


def check_eps(eps, real_dtype) -> float:
    """``eps`` as a float, checked: a number in (0, 1), at least :data:`FLOAT32_MIN_EPS` in
    float32 (the lower bound of float64 is :func:`order_for_eps`'s). None is the default of
    the precision: :data:`DEFAULT_EPS` in float64, :data:`FLOAT32_MIN_EPS` in float32."""
    if eps is None:
        return FLOAT32_MIN_EPS if np.dtype(real_dtype) == np.float32 else DEFAULT_EPS
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) \
            or not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be a number in (0, 1), got {eps!r}")
    if np.dtype(real_dtype) == np.float32 and eps < FLOAT32_MIN_EPS:
        raise ValueError(f"eps must be at least {FLOAT32_MIN_EPS:g} in float32 (rounding "
                         f"limits it: 1.5e-5 was measured at eps 1e-5 on a sphere), got "
                         f"{eps!r}. To compute in float64, pass float64 points or "
                         f"dtype=np.float64 (float32 points are computed in float32 unless "
                         f"dtype says otherwise); or ask eps >= {FLOAT32_MIN_EPS:g} (or None)")
    return float(eps)


def check_order(expansion_order) -> int:
    """A user's ``expansion_order``, checked: an integer in [2, :data:`MAX_ORDER`]."""
    order = check_positive_int(expansion_order, "expansion_order")
    if not 2 <= order <= MAX_ORDER:
        raise ValueError(f"expansion_order must be in [2, {MAX_ORDER}], got "
                         f"{expansion_order!r}")
    return order


def design_eps(eps: float, dipoles: bool = False, margin: float = 1.0) -> float:
    """The accuracy the operators are built for: ``eps``, divided by ``DIPOLE_MARGIN`` for an
    FMM that evaluates dipole densities, and by ``margin`` (a kernel made of Laplace FMMs,
    :mod:`fmmsolve.engine.harmonic`, asks for more of them)."""
    return (eps / DIPOLE_MARGIN if dipoles else eps) / margin


def order_for_eps(eps: float, dipoles: bool = False, margin: float = 1.0) -> int:
    """Expansion order used for a requested relative accuracy ``eps`` (at least
    :data:`MIN_EPS`), of charges only or also of dipoles, with the ``margin`` of
    :func:`design_eps`."""
    if eps < MIN_EPS * (1 - 1e-9):
        raise ValueError(f"eps must be at least {MIN_EPS:g} (the smallest accuracy fmmsolve is "
                         f"measured to reach), got {eps!r}")
    design = design_eps(eps, dipoles, margin)
    target = design * (1 + 1e-9)  # 1e-9 / 100: a hair above 1e-11
    order = next((order for bound, order in _ORDERS if target >= bound), None)
    if order is None:  # a margin on top of the dipoles' (the Stokes double layer)
        smallest = _ORDERS[-1][0] * eps / design
        raise ValueError(f"eps must be at least {smallest:g} here, got {eps!r}: this FMM builds "
                         f"its operators for eps / {eps / design:g}, and the smallest accuracy "
                         f"they are measured to reach is {_ORDERS[-1][0]:g}")
    return order


def level_half_widths(tree):
    """Half-width of the boxes of each level 0..depth, float64 (as ``tree.box_half_widths``)."""
    return tree.half_width / 2.0 ** np.arange(tree.depth + 1)


class FrequencyError(ValueError):
    """An oscillatory kernel's wavenumber too high for the root cube of the points
    (:func:`choose_order`). A ``ValueError``, with the numbers of the refusal as attributes.

    Attributes
    ----------
    kernel : str
    wavenumber : scalar
    eps : float
        The eps the user asked for.
    expansion_order : int
    bound : float
        The largest ``|k| w_2`` accepted: :func:`max_frequency` (or ``max_kw2`` of the order).
    highest : bool
        Whether the bound is the one of the highest order measured (the order was chosen
        from eps), not of a user's ``expansion_order``.
    edge : float
        The root cube's edge (``w_2 = edge / 4``).
    max_wavenumber : float
        Largest ``|k|`` accepted for this root cube and order: ``4 bound / edge``.
    max_edge : float
        Largest root-cube edge accepted at this ``|k|``: ``4 bound / |k|``.
    """

    def __init__(self, kernel, wavenumber, eps, expansion_order, edge, advice=None, asked=None,
                 bound=None, highest=True):
        self.kernel, self.wavenumber, self.eps = kernel, wavenumber, eps
        self.expansion_order, self.edge = expansion_order, edge
        self.bound = max_kw2(expansion_order) if bound is None else float(bound)
        self.highest = highest
        self.max_wavenumber = 4.0 * self.bound / edge
        self.max_edge = 4.0 * self.bound / abs(wavenumber)
        super().__init__(self.message(advice, asked))

    def message(self, advice=None, asked=None) -> str:
        """The refusal's text; ``asked`` replaces the "eps=..." phrase (a caller that fits for
        a tighter eps than its user asked for says so there), ``advice`` the last sentence."""
        k = abs(self.wavenumber)
        asked = asked or (f"eps={self.eps:g}" if self.highest else
                          f"eps={self.eps:g} (expansion order {self.expansion_order})")
        advice = advice or ("use fmmsolve.direct (exact, O(N M)), a smaller domain, a smaller "
                            "wavenumber or a larger eps")
        reach = (f"its expansion order grows with |k| w_2 up to order {_FREQUENCY_ORDERS[-1]}, "
                 f"measured to meet eps up to the bound above (fmmsolve.accuracy."
                 f"max_frequency)" if self.highest else
                 "a larger expansion_order (or None: chosen from eps and |k| w_2) reaches "
                 "further")
        return (f"the {self.kernel!r} FMM at {asked} is accurate only while |k| w_2 <= "
                f"{self.bound:g}, with w_2 a quarter of the root cube's edge; here |k| = {k:g} "
                f"and the root cube around the points has edge {self.edge:g} (w_2 = "
                f"{self.edge / 4:g}), so |k| w_2 = {k * self.edge / 4:g}. Accepted: |k| <= "
                f"{_round_down(self.max_wavenumber):g} for these points, or a root cube of "
                f"edge <= {_round_down(self.max_edge):g} at |k| = {k:g}. {reach[0].upper()}"
                f"{reach[1:]}: {advice}.")


def _round_down(x: float) -> float:
    """``x`` rounded down to 3 significant digits (a bound quoted as accepted must be)."""
    unit = 10.0 ** (np.floor(np.log10(x)) - 2)
    return float(np.floor(x / unit * (1 + 1e-12)) * unit)


# Targets away from the sources, with a kernel that decays as e^(-d r): an expansion is fit to
# a field that falls by about e^(-d w) across its box of width w, and its error is relative to
# the field's largest value there. Where the potential at a target comes mostly through such
# expansions (no source near it), its relative error grows by up to e^(2 d w) (an upward and a
# downward fit). Measured at the order of eps (modified Helmholtz, 2000 uniform sources in the
# unit cube, 1500 targets on a sphere of radius 3 around them, w = 1.5): k = 1 (2 d w = 3) gave
# 2.2e-3 at eps 1e-3, k = 3 1.3e-2, k = 10 errors of order 1. So such targets take their far
# field from boxes with d w <= DECAY_WIDTH only (fmmsolve.tree.lists.narrow_far_field, and
# FMMField at any new point). Measured with it, on the same sphere (3000 sources): k = 1
# 4.5e-5 at eps 1e-3 and 2.2e-8 at 1e-6; k = 3 and 10 are summed directly there (their source
# leaves are wider than 1 / k); FMMField with M2P from the root (d w = 3, k = 3) gave 5.4e-3 at
# eps 1e-3 and 3.7e-6 at 1e-6, with DECAY_WIDTH 2.7e-4 and 4.6e-8.
DECAY_WIDTH = 1.0


def max_expansion_half_width(kernel, wavenumber) -> float:
    """Half-width of the widest box whose expansions may reach a target away from the sources:
    ``DECAY_WIDTH / (2 d)`` for a kernel that decays at the rate d > 0
    (:attr:`fmmsolve.kernels.Kernel.decay`), infinite for the others."""
    decay = kernel.decay(wavenumber)
    return 0.5 * DECAY_WIDTH / decay if decay > 0 else np.inf
