"""scikit-learn estimators on the FMM: potential features, and an integral-equation solver.

This is the only module that imports scikit-learn. :mod:`fmmsolve` re-exports the two estimators
lazily, so ``import fmmsolve`` never imports scikit-learn. The solver also uses SciPy's Krylov
solvers: it is an application of :class:`~fmmsolve.FMMOperator`, as the command line is.

Conventions fixed here:

1. ``X`` is always points, (n_samples, 3): other column counts raise ``ValueError("X must
   have 3 columns (x, y, z), ...")``. float32 points stay float32 (scikit-learn's
   ``dtype=[np.float64, np.float32]``) and are computed in float32, others become float64
   (the rule of :class:`~fmmsolve.FMMOperator`); outputs have the kernel's dtype for that.
2. ``PotentialTransformer``: ``sample_weight`` are the charges of the source points ``X``
   (default ones, any sign). ``transform`` adds no self-term: a point that coincides with a
   source skips it, the package's zero-distance convention.
3. ``IntegralEquationSolver``: ``sample_weight`` are quadrature weights ``w >= 0`` (default
   ones), and ``fit`` solves ``(D + K W) sigma = y``. Points with weight 0 carry no area. They
   are left out of the solve, exactly as if removed, and their ``density_`` is 0. Coincident
   points are one quadrature point: their weights add, their data are averaged with those
   weights, and they share one density. So an integer weight and a repeated point give the
   same solution, as scikit-learn's ``sample_weight`` semantics ask.
4. ``predict`` at a point that coincides with a fitted point adds that point's singular self-term
   ``D_i sigma_i``: the part of the layer potential that the zero-distance skip leaves out.
   Hence ``predict(X)`` reproduces ``y`` to the solver's tolerance, and ``score`` (R^2) measures
   the solve on training points and the quadrature on held-out ones.
5. Fitted estimators pickle. The ``FMMField`` inside is fitted again when unpickled (see
   :mod:`fmmsolve.field`), with its plan from the disk cache, so a joblib cache hit rebuilds
   the geometry but never the plan.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from scipy.sparse.linalg import LinearOperator, cg, gmres
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data  # scikit-learn >= 1.6

from ._validation import check_flag, reject_ragged_or_bool
from .field import FMMField
from .kernels import get_kernel
from .kernels.self_integral import patch_self_integral
from .linear_operator import FMMOperator

__all__ = ["PotentialTransformer", "IntegralEquationSolver", "patch_self_integral"]

_GMRES_RESTART = 100  # Krylov vectors kept per GMRES cycle (memory: 100 vectors of n values)


def _columns_error(n_columns):
    return ValueError(f"X must have 3 columns (x, y, z), got {n_columns}")


_DTYPES = [np.float64, np.float32]  # float32 kept, anything else made float64


def _fit_points(estimator, X, y=None, supervised=False):
    """Validate and set ``n_features_in_``; scikit-learn's messages first (missing y, empty,
    NaN, complex, sparse, 1-D), then ours for the number of columns."""
    reject_ragged_or_bool(X, "X")
    if supervised:
        X, y = validate_data(estimator, X, y, dtype=_DTYPES, y_numeric=True)
    else:
        X = validate_data(estimator, X, dtype=_DTYPES)
    if X.shape[1] != 3:
        raise _columns_error(X.shape[1])
    return X, y


def _new_points(estimator, X):
    """Points for transform / predict: our column message, then scikit-learn's checks."""
    reject_ragged_or_bool(X, "X")
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2 and shape[1] != 3:
        raise _columns_error(shape[1])
    return validate_data(estimator, X, reset=False, dtype=_DTYPES)


def _weights(sample_weight, n, complex_ok):
    """``sample_weight`` as a finite (n,) array (a scalar is broadcast); default ones."""
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight)
    if w.ndim == 0:
        w = np.full(n, w)
    if w.dtype.kind not in "biufc" or (w.dtype.kind == "c" and not complex_ok):
        raise ValueError(f"sample_weight must be a real numeric array, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},) (one per point), got {w.shape}")
    w = w.astype(np.complex128 if w.dtype.kind == "c" else np.float64)
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinite values")
    return w


def _row_keys(points):
    """One hashable byte key per row of a float64 (n, 3) array (-0.0 counted as 0.0)."""
    rows = np.ascontiguousarray(np.asarray(points, np.float64) + 0.0)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * 3))).ravel()


class _PointEstimator:
    """What both estimators share: FMM parameters passed through, and tags for dense points."""

    def _fmm_params(self):
        return dict(kernel=self.kernel, wavenumber=self.wavenumber, eps=self.eps,
                    expansion_order=self.expansion_order, leaf_size=self.leaf_size,
                    memory=self.memory)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True  # (n_samples, 3) coordinates
        tags.input_tags.sparse = tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags  # the mixins add the transformer and regressor tags


