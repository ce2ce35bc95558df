"""Branch-free ``sin``/``cos`` and ``exp`` that LLVM vectorises: the wave kernels' pair loops.

``math.sin``, ``math.cos`` and ``math.exp`` are calls into the C library, and a loop that calls
them is not vectorised (Numba's SVML path needs a patched LLVM that PyPI's llvmlite does not
have). The functions here are plain arithmetic (a range reduction, a polynomial and a select),
inlined into the loops, so the pair loops of the oscillatory and decaying kernels vectorise like
the Laplace ones on any CPU; elsewhere they are simply scalar code. :func:`sincos` and
:func:`exp` work in float64; :func:`sincosf` and :func:`expf` are float32 versions (cephes'
single-precision polynomials) for the float32 loops, whose float64 arithmetic would halve the
vector width and add conversions. :func:`sincos_wp` and :func:`exp_wp` pick one by the type of
their argument (the working precision), so that a loop is written once for both.

Error bounds (measured by ``tests/test_fastmath.py`` against NumPy over the range):

* :func:`sincos` ``(sin x, cos x)``: absolute error at most ``4e-16 + 7e-17 |x|``. The
  reduction subtracts ``n pi/2`` in two parts (Cody and Waite); the fast-math flags allow LLVM
  to fold the parts into one constant, whose rounding error (6.1e-17) then grows with ``n``:
  about 1e-14 at ``|x| = 100`` (k times the widest box of a Helmholtz FMM at k D = 100), 7e-11
  at 1e6. The polynomials are fdlibm's minimax ones on ``[-pi/4, pi/4]``.
* :func:`exp` ``exp(x)``: relative error at most ``2e-15 + 4e-17 |x|`` for
  ``-708 <= x <= 709`` (the reduction by ``n ln 2``, in two parts as above, may be folded
  likewise): 4e-15 for ``|x| <= 40``, 3e-14 at ``x = -708``; 0 below -708 (exp(-708) is
  3e-308: those pairs add nothing to a sum). ``2^n`` is built from the exponent bits.
* :func:`sincosf`: absolute error at most ``2e-7 + 3e-8 |x|`` against the exact values at the
  float32 argument, for ``|x| < 3e4``. The second term is the folded reduction's, as above, and
  below the rounding of the argument itself (``k r`` in float32 is off by up to
  ``6e-8 |k r|``, as it was when the trig was computed in float64).
* :func:`expf`: relative error at most ``4e-7`` for ``-87 <= x <= 88``; 0 below -87 (exp(-87)
  is 1.6e-38, at the bottom of float32's normal range).
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload
from llvmlite import ir

from .._jit import jit

__all__ = ["sincos", "exp", "pow2", "sincosf", "expf", "pow2f", "sincos_wp", "exp_wp"]

# pi / 2 in two parts (fdlibm): the first has 33 bits, so n * PIO2_HI is exact for |n| < 2^20.
PIO2_HI = 1.57079632673412561417e+00
PIO2_LO = 6.07710050650619224932e-11
TWO_OVER_PI = 6.36619772367581382433e-01
# fdlibm's __kernel_sin and __kernel_cos coefficients on [-pi/4, pi/4].
S1, S2, S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
S4, S5, S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
C1, C2, C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
C4, C5, C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11
# ln 2 in two parts (fdlibm), and the Taylor coefficients of exp on [-ln2 / 2, ln2 / 2].
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00
EXP_MIN, EXP_MAX = -708.0, 709.0
E2, E3, E4, E5, E6, E7 = (1.0 / math.factorial(i) for i in range(2, 8))
E8, E9, E10, E11, E12, E13 = (1.0 / math.factorial(i) for i in range(8, 14))
# float32 constants (typed, so that no operation promotes to float64): pi / 2 in three parts
# (cephes sinf: n times the first is exact for |n| < 2^16), ln 2 in two, and cephes' sinf,
# cosf and expf polynomials on [-pi/4, pi/4] and [-ln2 / 2, ln2 / 2].
F_PIO2_1, F_PIO2_2, F_PIO2_3 = np.float32([1.5703125, 4.837512969970703125e-4,
                                           7.54978995489188216e-8])
F_TWO_OVER_PI, F_HALF, F_ONE = np.float32([TWO_OVER_PI, 0.5, 1.0])
F_QUARTER, F_FOUR, F_TWO, F_THREE = np.float32([0.25, 4.0, 2.0, 3.0])
FS1, FS2, FS3 = np.float32([-1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4])
FC1, FC2, FC3 = np.float32([4.166664568298827e-2, -1.388731625493765e-3, 2.443315711809948e-5])
F_LN2_HI, F_LN2_LO, F_INV_LN2 = np.float32([0.693359375, -2.12194440e-4, INV_LN2])
FE0, FE1, FE2 = np.float32([5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2])
FE3, FE4, FE5 = np.float32([8.3334519073e-3, 1.3981999507e-3, 1.9875691500e-4])
F_EXP_MIN, F_EXP_MAX, F_ZERO = np.float32([-87.0, 88.0, 0.0])


def pow2(n):
    """``2.0 ** n`` for an integer-valued float ``n`` in [-1022, 1023], float64; compiled, it
    writes the exponent bits (no call, so it vectorises)."""
    return 2.0 ** int(n)


@intrinsic
def _pow2_bits(typingctx, n):
    """2^n of an integer-valued float32 or float64 ``n``, in its type, by writing the biased
    exponent into the bits."""
    width, bias, shift, result = ((32, 127, 23, ir.FloatType()) if n == types.float32
                                  else (64, 1023, 52, ir.DoubleType()))

    def codegen(context, builder, signature, args):
        integer = ir.IntType(width)
        biased = builder.add(builder.fptosi(args[0], integer), integer(bias))
        return builder.bitcast(builder.shl(biased, integer(shift)), result)
    return n(n), codegen


@overload(pow2, inline="always")
def _pow2_compiled(n):
    return lambda n: _pow2_bits(np.float64(n))


@jit(inline="always")
def sincos(x):
    """``(sin x, cos x)`` of a float64 (or float32, computed in float64), float64; see the
    module docstring for the error bound."""
    x = np.float64(x)
    n = math.floor(x * TWO_OVER_PI + 0.5)
    r = (x - n * PIO2_HI) - n * PIO2_LO
    z = r * r
    s = r + r * z * (S1 + z * (S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)))))
    c = 1.0 - 0.5 * z + z * z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))))
    quadrant = n - 4.0 * math.floor(n * 0.25)  # n mod 4: x = r + quadrant pi / 2 (mod 2 pi)
    return _by_quadrant(s, c, quadrant, 1.0, 2.0, 3.0)


@jit(inline="always")
def _by_quadrant(s, c, quadrant, one, two, three):
    """``(sin x, cos x)`` from ``s, c = sin r, cos r`` with x = r + quadrant pi / 2, by selects
    (``quadrant`` is 0, 1, 2 or 3 as a float; ``one, two, three`` of its type)."""
    odd = (quadrant == one) | (quadrant == three)
    sin_x = c if odd else s
    cos_x = s if odd else c
    sin_x = -sin_x if quadrant >= two else sin_x
    cos_x = -cos_x if (quadrant == one) | (quadrant == two) else cos_x
    return sin_x, cos_x


@jit(inline="always")
def exp(x):
    """``exp(x)`` of a float64 (or float32, computed in float64) ``x <= 709``, float64; 0 for
    ``x < -708``. See the module docstring for the error bound."""
    x = np.float64(x)
    y = min(max(x, EXP_MIN), EXP_MAX)
    n = math.floor(y * INV_LN2 + 0.5)
    r = (y - n * LN2_HI) - n * LN2_LO  # |r| <= ln 2 / 2
    # Taylor to r^13: the remainder is below 4e-18 relative on |r| <= ln 2 / 2
    p = E9 + r * (E10 + r * (E11 + r * (E12 + r * E13)))
    p = 1.0 + r * (1.0 + r * (E2 + r * (E3 + r * (E4 + r * (E5 + r * (E6 + r * (E7 + r * (
        E8 + r * p))))))))
    e = p * pow2(n)
    return 0.0 if x < EXP_MIN else e


def pow2f(n):
    """``2 ** n`` as float32 for an integer-valued float32 ``n`` in [-126, 127]; compiled, it
    writes the exponent bits."""
    return np.float32(2.0 ** int(n))


@overload(pow2f, inline="always")
def _pow2f_compiled(n):
    return lambda n: _pow2_bits(np.float32(n))


@jit(inline="always")
def sincosf(x):
    """``(sin x, cos x)`` of a float32, float32 (see the module docstring for the bound)."""
    x = np.float32(x)
    n = np.floor(x * F_TWO_OVER_PI + F_HALF)
    r = ((x - n * F_PIO2_1) - n * F_PIO2_2) - n * F_PIO2_3
    z = r * r
    s = r + r * z * (FS1 + z * (FS2 + z * FS3))
    c = F_ONE - F_HALF * z + z * z * (FC1 + z * (FC2 + z * FC3))
    quadrant = n - F_FOUR * np.floor(n * F_QUARTER)
    return _by_quadrant(s, c, quadrant, F_ONE, F_TWO, F_THREE)


@jit(inline="always")
def expf(x):
    """``exp(x)`` of a float32 ``x <= 88``, float32; 0 for ``x < -87`` (see the module
    docstring for the bound)."""
    x = np.float32(x)
    y = min(max(x, F_EXP_MIN), F_EXP_MAX)
    n = np.floor(y * F_INV_LN2 + F_HALF)
    r = (y - n * F_LN2_HI) - n * F_LN2_LO
    p = FE0 + r * (FE1 + r * (FE2 + r * (FE3 + r * (FE4 + r * FE5))))
    e = (F_ONE + r + r * r * p) * pow2f(n)
    return F_ZERO if x < F_EXP_MIN else e


def sincos_wp(x):
    """:func:`sincosf` of a float32, :func:`sincos` of anything else (in the precision of the
    working loop, which is that of its argument)."""
    return sincosf(x) if isinstance(x, np.float32) else sincos(x)


def exp_wp(x):
    """:func:`expf` of a float32, :func:`exp` of anything else (as :func:`sincos_wp`)."""
    return expf(x) if isinstance(x, np.float32) else exp(x)


@overload(sincos_wp, inline="always")
def _sincos_wp_compiled(x):
    return (lambda x: sincosf(x)) if x == types.float32 else (lambda x: sincos(x))


@overload(exp_wp, inline="always")
def _exp_wp_compiled(x):
    return (lambda x: expf(x)) if x == types.float32 else (lambda x: exp(x))
