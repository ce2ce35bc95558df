"""The SVD-compressed M2L strategy (``"svd"``, the default): low-rank translations applied as
batched matrix products.

Precomputation (:func:`precompute`). The translations ``K_v`` (target check <- source
equivalent) of the 316 transfer vectors are compressed in two stages. First a shared basis from
the SVDs of their horizontal and vertical stacks: ``K_v ~ U C_v V^T``, of rank ``k`` (the larger
number of singular values above ``compression_tol * s_max``). ``k`` is large (169 of 218 at
order 7) because it spans every direction at once. Then each ``C_v`` alone has a much lower rank
``r_v`` (25 on average at order 7): ``C_v ~ A_v^T B_v`` keeps its singular values above the same
absolute threshold, which cuts the M2L flops per pair from ``2 k^2`` to ``4 k r_v``. The
target's check-to-equivalent map is folded into ``U`` once here. At evaluation time the work is
``local += u @ A_v^T @ B_v @ (vt @ multipole)``, with one matrix product per transfer vector
over all pairs that share it (:class:`SVDData` holds ``vt``, ``a``, ``b``, ``u``).

Reflections: the 8 axis reflections ``s`` permute the surface (``P_s``) and the transfer
vectors, and a radial kernel has ``K_{s v} = P_s K_v P_s``. In a basis ``W`` of surface
functions each even or odd under each reflection (:func:`reflection_basis`), the stacks of all
316 ``W^T K_v W`` split into 8 independent blocks of about ``n / 8`` rows, and each block's Gram
matrix is a weighted sum over the 56 vectors with no negative component. So ``U`` and ``V`` come
from 16 small QR factorisations of 56 blocks instead of two of 316, their columns are even or
odd, and ``C_{s v}`` is ``C_v`` with rows and columns negated: only 56 of the 316 second-stage
SVDs are computed. (Five times faster than the plain stacks at order 7, ten at order 11; same
ranks.)

Evaluation (:func:`apply`), over the schedule of :mod:`~fmmsolve.operators.m2l.base`: the
multipoles are compressed (``vt``) in one product, then within a chunk each group of pairs that
share a transfer vector is gathered, multiplied by the vector's two factors (BLAS, kept
single-threaded: the only level of threading is the ``prange``), and scatter-added into the
targets' compressed check potentials, which ``u`` expands at the end.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np
import scipy.linalg
import scipy.sparse

from ..._jit import jit, prange
from .. import surfaces
from ..dense import add_products, rmul, single_threaded_blas
from .base import (M2LData, gather_group, scatter_group, schedule, shift_arguments,
                   transfer_vectors)

__all__ = ["NAME", "MAX_ORDER", "Data", "SVDData", "precompute", "empty", "schedule", "apply",
           "characters", "reflection_basis"]

NAME = "svd"
#: Highest expansion order (the engine's own limit): the compression keeps memory small.
MAX_ORDER = 16

_VALUE, _I8 = "value", np.dtype(np.int64)


@dataclass(frozen=True, eq=False)
class SVDData(M2LData):
    """The compressed translations, for ``n`` surface points and the shared rank ``k``. Every
    matrix has the plan's value dtype.

    Attributes
    ----------
    vt : ndarray (k, n)
        Compresses a multipole: ``vt @ multipole``.
    ptr : ndarray (317,), int64
        Rows ``ptr[v]:ptr[v + 1]`` of ``a`` and ``b`` belong to transfer vector ``v``.
    a, b : ndarray (sum r_v, k)
        Stacked factors of the compressed translations, ``C_v = A_v^T B_v``
        (see :meth:`factors`).
    u : ndarray (n, k)
        Expands a compressed check potential into local equivalent densities (folded with
        the downward check-to-equivalent map).
    """

    vt: np.ndarray
    ptr: np.ndarray
    a: np.ndarray
    b: np.ndarray
    u: np.ndarray

    strategy = NAME
    RULES = {"vt": (_VALUE, ("k", "n")), "ptr": (_I8, ("vectors+1",)),
             "a": (_VALUE, ("rows", "k")), "b": (_VALUE, ("rows", "k")),
             "u": (_VALUE, ("n", "k"))}

    @property
    def rank(self) -> int:
        """Rank ``k`` of the shared M2L basis."""
        return self.vt.shape[0]

    @property
    def ranks(self) -> np.ndarray:
        """Rank ``r_v`` of each transfer vector's compressed translation, shape (316,)."""
        return np.diff(self.ptr)

    def factors(self, vec):
        """``(A_v, B_v)``, each (r_v, k): compressed check = ``A_v^T @ B_v @ compressed
        multipole`` for transfer vector ``vec``."""
        rows = slice(self.ptr[vec], self.ptr[vec + 1])
        return self.a[rows], self.b[rows]

    def inconsistency(self, n, dtype):
        ptr, k = self.ptr, self.vt.shape[0] if self.vt.ndim == 2 else -1
        if ptr.dtype != _I8 or ptr.shape != (len(transfer_vectors()) + 1,) or ptr[0] != 0 \
                or np.any(np.diff(ptr) < 0):
            return "malformed M2L row pointers"
        shapes = {"vt": (k, n), "a": (ptr[-1], k), "b": (ptr[-1], k), "u": (n, k)}
        for name, shape in shapes.items():
            a = getattr(self, name)
            if a.dtype != np.dtype(dtype) or a.shape != shape:
                return f"m2l_{name} of shape {a.shape} and dtype {a.dtype}, not {shape} {dtype}"
        return None


