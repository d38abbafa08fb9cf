"""graph/autodiff.py on its own: append_backward on traced graphs, run by graphkit's reference
interpreter and compared with the eager tape (the same rules on NDArrays) and finite differences;
second order by differentiating a backward graph again (float64, tiny shapes)."""
import numpy as np
import pytest

from engine import autograd, nd
from engine.base import MXNetError
from engine.context import cpu
from engine.graph import passes
from engine.graph.autodiff import append_backward
from engine.graph.trace import Tracer
from engine.imperative import invoke
from engine.ops.registry import REGISTRY, Op
from engine.test_utils import numeric_gradient
from graphkit import evaluate

_rng = np.random.default_rng(3)


def u(*shape):
    return _rng.uniform(-1.0, 1.0, shape)


def distinct(*shape):
    n = int(np.prod(shape))
    return (_rng.permutation(n) * 0.1 - 0.05 * n).reshape(shape)


def trace(f, *arrays):
    """The graph of f on float64 inputs shaped like `arrays` (outputs: f's result or results)."""
    tracer = Tracer('test', cpu())
    with tracer, autograd.train_mode():
        xs = [tracer.input(a.shape, np.dtype(a.dtype), f'x{i}') for i, a in enumerate(arrays)]
        out = f(*xs)
    tracer.graph.outputs = [o._value for o in (out if isinstance(out, tuple) else (out,))]
    return tracer.graph


def gradient_graph(f, arrays, wrt):
    """Graph from (inputs, head gradients) to the gradients of the inputs at positions `wrt`."""
    g = trace(f, *arrays)
    heads, grads = append_backward(g, [g.inputs[i] for i in wrt])
    g.outputs = grads
    return g, heads


def eager_gradients(f, arrays, heads, wrt):
    xs = [nd.array(a, dtype=a.dtype) for a in arrays]
    for i in wrt:
        xs[i].attach_grad()
    with autograd.record():
        out = f(*xs)
    outs = out if isinstance(out, tuple) else (out,)
    autograd.backward(list(outs), [nd.array(h, dtype='float64') for h in heads])
    return [xs[i].grad.asnumpy() for i in wrt]


CASES = [
    ('broadcast-arith', lambda a, b: nd.tanh(a * b + a / (b * b + 1.0)), [u(2, 3), u(3)], [0, 1]),
    ('scalar-broadcast', lambda a, b: a * b - b, [u(2, 3), u()], [0, 1]),
    ('reduce-reshape', lambda a: nd.sum(nd.exp(a), axis=1, keepdims=True) * a.reshape((3, 2)).T, [u(2, 3)], [0]),
    ('split-one-output', lambda a: nd.split(a, 3, axis=1)[1] * 2.0, [u(2, 3)], [0]),
    ('comparison-no-gradient', lambda a: a * (a > 0.0), [u(3, 4)], [0]),
    ('stop_gradient', lambda a, b: nd.stop_gradient(a) * b + a, [u(3), u(3)], [0, 1]),
    ('conv-pool', lambda x, w: nd.Pooling(nd.Convolution(x, w, kernel=(2, 2), pad=(1, 1), no_bias=True),
                                          kernel=(2, 2), stride=(2, 2)), [distinct(1, 2, 3, 3) / 10, u(2, 2, 2, 2)],
     [0, 1]),
    ('batch_norm', lambda x, g, b: nd.BatchNorm(x, g, b, nd.zeros(2, dtype='float64'), nd.ones(2, dtype='float64'),
                                                fix_gamma=False), [u(3, 2, 2), u(2) + 2, u(2)], [0, 1, 2]),
    ('softmax_ce', lambda x: nd.softmax_cross_entropy_loss(x, nd.array([1.0, 0.0], dtype='float64')), [u(2, 3)], [0]),
    ('embedding-integer-input', lambda w: nd.Embedding(nd.array([[1, 0]], dtype='int32'), w), [u(2, 3)], [0]),
]


