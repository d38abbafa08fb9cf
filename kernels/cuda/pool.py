"""Pooling on CuPy arrays (NCHW), forward and backward: the GPU twin of
``kernels/cpu/pool.py`` (same functions, arguments, returns and semantics).

The kernels (pool.cu) view the input as (N*C, H, W) planes with one thread per
output element (forward) or per input pixel (avg/adaptive backward, a gather, so no
atomics). Max pooling keeps the int32 argmax index; its backward scatters ``dy``
through the index with atomicAdd, since it is not given the pooling geometry.
See the CPU module for the output-size rule of ``ceil_mode``, the NaN rule of max
pooling and the divisor of ``count_include_pad``.
"""
import numpy as np

from kernels.composed.shapes import pool_out_hw, pool_output_size
from kernels.composed.pool import pair as _pair

from . import _runtime as rt
from ._util import as_dtype, dummy, fmt_shape, out_buffer, require_device, require_float

__all__ = [
    "pool_output_size", "pool2d_forward",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
]

_k = rt.Family("pool")


# ----------------------------------------------------------------------------- helpers

def _input(fn, x):
    require_float(fn, "x", x, ndim=4)
    return as_dtype(fn, "x", x, x.dtype)


def _out_hw(fn, x_shape, kernel, stride, pad, ceil_mode):
    OH, OW = pool_out_hw(x_shape, kernel, stride, pad, ceil_mode)
    if OH < 1 or OW < 1 or min(stride) < 1:
        raise ValueError(f"{fn}: kernel {kernel}, stride {stride}, pad {pad} give no output for "
                         f"input shape {fmt_shape(x_shape)}")
    return OH, OW


def _grad_input(fn, dy, x_shape, out_hw=None):
    """dy as a contiguous float array whose (N, C) match x_shape (and whose spatial
    size is out_hw, when known)."""
    require_float(fn, "dy", dy, ndim=4)
    x_shape = tuple(int(s) for s in x_shape)
    if len(x_shape) != 4 or dy.shape[:2] != x_shape[:2] or (
            out_hw is not None and tuple(dy.shape[2:]) != tuple(out_hw)):
        want = "" if out_hw is None else f" (expected {fmt_shape(x_shape[:2] + tuple(out_hw))})"
        raise ValueError(f"{fn}: dy has shape {fmt_shape(dy.shape)}{want} for x_shape "
                         f"{fmt_shape(x_shape)}")
    return as_dtype(fn, "dy", dy, dy.dtype), x_shape


def _geometry(kernel, stride, pad):
    return (*kernel, *stride, *pad)


def _max_pool(fn, x, kernel, stride, pad, ceil_mode, out, out_index, want_index):
    kernel, stride, pad = _pair(kernel), _pair(stride), _pair(pad)
    x = _input(fn, x)
    N, C, H, W = x.shape
    OH, OW = _out_hw(fn, x.shape, kernel, stride, pad, ceil_mode)
    y = out_buffer(fn, out, (N, C, OH, OW), x.dtype)
    idx = (out_buffer(fn, out_index, (N, C, OH, OW), np.int32, "out_index") if want_index
           else dummy(np.int32))
    _k.launch_1d("max_pool_forward", x.dtype, y.size, x, y, idx, N * C, H, W, OH, OW,
                 *_geometry(kernel, stride, pad), int(want_index))
    return y, idx


# ----------------------------------------------------------------------------- 2-D API

def max_pool2d_forward(x, kernel, stride, pad=0, ceil_mode=False, out=None, out_index=None):
    """Max pooling of NCHW x; returns (y, idx) with idx int32 flat indices into H*W."""
    return _max_pool("max_pool2d_forward", x, kernel, stride, pad, ceil_mode, out, out_index,
                     True)


