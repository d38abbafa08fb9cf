"""Unit tests of graph/autodiff.append_backward, one property each: fan-out gradients are summed,
unreached inputs get zeros, broadcasts are un-reduced, stop_gradient and no_grad ops pass
nothing, multi-output ops and several graph outputs, the backward graph holds only the nodes a
requested gradient needs, and an op without a rule is an error. Every numeric check compares the
graph (run by graphkit's reference interpreter) with the eager tape and float64 finite
differences. (test_autodiff.py checks op families and second order.)"""
from collections import Counter

import numpy as np
import pytest

from engine import autograd, nd
from engine.base import MXNetError
from engine.context import cpu
from engine.graph import passes
from engine.graph.autodiff import append_backward
from engine.graph.trace import Tracer
from engine.imperative import invoke
from engine.ops.registry import Op
from engine.test_utils import numeric_gradient
from graphkit import evaluate

_rng = np.random.default_rng(17)


def u(*shape):
    return _rng.uniform(-1.0, 1.0, shape)


def trace(f, *arrays):
    tracer = Tracer('unit', cpu())
    with tracer:
        xs = [tracer.input(a.shape, np.dtype(a.dtype), f'x{i}') for i, a in enumerate(arrays)]
        out = f(*xs)
    tracer.graph.outputs = [o._value for o in (out if isinstance(out, tuple) else (out,))]
    return tracer.graph


def backward_graph(f, arrays, wrt):
    """f's graph with outputs replaced by the gradients of the inputs at positions `wrt`;
    returns (graph, head-gradient values, ids of the forward nodes)."""
    g = trace(f, *arrays)
    forward = {id(n) for n in g.nodes}
    heads, grads = append_backward(g, [g.inputs[i] for i in wrt])
    g.outputs = grads
    return g, heads, forward


def graph_gradients(f, arrays, wrt, hs):
    g, heads, _ = backward_graph(f, arrays, wrt)
    assert [h.shape for h in heads] == [h.shape for h in hs]
    return evaluate(g, list(arrays) + list(hs))


def eager_gradients(f, arrays, wrt, hs):
    xs = [nd.array(a, dtype=a.dtype) for a in arrays]
    for i in wrt:
        xs[i].attach_grad()
    with autograd.record():
        out = f(*xs)
    outs = list(out) if isinstance(out, tuple) else [out]
    autograd.backward(outs, [nd.array(h, dtype='float64') for h in hs])
    return [xs[i].grad.asnumpy() for i in wrt]


def random_heads(f, arrays):
    return [_rng.standard_normal(v.shape) for v in trace(f, *arrays).outputs]


def check_against_eager_and_fd(f, arrays, wrt, fd=True):
    """The graph's gradients equal the eager tape's (same rules: to rounding) and, unless the
    function blocks gradients on purpose, central differences of sum(f * heads)."""
    hs = random_heads(f, arrays)
    got = graph_gradients(f, arrays, wrt, hs)
    want = eager_gradients(f, arrays, wrt, hs)
    for k, i in enumerate(wrt):
        assert got[k].shape == arrays[i].shape and got[k].dtype == np.float64
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12, err_msg=f'input {i}: graph vs eager')
    if fd:
        numeric = numeric_gradient(f, [np.array(a) for a in arrays], hs, which=wrt)
        for k, i in enumerate(wrt):
            np.testing.assert_allclose(got[k], numeric[i], rtol=1e-6, atol=1e-8, err_msg=f'input {i}: graph vs FD')
    return got, hs


# ---- fan-out ---------------------------------------------------------------------------------

def test_gradients_of_a_value_read_by_several_nodes_are_summed():
    a = u(2, 3)
    (ga,), (h,) = check_against_eager_and_fd(lambda x: x * x + nd.sin(x) + x, [a], [0])
    np.testing.assert_allclose(ga, h * (2 * a + np.cos(a) + 1), rtol=1e-12)


