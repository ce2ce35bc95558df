"""The distributed Krylov solvers (fmmsolve.distributed.krylov) against SciPy's on the gathered
global problem: the same iterations, residual history and info, up to rounding.

Two kinds of operators. A dense global matrix of which each rank holds its rows (a collective
product through ``Allgatherv``) checks the solvers' logic exactly: restarts, maxiter, atol, x0,
a preconditioner, the callback types, complex systems, a rank holding nothing, one rank (a
sub-communicator). A ``DistributedFMMOperator`` checks them on the FMM, against SciPy on
``A.replicated()``, which gives the same products on global vectors. The sums over ranks add
in another order than NumPy's dot on the whole vector, so agreement is to rounding (1e-12 on
these well-conditioned systems), not equality.
"""

import importlib.util

import numpy as np
import pytest
import scipy.sparse.linalg as sla
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from fmmsolve.distributed import DistributedFMMOperator, RankFailedError, cg, gmres, minres
from fmmsolve.testing import fibonacci_sphere, point_cloud

HISTORY_TOL = 1e-12  # relative residuals (order 1 down to rtol) of SciPy and ours
X_TOL = 1e-10  # relative difference of the solutions


# -- a dense global matrix, by rows --------------------------------------------------------

class RowBlock(LinearOperator):
    """This rank's rows of a global matrix ``G``, on this rank's piece of the vectors; a
    product gathers the whole vector (``Allgatherv``), so it is collective."""

    def __init__(self, G, counts, comm):
        self.comm, self.counts = comm, counts
        start = counts[:comm.rank].sum()
        self.rows = G[start:start + counts[comm.rank]]
        super().__init__(G.dtype, (counts[comm.rank], counts[comm.rank]))

    def _matvec(self, x):
        dtype = np.result_type(self.dtype, x.dtype)
        whole = np.empty(self.counts.sum(), dtype)
        self.comm.Allgatherv(np.ascontiguousarray(x.ravel(), dtype), [whole, self.counts])
        return self.rows @ whole


def split(n, comm, rng, empty=()):
    """Every rank's local length: a random uneven split of ``n`` (0 for the ranks in
    ``empty``), the same on every rank."""
    holders = [r for r in range(comm.size) if r not in empty]
    cuts = np.sort(rng.choice(np.arange(1, n), len(holders) - 1, replace=False))
    counts = np.zeros(comm.size, np.int64)
    counts[holders] = np.diff([0, *cuts, n])
    return counts


def piece(v, counts, rank):
    start = counts[:rank].sum()
    return v[start:start + counts[rank]]


def gathered(comm, x):
    return np.concatenate(comm.allgather(x))


def nonsymmetric(n, rng, complex_):
    """``I + E`` with ``E`` random of spectral radius about 0.5: GMRES converges in about
    20 iterations to 1e-5, 35 to 1e-10."""
    E = rng.standard_normal((n, n))
    if complex_:
        E = (E + 1j * rng.standard_normal((n, n))) / np.sqrt(2)
    return np.eye(n) + 0.5 * E / np.sqrt(n)


def symmetric(n, rng, complex_=False, definite=True):
    """Hermitian with eigenvalues in [0.5, 20] (definite) or +-[0.5, 2] (indefinite)."""
    B = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if complex_ else 0)
    Q, _ = np.linalg.qr(B)
    eig = rng.uniform(0.5, 20, n) if definite else rng.uniform(0.5, 2, n) * rng.choice([-1, 1], n)
    return (Q * eig) @ Q.conj().T


def rhs(n, rng, complex_):
    b = rng.standard_normal(n)
    return b + 1j * rng.standard_normal(n) if complex_ else b


class Recorder:
    """A callback that keeps copies of what it is given."""

    def __init__(self):
        self.seen = []

    def __call__(self, value):
        self.seen.append(np.array(value, copy=True))


def assert_same_run(comm, ours, theirs, ours_seen, theirs_seen, counts, x_is_iterate):
    """The same info, the same number of callbacks with the same values, the same x; returns
    the largest gap of the callbacks' values (absolute for residual norms, relative for
    iterates) and the relative gap of the solutions."""
    (x, info), (x_ref, info_ref) = ours, theirs
    assert info == info_ref
    assert len(ours_seen) == len(theirs_seen) >= 1
    if x_is_iterate:  # the callback saw the iterate: compare the gathered iterates
        ours_seen = [gathered(comm, v) for v in ours_seen]
        seen_gap = max(np.linalg.norm(a - b) / np.linalg.norm(b)
                       for a, b in zip(ours_seen, theirs_seen))
        assert seen_gap <= X_TOL
    else:
        seen_gap = np.max(np.abs(np.array(ours_seen) - np.array(theirs_seen)))
        assert seen_gap <= HISTORY_TOL
    whole = gathered(comm, x)
    assert whole.dtype == x_ref.dtype and len(x) == counts[comm.rank]
    x_gap = np.linalg.norm(whole - x_ref) / np.linalg.norm(x_ref)
    assert x_gap <= X_TOL
    return seen_gap, x_gap


