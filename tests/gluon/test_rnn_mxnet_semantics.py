"""gluon.rnn where MXNet 1.9.1's own test_gluon_rnn found the engine different (issue 16): cells
unrolled on mx.sym Symbols, stacks and residuals of BidirectionalCells, fused layers unfused into
cells (`_unfuse`), hybridized stateful modifiers, cells written with MXNet's list-of-states step,
and gluon.contrib.rnn (LSTMPCell, VariationalDropoutCell, dynamic_unroll, Conv*Cells)."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon import contrib, rnn
from engine.test_utils import check_numeric_gradient

RTOL, ATOL = 1e-4, 1e-5


def _rand(shape, seed=0, dtype='float32'):
    return nd.array(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)


def _params(block):
    return {name: p.data() for name, p in block.collect_params().items()}


# ---- symbolic unroll --------------------------------------------------------------------------

@pytest.mark.parametrize('make', [lambda: rnn.LSTMCell(4, prefix='rnn_'), lambda: rnn.GRUCell(4, prefix='rnn_'),
                                  lambda: rnn.RNNCell(4, prefix='rnn_')])
def test_symbolic_unroll_names_steps_and_computes_the_eager_unroll(make):
    cell = make()
    cell.initialize(mx.init.Uniform(0.5))
    xs = [_rand((2, 3), seed=t) for t in range(3)]
    ref, ref_states = cell.unroll(3, xs)      # eager: also sets the deferred input size
    outs, states = cell.unroll(3, [mx.sym.var(f'rnn_t{t}_data') for t in range(3)])
    group = mx.sym.Group(outs)
    assert group.list_outputs() == ['rnn_t0_out_output', 'rnn_t1_out_output', 'rnn_t2_out_output']
    _, out_shapes, _ = group.infer_shape(**{f'rnn_t{t}_data': (2, 3) for t in range(3)})
    assert out_shapes == [(2, 4)] * 3
    feed = dict(_params(cell), **{f'rnn_t{t}_data': x for t, x in enumerate(xs)})
    got = mx.sym.Group(outs + states).eval(**feed)
    for g, r in zip(got, ref + ref_states):
        np.testing.assert_allclose(g.asnumpy(), r.asnumpy(), rtol=RTOL, atol=ATOL)


def test_symbolic_unroll_of_one_symbol_with_valid_length():
    cell = rnn.RNNCell(3, input_size=2, prefix='c_')
    cell.initialize(mx.init.Uniform(0.5))
    x, vl = _rand((4, 5, 2)), nd.array([1, 5, 3, 2])
    ref, ref_states = cell.unroll(5, x, valid_length=vl, merge_outputs=True)
    out, states = cell.unroll(5, mx.sym.var('data'), valid_length=mx.sym.var('vl'), merge_outputs=True)
    got = mx.sym.Group([out] + states).eval(data=x, vl=vl, **_params(cell))
    np.testing.assert_allclose(got[0].asnumpy(), ref.asnumpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got[1].asnumpy(), ref_states[0].asnumpy(), rtol=RTOL, atol=ATOL)


def test_symbolic_begin_state_with_unknown_batch_takes_the_inputs_batch():
    """begin_state(func=mx.sym.zeros) has batch 0, MXNet's 'unknown', filled from the inputs."""
    stack = rnn.SequentialRNNCell()
    stack.add(rnn.LSTMCell(4, input_size=3, prefix='a_'))
    stack.add(rnn.GRUCell(2, input_size=4, prefix='b_'))
    stack.initialize(mx.init.Uniform(0.5))
    begin = stack.begin_state(func=mx.sym.zeros)
    out, states = stack.unroll(3, mx.sym.var('x'), begin_state=begin, merge_outputs=True)
    assert out.infer_shape(x=(5, 3, 3))[1] == [(5, 3, 2)]
    x = _rand((5, 3, 3), seed=16)
    ref, ref_states = stack.unroll(3, x, merge_outputs=True)
    got = mx.sym.Group([out] + states).eval(x=x, **_params(stack))
    for g, r in zip(got, [ref] + ref_states):
        np.testing.assert_allclose(g.asnumpy(), r.asnumpy(), rtol=RTOL, atol=ATOL)


