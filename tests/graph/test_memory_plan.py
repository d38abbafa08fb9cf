"""The memory plan of engine.graph.lower: values whose lifetimes do not overlap share buffers,
values that are alive together never do (except an elementwise kernel writing over a same-shape
input it reads for the last time: in place), and compiled results stay correct, also across
repeated calls of one Program (whose buffers are reused). Random graphs (views, broadcasts,
same-size values of other shapes) are checked against liveness computed here, and run with and
without planning."""
import numpy as np
import pytest

from engine import autograd, gluon, nd
from engine import random as mx_random
from engine.gluon import nn
from engine.graph import passes
from engine.graph.cached_op import compile_program
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
    calls = [l.split(' = ')[1].split('(')[0] for l in lines[1:-1] if '= buffers' not in l and '= inputs' not in l]
    assert calls == ['tanh', 'exp', 'tanh']            # one line per node, its kernel named after the op


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


# ---- the plan checked against liveness computed here, views included -------------------------------

def _view_roots(graph):
    """value id -> the value it is a view of (through chains of reshapes), itself if none."""
    root = {}
    for n in graph.nodes:
        for o in n.outputs:
            root[o.id] = root.get(n.inputs[0].id, n.inputs[0].id) if n.op.name == 'reshape' else o.id
    return root


def _live_spans(graph):
    """value id -> (defining node, last node reading it or any view of it); values reaching an
    output (directly or through a view) live past the end."""
    root, span = _view_roots(graph), {}
    for i, n in enumerate(graph.nodes):
        for o in n.outputs:
            span.setdefault(root[o.id], [i, i])
        for v in n.inputs:
            r = root.get(v.id)
            if r is not None:
                span[r][1] = i
    for v in graph.outputs:
        if v.id in root:
            span[root[v.id]][1] = len(graph.nodes)
    return span


def _plannable(graph):
    """What Program plans: single-output, non-view node outputs that do not leave the graph."""
    root = _view_roots(graph)
    escaping = {root.get(v.id, v.id) for v in graph.outputs}
    return {n.outputs[0].id for n in graph.nodes
            if not n.op.multi_output and n.op.name != 'reshape' and n.outputs[0].id not in escaping}


def _check_plan(graph, assign, specs):
    span = _live_spans(graph)
    values = {o.id: o for n in graph.nodes for o in n.outputs}
    for vid, b in assign.items():
        assert specs[b] == (values[vid].nbytes, values[vid].dtype.str)
    by_buffer = {}
    for vid, b in assign.items():
        by_buffer.setdefault(b, []).append(vid)
    for b, vids in by_buffer.items():
        spans = sorted((span[v][0], span[v][1], v) for v in vids)
        for (s0, e0, v0), (s1, e1, v1) in zip(spans, spans[1:]):
            # one after the other; or in place: v1's producer is v0's last reader and an
            # elementwise kernel reading v0 itself with v1's shape
            assert e0 < s1 or (e0 == s1 and _in_place_ok(graph, v0, s1)), \
                f'buffer {b} holds values alive together: {spans}\n{graph}'


def _random_graph(seed, n_nodes=14):
    """A random DAG over (4, 6) float32 values: elementwise unary/binary ops, broadcasting reads of a
    (4, 1) reduction, softmax (not elementwise), transpose (same bytes, another shape) and reshape
    views; 1-3 outputs."""
    rng = np.random.default_rng(seed)
    g, (x, y) = new_graph((4, 6), (4, 6))
    pool = {(4, 6): [x, y], (6, 4): [], (24,): [], (4, 1): []}

    def pick(shape):
        vs = pool[shape]
        return vs[-1 - min(int(rng.exponential(2.0)), len(vs) - 1)]   # mostly recent values
    for _ in range(n_nodes):
        shape = (4, 6) if rng.random() < 0.7 or not pool[(6, 4)] else (6, 4)
        kind = rng.integers(7)
        a = pick(shape)
        if kind == 0:
            v = node(g, str(rng.choice(['tanh', 'sigmoid', 'sin', 'negative', 'relu'])), [a])
        elif kind == 1:
            v = node(g, str(rng.choice(['add', 'multiply', 'subtract', 'maximum'])), [a, pick(shape)])
        elif kind == 2:
            v = node(g, 'softmax', [a], axis=-1)
        elif kind == 3 and shape == (4, 6):
            v = node(g, 'transpose', [a], axes=(1, 0))
        elif kind == 4:
            flat = node(g, 'reshape', [a], shape=(24,))
            pool[(24,)].append(flat)
            v = node(g, 'reshape', [node(g, 'tanh', [flat])], shape=shape)
        elif kind == 5 and shape == (4, 6):
            s = node(g, 'sum', [a], axis=(1,), keepdims=True)
            pool[(4, 1)].append(s)
            v = node(g, 'multiply', [a, pick((4, 1))])                     # broadcast read
        else:
            v = node(g, 'tanh', [a])
        pool[v.shape].append(v)
    everything = [o for n in g.nodes for o in n.outputs]
    extra = [everything[i] for i in rng.choice(len(everything), size=rng.integers(0, 3), replace=False)]
    g.outputs = list({v.id: v for v in [everything[-1]] + extra}.values())
    return g