GMRES_CASES = {
    "defaults": dict(callback_type="pr_norm"),
    "restart 7, rtol 1e-10": dict(restart=7, rtol=1e-10, callback_type="pr_norm"),
    "legacy maxiter 13 (inner)": dict(rtol=1e-12, maxiter=13, callback_type="legacy"),
    "x callback, stops at maxiter 3": dict(restart=5, maxiter=3, callback_type="x"),
    "atol only": dict(rtol=0.0, atol=1e-7, restart=10, callback_type="pr_norm"),
    "x0 and M": dict(x0="random", M="diagonal", rtol=1e-9, restart=8, callback_type="pr_norm"),
    "x0 = M b": dict(x0="Mb", M="diagonal", rtol=1e-9, callback_type="x"),
}


def _dense_inputs(G, b, counts, comm, rng, case):
    """The global and local arguments of one case: (ours, scipy's), each a dict."""
    case, ours, theirs = dict(case), {}, {}
    n = len(b)
    if case.pop("M", None) == "diagonal":
        # positive definite, mild: (preconditioned MINRES amplifies rounding by 1e8 with a
        # spread of 0.5 to 2 here, SciPy against itself on the permuted problem too)
        d = rng.uniform(0.8, 1.25, n) / np.maximum(np.abs(np.diag(G)), 0.5)
        theirs["M"] = aslinearoperator(np.diag(d))
        ours["M"] = aslinearoperator(np.diag(piece(d, counts, comm.rank)))
    x0 = case.pop("x0", None)
    if x0 == "random":
        x0 = rhs(n, rng, np.iscomplexobj(G))
        theirs["x0"], ours["x0"] = x0, piece(x0, counts, comm.rank)
    elif x0 == "Mb":
        theirs["x0"] = ours["x0"] = "Mb"
    return {**case, **ours}, {**case, **theirs}


def _solve_both(comm, solver, reference, G, b, counts, ours, theirs):
    A = RowBlock(G, counts, comm)
    mine, ref = Recorder(), Recorder()
    result = solver(A, piece(b, counts, comm.rank), callback=mine, **ours)
    expected = reference(G, b, callback=ref, **theirs)
    return result, expected, mine.seen, ref.seen


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("case", GMRES_CASES, ids=list(GMRES_CASES))
def test_gmres_matches_scipy_on_a_dense_matrix(comm, rng, case, complex_):
    n = 60
    counts = split(n, comm, rng)
    G, b = nonsymmetric(n, rng, complex_), rhs(n, rng, complex_)
    ours, theirs = _dense_inputs(G, b, counts, comm, rng, GMRES_CASES[case])
    result, expected, seen, ref = _solve_both(comm, gmres, sla.gmres, G, b, counts, ours, theirs)
    assert_same_run(comm, result, expected, seen, ref, counts,
                    x_is_iterate=ours["callback_type"] == "x")


CG_CASES = {"defaults": {}, "x0, M, atol": dict(x0="random", M="diagonal", atol=1e-6),
            "maxiter 5": dict(maxiter=5, rtol=1e-12), "x0 = M b": dict(x0="Mb", M="diagonal")}


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("case", CG_CASES, ids=list(CG_CASES))
def test_cg_matches_scipy_on_a_dense_matrix(comm, rng, case, complex_):
    n = 80
    counts = split(n, comm, rng)
    G, b = symmetric(n, rng, complex_), rhs(n, rng, complex_)
    ours, theirs = _dense_inputs(G, b, counts, comm, rng, CG_CASES[case])
    result, expected, seen, ref = _solve_both(comm, cg, sla.cg, G, b, counts, ours, theirs)
    assert_same_run(comm, result, expected, seen, ref, counts, x_is_iterate=True)


MINRES_CASES = {"defaults": {}, "shift, x0, M, check": dict(shift=0.3, x0="random",
                                                            M="diagonal", check=True),
                "maxiter 6": dict(maxiter=6, rtol=1e-12), "rtol 1e-10": dict(rtol=1e-10)}


