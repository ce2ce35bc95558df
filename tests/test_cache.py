"""The disk cache of Plans: reuse across processes, keys that never mix configurations,
damaged entries recomputed with a warning, and concurrent builders."""

import os
import pathlib
import subprocess
import sys

import joblib
import numpy as np
import pytest

import fmmsolve
from fmmsolve import cache
from fmmsolve.operators import surfaces
from fmmsolve.operators.plan import compute_plan

ROOT = pathlib.Path(__file__).resolve().parents[1]
ORDER, TOL = 4, 1e-4  # a cheap plan


@pytest.fixture
def memory(tmp_path):
    cache._IN_PROCESS.clear()
    yield joblib.Memory(tmp_path / "plans", verbose=0)
    cache._IN_PROCESS.clear()


@pytest.fixture
def computed(monkeypatch):
    """Count the Plans actually computed (not loaded) through the cache."""
    calls = []

    def counting(*args):
        calls.append(args)
        return compute_plan.__wrapped__(*args)  # bypass the in-process memo

    monkeypatch.setattr(cache, "compute_plan", counting)
    return calls


def _load(memory, **changes):
    args = dict(kernel_name="laplace", expansion_order=ORDER, compression_tol=TOL, dtype="<f8",
                wavenumber=None)
    args.update(changes)
    cache._IN_PROCESS.clear()  # force the disk lookup
    return cache.load_plan(memory, **args)


def _entries(memory):
    return sorted(pathlib.Path(memory.location).rglob("output.pkl"))


def _assert_same_plan(a, b):
    for name, value in vars(a).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)
        else:
            assert value == getattr(b, name), name


def test_second_load_comes_from_disk(memory, computed):
    first = _load(memory)
    assert len(computed) == 1 and len(_entries(memory)) == 1
    second = _load(memory)
    assert len(computed) == 1
    _assert_same_plan(first, second)
    _assert_same_plan(first, compute_plan("laplace", ORDER, TOL, "<f8"))


@pytest.mark.parametrize("change", [
    {"wavenumber": 1.0}, {"wavenumber": 2.0}, {"expansion_order": ORDER + 1},
    {"dtype": "<f4"}, {"compression_tol": TOL / 10}, {"m2l": False}])
def test_every_parameter_is_part_of_the_key(memory, computed, change):
    _load(memory)
    _load(memory, **change)
    assert len(computed) == 2, "a changed parameter reused another configuration's plan"
    assert len(_entries(memory)) == 2
    _load(memory, **change)
    assert len(computed) == 2
    if "m2l" in change:  # a plan without M2L operators, read back as such
        assert _load(memory, **change).rank == 0 and _load(memory).rank > 0


def test_radii_and_format_version_are_part_of_the_key(memory, computed, monkeypatch):
    base = _load(memory)
    monkeypatch.setattr(surfaces, "UP_EQUIV", 1.1)
    moved = _load(memory)
    assert len(computed) == 2
    assert not np.array_equal(base.uc2e_a, moved.uc2e_a)  # the radii really change the content
    monkeypatch.setattr(surfaces, "UP_EQUIV", 1.05)
    monkeypatch.setattr(cache, "FORMAT_VERSION", cache.FORMAT_VERSION + 1)
    _load(memory)
    assert len(computed) == 3


def test_unreadable_entry_is_recomputed_with_a_warning(memory, computed):
    good = _load(memory)
    (entry,) = _entries(memory)
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    with pytest.warns(RuntimeWarning, match="damaged"):
        again = _load(memory)
    assert len(computed) == 2
    _assert_same_plan(good, again)
    _load(memory)
    assert len(computed) == 2  # and the entry was rewritten


def test_entry_with_altered_numbers_is_detected(memory, computed):
    good = _load(memory)
    (entry,) = _entries(memory)
    payload = joblib.load(entry)
    payload["arrays"]["m2m"][0, 0, 0] += 1e-9  # unpickles fine, but is wrong
    joblib.dump(payload, entry)
    with pytest.warns(RuntimeWarning, match="damaged"):
        again = _load(memory)
    assert len(computed) == 2
    _assert_same_plan(good, again)


def test_memory_argument(tmp_path, monkeypatch):
    x = np.random.default_rng(0).random((500, 3))
    cache._IN_PROCESS.clear()
    fmmsolve.FMMOperator(x, expansion_order=ORDER, memory=tmp_path / "a")
    assert list((tmp_path / "a").rglob("output.pkl"))
    fmmsolve.FMMOperator(x, expansion_order=ORDER, memory=str(tmp_path / "b"))
    assert list((tmp_path / "b").rglob("output.pkl"))
    fmmsolve.FMMOperator(x, expansion_order=ORDER, memory=joblib.Memory(tmp_path / "c"))
    assert list((tmp_path / "c").rglob("output.pkl"))
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "env"))
    assert cache.default_location() == tmp_path / "env"
    fmmsolve.FMMOperator(x, expansion_order=ORDER)
    assert list((tmp_path / "env").rglob("output.pkl"))
    assert cache.cache_size() > 0
    fmmsolve.clear_cache()
    assert not list((tmp_path / "env").rglob("output.pkl")) and cache.cache_size() < 1000
    before = sorted(tmp_path.rglob("*"))
    fmmsolve.FMMOperator(x, expansion_order=ORDER, memory=None)
    assert sorted(tmp_path.rglob("*")) == before
    with pytest.raises(TypeError, match="memory must be"):
        fmmsolve.FMMOperator(x, memory=3)


PROBE = """
import sys, numpy as np, fmmsolve
from fmmsolve.operators import plan
x = np.random.default_rng(0).random((2000, 3))
A = fmmsolve.FMMOperator(x, expansion_order=6, memory=sys.argv[1])
y = A @ np.ones(2000)
np.save(sys.argv[2], y)
print(plan._compute_plan64.cache_info().misses)
"""


def _start(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-c", PROBE, *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_concurrent_builders_and_a_later_process(tmp_path):
    store = tmp_path / "plans"
    first, second = _start(store, tmp_path / "1.npy"), _start(store, tmp_path / "2.npy")
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    later = _start(store, tmp_path / "3.npy")
    out, err = later.communicate(timeout=600)
    assert later.returncode == 0, err
    assert out.split()[-1] == "0", "the later process recomputed the plan"
    results = [np.load(tmp_path / f"{i}.npy") for i in (1, 2, 3)]
    # Same Plan everywhere; only the last bits may differ, between a process that compiled the
    # kernels itself and one that loaded them from Numba's cache.
    np.testing.assert_allclose(results[1], results[0], rtol=1e-12)
    np.testing.assert_allclose(results[2], results[0], rtol=1e-12)
    assert len(list(store.rglob("output.pkl"))) == 1
