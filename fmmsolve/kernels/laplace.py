"""The Laplace kernel G(x, y) = 1 / (4 pi |x - y|), with zero-distance pairs skipped.

Laplace is scale invariant: G(s x, s y) = G(x, y) / s. The gradient is taken with respect to
the target y: grad_y G = -(y - x) / (4 pi |y - x|^3).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit
from ._kernel import Kernel

__all__ = ["LAPLACE", "p2p", "p2p_gradient", "matrix"]

INV_4PI = 1.0 / (4.0 * math.pi)


@jit
def p2p(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot):
    """Add sum_j G(t_i, s_j) q_cj to ``pot[c, i]`` (see :mod:`fmmsolve.kernels._kernel`)."""
    one, zero = pot.dtype.type(1.0), pot.dtype.type(0.0)  # typed: a bare 0 would promote float32
    scale = pot.dtype.type(INV_4PI)
    m, ns = charges.shape
    if m == 1:  # one column: a single fused loop, the fastest form
        q = charges[0]
        for i in range(tx.shape[0]):
            xi, yi, zi = tx[i], ty[i], tz[i]
            acc = zero
            for j in range(ns):
                dx = xi - sx[j]
                dy = yi - sy[j]
                dz = zi - sz[j]
                r2 = dx * dx + dy * dy + dz * dz
                inv_r = one / math.sqrt(r2)
                if r2 == 0:  # explicit mask: no reliance on inf arithmetic
                    inv_r = zero
                acc += q[j] * inv_r
            pot[0, i] += acc * scale
        return
    # Several columns: 1/r once per pair into a buffer, then one dot product per column.
    w = np.empty(ns, pot.dtype)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        for j in range(ns):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            inv_r = one / math.sqrt(r2)
            if r2 == 0:
                inv_r = zero
            w[j] = inv_r
        for c in range(m):
            q = charges[c]
            acc = zero
            for j in range(ns):
                acc += q[j] * w[j]
            pot[c, i] += acc * scale


@jit
def p2p_gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    """Add the potential and its gradient with respect to the target to ``pot, gx, gy, gz``."""
    one, zero = pot.dtype.type(1.0), pot.dtype.type(0.0)  # typed: a bare 0 would promote float32
    scale = pot.dtype.type(INV_4PI)
    m, ns = charges.shape
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
            if r2 == 0:
                inv_r = zero
            inv_r3 = inv_r * inv_r * inv_r
            w[j] = inv_r
            wx[j] = -dx * inv_r3
            wy[j] = -dy * inv_r3
            wz[j] = -dz * inv_r3
        for c in range(m):
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


def matrix(targets, sources, wavenumber=None):
    """Dense float64 matrix G(t_i, s_j) of shape (n_t, n_s), zero where t_i == s_j."""
    d = targets[:, None, :] - sources[None, :, :]
    r = np.sqrt(np.einsum("tsk,tsk->ts", d, d))
    return np.divide(INV_4PI, r, out=np.zeros_like(r), where=r > 0)


def _check_wavenumber(wavenumber):
    if wavenumber is not None:
        raise ValueError("wavenumber must be None for the 'laplace' kernel (it has none)")
    return 0.0


LAPLACE = Kernel(
    name="laplace",
    is_complex=False,
    needs_wavenumber=False,
    scale_invariant=True,
    p2p=p2p,
    p2p_gradient=p2p_gradient,
    check_wavenumber=_check_wavenumber,
    matrix=matrix,
)
