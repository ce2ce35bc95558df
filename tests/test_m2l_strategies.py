"""The M2L strategies (fmmsolve.operators.m2l) agree: the dense strategy's translations are the
exact ones, the SVD strategy's compressed translations approximate them within their tolerance,
the FFT strategy's equal them to rounding (more in test_m2l_fft.py), and all give products
within eps of the direct sum. A strategy's name keys the plan cache and
is recorded in saved files."""

import os
import pathlib
import pickle
import re
import subprocess
import sys

import h5py
import joblib
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fmmsolve
from fmmsolve import cache
from fmmsolve.kernels import get_kernel
from fmmsolve.operators import m2l, surfaces
from fmmsolve.operators.plan import compute_plan, transfer_vectors
from fmmsolve.testing import point_cloud, relative_l2_error

ROOT = pathlib.Path(__file__).resolve().parents[1]

WAVE = [("laplace", None), ("helmholtz", 1.0 + 0.5j), ("modified_helmholtz", 2.0)]


def test_the_registry_names_the_strategies():
    assert m2l.STRATEGY_NAMES == ("svd", "dense", "fft") and m2l.DEFAULT == "svd"
    for name in m2l.STRATEGY_NAMES:
        strategy = m2l.get_strategy(name)
        assert strategy.NAME == name == strategy.Data.strategy
        for attribute in ("MAX_ORDER", "precompute", "empty", "schedule", "apply"):
            assert hasattr(strategy, attribute), (name, attribute)


@pytest.mark.parametrize("bad", ["FFT", "SVD", None, 3])
def test_an_unknown_strategy_is_refused_naming_the_argument(bad):
    x = point_cloud("uniform", 200, seed=1)
    with pytest.raises(ValueError, match=r"m2l must be one of 'svd', 'dense', 'fft', got"):
        fmmsolve.FMMOperator(x, m2l=bad, memory=None)
    with pytest.raises(ValueError, match="m2l must be one of"):
        compute_plan("laplace", 4, 1e-4, "<f8", m2l_strategy=bad)


def test_the_dense_strategy_refuses_high_orders():
    x = point_cloud("uniform", 200, seed=1)
    with pytest.raises(ValueError, match=r"m2l='dense' takes expansion orders up to 8, got 9"):
        fmmsolve.FMMOperator(x, m2l="dense", expansion_order=9, memory=None)
    with pytest.raises(ValueError, match="up to 8"):
        m2l.dense.precompute(None, 9, 1.05, 1.05, 1e-4, None, None)


@pytest.mark.parametrize("kernel, k", WAVE)
def test_dense_translations_are_exact_and_svd_approximates_them(kernel, k):
    """Per transfer vector v: the dense operator's local expansion reproduces the exact check
    potential ``K_v x`` of any multipole x (the check surface is where M2L is defined: the
    equivalent densities themselves are not unique), and the SVD strategy's does so within its
    compression tolerance (in the units of test_m2l.py)."""
    order, tol = 5, 1e-5
    dtype = "<c16" if kernel == "helmholtz" else "<f8"
    with threadpool_limits(1, user_api="blas"):
        dense = compute_plan(kernel, order, tol, dtype, k, m2l_strategy="dense")
        svd = compute_plan(kernel, order, tol, dtype, k)
    assert dense.m2l_strategy == "dense" and svd.m2l_strategy == "svd"
    ops = dense.m2l_data.translations
    n = dense.n_surface
    assert ops.shape == (316, n, n) and ops.dtype == np.dtype(dtype) and dense.rank == n
    mat = lambda t, s: get_kernel(kernel).matrix(t, s, k)  # noqa: E731
    surf = dense.surface
    check = surfaces.DOWN_CHECK * surf
    equiv_to_check = mat(check, surfaces.DOWN_EQUIV * surf)
    k_v = [mat(check, 2.0 * v + surfaces.UP_EQUIV * surf) for v in transfer_vectors()]
    s_max = max(np.linalg.norm(a, 2) for a in k_v)
    rng = np.random.default_rng(5)
    worst_dense = worst_svd = 0.0
    for vec in range(len(k_v)):
        x = rng.standard_normal(n) + (1j * rng.standard_normal(n) if dtype == "<c16" else 0)
        exact = k_v[vec] @ x
        worst_dense = max(worst_dense, relative_l2_error(equiv_to_check @ (ops[vec] @ x), exact))
        a_v, b_v = svd.m2l_factors(vec)
        compressed = equiv_to_check @ (svd.m2l_u @ (a_v.T @ (b_v @ (svd.m2l_vt @ x))))
        worst_svd = max(worst_svd, np.linalg.norm(compressed - exact)
                        / (tol * s_max * np.linalg.norm(x)))
    assert worst_dense < 1e-9, worst_dense
    assert worst_svd < 2.0, worst_svd


