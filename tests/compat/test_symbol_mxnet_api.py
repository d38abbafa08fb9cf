"""MXNet 1.x behaviours of mx.sym and its executors that MXNet's own unit tests rely on:
composition with a name, get_children of groups, pickling, partial type inference, shape
inference that flows into unknown inputs, '__key__' attributes, backward after an inference
forward."""
import pickle

import numpy as np
import pytest

import engine as mx
from engine import nd
from engine.base import MXNetError


def _fc_net():
    x = mx.sym.FullyConnected(mx.sym.var('x'), num_hidden=3, name='fc_a')
    return mx.sym.FullyConnected(x, num_hidden=2, name='fc_b')


def test_compose_with_name_renames_the_output_node():
    head = mx.sym.FullyConnected(name='head', num_hidden=4)       # reads 'head_data'
    body = mx.sym.FullyConnected(mx.sym.var('x'), num_hidden=6, name='body')
    net = head(head_data=body, name='joined')
    assert net.list_outputs() == ['joined_output']
    assert net.list_arguments() == ['x', 'body_weight', 'body_bias', 'head_weight', 'head_bias']
    assert head.list_outputs() == ['head_output']     # the composed-on symbol is unchanged
    with pytest.raises(MXNetError, match='one-output'):
        mx.sym.Group([head, body])(name='g')


def test_get_children_of_groups_and_multi_output_nodes():
    net = _fc_net()
    kids = net.get_children()
    assert kids.list_outputs() == ['fc_a_output', 'fc_b_weight', 'fc_b_bias']
    assert kids.get_children().list_outputs() == ['x', 'fc_a_weight', 'fc_a_bias']
    assert kids['fc_b_weight'].get_children() is None
    parts = mx.sym.SliceChannel(mx.sym.var('d'), num_outputs=2, name='cut')
    assert parts.get_children().list_outputs() == ['d']     # one node: its inputs once


def test_pickle_round_trip():
    net = _fc_net()
    back = pickle.loads(pickle.dumps([net, mx.sym.var('v', shape=(2, 3))]))
    assert back[0].tojson() == net.tojson()
    assert back[1].infer_shape()[0] == [(2, 3)]


def test_infer_type_partial_leaves_unknown_inputs_none():
    data = mx.sym.var('data')
    net = mx.sym.FullyConnected(mx.sym.Cast(data, dtype='float32'), num_hidden=2, name='fc')
    assert net.infer_type() == (None, None, None)
    args, outs, aux = net.infer_type_partial()
    assert args == [None, np.float32, np.float32]
    assert outs == [np.float32] and aux == []


def test_infer_shape_gives_unknown_operand_the_known_shape():
    c = mx.sym.elemwise_add(mx.sym.var('a', shape=(2, 3)), mx.sym.var('b'))
    assert c.infer_shape() == ([(2, 3), (2, 3)], [(2, 3)], [])
    assert c.infer_shape(a=(5, 6)) == ([(5, 6), (5, 6)], [(5, 6)], [])
    # the operand order does not matter, nor does the operator spelling
    d = mx.sym.var('p') + mx.sym.var('q', shape=(4,))
    assert d.infer_shape()[0] == [(4,), (4,)]


def test_infer_shape_partial_reports_what_is_known():
    x2h = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=8, name='x2h')
    h2h = mx.sym.FullyConnected(mx.sym.var('state'), num_hidden=8, name='h2h')
    out = mx.sym.relu(mx.sym.elemwise_add(x2h, h2h))
    assert out.infer_shape(data=(5, 3)) == (None, None, None)
    args, outs, _ = out.infer_shape_partial(data=(5, 3))
    shapes = dict(zip(out.list_arguments(), args))
    assert shapes['x2h_weight'] == (8, 3) and shapes['h2h_weight'] == ()
    assert outs == [(5, 8)]     # from the known operand of the sum
    # a shape of no dimensions given back is an unknown one, as MXNet 1.x reads it
    assert out.infer_shape_partial(data=(5, 3), state=())[0] == args
    full = dict(zip(out.list_arguments(), out.infer_shape(data=(5, 3), state=outs[0])[0]))
    assert full['h2h_weight'] == (8, 8)


def test_infer_shape_of_a_weight_read_before_its_layer():
    fc = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=1, no_bias=True, name='fc')
    w = fc.get_internals()['fc_weight']
    # abs(w) comes first in the graph, before the layer that gives w its shape
    net = mx.sym.dot(mx.sym.abs(w), fc, transpose_a=True, transpose_b=True)
    args, outs, _ = net.infer_shape(data=(5, 13))
    assert dict(zip(net.list_arguments(), args)) == {'fc_weight': (1, 13), 'data': (5, 13)}
    assert outs == [(13, 5)]
    ex = net.simple_bind(mx.cpu(), data=(5, 13))
    ex.arg_dict['data'][:] = 1
    ex.arg_dict['fc_weight'][:] = -2
    np.testing.assert_allclose(ex.forward()[0].asnumpy(), np.full((13, 5), 2 * 13 * -2))


