"""The branch-free sin/cos and exp of the wave kernels' pair loops (fmmsolve.kernels._fastmath),
float64 and float32, against NumPy over the whole range their callers can give them, with the
bounds its docstring states."""

import numpy as np
import pytest

from fmmsolve._jit import jit
from fmmsolve.kernels._fastmath import (exp, exp_wp, expf, pow2, pow2f, sincos, sincos_wp,
                                        sincosf)


@jit
def _sincos_all(x, s, c, working_precision=False):
    """sincos (float64 whatever x) or sincos_wp (float32 for float32 x) of every x."""
    for i in range(x.shape[0]):
        s[i], c[i] = sincos_wp(x[i]) if working_precision else sincos(x[i])


@jit
def _exp_all(x, out, working_precision=False):
    for i in range(x.shape[0]):
        out[i] = exp_wp(x[i]) if working_precision else exp(x[i])


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


@pytest.mark.parametrize("limit", [1.0, 100.0, 3e4])
def test_float32_sincos_within_its_bound(limit):
    x = _sample(limit).astype(np.float32)
    s, c = np.empty_like(x), np.empty_like(x)
    _sincos_all(x, s, c, True)
    wide = x.astype(np.float64)
    bound = 2e-7 + 3e-8 * np.abs(wide)
    assert (np.abs(s - np.sin(wide)) <= bound).all() and (np.abs(c - np.cos(wide)) <= bound).all()


def test_float32_exp_within_its_bound_and_zero_below_its_range():
    x = np.concatenate([np.linspace(-100.0, 88.0, 2_000_001), np.linspace(-20.0, 0.0, 400_001),
                        [-87.0, 0.0, 88.0]]).astype(np.float32)
    out = np.empty_like(x)
    _exp_all(x, out, True)
    wide = x.astype(np.float64)
    inside = wide >= -87.0
    exact = np.exp(wide[inside])
    assert (np.abs(out[inside] - exact) <= 4e-7 * exact).all()
    assert (out[~inside] == 0).all() and np.isfinite(out).all()


def test_working_precision_versions_pick_by_argument_type():
    """Compiled and as plain Python, sincos_wp and exp_wp are the float32 functions for float32
    arguments and the float64 ones otherwise."""
    for f32, f64, wp in ((sincosf, sincos, sincos_wp), (expf, exp, exp_wp)):
        assert wp(np.float32(0.7)) == f32(np.float32(0.7)) and wp(0.7) == f64(0.7)
        plain = np.array(f32.py_func(np.float32(0.7)))
        assert np.allclose(plain, wp(np.float32(0.7)), rtol=1e-6)
    x32 = np.array([0.7], np.float32)
    s, c, e = np.empty(1, np.float32), np.empty(1, np.float32), np.empty(1, np.float32)
    _sincos_all(x32, s, c, True)
    _exp_all(x32, e, True)
    assert (s[0], c[0]) == sincosf(np.float32(0.7)) and e[0] == expf(np.float32(0.7))
    s64, c64, e64 = np.empty(1), np.empty(1), np.empty(1)
    _sincos_all(x32.astype(np.float64), s64, c64, True)
    _exp_all(x32.astype(np.float64), e64, True)
    assert (s64[0], c64[0]) == sincos(0.699999988079071) and e64[0] == exp(0.699999988079071)
    assert pow2f(np.float32(-126.0)) == np.float32(2.0**-126)
