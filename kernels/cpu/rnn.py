"""Fused recurrent layers (one layer, one direction): forward and backward through time.

Shapes: x (T, N, I), states (N, H), i2h weight wi (G*H, I), h2h weight wh (G*H, H), biases
(G*H,), with G gates in MXNet's (and cuDNN's, PyTorch's) order: LSTM i, f, g, o; GRU r, z, n;
plain RNN one. `reverse` runs the time loop from T-1 down to 0 (the backward direction of a
bidirectional layer); outputs stay in input time order.

Forward: the input part of every gate for all steps is one GEMM, ``xg = x wi^T + b``; then per
step one GEMM ``h wh^T`` and one Numba kernel doing every gate's activation and the state update.
Forward returns what the backward pass reads (activated gates; LSTM cell states; GRU's h2h part
of the candidate, which the reset gate multiplies).

Backward: per step (in reverse processing order) one Numba kernel turns the incoming dh (and dc)
into the gate pre-activation gradients, then one GEMM carries dh to the previous step; the weight
and bias gradients are GEMMs and sums over all steps at the end. It returns the input part's
gate gradients dxg rather than dx = dxg wi, so that GEMM (over all steps too) runs only where x
needs a gradient.

LSTM with a projection wr (P, H) (LSTMP, MXNet's projection_size): the state and output are
r = (o * tanh(c)) wr^T; one more GEMM per step each way, and dwr is one GEMM after the loop.

GRU: ``n = tanh(xn + r * (wh_n h + bh_n))``, ``h' = (1 - z) n + z h`` (reset after the matmul).
"""
from types import SimpleNamespace

import numpy as np
from numba import njit

from .vecmath import FAST, fexp, fexpm1

__all__ = ["rnn_forward", "rnn_backward"]

GATES = {'lstm': 4, 'gru': 3, 'rnn_tanh': 1, 'rnn_relu': 1}

_JIT = dict(cache=True, fastmath=FAST, error_model='numpy')


# Every kernel takes `one`, 1 in the arrays' dtype: a literal 1 would be an int64 that promotes
# float32 arithmetic to float64 and stops LLVM from vectorizing the gate loops (5x slower).

@njit(**_JIT)
def _sigmoid(x, one):
    return one / (one + fexp(-x))


@njit(**_JIT)
def _tanh(x, one):
    # through expm1 of -2|x|, so small |x| keeps its relative precision and large |x| cannot overflow
    a = abs(x)
    e = fexpm1(-(a + a))
    t = -e / (one + one + e)
    return t if x >= 0 else -t


# ---- per-step gate kernels ----------------------------------------------------------------

# The loops below are split into one short loop per gate, each `for j in range(hh)` from 0 with
# the gate's offset inside: LLVM vectorized neither one loop over every array (4x slower) nor
# `range(2 * hh, 3 * hh)` (3x slower than the same loop from 0).

@njit(**_JIT)
def _lstm_step(xg, hg, c_prev, gates, c, h, one):
    n, hh = c.shape
    for b in range(n):
        for j in range(2 * hh):
            gates[b, j] = _sigmoid(xg[b, j] + hg[b, j], one)
        for j in range(hh):
            k = 2 * hh + j
            gates[b, k] = _tanh(xg[b, k] + hg[b, k], one)
        for j in range(hh):
            k = 3 * hh + j
            gates[b, k] = _sigmoid(xg[b, k] + hg[b, k], one)
        for j in range(hh):
            c[b, j] = gates[b, hh + j] * c_prev[b, j] + gates[b, j] * gates[b, 2 * hh + j]
        for j in range(hh):
            h[b, j] = gates[b, 3 * hh + j] * _tanh(c[b, j], one)


