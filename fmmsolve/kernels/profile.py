"""Kernels built from a radial profile: the contract a user's Green's function is written to.

A kernel G(x, y) = g(|x - y|) is given by one plain, Numba-compilable function::

    profile(r, k) -> (g(r), g'(r), g''(r))

called only with ``r > 0`` (float64) and the kernel's parameter ``k`` (a float, complex for a
complex kernel, 0.0 for a kernel without one); it returns three float64 numbers (complex128
for a complex kernel). Everything else the FMM needs is derived from it here, once:

* the block functions of :mod:`fmmsolve.kernels._kernel` (potentials, and gradients with
  respect to the target, grad_y G = g'(r) (y - x) / r), which also make the direct sum, the
  test oracle;
* ``radial``, the pair factors of the dipole sums (:mod:`fmmsolve.kernels.dipole`):
  f1 = g' / r and f2 = (g'' - g' / r) / r^2;
* ``matrix``, the dense float64 (complex128) matrix the translation operators are computed
  from.

Pair factors are evaluated in float64 (complex128) whatever the working precision and added to
the outputs in their own dtype, as the dipole sums do: derived loops are written once for every
kernel, not tuned per kernel and precision like the built-in ones (which keep their own).

A profile makes the kernel radial by construction, which the operators rely on: the M2M, L2L
and M2L precomputations use the cube's reflection symmetry (:mod:`fmmsolve.operators.plan`).

The kernel's digest is a hash of its name, its declared properties and the profile's source
(or, without a source file, its bytecode), with the values of the module globals and closure
cells it reads: Numba freezes those into the compiled code, so a changed constant is a changed
kernel. Plans, compiled copies, pickles and saved files are keyed by it.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import numbers
import re

import numba
import numpy as np

from .._jit import code_digest, bind, jit, prange
from ._kernel import Kernel

__all__ = ["kernel_from_profile", "definition_digest", "check_options", "compiled_function",
           "wavenumber_check"]

# Placeholder: the templates read this global; `kernel_from_profile` binds it to the profile.
profile = None

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _potential(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot):
    for i in range(tx.shape[0]):
        for j in range(sx.shape[0]):
            dx = float(tx[i] - sx[j])
            dy = float(ty[i] - sy[j])
            dz = float(tz[i] - sz[j])
            r2 = dx * dx + dy * dy + dz * dz
            if r2 == 0:  # explicit mask: the profile is never called at r = 0
                continue
            g, dg, d2g = profile(math.sqrt(r2), wavenumber)
            for c in range(pot.shape[0]):
                pot[c, i] += g * charges[c, j]


def _gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    for i in range(tx.shape[0]):
        for j in range(sx.shape[0]):
            dx = float(tx[i] - sx[j])
            dy = float(ty[i] - sy[j])
            dz = float(tz[i] - sz[j])
            r2 = dx * dx + dy * dy + dz * dz
            if r2 == 0:
                continue
            r = math.sqrt(r2)
            g, dg, d2g = profile(r, wavenumber)
            f1 = dg / r  # grad_y G = g'(r) (y - x) / r
            for c in range(pot.shape[0]):
                q = charges[c, j]
                pot[c, i] += g * q
                gx[c, i] += f1 * dx * q
                gy[c, i] += f1 * dy * q
                gz[c, i] += f1 * dz * q


def _radial(r2, wavenumber):
    if r2 == 0:  # explicit mask: no reliance on inf arithmetic
        zero = 0.0 * profile(1.0, wavenumber)[1]  # 0 of the profile's type, real or complex
        return zero, zero
    r = math.sqrt(r2)
    g, dg, d2g = profile(r, wavenumber)
    return dg / r, (d2g - dg / r) / r2


def _fill_matrix(targets, sources, wavenumber, out):
    for i in prange(targets.shape[0]):
        for j in range(sources.shape[0]):
            dx = targets[i, 0] - sources[j, 0]
            dy = targets[i, 1] - sources[j, 1]
            dz = targets[i, 2] - sources[j, 2]
            r2 = dx * dx + dy * dy + dz * dz
            if r2 > 0:
                out[i, j] = profile(math.sqrt(r2), wavenumber)[0]


def compiled_function(func, what="profile", signature="(r, k) returning (g, dg/dr, "
                      "d2g/dr2)"):
    """``func`` as a Numba dispatcher; a dispatcher passes through. Not disk-cached: the
    function may have no file, and the templates it is bound into are cached with it inside."""
    if isinstance(func, numba.core.registry.CPUDispatcher):
        return func
    if not callable(func) or not hasattr(func, "__code__"):
        raise TypeError(f"{what} must be a plain Python function or a numba.njit function "
                        f"of {signature}, got {func!r}")
    return jit(func, cache=False)


def definition_digest(name, func, properties, seen=()) -> str:
    """SHA-256 hex digest of a profile kernel's definition: ``name``, the ``properties`` (a
    dict of plain values), the source of ``func`` (its bytecode when it has no source) and the
    values of the globals and closure cells it reads (see the module docstring)."""
    func = getattr(func, "py_func", func)
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        source = code_digest(func.__code__)
    free = {n: func.__globals__[n] for n in func.__code__.co_names if n in func.__globals__}
    cells = [c.cell_contents for c in (func.__closure__ or ())]
    seen = (*seen, func)
    parts = [name, repr(sorted(properties.items())), source,
             ";".join(f"{n}={_value_text(v, seen)}" for n, v in sorted(free.items())),
             ";".join(_value_text(c, seen) for c in cells)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _value_text(value, seen=()) -> str:
    """A process-independent text of a value a compiled function may freeze: numbers, strings
    and arrays by value, compiled functions by their own definition (once: ``seen``), modules
    by name."""
    if isinstance(value, (numbers.Number, str, bytes, bool, type(None))):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_value_text(v, seen) for v in value) + ")"
    if isinstance(value, np.ndarray):
        return f"array{value.dtype.str}{value.shape}:" + hashlib.sha256(
            np.ascontiguousarray(value).tobytes()).hexdigest()
    inner = getattr(value, "py_func", None)
    if inner is not None and inner not in seen:  # a recursive function is read once
        return "func:" + definition_digest(inner.__name__, inner, {}, (*seen, inner))
    return f"{type(value).__module__}.{getattr(value, '__name__', type(value).__name__)}"


def check_options(name, wavenumber, is_complex, homogeneity, decay) -> dict:
    """The options every registered kernel declares, checked: a dict of plain values (part
    of the kernel's digest)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name must be a Python identifier (letters, digits, underscores), "
                         f"got {name!r}")
    if homogeneity is not None and (isinstance(homogeneity, bool) or not isinstance(
            homogeneity, numbers.Integral) or not 0 <= homogeneity <= 3):
        raise ValueError(f"homogeneity must be None or an integer d in [0, 3] with "
                         f"G(s x, s y) = s^-d G(x, y), got {homogeneity!r}")
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) \
            or not math.isfinite(decay) or decay < 0:
        raise ValueError(f"decay must be a finite real rate >= 0 (|G| r ~ exp(-decay r)), "
                         f"got {decay!r}")
    return {"wavenumber": bool(wavenumber), "is_complex": bool(is_complex),
            "homogeneity": None if homogeneity is None else int(homogeneity),
            "decay": float(decay)}


