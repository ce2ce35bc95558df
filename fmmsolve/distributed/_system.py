"""The linear system behind :mod:`.krylov`: SciPy's ``make_system`` for vectors split across
ranks, and the global inner products.

1. A global vector is the concatenation of the ranks' local pieces, rank 0 first; a piece may
   be empty. ``A`` and ``M`` map this rank's piece to this rank's piece (locally square), and
   their products may be collective: every rank calls them, in the same order.
2. Inner products and norms are global: each rank's partial sums travel in one ``Allreduce``
   of a short buffer (:meth:`System.sums`; products that do not wait for each other's result
   share it). Each MPI reduction algorithm reduces an element once and shares it (or pairs
   commutative sums symmetrically), so every rank holds the same bits and takes the same
   branch at every stopping test: no rank leaves a loop that another stays in.
3. The inputs are checked on every rank inside one agreement (:func:`~._mpi.gather_agreed`)
   that also shares each rank's local length, dtypes and settings: a bad argument on one rank
   raises on every rank (that rank its own error, the others
   :class:`~._mpi.RankFailedError`), and the settings that steer the iteration (tolerances,
   restart, maxiter, ...) must be the same on every rank.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from .._validation import as_array, check_positive_int
from ._mpi import MPI, gather_agreed, resolve_comm, run_agreed
from .options import check_same
from .operator import DistributedFMMOperator, ReplicatedOperator

__all__ = ["System", "check_tolerance", "find_comm", "make_system", "optional_positive_int"]

def _char(dtype):
    """A dtype's working character: itself for f, d, F, D; D for other complex, d otherwise."""
    dtype = np.dtype(dtype)
    if dtype.char in "fdFD":
        return dtype.char
    return "D" if dtype.kind == "c" else "d"


def check_tolerance(value, name):
    """``value`` as a float, raising ``ValueError`` naming ``name`` unless it is a finite real
    number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a real, non-negative number, got {value!r}")
    return float(value)


def optional_positive_int(value, name):
    """None, or ``value`` as an int >= 1 (``ValueError`` naming ``name`` otherwise)."""
    return None if value is None else check_positive_int(value, name)


def _comm_of(op, seen):
    """The ``comm`` of ``op`` or of an operator SciPy's algebra built it from (``.args``)."""
    if id(op) in seen:
        return None
    seen.add(id(op))
    if getattr(op, "comm", None) is not None:
        return op.comm
    for arg in getattr(op, "args", ()) if isinstance(op, LinearOperator) else ():
        comm = _comm_of(arg, seen)
        if comm is not None:
            return comm
    return None


def find_comm(comm, *operators):
    """``comm`` if given, else the first ``comm`` found in ``operators`` (through SciPy's
    composite operators), else ``MPI.COMM_WORLD``; an ``mpi4py.MPI.Intracomm``."""
    if comm is None:
        found = (_comm_of(op, set()) for op in operators)
        comm = next((c for c in found if c is not None), None)
    return resolve_comm(comm)


