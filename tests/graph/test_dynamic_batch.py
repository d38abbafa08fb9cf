"""Many input shapes on one hybridized block: one program for every batch size where the graph
allows it, bounded memory for the other signatures (an LRU of compiled signatures, one pool of
buffer memory for all of them), and correct results whatever order the shapes come in."""
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
    """Dense layers on the last axis: inputs (2, rows, 8) with `rows` varying are signatures of
    different families (the batch axis is the first), so each gets its own graph."""
    net = nn.HybridSequential()
    net.add(nn.Dense(32, activation='relu', flatten=False), nn.Dense(16, activation='tanh', flatten=False),
            nn.Dense(4, flatten=False))
    net.initialize(mx.init.Xavier())
    net(nd.ones((1, 1, 8)))                           # parameters known before hybridizing
    net.hybridize(**hybridize_kwargs)
    return net


def _x(rows, seed=0):
    return nd.array(np.random.RandomState(seed + rows).randn(2, rows, 8).astype('float32'))


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
    kept = [key[0][0][0][1] for key in net._cached_op.graphs]
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


# ---- the dynamic batch axis: one program for every batch size --------------------------------

def _conv_net():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(6, 5, activation='relu'), nn.MaxPool2D(), nn.Flatten(), nn.Dense(20, activation='tanh'),
            nn.Dense(10))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    return net


def _images(b):
    return nd.array(np.random.RandomState(b).randn(b, 1, 12, 12).astype('float32'))


def test_one_program_serves_every_batch_size():
    net = _conv_net()
    for b in (2, 3, 5, 17, 1, 40, 5):
        x = _images(b)
        np.testing.assert_allclose(net(x).asnumpy(), _expected(net, x), rtol=1e-5, atol=1e-5, err_msg=f'batch {b}')
    op = net._cached_op
    assert len(op.graphs) == 2                       # traced at the first two batch sizes only
    (family,) = op._families.values()
    source = family.infer.program.source
    assert 'B = data0.shape[0]' in source and 'reshape((B, 96))' in source


def test_a_forward_that_reads_shapes_keeps_one_graph_per_shape():
    class Net(nn.HybridBlock):
        def forward(self, x):
            return x.reshape((x.shape[0], -1)) * 2.0     # Python sees the batch size

    net = Net()
    net.hybridize()
    for b in (2, 3, 4):
        np.testing.assert_allclose(net(nd.ones((b, 3, 2))).asnumpy(), np.full((b, 6), 2.0))
    assert len(net._cached_op.graphs) == 3


def test_batch_forms_of_two_traces():
    from graphkit import new_graph, node
    from engine.graph.batch import Linear, batch_forms, check

    def traced(b):
        g, (x,) = new_graph((b, 4))
        g.outputs = [node(g, 'reshape', [node(g, 'exp', [x])], shape=(b * 4,))]
        return g
    g2, g3 = traced(2), traced(3)
    forms = batch_forms(g2, g3, 2, 3)
    (attrs,) = [a for n, a in zip(g2.nodes, forms.attrs) if n.op.name == 'reshape']
    (dim,) = attrs['shape']
    assert isinstance(dim, Linear) and (dim.a, dim.c) == (4, 0)
    check(g2.nodes, forms, 50)                       # the shape rules accept any batch size


def test_a_batch_size_the_shape_rules_reject_is_caught():
    from graphkit import new_graph, node
    from engine.graph.batch import batch_forms, check

    def traced(b):                                   # a reshape to (b*b,): not linear in b
        g, (x,) = new_graph((b, b))
        g.outputs = [node(g, 'reshape', [x], shape=(b * b,))]
        return g
    forms = batch_forms(traced(2), traced(3), 2, 3)
    with pytest.raises(MXNetError, match='batch size 4'):
        check(traced(2).nodes, forms, 4)


def test_graphs_that_differ_otherwise_are_not_generalized():
    from graphkit import new_graph, node
    from engine.graph.batch import batch_forms

    def traced(b, const):
        g, (x,) = new_graph((b, 3))
        g.outputs = [node(g, 'add', [x, g_const(g, const)])]
        return g

    def g_const(g, value):
        return g.add_constant(np.full((1, 3), value, np.float32))
    assert batch_forms(traced(2, 1.0), traced(3, 1.0), 2, 3) is not None
    assert batch_forms(traced(2, 1.0), traced(3, 2.0), 2, 3) is None


def test_training_at_any_batch_size_runs_one_program_and_matches_eager():
    net = _conv_net()
    params = list(net.collect_params().values())
    for b in (2, 3, 5, 9, 3):
        x = _images(b)
        with autograd.record():
            y = (net(x) * 0.5).sum()
        y.backward()
        grads = [p.grad().asnumpy().copy() for p in params]
        with _eagerly(), autograd.record():
            y2 = (net(x) * 0.5).sum()
        y2.backward()
        np.testing.assert_allclose(y.asnumpy(), y2.asnumpy(), rtol=1e-5)
        for g, p in zip(grads, params):
            np.testing.assert_allclose(g, p.grad().asnumpy(), rtol=1e-4, atol=1e-5, err_msg=f'{p.name}, batch {b}')
    op = net._cached_op
    assert len(op.graphs) == 2
    (family,) = op._families.values()
    (entry,) = family.train.values()
    assert entry != 'static' and 'B = ' in entry[0].backward.source


def test_static_shape_keeps_one_graph_per_shape():
    net = _conv_net()
    net.hybridize(static_shape=True)
    for b in (2, 3, 4):
        x = _images(b)
        np.testing.assert_allclose(net(x).asnumpy(), _expected(net, x), rtol=1e-5, atol=1e-5)
    assert len(net._cached_op.graphs) == 3


def test_a_batchnorm_net_in_predict_mode_runs_any_batch_size():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3), nn.BatchNorm(), nn.Activation('relu'), nn.GlobalAvgPool2D(), nn.Dense(3))
    net.initialize(mx.init.Xavier())
    net(_images(2))
    for p in net.collect_params('.*running.*').values():
        p.set_data(np.random.RandomState(0).uniform(0.5, 1.5, p.shape))
    net.hybridize()
    for b in (2, 3, 6, 1):
        x = _images(b)
        np.testing.assert_allclose(net(x).asnumpy(), _expected(net, x), rtol=1e-4, atol=1e-5, err_msg=f'batch {b}')
    assert len(net._cached_op.graphs) == 2
