"""The keyword options of a distributed FMM: checked on every rank, and the same on every rank.

1. Each rank checks its own options with the serial FMM's checks, called in the order
   :class:`~fmmsolve.fmm.FMMEngine` calls them (:func:`check_options`), inside the section the
   ranks agree on (:func:`~._mpi.gather_agreed`): an option that is bad on one rank only
   raises on every rank instead of leaving the others waiting.
2. The check also reduces the options to a canonical summary of plain Python values, the
   values the engines will use: the kernel's name, the checked wavenumber, eps, the expansion
   order (chosen from eps unless given), the leaf size (chosen from the order unless given),
   the dtype's name, and whether plans go through a cache. The summaries of all ranks travel
   in that same agreement's allgather, and :func:`check_same` refuses, on every rank, options
   that differ: different orders give expansions of different lengths (an MPI abort, "Message
   truncated"), different leaf sizes different partitions, a plan cache on some ranks only a
   different number of collective rounds in the fit.
3. ``memory`` is compared only as "a plan cache or None": each rank may keep its cache in its
   own directory (a node-local disk).
"""

from __future__ import annotations

from .. import cache
from .._config import MAX_DEPTH
from .._validation import check_flag, check_positive_int, resolve_real_dtype
from ..accuracy import check_eps, check_order, choose_order, design_eps, order_for_eps
from ..engine.fitted import off_resonance
from ..kernels import get_kernel
from ..operators.surfaces import default_leaf_size

__all__ = ["ENGINE_OPTIONS", "check_options", "check_same", "resolve_root"]

#: The options passed on to each rank's engine (``memory`` is handled here).
ENGINE_OPTIONS = ("kernel", "wavenumber", "eps", "dipoles", "expansion_order", "leaf_size",
                  "dtype")


def check_options(options, *points):
    """Check one rank's keyword options as the serial FMM does.

    Parameters
    ----------
    options : dict
        The ``**fmm_options`` of :class:`~fmmsolve.distributed.DistributedFMMOperator`.
    *points : array_like
        This rank's sources and targets: without ``dtype``, the precision follows them as in
        :class:`~fmmsolve.FMMOperator` (ranks that disagree are refused by :func:`check_same`).

    Returns
    -------
    engine : dict
        ``ENGINE_OPTIONS`` for :class:`~fmmsolve.fmm.FMMEngine` and ``explicit_order``, to be
        completed by :func:`resolve_root` once the root cube is known (the order of a wave
        kernel, the default leaf size).
    memory : joblib.Memory or None
        The plan cache (:func:`fmmsolve.cache.resolve_memory`).
    summary : dict of str to str, int, float or complex
        The canonical, picklable summary compared across ranks by :func:`check_same`.

    Raises
    ------
    TypeError
        For an unknown option name, or a ``memory`` of the wrong type.
    ValueError
        For a bad value, naming the option (the serial FMM's messages).
    """
    unknown = set(options) - {*ENGINE_OPTIONS, "memory"}
    if unknown:
        raise TypeError(f"unknown FMM options {sorted(unknown)}; expected one of "
                        f"{', '.join(ENGINE_OPTIONS)} or memory")
    kernel = get_kernel(options.get("kernel", "laplace")).require_scalar("the distributed FMM")
    wavenumber = kernel.check_wavenumber(options.get("wavenumber"))
    real_dtype = resolve_real_dtype(options.get("dtype"), *points)
    eps = check_eps(options.get("eps"), real_dtype)
    dipoles = check_flag(options.get("dipoles", False), "dipoles")
    if dipoles and kernel.radial is None:
        raise ValueError(f"dipoles=True: the {kernel.name!r} kernel has no dipoles")
    order = options.get("expansion_order")
    if order is None and not kernel.measured:
        raise ValueError(f"kernel {kernel.name!r} has no measured eps -> order table, and the "
                         f"distributed FMM does not calibrate one: pass expansion_order= (a "
                         f"serial fit calibrates it: FMMOperator(points, kernel=..., "
                         f"eps=...).expansion_order)")
    explicit = order is not None
    order = check_order(order) if explicit else order_for_eps(eps, dipoles)
    leaf_size = options.get("leaf_size")
    if leaf_size is not None:
        leaf_size = check_positive_int(leaf_size, "leaf_size")
    memory = cache.resolve_memory(options.get("memory", "default"))
    engine = {"kernel": kernel, "wavenumber": options.get("wavenumber"), "eps": eps,
              "dipoles": dipoles, "expansion_order": order, "leaf_size": leaf_size,
              "dtype": real_dtype, "explicit_order": explicit}
    summary = {"kernel": kernel.name, "wavenumber": wavenumber, "eps": eps, "dipoles": dipoles,
               "expansion_order": order, "leaf_size": leaf_size, "dtype": real_dtype.name,
               "memory": "None" if memory is None else "a plan cache",
               "kernel_digest": kernel.digest[:16]}  # one name, two definitions: refused
    return engine, memory, summary


