"""Shared by the MPI tests: how the global points are dealt to ranks, and global errors."""

import numpy as np


def deal(n, comm, rng, empty=()):
    """Indices of the ``n`` global points this rank holds: a random, spatially mixed, uneven
    split (the operator must redistribute), nothing for the ranks in ``empty``."""
    perm = rng.permutation(n)
    holders = [r for r in range(comm.size) if r not in empty]
    cuts = np.sort(rng.choice(np.arange(1, n), len(holders) - 1, replace=False))
    parts = dict(zip(holders, np.split(perm, cuts)))
    return parts.get(comm.rank, np.zeros(0, np.int64))


def global_error(comm, approx, exact):
    """Relative L2 error over all ranks' entries (the same number on every rank)."""
    num = comm.allreduce(float(np.sum(np.abs(approx - exact) ** 2)))
    den = comm.allreduce(float(np.sum(np.abs(exact) ** 2)))
    return np.sqrt(num / den)
