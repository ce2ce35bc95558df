"""
GMRES across MPI ranks
======================

Solve a dense N-body linear system with GMRES across MPI ranks, each rank holding only its
own piece of every vector.

The system is a second-kind integral equation on a sphere, ``(I / 20 + A / n) u = 1``, with ``A``
the Laplace single-layer sum over n Fibonacci-lattice points. Each rank builds only its own
share of the points (a contiguous range of the lattice), so no rank ever holds them all.
``A.local_operator()`` is the FMM on this rank's pieces of distributed vectors, and SciPy's
operator algebra builds the system from it; :func:`fmmsolve.distributed.gmres` is SciPy's GMRES
on those pieces, its inner products summed over the ranks. So both the FMM's memory and the
Krylov vectors', ``(restart + 4) * n / ranks`` numbers per rank, are divided among the ranks.

Run with ``mpiexec -n 3 python -m mpi4py examples/mpi_gmres.py`` (``-m mpi4py`` aborts every
rank when one raises); one rank (plain ``python``) works too. For up to 20,000 points rank 0
also solves the system with the serial ``FMMOperator`` and SciPy's GMRES and prints how far the
two runs are apart. Set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick run.
"""
# fmmsolve-gallery: not executed  (run it under mpiexec)

import os
import time

import numpy as np
import scipy.sparse.linalg as sla
from mpi4py import MPI
from scipy.sparse.linalg import LinearOperator, aslinearoperator

import fmmsolve
from fmmsolve.distributed import DistributedFMMOperator, gmres
from fmmsolve.testing import fibonacci_sphere

N = 3000 if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else 40000
EPS = 1e-8
SOLVER = dict(rtol=1e-10, restart=30, maxiter=10, callback_type="pr_norm")


def system(A, n_rows, n):
    """``I / 20 + A / n`` on vectors of ``n_rows`` entries (this rank's, or all of them)."""
    identity = LinearOperator((n_rows, n_rows), matvec=lambda x: x / 20, dtype=np.float64)
    return identity + A / n


def main():
    comm = MPI.COMM_WORLD
    bounds = np.linspace(0, N, comm.size + 1).astype(int)
    mine = np.arange(bounds[comm.rank], bounds[comm.rank + 1])

    start = time.perf_counter()
    A = DistributedFMMOperator(fibonacci_sphere(N, mine), comm=comm, eps=EPS)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    history = []
    u, info = gmres(system(A.local_operator(), len(mine), N), np.ones(len(mine)),
                    callback=history.append, **SOLVER)  # collective; u is this rank's piece
    elapsed = time.perf_counter() - start
    mean = comm.allreduce(u.sum()) / N
    held = comm.gather(A.stats()["held_sources"])
    u_all = comm.gather(u) if N <= 20000 else None  # for the comparison below
    if comm.rank == 0:
        krylov = (SOLVER["restart"] + 4) * 8 * max(np.diff(bounds)) / 1e6
        print(f"{comm.size} rank(s), n = {N}, cut level {A.partition.level}, sources held per "
              f"rank {held}")
        print(f"fit {fit:.2f} s, GMRES {elapsed:.2f} s: info {info}, {len(history)} iterations, "
              f"residual {history[-1]:.1e}, mean u {mean:.6f}; Krylov vectors {krylov:.2f} MB "
              f"per rank ({krylov * comm.size:.2f} MB on replicated vectors)")
    if comm.rank == 0 and N <= 20000:  # SciPy's GMRES with the serial operator
        u = np.concatenate(u_all)
        serial = []
        S = fmmsolve.FMMOperator(fibonacci_sphere(N), eps=EPS)
        v, _ = sla.gmres(system(aslinearoperator(S), N, N), np.ones(N),
                         callback=serial.append, **SOLVER)
        same = len(serial) == len(history)
        gap = np.max(np.abs(np.subtract(serial, history))) if same else np.inf
        print(f"serial SciPy GMRES: {len(serial)} iterations; relative residuals differ by at "
              f"most {gap:.1e}, solutions by {np.linalg.norm(u - v) / np.linalg.norm(v):.1e}")
        # the distributed FMM agrees with the serial one to eps, and GMRES follows it
        assert same and gap < 1e-8, "the distributed GMRES left the serial one's path"


if __name__ == "__main__":
    main()
