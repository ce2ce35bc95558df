"""The distributed operator has the serial one's features: gradients, dipoles, the transpose
and adjoint, wave kernels at high frequency and at a resonance, any communicator, saving.

Each test compares the rank's part with the direct sum (or the serial operator) on the same
global points; errors are reduced over the ranks (see test_distributed.py).
"""

import os

import numpy as np
import pytest

import fmmsolve
from fmmsolve.distributed import DistributedFMMOperator, RankFailedError
from fmmsolve.io import OperatorFileError
from fmmsolve.operators import surfaces
from fmmsolve.testing import point_cloud

from mpi_helpers import deal, global_error


def test_gradients_and_dipoles(comm, rng):
    n, eps = 3000, 1e-5
    x = point_cloud("clusters", n, rng)
    q, d = rng.standard_normal((n, 2)), rng.standard_normal((n, 2, 3))
    mine = deal(n, comm, rng)
    A = DistributedFMMOperator(x[mine], comm=comm, eps=eps, dipoles=True, memory=None)
    pot, grad = A.evaluate(q[mine], gradient=True, dipoles=d[mine])
    exact, exact_grad = fmmsolve.direct(x, x[mine], q, dipoles=d, gradient=True)
    assert pot.shape == (len(mine), 2) and grad.shape == (len(mine), 2, 3)
    assert global_error(comm, pot, exact) <= eps
    assert global_error(comm, grad, exact_grad) <= 10 * eps  # a derivative more: as serial
    # one column, dipoles alone
    pot = A.evaluate(dipoles=d[mine, 0])
    assert pot.shape == (len(mine),)
    assert global_error(comm, pot, fmmsolve.direct(x, x[mine], dipoles=d[:, 0])) <= eps


def test_dipoles_need_a_dipole_fit_and_the_same_layout_everywhere(comm, rng):
    x = rng.random((300, 3))
    A = DistributedFMMOperator(x, comm=comm, eps=1e-3, memory=None)
    with pytest.raises(ValueError, match="fit it with dipoles=True"):
        A.evaluate(dipoles=np.ones((300, 3)))
    B = DistributedFMMOperator(x, comm=comm, eps=1e-3, dipoles=True, memory=None)
    gradient = comm.rank == 0  # differs between ranks: every rank refuses before exchanging
    with pytest.raises(ValueError, match="same layout on every rank"):
        B.evaluate(np.ones(300), gradient=gradient)
    assert np.isfinite(B.evaluate(np.ones(300), gradient=True)[1]).all()


@pytest.mark.parametrize("kernel", ["laplace", "helmholtz"])
def test_transpose_and_adjoint(comm, rng, kernel):
    """<A q, p> = <q, A.H p> over all ranks, and A.H agrees with the serial adjoint."""
    n_src, n_tgt, eps = 2500, 2000, 1e-6
    src, tgt = point_cloud("clusters", n_src, rng), rng.random((n_tgt, 3))
    options = dict(kernel=kernel, eps=eps, memory=None,
                   wavenumber=3.0 if kernel == "helmholtz" else None)
    s_mine, t_mine = deal(n_src, comm, rng), deal(n_tgt, comm, rng)
    A = DistributedFMMOperator(src[s_mine], tgt[t_mine], comm=comm, **options)
    p = rng.standard_normal(n_tgt) + 1j * rng.standard_normal(n_tgt)
    y = A.rmatvec(p[t_mine])
    assert y.shape == (len(s_mine),)
    serial = fmmsolve.FMMOperator(src, tgt, **options).H @ p
    assert global_error(comm, y, serial[s_mine]) <= eps
    assert A.H.H is A and A.T.T is A
    # the local operator: SciPy's algebra, with the adjoint
    L = A.local_operator()
    assert L.shape == A.local_shape
    Y = L.H.matmat(np.stack([p[t_mine], 2 * p[t_mine]], axis=1))
    assert global_error(comm, Y[:, 1], 2 * serial[s_mine]) <= eps
    # square: A.T is A for the symmetric kernels
    S = DistributedFMMOperator(src[s_mine], comm=comm, **options)
    assert S.T is S


def test_transpose_with_targets_the_sources_on_some_ranks_only(comm, rng):
    """Rank 0's targets are its sources, the others' are not: A is not square-symmetric, and
    every rank fits the transpose (none returns A while the others wait)."""
    n_src, n_tgt, eps = 2000, 1500, 1e-6
    src, tgt = rng.random((n_src, 3)), rng.random((n_tgt, 3))
    s_mine, t_mine = deal(n_src, comm, rng), deal(n_tgt, comm, rng)
    mine = src[s_mine] if comm.rank == 0 else tgt[t_mine]
    A = DistributedFMMOperator(src[s_mine], None if comm.rank == 0 else mine, comm=comm,
                               eps=eps, memory=None)
    assert A.T is not A
    everyone = np.vstack(comm.allgather(mine))  # the global targets, rank 0 first
    p = rng.standard_normal(len(everyone))
    start = sum(comm.allgather(len(mine))[:comm.rank])
    y = A.rmatvec(p[start:start + len(mine)])
    assert global_error(comm, y, fmmsolve.direct(everyone, src[s_mine], p)) <= eps