@pytest.mark.parametrize('name,f,arrays,wrt', CASES, ids=[c[0] for c in CASES])
def test_backward_graph_matches_the_eager_tape_and_finite_differences(name, f, arrays, wrt):
    g, heads = gradient_graph(f, arrays, wrt)
    hs = [_rng.standard_normal(h.shape) for h in heads]
    got = evaluate(g, list(arrays) + hs)
    want = eager_gradients(f, arrays, hs, wrt)
    for k, i in enumerate(wrt):
        assert got[k].shape == arrays[i].shape and got[k].dtype == np.float64
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12, err_msg=f'{name}: input {i} vs eager')
    if name == 'stop_gradient':
        return   # by definition not the derivative of the values
    numeric = numeric_gradient(_train(f), [np.array(a, dtype=np.float64) for a in arrays], hs, which=wrt)
    for k, i in enumerate(wrt):
        np.testing.assert_allclose(got[k], numeric[i], rtol=1e-5, atol=1e-7, err_msg=f'{name}: input {i} vs FD')


def _train(f):
    def run(*xs):
        with autograd.train_mode():
            return f(*xs)
    return run


def test_the_gradients_of_other_inputs_are_cut_away():
    """Rules build every input's gradient; the gradients asked for depend only on what they need."""
    g = trace(lambda a, b: nd.exp(a) * nd.sin(b), u(3), u(3))
    forward = {id(n) for n in g.nodes}
    _, grads = append_backward(g, [g.inputs[0]])
    assert len(grads) == 1
    names = [n.op.name for n in passes.subgraph(g, grads, g.inputs).nodes if id(n) not in forward]
    assert names == ['multiply', 'multiply'], names   # g * sin(b), then * exp(a)


def test_unreached_and_identity_gradients_are_nodes_of_their_own():
    """An input the outputs do not depend on gets zeros; an identity's gradient is a copy of the
    head gradient, never the head input itself (the backward program owns its outputs)."""
    g = trace(lambda a, b: a, u(2), u(3))
    heads, (ga, gb) = append_backward(g, list(g.inputs))
    assert ga.node is not None and ga.id != heads[0].id and gb.node is not None
    g.outputs = [ga, gb]
    h = _rng.standard_normal(2)
    got = evaluate(g, [u(2), u(3), h])
    np.testing.assert_array_equal(got[0], h)
    np.testing.assert_array_equal(got[1], np.zeros(3))


def test_rules_see_none_for_outputs_without_gradient():
    seen = []
    split = REGISTRY['split']
    rule = split.grad
    try:
        split.grad = lambda gs, ys, x, **a: seen.append(gs) or rule(gs, ys, x, **a)
        g = trace(lambda a: nd.split(a, 2, axis=0)[1], u(2, 3))
        append_backward(g, list(g.inputs))
    finally:
        split.grad = rule
    assert len(seen) == 1 and seen[0][0] is None and seen[0][1] is not None


# an unregistered op whose rule leaves b's broadcast un-reduced: both drivers sum it down
_BCAST_MUL = Op('_test_bcast_mul', lambda s, d: ([np.broadcast_shapes(*s)], [d[0]]),
                {'any': lambda a, b, out=None: np.multiply(a, b, out=out)},
                grad=lambda g, y, a, b: [g * b, g * a])
_BAD_RULE = Op('_test_bad_rule', lambda s, d: ([s[0]], [d[0]]), {'any': lambda a, out=None: np.negative(a, out=out)},
               grad=lambda g, y, a: [nd.sum(g, axis=0) if isinstance(g, nd.NDArray) else g.sum(axis=0)])


def test_broadcast_un_reduction_is_shared_by_both_drivers():
    a, b, h = u(2, 3), u(3), _rng.standard_normal((2, 3))
    f = lambda x, y: invoke(_BCAST_MUL, [x, y], {})   # noqa: E731
    g, _ = gradient_graph(f, [a, b], [0, 1])
    got = evaluate(g, [a, b, h])
    assert [r.shape for r in got] == [(2, 3), (3,)]
    np.testing.assert_allclose(got[1], (h * a).sum(axis=0), rtol=1e-12)
    for x, y in zip(got, eager_gradients(f, [a, b], [h], [0, 1])):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_a_rule_returning_a_wrong_shape_is_an_error_in_both_drivers():
    f = lambda x: invoke(_BAD_RULE, [x], {})   # noqa: E731
    with pytest.raises(MXNetError, match=r'_test_bad_rule: gradient rule returned shape \(3,\) for an input of '
                                         r'shape \(2, 3\)'):
        gradient_graph(f, [u(2, 3)], [0])
    with pytest.raises(MXNetError, match='_test_bad_rule: gradient rule returned shape'):
        eager_gradients(f, [u(2, 3)], [np.ones((2, 3))], [0])


