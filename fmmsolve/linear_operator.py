"""``FMMOperator``: a fitted FMM as a ``scipy.sparse.linalg.LinearOperator``.

This module owns the bridge to SciPy's host protocol and is the only one importing
``scipy.sparse.linalg``. It fixes these conventions:

1. ``A[i, j] = G(y_i, x_j)`` with targets ``y`` as rows and sources ``x`` as columns, both in
   the caller's order; pairs at zero distance contribute nothing (so ``targets=None`` gives the
   self-interaction without the singular diagonal).
2. Every product is one ``FMMEngine.evaluate`` call: ``A @ Q`` with ``m`` columns evaluates
   ``m`` densities in one pass, and a complex input to a real operator is split into its real
   and imaginary parts, evaluated as ``2 m`` real columns in one pass and recombined.
3. Inputs are cast to ``A.dtype`` (a float64 vector given to a float32 operator is computed and
   returned in float32); only the complex input of a real operator widens the result.
4. The kernels are symmetric, ``G(x, y) = G(y, x)``, so ``A.T`` is the operator with sources and
   targets swapped (``A`` itself when ``targets`` is None), and ``A.H = conj(A.T)`` (equal to
   ``A.T`` for a real kernel). Both are built on first access, with the same parameters, and
   cached; ``A.H.H is A`` and ``A.T.T is A``.
5. Pickling stores the constructor arguments (points in the caller's order, the kernel by
   registry name, and the other parameters) and fits again when unpickled; the fit is
   deterministic, so the copy gives the same results. The ``Kernel`` record, which holds Numba
   dispatchers, and the fitted tree are never pickled.
6. ``A.save(path)`` writes the fitted state (tree, lists and plan, the engine's ``Fitted``) and
   the constructor parameters to HDF5 through :mod:`fmmsolve.io`; :func:`fmmsolve.load`
   (:mod:`fmmsolve.operator_file`) checks it and rebuilds the operator without fitting. The
   points in the caller's order are not stored: they are the tree's points, un-permuted, bit
   for bit. ``memory`` is not stored either (a cache belongs to a machine, not to an
   operator); a loaded operator has ``FMMOperator``'s default.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator

from . import cache
from .fmm import FMMEngine
from .kernels import get_kernel
from ._validation import as_array, check_columns, check_flag
from .io import write_groups

__all__ = ["FMMOperator", "FORMAT_VERSION"]

#: Version of the HDF5 layout ``FMMOperator.save`` writes; :func:`fmmsolve.load` reads it and
#: older ones. 2: the plans' M2M and L2L hold octant 0's operator only (1 held all 8).
FORMAT_VERSION = 2
_FILE_KIND = "fmmsolve.FMMOperator"


def _check_shape(x, n: int, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x`` has shape ``(n,)`` or ``(n, m)``."""
    shape = as_array(x, name, f"shape ({n},) or ({n}, m)").shape
    if len(shape) not in (1, 2) or shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, m), got shape {shape}")
    if 0 in shape:
        raise ValueError(f"{name} is empty: shape {shape}")


def _restore(sources, targets, params):
    """Unpickle an :class:`FMMOperator` by fitting it again (see the module docstring)."""
    return FMMOperator(sources, targets, **params)


