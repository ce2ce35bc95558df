"""Dipole (double-layer) densities: sum_j grad_x G(y, x_j) . d_j, alone or with charges.

Oracles: the direct sum of dipoles against NumPy's closed forms of grad_x G and against central
differences of the charge sum in the source position; its gradient against central
differences in the target. The FMM against the direct sum: potentials within eps and gradients
within 10 eps, on targets among the sources (near field dominates) and on a shell of targets
around the sources (every interaction far: the hard case the dipole margin is chosen for).
"""

import pickle

import numpy as np
import pytest

import fmmsolve
from fmmsolve.testing import point_cloud, relative_l2_error

KERNELS = [("laplace", None), ("helmholtz", 5 + 1j), ("helmholtz", 2.0),
           ("modified_helmholtz", 3.0)]


def _closed_form(sources, targets, dipoles, kernel, k):
    """grad_x G(y, x) . d summed over x, from the radial derivative g'(r) in NumPy."""
    r_vec = targets[:, None, :] - sources[None, :, :]  # y - x
    r = np.linalg.norm(r_vec, axis=2)
    ik = 0.0 if kernel == "laplace" else (1j * k if kernel == "helmholtz" else -k)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.exp(ik * r) / (4 * np.pi * r)
        f1 = np.where(r > 0, g * (ik * r - 1) / r ** 2, 0)  # grad_y G = f1 (y - x)
    return -np.einsum("ij,ijk,jk->i", f1, r_vec, dipoles)


def _shell(n, seed):
    """Targets on a sphere of radius 3 around the unit cube's centre: all far from it."""
    d = np.random.default_rng(seed).standard_normal((n, 3))
    return 0.5 + 3.0 * d / np.linalg.norm(d, axis=1, keepdims=True)


def _densities(kernel, n, rng, m=None):
    shape = (n, 3) if m is None else (n, m, 3)
    d = rng.standard_normal(shape)
    q = rng.standard_normal(shape[:-1])
    if kernel == "helmholtz":
        d, q = d + 1j * rng.standard_normal(shape), q + 1j * rng.standard_normal(shape[:-1])
    return q, d


@pytest.mark.parametrize("kernel, k", KERNELS)
def test_direct_dipoles_match_closed_form_and_differences(kernel, k, rng):
    x = point_cloud("uniform", 300, 1)
    y = np.vstack([point_cloud("uniform", 60, 2), x[:5]])  # some targets on sources
    _, d = _densities(kernel, 300, rng)
    pot, grad = fmmsolve.direct(x, y, dipoles=d, kernel=kernel, wavenumber=k, gradient=True)
    assert relative_l2_error(pot, _closed_form(x, y, d, kernel, k)) < 1e-12
    # central differences, on the targets off the sources: moving each charge along the real
    # part of its dipole, and moving the target
    y = y[:60]
    h = 1e-5
    charge = np.ones(300)
    shifted = [fmmsolve.direct(x + s * h * d.real, y, charge, kernel=kernel, wavenumber=k)
               for s in (1, -1)]
    pot_real = fmmsolve.direct(x, y, dipoles=d.real, kernel=kernel, wavenumber=k)
    assert relative_l2_error(pot_real, (shifted[0] - shifted[1]) / (2 * h)) < 1e-6
    fd = np.stack([(fmmsolve.direct(x, y + h * e, dipoles=d, kernel=kernel, wavenumber=k)
                    - fmmsolve.direct(x, y - h * e, dipoles=d, kernel=kernel, wavenumber=k))
                   / (2 * h) for e in np.eye(3)], axis=1)
    assert relative_l2_error(grad[:60], fd) < 1e-6


@pytest.mark.parametrize("kernel, k", KERNELS[:2])
def test_direct_charges_and_dipoles_add_and_columns_are_independent(kernel, k, rng):
    x, y = point_cloud("clusters", 200, 3), point_cloud("uniform", 50, 4)
    q, d = _densities(kernel, 200, rng, m=3)
    both, grad = fmmsolve.direct(x, y, q, dipoles=d, kernel=kernel, wavenumber=k,
                                 gradient=True)
    assert both.shape == (50, 3) and grad.shape == (50, 3, 3)
    for c in range(3):
        p_q, g_q = fmmsolve.direct(x, y, q[:, c], kernel=kernel, wavenumber=k, gradient=True)
        p_d, g_d = fmmsolve.direct(x, y, dipoles=d[:, c], kernel=kernel, wavenumber=k,
                                   gradient=True)
        np.testing.assert_allclose(both[:, c], p_q + p_d, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grad[:, c], g_q + g_d, rtol=1e-12, atol=1e-12)


