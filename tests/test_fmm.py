"""The Laplace KIFMM against its oracles: a hand-built translation chain, the upward pass
alone, and the accuracy grid (distribution x eps x dtype) against the direct sum."""

import numpy as np
import pytest

import fmmsolve
from fmmsolve.fmm import FMMEngine, order_for_eps
from fmmsolve.kernels.laplace import matrix as laplace_matrix
from fmmsolve.operators import surfaces
from fmmsolve.operators.plan import (compute_plan, octant_operators, transfer_index,
                                     transfer_vectors)
from fmmsolve.testing import point_cloud, relative_l2_error


def test_transfer_vectors():
    v = transfer_vectors()
    assert v.shape == (316, 3) and len(np.unique(v, axis=0)) == 316
    np.testing.assert_array_equal(transfer_index(v), np.arange(316))
    assert (transfer_index([[0, 0, 0], [1, -1, 1], [4, 0, 0]]) == -1).all()


def test_surface_points():
    for p in (2, 3, 6):
        s = surfaces.surface(p)
        assert s.shape == (6 * (p - 1) ** 2 + 2, 3)
        assert np.allclose(np.abs(s).max(axis=1), 1.0)  # all on the cube's boundary
    with pytest.raises(ValueError, match="at least 2"):
        surfaces.surface(1)


@pytest.mark.parametrize("order, tol", [(6, 1e-5), (8, 1e-7)])
def test_translation_chain(order, tol, rng):
    """One source: P2M (child) -> M2M (parent) -> M2L -> L2L (child) -> L2P, vs the exact value."""
    plan = compute_plan("laplace", order, 1e-12, "<f8")
    surf = plan.surface
    offsets = np.array([[c & 1, c >> 1 & 1, c >> 2 & 1] for c in range(8)]) - 0.5
    # Source parent box: centre 2v, half-width 1; target parent box: centre 0, half-width 1.
    v = np.array([3, -2, 1])
    c_src, c_tgt = 5, 2
    src_child = 2.0 * v + offsets[c_src]
    tgt_child = offsets[c_tgt]
    x = src_child + 0.5 * (rng.random(3) - 0.5)  # a point inside the source child box
    y = tgt_child + 0.5 * (rng.random(3) - 0.5)
    charge = 1.7

    check = laplace_matrix(src_child + 0.5 * surfaces.UP_CHECK * surf, x[None]) @ [charge]
    m_child = 0.5 * plan.uc2e_a @ (plan.uc2e_b @ check)  # C2E scales with the half-width
    m_parent = octant_operators(plan.m2m, plan.expansion_order)[c_src] @ m_child
    vec = transfer_index(v[None])[0]
    a_v, b_v = plan.m2l_factors(vec)
    l_parent = plan.m2l_u @ (a_v.T @ (b_v @ (plan.m2l_vt @ m_parent)))
    l_child = octant_operators(plan.l2l, plan.expansion_order)[c_tgt] @ l_parent
    approx = laplace_matrix(y[None], tgt_child + 0.5 * surfaces.DOWN_EQUIV * surf) @ l_child
    exact = laplace_matrix(y[None], x[None])[0, 0] * charge
    assert abs(approx[0] - exact) <= tol * abs(exact)


def test_upward_pass_alone(rng):
    """The root's multipole expansion reproduces the field of all sources far away."""
    src = point_cloud("clusters", 4000, rng)
    q = rng.standard_normal((len(src), 1))
    engine = FMMEngine(src, expansion_order=7, leaf_size=30)
    assert engine.tree.depth >= 4
    multipole = engine.upward(q)
    tree = engine.tree
    equiv = tree.center + surfaces.UP_EQUIV * tree.half_width * engine.plan.surface
    far = tree.center + 6 * tree.half_width * point_cloud("sphere", 300, rng)
    approx = laplace_matrix(far, equiv) @ multipole[0, 0]
    assert relative_l2_error(approx, fmmsolve.direct(src, far, q[:, 0])) < 1e-6


