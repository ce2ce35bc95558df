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
5. Writing is atomic and never lets HDF5 touch the disk: the file is built in memory (h5py on a
   ``BytesIO``), then written with plain ``os.write`` under a temporary name in the destination
   directory, flushed to disk and renamed over ``path`` (``os.replace``). HDF5 keeps its own
   state about a failed write and crashes the interpreter when that state is released (a full
   disk segfaulted ``save``), so a disk error must reach Python code, not the HDF5 library. An
   error or a crash while writing never leaves a partial file at ``path`` and keeps any
   previous one there; an error also removes the temporary file.
6. Reading checks every declared size before it allocates: a dataset must keep its data inside
   the file (no external or virtual storage), store all of it (every chunk, or all bytes of a
   contiguous one; HDF5 would silently return fill values for the rest), and declare no more
   bytes than the file can hold (its size, or :data:`MAX_EXPANSION` times that for compressed
   data), counted over all datasets together. The caller's ``check_layout`` then sees every
   dtype and shape before any dataset is read, to check the shapes against each other.
"""

from __future__ import annotations

import contextlib
import errno
import math
import numbers
import os
import secrets
from io import BytesIO

import numpy as np

from ._version import __version__

__all__ = ["OperatorFileError", "read_groups", "write_groups"]

_KIND, _FORMAT, _WRITER = "fmmsolve_kind", "fmmsolve_format_version", "fmmsolve_version"
_TYPE_SUFFIX = "@type"
_NUMERIC = "biufc"  # bool, int, uint, float, complex
_CHUNK_BYTES = 1 << 20
#: Most bytes a compressed dataset may declare per byte of the file (convention 6): deflate
#: expands at most 1032-fold, and an operator's arrays compress far less.
MAX_EXPANSION = 1100


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


# -- writing --------------------------------------------------------------------------------------

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
        elif isinstance(value, (str, bool, numbers.Number, np.bool_)) or (
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


def _image(groups, attrs, kind, format_version):
    """The HDF5 file of ``groups`` and the encoded ``attrs``, built in memory (convention 5).

    Returns
    -------
    memoryview of bytes
        The complete file.
    """
    import h5py

    buffer = BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs[_KIND] = str(kind)
        f.attrs[_FORMAT] = int(format_version)
        f.attrs[_WRITER] = __version__
        for name, value in attrs.items():
            f.attrs[name] = value
        for group, arrays in groups.items():
            g = f.create_group(group)
            for name, array in arrays.items():
                _create_dataset(g, name, array)
    return buffer.getbuffer()


def _write_error(path, exc):
    """``exc`` from the file system as an OSError (same errno, so the same subclass) whose
    message names ``path`` and says the file there was left as it was."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    message = f"cannot save to {path!r}: {reason}; any previous file there is unchanged"
    return OSError(exc.errno, message) if exc.errno is not None else OSError(message)


