"""FMMField against the direct sum at new points (in the cloud, in empty regions, far away, on
sources, with gradients), the exact partition of sources behind it, and the promise that a
second evaluation does no source-side work."""

import pickle

import numpy as np
import pytest

import fmmsolve
from fmmsolve.field import FMMField
from fmmsolve.engine import passes
from fmmsolve.operators import m2l
from fmmsolve.testing import fibonacci_sphere, point_cloud, relative_l2_error
from fmmsolve.tree import queries

N = 4000
LEAF = 32  # several levels at N = 4000, so W, X and empty octants all occur


def _points(kind, sources, rng):
    """New points of one kind for the sources."""
    lo, hi = sources.min(axis=0), sources.max(axis=0)
    if kind == "cloud":  # inside the sources' bounding box
        return lo + rng.random((1500, 3)) * (hi - lo)
    if kind == "empty":  # inside and just outside a unit sphere of sources
        r = np.concatenate([rng.random(1000) * 0.97, 1.03 + rng.random(500)])
        d = rng.standard_normal((1500, 3))
        return r[:, None] * d / np.linalg.norm(d, axis=1, keepdims=True)
    if kind == "far":
        d = rng.standard_normal((500, 3))
        return 1e3 * d / np.linalg.norm(d, axis=1, keepdims=True)
    if kind == "on_sources":  # half of them exactly on sources
        return np.concatenate([sources[rng.choice(len(sources), 700, replace=False)],
                               lo + rng.random((700, 3)) * (hi - lo)])
    raise ValueError(kind)


CASES = [("uniform", "cloud"), ("sphere", "empty"), ("clusters", "cloud"),
         ("uniform", "far"), ("clusters", "on_sources")]


@pytest.fixture(scope="module", params=[1e-3, 1e-6], ids=["eps1e-3", "eps1e-6"])
def fields(request):
    """One field per distribution at one eps, with its charges."""
    rng = np.random.default_rng(7)
    out = {}
    for dist in ("uniform", "sphere", "clusters"):
        x = point_cloud(dist, N, seed=3)
        q = rng.standard_normal(N)
        out[dist] = (x, q, FMMField(x, q, eps=request.param, leaf_size=LEAF))
    return request.param, out


@pytest.mark.parametrize("dist, kind", CASES, ids=[f"{d}-{k}" for d, k in CASES])
def test_potential_and_gradient_match_the_direct_sum(fields, dist, kind, rng):
    eps, by_dist = fields
    x, q, field = by_dist[dist]
    y = _points(kind, x, rng)
    pot, grad = field.evaluate(y, gradient=True)
    ref_pot, ref_grad = fmmsolve.direct(x, y, q, gradient=True)
    assert relative_l2_error(pot, ref_pot) <= eps
    assert relative_l2_error(grad, ref_grad) <= 10 * eps  # gradients converge more slowly
    np.testing.assert_allclose(field.evaluate(y), pot, rtol=1e-12, atol=1e-12 * np.abs(pot).max())


def test_empty_regions_use_the_neighbourhood_traversal(fields, rng):
    """Points inside a sphere of sources fall into empty octants of internal boxes."""
    _, by_dist = fields
    x, _, field = by_dist["sphere"]
    y = _points("empty", x, rng)
    tree = field._schedule.fitted.tree
    box = queries.locate(tree, y)
    internal = (box < 0) | ~tree.is_leaf[np.maximum(box, 0)]
    assert internal.sum() > 500
    field.evaluate(y)
    assert field.timings["neighbourhood"] > 0


def _one(r, k):
    return 1.0, 0.0, 0.0


@pytest.fixture(scope="module")
def counting_kernels():
    """A constant kernel: its field of charge e_s at a point counts how many times source s
    reached the point (expansions of a constant field are exact; only zero distance is skipped).
    The decaying copy opens boxes too wide for M2P, as the modified Helmholtz kernel does."""
    return {"plain": fmmsolve.register_kernel("test_count", _one).name,
            "decaying": fmmsolve.register_kernel("test_count_decaying", _one, decay=5.0).name}


@pytest.mark.parametrize("dist, kernel", [
    ("uniform", "plain"), ("sphere", "plain"), ("clusters", "plain"), ("duplicates", "plain"),
    ("uniform", "decaying")])
