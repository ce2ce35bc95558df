"""The flat-patch self-integral of a kernel: the diagonal of a point-quadrature layer potential.

A quadrature point of weight ``area`` stands for a patch of surface; its own contribution to
the potential at itself is the integral of G over a flat disk of that area centred there,
``int_disk G dA = int_0^a g(r) 2 pi r dr`` with ``a = sqrt(area / pi)``. The built-in kernels
have closed forms; a registered kernel's integral is computed from its profile by Gauss-Legendre
quadrature in r (the integrand r g(r) is smooth at r = 0 for a 1 / r singularity).
"""

from __future__ import annotations

import numpy as np

from . import _BUILTIN, get_kernel

__all__ = ["patch_self_integral", "QUADRATURE_NODES"]

#: Gauss-Legendre nodes of the quadrature for registered kernels: the Yukawa kernel's closed
#: form is matched to 1e-13 relative for k a up to 10 (tests/test_user_kernels.py).
QUADRATURE_NODES = 48


def patch_self_integral(kernel, area, wavenumber=None):
    """Integral of the kernel over a flat disk of ``area``, centred at the evaluation point.

    This is the singular self-term of a point-quadrature layer potential: the disk stands for
    the patch of surface that a quadrature point of weight ``area`` carries. With the disk's
    radius ``a = sqrt(area / pi)`` and ``r`` the distance to the centre,
    ``int_disk G dA = int_0^a G(r) 2 pi r dr``, which for each kernel is

    * ``"laplace"``, ``G = 1 / (4 pi r)``: ``a / 2``;
    * ``"modified_helmholtz"``, ``G = exp(-k r) / (4 pi r)``: ``(1 - exp(-k a)) / (2 k)``;
    * ``"helmholtz"``, ``G = exp(i k r) / (4 pi r)``: ``(exp(i k a) - 1) / (2 i k)``;

    both tend to ``a / 2`` as ``k -> 0`` (``expm1`` keeps small ``k a`` accurate). A kernel
    registered with :func:`fmmsolve.register_kernel` is integrated numerically from its profile
    (:data:`QUADRATURE_NODES` Gauss-Legendre nodes in r).

    Parameters
    ----------
    kernel : str or Kernel
        ``"laplace"``, ``"modified_helmholtz"``, ``"helmholtz"`` (the formula exists before
        the kernel is registered), or a registered kernel (its name, key or record).
    area : array_like of float, >= 0
        Patch areas.
    wavenumber : scalar or None
        ``k``; required by the Helmholtz kernels (complex allowed for ``"helmholtz"``) and by
        registered kernels that take one.

    Returns
    -------
    ndarray of the shape of ``area``: float64, or complex128 for a complex kernel.
    """
    a = np.sqrt(np.asarray(area, dtype=np.float64) / np.pi)
    name = getattr(kernel, "name", kernel)
    if isinstance(name, str) and name.rpartition("-")[0] in _BUILTIN:
        name = name.rpartition("-")[0]  # a built-in kernel's key
    if name == "laplace":
        return a / 2.0
    if name in ("modified_helmholtz", "helmholtz"):
        if wavenumber is None or wavenumber == 0:
            raise ValueError(f"the {name!r} self-integral needs a non-zero wavenumber")
        if name == "modified_helmholtz":
            k = float(wavenumber)
            return -np.expm1(-k * a) / (2.0 * k)
        k = complex(wavenumber)
        return np.expm1(1j * k * a) / (2j * k)
    try:
        kern = get_kernel(kernel)
    except ValueError:
        raise ValueError(f"no patch self-integral for kernel {kernel!r}: not a built-in "
                         f"('laplace', 'modified_helmholtz', 'helmholtz') nor a registered "
                         f"kernel") from None
    kern.require_scalar("patch_self_integral")
    k = kern.check_wavenumber(wavenumber) if kern.needs_wavenumber else 0.0
    return _by_quadrature(kern, a, k)


def _by_quadrature(kernel, a, wavenumber):
    """``int_0^a g(r) 2 pi r dr`` for each radius in ``a``, from the kernel's matrix."""
    x, w = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    flat = a.ravel()
    r = np.outer(flat, (x + 1.0) / 2.0)  # (n, nodes) in (0, a)
    points = np.zeros((r.size, 3))
    points[:, 0] = r.ravel()
    g = kernel.matrix(points, np.zeros((1, 3)), wavenumber)[:, 0].reshape(r.shape)
    values = (g * (2.0 * np.pi * r)) @ w * (flat / 2.0)
    return values.reshape(a.shape)
