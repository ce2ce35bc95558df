"""Precomputation of the translation operators: a pure function of hashable arguments.

``compute_plan(kernel, order, compression_tol, dtype)`` returns a :class:`Plan`; the float64
plan is computed once per (kernel, order, tolerance) and other dtypes are cast from it. A Plan
holds only plain arrays and values, and it does not depend on any geometry. All the work is done in
float64 and cast to the value dtype at the end. Conventions:

* Operators are computed for a reference box of half-width 1. For a scale-invariant kernel with
  G(s x, s y) = s^-d G(x, y) (d = 1 for Laplace), a check-to-equivalent map at half-width h is
  ``h**d`` times the reference one. M2M, L2L and M2L are the same on every level.
* A kernel that is not scale invariant (Helmholtz) has G_k(h x, h y) = G_{k h}(x, y) / h: the
  plan at ``wavenumber = k h`` is the plan of boxes of half-width h, with d = 1 again
  (:mod:`fmmsolve.fmm` loads one per tree level). Its L2L ends in the children's own
  check-to-equivalent map, computed at half-width 0.5 rather than rescaled.
* Check-to-equivalent maps are SVD pseudo-inverses. Singular values below ``4 eps_mach s_max``
  are dropped, and the map is kept as two factors ``a @ (b @ check)`` with ``a = V / s`` and
  ``b = U^T``.
* Child octant ``c`` has centre offset ``((c & 1), (c >> 1 & 1), (c >> 2 & 1)) * 2 - 1`` times
  half the parent's half-width (:mod:`fmmsolve.tree.morton`, convention 2). The kernels are
  radial and the surfaces symmetric, so octant ``c``'s M2M and L2L are octant 0's with the
  surface points permuted by the reflection between them (:func:`octant_operators`): only
  octant 0's are computed and held, and the products of the others gather and scatter the
  expansions through the reflection (:func:`reflection`; at order 17 a level's eight M2M and
  L2L would take 600 MB).
* M2L: there are 316 transfer vectors ``v`` in {-3..3}^3 \\ {-1..1}^3, in units of the box edge
  (:func:`~fmmsolve.operators.m2l.transfer_vectors`). The plan holds the name of an M2L
  strategy and its data record (``m2l_strategy``, ``m2l_data``); the strategy
  (:mod:`fmmsolve.operators.m2l`) computes the record from the kernel's matrix and the downward
  check-to-equivalent map, and owns how it is stored and checked. The default, ``"svd"``,
  compresses the translations with SVDs that use the 8 axis reflections
  (:mod:`fmmsolve.operators.m2l.svd`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..kernels import kernel_for_key
from . import surfaces
from .dense import single_threaded_blas
from .m2l import DEFAULT as DEFAULT_M2L
from .m2l import M2LData, check_strategy, get_strategy, transfer_index, transfer_vectors
from .m2l.svd import characters
from .surfaces import octant_offsets as _octant_offsets
from .surfaces import octant_permutations as _octant_permutations

#: Levels of an oscillatory kernel whose boxes have ``|k| w`` above this (``w`` the box edge)
#: translate with the FFT strategy instead of the default SVD: there the frequency, not eps,
#: sets the order, the SVD's ranks approach the surface's size and its compression costs
#: about a minute per level at order 16, while the FFT's precomputation takes a second. 3.5 is
#: the edge of the range the SVD served alone (:func:`fmmsolve.accuracy.max_kw2`).
FFT_ABOVE_KW = 3.5
FFT_M2L = "fft"

__all__ = ["Plan", "compute_plan", "level_plans", "octant_operators", "reflection",
           "transfer_vectors",
           "transfer_index"]


@dataclass(frozen=True, eq=False)
class Plan:
    """Geometry-independent KIFMM operators for one kernel, order, tolerance, dtype and M2L
    strategy.

    Shapes use ``n = 6 (p - 1)^2 + 2`` surface points; for a kernel of C components every
    ``n`` below but the surface's is ``C n`` (component-major, :mod:`fmmsolve.kernels.pair`).
    Every matrix has the value dtype.

    Attributes
    ----------
    kernel_name : str
    expansion_order : int
    compression_tol : float
    scale_degree : int
        Check-to-equivalent maps at half-width h are ``h**scale_degree`` times the reference.
    surface : ndarray (n, 3), float64
        The unit surface (:func:`~fmmsolve.operators.surfaces.surface`).
    uc2e_a, uc2e_b : ndarray (n, r), (r, n)
        Upward check-to-equivalent map ``a @ b`` at half-width 1.
    dc2e_a, dc2e_b : ndarray (n, r), (r, n)
        Downward check-to-equivalent map at half-width 1.
    m2m : ndarray (1, n, n)
        Octant 0's M2M, ``parent += m2m[0] @ child``; a child in octant c has
        ``octant_operators(m2m, ...)[c]``, applied as :func:`reflection` says.
    l2l : ndarray (1, n, n)
        Octant 0's L2L, ``child += l2l[0] @ parent``, the others likewise.
    m2l_strategy : str
        Name of the M2L strategy (:data:`fmmsolve.operators.m2l.STRATEGY_NAMES`).
    m2l_data : M2LData
        That strategy's precomputed translations (for ``"svd"``,
        :class:`~fmmsolve.operators.m2l.svd.SVDData`, whose arrays are also readable under
        their former names ``m2l_vt``, ``m2l_ptr``, ``m2l_a``, ``m2l_b``, ``m2l_u``).
    """

    kernel_name: str
    expansion_order: int
    compression_tol: float
    scale_degree: int
    surface: np.ndarray
    uc2e_a: np.ndarray
    uc2e_b: np.ndarray
    dc2e_a: np.ndarray
    dc2e_b: np.ndarray
    m2m: np.ndarray
    l2l: np.ndarray
    m2l_strategy: str
    m2l_data: M2LData

    def __post_init__(self):
        if self.m2l_data.strategy != self.m2l_strategy:
            raise ValueError(f"a plan of M2L strategy {self.m2l_strategy!r} holds the data "
                             f"record of {self.m2l_data.strategy!r}")

    @property
    def n_surface(self) -> int:
        return self.surface.shape[0]

    @property
    def n_expansion(self) -> int:
        """Values of one expansion: ``n_surface`` times the kernel's components."""
        return self.uc2e_a.shape[0]

    @property
    def rank(self) -> int:
        """Rank of the M2L translations (:attr:`M2LData.rank`); 0 for a plan without M2L
        operators (``m2l=False``)."""
        return self.m2l_data.rank

    # The SVD strategy's arrays under the names they had as Plan fields.
    m2l_vt = property(lambda self: self.m2l_data.vt)
    m2l_ptr = property(lambda self: self.m2l_data.ptr)
    m2l_a = property(lambda self: self.m2l_data.a)
    m2l_b = property(lambda self: self.m2l_data.b)
    m2l_u = property(lambda self: self.m2l_data.u)
    m2l_ranks = property(lambda self: self.m2l_data.ranks)

    def m2l_factors(self, vec):
        """The SVD strategy's :meth:`~fmmsolve.operators.m2l.svd.SVDData.factors`."""
        return self.m2l_data.factors(vec)

    @property
    def nbytes(self) -> int:
        return self.m2l_data.nbytes + sum(v.nbytes for v in vars(self).values()
                                          if isinstance(v, np.ndarray))


