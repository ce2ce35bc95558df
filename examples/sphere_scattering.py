"""
Sound-soft scattering from a sphere with bempp-cl
=================================================

Sound-soft scattering of a plane wave by the unit sphere, with bempp-cl on fmmsolve's FMM.

The incident wave ``u_inc = exp(i k x)`` hits a sound-soft sphere (total field zero on the
surface). bempp-cl solves the direct combined-field equation for the normal derivative
``phi = du/dn`` of the total field on piecewise-constant elements,

    (I/2 + K' - i k V) phi = du_inc/dn - i k u_inc,

with GMRES, and the scattered field outside is ``u_s = -V phi`` (single-layer potential).
``fmmsolve.bempp.enable()`` makes every ``assembler="fmm"`` operator and potential run on
fmmsolve. The scattered field is compared at exterior points with the analytic series

    u_s(r, theta) = -sum_n (2n + 1) i^n j_n(k) / h_n(k) h_n(k r) P_n(cos theta),

``j_n`` and ``h_n = j_n + i y_n`` the spherical Bessel and Hankel functions. The error falls
with the mesh size (the BEM discretisation), not with the FMM's eps.

Needs bempp-cl (``pip install "fmmsolve[bempp]"``); without it the script says so and exits.
Run ``python examples/sphere_scattering.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick
run.
"""
# fmmsolve-gallery: not executed  (bempp-cl compiles its kernels for minutes in every process)

import importlib.util
import os
import time

import numpy as np
from scipy.special import eval_legendre, spherical_jn, spherical_yn

import fmmsolve.bempp

K = 2.0  # wavenumber (the sphere's radius is 1): |k| w_2 <= 2.5 for the points used below
EPS = 1e-6
REFINEMENTS = (2, 3) if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else (2, 3, 4, 5)


def series(points, k, terms=40):
    """Analytic scattered field of the plane wave exp(i k x) at ``points`` (n, 3), |x| > 1."""
    r = np.linalg.norm(points, axis=1)
    cos_theta = points[:, 0] / r
    total = np.zeros(len(points), dtype=complex)
    for n in range(terms):
        h_1 = spherical_jn(n, k) + 1j * spherical_yn(n, k)
        h_r = spherical_jn(n, k * r) + 1j * spherical_yn(n, k * r)
        coefficient = (2 * n + 1) * 1j ** n * spherical_jn(n, k) / h_1
        total -= coefficient * h_r * eval_legendre(n, cos_theta)
    return total


def solve(refinement, points):
    """Scattered field at ``points`` (n, 3) from a sphere of 8 * 4**refinement triangles, with
    the number of elements and GMRES iterations."""
    import bempp_cl.api as bempp
    from bempp_cl.api.linalg import gmres
    from bempp_cl.api.operators import boundary, potential

    @bempp.complex_callable
    def data(x, n, domain_index, result):
        result[0] = 1j * K * np.exp(1j * K * x[0]) * (n[0] - 1)  # du_inc/dn - i k u_inc

    grid = bempp.shapes.regular_sphere(refinement)
    space = bempp.function_space(grid, "DP", 0)
    lhs = (0.5 * boundary.sparse.identity(space, space, space)
           + boundary.helmholtz.adjoint_double_layer(space, space, space, K, assembler="fmm")
           - 1j * K * boundary.helmholtz.single_layer(space, space, space, K, assembler="fmm"))
    # Built before the solve: bempp-cl fits a potential operator's FMM when the operator is
    # created, and points far from the surface widen its cube, so a wavenumber too high for
    # them is refused here rather than after GMRES.
    slp = potential.helmholtz.single_layer(space, points.T, K, assembler="fmm")
    phi, info, iterations = gmres(lhs, bempp.GridFunction(space, fun=data), tol=1e-8,
                                  return_iteration_count=True)
    if info != 0:
        raise RuntimeError(f"GMRES did not converge (info {info})")
    return -(slp @ phi).ravel(), grid.number_of_elements, iterations


def main():
    if importlib.util.find_spec("bempp_cl") is None:
        print('bempp-cl is not installed: pip install "fmmsolve[bempp]" to run this example')
        return
    fmmsolve.bempp.enable(eps=EPS)

    rng = np.random.default_rng(0)
    d = rng.standard_normal((200, 3))
    points = d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(1.2, 2.5, (200, 1))
    exact = series(points, K)

    print(f"{'elements':>8} {'iterations':>10} {'relative L2 error':>18} {'max error':>10} "
          f"{'seconds':>8}")
    for refinement in REFINEMENTS:
        start = time.perf_counter()
        scattered, elements, iterations = solve(refinement, points)
        elapsed = time.perf_counter() - start
        error = np.linalg.norm(scattered - exact) / np.linalg.norm(exact)
        worst = np.max(np.abs(scattered - exact)) / np.max(np.abs(exact))
        print(f"{elements:>8} {iterations:>10} {error:>18.2e} {worst:>10.2e} "
              f"{elapsed:>8.1f}")
    fmmsolve.bempp.disable()


if __name__ == "__main__":
    main()