def test_every_source_is_counted_exactly_once_per_point(dist, kernel, counting_kernels, rng):
    x = point_cloud(dist, 300, rng)
    field = FMMField(x, np.eye(len(x)), kernel=counting_kernels[kernel], expansion_order=3,
                     leaf_size=4, memory=None)  # order given: no calibration
    lo, hi = x.min(axis=0), x.max(axis=0)
    centre, size = (lo + hi) / 2, hi - lo
    y = np.concatenate([
        x[:60],                                                     # on sources
        lo + rng.random((300, 3)) * size,                           # inside the root cube
        centre + size * (rng.random((200, 3)) * 1.6 - 0.8),         # straddling its faces
        centre + 0.3 * size * rng.standard_normal((100, 3)),
        centre + 20 * np.max(size) * rng.standard_normal((50, 3)),  # far away
    ])
    tree = field._schedule.fitted.tree
    box = queries.locate(tree, y)
    assert (box < 0).sum() >= 50 and (~tree.is_leaf[box[box >= 0]]).any()
    counts = field.evaluate(y)
    assert counts.shape == (len(y), len(x))
    expected = 1.0 - np.all(y[:, None, :] == x[None, :, :], axis=2)  # a coinciding source: 0
    bad = np.argwhere(np.abs(counts - expected) > 1e-9)
    assert len(bad) == 0, (bad[:5], counts[tuple(bad[:5].T)])


@pytest.mark.parametrize("eps", [1e-3, 1e-6])
def test_decaying_kernel_meets_eps_far_away(eps, rng):
    # M2P from the root (d w = 3) gave 5.4e-3 at eps 1e-3 and 3.7e-6 at 1e-6 before boxes
    # wider than DECAY_WIDTH / d were opened
    x = point_cloud("uniform", 2000, 0)
    q = rng.standard_normal(len(x))
    y = 0.5 + 3.0 * fibonacci_sphere(1000)
    field = FMMField(x, q, kernel="modified_helmholtz", wavenumber=3.0, eps=eps, memory=None)
    exact = fmmsolve.direct(x, y, q, kernel="modified_helmholtz", wavenumber=3.0)
    assert relative_l2_error(field.evaluate(y), exact) <= eps


def test_field_at_the_sources_equals_the_engine(rng):
    """The downward pass in field.py mirrors FMMEngine.evaluate: same numbers at the sources."""
    x = point_cloud("clusters", 3000, rng)
    q = rng.standard_normal(len(x))
    field = FMMField(x, q, eps=1e-6, leaf_size=LEAF)
    A = fmmsolve.FMMOperator(x, eps=1e-6, leaf_size=LEAF)
    np.testing.assert_allclose(field.evaluate(x), A @ q, rtol=1e-12, atol=1e-12)


def test_a_second_evaluation_does_no_source_side_work(monkeypatch, rng):
    calls = {"upward": 0, "m2l": 0}
    upward, apply = passes.upward, m2l.apply

    def count(name, func):
        def spy(*args, **kwargs):
            calls[name] += 1
            return func(*args, **kwargs)
        return spy

    monkeypatch.setattr(passes, "upward", count("upward", upward))
    monkeypatch.setattr(m2l, "apply", count("m2l", apply))
    x = point_cloud("uniform", 3000, rng)
    field = FMMField(x, np.ones(len(x)), eps=1e-3)
    assert calls == {"upward": 1, "m2l": 1}
    field.evaluate(rng.random((500, 3)))
    field.evaluate(rng.random((700, 3)) * 3 - 1, gradient=True)
    assert calls == {"upward": 1, "m2l": 1}


def test_several_charge_columns(rng):
    x = point_cloud("clusters", 2000, rng)
    Q = rng.standard_normal((len(x), 3))
    y = rng.random((400, 3)) * 2 - 0.5
    pot, grad = FMMField(x, Q, eps=1e-6, leaf_size=LEAF).evaluate(y, gradient=True)
    assert pot.shape == (400, 3) and grad.shape == (400, 3, 3)
    ref_pot, ref_grad = fmmsolve.direct(x, y, Q, gradient=True)
    assert relative_l2_error(pot, ref_pot) <= 1e-6
    assert relative_l2_error(grad, ref_grad) <= 1e-5


def test_float32(rng):
    x = point_cloud("sphere", 3000, rng)
    q = rng.standard_normal(len(x))
    field = FMMField(x, q, eps=1e-3, dtype=np.float32)
    y = _points("empty", x, rng)
    pot = field.evaluate(y)
    assert pot.dtype == np.float32 and field.value_dtype == np.float32
    assert relative_l2_error(pot, fmmsolve.direct(x, y, q)) <= 1e-3


def test_single_source_and_no_points():
    field = FMMField([[0.5, 0.5, 0.5]], [2.0], eps=1e-6)
    pot = field.evaluate([[0.5, 0.5, 0.5], [1.5, 0.5, 0.5], [0.5, 0.7, 0.5]])
    np.testing.assert_allclose(pot, [0.0, 2 / (4 * np.pi), 2 / (4 * np.pi * 0.2)], rtol=1e-12)
    empty, grad = field.evaluate(np.empty((0, 3)), gradient=True)
    assert empty.shape == (0,) and grad.shape == (0, 3)


