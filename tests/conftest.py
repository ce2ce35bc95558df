import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: reproducible, and independent between tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
