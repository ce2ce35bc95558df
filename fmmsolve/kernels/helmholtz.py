"""The Helmholtz kernel G(x, y) = exp(i k r) / (4 pi r), complex, with zero-distance pairs skipped.

``r = |x - y|``. The wavenumber k may be complex with Im k >= 0 (a lossy medium: the wave decays
like exp(-Im k r)). Densities and potentials are complex128 for float64 coordinates, complex64
for float32. The kernel is not scale invariant, so translation operators depend on the tree
level. The gradient is taken with respect to the target y:
grad_y G = exp(i k r) (i k r - 1) (y - x) / (4 pi r^3).

The loops work on real and imaginary parts separately, in the real working precision: a
complex exponential would promote float32 work to float64. ``exp``, ``sin`` and ``cos`` are the
branch-free ones of :mod:`fmmsolve.kernels._fastmath`, in the working precision, so the loops
vectorise. As in :mod:`fmmsolve.kernels.laplace`, one-column and several-column loops are
separate functions. The dipole block functions (:mod:`fmmsolve.kernels.dipole`) are here too:
one fused loop for one column; for several, the pair factors of a target go into a buffer and
then one vectorised pass per column. Densities are read as separate real and imaginary arrays
(:func:`_parts`), and a real wavenumber is passed to the loops as a float (:func:`_decay`).
"""

from __future__ import annotations

import cmath
import math
import numbers

import numpy as np
from scipy.special import spherical_jn

from numba import types
from numba.extending import overload

from .._jit import jit
from ._fastmath import exp_wp, sincos_wp
from ._kernel import Kernel, inverse_distance_matrix

__all__ = ["HELMHOLTZ", "p2p", "p2p_gradient", "p2p_dipole", "p2p_dipole_gradient", "radial",
           "matrix"]

INV_4PI = 1.0 / (4.0 * math.pi)


@jit
def _parts(z, like):
    """The real and imaginary parts of the complex (m, n) array ``z`` as two C-contiguous
    arrays of ``like``'s dtype. The loops read these: float32 loops loading complex64 values
    themselves ran 3.5x slower (LLVM's interleaved loads at 16 lanes); float64 ones did not
    care."""
    re = np.empty(z.shape, like.dtype)
    im = np.empty(z.shape, like.dtype)
    for a in range(z.shape[0]):
        for j in range(z.shape[1]):
            re[a, j] = z[a, j].real
            im[a, j] = z[a, j].imag
    return re, im


def _decay(k, r):
    """``exp(-Im(k) r)`` in the precision of ``r``; 1 for a real (float) ``k``: the block
    functions call the loops with a float k when Im k = 0, so that those compile without the
    exponential (1.5x faster)."""
    real = type(r)
    return exp_wp(-real(k.imag) * r) if isinstance(k, complex) else real(1.0)


@overload(_decay, inline="always")
def _decay_compiled(k, r):
    real = np.float32 if r == types.float32 else np.float64
    if isinstance(k, types.Complex):
        return lambda k, r: exp_wp(-real(k.imag) * r)
    one = real(1.0)
    return lambda k, r: one


@jit
def _potential_one_column(sx, sy, sz, q_re, q_im, tx, ty, tz, k, pot):
    real = sx.dtype.type
    one, zero, kr = real(1.0), real(0.0), real(k.real)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        acc_re = zero
        acc_im = zero
        for j in range(sx.shape[0]):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            r = math.sqrt(r2)
            inv_r = one / r
            if r2 == 0:  # explicit mask: no reliance on inf arithmetic
                inv_r = zero
            amp = _decay(k, r) * inv_r
            sin_kr, cos_kr = sincos_wp(kr * r)
            c = cos_kr * amp  # exp(i k r) / r = c + i s
            s = sin_kr * amp
            qr, qi = q_re[j], q_im[j]
            acc_re += qr * c - qi * s
            acc_im += qr * s + qi * c
        pot[i] += complex(acc_re * real(INV_4PI), acc_im * real(INV_4PI))