def _case(name, n, rng):
    if name == "targets_differ":  # targets partly outside the sources' box
        return point_cloud("uniform", n, rng), 1.4 * point_cloud("uniform", n // 2, rng) - 0.2
    return point_cloud(name, n, rng), None


DISTRIBUTIONS = ["uniform", "sphere", "clusters", "curve", "duplicates", "targets_differ"]
GRID = [(np.float64, 1e-3), (np.float64, 1e-6), (np.float64, 1e-9),
        (np.float32, 1e-3), (np.float32, 1e-4)]


@pytest.mark.parametrize("dtype, eps", GRID, ids=[f"{np.dtype(d).name}-{e:g}" for d, e in GRID])
@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_accuracy_grid(name, dtype, eps, rng):
    src, tgt = _case(name, 8000, rng)
    q = rng.standard_normal(len(src))
    A = fmmsolve.FMMOperator(src, tgt, eps=eps, dtype=dtype, leaf_size=32)
    assert A.tree["depth"] >= 3, "the tree must have several levels to test the far field"
    pot = A @ q
    assert pot.dtype == dtype
    exact = fmmsolve.direct(src, tgt, q)
    err = relative_l2_error(pot, exact)
    assert err <= eps, f"relative L2 error {err:.2e} above eps={eps:g}"


def test_adaptive_lists_are_used_by_the_grid():
    """The clustered case exercises the W and X lists (M2P and P2L), not only U and V."""
    src = point_cloud("clusters", 8000, np.random.default_rng(0))
    summary = FMMEngine(src, eps=1e-3, leaf_size=32).tree_summary()
    assert summary["mean_w"] > 0 and summary["mean_x"] > 0


def test_gradient_accuracy(rng):
    src, tgt = _case("targets_differ", 6000, rng)
    q = rng.standard_normal(len(src))
    A = fmmsolve.FMMOperator(src, tgt, eps=1e-6, leaf_size=32)
    pot, grad = A.evaluate(q, gradient=True)
    exact_pot, exact_grad = fmmsolve.direct(src, tgt, q, gradient=True)
    assert relative_l2_error(pot, exact_pot) <= 1e-6
    assert relative_l2_error(grad, exact_grad) <= 1e-4


def test_order_for_eps():
    assert [order_for_eps(e) for e in (0.5, 1e-3, 1e-6, 1e-9)] == [3, 4, 7, 11]
    # dipoles: the order of eps / 100, down to the measured order 15 at eps 1e-9
    assert [order_for_eps(e, dipoles=True) for e in (1e-3, 1e-7, 1e-8, 1e-9)] == [6, 11, 12, 15]
    for dipoles in (False, True):
        with pytest.raises(ValueError, match="at least 1e-09"):
            order_for_eps(9.9e-10, dipoles)


def test_timings_cover_every_operator(rng):
    A = fmmsolve.FMMOperator(point_cloud("clusters", 3000, rng), eps=1e-3, leaf_size=20)
    A @ np.ones(3000)
    assert set(A.timings) == {"other", "p2m", "m2m", "m2l", "p2l", "l2l", "l2p", "m2p", "p2p"}


def test_leaf_block_layout(rng):
    """Densities of every leaf form one C-contiguous (m, n_leaf) block, as the kernels need."""
    from fmmsolve.operators.translations import leaf_block_index
    tree = FMMEngine(point_cloud("clusters", 3000, rng), leaf_size=25).tree
    m = 3
    q = rng.standard_normal((tree.n_sources, m))
    flat = np.full(q.size, np.nan)
    flat[leaf_block_index(tree.src_begin, tree.src_end, tree.leaves, m)] = q
    assert not np.isnan(flat).any()
    for leaf in tree.leaves:
        s0, s1 = tree.src_begin[leaf], tree.src_end[leaf]
        np.testing.assert_array_equal(flat[m * s0:m * s1].reshape(m, s1 - s0), q[s0:s1].T)


def test_singleton_lists_list_one_entry_per_given_box(rng):
    """P2M and L2P run as P2L and M2P over these lists: each given box lists its entry, every
    other box nothing; a repeated box is refused (its first entry would be lost)."""
    from fmmsolve.operators.translations import singleton_lists
    boxes = rng.permutation(40)[:15]
    entries = rng.integers(0, 40, 15)
    ptr, idx = singleton_lists(40, boxes, entries)
    assert ptr.shape == (41,) and idx.shape == (15,)
    for b in range(40):
        listed = idx[ptr[b]:ptr[b + 1]]
        want = entries[boxes == b]
        np.testing.assert_array_equal(listed, want)
    ptr, idx = singleton_lists(5, np.array([], np.int64), np.array([], np.int64))
    assert (ptr == 0).all() and idx.shape == (0,)
    with pytest.raises(ValueError, match="distinct"):
        singleton_lists(40, [3, 7, 3], [1, 2, 3])


def test_far_field_hook_and_translate_add_the_far_boxes(rng):
    """The distributed FMM's split on one process: the sources adjacent to one level-2 box go
    through the engine; the other level-2 boxes' multipoles go through ``translate`` on a tree
    of box centres and enter by the ``far_field`` hook. Together: the direct sum."""
    root = (np.full(3, 0.5), 0.5)
    src, tgt = rng.random((3000, 3)), rng.random((400, 3)) * 0.25  # targets in box (0, 0, 0)
    q = rng.standard_normal(3000)
    cut = {"root": root, "min_depth": 2}
    near = (np.floor(src / 0.25) <= 1).all(axis=1)  # in a box adjacent to (0, 0, 0)
    full = FMMEngine(src, eps=1e-6, tree_options=cut)
    tree = full.tree
    level2 = np.arange(tree.level_ptr[2], tree.level_ptr[3])
    far = level2[(tree.anchors[level2] > 1).any(axis=1)]
    top = FMMEngine(full.tree.box_centers()[far], [[0.125, 0.125, 0.125]], leaf_size=1,
                    eps=1e-6, tree_options={**cut, "max_depth": 2})
    assert top.tree.levels[top.tree.leaves].min() == 2
    multipole = np.zeros((top.tree.n_boxes, 1, top.plan.n_surface))
    multipole[np.searchsorted(top.tree.keys, tree.keys[far])] = full.upward(q[:, None])[far]
    local = top.translate(multipole)[np.searchsorted(top.tree.keys, [64])]  # key of (0, 0, 0)
    engine = FMMEngine(src[near], tgt, eps=1e-6, tree_options=cut)
    box = np.searchsorted(engine.tree.keys, [64])
    calls = []
    pot, _ = engine.evaluate(q[near][:, None],
                             far_field=lambda mult: calls.append(mult.shape) or (box, local))
    assert calls == [(engine.tree.n_boxes, 1, engine.plan.n_surface)]
    assert relative_l2_error(pot[:, 0], fmmsolve.direct(src, tgt, q)) <= 1e-6
    near_only, _ = engine.evaluate(q[near][:, None])
    assert relative_l2_error(near_only[:, 0], fmmsolve.direct(src, tgt, q)) > 1e-2
