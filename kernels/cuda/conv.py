"""2-D convolution on CuPy arrays (NCHW), forward and backward, transposed conv and 1-D
wrappers: the GPU twin of ``kernels/cpu/conv.py`` (same functions, arguments and returns).

Weights: conv ``w`` is (K, C // groups, kh, kw); transposed conv uses MXNet's
Deconvolution layout (C_in, C_out // groups, kh, kw), the weight of the conv it is
the adjoint of. Three algorithms, chosen per call by :func:`_choose_algo`:

* ``"gemm"``: im2col (im2col.cu) + cuBLAS GEMMs through ``cupy.matmul(..., out=)``, on
  chunks of samples so that the column buffer stays under ``_CHUNK_BYTES``. A chunk
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
import sys

from kernels.conv1d import conv1d_kernels as _conv1d_kernels
from kernels.composed.shapes import conv_out_hw, conv_transpose_out_size

from . import _runtime as rt
from ._util import as_dtype, dummy, fmt_shape, require_device, require_float
from .im2col import col2im, im2col

__all__ = [
    "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight", "conv2d_backward_bias",
    "conv_transpose_out_size", "conv2d_transpose_forward", "conv2d_transpose_backward_data",
    "conv2d_transpose_backward_weight", "conv2d_transpose_backward_bias",
    "conv1d_forward", "conv1d_backward_data", "conv1d_backward_weight", "conv1d_backward_bias",
    "conv1d_transpose_forward", "conv1d_transpose_backward_data",
    "conv1d_transpose_backward_weight", "conv1d_transpose_backward_bias",
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


def _finish(buf, out):
    if buf is not out:
        out[...] = buf
    return out


def _as3d(a):
    """(N, K, *spatial) -> (N, K, L) view."""
    L = 1
    for s in a.shape[2:]:
        L *= int(s)
    return a.reshape(a.shape[0], a.shape[1], L)


def _is_1x1(kernel, stride, pad):
    return tuple(kernel) == (1, 1) and tuple(stride) == (1, 1) and tuple(pad) == (0, 0)


def _choose_algo(x_shape, w_shape, stride, pad, groups):
    K, Cg, kh, kw = w_shape
    if _is_1x1((kh, kw), stride, pad):
        return "1x1"
    if groups > 1 and Cg == 1:
        return "direct"
    return "gemm"


def _permute(src, dst, n, k, l, src_sn, src_sk, dst_sn, dst_sk, bias=None, relu=False):
    """dst[n, k, l] = act(src[n, k, l] + bias[k]) between two (n, k, l) strided layouts."""
    b = bias if bias is not None else dummy(src.dtype)
    _k.launch_1d("permute_bias_act", src.dtype, n * k * l, src, dst, b, n, k, l,
                 src_sn, src_sk, dst_sn, dst_sk, int(bias is not None), int(relu))


def _chunks(n, bytes_per_sample):
    nb = max(1, min(n, _CHUNK_BYTES // max(1, bytes_per_sample)))
    return nb, [(n0, min(n, n0 + nb)) for n0 in range(0, n, nb)]


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
# Group g owns rows [g*R, (g+1)*R) of the column matrix (R = Cg*kh*kw) and
# output channels [g*Kg, (g+1)*Kg). Every operand handed to cupy.matmul is a
# contiguous row block (or its transpose), so cuBLAS runs on it without copies.


def _merged_cols(x, n0, n1, kernel, stride, pad, dilate, one_by_one, L, buf):
    """Columns of samples n0:n1 in the merged (C*kh*kw, nb*L) layout."""
    C, nb = x.shape[1], n1 - n0
    if one_by_one and nb == 1:
        return x[n0].reshape(C, L)  # already the column matrix: no copy
    rows = C * kernel[0] * kernel[1]
    cols = buf[:rows * nb * L].reshape(rows, nb * L)
    if one_by_one:  # (nb, C, L) -> (C, nb, L)
        _permute(x[n0:n1], cols, nb, C, L, C * L, L, L, nb * L)
        return cols
    return im2col(x[n0:n1], kernel, stride, pad, dilate, out=cols)


def _dy_merged(dy3, n0, n1, buf):
    """dy of samples n0:n1 as (K, nb*L)."""
    nb, K, L = n1 - n0, dy3.shape[1], dy3.shape[2]
    if nb == 1:
        return dy3[n0]
    dyt = buf[:K * nb * L].reshape(K, nb * L)
    _permute(dy3[n0:n1], dyt, nb, K, L, K * L, L, L, nb * L)
    return dyt


def _forward_gemm(x, w, b, stride, pad, dilate, groups, act, y, one_by_one):
    xp = rt.xp()
    N, C = x.shape[:2]
    K, Cg, kh, kw = w.shape
    Kg, R = K // groups, Cg * kh * kw
    wg = w.reshape(groups, Kg, R)
    y3 = _as3d(y)
    L = y3.shape[2]
    nb, chunks = _chunks(N, C * kh * kw * L * x.itemsize)
    cols_buf = None if nb == 1 and one_by_one else xp.empty(C * kh * kw * nb * L, x.dtype)
    yt_buf = xp.empty(K * nb * L, x.dtype) if nb > 1 else None
    relu = act == "relu"
    for n0, n1 in chunks:
        m = n1 - n0
        cols = _merged_cols(x, n0, n1, (kh, kw), stride, pad, dilate, one_by_one, L, cols_buf)
        yt = y3[n0] if m == 1 else yt_buf[:K * m * L].reshape(K, m * L)
        for g in range(groups):
            xp.matmul(wg[g], cols[g * R:(g + 1) * R], out=yt[g * Kg:(g + 1) * Kg])
        if m > 1:  # (K, m, L) -> (m, K, L), with the epilogue
            _permute(yt, y3[n0:n1], m, K, L, L, m * L, K * L, L, b, relu)
        elif b is not None or relu:  # in place
            _permute(yt, yt, 1, K, L, K * L, L, K * L, L, b, relu)


def _backward_data_gemm(dy, w, stride, pad, dilate, groups, dx, one_by_one):
    xp = rt.xp()
    N, C, H, W = dx.shape
    K, Cg, kh, kw = w.shape
    Kg, R = K // groups, Cg * kh * kw
    wg = w.reshape(groups, Kg, R)
    dy3 = _as3d(dy)
    L = dy3.shape[2]
    nb, chunks = _chunks(N, C * kh * kw * L * dx.itemsize)
    dyt_buf = xp.empty(K * nb * L, dx.dtype) if nb > 1 else None
    dcols_buf = None if nb == 1 and one_by_one else xp.empty(C * kh * kw * nb * L, dx.dtype)
    for n0, n1 in chunks:
        m = n1 - n0
        dyt = _dy_merged(dy3, n0, n1, dyt_buf)
        if one_by_one and m == 1:
            dcols = dx[n0].reshape(C, L)
        else:
            dcols = dcols_buf[:C * kh * kw * m * L].reshape(C * kh * kw, m * L)
        for g in range(groups):
            xp.matmul(wg[g].T, dyt[g * Kg:(g + 1) * Kg], out=dcols[g * R:(g + 1) * R])
        if not one_by_one:
            col2im(dcols, (m, C, H, W), (kh, kw), stride, pad, dilate, out=dx[n0:n1])
        elif m > 1:  # 1x1: the columns are dx itself, transposed (C, m, L) -> (m, C, L)
            _permute(dcols, dx[n0:n1], m, C, L, L, m * L, C * L, L)


def _backward_weight_gemm(dy, x, stride, pad, dilate, groups, dw, one_by_one):
    xp = rt.xp()
    N, C = x.shape[:2]
    K, Cg, kh, kw = dw.shape
    Kg, R = K // groups, Cg * kh * kw
    dwg = dw.reshape(groups, Kg, R)
    dy3 = _as3d(dy)
    L = dy3.shape[2]
    nb, chunks = _chunks(N, C * kh * kw * L * x.itemsize)
    cols_buf = None if nb == 1 and one_by_one else xp.empty(C * kh * kw * nb * L, x.dtype)
    dyt_buf = xp.empty(K * nb * L, x.dtype) if nb > 1 else None
    part = xp.empty((Kg, R), dw.dtype) if len(chunks) > 1 else None
    if not chunks:  # empty batch
        dw[...] = 0
    for c, (n0, n1) in enumerate(chunks):
        cols = _merged_cols(x, n0, n1, (kh, kw), stride, pad, dilate, one_by_one, L, cols_buf)
        dyt = _dy_merged(dy3, n0, n1, dyt_buf)
        for g in range(groups):
            # the first chunk writes dw, later ones add (cupy.matmul has no GEMM beta)
            dst = dwg[g] if c == 0 else part
            xp.matmul(dyt[g * Kg:(g + 1) * Kg], cols[g * R:(g + 1) * R].T, out=dst)
            if c:
                dwg[g] += part


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


def conv2d_forward(x, w, b, stride, pad, dilate, groups, act=None, out=None):
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
    algo = _choose_algo(x.shape, w.shape, stride, pad, groups)
    if algo == "direct":
        _direct_forward(x, w, b, stride, pad, dilate, act, y)
    else:
        _forward_gemm(x, w, b, stride, pad, dilate, groups, act, y, one_by_one=algo == "1x1")
    return _finish(y, out)


def conv2d_backward_data(dy, w, x_shape, stride, pad, dilate, groups, out=None):
    """dx (of shape ``x_shape``) = gradient of conv2d w.r.t. its input."""
    fn = "conv2d_backward_data"
    require_float(fn, "dy", dy)
    dy = as_dtype(fn, "dy", dy, dy.dtype)
    w = as_dtype(fn, "w", w, dy.dtype)
    x_shape = tuple(int(s) for s in x_shape)
    _check_shapes(fn, x_shape, w.shape, groups, dy.shape, stride, pad, dilate)
    dx, out = _output(fn, out, x_shape, dy.dtype)
    algo = _choose_algo(x_shape, w.shape, stride, pad, groups)
    if algo == "direct":
        _direct_backward_data(dy, w, stride, pad, dilate, dx)
    else:
        _backward_data_gemm(dy, w, stride, pad, dilate, groups, dx, one_by_one=algo == "1x1")
    return _finish(dx, out)


def conv2d_backward_weight(dy, x, w_shape, stride, pad, dilate, groups, out=None):
    """dw (of shape ``w_shape``) = gradient of conv2d w.r.t. its weight."""
    fn = "conv2d_backward_weight"
    require_float(fn, "dy", dy)
    dy = as_dtype(fn, "dy", dy, dy.dtype)
    x = as_dtype(fn, "x", x, dy.dtype)
    w_shape = tuple(int(s) for s in w_shape)
    _check_shapes(fn, x.shape, w_shape, groups, dy.shape, stride, pad, dilate)
    dw, out = _output(fn, out, w_shape, dy.dtype)
    algo = _choose_algo(x.shape, w_shape, stride, pad, groups)
    if algo == "direct":
        _direct_backward_weight(dy, x, stride, pad, dilate, dw)
    else:
        _backward_weight_gemm(dy, x, stride, pad, dilate, groups, dw, one_by_one=algo == "1x1")
    return _finish(dw, out)


def conv2d_backward_bias(dy, out=None):
    """db = dy summed over N, H, W (works for any (N, K, ...) layout)."""
    fn = "conv2d_backward_bias"
    require_float(fn, "dy", dy)
    if dy.ndim < 2:
        raise ValueError(f"{fn}: dy must be (N, K, ...), got shape {fmt_shape(dy.shape)}")
    dy3 = _as3d(as_dtype(fn, "dy", dy, dy.dtype))
    N, K, L = dy3.shape
    db, out = _output(fn, out, (K,), dy.dtype)
    _k.launch("bias_grad", dy.dtype, K, rt.reduce_block(N * L), dy3, db, N, K, L)
    return _finish(db, out)


# ------------------------------------------------------- transposed conv2d


def _pad_to(x, fh, fw):
    """x (N, C, H, W) zero-padded at the bottom/right to (N, C, fh, fw)."""
    if (fh, fw) == tuple(x.shape[2:]):
        return x
    return rt.xp().pad(x, ((0, 0), (0, 0), (0, fh - x.shape[2]), (0, fw - x.shape[3])))


def conv2d_transpose_forward(x, w, b, stride, pad, dilate, output_padding, groups, out=None):
    """Transposed conv (MXNet Deconvolution): the input-gradient of a conv.

    x: (N, C_in, H, W); w: (C_in, C_out // groups, kh, kw); b: (C_out,) or None.
    Output (N, C_out, OH, OW), OH = (H-1)*sh - 2*ph + dh*(kh-1) + output_padding[0] + 1.
    """
    fn = "conv2d_transpose_forward"
    require_float(fn, "x", x, ndim=4)
    x = as_dtype(fn, "x", x, x.dtype)
    w = as_dtype(fn, "w", w, x.dtype)
    if w.ndim != 4:
        raise ValueError(f"{fn}: weight must be (C_in, C_out // groups, kh, kw), got shape "
                         f"{fmt_shape(w.shape)}")
    N, _, H, W = x.shape
    Cin, Cog, kh, kw = w.shape
    OH = conv_transpose_out_size(H, kh, stride[0], pad[0], dilate[0], output_padding[0])
    OW = conv_transpose_out_size(W, kw, stride[1], pad[1], dilate[1], output_padding[1])
    # With output_padding >= stride the forward conv of y would see more
    # positions than x has; those positions get zero gradient.
    x = _pad_to(x, *conv_out_hw(OH, OW, (kh, kw), stride, pad, dilate))
    y = conv2d_backward_data(x, w, (N, Cog * groups, OH, OW), stride, pad, dilate, groups, out=out)
    if b is not None:
        b = as_dtype(fn, "b", b, y.dtype)
        if b.shape != (y.shape[1],):
            raise ValueError(f"{fn}: bias has shape {fmt_shape(b.shape)}, expected ({y.shape[1]},)")
        if y.flags.c_contiguous:
            y3 = _as3d(y)
            K, L = y3.shape[1], y3.shape[2]
            _permute(y3, y3, N, K, L, K * L, L, K * L, L, b)
        else:
            y += b.reshape(1, -1, 1, 1)
    return y


def conv2d_transpose_backward_data(dy, w, x_shape, stride, pad, dilate, groups, out=None):
    """dx of a transposed conv = the forward conv of dy with the same weight."""
    fn = "conv2d_transpose_backward_data"
    require_float(fn, "dy", dy)
    x_shape = tuple(int(s) for s in x_shape)
    y = conv2d_forward(dy, w, None, stride, pad, dilate, groups)
    if y.shape != x_shape:  # output_padding >= stride: drop the extra positions
        y = y[:, :, :x_shape[2], :x_shape[3]]
    if y.shape != x_shape:
        raise ValueError(f"{fn}: dy of shape {fmt_shape(dy.shape)} does not produce x_shape "
                         f"{fmt_shape(x_shape)}")
    if out is None:
        return rt.xp().ascontiguousarray(y)
    _output(fn, out, x_shape, y.dtype)  # validates out
    out[...] = y
    return out


def conv2d_transpose_backward_weight(dy, x, w_shape, stride, pad, dilate, groups, out=None):
    """dw of a transposed conv: the weight-gradient of the conv that maps dy to x."""
    fn = "conv2d_transpose_backward_weight"
    require_float(fn, "dy", dy, ndim=4)
    dy = as_dtype(fn, "dy", dy, dy.dtype)
    x = as_dtype(fn, "x", x, dy.dtype)
    kh, kw = int(w_shape[2]), int(w_shape[3])
    x = _pad_to(x, *conv_out_hw(dy.shape[2], dy.shape[3], (kh, kw), stride, pad, dilate))
    return conv2d_backward_weight(x, dy, w_shape, stride, pad, dilate, groups, out=out)


conv2d_transpose_backward_bias = conv2d_backward_bias


# --------------------------------------------------------------- conv1d API
# A 1-D conv is a 2-D conv with H = 1 (kernels/conv1d.py does the reshapes).

globals().update(_conv1d_kernels(sys.modules[__name__]))