@jit
def _potential_columns(sx, sy, sz, c_re, c_im, tx, ty, tz, k, pot):
    real = sx.dtype.type
    one, zero, kr = real(1.0), real(0.0), real(k.real)
    ns = sx.shape[0]
    wc = np.empty(ns, sx.dtype)
    ws = np.empty(ns, sx.dtype)
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
            amp = _decay(k, r) * inv_r
            sin_kr, cos_kr = sincos_wp(kr * r)
            wc[j] = cos_kr * amp
            ws[j] = sin_kr * amp
        for col in range(c_re.shape[0]):
            q_re, q_im = c_re[col], c_im[col]
            acc_re = zero
            acc_im = zero
            for j in range(ns):
                qr, qi = q_re[j], q_im[j]
                acc_re += qr * wc[j] - qi * ws[j]
                acc_im += qr * ws[j] + qi * wc[j]
            pot[col, i] += complex(acc_re * real(INV_4PI), acc_im * real(INV_4PI))


@jit
def _potential(sx, sy, sz, q_re, q_im, tx, ty, tz, k, pot):
    if q_re.shape[0] == 1:
        _potential_one_column(sx, sy, sz, q_re[0], q_im[0], tx, ty, tz, k, pot[0])
    else:
        _potential_columns(sx, sy, sz, q_re, q_im, tx, ty, tz, k, pot)


@jit
def p2p(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot):
    """Add sum_j G(t_i, s_j) q_cj to ``pot[c, i]`` (see :mod:`fmmsolve.kernels._kernel`)."""
    q_re, q_im = _parts(charges, sx)
    if wavenumber.imag == 0:  # the loops for a float k skip the exponential (_decay)
        _potential(sx, sy, sz, q_re, q_im, tx, ty, tz, wavenumber.real, pot)
    else:
        _potential(sx, sy, sz, q_re, q_im, tx, ty, tz, wavenumber, pot)


@jit(inline="always")  # inlined: a call in the pair loop would stop its vectorisation
def _pair_gradient(dx, dy, dz, k, kr, ki, one, zero, real):
    """exp(i k r)/r as (c, s), the gradient factor (i k r - 1) exp(i k r) / r^2 as (gr, gi),
    the unit vector (dx, dy, dz) / r that it multiplies (the factor over r^3 times the
    offset itself would overflow float32 at r ~ 1e-13, where the gradient does not), r and
    1 / r (0 at r = 0)."""
    r2 = dx * dx + dy * dy + dz * dz
    r = math.sqrt(r2)
    inv_r = one / r
    if r2 == 0:
        inv_r = zero
    amp = _decay(k, r) * inv_r
    sin_kr, cos_kr = sincos_wp(kr * r)
    c = cos_kr * amp
    s = sin_kr * amp
    # (i k r - 1) = (-ki r - 1) + i kr r; times (c + i s), over r^2
    ar, ai = -ki * r - one, kr * r
    # min(., 1), a no-op on a unit vector, keeps fast-math reassociation from multiplying the
    # 1 / r of the factor and of the unit vector together
    return (c, s, (ar * c - ai * s) * inv_r, (ar * s + ai * c) * inv_r,
            min(dx * inv_r, one), min(dy * inv_r, one), min(dz * inv_r, one), r, inv_r)


@jit
def _gradient_one_column(sx, sy, sz, q_re, q_im, tx, ty, tz, k, pot, gx, gy, gz):
    real = sx.dtype.type
    one, zero = real(1.0), real(0.0)
    kr, ki = real(k.real), real(k.imag)
    scale = real(INV_4PI)
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        p_re = zero
        p_im = zero
        x_re = zero
        x_im = zero
        y_re = zero
        y_im = zero
        z_re = zero
        z_im = zero
        for j in range(sx.shape[0]):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            c, s, fr, fi, ux, uy, uz, _, _ = _pair_gradient(dx, dy, dz, k, kr, ki, one, zero,
                                                             real)
            qr, qi = q_re[j], q_im[j]
            p_re += qr * c - qi * s
            p_im += qr * s + qi * c
            hr = qr * fr - qi * fi  # q times the gradient factor
            hi = qr * fi + qi * fr
            x_re += hr * ux
            x_im += hi * ux
            y_re += hr * uy
            y_im += hi * uy
            z_re += hr * uz
            z_im += hi * uz
        pot[i] += complex(p_re * scale, p_im * scale)
        gx[i] += complex(x_re * scale, x_im * scale)
        gy[i] += complex(y_re * scale, y_im * scale)
        gz[i] += complex(z_re * scale, z_im * scale)


