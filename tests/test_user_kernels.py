"""Kernels registered at run time (fmmsolve.register_kernel): derived sums against NumPy, the FMM
against the direct sum at the eps asked for, calibration, identity by digest, and bad input."""

import math
import pickle

import numpy as np
import pytest

import fmmsolve
from fmmsolve import calibration
from fmmsolve.kernels import kernel_for_key
from fmmsolve.operators.plan import compute_plan

KAPPA = 2.0


def _yukawa(r, k):
    e = math.exp(-KAPPA * r) / (4 * math.pi * r)
    return e, -e * (1 / r + KAPPA), e * (KAPPA * KAPPA + 2 * KAPPA / r + 2 / (r * r))


def _scaled_laplace(r, k):  # the Laplace kernel with a constant factor: homogeneous of degree 1
    c = 3.0 / (4 * math.pi)
    return c / r, -c / (r * r), 2 * c / (r * r * r)


def _helmholtz(r, k):  # exp(i k r) / (4 pi r), with a wavenumber
    e = np.exp(1j * k * r) / (4 * math.pi * r)
    d = e * (1j * k - 1 / r)
    return e, d, d * (1j * k - 1 / r) + e / (r * r)


@pytest.fixture(scope="module")
def yukawa():
    return fmmsolve.register_kernel("test_yukawa", _yukawa)


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(7)
    return rng.random((3000, 3)), rng.standard_normal(3000)


