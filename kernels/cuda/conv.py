"""2-D convolution on CuPy arrays (NCHW), forward and backward, and the transposed conv: the
GPU twin of ``kernels/cpu/conv.py`` (same functions, arguments and returns).

Weights: conv ``w`` is (K, C // groups, kh, kw); transposed conv uses MXNet's
Deconvolution layout (C_in, C_out // groups, kh, kw), the weight of the conv it is
the adjoint of. Three algorithms, picked per pass by :func:`plan_conv` (a ``ConvPlan``;
every kernel also takes ``plan=`` to run a given one):

* ``"gemm"`` (composed in kernels/composed/conv_gemm.py, as on the CPU): im2col
  (im2col.cu) + cuBLAS GEMMs through ``cupy.matmul(..., out=)``, on chunks of
  ``plan.chunk`` samples so that the column buffer stays under ``_CHUNK_BYTES``. A chunk
  of nb samples uses the merged column layout (R, nb*L): one GEMM per group covers
  the chunk; ``permute_bias_act`` (conv.cu) moves the (K, nb*L) result to (nb, K, L)
  and adds bias/ReLU on the way. With nb == 1 the GEMM writes y directly.
* ``"1x1"``: 1x1 kernel, stride 1, no padding: x already is the column matrix.
* ``"direct"``: depthwise (groups > 1, one input channel per group): the GEMM's inner
  dimension would be kh*kw, so conv.cu computes it directly (one thread per output,
  per input pixel for backward-data, one block per weight for backward-weight).

Scratch buffers come from CuPy's memory pool (allocation is a pool lookup), so
nothing is cached here between calls.
"""
import functools

import numpy as np

from kernels.composed.conv_gemm import (GemmDevice, TransposedConv, as3d, backward_data_gemm,
                                        backward_weight_gemm, finish, forward_gemm)
from kernels.composed.conv_plan import PASSES, ConvPlan, check_plan, is_1x1, samples_per_chunk
from kernels.composed.shapes import conv_out_hw

from . import _runtime as rt
from ._util import as_dtype, dummy, fmt_shape, require_device, require_float
from .im2col import col2im, im2col

__all__ = [
    "ConvPlan", "plan_conv",
    "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight", "conv2d_backward_bias",
    "conv2d_transpose_forward", "conv2d_transpose_backward_data",
    "conv2d_transpose_backward_weight", "conv2d_transpose_backward_bias",
]

_k = rt.Family("conv")

# Column-buffer budget per chunk of samples: GEMMs are efficient well below this,
# and it bounds the scratch memory of one convolution on any batch size.
_CHUNK_BYTES = 128 << 20

# -------------------------------------------------------------------- helpers


def _output(fn, out, shape, dtype):
    """(array to compute into, array the caller gets). They differ only when the
    caller's ``out`` is not C-contiguous: the algorithms rely on reshape views."""
    shape = tuple(int(s) for s in shape)
    if out is None:
        arr = rt.xp().empty(shape, dtype)
        return arr, arr
    require_device(fn, "out", out)
    if tuple(out.shape) != shape or out.dtype != dtype:
        raise ValueError(f"{fn}: out has shape {fmt_shape(out.shape)} and dtype {out.dtype}, "
                         f"expected shape {fmt_shape(shape)} and dtype {dtype}")
    if out.flags.c_contiguous:
        return out, out
    return rt.xp().empty(shape, dtype), out


def plan_conv(op, x_shape, w_shape, stride, pad, dilate, groups, dtype=np.float32):
    """The ConvPlan of pass ``op`` ("forward", "data" = backward-data, "weight" =
    backward-weight) of a conv of an x of ``x_shape`` with a weight of ``w_shape`` in ``dtype``,
    cached per shape: "1x1", "direct" for depthwise convs, else "gemm" (the same for every pass)."""
    if op not in PASSES:
        raise ValueError(f"plan_conv: op must be one of {PASSES}, got {op!r}")
    ints = lambda v: tuple(int(s) for s in v)  # noqa: E731
    return _plan(ints(x_shape), ints(w_shape), ints(stride), ints(pad), ints(dilate), int(groups),
                 np.dtype(dtype).itemsize)


@functools.lru_cache(maxsize=4096)
def _plan(x_shape, w_shape, stride, pad, dilate, groups, itemsize):
    K, Cg, kh, kw = w_shape
    if is_1x1((kh, kw), stride, pad):
        algo = "1x1"
    elif groups > 1 and Cg == 1:
        algo = "direct"
    else:
        algo = "gemm"
    return ConvPlan(algo, chunk=samples_per_chunk(x_shape, w_shape, stride, pad, dilate, itemsize,
                                                  _CHUNK_BYTES))


def _checked_plan(fn, plan, op, x_shape, w_shape, stride, pad, dilate, groups, dtype):
    """``plan``, or plan_conv's when it is None (ValueError for one these kernels cannot run)."""
    if plan is None:
        return plan_conv(op, x_shape, w_shape, stride, pad, dilate, groups, dtype)
    check_plan(fn, plan, op, ("1x1", "gemm", "direct"), w_shape, stride, pad)
    return plan