@dataclass
class System:
    """A checked distributed system ``A x = b`` on this rank's pieces.

    Attributes
    ----------
    comm : mpi4py.MPI.Intracomm
    matvec, psolve : callable
        ``A`` and ``M`` on local pieces of shape (n_local,); collective when they are.
    x : ndarray of shape (n_local,), ``dtype``
        The initial guess (a fresh array the solver updates in place).
    b : ndarray of shape (n_local,), ``dtype``
    n : int
        The global length (the sum of the ranks' ``n_local``).
    counts : list of int
        Every rank's ``n_local``, rank 0 first.
    dtype : numpy.dtype
        float32, float64, complex64 or complex128, the same on every rank.
    callbacks : bool
        Whether some rank passed a callback (``gmres``'s ``callback_type`` then applies).
    settings : dict
        The solver's checked settings, the same on every rank.
    """

    comm: object
    matvec: object
    psolve: object
    x: np.ndarray
    b: np.ndarray
    n: int
    counts: list
    dtype: np.dtype
    callbacks: bool
    settings: dict

    def sums(self, *parts):
        """Collective: the sums over ranks of local partial sums, in one ``Allreduce``;
        ndarray of shape (len(parts),)."""
        total = np.array(parts)
        self.comm.Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
        return total

    def dot(self, u, v):
        """This rank's part of the global inner product: conjugated (``vdot``) for a complex
        system, as SciPy's gmres and cg."""
        return np.vdot(u, v)

    def sq(self, v):
        """This rank's part of ``norm(v) ** 2``, a real scalar (as ``numpy.linalg.norm`` sums:
        on one rank, the solvers are SciPy's to the bit)."""
        if v.dtype.kind == "c":
            return v.real.dot(v.real) + v.imag.dot(v.imag)
        return v.dot(v)

    def norm(self, v):
        """Collective: the global 2-norm of the distributed vector ``v``."""
        return np.sqrt(self.sums(self.sq(v))[0].real)

    def any(self, v):
        """Collective: whether the distributed vector ``v`` has a nonzero entry on some rank."""
        return bool(self.comm.allreduce(bool(np.any(v)), op=MPI.LOR))

    def first(self, v):
        """Collective: entry 0 of the distributed vector ``v`` (held by the first rank whose
        piece is not empty), on every rank."""
        owner = next(r for r, count in enumerate(self.counts) if count)
        return self.comm.bcast(v[0] if self.comm.rank == owner else None, root=owner)


def _local_operator(op, name):
    """``op`` as a ``LinearOperator`` on this rank's pieces; None for an object with ``shape``
    and ``matvec`` but no ``dtype`` (whose dtype takes a collective product to find)."""
    if isinstance(op, ReplicatedOperator):
        raise TypeError(f"{name} is a ReplicatedOperator (global vectors on every rank); the "
                        f"distributed solvers take rank-local operators: pass the "
                        f"DistributedFMMOperator itself or its local_operator()")
    if isinstance(op, DistributedFMMOperator):
        return op.local_operator()
    if not hasattr(op, "dtype") and hasattr(op, "shape") and hasattr(op, "matvec"):
        return None
    try:
        return aslinearoperator(op)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a LinearOperator, an array, a sparse matrix or an "
                        f"object with shape and matvec, got {type(op).__name__} ({exc})") from None


def _check_vector(values, name, n, rank):
    """``values`` as an array of shape (n,) or (n, 1), numeric and finite."""
    expected = f"shape ({n},) or ({n}, 1), this rank's (rank {rank}) length"
    arr = as_array(values, name, expected)
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.shape not in ((n,), (n, 1)):
        raise ValueError(f"{name} must have {expected} of A's local rows, got shape "
                         f"{arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_local(comm, A, M, x0, b, callback, settings):
    """This rank's checks: ``((A, M, x0, b, probe), summary)`` for :func:`gather_agreed`."""
    for other, name in ((A, "A"), (M, "M")):
        found = _comm_of(other, set())
        if found is not None and comm.Compare(resolve_comm(found)) not in (MPI.IDENT,
                                                                            MPI.CONGRUENT):
            raise ValueError(f"{name}.comm is not the communicator the solver reduces over "
                             f"(comm=, or the first one found in A, then M)")
    A_op = _local_operator(A, "A")
    shape = tuple(A.shape if A_op is None else A_op.shape)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"A must be square on each rank (its rows and columns are this "
                         f"rank's piece of the vectors), got local shape {shape} on rank "
                         f"{comm.rank}")
    n = shape[0]
    b = _check_vector(b, "b", n, comm.rank)
    if M is None:  # SciPy's make_system: A's own psolve, if it has one
        psolve = getattr(A, "psolve", None)
    else:
        M_op = _local_operator(M, "M")
        if M_op is None:  # no dtype: its products are cast to the system's
            M_op = LinearOperator(M.shape, matvec=M.matvec, dtype=np.float64)
        if tuple(M_op.shape) != shape:
            raise ValueError(f"M must have A's local shape {shape} on rank {comm.rank}, got "
                             f"{tuple(M_op.shape)}")
        psolve = M_op.matvec
    if isinstance(x0, str):
        if x0 != "Mb":
            raise ValueError(f"x0 must be None, 'Mb' or an array, got {x0!r}")
        start = "Mb"
    else:
        start = "zero" if x0 is None else "array"
        x0 = None if x0 is None else _check_vector(x0, "x0", n, comm.rank)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    summary = {"n": n, "A": None if A_op is None else _char(A_op.dtype), "b": _char(b.dtype),
               "x0 complex": x0 is not None and not isinstance(x0, str) and x0.dtype.kind == "c",
               "callback": callback is not None,
               "same": {**settings(), "x0": start, "A has a dtype": A_op is not None}}
    return (A_op, psolve, x0, b), summary


