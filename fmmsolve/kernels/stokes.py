"""The Stokeslet: the velocity of a point force in a viscous fluid (the Oseen tensor).

With ``d = y - x`` (target minus source), ``r = |d|`` and viscosity ``mu``,

    u_a(y) = sum_b G_ab(d) f_b,    G_ab(d) = (delta_ab / r + d_a d_b / r^3) / (8 pi mu),

a kernel of three components (:mod:`fmmsolve.kernels.pair`): a density is a force ``f`` (3
values per point), a potential a velocity ``u``. The kernel record is built for ``mu = 1``;
the viscosity divides every result afterwards (:meth:`Kernel.viscosity_factor`). Component
``a`` is the ``a``-th coordinate, odd under the reflection of axis ``a`` (parities 1, 2, 4);
G is symmetric and even, hence reciprocal, and homogeneous of degree 1 like Laplace's. The
pressure of the forces, ``p(y) = sum_j d . f_j / (4 pi r^3)``, does not depend on ``mu``; it is
minus the divergence of the Laplace potentials of the three force components, which is how
:func:`fmmsolve.direct` computes it.

The gradient with respect to the target is

    d u_a / d y_c = (-f_a d_c + delta_ac (d . f) + d_a f_c - 3 d_a d_c (d . f) / r^2)
                    / (8 pi mu r^3).

The block functions here are written for vectorisation as the Laplace ones are: one pass over
the sources per target with scalar accumulators, in unit vectors times powers of 1 / r (never
``1 / r^3`` times an offset, which overflows float32 at ``r ~ 1e-13``). The kernel has exact
sums (:func:`fmmsolve.direct`); its FMM is made of a Laplace FMM's
(:mod:`fmmsolve.engine.harmonic`). The stresslet (double layer) has exact sums here too
(:mod:`fmmsolve.kernels.stresslet`, through ``fmmsolve.direct(..., stresslets=, normals=)``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import replace

import numpy as np

from .._jit import jit
from .pair import kernel_from_pair

__all__ = ["STOKES", "pair", "p2p", "p2p_gradient", "check_viscosity", "traction"]

INV_8PI = 1.0 / (8.0 * math.pi)


@jit
def pair(dx, dy, dz, k, out):
    """The Oseen tensor at ``mu = 1`` and its target gradient (:mod:`fmmsolve.kernels.pair`)."""
    r2 = dx * dx + dy * dy + dz * dz
    inv_r = 1.0 / math.sqrt(r2)
    inv_r3 = inv_r / r2
    d = (dx, dy, dz)
    for a in range(3):
        for b in range(3):
            delta = 1.0 if a == b else 0.0
            out[0, a, b] = INV_8PI * (delta * inv_r + d[a] * d[b] * inv_r3)
            for c in range(3):
                slope = -delta * d[c] + (1.0 if a == c else 0.0) * d[b] + \
                    (1.0 if b == c else 0.0) * d[a] - 3.0 * d[a] * d[b] * d[c] / r2
                out[1 + c, a, b] = INV_8PI * slope * inv_r3


# One column and several columns are separate loops, as for Laplace: the one-column loop keeps
# its sums in registers, the other computes each pair's geometry once for all columns.
@jit
def _velocity_one_column(sx, sy, sz, fx, fy, fz, tx, ty, tz, ux, uy, uz):
    one, zero = ux.dtype.type(1.0), ux.dtype.type(0.0)
    scale = ux.dtype.type(INV_8PI)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        ax = zero
        ay = zero
        az = zero
        for j in range(sx.shape[0]):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            inv_r = one / math.sqrt(r2)
            if r2 == 0:  # explicit mask: no reliance on inf arithmetic
                inv_r = zero
            ex = dx * inv_r
            ey = dy * inv_r
            ez = dz * inv_r
            dot = ex * fx[j] + ey * fy[j] + ez * fz[j]
            ax += (fx[j] + ex * dot) * inv_r
            ay += (fy[j] + ey * dot) * inv_r
            az += (fz[j] + ez * dot) * inv_r
        ux[i] += ax * scale
        uy[i] += ay * scale
        uz[i] += az * scale


@jit
def _velocity_columns(sx, sy, sz, forces, tx, ty, tz, pot):
    one, zero = pot.dtype.type(1.0), pot.dtype.type(0.0)
    scale = pot.dtype.type(INV_8PI)
    ns = sx.shape[0]
    w = np.empty(ns, pot.dtype)  # 1 / r
    ex = np.empty(ns, pot.dtype)  # the unit vector d / r
    ey = np.empty(ns, pot.dtype)
    ez = np.empty(ns, pot.dtype)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        for j in range(ns):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            inv_r = one / math.sqrt(r2)
            if r2 == 0:  # explicit mask: no reliance on inf arithmetic
                inv_r = zero
            w[j] = inv_r
            ex[j] = dx * inv_r
            ey[j] = dy * inv_r
            ez[j] = dz * inv_r
        for c in range(forces.shape[0] // 3):
            fx, fy, fz = forces[3 * c], forces[3 * c + 1], forces[3 * c + 2]
            ax = zero
            ay = zero
            az = zero
            for j in range(ns):
                dot = ex[j] * fx[j] + ey[j] * fy[j] + ez[j] * fz[j]
                ax += (fx[j] + ex[j] * dot) * w[j]
                ay += (fy[j] + ey[j] * dot) * w[j]
                az += (fz[j] + ez[j] * dot) * w[j]
            pot[3 * c, i] += ax * scale
            pot[3 * c + 1, i] += ay * scale
            pot[3 * c + 2, i] += az * scale


@jit
def p2p(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot):
    """Add the velocities of the forces ``charges`` (3 m rows, row ``3 c + b`` component b of
    column c) to ``pot`` (3 m rows), at ``mu = 1``: see :mod:`fmmsolve.kernels._kernel`."""
    if charges.shape[0] == 3:
        _velocity_one_column(sx, sy, sz, charges[0], charges[1], charges[2], tx, ty, tz,
                             pot[0], pot[1], pot[2])
    else:
        _velocity_columns(sx, sy, sz, charges, tx, ty, tz, pot)


@jit
def _gradient_columns(sx, sy, sz, forces, tx, ty, tz, pot, gx, gy, gz):
    # One loop for any number of columns; its 12 sums per column are scalars, which is what
    # lets LLVM vectorise the inner loop over the sources.
    one, zero = pot.dtype.type(1.0), pot.dtype.type(0.0)
    scale = pot.dtype.type(INV_8PI)
    for c in range(forces.shape[0] // 3):
        fx, fy, fz = forces[3 * c], forces[3 * c + 1], forces[3 * c + 2]
        for i in range(tx.shape[0]):
            xi, yi, zi = tx[i], ty[i], tz[i]
            ux = zero
            uy = zero
            uz = zero
            gxx = zero  # d u_x / d y_x, ...
            gxy = zero
            gxz = zero
            gyx = zero
            gyy = zero
            gyz = zero
            gzx = zero
            gzy = zero
            gzz = zero
            for j in range(sx.shape[0]):
                dx = xi - sx[j]
                dy = yi - sy[j]
                dz = zi - sz[j]
                r2 = dx * dx + dy * dy + dz * dz
                inv_r = one / math.sqrt(r2)
                if r2 == 0:  # explicit mask: no reliance on inf arithmetic
                    inv_r = zero
                # unit vectors; min(., 1), a no-op on them, keeps fast-math reassociation from
                # forming 1 / r^3 (see the Laplace gradient)
                ex = min(dx * inv_r, one)
                ey = min(dy * inv_r, one)
                ez = min(dz * inv_r, one)
                qx, qy, qz = fx[j], fy[j], fz[j]
                dot = ex * qx + ey * qy + ez * qz
                ux += (qx + ex * dot) * inv_r
                uy += (qy + ey * dot) * inv_r
                uz += (qz + ez * dot) * inv_r
                w = inv_r * inv_r
                t = 3.0 * dot
                # (-f_a e_c + delta_ac dot + e_a f_c - 3 e_a e_c dot) / r^2
                gxx += (dot - t * ex * ex) * w  # -f_a e_a and e_a f_a cancel
                gxy += (-qx * ey + ex * qy - t * ex * ey) * w
                gxz += (-qx * ez + ex * qz - t * ex * ez) * w
                gyx += (-qy * ex + ey * qx - t * ey * ex) * w
                gyy += (dot - t * ey * ey) * w  # -f_a e_a and e_a f_a cancel
                gyz += (-qy * ez + ey * qz - t * ey * ez) * w
                gzx += (-qz * ex + ez * qx - t * ez * ex) * w
                gzy += (-qz * ey + ez * qy - t * ez * ey) * w
                gzz += (dot - t * ez * ez) * w  # -f_a e_a and e_a f_a cancel
            a = 3 * c
            pot[a, i] += ux * scale
            pot[a + 1, i] += uy * scale
            pot[a + 2, i] += uz * scale
            gx[a, i] += gxx * scale
            gy[a, i] += gxy * scale
            gz[a, i] += gxz * scale
            gx[a + 1, i] += gyx * scale
            gy[a + 1, i] += gyy * scale
            gz[a + 1, i] += gyz * scale
            gx[a + 2, i] += gzx * scale
            gy[a + 2, i] += gzy * scale
            gz[a + 2, i] += gzz * scale


@jit
def p2p_gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    """As :func:`p2p`, and add the velocity gradient: ``gx[3 c + a, i]`` is d u_a / d y_x."""
    _gradient_columns(sx, sy, sz, charges, tx, ty, tz, pot, gx, gy, gz)


def traction(pressure, gradient, normals, viscosity):
    """The traction ``sigma . n`` of a Stokes flow on surfaces of normals ``n``:
    ``t_a = -p n_a + mu (du_a / dy_c + du_c / dy_a) n_c``.

    Parameters
    ----------
    pressure : array_like of shape (n,) or (n, m)
        From ``pressure=True`` (:func:`fmmsolve.direct`, ``FMMOperator.evaluate``).
    gradient : array_like of shape (n, 3, 3) or (n, m, 3, 3)
        The velocity gradient, ``gradient[..., a, c] = du_a / dy_c``, of the same viscosity.
    normals : array_like of shape (n, 3)
        One normal per point (any length: the traction is linear in it).
    viscosity : float
        The viscosity ``mu`` the gradient was computed with.

    Returns
    -------
    ndarray of shape (n, 3) or (n, m, 3)
    """
    mu = 1.0 / check_viscosity(viscosity)
    p, g, n = (np.asarray(a) for a in (pressure, gradient, normals))
    several = p.ndim == 2
    if p.ndim not in (1, 2) or g.shape != p.shape + (3, 3) or n.shape != (len(p), 3):
        raise ValueError(f"pressure (n,) or (n, m), gradient (n[, m], 3, 3) and normals (n, 3) "
                         f"must agree, got {p.shape}, {g.shape} and {n.shape}")
    nn = n[:, None, :] if several else n
    strain = g + np.swapaxes(g, -1, -2)
    return -p[..., None] * nn + mu * np.einsum("...ac,...c->...a", strain, nn)


def check_viscosity(viscosity):
    """The factor ``1 / mu`` every result of the kernel (built at ``mu = 1``) is multiplied by.

    Raises
    ------
    ValueError
        Unless ``viscosity`` is a finite real number > 0 (None is refused: a viscosity must be
        given).
    """
    if viscosity is None:
        raise ValueError("viscosity is required by the 'stokes' kernel: the fluid's dynamic "
                         "viscosity mu > 0")
    if isinstance(viscosity, bool) or not isinstance(viscosity, numbers.Real) \
            or not math.isfinite(viscosity) or viscosity <= 0:
        raise ValueError(f"viscosity must be a finite real number > 0, got {viscosity!r}")
    return 1.0 / float(viscosity)




def _stokes():
    base = kernel_from_pair("stokes", pair, 3, parities=(1, 2, 4), homogeneity=1, check=False)
    return replace(base, p2p=p2p, p2p_gradient=p2p_gradient, check_viscosity=check_viscosity,
                   pressure=True, harmonic="laplace", digest="")


STOKES = _stokes()