def test_direct_dipoles_float32_stays_single(rng):
    x = point_cloud("uniform", 400, 5).astype(np.float32)
    d = rng.standard_normal((400, 3)).astype(np.float32)
    pot, grad = fmmsolve.direct(x, None, dipoles=d, gradient=True)
    assert pot.dtype == np.float32 and grad.dtype == np.float32
    exact = fmmsolve.direct(x.astype(np.float64), None, dipoles=d.astype(np.float64))
    assert relative_l2_error(pot, exact) < 1e-5


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "give charges, dipoles or both"),
    (dict(dipoles=np.ones((10, 2))), r"dipoles must have shape \(10, 3\) or \(10, m, 3\)"),
    (dict(dipoles=np.ones((9, 3))), r"dipoles must have shape \(10, 3\)"),
    (dict(dipoles=np.full((10, 3), np.nan)), "dipoles contains NaN"),
    (dict(dipoles=np.ones((10, 3), complex)), "dipoles is complex but the computation is real"),
    (dict(charges=np.ones((10, 2)), dipoles=np.ones((10, 3))), "disagree"),
])
def test_direct_bad_dipoles_name_the_argument(kwargs, match):
    x = point_cloud("uniform", 10, 0)
    with pytest.raises(ValueError, match=match):
        fmmsolve.direct(x, None, **kwargs)


def _fmm_check(kernel, k, eps, sources, targets, rng, charges=True, leaf_size=None):
    q, d = _densities(kernel, len(sources), rng)
    q = q if charges else None
    A = fmmsolve.FMMOperator(sources, targets, kernel=kernel, wavenumber=k, eps=eps,
                             dipoles=True, leaf_size=leaf_size, memory=None)
    assert A._engine.tree.depth >= 2  # the far field is really used
    pot, grad = A.evaluate(q, gradient=True, dipoles=d)
    exact, exact_grad = fmmsolve.direct(sources, targets, q, dipoles=d, kernel=kernel,
                                        wavenumber=k, gradient=True)
    assert pot.dtype == A.dtype
    errors = relative_l2_error(pot, exact), relative_l2_error(grad, exact_grad)
    assert errors[0] <= eps and errors[1] <= 10 * eps, errors
    return A


CUBE = point_cloud("uniform", 3000, 11)


@pytest.mark.parametrize("distribution, eps", [
    (d, e) for d in ("uniform", "clusters", "shell") for e in (1e-3, 1e-6)] + [
    pytest.param(d, e, marks=pytest.mark.expensive) for d in ("uniform", "shell")
    for e in (1e-7, 1e-9)])
def test_laplace_fmm_dipoles_meet_eps(distribution, eps, rng):
    sources = point_cloud("clusters" if distribution == "clusters" else "uniform", 4000, 12)
    targets = _shell(2000, 13) if distribution == "shell" else None
    leaf_size = 150 if eps < 1e-6 else None  # orders 11, 15: keep the tree at depth >= 2
    _fmm_check("laplace", None, eps, sources, targets, rng, leaf_size=leaf_size)
    _fmm_check("laplace", None, eps, sources, targets, rng, charges=False, leaf_size=leaf_size)


@pytest.mark.parametrize("kernel, k", [("helmholtz", 1.0), ("helmholtz", 5 + 1j),
                                       ("helmholtz", 10.0), ("modified_helmholtz", 1.0),
                                       ("modified_helmholtz", 10.0)])
def test_wave_fmm_dipoles_meet_eps_1e3(kernel, k, rng):
    _fmm_check(kernel, k, 1e-3, CUBE, None, rng)


@pytest.mark.expensive  # order 9 complex plans per level
@pytest.mark.parametrize("kernel, k", [("helmholtz", 1.0), ("helmholtz", 5 + 1j),
                                       ("helmholtz", 10.0), ("modified_helmholtz", 1.0),
                                       ("modified_helmholtz", 10.0)])
