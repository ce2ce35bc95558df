"""The tree's integer sorts against their definition, NumPy's stable argsort; and the tree's
point order against the stable sort of its point keys."""

import numpy as np
import pytest

from fmmsolve import build_octree
from fmmsolve.testing import point_cloud
from fmmsolve.tree.morton import point_keys
from fmmsolve.tree.sorting import argsort_keys, argsort_rows, take_columns

# key ranges from many ties (stability matters) to 60-bit Morton keys; sizes on both sides of
# the bucket pass's threshold
RANGES = [1, 2, 37, 2**20, 2**60]
SIZES = [0, 1, 300, 511, 512, 20_000]


@pytest.mark.parametrize("high", RANGES)
@pytest.mark.parametrize("n", SIZES)
def test_argsort_keys_is_numpys_stable_argsort(rng, n, high):
    keys = rng.integers(0, high, n)
    np.testing.assert_array_equal(argsort_keys(keys), np.argsort(keys, kind="stable"))


def test_argsort_keys_of_clustered_morton_keys(rng):
    """Keys sharing their top bits fill few buckets; duplicates tie."""
    pts = point_cloud("duplicates", 30_000, rng)
    keys = point_keys(pts, pts.min(axis=0), float(np.ptp(pts, axis=0).max()) * 1.01)
    np.testing.assert_array_equal(argsort_keys(keys), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("n_rows", [1, 7, 5000])
@pytest.mark.parametrize("n", [0, 1, 20_000])
def test_argsort_rows_is_numpys_stable_argsort(rng, n, n_rows):
    rows = rng.integers(0, n_rows, n)
    order, indptr = argsort_rows(rows, n_rows)
    np.testing.assert_array_equal(order, np.argsort(rows, kind="stable"))
    np.testing.assert_array_equal(indptr, np.r_[0, np.cumsum(np.bincount(rows,
                                                                         minlength=n_rows))])


def test_take_columns(rng):
    pts = rng.standard_normal((1000, 3))
    order = rng.permutation(1000)[:700]
    out = take_columns(pts, order)
    np.testing.assert_array_equal(out, pts[order].T)
    assert out.flags.c_contiguous


@pytest.mark.parametrize("dist", ["uniform", "clusters", "duplicates"])
def test_tree_order_is_the_stable_sort_of_point_keys(rng, dist):
    pts = point_cloud(dist, 5000, rng)
    tree = build_octree(pts, leaf_size=20)
    lower = tree.center - tree.half_width
    keys = point_keys(pts, lower, 2.0 * tree.half_width)
    np.testing.assert_array_equal(tree.source_perm, np.argsort(keys, kind="stable"))
    # and the root is the enlarged bounding cube of the points
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    np.testing.assert_array_equal(tree.center, 0.5 * (lo + hi))
