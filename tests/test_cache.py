"""The disk cache of Plans: reuse across processes, keys that never mix configurations,
damaged or misfiled entries recomputed with a warning, concurrent builders, and locations that
cannot be written (a file in the way, read-only, a full disk) that never make a fit fail."""

import errno
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import types
import warnings

import joblib
import numpy as np
import pytest

import fmmsolve
from fmmsolve import _cache_entry, cache
from fmmsolve.operators import surfaces
from fmmsolve.operators.plan import compute_plan
from fmmsolve.testing import relative_l2_error

ROOT = pathlib.Path(__file__).resolve().parents[1]
ORDER, TOL = 4, 1e-4  # a cheap plan


@pytest.fixture
def memory(tmp_path):
    cache._IN_PROCESS.clear()
    yield joblib.Memory(tmp_path / "plans", verbose=0)
    cache._IN_PROCESS.clear()
    cache._WARNED.clear()


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
    args = {"kernel_name": "laplace", "expansion_order": ORDER, "compression_tol": TOL,
            "dtype": "<f8", "wavenumber": None}
    args.update(changes)
    cache._IN_PROCESS.clear()  # force the disk lookup
    return cache.load_plan(memory, **args)


def _entries(memory):
    return sorted(pathlib.Path(memory.location).rglob("*.pkl"))


def _entry(memory, order):
    """The entry file of the Laplace plan of ``order``."""
    (path,) = [p for p in _entries(memory)
               if joblib.load(p)["key"][0::2][:2] == ("laplace", order)]
    return path


def _files(root):
    """Every file under ``root`` but joblib's .gitignore: entries and any partial ones."""
    return sorted(p for p in pathlib.Path(root).rglob("*") if p.is_file()
                  and p.name != ".gitignore")


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


def test_entry_copied_over_another_key_is_refused_and_recomputed(memory, computed):
    _load(memory, expansion_order=ORDER - 1)
    _load(memory)
    shutil.copyfile(_entry(memory, ORDER - 1), _entry(memory, ORDER))  # a valid, misfiled entry
    with pytest.warns(RuntimeWarning, match="another configuration"):
        again = _load(memory)
    assert len(computed) == 3
    assert again.expansion_order == ORDER
    assert again.n_surface == surfaces.n_surface_points(ORDER)
    _assert_same_plan(again, compute_plan("laplace", ORDER, TOL, "<f8"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_same_plan(_load(memory), again)  # the entry was rewritten
    assert len(computed) == 3


def test_stored_key_is_covered_by_the_checksum(memory, computed):
    _load(memory)
    entry = _entry(memory, ORDER)
    payload = joblib.load(entry)
    payload["key"] = payload["key"][:2] + (ORDER + 1,) + payload["key"][3:]
    joblib.dump(payload, entry)
    with pytest.warns(RuntimeWarning, match="damaged"):
        again = _load(memory)
    assert len(computed) == 2 and again.expansion_order == ORDER


def test_plan_fields_that_contradict_the_key_are_refused(memory, computed):
    good = _load(memory)
    entry = _entry(memory, ORDER)
    low = compute_plan("laplace", ORDER - 1, TOL, "<f8")
    # a consistent entry (sound checksum, right key) whose Plan is another order's
    payload = _cache_entry._payload(joblib.load(entry)["key"], low)
    payload["values"]["expansion_order"] = ORDER
    payload["checksum"] = _cache_entry._checksum(payload["key"], payload["values"],
                                                 payload["arrays"])
    joblib.dump(payload, entry)
    with pytest.warns(RuntimeWarning, match="inconsistent plan"):
        again = _load(memory)
    assert len(computed) == 2
    _assert_same_plan(good, again)


def test_fit_with_a_misfiled_entry_still_meets_eps(tmp_path):
    """The issue's case: the order-4 entry copied over the one eps=1e-5 chooses."""
    x = np.random.default_rng(1).random((3000, 3))
    q = np.random.default_rng(2).standard_normal(3000)
    store = joblib.Memory(tmp_path / "plans", verbose=0)
    cache._IN_PROCESS.clear()
    order = fmmsolve.FMMOperator(x, eps=1e-5, memory=store).expansion_order
    fmmsolve.FMMOperator(x, expansion_order=4, memory=store)
    assert order > 4
    shutil.copyfile(_entry(store, 4), _entry(store, order))
    cache._IN_PROCESS.clear()
    with pytest.warns(RuntimeWarning, match="another configuration"):
        A = fmmsolve.FMMOperator(x, eps=1e-5, memory=store)
    cache._IN_PROCESS.clear()
    assert A.expansion_order == order and A._engine.plan.expansion_order == order
    assert relative_l2_error(A @ q, fmmsolve.direct(x, x, q)) <= 1e-5


def test_memory_argument(tmp_path, monkeypatch):
    x = np.random.default_rng(0).random((500, 3))
    cache._IN_PROCESS.clear()
    fmmsolve.FMMOperator(x, expansion_order=ORDER, memory=tmp_path / "a")
    assert list((tmp_path / "a").rglob("*.pkl"))
    fmmsolve.FMMOperator(x, expansion_order=ORDER, memory=str(tmp_path / "b"))
    assert list((tmp_path / "b").rglob("*.pkl"))
    fmmsolve.FMMOperator(x, expansion_order=ORDER, memory=joblib.Memory(tmp_path / "c"))
    assert list((tmp_path / "c").rglob("*.pkl"))
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "env"))
    assert cache.default_location() == tmp_path / "env"
    fmmsolve.FMMOperator(x, expansion_order=ORDER)
    assert list((tmp_path / "env").rglob("*.pkl"))
    assert cache.cache_size() > 0
    fmmsolve.clear_cache()
    assert not list((tmp_path / "env").rglob("*.pkl")) and cache.cache_size() < 1000
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
    assert len(list(store.rglob("*.pkl"))) == 1
    assert not list(store.rglob("*.tmp")), "a builder left its temporary file"


