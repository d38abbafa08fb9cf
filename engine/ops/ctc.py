"""Connectionist temporal classification loss (Graves et al. 2006): ``nd.ctc_loss`` / ``nd.CTCLoss``.

The op takes unnormalized activations ``data`` (T, N, C), padded labels (N, L) and the lengths
of both per sample, and returns ``-log p(label | data)`` per sample. The kernel runs the
forward (alpha) and backward (beta) recursions in log space over the extended label
``blank, l1, blank, l2, ..., blank`` (one vectorized step over the batch and label positions per
time step, NumPy or CuPy) and returns the gradient with respect to the activations as a second
output, ``softmax(data) - occupancy / p`` (Graves 2006, eq. 16), which the gradient rule scales
by the head gradient. Samples whose label cannot be aligned in their time steps get an infinite
loss and a zero gradient.
"""
import numpy as np

from ..base import MXNetError, array_module, fmt_shape
from ..imperative import invoke
from .registry import register, shape_error

__all__ = ['ctc_loss', 'CTCLoss']


def _ctc_infer(shapes, dtypes, blank, pad=None):
    x, lab, dl, ll = shapes
    if len(x) != 3:
        raise shape_error('ctc_loss', 'data must be (sequence_length, batch_size, alphabet_size)', x)
    if len(lab) != 2 or lab[0] != x[1]:
        raise shape_error('ctc_loss', f'label must be (batch_size, label_length) with batch_size '
                          f'{x[1]}', x, lab)
    if tuple(dl) != (x[1],) or tuple(ll) != (x[1],):
        raise shape_error('ctc_loss', f'data_lengths and label_lengths must be ({x[1]},)', dl, ll)
    if not 0 <= blank < x[2]:
        raise shape_error('ctc_loss', f'blank label {blank} is out of range for alphabet size {x[2]}', x)
    if np.dtype(dtypes[0]).kind != 'f':
        raise MXNetError(f'ctc_loss: data must be a float array, got {np.dtype(dtypes[0]).name}')
    return [(x[1],), tuple(x)], [dtypes[0], dtypes[0]]


def _logsumexp(xp, *terms):
    m = terms[0]
    for t in terms[1:]:
        m = xp.maximum(m, t)
    safe = xp.where(xp.isfinite(m), m, 0.0)
    total = sum(xp.exp(t - safe) for t in terms)
    with np.errstate(divide='ignore'):
        return xp.log(total) + safe


