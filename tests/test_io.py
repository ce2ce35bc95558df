"""Saving and loading a fitted FMMOperator (HDF5, fmmsolve.io): bit-for-bit round trips in this
process and a fresh one, no refit on load, atomic writes, and a clear error naming the file for
every kind of bad file, without ever unpickling."""

import errno
import os
import pathlib
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
import time
import tracemalloc
from typing import ClassVar

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


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Two small operators (300 points, eps 1e-3), each with the file it was saved to."""
    x = point_cloud("uniform", 300, seed=5)
    ops = {"square": FMMOperator(x, eps=1e-3, memory=None),
           "rectangular": FMMOperator(x, point_cloud("uniform", 200, seed=6), eps=1e-3,
                                      memory=None)}
    folder = tmp_path_factory.mktemp("small")
    for name, op in ops.items():
        op.save(folder / f"{name}.h5")
    return {name: (op, folder / f"{name}.h5") for name, op in ops.items()}


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
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                              check=False)
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


# Helmholtz with dipoles and gradients compiles its complex-wavenumber dipole loops for this
# test alone (about a minute cold): slow tier; modified Helmholtz stays in the default run.
@pytest.mark.parametrize("kernel", [pytest.param("helmholtz", marks=pytest.mark.slow),
                                    "modified_helmholtz"])
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


def _disk_full_after(monkeypatch, n_bytes):
    """Make ``os.write`` write at most ``n_bytes`` in all, then fail with ENOSPC (a full disk)."""
    write, left = os.write, [n_bytes]

    def full(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = write(fd, memoryview(data)[:left[0]])
        left[0] -= written
        return written

    monkeypatch.setattr(fmmsolve.io.os, "write", full)


def test_save_onto_full_disk_keeps_old_file(small, tmp_path, monkeypatch, rng):
    square, rect = small["square"][0], small["rectangular"][0]
    path = tmp_path / "op.h5"
    square.save(path)
    before = path.read_bytes()
    _disk_full_after(monkeypatch, 100_000)
    with pytest.raises(OSError, match=re.escape(str(path))) as info:
        rect.save(path)
    assert info.value.errno == errno.ENOSPC and "unchanged" in str(info.value)
    # nothing at all where there was no file
    with pytest.raises(OSError, match=re.escape(str(tmp_path / "new.h5"))):
        rect.save(tmp_path / "new.h5")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["op.h5"] and path.read_bytes() == before
    q = rng.standard_normal(300)
    assert np.array_equal(fmmsolve.load(path) @ q, square @ q)


def test_save_error_names_the_destination(small, tmp_path):
    path = tmp_path / "missing" / "op.h5"
    with pytest.raises(FileNotFoundError, match=re.escape(repr(str(path)))):
        small["square"][0].save(path)


FULL_DISK = r"""
import gc, os, resource, signal, sys
import numpy as np
from fmmsolve.io import write_groups

path = os.path.join(sys.argv[1], "op.h5")
write_groups(path, {"g": {"a": np.arange(10.0)}}, {}, kind="k", format_version=1)
# A real write failure from the kernel: files may not grow past 64 KiB (EFBIG, as a full disk
# gives ENOSPC), without root or a full file system.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
groups = {"g": {f"a{i}": np.arange(100_000.0) + i for i in range(8)}}
try:
    write_groups(path, groups, {}, kind="k", format_version=1)
except OSError as exc:
    print("raised", exc.errno, str(exc))
    del exc
gc.collect()  # HDF5 crashed when it released the state of a failed write
print("alive")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE and SIGXFSZ are POSIX")
def test_full_disk_during_save_does_not_crash_the_interpreter(tmp_path):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FULL_DISK), str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert f"raised {errno.EFBIG}" in proc.stdout and str(tmp_path / "op.h5") in proc.stdout
    assert proc.stdout.rstrip().endswith("alive")
    assert os.listdir(tmp_path) == ["op.h5"]  # the old file, no temporary one
    groups, _ = read_groups(tmp_path / "op.h5", kind="k", format_version=1)
    assert np.array_equal(groups["g"]["a"], np.arange(10.0))


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
    return pytest.raises(OperatorFileError, match=re.compile(pattern, re.DOTALL))


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


