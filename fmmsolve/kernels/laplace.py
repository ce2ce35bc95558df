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
    """Add sum_j G(t_i, s_j) q_j to ``pot[i]`` (see :mod:`fmmsolve.kernels._kernel`)."""
    one, zero = pot.dtype.type(1.0), pot.dtype.type(0.0)  # typed: a bare 0 would promote float32
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
            acc += charges[j] * inv_r
        pot[i] += acc * scale


@jit
def p2p_gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    """Add the potential and its gradient with respect to the target to ``pot, gx, gy, gz``."""
    one, zero = pot.dtype.type(1.0), pot.dtype.type(0.0)  # typed: a bare 0 would promote float32
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
            if r2 == 0:
                inv_r = zero
            q_r = charges[j] * inv_r
            q_r3 = q_r * inv_r * inv_r
            acc += q_r
            ax -= q_r3 * dx
            ay -= q_r3 * dy
            az -= q_r3 * dz
        pot[i] += acc * scale
        gx[i] += ax * scale
        gy[i] += ay * scale
        gz[i] += az * scale


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
