"""bempp-cl backend: fmmsolve as the FMM behind bempp-cl's ``assembler="fmm"``.

``fmmsolve.bempp.enable()`` makes every boundary and potential operator that bempp-cl assembles
with ``assembler="fmm"`` use :class:`~fmmsolve.FMMOperator` instead of exafmm-t;
``disable()`` puts bempp-cl back as it was. This module is the only one that imports bempp-cl,
and it does so only inside :func:`enable` (``import fmmsolve`` never imports it). Install it
with the ``bempp`` extra: ``pip install "fmmsolve[bempp]"``.

Conventions fixed here:

1. bempp-cl's FMM assembler builds its FMM object from
   ``bempp_cl.api.fmm.exafmm.ExafmmInterface``, looked up at call time, and refuses to run
   unless ``bempp_cl.api.check_for_fmm()`` (does ``import exafmm`` work?) is true. ``enable``
   replaces both attributes (the class by :class:`FmmInterface`, the check by one that says
   yes) and empties bempp-cl's cache of FMM objects; ``disable`` restores the originals and
   empties it again. Nothing else in bempp-cl is touched, so its own near-field (singular)
   correction, quadrature and operator formulas are used unchanged.
2. :class:`FmmInterface` has ``ExafmmInterface``'s constructor, ``from_grid``, ``evaluate``,
   ``as_matrix`` and point counts. ``evaluate(vec)`` returns an ``(n_targets, 4)`` array:
   column 0 the potential ``sum_j G(y_i, x_j) vec_j`` and columns 1-3 its gradient with respect
   to the target ``y_i``, zero-distance pairs skipped, and then the singular correction
   ``(C @ vec).reshape(-1, 4)`` subtracted, as exafmm-t's interface does.
3. Accuracy: ``enable(eps=e)`` makes every boundary operator's product accurate to ``e``
   (relative L2). bempp-cl builds the double-layer operators from the FMM's gradient, which
   is less accurate than its potential (measured: 1.3 to 4.6 times the FMM's eps on a sphere),
   so each FMM is fit for ``e / GRADIENT_MARGIN`` (10); ``e`` must be at least 1e-8.
   Without ``eps``, bempp-cl's ``GLOBAL_PARAMETERS.fmm.expansion_order`` p (default 5) is read
   as an accuracy: exafmm-t is a KIFMM too, with the same p (points per edge of the cube
   surfaces), so p maps to the smallest eps that fmmsolve reaches with order at most p
   (:func:`eps_for_order`: 4 -> 1e-3, 5 -> 1e-4, 6 -> 1e-5, 7 -> 1e-6). bempp-cl's ``depth``
   and ``ncrit`` (exafmm-t's tree) and ``precision`` are ignored: fmmsolve picks its own tree,
   and works in float64 whatever the precision, as the exafmm-t interface does.
4. The Helmholtz FMM raises its order with the frequency and refuses (``ValueError``) a wavenumber
   with ``|k| w_2`` above :func:`fmmsolve.accuracy.max_frequency` of the accuracy asked (25 to 30),
   ``w_2`` a quarter of the bounding cube's edge (``|k| <= 60`` on the unit sphere at
   ``enable(eps=1e-6)``; the table in ``docs/bempp.md``). That error reaches the caller of
   ``weak_form()`` (for a boundary operator) or of the potential operator's constructor (bempp-cl
   fits its FMM there), retold in bempp-cl's terms: the eps given to :func:`enable` (or read from
   the expansion order), the margin apart, and ``assembler="dense"`` as the remedy.
"""

from __future__ import annotations

import importlib.metadata
import numbers
import re

import numpy as np

from .accuracy import FrequencyError, order_for_eps
from .linear_operator import FMMOperator

__all__ = ["enable", "disable", "is_enabled", "eps_for_order", "FmmInterface",
           "SUPPORTED_VERSIONS"]