def test_fan_out_through_an_intermediate_value():
    """t = exp(a) is read by three nodes; its gradient is their sum before it flows to a."""
    a = u(3)
    (ga,), (h,) = check_against_eager_and_fd(lambda x: (lambda t: t * t - nd.tanh(t) + t)(nd.exp(x)), [a], [0])
    t = np.exp(a)
    np.testing.assert_allclose(ga, h * t * (2 * t - (1 - np.tanh(t) ** 2) + 1), rtol=1e-12)


def test_a_value_returned_twice_gets_both_head_gradients():
    a = u(4)
    (ga,), (h0, h1) = check_against_eager_and_fd(lambda x: (lambda y: (y, y))(x * 3.0), [a], [0])
    np.testing.assert_allclose(ga, 3.0 * (h0 + h1), rtol=1e-12)


def test_several_outputs_each_bring_their_head_gradient():
    a, b = u(2, 2), u(2, 2)
    (ga, gb), (h0, h1) = check_against_eager_and_fd(lambda x, y: (x * y, nd.exp(x)), [a, b], [0, 1])
    np.testing.assert_allclose(ga, h0 * b + h1 * np.exp(a), rtol=1e-12)
    np.testing.assert_allclose(gb, h0 * a, rtol=1e-12)


# ---- inputs without a path to the outputs --------------------------------------------------------

def test_an_input_the_outputs_do_not_read_gets_zeros_of_its_shape():
    a, b = u(2, 3), u(5)
    g, heads, _ = backward_graph(lambda x, y: nd.exp(x), [a, b], [0, 1])
    ga, gb = evaluate(g, [a, b, _rng.standard_normal((2, 3))])
    assert gb.shape == (5,) and gb.dtype == np.float64
    np.testing.assert_array_equal(gb, np.zeros(5))
    assert g.outputs[1].node is not None       # a computed zero, not an alias of an input


def test_an_input_reached_only_through_stop_gradient_gets_zeros():
    a, b = u(3), u(3)
    (ga, gb), (h,) = check_against_eager_and_fd(lambda x, y: nd.stop_gradient(y) * x, [a, b], [0, 1], fd=False)
    np.testing.assert_allclose(ga, h * b, rtol=1e-12)
    np.testing.assert_array_equal(gb, np.zeros(3))


def test_stop_gradient_blocks_one_path_and_keeps_the_other():
    a = u(4)
    (ga,), (h,) = check_against_eager_and_fd(lambda x: x * nd.stop_gradient(x), [a], [0], fd=False)
    np.testing.assert_allclose(ga, h * a, rtol=1e-12)      # d/dx of x*c at c = x, not 2x


def test_a_no_grad_op_passes_nothing_to_its_inputs():
    """`a > 0` is piecewise constant (declared no_grad): only the multiplication's path counts."""
    a = u(3, 4)
    (ga,), (h,) = check_against_eager_and_fd(lambda x: x * (x > 0.0), [a], [0])
    np.testing.assert_allclose(ga, h * (a > 0), rtol=1e-12)


def test_integer_values_get_no_gradient_terms():
    """An embedding's index input is int32: it gets zeros (no gradient flows into integers)."""
    idx, w = np.array([[2, 0, 2]], dtype=np.int32), u(3, 2)
    g, heads, _ = backward_graph(lambda i, x: nd.Embedding(i, x, input_dim=3, output_dim=2), [idx, w], [0, 1])
    h = _rng.standard_normal((1, 3, 2))
    gi, gw = evaluate(g, [idx, w, h])
    assert gi.shape == idx.shape
    np.testing.assert_array_equal(gi, np.zeros_like(idx))
    np.testing.assert_allclose(gw, [h[0, 1], np.zeros(2), h[0, 0] + h[0, 2]], rtol=1e-12)


# ---- broadcasting ------------------------------------------------------------------------------

BROADCASTS = [((2, 3), (3,)), ((2, 3), (1, 3)), ((2, 3), (2, 1)), ((2, 1), (1, 3)), ((2, 3), ()),
              ((4, 1, 3), (2, 1))]