SEEDS = list(range(12))


@pytest.mark.parametrize('seed', SEEDS)
def test_random_graphs_never_share_a_buffer_between_live_values(seed):
    g = _random_graph(seed)
    planned = _plannable(g)
    assign, specs = plan_memory(g, planned)
    assert set(assign) == planned
    _check_plan(g, assign, specs)
    naive = sum(next(o for n in g.nodes for o in n.outputs if o.id == v).nbytes for v in planned)
    assert sum(nbytes for nbytes, _ in specs) <= naive


@pytest.mark.parametrize('seed', SEEDS)
def test_random_graphs_give_the_same_results_with_and_without_planning(seed):
    inputs = random_inputs(_random_graph(seed), seed)
    kept = [a.copy() for a in inputs]
    expected = evaluate(_random_graph(seed), inputs)
    planned, plain = Program(_random_graph(seed)), Program(_random_graph(seed), static_alloc=False)
    first = planned(inputs)
    for got, want, ref in zip(first, plain(inputs), expected):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    for a, k in zip(inputs, kept):
        np.testing.assert_array_equal(a, k)            # inputs are never scratch space
    saved = [a.copy() for a in first]
    again = planned(random_inputs(_random_graph(seed), seed + 100))
    for a, s in zip(first, saved):
        np.testing.assert_array_equal(a, s)            # nor are the outputs of an earlier call
    for i, a in enumerate(again):
        assert not any(np.shares_memory(a, b) for b in first + inputs + again[i + 1:] if b is not a)


def test_the_producer_works_in_place_only_as_the_last_reader():
    g, (x,) = new_graph((8, 8))
    a = node(g, 'exp', [x])
    b = node(g, 'tanh', [a])               # a is read again below: b must not overwrite it
    c = node(g, 'add', [a, b])             # the last reader of a and b: may take either buffer
    g.outputs = [node(g, 'softmax', [c], axis=-1)]
    planned = _plannable(g)
    assign, specs = plan_memory(g, planned)
    assert assign[b.id] != assign[a.id]
    assert assign[c.id] in (assign[a.id], assign[b.id])
    assert len(specs) == 2
    _check_plan(g, assign, specs)


def test_a_non_elementwise_last_reader_never_works_in_place():
    """softmax reads a whole row before writing it: its output needs a buffer of its own."""
    g, (x,) = new_graph((8, 8))
    a = node(g, 'exp', [x])
    s = node(g, 'softmax', [a], axis=-1)
    g.outputs = [node(g, 'tanh', [s])]
    assign, _ = plan_memory(g, _plannable(g))
    assert assign[s.id] != assign[a.id]


def test_in_place_needs_the_input_itself_with_the_output_shape():
    """t (6, 4) has the bytes of m (4, 6) and m's kernel is t's last reader, but it reads t through
    a reshape view: the documented rule (same shape, the value itself) keeps them apart; results
    stay those of the reference interpreter."""
    g, (x,) = new_graph((4, 6))
    a = node(g, 'exp', [x])
    t = node(g, 'transpose', [a], axes=(1, 0))                   # (6, 4), a's last reader
    r = node(g, 'reshape', [t], shape=(4, 6))                    # a view of t
    m = node(g, 'multiply', [r, node(g, 'sigmoid', [x])])        # reads t through the view
    g.outputs = [node(g, 'softmax', [m], axis=-1)]
    assign, specs = plan_memory(g, _plannable(g))
    _check_plan(g, assign, specs)
    assert assign[m.id] != assign[t.id]
    np.testing.assert_allclose(Program(g)(random_inputs(g))[0], evaluate(g, random_inputs(g))[0], rtol=1e-6)