def test_wave_fmm_dipoles_meet_eps_1e6(kernel, k, rng):
    _fmm_check(kernel, k, 1e-6, CUBE, None, rng, leaf_size=150)


@pytest.mark.parametrize("kernel, k, eps", [
    ("helmholtz", 1 + 0.2j, 1e-3), ("modified_helmholtz", 1.0, 1e-3),
    ("modified_helmholtz", 10.0, 1e-3),
    # order 9: leaves of 386 points, as wide as level 2, beside source leaves, yet 2 away from
    # every source (not "far-only": their targets' distances tell)
    pytest.param("modified_helmholtz", 10.0, 1e-6, marks=pytest.mark.expensive)])
def test_wave_fmm_dipoles_far_targets(kernel, k, eps, rng):
    # the shell's root cube is 6.x wide: |k| w_2 stays inside the low-frequency bound for
    # k <= 1.5; a decaying kernel reaches the shell through boxes no wider than 1 / d
    _fmm_check(kernel, k, eps, CUBE, _shell(1500, 14), rng)


@pytest.mark.expensive  # order 15 plans per level: minutes each
@pytest.mark.parametrize("kernel, k", [("helmholtz", 5 + 1j), ("modified_helmholtz", 1.0)])
def test_wave_fmm_dipoles_meet_eps_1e9(kernel, k, rng):
    _fmm_check(kernel, k, 1e-9, CUBE, None, rng, leaf_size=150)


def test_operator_dipole_api(rng, tmp_path):
    x = point_cloud("uniform", 3000, 15)
    q, d = _densities("laplace", 3000, rng, m=2)
    plain = fmmsolve.FMMOperator(x, eps=1e-4, memory=None)
    with pytest.raises(ValueError, match="fit it with dipoles=True"):
        plain.evaluate(dipoles=d[:, 0])
    with pytest.raises(ValueError, match="eps must be at least 1e-09"):
        fmmsolve.FMMOperator(x, eps=5e-10, dipoles=True)
    A = fmmsolve.FMMOperator(x, eps=1e-4, dipoles=True, memory=None)
    assert A.dipoles and A.expansion_order > plain.expansion_order
    with pytest.raises(ValueError, match=r"dipoles must have shape \(3000, 3\)"):
        A.evaluate(dipoles=d[:, :, :2])
    with pytest.raises(ValueError, match="disagree"):
        A.evaluate(q, dipoles=d[:, 0])
    with pytest.raises(ValueError, match="give charges, dipoles or both"):
        A.evaluate()
    # columns in one pass equal one column at a time; complex dipoles split into two real passes
    both = A.evaluate(q, dipoles=d)
    for c in range(2):
        np.testing.assert_allclose(both[:, c], A.evaluate(q[:, c], dipoles=d[:, c]),
                                   rtol=1e-10, atol=1e-9)
    z = d[:, 0] + 1j * d[:, 1]
    np.testing.assert_allclose(A.evaluate(dipoles=z),
                               A.evaluate(dipoles=d[:, 0]) + 1j * A.evaluate(dipoles=d[:, 1]),
                               rtol=1e-10, atol=1e-9)
    # the dipole setting survives pickling and saving
    for copy in (pickle.loads(pickle.dumps(A)), fmmsolve.load(_saved(A, tmp_path))):
        assert copy.dipoles
        np.testing.assert_array_equal(copy.evaluate(dipoles=d[:, 0]), A.evaluate(dipoles=d[:, 0]))


def _saved(A, tmp_path):
    path = tmp_path / "dipoles.h5"
    A.save(path)
    return path


def test_float32_fmm_dipoles(rng):
    x = point_cloud("uniform", 3000, 16)
    d = rng.standard_normal((3000, 3))
    A = fmmsolve.FMMOperator(x.astype(np.float32), eps=1e-3, dipoles=True, dtype=np.float32,
                             memory=None)
    pot = A.evaluate(dipoles=d.astype(np.float32))
    assert pot.dtype == np.float32
    assert relative_l2_error(pot, fmmsolve.direct(x, None, dipoles=d)) <= 1e-3
