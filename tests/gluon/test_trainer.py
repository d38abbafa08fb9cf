"""gluon.Trainer (issue 4): a step is the optimizer's update on the rescaled gradient, frozen
parameters stay put, the seed talk's training loop gives the same parameters eagerly and
hybridized, optimizer states round-trip, and an MLP learns the digits data set."""
import time

import numpy as np
import pytest

import engine as mx
from engine import autograd, gluon, nd
from engine.base import MXNetError
from engine.gluon import nn


def _mlp(prefix='mlp_', dropout=0.0):
    net = nn.HybridSequential(prefix=prefix)
    with net.name_scope():
        net.add(nn.Dense(16, activation='relu'))
        if dropout:
            net.add(nn.Dropout(dropout))
        net.add(nn.Dense(3))
    return net


def _data(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return nd.array(rng.standard_normal((n, 5))), nd.array(rng.integers(0, 3, n))


def _values(net):
    return {k: p.data().asnumpy().copy() for k, p in net.collect_params().items()}


def test_sgd_step_matches_a_manual_update():
    net = _mlp()
    net.initialize(mx.init.Xavier())
    x, y = _data()
    net(x)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    before = _values(net)
    with autograd.record():
        loss = loss_fn(net(x), y)
    loss.backward()
    grads = {k: p.grad().asnumpy().copy() for k, p in net.collect_params().items()}
    trainer.step(x.shape[0])
    for k, p in net.collect_params().items():
        expected = before[k] - 0.1 * grads[k] / x.shape[0]
        np.testing.assert_allclose(p.data().asnumpy(), expected, rtol=1e-6, atol=1e-7, err_msg=k)


def test_momentum_weight_decay_and_lr_mult_follow_the_sgd_rule():
    net = nn.Dense(2, in_units=3, prefix='d_')
    net.initialize(mx.init.Constant(0.5))
    net.bias.lr_mult = 0.0           # lr_mult scales the learning rate per parameter
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.2, 'momentum': 0.9, 'wd': 0.01})
    x = nd.array([[1.0, 2.0, 3.0]])
    w = net.weight.data().asnumpy().astype(np.float64)
    b = net.bias.data().asnumpy().copy()
    mom = np.zeros_like(w)
    for _ in range(3):
        with autograd.record():
            out = (net(x) ** 2).sum()
        out.backward()
        g = net.weight.grad().asnumpy().astype(np.float64) / 2 + 0.01 * w
        mom = 0.9 * mom - 0.2 * g
        w = w + mom
        trainer.step(2)
        np.testing.assert_allclose(net.weight.data().asnumpy(), w, rtol=1e-5)
    np.testing.assert_array_equal(net.bias.data().asnumpy(), b)


def test_frozen_parameters_are_not_updated():
    net = _mlp()
    net.initialize()
    x, y = _data()
    net(x)
    net.collect_params('.*dense0.*').setattr('grad_req', 'null')
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
    before = _values(net)
    with autograd.record():
        loss = gluon.loss.SoftmaxCELoss()(net(x), y)
    loss.backward()
    trainer.step(8)
    after = _values(net)
    assert np.array_equal(after['mlp_dense0_weight'], before['mlp_dense0_weight'])
    assert np.array_equal(after['mlp_dense0_bias'], before['mlp_dense0_bias'])
    assert not np.array_equal(after['mlp_dense1_weight'], before['mlp_dense1_weight'])


def test_trainer_on_a_subset_of_parameters():
    net = _mlp()
    net.initialize()
    x, y = _data()
    net(x)
    trainer = gluon.Trainer(net.collect_params('.*dense1.*'), 'sgd', {'learning_rate': 0.5})
    before = _values(net)
    with autograd.record():
        loss = gluon.loss.SoftmaxCELoss()(net(x), y)
    loss.backward()
    trainer.step(8)
    after = _values(net)
    assert np.array_equal(after['mlp_dense0_weight'], before['mlp_dense0_weight'])
    assert not np.array_equal(after['mlp_dense1_weight'], before['mlp_dense1_weight'])


def _train_three_steps(hybridize, optimizer='sgd', opt_params=None):
    mx.random.seed(42)
    net = _mlp('loop_')
    net.initialize(mx.init.Xavier())
    if hybridize:
        net.hybridize()
    loss_function = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), optimizer, opt_params or {'learning_rate': 0.1})
    batches = [_data(seed) for seed in range(3)]
    # the seed talk's loop
    for data, label in batches:
        with mx.autograd.record():
            prediction = net(data)
            loss = loss_function(prediction, label)
        loss.backward()
        trainer.step(data.shape[0])
    return _values(net)


