"""The compiled-graph cache heals itself: a changed network is retraced, and a broken or
unwritable kernel cache is regenerated or bypassed instead of failing every later call."""
import numpy as np

import engine as mx
from engine import nd
from engine.gluon import nn


def _dense(units, **kw):
    d = nn.Dense(units, **kw)
    d.initialize()
    return d


def test_adding_a_layer_to_a_run_hybridized_net_retraces():
    net = nn.HybridSequential()
    net.add(_dense(10, flatten=False))
    net.hybridize()
    x = nd.ones((2, 3, 4))
    assert net(x).shape == (2, 3, 10)
    net.add(_dense(30))
    assert net(x).shape == (2, 30)


def test_replacing_a_nested_child_retraces():
    class Net(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.body = nn.HybridSequential()
            self.body.add(_dense(4))

        def forward(self, x):
            return self.body(x)

    net = Net()
    net.hybridize()
    x = nd.ones((2, 3))
    net(x)
    new = _dense(6)
    net.body.register_child(new, '0')       # same name: replaces the child
    out = net(x)
    assert out.shape == (2, 6)
    np.testing.assert_allclose(out.asnumpy(), new(x).asnumpy(), rtol=1e-6)