@pytest.mark.parametrize("case", MINRES_CASES, ids=list(MINRES_CASES))
def test_minres_matches_scipy_on_a_dense_matrix(comm, rng, case):
    n = 80
    counts = split(n, comm, rng)
    G, b = symmetric(n, rng, definite=False), rhs(n, rng, False)
    ours, theirs = _dense_inputs(G, b, counts, comm, rng, MINRES_CASES[case])
    result, expected, seen, ref = _solve_both(comm, minres, sla.minres, G, b, counts, ours,
                                              theirs)
    assert_same_run(comm, result, expected, seen, ref, counts, x_is_iterate=True)


@pytest.mark.parametrize("solver", ["gmres", "cg", "minres"])
def test_a_rank_holding_nothing(comm, rng, solver):
    n = 50
    counts = split(n, comm, rng, empty=(0,))
    assert counts[0] == 0
    definite = solver == "cg"
    G = nonsymmetric(n, rng, False) if solver == "gmres" else symmetric(n, rng, False, definite)
    b = rhs(n, rng, False)
    extra = {"callback_type": "pr_norm"} if solver == "gmres" else {}
    result, expected, seen, ref = _solve_both(
        comm, {"gmres": gmres, "cg": cg, "minres": minres}[solver], getattr(sla, solver), G, b,
        counts, dict(extra, rtol=1e-9), dict(extra, rtol=1e-9))
    assert_same_run(comm, result, expected, seen, ref, counts, x_is_iterate=solver != "gmres")


@pytest.mark.parametrize("solver", ["gmres", "cg", "minres"])
def test_single_precision_and_column_vectors(comm, rng, solver):
    n = 60
    counts = split(n, comm, rng)
    G = nonsymmetric(n, rng, True).astype(np.complex64) if solver == "gmres" else \
        symmetric(n, rng, definite=solver == "cg").astype(np.float32)
    b = rhs(n, rng, solver == "gmres").astype(G.dtype)[:, None]  # (n, 1), as SciPy takes
    extra = {"callback_type": "pr_norm"} if solver == "gmres" else {}
    mine, ref = Recorder(), Recorder()
    x, info = {"gmres": gmres, "cg": cg, "minres": minres}[solver](
        RowBlock(G, counts, comm), piece(b, counts, comm.rank), callback=mine, **extra)
    x_ref, info_ref = getattr(sla, solver)(G, b, callback=ref, **extra)
    assert x.dtype == x_ref.dtype and x.shape == (counts[comm.rank],)  # minres: float64
    assert info == info_ref and len(mine.seen) == len(ref.seen)
    whole = gathered(comm, x)
    assert np.linalg.norm(whole - x_ref) <= 1e-5 * np.linalg.norm(x_ref)


def test_a_callback_on_rank_0_only(comm, rng):
    """'legacy' counts inner iterations when some rank has a callback: on every rank."""
    n = 60
    counts = split(n, comm, rng)
    G, b = nonsymmetric(n, rng, False), rhs(n, rng, False)
    options = dict(rtol=1e-12, restart=5, maxiter=7, callback_type="legacy")
    mine, ref = Recorder(), Recorder()
    x, info = gmres(RowBlock(G, counts, comm), piece(b, counts, comm.rank),
                    callback=mine if comm.rank == 0 else None, **options)
    x_ref, info_ref = sla.gmres(G, b, callback=ref, **options)
    assert info == info_ref == 7
    assert len(mine.seen) == (7 if comm.rank == 0 else 0)
    assert np.linalg.norm(gathered(comm, x) - x_ref) <= X_TOL * np.linalg.norm(x_ref)


@pytest.mark.parametrize("solver", ["gmres", "cg", "minres"])
def test_one_rank_is_scipy_and_comm_is_found_in_composite_operators(comm, rng, solver):
    """Each rank solves its own problem on a one-rank sub-communicator, found in ``A``
    through SciPy's operator algebra: SciPy's iteration with local sums only."""
    sub = comm.Split(comm.rank)
    try:
        seeded = np.random.default_rng([comm.rank, 7])  # a different problem on each rank
        n = 40
        G = nonsymmetric(n, seeded, True) if solver == "gmres" else \
            symmetric(n, seeded, False, definite=solver == "cg")
        b, counts = rhs(n, seeded, solver == "gmres"), np.array([n])
        # 2 (G / 2) + 0 is G to the bit: SciPy's scaled and sum operators around the comm
        A = 2.0 * RowBlock(G / 2, counts, sub) + aslinearoperator(np.zeros((n, n)))
        extra = {"callback_type": "pr_norm"} if solver == "gmres" else {}
        mine, ref = Recorder(), Recorder()
        x, info = {"gmres": gmres, "cg": cg, "minres": minres}[solver](
            A, b, rtol=1e-10, callback=mine, **extra)
        x_ref, info_ref = getattr(sla, solver)(G, b, rtol=1e-10, callback=ref, **extra)
        assert info == info_ref and len(mine.seen) == len(ref.seen)
        gap = max(np.max(np.abs(a - r)) for a, r in zip(mine.seen, ref.seen))
        assert gap <= 1e-13
        assert np.linalg.norm(x - x_ref) <= 1e-12 * np.linalg.norm(x_ref)
    finally:
        sub.Free()


