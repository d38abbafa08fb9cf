"""Errors, dtype and array-module helpers shared by every layer of the engine."""
import sys

import numpy as np


class MXNetError(Exception):
    """Every user-facing error of the engine: names the op or layer, the shapes/dtypes/contexts
    involved and what was expected (the name follows MXNet so that `except mx.MXNetError` works)."""


DTYPES = {
    'float16': np.float16, 'float32': np.float32, 'float64': np.float64,
    'int8': np.int8, 'int32': np.int32, 'int64': np.int64, 'uint8': np.uint8, 'bool': np.bool_,
}
default_dtype = np.dtype(np.float32)


def as_dtype(dtype):
    """Normalize a user dtype (None, str, numpy type) to a numpy dtype; None means float32."""
    if dtype is None:
        return default_dtype
    try:
        dt = np.dtype(DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype)
    except TypeError:
        raise MXNetError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPES)}") from None
    if dt.name not in DTYPES:
        raise MXNetError(f"unsupported dtype {dt.name}; expected one of {sorted(DTYPES)}")
    return dt


def is_float(dtype):
    return np.dtype(dtype).kind == 'f'


def fmt_shape(shape):
    return '(' + ', '.join(str(int(s)) for s in shape) + (',)' if len(shape) == 1 else ')')


def array_module(*arrays):
    """`numpy`, or `cupy` when any of `arrays` is a CuPy array (the Chainer/CuPy `xp` pattern).

    CuPy is looked up in `sys.modules` only: if it was never imported, no array can be a CuPy
    array, so CPU-only code never imports it (and never pays for the import)."""
    cp = sys.modules.get('cupy')
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def special_module(*arrays):
    """`scipy.special`, or `cupyx.scipy.special` for CuPy arrays (the same ufunc names)."""
    if array_module(*arrays) is np:
        import scipy.special
        return scipy.special
    import cupyx.scipy.special
    return cupyx.scipy.special
