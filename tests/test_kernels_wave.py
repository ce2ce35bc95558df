"""The Helmholtz and modified Helmholtz kernels against NumPy oracles: block functions, the
direct sum, gradients, zero-distance pairs, precision and wavenumber validation."""

import numpy as np
import pytest

import fmmsolve
from fmmsolve.kernels import get_kernel

CASES = [("helmholtz", 1.0), ("helmholtz", 5 + 1j), ("helmholtz", 10.0), ("helmholtz", 0.3j),
         ("modified_helmholtz", 0.5), ("modified_helmholtz", 7.0)]


def oracle(kernel, k, sources, targets, charges):
    """Potential and gradient, (n_t, m) and (n_t, m, 3), by dense NumPy broadcasting."""
    d = targets[:, None, :] - sources[None, :, :]
    r = np.sqrt(np.sum(d * d, axis=-1))
    safe = np.where(r > 0, r, 1.0)
    if kernel == "helmholtz":
        g = np.exp(1j * k * safe) / (4 * np.pi * safe)
        dg = g * (1j * k * safe - 1) / safe  # dG/dr
    else:
        g = np.exp(-k * safe) / (4 * np.pi * safe)
        dg = -g * (1 + k * safe) / safe
    g, dg = np.where(r > 0, g, 0), np.where(r > 0, dg, 0)
    pot = g @ charges
    grad = np.einsum("ts,tsk,sm->tmk", dg / safe, d, charges)
    return pot, grad


def _problem(rng, kernel, n_s=300, n_t=200, m=1):
    sources = rng.random((n_s, 3))
    targets = np.vstack([rng.random((n_t - 5, 3)), sources[:5]])  # 5 zero-distance pairs
    charges = rng.standard_normal((n_s, m))
    if kernel == "helmholtz":
        charges = charges + 1j * rng.standard_normal((n_s, m))
    return sources, targets, charges


@pytest.mark.parametrize("kernel, k", CASES)
@pytest.mark.parametrize("m", [1, 3])
def test_direct_sum_matches_dense_oracle(kernel, k, m, rng):
    sources, targets, charges = _problem(rng, kernel, m=m)
    pot, grad = fmmsolve.direct(sources, targets, charges, kernel=kernel, wavenumber=k,
                                gradient=True)
    ref_pot, ref_grad = oracle(kernel, k, sources, targets, charges)
    assert pot.dtype == (np.complex128 if kernel == "helmholtz" else np.float64)
    assert np.linalg.norm(pot - ref_pot) <= 1e-13 * np.linalg.norm(ref_pot)
    assert np.linalg.norm(grad - ref_grad) <= 1e-13 * np.linalg.norm(ref_grad)
    alone = fmmsolve.direct(sources, targets, charges, kernel=kernel, wavenumber=k)
    # rounding is relative to the terms, not to a sum that cancels (seen: 1.1e-13 relative
    # on an entry 1000x below the largest)
    np.testing.assert_allclose(alone, pot, rtol=1e-13, atol=1e-13 * np.abs(pot).max())


@pytest.mark.parametrize("kernel, k", CASES[1:2] + CASES[4:5])
@pytest.mark.parametrize("m", [1, 2])
def test_float32_is_computed_in_float32(kernel, k, m, rng):
    sources, targets, charges = _problem(rng, kernel, m=m)
    pot, grad = fmmsolve.direct(sources, targets, charges, kernel=kernel, wavenumber=k,
                                gradient=True, dtype=np.float32)
    assert pot.dtype == (np.complex64 if kernel == "helmholtz" else np.float32)
    ref_pot, ref_grad = oracle(kernel, k, sources, targets, charges)
    assert np.linalg.norm(pot - ref_pot) <= 1e-5 * np.linalg.norm(ref_pot)
    assert np.linalg.norm(grad - ref_grad) <= 1e-5 * np.linalg.norm(ref_grad)