#: The strategy's data record (the name the registry's contract uses).
Data = SVDData


def empty(n, dtype) -> SVDData:
    """The record of a plan without M2L operators: rank k = 0, every ``r_v`` 0."""
    ptr = np.zeros(len(transfer_vectors()) + 1, np.int64)
    return SVDData(vt=np.zeros((0, n), dtype), ptr=ptr, a=np.zeros((0, 0), dtype),
                   b=np.zeros((0, 0), dtype), u=np.zeros((n, 0), dtype))


def precompute(mat, order, up_equiv, down_check, compression_tol, dc2e_a, dc2e_b, *,
               parities=(0,)) -> SVDData:
    """The compressed translations of the module docstring, in float64 (complex128 for a
    complex kernel).

    Parameters
    ----------
    mat : callable
        ``mat(targets, sources)``: the kernel's (n_t, n_s) matrix between two (n, 3) point sets.
    order : int
        Expansion order (the surface has ``n = 6 (order - 1)^2 + 2`` points).
    up_equiv, down_check : float
        Radii of the source's upward equivalent and the target's downward check surfaces.
    compression_tol : float
        Relative singular-value threshold of the compression.
    dc2e_a, dc2e_b : ndarray (n, r), (r, n)
        The downward check-to-equivalent map, folded into ``u``.
    parities : tuple of int
        The kernel's :attr:`~fmmsolve.kernels.Kernel.parities`: with ``C`` components every
        ``n`` above is ``C n`` and the reflections also change the components' signs.
    """
    cast = np.ascontiguousarray
    vt, ptr, a, b, u = _m2l_operators(mat, order, up_equiv, down_check, compression_tol,
                                      dc2e_a, dc2e_b, tuple(parities))
    return SVDData(vt=cast(vt), ptr=ptr, a=cast(a), b=cast(b), u=cast(u))


#: Most rows (pairs times columns) of one M2L product; a chunk's groups never exceed it with
#: one column (CHUNK_BOXES targets: one pair per target per vector).
BLOCK_ROWS = 256

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


def _m2l_operators(mat, order, up_equiv, down_check, compression_tol, dc2e_a, dc2e_b,
                   parities=(0,)):
    """The compressed M2L of the module docstring: the arrays ``(vt, ptr, a, b, u)``,
    computed from the 56 transfer vectors with no negative component (see "Reflections" in
    the module docstring)."""
    surf = surfaces.surface(order)
    basis, character = _component_basis(order, parities)  # (n, n) orthogonal; (n,) in 0..7
    blocks = [np.flatnonzero(character == a) for a in range(8)]
    vectors = transfer_vectors()
    reps, rep_of = np.unique(np.abs(vectors), axis=0, return_inverse=True)
    weight = np.sqrt(2.0 ** np.count_nonzero(reps, axis=1))  # square root of the orbit's size
    check = down_check * surf
    # K_v in the reflection basis, T_v = W^T K_v W; W has at most 8 entries per column
    w_t = scipy.sparse.csr_array(basis.T)
    t_v = [w_t @ (w_t @ mat(check, 2.0 * v + up_equiv * surf).T).T for v in reps]
    n = len(basis)
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
    sign, flip = characters(), (vectors < 0) @ (1, 2, 4)  # sign[a, s]; v = flip[v] |v|
    m2l_a = [factors[i][0] * sign[u_char[:rank], s] for i, s in zip(rep_of.ravel(), flip)]
    m2l_b = [factors[i][1] * sign[v_char[:rank], s] for i, s in zip(rep_of.ravel(), flip)]
    m2l_ptr = np.concatenate([[0], np.cumsum([len(a) for a in m2l_a])])
    u_k, vt_k = basis @ u_w, (basis @ v_w).conj().T
    m2l_u = dc2e_a @ (dc2e_b @ u_k)
    return vt_k, m2l_ptr.astype(np.int64), np.vstack(m2l_a), np.vstack(m2l_b), m2l_u


def characters() -> np.ndarray:
    """``sign[a, s] = (-1)^popcount(a & s)``, shape (8, 8), float64: the characters of the
    group of axis reflections, ``s`` (and ``a``) a mask of flipped axes (bit d: axis d)."""
    a = np.arange(8)
    bits = np.bitwise_and.outer(a, a)
    parity = (bits & 1) ^ ((bits >> 1) & 1) ^ ((bits >> 2) & 1)
    return 1.0 - 2.0 * parity


