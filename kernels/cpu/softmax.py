"""Softmax, log-softmax and fused softmax-cross-entropy kernels over any axis.

An array is viewed as ``(outer, K, inner)`` with K the softmax axis. Two kernel
shapes cover every case:

* rows (``inner == 1``, e.g. (N, C) with axis=-1): one thread per row, one pass to find
  the max, one to exponentiate-and-sum, one to normalize; the row stays in L1.
* blocks (``inner > 1``, e.g. per-pixel (N, C, H, W) with axis=1): a thread takes a block
  of up to ``_BLOCK`` contiguous inner positions and sweeps K with 1-D views
  ``x[o, k, i0:i1]``, so every inner loop is contiguous and vectorizes; no transpose.

Speed notes (measured, float32): exp goes through ``vecmath.fexp`` (SIMD; libm's scalar
exp made (256, 1000) softmax 8x slower than PyTorch), and sums accumulate in the input
dtype (a float64 accumulator blocks vectorization, 1.6-3x slower); per-position logs use
``vecmath.flog``; ``error_model="numpy"`` drops Numba's zero-division checks, which
also block vectorization. Float32 row sums are
reassociated over SIMD lanes, so their error stays near 1e-6 relative; NaN and inf inputs
keep IEEE behaviour (a NaN logit makes its row NaN).

Cross entropy: ``loss = logsumexp(x) - x[label]`` (sparse) or
``-sum(label * log_softmax(x))`` (dense). The forward also returns the softmax
probabilities so the backward is a single elementwise pass:
``dx = (prob - onehot(label)) * dloss`` (sparse) or ``(prob * sum(label) - label) * dloss``
(dense; equal to ``prob - label`` when the label rows sum to one).
"""
import math

import numpy as np
from numba import njit, prange

from .vecmath import FAST, fexp, flog, fmax, max1d, radd

__all__ = [
    "softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "check_labels",
]

_BLOCK = 256  # inner positions per task in the strided kernels (stats stay in L1)


# ----------------------------------------------------------------------------- layout helpers

def _split(shape, axis):
    """(outer, K, inner) sizes for reducing `shape` over `axis`."""
    axis = axis % len(shape)
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _as3(a, outer, K, inner):
    return np.ascontiguousarray(a).reshape(outer, K, inner)


def _buffer(out, shape, dtype):
    if out is None:
        return np.empty(shape, dtype)
    if not out.flags.c_contiguous:
        raise ValueError("softmax kernels need a C-contiguous out buffer")
    return out


# ----------------------------------------------------------------------------- shared pieces

@njit(cache=True, fastmath=FAST, error_model="numpy")
def _exp_sum(xr, m, er):
    """er[k] = exp(xr[k] - m) for a row; returns the sum (in xr's dtype)."""
    s = xr.dtype.type(0)
    for k in range(xr.shape[0]):
        e = fexp(xr[k] - m)
        er[k] = e
        s = radd(s, e)
    return s


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _block_exp_sum(x, o, i0, i1, e):
    """Block x[o, :, i0:i1]: column max m, e[o, k, i0:i1] = exp(x - m), column sums s."""
    m = x[o, 0, i0:i1].copy()  # x's dtype, so x - m stays float32 for fexp
    for k in range(1, x.shape[1]):
        xk = x[o, k, i0:i1]
        for j in range(m.shape[0]):
            m[j] = fmax(m[j], xk[j])
    s = np.zeros_like(m)
    for k in range(x.shape[1]):
        xk, ek = x[o, k, i0:i1], e[o, k, i0:i1]
        for j in range(m.shape[0]):
            v = fexp(xk[j] - m[j])
            ek[j] = v
            s[j] += v
    return m, s


@njit(cache=True)
def _block(t, nb, B, I):
    """Task t of the block kernels -> (o, i0, i1)."""
    o, i0 = t // nb, (t % nb) * B
    return o, i0, min(i0 + B, I)


