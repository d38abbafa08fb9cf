"""The im2col + GEMM convolution and the transposed convolution, written once over a device's
primitives: kernels/cpu/conv.py and kernels/cuda/conv.py each describe theirs in a `GemmDevice`.

GEMM layout: a chunk of nb samples is handled with one GEMM per group on the "merged" column
matrix (C*kh*kw, nb*L), L = OH*OW: N small GEMMs (one per sample) run at half the speed of one
big one when L is small. Group g owns rows [g*R, (g+1)*R) of the columns (R = Cg*kh*kw) and
output channels [g*Kg, (g+1)*Kg); every operand handed to matmul is a contiguous row block (or
its transpose), so BLAS runs on it without copies. Results come out of the GEMM as (K, nb*L)
and the device's `from_channel_major` moves them to (nb, K, L), adding bias / applying ReLU on
the way; with nb == 1 the GEMM writes y directly.
"""
from typing import Callable, NamedTuple

from kernels.composed.shapes import conv_out_hw, conv_transpose_out_size


class GemmDevice(NamedTuple):
    """What the composed convolutions need from a device."""
    xp: Callable                  # () -> the array module (numpy, cupy)
    im2col: Callable              # the device's im2col / col2im (kernels/<device>/im2col.py)
    col2im: Callable
    scratch: Callable             # (slot, shape, dtype) -> an uninitialized array
    to_channel_major: Callable    # (src (nb, K, L), dst (K, nb, L))
    from_channel_major: Callable  # (src (K, nb, L), dst (nb, K, L), bias or None, relu)
    bias_act: Callable            # (y (N, K, L), bias or None, relu), in place
    as_array: Callable            # (fn, name, a, dtype=None, ndim=None) -> contiguous array
    check_out: Callable           # (fn, out, shape, dtype): the device's check of an out buffer


def as3d(a):
    """(N, K, *spatial) -> (N, K, L) view (explicit L: reshape(-1) fails on empty arrays)."""
    L = 1
    for s in a.shape[2:]:
        L *= int(s)
    return a.reshape(a.shape[0], a.shape[1], L)


def finish(buf, out):
    """The result in the caller's ``out`` (``buf`` differs when ``out`` is not C-contiguous)."""
    if buf is not out:
        out[...] = buf
    return out


def _fmt(shape):
    return str(tuple(int(s) for s in shape))


# ------------------------------------------------------------------------- GEMM convolution


def _chunks(N, plan):
    return [(n0, min(N, n0 + plan.chunk)) for n0 in range(0, N, plan.chunk)]


def _merged_cols(dev, x, n0, n1, kernel, stride, pad, dilate, one_by_one, L):
    """Columns of samples n0:n1 in the merged (C*kh*kw, nb*L) layout."""
    C, nb = x.shape[1], n1 - n0
    if one_by_one and nb == 1:
        return x[n0].reshape(C, L)  # already the column matrix: no copy
    cols = dev.scratch("cols", (C * kernel[0] * kernel[1], nb * L), x.dtype)
    if one_by_one:
        dev.to_channel_major(x[n0:n1].reshape(nb, C, L), cols.reshape(C, nb, L))
        return cols
    return dev.im2col(x[n0:n1], kernel, stride, pad, dilate, out=cols)


def _dy_merged(dev, dy3, n0, n1):
    """dy of samples n0:n1 as (K, nb*L)."""
    nb, K, L = n1 - n0, dy3.shape[1], dy3.shape[2]
    if nb == 1:
        return dy3[n0]
    dyt = dev.scratch("dyt", (K, nb * L), dy3.dtype)
    dev.to_channel_major(dy3[n0:n1], dyt.reshape(K, nb, L))
    return dyt