@njit(**_JIT)
def _lstm_step_back(dy, dh, dc, gates, c, c_prev, dpre, one):
    """dh, dc: the gradients arriving from the next step; dc is overwritten with dc_prev."""
    n, hh = c.shape
    dct = np.empty(hh, c.dtype)   # the total gradient of c, per row
    for b in range(n):
        for j in range(hh):
            tc = _tanh(c[b, j], one)
            o = gates[b, 3 * hh + j]
            dht = dy[b, j] + dh[b, j]
            dpre[b, 3 * hh + j] = dht * tc * o * (one - o)
            dct[j] = dc[b, j] + dht * o * (one - tc * tc)
        for j in range(hh):
            f = gates[b, hh + j]
            dpre[b, hh + j] = dct[j] * c_prev[b, j] * f * (one - f)
        for j in range(hh):
            dc[b, j] = dct[j] * gates[b, hh + j]
        for j in range(hh):
            g = gates[b, 2 * hh + j]
            dpre[b, 2 * hh + j] = dct[j] * gates[b, j] * (one - g * g)
        for j in range(hh):
            i = gates[b, j]
            dpre[b, j] = dct[j] * gates[b, 2 * hh + j] * i * (one - i)


@njit(**_JIT)
def _gru_step(xg, hg, h_prev, gates, hn, h, one):
    n, hh = h.shape
    rh = np.empty(hh, h.dtype)    # r * (wh_n h + bh_n), per row
    for b in range(n):
        for j in range(2 * hh):
            gates[b, j] = _sigmoid(xg[b, j] + hg[b, j], one)
        for j in range(hh):
            hn[b, j] = hg[b, 2 * hh + j]
        for j in range(hh):
            rh[j] = gates[b, j] * hg[b, 2 * hh + j]
        for j in range(hh):
            k = 2 * hh + j
            gates[b, k] = _tanh(xg[b, k] + rh[j], one)
        for j in range(hh):
            z = gates[b, hh + j]
            h[b, j] = (one - z) * gates[b, 2 * hh + j] + z * h_prev[b, j]


@njit(**_JIT)
def _gru_step_back(dy, dh, gates, hn, h_prev, dxg, dhg, one):
    """dh is overwritten with the direct part of dh_prev (dh * z); dhg wh adds the rest."""
    n, hh = dh.shape
    for b in range(n):
        for j in range(hh):
            r, z, cand = gates[b, j], gates[b, hh + j], gates[b, 2 * hh + j]
            dht = dy[b, j] + dh[b, j]
            dan = dht * (one - z) * (one - cand * cand)
            dar = dan * hn[b, j] * r * (one - r)
            daz = dht * (h_prev[b, j] - cand) * z * (one - z)
            dxg[b, j], dxg[b, hh + j], dxg[b, 2 * hh + j] = dar, daz, dan
            dhg[b, j], dhg[b, hh + j], dhg[b, 2 * hh + j] = dar, daz, dan * r
            dh[b, j] = dht * z


@njit(**_JIT)
def _simple_step(xg, hg, h, relu, one):
    n, hh = h.shape
    zero = one - one
    for b in range(n):
        for j in range(hh):
            a = xg[b, j] + hg[b, j]
            h[b, j] = (a if a > zero else zero) if relu else _tanh(a, one)


@njit(**_JIT)
def _simple_step_back(dy, dh, h, da, relu, one):
    n, hh = h.shape
    zero = one - one
    for b in range(n):
        for j in range(hh):
            d = dy[b, j] + dh[b, j]
            y = h[b, j]
            da[b, j] = (d if y > zero else zero) if relu else d * (one - y * y)


# ---- the time loops (shared with the CUDA twin: `K` holds the step kernels, `xp` the array module) ----

def _order(t, reverse):
    return range(t - 1, -1, -1) if reverse else range(t)


def _gemm_in(x, wi, b):
    """The input part of every gate for all steps: (T, N, G*H)."""
    t, n, _ = x.shape
    xg = x.reshape(t * n, -1) @ wi.T
    xg += b
    return xg.reshape(t, n, -1)


