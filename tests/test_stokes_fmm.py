"""The Stokeslet's FMM (fmmsolve.engine.harmonic): velocity, velocity gradient and pressure
against the exact sums, the moments each box keeps about its own centre against their defining
sums, and FMMOperator(kernel="stokes"): products, adjoint, columns, viscosity, pickling, saved
files, float32 and the refusals."""

import pathlib
import pickle
import runpy

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import fmmsolve
from fmmsolve.engine import harmonic, passes
from fmmsolve.fmm import FMMEngine
from fmmsolve.operators import moments, surfaces

MU = 0.8


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def _points(kind, n, rng):
    if kind == "uniform":
        return rng.random((n, 3))
    if kind == "sphere":
        p = rng.standard_normal((n, 3))
        return 0.5 + 0.5 * p / np.linalg.norm(p, axis=1)[:, None]
    centres = rng.random((6, 3))  # clusters of very different widths
    widths = np.array([1e-1, 3e-2, 1e-2, 1e-3, 1e-4, 3e-2])
    which = rng.integers(0, 6, n)
    return centres[which] + widths[which, None] * rng.standard_normal((n, 3))


def _check(kind, eps, targets_apart, n=3000, columns=2, seed=0):
    rng = np.random.default_rng(seed)
    x = _points(kind, n, rng)
    y = None
    if targets_apart:  # among the sources, beyond them, and on a few of them
        y = np.concatenate([rng.random((600, 3)) * 1.6 - 0.3, x[:50]])
    f = rng.standard_normal((n, columns, 3))
    # small leaves: several levels, so every translation shifts the moments (at eps 1e-9, order
    # 12, leaves of 24 points are far below the default and lose the gradient's last digit)
    A = fmmsolve.FMMOperator(x, y, kernel="stokes", viscosity=MU, eps=eps,
                             leaf_size=24 if eps >= 1e-6 else 100)
    u, du, p = A.evaluate(f, gradient=True, pressure=True)
    ref = fmmsolve.direct(x, y, f, kernel="stokes", viscosity=MU, gradient=True, pressure=True)
    assert u.shape == ref[0].shape and du.shape == ref[1].shape and p.shape == ref[2].shape
    errors = [_rel(a, b) for a, b in zip((u, du, p), ref)]
    assert errors[0] < eps, errors
    assert errors[1] < 10 * eps and errors[2] < 10 * eps, errors
    return errors


@pytest.mark.parametrize("kind", ["uniform", "sphere", "clusters"])
@pytest.mark.parametrize("eps", [1e-3, 1e-6])
def test_velocity_within_eps_gradient_and_pressure_within_10_eps(kind, eps):
    _check(kind, eps, targets_apart=False)


@pytest.mark.parametrize("kind", ["uniform", "clusters"])
def test_targets_apart_from_the_sources(kind):
    _check(kind, 1e-6, targets_apart=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["uniform", "sphere", "clusters"])
@pytest.mark.parametrize("targets_apart", [False, True])
def test_eps_1e_9(kind, targets_apart):
    _check(kind, 1e-9, targets_apart, n=4000, columns=1)


def test_each_multipole_holds_its_moment_about_its_own_centre():
    """After P2M and M2M, the fourth column of a box's multipole is the field of
    ``(x - c) . f`` over its sources, ``c`` its centre, and the first three the fields of the
    force components: evaluated at points well outside the box, against the defining sums."""
    rng = np.random.default_rng(4)
    x = _points("clusters", 2000, rng)
    f = rng.standard_normal((2000, 3))
    engine = FMMEngine(x, kernel="stokes", eps=1e-6, leaf_size=16)
    schedule, tree = engine.schedule, engine.tree
    offsets = harmonic.source_offsets(schedule)  # P2M's charges: about each leaf's centre
    charges = np.concatenate([f, np.sum(offsets * f, axis=1)[:, None]], axis=1)
    sources, _ = passes.densities(engine.fitted, charges)
    multipole = passes.upward(schedule, sources, 4, shift=moments.shift_table(1))
    x_tree = tree.sources.T  # tree order
    f_tree = f[tree.source_perm]
    checked = 0
    for box in range(1, tree.n_boxes):
        s0, s1 = tree.src_begin[box], tree.src_end[box]
        if s1 - s0 < 20 or tree.levels[box] < 1:
            continue
        c, h = schedule.centres[box], schedule.half_widths[box]
        far = c + 6 * h * np.array([[1.0, 0.3, -0.2], [-0.4, 1.0, 0.5], [0.1, -0.7, -1.0]])
        z = c + surfaces.UP_EQUIV * h * schedule.surface.T
        field = fmmsolve.direct(z, far, multipole[box].T)
        src, force = x_tree[s0:s1], f_tree[s0:s1]
        exact = fmmsolve.direct(src, far, np.concatenate(
            [force, np.sum((src - c) * force, axis=1)[:, None]], axis=1))
        assert _rel(field[:, 3], exact[:, 3]) < 1e-6, (box, tree.levels[box])
        assert _rel(field[:, :3], exact[:, :3]) < 1e-6, (box, tree.levels[box])
        checked += 1
    assert checked > 5