@pytest.mark.parametrize('optimizer,params', [('sgd', None),
                                              ('adam', {'learning_rate': 0.01})])
def test_training_loop_same_parameters_eager_and_hybridized(optimizer, params):
    eager = _train_three_steps(False, optimizer, params)
    hybrid = _train_three_steps(True, optimizer, params)
    for k in eager:
        np.testing.assert_allclose(hybrid[k], eager[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize('optimizer,params', [('sgd', {'learning_rate': 0.1, 'momentum': 0.9}),
                                              ('adam', {'learning_rate': 0.01})])
def test_save_states_load_states_resumes_exactly(tmp_path, optimizer, params):
    x, y = _data(3)
    loss_fn = gluon.loss.SoftmaxCELoss()

    def fresh():
        mx.random.seed(7)
        net = _mlp('st_')
        net.initialize(mx.init.Xavier())
        net(x)
        return net, gluon.Trainer(net.collect_params(), optimizer, dict(params))

    def steps(net, trainer, n):
        for _ in range(n):
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(x.shape[0])

    straight, t_straight = fresh()
    steps(straight, t_straight, 4)
    first, t_first = fresh()
    steps(first, t_first, 2)
    t_first.save_states(str(tmp_path / 'trainer.states'))
    first.save_parameters(str(tmp_path / 'net.params'))
    resumed, t_resumed = fresh()
    resumed.load_parameters(str(tmp_path / 'net.params'))
    t_resumed.load_states(str(tmp_path / 'trainer.states'))
    steps(resumed, t_resumed, 2)
    resumed_values = _values(resumed)
    for k, v in _values(straight).items():
        np.testing.assert_allclose(resumed_values[k], v, rtol=1e-6, atol=1e-7, err_msg=k)
    # without the saved states, momentum/Adam moments restart and the result differs
    restarted, t_restarted = fresh()
    restarted.load_parameters(str(tmp_path / 'net.params'))
    steps(restarted, t_restarted, 2)
    assert any(not np.allclose(_values(restarted)[k], v, rtol=1e-6, atol=1e-7)
               for k, v in _values(straight).items())


def test_load_states_from_a_bad_file_is_a_clear_error(tmp_path):
    net = _mlp()
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    bad = tmp_path / 'notes.txt'
    bad.write_text('not optimizer states')
    with pytest.raises(MXNetError):
        trainer.load_states(str(bad))
    with pytest.raises(MXNetError, match='cannot read'):
        trainer.load_states(str(tmp_path / 'missing.states'))


def test_trainer_argument_errors():
    net = _mlp()
    net.initialize()
    with pytest.raises(MXNetError, match="did you mean 'learning_rate'"):
        gluon.Trainer(net.collect_params(), 'sgd', {'learning_rage': 0.1})     # the talk's typo
    with pytest.raises(MXNetError, match='unknown optimizer'):
        gluon.Trainer(net.collect_params(), 'sgdd')
    with pytest.raises(MXNetError, match='expected Parameters'):
        gluon.Trainer([1, 2], 'sgd')
    lazy = nn.Dense(2)
    lazy.initialize()
    trainer = gluon.Trainer(lazy.collect_params(), 'sgd')
    with pytest.raises(MXNetError, match='not been initialized'):
        trainer.step(1)


def test_learning_rate_property():
    net = _mlp()
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.3})
    assert trainer.learning_rate == pytest.approx(0.3)
    trainer.set_learning_rate(0.05)
    assert trainer.learning_rate == pytest.approx(0.05)


def test_grad_req_add_accumulates_until_zero_grad():
    net = nn.Dense(1, in_units=2, prefix='acc_')
    net.initialize(mx.init.One())
    net.collect_params().setattr('grad_req', 'add')
    x = nd.array([[1.0, 2.0]])
    for _ in range(2):
        with autograd.record():
            out = net(x).sum()
        out.backward()
    np.testing.assert_allclose(net.weight.grad().asnumpy(), [[2.0, 4.0]])
    net.zero_grad()
    np.testing.assert_allclose(net.weight.grad().asnumpy(), [[0.0, 0.0]])


# ---- acceptance: digits ------------------------------------------------------------------------

def _digits():
    datasets = pytest.importorskip('sklearn.datasets')
    X, y = datasets.load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(X))
    X, y = X[perm], y[perm].astype(np.float32)
    return X[:1400], y[:1400], X[1400:], y[1400:]