#: The bempp-cl releases this backend is tested with (a pip version specifier).
SUPPORTED_VERSIONS = ">=0.4.2,<0.5"
_LOWEST, _BELOW = (0, 4, 2), (0, 5)

# eps values fmmsolve's accuracy table distinguishes, coarse to fine.
_EPS_STEPS = tuple(10.0 ** -e for e in range(2, 10))

_MODES = ("laplace", "helmholtz", "modified_helmholtz")

# What enable() set: the FmmInterface options, and bempp-cl's originals to restore.
_state = {"options": None, "saved": None}


def eps_for_order(expansion_order) -> float:
    """The accuracy fmmsolve reaches with at most ``expansion_order`` points per cube edge.

    Parameters
    ----------
    expansion_order : int
        bempp-cl's ``GLOBAL_PARAMETERS.fmm.expansion_order`` (exafmm-t's p).

    Returns
    -------
    float
        The smallest eps whose order (:func:`fmmsolve.accuracy.order_for_eps`) is at most
        ``expansion_order``; 1e-2 (order 3) for orders below 3.
    """
    if isinstance(expansion_order, bool) or not isinstance(expansion_order, numbers.Integral):
        raise ValueError(f"expansion_order must be an integer, got {expansion_order!r}")
    reached = [e for e in _EPS_STEPS if order_for_eps(e) <= expansion_order]
    return min(reached) if reached else _EPS_STEPS[0]


