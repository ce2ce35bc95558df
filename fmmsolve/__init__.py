"""fmmsolve: a kernel-independent fast multipole method for 3-D N-body sums, compiled with Numba.

Public entry points are re-exported here explicitly; see the package documentation for the
contract. The scikit-learn estimators (``PotentialTransformer``, ``IntegralEquationSolver``)
are re-exported lazily, on first access, so that ``import fmmsolve`` does not import
scikit-learn.
"""

from ._version import __version__
from .cache import clear_cache
from .field import FMMField
from .kernels import KERNEL_NAMES, get_kernel, register_kernel
from .kernels.direct import direct
from .linear_operator import FMMOperator
from .operator_file import load
from .tree import InteractionLists, Octree, build_interaction_lists, build_octree

# Attributes imported from a submodule on first access: name -> submodule.
_LAZY = {"PotentialTransformer": "estimators", "IntegralEquationSolver": "estimators"}

__all__ = [
    "__version__",
    "clear_cache",
    "direct",
    "FMMOperator",
    "FMMField",
    "load",
    "get_kernel",
    "register_kernel",
    "KERNEL_NAMES",
    "Octree",
    "build_octree",
    "InteractionLists",
    "build_interaction_lists",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
