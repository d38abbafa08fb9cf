"""mx.sym: building graphs, naming, shape/type inference, MXNet's JSON, eval and executors."""
import json

import numpy as np
import pytest

import engine as mx
from engine import MXNetError, autograd, nd
from engine.gluon import nn


def mlp_symbol():
    data = mx.sym.var('data')
    fc1 = mx.sym.FullyConnected(data, num_hidden=8, name='fc1')
    bn = mx.sym.BatchNorm(fc1, fix_gamma=False, name='bn1')
    act = mx.sym.Activation(bn, act_type='tanh', name='act1')
    fc2 = mx.sym.FullyConnected(act, num_hidden=3, name='fc2')
    return mx.sym.SoftmaxOutput(fc2, name='softmax')


def rand(*shape, seed=0, dtype='float32'):
    return nd.array(np.random.RandomState(seed).uniform(-1, 1, size=shape), dtype=dtype)


# ---- structure --------------------------------------------------------------------------------

def test_auto_created_parameters_and_mxnet_names():
    out = mlp_symbol()
    assert out.list_arguments() == ['data', 'fc1_weight', 'fc1_bias', 'bn1_gamma', 'bn1_beta',
                                    'fc2_weight', 'fc2_bias', 'softmax_label']
    assert out.list_auxiliary_states() == ['bn1_moving_mean', 'bn1_moving_var']
    assert out.list_inputs() == ['data', 'fc1_weight', 'fc1_bias', 'bn1_gamma', 'bn1_beta',
                                 'bn1_moving_mean', 'bn1_moving_var', 'fc2_weight', 'fc2_bias',
                                 'softmax_label']
    assert out.list_outputs() == ['softmax_output']
    assert out.name == 'softmax'
    no_bias = mx.sym.Convolution(mx.sym.var('x'), kernel=(3, 3), num_filter=4, no_bias=True, name='c')
    assert no_bias.list_arguments() == ['x', 'c_weight']


def test_group_indexing_internals_children():
    x = mx.sym.var('x')
    parts = mx.sym.split(x, num_outputs=3, axis=1, name='sp')
    assert len(parts) == 3
    assert parts.list_outputs() == ['sp_output0', 'sp_output1', 'sp_output2']
    g = mx.sym.Group([parts[0], parts[2] * 2])
    assert g.list_outputs() == ['sp_output0', g[1].name + '_output']
    internals = (mx.sym.relu(x, name='r') + 1).get_internals()
    assert internals.list_outputs()[:2] == ['x', 'r_output']
    assert internals['r_output'].name == 'r'
    assert internals['r_output'].get_children().list_outputs() == ['x']
    assert x.get_children() is None
    with pytest.raises(MXNetError, match='no output named'):
        internals['nope']
    with pytest.raises(MXNetError, match='out of range'):
        parts[3]


def test_operators_map_to_mxnet_ops():
    a, b = mx.sym.var('a'), mx.sym.var('b')
    cases = {'elemwise_add': a + b, 'elemwise_sub': a - b, 'elemwise_mul': a * b,
             'elemwise_div': a / b, '_plus_scalar': a + 1, '_rminus_scalar': 1 - a,
             '_mul_scalar': 2 * a, '_rdiv_scalar': 1 / a, '_power_scalar': a ** 2,
             '_rpower_scalar': 2 ** a, '_greater_scalar': a > 0}
    for op, s in cases.items():
        d = json.loads(s.tojson())
        assert d['nodes'][-1]['op'] == op


def test_operators_evaluate_like_numpy():
    a, b = mx.sym.var('a'), mx.sym.var('b')
    expr = (a + b) * 2 - a / (b * b + 1) + (-a) ** 2 + 3 / (1 + abs(b)) - (a > 0.1)
    x, y = rand(2, 3, seed=1), rand(2, 3, seed=2)
    xn, yn = x.asnumpy(), y.asnumpy()
    ref = (xn + yn) * 2 - xn / (yn * yn + 1) + xn ** 2 + 3 / (1 + np.abs(yn)) - (xn > 0.1)
    out = expr.eval(a=x, b=y)
    assert isinstance(out, list) and len(out) == 1
    np.testing.assert_allclose(out[0].asnumpy(), ref, rtol=1e-6, atol=1e-6)