# ----------------------------------------------------------------------------- softmax / log_softmax

@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def _softmax_rows(x, y, log):
    for r in prange(x.shape[0]):
        xr, yr = x[r], y[r]
        m = max1d(xr)
        s = _exp_sum(xr, m, yr)
        if log:
            c = m + flog(s)
            for k in range(xr.shape[0]):
                yr[k] = xr[k] - c
        else:
            inv = 1.0 / s
            for k in range(xr.shape[0]):
                yr[k] *= inv


@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def _softmax_blocks(x, y, log, B):
    O, K, I = x.shape
    nb = (I + B - 1) // B
    for t in prange(O * nb):
        o, i0, i1 = _block(t, nb, B, I)
        m, s = _block_exp_sum(x, o, i0, i1, y)
        for j in range(s.shape[0]):
            s[j] = m[j] + flog(s[j]) if log else 1.0 / s[j]
        for k in range(K):
            xk, yk = x[o, k, i0:i1], y[o, k, i0:i1]
            if log:
                for j in range(s.shape[0]):
                    yk[j] = xk[j] - s[j]
            else:
                for j in range(s.shape[0]):
                    yk[j] *= s[j]


def _softmax_any(x, axis, out, log):
    outer, K, inner = _split(x.shape, axis)
    y = _buffer(out, x.shape, x.dtype)
    if inner == 1:
        _softmax_rows(_as3(x, outer, K, 1).reshape(outer, K), y.reshape(outer, K), log)
    else:
        _softmax_blocks(_as3(x, outer, K, inner), y.reshape(outer, K, inner), log, _BLOCK)
    return y


def softmax(x, axis=-1, out=None):
    """Numerically stable softmax of x along axis."""
    return _softmax_any(x, axis, out, False)


def log_softmax(x, axis=-1, out=None):
    """Numerically stable log-softmax of x along axis."""
    return _softmax_any(x, axis, out, True)


# softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy).

@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def _softmax_bwd_rows(dy, y, dx, log):
    for r in prange(dy.shape[0]):
        g, v, d = dy[r], y[r], dx[r]
        s = dy.dtype.type(0)
        if log:
            for k in range(g.shape[0]):
                s = radd(s, g[k])
            for k in range(g.shape[0]):
                d[k] = g[k] - fexp(v[k]) * s
        else:
            for k in range(g.shape[0]):
                s = radd(s, g[k] * v[k])
            for k in range(g.shape[0]):
                d[k] = v[k] * (g[k] - s)


@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def _softmax_bwd_blocks(dy, y, dx, log, B):
    O, K, I = dy.shape
    nb = (I + B - 1) // B
    for t in prange(O * nb):
        o, i0, i1 = _block(t, nb, B, I)
        s = np.zeros(i1 - i0)
        for k in range(K):
            g, v = dy[o, k, i0:i1], y[o, k, i0:i1]
            for j in range(s.shape[0]):
                s[j] += g[j] if log else g[j] * v[j]
        for k in range(K):
            g, v, d = dy[o, k, i0:i1], y[o, k, i0:i1], dx[o, k, i0:i1]
            for j in range(s.shape[0]):
                d[j] = g[j] - fexp(v[j]) * s[j] if log else v[j] * (g[j] - s[j])


def _softmax_backward_any(dy, y, axis, out, log):
    outer, K, inner = _split(dy.shape, axis)
    dx = _buffer(out, dy.shape, dy.dtype)
    dy3, y3, dx3 = _as3(dy, outer, K, inner), _as3(y, outer, K, inner), dx.reshape(outer, K, inner)
    if inner == 1:
        _softmax_bwd_rows(dy3[:, :, 0], y3[:, :, 0], dx3[:, :, 0], log)
    else:
        _softmax_bwd_blocks(dy3, y3, dx3, log, _BLOCK)
    return dx


def softmax_backward(dy, y, axis=-1, out=None):
    """Gradient of softmax given its output y: y * (dy - sum(dy * y, axis))."""
    return _softmax_backward_any(dy, y, axis, out, False)


