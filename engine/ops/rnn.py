"""The fused recurrent layer op: one layer, one direction, the whole time loop in one node.

`rnn_layer(x, h0, [c0], wi, wh, bi, bh; mode, reverse)` returns (y, hT, [cT], *saved): the saved
values (activated gates, LSTM cell states, GRU's h2h candidate part) are extra outputs that only
the gradient rule reads. Its gradient is the op `rnn_layer_backward` (BPTT in one kernel call),
so a hybridized graph holds the loop as one forward and one backward node, plus a `dot` for dx
that only exists where x needs a gradient. Multi-layer and
bidirectional layers are compositions of this op (gluon.rnn). Kernels: kernels/cpu/rnn.py and
its CUDA twin kernels/cuda/rnn.py."""
from types import SimpleNamespace

import numpy as np

from kernels.cpu import rnn as _cpu_rnn

from ..base import MXNetError, fmt_shape
from ..imperative import invoke
from .backends import GPU
from .elemwise import cast
from .linalg import dot
from .nn import full_like, stop_gradient
from .registry import register

GATES = {'lstm': 4, 'gru': 3, 'rnn_tanh': 1, 'rnn_relu': 1}
_SAVED = {'lstm': 2, 'gru': 2, 'rnn_tanh': 0, 'rnn_relu': 0}


def _nstates(mode):
    return 2 if mode == 'lstm' else 1


def _infer(shapes, dtypes, mode, reverse, use_lengths=False, proj=False):
    if mode not in GATES:
        raise MXNetError(f'rnn_layer: unknown mode {mode!r}; expected one of {sorted(GATES)}')
    if proj and mode != 'lstm':
        raise MXNetError(f'rnn_layer: a projection (h2r_weight) is for mode lstm only, got mode {mode}')
    ns = _nstates(mode)
    if len(shapes) != 5 + ns + proj + use_lengths:
        raise MXNetError(f'rnn_layer: mode {mode} takes {5 + ns + proj + use_lengths} inputs (x, '
                         f'{"h0, c0" if ns == 2 else "h0"}, i2h_weight, h2h_weight, i2h_bias, h2h_bias'
                         f'{", h2r_weight" if proj else ""}{", lengths" if use_lengths else ""}), got {len(shapes)}')
    x, states, (wi, wh, bi, bh) = shapes[0], shapes[1:1 + ns], shapes[1 + ns:5 + ns]
    wr = shapes[5 + ns] if proj else None
    if len(x) != 3 or len(wh) != 2 or (proj and len(wr) != 2):
        raise MXNetError(f'rnn_layer: expects x (T, N, C) and a 2-d h2h_weight{" and h2r_weight" if proj else ""}, '
                         f'got {fmt_shape(x)} and {fmt_shape(wh)}{" and " + fmt_shape(wr) if proj else ""}')
    t, n, c = x
    p = wh[1]                        # the h state's (and output's) width: P with a projection
    hh = wr[1] if proj else p        # the cell's width H
    gh = GATES[mode] * hh
    want = [('i2h_weight', wi, (gh, c)), ('h2h_weight', wh, (gh, p)), ('i2h_bias', bi, (gh,)),
            ('h2h_bias', bh, (gh,))] + ([('h2r_weight', wr, (p, hh))] if proj else []) + \
        [('state', s, (n, w)) for s, w in zip(states, (p, hh))] + \
        ([('lengths', shapes[-1], (n,))] if use_lengths else [])
    for name, got, exp in want:
        if tuple(got) != exp:
            raise MXNetError(f'rnn_layer ({mode}): {name} has shape {fmt_shape(got)}, expected {fmt_shape(exp)} '
                             f'for input {fmt_shape(x)} and hidden size {hh}'
                             f'{f", projection size {p}" if proj else ""}')
    if len(set(dtypes)) != 1 or np.dtype(dtypes[0]).kind != 'f':
        raise MXNetError(f'rnn_layer: all inputs must have one floating dtype, got {[str(d) for d in dtypes]}')
    saved = {'lstm': [(t, n, gh), (t, n, hh)] + ([(t, n, hh)] if proj else []),
             'gru': [(t, n, gh), (t, n, hh)]}.get(mode, [])
    outs = [(t, n, p), (n, p)] + [(n, hh)] * (ns - 1) + saved
    return outs, [dtypes[0]] * len(outs)


