"""The physics of fmmsolve: Green's functions, their gradients and direct sums.

Nothing in this subpackage knows about trees or expansions. A kernel is looked up by name with
:func:`get_kernel`; adding one means writing its module (block functions and a
:class:`~fmmsolve.kernels._kernel.Kernel` record) and registering it in ``_REGISTRY`` below.
"""

from __future__ import annotations

from ._kernel import Kernel
from .helmholtz import HELMHOLTZ
from .laplace import LAPLACE
from .modified_helmholtz import MODIFIED_HELMHOLTZ

__all__ = ["Kernel", "get_kernel", "KERNEL_NAMES"]

_REGISTRY: dict[str, Kernel] = {k.name: k for k in (LAPLACE, HELMHOLTZ, MODIFIED_HELMHOLTZ)}

#: Names accepted by ``kernel=`` arguments.
KERNEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_kernel(name) -> Kernel:
    """Return the registered :class:`Kernel` called ``name`` (a ``Kernel`` passes through).

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    if isinstance(name, Kernel):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown kernel {name!r}; expected one of {', '.join(map(repr, KERNEL_NAMES))}"
        ) from None
