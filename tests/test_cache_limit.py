"""The size limit of the Plan cache: least recently used entries evicted (by joblib), never
the one being written nor other files; entries larger than the limit, a limit of 0; the
``FMMSOLVE_CACHE_MAX`` setting; what ``fmmsolve info`` reports; and the test suite's own
temporary cache."""

import os
import pathlib
import time
import warnings

import joblib
import pytest

from fmmsolve import _cache_entry, cache
from fmmsolve.__main__ import main
from fmmsolve._config import DEFAULT_CACHE_MAX, parse_size
from fmmsolve.operators.plan import compute_plan

ORDER, TOL = 3, 1e-4  # a plan of about 1 MB, computed in a fraction of a second


@pytest.fixture
def memory(tmp_path):
    cache._IN_PROCESS.clear()
    cache._WARNED.clear()
    previous = cache.set_max_size(None)
    yield joblib.Memory(tmp_path / "plans", verbose=0)
    cache.set_max_size(previous)
    cache._IN_PROCESS.clear()
    cache._WARNED.clear()


def _load(memory, i):
    """Plan ``i``: the same size for every ``i``, each under its own key."""
    cache._IN_PROCESS.clear()  # force the disk lookup
    time.sleep(0.02)  # distinct access times on file systems with coarse clocks
    return cache.load_plan(memory, "laplace", ORDER, TOL * (1 + 1e-9 * i), "<f8")


def _stored(memory):
    """Indices ``i`` of the plans stored, from the keys inside the entries. Reading an entry
    here must not count as a use: its access time is put back (a relatime mount would set it,
    in directory order, and make the eviction order depend on the keys' hashes)."""
    entries = pathlib.Path(memory.location, cache.ENTRY_DIR)
    keys = []
    for path in entries.rglob("output.pkl"):
        stat = path.stat()
        keys.append(joblib.load(path)["key"])
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return sorted(round((key[3] / TOL - 1) * 1e9) for key in keys)


def _plan_bytes():
    return compute_plan("laplace", ORDER, TOL, "<f8").nbytes


def test_limit_evicts_the_least_recently_used(memory):
    # Room for three entries: a fourth evicts one.
    cache.set_max_size(3 * (_plan_bytes() + _cache_entry._OVERHEAD))
    for i in range(3):
        _load(memory, i)
    assert _stored(memory) == [0, 1, 2]
    _load(memory, 0)  # read: now 1 is the least recently used
    _load(memory, 3)
    assert _stored(memory) == [0, 2, 3]
    _load(memory, 4)
    assert _stored(memory) == [0, 3, 4]
    info = cache.cache_info(memory)
    assert info.entries == 3 and info.size <= cache.max_size()


def test_limit_holds_over_many_writes_and_keeps_the_newest(memory):
    limit = int(4.5 * _plan_bytes())
    cache.set_max_size(limit)
    for i in range(8):
        _load(memory, i)
        info = cache.cache_info(memory)
        assert info.size <= limit and i in _stored(memory)
    assert _stored(memory) == [4, 5, 6, 7]


def test_entry_larger_than_the_limit_is_not_written_and_evicts_nothing(memory):
    _load(memory, 0)
    cache.set_max_size(_plan_bytes() // 2)
    with pytest.warns(RuntimeWarning, match="exceeds the plan cache's limit.*FMMSOLVE_CACHE_MAX"):
        _load(memory, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per location
        _load(memory, 2)
    assert _stored(memory) == [0]
    _load(memory, 0)  # what is there is still read
    assert _stored(memory) == [0]


def test_zero_limit_writes_nothing_and_still_reads(memory):
    _load(memory, 0)
    cache.set_max_size(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _load(memory, 1)
        _load(memory, 0)
    assert _stored(memory) == [0]


def test_eviction_spares_other_files_and_removes_old_format_entries(memory):
    # A function cached by the user in the same joblib.Memory, and a file of theirs.
    square = memory.cache(lambda x: x * x)
    assert square(3) == 9
    entries = pathlib.Path(memory.location, cache.ENTRY_DIR)
    entries.mkdir(parents=True)
    (entries / "notes.txt").write_text("mine")
    old = entries / f"laplace-p4-{'0' * 32}.pkl"  # a format-5 entry: never read again
    old.write_bytes(b"\0" * 1000)
    users = sorted(p for p in pathlib.Path(memory.location).rglob("*") if p.is_file()
                   and cache.ENTRY_DIR not in p.parts)
    cache.set_max_size(int(1.5 * _plan_bytes()))
    for i in range(3):
        _load(memory, i)
    assert _stored(memory) == [2]
    assert not old.exists() and (entries / "notes.txt").read_text() == "mine"
    assert all(p.exists() for p in users) and square.check_call_in_cache(3)


@pytest.mark.parametrize("value, expected", [
    ("123", 123), ("500M", 500 * 2**20), ("2G", 2**31), (" 2 GiB ", 2**31), ("1.5k", 1536),
    ("0", 0), ("", DEFAULT_CACHE_MAX)])
def test_max_size_from_the_environment(value, expected, monkeypatch):
    monkeypatch.setattr(cache, "_MAX_SIZE", None)
    monkeypatch.setenv(cache.MAX_ENV_VAR, value)
    assert cache.max_size() == expected


@pytest.mark.parametrize("value", ["lots", "-1", "2X", "1e9"])
def test_bad_max_size_in_the_environment_warns_and_keeps_the_default(value, monkeypatch):
    monkeypatch.setattr(cache, "_MAX_SIZE", None)
    monkeypatch.setattr(cache, "_WARNED", set())
    monkeypatch.setenv(cache.MAX_ENV_VAR, value)
    with pytest.warns(RuntimeWarning, match=f"FMMSOLVE_CACHE_MAX={value!r}"):
        assert cache.max_size() == DEFAULT_CACHE_MAX


def test_set_max_size_overrides_the_environment(monkeypatch):
    monkeypatch.setenv(cache.MAX_ENV_VAR, "1G")
    previous = cache.set_max_size("300M")
    try:
        assert cache.max_size() == 300 * 2**20
        with pytest.raises(ValueError, match="not a size"):
            cache.set_max_size("big")
        with pytest.raises(ValueError, match=">= 0"):
            parse_size(-5)
    finally:
        cache.set_max_size(previous)
    assert cache.max_size() == (2**30 if previous is None else previous)


def test_info_reports_entries_size_and_limit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    monkeypatch.setenv(cache.MAX_ENV_VAR, "500M")
    monkeypatch.setattr(cache, "_MAX_SIZE", None)
    cache._IN_PROCESS.clear()
    cache.load_plan(cache.resolve_memory("default"), "laplace", ORDER, TOL, "<f8")
    info = cache.cache_info()
    assert info.location == tmp_path and info.entries == 1 and info.max_size == 500 * 2**20
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "1 plan" in out and "500.0 MiB" in out, out
    assert f"{info.size / 2**20:.1f} MiB" in out and cache.MAX_ENV_VAR in out, out


def test_the_test_suite_does_not_use_the_users_cache(monkeypatch):
    """tests/conftest.py points FMMSOLVE_CACHE_DIR at a temporary directory."""
    active = cache.default_location()
    monkeypatch.delenv(cache.ENV_VAR)
    users = cache.default_location()
    assert active != users
