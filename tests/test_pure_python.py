"""STYLE 12: the tree, list and direct-sum tests run again with NUMBA_DISABLE_JIT=1, so the
bodies of compiled functions are also exercised (and covered) as plain Python."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a second pytest process without Numba
def test_tree_and_direct_tests_pass_without_jit():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-W", "ignore::RuntimeWarning", "tests/tree", "tests/test_direct.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout


FMM_WITHOUT_JIT = r"""
import numpy as np
import fmmsolve
from fmmsolve.testing import relative_l2_error

rng = np.random.default_rng(1)
# a sparse cloud and a dense cluster: an adaptive tree of depth 6, with X and W lists
x = np.vstack([rng.random((40, 3)), 0.5 + 0.1 * rng.random((110, 3))])
for kernel, k in (("laplace", None), ("helmholtz", 2.0 + 0.5j)):
    q, d = rng.standard_normal(150), rng.standard_normal((150, 3))
    A = fmmsolve.FMMOperator(x, kernel=kernel, wavenumber=k, eps=1e-2, dipoles=True,
                             leaf_size=4, memory=None)
    assert A.tree["depth"] >= 4 and A.tree["mean_w"] > 0 and A.tree["mean_x"] > 0, A.tree
    pot, grad = A.evaluate(q, gradient=True, dipoles=d)
    exact, exact_grad = fmmsolve.direct(x, None, q, dipoles=d, kernel=kernel, wavenumber=k,
                                        gradient=True)
    assert relative_l2_error(pot, exact) <= 1e-2, (kernel, relative_l2_error(pot, exact))
    assert relative_l2_error(grad, exact_grad) <= 1e-1, kernel
print("ok")
"""


def test_fmm_templates_run_as_plain_python():
    """The translation (P2M, P2L, L2P, M2P, P2P) and M2L templates, and the upward pass, as
    plain Python: a small FMM with charges and dipoles, against the direct sum."""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run([sys.executable, "-W", "ignore::RuntimeWarning", "-c", FMM_WITHOUT_JIT],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"