def test_symbol_methods():
    x = mx.sym.var('x')
    s = x.reshape((2, -1)).sum(axis=1).expand_dims(0).T
    out = s.eval(x=rand(2, 3, 2))[0]
    np.testing.assert_allclose(out.asnumpy(), rand(2, 3, 2).asnumpy().reshape(2, 6).sum(1)[None].T,
                               rtol=1e-6)


# ---- shapes and types -------------------------------------------------------------------------

def test_infer_shape_completes_parameters():
    data = mx.sym.var('data')
    c = mx.sym.Convolution(data, kernel=(3, 3), num_filter=8, num_group=2, pad=(1, 1), name='c')
    p = mx.sym.Pooling(c, kernel=(2, 2), stride=(2, 2), pool_type='max')
    f = mx.sym.FullyConnected(p, num_hidden=5, name='f')
    arg, out, aux = f.infer_shape(data=(2, 4, 8, 8))
    assert dict(zip(f.list_arguments(), arg)) == {
        'data': (2, 4, 8, 8), 'c_weight': (8, 2, 3, 3), 'c_bias': (8,), 'f_weight': (5, 128), 'f_bias': (5,)}
    assert out == [(2, 5)] and aux == []
    assert mlp_symbol().infer_shape(data=(4, 6))[2] == [(8,), (8,)]
    assert mlp_symbol().infer_shape(data=(4, 6))[0][-1] == (4,)     # softmax_label
    # positional shapes follow list_arguments
    assert f.infer_shape((2, 4, 8, 8))[1] == [(2, 5)]


def test_infer_shape_unknown_and_partial():
    a, b = mx.sym.var('a'), mx.sym.var('b')
    s = mx.sym.broadcast_add(mx.sym.relu(a), b)
    assert s.infer_shape(a=(2, 3)) == (None, None, None)
    arg, out, _ = s.infer_shape_partial(a=(2, 3))
    assert arg == [(2, 3), ()] and out == [()]
    assert mx.sym.var('v', shape=(2, 3)).infer_shape() == ([(2, 3)], [(2, 3)], [])
    with pytest.raises(MXNetError, match="'c' is not an input"):
        s.infer_shape(c=(1,))


def test_infer_shape_reports_bad_shapes():
    s = mx.sym.dot(mx.sym.var('a'), mx.sym.var('b'))
    with pytest.raises(MXNetError, match='dot'):
        s.infer_shape(a=(2, 3), b=(4, 5))


def test_infer_type():
    s = mx.sym.FullyConnected(mx.sym.var('x'), num_hidden=2, name='f')
    arg, out, aux = s.infer_type(x='float64')
    assert arg == [np.float64] * 3 and out == [np.float64] and aux == []
    c = mx.sym.Cast(mx.sym.var('x'), dtype='float16')
    assert c.infer_type(x='float32')[1] == [np.float16]
    assert mx.sym.relu(mx.sym.var('y')).infer_type() == (None, None, None)


# ---- JSON --------------------------------------------------------------------------------------

def test_tojson_is_mxnet_format():
    s = mx.sym.Convolution(mx.sym.var('data'), kernel=(3, 3), stride=(1, 1), num_filter=4,
                           no_bias=False, name='conv0')
    d = json.loads(mlp_symbol().tojson())
    assert set(d) == {'nodes', 'arg_nodes', 'node_row_ptr', 'heads', 'attrs'}
    assert d['attrs']['mxnet_version'] == ['int', 10901]
    conv = json.loads(s.tojson())['nodes'][-1]
    assert conv['op'] == 'Convolution' and conv['name'] == 'conv0'
    assert conv['attrs'] == {'kernel': '(3, 3)', 'stride': '(1, 1)', 'num_filter': '4', 'no_bias': 'False'}
    assert conv['inputs'] == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    bn = [n for n in d['nodes'] if n['op'] == 'BatchNorm'][0]
    assert [e[2] for e in bn['inputs']] == [0, 0, 0, 1, 1]     # aux states are marked mutable
    assert d['heads'] == [[len(d['nodes']) - 1, 0, 0]]
    assert [d['nodes'][i]['op'] for i in d['arg_nodes']] == ['null'] * 10


