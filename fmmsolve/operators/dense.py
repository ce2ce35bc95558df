"""Dense products of stacked expansions with one small operator matrix, threaded by Numba.

The engine multiplies stacks of equivalent densities, of shape (n_boxes, m, k), by small fixed
matrices: the check-to-equivalent factors of P2M and P2L, M2M, L2L, and the M2L basis. Through
NumPy, each of these products runs in multithreaded BLAS, between compiled ``prange`` passes.
The two thread pools then wait on each other. Measured on 2 cores, an M2M or L2L pass cost
0.13 s whatever its size, and the whole matvec at 2e4 points was 5x slower for it.

So BLAS is held to one thread for a whole evaluation (:func:`single_threaded_blas`), and the
products big enough to matter are split into blocks of rows over a ``prange``. This keeps one
level of threading, and it is Numba's.

BLAS thread counts are process-wide, so the limit is too: a lock-protected count of the
evaluations in progress, in any Python thread. The first to enter saves the settings and limits
BLAS, the last to leave restores them. Nesting threadpoolctl's own save/restore across threads
is not safe: A saves N and limits to 1, B saves 1, A restores N, B restores 1, and BLAS stays
at one thread for good.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

from .._jit import jit, prange

__all__ = ["add_products", "rmul", "single_threaded_blas"]

#: Rows per block: enough for an efficient single-threaded product, and many blocks per thread.
ROWS = 128
#: Below this many rows a product runs on the calling thread: starting the threads would cost
#: more than it saves, and on a busy machine a waking thread can wait milliseconds for a core.
PARALLEL_ROWS = 2048


@functools.cache
def _controller():
    # Numba's np.dot calls SciPy's BLAS, a separate library from NumPy's: load it before the
    # controller takes its inventory of the BLAS libraries to limit.
    import scipy.linalg.cython_blas  # noqa: F401

    return ThreadpoolController()


class _BlasLimit:
    """The process-wide state of :func:`single_threaded_blas`: how many callers are inside, and
    the threadpoolctl limiter (holding the original settings) while any is."""

    lock = threading.Lock()
    users = 0
    limiter = None


def _release_openblas_control():
    # threadpoolctl >= 3.6 lets only the thread that last limited OpenBLAS change it again.
    # Here the last caller out, on any thread, restores: give control back around each change
    # (under our lock) so that the restore takes effect and no worker thread keeps control.
    try:
        from threadpoolctl import OpenBLASController
    except ImportError:  # older threadpoolctl: no per-thread control to release
        return
    release = getattr(OpenBLASController, "clear_controlling_thread", None)
    if release is not None:
        release(force=True)


@contextlib.contextmanager
def single_threaded_blas():
    """Context manager that limits every loaded BLAS to one thread.

    Safe to nest and to enter from several threads at once: the settings found by the first
    caller in are restored when the last caller leaves (see the module docstring).
    """
    state = _BlasLimit
    with state.lock:
        if state.users == 0:
            _release_openblas_control()
            state.limiter = _controller().limit(limits=1, user_api="blas")
            _release_openblas_control()
        state.users += 1
    try:
        yield
    finally:
        with state.lock:
            state.users -= 1
            if state.users == 0:
                limiter, state.limiter = state.limiter, None
                _release_openblas_control()
                limiter.restore_original_limits()
                _release_openblas_control()


@jit(parallel=True)
def _matmul_rows(x, op_t, out):
    """``out = x @ op_t`` computed in blocks of :data:`ROWS` rows, one block per iteration."""
    n = x.shape[0]
    for block in prange((n + ROWS - 1) // ROWS):
        lo = block * ROWS
        hi = min(n, lo + ROWS)
        np.dot(x[lo:hi], op_t, out[lo:hi])


def rmul(x, op):
    """``x[..., :] @ op.T`` for a stack of row vectors.

    Parameters
    ----------
    x : ndarray of shape (n, m, k)
    op : ndarray of shape (j, k), the same dtype as ``x``

    Returns
    -------
    ndarray of shape (n, m, j), C-contiguous
        Call it with BLAS limited to one thread (:func:`single_threaded_blas`), as the
        engine's evaluation does.
    """
    n, m, k = x.shape
    flat = np.ascontiguousarray(x).reshape(n * m, k)
    out = np.empty((n * m, op.shape[0]), np.result_type(x, op))
    if n * m >= PARALLEL_ROWS:
        _matmul_rows(flat, np.ascontiguousarray(op).T, out)
    elif n * m:
        np.dot(flat, op.T, out=out)
    return out.reshape(n, m, op.shape[0])


def add_products(out, out_rows, x, x_rows, first, second=None, scale=None, reflect=None):
    """``out[out_rows[i]] += scale[i] * x[x_rows[i]] @ first.T @ second.T``, in place.

    The fused form of ``out[out_rows] += scale * rmul(rmul(x[x_rows], first), second)``: the
    rows are gathered, multiplied and added block by block, so no array of the stack's size
    is made (with many columns, fresh arrays of hundreds of MB cost more in page faults than
    the products).

    Parameters
    ----------
    out : ndarray of shape (n_out, m, j)
        Updated in place; ``out_rows`` must not repeat (blocks run in parallel).
    out_rows, x_rows : ndarray of shape (n,), int64
        Box indices (``x_rows`` may also be a slice of ``x``).
    x : ndarray of shape (n_x, m, k)
    first : ndarray of shape (i, k); ``second`` (j, i) or None (then ``i`` is ``j``)
        The same dtype as ``x``.
    scale : ndarray of shape (n,) or None
        A factor per row (``out``'s dtype), or none.
    reflect : (perm, sign) or None
        Multiply by the reflection of ``first`` instead (``second`` None, ``k == j``):
        ``first[perm][:, perm]``, times ``sign[i] sign[j]`` unless ``sign`` is None
        (:func:`fmmsolve.operators.plan.reflection`), without forming it: the rows of ``x``
        are gathered through ``perm`` and the products scattered back.
    """
    if isinstance(x_rows, slice):
        x_rows = np.arange(x.shape[0])[x_rows]
    n, m = len(out_rows), x.shape[1]
    if n == 0 or m == 0:
        return
    first_t = np.ascontiguousarray(first.T)
    second_t = first_t[:0] if second is None else np.ascontiguousarray(second.T)
    if scale is None:
        scale = np.ones(n, out.dtype)
    perm, sign = (np.zeros(0, np.int64), None) if reflect is None else reflect
    sign = np.zeros(0, x.dtype) if sign is None else np.asarray(sign, x.dtype)
    if len(perm) and (second is not None or len(perm) != x.shape[2] or len(perm) != out.shape[2]):
        raise ValueError("a reflected product needs one square operator")
    _add_products(out, np.asarray(out_rows, np.int64), x, np.asarray(x_rows, np.int64),
                  first_t, second_t, second is not None, np.ascontiguousarray(scale),
                  np.asarray(perm, np.int64), sign)


@jit(parallel=True)
def _add_products(out, out_rows, x, x_rows, first_t, second_t, two, scale, perm, sign):
    """The blocks of :func:`add_products`: about :data:`ROWS` rows (whole boxes) at a time;
    ``perm`` (and ``sign``) empty, or the reflection the gather and scatter go through."""
    n, m, k = len(out_rows), x.shape[1], x.shape[2]
    per = max(1, ROWS // m)
    mid_cols, j = first_t.shape[1], out.shape[2]
    reflected, signed = len(perm) > 0, len(sign) > 0
    for block in prange((n + per - 1) // per):
        lo = block * per
        hi = min(n, lo + per)
        rows = (hi - lo) * m
        xb = np.empty((rows, k), x.dtype)
        for i in range(lo, hi):
            if not reflected:
                xb[(i - lo) * m:(i - lo + 1) * m] = x[x_rows[i]]
                continue
            for a in range(m):
                for c in range(k):
                    v = x[x_rows[i], a, perm[c]]
                    xb[(i - lo) * m + a, c] = v * sign[perm[c]] if signed else v
        mid = np.empty((rows, mid_cols), x.dtype)
        np.dot(xb, first_t, mid)
        if two:
            yb = np.empty((rows, j), x.dtype)
            np.dot(mid, second_t, yb)
        else:
            yb = mid
        for i in range(lo, hi):
            s = scale[i]
            o = out_rows[i]
            for a in range(m):
                if not reflected:
                    for c in range(j):
                        out[o, a, c] += s * yb[(i - lo) * m + a, c]
                    continue
                for c in range(j):
                    v = yb[(i - lo) * m + a, perm[c]]
                    out[o, a, c] += s * (v * sign[c] if signed else v)
