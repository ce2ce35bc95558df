"""The scikit-learn estimators: estimator checks, the physics of the solver (capacitance of a
sphere), and the host protocols a user relies on (clone, params, pickle, Pipeline,
GridSearchCV, joblib caching)."""

import os
import pathlib
import pickle
import re
import subprocess
import sys

import joblib
import numpy as np
import pytest
from scipy import integrate
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks, get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

import fmmsolve
from fmmsolve import IntegralEquationSolver, PotentialTransformer
from fmmsolve.estimators import patch_self_integral
from fmmsolve.engine import passes
from fmmsolve.testing import fibonacci_sphere, point_cloud, relative_l2_error

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sphere(n, radius=1.0):
    """Fibonacci-lattice points on a sphere and equal quadrature weights 4 pi R^2 / n."""
    return radius * fibonacci_sphere(n), np.full(n, 4 * np.pi * radius ** 2 / n)


def test_fibonacci_sphere_is_a_quadrature_rule():
    n = 4000
    x = fibonacci_sphere(n)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-14)
    # equal weights 4 pi / n integrate z^2 over the sphere: 4 pi / 3
    assert abs(4 * np.pi / n * np.sum(x[:, 2] ** 2) - 4 * np.pi / 3) < 1e-5
    np.testing.assert_array_equal(fibonacci_sphere(n, [3, 17]), x[[3, 17]])


def _dense(x, y=None):
    """G[i, j] = 1 / (4 pi |y_i - x_j|), zero at zero distance."""
    y = x if y is None else y
    r = np.linalg.norm(y[:, None] - x[None], axis=-1)
    with np.errstate(divide="ignore"):
        return np.where(r == 0, 0.0, 1 / (4 * np.pi * r))


# 1. scikit-learn's estimator checks -----------------------------------------------------------

def _columns(n):
    return f"fits X with {n} column{'s' if n > 1 else ''}; the estimator takes 3-D points"


# Every check that fails does so because it feeds X with another number of columns than 3 (the
# count is the reason). xfail_strict makes a listed check that passes an error, so the list
# cannot hide anything else. The properties they would test are tested below on 3-D points.
_BOTH = {
    "check_estimators_overwrite_params": _columns(2),
    "check_estimators_fit_returns_self": _columns(2),
    "check_readonly_memmap_input": _columns(2),
    "check_n_features_in_after_fitting": _columns(4),
    "check_positive_only_tag_during_fit": _columns(4),
    "check_estimators_dtypes": _columns(5),
    "check_sample_weights_not_an_array": _columns(2),
    "check_all_zero_sample_weights_error": _columns(20),
    "check_sample_weights_shape": _columns(2),
    "check_sample_weights_not_overwritten": _columns(2),
    "check_sample_weight_equivalence_on_dense_data": _columns(30),
    "check_dtype_object": _columns(10),
    "check_fit2d_1sample": _columns(10),
    "check_fit2d_1feature": _columns(1),
    "check_fit_idempotent": _columns(2),
    "check_fit_check_is_fitted": _columns(2),
    "check_n_features_in": _columns(2),
}
_REGRESSOR = {
    "check_regressors_train": _columns(10),
    "check_regressor_data_not_an_array": _columns(10),
    "check_regressors_no_decision_function": _columns(4),
    "check_regressors_int": _columns(10),
    "check_non_transformer_estimators_n_iter": _columns(4),
}


def expected_failed_checks(estimator):
    if isinstance(estimator, IntegralEquationSolver):
        return {**_BOTH, **_REGRESSOR}
    return dict(_BOTH)


@parametrize_with_checks([PotentialTransformer(), IntegralEquationSolver()],
                         expected_failed_checks=expected_failed_checks, xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", [PotentialTransformer(), IntegralEquationSolver()],
                         ids=lambda e: type(e).__name__)
