"""Errors, dtype and array-module helpers shared by every layer of the engine."""
import sys

import numpy as np


class MXNetError(RuntimeError):
    """Every user-facing error of the engine: names the op or layer, the shapes/dtypes/contexts
    involved and what was expected (the name and the RuntimeError base follow MXNet, so that
    `except mx.MXNetError` and `except RuntimeError` work)."""


class MXNetValueError(MXNetError, ValueError):
    """An MXNetError where MXNet raises ValueError (e.g. the truth value of a multi-element
    array), so that code catching either works."""


class MXNetAssertionError(MXNetError, AssertionError):
    """An MXNetError where MXNet fails an assertion on user input (e.g. an unknown storage type
    of a Parameter), so that code catching either works."""


class MXNetTypeError(MXNetError, TypeError):
    """An MXNetError where MXNet raises TypeError."""


class MXNetUserWarning(MXNetError, UserWarning):
    """An MXNetError where MXNet raises UserWarning as an exception (e.g. set_learning_rate on
    an optimizer whose lr_scheduler decides the rate)."""


# MXNet's mx.base names that user code and MXNet's tests import
integer_types = (int, np.integer)
numeric_types = (float, int, np.generic)
string_types = (str,)


def py_str(x):
    """bytes -> str (MXNet's helper for strings coming from its C API)."""
    return x.decode('utf-8') if isinstance(x, bytes) else x


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
