"""hybridize() from the user's side (issue 5): tracing errors that name the block and the line,
blocks that cannot be compiled, switching hybridization on and off, children following their
parent, retracing per input signature, and reading the graph (text, DOT, generated code)."""
import re

import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon import nn


class ReadsValue(nn.HybridBlock):
    """Reads a value in hybrid_forward in one of several ways."""

    def __init__(self, how, **kwargs):
        super().__init__(**kwargs)
        self.how = how

    def hybrid_forward(self, F, x):
        if self.how == 'asnumpy':
            x = x * float(x.asnumpy().mean())          # LINE asnumpy
        elif self.how == 'asscalar':
            x = x * x.sum().asscalar()                 # LINE asscalar
        elif self.how == 'if':
            if x.sum() > 0:                            # LINE if
                x = x * 2
        elif self.how == 'float':
            x = x * float(x.sum())                     # LINE float
        return x


def _line_of(tag):
    with open(__file__) as f:
        for i, line in enumerate(f, 1):
            if line.rstrip().endswith(f'# LINE {tag}'):
                return i
    raise AssertionError(tag)


@pytest.mark.parametrize('how,what', [('asnumpy', r'asnumpy\(\)'), ('asscalar', r'asscalar\(\)'),
                                      ('if', r'`if`/`while`/bool\(\)'), ('float', r'float\(\)')])
def test_reading_a_value_while_tracing_is_a_clear_error(how, what):
    blk = ReadsValue(how, prefix='reader_')
    blk.initialize()
    x = nd.ones((2, 3))
    blk(x)                                            # eagerly it simply runs
    blk.hybridize()
    with pytest.raises(MXNetError) as err:
        blk(x)
    msg = str(err.value)
    assert msg.startswith('ReadsValue(reader)')
    assert re.search(what, msg)
    assert f'test_hybridize.py:{_line_of(how)}' in msg
    assert 'keep this block eager' in msg and 'hybridize' in msg


def test_the_error_names_the_innermost_block_and_its_parent():
    net = nn.HybridSequential(prefix='outer_')
    with net.name_scope():
        net.add(nn.Dense(3), ReadsValue('asscalar', prefix='inner_'))
    net.initialize()
    net.hybridize()
    with pytest.raises(MXNetError) as err:
        net(nd.ones((2, 4)))
    msg = str(err.value)
    assert msg.startswith('ReadsValue(outer_inner) (inside HybridSequential(outer))')
    assert f'test_hybridize.py:{_line_of("asscalar")}' in msg
    # after the error the block still works eagerly
    net.hybridize(active=False)
    assert net(nd.ones((2, 4))).shape == (2, 3)


def test_a_plain_block_child_inside_a_hybridblock_is_a_clear_error():
    class Parent(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.child = nn.Lambda(lambda x: x * 2)

        def hybrid_forward(self, F, x):
            return self.child(x)

    with pytest.raises(MXNetError, match=r'child child \(Lambda\) is a plain Block.*HybridBlock'):
        Parent()
    seq = nn.HybridSequential()
    with pytest.raises(MXNetError, match='plain Block'):
        seq.add(nn.Sequential())


def test_hybridize_false_turns_it_off():
    net = nn.Dense(3, in_units=4)
    net.initialize()
    x = nd.ones((2, 4))
    net.hybridize()
    net(x)
    assert net._cached_op is not None and net._cached_op.graphs
    net.hybridize(active=False)
    assert net._cached_op is None
    net(x)
    assert net._cached_op is None


def test_hybridize_on_the_parent_applies_to_children():
    outer = nn.Sequential()                         # a plain Block may hold hybrid children
    inner = nn.HybridSequential()
    with inner.name_scope():
        inner.add(nn.Dense(3), nn.Dense(2))
    outer.add(inner, nn.Lambda(lambda x: x + 1))
    outer.initialize()
    outer.hybridize()
    assert inner._active and inner[0]._active and inner[1]._active
    x = nd.ones((2, 5))
    outer(x)
    assert inner._cached_op is not None and inner._cached_op.graphs
    # children are inlined into the parent's graph: they do not compile graphs of their own
    assert inner[0]._cached_op is None
    outer.hybridize(active=False)
    assert not inner._active and not inner[0]._active


def test_retrace_per_input_signature_and_mode():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(4), nn.BatchNorm(), nn.Dropout(0.5))
    net.initialize()
    net.hybridize()
    net(nd.ones((2, 3)))
    net(nd.ones((2, 3)))
    assert len(net._cached_op.graphs) == 1                   # same signature: no retrace
    net(nd.ones((5, 3)))
    assert len(net._cached_op.graphs) == 2                   # new batch size
    with autograd.record():
        net(nd.ones((5, 3)))
    assert len(net._cached_op.graphs) == 3                   # training mode is another graph
    train_graph = str(net.graph(nd.ones((5, 3))))
    with autograd.train_mode():
        assert 'batch_norm' in str(net.graph(nd.ones((5, 3))))
    assert 'batch_norm' not in train_graph and 'dropout_mask' not in train_graph
    net(nd.ones((5, 3), dtype='float64').astype('float32'))
    assert len(net._cached_op.graphs) == 3