def test_expected_failures_are_only_the_number_of_columns(estimator):
    """Each listed check fails on our column error, for the count its reason gives."""
    for name, reason in expected_failed_checks(estimator).items():
        n = int(re.search(r"with (\d+) column", reason).group(1))
        with pytest.raises(Exception) as info:
            getattr(estimator_checks, name)(type(estimator).__name__, clone(estimator))
        chain, error = [], info.value
        while error is not None:
            chain.append(error)
            error = error.__cause__ or error.__context__
        assert any(isinstance(e, ValueError) and str(e) == f"X must have 3 columns (x, y, z), "
                   f"got {n}" for e in chain), (name, chain)


# The properties behind the xfailed checks, on 3-D points.

ESTIMATORS = [PotentialTransformer(eps=1e-6), IntegralEquationSolver(eps=1e-6, tol=1e-12)]


def _output(est, X):
    return est.transform(X) if isinstance(est, PotentialTransformer) else est.predict(X)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_integer_and_zero_weights_equal_repeated_and_removed_points(est, rng):
    X = rng.random((40, 3))
    y = rng.random(40) + 1.0
    sw = rng.integers(0, 4, 40)
    sw[0] = 2
    weighted = clone(est).fit(X, y, sample_weight=sw)
    repeated = clone(est).fit(X.repeat(sw, axis=0), y.repeat(sw))
    np.testing.assert_allclose(_output(weighted, X), _output(repeated, X), rtol=1e-9)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_fit_is_idempotent_and_dtype_agnostic(est, rng):
    X = 3 * rng.random((30, 3))
    y = (X[:, 0] > 1.5).astype(int)
    reference = _output(clone(est).fit(X, y), X)
    fitted = clone(est).fit(X, y)
    fitted.fit(X, y)
    np.testing.assert_array_equal(_output(fitted, X), reference)
    # float32 points are computed in float32 (the package's dtype rule), integers in float64
    for dtype, expected in ((np.float32, np.float32), (np.int64, np.float64),
                            (np.int32, np.float64)):
        Xd = X.astype(dtype)
        out = _output(clone(est).set_params(eps=None).fit(Xd, y), Xd)  # eps=None: 1e-4 in float32
        assert out.dtype == expected and np.isfinite(out).all()
    assert fitted.n_features_in_ == 3


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_sample_weight_is_checked_and_not_overwritten(est, rng):
    X, y, sw = rng.random((20, 3)), rng.random(20), rng.random(20) + 0.5
    kept = sw.copy()
    clone(est).fit(X, y, sample_weight=list(sw))
    np.testing.assert_array_equal(sw, kept)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(20,\)"):
        clone(est).fit(X, y, sample_weight=np.ones(40))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(20,\)"):
        clone(est).fit(X, y, sample_weight=np.ones((20, 2)))


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("X, message", [
    (np.zeros((10, 2)), r"X must have 3 columns \(x, y, z\), got 2"),
    (np.zeros((10, 4)), r"X must have 3 columns \(x, y, z\), got 4"),
    (np.array([[0.0, np.nan, 1.0]]), "Input X contains NaN"),
    (np.zeros((0, 3)), "0 sample"),
])
def test_bad_points_get_clear_errors(est, X, message):
    with pytest.raises(ValueError, match=message):
        clone(est).fit(X, np.ones(len(X)))


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_bad_points_after_fit(est, rng):
    fitted = clone(est).fit(rng.random((20, 3)), rng.random(20))
    for method in ("transform", "predict"):
        if hasattr(fitted, method):
            with pytest.raises(ValueError, match=r"X must have 3 columns \(x, y, z\), got 2"):
                getattr(fitted, method)(np.zeros((5, 2)))


def test_estimators_are_imported_lazily():
    code = ("import sys, fmmsolve\n"
            "assert 'sklearn' not in sys.modules, 'import fmmsolve imported sklearn'\n"
            "assert 'PotentialTransformer' in dir(fmmsolve)\n"
            "assert fmmsolve.IntegralEquationSolver.__module__ == 'fmmsolve.estimators'\n"
            "assert 'sklearn' in sys.modules\n"
            "print('ok')")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": path}, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        fmmsolve.Nothing


# 2. PotentialTransformer ----------------------------------------------------------------------

