"""The stresslet (Stokes double layer): exact sums, and the block functions of its near field.

With ``d = y - x`` (target minus source), ``r = |d|``, ``e = d / r``, strengths ``s_j`` and
normals ``n_j``,

    u_i(y) = sum_j T_ikl(d) s_jk n_jl,   T_ikl(d) = -3 d_i d_k d_l / (4 pi r^5),
    p(y) = mu sum_j (s_j . n_j - 3 (e . s_j)(e . n_j)) / (2 pi r^3),
    du_i / dy_c = -3 (delta_ic (e.s)(e.n) + s_c e_i (e.n) + n_c e_i (e.s)
                      - 5 e_i e_c (e.s)(e.n)) / (4 pi r^3).

The sign: with outward normals on a closed surface and a constant ``s``, the velocity is ``s``
inside and 0 outside. The velocity does not depend on the viscosity; the pressure is
proportional to it. The FMM (:mod:`fmmsolve.engine.harmonic`) computes the far field from
Laplace dipoles and takes its near field from :data:`NEAR` and :data:`NEAR_PRESSURE`, kernel
records of the Stokes kernel's shape whose densities are ``3 + 3 m`` rows per source: the normal,
then the strengths of the m columns. One loop serves every output: it is the oracle and a near
field, not the hot path of a Laplace-speed FMM.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .._jit import jit, prange
from .stokes import STOKES

__all__ = ["stresslet_sums", "NEAR", "NEAR_PRESSURE"]

INV_4PI = 1.0 / (4.0 * math.pi)


@jit
def _block(sx, sy, sz, strengths, normals, tx, ty, tz, t0, t1, mu, u, gx, gy, gz, p):
    """At the targets ``t0:t1``, add the stresslet sums of ``strengths`` (3 m, n_s; row
    3 c + k) with ``normals`` (3, n_s) to ``u`` (3 m, n_t; or (0, 0) for none), the gradient
    ``gx, gy, gz`` (each (3 m, n_t), or (0, 0)) and the pressure ``p`` (m, n_t, or (0, 0));
    zero-distance pairs are skipped."""
    m = strengths.shape[0] // 3
    vel, grad, press = u.shape[0] > 0, gx.shape[0] > 0, p.shape[0] > 0
    for i in range(t0, t1):
        for j in range(sx.shape[0]):
            dx, dy, dz = float(tx[i] - sx[j]), float(ty[i] - sy[j]), float(tz[i] - sz[j])
            r2 = dx * dx + dy * dy + dz * dz
            if r2 == 0:  # explicit mask: no reliance on inf arithmetic
                continue
            inv_r = 1.0 / math.sqrt(r2)
            e = (dx * inv_r, dy * inv_r, dz * inv_r)
            nv = (float(normals[0, j]), float(normals[1, j]), float(normals[2, j]))
            en = e[0] * nv[0] + e[1] * nv[1] + e[2] * nv[2]
            inv_r3 = inv_r * inv_r * inv_r
            for c in range(m):
                sv = (float(strengths[3 * c, j]), float(strengths[3 * c + 1, j]),
                      float(strengths[3 * c + 2, j]))
                es = e[0] * sv[0] + e[1] * sv[1] + e[2] * sv[2]
                if vel:
                    w = -3.0 * INV_4PI * inv_r * inv_r * es * en
                    for a in range(3):
                        u[3 * c + a, i] += w * e[a]
                if press:
                    sn = sv[0] * nv[0] + sv[1] * nv[1] + sv[2] * nv[2]
                    p[c, i] += mu * 2.0 * INV_4PI * inv_r3 * (sn - 3.0 * es * en)
                if grad:
                    g = -3.0 * INV_4PI * inv_r3
                    diag = g * es * en
                    for a in range(3):
                        tail = -5.0 * g * e[a] * es * en
                        ga = g * e[a] * en
                        gb = g * e[a] * es
                        gx[3 * c + a, i] += ga * sv[0] + gb * nv[0] + tail * e[0] + \
                            (diag if a == 0 else 0.0)
                        gy[3 * c + a, i] += ga * sv[1] + gb * nv[1] + tail * e[1] + \
                            (diag if a == 1 else 0.0)
                        gz[3 * c + a, i] += ga * sv[2] + gb * nv[2] + tail * e[2] + \
                            (diag if a == 2 else 0.0)


@jit(parallel=True)
def _sums(sx, sy, sz, strengths, normals, tx, ty, tz, mu, u, gx, gy, gz, p):
    """:func:`_block` over all targets, one target per iteration."""
    for i in prange(tx.shape[0]):
        _block(sx, sy, sz, strengths, normals, tx, ty, tz, i, i + 1, mu, u, gx, gy, gz, p)


def stresslet_sums(sources, targets, strengths, normals, viscosity, gradient=False,
                   pressure=False):
    """The stresslet's exact sums (float64; see the module docstring).

    Parameters
    ----------
    sources, targets : ndarray of shape (n_s, 3) and (n_t, 3)
    strengths : ndarray of shape (n_s, m, 3)
    normals : ndarray of shape (n_s, 3)
    viscosity : float
        Already checked.
    gradient, pressure : bool

    Returns
    -------
    u : ndarray of shape (n_t, m, 3)
    grad : ndarray of shape (n_t, m, 3, 3) or None
        ``grad[..., a, c] = du_a / dy_c``.
    p : ndarray of shape (n_t, m) or None
    """
    n_t, m = len(targets), strengths.shape[1]
    s, t = (np.ascontiguousarray(a.T, dtype=np.float64) for a in (sources, targets))
    rows = np.ascontiguousarray(strengths.reshape(len(sources), 3 * m).T, dtype=np.float64)
    nrm = np.ascontiguousarray(normals.T, dtype=np.float64)
    u = np.zeros((3 * m, n_t))
    g = [np.zeros((3 * m, n_t) if gradient else (0, 0)) for _ in range(3)]
    p = np.zeros((m, n_t) if pressure else (0, 0))
    _sums(*s, rows, nrm, *t, float(viscosity), u, *g, p)
    grad = None
    if gradient:  # (3 m, n_t) each -> (n_t, m, 3, 3)
        grad = np.stack(g, axis=0).reshape(3, m, 3, n_t).transpose(3, 1, 2, 0)
    return u.reshape(m, 3, n_t).transpose(2, 0, 1), grad, p.T if pressure else None


# Block functions of the FMM's near field, at viscosity 1: densities (3 + 3 m, n_s), the normal
# then the m columns' strengths (see the module docstring).
@jit
def _near_velocity(sx, sy, sz, q, tx, ty, tz, wavenumber, pot):
    none = np.zeros((0, 0), pot.dtype)
    _block(sx, sy, sz, q[3:], q[:3], tx, ty, tz, 0, tx.shape[0], 1.0, pot, none, none, none,
           none)


@jit
def _near_gradient(sx, sy, sz, q, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    none = np.zeros((0, 0), pot.dtype)
    _block(sx, sy, sz, q[3:], q[:3], tx, ty, tz, 0, tx.shape[0], 1.0, pot, gx, gy, gz, none)


@jit
def _near_pressure(sx, sy, sz, q, tx, ty, tz, wavenumber, pot):
    none = np.zeros((0, 0), pot.dtype)
    _block(sx, sy, sz, q[3:], q[:3], tx, ty, tz, 0, tx.shape[0], 1.0, none, none, none, none,
           pot)


#: The near field's velocity (and gradient) as a kernel record for the compiled translations
#: (:func:`fmmsolve.operators.translations.for_kernel`); not a registered kernel.
NEAR = replace(STOKES, name="stokes_stresslet", p2p=_near_velocity, p2p_gradient=_near_gradient,
               digest="")
#: The near field's pressure (one row per column; viscosity 1).
NEAR_PRESSURE = replace(STOKES, name="stokes_stresslet_pressure", p2p=_near_pressure,
                        p2p_gradient=_near_gradient, digest="")
