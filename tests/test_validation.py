"""Hostile inputs at the public entry points (issue 17, items 11, 12 and 14): every refusal is a
``ValueError`` / ``TypeError`` naming the argument, and BLAS thread settings survive any mix of
threads."""

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fmmsolve
from fmmsolve.operators import dense

RAGGED = [[0.0, 0.0, 0.0], [1.0, 1.0]]


@pytest.fixture(scope="module")
def points():
    return np.random.default_rng(17).random((60, 3))


@pytest.fixture(scope="module")
def operator(points):
    return fmmsolve.FMMOperator(points, eps=1e-3, memory=None)


@pytest.fixture(scope="module")
def field(points):
    return fmmsolve.FMMField(points, np.ones(60), eps=1e-3, memory=None)


# -- item 11: errors name the argument -------------------------------------------------------

@pytest.mark.parametrize("entry", ["FMMOperator", "FMMField", "direct"])
@pytest.mark.parametrize("dtype", ["bogus", "float16", complex, object()])
def test_bad_dtype_is_a_value_error_naming_dtype(points, entry, dtype):
    call = {"FMMOperator": lambda: fmmsolve.FMMOperator(points, dtype=dtype, memory=None),
            "FMMField": lambda: fmmsolve.FMMField(points, np.ones(60), dtype=dtype, memory=None),
            "direct": lambda: fmmsolve.direct(points, points, np.ones(60), dtype=dtype)}[entry]
    with pytest.raises(ValueError, match="dtype must be np.float32 or np.float64, got"):
        call()


