"""The bempp-cl backend: the FMM interface against the direct sum, bempp-cl's ``assembler="fmm"``
on fmmsolve against its ``assembler="dense"``, and the errors for a missing or unsupported
bempp-cl.

The tests that need bempp-cl are skipped without it; the interface and error-path tests are not.
bempp-cl compiles its Numba kernels in every process (it does not cache them), so the comparison
assembles each dense operator once per module, on one small sphere.
"""

import importlib.metadata
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy.sparse import random as sparse_random

import fmmsolve
from fmmsolve import bempp as fb

ROOT = pathlib.Path(__file__).resolve().parents[1]


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# -- without bempp-cl -----------------------------------------------------------------------------

def test_importing_fmmsolve_does_not_import_bempp():
    code = "import sys, fmmsolve, fmmsolve.bempp; print('bempp_cl' in sys.modules)"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": path}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_missing_bempp_names_the_extra(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(ImportError, match=r"not installed.*fmmsolve\[bempp\]"):
        fb.enable()
    assert not fb.is_enabled()


@pytest.mark.parametrize("version", ["0.3.2", "0.4.1", "0.5.0", "1.0"])
def test_unsupported_bempp_version_names_the_supported_ones(monkeypatch, version):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: version)
    with pytest.raises(ImportError, match=rf"supports bempp-cl>=0\.4\.2,<0\.5.*{version} is "
                                          r"installed.*fmmsolve\[bempp\]"):
        fb.enable()
    assert not fb.is_enabled()


@pytest.mark.parametrize("eps", [0, 1, -1e-3, 1e-12, 1e-9, "1e-3", True])
def test_enable_rejects_bad_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        fb.enable(eps=eps)


@pytest.mark.parametrize("eps, asked", [
    (None, "eps=0.0001 (from bempp-cl's fmm.expansion_order=5; each FMM is fit for eps / 10 = "
           "1e-05"),
    (1e-6, "eps=1e-06 (from fmmsolve.bempp.enable(eps=...); each FMM is fit for eps / 10 = "
           "1e-07")])
def test_frequency_refusal_quotes_the_eps_asked_and_advises_dense(monkeypatch, eps, asked):
    # FmmInterface is what bempp-cl builds; it needs no bempp-cl to be refused
    monkeypatch.setitem(fb._state, "options", {"eps": eps, "leaf_size": None, "memory": None})
    points = np.random.default_rng(0).random((3000, 3))
    with pytest.raises(fmmsolve.accuracy.FrequencyError) as info:
        fb.FmmInterface(points, points, "helmholtz", 200.0 + 0j, expansion_order=5)
    text = str(info.value)
    assert asked in text and info.value.eps == (eps or 1e-4)
    assert "Accepted: |k| <= " in text and "root cube of edge <= " in text
    assert 'assembler="dense"' in text and "fmmsolve.direct" not in text
    assert "3000 points" in text


def test_eps_for_order_follows_the_accuracy_table():
    got = {p: fb.eps_for_order(p) for p in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)}
    assert got == {2: 1e-2, 3: 1e-2, 4: 1e-3, 5: 1e-4, 6: 1e-5, 7: 1e-6, 8: 1e-7, 9: 1e-8,
                   10: 1e-8, 11: 1e-9, 12: 1e-9}
    for p, eps in got.items():
        assert fmmsolve.accuracy.order_for_eps(eps) <= max(p, 3)
    with pytest.raises(ValueError, match="expansion_order"):
        fb.eps_for_order(5.0)


@pytest.mark.parametrize("mode, wavenumber", [("laplace", None), ("helmholtz", 3.0 + 0j),
                                              ("helmholtz", 2.0 + 0.5j),
                                              ("modified_helmholtz", 2.0)])
def test_interface_result_layout_against_the_direct_sum(rng, mode, wavenumber):
    # Column 0 the potential, columns 1-3 the gradient with respect to the target, zero-distance
    # pairs skipped, then the correction C @ vec (4 rows per target) subtracted.
    points = rng.random((4000, 3))
    vec = rng.standard_normal(4000) + 1j * rng.standard_normal(4000)
    correction = sparse_random(4 * 4000, 4000, density=1e-4, random_state=0, format="csr")
    fmm = fb.FmmInterface(points, points, mode, wavenumber, expansion_order=5,
                          singular_correction=correction)
    assert fmm.operator.targets is None  # one point set, one tree
    assert fmm.operator.tree["depth"] >= 2  # the far field goes through M2L
    assert (fmm.number_of_source_points, fmm.number_of_target_points) == (4000, 4000)
    k = None if wavenumber is None else (wavenumber if mode == "helmholtz" else wavenumber.real)
    if mode == "helmholtz":
        pot, grad = fmmsolve.direct(points, None, vec, kernel=mode, wavenumber=k, gradient=True)
    else:  # a real kernel: the direct sum takes real charges
        pot, grad = fmmsolve.direct(points, None, np.column_stack([vec.real, vec.imag]),
                                    kernel=mode, wavenumber=k, gradient=True)
        pot, grad = pot[:, 0] + 1j * pot[:, 1], grad[:, 0] + 1j * grad[:, 1]
    expected = np.column_stack([pot, grad]) - (correction @ vec).reshape(-1, 4)
    got = fmm.evaluate(vec)
    assert got.shape == (4000, 4) and got.dtype == np.complex128
    assert fmm.operator.eps == pytest.approx(1e-5)  # order 5 -> eps 1e-4, FMM at 1e-5
    assert rel(got[:, 0], expected[:, 0]) <= 1e-4
    assert rel(got[:, 1:], expected[:, 1:]) <= 1e-3  # the gradient: one digit less
    assert rel(fmm.evaluate(vec, apply_singular_correction=False),
               np.column_stack([pot, grad])) <= 1e-3