@jit
def _gradient_columns(sx, sy, sz, c_re, c_im, tx, ty, tz, k, pot, gx, gy, gz):
    real = sx.dtype.type
    one, zero = real(1.0), real(0.0)
    kr, ki = real(k.real), real(k.imag)
    scale = real(INV_4PI)
    ns = sx.shape[0]
    w = np.empty((8, ns), sx.dtype)  # c, s, then (re, im) of the gradient factor times dx, dy, dz
    for i in range(tx.shape[0]):
        xi, yi, zi = tx[i], ty[i], tz[i]
        for j in range(ns):
            dx = xi - sx[j]
            dy = yi - sy[j]
            dz = zi - sz[j]
            c, s, fr, fi, ux, uy, uz, _, _ = _pair_gradient(dx, dy, dz, k, kr, ki, one, zero,
                                                             real)
            w[0, j] = c
            w[1, j] = s
            w[2, j] = fr * ux
            w[3, j] = fi * ux
            w[4, j] = fr * uy
            w[5, j] = fi * uy
            w[6, j] = fr * uz
            w[7, j] = fi * uz
        for col in range(c_re.shape[0]):
            q_re, q_im = c_re[col], c_im[col]
            acc = np.zeros(8, sx.dtype)
            for j in range(ns):
                qr, qi = q_re[j], q_im[j]
                for p in range(4):
                    acc[2 * p] += qr * w[2 * p, j] - qi * w[2 * p + 1, j]
                    acc[2 * p + 1] += qr * w[2 * p + 1, j] + qi * w[2 * p, j]
            pot[col, i] += complex(acc[0] * scale, acc[1] * scale)
            gx[col, i] += complex(acc[2] * scale, acc[3] * scale)
            gy[col, i] += complex(acc[4] * scale, acc[5] * scale)
            gz[col, i] += complex(acc[6] * scale, acc[7] * scale)


@jit
def _gradient(sx, sy, sz, q_re, q_im, tx, ty, tz, k, pot, gx, gy, gz):
    if q_re.shape[0] == 1:
        _gradient_one_column(sx, sy, sz, q_re[0], q_im[0], tx, ty, tz, k, pot[0], gx[0], gy[0],
                             gz[0])
    else:
        _gradient_columns(sx, sy, sz, q_re, q_im, tx, ty, tz, k, pot, gx, gy, gz)


@jit
def p2p_gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    """Add the potential and its gradient with respect to the target to ``pot, gx, gy, gz``."""
    q_re, q_im = _parts(charges, sx)
    if wavenumber.imag == 0:  # as in p2p
        _gradient(sx, sy, sz, q_re, q_im, tx, ty, tz, wavenumber.real, pot, gx, gy, gz)
    else:
        _gradient(sx, sy, sz, q_re, q_im, tx, ty, tz, wavenumber, pot, gx, gy, gz)


@jit(inline="always")
def _dipole_pair(dx, dy, dz, k, kr, ki, one, zero, real):
    """4 pi times G' = dG/dr, G'' - G' / r and G' / r as (re, im) pairs, and the unit vector u:
    a dipole d adds -G' (u . d) to the potential, -(G'' - G'/r) (u . d) u - (G'/r) d to its
    gradient (:mod:`fmmsolve.kernels.dipole`)."""
    c, s, gr, gi, ux, uy, uz, r, inv_r = _pair_gradient(dx, dy, dz, k, kr, ki, one, zero,
                                                        real)
    # G'' - G'/r = ((i k r)^2 - 3 i k r + 3) exp(i k r) / r^3 = (a + i b) (c + i s) / r^2
    three = real(3.0)
    tr, ti = -ki * r, kr * r  # i k r
    a = tr * tr - ti * ti - three * tr + three
    b = ti * (tr + tr - three)
    inv_r2 = inv_r * inv_r
    return (gr, gi, (a * c - b * s) * inv_r2, (a * s + b * c) * inv_r2, gr * inv_r, gi * inv_r,
            ux, uy, uz)