def test_transform_is_the_potential_and_its_gradient(rng):
    x = point_cloud("clusters", 3000, rng)
    q = rng.standard_normal(len(x))
    y = rng.random((500, 3)) * 3 - 1
    features = PotentialTransformer(eps=1e-6, gradient=True).fit(x, sample_weight=q)
    out = features.transform(y)
    pot, grad = fmmsolve.direct(x, y, q, gradient=True)
    assert out.shape == (500, 4)
    assert relative_l2_error(out[:, 0], pot) <= 1e-6
    assert relative_l2_error(out[:, 1:], grad) <= 1e-5
    assert list(features.get_feature_names_out()) == ["potential", "grad_x", "grad_y", "grad_z"]
    plain = PotentialTransformer(eps=1e-6).fit(x)  # default charges: ones
    assert relative_l2_error(plain.transform(y)[:, 0], fmmsolve.direct(x, y, np.ones(3000))) \
        <= 1e-6
    assert list(plain.get_feature_names_out()) == ["potential"]


def test_transform_with_the_modified_helmholtz_kernel(rng):
    x = point_cloud("uniform", 2000, rng)
    q = rng.standard_normal(len(x))
    y = rng.random((400, 3)) * 1.2 - 0.1
    features = PotentialTransformer(kernel="modified_helmholtz", wavenumber=4.0, eps=1e-3,
                                    gradient=True, memory=None).fit(x, sample_weight=q)
    out = features.transform(y)
    pot, grad = fmmsolve.direct(x, y, q, kernel="modified_helmholtz", wavenumber=4.0,
                                gradient=True)
    assert relative_l2_error(out[:, 0], pot) <= 1e-3
    assert relative_l2_error(out[:, 1:], grad) <= 1e-2


def test_a_second_transform_reuses_the_upward_pass(monkeypatch, rng):
    calls = []
    upward = passes.upward
    monkeypatch.setattr(passes, "upward", lambda *a: calls.append(1) or upward(*a))
    features = PotentialTransformer(eps=1e-3).fit(point_cloud("uniform", 5000, rng))
    assert len(calls) == 1
    features.transform(rng.random((1000, 3)))
    features.transform(rng.random((1000, 3)) * 2)
    assert len(calls) == 1


def test_transformer_passes_kernel_errors_through():
    X = np.random.default_rng(0).random((10, 3))
    with pytest.raises(ValueError, match="unknown kernel 'navier_stokes'"):
        PotentialTransformer(kernel="navier_stokes").fit(X)
    with pytest.raises(ValueError, match="needs a wavenumber"):
        PotentialTransformer(kernel="helmholtz").fit(X)
    with pytest.raises(ValueError, match="wavenumber must be None"):
        PotentialTransformer(wavenumber=1.0).fit(X)
    with pytest.raises(ValueError, match="eps must be a number"):
        PotentialTransformer(eps=0).fit(X)


# 3. IntegralEquationSolver: the physics -------------------------------------------------------

def test_sphere_capacitance_and_exterior_field_converge():
    radius, errors = 2.0, []
    far = np.array([[3.0, 1.0, 0.5], [0.0, 0.0, 10.0], [-5.0, 4.0, 3.0], [2.5, -2.5, 0.0]])
    for n in (1000, 4000):
        x, w = sphere(n, radius)
        model = IntegralEquationSolver().fit(x, np.ones(n), sample_weight=w)
        charge = np.sum(w * model.density_)
        err = abs(charge / (4 * np.pi * radius) - 1)
        exterior = model.predict(far) / (radius / np.linalg.norm(far, axis=1)) - 1
        assert err < 0.01 and np.abs(exterior).max() < 0.01
        assert model.residual_norm_ < 1e-5 and model.n_iter_ >= 1
        errors.append(err)
    assert errors[1] < 0.7 * errors[0]  # the error shrinks like n^-1/2


