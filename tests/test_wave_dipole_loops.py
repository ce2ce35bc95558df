"""The wave kernels' own dipole block functions (vectorised, in the working precision) against
the generic templates of fmmsolve.kernels.dipole, whose pair factors come from the kernel's
``radial`` in float64: float64 and float32, one and several columns, with zero-distance
pairs."""

import numpy as np
import pytest

from fmmsolve._jit import bind
from fmmsolve.kernels import dipole, get_kernel

CASES = [("helmholtz", 5.0), ("helmholtz", 3 + 1j), ("helmholtz", 0.4j),
         ("modified_helmholtz", 0.5), ("modified_helmholtz", 7.0)]


def _oracle(kernel):
    """The generic templates bound to ``kernel.radial`` (the loops used before the own ones)."""
    bindings = {"radial": kernel.radial}
    return (bind(dipole.p2p_dipole, f"{kernel.tag}_oracle", bindings),
            bind(dipole.p2p_dipole_gradient, f"{kernel.tag}_oracle", bindings))


def _sums(p2p, p2p_gradient, sources, targets, dipoles, k, value):
    m, n_t = dipoles.shape[0] // 3, targets.shape[1]
    pot = np.zeros((m, n_t), value)
    p2p(*sources, dipoles, *targets, k, pot)
    both = [np.zeros((m, n_t), value) for _ in range(4)]
    p2p_gradient(*sources, dipoles, *targets, k, *both)
    return pot, both[0], np.stack(both[1:])


@pytest.mark.parametrize("kernel, k", CASES)
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("real, tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_own_dipole_loops_match_the_generic_templates(kernel, k, m, real, tol, rng):
    kern = get_kernel(kernel)
    assert kern.radial in dipole.OWN_BLOCKS
    k = kern.check_wavenumber(k)
    sources = rng.random((3, 257))
    targets = np.hstack([rng.random((3, 60)), sources[:, :4]])  # 4 zero-distance pairs
    value = np.complex128 if kern.is_complex else np.float64
    d = rng.standard_normal((3 * m, 257))
    if kern.is_complex:
        d = d + 1j * rng.standard_normal((3 * m, 257))
    s32, t32 = sources.astype(real), targets.astype(real)
    # the oracle sums the points and densities the fast loops see, in float64
    ref = _sums(*_oracle(kern), s32.astype(np.float64), t32.astype(np.float64), d, k, value)
    work = kern.value_dtype(real)
    blocks = dipole.blocks(kern)
    got = _sums(blocks.p2p, blocks.p2p_gradient, s32, t32, d.astype(work), k, work)
    for a, b in zip(got, ref):
        assert a.dtype == work and np.isfinite(a).all()
        assert np.linalg.norm(a - b) <= tol * np.linalg.norm(b)
    assert np.linalg.norm(got[0] - got[1]) <= tol * np.linalg.norm(got[1])  # with or without