def test_dense_translations_reproduce_the_field_of_sources():
    """Sources in the box at 2 v (half-width 1): P2M, the dense M2L of v, L2P in the box at the
    origin, against the direct sum, for all 316 vectors (Laplace, order 6)."""
    plan = compute_plan("laplace", 6, 1e-6, "<f8", m2l_strategy="dense")
    mat = get_kernel("laplace").matrix
    surf = plan.surface
    rng = np.random.default_rng(6)
    src, tgt = 0.9 * (2 * rng.random((2, 20, 3)) - 1)  # inside boxes of half-width 1
    q = rng.standard_normal(20)
    errors = []
    for vec, v in enumerate(transfer_vectors()):
        c = 2.0 * v
        multipole = plan.uc2e_a @ (plan.uc2e_b @ (mat(c + surfaces.UP_CHECK * surf, c + src)
                                                  @ q))
        local = plan.m2l_data.translations[vec] @ multipole
        approx = mat(tgt, surfaces.DOWN_EQUIV * surf) @ local
        errors.append(relative_l2_error(approx, mat(tgt, c + src) @ q))
    assert max(errors) < 1e-4 and np.median(errors) < 1e-6, (max(errors), np.median(errors))


@pytest.mark.parametrize("kernel, k", WAVE)
def test_both_strategies_meet_eps_and_agree(kernel, k):
    x = point_cloud("clusters", 3000, seed=2)
    rng = np.random.default_rng(3)
    q = rng.standard_normal(len(x)) + (1j * rng.standard_normal(len(x)) if kernel == "helmholtz"
                                       else 0)
    eps = 1e-4
    exact, exact_grad = fmmsolve.direct(x, x, q, kernel=kernel, wavenumber=k, gradient=True)
    results = {}
    for name in ("dense", "svd", "fft"):
        A = fmmsolve.FMMOperator(x, kernel=kernel, wavenumber=k, eps=eps, expansion_order=5,
                                 leaf_size=40, m2l=name, memory=None)
        assert A.m2l == name and all(p.m2l_strategy == name for p in A._engine.plans)
        pot, grad = results[name] = A.evaluate(q, gradient=True)
        assert relative_l2_error(pot, exact) <= eps, (name, relative_l2_error(pot, exact))
        assert relative_l2_error(grad, exact_grad) <= 10 * eps, name
    assert relative_l2_error(results["svd"][0], results["dense"][0]) <= eps
    assert relative_l2_error(results["svd"][1], results["dense"][1]) <= 10 * eps
    # the FFT computes the dense strategy's translations, to rounding
    assert relative_l2_error(results["fft"][0], results["dense"][0]) <= 1e-10
    assert relative_l2_error(results["fft"][1], results["dense"][1]) <= 1e-10


def test_dense_products_in_float32_and_with_several_columns():
    x = point_cloud("uniform", 2000, seed=4).astype(np.float32)
    Q = np.random.default_rng(4).standard_normal((2000, 3)).astype(np.float32)
    A = fmmsolve.FMMOperator(x, eps=1e-3, m2l="dense", memory=None)
    assert A._engine.plan.m2l_data.translations.dtype == np.float32
    Y = A @ Q
    assert Y.dtype == np.float32
    exact = fmmsolve.direct(x.astype(np.float64), x.astype(np.float64), Q.astype(np.float64))
    assert relative_l2_error(Y, exact) <= 1e-3


@pytest.fixture
def memory(tmp_path):
    cache._IN_PROCESS.clear()
    yield joblib.Memory(tmp_path / "plans", verbose=0)
    cache._IN_PROCESS.clear()


def test_the_strategy_is_part_of_the_plan_cache_key(memory):
    def load(strategy):
        cache._IN_PROCESS.clear()  # force the disk lookup
        return cache.load_plan(memory, "laplace", 4, 1e-4, "<f8", m2l_strategy=strategy)

    dense, svd = load("dense"), load("svd")
    entries = sorted(pathlib.Path(memory.location).rglob("output.pkl"))
    assert len(entries) == 2
    assert {joblib.load(e)["key"][8] for e in entries} == {"dense", "svd"}
    assert {joblib.load(e)["values"]["m2l_strategy"] for e in entries} == {"dense", "svd"}
    again = load("dense")
    assert again.m2l_strategy == "dense" and again.m2l_data == dense.m2l_data
    assert load("svd").m2l_data == svd.m2l_data
    # a dense entry copied over the svd one is never read back as svd
    by_strategy = {joblib.load(e)["key"][8]: e for e in entries}
    by_strategy["svd"].write_bytes(by_strategy["dense"].read_bytes())
    with pytest.warns(RuntimeWarning, match="another configuration"):
        assert load("svd").m2l_strategy == "svd"


