"""Invariants of the adaptive octree, checked against the points themselves."""

import numpy as np
import pytest

from fmmsolve import build_octree
from fmmsolve.tree.morton import MAX_DEPTH

from .helpers import tree_cases

CASES = tree_cases()


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request):
    name, src, tgt, leaf_size = request.param
    return src, tgt, leaf_size, build_octree(src, tgt, leaf_size=leaf_size)


def _sets(tree, src, tgt):
    yield src, tree.sources, tree.source_perm, tree.src_begin, tree.src_end
    if tgt is not None:
        yield tgt, tree.targets, tree.target_perm, tree.tgt_begin, tree.tgt_end


def test_sorted_points_are_a_permutation(case):
    src, tgt, _, tree = case
    for pts, sorted_pts, perm, _, _ in _sets(tree, src, tgt):
        assert np.array_equal(np.sort(perm), np.arange(len(pts)))
        np.testing.assert_array_equal(sorted_pts, pts[perm].T)
        assert sorted_pts.flags.c_contiguous


def test_every_point_in_exactly_one_leaf_and_inside_it(case):
    src, tgt, _, tree = case
    leaves = tree.leaves
    centres, hw = tree.box_centers()[leaves], tree.box_half_widths()[leaves]
    tol = 1e-12 * tree.half_width
    for _, pts, _, begin, end in _sets(tree, src, tgt):
        owner = np.full(pts.shape[1], -1)
        for leaf, c, h in zip(leaves, centres, hw):
            rng_ = np.arange(begin[leaf], end[leaf])
            assert (owner[rng_] == -1).all(), "a point is in two leaves"
            owner[rng_] = leaf
            inside = np.abs(pts[:, rng_].T - c) <= h + tol
            assert inside.all(), f"leaf {leaf} does not contain its points"
        assert (owner >= 0).all(), "a point is in no leaf"


def _finest_cells(tree, points):
    """The cell of the finest level (2^MAX_DEPTH per axis) of each of the (3, n) points."""
    lower, edge = tree.center - tree.half_width, 2.0 * tree.half_width
    cells = np.floor((points.T - lower) / edge * 2.0**MAX_DEPTH).astype(np.int64)
    return np.minimum(cells, 2**MAX_DEPTH - 1)


def test_leaf_size_respected_above_max_depth(case):
    """A leaf holds more than leaf_size sources or targets only at max_depth, or when all its
    points lie in one cell of the finest level (no split could separate them)."""
    _, _, leaf_size, tree = case
    leaves = tree.leaves
    n_src = tree.src_end[leaves] - tree.src_begin[leaves]
    n_tgt = tree.tgt_end[leaves] - tree.tgt_begin[leaves]
    over = (n_src > leaf_size) | (n_tgt > leaf_size)
    for leaf in leaves[over & (tree.levels[leaves] < tree.max_depth)]:
        points = np.hstack([tree.sources[:, tree.src_begin[leaf]:tree.src_end[leaf]],
                            tree.targets[:, tree.tgt_begin[leaf]:tree.tgt_end[leaf]]])
        assert len(np.unique(_finest_cells(tree, points), axis=0)) == 1, leaf
    assert ((n_src + n_tgt)[leaves >= 0] > 0).all(), "an empty leaf is stored"


