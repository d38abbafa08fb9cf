"""Folding per-channel scale/shift (inference BatchNorm) into the preceding convolution: on
hand-built graphs against the reference interpreter, and through hybridized blocks."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.gluon import nn
from engine.graph.fold import fold_affine_into_conv
from graphkit import evaluate, new_graph, node, op_names, random_inputs

CONV = dict(stride=(1, 1), pad=(1, 1), dilate=(1, 1), groups=1, act=None)


def conv_graph(ops, bias=True, groups=1):
    """x, w[, b], s, t -> conv2d, then `ops` ('mul', 'add', 'sub') with s/t reshaped per channel."""
    shapes = [(2, 4, 6, 6), (6, 4 // groups, 3, 3)] + ([(6,)] if bias else []) + [(6,), (6,)]
    g, xs = new_graph(*shapes)
    x, w = xs[:2]
    s, t = xs[-2:]
    y = node(g, 'conv2d', [x, w] + ([xs[2]] if bias else []), **dict(CONV, groups=groups))
    for op in ops:
        v = node(g, 'reshape', [s if op == 'mul' else t], shape=(1, 6, 1, 1))
        y = node(g, {'mul': 'multiply', 'add': 'add', 'sub': 'subtract'}[op], [y, v])
    g.outputs = [node(g, 'relu', [y])]
    return g


@pytest.mark.parametrize('ops, bias, groups', [
    (('mul', 'add'), False, 1), (('mul', 'add'), True, 1), (('mul', 'sub'), True, 2),
    (('add',), False, 1), (('sub', 'mul'), True, 1), (('mul',), True, 2)])
def test_folds_into_the_conv(ops, bias, groups):
    g = conv_graph(ops, bias, groups)
    inputs = random_inputs(g)
    before = evaluate(g, inputs)
    g = fold_affine_into_conv(g, n_data=1)
    names = op_names(g)
    assert names.count('conv2d') == 1 and names[-2:] == ['conv2d', 'relu']
    conv = g.nodes[-2]
    assert all(v.shape != (2, 6, 6, 6) for v in conv.inputs[1:])   # only weight-sized work added
    np.testing.assert_allclose(evaluate(g, inputs)[0], before[0], rtol=1e-5, atol=1e-5)


def test_leaves_data_dependent_or_shared_values_alone():
    g, (x, w, s) = new_graph((2, 4, 6, 6), (6, 4, 3, 3), (6,))
    y = node(g, 'conv2d', [x, w], **CONV)
    m = node(g, 'mean', [x], axis=(1, 2, 3), keepdims=True)       # depends on the data
    g.outputs = [node(g, 'multiply', [y, m])]
    g = fold_affine_into_conv(g, n_data=1)
    assert op_names(g) == ['conv2d', 'mean', 'multiply']
    g, (x, w, s) = new_graph((2, 4, 6, 6), (6, 4, 3, 3), (6,))
    y = node(g, 'conv2d', [x, w], **CONV)
    z = node(g, 'multiply', [y, node(g, 'reshape', [s], shape=(1, 6, 1, 1))])
    g.outputs = [z, y]                                           # the pre-scale value is an output
    g = fold_affine_into_conv(g, n_data=1)
    assert op_names(g) == ['conv2d', 'reshape', 'multiply']


def test_a_scale_folds_only_where_the_weights_are_smaller_than_the_output():
    g, (x, w, s, t) = new_graph((1, 16, 2, 2), (32, 16, 3, 3), (32,), (32,))   # w 4608, y 128
    y = node(g, 'conv2d', [x, w], **CONV)
    y = node(g, 'multiply', [y, node(g, 'reshape', [s], shape=(1, 32, 1, 1))])
    g.outputs = [node(g, 'relu', [node(g, 'add', [y, node(g, 'reshape', [t], shape=(1, 32, 1, 1))])])]
    assert fold_affine_into_conv(g, n_data=1) is g               # rescaling w would cost 36x y
    g, (x, w, t) = new_graph((1, 16, 2, 2), (32, 16, 3, 3), (32,))
    y = node(g, 'conv2d', [x, w], **CONV)
    g.outputs = [node(g, 'add', [y, node(g, 'reshape', [t], shape=(1, 32, 1, 1))])]
    inputs = random_inputs(g)
    before = evaluate(g, inputs)
    g = fold_affine_into_conv(g, n_data=1)                        # a shift is O(channels): folds
    assert op_names(g)[-1] == 'conv2d' and 'add' not in op_names(g)
    np.testing.assert_allclose(evaluate(g, inputs)[0], before[0], rtol=1e-5, atol=1e-5)


def bn_net(scale=True):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1, use_bias=False), nn.BatchNorm(scale=scale), nn.Activation('relu'),
            nn.Conv2D(4, 3, groups=2), nn.BatchNorm(), nn.MaxPool2D(2))
    net.initialize(mx.init.Xavier())
    return net


@pytest.mark.parametrize('scale', [True, False])
def test_hybridized_inference_equals_eager_and_follows_the_parameters(scale):
    net = bn_net(scale)
    x = nd.array(np.random.RandomState(0).randn(2, 3, 10, 10))
    net(x)
    rng = np.random.RandomState(1)
    for p in net.collect_params().values():
        if 'batchnorm' in p.name:
            p.set_data(nd.array(rng.uniform(0.5, 1.5, p.shape)))
    ref = net(x).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), ref, rtol=1e-5, atol=1e-6)
    assert "act='relu'" in net.graph_code(x)        # the ReLU became the conv's epilogue
    bn = net[1]
    bn.running_var.set_data(bn.running_var.data() * 4)     # the fold reads the current statistics
    np.testing.assert_allclose(net(x).asnumpy(), _eager(net, x), rtol=1e-5, atol=1e-6)


def _eager(net, x):
    net.hybridize(False)
    try:
        return net(x).asnumpy()
    finally:
        net.hybridize()


def test_training_graphs_are_not_folded():
    net = bn_net()
    x = nd.array(np.random.RandomState(0).randn(2, 3, 10, 10))
    net(x)
    net.hybridize()
    with autograd.record():
        y = net(x)
    y.backward()
    eager = bn_net()
    eager(x)
    for p, q in zip(net.collect_params().values(), eager.collect_params().values()):
        q.set_data(p.data())
    with autograd.record():
        y2 = eager(x)
    np.testing.assert_allclose(y.asnumpy(), y2.asnumpy(), rtol=1e-5, atol=1e-6)
