"""Property-based tests: the FMM against ``fmmsolve.direct`` on random small point sets.

Hypothesis draws 1 to 500 sources (mostly fewer than 200) at scales 1e-8 to 1e8 with shifts up to
1e3 times the scale: uniform boxes, tight Gaussian clusters (relative widths down to 1e-6; 1e-2 in
float32, see below), planes and lines; targets that are the sources, others among them (some on
sources exactly), or apart from them by a few extents; charges, dipoles or both, one or two
columns; float64 (eps 1e-3, 1e-6) and float32 (eps 1e-3, 1e-4); leaf sizes down to 1 (deep adaptive
trees); every kernel. The reference is the direct sum in float64 of the same inputs (rounded to
float32 first for float32).

eps is checked relative to the field of the densities' magnitudes
(:func:`fmmsolve.testing.magnitude_field`), which cannot cancel:
``||phi_fmm - phi||_2 <= eps ||P||_2`` and ``||grad_fmm - grad||_2 <= GRADIENT_BOUND eps
||D||_2`` over all targets and columns.

Wavenumbers: k is kappa over the extent of the cloud, set exactly to ``c / H`` with ``H`` the
root cube's half-width and ``c = kappa / 2`` from a small set, because the wave kernels need
a plan per tree level, at ``k h_l = c / 2^l``: with a fixed c, examples share their plans.
Even so each plan with M2L costs 1 to 25 s at orders 4 to 7, and up to a minute and 100 MB at
order 9, so the default wave-kernel tests are bounded (see ``WAVE_C``); an ``expensive`` test
(``FMMSOLVE_EXPENSIVE_TESTS=1``) draws them without the bounds.

float32 cases whose closest distinct points are nearer than 1e-4 of the root cube's edge are
discarded with ``assume`` (see ``FLOAT32_RESOLUTION``); so are float32 cases whose exact
result does not fit in float32.

The example budget is fixed (``MAX_EXAMPLES``; ``derandomize=True``: the same examples on
every run). Measured on 2 shared cores, in the README's test run from cold caches (2026-12-04):
Laplace 50 s for 300 examples, almost all of it running them, Helmholtz 9 s, modified Helmholtz
5 s. The default run draws 100 Laplace examples; the slow tier (``pytest -m slow``) draws 300.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

import fmmsolve
from fmmsolve.accuracy import order_for_eps
from fmmsolve.operators import surfaces
from fmmsolve.testing import magnitude_field

# The documented gradient bound for arbitrary configurations, in units of eps (10 eps holds
# with the targets among or near the sources; targets apart, deep trees and dipoles need more
# room).
GRADIENT_BOUND = 100

# Examples per test: the module within two minutes on 2 cores (see the module docstring).
MAX_EXAMPLES = {"laplace": 100, "laplace_slow": 300, "helmholtz": 20, "modified_helmholtz": 15,
                "expensive": 40}

EPS = {np.float64: (1e-3, 1e-6), np.float32: (1e-3, 1e-4)}

# c = k H (k times the root half-width; about kappa / 2 for k = kappa / extent). The default
# wave-kernel tests keep one c per kernel (complex for Helmholtz: the general case of its
# arithmetic; real wavenumbers are drawn by the expensive test and tested in
# tests/test_fmm_wave.py), trees of depth 2 or 3 (shallower ones sum everything directly;
# deeper ones need a plan per level), and, for dipoles in float64, eps 1e-3 only (1e-6 takes
# order 9). That is at most 16 plans with M2L (2 values of c, orders 4 to 7, levels 2 and 3)
# per run, in a cache of this module's own. The expensive test lifts the three bounds
# (tests/test_dipoles.py also leaves order-9 wave plans to FMMSOLVE_EXPENSIVE_TESTS=1).
WAVE_C = {"helmholtz": (1.0 + 0.3j,), "modified_helmholtz": (2.0,)}
WAVE_C_EXPENSIVE = {"helmholtz": (0.25, 1.0, 1.0 + 0.3j), "modified_helmholtz": (0.25, 2.0)}
WAVE_MAX_DEPTH = 3

# float32 draws keep distinct points at least this fraction of the root cube's edge apart: the
# float32 inputs themselves hold about 7 digits of the cloud's offset, and eps >= 1e-4 must
# stay above what rounding the input alone changes.
FLOAT32_RESOLUTION = 1e-4


@pytest.fixture(scope="module")
def wave_plans(tmp_path_factory):
    """A plan cache for the wave kernels' per-level plans, removed afterwards (they take
    hundreds of MB: not for the user's cache)."""
    path = tmp_path_factory.mktemp("wave_plans")
    yield str(path)
    shutil.rmtree(path, ignore_errors=True)


