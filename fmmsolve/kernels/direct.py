"""The exact O(N M) sum, the reference every accuracy test trusts.

Targets are split into fixed-size chunks processed in parallel (``prange``); each chunk runs the
kernel's serial block function over all sources, whose coordinates are structure-of-arrays so
the inner loop vectorises.
"""

from __future__ import annotations

import functools

import numpy as np

from .._jit import bind, prange
from .._validation import as_densities, as_points, resolve_real_dtype
from . import get_kernel

__all__ = ["direct"]

_CHUNK = 64  # targets per parallel task: small enough to balance, large enough to amortise


# Placeholders: the templates below read these globals; `_compiled` binds them to a kernel.
p2p = p2p_gradient = None


def _direct_potential(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot):
    n_chunks = (tx.shape[0] + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        a = c * _CHUNK
        b = min(tx.shape[0], a + _CHUNK)
        p2p(sx, sy, sz, charges, tx[a:b], ty[a:b], tz[a:b], wavenumber, pot[:, a:b])


def _direct_gradient(sx, sy, sz, charges, tx, ty, tz, wavenumber, pot, gx, gy, gz):
    n_chunks = (tx.shape[0] + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        a = c * _CHUNK
        b = min(tx.shape[0], a + _CHUNK)
        p2p_gradient(
            sx, sy, sz, charges, tx[a:b], ty[a:b], tz[a:b], wavenumber,
            pot[:, a:b], gx[:, a:b], gy[:, a:b], gz[:, a:b],
        )


@functools.lru_cache(maxsize=None)
def _compiled(kernel):
    """(potential, gradient) direct sums compiled for ``kernel``."""
    bindings = {"p2p": kernel.p2p, "p2p_gradient": kernel.p2p_gradient}
    return tuple(bind(t, kernel.name, bindings, parallel=True)
                 for t in (_direct_potential, _direct_gradient))


def direct(sources, targets, charges, *, kernel="laplace", wavenumber=None, gradient=False,
           dtype=None):
    """Exact potentials (and gradients) phi(y_i) = sum_j G(y_i, x_j) q_j.

    Pairs with y_i == x_j (zero distance) are skipped, so ``targets=None`` gives the
    self-interaction without the singular diagonal.

    Parameters
    ----------
    sources : array_like of shape (n_sources, 3)
        Source points x_j.
    targets : array_like of shape (n_targets, 3) or None
        Target points y_i; None means the sources themselves.
    charges : array_like of shape (n_sources,) or (n_sources, m)
        Densities q_j; with m columns, m sums are computed.
    kernel : str, default "laplace"
        A name from :data:`fmmsolve.kernels.KERNEL_NAMES`.
    wavenumber : scalar or None
        Required by kernels with a wavenumber; must be None for ``"laplace"``.
    gradient : bool, default False
        Also return the gradient with respect to the target point.
    dtype : None, np.float32 or np.float64
        Working precision; None picks float32 only if every input is float32.

    Returns
    -------
    pot : ndarray of shape (n_targets,) or (n_targets, m)
        Potentials in the kernel's value dtype for ``dtype``.
    grad : ndarray of shape (n_targets, 3) or (n_targets, m, 3)
        Only when ``gradient=True``: d phi / d y.
    """
    kern = get_kernel(kernel)
    k = kern.check_wavenumber(wavenumber)
    real = resolve_real_dtype(dtype, sources, targets, charges)
    value = kern.value_dtype(real)
    src = as_points(sources, "sources", real)
    tgt = src if targets is None else as_points(targets, "targets", real)
    q = as_densities(charges, src.shape[0], "charges", value)

    s_soa = np.ascontiguousarray(src.T)
    t_soa = s_soa if targets is None else np.ascontiguousarray(tgt.T)
    columns = q[:, None] if q.ndim == 1 else q
    n_t, m = t_soa.shape[1], columns.shape[1]
    pot = np.zeros((m, n_t), dtype=value)
    grad = np.zeros((m, 3, n_t), dtype=value) if gradient else None
    potential_sum, gradient_sum = _compiled(kern)
    q_rows = np.ascontiguousarray(columns.T)  # (m, n_sources): the block functions' layout
    if gradient:
        gradient_sum(*s_soa, q_rows, *t_soa, k, pot, grad[:, 0], grad[:, 1], grad[:, 2])
    else:
        potential_sum(*s_soa, q_rows, *t_soa, k, pot)

    if q.ndim == 1:
        pot = pot[0]
        grad = None if grad is None else np.ascontiguousarray(grad[0].T)
    else:
        pot = np.ascontiguousarray(pot.T)
        grad = None if grad is None else np.ascontiguousarray(grad.transpose(2, 0, 1))
    return (pot, grad) if gradient else pot