def test_symbolic_bidirectional_names_its_concatenated_steps():
    cell = rnn.BidirectionalCell(rnn.LSTMCell(3, prefix='l_'), rnn.LSTMCell(3, prefix='r_'), output_prefix='bi_')
    outs, _ = cell.unroll(2, [mx.sym.var('a'), mx.sym.var('b')])
    assert mx.sym.Group(outs).list_outputs() == ['bi_t0_output', 'bi_t1_output']


# ---- stacks and residuals of bidirectional cells ----------------------------------------------

def test_stack_of_bidirectional_cells_unrolls_each_cell_over_the_sequence():
    stack = rnn.SequentialRNNCell()
    stack.add(rnn.BidirectionalCell(rnn.GRUCell(3, input_size=2), rnn.GRUCell(3, input_size=2)))
    stack.add(rnn.GRUCell(2, input_size=6))
    stack.initialize(mx.init.Uniform(0.5))
    x = _rand((2, 4, 2))
    out, states = stack.unroll(4, x, merge_outputs=True)
    mid, mid_states = stack[0].unroll(4, x, merge_outputs=True)
    ref, ref_states = stack[1].unroll(4, mid, merge_outputs=True)
    np.testing.assert_allclose(out.asnumpy(), ref.asnumpy(), rtol=RTOL, atol=ATOL)
    assert len(states) == 3
    for s, r in zip(states, mid_states + ref_states):
        np.testing.assert_allclose(s.asnumpy(), r.asnumpy(), rtol=RTOL, atol=ATOL)
    with pytest.raises(MXNetError, match='cannot be stepped'):
        stack(x[:, 0], stack.begin_state(2))


def test_residual_bidirectional_adds_the_inputs_and_keeps_padding_zero():
    cell = rnn.ResidualCell(rnn.BidirectionalCell(rnn.RNNCell(2, input_size=4), rnn.RNNCell(2, input_size=4)))
    cell.initialize(mx.init.Uniform(0.5))
    x, vl = _rand((3, 4, 4), seed=3), nd.array([4, 2, 1])
    out, _ = cell.unroll(4, x, valid_length=vl, merge_outputs=True)
    base, _ = cell.base_cell.unroll(4, x, valid_length=vl, merge_outputs=True)
    mask = (np.arange(4)[None, :] < vl.asnumpy()[:, None])[:, :, None]
    np.testing.assert_allclose(out.asnumpy(), base.asnumpy() + x.asnumpy() * mask, rtol=RTOL, atol=ATOL)
    assert np.all(out.asnumpy()[1, 2:] == 0)


# ---- fused layers unfused into cells ----------------------------------------------------------

@pytest.mark.parametrize('make', [lambda: rnn.LSTM(3, num_layers=2, bidirectional=True, input_size=2),
                                  lambda: rnn.GRU(3, num_layers=2, input_size=2),
                                  lambda: rnn.RNN(3, activation='tanh', bidirectional=True, input_size=2),
                                  lambda: rnn.LSTM(4, projection_size=2, bidirectional=True, input_size=2)])
def test_unfused_layer_shares_parameters_and_computes_the_layer(make):
    layer = make()
    stack = layer._unfuse()
    layer.initialize(mx.init.Uniform(0.5))
    assert {p.name for p in stack.collect_params().values()} == {p.name for p in layer.collect_params().values()}
    x = _rand((5, 2, 2), seed=4)
    ref, ref_states = layer(x, layer.begin_state(2))
    out, states = stack.unroll(5, x, layout='TNC', merge_outputs=True)
    np.testing.assert_allclose(out.asnumpy(), ref.asnumpy(), rtol=RTOL, atol=ATOL)
    # the layer's states are (layers * directions, N, width); the stack's h, [c,] per cell
    n = len(ref_states)
    for k, ref_state in enumerate(ref_states):
        got = np.stack([s.asnumpy() for s in states[k::n]])
        np.testing.assert_allclose(got, ref_state.asnumpy(), rtol=RTOL, atol=ATOL)


