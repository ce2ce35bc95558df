"""Every interaction list against its brute-force geometric definition, and completeness."""

import numpy as np
import pytest

from fmmsolve import build_interaction_lists, build_octree
from fmmsolve.tree.lists import (InteractionLists, leaves_away_from_sources,
                                 narrow_far_field, near_and_far)

from .helpers import adjacency, ancestor_or_self, tree_cases

CASES = tree_cases(seed=7)


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def built(request):
    _, src, tgt, leaf_size = request.param
    tree = build_octree(src, tgt, leaf_size=leaf_size)
    assert tree.n_boxes < 3000, "keep the brute-force oracle affordable"
    return tree, build_interaction_lists(tree), adjacency(tree)


def _dense(lists, name, n):
    """The list ``name`` as a boolean (target box, source box) matrix, checking for repeats."""
    mat = np.zeros((n, n), dtype=bool)
    ptr, idx = getattr(lists, f"{name}_indptr"), getattr(lists, f"{name}_indices")
    assert ptr.shape == (n + 1,) and ptr[0] == 0 and (np.diff(ptr) >= 0).all()
    rows = np.repeat(np.arange(n), np.diff(ptr))
    assert len(set(zip(rows.tolist(), idx.tolist()))) == len(idx), f"{name} list repeats a box"
    mat[rows, idx] = True
    return mat


def _oracle(tree, adj):
    """U, V, W, X from their definitions, as boolean (target box, source box) matrices."""
    lv, par = tree.levels, tree.parent
    leaf = tree.is_leaf
    src = tree.src_end > tree.src_begin
    tgt = tree.tgt_end > tree.tgt_begin
    pa = np.where(par >= 0, par, 0)  # the root's "parent" is never used (masked below)
    not_root = par >= 0
    row_leaf = (leaf & tgt)[:, None]
    col_src = src[None, :]
    u = row_leaf & (leaf & src)[None, :] & adj
    v = (tgt & not_root)[:, None] & col_src & not_root[None, :] & (lv[:, None] == lv[None, :]) \
        & ~adj & adj[pa][:, pa]
    w = row_leaf & col_src & not_root[None, :] & (lv[None, :] > lv[:, None]) & ~adj & adj[:, pa]
    x = (tgt & not_root)[:, None] & (leaf & src)[None, :] & (lv[None, :] < lv[:, None]) \
        & ~adj & adj[pa, :]
    return dict(u=u, v=v, w=w, x=x)


@pytest.mark.parametrize("name", ["u", "v", "w", "x"])
def test_list_matches_definition(built, name):
    tree, lists, adj = built
    got = _dense(lists, name, tree.n_boxes)
    want = _oracle(tree, adj)[name]
    missing, extra = np.argwhere(want & ~got), np.argwhere(got & ~want)
    assert not len(missing) and not len(extra), (
        f"{name}: {len(missing)} missing, e.g. {missing[:3].tolist()}; "
        f"{len(extra)} extra, e.g. {extra[:3].tolist()}")


def _moved(tree, lists, min_points):
    """The lists with cheap W and X entries moved into the near field, as InteractionLists."""
    (u_ptr, u_idx), (w_ptr, w_idx), (x_ptr, x_idx) = near_and_far(tree, lists, min_points)
    return InteractionLists(u_ptr, u_idx, lists.v_indptr, lists.v_indices, w_ptr, w_idx,
                            x_ptr, x_idx)


@pytest.mark.parametrize("min_points", [0, 5, 40, 10**9])
def test_every_source_leaf_reaches_every_target_leaf_once(built, min_points):
    tree, lists, _ = built
    lists = _moved(tree, lists, min_points)
    n = tree.n_boxes
    leaf = tree.is_leaf
    t_leaves = np.flatnonzero(leaf & (tree.tgt_end > tree.tgt_begin))
    s_leaves = np.flatnonzero(leaf & (tree.src_end > tree.src_begin))
    anc = ancestor_or_self(tree).astype(float)  # anc[a, b]: a is b or an ancestor of b
    u, v, w, x = (_dense(lists, name, n).astype(float) for name in "uvwx")
    # near field + M2L at T or an ancestor + M2P at T + P2L at T or an ancestor
    cover = u + anc.T @ v @ anc + w @ anc + anc.T @ x
    cover = cover[np.ix_(t_leaves, s_leaves)]
    bad = np.argwhere(cover != 1)
    assert not len(bad), (
        f"{len(bad)} (target leaf, source leaf) pairs covered {cover[tuple(bad[0])]} times, "
        f"e.g. {t_leaves[bad[0][0]]}, {s_leaves[bad[0][1]]}")


