"""engine.profiler: per-op timings of eager calls and of the kernels of compiled programs."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, gluon, nd, profiler
from engine.gluon import nn


@pytest.fixture(autouse=True)
def _clean():
    profiler.reset()
    yield
    profiler.set_state('stop')
    profiler.reset()


def _net():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, padding=1), nn.Activation('sigmoid'), nn.MaxPool2D(2), nn.Flatten(), nn.Dense(3))
    net.initialize(mx.init.Xavier())
    return net


def _step(net, x, y):
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    loss.backward()
    return loss


def test_nothing_is_recorded_unless_running():
    net = _net()
    _step(net, nd.ones((2, 1, 8, 8)), nd.array([0, 1]))
    assert profiler.get_stats() == {}


def test_eager_ops_and_compiled_kernels_are_recorded():
    net = _net()
    x, y = nd.random.normal(shape=(2, 1, 8, 8)), nd.array([0, 2])
    expected = _step(net, x, y).asnumpy()
    profiler.set_state('run')
    _step(net, x, y)
    eager = profiler.get_stats()
    assert eager['eager:conv2d'][0] == 1 and eager['eager:conv2d_backward_weight'][0] == 1
    profiler.reset()
    net.hybridize()
    for _ in range(2):
        loss = _step(net, x, y)
    profiler.set_state('stop')
    stats = profiler.get_stats()
    assert stats['forward:conv2d'][0] == 2 and stats['backward:conv2d_backward_weight'][0] == 2
    assert any(k.startswith('backward:fused[') for k in stats)     # sigmoid's gradient, fused
    assert all(calls > 0 and secs >= 0 for calls, secs in stats.values())
    np.testing.assert_allclose(loss.asnumpy(), expected, rtol=1e-5)   # profiled programs compute the same
    table = profiler.dumps(reset=True)
    assert table.splitlines()[0].split()[:3] == ['name', 'calls', 'total']
    assert 'forward:conv2d' in table and profiler.get_stats() == {}


def test_bad_state_is_a_clear_error():
    with pytest.raises(mx.MXNetError, match="'run' or 'stop'"):
        profiler.set_state('on')