def _kernel(K):
    def rnn_layer(*arrays, mode, reverse, use_lengths=False, proj=False, out=None):
        ns = _nstates(mode)
        x, h0 = arrays[0], arrays[1]
        c0 = arrays[2] if ns == 2 else None
        lengths = arrays[-1] if use_lengths else None
        wr = arrays[5 + ns] if proj else None
        y, ht, ct, saved = K.rnn.rnn_forward(mode, x, h0, c0, *arrays[1 + ns:5 + ns], reverse=reverse,
                                             lengths=lengths, wr=wr)
        return _into((y, ht) + ((ct,) if ns == 2 else ()) + tuple(saved), out)
    return rnn_layer


def _into(results, out):
    """The op contract: results written into the caller's `out` buffers when given."""
    if out is None:
        return results
    for o, r in zip(out, results):
        o[...] = r
    return tuple(out)


# rnn_layer_backward's inputs: the head gradients (dy, dhT, [dcT]), x, the states, i2h/h2h
# weights, [h2r_weight], y, the saved values, [lengths]

def _bwd_split(seq, mode, use_lengths, proj):
    ns = _nstates(mode) if mode in GATES else 1
    lengths = seq[-1] if use_lengths else None
    seq = seq[:-1] if use_lengths else seq
    heads, x, states = seq[:1 + ns], seq[1 + ns], seq[2 + ns:2 + 2 * ns]
    k = 2 + 2 * ns
    wi, wh, wr = seq[k], seq[k + 1], (seq[k + 2] if proj else None)
    k += 2 + proj
    return heads, x, states, wi, wh, wr, seq[k], seq[k + 1:], lengths


def _bwd_kernel(K):
    def rnn_layer_backward(*arrays, mode, reverse, use_lengths=False, proj=False, out=None):
        ns = _nstates(mode)
        heads, x, states, wi, wh, wr, y, saved, lengths = _bwd_split(arrays, mode, use_lengths, proj)
        dct, c0 = (heads[2], states[1]) if ns == 2 else (None, None)
        dxg, dh0, dc0, dwi, dwh, dbi, dbh, dwr = K.rnn.rnn_backward(
            mode, heads[0], heads[1], dct, x, states[0], c0, wi, wh, y, saved, reverse=reverse,
            lengths=lengths, wr=wr)
        return _into((dxg, dh0) + ((dc0,) if ns == 2 else ()) + (dwi, dwh, dbi, dbh) +
                     ((dwr,) if proj else ()), out)
    return rnn_layer_backward


def _bwd_infer(shapes, dtypes, mode, reverse, use_lengths=False, proj=False):
    # all re-derived from the forward rule, so a tampered graph cannot hand the Numba kernels
    # mismatched buffers
    ns = _nstates(mode) if mode in GATES else 1
    bad = MXNetError(f'rnn_layer_backward ({mode}): unexpected inputs {[fmt_shape(s) for s in shapes]}')
    if len(shapes) < 5 + 2 * ns + proj + use_lengths:
        raise bad
    heads, x, states, wi, wh, wr, y, saved, lengths = _bwd_split(shapes, mode, use_lengths, proj)
    if use_lengths and tuple(lengths) != tuple(x[1:2]):   # the lengths are (N,) like x's batch
        raise bad
    if len(wi) != 2 or len(wh) != 2 or (proj and len(wr) != 2):
        raise bad
    weights = [wi, wh, (wi[0],), (wi[0],)] + ([wr] if proj else [])
    fwd, _ = _infer([x, *states, *weights], [dtypes[0]] * (5 + ns + proj), mode, reverse, proj=proj)
    given = [*heads, y, *saved]
    expect = [*fwd[:1 + ns], fwd[0], *fwd[1 + ns:]]
    if [tuple(s) for s in given] != [tuple(s) for s in expect] or len(set(dtypes)) != 1:
        raise MXNetError(f'rnn_layer_backward ({mode}): gradients/saved values {[fmt_shape(s) for s in given]} '
                         f'{sorted(set(np.dtype(d).name for d in dtypes))} do not match the forward\'s '
                         f'{[fmt_shape(s) for s in expect]} for x {fmt_shape(x)}')
    outs = [(*x[:2], wi[0]), *states, *weights]     # dxg (T, N, G*H) first: dx = dxg wi
    return outs, [dtypes[0]] * len(outs)