def _pinv_factors(k):
    """Two-factor pseudo-inverse ``(V / s, U^H)`` dropping s < 4 eps_mach s_max."""
    u, s, vt = scipy.linalg.svd(k, full_matrices=False)
    keep = s > 4 * np.finfo(np.float64).eps * s[0]
    return vt[keep].conj().T / s[keep], u[:, keep].conj().T


def octant_operators(first: np.ndarray, order: int, parities=(0,)) -> np.ndarray:
    """The M2M or L2L operators of the 8 octants from octant 0's.

    Parameters
    ----------
    first : ndarray (1, n, n) or (n, n)
        Octant 0's operator, on the order-``order`` surface, or for a kernel of ``C``
        components (C n, C n), component-major (:mod:`fmmsolve.kernels.pair`).
    parities : tuple of int
        The kernel's :attr:`~fmmsolve.kernels.Kernel.parities`, one per component.

    Returns
    -------
    ndarray (8, n, n) (or (8, C n, C n)), C-contiguous, of ``first``'s dtype
        ``out[c][i, j] = first[perm_c[i], perm_c[j]]``, with ``perm_c`` the reflection of the
        surface from octant 0 into octant ``c``; with components, also times the signs of
        the components of rows ``i`` and ``j`` under that reflection.

    Raises
    ------
    ValueError
        When ``first`` is not one square operator on that surface.
    """
    perm, sign = _reflections(int(order), tuple(parities))
    n = perm.shape[1]
    first = np.asarray(first)
    if first.shape not in {(n, n), (1, n, n)}:
        raise ValueError(f"an octant-0 operator of the order-{order} surface has shape "
                         f"({n}, {n}), got {first.shape}")
    out = first.reshape(n, n)[perm[:, :, None], perm[:, None, :]]
    if sign is not None:
        out *= sign[:, :, None] * sign[:, None, :]
    return np.ascontiguousarray(out)


