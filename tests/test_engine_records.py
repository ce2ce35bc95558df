"""The engine as values: fit -> Fitted, bind -> Schedule, evaluate(schedule, densities)."""

import dataclasses
import pathlib
import re

import numpy as np
import pytest

import fmmsolve
from fmmsolve._engine_state import restore, state_of
from fmmsolve.engine import Fitted, Schedule, bind, evaluate, fit
from fmmsolve.fmm import FMMEngine
from fmmsolve.testing import point_cloud

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Laplace shares one plan (one M2L pass); modified Helmholtz has one plan per level, so its
# P2M, P2L and M2L are grouped by level.
CASES = [("laplace", None), ("modified_helmholtz", 4.0)]


@pytest.fixture(scope="module", params=CASES, ids=[kernel for kernel, _ in CASES])
def case(request):
    kernel, k = request.param
    x, y = point_cloud("clusters", 2000, 1), point_cloud("uniform", 700, 2)
    options = dict(kernel=kernel, wavenumber=k, eps=1e-4, leaf_size=30)
    fitted = fit(x, y, **options)
    return x, y, options, fitted, bind(fitted)


def test_records_are_frozen(case):
    *_, fitted, schedule = case
    with pytest.raises(dataclasses.FrozenInstanceError):
        fitted.tree = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.near = schedule.w
    engine = FMMEngine(point_cloud("uniform", 300, 3), eps=1e-3)
    with pytest.raises(AttributeError):  # the engine's fitted fields are the record's
        engine.expansion_order = 3


def _arrays(value):
    """Every ndarray among the fields of a schedule, in its tuples and M2L schedules."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _arrays(item)
    elif dataclasses.is_dataclass(value) and type(value).__name__ != "Plan":
        for f in dataclasses.fields(value):
            yield from _arrays(getattr(value, f.name))


def test_schedule_nbytes_is_the_bytes_of_its_arrays(case):
    *_, fitted, schedule = case
    owned = {id(a): a for f in dataclasses.fields(Schedule) if f.name not in ("fitted", "m2m")
             for a in _arrays(getattr(schedule, f.name)) if a.base is None}
    assert schedule.nbytes == sum(a.nbytes for a in owned.values())
    # the big ones are there, each once: the local coordinates and the near-field lists
    assert id(schedule.sources) in owned and id(schedule.near[1]) in owned
    assert schedule.nbytes > schedule.sources.nbytes + schedule.targets.nbytes


def test_fit_bind_evaluate_equals_the_operator_bit_for_bit(case, rng):
    x, y, options, fitted, schedule = case
    q = rng.standard_normal((len(x), 2))
    timings = {}
    pot, grad = evaluate(schedule, q, gradient=True, timings=timings)
    A = fmmsolve.FMMOperator(x, y, memory=None, **options)
    ref, ref_grad = A.evaluate(q, gradient=True)
    assert np.array_equal(pot, ref) and np.array_equal(grad, ref_grad)
    assert fitted == A.engine.fitted  # the same fit, by value
    assert {"p2m", "m2l", "l2p", "p2p"} <= set(timings)


def test_state_round_trip_gives_equal_records(case):
    *_, fitted, schedule = case
    restored = restore(*state_of(fitted))
    assert isinstance(restored, Fitted) and restored is not fitted
    assert restored == fitted and restored.timings == {}
    assert not restored == dataclasses.replace(fitted, eps=fitted.eps / 2)
    engine = FMMEngine.from_state(*state_of(fitted))
    assert engine.fitted == fitted
    rebound = engine.schedule
    for f in dataclasses.fields(Schedule):
        if f.name not in ("fitted", "m2m"):
            old, new = list(_arrays(getattr(schedule, f.name))), \
                list(_arrays(getattr(rebound, f.name)))
            assert len(old) == len(new) and all(np.array_equal(a, b) for a, b in zip(old, new))


def test_the_methods_page_example_runs():
    """docs/methods.md, "The engine as values": fit, bind and evaluate used directly."""
    text = (ROOT / "docs" / "methods.md").read_text()
    section = text.split("## The engine as values")[1].split("\n## ")[0]
    (example,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    exec(compile(example, "docs/methods.md", "exec"), {})
