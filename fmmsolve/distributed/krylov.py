"""Krylov solvers on vectors split across MPI ranks: :func:`gmres`, :func:`cg`, :func:`minres`.

SciPy's solvers (``scipy.sparse.linalg``, 1.17) step for step, with SciPy's signatures plus
``comm``, on this rank's pieces of ``b``, ``x0`` and every Krylov vector (the layout of
:class:`~fmmsolve.distributed.DistributedFMMOperator`: a global vector is the concatenation of
the ranks' pieces, rank 0 first; a piece may be empty). Each inner product or norm is a
global one, one ``Allreduce`` of a few numbers (:mod:`._system`); the small dense work (the
Hessenberg matrix, Givens rotations, MINRES's scalars) is repeated on every rank from the same
reduced numbers. Every step is SciPy's, in SciPy's order (GMRES orthogonalises by modified
Gram-Schmidt, one reduction per basis vector), so on the gathered global problem SciPy gives
the same iterations, residual history and ``info`` up to rounding: a local partial sum plus a
sum over ranks adds in another order than NumPy's dot on the whole vector.

Every function is collective: all ranks of ``comm`` call it with their own pieces and the same
settings. An input that is bad on one rank raises on every rank (that rank its own error, the
others :class:`~fmmsolve.distributed.RankFailedError`); so do SciPy's own errors in the
iteration (MINRES's "non-symmetric matrix"), which follow from reduced numbers. A failure
inside a product is the operator's to share (a ``DistributedFMMOperator``'s products raise on
every rank); a callback that raises on one rank leaves the others waiting in the next
reduction, so callbacks should do local work only.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import get_lapack_funcs

from ._minres import minres
from ._system import check_tolerance, make_system, optional_positive_int

__all__ = ["cg", "gmres", "minres"]

_CALLBACK_TYPES = ("x", "pr_norm", "legacy")


def _tolerances(rtol, atol):
    return {"rtol": check_tolerance(rtol, "rtol"), "atol": check_tolerance(atol, "atol")}


def gmres(A, b, x0=None, *, rtol=1e-5, atol=0., restart=None, maxiter=None, M=None,
          callback=None, callback_type=None, comm=None):
    """Collective: solve ``A x = b`` by restarted GMRES, each rank holding its piece of the
    vectors; SciPy's ``scipy.sparse.linalg.gmres`` step for step.

    Parameters
    ----------
    A : DistributedFMMOperator or LinearOperator
        The operator on this rank's pieces: a
        :class:`~fmmsolve.distributed.DistributedFMMOperator` (its ``local_operator()`` is
        used), or a ``LinearOperator`` (array, sparse matrix, object with ``shape`` and
        ``matvec``) of local shape (n_local, n_local) whose products may be collective, such
        as ``I + A.local_operator() / n``.
    b : array_like of shape (n_local,) or (n_local, 1)
        This rank's piece of the right-hand side; finite. float32, float64, complex64 or
        complex128 (others become float64); the working dtype is SciPy's coercion of ``A``'s
        and ``b``'s over all ranks.
    x0 : None, ``'Mb'`` or array_like of shape (n_local,) or (n_local, 1)
        This rank's piece of the starting guess (zero by default; ``'Mb'``: ``M @ b``).
    rtol, atol : float
        Converged when ``norm(b - A @ x) <= max(rtol * norm(b), atol)`` (global norms).
    restart : int or None
        Inner iterations between restarts, at least 1; default ``min(20, n)``, ``n`` the
        global length.
    maxiter : int or None
        Restart cycles (inner iterations with ``callback_type='legacy'``); default ``10 n``.
    M : LinearOperator or None
        This rank's part of the preconditioner, an approximation of ``A``'s inverse on local
        pieces (left preconditioning; its products may be collective).
    callback : callable or None
        ``callback(pr_norm)`` after each inner iteration (``'pr_norm'``, ``'legacy'``) with the
        relative preconditioned residual norm (a float, the same on every rank), or
        ``callback(x)`` after each restart (``'x'``) with this rank's piece of the iterate. It
        may be given on some ranks only (say rank 0, to record the history).
    callback_type : {'x', 'pr_norm', 'legacy'} or None
        As SciPy's: None means ``'legacy'`` (with a ``DeprecationWarning`` when a callback is
        given), where ``maxiter`` counts inner iterations.
    comm : mpi4py.MPI.Intracomm or None
        None: ``A.comm``, else the first ``comm`` in the operators SciPy's algebra composed
        ``A`` (then ``M``) from, else ``MPI.COMM_WORLD``.

    Returns
    -------
    x : ndarray of shape (n_local,)
        This rank's piece of the solution, of the working dtype.
    info : int
        0 when converged, else ``maxiter`` (the same on every rank).

    Raises
    ------
    ValueError, TypeError
        On every rank, for an argument that is bad on some rank (naming it and the rank), or
        settings that differ between ranks.

    Notes
    -----
    Memory: the Krylov basis and the iterate, ``(restart + 4) * n_local`` numbers on each rank
    (one more vector with ``M``), against ``(restart + 4) * n`` on every rank for SciPy on
    replicated vectors. Communication per inner iteration ``j`` (from 1): the product(s), then
    ``j + 1`` reductions of one or two numbers (modified Gram-Schmidt's coefficients, which
    depend on each other; the first is reduced with the norm of the new vector).
    """
    if callback is not None and callback_type is None:
        warnings.warn("fmmsolve.distributed.gmres called without callback_type: 'legacy' is "
                      "used, as in SciPy, where maxiter counts inner iterations; pass "
                      "callback_type='pr_norm' or 'legacy'", DeprecationWarning, stacklevel=2)
    callback_type = "legacy" if callback_type is None else callback_type

    def settings():
        if callback_type not in _CALLBACK_TYPES:
            raise ValueError(f"callback_type must be one of {_CALLBACK_TYPES}, got "
                             f"{callback_type!r}")
        return {**_tolerances(rtol, atol), "restart": optional_positive_int(restart, "restart"),
                "maxiter": optional_positive_int(maxiter, "maxiter"),
                "callback_type": callback_type}

    s = make_system(A, M, x0, b, comm=comm, callback=callback, settings=settings)
    mode = callback_type if s.callbacks else None  # SciPy: no callback, no callback_type
    report = callback if callback is not None else _ignore
    matvec, psolve, x, b, n = s.matvec, s.psolve, s.x, s.b, s.n
    bnrm2 = s.norm(b)
    atol = max(s.settings["atol"], s.settings["rtol"] * float(bnrm2))
    if bnrm2 == 0:
        return b, 0
    eps = np.finfo(x.dtype.char).eps
    maxiter, restart = s.settings["maxiter"] or n * 10, min(s.settings["restart"] or 20, n)
    Mb_nrm2 = s.norm(psolve(b))
    # gh-8400's tolerance control: the inner loop works on the preconditioned residual
    ptol_max_factor = 1.
    ptol = Mb_nrm2 * min(ptol_max_factor, atol / bnrm2)
    presid = 0.
    lartg = get_lapack_funcs("lartg", dtype=x.dtype)
    v = np.empty([restart + 1, len(b)], dtype=x.dtype)
    h = np.zeros([restart, restart + 1], dtype=x.dtype)  # small: the same on every rank
    givens = np.zeros([restart, 2], dtype=x.dtype)
    inner_iter = 0
    for iteration in range(maxiter):
        if iteration == 0:
            r = b - matvec(x) if s.any(x) else b.copy()
            if s.norm(r) < atol:
                return x, 0
        v[0, :] = psolve(r)
        r = None  # the basis holds it from here: (restart + 4) vectors, not 5
        tmp = s.norm(v[0, :])
        v[0, :] *= (1 / tmp)
        S = np.zeros(restart + 1, dtype=x.dtype)  # right-hand side of the Hessenberg problem
        S[0] = tmp
        breakdown = False
        for col in range(restart):
            w = psolve(matvec(v[col, :]))
            # modified Gram-Schmidt; the norm before it rides with the first coefficient
            h0_sq, tmp = s.sums(s.sq(w), s.dot(v[0, :], w))
            h0 = np.sqrt(h0_sq.real)
            for k in range(col + 1):
                if k > 0:
                    tmp = s.sums(s.dot(v[k, :], w))[0]
                h[col, k] = tmp
                w -= tmp * v[k, :]
            h1 = s.norm(w)
            h[col, col + 1] = h1
            v[col + 1, :] = w[:]
            if h1 <= eps * h0:  # exact solution
                h[col, col + 1] = 0
                breakdown = True
            else:
                v[col + 1, :] *= (1 / h1)
            for k in range(col):  # the past Givens rotations on the new column
                c, sn = givens[k, 0], givens[k, 1]
                n0, n1 = h[col, [k, k + 1]]
                h[col, [k, k + 1]] = [c * n0 + sn * n1, -sn.conj() * n0 + c * n1]
            c, sn, mag = lartg(h[col, col], h[col, col + 1])
            givens[col, :] = [c, sn]
            h[col, [col, col + 1]] = mag, 0
            tmp = -np.conjugate(sn) * S[col]
            S[[col, col + 1]] = [c * S[col], tmp]
            presid = np.abs(tmp)
            inner_iter += 1
            if mode in ("legacy", "pr_norm"):
                report(presid / bnrm2)
            if mode == "legacy" and inner_iter == maxiter:
                break
            if presid <= ptol or breakdown:
                break
        if h[col, col] == 0:  # pseudo-solve the singular triangular system, as SciPy
            S[col] = 0
        y = np.zeros([col + 1], dtype=x.dtype)
        y[:] = S[:col + 1]
        for k in range(col, 0, -1):
            if y[k] != 0:
                y[k] /= h[k, k]
                tmp = y[k]
                y[:k] -= tmp * h[k, :k]
        if y[0] != 0:
            y[0] /= h[0, 0]
        x += y @ v[:col + 1, :]
        r = b - matvec(x)
        rnorm = s.norm(r)
        if mode == "legacy" and inner_iter == maxiter:
            return x, 0 if rnorm <= atol else maxiter
        if mode == "x":
            report(x)
        if rnorm <= atol:
            break
        elif breakdown:  # an exact solution of the inner problem that fails the outer test
            break
        elif presid <= ptol:  # the inner loop converged but the outer test failed
            ptol_max_factor = max(eps, 0.25 * ptol_max_factor)
        else:
            ptol_max_factor = min(1.0, 1.5 * ptol_max_factor)
        ptol = presid * min(ptol_max_factor, atol / rnorm)
    return x, 0 if rnorm <= atol else maxiter


def cg(A, b, x0=None, *, rtol=1e-5, atol=0., maxiter=None, M=None, callback=None, comm=None):
    """Collective: solve ``A x = b`` for Hermitian positive definite ``A`` by conjugate
    gradients, each rank holding its piece of the vectors; SciPy's
    ``scipy.sparse.linalg.cg`` step for step.

    Parameters
    ----------
    A, b, x0, rtol, atol, M, comm
        As for :func:`gmres`; ``M`` Hermitian positive definite.
    maxiter : int or None
        Iterations; default ``10 n``, ``n`` the global length.
    callback : callable or None
        ``callback(x)`` after each iteration, with this rank's piece of the iterate.

    Returns
    -------
    x : ndarray of shape (n_local,)
    info : int
        0 when converged, else ``maxiter``.

    Notes
    -----
    Memory: ``x``, ``b``, ``r``, ``p`` and ``A p``, 5 ``n_local`` numbers (one more with
    ``M``). Communication per iteration: the product(s) and two reductions, the residual's
    norm with ``(r, M r)``, then ``(p, A p)``. So that the norm needs no reduction of its own,
    ``M r`` is computed before the convergence test: one application of ``M`` more than
    SciPy, on the converged residual.
    """
    def settings():
        return {**_tolerances(rtol, atol), "maxiter": optional_positive_int(maxiter, "maxiter")}

    s = make_system(A, M, x0, b, comm=comm, callback=callback, settings=settings)
    matvec, psolve, x, b = s.matvec, s.psolve, s.x, s.b
    bnrm2 = s.norm(b)
    atol = max(s.settings["atol"], s.settings["rtol"] * float(bnrm2))
    if bnrm2 == 0:
        return b, 0
    maxiter = s.settings["maxiter"] or s.n * 10
    r = b - matvec(x) if s.any(x) else b.copy()
    rho_prev, p = None, None
    for iteration in range(maxiter):
        z = psolve(r)
        r_sq, rho_cur = s.sums(s.sq(r), s.dot(r, z))
        if np.sqrt(r_sq.real) < atol:
            return x, 0
        if iteration > 0:
            p *= rho_cur / rho_prev
            p += z
        else:
            p = np.empty_like(r)
            p[:] = z[:]
        q = matvec(p)
        alpha = rho_cur / s.sums(s.dot(p, q))[0]
        x += alpha * p
        r -= alpha * q
        rho_prev = rho_cur
        if callback is not None:
            callback(x)
    return x, maxiter


def _ignore(_):
    pass