def max_pool2d_backward(dy, idx, x_shape, out=None):
    """Gradient of max pooling: scatter-add dy into a zeroed x_shape array at idx."""
    fn = "max_pool2d_backward"
    dy, x_shape = _grad_input(fn, dy, x_shape)
    require_device(fn, "idx", idx)
    if idx.shape != dy.shape or idx.dtype != np.int32:
        raise ValueError(f"{fn}: idx has shape {fmt_shape(idx.shape)} and dtype {idx.dtype}, "
                         f"expected int32 of dy's shape {fmt_shape(dy.shape)}")
    idx = rt.xp().ascontiguousarray(idx)
    N, C, H, W = x_shape
    dx = out_buffer(fn, out, x_shape, dy.dtype)
    dx.fill(0)
    L = dy.shape[2] * dy.shape[3]
    _k.launch_1d("max_pool_backward", dy.dtype, dy.size, dy, idx, dx, N * C, L, H * W)
    return dx


def avg_pool2d_forward(x, kernel, stride, pad=0, ceil_mode=False, count_include_pad=True,
                       out=None):
    """Average pooling of NCHW x."""
    fn = "avg_pool2d_forward"
    kernel, stride, pad = _pair(kernel), _pair(stride), _pair(pad)
    x = _input(fn, x)
    N, C, H, W = x.shape
    OH, OW = _out_hw(fn, x.shape, kernel, stride, pad, ceil_mode)
    y = out_buffer(fn, out, (N, C, OH, OW), x.dtype)
    _k.launch_1d("avg_pool_forward", x.dtype, y.size, x, y, N * C, H, W, OH, OW,
                 *_geometry(kernel, stride, pad), int(bool(count_include_pad)))
    return y


def avg_pool2d_backward(dy, x_shape, kernel, stride, pad=0, ceil_mode=False,
                        count_include_pad=True, out=None):
    """Gradient of average pooling: each dy spread evenly (1/divisor) over its window."""
    fn = "avg_pool2d_backward"
    kernel, stride, pad = _pair(kernel), _pair(stride), _pair(pad)
    OH, OW = _out_hw(fn, tuple(x_shape), kernel, stride, pad, ceil_mode)
    dy, x_shape = _grad_input(fn, dy, x_shape, (OH, OW))
    N, C, H, W = x_shape
    dx = out_buffer(fn, out, x_shape, dy.dtype)
    _k.launch_1d("avg_pool_backward", dy.dtype, dx.size, dy, dx, N * C, H, W, OH, OW,
                 *_geometry(kernel, stride, pad), int(bool(count_include_pad)))
    return dx


def pool2d_forward(x, kernel, stride, pad=0, pool_type="max", ceil_mode=False,
                   count_include_pad=True, out=None):
    """Max or avg pooling of NCHW x returning only y (no index: the inference path)."""
    if pool_type == "avg":
        return avg_pool2d_forward(x, kernel, stride, pad, ceil_mode, count_include_pad, out)
    if pool_type != "max":
        raise ValueError(f"pool_type must be 'max' or 'avg', got {pool_type!r}")
    return _max_pool("pool2d_forward", x, kernel, stride, pad, ceil_mode, out, None, False)[0]


def adaptive_avg_pool2d_forward(x, out_size, out=None):
    """Adaptive average pooling to out_size=(oh, ow); windows [floor(i*H/oh), ceil((i+1)*H/oh))."""
    fn = "adaptive_avg_pool2d_forward"
    OH, OW = _pair(out_size)
    x = _input(fn, x)
    N, C, H, W = x.shape
    if OH < 1 or OW < 1:
        raise ValueError(f"{fn}: out_size {(OH, OW)} must be positive")
    y = out_buffer(fn, out, (N, C, OH, OW), x.dtype)
    _k.launch_1d("adaptive_avg_forward", x.dtype, y.size, x, y, N * C, H, W, OH, OW)
    return y


def adaptive_avg_pool2d_backward(dy, x_shape, out=None):
    """Gradient of adaptive average pooling (output size taken from dy)."""
    dy, x_shape = _grad_input("adaptive_avg_pool2d_backward", dy, x_shape)
    N, C, H, W = x_shape
    dx = out_buffer("adaptive_avg_pool2d_backward", out, x_shape, dy.dtype)
    _k.launch_1d("adaptive_avg_backward", dy.dtype, dx.size, dy, dx, N * C, H, W,
                 dy.shape[2], dy.shape[3])
    return dx