def _previous(xp, y, h0, reverse, out=None):
    """h_{t-1} for every step t in processing order, in input time order: (T, N, H)."""
    out = xp.empty_like(y) if out is None else out
    if reverse:
        out[:-1], out[-1] = y[1:], h0
    else:
        out[0], out[1:] = h0, y[:-1]
    return out


def step_mask(xp, lengths, t, dtype):
    """(T, N, 1): 1 where step t < the sample's valid length, else 0."""
    return (xp.arange(t)[:, None] < xp.asarray(lengths).reshape(1, -1)).astype(dtype)[:, :, None]


def _hold(new, old, m):
    """new = m * new + (1 - m) * old in place: a padded step (m = 0) keeps the carried state."""
    new -= old
    new *= m
    new += old


def plain_gemm(xp, wh, n):
    """The recurrent product ``out = h wh^T`` as one matmul (the CUDA twin's; cuBLAS needs no trick)."""
    def gemm(h, out):
        xp.matmul(h, wh.T, out=out)
    return gemm


def _hidden_gemm(xp, wh, n):
    """``out = h wh^T`` for the CPU. At batch n < 64 OpenBLAS runs the transposed product
    (G*H, H) x (H, n) 1.2-1.6x faster than (n, H) x (H, G*H) (it packs the small side then),
    and the copy back is ~10% of that; from n = 64 on the plain product is as fast or faster."""
    if n >= 64:
        return plain_gemm(xp, wh, n)
    buf = xp.empty((wh.shape[0], n), wh.dtype)

    def gemm(h, out):
        xp.matmul(wh, h.T, out=buf)
        out[...] = buf.T
    return gemm


def run_forward(K, xp, mode, x, h0, c0, wi, wh, bi, bh, reverse, lengths=None, wr=None):
    t, n, _ = x.shape
    hh = wh.shape[1]
    m = None if lengths is None else step_mask(xp, lengths, t, x.dtype)
    y = xp.empty((t, n, hh), x.dtype)
    hg = xp.empty((n, wh.shape[0]), x.dtype)
    gemm = K.hidden_gemm(xp, wh, n)
    h = h0
    if mode == 'gru':
        xg = _gemm_in(x, wi, bi)
        gates, hn = xp.empty_like(xg), xp.empty_like(y)
        for s in _order(t, reverse):
            gemm(h, hg)
            hg += bh
            K.gru_step(xg[s], hg, h, gates[s], hn[s], y[s])
            if m is not None:
                _hold(y[s], h, m[s])
            h = y[s]
        return y, h.copy(), None, (gates, hn)
    xg = _gemm_in(x, wi, bi + bh)
    if mode == 'lstm':
        return _lstm_forward(K, xp, xg, gemm, hg, y, h0, c0, wr, m, reverse)
    for s in _order(t, reverse):
        gemm(h, hg)
        K.simple_step(xg[s], hg, y[s], mode == 'rnn_relu')
        if m is not None:
            _hold(y[s], h, m[s])
        h = y[s]
    return y, h.copy(), None, ()


def _lstm_forward(K, xp, xg, gemm, hg, y, h0, c0, wr, m, reverse):
    """With a projection wr (P, H) the cell output o * tanh(c) is hf (saved), and the state
    and output are r = hf wr^T (LSTMP; y and h have P columns, c has H)."""
    t, n = xg.shape[:2]
    gates, cs = xp.empty_like(xg), xp.empty((t, n, c0.shape[1]), xg.dtype)
    hf = None if wr is None else xp.empty_like(cs)
    h, c = h0, c0
    for s in _order(t, reverse):
        gemm(h, hg)
        K.lstm_step(xg[s], hg, c, gates[s], cs[s], y[s] if wr is None else hf[s])
        if wr is not None:
            xp.matmul(hf[s], wr.T, out=y[s])
        if m is not None:
            _hold(y[s], h, m[s])
            _hold(cs[s], c, m[s])
        h, c = y[s], cs[s]
    saved = (gates, cs) if wr is None else (gates, cs, hf)
    return y, h.copy(), c.copy(), saved