def _settings(budget):
    return settings(max_examples=MAX_EXAMPLES[budget], deadline=None, derandomize=True,
                    database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ---- geometry ------------------------------------------------------------------------------

def _shape(kind, n, rng, widths, centres):
    """``n`` points of a unit-extent shape; ``widths``/``centres`` describe the clusters."""
    if kind == "uniform":
        return rng.random((n, 3))
    if kind == "clusters":
        which = rng.integers(0, len(widths), n)
        return centres[which] + widths[which, None] * rng.standard_normal((n, 3))
    if kind == "plane":  # the z = 0 plane: boxes flat along one axis
        return np.column_stack([rng.random((n, 2)), np.zeros(n)])
    if kind == "tilted plane":
        uv = rng.random((n, 2))
        return uv[:, :1] * [1.0, 0.3, 0.6] + uv[:, 1:] * [-0.2, 1.0, 0.4]
    if kind == "line":
        return rng.random((n, 1)) * rng.standard_normal(3)
    raise AssertionError(kind)


@st.composite
def geometries(draw, dtype):
    """Sources, targets (or None) and a description of how they were drawn."""
    n = draw(st.integers(1, 60) | st.integers(1, 200) | st.integers(1, 500), label="n")
    kind = draw(st.sampled_from(["uniform", "clusters", "plane", "tilted plane", "line"]),
                label="distribution")
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    widths = centres = None
    if kind == "clusters":
        n_clusters = draw(st.integers(1, 4), label="clusters")
        # float32 resolves points to about 1e-4 of a leaf: narrower clusters are outside it
        lowest = -6.0 if dtype == np.float64 else -2.0
        widths = 10.0 ** np.array(draw(st.lists(st.floats(lowest, -1.0), min_size=n_clusters,
                                                max_size=n_clusters), label="log10 widths"))
        centres = rng.random((n_clusters, 3))
    targets_kind = draw(st.sampled_from(["sources", "among", "apart"]), label="targets")
    m = 0 if targets_kind == "sources" else draw(st.integers(1, 300), label="n targets")
    points = _shape(kind, n + m, rng, widths, centres)
    src, tgt = points[:n], points[n:]
    if targets_kind == "among" and draw(st.booleans(), label="targets on sources"):
        on = rng.random(m) < 0.3
        tgt[on] = src[rng.integers(0, n, on.sum())]
    elif targets_kind == "apart":
        d = rng.standard_normal(3)
        tgt = tgt + d / np.linalg.norm(d) * draw(st.floats(2.0, 5.0), label="apart by")
    scale = 10.0 ** draw(st.floats(-8.0, 8.0), label="log10 scale")
    log_shift = draw(st.none() | st.floats(-1.0, 3.0), label="log10 shift")
    shift = np.zeros(3) if log_shift is None else \
        rng.uniform(-1, 1, 3) * 10.0 ** log_shift
    src = src * scale + shift * scale
    tgt = None if targets_kind == "sources" else tgt * scale + shift * scale
    # float32 problems are given in float32: the reference sums the same rounded points
    src = src.astype(dtype).astype(np.float64)
    tgt = None if tgt is None else tgt.astype(dtype).astype(np.float64)
    params = {"n": n, "distribution": kind, "targets": targets_kind, "n_targets": m or n,
              "scale": scale, "shift": log_shift, "dtype": np.dtype(dtype).name}
    if widths is not None:
        params["cluster widths"] = widths.tolist()
    return src, tgt, params


def _closest_distinct(points):
    """Smallest distance between two different points (inf if there are none)."""
    unique = np.unique(points, axis=0)
    if len(unique) < 2:
        return np.inf
    return float(cKDTree(unique).query(unique, k=2)[0][:, 1].min())


def _root_half_width(src, tgt):
    """The half-width H of the root cube the FMM builds over these points."""
    return fmmsolve.build_octree(src, tgt, leaf_size=10 ** 6).half_width


def _wavenumber(c, half_width):
    """A k with ``k * half_width == c`` exactly in float64 (per component), where one exists
    (else the nearest): the engine's plan of level l is at ``k * (H / 2^l)``."""
    def part(c):
        if c == 0:
            return 0.0
        k0 = c / half_width
        candidates = [k0 * (1 + i * 2.0 ** -52) for i in range(-4, 5)]
        return min(candidates, key=lambda k: (abs(k * half_width - c), abs(k - k0)))
    return part(c.real) if isinstance(c, float) else complex(part(c.real), part(c.imag))


# ---- the property --------------------------------------------------------------------------

def _depth(src, tgt, eps, dipoles, leaf_size):
    """Depth of the tree the FMM builds (its default leaf size: about one surface of points)."""
    if leaf_size is None:
        order = order_for_eps(eps, dipoles)
        leaf_size = surfaces.default_leaf_size(order)
    return fmmsolve.build_octree(src, tgt, leaf_size=leaf_size).depth


@st.composite
def problems(draw, kernel, expensive=False):
    """``(sources, targets, charges, dipoles, params)``; ``params`` says how they were drawn
    and holds the FMM's arguments. The default wave-kernel problems are bounded as the
    comment at ``WAVE_C`` says; ``expensive`` lifts the bounds."""
    bounded = kernel != "laplace" and not expensive
    dtype = draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    src, tgt, params = draw(geometries(dtype))
    n = len(src)
    every = src if tgt is None else np.vstack([src, tgt])
    half_width = _root_half_width(src, tgt)
    if dtype == np.float32:  # outside float32's documented resolution: see module docstring
        assume(_closest_distinct(every) >= FLOAT32_RESOLUTION * 2 * half_width)
    density = draw(st.sampled_from(["charges", "dipoles", "both"]), label="densities")
    dipoles = density != "charges"
    eps = draw(st.sampled_from(EPS[dtype][:1] if bounded and dipoles and dtype == np.float64
                               else EPS[dtype]), label="eps")
    leaf_size = draw(st.sampled_from([1, 4, 16, None]), label="leaf_size")
    if bounded:  # depth 2 at least: shallower trees sum everything directly
        assume(2 <= _depth(src, tgt, eps, dipoles, leaf_size) <= WAVE_MAX_DEPTH)
    wavenumber = None
    if kernel != "laplace":
        c = draw(st.sampled_from((WAVE_C_EXPENSIVE if expensive else WAVE_C)[kernel]),
                 label="k H")
        wavenumber = _wavenumber(c, half_width)
        params["k H"] = c
    columns = draw(st.sampled_from([None, 2]), label="columns")
    complex_densities = kernel == "helmholtz" and draw(st.booleans(), label="complex")
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1), label="density seed"))

    def normal(shape):
        x = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if complex_densities
                                          else 0)
        rounded = np.result_type(dtype, np.complex64) if complex_densities else dtype
        return x.astype(rounded).astype(x.dtype)  # rounded like the points

    cols = () if columns is None else (columns,)
    q = normal((n, *cols)) if density != "dipoles" else None
    d = normal((n, *cols, 3)) if dipoles else None
    params.update(kernel=kernel, wavenumber=wavenumber, eps=eps, densities=density,
                  columns=columns, complex=complex_densities, leaf_size=leaf_size)
    return src, tgt, q, d, params