def make_system(A, M, x0, b, *, comm, callback, settings, real_only=None):
    """Collective: check ``A x = b`` on every rank, agree, and set it up as SciPy's
    ``make_system`` does (A's own ``psolve`` when ``M`` is None, ``x0='Mb'``).

    Parameters
    ----------
    A, M : DistributedFMMOperator, LinearOperator, array, sparse matrix or None
        Rank-local, as for :func:`~fmmsolve.distributed.krylov.gmres`.
    x0 : None, ``'Mb'`` or array_like of shape (n_local,) or (n_local, 1)
    b : array_like of shape (n_local,) or (n_local, 1)
    comm : mpi4py.MPI.Intracomm or None
        None: found from ``A`` or ``M`` (:func:`find_comm`).
    callback : callable or None
    settings : callable
        Returns the solver's checked settings (a dict of plain values); run inside the
        agreement, so a bad setting on one rank raises on every rank, and compared there.
    real_only : str or None
        The solver's name, when it takes real systems only.

    Returns
    -------
    System

    Raises
    ------
    ValueError, TypeError
        On every rank: the rank with a bad argument its own error naming it, the others
        :class:`~fmmsolve.distributed.RankFailedError`; settings that differ between ranks, an
        empty system, a complex ``x0`` for a real system, or a complex system for a real-only
        solver a ``ValueError`` on every rank.
    """
    comm = find_comm(comm, A, M)
    (A_op, psolve, x0, b), summaries = gather_agreed(comm, _check_local, comm, A, M, x0, b,
                                                     callback, settings)
    check_same([s["same"] for s in summaries], "the solver's settings")
    counts = [s["n"] for s in summaries]
    if sum(counts) == 0:
        raise ValueError("b is empty on every rank: the system has no unknowns")
    if A_op is None:  # SciPy's aslinearoperator finds the dtype with a (collective) product
        A_op = run_agreed(comm, aslinearoperator, A)
        summaries = [{**s, "A": _char(t)} for s, t in
                     zip(summaries, comm.allgather(A_op.dtype))]
    # SciPy's coercion of A's and b's types (f, d, F, D) is NumPy's promotion: fold it over
    # the ranks
    dtype = np.dtype("f")
    for s in summaries:
        dtype = np.promote_types(np.promote_types(dtype, s["A"]), s["b"])
    if dtype.kind != "c" and any(s["x0 complex"] for s in summaries):
        ranks = ", ".join(str(r) for r, s in enumerate(summaries) if s["x0 complex"])
        raise ValueError(f"x0 is complex on rank(s) {ranks} but the system is real "
                         f"({dtype.name})")
    if real_only and dtype.kind == "c":
        raise ValueError(f"{real_only} solves real symmetric systems (as SciPy's, with "
                         f"unconjugated products), but this one is {dtype.name}: use cg "
                         f"(Hermitian positive definite) or gmres")
    b = np.asarray(b, dtype=dtype).ravel()
    if psolve is None:
        psolve = _identity
    start = summaries[0]["same"]["x0"]
    if start == "zero":
        x = np.zeros(len(b), dtype)
    elif start == "Mb":
        x = np.array(psolve(b.copy()), dtype=dtype).ravel()
    else:
        x = np.array(x0, dtype=dtype).ravel()
    return System(comm, A_op.matvec, psolve, x, b, sum(counts), counts, dtype,
                  any(s["callback"] for s in summaries), summaries[0]["same"])


def _identity(x):
    return x
