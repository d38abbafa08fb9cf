"""Saving and loading arrays: NumPy .npz containers, never pickle, written atomically."""
import os
import tempfile
import zipfile

import numpy as np

from .base import MXNetError
from .ndarray import NDArray, array

# a list of arrays is stored under these names so that load() gives a list back
_LIST_KEY = '__list_{:06d}'


def atomic_write(filename, write):
    """Call write(fileobj) on a temp file beside `filename`, then rename it into place, so a
    failed save leaves any previous file intact."""
    filename = os.fspath(filename)
    folder = os.path.dirname(os.path.abspath(filename))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(filename), suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_arrays(filename, data):
    """Save a dict name -> NDArray (or a list of NDArrays) to an .npz file."""
    if isinstance(data, NDArray):
        data = [data]
    if isinstance(data, dict):
        arrays = {k: _host(v) for k, v in data.items()}
    else:
        arrays = {_LIST_KEY.format(i): _host(v) for i, v in enumerate(data)}
    atomic_write(filename, lambda f: np.savez(f, **arrays))


def _host(v):
    if isinstance(v, NDArray):
        return v.asnumpy()
    if isinstance(v, np.ndarray):
        return v
    raise MXNetError(f'save: expected NDArrays, got {type(v).__name__}')


def load_arrays(filename, ctx=None):
    """Load what save_arrays wrote: a dict (or list) of NDArrays. Never unpickles."""
    raw = load_numpy(filename)
    keys = list(raw)
    if keys and all(k.startswith('__list_') for k in keys):
        return [array(raw[k], ctx=ctx, dtype=raw[k].dtype) for k in sorted(keys)]
    return {k: array(v, ctx=ctx, dtype=v.dtype) for k, v in raw.items()}


def load_numpy(filename):
    """Read an .npz into a dict of NumPy arrays with clear errors for bad files."""
    filename = os.fspath(filename)
    if not os.path.exists(filename):
        raise MXNetError(f'load: no such file {filename}')
    try:
        with np.load(filename, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise MXNetError(f'load: {filename} is not a valid parameter file (a NumPy .npz written by '
                         f'save): {type(e).__name__}: {e}') from None
