"""Pooling kernels (NCHW), forward and backward.

Every 2-D kernel works on the input viewed as ``(N*C, H, W)`` "planes" and runs
``prange`` over the planes: planes are independent, so backward scatters need
no atomics.

Output size (``pool_output_size``):

* floor (default): ``(n + 2p - k) // s + 1``
* ``ceil_mode=True`` (MXNet ``pooling_convention='full'``): ``ceil((n + 2p - k) / s) + 1``,
  minus one if the last window would start in the right padding (PyTorch's rule), so
  every window starts inside the input or the left padding.

Max pooling: padding counts as -inf; the index output is an int32 flat index into
``H*W`` of the first maximum in row-major window order (NaN propagates, like
PyTorch). Backward scatters ``dy`` through the index (we keep the index instead of
recomputing from ``x``: the index is 1/4 of ``x``'s bytes for 2x2 pooling in
float32, and the backward then never reads ``x``).

Average pooling divisor: with ``count_include_pad=True`` the window clipped to the
padded input (``min(start + k, n + p) - start``, as PyTorch and MXNet), else the
number of real input elements in the window.
"""
import numpy as np
from numba import njit, prange

from kernels.composed.shapes import pool_out_hw as _out_hw, pool_output_size
from kernels.composed.pool import pair as _pair

from .parallel import twin
from .vecmath import FAST

__all__ = [
    "pool_output_size", "pool2d_forward",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
]


# ----------------------------------------------------------------------------- helpers

def _planes(x):
    """Contiguous (N*C, H, W) view (copy only if x is not C-contiguous)."""
    x = np.ascontiguousarray(x)
    return x.reshape(-1, x.shape[-2], x.shape[-1])


def _buffer(out, shape, dtype):
    """Caller's out buffer (must be C-contiguous so reshapes stay views) or a new one."""
    if out is None:
        return np.empty(shape, dtype)
    if not out.flags.c_contiguous:
        raise ValueError("pool kernels need a C-contiguous out buffer")
    return out


# ----------------------------------------------------------------------------- Numba kernels

@njit(cache=True, fastmath=FAST, error_model="numpy")
def _window_max(xp, h0, h1, w0, w1):
    """Max of plane xp[h0:h1, w0:w1] and the flat index of its first occurrence in
    row-major order; NaN wins (the last NaN, PyTorch's rule); empty window: (-inf, -1)."""
    if h0 >= h1 or w0 >= w1:  # only when pad > kernel / 2
        return xp.dtype.type(-np.inf), -1
    W = xp.shape[1]
    m, best, nan = xp[h0, w0], h0 * W + w0, False
    for h in range(h0, h1):
        row = xp[h]
        for w in range(w0, w1):
            v = row[w]
            t = v > m  # strict: ties keep the first index
            m = v if t else m
            best = h * W + w if t else best
            nan |= v != v  # NaN compares false above; a separate flag keeps the loop
            #                branch-free (testing it in `t` made 3x3 pooling 3.5x slower)
    if nan:
        for h in range(h0, h1):
            for w in range(w0, w1):
                if xp[h, w] != xp[h, w]:
                    m, best = xp[h, w], h * W + w
    return m, best


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _max_pool_kernel(x, kh, kw, sh, sw, ph, pw, y, idx, want_index):
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        xp = x[p]
        for oh in range(OH):
            hs = oh * sh - ph
            h0, h1 = max(hs, 0), min(hs + kh, H)
            for ow in range(OW):
                ws = ow * sw - pw
                m, best = _window_max(xp, h0, h1, max(ws, 0), min(ws + kw, W))
                y[p, oh, ow] = m
                if want_index:
                    idx[p, oh, ow] = best


@twin(cache=True)
def _max_pool_2x2_kernel(x, y, idx, want_index):
    # 2x2 stride 2 no padding, every window complete: the common CNN case, unrolled.
    # (`or v != v` inline is fine here: this form measured 2.2x faster than the
    # NaN-flag form _window_max needs for its loops.)
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            r = 2 * oh
            for ow in range(OW):
                c = 2 * ow
                m = x[p, r, c]
                k = 0
                v = x[p, r, c + 1]
                if v > m or v != v:
                    m, k = v, 1
                v = x[p, r + 1, c]
                if v > m or v != v:
                    m, k = v, 2
                v = x[p, r + 1, c + 1]
                if v > m or v != v:
                    m, k = v, 3
                y[p, oh, ow] = m
                if want_index:
                    idx[p, oh, ow] = (r + (k >> 1)) * W + c + (k & 1)