def _set(name, change, value=None):
    """Edit ``name`` in place by ``change``, or replace it by ``value``."""
    def edit(f):
        new = f[name][()] if value is None else value
        change(new)
        del f[name]
        f[name] = new
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
    "shortened plan": (_shorten("plan/l2l"), "plan/l2l has shape (0, 218, 218)"),
    "four octants": (lambda f: (_set("plan/m2m", lambda a: None, np.zeros((4, 218, 218)))(f),
                                _set("plan/l2l", lambda a: None, np.zeros((4, 218, 218)))(f)),
                     "hold 4 octants, not one of (1, 8)"),
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
    "extra group": (lambda f: f.__setitem__("notes/x", np.arange(3)),
                    "unexpected groups ['notes']"),
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


# -- declared sizes: checked before anything is allocated -----------------------------------------

def _replace_dataset(name, **create):
    """Replace dataset ``name`` by ``create_dataset(**create)`` (data only where given)."""
    def edit(f):
        del f[name]
        f.create_dataset(name, **create)
    return edit


HUGE = {
    "chunked": (_replace_dataset("plan/m2m", shape=(10**11,), dtype="f8", chunks=True),
                "(800000000000 bytes), more than the file's"),
    "compressed": (_replace_dataset("plan/m2m", shape=(10**11,), dtype="f8", chunks=(10**6,),
                                    compression="gzip"),
                   "(800000000000 bytes, compressed), more than the file's"),
}


@pytest.mark.parametrize("case", HUGE)
def test_huge_declared_shape_is_refused_before_allocating(small, tmp_path, case):
    edit, message = HUGE[case]
    path = tmp_path / "crafted.h5"
    shutil.copy(small["square"][1], path)
    with h5py.File(path, "a") as f:
        edit(f)
    start = time.perf_counter()
    with _raises_naming(path, "dataset 'plan/m2m' declares shape (100000000000,) of float64",
                        message):
        fmmsolve.load(path)
    assert time.perf_counter() - start < 5  # refused, neither allocated (745 GiB) nor filled


# Each edit keeps the dataset's dtype and shape, so nothing else could notice: HDF5 would read
# fill values (zeros) for data never written, and other files' bytes for outside storage.
def _never_written(f, folder):
    ds = f["plan/m2m"]
    _replace_dataset("plan/m2m", shape=ds.shape, dtype=ds.dtype)(f)


def _chunks_missing(f, folder):
    value = f["plan/m2m"][()]
    _replace_dataset("plan/m2m", shape=value.shape, dtype=value.dtype,
                     chunks=(1, 1, value.shape[2]))(f)
    f["plan/m2m"][:, :-1] = value[:, :-1]


def _external(f, folder):
    value = f["tree/keys"][()]
    (folder / "keys.bin").write_bytes(value.tobytes())
    _replace_dataset("tree/keys", shape=value.shape, dtype=value.dtype,
                     external=[(str(folder / "keys.bin"), 0, value.nbytes)])(f)


def _virtual(f, folder):
    value = f["tree/keys"][()]
    with h5py.File(folder / "keys.h5", "w") as other:
        other["keys"] = value
    layout = h5py.VirtualLayout(shape=value.shape, dtype=value.dtype)
    layout[:] = h5py.VirtualSource(str(folder / "keys.h5"), "keys", shape=value.shape)
    del f["tree/keys"]
    f.create_virtual_dataset("tree/keys", layout)


MISSING = {
    "never written": (_never_written,
                      f"dataset 'plan/m2m' of shape (1, 56, 56) stores 0 of its {56**2 * 8}"),
    "chunks missing": (_chunks_missing,
                       "dataset 'plan/m2m' of shape (1, 56, 56) stores 55 of its 56 chunks"),
    "external": (_external, "dataset 'tree/keys' keeps its data outside the file"),
    "virtual": (_virtual, "dataset 'tree/keys' keeps its data outside the file"),
}


