"""Batch, layer and instance normalization kernels, forward and backward.

Notation: ``xhat = (x - mean) * invstd``, ``invstd = 1 / sqrt(var + eps)`` with the
biased variance (divide by the count). Statistics are accumulated in float64 and
returned in x's dtype.

Backward (one kernel per norm; per group of M normalized elements):
``dbeta = sum(dy)``, ``dgamma = sum(dy * xhat)``,
``dx = gamma * invstd * (dy - dbeta / M - xhat * dgamma / M)``.

Batch norm views x as ``(outer, C, inner)`` with C the channel ``axis`` and reduces
over outer and inner. Two layouts:

* ``inner > 1`` (NCHW): one thread per channel, sweeping contiguous ``x[o, c, :]`` rows;
  the channel's data (200 KB for (64, C, 28, 28) float32) stays in L2 between passes.
* ``inner == 1`` ((N, C), channel-last): one thread per block of channels, sweeping
  contiguous ``x[n, c0:c1]`` row pieces.

Running statistics are the caller's job (``batch_norm_update_running``), MXNet style:
``running = momentum * running + (1 - momentum) * batch``, using the *biased* batch
variance (MXNet updates moving_var with the variance it normalized with; PyTorch uses
the unbiased one, ``var * M / (M - 1)``).
"""

import numpy as np
from numba import get_num_threads, njit, prange

from kernels.composed.shapes import split_axis

from .parallel import twin
from .vecmath import FAST, radd

__all__ = [
    "batch_norm_train_forward", "batch_norm_infer_forward", "batch_norm_backward",
    "batch_norm_update_running",
    "layer_norm_forward", "layer_norm_backward",
    "instance_norm_forward", "instance_norm_backward",
]

_COLS = 64  # channels per task in the channel-last (inner == 1) batch-norm kernels


# ----------------------------------------------------------------------------- helpers

def _buffer(out, shape, dtype):
    if out is None:
        return np.empty(shape, dtype)
    if not out.flags.c_contiguous:
        raise ValueError("norm kernels need C-contiguous out buffers")
    return out


def _outs(out, n):
    return (None,) * n if out is None else out


def _param(p, n, value, dtype):
    """gamma/beta as a contiguous vector of x's dtype; None means all `value`."""
    if p is None:
        return np.full(n, value, dtype)
    return np.ascontiguousarray(p, dtype=dtype).reshape(n)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _sum(a):
    s = 0.0
    for k in range(a.shape[0]):
        s = radd(s, a[k])
    return s


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _sq_dev(a, mu):
    q = 0.0
    for k in range(a.shape[0]):
        d = a[k] - mu
        q = radd(q, d * d)
    return q


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _dot_dev(g, a, mu):
    """sum(g * (a - mu))"""
    q = 0.0
    for k in range(a.shape[0]):
        q = radd(q, g[k] * (a[k] - mu))
    return q


# ----------------------------------------------------------------------------- batch norm kernels