@pytest.fixture(scope="module")
def operator():
    rng = np.random.default_rng(7)
    x, y = rng.random((1500, 3)), rng.random((700, 3)) * 1.5 - 0.2
    return fmmsolve.FMMOperator(x, y, kernel="stokes", viscosity=MU, eps=1e-7), rng


def test_operator_products_in_flattened_order(operator):
    A, rng = operator
    assert A.shape == (3 * 700, 3 * 1500) and A.dtype == np.float64
    assert A.kernel == "stokes" and A.viscosity == MU and A.components == 3
    f = rng.standard_normal((1500, 3))
    ref = fmmsolve.direct(A.sources, A.targets, f, kernel="stokes", viscosity=MU)
    assert _rel(A @ f.ravel(), ref.ravel()) < 1e-7  # row 3 i + a: component a at target i
    Q = rng.standard_normal((3 * 1500, 3))
    U = A @ Q
    for c in range(3):
        assert _rel(U[:, c], A @ Q[:, c]) < 1e-13
    w = rng.standard_normal((700, 3))  # the Oseen tensor is symmetric and even
    adjoint = fmmsolve.direct(A.targets, A.sources, w, kernel="stokes", viscosity=MU)
    assert _rel(A.T @ w.ravel(), adjoint.ravel()) < 1e-7
    assert _rel(A.H @ w.ravel(), adjoint.ravel()) < 1e-7


def test_viscosity_divides_velocity_and_gradient_not_pressure(operator):
    A, rng = operator
    f = rng.standard_normal((1500, 3))
    B = fmmsolve.FMMOperator(A.sources, A.targets, kernel="stokes", viscosity=2 * MU, eps=1e-7)
    ua, ga, pa = A.evaluate(f, gradient=True, pressure=True)
    ub, gb, pb = B.evaluate(f, gradient=True, pressure=True)
    assert np.allclose(ua, 2 * ub, rtol=1e-13, atol=0)
    assert np.allclose(ga, 2 * gb, rtol=1e-13, atol=0)
    assert np.array_equal(pa, pb)


def test_pickle_and_saved_file_give_the_same_products(operator, tmp_path):
    A, rng = operator
    f = rng.standard_normal(3 * 1500)
    expected = A @ f
    copy = pickle.loads(pickle.dumps(A))
    assert copy.viscosity == MU and np.array_equal(copy @ f, expected)
    A.save(tmp_path / "stokes.h5")
    loaded = fmmsolve.load(tmp_path / "stokes.h5")
    assert loaded.kernel == "stokes" and loaded.viscosity == MU
    assert np.array_equal(loaded @ f, expected)
    assert np.array_equal(loaded.evaluate(f.reshape(-1, 3), pressure=True)[1],
                          A.evaluate(f.reshape(-1, 3), pressure=True)[1])


@pytest.mark.slow  # compiles float32 Stokes and Laplace passes no other default test needs
def test_float32():
    rng = np.random.default_rng(8)
    x = rng.random((2000, 3)).astype(np.float32)
    f = rng.standard_normal((2000, 3)).astype(np.float32)
    A = fmmsolve.FMMOperator(x, kernel="stokes", viscosity=MU, eps=1e-4)
    u, du, p = A.evaluate(f, gradient=True, pressure=True)
    assert u.dtype == du.dtype == p.dtype == np.float32
    ref = fmmsolve.direct(x.astype(np.float64), None, f.astype(np.float64), kernel="stokes",
                          viscosity=MU, gradient=True, pressure=True)
    assert _rel(u, ref[0]) < 1e-4
    assert _rel(du, ref[1]) < 1e-3 and _rel(p, ref[2]) < 1e-3
    n = rng.standard_normal((2000, 3)).astype(np.float32)  # the stresslet too
    B = fmmsolve.FMMOperator(x, kernel="stokes", viscosity=MU, eps=1e-4, dipoles=True)
    u = B.evaluate(stresslets=f, normals=n)
    assert u.dtype == np.float32
    ref = fmmsolve.direct(x.astype(np.float64), None, None, kernel="stokes", viscosity=MU,
                          stresslets=f.astype(np.float64), normals=n.astype(np.float64))
    assert _rel(u, ref) < 1e-4