class PotentialTransformer(_PointEstimator, TransformerMixin, BaseEstimator):
    """Potential (and gradient) of charged source points, as features of any points.

    ``fit`` takes the source points and their charges and does all the source-side work once:
    the octree, the plan and the expansions. ``transform`` then evaluates
    ``phi(y) = sum_j G(y, x_j) q_j`` at new points, with no new tree and no new upward pass
    (:class:`~fmmsolve.FMMField`).

    Parameters
    ----------
    kernel : str, default "laplace"
        A name from :data:`fmmsolve.KERNEL_NAMES`, or of a kernel registered with
        :func:`fmmsolve.register_kernel`.
    wavenumber : scalar or None, default None
        Required by the Helmholtz kernels; None for ``"laplace"``.
    eps : float or None, default None
        Requested relative L2 accuracy of the potential, in (0, 1); None: 1e-6 (1e-4 in float32).
    expansion_order : int or None, default None
        Overrides the order chosen from ``eps``.
    leaf_size : int or None, default None
        Maximum sources per leaf; None picks a tuned default.
    gradient : bool, default False
        Also output the gradient of the potential (three more columns).
    memory : "default", str, os.PathLike, joblib.Memory or None, default "default"
        Disk cache of the precomputed operators (:mod:`fmmsolve.cache`); None disables it.

    Attributes
    ----------
    field_ : FMMField
        The fitted field of the sources.
    expansion_order_ : int
        The expansion order used.
    n_features_in_ : int
        Always 3.

    Examples
    --------
    >>> import numpy as np
    >>> from fmmsolve import PotentialTransformer
    >>> rng = np.random.default_rng(0)
    >>> features = PotentialTransformer(gradient=True).fit(rng.random((2000, 3)))
    >>> features.transform(rng.random((10, 3))).shape
    (10, 4)
    """

    def __init__(self, *, kernel="laplace", wavenumber=None, eps=None, expansion_order=None,
                 leaf_size=None, gradient=False, memory="default"):
        self.kernel = kernel
        self.wavenumber = wavenumber
        self.eps = eps
        self.expansion_order = expansion_order
        self.leaf_size = leaf_size
        self.gradient = gradient
        self.memory = memory

    def fit(self, X, y=None, sample_weight=None):
        """Build the field of the sources ``X`` with charges ``sample_weight``.

        Parameters
        ----------
        X : array_like of shape (n_samples, 3)
            Source points.
        y : ignored
        sample_weight : array_like of shape (n_samples,) or None
            Charges; default ones. Complex only for a complex kernel.

        Returns
        -------
        self
        """
        kern = get_kernel(self.kernel).require_scalar(type(self).__name__)
        check_flag(self.gradient, "gradient")
        X, _ = _fit_points(self, X)
        charges = _weights(sample_weight, X.shape[0], complex_ok=kern.is_complex)
        self.field_ = FMMField(X, charges, **self._fmm_params())
        self.expansion_order_ = self.field_.expansion_order
        return self

    def transform(self, X):
        """Potential at the points ``X``: one column, or four with ``gradient=True``.

        Parameters
        ----------
        X : array_like of shape (n_samples, 3)

        Returns
        -------
        ndarray of shape (n_samples, 1) or (n_samples, 4), of the fitted points' precision
            Columns ``potential`` and, with the gradient, ``grad_x, grad_y, grad_z``.
        """
        check_is_fitted(self)
        X = _new_points(self, X)
        if self.gradient:
            pot, grad = self.field_.evaluate(X, gradient=True)
            return np.column_stack([pot, grad])
        return self.field_.evaluate(X)[:, None]

    def get_feature_names_out(self, input_features=None):
        """``potential``, and with the gradient ``grad_x, grad_y, grad_z``."""
        check_is_fitted(self)
        names = ["potential", "grad_x", "grad_y", "grad_z"] if self.gradient else ["potential"]
        return np.asarray(names, dtype=object)


