"""The KIFMM engine as values: fit once, bind once, evaluate many times.

* :func:`~.fitted.fit` -> :class:`~.fitted.Fitted`, a frozen record of what was fitted: the
  parameters, the tree, the interaction lists and the plan of each level; exactly what
  :mod:`fmmsolve.io` saves (through :mod:`fmmsolve._engine_state`).
* :func:`~.schedule.bind` -> :class:`~.schedule.Schedule`, a second frozen record: the index
  arrays and geometry every evaluation reuses (``nbytes`` counts them).
* :func:`~.passes.evaluate` runs the passes over a schedule for given densities;
  :mod:`.passes` also gives the pieces (:func:`~.passes.densities`, :func:`~.passes.upward`,
  :func:`~.passes.downward`, :func:`~.passes.translate`) that :class:`~fmmsolve.FMMField`
  and :mod:`fmmsolve.distributed` reuse.

:class:`fmmsolve.fmm.FMMEngine` holds a schedule (and through it the fitted record) and keeps
the timings of the last evaluation. Modules outside this package read the records' public
fields only.
"""

from .fitted import Fitted, fit
from .passes import densities, downward, evaluate, translate, upward
from .schedule import Schedule, bind

__all__ = ["Fitted", "fit", "Schedule", "bind", "evaluate", "densities", "upward", "downward",
           "translate"]
