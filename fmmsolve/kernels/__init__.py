"""The physics of fmmsolve: Green's functions, their gradients and direct sums.

Nothing in this subpackage knows about trees or expansions. A kernel is looked up by name with
:func:`get_kernel`. The built-in kernels are modules with hand-tuned block functions; any other
kernel is registered at run time with :func:`register_kernel` from a radial profile, and every
part of it is derived from that (:mod:`fmmsolve.kernels.profile`).
"""

from __future__ import annotations

import threading

from ._kernel import Kernel
from .helmholtz import HELMHOLTZ
from .laplace import LAPLACE
from .modified_helmholtz import MODIFIED_HELMHOLTZ
from .pair import kernel_from_pair
from .profile import kernel_from_profile
from .stokes import STOKES

__all__ = ["Kernel", "get_kernel", "kernel_for_key", "kernel_names", "register_kernel",
           "KERNEL_NAMES"]

_BUILTIN: dict[str, Kernel] = {k.name: k for k in (LAPLACE, HELMHOLTZ, MODIFIED_HELMHOLTZ, STOKES)}
_REGISTRY: dict[str, Kernel] = dict(_BUILTIN)
_LOCK = threading.Lock()

#: Names of the built-in kernels (:func:`kernel_names` lists the registered ones too).
KERNEL_NAMES: tuple[str, ...] = tuple(_BUILTIN)


def kernel_names() -> tuple[str, ...]:
    """Names of every kernel registered in this process, the built-in ones first."""
    return tuple(_REGISTRY)


def get_kernel(name) -> Kernel:
    """Return the registered :class:`Kernel` called ``name`` (a ``Kernel`` passes through; a
    :attr:`Kernel.key` names one definition, see :func:`kernel_for_key`).

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones, or a key of another definition.
    """
    if isinstance(name, Kernel):
        return name
    if isinstance(name, str) and name not in _REGISTRY and "-" in name:
        return kernel_for_key(name)
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown kernel {name!r}; expected one of {', '.join(map(repr, kernel_names()))} "
            f"(register your own with fmmsolve.register_kernel)"
        ) from None


def kernel_for_key(key: str) -> Kernel:
    """The registered kernel whose :attr:`Kernel.key` is ``key`` (``"<name>-<digest>"``); a
    built-in kernel's bare name is accepted too.

    Raises
    ------
    ValueError
        When no kernel of that name is registered, or the one registered has another
        definition (another digest): a plan, pickle or file of one kernel is never used with
        another. A registered kernel's bare name is refused (it does not say which
        definition).
    """
    if key in _BUILTIN:
        return _BUILTIN[key]
    name, _, digest = str(key).rpartition("-")
    kernel = _REGISTRY.get(name)
    if not name and key in _REGISTRY:
        raise ValueError(f"kernel {key!r} is a registered kernel: identify it by its key "
                         f"(Kernel.key, name and digest), not its name")
    if kernel is None:
        raise ValueError(f"unknown kernel {name or key!r}: not registered in this process; "
                         f"register it (fmmsolve.register_kernel) with the same definition "
                         f"first")
    if kernel.key != key:
        raise ValueError(f"kernel {name!r} is registered with another definition (digest "
                         f"{kernel.digest[:16]}) than the one this was made with ({digest}); "
                         f"register the same profile, constants and options")
    return kernel


def register_kernel(name, profile=None, *, pair=None, components=1, parities=None,
                    wavenumber=False, is_complex=False, homogeneity=None, decay=0.0) -> Kernel:
    """Register a Green's function under ``name`` and return it: a radial one,
    ``G(x, y) = g(|x - y|)``, from its ``profile``, or one of several components (a tensor
    kernel) from its ``pair`` function.

    Every part of the kernel (potential and gradient sums, dipole sums for a profile, the dense
    matrices of the translation operators) is derived from that one function. The FMM's
    expansion order for an ``eps`` is calibrated for the kernel at first use
    (:mod:`fmmsolve.calibration`).

    Parameters
    ----------
    name : str
        A Python identifier, not a built-in kernel's name. Registering a name again replaces
        the kernel: objects made with the earlier one keep it, and its plans, pickles and files
        are refused by the new one (they are keyed by the definition's digest).
    profile : function
        ``profile(r, k) -> (g, dg/dr, d2g/dr2)``: plain Python (it is compiled with Numba) or
        a ``numba.njit`` function, called with ``r > 0`` (float64) and the wavenumber ``k``
        (0.0 without one); returns float64 values (complex128 when ``is_complex``). It may
        read module constants: they are part of the definition.
    pair : function, keyword-only
        Instead of ``profile``: ``pair(dx, dy, dz, k, out)`` writes ``G`` (``out[0]``, a
        ``components x components`` matrix) and its derivatives with respect to the target's
        coordinates (``out[1:4]``) at the offset ``target - source != 0``
        (:mod:`fmmsolve.kernels.pair`). Densities and potentials then have ``components``
        values per point.
    components : int, default 1
        The number of components of a ``pair`` kernel (at most 9).
    parities : sequence of int or None
        Per component of a ``pair`` kernel, the mask of axes (bit d: axis d) whose reflection
        negates it, so that ``G(R x) = S G(x) S``; None: 0 for every component (components
        that do not change under reflections). Checked at registration, with the derivatives
        and reciprocity ``G(-d) = G(d)^T``.
    wavenumber : bool, default False
        Whether the kernel takes a wavenumber ``k`` (then required by every fit).
    is_complex : bool, default False
        Whether G is complex (potentials complex128, or complex64 in float32).
    homogeneity : int or None, default None
        ``d`` with G(s x, s y) = s^-d G(x, y) for s > 0, with a wavenumber rescaled to
        ``s k`` (d = 1 for 1 / (4 pi r) and for exp(-k r) / (4 pi r)). Declaring it lets a
        scale-free kernel share one plan among all tree levels; None (always correct) computes
        each level's plan at its own box size.
    decay : float, default 0.0
        Rate ``d`` of an exponential decay ``|G| r ~ exp(-d r)``, if the kernel decays: the
        FMM then skips far fields beyond its reach. 0 (always correct) assumes none.

    Returns
    -------
    Kernel

    Raises
    ------
    ValueError
        For a built-in name, an invalid option, both or neither of ``profile`` and ``pair``, or
        a function that fails its checks (it must compile, give finite numbers of the right
        type, and its derivatives must agree with its values' difference quotients).
    """
    if name in _BUILTIN:
        raise ValueError(f"name {name!r} is a built-in kernel's; choose another")
    if (profile is None) == (pair is None):
        raise ValueError("give exactly one of profile (a radial kernel) and pair (a kernel "
                         "with components)")
    options = dict(wavenumber=wavenumber, is_complex=is_complex, homogeneity=homogeneity,
                   decay=decay)
    if pair is not None:
        kernel = kernel_from_pair(name, pair, components, parities=parities, **options)
    elif components != 1 or parities is not None:
        raise ValueError("components and parities are options of a pair kernel; a profile "
                         "kernel has one component")
    else:
        kernel = kernel_from_profile(name, profile, **options)
    with _LOCK:
        _REGISTRY[name] = kernel
    return kernel
