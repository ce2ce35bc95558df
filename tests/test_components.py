"""Kernels with components (fmmsolve.register_kernel(pair=...)): expansions carry C values per
surface point through P2M to L2P, M2L, plan caches and saved files.

The oracle is the scalar machinery itself: the three-Laplace kernel's sums, operators and
products must equal three scalar Laplace ones; a kernel whose components change sign under
reflections checks the reflected operators against their defining sums and the SVD M2L
against the dense one."""

import pickle

import numba
import numpy as np
import pytest

import fmmsolve
from fmmsolve.estimators import patch_self_integral
from fmmsolve.operators import surfaces
from fmmsolve.operators.plan import compute_plan, octant_operators

from component_kernels import three_laplace, three_laplace_pair, vector_test, vector_test_pair

EPS = 1e-6


@pytest.fixture(scope="module")
def kernel():
    return three_laplace()


@pytest.fixture(scope="module")
def vector():
    return vector_test()


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(11)
    x = rng.random((3000, 3))
    y = rng.random((800, 3)) * 2.0 - 0.5  # overlapping the sources, and beyond them
    return x, y, rng.standard_normal((3000, 2, 3))


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_direct_sums_are_three_scalar_sums(kernel, problem):
    x, y, q = problem
    pot, grad = fmmsolve.direct(x, y, q, kernel=kernel, gradient=True)
    assert pot.shape == (800, 2, 3) and grad.shape == (800, 2, 3, 3)
    for a in range(3):
        p, g = fmmsolve.direct(x, y, q[:, :, a], gradient=True)
        assert _rel(pot[:, :, a], p) < 1e-14 and _rel(grad[:, :, a], g) < 1e-14
    one = fmmsolve.direct(x, y, q[:, 0], kernel=kernel)
    assert one.shape == (800, 3) and np.array_equal(one, pot[:, 0])


def test_operators_are_three_scalar_operators(kernel):
    """Every operator of the plan is kron(I_3, the Laplace one), component-major."""
    ours = compute_plan(kernel.key, 4, 1e-8, "<f8")
    scalar = compute_plan("laplace", 4, 1e-8, "<f8")
    n = surfaces.n_surface_points(4)
    assert ours.n_surface == n and ours.n_expansion == 3 * n
    eye = np.eye(3)
    for part in ("uc2e", "dc2e"):
        full = getattr(ours, f"{part}_a") @ getattr(ours, f"{part}_b")
        one = getattr(scalar, f"{part}_a") @ getattr(scalar, f"{part}_b")
        assert _rel(full, np.kron(eye, one)) < 1e-9
    assert ours.m2m.shape == ours.l2l.shape == (1, 3 * n, 3 * n)  # octant 0's; the others:
    assert _rel(ours.m2m[0], np.kron(eye, scalar.m2m[0])) < 1e-9  # test_plan_symmetry.py
    assert _rel(ours.l2l[0], np.kron(eye, scalar.l2l[0])) < 1e-9


def test_reflected_operators_match_their_defining_sums(vector):
    """M2M of every octant, reflected from octant 0's with the components' signs, equals the
    check-to-equivalent solve of that octant's own kernel matrix."""
    order = 4
    plan = compute_plan(vector.key, order, 1e-8, "<f8")
    m2m = octant_operators(plan.m2m, order, vector.parities)
    surf = surfaces.surface(order)
    offsets = surfaces.octant_offsets() * 0.5
    for c in range(8):
        k_up = vector.matrix(surfaces.UP_CHECK * surf, offsets[c] + 0.5 * surfaces.UP_EQUIV * surf,
                             None)
        direct = plan.uc2e_a @ (plan.uc2e_b @ k_up)
        assert _rel(m2m[c], direct) < 1e-8, c


def test_fmm_equals_three_scalar_products(kernel, problem):
    x, y, q = problem
    L = fmmsolve.FMMOperator(x, y, eps=EPS, memory=None)  # the order Laplace needs for eps
    A = fmmsolve.FMMOperator(x, y, kernel=kernel, expansion_order=L.expansion_order,
                             memory=None)
    assert A.shape == (3 * 800, 3 * 3000) and A.components == 3
    pot, grad = A.evaluate(q, gradient=True)
    exact, exact_grad = fmmsolve.direct(x, y, q, kernel=kernel, gradient=True)
    assert _rel(pot, exact) < EPS and _rel(grad, exact_grad) < 10 * EPS
    for a in range(3):
        p, g = L.evaluate(q[:, :, a], gradient=True)
        assert _rel(pot[:, :, a], p) < EPS and _rel(grad[:, :, a], g) < EPS
    # vectors hold each point's three values together
    v = A @ q[:, 0].ravel()
    assert np.allclose(v, pot[:, 0].ravel(), rtol=0, atol=1e-12 * np.abs(v).max())
    block = A @ q.transpose(0, 2, 1).reshape(-1, 2)
    assert np.allclose(block, pot.transpose(0, 2, 1).reshape(-1, 2), rtol=0,
                       atol=1e-12 * np.abs(block).max())


@pytest.mark.slow  # the calibration's FMMs at four orders (20 s); test_user_kernels has its own
def test_eps_is_met_with_a_calibrated_order(kernel, problem):
    x, _, q = problem
    A = fmmsolve.FMMOperator(x, kernel=kernel.key, eps=EPS)
    assert _rel(A.evaluate(q[:, 0]), fmmsolve.direct(x, None, q[:, 0], kernel=kernel)) < EPS


