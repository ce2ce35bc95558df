"""Geometry that once gave silently wrong numbers (issue 17, items 1, 2, 5 and 6): targets
clustered far below their sources, tight clusters inside wide leaves, coordinates near the float64
limit and float32 gradients at tiny scales. Each test failed before its fix; the numbers in the
docstrings are the errors measured then."""

import numpy as np
import pytest

import fmmsolve
from fmmsolve.testing import relative_l2_error


def _blob(rng, n_sources, n_targets, width):
    sources = rng.random((n_sources, 3))
    targets = np.array([0.3, 0.6, 0.45]) + width * rng.standard_normal((n_targets, 3))
    return sources, targets, rng.standard_normal(n_sources)


@pytest.mark.parametrize("width", [1e-5, 1e-7])
@pytest.mark.parametrize("eps", [1e-3, 1e-6])
def test_gradients_at_a_clustered_target_blob_meet_the_bound(rng, width, eps):
    """Targets in a tiny blob among uniform sources: boxes split for the targets alone reach
    depth 16-20. The gradient error was 1,000-23,000 eps (the leaves' L2L-refitted expansions);
    it must be within the documented 10 eps, and the potential within eps."""
    sources, targets, q = _blob(rng, 4000, 400, width)
    op = fmmsolve.FMMOperator(sources, targets, eps=eps, memory=None)
    assert op.tree["depth"] >= 12  # the deep target-only tree this test is about
    pot, grad = op.evaluate(q, gradient=True)
    exact_pot, exact_grad = fmmsolve.direct(sources, targets, q, gradient=True)
    assert relative_l2_error(pot, exact_pot) <= eps
    assert relative_l2_error(grad, exact_grad) <= 10 * eps


def test_gradients_of_few_sources_at_close_targets(rng):
    """The case property-based search shrank the defect to: 4 sources, 2 targets 1e-4 apart,
    leaf_size=1 (a gradient error of 0.9, one component of the wrong sign). Over 40 random
    draws the worst error, relative to the gradient field of |q| (the sum cancels at two
    points), was 5,600 eps; it must be within 10 eps."""
    eps, worst = 1e-3, 0.0
    for _ in range(40):
        sources, q = rng.random((4, 3)), rng.standard_normal(4)
        c = rng.random(3)
        targets = np.array([c, c + [0.0, 0.0, 1e-4]])
        op = fmmsolve.FMMOperator(sources, targets, eps=eps, leaf_size=1, memory=None)
        _, grad = op.evaluate(q, gradient=True)
        _, exact = fmmsolve.direct(sources, targets, q, gradient=True)
        r = targets[:, None, :] - sources[None, :, :]
        scale = np.abs(q) / (4 * np.pi * np.sum(r * r, axis=-1))  # |grad G| |q| per pair
        worst = max(worst, np.linalg.norm(grad - exact) / np.linalg.norm(scale.sum(axis=1)))
    assert worst <= 10 * eps, worst / eps


@pytest.mark.parametrize("spread, distance", [(1e-7, 1e4), (1e-10, 1e4), (1e-12, 1e12)])
def test_tight_cluster_beside_a_far_point_keeps_its_digits(rng, spread, distance):
    """500 points of width ``spread`` at the origin and one point at ``(distance, 0, 0)``. Local
    coordinates were taken from leaf centres thousands of times farther than the spread: errors
    2.3e-5, 8.1e-2 and 1.0 at eps 1e-6 while the direct sum is exact. Each leaf's frame is now
    the centre of its points."""
    x = np.vstack([spread * (rng.random((500, 3)) - 0.5), [[distance, 0.0, 0.0]]])
    q = rng.standard_normal(len(x))
    exact = fmmsolve.direct(x, x, q)
    op = fmmsolve.FMMOperator(x, eps=1e-6, memory=None)
    assert relative_l2_error(op @ q, exact) <= 1e-6
    field = fmmsolve.FMMField(x, q, eps=1e-6, memory=None)
    assert relative_l2_error(field.evaluate(x), exact) <= 1e-6


def test_tight_cluster_in_float32_keeps_its_digits(rng):
    """The same in float32 at eps 1e-4 (spread 1e-3, a point at 1e4): the leaf-centre frame
    left about three significant digits to tell the cluster's points apart."""
    x = np.vstack([1e-3 * (rng.random((400, 3)) - 0.5), [[1e4, 0.0, 0.0]]])
    q = rng.standard_normal(len(x))
    exact = fmmsolve.direct(x, x, q)
    op = fmmsolve.FMMOperator(x, eps=1e-4, dtype=np.float32, memory=None)
    assert relative_l2_error(op @ q, exact) <= 1e-4


@pytest.mark.parametrize("kernel, k", [("laplace", None), ("modified_helmholtz", 1.0),
                                       ("helmholtz", 1.0)])
def test_float32_gradients_at_tiny_scales_are_finite(rng, kernel, k):
    """500 points at scale 1e-12 in float32: the largest exact gradient (~1e27) fits in float32,
    but q / r^3, an intermediate of the pair gradient, did not, and ``direct`` and the FMM
    returned NaN at almost every target. Both must be finite and accurate."""
    x = (1e-12 * rng.random((500, 3))).astype(np.float32)
    q = rng.standard_normal(500).astype(np.float32)
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    exact_pot, exact_grad = fmmsolve.direct(x64, x64, q64, kernel=kernel, wavenumber=k,
                                            gradient=True)
    assert np.abs(exact_grad).max() < np.finfo(np.float32).max / 1e3  # representable
    pot, grad = fmmsolve.direct(x, x, q, kernel=kernel, wavenumber=k, gradient=True)
    assert relative_l2_error(grad, exact_grad) <= 1e-5
    op = fmmsolve.FMMOperator(x, kernel=kernel, wavenumber=k, eps=1e-4, dtype=np.float32,
                              memory=None)
    pot, grad = op.evaluate(q, gradient=True)
    assert relative_l2_error(pot, exact_pot) <= 1e-4
    assert relative_l2_error(grad, exact_grad) <= 1e-3
