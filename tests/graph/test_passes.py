"""Graph passes on hand-built graphs: dead-code elimination, common-subexpression elimination,
constant folding, subgraph extraction, the default pipeline, and graph-level autodiff."""
import numpy as np
import pytest

from engine.base import MXNetError
from engine.graph import passes
from engine.graph.autodiff import append_backward
from graphkit import evaluate, new_graph, node, op_names, random_inputs


def _same_results(g_before_outputs, g_after, inputs):
    for a, b in zip(g_before_outputs, evaluate(g_after, inputs)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


# ---- dead-code elimination ------------------------------------------------------------------

def test_dce_removes_nodes_that_reach_no_output():
    g, (x,) = new_graph((3, 4))
    used = node(g, 'exp', [x])
    unused = node(g, 'log', [x])
    node(g, 'abs', [unused])                        # a dead chain
    out = node(g, '_mul_scalar', [used], scalar=2.0)
    const = g.add_constant(np.ones((3, 4), np.float32))
    node(g, 'add', [const, unused])                 # dead, and the only reader of the constant
    g.outputs = [out]
    inputs = random_inputs(g)
    inputs[0] = np.abs(inputs[0]) + 0.1
    before = evaluate(g, inputs)
    g = passes.dead_code_elimination(g)
    assert op_names(g) == ['exp', '_mul_scalar']
    assert g.constants == {}
    _same_results(before, g, inputs)


def test_dce_keeps_every_output_of_a_live_multi_output_node():
    g, (x,) = new_graph((4, 6))
    parts = node(g, 'split', [x], bounds=(2,), axis=1)
    g.outputs = [node(g, 'exp', [parts[1]])]
    g = passes.dead_code_elimination(g)
    assert op_names(g) == ['split', 'exp']


def test_dce_drops_an_unused_random_draw():
    g, (x,) = new_graph((3, 3))
    node(g, 'dropout_mask', [x], p=0.5, axes=())
    g.outputs = [node(g, 'relu', [x])]
    g = passes.dead_code_elimination(g)
    assert op_names(g) == ['relu']


def test_dce_keeps_a_graph_whose_output_is_an_input():
    g, (x,) = new_graph((2,))
    node(g, 'exp', [x])
    g.outputs = [x]
    g = passes.dead_code_elimination(g)
    assert g.nodes == []


# ---- common-subexpression elimination ------------------------------------------------------------

def test_cse_merges_duplicates_transitively():
    g, (x, y) = new_graph((3, 4), (3, 4))
    a1, a2 = node(g, 'exp', [x]), node(g, 'exp', [x])
    b1, b2 = node(g, 'add', [a1, y]), node(g, 'add', [a2, y])     # duplicates once a1 == a2
    s1, s2 = node(g, '_plus_scalar', [b1], scalar=1.0), node(g, '_plus_scalar', [b2], scalar=2.0)
    g.outputs = [node(g, 'multiply', [s1, s2]), b2]
    inputs = random_inputs(g)
    before = evaluate(g, inputs)
    g = passes.common_subexpression_elimination(g)
    assert op_names(g) == ['exp', 'add', '_plus_scalar', '_plus_scalar', 'multiply']
    assert g.outputs[1] is b1                                       # the output was remapped
    _same_results(before, g, inputs)


def test_cse_keeps_different_attributes_and_inputs_apart():
    g, (x, y) = new_graph((2, 5), (2, 5))
    outs = [node(g, 'sum', [x], axis=(1,), keepdims=False), node(g, 'sum', [x], axis=(0,), keepdims=False),
            node(g, 'sum', [y], axis=(1,), keepdims=False), node(g, 'subtract', [x, y]),
            node(g, 'subtract', [y, x])]
    g.outputs = outs
    g = passes.common_subexpression_elimination(g)
    assert len(g.nodes) == 5


def test_cse_does_not_merge_stateful_ops():
    g, (x,) = new_graph((50, 50))
    m1 = node(g, 'dropout_mask', [x], p=0.5, axes=())
    m2 = node(g, 'dropout_mask', [x], p=0.5, axes=())
    g.outputs = [node(g, 'multiply', [x, m1]), node(g, 'multiply', [x, m2])]
    g = passes.common_subexpression_elimination(g)
    assert op_names(g).count('dropout_mask') == 2
    a, b = evaluate(g, [np.ones((50, 50), np.float32)])
    assert not np.array_equal(a, b)                 # two independent masks


def test_cse_merges_equal_array_attributes():
    g, (x,) = new_graph((3,))
    a = node(g, 'full_like', [x], value=1.5)
    b = node(g, 'full_like', [x], value=1.5)
    g.outputs = [node(g, 'add', [a, b])]
    g = passes.common_subexpression_elimination(g)
    assert op_names(g) == ['full_like', 'add']


# ---- constant folding --------------------------------------------------------------------------

def test_constant_folding_evaluates_constant_subexpressions():
    g, (x,) = new_graph((2, 3))
    c = g.add_constant(np.arange(6, dtype=np.float32).reshape(2, 3))
    e = node(g, 'exp', [c])
    s = node(g, '_mul_scalar', [e], scalar=0.5)
    g.outputs = [node(g, 'add', [x, s])]
    inputs = random_inputs(g)
    before = evaluate(g, inputs)
    g = passes.constant_folding(g)
    g = passes.dead_code_elimination(g)
    assert op_names(g) == ['add']
    folded = g.nodes[0].inputs[1]
    assert folded in g.constants and folded.node is None
    np.testing.assert_allclose(g.constants[folded], 0.5 * np.exp(np.arange(6).reshape(2, 3)), rtol=1e-6)
    _same_results(before, g, inputs)


def test_constant_folding_skips_random_ops_and_large_results():
    g, (x,) = new_graph((2, 2))
    c = g.add_constant(np.ones((2, 2), np.float32))
    mask = node(g, 'dropout_mask', [c], p=0.5, axes=())
    big = g.add_constant(np.ones((600, 600), np.float32))
    big_exp = node(g, 'exp', [big])
    g.outputs = [node(g, 'multiply', [x, mask]), node(g, 'sum', [big_exp], axis=None, keepdims=False)]
    g = passes.constant_folding(g, max_bytes=1 << 20)
    assert op_names(g) == ['dropout_mask', 'exp', 'multiply', 'sum']


def test_constant_folding_of_a_multi_output_op():
    g, (x,) = new_graph((2, 4))
    c = g.add_constant(np.arange(8, dtype=np.float32).reshape(2, 4))
    lo, hi = node(g, 'split', [c], bounds=(1,), axis=1)
    g.outputs = [node(g, 'multiply', [x, node(g, 'concat', [hi, lo], dim=1)])]
    inputs = random_inputs(g)
    before = evaluate(g, inputs)
    g = passes.optimize(g)
    assert op_names(g) == ['multiply']
    _same_results(before, g, inputs)


def test_constant_folding_failure_names_the_op():
    g, (x,) = new_graph((2,))
    c = g.add_constant(np.array([1.0, 2.0], np.float32))
    n = node(g, 'exp', [c])
    n.node.attrs['bogus'] = 1                     # the kernel will not accept it
    g.outputs = [node(g, 'add', [x, n])]
    with pytest.raises(MXNetError, match='exp: failed while folding constants'):
        g = passes.constant_folding(g)


# ---- subgraph ------------------------------------------------------------------------------------

def test_subgraph_cuts_at_the_given_inputs():
    g, (x, w) = new_graph((3, 4), (3, 4))
    a = node(g, 'exp', [x])
    b = node(g, 'multiply', [a, w])
    c = node(g, 'tanh', [b])
    unrelated = node(g, 'log', [w])
    g.outputs = [c, unrelated]
    sub = passes.subgraph(g, [c], [b])
    assert op_names(sub) == ['tanh']
    assert sub.inputs == [b] and sub.outputs == [c]
    mid = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(evaluate(sub, [mid])[0], np.tanh(mid), rtol=1e-6)
    sub2 = passes.subgraph(g, [c], [x, w])
    assert op_names(sub2) == ['exp', 'multiply', 'tanh']
    assert g.nodes and op_names(g) == ['exp', 'multiply', 'tanh', 'log']      # the original is untouched


def test_subgraph_with_missing_inputs_is_an_error():
    g, (x, w) = new_graph((3,), (3,))
    b = node(g, 'multiply', [node(g, 'exp', [x]), w])
    g.outputs = [b]
    with pytest.raises(MXNetError, match='not defined in the subgraph'):
        passes.subgraph(g, [b], [x])


def test_subgraph_keeps_needed_constants_only():
    g, (x,) = new_graph((2,))
    c1 = g.add_constant(np.ones(2, np.float32))
    c2 = g.add_constant(np.zeros(2, np.float32))
    a = node(g, 'add', [x, c1])
    b = node(g, 'add', [a, c2])
    g.outputs = [b]
    sub = passes.subgraph(g, [b], [a])
    assert list(sub.constants) == [c2]


# ---- autodiff --------------------------------------------------------------------------------------

def test_append_backward_on_a_hand_built_graph():
    """y = sum(tanh(x * w) + x); gradients from the appended backward nodes match NumPy."""
    g, (x, w) = new_graph((3, 4), (3, 4))
    xw = node(g, 'multiply', [x, w])
    y = node(g, 'add', [node(g, 'tanh', [xw]), x])
    g.outputs = [node(g, 'sum', [y], axis=None, keepdims=False)]
    n_forward = len(g.nodes)
    heads, grads = append_backward(g, [x, w])
    assert len(heads) == 1 and heads[0] in g.inputs and len(g.nodes) > n_forward
    bwd = passes.subgraph(g, grads, g.inputs)
    xs, ws = random_inputs(g, seed=1)[:2]
    dx, dw = evaluate(bwd, [xs, ws, np.array(2.0, np.float32)])
    sech2 = 1 - np.tanh(xs * ws) ** 2
    np.testing.assert_allclose(dx, 2 * (sech2 * ws + 1), rtol=1e-5)
    np.testing.assert_allclose(dw, 2 * sech2 * xs, rtol=1e-5)


def test_append_backward_of_an_unused_input_is_zero_and_identity_gets_a_node():
    g, (x, unused) = new_graph((2, 2), (2, 2))
    g.outputs = [x]
    heads, (dx, du) = append_backward(g, [x, unused])
    assert dx.node is not None and du.node is not None     # computed by the backward graph
    bwd = passes.subgraph(g, [dx, du], g.inputs)
    head = np.arange(4, dtype=np.float32).reshape(2, 2)
    gx, gu = evaluate(bwd, [np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), head])
    np.testing.assert_array_equal(gx, head)
    np.testing.assert_array_equal(gu, np.zeros((2, 2)))