def test_ragged_points_name_the_argument(points, operator, field):
    q = np.ones(60)
    cases = [
        (lambda: fmmsolve.FMMOperator(RAGGED, memory=None), "sources"),
        (lambda: fmmsolve.FMMOperator(points, RAGGED, memory=None), "targets"),
        (lambda: fmmsolve.FMMField(RAGGED, [1.0, 1.0], memory=None), "sources"),
        (lambda: field.evaluate(RAGGED), "points"),
        (lambda: fmmsolve.direct(RAGGED, points, [1.0, 1.0]), "sources"),
        (lambda: fmmsolve.direct(points, RAGGED, q), "targets"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=rf"^{name} must be an array of shape \(n, 3\), "
                                             r"got a ragged sequence"):
            call()


def test_ragged_densities_name_the_argument(points, operator):
    ragged_q = [[1.0]] * 59 + [[1.0, 2.0]]
    ragged_d = [[1.0, 0.0, 0.0]] * 59 + [[1.0]]
    cases = [
        (lambda: operator @ ragged_q, r"q must be an array of shape \(60,\) or \(60, m\)"),
        (lambda: operator.evaluate(ragged_q), r"q must be an array of shape \(60,\)"),
        (lambda: operator.evaluate(ragged_q, dipoles=np.ones((60, 3))), "q must be an array"),
        (lambda: operator.evaluate(dipoles=ragged_d), r"dipoles must be an array of shape \(60,"),
        (lambda: fmmsolve.direct(points, points, ragged_q), r"charges must be an array of shape"),
        (lambda: fmmsolve.direct(points, points, dipoles=ragged_d), "dipoles must be an array"),
        (lambda: fmmsolve.FMMField(points, ragged_q, memory=None), "charges must be an array"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_estimators_name_X_for_ragged_or_bool_points(points):
    pytest.importorskip("sklearn")
    est = fmmsolve.PotentialTransformer(eps=1e-3, memory=None)
    with pytest.raises(ValueError, match="X must be an array of shape .* ragged"):
        est.fit(RAGGED)
    with pytest.raises(ValueError, match="X must be a real numeric .* got dtype bool"):
        est.fit(points > 0.5)
    est.fit(points)
    with pytest.raises(ValueError, match="X must be a real numeric .* got dtype bool"):
        est.transform(points > 0.5)
    with pytest.raises(ValueError, match="X must be an array of shape .* ragged"):
        fmmsolve.IntegralEquationSolver(memory=None).fit(RAGGED, [1.0, 2.0])


# -- item 14: loose inputs -------------------------------------------------------------------

def test_bool_coordinates_are_refused(points, field):
    mask = points > 0.5
    cases = [
        (lambda: fmmsolve.FMMOperator(mask, memory=None), "sources"),
        (lambda: fmmsolve.FMMOperator(points, mask, memory=None), "targets"),
        (lambda: fmmsolve.FMMField(mask, np.ones(60), memory=None), "sources"),
        (lambda: field.evaluate(mask), "points"),
        (lambda: fmmsolve.direct(mask, points, np.ones(60)), "sources"),
        (lambda: fmmsolve.direct(points, mask, np.ones(60)), "targets"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=rf"^{name} must be a real numeric .* got dtype bool"):
            call()


def test_integer_coordinates_are_still_accepted():
    grid = np.argwhere(np.ones((3, 3, 3), bool))  # int64, 27 distinct points
    q = np.arange(1.0, 28.0)
    exact = fmmsolve.direct(grid.astype(float), None, q)
    np.testing.assert_allclose(fmmsolve.direct(grid, None, q), exact)
    pot = fmmsolve.FMMOperator(grid, eps=1e-6, memory=None) @ q
    assert np.linalg.norm(pot - exact) <= 1e-6 * np.linalg.norm(exact)


@pytest.mark.parametrize("flag", ["no", "False", 0, 1, None, [True]])
def test_gradient_flag_must_be_a_bool(points, operator, field, flag):
    q = np.ones(60)
    for call in (lambda: operator.evaluate(q, gradient=flag),
                 lambda: field.evaluate(points, gradient=flag),
                 lambda: fmmsolve.direct(points, points, q, gradient=flag)):
        with pytest.raises(TypeError, match=r"^gradient must be True or False, got"):
            call()


def test_gradient_flag_accepts_python_and_numpy_bools(points, operator, field):
    q = np.ones(60)
    for flag in (True, np.True_):
        assert len(operator.evaluate(q, gradient=flag)) == 2
        assert len(field.evaluate(points, gradient=flag)) == 2
        assert len(fmmsolve.direct(points, points, q, gradient=flag)) == 2
    for flag in (False, np.False_):
        assert operator.evaluate(q, gradient=flag).shape == (60,)
        assert field.evaluate(points, gradient=flag).shape == (60,)
        assert fmmsolve.direct(points, points, q, gradient=flag).shape == (60,)


def test_dipoles_flag_and_estimator_gradient_must_be_bools(points):
    with pytest.raises(TypeError, match="dipoles must be True or False, got 'no'"):
        fmmsolve.FMMOperator(points, dipoles="no", memory=None)
    pytest.importorskip("sklearn")
    with pytest.raises(TypeError, match="gradient must be True or False, got 'no'"):
        fmmsolve.PotentialTransformer(gradient="no", memory=None).fit(points)


# -- item 12: BLAS thread settings after concurrent products ---------------------------------

class _FakeBlas:
    """A process-wide thread count with threadpoolctl's limiter semantics: a limiter saves the
    count when it is made, sets 1, and puts the saved count back when restored or exited."""

    def __init__(self, threads):
        self.threads = threads

    def limit(self, limits, user_api):
        blas = self

        class Limiter:
            saved = blas.threads

            def restore_original_limits(self):
                blas.threads = self.saved

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.restore_original_limits()

        blas.threads = limits
        return Limiter()


def test_interleaved_threads_restore_the_original_blas_threads(monkeypatch):
    # thread A enters, thread B enters, A leaves, B leaves: with a save/restore per caller, B
    # restores the 1 it found and BLAS stays single-threaded for good
    blas = _FakeBlas(threads=8)
    monkeypatch.setattr(dense, "_controller", lambda: blas)
    steps = {name: threading.Event() for name in ("a_in", "b_in", "a_out")}
    seen = {}

    def a():
        with dense.single_threaded_blas():
            steps["a_in"].set()
            steps["b_in"].wait(10)
            seen["a"] = blas.threads
        steps["a_out"].set()

    def b():
        steps["a_in"].wait(10)
        with dense.single_threaded_blas():
            steps["b_in"].set()
            steps["a_out"].wait(10)
            seen["b"] = blas.threads  # A has left, B is still inside: BLAS must stay at 1

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"a": 1, "b": 1}
    assert blas.threads == 8


def test_nested_and_raising_callers_restore_the_blas_threads(monkeypatch):
    blas = _FakeBlas(threads=4)
    monkeypatch.setattr(dense, "_controller", lambda: blas)
    with pytest.raises(RuntimeError), dense.single_threaded_blas():
        with dense.single_threaded_blas():
            assert blas.threads == 1
        assert blas.threads == 1
        raise RuntimeError
    assert blas.threads == 4
    blas.threads = 3  # changed between evaluations: the next one saves and restores 3
    with dense.single_threaded_blas():
        assert blas.threads == 1
    assert blas.threads == 3


def _blas_threads():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_concurrent_products_leave_blas_threads_as_they_were(operator):
    import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS too, as dense._controller)

    q = np.random.default_rng(0).standard_normal((60, 2))
    expected = operator @ q

    def product(i):
        if i % 3 == 0:  # nested, as an evaluation inside a caller's own limit
            with dense.single_threaded_blas():
                return operator @ q
        return operator @ q

    # Two threads or more, set without a `with` block: threadpoolctl lets only the thread that
    # holds a limit change OpenBLAS, which would hide the bug while the test held one.
    raised = threadpool_limits(limits=2, user_api="blas") if min(_blas_threads(), default=2) < 2 \
        else None
    dense._release_openblas_control()
    before = _blas_threads()
    if min(before, default=1) < 2:
        pytest.skip(f"no BLAS that threadpoolctl can set to 2 threads: {before}")
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the threads inside every product
    try:
        for _ in range(5):
            with ThreadPoolExecutor(max_workers=4) as pool:
                results = list(pool.map(product, range(24)))
            assert _blas_threads() == before
    finally:
        sys.setswitchinterval(switch)
        if raised is not None:
            raised.restore_original_limits()
            dense._release_openblas_control()
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=1e-12)