def test_solution_matches_dense_linear_algebra(rng):
    x, w = sphere(400, radius=1.5)
    w = w * rng.uniform(0.8, 1.2, 400)  # unequal weights: a non-symmetric system
    y = x[:, 2] + 0.3
    # one leaf (direct sums): this checks the system, not the FMM's accuracy
    model = IntegralEquationSolver(tol=1e-12, leaf_size=1000).fit(x, y, sample_weight=w)
    A = np.diag(np.sqrt(w / np.pi) / 2) + _dense(x) * w
    sigma = np.linalg.solve(A, y)
    assert relative_l2_error(model.density_, sigma) <= 1e-8
    assert abs(model.residual_norm_ - np.linalg.norm(y - A @ model.density_)
               / np.linalg.norm(y)) <= 1e-9
    new = rng.standard_normal((50, 3)) * 3
    assert relative_l2_error(model.predict(new), _dense(x, new) @ (w * sigma)) <= 1e-8
    np.testing.assert_allclose(model.predict(x), y, rtol=1e-9)  # self-terms included
    assert model.score(x, y) > 1 - 1e-12
    np.testing.assert_array_equal(model.transform(new)[:, 0], model.predict(new))


def test_cg_agrees_with_gmres():
    x, w = sphere(1500)
    y = 1.0 + x[:, 0]
    g = IntegralEquationSolver(solver="gmres", tol=1e-8).fit(x, y, sample_weight=w)
    c = IntegralEquationSolver(solver="cg", tol=1e-8).fit(x, y, sample_weight=w)
    assert relative_l2_error(c.density_, g.density_) <= 1e-6
    assert c.residual_norm_ < 1e-6 and g.residual_norm_ < 1e-6


def test_coincident_points_are_one_point_and_weightless_ones_are_left_out(rng):
    x, w = sphere(300)
    y = 1 + x[:, 2]
    base = IntegralEquationSolver(tol=1e-12, leaf_size=1000).fit(x, y, sample_weight=w)
    # split each weight over two copies (one written with -0.0), add weightless strangers
    twins = np.where(x == 0, -0.0, x)
    strangers = rng.random((5, 3))
    X = np.concatenate([x, twins, strangers])
    Y = np.concatenate([y, y, np.full(5, 7.0)])
    W = np.concatenate([w / 4, 3 * w / 4, np.zeros(5)])
    merged = IntegralEquationSolver(tol=1e-12, leaf_size=1000).fit(X, Y, sample_weight=W)
    np.testing.assert_allclose(merged.density_[:300], base.density_, rtol=1e-9)
    np.testing.assert_array_equal(merged.density_[300:600], merged.density_[:300])
    np.testing.assert_array_equal(merged.density_[600:], 0.0)
    new = rng.standard_normal((20, 3)) * 2
    np.testing.assert_allclose(merged.predict(new), base.predict(new), rtol=1e-9)


@pytest.mark.parametrize("diagonal", [0.05, "array"])
def test_explicit_diagonal(diagonal, rng):
    x, w = sphere(300)
    d = rng.uniform(0.04, 0.06, 300) if diagonal == "array" else diagonal
    model = IntegralEquationSolver(diagonal=d, tol=1e-12, leaf_size=1000).fit(
        x, np.ones(300), sample_weight=w)
    sigma = np.linalg.solve(np.diag(np.broadcast_to(d, 300)) + _dense(x) * w, np.ones(300))
    assert relative_l2_error(model.density_, sigma) <= 1e-8


def test_non_convergence_warns():
    x, w = sphere(500)
    with pytest.warns(ConvergenceWarning, match="without reaching tol"):
        model = IntegralEquationSolver(max_iter=2, tol=1e-14).fit(x, 1 + x[:, 0],
                                                                  sample_weight=w)
    assert model.n_iter_ <= 2 and model.residual_norm_ > 1e-14


def test_zero_data_gives_zero_density():
    x, w = sphere(100)
    model = IntegralEquationSolver().fit(x, np.zeros(100), sample_weight=w)
    assert model.n_iter_ == 0 and model.residual_norm_ == 0 and not model.density_.any()


