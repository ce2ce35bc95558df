"""fmmsolve: a kernel-independent fast multipole method for 3-D N-body sums, compiled with Numba.

Public entry points are re-exported here explicitly; see the package documentation for the
contract.
"""

from ._version import __version__
from .cache import clear_cache
from .kernels import KERNEL_NAMES, get_kernel
from .kernels.direct import direct
from .linear_operator import FMMOperator, load
from .tree import InteractionLists, Octree, build_interaction_lists, build_octree

__all__ = [
    "__version__",
    "clear_cache",
    "direct",
    "FMMOperator",
    "load",
    "get_kernel",
    "KERNEL_NAMES",
    "Octree",
    "build_octree",
    "InteractionLists",
    "build_interaction_lists",
]
