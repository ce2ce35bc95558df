"""M2L, the V-list translations, as batched matrix products over cache-sized chunks.

The pairs (target box, source box) are sorted by chunk of consecutive target boxes and then by
transfer vector (:func:`schedule`). Boxes are numbered in Morton order within each level, so a
chunk is a compact region of space. The expansions that a chunk reads and writes therefore stay
in the last-level cache while all 316 transfer vectors are applied. A single pass per vector
over every box would instead stream them all from memory 316 times.

One compiled ``prange`` runs over the chunks; chunks own disjoint target boxes, so no two
threads write the same row. Within a chunk, each group of pairs that share a transfer vector
is gathered, multiplied by the vector's two factors (BLAS, kept single-threaded: the only level
of threading is the ``prange``), and scatter-added into the targets' compressed check
potentials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .._jit import jit, prange
from .dense import rmul, single_threaded_blas
from .plan import Plan

__all__ = ["M2LSchedule", "schedule", "apply"]

#: Target boxes per chunk. Small chunks keep each thread's rows in its own cache and balance the
#: threads; groups stay large enough (up to this many pairs) for efficient matrix products.
CHUNK_BOXES = 256

@dataclass(frozen=True)
class M2LSchedule:
    """The V-list pairs in the order :func:`apply` visits them.

    Attributes
    ----------
    targets, sources : ndarray (n_pairs,), int64
        Box indices of each pair.
    group_ptr : ndarray (n_groups + 1,), int64
        Pairs ``group_ptr[g]:group_ptr[g + 1]`` share a chunk and a transfer vector.
    group_vec : ndarray (n_groups,), int64
        Transfer vector of each group (index into ``plan.transfer_vectors()``).
    chunk_ptr : ndarray (n_chunks + 1,), int64
        Groups ``chunk_ptr[c]:chunk_ptr[c + 1]`` belong to chunk ``c``.
    v_targets : ndarray, int64
        The boxes with a non-empty V list, sorted.
    """

    targets: np.ndarray
    sources: np.ndarray
    group_ptr: np.ndarray
    group_vec: np.ndarray
    chunk_ptr: np.ndarray
    v_targets: np.ndarray


def schedule(targets, sources, vectors, chunk_boxes) -> M2LSchedule:
    """Sort V-list pairs into groups of (chunk of ``chunk_boxes`` targets, transfer vector).

    Parameters
    ----------
    targets, sources, vectors : ndarray (n_pairs,), int64
        One row per V-list pair: target box, source box, transfer vector index.
    chunk_boxes : int
        Consecutive target boxes per chunk.
    """
    key = (targets // chunk_boxes) * 316 + vectors
    order = np.argsort(key, kind="stable")
    key = key[order]
    group_ptr = _run_starts(key)
    group_key = key[group_ptr[:-1]]
    chunk_ptr = _run_starts(group_key // 316)
    return M2LSchedule(targets=targets[order], sources=sources[order], group_ptr=group_ptr,
                       group_vec=group_key % 316, chunk_ptr=chunk_ptr,
                       v_targets=np.flatnonzero(np.bincount(targets)))


def _run_starts(sorted_keys):
    """CSR pointer of the runs of equal values in ``sorted_keys`` (``[0]`` when empty)."""
    cuts = np.flatnonzero(np.diff(sorted_keys)) + 1
    return np.concatenate([[0], cuts, [len(sorted_keys)] if len(sorted_keys) else []]
                          ).astype(np.int64)


@jit(parallel=True)
def _translate_chunks(compressed, targets, sources, group_ptr, group_vec, chunk_ptr, m2l_ptr,
                      m2l_a, m2l_b, check):
    """``check[t] += A_v^T B_v compressed[s]`` (per column) for every scheduled pair.

    ``compressed`` and ``check`` are (n_boxes, m, k); the factors are ``(sum r_v, k)``.
    """
    m, k = compressed.shape[1], compressed.shape[2]
    r_max = 0
    for v in range(m2l_ptr.shape[0] - 1):
        r_max = max(r_max, m2l_ptr[v + 1] - m2l_ptr[v])
    for c in prange(chunk_ptr.shape[0] - 1):
        largest = 0
        for g in range(chunk_ptr[c], chunk_ptr[c + 1]):
            largest = max(largest, group_ptr[g + 1] - group_ptr[g])
        # Buffers reused by every group of the chunk: the products write into them (``out``),
        # so no array is allocated per group.
        x = np.empty((largest * m, k), compressed.dtype)
        mid = np.empty(largest * m * r_max, compressed.dtype)
        y = np.empty((largest * m, k), compressed.dtype)
        for g in range(chunk_ptr[c], chunk_ptr[c + 1]):
            a, b = group_ptr[g], group_ptr[g + 1]
            rows = (b - a) * m
            for i in range(b - a):
                s = sources[a + i]
                for j in range(m):
                    for col in range(k):
                        x[i * m + j, col] = compressed[s, j, col]
            r0, r1 = m2l_ptr[group_vec[g]], m2l_ptr[group_vec[g] + 1]
            t = mid[:rows * (r1 - r0)].reshape((rows, r1 - r0))
            np.dot(x[:rows], m2l_b[r0:r1].T, t)
            np.dot(t, m2l_a[r0:r1], y[:rows])
            for i in range(b - a):
                t_box = targets[a + i]
                for j in range(m):
                    for col in range(k):
                        check[t_box, j, col] += y[i * m + j, col]


def apply(sched: M2LSchedule, plan: Plan, multipole, local):
    """``local += M2L(multipole)`` over every V-list pair.

    Parameters
    ----------
    sched : M2LSchedule
    plan : Plan
        Its matrices have the dtype of ``multipole``.
    multipole : ndarray (n_boxes, m, n_surface)
        Equivalent densities of the multipole expansions.
    local : ndarray (n_boxes, m, n_surface)
        Local equivalent densities, updated in place.
    """
    n_boxes, m = multipole.shape[:2]
    k = plan.rank
    check = np.zeros((n_boxes, m, k), multipole.dtype)
    with single_threaded_blas():
        compressed = rmul(multipole, plan.m2l_vt)
        # Chunks differ in work, so hand them out one at a time.
        with numba.parallel_chunksize(1):
            _translate_chunks(compressed, sched.targets, sched.sources, sched.group_ptr,
                              sched.group_vec, sched.chunk_ptr, plan.m2l_ptr, plan.m2l_a,
                              plan.m2l_b, check)
        vt = sched.v_targets
        local[vt] += rmul(check[vt], plan.m2l_u)
