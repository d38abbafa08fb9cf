"""The memory plan of engine.graph.lower: values whose lifetimes do not overlap share buffers,
values that are alive together never do (except an elementwise kernel writing over a same-shape
input it reads for the last time: in place), and compiled results stay correct, also across
repeated calls of one Program (whose buffers are reused)."""
import numpy as np
import pytest

from engine import nd
from engine.gluon import nn
from engine.graph.lower import Program, plan_memory
from graphkit import evaluate, new_graph, node, random_inputs


def _chain(n=6, shape=(16, 16), elementwise=True):
    g, (x,) = new_graph(shape)
    v = x
    for i in range(n):
        if elementwise:
            v = node(g, 'exp' if i % 2 else 'tanh', [v])
        else:
            v = node(g, 'softmax' if i % 2 else 'log_softmax', [v], axis=-1)
    g.outputs = [v]
    return g


def _lifetimes(graph):
    """value id -> (defining node index, last reading node index)."""
    life = {}
    for i, n in enumerate(graph.nodes):
        for o in n.outputs:
            life[o.id] = [i, i]
        for v in n.inputs:
            if v.id in life:
                life[v.id][1] = i
    for v in graph.outputs:
        if v.id in life:
            life[v.id][1] = len(graph.nodes)
    return life


def _in_place_ok(graph, vid, at):
    """Node `at` may write over value `vid`: it is elementwise and reads vid with its own shape."""
    n = graph.nodes[at]
    elementwise = n.op.template is not None or n.op.name.startswith('fused[')
    return elementwise and any(v.id == vid and v.shape == n.outputs[0].shape for v in n.inputs)


def _check_no_overlap(graph, assign):
    life = _lifetimes(graph)
    by_buffer = {}
    for vid, b in assign.items():
        by_buffer.setdefault(b, []).append(vid)
    for b, vids in by_buffer.items():
        spans = sorted((life[v][0], life[v][1], v) for v in vids)
        for (s0, e0, v0), (s1, e1, v1) in zip(spans, spans[1:]):
            # a buffer is free once its last reader ran; that reader itself may reuse it only
            # when it is an elementwise kernel working in place
            assert e0 < s1 or (e0 == s1 and _in_place_ok(graph, v0, s1)), \
                f'buffer {b} holds two live values: {spans}'


@pytest.mark.parametrize('elementwise,buffers', [(False, 2), (True, 1)], ids=['ping-pong', 'in-place'])
def test_a_chain_reuses_buffers(elementwise, buffers):
    g = _chain(6, elementwise=elementwise)
    planned = {n.outputs[0].id for n in g.nodes[:-1]}      # not the graph output
    assign, specs = plan_memory(g, planned)
    assert set(assign) == planned
    assert len(specs) == buffers < len(planned)
    _check_no_overlap(g, assign)


def test_values_alive_together_get_different_buffers():
    g, (x,) = new_graph((8, 8))
    a = node(g, 'exp', [x])
    b = node(g, 'tanh', [x])
    c = node(g, 'sigmoid', [x])
    s = node(g, 'add', [node(g, 'add', [a, b]), c])       # a, b, c all alive until here
    g.outputs = [node(g, 'relu', [s])]
    planned = {n.outputs[0].id for n in g.nodes[:-1]}
    assign, specs = plan_memory(g, planned)
    assert len({assign[a.id], assign[b.id], assign[c.id]}) == 3
    _check_no_overlap(g, assign)


def test_buffers_are_shared_only_between_equal_sizes_and_dtypes():
    g, (x,) = new_graph((4, 6))
    a = node(g, 'exp', [x])
    s = node(g, 'sum', [a], axis=(1,), keepdims=False)                # (4,): another size
    b = node(g, 'cast', [node(g, 'tanh', [x])], dtype='float64')      # another dtype
    c = node(g, 'exp', [node(g, 'relu', [x])])
    g.outputs = [s, b, c]
    planned = {n.outputs[0].id for n in g.nodes} - {v.id for v in g.outputs}
    assign, specs = plan_memory(g, planned)
    for vid, b_ in assign.items():
        v = next(o for n in g.nodes for o in n.outputs if o.id == vid)
        assert specs[b_] == (v.nbytes, v.dtype.str)
    _check_no_overlap(g, assign)


@pytest.mark.parametrize('elementwise', [False, True], ids=['ping-pong', 'in-place'])
def test_program_on_a_chain_is_correct_and_reuses_buffers(elementwise):
    g = _chain(8, (32, 32), elementwise)
    inputs = random_inputs(g)
    expected = evaluate(g, inputs)
    prog = Program(_chain(8, (32, 32), elementwise))
    assert len(prog.buffers) == (1 if elementwise else 2)
    out1 = prog(inputs)
    np.testing.assert_allclose(out1[0], expected[0], rtol=1e-5, atol=1e-7)
    kept = out1[0].copy()
    other = random_inputs(g, seed=5)
    out2 = prog(other)
    np.testing.assert_allclose(out2[0], evaluate(g, other)[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(out1[0], kept)          # outputs are never a reused buffer
    assert 'out=_buf' in prog.source


def test_program_without_static_alloc_plans_nothing():
    prog = Program(_chain(4), static_alloc=False)
    assert prog.buffers == [] and 'out=' not in prog.source


def test_program_source_is_readable_python():
    prog = Program(_chain(3))
    lines = prog.source.splitlines()
    assert lines[0] == 'def run(inputs, buffers):'
    assert lines[-1].strip().startswith('return [')
    assert sum('tanh' in l or 'exp' in l for l in lines) == 3


def test_outputs_reached_through_a_view_are_not_overwritten_by_the_next_call():
    """A graph output that is a reshape of an intermediate must not alias a planned buffer:
    the next call would overwrite the result the caller kept."""
    g, (x,) = new_graph((4, 4))
    e = node(g, 'exp', [x])
    g.outputs = [node(g, 'reshape', [e], shape=(16,))]
    prog = Program(g)
    a, b = random_inputs(g, 0), random_inputs(g, 1)
    first = prog(a)[0]
    kept = first.copy()
    prog(b)
    np.testing.assert_array_equal(first, kept)


def test_hybridized_results_survive_the_next_call():
    """The same through Gluon: a net ending in Flatten (a reshape of the conv output)."""
    net = nn.HybridSequential()
    net.add(nn.Conv2D(2, 3), nn.Flatten())
    net.initialize()
    net.hybridize()
    y1 = net(nd.ones((1, 1, 5, 5)))
    kept = y1.asnumpy().copy()
    net(nd.ones((1, 1, 5, 5)) * 2)
    np.testing.assert_array_equal(y1.asnumpy(), kept)