def forward_gemm(dev, plan, x, w, b, stride, pad, dilate, groups, act, y):
    """y (N, K, OH, OW, C-contiguous) = conv2d(x, w) + b, then ReLU if ``act == "relu"``, by
    ``plan`` ("gemm" or "1x1", ``plan.chunk`` samples per GEMM)."""
    xp = dev.xp()
    one_by_one = plan.algo == "1x1"
    K, Cg, kh, kw = w.shape
    Kg, R = K // groups, Cg * kh * kw
    wg = w.reshape(groups, Kg, R)
    y3 = as3d(y)
    L = y3.shape[2]
    relu = act == "relu"
    for n0, n1 in _chunks(x.shape[0], plan):
        m = n1 - n0
        cols = _merged_cols(dev, x, n0, n1, (kh, kw), stride, pad, dilate, one_by_one, L)
        yt = y3[n0] if m == 1 else dev.scratch("yt", (K, m * L), y.dtype)
        for g in range(groups):
            xp.matmul(wg[g], cols[g * R:(g + 1) * R], out=yt[g * Kg:(g + 1) * Kg])
        if m > 1:
            dev.from_channel_major(yt.reshape(K, m, L), y3[n0:n1], b, relu)
        elif b is not None or relu:
            dev.bias_act(y3[n0:n1], b, relu)


def backward_data_gemm(dev, plan, dy, w, stride, pad, dilate, groups, dx):
    """dx (C-contiguous) = the gradient of conv2d w.r.t. its input, by ``plan``."""
    xp = dev.xp()
    one_by_one = plan.algo == "1x1"
    N, C, H, W = dx.shape
    K, Cg, kh, kw = w.shape
    Kg, R = K // groups, Cg * kh * kw
    wg = w.reshape(groups, Kg, R)
    dy3 = as3d(dy)
    L = dy3.shape[2]
    for n0, n1 in _chunks(N, plan):
        m = n1 - n0
        dyt = _dy_merged(dev, dy3, n0, n1)
        if one_by_one and m == 1:
            dcols = dx[n0].reshape(C, L)
        else:
            dcols = dev.scratch("cols", (C * kh * kw, m * L), dx.dtype)
        for g in range(groups):
            xp.matmul(wg[g].T, dyt[g * Kg:(g + 1) * Kg], out=dcols[g * R:(g + 1) * R])
        if not one_by_one:
            dev.col2im(dcols, (m, C, H, W), (kh, kw), stride, pad, dilate, out=dx[n0:n1])
        elif m > 1:  # 1x1: the columns are dx itself, transposed (C, m, L) -> (m, C, L)
            dev.from_channel_major(dcols.reshape(C, m, L), dx[n0:n1].reshape(m, C, L), None,
                                   False)


def backward_weight_gemm(dev, plan, dy, x, stride, pad, dilate, groups, dw):
    """dw (C-contiguous) = the gradient of conv2d w.r.t. its weight, by ``plan``."""
    xp = dev.xp()
    one_by_one = plan.algo == "1x1"
    K, Cg, kh, kw = dw.shape
    Kg, R = K // groups, Cg * kh * kw
    dwg = dw.reshape(groups, Kg, R)
    dy3 = as3d(dy)
    L = dy3.shape[2]
    chunks = _chunks(x.shape[0], plan)
    if not chunks:  # empty batch
        dw[...] = 0
    for c, (n0, n1) in enumerate(chunks):
        cols = _merged_cols(dev, x, n0, n1, (kh, kw), stride, pad, dilate, one_by_one, L)
        dyt = _dy_merged(dev, dy3, n0, n1)
        part = dev.scratch("dw_part", (Kg, R), dw.dtype) if c else None
        for g in range(groups):
            # the first chunk writes dw, later ones add (matmul has no GEMM beta)
            dst = dwg[g] if c == 0 else part
            xp.matmul(dyt[g * Kg:(g + 1) * Kg], cols[g * R:(g + 1) * R].T, out=dst)
            if c:
                dwg[g] += part


# ----------------------------------------------------------------------- transposed conv2d


def _pad_to(xp, x, fh, fw):
    """x (N, C, H, W) zero-padded at the bottom/right to (N, C, fh, fw)."""
    if (fh, fw) == tuple(x.shape[2:]):
        return x
    return xp.pad(x, ((0, 0), (0, 0), (0, fh - x.shape[2]), (0, fw - x.shape[3])))


