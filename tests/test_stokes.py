"""The Stokeslet kernel: its direct sums (velocity, velocity gradient, pressure; float64 and
float32; several columns) against the Oseen tensor written out in NumPy, the viscosity, and
the refusals (bad viscosity, options that do not apply, FMMField and the estimators). The FMM
is tested in test_stokes_fmm.py.
"""

import numpy as np
import pytest

import fmmsolve
from fmmsolve.estimators import PotentialTransformer
from fmmsolve.kernels import stokes
from fmmsolve.kernels.pair import check_pair

MU = 0.7


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def oseen(x, y, f, mu):
    """u (n_t, 3), grad u (n_t, 3, 3) [i, a, c] = d u_a / d y_c and the pressure (n_t,) of
    forces f (n_s, 3), from the formulas (float64 NumPy, zero-distance pairs skipped)."""
    d = y[:, None, :] - x[None, :, :]
    r = np.linalg.norm(d, axis=2)
    live = r > 0
    inv_r = np.divide(1.0, r, out=np.zeros_like(r), where=live)
    dot = np.einsum("ijk,jk->ij", d, f)
    u = (np.einsum("ij,jk->ik", inv_r, f) + np.einsum("ij,ijk->ik", dot * inv_r ** 3, d))
    inv_r3, inv_r5 = inv_r ** 3, inv_r ** 5
    grad = (-np.einsum("ij,ja,ijc->iac", inv_r3, f, d)
            + np.einsum("ij,ac->iac", dot * inv_r3, np.eye(3))
            + np.einsum("ij,ija,jc->iac", inv_r3, d, f)
            - 3 * np.einsum("ij,ija,ijc->iac", dot * inv_r5, d, d))
    p = np.einsum("ij,ij->i", dot, inv_r3) / (4 * np.pi)
    return u / (8 * np.pi * mu), grad / (8 * np.pi * mu), p


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    x = rng.random((300, 3))
    y = np.concatenate([rng.random((150, 3)) * 2 - 0.5, x[:20]])  # some targets are sources
    return x, y, rng.standard_normal((300, 3))


@pytest.mark.parametrize("columns", [None, 1, 3])
def test_direct_sum_is_the_oseen_tensor(small, columns):
    x, y, f = small
    u_ref, g_ref, p_ref = oseen(x, y, f, MU)
    q = f if columns is None else np.repeat(f[:, None, :], columns, axis=1) * \
        np.arange(1, columns + 1)[None, :, None]
    u, g, p = fmmsolve.direct(x, y, q, kernel="stokes", viscosity=MU, gradient=True,
                              pressure=True)
    assert u.shape == (len(y), *(() if columns is None else (columns,)), 3)
    assert g.shape == (*u.shape, 3) and p.shape == u.shape[:-1]
    # column c holds (c + 1) f: each one is checked
    for c in [None] if columns is None else range(columns):
        uc, gc, pc = (u, g, p) if c is None else (u[:, c] / (c + 1), g[:, c] / (c + 1),
                                                  p[:, c] / (c + 1))
        assert _rel(uc, u_ref) < 1e-13 and _rel(gc, g_ref) < 1e-13 and _rel(pc, p_ref) < 1e-13
    alone = fmmsolve.direct(x, y, q, kernel="stokes", viscosity=MU)
    assert _rel(alone, fmmsolve.direct(x, y, q, kernel="stokes", viscosity=MU,
                                       gradient=True)[0]) < 1e-14


def test_pair_function_passes_the_registration_checks():
    """Values, derivatives, reciprocity and parities (1, 2, 4): what register_kernel checks
    of a user's pair function, and the built-in kernel skips at import."""
    check_pair("stokes", stokes.pair, 3, (1, 2, 4), np.float64, 0.0)
    with pytest.raises(ValueError, match="does not transform as parities"):
        check_pair("stokes", stokes.pair, 3, (0, 0, 0), np.float64, 0.0)
    assert fmmsolve.get_kernel("stokes") is stokes.STOKES and stokes.STOKES.components == 3


def test_direct_sum_in_float32(small):
    x, y, f = small
    u_ref, g_ref, _ = oseen(x, y, f, MU)
    u, g = fmmsolve.direct(x.astype(np.float32), y.astype(np.float32), f.astype(np.float32),
                           kernel="stokes", viscosity=MU, gradient=True)
    assert u.dtype == np.float32 and g.dtype == np.float32
    assert _rel(u, u_ref) < 1e-5 and _rel(g, g_ref) < 1e-5