@pytest.mark.parametrize('sa,sb', BROADCASTS, ids=[f'{a}x{b}' for a, b in BROADCASTS])
def test_broadcast_gradients_are_summed_down_to_each_input_shape(sa, sb):
    a, b = u(*sa), u(*sb)
    (ga, gb), (h,) = check_against_eager_and_fd(lambda x, y: x * y + y, [a, b], [0, 1])
    out_shape = np.broadcast_shapes(sa, sb)
    hb = h * np.broadcast_to(a, out_shape) + h
    lead = len(out_shape) - len(sb)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(sb) if s == 1 and out_shape[lead + i] != 1)
    np.testing.assert_allclose(gb, hb.sum(axis=axes).reshape(sb), rtol=1e-12)
    assert ga.shape == sa


# ---- multi-output ops ----------------------------------------------------------------------------

def test_split_outputs_used_separately_get_their_own_gradients():
    a = u(2, 6)
    (ga,), (h,) = check_against_eager_and_fd(lambda x: (lambda p: p[0] * 2.0 + nd.exp(p[2]))(nd.split(x, 3, axis=1)),
                                             [a], [0])
    np.testing.assert_allclose(ga[:, :2], 2 * h, rtol=1e-12)
    np.testing.assert_array_equal(ga[:, 2:4], np.zeros((2, 2)))          # the unused part
    np.testing.assert_allclose(ga[:, 4:], h * np.exp(a[:, 4:]), rtol=1e-12)


def test_outputs_of_a_multi_output_op_as_graph_outputs():
    a = u(3, 4)
    got, hs = check_against_eager_and_fd(lambda x: tuple(nd.split(x, 2, axis=1)), [a], [0])
    np.testing.assert_allclose(got[0], np.concatenate(hs, axis=1), rtol=1e-12)


def test_the_integer_output_of_max_pooling_gets_no_gradient():
    """max_pool2d returns (values, argmax); the rule runs with None for the index output."""
    x = (_rng.permutation(16) * 0.1).reshape(1, 1, 4, 4)
    (gx,), (h,) = check_against_eager_and_fd(lambda t: nd.Pooling(t, kernel=(2, 2), stride=(2, 2)), [x], [0])
    assert np.count_nonzero(gx) == h.size                  # one winner per window
    np.testing.assert_allclose(np.sort(gx[gx != 0]), np.sort(h.ravel()), rtol=1e-12)


# ---- the backward graph holds only what the requested gradients need ------------------------------

def _backward_ops(f, arrays, wrt):
    g, _, forward = backward_graph(f, arrays, wrt)
    needed = passes.subgraph(g, g.outputs, g.inputs)
    return Counter(n.op.name for n in needed.nodes if id(n) not in forward)


def test_only_the_gradient_asked_for_is_built():
    f = lambda x, y: nd.exp(x) * nd.sin(y)      # noqa: E731
    only_x = _backward_ops(f, [u(3), u(3)], [0])
    only_y = _backward_ops(f, [u(3), u(3)], [1])
    assert 'cos' not in only_x and only_x == Counter(multiply=2)    # h * sin(y), then * exp(x)
    assert 'cos' in only_y and 'exp' not in only_y


def test_a_forward_branch_that_reaches_no_output_adds_no_backward_node():
    def f(x):
        nd.tanh(x) * 3.0            # traced, never returned
        return nd.exp(x)
    ops = _backward_ops(f, [u(3)], [0])
    assert ops == Counter(multiply=1), ops      # h * exp(x), nothing for tanh


