"""MINRES on vectors split across MPI ranks (exported by :mod:`.krylov`): SciPy's
``scipy/sparse/linalg/_isolve/minres.py`` (1.17, Paige and Saunders' MINRES) step for step, with
the layout and reductions of :mod:`._system`. Like SciPy's, it solves real symmetric systems
(its inner products are unconjugated); complex ones are refused."""

from __future__ import annotations

import numbers
from math import sqrt

import numpy as np

from .._validation import check_flag
from ._system import check_tolerance, make_system, optional_positive_int

__all__ = ["minres"]

_MESSAGES = [" beta2 = 0.  If M = I, b and x are eigenvectors    ",  # -1
             " beta1 = 0.  The exact solution is x0          ",  # 0
             " A solution to Ax = b was found, given rtol        ",  # 1
             " A least-squares solution was found, given rtol    ",  # 2
             " Reasonable accuracy achieved, given eps           ",  # 3
             " x has converged to an eigenvector                 ",  # 4
             " acond has exceeded 0.1/eps                        ",  # 5
             " The iteration limit was reached                   ",  # 6
             " A  does not define a symmetric matrix             ",  # 7
             " M  does not define a symmetric matrix             ",  # 8
             " M  does not define a pos-def preconditioner       "]  # 9


def _check_settings(rtol, shift, maxiter, show, check):
    if isinstance(shift, bool) or not isinstance(shift, numbers.Real) or not np.isfinite(shift):
        raise ValueError(f"shift must be a finite real number, got {shift!r}")
    return {"rtol": check_tolerance(rtol, "rtol"), "shift": float(shift),
            "maxiter": optional_positive_int(maxiter, "maxiter"),
            "show": check_flag(show, "show"), "check": check_flag(check, "check")}