def wavenumber_check(name, wavenumber, is_complex):
    """The ``check_wavenumber`` of a registered kernel with these options."""
    def check_wavenumber(k):
        if not wavenumber:
            if k is not None:
                raise ValueError(f"the {name!r} kernel takes no wavenumber; pass "
                                 f"wavenumber=None, got {k!r}")
            return 0.0
        kinds = numbers.Complex if is_complex else numbers.Real
        if isinstance(k, bool) or not isinstance(k, kinds) or not np.isfinite(k):
            raise ValueError(f"the {name!r} kernel needs a finite "
                             f"{'complex' if is_complex else 'real'} wavenumber, got {k!r}")
        return complex(k) if is_complex else float(k)

    return check_wavenumber


def kernel_from_profile(name, profile_function, *, wavenumber=False, is_complex=False,
                        homogeneity=None, decay=0.0) -> Kernel:
    """A :class:`~fmmsolve.kernels._kernel.Kernel` whose every part is derived from a radial
    profile (see the module docstring and :func:`fmmsolve.register_kernel` for the
    arguments). The profile is compiled and checked here: it must return three finite numbers
    of the kernel's type at a few distances, and its derivatives must match its values."""
    properties = check_options(name, wavenumber, is_complex, homogeneity, decay)
    wavenumber, is_complex = properties["wavenumber"], properties["is_complex"]
    compiled = compiled_function(profile_function)
    digest = definition_digest(name, getattr(compiled, "py_func", compiled), properties)
    tag = f"{name}_{digest[:10]}"
    bindings = {"profile": compiled}
    p2p = bind(_potential, tag, bindings)
    p2p_gradient = bind(_gradient, tag, bindings)
    radial = bind(_radial, tag, bindings)
    fill = bind(_fill_matrix, tag, bindings, parallel=True)
    value = np.complex128 if is_complex else np.float64
    check_wavenumber = wavenumber_check(name, wavenumber, is_complex)

    def matrix(targets, sources, k):
        t = np.ascontiguousarray(targets, np.float64)
        s = np.ascontiguousarray(sources, np.float64)
        out = np.zeros((len(t), len(s)), value)
        k = (complex(k) if is_complex else float(k)) if wavenumber else 0.0
        fill(t, s, k, out)
        return out

    _check_profile(name, compiled, value, 1.0 if wavenumber else 0.0)
    return Kernel(name=name, is_complex=is_complex, needs_wavenumber=wavenumber,
                  scale_invariant=homogeneity is not None and not wavenumber, p2p=p2p,
                  p2p_gradient=p2p_gradient, check_wavenumber=check_wavenumber,
                  matrix=matrix, radial=radial, decay=lambda k: float(decay),
                  homogeneity=properties["homogeneity"], digest=digest, measured=False)


