"""The direct sum against NumPy broadcasting: the oracle's own oracle."""

import numpy as np
import pytest

import fmmsolve
from fmmsolve.testing import point_cloud, relative_l2_error


def broadcast_laplace(sources, targets, charges):
    d = targets[:, None, :] - sources[None, :, :]  # (n_t, n_s, 3), y - x
    r = np.linalg.norm(d, axis=2)
    inv = np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)
    pot = inv @ charges / (4 * np.pi)
    grad = -np.einsum("ts,tsk->tk", inv**3 * charges[None, :], d) / (4 * np.pi)
    return pot, grad


@pytest.mark.parametrize("distribution", ["uniform", "clusters", "duplicates"])
def test_matches_broadcasting_float64(distribution, rng):
    src = point_cloud(distribution, 700, rng)
    tgt = np.concatenate([point_cloud("uniform", 300, rng), src[:50]])  # some coincide
    q = rng.standard_normal(len(src))
    pot, grad = fmmsolve.direct(src, tgt, q, gradient=True)
    ref_pot, ref_grad = broadcast_laplace(src, tgt, q)
    assert pot.dtype == np.float64 and pot.shape == (len(tgt),)
    assert grad.shape == (len(tgt), 3)
    assert relative_l2_error(pot, ref_pot) < 1e-13
    assert relative_l2_error(grad, ref_grad) < 1e-12
    assert relative_l2_error(fmmsolve.direct(src, tgt, q), ref_pot) < 1e-13


def test_self_interaction_skips_zero_distance(rng):
    src = point_cloud("duplicates", 500, rng)
    q = rng.standard_normal(len(src))
    pot = fmmsolve.direct(src, None, q)
    assert np.isfinite(pot).all()
    assert relative_l2_error(pot, broadcast_laplace(src, src, q)[0]) < 1e-13


def test_single_pair_value():
    pot, grad = fmmsolve.direct([[0.0, 0, 0]], [[2.0, 0, 0]], [3.0], gradient=True)
    assert pot[0] == pytest.approx(3.0 / (4 * np.pi * 2.0), rel=1e-15)
    np.testing.assert_allclose(grad[0], [-3.0 / (4 * np.pi * 4.0), 0, 0], rtol=1e-15)


def test_float32(rng):
    src = point_cloud("uniform", 2000, rng).astype(np.float32)
    tgt = point_cloud("sphere", 300, rng).astype(np.float32)
    q = rng.standard_normal(len(src)).astype(np.float32)
    pot, grad = fmmsolve.direct(src, tgt, q, gradient=True)
    assert pot.dtype == np.float32 and grad.dtype == np.float32
    ref_pot, ref_grad = broadcast_laplace(src.astype(float), tgt.astype(float), q.astype(float))
    assert relative_l2_error(pot, ref_pot) < 1e-5
    assert relative_l2_error(grad, ref_grad) < 1e-5
    # an explicit dtype overrides the inputs' dtype
    assert fmmsolve.direct(src, tgt, q, dtype=np.float64).dtype == np.float64


def test_many_columns(rng):
    src, tgt = point_cloud("uniform", 400, rng), point_cloud("uniform", 100, rng)
    q = rng.standard_normal((len(src), 3))
    pot, grad = fmmsolve.direct(src, tgt, q, gradient=True)
    assert pot.shape == (100, 3) and grad.shape == (100, 3, 3)
    for c in range(3):  # the same sums, by a different loop (rounding may differ)
        p, g = fmmsolve.direct(src, tgt, q[:, c], gradient=True)
        np.testing.assert_allclose(pot[:, c], p, rtol=1e-12, atol=1e-12 * np.abs(p).max())
        np.testing.assert_allclose(grad[:, c, :], g, rtol=1e-12, atol=1e-12 * np.abs(g).max())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sources=np.zeros((4, 2))), "sources must have shape"),
        (dict(targets=np.zeros(3)), "targets must have shape"),
        (dict(sources=np.zeros((0, 3)), charges=np.zeros(0)), "sources is empty"),
        (dict(charges=np.ones(5)), r"charges must have shape \(4,\)"),
        (dict(charges=np.array([1, 2, np.nan, 4.0])), "charges contains NaN"),
        (dict(charges=np.ones(4) * 1j), "charges is complex"),
        (dict(targets=np.array([[0, 0, np.inf]])), "targets contains NaN or infinite"),
        (dict(kernel="navier_stokes"), "unknown kernel 'navier_stokes'"),
        (dict(wavenumber=2.0), "wavenumber must be None"),
        (dict(dtype=np.int32), "dtype must be"),
        (dict(sources=np.array([["a", "b", "c"]] * 4)), "sources must be a real numeric"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = dict(sources=np.random.default_rng(0).random((4, 3)), targets=None,
                charges=np.ones(4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fmmsolve.direct(args.pop("sources"), args.pop("targets"), args.pop("charges"), **args)