class FMMOperator(LinearOperator):
    """The matrix ``A[i, j] = G(y_i, x_j)`` applied by a kernel-independent FMM.

    The tree, interaction lists and translation operators are built once, here; every product
    then costs one FMM evaluation.

    Parameters
    ----------
    sources : array_like of shape (n_sources, 3)
        Source points ``x_j`` (columns of ``A``).
    targets : array_like of shape (n_targets, 3) or None, default None
        Target points ``y_i`` (rows of ``A``); None means the sources themselves.
    kernel : str, default "laplace"
        Green's function, a name from :data:`fmmsolve.KERNEL_NAMES`, or of a kernel registered with
        :func:`fmmsolve.register_kernel`.
    wavenumber : scalar or None
        Required by the Helmholtz kernels; None for ``"laplace"``.
    viscosity : float or None
        The dynamic viscosity ``mu > 0``, required by the ``"stokes"`` kernel (the results
        are proportional to ``1 / mu``); None for every other kernel.
    eps : float or None, default None
        Requested relative L2 accuracy of the potential over the targets, in (0, 1); None is
        1e-6 in float64 and 1e-4 in float32 (the least float32 is measured to meet).
    dipoles : bool, default False
        Prepare for double-layer densities, ``A.evaluate(dipoles=d)`` (Stokes: ``stresslets=``
        and ``normals=``): the far-field operators are built for ``eps / 100`` (about two orders
        higher; a product costs about twice as much), because a dipole's far field is a
        derivative higher than a charge's. At eps 1e-9 that is order 15, whose operators take
        minutes to precompute (once: cached on disk). An operator fit without it refuses them.
    expansion_order : int or None
        Overrides the expansion order chosen from ``eps``.
    leaf_size : int or None
        Maximum points per leaf; None picks a tuned default.
    dtype : None, np.float32 or np.float64
        Real working precision. None follows the points, as NumPy does: float32 when the
        sources (and targets) are float32, float64 otherwise (float64, integer, or float32
        mixed with float64). ``A.dtype`` is this, or the matching complex dtype for a complex
        kernel.
    memory : "default", str, os.PathLike, joblib.Memory or None, default "default"
        Disk cache of the precomputed operators (:mod:`fmmsolve.cache`): ``"default"`` is
        ``$FMMSOLVE_CACHE_DIR`` or the per-user cache directory, a path or a
        ``joblib.Memory`` selects another, None disables it.
    m2l : str, default "svd"
        How the far-field translations (M2L) are done: ``"svd"``, compressed (the fast
        default), or ``"dense"``, uncompressed (expansion orders up to 8; a reference for
        testing). A name from :data:`fmmsolve.operators.m2l.STRATEGY_NAMES`.

    Attributes
    ----------
    shape : tuple (n_targets C, n_sources C)
        ``C``, :attr:`components`, is 1 but for a kernel with components (a registered
        ``pair`` kernel, :func:`fmmsolve.register_kernel`): then a vector holds the C values
        of each point together, ``x.reshape(n_sources, C)``.
    components : int
        ``C``: density and potential values per point.
    dtype : numpy.dtype
        float64, float32, complex128 or complex64.
    sources : ndarray of shape (n_sources, 3), float64, read-only
        A copy of the sources in the caller's order.
    targets : ndarray of shape (n_targets, 3), float64, read-only, or None
    kernel : str
        The kernel's registry name.
    wavenumber, viscosity, eps, dipoles, leaf_size, memory, m2l
        The constructor arguments.
    expansion_order : int
        The order the engine uses.
    tree : dict
        Tree and interaction-list summary: ``depth``, ``n_leaves``, points per leaf,
        ``mean_u``, ``mean_v``, ``mean_w``, ``mean_x``, ...
    timings : dict of str to float
        Seconds per FMM operator in this operator's last evaluation.
    fit_timings : dict of str to float
        Seconds per fitting stage.
    engine : FMMEngine
        The fitted engine; its frozen records ``engine.fitted`` (tree, lists, plans) and
        ``engine.schedule`` (index arrays) are what :class:`~fmmsolve.FMMField` reuses.

    Raises
    ------
    ValueError
        From the engine, naming the argument: bad points, unknown kernel, eps outside (0, 1),
        a wavenumber the kernel does not accept, a bad dtype, order, leaf size or M2L strategy.

    Examples
    --------
    >>> import numpy as np, fmmsolve
    >>> from scipy.sparse import identity
    >>> from scipy.sparse.linalg import gmres, aslinearoperator
    >>> x = np.random.default_rng(0).random((2000, 3))
    >>> A = fmmsolve.FMMOperator(x, eps=1e-6)
    >>> I = aslinearoperator(identity(2000))  # sparse: no dense n x n array
    >>> u, info = gmres(I + A / 2000, np.ones(2000))
    """

    def __init__(self, sources, targets=None, *, kernel="laplace", wavenumber=None, eps=None,
                 dipoles=False, expansion_order=None, leaf_size=None, dtype=None,
                 memory="default", m2l="svd", viscosity=None):
        get_kernel(kernel).viscosity_factor(viscosity)  # checked before the fit
        loader = cache.plan_loader(memory)
        engine = FMMEngine(sources, targets, kernel=kernel, wavenumber=wavenumber, eps=eps,
                           dipoles=check_flag(dipoles, "dipoles"), expansion_order=expansion_order,
                           leaf_size=leaf_size, dtype=dtype,
                           plan_loader=loader, m2l=m2l)
        self._set_fitted(engine, _read_only(sources),
                         None if targets is None else _read_only(targets),
                         wavenumber, leaf_size, memory, viscosity)

    def _set_fitted(self, engine, sources, targets, wavenumber, leaf_size, memory, viscosity):
        """Every attribute of a fitted operator; shared by ``__init__`` and
        :func:`fmmsolve.load`."""
        self._engine = engine
        self.sources, self.targets = sources, targets
        self.kernel = engine.kernel.name
        self.wavenumber = wavenumber
        self.viscosity = viscosity
        self._factor = engine.kernel.viscosity_factor(viscosity)
        self.eps = engine.eps
        self.dipoles = engine.dipoles
        self.leaf_size = leaf_size
        self.memory = memory
        self.m2l = engine.m2l
        self.components = c = engine.kernel.components
        self._real_dtype = engine.real_dtype
        self._transpose_op = None
        self._adjoint_op = None
        LinearOperator.__init__(self, engine.value_dtype,
                                (engine.n_targets * c, engine.n_sources * c))

    def _params(self) -> dict:
        """Keyword arguments that rebuild this operator (the adjoint and unpickling use them)."""
        return dict(kernel=self._engine.kernel.key, wavenumber=self.wavenumber, eps=self.eps,
                    dipoles=self.dipoles, expansion_order=self.expansion_order,
                    leaf_size=self.leaf_size,
                    dtype=self._real_dtype, memory=self.memory, m2l=self.m2l,
                    viscosity=self.viscosity)

    def __reduce__(self):
        return _restore, (self.sources, self.targets, self._params())

    @classmethod
    def _from_engine(cls, engine, wavenumber, leaf_size, memory, viscosity):
        """An operator around an engine that is already fitted (:func:`fmmsolve.load`): sets what
        ``__init__`` sets (:meth:`_set_fitted`), with the points in the caller's order rebuilt
        from the tree."""
        self = cls.__new__(cls)
        tree = engine.tree
        targets = None if tree.targets_are_sources else \
            _input_order(tree.targets, tree.target_perm)
        self._set_fitted(engine, _input_order(tree.sources, tree.source_perm), targets,
                         wavenumber, leaf_size, memory, viscosity)
        return self

    def save(self, path):
        """Write the fitted operator to the HDF5 file ``path``; :func:`fmmsolve.load` reads it.

        The file holds the tree (points in tree order and the permutations), the interaction
        lists and the precomputed plan (one per tree level for the Helmholtz kernels) as plain
        numeric arrays, and every parameter as an attribute (format version
        :data:`FORMAT_VERSION`; layout in :mod:`fmmsolve.io` and :meth:`FMMEngine.state`). Every
        kernel can be saved. The loaded operator gives the same products bit for bit, without
        fitting again. ``memory`` is not stored.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file (``.h5`` by convention). The write is atomic: the file is written
            under a temporary name in the same directory and renamed over ``path`` when
            complete, so an error or crash never leaves a partial file there, and an existing
            file is replaced only on success.

        Raises
        ------
        OSError
            From the file system (the directory does not exist, no permission, disk full).
        """
        groups, attrs = self._engine.state()
        attrs = {**attrs, "operator.wavenumber": self.wavenumber,
                 "operator.leaf_size": self.leaf_size, "operator.viscosity": self.viscosity}
        write_groups(path, groups, attrs, kind=_FILE_KIND, format_version=FORMAT_VERSION)

    # -- introspection ---------------------------------------------------------------------------

    @property
    def engine(self) -> FMMEngine:
        """The fitted :class:`~fmmsolve.fmm.FMMEngine` behind the products."""
        return self._engine

    @property
    def expansion_order(self) -> int:
        return int(self._engine.expansion_order)

    @property
    def tree(self) -> dict:
        return self._engine.tree_summary()

    @property
    def timings(self) -> dict:
        return dict(self._engine.timings)

    @property
    def fit_timings(self) -> dict:
        return dict(self._engine.fit_timings)

    # -- evaluation ------------------------------------------------------------------------------

    def _densities(self, q, name: str) -> np.ndarray:
        """``q`` as a finite ``(n_sources, m)`` array: of ``A.dtype``, or complex if ``q`` is
        complex and the operator real."""
        _check_shape(q, self.shape[1], name)
        return self._cast(q, name).reshape(self.shape[1], -1)

    def _cast(self, arr, name: str) -> np.ndarray:
        """Finite ``arr`` of ``A.dtype`` (complex if ``arr`` is complex and the operator real)."""
        arr = as_array(arr, name, "numbers")
        if arr.dtype.kind not in "biufc":
            raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        dtype = self.dtype
        if arr.dtype.kind == "c" and dtype.kind != "c":
            dtype = np.result_type(dtype, np.complex64)
        return arr.astype(dtype, copy=False)

    def _per_point(self, arr, name: str, c: int) -> np.ndarray:
        """``c`` values per source, ``(n_sources, c)`` or ``(n_sources, m, c)``, as a finite
        ``(n_sources, m, c)`` array cast as in :meth:`_cast`."""
        n = self._engine.n_sources
        shape = as_array(arr, name, f"shape ({n}, {c}) or ({n}, m, {c})").shape
        if len(shape) not in (2, 3) or shape[0] != n or shape[-1] != c:
            raise ValueError(f"{name} must have shape ({n}, {c}) or ({n}, m, {c}), "
                             f"got shape {shape}")
        if 0 in shape:
            raise ValueError(f"{name} is empty: shape {shape}")
        return self._cast(arr, name).reshape(n, -1, c)

    def _dipoles(self, d) -> np.ndarray:
        """Dipole densities as a finite ``(n_sources, m, 3)`` array, cast as in :meth:`_cast`."""
        return self._per_point(d, "dipoles", 3)

    def _apply(self, q, gradient: bool, d=None, pressure=False, normals=None):
        """One engine pass for validated ``(n_sources, m C)`` charges and/or
        ``(n_sources, m, 3)`` dipoles (Stokes: stresslets, times the viscosity, with their
        ``normals``); see the module docstring. Returns ``(pot, grad, p)``, ``grad`` and ``p``
        None unless asked for."""
        pot, grad, p = self._evaluate(q, gradient, d, pressure, normals)
        if self._factor != 1.0:  # the viscosity: the kernel's record is for mu = 1
            pot *= pot.dtype.type(self._factor)
            if grad is not None:
                grad *= grad.dtype.type(self._factor)
        return pot, grad, p

    def _evaluate(self, q, gradient: bool, d, pressure, normals):
        given = [a for a in (q, d) if a is not None]
        if all(a.dtype == self.dtype for a in given):
            out = self._engine.evaluate(None if q is None else np.ascontiguousarray(q),
                                        gradient, d, pressure=pressure, normals=normals)
            return out if pressure else (*out, None)
        # complex densities, real operator: 2 m real columns in one pass
        split = [None if a is None else np.ascontiguousarray(
            np.concatenate([a.real, a.imag], axis=1), dtype=self.dtype) for a in (q, d)]
        out = self._engine.evaluate(split[0], gradient, split[1], pressure=pressure,
                                    normals=normals)
        dtype = np.result_type(*given)
        return tuple(None if a is None else (a[:, :a.shape[1] // 2] + 1j * a[:, a.shape[1] // 2:])
                     .astype(dtype, copy=False) for a in (*out, None)[:3])

    def evaluate(self, q=None, gradient=False, *, dipoles=None, pressure=False, stresslets=None,
                 normals=None):
        """Potentials (and gradients with respect to the target) of charges ``q`` and/or
        dipoles.

        The result is sum_j G(y_i, x_j) q_j + grad_x G(y_i, x_j) . d_j: the single-layer sum
        of the charges plus the double-layer sum of the dipoles (the gradient taken with
        respect to the source point).

        Parameters
        ----------
        q : array_like of shape (n_sources,) or (n_sources, m), or None
            Charges in the sources' order; finite. Cast to ``A.dtype`` (complex ``q`` for a
            real operator gives complex results). For a kernel of C > 1 components:
            (n_sources, C) or (n_sources, m, C), and the results have C values per target
            before the gradient's 3: (n_targets, C), (n_targets, m, C, 3), ...
        gradient : bool, default False
        dipoles : array_like of shape (n_sources, 3) or (n_sources, m, 3), or None
            Dipole densities d_j, cast like ``q``; with ``q``, of the same columns.
        pressure : bool, default False
            The ``"stokes"`` kernel only: also return the pressure of the forces ``q``
            (independent of the viscosity) and of the stresslets.
        stresslets, normals : array_like of shape (n_sources, 3) or (n_sources, m, 3), and
            (n_sources, 3), or None
            The ``"stokes"`` kernel fitted with ``dipoles=True`` only: double-layer strengths
            and their normals (:mod:`fmmsolve.kernels.stresslet`), alone or with forces ``q``
            of the same columns.

        Returns
        -------
        pot : ndarray of shape (n_targets,) or (n_targets, m)
        grad : ndarray of shape (n_targets, 3) or (n_targets, m, 3)
            Only when ``gradient=True``.
        p : ndarray of shape (n_targets,) or (n_targets, m)
            Only when ``pressure=True``; last.
        """
        gradient = check_flag(gradient, "gradient")
        pressure = check_flag(pressure, "pressure")
        c = self.components
        if c > 1 and dipoles is not None:
            raise ValueError(f"dipoles: the {self.kernel!r} kernel has {c} components; dipole "
                             f"densities are defined for kernels from a radial profile only")
        d, nrm = self._stresslets(stresslets, normals)
        if d is None:
            check_columns(q, dipoles, "q")
        elif q is not None and np.shape(q) != np.shape(stresslets):
            raise ValueError(f"q (forces) of shape {np.shape(q)} and stresslets of shape "
                             f"{np.shape(stresslets)} disagree: give them the same columns")
        arr = None if q is None else self._densities(q, "q") if c == 1 else \
            self._per_point(q, "q", c).reshape(self._engine.n_sources, -1)
        d = self._dipoles(dipoles) if dipoles is not None else d
        pot, grad, p = self._apply(arr, gradient, d, pressure, nrm)
        layer = dipoles if stresslets is None else stresslets
        one = (np.ndim(q) == 1 + (c > 1)) if q is not None else (np.ndim(layer) == 2)
        # (n_targets[, m][, C]): without m for one column, without C for a scalar kernel
        shape = (len(pot), *(() if one else (-1,)), *((c,) if c > 1 else ()))
        out = [pot.reshape(shape)] + ([grad.reshape(*shape, 3)] if gradient else [])
        if pressure:
            out.append(p[:, 0] if one else p)
        return out[0] if len(out) == 1 else tuple(out)

    def _stresslets(self, stresslets, normals):
        """Stresslet strengths times the viscosity (the engine's kernel is at mu = 1: the
        velocity's 1 / mu then leaves them as they are) as (n_sources, m, 3), and normals
        (n_sources, 3), validated; (None, None) without them."""
        if stresslets is None and normals is None:
            return None, None
        if not self._engine.kernel.harmonic:
            raise ValueError(f"stresslets: the {self.kernel!r} kernel has no stresslet")
        if stresslets is None or normals is None:
            raise ValueError("stresslets and normals go together: give both")
        if np.ndim(normals) != 2:
            raise ValueError(f"normals must have shape ({self._engine.n_sources}, 3), got "
                             f"{np.shape(normals)}")
        nrm = self._per_point(normals, "normals", 3)[:, 0]
        return self._per_point(stresslets, "stresslets", 3) / self._factor, nrm

    def _matmat(self, X):
        q = self._densities(X, "q")
        c = self.components
        if c == 1:
            return self._apply(q, False)[0]
        # vectors hold the C values of each point together; the engine's columns are the
        # C components of each right-hand side
        k = q.shape[1]
        q = np.ascontiguousarray(q.reshape(-1, c, k).transpose(0, 2, 1)).reshape(-1, k * c)
        pot = self._apply(q, False)[0]
        return pot.reshape(-1, k, c).transpose(0, 2, 1).reshape(-1, k)

    def _matvec(self, x):
        return self._matmat(np.reshape(x, (-1, 1)))

    def _rmatvec(self, x):
        return self._adjoint().matvec(x)

    def _rmatmat(self, X):
        return self._adjoint().matmat(X)

    # Check shapes before SciPy's wrappers do, so the error names the sizes expected.
    def dot(self, x):
        if not isinstance(x, LinearOperator) and not np.isscalar(x):
            _check_shape(x, self.shape[1], "q")
        return super().dot(x)

    def matvec(self, x):
        _check_shape(x, self.shape[1], "q")
        return super().matvec(x)

    def matmat(self, X):
        _check_shape(X, self.shape[1], "q")
        return super().matmat(X)

    def rmatvec(self, x):
        _check_shape(x, self.shape[0], "x")
        return super().rmatvec(x)

    def rmatmat(self, X):
        _check_shape(X, self.shape[0], "x")
        return super().rmatmat(X)

    # -- transpose and adjoint -------------------------------------------------------------------

    def _transpose(self):
        if self._transpose_op is None:
            if self.targets is None:
                self._transpose_op = self
            else:
                swapped = FMMOperator(self.targets, self.sources, **self._params())
                swapped._transpose_op = self
                self._transpose_op = swapped
        return self._transpose_op

    def _adjoint(self):
        if self._adjoint_op is None:
            if self.dtype.kind != "c":
                self._adjoint_op = self._transpose()
            else:
                self._adjoint_op = _Conjugated(self._transpose(), adjoint=self)
        return self._adjoint_op


class _Conjugated(LinearOperator):
    """``conj(B)`` for an operator ``B``, with a known adjoint: ``A.H = conj(A.T)`` for a complex
    symmetric kernel, whose adjoint is ``A`` again."""

    def __init__(self, op, adjoint):
        super().__init__(op.dtype, op.shape)
        self._op, self._adjoint_op = op, adjoint

    def _matmat(self, X):
        return np.conj(self._op.matmat(np.conj(X)))

    def _matvec(self, x):
        return np.conj(self._op.matvec(np.conj(x)))

    def _adjoint(self):
        return self._adjoint_op


def _read_only(points):
    """A read-only float64 copy of the caller's points."""
    out = np.array(points, dtype=np.float64)
    out.flags.writeable = False
    return out


def _input_order(points, perm):
    """Tree-order coordinates of shape (3, n) -> read-only (n, 3) float64 in input order."""
    out = np.empty((points.shape[1], 3))
    out[perm] = points.T
    out.flags.writeable = False
    return out