def _check_profile(name, compiled, value, k):
    """Raise ValueError unless ``compiled(r, k)`` returns three finite numbers of type
    ``value`` and its derivatives agree with central differences (relative 1e-4)."""
    where = f"the profile of kernel {name!r}"
    try:
        samples = {r: compiled(r, k) for r in (0.25, 0.5, 1.0, 2.0, 4.0)}
    except Exception as exc:  # any failure to compile or run is the user's
        raise ValueError(f"{where} could not be compiled or called as profile(r, k) with "
                         f"r = 0.25 .. 4 and k = {k}: {type(exc).__name__}: {exc}") from exc
    for r, out in samples.items():
        if not isinstance(out, tuple) or len(out) != 3 or not all(
                isinstance(v, numbers.Number) and np.isfinite(v) for v in out):
            raise ValueError(f"{where} must return three finite numbers (g, dg/dr, d2g/dr2); "
                             f"at r = {r} it returned {out!r}")
        if value == np.float64 and any(isinstance(v, complex) for v in out):
            raise ValueError(f"{where} returned complex values at r = {r}; register the "
                             f"kernel with is_complex=True")
    for r in (0.5, 1.0, 2.0):
        h = 1e-5 * r
        lo, hi = compiled(r - h, k), compiled(r + h, k)
        for d in (0, 1):
            slope = (hi[d] - lo[d]) / (2 * h)
            scale = max(abs(samples[r][d + 1]), abs(samples[r][d]) / r, 1e-300)
            if abs(slope - samples[r][d + 1]) > 1e-4 * scale:
                what = ("dg/dr", "d2g/dr2")[d]
                raise ValueError(f"{where}: its {what} at r = {r} is {samples[r][d + 1]!r}, "
                                 f"but the difference quotient of its values gives {slope!r}")
