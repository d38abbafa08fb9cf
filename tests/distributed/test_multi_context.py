"""Several contexts in one process: N copies trained through a KVStore equal one context that sees
the whole batch, for every optimizer (a shared Updater state used to advance once per copy)."""
import numpy as np
import pytest

import engine as mx
from engine import autograd, gluon, nd
from engine.base import MXNetError

OPTIMIZERS = [
    ('sgd', {'learning_rate': 0.1}),
    ('sgd', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-3}),
    ('nag', {'learning_rate': 0.1, 'momentum': 0.9}),
    ('adam', {'learning_rate': 0.01}),
    ('adamw', {'learning_rate': 0.01}),
    ('rmsprop', {'learning_rate': 0.01}),
    ('adagrad', {'learning_rate': 0.1}),
]


def _net(ctx, hybridize):
    mx.random.seed(3)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(16, activation='relu', in_units=6), gluon.nn.Dense(4, in_units=16))
    net.initialize(mx.init.Xavier(), ctx=ctx)
    if hybridize:
        net.hybridize()
    return net


def _train(ctx, optimizer, steps=20, hybridize=False, **trainer_kw):
    net = _net(ctx, hybridize)
    trainer = gluon.Trainer(net.collect_params(), optimizer[0], dict(optimizer[1]), **trainer_kw)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    rs = np.random.RandomState(0)
    for _ in range(steps):
        x = rs.randn(12, 6).astype('float32')
        y = rs.randint(0, 4, 12).astype('float32')
        xs, ys = gluon.utils.split_and_load(x, ctx), gluon.utils.split_and_load(y, ctx)
        with autograd.record():
            losses = [loss_fn(net(a), b) for a, b in zip(xs, ys)]
        for loss in losses:
            loss.backward()
        trainer.step(12)
    return net


def _copies(net):
    return [[d.asnumpy() for d in p.list_data()] for p in net.collect_params().values()]


@pytest.mark.parametrize('optimizer', OPTIMIZERS, ids=lambda o: o[0] + ('_mom' if 'momentum' in o[1] else ''))
@pytest.mark.parametrize('update_on_kvstore', [True, False])
def test_n_contexts_equal_one_context_with_the_whole_batch(optimizer, update_on_kvstore):
    one = _copies(_train([mx.cpu(0)], optimizer))
    three = _copies(_train([mx.cpu(0), mx.cpu(1), mx.cpu(2)], optimizer, update_on_kvstore=update_on_kvstore))
    for (ref,), copies in zip(one, three):
        for c in copies:
            np.testing.assert_allclose(c, ref, rtol=1e-5, atol=1e-5)
        assert all(np.array_equal(c, copies[0]) for c in copies)   # the copies stay identical
    assert any(not np.allclose(r, p) for (r,), (p,) in zip(one, _copies(_net([mx.cpu(0)], False))))


@pytest.mark.parametrize('kvstore', ['local', 'device', mx.kv.create('device')])
def test_hybridized_multi_context_with_each_store(kvstore):
    opt = ('adam', {'learning_rate': 0.01})
    one = _copies(_train([mx.cpu(0)], opt, steps=5, hybridize=True))
    two = _copies(_train([mx.cpu(0), mx.cpu(1)], opt, steps=5, hybridize=True, kvstore=kvstore))
    for (ref,), copies in zip(one, two):
        for c in copies:
            np.testing.assert_allclose(c, ref, rtol=1e-5, atol=1e-6)


def test_a_hybridized_block_compiles_once_per_context():
    ctx = [mx.cpu(0), mx.cpu(1)]
    net = _train(ctx, OPTIMIZERS[0], steps=3, hybridize=True)
    signatures = list(net._cached_op.graphs)
    assert len(signatures) == 2 and {s[-2] for s in signatures} == set(ctx)


