"""benchmarks/plots.py: it reads the recorded tables and draws every figure of the docs."""

import pathlib
import runpy

import pytest

pytest.importorskip("matplotlib")

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plots():
    return runpy.run_path(str(ROOT / "benchmarks" / "plots.py"))


def test_recorded_peer_tables_are_read(plots):
    recorded = plots["recorded_peers"]()
    assert set(recorded) == {"cube", "sphere"}
    for rows, shares in recorded.values():
        assert [r["code"] for r in rows] == ["fmmsolve", "ferreus", "ferreus", "fmm3dpy"]
        assert all(r["eval"] > 0 and 0 < r["error"] < 1e-4 for r in rows)
        assert sum(shares[o] for o in plots["OPS"]) == pytest.approx(1, abs=0.05)


def test_every_figure_is_drawn_from_the_committed_data(plots, tmp_path):
    for name in ("time_against_n", "error_against_eps", "breakdown", "against_peers"):
        out = tmp_path / f"{name}.png"
        assert plots[name](out) is not False, f"{name}: no data"
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
