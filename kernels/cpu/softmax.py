"""Softmax, log-softmax and fused softmax-cross-entropy kernels over any axis.

An array is viewed as ``(outer, K, inner)`` with K the softmax axis. Two kernel
shapes cover every case:

* rows (``inner == 1``, e.g. (N, C) with axis=-1): one thread per row, one pass to find
  the max, one to exponentiate-and-sum, one to normalize; the row stays in L1.
* blocks (``inner > 1``, e.g. per-pixel (N, C, H, W) with axis=1): a thread takes a block
  of up to ``_BLOCK`` contiguous inner positions and sweeps K with 1-D views
  ``x[o, k, i0:i1]``, so every inner loop is contiguous and vectorizes; no transpose.

Speed notes (measured, float32): exp and log go through ``vecmath.fexp``/``flog``
(SIMD; libm's scalar exp made (256, 1000) softmax 8x slower than PyTorch); sums
accumulate in the input dtype through ``vecmath.radd`` (a float64 accumulator blocks
vectorization, 1.6-3x slower; the float32 sum runs over many SIMD lanes, so its error
stays near 1e-6 relative); ``error_model="numpy"`` drops Numba's zero-division checks,
which also block vectorization. NaN and inf keep IEEE behaviour (a NaN logit makes its
row NaN).

Cross entropy: ``loss = (max - x[label]) + log(sum(exp(x - max)))`` (sparse) or
``-sum(label * log_softmax(x))`` (dense). The forward also returns the softmax
probabilities so the backward is a single elementwise pass:
``dx = (prob - onehot(label)) * dloss`` (sparse) or ``(prob * sum(label) - label) * dloss``
(dense; equal to ``prob - label`` when the label rows sum to one).
"""
import math

import numpy as np
from numba import njit, prange

from .parallel import twin
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

@twin(cache=True, fastmath=FAST, error_model="numpy")
def _softmax_rows(x, y, log):
    for r in prange(x.shape[0]):
        xr, yr = x[r], y[r]
        m = max1d(xr)
        s = _exp_sum(xr, m, yr)
        if log:  # (x - m) - log s: subtracting m + log s would cancel for large logits
            ls = flog(s)
            for k in range(xr.shape[0]):
                yr[k] = (xr[k] - m) - ls
        else:
            inv = 1.0 / s
            for k in range(xr.shape[0]):
                yr[k] *= inv


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _softmax_blocks(x, y, log, B):
    O, K, I = x.shape
    nb = (I + B - 1) // B
    for t in prange(O * nb):
        o, i0, i1 = _block(t, nb, B, I)
        m, s = _block_exp_sum(x, o, i0, i1, y)
        for j in range(s.shape[0]):
            s[j] = flog(s[j]) if log else 1.0 / s[j]
        for k in range(K):
            xk, yk = x[o, k, i0:i1], y[o, k, i0:i1]
            if log:
                for j in range(s.shape[0]):
                    yk[j] = (xk[j] - m[j]) - s[j]
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

@twin(cache=True, fastmath=FAST, error_model="numpy")
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


@twin(cache=True, fastmath=FAST, error_model="numpy")
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
# Sparse labels (the common case) get fused one-pass kernels. Dense labels go through the
# log_softmax kernel plus NumPy: a rare path that is not worth compiling more kernels for.

@twin(cache=True, fastmath=FAST, error_model="numpy")
def _ce_fwd_rows(x, lab, loss, prob):
    # x, prob: (R, K); lab: (R,) int64 class indices; loss: (R,)
    for r in prange(x.shape[0]):
        xr, pr = x[r], prob[r]
        m = max1d(xr)
        s = _exp_sum(xr, m, pr)
        # (m - x) first: next to logits of 1e4, (m + log s) - x would cancel to 2e-4
        loss[r] = (m - xr[lab[r]]) + flog(s)
        inv = 1.0 / s
        for k in range(xr.shape[0]):
            pr[k] *= inv


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _ce_fwd_blocks(x, lab, loss, prob, B):
    # x, prob: (O, K, I); lab, loss: (O, I)
    O, K, I = x.shape
    nb = (I + B - 1) // B
    for t in prange(O * nb):
        o, i0, i1 = _block(t, nb, B, I)
        m, s = _block_exp_sum(x, o, i0, i1, prob)
        lo = loss[o, i0:i1]
        for j in range(s.shape[0]):
            i = i0 + j
            lo[j] = (m[j] - x[o, lab[o, i], i]) + flog(s[j])
            s[j] = 1.0 / s[j]
        for k in range(K):
            pk = prob[o, k, i0:i1]
            for j in range(s.shape[0]):
                pk[j] *= s[j]


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _ce_bwd_rows(dloss, prob, lab, dx):
    # dloss, lab: (R,); prob, dx: (R, K)
    for r in prange(prob.shape[0]):
        d, pr, dr = dloss[r], prob[r], dx[r]
        for k in range(pr.shape[0]):
            dr[k] = pr[k] * d
        dr[lab[r]] -= d