@pytest.mark.parametrize("params, weights, message", [
    ({}, -np.ones(10), "sample_weight must be non-negative"),
    ({}, np.zeros(10), "at least one non-zero weight"),
    ({"solver": "lsqr"}, None, "solver must be 'gmres' or 'cg'"),
    ({"tol": 0}, None, r"tol must be a number in \(0, 1\)"),
    ({"max_iter": 0}, None, "max_iter must be a positive integer"),
    ({"diagonal": "exact"}, None, "diagonal must be 'auto', a number or an array"),
    ({"diagonal": np.ones(3)}, None, r"diagonal must have shape \(10,\)"),
    ({"diagonal": np.nan}, None, "diagonal contains NaN"),
    ({"kernel": "navier_stokes"}, None, "unknown kernel 'navier_stokes'"),
    ({"kernel": "modified_helmholtz", "wavenumber": -1.0}, None, "real wavenumber k > 0"),
    ({"wavenumber": 3.0}, None, "wavenumber must be None"),
])
def test_solver_errors_name_the_argument(params, weights, message, rng):
    with pytest.raises(ValueError, match=message):
        IntegralEquationSolver(**params).fit(rng.random((10, 3)), np.ones(10),
                                             sample_weight=weights)


@pytest.mark.parametrize("kernel, k", [("laplace", None), ("modified_helmholtz", 3.0),
                                       ("helmholtz", 2.0), ("helmholtz", 2.0 + 0.5j),
                                       ("modified_helmholtz", 1e-9)])
def test_patch_self_integral_matches_quadrature(kernel, k):
    area = 0.2
    a = np.sqrt(area / np.pi)
    green = {"laplace": lambda r: 1 / (4 * np.pi * r),
             "modified_helmholtz": lambda r: np.exp(-k * r) / (4 * np.pi * r),
             "helmholtz": lambda r: np.exp(1j * k * r) / (4 * np.pi * r)}[kernel]
    parts = []  # int over the disk in polar coordinates, dA = r dr dtheta
    for part in (np.real, np.imag):
        value, _ = integrate.dblquad(lambda r, t: part(green(r)) * r, 0, 2 * np.pi, 0, a,
                                     epsabs=1e-13, epsrel=1e-12)
        parts.append(value)
    exact = parts[0] + 1j * parts[1]
    got = patch_self_integral(kernel, area, k)
    assert abs(got - exact) <= 1e-9 * abs(exact)
    with pytest.raises(ValueError, match="no patch self-integral"):
        patch_self_integral("yukawa", area, 1.0)
    if kernel != "laplace":
        with pytest.raises(ValueError, match="non-zero wavenumber"):
            patch_self_integral(kernel, area, None)


# 4. host protocols: clone, params, pickle, Pipeline, GridSearchCV, joblib ---------------------

def test_tags():
    solver, features = get_tags(IntegralEquationSolver()), get_tags(PotentialTransformer())
    assert solver.estimator_type == "regressor" and solver.target_tags.required
    for tags in (solver, features):
        assert tags.input_tags.two_d_array and not tags.input_tags.sparse
        assert tags.transformer_tags.preserves_dtype == ["float64", "float32"]  # float32 kept


def test_clone_and_params():
    est = IntegralEquationSolver(eps=1e-3, diagonal=0.1, solver="cg")
    assert clone(est).get_params() == est.get_params()
    est.set_params(eps=1e-4, max_iter=10)
    assert est.eps == 1e-4 and est.max_iter == 10
    assert PotentialTransformer(gradient=True).get_params()["gradient"] is True


def test_pickled_estimators_predict_the_same(rng):
    x, w = sphere(800)
    solver = IntegralEquationSolver(eps=1e-4).fit(x, 1 + x[:, 1], sample_weight=w)
    features = PotentialTransformer(eps=1e-4, gradient=True).fit(x, sample_weight=w)
    new = rng.standard_normal((100, 3)) * 2
    for est, method in ((solver, "predict"), (features, "transform")):
        copy = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(getattr(copy, method)(new), getattr(est, method)(new))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(solver)).density_, solver.density_)


