"""
GMRES across MPI ranks
======================

Solve a dense N-body linear system with GMRES across MPI ranks.

The system is a second-kind integral equation on a sphere, ``(I / 20 + A / n) u = 1``, with ``A``
the Laplace single-layer sum over n Fibonacci-lattice points. Each rank builds only its own
share of the points (a contiguous range of the lattice), so no rank ever holds them all as
points. ``DistributedFMMOperator(...).replicated()`` is the SciPy ``LinearOperator`` that GMRES
needs: vectors are replicated (every rank holds all n entries and runs the same GMRES), the
products are distributed. The memory of the FMM (tree, lists, near field) is divided among the
ranks; the Krylov vectors, ``(restart + 4) * n`` numbers, are not.

Run with ``mpiexec -n 4 python -m mpi4py examples/mpi_gmres.py`` (``-m mpi4py`` aborts every
rank when one raises); one rank (plain ``python``) works too. For up to 20,000 points rank 0
also solves the system with the serial ``FMMOperator`` and prints how far the two GMRES runs
are apart. Set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick run.
"""
# fmmsolve-gallery: not executed  (run it under mpiexec)

import os
import time

import numpy as np
from mpi4py import MPI
from scipy.sparse.linalg import aslinearoperator, gmres, LinearOperator

import fmmsolve
from fmmsolve.distributed import DistributedFMMOperator
from fmmsolve.testing import fibonacci_sphere

N = 3000 if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else 40000
EPS = 1e-8
SOLVER = dict(rtol=1e-10, restart=30, maxiter=10, callback_type="pr_norm")


def lattice(indices, n):
    """Points ``indices`` of an n-point Fibonacci lattice on the unit sphere."""
    return fibonacci_sphere(n, indices)


def solve(A, n):
    """GMRES on ``(I / 20 + A / n) u = 1``: the solution and the residual history."""
    identity = LinearOperator((n, n), matvec=lambda x: x / 20, dtype=np.float64)
    history = []
    u, info = gmres(identity + aslinearoperator(A) / n, np.ones(n), callback=history.append,
                    **SOLVER)
    return u, info, np.array(history)


def main():
    comm = MPI.COMM_WORLD
    bounds = np.linspace(0, N, comm.size + 1).astype(int)
    mine = lattice(np.arange(bounds[comm.rank], bounds[comm.rank + 1]), N)

    start = time.perf_counter()
    A = DistributedFMMOperator(mine, comm=comm, eps=EPS)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    u, info, history = solve(A.replicated(), N)
    elapsed = time.perf_counter() - start
    held = comm.gather(A.stats()["held_sources"])
    if comm.rank == 0:
        print(f"{comm.size} rank(s), n = {N}, cut level {A.partition.level}, sources held per "
              f"rank {held}")
        print(f"fit {fit:.2f} s, GMRES {elapsed:.2f} s: info {info}, {len(history)} iterations, "
              f"residual {history[-1]:.1e}, mean u {u.mean():.6f}")
    if comm.rank == 0 and N <= 20000:  # the same GMRES with the serial operator
        v, _, serial = solve(fmmsolve.FMMOperator(lattice(np.arange(N), N), eps=EPS), N)
        same = len(serial) == len(history)
        gap = np.max(np.abs(serial - history)) if same else np.inf
        print(f"serial GMRES: {len(serial)} iterations; relative residuals differ by at most "
              f"{gap:.1e}, solutions by {np.linalg.norm(u - v) / np.linalg.norm(v):.1e}")


if __name__ == "__main__":
    main()