# -- the FMM ------------------------------------------------------------------------------

def _fmm_system(comm, n, points, **options):
    """``I / 20 + A / n`` of a DistributedFMMOperator on points dealt in contiguous ranges,
    rank-local and replicated (SciPy's)."""
    bounds = np.linspace(0, n, comm.size + 1).astype(int)
    mine = np.arange(bounds[comm.rank], bounds[comm.rank + 1])
    A = DistributedFMMOperator(points[mine], comm=comm, memory=None, **options)
    local = aslinearoperator(np.eye(len(mine)) / 20) + A.local_operator() / n
    replicated = aslinearoperator(np.eye(n) / 20) + A.replicated() / n
    return A, local, replicated, mine


def test_fmm_gmres_cg_minres_match_scipy_on_replicated_vectors(comm):
    n = 2000  # eps 1e-6: what is compared is the solvers, on the same products
    A, local, replicated, mine = _fmm_system(comm, n, fibonacci_sphere(n), eps=1e-6)
    b = np.ones(n)
    runs = [(gmres, sla.gmres, dict(rtol=1e-10, restart=10, callback_type="pr_norm")),
            (cg, sla.cg, dict(rtol=1e-10)), (minres, sla.minres, dict(rtol=1e-10))]
    for ours, theirs, options in runs:
        mine_seen, ref_seen = Recorder(), Recorder()
        x, info = ours(local, b[mine], callback=mine_seen, **options)  # comm found in A
        x_ref, info_ref = theirs(replicated, b, callback=ref_seen, **options)
        counts = np.array(comm.allgather(len(mine)))
        assert_same_run(comm, (x, info), (x_ref, info_ref), mine_seen.seen, ref_seen.seen,
                        counts, x_is_iterate=ours is not gmres)


def test_fmm_operator_itself_and_helmholtz(comm):
    """A DistributedFMMOperator passed as A (its local_operator is used), complex Helmholtz."""
    n = 1000
    points = point_cloud("sphere", n, 3)
    A, local, replicated, mine = _fmm_system(comm, n, points, eps=1e-6, kernel="helmholtz",
                                             wavenumber=2.0)
    b = np.exp(1j * points[:, 0])
    options = dict(rtol=1e-8, restart=15, callback_type="pr_norm")
    seen, ref = Recorder(), Recorder()
    result = gmres(local, b[mine], callback=seen, **options)
    expected = sla.gmres(replicated, b, callback=ref, **options)
    counts = np.array(comm.allgather(len(mine)))
    assert result[0].dtype == np.complex128
    assert_same_run(comm, result, expected, seen.seen, ref.seen, counts, x_is_iterate=False)
    # the operator alone (a point sum with no identity: slow, two short cycles)
    options = dict(restart=4, maxiter=2, callback_type="pr_norm")
    seen, ref = Recorder(), Recorder()
    result = gmres(A, b[mine], callback=seen, **options)
    expected = sla.gmres(A.replicated(), b, callback=ref, **options)
    assert_same_run(comm, result, expected, seen.seen, ref.seen, counts, x_is_iterate=False)


# -- bad inputs: every rank raises ----------------------------------------------------------

def _raises_everywhere(comm, culprit, error, match):
    if comm.rank == culprit:
        return pytest.raises(error, match=match)
    return pytest.raises(RankFailedError, match=f"rank {culprit}: {error.__name__}: {match}")


