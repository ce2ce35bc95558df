"""Shared fixtures and options of the test suite.

The Plan cache: unless ``FMMSOLVE_CACHE_DIR`` is set, the session points it at a temporary
directory, removed at the end, so that a test run never writes to the user's cache
(``~/.cache/fmmsolve``). fmmsolve reads the variable at each use, and subprocesses started by
tests inherit it. Set it yourself to keep Plans between runs (faster reruns).
"""

import os
import shutil
import tempfile
import zlib

import numpy as np
import pytest

_TEMPORARY_CACHE = None


def pytest_configure(config):
    global _TEMPORARY_CACHE
    if not os.environ.get("FMMSOLVE_CACHE_DIR"):
        _TEMPORARY_CACHE = tempfile.mkdtemp(prefix="fmmsolve-test-cache-")
        os.environ["FMMSOLVE_CACHE_DIR"] = _TEMPORARY_CACHE


def pytest_unconfigure(config):
    if _TEMPORARY_CACHE is not None:
        shutil.rmtree(_TEMPORARY_CACHE, ignore_errors=True)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: reproducible, and independent between tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def pytest_collection_modifyitems(config, items):
    """``expensive`` tests (the highest orders, whose plans take minutes to compute) run only
    with FMMSOLVE_EXPENSIVE_TESTS=1: the full accuracy table, not every CI run."""
    if os.environ.get("FMMSOLVE_EXPENSIVE_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="expensive: set FMMSOLVE_EXPENSIVE_TESTS=1 to run")
    for item in items:
        if "expensive" in item.keywords:
            item.add_marker(skip)