def test_pickle_fits_again_and_gives_the_same_field(rng):
    x = point_cloud("uniform", 2000, rng)
    field = FMMField(x, rng.standard_normal(len(x)), eps=1e-3, leaf_size=LEAF)
    copy = pickle.loads(pickle.dumps(field))
    y = rng.random((300, 3)) * 3 - 1
    np.testing.assert_array_equal(copy.evaluate(y), field.evaluate(y))
    assert copy.expansion_order == field.expansion_order and copy.leaf_size == LEAF


def test_attributes(rng):
    field = FMMField(point_cloud("uniform", 2000, rng), np.ones(2000), eps=1e-3)
    assert field.kernel == "laplace" and field.n_sources == 2000 and field.eps == 1e-3
    assert {"upward", "downward"} <= set(field.fit_timings)
    assert field.tree["n_sources"] == 2000
    field.evaluate(np.zeros((1, 3)))
    assert set(field.timings) >= {"locate", "l2p", "m2p", "p2p", "neighbourhood"}
    assert not field.sources.flags.writeable and not field.charges.flags.writeable


@pytest.mark.parametrize("args, kwargs, message", [
    (([[0, 0, 0]], [1.0, 2.0]), {}, r"charges must have shape \(1,\)"),
    (([[0, 0]], [1.0]), {}, r"sources must have shape \(n, 3\)"),
    (([[0, 0, 0]], [np.nan]), {}, "charges contains NaN"),
    (([[0, 0, 0]], [1j]), {}, "charges is complex"),
    (([[0, 0, 0]], [1.0]), {"kernel": "navier_stokes"}, "unknown kernel 'navier_stokes'"),
    (([[0, 0, 0]], [1.0]), {"kernel": "helmholtz"}, "needs a wavenumber"),
    (([[0, 0, 0]], [1.0]), {"wavenumber": 2.0}, "wavenumber must be None"),
    (([[0, 0, 0]], [1.0]), {"eps": 2.0}, "eps must be a number in"),
])
def test_bad_arguments_are_named(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        FMMField(*args, **kwargs)


def test_bad_points_are_named():
    field = FMMField([[0, 0, 0], [1, 1, 1]], [1.0, 1.0], eps=1e-3)
    with pytest.raises(ValueError, match=r"points must have shape \(n, 3\)"):
        field.evaluate([[0.0, 1.0]])
    with pytest.raises(ValueError, match="points contains NaN"):
        field.evaluate([[0.0, np.nan, 1.0]])


@pytest.mark.parametrize("kernel, k", [("laplace", None), ("helmholtz", 2.0 + 0.5j)])
def test_from_operator_reuses_the_operators_fit_and_equals_a_fresh_field(kernel, k, rng):
    x = point_cloud("clusters", 1500, 3)
    q = rng.standard_normal((1500, 2))
    q = q + 1j * rng.standard_normal((1500, 2)) if kernel == "helmholtz" else q
    A = fmmsolve.FMMOperator(x, kernel=kernel, wavenumber=k, eps=1e-4, leaf_size=20,
                             memory=None)
    field = FMMField.from_operator(A, q)
    assert field._schedule is A.engine.schedule  # no second tree, lists or plans
    fresh = FMMField(x, q, kernel=kernel, wavenumber=k, eps=1e-4, leaf_size=20, memory=None)
    y = rng.random((300, 3)) * 1.4 - 0.2
    np.testing.assert_array_equal(field.evaluate(y), fresh.evaluate(y))
    np.testing.assert_array_equal(field.evaluate(x), A @ q)  # at the sources: the operator
    copy = pickle.loads(pickle.dumps(field))  # refits with the operator's parameters
    np.testing.assert_array_equal(copy.evaluate(y), fresh.evaluate(y))


def test_from_operator_refuses_what_it_cannot_reuse(rng):
    x = point_cloud("uniform", 500, 4)
    A = fmmsolve.FMMOperator(x, eps=1e-3, memory=None)
    with pytest.raises(TypeError, match="operator must be an FMMOperator, got ndarray"):
        FMMField.from_operator(np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match=r"charges must have shape \(500,\)"):
        FMMField.from_operator(A, np.ones(499))
    with pytest.raises(ValueError, match="charges contains NaN"):
        FMMField.from_operator(A, np.full(500, np.nan))
    with_targets = fmmsolve.FMMOperator(x, rng.random((20, 3)), eps=1e-3, memory=None)
    with pytest.raises(ValueError, match=r"fitted on its sources alone \(targets=None\)"):
        FMMField.from_operator(with_targets, np.ones(500))
