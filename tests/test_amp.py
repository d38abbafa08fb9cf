"""mx.amp: op-list casting (eager and hybridized), dynamic loss scaling and float32 master
weights for float16 parameters."""
import numpy as np
import pytest

import engine as mx
from engine import amp, autograd, gluon, nd
from engine.gluon import nn


@pytest.fixture
def mixed():
    amp.init()
    yield
    amp.shutdown()


def mlp():
    net = nn.HybridSequential()
    net.add(nn.Dense(16, activation='tanh', in_units=5), nn.Dense(3, in_units=16))   # smooth: fp16 rounding cannot flip a ReLU
    net.initialize(mx.init.Xavier())
    return net


def data(n=8):
    rng = np.random.RandomState(0)
    return nd.array(rng.randn(n, 5)), nd.array(rng.randint(0, 3, n))


def test_op_lists_choose_the_dtypes(mixed):
    x, w = nd.ones((2, 3)), nd.ones((4, 3))
    y = nd.FullyConnected(x, w, num_hidden=4, no_bias=True)
    assert y.dtype == np.float16                          # matrix ops run in float16
    assert nd.softmax(y).dtype == np.float32              # softmax widens its float16 input
    assert (y + nd.ones((2, 4))).dtype == np.float32      # binary ops take the widest
    assert nd.relu(y).dtype == np.float16                 # the rest keep their input's dtype
    np.testing.assert_allclose(y.asnumpy(), 3.0)


def test_amp_off_leaves_dtypes_alone():
    y = nd.FullyConnected(nd.ones((2, 3)), nd.ones((4, 3)), num_hidden=4, no_bias=True)
    assert y.dtype == np.float32 and not amp.is_enabled()


def grads(net, x, y):
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    loss.backward()
    return loss, [p.grad().asnumpy().copy() for p in net.collect_params().values()]


@pytest.mark.parametrize('hybridize', [False, True])
def test_mixed_gradients_match_float32(hybridize):
    net = mlp()
    x, y = data()
    loss32, g32 = grads(net, x, y)
    amp.init()
    try:
        if hybridize:
            net.hybridize()
        loss16, g16 = grads(net, x, y)
        assert loss16.dtype == np.float32
        assert all(p.grad().dtype == np.float32 for p in net.collect_params().values())
        if hybridize:
            assert 'cast' in str(net.graph(x))
    finally:
        amp.shutdown()
    np.testing.assert_allclose(loss16.asnumpy(), loss32.asnumpy(), rtol=5e-3, atol=5e-3)
    for a, b in zip(g16, g32):
        np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-3)


def test_scaled_loss_trains_like_unscaled():
    x, y = data()
    nets = [mlp(), mlp()]
    for p, q in zip(nets[0].collect_params().values(), nets[1].collect_params().values()):
        q.set_data(p.data())
    trainers = [gluon.Trainer(n.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
                for n in nets]
    amp.init_trainer(trainers[1])
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(5):
        for net, tr in zip(nets, trainers):
            with autograd.record():
                loss = loss_fn(net(x), y)
            if tr._amp_loss_scaler is None:
                loss.backward()
            else:
                with amp.scale_loss(loss, tr) as scaled:
                    scaled.backward()
            tr.step(x.shape[0])
    for p, q in zip(nets[0].collect_params().values(), nets[1].collect_params().values()):
        np.testing.assert_allclose(q.data().asnumpy(), p.data().asnumpy(), rtol=1e-5, atol=1e-6)


def test_overflow_skips_the_step_and_adapts_the_scale():
    net = mlp()
    x, y = data()
    tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    amp.init_trainer(tr, amp.LossScaler(init_scale=2.0 ** 10, window=2))
    w = net[0].weight
    net(x)
    before = w.data().asnumpy().copy()
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    with amp.scale_loss(loss, tr) as scaled:
        scaled.backward()
    w.grad()[0, 0] = np.inf
    tr.step(8)
    np.testing.assert_array_equal(w.data().asnumpy(), before)
    assert tr._amp_loss_scaler.loss_scale == 2.0 ** 9
    for _ in range(2):
        with autograd.record():
            loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
        with amp.scale_loss(loss, tr) as scaled:
            scaled.backward()
        tr.step(8)
    assert tr._amp_loss_scaler.loss_scale == 2.0 ** 10
    assert not np.array_equal(w.data().asnumpy(), before)


def test_unscale_then_step_divides_once():
    net = mlp()
    x, y = data()
    ref = mlp()
    for p, q in zip(net.collect_params().values(), ref.collect_params().values()):
        q.set_data(p.data())
    tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    tr_ref = gluon.Trainer(ref.collect_params(), 'sgd', {'learning_rate': 0.1})
    amp.init_trainer(tr)
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    with amp.scale_loss(loss, tr) as scaled:
        scaled.backward()
    amp.unscale(tr)
    g = net[0].weight.grad().asnumpy().copy()
    tr.step(8)
    _, gref = grads(ref, x, y)
    tr_ref.step(8)
    np.testing.assert_allclose(g, gref[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net[0].weight.data().asnumpy(), ref[0].weight.data().asnumpy(), rtol=1e-5)


@pytest.mark.parametrize('optimizer', ['sgd', 'adam'])
def test_master_weights_keep_small_steps(optimizer):
    """float16 has ~1e-3 resolution at 1.0: steps of 1e-4 vanish without float32 masters."""
    results = {}
    for mp in (False, True):
        w = gluon.Parameter('w', shape=(4,), dtype='float16', init=mx.init.One())
        w.initialize()
        tr = gluon.Trainer([w], optimizer, {'learning_rate': 1e-4, 'multi_precision': mp})
        for _ in range(50):
            with autograd.record():
                loss = (w.data() * nd.ones(4, dtype='float16')).sum()
            loss.backward()
            tr.step(1)
        results[mp] = w.data().asnumpy().astype(np.float64)
    np.testing.assert_array_equal(results[False], 1.0)
    np.testing.assert_allclose(results[True], 1.0 - 50e-4, atol=2e-3 if optimizer == 'sgd' else 3e-3)
    assert (results[True] < 0.997).all()


def test_mixed_training_learns(mixed):
    rng = np.random.RandomState(0)
    x = rng.randn(256, 5).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
    net = mlp()
    net.hybridize()
    tr = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.01})
    amp.init_trainer(tr)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for epoch in range(30):
        with autograd.record():
            loss = loss_fn(net(nd.array(x)), nd.array(y))
        with amp.scale_loss(loss, tr) as scaled:
            scaled.backward()
        tr.step(256)
    acc = (net(nd.array(x)).asnumpy().argmax(1) == y).mean()
    assert acc > 0.9


def test_bad_use_is_a_clear_error():
    with pytest.raises(mx.MXNetError, match='float16'):
        amp.init('bfloat16')
    with pytest.raises(mx.MXNetError, match='unknown op'):
        amp.init(fp32_ops=['no_such_op'])
    assert not amp.is_enabled()
    tr = gluon.Trainer(mlp().collect_params(), 'sgd')
    with pytest.raises(mx.MXNetError, match='init_trainer'):
        with amp.scale_loss(nd.ones(1), tr):
            pass