def test_a_value_read_through_a_view_stays_alive_until_the_view_is_read():
    g, (x,) = new_graph((4, 6))
    a = node(g, 'exp', [x])
    r = node(g, 'reshape', [a], shape=(24,))
    b = node(g, 'tanh', [x])                                     # a is still alive (read via r)
    c = node(g, 'softmax', [b], axis=-1)
    d = node(g, 'add', [node(g, 'reshape', [r], shape=(4, 6)), c])
    g.outputs = [node(g, 'softmax', [d], axis=-1)]
    assign, specs = plan_memory(g, _plannable(g))
    _check_plan(g, assign, specs)
    assert assign[a.id] not in (assign[b.id], assign[c.id])


def test_the_planned_memory_of_a_long_chain_does_not_grow_with_its_length():
    sizes = {}
    for n in (4, 16):
        prog = Program(_chain(n, (32, 32), elementwise=False))
        naive = (n - 1) * 32 * 32 * 4
        assert prog.nbytes <= naive
        sizes[n] = prog.nbytes
    assert sizes[16] == sizes[4] == 2 * 32 * 32 * 4                # ping-pong between two buffers


def test_saved_values_of_a_training_call_survive_a_second_call_before_backward():
    """Two hybridized forward passes under one record(), then one backward: each backward reads
    the values its own forward saved, which must not be buffers the second call reused."""
    def make():
        net = nn.HybridSequential()
        net.add(nn.Dense(8, activation='tanh', in_units=5), nn.Dense(3, in_units=8))
        net.initialize()
        return net
    grads = []
    for hybrid in (False, True):
        mx_random.seed(4)
        net = make()
        if hybrid:
            net.hybridize()
        x1, x2 = nd.array(np.linspace(-1, 1, 10).reshape(2, 5)), nd.array(np.cos(np.arange(10.0)).reshape(2, 5))
        with autograd.record():
            y1 = net(x1)
            y2 = net(x2)
            loss = (y1 * y1).sum() + (y2 * 3.0).sum()
        loss.backward()
        grads.append([p.grad().asnumpy() for p in net.collect_params().values()])
    assert len(grads[0]) == len(grads[1]) == 4
    for hybrid, eager in zip(*grads[::-1]):
        np.testing.assert_allclose(hybrid, eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('seed', SEEDS[:6])
def test_fused_programs_of_random_graphs_match_the_reference(seed):
    """The full lowering (fused elementwise kernels, which may also work in place) on the same
    random graphs, after dead-code elimination as in CachedOp: the reference interpreter's
    results, inputs untouched, over two calls."""
    inputs = random_inputs(_random_graph(seed), seed)
    kept = [a.copy() for a in inputs]
    prog = compile_program(passes.dead_code_elimination(_random_graph(seed)), f'random{seed}')
    for _ in range(2):
        for got, want in zip(prog(inputs), evaluate(_random_graph(seed), inputs)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for a, k in zip(inputs, kept):
        np.testing.assert_array_equal(a, k)


def test_lowering_a_graph_with_a_dead_elementwise_chain():
    g, (x,) = new_graph((4, 6))
    node(g, 'multiply', [node(g, 'tanh', [x]), x])     # nothing reads it
    g.outputs = [node(g, 'softmax', [x], axis=-1)]
    inputs = random_inputs(g)
    np.testing.assert_allclose(compile_program(g, 'dead')(inputs)[0], evaluate(g, inputs)[0], rtol=1e-6)


class _ElementwiseOnAParameter(gluon.HybridBlock):
    """A chain of elementwise ops starting at a parameter: an in-place kernel must never take
    the parameter's own memory."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.w = self.params.get('w', shape=(4, 4), init='ones')

    def hybrid_forward(self, F, x, w):
        return F.tanh(F.exp(w * 0.5) + 1.0) * x


@pytest.mark.parametrize('train', [False, True], ids=['predict', 'train'])
def test_parameters_are_never_scratch_space(train):
    net = _ElementwiseOnAParameter()
    net.initialize()
    net.hybridize()
    x = nd.array(np.arange(16.0).reshape(4, 4))
    want = np.tanh(np.exp(0.5) + 1.0) * x.asnumpy()
    for _ in range(3):
        with autograd.record(train_mode=train) if train else autograd.pause():
            y = net(x)
        if train:
            y.backward()
        np.testing.assert_allclose(y.asnumpy(), want, rtol=1e-6)
        np.testing.assert_array_equal(net.w.data().asnumpy(), np.ones((4, 4)))
