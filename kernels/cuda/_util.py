"""Argument checks and buffer helpers shared by the CUDA wrappers.

Errors are ``ValueError`` messages that start with the kernel function's name and
give the offending shapes and dtypes, e.g. ``conv2d_forward: x has dtype int32
(shape (2, 3, 8, 8)); the CUDA kernels take float32 or float64``.
"""
from . import _runtime as rt


def fmt_shape(shape):
    shape = tuple(int(s) for s in shape)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def require_device(fn, name, a):
    """``a`` must be an array of the active backend (a CuPy array on the GPU)."""
    if not rt.backend().is_array(a):
        raise ValueError(f"{fn}: {name} must be a CuPy array on the GPU, got {type(a).__name__}")
    return a


def require_float(fn, name, a, ndim=None):
    """A float32/float64 device array (with ``ndim`` dimensions, when given)."""
    require_device(fn, name, a)
    if a.dtype not in rt.FLOAT_DTYPES:
        raise ValueError(f"{fn}: {name} has dtype {a.dtype} (shape {fmt_shape(a.shape)}); "
                         f"the CUDA kernels take float32 or float64")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D, got shape {fmt_shape(a.shape)}")
    return a


def as_dtype(fn, name, a, dtype):
    """Contiguous device copy of ``a`` in ``dtype`` (no copy when it already is)."""
    require_device(fn, name, a)
    return rt.xp().ascontiguousarray(a, dtype=dtype)


def contiguous(a):
    return rt.xp().ascontiguousarray(a)


def out_buffer(fn, out, shape, dtype, name="out"):
    """``out`` checked to be a C-contiguous device array of ``shape`` and ``dtype``, or
    a new array when ``out`` is None."""
    shape = tuple(int(s) for s in shape)
    if out is None:
        return rt.xp().empty(shape, dtype)
    require_device(fn, name, out)
    if tuple(out.shape) != shape or out.dtype != dtype:
        raise ValueError(f"{fn}: {name} has shape {fmt_shape(out.shape)} and dtype {out.dtype}, "
                         f"expected shape {fmt_shape(shape)} and dtype {dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{fn}: {name} (shape {fmt_shape(shape)}) must be C-contiguous")
    return out


def outs(out, n):
    """The n output buffers of a multi-output kernel (``out`` is None or a tuple)."""
    return (None,) * n if out is None else tuple(out)


def dummy(dtype):
    """A one-element array for a pointer parameter the kernel will not read."""
    return rt.xp().zeros(1, dtype)
