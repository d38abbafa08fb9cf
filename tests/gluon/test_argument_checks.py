"""No argument is silently ignored (issue 17, item 5): the Trainer refuses every optimizer argument
the optimizer class does not take (named with its nearest known one), and hybridize() refuses
unknown arguments and values it cannot honour."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, gluon, nd
from engine.base import MXNetError
from engine.gluon import nn


def _params():
    net = nn.Dense(2, in_units=3)
    net.initialize()
    return net.collect_params()


class Plain(mx.optimizer.Optimizer):
    """A custom optimizer whose __init__ takes no **kwargs."""

    def __init__(self, factor=1.0, learning_rate=0.1):
        super().__init__(learning_rate=learning_rate)
        self.factor = factor


class Swallowing(mx.optimizer.SGD):
    """Takes **kwargs but does not pass them on: the Trainer still refuses unknown ones."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(learning_rate=0.1)
        self.factor = factor


@pytest.mark.parametrize('optimizer, kwargs, match', [
    ('sgd', {'momentun': 0.9},
     r"unexpected argument\(s\) \['momentun'\] for SGD \('momentun' -> did you mean 'momentum'\?\)"),
    ('adam', {'beta_1': 0.9, 'epsilon': 1e-8}, r"\['beta_1'\] for Adam .*did you mean 'beta1'"),
    ('rmsprop', {'gamma': 0.9}, r"unexpected argument\(s\) \['gamma'\] for RMSProp"),
    (Plain, {'factr': 2.0}, r"\['factr'\] for Plain \('factr' -> did you mean 'factor'\?\); it takes "),
    (Swallowing, {'bogus': 1}, r"\['bogus'\] for Swallowing"),
    ('sgd', {'param_dict': {}}, r'optimizer_params cannot set param_dict'),
    ('sgd', {'sym': object()}, r'Trainer: SGD: sym is not supported'),
    ('sgd', {'learning_rate': 'fast'}, r'^Trainer: '),
])
def test_trainer_refuses_unknown_optimizer_arguments(optimizer, kwargs, match):
    with pytest.raises(MXNetError, match=match):
        gluon.Trainer(_params(), optimizer, kwargs)


def test_the_error_lists_what_the_optimizer_takes():
    with pytest.raises(MXNetError) as e:
        gluon.Trainer(_params(), 'nag', {'momentun': 0.9})
    for name in ('momentum', 'learning_rate', 'wd', 'clip_gradient', 'multi_precision'):
        assert f"'{name}'" in str(e.value)
    with pytest.raises(MXNetError, match=r'^SGD: unexpected argument\(s\) \[.momentun.\]'):
        mx.optimizer.create('sgd', momentun=0.9)        # the same message without the Trainer


def test_known_arguments_of_custom_optimizers_reach_them():
    t = gluon.Trainer(_params(), Plain, {'factor': 3.0, 'learning_rate': 0.5})
    assert t.optimizer.factor == 3.0 and t.learning_rate == 0.5
    assert gluon.Trainer(_params(), Swallowing, {'factor': 2.0}).optimizer.factor == 2.0


@pytest.mark.parametrize('kwargs, match', [
    ({'compression_params': {'type': '2bit'}}, 'compression_params .* not supported'),
    ({'kvstore': 'dist_sink'}, 'kvstore must be one of'),
    ({'update_on_kvstore': 'yes'}, 'update_on_kvstore must be None, True or False'),
])
def test_trainer_refuses_store_arguments_it_cannot_honour(kwargs, match):
    with pytest.raises(MXNetError, match=match):
        gluon.Trainer(_params(), 'sgd', **kwargs)
    with pytest.raises(MXNetError, match='optimizer must be a name'):
        gluon.Trainer(_params(), 3)


@pytest.mark.parametrize('kwargs, match', [
    ({'static_aloc': True}, r"unknown argument\(s\) \['static_aloc'\]"),
    ({'backend': 'MKLDNN'}, "backend='MKLDNN' is not supported"),
    ({'static_shape': 'yes'}, 'static_shape must be True or False'),
    ({'inline_limit': -1}, 'inline_limit must be a non-negative integer'),
    ({'forward_bulk_size': 1.5}, 'forward_bulk_size must be a non-negative integer'),
])
@pytest.mark.parametrize('container', [nn.HybridSequential, nn.Sequential])
@pytest.mark.filterwarnings('ignore:All children of this Sequential')
def test_hybridize_refuses_what_it_cannot_honour(kwargs, match, container):
    net = container()
    net.add(nn.Dense(2, in_units=3))
    with pytest.raises(MXNetError, match=r'hybridize: ' + match):
        net.hybridize(**kwargs)


def test_hybridize_accepts_mxnet_arguments_and_keeps_results():
    net = nn.HybridSequential()
    net.add(nn.Dense(4, in_units=3), nn.BatchNorm(in_channels=4), nn.Dense(2, in_units=4))
    net.initialize()
    x = nd.array(np.random.default_rng(0).standard_normal((5, 3)))
    eager = net(x).asnumpy()
    net.hybridize(static_alloc=True, static_shape=True, inline_limit=0, forward_bulk_size=15,
                  backward_bulk_size=15)
    np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=1e-5, atol=1e-6)
    assert net._cached_op._families is None              # static_shape: one program per shape


def test_hybridize_clear_false_keeps_the_compiled_graphs():
    net = nn.HybridSequential()
    net.add(nn.Dense(2, in_units=3))
    net.initialize()
    net.hybridize()
    net(nd.ones((1, 3)))
    op = net._cached_op
    net.hybridize(clear=False)
    assert net._cached_op is op
    net.hybridize()
    assert net._cached_op is None
    with autograd.record():
        net(nd.ones((1, 3)))
    assert net._cached_op is not None