def resolve_root(engine, root):
    """The expansion order, leaf size and root cube of a distributed FMM, from the checked
    options and the points' root cube (the same on every rank).

    A wave kernel takes the serial FMM's rules on the shared root: the order grows with
    ``|k| w_2`` (:func:`~fmmsolve.accuracy.choose_order`; a given order must reach it), and
    the root widens (by at most 10 %) until no level of any tree, down to the deepest,
    puts the expansion surfaces near a resonance (:func:`~fmmsolve.engine.fitted.off_resonance`):
    the ranks' engines, whose root is given, would refuse it. The leaf size, unless given,
    is the default of the final order.

    Parameters
    ----------
    engine : dict
        :func:`check_options`'s first result.
    root : tuple (center ndarray of shape (3,), half_width float)

    Returns
    -------
    engine : dict
        ``ENGINE_OPTIONS`` for the ranks' engines (``expansion_order`` and ``leaf_size``
        resolved).
    root : tuple (center, half_width)

    Raises
    ------
    FrequencyError
        Beyond the frequency the eps (or the given order) is measured to reach.
    """
    engine = dict(engine)
    explicit = engine.pop("explicit_order")
    kernel, order, (center, half) = engine["kernel"], engine["expansion_order"], root
    if kernel.oscillatory:
        wavenumber = kernel.check_wavenumber(engine["wavenumber"])
        half = off_resonance(wavenumber, half, MAX_DEPTH)
        design = design_eps(engine["eps"], engine["dipoles"])
        order = choose_order(kernel, wavenumber, 2.0 * half, order, design, engine["eps"],
                             explicit=explicit)
    engine["expansion_order"] = order
    if engine["leaf_size"] is None:
        engine["leaf_size"] = default_leaf_size(order)
    return engine, (center, half)


def _rank_list(ranks):
    """``"ranks 0-3, 7"``: a short spelling of a sorted list of ranks."""
    runs = []
    for rank in ranks:
        if runs and rank == runs[-1][1] + 1:
            runs[-1][1] = rank
        else:
            runs.append([rank, rank])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    return ("rank " if len(ranks) == 1 else "ranks ") + text


def check_same(summaries, what="the FMM options"):
    """Raise ``ValueError`` naming every option whose summary differs between ranks.

    Called on every rank with the same list, so every rank raises the same error and none
    enters a later collective alone.

    Parameters
    ----------
    summaries : list of dict
        The :func:`check_options` summary of each rank, rank 0 first (or any such dicts of
        plain values: the Krylov solvers' settings).
    what : str
        What they are, for the message.

    Raises
    ------
    ValueError
        ``"... eps: 0.001 on ranks 0, 2; 1e-06 on rank 1"`` for each option that differs.
    """
    differ = []
    for name in summaries[0]:
        values = {}  # value -> ranks, in order of first appearance
        for rank, summary in enumerate(summaries):
            values.setdefault(summary[name], []).append(rank)
        if len(values) > 1:
            differ.append(f"{name}: " + "; ".join(f"{value!r} on {_rank_list(ranks)}"
                                                  for value, ranks in values.items()))
    if differ:
        raise ValueError(f"{what} must be the same on every rank, but they differ: "
                         + " | ".join(differ))