def test_gmres_solves_a_mobility_problem():
    """``(I + A / n) f = u`` with the operator inside SciPy's GMRES."""
    rng = np.random.default_rng(9)
    x = rng.random((800, 3))
    A = fmmsolve.FMMOperator(x, kernel="stokes", viscosity=MU, eps=1e-8)
    n = A.shape[0]
    M = spla.LinearOperator(A.shape, matvec=lambda v: v + A @ v / 800.0, dtype=np.float64)
    b = rng.standard_normal(n)
    sol, info = spla.gmres(M, b, rtol=1e-10, atol=0.0)
    assert info == 0 and _rel(M @ sol, b) < 1e-9


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(), ValueError, "viscosity is required"),
    (dict(viscosity=0.0), ValueError, "viscosity must be"),
    (dict(viscosity=float("nan")), ValueError, "viscosity must be"),
    (dict(viscosity=1.0, wavenumber=2.0), ValueError, "wavenumber"),
])
def test_bad_parameters_are_refused(kwargs, error, message):
    x = np.random.default_rng(0).random((100, 3))
    with pytest.raises(error, match=message):
        fmmsolve.FMMOperator(x, kernel="stokes", **kwargs)


def test_bad_densities_and_options_are_refused(operator):
    A, _ = operator
    with pytest.raises(ValueError, match=r"q must have shape \(1500, 3\)"):
        A.evaluate(np.ones(1500))
    with pytest.raises(ValueError, match="q"):
        A.evaluate(np.full((1500, 3), np.nan))
    with pytest.raises(ValueError, match="dipoles"):
        A.evaluate(np.ones((1500, 3)), dipoles=np.ones((1500, 3)))
    with pytest.raises(TypeError, match="pressure must be True or False"):
        A.evaluate(np.ones((1500, 3)), pressure=1)
    with pytest.raises(ValueError, match=r"dimension mismatch|shape"):
        A @ np.ones(1500)
    x = A.sources
    with pytest.raises(ValueError, match="viscosity must be None for the 'laplace' kernel"):
        fmmsolve.FMMOperator(x, viscosity=1.0)
    with pytest.raises(ValueError, match="the 'laplace' kernel has no pressure"):
        fmmsolve.FMMOperator(x).evaluate(np.ones(1500), pressure=True)


def test_the_engine_is_fitted_as_laplace_with_a_margin():
    x = np.random.default_rng(0).random((500, 3))
    engine = FMMEngine(x, kernel="stokes", eps=1e-6)
    assert engine.kernel.name == "stokes" and engine.fitted.kernel.name == "laplace"
    assert engine.fitted.expansion_order == FMMEngine(
        x, eps=1e-6 / harmonic.EPS_MARGIN).fitted.expansion_order


ROOT = pathlib.Path(__file__).resolve().parents[1]


def _example(name, monkeypatch):
    monkeypatch.setenv("FMMSOLVE_EXAMPLE_SIZE", "small")
    return runpy.run_path(str(ROOT / "examples" / name), run_name="example")


def test_sphere_drag_converges_to_stokes_law(monkeypatch, capsys):
    rows = _example("sphere_drag.py", monkeypatch)["main"]()
    drag_errors = [row[1] for row in rows]
    assert drag_errors[-1] < 3e-3 and drag_errors[-1] < 0.6 * drag_errors[0]  # ~ n^-1/2
    assert rows[-1][2] < 1e-2  # the density, against the uniform traction 3 mu U / (2 a)


def test_sedimenting_cloud_falls_at_the_hadamard_rybczynski_speed(monkeypatch, capsys):
    rows = _example("sedimenting_cloud.py", monkeypatch)["main"]()
    for n, speed, closed_form, deviation, error in rows:
        assert abs(deviation) < 5e-3 and error < 1e-6, (n, deviation, error)


