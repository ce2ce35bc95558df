"""The modified Helmholtz (Yukawa, screened Coulomb) kernel G(x, y) = exp(-k r) / (4 pi r).

``r = |x - y|`` and ``k > 0`` is real; zero-distance pairs are skipped. The kernel is real but
not scale invariant: G(s x, s y) with wavenumber k is G(x, y) with wavenumber s k, divided by s,
so translation operators depend on the tree level. The gradient is taken with respect to the
target y: grad_y G = -exp(-k r) (1 + k r) (y - x) / (4 pi r^3).

The loops follow :mod:`fmmsolve.kernels.laplace`: one-column and several-column functions are
separate, and each loop writes the pair geometry out (both keep the loops vectorised). ``exp``
is :mod:`fmmsolve.kernels._fastmath`'s, in the working precision. The dipole block functions
(:mod:`fmmsolve.kernels.dipole`) are here too: one fused loop for one column; for several, the
pair factors of a target go into a buffer and then one vectorised pass per column.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.special import spherical_in

from .._jit import jit
from ._fastmath import exp_wp
from ._kernel import Kernel, inverse_distance_matrix

__all__ = ["MODIFIED_HELMHOLTZ", "p2p", "p2p_gradient", "p2p_dipole", "p2p_dipole_gradient",
           "radial", "matrix"]

INV_4PI = 1.0 / (4.0 * math.pi)


@jit
def _potential_one_column(sx, sy, sz, q, tx, ty, tz, k, pot):
    real = pot.dtype.type
    one, zero, kk = real(1.0), real(0.0), real(k)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        acc = zero
        for j in range(sx.shape[0]):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            r = math.sqrt(r2)
            inv_r = one / r
            if r2 == 0:  # explicit mask: no reliance on inf arithmetic
                inv_r = zero
            acc += q[j] * exp_wp(-kk * r) * inv_r
        pot[i] += acc * real(INV_4PI)


@jit
def _potential_columns(sx, sy, sz, charges, tx, ty, tz, k, pot):
    real = pot.dtype.type
    one, zero, kk = real(1.0), real(0.0), real(k)
    w = np.empty(sx.shape[0], pot.dtype)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        for j in range(sx.shape[0]):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            r = math.sqrt(r2)
            inv_r = one / r
            if r2 == 0:
                inv_r = zero
            w[j] = exp_wp(-kk * r) * inv_r
        for c in range(charges.shape[0]):
            q = charges[c]
            acc = zero
            for j in range(sx.shape[0]):
                acc += q[j] * w[j]
            pot[c, i] += acc * real(INV_4PI)


@jit
def p2p(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot):
    """Add sum_j G(t_i, s_j) q_cj to ``pot[c, i]`` (see :mod:`fmmsolve.kernels._kernel`)."""
    if charges.shape[0] == 1:
        _potential_one_column(sx, sy, sz, charges[0], tx, ty, tz, wavenumber, pot[0])
    else:
        _potential_columns(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot)


@jit
def _gradient_one_column(sx, sy, sz, q, tx, ty, tz, k, pot, gx, gy, gz):
    real = pot.dtype.type
    one, zero, kk = real(1.0), real(0.0), real(k)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        acc = zero
        ax = zero
        ay = zero
        az = zero
        for j in range(sx.shape[0]):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            r = math.sqrt(r2)
            inv_r = one / r
            if r2 == 0:
                inv_r = zero
            g = q[j] * exp_wp(-kk * r) * inv_r  # q G (without 1/4pi)
            # -q dG/dr times the unit vector: -q dG/dr / r times the offset overflows float32
            # at r ~ 1e-13; min(., 1) keeps reassociation from forming it (laplace.py)
            d = g * (one + kk * r) * inv_r
            acc += g
            ax -= d * min(dx * inv_r, one)
            ay -= d * min(dy * inv_r, one)
            az -= d * min(dz * inv_r, one)
        pot[i] += acc * real(INV_4PI)
        gx[i] += ax * real(INV_4PI)
        gy[i] += ay * real(INV_4PI)
        gz[i] += az * real(INV_4PI)


@jit
def _gradient_columns(sx, sy, sz, charges, tx, ty, tz, k, pot, gx, gy, gz):
    real = pot.dtype.type
    one, zero, kk = real(1.0), real(0.0), real(k)
    ns = sx.shape[0]
    w = np.empty(ns, pot.dtype)
    wx = np.empty(ns, pot.dtype)
    wy = np.empty(ns, pot.dtype)
    wz = np.empty(ns, pot.dtype)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        for j in range(ns):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            r = math.sqrt(r2)
            inv_r = one / r
            if r2 == 0:
                inv_r = zero
            g = exp_wp(-kk * r) * inv_r
            d = g * (one + kk * r) * inv_r  # -dG/dr, times the unit vector
            w[j] = g
            wx[j] = -d * min(dx * inv_r, one)
            wy[j] = -d * min(dy * inv_r, one)
            wz[j] = -d * min(dz * inv_r, one)
        for c in range(charges.shape[0]):
            q = charges[c]
            acc = zero
            ax = zero
            ay = zero
            az = zero
            for j in range(ns):
                acc += q[j] * w[j]
                ax += q[j] * wx[j]
                ay += q[j] * wy[j]
                az += q[j] * wz[j]
            pot[c, i] += acc * real(INV_4PI)
            gx[c, i] += ax * real(INV_4PI)
            gy[c, i] += ay * real(INV_4PI)
            gz[c, i] += az * real(INV_4PI)


@jit
def p2p_gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    """Add the potential and its gradient with respect to the target to ``pot, gx, gy, gz``."""
    if charges.shape[0] == 1:
        _gradient_one_column(sx, sy, sz, charges[0], tx, ty, tz, wavenumber, pot[0], gx[0],
                             gy[0], gz[0])
    else:
        _gradient_columns(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz)


@jit(inline="always")
def _dipole_pair(dx, dy, dz, kk, one, zero, real):
    """4 pi times G' = dG/dr, G'' - G' / r and G' / r, and the unit vector u: a dipole d adds
    -G' (u . d) to the potential, -(G'' - G'/r) (u . d) u - (G'/r) d to its gradient
    (:mod:`fmmsolve.kernels.dipole`)."""
    r2 = dx * dx + dy * dy + dz * dz
    r = math.sqrt(r2)
    inv_r = one / r
    if r2 == 0:  # explicit mask: no reliance on inf arithmetic
        inv_r = zero
    g = exp_wp(-kk * r) * inv_r
    kr = kk * r
    three = real(3.0)
    d = -g * (one + kr) * inv_r
    # min(., 1) on the unit vector: see _gradient_one_column
    return (d, g * (kr * kr + three * kr + three) * inv_r * inv_r, d * inv_r,
            min(dx * inv_r, one), min(dy * inv_r, one), min(dz * inv_r, one))


@jit(inline="always")
def _dipole_terms(f, ex, ey, ez):
    """Minus the potential and the gradient x, y, z of a dipole (ex, ey, ez) from the pair
    factors ``f`` of :func:`_dipole_pair`."""
    g, h, d, ux, uy, uz = f
    ud = ux * ex + uy * ey + uz * ez
    hd = h * ud
    return g * ud, hd * ux + d * ex, hd * uy + d * ey, hd * uz + d * ez


@jit
def _dipole_potential_one_column(sx, sy, sz, ex, ey, ez, tx, ty, tz, k, pot):
    real = pot.dtype.type
    one, zero, kk = real(1.0), real(0.0), real(k)
    for i in range(tx.shape[0]):
        acc = zero
        for j in range(sx.shape[0]):
            f = _dipole_pair(tx[i] - sx[j], ty[i] - sy[j], tz[i] - sz[j], kk, one, zero, real)
            acc += _dipole_terms(f, ex[j], ey[j], ez[j])[0]
        pot[i] -= acc * real(INV_4PI)


@jit
def _dipole_gradient_one_column(sx, sy, sz, ex, ey, ez, tx, ty, tz, k, pot, gx, gy, gz):
    real = pot.dtype.type
    one, zero, kk = real(1.0), real(0.0), real(k)
    for i in range(tx.shape[0]):
        acc = zero
        ax = zero
        ay = zero
        az = zero
        for j in range(sx.shape[0]):
            f = _dipole_pair(tx[i] - sx[j], ty[i] - sy[j], tz[i] - sz[j], kk, one, zero, real)
            t = _dipole_terms(f, ex[j], ey[j], ez[j])
            acc += t[0]
            ax += t[1]
            ay += t[2]
            az += t[3]
        pot[i] -= acc * real(INV_4PI)
        gx[i] -= ax * real(INV_4PI)
        gy[i] -= ay * real(INV_4PI)
        gz[i] -= az * real(INV_4PI)


@jit
def _dipole_columns(sx, sy, sz, dipoles, tx, ty, tz, k, pot, gx, gy, gz, gradient):
    """Several columns: per target, the pair factors into a buffer, then one pass per column
    (``gx, gy, gz`` are not touched without ``gradient``)."""
    real = pot.dtype.type
    one, zero, kk = real(1.0), real(0.0), real(k)
    ns = sx.shape[0]
    w = np.empty((6, ns), pot.dtype)
    for i in range(tx.shape[0]):
        for j in range(ns):
            f = _dipole_pair(tx[i] - sx[j], ty[i] - sy[j], tz[i] - sz[j], kk, one, zero, real)
            for a in range(6):
                w[a, j] = f[a]
        for c in range(pot.shape[0]):
            ex, ey, ez = dipoles[3 * c], dipoles[3 * c + 1], dipoles[3 * c + 2]
            acc = zero
            ax = zero
            ay = zero
            az = zero
            for j in range(ns):
                t = _dipole_terms((w[0, j], w[1, j], w[2, j], w[3, j], w[4, j], w[5, j]),
                                  ex[j], ey[j], ez[j])
                acc += t[0]
                if gradient:  # loop-invariant: LLVM unswitches or if-converts it
                    ax += t[1]
                    ay += t[2]
                    az += t[3]
            pot[c, i] -= acc * real(INV_4PI)
            if gradient:
                gx[c, i] -= ax * real(INV_4PI)
                gy[c, i] -= ay * real(INV_4PI)
                gz[c, i] -= az * real(INV_4PI)


@jit
def p2p_dipole(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot):
    """Add sum_j grad_x G(t_i, s_j) . d_cj to ``pot[c, i]``; ``dipoles`` is (3 m, n_s)."""
    if pot.shape[0] == 1:
        _dipole_potential_one_column(sx, sy, sz, dipoles[0], dipoles[1], dipoles[2], tx, ty,
                                     tz, wavenumber, pot[0])
    else:
        _dipole_columns(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot, pot, pot, pot, False)


@jit
def p2p_dipole_gradient(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    """Add the dipole potential and its gradient with respect to the target."""
    if pot.shape[0] == 1:
        _dipole_gradient_one_column(sx, sy, sz, dipoles[0], dipoles[1], dipoles[2], tx, ty,
                                    tz, wavenumber, pot[0], gx[0], gy[0], gz[0])
    else:
        _dipole_columns(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot, gx, gy, gz, True)


@jit
def radial(r2, wavenumber):
    """Pair factors ``(G'(r) / r, (G''(r) - G'(r) / r) / r^2)`` at ``r2 = r^2``, in float64, both
    0 when ``r2 == 0`` (see :func:`fmmsolve.kernels.laplace.radial`)."""
    if r2 == 0:  # explicit mask: no reliance on inf arithmetic
        return 0.0, 0.0
    r = math.sqrt(r2)
    kr = wavenumber * r
    g = math.exp(-kr) * (INV_4PI / r)
    inv_r2 = 1.0 / r2
    return -g * (1.0 + kr) * inv_r2, g * (3.0 + 3.0 * kr + kr * kr) * inv_r2 * inv_r2


def matrix(targets, sources, wavenumber):
    """Dense float64 matrix G(t_i, s_j) of shape (n_t, n_s), zero where t_i == s_j."""
    g, r = inverse_distance_matrix(targets, sources)
    return g * np.exp(-float(wavenumber) * r)


def _check_wavenumber(wavenumber):
    if isinstance(wavenumber, bool) or not isinstance(wavenumber, numbers.Real) \
            or not math.isfinite(wavenumber) or wavenumber <= 0:
        raise ValueError(f"the 'modified_helmholtz' kernel needs a real wavenumber k > 0 "
                         f"(G = exp(-k r) / (4 pi r)), got {wavenumber!r}")
    return float(wavenumber)


def monopole_weight(r, wavenumber):
    """``i0(k r)`` and ``(d/dr i0(k r)) / r = k^2 i1(k r) / (k r)``, float64 (the modified
    spherical Bessel functions of the addition theorem's l = 0 term)."""
    k = float(wavenumber)
    x = k * np.asarray(r, np.float64)
    small = x < 1e-8  # i1(x) / x -> 1 / 3
    safe = np.where(small, 1.0, x)
    i1_over_x = np.where(small, 1.0 / 3.0, spherical_in(1, safe) / safe)
    return spherical_in(0, x), k * k * i1_over_x


MODIFIED_HELMHOLTZ = Kernel(
    name="modified_helmholtz",
    is_complex=False,
    needs_wavenumber=True,
    scale_invariant=False,
    p2p=p2p,
    p2p_gradient=p2p_gradient,
    check_wavenumber=_check_wavenumber,
    matrix=matrix,
    radial=radial,
    decay=float,  # |G| r = exp(-k r)
    monopole_weight=monopole_weight,
)