@pytest.mark.parametrize("scale", [1e-12, 1e8])
def test_float32_at_tiny_and_huge_scales_stays_finite_and_accurate(small, scale):
    """Unit vectors times powers of 1 / r: at r ~ 1e-13 the velocity (1e13) and its gradient
    (1e26) fit in float32, where 1 / r^3 (1e39) would not."""
    x, y, f = small
    x, y = x * scale, y * scale
    u_ref, g_ref, _ = oseen(x, y, f, MU)
    for columns in (f, np.stack([f, -f], axis=1)):  # the one- and several-column loops
        u, g = fmmsolve.direct(x.astype(np.float32), y.astype(np.float32),
                               columns.astype(np.float32), kernel="stokes", viscosity=MU,
                               gradient=True)
        u1 = fmmsolve.direct(x.astype(np.float32), y.astype(np.float32),
                             columns.astype(np.float32), kernel="stokes", viscosity=MU)
        assert np.isfinite(u).all() and np.isfinite(g).all() and np.isfinite(u1).all()
        if columns.ndim == 3:
            u, g, u1 = u[:, 0], g[:, 0], u1[:, 0]
        assert _rel(u, u_ref) < 1e-5 and _rel(g, g_ref) < 1e-5 and _rel(u1, u_ref) < 1e-5


def test_gradient_is_the_derivative_of_the_velocity(small):
    x, y, f = small
    y = y[:40] + 3.0  # away from the sources: a smooth field
    g = fmmsolve.direct(x, y, f, kernel="stokes", viscosity=MU, gradient=True)[1]
    h = 1e-5
    for c in range(3):
        step = np.eye(3)[c] * h
        slope = (fmmsolve.direct(x, y + step, f, kernel="stokes", viscosity=MU)
                 - fmmsolve.direct(x, y - step, f, kernel="stokes", viscosity=MU)) / (2 * h)
        assert _rel(g[:, :, c], slope) < 1e-7


def test_stokeslet_is_divergence_free_and_its_velocity_is_1_over_mu(small):
    x, y, f = small
    u1, g1 = fmmsolve.direct(x, y + 3.0, f, kernel="stokes", viscosity=1.0, gradient=True)
    u2 = fmmsolve.direct(x, y + 3.0, f, kernel="stokes", viscosity=2.5)
    assert np.allclose(u2 * 2.5, u1, rtol=1e-14, atol=0)
    divergence = np.trace(g1, axis1=1, axis2=2)
    assert np.abs(divergence).max() < 1e-13 * np.abs(g1).max()


def test_field_and_estimators_refuse_it():
    x = np.random.default_rng(0).random((50, 3))
    with pytest.raises(ValueError, match="takes scalar kernels; the 'stokes' kernel has 3"):
        fmmsolve.FMMField(x, np.ones((50, 3)), kernel="stokes")
    with pytest.raises(ValueError, match="takes scalar kernels; the 'stokes' kernel has 3"):
        PotentialTransformer(kernel="stokes").fit(x)


@pytest.mark.parametrize("viscosity, message", [
    (None, "viscosity is required"), (0.0, "viscosity must be"), (-1.0, "viscosity must be"),
    (float("nan"), "viscosity must be"), (True, "viscosity must be"), ("1", "viscosity must be"),
    (np.inf, "viscosity must be")])
def test_bad_viscosity_is_refused(viscosity, message):
    x = np.random.default_rng(0).random((50, 3))
    with pytest.raises(ValueError, match=message):
        fmmsolve.direct(x, None, np.ones((50, 3)), kernel="stokes", viscosity=viscosity)


def test_viscosity_pressure_and_dipoles_where_they_do_not_apply_are_refused():
    x = np.random.default_rng(0).random((50, 3))
    with pytest.raises(ValueError, match="viscosity must be None for the 'laplace' kernel"):
        fmmsolve.direct(x, None, np.ones(50), viscosity=1.0)
    with pytest.raises(ValueError, match="the 'laplace' kernel has no pressure"):
        fmmsolve.direct(x, None, np.ones(50), pressure=True)
    with pytest.raises(TypeError, match="pressure must be True or False"):
        fmmsolve.direct(x, None, np.ones((50, 3)), kernel="stokes", viscosity=1.0,
                        pressure="yes")
    with pytest.raises(ValueError, match="wavenumber"):
        fmmsolve.direct(x, None, np.ones((50, 3)), kernel="stokes", viscosity=1.0,
                        wavenumber=2.0)
    with pytest.raises(ValueError, match="dipoles"):
        fmmsolve.direct(x, None, np.ones((50, 3)), kernel="stokes", viscosity=1.0,
                        dipoles=np.ones((50, 3)))
    with pytest.raises(ValueError, match=r"charges must have shape \(50, 3\)"):
        fmmsolve.direct(x, None, np.ones(50), kernel="stokes", viscosity=1.0)


def _stresslet_numpy(x, y, s, n):
    """u (n_t, m, 3) of the stresslet by broadcasting: T_ikl = -3 d_i d_k d_l / (4 pi r^5)."""
    d = y[:, None, :] - x[None, :, :]
    r = np.linalg.norm(d, axis=2)
    t = -3 * np.einsum("tsi,tsk,tsl->tsikl", d, d, d) / (4 * np.pi * r[..., None, None, None] ** 5)
    return np.einsum("tsikl,smk,sl->tmi", t, s, n)


