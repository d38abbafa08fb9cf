"""Batch, layer and instance normalization on CuPy arrays, forward and backward: the GPU
twin of ``kernels/cpu/norm.py`` (same functions, arguments, returns and formulas;
statistics accumulate in double and are returned in x's dtype).

Batch norm views x as (outer, C, inner) and runs two kernels per pass (norm.cu): a
per-channel reduction (one block per channel for inner > 1, 32-channel column tiles
for the channel-last (N, C) case) that writes the statistics and per-channel
coefficients, then one elementwise kernel over x. Layer and instance norm are one
block per row of an (R, K) view; layer-norm parameter gradients are column sums
over row slices (partials in float64, added here).
"""
import numpy as np

from kernels.composed.shapes import split_axis

from . import _runtime as rt
from ._util import (as_dtype, dummy, fmt_shape, out_buffer, outs, require_device,
                    require_float)

__all__ = [
    "batch_norm_train_forward", "batch_norm_infer_forward", "batch_norm_backward",
    "batch_norm_update_running",
    "layer_norm_forward", "layer_norm_backward",
    "instance_norm_forward", "instance_norm_backward",
]

_k = rt.Family("norm")
_TILE_BLOCK = 256  # threads of the column-tile kernels: 32 columns x 8 row groups


# ----------------------------------------------------------------------------- helpers

def _param(fn, name, p, n, value, dtype):
    """gamma/beta (or a statistic) as a contiguous (n,) vector of ``dtype``; None
    means all ``value`` (only where the CPU kernel allows None)."""
    if p is None:
        if value is None:
            raise ValueError(f"{fn}: {name} is required")
        return rt.xp().full(n, value, dtype)
    require_device(fn, name, p)
    if p.size != n:
        raise ValueError(f"{fn}: {name} has shape {fmt_shape(p.shape)}, expected ({n},)")
    return as_dtype(fn, name, p, dtype).reshape(n)


def _like(fn, name, a, ref):
    """``a`` as a contiguous array of ref's shape and dtype (dy next to x)."""
    require_device(fn, name, a)
    if a.shape != ref.shape:
        raise ValueError(f"{fn}: {name} has shape {fmt_shape(a.shape)}, expected "
                         f"{fmt_shape(ref.shape)}")
    return as_dtype(fn, name, a, ref.dtype)