def reflection(order: int, parities, octant: int):
    """How octant ``octant``'s M2M or L2L acts through octant 0's: ``None`` for octant 0, else
    ``(perm, sign)`` with ``op_c @ x = sign * (op_0 @ (sign * x)[perm])[perm]`` (the reflection
    is its own inverse); ``perm`` int64 (C n,), ``sign`` float64 (C n,) or None when no
    component of the kernel (``parities``) changes sign."""
    if octant == 0:
        return None
    perm, sign = _reflections(int(order), tuple(parities))
    return perm[octant], None if sign is None else sign[octant]


@functools.lru_cache(maxsize=32)
def _reflections(order, parities):
    """``(perm, sign)``: the reflection into octant ``c`` of the values of an expansion of
    ``len(parities)`` components, ``x -> sign[c] * x[perm[c]]``, shapes (8, C n) int64 and
    float64; ``sign`` is None when no component changes sign (a scalar kernel)."""
    perm = _octant_permutations(order)
    n = perm.shape[1]
    perm = np.hstack([a * n + perm for a in range(len(parities))])
    if not any(parities):
        return perm, None
    signs = characters()[list(parities)].T  # (8 reflections, C components)
    return perm, np.repeat(signs, n, axis=1)


def level_plans(kernel, wavenumber, expansion_order, compression_tol, value_dtype,
                half_widths, loader=None, m2l_strategy=DEFAULT_M2L) -> list:
    """The Plan of each tree level, from ``loader`` (default :func:`compute_plan`).

    A scale-invariant kernel shares one plan among all levels. A kernel with a homogeneity law
    and a wavenumber gets, at level l, the reference plan at the wavenumber ``k h_l``; one
    without a law, the plan of boxes of half-width ``h_l`` (``scale=h_l``). Levels 0 and 1 have
    no V list, so their plans skip the M2L operators. With the default strategy, the levels of
    an oscillatory kernel beyond :data:`FFT_ABOVE_KW` use ``"fft"`` (:func:`level_strategy`).

    Parameters
    ----------
    kernel : Kernel
    wavenumber : scalar
        As checked by the kernel.
    expansion_order : int
    compression_tol : float
    value_dtype : numpy.dtype
    half_widths : ndarray (depth + 1,), float64
        Box half-width of each level.
    loader : callable or None
        ``loader(kernel_key, order, compression_tol, dtype_str, wavenumber, m2l=...,
        m2l_strategy=..., scale=...)`` as :func:`compute_plan`; ``m2l_strategy`` is passed only
        when it is not the default, ``scale`` only for a kernel without a law (loaders written
        before them need not take them).
    m2l_strategy : str
        Checked against the order here, before any plan is computed.
    """
    m2l_strategy = _checked_strategy(kernel, m2l_strategy, expansion_order)
    load = compute_plan if loader is None else loader
    args = (kernel.key, expansion_order, compression_tol, np.dtype(value_dtype).str)
    extra = {} if m2l_strategy == DEFAULT_M2L else {"m2l_strategy": m2l_strategy}
    if kernel.scale_invariant:
        return [load(*args, wavenumber, **extra)] * len(half_widths)
    if kernel.homogeneity is not None:
        return [load(*args, wavenumber=wavenumber * h, m2l=level >= 2,
                     **level_strategy(kernel, wavenumber, h, m2l_strategy, extra))
                for level, h in enumerate(half_widths)]
    return [load(*args, wavenumber=wavenumber, m2l=level >= 2, scale=float(h), **extra)
            for level, h in enumerate(half_widths)]


def level_strategy(kernel, wavenumber, half_width, m2l_strategy, extra):
    """The ``m2l_strategy`` keyword of a level's plan: ``"fft"`` in place of the default for
    the levels of an oscillatory kernel whose boxes are wider than :data:`FFT_ABOVE_KW` over
    ``|k|``, else ``extra`` (the caller's choice)."""
    if m2l_strategy == DEFAULT_M2L and kernel.oscillatory \
            and abs(wavenumber) * 2.0 * half_width > FFT_ABOVE_KW:
        return {"m2l_strategy": FFT_M2L}
    return extra