def test_json_round_trip_and_save_load(tmp_path):
    s = mx.sym.Group([mlp_symbol(), mx.sym.split(mx.sym.var('z'), num_outputs=2, axis=0)[1] + 1])
    back = mx.sym.load_json(s.tojson())
    assert back.tojson() == s.tojson()
    assert back.list_outputs() == s.list_outputs()
    f = tmp_path / 'net-symbol.json'
    s.save(str(f))
    assert mx.sym.load(str(f)).tojson() == s.tojson()
    v = mx.sym.var('w', shape=(2, 0), dtype='float16', lr_mult=0.5)
    node = json.loads(v.tojson())['nodes'][0]
    assert node['attrs'] == {'__shape__': '(2, 0)', '__dtype__': '2', '__lr_mult__': '0.5'}
    assert mx.sym.load_json(v.tojson()).attr('__shape__') == '(2, 0)'


def test_load_json_errors_name_op_and_node():
    good = json.loads(mx.sym.relu(mx.sym.var('x'), name='r').tojson())
    bad = json.loads(json.dumps(good))
    bad['nodes'][1]['op'] = 'NoSuchOp'
    with pytest.raises(MXNetError, match="NoSuchOp'.*node 'r'"):
        mx.sym.load_json(json.dumps(bad))
    bad = json.loads(json.dumps(good))
    bad['nodes'][1]['inputs'] = [[5, 0, 0]]
    with pytest.raises(MXNetError, match='not an earlier node'):
        mx.sym.load_json(json.dumps(bad))
    bad = json.loads(json.dumps(good))
    bad['nodes'][1]['attrs'] = {'no_such_attr': '1'}
    with pytest.raises(MXNetError, match="relu.*node 'r'.*no_such_attr"):
        mx.sym.load_json(json.dumps(bad))
    with pytest.raises(MXNetError, match='not valid JSON'):
        mx.sym.load_json('{"nodes": [')
    with pytest.raises(MXNetError, match="'nodes' and 'heads'"):
        mx.sym.load_json('[1, 2]')
    with pytest.raises(MXNetError, match="SoftmaxOutput.*node 'so'.*multi_output=True"):
        mx.sym.SoftmaxOutput(mx.sym.var('x'), multi_output=True, name='so')
    with pytest.raises(MXNetError, match="Pooling.*node 'pl'.*p_value=2 is not supported"):
        mx.sym.Pooling(mx.sym.var('x'), kernel=(2, 2), p_value=2, name='pl')
    mx.sym.Convolution(mx.sym.var('x'), kernel=(1, 1), num_filter=1, workspace=512)  # a kernel hint
    with pytest.raises(MXNetError, match="node 'cv'.*NHWC"):
        mx.sym.Convolution(mx.sym.var('x'), kernel=(1, 1), num_filter=1, layout='NHWC', name='cv')


# ---- running -----------------------------------------------------------------------------------

def _mlp_values(seed=0):
    arg, _, aux = mlp_symbol().infer_shape(data=(4, 6))
    rs = np.random.RandomState(seed)
    names = mlp_symbol().list_arguments() + mlp_symbol().list_auxiliary_states()
    vals = {k: nd.array(rs.uniform(0.5, 1.5, size=s)) for k, s in zip(names, arg + aux)}
    vals['softmax_label'] = nd.array([0, 1, 2, 1])
    return vals


def _mlp_eager(v, training=False):
    with autograd.train_mode() if training else autograd.predict_mode():
        h = nd.FullyConnected(v['data'], v['fc1_weight'], v['fc1_bias'], num_hidden=8)
        h = nd.BatchNorm(h, v['bn1_gamma'], v['bn1_beta'], v['bn1_moving_mean'], v['bn1_moving_var'],
                         fix_gamma=False)
        h = nd.FullyConnected(nd.tanh(h), v['fc2_weight'], v['fc2_bias'], num_hidden=3)
        return nd.softmax(h)


