"""im2col / col2im for NCHW CuPy arrays (GPU twin of ``kernels/cpu/im2col.py``).

Same layouts and contract as the CPU module: ``cols`` is (N, C*kh*kw, OH*OW), or
the merged (C*kh*kw, N*OH*OW) when ``merged=True`` or when ``out``/``cols`` is 2-D;
``col2im`` overwrites its output (the adjoint of ``im2col``). Kernels: im2col.cu.
"""
from kernels.composed.shapes import conv_out_size

from . import _runtime as rt
from ._util import as_dtype, fmt_shape, out_buffer, require_float

__all__ = ["conv_out_size", "im2col", "col2im"]

_k = rt.Family("im2col")


def _geometry(fn, x_shape, kernel, stride, pad, dilate):
    N, C, H, W = (int(v) for v in x_shape)
    kh, kw = int(kernel[0]), int(kernel[1])
    OH = conv_out_size(H, kh, int(stride[0]), int(pad[0]), int(dilate[0]))
    OW = conv_out_size(W, kw, int(stride[1]), int(pad[1]), int(dilate[1]))
    if OH < 1 or OW < 1:
        raise ValueError(f"{fn}: kernel {(kh, kw)} (dilate {tuple(dilate)}) is larger than the "
                         f"padded input of shape {fmt_shape(x_shape)} (pad {tuple(pad)})")
    return N, C, H, W, OH, OW


def _flat(kernel, stride, pad, dilate):
    return (int(kernel[0]), int(kernel[1]), int(stride[0]), int(stride[1]),
            int(pad[0]), int(pad[1]), int(dilate[0]), int(dilate[1]))


def _cols_shape(N, C, kernel, OH, OW, merged):
    R = C * int(kernel[0]) * int(kernel[1])
    return (R, N * OH * OW) if merged else (N, R, OH * OW)


def im2col(x, kernel, stride, pad, dilate, out=None, merged=False):
    """Unfold ``x`` (N, C, H, W) into columns (N, C*kh*kw, OH*OW), or
    (C*kh*kw, N*OH*OW) when ``merged`` (or when ``out`` is 2-D)."""
    require_float("im2col", "x", x, ndim=4)
    x = as_dtype("im2col", "x", x, x.dtype)
    N, C, H, W, OH, OW = _geometry("im2col", x.shape, kernel, stride, pad, dilate)
    merged = bool(merged) if out is None else out.ndim == 2
    out = out_buffer("im2col", out, _cols_shape(N, C, kernel, OH, OW, merged), x.dtype)
    _k.launch_1d("im2col", x.dtype, out.size, x, out, N, C, H, W,
                 *_flat(kernel, stride, pad, dilate), OH, OW, int(merged))
    return out


def col2im(cols, x_shape, kernel, stride, pad, dilate, out=None):
    """Fold columns (N, C*kh*kw, OH*OW) or merged (C*kh*kw, N*OH*OW) back into an
    (N, C, H, W) array; overlapping windows are summed and ``out`` is fully overwritten."""
    require_float("col2im", "cols", cols)
    cols = as_dtype("col2im", "cols", cols, cols.dtype)
    N, C, H, W, OH, OW = _geometry("col2im", x_shape, kernel, stride, pad, dilate)
    merged = cols.ndim == 2
    expected = _cols_shape(N, C, kernel, OH, OW, merged)
    if tuple(cols.shape) != expected:
        raise ValueError(f"col2im: cols has shape {fmt_shape(cols.shape)}, expected "
                         f"{fmt_shape(expected)} for x_shape {fmt_shape(x_shape)}")
    out = out_buffer("col2im", out, (N, C, H, W), cols.dtype)
    _k.launch_1d("col2im", cols.dtype, out.size, cols, out, N, C, H, W,
                 *_flat(kernel, stride, pad, dilate), OH, OW, int(merged))
    return out
