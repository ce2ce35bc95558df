"""Kernels built from a pair function: the contract of a kernel with components.

A kernel of ``C`` components maps a source's ``C`` density values to ``C`` potential values at
a target through a ``C x C`` matrix ``G(x - y)`` (a tensor kernel: Stokes' Oseen tensor has
``C = 3``). It is given by one plain, Numba-compilable function::

    pair(dx, dy, dz, k, out)

called only with ``(dx, dy, dz) = target - source != 0`` (float64) and the kernel's parameter
``k`` (as for a profile, :mod:`fmmsolve.kernels.profile`). It writes ``out``, a (4, C, C)
float64 array (complex128 for a complex kernel): ``out[0, a, b]`` is ``G_ab``, the potential
component ``a`` of a unit density in component ``b``, and ``out[1 + d, a, b]`` its derivative
with respect to the target's coordinate ``d``. Derived from it here, once:

* the block functions of :mod:`fmmsolve.kernels._kernel`, with densities of ``m C`` rows (row
  ``C c + b`` holds component ``b`` of column ``c``) and potentials likewise, which also make
  the direct sum, the test oracle;
* ``matrix``, the dense matrix the translation operators are computed from, of shape
  ``(C n_t, C n_s)`` and *component-major*: entry ``(a n_t + i, b n_s + j)`` is
  ``G_ab(t_i - s_j)``. Expansions are laid out the same way: ``C`` blocks of one value per
  surface point.

The operators use the cube's reflection symmetry (:mod:`fmmsolve.operators.plan`), so a pair
function must declare how its components behave under the reflection of an axis: component
``a`` changes sign under the reflections in ``parities[a]`` (a bit mask of axes: bit ``d`` for
axis ``d``), and ``G(R x) = S G(x) S`` with ``S`` those signs. For three independent scalar
kernels every mask is 0; for a vector-valued kernel such as Stokes', component ``a`` is the
``a``-th coordinate, mask ``1 << a``. A pair kernel must also be reciprocal,
``G(x - y)^T = G(y - x)``: the transpose of an operator is then the operator with sources and
targets swapped. Registration checks both, and the derivatives, at sample points.

Pair functions have no dipole sums (a double layer of a tensor kernel is another kernel) and no
flat-patch self-integral; the digest is computed as for a profile.
"""

from __future__ import annotations

import math
import numbers

import numba
import numpy as np

from .._jit import bind, prange
from ._kernel import Kernel
from .profile import check_options, compiled_function, definition_digest, wavenumber_check

__all__ = ["kernel_from_pair", "check_pair", "MAX_COMPONENTS"]

#: Most components a pair kernel may have (the operators' sizes grow as its square).
MAX_COMPONENTS = 9

# Placeholders: the templates read these globals; `kernel_from_pair` binds them.
pair = sums = None
C = 1
VALUE = np.float64


def _sums(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz, gradient):
    """The potentials and, with ``gradient``, the gradients of both block functions below
    (without it ``gx, gy, gz`` are not touched)."""
    g = np.zeros((4, C, C), VALUE)
    m = pot.shape[0] // C
    for i in range(tx.shape[0]):
        for j in range(sx.shape[0]):
            dx = float(tx[i] - sx[j])
            dy = float(ty[i] - sy[j])
            dz = float(tz[i] - sz[j])
            if dx * dx + dy * dy + dz * dz == 0:  # explicit mask: pair is never called at 0
                continue
            pair(dx, dy, dz, wavenumber, g)
            for c in range(m):
                for a in range(C):
                    row = C * c + a
                    for b in range(C):
                        q = charges[C * c + b, j]
                        pot[row, i] += g[0, a, b] * q
                        if gradient:
                            gx[row, i] += g[1, a, b] * q
                            gy[row, i] += g[2, a, b] * q
                            gz[row, i] += g[3, a, b] * q


def _potential(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot):
    sums(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, pot, pot, pot, False)


def _gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    sums(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz, True)


def _fill_matrix(targets, sources, wavenumber, out):
    n_t, n_s = targets.shape[0], sources.shape[0]
    for i in prange(n_t):
        g = np.zeros((4, C, C), VALUE)
        for j in range(n_s):
            dx = targets[i, 0] - sources[j, 0]
            dy = targets[i, 1] - sources[j, 1]
            dz = targets[i, 2] - sources[j, 2]
            if dx * dx + dy * dy + dz * dz > 0:
                pair(dx, dy, dz, wavenumber, g)
                for a in range(C):
                    for b in range(C):
                        out[a * n_t + i, b * n_s + j] = g[0, a, b]


