"""Views of a :class:`~.operator.DistributedFMMOperator` for solvers: :class:`LocalOperator`
(SciPy's ``LinearOperator`` on rank-local vectors, for :mod:`.krylov` and SciPy's operator
algebra), :class:`ReplicatedOperator` (on global vectors every rank holds, for SciPy's own
solvers), and :class:`Conjugated` (the adjoint of a complex kernel's operator).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator

__all__ = ["Conjugated", "LocalOperator", "ReplicatedOperator"]


class LocalOperator(LinearOperator):
    """A :class:`~.operator.DistributedFMMOperator` on this rank's pieces of distributed vectors.

    ``shape`` is the operator's ``local_shape``: a product takes the densities of this rank's
    sources and gives the potentials at its targets, and is collective (every rank of ``comm``
    calls it, with the same number of columns). SciPy's algebra composes it with other
    rank-local operators (``I + A.local_operator() / n``); the sums and products it builds keep
    the products collective.

    Parameters
    ----------
    operator : DistributedFMMOperator

    Attributes
    ----------
    operator : DistributedFMMOperator
    comm : mpi4py.MPI.Intracomm
        The operator's communicator (what :mod:`~fmmsolve.distributed.krylov` reduces over).
    """

    def __init__(self, operator):
        self.operator, self.comm = operator, operator.comm
        super().__init__(operator.dtype, operator.local_shape)

    def _matvec(self, x):
        return self.operator.matvec(x)

    def _matmat(self, X):
        return self.operator.matmat(X)

    def _rmatvec(self, x):
        return self.operator.rmatvec(x)

    def _rmatmat(self, X):
        return self.operator.rmatmat(X)

    def _adjoint(self):
        return LocalOperator(self.operator.adjoint())

    def _transpose(self):
        return LocalOperator(self.operator.transpose())


class Conjugated:
    """``conj(B)`` for a distributed operator ``B``, whose adjoint is known: the adjoint of a
    complex symmetric kernel's ``A`` is ``conj(A.T)``, and that one's adjoint is ``A``.

    Parameters
    ----------
    operator : DistributedFMMOperator
        ``B``.
    adjoint : DistributedFMMOperator
        ``conj(B).H``.
    """

    def __init__(self, operator, adjoint):
        self._operator, self._adjoint_op = operator, adjoint
        self.comm, self.dtype = operator.comm, operator.dtype
        self.shape, self.local_shape = operator.shape, operator.local_shape

    def __matmul__(self, q):
        return np.conj(self._operator @ np.conj(q))

    def matvec(self, q):
        """Collective: ``conj(B @ conj(q))``."""
        return np.conj(self._operator.matvec(np.conj(q)))

    def matmat(self, Q):
        """Collective: ``conj(B @ conj(Q))``."""
        return np.conj(self._operator.matmat(np.conj(Q)))

    T = property(lambda self: self.transpose())
    H = property(lambda self: self.adjoint())

    def adjoint(self):
        return self._adjoint_op

    def transpose(self):
        """``conj(A)``, the transpose of ``conj(A.T)``."""
        return Conjugated(self._adjoint_op, adjoint=self._operator)

    def rmatvec(self, x):
        return self._adjoint_op.matvec(x)

    def rmatmat(self, X):
        return self._adjoint_op.matmat(X)

    def local_operator(self):
        return LocalOperator(self)


class ReplicatedOperator(LinearOperator):
    """A :class:`~.operator.DistributedFMMOperator` on vectors that every rank holds whole.

    The global vector is the concatenation of the ranks' local vectors, rank 0 first. A product
    takes this rank's slice, applies the distributed operator (collective) and gathers the
    result on every rank (``Allgatherv``). Every rank then runs the same SciPy solver on the same
    numbers, so the iterates agree across ranks. Memory: each Krylov vector costs
    ``8 * n_sources`` bytes (float64) on every rank, so a GMRES with restart ``r`` holds about
    ``(r + 4) * 8 * n`` bytes per rank, not divided by the number of ranks.

    Parameters
    ----------
    operator : DistributedFMMOperator
    """

    def __init__(self, operator):
        self.operator = operator
        comm = operator.comm
        self._src_counts = np.array(comm.allgather(operator.local_shape[1]), np.int64)
        self._tgt_counts = np.array(comm.allgather(operator.local_shape[0]), np.int64)
        super().__init__(operator.dtype, operator.shape)

    def _matvec(self, x):
        return self._matmat(np.reshape(x, (-1, 1)))[:, 0]

    def _matmat(self, X):
        comm, rank = self.operator.comm, self.operator.comm.rank
        start = self._src_counts[:rank].sum()
        y = self.operator.matmat(X[start:start + self._src_counts[rank]])
        m = y.shape[1]
        out = np.empty((self.shape[0], m), y.dtype)
        counts = self._tgt_counts * m
        comm.Allgatherv(np.ascontiguousarray(y),
                        [out, (counts, np.concatenate([[0], np.cumsum(counts)[:-1]]))])
        return out

    def _adjoint(self):
        return ReplicatedOperator(self.operator.adjoint())

    def _transpose(self):
        return ReplicatedOperator(self.operator.transpose())