@jit(inline="always")
def _dipole_terms(f, d_re, d_im, row, j):
    """Minus the potential and the gradient x, y, z of the dipole in rows ``row`` to
    ``row + 2``, column ``j`` of ``d_re + i d_im``, as (re, im) pairs, from the pair factors
    ``f`` of :func:`_dipole_pair`."""
    gr, gi, hr, hi, fr, fi, ux, uy, uz = f
    xr, yr, zr = d_re[row, j], d_re[row + 1, j], d_re[row + 2, j]
    xi, yi, zi = d_im[row, j], d_im[row + 1, j], d_im[row + 2, j]
    dr = ux * xr + uy * yr + uz * zr  # u . d
    di = ux * xi + uy * yi + uz * zi
    hdr = hr * dr - hi * di
    hdi = hr * di + hi * dr
    return (gr * dr - gi * di, gr * di + gi * dr,
            hdr * ux + fr * xr - fi * xi, hdi * ux + fr * xi + fi * xr,
            hdr * uy + fr * yr - fi * yi, hdi * uy + fr * yi + fi * yr,
            hdr * uz + fr * zr - fi * zi, hdi * uz + fr * zi + fi * zr)


@jit
def _dipole_one_column(sx, sy, sz, d_re, d_im, tx, ty, tz, k, pot, gx, gy, gz, gradient):
    """One column, one fused loop (``gx, gy, gz`` are not touched without ``gradient``)."""
    real = sx.dtype.type
    one, zero, scale = real(1.0), real(0.0), real(INV_4PI)
    kr, ki = real(k.real), real(k.imag)
    for i in range(tx.shape[0]):
        p_re = zero
        p_im = zero
        x_re = zero
        x_im = zero
        y_re = zero
        y_im = zero
        z_re = zero
        z_im = zero
        for j in range(sx.shape[0]):
            f = _dipole_pair(tx[i] - sx[j], ty[i] - sy[j], tz[i] - sz[j], k, kr, ki, one,
                             zero, real)
            t = _dipole_terms(f, d_re, d_im, 0, j)
            p_re += t[0]
            p_im += t[1]
            if gradient:  # loop-invariant: LLVM unswitches or if-converts it
                x_re += t[2]
                x_im += t[3]
                y_re += t[4]
                y_im += t[5]
                z_re += t[6]
                z_im += t[7]
        pot[i] -= complex(p_re * scale, p_im * scale)
        if gradient:
            gx[i] -= complex(x_re * scale, x_im * scale)
            gy[i] -= complex(y_re * scale, y_im * scale)
            gz[i] -= complex(z_re * scale, z_im * scale)


@jit
def _dipole_columns(sx, sy, sz, d_re, d_im, tx, ty, tz, k, pot, gx, gy, gz, gradient):
    """Several columns: per target, the pair factors into a buffer, then one pass per column
    (``gx, gy, gz`` are not touched without ``gradient``)."""
    real = sx.dtype.type
    one, zero, scale = real(1.0), real(0.0), real(INV_4PI)
    kr, ki = real(k.real), real(k.imag)
    ns = sx.shape[0]
    w = np.empty((9, ns), sx.dtype)
    for i in range(tx.shape[0]):
        for j in range(ns):
            f = _dipole_pair(tx[i] - sx[j], ty[i] - sy[j], tz[i] - sz[j], k, kr, ki, one,
                             zero, real)
            for a in range(9):
                w[a, j] = f[a]
        for col in range(pot.shape[0]):
            p_re = zero
            p_im = zero
            x_re = zero
            x_im = zero
            y_re = zero
            y_im = zero
            z_re = zero
            z_im = zero
            for j in range(ns):
                t = _dipole_terms((w[0, j], w[1, j], w[2, j], w[3, j], w[4, j], w[5, j],
                                   w[6, j], w[7, j], w[8, j]), d_re, d_im, 3 * col, j)
                p_re += t[0]
                p_im += t[1]
                if gradient:  # loop-invariant: LLVM unswitches or if-converts it
                    x_re += t[2]
                    x_im += t[3]
                    y_re += t[4]
                    y_im += t[5]
                    z_re += t[6]
                    z_im += t[7]
            pot[col, i] -= complex(p_re * scale, p_im * scale)
            if gradient:
                gx[col, i] -= complex(x_re * scale, x_im * scale)
                gy[col, i] -= complex(y_re * scale, y_im * scale)
                gz[col, i] -= complex(z_re * scale, z_im * scale)