def _ctc_kernel(x, label, data_lengths, label_lengths, blank, pad=None, out=None):
    xp = array_module(x)
    T, N, C = x.shape
    L = label.shape[1]
    lab = label.astype(np.int64)
    tl = data_lengths.astype(np.int64)
    if pad is not None:   # no lengths given: a label ends at its first padding value
        is_pad = xp.concatenate([label == pad, xp.ones((N, 1), dtype=bool)], axis=1)
        label_lengths = is_pad.argmax(axis=1)
    ll = label_lengths.astype(np.int64)
    # the values decide indexing below: refuse bad ones rather than read out of bounds
    pos = xp.arange(L)[None, :] < ll[:, None]
    if bool(((lab != label) & pos).any()) or bool((((lab < 0) | (lab >= C) | (lab == blank)) & pos).any()):
        raise MXNetError(f'ctc_loss: labels must be integers in [0, {C}) other than the blank '
                         f'label {blank} (label shape {fmt_shape(label.shape)})')
    if bool(((tl < 1) | (tl > T)).any()) or bool(((ll < 0) | (ll > L)).any()) or \
            bool((data_lengths != tl).any() | (label_lengths != ll).any()):
        raise MXNetError(f'ctc_loss: data_lengths must be integers in [1, {T}] and label_lengths '
                         f'in [0, {L}]')
    logp = x.astype(np.float64)
    logp = logp - logp.max(axis=2, keepdims=True)
    logp = logp - xp.log(xp.exp(logp).sum(axis=2, keepdims=True))     # log_softmax over C
    S = 2 * L + 1
    ext = xp.full((N, S), blank, dtype=np.int64)                      # blank, l1, blank, l2, ...
    ext[:, 1::2] = xp.where(pos, lab, blank)
    valid = xp.arange(S)[None, :] < (2 * ll + 1)[:, None]
    # a step s-2 -> s is allowed onto a label that differs from the label two before it
    skip = xp.zeros((N, S), dtype=bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    lp = xp.take_along_axis(logp, xp.broadcast_to(ext[None], (T, N, S)), axis=2)   # (T, N, S)
    lp = xp.where(valid[None], lp, -np.inf)
    neg = xp.full((N, S), -np.inf)

    def shift(a, k):             # a[:, s - k], -inf where s < k (k > 0) or s - k >= S (k < 0)
        r = xp.full_like(a, -np.inf)
        if k > 0:
            r[:, k:] = a[:, :-k]
        else:
            r[:, :k] = a[:, -k:]
        return r

    alpha = xp.empty((T, N, S))
    a0 = neg.copy()
    a0[:, :2] = lp[0, :, :2]
    alpha[0] = a0
    for t in range(1, T):
        alpha[t] = _logsumexp(xp, alpha[t - 1], shift(alpha[t - 1], 1),
                              xp.where(skip, shift(alpha[t - 1], 2), -np.inf)) + lp[t]
    rows = xp.arange(N)
    last = alpha[tl - 1, rows]                                          # (N, S)
    end = 2 * ll
    ll_loss = _logsumexp(xp, last[rows, end], xp.where(ll > 0, last[rows, xp.maximum(end - 1, 0)],
                                                       -np.inf))
    loss = -ll_loss
    # beta: starts at each sample's last step on the final blank or final label
    skip_next = shift(skip.astype(np.float64), -2) > 0                  # may s jump to s + 2
    init = xp.where((xp.arange(S)[None, :] == end[:, None]) |
                    ((xp.arange(S)[None, :] == end[:, None] - 1) & (ll[:, None] > 0)), 0.0, -np.inf)
    beta = xp.empty((T, N, S))
    nxt = neg
    for t in range(T - 1, -1, -1):
        rec = _logsumexp(xp, nxt, shift(nxt, -1), xp.where(skip_next, shift(nxt, -2), -np.inf))
        here = xp.where((t == tl - 1)[:, None], init, xp.where((t < tl - 1)[:, None], rec, -np.inf))
        beta[t] = here + lp[t]
        nxt = beta[t]
    # occupancy of each extended position, divided by y (both recursions include it once)
    finite = xp.isfinite(loss)
    with np.errstate(invalid='ignore'):
        occ = xp.exp(alpha + beta - lp + xp.where(finite, loss, 0.0)[None, :, None])
    occ = xp.where(xp.isfinite(occ), occ, 0.0)
    onehot = (ext[:, :, None] == xp.arange(C)[None, None, :]).astype(np.float64)   # (N, S, C)
    grad = xp.exp(logp) - xp.einsum('tns,nsc->tnc', occ, onehot)
    in_time = (xp.arange(T)[:, None] < tl[None, :])[:, :, None]
    grad = xp.where(in_time & finite[None, :, None], grad, 0.0)
    if out is None:
        return loss.astype(x.dtype), grad.astype(x.dtype)
    out[0][...] = loss
    out[1][...] = grad
    return out


def _ctc_grad(g, out, x, label, data_lengths, label_lengths, blank, pad=None):
    if g[1] is not None:
        raise MXNetError('ctc_loss: the gradient of its gradient is not implemented (it is '
                         'differentiable once)')
    from .shape import reshape
    return [reshape(g[0], (1, -1, 1)) * out[1], None, None, None]


_ctc = register('ctc_loss', _ctc_infer, _ctc_kernel, _ctc_grad, multi_output=True)


def ctc_loss(data, label, data_lengths=None, label_lengths=None, use_data_lengths=False,
             use_label_lengths=False, blank_label='first', out=None, **kwargs):
    """MXNet's ``nd.ctc_loss`` (alias ``nd.CTCLoss``): ``data`` (T, N, C) activations (softmax is
    applied inside), ``label`` (N, L). ``blank_label='first'``: the blank is class 0 and labels
    are padded with 0; ``'last'``: the blank is class C-1 and labels are padded with -1. Without
    ``use_label_lengths`` a label ends at its first padding value; without ``use_data_lengths``
    every sequence has T steps. Returns the loss per sample, shape (N,)."""
    if blank_label not in ('first', 'last'):
        raise MXNetError(f"ctc_loss: blank_label must be 'first' or 'last', got {blank_label!r}")
    if len(data.shape) != 3 or len(label.shape) != 2:
        raise MXNetError(f'ctc_loss: expected data (T, N, C) and label (N, L), got shapes '
                         f'{fmt_shape(data.shape)} and {fmt_shape(label.shape)}')
    T, N, C = data.shape
    blank = 0 if blank_label == 'first' else C - 1
    pad = 0 if blank_label == 'first' else -1
    dt = data.dtype
    label = label.astype(dt) if label.dtype != dt else label
    if use_data_lengths:
        if data_lengths is None:
            raise MXNetError('ctc_loss: use_data_lengths=True needs data_lengths')
        data_lengths = data_lengths.astype(dt)
    else:
        data_lengths = _full(data, (N,), T)
    if use_label_lengths:
        if label_lengths is None:
            raise MXNetError('ctc_loss: use_label_lengths=True needs label_lengths')
        label_lengths = label_lengths.astype(dt)
        pad = None
    else:
        label_lengths = _full(data, (N,), 0)    # unused: the kernel finds the padding
    loss = invoke(_ctc, [data, label, data_lengths, label_lengths], {'blank': blank, 'pad': pad})[0]
    if out is not None:
        out[:] = loss
        return out
    return loss


def _full(data, shape, value):
    from .index import slice_axis
    from .nn import full_like
    from .shape import reshape
    # (N,) filled with value, made from data so that it also works on traced symbols
    return full_like(reshape(slice_axis(slice_axis(data, 0, 0, 1), 2, 0, 1), shape), value)


CTCLoss = ctc_loss
