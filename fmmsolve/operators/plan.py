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
  octant 0's are computed, and the disk cache stores only those.
* M2L: there are 316 transfer vectors ``v`` in {-3..3}^3 \\ {-1..1}^3, in units of the box edge.
  The translations ``K_v`` (target check <- source equivalent) are compressed in two stages.
  First a shared basis from the SVDs of their horizontal and vertical stacks:
  ``K_v ~ U C_v V^T``, of rank ``k`` (the larger number of singular values above
  ``compression_tol * s_max``). ``k`` is large (169 of 218 at order 7) because it spans every
  direction at once. Then each ``C_v`` alone has a much lower rank ``r_v`` (25 on average at
  order 7): ``C_v ~ A_v^T B_v`` keeps its singular values above the same absolute threshold,
  which cuts the M2L flops per pair from ``2 k^2`` to ``4 k r_v``. The target's
  check-to-equivalent map is folded into ``U`` once here. At evaluation time the work is
  ``local += m2l_u @ A_v^T @ B_v @ (m2l_vt @ multipole)``, with one matrix product per transfer
  vector over all pairs that share it.
* Reflections: the 8 axis reflections ``s`` permute the surface (``P_s``) and the transfer
  vectors, and a radial kernel has ``K_{s v} = P_s K_v P_s``. In a basis ``W`` of surface
  functions each even or odd under each reflection (:func:`_reflection_basis`), the stacks of
  all 316 ``W^T K_v W`` split into 8 independent blocks of about ``n / 8`` rows, and each
  block's Gram matrix is a weighted sum over the 56 vectors with no negative component. So
  ``U`` and ``V`` come from 16 small QR factorisations of 56 blocks instead of two of 316,
  their columns are even or odd, and ``C_{s v}`` is ``C_v`` with rows and columns negated:
  only 56 of the 316 second-stage SVDs are computed. (Five times faster than the plain stacks
  at order 7, ten at order 11; same ranks.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse

from ..kernels import kernel_for_key
from . import surfaces
from .dense import single_threaded_blas

__all__ = ["Plan", "compute_plan", "level_plans", "octant_operators", "transfer_vectors",
           "transfer_index"]


def transfer_vectors() -> np.ndarray:
    """The 316 M2L offsets (target -> source, in box edges), shape (316, 3), int64."""
    r = np.arange(-3, 4)
    v = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    return v[np.abs(v).max(axis=1) > 1]


def transfer_index(offsets) -> np.ndarray:
    """Index into :func:`transfer_vectors` of each offset (shape (n, 3)); -1 if not one."""
    table = np.full(343, -1, np.int64)
    v = transfer_vectors()
    table[(v[:, 0] + 3) * 49 + (v[:, 1] + 3) * 7 + (v[:, 2] + 3)] = np.arange(len(v))
    o = np.asarray(offsets, dtype=np.int64)
    flat = np.zeros(o.shape[:-1], np.int64)
    inside = np.ones(o.shape[:-1], bool)
    for d, weight in enumerate((49, 7, 1)):  # one component at a time: millions of pairs
        c = o[..., d] + 3
        inside &= (c >= 0) & (c <= 6)
        flat += c * weight
    flat[~inside] = 0
    return np.where(inside, table[flat], -1)


@dataclass(frozen=True, eq=False)
class Plan:
    """Geometry-independent KIFMM operators for one kernel, order, tolerance and dtype.

    Shapes use ``n = 6 (p - 1)^2 + 2`` surface points and the compression rank ``k``. Every
    matrix has the value dtype.

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
    m2m : ndarray (8, n, n)
        ``parent += m2m[c] @ child`` for a child in octant c.
    l2l : ndarray (8, n, n)
        ``child += l2l[c] @ parent``.
    m2l_vt : ndarray (k, n)
        Compresses a multipole: ``m2l_vt @ multipole``.
    m2l_ptr : ndarray (317,), int64
        Rows ``m2l_ptr[v]:m2l_ptr[v + 1]`` of ``m2l_a`` and ``m2l_b`` belong to vector ``v``.
    m2l_a, m2l_b : ndarray (sum r_v, k)
        Stacked factors of the compressed translations, ``C_v = A_v^T B_v``
        (see :meth:`m2l_factors`).
    m2l_u : ndarray (n, k)
        Expands a compressed check potential into local equivalent densities (folded with
        the downward check-to-equivalent map).
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
    m2l_vt: np.ndarray
    m2l_ptr: np.ndarray
    m2l_a: np.ndarray
    m2l_b: np.ndarray
    m2l_u: np.ndarray

    @property
    def n_surface(self) -> int:
        return self.surface.shape[0]

    @property
    def rank(self) -> int:
        """Rank ``k`` of the shared M2L basis."""
        return self.m2l_vt.shape[0]

    @property
    def m2l_ranks(self) -> np.ndarray:
        """Rank ``r_v`` of each transfer vector's compressed translation, shape (316,)."""
        return np.diff(self.m2l_ptr)

    def m2l_factors(self, vec):
        """``(A_v, B_v)``, each (r_v, k): compressed check = ``A_v^T @ B_v @ compressed
        multipole`` for transfer vector ``vec``."""
        rows = slice(self.m2l_ptr[vec], self.m2l_ptr[vec + 1])
        return self.m2l_a[rows], self.m2l_b[rows]

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))


