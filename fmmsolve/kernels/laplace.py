"""The Laplace kernel G(x, y) = 1 / (4 pi |x - y|), with zero-distance pairs skipped.

Laplace is scale invariant: G(s x, s y) = G(x, y) / s. The gradient is taken with respect to
the target y: grad_y G = -(y - x) / (4 pi |y - x|^3).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit
from ._kernel import Kernel, inverse_distance_matrix

__all__ = ["LAPLACE", "p2p", "p2p_gradient", "radial", "matrix"]

INV_4PI = 1.0 / (4.0 * math.pi)


# One column and several columns are separate compiled functions: a one-column loop nested
# under a branch of the multi-column function lost its float32 vectorisation (25x slower).
# The pair geometry is written out in each loop on purpose: through a shared inline helper
# the gradient loops stopped vectorising (4x slower).
@jit
def _potential_one_column(sx, sy, sz, q, tx, ty, tz, pot):
    one, zero = pot.dtype.type(1.0), pot.dtype.type(0.0)  # typed: 0 would promote float32
    scale = pot.dtype.type(INV_4PI)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        acc = zero
        for j in range(sx.shape[0]):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            inv_r = one / math.sqrt(r2)
            if r2 == 0:  # explicit mask: no reliance on inf arithmetic
                inv_r = zero
            acc += q[j] * inv_r
        pot[i] += acc * scale


@jit
def _potential_columns(sx, sy, sz, charges, tx, ty, tz, pot):
    # 1/r once per pair into a buffer, then one dot product per column
    one, zero = pot.dtype.type(1.0), pot.dtype.type(0.0)
    w = np.empty(sx.shape[0], pot.dtype)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        for j in range(sx.shape[0]):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            inv_r = one / math.sqrt(r2)
            if r2 == 0:  # explicit mask: no reliance on inf arithmetic
                inv_r = zero
            w[j] = inv_r
        for c in range(charges.shape[0]):
            q = charges[c]
            acc = zero
            for j in range(sx.shape[0]):
                acc += q[j] * w[j]
            pot[c, i] += acc * pot.dtype.type(INV_4PI)


@jit
def p2p(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot):
    """Add sum_j G(t_i, s_j) q_cj to ``pot[c, i]`` (see :mod:`fmmsolve.kernels._kernel`)."""
    if charges.shape[0] == 1:
        _potential_one_column(sx, sy, sz, charges[0], tx, ty, tz, pot[0])
    else:
        _potential_columns(sx, sy, sz, charges, tx, ty, tz, pot)


@jit
def _gradient_one_column(sx, sy, sz, q, tx, ty, tz, pot, gx, gy, gz):
    one, zero = pot.dtype.type(1.0), pot.dtype.type(0.0)
    scale = pot.dtype.type(INV_4PI)
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
            inv_r = one / math.sqrt(r2)
            if r2 == 0:  # explicit mask: no reliance on inf arithmetic
                inv_r = zero
            q_r = q[j] * inv_r
            q_r2 = q_r * inv_r
            acc += q_r
            # q / r^2 times the unit vector, never q / r^3 times the offset: 1 / r^3 overflows
            # float32 at r ~ 1e-13, where the gradient does not. min(., 1), a no-op on a unit
            # vector, keeps fast-math reassociation from multiplying the 1 / r together.
            ax -= q_r2 * min(dx * inv_r, one)
            ay -= q_r2 * min(dy * inv_r, one)
            az -= q_r2 * min(dz * inv_r, one)
        pot[i] += acc * scale
        gx[i] += ax * scale
        gy[i] += ay * scale
        gz[i] += az * scale


@jit
def _gradient_columns(sx, sy, sz, charges, tx, ty, tz, pot, gx, gy, gz):
    one, zero = pot.dtype.type(1.0), pot.dtype.type(0.0)
    scale = pot.dtype.type(INV_4PI)
    ns = sx.shape[0]
    w = np.empty(ns, pot.dtype)  # 1/r
    wx = np.empty(ns, pot.dtype)  # -(t - s)/r^3, per component
    wy = np.empty(ns, pot.dtype)
    wz = np.empty(ns, pot.dtype)
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
            inv_r2 = inv_r * inv_r  # times the unit vector (see _gradient_one_column)
            w[j] = inv_r
            wx[j] = -min(dx * inv_r, one) * inv_r2
            wy[j] = -min(dy * inv_r, one) * inv_r2
            wz[j] = -min(dz * inv_r, one) * inv_r2
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
            pot[c, i] += acc * scale
            gx[c, i] += ax * scale
            gy[c, i] += ay * scale
            gz[c, i] += az * scale


@jit
def p2p_gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    """Add the potential and its gradient with respect to the target to ``pot, gx, gy, gz``."""
    if charges.shape[0] == 1:
        _gradient_one_column(sx, sy, sz, charges[0], tx, ty, tz, pot[0], gx[0], gy[0], gz[0])
    else:
        _gradient_columns(sx, sy, sz, charges, tx, ty, tz, pot, gx, gy, gz)


@jit
def radial(r2, wavenumber):
    """Pair factors ``(G'(r) / r, (G''(r) - G'(r) / r) / r^2)`` at ``r2 = r^2``, in float64, both
    0 when ``r2 == 0``: grad_y G = f1 (y - x) and the Hessian is f2 (y - x)(y - x)^T + f1 I.
    The dipole sums of :mod:`fmmsolve.kernels.dipole` are written in these."""
    if r2 == 0:  # explicit mask: no reliance on inf arithmetic
        return 0.0, 0.0
    inv_r2 = 1.0 / r2
    g = INV_4PI * math.sqrt(inv_r2)
    return -g * inv_r2, 3.0 * g * inv_r2 * inv_r2


def matrix(targets, sources, wavenumber=None):
    """Dense float64 matrix G(t_i, s_j) of shape (n_t, n_s), zero where t_i == s_j."""
    return inverse_distance_matrix(targets, sources)[0]


def _check_wavenumber(wavenumber):
    if wavenumber is not None:
        raise ValueError("wavenumber must be None for the 'laplace' kernel (it has none)")
    return 0.0


def monopole_weight(r, wavenumber):
    """Every source counts fully in the monopole (its total charge): w = 1, w' = 0."""
    r = np.asarray(r, np.float64)
    return np.ones_like(r), np.zeros_like(r)


LAPLACE = Kernel(
    name="laplace",
    is_complex=False,
    needs_wavenumber=False,
    scale_invariant=True,
    p2p=p2p,
    p2p_gradient=p2p_gradient,
    check_wavenumber=_check_wavenumber,
    matrix=matrix,
    radial=radial,
    monopole_weight=monopole_weight,
)