class TransposedConv(NamedTuple):
    """A device's transposed convolution (MXNet Deconvolution), composed from its conv2d kernels:
    a transposed conv is the input-gradient of the conv it transposes. Each device's conv.py
    binds ``conv2d_transpose_forward = <its TransposedConv>.forward`` and so on."""
    dev: GemmDevice
    conv2d_forward: Callable
    conv2d_backward_data: Callable
    conv2d_backward_weight: Callable

    def forward(self, x, w, b, stride, pad, dilate, output_padding, groups, out=None):
        """Transposed conv: x (N, C_in, H, W); w (C_in, C_out // groups, kh, kw); b (C_out,) or
        None. Output (N, C_out, OH, OW), OH = (H-1)*sh - 2*ph + dh*(kh-1) + output_padding[0] + 1.
        """
        fn, dev = "conv2d_transpose_forward", self.dev
        x = dev.as_array(fn, "x", x, ndim=4)
        w = dev.as_array(fn, "w", w, x.dtype)
        if w.ndim != 4:
            raise ValueError(f"{fn}: weight must be (C_in, C_out // groups, kh, kw), got shape "
                             f"{_fmt(w.shape)}")
        N, _, H, W = x.shape
        Cin, Cog, kh, kw = w.shape
        OH = conv_transpose_out_size(H, kh, stride[0], pad[0], dilate[0], output_padding[0])
        OW = conv_transpose_out_size(W, kw, stride[1], pad[1], dilate[1], output_padding[1])
        # With output_padding >= stride the forward conv of y would see more
        # positions than x has; those positions get zero gradient.
        x = _pad_to(dev.xp(), x, *conv_out_hw(OH, OW, (kh, kw), stride, pad, dilate))
        y = self.conv2d_backward_data(x, w, (N, Cog * groups, OH, OW), stride, pad, dilate,
                                      groups, out=out)
        if b is not None:
            b = dev.as_array(fn, "b", b, y.dtype)
            if b.shape != (y.shape[1],):
                raise ValueError(f"{fn}: bias has shape {_fmt(b.shape)}, expected ({y.shape[1]},)")
            if y.flags.c_contiguous:
                dev.bias_act(as3d(y), b, False)
            else:
                y += b.reshape(1, -1, 1, 1)
        return y

    def backward_data(self, dy, w, x_shape, stride, pad, dilate, groups, out=None):
        """dx of a transposed conv = the forward conv of dy with the same weight."""
        fn, dev = "conv2d_transpose_backward_data", self.dev
        dy = dev.as_array(fn, "dy", dy)
        x_shape = tuple(int(s) for s in x_shape)
        y = self.conv2d_forward(dy, w, None, stride, pad, dilate, groups)
        if y.shape != x_shape:  # output_padding >= stride: drop the extra positions
            y = y[:, :, :x_shape[2], :x_shape[3]]
        if y.shape != x_shape:
            raise ValueError(f"{fn}: dy of shape {_fmt(dy.shape)} does not produce x_shape "
                             f"{_fmt(x_shape)}")
        if out is None:
            return dev.xp().ascontiguousarray(y)
        dev.check_out(fn, out, x_shape, y.dtype)
        out[...] = y
        return out

    def backward_weight(self, dy, x, w_shape, stride, pad, dilate, groups, out=None):
        """dw of a transposed conv: the weight-gradient of the conv that maps dy to x."""
        fn, dev = "conv2d_transpose_backward_weight", self.dev
        dy = dev.as_array(fn, "dy", dy, ndim=4)
        x = dev.as_array(fn, "x", x, dy.dtype)
        kh, kw = int(w_shape[2]), int(w_shape[3])
        x = _pad_to(dev.xp(), x, *conv_out_hw(dy.shape[2], dy.shape[3], (kh, kw), stride, pad,
                                               dilate))
        return self.conv2d_backward_weight(x, dy, w_shape, stride, pad, dilate, groups, out=out)
