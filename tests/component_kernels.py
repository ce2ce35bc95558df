"""Kernels with components for the tests: each is one pair function and one registration.

``three_laplace``: three independent Laplace kernels, G = I / (4 pi r), so that its products
must equal three scalar Laplace products. ``vector_test``: G = (I + d d^T / r^2) / r, a
tensor kernel whose components change sign under reflections (parities 1, 2, 4), which tests
the reflected operators; it stands in for no physical kernel of fmmsolve.
"""

import math

import fmmsolve


def three_laplace_pair(dx, dy, dz, k, out):
    r2 = dx * dx + dy * dy + dz * dz
    g = 1.0 / (4.0 * math.pi * math.sqrt(r2))
    f = -g / r2  # grad_y g = -g (y - x) / r^2
    for a in range(3):
        out[0, a, a] = g
        out[1, a, a] = f * dx
        out[2, a, a] = f * dy
        out[3, a, a] = f * dz


def vector_test_pair(dx, dy, dz, k, out):
    r2 = dx * dx + dy * dy + dz * dz
    ir = 1.0 / math.sqrt(r2)
    ir3 = ir / r2
    d = (dx, dy, dz)
    for a in range(3):
        for b in range(3):
            delta = 1.0 if a == b else 0.0
            out[0, a, b] = delta * ir + d[a] * d[b] * ir3
            for c in range(3):
                value = -delta * d[c] * ir3 - 3.0 * d[a] * d[b] * d[c] * ir3 / r2
                if c == a:
                    value += d[b] * ir3
                if c == b:
                    value += d[a] * ir3
                out[1 + c, a, b] = value


def three_laplace():
    return fmmsolve.register_kernel("three_laplace", pair=three_laplace_pair, components=3,
                                    homogeneity=1)


def vector_test():
    return fmmsolve.register_kernel("vector_test", pair=vector_test_pair, components=3,
                                    parities=(1, 2, 4), homogeneity=1)
