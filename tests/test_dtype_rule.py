"""One dtype rule for every entry point (docs/guide.md, "Precision"): without ``dtype=`` the
computation is float32 when every array the call receives is float32, float64 otherwise
(float64, integer, or float32 mixed with float64), as NumPy's ``result_type``; ``dtype=``
overrides it. ``eps=None`` is 1e-6 in float64 and 1e-4 in float32."""

import numpy as np
import pytest

import fmmsolve
from fmmsolve.accuracy import DEFAULT_EPS, FLOAT32_MIN_EPS
from fmmsolve.testing import point_cloud

X = point_cloud("uniform", 400, 3)
Y = point_cloud("sphere", 60, 4)
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

# (sources dtype, targets dtype or None, dtype=, expected precision)
CASES = [
    pytest.param(np.float32, None, None, F32, id="float32"),
    pytest.param(np.float64, None, None, F64, id="float64"),
    pytest.param(np.int64, None, None, F64, id="integer"),
    pytest.param(np.float32, np.float32, None, F32, id="float32-both"),
    pytest.param(np.float32, np.float64, None, F64, id="mixed"),
    pytest.param(np.float32, None, np.float64, F64, id="float32-dtype64"),
    pytest.param(np.float64, None, np.float32, F32, id="float64-dtype32"),
]


def _points(src_dtype, tgt_dtype):
    scale = 100 if np.dtype(src_dtype).kind == "i" else 1  # integer coordinates, not all zero
    return (scale * X).astype(src_dtype), None if tgt_dtype is None else Y.astype(tgt_dtype)


def _precision(value_dtype):
    return np.dtype(np.finfo(value_dtype).dtype)


@pytest.mark.parametrize("src, tgt, dtype, expected", CASES)
def test_fmm_operator(src, tgt, dtype, expected):
    s, t = _points(src, tgt)
    A = fmmsolve.FMMOperator(s, t, dtype=dtype)
    assert A.dtype == expected
    assert A.eps == (FLOAT32_MIN_EPS if expected == F32 else DEFAULT_EPS)
    out = A @ np.ones(A.shape[1])
    assert out.dtype == expected
    np.testing.assert_allclose(out, fmmsolve.direct(s, t, np.ones(A.shape[1]), dtype=dtype),
                               rtol=0, atol=10 * A.eps * np.abs(out).max())
    assert fmmsolve.FMMOperator(s, t, kernel="helmholtz", wavenumber=1.0, eps=1e-3,
                                dtype=dtype).dtype == np.result_type(expected, np.complex64)


@pytest.mark.parametrize("src, tgt, dtype, expected", CASES)
def test_direct(src, tgt, dtype, expected):
    s, t = _points(src, tgt)
    # densities of the points' dtype (or float64 for integer points): the rule sees them too
    q = np.ones(len(s), dtype=s.dtype if s.dtype.kind == "f" else np.float64)
    assert fmmsolve.direct(s, t, q, dtype=dtype).dtype == expected


def test_direct_counts_its_densities():
    s = X.astype(np.float32)
    assert fmmsolve.direct(s, None, np.ones(len(s))).dtype == F64
    assert fmmsolve.direct(s, None, np.ones(len(s), np.float32)).dtype == F32


@pytest.mark.parametrize("src, tgt, dtype, expected",
                         [c for c in CASES if c.values[1] is None])  # a field has no targets
def test_fmm_field(src, tgt, dtype, expected):
    s, _ = _points(src, tgt)
    field = fmmsolve.FMMField(s, np.ones(len(s)), dtype=dtype)
    assert field.value_dtype == expected and field.evaluate(Y).dtype == expected
    assert field.eps == (FLOAT32_MIN_EPS if expected == F32 else DEFAULT_EPS)


@pytest.mark.parametrize("src, tgt, dtype, expected", CASES)
def test_distributed_options(src, tgt, dtype, expected):
    # the distributed package needs the mpi extra, which the README's test command lacks
    pytest.importorskip("mpi4py")
    pytest.importorskip("numba_mpi")
    from fmmsolve.distributed.options import check_options
    s, t = _points(src, tgt)
    options = {} if dtype is None else {"dtype": dtype}
    engine, _, summary = check_options({**options, "memory": None}, s, t)
    assert engine["dtype"] == expected and summary["dtype"] == expected.name
    assert engine["eps"] == (FLOAT32_MIN_EPS if expected == F32 else DEFAULT_EPS)


@pytest.mark.parametrize("src, expected", [(np.float32, F32), (np.float64, F64),
                                           (np.int64, F64)])
def test_estimators(src, expected):
    s, _ = _points(src, None)
    est = fmmsolve.PotentialTransformer().fit(s)
    assert est.transform(s[:10]).dtype == expected
    y = np.sin(X[:, 0])
    solver = fmmsolve.IntegralEquationSolver(max_iter=5)
    with pytest.warns(Warning):  # 5 iterations: a ConvergenceWarning, not the point here
        solver.fit(s, y)
    assert _precision(solver.predict(s[:10]).dtype) == expected


def test_float32_points_with_a_float64_eps_say_how_to_get_float64():
    with pytest.raises(ValueError, match=r"at least 0\.0001 in float32.*float64 points or "
                                         r"dtype=np\.float64"):
        fmmsolve.FMMOperator(X.astype(np.float32), eps=1e-6)
    A = fmmsolve.FMMOperator(X.astype(np.float32), eps=1e-6, dtype=np.float64)
    assert A.dtype == F64 and A.eps == 1e-6
