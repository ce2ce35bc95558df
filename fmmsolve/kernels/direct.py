"""The exact O(N M) sum, the reference every accuracy test trusts.

Targets are split into fixed-size chunks processed in parallel (``prange``); each chunk runs the
kernel's serial block function over all sources, whose coordinates are structure-of-arrays so
the inner loop vectorises.
"""

from __future__ import annotations

import functools

import numpy as np

from .._jit import bind, prange
from .._validation import (as_densities, as_dipoles, as_points, check_columns, check_flag,
                           resolve_real_dtype)
from . import dipole, get_kernel
from .stokes import STOKES
from .stresslet import stresslet_sums

__all__ = ["direct"]

_CHUNK = 64  # targets per parallel task: small enough to balance, large enough to amortise


# Placeholders: the templates below read these globals; `_compiled` binds them to a kernel.
p2p = p2p_gradient = None


def _direct_potential(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot):
    n_chunks = (tx.shape[0] + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        a = c * _CHUNK
        b = min(tx.shape[0], a + _CHUNK)
        p2p(sx, sy, sz, charges, tx[a:b], ty[a:b], tz[a:b], wavenumber, pot[:, a:b])


def _direct_gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    n_chunks = (tx.shape[0] + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        a = c * _CHUNK
        b = min(tx.shape[0], a + _CHUNK)
        p2p_gradient(
            sx, sy, sz, charges, tx[a:b], ty[a:b], tz[a:b], wavenumber,
            pot[:, a:b], gx[:, a:b], gy[:, a:b], gz[:, a:b],
        )


@functools.lru_cache(maxsize=None)
def _compiled(kernel, dipoles=False):
    """(potential, gradient) direct sums compiled for the charges (or dipoles) of ``kernel``."""
    blocks = dipole.blocks(kernel) if dipoles else kernel
    bindings = {"p2p": blocks.p2p, "p2p_gradient": blocks.p2p_gradient}
    if dipoles:  # `radial` too, for the source stamp (see fmmsolve._jit.bind)
        bindings["radial"] = kernel.radial
    suffix = f"{kernel.tag}_dipole" if dipoles else kernel.tag
    return tuple(bind(t, suffix, bindings, parallel=True)
                 for t in (_direct_potential, _direct_gradient))


def direct(sources, targets, charges=None, *, dipoles=None, kernel="laplace", wavenumber=None,
           gradient=False, dtype=None, viscosity=None, pressure=False, stresslets=None,
           normals=None):
    """Exact potentials (and gradients),
    phi(y_i) = sum_j G(y_i, x_j) q_j + grad_x G(y_i, x_j) . d_j.

    Pairs with y_i == x_j (zero distance) are skipped, so ``targets=None`` gives the
    self-interaction without the singular diagonal.

    Parameters
    ----------
    sources : array_like of shape (n_sources, 3)
        Source points x_j.
    targets : array_like of shape (n_targets, 3) or None
        Target points y_i; None means the sources themselves.
    charges : array_like of shape (n_sources,) or (n_sources, m), or None
        Densities q_j; with m columns, m sums are computed. For a kernel of C > 1 components
        (:attr:`~fmmsolve.kernels.Kernel.components`): (n_sources, C) or (n_sources, m, C).
    dipoles : array_like of shape (n_sources, 3) or (n_sources, m, 3), or None
        Dipole (double-layer) densities d_j, alone or with the charges (then with the same
        columns); the gradient is taken with respect to the source point x_j.
    kernel : str, default "laplace"
        A name from :data:`fmmsolve.kernels.KERNEL_NAMES`, or of a registered kernel.
    wavenumber : scalar or None
        Required by kernels with a wavenumber; must be None for ``"laplace"``.
    gradient : bool, default False
        Also return the gradient with respect to the target point.
    dtype : None, np.float32 or np.float64
        Working precision; None picks float32 only if every input is float32.
    viscosity : float or None
        The dynamic viscosity ``mu > 0`` of the ``"stokes"`` kernel (required by it); None for
        every other kernel.
    pressure : bool, default False
        The ``"stokes"`` kernel only: also return the pressure of the forces,
        ``p(y_i) = sum_j (y_i - x_j) . f_j / (4 pi |y_i - x_j|^3)``, whatever the viscosity
        (and of the stresslets, proportional to it).
    stresslets, normals : array_like of shape (n_sources, 3) or (n_sources, m, 3), and
        (n_sources, 3), or None
        The ``"stokes"`` kernel only: double-layer strengths s_j and the normals n_j they go
        with, alone or with forces ``charges`` (then of the same columns): the stresslet
        ``u_i = sum_j T_ikl s_jk n_jl``,
        computed in float64 (:mod:`fmmsolve.kernels.stresslet` states its sign and pressure).

    Returns
    -------
    pot : ndarray of shape (n_targets,) or (n_targets, m)
        Potentials in the kernel's value dtype for ``dtype``; for C > 1 components,
        (n_targets, C) or (n_targets, m, C).
    grad : ndarray of shape (n_targets, 3) or (n_targets, m, 3)
        Only when ``gradient=True``: d phi / d y; for C > 1 components, (n_targets, C, 3) or
        (n_targets, m, C, 3).
    p : ndarray of shape (n_targets,) or (n_targets, m)
        Only when ``pressure=True``; last.
    """
    kern = get_kernel(kernel)
    if stresslets is not None or normals is not None:
        return _with_stresslets(kern, sources, targets, charges, stresslets, normals,
                                dict(dipoles=dipoles, wavenumber=wavenumber, gradient=gradient,
                                     dtype=dtype, viscosity=viscosity, pressure=pressure))
    k = kern.check_wavenumber(wavenumber)
    factor = kern.viscosity_factor(viscosity)
    gradient = check_flag(gradient, "gradient")
    if check_flag(pressure, "pressure") and not kern.pressure:
        raise ValueError(f"pressure=True: the {kern.name!r} kernel has no pressure")
    check_columns(charges, dipoles)
    real = resolve_real_dtype(dtype, sources, targets, charges, dipoles)
    value = kern.value_dtype(real)
    src = as_points(sources, "sources", real)
    tgt = src if targets is None else as_points(targets, "targets", real)
    n, c = src.shape[0], kern.components
    if c > 1 and dipoles is not None:
        raise ValueError(f"dipoles: the {kern.name!r} kernel has {c} components; dipole "
                         f"densities are defined for kernels from a radial profile only")
    q = None if charges is None else as_densities(charges, n, "charges", value, c)
    d = None if dipoles is None else as_dipoles(dipoles, n, "dipoles", value)

    s_soa = np.ascontiguousarray(src.T)
    t_soa = s_soa if targets is None else np.ascontiguousarray(tgt.T)
    one_column = (q.ndim == 1 + (c > 1)) if q is not None else (d.ndim == 2)
    m = 1 if one_column else (q if q is not None else d).shape[1]
    n_t = t_soa.shape[1]
    pot = np.zeros((m * c, n_t), dtype=value)
    # (3, m c, n_t): each component a C-contiguous (m c, n_t) block whatever m, so the
    # gradient sum is compiled for one layout, not for one (m == 1) and another (m > 1).
    grad = np.zeros((3, m * c, n_t), dtype=value) if gradient else None
    # The block functions' layouts: (m c, n_sources) charges, (3 m, n_sources) dipoles.
    for rows, dipole_rows in ((q, False), (d, True)):
        if rows is None:
            continue
        rows = np.ascontiguousarray(rows.reshape(n, -1).T)
        potential_sum, gradient_sum = _compiled(kern, dipole_rows)
        if gradient:
            gradient_sum(*s_soa, rows, *t_soa, k, pot, *grad)
        else:
            potential_sum(*s_soa, rows, *t_soa, k, pot)

    if factor != 1.0:
        pot *= factor
        if grad is not None:
            grad *= factor
    if c > 1:  # (n_t, m, c) and (n_t, m, c, 3), without m for one column
        shape = (n_t, c) if one_column else (n_t, m, c)
        pot = np.ascontiguousarray(pot.T).reshape(shape)
        grad = None if grad is None else np.ascontiguousarray(
            grad.transpose(2, 1, 0)).reshape(*shape, 3)
    elif one_column:
        pot = pot[0]
        grad = None if grad is None else np.ascontiguousarray(grad[:, 0].T)
    else:
        pot = np.ascontiguousarray(pot.T)
        grad = None if grad is None else np.ascontiguousarray(grad.transpose(2, 1, 0))
    out = (pot, grad) if gradient else (pot,)
    if pressure:  # p = -div (phi_0, phi_1, phi_2), phi_a the Laplace sums of the forces' f_a
        dphi = direct(sources, targets, np.reshape(q, (n, -1)), gradient=True,
                      dtype=real)[1].reshape(n_t, m, c, 3)
        p = -np.trace(dphi, axis1=2, axis2=3)
        out += (p[:, 0] if one_column else p,)
    return out if len(out) > 1 else out[0]


def _with_stresslets(kern, sources, targets, forces, stresslets, normals, options):
    """:func:`direct` with stresslets: the forces' sums (if any) plus the stresslets'."""
    if kern.key != STOKES.key:
        raise ValueError(f"stresslets: the {kern.name!r} kernel has no stresslet (the "
                         f"'stokes' kernel has)")
    if stresslets is None or normals is None:
        raise ValueError("stresslets and normals go together: give both")
    if options["dipoles"] is not None:
        raise ValueError(f"dipoles: the {kern.name!r} kernel has 3 components; dipole "
                         f"densities are defined for kernels from a radial profile only")
    mu = 1.0 / kern.viscosity_factor(options["viscosity"])
    gradient = check_flag(options["gradient"], "gradient")
    pressure = check_flag(options["pressure"], "pressure")
    real = resolve_real_dtype(options["dtype"], sources, targets, forces, stresslets, normals)
    src = as_points(sources, "sources", real)
    tgt = src if targets is None else as_points(targets, "targets", real)
    n = len(src)
    s = as_densities(stresslets, n, "stresslets", real, 3)
    if np.shape(normals) != (n, 3):
        raise ValueError(f"normals must have shape ({n}, 3), got {np.shape(normals)}")
    nrm = as_points(normals, "normals", real)
    one_column = s.ndim == 2
    if forces is not None:
        shape = as_densities(forces, n, "charges", real, 3).shape
        if shape != s.shape:
            raise ValueError(f"charges (forces) of shape {shape} and stresslets of shape "
                             f"{s.shape} disagree: give them the same columns")
    out = stresslet_sums(src.astype(np.float64), tgt.astype(np.float64),
                         s.reshape(n, -1, 3).astype(np.float64), nrm.astype(np.float64), mu,
                         gradient, pressure)
    out = [None if a is None else (a[:, 0] if one_column else a).astype(real) for a in out]
    if forces is not None:  # (pot[, grad][, p]) of the forces, in the same dtype
        extra = direct(sources, targets, forces, kernel=kern,
                       **{**options, "dtype": real, "gradient": gradient, "pressure": pressure})
        extra = extra if isinstance(extra, tuple) else (extra,)
        out[0] += extra[0]
        if gradient:
            out[1] += extra[1]
        if pressure:
            out[2] += extra[-1]
    result = [out[0]] + ([out[1]] if gradient else []) + ([out[2]] if pressure else [])
    return tuple(result) if len(result) > 1 else result[0]