def _pinv_factors(k):
    """Two-factor pseudo-inverse ``(V / s, U^H)`` dropping s < 4 eps_mach s_max."""
    u, s, vt = scipy.linalg.svd(k, full_matrices=False)
    keep = s > 4 * np.finfo(np.float64).eps * s[0]
    return vt[keep].conj().T / s[keep], u[:, keep].conj().T


#: Extra columns of the random sketch in :func:`_truncated_svd`, beyond the rank it finds.
OVERSAMPLE = 10


def _truncated_svd(c, threshold, seed):
    """``(A, B)``, each (r, k), with ``A^T B`` the SVD of the (k, k) matrix ``c`` truncated to its
    ``r >= 1`` singular values above ``threshold``.

    A randomized range finder (Halko, Martinsson and Tropp 2011, algorithm 4.1) with a sketch of
    at least ``r + OVERSAMPLE`` columns, doubled until it is wide enough: the M2L singular values
    decay exponentially, so the sketch captures the kept ones to far below ``threshold``, and
    the SVD is of a (width, k) matrix instead of (k, k), several times cheaper at the ranks of
    M2L. The sketch is seeded (``seed``): plans are reproducible.
    """
    k = c.shape[1]
    rng = np.random.default_rng(seed)
    width = min(k, 4 * OVERSAMPLE)
    while True:
        basis = np.linalg.qr(c @ rng.standard_normal((k, width)))[0]  # (k, width)
        u, s, wt = scipy.linalg.svd(basis.conj().T @ c, full_matrices=False)
        r = max(1, int(np.sum(s > threshold)))
        if r + OVERSAMPLE <= width or width == k:
            return ((basis @ u[:, :r]) * s[:r]).T, wt[:r]
        width = min(k, 2 * width)


def _r_factor(blocks, n):
    """R of the QR factorisation of the vertical stack of ``blocks`` (each (rows, n)), built
    a few blocks at a time so the stack is never held whole."""
    r = np.zeros((0, n), blocks[0].dtype)
    batch = []
    for i, blk in enumerate(blocks):
        batch.append(blk)
        if len(batch) == 16 or i == len(blocks) - 1:
            r = scipy.linalg.qr(np.vstack([r, *batch]), mode="r", check_finite=False)[0][:n]
            batch = []
    return r


def _octant_offsets():
    c = np.arange(8)
    return np.stack([c & 1, (c >> 1) & 1, (c >> 2) & 1], axis=1) * 2.0 - 1.0


@functools.lru_cache(maxsize=32)
def _octant_permutations(order: int) -> np.ndarray:
    """``perm[c, i]``: the surface point that is point ``i`` reflected from octant 0 into
    octant ``c``, shape (8, n), int64. Computed on the surface's integer grid, so exact."""
    surf = surfaces.surface(order)
    grid = np.rint((surf + 1.0) * (order - 1) / 2).astype(np.int64)  # 0 .. order-1 per axis
    index = np.full(order**3, -1, np.int64)
    index[(grid[:, 0] * order + grid[:, 1]) * order + grid[:, 2]] = np.arange(len(surf))
    perm = np.empty((8, len(surf)), np.int64)
    for c, sign in enumerate(-_octant_offsets()):  # octant 0 has offset (-1, -1, -1)
        g = np.where(sign < 0, order - 1 - grid, grid)
        perm[c] = index[(g[:, 0] * order + g[:, 1]) * order + g[:, 2]]
    return perm