def test_transpose_swaps_sources_and_targets(kernel, problem):
    x, y, q = problem
    A = fmmsolve.FMMOperator(x[:1000], y, kernel=kernel, eps=EPS)
    w = np.random.default_rng(3).standard_normal(3 * 800)
    exact = fmmsolve.direct(y, x[:1000], w.reshape(800, 3), kernel=kernel).ravel()
    assert _rel(A.rmatvec(w), exact) < EPS


def test_reflections_with_signs_agree_with_the_dense_strategy(vector, problem):
    x, _, q = problem
    exact = fmmsolve.direct(x, None, q[:, 0], kernel=vector)
    errors = {m2l: _rel(fmmsolve.FMMOperator(x, kernel=vector, expansion_order=5, m2l=m2l,
                                             memory=None).evaluate(q[:, 0]), exact)
              for m2l in ("svd", "dense")}
    assert errors["dense"] < 1e-2 and errors["svd"] < 1.5 * errors["dense"], errors


def test_files_pickles_and_cache_entries_keep_the_components(kernel, problem, tmp_path):
    x, y, q = problem
    A = fmmsolve.FMMOperator(x, y, kernel=kernel, eps=EPS, memory=tmp_path / "cache")
    v = A @ q[:, 1].ravel()
    A.save(tmp_path / "a.h5")
    B = fmmsolve.load(tmp_path / "a.h5")
    assert B.shape == A.shape and np.array_equal(B @ q[:, 1].ravel(), v)
    assert np.array_equal(pickle.loads(pickle.dumps(A)) @ q[:, 1].ravel(), v)
    compute_plan.cache_clear()  # the second fit reads the plan from the disk cache
    C = fmmsolve.FMMOperator(x, y, kernel=kernel, eps=EPS, memory=tmp_path / "cache")
    assert np.array_equal(C @ q[:, 1].ravel(), v)


def test_float32(kernel, problem):
    x, y, q = problem
    A = fmmsolve.FMMOperator(x.astype(np.float32), y.astype(np.float32), kernel=kernel,
                             expansion_order=4, memory=None)
    pot = A.evaluate(q.astype(np.float32))
    assert pot.dtype == np.float32
    assert _rel(pot, fmmsolve.direct(x, y, q, kernel=kernel)) < 1e-3


def test_bad_input_names_the_argument(kernel, problem):
    x, y, q = problem
    A = fmmsolve.FMMOperator(x[:500], kernel=kernel, expansion_order=4, memory=None)
    with pytest.raises(ValueError, match=r"q must have shape \(500, 3\) or \(500, m, 3\)"):
        A.evaluate(q[:500, :, :2])
    with pytest.raises(ValueError, match=r"q must have shape \(500, 3\)"):
        A.evaluate(q[:500, 0, 0])
    with pytest.raises(ValueError, match="q"):
        A.matvec(np.ones(500))
    with pytest.raises(ValueError, match="dipoles"):
        A.evaluate(q[:500, 0], dipoles=np.ones((500, 3)))
    with pytest.raises(ValueError, match="dipoles"):
        fmmsolve.FMMOperator(x[:500], kernel=kernel, expansion_order=4, dipoles=True)
    with pytest.raises(ValueError, match="3 components"):
        fmmsolve.FMMField(x[:500], q[:500, 0], kernel=kernel, expansion_order=4)
    with pytest.raises(ValueError, match="3 components"):
        fmmsolve.FMMField.from_operator(A, q[:500, 0])
    with pytest.raises(ValueError, match="3 components"):
        patch_self_integral(kernel, 0.1)
    with pytest.raises(ValueError, match="dipoles"):
        fmmsolve.direct(x[:10], None, q[:10, 0], dipoles=np.ones((10, 3)), kernel=kernel)
    with pytest.raises(ValueError, match=r"charges must have shape \(10, 3\)"):
        fmmsolve.direct(x[:10], None, np.ones(10), kernel=kernel)


_three_laplace = numba.njit(three_laplace_pair)


def _not_reciprocal(dx, dy, dz, k, out):
    _three_laplace(dx, dy, dz, k, out)
    out[0, 0, 1] = dx  # G_01 = dx, G_10 = 0: G(-d) != G(d)^T
    out[1, 0, 1] = 1.0


def _wrong_derivative(dx, dy, dz, k, out):
    _three_laplace(dx, dy, dz, k, out)
    out[1, 0, 0] = 0.0


BAD = {
    "components 0": (dict(pair=three_laplace_pair, components=0), "components must be"),
    "components bool": (dict(pair=three_laplace_pair, components=True), "components must be"),
    "too many parities": (dict(pair=three_laplace_pair, components=3, parities=(0,) * 4),
                          "parities must hold"),
    "parity 8": (dict(pair=three_laplace_pair, components=3, parities=(0, 0, 8)),
                 "parities must hold"),
    "wrong parities": (dict(pair=vector_test_pair, components=3), "does not transform"),
    "wrong components": (dict(pair=three_laplace_pair, components=2), "could not be compiled"),
    "not reciprocal": (dict(pair=_not_reciprocal, components=3), "not reciprocal"),
    "wrong derivative": (dict(pair=_wrong_derivative, components=3), "derivative along axis 0"),
    "both": (dict(profile=lambda r, k: (1 / r, -1 / r**2, 2 / r**3), pair=three_laplace_pair),
             "exactly one of profile"),
    "neither": ({}, "exactly one of profile"),
    "components of a profile": (dict(profile=lambda r, k: (1 / r, -1 / r**2, 2 / r**3),
                                     components=3), "options of a pair kernel"),
    "not a function": (dict(pair=3, components=3), "pair must be a plain Python function"),
}


@pytest.mark.parametrize("options, message", BAD.values(), ids=BAD.keys())
def test_register_rejects_bad_pair_kernels(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fmmsolve.register_kernel("bad_pair", **options)