def test_leaves_and_omitted_empty_boxes_tile_the_root(case):
    *_, tree = case
    lv = tree.levels
    # measure volumes in units of the finest cell: a box of level l holds 8**(20 - l)
    vol = 8 ** (MAX_DEPTH - lv).astype(object)
    n_child = np.diff(tree.child_ptr)
    missing = sum(int(v // 8) * (8 - int(c)) for v, c in zip(vol, n_child) if c > 0)
    assert sum(vol[tree.leaves]) + missing == 8**MAX_DEPTH
    # and leaves never overlap: their finest-level key intervals are disjoint in Morton order
    leaves = tree.leaves
    m = tree.keys[leaves] ^ (1 << (3 * lv[leaves]))
    start = m << (3 * (MAX_DEPTH - lv[leaves]))
    stop = (m + 1) << (3 * (MAX_DEPTH - lv[leaves]))
    assert (start[1:] >= stop[:-1]).all()


def test_parent_child_structure(case):
    *_, tree = case
    keys, parent = tree.keys, tree.parent
    assert (np.diff(keys) > 0).all(), "box keys must be sorted and unique"
    assert parent[0] == -1 and keys[0] == 1
    np.testing.assert_array_equal(keys[parent[1:]], keys[1:] >> 3)
    np.testing.assert_array_equal(tree.levels[1:], tree.levels[parent[1:]] + 1)
    for b in range(tree.n_boxes):
        kids = np.arange(tree.child_ptr[b], tree.child_ptr[b + 1])
        assert (parent[kids] == b).all()
        if len(kids):  # a parent's point ranges are the union of its children's
            for beg, end in ((tree.src_begin, tree.src_end), (tree.tgt_begin, tree.tgt_end)):
                assert beg[kids[0]] == beg[b] and end[kids[-1]] == end[b]
                assert (beg[kids[1:]] == end[kids[:-1]]).all()
    for level in range(tree.depth + 1):
        sl = slice(tree.level_ptr[level], tree.level_ptr[level + 1])
        assert (tree.levels[sl] == level).all()


def test_coincident_points_stop_splitting_once_alone():
    """Coincident points (and points within one finest cell) stop splitting as soon as they are
    alone in a box, not at max_depth; points that would separate below max_depth stop there."""
    pts = np.tile([[0.25, 0.5, 0.75]], (500, 1))
    pts = np.concatenate([pts, np.random.default_rng(1).random((100, 3))])
    tree = build_octree(pts, leaf_size=10, max_depth=12)
    big = tree.leaves[(tree.src_end - tree.src_begin)[tree.leaves] > 10]
    assert len(big) == 1 and tree.src_end[big[0]] - tree.src_begin[big[0]] == 500
    assert tree.levels[big[0]] < 12 and tree.depth < 12
    parent = tree.parent[big[0]]  # its parent also held another point: it had to split
    assert tree.src_end[parent] - tree.src_begin[parent] > 500
    alone = build_octree(pts[:500], leaf_size=10)  # all coincident: the root is the leaf
    assert alone.depth == 0 and alone.n_leaves == 1
    near = pts[:500] + 1e-5 * np.random.default_rng(2).random((500, 3))  # apart at level ~16
    near = np.concatenate([near, [[0.9, 0.9, 0.9]]])  # one far point: the root has an extent
    deep = build_octree(near, leaf_size=10, max_depth=12)
    assert deep.depth == 12  # distinct points never split apart are stopped by the limit


@pytest.mark.parametrize("offset, scale", [(0.0, 1e-9), (1e6, 1.0), (-5.0, 1e8)])
def test_any_location_and_scale(offset, scale):
    pts = offset + scale * np.random.default_rng(2).random((2000, 3))
    tree = build_octree(pts, leaf_size=32)
    lo, hi = tree.center - tree.half_width, tree.center + tree.half_width
    assert (pts >= lo).all() and (pts <= hi).all()
    assert tree.summary()["max_sources_per_leaf"] <= 32


def test_single_point():
    tree = build_octree(np.array([[1.0, 2.0, 3.0]]), leaf_size=1)
    assert tree.n_boxes == 1 and tree.n_leaves == 1 and tree.depth == 0


def test_shared_arrays_when_targets_are_sources(rng):
    tree = build_octree(rng.random((100, 3)), leaf_size=8)
    assert tree.targets_are_sources and tree.targets is tree.sources
    assert tree.tgt_begin is tree.src_begin


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(leaf_size=0), "leaf_size must be a positive integer"),
     (dict(leaf_size=2.5), "leaf_size must be a positive integer"),
     (dict(max_depth=21), r"max_depth must be an integer in \[0, 20\]"),
     (dict(sources=np.zeros((3, 3, 1))), "sources must have shape"),
     (dict(sources=np.array([[0.0, np.nan, 1.0]])), "sources contains NaN"),
     (dict(targets=np.zeros((0, 3))), "targets is empty")],
)
def test_bad_input(kwargs, match):
    args = dict(sources=np.random.default_rng(0).random((10, 3)))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_octree(args.pop("sources"), **args)


def test_explicit_root_and_min_depth(rng):
    """The distributed FMM's trees: a given root cube, and every point at least min_depth deep."""
    src = rng.random((300, 3)) * 0.5
    default = build_octree(src, leaf_size=50)
    same = build_octree(src, leaf_size=50, root=(default.center, default.half_width))
    for name in ("keys", "src_begin", "src_end", "source_perm"):
        np.testing.assert_array_equal(getattr(same, name), getattr(default, name))
    tree = build_octree(src, leaf_size=50, root=([0.5, 0.5, 0.5], 0.5), min_depth=4)
    assert tree.half_width == 0.5 and np.array_equal(tree.center, [0.5, 0.5, 0.5])
    assert tree.levels[tree.leaves].min() >= 4
    assert (tree.anchors[tree.levels == 1] == 0).all()  # the points fill one octant
    n_src = tree.src_end[tree.leaves] - tree.src_begin[tree.leaves]
    assert n_src.sum() == 300 and n_src.min() >= 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(root=([0.0, 0.0, 0.0], 0.5)), "root does not hold every point"),
    (dict(root=([0.5, 0.5, 0.5], -1.0)), "positive half_width"),
    (dict(root="cube"), "root must be a pair"),
    (dict(min_depth=5, max_depth=4), r"min_depth must be an integer in \[0, max_depth=4\]")])
def test_bad_root_or_min_depth(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_octree(np.random.default_rng(0).random((10, 3)), **kwargs)
