"""FMMOperator against the direct sum and dense linear algebra, at the tolerance asked for, and
as SciPy's LinearOperator protocol, its solvers and pickle expect."""

import pickle

import numpy as np
import pytest
from scipy.sparse import diags
from scipy.sparse.linalg import (aslinearoperator, bicgstab, cg, gmres, lgmres, lsqr, minres)

import fmmsolve
from fmmsolve import FMMOperator
from fmmsolve.testing import point_cloud, relative_l2_error

EPS = 1e-6
GRAD_TOL = 1e-4  # gradients converge more slowly than potentials
N = 3000  # with leaf_size 32 the tree has at least three levels
LEAF = 32


@pytest.fixture(scope="module")
def sources():
    return point_cloud("uniform", N, seed=1)


@pytest.fixture(scope="module")
def targets():
    # 2000 targets in [-0.5, 1.5]^3: some inside the sources' unit cube, most outside it
    return point_cloud("uniform", 2000, seed=2) * 2.0 - 0.5


@pytest.fixture(scope="module")
def square(sources):
    return FMMOperator(sources, eps=EPS, leaf_size=LEAF)


@pytest.fixture(scope="module")
def rect(sources, targets):
    return FMMOperator(sources, targets, eps=EPS, leaf_size=LEAF)


def _count_evaluations(monkeypatch, op):
    """Record the number of columns of every ``engine.evaluate`` call of ``op``."""
    calls, evaluate = [], op._engine.evaluate

    def spy(charges, gradient=False, dipoles=None, pressure=False, normals=None):
        calls.append(charges.shape[1])
        return evaluate(charges, gradient, dipoles, pressure=pressure, normals=normals)

    monkeypatch.setattr(op._engine, "evaluate", spy)
    return calls


def _dense_laplace(sources, targets=None):
    """G[i, j] = 1 / (4 pi |y_i - x_j|), zero at zero distance, by NumPy broadcasting."""
    tgt = sources if targets is None else targets
    r = np.linalg.norm(tgt[:, None, :] - sources[None, :, :], axis=-1)
    with np.errstate(divide="ignore"):
        return np.where(r == 0, 0.0, 1.0 / (4 * np.pi * r))


# 1. shape, dtype, accuracy, caller's order ----------------------------------------------------

def test_square_operator_matches_direct(square, sources, rng):
    q = rng.standard_normal(N)
    assert square.shape == (N, N) and square.dtype == np.float64
    y = square @ q
    assert y.shape == (N,) and y.dtype == np.float64
    assert relative_l2_error(y, fmmsolve.direct(sources, None, q)) <= EPS


def test_targets_outside_the_sources_box(rect, sources, targets, rng):
    q = rng.standard_normal(N)
    assert rect.shape == (len(targets), N)
    assert relative_l2_error(rect @ q, fmmsolve.direct(sources, targets, q)) <= EPS


def test_results_follow_the_callers_order(sources, targets, rect, rng):
    ps, pt = rng.permutation(N), rng.permutation(len(targets))
    shuffled = FMMOperator(sources[ps], targets[pt], eps=EPS, leaf_size=LEAF)
    q = rng.standard_normal(N)
    y = shuffled @ q[ps]
    assert relative_l2_error(y, fmmsolve.direct(sources[ps], targets[pt], q[ps])) <= EPS
    assert relative_l2_error(y, (rect @ q)[pt]) <= 10 * EPS


def test_float32_operator_computes_in_float32(sources, rng):
    eps = 1e-4
    A = FMMOperator(sources, eps=eps, leaf_size=LEAF, dtype=np.float32)
    assert A.dtype == np.float32
    q = rng.standard_normal(N)  # float64 input is cast to the operator's dtype
    y = A @ q
    assert y.dtype == np.float32
    assert (A @ q[:, None].repeat(2, axis=1)).dtype == np.float32
    assert relative_l2_error(y, fmmsolve.direct(sources, None, q)) <= eps


