"""gluon.rnn (issue 16): the fused rnn_layer op (float64 finite differences), the cells (finite
differences, PyTorch), the layers against PyTorch's nn.LSTM/GRU/RNN with copied weights (eager and
hybridized, multi-layer, bidirectional, both layouts, given states), unroll with valid_length,
MXNet's parameter names and the errors. Tolerances for float32 vs PyTorch: rtol 1e-4 / atol 1e-5."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon import rnn
from engine.ops.rnn import rnn_layer
from engine.test_utils import check_numeric_gradient

RTOL, ATOL = 1e-4, 1e-5
GATES = {'lstm': 4, 'gru': 3, 'rnn_tanh': 1, 'rnn_relu': 1}


def _arr(x, dtype=None):
    return nd.array(x, dtype=dtype or x.dtype)


# ---- the op -----------------------------------------------------------------------------------

@pytest.mark.parametrize('mode', sorted(GATES))
@pytest.mark.parametrize('reverse', [False, True])
def test_rnn_layer_op_gradients_match_finite_differences(mode, reverse):
    rng = np.random.default_rng(1)
    t, n, c, h = 3, 2, 3, 2
    gh = GATES[mode] * h
    lstm = mode == 'lstm'
    x = rng.standard_normal((t, n, c))
    if mode == 'rnn_relu':            # keep pre-activations away from the kink at 0
        x = np.sign(x) * (np.abs(x) + 0.3)
    ins = [x, rng.standard_normal((n, h))] + ([rng.standard_normal((n, h))] if lstm else []) + \
          [rng.standard_normal((gh, c)) * 0.5, rng.standard_normal((gh, h)) * 0.5,
           rng.standard_normal(gh) * 0.1, rng.standard_normal(gh) * 0.1]

    def fn(*a):
        h0, c0 = (a[1], a[2]) if lstm else (a[1], None)
        return rnn_layer(a[0], h0, c0, *a[-4:], mode=mode, reverse=reverse)
    check_numeric_gradient(fn, ins, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize('reverse,with_lengths', [(False, False), (True, False), (False, True), (True, True)])
def test_lstm_projection_op_gradients_match_finite_differences(reverse, with_lengths):
    rng = np.random.default_rng(2)
    t, n, c, h, p = 3, 3, 2, 3, 2
    ins = [rng.standard_normal((t, n, c)), rng.standard_normal((n, p)), rng.standard_normal((n, h)),
           rng.standard_normal((4 * h, c)) * 0.5, rng.standard_normal((4 * h, p)) * 0.5,
           rng.standard_normal(4 * h) * 0.1, rng.standard_normal(4 * h) * 0.1, rng.standard_normal((p, h)) * 0.5]
    lengths = nd.array([3, 1, 2], dtype='int32') if with_lengths else None

    def fn(x, h0, c0, wi, wh, bi, bh, wr):
        return rnn_layer(x, h0, c0, wi, wh, bi, bh, mode='lstm', reverse=reverse, lengths=lengths, h2r_weight=wr)
    y, ht, ct = fn(*[_arr(a) for a in ins])
    assert (y.shape, ht.shape, ct.shape) == ((t, n, p), (n, p), (n, h))
    check_numeric_gradient(fn, ins, rtol=1e-6, atol=1e-8)


def test_input_gradient_gemm_runs_only_where_x_needs_a_gradient(monkeypatch):
    """dx = dxg wi is its own dot node: eagerly skipped for an x outside the tape, and dropped
    from a backward graph that does not ask for x's gradient."""
    from collections import Counter

    from engine.context import cpu
    from engine.graph import passes
    from engine.graph.autodiff import append_backward
    from engine.graph.trace import Tracer
    from engine.ops import rnn as rnn_ops
    rng = np.random.default_rng(3)
    t, n, c, h = 3, 2, 3, 4
    ins = [rng.standard_normal(s).astype(np.float32) for s in
           ((t, n, c), (n, h), (n, h), (4 * h, c), (4 * h, h), (4 * h,), (4 * h,))]
    calls = []
    real_dot = rnn_ops.dot
    monkeypatch.setattr(rnn_ops, 'dot', lambda *a: calls.append(1) or real_dot(*a))
    for x_on_tape in (False, True):
        arrs = [_arr(a) for a in ins]
        for a in arrs[1 if not x_on_tape else 0:]:
            a.attach_grad()
        with autograd.record():
            y = rnn_layer(*arrs, mode='lstm')[0]
        y.backward()
        assert len(calls) == x_on_tape
        assert (arrs[3].grad.asnumpy() != 0).any()
    tracer = Tracer('unit', cpu())
    with tracer:
        xs = [tracer.input(a.shape, np.dtype(a.dtype), f'x{i}') for i, a in enumerate(ins)]
        out = rnn_layer(*xs, mode='lstm')[0]
    g = tracer.graph
    g.outputs = [out._value]
    forward = {id(node) for node in g.nodes}
    for wrt, dots in (([3, 4], 0), ([0, 3], 1)):
        _, grads = append_backward(g, [g.inputs[i] for i in wrt])
        needed = passes.subgraph(g, grads, g.inputs)
        ops = Counter(node.op.name for node in needed.nodes if id(node) not in forward)
        assert ops['dot'] == dots and ops['rnn_layer_backward'] == 1, ops


