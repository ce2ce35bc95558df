"""Dipole (double-layer) sources for every kernel: phi(y) = sum_j grad_x G(y, x_j) . d_j.

A dipole density d_j at x_j is the limit of charges +-|d_j|/h at x_j +- h d_j/(2|d_j|); its
potential is the source-side derivative of the kernel. For a radial kernel G(y, x) = g(|y - x|),
grad_x G = -grad_y G = -f1 (y - x), with the pair factors ``f1, f2`` of the kernel's ``radial``
function (:class:`~fmmsolve.kernels._kernel.Kernel`), and the gradient with respect to the
target is -(f2 ((y - x) . d) (y - x) + f1 d).

The block functions follow the convention of :mod:`fmmsolve.kernels._kernel` except for the
densities, (3 m, n_s) with the x, y, z components of column c in rows 3 c to 3 c + 2. The
templates here are written once for all kernels: their pair factors are computed in float64
(complex128) for every working precision and added to the outputs in their own dtype, and the
potential and gradient loops each write the pair geometry out, so that the potential-only loop
does no gradient work. The wave kernels have their own block functions instead, in the working
precision and vectorised like their charge loops (:data:`OWN_BLOCKS`): ``radial`` calls
``math.exp`` or ``cmath.exp``, and a loop that calls them is not vectorised. Laplace keeps the
templates (its sums stay bit for bit what they were).
"""

from __future__ import annotations

import functools
import types

from .._jit import bind
from . import helmholtz, modified_helmholtz

__all__ = ["blocks", "OWN_BLOCKS"]

#: ``radial`` function -> (p2p, p2p_gradient) of kernels with their own dipole block functions.
OWN_BLOCKS = {m.radial: (m.p2p_dipole, m.p2p_dipole_gradient)
              for m in (helmholtz, modified_helmholtz)}

# Placeholder: the templates read this global; `blocks` binds it to a kernel's `radial`.
radial = None


def p2p_dipole(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot):
    """Add sum_j grad_x G(t_i, s_j) . d_cj to ``pot[c, i]``; ``dipoles`` is (3 m, n_s)."""
    for i in range(tx.shape[0]):
        for j in range(sx.shape[0]):
            dx = float(tx[i] - sx[j])
            dy = float(ty[i] - sy[j])
            dz = float(tz[i] - sz[j])
            f1, f2 = radial(dx * dx + dy * dy + dz * dz, wavenumber)
            for c in range(pot.shape[0]):
                pot[c, i] -= f1 * (dx * dipoles[3 * c, j] + dy * dipoles[3 * c + 1, j]
                                   + dz * dipoles[3 * c + 2, j])


def p2p_dipole_gradient(sx, sy, sz, dipoles, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    """Add the dipole potential and its gradient with respect to the target."""
    for i in range(tx.shape[0]):
        for j in range(sx.shape[0]):
            dx = float(tx[i] - sx[j])
            dy = float(ty[i] - sy[j])
            dz = float(tz[i] - sz[j])
            f1, f2 = radial(dx * dx + dy * dy + dz * dz, wavenumber)
            for c in range(pot.shape[0]):
                ex, ey, ez = dipoles[3 * c, j], dipoles[3 * c + 1, j], dipoles[3 * c + 2, j]
                rd = f2 * (dx * ex + dy * ey + dz * ez)
                pot[c, i] -= f1 * (dx * ex + dy * ey + dz * ez)
                gx[c, i] -= rd * dx + f1 * ex
                gy[c, i] -= rd * dy + f1 * ey
                gz[c, i] -= rd * dz + f1 * ez


@functools.lru_cache(maxsize=None)
def blocks(kernel):
    """The dipole block functions of ``kernel``: a namespace with ``p2p`` and ``p2p_gradient``
    (called like the kernel's charge block functions, with (3 m, n_s) densities)."""
    if kernel.radial in OWN_BLOCKS:
        p2p, p2p_gradient = OWN_BLOCKS[kernel.radial]
        return types.SimpleNamespace(p2p=p2p, p2p_gradient=p2p_gradient)
    bindings = {"radial": kernel.radial}
    return types.SimpleNamespace(p2p=bind(p2p_dipole, kernel.tag, bindings),
                                 p2p_gradient=bind(p2p_dipole_gradient, kernel.tag, bindings))