def log_softmax_backward(dy, y, axis=-1, out=None):
    """Gradient of log_softmax given its output y: dy - exp(y) * sum(dy, axis)."""
    return _softmax_backward_any(dy, y, axis, out, True)


# ----------------------------------------------------------------------------- cross entropy

@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def _ce_fwd_rows(x, lab, dense, loss, prob):
    # sparse: lab (R, 1) int64 class indices; dense: lab (R, K) distributions.
    for r in prange(x.shape[0]):
        xr, pr = x[r], prob[r]
        m = max1d(xr)
        s = _exp_sum(xr, m, pr)
        ls = flog(s)
        # loss = sum_k l_k * (logsumexp - x_k), written with (m - x_k) so that a loss near
        # zero next to large logits does not cancel catastrophically
        if dense:
            lsum, lx = 0.0, 0.0
            for k in range(xr.shape[0]):
                lsum = radd(lsum, float(lab[r, k]))
                lx = radd(lx, float(lab[r, k] * (m - xr[k])))
            loss[r] = lsum * ls + lx
        else:
            loss[r] = (m - xr[int(lab[r, 0])]) + ls
        inv = 1.0 / s
        for k in range(xr.shape[0]):
            pr[k] *= inv


@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def _ce_fwd_blocks(x, lab, dense, loss, prob, B):
    # x, prob: (O, K, I); loss: (O, I); lab: (O, 1, I) class indices or (O, K, I) dense.
    O, K, I = x.shape
    nb = (I + B - 1) // B
    for t in prange(O * nb):
        o, i0, i1 = _block(t, nb, B, I)
        m, s = _block_exp_sum(x, o, i0, i1, prob)
        lo = loss[o, i0:i1]
        for j in range(s.shape[0]):
            lo[j] = flog(s[j])
        if dense:  # as in _ce_fwd_rows: sum_k l_k * ((m - x_k) + log s)
            lsum, lx = np.zeros(i1 - i0), np.zeros(i1 - i0)
            for k in range(K):
                lk, xk = lab[o, k, i0:i1], x[o, k, i0:i1]
                for j in range(s.shape[0]):
                    lsum[j] += lk[j]
                    lx[j] += lk[j] * (m[j] - xk[j])
            for j in range(s.shape[0]):
                lo[j] = lsum[j] * lo[j] + lx[j]
        else:
            for j in range(s.shape[0]):
                lo[j] += m[j] - x[o, int(lab[o, 0, i0 + j]), i0 + j]
        for j in range(s.shape[0]):
            s[j] = 1.0 / s[j]
        for k in range(K):
            pk = prob[o, k, i0:i1]
            for j in range(s.shape[0]):
                pk[j] *= s[j]


@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def _ce_bwd_rows(dloss, prob, lab, dense, dx):
    # dloss: (R,); prob, dx: (R, K); lab: (R, 1) class indices or (R, K) dense.
    for r in prange(prob.shape[0]):
        d, pr, dr = dloss[r], prob[r], dx[r]
        if dense:
            lsum = 0.0
            for k in range(pr.shape[0]):
                lsum = radd(lsum, float(lab[r, k]))
            for k in range(pr.shape[0]):
                dr[k] = (pr[k] * lsum - lab[r, k]) * d
        else:
            for k in range(pr.shape[0]):
                dr[k] = pr[k] * d
            dr[int(lab[r, 0])] -= d