@twin(cache=True, fastmath=FAST, error_model="numpy")
def _ce_bwd_blocks(dloss, prob, lab, dx, B):
    # dloss, lab: (O, I); prob, dx: (O, K, I)
    O, K, I = prob.shape
    nb = (I + B - 1) // B
    for t in prange(O * nb):
        o, i0, i1 = _block(t, nb, B, I)
        d = dloss[o, i0:i1]
        for k in range(K):
            pk, dk = prob[o, k, i0:i1], dx[o, k, i0:i1]
            for j in range(d.shape[0]):
                dk[j] = pk[j] * d[j]
        for j in range(d.shape[0]):
            dx[o, lab[o, i0 + j], i0 + j] -= d[j]


def _sparse_labels(label, outer, inner):
    """Class indices as contiguous (outer, inner) int64. Labels may come as floats (MXNet
    passes float labels): truncate once here, so each kernel compiles for one label dtype."""
    return np.ascontiguousarray(label).reshape(outer, inner).astype(np.int64, copy=False)


def _loss_shape(shape, axis):
    ax = axis % len(shape)
    return shape[:ax] + shape[ax + 1:]


def softmax_cross_entropy_forward(logits, label, axis=-1, sparse=True, out=None):
    """Fused softmax + cross entropy; returns (loss, prob), loss = logits.shape minus axis.

    sparse: label holds class indices (int or float dtype), shape logits.shape minus axis.
    dense: label holds distributions with the logits' shape. Labels are assumed valid
    (see check_labels). out: optional (loss, prob) buffers.
    """
    outer, K, inner = _split(logits.shape, axis)
    loss_buf, prob_buf = (None, None) if out is None else out
    loss = _buffer(loss_buf, _loss_shape(logits.shape, axis), logits.dtype)
    prob = _buffer(prob_buf, logits.shape, logits.dtype)
    if not sparse:
        logp = log_softmax(logits, axis)
        np.sum(np.multiply(label, logp, dtype=logits.dtype), axis=axis, out=loss)
        np.negative(loss, out=loss)
        np.exp(logp, out=prob)
        return loss, prob
    lab = _sparse_labels(label, outer, inner)
    if inner == 1:
        _ce_fwd_rows(_as3(logits, outer, K, 1).reshape(outer, K), lab.reshape(outer),
                     loss.reshape(outer), prob.reshape(outer, K))
    else:
        _ce_fwd_blocks(_as3(logits, outer, K, inner), lab, loss.reshape(outer, inner),
                       prob.reshape(outer, K, inner), _BLOCK)
    return loss, prob


def softmax_cross_entropy_backward(dloss, prob, label, axis=-1, sparse=True, out=None):
    """Gradient wrt logits, dloss broadcast along axis: (prob - onehot(label)) * dloss
    (sparse) or (prob * sum(label) - label) * dloss (dense)."""
    outer, K, inner = _split(prob.shape, axis)
    dx = _buffer(out, prob.shape, prob.dtype)
    d, shape = np.asarray(dloss), _loss_shape(prob.shape, axis)
    if d.shape != shape or d.dtype != prob.dtype or not d.flags.c_contiguous:
        d = np.ascontiguousarray(np.broadcast_to(d, shape), dtype=prob.dtype)  # a scalar dloss is fine
    if not sparse:
        label = np.asarray(label, prob.dtype)
        np.multiply(prob, label.sum(axis, keepdims=True), out=dx)
        dx -= label
        dx *= np.expand_dims(d, axis)
        return dx
    lab = _sparse_labels(label, outer, inner)
    if inner == 1:
        _ce_bwd_rows(d.reshape(outer), _as3(prob, outer, K, 1).reshape(outer, K),
                     lab.reshape(outer), dx.reshape(outer, K))
    else:
        _ce_bwd_blocks(d.reshape(outer, inner), _as3(prob, outer, K, inner), lab,
                       dx.reshape(outer, K, inner), _BLOCK)
    return dx


@njit(cache=True)
def _first_bad_label(lab, k):
    for i in range(lab.size):
        v = lab[i]
        if not (v >= 0 and v < k and v == math.floor(v)):   # NaN fails every comparison
            return i
    return -1


def check_labels(label, num_classes):
    """First label value that is not an integer in [0, num_classes), or None if all are valid.
    One compiled pass: it runs twice per training step (forward and backward), where NumPy's
    eight vectorized passes cost ~8 us on a small batch's labels."""
    lab = np.asarray(label).ravel()
    if lab.dtype.kind == 'b' or lab.dtype == np.float16:   # types Numba's loop does not take
        lab = lab.astype(np.float32 if lab.dtype == np.float16 else np.uint8)
    i = _first_bad_label(lab, num_classes)
    return None if i < 0 else lab[i].item()