def _permute(src, dst, n, k, l, src_sn, src_sk, dst_sn, dst_sk, bias=None, relu=False):
    """dst[n, k, l] = act(src[n, k, l] + bias[k]) between two (n, k, l) strided layouts."""
    b = bias if bias is not None else dummy(src.dtype)
    _k.launch_1d("permute_bias_act", src.dtype, n * k * l, src, dst, b, n, k, l,
                 src_sn, src_sk, dst_sn, dst_sk, int(bias is not None), int(relu))


def _check_shapes(fn, x_shape, w_shape, groups, dy_shape, stride, pad, dilate):
    """Validate a convolution's shapes (kernels trust them: a mismatch would read out of
    bounds); returns (OH, OW)."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"{fn}: x and weight must be 4-D, got shapes {fmt_shape(x_shape)} and "
                         f"{fmt_shape(w_shape)}")
    N, C, H, W = x_shape
    K, Cg, kh, kw = w_shape
    if groups < 1 or K % groups or Cg * groups != C:
        raise ValueError(f"{fn}: x shape {fmt_shape(x_shape)} and weight shape "
                         f"{fmt_shape(w_shape)} do not match groups={groups}")
    OH, OW = conv_out_hw(H, W, (kh, kw), stride, pad, dilate)
    if OH < 1 or OW < 1:
        raise ValueError(f"{fn}: kernel {(kh, kw)} (dilate {tuple(dilate)}) is larger than the "
                         f"padded input {fmt_shape(x_shape)} (pad {tuple(pad)})")
    if dy_shape is not None and tuple(dy_shape) != (N, K, OH, OW):
        raise ValueError(f"{fn}: dy has shape {fmt_shape(dy_shape)}, expected "
                         f"{fmt_shape((N, K, OH, OW))} for x {fmt_shape(x_shape)} and weight "
                         f"{fmt_shape(w_shape)}")
    return OH, OW


# ------------------------------------------------------------ GEMM algorithms
# kernels/composed/conv_gemm.py composes them from these primitives (permute_bias_act
# of conv.cu moves GEMM results and dy between (nb, K, L) and (K, nb, L)).


def _to_channel_major(src, dst):
    nb, K, L = src.shape
    _permute(src, dst, nb, K, L, K * L, L, L, nb * L)


def _from_channel_major(src, dst, bias, relu):
    K, nb, L = src.shape
    _permute(src, dst, nb, K, L, L, nb * L, K * L, L, bias, relu)


def _bias_act(y3, bias, relu):
    N, K, L = y3.shape
    _permute(y3, y3, N, K, L, K * L, L, K * L, L, bias, relu)


def _as_array(fn, name, a, dtype=None, ndim=None):
    """``a`` as a contiguous device array: of its own (float) dtype, or converted to ``dtype``."""
    if dtype is None:
        return as_dtype(fn, name, require_float(fn, name, a, ndim), a.dtype)
    return as_dtype(fn, name, a, dtype)


_GEMM = GemmDevice(xp=rt.xp, im2col=im2col, col2im=col2im,
                   scratch=lambda slot, shape, dtype: rt.xp().empty(shape, dtype),
                   to_channel_major=_to_channel_major,
                   from_channel_major=_from_channel_major, bias_act=_bias_act,
                   as_array=_as_array, check_out=_output)


# ------------------------------------------------------------ direct kernels


def _geometry(x_shape, w_shape, stride, pad, dilate, out_hw):
    """The i64 arguments shared by the direct kernels."""
    N, C, H, W = x_shape
    K, Cg, kh, kw = w_shape
    return (N, C, H, W, K, Cg, kh, kw, int(stride[0]), int(stride[1]), int(pad[0]), int(pad[1]),
            int(dilate[0]), int(dilate[1]), int(out_hw[0]), int(out_hw[1]))


def _direct_forward(x, w, b, stride, pad, dilate, act, y):
    geo = _geometry(x.shape, w.shape, stride, pad, dilate, y.shape[2:])
    bias = b if b is not None else dummy(x.dtype)
    _k.launch_1d("direct_forward", x.dtype, y.size, x, w, bias, y, *geo, int(b is not None),
                 int(act == "relu"))


def _direct_backward_data(dy, w, stride, pad, dilate, dx):
    geo = _geometry(dx.shape, w.shape, stride, pad, dilate, dy.shape[2:])
    _k.launch_1d("direct_backward_data", dx.dtype, dx.size, dy, w, dx, *geo)


def _direct_backward_weight(dy, x, stride, pad, dilate, dw):
    geo = _geometry(x.shape, dw.shape, stride, pad, dilate, dy.shape[2:])
    work = x.shape[0] * dy.shape[2] * dy.shape[3]  # products per weight
    _k.launch("direct_backward_weight", dw.dtype, dw.size, rt.reduce_block(work), dy, x, dw, *geo)


# ---------------------------------------------------------------- conv2d API


def conv2d_forward(x, w, b, stride, pad, dilate, groups, act=None, out=None, plan=None):
    """y = conv2d(x, w) + b, optionally followed by ReLU (``act="relu"``).

    x: (N, C, H, W); w: (K, C // groups, kh, kw); b: (K,) or None.
    Returns y: (N, K, OH, OW) with OH = (H + 2*ph - dh*(kh-1) - 1) // sh + 1.
    """
    fn = "conv2d_forward"
    if act not in (None, "relu"):
        raise ValueError(f"{fn}: unsupported fused activation {act!r}")
    require_float(fn, "x", x)
    x = as_dtype(fn, "x", x, x.dtype)
    w = as_dtype(fn, "w", w, x.dtype)
    OH, OW = _check_shapes(fn, x.shape, w.shape, groups, None, stride, pad, dilate)
    b = None if b is None else as_dtype(fn, "b", b, x.dtype)
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"{fn}: bias has shape {fmt_shape(b.shape)}, expected ({w.shape[0]},)")
    y, out = _output(fn, out, (x.shape[0], w.shape[0], OH, OW), x.dtype)
    plan = _checked_plan(fn, plan, "forward", x.shape, w.shape, stride, pad, dilate, groups,
                         x.dtype)
    if plan.algo == "direct":
        _direct_forward(x, w, b, stride, pad, dilate, act, y)
    else:
        forward_gemm(_GEMM, plan, x, w, b, stride, pad, dilate, groups, act, y)
    return finish(y, out)


def conv2d_backward_data(dy, w, x_shape, stride, pad, dilate, groups, out=None, plan=None):
    """dx (of shape ``x_shape``) = gradient of conv2d w.r.t. its input."""
    fn = "conv2d_backward_data"
    require_float(fn, "dy", dy)
    dy = as_dtype(fn, "dy", dy, dy.dtype)
    w = as_dtype(fn, "w", w, dy.dtype)
    x_shape = tuple(int(s) for s in x_shape)
    _check_shapes(fn, x_shape, w.shape, groups, dy.shape, stride, pad, dilate)
    dx, out = _output(fn, out, x_shape, dy.dtype)
    plan = _checked_plan(fn, plan, "data", x_shape, w.shape, stride, pad, dilate, groups,
                         dy.dtype)
    if plan.algo == "direct":
        _direct_backward_data(dy, w, stride, pad, dilate, dx)
    else:
        backward_data_gemm(_GEMM, plan, dy, w, stride, pad, dilate, groups, dx)
    return finish(dx, out)


def conv2d_backward_weight(dy, x, w_shape, stride, pad, dilate, groups, out=None, plan=None):
    """dw (of shape ``w_shape``) = gradient of conv2d w.r.t. its weight."""
    fn = "conv2d_backward_weight"
    require_float(fn, "dy", dy)
    dy = as_dtype(fn, "dy", dy, dy.dtype)
    x = as_dtype(fn, "x", x, dy.dtype)
    w_shape = tuple(int(s) for s in w_shape)
    _check_shapes(fn, x.shape, w_shape, groups, dy.shape, stride, pad, dilate)
    dw, out = _output(fn, out, w_shape, dy.dtype)
    plan = _checked_plan(fn, plan, "weight", x.shape, w_shape, stride, pad, dilate, groups,
                         dy.dtype)
    if plan.algo == "direct":
        _direct_backward_weight(dy, x, stride, pad, dilate, dw)
    else:
        backward_weight_gemm(_GEMM, plan, dy, x, stride, pad, dilate, groups, dw)
    return finish(dw, out)


def conv2d_backward_bias(dy, out=None):
    """db = dy summed over N, H, W (works for any (N, K, ...) layout)."""
    fn = "conv2d_backward_bias"
    require_float(fn, "dy", dy)
    if dy.ndim < 2:
        raise ValueError(f"{fn}: dy must be (N, K, ...), got shape {fmt_shape(dy.shape)}")
    dy3 = as3d(as_dtype(fn, "dy", dy, dy.dtype))
    N, K, L = dy3.shape
    db, out = _output(fn, out, (K,), dy.dtype)
    _k.launch("bias_grad", dy.dtype, K, rt.reduce_block(N * L), dy3, db, N, K, L)
    return finish(db, out)


# ------------------------------------------------------- transposed conv2d
# kernels/composed/conv_gemm.py composes them from the conv2d kernels above.

_TRANSPOSED = TransposedConv(_GEMM, conv2d_forward, conv2d_backward_data, conv2d_backward_weight)
conv2d_transpose_forward = _TRANSPOSED.forward
conv2d_transpose_backward_data = _TRANSPOSED.backward_data
conv2d_transpose_backward_weight = _TRANSPOSED.backward_weight
conv2d_transpose_backward_bias = conv2d_backward_bias