def test_double_underscore_keywords_become_node_attributes():
    y = mx.sym.Activation(mx.sym.var('data'), act_type='relu', __layout__='TNC', name='act')
    assert y.attr('__layout__') == 'TNC'
    assert y.list_attr() == {'act_type': 'relu', '__layout__': 'TNC'}
    out = y.eval(data=nd.array([[-1.0, 2.0]]))[0]
    np.testing.assert_allclose(out.asnumpy(), [[0.0, 2.0]])


def test_backward_after_an_inference_forward():
    a, b = mx.sym.var('a'), mx.sym.var('b')
    y = mx.sym.Dropout(a * b, p=0.5)
    av, bv = np.random.uniform(1, 2, (3, 4)), np.random.uniform(1, 2, (3, 4))
    ga, gb = nd.zeros((3, 4)), nd.zeros((3, 4))
    ex = y.bind(mx.cpu(), [nd.array(av), nd.array(bv)], args_grad=[ga, gb])
    out = ex.forward()      # is_train=False: dropout is the identity
    np.testing.assert_allclose(out[0].asnumpy(), av * bv, rtol=1e-6)
    ex.backward(nd.ones((3, 4)))
    np.testing.assert_allclose(ga.asnumpy(), bv, rtol=1e-6)
    np.testing.assert_allclose(gb.asnumpy(), av, rtol=1e-6)


def test_name_manager_counts_automatic_names_afresh():
    from engine.symbol.name import NameManager, Prefix
    outside = mx.sym.abs(mx.sym.var('x'))
    with NameManager():
        assert mx.sym.abs(mx.sym.var('x')).name == 'abs0'
        assert mx.sym.abs(mx.sym.var('x')).name == 'abs1'
    with Prefix('net_'):
        assert mx.sym.abs(mx.sym.var('x')).name == 'net_abs0'
        assert mx.sym.abs(mx.sym.var('x'), name='mine').name == 'net_mine'
    after = mx.sym.abs(mx.sym.var('x'))     # the outer count resumes
    assert int(after.name[3:]) == int(outside.name[3:]) + 1


def test_variable_shape_may_be_an_int():
    assert mx.sym.var('b', shape=3).infer_shape()[0] == [(3,)]


def test_executor_reshape_shrinks_into_views_and_grows_only_when_allowed():
    y = mx.sym.FullyConnected(mx.sym.var('x'), num_hidden=4, name='fc')
    exe = y.simple_bind(mx.cpu(), x=(5, 4), grad_req='null')
    exe.arg_dict['x'][:] = 1
    exe.arg_dict['fc_weight'][:] = 1
    exe.arg_dict['fc_bias'][:] = 0
    small = exe.reshape(x=(3, 4))
    assert small.arg_dict['fc_weight'] is exe.arg_dict['fc_weight']
    np.testing.assert_allclose(small.forward()[0].asnumpy(), np.full((3, 4), 4.0))   # x carried over
    small.arg_dict['x'][:] = 2                  # the first 12 elements of the old x
    np.testing.assert_allclose(exe.arg_dict['x'].asnumpy()[:3], 2.0)
    np.testing.assert_allclose(exe.arg_dict['x'].asnumpy()[3:], 1.0)
    with pytest.raises(MXNetError, match="'x' would grow.*allow_up_sizing"):
        exe.reshape(x=(6, 4))
    big = exe.reshape(allow_up_sizing=True, x=(6, 4))
    big.arg_dict['x'][:] = 0
    assert exe.arg_dict['x'].asnumpy().min() == 1.0     # a new array


def test_fluent_methods_and_set_attr():
    x = mx.sym.var('x')
    v = nd.array([[0.5, -1.5, 2.0]])
    for name, ref in (('sin', np.sin), ('floor', np.floor), ('sign', np.sign), ('expm1', np.expm1)):
        out = getattr(x, name)().eval(x=v)[0]
        np.testing.assert_allclose(out.asnumpy(), ref(v.asnumpy()), rtol=1e-6)
    top = x.topk(axis=1, k=2, ret_typ='value').eval(x=v)[0]
    np.testing.assert_allclose(top.asnumpy(), [[2.0, 0.5]])
    y = x.sin()
    y._set_attr(__layout__='NC', note='kept')
    assert y.attr('__layout__') == 'NC' and y.list_attr()['note'] == 'kept'
    with pytest.raises(MXNetError, match='must be a string'):
        y._set_attr(note=3)


def test_partial_shapes_of_same_shape_operands_complete_each_other():
    a = mx.sym.var('a', shape=(0, 10))
    b = mx.sym.var('b', shape=(12, 0))
    args, outs, _ = (a + b).infer_shape()
    assert args == [(12, 10), (12, 10)] and outs == [(12, 10)]
    c = mx.sym.var('c', shape=(0, 4))
    assert (c * mx.sym.var('d')).infer_shape() == (None, None, None)   # nothing gives c's 0
    with pytest.raises(MXNetError):
        (mx.sym.var('e', shape=(2, 3)) + mx.sym.var('f', shape=(4, 0))).infer_shape()