@twin(cache=True, fastmath=FAST, error_model="numpy")
def _bn_fwd_planes(x, gamma, beta, eps, y, mean, invstd):
    O, C, I = x.shape
    M = O * I
    for c in prange(C):
        s = 0.0
        for o in range(O):
            s += _sum(x[o, c])
        mu = s / M
        q = 0.0
        for o in range(O):
            q += _sq_dev(x[o, c], mu)
        inv = 1.0 / np.sqrt(q / M + eps)
        mean[c], invstd[c] = mu, inv
        # the elementwise pass runs in x's dtype (mixed float32/64 would not vectorize);
        # x - m rather than x * a + (beta - m * a) keeps float32 accurate for large means
        t = x.dtype.type
        m, a, b = t(mu), t(gamma[c] * inv), t(beta[c])
        for o in range(O):
            xr, yr = x[o, c], y[o, c]
            for i in range(I):
                yr[i] = (xr[i] - m) * a + b


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _bn_fwd_cols(x, gamma, beta, eps, y, mean, invstd, B):
    N, C = x.shape
    for t in prange((C + B - 1) // B):
        c0, c1 = t * B, min(t * B + B, C)
        s = np.zeros(c1 - c0)
        for n in range(N):
            xr = x[n, c0:c1]
            for j in range(s.shape[0]):
                s[j] += xr[j]
        mu = s / N
        q = np.zeros(c1 - c0)
        for n in range(N):
            xr = x[n, c0:c1]
            for j in range(q.shape[0]):
                d = xr[j] - mu[j]
                q[j] += d * d
        inv = 1.0 / np.sqrt(q / N + eps)
        mean[c0:c1] = mu
        invstd[c0:c1] = inv
        m, a, b = mean[c0:c1], (gamma[c0:c1] * inv).astype(x.dtype), beta[c0:c1]
        for n in range(N):
            xr, yr = x[n, c0:c1], y[n, c0:c1]
            for j in range(a.shape[0]):
                yr[j] = (xr[j] - m[j]) * a[j] + b[j]


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _affine(x, a, b, y):
    # y[o, c, i] = x[o, c, i] * a[c] + b[c]; a, b have x's dtype
    O, C, I = x.shape
    for t in prange(O * C):
        o, c = t // C, t % C
        xr, yr, ac, bc = x[o, c], y[o, c], a[c], b[c]
        for i in range(I):
            yr[i] = xr[i] * ac + bc


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _bn_bwd_planes(dy, x, gamma, mean, invstd, dx, dgamma, dbeta):
    O, C, I = x.shape
    M = O * I
    for c in prange(C):
        mu, inv = mean[c], invstd[c]
        sg, sgx = 0.0, 0.0
        for o in range(O):
            sg += _sum(dy[o, c])
            sgx += _dot_dev(dy[o, c], x[o, c], mu)
        dbeta[c], dgamma[c] = sg, sgx * inv
        # dx = k1 * dy + k2 * (x - mu) + k3, elementwise in x's dtype
        t = x.dtype.type
        k1 = gamma[c] * inv
        k2, k3 = t(-k1 * inv * inv * sgx / M), t(-k1 * sg / M)
        k1, m = t(k1), t(mu)
        for o in range(O):
            g, xr, d = dy[o, c], x[o, c], dx[o, c]
            for i in range(I):
                d[i] = k1 * g[i] + k2 * (xr[i] - m) + k3


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _bn_bwd_cols(dy, x, gamma, mean, invstd, dx, dgamma, dbeta, B):
    N, C = x.shape
    for t in prange((C + B - 1) // B):
        c0, c1 = t * B, min(t * B + B, C)
        mu, inv = mean[c0:c1], invstd[c0:c1]
        sg, sgx = np.zeros(c1 - c0), np.zeros(c1 - c0)
        for n in range(N):
            g, xr = dy[n, c0:c1], x[n, c0:c1]
            for j in range(sg.shape[0]):
                sg[j] += g[j]
                sgx[j] += g[j] * (xr[j] - mu[j])
        dbeta[c0:c1] = sg
        dgamma[c0:c1] = sgx * inv
        k1 = gamma[c0:c1] * inv
        k2, k3 = (-k1 * inv * inv * sgx / N).astype(x.dtype), (-k1 * sg / N).astype(x.dtype)
        k1 = k1.astype(x.dtype)
        for n in range(N):
            g, xr, d = dy[n, c0:c1], x[n, c0:c1], dx[n, c0:c1]
            for j in range(sg.shape[0]):
                d[j] = k1[j] * g[j] + k2[j] * (xr[j] - mu[j]) + k3[j]


# ----------------------------------------------------------------------------- batch norm API

def batch_norm_train_forward(x, gamma, beta, eps=1e-5, axis=1, out=None):
    """Normalize with batch statistics over all axes but `axis`; returns (y, mean, invstd).

    gamma/beta: (C,) or None (1 / 0). out: optional (y, mean, invstd) buffers.
    """
    outer, C, inner = split_axis(x.shape, axis, "batch_norm_train_forward")
    y_buf, m_buf, s_buf = _outs(out, 3)
    y = _buffer(y_buf, x.shape, x.dtype)
    mean, invstd = _buffer(m_buf, (C,), x.dtype), _buffer(s_buf, (C,), x.dtype)
    g, b = _param(gamma, C, 1, x.dtype), _param(beta, C, 0, x.dtype)
    xc = np.ascontiguousarray(x)
    if inner == 1:
        _bn_fwd_cols(xc.reshape(outer, C), g, b, float(eps), y.reshape(outer, C), mean, invstd,
                     _COLS)
    else:
        _bn_fwd_planes(xc.reshape(outer, C, inner), g, b, float(eps),
                       y.reshape(outer, C, inner), mean, invstd)
    return y, mean, invstd


def batch_norm_infer_forward(x, gamma, beta, running_mean, running_var, eps=1e-5, axis=1,
                             out=None):
    """Normalize with running statistics: (x - rm) / sqrt(rv + eps) * gamma + beta."""
    outer, C, inner = split_axis(x.shape, axis, "batch_norm_infer_forward")
    y = _buffer(out, x.shape, x.dtype)
    g = _param(gamma, C, 1, np.float64)
    a = g / np.sqrt(np.asarray(running_var, np.float64).reshape(C) + eps)
    b = _param(beta, C, 0, np.float64) - np.asarray(running_mean, np.float64).reshape(C) * a
    a, b = a.astype(x.dtype), b.astype(x.dtype)
    xc = np.ascontiguousarray(x)
    if inner == 1:  # (N, C): NumPy broadcasting is already a vectorized row loop
        np.multiply(xc.reshape(outer, C), a, out=y.reshape(outer, C))
        y.reshape(outer, C)[...] += b
    else:
        _affine(xc.reshape(outer, C, inner), a, b, y.reshape(outer, C, inner))
    return y


def batch_norm_backward(dy, x, gamma, mean, invstd, axis=1, out=None):
    """Gradients of training-mode batch norm; returns (dx, dgamma, dbeta) in x's dtype."""
    outer, C, inner = split_axis(x.shape, axis, "batch_norm_backward")
    dx_buf, dg_buf, db_buf = _outs(out, 3)
    dx = _buffer(dx_buf, x.shape, x.dtype)
    dgamma, dbeta = _buffer(dg_buf, (C,), x.dtype), _buffer(db_buf, (C,), x.dtype)
    g = _param(gamma, C, 1, x.dtype)
    mean, invstd = (np.ascontiguousarray(v, dtype=x.dtype) for v in (mean, invstd))
    shape = (outer, C) if inner == 1 else (outer, C, inner)
    args = (np.ascontiguousarray(dy, dtype=x.dtype).reshape(shape),
            np.ascontiguousarray(x).reshape(shape), g, mean, invstd, dx.reshape(shape),
            dgamma, dbeta)
    if inner == 1:
        _bn_bwd_cols(*args, _COLS)
    else:
        _bn_bwd_planes(*args)
    return dx, dgamma, dbeta


def batch_norm_update_running(running_mean, running_var, mean, invstd, eps, momentum=0.9):
    """In-place MXNet-style update: running = momentum*running + (1-momentum)*batch.

    The batch variance is the biased one recovered from invstd (1/invstd**2 - eps).
    """
    var = 1.0 / np.square(np.asarray(invstd, np.float64)) - eps
    running_mean *= momentum
    running_mean += (1.0 - momentum) * np.asarray(mean, np.float64)
    running_var *= momentum
    running_var += (1.0 - momentum) * var
    return running_mean, running_var


# ----------------------------------------------------------------------------- row kernels
# Layer and instance norm both normalize rows of a (R, K) array; they differ in how the
# affine parameters are indexed: per column (layer norm, gamma has K entries) or per
# row (instance norm, gamma[r % C]).

@twin(cache=True, fastmath=FAST, error_model="numpy")
def _rows_fwd(x, gamma, beta, per_row, eps, y, mean, invstd):
    R, K = x.shape
    C = gamma.shape[0]
    for r in prange(R):
        xr, yr = x[r], y[r]
        mu = _sum(xr) / K
        inv = 1.0 / np.sqrt(_sq_dev(xr, mu) / K + eps)
        mean[r], invstd[r] = mu, inv
        t = x.dtype.type
        m, s = t(mu), t(inv)
        if per_row:
            a, b = gamma[r % C] * s, beta[r % C]
            for k in range(K):
                yr[k] = (xr[k] - m) * a + b
        else:
            for k in range(K):
                yr[k] = (xr[k] - m) * s * gamma[k] + beta[k]


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _layer_bwd(dy, x, gamma, mean, invstd, dx, pg, pb):
    # pg, pb: (T, K) per-task partial dgamma/dbeta, summed by the caller (no races).
    R, K = x.shape
    T = pg.shape[0]
    for t in prange(T):
        for r in range(t * R // T, (t + 1) * R // T):
            g, xr, d = dy[r], x[r], dx[r]
            mu, inv = mean[r], invstd[r]
            sg, sgx = 0.0, 0.0  # sums of gamma*dy and gamma*dy*xhat over the row
            for k in range(K):
                gk = g[k] * gamma[k]
                xh = (xr[k] - mu) * inv
                sg = radd(sg, gk)
                sgx = radd(sgx, gk * xh)
                pg[t, k] += g[k] * xh
                pb[t, k] += g[k]
            sg, sgx = sg / K, sgx / K
            for k in range(K):
                xh = (xr[k] - mu) * inv
                d[k] = inv * (g[k] * gamma[k] - sg - xh * sgx)


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _instance_bwd(dy, x, gamma, mean, invstd, dx, pg, pb):
    # rows r = n*C + c; pg, pb: (R,) per-row partial dgamma/dbeta.
    R, K = x.shape
    C = gamma.shape[0]
    for r in prange(R):
        g, xr, d = dy[r], x[r], dx[r]
        mu, inv, gam = mean[r], invstd[r], gamma[r % C]
        sg = _sum(g)
        sgx = _dot_dev(g, xr, mu) * inv
        pg[r], pb[r] = sgx, sg
        t = x.dtype.type
        k1 = gam * inv
        k2, k3 = t(-k1 * inv * sgx / K), t(-k1 * sg / K)
        k1, m = t(k1), t(mu)
        for k in range(K):
            d[k] = k1 * g[k] + k2 * (xr[k] - m) + k3


# ----------------------------------------------------------------------------- layer norm API

def _rows_view(a, axis):
    """(R, K) contiguous array with `axis` last (a copy only when axis is not last)."""
    if axis % a.ndim != a.ndim - 1:
        a = np.moveaxis(a, axis, -1)
    a = np.ascontiguousarray(a)
    return a.reshape(-1, a.shape[-1])


def layer_norm_forward(x, gamma, beta, axis=-1, eps=1e-5, out=None):
    """Normalize over one axis; returns (y, mean, invstd), stats shaped x.shape minus axis.

    gamma/beta: (x.shape[axis],) or None. Non-last axes are handled by a transposed copy.
    """
    ax = axis % x.ndim
    K = x.shape[ax]
    stat_shape = x.shape[:ax] + x.shape[ax + 1:]
    y_buf, m_buf, s_buf = _outs(out, 3)
    mean = _buffer(m_buf, stat_shape, x.dtype)
    invstd = _buffer(s_buf, stat_shape, x.dtype)
    x2 = _rows_view(x, ax)
    last = ax == x.ndim - 1
    y = _buffer(y_buf.reshape(x2.shape) if last and y_buf is not None else None, x2.shape, x.dtype)
    _rows_fwd(x2, _param(gamma, K, 1, x.dtype), _param(beta, K, 0, x.dtype), False,
              float(eps), y, mean.reshape(-1), invstd.reshape(-1))
    if last:
        return (y.reshape(x.shape) if y_buf is None else y_buf), mean, invstd
    y = np.moveaxis(y.reshape(stat_shape + (K,)), -1, ax)
    if y_buf is not None:
        y_buf[...] = y
        y = y_buf
    return y, mean, invstd


def layer_norm_backward(dy, x, gamma, mean, invstd, axis=-1, out=None):
    """Gradients of layer norm; returns (dx, dgamma, dbeta)."""
    ax = axis % x.ndim
    K = x.shape[ax]
    dx_buf, dg_buf, db_buf = _outs(out, 3)
    x2, dy2 = _rows_view(x, ax), _rows_view(np.asarray(dy, x.dtype), ax)
    R = x2.shape[0]
    T = max(1, min(R, 4 * get_num_threads()))  # a few tasks per thread for balance
    pg, pb = np.zeros((T, K)), np.zeros((T, K))
    last = ax == x.ndim - 1
    dx = _buffer(dx_buf.reshape(x2.shape) if last and dx_buf is not None else None, x2.shape, x.dtype)
    _layer_bwd(dy2, x2, _param(gamma, K, 1, x.dtype), np.ascontiguousarray(mean).reshape(R),
               np.ascontiguousarray(invstd).reshape(R), dx, pg, pb)
    dgamma = _buffer(dg_buf, (K,), x.dtype)
    dbeta = _buffer(db_buf, (K,), x.dtype)
    dgamma[...], dbeta[...] = pg.sum(0), pb.sum(0)
    if last:
        return (dx.reshape(x.shape) if dx_buf is None else dx_buf), dgamma, dbeta
    dx = np.moveaxis(dx.reshape(x.shape[:ax] + x.shape[ax + 1:] + (K,)), -1, ax)
    if dx_buf is not None:
        dx_buf[...] = dx
        dx = dx_buf
    return dx, dgamma, dbeta


# ----------------------------------------------------------------------------- instance norm API

def instance_norm_forward(x, gamma, beta, eps=1e-5, out=None):
    """Normalize each (n, c) over the spatial axes of (N, C, ...) x; returns (y, mean, invstd)
    with (N, C) statistics. gamma/beta: (C,) or None."""
    N, C = x.shape[:2]
    y_buf, m_buf, s_buf = _outs(out, 3)
    y = _buffer(y_buf, x.shape, x.dtype)
    mean, invstd = _buffer(m_buf, (N, C), x.dtype), _buffer(s_buf, (N, C), x.dtype)
    _rows_fwd(np.ascontiguousarray(x).reshape(N * C, -1), _param(gamma, C, 1, x.dtype),
              _param(beta, C, 0, x.dtype), True, float(eps), y.reshape(N * C, -1),
              mean.reshape(-1), invstd.reshape(-1))
    return y, mean, invstd


def instance_norm_backward(dy, x, gamma, mean, invstd, out=None):
    """Gradients of instance norm; returns (dx, dgamma, dbeta)."""
    N, C = x.shape[:2]
    dx_buf, dg_buf, db_buf = _outs(out, 3)
    dx = _buffer(dx_buf, x.shape, x.dtype)
    pg, pb = np.empty(N * C, x.dtype), np.empty(N * C, x.dtype)
    _instance_bwd(np.ascontiguousarray(dy, dtype=x.dtype).reshape(N * C, -1),
                  np.ascontiguousarray(x).reshape(N * C, -1), _param(gamma, C, 1, x.dtype),
                  np.ascontiguousarray(mean).reshape(-1), np.ascontiguousarray(invstd).reshape(-1),
                  dx.reshape(N * C, -1), pg, pb)
    dgamma, dbeta = _buffer(dg_buf, (C,), x.dtype), _buffer(db_buf, (C,), x.dtype)
    dgamma[...] = pg.reshape(N, C).sum(0, dtype=np.float64)
    dbeta[...] = pb.reshape(N, C).sum(0, dtype=np.float64)
    return dx, dgamma, dbeta