def test_parameter_copies_per_context():
    net = _net([mx.cpu(0), mx.cpu(1)], False)
    w = net[0].weight
    net(nd.ones((2, 6), ctx=mx.cpu(1)))
    assert [d.context for d in w.list_data()] == [mx.cpu(0), mx.cpu(1)]
    assert w.data(mx.cpu(1)).context == mx.cpu(1) and w.data(mx.cpu(1)) is not w.data(mx.cpu(0))
    assert len(w.list_grad()) == 2
    np.testing.assert_array_equal(w.data(mx.cpu(0)).asnumpy(), w.data(mx.cpu(1)).asnumpy())
    w.reset_ctx([mx.cpu(0), mx.cpu(1), mx.cpu(2)])
    bufs = [d._data for d in w.list_data()]          # every copy owns its buffer
    assert not any(np.shares_memory(a, b) for i, a in enumerate(bufs) for b in bufs[i + 1:])


def test_split_and_load():
    parts = gluon.utils.split_and_load(np.arange(12, dtype=np.float32).reshape(6, 2), [mx.cpu(0), mx.cpu(1)])
    assert [p.context for p in parts] == [mx.cpu(0), mx.cpu(1)] and [p.shape for p in parts] == [(3, 2)] * 2
    np.testing.assert_array_equal(parts[1].asnumpy(), [[6, 7], [8, 9], [10, 11]])
    assert gluon.utils.split_and_load(nd.ones((2, 2)), mx.cpu(1))[0].context == mx.cpu(1)
    with pytest.raises(MXNetError, match='evenly'):
        gluon.utils.split_and_load(nd.ones((5, 2)), [mx.cpu(0), mx.cpu(1)])
    with pytest.raises(MXNetError, match='list of Contexts'):
        gluon.utils.split_and_load(nd.ones((2, 2)), ['cpu'])


def test_kvstore_api():
    kv = mx.kv.create('local')
    assert kv.type == 'local' and kv.rank == 0 and kv.num_workers == 1
    kv.init(3, nd.ones((2, 3)))
    kv.init(['a', 'b'], [nd.zeros((2,)), nd.zeros((1,))])
    kv.push(3, [nd.ones((2, 3), ctx=mx.cpu(i)) * (i + 1) for i in range(3)])
    out = [nd.zeros((2, 3), ctx=mx.cpu(i)) for i in range(2)]
    kv.pull(3, out=out)
    for o in out:
        np.testing.assert_array_equal(o.asnumpy(), np.full((2, 3), 6.0))
    vals = [nd.array([1.0, 2.0]), nd.array([3.0, 4.0], ctx=mx.cpu(1))]
    kv.pushpull('a', vals)
    for v in vals:
        np.testing.assert_array_equal(v.asnumpy(), [4.0, 6.0])
    dst = [nd.zeros((2,), ctx=mx.cpu(i)) for i in range(2)]
    kv.broadcast('c', nd.array([7.0, 8.0]), out=dst)
    for d in dst:
        np.testing.assert_array_equal(d.asnumpy(), [7.0, 8.0])
    with pytest.raises(MXNetError, match='not initialized'):
        kv.push('zz', nd.ones((1,)))
    with pytest.raises(MXNetError, match='shape'):
        kv.push('b', nd.ones((4,)))
    with pytest.raises(MXNetError, match='already initialized'):
        kv.init(3, nd.ones((2, 3)))
    with pytest.raises(MXNetError, match='horovod'):
        mx.kv.create('dist_sync')
    with pytest.raises(MXNetError, match='unknown KVStore'):
        mx.kv.create('fast')


def test_kvstore_with_an_optimizer_updates_the_stored_weight():
    kv = mx.kv.create('device')
    kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.5))
    kv.init(0, nd.ones((3,)))
    kv.push(0, [nd.ones((3,)), nd.ones((3,), ctx=mx.cpu(1))])
    out = nd.zeros((3,))
    kv.pull(0, out=out)
    np.testing.assert_allclose(out.asnumpy(), np.zeros(3))     # 1 - 0.5 * (1 + 1)


def test_one_updater_used_on_two_contexts_is_a_clear_error():
    updater = mx.optimizer.get_updater(mx.optimizer.SGD(momentum=0.9))
    updater(0, nd.ones((2,)), nd.ones((2,)))
    with pytest.raises(MXNetError, match='one Updater per'):
        updater(0, nd.ones((2,), ctx=mx.cpu(1)), nd.ones((2,), ctx=mx.cpu(1)))


