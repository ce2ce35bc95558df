"""The frames of :mod:`fmmsolve.operators.translations` against their NumPy definitions."""

import numpy as np
import pytest

from fmmsolve import build_octree
from fmmsolve.operators.translations import leaf_frames, leaf_offsets
from fmmsolve.testing import point_cloud


@pytest.fixture(params=["same", "separate"])
def tree(request, rng):
    src = point_cloud("clusters", 3000, rng)
    tgt = None if request.param == "same" else point_cloud("sphere", 1000, rng)
    return build_octree(src, tgt, leaf_size=20)


def test_leaf_frames_are_centres_of_the_leaves_bounding_boxes(tree):
    frames = leaf_frames(tree)
    centres = tree.box_centers()
    for b in range(tree.n_boxes):
        pts = [tree.sources[:, tree.src_begin[b]:tree.src_end[b]]]
        if not tree.targets_are_sources:
            pts.append(tree.targets[:, tree.tgt_begin[b]:tree.tgt_end[b]])
        pts = np.concatenate(pts, axis=1)
        if not tree.is_leaf[b] or pts.shape[1] == 0:
            np.testing.assert_array_equal(frames[b], centres[b])
        else:
            lo, hi = pts.min(axis=1), pts.max(axis=1)
            np.testing.assert_array_equal(frames[b], 0.5 * lo + 0.5 * hi)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_leaf_offsets_are_points_minus_their_leafs_origin(tree, dtype):
    frames = leaf_frames(tree)
    owner = np.repeat(tree.leaves, (tree.src_end - tree.src_begin)[tree.leaves])
    expected = (tree.sources - frames[owner].T).astype(dtype)
    out = leaf_offsets(tree.sources, tree.src_begin, tree.src_end, tree.leaves, frames, dtype)
    assert out.dtype == dtype and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)