BAD = {  # on the last rank only: (solver, bad arguments of this rank's length n, error, message)
    "b too long": ("gmres", lambda n: {"b": np.ones(n + 1)}, ValueError,
                   r"b must have shape \(\d+,\) or \(\d+, 1\)"),
    "b NaN": ("cg", lambda n: {"b": np.full(n, np.nan)}, ValueError,
              "b contains NaN or infinite values"),
    "b strings": ("cg", lambda n: {"b": np.array(["a"] * n)}, ValueError,
                  "b must be a numeric array"),
    "x0 wrong shape": ("gmres", lambda n: {"x0": np.ones((n, 2))}, ValueError,
                       "x0 must have shape"),
    "x0 inf": ("minres", lambda n: {"x0": np.full(n, np.inf)}, ValueError,
               "x0 contains NaN or infinite values"),
    "x0 bad string": ("cg", lambda n: {"x0": "zeros"}, ValueError,
                      "x0 must be None, 'Mb' or an array"),
    "M wrong shape": ("gmres", lambda n: {"M": np.eye(n + 1)}, ValueError,
                      "M must have A's local shape"),
    "A not square": ("cg", lambda n: {"A": np.ones((n, n + 1))}, ValueError,
                     "A must be square on each rank"),
    "A not an operator": ("minres", lambda n: {"A": "text"}, TypeError,
                          "A must be a LinearOperator"),
    "restart 0": ("gmres", lambda n: {"restart": 0}, ValueError,
                  "restart must be a positive integer"),
    "maxiter -1": ("cg", lambda n: {"maxiter": -1}, ValueError,
                   "maxiter must be a positive integer"),
    "rtol NaN": ("minres", lambda n: {"rtol": np.nan}, ValueError,
                 "rtol must be a real, non-negative"),
    "atol -1": ("gmres", lambda n: {"atol": -1.0}, ValueError,
                "atol must be a real, non-negative"),
    "callback_type": ("gmres", lambda n: {"callback_type": "bogus"}, ValueError,
                      "callback_type must be one of"),
    "callback": ("cg", lambda n: {"callback": 3}, TypeError, "callback must be callable"),
    "shift": ("minres", lambda n: {"shift": "big"}, ValueError,
              "shift must be a finite real number"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_on_one_rank_raises_on_every_rank(comm, rng, case):
    solver, bad, error, match = BAD[case]
    n, last = 12, comm.size - 1
    counts = split(n, comm, rng)
    A, b = RowBlock(symmetric(n, rng), counts, comm), np.ones(counts[comm.rank])
    args = {"A": A, "b": b, **({"callback_type": "pr_norm"} if solver == "gmres" else {}),
            **(bad(counts[comm.rank]) if comm.rank == last else {})}
    with _raises_everywhere(comm, last, error, match):
        {"gmres": gmres, "cg": cg, "minres": minres}[solver](**args)
    x, info = cg(A, b)  # the ranks are still in step
    assert info == 0 and len(x) == counts[comm.rank]


def test_errors_that_every_rank_sees(comm, rng):
    n = 12
    counts = split(n, comm, rng)
    G = symmetric(n, rng)
    A, b = RowBlock(G, counts, comm), np.ones(counts[comm.rank])
    with pytest.raises(ValueError, match=r"settings must be the same.*differ: "
                                         r"rtol: 1e-05 on ranks? 0\b.*0.001 on ranks?"):
        cg(A, b, rtol=1e-5 if comm.rank == 0 else 1e-3)
    with pytest.raises(ValueError, match=r"x0 is complex on rank\(s\) 0 but the system is real"):
        gmres(A, b, x0=b + (1j if comm.rank == 0 else 0), callback_type="pr_norm")
    with pytest.raises(ValueError, match="minres solves real symmetric systems"):
        minres(A, b + 1j)
    with pytest.raises(ValueError, match="b is empty on every rank"):
        cg(np.zeros((0, 0)), np.zeros(0), comm=comm)
    with pytest.raises(ValueError, match="non-symmetric matrix"):
        minres(RowBlock(nonsymmetric(n, rng, False), counts, comm), b, check=True)
    with pytest.warns(DeprecationWarning, match="callback_type"):
        gmres(A, b, callback=lambda _: None)
    fmm = DistributedFMMOperator(rng.random((100, 3)), comm=comm, eps=1e-3, memory=None)
    with pytest.raises(TypeError, match="ReplicatedOperator"):
        cg(fmm.replicated(), np.ones(100))


def test_zero_rhs_returns_zero_at_once(comm, rng):
    counts = split(10, comm, rng)
    A, b = RowBlock(symmetric(10, rng), counts, comm), np.zeros(counts[comm.rank])
    for solve in (cg, minres, lambda *a: gmres(*a, callback_type="x")):
        x, info = solve(A, b)
        assert info == 0 and not x.any() and len(x) == counts[comm.rank]


# -- PETSc -------------------------------------------------------------------------------

def test_as_petsc_without_petsc4py_says_how_to_get_it(comm, rng):
    if importlib.util.find_spec("petsc4py") is not None:
        pytest.skip("petsc4py is installed")
    from fmmsolve.distributed.petsc import as_petsc
    A = DistributedFMMOperator(rng.random((100, 3)), comm=comm, eps=1e-3, memory=None)
    with pytest.raises(ImportError, match="conda install -c conda-forge petsc4py"):
        as_petsc(A)


def test_as_petsc_ksp_matches_our_gmres(comm, rng):
    PETSc = pytest.importorskip("petsc4py.PETSc")
    from fmmsolve.distributed.petsc import as_petsc
    n = 2000
    bounds = np.linspace(0, n, comm.size + 1).astype(int)
    mine = np.arange(bounds[comm.rank], bounds[comm.rank + 1])
    A = DistributedFMMOperator(fibonacci_sphere(n, mine), comm=comm, eps=1e-8, memory=None)
    mat = as_petsc(A)
    assert mat.getType() == "python"
    assert mat.getLocalSize() == A.local_shape and mat.getSize() == A.shape
    x, y = mat.createVecs()
    q = rng.standard_normal(n)[mine]
    x.array[:] = q
    mat.mult(x, y)
    assert np.array_equal(y.array_r, A.matvec(q))
    if hasattr(A, "rmatvec"):
        mat.multHermitian(y, x)
        assert np.allclose(x.array_r, A.rmatvec(y.array_r))
    # 20 GMRES steps of PETSc and ours from zero: the same minimiser over the same space
    ksp = PETSc.KSP().create(comm=A.comm)
    ksp.setOperators(mat)
    ksp.setType("gmres")
    ksp.setGMRESRestart(30)
    ksp.getPC().setType("none")
    ksp.setTolerances(rtol=1e-30, atol=1e-300, max_it=20)
    b = mat.createVecLeft()
    b.array[:] = 1.0
    ksp.solve(b, x)
    assert ksp.getIterationNumber() == 20
    ours, _ = gmres(A, np.ones(len(mine)), rtol=1e-30, restart=20, maxiter=1)
    assert np.linalg.norm(gathered(comm, x.array_r - ours)) <= 1e-6 * np.linalg.norm(
        gathered(comm, ours))


def test_as_petsc_shell_glue_with_a_stand_in_petsc(comm, rng, monkeypatch):
    """What PETSc would call, with a stand-in petsc4py (no PETSc here): the sizes and
    communicator of the python matrix, and its mult, multHermitian and multTranspose against
    the operator's products (collective, on every rank). Real PETSc: the test above."""
    import sys
    import types

    from fmmsolve.distributed.petsc import as_petsc

    made = {}

    class Mat:
        def createPython(self, sizes, context=None, comm=None):
            made.update(sizes=sizes, context=context, comm=comm)
            return self

        def setUp(self):
            made["set_up"] = True

    class Vec:
        def __init__(self, values):
            self.array = np.array(values)

        @property
        def array_r(self):
            return self.array

    PETSc = types.SimpleNamespace(Mat=Mat, ScalarType=np.complex128)
    package = types.ModuleType("petsc4py")
    package.PETSc = PETSc
    monkeypatch.setitem(sys.modules, "petsc4py", package)
    monkeypatch.setitem(sys.modules, "petsc4py.PETSc", PETSc)
    src, tgt = rng.random((600, 3)), rng.random((400, 3))
    A = DistributedFMMOperator(src, tgt, comm=comm, kernel="helmholtz", wavenumber=2.0,
                               eps=1e-6, memory=None)
    as_petsc(A)
    assert made["sizes"] == ((400, A.shape[0]), (600, A.shape[1]))
    assert made["comm"] is comm and made["set_up"]
    q = rng.standard_normal(600) + 1j * rng.standard_normal(600)
    p = rng.standard_normal(400) + 1j * rng.standard_normal(400)
    y = Vec(np.zeros(400, complex))
    made["context"].mult(None, Vec(q), y)
    assert np.array_equal(y.array, A.matvec(q))
    x = Vec(np.zeros(600, complex))
    made["context"].multHermitian(None, Vec(p), x)
    assert np.array_equal(x.array, A.rmatvec(p))
    made["context"].multTranspose(None, Vec(p), x)
    assert np.allclose(x.array, A.T.matvec(p))  # A^T p = conj(A^H conj(p))