def test_pipeline_scales_coordinates_then_solves():
    x, w = sphere(1200, radius=3.0)
    x = x + [10.0, -4.0, 2.0]
    y = x[:, 2] - 2.0
    pipe = Pipeline([("scale", StandardScaler()), ("solve", IntegralEquationSolver())])
    pipe.fit(x, y, solve__sample_weight=w)
    assert pipe.score(x, y) > 0.999
    scaled = StandardScaler().fit(x)
    direct = IntegralEquationSolver().fit(scaled.transform(x), y, sample_weight=w)
    new = x[:7] * 1.5 - [5.0, -2.0, 1.0]
    np.testing.assert_allclose(pipe.predict(new), direct.predict(scaled.transform(new)))


def test_potential_features_in_a_pipeline(rng):
    X = point_cloud("clusters", 1500, rng)
    y = fmmsolve.direct(X, X, np.ones(1500)) * 0.01 + X[:, 0]
    pipe = Pipeline([("features", PotentialTransformer(eps=1e-4)), ("ridge", Ridge(1e-6))])
    assert pipe.fit(X, y).score(X, y) > 0.5


def test_cross_validation_scores_held_out_boundary_data():
    x, w = sphere(2000)
    y = x[:, 2]  # a harmonic function: the interior field is exactly y
    scores = cross_val_score(IntegralEquationSolver(eps=1e-4), x, y,
                             cv=KFold(4, shuffle=True, random_state=0),
                             params={"sample_weight": w})
    assert scores.min() > 0.99


def test_grid_search_over_eps_and_diagonal():
    x, w = sphere(1500)
    y = x[:, 2]
    search = GridSearchCV(IntegralEquationSolver(),
                          {"eps": [1e-3, 1e-5], "diagonal": ["auto", 0.1]},
                          cv=KFold(3, shuffle=True, random_state=1))
    search.fit(x, y, sample_weight=w)
    assert search.best_params_["diagonal"] == "auto"
    assert search.best_score_ > 0.99
    assert np.isfinite(search.best_estimator_.predict(x[:5])).all()


def _fit_solver(est, X, y, w):
    return est.fit(X, y, sample_weight=w)


def test_joblib_caching(tmp_path, rng):
    X = point_cloud("uniform", 1000, rng)
    y = X.sum(axis=1)
    pipe = Pipeline([("features", PotentialTransformer(eps=1e-3, gradient=True)),
                     ("ridge", Ridge())], memory=str(tmp_path / "pipeline"))
    first = pipe.fit(X, y).predict(X[:50])
    fits = []
    fit = PotentialTransformer.fit
    try:
        PotentialTransformer.fit = lambda self, *a, **k: fits.append(1) or fit(self, *a, **k)
        second = clone(pipe).fit(X, y).predict(X[:50])
    finally:
        PotentialTransformer.fit = fit
    assert fits == []  # the fitted transformer came from the cache
    np.testing.assert_array_equal(first, second)

    solve = joblib.Memory(tmp_path / "fits", verbose=0).cache(_fit_solver)
    x, w = sphere(500)
    a = solve(IntegralEquationSolver(eps=1e-4), x, np.ones(500), w)
    b = solve(IntegralEquationSolver(eps=1e-4), x, np.ones(500), w)
    assert solve.check_call_in_cache(IntegralEquationSolver(eps=1e-4), x, np.ones(500), w)
    np.testing.assert_array_equal(a.density_, b.density_)
    np.testing.assert_array_equal(a.predict(x[:5] * 2), b.predict(x[:5] * 2))


def test_integral_equation_solver_fits_its_points_once(monkeypatch):
    import fmmsolve.fmm

    built = []
    original = fmmsolve.fmm.FMMEngine.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(fmmsolve.fmm.FMMEngine, "__init__", counting)
    x, w = sphere(800, 1.0)
    model = IntegralEquationSolver(eps=1e-4).fit(x, np.ones(800), sample_weight=w)
    assert len(built) == 1  # the operator's engine serves the field too
    # the field of the solved density: 1 on the conductor (the equation solved)
    assert np.allclose(model.predict(x[:50]), 1.0, atol=1e-3)
