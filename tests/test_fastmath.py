"""The branch-free sin/cos and exp of the wave kernels' pair loops (fmmsolve.kernels._fastmath)
against NumPy over the whole range their callers can give them, with the bounds its docstring
states."""

import numpy as np
import pytest

from fmmsolve._jit import jit
from fmmsolve.kernels._fastmath import exp, pow2, sincos


@jit
def _sincos_all(x, s, c):
    for i in range(x.shape[0]):
        s[i], c[i] = sincos(x[i])


@jit
def _exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = exp(x[i])


def _sample(limit, n=400_001):
    rng = np.random.default_rng(int(limit))
    return np.concatenate([np.linspace(-limit, limit, n), rng.uniform(-limit, limit, n),
                           np.arange(-8, 9) * np.pi / 4, [0.0, -0.0, 1e-300, -1e-300]])


@pytest.mark.parametrize("limit", [1.0, 100.0, 1e3, 1e6])
def test_sincos_within_its_bound(limit):
    x = _sample(limit)
    s, c = np.empty_like(x), np.empty_like(x)
    _sincos_all(x, s, c)
    bound = 4e-16 + 7e-17 * np.abs(x)
    assert (np.abs(s - np.sin(x)) <= bound).all() and (np.abs(c - np.cos(x)) <= bound).all()


def test_sincos_of_float32_arguments_is_computed_in_float64():
    x = _sample(50.0).astype(np.float32)
    s, c = np.empty(len(x)), np.empty(len(x))
    _sincos_all(x, s, c)
    wide = x.astype(np.float64)
    assert np.abs(s - np.sin(wide)).max() <= 4e-15 and np.abs(c - np.cos(wide)).max() <= 4e-15


def test_exp_within_its_bound_and_zero_below_its_range():
    x = np.concatenate([np.linspace(-750.0, 709.0, 1_000_001), np.linspace(-40.0, 0.0, 400_001),
                        [-708.0, -708.0 - 1e-9, 0.0, 709.0, -1e-300]])
    out = np.empty_like(x)
    _exp_all(x, out)
    inside = x >= -708.0
    exact = np.exp(x[inside])
    assert (np.abs(out[inside] - exact) <= (2e-15 + 4e-17 * np.abs(x[inside])) * exact).all()
    assert (out[~inside] == 0).all() and np.isfinite(out).all()


def test_plain_python_versions_agree():
    """Under NUMBA_DISABLE_JIT the functions run as Python (pow2 included)."""
    for v in (-700.5, -3.25, 0.0, 2.0, 708.9):
        assert abs(exp.py_func(v) - np.exp(v)) <= 1e-14 * np.exp(v)
        s, c = sincos.py_func(v)
        assert abs(s - np.sin(v)) <= 1e-13 and abs(c - np.cos(v)) <= 1e-13
    assert pow2(-1022.0) == 2.0**-1022 and pow2(1023.0) == 2.0**1023