def _check(src, tgt, q, d, params, memory="default"):
    kernel, k, eps = params["kernel"], params["wavenumber"], params["eps"]
    dtype = np.dtype(params["dtype"]).type
    exact, exact_grad = fmmsolve.direct(src, tgt, q, dipoles=d, kernel=kernel, wavenumber=k,
                                        gradient=True, dtype=np.float64)
    if dtype == np.float32:  # a result float32 cannot hold cannot be asked of it
        assume(np.all(np.abs(exact_grad) < 0.01 * np.finfo(np.float32).max))
    P, D = magnitude_field(src, tgt, q, d, kernel=kernel, wavenumber=k, gradient=True)
    A = fmmsolve.FMMOperator(src, tgt, kernel=kernel, wavenumber=k, eps=eps,
                             dipoles=d is not None, leaf_size=params["leaf_size"], dtype=dtype,
                             memory=memory)
    pot, grad = A.evaluate(q, gradient=True, dipoles=d)
    assert pot.shape == exact.shape and grad.shape == exact_grad.shape
    pot_err = np.linalg.norm(pot - exact)
    grad_err = np.linalg.norm(grad - exact_grad)
    pot_scale, grad_scale = eps * np.linalg.norm(P), GRADIENT_BOUND * eps * np.linalg.norm(D)
    described = f"{params}, depth {A.tree['depth']}, order {A.expansion_order}"
    assert pot_err <= pot_scale, \
        f"potential error {pot_err / pot_scale:.3g} times eps ||P|| ({described})"
    assert grad_err <= grad_scale, \
        f"gradient error {grad_err / grad_scale:.3g} times {GRADIENT_BOUND} eps ||D|| " \
        f"({described})"


@_settings("laplace")
@given(problem=problems("laplace"))
def test_laplace_fmm_matches_direct_on_random_point_sets(problem):
    _check(*problem)


@pytest.mark.slow
@_settings("laplace_slow")
@given(problem=problems("laplace"))
def test_laplace_fmm_matches_direct_on_more_random_point_sets(problem):
    _check(*problem)