@functools.lru_cache(maxsize=32)
def reflection_basis(order: int):
    """An orthonormal basis of the order-``order`` surface's functions, each column even or odd
    under each axis reflection: ``(basis, character)``, shapes (n, n) float64 and (n,) int64.

    Column ``j`` satisfies ``basis[perm[s], j] = sign[character[j], s] * basis[:, j]`` for every
    flip mask ``s`` (``perm`` of :func:`~fmmsolve.operators.surfaces.octant_permutations`,
    ``sign`` of :func:`characters`).
    """
    perm = surfaces.octant_permutations(order)  # perm[s]: reflection by flip mask s, an involution
    n = perm.shape[1]
    orbit_reps = np.unique(perm.min(axis=0))
    sign = characters()
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


def _component_basis(order: int, parities):
    """:func:`reflection_basis` for an expansion of ``len(parities)`` components,
    component-major: one copy of the surface's basis per component, whose characters are
    the surface's composed with the component's own (its parity mask, see
    :mod:`fmmsolve.kernels.pair`); the scalar basis itself for one component of parity 0."""
    basis, character = reflection_basis(order)
    if tuple(parities) == (0,):
        return basis, character
    return (scipy.linalg.block_diag(*[basis] * len(parities)),
            np.concatenate([character ^ p for p in parities]))


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


@jit(parallel=True)
def _translate_chunks(compressed, targets, sources, group_ptr, group_vec, chunk_ptr, m2l_ptr,
                      m2l_a, m2l_b, check, shift, scale, vectors):
    """``check[t] += A_v^T B_v compressed[s]`` (per column) for every scheduled pair.

    ``compressed`` and ``check`` are (n_boxes, m, k); the factors are ``(sum r_v, k)``. The
    compression acts on each column alone, so moment columns are shifted here
    (:func:`~.base.gather_group`; ``vectors``: :func:`~.base.transfer_vectors`).
    """
    m, k = compressed.shape[1], compressed.shape[2]
    r_max = 0
    for v in range(m2l_ptr.shape[0] - 1):
        r_max = max(r_max, m2l_ptr[v + 1] - m2l_ptr[v])
    # Pairs per product: at most BLOCK_ROWS rows, so that the buffers stay in cache whatever
    # the number of columns (with 32 columns, whole groups took 5x longer per column).
    block = max(1, BLOCK_ROWS // m)
    for c in prange(chunk_ptr.shape[0] - 1):
        largest = 0
        for g in range(chunk_ptr[c], chunk_ptr[c + 1]):
            largest = max(largest, min(block, group_ptr[g + 1] - group_ptr[g]))
        # Buffers reused by every group of the chunk: the products write into them (``out``),
        # so no array is allocated per group.
        x = np.empty((largest * m, k), compressed.dtype)
        mid = np.empty(largest * m * r_max, compressed.dtype)
        y = np.empty((largest * m, k), compressed.dtype)
        for g in range(chunk_ptr[c], chunk_ptr[c + 1]):
            r0, r1 = m2l_ptr[group_vec[g]], m2l_ptr[group_vec[g] + 1]
            for a in range(group_ptr[g], group_ptr[g + 1], block):
                b = min(group_ptr[g + 1], a + block)
                rows = (b - a) * m
                gather_group(x, compressed, sources, a, b, shift, scale,
                             vectors[group_vec[g]])
                t = mid[:rows * (r1 - r0)].reshape((rows, r1 - r0))
                np.dot(x[:rows], m2l_b[r0:r1].T, t)
                np.dot(t, m2l_a[r0:r1], y[:rows])
                scatter_group(check, y, targets, a, b)


def apply(sched, data: SVDData, multipole, local, shift=None):
    """``local += M2L(multipole)`` over every V-list pair.

    Parameters
    ----------
    sched : M2LSchedule
    data : SVDData
        Its matrices have the dtype of ``multipole``.
    multipole : ndarray (n_boxes, m, n_surface)
        Equivalent densities of the multipole expansions.
    local : ndarray (n_boxes, m, n_surface)
        Local equivalent densities, updated in place.
    shift : (table, edges) or None
        Moment columns to move to each target's centre (:func:`~.base.shift_arguments`).
    """
    n_boxes, m = multipole.shape[:2]
    k = data.rank
    check = np.zeros((n_boxes, m, k), multipole.dtype)
    with single_threaded_blas():
        compressed = rmul(multipole, data.vt)
        # Chunks differ in work, so hand them out one at a time.
        with numba.parallel_chunksize(1):
            _translate_chunks(compressed, sched.targets, sched.sources, sched.group_ptr,
                              sched.group_vec, sched.chunk_ptr, data.ptr, data.a, data.b, check,
                              *shift_arguments(shift))
        add_products(local, sched.v_targets, check, sched.v_targets, data.u)
