"""Stored reference products of the FMM: the pin that a refactoring changes no result.

    python tests/reference_products.py      # (re)write tests/data/reference_products.npz

:func:`compute` evaluates a fixed set of FMM products (every kernel, charges and dipoles,
potentials and gradients, float64 and float32) on fixed seeded inputs; the script stores them
with :func:`fingerprint`, a description of everything that changes the bits of a floating-point
result besides fmmsolve itself: the CPU and its features, and the versions of NumPy, SciPy,
Numba, llvmlite and the BLAS. ``tests/test_reference_products.py`` recomputes them and compares.

Write it with an empty Numba cache (``NUMBA_CACHE_DIR`` a new directory): bits depend on
whether kernels were compiled afresh or loaded from the cache (see the test module). Rewrite
the file only when a change is meant to change results, and say so in its commit.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import platform

import numpy as np

PATH = pathlib.Path(__file__).resolve().parent / "data" / "reference_products.npz"

#: (kernel, wavenumber) of the pinned products.
KERNELS = [("laplace", None), ("helmholtz", 3.0 + 0.5j), ("modified_helmholtz", 2.0)]
#: (dtype, eps) of the pinned products: one eps, low orders, so that the plans are cheap and
#: float32 shares them (its points are float64's: they are representable in float32).
PRECISIONS = [(np.float64, 1e-3), (np.float32, 1e-3)]
N_POINTS = 700
LEAF_SIZE = 16  # depth 3: M2L, M2M and L2L on two levels


def fingerprint() -> str:
    """What, besides fmmsolve, decides the bits of a result on this machine."""
    import llvmlite
    import llvmlite.binding as llvm
    import numba
    import scipy

    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    parts = {
        "cpu": llvm.get_host_cpu_name(),
        "features": hashlib.sha1(llvm.get_host_cpu_features().flatten().encode()).hexdigest(),
        "machine": platform.machine(),
        "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "blas": f"{blas.get('name')} {blas.get('version')}",
    }
    return json.dumps(parts, sort_keys=True)


def _inputs(kernel, dtype):
    """Seeded points, charges (n,) and dipoles (n, 3), complex for Helmholtz."""
    rng = np.random.default_rng(20261203)
    x = rng.random((N_POINTS, 3)).astype(np.float32).astype(np.float64)
    q, d = rng.standard_normal(N_POINTS), rng.standard_normal((N_POINTS, 3))
    if kernel == "helmholtz":
        q = q + 1j * rng.standard_normal(N_POINTS)
        d = d + 1j * rng.standard_normal((N_POINTS, 3))
    return x.astype(dtype), q, d


def compute() -> dict:
    """``{name: array}``: potential and gradient of every pinned case, named
    ``<kernel>-<charges|dipoles>-<dtype>-<pot|grad>``."""
    import fmmsolve

    out = {}
    for kernel, k in KERNELS:
        for dtype, eps in PRECISIONS:
            x, q, d = _inputs(kernel, dtype)
            for density in ("charges", "dipoles"):  # operators of their own (orders differ)
                A = fmmsolve.FMMOperator(x, kernel=kernel, wavenumber=k, eps=eps,
                                         dipoles=density == "dipoles", leaf_size=LEAF_SIZE,
                                         dtype=dtype, memory=None)
                assert A.tree["depth"] >= 3
                args = (q, None) if density == "charges" else (None, d)
                pot, grad = A.evaluate(args[0], gradient=True, dipoles=args[1])
                name = f"{kernel}-{density}-{np.dtype(dtype).name}"
                out[f"{name}-pot"], out[f"{name}-grad"] = pot, grad
    return out


def main():
    PATH.parent.mkdir(exist_ok=True)
    np.savez_compressed(PATH, fingerprint=np.array(fingerprint()), **compute())
    print(f"wrote {PATH} ({PATH.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
