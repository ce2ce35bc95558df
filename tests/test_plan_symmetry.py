"""M2M and L2L of octants 1-7 are octant 0's reflected (``plan.octant_operators``): the
reflections permute the surface exactly, and each octant's operators reproduce the fields they
translate, for a scale-invariant kernel and a wave kernel. The basis the M2L precomputation works
in is orthonormal and even or odd under each reflection (the M2L factors themselves are checked
against the exact translations in test_m2l.py)."""

import numpy as np
import pytest

from fmmsolve import get_kernel
from fmmsolve.operators import surfaces
from fmmsolve.operators.m2l.svd import characters, reflection_basis
from fmmsolve.operators import dense
from fmmsolve.operators.plan import compute_plan, octant_operators, reflection
from fmmsolve.operators.surfaces import octant_offsets, octant_permutations
from fmmsolve.testing import relative_l2_error


@pytest.mark.parametrize("order", [2, 3, 6, 9])
def test_reflections_permute_the_surface(order):
    surf = surfaces.surface(order)
    perm = octant_permutations(order)
    for c, offset in enumerate(octant_offsets()):
        assert sorted(perm[c]) == list(range(len(surf)))
        np.testing.assert_allclose(surf[perm[c]], surf * -offset, atol=1e-15)  # octant 0: -1


@pytest.mark.parametrize("order", [2, 3, 6, 9])
def test_reflection_basis_is_orthonormal_and_even_or_odd(order):
    basis, character = reflection_basis(order)
    n = surfaces.n_surface_points(order)
    assert basis.shape == (n, n) and character.shape == (n,)
    np.testing.assert_allclose(basis.T @ basis, np.eye(n), atol=1e-13)
    perm, sign = octant_permutations(order), characters()
    for s in range(8):  # reflecting a column multiplies it by its character at s
        np.testing.assert_allclose(basis[perm[s]], basis * sign[character, s], atol=1e-15)
    assert set(character) == set(range(8))


@pytest.mark.parametrize("kernel, k", [("laplace", None), ("helmholtz", 1.5)])
def test_every_octant_translates_the_field(kernel, k, rng):
    order = 8
    plan = compute_plan(kernel, order, 1e-9, "<c16" if k else "<f8", k, m2l=False)
    mat = lambda t, s: get_kernel(kernel).matrix(t, s, k)  # noqa: E731
    surf = plan.surface
    far = 6.0 * surfaces.surface(5)  # outside the parent's (half-width 1) check surface
    near = 0.4 * (rng.random((50, 3)) - 0.5)  # inside a child box, relative to its centre
    m2m, l2l = (octant_operators(op, order) for op in (plan.m2m, plan.l2l))
    for c, offset in enumerate(octant_offsets() * 0.5):
        child = rng.standard_normal(len(surf))  # a child's multipole: M2M keeps its far field
        parent = m2m[c] @ child
        want = mat(far, offset + 0.5 * surfaces.UP_EQUIV * surf) @ child
        got = mat(far, surfaces.UP_EQUIV * surf) @ parent
        assert relative_l2_error(got, want) < 1e-6, (c, "m2m")
        local = rng.standard_normal(len(surf))  # a parent's local: L2L keeps it near the child
        child_local = l2l[c] @ local
        want = mat(offset + near, surfaces.DOWN_EQUIV * surf) @ local
        got = mat(offset + near, offset + 0.5 * surfaces.DOWN_EQUIV * surf) @ child_local
        assert relative_l2_error(got, want) < 1e-6, (c, "l2l")


@pytest.mark.parametrize("parities, dtype", [((0,), np.float64), ((0,), np.complex128),
                                             ((0, 1, 3), np.float64), ((2, 0), np.complex64)])
def test_reflected_products_equal_the_reflected_operators(parities, dtype, rng):
    # A plan holds octant 0's M2M and L2L; the others act through the gather and scatter of
    # dense.add_products(reflect=...), which must equal the products with the octant's own
    # operator (octant_operators), component signs included.
    order = 3
    n = surfaces.n_surface_points(order) * len(parities)
    op = (rng.standard_normal((1, n, n)) + (1j * rng.standard_normal((1, n, n))
                                           if np.dtype(dtype).kind == "c" else 0)).astype(dtype)
    full = octant_operators(op, order, parities)
    x = rng.standard_normal((5, 2, n)).astype(dtype)
    rows_in, rows_out = np.array([4, 0, 2]), np.array([1, 3, 0])
    tol = 1e-12 if np.dtype(dtype) in (np.float64, np.complex128) else 1e-5
    for c in range(8):
        out = np.zeros((4, 2, n), dtype)
        dense.add_products(out, rows_out, x, rows_in, op[0],
                           reflect=reflection(order, parities, c))
        want = np.zeros_like(out)
        want[rows_out] = x[rows_in] @ full[c].T
        assert relative_l2_error(out, want) < tol, c