def _tiles(n):
    return -(-n // 32)


# ----------------------------------------------------------------------------- batch norm API

def batch_norm_train_forward(x, gamma, beta, eps=1e-5, axis=1, out=None):
    """Normalize with batch statistics over all axes but `axis`; returns (y, mean, invstd).

    gamma/beta: (C,) or None (1 / 0). out: optional (y, mean, invstd) buffers.
    """
    fn = "batch_norm_train_forward"
    require_float(fn, "x", x)
    x = as_dtype(fn, "x", x, x.dtype)
    outer, C, inner = split_axis(x.shape, axis, fn)
    y_buf, m_buf, s_buf = outs(out, 3)
    y = out_buffer(fn, y_buf, x.shape, x.dtype, "out[0] (y)")
    mean = out_buffer(fn, m_buf, (C,), x.dtype, "out[1] (mean)")
    invstd = out_buffer(fn, s_buf, (C,), x.dtype, "out[2] (invstd)")
    g, b = _param(fn, "gamma", gamma, C, 1, x.dtype), _param(fn, "beta", beta, C, 0, x.dtype)
    coef = rt.xp().empty(2 * C, x.dtype)  # a = gamma*invstd, b = beta
    if inner == 1:
        _k.launch("bn_stats_cols", x.dtype, _tiles(C), _TILE_BLOCK, x, g, b, mean, invstd, coef,
                  outer, C, float(eps))
    else:
        _k.launch("bn_stats_planes", x.dtype, C, rt.reduce_block(outer * inner), x, g, b, mean,
                  invstd, coef, outer, C, inner, float(eps))
    _k.launch_1d("channel_affine", x.dtype, x.size, x, coef[:C], coef[C:], mean, y, outer, C,
                 inner, 1)
    return y, mean, invstd


def batch_norm_infer_forward(x, gamma, beta, running_mean, running_var, eps=1e-5, axis=1,
                             out=None):
    """Normalize with running statistics: (x - rm) / sqrt(rv + eps) * gamma + beta."""
    fn = "batch_norm_infer_forward"
    require_float(fn, "x", x)
    x = as_dtype(fn, "x", x, x.dtype)
    outer, C, inner = split_axis(x.shape, axis, fn)
    y = out_buffer(fn, out, x.shape, x.dtype)
    g, b = _param(fn, "gamma", gamma, C, 1, x.dtype), _param(fn, "beta", beta, C, 0, x.dtype)
    rm = _param(fn, "running_mean", running_mean, C, None, x.dtype)
    rv = _param(fn, "running_var", running_var, C, None, x.dtype)
    coef = rt.xp().empty(2 * C, x.dtype)
    _k.launch_1d("bn_infer_coef", x.dtype, C, g, b, rm, rv, coef[:C], coef[C:], C, float(eps))
    _k.launch_1d("channel_affine", x.dtype, x.size, x, coef[:C], coef[C:], dummy(x.dtype), y,
                 outer, C, inner, 0)
    return y


def batch_norm_backward(dy, x, gamma, mean, invstd, axis=1, out=None):
    """Gradients of training-mode batch norm; returns (dx, dgamma, dbeta) in x's dtype."""
    fn = "batch_norm_backward"
    require_float(fn, "x", x)
    x = as_dtype(fn, "x", x, x.dtype)
    dy = _like(fn, "dy", dy, x)
    outer, C, inner = split_axis(x.shape, axis, fn)
    dx_buf, dg_buf, db_buf = outs(out, 3)
    dx = out_buffer(fn, dx_buf, x.shape, x.dtype, "out[0] (dx)")
    dgamma = out_buffer(fn, dg_buf, (C,), x.dtype, "out[1] (dgamma)")
    dbeta = out_buffer(fn, db_buf, (C,), x.dtype, "out[2] (dbeta)")
    g = _param(fn, "gamma", gamma, C, 1, x.dtype)
    mean = _param(fn, "mean", mean, C, None, x.dtype)
    invstd = _param(fn, "invstd", invstd, C, None, x.dtype)
    coef = rt.xp().empty(3 * C, x.dtype)  # dx = k1*dy + k2*(x - mean) + k3
    args = (dy, x, g, mean, invstd, dgamma, dbeta, coef)
    if inner == 1:
        _k.launch("bn_backward_cols", x.dtype, _tiles(C), _TILE_BLOCK, *args, outer, C)
    else:
        _k.launch("bn_backward_planes", x.dtype, C, rt.reduce_block(outer * inner), *args, outer,
                  C, inner)
    _k.launch_1d("bn_backward_apply", x.dtype, x.size, dy, x, mean, coef, dx, outer, C, inner)
    return dx, dgamma, dbeta


def batch_norm_update_running(running_mean, running_var, mean, invstd, eps, momentum=0.9):
    """In-place MXNet-style update: running = momentum*running + (1-momentum)*batch.

    The batch variance is the biased one recovered from invstd (1/invstd**2 - eps).
    One kernel when the running buffers are contiguous and of one float dtype; else
    the CPU module's array arithmetic.
    """
    fn = "batch_norm_update_running"
    xp = rt.xp()
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        require_device(fn, name, a)
    rm, rv = running_mean, running_var
    C = rm.size
    if (rm.dtype in rt.FLOAT_DTYPES and rv.dtype == rm.dtype and rv.size == C
            and rm.flags.c_contiguous and rv.flags.c_contiguous):
        m = _param(fn, "mean", mean, C, None, rm.dtype)
        s = _param(fn, "invstd", invstd, C, None, rm.dtype)
        _k.launch_1d("bn_update_running", rm.dtype, C, rm.reshape(C), rv.reshape(C), m, s, C,
                     float(eps), float(momentum))
        return rm, rv
    var = 1.0 / xp.square(xp.asarray(invstd, np.float64)) - eps
    rm *= momentum
    rm += (1.0 - momentum) * xp.asarray(mean, np.float64)
    rv *= momentum
    rv += (1.0 - momentum) * var
    return rm, rv


# ----------------------------------------------------------------------------- layer norm API

def _rows_view(a, axis):
    """(R, K) contiguous array with `axis` last (a copy only when axis is not last)."""
    xp = rt.xp()
    if axis % a.ndim != a.ndim - 1:
        a = xp.moveaxis(a, axis, -1)
    a = xp.ascontiguousarray(a)
    return a.reshape(-1, a.shape[-1])


def _rows_out(fn, buf, shape, dtype, name, last):
    """Where a rows kernel writes: a view of the caller's buffer when the normalized
    axis is last (the buffer must then be contiguous), else a fresh array that is
    moved into the buffer afterwards."""
    if buf is None or not last:
        if buf is not None and (tuple(buf.shape) != tuple(shape) or buf.dtype != dtype):
            raise ValueError(f"{fn}: {name} has shape {fmt_shape(buf.shape)} and dtype "
                             f"{buf.dtype}, expected {fmt_shape(shape)} and {dtype}")
        return None
    return out_buffer(fn, buf, shape, dtype, name)


def _from_rows(res2, shape, ax, buf):
    """(R, K) rows result back to ``shape`` with the normalized axis at ``ax``; ``buf``
    is the caller's output buffer (already holding the result when ``ax`` is last)."""
    if ax == len(shape) - 1:
        return buf if buf is not None else res2.reshape(shape)
    kept = tuple(shape[:ax]) + tuple(shape[ax + 1:])
    moved = rt.xp().moveaxis(res2.reshape(kept + (shape[ax],)), -1, ax)
    if buf is None:
        return moved
    buf[...] = moved
    return buf


def _axis(fn, x, axis):
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{fn}: axis {axis} is out of range for shape {fmt_shape(x.shape)}")
    return axis % x.ndim


def layer_norm_forward(x, gamma, beta, axis=-1, eps=1e-5, out=None):
    """Normalize over one axis; returns (y, mean, invstd), stats shaped x.shape minus axis.

    gamma/beta: (x.shape[axis],) or None. Non-last axes are handled by a transposed copy.
    """
    fn = "layer_norm_forward"
    require_float(fn, "x", x)
    x = as_dtype(fn, "x", x, x.dtype)
    ax = _axis(fn, x, axis)
    K = x.shape[ax]
    stat_shape = x.shape[:ax] + x.shape[ax + 1:]
    y_buf, m_buf, s_buf = outs(out, 3)
    mean = out_buffer(fn, m_buf, stat_shape, x.dtype, "out[1] (mean)")
    invstd = out_buffer(fn, s_buf, stat_shape, x.dtype, "out[2] (invstd)")
    y = _rows_out(fn, y_buf, x.shape, x.dtype, "out[0] (y)", ax == x.ndim - 1)
    x2 = _rows_view(x, ax)
    R = x2.shape[0]
    y2 = rt.xp().empty(x2.shape, x.dtype) if y is None else y.reshape(x2.shape)
    g, b = _param(fn, "gamma", gamma, K, 1, x.dtype), _param(fn, "beta", beta, K, 0, x.dtype)
    _k.launch_rows("rows_norm_forward", x.dtype, R, K, x2, g, b, y2, mean.reshape(R),
                   invstd.reshape(R), R, K, K, 0, float(eps))
    return _from_rows(y2, x.shape, ax, y_buf), mean, invstd


def layer_norm_backward(dy, x, gamma, mean, invstd, axis=-1, out=None):
    """Gradients of layer norm; returns (dx, dgamma, dbeta)."""
    fn = "layer_norm_backward"
    xp = rt.xp()
    require_float(fn, "x", x)
    x = as_dtype(fn, "x", x, x.dtype)
    ax = _axis(fn, x, axis)
    K = x.shape[ax]
    dx_buf, dg_buf, db_buf = outs(out, 3)
    x2, dy2 = _rows_view(x, ax), _rows_view(_like(fn, "dy", dy, x), ax)
    R = x2.shape[0]
    dx = _rows_out(fn, dx_buf, x.shape, x.dtype, "out[0] (dx)", ax == x.ndim - 1)
    dx2 = xp.empty(x2.shape, x.dtype) if dx is None else dx.reshape(x2.shape)
    mean = _param(fn, "mean", mean, R, None, x.dtype)
    invstd = _param(fn, "invstd", invstd, R, None, x.dtype)
    unused = dummy(np.float64)  # row partials: instance norm only
    _k.launch_rows("rows_norm_backward", x.dtype, R, K, dy2, x2,
                   _param(fn, "gamma", gamma, K, 1, x.dtype), mean, invstd, dx2, unused, unused,
                   R, K, K, 0)
    # column sums over row slices: enough blocks for the GPU, >= 32 rows per slice
    parts = int(max(1, min(-(-R // 32), 256 // _tiles(K))))
    pg, pb = xp.empty((parts, K), np.float64), xp.empty((parts, K), np.float64)
    _k.launch("ln_param_grad", x.dtype, (_tiles(K), parts), _TILE_BLOCK, dy2, x2, mean, invstd,
              pg, pb, R, K, parts)
    dgamma = out_buffer(fn, dg_buf, (K,), x.dtype, "out[1] (dgamma)")
    dbeta = out_buffer(fn, db_buf, (K,), x.dtype, "out[2] (dbeta)")
    dgamma[...] = pg.sum(0)
    dbeta[...] = pb.sum(0)
    return _from_rows(dx2, x.shape, ax, dx_buf), dgamma, dbeta


# ----------------------------------------------------------------------------- instance norm API

def _instance_rows(fn, x):
    """x (N, C, ...) as contiguous (N*C, K) rows."""
    require_float(fn, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{fn}: x must be (N, C, ...), got shape {fmt_shape(x.shape)}")
    x = as_dtype(fn, "x", x, x.dtype)
    N, C = x.shape[:2]
    K = x.size // (N * C) if N * C else 0
    return x, N, C, x.reshape(N * C, K)


def instance_norm_forward(x, gamma, beta, eps=1e-5, out=None):
    """Normalize each (n, c) over the spatial axes of (N, C, ...) x; returns (y, mean, invstd)
    with (N, C) statistics. gamma/beta: (C,) or None."""
    fn = "instance_norm_forward"
    x, N, C, x2 = _instance_rows(fn, x)
    y_buf, m_buf, s_buf = outs(out, 3)
    y = out_buffer(fn, y_buf, x.shape, x.dtype, "out[0] (y)")
    mean = out_buffer(fn, m_buf, (N, C), x.dtype, "out[1] (mean)")
    invstd = out_buffer(fn, s_buf, (N, C), x.dtype, "out[2] (invstd)")
    R, K = x2.shape
    g, b = _param(fn, "gamma", gamma, C, 1, x.dtype), _param(fn, "beta", beta, C, 0, x.dtype)
    _k.launch_rows("rows_norm_forward", x.dtype, R, K, x2, g, b, y.reshape(R, K), mean.reshape(R),
                   invstd.reshape(R), R, K, C, 1, float(eps))
    return y, mean, invstd


def instance_norm_backward(dy, x, gamma, mean, invstd, out=None):
    """Gradients of instance norm; returns (dx, dgamma, dbeta)."""
    fn = "instance_norm_backward"
    xp = rt.xp()
    x, N, C, x2 = _instance_rows(fn, x)
    R, K = x2.shape
    dy2 = _like(fn, "dy", dy, x).reshape(R, K)
    dx_buf, dg_buf, db_buf = outs(out, 3)
    dx = out_buffer(fn, dx_buf, x.shape, x.dtype, "out[0] (dx)")
    pg, pb = xp.empty(R, np.float64), xp.empty(R, np.float64)  # per-row dgamma/dbeta parts
    _k.launch_rows("rows_norm_backward", x.dtype, R, K, dy2, x2,
                   _param(fn, "gamma", gamma, C, 1, x.dtype),
                   _param(fn, "mean", mean, R, None, x.dtype),
                   _param(fn, "invstd", invstd, R, None, x.dtype), dx.reshape(R, K), pb, pg,
                   R, K, C, 1)
    dgamma = out_buffer(fn, dg_buf, (C,), x.dtype, "out[1] (dgamma)")
    dbeta = out_buffer(fn, db_buf, (C,), x.dtype, "out[2] (dbeta)")
    dgamma[...] = pg.reshape(N, C).sum(0)
    dbeta[...] = pb.reshape(N, C).sum(0)
    return dx, dgamma, dbeta