class IntegralEquationSolver(_PointEstimator, RegressorMixin, TransformerMixin, BaseEstimator):
    """Solve a point-quadrature integral equation with the FMM; predict its field anywhere.

    For boundary-element and PDE users with point clouds (quadrature or collocation points),
    ``fit(X, y, sample_weight=w)`` solves ``(D + K W) sigma = y`` for the density ``sigma``:
    ``K[i, j] = G(x_i, x_j)`` (zero diagonal), ``W = diag(w)``, ``D`` a diagonal self-term.
    The Krylov method's products are FMM evaluations (:class:`~fmmsolve.FMMOperator`).
    ``predict`` evaluates ``u(x) = sum_j G(x, x_j) w_j sigma_j`` anywhere
    (:class:`~fmmsolve.FMMField`), adding the self-term at fitted points (convention 4).

    Parameters
    ----------
    kernel, wavenumber
        As for :class:`PotentialTransformer`.
    diagonal : "auto", float or array_like of shape (n_samples,), default "auto"
        The self-term ``D``. ``"auto"`` is the singular self-interaction of a flat disk of area
        ``w_i`` around each point (:func:`patch_self_integral`; ``sqrt(w_i / pi) / 2`` for
        Laplace). A number applies to every point, and an array gives one value per point of
        ``X`` (merged points take the weighted mean).
    solver : {"gmres", "cg"}, default "gmres"
        ``"cg"`` runs conjugate gradients on the symmetric form
        ``(D + W^1/2 K W^1/2) (W^1/2 sigma) = W^1/2 y``. It needs a real kernel, and is right
        only when that matrix is positive definite: true of well-resolved surfaces with the
        ``"auto"`` diagonal, but not guaranteed. GMRES needs neither condition.
    tol : float, default 1e-6
        Relative residual at which the Krylov method stops (in the symmetric form for
        ``"cg"``). Asking much below ``eps`` gains little: the products are accurate to
        ``eps``.
    max_iter : int, default 500
        Maximum number of iterations (FMM products). GMRES restarts every
        ``min(n, 100, max_iter)`` iterations and stops only at the end of a cycle.
    eps, expansion_order, leaf_size, memory
        As for :class:`PotentialTransformer`; ``eps`` is the relative accuracy of every FMM
        product and of ``predict``.

    Attributes
    ----------
    density_ : ndarray of shape (n_samples,)
        ``sigma`` at each point of ``X``, in its order (0 at points of zero weight that
        coincide with no other point). float64, or complex128 for a complex kernel.
    n_iter_ : int
        Krylov iterations done.
    residual_norm_ : float
        ``||y - (D + K W) sigma|| / ||y||`` over the merged points, from one more FMM product
        after the solve (not the solver's own estimate).
    field_ : FMMField
        The field of the charges ``w_j sigma_j``; ``predict`` evaluates it.
    n_features_in_ : int
        Always 3.

    Warns
    -----
    ConvergenceWarning
        When the Krylov method stops before reaching ``tol``.

    Examples
    --------
    >>> import numpy as np
    >>> from fmmsolve import IntegralEquationSolver
    >>> from fmmsolve.testing import fibonacci_sphere
    >>> n = 2000
    >>> x = fibonacci_sphere(n)
    >>> w = np.full(n, 4 * np.pi / n)
    >>> model = IntegralEquationSolver().fit(x, np.ones(n), sample_weight=w)
    >>> round(float(np.sum(w * model.density_) / (4 * np.pi)), 2)   # capacitance of a sphere
    1.0
    """

    def __init__(self, *, kernel="laplace", wavenumber=None, diagonal="auto", solver="gmres",
                 tol=1e-6, max_iter=500, eps=None, expansion_order=None, leaf_size=None,
                 memory="default"):
        self.kernel = kernel
        self.wavenumber = wavenumber
        self.diagonal = diagonal
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.eps = eps
        self.expansion_order = expansion_order
        self.leaf_size = leaf_size
        self.memory = memory

    def fit(self, X, y, sample_weight=None):
        """Solve for the density that reproduces ``y`` at the points ``X``.

        Parameters
        ----------
        X : array_like of shape (n_samples, 3)
            Quadrature or collocation points.
        y : array_like of shape (n_samples,)
            Boundary data (real).
        sample_weight : array_like of shape (n_samples,) or None
            Quadrature weights ``w >= 0``, at least one positive; default ones.

        Returns
        -------
        self
        """
        kern = get_kernel(self.kernel).require_scalar(type(self).__name__)
        k = kern.check_wavenumber(self.wavenumber)  # the engine's errors, before any work
        self._check_solver_params(kern)
        X, y = _fit_points(self, X, y, supervised=True)
        n = X.shape[0]
        w = _weights(sample_weight, n, complex_ok=False)
        if (w < 0).any():
            raise ValueError("sample_weight must be non-negative (quadrature weights)")
        if not (w > 0).any():
            raise ValueError("sample_weight must contain at least one non-zero weight")

        # Merge coincident points, leave weightless ones out (module docstring, convention 3).
        keys = _row_keys(X)
        held = np.flatnonzero(w > 0)
        unique, first, group = np.unique(keys[held], return_index=True, return_inverse=True)
        points = X[held[first]]
        area = np.bincount(group, weights=w[held])
        data = np.bincount(group, weights=w[held] * y[held]) / area
        diag = self._diagonal(kern, k, area, n, lambda v: np.bincount(group, w[held] * v[held]))

        operator = FMMOperator(points, **self._fmm_params())
        sigma = self._solve(operator, diag, area, data)
        self.field_ = FMMField.from_operator(operator, area * sigma)  # no second fit
        self._keys, self._self_terms = unique, diag * sigma
        self.density_ = np.zeros(n, sigma.dtype)
        at, match = self._coincident(keys)
        self.density_[match] = sigma[at[match]]
        return self

    def _check_solver_params(self, kern):
        if self.solver not in ("gmres", "cg"):
            raise ValueError(f"solver must be 'gmres' or 'cg', got {self.solver!r}")
        if self.solver == "cg" and kern.is_complex:
            raise ValueError(f"solver='cg' needs a real kernel; {kern.name!r} is complex "
                             f"(complex symmetric, not Hermitian): use 'gmres'")
        tol, max_iter = self.tol, self.max_iter
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 < tol < 1:
            raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) \
                or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")

    def _diagonal(self, kern, k, area, n, merge):
        """The self-term of each merged point; ``merge(v)`` sums ``w * v`` over each group."""
        d = self.diagonal
        if isinstance(d, str):
            if d != "auto":
                raise ValueError(f"diagonal must be 'auto', a number or an array of shape "
                                 f"({n},), got {d!r}")
            return np.asarray(patch_self_integral(kern.key, area, k))
        values = np.asarray(d)
        if values.dtype.kind not in "biuf" + ("c" if kern.is_complex else ""):
            raise ValueError(f"diagonal must be 'auto', a real number or a real array: {d!r}")
        if not np.isfinite(values).all():
            raise ValueError("diagonal contains NaN or infinite values")
        if values.ndim == 0:
            return np.full(len(area), values[()])
        if values.shape != (n,):
            raise ValueError(f"diagonal must have shape ({n},), one per point; got {values.shape}")
        if values.dtype.kind == "c":
            return (merge(values.real) + 1j * merge(values.imag)) / area
        return merge(values.astype(np.float64)) / area

    def _solve(self, K, diag, area, data):
        """The density on the merged points; sets ``n_iter_`` and ``residual_norm_``."""
        n, dtype = len(area), np.result_type(K.dtype, diag.dtype)
        counter = [0]

        def count(_):  # once per iteration (GMRES: inner iterations, "pr_norm")
            counter[0] += 1

        def system(s):
            s = np.ravel(s)
            return diag * s + K.matvec(area * s)

        b = data.astype(dtype)
        b_norm = float(np.linalg.norm(b))
        info = 0
        if b_norm == 0:
            sigma = np.zeros(n, dtype)
        elif self.solver == "gmres":
            restart = min(n, _GMRES_RESTART, self.max_iter)
            A = LinearOperator((n, n), matvec=system, dtype=dtype)
            sigma, info = gmres(A, b, rtol=self.tol, atol=0.0, restart=restart,
                                maxiter=math.ceil(self.max_iter / restart), callback=count,
                                callback_type="pr_norm")
        else:
            root = np.sqrt(area)
            S = LinearOperator((n, n), matvec=lambda t: system(np.ravel(t) / root) * root,
                               dtype=dtype)
            tau, info = cg(S, root * b, rtol=self.tol, atol=0.0, maxiter=self.max_iter,
                           callback=count)
            sigma = tau / root
        self.n_iter_ = counter[0]
        residual = float(np.linalg.norm(b - system(sigma)))
        self.residual_norm_ = residual / b_norm if b_norm else residual
        if info != 0:
            warnings.warn(f"IntegralEquationSolver: {self.solver} stopped after "
                          f"{self.n_iter_} iterations without reaching tol={self.tol} (relative "
                          f"residual {self.residual_norm_:.2e}); raise max_iter, or check the "
                          f"system (diagonal, weights)", ConvergenceWarning, stacklevel=3)
        return sigma

    def _coincident(self, keys):
        """For byte keys of points: the index of the coincident fitted point, and a mask."""
        at = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return at, self._keys[at] == keys

    def predict(self, X):
        """The field ``sum_j G(x, x_j) w_j sigma_j`` at the points ``X``.

        At a fitted point the self-term ``D_j sigma_j`` is added, so that ``predict`` on the
        training points reproduces ``y`` to the solver's tolerance.

        Parameters
        ----------
        X : array_like of shape (n_samples, 3)

        Returns
        -------
        ndarray of shape (n_samples,), of the fitted points' precision (complex: complex kernel)
        """
        check_is_fitted(self)
        X = _new_points(self, X)
        values = self.field_.evaluate(X)
        at, match = self._coincident(_row_keys(X))
        values[match] += self._self_terms[at[match]]
        return values

    def transform(self, X):
        """:meth:`predict` as a feature column, shape (n_samples, 1)."""
        return self.predict(X)[:, None]

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self)
        return np.asarray(["field"], dtype=object)
