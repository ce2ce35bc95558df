"""The FMM's products against the stored reference (tests/reference_products.py).

On the machine and library versions that wrote the reference (its fingerprint), every product
must be bit-for-bit identical: a refactoring that changes no arithmetic changes no bit. Anywhere
else (another CPU's vector units or BLAS kernels round differently) they must agree far inside
the eps they were computed for: to 1 % of eps, or 100 units of rounding where that is more.
"""

import numpy as np
import pytest

import reference_products as ref


@pytest.fixture(scope="module")
def stored():
    with np.load(ref.PATH) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def computed():
    return ref.compute()


def test_the_reference_holds_every_case(stored, computed):
    assert set(stored) - {"fingerprint"} == set(computed)
    for kernel, _ in ref.KERNELS:
        for density in ("charges", "dipoles"):
            for dtype, _ in ref.PRECISIONS:
                assert f"{kernel}-{density}-{np.dtype(dtype).name}-grad" in computed


def test_products_equal_the_stored_reference(stored, computed):
    same_machine = str(stored["fingerprint"]) == ref.fingerprint()
    tolerance = {np.dtype(dtype).name: max(1e-2 * eps, 100 * np.finfo(dtype).eps)
                 for dtype, eps in ref.PRECISIONS}
    for name, value in computed.items():
        expected = stored[name]
        assert value.dtype == expected.dtype and value.shape == expected.shape, name
        if same_machine:
            np.testing.assert_array_equal(value, expected, err_msg=name)
        else:
            real = name.split("-")[-2]
            scale = np.linalg.norm(expected)
            assert np.linalg.norm(value - expected) <= tolerance[real] * scale, name
