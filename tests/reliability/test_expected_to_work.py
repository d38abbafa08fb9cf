"""Part 7: what users expect to work: float16 through conv/pool/BatchNorm/Dense (computed in
float32 on the CPU, rounded back) and an empty batch through Dense/Conv (an empty result)."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.gluon import nn


def _net(dtype):
    mx.random.seed(3)
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, in_channels=2), nn.BatchNorm(in_channels=4), nn.MaxPool2D(),
            nn.Conv2DTranspose(2, 2, strides=2, in_channels=4), nn.AvgPool2D(), nn.Dense(5, in_units=2))
    net.initialize()
    net.cast(dtype)
    return net


def _run(net, x, train=True):
    x.attach_grad()
    with autograd.record(train_mode=train):
        y = net(x)
    y.backward()
    return y, x.grad


@pytest.mark.parametrize('hybrid', [False, True])
def test_float16_network_matches_float32(hybrid):
    half, full = _net('float16'), _net('float32')
    if hybrid:
        half.hybridize()
    x = nd.random.uniform(shape=(3, 2, 5, 5))
    y16, g16 = _run(half, x.astype('float16'))
    y32, g32 = _run(full, x)
    assert y16.dtype == np.float16 and g16.dtype == np.float16
    np.testing.assert_allclose(y16.asnumpy(), y32.asnumpy(), atol=2e-3, rtol=1e-2)
    np.testing.assert_allclose(g16.asnumpy(), g32.asnumpy(), atol=2e-3, rtol=1e-2)
    # the running statistics are updated in place, in float16
    m16, m32 = half[1].running_mean.data(), full[1].running_mean.data()
    assert m16.dtype == np.float16 and np.abs(m32.asnumpy()).max() > 0
    np.testing.assert_allclose(m16.asnumpy(), m32.asnumpy(), atol=1e-3, rtol=1e-2)


@pytest.mark.parametrize('hybrid', [False, True])
def test_empty_batch_gives_an_empty_result(hybrid):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, in_channels=2), nn.MaxPool2D(), nn.Dense(5, in_units=4))
    net.initialize()
    if hybrid:
        net.hybridize()
    y, g = _run(net, nd.ones((0, 2, 5, 5)), train=False)
    assert y.shape == (0, 5) and g.shape == (0, 2, 5, 5)
    assert np.all(net[0].weight.grad().asnumpy() == 0)
    d = nd.FullyConnected(nd.ones((0, 3)), nd.ones((4, 3)), nd.ones((4,)), num_hidden=4)
    assert d.shape == (0, 4)
    assert nd.FullyConnected(nd.ones((2, 0, 3)), nd.ones((4, 3)), num_hidden=4, no_bias=True,
                             flatten=False).shape == (2, 0, 4)


@pytest.mark.parametrize('hybrid', [False, True])
def test_batchnorm_training_on_an_empty_batch_keeps_the_running_statistics(hybrid):
    bn = nn.BatchNorm(in_channels=2)
    bn.initialize()
    if hybrid:
        bn.hybridize()
    y, g = _run(bn, nd.ones((0, 2, 3, 3)))
    assert y.shape == (0, 2, 3, 3) and g.shape == (0, 2, 3, 3)
    assert bn.running_mean.data().asnumpy().tolist() == [0, 0]
    assert bn.running_var.data().asnumpy().tolist() == [1, 1]
    assert bn.gamma.grad().asnumpy().tolist() == [0, 0]


def test_float16_embedding_forward_and_backward():
    w = nd.random.uniform(shape=(5, 3)).astype('float16')
    w.attach_grad()
    with autograd.record():
        y = nd.Embedding(nd.array([1, 4, 1]), w, input_dim=5, output_dim=3)
    y.backward()
    assert y.dtype == np.float16 and w.grad.dtype == np.float16
    np.testing.assert_array_equal(y.asnumpy(), w.asnumpy()[[1, 4, 1]])
    assert w.grad.asnumpy()[:, 0].tolist() == [0, 2, 0, 0, 1]
