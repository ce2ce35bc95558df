"""Dense products of stacked expansions with one small operator matrix, threaded by Numba.

The engine multiplies stacks of equivalent densities, of shape (n_boxes, m, k), by small fixed
matrices: the check-to-equivalent factors of P2M and P2L, M2M, L2L, and the M2L basis. Through
NumPy, each of these products runs in multithreaded BLAS, between compiled ``prange`` passes.
The two thread pools then wait on each other. Measured on 2 cores, an M2M or L2L pass cost
0.13 s whatever its size, and the whole matvec at 2e4 points was 5x slower for it.

So BLAS is held to one thread for a whole evaluation (:func:`single_threaded_blas`), and the
products big enough to matter are split into blocks of rows over a ``prange``. This keeps one
level of threading, and it is Numba's.
"""

from __future__ import annotations

import functools

import numpy as np
from threadpoolctl import ThreadpoolController

from .._jit import jit, prange

__all__ = ["rmul", "single_threaded_blas"]

#: Rows per block: enough for an efficient single-threaded product, and many blocks per thread.
ROWS = 128
#: Below this many rows a product runs on the calling thread: starting the threads would cost
#: more than it saves, and on a busy machine a waking thread can wait milliseconds for a core.
PARALLEL_ROWS = 2048


@functools.lru_cache(maxsize=None)
def _controller():
    # Numba's np.dot calls SciPy's BLAS, a separate library from NumPy's: load it before the
    # controller takes its inventory of the BLAS libraries to limit.
    import scipy.linalg.cython_blas  # noqa: F401

    return ThreadpoolController()


def single_threaded_blas():
    """Context manager that limits every loaded BLAS to one thread."""
    return _controller().limit(limits=1, user_api="blas")


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