@_settings("helmholtz")
@given(problem=problems("helmholtz"))
def test_helmholtz_fmm_matches_direct_on_random_point_sets(wave_plans, problem):
    _check(*problem, memory=wave_plans)


@_settings("modified_helmholtz")
@given(problem=problems("modified_helmholtz"))
def test_modified_helmholtz_fmm_matches_direct_on_random_point_sets(wave_plans, problem):
    _check(*problem, memory=wave_plans)


@pytest.mark.expensive  # deep trees and order 9: hundreds of plans, tens of minutes
@_settings("expensive")
@given(problem=st.sampled_from(["helmholtz", "modified_helmholtz"]).flatmap(
    lambda kernel: problems(kernel, expensive=True)))
def test_wave_fmm_matches_direct_on_deep_trees_and_high_orders(wave_plans, problem):
    _check(*problem, memory=wave_plans)


# ---- the magnitude field itself ------------------------------------------------------------

KERNELS = [("laplace", None), ("helmholtz", 2.0), ("helmholtz", 1.5 + 0.7j),
           ("modified_helmholtz", 3.0)]


def test_magnitude_field_of_positive_laplace_charges_is_the_potential(rng):
    x, y = rng.random((200, 3)), rng.random((50, 3))
    y[:5] = x[:5]  # zero-distance pairs contribute nothing to either
    q = rng.random(200)
    (P,) = magnitude_field(x, y, q)
    assert np.allclose(P, fmmsolve.direct(x, y, q), rtol=1e-12, atol=0)
    (P,) = magnitude_field(x, None, q)
    assert np.allclose(P, fmmsolve.direct(x, None, q), rtol=1e-12, atol=0)


@pytest.mark.parametrize("kernel, k", KERNELS)
def test_magnitude_field_of_one_pair_is_the_norm_of_each_derivative(kernel, k, rng):
    """One source and one target: P and D are |G|, |grad G|, |grad_x G| and ||Hess G||_2,
    checked against the direct sum and central differences of its gradient."""
    x, y = rng.random((1, 3)), rng.random((1, 3)) + 0.5
    one = np.ones(1)
    pot, grad = fmmsolve.direct(x, y, one, kernel=kernel, wavenumber=k, gradient=True)
    P, D = magnitude_field(x, y, one, kernel=kernel, wavenumber=k, gradient=True)
    assert np.isclose(P[0], abs(pot[0]), rtol=1e-12) and \
        np.isclose(D[0], np.linalg.norm(grad[0]), rtol=1e-12)
    # a unit dipole along y - x: |grad_x G . d| is |grad_x G|
    r = (y - x) / np.linalg.norm(y - x)
    pot = fmmsolve.direct(x, y, dipoles=r, kernel=kernel, wavenumber=k)
    P, D = magnitude_field(x, y, dipoles=r, kernel=kernel, wavenumber=k, gradient=True)
    assert np.isclose(P[0], abs(pot[0]), rtol=1e-12)
    # Hess G by central differences of grad_y G; the dipole's D is its 2-norm
    h = 1e-5
    hess = np.stack([(fmmsolve.direct(x, y + h * e, one, kernel=kernel, wavenumber=k,
                                      gradient=True)[1][0]
                      - fmmsolve.direct(x, y - h * e, one, kernel=kernel, wavenumber=k,
                                        gradient=True)[1][0]) / (2 * h) for e in np.eye(3)])
    assert np.isclose(D[0], np.linalg.norm(hess, 2), rtol=1e-6)


def test_magnitude_field_sums_columns_and_dipoles_separately(rng):
    x, y = rng.random((30, 3)), rng.random((7, 3)) + 2
    q, d = rng.standard_normal((30, 2)), rng.standard_normal((30, 2, 3))
    P, D = magnitude_field(x, y, q, d, kernel="helmholtz", wavenumber=1.0, gradient=True)
    assert P.shape == D.shape == (7, 2)
    for j in range(2):
        Pj, Dj = magnitude_field(x, y, q[:, j], d[:, j], kernel="helmholtz", wavenumber=1.0,
                                 gradient=True)
        Pq, Dq = magnitude_field(x, y, q[:, j], kernel="helmholtz", wavenumber=1.0,
                                 gradient=True)
        Pd, Dd = magnitude_field(x, y, dipoles=d[:, j], kernel="helmholtz", wavenumber=1.0,
                                 gradient=True)
        assert np.allclose(P[:, j], Pj) and np.allclose(Pj, Pq + Pd)
        assert np.allclose(D[:, j], Dj) and np.allclose(Dj, Dq + Dd)