@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_cpu_recurrent_gemm_forms_agree(mode):
    """The CPU loop multiplies h wh^T as (wh h^T)^T below batch 64 and directly from 64 on: a
    batch of 70 must give what its two halves (35 each) give."""
    from kernels.cpu import rnn as cpu
    rng = np.random.default_rng(30)
    t, n, c, h = 3, 70, 4, 5
    gh = GATES[mode] * h
    a = [rng.standard_normal(s) for s in ((t, n, c), (n, h), (n, h), (gh, c), (gh, h), (gh,), (gh,))]
    if mode != 'lstm':
        a[2] = None
    whole = cpu.rnn_forward(mode, *a)
    halves = [cpu.rnn_forward(mode, a[0][:, k], a[1][k], None if a[2] is None else a[2][k], *a[3:])
              for k in (slice(0, 35), slice(35, 70))]
    np.testing.assert_allclose(whole[0], np.concatenate([hv[0] for hv in halves], axis=1), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(whole[1], np.concatenate([hv[1] for hv in halves], axis=0), rtol=1e-12, atol=1e-13)


def test_rnn_layer_op_shapes_and_errors():
    x = nd.zeros((4, 2, 3))
    h0, c0 = nd.zeros((2, 5)), nd.zeros((2, 5))
    wi, wh, b = nd.zeros((20, 3)), nd.zeros((20, 5)), nd.zeros((20,))
    y, ht, ct = rnn_layer(x, h0, c0, wi, wh, b, b, mode='lstm')
    assert (y.shape, ht.shape, ct.shape) == ((4, 2, 5), (2, 5), (2, 5))
    with pytest.raises(MXNetError, match=r'rnn_layer \(lstm\): i2h_weight has shape \(20, 4\), expected \(20, 3\)'):
        rnn_layer(x, h0, c0, nd.zeros((20, 4)), wh, b, b, mode='lstm')
    with pytest.raises(MXNetError, match=r'state has shape \(3, 5\), expected \(2, 5\)'):
        rnn_layer(x, nd.zeros((3, 5)), c0, wi, wh, b, b, mode='lstm')
    with pytest.raises(MXNetError, match='unknown mode'):
        rnn_layer(x, h0, None, wi, wh, b, b, mode='lstmx')
    with pytest.raises(MXNetError, match='needs the cell state'):
        rnn_layer(x, h0, None, wi, wh, b, b, mode='lstm')
    with pytest.raises(MXNetError, match='rnn_layer: .*dtype'):
        rnn_layer(x, h0, c0, wi.astype('float64'), wh, b, b, mode='lstm')
    with pytest.raises(MXNetError, match=r'h2r_weight has shape \(5, 5\), expected \(2, 5\).*projection size 2'):
        rnn_layer(x, nd.zeros((2, 2)), c0, wi, nd.zeros((20, 2)), b, b, mode='lstm', h2r_weight=nd.zeros((5, 5)))
    with pytest.raises(MXNetError, match='for mode lstm only'):
        rnn_layer(x, h0, None, wi[:5], wh[:5], b[:5], b[:5], mode='rnn_tanh', h2r_weight=nd.zeros((5, 5)))


def test_second_order_gradient_is_a_clear_error():
    rng = np.random.default_rng(0)
    x = _arr(rng.standard_normal((2, 1, 2)))
    x.attach_grad()
    w = [_arr(rng.standard_normal(s)) for s in ((2, 2), (2, 2), (2,), (2,))]
    with autograd.record():
        y, _ = rnn_layer(x, nd.zeros((1, 2), dtype='float64'), None, *w, mode='rnn_tanh')
        (gx,) = autograd.grad(y.sum(), [x], create_graph=True)
        z = gx.sum()
    with pytest.raises(MXNetError, match='second-order gradients'):
        z.backward()


# ---- cells: finite differences and PyTorch ----------------------------------------------------

@pytest.mark.parametrize('make,nstates', [(lambda: rnn.LSTMCell(3), 2), (lambda: rnn.GRUCell(3), 1),
                                          (lambda: rnn.RNNCell(3, activation='tanh'), 1)])
def test_cell_gradients_match_finite_differences(make, nstates):
    cell = make()
    cell.initialize()
    rng = np.random.default_rng(2)
    gh = cell._gates * 3
    ins = [rng.standard_normal((2, 4))] + [rng.standard_normal((2, 3)) for _ in range(nstates)] + \
          [rng.standard_normal((gh, 4)) * 0.5, rng.standard_normal((gh, 3)) * 0.5,
           rng.standard_normal(gh) * 0.1, rng.standard_normal(gh) * 0.1]

    def fn(x, *rest):
        states, (wi, wh, bi, bh) = rest[:nstates], rest[nstates:]
        out = cell.hybrid_forward(nd, x, *states, i2h_weight=wi, h2h_weight=wh, i2h_bias=bi, h2h_bias=bh)
        # two steps, so the state path is differentiated too
        return cell.hybrid_forward(nd, x * 0.5, *out[1:], i2h_weight=wi, h2h_weight=wh, i2h_bias=bi, h2h_bias=bh)
    check_numeric_gradient(fn, ins, rtol=1e-6, atol=1e-8)


def _torch():
    return pytest.importorskip('torch')


def _copy_cell_weights(cell, tcell):
    torch = _torch()
    with torch.no_grad():
        for ours, theirs in (('i2h_weight', 'weight_ih'), ('h2h_weight', 'weight_hh'),
                             ('i2h_bias', 'bias_ih'), ('h2h_bias', 'bias_hh')):
            getattr(tcell, theirs).copy_(torch.tensor(getattr(cell, ours).data().asnumpy()))


@pytest.mark.torch
@pytest.mark.parametrize('kind', ['lstm', 'gru', 'rnn_relu'])
def test_cells_unrolled_equal_torch_cells(kind):
    torch = _torch()
    hid, n, t, c = 5, 3, 4, 2
    if kind == 'lstm':
        cell, tcell = rnn.LSTMCell(hid, input_size=c), torch.nn.LSTMCell(c, hid)
    elif kind == 'gru':
        cell, tcell = rnn.GRUCell(hid, input_size=c), torch.nn.GRUCell(c, hid)
    else:
        cell, tcell = rnn.RNNCell(hid, activation='relu', input_size=c), torch.nn.RNNCell(c, hid, nonlinearity='relu')
    cell.initialize(mx.init.Uniform(0.5))
    _copy_cell_weights(cell, tcell)
    x = np.random.default_rng(3).standard_normal((n, t, c)).astype(np.float32)
    outs, states = cell.unroll(t, _arr(x), layout='NTC', merge_outputs=True)
    st = None
    ref = []
    for k in range(t):
        st = tcell(torch.tensor(x[:, k]), st)
        ref.append((st[0] if kind == 'lstm' else st).detach().numpy())
    np.testing.assert_allclose(outs.asnumpy(), np.stack(ref, 1), rtol=RTOL, atol=ATOL)
    final = [s.detach().numpy() for s in (st if kind == 'lstm' else (st,))]
    for a, b in zip(states, final):
        np.testing.assert_allclose(a.asnumpy(), b, rtol=RTOL, atol=ATOL)


# ---- layers against PyTorch -------------------------------------------------------------------

_LAYERS = {'lstm': (rnn.LSTM, {}), 'gru': (rnn.GRU, {}), 'rnn_tanh': (rnn.RNN, {'activation': 'tanh'}),
           'rnn_relu': (rnn.RNN, {'activation': 'relu'})}


def _torch_layer(kind, c, hid, layers, bidir, batch_first):
    torch = _torch()
    kw = dict(num_layers=layers, bidirectional=bidir, batch_first=batch_first)
    if kind == 'lstm':
        return torch.nn.LSTM(c, hid, **kw)
    if kind == 'lstmp':
        return torch.nn.LSTM(c, hid, proj_size=3, **kw)
    if kind == 'gru':
        return torch.nn.GRU(c, hid, **kw)
    return torch.nn.RNN(c, hid, nonlinearity=kind[4:], **kw)


def _copy_layer_weights(layer, tl):
    torch = _torch()
    names = {'weight_ih': 'i2h_weight', 'weight_hh': 'h2h_weight', 'bias_ih': 'i2h_bias', 'bias_hh': 'h2h_bias',
             'weight_hr': 'h2r_weight'}
    with torch.no_grad():
        for name, p in tl.named_parameters():
            kind, rest = name.split('_l')
            d = 'r' if rest.endswith('_reverse') else 'l'
            ours = getattr(layer, f"{d}{int(rest.replace('_reverse', ''))}_{names[kind]}")
            p.copy_(torch.tensor(ours.data().asnumpy()))
    return {name: f"{'r' if name.endswith('_reverse') else 'l'}{int(name.split('_l')[1].replace('_reverse', ''))}_"
            f"{names[name.split('_l')[0]]}" for name, _ in tl.named_parameters()}


@pytest.mark.torch
@pytest.mark.parametrize('kind', sorted(_LAYERS))
@pytest.mark.parametrize('layers,bidir,layout', [(1, False, 'TNC'), (2, True, 'NTC'), (2, False, 'TNC'),
                                                 (1, True, 'TNC')])
@pytest.mark.parametrize('hybridize', [False, True])
def test_layers_equal_torch(kind, layers, bidir, layout, hybridize):
    torch = _torch()
    cls, kw = _LAYERS[kind]
    t, n, c, hid = 4, 3, 2, 5
    layer = cls(hid, num_layers=layers, bidirectional=bidir, layout=layout, **kw)
    layer.initialize(mx.init.Uniform(0.4))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((t, n, c) if layout == 'TNC' else (n, t, c)).astype(np.float32)
    layer(_arr(x))                                    # completes the deferred input size
    tl = _torch_layer(kind, c, hid, layers, bidir, layout == 'NTC')
    names = _copy_layer_weights(layer, tl)
    if hybridize:
        layer.hybridize()
    states = [rng.standard_normal(s.shape).astype(np.float32) for s in layer.begin_state(n)]
    xs, ss = _arr(x), [_arr(s) for s in states]
    for a in [xs] + ss:
        a.attach_grad()
    heads = None
    with autograd.record():
        out, new = layer(xs, ss)
    heads = [rng.standard_normal(a.shape).astype(np.float32) for a in [out] + new]
    autograd.backward([out] + new, [_arr(h) for h in heads])
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    tout, tnew = tl(tx, tuple(ts) if kind == 'lstm' else ts[0])
    tnew = list(tnew) if kind == 'lstm' else [tnew]
    torch.autograd.backward([tout] + tnew, [torch.tensor(h) for h in heads])
    for ours, theirs, what in [(out, tout, 'output')] + [(a, b, 'state') for a, b in zip(new, tnew)] + \
            [(xs.grad, tx.grad, 'input grad')] + [(a.grad, b.grad, 'state grad') for a, b in zip(ss, ts)]:
        np.testing.assert_allclose(ours.asnumpy(), theirs.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=what)
    for tname, p in tl.named_parameters():
        np.testing.assert_allclose(getattr(layer, names[tname]).grad().asnumpy(), p.grad.numpy(),
                                   rtol=RTOL, atol=ATOL, err_msg=f'gradient of {names[tname]}')


def _compare_with_torch(layer, tl, names, x, states, lengths=None):
    """Forward and backward with the same random head gradients; outputs, states and every
    gradient (input, states, each parameter) must agree."""
    torch = _torch()
    rng = np.random.default_rng(40)
    xs, ss = _arr(x), [_arr(s) for s in states]
    for a in [xs] + ss:
        a.attach_grad()
    with autograd.record():
        out, new = layer(xs, ss)
    heads = [rng.standard_normal(a.shape).astype(np.float32) for a in [out] + new]
    autograd.backward([out] + new, [_arr(h) for h in heads])
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    tout, tnew = tl(tx, tuple(ts) if len(ts) == 2 else ts[0])
    tnew = list(tnew) if len(ts) == 2 else [tnew]
    torch.autograd.backward([tout] + tnew, [torch.tensor(h) for h in heads])
    for ours, theirs, what in [(out, tout, 'output')] + [(a, b, 'state') for a, b in zip(new, tnew)] + \
            [(xs.grad, tx.grad, 'input grad')] + [(a.grad, b.grad, 'state grad') for a, b in zip(ss, ts)]:
        np.testing.assert_allclose(ours.asnumpy(), theirs.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=what)
    for tname, p in tl.named_parameters():
        np.testing.assert_allclose(getattr(layer, names[tname]).grad().asnumpy(), p.grad.numpy(),
                                   rtol=RTOL, atol=ATOL, err_msg=f'gradient of {names[tname]}')


@pytest.mark.torch
@pytest.mark.parametrize('layers,bidir,layout', [(1, False, 'TNC'), (2, True, 'NTC'), (2, False, 'TNC')])
@pytest.mark.parametrize('hybridize', [False, True])
def test_lstm_projection_equals_torch_proj_size(layers, bidir, layout, hybridize):
    torch = _torch()
    t, n, c, hid, proj = 4, 3, 2, 5, 3         # proj as _torch_layer('lstmp') makes it
    layer = rnn.LSTM(hid, num_layers=layers, bidirectional=bidir, layout=layout, projection_size=proj)
    layer.initialize(mx.init.Uniform(0.4))
    rng = np.random.default_rng(41)
    x = rng.standard_normal((t, n, c) if layout == 'TNC' else (n, t, c)).astype(np.float32)
    layer(_arr(x))
    tl = _torch_layer('lstmp', c, hid, layers, bidir, layout == 'NTC')
    names = _copy_layer_weights(layer, tl)
    assert any(v.endswith('h2r_weight') for v in names.values())
    if hybridize:
        layer.hybridize()
    states = [rng.standard_normal(s.shape).astype(np.float32) for s in layer.begin_state(n)]
    assert [s.shape for s in states] == [(layers * (1 + bidir), n, proj), (layers * (1 + bidir), n, hid)]
    _compare_with_torch(layer, tl, names, x, states)


@pytest.mark.torch
def test_layer_without_states_returns_output_only_and_starts_from_zeros():
    torch = _torch()
    layer = rnn.GRU(4, num_layers=2)
    layer.initialize(mx.init.Uniform(0.4))
    x = np.random.default_rng(5).standard_normal((3, 2, 3)).astype(np.float32)
    out = layer(_arr(x))
    assert isinstance(out, nd.NDArray) and out.shape == (3, 2, 4)
    tl = _torch_layer('gru', 3, 4, 2, False, False)
    _copy_layer_weights(layer, tl)
    np.testing.assert_allclose(out.asnumpy(), tl(torch.tensor(x))[0].detach().numpy(), rtol=RTOL, atol=ATOL)
    layer.hybridize()
    np.testing.assert_allclose(layer(_arr(x)).asnumpy(), out.asnumpy(), rtol=RTOL, atol=ATOL)


def test_hybridized_layer_is_one_loop_node_per_layer_and_direction(check_hybrid):
    x = nd.array(np.random.default_rng(6).standard_normal((5, 2, 3)), dtype='float32')
    block = check_hybrid(lambda: rnn.LSTM(4, num_layers=2, bidirectional=True),
                         [(x,), (x[:, :1],)], init=mx.init.Uniform(0.3))
    ops = [n.op.name for n in block.graph(x).nodes]
    assert ops.count('rnn_layer') == 4


def test_layer_dropout_between_layers_only_while_training():
    layer = rnn.LSTM(4, num_layers=2, dropout=0.5)
    layer.initialize(mx.init.Uniform(0.3))
    x = nd.array(np.random.default_rng(7).standard_normal((3, 2, 3)), dtype='float32')
    a, b = layer(x).asnumpy(), layer(x).asnumpy()
    np.testing.assert_array_equal(a, b)
    with autograd.record():
        c = layer(x).asnumpy()
    assert not np.allclose(a, c)


# ---- unroll with valid_length -----------------------------------------------------------------

def _unroll_one(cell, x, k):
    """The unrolled outputs/states of sample x (T, C) truncated to its first k steps."""
    out, st = cell.unroll(k, nd.array(x[None, :k]), layout='NTC', merge_outputs=True)
    return out.asnumpy()[0], [s.asnumpy()[0] for s in st]


@pytest.mark.parametrize('hybridize', [False, True])
def test_unroll_valid_length_masks_outputs_and_keeps_last_valid_states(hybridize):
    cell = rnn.LSTMCell(3, input_size=2)
    cell.initialize(mx.init.Uniform(0.5))
    rng = np.random.default_rng(8)
    t, lengths = 4, [4, 2, 1]
    x = rng.standard_normal((len(lengths), t, 2)).astype(np.float32)

    class Net(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            self.cell = cell

        def forward(self, x, vl):
            out, st = self.cell.unroll(t, x, layout='NTC', valid_length=vl)
            return (out, *st)
    net = Net()
    if hybridize:
        net.hybridize()
    out, h, c = net(nd.array(x), nd.array(np.array(lengths, np.float32)))
    assert out.shape == (3, t, 3)
    for i, k in enumerate(lengths):
        ref_out, (ref_h, ref_c) = _unroll_one(cell, x[i], k)
        np.testing.assert_allclose(out.asnumpy()[i, :k], ref_out, rtol=RTOL, atol=ATOL)
        assert np.all(out.asnumpy()[i, k:] == 0)
        np.testing.assert_allclose(h.asnumpy()[i], ref_h, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(c.asnumpy()[i], ref_c, rtol=RTOL, atol=ATOL)


def test_bidirectional_cell_with_valid_length_reverses_within_each_sequence():
    l_cell, r_cell = rnn.GRUCell(3, input_size=2), rnn.GRUCell(3, input_size=2)
    bi = rnn.BidirectionalCell(l_cell, r_cell)
    bi.initialize(mx.init.Uniform(0.5))
    rng = np.random.default_rng(9)
    t, lengths = 4, [3, 4]
    x = rng.standard_normal((2, t, 2)).astype(np.float32)
    out, states = bi.unroll(t, nd.array(x), layout='NTC', valid_length=nd.array(lengths))
    assert out.shape == (2, t, 6) and len(states) == 2
    for i, k in enumerate(lengths):
        fwd, (hf,) = _unroll_one(l_cell, x[i], k)
        bwd, (hb,) = _unroll_one(r_cell, x[i, :k][::-1].copy(), k)
        np.testing.assert_allclose(out.asnumpy()[i, :k], np.concatenate([fwd, bwd[::-1]], 1), rtol=RTOL, atol=ATOL)
        assert np.all(out.asnumpy()[i, k:] == 0)
        np.testing.assert_allclose(states[0].asnumpy()[i], hf, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(states[1].asnumpy()[i], hb, rtol=RTOL, atol=ATOL)
    with pytest.raises(MXNetError, match='cannot be stepped'):
        bi(nd.array(x[:, 0]), bi.begin_state(batch_size=2))


def test_fused_layer_equals_unrolled_cells():
    layer = rnn.LSTM(3, num_layers=2, input_size=2)
    layer.initialize(mx.init.Uniform(0.5))
    stack = rnn.SequentialRNNCell()
    for i in range(2):
        cell = rnn.LSTMCell(3, input_size=2 if i == 0 else 3)
        stack.add(cell)
    stack.initialize()
    for i, cell in enumerate(stack):
        for name in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias'):
            getattr(cell, name).set_data(getattr(layer, f'l{i}_{name}').data())
    x = nd.array(np.random.default_rng(10).standard_normal((5, 2, 2)), dtype='float32')
    out, states = stack.unroll(5, x, layout='TNC', merge_outputs=True)
    ref, ref_states = layer(x, layer.begin_state(2))
    np.testing.assert_allclose(out.asnumpy(), ref.asnumpy(), rtol=RTOL, atol=ATOL)
    # the layer's states are (layer, batch, hidden) for h and c; the stack's [h0, c0, h1, c1]
    np.testing.assert_allclose(states[2].asnumpy(), ref_states[0].asnumpy()[1], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(states[3].asnumpy(), ref_states[1].asnumpy()[1], rtol=RTOL, atol=ATOL)


# ---- modifier cells ---------------------------------------------------------------------------

def test_residual_dropout_and_zoneout_cells():
    base = rnn.GRUCell(2, input_size=2)
    res = rnn.ResidualCell(base)
    res.initialize(mx.init.Uniform(0.5))
    x = nd.array(np.random.default_rng(11).standard_normal((3, 2)), dtype='float32')
    st = res.begin_state(batch_size=3)
    out, new = res(x, st)
    base_out, base_new = base(x, st)
    np.testing.assert_allclose(out.asnumpy(), base_out.asnumpy() + x.asnumpy(), rtol=1e-6)
    np.testing.assert_allclose(new[0].asnumpy(), base_new[0].asnumpy(), rtol=1e-6)

    drop = rnn.DropoutCell(0.5)
    assert drop(x, [])[0] is x or np.array_equal(drop(x, [])[0].asnumpy(), x.asnumpy())
    xs = nd.array(np.random.default_rng(12).uniform(1, 2, (40, 10)), dtype='float32')   # 400 draws
    with autograd.record():
        y = drop(xs, [])[0].asnumpy()
    kept = y != 0
    assert 0.3 < kept.mean() < 0.7
    assert set(np.unique(y[kept] / xs.asnumpy()[kept]).round(4)) == {2.0}

    zone = rnn.ZoneoutCell(rnn.GRUCell(2, input_size=2), zoneout_outputs=0.5, zoneout_states=0.5)
    zone.initialize(mx.init.Uniform(0.5))
    ref_out, _ = zone.base_cell(x, zone.begin_state(batch_size=3))
    zone.reset()
    out, _ = zone(x, zone.begin_state(batch_size=3))   # predict mode: the base cell's values
    np.testing.assert_allclose(out.asnumpy(), ref_out.asnumpy(), rtol=1e-6)
    zone.reset()
    with autograd.record():
        out, _ = zone(x, zone.begin_state(batch_size=3))
    o, r = out.asnumpy(), ref_out.asnumpy()
    assert np.all((o == 0) | np.isclose(o, r))        # each unit: the previous output (0) or the new one


# ---- names, API, errors -----------------------------------------------------------------------

def test_parameter_names_and_shapes_follow_mxnet():
    layer = rnn.LSTM(8, num_layers=2, bidirectional=True, input_size=3)
    params = layer.collect_params()
    p = layer.prefix
    assert p == 'lstm0_' or p.startswith('lstm')
    expect = [f'{p}{d}{i}_{g}_{t}' for i in range(2) for d in 'lr' for g, t in
              (('i2h', 'weight'), ('h2h', 'weight'), ('i2h', 'bias'), ('h2h', 'bias'))]
    assert list(params.keys()) == expect
    assert params[f'{p}l0_i2h_weight'].shape == (32, 3)
    assert params[f'{p}l1_i2h_weight'].shape == (32, 16)
    assert params[f'{p}r1_h2h_weight'].shape == (32, 8)
    cell = rnn.GRUCell(4, input_size=2)
    assert sorted(k[len(cell.prefix):] for k in cell.collect_params()) == \
        ['h2h_bias', 'h2h_weight', 'i2h_bias', 'i2h_weight']
    assert cell.prefix.startswith('gru')
    assert [s['shape'] for s in layer.state_info(5)] == [(4, 5, 8), (4, 5, 8)]
    # with a projection, as MXNet 1.9 registers them: h2r_weight (P, H) after each direction's biases
    lp = rnn.LSTM(8, num_layers=2, bidirectional=True, input_size=3, projection_size=2)
    q = lp.prefix
    assert list(lp.collect_params()) == [f'{q}{d}{i}_{g}' for i in range(2) for d in 'lr' for g in
                                         ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias', 'h2r_weight')]
    assert (lp.l0_h2h_weight.shape, lp.l0_h2r_weight.shape, lp.l1_i2h_weight.shape) == ((32, 2), (2, 8), (32, 4))
    assert [s['shape'] for s in lp.state_info(5)] == [(4, 5, 2), (4, 5, 8)]


def test_layer_errors_are_clear():
    layer = rnn.LSTM(4)
    layer.initialize()
    x = nd.zeros((3, 2, 5))
    with pytest.raises(MXNetError, match=r'invalid recurrent state shape \(1, 3, 4\); expected \(1, 2, 4\)'):
        layer(x, [nd.zeros((1, 3, 4)), nd.zeros((1, 3, 4))])
    with pytest.raises(MXNetError, match='expected 2 state arrays, got 1'):
        layer(x, nd.zeros((1, 2, 4)))
    with pytest.raises(MXNetError, match='3-d input'):
        layer(nd.zeros((3, 5)))
    with pytest.raises(MXNetError, match='layout'):
        rnn.GRU(4, layout='CTN')
    with pytest.raises(MXNetError, match='projection_size must be a positive int'):
        rnn.LSTM(4, projection_size=-2)
    lp = rnn.LSTM(4, projection_size=2)
    lp.initialize()
    with pytest.raises(MXNetError, match=r'state shape \(1, 2, 4\); expected \(1, 2, 2\).*projection_size'):
        lp(x, [nd.zeros((1, 2, 4)), nd.zeros((1, 2, 4))])
    with pytest.raises(MXNetError, match="activation must be 'relu' or 'tanh'"):
        rnn.RNN(4, activation='sigmoid')
    cell = rnn.LSTMCell(4)
    cell.initialize()
    with pytest.raises(MXNetError, match='LSTMCell: expected 2 state'):
        cell(nd.zeros((2, 3)), [nd.zeros((2, 4))])
    with pytest.raises(MXNetError, match='length=4'):
        cell.unroll(4, nd.zeros((2, 3, 3)))


# ---- the CUDA twin, without a GPU -------------------------------------------------------------

def test_cuda_twin_has_the_cpu_signatures():
    import inspect

    from kernels.cpu import rnn as cpu
    from kernels.cuda import rnn as cuda
    for name in cpu.__all__:
        assert inspect.signature(getattr(cuda, name)) == inspect.signature(getattr(cpu, name)), name


@pytest.mark.skipif(__import__('shutil').which('g++') is None, reason='the CUDA emulator needs g++')
@pytest.mark.parametrize('mode', sorted(GATES) + ['lstmp'])
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('lengths', [None, np.array([3, 1])])
def test_cuda_twin_matches_cpu_under_the_host_emulator(mode, dtype, lengths):
    from kernels.cpu import rnn as cpu
    from kernels.cuda import _emulator, _runtime
    from kernels.cuda import rnn as cuda
    rng = np.random.default_rng(12)
    t, n, c, h = 3, 2, 3, 4
    proj = 2 if mode == 'lstmp' else None       # LSTM with a projection: h and y have 2 columns
    mode = 'lstm' if proj else mode
    p = proj or h
    gh = GATES[mode] * h
    lstm = mode == 'lstm'
    a = dict(x=rng.standard_normal((t, n, c)), h0=rng.standard_normal((n, p)),
             c0=rng.standard_normal((n, h)) if lstm else None, wi=rng.standard_normal((gh, c)) * 0.5,
             wh=rng.standard_normal((gh, p)) * 0.5, bi=rng.standard_normal(gh), bh=rng.standard_normal(gh))
    a = {k: None if v is None else v.astype(dtype) for k, v in a.items()}
    wr = (rng.standard_normal((p, h)) * 0.5).astype(dtype) if proj else None
    heads = [rng.standard_normal(s).astype(dtype) for s in ((t, n, p), (n, p), (n, h))]
    rtol, atol = (1e-4, 1e-5) if dtype == 'float32' else (1e-9, 1e-11)
    want = cpu.rnn_forward(mode, *a.values(), reverse=True, lengths=lengths, wr=wr)
    _runtime.set_backend(_emulator.EmulatorBackend())
    try:
        got = cuda.rnn_forward(mode, *a.values(), reverse=True, lengths=lengths, wr=wr)
        y = got[0]
        g_back = cuda.rnn_backward(mode, heads[0], heads[1], heads[2] if lstm else None, a['x'], a['h0'], a['c0'],
                                   a['wi'], a['wh'], y, got[3], reverse=True, lengths=lengths, wr=wr)
    finally:
        _runtime.set_backend(None)
    w_back = cpu.rnn_backward(mode, heads[0], heads[1], heads[2] if lstm else None, a['x'], a['h0'], a['c0'],
                              a['wi'], a['wh'], want[0], want[3], reverse=True, lengths=lengths, wr=wr)
    assert (w_back[-1] is None) == (proj is None)
    for k, (g, w) in enumerate(zip(list(got[:3]) + list(got[3]) + list(g_back),
                                   list(want[:3]) + list(want[3]) + list(w_back))):
        assert (g is None) == (w is None), k
        if g is not None:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f'value {k}')


@pytest.mark.gpu
@pytest.mark.parametrize('kind', sorted(_LAYERS) + ['lstmp'])
@pytest.mark.parametrize('hybridize', [False, True])
def test_layers_on_gpu_equal_cpu(kind, hybridize):
    cls, kw = _LAYERS[kind] if kind != 'lstmp' else (rnn.LSTM, {'projection_size': 3})
    rng = np.random.default_rng(13)
    x = rng.standard_normal((6, 3, 4)).astype(np.float32)
    # (layers * directions, batch, hidden) for each state; h is projection_size wide for lstmp
    s0 = [rng.standard_normal((4, 3, 3 if kind == 'lstmp' and i == 0 else 5)).astype(np.float32) for i in range(2)]
    results = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        mx.random.seed(0)
        layer = cls(5, num_layers=2, bidirectional=True, **kw)
        layer.initialize(mx.init.Uniform(0.4), ctx=ctx)
        if hybridize:
            layer.hybridize()
        xs = nd.array(x, ctx=ctx)
        xs.attach_grad()
        states = [nd.array(s, ctx=ctx) for s, _ in zip(s0, layer.begin_state(3))]
        with autograd.record():
            out, new = layer(xs, states)
            loss = (out * out).sum() + sum((s * s).sum() for s in new)
        loss.backward()
        grads = {k[len(layer.prefix):]: p.grad(ctx).asnumpy() for k, p in layer.collect_params().items()}
        results.append((out.asnumpy(), [s.asnumpy() for s in new], xs.grad.asnumpy(), grads))
    (o1, s1, g1, w1), (o2, s2, g2, w2) = results
    np.testing.assert_allclose(o2, o1, rtol=RTOL, atol=ATOL)
    for a, b in zip(s2, s1):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g2, g1, rtol=RTOL, atol=ATOL)
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], rtol=1e-3, atol=1e-4, err_msg=k)


# ---- MXNet's files ----------------------------------------------------------------------------

_FIXTURES = __import__('pathlib').Path(__file__).resolve().parents[1] / 'fixtures' / 'mxnet'
_MX_CASES = {'lstm': lambda: rnn.LSTM(4, num_layers=2, bidirectional=True, layout='NTC'),
             'gru': lambda: rnn.GRU(4, num_layers=1), 'rnn': lambda: rnn.RNN(4, num_layers=2, activation='tanh'),
             'lstmp': lambda: rnn.LSTM(5, num_layers=2, bidirectional=True, projection_size=3)}


@pytest.mark.parametrize('name', sorted(_MX_CASES))
@pytest.mark.parametrize('hybridize', [False, True])
def test_mxnet_params_load_and_give_mxnets_output(name, hybridize, tmp_path):
    """Files written by MXNet 1.9's save_parameters (tests/fixtures/mxnet/generate_rnn.py)."""
    layer = _MX_CASES[name]()
    layer.load_parameters(str(_FIXTURES / f'rnn_{name}.params'))
    if hybridize:
        layer.hybridize()
    io = np.load(_FIXTURES / f'rnn_{name}_io.npz')
    n_states = len([k for k in io.files if k.startswith('state')])
    out, new = layer(nd.array(io['x']), [nd.array(io[f'state{i}']) for i in range(n_states)])
    np.testing.assert_allclose(out.asnumpy(), io['output'], rtol=RTOL, atol=ATOL)
    for i, s in enumerate(new):
        np.testing.assert_allclose(s.asnumpy(), io[f'new_state{i}'], rtol=RTOL, atol=ATOL)
    # and our own save writes the same names back
    layer.save_parameters(str(tmp_path / 'again.params'))
    assert sorted(nd.load(str(tmp_path / 'again.params'))) == sorted(nd.load(str(_FIXTURES / f'rnn_{name}.params')))


@pytest.mark.gpu
def test_unrolled_cells_on_gpu_equal_cpu():
    x = np.random.default_rng(14).standard_normal((2, 4, 3)).astype(np.float32)
    outs = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        stack = rnn.SequentialRNNCell()
        stack.add(rnn.LSTMCell(5, input_size=3))
        stack.add(rnn.GRUCell(5, input_size=5))
        stack.initialize(mx.init.Uniform(0.4), ctx=ctx)
        for i, cell in enumerate(stack):
            for k, p in enumerate((cell.i2h_weight, cell.h2h_weight, cell.i2h_bias, cell.h2h_bias)):
                p.set_data(nd.array(np.random.default_rng(i * 4 + k).uniform(-0.4, 0.4, p.shape), ctx=ctx))
        out, _ = stack.unroll(4, nd.array(x, ctx=ctx), layout='NTC', merge_outputs=True,
                              valid_length=nd.array([4, 2], ctx=ctx))
        outs.append(out.asnumpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=RTOL, atol=ATOL)


# ---- variable lengths in the fused layer ------------------------------------------------------

@pytest.mark.parametrize('mode', sorted(GATES))
def test_rnn_layer_op_with_lengths_matches_finite_differences(mode):
    rng = np.random.default_rng(15)
    t, n, c, h = 3, 3, 2, 2
    gh = GATES[mode] * h
    lstm = mode == 'lstm'
    x = rng.standard_normal((t, n, c))
    if mode == 'rnn_relu':
        x = np.sign(x) * (np.abs(x) + 0.3)
    ins = [x, rng.standard_normal((n, h))] + ([rng.standard_normal((n, h))] if lstm else []) + \
          [rng.standard_normal((gh, c)) * 0.5, rng.standard_normal((gh, h)) * 0.5,
           rng.standard_normal(gh) * 0.1, rng.standard_normal(gh) * 0.1]
    lengths = nd.array([3, 1, 2], dtype='int32')
    for reverse in (False, True):
        def fn(*a):
            h0, c0 = (a[1], a[2]) if lstm else (a[1], None)
            return rnn_layer(a[0], h0, c0, *a[-4:], mode=mode, reverse=reverse, lengths=lengths)
        check_numeric_gradient(fn, ins, rtol=1e-6, atol=1e-8)


@pytest.mark.torch
@pytest.mark.parametrize('kind', ['lstm', 'gru', 'rnn_tanh', 'lstmp'])
@pytest.mark.parametrize('hybridize', [False, True])
def test_layer_sequence_length_equals_torch_packed_sequences(kind, hybridize):
    torch = _torch()
    cls, kw = _LAYERS[kind] if kind != 'lstmp' else (rnn.LSTM, {'projection_size': 3})
    t, n, c, hid = 5, 3, 2, 4
    layer = cls(hid, num_layers=2, bidirectional=True, use_sequence_length=True, **kw)
    layer.initialize(mx.init.Uniform(0.4))
    rng = np.random.default_rng(17)
    x = rng.standard_normal((t, n, c)).astype(np.float32)
    lengths = np.array([5, 2, 3])
    layer(_arr(x), None, nd.array(lengths))
    tl = _torch_layer(kind, c, hid, 2, True, False)
    names = _copy_layer_weights(layer, tl)
    if hybridize:
        layer.hybridize()
    states = [rng.standard_normal(s.shape).astype(np.float32) for s in layer.begin_state(n)]
    xs, ss = _arr(x), [_arr(s) for s in states]
    for a in [xs] + ss:
        a.attach_grad()
    with autograd.record():
        out, new = layer(xs, ss, nd.array(lengths))
    heads = [rng.standard_normal(a.shape).astype(np.float32) for a in [out] + new]
    autograd.backward([out] + new, [_arr(h) for h in heads])
    pack = torch.nn.utils.rnn.pack_padded_sequence
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    packed, tnew = tl(pack(tx, torch.tensor(lengths), enforce_sorted=False), tuple(ts) if len(ts) == 2 else ts[0])
    tout, _ = torch.nn.utils.rnn.pad_packed_sequence(packed, total_length=t)
    tnew = list(tnew) if len(ts) == 2 else [tnew]
    torch.autograd.backward([tout] + tnew, [torch.tensor(h) for h in heads])
    for ours, theirs, what in [(out, tout, 'output')] + [(a, b, 'state') for a, b in zip(new, tnew)] + \
            [(xs.grad, tx.grad, 'input grad')] + [(a.grad, b.grad, 'state grad') for a, b in zip(ss, ts)]:
        np.testing.assert_allclose(ours.asnumpy(), theirs.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=what)
    for tname, p in tl.named_parameters():
        np.testing.assert_allclose(getattr(layer, names[tname]).grad().asnumpy(), p.grad.numpy(),
                                   rtol=RTOL, atol=ATOL, err_msg=f'gradient of {names[tname]}')
    with pytest.raises(MXNetError, match='sequence_length must be given exactly'):
        layer(xs, ss)