def test_eval_matches_eager_ops():
    v = _mlp_values()
    out = mlp_symbol().eval(ctx=mx.cpu(), **v)[0]
    np.testing.assert_allclose(out.asnumpy(), _mlp_eager(v).asnumpy(), rtol=1e-6)


def test_bind_forward_backward_matches_autograd():
    v = _mlp_values()
    sym = mlp_symbol()
    args = {k: v[k].copy() for k in sym.list_arguments()}
    aux = {k: v[k].copy() for k in sym.list_auxiliary_states()}
    grads = {k: nd.zeros(a.shape) for k, a in args.items() if k != 'softmax_label'}
    ex = sym.bind(mx.cpu(), args, args_grad=grads, aux_states=aux)
    out = ex.forward(is_train=True)[0]
    ex.backward()
    # eager reference: SoftmaxOutput's gradient is softmax - onehot(label)
    ref = {k: v[k].copy() for k in v}
    for k in grads:
        ref[k].attach_grad()
    with autograd.record():
        p = _mlp_eager(ref, training=True)
        loss = nd.sum(-nd.log(nd.pick(p, ref['softmax_label'], axis=1)))
    loss.backward()
    np.testing.assert_allclose(out.asnumpy(), p.asnumpy(), rtol=1e-5)
    for k in grads:
        np.testing.assert_allclose(ex.grad_dict[k].asnumpy(), ref[k].grad.asnumpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=k)
    # training forward updated the running statistics in the bound aux arrays
    assert not np.allclose(ex.aux_dict['bn1_moving_mean'].asnumpy(), v['bn1_moving_mean'].asnumpy())
    np.testing.assert_allclose(ex.aux_dict['bn1_moving_mean'].asnumpy(),
                               ref['bn1_moving_mean'].asnumpy(), rtol=1e-5)


def test_executor_gradient_finite_differences_float64():
    x, w = mx.sym.var('x'), mx.sym.var('w')
    y = mx.sym.sum(mx.sym.tanh(mx.sym.dot(x, w)) * x.sum(axis=1, keepdims=True) + 0.5 * w.sum())
    xv, wv = rand(3, 4, seed=3, dtype='float64'), rand(4, 2, seed=4, dtype='float64')
    gx, gw = nd.zeros((3, 4), dtype='float64'), nd.zeros((4, 2), dtype='float64')
    ex = y.bind(mx.cpu(), {'x': xv, 'w': wv}, args_grad={'x': gx, 'w': gw})
    ex.forward(is_train=True)
    ex.backward()

    def f(xa, wa):
        return float(np.sum(np.tanh(xa @ wa) * xa.sum(1, keepdims=True) + 0.5 * wa.sum()))
    for arr, g, which in ((xv.asnumpy(), gx, 0), (wv.asnumpy(), gw, 1)):
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            hi, lo = arr.copy(), arr.copy()
            hi[i] += 1e-6
            lo[i] -= 1e-6
            args_hi = (hi, wv.asnumpy()) if which == 0 else (xv.asnumpy(), hi)
            args_lo = (lo, wv.asnumpy()) if which == 0 else (xv.asnumpy(), lo)
            num[i] = (f(*args_hi) - f(*args_lo)) / 2e-6
        np.testing.assert_allclose(g.asnumpy(), num, rtol=1e-6, atol=1e-8)


def test_simple_bind_grad_req_add_and_null():
    x = mx.sym.var('x')
    y = mx.sym.FullyConnected(x, num_hidden=2, name='fc')
    ex = y.simple_bind(mx.cpu(), grad_req={'x': 'null', 'fc_weight': 'add', 'fc_bias': 'write'}, x=(3, 4))
    assert sorted(ex.grad_dict) == ['fc_bias', 'fc_weight']
    assert [a.shape for a in ex.arg_arrays] == [(3, 4), (2, 4), (2,)]
    ex.arg_dict['fc_weight'][:] = 1.0
    for _ in range(2):
        ex.forward(is_train=True, x=nd.ones((3, 4)))
        ex.backward(nd.ones((3, 2)))
    np.testing.assert_allclose(ex.grad_dict['fc_weight'].asnumpy(), np.full((2, 4), 6.0))
    np.testing.assert_allclose(ex.grad_dict['fc_bias'].asnumpy(), np.full((2,), 3.0))
    np.testing.assert_allclose(ex.outputs[0].asnumpy(), np.full((3, 2), 4.0))
    assert list(ex.output_dict) == ['fc_output']


