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
gradients, bias gradients and dx are three GEMMs over all steps at the end.

GRU: ``n = tanh(xn + r * (wh_n h + bh_n))``, ``h' = (1 - z) n + z h`` (reset after the matmul).
"""
import math

import numpy as np
from numba import njit

from .vecmath import FAST, fexp, fexpm1

__all__ = ["rnn_forward", "rnn_backward", "GATES"]

GATES = {'lstm': 4, 'gru': 3, 'rnn_tanh': 1, 'rnn_relu': 1}

_JIT = dict(cache=True, fastmath=FAST, error_model='numpy')


@njit(**_JIT)
def _sigmoid(x):
    return 1 / (1 + fexp(-x))


@njit(**_JIT)
def _tanh(x):
    # through expm1 of -2|x|, so small |x| keeps its relative precision and large |x| cannot overflow
    a = abs(x)
    e = fexpm1(-(a + a))   # (a + a, not 2 * a: an int literal would promote float32 to float64)
    t = -e / (2 + e)
    return t if x >= 0 else -t


# ---- per-step gate kernels ----------------------------------------------------------------

@njit(**_JIT)
def _lstm_step(xg, hg, c_prev, gates, c, h):
    n, hh = c.shape
    for b in range(n):
        for j in range(hh):
            i = _sigmoid(xg[b, j] + hg[b, j])
            f = _sigmoid(xg[b, hh + j] + hg[b, hh + j])
            g = _tanh(xg[b, 2 * hh + j] + hg[b, 2 * hh + j])
            o = _sigmoid(xg[b, 3 * hh + j] + hg[b, 3 * hh + j])
            cc = f * c_prev[b, j] + i * g
            gates[b, j], gates[b, hh + j], gates[b, 2 * hh + j], gates[b, 3 * hh + j] = i, f, g, o
            c[b, j] = cc
            h[b, j] = o * _tanh(cc)


@njit(**_JIT)
def _lstm_step_back(dy, dh, dc, gates, c, c_prev, dpre):
    """dh, dc: the gradients arriving from the next step; dc is overwritten with dc_prev."""
    n, hh = c.shape
    for b in range(n):
        for j in range(hh):
            i, f, g, o = gates[b, j], gates[b, hh + j], gates[b, 2 * hh + j], gates[b, 3 * hh + j]
            tc = _tanh(c[b, j])
            dht = dy[b, j] + dh[b, j]
            dct = dc[b, j] + dht * o * (1 - tc * tc)
            dpre[b, j] = dct * g * i * (1 - i)
            dpre[b, hh + j] = dct * c_prev[b, j] * f * (1 - f)
            dpre[b, 2 * hh + j] = dct * i * (1 - g * g)
            dpre[b, 3 * hh + j] = dht * tc * o * (1 - o)
            dc[b, j] = dct * f


@njit(**_JIT)
def _gru_step(xg, hg, h_prev, gates, hn, h):
    n, hh = h.shape
    for b in range(n):
        for j in range(hh):
            r = _sigmoid(xg[b, j] + hg[b, j])
            z = _sigmoid(xg[b, hh + j] + hg[b, hh + j])
            cand = _tanh(xg[b, 2 * hh + j] + r * hg[b, 2 * hh + j])
            gates[b, j], gates[b, hh + j], gates[b, 2 * hh + j] = r, z, cand
            hn[b, j] = hg[b, 2 * hh + j]
            h[b, j] = (1 - z) * cand + z * h_prev[b, j]


@njit(**_JIT)
def _gru_step_back(dy, dh, gates, hn, h_prev, dxg, dhg):
    """dh is overwritten with the direct part of dh_prev (dh * z); dhg wh adds the rest."""
    n, hh = dh.shape
    for b in range(n):
        for j in range(hh):
            r, z, cand = gates[b, j], gates[b, hh + j], gates[b, 2 * hh + j]
            dht = dy[b, j] + dh[b, j]
            dan = dht * (1 - z) * (1 - cand * cand)
            dar = dan * hn[b, j] * r * (1 - r)
            daz = dht * (h_prev[b, j] - cand) * z * (1 - z)
            dxg[b, j], dxg[b, hh + j], dxg[b, 2 * hh + j] = dar, daz, dan
            dhg[b, j], dhg[b, hh + j], dhg[b, 2 * hh + j] = dar, daz, dan * r
            dh[b, j] = dht * z


@njit(**_JIT)
def _simple_step(xg, hg, h, relu):
    n, hh = h.shape
    for b in range(n):
        for j in range(hh):
            a = xg[b, j] + hg[b, j]
            h[b, j] = (a if a > 0 else 0) if relu else _tanh(a)


@njit(**_JIT)
def _simple_step_back(dy, dh, h, da, relu):
    n, hh = h.shape
    for b in range(n):
        for j in range(hh):
            d = dy[b, j] + dh[b, j]
            y = h[b, j]
            da[b, j] = (d if y > 0 else 0) if relu else d * (1 - y * y)


# ---- the time loops ------------------------------------------------------------------------

def _order(t, reverse):
    return range(t - 1, -1, -1) if reverse else range(t)


def _gemm_in(x, wi, b):
    """The input part of every gate for all steps: (T, N, G*H)."""
    t, n, _ = x.shape
    xg = x.reshape(t * n, -1) @ wi.T
    xg += b
    return xg.reshape(t, n, -1)


def rnn_forward(mode, x, h0, c0, wi, wh, bi, bh, reverse=False):
    """(y, hT, cT, saved): y (T, N, H); cT None unless LSTM; saved is what rnn_backward reads."""
    t, n, _ = x.shape
    hh = wh.shape[1]
    y = np.empty((t, n, hh), x.dtype)
    hg = np.empty((n, wh.shape[0]), x.dtype)
    h = h0
    if mode == 'gru':
        xg = _gemm_in(x, wi, bi)
        gates, hn = np.empty_like(xg), np.empty_like(y)
        for s in _order(t, reverse):
            np.matmul(h, wh.T, out=hg)
            hg += bh
            _gru_step(xg[s], hg, h, gates[s], hn[s], y[s])
            h = y[s]
        return y, h.copy(), None, (gates, hn)
    xg = _gemm_in(x, wi, bi + bh)
    if mode == 'lstm':
        gates, cs = np.empty_like(xg), np.empty_like(y)
        c = c0
        for s in _order(t, reverse):
            np.matmul(h, wh.T, out=hg)
            _lstm_step(xg[s], hg, c, gates[s], cs[s], y[s])
            h, c = y[s], cs[s]
        return y, h.copy(), c.copy(), (gates, cs)
    for s in _order(t, reverse):
        np.matmul(h, wh.T, out=hg)
        _simple_step(xg[s], hg, y[s], mode == 'rnn_relu')
        h = y[s]
    return y, h.copy(), None, ()


def _previous(y, h0, reverse):
    """h_{t-1} for every step t in processing order, in input time order: (T, N, H)."""
    if reverse:
        return np.concatenate([y[1:], h0[None]], axis=0)
    return np.concatenate([h0[None], y[:-1]], axis=0)


def rnn_backward(mode, dy, dhT, dcT, x, h0, c0, wi, wh, y, saved, reverse=False):
    """(dx, dh0, dc0, dwi, dwh, dbi, dbh); dc0 None unless LSTM."""
    t, n, _ = x.shape
    dh = dhT.copy()
    dc0 = None
    if mode == 'lstm':
        gates, cs = saved
        dc = dcT.copy()
        dxg = np.empty_like(gates)
        order = list(_order(t, reverse))
        for k in range(t - 1, -1, -1):
            s = order[k]
            c_prev = cs[order[k - 1]] if k > 0 else c0
            _lstm_step_back(dy[s], dh, dc, gates[s], cs[s], c_prev, dxg[s])
            np.matmul(dxg[s], wh, out=dh)
        dhg, dc0 = dxg, dc
    elif mode == 'gru':
        gates, hn = saved
        hprev = _previous(y, h0, reverse)
        dxg, dhg = np.empty_like(gates), np.empty_like(gates)
        for s in reversed(_order(t, reverse)):
            _gru_step_back(dy[s], dh, gates[s], hn[s], hprev[s], dxg[s], dhg[s])
            dh += dhg[s] @ wh
    else:
        dxg = np.empty((t, n, wh.shape[0]), x.dtype)
        for s in reversed(_order(t, reverse)):
            _simple_step_back(dy[s], dh, y[s], dxg[s], mode == 'rnn_relu')
            np.matmul(dxg[s], wh, out=dh)
        dhg = dxg
    hprev = _previous(y, h0, reverse)
    g = dxg.shape[-1]
    dx2, dh2 = dxg.reshape(-1, g), dhg.reshape(-1, g)
    dx = (dx2 @ wi).reshape(x.shape)
    dwi = dx2.T @ x.reshape(t * n, -1)
    dwh = dh2.T @ hprev.reshape(t * n, -1)
    return dx, dh, dc0, dwi, dwh, dx2.sum(axis=0), dh2.sum(axis=0)
