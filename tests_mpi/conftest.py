"""The MPI tests: run them under ``mpiexec -n P`` with P >= 2, for example
``mpiexec -n 2 python -m pytest tests_mpi -q``; on one rank they refuse to start.

Every test is collective: all ranks run the same tests in the same order, and assertions are
on numbers every rank shares (reduced over ranks), so the ranks pass or fail together. Two
guards keep a broken test from hanging the job: a failing test aborts the whole job
(``MPI_Abort``), since the other ranks may be waiting for it in a collective, and a watchdog
aborts it if one test runs longer than ``FMMSOLVE_MPI_TEST_TIMEOUT`` seconds (default 300).
"""

import os
import sys
import threading
import zlib

import numpy as np
import pytest

mpi4py = pytest.importorskip("mpi4py", reason='the MPI tests need pip install "fmmsolve[mpi]"')
from mpi4py import MPI  # noqa: E402

COMM = MPI.COMM_WORLD
TIMEOUT = float(os.environ.get("FMMSOLVE_MPI_TEST_TIMEOUT", "300"))


def pytest_configure(config):
    if COMM.size < 2:
        raise pytest.UsageError(
            "the MPI tests need at least two ranks: mpiexec -n 2 python -m pytest tests_mpi")


def _shout(config, message):
    """Print to the real stderr, past pytest's output capture, before aborting."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    sys.stderr.write(f"\nrank {COMM.rank}: {message}\n")
    sys.stderr.flush()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:  # the other ranks may wait for this one in a collective: end the job
        _shout(item.config, f"{item.nodeid} failed:\n{report.longreprtext}")
        COMM.Abort(1)
    return report


@pytest.fixture(autouse=True)
def watchdog(request):
    """Abort the job when a test hangs (a rank waiting forever in a collective)."""
    def expire():
        _shout(request.config, f"{request.node.nodeid} ran past {TIMEOUT} s: aborting the job")
        COMM.Abort(2)

    timer = threading.Timer(TIMEOUT, expire)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


@pytest.fixture
def comm():
    return COMM


@pytest.fixture
def rng(request):
    """Seeded from the test's id: the same on every rank, independent between tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