def test_interface_with_separate_targets_and_real_result(rng):
    sources, targets = rng.random((300, 3)), rng.random((200, 3)) + 0.5
    vec = rng.standard_normal(300)
    fmm = fb.FmmInterface(sources, targets, "laplace")
    got = fmm.evaluate(vec)
    assert got.dtype == np.float64 and fmm.operator.eps == pytest.approx(1e-5)  # order 5 -> 1e-4
    pot, grad = fmmsolve.direct(sources, targets, vec, gradient=True)
    assert rel(got, np.column_stack([pot, grad])) <= 1e-4
    np.testing.assert_allclose(fmm.as_matrix() @ vec, pot, rtol=1e-4,
                               atol=1e-4 * np.abs(pot).max())
    with pytest.raises(ValueError, match="mode must be one of"):
        fb.FmmInterface(sources, targets, "stokes")


# -- with bempp-cl: assembler="fmm" against assembler="dense" -----------------------------------

K = 2.0  # Helmholtz wavenumber: |k| w_2 = 1 on the unit sphere, inside the low-frequency range

OPERATORS = {
    "laplace single_layer": ("laplace", "single_layer", ()),
    "laplace double_layer": ("laplace", "double_layer", ()),
    "laplace adjoint_double_layer": ("laplace", "adjoint_double_layer", ()),
    "laplace hypersingular": ("laplace", "hypersingular", ()),
    "helmholtz single_layer": ("helmholtz", "single_layer", (K,)),
}
# Every operator must meet eps: the interface fits its FMMs for eps / GRADIENT_MARGIN because
# the double-layer kernels use the FMM's gradient (1.6 to 2.8 times the FMM's eps on this grid).
CASES = [(eps, name) for eps in (1e-3, 1e-6) for name in OPERATORS]


@pytest.fixture(scope="module")
def api():
    api = pytest.importorskip("bempp_cl.api")
    yield api
    fb.disable()


@pytest.fixture(scope="module")
def space(api):
    return api.function_space(api.shapes.regular_sphere(3), "P", 1)  # 512 triangles, 258 dofs


def build(api, space, name, assembler):
    module, kind, args = OPERATORS[name]
    family = getattr(api.operators.boundary, module)
    return getattr(family, kind)(space, space, space, *args, assembler=assembler)


@pytest.fixture(scope="module")
def densities(space):
    rng = np.random.default_rng(7)
    n = space.global_dof_count
    return rng.standard_normal(n), rng.standard_normal(n) + 1j * rng.standard_normal(n)


@pytest.fixture(scope="module")
def dense_products(api, space, densities):
    cache = {}

    def product(name):
        if name not in cache:
            weak = build(api, space, name, "dense").weak_form()
            cache[name] = [weak @ x for x in densities]
        return cache[name]

    return product


@pytest.mark.parametrize("eps, name", CASES,
                         ids=[f"{n.replace(' ', '-')}-{e:g}" for e, n in CASES])
def test_fmm_assembler_agrees_with_dense(api, space, densities, dense_products, eps, name):
    expected = dense_products(name)
    fb.enable(eps=eps)
    weak = build(api, space, name, "fmm").weak_form()
    for x, y in zip(densities, expected):
        assert rel(weak @ x, y) <= eps
    from bempp_cl.api.fmm import fmm_assembler

    interfaces = list(fmm_assembler._FMM_CACHE.values())
    assert interfaces and all(isinstance(i, fb.FmmInterface) for i in interfaces)
    assert all(i.operator.eps == eps / fb.GRADIENT_MARGIN and i.operator.tree["depth"] >= 2
               for i in interfaces)


def test_gmres_solution_matches_dense(api, space):
    # First-kind Laplace problem V sigma = b on the sphere with b = V_dense sigma_0, sigma_0 the
    # field of a unit charge at (0.2, 0.1, -0.3) on the nodes: bempp-cl's GMRES on the dense and
    # on the FMM weak form converges to the same density (and to sigma_0).
    from bempp_cl.api.linalg import gmres

    charge = np.array([0.2, 0.1, -0.3])
    sigma0 = 1 / (4 * np.pi * np.linalg.norm(space.grid.vertices.T - charge, axis=1))
    fb.enable(eps=1e-6)
    solutions = {}
    for assembler in ("dense", "fmm"):
        op = build(api, space, "laplace single_layer", assembler)
        if assembler == "dense":
            b = api.GridFunction(space, projections=op.weak_form() @ sigma0, dual_space=space)
        sol, info, iterations = gmres(op, b, tol=1e-8, return_iteration_count=True)
        assert info == 0
        solutions[assembler] = sol.coefficients, iterations
    (dense, it_dense), (fast, it_fast) = solutions["dense"], solutions["fmm"]
    assert rel(dense, sigma0) <= 1e-5
    assert abs(it_dense - it_fast) <= 2
    assert rel(fast, dense) <= 1e-5


def test_enable_and_disable_swap_the_fmm(api):
    from bempp_cl.api.fmm import exafmm

    fb.disable()
    fb.disable()  # twice is harmless
    original, check = exafmm.ExafmmInterface, api.check_for_fmm
    assert not fb.is_enabled() and original is not fb.FmmInterface
    fb.enable()
    assert fb.is_enabled() and exafmm.ExafmmInterface is fb.FmmInterface and api.check_for_fmm()
    fb.enable(eps=1e-5)  # again, with other options: the originals are still the saved ones
    fb.disable()
    assert not fb.is_enabled()
    assert exafmm.ExafmmInterface is original and api.check_for_fmm is check