def minres(A, b, x0=None, *, rtol=1e-5, shift=0.0, maxiter=None, M=None, callback=None,
           show=False, check=False, comm=None):
    """Collective: solve ``(A - shift I) x = b`` for real symmetric ``A`` (possibly indefinite)
    by MINRES, each rank holding its piece of the vectors; SciPy's
    ``scipy.sparse.linalg.minres`` step for step.

    Parameters
    ----------
    A, b, x0, M, comm
        As for :func:`~fmmsolve.distributed.krylov.gmres`, real; ``M`` symmetric positive
        definite.
    rtol : float
        Stop when the estimate of ``norm(r) / (norm(A) norm(x))`` is below ``rtol`` (or that
        of ``norm(A r) / (norm(A) norm(r))``), as SciPy.
    shift : float
        Solve ``(A - shift I) x = b``.
    maxiter : int or None
        Iterations; default ``5 n``, ``n`` the global length.
    callback : callable or None
        ``callback(x)`` after each iteration, with this rank's piece of the iterate.
    show : bool
        Print SciPy's log, on rank 0 (``x(1)`` is the global vector's first entry).
    check : bool
        Check, as SciPy, that ``A`` and ``M`` are symmetric (``ValueError`` on every rank).

    Returns
    -------
    x : ndarray of shape (n_local,), float32 or float64
    info : int
        0 when converged (or stopped by another of SciPy's tests), ``maxiter`` when the
        iteration limit was reached.

    Raises
    ------
    ValueError
        As :func:`~fmmsolve.distributed.krylov.gmres`; for a complex system; and SciPy's
        ``'indefinite preconditioner'``, ``'non-symmetric matrix'`` and
        ``'non-symmetric preconditioner'``, on every rank.

    Notes
    -----
    Memory: ``x``, ``b``, three Lanczos vectors and three update directions, about
    ``9 n_local`` numbers. Communication per iteration: the product(s) and three reductions of
    one number (``alfa``, ``beta`` and ``norm(x)``, each waiting for the one before).
    """
    s = make_system(A, M, x0, b, comm=comm, callback=callback, real_only="minres",
                    settings=lambda: _check_settings(rtol, shift, maxiter, show, check))
    matvec, psolve, x, b, n = s.matvec, s.psolve, s.x, s.b, s.n
    rtol, shift = s.settings["rtol"], s.settings["shift"]
    maxiter = s.settings["maxiter"] or 5 * n
    show = s.settings["show"] and s.comm.rank == 0  # the log's numbers are global
    log = s.settings["show"]  # every rank joins the collective x(1) of a printed line
    first, last = "Enter minres.   ", "Exit  minres.   "
    if show:
        print(first + "Solution of symmetric Ax = b")
        print(first + f"n      =  {n:3g}     shift  =  {shift:23.14e}")
        print(first + f"itnlim =  {maxiter:3g}     rtol   =  {rtol:11.2e}")
        print()

    istop, itn, Anorm, Acond, rnorm, ynorm = 0, 0, 0, 0, 0, 0
    xtype = x.dtype
    eps = np.finfo(xtype).eps
    # y = beta1 P' v1 with P = C**(-1): v is really P' v1
    r1 = b.copy() if s.settings["x0"] == "zero" else b - matvec(x)
    y = psolve(r1)
    beta1, b_sq = s.sums(np.inner(r1, y), s.sq(b))  # SciPy's two tests, one reduction
    if beta1 < 0:
        raise ValueError("indefinite preconditioner")
    elif beta1 == 0:
        return (x, 0)
    if np.sqrt(b_sq) == 0:
        return (b, 0)
    beta1 = sqrt(beta1)

    if s.settings["check"]:  # are A and M symmetric? (SciPy's tests)
        w = matvec(y)
        r2 = matvec(w)
        t_s, t_t = s.sums(np.inner(w, w), np.inner(y, r2))
        if abs(t_s - t_t) > (t_s + eps) * eps ** (1.0 / 3.0):
            raise ValueError("non-symmetric matrix")
        r2 = psolve(y)
        t_s, t_t = s.sums(np.inner(y, y), np.inner(r1, r2))
        if abs(t_s - t_t) > (t_s + eps) * eps ** (1.0 / 3.0):
            raise ValueError("non-symmetric preconditioner")

    oldb, beta, dbar, epsln = 0, beta1, 0, 0
    qrnorm, phibar, rhs1, rhs2 = beta1, beta1, beta1, 0
    tnorm2, gmax, gmin = 0, 0, np.finfo(xtype).max
    cs, sn = -1, 0
    w = np.zeros(len(b), dtype=xtype)
    w2 = np.zeros(len(b), dtype=xtype)
    r2 = r1
    if show:
        print()
        print()
        print("   Itn     x(1)     Compatible    LS       norm(A)  cond(A) gbar/|A|")

    while itn < maxiter:
        itn += 1
        v = (1.0 / beta) * y
        y = matvec(v)
        y = y - shift * v
        if itn >= 2:
            y = y - (beta / oldb) * r1
        alfa = s.sums(np.inner(v, y))[0]
        y = y - (alfa / beta) * r2
        r1 = r2
        r2 = y
        y = psolve(r2)
        oldb = beta
        beta = s.sums(np.inner(r2, y))[0]
        if beta < 0:
            raise ValueError("non-symmetric matrix")
        beta = sqrt(beta)
        tnorm2 += alfa ** 2 + oldb ** 2 + beta ** 2
        if itn == 1 and beta / beta1 <= 10 * eps:
            istop = -1  # terminate later

        # the previous rotation Q_{k-1}:  [delta_k epsln_k+1] = [cs  sn][dbar_k    0       ]
        #                                 [gbar_k  dbar_k+1 ]   [sn -cs][alfa_k beta_k+1]
        oldeps = epsln
        delta = cs * dbar + sn * alfa
        gbar = sn * dbar - cs * alfa
        epsln = sn * beta
        dbar = - cs * beta
        root = np.linalg.norm([gbar, dbar])
        Arnorm = phibar * root
        # the next rotation Q_k
        gamma = max(np.linalg.norm([gbar, beta]), eps)
        cs = gbar / gamma
        sn = beta / gamma
        phi = cs * phibar
        phibar = sn * phibar
        # update x
        denom = 1.0 / gamma
        w1 = w2
        w2 = w
        w = (v - oldeps * w1 - delta * w2) * denom
        x = x + phi * w

        gmax = max(gmax, gamma)
        gmin = min(gmin, gamma)
        z = rhs1 / gamma
        rhs1 = rhs2 - delta * z
        rhs2 = - epsln * z
        # norms and convergence tests
        Anorm = sqrt(tnorm2)
        ynorm = s.norm(x)
        epsa = Anorm * eps
        epsx = Anorm * ynorm * eps
        epsr = Anorm * ynorm * rtol
        diag = gbar
        if diag == 0:
            diag = epsa
        qrnorm = phibar
        rnorm = qrnorm
        test1 = np.inf if ynorm == 0 or Anorm == 0 else rnorm / (Anorm * ynorm)
        test2 = np.inf if Anorm == 0 else root / Anorm
        # cond(A) from the diagonal of R in Q H = R (H the Lanczos tridiagonal matrix)
        Acond = gmax / gmin
        if istop == 0:  # (istop is -1 already when A is a multiple of I)
            t1 = 1 + test1  # these work when rtol < eps
            t2 = 1 + test2
            if t2 <= 1:
                istop = 2
            if t1 <= 1:
                istop = 1
            if itn >= maxiter:
                istop = 6
            if Acond >= 0.1 / eps:
                istop = 4
            if epsx >= beta1:
                istop = 3
            if test2 <= rtol:
                istop = 2
            if test1 <= rtol:
                istop = 1

        if log and _printed(n, itn, maxiter, qrnorm, epsx, epsr, Acond, eps, istop):
            x1 = s.first(x)
            if show:
                print(f"{itn:6g} {x1:12.5e} {test1:10.3e}" + f" {test2:10.3e}"
                      + f" {Anorm:8.1e} {Acond:8.1e} {gbar / Anorm:8.1e}")
                if itn % 10 == 0:
                    print()
        if callback is not None:
            callback(x)
        if istop != 0:
            break

    if show:
        print()
        print(last + f" istop   =  {istop:3g}               itn   ={itn:5g}")
        print(last + f" Anorm   =  {Anorm:12.4e}      Acond =  {Acond:12.4e}")
        print(last + f" rnorm   =  {rnorm:12.4e}      ynorm =  {ynorm:12.4e}")
        print(last + f" Arnorm  =  {Arnorm:12.4e}")
        print(last + _MESSAGES[istop + 1])
    return (x, maxiter if istop == 6 else 0)


def _printed(n, itn, maxiter, qrnorm, epsx, epsr, Acond, eps, istop):
    """SciPy's rule for which iterations the log prints."""
    return (n <= 40 or itn <= 10 or itn >= maxiter - 10 or itn % 10 == 0
            or qrnorm <= 10 * epsx or qrnorm <= 10 * epsr or Acond <= 1e-2 / eps
            or istop != 0)