# -- locations that cannot hold the cache: compute, warn once, go on -------------------------

X_SMALL = np.random.default_rng(3).random((800, 3))
Q_SMALL = np.random.default_rng(4).standard_normal(800)


def _unwritable(kind, tmp_path, monkeypatch):
    """A ``memory=`` argument for ``kind`` of unusable location, and the path warnings name."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    if kind == "regular file":
        return blocker, blocker
    if kind == "path under a regular file":
        return blocker / "plans", blocker / "plans"
    if kind == "joblib.Memory on a regular file":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joblib's own note that it cannot write there
            return joblib.Memory(blocker, verbose=0), blocker
    if kind == "FMMSOLVE_CACHE_DIR on a regular file":
        monkeypatch.setenv(cache.ENV_VAR, str(blocker))
        return "default", blocker
    if kind == "read-only directory (chmod)":
        if not hasattr(os, "geteuid") or os.geteuid() == 0:
            pytest.skip("chmod does not stop root (or this platform) from writing")
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        return tmp_path / "ro", tmp_path / "ro"
    assert kind == "read-only directory (EACCES)"  # what chmod gives a non-root user

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "ro"))

    monkeypatch.setattr(_cache_entry.tempfile, "mkstemp", refused)
    return tmp_path / "ro", tmp_path / "ro"


@pytest.mark.parametrize("kind", [
    "regular file", "path under a regular file", "joblib.Memory on a regular file",
    "FMMSOLVE_CACHE_DIR on a regular file", "read-only directory (chmod)",
    "read-only directory (EACCES)"])
def test_unwritable_cache_location_computes_the_plan_and_warns_once(kind, tmp_path,
                                                                     monkeypatch):
    memory, location = _unwritable(kind, tmp_path, monkeypatch)
    cache._IN_PROCESS.clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            A = fmmsolve.FMMOperator(X_SMALL, eps=1e-4, memory=memory)
            B = fmmsolve.FMMOperator(X_SMALL, eps=1e-4, memory=memory)
    finally:
        cache._IN_PROCESS.clear()
        if (tmp_path / "ro").is_dir():
            (tmp_path / "ro").chmod(0o755)
    ours = [w for w in caught if issubclass(w.category, RuntimeWarning)
            and "plan cache" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    message = str(ours[0].message)
    assert str(location) in message and cache.ENV_VAR in message and "memory=" in message
    exact = fmmsolve.direct(X_SMALL, X_SMALL, Q_SMALL)
    assert relative_l2_error(A @ Q_SMALL, exact) <= 1e-4
    assert relative_l2_error(B @ Q_SMALL, exact) <= 1e-4
    assert (tmp_path / "a-file").read_text() == "not a directory"
    if (tmp_path / "ro").exists():
        assert not _files(tmp_path / "ro")


def test_memory_argument_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="memory"):
        cache.resolve_memory("")
    with pytest.raises(TypeError, match=f"memory must be.*{cache.ENV_VAR}"):
        cache.resolve_memory(3.5)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_file = joblib.Memory(blocker, verbose=0)
    with pytest.raises(OSError, match=f"memory=.*{cache.ENV_VAR}"):
        cache.clear_cache(on_file)


def _full_disk(value, f, *args, **kwargs):
    """joblib.dump on a disk that fills after 1 MiB."""
    f.write(b"\0" * 2**20)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_under_the_cache_is_reported_and_leaves_no_partial_file(
        memory, computed, monkeypatch, caplog):
    dump = joblib.dump
    monkeypatch.setattr(joblib, "dump", _full_disk)
    caplog.set_level(logging.INFO, logger="fmmsolve")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = _load(memory)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages  # no "race condition" from joblib
    assert os.strerror(errno.ENOSPC) in messages[0] and "not cached" in messages[0]
    assert "and cached" not in caplog.text and "not cached" in caplog.text
    assert _files(memory.location) == []
    _assert_same_plan(plan, compute_plan("laplace", ORDER, TOL, "<f8"))
    monkeypatch.setattr(joblib, "dump", dump)  # space again: the next computation is cached
    cache._WARNED.clear()
    _load(memory)
    assert len(computed) == 2 and len(_entries(memory)) == 1


def test_too_little_free_space_skips_the_write(memory, computed, monkeypatch):
    monkeypatch.setattr(_cache_entry.shutil, "disk_usage", lambda path: types.SimpleNamespace(
        total=10**9, used=10**9 - 4096, free=4096))
    monkeypatch.setattr(joblib, "dump", _full_disk)  # must not even start writing
    with pytest.warns(RuntimeWarning, match="not enough free space"):
        plan = _load(memory)
    assert _files(memory.location) == []
    _assert_same_plan(plan, compute_plan("laplace", ORDER, TOL, "<f8"))
