"""Saving and loading a fitted FMMOperator (HDF5, fmmsolve.io): bit-for-bit round trips in this
process and a fresh one, no refit on load, atomic writes, and a clear error naming the file for
every kind of bad file, without ever unpickling."""

import os
import pathlib
import pickle
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

import fmmsolve
import fmmsolve.fmm
import fmmsolve.io
import fmmsolve.operators.plan
from fmmsolve import FMMOperator
from fmmsolve.io import OperatorFileError, read_groups, write_groups
from fmmsolve.testing import point_cloud

ROOT = pathlib.Path(__file__).resolve().parents[1]
N, M, LEAF = 3000, 2000, 32
CASES = ["square", "rectangular", "float32"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each case: (fitted operator, the file it was saved to)."""
    x = point_cloud("uniform", N, seed=1)
    y = point_cloud("uniform", M, seed=2) * 2.0 - 0.5  # partly outside the sources' cube
    ops = {"square": FMMOperator(x, eps=1e-6, leaf_size=LEAF),
           "rectangular": FMMOperator(x, y, eps=1e-3, leaf_size=LEAF),
           "float32": FMMOperator(x, eps=1e-3, dtype=np.float32)}
    folder = tmp_path_factory.mktemp("saved")
    out = {}
    for name, op in ops.items():
        op.save(folder / f"{name}.h5")
        out[name] = (op, folder / f"{name}.h5")
    return out


def _forbid_fitting(monkeypatch):
    """Make every fitting stage, and unpickling, raise."""
    def refuse(*args, **kwargs):
        raise AssertionError("load must not fit or unpickle anything")

    for target in (fmmsolve.fmm, fmmsolve.operators.plan):
        for name in ("build_octree", "build_interaction_lists", "compute_plan",
                     "_compute_plan64_serial"):
            monkeypatch.setattr(target, name, refuse, raising=False)
    monkeypatch.setattr(fmmsolve.fmm.FMMEngine, "__init__", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)


# -- round trips ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_round_trip_is_bit_for_bit_without_refitting(saved, case, rng, monkeypatch):
    op, path = saved[case]
    _forbid_fitting(monkeypatch)
    loaded = fmmsolve.load(path)
    monkeypatch.undo()
    q = rng.standard_normal(op.shape[1])
    Q = rng.standard_normal((op.shape[1], 3))
    assert np.array_equal(loaded @ q, op @ q)
    assert np.array_equal(loaded @ Q, op @ Q)
    pot, grad = loaded.evaluate(q, gradient=True)
    pot0, grad0 = op.evaluate(q, gradient=True)
    assert np.array_equal(pot, pot0) and np.array_equal(grad, grad0)
    assert (loaded.shape, loaded.dtype) == (op.shape, op.dtype)
    assert loaded._params() == op._params()
    assert loaded.tree == op.tree
    # every attribute __init__ sets, and the points in the caller's order, bit for bit
    assert set(vars(loaded)) == set(vars(op))
    assert np.array_equal(loaded.sources, op.sources) and not loaded.sources.flags.writeable
    if op.targets is None:
        assert loaded.targets is None
    else:
        assert np.array_equal(loaded.targets, op.targets) and not loaded.targets.flags.writeable
    assert set(loaded.fit_timings) == {"read", "validate", "bind"}


@pytest.mark.parametrize("case", ["square", "rectangular"])
def test_loaded_operator_transposes_and_pickles(saved, case, rng):
    op, path = saved[case]
    loaded = fmmsolve.load(path)
    x = rng.standard_normal(op.shape[0])
    assert np.array_equal(loaded.T @ x, op.T @ x)
    assert np.array_equal(loaded.H @ x, op.H @ x)
    assert loaded.T.T is loaded
    q = rng.standard_normal(op.shape[1])
    assert np.array_equal(pickle.loads(pickle.dumps(loaded)) @ q, op @ q)


FRESH = """
import sys, numpy as np, fmmsolve, fmmsolve.fmm, fmmsolve.operators.plan
def refuse(*args, **kwargs):
    raise AssertionError("load must not fit anything")
for module in (fmmsolve.fmm, fmmsolve.operators.plan):
    for name in ("build_octree", "build_interaction_lists", "compute_plan",
                 "_compute_plan64_serial"):
        setattr(module, name, refuse)
fmmsolve.fmm.FMMEngine.__init__ = refuse
folder = sys.argv[1]
for case in sys.argv[2:]:
    A = fmmsolve.load(f"{folder}/{case}.h5")
    q = np.load(f"{folder}/{case}-q.npy")
    pot, grad = A.evaluate(q, gradient=True)
    np.save(f"{folder}/{case}-matvec.npy", A @ q)
    np.save(f"{folder}/{case}-grad.npy", grad)
"""


ORIGINAL = """
import sys, numpy as np, fmmsolve
from fmmsolve.testing import point_cloud
folder, n, m, leaf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = point_cloud("uniform", n, seed=1)
y = point_cloud("uniform", m, seed=2) * 2.0 - 0.5
ops = {"square": fmmsolve.FMMOperator(x, eps=1e-6, leaf_size=leaf),
       "rectangular": fmmsolve.FMMOperator(x, y, eps=1e-3, leaf_size=leaf),
       "float32": fmmsolve.FMMOperator(x, eps=1e-3, dtype=np.float32)}
for case, A in ops.items():
    A.save(f"{folder}/{case}.h5")
    q = np.random.default_rng(len(case)).standard_normal(A.shape[1])
    np.save(f"{folder}/{case}-q.npy", q)
    np.save(f"{folder}/{case}-expected-matvec.npy", A @ q)
    np.save(f"{folder}/{case}-expected-grad.npy", A.evaluate(q, gradient=True)[1])
"""


def test_round_trip_in_a_fresh_process(tmp_path):
    # The original is fitted in a subprocess too. A process that compiled the kernels itself
    # (a cold Numba cache, as in a clean CI run) can differ in the last bit from processes
    # that load the compiled code from the cache; the same code must give the same bits.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cases = ("square", "rectangular", "float32")
    for script, args in ((ORIGINAL, (N, M, LEAF)), (ORIGINAL, (N, M, LEAF)), (FRESH, cases)):
        # ORIGINAL runs twice: the first run may compile and fill the Numba cache.
        proc = subprocess.run([sys.executable, "-c", script, str(tmp_path), *map(str, args)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
    for case in cases:
        for what in ("matvec", "grad"):
            loaded = np.load(tmp_path / f"{case}-{what}.npy")
            original = np.load(tmp_path / f"{case}-expected-{what}.npy")
            assert np.array_equal(loaded, original), (case, what)


def test_targets_shared_with_sources_are_stored_once(saved):
    with h5py.File(saved["square"][1], "r") as f:
        assert "targets" not in f["tree"] and "target_perm" not in f["tree"]
        assert f.attrs["fmmsolve_kind"] == "fmmsolve.FMMOperator"
        assert f.attrs["fmmsolve_format_version"] == fmmsolve.linear_operator.FORMAT_VERSION
    with h5py.File(saved["rectangular"][1], "r") as f:
        assert f["tree/targets"].shape == (3, M)


WAVE_CASES = {"helmholtz": (5 + 1j, None), "modified_helmholtz": (3.0, "targets")}


@pytest.mark.parametrize("kernel", WAVE_CASES)
def test_wave_kernels_round_trip_with_a_plan_per_level(kernel, tmp_path, rng, monkeypatch):
    k, targets = WAVE_CASES[kernel]
    x = point_cloud("uniform", 2000, seed=3)
    y = None if targets is None else point_cloud("uniform", 700, seed=4) * 1.2 - 0.1
    op = FMMOperator(x, y, kernel=kernel, wavenumber=k, eps=1e-3, dipoles=True, leaf_size=40,
                     memory=None)
    assert op.tree["depth"] >= 3  # levels 0 and 1 (no M2L) and two levels with their own
    op.save(tmp_path / "wave.h5")
    with h5py.File(tmp_path / "wave.h5", "r") as f:
        assert {name for name in f if name.startswith("plan")} == \
            {"plan"} | {f"plan_{level}" for level in range(1, op.tree["depth"] + 1)}
    _forbid_fitting(monkeypatch)
    loaded = fmmsolve.load(tmp_path / "wave.h5")
    monkeypatch.undo()
    assert {**loaded._params(), "memory": None} == op._params() and loaded.dtype == op.dtype
    q = rng.standard_normal(op.shape[1]) + 1j * rng.standard_normal(op.shape[1])
    d = rng.standard_normal((op.shape[1], 3))
    for got, expected in zip(loaded.evaluate(q, dipoles=d, gradient=True),
                             op.evaluate(q, dipoles=d, gradient=True)):
        assert np.array_equal(got, expected)

    # every level's plan is checked: a missing one, and one without the M2L its level needs
    for edit, message in [(lambda f: f.__delitem__("plan_2"), "missing group 'plan_2'"),
                          (_plan_without_m2l("plan_2", "plan_1"), "plan_2 has no M2L")]:
        shutil.copy(tmp_path / "wave.h5", tmp_path / "edited.h5")
        with h5py.File(tmp_path / "edited.h5", "a") as f:
            edit(f)
        with _raises_naming(tmp_path / "edited.h5", message):
            fmmsolve.load(tmp_path / "edited.h5")


def _plan_without_m2l(name, donor):
    """Replace the M2L arrays of plan ``name`` by those of ``donor`` (a plan of level 0 or 1)."""
    def edit(f):
        for field in ("m2l_vt", "m2l_ptr", "m2l_a", "m2l_b", "m2l_u"):
            del f[name][field]
            f[name][field] = f[donor][field][()]
    return edit


# -- atomic writes --------------------------------------------------------------------------------

def _fail_after(monkeypatch, n_calls):
    """Make h5py's create_dataset raise on call ``n_calls + 1`` (mid-write)."""
    create, calls = h5py.Group.create_dataset, []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > n_calls:
            raise RuntimeError("disk on fire")
        return create(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", flaky)


def test_failed_write_leaves_nothing(saved, tmp_path, monkeypatch):
    _fail_after(monkeypatch, 5)
    with pytest.raises(RuntimeError, match="disk on fire"):
        saved["square"][0].save(tmp_path / "op.h5")
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_the_previous_file(saved, tmp_path, monkeypatch, rng):
    square, rect = saved["square"][0], saved["rectangular"][0]
    path = tmp_path / "op.h5"
    square.save(path)
    before = path.read_bytes()
    _fail_after(monkeypatch, 5)
    with pytest.raises(RuntimeError):
        rect.save(path)
    monkeypatch.undo()
    monkeypatch.setattr(fmmsolve.io.os, "replace", lambda *a: (_ for _ in ()).throw(
        OSError("rename refused")))
    with pytest.raises(OSError, match="rename refused"):
        rect.save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["op.h5"] and path.read_bytes() == before
    rect.save(path)  # replaced on success
    assert os.listdir(tmp_path) == ["op.h5"]
    q = rng.standard_normal(N)
    assert np.array_equal(fmmsolve.load(path) @ q, rect @ q)


def test_write_refuses_values_it_cannot_store(tmp_path):
    bad_groups = [{"g": {"a": np.array([object()])}}, {"g": {"a": [1, 2]}}, {"g/h": {}}]
    for groups in bad_groups:
        with pytest.raises((TypeError, ValueError)):
            write_groups(tmp_path / "x.h5", groups, {}, kind="k", format_version=1)
    for attrs in [{"a": object()}, {"a": ("x",)}, {"fmmsolve_kind": "x"}, {"a@type": 1}]:
        with pytest.raises((TypeError, ValueError)):
            write_groups(tmp_path / "x.h5", {}, attrs, kind="k", format_version=1)
    assert os.listdir(tmp_path) == []


def test_parameters_round_trip_as_plain_values(tmp_path):
    attrs = {"none": None, "radii": (1.05, 2.95), "empty": (), "z": 1 - 2j, "s": "laplace",
             "b": True, "i": 7, "f": 0.5, "arr": np.arange(4.0)}
    arrays = {"e": np.zeros(0, np.int64), "c": np.ones((2, 3), np.complex64),
              "s": np.array(3.5), "big": np.arange(300_000, dtype=np.int64).reshape(-1, 3)}
    write_groups(tmp_path / "x.h5", {"g": arrays}, attrs, kind="k", format_version=1)
    groups, back = read_groups(tmp_path / "x.h5", kind="k", format_version=1)
    for key, value in attrs.items():
        assert type(back[key]) is type(value) and np.array_equal(back[key], value), key
    for key, value in arrays.items():
        got = groups["g"][key]
        assert got.dtype == value.dtype and got.shape == value.shape
        assert np.array_equal(got, value)


# -- bad files ------------------------------------------------------------------------------------

def _raises_naming(path, *fragments):
    pattern = re.escape(str(path)) + ".*" + ".*".join(map(re.escape, fragments))
    return pytest.raises(OperatorFileError, match=re.compile(pattern, re.S))


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.h5"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        fmmsolve.load(path)


def test_truncated_file(saved, tmp_path):
    path = tmp_path / "half.h5"
    path.write_bytes(saved["square"][1].read_bytes()[:100_000])
    with _raises_naming(path, "damaged or truncated"):
        fmmsolve.load(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("not an operator\n")
    with _raises_naming(path, "not an HDF5 file"):
        fmmsolve.load(path)


def test_hdf5_file_that_is_not_an_operator(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(10)
    with _raises_naming(path, "not an fmmsolve file"):
        fmmsolve.load(path)
    with h5py.File(path, "a") as f:
        f.attrs["fmmsolve_kind"] = "fmmsolve.Estimator"
    with _raises_naming(path, "holds a 'fmmsolve.Estimator'", "expected a 'fmmsolve.FMMOperator'"):
        fmmsolve.load(path)


def test_newer_format_version(saved, tmp_path):
    path = tmp_path / "future.h5"
    shutil.copy(saved["square"][1], path)
    with h5py.File(path, "a") as f:
        f.attrs["fmmsolve_format_version"] = fmmsolve.linear_operator.FORMAT_VERSION + 1
    with _raises_naming(path, "newer fmmsolve", "upgrade"):
        fmmsolve.load(path)


def test_damaged_byte_is_caught_by_the_checksum(saved, tmp_path):
    path = tmp_path / "flipped.h5"
    shutil.copy(saved["square"][1], path)
    with h5py.File(path, "r") as f:
        offset = f["plan/m2m"].id.get_chunk_info(0).byte_offset + 1000
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with _raises_naming(path, "damaged"):
        fmmsolve.load(path)


def _shorten(name):
    def edit(f):
        value = f[name][()]
        del f[name]
        f[name] = value[:-1]
    return edit


def _set(name, change):
    def edit(f):
        value = f[name][()]
        change(value)
        del f[name]
        f[name] = value
    return edit


def _retype(name, dtype):
    def edit(f):
        value = f[name][()]
        del f[name]
        f[name] = value.astype(dtype)
    return edit


def _attr(name, value):
    def edit(f):
        if value is None:
            del f.attrs[name]
        else:
            f.attrs[name] = value
    return edit


def _swap_first(a):
    a[0] = a[1]


EDITS = {
    "shortened permutation": (_shorten("tree/source_perm"), "tree/source_perm has shape"),
    "shortened tree keys": (_shorten("tree/keys"), "has shape"),
    "shortened list": (_shorten("lists/v_indices"), "lists/v_indptr is not a CSR"),
    "shortened plan": (_shorten("plan/m2m"), "plan/m2m has shape (7, 218, 218)"),
    "plan of another order": (_attr("plan.expansion_order", 5), "order"),
    "not a permutation": (_set("tree/source_perm", _swap_first), "not a permutation"),
    "point ranges": (_set("tree/src_end", lambda a: a.__setitem__(-1, a[-1] + 1)),
                     "ranges of sources"),
    "box out of range": (_set("lists/u_indices", lambda a: a.__setitem__(0, 10**6)),
                         "outside [0,"),
    "keys and anchors": (_set("tree/anchors", lambda a: a.__setitem__((-1, 0), a[-1, 0] ^ 1)),
                         "keys and tree/anchors disagree"),
    "parent links": (_set("tree/parent", lambda a: a.__setitem__(-1, 0)), "tree/parent"),
    "wrong dtype": (_retype("tree/levels", np.int32),
                    "tree/levels has dtype int32, expected int64"),
    "NaN in the plan": (_set("plan/m2l_u", lambda a: a.__setitem__((0, 0), np.nan)), "NaN"),
    "missing array": (lambda f: f.__delitem__("plan/m2l_u"), "missing array plan/m2l_u"),
    "extra array": (lambda f: f.__setitem__("lists/y_indices", np.arange(3)),
                    "unexpected arrays in 'lists'"),
    "missing parameter": (_attr("engine.eps", None), "missing parameter 'engine.eps'"),
    "parameter type": (_attr("engine.expansion_order", 7.0), "'engine.expansion_order'"),
    "other radii": (_attr("engine.radii", np.array([1.1, 2.9, 2.9, 1.1])), "surface radii"),
    "leaf size": (_attr("operator.leaf_size", 7), "operator.leaf_size"),
    "unknown kernel": (_attr("engine.kernel", "yukawa"), "unknown kernel 'yukawa'"),
    "unknown type tag": (_attr("operator.leaf_size@type", "set"), "does not describe"),
}


@pytest.mark.parametrize("edit, message", EDITS.values(), ids=EDITS.keys())
def test_inconsistent_file(saved, tmp_path, edit, message):
    path = tmp_path / "edited.h5"
    shutil.copy(saved["square"][1], path)
    with h5py.File(path, "a") as f:
        edit(f)
    with _raises_naming(path, message):
        fmmsolve.load(path)


class _Trap:
    """Unpickling this records it: the tests check that it never happens."""
    sprung = []

    def __reduce__(self):
        return _Trap.sprung.append, ("unpickled",)


def _pickled_attribute(f):
    f.attrs["payload"] = np.void(pickle.dumps(_Trap()))


def _reference_dataset(f):
    f["plan"].create_dataset("refs", data=np.array([f["plan/m2m"].ref], dtype=h5py.ref_dtype))


def _vlen_attribute(f):
    f["tree"].attrs.create("ragged", data=np.array([np.arange(3), np.arange(2)], dtype=object),
                           dtype=h5py.vlen_dtype(np.int64))


def _object_dataset(f):
    f["lists"].create_dataset("pickled", data=np.void(pickle.dumps(_Trap())))


@pytest.mark.parametrize("edit", [_pickled_attribute, _reference_dataset, _vlen_attribute,
                                  _object_dataset])
def test_object_types_are_refused_without_unpickling(saved, tmp_path, edit):
    path = tmp_path / "evil.h5"
    shutil.copy(saved["square"][1], path)
    with h5py.File(path, "a") as f:
        edit(f)
    with _raises_naming(path, "which fmmsolve does not read"):
        fmmsolve.load(path)
    assert _Trap.sprung == []


def test_error_names_path_and_pickles():
    err = OperatorFileError("/data/op.h5", "holds nothing")
    assert isinstance(err, ValueError)
    assert str(err) == "cannot read '/data/op.h5': holds nothing"
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.path, copy.problem, str(copy)) == (err.path, err.problem, str(err))