@pytest.mark.parametrize("case", MISSING)
def test_data_missing_from_the_file_is_refused(small, tmp_path, case):
    edit, message = MISSING[case]
    path = tmp_path / "crafted.h5"
    shutil.copy(small["square"][1], path)
    with h5py.File(path, "a") as f:
        assert f["plan/m2m"].shape == (1, 56, 56)  # expansion order 4 at eps 1e-3
        edit(f, tmp_path)
    with _raises_naming(path, message):
        fmmsolve.load(path)


def test_inconsistent_shape_is_refused_before_reading(small, tmp_path):
    # 32 MB of zeros that compress to a few kB: the file can hold the claim, the tree cannot
    path = tmp_path / "crafted.h5"
    shutil.copy(small["square"][1], path)
    claim = 4_000_000
    with h5py.File(path, "a") as f:
        _replace_dataset("tree/source_perm", data=np.zeros(claim, np.int64),
                         chunks=(claim // 8,), compression="gzip")(f)
    assert os.path.getsize(path) < claim
    tracemalloc.start()
    try:
        with _raises_naming(path, f"tree/source_perm has shape ({claim},), expected "
                                  "(sources=300)"):
            fmmsolve.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < claim * 8 // 4, peak  # the claim was never allocated


def test_compressed_copy_of_a_saved_operator_still_loads(small, tmp_path, rng):
    # as `h5repack -f GZIP=9` would leave it: every dataset compressed, same values
    op, original = small["rectangular"]
    path = tmp_path / "packed.h5"
    shutil.copy(original, path)
    with h5py.File(path, "a") as f:
        for group in f.values():
            for name in list(group):
                value = group[name][()]
                if value.ndim and value.size:
                    _replace_dataset(f"{group.name}/{name}", data=value, compression="gzip",
                                     compression_opts=9, shuffle=True)(f)
    assert os.path.getsize(path) < os.path.getsize(original)
    q = rng.standard_normal(300)
    assert np.array_equal(fmmsolve.load(path) @ q, op @ q)


def test_check_layout_sees_every_shape_before_any_read(small, monkeypatch):
    seen = []

    def refuse(layout, attrs):
        seen.append({g: dict(arrays) for g, arrays in layout.items()})
        raise ValueError("the shapes do not fit")

    def no_reading(*args, **kwargs):
        raise AssertionError("a dataset was read before check_layout")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", no_reading)
    path = small["square"][1]
    with _raises_naming(path, "the shapes do not fit"):
        read_groups(path, kind="fmmsolve.FMMOperator",
                    format_version=fmmsolve.linear_operator.FORMAT_VERSION, check_layout=refuse)
    assert seen[0]["tree"]["source_perm"] == (np.dtype(np.int64), (300,))
    assert set(seen[0]) == {"tree", "lists", "plan"}


class _Trap:
    """Unpickling this records it: the tests check that it never happens."""
    sprung: ClassVar[list] = []

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


def test_format_1_files_with_eight_octants_load(saved, tmp_path, rng):
    # Format 1 stored the M2M and L2L of all 8 octants; format 2 octant 0's (the others are
    # its reflections). A format-1 file loads, and gives the same products.
    op, path = saved["square"]
    old = tmp_path / "format1.h5"
    shutil.copy(path, old)
    with h5py.File(old, "a") as f:
        assert f["plan/m2m"].shape == f["plan/l2l"].shape == (1, 218, 218)
        for name in ("plan/m2m", "plan/l2l"):
            value = fmmsolve.operators.plan.octant_operators(f[name][()], op.expansion_order)
            del f[name]
            f[name] = value
        f.attrs["fmmsolve_format_version"] = 1
    loaded = fmmsolve.load(old)
    assert loaded._engine.plans[0].m2m.shape == (1, 218, 218)
    q = rng.standard_normal(N)
    np.testing.assert_array_equal(loaded @ q, op @ q)