def test_optimize_then_autodiff_keeps_the_function():
    g, (x,) = new_graph((4,))
    c = g.add_constant(np.full(4, 3.0, np.float32))
    a1 = node(g, 'exp', [x])
    a2 = node(g, 'exp', [x])
    scale = node(g, 'sqrt', [c])
    y = node(g, 'multiply', [node(g, 'add', [a1, a2]), scale])
    g.outputs = [node(g, 'sum', [y], axis=None, keepdims=False)]
    g = passes.optimize(g)
    assert op_names(g).count('exp') == 1 and 'sqrt' not in op_names(g)
    heads, (dx,) = append_backward(g, [x])
    xs = random_inputs(g)[0]
    out = evaluate(passes.subgraph(g, [dx], g.inputs), [xs, np.array(1.0, np.float32)])[0]
    np.testing.assert_allclose(out, 2 * np.sqrt(3.0) * np.exp(xs), rtol=1e-5)


def test_graph_printing_and_dot():
    g, (x,) = new_graph((2, 3))
    a = node(g, 'exp', [x])
    g.outputs = [node(g, '_plus_scalar', [a], scalar=1.0)]
    text = str(g)
    lines = text.splitlines()
    assert lines[0] == 'graph(x0: float32(2, 3)) {'
    assert lines[1] == '  exp_out: float32(2, 3) = exp(x0)'          # unnamed values: after their op
    assert lines[2] == '  plus_scalar_out: float32(2, 3) = _plus_scalar(exp_out; scalar=1.0)'
    assert lines[3] == '  return plus_scalar_out' and lines[4] == '}'
    dot = g.to_dot()
    assert dot.startswith('digraph') and dot.rstrip().endswith('}')
    assert dot.count('->') == 3          # x -> exp -> plus -> output