def _checked_strategy(kernel, m2l_strategy, order):
    """``m2l_strategy``, checked against ``order``; for an oscillatory kernel with the default
    strategy, orders past the SVD's limit (the frequency rule's) are the FFT's on every level."""
    if m2l_strategy == DEFAULT_M2L and kernel.oscillatory \
            and order > get_strategy(DEFAULT_M2L).MAX_ORDER:
        return check_strategy(FFT_M2L, order)
    return check_strategy(m2l_strategy, order)


@functools.lru_cache(maxsize=16)
def compute_plan(kernel_name: str, expansion_order: int, compression_tol: float,
                 dtype: str, wavenumber=None, radii=None, m2l=True,
                 m2l_strategy: str = DEFAULT_M2L, scale=None) -> Plan:
    """The :class:`Plan` (see the module docstring) with matrices of ``dtype``.

    Arguments must be hashable; results are memoised in memory (the disk cache is
    :mod:`fmmsolve.cache`). ``radii`` is ``(up_equiv, up_check, down_equiv, down_check)`` in box
    half-widths, default :func:`~fmmsolve.operators.surfaces.radii`; ``wavenumber`` is passed to
    the kernel (None for Laplace). ``m2l_strategy`` names the M2L strategy
    (:mod:`fmmsolve.operators.m2l`) that computes ``m2l_data``; ValueError for an unknown one,
    or an order it refuses. ``m2l=False`` leaves the M2L operators empty (rank 0): the plans of
    tree levels 0 and 1, which no V list reaches, skip most of the work. ``kernel_name`` is a
    built-in kernel's name or any kernel's :attr:`~fmmsolve.kernels.Kernel.key`. ``scale``: for
    a kernel without a homogeneity law, the half-width h of the boxes the plan is for; its
    operators are those of the reference box for the kernel ``h G(h x, h y)``, so that the
    check-to-equivalent maps at half-width h are again ``h`` times the reference ones
    (``scale_degree`` 1).
    """
    check_strategy(m2l_strategy, expansion_order)
    radii = surfaces.radii() if radii is None else tuple(float(r) for r in radii)
    real = np.finfo(np.dtype(dtype)).dtype  # "<c16" -> float64, "<c8" -> float32
    if real == np.float64:
        return _compute_plan64(kernel_name, expansion_order, compression_tol, wavenumber, radii,
                               m2l, m2l_strategy, scale)
    base = compute_plan(kernel_name, expansion_order, compression_tol, "<f8", wavenumber, radii,
                        m2l, m2l_strategy, scale)

    def cast(v):
        if v.dtype.kind not in "fc":
            return v
        to = real if v.dtype.kind == "f" else np.result_type(real, np.complex64)
        return np.ascontiguousarray(v, dtype=to)  # complex128 -> complex64 for float32

    fields = {name: cast(v) if isinstance(v, np.ndarray) and name != "surface" else v
              for name, v in vars(base).items()}
    return Plan(**{**fields, "m2l_data": base.m2l_data.map_arrays(cast)})


@functools.lru_cache(maxsize=16)
def _compute_plan64(kernel_name, expansion_order, compression_tol, wavenumber, radii, m2l,
                    m2l_strategy, scale):
    # Hundreds of small factorisations: BLAS threads cost more in wake-ups than they save
    # (4x slower on two cores when GEMM and LAPACK calls alternate). The high orders of high
    # frequencies are a few large ones instead (n >= 1000 from order 14), which threads speed up.
    if expansion_order >= THREADED_PLAN_ORDER:
        return _compute_plan64_serial(kernel_name, expansion_order, compression_tol, wavenumber,
                                      radii, m2l, m2l_strategy, scale)
    with single_threaded_blas():  # the shared count: safe when fits run in several threads
        return _compute_plan64_serial(kernel_name, expansion_order, compression_tol, wavenumber,
                                      radii, m2l, m2l_strategy, scale)


#: Plans of this order and above are computed with BLAS's own threads.
THREADED_PLAN_ORDER = 14


@functools.lru_cache(maxsize=4)
def _check_to_equivalent(kernel_name, order, wavenumber, radii):
    """The upward and downward check-to-equivalent maps ``((uc2e_a, uc2e_b), (dc2e_a,
    dc2e_b))`` of :func:`_pinv_factors` for the reference box at ``wavenumber``, from one SVD:
    for a symmetric scalar kernel (G(x, y) = G(y, x)) and mirrored radii (downward check =
    upward equivalent, downward equivalent = upward check) the downward matrix is the upward
    one transposed, so its pseudo-inverse is the transpose of the upward one. Memoised, because
    the plan of a tree level computes its children's downward map (for L2L) and the next
    level's plan needs it again (a kernel with a homogeneity law and a wavenumber)."""
    kernel = kernel_for_key(kernel_name)
    surf = surfaces.surface(order)
    up_equiv, up_check, down_equiv, down_check = radii
    up = _pinv_factors(kernel.matrix(up_check * surf, up_equiv * surf, wavenumber))
    if _mirrored(kernel, radii):
        down = (np.ascontiguousarray(up[1].T), np.ascontiguousarray(up[0].T))
    else:
        down = _pinv_factors(kernel.matrix(down_check * surf, down_equiv * surf, wavenumber))
    for a in (*up, *down):
        a.flags.writeable = False  # shared by two plans
    return up, down