def test_trainer_kvstore_arguments():
    net = _net([mx.cpu(0), mx.cpu(1)], False)
    params = net.collect_params()
    with pytest.raises(MXNetError, match='drift'):
        t = gluon.Trainer(params, 'sgd', kvstore=None)
        t.step(1)
    with pytest.raises(MXNetError, match='compression'):
        gluon.Trainer(params, 'sgd', compression_params={'type': '2bit', 'threshold': 0.5})
    with pytest.raises(MXNetError, match='kvstore must be'):
        gluon.Trainer(params, 'sgd', kvstore='dist_fast')
    with pytest.raises(MXNetError, match='update_on_kvstore must be'):
        gluon.Trainer(params, 'sgd', update_on_kvstore='yes')
    t = gluon.Trainer(params, 'sgd')        # update_on_kvstore defaults to True with a store
    with pytest.raises(MXNetError, match='update_on_kvstore=False'):
        t.allreduce_grads()
    with pytest.raises(MXNetError, match='Optimizer instance'):
        gluon.Trainer(params, mx.optimizer.SGD(), {'learning_rate': 0.1})


def test_allreduce_then_update_separately():
    """update_on_kvstore=False: allreduce_grads() leaves the sum on every copy (e.g. to clip it)."""
    net = _net([mx.cpu(0), mx.cpu(1)], False)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1}, update_on_kvstore=False)
    xs = [nd.ones((1, 6), ctx=mx.cpu(0)), nd.ones((1, 6), ctx=mx.cpu(1)) * 2]
    with autograd.record():
        losses = [net(x).sum() for x in xs]
    for loss in losses:
        loss.backward()
    g0, g1 = [g.asnumpy().copy() for g in net[0].weight.list_grad()]
    trainer.allreduce_grads()
    for g in net[0].weight.list_grad():
        np.testing.assert_allclose(g.asnumpy(), g0 + g1, rtol=1e-6)
    trainer.update(2)
    w = net[0].weight.list_data()
    np.testing.assert_array_equal(w[0].asnumpy(), w[1].asnumpy())


def test_update_counts_are_kept_per_device_not_per_device_id():
    """gpu(0) and cpu(0) training one model must not share Adam's step count (seen on an H200:
    with update_on_kvstore=False the copies advanced t twice per step)."""
    from engine.optimizer.optimizer import _count_key
    assert _count_key(mx.Context('gpu', 0)) != _count_key(mx.cpu(0))
    assert _count_key(mx.cpu(1)) == 1                     # CPU keys stay MXNet's device ids


@pytest.mark.parametrize('update_on_kvstore', [True, False])
def test_multi_context_states_save_and_resume_exactly(tmp_path, update_on_kvstore):
    ctx = [mx.cpu(0), mx.cpu(1)]
    net = _net(ctx, False)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.01},
                            update_on_kvstore=update_on_kvstore)
    loss_fn = gluon.loss.L2Loss()
    rs = np.random.RandomState(0)
    batches = [(rs.randn(4, 6).astype('float32'), rs.randn(4, 4).astype('float32')) for _ in range(5)]

    def run(steps):
        for x, y in steps:
            xs, ys = gluon.utils.split_and_load(x, ctx), gluon.utils.split_and_load(y, ctx)
            with autograd.record():
                losses = [loss_fn(net(a), b) for a, b in zip(xs, ys)]
            for loss in losses:
                loss.backward()
            trainer.step(4)

    run(batches[:3])
    trainer.save_states(str(tmp_path / 's'))
    saved = [p.data(mx.cpu(0)).asnumpy().copy() for p in net.collect_params().values()]
    run(batches[3:])
    straight = _copies(net)
    for p, v in zip(net.collect_params().values(), saved):
        p.set_data(nd.array(v))
    trainer.load_states(str(tmp_path / 's'))
    run(batches[3:])
    for a, b in zip(straight, _copies(net)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