def test_bind_errors():
    y = mx.sym.var('a') + mx.sym.var('b')
    with pytest.raises(MXNetError, match=r"no arrays given for \['b'\]"):
        y.bind(mx.cpu(), {'a': nd.ones((2,))})
    with pytest.raises(MXNetError, match='not inputs'):
        y.bind(mx.cpu(), {'a': nd.ones((2,)), 'b': nd.ones((2,)), 'c': nd.ones((2,))})
    with pytest.raises(MXNetError, match="no value given for input 'b'|no arrays given"):
        y.eval(a=nd.ones((2,)))
    ex = y.bind(mx.cpu(), {'a': nd.ones((2,)), 'b': nd.ones((2,))})
    with pytest.raises(MXNetError, match='run forward first'):
        ex.backward()
    ex.forward()
    ex.backward()     # as MXNet: nothing to do without gradient arrays
    with pytest.raises(MXNetError, match='inputs must be Symbols|NDArray'):
        mx.sym.broadcast_add(mx.sym.var('a'), nd.ones((2,)))


# ---- blocks on symbols ----------------------------------------------------------------------------

def test_hybrid_block_on_symbol_returns_symbol():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'), nn.Dense(3))
    y = net(mx.sym.var('data'))
    assert isinstance(y, mx.sym.Symbol)
    prefix = net.prefix
    assert y.list_arguments() == ['data'] + [prefix + n for n in (
        'conv0_weight', 'conv0_bias', 'batchnorm0_gamma', 'batchnorm0_beta', 'dense0_weight', 'dense0_bias')]
    assert y.list_auxiliary_states() == [prefix + 'batchnorm0_running_mean', prefix + 'batchnorm0_running_var']
    assert net(mx.sym.var('data')).tojson() == y.tojson()    # names do not drift between calls
    net.initialize()
    x = rand(2, 3, 5, 5)
    eager = net(x)
    params = {p.name: p.data() for p in net.collect_params().values()}
    out = y.eval(data=x, **params)[0]
    np.testing.assert_allclose(out.asnumpy(), eager.asnumpy(), rtol=1e-5, atol=1e-6)


