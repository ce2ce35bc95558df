"""The :class:`Kernel` record: what a kernel module hands to the rest of fmmsolve.

A kernel is a value, not a class hierarchy: the FMM driver and the direct sum receive a
``Kernel`` and call its compiled block functions; no code outside ``kernels/`` branches on a
kernel's name.

Block-function convention (all kernels, serial, called on contiguous slices)::

    p2p(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot)
    p2p_gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz)

``sx, sy, sz`` (n_s,) and ``tx, ty, tz`` (n_t,) are structure-of-arrays coordinates, all of the
real working dtype. ``charges`` (m, n_s) holds m density columns and must be C-contiguous (its
rows are the vectorised inner loops); the outputs ``pot`` and ``gx, gy, gz`` are (m, n_t) of
any layout. All densities and outputs have the kernel's value dtype. Results are *added* to
``pot`` (and ``gx, gy, gz``, the gradient with respect to the target), and pairs at zero
distance contribute nothing. Kernels should evaluate each pair's geometry once for all m
columns: that is what makes many right-hand sides cheaper than m products.

Dipole sources (:mod:`fmmsolve.kernels.dipole`) have block functions of the same signature whose
densities are (3 m, n_s): rows ``3 c, 3 c + 1, 3 c + 2`` hold the x, y, z components of column c.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ["Kernel", "inverse_distance_matrix", "BUILTIN_VERSION"]

#: Part of every built-in kernel's digest: raise it when a built-in kernel's values change.
BUILTIN_VERSION = 1


def inverse_distance_matrix(targets, sources):
    """``1 / (4 pi r)`` and ``r`` between every target and source, (n_t, n_s) float64 each,
    with the first set to 0 where ``r == 0``: the common part of every kernel's dense matrix."""
    r = cdist(np.asarray(targets, np.float64), np.asarray(sources, np.float64))
    return np.divide(1.0 / (4.0 * np.pi), r, out=np.zeros_like(r), where=r > 0), r


