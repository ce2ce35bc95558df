"""Expansion orders for a kernel that fmmsolve has no accuracy table for, measured at first use.

The eps -> order table of :mod:`fmmsolve.accuracy` was measured for the built-in kernels; a
registered kernel (:func:`fmmsolve.register_kernel`) may need more or fewer terms. So the
first fit of such a kernel at an eps runs small FMMs on a reference configuration and picks
the lowest order whose relative L2 error of the potential (against the direct sum) is at least
:data:`MARGIN` times below the design eps, the rule the table follows. The errors are kept per
process and, next to the plan cache, on disk (``<cache>/fmmsolve-calibration/<kernel key>.json``),
by the kernel's key (name and digest of its definition), so a changed kernel is measured
again.

The reference configuration: :data:`N_POINTS` points uniform in a cube, targets among the
sources, random charges, a tree of depth at least :data:`MIN_DEPTH`. Measured on the Yukawa
kernel exp(-2 r) / (4 pi r) at orders 4 to 7, its errors are within 25 % of those of 20 000
uniform points (the worst of the clouds tried; 20 000 points on a sphere reach half of
that), while a configuration with a dense cluster underestimated them up to 20 times (its
near field dominates the norm). The cube is the reference cube of half-width 1 for a kernel
with a homogeneity law (the wavenumber scaled to it), and the points' own bounding cube for a
kernel without one (its accuracy depends on the box sizes), with the half-width rounded to
two significant digits so that fits of about one size share a measurement.

What a KIFMM can expand: Green's functions of constant-coefficient elliptic PDEs (Laplace,
Yukawa, Helmholtz, their constant multiples), smooth away from r = 0. For anything
else (a kernel with a discontinuity, or one that oscillates too fast for the boxes) the
calibration reaches no order up to :data:`MAX_ORDER` and :class:`CalibrationError` says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
import threading

import numpy as np

from .cache import loader_location
from .kernels.direct import direct

__all__ = ["calibrated_order", "order_for_points", "CalibrationError", "N_POINTS", "MIN_DEPTH",
           "MAX_ORDER", "MARGIN", "FORMAT"]

#: Points of the reference configuration.
N_POINTS = 5000
#: Smallest depth of its tree.
MIN_DEPTH = 3
#: Lowest and highest orders tried.
MIN_ORDER, MAX_ORDER = 3, 12
#: The chosen order's error is at least this factor below the design eps.
MARGIN = 4.0
#: Bumped when the configuration or the file layout changes: other files are not read.
FORMAT = 1
# Subdirectory of the cache location that holds the measurements.
_DIR = "fmmsolve-calibration"

_MEMO: dict = {}  # (kernel key, case) -> {order: error}, this process
_LOCK = threading.Lock()


class CalibrationError(ValueError):
    """No expansion order up to :data:`MAX_ORDER` meets eps for a registered kernel."""


def calibrated_order(kernel, wavenumber, design_eps, half_width, plan_loader=None,
                     location=None) -> int:
    """The lowest expansion order whose error on the reference configuration is at most
    ``design_eps / MARGIN`` for ``kernel``.

    Parameters
    ----------
    kernel : Kernel
        A registered kernel (``kernel.measured`` False).
    wavenumber : scalar
        As the kernel checked it.
    design_eps : float
        The accuracy the operators are built for (:func:`fmmsolve.accuracy.design_eps`).
    half_width : float
        Half the largest extent of the user's points: the size of the reference cube for a
        kernel without a homogeneity law.
    plan_loader : callable or None
        Passed to the calibration fits (the plan cache).
    location : pathlib.Path or None
        The cache directory for the measurements; None keeps them in this process only.

    Raises
    ------
    CalibrationError
        When no order up to :data:`MAX_ORDER` reaches the bound.
    """
    case, cube, k = _case(kernel, wavenumber, design_eps, half_width)
    errors = _stored(kernel.key, case, location)
    target = design_eps / MARGIN
    problem = None
    for order in range(MIN_ORDER, MAX_ORDER + 1):
        if order not in errors:
            if problem is None:  # the points and the direct sum, once for every order
                problem = _problem(kernel, k, cube)
            errors[order] = _measure(kernel, k, design_eps, order, problem, plan_loader)
            _store(kernel.key, case, errors, location)
        if errors[order] <= target:
            return order
    best = min(errors, key=errors.get)
    raise CalibrationError(
        f"kernel {kernel.name!r}: no expansion order up to {MAX_ORDER} meets eps (the "
        f"operators are built for {design_eps:.2g}; the calibration needs an error of at most "
        f"{target:.2g} on its reference configuration, and the best was {errors[best]:.2g} at "
        f"order {best}). A KIFMM expands Green's functions of constant-coefficient elliptic "
        f"PDEs, smooth away from r = 0; check the kernel's profile and its wavenumber, or ask "
        f"a larger eps")


def _case(kernel, wavenumber, design_eps, half_width):
    """``(case, cube, k)``: the measurement's key (a string), the reference cube's half-width
    and the wavenumber the calibration fits use."""
    if kernel.homogeneity is not None:  # the reference cube; k h is what matters
        cube, k = 1.0, wavenumber * float(half_width) if kernel.needs_wavenumber else wavenumber
    else:
        cube, k = float(f"{float(half_width):.2g}"), wavenumber
    k = complex(k) if np.iscomplexobj(k) else float(k)
    return f"cube={cube!r} k={k!r} eps={design_eps!r}", cube, k


def _problem(kernel, wavenumber, cube):
    """``(points, charges, exact potential)`` of the reference configuration; charges and
    potentials (n,), or (n, C) for a kernel of C > 1 components."""
    rng = np.random.default_rng(20261204)
    points = rng.uniform(-cube, cube, (N_POINTS, 3))
    c = kernel.components
    charges = rng.standard_normal(N_POINTS if c == 1 else (N_POINTS, c))
    k = wavenumber if kernel.needs_wavenumber else None
    # the sums of the kernel's record itself: a viscosity's factor is not the engine's
    mu = None if kernel.check_viscosity is None else 1.0
    return points, charges, direct(points, None, charges, kernel=kernel, wavenumber=k,
                                   viscosity=mu)


def _measure(kernel, wavenumber, design_eps, order, problem, plan_loader) -> float:
    """Relative L2 error of the potential of one calibration fit at ``order``."""
    from .fmm import FMMEngine  # the calibration runs the engine that asks for it

    points, charges, exact = problem
    engine = FMMEngine(points, kernel=kernel,
                       wavenumber=wavenumber if kernel.needs_wavenumber else None,
                       eps=design_eps, expansion_order=order, dtype=np.float64,
                       plan_loader=plan_loader, tree_options={"min_depth": MIN_DEPTH})
    value = kernel.value_dtype(np.float64)
    columns = charges.reshape(len(points), -1)  # one column of C components
    fast = engine.evaluate(np.ascontiguousarray(columns, value))[0].reshape(exact.shape)
    error = float(np.linalg.norm(fast - exact) / np.linalg.norm(exact))
    return error if np.isfinite(error) else float("inf")


def _path(location, key) -> pathlib.Path | None:
    return None if location is None else pathlib.Path(location) / _DIR / f"{key}.json"


def _cases(path, key) -> dict:
    """The measurements in the file ``path`` of kernel ``key``, case -> {order: error}; empty
    for a missing, unreadable or foreign file (it is never trusted, only re-measured)."""
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        content = json.loads(path.read_text())
        if content.get("format") == FORMAT and content.get("kernel") == key:
            return {case: {int(order): float(err) for order, err in errors.items()
                           if MIN_ORDER <= int(order) <= MAX_ORDER and float(err) >= 0}
                    for case, errors in content["cases"].items()}
    return {}


def _stored(key, case, location) -> dict:
    """The errors measured for ``(key, case)``: in this process, else from the file."""
    with _LOCK:
        if (key, case) in _MEMO:
            return _MEMO[key, case]
    path = _path(location, key)
    errors = {} if path is None else _cases(path, key).get(case, {})
    with _LOCK:
        return _MEMO.setdefault((key, case), errors)


def _store(key, case, errors, location) -> None:
    """Write the measurements of ``key`` through a temporary file renamed over the old one;
    a location that cannot be written keeps them in this process only (the plan cache warns
    about it)."""
    path = _path(location, key)
    if path is None:
        return
    cases = _cases(path, key)
    cases[case] = errors
    content = {"format": FORMAT, "kernel": key,
               "cases": {c: {str(o): e for o, e in v.items()} for c, v in cases.items()}}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(content, f)
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def order_for_points(kernel, wavenumber, design_eps, point_sets, plan_loader=None) -> int:
    """:func:`calibrated_order` for a fit of ``point_sets`` (arrays of shape (n, 3), or None),
    with the measurements cached where ``plan_loader`` (:func:`fmmsolve.cache.plan_loader`)
    caches plans."""
    points = [p for p in point_sets if p is not None and len(p)]
    extent = max((float(np.ptp(p, axis=0).max()) for p in points), default=0.0)
    half_width = extent / 2 if extent > 0 else 1.0
    return calibrated_order(kernel, wavenumber, design_eps, half_width, plan_loader,
                            loader_location(plan_loader))
