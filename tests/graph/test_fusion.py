"""Elementwise fusion: which nodes form groups, that a fused graph computes what the unfused one
does (both compiled with engine.graph.lower.Program, and the reference interpreter), and that
the generated Numba source is cached on disk and reused."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from engine.graph import fusion
from engine.graph.lower import Program
from graphkit import evaluate, new_graph, node, op_names, random_inputs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _chain_graph(shape=(8, 16), scalar=1.0, dtype=np.float32):
    """exp -> *scalar -> relu -> + y -> tanh, then a (non-fusable) reduction."""
    g, (x, y) = new_graph(shape, shape, dtype=dtype)
    a = node(g, 'exp', [x])
    b = node(g, '_mul_scalar', [a], scalar=scalar)
    c = node(g, 'relu', [b])
    d = node(g, 'add', [c, y])
    e = node(g, 'tanh', [d])
    g.outputs = [node(g, 'sum', [e], axis=(1,), keepdims=False)]
    return g


def _names(groups):
    return [[n.op.name for n in grp] for grp in groups]


def test_a_chain_forms_one_group():
    g = _chain_graph()
    assert _names(fusion.find_groups(g)) == [['exp', '_mul_scalar', 'relu', 'add', 'tanh']]


def test_groups_stop_at_shape_changes_and_non_elementwise_ops():
    g, (x, b) = new_graph((4, 5), (5,))
    a = node(g, 'exp', [x])
    a2 = node(g, 'sigmoid', [a])
    s = node(g, 'sum', [a2], axis=(1,), keepdims=True)       # not elementwise: ends the group
    t = node(g, 'log', [s])
    u = node(g, 'sqrt', [t])                                 # a second group, on (4, 1)
    bb = node(g, 'add', [a2, b])                             # broadcast input: not fusable with (5,)
    g.outputs = [u, bb]
    groups = _names(fusion.find_groups(g))
    assert ['exp', 'sigmoid'] in groups and ['log', 'sqrt'] in groups
    assert all('sum' not in grp for grp in groups)


def test_independent_chains_form_separate_groups():
    g, (x, y) = new_graph((3, 3), (3, 3))
    a = node(g, 'relu', [node(g, 'exp', [x])])
    b = node(g, 'tanh', [node(g, 'negative', [y])])
    g.outputs = [a, b]
    assert sorted(_names(fusion.find_groups(g))) == [['exp', 'relu'], ['negative', 'tanh']]


def test_a_group_does_not_grow_past_an_outside_reader():
    """exp -> (sum reads it) -> log(exp): the fused kernel would run after the sum needed exp."""
    g, (x,) = new_graph((4, 4))
    a = node(g, 'exp', [x])
    s = node(g, 'sum', [a], axis=None, keepdims=False)
    b = node(g, 'log', [a])
    g.outputs = [s, b]
    assert fusion.find_groups(g) == []


def test_single_nodes_are_groups_only_when_big_and_costly():
    g, (x,) = new_graph((4,))
    g.outputs = [node(g, 'exp', [x])]
    assert fusion.find_groups(g) == []      # small: NumPy's call is cheaper than a kernel
    big = (fusion.SINGLE_MIN_SIZE,)
    g, (x,) = new_graph(big)
    g.outputs = [node(g, 'selu', [x]), node(g, '_mul_scalar', [x], scalar=2.0)]
    assert _names(fusion.find_groups(g)) == [['selu']]   # x * c is one SIMD pass in NumPy


def test_a_node_merges_the_groups_of_its_inputs():
    """where(x > 0, g * s, g * (y + c)): three input chains end in one kernel."""
    g, (x, y, gr) = new_graph((4, 4), (4, 4), (4, 4))
    a = node(g, '_mul_scalar', [gr], scalar=2.0)
    b = node(g, 'multiply', [gr, node(g, '_plus_scalar', [y], scalar=1.0)])
    c = node(g, '_greater_scalar', [x], scalar=0.0)
    g.outputs = [node(g, 'where', [c, a, b])]
    (group,) = fusion.find_groups(g)
    assert [n.op.name for n in group] == ['_mul_scalar', '_plus_scalar', 'multiply', '_greater_scalar', 'where']
    inputs = random_inputs(g)
    (ref,) = evaluate(g, inputs)
    (got,) = Program(fusion.fuse_elementwise(g), 'merged')(inputs)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_rendered_kernel_is_readable():
    g = _chain_graph(dtype=np.float64)
    (group,) = fusion.find_groups(g)
    src, ins, outs = fusion.render(group, {v.id for v in g.outputs}, g.users())
    assert src.startswith('@njit(cache=True')
    assert 'math.exp(' in src and 'math.tanh(' in src and 't1 if (t1 != t1 or t1 > 0.0) else 0.0' in src
    assert len(ins) == 2 and len(outs) == 1


def test_float32_kernels_use_vectorizable_math_and_float32_literals():
    g = _chain_graph(scalar=0.5)
    (group,) = fusion.find_groups(g)
    src, _, _ = fusion.render(group, {v.id for v in g.outputs}, g.users())
    assert 'fexp(' in src and 'math.exp(' not in src
    assert '* F(0.5)' in src and 't1 if (t1 != t1 or t1 > F(0.0)) else F(0.0)' in src


@pytest.mark.parametrize('shape', [(8, 16), (256, 300)], ids=['serial', 'parallel'])
def test_fused_program_matches_unfused(shape):
    inputs = random_inputs(_chain_graph(shape))
    reference = evaluate(_chain_graph(shape), inputs)
    plain = Program(_chain_graph(shape), 'plain')
    fused_graph = fusion.fuse_elementwise(_chain_graph(shape))
    assert [n for n in op_names(fused_graph) if n.startswith('fused[')] == \
        ['fused[exp+_mul_scalar+relu+add+tanh]']
    fused = Program(fused_graph, 'fused')
    for out_plain, out_fused, ref in zip(plain(inputs), fused(inputs), reference):
        np.testing.assert_allclose(out_plain, ref, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(out_fused, ref, rtol=1e-5, atol=1e-5)
    # the fused kernel's source is kept on its op
    src = next(n.op.source for n in fused_graph.nodes if n.op.name.startswith('fused['))
    assert 'def kernel(' in src


def test_fused_group_with_several_external_outputs():
    """Values of the group read outside it (and graph outputs) are stored by the kernel."""
    g, (x, y) = new_graph((5, 7), (5, 7))
    a = node(g, 'exp', [x])
    b = node(g, 'add', [a, y])
    c = node(g, 'sigmoid', [b])
    g.outputs = [c, node(g, 'sum', [b], axis=None, keepdims=False), a]
    inputs = random_inputs(g)
    reference = evaluate(g, inputs)
    fused = fusion.fuse_elementwise(g)
    assert sum(n.op.name.startswith('fused[') for n in fused.nodes) == 1
    for got, ref in zip(Program(fused)(inputs), reference):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_fusion_handles_comparisons_where_and_special_floats():
    g, (x, y) = new_graph((6, 6), (6, 6))
    cond = node(g, 'greater', [x, y])
    w = node(g, 'where', [cond, x, y])
    m = node(g, '_maximum_scalar', [w], scalar=float('-inf'))
    g.outputs = [node(g, '_mul_scalar', [m], scalar=2.0)]
    inputs = random_inputs(g)
    reference = evaluate(g, inputs)
    fused = fusion.fuse_elementwise(g)
    assert any(n.op.name.startswith('fused[') for n in fused.nodes)
    np.testing.assert_allclose(Program(fused)(inputs)[0], reference[0], rtol=1e-6)


def _fresh_scalar():
    # a scalar nobody used before, so the generated source (and its hash) is new
    return float(np.random.default_rng().integers(1, 1 << 30)) / 7.0


def test_generated_kernels_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv('ENGINE_CACHE_DIR', str(tmp_path))
    scalar = _fresh_scalar()
    inputs = random_inputs(_chain_graph(scalar=scalar))
    first = Program(fusion.fuse_elementwise(_chain_graph(scalar=scalar)))
    expected = first(inputs)
    sources = sorted((tmp_path / 'fused').glob('fused_*.py'))
    assert len(sources) == 1
    text = sources[0].read_text()
    assert text.startswith('import math') and 'def kernel(' in text and repr(scalar) in text
    # Numba wrote its compiled code beside the module (cache=True)
    cached = [p for p in tmp_path.rglob('*') if p.suffix in ('.nbi', '.nbc')]
    assert cached, 'no Numba cache files were written'
    mtime = sources[0].stat().st_mtime_ns
    # a second Program for the same graph reuses the kernel: no new file, the same function
    fused2 = fusion.fuse_elementwise(_chain_graph(scalar=scalar))
    second = Program(fused2)
    assert sorted((tmp_path / 'fused').glob('fused_*.py')) == sources
    assert sources[0].stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(second(inputs)[0], expected[0])
    digest = sources[0].stem[len('fused_'):]
    fn = fusion._loaded[digest]
    assert any(getattr(n.op, 'source', None) and fn is fusion.compile_numba(n.op.source)[0]
               for n in fused2.nodes)


def test_a_new_process_loads_the_compiled_kernel_from_the_disk_cache(tmp_path):
    """Numba's cache=True on the generated module: a second process gets a cache hit."""
    scalar = _fresh_scalar()
    script = textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {os.path.join(REPO, 'tests', 'graph')!r})
        from engine.graph import fusion
        from engine.graph.lower import Program
        from graphkit import random_inputs
        from test_fusion import _chain_graph
        g = fusion.fuse_elementwise(_chain_graph(scalar={scalar!r}))
        Program(g)(random_inputs(g))
        (fn,) = fusion._loaded.values()
        print('hits', sum(fn.stats.cache_hits.values()), 'misses', sum(fn.stats.cache_misses.values()))
    ''')
    env = dict(os.environ, ENGINE_CACHE_DIR=str(tmp_path), PYTHONPATH=REPO)
    runs = [subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True,
                           timeout=120, cwd=REPO) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    assert runs[0].stdout.split() == ['hits', '0', 'misses', '1']
    assert runs[1].stdout.split() == ['hits', '1', 'misses', '0']


def test_compiling_leaves_the_traced_graph_as_it_was():
    """Epilogue and elementwise fusion build new graphs: the graph they are given, whose nodes and
    values other graphs share, prints the same afterwards, and the lowered graph is consistent
    (every value's node is one of its nodes, so it prints and draws too)."""
    from engine.graph.cached_op import compile_program
    from engine.graph.epilogue import fuse_epilogues
    g, (x, w) = new_graph((2, 3, 8, 8), (4, 3, 3, 3))
    conv = node(g, 'conv2d', [x, w], stride=(1, 1), pad=(1, 1), dilate=(1, 1), groups=1, act=None)
    a = node(g, 'relu', [conv])
    b = node(g, 'tanh', [node(g, 'exp', [node(g, '_mul_scalar', [a], scalar=0.5)])])
    g.outputs = [b, node(g, 'sum', [b], axis=None, keepdims=False)]
    before, dot, nodes = str(g), g.to_dot(), list(g.nodes)
    owners = [(v.node, v.index) for n in g.nodes for v in n.outputs]
    lowered = fusion.fuse_elementwise(fuse_epilogues(g))
    program = compile_program(g, 'unchanged')
    assert str(g) == before and g.to_dot() == dot and g.nodes == nodes
    assert [(v.node, v.index) for n in g.nodes for v in n.outputs] == owners
    names = op_names(lowered)
    assert names[0] == 'conv2d' and names[1].startswith('fused[') and len(names) == 3, names
    assert all(v.node is n for n in lowered.nodes for v in n.outputs)
    assert all(v.node is None or v.node in lowered.nodes for n in lowered.nodes for v in n.inputs)
    lowered.to_dot(), str(lowered)      # both walk v.node; they raised on a stale one
    inputs = random_inputs(g)
    for got, want in zip(program(inputs), evaluate(g, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