# 2. several densities in one pass, gradients ---------------------------------------------------

def test_matmat_is_one_pass_and_matches_matvec(rect, rng, monkeypatch):
    Q = rng.standard_normal((N, 4))
    calls = _count_evaluations(monkeypatch, rect)
    Y = rect @ Q
    assert calls == [4]
    assert Y.shape == (rect.shape[0], 4)
    for c in range(4):
        assert relative_l2_error(Y[:, c], rect @ Q[:, c]) <= 10 * EPS
    assert relative_l2_error(Y, fmmsolve.direct(rect.sources, rect.targets, Q)) <= EPS


def test_evaluate_with_gradient(rect, sources, targets, rng):
    q = rng.standard_normal(N)
    pot, grad = rect.evaluate(q, gradient=True)
    assert pot.shape == (len(targets),) and grad.shape == (len(targets), 3)
    ref_pot, ref_grad = fmmsolve.direct(sources, targets, q, gradient=True)
    assert relative_l2_error(pot, ref_pot) <= EPS
    assert relative_l2_error(grad, ref_grad) <= GRAD_TOL
    assert relative_l2_error(rect.evaluate(q), ref_pot) <= EPS

    Q = rng.standard_normal((N, 2))
    pot, grad = rect.evaluate(Q, gradient=True)
    assert pot.shape == (len(targets), 2) and grad.shape == (len(targets), 2, 3)
    ref_pot, ref_grad = fmmsolve.direct(sources, targets, Q, gradient=True)
    assert relative_l2_error(pot, ref_pot) <= EPS
    assert relative_l2_error(grad, ref_grad) <= GRAD_TOL


# 3. transpose and adjoint ----------------------------------------------------------------------

def test_adjoint_is_cached_and_involutive(rect, square):
    assert rect.H is rect.H and rect.T is rect.T
    assert rect.H.H is rect and rect.T.T is rect
    assert rect.T is rect.H  # real kernel
    assert rect.H.shape == (rect.shape[1], rect.shape[0]) and rect.H.dtype == rect.dtype
    assert (rect.H.eps, rect.H.expansion_order, rect.H.leaf_size) == (
        rect.eps, rect.expansion_order, rect.leaf_size)
    assert square.H is square and square.T is square  # symmetric


def test_dot_product_test(rect, rng):
    x, y = rng.standard_normal(rect.shape[1]), rng.standard_normal(rect.shape[0])
    lhs, rhs = np.dot(rect @ x, y), np.dot(x, rect.H @ y)
    scale = np.linalg.norm(rect @ x) * np.linalg.norm(y)
    assert abs(lhs - rhs) <= 10 * EPS * scale


def test_rmatvec_uses_the_adjoint(rect, targets, sources, rng):
    y = rng.standard_normal(len(targets))
    r = rect.rmatvec(y)
    assert r.shape == (N,)
    assert relative_l2_error(r, rect.H @ y) <= 10 * EPS
    assert relative_l2_error(r, fmmsolve.direct(targets, sources, y)) <= EPS
    Y = rng.standard_normal((len(targets), 3))
    assert relative_l2_error(rect.rmatmat(Y), fmmsolve.direct(targets, sources, Y)) <= EPS


# 4. complex input to a real operator -----------------------------------------------------------

def test_complex_input_is_one_pass_of_real_columns(rect, rng, monkeypatch):
    re_, im = rng.standard_normal((N, 3)), rng.standard_normal((N, 3))
    calls = _count_evaluations(monkeypatch, rect)
    Y = rect @ (re_ + 1j * im)
    assert calls == [6]
    assert Y.dtype == np.complex128
    assert relative_l2_error(Y, rect @ re_ + 1j * (rect @ im)) <= 10 * EPS
    y = rect @ (re_[:, 0] + 1j * im[:, 0])
    assert y.shape == (rect.shape[0],)
    assert relative_l2_error(y.imag, rect @ im[:, 0]) <= 10 * EPS
    pot, grad = rect.evaluate(re_ + 1j * im, gradient=True)
    assert grad.dtype == np.complex128
    assert relative_l2_error(grad.real, rect.evaluate(re_, gradient=True)[1]) <= 10 * EPS


