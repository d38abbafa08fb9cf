"""im2col / col2im for NCHW arrays.

Layout (shared by the C++ extension and the Numba fallback):

* ``x``: (N, C, H, W)
* ``cols``: (N, C*kh*kw, OH*OW); row index ``(c*kh + i)*kw + j``;
  ``OH = (H + 2*ph - dh*(kh-1) - 1) // sh + 1`` (same for OW).
* or, with ``merged=True`` (or a 2-D ``out``/``cols``): (C*kh*kw, N*OH*OW), the
  N per-sample matrices side by side, so that one GEMM covers a whole batch
  (much faster than N small GEMMs when OH*OW is small).

``col2im`` zero-fills its output and then adds every column entry back to the
pixel it came from, so it is a pure function (the adjoint of ``im2col``).

The C++ extension (``kernels.cpu._im2col``, built by setup.py) is used when it
imports; otherwise the Numba versions are used, with a one-time warning.
"""
import warnings

import numpy as np
from numba import njit, prange

from kernels.composed.shapes import conv_out_size
from kernels.cpu.parallel import parallel_njit

try:
    from kernels.cpu import _im2col as _ext

    HAVE_CPP_IM2COL = True
except ImportError:  # pragma: no cover - depends on how the package was installed
    _ext = None
    HAVE_CPP_IM2COL = False

_warned = False


# ---------------------------------------------------------------- Numba fallback

conv_out_size_nb = njit(cache=True, inline="always")(conv_out_size)


