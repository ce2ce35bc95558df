"""The FFT M2L strategy (fmmsolve.operators.m2l.fft): its convolutions are the dense strategy's
translations to rounding, in batches of any size, with moment columns, in float32 and with
several columns; the Helmholtz FMM picks it for its high-frequency levels, and saved files keep
the choice."""

import numpy as np
import pytest

import fmmsolve
from component_kernels import three_laplace
from fmmsolve.operators import m2l
from fmmsolve.operators.m2l import fft
from fmmsolve.operators.plan import FFT_ABOVE_KW, compute_plan
from fmmsolve.testing import point_cloud, relative_l2_error

WAVE = [("laplace", None), ("helmholtz", 3.0 + 0.5j), ("helmholtz", 9.0),
        ("modified_helmholtz", 2.0)]


def _random_pairs(n_boxes, n_pairs, rng):
    """V-list-like pairs: random targets, sources and transfer vectors (the translations do
    not look at the geometry)."""
    targets = np.sort(rng.integers(0, n_boxes, n_pairs))
    return targets, rng.integers(0, n_boxes, n_pairs), rng.integers(0, 316, n_pairs)


@pytest.mark.parametrize("kernel, k", WAVE)
def test_fft_translations_equal_the_dense_ones(kernel, k):
    order = 5
    dtype = "<f8" if kernel != "helmholtz" else "<c16"
    dense = compute_plan(kernel, order, 1e-6, dtype, k, m2l_strategy="dense")
    plan = compute_plan(kernel, order, 1e-6, dtype, k, m2l_strategy="fft")
    assert plan.m2l_strategy == "fft" and plan.rank == plan.n_surface
    assert plan.m2l_data.spectra.shape == (316, fft.grid_size(order) ** 3)
    rng = np.random.default_rng(1)
    t, s, v = _random_pairs(40, 600, rng)
    multipole = rng.standard_normal((40, 2, plan.n_surface)).astype(dtype)
    if kernel == "helmholtz":
        multipole += 1j * rng.standard_normal(multipole.shape)
    out = {}
    for name, p in (("dense", dense), ("fft", plan)):
        out[name] = np.zeros_like(multipole)
        m2l.apply(m2l.schedule(t, s, v, m2l.CHUNK_BOXES, name), p, multipole, out[name])
    # rounding: the dense translations fold the check-to-equivalent map (condition ~1e5 at
    # order 5) in before the sum over pairs, the FFT applies it after; random multipoles
    assert relative_l2_error(out["fft"], out["dense"]) < 1e-9


def test_small_batches_give_the_same_products(monkeypatch):
    plan = compute_plan("helmholtz", 4, 1e-4, "<c16", 2.0, m2l_strategy="fft")
    rng = np.random.default_rng(2)
    t, s, v = _random_pairs(60, 900, rng)
    multipole = rng.standard_normal((60, 3, plan.n_surface)) + 0j
    sched = m2l.schedule(t, s, v, m2l.CHUNK_BOXES, "fft")
    whole = np.zeros_like(multipole)
    m2l.apply(sched, plan, multipole, whole)
    one_box = fft.grid_size(4) ** 3 * 3 * 16
    monkeypatch.setattr(fft, "BATCH_BYTES", 5 * one_box)  # a few boxes per batch
    batched = np.zeros_like(multipole)
    m2l.apply(sched, plan, multipole, batched)
    assert relative_l2_error(batched, whole) < 1e-14


def test_fmm_with_fft_in_float32_and_with_several_columns():
    x = point_cloud("clusters", 2000, seed=3).astype(np.float32)
    Q = np.random.default_rng(3).standard_normal((2000, 3)).astype(np.float32)
    A = fmmsolve.FMMOperator(x, eps=1e-3, m2l="fft", leaf_size=30, memory=None)
    assert A._engine.plan.m2l_data.spectra.dtype == np.complex64
    Y = A @ Q
    assert Y.dtype == np.float32
    exact = fmmsolve.direct(x.astype(np.float64), x.astype(np.float64), Q.astype(np.float64))
    assert relative_l2_error(Y, exact) <= 1e-3


def test_stokes_moments_move_in_the_frequency_domain():
    """The Stokes FMM's Laplace FMM shifts moment columns inside M2L: with fft as with dense."""
    x = point_cloud("uniform", 1500, seed=4)
    f = np.random.default_rng(4).standard_normal((1500, 3))
    out = {name: fmmsolve.FMMOperator(x, kernel="stokes", viscosity=1.0, eps=1e-4,
                                      expansion_order=5, leaf_size=20, m2l=name,
                                      memory=None) @ f.ravel()
           for name in ("dense", "fft")}
    assert relative_l2_error(out["fft"], out["dense"]) < 1e-11


def test_refusals():
    with pytest.raises(ValueError, match="scalar kernels only"):
        fft.precompute(None, 4, 1.05, 1.05, 1e-4, None, None, parities=(0, 1, 1, 1))
    with pytest.raises(ValueError, match="equal radii"):
        fft.precompute(None, 4, 1.05, 1.1, 1e-4, None, None)
    kernel = three_laplace()
    with pytest.raises(ValueError, match="scalar kernels only"):
        fmmsolve.FMMOperator(point_cloud("uniform", 3000, seed=1), kernel=kernel, eps=1e-3,
                             leaf_size=20, m2l="fft", memory=None)


def test_helmholtz_picks_fft_for_its_high_frequency_levels(tmp_path):
    x = point_cloud("uniform", 3000, seed=5)
    A = fmmsolve.FMMOperator(x, kernel="helmholtz", wavenumber=20.0, eps=1e-3, leaf_size=20,
                             memory=None)
    engine = A._engine
    widths = 2.0 * engine.tree.half_width / 2.0 ** np.arange(engine.tree.depth + 1)
    chosen = [plan.m2l_strategy for plan in engine.plans]
    assert chosen == ["fft" if 20.0 * w > FFT_ABOVE_KW else "svd" for w in widths]
    assert "svd" in chosen[2:] and "fft" in chosen[2:] and A.m2l == "svd"
    q = np.random.default_rng(5).standard_normal(3000) + 0j
    y = A @ q
    exact = fmmsolve.direct(x, x, q, kernel="helmholtz", wavenumber=20.0)
    assert relative_l2_error(y, exact) <= 1e-3
    A.save(tmp_path / "a.h5")
    B = fmmsolve.load(tmp_path / "a.h5")
    assert B.m2l == "svd" and [p.m2l_strategy for p in B._engine.plans] == chosen
    assert np.array_equal(B @ q, y)
    # another strategy asked for is kept on every level
    C = fmmsolve.FMMOperator(x, kernel="helmholtz", wavenumber=20.0, eps=1e-3, leaf_size=20,
                             m2l="dense", memory=None)
    assert {p.m2l_strategy for p in C._engine.plans} == {"dense"}
