import os
import zlib

import numpy as np
import pytest


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