def test_a_branch_only_another_input_depends_on_adds_nothing_to_this_gradient():
    """x's gradient program is the same whether or not y also feeds relu(y) + y * y: the rules
    for that branch are built (append_backward differentiates every node) but nothing x's
    gradient needs reads them."""
    arrays = [u(2, 3), u(3)]
    plain = _backward_ops(lambda x, y: nd.tanh(x * y), arrays, [0])
    branched = _backward_ops(lambda x, y: nd.tanh(x * y) + nd.relu(y) + y * y, arrays, [0])
    assert branched == plain, (plain, branched)
    assert _backward_ops(lambda x, y: nd.tanh(x * y) + nd.relu(y) + y * y, arrays, [1]) != \
        _backward_ops(lambda x, y: nd.tanh(x * y), arrays, [1])


# ---- float64 finite differences on a few composite functions --------------------------------------

COMPOSITES = [
    ('mean-transpose', lambda x: nd.mean(x.T * x.T, axis=0), [u(3, 2)]),
    ('maximum-minimum', lambda x, y: nd.maximum(x, y) - nd.minimum(x, y) * x, [u(5), u(5) + 0.01]),
    ('where', lambda c, x, y: nd.where(c, x * x, nd.exp(y)), [np.array([1.0, 0.0, 1.0]), u(3), u(3)]),
    ('dot-softmax', lambda x, w: nd.softmax(nd.dot(x, w), axis=-1), [u(2, 3), u(3, 4)]),
    ('reshape-sum-keepdims', lambda x: x.reshape((2, 6)) / nd.sum(nd.exp(x), axis=(1, 2), keepdims=True).reshape((2, 1)),
     [u(2, 2, 3)]),
]


@pytest.mark.parametrize('name,f,arrays', COMPOSITES, ids=[c[0] for c in COMPOSITES])
def test_composite_gradients_match_eager_and_finite_differences(name, f, arrays):
    wrt = [i for i, a in enumerate(arrays) if not (name == 'where' and i == 0)]
    check_against_eager_and_fd(f, arrays, wrt)


def test_float32_graphs_get_float32_gradients():
    a = u(3).astype(np.float32)
    g, _, _ = backward_graph(lambda x: nd.exp(x) * 2.0, [a], [0])
    assert g.outputs[0].dtype == np.float32
    (ga,) = evaluate(g, [a, np.ones(3, np.float32)])
    assert ga.dtype == np.float32
    np.testing.assert_allclose(ga, 2 * np.exp(a), rtol=1e-6)


# ---- ops without a rule ------------------------------------------------------------------------

def _negate(a, out=None):
    return np.negative(a, out=out)


# built directly, bypassing register() (which refuses an op with neither a rule nor no_grad), as
# the ops made after autodiff are (fused kernels)
_NO_RULE = Op('_test_no_rule', lambda s, d: ([s[0]], [d[0]]), {'any': _negate})
_DECLARED = Op('_test_declared_no_grad', lambda s, d: ([s[0]], [d[0]]), {'any': _negate}, no_grad='test constant')


def test_an_op_without_a_gradient_rule_is_a_clear_error():
    with pytest.raises(MXNetError, match=r"_test_no_rule.*no gradient rule"):
        backward_graph(lambda x: nd.exp(invoke(_NO_RULE, [x], {})), [u(3)], [0])


def test_an_op_whose_outputs_get_no_gradient_needs_no_rule():
    """Only ops a gradient reaches need a rule: here only a comparison (no_grad) reads it."""
    a = u(3)
    got = graph_gradients(lambda x: (invoke(_NO_RULE, [x], {}) > 0.0) * x, [a], [0], [np.ones(3)])
    np.testing.assert_allclose(got[0], (a < 0).astype(float), rtol=1e-12)


def test_the_eager_tape_also_refuses_an_op_without_a_rule():
    x = nd.array(u(3), dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = nd.exp(invoke(_NO_RULE, [x], {}))
    with pytest.raises(MXNetError, match='_test_no_rule'):
        y.backward()


def test_an_op_declaring_no_grad_is_a_constant():
    a = u(3)
    got = graph_gradients(lambda x: invoke(_DECLARED, [x], {}) * x, [a], [0], [np.ones(3)])
    np.testing.assert_allclose(got[0], -a, rtol=1e-12)