@njit(cache=True, inline="always")
def _valid_range(size, out_size, s, p, koff):
    # Output positions o in [lo, hi) read input o*s - p + koff inside [0, size).
    first = p - koff
    lo = (first + s - 1) // s if first > 0 else 0
    last = size - 1 + p - koff
    hi = min(out_size, last // s + 1) if last >= 0 else 0
    lo = min(lo, out_size)
    return lo, max(hi, lo)


# The Numba kernels see cols as a C-contiguous 3-D array, (R, N, L) when
# ``merged`` (a reshape of the 2-D merged layout), else (N, R, L), with
# R = C*kh*kw. A runtime flag (rather than a transposed view) keeps it to one
# compiled specialization per dtype.


@parallel_njit(cache=True)
def _im2col_numba(x, kh, kw, sh, sw, ph, pw, dh, dw, cols, merged):
    N, C, H, W = x.shape
    OH = conv_out_size_nb(H, kh, sh, ph, dh)
    OW = conv_out_size_nb(W, kw, sw, pw, dw)
    for p in prange(N * C):
        n = p // C
        c = p % C
        for i in range(kh):
            oh_lo, oh_hi = _valid_range(H, OH, sh, ph, i * dh)
            for j in range(kw):
                ow_lo, ow_hi = _valid_range(W, OW, sw, pw, j * dw)
                r = (c * kh + i) * kw + j
                row = cols[r, n] if merged else cols[n, r]
                row[:] = 0
                iw0 = ow_lo * sw - pw + j * dw
                for oh in range(oh_lo, oh_hi):
                    dst = row[oh * OW + ow_lo:]
                    src = x[n, c, oh * sh - ph + i * dh, iw0:]
                    for t in range(ow_hi - ow_lo):
                        dst[t] = src[t * sw]


@parallel_njit(cache=True)
def _col2im_numba(cols, merged, kh, kw, sh, sw, ph, pw, dh, dw, out):
    N, C, H, W = out.shape
    OH = conv_out_size_nb(H, kh, sh, ph, dh)
    OW = conv_out_size_nb(W, kw, sw, pw, dw)
    for p in prange(N * C):
        n = p // C
        c = p % C
        out[n, c] = 0
        for i in range(kh):
            oh_lo, oh_hi = _valid_range(H, OH, sh, ph, i * dh)
            for j in range(kw):
                ow_lo, ow_hi = _valid_range(W, OW, sw, pw, j * dw)
                r = (c * kh + i) * kw + j
                row = cols[r, n] if merged else cols[n, r]
                iw0 = ow_lo * sw - pw + j * dw
                for oh in range(oh_lo, oh_hi):
                    src = row[oh * OW + ow_lo:]
                    dst = out[n, c, oh * sh - ph + i * dh, iw0:]
                    for t in range(ow_hi - ow_lo):
                        dst[t * sw] += src[t]


def _cols_shape(x_shape, kernel, stride, pad, dilate, merged=False):
    N, C, H, W = x_shape
    OH = conv_out_size(H, kernel[0], stride[0], pad[0], dilate[0])
    OW = conv_out_size(W, kernel[1], stride[1], pad[1], dilate[1])
    R = C * kernel[0] * kernel[1]
    return (R, N * OH * OW) if merged else (N, R, OH * OW)


def _as_3d(cols, n):
    return cols.reshape(cols.shape[0], n, cols.shape[1] // max(n, 1)) if cols.ndim == 2 else cols


def _flat_args(kernel, stride, pad, dilate):
    return (int(kernel[0]), int(kernel[1]), int(stride[0]), int(stride[1]),
            int(pad[0]), int(pad[1]), int(dilate[0]), int(dilate[1]))


def im2col_numba(x, kernel, stride, pad, dilate, out=None, merged=False):
    """Numba im2col (same contract as :func:`im2col`)."""
    x = np.ascontiguousarray(x)
    if out is None:
        out = np.empty(_cols_shape(x.shape, kernel, stride, pad, dilate, merged), x.dtype)
    _im2col_numba(x, *_flat_args(kernel, stride, pad, dilate), _as_3d(out, x.shape[0]),
                  out.ndim == 2)
    return out


def col2im_numba(cols, x_shape, kernel, stride, pad, dilate, out=None):
    """Numba col2im (same contract as :func:`col2im`)."""
    cols = np.ascontiguousarray(cols)
    if out is None:
        out = np.empty(tuple(x_shape), cols.dtype)
    _col2im_numba(_as_3d(cols, x_shape[0]), cols.ndim == 2,
                  *_flat_args(kernel, stride, pad, dilate), out)
    return out


# ---------------------------------------------------------------- public API


def _warn_fallback():
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            "kernels.cpu._im2col (C++ extension) is not built; using the slower Numba "
            "im2col/col2im. Reinstall the package (pip install -e .) to build it.",
            RuntimeWarning,
            stacklevel=3,
        )


def im2col(x, kernel, stride, pad, dilate, out=None, merged=False):
    """Unfold ``x`` (N, C, H, W) into columns (N, C*kh*kw, OH*OW), or
    (C*kh*kw, N*OH*OW) when ``merged`` (or when ``out`` is 2-D).

    ``kernel``, ``stride``, ``pad``, ``dilate`` are (h, w) pairs; ``out`` (if
    given) must be C-contiguous with one of those shapes and ``x``'s dtype.
    """
    if _ext is None:
        _warn_fallback()
        return im2col_numba(x, kernel, stride, pad, dilate, out, merged)
    x = np.ascontiguousarray(x)
    if out is None:
        out = np.empty(_cols_shape(x.shape, kernel, stride, pad, dilate, merged), x.dtype)
    _ext.im2col(x, *_flat_args(kernel, stride, pad, dilate), out)
    return out


def col2im(cols, x_shape, kernel, stride, pad, dilate, out=None):
    """Fold columns (N, C*kh*kw, OH*OW) or merged (C*kh*kw, N*OH*OW) back
    into an (N, C, H, W) array.

    Overlapping windows are summed; ``out`` is fully overwritten (no need to
    zero it first).
    """
    if _ext is None:
        _warn_fallback()
        return col2im_numba(cols, x_shape, kernel, stride, pad, dilate, out)
    cols = np.ascontiguousarray(cols)
    if out is None:
        out = np.empty(tuple(x_shape), cols.dtype)
    _, C, H, W = x_shape
    _ext.col2im(cols, int(C), int(H), int(W), *_flat_args(kernel, stride, pad, dilate), out)
    return out