def _release(version: str) -> tuple:
    """``"0.4.2"`` -> ``(0, 4, 2)``; the leading numeric release part of a version string."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def _import_bempp():
    """Import ``bempp_cl.api`` after checking that the installed bempp-cl is supported."""
    hint = (f'install a supported one with pip install "fmmsolve[bempp]" '
            f"(bempp-cl{SUPPORTED_VERSIONS})")
    try:
        version = importlib.metadata.version("bempp-cl")
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(f"fmmsolve.bempp needs bempp-cl, which is not installed; "
                          f"{hint}") from None
    if not _LOWEST <= _release(version) < _BELOW:
        raise ImportError(f"fmmsolve.bempp supports bempp-cl{SUPPORTED_VERSIONS}, but bempp-cl "
                          f"{version} is installed; {hint}")
    import bempp_cl.api

    return bempp_cl.api


#: Each FMM is fit for eps / GRADIENT_MARGIN: bempp-cl's double-layer operators use the FMM's
#: gradient, measured at up to 4.6 times the FMM's eps (docs/bempp.md).
GRADIENT_MARGIN = 10.0


def _check_eps(eps):
    if eps is None:
        return None
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < 1:
        raise ValueError(f"eps must be None or a number in (0, 1), got {eps!r}")
    if eps < 1e-9 * GRADIENT_MARGIN * (1 - 1e-9):
        raise ValueError(f"eps must be at least {1e-9 * GRADIENT_MARGIN:g} (each FMM is fit for "
                         f"eps / {GRADIENT_MARGIN:g}, and 1e-9 is the smallest fmmsolve "
                         f"reaches), got {eps!r}")
    return float(eps)


def enable(eps=None, *, leaf_size=None, memory="default"):
    """Make bempp-cl's ``assembler="fmm"`` use fmmsolve.

    Parameters
    ----------
    eps : float or None, default None
        Relative L2 accuracy of every FMM potential, in [1e-9, 1). None maps bempp-cl's
        ``GLOBAL_PARAMETERS.fmm.expansion_order`` through :func:`eps_for_order` (5 -> 1e-4).
    leaf_size : int or None
        Passed to :class:`~fmmsolve.FMMOperator`; None keeps its tuned default.
    memory : "default", str, os.PathLike, joblib.Memory or None
        Passed to :class:`~fmmsolve.FMMOperator` (disk cache of precomputed operators).

    Raises
    ------
    ImportError
        bempp-cl is missing or outside :data:`SUPPORTED_VERSIONS`.
    ValueError
        ``eps`` is not a number in [1e-9, 1).

    Notes
    -----
    Calling it again with other options empties bempp-cl's cache of FMM objects, so that new
    assemblies use them (with the same options, the cache is kept). Weak forms that bempp-cl
    already holds keep the FMM they were assembled with.
    """
    options = {"eps": _check_eps(eps), "leaf_size": leaf_size, "memory": memory}
    api = _import_bempp()
    from bempp_cl.api.fmm import exafmm
    if _state["saved"] is None:
        _state["saved"] = (exafmm.ExafmmInterface, api.check_for_fmm)
    exafmm.ExafmmInterface = FmmInterface
    api.check_for_fmm = _fmm_available
    if _state["options"] != options:  # bempp-cl's cached FMMs were built with other options
        _state["options"] = options
        api.clear_fmm_cache()


def disable():
    """Give bempp-cl back its own FMM (exafmm-t); a no-op when :func:`enable` was not called."""
    if _state["saved"] is None:
        return
    import bempp_cl.api as api
    from bempp_cl.api.fmm import exafmm
    exafmm.ExafmmInterface, api.check_for_fmm = _state["saved"]
    _state["saved"] = _state["options"] = None
    api.clear_fmm_cache()


def is_enabled() -> bool:
    """Whether :func:`enable` is in effect."""
    return _state["saved"] is not None


def _fmm_available():
    """Stands in for ``bempp_cl.api.check_for_fmm`` while enabled: an FMM is available."""
    return True


def _bempp_frequency_error(error, eps, from_order, expansion_order, n_sources, n_targets):
    """``error`` (from fitting the FMM for ``eps / GRADIENT_MARGIN``) told in bempp-cl's
    terms: the eps the user asked for, the margin apart, and bempp-cl's remedies."""
    origin = (f"bempp-cl's fmm.expansion_order={expansion_order}" if from_order
              else "fmmsolve.bempp.enable(eps=...)")
    asked = (f"eps={eps:g} (from {origin}; each FMM is fit for eps / {GRADIENT_MARGIN:g} = "
             f"{error.eps:g}, the margin for bempp-cl's double layers, at expansion order "
             f"{error.expansion_order})")
    points = (f"{n_sources} points" if n_targets is None
              else f"{n_sources} source and {n_targets} target points")
    advice = (f"assemble this operator ({points}) with assembler=\"dense\" (bempp-cl's own "
              f"dense assembly, exact at any frequency), or lower the wavenumber. A potential "
              f"operator evaluated far from the surface widens the cube: keep its points near "
              f"the surface, or give the potential operator alone assembler=\"dense\"")
    return FrequencyError(error.kernel, error.wavenumber, eps, error.expansion_order,
                          error.edge, advice=advice, asked=asked, bound=error.bound,
                          highest=error.highest)


