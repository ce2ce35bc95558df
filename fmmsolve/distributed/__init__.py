"""The FMM across MPI ranks: :class:`DistributedFMMOperator` (each rank passes and receives its
own points' part), the Krylov solvers :func:`gmres`, :func:`cg` and :func:`minres` on the ranks'
pieces of the vectors, and :class:`ReplicatedOperator` (SciPy solvers on vectors every rank
holds).

Needs the ``mpi`` extra, ``pip install "fmmsolve[mpi]"`` (mpi4py, numba-mpi, an MPI library);
without it importing this module raises ``ImportError`` saying so, and the rest of fmmsolve is
unaffected (``import fmmsolve`` never imports this module). Design, vector layout and scaling:
docs/mpi.md.

Modules: :mod:`._mpi` (imports, failure agreement, exchanges), :mod:`.options` (the options,
the same on every rank; order and root of a wave kernel), :mod:`.partition` (root cube, cut
level, pieces and owners, routes), :mod:`.top` (shared coarse top: the far field between cut
boxes), :mod:`.narrow` (the narrow far field of decaying kernels), :mod:`.operator` (the
operator), :mod:`.views` (it on local or replicated vectors, its conjugate), :mod:`.files`
(saving, one file per rank), :mod:`.krylov` (SciPy's Krylov solvers on distributed vectors;
:mod:`._system` their set-up and global inner products, :mod:`._minres`), :mod:`.petsc` (the
operator as a PETSc matrix).
"""

from ._mpi import RankFailedError
from .krylov import cg, gmres, minres
from .operator import DistributedFMMOperator
from .partition import Partition
from .views import Conjugated, LocalOperator, ReplicatedOperator

__all__ = ["Conjugated", "DistributedFMMOperator", "LocalOperator", "Partition",
           "RankFailedError", "ReplicatedOperator", "cg", "gmres", "minres"]