def _mirrored(kernel, radii):
    """Whether the downward check-to-equivalent matrix is the upward one transposed."""
    up_equiv, up_check, down_equiv, down_check = radii
    return kernel.radial is not None and kernel.components == 1 \
        and (down_check, down_equiv) == (up_equiv, up_check)


def _compute_plan64_serial(kernel_name, expansion_order, compression_tol, wavenumber, radii,
                           m2l=True, m2l_strategy=DEFAULT_M2L, scale=None):
    kernel = kernel_for_key(kernel_name)
    if scale is None:
        degree = 1 if kernel.homogeneity is None else kernel.homogeneity
        mat = lambda t, s: kernel.matrix(t, s, wavenumber)  # noqa: E731
    else:  # the reference box's operators for the kernel h G(h x, h y): see compute_plan
        degree, h = 1, float(scale)
        mat = lambda t, s: h * kernel.matrix(h * t, h * s, wavenumber)  # noqa: E731
    up_equiv, up_check, down_equiv, down_check = radii
    surf = surfaces.surface(expansion_order)

    by_level = (scale is None and not kernel.scale_invariant and kernel.homogeneity is not None
                and wavenumber is not None)
    if by_level:  # one SVD per level (see _check_to_equivalent)
        (uc2e_a, uc2e_b), (dc2e_a, dc2e_b) = _check_to_equivalent(
            kernel_name, expansion_order, wavenumber, radii)
    else:
        uc2e_a, uc2e_b = _pinv_factors(mat(up_check * surf, up_equiv * surf))
        dc2e_a, dc2e_b = _pinv_factors(mat(down_check * surf, down_equiv * surf))

    # L2L ends in the child's downward check-to-equivalent map. For a scale-invariant kernel it
    # is the reference one times 0.5**degree; otherwise it is the map of a half-width-0.5 box at
    # this plan's wavenumber (the next level's plan, seen in this level's frame): with a
    # homogeneity law and a wavenumber, G_k(x / 2, y / 2) = 2**degree G_{k/2}(x, y), so it is
    # 0.5**degree times the reference map at k / 2, the next level's own (memoised).
    if kernel.scale_invariant:
        child_a, child_b = dc2e_a, dc2e_b
    elif by_level:
        child_a, child_b = _check_to_equivalent(kernel_name, expansion_order, 0.5 * wavenumber,
                                                radii)[1]
        child_a = 0.5**degree * child_a
    else:
        child_a, child_b = _pinv_factors(mat(0.5 * down_check * surf, 0.5 * down_equiv * surf))
    off = _octant_offsets()[0] * 0.5  # children have half-width 0.5; the others by symmetry
    k_up = mat(up_check * surf, off + 0.5 * up_equiv * surf)
    m2m = (uc2e_a @ (uc2e_b @ k_up))[None]
    k_down = mat(off + 0.5 * down_check * surf, down_equiv * surf)
    l2l = child_a @ (child_b @ k_down)
    l2l = (0.5**degree * l2l if kernel.scale_invariant else l2l)[None]

    strategy = get_strategy(m2l_strategy)
    if m2l:
        m2l_data = strategy.precompute(mat, expansion_order, up_equiv, down_check,
                                       compression_tol, dc2e_a, dc2e_b,
                                       parities=kernel.parities)
    else:
        m2l_data = strategy.empty(len(uc2e_a), uc2e_a.dtype)
    cast = np.ascontiguousarray
    return Plan(
        kernel_name=kernel.name,
        expansion_order=int(expansion_order),
        compression_tol=float(compression_tol),
        scale_degree=degree,
        surface=surf,
        uc2e_a=cast(uc2e_a), uc2e_b=cast(uc2e_b),
        dc2e_a=cast(dc2e_a), dc2e_b=cast(dc2e_b),
        m2m=cast(m2m), l2l=cast(l2l),
        m2l_strategy=strategy.NAME, m2l_data=m2l_data,
    )

