"""DistributedFMMOperator against the serial FMMOperator on the same points, and its parts.

Each rank builds the global point set from the same seed, holds a random share of it, and
compares its part of ``A @ q`` with its rows of the serial product; errors are reduced over the
ranks. The serial FMM's own error against the direct sum is about eps / 10, so agreement within
eps checks that the distributed split adds no error of its own.
"""

import numpy as np
import pytest
from scipy.sparse.linalg import aslinearoperator, gmres

import fmmsolve
from fmmsolve.distributed import DistributedFMMOperator, Partition, RankFailedError
from fmmsolve.distributed.partition import MAX_CUT_LEVEL, assign, global_root
from fmmsolve.testing import point_cloud

from mpi_helpers import deal, global_error


@pytest.mark.parametrize("distribution", ["uniform", "clusters", "sphere"])
def test_agrees_with_serial(comm, rng, distribution):
    n, eps = 6000, 1e-6
    x = point_cloud(distribution, n, rng)
    q = rng.standard_normal(n)
    mine = deal(n, comm, rng)
    A = DistributedFMMOperator(x[mine], comm=comm, eps=eps, memory=None)
    assert A.shape == (n, n) and A.local_shape == (len(mine), len(mine))
    y = A @ q[mine]
    serial = (fmmsolve.FMMOperator(x, eps=eps, memory=None) @ q)[mine]
    assert global_error(comm, y, serial) <= eps
    assert global_error(comm, y, fmmsolve.direct(x, x[mine], q)) <= eps
    # memory shrinks: no rank holds every source once the points are split
    held = comm.allgather(A.stats()["held_sources"])
    assert max(held) < n


def test_separate_targets_columns_and_complex_densities(comm, rng):
    n_src, n_tgt, eps = 4000, 2500, 1e-4
    src, tgt = point_cloud("clusters", n_src, rng), rng.random((n_tgt, 3))
    Q = rng.standard_normal((n_src, 2)) + 1j * rng.standard_normal((n_src, 2))
    s_mine, t_mine = deal(n_src, comm, rng), deal(n_tgt, comm, rng)
    A = DistributedFMMOperator(src[s_mine], tgt[t_mine], comm=comm, eps=eps, memory=None)
    Y = A @ Q[s_mine]
    assert Y.shape == (len(t_mine), 2) and Y.dtype == np.complex128
    exact = fmmsolve.direct(src, tgt[t_mine], Q.real) + 1j * fmmsolve.direct(src, tgt[t_mine],
                                                                             Q.imag)
    assert global_error(comm, Y, exact) <= eps


def test_helmholtz_per_level_plans(comm, rng):
    n, eps = 3000, 1e-4
    x = point_cloud("uniform", n, rng)
    q = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    mine = deal(n, comm, rng)
    options = dict(kernel="helmholtz", wavenumber=2.0, eps=eps, memory=None)
    y = DistributedFMMOperator(x[mine], comm=comm, **options) @ q[mine]
    serial = (fmmsolve.FMMOperator(x, **options) @ q)[mine]
    assert global_error(comm, y, serial) <= eps


def test_ranks_that_own_no_points(comm, rng):
    """Rank 0 holds nothing, and the points sit in one deepest box of the tree (which no
    split can share) and one far corner, so some ranks own no cut box."""
    n, eps = 3000, 1e-6
    x = np.vstack([0.25 + 1e-9 * rng.standard_normal((n - 1, 3)), [[1.0, 1.0, 1.0]]])
    q = rng.standard_normal(n)
    mine = deal(n, comm, rng, empty=(0,))
    A = DistributedFMMOperator(x[mine], comm=comm, eps=eps, memory=None)
    y = A @ q[mine]
    assert y.shape == (len(mine),)
    exact = fmmsolve.direct(x, x[mine], q) if len(mine) else np.zeros(0)
    assert global_error(comm, y, exact) <= eps
    # two nonempty cut boxes (the cluster's and the far point's): at most two ranks own any
    assert sum(1 for t in comm.allgather(A.n_own_targets) if t) <= 2


