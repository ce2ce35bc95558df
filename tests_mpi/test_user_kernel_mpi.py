"""A registered kernel (fmmsolve.register_kernel) in the distributed FMM: it runs with an
explicit expansion order and matches the serial result; without one every rank raises (the
distributed FMM does not calibrate); ranks that registered different definitions of one name
are refused on every rank."""

import math

import numpy as np
import pytest

import fmmsolve
from fmmsolve.distributed import DistributedFMMOperator

N = 400


def _profile(scale):
    def screened(r, k):
        g = scale * math.exp(-2.0 * r) / (4 * math.pi * r)
        return g, -g * (2.0 + 1 / r), g * (4.0 + 4.0 / r + 2 / (r * r))
    return screened


def test_registered_kernel_needs_an_order_and_matches_the_direct_sum(comm, rng):
    fmmsolve.register_kernel("mpi_screened", _profile(1.0))
    points = rng.random((comm.size, N, 3))[comm.rank]  # the rng is the same on every rank
    with pytest.raises(ValueError, match="pass expansion_order="):
        DistributedFMMOperator(points, comm=comm, kernel="mpi_screened", eps=1e-4, memory=None)
    A = DistributedFMMOperator(points, comm=comm, kernel="mpi_screened", eps=1e-4,
                               expansion_order=7, memory=None)
    q = rng.standard_normal((comm.size, N))[comm.rank]
    everything = np.vstack(comm.allgather(points))
    charges = np.concatenate(comm.allgather(q))
    exact = fmmsolve.direct(everything, points, charges, kernel="mpi_screened")
    error = np.linalg.norm(A @ q - exact) / np.linalg.norm(exact)
    assert max(comm.allgather(error)) <= 1e-4


def test_ranks_with_different_definitions_of_one_name_are_refused(comm, rng):
    fmmsolve.register_kernel("mpi_differs", _profile(1.0 + comm.rank))
    with pytest.raises(ValueError, match="kernel_digest"):
        DistributedFMMOperator(rng.random((N, 3)), comm=comm, kernel="mpi_differs", eps=1e-3,
                               expansion_order=4, memory=None)