def _replace_with(path, data):
    """Write the bytes ``data`` to ``path`` atomically with plain system calls (convention 5)."""
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode follows umask
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written <= 0:  # no progress on a regular file: treat it as a full disk
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise
    _fsync_directory(directory)


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
        From the file system (no directory, no permission, a full disk), with its errno and a
        message naming ``path``; no file is left behind and any previous file is untouched.
    """
    path = os.fspath(path)
    encoded = _encode_attrs(attrs)
    for group, arrays in groups.items():
        _check_name(group, "group")
        for name, array in arrays.items():
            _check_name(name, "array")
            if not isinstance(array, np.ndarray) or array.dtype.kind not in _NUMERIC:
                raise TypeError(f"array {group}/{name} must be a numeric ndarray, got "
                                f"{getattr(array, 'dtype', type(array).__name__)}")
    _replace_with(path, _image(groups, encoded, kind, format_version))


# -- reading --------------------------------------------------------------------------------------

def _safe_dtype(dtype):
    """Whether ``dtype`` is a plain number type (convention 4)."""
    return dtype.kind in _NUMERIC and dtype.fields is None and dtype.subdtype is None


def _read_attrs(h5py, path, obj, where):
    """Attributes of ``obj``, each type and shape checked before its value is read (HDF5 keeps
    them in the object header and checks their sizes against it when decoding)."""
    out = {}
    for name in obj.attrs:
        attr_id = obj.attrs.get_id(name)
        dtype, shape = attr_id.dtype, attr_id.shape
        is_string = h5py.check_string_dtype(dtype) is not None
        if not (is_string or _safe_dtype(dtype)):
            raise OperatorFileError(path, f"attribute {where}{name!r} has type {dtype!r}, which "
                                          "fmmsolve does not read (only numbers and strings)")
        if shape is None:
            raise OperatorFileError(path, f"attribute {where}{name!r} is empty")
        if is_string and shape != ():
            raise OperatorFileError(path, f"attribute {where}{name!r} is an array of "
                                          "strings; only scalar strings are read")
        value = obj.attrs[name]
        if isinstance(value, h5py.Empty):
            raise OperatorFileError(path, f"attribute {where}{name!r} is empty")
        if is_string:
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


def _check_dataset(h5py, path, where, ds):
    """Refuse a dataset of another type, without a dataspace, or with data outside the file.

    Returns
    -------
    nbytes : int
        The bytes the dataset declares.
    compressed : bool
        Whether a filter other than the checksum and byte shuffle may shrink its data.
    """
    if not _safe_dtype(ds.dtype):
        raise OperatorFileError(path, f"dataset {where!r} has type {ds.dtype!r}, which fmmsolve "
                                      "does not read (only numeric arrays)")
    if ds.shape is None:
        raise OperatorFileError(path, f"dataset {where!r} is empty (no dataspace)")
    plist = ds.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL or plist.get_external_count():
        raise OperatorFileError(path, f"dataset {where!r} keeps its data outside the file "
                                      "(external or virtual storage); fmmsolve does not read it")
    plain = (h5py.h5z.FILTER_FLETCHER32, h5py.h5z.FILTER_SHUFFLE)
    compressed = any(plist.get_filter(i)[0] not in plain for i in range(plist.get_nfilters()))
    return math.prod(ds.shape) * ds.dtype.itemsize, compressed


def _check_stored(path, where, ds, nbytes):
    """Refuse a dataset that does not store all its data (HDF5 would read fill values)."""
    if ds.chunks is not None:
        expected = math.prod(-(-n // c) for n, c in zip(ds.shape, ds.chunks))
        stored = ds.id.get_num_chunks()
        if stored != expected:
            raise OperatorFileError(path, f"dataset {where!r} of shape {ds.shape} stores "
                                          f"{stored} of its {expected} chunks")
    elif ds.id.get_storage_size() < nbytes:
        raise OperatorFileError(path, f"dataset {where!r} of shape {ds.shape} stores "
                                      f"{ds.id.get_storage_size()} of its {nbytes} bytes")


def _datasets(h5py, path, f, file_size):
    """The datasets of the open file ``f`` by group, every type, attribute and declared size
    checked (conventions 4 and 6), none read."""
    budget = file_size * MAX_EXPANSION  # in 1/MAX_EXPANSION bytes: exact integer arithmetic
    out = {}
    for name, group in f.items():
        if not isinstance(group, h5py.Group):
            raise OperatorFileError(path, f"unexpected dataset {name!r} at the root")
        _read_attrs(h5py, path, group, f"{name}/")
        datasets = out[name] = {}
        for key, ds in group.items():
            where = f"{name}/{key}"
            if not isinstance(ds, h5py.Dataset):
                raise OperatorFileError(path, f"unexpected group {where!r}")
            _read_attrs(h5py, path, ds, f"{where}:")
            nbytes, compressed = _check_dataset(h5py, path, where, ds)
            cost = nbytes if compressed else nbytes * MAX_EXPANSION
            if cost > budget:
                alone = cost > file_size * MAX_EXPANSION
                others = "" if alone else " together with the datasets before it"
                raise OperatorFileError(
                    path, f"dataset {where!r} declares shape {ds.shape} of {ds.dtype} "
                          f"({nbytes} bytes{', compressed' if compressed else ''}), more than "
                          f"the file's {file_size} bytes can hold{others}")
            budget -= cost
            _check_stored(path, where, ds, nbytes)
            datasets[key] = ds
    return out


def read_groups(path, *, kind, format_version, check_layout=None):
    """Read a file written by :func:`write_groups`, checking its kind, version, types and sizes.

    Parameters
    ----------
    path : str or os.PathLike
    kind : str
        The kind the file must hold.
    format_version : int
        The newest format version the caller reads; files of a newer version are refused.
    check_layout : callable, optional
        Called as ``check_layout(layout, attrs)`` before any dataset is read, with ``layout``
        mapping group name -> array name -> ``(dtype, shape)`` (the dtype in native byte order,
        as returned) and ``attrs`` as returned; it raises ``ValueError`` for shapes that do not
        fit together, so that a file cannot make the reader allocate what it does not need.

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
        or structure), another kind of file, a newer format version, a refused type, a declared
        size the file cannot back (convention 6), or an unexpected layout (including the
        ``ValueError`` of ``check_layout``).
    """
    import h5py

    path = os.fspath(path)
    with open(path, "rb") as fh:  # the operating system's own error for a missing file
        file_size = os.fstat(fh.fileno()).st_size
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
            datasets = _datasets(h5py, path, f, file_size)
            if check_layout is not None:
                layout = {name: {key: (ds.dtype.newbyteorder("="), ds.shape)
                                 for key, ds in group.items()}
                          for name, group in datasets.items()}
                try:
                    check_layout(layout, attrs)
                except OperatorFileError:
                    raise
                except ValueError as exc:
                    raise OperatorFileError(path, str(exc)) from exc
            groups = {name: {key: _native(np.asarray(ds[()])) for key, ds in group.items()}
                      for name, group in datasets.items()}
    except OperatorFileError:
        raise
    except (OSError, KeyError, RuntimeError) as exc:  # h5py's errors for damaged files
        problem = "not an HDF5 file" if not h5py.is_hdf5(path) else \
            "a damaged or truncated HDF5 file"
        raise OperatorFileError(path, f"{problem} ({exc})") from exc
    return groups, attrs