def test_gmres_same_iterates_as_serial(comm, rng):
    """GMRES on replicated vectors: every rank runs the same iteration, and it is the serial
    one up to the FMM's accuracy."""
    n, eps = 3000, 1e-8
    x = point_cloud("sphere", n, rng)
    b = np.ones(n)
    mine = np.split(np.arange(n), np.linspace(0, n, comm.size + 1).astype(int)[1:-1])[comm.rank]
    A = DistributedFMMOperator(x[mine], comm=comm, eps=eps, memory=None).replicated()
    S = fmmsolve.FMMOperator(x, eps=eps, memory=None)
    assert A.shape == S.shape == (n, n)
    history = {"dist": [], "serial": []}
    solve = dict(rtol=1e-10, restart=30, maxiter=5, callback_type="pr_norm")
    shift = aslinearoperator(np.eye(n) / 20)  # (I / 20 + A / n) u = b: a dozen iterations
    u, info = gmres(shift + A / n, b, callback=history["dist"].append, **solve)
    v, _ = gmres(shift + S / n, b, callback=history["serial"].append, **solve)
    assert len(history["dist"]) == len(history["serial"]) >= 5, history
    np.testing.assert_allclose(history["dist"], history["serial"], rtol=1e-5, atol=1e-12)
    assert np.linalg.norm(u - v) <= 1e-6 * np.linalg.norm(v)
    assert all(np.array_equal(u, other) for other in comm.allgather(u))  # same on every rank


def test_failure_on_one_rank_raises_on_every_rank(comm, rng):
    x = rng.random((200, 3))
    if comm.rank == comm.size - 1:
        x[0, 1] = np.nan
        with pytest.raises(ValueError, match="local_sources contains NaN"):
            DistributedFMMOperator(x, comm=comm, memory=None)
    else:
        with pytest.raises(RankFailedError, match=f"rank {comm.size - 1}: ValueError"):
            DistributedFMMOperator(x, comm=comm, memory=None)
    A = DistributedFMMOperator(rng.random((200, 3)), comm=comm, eps=1e-3, memory=None)
    q = np.ones(150 if comm.rank == 0 else 200)  # a wrong length on rank 0 only
    expected = ValueError if comm.rank == 0 else RankFailedError
    with pytest.raises(expected, match="q_local must" if comm.rank == 0 else "rank 0"):
        A @ q
    assert np.isfinite(A @ np.ones(200)).all()  # still usable afterwards


def test_failure_inside_the_passes_raises_on_every_rank(comm, rng, monkeypatch):
    """A rank whose engine raises in the middle of a product: the others, waiting to sum the
    multipoles, raise instead of waiting forever."""
    A = DistributedFMMOperator(rng.random((300, 3)), comm=comm, eps=1e-3, memory=None)
    if comm.rank == 1:
        def broken(*args, **kwargs):
            raise FloatingPointError("injected")
        monkeypatch.setattr(A.engine, "evaluate", broken)
    with pytest.raises(FloatingPointError if comm.rank == 1 else RankFailedError,
                       match="injected"):
        A @ np.ones(300)


def test_assign_is_contiguous_and_balanced(rng):
    weights = rng.integers(0, 100, 500)
    for size in (1, 2, 3, 7):
        owner = assign(weights, size)
        assert (np.diff(owner) >= 0).all() and owner.min() >= 0 and owner.max() < size
        load = np.bincount(owner, weights, minlength=size)
        assert load.max() <= weights.sum() / size + weights.max()


def test_routes_send_every_source_to_its_neighbours(rng):
    """Brute force: a source goes to every rank owning a cut box adjacent to its own."""
    x = point_cloud("clusters", 3000, rng)
    root = global_root(x.min(axis=0), x.max(axis=0))
    from fmmsolve.distributed.partition import fine_keys
    keys, counts = np.unique(fine_keys(x, root), return_counts=True)
    part = Partition.from_histogram(root, keys, np.stack([counts, counts], 1), 5, 20)
    assert 2 <= part.level <= MAX_CUT_LEVEL
    order, sent = part.route(x, ghosts=True)
    box = part.box_of(x)
    anchors = fmmsolve.tree.morton.decode_array(part.keys)
    for i in rng.choice(len(x), 50, replace=False):
        adjacent = np.abs(anchors - anchors[box[i]]).max(axis=1) <= 1
        expected = set(part.owner[adjacent])
        got = {d for d, lo, hi in zip(range(5), np.cumsum(sent) - sent, np.cumsum(sent))
               if i in order[lo:hi]}
        assert got == expected
    own, own_sent = part.route(x, ghosts=False)
    assert sorted(own) == list(range(len(x))) and own_sent.sum() == len(x)