def test_bad_gradient_or_load_path_on_one_rank_raises_on_every_rank(comm, rng,
                                                                    tmp_path_factory):
    last = comm.size - 1
    A = DistributedFMMOperator(rng.random((300, 3)), comm=comm, eps=1e-3, memory=None)
    with pytest.raises(TypeError if comm.rank == last else RankFailedError,
                       match="gradient" if comm.rank == last else f"rank {last}"):
        A.evaluate(np.ones(300), gradient="yes" if comm.rank == last else False)
    path = os.path.join(_shared_dir(comm, tmp_path_factory), "op")
    A.save(path)
    with pytest.raises(TypeError if comm.rank == last else RankFailedError):
        DistributedFMMOperator.load(None if comm.rank == last else path, comm)
    assert np.array_equal(DistributedFMMOperator.load(path, comm) @ np.ones(300),
                          A @ np.ones(300))


def test_helmholtz_at_high_frequency_raises_the_order(comm, rng):
    # k D = 24 on the unit sphere: past eps 1e-4's own order, which the distributed operator
    # used to pass to every engine explicitly (and the engines then refused)
    n, eps, k = 6000, 1e-4, 12.0
    x = point_cloud("sphere", n, rng)
    q = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    mine = deal(n, comm, rng)
    A = DistributedFMMOperator(x[mine], comm=comm, kernel="helmholtz", wavenumber=k, eps=eps,
                               memory=None)
    serial = fmmsolve.FMMOperator(x, kernel="helmholtz", wavenumber=k, eps=eps, memory=None)
    order = A.options["expansion_order"]
    assert order == serial.expansion_order > fmmsolve.accuracy.order_for_eps(eps)
    idx = mine[:300]
    exact = fmmsolve.direct(x, x[idx], q, kernel="helmholtz", wavenumber=k)
    assert global_error(comm, (A @ q[mine])[:300], exact) <= eps


def test_helmholtz_at_a_resonance_widens_the_shared_root(comm, rng):
    n, eps = 3000, 1e-6
    x = point_cloud("uniform", n, rng)
    half = 0.5 * float(np.ptp(x, axis=0).max()) * (1 + 1e-9)
    k = surfaces.cube_resonances(6.0)[0] / surfaces.UP_EQUIV * 4 / half  # level 2 resonant
    q = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    mine = deal(n, comm, rng)
    A = DistributedFMMOperator(x[mine], comm=comm, kernel="helmholtz", wavenumber=k, eps=eps,
                               leaf_size=60, memory=None)
    assert 1 < A.partition.root[1] / half < 1.1
    exact = fmmsolve.direct(x, x[mine], q, kernel="helmholtz", wavenumber=k)
    assert global_error(comm, A @ q[mine], exact) <= eps