@jit
def _dipole_sums(sx, sy, sz, d_re, d_im, tx, ty, tz, k, pot, gx, gy, gz, gradient):
    if pot.shape[0] > 1:
        _dipole_columns(sx, sy, sz, d_re, d_im, tx, ty, tz, k, pot, gx, gy, gz, gradient)
    else:
        _dipole_one_column(sx, sy, sz, d_re, d_im, tx, ty, tz, k, pot[0], gx[0], gy[0], gz[0],
                           gradient)


@jit
def _dipoles(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot, gx, gy, gz, gradient):
    d_re, d_im = _parts(dipoles, sx)
    if wavenumber.imag == 0:  # as in p2p
        _dipole_sums(sx, sy, sz, d_re, d_im, tx, ty, tz, wavenumber.real, pot, gx, gy, gz,
                     gradient)
    else:
        _dipole_sums(sx, sy, sz, d_re, d_im, tx, ty, tz, wavenumber, pot, gx, gy, gz,
                     gradient)


@jit
def p2p_dipole(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot):
    """Add sum_j grad_x G(t_i, s_j) . d_cj to ``pot[c, i]``; ``dipoles`` is (3 m, n_s)."""
    _dipoles(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot, pot, pot, pot, False)


@jit
def p2p_dipole_gradient(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    """Add the dipole potential and its gradient with respect to the target."""
    _dipoles(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot, gx, gy, gz, True)


@jit
def radial(r2, wavenumber):
    """Pair factors ``(G'(r) / r, (G''(r) - G'(r) / r) / r^2)`` at ``r2 = r^2``, complex128, both
    0 when ``r2 == 0`` (see :func:`fmmsolve.kernels.laplace.radial`)."""
    if r2 == 0:  # explicit mask: no reliance on inf arithmetic
        return 0j, 0j
    r = math.sqrt(r2)
    ikr = 1j * wavenumber * r
    g = cmath.exp(ikr) * (INV_4PI / r)
    inv_r2 = 1.0 / r2
    return g * (ikr - 1.0) * inv_r2, g * (3.0 - 3.0 * ikr + ikr * ikr) * inv_r2 * inv_r2


def matrix(targets, sources, wavenumber):
    """Dense complex128 matrix G(t_i, s_j) of shape (n_t, n_s), zero where t_i == s_j."""
    g, r = inverse_distance_matrix(targets, sources)
    return g * np.exp(1j * complex(wavenumber) * r)


def _check_wavenumber(wavenumber):
    ok = isinstance(wavenumber, numbers.Number) and not isinstance(wavenumber, bool)
    k = complex(wavenumber) if ok else None
    if not ok or not cmath.isfinite(k) or k.imag < 0 or k == 0:
        raise ValueError(f"the 'helmholtz' kernel needs a wavenumber k != 0, real or complex "
                         f"with Im k >= 0 (G = exp(i k r) / (4 pi r)), got {wavenumber!r}")
    return k


def monopole_weight(r, wavenumber):
    """``j0(k r)`` and ``(d/dr j0(k r)) / r = -k^2 j1(k r) / (k r)``, complex128 (the
    spherical Bessel functions of the addition theorem's l = 0 term; complex k too)."""
    k = complex(wavenumber)
    x = k * np.asarray(r, np.float64)
    small = np.abs(x) < 1e-8  # j1(x) / x -> 1 / 3
    safe = np.where(small, 1.0, x)
    j1_over_x = np.where(small, 1.0 / 3.0, spherical_jn(1, safe) / safe)
    return spherical_jn(0, x).astype(np.complex128), -k * k * j1_over_x


HELMHOLTZ = Kernel(
    name="helmholtz",
    is_complex=True,
    needs_wavenumber=True,
    scale_invariant=False,
    p2p=p2p,
    p2p_gradient=p2p_gradient,
    check_wavenumber=_check_wavenumber,
    matrix=matrix,
    radial=radial,
    oscillatory=True,
    decay=lambda k: max(float(np.imag(k)), 0.0),  # |G| r = exp(-Im(k) r)
    monopole_weight=monopole_weight,
)