@pytest.mark.parametrize("kernel, k", CASES)
def test_matrix_is_the_kernel_with_a_zero_diagonal(kernel, k, rng):
    sources, _, charges = _problem(rng, kernel)
    kern = get_kernel(kernel)
    dense = kern.matrix(sources, sources, kern.check_wavenumber(k))
    assert np.all(np.diag(dense) == 0)
    ref, _ = oracle(kernel, k, sources, sources, charges)
    np.testing.assert_allclose(dense @ charges, ref, rtol=1e-12)


def test_gradient_is_the_derivative_of_the_potential(rng):
    # central differences in the target: an oracle independent of the analytic formula
    sources, charges = rng.random((50, 3)), rng.standard_normal(50) + 1j * rng.standard_normal(50)
    y, h = np.array([[1.7, -0.4, 0.9]]), 1e-5
    _, grad = fmmsolve.direct(sources, y, charges, kernel="helmholtz", wavenumber=3 + 0.5j,
                              gradient=True)
    for axis in range(3):
        step = np.zeros((1, 3))
        step[0, axis] = h
        k = 3 + 0.5j
        plus = fmmsolve.direct(sources, y + step, charges, kernel="helmholtz", wavenumber=k)
        minus = fmmsolve.direct(sources, y - step, charges, kernel="helmholtz", wavenumber=k)
        np.testing.assert_allclose(grad[0, axis], (plus - minus)[0] / (2 * h), rtol=1e-7)


def test_small_wavenumber_tends_to_laplace(rng):
    sources, targets, charges = _problem(rng, "modified_helmholtz")
    lap = fmmsolve.direct(sources, targets, charges)
    for kernel in ("helmholtz", "modified_helmholtz"):
        near = fmmsolve.direct(sources, targets, charges, kernel=kernel, wavenumber=1e-9)
        np.testing.assert_allclose(near.real if kernel == "helmholtz" else near, lap, rtol=1e-7)


@pytest.mark.parametrize("kernel, k, match", [
    ("helmholtz", None, "needs a wavenumber"),
    ("helmholtz", 0, "needs a wavenumber k != 0"),
    ("helmholtz", 1 - 1j, "Im k >= 0"),
    ("helmholtz", np.nan, "needs a wavenumber"),
    ("helmholtz", "1", "needs a wavenumber"),
    ("modified_helmholtz", None, "real wavenumber k > 0"),
    ("modified_helmholtz", -1.0, "real wavenumber k > 0"),
    ("modified_helmholtz", 1j, "real wavenumber k > 0"),
    ("modified_helmholtz", True, "real wavenumber k > 0"),
])
def test_bad_wavenumbers_are_refused(kernel, k, match):
    x = np.random.default_rng(0).random((4, 3))
    with pytest.raises(ValueError, match=match):
        fmmsolve.direct(x, None, np.ones(4), kernel=kernel, wavenumber=k)


def test_complex_charges_need_a_complex_kernel():
    x = np.random.default_rng(0).random((4, 3))
    with pytest.raises(ValueError, match="charges is complex"):
        fmmsolve.direct(x, None, np.ones(4) * 1j, kernel="modified_helmholtz", wavenumber=1.0)


@pytest.mark.parametrize("kernel, k", [("helmholtz", 1.0), ("modified_helmholtz", 1.0)])
def test_fmm_operator_matches_the_direct_sum(kernel, k):
    # (the accuracy grid is tests/test_fmm_wave.py)
    x = np.random.default_rng(0).random((1000, 3))
    q = np.random.default_rng(1).standard_normal(1000)
    A = fmmsolve.FMMOperator(x, kernel=kernel, wavenumber=k, eps=1e-3, leaf_size=40,
                             memory=None)
    assert A.tree["depth"] >= 2
    exact = fmmsolve.direct(x, None, q, kernel=kernel, wavenumber=k)
    assert np.linalg.norm(A @ q - exact) <= 1e-3 * np.linalg.norm(exact)
