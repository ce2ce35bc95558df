"""Direct-sum interaction rate of fmmsolve.direct against the simplest possible prange loop.

    python benchmarks/bench_direct.py [--n 20000] [--repeats 5]

The baseline is a plain ``prange`` double loop with the same fast-math flags. fmmsolve's direct
sum must reach at least 0.8x its rate. Prints a table; rates are in 1e9 pair interactions/s.
"""

import argparse
import math

import numba
import numpy as np

import fmmsolve
from fmmsolve import _config

from _common import machine, median_time

FLAGS = dict(parallel=True, fastmath=set(_config.NUMBA_FASTMATH), error_model="numpy")


@numba.njit(**FLAGS)
def naive_potential(sx, sy, sz, q, tx, ty, tz, out):
    for i in numba.prange(tx.shape[0]):
        acc = out.dtype.type(0.0)
        for j in range(sx.shape[0]):
            dx, dy, dz = tx[i] - sx[j], ty[i] - sy[j], tz[i] - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            if r2 > 0:
                acc += q[j] / math.sqrt(r2)
        out[i] = acc


@numba.njit(**FLAGS)
def naive_gradient(sx, sy, sz, q, tx, ty, tz, out, g):
    for i in numba.prange(tx.shape[0]):
        zero = out.dtype.type(0)
        acc, ax, ay, az = zero, zero, zero, zero
        for j in range(sx.shape[0]):
            dx, dy, dz = tx[i] - sx[j], ty[i] - sy[j], tz[i] - sz[j]
            r2 = dx * dx + dy * dy + dz * dz
            if r2 > 0:
                r = math.sqrt(r2)
                acc += q[j] / r
                w = q[j] / (r * r2)
                ax -= w * dx
                ay -= w * dy
                az -= w * dz
        out[i] = acc
        g[0, i], g[1, i], g[2, i] = ax, ay, az


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="sources = targets")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n = args.n
    print(f"machine: {machine()}")
    print(f"N = {n} sources and targets (uniform cube), median of {args.repeats}")
    print(f"{'dtype':<8} {'quantity':<10} {'fmmsolve':>9} {'naive':>9} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        pts = rng.random((n, 3)).astype(dtype)
        soa = np.ascontiguousarray(pts.T)
        q = rng.standard_normal(n).astype(dtype)
        out, grad = np.empty(n, dtype), np.empty((3, n), dtype)
        for gradient in (False, True):
            ours = lambda: fmmsolve.direct(pts, pts, q, gradient=gradient)  # noqa: E731
            if gradient:
                base = lambda: naive_gradient(*soa, q, *soa, out, grad)  # noqa: E731
            else:
                base = lambda: naive_potential(*soa, q, *soa, out)  # noqa: E731
            ours(), base()  # compile
            t_ours, t_base = median_time(ours, args.repeats), median_time(base, args.repeats)
            rate = lambda t: n * n / t / 1e9  # noqa: E731
            print(f"{np.dtype(dtype).name:<8} {'gradient' if gradient else 'potential':<10} "
                  f"{rate(t_ours):>9.2f} {rate(t_base):>9.2f} {t_base / t_ours:>6.2f}")


if __name__ == "__main__":
    main()