@twin(cache=True)
def _max_pool_backward_kernel(dy, idx, dx):
    # dy, idx: (P, OH*OW); dx: (P, H*W). Zeroing per plane keeps it in cache for the scatter.
    P, L = dy.shape
    for p in prange(P):
        dx[p, :] = 0
        for j in range(L):
            i = idx[p, j]
            if i >= 0:
                dx[p, i] += dy[p, j]


@njit(cache=True)
def _avg_divisor(h0, w0, kh, kw, H, W, ph, pw, include_pad):
    h1 = min(h0 + kh, H + ph)
    w1 = min(w0 + kw, W + pw)
    if include_pad:
        return (h1 - h0) * (w1 - w0)
    return max(min(h1, H) - max(h0, 0), 0) * max(min(w1, W) - max(w0, 0), 0)


@twin(cache=True)
def _avg_pool_kernel(x, kh, kw, sh, sw, ph, pw, include_pad, y):
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            hs = oh * sh - ph
            h0, h1 = max(hs, 0), min(hs + kh, H)
            for ow in range(OW):
                ws = ow * sw - pw
                w0, w1 = max(ws, 0), min(ws + kw, W)
                s = 0.0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        s += x[p, h, w]
                div = _avg_divisor(hs, ws, kh, kw, H, W, ph, pw, include_pad)
                y[p, oh, ow] = s / div if div > 0 else 0.0


@twin(cache=True)
def _avg_pool_backward_kernel(dy, kh, kw, sh, sw, ph, pw, include_pad, dx):
    P, H, W = dx.shape
    OH, OW = dy.shape[1], dy.shape[2]
    for p in prange(P):
        dx[p] = 0
        for oh in range(OH):
            hs = oh * sh - ph
            h0, h1 = max(hs, 0), min(hs + kh, H)
            for ow in range(OW):
                ws = ow * sw - pw
                w0, w1 = max(ws, 0), min(ws + kw, W)
                div = _avg_divisor(hs, ws, kh, kw, H, W, ph, pw, include_pad)
                if div <= 0:
                    continue
                g = dy[p, oh, ow] / div
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        dx[p, h, w] += g


@twin(cache=True)
def _adaptive_avg_kernel(x, y):
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0, h1 = (oh * H) // OH, -(-((oh + 1) * H) // OH)
            for ow in range(OW):
                w0, w1 = (ow * W) // OW, -(-((ow + 1) * W) // OW)
                s = 0.0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        s += x[p, h, w]
                y[p, oh, ow] = s / ((h1 - h0) * (w1 - w0))


@twin(cache=True)
def _adaptive_avg_backward_kernel(dy, dx):
    P, H, W = dx.shape
    OH, OW = dy.shape[1], dy.shape[2]
    for p in prange(P):
        dx[p] = 0
        for oh in range(OH):
            h0, h1 = (oh * H) // OH, -(-((oh + 1) * H) // OH)
            for ow in range(OW):
                w0, w1 = (ow * W) // OW, -(-((ow + 1) * W) // OW)
                g = dy[p, oh, ow] / ((h1 - h0) * (w1 - w0))
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        dx[p, h, w] += g


# ----------------------------------------------------------------------------- 2-D API

def max_pool2d_forward(x, kernel, stride, pad=0, ceil_mode=False, out=None, out_index=None):
    """Max pooling of NCHW x; returns (y, idx) with idx int32 flat indices into H*W."""
    kernel, stride, pad = _pair(kernel), _pair(stride), _pair(pad)
    N, C, H, W = x.shape
    OH, OW = _out_hw(x.shape, kernel, stride, pad, ceil_mode)
    y = _buffer(out, (N, C, OH, OW), x.dtype)
    idx = _buffer(out_index, (N, C, OH, OW), np.int32)
    _max_pool_planes(_planes(x), kernel, stride, pad, y.reshape(N * C, OH, OW),
                     idx.reshape(N * C, OH, OW), True)
    return y, idx