def _numpy_yukawa(targets, sources, charges, dipoles):
    """Potential and target gradient of charges and dipoles, by broadcasting."""
    d = targets[:, None, :] - sources[None, :, :]  # y - x
    r = np.linalg.norm(d, axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(r > 0, np.exp(-KAPPA * r) / (4 * np.pi * r), 0.0)
        f1 = np.where(r > 0, -g * (1 / r + KAPPA) / r, 0.0)  # g'(r) / r
        f2 = np.where(r > 0, (g * (KAPPA**2 + 2 * KAPPA / r + 2 / r**2) - f1) / r**2, 0.0)
    pot = g @ charges
    grad = np.einsum("ij,ijk,j->ik", f1, d, charges)
    dd = np.einsum("ijk,jk->ij", d, dipoles)  # (y - x) . p
    pot_d = -(f1 * dd).sum(axis=1)
    grad_d = -(np.einsum("ij,ij,ijk->ik", f2, dd, d) + f1 @ dipoles)
    return pot, grad, pot_d, grad_d


def test_derived_sums_match_numpy(yukawa):
    rng = np.random.default_rng(1)
    src, tgt = rng.random((300, 3)), rng.random((200, 3))
    tgt[:5] = src[:5]  # coincident pairs are skipped
    q, p = rng.standard_normal(300), rng.standard_normal((300, 3))
    pot, grad, pot_d, grad_d = _numpy_yukawa(tgt, src, q, p)
    for real, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        got, got_grad = fmmsolve.direct(src, tgt, q, kernel="test_yukawa", gradient=True,
                                        dtype=real)
        assert got.dtype == real
        assert np.linalg.norm(got - pot) <= tol * np.linalg.norm(pot)
        assert np.linalg.norm(got_grad - grad) <= tol * np.linalg.norm(grad)
        got, got_grad = fmmsolve.direct(src, tgt, dipoles=p, kernel="test_yukawa",
                                        gradient=True, dtype=real)
        assert np.linalg.norm(got - pot_d) <= tol * np.linalg.norm(pot_d)
        assert np.linalg.norm(got_grad - grad_d) <= tol * np.linalg.norm(grad_d)
    m = yukawa.matrix(tgt, src, 0.0)
    assert np.allclose(m @ q, pot, rtol=1e-13, atol=0) and np.all(m[np.arange(5), :5].diagonal()
                                                                  == 0)


@pytest.mark.parametrize("eps", [1e-3, 1e-6])
def test_fmm_meets_eps_for_a_kernel_without_a_scaling_law(yukawa, points, eps):
    x, q = points
    op = fmmsolve.FMMOperator(x, kernel="test_yukawa", eps=eps, memory=None)
    pot, grad = op.evaluate(q, gradient=True)
    exact, exact_grad = fmmsolve.direct(x, None, q, kernel="test_yukawa", gradient=True)
    assert np.linalg.norm(pot - exact) <= eps * np.linalg.norm(exact)
    assert np.linalg.norm(grad - exact_grad) <= 10 * eps * np.linalg.norm(exact_grad)
    # one plan per level, each at its own box size
    assert len({id(p) for p in op._engine.plans}) == op._engine.tree.depth + 1
    # the same physics as the built-in kernel
    builtin = fmmsolve.direct(x, None, q, kernel="modified_helmholtz", wavenumber=KAPPA)
    assert np.linalg.norm(exact - builtin) <= 1e-13 * np.linalg.norm(builtin)


def test_homogeneous_kernel_shares_one_plan_and_scales_like_laplace(points):
    x, q = points
    fmmsolve.register_kernel("test_laplace3", _scaled_laplace, homogeneity=1)
    eps = 1e-5
    for scale in (1e-3, 1e3):  # tiny and huge geometry: the law rescales the one plan
        op = fmmsolve.FMMOperator(scale * x, kernel="test_laplace3", eps=eps, memory=None)
        assert len({id(p) for p in op._engine.plans}) == 1
        exact = 3.0 * fmmsolve.direct(scale * x, None, q)
        assert np.linalg.norm(op @ q - exact) <= eps * np.linalg.norm(exact)


def test_complex_kernel_with_a_wavenumber(points):
    x, q = points
    fmmsolve.register_kernel("test_helmholtz", _helmholtz, wavenumber=True, is_complex=True,
                             homogeneity=1)
    eps = 1e-4
    op = fmmsolve.FMMOperator(x, kernel="test_helmholtz", wavenumber=3.0, eps=eps, memory=None)
    assert op.dtype == np.complex128
    exact = fmmsolve.direct(x, None, q, kernel="helmholtz", wavenumber=3.0)
    assert np.linalg.norm(op @ q - exact) <= eps * np.linalg.norm(exact)
    with pytest.raises(ValueError, match="needs a finite complex wavenumber"):
        fmmsolve.FMMOperator(x, kernel="test_helmholtz", memory=None)


def _forget(kernel):
    """Drop this process's calibration memo of ``kernel`` (as a new process would start)."""
    for key in [key for key in calibration._MEMO if key[0] == kernel.key]:
        del calibration._MEMO[key]


def test_calibration_is_measured_once_per_definition_and_cached_on_disk(yukawa, points,
                                                                      tmp_path, monkeypatch):
    x, q = points
    calls = []
    measure = calibration._measure
    monkeypatch.setattr(calibration, "_measure", lambda *a: calls.append(a[3]) or measure(*a))
    _forget(yukawa)
    fmmsolve.FMMOperator(x, kernel="test_yukawa", eps=1e-4, memory=tmp_path)
    assert calls == list(range(calibration.MIN_ORDER, calls[-1] + 1))
    files = list((tmp_path / "fmmsolve-calibration").glob("*.json"))
    assert [f.name for f in files] == [f"{yukawa.key}.json"]
    _forget(yukawa)  # a new process: read from the disk
    again = fmmsolve.FMMOperator(x, kernel="test_yukawa", eps=1e-4, memory=tmp_path)
    assert len(calls) == again.expansion_order - calibration.MIN_ORDER + 1
    _forget(yukawa)
    files[0].write_text("{not json")  # a damaged file is measured again, never trusted
    fmmsolve.FMMOperator(x, kernel="test_yukawa", eps=1e-4, memory=tmp_path)
    assert len(calls) == 2 * (again.expansion_order - calibration.MIN_ORDER + 1)


def test_calibration_that_reaches_no_order_says_so(yukawa, points, monkeypatch):
    monkeypatch.setattr(calibration, "MAX_ORDER", 4)  # order 4 cannot reach 1e-7
    with pytest.raises(calibration.CalibrationError, match="Green's functions of constant"):
        fmmsolve.FMMOperator(points[0], kernel="test_yukawa", eps=1e-7, memory=None)


def test_identity_is_the_digest_of_the_definition(yukawa, points, tmp_path):
    # The fixture's kernel is redefined and then registered again as it was (same digest).
    x, q = points
    first = yukawa
    op = fmmsolve.FMMOperator(x[:500], kernel="test_yukawa", eps=1e-3, expansion_order=4,
                              memory=None)
    op.save(tmp_path / "op.h5")
    blob = pickle.dumps(op)
    assert pickle.loads(blob).kernel == "test_yukawa"
    assert np.allclose(fmmsolve.load(tmp_path / "op.h5") @ q[:500], op @ q[:500])
    plan = compute_plan(first.key, 4, 1e-4, "<f8", 0.0, None, True, scale=1.0)
    global KAPPA
    try:
        KAPPA = 3.0  # a changed constant is a changed kernel
        second = fmmsolve.register_kernel("test_yukawa", _yukawa)
        assert second.digest != first.digest and second.name == first.name
        with pytest.raises(ValueError, match="another definition"):
            pickle.loads(blob)
        with pytest.raises(ValueError, match="another definition"):
            fmmsolve.load(tmp_path / "op.h5")
        with pytest.raises(ValueError, match="another definition"):
            kernel_for_key(first.key)
        with pytest.raises(ValueError, match="identify it by its key"):
            compute_plan("test_yukawa", 4, 1e-4, "<f8")
        # compiled copies and plans of the two definitions are distinct
        assert first.tag != second.tag
        again = compute_plan(second.key, 4, 1e-4, "<f8", 0.0, None, True, scale=1.0)
        assert not np.allclose(plan.uc2e_a, again.uc2e_a)
    finally:
        KAPPA = 2.0
        assert fmmsolve.register_kernel("test_yukawa", _yukawa).key == first.key
    assert np.allclose(pickle.loads(blob) @ q[:500], op @ q[:500])  # the same again


BAD = {
    "built-in name": (("laplace", _yukawa), {}, "built-in"),
    "not an identifier": (("my kernel", _yukawa), {}, "identifier"),
    "not a function": (("test_bad", 3.0), {}, "plain Python function"),
    "wrong derivative": (("test_bad", lambda r, k: (1 / r, 1 / r**2, 2 / r**3)), {}, "dg/dr"),
    "wrong second derivative": (("test_bad", lambda r, k: (1 / r, -1 / r**2, 1 / r**3)), {},
                                "d2g/dr2"),
    "two values": (("test_bad", lambda r, k: (1 / r, -1 / r**2)), {}, "three finite"),
    "not finite": (("test_bad", lambda r, k: (math.inf, 0.0, 0.0)), {}, "three finite"),
    "complex for a real kernel": (("test_bad", _helmholtz), {"wavenumber": True},
                                  "is_complex=True"),
    "fails to compile": (("test_bad", lambda r, k: (r.shape, 0.0, 0.0)), {}, "compiled"),
    "homogeneity": (("test_bad", _yukawa), {"homogeneity": 1.5}, "homogeneity"),
    "decay": (("test_bad", _yukawa), {"decay": -1.0}, "decay"),
}


@pytest.mark.parametrize("args, options, message", BAD.values(), ids=BAD.keys())
def test_register_kernel_rejects_bad_definitions(args, options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fmmsolve.register_kernel(*args, **options)
    assert "test_bad" not in fmmsolve.kernels.kernel_names()


def test_wavenumber_rules_of_a_registered_kernel(yukawa, points):
    with pytest.raises(ValueError, match="takes no wavenumber"):
        fmmsolve.direct(points[0][:10], None, points[1][:10], kernel="test_yukawa",
                        wavenumber=1.0)
    with pytest.raises(ValueError, match="unknown kernel 'nope'.*register_kernel"):
        fmmsolve.FMMOperator(points[0][:10], kernel="nope")


@pytest.mark.expensive  # every order up to 12, a plan per level: about a minute
def test_a_fourth_order_operators_kernel_is_refused(points):
    # exp(-kappa r) / (8 pi kappa), the Green's function of (kappa^2 - Laplacian)^2: a single
    # layer on a surface cannot reproduce its exterior fields, so no order meets eps
    def biharmonic(r, k):
        e = math.exp(-4.0 * r) / (32 * math.pi)
        return e, -4.0 * e, 16.0 * e

    fmmsolve.register_kernel("test_biharmonic", biharmonic)
    with pytest.raises(calibration.CalibrationError, match="best was"):
        fmmsolve.FMMOperator(points[0], kernel="test_biharmonic", eps=1e-6, memory=None)


@pytest.mark.parametrize("k", [0.5, 2.0, 20.0])
def test_patch_self_integral_of_a_registered_kernel_matches_the_closed_form(k):
    from fmmsolve.estimators import patch_self_integral

    def screened(r, kk):
        g = math.exp(-kk * r) / (4 * math.pi * r)
        return g, -g * (kk + 1 / r), g * (kk * kk + 2 * kk / r + 2 / (r * r))

    fmmsolve.register_kernel("test_screened_k", screened, wavenumber=True, homogeneity=1)
    area = np.array([[1e-6, 0.01], [0.2, 0.5]])  # k a up to 8
    got = patch_self_integral("test_screened_k", area, k)
    exact = patch_self_integral("modified_helmholtz", area, k)
    assert got.shape == area.shape
    np.testing.assert_allclose(got, exact, rtol=1e-13, atol=0)


@pytest.mark.slow  # the estimators' passes compiled for a registered kernel: a minute cold
def test_integral_equation_solver_with_a_registered_kernel(yukawa):
    from fmmsolve.estimators import IntegralEquationSolver

    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 3))
    x /= np.linalg.norm(x, axis=1)[:, None]  # a sphere
    w = np.full(600, 4 * np.pi / 600)
    y = np.ones(600)
    probe = 3 * rng.standard_normal((50, 3))
    params = dict(eps=1e-6, tol=1e-10, expansion_order=8)
    ours = IntegralEquationSolver(kernel="test_yukawa", **params).fit(x, y, sample_weight=w)
    theirs = IntegralEquationSolver(kernel="modified_helmholtz", wavenumber=KAPPA,
                                    **params).fit(x, y, sample_weight=w)
    a, b = ours.predict(probe), theirs.predict(probe)  # two FMM solves at eps 1e-6
    assert np.linalg.norm(a - b) <= 1e-5 * np.linalg.norm(b)