@dataclass(frozen=True)
class Kernel:
    """A Green's function and its compiled direct-interaction blocks.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"laplace"``.
    is_complex : bool
        Whether potentials are complex (complex128 for float64, complex64 for float32).
    needs_wavenumber : bool
        Whether a wavenumber must be given.
    scale_invariant : bool
        Whether G(s x, s y) = G(x, y) / s, so translation operators computed once can be
        rescaled per tree level.
    p2p, p2p_gradient : numba dispatchers
        The block functions described in the module docstring.
    check_wavenumber : callable
        ``check_wavenumber(k) -> scalar`` validates the user's wavenumber and returns the value
        passed to the block functions.
    matrix : callable
        ``matrix(targets, sources, wavenumber) -> ndarray (n_t, n_s)``: the dense kernel matrix
        in float64 (complex128 for complex kernels), zero at zero distance. Used to precompute
        translation operators; ``targets`` and ``sources`` are (n, 3) float64 arrays.
    radial : numba dispatcher
        ``radial(r2, wavenumber) -> (f1, f2)``: float64 (complex128 for complex kernels) pair
        factors with grad_y G = f1 (y - x) and Hessian f2 (y - x)(y - x)^T + f1 I, both 0 at
        ``r2 == 0``. The dipole block functions (:mod:`fmmsolve.kernels.dipole`) are built on
        it.
    oscillatory : bool
        Whether G oscillates with the wavenumber (Helmholtz). The FMM of such a kernel raises
        its expansion order with ``|k|`` times the width of a level-2 box and refuses it
        beyond the bound it is measured to meet (:func:`fmmsolve.accuracy.max_frequency`).
    decay : callable
        ``decay(k) -> float``: the rate d >= 0 of the exponential decay of ``|G| r``, e^(-d r)
        (k for modified Helmholtz, Im k for Helmholtz, 0 for Laplace). The FMM reaches targets
        away from the sources through boxes no wider than about 1 / d
        (:func:`fmmsolve.accuracy.max_expansion_half_width`).
    monopole_weight : callable or None
        ``monopole_weight(r, k) -> (w, dw)``: the weight ``w(r)`` of a unit source at distance
        ``r`` from a centre in the monopole (l = 0) term of its far field about that centre,
        normalised to ``w(0) = 1`` (the average over directions of the plane-wave factor: 1 for
        Laplace, ``sin(k r) / (k r)`` for Helmholtz), and ``dw = w'(r) / r``; arrays of float64
        or complex128 like ``r`` (float64). The upward pass keeps the monopole of every
        expansion exact with it (:mod:`fmmsolve.operators.upward`); None skips that.
    homogeneity : int or None
        ``d`` with G(s x, s y) = s^-d G(x, y), the parameter (if any) rescaled to ``s k``
        (1 for the built-in kernels). None: the kernel has no such law, and the plan of each
        tree level is computed at the level's own box size.
    digest : str
        SHA-256 hex digest of the kernel's definition (:mod:`fmmsolve.kernels.profile`); for a
        built-in kernel, of its name and :data:`BUILTIN_VERSION`. Plans, compiled copies,
        pickles and saved files are keyed by it (:attr:`key`).
    measured : bool
        Whether :mod:`fmmsolve.accuracy`'s tables (eps -> order) were measured for this
        kernel. Otherwise the order is calibrated at first use (:mod:`fmmsolve.calibration`).
    components : int
        ``C``, the number of density and potential values per point (1 for a scalar kernel).
        Block functions then take densities of ``m C`` rows and potentials likewise (row
        ``C c + a``: component ``a`` of column ``c``), and ``matrix`` is ``(C n_t, C n_s)``,
        component-major (:mod:`fmmsolve.kernels.pair`). ``radial`` is None: no dipoles.
    parities : tuple of int
        Per component, the mask of axes whose reflection negates it: ``G(R x) = S G(x) S``
        (:mod:`fmmsolve.kernels.pair`); ``(0,)`` for a scalar kernel.
    check_viscosity : callable or None
        For a kernel with a viscosity (Stokes, :mod:`fmmsolve.kernels.stokes`):
        ``check_viscosity(mu) -> factor``, which validates ``mu`` and returns the factor that
        multiplies every result of the kernel, whose record is built for ``mu = 1``. None for
        a kernel without one (see :meth:`viscosity_factor`).
    pressure : bool
        Whether the kernel's densities (forces, C = 3) have a pressure, ``-div`` of the Laplace
        potentials of their components (Stokes): :func:`fmmsolve.direct` computes it on request.
    harmonic : str
        ``""``, or for a kernel whose FMM is made of the FMM of another kernel's sums, that
        kernel's name: ``"laplace"`` for Stokes, whose velocity is four harmonic potentials
        (:mod:`fmmsolve.engine.harmonic`).
    """

    name: str
    is_complex: bool
    needs_wavenumber: bool
    scale_invariant: bool
    p2p: Any
    p2p_gradient: Any
    check_wavenumber: Callable[[Any], Any]
    matrix: Callable[..., np.ndarray]
    radial: Any
    oscillatory: bool = False
    decay: Callable[[Any], float] = lambda k: 0.0
    monopole_weight: Callable[..., tuple] | None = None
    homogeneity: int | None = 1
    digest: str = ""
    measured: bool = True
    components: int = 1
    parities: tuple = (0,)
    check_viscosity: Callable[[Any], float] | None = None
    pressure: bool = False
    harmonic: str = ""

    def __post_init__(self):
        if not self.digest:
            text = f"fmmsolve built-in kernel {self.name} {BUILTIN_VERSION}"
            object.__setattr__(self, "digest", hashlib.sha256(text.encode()).hexdigest())

    @property
    def key(self) -> str:
        """``"<name>-<first 16 digits of the digest>"``: the kernel's identity in plan keys,
        compiled copies' names and saved files."""
        return f"{self.name}-{self.digest[:16]}"

    @property
    def tag(self) -> str:
        """``"<name>_<first 10 digits of the digest>"``: names the compiled copies of generic
        templates bound to this kernel (:func:`fmmsolve._jit.bind`)."""
        return f"{self.name}_{self.digest[:10]}"

    def __reduce__(self):
        # Pickle by name and digest: the compiled dispatchers are not data; the unpickling
        # process must have registered the same definition.
        from . import kernel_for_key

        return kernel_for_key, (self.key,)

    def require_scalar(self, what: str) -> "Kernel":
        """This kernel, or ValueError when it has components: ``what`` (the caller's name)
        takes scalar kernels only."""
        if self.components != 1:
            raise ValueError(f"{what} takes scalar kernels; the {self.name!r} kernel has "
                             f"{self.components} components (use FMMOperator or "
                             f"fmmsolve.direct with it)")
        return self

    def viscosity_factor(self, viscosity) -> float:
        """The factor every result is multiplied by for ``viscosity`` (1.0 for a kernel
        without one, which must be given None)."""
        if self.check_viscosity is not None:
            return self.check_viscosity(viscosity)
        if viscosity is not None:
            raise ValueError(f"viscosity must be None for the {self.name!r} kernel (it has "
                             f"none; the 'stokes' kernel takes one), got {viscosity!r}")
        return 1.0

    def value_dtype(self, real_dtype) -> np.dtype:
        """The dtype of potentials for coordinates of ``real_dtype``."""
        real_dtype = np.dtype(real_dtype)
        if self.is_complex:
            return np.result_type(real_dtype, np.complex64)
        return real_dtype