def test_complex_input_to_float32_operator(sources, rng):
    A = FMMOperator(sources, eps=1e-4, leaf_size=LEAF, dtype=np.float32)
    z = rng.standard_normal(N) + 1j * rng.standard_normal(N)
    assert (A @ z).dtype == np.complex64


# 5. Krylov solvers against dense solutions -----------------------------------------------------

@pytest.fixture(scope="module")
def small():
    """600 points, their FMM operator and dense matrix; a nonsymmetric second-kind system."""
    n = 600
    x = point_cloud("uniform", n, seed=3)
    A = FMMOperator(x, eps=EPS, leaf_size=LEAF)
    G = _dense_laplace(x)
    w = np.random.default_rng(4).uniform(0.5, 1.5, n) / n
    M = 0.5 * aslinearoperator(np.eye(n)) + A @ aslinearoperator(diags(w))
    return A, G, M, 0.5 * np.eye(n) + G * w[None, :]


@pytest.mark.parametrize("solver", [gmres, bicgstab, lgmres], ids=lambda s: s.__name__)
def test_nonsymmetric_solvers(small, solver):
    _, _, M, dense = small
    b = np.random.default_rng(5).standard_normal(M.shape[0])
    u, info = solver(M, b, rtol=1e-10, atol=0.0)
    assert info == 0
    assert relative_l2_error(u, np.linalg.solve(dense, b)) <= 1e-4


def test_cg_on_normal_equations(small):
    A, G, _, _ = small
    n, c = A.shape[0], 1.0 / A.shape[0] ** 2
    B = aslinearoperator(np.eye(n)) + c * (A.H @ A)
    b = np.random.default_rng(6).standard_normal(n)
    u, info = cg(B, b, rtol=1e-10, atol=0.0)
    assert info == 0
    assert relative_l2_error(u, np.linalg.solve(np.eye(n) + c * G.T @ G, b)) <= 1e-4


def test_minres_on_symmetric_system(small):
    A, G, _, _ = small
    n = A.shape[0]
    B = aslinearoperator(np.eye(n)) + A * (0.5 / n)
    b = np.random.default_rng(7).standard_normal(n)
    u, info = minres(B, b, rtol=1e-10)
    assert info == 0
    assert relative_l2_error(u, np.linalg.solve(np.eye(n) + 0.5 / n * G, b)) <= 1e-4


def test_lsqr_rectangular_damped():
    src, tgt = point_cloud("uniform", 500, seed=8), point_cloud("sphere", 700, seed=9) * 1.5
    A = FMMOperator(src, tgt, eps=EPS, leaf_size=LEAF)
    G = _dense_laplace(src, tgt)
    damp = 0.1 * np.linalg.norm(G, 2)
    b = np.random.default_rng(10).standard_normal(len(tgt))
    out = lsqr(A, b, damp=damp, atol=1e-12, btol=1e-12, iter_lim=2000)
    assert out[1] in (1, 2)  # converged
    ref = np.linalg.solve(G.T @ G + damp**2 * np.eye(len(src)), G.T @ b)
    assert relative_l2_error(out[0], ref) <= 1e-4


# 6. operator algebra ---------------------------------------------------------------------------

def test_operator_algebra(rect, square, rng):
    assert aslinearoperator(rect) is rect
    x = rng.standard_normal(N)
    y = rect @ x
    assert relative_l2_error((2 * rect) @ x, 2 * y) <= 10 * EPS
    assert relative_l2_error((rect + rect) @ x, 2 * y) <= 10 * EPS
    normal = rect.H @ rect
    assert normal.shape == (N, N)
    assert relative_l2_error(normal @ x, rect.H @ y) <= 10 * EPS
    assert (rect @ square).shape == rect.shape


