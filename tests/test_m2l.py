"""M2L against its defining sums: the two-stage compressed factors against the exact
translations, and the chunked, compiled schedule against a plain loop over V-list pairs."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fmmsolve.fmm import FMMEngine
from fmmsolve.kernels import get_kernel
from fmmsolve.operators import m2l, surfaces
from fmmsolve.operators.plan import compute_plan, transfer_index, transfer_vectors
from fmmsolve.testing import point_cloud


@pytest.mark.parametrize("kernel, k, order, tol", [
    ("laplace", None, 4, 1e-4), ("laplace", None, 7, 1e-7),
    # effective wavenumbers k h of a level's reference box (half-width 1): complex matrices
    ("helmholtz", 1.5 + 0.3j, 5, 1e-5), ("modified_helmholtz", 2.0, 5, 1e-5)])
def test_compressed_translations_match_the_exact_ones(kernel, k, order, tol):
    with threadpool_limits(1, user_api="blas"):  # 316 small SVDs: threads only wait on 2 cores
        _check_compressed_translations(kernel, k, order, tol)


def _check_compressed_translations(kernel, k, order, tol):
    plan = compute_plan(kernel, order, tol, "<f8", k)
    mat = lambda t, s: get_kernel(kernel).matrix(t, s, k)  # noqa: E731
    surf = plan.surface
    check = surfaces.DOWN_CHECK * surf
    ranks = plan.m2l_ranks
    assert ranks.shape == (316,) and (ranks >= 1).all() and (ranks <= plan.rank).all()
    assert ranks.mean() < 0.5 * plan.rank  # the second stage is what makes M2L cheap
    # m2l_u folds in the downward check-to-equivalent map, so compare with the uncompressed
    # chain dc2e K_v x, both seen through the check potentials they reproduce.
    equiv_to_check = mat(check, surfaces.DOWN_EQUIV * surf)
    dc2e = plan.dc2e_a @ plan.dc2e_b
    rng = np.random.default_rng(3)
    k_v = [mat(check, 2.0 * v + surfaces.UP_EQUIV * surf) for v in transfer_vectors()]
    s_max = max(np.linalg.norm(k, 2) for k in k_v)
    worst = 0.0  # error in units of the tolerance the compression promises: tol * s_max |x|
    for vec in range(len(k_v)):  # 56 computed, the others their reflections
        a_v, b_v = plan.m2l_factors(vec)
        x = rng.standard_normal(len(surf)) + (1j * rng.standard_normal(len(surf))
                                               if plan.m2l_vt.dtype.kind == "c" else 0)
        approx = equiv_to_check @ (plan.m2l_u @ (a_v.T @ (b_v @ (plan.m2l_vt @ x))))
        exact = equiv_to_check @ (dc2e @ (k_v[vec] @ x))
        worst = max(worst, np.linalg.norm(approx - exact) / (tol * s_max * np.linalg.norm(x)))
    assert worst < 2.0


def test_schedule_partitions_the_pairs():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2000, 20000)
    v = rng.integers(0, 316, 20000)
    t, v = np.unique(np.stack([t, v]), axis=1)  # a target meets each vector at most once
    s = rng.integers(0, 2000, len(t))
    sched = m2l.schedule(t, s, v, 128)
    pairs = set(zip(t.tolist(), s.tolist(), v.tolist()))
    seen = set()
    for c in range(len(sched.chunk_ptr) - 1):
        groups = range(sched.chunk_ptr[c], sched.chunk_ptr[c + 1])
        chunk_of = {int(x) // 128 for g in groups
                    for x in sched.targets[sched.group_ptr[g]:sched.group_ptr[g + 1]]}
        assert len(chunk_of) == 1
        for g in groups:
            rows = slice(sched.group_ptr[g], sched.group_ptr[g + 1])
            tg = sched.targets[rows]
            assert len(np.unique(tg)) == len(tg)  # no two threads or rows hit one target
            seen |= {(int(a), int(b), int(sched.group_vec[g]))
                     for a, b in zip(tg, sched.sources[rows])}
    assert seen == pairs and sched.group_ptr[-1] == len(t)
    np.testing.assert_array_equal(sched.v_targets, np.unique(t))
    none = np.zeros(0, np.int64)  # a tree too shallow for V lists
    empty = m2l.schedule(none, none, none, 128)
    assert empty.group_ptr.tolist() == [0] and empty.chunk_ptr.tolist() == [0]


@pytest.mark.parametrize("n", [0, 1, 5000])
def test_the_compiled_schedule_is_the_stable_sort_by_chunk_and_vector(n):
    rng = np.random.default_rng(n)
    t = np.sort(rng.integers(0, 3000, n))  # in target order: the compiled passes
    s, v = rng.integers(0, 3000, n), rng.integers(0, 316, n)
    got = m2l.schedule(t, s, v, 128)
    key = (t // 128) * 316 + v
    order = np.argsort(key, kind="stable")
    np.testing.assert_array_equal(got.targets, t[order])
    np.testing.assert_array_equal(got.sources, s[order])
    runs = np.flatnonzero(np.diff(key[order])) + 1
    np.testing.assert_array_equal(got.group_ptr, np.r_[0, runs, n] if n else [0])
    np.testing.assert_array_equal(got.group_vec, key[order][got.group_ptr[:-1]] % 316)
    chunks = key[order][got.group_ptr[:-1]] // 316
    starts = np.flatnonzero(np.r_[True, np.diff(chunks) > 0]) if n else []
    np.testing.assert_array_equal(got.chunk_ptr, np.r_[starts, len(got.group_vec)])
    # the same pairs out of target order are sorted by target first: the same groups
    shuffled = rng.permutation(n)
    again = m2l.schedule(t[shuffled], s[shuffled], v[shuffled], 128)
    assert sorted(zip(again.targets, again.sources)) == sorted(zip(got.targets, got.sources))
    np.testing.assert_array_equal(again.group_vec, got.group_vec)


def test_v_list_pairs_are_the_lists_with_their_transfer_vectors():
    engine = FMMEngine(point_cloud("clusters", 6000, 1), eps=1e-4, leaf_size=20)
    tree, lists = engine.tree, engine.lists
    t = np.repeat(np.arange(tree.n_boxes), np.diff(lists.v_indptr))
    s = np.asarray(lists.v_indices)
    got = m2l.v_list_pairs(lists.v_indptr, lists.v_indices, tree.anchors, 0, tree.n_boxes)
    np.testing.assert_array_equal(got[0], t)
    np.testing.assert_array_equal(got[1], s)
    np.testing.assert_array_equal(got[2], transfer_index(tree.anchors[s] - tree.anchors[t]))
    lo, hi = tree.level_ptr[3], tree.level_ptr[4]  # one level: boxes relative to its first
    rows = (t >= lo) & (t < hi)
    level = m2l.v_list_pairs(lists.v_indptr, lists.v_indices, tree.anchors, lo, hi)
    np.testing.assert_array_equal(level[0], t[rows] - lo)
    np.testing.assert_array_equal(level[1], s[rows] - lo)
    bad = tree.anchors.copy()
    bad[s[0]] += 5  # a pair four boxes too far apart
    with pytest.raises(ValueError, match="not at a transfer vector"):
        m2l.v_list_pairs(lists.v_indptr, lists.v_indices, bad, 0, tree.n_boxes)


@pytest.mark.parametrize("dtype, m", [("float64", 1), ("float64", 3), ("float32", 2)])
def test_apply_matches_a_loop_over_pairs(dtype, m):
    src = point_cloud("clusters", 6000, 1)
    engine = FMMEngine(src, eps=1e-4, expansion_order=5, leaf_size=20, dtype=dtype)
    plan, tree, lists = engine.plan, engine.tree, engine.lists
    rng = np.random.default_rng(2)
    multipole = rng.standard_normal((tree.n_boxes, m, plan.n_surface)).astype(dtype)
    local = np.zeros_like(multipole)
    ((lo, hi, _, sched),) = engine.schedule.m2l_passes  # Laplace: one pass over every level
    assert (lo, hi) == (0, tree.n_boxes)
    m2l.apply(sched, plan, multipole, local)

    # The oracle: every V-list pair (t, s) read straight from the lists, its transfer vector
    # from the anchors, and the dense translation of that vector (formed once per vector) added
    # into box t. The pairs of one vector are summed in one product rather than one Python
    # step per pair (58,000 pairs): the same sum, without the schedule the compiled code uses.
    n = plan.n_surface
    expected = np.zeros((tree.n_boxes, m, n))
    p64 = compute_plan("laplace", 5, plan.compression_tol, "<f8")
    t = np.repeat(np.arange(tree.n_boxes), np.diff(lists.v_indptr))
    s = np.asarray(lists.v_indices)
    vecs = transfer_index(tree.anchors[s] - tree.anchors[t])
    assert len(s) > 1000 and (vecs >= 0).all()
    source = multipole.astype(np.float64)
    order = np.argsort(vecs, kind="stable")
    bounds = np.searchsorted(vecs[order], np.arange(len(transfer_vectors()) + 1))
    with threadpool_limits(1, user_api="blas"):  # small products: threads only wait
        for vec in range(len(transfer_vectors())):
            pairs = order[bounds[vec]:bounds[vec + 1]]
            if len(pairs) == 0:
                continue
            a_v, b_v = p64.m2l_factors(vec)
            op = (p64.m2l_u @ a_v.T @ b_v @ p64.m2l_vt).T  # (n, n): multipole -> local
            np.add.at(expected, t[pairs],
                      (source[s[pairs]].reshape(-1, n) @ op).reshape(-1, m, n))
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(local, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