def test_unfused_layer_has_dropout_cells_between_layers():
    stack = rnn.GRU(3, num_layers=3, dropout=0.4)._unfuse()
    kinds = [type(c).__name__ for c in stack]
    assert kinds == ['GRUCell', 'DropoutCell', 'GRUCell', 'DropoutCell', 'GRUCell']


# ---- LSTMPCell --------------------------------------------------------------------------------

def test_lstmp_cell_gradients_match_finite_differences():
    cell = contrib.rnn.LSTMPCell(3, 2)
    rng = np.random.default_rng(5)
    ins = [rng.standard_normal((2, 4)), rng.standard_normal((2, 2)), rng.standard_normal((2, 3)),
           rng.standard_normal((12, 4)) * 0.5, rng.standard_normal((12, 2)) * 0.5,
           rng.standard_normal((2, 3)) * 0.5, rng.standard_normal(12) * 0.1, rng.standard_normal(12) * 0.1]

    def fn(x, h, c, wi, wh, wr, bi, bh):
        w = dict(i2h_weight=wi, h2h_weight=wh, h2r_weight=wr, i2h_bias=bi, h2h_bias=bh)
        out = cell.hybrid_forward(nd, x, h, c, **w)
        return cell.hybrid_forward(nd, x * 0.5, *out[1:], **w)     # two steps: the state path too
    check_numeric_gradient(fn, ins, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize('hybridize', [False, True])
def test_lstmp_cell_states_and_hybridized_steps(hybridize):
    cell = contrib.rnn.LSTMPCell(5, 3, input_size=4, prefix='p_')
    cell.initialize(mx.init.Uniform(0.5))
    assert cell.h2h_weight.shape == (20, 3) and cell.h2r_weight.shape == (3, 5)
    assert [i['shape'] for i in cell.state_info(2)] == [(2, 3), (2, 5)]
    x = _rand((2, 6, 4), seed=6)
    ref, ref_states = cell.unroll(6, x, merge_outputs=True)
    if hybridize:
        cell.hybridize()
        out, states = cell.unroll(6, x, merge_outputs=True)
        np.testing.assert_allclose(out.asnumpy(), ref.asnumpy(), rtol=RTOL, atol=ATOL)
        for s, r in zip(states, ref_states):
            np.testing.assert_allclose(s.asnumpy(), r.asnumpy(), rtol=RTOL, atol=ATOL)
    assert ref.shape == (2, 6, 3) and ref_states[1].shape == (2, 5)


def test_lstmp_cell_errors():
    with pytest.raises(MXNetError, match='projection_size'):
        contrib.rnn.LSTMPCell(4, 0)
    cell = contrib.rnn.LSTMPCell(4, 2, input_size=3)
    cell.initialize()
    with pytest.raises(MXNetError, match=r'a state must be \(batch, 2\)'):
        cell(nd.ones((1, 3)), [nd.zeros((1, 4)), nd.zeros((1, 4))])


# ---- VariationalDropoutCell -------------------------------------------------------------------

def test_variational_dropout_uses_one_mask_per_sequence():
    cell = contrib.rnn.VariationalDropoutCell(rnn.RNNCell(20, input_size=3), drop_outputs=0.5)
    cell.initialize(mx.init.Uniform(0.5))
    x = _rand((8, 4, 3), seed=7) + 3
    with autograd.train_mode():
        out = cell.unroll(4, x, merge_outputs=True)[0].asnumpy()
        again = cell.unroll(4, x, merge_outputs=True)[0].asnumpy()
    dropped = out == 0
    assert 0.2 < dropped[:, 0].mean() < 0.8
    for t in range(1, 4):      # the same units are dropped at every step
        assert np.array_equal(dropped[:, t], dropped[:, 0])
    assert not np.array_equal(again == 0, dropped)      # each unroll draws a new mask
    predict = cell.unroll(4, x, merge_outputs=True)[0]
    base = cell.base_cell.unroll(4, x, merge_outputs=True)[0]
    np.testing.assert_allclose(predict.asnumpy(), base.asnumpy(), rtol=RTOL, atol=ATOL)


def test_variational_dropout_on_inputs_and_states_keeps_gradients_finite():
    cell = contrib.rnn.VariationalDropoutCell(rnn.LSTMCell(4, input_size=3), drop_inputs=0.3, drop_states=0.3)
    cell.initialize()
    cell.hybridize()        # the base cell is cached, the masks stay with the modifier
    x = _rand((2, 5, 3), seed=8)
    x.attach_grad()
    with autograd.record():
        out, _ = cell.unroll(5, x, merge_outputs=True, valid_length=nd.array([5, 2]))
    out.backward()
    assert np.all(np.isfinite(x.grad.asnumpy())) and np.all(x.grad.asnumpy()[1, 2:] == 0)


def test_variational_dropout_errors():
    with pytest.raises(MXNetError, match='drop_states'):
        contrib.rnn.VariationalDropoutCell(rnn.RNNCell(2), drop_states=1.0)
    with pytest.raises(MXNetError, match='BidirectionalCell'):
        contrib.rnn.VariationalDropoutCell(rnn.BidirectionalCell(rnn.RNNCell(2), rnn.RNNCell(2)))


# ---- ZoneoutCell hybridized -------------------------------------------------------------------

def test_hybridized_zoneout_cell_keeps_the_previous_output_as_eagerly():
    """A cached step would freeze the previous output at its first trace (zeros): with
    zoneout_outputs=0.5 on a cell whose outputs are never 0, step t is 0 only where every step so
    far kept the previous value, 0.5**(t+1) of the units, the same draws as the eager cell."""
    zeros = {}
    for hybridize in (False, True):
        mx.random.seed(0)
        cell = rnn.ZoneoutCell(rnn.RNNCell(200, input_size=3), zoneout_outputs=0.5)
        cell.initialize(mx.init.One())
        if hybridize:
            cell.hybridize()
        with autograd.train_mode():
            out = cell.unroll(5, nd.ones((4, 5, 3)), merge_outputs=True)[0].asnumpy()
        zeros[hybridize] = (out == 0).mean(axis=(0, 2))
    np.testing.assert_array_equal(zeros[True], zeros[False])
    assert zeros[True][4] < 0.1 < 0.3 < zeros[True][0]


# ---- cells written the MXNet way --------------------------------------------------------------

class _ListStateCell(rnn.RecurrentCell):
    """A user's cell as MXNet documents them: the states come and go as one list."""

    def __init__(self, hidden, **kw):
        super().__init__(**kw)
        self._hidden = hidden
        with self.name_scope():
            self.w = self.params.get('w', shape=(hidden, hidden), init=mx.init.Uniform(0.5))

    def state_info(self, batch_size=0):
        return [{'shape': (batch_size, self._hidden)}, {'shape': (batch_size, self._hidden)}]

    def hybrid_forward(self, F, inputs, states, w):
        h = F.tanh(inputs + F.dot(states[0], w) + states[1])
        return h, [h, states[1] * 0.5]


@pytest.mark.parametrize('hybridize', [False, True])
def test_cell_with_mxnet_list_states_signature(hybridize):
    cell = _ListStateCell(3, prefix='u_')
    cell.initialize()
    if hybridize:
        cell.hybridize()
    x = _rand((2, 4, 3), seed=9)
    begin = [_rand((2, 3), seed=10), nd.ones((2, 3))]
    out, states = cell.unroll(4, x, begin_state=begin, merge_outputs=True)
    w, h, c = cell.w.data().asnumpy(), begin[0].asnumpy(), begin[1].asnumpy()
    for t in range(4):
        h, c = np.tanh(x.asnumpy()[:, t] + h @ w + c), c * 0.5
        np.testing.assert_allclose(out.asnumpy()[:, t], h, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(states[1].asnumpy(), c, rtol=RTOL, atol=ATOL)
    sym_out, _ = cell.unroll(4, mx.sym.var('x'), begin_state=[mx.sym.var('h'), mx.sym.var('c')], merge_outputs=True)
    got = sym_out.eval(x=x, h=begin[0], c=begin[1], u_w=cell.w.data())[0]
    np.testing.assert_allclose(got.asnumpy(), out.asnumpy(), rtol=RTOL, atol=ATOL)


# ---- contrib dynamic_unroll -------------------------------------------------------------------

@pytest.mark.parametrize('layout', ['TNC', 'NTC'])
def test_dynamic_unroll_equals_unroll_and_shares_dropout_masks_over_time(layout):
    from engine.gluon.contrib.rnn.rnn_cell import dynamic_unroll
    cell = rnn.GRUCell(30, input_size=3)
    cell.initialize(mx.init.Uniform(0.5))
    x = _rand((6, 4, 3) if layout == 'TNC' else (4, 6, 3), seed=11) + 2
    begin, vl = [_rand((4, 30), seed=12)], nd.array([6, 1, 3, 5])
    out, states = dynamic_unroll(cell, x, begin, layout=layout, valid_length=vl)
    ref, ref_states = cell.unroll(6, x, begin, layout=layout, valid_length=vl)
    np.testing.assert_allclose(out.asnumpy(), ref.asnumpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(states[0].asnumpy(), ref_states[0].asnumpy(), rtol=RTOL, atol=ATOL)
    with autograd.train_mode():
        dropped, _ = dynamic_unroll(cell, x, begin, drop_outputs=0.5, layout=layout)
    zero = np.moveaxis(dropped.asnumpy() == 0, layout.find('T'), 0)
    assert 0.2 < zero[0].mean() < 0.8 and all(np.array_equal(z, zero[0]) for z in zero)
    with pytest.raises(MXNetError, match='Symbol'):
        dynamic_unroll(cell, mx.sym.var('x'), begin)


# ---- contrib convolutional cells --------------------------------------------------------------

def _torch_conv_cell_steps(kind, dims, x, states, w, pad, dilate):
    """Reference unroll of a conv cell: PyTorch convolutions, gate arithmetic in NumPy."""
    import torch
    conv = getattr(torch.nn.functional, f'conv{dims}d')

    def c(a, wt, b, p, d):
        return conv(torch.from_numpy(a), torch.from_numpy(wt), torch.from_numpy(b), padding=p, dilation=d).numpy()
    sig = lambda v: 1 / (1 + np.exp(-v))     # noqa: E731
    h, cs, outs = states[0], states[1] if kind == 'LSTM' else None, []
    h2h_pad = tuple(d * (k - 1) // 2 for d, k in zip(dilate[1], w['h2h_weight'].shape[2:]))
    for t in range(x.shape[1]):
        i2h = c(x[:, t], w['i2h_weight'], w['i2h_bias'], pad, dilate[0])
        h2h = c(h, w['h2h_weight'], w['h2h_bias'], h2h_pad, dilate[1])
        if kind == 'RNN':
            h = np.tanh(i2h + h2h)
        elif kind == 'LSTM':
            i, f, g, o = np.split(i2h + h2h, 4, axis=1)
            cs = sig(f) * cs + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(cs)
        else:
            (xr, xz, xn), (hr, hz, hn) = np.split(i2h, 3, axis=1), np.split(h2h, 3, axis=1)
            r, z = sig(xr + hr), sig(xz + hz)
            h = (1 - z) * np.tanh(xn + r * hn) + z * h
        outs.append(h)
    return np.stack(outs, axis=1)


@pytest.mark.parametrize('kind', ['RNN', 'LSTM', 'GRU'])
@pytest.mark.parametrize('dims', [1, 2, 3])
@pytest.mark.parametrize('hybridize', [False, True])
def test_conv_cells_equal_torch_convolutions(kind, dims, hybridize):
    pytest.importorskip('torch')
    spatial = (6, 5, 4)[:dims]
    cell = getattr(contrib.rnn, f'Conv{dims}D{kind}Cell')((3,) + spatial, 4, 3, 3, i2h_pad=1, h2h_dilate=2)
    cell.initialize(mx.init.Uniform(0.3))
    if hybridize:
        cell.hybridize()
    x = _rand((2, 3, 3) + spatial, seed=13, dtype='float64')
    cell.cast('float64')
    begin = [_rand((2, 4) + spatial, seed=14 + k, dtype='float64') for k in range(2 if kind == 'LSTM' else 1)]
    out, _ = cell.unroll(3, x, begin_state=begin, merge_outputs=True)
    w = {k[len(cell.prefix):]: p.data().asnumpy() for k, p in cell.collect_params().items()}
    ref = _torch_conv_cell_steps(kind, dims, x.asnumpy(), [b.asnumpy() for b in begin], w, (1,) * dims,
                                 ((1,) * dims, (2,) * dims))
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-10, atol=1e-10)


def test_conv_lstm_cell_gradients_match_finite_differences():
    cell = contrib.rnn.Conv1DLSTMCell((2, 5), 2, 3, 3)
    rng = np.random.default_rng(15)
    ins = [rng.standard_normal((1, 2, 5)), rng.standard_normal((1, 2, 3)), rng.standard_normal((1, 2, 3)),
           rng.standard_normal((8, 2, 3)) * 0.5, rng.standard_normal((8, 2, 3)) * 0.5,
           rng.standard_normal(8) * 0.1, rng.standard_normal(8) * 0.1]

    def fn(x, h, c, wi, wh, bi, bh):
        w = dict(i2h_weight=wi, h2h_weight=wh, i2h_bias=bi, h2h_bias=bh)
        out = cell.hybrid_forward(nd, x, h, c, **w)
        return cell.hybrid_forward(nd, x * 0.5, *out[1:], **w)
    check_numeric_gradient(fn, ins, rtol=1e-6, atol=1e-8)


def test_conv_cell_shapes_names_and_errors():
    cell = contrib.rnn.Conv2DGRUCell((0, 8, 6), 5, (3, 1), 3, prefix='g_')
    cell.initialize()
    assert [i['shape'] for i in cell.state_info(2)] == [(2, 5, 6, 6)]
    out, _ = cell.unroll(2, nd.ones((2, 2, 7, 8, 6)), merge_outputs=True)
    assert out.shape == (2, 2, 5, 6, 6) and cell.i2h_weight.shape == (15, 7, 3, 1)
    outs, _ = cell.unroll(2, [mx.sym.var('a'), mx.sym.var('b')])
    assert mx.sym.Group(outs).list_outputs() == ['g_t0_out_output', 'g_t1_out_output']
    with pytest.raises(MXNetError, match='h2h_kernel must be odd'):
        contrib.rnn.Conv1DRNNCell((2, 5), 3, 3, 2)
    with pytest.raises(MXNetError, match='conv_layout'):
        contrib.rnn.Conv2DLSTMCell((2, 5, 5), 3, 3, 3, conv_layout='NHWC')
    with pytest.raises(MXNetError, match='input_shape'):
        contrib.rnn.Conv3DRNNCell((2, 5, 5), 3, 3, 3)
    with pytest.raises(MXNetError, match=r'a step input must be'):
        cell(nd.ones((2, 7, 8, 5)), cell.begin_state(2))