@pytest.mark.parametrize('hybridize', [False, True], ids=['eager', 'hybridized'])
def test_mlp_learns_digits(hybridize):
    """Issue 4 acceptance: an MLP on sklearn's digits reaches >= 95% test accuracy in seconds."""
    Xtr, ytr, Xte, yte = _digits()
    mx.random.seed(1)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(64, activation='relu'), nn.Dense(10))
    net.initialize(mx.init.Xavier())
    if hybridize:
        net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    start = time.perf_counter()
    batch = 50
    for epoch in range(10):
        for i in range(0, len(Xtr), batch):
            data, label = nd.array(Xtr[i:i + batch]), nd.array(ytr[i:i + batch])
            with autograd.record():
                loss = loss_fn(net(data), label)
            loss.backward()
            trainer.step(data.shape[0])
    elapsed = time.perf_counter() - start
    accuracy = (net(nd.array(Xte)).asnumpy().argmax(axis=1) == yte).mean()
    assert accuracy >= 0.95, f'test accuracy {accuracy:.3f}'
    assert elapsed < 20, f'training took {elapsed:.1f} s'


# ---- kvstore bookkeeping as MXNet's Trainer (custom stores, reset on load, error types) ------------
def _two_ctx_param(name='x'):
    x = gluon.Parameter(name, shape=(4,))
    x.initialize(ctx=[mx.cpu(0), mx.cpu(1)], init='zeros')
    return x


def _backward_ones(x):
    with autograd.record():
        for w in x.list_data():
            (w + 1).backward()


def test_registered_kvstore_sums_gradients_without_running_the_optimizer():
    x = _two_ctx_param()
    kv = mx.kv.create('teststore')
    trainer = gluon.Trainer([x], 'sgd', {'learning_rate': 1.0}, kvstore=kv)
    _backward_ones(x)
    trainer.step(1)
    assert trainer._kv_initialized and trainer._update_on_kvstore is False
    np.testing.assert_array_equal(x.data(mx.cpu(1)).asnumpy(), -2)   # gradients of 2 copies summed
    bad = gluon.Trainer([x], 'sgd', kvstore=kv, update_on_kvstore=True)
    with pytest.raises(ValueError, match='cannot run the optimizer'):
        bad._init_kvstore()

    @mx.kv.KVStoreBase.register
    class MyStore(mx.kv.TestStore):
        pass
    assert isinstance(mx.kv.create('mystore'), MyStore)
    with pytest.raises(MXNetError, match='unknown KVStore'):
        mx.kv.create('nosuchstore')


def test_single_context_has_no_kvstore_and_update_on_kvstore_none():
    x = gluon.Parameter('x', shape=(3,))
    x.initialize(ctx=mx.cpu(0), init='zeros')
    trainer = gluon.Trainer([x], 'sgd', {'learning_rate': 1.0})
    with autograd.record():
        (x.data() + 1).backward()
    trainer.step(1)
    assert trainer._kvstore is None and trainer._update_on_kvstore is None and trainer._kv_initialized


def test_update_with_update_on_kvstore_is_an_assertion_error():
    x = _two_ctx_param()
    trainer = gluon.Trainer([x], 'sgd', {'learning_rate': 1.0})
    _backward_ones(x)
    trainer.step(1)
    assert trainer._update_on_kvstore
    for call in (lambda: trainer.update(1), trainer.allreduce_grads):
        with pytest.raises(AssertionError, match='update_on_kvstore'):
            call()


def test_loading_parameters_resets_the_kvstore_and_keeps_optimizer_states(tmp_path):
    params = gluon.ParameterDict()
    x = params.get('x', shape=(4,))
    params.initialize(ctx=[mx.cpu(0), mx.cpu(1)], init='zeros')
    trainer = gluon.Trainer(params, 'sgd', {'learning_rate': 0.1, 'momentum': 0.5})
    f = str(tmp_path / 'x.params')
    params.save(f)
    _backward_ones(x)
    trainer.step(1)                                   # w = -0.2, momentum -0.2
    updater = trainer._kvstore._updater
    params.load(f)
    assert trainer._kvstore is None and trainer._kv_initialized is False
    _backward_ones(x)
    trainer.step(1)                                   # from the loaded zeros: 0.5*-0.2 - 0.2
    assert trainer._kvstore._updater is updater
    for ctx in (mx.cpu(0), mx.cpu(1)):
        np.testing.assert_allclose(x.data(ctx).asnumpy(), -0.3, rtol=1e-6)