def _split_masked(xp, dy, dh, m):
    """At a step with mask m the state was held where m = 0: the gradient arriving there
    (dy + dh) goes to the cell where m = 1 and straight to the previous state where m = 0.
    Returns (the cell's dy, a zero dh for the kernel, the straight part)."""
    total = dy + dh
    cell = total * m
    return cell, xp.zeros_like(dh), total - cell


def run_backward(K, xp, mode, dy, dhT, dcT, x, h0, c0, wi, wh, y, saved, reverse, lengths=None, wr=None):
    t, n, _ = x.shape
    m = None if lengths is None else step_mask(xp, lengths, t, x.dtype)
    dh, dc0, dwr = dhT.copy(), None, None
    if mode == 'lstm':
        dxg, dh, dc0, dwr = _lstm_backward(K, xp, dy, dh, dcT.copy(), c0, wh, saved, wr, m, reverse)
        dhg = dxg
    elif mode == 'gru':
        gates, hn = saved
        dxg, dhg = xp.empty_like(gates), xp.empty_like(gates)
        hprev = _previous(xp, y, h0, reverse)
        for s in reversed(_order(t, reverse)):
            dys, straight = dy[s], None
            if m is not None:
                dys, dh, straight = _split_masked(xp, dy[s], dh, m[s])
            K.gru_step_back(dys, dh, gates[s], hn[s], hprev[s], dxg[s], dhg[s])
            dh += dhg[s] @ wh
            if straight is not None:
                dh += straight
    else:
        dxg = xp.empty((t, n, wh.shape[0]), x.dtype)
        for s in reversed(_order(t, reverse)):
            if m is None:
                K.simple_step_back(dy[s], dh, y[s], dxg[s], mode == 'rnn_relu')
                xp.matmul(dxg[s], wh, out=dh)
                continue
            dys, zero, straight = _split_masked(xp, dy[s], dh, m[s])
            K.simple_step_back(dys, zero, y[s], dxg[s], mode == 'rnn_relu')
            dh = dxg[s] @ wh + straight
        dhg = dxg
    dwi, dwh = _weight_grads(xp, dxg, dhg, x, y, h0, reverse)
    g = dxg.shape[-1]
    return dxg, dh, dc0, dwi, dwh, dxg.reshape(-1, g).sum(axis=0), dhg.reshape(-1, g).sum(axis=0), dwr


def _weight_grads(xp, dxg, dhg, x, y, h0, reverse):
    """dwi = sum_t dxg_t^T x_t and dwh = sum_t dhg_t^T h_{t-1}, each one GEMM over all steps.
    Where both use the same gate gradients (LSTM, plain RNN) they are one GEMM against
    [x | h_prev] (N = I + H), which OpenBLAS runs ~20% faster than two GEMMs of N = I and H."""
    t, n, i = x.shape
    g = dxg.shape[-1]
    if dhg is not dxg:
        hprev = _previous(xp, y, h0, reverse)
        return dxg.reshape(-1, g).T @ x.reshape(t * n, i), dhg.reshape(-1, g).T @ hprev.reshape(t * n, -1)
    xh = xp.empty((t * n, i + y.shape[-1]), x.dtype)
    xh[:, :i] = x.reshape(t * n, i)
    _previous(xp, y, h0, reverse, out=xh[:, i:].reshape(y.shape))
    dw = dxg.reshape(-1, g).T @ xh
    return xp.ascontiguousarray(dw[:, :i]), xp.ascontiguousarray(dw[:, i:])


