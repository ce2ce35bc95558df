"""Ranks that disagree (issue 17, items 4, 8 and 11): bad densities or options on one rank,
options or density columns that differ between ranks. Every rank must raise a clear error (the
rank at fault its own, naming the argument; the others ``RankFailedError`` naming that rank),
and none may be left waiting in a collective: a regression hangs until the conftest's watchdog
aborts the job. The operators are small (200 points, eps 1e-3) to keep each test fast.
"""

import numpy as np
import pytest

import fmmsolve
from fmmsolve.distributed import DistributedFMMOperator, RankFailedError
from fmmsolve.distributed.options import check_same

N = 200


def _raises_everywhere(comm, culprit, error, match):
    """``pytest.raises`` for this rank: ``error`` matching ``match`` on ``culprit``,
    ``RankFailedError`` naming it on the others."""
    if comm.rank == culprit:
        return pytest.raises(error, match=match)
    return pytest.raises(RankFailedError, match=f"rank {culprit}: {error.__name__}: {match}")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_density_on_one_rank_raises_on_every_rank(comm, rng, bad):
    A = DistributedFMMOperator(rng.random((N, 3)), comm=comm, eps=1e-3, memory=None)
    last = comm.size - 1
    for shape in [(N,), (N, 2)]:
        q = np.ones(shape)
        if comm.rank == last:
            q[N // 2] = bad
        with _raises_everywhere(comm, last, ValueError, "q_local contains NaN or infinite"):
            A @ q
    assert np.isfinite(A @ np.ones(N)).all()  # still usable afterwards


@pytest.mark.parametrize(("option", "error", "match"), [
    ({"eps": 1e-20}, ValueError, "eps must be at least 1e-09"),
    ({"eps": "abc"}, ValueError, "eps must be a number in"),
    ({"kernel": "bogus"}, ValueError, "unknown kernel 'bogus'"),
    ({"wavenumber": 2.0}, ValueError, "wavenumber must be None for the 'laplace' kernel"),
    ({"expansion_order": 40}, ValueError, "expansion_order must be in"),
    ({"leaf_size": 0}, ValueError, "leaf_size must be a positive integer"),
    ({"dtype": np.float32}, ValueError, "eps must be at least 0.0001 in float32"),
    ({"memory": 3}, TypeError, "memory must be"),
    ({"bogus_option": 1}, TypeError, r"unknown FMM options \['bogus_option'\]"),
])
def test_bad_option_on_one_rank_raises_on_every_rank(comm, rng, option, error, match):
    last = comm.size - 1
    options = {"eps": 1e-6, "memory": None, **(option if comm.rank == last else {})}
    with _raises_everywhere(comm, last, error, match):
        DistributedFMMOperator(rng.random((N, 3)), comm=comm, **options)


@pytest.mark.parametrize("eps", ["abc", float("nan"), 0.0, 1.5, True])
def test_distributed_eps_must_be_a_number_in_0_1(comm, rng, eps):
    with pytest.raises(ValueError, match=r"eps must be a number in \(0, 1\)"):
        DistributedFMMOperator(rng.random((N, 3)), comm=comm, eps=eps, memory=None)


@pytest.mark.parametrize(("rank0", "others", "match"), [
    ({"eps": 1e-3}, {"eps": 1e-4},
     r"eps: 0\.001 on rank 0; 0\.0001 on ranks? 1"),
    ({"eps": 1e-3}, {"eps": 1.1e-3},  # the same expansion order, still a different request
     r"eps: 0\.001 on rank 0; 0\.0011 on ranks? 1"),
    ({"expansion_order": 4}, {"expansion_order": 5}, r"expansion_order: 4 on rank 0; 5 on"),
    ({"leaf_size": 30}, {"leaf_size": 40}, r"leaf_size: 30 on rank 0; 40 on"),
    ({"dtype": np.float64}, {"dtype": np.float32}, r"dtype: 'float64' on rank 0; 'float32'"),
    ({}, {"kernel": "modified_helmholtz", "wavenumber": 1.0},
     r"kernel: 'laplace' on rank 0; 'modified_helmholtz' on .* \| wavenumber: 0\.0 on rank 0"),
    ({"kernel": "helmholtz", "wavenumber": 1.0}, {"kernel": "helmholtz", "wavenumber": 2.0},
     r"wavenumber: \(1\+0j\) on rank 0; \(2\+0j\) on"),
    ({"memory": "default"}, {}, r"memory: 'a plan cache' on rank 0; 'None' on"),
])
def test_options_that_differ_between_ranks_raise_on_every_rank(comm, rng, rank0, others,
                                                               match):
    options = {"eps": 1e-3, "memory": None, **(rank0 if comm.rank == 0 else others)}
    with pytest.raises(ValueError, match="the FMM options must be the same on every rank") \
            as info:
        DistributedFMMOperator(rng.random((N, 3)), comm=comm, **options)
    assert info.match(match)
    # the same error on every rank
    assert len(set(comm.allgather(str(info.value)))) == 1


def test_check_same_names_each_differing_option_and_its_ranks():
    base = {"eps": 1e-3, "kernel": "laplace", "leaf_size": 64}
    summaries = [base] * 4 + [{**base, "eps": 1e-4}] + [base] * 2 + [{**base, "leaf_size": 9}]
    with pytest.raises(ValueError, match=r"eps: 0\.001 on ranks 0-3, 5-7; 0\.0001 on rank 4 \| "
                                         r"leaf_size: 64 on ranks 0-6; 9 on rank 7$"):
        check_same(summaries)
    check_same([base] * 3)  # no difference, no error


def test_density_columns_that_differ_between_ranks_raise_on_every_rank(comm, rng):
    A = DistributedFMMOperator(rng.random((N, 3)), comm=comm, eps=1e-3, memory=None)
    with pytest.raises(ValueError, match="q_local must have the same number of columns m on "
                                         "every rank, got 1 on rank 0, 2 on rank 1"):
        A @ np.ones((N, 1 if comm.rank == 0 else 2))
    with _raises_everywhere(comm, 0, ValueError, "q_local must have at least one column"):
        A @ np.ones((N, 0 if comm.rank == 0 else 1))
    with _raises_everywhere(comm, 0, ValueError, "q_local must be a numeric array"):
        A @ (np.array(["x"] * N) if comm.rank == 0 else np.ones(N))
    with _raises_everywhere(comm, 0, ValueError, "q_local must be an array of shape .* got a "
                                                 "ragged sequence"):
        A @ ([[1.0], [1.0, 2.0]] * (N // 2) if comm.rank == 0 else np.ones(N))
    assert np.isfinite(A @ np.ones(N)).all()  # still usable afterwards


def test_complex_densities_on_some_ranks_only(comm, rng):
    """A real operator, complex densities on rank 0 only: the global vector is complex, so
    every rank takes the two real passes and gets complex potentials (the old code ran one pass
    on the real ranks and two on rank 0, and the ranks waited for each other forever)."""
    x = rng.random((comm.size * N, 3))
    mine = slice(comm.rank * N, (comm.rank + 1) * N)
    q = rng.standard_normal(len(x)).astype(complex)
    q[:N] += 1j * rng.standard_normal(N)
    A = DistributedFMMOperator(x[mine], comm=comm, eps=1e-3, memory=None)
    y = A @ (q[mine] if comm.rank == 0 else q[mine].real)
    assert y.dtype == np.complex128
    exact = fmmsolve.direct(x, x[mine], q.real) + 1j * fmmsolve.direct(x, x[mine], q.imag)
    num = comm.allreduce(float(np.sum(np.abs(y - exact) ** 2)))
    assert np.sqrt(num / comm.allreduce(float(np.sum(np.abs(exact) ** 2)))) <= 1e-3
