"""Brute-force geometry of a built tree, used as the oracle for the tree and list tests."""

import numpy as np

from fmmsolve.testing import point_cloud

# (name, sources, targets or None, leaf_size): random adaptive trees of several shapes.
def tree_cases(seed=0):
    rng = np.random.default_rng(seed)
    src_box = point_cloud("uniform", 1500, rng)
    return [
        ("uniform", point_cloud("uniform", 3000, rng), None, 40),
        ("sphere", point_cloud("sphere", 3000, rng), None, 30),
        ("clusters", point_cloud("clusters", 2500, rng), None, 25),
        ("curve", point_cloud("curve", 2000, rng), None, 12),
        ("duplicates", point_cloud("duplicates", 2000, rng), None, 20),
        ("sources_ne_targets", src_box,
         0.3 * point_cloud("clusters", 1200, rng) + np.array([0.9, 0.4, 0.6]), 16),
        ("disjoint_sets", point_cloud("sphere", 800, rng),
         np.array([3.0, 0, 0]) + 0.2 * point_cloud("uniform", 700, rng), 10),
    ]


def adjacency(tree):
    """Closed-cube intersection of every pair of boxes, from float geometry."""
    c, h = tree.box_centers(), tree.box_half_widths()
    lo, hi = c - h[:, None], c + h[:, None]
    tol = 1e-9 * tree.half_width
    return np.all((lo[:, None, :] <= hi[None, :, :] + tol)
                  & (lo[None, :, :] <= hi[:, None, :] + tol), axis=2)


def ancestor_or_self(tree):
    """anc[a, b] is True when box a is box b or one of its ancestors."""
    n = tree.n_boxes
    anc = np.eye(n, dtype=bool)
    cur = np.arange(n)
    while True:
        cur = np.where(cur >= 0, tree.parent[np.maximum(cur, 0)], -1)
        ok = cur >= 0
        if not ok.any():
            return anc
        anc[cur[ok], np.flatnonzero(ok)] = True