@pytest.mark.parametrize("points, size", [("clusters", 4), ("one place", 8)])
def test_split_pieces_route_sources_to_every_owner(rng, points, size):
    """Brute force on a partition whose heavy cut boxes are split (one process plays every
    rank): a source goes to every owner of a piece of its cut box or an adjacent one, a target
    to its piece's owner, and the pieces tile the points. "one place": 5,000 coincident
    points (one indivisible piece, heavier than a rank's share) and 2,000 uniform ones, so
    that ranks between two owners of a cut box own none of its pieces."""
    from fmmsolve.distributed.partition import (fine_keys, merge_refined, piece_starts,
                                                refine_counts)
    x = point_cloud("clusters", 4000, rng) if points == "clusters" else \
        np.vstack([np.full((5000, 3), 0.3), rng.random((2000, 3))])
    root = global_root(x.min(axis=0), x.max(axis=0))
    keys, counts = np.unique(fine_keys(x, root), return_counts=True)

    def refine(k, levels, deeper):
        return merge_refined([refine_counts((x, x), root, k, levels, deeper)])

    part = Partition.from_histogram(root, keys, np.stack([counts, counts], 1), size, 20, refine)
    assert (part.piece_levels > part.level).any()  # the tight clusters were split
    assert (part.first < part.last).any()  # and shared between ranks
    assert np.all(np.diff(piece_starts(part.piece_keys, part.piece_levels)) > 0)
    piece = part.piece_of(x)
    assert np.array_equal(np.bincount(piece, minlength=len(part.piece_keys)),
                          part.piece_counts[:, 0])
    if points == "clusters":
        load = part.loads()
        assert load.max() <= 1.15 * load.mean()
    # the owners of each cut box, from the pieces' own keys
    piece_cut = part.piece_keys >> (3 * (part.piece_levels - part.level))
    order, sent = part.route(x, ghosts=True)
    box = part.box_of(x)
    anchors = fmmsolve.tree.morton.decode_array(part.keys)
    for i in rng.choice(len(x), 50, replace=False):
        adjacent = np.flatnonzero(np.abs(anchors - anchors[box[i]]).max(axis=1) <= 1)
        expected = {int(r) for b in adjacent for r in part.piece_owner[piece_cut == part.keys[b]]}
        got = {d for d, lo, hi in zip(range(size), np.cumsum(sent) - sent, np.cumsum(sent))
               if i in order[lo:hi]}
        assert got == expected
    own, own_sent = part.route(x, ghosts=False)
    assert sorted(own) == list(range(len(x)))
    assert np.array_equal(own_sent, np.bincount(part.piece_owner, part.piece_counts[:, 1],
                                                minlength=size))


@pytest.mark.parametrize("distribution", ["clusters", "sphere"])
def test_clustered_points_balance(comm, rng, distribution):
    """Cut boxes split between ranks: the ranks' loads (sources and targets of their pieces,
    and a cost per whole cut box) are within 15 % of the mean, and the products still agree
    with the direct sum."""
    n, eps = 8000, 1e-6
    x = point_cloud(distribution, n, rng)
    q = rng.standard_normal(n)
    mine = deal(n, comm, rng)
    A = DistributedFMMOperator(x[mine], comm=comm, eps=eps, memory=None)
    part = A.partition
    load = part.loads()
    assert load.max() <= 1.15 * load.mean(), load
    targets = np.array(comm.allgather(A.n_own_targets))
    assert np.array_equal(targets, np.bincount(part.piece_owner, part.piece_counts[:, 1],
                                               minlength=comm.size))
    idx = rng.choice(len(mine), min(len(mine), 400), replace=False) if len(mine) else mine
    y = (A @ q[mine])[idx]
    assert global_error(comm, y, fmmsolve.direct(x, x[mine][idx], q)) <= eps
