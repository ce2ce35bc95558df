"""The tree queries (fmmsolve.tree.queries) against brute-force geometry: every box's cube is
checked against every point, anchor and box, on adaptive trees and outside the root cube."""

import numpy as np
import pytest

from fmmsolve import build_octree
from fmmsolve.tree import queries
from fmmsolve.tree.morton import MAX_DEPTH

from .helpers import adjacency, tree_cases

CASES = [c for c in tree_cases(1) if c[0] in ("sphere", "clusters", "duplicates",
                                              "sources_ne_targets")]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def tree(request):
    _, src, tgt, leaf_size = request.param
    return build_octree(src, tgt, leaf_size=leaf_size)


def _points(tree, rng):
    """Points in the root cube (uniform, and on the tree's own points), around and outside it."""
    lower = tree.center - tree.half_width
    edge = 2 * tree.half_width
    return np.concatenate([lower + edge * rng.random((400, 3)),
                           tree.sources.T[rng.choice(tree.n_sources, 200)],
                           tree.center + edge * (rng.random((200, 3)) * 1.6 - 0.8),
                           tree.center + 10 * edge * rng.standard_normal((20, 3))])


def test_locate_finds_the_deepest_box_whose_cube_holds_the_point(tree, rng):
    y = _points(tree, rng)
    # box b holds y when y's cell at b's level, floor((y - lower) / edge * 2^level), is b's anchor
    cell = np.floor((y - (tree.center - tree.half_width)) / (2 * tree.half_width)
                    * 2.0 ** tree.levels[:, None, None]).astype(np.int64)  # (n_boxes, n, 3)
    holds = np.all(cell == tree.anchors[:, None, :], axis=2)
    depth = np.where(holds, tree.levels[:, None], -1)
    expected = np.where(holds.any(axis=0), np.argmax(depth, axis=0), -1)
    box = queries.locate(tree, y)
    assert box.dtype == np.int64 and box.shape == (len(y),)
    np.testing.assert_array_equal(box, expected)
    assert (box == -1).sum() >= 20  # the far points at least
    assert (box >= 0).any() and (~tree.is_leaf[box[box >= 0]]).any()  # some empty octants


def test_find_scans_the_anchors_of_a_level(tree, rng):
    for level in range(min(tree.depth + 1, MAX_DEPTH) + 1):  # one level below the leaves
        side = 2 ** level
        anchors = np.concatenate([tree.anchors[tree.levels == level],
                                  rng.integers(-2, side + 2, (300, 3))])[:, None, :]
        found = queries.find(tree, anchors, level)
        assert found.shape == anchors.shape[:-1] and found.dtype == np.int64
        for a, f in zip(anchors.reshape(-1, 3), found.ravel()):
            match = np.flatnonzero((tree.levels == level) & np.all(tree.anchors == a, axis=1))
            assert f == (match[0] if len(match) else -1)


def test_neighbourhoods_are_colleagues_and_adjacent_coarser_leaves(tree):
    touch = adjacency(tree)
    starts = np.concatenate([[-1], np.flatnonzero(~tree.is_leaf), tree.leaves[::7]])
    starts = np.sort(starts)
    ptr, idx = queries.neighbourhoods(tree, starts)
    assert ptr.shape == (len(starts) + 1,) and ptr[0] == 0 and ptr[-1] == len(idx)
    assert idx.dtype == np.int64 and idx.flags.c_contiguous
    for i, b in enumerate(starts):
        row = idx[ptr[i]:ptr[i + 1]]
        if b < 0:
            expected = [0]
        else:
            level = tree.levels[b]
            colleagues = (tree.levels == level) & touch[b]
            coarser = (tree.levels < level) & tree.is_leaf & touch[b]
            expected = np.flatnonzero(colleagues | coarser)
        assert len(set(row)) == len(row)
        np.testing.assert_array_equal(np.sort(row), expected)