def octant_operators(first: np.ndarray, order: int) -> np.ndarray:
    """The M2M or L2L operators of the 8 octants from octant 0's.

    Parameters
    ----------
    first : ndarray (1, n, n) or (n, n)
        Octant 0's operator, on the order-``order`` surface.

    Returns
    -------
    ndarray (8, n, n), C-contiguous, of ``first``'s dtype
        ``out[c][i, j] = first[perm_c[i], perm_c[j]]``, with ``perm_c`` the reflection of the
        surface from octant 0 into octant ``c``.

    Raises
    ------
    ValueError
        When ``first`` is not one square operator on that surface.
    """
    perm = _octant_permutations(int(order))
    n = perm.shape[1]
    first = np.asarray(first)
    if first.shape not in {(n, n), (1, n, n)}:
        raise ValueError(f"an octant-0 operator of the order-{order} surface has shape "
                         f"({n}, {n}), got {first.shape}")
    return np.ascontiguousarray(first.reshape(n, n)[perm[:, :, None], perm[:, None, :]])


def level_plans(kernel, wavenumber, expansion_order, compression_tol, value_dtype,
                half_widths, loader=None) -> list:
    """The Plan of each tree level, from ``loader`` (default :func:`compute_plan`).

    A scale-invariant kernel shares one plan among all levels. A kernel with a homogeneity law
    and a wavenumber gets, at level l, the reference plan at the wavenumber ``k h_l``; one
    without a law, the plan of boxes of half-width ``h_l`` (``scale=h_l``). Levels 0 and 1 have
    no V list, so their plans skip the M2L operators.

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
        ``loader(kernel_key, order, compression_tol, dtype_str, wavenumber, m2l=..., scale=...)``
        as :func:`compute_plan`; ``scale`` is passed only for a kernel without a law.
    """
    load = compute_plan if loader is None else loader
    args = (kernel.key, expansion_order, compression_tol, np.dtype(value_dtype).str)
    if kernel.scale_invariant:
        return [load(*args, wavenumber)] * len(half_widths)
    if kernel.homogeneity is not None:
        return [load(*args, wavenumber=wavenumber * h, m2l=level >= 2)
                for level, h in enumerate(half_widths)]
    return [load(*args, wavenumber=wavenumber, m2l=level >= 2, scale=float(h))
            for level, h in enumerate(half_widths)]


@functools.lru_cache(maxsize=16)
def compute_plan(kernel_name: str, expansion_order: int, compression_tol: float,
                 dtype: str, wavenumber=None, radii=None, m2l=True, scale=None) -> Plan:
    """The :class:`Plan` (see the module docstring) with matrices of ``dtype``.

    Arguments must be hashable; results are memoised in memory (the disk cache is
    :mod:`fmmsolve.cache`). ``radii`` is ``(up_equiv, up_check, down_equiv, down_check)`` in box
    half-widths, default :func:`~fmmsolve.operators.surfaces.radii`; ``wavenumber`` is passed to
    the kernel (None for Laplace). ``m2l=False`` leaves the M2L operators empty (rank 0, every
    ``r_v`` 0): the plans of tree levels 0 and 1, which no V list reaches, skip most of the
    work. ``kernel_name`` is a built-in kernel's name or any kernel's
    :attr:`~fmmsolve.kernels.Kernel.key`. ``scale``: for a kernel without a homogeneity law,
    the half-width h of the boxes the plan is for; its operators are those of the reference
    box for the kernel ``h G(h x, h y)``, so that the check-to-equivalent maps at half-width h
    are again ``h`` times the reference ones (``scale_degree`` 1).
    """
    radii = surfaces.radii() if radii is None else tuple(float(r) for r in radii)
    real = np.finfo(np.dtype(dtype)).dtype  # "<c16" -> float64, "<c8" -> float32
    if real == np.float64:
        return _compute_plan64(kernel_name, expansion_order, compression_tol, wavenumber, radii,
                               m2l, scale)
    base = compute_plan(kernel_name, expansion_order, compression_tol, "<f8", wavenumber, radii,
                        m2l, scale)

    def cast(name, v):
        if not isinstance(v, np.ndarray) or v.dtype.kind not in "fc" or name == "surface":
            return v
        to = real if v.dtype.kind == "f" else np.result_type(real, np.complex64)
        return np.ascontiguousarray(v, dtype=to)  # complex128 -> complex64 for float32

    return Plan(**{name: cast(name, v) for name, v in vars(base).items()})


@functools.lru_cache(maxsize=16)
def _compute_plan64(kernel_name, expansion_order, compression_tol, wavenumber, radii, m2l,
                    scale):
    # Hundreds of small factorisations: BLAS threads cost more in wake-ups than they save
    # (4x slower on two cores when GEMM and LAPACK calls alternate).
    with single_threaded_blas():  # the shared count: safe when fits run in several threads
        return _compute_plan64_serial(kernel_name, expansion_order, compression_tol, wavenumber,
                                      radii, m2l, scale)


