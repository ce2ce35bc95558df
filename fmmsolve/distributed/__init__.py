"""The FMM across MPI ranks: :class:`DistributedFMMOperator` (each rank passes and receives its
own points' part) and :class:`ReplicatedOperator` (SciPy solvers on vectors every rank holds).

Needs the ``mpi`` extra, ``pip install "fmmsolve[mpi]"`` (mpi4py, numba-mpi, an MPI library);
without it importing this module raises ``ImportError`` saying so, and the rest of fmmsolve is
unaffected (``import fmmsolve`` never imports this module). Design, vector layout and scaling:
docs/mpi.md.

Modules: :mod:`._mpi` (imports, failure agreement, exchanges), :mod:`.partition` (root cube,
cut level, owners, routes), :mod:`.top` (shared coarse top: the far field between cut boxes),
:mod:`.operator` (the operators).
"""

from ._mpi import RankFailedError
from .operator import DistributedFMMOperator, ReplicatedOperator
from .partition import Partition

__all__ = ["DistributedFMMOperator", "Partition", "RankFailedError", "ReplicatedOperator"]
