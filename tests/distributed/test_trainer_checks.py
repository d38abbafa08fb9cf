"""Trainer argument and state checks: states of another model are refused at load time (the
trainer stays as it was), and every unknown optimizer argument is a clear error."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, gluon, nd
from engine.base import MXNetError


def _model(widths, in_units=3):
    net = gluon.nn.Sequential()
    for w in widths:
        net.add(gluon.nn.Dense(w, in_units=in_units))
        in_units = w
    net.initialize()
    return net


def _step(net, trainer):
    with autograd.record():
        loss = net(nd.ones((2, 3))).sum()
    loss.backward()
    trainer.step(2)


def _snapshot(trainer):
    upd = trainer._state_updater()
    return trainer.learning_rate, {k: [a.asnumpy().copy() for a in (s if isinstance(s, tuple) else (s,))]
                                   for k, s in upd.states.items()}


@pytest.mark.parametrize('other_widths', [[4, 5], [4, 2, 2], [4]], ids=['shapes', 'more', 'fewer'])
def test_load_states_of_another_model_is_refused_and_changes_nothing(tmp_path, other_widths):
    other = _model(other_widths)
    t_other = gluon.Trainer(other.collect_params(), 'adam', {'learning_rate': 0.5})
    _step(other, t_other)
    t_other.save_states(str(tmp_path / 'other.states'))

    net = _model([4, 2])
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.01})
    _step(net, trainer)
    lr, before = _snapshot(trainer)
    with pytest.raises(MXNetError, match='another model'):
        trainer.load_states(str(tmp_path / 'other.states'))
    lr_after, after = _snapshot(trainer)
    assert lr_after == lr == 0.01 and before.keys() == after.keys()
    for k in before:
        for a, b in zip(before[k], after[k]):
            np.testing.assert_array_equal(a, b)
    _step(net, trainer)                                   # still trains


def test_load_states_of_the_same_model_restores_them(tmp_path):
    net = _model([4, 2])
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
    _step(net, trainer)
    trainer.save_states(str(tmp_path / 's'))
    _, saved = _snapshot(trainer)
    _step(net, trainer)
    trainer.load_states(str(tmp_path / 's'))
    _step(net, trainer)                                   # states move back onto the weights
    fresh = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
    fresh.load_states(str(tmp_path / 's'))
    _, loaded = _snapshot(fresh)
    for k in saved:
        np.testing.assert_array_equal(saved[k][0], loaded[k][0])


@pytest.mark.parametrize('optimizer, kwargs, hint', [
    ('sgd', {'learning_rage': 0.1}, "did you mean 'learning_rate'"),
    ('sgd', {'momentun': 0.9}, "did you mean 'momentum'"),
    ('adam', {'beta_1': 0.9}, "did you mean 'beta1'"),
    ('rmsprop', {'gamma': 0.9}, 'unexpected argument'),
])
def test_every_unknown_optimizer_argument_is_refused(optimizer, kwargs, hint):
    net = _model([2])
    with pytest.raises(MXNetError, match=hint):
        gluon.Trainer(net.collect_params(), optimizer, kwargs)