def test_seed_slide_21_runs_verbatim():
    from engine import gluon

    class HybridNet(gluon.nn.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = nn.Conv2D(3, kernel_size=5, padding=2)

        # see the F?
        def hybrid_forward(self, F, x):
            return self.conv(x)

    net = HybridNet()
    x = mx.sym.Variable('x')
    y = net(x)
    net.collect_params().initialize()
    net.hybridize()
    arr = nd.ones((1, 2, 8, 8))
    out = net(arr)
    assert isinstance(y, mx.sym.Symbol) and out.shape == (1, 3, 8, 8)
    assert y.infer_shape(x=(1, 2, 8, 8))[1] == [(1, 3, 8, 8)]


def test_symbol_shape_from_shaped_variables():
    x = mx.sym.var('x', shape=(2, 3, 4))
    y = mx.sym.FullyConnected(x, num_hidden=5, name='f')
    assert y.shape == (2, 5) and y.ndim == 2
    with pytest.raises(MXNetError, match="Symbol 'g'.*shape is unknown"):
        mx.sym.relu(mx.sym.var('z'), name='g').shape


def test_creation_ops_and_composition():
    x = mx.sym.var('x')
    s = mx.sym.broadcast_add(x, mx.sym.ones((1, 3))) * mx.sym.full((2, 3), value=2.0) + mx.sym.zeros((2, 3))
    back = mx.sym.load_json(s.tojson())
    assert [n['op'] for n in json.loads(s.tojson())['nodes']].count('_ones') == 1
    xv = rand(2, 3)
    for sym in (s, back):
        np.testing.assert_allclose(sym.eval(x=xv)[0].asnumpy(), (xv.asnumpy() + 1) * 2, rtol=1e-6)
    np.testing.assert_allclose(mx.sym.arange(1, 7, 2).eval()[0].asnumpy(), [1, 3, 5])
    # composition: replace a variable by another graph
    inner = mx.sym.relu(mx.sym.var('a'), name='inner')
    outer = mx.sym.exp(mx.sym.var('b'), name='outer')
    both = outer(b=inner)
    assert both.list_arguments() == ['a'] and outer.list_arguments() == ['b']
    np.testing.assert_allclose(both.eval(a=xv)[0].asnumpy(), np.exp(np.maximum(xv.asnumpy(), 0)),
                               rtol=1e-6)
    assert outer(inner).list_arguments() == ['a']
    with pytest.raises(MXNetError, match="'c' is not an input"):
        outer(c=inner)
    assert both.attr_dict() == {}
    assert mx.sym.Pooling(x, kernel=(2, 2), name='p').attr_dict() == {'p': {'kernel': '(2, 2)'}}


def _unary_ops():
    from engine.symbol.optable import OPS
    out = []
    for name, spec in sorted(OPS.items()):
        ps = list(spec.signature.parameters.values())
        if (len(ps) == 1 and ps[0].kind is ps[0].POSITIONAL_OR_KEYWORD and not spec.creates
                and not name.startswith('random')):
            out.append(name)
    return out


def test_every_table_op_is_a_symbol_function():
    from engine.symbol.optable import OPS
    missing = [n for n in OPS if not callable(getattr(mx.sym, n, None))]
    assert not missing
    assert len(_unary_ops()) > 30


@pytest.mark.parametrize('name', _unary_ops())
def test_unary_symbol_functions_match_nd(name):
    """Each one-input op: the symbol (also through its JSON) evaluates like the nd function."""
    from engine.symbol.executor import evaluate
    from engine.symbol.optable import OPS
    x = nd.array(np.random.RandomState(0).uniform(0.2, 0.9, size=(2, 3)))
    s = getattr(mx.sym, name)(mx.sym.var('x'))
    for sym in (s, mx.sym.load_json(s.tojson())):
        got = evaluate(sym, {'x': x})[0].asnumpy()
        np.testing.assert_allclose(got, OPS[name].fn(x).asnumpy(), rtol=1e-6, err_msg=name)


def test_run_time_errors_name_the_node():
    c = mx.sym.Convolution(mx.sym.var('x'), kernel=(3, 3), num_filter=2, name='conv_a')
    with pytest.raises(MXNetError, match=r"Convolution \(node 'conv_a'\).*kernel"):
        c.eval(x=nd.ones((1, 1, 5, 5)), conv_a_weight=nd.ones((2, 1, 2, 2)), conv_a_bias=nd.ones((2,)))


def test_executor_reshape_shares_parameters():
    y = mx.sym.FullyConnected(mx.sym.var('x'), num_hidden=2, name='fc')
    ex = y.simple_bind(mx.cpu(), x=(3, 4))
    ex.arg_dict['fc_weight'][:] = 1.0
    ex2 = ex.reshape(allow_up_sizing=True, x=(5, 4))    # grows: MXNet asks for the flag
    assert ex2.arg_dict['fc_weight'] is ex.arg_dict['fc_weight']
    assert ex2.grad_dict['fc_weight'] is ex.grad_dict['fc_weight']
    out = ex2.forward(x=nd.ones((5, 4)))[0]
    np.testing.assert_allclose(out.asnumpy(), np.full((5, 2), 4.0))
    with pytest.raises(MXNetError, match='fc_weight.*partial_shaping'):
        mx.sym.FullyConnected(mx.sym.var('x'), num_hidden=2, name='fc', flatten=False) \
            .simple_bind(mx.cpu(), x=(3, 4)).reshape(x=(3, 6))