def test_net_graph_prints_one_line_per_node():
    net = nn.HybridSequential(prefix='g_')
    with net.name_scope():
        net.add(nn.Dense(4, activation='relu'), nn.Dense(2))
    net.initialize()
    net.hybridize()
    net(nd.ones((3, 5)))
    graph = net.graph()
    text = str(graph)
    lines = text.splitlines()
    assert lines[0].startswith('graph(') and lines[-1] == '}' and lines[-2].startswith('  return ')
    body = lines[1:-2]
    assert len(body) == len(graph.nodes) + len(graph.constants)
    assert [l.split(' = ')[1].split('(')[0] for l in body] == [n.op.name for n in graph.nodes]
    assert 'g_dense0_weight' in lines[0] and 'data0' in lines[0]
    assert 'fully_connected' in text and 'relu' in text


def test_graph_to_dot_is_valid_dot_text():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(2, 3, padding=1), nn.Activation('relu'), nn.Flatten(), nn.Dense(3))
    net.initialize()
    net.hybridize()
    net(nd.ones((1, 1, 4, 4)))
    dot = net.graph().to_dot()
    assert dot.startswith('digraph')
    assert dot.count('{') == dot.count('}') and dot.rstrip().endswith('}')
    nodes = set(re.findall(r'^\s*(\w+) \[', dot, re.M))
    edges = re.findall(r'^\s*(\w+) -> (\w+)', dot, re.M)
    assert edges and all(a in nodes and b in nodes for a, b in edges)
    assert 'conv2d' in dot and 'output 0' in dot


def test_graph_code_is_the_generated_python():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(4, activation='tanh'), nn.Dense(2))
    net.initialize()
    net.hybridize()
    x = nd.ones((2, 3))
    net(x)
    code = net.graph_code()
    assert code.startswith('def run(inputs') and 'return [' in code
    compile(code, '<graph_code>', 'exec')                       # valid Python


def test_graph_before_any_call_needs_inputs():
    net = nn.Dense(2, in_units=2)
    net.initialize()
    net.hybridize()
    with pytest.raises(MXNetError, match='run the hybridized block once'):
        net.graph()
    assert 'fully_connected' in str(net.graph(nd.ones((1, 2))))


def test_control_flow_unrolls_at_trace_time():
    class Repeat(nn.HybridBlock):
        def __init__(self, times, **kwargs):
            super().__init__(**kwargs)
            self.times = times
            with self.name_scope():
                self.dense = nn.Dense(4, in_units=4)

        def hybrid_forward(self, F, x):
            for _ in range(self.times):
                x = F.tanh(self.dense(x))
            return x

    net = Repeat(3)
    net.initialize()
    x = nd.array(np.random.default_rng(0).standard_normal((2, 4)))
    eager = net(x).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=1e-5, atol=1e-6)
    g = net.graph()
    assert [n.op.name for n in g.nodes].count('fully_connected') == 3
    assert len([v for v in g.inputs if v.name.endswith('weight')]) == 1      # one shared weight


def test_hybridized_inputs_must_be_ndarrays():
    net = nn.Dense(2, in_units=2)
    net.initialize()
    net.hybridize()
    with pytest.raises(MXNetError, match='NDArray inputs'):
        net(np.ones((1, 2), np.float32))


def test_wrong_shape_for_a_traced_parameter_is_a_clear_error():
    net = nn.Dense(2, in_units=3)
    net.initialize()
    net.hybridize()
    with pytest.raises(MXNetError, match='fully_connected|FullyConnected'):
        net(nd.ones((1, 4)))


def test_captured_constants_become_graph_constants():
    table = nd.array([1.0, 2.0, 3.0])
    lam = nn.HybridLambda(lambda F, x: x * table)
    eager = lam(nd.ones((2, 3))).asnumpy()
    lam.hybridize()
    np.testing.assert_array_equal(lam(nd.ones((2, 3))).asnumpy(), eager)
    assert len(lam.graph().constants) == 1


def test_hybridized_gradients_land_in_param_grad_like_eager():
    mx.random.seed(3)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(5, activation='relu'), nn.Dense(1))
    net.initialize()
    x = nd.array(np.random.default_rng(1).standard_normal((4, 3)))
    with autograd.record():
        loss = (net(x) ** 2).mean()
    loss.backward()
    eager = [p.grad().asnumpy().copy() for p in net.collect_params().values()]
    net.hybridize()
    with autograd.record():
        loss = (net(x) ** 2).mean()
    loss.backward()
    for g, p in zip(eager, net.collect_params().values()):
        np.testing.assert_allclose(p.grad().asnumpy(), g, rtol=1e-5, atol=1e-6)


def test_autograd_function_inside_hybridized_block_is_a_clear_error():
    import engine as mx
    from engine import gluon, nd

    class Double(mx.autograd.Function):
        def forward(self, x):
            return x * 1

        def backward(self, dy):
            return dy * 2

    class B(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return Double()(x)

    b = B()
    b.hybridize()
    with pytest.raises(mx.MXNetError, match='Double.*eager'):
        b(nd.ones(3))
