"""A distributed FMM as a PETSc matrix: :func:`as_petsc` wraps a
:class:`~fmmsolve.distributed.DistributedFMMOperator` in a matrix-free ``petsc4py`` ``Mat`` of
type ``'python'``, for PETSc's Krylov solvers and preconditioners (KSP, PC) and SLEPc.

PETSc's layout is the operator's: rank ``r`` owns the rows of its targets and the columns of
its sources, in the order it passed them, so ``Mat.createVecs()`` gives vectors whose local
arrays are the pieces :meth:`DistributedFMMOperator.matvec` takes and returns. A product is
collective, as PETSc's ``MatMult`` is.

``petsc4py`` is imported when :func:`as_petsc` is called, not with this module: it is not a
wheel on PyPI, it is built against a PETSc library.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_petsc"]

_INSTALL = ("as_petsc needs petsc4py, built against a PETSc library (there is no PyPI wheel of "
            "petsc4py): conda install -c conda-forge petsc4py, or pip install petsc petsc4py "
            "(builds PETSc from source: needs compilers and the MPI library mpi4py uses)")


class _Shell:
    """The ``'python'`` matrix's context: ``y = A x`` on this rank's pieces."""

    def __init__(self, operator):
        self.operator = operator

    def mult(self, mat, x, y):
        y.array[:] = self.operator.matvec(x.array_r)


class _ShellWithAdjoint(_Shell):
    """With ``A^H x`` (the operator's ``rmatvec``) and ``A^T x = conj(A^H conj(x))``."""

    def multHermitian(self, mat, x, y):  # camelCase: petsc4py's protocol names
        y.array[:] = self.operator.rmatvec(x.array_r)

    def multTranspose(self, mat, x, y):
        y.array[:] = np.conj(self.operator.rmatvec(np.conj(x.array_r)))


def as_petsc(operator):
    """Collective: ``operator`` as a matrix-free PETSc matrix on its communicator.

    Parameters
    ----------
    operator : DistributedFMMOperator
        Or any object with ``matvec`` (collective), ``local_shape``, ``shape``, ``dtype`` and
        ``comm``; with ``rmatvec`` (the adjoint, collective) the matrix also has
        ``multHermitian`` and ``multTranspose``.

    Returns
    -------
    petsc4py.PETSc.Mat
        Of type ``'python'``, local sizes ``operator.local_shape`` (rows: this rank's targets,
        columns: its sources), global sizes ``operator.shape``, on ``operator.comm``.

    Raises
    ------
    ImportError
        Without petsc4py, saying how to install it.
    ValueError
        For a complex operator and a PETSc built with real scalars.
    """
    try:
        from petsc4py import PETSc
    except ImportError as exc:
        raise ImportError(f"{_INSTALL}; {exc}") from exc
    if np.dtype(operator.dtype).kind == "c" and np.dtype(PETSc.ScalarType).kind != "c":
        raise ValueError(f"the operator is {np.dtype(operator.dtype).name} but this PETSc is "
                         f"built with real scalars ({np.dtype(PETSc.ScalarType).name}): a "
                         f"complex operator needs a PETSc configured --with-scalar-type=complex")
    context = (_ShellWithAdjoint if hasattr(operator, "rmatvec") else _Shell)(operator)
    (m, n), (M, N) = operator.local_shape, operator.shape
    mat = PETSc.Mat().createPython(((m, M), (n, N)), context=context, comm=operator.comm)
    mat.setUp()
    return mat