def _max_pool_planes(x3, kernel, stride, pad, y3, idx3, want_index):
    H, W = x3.shape[1:]
    OH, OW = y3.shape[1:]
    if kernel == (2, 2) and stride == (2, 2) and pad == (0, 0) and OH == H // 2 and OW == W // 2:
        _max_pool_2x2_kernel(x3, y3, idx3, want_index)
    else:
        _max_pool_kernel(x3, *kernel, *stride, *pad, y3, idx3, want_index)


def max_pool2d_backward(dy, idx, x_shape, out=None):
    """Gradient of max pooling: scatter-add dy into a zeroed x_shape array at idx."""
    N, C, H, W = x_shape
    dx = _buffer(out, tuple(x_shape), dy.dtype)
    P = N * C
    L = dy.shape[2] * dy.shape[3]
    if idx.size and int(idx.max()) >= H * W:
        # the kernel scatters at idx unchecked; a saved argmax that does not fit x_shape
        # (a tampered graph) must not write past dx
        raise ValueError(f"argmax index {int(idx.max())} is out of range for a {H}x{W} input")
    _max_pool_backward_kernel(np.ascontiguousarray(dy).reshape(P, L),
                              np.ascontiguousarray(idx).reshape(P, L), dx.reshape(P, H * W))
    return dx


def avg_pool2d_forward(x, kernel, stride, pad=0, ceil_mode=False, count_include_pad=True,
                       out=None):
    """Average pooling of NCHW x."""
    kernel, stride, pad = _pair(kernel), _pair(stride), _pair(pad)
    N, C, H, W = x.shape
    OH, OW = _out_hw(x.shape, kernel, stride, pad, ceil_mode)
    y = _buffer(out, (N, C, OH, OW), x.dtype)
    _avg_pool_kernel(_planes(x), *kernel, *stride, *pad, bool(count_include_pad),
                     y.reshape(N * C, OH, OW))
    return y


def avg_pool2d_backward(dy, x_shape, kernel, stride, pad=0, ceil_mode=False,
                        count_include_pad=True, out=None):
    """Gradient of average pooling: each dy spread evenly (1/divisor) over its window."""
    kernel, stride, pad = _pair(kernel), _pair(stride), _pair(pad)
    N, C, H, W = x_shape
    dx = _buffer(out, tuple(x_shape), dy.dtype)
    _avg_pool_backward_kernel(_planes(dy), *kernel, *stride, *pad, bool(count_include_pad),
                              dx.reshape(N * C, H, W))
    return dx


def pool2d_forward(x, kernel, stride, pad=0, pool_type="max", ceil_mode=False,
                   count_include_pad=True, out=None):
    """Max or avg pooling of NCHW x returning only y (no index: the inference path)."""
    if pool_type == "avg":
        return avg_pool2d_forward(x, kernel, stride, pad, ceil_mode, count_include_pad, out)
    if pool_type != "max":
        raise ValueError(f"pool_type must be 'max' or 'avg', got {pool_type!r}")
    kernel, stride, pad = _pair(kernel), _pair(stride), _pair(pad)
    N, C, H, W = x.shape
    OH, OW = _out_hw(x.shape, kernel, stride, pad, ceil_mode)
    y = _buffer(out, (N, C, OH, OW), x.dtype)
    dummy = np.empty((0, 0, 0), np.int32)
    _max_pool_planes(_planes(x), kernel, stride, pad, y.reshape(N * C, OH, OW), dummy, False)
    return y


def adaptive_avg_pool2d_forward(x, out_size, out=None):
    """Adaptive average pooling to out_size=(oh, ow); windows [floor(i*H/oh), ceil((i+1)*H/oh))."""
    OH, OW = _pair(out_size)
    N, C, H, W = x.shape
    y = _buffer(out, (N, C, OH, OW), x.dtype)
    _adaptive_avg_kernel(_planes(x), y.reshape(N * C, OH, OW))
    return y


def adaptive_avg_pool2d_backward(dy, x_shape, out=None):
    """Gradient of adaptive average pooling (output size taken from dy)."""
    N, C, H, W = x_shape
    dx = _buffer(out, tuple(x_shape), dy.dtype)
    _adaptive_avg_backward_kernel(_planes(dy), dx.reshape(N * C, H, W))
    return dx