@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def _ce_bwd_blocks(dloss, prob, lab, dense, dx, B):
    # dloss: (O, I); prob, dx: (O, K, I); lab: (O, 1, I) or (O, K, I).
    O, K, I = prob.shape
    nb = (I + B - 1) // B
    for t in prange(O * nb):
        o, i0, i1 = _block(t, nb, B, I)
        d = dloss[o, i0:i1]
        lsum = np.ones(i1 - i0)
        if dense:
            lsum[:] = 0.0
            for k in range(K):
                lk = lab[o, k, i0:i1]
                for j in range(d.shape[0]):
                    lsum[j] += lk[j]
        for k in range(K):
            pk, dk = prob[o, k, i0:i1], dx[o, k, i0:i1]
            for j in range(d.shape[0]):
                dk[j] = pk[j] * lsum[j] * d[j]
            if dense:
                lk = lab[o, k, i0:i1]
                for j in range(d.shape[0]):
                    dk[j] -= lk[j] * d[j]
        if not dense:
            for j in range(d.shape[0]):
                dx[o, int(lab[o, 0, i0 + j]), i0 + j] -= d[j]


def _labels(label, sparse, outer, K, inner, dtype):
    """Labels as (outer, 1, inner) int64 (sparse) or (outer, K, inner) of dtype (dense).

    Sparse labels may come as floats (MXNet passes float labels): truncate to int64 here,
    once, so every kernel compiles for a single label dtype.
    """
    if sparse:
        return np.ascontiguousarray(label).reshape(outer, 1, inner).astype(np.int64, copy=False)
    return _as3(label, outer, K, inner).astype(dtype, copy=False)


def softmax_cross_entropy_forward(logits, label, axis=-1, sparse=True, out=None):
    """Fused softmax + cross entropy; returns (loss, prob), loss = logits.shape minus axis.

    sparse: label holds class indices (int or float dtype), shape logits.shape minus axis.
    dense: label holds distributions with the logits' shape. Labels are assumed valid
    (see check_labels). out: optional (loss, prob) buffers.
    """
    outer, K, inner = _split(logits.shape, axis)
    ax = axis % logits.ndim
    loss_buf, prob_buf = (None, None) if out is None else out
    loss = _buffer(loss_buf, logits.shape[:ax] + logits.shape[ax + 1:], logits.dtype)
    prob = _buffer(prob_buf, logits.shape, logits.dtype)
    lab = _labels(label, sparse, outer, K, inner, logits.dtype)
    if inner == 1:
        _ce_fwd_rows(_as3(logits, outer, K, 1).reshape(outer, K), lab.reshape(outer, -1),
                     not sparse, loss.reshape(outer), prob.reshape(outer, K))
    else:
        _ce_fwd_blocks(_as3(logits, outer, K, inner), lab, not sparse,
                       loss.reshape(outer, inner), prob.reshape(outer, K, inner), _BLOCK)
    return loss, prob


def softmax_cross_entropy_backward(dloss, prob, label, axis=-1, sparse=True, out=None):
    """Gradient wrt logits: (prob - onehot(label)) * dloss, dloss broadcast along axis."""
    outer, K, inner = _split(prob.shape, axis)
    dx = _buffer(out, prob.shape, prob.dtype)
    ax = axis % prob.ndim
    d = np.broadcast_to(dloss, prob.shape[:ax] + prob.shape[ax + 1:])  # scalar dloss is fine
    d = np.ascontiguousarray(d, dtype=prob.dtype).reshape(outer, inner)
    lab = _labels(label, sparse, outer, K, inner, prob.dtype)
    if inner == 1:
        _ce_bwd_rows(d.reshape(outer), _as3(prob, outer, K, 1).reshape(outer, K),
                     lab.reshape(outer, -1), not sparse, dx.reshape(outer, K))
    else:
        _ce_bwd_blocks(d, _as3(prob, outer, K, inner), lab, not sparse,
                       dx.reshape(outer, K, inner), _BLOCK)
    return dx


def check_labels(label, num_classes):
    """First label value that is not an integer in [0, num_classes), or None if all are valid."""
    lab = np.asarray(label).ravel()
    bad = (lab < 0) | (lab >= num_classes)
    if lab.dtype.kind == "f":
        bad |= ~np.isfinite(lab) | (lab != np.floor(lab))
    hits = np.flatnonzero(bad)
    return None if hits.size == 0 else lab[hits[0]].item()