def _grad(gs, ys, *inputs, mode, reverse, use_lengths=False, proj=False):
    ns = _nstates(mode)
    # inputs: x, states, i2h/h2h weights, biases, [h2r_weight], [lengths]
    x, states = inputs[0], inputs[1:1 + ns]
    weights = inputs[1 + ns:3 + ns] + ((inputs[5 + ns],) if proj else ())
    # an output that received no gradient (e.g. the final states) comes as None
    heads = [full_like(y, 0.0) if g is None else g for g, y in zip(gs[:1 + ns], ys)]
    args = [*heads, x, *states, *weights, ys[0], *ys[1 + ns:]] + ([inputs[-1]] if use_lengths else [])
    attrs = {'mode': mode, 'reverse': reverse, 'use_lengths': use_lengths, 'proj': proj}
    dxg, *grads = invoke(_rnn_bwd, args, attrs)
    # dx = dxg wi is a node of its own: a graph drops it when x needs no gradient, and eagerly an
    # x outside the tape skips it (the first layer's dx is 1/7 of a training step's FLOPs)
    dx = dot(dxg, inputs[1 + ns]) if _on_tape(x) else None
    return [dx] + grads + ([None] if use_lengths else [])   # no gradient for the lengths


def _on_tape(x):
    """False only for an eager array no gradient can flow to (not recorded, no attach_grad)."""
    return getattr(x, '_is_symbol', False) or x._entry is not None


def _no_second_order(gs, ys, *inputs, mode, reverse, use_lengths=False, proj=False):
    raise MXNetError('rnn_layer_backward: second-order gradients of the fused RNN layer are not '
                     'implemented; unroll the gluon.rnn cells instead (they compose differentiable ops)')


def per_device(make):
    # backends.per_device with this module's kernels (GPU.rnn imports kernels/cuda/rnn on first use)
    return {'cpu': make(SimpleNamespace(rnn=_cpu_rnn)), 'gpu': make(GPU)}


_rnn = register('rnn_layer', _infer, kernels=per_device(_kernel), grad=_grad, multi_output=True)
_rnn_bwd = register('rnn_layer_backward', _bwd_infer, kernels=per_device(_bwd_kernel),
                    grad=_no_second_order, multi_output=True)


def rnn_layer(x, h0, c0, i2h_weight, h2h_weight, i2h_bias, h2h_bias, mode='lstm', reverse=False,
              lengths=None, h2r_weight=None):
    """One fused recurrent layer over x (T, N, C) from states h0 (and c0 for LSTM), each (N, H).

    Returns (y (T, N, H), hT) or, for LSTM, (y, hT, cT); the time loop runs backwards when
    `reverse` (outputs stay in input time order). With `lengths` (N,), sample n's steps from
    lengths[n] on are padding: its state is held there (so the final states are those after its
    last valid step, and the reverse direction starts at its last valid step) and y holds the
    held state there (mask it to get zeros). `h2r_weight` (P, H) projects an LSTM's output
    (LSTMP): y, h0 and hT are then (., P) and h2h_weight is (4H, P)."""
    if mode not in GATES:
        raise MXNetError(f'rnn_layer: unknown mode {mode!r}; expected one of {sorted(GATES)}')
    states = [h0, c0] if mode == 'lstm' else [h0]
    if mode == 'lstm' and c0 is None:
        raise MXNetError('rnn_layer: mode lstm needs the cell state c0')
    proj = [] if h2r_weight is None else [h2r_weight]
    extra = [] if lengths is None else [cast(stop_gradient(lengths), x.dtype)]
    outs = invoke(_rnn, [x, *states, i2h_weight, h2h_weight, i2h_bias, h2h_bias, *proj, *extra],
                  {'mode': mode, 'reverse': bool(reverse), 'use_lengths': lengths is not None,
                   'proj': bool(proj)})
    return outs[:1 + len(states)]
