"""Many input shapes on one hybridized block: bounded memory (an LRU of compiled signatures, one
pool of buffer memory for all of them) and correct results whatever order the shapes come in."""
import contextlib
import warnings

import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon import nn
from engine.gluon.block import _EAGER


def _net(**hybridize_kwargs):
    net = nn.HybridSequential()
    net.add(nn.Dense(32, activation='relu'), nn.Dense(16, activation='tanh'), nn.Dense(4))
    net.initialize(mx.init.Xavier())
    net(nd.ones((1, 8)))                              # parameters known before hybridizing
    net.hybridize(**hybridize_kwargs)
    return net


def _x(batch, seed=0):
    return nd.array(np.random.RandomState(seed + batch).randn(batch, 8).astype('float32'))


@contextlib.contextmanager
def _eagerly():
    """Hybridized blocks run eagerly inside (as during Block.summary)."""
    _EAGER.on = True
    try:
        yield
    finally:
        _EAGER.on = False


def _expected(net, x):
    with _eagerly():
        return net(x).asnumpy()


def test_the_cache_keeps_at_most_graph_cache_size_signatures():
    net = _net(graph_cache_size=3)
    for b in (1, 2, 3, 4, 5):
        np.testing.assert_allclose(net(_x(b)).asnumpy(), _expected(net, _x(b)), rtol=1e-5, atol=1e-6)
    assert len(net._cached_op.graphs) == 3
    kept = [key[0][0][0][0] for key in net._cached_op.graphs]
    assert kept == [3, 4, 5]                          # least recently used went first


def test_the_cache_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv('ENGINE_GRAPH_CACHE_SIZE', '2')
    net = _net()
    for b in (1, 2, 3):
        net(_x(b))
    assert len(net._cached_op.graphs) == 2


def test_a_churning_cache_warns_once():
    net = _net(graph_cache_size=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for _ in range(3):
            for b in (1, 2, 3):
                net(_x(b))
    churn = [w for w in caught if 'graph_cache_size' in str(w.message)]
    assert len(churn) == 1 and issubclass(churn[0].category, RuntimeWarning)


@pytest.mark.parametrize('bad', [0, -1, 'many'])
def test_a_bad_cache_size_is_a_clear_error(bad):
    net = _net(graph_cache_size=bad)
    with pytest.raises(MXNetError, match='graph_cache_size'):
        net(_x(2))


def test_all_shapes_share_one_buffer_pool_sized_for_the_largest():
    net = _net()
    for b in (8, 256, 16, 256, 8):                    # growing, then smaller shapes reuse it
        np.testing.assert_allclose(net(_x(b)).asnumpy(), _expected(net, _x(b)), rtol=1e-5, atol=1e-6)
    (pool,) = net._cached_op._pools.values()
    programs = [c.infer for c in net._cached_op.graphs.values()]
    assert len(pool._free) == 1                       # one block: calls never overlapped
    assert pool._free[0].memory.size == max(p.nbytes for p in programs) > 0


def test_training_at_alternating_batch_sizes_matches_eager():
    net = _net()
    for b in (4, 32, 4, 7):
        x = _x(b)
        with autograd.record():
            y = net(x)
        y.backward()
        grads = [p.grad().asnumpy().copy() for p in net.collect_params().values()]
        with _eagerly(), autograd.record():
            y2 = net(x)
        y2.backward()
        np.testing.assert_allclose(y.asnumpy(), y2.asnumpy(), rtol=1e-5, atol=1e-6)
        for g, p in zip(grads, net.collect_params().values()):
            np.testing.assert_allclose(g, p.grad().asnumpy(), rtol=1e-4, atol=1e-5, err_msg=f'batch {b}')
