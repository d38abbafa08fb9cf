"""Saving and loading arrays, never unpickling, always written atomically.

`save_arrays` writes MXNet's binary NDArray format (`ndarray_file.py`), so files load in MXNet 1.x;
`load_arrays` reads that format and the NumPy .npz containers this library wrote before."""
import errno
import os
import secrets
import struct
import zipfile

import numpy as np

from . import ndarray_file
from .base import MXNetError
from .ndarray import NDArray, array

# in the .npz files of earlier versions a list of arrays was stored under these names
_LIST_KEY = '__list_{:06d}'
_NPY_MAGIC = b'\x93NUMPY'
_ZIP_MAGICS = (b'PK\x03\x04', b'PK\x05\x06')
_use_unnamed_temp = hasattr(os, 'O_TMPFILE')    # tests switch it off to exercise the fallback


# ---- atomic writes ---------------------------------------------------------------------------
def atomic_write(filename, write):
    """Call write(fileobj) on a temp file beside `filename`, then rename it into place, so a
    failed or killed save leaves any previous file intact.

    The temp file is unnamed (O_TMPFILE) where the filesystem allows, so a process killed while
    writing leaves nothing behind; it gets a name only for the final link + rename. Named temps
    carry the writer's pid, and each save removes those of dead writers of the same target."""
    filename = os.fspath(filename)
    folder = os.path.dirname(os.path.abspath(filename))
    base = os.path.basename(filename)
    _remove_stale_temps(folder, base)
    tmp = os.path.join(folder, f'.{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp')
    try:
        if not (_use_unnamed_temp and _write_unnamed(folder, tmp, write)):
            with open(tmp, 'xb') as f:
                _write_synced(f, write)
        os.replace(tmp, filename)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_unnamed(folder, tmp, write):
    """Write through an O_TMPFILE file and link it as `tmp`; False where that is unsupported."""
    try:
        fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o666 & ~_umask())
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return False
        raise
    with os.fdopen(fd, 'wb') as f:
        _write_synced(f, write)
        try:    # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd needs no privilege
            os.link(f'/proc/self/fd/{fd}', tmp)
        except OSError:
            return False    # no /proc: write again through a named temp
    return True


def _write_synced(f, write):
    write(f)
    f.flush()
    os.fsync(f.fileno())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale_temps(folder, base):
    """Remove `.<base>.<pid>.<hex>.tmp` siblings whose writing process no longer exists."""
    prefix = f'.{base}.'
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith('.tmp')]
    except OSError:
        return
    for n in names:
        pid, _, token = n[len(prefix):-len('.tmp')].partition('.')
        if not (pid.isdigit() and token) or _alive(int(pid)):
            continue
        try:
            os.remove(os.path.join(folder, n))
        except OSError:
            pass    # another save removed it first


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True     # exists, owned by someone else
    return True


# ---- saving ------------------------------------------------------------------------------------
def save_arrays(filename, data):
    """Save an NDArray, a list of NDArrays or a dict name -> NDArray in MXNet's nd.save format."""
    if isinstance(data, (NDArray, np.ndarray)):
        data = [data]
    if isinstance(data, dict):
        bad = [k for k in data if not isinstance(k, str)]
        if bad:
            raise MXNetError(f'save: dict keys must be strings, got {type(bad[0]).__name__} {bad[0]!r}')
        names, arrays = list(data), [_host(v, k) for k, v in data.items()]
    elif isinstance(data, (list, tuple)):
        names, arrays = None, [_host(v, i) for i, v in enumerate(data)]
    else:
        raise MXNetError(f'save: expected an NDArray, a list or a dict of NDArrays, got '
                         f'{type(data).__name__}')
    atomic_write(filename, lambda f: ndarray_file.write(f, arrays, names))


def _host(v, key):
    if isinstance(v, NDArray):
        if v.stype != 'default':   # MXNet's sparse layout (aux arrays in its order)
            aux = v._aux if v.stype == 'row_sparse' else (v._aux[1], v._aux[0])
            return ndarray_file.Sparse(v.stype, v.shape, v._values, aux)
        return v.asnumpy()
    if isinstance(v, np.ndarray):
        return v
    raise MXNetError(f'save: entry {key!r} is a {type(v).__name__}, expected an NDArray')


# ---- loading -----------------------------------------------------------------------------------
def load_arrays(filename, ctx=None):
    """The dict (or list) of NDArrays in an nd.save file or an .npz this library wrote."""
    return _wrap_arrays(read_arrays(filename, sparse=True), ctx)


def load_buffer(buf, ctx=None):
    """`load_arrays` of an nd.save file's bytes held in memory (MXNet's nd.load_frombuffer)."""
    arrays, names = ndarray_file.read_bytes(buf, sparse=True)
    return _wrap_arrays(dict(zip(names, arrays)) if names else arrays, ctx)


def _wrap_arrays(raw, ctx):
    def wrap(a):
        if isinstance(a, ndarray_file.Sparse):
            return _sparse(a, ctx)
        return array(a, ctx=ctx, dtype=a.dtype)
    if isinstance(raw, list):
        return [wrap(a) for a in raw]
    return {k: wrap(a) for k, a in raw.items()}


def _sparse(entry, ctx):
    from .ndarray_sparse import from_parts
    return from_parts(entry.stype, entry.shape, entry.data, entry.aux, ctx)


def read_arrays(filename, sparse=False):
    """A file's arrays as NumPy arrays: a list for an unnamed list, else a dict name -> array
    (sparse entries: `ndarray_file.Sparse` parts with `sparse=True`, else refused)."""
    filename = os.fspath(filename)
    head = _head(filename)
    if len(head) >= 8 and struct.unpack('<Q', head[:8])[0] == ndarray_file.LIST_MAGIC:
        arrays, names = ndarray_file.read(filename, sparse)
        return dict(zip(names, arrays)) if names else arrays
    if head[:4] in _ZIP_MAGICS:
        return _read_npz(filename)
    if head.startswith(_NPY_MAGIC):
        raise MXNetError(f'load: {filename} is a single NumPy .npy array, not an array file '
                         '(nd.save format or .npz); read it with numpy.load(allow_pickle=False) '
                         'and wrap it with nd.array')
    raise MXNetError(f'load: {filename} is neither an MXNet NDArray file (starts with the uint64 '
                     f'0x112) nor an .npz archive: its first bytes are {head[:8]!r}')


def _head(filename):
    try:
        with open(filename, 'rb') as f:
            return f.read(8)
    except FileNotFoundError:
        raise MXNetError(f'load: no such file {filename}') from None
    except OSError as e:
        raise MXNetError(f'load: cannot read {filename}: {e}') from None


def _read_npz(filename):
    try:
        with np.load(filename, allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise MXNetError(f'load: {filename} is not a valid .npz archive: {type(e).__name__}: '
                         f'{e}') from None
    if raw and all(k.startswith('__list_') for k in raw):
        return [raw[k] for k in sorted(raw)]
    return raw
