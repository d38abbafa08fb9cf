"""One registry (engine/registry.py) behind mx.init, mx.metric and mx.optimizer (issue 17, item 5):
MXNet's register/alias decorators, case-insensitive lookups, and an unknown name is an MXNetError
that lists the registered ones."""
import numpy as np
import pytest

import engine as mx
from engine import initializer, metric, nd
from engine.base import MXNetError
from engine.optimizer import optimizer as optimizer_mod


@pytest.fixture
def scratch(monkeypatch):
    """Registries that forget what a test registers."""
    for reg in (initializer._REGISTRY, metric._REGISTRY, optimizer_mod._REGISTRY):
        monkeypatch.setattr(reg, '_classes', dict(reg._classes))


@pytest.mark.parametrize('make, cls', [
    (lambda n: mx.init.create(n), mx.init.Xavier),
    (lambda n: mx.metric.create(n), mx.metric.Accuracy),
    (lambda n: mx.optimizer.create(n, learning_rate=0.1), mx.optimizer.SGD),
])
@pytest.mark.parametrize('case', [str.lower, str.upper, str.title])
def test_lookups_ignore_case(make, cls, case):
    name = {mx.init.Xavier: 'xavier', mx.metric.Accuracy: 'acc', mx.optimizer.SGD: 'sgd'}[cls]
    assert type(make(case(name))) is cls


@pytest.mark.parametrize('call, kind, known', [
    (lambda: mx.init.create('glorot'), 'initializer', "'xavier'"),
    (lambda: mx.metric.create('accuracyy'), 'metric', "'acc'"),
    (lambda: mx.optimizer.create('adamx'), 'optimizer', "'adam'"),
])
def test_unknown_name_lists_the_registered_ones(call, kind, known):
    with pytest.raises(MXNetError, match=f'unknown {kind} .*; registered {kind}s: .*{known}'):
        call()


def test_init_register_and_alias(scratch):
    @mx.init.register
    @mx.init.alias('SevenS')
    class Sevens(mx.init.Initializer):
        def _init_weight(self, name, arr):
            arr[:] = 7

    for name in ('sevens', 'SEVENS', 'sevens'):
        assert type(mx.init.create(name)) is Sevens
    net = mx.gluon.nn.Dense(2, in_units=3)
    net.initialize(init='sevens')
    np.testing.assert_array_equal(net.weight.data().asnumpy(), 7)
    # the JSON form of dumps() finds the class by its registered name too
    assert type(mx.init.create(Sevens().dumps())) is Sevens


def test_metric_register_and_alias(scratch):
    @mx.metric.register
    @mx.metric.alias('always_one')
    class One(mx.metric.EvalMetric):
        def __init__(self, name='one', **kw):
            super().__init__(name, **kw)

        def update(self, labels, preds):
            self.sum_metric += 1.0
            self.num_inst += 1

    m = mx.metric.create('ALWAYS_ONE')
    assert type(m) is One and type(mx.metric.create('one')) is One
    m.update([nd.ones((2,))], [nd.ones((2,))])
    assert m.get() == ('one', 1.0)


def test_optimizer_register_both_spellings(scratch):
    @mx.optimizer.register
    class HalfSGD(mx.optimizer.SGD):
        pass

    @mx.optimizer.Optimizer.register
    class OtherSGD(mx.optimizer.SGD):
        pass

    assert type(mx.optimizer.create('halfsgd', learning_rate=0.5)) is HalfSGD
    assert type(mx.optimizer.Optimizer.create_optimizer('OTHERSGD')) is OtherSGD
    trainer = mx.gluon.Trainer(mx.gluon.nn.Dense(1, in_units=1).collect_params(), 'HalfSGD')
    assert type(trainer._optimizer) is HalfSGD


def test_registering_another_class_under_a_taken_name_warns(scratch):
    class SGD(mx.optimizer.SGD):
        pass
    with pytest.warns(UserWarning, match="optimizer 'sgd' was registered by .*; replacing it"):
        mx.optimizer.register(SGD)
    assert type(mx.optimizer.create('sgd')) is SGD


@pytest.mark.parametrize('register, base', [
    (mx.init.register, 'Initializer'), (mx.metric.register, 'EvalMetric'),
    (mx.optimizer.register, 'Optimizer')])
def test_register_refuses_other_classes(register, base):
    with pytest.raises(MXNetError, match=f'register: expected a {base} subclass, got'):
        register(dict)