def test_stresslet_is_its_formula_and_solves_stokes():
    rng = np.random.default_rng(5)
    x, y = rng.random((60, 3)), rng.random((40, 3)) + 0.3
    s, n = rng.standard_normal((60, 2, 3)), rng.standard_normal((60, 3))
    args = dict(kernel="stokes", viscosity=MU, stresslets=s, normals=n)
    u, grad, p = fmmsolve.direct(x, y, None, gradient=True, pressure=True, **args)
    assert _rel(u, _stresslet_numpy(x, y, s, n)) < 1e-13
    h, fd, dp, lap = 1e-6, np.zeros_like(grad), np.zeros_like(u), np.zeros_like(u)
    for c in range(3):
        e = h * np.eye(3)[c]
        plus = fmmsolve.direct(x, y + e, None, gradient=True, pressure=True, **args)
        minus = fmmsolve.direct(x, y - e, None, gradient=True, pressure=True, **args)
        fd[..., c] = (plus[0] - minus[0]) / (2 * h)
        lap += (plus[1][..., c] - minus[1][..., c]) / (2 * h)
        dp[..., c] = (plus[2] - minus[2]) / (2 * h)
    assert _rel(grad, fd) < 1e-8
    assert np.abs(np.trace(grad, axis1=2, axis2=3)).max() < 1e-13 * np.abs(grad).max()
    assert _rel(MU * lap, dp) < 1e-7  # grad p = mu laplacian u: the pressure is the flow's
    # the velocity does not depend on mu, the pressure is proportional to it
    u2, p2 = fmmsolve.direct(x, y, None, pressure=True, **{**args, "viscosity": 2 * MU})
    assert np.array_equal(u2, u) and np.allclose(p2, 2 * p, rtol=1e-14, atol=0)


def test_stresslet_of_a_constant_strength_on_a_sphere_is_s_inside_and_0_outside():
    """The sign convention: outward normals, d = y - x; the double layer of a constant s on a
    closed surface is s inside and 0 outside (a quadrature on 20,000 points)."""
    from fmmsolve.testing import fibonacci_sphere

    n, radius, s = 20000, 0.8, np.array([0.3, -0.5, 1.1])
    normals = fibonacci_sphere(n)
    weight = 4 * np.pi * radius ** 2 / n
    inside = np.array([[0.0, 0.0, 0.0], [0.1, 0.2, -0.1], [0.3, -0.2, 0.4]])
    outside = np.array([[2.0, 0.0, 0.0], [0.0, 1.5, 0.5]])
    u = fmmsolve.direct(radius * normals, np.concatenate([inside, outside]), None,
                        kernel="stokes", viscosity=1.0, stresslets=weight * np.tile(s, (n, 1)),
                        normals=normals)
    assert np.abs(u[:3] - s).max() < 1e-5 and np.abs(u[3:]).max() < 1e-6


def test_stresslets_with_forces_add_and_are_checked(small):
    x, y, f = small
    rng = np.random.default_rng(6)
    s, n = rng.standard_normal((300, 3)), rng.standard_normal((300, 3))
    both = fmmsolve.direct(x, y, f, kernel="stokes", viscosity=MU, stresslets=s, normals=n)
    apart = fmmsolve.direct(x, y, f, kernel="stokes", viscosity=MU) + fmmsolve.direct(
        x, y, None, kernel="stokes", viscosity=MU, stresslets=s, normals=n)
    assert _rel(both, apart) < 1e-14 and both.shape == (170, 3)
    u32 = fmmsolve.direct(x.astype(np.float32), y.astype(np.float32), None, kernel="stokes",
                          viscosity=MU, stresslets=s.astype(np.float32),
                          normals=n.astype(np.float32))
    assert u32.dtype == np.float32
    cases = [
        (dict(kernel="laplace", stresslets=s, normals=n), "the 'laplace' kernel has no stresslet"),
        (dict(kernel="stokes", viscosity=MU, stresslets=s), "stresslets and normals go together"),
        (dict(kernel="stokes", viscosity=MU, stresslets=s, normals=n[:10]),
         r"normals must have shape \(300, 3\)"),
        (dict(kernel="stokes", viscosity=MU, stresslets=s[:, None], normals=n, charges=f),
         "disagree"),
        (dict(kernel="stokes", viscosity=MU, stresslets=np.full((300, 3), np.nan), normals=n),
         "stresslets"),
        (dict(kernel="stokes", stresslets=s, normals=n), "viscosity is required"),
    ]
    for kwargs, message in cases:
        charges = kwargs.pop("charges", None)
        with pytest.raises(ValueError, match=message):
            fmmsolve.direct(x, y, charges, **kwargs)