# 7. pickle -------------------------------------------------------------------------------------

def test_pickle_round_trip(rect, rng):
    copy = pickle.loads(pickle.dumps(rect))
    assert type(copy) is FMMOperator
    assert (copy.shape, copy.dtype, copy.kernel, copy.eps, copy.expansion_order,
            copy.leaf_size, copy.memory) == (rect.shape, rect.dtype, rect.kernel, rect.eps,
                                             rect.expansion_order, rect.leaf_size, rect.memory)
    q = rng.standard_normal(N)
    assert relative_l2_error(copy @ q, rect @ q) <= 1e-12
    assert relative_l2_error(copy.H @ q[:rect.shape[0]], rect.H @ q[:rect.shape[0]]) <= 1e-12
    adjoint = pickle.loads(pickle.dumps(rect.H))
    assert adjoint.shape == rect.H.shape


def test_pickle_keeps_float32(sources, rng):
    A = FMMOperator(sources, eps=1e-4, leaf_size=LEAF, dtype=np.float32, memory=None)
    copy = pickle.loads(pickle.dumps(A))
    q = rng.standard_normal(N).astype(np.float32)
    assert copy.dtype == np.float32 and copy.memory is None
    assert relative_l2_error(copy @ q, A @ q) <= 1e-6


# 8. errors -------------------------------------------------------------------------------------

def test_float32_refuses_eps_below_its_measured_reach(sources):
    with pytest.raises(ValueError, match="eps must be at least 0.0001 in float32"):
        FMMOperator(sources, eps=1e-5, dtype=np.float32)


def test_bad_densities(rect):
    n = rect.shape[1]
    with pytest.raises(ValueError, match=rf"q must have shape \({n},\) or \({n}, m\)"):
        rect @ np.ones(n + 1)
    with pytest.raises(ValueError, match="q must have shape"):
        rect.matvec(np.ones(n - 1))
    with pytest.raises(ValueError, match="q must have shape"):
        rect @ np.ones((n, 2, 2))
    with pytest.raises(ValueError, match="q must have shape"):
        rect.evaluate(np.ones((n + 1, 2)))
    with pytest.raises(ValueError, match="q is empty"):
        rect @ np.ones((n, 0))
    q = np.ones(n)
    q[7] = np.nan
    with pytest.raises(ValueError, match="q contains NaN"):
        rect @ q
    q[7] = np.inf
    with pytest.raises(ValueError, match="q contains NaN or infinite"):
        rect.evaluate(q, gradient=True)
    with pytest.raises(ValueError, match=rf"x must have shape \({rect.shape[0]},\)"):
        rect.rmatvec(np.ones(n))


def test_bad_construction_arguments(sources):
    with pytest.raises(ValueError, match="unknown kernel"):
        FMMOperator(sources, kernel="coulomb")
    with pytest.raises(ValueError, match="eps"):
        FMMOperator(sources, eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        FMMOperator(sources, eps=1.5)
    with pytest.raises(ValueError, match="sources"):
        FMMOperator(sources[:, :2])
    with pytest.raises(ValueError, match="sources"):
        FMMOperator(np.empty((0, 3)))
    with pytest.raises(ValueError, match="targets"):
        FMMOperator(sources, np.ones((4, 2)))


# 9. introspection ------------------------------------------------------------------------------

def test_introspection(rect, rng):
    assert isinstance(rect.expansion_order, int)
    tree = rect.tree
    assert {"depth", "n_leaves", "mean_u", "mean_v"} <= tree.keys()
    assert tree["depth"] >= 3
    rect @ rng.standard_normal(N)
    timings = rect.timings
    assert timings and all(isinstance(v, float) for v in timings.values())
    timings.clear()  # a copy: the operator's record is untouched
    assert rect.timings
