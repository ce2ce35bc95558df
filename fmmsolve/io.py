"""HDF5 files of named groups of arrays plus plain parameters, written atomically.

This module knows HDF5 (h5py, imported only when a file is read or written) and NumPy, and
nothing of what the arrays mean: :meth:`fmmsolve.FMMOperator.save` and :func:`fmmsolve.load`
give them their meaning. Conventions:

1. Layout: the root holds one HDF5 group per entry of ``groups``, and each group one dataset per
   array, stored as given (dtype, shape, C order). Datasets with elements are chunked (about
   1 MiB per chunk) with a Fletcher-32 checksum, so a damaged byte is an error, not a wrong
   number. Parameters are attributes of the root.
2. Every file carries the root attributes ``fmmsolve_kind`` (what it holds, for example
   ``"fmmsolve.FMMOperator"``), ``fmmsolve_format_version`` (an int, raised whenever the layout
   changes) and ``fmmsolve_version`` (the writer's package version, for information). A reader
   refuses another kind and a format version newer than it knows.
3. Parameters are plain values: str, bool, int, float, complex and numeric arrays. ``None`` and
   tuples of numbers are stored with a companion attribute ``<name>@type`` (``"none"``, or
   ``"tuple"`` beside a 1-D array) and come back as they were given.
4. Reading never unpickles. HDF5 has no pickled type, and h5py never unpickles; beyond that,
   every attribute and dataset type is checked before its value is read, and anything but
   numbers (bool, int, uint, float, complex) and scalar strings is refused: object, opaque
   (void), compound, reference, variable-length and array types.
5. Writing is atomic: the file is written under a temporary name in the destination directory,
   flushed to disk and renamed over ``path`` (``os.replace``). An error or a crash while writing
   leaves any previous file untouched and no half-written file under ``path``.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import secrets

import numpy as np

from ._version import __version__

__all__ = ["OperatorFileError", "write_groups", "read_groups"]

_KIND, _FORMAT, _WRITER = "fmmsolve_kind", "fmmsolve_format_version", "fmmsolve_version"
_TYPE_SUFFIX = "@type"
_NUMERIC = "biufc"  # bool, int, uint, float, complex
_CHUNK_BYTES = 1 << 20


class OperatorFileError(ValueError):
    """A file that cannot be read as what it should hold.

    Attributes
    ----------
    path : str
        The file.
    problem : str
        What is wrong with it; the message is ``"cannot read <path>: <problem>"``.
    """

    def __init__(self, path, problem):
        self.path, self.problem = os.fspath(path), str(problem)
        super().__init__(f"cannot read {self.path!r}: {self.problem}")

    def __reduce__(self):
        return type(self), (self.path, self.problem)


# -- writing ---------------------------------------------------------------------------------------

def _check_name(name, what):
    if not isinstance(name, str) or not name or "/" in name or _TYPE_SUFFIX in name \
            or name.startswith("fmmsolve_") or name in (".", ".."):
        raise ValueError(f"invalid {what} name {name!r}: a non-empty str without '/' or "
                         f"'{_TYPE_SUFFIX}', not starting with 'fmmsolve_'")


def _encode_attrs(attrs):
    """Plain parameters -> HDF5 attribute values (convention 3); raises TypeError otherwise."""
    out = {}
    for name, value in attrs.items():
        _check_name(name, "attribute")
        if value is None:
            out[name + _TYPE_SUFFIX] = "none"
        elif isinstance(value, tuple):
            if not all(isinstance(v, numbers.Number) and not isinstance(v, np.ndarray)
                       for v in value):
                raise TypeError(f"attribute {name!r}: only tuples of numbers can be stored, "
                                f"got {value!r}")
            out[name] = np.array(value) if value else np.zeros(0)
            out[name + _TYPE_SUFFIX] = "tuple"
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, (bool, numbers.Number, np.bool_)) or (
                isinstance(value, np.ndarray) and value.dtype.kind in _NUMERIC):
            out[name] = value
        else:
            raise TypeError(f"attribute {name!r}: only str, numbers, None, tuples of numbers "
                            f"and numeric arrays can be stored, got {type(value).__name__}")
    return out


def _create_dataset(group, name, array):
    if array.size and array.ndim:  # chunked, with a checksum; scalars and empties are not
        row = max(1, array[0].nbytes)
        chunks = (min(array.shape[0], max(1, _CHUNK_BYTES // row)),) + array.shape[1:]
        group.create_dataset(name, data=array, chunks=chunks, fletcher32=True)
    else:
        group.create_dataset(name, data=array)


def _fsync(path):
    """Flush the file ``path`` to disk."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory):
    """Flush a directory entry to disk, where the system allows it (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_groups(path, groups, attrs, *, kind, format_version):
    """Write groups of arrays and plain parameters to the HDF5 file ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; an existing file is replaced only once the new one is complete.
    groups : dict of str to dict of str to ndarray
        Group name -> array name -> array of a numeric dtype (bool, int, uint, float, complex),
        any shape.
    attrs : dict of str to value
        Parameters stored as root attributes: str, bool, int, float, complex, None, tuples of
        numbers and numeric arrays. Names may not start with ``"fmmsolve_"`` (reserved).
    kind : str
        What the file holds, e.g. ``"fmmsolve.FMMOperator"``.
    format_version : int
        Version of the layout ``kind`` files have.

    Raises
    ------
    TypeError, ValueError
        For an array or parameter that cannot be stored, or an invalid name; nothing is written.
    OSError
        From the file system (no file is left behind, any previous file is untouched).
    """
    import h5py

    path = os.fspath(path)
    encoded = _encode_attrs(attrs)
    for group, arrays in groups.items():
        _check_name(group, "group")
        for name, array in arrays.items():
            _check_name(name, "array")
            if not isinstance(array, np.ndarray) or array.dtype.kind not in _NUMERIC:
                raise TypeError(f"array {group}/{name} must be a numeric ndarray, got "
                                f"{getattr(array, 'dtype', type(array).__name__)}")
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # mode follows umask
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs[_KIND] = str(kind)
            f.attrs[_FORMAT] = int(format_version)
            f.attrs[_WRITER] = __version__
            for name, value in encoded.items():
                f.attrs[name] = value
            for group, arrays in groups.items():
                g = f.create_group(group)
                for name, array in arrays.items():
                    _create_dataset(g, name, array)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


# -- reading ---------------------------------------------------------------------------------------

def _safe_dtype(dtype):
    """Whether ``dtype`` is a plain number type (convention 4)."""
    return dtype.kind in _NUMERIC and dtype.fields is None and dtype.subdtype is None


def _read_attrs(h5py, path, obj, where):
    """Attributes of ``obj``, each type checked before its value is read."""
    out = {}
    for name in obj.attrs:
        attr_id = obj.attrs.get_id(name)
        dtype, shape = attr_id.dtype, attr_id.shape
        is_string = h5py.check_string_dtype(dtype) is not None
        if not (is_string or _safe_dtype(dtype)):
            raise OperatorFileError(path, f"attribute {where}{name!r} has type {dtype!r}, which "
                                          "fmmsolve does not read (only numbers and strings)")
        value = obj.attrs[name]
        if isinstance(value, h5py.Empty) or shape is None:
            raise OperatorFileError(path, f"attribute {where}{name!r} is empty")
        if is_string:
            if shape != ():
                raise OperatorFileError(path, f"attribute {where}{name!r} is an array of "
                                              "strings; only scalar strings are read")
            out[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else \
                str(value)
        else:
            value = np.asarray(value)
            out[name] = value.item() if value.ndim == 0 else _native(value)
    return out


def _native(array):
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _decode_attrs(path, raw):
    """Undo convention 3: ``<name>@type`` companions give back None and tuples."""
    out = {k: v for k, v in raw.items() if not k.endswith(_TYPE_SUFFIX)}
    for key, tag in raw.items():
        if not key.endswith(_TYPE_SUFFIX):
            continue
        name = key[:-len(_TYPE_SUFFIX)]
        if tag == "none" and name not in out:
            out[name] = None
        elif tag == "tuple" and isinstance(out.get(name), np.ndarray) and out[name].ndim == 1:
            out[name] = tuple(out[name].tolist())
        else:
            raise OperatorFileError(path, f"attribute {key!r} = {tag!r} does not describe "
                                          f"attribute {name!r}")
    return out


def _read_dataset(path, where, ds):
    if not _safe_dtype(ds.dtype):
        raise OperatorFileError(path, f"dataset {where!r} has type {ds.dtype!r}, which fmmsolve "
                                      "does not read (only numeric arrays)")
    if ds.shape is None:
        raise OperatorFileError(path, f"dataset {where!r} is empty (no dataspace)")
    return _native(np.asarray(ds[()]))


def read_groups(path, *, kind, format_version):
    """Read a file written by :func:`write_groups`, checking its kind, version and types.

    Parameters
    ----------
    path : str or os.PathLike
    kind : str
        The kind the file must hold.
    format_version : int
        The newest format version the caller reads; files of a newer version are refused.

    Returns
    -------
    groups : dict of str to dict of str to ndarray
        Arrays with their stored dtype (native byte order) and shape.
    attrs : dict of str to value
        Root attributes, decoded (convention 3): python scalars, str, None, tuples and numeric
        arrays. Includes ``"fmmsolve_kind"``, ``"fmmsolve_format_version"`` and
        ``"fmmsolve_version"``.

    Raises
    ------
    FileNotFoundError, PermissionError, IsADirectoryError
        When ``path`` cannot be opened at all.
    OperatorFileError
        Naming ``path`` and the problem: not an HDF5 file, a damaged or truncated one (checksum
        or structure), another kind of file, a newer format version, a refused type, or an
        unexpected layout.
    """
    import h5py

    path = os.fspath(path)
    with open(path, "rb"):  # the operating system's own error for a missing or unreadable file
        pass
    try:
        with h5py.File(path, "r") as f:
            raw = _read_attrs(h5py, path, f, "")
            found = raw.get(_KIND)
            if found is None:
                raise OperatorFileError(path, f"an HDF5 file, but not an fmmsolve file (no "
                                              f"{_KIND!r} attribute); expected a {kind!r}")
            if found != kind:
                raise OperatorFileError(path, f"holds a {found!r}, expected a {kind!r}")
            version = raw.get(_FORMAT)
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise OperatorFileError(path, f"invalid {_FORMAT} {version!r}")
            if version > format_version:
                raise OperatorFileError(
                    path, f"format version {version} was written by a newer fmmsolve "
                          f"({raw.get(_WRITER)!r}); this fmmsolve ({__version__}) reads format "
                          f"versions up to {format_version}: upgrade fmmsolve to read it")
            attrs = _decode_attrs(path, raw)
            groups = {}
            for name, group in f.items():
                if not isinstance(group, h5py.Group):
                    raise OperatorFileError(path, f"unexpected dataset {name!r} at the root")
                _read_attrs(h5py, path, group, f"{name}/")
                arrays = groups[name] = {}
                for key, ds in group.items():
                    where = f"{name}/{key}"
                    if not isinstance(ds, h5py.Dataset):
                        raise OperatorFileError(path, f"unexpected group {where!r}")
                    _read_attrs(h5py, path, ds, f"{where}:")
                    arrays[key] = _read_dataset(path, where, ds)
    except OperatorFileError:
        raise
    except (OSError, KeyError, RuntimeError) as exc:  # h5py's errors for damaged files
        problem = "not an HDF5 file" if not h5py.is_hdf5(path) else \
            "a damaged or truncated HDF5 file"
        raise OperatorFileError(path, f"{problem} ({exc})") from exc
    return groups, attrs