class FmmInterface:
    """The FMM object bempp-cl's FMM assembler builds, on :class:`~fmmsolve.FMMOperator`.

    Same signature as ``bempp_cl.api.fmm.exafmm.ExafmmInterface``.

    Parameters
    ----------
    source_points : ndarray of shape (n_sources, 3), float64
    target_points : ndarray of shape (n_targets, 3), float64
        The same array (or equal values) means one point set: one tree, ``targets=None``.
    mode : {"laplace", "helmholtz", "modified_helmholtz"}
    wavenumber : complex, float or None
        Helmholtz: ``k`` (bempp-cl passes it as complex); modified Helmholtz: ``k > 0``.
    depth, ncrit : int
        exafmm-t's tree parameters; ignored (see the module docstring).
    expansion_order : int, default 5
        Sets the accuracy through :func:`eps_for_order` unless ``enable(eps=...)`` was given.
    precision : {"double", "single"}
        Ignored: the FMM runs in float64.
    singular_correction : scipy LinearOperator of shape (4 n_targets, n_sources) or None
        Subtracted from the FMM result, as ``(C @ vec).reshape(-1, 4)``.

    Attributes
    ----------
    operator : FMMOperator
        The fitted FMM; ``operator.eps`` is the accuracy asked for divided by
        ``GRADIENT_MARGIN``.
    """

    def __init__(self, source_points, target_points, mode, wavenumber=None, depth=4,
                 expansion_order=5, ncrit=400, precision="double", singular_correction=None):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        options = _state["options"] or {"eps": None, "leaf_size": None, "memory": "default"}
        eps = options["eps"] if options["eps"] is not None else eps_for_order(expansion_order)
        sources = np.asarray(source_points, dtype=np.float64)
        targets = np.asarray(target_points, dtype=np.float64)
        same = targets is sources or (targets.shape == sources.shape
                                      and np.array_equal(targets, sources))
        if mode == "laplace":
            wavenumber = None
        elif mode == "helmholtz" and complex(wavenumber).imag == 0:
            wavenumber = complex(wavenumber).real  # the real-k FMM is the cheaper one
        elif mode == "modified_helmholtz":
            wavenumber = float(np.real(wavenumber))
        try:
            self.operator = FMMOperator(sources, None if same else targets, kernel=mode,
                                        wavenumber=wavenumber,
                                        eps=max(eps / GRADIENT_MARGIN, 1e-9),
                                        leaf_size=options["leaf_size"], memory=options["memory"])
        except FrequencyError as error:
            raise _bempp_frequency_error(error, eps, options["eps"] is None, expansion_order,
                                         len(sources), None if same else len(targets)) from None
        self._source_points = sources
        self._target_points = targets
        self._mode = mode
        self._singular_correction = singular_correction

    @property
    def number_of_source_points(self) -> int:
        """Number of source points."""
        return len(self._source_points)

    @property
    def number_of_target_points(self) -> int:
        """Number of target points."""
        return len(self._target_points)

    def evaluate(self, vec, apply_singular_correction=True):
        """Potential and target gradient of ``vec``, less the singular correction.

        Parameters
        ----------
        vec : ndarray of shape (n_sources,), real or complex
        apply_singular_correction : bool, default True

        Returns
        -------
        ndarray of shape (n_targets, 4)
            Columns: potential, d/dy1, d/dy2, d/dy3. float64 for a real kernel and real
            ``vec``, complex128 otherwise.
        """
        vec = np.asarray(vec).ravel()
        pot, grad = self.operator.evaluate(vec, gradient=True)
        result = np.empty((len(pot), 4), dtype=np.result_type(pot.dtype, grad.dtype))
        result[:, 0] = pot
        result[:, 1:] = grad
        if apply_singular_correction and self._singular_correction is not None:
            result -= (self._singular_correction @ vec).reshape([-1, 4])
        return result

    def as_matrix(self):
        """Potential part (column 0 of :meth:`evaluate`) as a dense ``(n_targets, n_sources)``
        matrix, one evaluation per source."""
        ident = np.identity(self.number_of_source_points)
        return np.stack([self.evaluate(column)[:, 0] for column in ident], axis=1)

    @classmethod
    def from_grid(cls, source_grid, mode, wavenumber=None, target_grid=None,
                  precision="double", parameters=None, device_interface=None):
        """Build the interface for a grid's quadrature points, as ``ExafmmInterface.from_grid``.

        bempp-cl's own ``from_grid`` computes the point clouds and the singular correction and
        then calls ``cls(...)``; it is run here with ``cls`` set to this class.
        """
        from bempp_cl.api.fmm import exafmm
        original = (_state["saved"] or (exafmm.ExafmmInterface,))[0]
        return original.from_grid.__func__(cls, source_grid, mode, wavenumber=wavenumber,
                                           target_grid=target_grid, precision=precision,
                                           parameters=parameters,
                                           device_interface=device_interface)