def _compute_plan64_serial(kernel_name, expansion_order, compression_tol, wavenumber, radii,
                           m2l=True, scale=None):
    kernel = kernel_for_key(kernel_name)
    if scale is None:
        degree = 1 if kernel.homogeneity is None else kernel.homogeneity
        mat = lambda t, s: kernel.matrix(t, s, wavenumber)  # noqa: E731
    else:  # the reference box's operators for the kernel h G(h x, h y): see compute_plan
        degree, h = 1, float(scale)
        mat = lambda t, s: h * kernel.matrix(h * t, h * s, wavenumber)  # noqa: E731
    up_equiv, up_check, down_equiv, down_check = radii
    surf = surfaces.surface(expansion_order)

    uc2e_a, uc2e_b = _pinv_factors(mat(up_check * surf, up_equiv * surf))
    dc2e_a, dc2e_b = _pinv_factors(mat(down_check * surf, down_equiv * surf))

    # L2L ends in the child's downward check-to-equivalent map. For a scale-invariant kernel it
    # is the reference one times 0.5**degree; otherwise it is the map of a half-width-0.5 box at
    # this plan's wavenumber (the next level's plan, seen in this level's frame).
    if kernel.scale_invariant:
        child_a, child_b = dc2e_a, dc2e_b
    else:
        child_a, child_b = _pinv_factors(mat(0.5 * down_check * surf, 0.5 * down_equiv * surf))
    off = _octant_offsets()[0] * 0.5  # children have half-width 0.5; the others by symmetry
    k_up = mat(up_check * surf, off + 0.5 * up_equiv * surf)
    m2m = octant_operators(uc2e_a @ (uc2e_b @ k_up), expansion_order)
    k_down = mat(off + 0.5 * down_check * surf, down_equiv * surf)
    l2l = child_a @ (child_b @ k_down)
    l2l = octant_operators(0.5**degree * l2l if kernel.scale_invariant else l2l, expansion_order)

    n = len(surf)
    if m2l:
        m2l_vt, m2l_ptr, m2l_a, m2l_b, m2l_u = _m2l_operators(
            mat, expansion_order, up_equiv, down_check, compression_tol, dc2e_a, dc2e_b)
    else:
        dtype = uc2e_a.dtype  # rank k = 0: shapes (k, n), (0, k), (0, k), (n, k)
        m2l_vt, m2l_a, m2l_b = np.zeros((0, n), dtype), np.zeros((0, 0), dtype), \
            np.zeros((0, 0), dtype)
        m2l_ptr, m2l_u = np.zeros(len(transfer_vectors()) + 1, np.int64), np.zeros((n, 0), dtype)
    cast = np.ascontiguousarray
    return Plan(
        kernel_name=kernel.name,
        expansion_order=int(expansion_order),
        compression_tol=float(compression_tol),
        scale_degree=degree,
        surface=surf,
        uc2e_a=cast(uc2e_a), uc2e_b=cast(uc2e_b),
        dc2e_a=cast(dc2e_a), dc2e_b=cast(dc2e_b),
        m2m=m2m, l2l=l2l,
        m2l_vt=cast(m2l_vt), m2l_ptr=m2l_ptr, m2l_a=cast(m2l_a), m2l_b=cast(m2l_b),
        m2l_u=cast(m2l_u),
    )


