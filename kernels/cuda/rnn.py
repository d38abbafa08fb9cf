"""Fused recurrent layers on CuPy arrays: the GPU twin of ``kernels/cpu/rnn.py`` (same functions,
arguments and returns). The time loops are the CPU module's (``run_forward``/``run_backward``,
array-module generic); the GEMMs are cuBLAS through ``cupy.matmul`` and the per-step gate
kernels are ``rnn.cu``, one thread per (sample, hidden unit)."""
from types import SimpleNamespace

from kernels.cpu.rnn import plain_gemm, run_backward, run_forward

from . import _runtime as rt
from ._util import require_device, require_float

__all__ = ["rnn_forward", "rnn_backward"]

_k = rt.Family("rnn")


def _lstm_step(xg, hg, c_prev, gates, c, h):
    n, hh = c.shape
    _k.launch_1d("lstm_step", c.dtype, n * hh, xg, hg, c_prev, gates, c, h, n, hh)


def _lstm_step_back(dy, dh, dc, gates, c, c_prev, dpre):
    n, hh = c.shape
    _k.launch_1d("lstm_step_back", c.dtype, n * hh, dy, dh, dc, gates, c, c_prev, dpre, n, hh)


def _gru_step(xg, hg, h_prev, gates, hn, h):
    n, hh = h.shape
    _k.launch_1d("gru_step", h.dtype, n * hh, xg, hg, h_prev, gates, hn, h, n, hh)


def _gru_step_back(dy, dh, gates, hn, h_prev, dxg, dhg):
    n, hh = dh.shape
    _k.launch_1d("gru_step_back", dh.dtype, n * hh, dy, dh, gates, hn, h_prev, dxg, dhg, n, hh)


def _simple_step(xg, hg, h, relu):
    _k.launch_1d("simple_step", h.dtype, h.size, xg, hg, h, h.size, int(relu))


def _simple_step_back(dy, dh, h, da, relu):
    _k.launch_1d("simple_step_back", h.dtype, h.size, dy, dh, h, da, h.size, int(relu))


_STEPS = SimpleNamespace(lstm_step=_lstm_step, lstm_step_back=_lstm_step_back, gru_step=_gru_step,
                         gru_step_back=_gru_step_back, simple_step=_simple_step,
                         simple_step_back=_simple_step_back, hidden_gemm=plain_gemm)


def _inputs(fn, arrays):
    xp = rt.xp()
    out = []
    for name, a in arrays:
        if a is None:
            out.append(None)
            continue
        require_device(fn, name, a)
        require_float(fn, name, a)
        out.append(xp.ascontiguousarray(a))
    return xp, out


def rnn_forward(mode, x, h0, c0, wi, wh, bi, bh, reverse=False, lengths=None, wr=None):
    """(y, hT, cT, saved): y (T, N, H); cT None unless LSTM; saved is what rnn_backward reads.
    lengths (N,): valid steps per sample (the state is held at padded steps). wr (P, H): the
    LSTM's projection (y and the h state then have P columns)."""
    xp, a = _inputs("rnn_forward", [("x", x), ("h0", h0), ("c0", c0), ("wi", wi), ("wh", wh),
                                    ("bi", bi), ("bh", bh), ("wr", wr)])
    return run_forward(_STEPS, xp, mode, *a[:7], reverse, lengths, a[7])


def rnn_backward(mode, dy, dhT, dcT, x, h0, c0, wi, wh, y, saved, reverse=False, lengths=None, wr=None):
    """(dxg, dh0, dc0, dwi, dwh, dbi, dbh, dwr); dc0 None unless LSTM, dwr None without wr;
    dx = dxg wi (the caller's, when x needs a gradient)."""
    xp, a = _inputs("rnn_backward", [("dy", dy), ("dhT", dhT), ("dcT", dcT), ("x", x), ("h0", h0),
                                     ("c0", c0), ("wi", wi), ("wh", wh), ("y", y), ("wr", wr)])
    saved = tuple(xp.ascontiguousarray(s) for s in saved)
    return run_backward(_STEPS, xp, mode, *a[:9], saved, reverse, lengths, a[9])