def kernel_from_pair(name, pair_function, components, *, parities=None, wavenumber=False,
                     is_complex=False, homogeneity=None, decay=0.0, check=True) -> Kernel:
    """A :class:`~fmmsolve.kernels._kernel.Kernel` of ``components`` components derived from a
    pair function (see the module docstring and :func:`fmmsolve.register_kernel`). The function
    is compiled and checked here: finite values, derivatives that match difference quotients,
    reciprocity and the declared ``parities`` (default: 0 for every component). A built-in
    kernel passes ``check=False``: importing fmmsolve compiles nothing (its tests run
    :func:`check_pair`)."""
    if isinstance(components, bool) or not isinstance(components, numbers.Integral) \
            or not 1 <= components <= MAX_COMPONENTS:
        raise ValueError(f"components must be an integer in [1, {MAX_COMPONENTS}], "
                         f"got {components!r}")
    components = int(components)
    if parities is None:
        parities = (0,) * components
    if not isinstance(parities, (tuple, list)) or len(parities) != components or any(
            isinstance(p, bool) or not isinstance(p, numbers.Integral) or not 0 <= p <= 7
            for p in parities):
        raise ValueError(f"parities must hold one axis mask in 0..7 per component "
                         f"({components}), got {parities!r}")
    parities = tuple(int(p) for p in parities)
    properties = check_options(name, wavenumber, is_complex, homogeneity, decay)
    properties.update(components=components, parities=parities)
    compiled = compiled_function(pair_function, "pair", "(dx, dy, dz, k, out) writing G and "
                                 "its target gradient into out[0:4]")
    digest = definition_digest(name, getattr(compiled, "py_func", compiled), properties)
    tag = f"{name}_{digest[:10]}"
    value = np.complex128 if properties["is_complex"] else np.float64
    bindings = {"pair": compiled, "C": components, "VALUE": value}
    sums = {"sums": bind(_sums, tag, bindings)}
    p2p = bind(_potential, tag, sums)
    p2p_gradient = bind(_gradient, tag, sums)
    fill = bind(_fill_matrix, tag, bindings, parallel=True)
    check_wavenumber = wavenumber_check(name, properties["wavenumber"],
                                        properties["is_complex"])

    def matrix(targets, sources, k):
        t = np.ascontiguousarray(targets, np.float64)
        s = np.ascontiguousarray(sources, np.float64)
        out = np.zeros((components * len(t), components * len(s)), value)
        k = (complex(k) if properties["is_complex"] else float(k)) \
            if properties["wavenumber"] else 0.0
        fill(t, s, k, out)
        return out

    if check:
        check_pair(name, compiled, components, parities, value,
                   1.0 if properties["wavenumber"] else 0.0)
    return Kernel(name=name, is_complex=properties["is_complex"],
                  needs_wavenumber=properties["wavenumber"],
                  scale_invariant=homogeneity is not None and not properties["wavenumber"],
                  p2p=p2p, p2p_gradient=p2p_gradient, check_wavenumber=check_wavenumber,
                  matrix=matrix, radial=None, decay=lambda k: properties["decay"],
                  homogeneity=properties["homogeneity"], digest=digest, measured=False,
                  components=components, parities=parities)


# Sample offsets of the checks: no two related by a reflection or by a sign, so every symmetry
# is tested on values it does not hold trivially.
_SAMPLES = np.array([[0.3, 0.5, 0.7], [1.1, -0.4, 0.2], [-0.6, 1.3, -0.9], [2.0, 0.7, -1.7]])


def check_pair(name, compiled, components, parities, value, k):
    """Raise ValueError unless ``compiled`` writes finite values of type ``value`` whose
    gradients agree with central differences (relative 1e-4), and that are reciprocal and
    transform under the axis reflections as ``parities`` declares (relative 1e-10)."""
    where = f"the pair function of kernel {name!r}"
    # a copy with bounds checks: an index beyond (4, C, C) raises here instead of writing
    # past the buffer of the compiled sums
    compiled = numba.njit(boundscheck=True, cache=False)(getattr(compiled, "py_func",
                                                                 compiled))

    def call(d):
        out = np.zeros((4, components, components), value)
        compiled(float(d[0]), float(d[1]), float(d[2]), k, out)
        return out

    try:
        values = [call(d) for d in _SAMPLES]
    except Exception as exc:  # any failure to compile or run is the user's
        raise ValueError(f"{where} could not be compiled or called as pair(dx, dy, dz, k, out) "
                         f"with out of shape (4, {components}, {components}) and dtype "
                         f"{np.dtype(value)}: {type(exc).__name__}: {exc}") from exc
    signs = 1.0 - 2.0 * np.array([[bin(s & p).count("1") % 2 for p in parities]
                                  for s in range(8)])
    for d, out in zip(_SAMPLES, values):
        scale = max(np.abs(out).max(), 1e-300)
        if not np.isfinite(out).all():
            raise ValueError(f"{where} wrote non-finite values at offset {d.tolist()}")
        h = 1e-5 * np.linalg.norm(d)
        for axis in range(3):
            step = np.eye(3)[axis] * h
            slope = (call(d + step)[0] - call(d - step)[0]) / (2 * h)
            if np.abs(slope - out[1 + axis]).max() > 1e-4 * scale / math.sqrt(d @ d) + 1e-4 * \
                    np.abs(out[1 + axis]).max():
                raise ValueError(f"{where}: its derivative along axis {axis} at offset "
                                 f"{d.tolist()} disagrees with the difference quotient of its "
                                 f"values (out[{1 + axis}] must be dG/dx_{axis} at the target)")
        if np.abs(call(-d)[0] - out[0].T).max() > 1e-10 * scale:
            raise ValueError(f"{where} is not reciprocal: G(-d) must equal G(d)^T "
                             f"(at d = {d.tolist()})")
        for s in range(1, 8):
            flip = np.where([(s >> axis) & 1 for axis in range(3)], -1.0, 1.0)
            expected = signs[s][:, None] * out[0] * signs[s][None, :]
            if np.abs(call(flip * d)[0] - expected).max() > 1e-10 * scale:
                raise ValueError(f"{where} does not transform as parities={parities} says "
                                 f"under the reflection of axes mask {s}: G(R d) must equal "
                                 f"S G(d) S, S the components' signs (at d = {d.tolist()})")
