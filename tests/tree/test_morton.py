"""Morton keys: hand-computed tables, round trips and the key arithmetic of the tree."""

import numpy as np
import pytest

from fmmsolve.tree import morton


def slow_encode(i, j, k):
    out = 0
    for b in range(21):
        out |= (((i >> b) & 1) << (3 * b) | ((j >> b) & 1) << (3 * b + 1)
                | ((k >> b) & 1) << (3 * b + 2))
    return out


@pytest.mark.parametrize(
    "anchor, code",
    [((0, 0, 0), 0), ((1, 0, 0), 1), ((0, 1, 0), 2), ((0, 0, 1), 4), ((1, 1, 1), 7),
     ((2, 0, 0), 8), ((3, 5, 6), 427), ((2**20 - 1,) * 3, 2**60 - 1)],
)
def test_encode_table(anchor, code):
    assert morton.encode(*anchor) == code
    assert morton.decode(code) == anchor


def test_round_trip_random(rng):
    anchors = rng.integers(0, 2**20, size=(5000, 3))
    codes = morton.encode_array(anchors)
    assert codes.dtype == np.int64 and (codes >= 0).all()
    np.testing.assert_array_equal(morton.decode_array(codes), anchors)
    assert all(slow_encode(*a) == c for a, c in zip(anchors[:200].tolist(), codes[:200]))


@pytest.mark.parametrize(
    "key, level, anchor, parent",
    [(1, 0, (0, 0, 0), 0), (13, 1, (1, 0, 1), 1), (107, 2, (3, 1, 2), 13),
     (8, 1, (0, 0, 0), 1), (15, 1, (1, 1, 1), 1)],
)
def test_box_key_table(key, level, anchor, parent):
    assert morton.key_level(key) == level
    assert morton.key_anchor(key) == (level, *anchor)
    assert morton.box_key(*anchor, level) == key
    assert morton.parent_key(key) == parent


def test_children_of_a_box():
    key = 107
    children = [morton.child_key(key, c) for c in range(8)]
    assert children == list(range(856, 864))
    _, i, j, k = morton.key_anchor(key)
    for c, ck in enumerate(children):
        level, ci, cj, ck_ = morton.key_anchor(ck)
        assert level == 3 and morton.parent_key(ck) == key
        assert (ci, cj, ck_) == (2 * i + (c & 1), 2 * j + (c >> 1 & 1), 2 * k + (c >> 2 & 1))


def test_point_keys_follow_the_grid():
    lower, edge = np.array([-1.0, -1.0, -1.0]), 2.0
    pts = np.array([[-1.0, -1.0, -1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-0.75, 0.25, 0.9]])
    keys = morton.point_keys(pts, lower, edge)
    grid = 2**morton.MAX_DEPTH
    assert keys[0] == 0
    assert keys[1] == morton.encode(grid // 2, grid // 2, grid // 2)
    assert keys[2] == morton.encode(grid - 1, grid - 1, grid - 1)  # clipped into the cube
    expected = [int(np.floor((c + 1) / 2 * grid)) for c in pts[3]]
    assert keys[3] == morton.encode(*expected)