def test_the_adaptive_lists_are_exercised():
    """At least one case must have non-empty W and X lists, or the oracle proves little."""
    seen = {"w": 0, "x": 0, "x of boxes without sources": 0}
    for _, src, tgt, leaf_size in CASES:
        tree = build_octree(src, tgt, leaf_size=leaf_size)
        lists = build_interaction_lists(tree)
        seen["w"] += len(lists.w_indices)
        seen["x"] += len(lists.x_indices)
        x_rows = np.repeat(np.arange(tree.n_boxes), np.diff(lists.x_indptr))
        seen["x of boxes without sources"] += int((tree.src_end == tree.src_begin)[x_rows].sum())
    assert min(seen.values()) > 100, seen


def test_uniform_tree_has_the_classic_list_sizes():
    """A full uniform tree of depth 3: an interior leaf has 27 neighbours and 189 V boxes."""
    g = (np.arange(8) + 0.5) / 8
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    tree = build_octree(pts, leaf_size=1)
    lists = build_interaction_lists(tree)
    assert tree.depth == 3 and tree.n_leaves == 512
    sizes_u = np.diff(lists.u_indptr)[tree.leaves]
    sizes_v = np.diff(lists.v_indptr)[tree.leaves]
    assert sizes_u.max() == 27 and sizes_u.min() == 8
    assert sizes_v.max() == 189
    assert len(lists.w_indices) == 0 and len(lists.x_indices) == 0


def test_moving_to_the_near_field_only_moves(built):
    tree, lists, _ = built
    kept = _moved(tree, lists, 0)
    for name in "w":  # nothing is cheaper than zero points: W is unchanged
        for part in ("indptr", "indices"):
            np.testing.assert_array_equal(getattr(kept, f"{name}_{part}"),
                                          getattr(lists, f"{name}_{part}"))
    # X entries of target boxes without sources always move; the others stay, in order
    holds_sources = tree.src_end > tree.src_begin
    x_rows = np.repeat(np.arange(tree.n_boxes), np.diff(lists.x_indptr))
    np.testing.assert_array_equal(kept.x_indices, lists.x_indices[holds_sources[x_rows]])
    np.testing.assert_array_equal(np.diff(kept.x_indptr),
                                  np.where(holds_sources, np.diff(lists.x_indptr), 0))
    everything = _moved(tree, lists, 10**9)
    assert len(everything.w_indices) == 0
    x_rows = np.repeat(np.arange(tree.n_boxes), np.diff(everything.x_indptr))
    assert not tree.is_leaf[x_rows].any()  # only non-leaf targets keep P2L
    assert holds_sources[x_rows].all()  # ... and only those that hold sources
    near = _dense(everything, "u", tree.n_boxes)
    assert tree.is_leaf[np.nonzero(near)[1]].all()  # the near field lists leaves only


# -- the far field of leaves away from the sources, through narrow boxes --------------------------

