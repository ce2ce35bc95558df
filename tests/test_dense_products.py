"""The fused stacked products (operators/dense.add_products) against their NumPy definition."""

import numpy as np
import pytest

from fmmsolve.operators.dense import add_products, rmul


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128"])
@pytest.mark.parametrize("m", [1, 3, 70])  # 70 columns: fewer boxes than blocks of rows
@pytest.mark.parametrize("two, scaled", [(False, False), (True, True), (True, False)])
def test_add_products_is_the_gather_multiply_add(dtype, m, two, scaled):
    rng = np.random.default_rng(m)

    def draw(*shape):
        a = rng.standard_normal(shape)
        return (a + 1j * rng.standard_normal(shape) if dtype == "complex128" else a).astype(dtype)

    x, out = draw(500, m, 12), draw(400, m, 9)
    first, second = (draw(7, 12), draw(9, 7)) if two else (draw(9, 12), None)
    x_rows = rng.integers(0, 500, 300)
    out_rows = rng.permutation(400)[:300]  # distinct: the blocks run in parallel
    scale = draw(300) if scaled else None
    expected = out.copy()
    y = rmul(x[x_rows], first)
    y = rmul(y, second) if two else y
    expected[out_rows] += (1 if scale is None else scale[:, None, None]) * y
    add_products(out, out_rows, x, x_rows, first, second, scale)
    tol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * np.abs(expected).max())


def test_add_products_takes_a_slice_and_nothing():
    x = np.arange(24.0).reshape(4, 2, 3)
    out = np.zeros((4, 2, 3))
    add_products(out, np.arange(4), x, slice(None), np.eye(3))
    np.testing.assert_array_equal(out, x)
    add_products(out, np.zeros(0, np.int64), x, np.zeros(0, np.int64), np.eye(3))
    np.testing.assert_array_equal(out, x)