# ---- second order: the backward graph differentiated again --------------------------------------

SECOND = [
    ('conv2d', lambda x, w: nd.tanh(nd.Convolution(x, w, kernel=(3, 3), stride=(2, 1), pad=(1, 1), num_group=2,
                                                   no_bias=True)), [u(1, 2, 5, 4), u(2, 1, 3, 3)]),
    ('max_pool', lambda x: nd.Pooling(x, kernel=(2, 2), stride=(2, 2)) ** 3, [distinct(1, 2, 4, 4)]),
    ('avg_pool', lambda x: nd.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='avg') ** 3,
     [u(1, 1, 5, 5)]),
    ('batch_norm', lambda x, g: nd.tanh(nd.BatchNorm(x, g, nd.zeros(2, dtype='float64'), nd.zeros(2, dtype='float64'),
                                                     nd.ones(2, dtype='float64'), fix_gamma=False)),
     [u(3, 2, 2), u(2) + 2]),
    ('layer_norm', lambda x, g: nd.tanh(nd.LayerNorm(x, g, nd.zeros(4, dtype='float64'))), [u(3, 4), u(4) + 2]),
    ('instance_norm', lambda x: nd.tanh(nd.InstanceNorm(x, nd.ones(2, dtype='float64'), nd.zeros(2, dtype='float64'))),
     [u(1, 2, 2, 3)]),
    ('softmax_ce', lambda x: nd.softmax_cross_entropy_loss(x, nd.array([1.0, 0.0, 2.0], dtype='float64')), [u(3, 4)]),
]


@pytest.mark.parametrize('name,f,arrays', SECOND, ids=[c[0] for c in SECOND])
def test_second_order_graph_matches_eager_and_finite_differences(name, f, arrays):
    wrt = list(range(len(arrays)))
    g, heads = gradient_graph(f, arrays, wrt)
    n_in, first = len(arrays), list(g.outputs)
    heads2, grads2 = append_backward(g, g.inputs[:n_in])
    h1 = [_rng.standard_normal(h.shape) for h in heads]
    h2 = [_rng.standard_normal(h.shape) for h in heads2]
    g.outputs = grads2
    got = evaluate(g, list(arrays) + h1 + h2)

    def first_dot_h2(xs):   # <first gradients, h2>, evaluated by the same graph
        g.outputs = first
        return sum(float(np.sum(r * h)) for r, h in zip(evaluate(g, xs + h1 + h2), h2))
    xs = [np.array(a, dtype=np.float64) for a in arrays]
    for k, x in enumerate(xs):
        fd = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + 1e-6
            up = first_dot_h2(xs)
            x[i] = old - 1e-6
            fd[i] = (up - first_dot_h2(xs)) / 2e-6
            x[i] = old
        np.testing.assert_allclose(got[k], fd, rtol=1e-5, atol=1e-7, err_msg=f'{name}: input {k} vs FD')

    xs = [nd.array(a, dtype='float64') for a in arrays]
    for x in xs:
        x.attach_grad()
    with autograd.record(), autograd.train_mode():
        y = f(*xs)
        first = autograd.grad(y, xs, head_grads=nd.array(h1[0], dtype='float64'), create_graph=True)
    autograd.backward(first, [nd.array(h, dtype='float64') for h in h2])
    for k, x in enumerate(xs):
        np.testing.assert_allclose(got[k], x.grad.asnumpy(), rtol=1e-10, atol=1e-12, err_msg=f'{name}: input {k}')