def test_a_saved_file_records_the_strategy(tmp_path, monkeypatch):
    x = point_cloud("clusters", 2000, seed=5)
    q = np.random.default_rng(5).standard_normal(2000)
    for kernel, k in [("laplace", None), ("modified_helmholtz", 3.0)]:
        A = fmmsolve.FMMOperator(x, kernel=kernel, wavenumber=k, eps=1e-3, m2l="dense",
                                 memory=None)
        path = tmp_path / f"{kernel}.h5"
        A.save(path)
        with h5py.File(path, "r") as f:
            plans = [g for g in f if g.startswith("plan")]
            assert {f.attrs[f"{g}.m2l_strategy"] for g in plans} == {"dense"}
            assert "m2l_translations" in f["plan"] and "m2l_vt" not in f["plan"]
        loaded = fmmsolve.load(path)
        assert loaded.m2l == "dense" and loaded._params() == {**A._params(), "memory": "default"}
        assert np.array_equal(loaded @ q, A @ q)
    # a file of the layout before strategies (no m2l_strategy attribute) holds SVD operators
    A = fmmsolve.FMMOperator(x, eps=1e-3, memory=None)
    A.save(tmp_path / "svd.h5")
    with h5py.File(tmp_path / "svd.h5", "a") as f:
        assert f.attrs["plan.m2l_strategy"] == "svd"
        del f.attrs["plan.m2l_strategy"]
    loaded = fmmsolve.load(tmp_path / "svd.h5")
    assert loaded.m2l == "svd" and np.array_equal(loaded @ q, A @ q)
    # a strategy this fmmsolve does not know is refused by name
    with h5py.File(tmp_path / "svd.h5", "a") as f:
        f.attrs["plan.m2l_strategy"] = "fmm"
    with pytest.raises(fmmsolve.io.OperatorFileError, match="'fmm' is not an M2L strategy"):
        fmmsolve.load(tmp_path / "svd.h5")


def test_transposes_and_pickles_keep_the_strategy():
    x, y = point_cloud("uniform", 1500, seed=6), point_cloud("uniform", 500, seed=7)
    A = fmmsolve.FMMOperator(x, y, eps=1e-3, m2l="dense", memory=None)
    assert A.T.m2l == "dense" and A.T._engine.plan.m2l_strategy == "dense"
    B = pickle.loads(pickle.dumps(A))
    q = np.random.default_rng(8).standard_normal(1500)
    assert B.m2l == "dense" and np.array_equal(B @ q, A @ q)


DENSE_WITHOUT_JIT = r"""
import numpy as np
import fmmsolve
from fmmsolve.testing import relative_l2_error

rng = np.random.default_rng(1)
x = np.vstack([rng.random((40, 3)), 0.5 + 0.1 * rng.random((110, 3))])
q = rng.standard_normal(150)
A = fmmsolve.FMMOperator(x, eps=1e-2, leaf_size=4, m2l="dense", memory=None)
assert A.tree["mean_v"] > 0, A.tree
error = relative_l2_error(A @ q, fmmsolve.direct(x, None, q))
assert error <= 1e-2, error
print("ok")
"""


def test_the_dense_template_runs_as_plain_python():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run([sys.executable, "-W", "ignore::RuntimeWarning", "-c",
                           DENSE_WITHOUT_JIT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"


def test_the_methods_page_walks_through_the_dense_strategy():
    """docs/methods.md, "Adding an M2L strategy": its excerpts are the dense strategy's code as
    it is, and its example runs."""
    text = (ROOT / "docs" / "methods.md").read_text()
    section = text.split("## Adding an M2L strategy")[1].split("\n## ")[0]
    sources = "".join((ROOT / "fmmsolve" / "operators" / "m2l" / name).read_text()
                      for name in ("dense.py", "__init__.py"))
    excerpts = re.findall(r"\n   ```\n(.*?)\n   ```", section, flags=re.S)
    assert len(excerpts) >= 4
    for excerpt in excerpts:  # indented by the list item's 3 spaces
        code = "\n".join(line[3:] for line in excerpt.split("\n"))
        assert code in sources, code
    (example,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    exec(compile(example, "docs/methods.md", "exec"), {})