def _lstm_backward(K, xp, dy, dh, dc, c0, wh, saved, wr, m, reverse):
    """BPTT of the LSTM(P) loop: (the gate pre-activation gradients (T, N, 4H), dh0, dc0, dwr).
    With a projection the gradient of r at each step (dr) is kept, so dwr = sum_t dr_t^T hf_t
    is one GEMM after the loop; the cell's output gradient is dr wr."""
    gates, cs = saved[:2]
    t = gates.shape[0]
    dxg = xp.empty_like(gates)
    dr = None if wr is None else xp.empty(dy.shape, dy.dtype)
    zero = None if wr is None else xp.zeros_like(cs[0])
    order = list(_order(t, reverse))
    for k in range(t - 1, -1, -1):
        s = order[k]
        c_prev = cs[order[k - 1]] if k > 0 else c0
        dys, dhs, straight = dy[s], dh, None
        if m is not None:
            dys, dhs, straight = _split_masked(xp, dys, dhs, m[s])
            dc_held = dc * (1 - m[s])
            dc *= m[s]
        if wr is not None:
            xp.add(dys, dhs, out=dr[s])
            dys, dhs = dr[s] @ wr, zero
        K.lstm_step_back(dys, dhs, dc, gates[s], cs[s], c_prev, dxg[s])
        if m is None:
            xp.matmul(dxg[s], wh, out=dh)
            continue
        dc += dc_held
        dh = dxg[s] @ wh + straight
    dwr = None
    if wr is not None:
        p = dr.shape[-1]
        dwr = dr.reshape(-1, p).T @ saved[2].reshape(-1, saved[2].shape[-1])
    return dxg, dh, dc, dwr


def _one(a):
    return a.dtype.type(1)


# the step kernels with the CUDA wrappers' signatures (`one` added here)
_STEPS = SimpleNamespace(
    lstm_step=lambda xg, hg, c_prev, gates, c, h: _lstm_step(xg, hg, c_prev, gates, c, h, _one(c)),
    lstm_step_back=lambda dy, dh, dc, gates, c, c_prev, dpre:
    _lstm_step_back(dy, dh, dc, gates, c, c_prev, dpre, _one(c)),
    gru_step=lambda xg, hg, h_prev, gates, hn, h: _gru_step(xg, hg, h_prev, gates, hn, h, _one(h)),
    gru_step_back=lambda dy, dh, gates, hn, h_prev, dxg, dhg:
    _gru_step_back(dy, dh, gates, hn, h_prev, dxg, dhg, _one(dh)),
    simple_step=lambda xg, hg, h, relu: _simple_step(xg, hg, h, relu, _one(h)),
    simple_step_back=lambda dy, dh, h, da, relu: _simple_step_back(dy, dh, h, da, relu, _one(h)),
    hidden_gemm=_hidden_gemm)


def rnn_forward(mode, x, h0, c0, wi, wh, bi, bh, reverse=False, lengths=None, wr=None):
    """(y, hT, cT, saved): y (T, N, H); cT None unless LSTM; saved is what rnn_backward reads.
    lengths (N,): valid steps per sample; at a padded step the state is held (y there is the
    held state, not zero: the caller masks the output). wr (P, H): the LSTM's projection
    (h2r_weight); then y and h0/hT have P columns and wh is (4H, P)."""
    return run_forward(_STEPS, np, mode, x, h0, c0, wi, wh, bi, bh, reverse, lengths, wr)


def rnn_backward(mode, dy, dhT, dcT, x, h0, c0, wi, wh, y, saved, reverse=False, lengths=None, wr=None):
    """(dxg, dh0, dc0, dwi, dwh, dbi, dbh, dwr); dc0 None unless LSTM, dwr None without wr.
    dxg (T, N, G*H) is the gradient of the input part of the gates, so dx = dxg wi: the caller
    computes it only when x needs a gradient (a 2-layer LSTM's first layer usually does not)."""
    return run_backward(_STEPS, np, mode, dy, dhT, dcT, x, h0, c0, wi, wh, y, saved, reverse, lengths, wr)