def test_sub_communicators(comm, rng):
    """Two groups of ranks, each its own operator over its own points; in the larger group
    the ranks are numbered in reverse (not congruent with COMM_WORLD: the mpi4py sum)."""
    color = int(comm.rank >= (comm.size + 1) // 2)
    sub = comm.Split(color, key=-comm.rank)
    try:
        n, eps = 2000, 1e-6
        x = point_cloud("clusters", n, np.random.default_rng(color))
        q = np.random.default_rng(color + 10).standard_normal(n)
        mine = deal(n, sub, np.random.default_rng(color + 20))
        A = DistributedFMMOperator(x[mine], comm=sub, eps=eps, memory=None)
        error = global_error(sub, A @ q[mine], fmmsolve.direct(x, x[mine], q))
    finally:
        sub.Free()
    assert comm.allreduce(error, op=__import__("mpi4py").MPI.MAX) <= eps


@pytest.mark.parametrize("k", [1.0, 3.0])
def test_narrow_far_field_for_targets_away_from_the_sources(comm, rng, k, tmp_path_factory):
    """Modified Helmholtz, sources in the unit cube and targets on a sphere of radius 3 around
    it (the serial FMM's measurement, accuracy.DECAY_WIDTH): the targets take the other ranks'
    far field from the cut boxes' multipoles directly, not through wide local expansions
    (which missed by up to order 1)."""
    n_src, n_tgt, eps = 3000, 1500, 1e-6
    src = rng.random((n_src, 3))
    tgt = 0.5 + 3.0 * point_cloud("sphere", n_tgt, rng)
    q = rng.standard_normal(n_src)
    s_mine, t_mine = deal(n_src, comm, rng), deal(n_tgt, comm, rng)
    options = dict(kernel="modified_helmholtz", wavenumber=k, eps=eps, memory=None)
    A = DistributedFMMOperator(src[s_mine], tgt[t_mine], comm=comm, **options)
    pot, grad = A.evaluate(q[s_mine], gradient=True)
    exact, exact_grad = fmmsolve.direct(src, tgt[t_mine], q, gradient=True,
                                        kernel="modified_helmholtz", wavenumber=k)
    assert global_error(comm, pot, exact) <= eps
    assert global_error(comm, grad, exact_grad) <= 10 * eps
    assert comm.allreduce(len(A.narrow_field.away_index)) > 0  # the narrow path was taken
    path = os.path.join(_shared_dir(comm, tmp_path_factory), "narrow")
    A.save(path)
    B = DistributedFMMOperator.load(path, comm)
    assert np.array_equal(B @ q[s_mine], A @ q[s_mine])  # the narrow lists restored too


def test_narrow_far_field_refused_when_cut_boxes_are_too_wide(comm, rng):
    src = rng.random((500, 3))
    tgt = 0.5 + 3.0 * point_cloud("sphere", 300, rng)
    with pytest.raises(ValueError, match="decays too fast"):
        DistributedFMMOperator(src, tgt, comm=comm, kernel="modified_helmholtz",
                               wavenumber=40.0, eps=1e-6, memory=None)


def _shared_dir(comm, tmp_path_factory):
    """One directory for all ranks (rank 0's temporary directory)."""
    return comm.bcast(str(tmp_path_factory.mktemp("saved")) if comm.rank == 0 else None)


def test_save_and_load_round_trip(comm, rng, tmp_path_factory):
    n_src, n_tgt = 3000, 1500
    src, tgt = point_cloud("clusters", n_src, rng), rng.random((n_tgt, 3))
    s_mine, t_mine = deal(n_src, comm, rng), deal(n_tgt, comm, rng)
    A = DistributedFMMOperator(src[s_mine], tgt[t_mine], comm=comm, kernel="helmholtz",
                               wavenumber=2.0, eps=1e-5, dipoles=True, memory=None)
    path = os.path.join(_shared_dir(comm, tmp_path_factory), "op")
    A.save(path)
    assert os.path.exists(f"{path}.rank{comm.rank}of{comm.size}.h5")
    B = DistributedFMMOperator.load(path, comm)
    q = rng.standard_normal((n_src, 2)) + 1j * rng.standard_normal((n_src, 2))
    d = rng.standard_normal((n_src, 2, 3))
    for a, b in zip(A.evaluate(q[s_mine], True, dipoles=d[s_mine]),
                    B.evaluate(q[s_mine], True, dipoles=d[s_mine])):
        assert np.array_equal(a, b)  # bit for bit
    assert B.shape == A.shape and B.local_shape == A.local_shape
    p = rng.standard_normal(n_tgt)
    assert global_error(comm, B.rmatvec(p[t_mine]), A.rmatvec(p[t_mine])) <= 1e-12


def test_load_refuses_missing_corrupt_and_mixed_files(comm, rng, tmp_path_factory):
    x = rng.random((400, 3))
    base = _shared_dir(comm, tmp_path_factory)
    A = DistributedFMMOperator(x, comm=comm, eps=1e-3, memory=None)
    A.save(os.path.join(base, "a"))
    A.save(os.path.join(base, "b"))
    last = comm.size - 1
    mine = os.path.join(base, f"{{}}.rank{comm.rank}of{comm.size}.h5")

    def refused(name, error, match):
        expected = (error, match) if comm.rank == last else (RankFailedError, f"rank {last}")
        with pytest.raises(expected[0], match=expected[1]):
            DistributedFMMOperator.load(os.path.join(base, name), comm)

    # the last rank's file missing, damaged, or from another save
    if comm.rank == last:
        os.remove(mine.format("a"))
    refused("a", FileNotFoundError, None)
    if comm.rank == last:
        with open(mine.format("b"), "r+b") as f:
            f.seek(0)
            f.write(b"garbage!")
    refused("b", OperatorFileError, "cannot read")
    A.save(os.path.join(base, "c"))
    A.save(os.path.join(base, "d"))
    if comm.rank == last:
        os.replace(mine.format("d"), mine.format("c"))
    with pytest.raises(OperatorFileError, match="different saves"):
        DistributedFMMOperator.load(os.path.join(base, "c"), comm)
    # an unwritable destination: that rank's OSError, the others RankFailedError
    target = os.path.join(base, "no-such-dir" if comm.rank == last else "", "e")
    with pytest.raises(OSError if comm.rank == last else RankFailedError):
        A.save(target)