def test_depends_on_follows_every_path_from_the_given_values():
    g, (x, w) = new_graph((3, 4), (3, 4))
    a = node(g, 'exp', [w])                 # from w only
    b = node(g, 'add', [x, a])              # from x
    c = node(g, 'abs', [b])
    g.outputs = [c, a]
    assert passes.depends_on(g, [x]) == {x.id, b.id, c.id}
    assert passes.depends_on(g, [w]) == {w.id, a.id, b.id, c.id}


# ---- passes leave what they are given as it was ---------------------------------------------------

def _snapshot(g):
    return [(id(n), [id(v) for v in n.inputs], dict(n.attrs), [(id(o), id(o.node)) for o in n.outputs])
            for n in g.nodes], [id(v) for v in g.outputs], dict(g.constants)


@pytest.mark.parametrize('name', ['constant_folding', 'common_subexpression_elimination',
                                  'dead_code_elimination', 'optimize'])
def test_a_pass_returns_a_new_graph_and_edits_nothing_it_was_given(name):
    """Forward, backward and the traced graph share nodes and values: a pass must not edit them."""
    g, (x,) = new_graph((2, 3))
    c = g.add_constant(np.arange(6, dtype=np.float32).reshape(2, 3))
    folded = node(g, 'exp', [c])                                       # folds
    a1, a2 = node(g, 'tanh', [x]), node(g, 'tanh', [x])                # merge
    node(g, 'sin', [x])                                                # dead
    g.outputs = [node(g, 'add', [node(g, 'add', [a1, a2]), folded])]
    inputs = random_inputs(g)
    before, snap, text = evaluate(g, inputs), _snapshot(g), str(g)
    new = getattr(passes, name)(g)
    assert _snapshot(g) == snap and str(g) == text
    assert all(o.node is n for n in new.nodes for o in n.outputs)      # the new graph is consistent
    _same_results(before, new, inputs)
