"""The training mode of BatchNorm and Dropout is an explicit argument of their ops (issue 17, item 5):
the gluon layers pass autograd's flag at call time, a direct nd call without it reads the autograd
scope as MXNet's nd functions do, and a hybridized graph records the mode it was traced in. MXNet's
scopes: record() trains, record(train_mode=False) and no scope predict, train_mode() trains without
recording, predict_mode() inside record() predicts."""
import contextlib

import numpy as np
import pytest

from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon import nn

RTOL, ATOL = 1e-5, 1e-6

# (scope, does the layer train in it)
SCOPES = [
    (lambda: contextlib.nullcontext(), False),
    (lambda: autograd.record(), True),
    (lambda: autograd.record(train_mode=False), False),
    (lambda: autograd.train_mode(), True),
    (lambda: _nested(autograd.record(), autograd.predict_mode()), False),
]


@contextlib.contextmanager
def _nested(*scopes):
    with contextlib.ExitStack() as stack:
        for s in scopes:
            stack.enter_context(s)
        yield


def _bn_inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32) * 2 + 1
    return x, rng.random(3).astype(np.float32) + 0.5, rng.standard_normal(3).astype(np.float32)


def _nd_bn(x, g, b, **kw):
    rm, rv = nd.zeros((3,)), nd.ones((3,))
    y = nd.BatchNorm(nd.array(x), nd.array(g), nd.array(b), rm, rv, eps=1e-5, fix_gamma=False, **kw)
    return y.asnumpy(), rm.asnumpy()


def _batch_stats_ref(x, g, b):
    m, v = x.mean(axis=(0, 2), keepdims=True), x.var(axis=(0, 2), keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5) * g.reshape(1, 3, 1) + b.reshape(1, 3, 1)


def _running_stats_ref(x, g, b):   # running mean 0, var 1
    return x / np.sqrt(1 + 1e-5) * g.reshape(1, 3, 1) + b.reshape(1, 3, 1)


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('scope', range(len(SCOPES)))
def test_nd_batchnorm_explicit_mode_wins_over_the_scope(scope, training):
    x, g, b = _bn_inputs()
    with SCOPES[scope][0]():
        y, rm = _nd_bn(x, g, b, training=training)
    ref = _batch_stats_ref(x, g, b) if training else _running_stats_ref(x, g, b)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    # the running mean moves only while training: 0.9 * 0 + 0.1 * batch mean
    np.testing.assert_allclose(rm, 0.1 * x.mean(axis=(0, 2)) if training else 0, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('scope', range(len(SCOPES)))
def test_nd_batchnorm_without_mode_follows_the_scope(scope):
    make, trains = SCOPES[scope]
    x, g, b = _bn_inputs(1)
    with make():
        y, _ = _nd_bn(x, g, b)
    ref = _batch_stats_ref(x, g, b) if trains else _running_stats_ref(x, g, b)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


def test_nd_dropout_modes():
    x = nd.ones((200, 50))
    with autograd.train_mode():
        np.testing.assert_array_equal(nd.Dropout(x, p=0.5, training=False).asnumpy(), 1)
    dropped = nd.Dropout(x, p=0.5, training=True).asnumpy()   # outside any scope
    assert 0.4 < (dropped == 0).mean() < 0.6
    assert set(np.unique(dropped)) == {0.0, 2.0}
    # mode='always' draws in predict mode too (MXNet), whatever `training` says
    assert (nd.Dropout(x, p=0.5, mode='always', training=False).asnumpy() == 0).any()
    np.testing.assert_array_equal(nd.Dropout(x, p=0.5).asnumpy(), 1)   # no scope: predict


@pytest.mark.parametrize('call, match', [
    (lambda: nd.Dropout(nd.ones((2, 2)), p=0.5, mode='train'), r"Dropout: mode must be 'training' or 'always'"),
    (lambda: nd.Dropout(nd.ones((2, 2)), p=0.5, training='yes'), r'Dropout: training must be True, False or None'),
    (lambda: nd.BatchNorm(nd.ones((2, 3)), *[nd.ones((3,))] * 4, training=1),
     r'BatchNorm: training must be True, False or None'),
])
def test_bad_mode_arguments_are_clear_errors(call, match):
    with pytest.raises(MXNetError, match=match):
        call()


def _bn_net():
    net = nn.HybridSequential()
    net.add(nn.BatchNorm(in_channels=3, epsilon=1e-5))
    net.initialize()
    net[0].gamma.set_data(nd.array([0.5, 1.0, 2.0]))
    return net


@pytest.mark.parametrize('scope', range(len(SCOPES)))
def test_batchnorm_layer_eager_and_hybridized_agree_in_every_scope(scope):
    make, trains = SCOPES[scope]
    x, _, _ = _bn_inputs(2)
    results = []
    for hybrid in (False, True):
        net = _bn_net()
        if hybrid:
            net.hybridize()
        with make():
            y = net(nd.array(x))
        results.append((y.asnumpy(), net[0].running_mean.data().asnumpy()))
    (ye, rme), (yh, rmh) = results
    np.testing.assert_allclose(yh, ye, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rmh, rme, rtol=RTOL, atol=ATOL)
    g = np.array([0.5, 1.0, 2.0], np.float32)
    ref = _batch_stats_ref(x, g, 0 * g) if trains else _running_stats_ref(x, g, 0 * g)
    np.testing.assert_allclose(ye, ref, rtol=1e-4, atol=1e-5)
    assert np.any(rme != 0) == trains


@pytest.mark.parametrize('hybrid', [False, True])
def test_dropout_layer_follows_the_scope(hybrid):
    net = nn.HybridSequential()
    net.add(nn.Dropout(0.5))
    net.initialize()
    if hybrid:
        net.hybridize()
    x = nd.ones((100, 40))
    for make, trains in SCOPES:
        with make():
            out = net(x).asnumpy()
        assert (out == 0).any() == trains


def test_hybridized_graph_records_the_mode_it_was_traced_in():
    net = nn.HybridSequential()
    net.add(nn.Dense(4, in_units=3), nn.BatchNorm(in_channels=4), nn.Dropout(0.5))
    net.initialize()
    net.hybridize()
    x = nd.ones((2, 3))
    with autograd.train_mode():
        train_graph = net.graph(x)
    predict_graph = net.graph(x)
    bn = [n for n in train_graph.nodes if n.op.name == 'batch_norm']
    assert len(bn) == 1 and bn[0].attrs['training'] is True
    assert any(n.op.name == 'dropout_mask' for n in train_graph.nodes)
    assert not {'batch_norm', 'dropout_mask'} & {n.op.name for n in predict_graph.nodes}


def test_layer_passes_the_mode_explicitly(monkeypatch):
    """The layer reads autograd's flag itself and hands it to the op, so the nd function never
    consults the scope for a layer call (the attribute, not global state, decides)."""
    from engine.ops import nn as ops_nn
    calls = []
    real = ops_nn._training_mode

    def spy(name, training):
        calls.append(training)
        return real(name, training)
    monkeypatch.setattr(ops_nn, '_training_mode', spy)
    bn = nn.BatchNorm(in_channels=3)
    bn.initialize()
    with autograd.record():
        bn(nd.ones((2, 3)))
    bn(nd.ones((2, 3)))
    assert calls == [True, False]