def test_traction_on_a_sphere_around_a_point_force_balances_it():
    """The traction of a Stokeslet integrated over a sphere around it is -f (the force the
    fluid outside exerts on the enclosed fluid balances the point force), whatever mu; the
    velocity gradient and pressure from the FMM."""
    from fmmsolve.kernels.stokes import traction
    from fmmsolve.testing import fibonacci_sphere

    force = np.array([[0.3, -1.2, 0.5]])
    normals = fibonacci_sphere(4000)
    surface = 1.5 * normals + np.array([0.1, 0.0, -0.2])  # the force off-centre
    x = np.concatenate([np.zeros((1, 3)), surface])
    f = np.concatenate([force, np.zeros((4000, 3))])
    A = fmmsolve.FMMOperator(x, kernel="stokes", viscosity=MU, eps=1e-8)
    _, grad, p = A.evaluate(f, gradient=True, pressure=True)
    t = traction(p[1:], grad[1:], normals, MU)
    total = t.sum(axis=0) * 4 * np.pi * 1.5 ** 2 / 4000
    assert np.linalg.norm(total + force[0]) < 1e-4 * np.linalg.norm(force)  # measured 1e-5
    assert traction(p[1:, None], grad[1:, None], normals, MU).shape == (4000, 1, 3)
    with pytest.raises(ValueError, match="must agree"):
        traction(p[1:], grad[1:, 0], normals, MU)
    with pytest.raises(ValueError, match="viscosity must be"):
        traction(p[1:], grad[1:], normals, -1.0)


@pytest.mark.parametrize("kind", ["uniform", "sphere", "clusters"])
def test_stresslets_within_eps_alone_and_with_forces(kind):
    rng = np.random.default_rng(12)
    x = _points(kind, 2500, rng)
    y = np.concatenate([rng.random((400, 3)) * 1.6 - 0.3, x[:30]])
    s, n, f = (rng.standard_normal((2500, 2, 3)), rng.standard_normal((2500, 3)),
               rng.standard_normal((2500, 2, 3)))
    eps = 1e-5
    A = fmmsolve.FMMOperator(x, y, kernel="stokes", viscosity=MU, eps=eps, dipoles=True,
                             leaf_size=24)
    for forces in (None, f):
        out = A.evaluate(forces, gradient=True, pressure=True, stresslets=s, normals=n)
        ref = fmmsolve.direct(x, y, forces, kernel="stokes", viscosity=MU, gradient=True,
                              pressure=True, stresslets=s, normals=n)
        errors = [_rel(a, b) for a, b in zip(out, ref)]
        assert errors[0] < eps and errors[1] < 10 * eps and errors[2] < 10 * eps, errors
    one = A.evaluate(stresslets=s[:, 0], normals=n)
    assert one.shape == (430, 3) and _rel(one, ref[0][:, 0] - fmmsolve.direct(
        x, y, f[:, 0], kernel="stokes", viscosity=MU)) < eps
    if kind == "uniform":  # a pickled copy is fitted again for stresslets
        copy = pickle.loads(pickle.dumps(A))
        assert copy.dipoles and np.array_equal(copy.evaluate(stresslets=s[:, 0], normals=n), one)


def test_stresslets_are_refused_where_they_do_not_apply(operator):
    A, _ = operator
    s, n = np.ones((1500, 3)), np.ones((1500, 3))
    with pytest.raises(ValueError, match="fit for forces only: fit it with dipoles=True"):
        A.evaluate(stresslets=s, normals=n)
    with pytest.raises(ValueError, match="stresslets and normals go together"):
        A.evaluate(stresslets=s)
    with pytest.raises(ValueError, match=r"normals must have shape \(1500, 3\)"):
        A.evaluate(stresslets=s, normals=np.ones((1500, 1, 3)))
    with pytest.raises(ValueError, match="normals"):
        A.evaluate(stresslets=s, normals=np.full((1500, 3), np.inf))
    with pytest.raises(ValueError, match="stresslets: the 'laplace' kernel has no stresslet"):
        fmmsolve.FMMOperator(A.sources).evaluate(stresslets=s, normals=n)


def test_an_eps_beyond_the_measured_orders_is_refused_with_its_limit():
    from fmmsolve.accuracy import order_for_eps

    assert order_for_eps(1e-9, True, harmonic.eps_margin(True)) == 15
    with pytest.raises(ValueError, match="eps must be at least 1e-08 here, got 1e-09"):
        order_for_eps(1e-9, True, 10.0)


@pytest.mark.slow  # a dense plan of its own (seconds to precompute)
def test_the_dense_m2l_shifts_the_moments_too():
    """The moment shift is in the gather both M2L strategies share: the dense one (the SVD's
    oracle) meets eps as well."""
    rng = np.random.default_rng(13)
    x, f = _points("sphere", 3000, rng), rng.standard_normal((3000, 3))
    A = fmmsolve.FMMOperator(x, kernel="stokes", viscosity=MU, eps=1e-5, m2l="dense",
                             leaf_size=24)
    sample = rng.choice(3000, 300, replace=False)
    ref = fmmsolve.direct(x, x[sample], f, kernel="stokes", viscosity=MU)
    assert _rel(A.evaluate(f)[sample], ref) < 1e-5