@pytest.mark.parametrize("max_half_width", [np.inf, 0.2, 0.05, 1e-3])
def test_narrow_far_field_reaches_every_source_once(built, max_half_width):
    tree, lists, _ = built
    t_leaves = tree.leaves[(tree.tgt_end > tree.tgt_begin)[tree.leaves]]
    rewritten = t_leaves[::2]  # any leaves: the rewrite does not depend on why
    min_points = 20
    (near_ptr, near_idx), w = near_and_far(tree, lists, min_points)[:2]
    (n_ptr, n_idx), (w_ptr, w_idx) = narrow_far_field(
        tree, (near_ptr, near_idx), w, rewritten, max_half_width, 3.0, min_points)
    c, h = tree.box_centers(), tree.box_half_widths()
    n_src = tree.src_end - tree.src_begin
    for t in rewritten:
        count = np.zeros(tree.n_sources, int)
        for a in n_idx[n_ptr[t]:n_ptr[t + 1]]:
            assert tree.is_leaf[a]
            count[tree.src_begin[a]:tree.src_end[a]] += 1
        for a in w_idx[w_ptr[t]:w_ptr[t + 1]]:
            # M2P only from a narrow box with enough sources, every target outside its check
            # surface (max-norm distance from its centre >= 3 half-widths)
            assert h[a] <= max_half_width and n_src[a] >= min_points
            tgt = tree.targets[:, tree.tgt_begin[t]:tree.tgt_end[t]]
            assert (np.abs(tgt - c[a][:, None]).max(axis=0) >= 3.0 * h[a] * (1 - 1e-12)).all()
            count[tree.src_begin[a]:tree.src_end[a]] += 1
        assert (count == 1).all(), (t, np.flatnonzero(count != 1)[:5])
    kept = np.setdiff1d(np.arange(tree.n_boxes), rewritten)  # other rows are untouched
    for (ptr, idx), (ptr0, idx0) in (((n_ptr, n_idx), (near_ptr, near_idx)), ((w_ptr, w_idx), w)):
        for b in kept:
            assert np.array_equal(idx[ptr[b]:ptr[b + 1]], idx0[ptr0[b]:ptr0[b + 1]])


def _away_oracle(tree, lists, max_half_width):
    """Leaves away from the sources, from their definition, by brute force."""
    h = tree.box_half_widths()
    out = []
    for t in tree.leaves[(tree.tgt_end > tree.tgt_begin)[tree.leaves]]:
        reaching = [h[a] for a in lists.get("w", t)]
        b = t
        while b >= 0:
            if len(lists.get("v", b)) or len(lists.get("x", b)):
                reaching.append(h[b])
            b = tree.parent[b]
        tgt = tree.targets[:, tree.tgt_begin[t]:tree.tgt_end[t]]
        nearest = np.sqrt(((tgt[:, :, None] - tree.sources[:, None, :]) ** 2).sum(0)).min(1)
        beside = len(lists.get("u", t)) > 0 and nearest.max() <= h[t]
        if max(reaching, default=0.0) > max_half_width and nearest.max() > 2 * max_half_width \
                and not beside:
            out.append(t)
    return np.array(out, np.int64)


@pytest.mark.parametrize("max_half_width", [0.5, 0.1, 0.02])
def test_leaves_away_from_sources_match_their_definition(built, max_half_width):
    tree, lists, _ = built
    got = leaves_away_from_sources(tree, lists, max_half_width)
    if tree.targets_are_sources:
        assert len(got) == 0
    else:
        np.testing.assert_array_equal(np.sort(got), np.sort(_away_oracle(tree, lists,
                                                                           max_half_width)))
    assert len(leaves_away_from_sources(tree, lists, np.inf)) == 0


def test_leaves_away_from_sources_are_found():
    """The oracle above must see leaves of both kinds (away and beside the sources)."""
    _, src, tgt, leaf_size = CASES[-1]  # disjoint sets: a sphere, and a cube beside it
    tree = build_octree(src, tgt, leaf_size=leaf_size)
    lists = build_interaction_lists(tree)
    away = leaves_away_from_sources(tree, lists, 0.05)
    n_target_leaves = np.count_nonzero((tree.tgt_end > tree.tgt_begin)[tree.leaves])
    assert len(away) == n_target_leaves > 0  # every target is 2 from the sphere, or farther
    mixed = build_octree(src, np.vstack([tgt, src[:200] + 1e-3]), leaf_size=leaf_size)
    mixed_lists = build_interaction_lists(mixed)
    some = leaves_away_from_sources(mixed, mixed_lists, 0.05)
    assert 0 < len(some) < np.count_nonzero((mixed.tgt_end > mixed.tgt_begin)[mixed.leaves])