def _m2l_operators(mat, order, up_equiv, down_check, compression_tol, dc2e_a, dc2e_b):
    """The compressed M2L of the module docstring: ``(m2l_vt, m2l_ptr, m2l_a, m2l_b, m2l_u)``,
    computed from the 56 transfer vectors with no negative component (see "Reflections" in
    the module docstring)."""
    surf = surfaces.surface(order)
    basis, character = _reflection_basis(order)  # (n, n) orthogonal; (n,) in 0..7
    blocks = [np.flatnonzero(character == a) for a in range(8)]
    vectors = transfer_vectors()
    reps, rep_of = np.unique(np.abs(vectors), axis=0, return_inverse=True)
    weight = np.sqrt(2.0 ** np.count_nonzero(reps, axis=1))  # square root of the orbit's size
    check = down_check * surf
    # K_v in the reflection basis, T_v = W^T K_v W; W has at most 8 entries per column
    w_t = scipy.sparse.csr_array(basis.T)
    t_v = [w_t @ (w_t @ mat(check, 2.0 * v + up_equiv * surf).T).T for v in reps]
    n = len(surf)
    fat, thin = [], []  # per character: (singular values, singular vectors in W coordinates)
    for rows in blocks:
        r_fat = _r_factor([w * t[rows].conj().T for w, t in zip(weight, t_v)], len(rows))
        u, s, _ = scipy.linalg.svd(r_fat.conj().T)
        fat.append((s, _embed(u, rows, n)))
        r_thin = _r_factor([w * t[:, rows] for w, t in zip(weight, t_v)], len(rows))
        _, s, vt = scipy.linalg.svd(r_thin)
        thin.append((s, _embed(vt.conj().T, rows, n)))
    s_fat, u_w, u_char = _by_singular_value(fat)
    s_thin, v_w, v_char = _by_singular_value(thin)
    rank = max(int(np.sum(s_fat > compression_tol * s_fat[0])),
               int(np.sum(s_thin > compression_tol * s_thin[0])))
    u_w, v_w = np.ascontiguousarray(u_w[:, :rank]), np.ascontiguousarray(v_w[:, :rank])
    threshold = 0.25 * compression_tol * s_fat[0]
    u_h = np.ascontiguousarray(u_w.conj().T)
    factors = [_truncated_svd(u_h @ t @ v_w, threshold, seed=i) for i, t in enumerate(t_v)]
    # A vector's reflection s v has C_{s v} = D_s C_v D'_s, D_s the characters of the basis
    # columns at s: its factors are the representative's with columns negated.
    sign, flip = _characters(), (vectors < 0) @ (1, 2, 4)  # sign[a, s]; v = flip[v] |v|
    m2l_a = [factors[i][0] * sign[u_char[:rank], s] for i, s in zip(rep_of.ravel(), flip)]
    m2l_b = [factors[i][1] * sign[v_char[:rank], s] for i, s in zip(rep_of.ravel(), flip)]
    m2l_ptr = np.concatenate([[0], np.cumsum([len(a) for a in m2l_a])])
    u_k, vt_k = basis @ u_w, (basis @ v_w).conj().T
    m2l_u = dc2e_a @ (dc2e_b @ u_k)
    return vt_k, m2l_ptr.astype(np.int64), np.vstack(m2l_a), np.vstack(m2l_b), m2l_u


def _characters() -> np.ndarray:
    """``sign[a, s] = (-1)^popcount(a & s)``, shape (8, 8), float64: the characters of the
    group of axis reflections, ``s`` (and ``a``) a mask of flipped axes (bit d: axis d)."""
    a = np.arange(8)
    bits = np.bitwise_and.outer(a, a)
    parity = (bits & 1) ^ ((bits >> 1) & 1) ^ ((bits >> 2) & 1)
    return 1.0 - 2.0 * parity


@functools.lru_cache(maxsize=32)
def _reflection_basis(order: int):
    """An orthonormal basis of the order-``order`` surface's functions, each column even or odd
    under each axis reflection: ``(basis, character)``, shapes (n, n) float64 and (n,) int64.

    Column ``j`` satisfies ``basis[perm[s], j] = sign[character[j], s] * basis[:, j]`` for every
    flip mask ``s`` (``perm`` of :func:`_octant_permutations`, ``sign`` of :func:`_characters`).
    """
    perm = _octant_permutations(order)  # perm[s]: the reflection by flip mask s (an involution)
    n = perm.shape[1]
    orbit_reps = np.unique(perm.min(axis=0))
    sign = _characters()
    columns, character = [], []
    for a in range(8):
        vec = np.zeros((n, len(orbit_reps)))
        for s in range(8):  # sum_s chi_a(s) e_{s i}: points a reflection fixes add up or cancel
            np.add.at(vec, (perm[s, orbit_reps], np.arange(len(orbit_reps))), sign[a, s])
        norm = np.linalg.norm(vec, axis=0)
        keep = norm > 0.5
        columns.append(vec[:, keep] / norm[keep])
        character.append(np.full(keep.sum(), a, np.int64))
    basis, character = np.hstack(columns), np.concatenate(character)
    assert basis.shape == (n, n)
    return basis, character


def _embed(vectors, rows, n):
    """``vectors`` (len(rows), m) as the (n, m) matrix that is zero outside ``rows``."""
    out = np.zeros((n, vectors.shape[1]), vectors.dtype)
    out[rows] = vectors
    return out


def _by_singular_value(blocks):
    """Merge per-character SVDs ``[(s, vectors (n, m_a)), ...]`` into one, by decreasing
    singular value: ``(s, vectors, character of each column)``."""
    s = np.concatenate([b[0] for b in blocks])
    order = np.argsort(-s, kind="stable")
    vectors = np.hstack([b[1] for b in blocks])[:, order]
    char = np.concatenate([np.full(len(b[0]), a, np.int64) for a, b in enumerate(blocks)])
    return s[order], vectors, char[order]
